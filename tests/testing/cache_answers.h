// Test-only builders for what the cache tests store: keys for a name, an A answer, a SOA record
// for negative answers. Header-only; link nodedns_cache and nodedns_testing.
#ifndef NODEDNS_TESTS_TESTING_CACHE_ANSWERS_H_
#define NODEDNS_TESTS_TESTING_CACHE_ANSWERS_H_

#include <cstdint>
#include <string>

#include "cache/cache_key.h"
#include "dns/wire.h"
#include "tests/testing/dns_builder.h"

namespace nodedns::testing {

inline cache::CacheKey KeyFor(const std::string& name, uint16_t qtype = dns::type::kA,
                              bool do_bit = false, bool cd = false) {
  auto wire = WireName(name);
  return cache::CacheKey(wire, qtype, dns::kClassIN, do_bit, cd);
}

// NOERROR with one A record for `name`.
inline MessageSpec Answer(const std::string& name, uint32_t ttl,
                          const std::string& addr = "192.0.2.1") {
  MessageSpec m;
  m.qname = name;
  m.answer = {name + " " + std::to_string(ttl) + " IN A " + addr};
  return m;
}

// A SOA record of `zone` in presentation form, for the authority section of negative answers.
inline std::string Soa(const std::string& zone, uint32_t ttl, uint32_t minimum) {
  return zone + " " + std::to_string(ttl) + " IN SOA ns." + zone + " host." + zone +
         " 1 7200 1800 86400 " + std::to_string(minimum);
}

}  // namespace nodedns::testing

#endif  // NODEDNS_TESTS_TESTING_CACHE_ANSWERS_H_
