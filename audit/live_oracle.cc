// Real-server oracle for `nodedns audit --resolve`, built on ldns. See live_oracle.h.
#include "audit/live_oracle.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <sys/time.h>

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/string_view_compat.h"

namespace nodedns::audit {
namespace internal {
namespace {

bool IsIpv4(const std::string& s) {
  in_addr a;
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool IsIpv6(const std::string& s) {
  in6_addr a;
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

// Result of one query: rcode and whether the answer section held records.
struct QueryResult {
  bool ok = false;
  ldns_pkt_rcode rcode = LDNS_RCODE_NOERROR;
  bool has_answer = false;
  std::string error;
};

QueryResult SendQuery(const ServerAddress& server, const std::string& qname, ldns_rr_type type) {
  QueryResult result;
  ldns_resolver* res = ldns_resolver_new();
  if (res == nullptr) {
    result.error = "out of memory";
    return result;
  }
  ldns_rdf* ns = ldns_rdf_new_frm_str(IsIpv4(server.ip) ? LDNS_RDF_TYPE_A : LDNS_RDF_TYPE_AAAA,
                                      server.ip.c_str());
  ldns_rdf* name = ldns_dname_new_frm_str(absl::StrCat(qname, ".").c_str());
  if (ns == nullptr || name == nullptr) {
    result.error = absl::StrCat("cannot build a query for '", qname, "'");
  } else {
    ldns_resolver_push_nameserver(res, ns);
    ldns_resolver_set_port(res, static_cast<uint16_t>(server.port));
    ldns_resolver_set_recursive(res, true);
    ldns_resolver_set_retry(res, 1);
    ldns_resolver_set_timeout(res, timeval{2, 0});
    ldns_resolver_set_fallback(res, true);  // Retry over TCP on truncation, as the libcs do.
    ldns_pkt* pkt = nullptr;
    ldns_status status = ldns_resolver_send(&pkt, res, name, type, LDNS_RR_CLASS_IN, LDNS_RD);
    if (status != LDNS_STATUS_OK || pkt == nullptr) {
      result.error = ldns_get_errorstr_by_id(status);
    } else {
      result.ok = true;
      result.rcode = ldns_pkt_get_rcode(pkt);
      result.has_answer = ldns_pkt_ancount(pkt) > 0 && result.rcode == LDNS_RCODE_NOERROR;
    }
    if (pkt != nullptr) ldns_pkt_free(pkt);
  }
  if (ns != nullptr) ldns_rdf_deep_free(ns);
  if (name != nullptr) ldns_rdf_deep_free(name);
  // push_nameserver copied `ns`; the resolver owns its copies.
  ldns_resolver_deep_free(res);
  return result;
}

}  // namespace
}  // namespace internal

absl::StatusOr<ServerAddress> ParseServerAddress(std::string_view text_in) {
  std::string text(text_in);
  ServerAddress out;
  std::string port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad --resolve address '", text, "'"));
    }
    out.ip = text.substr(1, close - 1);
    std::string rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return absl::InvalidArgumentError(absl::StrCat("bad --resolve address '", text, "'"));
      }
      port_text = rest.substr(1);
    }
    if (!internal::IsIpv6(out.ip)) {
      return absl::InvalidArgumentError(absl::StrCat("bad --resolve address '", text, "'"));
    }
  } else if (internal::IsIpv6(text)) {
    out.ip = text;
  } else {
    size_t colon = text.rfind(':');
    out.ip = colon == std::string::npos ? text : text.substr(0, colon);
    if (colon != std::string::npos) port_text = text.substr(colon + 1);
    if (!internal::IsIpv4(out.ip)) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad --resolve address '", text, "': expected ADDR:PORT with a numeric IP"));
    }
  }
  if (!port_text.empty()) {
    int port = 0;
    if (!absl::SimpleAtoi(Av(port_text), &port) || port <= 0 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("bad --resolve port in '", text, "'"));
    }
    out.port = port;
  }
  return out;
}

std::string LiveOracle::Describe() const {
  return IsIpv6Literal() ? absl::StrCat("[", server_.ip, "]:", server_.port)
                         : absl::StrCat(server_.ip, ":", server_.port);
}

bool LiveOracle::IsIpv6Literal() const { return internal::IsIpv6(server_.ip); }

Outcome LiveOracle::Lookup(std::string_view qname_in) {
  std::string qname(qname_in);
  auto it = cache_.find(qname);
  if (it != cache_.end()) return it->second;
  Outcome outcome = Outcome::kServfail;
  if (!status_.ok()) return outcome;  // The server is already known to be unreachable.
  internal::QueryResult a = internal::SendQuery(server_, qname, LDNS_RR_TYPE_A);
  ++queries_sent_;
  internal::QueryResult aaaa;
  if (a.ok) {
    aaaa = internal::SendQuery(server_, qname, LDNS_RR_TYPE_AAAA);
    ++queries_sent_;
  }
  if (!a.ok || !aaaa.ok) {
    status_ = absl::UnavailableError(absl::StrCat("no answer from ", Describe(), " for '", qname,
                                                  "': ", a.ok ? aaaa.error : a.error));
    return outcome;
  }
  if (a.has_answer || aaaa.has_answer) {
    outcome = Outcome::kAnswer;
  } else if (a.rcode == LDNS_RCODE_NXDOMAIN || aaaa.rcode == LDNS_RCODE_NXDOMAIN) {
    outcome = Outcome::kNxdomain;
  } else if (a.rcode == LDNS_RCODE_NOERROR && aaaa.rcode == LDNS_RCODE_NOERROR) {
    outcome = Outcome::kNodata;
  }
  cache_.emplace(qname, outcome);
  return outcome;
}

ExistenceOracle LiveOracle::AsOracle() {
  return [this](std::string_view, std::string_view qname) { return Lookup(qname); };
}

}  // namespace nodedns::audit
