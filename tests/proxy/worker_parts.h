// A worker's parts as Worker wires them (context, miss table, query path, rewrite driver) on a
// loop the test runs by hand, with a fake ReplySink for later replies and a UDP socket on
// loopback as the only upstream, answered by the test. What the query path tests and the
// hit-path allocation test share.
#ifndef NODEDNS_TESTS_PROXY_WORKER_PARTS_H_
#define NODEDNS_TESTS_PROXY_WORKER_PARTS_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "proxy/miss_table.h"
#include "proxy/query_path.h"
#include "proxy/rewrite_driver.h"
#include "proxy/search_path_learner.h"
#include "tests/testing/dns_builder.h"

namespace nodedns::proxy::testing_util {

using Bytes = std::vector<uint8_t>;

// The replies a front end would have sent.
struct FakeSink : ReplySink {
  void SendReply(const Client& client, std::span<const uint8_t> reply) override {
    replies.emplace_back(reply.begin(), reply.end());
  }
  std::vector<Bytes> replies;
};

inline sockaddr_storage ClientAddress(uint8_t last) {
  sockaddr_storage s{};
  auto* a = reinterpret_cast<sockaddr_in*>(&s);
  a->sin_family = AF_INET;
  a->sin_port = htons(40000 + last);
  a->sin_addr.s_addr = htonl(0x7f000000u | last);
  return s;
}

class WorkerParts {
 public:
  // `pins` as --search-path ("CIDR=ns"); the rewrite is on with cluster.local. `tweak` edits the
  // configuration before anything reads it (the cache, the context, the miss table's forwarders
  // and limits are all made from it): e.g. a zone's max_concurrent, or CoreDNS metrics.
  explicit WorkerParts(std::vector<std::string> pins = {},
                       std::function<void(ServeConfig&)> tweak = {}) {
    upstream_fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(upstream_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(upstream_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    config_.zones = {*ParseForwardSpec(".=127.0.0.1:" + std::to_string(ntohs(a.sin_port)))};
    ok_ = FinishZones(config_.zones, {}).ok();
    config_.cluster_domain_wire = *ZoneToWire(config_.cluster_domain);
    config_.cache.capacity_bytes = 8 << 20;
    if (tweak) tweak(config_);
    auto rewrite = SharedSearchRewrite::Create("cluster.local", {}, pins);
    ok_ = ok_ && rewrite.ok();
    if (rewrite.ok()) rewrite_ = *std::move(rewrite);
    cache_ = std::make_unique<cache::ResponseCache>(config_.cache);
    ctx_ = std::make_unique<WorkerContext>(config_, *cache_);
    uv_loop_init(&loop_);
    ctx_->loop = &loop_;
    ctx_->thread = cache_->RegisterThread();
    misses_ = std::make_unique<MissTable>(*ctx_);
    ok_ = ok_ && misses_->Start().ok();
    parts_ = std::make_unique<Parts>(*ctx_, rewrite_.get(), *misses_);
  }
  ~WorkerParts() {
    ctx_->stopping = true;
    misses_->Shutdown();
    parts_->driver.Shutdown();
    uv_run(&loop_, UV_RUN_DEFAULT);
    parts_.reset();
    misses_.reset();
    ctx_->thread.reset();
    uv_loop_close(&loop_);
    close(upstream_fd_);
  }
  bool ok() const { return ok_; }
  QueryPath& path() { return parts_->path; }
  MissTable& misses() { return *misses_; }
  uv_loop_t* loop() { return &loop_; }
  WorkerContext& ctx() { return *ctx_; }
  const WorkerCounters& counters() const { return ctx_->counters; }
  FakeSink& sink() { return sink_; }
  uint64_t Now() { return uv_now(&loop_); }

  // Serves `query` from 127.0.0.`client` as a front end of the given transport would; the reply
  // (on kReply) in `reply`.
  Verdict Serve(const Bytes& query, uint8_t client, bool tcp, Bytes& reply) {
    dns::QueryInfo q;
    const dns::QueryStatus status = dns::ParseQuery(query, q);
    LocalAnswer local = LocalAnswer::kNone;
    cache::CacheKey key;
    if (status == dns::QueryStatus::kOk) {
      local = ClassifyQuery(query, q, path().chaos_enabled());
      if (local == LocalAnswer::kNone) {
        key.Assign({query.data() + dns::kHeaderSize, q.qname_length}, q.qtype, q.qclass, q.do_bit,
                   q.cd());
      }
    }
    const sockaddr_storage from = ClientAddress(client);
    const Request r{.query = query,
                    .q = q,
                    .status = status,
                    .local = local,
                    .key = key,
                    .from = from,
                    .from_len = sizeof(sockaddr_in),
                    .sink = &sink_,
                    .tcp = tcp,
                    .udp_fd = tcp ? -1 : 3,
                    .conn_id = tcp ? 7u : 0u};
    reply.resize(tcp ? dns::kMaxMessage + 64 : 1536);
    size_t size = 0;
    const Verdict v = path().Serve(r, reply, size, Now());
    ctx().FlushDurations();  // as a front end does once it has served a batch
    reply.resize(v == Verdict::kReply ? size : 0);
    return v;
  }
  // Stores `m` (built by ldns) in the cache under its own question.
  bool Store(const testing::MessageSpec& m) {
    const Bytes wire = testing::Build(m);
    const auto r = cache_->Insert(
        *ctx_->thread, cache::CacheKey(testing::WireName(m.qname), m.qtype, 1, false, false), wire,
        Now());
    return r == cache::InsertResult::kInserted || r == cache::InsertResult::kReplaced;
  }
  // The queries the upstream received while the loop ran (bounded: about 1 s).
  std::vector<std::pair<Bytes, sockaddr_in>> UpstreamQueries(size_t n) {
    std::vector<std::pair<Bytes, sockaddr_in>> got;
    for (int spins = 0; got.size() < n && spins < 1000; ++spins) {
      uv_run(&loop_, UV_RUN_NOWAIT);
      uint8_t buf[1500];
      sockaddr_in from{};
      socklen_t len = sizeof from;
      const ssize_t r =
          recvfrom(upstream_fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (r > 0) {
        got.emplace_back(Bytes(buf, buf + r), from);
      } else {
        usleep(1000);
      }
    }
    return got;
  }
  // Answers an upstream query with one A record for `name`.
  void AnswerUpstream(const std::pair<Bytes, sockaddr_in>& query, const std::string& name) {
    testing::MessageSpec m;
    m.qname = name;
    m.id = dns::HeaderId(query.first);
    m.answer = {name + " 300 IN A 192.0.2.44"};
    const Bytes wire = testing::Build(m);
    sendto(upstream_fd_, wire.data(), wire.size(), 0,
           reinterpret_cast<const sockaddr*>(&query.second), sizeof query.second);
  }
  // Runs the loop until the sink holds `n` replies (bounded: about 2 s).
  void RunUntilReplies(size_t n) {
    for (int spins = 0; sink_.replies.size() < n && spins < 2000; ++spins) {
      uv_run(&loop_, UV_RUN_NOWAIT);
      usleep(1000);
    }
  }

 private:
  // As in Worker: the path and the rewrite driver refer to each other.
  struct Parts {
    Parts(WorkerContext& ctx, SharedSearchRewrite* shared, MissTable& misses)
        : path(ctx, misses, driver), driver(ctx, shared, misses, path) {}
    QueryPath path;
    RewriteDriver driver;
  };
  bool ok_ = false;
  ServeConfig config_;
  std::unique_ptr<SharedSearchRewrite> rewrite_;
  std::unique_ptr<cache::ResponseCache> cache_;
  std::unique_ptr<WorkerContext> ctx_;
  uv_loop_t loop_;
  std::unique_ptr<MissTable> misses_;
  std::unique_ptr<Parts> parts_;
  FakeSink sink_;
  int upstream_fd_ = -1;
};

}  // namespace nodedns::proxy::testing_util

#endif  // NODEDNS_TESTS_PROXY_WORKER_PARTS_H_
