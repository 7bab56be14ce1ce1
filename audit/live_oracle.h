// `nodedns audit --resolve ADDR:PORT`: an ExistenceOracle that asks a real DNS server (with
// ldns) instead of assuming which candidate names exist, so the walks show real outcomes.
#ifndef NODEDNS_AUDIT_LIVE_ORACLE_H_
#define NODEDNS_AUDIT_LIVE_ORACLE_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "audit/walk.h"

namespace nodedns::audit {

struct ServerAddress {
  std::string ip;  // IPv4 or IPv6 literal.
  int port = 53;
};

// Parses "IPv4", "IPv4:PORT", "IPv6", "[IPv6]" or "[IPv6]:PORT".
absl::StatusOr<ServerAddress> ParseServerAddress(std::string_view text);

// Sends an A and an AAAA query per candidate (recursion desired, one retry, 2 s timeout) and
// caches the result per name. Combines the two answers the way the libcs do: records in either
// answer mean the name resolves; otherwise an NXDOMAIN means it does not exist; otherwise NOERROR
// means NODATA; any other rcode is kServfail.
class LiveOracle {
 public:
  explicit LiveOracle(ServerAddress server) : server_(std::move(server)) {}

  Outcome Lookup(std::string_view qname);

  // First transport error (timeout, unreachable); OK while every query got an answer. A walk
  // built while this is not OK is meaningless and the command exits 2.
  const absl::Status& status() const { return status_; }
  int queries_sent() const { return queries_sent_; }
  std::string Describe() const;  // "ADDR:PORT" as given to --resolve.

  // An ExistenceOracle that calls Lookup(); `this` must outlive it.
  ExistenceOracle AsOracle();

 private:
  bool IsIpv6Literal() const;

  ServerAddress server_;
  std::map<std::string, Outcome> cache_;
  absl::Status status_;
  int queries_sent_ = 0;
};

}  // namespace nodedns::audit

#endif  // NODEDNS_AUDIT_LIVE_ORACLE_H_
