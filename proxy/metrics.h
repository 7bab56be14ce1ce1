// Per-worker counters, declared once as lists (X-macros) so that the Prometheus output, the docs
// test and the code cannot drift apart. Each counter has one writer (its worker thread), which
// increments with a relaxed load and store: no locked instruction, no shared cache line. The
// metrics thread reads them with relaxed loads and sums the workers'.
#ifndef NODEDNS_PROXY_METRICS_H_
#define NODEDNS_PROXY_METRICS_H_

#include <atomic>
#include <cstdint>
#include <span>
#include <string>

#include "common/counter.h"
#include "upstream/tcp_forwarder.h"
#include "upstream/udp_forwarder.h"

namespace nodedns::proxy {

// X(member, metric name, labels, help)
#define NODEDNS_WORKER_COUNTERS(X)                                                                \
  X(queries_udp, "nodedns_queries_total", "transport=\"udp\"", "Queries received")                \
  X(queries_tcp, "nodedns_queries_total", "transport=\"tcp\"", "Queries received")                \
  X(udp_batches, "nodedns_udp_receive_batches_total", "",                                         \
    "recvmmsg calls that returned datagrams (queries_total{udp} / this = mean batch size)")       \
  X(cache_hits, "nodedns_cache_hits_total", "", "Queries answered from the cache")                \
  X(cache_misses, "nodedns_cache_misses_total", "", "Queries not answerable from the cache")      \
  X(coalesced, "nodedns_coalesced_queries_total", "",                                             \
    "Misses that joined an identical upstream query already in flight")                           \
  X(upstream_queries, "nodedns_upstream_queries_total", "", "Queries sent upstream")              \
  X(upstream_errors, "nodedns_upstream_errors_total", "",                                         \
    "Upstream queries that failed (timeout, connection refused, mismatched reply, SERVFAIL)")     \
  X(stale_served, "nodedns_stale_answers_total", "reason=\"upstream_failed\"",                    \
    "Answers served stale (RFC 8767), by what let them: the upstream query failed, the client "   \
    "response timer ran out while it was still out, or it failed within the recheck window")      \
  X(stale_client_timeout, "nodedns_stale_answers_total", "reason=\"client_timeout\"",             \
    "Answers served stale (RFC 8767), by what let them: the upstream query failed, the client "   \
    "response timer ran out while it was still out, or it failed within the recheck window")      \
  X(stale_recheck, "nodedns_stale_answers_total", "reason=\"failure_recheck\"",                   \
    "Answers served stale (RFC 8767), by what let them: the upstream query failed, the client "   \
    "response timer ran out while it was still out, or it failed within the recheck window")      \
  X(prefetches, "nodedns_prefetches_total", "", "Background refreshes of popular entries")        \
  X(truncated, "nodedns_truncated_replies_total", "", "UDP replies sent with TC=1")               \
  X(shed_queue_delay, "nodedns_shed_queries_total", "reason=\"queue_delay\"",                     \
    "UDP queries dropped unanswered under overload: they waited in a standing receive queue "     \
    "longer than --overload-queue-delay")                                                         \
  X(dropped, "nodedns_dropped_queries_total", "", "Datagrams dropped unanswered (QR=1, runts)")   \
  X(send_errors, "nodedns_send_errors_total", "", "Replies the kernel refused to send")           \
  X(rcode_noerror, "nodedns_replies_total", "rcode=\"NOERROR\"", "Replies sent, by rcode")        \
  X(rcode_formerr, "nodedns_replies_total", "rcode=\"FORMERR\"", "Replies sent, by rcode")        \
  X(rcode_servfail, "nodedns_replies_total", "rcode=\"SERVFAIL\"", "Replies sent, by rcode")      \
  X(rcode_nxdomain, "nodedns_replies_total", "rcode=\"NXDOMAIN\"", "Replies sent, by rcode")      \
  X(rcode_notimp, "nodedns_replies_total", "rcode=\"NOTIMP\"", "Replies sent, by rcode")          \
  X(rcode_refused, "nodedns_replies_total", "rcode=\"REFUSED\"", "Replies sent, by rcode")        \
  X(rcode_other, "nodedns_replies_total", "rcode=\"other\"", "Replies sent, by rcode")            \
  X(search_queries, "nodedns_search_expansion_queries_total", "",                                 \
    "Queries for names under the cluster domain: search-list expansions, as GET /audit counts")   \
  X(search_nxdomain, "nodedns_search_expansion_nxdomain_total", "",                               \
    "NXDOMAIN replies for names under the cluster domain: queries a search-list walk wasted")     \
  X(search_rewrites, "nodedns_search_rewrite_lookups_total", "",                                  \
    "Replies answered with a synthesized CNAME by the search-path rewrite (cached or fresh)")     \
  X(search_rewrite_avoided, "nodedns_search_rewrite_queries_avoided_total", "",                   \
    "Search-list queries clients did not need to send because of rewritten replies")              \
  X(search_rewrite_attempts, "nodedns_search_rewrite_attempts_total", "",                         \
    "Search expansions that got NXDOMAIN and were resolved against the rest of the search list")  \
  X(search_rewrite_declined_nxdomain, "nodedns_search_rewrite_declined_total",                    \
    "reason=\"nxdomain\"", "Rewrite attempts answered with the original reply, by reason")        \
  X(search_rewrite_declined_failed, "nodedns_search_rewrite_declined_total", "reason=\"failed\"", \
    "Rewrite attempts answered with the original reply, by reason")                               \
  X(search_rewrite_timeouts, "nodedns_search_rewrite_deadline_total", "",                         \
    "Rewrite attempts that reached their deadline with candidates still unanswered")              \
  X(tcp_connections, "nodedns_tcp_connections_total", "", "TCP connections accepted")             \
  X(tcp_rejected, "nodedns_tcp_rejected_connections_total", "",                                   \
    "TCP connections closed at once: the worker was at its connection limit, none of them idle")  \
  X(tcp_closed_idle, "nodedns_tcp_closed_total", "reason=\"idle\"",                               \
    "Client TCP connections closed by nodedns, by reason")                                        \
  X(tcp_closed_incomplete, "nodedns_tcp_closed_total", "reason=\"incomplete\"",                   \
    "Client TCP connections closed by nodedns, by reason")                                        \
  X(tcp_closed_unread, "nodedns_tcp_closed_total", "reason=\"unread\"",                           \
    "Client TCP connections closed by nodedns, by reason")                                        \
  X(tcp_closed_runt, "nodedns_tcp_closed_total", "reason=\"runt\"",                               \
    "Client TCP connections closed by nodedns, by reason")                                        \
  X(tcp_closed_evicted, "nodedns_tcp_closed_total", "reason=\"evicted\"",                         \
    "Client TCP connections closed by nodedns, by reason")                                        \
  X(tcp_paused_inflight, "nodedns_tcp_read_pauses_total", "reason=\"inflight\"",                  \
    "Times reading a client TCP connection paused, by reason")                                    \
  X(tcp_paused_unread, "nodedns_tcp_read_pauses_total", "reason=\"unread\"",                      \
    "Times reading a client TCP connection paused, by reason")                                    \
  X(not_allowed_udp, "nodedns_not_allowed_queries_total", "",                                     \
    "UDP queries REFUSED because their source is outside --allow")                                \
  X(not_allowed_tcp, "nodedns_tcp_not_allowed_connections_total", "",                             \
    "TCP connections closed at accept because the peer is outside --allow")                       \
  X(shed_max_waiting, "nodedns_shed_misses_total", "reason=\"max_waiting\"",                      \
    "Misses answered SERVFAIL at once instead of waiting for upstream, by reason")                \
  X(shed_client_share, "nodedns_shed_misses_total", "reason=\"client_share\"",                    \
    "Misses answered SERVFAIL at once instead of waiting for upstream, by reason")

// One per worker, on its own cache lines: the worker's own counters, then its forwarders' (all
// zones of the worker share one set; upstream/udp_forwarder.h, upstream/tcp_forwarder.h declare
// those lists). Adding a metric is one line in one of the three lists, plus its row in
// docs/operations.md (a unit test checks the rows).
struct alignas(64) WorkerCounters {
#define NODEDNS_DECLARE_COUNTER(member, metric, labels, help) Counter member;
  NODEDNS_WORKER_COUNTERS(NODEDNS_DECLARE_COUNTER)
#undef NODEDNS_DECLARE_COUNTER
  upstream::UdpForwarderStats udp_forwarders;
  upstream::TcpForwarderStats tcp_forwarders;

  void CountRcode(uint8_t rcode) {
    switch (rcode) {
      case 0:
        rcode_noerror.Inc();
        break;
      case 1:
        rcode_formerr.Inc();
        break;
      case 2:
        rcode_servfail.Inc();
        break;
      case 3:
        rcode_nxdomain.Inc();
        break;
      case 4:
        rcode_notimp.Inc();
        break;
      case 5:
        rcode_refused.Inc();
        break;
      default:
        rcode_other.Inc();
        break;
    }
  }
};

// The upstream health families (upstream/health.h), rendered by the server from the zones'
// shared state: X(metric, type, labels, help).
#define NODEDNS_UPSTREAM_HEALTH_METRICS(X)                                             \
  X("nodedns_upstream_up", "gauge", "zone,upstream",                                   \
    "1 while the upstream is in service, 0 while marked down after failed tries")      \
  X("nodedns_upstream_marked_down_total", "counter", "zone,upstream",                  \
    "Times the upstream was marked down (--upstream-max-fails failed tries in a row)") \
  X("nodedns_upstream_health_probes_total", "counter", "zone,upstream",                \
    "Health probes (. IN NS) sent to the upstream while it was down")                  \
  X("nodedns_upstream_health_probe_failures_total", "counter", "zone,upstream",        \
    "Health probes of the upstream that got no reply")                                 \
  X("nodedns_upstream_all_down_total", "counter", "zone",                              \
    "Times every upstream of the zone was down at once (queries then try them all in order)")

struct HealthFamily {
  const char* metric;
  const char* type;
  const char* labels;
  const char* help;
};
inline constexpr HealthFamily kUpstreamHealthFamilies[] = {
#define NODEDNS_FAMILY(metric, type, labels, help) {metric, type, labels, help},
    NODEDNS_UPSTREAM_HEALTH_METRICS(NODEDNS_FAMILY)
#undef NODEDNS_FAMILY
};

// Values that are not per-worker counters (cache size and such), appended by the caller.
struct Gauge {
  const char* name;
  const char* help;
  double value;
  const char* type = "gauge";  // or "counter" for process-wide counters kept outside the workers
};

// Calls f(metric, labels, help, member pointer getter) for every per-worker counter: the worker's
// list, then the UDP and TCP forwarders'.
template <typename F>
void ForEachWorkerCounter(F&& f) {
#define NODEDNS_VISIT(member, metric, labels, help) \
  f(metric, labels, help, [](const WorkerCounters& w) -> const Counter& { return w.member; });
  NODEDNS_WORKER_COUNTERS(NODEDNS_VISIT)
#undef NODEDNS_VISIT
#define NODEDNS_VISIT(member, metric, help) \
  f(metric, "", help,                       \
    [](const WorkerCounters& w) -> const Counter& { return w.udp_forwarders.member; });
  NODEDNS_UDP_FORWARDER_COUNTERS(NODEDNS_VISIT)
#undef NODEDNS_VISIT
#define NODEDNS_VISIT(member, metric, help) \
  f(metric, "", help,                       \
    [](const WorkerCounters& w) -> const Counter& { return w.tcp_forwarders.member; });
  NODEDNS_TCP_FORWARDER_COUNTERS(NODEDNS_VISIT)
#undef NODEDNS_VISIT
}

// Prometheus text exposition format 0.0.4: every counter summed over workers, then the gauges.
std::string RenderPrometheus(std::span<const WorkerCounters* const> workers,
                             std::span<const Gauge> gauges);

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_METRICS_H_
