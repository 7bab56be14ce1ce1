#!/usr/bin/env python3
"""Case 7: hand-built odd queries (stdlib only). Sends each to a server on 127.0.0.1 and
prints/records rcode, flags, whether OPT/question come back, and (with --uplog, the
hostile upstream's JSON log) what the upstream received for it.

Usage: python3 query7.py --port P [--uplog upstream.jsonl] [--tcp] [--out file.json]
"""
import argparse
import json
import os
import socket
import struct
import time

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
          9: "NOTAUTH", 16: "BADVERS/BADSIG"}


def name(n):
    """Uncompressed wire form of a domain name."""
    labels = [x for x in n.rstrip(".").split(".") if x]
    return b"".join(bytes([len(x)]) + x.encode() for x in labels) + b"\0"


def opt(options=b"", size=1232, rdlen=None):
    """An OPT RR; rdlen overrides the RDATA length (to build a broken one)."""
    length = len(options) if rdlen is None else rdlen
    return b"\0" + struct.pack("!HHIH", 41, size, 0, length) + options


def msg(qid, qname, qtype, qclass=1, opcode=0, rd=True, qd=1, an=0, ns=0, ar=1,
        tail=b"", question=True, aa=False):
    flags = (opcode << 11) | (0x100 if rd else 0) | (0x400 if aa else 0)
    h = struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)
    q = name(qname) + struct.pack("!HH", qtype, qclass) if question else b""
    return h + q + tail


def soa_rr(zone):
    rd = name("ns." + zone) + name("h." + zone) + struct.pack("!IIIII", 1, 3600, 600, 86400, 60)
    return name(zone) + struct.pack("!HHIH", 6, 1, 0, len(rd)) + rd


COOKIE = struct.pack("!HH", 10, 8) + bytes.fromhex("0102030405060708")


def tests():
    z = "q7.lab"
    return [
        ("baseline A +OPT", msg(1, "ok." + z, 1, tail=opt())),
        ("NOTIFY opcode, SOA, +OPT", msg(2, z, 6, opcode=4, rd=False, aa=True, tail=opt())),
        ("QDCOUNT=0 +OPT+COOKIE", msg(3, "", 0, qd=0, question=False, tail=opt(COOKIE))),
        ("trailing garbage after OPT",
         msg(4, "garbage." + z, 1, tail=opt() + b"\xde\xad\xbe\xef\x00\x01")),
        ("EDNS option len past OPT RDATA",
         msg(5, "badopt." + z, 1, tail=opt(struct.pack("!HH", 65001, 100) + b"abcd"))),
        ("IXFR over UDP (SOA in authority)", msg(6, z, 251, ns=1, tail=soa_rr(z) + opt())),
        ("IXFR over UDP (no SOA)", msg(7, z, 251, tail=opt())),
        ("AXFR over UDP", msg(8, z, 252, tail=opt())),
        ("qtype 250 (TSIG)", msg(9, "tsig." + z, 250, tail=opt())),
        ("qtype 128", msg(10, "t128." + z, 128, tail=opt())),
        ("class HS(4) A", msg(11, "hs." + z, 1, qclass=4, tail=opt())),
        ("class ANY(255) A", msg(12, "any." + z, 1, qclass=255, tail=opt())),
    ]


def parse(resp, query):
    r = {"size": len(resp)}
    if len(resp) < 12:
        r["error"] = "short reply"
        return r
    qid, fl, qd, an, ns, ar = struct.unpack("!HHHHHH", resp[:12])
    r.update(id_ok=qid == struct.unpack("!H", query[:2])[0], opcode=(fl >> 11) & 15,
             flags=" ".join(f for f, b in (("QR", 0x8000), ("AA", 0x400), ("TC", 0x200),
                                           ("RD", 0x100), ("RA", 0x80), ("AD", 0x20), ("CD", 0x10))
                            if fl & b),
             qd=qd, an=an, ns=ns, ar=ar)
    rcode = fl & 15
    # question echoed? compare raw question bytes when both have one
    qq = struct.unpack("!H", query[4:6])[0]
    off = 12
    if qd:
        o = 12
        for _ in range(128):
            l = resp[o]
            if l == 0:
                o += 1
                break
            if l & 0xC0:
                o += 2
                break
            o += 1 + l
        o += 4
        rq = resp[12:o]
        lq = None
        if qq:
            o2 = 12
            while query[o2] != 0:
                o2 += 1 + query[o2]
            lq = query[12:o2 + 5]
        r["question_echoed"] = ((rq.lower() == lq.lower()) if lq
                                else "reply has question, query had none")
        off = o
    else:
        r["question_echoed"] = False if qq else "n/a (no question)"
    # walk RRs to find OPT
    r["opt"] = False
    try:
        for i in range(an + ns + ar):
            # name
            for _ in range(128):
                l = resp[off]
                if l == 0:
                    off += 1
                    break
                if l & 0xC0:
                    off += 2
                    break
                off += 1 + l
            t, c, ttl, rdl = struct.unpack("!HHIH", resp[off:off + 10])
            if t == 41:
                r["opt"] = True
                r["opt_size"] = c
                ercode = ttl >> 24
                rcode |= ercode << 4
                if rdl:
                    r["opt_rdata"] = resp[off + 10:off + 10 + rdl].hex()
            off += 10 + rdl
    except Exception as e:
        r["parse_error"] = str(e)
    r["rcode"] = RCODES.get(rcode, str(rcode))
    return r


def upstream_count(uplog):
    if not uplog or not os.path.exists(uplog):
        return 0, []
    with open(uplog) as f:
        evs = [json.loads(line) for line in f]
    evs = [e for e in evs if e.get("ev") == "query"
           and not (e.get("qname") or "").startswith("health.")]
    return len(evs), evs


def send(port, data, tcp, timeout=4.0):
    t = time.monotonic()
    if tcp:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            s.sendall(struct.pack("!H", len(data)) + data)
            hdr = b""
            while len(hdr) < 2:
                c = s.recv(2 - len(hdr))
                if not c:
                    return None, time.monotonic() - t
                hdr += c
            ln = struct.unpack("!H", hdr)[0]
            buf = b""
            while len(buf) < ln:
                c = s.recv(ln - len(buf))
                if not c:
                    break
                buf += c
            return buf, time.monotonic() - t
        except (socket.timeout, OSError):
            return None, time.monotonic() - t
        finally:
            s.close()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(data, ("127.0.0.1", port))
        resp, _ = s.recvfrom(65535)
        return resp, time.monotonic() - t
    except socket.timeout:
        return None, time.monotonic() - t
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--uplog")
    ap.add_argument("--tcp", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    out = []
    for label, data in tests():
        before, _ = upstream_count(a.uplog)
        resp, dt = send(a.port, data, a.tcp)
        time.sleep(0.3)
        after, evs = upstream_count(a.uplog)
        r = {"test": label, "ms": round(dt * 1000, 1), "query_hex": data.hex()}
        if resp is None:
            r["result"] = "no reply (timeout 4 s)" if dt > 3.5 else "no reply (connection closed)"
        else:
            r.update(parse(resp, data))
        if a.uplog:
            keys = ("transport", "opcode", "qdcount", "qname", "qtype", "qclass",
                    "edns_size", "opt_rdlen", "trailing", "len")
            r["upstream_saw"] = [{k: e.get(k) for k in keys} for e in evs[before:after]]
        out.append(r)
        print(json.dumps(r))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
