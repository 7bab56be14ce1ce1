// `nodedns node-cache`; see node_cache_command.h.
#include "nodecache/node_cache_command.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "corefile/config.h"
#include "corefile/syntax.h"
#include "nodecache/corefile_template.h"
#include "nodecache/kubedns_config.h"
#include "nodesetup/local_addresses.h"
#include "nodesetup/netfilter_rules.h"
#include "nodesetup/privileges.h"
#include "proxy/coredns_metrics.h"
#include "resolvconf/resolv_conf.h"

namespace nodedns::nodecache {

namespace {

// Writes `text` to `path` through a new file renamed over it, so that a reader never sees half of
// it, and so that it works after the drop to -runas in a directory anyone may write (an emptyDir
// is 0777) where the old file is root's; else in place (a file handed to the new uid).
bool WriteReplacing(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (out && rename(tmp.c_str(), path.c_str()) == 0) return true;
  }
  unlink(tmp.c_str());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  return static_cast<bool>(out);
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

void Log(const std::string& line) {
  std::fprintf(stderr, "nodedns node-cache: %s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace

NodeCacheSource::NodeCacheSource(NodeCacheFlags flags, Getenv getenv)
    : flags_(std::move(flags)), getenv_(std::move(getenv)) {}

std::string NodeCacheSource::KubeDnsDir() const {
  return KubeDnsConfigDir(flags_.kubedns_cm, [](const std::string& p) { return !Exists(p); });
}

std::string NodeCacheSource::Fingerprint() const {
  std::string f;
  auto add = [&](const std::string& path) {
    absl::StrAppend(&f, path, "\n", ReadFile(path).value_or("<missing>"), "\n");
  };
  add(flags_.base_corefile);
  if (!Exists(flags_.base_corefile)) add(flags_.EffectiveCorefile());
  if (const std::string dir = KubeDnsDir(); !dir.empty()) {
    add(absl::StrCat(dir, "/", kStubDomainsFile));
    add(absl::StrCat(dir, "/", kUpstreamNameserversFile));
  }
  // The upstreams named by resolv.conf paths are read at load; /etc/resolv.conf is the common one.
  add(resolvconf::kDefaultPath);
  return f;
}

bool NodeCacheSource::Changed() { return Fingerprint() != last_inputs_; }

absl::StatusOr<proxy::ServeConfig> NodeCacheSource::Load() {
  auto full = LoadFull();
  if (!full.ok()) return full.status();
  for (const auto& w : full->warnings) Log(w);
  return std::move(full->serve);
}

absl::StatusOr<NodeCacheConfig> NodeCacheSource::LoadFull() {
  last_inputs_ = Fingerprint();
  const std::string conf = flags_.EffectiveCorefile();
  std::string text;
  std::string filename = conf;
  if (auto base = ReadFile(flags_.base_corefile)) {
    // As node-cache: the base Corefile with the variables substituted and the kube-dns
    // ConfigMap's stub domains appended, written to -conf for CoreDNS (here: for operators).
    CorefileInputs in;
    in.base_name = flags_.base_corefile;
    in.local_ip = flags_.local_ip;
    in.port = flags_.dns_port;
    in.upstream_svc = flags_.upstream_svc;
    if (auto ip = UpstreamServiceIp(flags_.upstream_svc, getenv_); ip.ok()) in.cluster_dns_ip = *ip;
    if (const std::string dir = KubeDnsDir(); !dir.empty()) {
      auto kube = ReadKubeDnsConfigDir(dir);
      if (!kube.ok()) {
        if (server_ != nullptr) server_->CountSetupError(proxy::kSetupErrorConfigMap);
        return absl::InvalidArgumentError(
            absl::StrCat("-kubednscm ", dir, ": ", kube.status().message()));
      }
      in.kube_dns = *std::move(kube);
    }
    auto generated = GenerateCorefile(*base, in);
    if (!generated.ok()) {
      if (server_ != nullptr) server_->CountSetupError(proxy::kSetupErrorConfigMap);
      return generated.status();
    }
    text = *std::move(generated);
    if (!WriteReplacing(conf, text)) {
      // Not fatal: nodedns serves from memory; the file is for people to read.
      if (server_ != nullptr) server_->CountSetupError(proxy::kSetupErrorConfigMap);
      Log(absl::StrCat("cannot write the generated Corefile to ", conf,
                       "; serving it anyway (errors below name ", flags_.base_corefile, ")"));
      filename = flags_.base_corefile;
    }
  } else if (auto whole = ReadFile(conf)) {
    // No base Corefile: node-cache leaves -conf as it is and CoreDNS reads it.
    text = *std::move(whole);
  } else {
    return absl::NotFoundError(absl::StrCat("-basecorefile ", flags_.base_corefile, " and -conf ",
                                            conf, ": neither can be read"));
  }
  int port = 53;
  if (!absl::SimpleAtoi(flags_.dns_port, &port)) port = 53;
  auto parsed = corefile::ParseCorefile(text, filename, corefile::ProcessEnvironment, port);
  if (!parsed.ok()) return parsed.status();
  auto blocks = corefile::InterpretCorefile(*parsed, filename);
  if (!blocks.ok()) return blocks.status();
  TranslateOptions o;
  o.filename = filename;
  o.read_nameservers = [](const std::string& path) {
    return resolvconf::ReadResolvConfNameservers(path);
  };
  if (auto search = resolvconf::ReadResolvConfSearch(resolvconf::kDefaultPath); search.ok()) {
    o.node_search = *std::move(search);
  }
  auto config = TranslateCorefile(*blocks, o);
  if (!config.ok()) return config.status();
  // -metrics-listen-address: node-cache's own metrics port serves the same registry.
  auto metrics = ParseHostPort(flags_.metrics_listen_address);
  if (!metrics.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("-metrics-listen-address ",
                                                   flags_.metrics_listen_address, ": ",
                                                   metrics.status().message()));
  }
  bool merged = false;
  for (auto& e : config->serve.http) {
    if (e.addr.ToString() == metrics->ToString()) merged = e.metrics = e.audit = true;
  }
  if (!merged) {
    config->serve.http.push_back({.addr = *metrics,
                                  .health = false,
                                  .metrics = true,
                                  .audit = true,
                                  .flag = "-metrics-listen-address"});
  }
  config->serve.coredns_metrics = true;     // coredns_nodecache_setup_errors_total lives there
  config->serve.allow = flags_.allow_list;  // here, so that reloads keep it
  config->serve.discover_pods = flags_.discover_pods;
  return config;
}

int RunNodeCacheCommand(std::span<const std::string> args) {
  auto flags = ParseNodeCacheFlags(args);
  if (!flags.ok()) {
    std::fprintf(stderr, "nodedns node-cache: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  if (flags->help_requested) {
    std::fputs(UsageText().c_str(), stdout);
    return 0;
  }
  if (flags->version) {
    std::puts("nodedns 0.1.0 (node-cache compatible)");
    return 0;
  }
  if (flags->plugins) {
    std::puts(
        "Server types:\n  dns\n\nCaddyfile loaders:\n  flag\n  default\n\nOther plugins:\n"
        "  dns.bind\n  dns.cache\n  dns.errors\n  dns.forward\n  dns.health\n  dns.log\n"
        "  dns.loop\n  dns.prometheus\n  dns.ready\n  dns.reload");
    return 0;
  }
  auto source = std::make_unique<NodeCacheSource>(*flags, [](const char* n) { return getenv(n); });
  auto config = source->LoadFull();
  if (!config.ok()) {
    std::fprintf(stderr, "nodedns node-cache: %s\n",
                 std::string(config.status().message()).c_str());
    return 2;
  }
  for (const auto& w : config->warnings) Log(w);
  // Reloads: CoreDNS's `reload` polls at its interval; node-cache re-reads its inputs every
  // 10 s and, with -reloadwithsignal, signals a reload itself. Either way: poll the inputs.
  // SIGUSR1 always reloads, as in CoreDNS.
  const bool poll = config->reload_interval_ms != 0 || flags->reload_with_signal;
  source->set_poll_interval_ms(!poll ? 0
                               : config->reload_interval_ms != 0
                                   ? std::min(config->reload_interval_ms, kConfigSyncMs)
                                   : kConfigSyncMs);
  config->serve.quiet = flags->quiet;
  config->serve.handover_path = flags->handover;
  config->serve.handover_cache_percent = flags->handover_cache_percent;
  // A kubelet restarts a container that exits: the old version would take the sockets back.
  config->serve.handover_linger = true;
  // Node setup: a check that no other nodedns holds the rules' table (-setupiptables), before
  // anything is touched; the interface and addresses (-setupinterface), before Server::Create
  // binds them; the rules, after.
  std::unique_ptr<nodesetup::LocalAddresses> local;
  std::unique_ptr<nodesetup::NetfilterRules> rules;
  // Undoes the node changes on every way out once they are made (unless -skipteardown, which
  // leaves them for a restarted node-cache or for pods during an upgrade). Before serving, only
  // what this run added: an address already there may be another instance's.
  bool served = false;
  bool handed_over = false;  // the successor owns the node's setup now
  auto teardown = [&] {
    if (flags->skip_teardown || handed_over) return;
    if (rules != nullptr && rules->AnotherInstanceHolds()) {
      // A successor serves next to this process (its handover failed): the addresses and accept
      // rules are its too.
      if (absl::Status st = rules->ReleaseTable(); !st.ok()) {
        Log(absl::StrCat("-setupiptables teardown: ", st.message()));
      }
      return;
    }
    if (rules != nullptr) {
      if (absl::Status st = rules->Teardown(); !st.ok()) {
        Log(absl::StrCat("-setupiptables teardown: ", st.message()));
      }
    }
    if (local != nullptr) {
      if (absl::Status st = local->Teardown(/*only_added=*/!served); !st.ok()) {
        Log(absl::StrCat("-setupinterface teardown: ", st.message()));
      }
    }
  };
  // A running nodedns at -handover hands its sockets over; while it drains it still holds its
  // rules' table, so this one uses the other name (NetfilterRules::UseFreeTable).
  std::unique_ptr<proxy::HandoverClient> predecessor = proxy::FindPredecessor(config->serve);
  const bool succeeding = predecessor != nullptr &&
                          predecessor->outcome() != proxy::HandoverClient::Outcome::kNoPredecessor;
  if (flags->setup_iptables) {
    nodesetup::NetfilterSpec spec;
    spec.ips = flags->local_ips;
    spec.dns_port = static_cast<uint16_t>(std::stoi(flags->dns_port));
    spec.health_port = static_cast<uint16_t>(std::stoi(flags->health_port));
    // Owned by this process: the kernel removes the rules however it exits, so that pods reach
    // CoreDNS through kube-proxy while nodedns is gone. -skipteardown asks for rules that stay.
    spec.owned = !flags->skip_teardown;
    auto made = nodesetup::NetfilterRules::Create(std::move(spec));
    absl::Status st = made.status();
    if (made.ok()) {
      rules = *std::move(made);
      st = succeeding ? rules->UseFreeTable() : rules->CheckNotHeld();
    }
    if (!st.ok()) {
      std::fprintf(stderr, "nodedns node-cache: -setupiptables: %s\n",
                   std::string(st.message()).c_str());
      teardown();
      return 2;
    }
  }
  if (flags->setup_interface) {
    auto made = nodesetup::LocalAddresses::Create(flags->interface_name, flags->local_ips);
    absl::Status st = made.status();
    if (made.ok()) {
      local = *std::move(made);
      st = local->Ensure().status();
    }
    if (!st.ok()) {
      std::fprintf(stderr, "nodedns node-cache: -setupinterface: %s\n",
                   std::string(st.message()).c_str());
      teardown();
      return 2;
    }
  }
  auto server = proxy::Server::Create(std::move(config->serve), std::move(predecessor));
  if (!server.ok()) {
    std::fprintf(stderr, "nodedns node-cache: %s\n",
                 std::string(server.status().message()).c_str());
    teardown();
    return 2;
  }
  // The NOTRACK rules once the sockets are bound: from then on queries to the local IPs reach
  // nodedns; before, the ClusterIP's still went to CoreDNS through kube-proxy, and none was sent
  // to an address with no socket behind it (a restart under load loses none that way).
  if (rules != nullptr) {
    if (absl::Status st = rules->Ensure().status(); !st.ok()) {
      std::fprintf(stderr, "nodedns node-cache: -setupiptables: %s\n",
                   std::string(st.message()).c_str());
      teardown();
      return 2;
    }
  }
  if (rules != nullptr) {
    // The successor's table is in place before it confirms (Run): dropping this one's then
    // leaves the node's rules whole.
    nodesetup::NetfilterRules* nr = rules.get();
    (*server)->SetOnHandedOver([nr, &handed_over] {
      handed_over = true;
      if (absl::Status st = nr->ReleaseTable(); !st.ok()) {
        Log(absl::StrCat("-setupiptables: after the handover: ", st.message()));
      }
    });
  } else {
    (*server)->SetOnHandedOver([&handed_over] { handed_over = true; });
  }
  source->set_server(server->get());
  (*server)->SetConfigSource(std::move(source));
  proxy::Server* srv = server->get();
  if (local != nullptr || rules != nullptr) {
    // node-cache re-checks every -syncinterval: someone (a CNI, an operator, networkd, a firewall
    // reload) may have removed the interface, an address or a rule, and pods would lose their DNS
    // until it is back.
    nodesetup::LocalAddresses* la = local.get();
    nodesetup::NetfilterRules* nr = rules.get();
    const uint64_t every_ms =
        static_cast<uint64_t>(std::min<int64_t>(flags->EffectiveSyncIntervalSeconds(),
                                                std::numeric_limits<int64_t>::max() / 1000)) *
        1000;
    srv->SetPeriodic(every_ms, [srv, la, nr] {
      if (la != nullptr) {
        // As node-cache counts them: a check that fails is interface_check; a repair, needed
        // or failed, interface_add (a kernel without dummy support shows there).
        auto check = la->Check();
        if (!check.ok()) {
          srv->CountSetupError(proxy::kSetupErrorInterfaceCheck);
          Log(absl::StrCat("-setupinterface: ", check.status().message()));
        } else if (!check->ok()) {
          srv->CountSetupError(proxy::kSetupErrorInterfaceAdd);
          auto r = la->Ensure();
          if (!r.ok()) {
            Log(absl::StrCat("-setupinterface: ", r.status().message()));
          } else {
            Log(absl::StrCat(
                "-setupinterface: ", la->interface_name(), " had lost its setup; ",
                r->created_interface ? "re-created it, " : "",
                r->brought_up ? "brought it up, " : "", "added ",
                r->added.empty() ? std::string("no addresses") : absl::StrJoin(r->added, " ")));
          }
        }
      }
      if (nr != nullptr) {
        auto r = nr->Ensure();
        if (!r.ok()) {
          srv->CountSetupError(proxy::kSetupErrorIptables);
          Log(absl::StrCat("-setupiptables: ", r.status().message()));
        } else if (r->changed()) {
          srv->CountSetupError(proxy::kSetupErrorIptables);
          std::vector<std::string> what = r->accept_restored;
          if (r->table_replaced)
            what.insert(what.begin(), absl::StrCat("table inet ", nr->table()));
          Log(absl::StrCat("-setupiptables: rules had changed; restored ",
                           absl::StrJoin(what, ", ")));
        }
      }
    });
  }
  // Root is for setup and binding; the serving threads, started by now, give it up.
  const nodesetup::RunAs run_as = *nodesetup::ParseRunAs(flags->run_as);
  const bool keep_setup_caps = local != nullptr || rules != nullptr;
  const std::string conf_path = flags->EffectiveCorefile();
  if (geteuid() == 0 && run_as.uid != 0) {
    srv->SetOnServing([run_as, keep_setup_caps, conf_path, quiet = flags->quiet,
                       discover = flags->discover_pods]() -> absl::Status {
      // Reloads rewrite the generated Corefile: hand it to the new owner where CAP_CHOWN allows;
      // otherwise reloads replace it through its directory (WriteReplacing).
      if (chown(conf_path.c_str(), run_as.uid, run_as.gid) != 0 && errno != ENOENT &&
          errno != EPERM) {
        Log(absl::StrCat("cannot hand ", conf_path, " to uid ", run_as.uid, ": ",
                         std::strerror(errno)));
      }
      if (absl::Status st = nodesetup::DropPrivileges(run_as, keep_setup_caps, discover);
          !st.ok()) {
        return absl::Status(st.code(), absl::StrCat("-runas: ", st.message()));
      }
      if (!quiet) {
        Log(absl::StrCat("running as uid ", run_as.uid, " gid ", run_as.gid,
                         "; the node sync thread keeps ", nodesetup::ThreadCapabilities(),
                         discover ? " (pod discovery too)" : "", ", the others none"));
      }
      return absl::OkStatus();
    });
  }
  if (!flags->pidfile.empty()) {
    // CoreDNS writes its pid once serving is about to start; node-cache waits for the file.
    std::ofstream pid(flags->pidfile, std::ios::trunc);
    pid << getpid() << "\n";
    if (!pid) {
      std::fprintf(stderr, "nodedns node-cache: -pidfile %s: cannot write\n",
                   flags->pidfile.c_str());
      teardown();
      return 2;
    }
  }
  const absl::Status st = (*server)->Run();
  // After a handover the pid file is the successor's.
  if (!flags->pidfile.empty() && !handed_over) unlink(flags->pidfile.c_str());
  served = st.ok();
  teardown();
  if (!st.ok()) {
    std::fprintf(stderr, "nodedns node-cache: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace nodedns::nodecache
