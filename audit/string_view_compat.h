// Conversions between std::string_view and absl::string_view. Debian's Abseil is built in a mode
// where absl::string_view is its own class, not an alias of std::string_view, so the two do not
// convert implicitly.
#ifndef NODEDNS_AUDIT_STRING_VIEW_COMPAT_H_
#define NODEDNS_AUDIT_STRING_VIEW_COMPAT_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace nodedns::audit::internal {

inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace nodedns::audit::internal

#endif  // NODEDNS_AUDIT_STRING_VIEW_COMPAT_H_
