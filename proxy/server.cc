// Server lifecycle; see server.h.
#include "proxy/server.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proxy/metrics.h"

namespace nodedns::proxy {

Server::Server(ServeConfig config) : config_(std::move(config)) {}

absl::StatusOr<std::unique_ptr<Server>> Server::Create(ServeConfig config) {
  if (auto st = config.cache.Validate(); !st.ok()) return st;
  if (config.workers == 0) config.workers = std::max(1u, std::thread::hardware_concurrency());
  if (config.listen.empty()) {
    return absl::InvalidArgumentError("--listen: no address to listen on");
  }
  std::unique_ptr<Server> s(new Server(std::move(config)));
  s->cache_ = std::make_unique<cache::ResponseCache>(s->config_.cache);
  if (s->config_.search_rewrite) {
    auto rewrite = SharedSearchRewrite::Create(s->config_.cluster_domain, s->config_.node_search,
                                               s->config_.search_pins);
    if (!rewrite.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("search rewrite (--cluster-domain, --node-search, --search-path): ",
                       rewrite.status().message()));
    }
    s->rewrite_ = *std::move(rewrite);
  }
  for (unsigned i = 0; i < s->config_.workers; ++i) {
    WorkerSockets socks;
    for (const auto& addr : s->config_.listen) {
      for (bool tcp : {false, true}) {
        auto fd = OpenSocket(addr, tcp);
        if (!fd.ok()) {
          for (int f : socks.udp) close(f);
          for (int f : socks.tcp) close(f);
          return absl::Status(fd.status().code(),
                              absl::StrCat("--listen: ", fd.status().message()));
        }
        (tcp ? socks.tcp : socks.udp).push_back(*fd);
      }
    }
    s->workers_.push_back(std::make_unique<Worker>(static_cast<int>(i), s->config_, *s->cache_,
                                                   s->rewrite_.get(), std::move(socks)));
  }
  // The health port too is bound here, before anything runs: an unusable --health exits 2 with
  // one line, like an unusable --listen.
  if (s->config_.health) {
    Server* self = s.get();
    s->health_ = std::make_unique<HttpServer>(*s->config_.health, [self](std::string_view method,
                                                                         std::string_view path) {
      if (method != "GET") return HttpResponse{405, "text/plain; charset=utf-8", "GET only\n"};
      if (path == "/health") return HttpResponse{200, "text/plain; charset=utf-8", "ok\n"};
      if (path == "/audit" || path == "/audit.txt") {
        std::vector<std::vector<WastedQueryTracker::ClientCount>> snaps;
        for (const auto& w : self->workers_) snaps.push_back(w->WastedSnapshot());
        if (path == "/audit.txt") {
          return HttpResponse{200, "text/plain; charset=utf-8",
                              RenderWastedQueriesTable(snaps, self->config_.cluster_domain)};
        }
        return HttpResponse{200, "application/json",
                            RenderWastedQueriesJson(snaps, self->config_.cluster_domain)};
      }
      if (path == "/metrics") {
        return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", self->RenderMetrics()};
      }
      return HttpResponse{404, "text/plain; charset=utf-8", "not found\n"};
    });
    if (auto st = s->health_->Listen(); !st.ok()) return st;
  }
  return s;
}

Server::~Server() {
  for (auto& w : workers_) w->Join();
}

std::string Server::RenderMetrics() const {
  std::vector<const WorkerCounters*> counters;
  for (const auto& w : workers_) counters.push_back(&w->counters());
  const cache::CacheStats st = cache_->Stats();
  SharedSearchRewrite::Stats rw;
  if (rewrite_) rw = rewrite_->GetStats(uv_hrtime() / 1'000'000);
  const Gauge gauges[] = {
      {"nodedns_search_rewrite_learned_clients",
       "Clients whose search path (namespace) is currently known from their own queries",
       static_cast<double>(rw.learned_clients)},
      {"nodedns_search_rewrite_clients_learned_total",
       "Times a client's namespace was learned (a relearn counts again)",
       static_cast<double>(rw.counters.clients_learned), "counter"},
      {"nodedns_search_rewrite_clients_unlearned_total",
       "Learned clients dropped because their queries named another namespace",
       static_cast<double>(rw.counters.unlearned), "counter"},
      {"nodedns_search_rewrite_clients_quarantined_total",
       "Client addresses that changed namespace twice within the learning TTL (shared addresses)",
       static_cast<double>(rw.counters.quarantined), "counter"},
      {"nodedns_cache_entries", "Entries in the cache", static_cast<double>(st.entries)},
      {"nodedns_cache_bytes", "Accounted bytes in the cache (entries, keys, tables)",
       static_cast<double>(st.bytes)},
      {"nodedns_cache_capacity_bytes", "Configured cache capacity",
       static_cast<double>(st.capacity_bytes)},
      {"nodedns_cache_retired_bytes", "Bytes retired and waiting for a QSBR grace period",
       static_cast<double>(st.retired_bytes)},
      {"nodedns_cache_evictions", "Entries evicted to make room (since start)",
       static_cast<double>(st.evictions)},
      {"nodedns_cache_expired_evictions", "Expired entries removed (since start)",
       static_cast<double>(st.expired_evictions)},
      {"nodedns_workers", "Worker threads", static_cast<double>(workers_.size())},
  };
  return RenderPrometheus(counters, gauges);
}

absl::Status Server::Run() {
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &shutdown_, [](uv_async_t* h) { uv_stop(h->loop); });
  uv_signal_init(&loop_, &sigint_);
  uv_signal_init(&loop_, &sigterm_);
  auto on_signal = [](uv_signal_t* h, int) { uv_stop(h->loop); };
  uv_signal_start(&sigint_, on_signal, SIGINT);
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  // A client that goes away mid-reply must not kill the process.
  signal(SIGPIPE, SIG_IGN);

  absl::Status status;
  for (auto& w : workers_) {
    status = w->Start();
    if (!status.ok()) break;
  }
  if (status.ok() && health_) status = health_->Start();
  if (status.ok()) {
    std::string addrs;
    for (const auto& a : config_.listen)
      absl::StrAppend(&addrs, addrs.empty() ? "" : " ", a.ToString());
    // What the search rewrite will assume about pods' search paths, so that an operator can
    // check it against a pod's resolv.conf (docs/search-rewrite.md).
    const std::string rewrite =
        rewrite_
            ? absl::StrCat("on (", config_.cluster_domain, ", node search: ",
                           config_.node_search.empty() ? std::string("none")
                                                       : absl::StrJoin(config_.node_search, " "),
                           ", ", config_.search_pins.size(), " pins)")
            : std::string("off");
    std::fprintf(stderr,
                 "nodedns: serving on %s (udp+tcp) with %zu workers, cache %zu MiB, search rewrite "
                 "%s\n",
                 addrs.c_str(), workers_.size(), config_.cache.capacity_bytes >> 20,
                 rewrite.c_str());
    std::fflush(stderr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    std::fprintf(stderr, "nodedns: shutting down\n");
  }
  if (health_) health_->Stop();
  for (auto& w : workers_) w->Stop();
  for (auto& w : workers_) w->Join();
  uv_close(reinterpret_cast<uv_handle_t*>(&shutdown_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  return status;
}

void Server::Shutdown() { uv_async_send(&shutdown_); }

}  // namespace nodedns::proxy
