// Prometheus rendering of the counter list; see metrics.h.
#include "proxy/metrics.h"

#include <cmath>
#include <cstdint>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace nodedns::proxy {

std::string RenderPrometheus(std::span<const WorkerCounters* const> workers,
                             std::span<const Gauge> gauges) {
  std::string out;
  std::set<std::string> described;
  auto describe = [&](const char* name, const char* help, const char* type) {
    if (described.insert(name).second) {
      absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
    }
  };
  ForEachWorkerCounter([&](const char* metric, const char* labels, const char* help, auto get) {
    uint64_t sum = 0;
    for (const WorkerCounters* w : workers) sum += get(*w).Get();
    describe(metric, help, "counter");
    const std::string l = labels;
    absl::StrAppend(&out, metric, l.empty() ? "" : "{", l, l.empty() ? "" : "}", " ", sum, "\n");
  });
  for (const Gauge& g : gauges) {
    describe(g.name, g.help, g.type);
    // Exact integers (absl's double formatting keeps 6 digits: 1000000 came out as "1e+06"), and
    // round-trip precision for anything else.
    if (g.value == std::trunc(g.value) && std::fabs(g.value) < 9007199254740992.0) {
      absl::StrAppend(&out, g.name, " ", static_cast<int64_t>(g.value), "\n");
    } else {
      absl::StrAppend(&out, g.name, " ", absl::StrFormat("%.17g", g.value), "\n");
    }
  }
  return out;
}

}  // namespace nodedns::proxy
