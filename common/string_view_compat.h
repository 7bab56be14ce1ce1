// Conversions between std::string_view and absl::string_view. Debian's Abseil is built with
// absl::string_view as a class of its own rather than an alias of std::string_view, so the two do
// not convert implicitly (absl::StrCat, absl::StrSplit and friends take only Abseil's).
#ifndef NODEDNS_COMMON_STRING_VIEW_COMPAT_H_
#define NODEDNS_COMMON_STRING_VIEW_COMPAT_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace nodedns {

inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace nodedns

#endif  // NODEDNS_COMMON_STRING_VIEW_COMPAT_H_
