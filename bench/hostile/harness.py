#!/usr/bin/env python3
"""Hostile-upstream harness: runs hostile_upstream.py plus one DNS forwarder ("peer":
Unbound, dnsdist or nodedns) on loopback, queries the peer with kdig and records what
the client got and what the upstream saw.

Usage:
    python3 harness.py [--out DIR] [--peers unbound,dnsdist,nodedns] [--nodedns PATH]
                       SCENARIO [SCENARIO...] | all
    python3 harness.py --list

Each scenario starts a fresh upstream and a fresh peer for every selected peer; the
peers run in parallel, each on its own loopback port pair (see PORTS). Results go to
DIR/results/<scenario>.json, logs and the generated peer configs to DIR/logs/.
`python3 show.py DIR/results/*.json` prints them.

Every process started here is killed by pid (its process group) when its scenario
ends, and on every other exit path too: exceptions, Ctrl-C, SIGTERM, SIGHUP.
Only 127.0.0.1 is used.
"""
import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
UPSTREAM_PY = os.path.join(HERE, "hostile_upstream.py")
QUERY7_PY = os.path.join(HERE, "query7.py")
KNOT_DIR = os.path.join(HERE, "knot")

# Set by main() from --out: where results/ and logs/ go.
LOGS = None
RES = None

# One port set per peer, so the peers of a scenario can run in parallel:
# peer -> (hostile upstream port, peer listen port, peer health port or None).
PORTS = {
    "unbound": (15353, 15354, None),
    "dnsdist": (15363, 15365, None),
    "nodedns": (15373, 15374, 15375),
}
KNOT_PORT = 15386
ALL_PEERS = ("unbound", "dnsdist", "nodedns")

# Path of the nodedns binary (--nodedns); None when nodedns is not a peer.
NODEDNS = None
# Extra arguments for `nodedns serve` (--nodedns-arg, repeatable).
NODEDNS_EXTRA = []

# Time bounds: the upstream exits by itself after this many seconds, whatever happens.
UPSTREAM_MAX_RUNTIME = 400
# Seconds to wait for a peer to answer its first query.
STARTUP_TIMEOUT = 10

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
          5: "REFUSED", 9: "NOTAUTH"}

UNBOUND_CONF = """server:
  interface: 127.0.0.1@{lport}
  port: {lport}
  num-threads: 1
  do-not-query-localhost: no
  module-config: "iterator"
  username: ""
  chroot: ""
  directory: "{d}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  do-daemonize: no
  verbosity: 1
  access-control: 127.0.0.0/8 allow
{staleline}forward-zone:
  name: "."
  forward-addr: 127.0.0.1@{uport}
{tcpline}"""

# Serve-stale as a user would turn it on (stale scenarios only), matching nodedns's defaults:
# expired answers kept 3600 s, given to a client after 1800 ms (RFC 8767 §5), with EDE 3.
UNBOUND_STALE = """  serve-expired: yes
  serve-expired-ttl: 3600
  serve-expired-client-timeout: 1800
  ede: yes
  ede-serve-expired: yes
"""

DNSDIST_CONF = """setLocal('127.0.0.1:{lport}')
newServer({{address='127.0.0.1:{uport}', checkName='health.check.'{tcponly}{checks}}})
pc = newPacketCache(10000)   -- packet cache with default settings
getPool(""):setCache(pc)
setSecurityPollSuffix("")
{staleline}"""

# dnsdist serves an expired cache entry only when no backend of the pool is up: keep entries
# 3600 s past expiry, and let a health check fail on SERVFAIL/REFUSED too (mustResolve; a
# check every second, down after one failure, its 1 s timeout: the defaults, spelt out).
DNSDIST_STALE = "setStaleCacheEntriesTTL(3600)\n"
DNSDIST_STALE_CHECKS = (", mustResolve=true, checkInterval=1, maxCheckFailures=1, "
                        "checkTimeout=1000")


# ------------------------------------------------------------ process bookkeeping

# Every child process started by this harness (servers, kdig, query7.py), so that
# cleanup_all() can kill whatever is still running on any exit path.
_CHILDREN = []
_CHILDREN_LOCK = threading.Lock()
_SHUTTING_DOWN = threading.Event()


def spawn(argv, out, new_session):
    """Start a child and register it. out is an open log file (stderr goes there
    too) or subprocess.PIPE (stdout and stderr are captured separately).
    new_session=True puts the child in its own process group (servers); that
    group is what gets killed."""
    err = subprocess.PIPE if out is subprocess.PIPE else subprocess.STDOUT
    with _CHILDREN_LOCK:
        # once cleanup has begun, scenario threads still running may not start more
        if _SHUTTING_DOWN.is_set():
            raise RuntimeError("harness is shutting down")
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                             start_new_session=new_session)
        p.own_group = new_session
        _CHILDREN.append(p)
    return p


def kill(p, sig=signal.SIGTERM):
    """Send sig to one child we started: its process group if it has its own."""
    if p.poll() is not None:
        return
    try:
        if p.own_group:
            os.killpg(p.pid, sig)
        else:
            os.kill(p.pid, sig)
    except ProcessLookupError:
        pass


def stop_proc(p, grace=5):
    """SIGTERM, wait up to grace seconds, then SIGKILL; reaps the child."""
    kill(p, signal.SIGTERM)
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        kill(p, signal.SIGKILL)
        p.wait()
    with _CHILDREN_LOCK:
        if p in _CHILDREN:
            _CHILDREN.remove(p)


def cleanup_all():
    """Kill every child that is still registered and let no new one start.
    Safe to call more than once."""
    with _CHILDREN_LOCK:
        _SHUTTING_DOWN.set()
        left = list(_CHILDREN)
    for p in left:
        stop_proc(p, grace=2)


def run_child(argv, timeout, out=subprocess.PIPE):
    """Like subprocess.run(capture_output=True, text=True) but registered, so the
    child is killed if the harness is interrupted. Returns (rc, stdout, stderr)."""
    p = spawn(argv, out, new_session=False)
    try:
        so, se = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_proc(p, grace=1)
        so, se = p.communicate()
    finally:
        with _CHILDREN_LOCK:
            if p in _CHILDREN:
                _CHILDREN.remove(p)
    dec = (lambda b: b.decode("utf-8", "replace") if b else "")
    return p.returncode, dec(so), dec(se)


def _on_signal(signum, _frame):
    # Turn SIGTERM/SIGHUP into an exception in the main thread, so the normal
    # finally/atexit path runs and kills every child.
    raise KeyboardInterrupt("signal %d" % signum)


def port_free(port):
    """True if nothing listens on 127.0.0.1:port (UDP or TCP)."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            if kind == socket.SOCK_STREAM:
                # like the servers do, so TIME_WAIT leftovers do not count as busy
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


# ------------------------------------------------------------ one scenario run

class Run:
    """One scenario run for one peer: upstream + peer processes, helpers to query
    the peer and to read the upstream's log."""

    def __init__(self, name, peer, case, tcp_upstream=False, hold=40, stale=False):
        self.name, self.peer, self.case, self.stale = name, peer, case, stale
        self.uport, self.lport, self.hport = PORTS[peer]
        self.tag = "%s.%s" % (name, peer)
        self.uplog = os.path.join(LOGS, self.tag + ".upstream.jsonl")
        if os.path.exists(self.uplog):
            os.remove(self.uplog)
        self.procs = []
        self.t0 = time.monotonic()
        self.events = []
        try:
            for port in (self.uport, self.lport, self.hport):
                if port and not port_free(port):
                    raise RuntimeError("port 127.0.0.1:%d is in use" % port)
            self.start_upstream(hold)
            {"unbound": self.start_unbound, "dnsdist": self.start_dnsdist,
             "nodedns": self.start_nodedns}[peer](tcp_upstream)
        except BaseException:
            self.stop()
            raise

    def _logfile(self, what):
        return os.path.join(LOGS, "%s.%s" % (self.tag, what))

    def _spawn(self, argv, logname):
        with open(self._logfile(logname + ".log"), "w") as fh:
            fh.write("# %s\n" % " ".join(argv))
            fh.flush()
            p = spawn(argv, fh, new_session=True)
        self.procs.append(p)
        return p

    def start_upstream(self, hold):
        self.upstream_proc = self._spawn(
            [sys.executable, UPSTREAM_PY, "--case", self.case, "--port", str(self.uport),
             "--log", self.uplog, "--hold", str(hold),
             "--max-runtime", str(UPSTREAM_MAX_RUNTIME)], "upstream-stderr")
        # wait for its "start" log line (it binds before logging it)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if os.path.exists(self.uplog) and '"start"' in open(self.uplog).read():
                return
            if self.upstream_proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("hostile upstream did not start, see %s"
                           % self._logfile("upstream-stderr.log"))

    def start_unbound(self, tcp):
        conf = self._logfile("unbound.conf")
        with open(conf, "w") as f:
            f.write(UNBOUND_CONF.format(
                lport=self.lport, uport=self.uport, d=LOGS,
                tcpline="  forward-tcp-upstream: yes\n" if tcp else "",
                staleline=UNBOUND_STALE if self.stale else ""))
        self.peer_proc = self._spawn(["unbound", "-d", "-c", conf], "peer")
        self._wait_up()

    def start_dnsdist(self, tcp):
        conf = self._logfile("dnsdist.conf")
        with open(conf, "w") as f:
            f.write(DNSDIST_CONF.format(lport=self.lport, uport=self.uport,
                                        tcponly=", tcpOnly=true" if tcp else "",
                                        checks=DNSDIST_STALE_CHECKS if self.stale else "",
                                        staleline=DNSDIST_STALE if self.stale else ""))
        self.peer_proc = self._spawn(
            ["dnsdist", "--supervised", "--disable-syslog", "-C", conf], "peer")
        self._wait_up()

    def start_nodedns(self, tcp):
        argv = [NODEDNS, "serve", "--listen", "127.0.0.1:%d" % self.lport,
                "--forward", ".=127.0.0.1:%d" % self.uport]
        if tcp:
            argv += ["--force-tcp", "."]
        argv += ["--workers", "1", "--search-rewrite", "off",
                 "--health", "127.0.0.1:%d" % self.hport] + NODEDNS_EXTRA
        self.peer_proc = self._spawn(argv, "peer")
        self._wait_up(ready_line="serving on")

    def _wait_up(self, ready_line=None):
        """Wait until the peer is ready. With ready_line, first watch its log for that
        text for up to 3 s (this sends nothing upstream); otherwise, or if the line does
        not show up, until it answers a kdig query."""
        peer_log = self._logfile("peer.log")

        def check_alive():
            if self.peer_proc.poll() is not None:
                raise RuntimeError("%s exited with %s at startup, see %s"
                                   % (self.peer, self.peer_proc.returncode, peer_log))

        ready = False
        if ready_line:
            until = time.monotonic() + 3
            while not ready and time.monotonic() < until:
                check_alive()
                with open(peer_log, errors="replace") as f:
                    ready = ready_line in f.read()
                if not ready:
                    time.sleep(0.05)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not ready:
            check_alive()
            _, out, _ = run_child(["kdig", "-p", str(self.lport), "@127.0.0.1", "+tcp",
                                   "+timeout=1", "+retry=0", "warmup.invalid.", "NS"],
                                  timeout=5)
            ready = "status:" in out or "->>HEADER" in out
            if not ready:
                if time.monotonic() > deadline:
                    raise RuntimeError("%s did not answer within %d s, see %s"
                                       % (self.peer, STARTUP_TIMEOUT, peer_log))
                time.sleep(0.1)
        time.sleep(1.2)  # let dnsdist mark its backend up after a health check
        self.ready_at = time.monotonic()

    def kdig(self, name, qtype="A", cls=None, tcp=False, timeout=15, extra=(), label=None):
        """Ask the peer with kdig; return (and record) a summary of the reply."""
        argv = ["kdig", "-p", str(self.lport), "@127.0.0.1", name, qtype, "+json",
                "+ignore", "+timeout=%d" % timeout, "+retry=0"]
        if cls:
            argv[4:4] = ["-c", cls]
        if tcp:
            argv.append("+tcp")
        argv += list(extra)
        t = time.monotonic()
        _, stdout, stderr = run_child(argv, timeout=timeout + 10)
        dt = time.monotonic() - t
        res = {"label": label, "cmd": " ".join(argv), "transport": "tcp" if tcp else "udp",
               "start": round(t - self.t0, 3), "ms": round(dt * 1000, 1)}
        try:
            j = json.loads(stdout) if stdout.strip() else {}
        except ValueError:
            j = {}
        if not j or "RCODE" not in j:
            res["result"] = "no answer"
            res["stderr"] = stderr.strip()[-300:]
        else:
            ans = j.get("answerRRs", [])
            auth = j.get("authorityRRs", [])
            opt = [x for x in j.get("additionalRRs", []) if x.get("TYPE") == 41]
            res.update(
                rcode=RCODES.get(j["RCODE"], str(j["RCODE"])), size=j.get("msgLength"),
                flags="".join(f for f in ("AA", "TC", "RD", "RA", "AD", "CD") if j.get(f)),
                an=j.get("ANCOUNT"), ns=j.get("NSCOUNT"), ar=j.get("ARCOUNT"),
                qd=j.get("QDCOUNT"),
                answer_ttls=sorted(set(x.get("TTL") for x in ans)),
                answer_types=sorted(set(x.get("TYPEname", str(x.get("TYPE"))) for x in ans)),
                answer_sample=[(x.get("NAME"), x.get("TTL"), x.get("TYPEname"),
                                x.get("rdataA") or x.get("rdataTXT") or x.get("RDATAHEX"))
                               for x in ans[:3]],
                auth_sample=[(x.get("NAME"), x.get("TTL"), x.get("TYPEname"))
                             for x in auth[:2]],
                opt=bool(opt), ede=[k for x in opt for k in x if "EDE" in k.upper()])
            # keep the OPT's options (EDE text, cookies, ...) as kdig decoded them
            for x in opt:
                for k, v in x.items():
                    if k not in ("NAME", "TYPE", "TYPEname", "CLASS", "TTL", "RDLENGTH"):
                        res.setdefault("opt_fields", {})[k] = v
        self.events.append(res)
        return res

    def upstream(self, pred=None):
        """The upstream's query / tcp-accept / tcp-close events (health checks removed)."""
        out = []
        if os.path.exists(self.uplog):
            with open(self.uplog) as f:
                for line in f:
                    e = json.loads(line)
                    if e.get("ev") == "query" and \
                            (e.get("qname") or "").startswith("health."):
                        continue
                    if e.get("ev") in ("query", "tcp-accept", "tcp-close") and \
                            (pred is None or pred(e)):
                        out.append(e)
        return out

    def upstream_for(self, qname):
        """Queries the upstream saw for qname, as 'transport/connN@seconds'."""
        want = qname.lower().rstrip(".") + "."
        return ["%s/conn%s@%.2fs" % (e["transport"], e.get("conn", "-"), e["t"])
                for e in self.upstream(lambda e: e.get("qname") == want)]

    def save_metrics(self):
        """nodedns only: keep its /metrics page next to the logs (best effort)."""
        if not self.hport or getattr(self, "peer_proc", None) is None or \
                self.peer_proc.poll() is not None:
            return
        try:
            url = "http://127.0.0.1:%d/metrics" % self.hport
            with urllib.request.urlopen(url, timeout=2) as resp:
                body = resp.read()
            with open(self._logfile("metrics.txt"), "wb") as f:
                f.write(body)
        except (OSError, ValueError):
            pass

    def stop(self):
        self.save_metrics()
        for p in reversed(self.procs):
            stop_proc(p)

    def note(self, **kw):
        kw["at"] = round(time.monotonic() - self.t0, 3)
        self.events.append(kw)


def save(name, data):
    with open(os.path.join(RES, name + ".json"), "w") as f:
        json.dump(data, f, indent=1, default=str)


def for_peers(peers, fn, name, *a, **kw):
    """Run fn(peer, ...) for every peer in parallel; save {peer: result} as name.json."""
    out = {}

    def go(peer):
        try:
            out[peer] = fn(peer, *a, **kw)
        except Exception:  # keep going, record the failure
            out[peer] = {"error": traceback.format_exc()}
    # daemon threads: an interrupted harness must not wait for them to finish
    ths = [threading.Thread(target=go, args=(p,), daemon=True) for p in peers]
    for t in ths:
        t.start()
    for t in ths:
        while t.is_alive():
            t.join(0.5)  # short joins keep Ctrl-C responsive
    save(name, out)
    for peer, r in out.items():
        if "error" in r:
            print("  %s: ERROR\n%s" % (peer, r["error"]), file=sys.stderr, flush=True)
    return out


# ------------------------------------------------------------------ scenarios
# Each sc_* function runs one scenario against one peer and returns a dict.

def sc_stall(peer, client_tcp, suffix="", q2_delay=2.0):
    """Case 1: the upstream stalls the TCP connection carrying 'stall1'."""
    name = "stall-" + ("tcpclient" if client_tcp else "udpclient") + suffix
    r = Run(name, peer, "stall-tcp", tcp_upstream=True, hold=40)
    try:
        res = {}
        # q1 is the stalled query; q2 (another name) is sent q2_delay s later while
        # q1 waits (a peer whose upstream timeout is <= q2_delay may be done with q1
        # by then: the -q2at1s variants send it after 1 s)
        th1 = threading.Thread(target=lambda: res.__setitem__(
            "q1", r.kdig("stall1.lab.", tcp=client_tcp, timeout=50,
                         label="q1 stall1 (stalled)")), daemon=True)
        th1.start()
        time.sleep(q2_delay)
        th2 = threading.Thread(target=lambda: res.__setitem__(
            "q2", r.kdig("second.lab.", tcp=client_tcp, timeout=50,
                         label="q2 second (sent t+%gs)" % q2_delay)), daemon=True)
        th2.start()
        th1.join(60)
        th2.join(60)
        # after q1 is over: a later query
        res["q3"] = r.kdig("third.lab.", tcp=client_tcp, timeout=20,
                           label="q3 third (after q1 done)")
        # wait until the upstream closed the held connection (40 s), then again
        left = 44 - (time.monotonic() - r.ready_at)
        if left > 0:
            time.sleep(left)
        res["q4"] = r.kdig("fourth.lab.", tcp=client_tcp, timeout=20,
                           label="q4 fourth (after hold ends)")
        res["q1again"] = r.kdig("stall1.lab.", tcp=client_tcp, timeout=20, label="q1 again")
        time.sleep(0.5)
        res["upstream"] = r.upstream()
        res["events"] = r.events
        return res
    finally:
        r.stop()


def sc_stall_single(peer):
    """Case 1, one query only: the stalled one, nothing else in flight; then again."""
    r = Run("stall-single", peer, "stall-tcp", tcp_upstream=True, hold=40)
    try:
        res = {"q1": r.kdig("stall1.lab.", timeout=45, label="q1 alone")}
        res["q1again"] = r.kdig("stall1.lab.", timeout=20, label="q1 again")
        res["q5"] = r.kdig("fifth.lab.", timeout=20, label="q5 other")
        time.sleep(0.5)
        res["upstream"] = r.upstream()
        res["events"] = r.events
        return res
    finally:
        r.stop()


def sc_tc(peer, tcp_upstream):
    """Case 2: every reply, UDP and TCP, is empty with TC=1."""
    r = Run("tc-both-" + ("tcpfwd" if tcp_upstream else "udpfwd"), peer, "tc-both",
            tcp_upstream=tcp_upstream)
    try:
        res = {}
        res["udp"] = r.kdig("tc1.lab.", timeout=20)
        res["udp_up"] = r.upstream_for("tc1.lab.")
        res["tcp"] = r.kdig("tc2.lab.", tcp=True, timeout=20)
        res["tcp_up"] = r.upstream_for("tc2.lab.")
        res["udp_again"] = r.kdig("tc1.lab.", timeout=20)
        res["udp_again_up"] = r.upstream_for("tc1.lab.")
        res["udp_edns"] = r.kdig("tc3.lab.", timeout=20, extra=["+bufsize=1232"])
        res["udp_edns_up"] = r.upstream_for("tc3.lab.")
        res["events"] = r.events
        res["upstream"] = r.upstream()
        return res
    finally:
        r.stop()


def sc_mal(peer, case):
    """Case 3: a malformed name in the answer; ask twice over UDP, then over TCP."""
    r = Run(case, peer, case)
    try:
        res = {}
        n = case.replace("mal-", "").replace("0x", "") + ".mal.lab."
        res["udp1"] = r.kdig(n, timeout=20)
        res["up_after1"] = r.upstream_for(n)
        res["udp2"] = r.kdig(n, timeout=20)
        res["up_after2"] = r.upstream_for(n)
        res["tcp3"] = r.kdig(n, tcp=True, timeout=20)
        res["up_after3"] = r.upstream_for(n)
        res["events"] = r.events
        return res
    finally:
        r.stop()


def sc_ttl(peer, case):
    """Case 4: TTLs with the top bit set; UDP, 2.2 s later UDP again, then TCP."""
    r = Run(case, peer, case)
    try:
        res = {}
        n = "ttl.lab."
        res["udp1"] = r.kdig(n, timeout=20)
        time.sleep(2.2)
        res["udp2"] = r.kdig(n, timeout=20)
        res["tcp3"] = r.kdig(n, tcp=True, timeout=20)
        res["up"] = r.upstream_for(n)
        res["events"] = r.events
        return res
    finally:
        r.stop()


def sc_big_tcp(peer):
    """Case 5a: 600 A records over TCP; over UDP the upstream sends TC=1."""
    r = Run("big-tcp", peer, "big-tcp")
    try:
        res = {}
        res["tcp1"] = r.kdig("big1.lab.", tcp=True, timeout=20)
        res["up1"] = r.upstream_for("big1.lab.")
        res["tcp2"] = r.kdig("big1.lab.", tcp=True, timeout=20)
        res["up2"] = r.upstream_for("big1.lab.")
        res["udp_noedns"] = r.kdig("big1.lab.", timeout=20)
        res["udp_edns1232"] = r.kdig("big1.lab.", timeout=20, extra=["+bufsize=1232"])
        res["udp_first_noedns"] = r.kdig("big2.lab.", timeout=20)
        res["up_big2_after_udp"] = r.upstream_for("big2.lab.")
        res["tcp_big2"] = r.kdig("big2.lab.", tcp=True, timeout=20)
        res["up_big2"] = r.upstream_for("big2.lab.")
        res["events"] = r.events
        return res
    finally:
        r.stop()


def sc_big_udp(peer):
    """Case 5b: ~6,000-byte UDP replies without TC (the EDNS size is ignored)."""
    r = Run("big-udp-notc", peer, "big-udp-notc")
    try:
        res = {}
        res["udp_noedns"] = r.kdig("bigu1.lab.", timeout=20)
        res["up1"] = r.upstream_for("bigu1.lab.")
        res["udp_edns1232"] = r.kdig("bigu2.lab.", timeout=20, extra=["+bufsize=1232"])
        res["up2"] = r.upstream_for("bigu2.lab.")
        res["udp_edns65000"] = r.kdig("bigu3.lab.", timeout=20, extra=["+bufsize=65000"])
        res["up3"] = r.upstream_for("bigu3.lab.")
        res["tcp"] = r.kdig("bigu4.lab.", tcp=True, timeout=20)
        res["up4"] = r.upstream_for("bigu4.lab.")
        res["tcp_again_bigu1"] = r.kdig("bigu1.lab.", tcp=True, timeout=20)
        res["up1_after"] = r.upstream_for("bigu1.lab.")
        res["events"] = r.events
        return res
    finally:
        r.stop()


def sc_chaos(peer):
    """Case 6: CH TXT version.bind & co.; the upstream would answer 'upstream-secret'."""
    r = Run("chaos", peer, "chaos")
    try:
        res = {}
        for n in ("version.bind.", "id.server.", "hostname.bind.", "version.server."):
            for tcp in (False, True):
                k = n + ("tcp" if tcp else "udp")
                res[k] = r.kdig(n, "TXT", cls="CH", tcp=tcp, timeout=10)
        res["upstream"] = r.upstream()
        res["events"] = r.events
        return res
    finally:
        r.stop()


def sc_case7(peer):
    """Case 7: query7.py's odd queries against the peer (upstream in 'normal' mode)."""
    r = Run("case7", peer, "normal")
    try:
        out = {}
        for tcp in (False, True):
            kind = "tcp" if tcp else "udp"
            f = os.path.join(RES, "case7.%s.%s.json" % (peer, kind))
            run_child([sys.executable, QUERY7_PY, "--port", str(r.lport), "--uplog", r.uplog,
                       "--out", f] + (["--tcp"] if tcp else []), timeout=120)
            with open(f) as fh:
                out[kind] = json.load(fh)
        return out
    finally:
        r.stop()


def knot_case7():
    """Case 7 against Knot, authoritative for q7.lab (no upstream involved)."""
    if not port_free(KNOT_PORT):
        raise RuntimeError("port 127.0.0.1:%d is in use" % KNOT_PORT)
    rundir = os.path.join(os.path.dirname(LOGS), "knot")
    os.makedirs(rundir, exist_ok=True)
    conf = os.path.join(LOGS, "knot.conf")
    with open(os.path.join(KNOT_DIR, "knot.conf")) as f:
        template = f.read()
    with open(conf, "w") as f:
        f.write(template.format(port=KNOT_PORT, rundir=rundir,
                                zonefile=os.path.join(KNOT_DIR, "q7.lab.zone")))
    with open(os.path.join(LOGS, "case7.knot.log"), "w") as fh:
        p = spawn(["knotd", "-c", conf], fh, new_session=True)
    try:
        # wait until Knot answers for its zone
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if p.poll() is not None:
                raise RuntimeError("knotd exited at startup, see %s/case7.knot.log" % LOGS)
            _, o, _ = run_child(["kdig", "-p", str(KNOT_PORT), "@127.0.0.1", "q7.lab.",
                                 "SOA", "+timeout=1", "+retry=0"], timeout=5)
            if "NOERROR" in o or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        out = {}
        for tcp in (False, True):
            kind = "tcp" if tcp else "udp"
            f = os.path.join(RES, "case7.knot.%s.json" % kind)
            run_child([sys.executable, QUERY7_PY, "--port", str(KNOT_PORT), "--out", f]
                      + (["--tcp"] if tcp else []), timeout=120)
            with open(f) as fh:
                out[kind] = json.load(fh)
        save("case7-knot", {"knot": out})
    finally:
        stop_proc(p)


def sc_stale(peer, case):
    """Case 8 (RFC 8767): stale1 is answered once with TTL 1, then the upstream goes silent
    (or SERVFAILs). Ask it with EDNS (every time: dnsdist's cache key is the whole query)
    fresh; 3 s later, expired (Unbound counts TTLs in whole seconds: an answer with TTL 1 may
    still be served with TTL 0 up to 2 s after it came); again at once; 7 s after the expired
    query (its upstream query has failed: 2 s + 4 s for nodedns); 40 s after it (a 30 s
    failure recheck window is over). kdig waits 5 s (glibc's resolver default). up_<step>
    lists the upstream's queries for the name from that step's query until the next one."""
    r = Run(case.replace("-silent", ""), peer, case, stale=True)
    n, edns = "stale1.lab.", ["+bufsize=1232"]
    try:
        res, up = {}, []

        def ask(step):
            # the upstream's queries since the previous step belong to that step
            if up:
                res["up_" + up[-1][0]] = r.upstream_for(n)[up[-1][1]:]
            up.append((step, len(r.upstream_for(n))))
            res[step] = r.kdig(n, timeout=5, extra=edns, label=step)

        def sleep_until(t):
            if t > time.monotonic():
                time.sleep(t - time.monotonic())

        t = time.monotonic()
        ask("fresh")
        sleep_until(t + 3.0)
        t_exp = time.monotonic()
        ask("expired")
        ask("again")
        sleep_until(t_exp + 7.0)
        ask("at7s")
        sleep_until(t_exp + 40.0)
        ask("at40s")
        time.sleep(7.0)  # what the last query set off upstream
        res["up_at40s"] = r.upstream_for(n)[up[-1][1]:]
        res["events"] = r.events
        res["upstream"] = r.upstream()
        return res
    finally:
        r.stop()


def build_scenarios():
    """name -> function(peers). 'in_all' marks the ones `all` runs."""
    sc = {
        "stall-udpclient": lambda ps: for_peers(ps, sc_stall, "stall-udpclient", False),
        "stall-tcpclient": lambda ps: for_peers(ps, sc_stall, "stall-tcpclient", True),
        "stall-single": lambda ps: for_peers(ps, sc_stall_single, "stall-single"),
        "tc-udpfwd": lambda ps: for_peers(ps, sc_tc, "tc-udpfwd", False),
        "tc-tcpfwd": lambda ps: for_peers(ps, sc_tc, "tc-tcpfwd", True),
    }
    for c in ("mal-ptr-loop", "mal-ptr-midlabel", "mal-ptr-midlabel-ext", "mal-label-0x40",
              "mal-name-long", "mal-cname-loop"):
        sc[c] = (lambda c: lambda ps: for_peers(ps, sc_mal, c, c))(c)
    for c in ("ttl-80000064", "ttl-ffffffff", "nodata-soa-ffffffff",
              "nodata-soa-both-ffffffff"):
        sc[c] = (lambda c: lambda ps: for_peers(ps, sc_ttl, c, c))(c)
    sc["big-tcp"] = lambda ps: for_peers(ps, sc_big_tcp, "big-tcp")
    sc["big-udp-notc"] = lambda ps: for_peers(ps, sc_big_udp, "big-udp-notc")
    sc["chaos"] = lambda ps: for_peers(ps, sc_chaos, "chaos")
    sc["case7"] = lambda ps: for_peers(ps, sc_case7, "case7")
    sc["case7-knot"] = lambda ps: knot_case7()
    for c in ("stale-silent", "stale-servfail", "stale-name-silent"):
        n = c.replace("-silent", "")
        sc[n] = (lambda n, c: lambda ps: for_peers(ps, sc_stale, n, c))(n, c)
    for tcp in (False, True):
        n = "stall-%s-q2at1s" % ("tcpclient" if tcp else "udpclient")
        sc[n] = (lambda n, tcp: lambda ps: for_peers(ps, sc_stall, n, tcp, "-q2at1s",
                                                     1.0))(n, tcp)
    # a repeat of stall-udpclient, to see whether its timings hold (not part of `all`)
    sc["stall-udpclient-rep"] = lambda ps: for_peers(ps, sc_stall, "stall-udpclient-rep",
                                                      False, "-rep")
    return sc


SCENARIOS = build_scenarios()
NOT_IN_ALL = ("stall-udpclient-rep",)


def default_nodedns():
    """The repository's build output, if it exists (bench/hostile -> build/proxy)."""
    p = os.path.normpath(os.path.join(HERE, "..", "..", "build", "proxy", "nodedns"))
    return p if os.access(p, os.X_OK) else None


def main():
    global LOGS, RES, NODEDNS, NODEDNS_EXTRA
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", help="scenario names, or 'all'")
    ap.add_argument("--out", help="output directory (default: a new one under /tmp)")
    ap.add_argument("--peers", help="comma-separated subset of %s (default: every one "
                    "that is installed / given)" % ",".join(ALL_PEERS))
    ap.add_argument("--nodedns", help="path of the nodedns binary (default: "
                    "../../build/proxy/nodedns from this script, if it exists)")
    ap.add_argument("--nodedns-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for `nodedns serve`, repeatable "
                    "(e.g. --nodedns-arg=--chaos-text=nodedns)")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    a = ap.parse_args()

    if a.list:
        for n, f in SCENARIOS.items():
            print(n + ("   (not in 'all')" if n in NOT_IN_ALL else ""))
        return 0
    if not a.scenarios:
        ap.error("name at least one scenario, or 'all' (see --list)")
    names = [n for n in SCENARIOS if n not in NOT_IN_ALL] if a.scenarios == ["all"] \
        else a.scenarios
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        ap.error("unknown scenario(s): %s (see --list)" % ", ".join(unknown))

    NODEDNS = os.path.abspath(a.nodedns) if a.nodedns else default_nodedns()
    NODEDNS_EXTRA = list(a.nodedns_arg)
    if a.peers:
        peers = [p.strip() for p in a.peers.split(",") if p.strip()]
        bad = [p for p in peers if p not in ALL_PEERS]
        if bad:
            ap.error("unknown peer(s): %s" % ", ".join(bad))
    else:
        peers = [p for p in ("unbound", "dnsdist") if shutil.which(p)]
        if NODEDNS:
            peers.append("nodedns")
    if "nodedns" in peers and not (NODEDNS and os.access(NODEDNS, os.X_OK)):
        ap.error("peer nodedns needs --nodedns PATH (an executable)")
    for tool in ["kdig"] + [p for p in peers if p != "nodedns"] + \
            (["knotd"] if "case7-knot" in names else []):
        if not shutil.which(tool):
            ap.error("%s is not installed" % tool)

    # every port this run will use must be free (other servers may be running)
    ports = [port for p in peers for port in PORTS[p] if port]
    if "case7-knot" in names:
        ports.append(KNOT_PORT)
    busy = [port for port in ports if not port_free(port)]
    if busy:
        print("error: port(s) in use on 127.0.0.1: %s" % ", ".join(map(str, busy)),
              file=sys.stderr)
        return 2

    out = os.path.abspath(a.out) if a.out else tempfile.mkdtemp(prefix="hostile-")
    LOGS, RES = os.path.join(out, "logs"), os.path.join(out, "results")
    os.makedirs(LOGS, exist_ok=True)
    os.makedirs(RES, exist_ok=True)
    print("output: %s" % out, flush=True)
    print("peers: %s%s" % (",".join(peers),
                           " (nodedns: %s)" % NODEDNS if "nodedns" in peers else ""),
          flush=True)

    atexit.register(cleanup_all)
    # SIGINT explicitly too: a harness started in the background inherits it ignored
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:
        for n in names:
            t = time.monotonic()
            SCENARIOS[n](peers)
            print("done %s in %.1fs" % (n, time.monotonic() - t), flush=True)
    except KeyboardInterrupt:
        print("interrupted; stopping every process started", file=sys.stderr, flush=True)
        return 130
    finally:
        cleanup_all()
    print("results: %s" % RES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
