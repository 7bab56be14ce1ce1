// Renders audit results as a human-readable table or as the versioned JSON document described in
// docs/audit.md ("JSON schema"). JSON is written by hand: no JSON library is a dependency.
#ifndef NODEDNS_AUDIT_REPORT_H_
#define NODEDNS_AUDIT_REPORT_H_

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit.h"

namespace nodedns::audit {

// Version of the JSON schema; bumped on any incompatible change.
inline constexpr int kJsonSchemaVersion = 1;

// Returns `s` as a JSON string literal, quotes included (RFC 8259 escaping; bytes >= 0x80 are
// passed through, control characters become \u00XX).
std::string JsonString(std::string_view s);

void RenderTable(const std::vector<FileReport>& reports, std::ostream& out);
// One file's section of the table (its "== path" header and lines) and its element of the JSON
// "files" array: for documents that embed file reports (audit --node, node_audit.h).
void RenderFileTable(const FileReport& r, std::ostream& out);
// RenderFileTable without its "== PATH" line: for a report that names the file itself.
void RenderFileBody(const FileReport& r, std::ostream& out);
// The "queries:" line of a client or pod seen by a proxy that counts queries (query_sample > 0):
// all its queries (LiveWaste::queries), how they were counted, and the share of them wasted.
std::string QueriesSeenText(const LiveWaste& w);
// The same as JSON members: "queries":N|null,"queries_error":N,"query_sample":N.
std::string QueriesJsonMembers(const LiveWaste& w);
std::string FileReportJson(const FileReport& r);
void RenderJson(const std::vector<FileReport>& reports, std::ostream& out);

}  // namespace nodedns::audit

#endif  // NODEDNS_AUDIT_REPORT_H_
