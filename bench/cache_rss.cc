// Memory bound of the response cache without sockets: fills a cache with `--fill` times its
// capacity in unique names, answers of mixed sizes, from several threads that call Quiescent()
// every 64 inserts as proxy workers do, and prints the process's RSS next to the cache's own
// figures and glibc's. Exit status 1 if RSS grew by more than the documented bound.
//
//   build-rel/bench/nodedns_cache_rss --cache-mb 64 --fill 10 --threads 2
//
// Results and the exact command are in docs/benchmarks.md ("Memory").
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "cache/response_cache.h"
#include "dns/wire.h"

namespace nodedns::cache {
namespace {

constexpr uint64_t kNow = 1'000'000;
constexpr double kMiB = 1024.0 * 1024.0;

uint64_t Next(uint64_t& s) {
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 2685821657736338717ull;
}

size_t ProcKiB(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0 && line[n] == ':') return std::strtoull(line.c_str() + n + 1, nullptr, 10);
  }
  return 0;
}

// Name "q<i>.<pad>.mix.example." with a pad label of 1..40 bytes, and an answer of mixed shape:
// mostly 1-8 A records, sometimes a TXT of up to 1.2 KB, rarely one of up to 8 KB, so that entry
// blocks spread over every size class and beyond.
size_t BuildMixed(uint64_t i, uint64_t& rng, uint8_t* name, size_t& name_len, uint8_t* out) {
  char label[24];
  const int ll = std::snprintf(label, sizeof label, "q%llu", static_cast<unsigned long long>(i));
  size_t n = 0;
  name[n++] = static_cast<uint8_t>(ll);
  std::memcpy(name + n, label, ll);
  n += ll;
  const size_t pad = 1 + Next(rng) % 40;
  name[n++] = static_cast<uint8_t>(pad);
  std::memset(name + n, 'p', pad);
  n += pad;
  static constexpr uint8_t kSuffix[] = {3, 'm', 'i', 'x', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0};
  std::memcpy(name + n, kSuffix, sizeof kSuffix);
  n += sizeof kSuffix;
  name_len = n;

  const uint64_t r = Next(rng) % 100;
  const bool txt = r >= 80;
  size_t txt_len = 0;
  size_t ancount = 1;
  if (txt) {
    txt_len = r >= 98 ? 1 + Next(rng) % 8000 : 1 + Next(rng) % 1200;
    ancount = 1;
  } else {
    ancount = 1 + Next(rng) % 8;
  }
  std::memset(out, 0, 12);
  dns::Put16(out + 2, dns::flag::kQR | dns::flag::kRD | dns::flag::kRA);
  dns::Put16(out + 4, 1);
  dns::Put16(out + 6, static_cast<uint16_t>(ancount));
  size_t w = 12;
  std::memcpy(out + w, name, n);
  w += n;
  const uint16_t qtype = txt ? dns::type::kTXT : dns::type::kA;
  dns::Put16(out + w, qtype);
  dns::Put16(out + w + 2, 1);
  w += 4;
  for (size_t a = 0; a < ancount; ++a) {
    out[w++] = 0xc0;
    out[w++] = 12;
    dns::Put16(out + w, qtype);
    dns::Put16(out + w + 2, 1);
    dns::Put32(out + w + 4, 3600);
    w += 8;
    if (txt) {
      // Strings of up to 255 bytes.
      const size_t rdlen_at = w;
      w += 2;
      size_t left = txt_len;
      while (left > 0) {
        const size_t s = std::min<size_t>(left, 255);
        out[w++] = static_cast<uint8_t>(s);
        std::memset(out + w, 't', s);
        w += s;
        left -= s;
      }
      dns::Put16(out + rdlen_at, static_cast<uint16_t>(w - rdlen_at - 2));
    } else {
      dns::Put16(out + w, 4);
      dns::Put32(out + w + 2, static_cast<uint32_t>(Next(rng)));
      w += 6;
    }
  }
  return w;
}

struct Args {
  size_t cache_mb = 64;
  double fill = 10;
  int threads = 2;
  double bound_mb = -1;  // < 0: no check
};

int Main(const Args& a) {
  const size_t rss0 = ProcKiB("VmRSS");
  CacheSettings s;
  s.capacity_bytes = a.cache_mb << 20;
  auto cache = std::make_unique<ResponseCache>(s);
  const size_t target = static_cast<size_t>(a.fill * static_cast<double>(s.capacity_bytes));
  std::atomic<size_t> inserted_bytes{0};
  std::atomic<uint64_t> names{0};
  std::vector<std::thread> workers;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < a.threads; ++t) {
    workers.emplace_back([&, t] {
      auto ct = cache->RegisterThread();
      uint64_t rng = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(t + 1);
      std::vector<uint8_t> out(65536);
      uint8_t name[256];
      size_t name_len = 0;
      size_t mine = 0;
      for (size_t k = 0;; ++k) {
        if (k % 64 == 0) {
          inserted_bytes.fetch_add(mine, std::memory_order_relaxed);
          mine = 0;
          if (inserted_bytes.load(std::memory_order_relaxed) >= target) break;
          ct->Quiescent();
        }
        const uint64_t i = names.fetch_add(1, std::memory_order_relaxed);
        const size_t len = BuildMixed(i, rng, name, name_len, out.data());
        const CacheKey key({name, name_len}, out[12 + name_len] << 8 | out[13 + name_len],
                           dns::kClassIN, false, false);
        cache->Insert(*ct, key, {out.data(), len}, kNow);
        mine += len;
      }
      ct->Quiescent();
      ct->Offline();
    });
  }
  for (auto& w : workers) w.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const CacheStats st = cache->Stats();
  const size_t rss1 = ProcKiB("VmRSS");
  const size_t hwm = ProcKiB("VmHWM");
  struct mallinfo2 mi = mallinfo2();
  const double grown = static_cast<double>(rss1 - rss0) / 1024.0;
  std::printf("capacity          %zu MiB, %d threads, %.1fx filled (%llu names, %.1f s)\n", a.cache_mb,
              a.threads, static_cast<double>(inserted_bytes.load()) / s.capacity_bytes,
              static_cast<unsigned long long>(names.load()), secs);
  std::printf("entries           %zu (%llu evicted)\n", st.entries,
              static_cast<unsigned long long>(st.evictions));
  std::printf("cache_bytes       %.1f MiB\n", st.bytes / kMiB);
  std::printf("retired_bytes     %.1f MiB\n", st.retired_bytes / kMiB);
  std::printf("mapped_bytes      %.1f MiB (entry memory the cache holds)\n", st.mapped_bytes / kMiB);
  std::printf("VmRSS idle        %.1f MiB\n", rss0 / 1024.0);
  std::printf("VmRSS full        %.1f MiB (grown %.1f MiB, %.0f%% of capacity)\n", rss1 / 1024.0,
              grown, 100.0 * grown / static_cast<double>(a.cache_mb));
  std::printf("VmHWM             %.1f MiB\n", hwm / 1024.0);
  std::printf("malloc arena      %.1f MiB (in use %.1f, free %.1f), mmap %.1f MiB\n",
              mi.arena / kMiB, mi.uordblks / kMiB, mi.fordblks / kMiB, mi.hblkhd / kMiB);
  std::fflush(stdout);
  if (std::getenv("NODEDNS_MALLOC_STATS")) malloc_stats();
  if (a.bound_mb >= 0) {
    const double bound = static_cast<double>(a.cache_mb) + a.bound_mb;
    const bool ok = grown <= bound;
    std::printf("bound             %.1f MiB (capacity + %.0f MiB): %s\n", bound, a.bound_mb,
                ok ? "held" : "EXCEEDED");
    return ok ? 0 : 1;
  }
  return 0;
}

}  // namespace
}  // namespace nodedns::cache

int main(int argc, char** argv) {
  nodedns::cache::Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--cache-mb") a.cache_mb = std::strtoull(v, nullptr, 10);
    else if (k == "--fill") a.fill = std::strtod(v, nullptr);
    else if (k == "--threads") a.threads = std::atoi(v);
    else if (k == "--bound-mb") a.bound_mb = std::strtod(v, nullptr);
    else {
      std::fprintf(stderr, "usage: %s [--cache-mb N] [--fill X] [--threads T] [--bound-mb C]\n",
                   argv[0]);
      return 2;
    }
  }
  return nodedns::cache::Main(a);
}
