// Query lists for the load generator: parses dnsperf-format files ("name type" per line) and
// turns each entry into a ready-to-send DNS query in wire format, once, before the measurement
// starts, so that the hot path only patches the 16-bit ID.
#ifndef NODEDNS_BENCH_QUERY_FILE_H_
#define NODEDNS_BENCH_QUERY_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodedns::bench {

// One line of a query file.
struct QuerySpec {
  std::string name;  // As written, e.g. "svc1.ns2.svc.cluster.local" (a trailing dot is optional).
  uint16_t qtype = 0;
  int line = 0;  // 1-based line number in the source, for error messages.
};

// Parses dnsperf-format text: one "name type" pair per line, separated by blanks. Blank lines and
// lines whose first non-blank character is ';' or '#' are ignored. The type is a mnemonic ("A",
// "aaaa", case-insensitive) or RFC 3597 "TYPEnnn". Any other line is an error that names its line
// number. An input without a single query is an error too: the load generator needs one.
absl::StatusOr<std::vector<QuerySpec>> ParseQueryText(absl::string_view text);

// Reads and parses a file; errors are prefixed with the path.
absl::StatusOr<std::vector<QuerySpec>> LoadQueryFile(const std::string& path);

struct WireOptions {
  bool edns = false;              // Append an OPT record (RFC 6891).
  uint16_t edns_udp_size = 1232;  // Advertised payload size; 1232 is the DNS Flag Day 2020 value.
};

// Builds a query message with ID 0, RD=1, one question of class IN and, optionally, an OPT
// record. The caller overwrites the first two bytes with the ID for each send.
absl::StatusOr<std::vector<uint8_t>> BuildQueryWire(const QuerySpec& query,
                                                    const WireOptions& options);

// Length of the header plus question section of a message built by BuildQueryWire: the prefix
// that a reply must repeat (RFC 1035 section 4.1.2) for it to match the query.
size_t QuestionEnd(const std::vector<uint8_t>& wire);

}  // namespace nodedns::bench

#endif  // NODEDNS_BENCH_QUERY_FILE_H_
