#!/usr/bin/env python3
"""Asserts the properties of nodedns's rendered manifests (deploy/kubernetes) that matter.

  check_manifests.py daemonset RENDERED.yaml --localip A,B,...
  check_manifests.py bench RENDERED.yaml --server ADDR:PORT --job NAME

The schema (validate.mjs) says the objects are well formed; this says they are the deployment
docs/deploy.md describes: the node-local-dns DaemonSet on the host network with dnsPolicy
Default, system-node-critical, tolerating every taint, without ports (so without hostPorts),
rolled out with a surge (maxSurge 1, maxUnavailable 0) and -handover in a /run/nodedns hostPath,
with exactly the expected -localip, every Corefile block binding exactly those addresses once
nodedns has substituted its variables, probes on the Corefile's health and ready addresses, and a
memory limit computed from the Corefile's cache capacities by the formula below. Prints every
failed check and exits 1 if there is one.
"""
import argparse
import ipaddress
import math
import re
import sys

import yaml

MIB = 1 << 20
BYTES_PER_ENTRY = 512          # nodecache/serve_config.h kBytesPerCacheEntry
MIN_CACHE_BYTES = 4 * MIB      # nodecache/serve_config.h kMinCacheBytes
DEFAULT_CAPACITY = 10000       # corefile/config.h kCacheDefaultCapacity (success, denial each)
# The memory limit (docs/deploy.md, "Manifests"): the cache budget in MiB rounded up, plus the
# cache's own constant past its budget (docs/architecture.md, "Memory bound") and 32 MiB for the
# rest of the process.
CACHE_CONSTANT_MIB = 12
LIMIT_OVERHEAD_MIB = 32

# nodedns's -allow default (proxy/allow_list.h kDefaultAllow), what `default` stands for.
DEFAULT_ALLOW = ["10.0.0.0/8", "127.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                 "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10"]

failures = []


def check(ok, message):
    if not ok:
        failures.append(message)
    return ok


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def find(objs, kind, name):
    found = [o for o in objs if o.get("kind") == kind and o["metadata"].get("name") == name]
    check(len(found) == 1, f"want exactly one {kind} {name}, found {len(found)}")
    return found[0] if found else None


def go_flags(args):
    """node-cache's arguments as {name: value}: -name value, -name=value, booleans -name."""
    flags = {}
    booleans = {"setupinterface", "setupiptables", "skipteardown", "reloadwithsignal", "quiet",
                "discoverpods"}
    i = 0
    while i < len(args):
        arg = args[i]
        check(arg.startswith("-"), f"argument {arg!r} is not a flag")
        name = arg.lstrip("-")
        if "=" in name:
            name, value = name.split("=", 1)
        elif name in booleans:
            value = "true"
        else:
            i += 1
            check(i < len(args), f"flag {arg} has no value")
            value = args[i] if i < len(args) else ""
        check(name not in flags, f"flag -{name} given twice")
        flags[name] = value
        i += 1
    return flags


def corefile_blocks(text):
    """[(keys, [directive lines], {nested directive: [lines]})] of a Corefile, CoreDNS's syntax
    as the stock file uses it (one directive a line, nested blocks closed by a lone `}`)."""
    blocks = []
    depth = 0
    current = None
    nested = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if depth == 0:
            check(line.endswith("{"), f"Corefile: expected a server block, got {line!r}")
            current = {"keys": line[:-1].split(), "lines": [], "nested": {}}
            blocks.append(current)
            depth = 1
        elif line == "}":
            depth -= 1
            nested = None
        elif line.endswith("{"):
            words = line[:-1].split()
            current["lines"].append(words)
            nested = words[0]
            current["nested"].setdefault(nested, [])
            depth += 1
        elif depth == 2:
            current["nested"][nested].append(line.split())
        else:
            current["lines"].append(line.split())
    check(depth == 0, "Corefile: unbalanced braces")
    return blocks


def cache_entries(blocks):
    """Sum of every block's success and denial capacities, as nodedns sizes its cache."""
    total = 0
    for b in blocks:
        if not any(words[0] == "cache" for words in b["lines"]):
            continue
        caps = {"success": DEFAULT_CAPACITY, "denial": DEFAULT_CAPACITY}
        for words in b["nested"].get("cache", []):
            if words[0] in caps and len(words) > 1:
                caps[words[0]] = int(words[1])
        total += caps["success"] + caps["denial"]
    return total


def quantity_bytes(q):
    m = re.fullmatch(r"([0-9]+)(Ki|Mi|Gi)?", str(q))
    if not check(m is not None, f"memory quantity {q!r} is not N, NKi, NMi or NGi"):
        return None
    return int(m.group(1)) * {None: 1, "Ki": 1 << 10, "Mi": MIB, "Gi": 1 << 30}[m.group(2)]


def directive_address(blocks, name):
    found = [w for b in blocks for w in b["lines"] if w[0] == name]
    return found[0][1] if len(found) == 1 and len(found[0]) == 2 else None


def split_host_port(address):
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def check_daemonset(objs, localip):
    ds = find(objs, "DaemonSet", "node-local-dns")
    cm = find(objs, "ConfigMap", "node-local-dns")
    if ds is None or cm is None:
        return
    check(ds["metadata"].get("namespace") == "kube-system", "DaemonSet not in kube-system")
    check(ds["metadata"].get("labels", {}).get("k8s-app") == "node-local-dns",
          "DaemonSet lacks the label k8s-app: node-local-dns")
    pod = ds["spec"]["template"]["spec"]
    check(ds["spec"]["template"]["metadata"]["labels"].get("k8s-app") == "node-local-dns",
          "pod template lacks the label k8s-app: node-local-dns")
    check(pod.get("hostNetwork") is True, "hostNetwork is not true")
    check(pod.get("dnsPolicy") == "Default", f"dnsPolicy is {pod.get('dnsPolicy')!r}, not Default")
    check(pod.get("priorityClassName") == "system-node-critical",
          "priorityClassName is not system-node-critical")
    check({"operator": "Exists"} in pod.get("tolerations", []),
          "no toleration {operator: Exists} (every taint)")
    # A surge rollout: the new pod starts while the old one serves and takes its sockets over
    # (-handover, checked below); none of the node's pods is stopped before its successor is
    # ready.
    strategy = ds["spec"].get("updateStrategy", {})
    check(strategy.get("type") == "RollingUpdate" and
          strategy.get("rollingUpdate") == {"maxSurge": 1, "maxUnavailable": 0},
          f"updateStrategy is {strategy}, want RollingUpdate maxSurge 1 maxUnavailable 0")
    # The hostPaths: the host's xtables lock, which nodedns holds while it writes
    # iptables-legacy's tables, as kube-proxy does; and the directory of the handover socket,
    # which the old and the new pod of a node must both see.
    want_host_paths = {"/run/xtables.lock": "FileOrCreate", "/run/nodedns": "DirectoryOrCreate"}
    host_paths = [v for v in pod.get("volumes", []) if "hostPath" in v]
    check(sorted((v["hostPath"].get("path"), v["hostPath"].get("type")) for v in host_paths) ==
          sorted(want_host_paths.items()),
          f"hostPath volumes {host_paths}, want /run/xtables.lock (FileOrCreate) and "
          "/run/nodedns (DirectoryOrCreate) only")
    container_mounts = {m["name"]: m for m in pod["containers"][0].get("volumeMounts", [])}
    for v in host_paths:
        path = v["hostPath"].get("path")
        m = container_mounts.get(v["name"], {})
        check(m.get("mountPath") == path and not m.get("readOnly"),
              f"hostPath {path} is mounted as {m or 'nothing'}, want {path} read-write")
    containers = pod["containers"]
    check(len(containers) == 1, "want one container")
    c = containers[0]
    check(c["name"] == "node-cache", "the container is not named node-cache")
    for ct in containers + pod.get("initContainers", []):
        # On a hostNetwork pod every containerPort gets hostPort = containerPort by default.
        check(not ct.get("ports"), f"container {ct['name']} declares ports (hostPorts on the "
              "host network: a second pod on the node could not be scheduled)")
    check(c.get("command") == ["/usr/local/bin/nodedns", "node-cache"],
          f"command is {c.get('command')}")
    check(c.get("image", "").split(":")[0].split("/")[-1] == "nodedns",
          f"image {c.get('image')!r} is not a nodedns image")
    sc = c.get("securityContext", {})
    check(sc.get("runAsUser") == 0, "runAsUser is not 0")
    check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation is not false")
    check(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem is not true")
    caps = sc.get("capabilities", {})
    check(caps.get("drop") == ["ALL"], "capabilities do not drop ALL")
    check(sorted(caps.get("add", [])) == ["NET_ADMIN", "NET_BIND_SERVICE", "NET_RAW", "SETGID",
                                          "SETUID", "SYS_PTRACE"],
          f"capabilities add {caps.get('add')}")

    flags = go_flags(c.get("args", []))
    check(flags.get("localip") == localip,
          f"-localip is {flags.get('localip')!r}, want {localip!r}")
    check(flags.get("upstreamsvc") == "kube-dns-upstream", "-upstreamsvc is not kube-dns-upstream")
    for name in ("setupinterface", "setupiptables"):
        check(flags.get(name, "true") == "true", f"-{name} is not left at true")
    # Pod discovery (docs/audit.md, "Node mode"): the node's processes (hostPID) and the right to
    # read their /proc/PID/root (SYS_PTRACE, above).
    check(flags.get("discoverpods") == "true", "-discoverpods is not on")
    check(pod.get("hostPID") is True, "hostPID is not true (-discoverpods reads the node's /proc)")
    find(objs, "Service", "kube-dns-upstream")
    # -allow: present, every element a network, not open to the world (an open resolver on
    # every node), and admitting some clients of each family nodedns listens on.
    allow = flags.get("allow")
    if check(allow is not None, "no -allow: the node-local cache would rely on its default") and \
            check(allow.strip().lower() != "any", "-allow any: an open resolver"):
        nets = []
        for entry in allow.split(","):
            if entry.strip() == "default":  # proxy/allow_list.h kDefaultAllow
                nets += [ipaddress.ip_network(n) for n in DEFAULT_ALLOW]
                continue
            try:
                nets.append(ipaddress.ip_network(entry.strip()))
            except ValueError:
                check(False, f"-allow entry {entry!r} is not a CIDR")
        check(all(n.prefixlen > 0 for n in nets),
              f"-allow {allow!r} admits every address: an open resolver")
        for family in sorted({ipaddress.ip_address(a).version for a in localip.split(",")}):
            check(any(n.version == family for n in nets),
                  f"-allow {allow!r} has no IPv{family} prefix: IPv{family} pods are refused")
    # -handover: a socket in the /run/nodedns hostPath, the same path on every node and for
    # every pod, or the new pod would not find the old one.
    handover = flags.get("handover", "")
    handover_dir = handover.rsplit("/", 1)[0]
    check(handover == "/run/nodedns/handover.sock",
          f"-handover is {handover!r}, want '/run/nodedns/handover.sock'")
    handover_mounts = [m for m in c.get("volumeMounts", []) if m.get("mountPath") == handover_dir]
    handover_volume = next((v for v in pod.get("volumes", [])
                            if handover_mounts and v["name"] == handover_mounts[0]["name"]), {})
    check(handover_volume.get("hostPath", {}).get("path") == handover_dir,
          f"-handover's directory {handover_dir!r} is not mounted from the node's "
          f"{handover_dir!r} (hostPath): the old and the new pod would not share the socket")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}

    def volume_at(path):
        directory = path.rsplit("/", 1)[0]
        return volumes.get(mounts.get(directory))

    conf = volume_at(flags.get("conf", "/etc/Corefile"))
    check(conf is not None and "emptyDir" in conf,
          f"-conf {flags.get('conf')} is not in an emptyDir (the root filesystem is read-only)")
    base = volume_at(flags.get("basecorefile", "/etc/coredns/Corefile.base"))
    check(base is not None and base.get("configMap", {}).get("name") == "node-local-dns" and
          {"key": "Corefile", "path": flags.get("basecorefile", "").rsplit("/", 1)[-1]}
          in base["configMap"].get("items", []),
          "-basecorefile is not the node-local-dns ConfigMap's Corefile")
    kubedns = volumes.get(mounts.get("/etc/kube-dns"))
    check(kubedns is not None and kubedns.get("configMap") ==
          {"name": "kube-dns", "optional": True},
          "the optional kube-dns ConfigMap is not mounted at /etc/kube-dns")

    # The Corefile as nodedns generates it (nodecache/corefile_template.cc): the local IPs
    # for __PILLAR__LOCAL__DNS__ (commas become spaces), __PILLAR__DNS__SERVER__ removed.
    text = cm["data"]["Corefile"]
    generated = text.replace("__PILLAR__LOCAL__DNS__", localip.replace(",", " "))
    generated = generated.replace("__PILLAR__DNS__SERVER__", "")
    blocks = corefile_blocks(generated)
    want = {ipaddress.ip_address(a) for a in localip.split(",")}
    for b in blocks:
        binds = [w[1:] for w in b["lines"] if w[0] == "bind"]
        got = {ipaddress.ip_address(a) for w in binds for a in w}
        check(len(binds) == 1 and got == want,
              f"Corefile block {' '.join(b['keys'])} binds {sorted(map(str, got))}, "
              f"want exactly -localip {sorted(map(str, want))}")
    for directive, probe, path in (("health", "livenessProbe", "/health"),
                                   ("ready", "readinessProbe", "/ready")):
        address = directive_address(blocks, directive)
        if not check(address is not None, f"Corefile: want one `{directive} ADDR`"):
            continue
        host, port = split_host_port(address)
        get = c.get(probe, {}).get("httpGet", {})
        check(get == {"host": host, "port": port, "path": path},
              f"{probe} {get} does not match the Corefile's `{directive} {address}`")
        check(ipaddress.ip_address(host) in want, f"`{directive} {address}` not on a -localip")
    metrics = find(objs, "Service", "node-local-dns")
    prometheus = {split_host_port(w[1])[1] for b in blocks for w in b["lines"]
                  if w[0] == "prometheus"}
    if metrics is not None:
        check(metrics["spec"].get("clusterIP") == "None", "the metrics Service is not headless")
        targets = {p["targetPort"] for p in metrics["spec"]["ports"]}
        check(prometheus | {9353} == targets,
              f"metrics Service targets {sorted(targets)}, the Corefile's prometheus "
              f"{sorted(prometheus)} and -metrics-listen-address 9353")

    entries = cache_entries(blocks)
    budget = max(MIN_CACHE_BYTES, entries * BYTES_PER_ENTRY)
    want_limit = (math.ceil(budget / MIB) + CACHE_CONSTANT_MIB + LIMIT_OVERHEAD_MIB) * MIB
    resources = c.get("resources", {})
    limit = quantity_bytes(resources.get("limits", {}).get("memory", "0"))
    check(limit == want_limit,
          f"memory limit {resources.get('limits', {}).get('memory')} is not "
          f"ceil({entries} entries x {BYTES_PER_ENTRY} B / 1 MiB) + {CACHE_CONSTANT_MIB} + "
          f"{LIMIT_OVERHEAD_MIB} MiB = {want_limit // MIB}Mi")
    request = quantity_bytes(resources.get("requests", {}).get("memory", "0"))
    check(request is not None and limit is not None and 0 < request <= limit,
          "memory request missing or above the limit")
    check(resources.get("requests", {}).get("cpu") == "25m", "cpu request is not 25m")
    print(f"cache {entries} entries, budget {budget} B, memory limit {want_limit // MIB}Mi")


def check_bench(objs, server, job_name):
    job = find(objs, "Job", job_name)
    if job is None:
        return
    pod = job["spec"]["template"]["spec"]
    check(pod.get("dnsPolicy", "ClusterFirst") == "ClusterFirst", "bench pod not ClusterFirst")
    check(not pod.get("hostNetwork"), "bench pod on the host network")
    c = pod["containers"][0]
    check(c.get("command") == ["/usr/local/bin/nodedns-loadgen"], f"command {c.get('command')}")
    args = c.get("args", [])
    opts = dict(zip(args[::2], args[1::2]))
    check(len(args) % 2 == 0, f"loadgen args {args} are not option-value pairs")
    check(opts.get("--server") == server, f"--server {opts.get('--server')}, want {server}")
    for name in ("--rate", "--duration"):
        check(name in opts and float(opts[name]) > 0, f"no positive {name}")
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    queries = opts.get("--queries", "")
    name = next((n for n, p in mounts.items() if queries.startswith(p + "/")), None)
    cm_name = volumes.get(name, {}).get("configMap", {}).get("name")
    cms = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == cm_name]
    if check(len(cms) == 1, f"--queries {queries} is not in a rendered ConfigMap"):
        text = cms[0]["data"].get(queries.rsplit("/", 1)[-1], "")
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        check(lines and all(len(ln.split()) == 2 for ln in lines),
              "the query file is empty or not 'name type' per line")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("what", choices=["daemonset", "bench"])
    parser.add_argument("rendered")
    parser.add_argument("--localip")
    parser.add_argument("--server")
    parser.add_argument("--job", default="nodedns-bench")
    a = parser.parse_args()
    objs = load(a.rendered)
    if a.what == "daemonset":
        check_daemonset(objs, a.localip)
    else:
        check_bench(objs, a.server, a.job)
    for f in failures:
        print(f"{a.rendered}: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
