// A problem found in a resolv.conf: a severity, a stable machine-readable id, the line it was found
// on and a concrete fix. The parser reports what glibc or musl would ignore or misread this way,
// and `nodedns audit` adds its own findings of the same type (audit/finding.h).
#ifndef NODEDNS_RESOLVCONF_FINDING_H_
#define NODEDNS_RESOLVCONF_FINDING_H_

#include <string>

namespace nodedns::resolvconf {

// Ordered so that a larger value is more severe; `nodedns audit --fail-on` compares with >=.
enum class Severity { kInfo = 0, kWarning = 1, kError = 2 };

struct Finding {
  // Stable identifier (e.g. "ndots-k8s-default"); documented in docs/audit.md. Never reworded.
  std::string id;
  Severity severity = Severity::kInfo;
  // 1-based line in the file the finding is about; 0 when it concerns the file as a whole.
  int line = 0;
  std::string message;
  std::string fix;
};

}  // namespace nodedns::resolvconf

#endif  // NODEDNS_RESOLVCONF_FINDING_H_
