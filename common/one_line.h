// Error messages are one line ("FILE:LINE: message"), but they quote what the operator wrote, and
// a quoted Corefile token, a JSON string or a command-line argument may hold a newline.
#ifndef NODEDNS_COMMON_ONE_LINE_H_
#define NODEDNS_COMMON_ONE_LINE_H_

#include <cstdio>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace nodedns {

// `text` with its line breaks and other control bytes (except tab) written as C escapes:
// "\n", "\r", "\x1b". Everything else, UTF-8 included, is kept.
inline std::string OneLine(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

// An error with its message made one line, as above; OK stays OK.
inline absl::Status OneLine(const absl::Status& status) {
  if (status.ok()) return status;
  const auto message = status.message();
  return absl::Status(status.code(), OneLine(std::string_view(message.data(), message.size())));
}

}  // namespace nodedns

#endif  // NODEDNS_COMMON_ONE_LINE_H_
