// Findings produced by `nodedns audit`. They are resolvconf::Finding, the type the resolv.conf
// parser reports its own findings in, so that the audit can list both together.
#ifndef NODEDNS_AUDIT_FINDING_H_
#define NODEDNS_AUDIT_FINDING_H_

#include <optional>
#include <string_view>

#include "resolvconf/finding.h"

namespace nodedns::audit {

using Severity = resolvconf::Severity;
using Finding = resolvconf::Finding;

// "info", "warning" or "error".
std::string_view SeverityName(Severity severity);
// Inverse of SeverityName; nullopt for anything else.
std::optional<Severity> ParseSeverity(std::string_view name);

}  // namespace nodedns::audit

#endif  // NODEDNS_AUDIT_FINDING_H_
