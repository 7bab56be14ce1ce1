// Test-only DNS message building and parsing with ldns, the independent implementation that
// nodedns's own wire code is checked against.
#ifndef NODEDNS_TESTS_TESTING_DNS_BUILDER_H_
#define NODEDNS_TESTS_TESTING_DNS_BUILDER_H_

// stdbool.h before ldns: otherwise ldns/common.h defines bool, true and false as macros (_Bool, 1,
// 0), which break C++ headers included after it (std::optional's operator<=> against false).
// clang-format off
#include <stdbool.h>
#include <ldns/ldns.h>
// clang-format on

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nodedns::testing {

struct LdnsPktDeleter {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
using LdnsPkt = std::unique_ptr<ldns_pkt, LdnsPktDeleter>;

// EDNS option codes (IANA registry) the tests send.
constexpr uint16_t kOptionClientSubnet = 8;  // RFC 7871
constexpr uint16_t kOptionCookie = 10;       // RFC 7873
constexpr uint16_t kOptionPadding = 12;      // RFC 7830

struct EdnsOption {
  uint16_t code = 0;
  std::vector<uint8_t> data;
  bool operator==(const EdnsOption&) const = default;
};

struct MessageSpec {
  std::string qname = "example.com.";
  uint16_t qtype = 1;
  uint8_t rcode = 0;
  uint16_t id = 0x1234;
  bool qr = true;
  bool tc = false;
  bool rd = true;
  bool cd = false;
  // Records in zone-file presentation format, e.g. "example.com. 300 IN A 192.0.2.1".
  std::vector<std::string> answer, authority, additional;
  bool edns = false;
  bool do_bit = false;
  uint16_t udp_size = 1232;
  std::vector<EdnsOption> edns_options;  // in the OPT record, in order (needs edns)
};

// Builds the wire form with ldns (which compresses names). Aborts the test binary on a bad spec.
std::vector<uint8_t> Build(const MessageSpec& spec);
// A plain query: RD set, optionally with EDNS.
std::vector<uint8_t> BuildQuery(std::string_view qname, uint16_t qtype, bool edns = false,
                                bool do_bit = false, uint16_t id = 0x4242);
// Parses with ldns; nullptr if ldns rejects the bytes.
LdnsPkt Parse(std::span<const uint8_t> wire);
// The options of a message's OPT record, in order; empty without OPT or options. Aborts the test
// binary if ldns cannot parse the message.
std::vector<EdnsOption> EdnsOptions(std::span<const uint8_t> wire);
// Uncompressed wire form of a presentation-format name.
std::vector<uint8_t> WireName(std::string_view name);
// All TTLs of a parsed packet's answer, authority and additional sections (OPT excluded), in order.
std::vector<uint32_t> AllTtls(const ldns_pkt* pkt);
// The addresses of a reply's A and AAAA answer records, in order; empty if ldns rejects the bytes.
std::vector<std::string> AnswerAddresses(std::span<const uint8_t> reply);

}  // namespace nodedns::testing

#endif  // NODEDNS_TESTS_TESTING_DNS_BUILDER_H_
