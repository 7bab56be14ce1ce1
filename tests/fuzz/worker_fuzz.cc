// Fuzz target: a whole worker's query path without client sockets. Client messages go through
// QueryPath::Serve as the front ends hand them over (parse, classify, cache key), with a real
// cache, the miss table, the search-path rewrite (127.0.0.0/8 pinned to namespace "default") and
// a fake upstream: a UDP socket on loopback that this target answers with the input's bytes.
// A fresh worker per input, so that every input replays alone.
//
// Input: 1 control byte, then records of [tag][length: 2 bytes][length bytes].
//   control bit 0: --chaos-text set; bit 1: CoreDNS metrics on; bit 2: the rewrite off.
//   tag & 3 == 0: a client message, from 127.0.0.(1 + (tag >> 2 & 7)), over TCP if tag & 0x20.
//   tag & 3 == 1: the upstream's reply to the oldest upstream query not answered yet; with
//                 tag & 4 its ID is set to the query's (else sent as is).
//   tag & 3 == 2: a response put into the cache beforehand, (tag >> 2) minutes old, under its
//                 own question (DO and CD clear).
//   tag & 3 == 3: the loop runs once (timers, replies in flight).
// At the end every upstream query still open gets a SERVFAIL and the loop runs until the miss
// table is idle.
// Checks: Serve drops only what ParseQuery drops; every client gets exactly one reply, at once or
// through its sink, never both; each reply has the client's ID, QR, one question equal to the
// client's (case included), fits the transport (1232 bytes over UDP) and has a header the reply
// counters saw: the nodedns_replies_total counters add up to the replies delivered.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cache/cache_key.h"
#include "cache/response_cache.h"
#include "dns/wire.h"
#include "proxy/config.h"
#include "proxy/miss_table.h"
#include "proxy/query_path.h"
#include "proxy/rewrite_driver.h"
#include "proxy/search_path_learner.h"
#include "proxy/worker_context.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace nodedns;         // NOLINT
using namespace nodedns::proxy;  // NOLINT
using Bytes = std::vector<uint8_t>;

// The upstream every worker forwards to; it lives as long as the process.
struct FakeUpstream {
  FakeUpstream() {
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  int fd = -1;
  uint16_t port = 0;
};

FakeUpstream& Upstream() {
  static FakeUpstream* u = new FakeUpstream;
  return *u;
}

struct Delivered {
  Bytes reply;
  Bytes question;  // the client's header and question
  size_t limit;
};

struct Sink : ReplySink {
  void SendReply(const Client& client, std::span<const uint8_t> reply) override {
    delivered.push_back({Bytes(reply.begin(), reply.end()),
                         Bytes(client.question().begin(), client.question().end()),
                         client.Limit()});
  }
  std::vector<Delivered> delivered;
};

sockaddr_storage ClientAddress(uint8_t last) {
  sockaddr_storage s{};
  auto* a = reinterpret_cast<sockaddr_in*>(&s);
  a->sin_family = AF_INET;
  a->sin_port = htons(40000 + last);
  a->sin_addr.s_addr = htonl(0x7f000000u | last);
  return s;
}

// The reply checks shared by replies sent at once and through the sink.
void CheckReply(std::span<const uint8_t> reply, std::span<const uint8_t> question, size_t limit) {
  FUZZ_CHECK(reply.size() >= dns::kHeaderSize);
  FUZZ_CHECK(reply.size() <= limit);
  FUZZ_CHECK(dns::HeaderId(reply) == dns::HeaderId(question));
  FUZZ_CHECK(dns::HeaderFlags(reply) & dns::flag::kQR);
  // The client's question (when its header announced one and it parsed), byte for byte.
  if (question.size() > dns::kHeaderSize) {
    FUZZ_CHECK(dns::QdCount(reply) == 1);
    FUZZ_CHECK(reply.size() >= question.size());
    FUZZ_CHECK(std::memcmp(reply.data() + dns::kHeaderSize, question.data() + dns::kHeaderSize,
                           question.size() - dns::kHeaderSize) == 0);
  }
}

class Worker {
 public:
  explicit Worker(uint8_t control) {
    config_.zones = {*ParseForwardSpec(".=127.0.0.1:" + std::to_string(Upstream().port))};
    FUZZ_CHECK(FinishZones(config_.zones, {}).ok());
    config_.cluster_domain_wire = *ZoneToWire(config_.cluster_domain);
    config_.cache.capacity_bytes = 1 << 20;
    config_.upstream_timeout_ms = 20;  // a query nobody answers fails fast
    config_.upstream_tries = 1;
    if (control & 1) config_.chaos_text = "fuzz";
    config_.coredns_metrics = control & 2;
    if (!(control & 4)) {
      const std::string pins[] = {"127.0.0.0/8=default"};
      // Tables for 16 clients, not a node's 4096: building the default ones took 35 % of the
      // time of each input.
      auto rewrite = SharedSearchRewrite::Create("cluster.local", {}, pins,
                                                 {.max_clients = 16, .pending_slots = 16});
      FUZZ_CHECK(rewrite.ok());
      rewrite_ = *std::move(rewrite);
    }
    cache_ = std::make_unique<cache::ResponseCache>(config_.cache);
    ctx_ = std::make_unique<WorkerContext>(config_, *cache_);
    uv_loop_init(&loop_);
    ctx_->loop = &loop_;
    ctx_->thread = cache_->RegisterThread();
    misses_ = std::make_unique<MissTable>(*ctx_);
    FUZZ_CHECK(misses_->Start().ok());
    parts_ = std::make_unique<Parts>(*ctx_, rewrite_.get(), *misses_);
  }
  ~Worker() {
    ctx_->stopping = true;
    misses_->Shutdown();
    parts_->driver.Shutdown();
    uv_run(&loop_, UV_RUN_DEFAULT);
    parts_.reset();
    misses_.reset();
    ctx_->thread.reset();
    uv_loop_close(&loop_);
  }

  void ClientMessage(std::span<const uint8_t> query, uint8_t client, bool tcp) {
    dns::QueryInfo q;
    const dns::QueryStatus status = dns::ParseQuery(query, q);
    LocalAnswer local = LocalAnswer::kNone;
    cache::CacheKey key;
    if (status == dns::QueryStatus::kOk) {
      local = ClassifyQuery(query, q, parts_->path.chaos_enabled());
      if (local == LocalAnswer::kNone) {
        key.Assign(query.subspan(dns::kHeaderSize, q.qname_length), q.qtype, q.qclass, q.do_bit,
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
    Bytes out(tcp ? dns::kMaxMessage + 64 : 1536);
    size_t size = 0;
    if (ctx_->coredns) ctx_->batch_ns = uv_hrtime();
    const Verdict v = parts_->path.Serve(r, out, size, ctx_->Now());
    ctx_->FlushDurations();
    misses_->Flush();
    FUZZ_CHECK((v == Verdict::kDrop) == (status == dns::QueryStatus::kDrop));
    if (v == Verdict::kDrop) return;
    // The header and question the reply must echo: what parsed, or only the header.
    const size_t echoed = status == dns::QueryStatus::kOk ? q.question_end : dns::kHeaderSize;
    const Bytes question(query.begin(), query.begin() + static_cast<ptrdiff_t>(echoed));
    const size_t limit = tcp ? dns::kMaxMessage : 1232;
    if (v == Verdict::kReply) {
      ++replied_at_once_;
      CheckReply({out.data(), size}, question, limit);
    } else {
      FUZZ_CHECK(status == dns::QueryStatus::kOk);
      ++pending_;
    }
  }

  // Collects what reached the upstream so far.
  void Pump() {
    uv_run(&loop_, UV_RUN_NOWAIT);
    uint8_t buf[4096];
    sockaddr_in from{};
    socklen_t len = sizeof from;
    ssize_t n;
    while ((n = recvfrom(Upstream().fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from),
                         &len)) > 0) {
      asked_.push_back({Bytes(buf, buf + n), from});
      len = sizeof from;
    }
  }

  void UpstreamReply(std::span<const uint8_t> reply, bool fix_id) {
    Pump();
    if (asked_.empty()) return;
    const auto [query, from] = asked_.front();
    asked_.pop_front();
    Bytes r(reply.begin(), reply.end());
    if (fix_id && r.size() >= 2 && query.size() >= 2) std::memcpy(r.data(), query.data(), 2);
    sendto(Upstream().fd, r.data(), r.size(), 0, reinterpret_cast<const sockaddr*>(&from),
           sizeof from);
    Pump();
  }

  void Preload(std::span<const uint8_t> response, uint8_t minutes) {
    // The response's own question: an uncompressed name, type and class.
    size_t off = dns::kHeaderSize;
    while (off < response.size() && response[off] != 0 && response[off] < 64) {
      off += 1 + response[off];
    }
    if (off >= response.size() || response[off] != 0 || off + 5 > response.size()) return;
    const std::span<const uint8_t> qname = response.subspan(dns::kHeaderSize, off + 1 - 12);
    const uint16_t qtype = dns::Get16(response.data() + off + 1);
    const uint16_t qclass = dns::Get16(response.data() + off + 3);
    const uint64_t age = uint64_t{minutes} * 60'000;
    const uint64_t now = ctx_->Now();
    if (now <= age) return;
    cache_->Insert(*ctx_->thread, cache::CacheKey(qname, qtype, qclass, false, false), response,
                   now - age);
  }

  void RunOnce() { Pump(); }

  // Answers whatever is still open with SERVFAIL, until nothing is in flight.
  void Finish() {
    for (int round = 0; round < 2000 && !(misses_->Idle() && asked_.empty()); ++round) {
      Pump();
      while (!asked_.empty()) {
        auto [query, from] = asked_.front();
        asked_.pop_front();
        if (query.size() < dns::kHeaderSize) continue;
        query[2] |= 0x80;                                        // QR
        query[3] = static_cast<uint8_t>((query[3] & 0xf0) | 2);  // SERVFAIL
        sendto(Upstream().fd, query.data(), query.size(), 0,
               reinterpret_cast<const sockaddr*>(&from), sizeof from);
      }
      if (!misses_->Idle()) usleep(200);
    }
    Pump();
  }

  void Check() {
    // Every client answered exactly once.
    FUZZ_CHECK(misses_->Idle());
    FUZZ_CHECK(sink_.delivered.size() == pending_);
    for (const Delivered& d : sink_.delivered) CheckReply(d.reply, d.question, d.limit);
    // Every reply counted once by rcode.
    const WorkerCounters& c = ctx_->counters;
    const uint64_t counted = c.rcode_noerror.Get() + c.rcode_formerr.Get() +
                             c.rcode_servfail.Get() + c.rcode_nxdomain.Get() +
                             c.rcode_notimp.Get() + c.rcode_refused.Get() + c.rcode_other.Get();
    FUZZ_CHECK(counted == replied_at_once_ + pending_);
  }

 private:
  struct Parts {
    Parts(WorkerContext& ctx, SharedSearchRewrite* shared, MissTable& misses)
        : path(ctx, misses, driver), driver(ctx, shared, misses, path) {}
    QueryPath path;
    RewriteDriver driver;
  };
  ServeConfig config_;
  std::unique_ptr<SharedSearchRewrite> rewrite_;
  std::unique_ptr<cache::ResponseCache> cache_;
  std::unique_ptr<WorkerContext> ctx_;
  uv_loop_t loop_;
  std::unique_ptr<MissTable> misses_;
  std::unique_ptr<Parts> parts_;
  Sink sink_;
  std::deque<std::pair<Bytes, sockaddr_in>> asked_;
  size_t replied_at_once_ = 0;
  size_t pending_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  {
    // Nothing left over from the previous input.
    uint8_t buf[4096];
    while (recv(Upstream().fd, buf, sizeof buf, 0) > 0) {
    }
  }
  Worker w(data[0]);
  size_t off = 1;
  while (size - off >= 3) {
    const uint8_t tag = data[off];
    const size_t len = std::min<size_t>(dns::Get16(data + off + 1), size - off - 3);
    const std::span<const uint8_t> body(data + off + 3, len);
    off += 3 + len;
    switch (tag & 3) {
      case 0:
        w.ClientMessage(body, static_cast<uint8_t>(1 + (tag >> 2 & 7)), tag & 0x20);
        break;
      case 1:
        w.UpstreamReply(body, tag & 4);
        break;
      case 2:
        w.Preload(body, tag >> 2);
        break;
      default:
        w.RunOnce();
        break;
    }
  }
  w.Finish();
  w.Check();
  return 0;
}
