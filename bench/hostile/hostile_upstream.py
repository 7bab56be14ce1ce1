#!/usr/bin/env python3
"""Scripted hostile DNS upstream (stdlib only) for testing DNS forwarders/caches.

Listens on ONE loopback port for both UDP and TCP and answers every query
according to the behaviour selected with --case NAME (see CASES below).
Every query received is logged as one JSON line (to --log, default stderr)
so a test can tell how many queries reached the upstream, over which
transport and on which TCP connection.

Usage:
    python3 hostile_upstream.py --case stall-tcp --port 15353 --log up.jsonl

Safety bounds: the process exits by itself after --max-runtime seconds
(default 900); every socket operation has a timeout; TCP connections are
closed after at most --hold seconds (default 40) of being stalled.

Cases (the "normal" behaviour is: A -> 192.0.2.1 TTL 300, TXT -> "hostile-upstream",
anything else -> NOERROR/NODATA with an SOA (TTL 60) in authority; RA set,
AA clear, question echoed, OPT echoed (size 1232) if the query had one):

  normal              normal answers on both transports.
  chaos               normal, plus class CH TXT queries (version.bind, id.server,
                      hostname.bind, ...) answered with TXT "upstream-secret".
  stall-tcp           the first TCP connection that carries a query whose name starts
                      with "stall" becomes stalled: that query and every later query on
                      that connection are read and logged but never answered; the
                      connection is held open --hold s, then closed. All other TCP
                      connections (and later "stall*" queries on them) answer normally.
                      UDP answers normally.

  tc-both             every reply (UDP and TCP) is empty with TC=1.
  mal-ptr-loop        (3a) answer owner name = label "a" + pointer back to that label
                      (infinite compression loop).
  mal-ptr-midlabel    (3b) RR1 owner = one label "z"+<wire qname> + pointer to qname;
                      RR2 owner = pointer to the 2nd octet inside that label, which decodes
                      to exactly the qname (A 192.0.2.4). A lenient decoder accepts it.
  mal-ptr-midlabel-ext (3b') answer owner = pointer into the text of the qname's last
                      label (a letter, i.e. a length octet with top bits 01).
  mal-label-0x40      (3c) answer owner name starts with length byte 0x40
                      (extended label type 01, followed by 64 'a' and the root).
  mal-name-long       (3d) answer owner name = 4 labels of 63 'x' + pointer to the
                      qname: > 255 octets once expanded.
  mal-cname-loop      (3e) answer = qname CNAME <"c" + pointer back to itself>.
  ttl-80000064        A answer with TTL 0x80000064 (top bit set).
  ttl-ffffffff        A answer with TTL 0xFFFFFFFF.
  nodata-soa-ffffffff NOERROR, no answer, SOA in authority with TTL 0xFFFFFFFF
                      (SOA MINIMUM 3600).
  nodata-soa-both-ffffffff  same but SOA MINIMUM is 0xFFFFFFFF too.
  big-tcp             (5a) A RRset of 600 records (198.18.x.y, TTL 300) over TCP;
                      over UDP an empty reply with TC=1.
  big-udp-notc        (5b) A RRset of 370 records (~6,000 bytes) sent over UDP
                      WITHOUT TC, ignoring the advertised EDNS size; same over TCP.
  stale-silent        (8) the first query for a name starting with "stale" gets
                      A 192.0.2.8 with TTL 1; from then on the upstream is dead: no query
                      is answered, "health." ones included.
  stale-servfail      (8) the same, but dead means SERVFAIL to every query.
  stale-name-silent   (8) the same, but only "stale*" names go silent; everything else
                      (health checks too) keeps its normal answer.

Names starting with "health." (use as dnsdist checkName) always get the normal answer,
so health checks never see the hostile behaviour; except in stale-silent and
stale-servfail, where the whole upstream dies.
"""
import argparse
import json
import socket
import struct
import sys
import threading
import time

T0 = time.monotonic()
LOG_LOCK = threading.Lock()
LOG_FH = sys.stderr
STALLED_CONN = None  # stall-tcp: number of the TCP connection chosen to stall
DEAD = False  # stale-*: set once the first "stale*" query was answered


def log(**kw):
    kw["t"] = round(time.monotonic() - T0, 3)
    with LOG_LOCK:
        LOG_FH.write(json.dumps(kw, sort_keys=True) + "\n")
        LOG_FH.flush()


# ---------------------------------------------------------------- wire helpers

def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            b = label.encode()
            out += bytes([len(b)]) + b
    return out + b"\x00"


def parse_query(data):
    """Best-effort parse of a query: header, first question, OPT presence.

    Never raises; returns a dict with what could be read."""
    q = {"len": len(data)}
    if len(data) < 12:
        q["error"] = "short"
        return q
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", data[:12])
    q.update(id=qid, flags=flags, opcode=(flags >> 11) & 0xF, rd=flags & 0x100,
             qdcount=qd, ancount=an, nscount=ns, arcount=ar)
    off = 12
    if qd >= 1:
        labels = []
        try:
            for _ in range(128):  # bounded
                ln = data[off]
                if ln == 0:
                    off += 1
                    break
                if ln & 0xC0:
                    raise ValueError("compressed/extended label in qname")
                labels.append(data[off + 1:off + 1 + ln].decode("ascii", "replace"))
                off += 1 + ln
            qtype, qclass = struct.unpack("!HH", data[off:off + 4])
            off += 4
            q.update(qname=".".join(labels).lower() + ".", qtype=qtype, qclass=qclass,
                     question=data[12:off])
        except Exception as e:  # malformed question
            q["error"] = "question: %s" % e
            return q
    # skip other questions/answer/authority (rare in queries) -> only look for OPT
    # when the query is the usual shape (1 question, no an/ns).
    if ar and an == 0 and ns == 0 and qd <= 1:
        try:
            if data[off] == 0:
                rtype, rclass = struct.unpack("!HH", data[off + 1:off + 5])
                if rtype == 41:
                    rdlen = struct.unpack("!H", data[off + 9:off + 11])[0]
                    q["edns_size"] = rclass
                    q["opt_rdlen"] = rdlen
                    q["trailing"] = len(data) - (off + 11 + rdlen)
        except Exception:
            pass
    return q


def header(q, rcode=0, tc=False, aa=False, qd=1, an=0, ns=0, ar=0):
    flags = 0x8000 | (q.get("opcode", 0) << 11) | (q.get("rd", 0) and 0x0100) | 0x0080 | rcode
    if tc:
        flags |= 0x0200
    if aa:
        flags |= 0x0400
    return struct.pack("!HHHHHH", q.get("id", 0), flags, qd, an, ns, ar)


def rr(owner, rtype, rclass, ttl, rdata):
    return owner + struct.pack("!HHIH", rtype, rclass, ttl & 0xFFFFFFFF, len(rdata)) + rdata


QNAME_PTR = b"\xc0\x0c"  # the question name always sits at offset 12


def opt_rr(q):
    if "edns_size" in q:
        return b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0), 1
    return b"", 0


def soa_rdata(minimum=60):
    return (encode_name("ns.hostile.test") + encode_name("hostmaster.hostile.test")
            + struct.pack("!IIIII", 1, 3600, 600, 86400, minimum))


def build(q, answers=(), authority=(), rcode=0, tc=False, aa=False, with_opt=True):
    """answers/authority: lists of already-encoded RRs."""
    opt, nopt = opt_rr(q) if with_opt else (b"", 0)
    question = q.get("question", b"")
    return (header(q, rcode=rcode, tc=tc, aa=aa, qd=1 if question else 0, an=len(answers),
                   ns=len(authority), ar=nopt)
            + question + b"".join(answers) + b"".join(authority) + opt)


def normal_reply(q):
    if "question" not in q:
        return build(q, rcode=1 if "error" in q else 0)  # FORMERR if unparsable
    qt, qc = q["qtype"], q["qclass"]
    if qt == 1:
        return build(q, [rr(QNAME_PTR, 1, qc, 300, bytes([192, 0, 2, 1]))])
    if qt == 16:
        return build(q, [rr(QNAME_PTR, 16, qc, 300, b"\x10hostile-upstream")])
    return build(q, authority=[rr(QNAME_PTR, 6, qc, 60, soa_rdata())])


def big_rrset(q, n):
    recs = [rr(QNAME_PTR, 1, 1, 300, bytes([198, 18, i // 256, i % 256])) for i in range(n)]
    return build(q, recs)


# ----------------------------------------------------------------- the cases

def reply_for(case, q, transport, conn_no):
    """Return the reply bytes, or None to send nothing (stall)."""
    if "question" not in q:
        return normal_reply(q)
    qlen = len(q["question"])
    ans_off = 12 + qlen  # where the first answer RR starts
    qname_wire = q["question"][:-4]

    if case.startswith("stale-"):
        global DEAD
        if case == "stale-name-silent" and not q["qname"].startswith("stale"):
            return normal_reply(q)
        with LOG_LOCK:
            dead, first = DEAD, q["qname"].startswith("stale")
            DEAD = DEAD or first
        if not dead:
            if first:
                return build(q, [rr(QNAME_PTR, 1, 1, 1, bytes([192, 0, 2, 8]))])
            return normal_reply(q)
        return build(q, rcode=2) if case == "stale-servfail" else None
    if case == "normal" or q["qname"].startswith("health."):
        return normal_reply(q)
    if case == "chaos":
        if q["qclass"] == 3 and q["qtype"] == 16:
            return build(q, [rr(QNAME_PTR, 16, 3, 0, b"\x0fupstream-secret")])
        return normal_reply(q)
    if case == "stall-tcp":
        global STALLED_CONN
        with LOG_LOCK:
            if (transport == "tcp" and STALLED_CONN is None
                    and q["qname"].startswith("stall")):
                STALLED_CONN = conn_no
        if transport == "tcp" and conn_no == STALLED_CONN:
            return None
        return normal_reply(q)
    if case == "tc-both":
        return build(q, tc=True)
    if case == "big-tcp":
        if transport == "udp":
            return build(q, tc=True)
        return big_rrset(q, 600)
    if case == "big-udp-notc":
        return big_rrset(q, 370)  # 12+q+370*16 ~ 6,000 bytes, TC never set
    if case == "ttl-80000064":
        return build(q, [rr(QNAME_PTR, 1, 1, 0x80000064, bytes([192, 0, 2, 64]))])
    if case == "ttl-ffffffff":
        return build(q, [rr(QNAME_PTR, 1, 1, 0xFFFFFFFF, bytes([192, 0, 2, 255]))])
    if case == "nodata-soa-ffffffff":
        return build(q, authority=[rr(QNAME_PTR, 6, 1, 0xFFFFFFFF, soa_rdata(3600))])
    if case == "nodata-soa-both-ffffffff":
        return build(q, authority=[rr(QNAME_PTR, 6, 1, 0xFFFFFFFF, soa_rdata(0xFFFFFFFF))])
    if case == "mal-ptr-loop":
        # owner at ans_off: 01 'a' C0 <ans_off>  -> a.a.a.a.... forever
        owner = b"\x01a" + struct.pack("!H", 0xC000 | ans_off)
        return build(q, [rr(owner, 1, 1, 300, bytes([192, 0, 2, 3]))])
    if case == "mal-ptr-midlabel":
        # RR1: owner = ONE label whose bytes are "z" + the full wire qname (incl. its root
        # octet), then a pointer to the qname: i.e. a child name of the qname, A 192.0.2.40.
        # RR2: owner = pointer to the 2nd octet INSIDE that label; read from there the
        # bytes spell exactly the qname, so a decoder that allows pointers into the middle
        # of a label sees "qname A 192.0.2.4".
        label = b"z" + qname_wire
        owner1 = bytes([len(label)]) + label + QNAME_PTR
        target = ans_off + 2  # length octet at ans_off, 'z' at ans_off+1
        owner2 = struct.pack("!H", 0xC000 | target)
        return build(q, [rr(owner1, 1, 1, 300, bytes([192, 0, 2, 40])),
                         rr(owner2, 1, 1, 300, bytes([192, 0, 2, 4]))])
    if case == "mal-ptr-midlabel-ext":
        # pointer to the 2nd octet of the last label's text of the question name (e.g. the
        # 'a' of "lab"): a letter read as a length octet has top bits 01 (extended label type).
        off, last = 12, 12
        while qname_wire[off - 12] != 0:
            last = off
            off += 1 + qname_wire[off - 12]
        target = last + 2
        owner = struct.pack("!H", 0xC000 | target)
        return build(q, [rr(owner, 1, 1, 300, bytes([192, 0, 2, 4]))])
    if case == "mal-label-0x40":
        owner = b"\x40" + b"a" * 64 + b"\x00"
        return build(q, [rr(owner, 1, 1, 300, bytes([192, 0, 2, 5]))])
    if case == "mal-name-long":
        owner = (b"\x3f" + b"x" * 63) * 4 + QNAME_PTR  # 256 + len(qname) octets
        return build(q, [rr(owner, 1, 1, 300, bytes([192, 0, 2, 6]))])
    if case == "mal-cname-loop":
        rdata_off = ans_off + 2 + 10  # owner is a 2-byte pointer, then 10-byte RR header
        target = b"\x01c" + struct.pack("!H", 0xC000 | rdata_off)
        return build(q, [rr(QNAME_PTR, 5, 1, 300, target)])
    raise SystemExit("unknown case %r" % case)


CASES = ["normal", "chaos", "stall-tcp", "tc-both", "big-tcp", "big-udp-notc",
         "ttl-80000064", "ttl-ffffffff", "nodata-soa-ffffffff", "nodata-soa-both-ffffffff",
         "mal-ptr-loop", "mal-ptr-midlabel", "mal-ptr-midlabel-ext", "mal-label-0x40",
         "mal-name-long", "mal-cname-loop", "stale-silent", "stale-servfail",
         "stale-name-silent"]


def summary(q):
    return {k: q[k] for k in ("id", "opcode", "qdcount", "qname", "qtype", "qclass",
                              "edns_size", "opt_rdlen", "trailing", "error", "len") if k in q}


# ------------------------------------------------------------------ servers

def udp_server(sock, case, deadline):
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            data, addr = sock.recvfrom(65535)
        except socket.timeout:
            continue
        q = parse_query(data)
        resp = reply_for(case, q, "udp", 0)
        log(ev="query", transport="udp", src=addr[1], sent=len(resp) if resp else None,
            **summary(q))
        if resp is not None:
            sock.sendto(resp, addr)


def recv_exact(conn, n, until):
    buf = b""
    while len(buf) < n:
        if time.monotonic() > until:
            raise socket.timeout()
        try:
            chunk = conn.recv(n - len(buf))
        except socket.timeout:
            continue
        if not chunk:
            return None
        buf += chunk
    return buf


def tcp_conn(conn, addr, conn_no, case, hold, deadline):
    conn.settimeout(0.5)
    log(ev="tcp-accept", conn=conn_no, src=addr[1])
    opened = time.monotonic()
    stalled = False
    nq = 0
    reason = "eof"
    try:
        while True:
            # a stalled connection is closed after `hold` s; a normal idle one after 60 s
            limit = opened + hold if stalled else time.monotonic() + 60
            limit = min(limit, deadline)
            try:
                hdr = recv_exact(conn, 2, limit)
            except socket.timeout:
                reason = "held-timeout" if stalled else "idle-timeout"
                break
            if hdr is None:
                break
            ln = struct.unpack("!H", hdr)[0]
            try:
                data = recv_exact(conn, ln, limit)
            except socket.timeout:
                reason = "timeout-mid-message"
                break
            if data is None:
                break
            nq += 1
            q = parse_query(data)
            resp = reply_for(case, q, "tcp", conn_no)
            log(ev="query", transport="tcp", conn=conn_no, nq_on_conn=nq,
                sent=len(resp) if resp else None, **summary(q))
            if resp is None:
                stalled = True  # never answer on this connection; keep reading
                continue
            conn.sendall(struct.pack("!H", len(resp)) + resp)
    except OSError as e:
        reason = "oserror: %s" % e
    finally:
        log(ev="tcp-close", conn=conn_no, reason=reason, queries=nq,
            open_for=round(time.monotonic() - opened, 3))
        conn.close()


def tcp_server(sock, case, hold, deadline):
    sock.settimeout(0.5)
    n = 0
    while time.monotonic() < deadline and n < 10000:
        try:
            conn, addr = sock.accept()
        except socket.timeout:
            continue
        n += 1
        threading.Thread(target=tcp_conn, args=(conn, addr, n, case, hold, deadline),
                         daemon=True).start()


def main():
    global LOG_FH
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", required=True, choices=CASES)
    ap.add_argument("--port", type=int, default=15353)
    ap.add_argument("--addr", default="127.0.0.1")
    ap.add_argument("--hold", type=float, default=40.0, help="seconds a stalled TCP conn is held")
    ap.add_argument("--max-runtime", type=float, default=900.0)
    ap.add_argument("--log", default="-")
    a = ap.parse_args()
    if a.log != "-":
        LOG_FH = open(a.log, "a")
    deadline = time.monotonic() + a.max_runtime
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    us.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    us.bind((a.addr, a.port))
    ts = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ts.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ts.bind((a.addr, a.port))
    ts.listen(64)
    log(ev="start", case=a.case, port=a.port)
    threading.Thread(target=udp_server, args=(us, a.case, deadline), daemon=True).start()
    threading.Thread(target=tcp_server, args=(ts, a.case, a.hold, deadline), daemon=True).start()
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    log(ev="exit")


if __name__ == "__main__":
    main()
