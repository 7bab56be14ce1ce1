// Findings produced by `nodedns audit`: one problem in a resolv.conf, with a severity, a stable
// machine-readable id, the line it was found on and a concrete fix.
#ifndef NODEDNS_AUDIT_FINDING_H_
#define NODEDNS_AUDIT_FINDING_H_

#include <optional>
#include <string>
#include <string_view>

namespace nodedns::audit {

// Ordered so that a larger value is more severe; --fail-on compares with >=.
enum class Severity { kInfo = 0, kWarning = 1, kError = 2 };

// "info", "warning" or "error".
std::string_view SeverityName(Severity severity);
// Inverse of SeverityName; nullopt for anything else.
std::optional<Severity> ParseSeverity(std::string_view name);

struct Finding {
  // Stable identifier (e.g. "ndots-k8s-default"); documented in docs/audit.md. Never reworded.
  std::string id;
  Severity severity = Severity::kInfo;
  // 1-based line in the file the finding is about; 0 when it concerns the file as a whole.
  int line = 0;
  std::string message;
  std::string fix;
};

}  // namespace nodedns::audit

#endif  // NODEDNS_AUDIT_FINDING_H_
