#!/usr/bin/env python3
"""Print harness result files in a compact form.

Usage: python3 show.py OUT/results/*.json

Scenario files (<scenario>.json, {peer: {step: result}}) print one line per kdig
query plus the upstream's log; case 7 files (case7.json, case7-knot.json) print one
Markdown table row per odd query, one column per peer. Per-peer case-7 files
(case7.<peer>.<udp|tcp>.json) are covered by case7.json and skipped.
"""
import json
import os
import sys


def ede(e):
    """'EDE n' for each Extended DNS Error (RFC 8914) in the OPT data kdig printed as hex."""
    h = (e.get("opt_fields") or {}).get("RDATAHEX", "")
    try:
        b = bytes.fromhex(h)
    except ValueError:
        return ""
    out = []
    while len(b) >= 4:
        code, ln = int.from_bytes(b[:2], "big"), int.from_bytes(b[2:4], "big")
        if code == 15 and ln >= 2:
            out.append("EDE %d" % int.from_bytes(b[4:6], "big"))
        b = b[4 + ln:]
    return " ".join(out)


def show_scenario(d):
    for peer, v in d.items():
        print("--", peer)
        if "error" in v:
            print(v["error"][-1500:])
            continue
        for k, e in v.items():
            if k in ("events", "upstream"):
                continue
            if isinstance(e, dict):
                print("  %-18s %s %s %s an=%s ns=%s ttls=%s %s auth=%s size=%s %sms %s %s %s" % (
                    k, e.get("transport"), e.get("rcode"), e.get("flags"), e.get("an"),
                    e.get("ns"), e.get("answer_ttls"), e.get("answer_sample"),
                    e.get("auth_sample"), e.get("size"), e.get("ms"), e.get("result", ""),
                    e.get("opt_fields", ""), ede(e)))
            else:
                print("  %-18s %s" % (k, e))
        for x in v.get("upstream", []):
            print("   UP", {k: x.get(k) for k in ("t", "ev", "transport", "conn", "qname",
                                                  "qtype", "qclass", "sent", "reason",
                                                  "open_for", "queries", "nq_on_conn")})


def case7_cell(r):
    """One query7.py result as a short table cell."""
    if "rcode" not in r:
        return r.get("result") or r.get("error", "?")
    flags = r.get("flags", "").split()
    q = r.get("question_echoed")
    parts = [r["rcode"], "OPT " + ("yes" if r.get("opt") else "no"),
             "Q echoed" if q is True else ("Q none (QD=0)" if r.get("qd") == 0
                                          else "Q not echoed"),
             "RA " + ("yes" if "RA" in flags else "no"),
             "AA " + ("yes" if "AA" in flags else "no"),
             "an=%s ns=%s" % (r.get("an"), r.get("ns"))]
    if r.get("opcode"):
        parts.append("opcode %s" % r["opcode"])
    if r.get("opt_rdata"):
        parts.append("OPT rdata " + r["opt_rdata"])
    if "upstream_saw" in r:
        up = r["upstream_saw"]
        if not up:
            parts.append("upstream: not seen")
        else:
            e = up[0]
            extra = ""
            if e.get("trailing"):
                extra += ", %s trailing bytes" % e["trailing"]
            if e.get("opt_rdlen"):
                extra += ", OPT rdlen %s" % e["opt_rdlen"]
            parts.append("upstream saw %d (%s, opcode %s, qtype %s, class %s%s)" % (
                len(up), e.get("transport"), e.get("opcode"), e.get("qtype"),
                e.get("qclass"), extra))
    parts.append("%s ms" % r.get("ms"))
    return "; ".join(parts)


def show_case7(d):
    peers = list(d)
    for kind in ("udp", "tcp"):
        print("\nover %s:\n" % kind.upper())
        print("| query | " + " | ".join(peers) + " |")
        print("|---" * (len(peers) + 1) + "|")
        rows = {}
        for p in peers:
            if "error" in d[p]:
                continue
            for r in d[p].get(kind, []):
                rows.setdefault(r["test"], {})[p] = case7_cell(r)
        for test, cells in rows.items():
            print("| %s | %s |" % (test, " | ".join(cells.get(p, "-") for p in peers)))
        for p in peers:
            if "error" in d[p]:
                print("\n%s: ERROR\n%s" % (p, d[p]["error"][-1500:]))


def main():
    for f in sys.argv[1:]:
        base = os.path.basename(f)
        if base.startswith("case7.") and base.count(".") == 3:
            continue  # case7.<peer>.<udp|tcp>.json: included in case7.json
        with open(f) as fh:
            d = json.load(fh)
        print("=====", f)
        if base.startswith("case7"):
            show_case7(d)
        else:
            show_scenario(d)


if __name__ == "__main__":
    main()
