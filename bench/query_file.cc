// Query-file parsing and query construction for nodedns-loadgen; see query_file.h.
#include "bench/query_file.h"

#include <ldns/ldns.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace nodedns::bench {
namespace {

// Resolves a type mnemonic. RFC 3597 "TYPEnnn" is parsed here rather than by ldns because
// ldns_get_rr_type_by_name accepts numbers beyond 16 bits without complaint.
absl::StatusOr<uint16_t> ParseType(absl::string_view text) {
  if (text.size() > 4 && absl::StartsWithIgnoreCase(text, "TYPE") &&
      absl::ascii_isdigit(static_cast<unsigned char>(text[4]))) {
    uint32_t value = 0;
    if (!absl::SimpleAtoi(text.substr(4), &value) || value == 0 || value > 0xffff) {
      return absl::InvalidArgumentError(absl::StrCat("bad query type '", text, "'"));
    }
    return static_cast<uint16_t>(value);
  }
  const std::string upper = absl::AsciiStrToUpper(text);
  const int value = static_cast<int>(ldns_get_rr_type_by_name(upper.c_str()));
  if (value <= 0 || value > 0xffff) {
    return absl::InvalidArgumentError(absl::StrCat("unknown query type '", text, "'"));
  }
  return static_cast<uint16_t>(value);
}

struct RdfDeleter {
  void operator()(ldns_rdf* rdf) const { ldns_rdf_deep_free(rdf); }
};

// Wire form of a name (RFC 1035 section 3.1), via ldns so that escapes such as "a\.b" and the
// 63/255-octet limits are handled the same way the rest of the DNS tooling handles them.
absl::StatusOr<std::vector<uint8_t>> NameToWire(const std::string& name) {
  std::unique_ptr<ldns_rdf, RdfDeleter> rdf(ldns_dname_new_frm_str(name.c_str()));
  if (rdf == nullptr) return absl::InvalidArgumentError(absl::StrCat("bad name '", name, "'"));
  const uint8_t* data = ldns_rdf_data(rdf.get());
  return std::vector<uint8_t>(data, data + ldns_rdf_size(rdf.get()));
}

void Put16(std::vector<uint8_t>& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value & 0xff));
}

}  // namespace

absl::StatusOr<std::vector<QuerySpec>> ParseQueryText(absl::string_view text) {
  std::vector<QuerySpec> queries;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const absl::string_view stripped = absl::StripAsciiWhitespace(line);
    if (stripped.empty() || stripped.front() == ';' || stripped.front() == '#') continue;
    const std::vector<absl::string_view> fields =
        absl::StrSplit(stripped, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number, ": expected 'name type', got ", fields.size(), " fields"));
    }
    absl::StatusOr<uint16_t> qtype = ParseType(fields[1]);
    if (!qtype.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": ", qtype.status().message()));
    }
    QuerySpec query{std::string(fields[0]), *qtype, line_number};
    // Validate the name now, so that the error carries the line number.
    if (absl::StatusOr<std::vector<uint8_t>> wire = NameToWire(query.name); !wire.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": ", wire.status().message()));
    }
    queries.push_back(std::move(query));
  }
  if (queries.empty()) return absl::InvalidArgumentError("no queries in input");
  return queries;
}

absl::StatusOr<std::vector<QuerySpec>> LoadQueryFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  absl::StatusOr<std::vector<QuerySpec>> queries = ParseQueryText(contents.str());
  if (!queries.ok()) {
    return absl::Status(queries.status().code(),
                        absl::StrCat(path, ": ", queries.status().message()));
  }
  return queries;
}

absl::StatusOr<std::vector<uint8_t>> BuildQueryWire(const QuerySpec& query,
                                                    const WireOptions& options) {
  absl::StatusOr<std::vector<uint8_t>> name = NameToWire(query.name);
  if (!name.ok()) return name.status();
  std::vector<uint8_t> wire;
  wire.reserve(12 + name->size() + 4 + 11);
  Put16(wire, 0);                     // ID, patched per send.
  Put16(wire, 0x0100);                // Flags: RD=1 (a stub resolver's query).
  Put16(wire, 1);                     // QDCOUNT
  Put16(wire, 0);                     // ANCOUNT
  Put16(wire, 0);                     // NSCOUNT
  Put16(wire, options.edns ? 1 : 0);  // ARCOUNT
  wire.insert(wire.end(), name->begin(), name->end());
  Put16(wire, query.qtype);
  Put16(wire, 1);  // Class IN.
  if (options.edns) {
    // OPT pseudo-RR (RFC 6891 section 6.1.2): root owner, type 41, class = UDP payload size,
    // TTL = extended RCODE/version/flags (all zero, DO clear), no options.
    wire.push_back(0);
    Put16(wire, 41);
    Put16(wire, options.edns_udp_size);
    Put16(wire, 0);
    Put16(wire, 0);
    Put16(wire, 0);
  }
  return wire;
}

size_t QuestionEnd(const std::vector<uint8_t>& wire) {
  size_t pos = 12;
  while (pos < wire.size() && wire[pos] != 0) pos += 1 + wire[pos];
  return std::min(wire.size(), pos + 1 + 4);
}

}  // namespace nodedns::bench
