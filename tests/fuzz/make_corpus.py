#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into tests/fuzz/corpus/<target>/ (docs/fuzzing.md).

Every seed is built here, byte by byte, so that the corpus is reproducible and reviewable: real
queries (EDNS, cookies, ECS, search-path expansions, zero or two questions, truncated, compressed
question) and real responses (A, CNAME chains with compression, NXDOMAIN and NODATA with SOA,
SERVFAIL, TC, BADVERS, compression loops, 513 records, and each kind of malformed name
ParseResponseLayout refuses), resolv.conf variants, Corefiles (the ones under tests/corefile/testdata
and tests/nodecache/testdata, and small broken ones), kube-dns ConfigMaps with base Corefiles,
node-cache command lines, client TCP byte streams, and worker scripts (client messages, upstream
replies, preloaded cache entries). Files found by
fuzzing (reproducers) live beside them under names starting with "found-"; this script leaves
those alone and rewrites the rest.

Usage: tests/fuzz/make_corpus.py [--out DIR]   (default: the corpus/ directory next to it)
"""

import argparse
import pathlib
import struct

# Header flags (RFC 1035 §4.1.1).
QR, AA, TC, RD, RA, AD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0020, 0x0010
A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, OPT, RRSIG, AXFR, ANY = (
    1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 46, 252, 255)
NAPTR, KX, DNAME, NSEC = 35, 36, 39, 47
IN, CH = 1, 3
PTR_QNAME = b"\xc0\x0c"  # compression pointer to the question name


def name(text):
    """Uncompressed wire form of a presentation name ("." for the root)."""
    out = b""
    for label in text.strip(".").split(".") if text.strip(".") else []:
        raw = label.encode()
        assert 0 < len(raw) < 64, label
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def header(id_=0x1234, flags=RD, qd=1, an=0, ns=0, ar=0):
    return struct.pack(">HHHHHH", id_, flags, qd, an, ns, ar)


def question(qname, qtype=A, qclass=IN):
    return (name(qname) if isinstance(qname, str) else qname) + struct.pack(">HH", qtype, qclass)


def rr(owner, rtype, ttl, rdata, rclass=IN):
    owner = name(owner) if isinstance(owner, str) else owner
    return owner + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def opt(udp=1232, ext_rcode=0, version=0, do=False, options=b""):
    ttl = ext_rcode << 24 | version << 16 | (0x8000 if do else 0)
    return b"\x00" + struct.pack(">HHIH", OPT, udp, ttl, len(options)) + options


def edns_option(code, data):
    return struct.pack(">HH", code, len(data)) + data


def soa_rdata(mname=PTR_QNAME, rname=PTR_QNAME, serial=2024010101, minimum=60):
    return mname + rname + struct.pack(">IIIII", serial, 7200, 3600, 1209600, minimum)


def ipv4(text):
    return bytes(int(x) for x in text.split("."))


def query(qname, qtype=A, id_=0x1234, flags=RD, edns=None, qclass=IN):
    extra = opt(**edns) if edns is not None else b""
    return header(id_, flags, 1, 0, 0, 1 if extra else 0) + question(qname, qtype, qclass) + extra


def response(qname, qtype=A, rcode=0, flags=QR | RD | RA, answer=(), authority=(),
             additional=(), edns=None, id_=0x1234, qd=None):
    extra = list(additional) + ([opt(**edns)] if edns is not None else [])
    body = question(qname, qtype) if qname is not None else b""
    msg = header(id_, flags | rcode, 1 if qd is None else qd, len(answer), len(authority),
                 len(extra))
    return msg + body + b"".join(answer) + b"".join(authority) + b"".join(extra)


K8S_FIRST_STEP = "api.example.com.default.svc.cluster.local"


def queries():
    long_name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 255 bytes in wire form
    too_long = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62])  # 256
    cookie = edns_option(10, bytes(range(8)))  # client cookie (RFC 7873)
    ecs = edns_option(8, struct.pack(">HBB", 1, 24, 0) + ipv4("192.0.2.0")[:3])  # RFC 7871
    padding = edns_option(12, bytes(20))  # RFC 7830
    a = query("example.com")
    return {
        "a": a,
        "aaaa_edns": query("example.com", AAAA, edns={}),
        "edns_do_cookie": query("Example.COM", A, edns={"do": True, "options": cookie}),
        "edns_ecs_padding": query("www.example.org", AAAA, edns={"options": ecs + padding}),
        "edns_small_udp": query("example.com", TXT, edns={"udp": 100}),
        "edns_large_udp": query("example.com", TXT, edns={"udp": 4096}),
        "badvers": query("example.com", A, edns={"version": 1}),
        "ad_cd": query("dnssec.example", A, id_=0x5ff8, flags=RD | AD | CD, edns={"do": True}),
        "many_answers_id": query("big.example", A, id_=0x5ff0),
        "no_rd": query("example.com", A, flags=0),
        "zero_questions": header(0x1111, RD, 0) + opt(),
        "two_questions": header(0x2222, RD, 2) + question("a.example") + question("b.example"),
        "compressed_qname": header(0x3333, RD, 1) + PTR_QNAME + struct.pack(">HH", A, IN),
        "truncated_mid_name": a[:18],
        "truncated_mid_opt": query("example.com", A, edns={})[:-4],
        "short_header": a[:7],
        "empty": b"",
        "response_bit": query("example.com", A, flags=QR | RD),
        "notify_opcode": query("example.com", SOA, flags=4 << 11 | AA),
        "update_opcode": query("example.com", SOA, flags=5 << 11),
        "k8s_first_step": query(K8S_FIRST_STEP, A, edns={}),
        "k8s_first_step_case": query("Api.Example.Com.Default.SVC.cluster.LOCAL", AAAA),
        "k8s_second_step": query("api.example.com.svc.cluster.local", A),
        "k8s_service": query("kubernetes.default.svc.cluster.local", A, edns={}),
        "long_name": query(long_name, A, edns={}),
        "name_too_long": header(0x4444, RD, 1) + name(too_long) + struct.pack(">HH", A, IN),
        "label_too_long_type": header(0x5555, RD, 1) + b"\x40" + b"a" * 64 + b"\x00" +
                               struct.pack(">HH", A, IN),
        "opt_in_answer": header(0x6666, RD, 1, 1, 0, 0) + question("example.com") + opt(),
        "two_opts": header(0x7777, RD, 1, 0, 0, 2) + question("example.com") + opt() + opt(),
        "opt_nonroot_owner": header(0x8888, RD, 1, 0, 0, 1) + question("example.com") +
                             name("x") + opt()[1:],
        "rr_overrun": header(0x9999, RD, 1, 0, 0, 1) + question("example.com") +
                      opt(options=edns_option(10, bytes(8)))[:-3],
        "any": query("example.com", ANY),
        "axfr": query("example.com", AXFR),
        "chaos_version_bind": query("version.bind", TXT, qclass=CH),
        "chaos_hostname_bind_edns": query("HostName.Bind", TXT, qclass=CH, edns={}),
        "chaos_authors_bind": query("authors.bind", TXT, qclass=CH),
        "class_hs": query("example.com", A, qclass=4, edns={}),
        "class_any": query("example.com", A, qclass=255),
        "ixfr_edns": query("example.com", 251, edns={"do": True}),
        "tsig_type": query("example.com", 250),
        "opt_type": query("example.com", OPT, edns={}),
        "cookie_only": header(0xabab, RD, 0, 0, 0, 1) + opt(options=cookie),
        "notify_opcode_edns": query("example.com", SOA, flags=4 << 11, edns={"do": True}),
        "notimp_no_question": header(0xacac, 3 << 11 | RD, 0, 0, 0, 1) + opt(),
        "trailing_bytes": query("example.com", A, edns={}) + b"\x00\x00",
        "option_overrun": header(0xadad, RD, 1, 0, 0, 1) + question("example.com") +
                          b"\x00" + struct.pack(">HHIH", OPT, 1232, 0, 4) +
                          struct.pack(">HH", 10, 8),
        "root_ns": query(".", NS, edns={}),
        "ptr": query("1.2.0.192.in-addr.arpa", PTR),
    }


def responses():
    soa_auth = rr(b"\xc0\x19", SOA, 3600, soa_rdata(name("ns1.example.com"),
                                                     name("hostmaster.example.com"), minimum=300))
    a_rrs = [rr(PTR_QNAME, A, 300, ipv4("192.0.2.1")), rr(PTR_QNAME, A, 120, ipv4("192.0.2.2"))]
    # www.example.com CNAME cdn.example.net, cdn.example.net CNAME edge.example.net, edge A.
    www = "www.example.com"
    cname1 = rr(PTR_QNAME, CNAME, 600, name("cdn.example.net"))
    cdn_at = 12 + len(name(www)) + 4 + 12  # the rdata of the first CNAME
    cname2 = rr(struct.pack(">H", 0xc000 | cdn_at), CNAME, 60, b"\x04edge" +
                struct.pack(">H", 0xc000 | (cdn_at + 4)))  # edge + example.net in the first
    edge_at = cdn_at + len(name("cdn.example.net")) + 12
    edge_a = rr(struct.pack(">H", 0xc000 | edge_at), A, 20, ipv4("198.51.100.7"))
    many = [rr(PTR_QNAME, A, 300, bytes([10, 0, i >> 8, i & 0xff])) for i in range(100)]
    too_many = [rr(PTR_QNAME, A, 300, bytes([10, 1, i >> 8, i & 0xff])) for i in range(513)]
    loop_at = 12 + len(name("loop.example")) + 4 + 12  # the rdata of the CNAME: points at itself
    loop_cname = rr(PTR_QNAME, CNAME, 300, struct.pack(">H", 0xc000 | loop_at))
    self_ptr = header(0x1234, QR | RA, 1, 1) + b"\xc0\x0c" + struct.pack(">HH", A, IN) + \
        rr(PTR_QNAME, A, 60, ipv4("192.0.2.9"))
    rrsig = rr(PTR_QNAME, RRSIG, 300, struct.pack(">HBBIIIH", A, 13, 2, 300, 1700000000,
                                                  1690000000, 12345) + name("example.com") +
               bytes(64))
    return {
        "a_two_records_opt": response("example.com", A, answer=a_rrs, edns={}),
        "a_no_opt_ad": response("example.com", A, flags=QR | RD | RA | AD, answer=a_rrs),
        "a_rrsig_do": response("example.com", A, answer=a_rrs[:1] + [rrsig], edns={"do": True}),
        "cname_chain": response(www, A, answer=[cname1, cname2, edge_a], edns={}),
        "nxdomain_soa": response("nope.example.com", A, rcode=3, authority=[
            rr(b"\xc0\x11", SOA, 3600, soa_rdata(name("ns1.example.com"),
                                                 name("hostmaster.example.com"), minimum=300))],
            edns={}),
        "nodata_soa": response("example.com", AAAA, authority=[soa_auth.replace(
            b"\xc0\x19", PTR_QNAME, 1)]),
        "nxdomain_no_soa": response("nope.example.com", A, rcode=3),
        "servfail": response("example.com", A, rcode=2, edns={}),
        "refused": response("example.com", A, rcode=5),
        "truncated_tc": response("example.com", A, flags=QR | RD | RA | TC),
        "badvers": response("example.com", A, rcode=0, edns={"ext_rcode": 1}),
        "opt_not_last": header(0x1234, QR | RD | RA, 1, 1, 0, 2) + question("example.com") +
                        a_rrs[0] + opt() + rr(name("ns1.example.com"), A, 60, ipv4("192.0.2.53")),
        "compression_loop": response("loop.example", A, answer=[loop_cname]),
        "compressed_question_self": self_ptr,
        "ttl_high_bit": response("example.com", A, answer=[rr(PTR_QNAME, A, 0x80000001,
                                                              ipv4("192.0.2.1"))]),
        "ttl_zero": response("example.com", A, answer=[rr(PTR_QNAME, A, 0, ipv4("192.0.2.1"))]),
        "large_100_records": response("big.example", A, answer=many, edns={}),
        "records_513": response("huge.example", A, answer=too_many),
        "no_question": response(None, A, qd=0, answer=[rr("example.com", A, 60, ipv4("1.2.3.4"))]),
        "two_questions": header(0x1234, QR | RA, 2) + question("a.example") + question("b.example"),
        "qr_clear": response("example.com", A, flags=RD, answer=a_rrs),
        "soa_bad_rdlength": response("nope.example", A, rcode=3, authority=[
            rr(PTR_QNAME, SOA, 60, soa_rdata()[:-1])]),
        "mx_srv_txt": response("example.com", MX, answer=[
            rr(PTR_QNAME, MX, 300, struct.pack(">H", 10) + b"\x04mail" + PTR_QNAME),
            rr(PTR_QNAME, TXT, 300, b"\x0bhello world"),
            rr(b"\x04_sip\x04_udp" + PTR_QNAME, SRV, 300, struct.pack(">HHH", 1, 2, 5060) +
               PTR_QNAME)], additional=[rr(b"\x04mail" + PTR_QNAME, A, 300, ipv4("192.0.2.25"))]),
        "truncated_mid_rr": response("example.com", A, answer=a_rrs)[:-3],
    }


def ptr(target):
    return struct.pack(">H", 0xc000 | target)


def malformed_names():
    """Responses whose names break a rule of ParseResponseLayout (dns/wire.h), each beside a
    well-formed neighbour. The question is www.example.com A at 12..32 ("example.com" at 16), the
    first RR's owner at 33 and, after a 2-byte owner, its RDATA at 45."""
    www = "www.example.com"
    a_rdata = ipv4("192.0.2.1")

    def one(*answers, qname=www):
        return response(qname, A, answer=list(answers))

    long_q = ".".join(["a" * 63, "b" * 63, "c" * 63])  # 193 bytes in wire form
    soa_tail = struct.pack(">IIIII", 1, 2, 3, 4, 5)
    chain = lambda n: [rr(ptr(12 if i == 0 else 33 + 12 * (i - 1)), 0xff00, 60, b"")
                       for i in range(n)]
    return {
        "name_pointer_to_question_and_rdata": one(
            rr(PTR_QNAME, CNAME, 60, b"\x03cdn" + ptr(16)), rr(ptr(45), A, 60, a_rdata),
            rr(ptr(49), MX, 60, struct.pack(">H", 10) + b"\x04mail" + ptr(45))),
        "name_pointer_self_loop": one(rr(b"\x01a" + ptr(33), A, 60, a_rdata)),
        "name_pointer_forward": one(rr(ptr(49), A, 60, a_rdata),
                                    rr("later.example", A, 60, a_rdata)),
        "name_pointer_into_label": one(rr(ptr(17), A, 60, a_rdata)),
        "name_pointer_into_label_valid_bytes": header(0x1234, QR | RD | RA, 1, 1) +
            question(b"\x03q\x01z\x03com\x00") + rr(ptr(14), A, 60, a_rdata),
        "name_pointer_into_header": one(rr(ptr(4), A, 60, a_rdata)),
        "name_pointer_into_ttl": one(rr(PTR_QNAME, A, 0, a_rdata), rr(ptr(33 + 6), A, 60, a_rdata)),
        "name_pointer_into_txt_rdata": one(rr(PTR_QNAME, TXT, 60, b"\x05\x03foo\x00"),
                                           rr(ptr(46), A, 60, a_rdata)),
        # As many bytes as the label byte's value: only its type bits (01, 10) are wrong.
        "name_label_0x40": one(rr(b"\x40" + b"x" * 0x40 + b"\x00", A, 60, a_rdata)),
        "name_label_0x80": one(rr(b"\x80" + b"x" * 0x80 + b"\x00", A, 60, a_rdata)),
        "name_256_in_place": one(rr(b"".join(b"\x3f" + b"x" * 63 for _ in range(4)) + b"\x00",
                                    A, 60, a_rdata)),
        "name_255_via_pointer": response(long_q, A, answer=[
            rr(bytes([61]) + b"d" * 61 + PTR_QNAME, A, 60, a_rdata)]),
        "name_256_via_pointer": response(long_q, A, answer=[
            rr(bytes([62]) + b"d" * 62 + PTR_QNAME, A, 60, a_rdata)]),
        "name_pointer_chain_127": one(*chain(127)),
        "name_pointer_chain_128": one(*chain(128)),
        "cname_rdata_label_0x40": one(rr(PTR_QNAME, CNAME, 60, b"\x40" + b"c" * 0x40 + b"\x00")),
        "cname_rdata_pointer_self": one(rr(PTR_QNAME, CNAME, 60, b"\x03cdn" + ptr(45))),
        "cname_rdlength_short": one(rr(PTR_QNAME, CNAME, 60, b"\x03cdn" + ptr(16))[:-1]),
        "cname_rdlength_long": one(rr(PTR_QNAME, CNAME, 60, b"\x03cdn" + ptr(16) + b"\x00")),
        "ns_rdata_pointer_forward": one(rr(PTR_QNAME, NS, 60, b"\x02ns" + ptr(200))),
        "ptr_rdata_pointer_into_header": one(rr(PTR_QNAME, PTR, 60, ptr(6))),
        "mx_rdata_pointer_into_label": one(rr(PTR_QNAME, MX, 60, struct.pack(">H", 10) + ptr(20))),
        "mx_rdlength_long": one(rr(PTR_QNAME, MX, 60, struct.pack(">H", 10) + ptr(16) + b"\x00")),
        "soa_rname_label_0x80": response(www, A, authority=[
            rr(ptr(16), SOA, 60,
               b"\x02ns" + ptr(16) + b"\x80" + b"h" * 0x80 + b"\x00" + soa_tail)]),
        "soa_mname_pointer_forward": response(www, A, authority=[
            rr(ptr(16), SOA, 60, ptr(99) + PTR_QNAME + soa_tail)]),
        "srv_rdata_pointer_into_label": one(rr(PTR_QNAME, SRV, 60, struct.pack(">HHH", 1, 2, 3) +
                                               ptr(13))),
        "srv_rdata_compressed_ok": one(rr(PTR_QNAME, SRV, 60, struct.pack(">HHH", 1, 2, 3) +
                                          ptr(16))),
        "naptr_ok": one(rr(PTR_QNAME, NAPTR, 60, struct.pack(">HH", 100, 10) + b"\x01S\x07SIP+D2U"
                           b"\x00" + name("_sip._udp.example.com"))),
        "dname_compressed": one(rr(ptr(16), DNAME, 60, ptr(16))),
        "kx_compressed": one(rr(ptr(16), KX, 60, struct.pack(">H", 1) + ptr(16))),
        "rrsig_compressed_signer": one(rr(PTR_QNAME, RRSIG, 60, struct.pack(
            ">HBBIIIH", A, 13, 2, 60, 2, 1, 7) + ptr(16) + bytes(64))),
        "nsec_ok": one(rr(PTR_QNAME, NSEC, 60, name("z.example.com") + b"\x00\x01\x40")),
    }


def rewrite_candidates():
    cand = "api.example.com"
    svc = "api.example.com.svc.cluster.local"
    soa = rr(name("cluster.local"), SOA, 30, soa_rdata(name("ns.dns.cluster.local"),
                                                       name("hostmaster.cluster.local"),
                                                       minimum=5))
    a = [rr(PTR_QNAME, A, 300, ipv4("192.0.2.10")), rr(PTR_QNAME, A, 45, ipv4("192.0.2.11"))]
    chain = [rr(PTR_QNAME, CNAME, 600, name("lb.example.net")),
             rr(name("lb.example.net"), A, 30, ipv4("203.0.113.5"))]
    long_label = "x" * 60
    long_cand = ".".join([long_label] * 3 + ["example"])
    return {
        "answer_a": response(cand, A, answer=a, edns={}),
        "answer_cname_chain": response(cand, A, answer=chain),
        "nodata_aaaa_soa": response(cand, AAAA, authority=[soa]),
        "nodata_aaaa_no_soa": response(cand, AAAA),
        "nxdomain_svc": response(svc, A, rcode=3, authority=[soa]),
        "servfail": response(cand, A, rcode=2),
        "class_chaos": header(0x1234, QR | RA, 1, 1) + question(cand, A, CH) + a[0],
        "answer_ttl_zero": response(cand, A, answer=[rr(PTR_QNAME, A, 0, ipv4("192.0.2.1"))]),
        "answer_with_opt_do": response(cand, AAAA, answer=[rr(PTR_QNAME, AAAA, 300, bytes(16))],
                                       edns={"do": True}),
        "long_candidate": response(long_cand, A, answer=[rr(PTR_QNAME, A, 60, ipv4("10.0.0.1"))]),
        "root_question": response(".", A, authority=[soa]),
        "no_question": response(None, A, qd=0, answer=a),
        "tc_set": response(cand, A, flags=QR | RD | RA | TC),
    }


RESOLV_CONFS = {
    "k8s_pod": "search default.svc.cluster.local svc.cluster.local cluster.local\n"
               "nameserver 10.96.0.10\noptions ndots:5\n",
    "k8s_nodelocal": "nameserver 169.254.20.10\n"
                     "search kube-system.svc.cluster.local svc.cluster.local cluster.local "
                     "ec2.internal\noptions ndots:5 timeout:1 attempts:3\n",
    "host": "# generated by NetworkManager\nsearch corp.example.com example.com\n"
            "nameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver 198.51.100.53\n"
            "nameserver 203.0.113.53\noptions rotate timeout:2 attempts:5 edns0 trust-ad\n",
    "systemd_resolved": "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n",
    "crlf": "search a.example b.example\r\nnameserver 10.0.0.1\r\noptions ndots:2\r\n",
    "indented_and_comments": "  nameserver 10.0.0.2\n;comment\n#comment\nnameserver 10.0.0.3 "
                             "# trailing\nsearch svc.example # not a comment\n\toptions ndots:3\n",
    "domain_words": "domain one.example two.example\nnameserver 10.0.0.4\n",
    "search_overridden": "search first.example\nsearch second.example third.example\n"
                         "domain last.example\n",
    "long_search_musl": "search " + " ".join("d%02d.example.com" % i for i in range(20)) + "\n",
    "bad_options": "options ndots:x timeout:-1 attempts:99 ndots:99 timeout:100 bogus "
                   "single-request-reopen no-aaaa no_tld_query inet6 use-vc\n",
    "musl_options": "options foo ndots:3bar attempts:7 timeout:61\n",
    "nameservers_odd": "nameserver fe80::1%eth0\nnameserver dns.example.com\nnameserver 127.1\n"
                       "nameserver 10.0.0.1:5353\nnameserver [::1]:53\nnameserver 0x7f.0.0.1\n"
                       "nameserver\n",
    "no_trailing_newline": "nameserver 10.0.0.9\nsearch x.example",
    "empty": "",
    "keywords_only": "search\ndomain\noptions\nsortlist 10.0.0.0/255.0.0.0\nbogus line\n",
    "binary": "nameserver 10.0.0.1\x00\nsearch a\x00b c\xff\xfe\noptions ndots:1\x7f\n",
}


REPO = pathlib.Path(__file__).resolve().parents[2]


def testdata_corefiles():
    """The Corefiles the unit tests read, as they are in the repository."""
    out = {}
    for path in sorted((REPO / "tests/corefile/testdata").glob("*.Corefile")):
        out["testdata_" + path.stem] = path.read_bytes()
    for path in sorted((REPO / "tests/nodecache/testdata/stock").glob("Corefile.base*")):
        out["testdata_stock_" + path.name.replace(".", "_")] = path.read_bytes()
    return out


def corefiles():
    ok = ".:53 {\n    forward . 10.0.0.1\n}\n"
    return {
        **testdata_corefiles(),
        "minimal": ok,
        "env": "{$CLUSTER_DOMAIN}:{$PORT} {$UNSET}, in-addr.arpa:{$PORT} {\n"
               "    bind {$LOCAL_DNS}\n    forward . {$UPSTREAM}\n    reload {%UNSET%}\n}\n"
               ".:{$PORT} {\n    bind {%LOCAL_DNS%}\n    forward . /etc/resolv.conf\n"
               "    cache 30 {\n        prefetch 2 1m 20%\n        serve_stale 1h verify\n"
               "    }\n}\n",
        "keys_comma_next_line": "a.example,\nb.example:53\n{\n    forward . 10.0.0.2:5353\n}\n"
                                ". {\n    forward . [::1]:53 dns://10.0.0.3\n}\n",
        "quoted_crlf_bom_nbsp": "\xef\xbb\xbf.:53 {\r\n    forward \".\" \"10.0.0.1\"\r\n"
                                "    log \"multi\nline\" # comment\r\n"
                                "    errors\xc2\xa0stdout\r\n}\r\n",
        "all_options": ".:53 {\n    errors {\n        consolidate 5m \".* i/o timeout$\" warning"
                       " show_first\n        stacktrace\n    }\n"
                       "    forward . 10.0.0.1 /etc/resolv.conf {\n        except example.org\n"
                       "        force_tcp\n        prefer_udp\n        max_fails 3\n"
                       "        max_concurrent 100\n        expire 10s\n        policy sequential\n"
                       "        health_check 1s no_rec domain example.com\n"
                       "        failfast_all_unhealthy_upstreams\n    }\n"
                       "    cache 3600 . {\n        success 5000 60 10\n        denial 2500 10 1\n"
                       "        servfail 1s\n        disable denial sub.example\n        keepttl\n"
                       "    }\n    health :8080 {\n        lameduck 5s\n    }\n"
                       "    ready 127.0.0.1:8181 {\n        monitor continuously\n    }\n"
                       "    prometheus [::1]:9153\n    reload 10s 3s\n    loop\n"
                       "    log . {combined} {\n        class denial error\n    }\n}\n",
        "no_root": "cluster.local {\n    forward . 10.0.0.1\n}\n",
        "split_binds": "a.example {\n    bind 127.0.0.1\n    forward . 10.0.0.1\n}\n"
                       ". {\n    bind 127.0.0.2\n    forward . 10.0.0.1\n}\n",
        "loop_self": ". {\n    bind 127.0.0.1\n    loop\n    forward . 127.0.0.1\n}\n",
        "same_zone_twice": ".:53 {\n    forward . 10.0.0.1\n}\n.:53 {\n    forward . 10.0.0.2\n}\n",
        "two_ports": ".:53 .:5353 {\n    forward . 10.0.0.1\n}\n",
        "bad_resolv_path": ".:53 {\n    forward . /etc/missing\n}\n",
        "err_unterminated_quote": ".:53 {\n    forward . \"10.0.0.1\n}\n",
        "err_import": "import other.conf\n",
        "err_snippet": "(common) {\n    errors\n}\n",
        "err_brace_same_line": ".:53 { forward . 10.0.0.1 }\n",
        "err_unclosed": ".:53 {\n    forward . 10.0.0.1 {\n",
        "err_no_braces": ".:53\nforward . 10.0.0.1\n",
        "err_bad_port": ".:99999 {\n}\n",
        "err_transport": "tls://.:853 {\n}\n",
        "err_cidr": "10.0.0.0/8 {\n}\n",
        "err_unknown_directive": ".:53 {\n    rewrite name a b\n}\n",
        "err_forward_outside": "a.example {\n    forward b.example 10.0.0.1\n}\n",
        "err_hostname_upstream": ".:53 {\n    forward . dns.google\n}\n",
        "err_duration": ".:53 {\n    reload 1x\n    forward . 10.0.0.1\n}\n",
        "err_trailing_comma": ".:53,",
        "err_nested": ".:53 {\n    forward . 10.0.0.1 {\n        policy {\n            x\n"
                      "        }\n    }\n}\n",
        "err_deep_nesting": ".:53 {\n" + "a {\n" * 17 + "}\n" * 17 + "}\n",
        "reload_2_32_ms": ".:53 {\n    forward . 10.0.0.1\n    reload 1193h2m47.296s\n}\n",
        "empty": "",
    }


def kubedns_inputs():
    """Control byte (see kubedns_config_fuzz.cc), stubDomains, NUL, upstreamNameservers, NUL,
    base Corefile."""
    stock = REPO / "tests/nodecache/testdata/stock"
    base = (stock / "Corefile.base").read_bytes()
    raw = (stock / "Corefile.base.unsubstituted").read_bytes()
    stubs = b'{"acme.local": ["1.2.3.4", "1.2.3.5:5353"], "corp": ["[2001:db8::1]:53"]}'
    ups = b'["8.8.8.8", "8.8.4.4:53", "[2001:4860:4860::8888]:53"]'
    def one(control, s=b"", u=b"", b=base):
        return bytes([control]) + s + b"\0" + u + b"\0" + b
    force_tcp = (b".:53 {\r\n  forward . __PILLAR__UPSTREAM__SERVERS__ {\r\n"
                 b"     force_tcp\r\n  }\r\n  # __PILLAR__CLUSTER__DNS__ in a comment\r\n}\r\n")
    return {
        "stock_no_configmap": one(0x04),
        "stock_stubs_upstreams": one(0x07, stubs, ups),
        "stock_ipv6_stubs": one(0x0d, stubs),
        "stock_upstreams_only": one(0x06, b"", ups),
        "stock_no_cluster_ip": one(0x03, stubs, ups),
        "unsubstituted_domain": one(0x07, stubs, ups, raw),
        "force_tcp_crlf": one(0x06, b"null", b'["10.0.0.1"]', force_tcp),
        "stub_file_nameserver": one(0x05, b'{"a.b": ["resolv.conf", "dns://10.0.0.1"]}'),
        "stub_escapes": one(0x05, b'{"a\\u0062c": ["1.2.3.4"], "x": ["1.1.1.1"], "x": []}'),
        "err_stub_domain": one(0x05, b'{"Acme.Local.": ["1.2.3.4"]}'),
        "err_stub_port": one(0x05, b'{"acme.local": ["1.2.3.4:x"]}'),
        "err_stub_empty": one(0x05, b'{"acme.local": []}'),
        "err_stub_type": one(0x05, b'["acme.local"]'),
        "err_json_depth": one(0x01, b"[" * 40 + b"]" * 40),
        "err_json_syntax": one(0x03, b'{"a": [1,]}', b'["1.2.3.4" "5.6.7.8"]'),
        "err_too_many_upstreams": one(0x02, b"", b'["1.1.1.1","1.1.1.2","1.1.1.3","1.1.1.4"]'),
        "err_upstream_tls": one(0x02, b"", b'["tls://1.1.1.1"]'),
        "err_upstream_hostname": one(0x02, b"", b'["dns.google"]'),
        "err_surrogates": one(0x01, b'{"\\ud800\\udc00\\ud800": ["1.2.3.4"]}'),
        "empty_files": one(0x03),
    }


def node_cache_args():
    def argv(*args):
        return b"\0".join(a.encode() for a in args)
    return {
        "stock_daemonset": argv("-localip", "169.254.20.10,10.96.0.10", "-conf", "/etc/Corefile",
                                "-upstreamsvc", "kube-dns-upstream"),
        "nodedns_deploy": argv("-localip", "169.254.20.10,10.96.0.10", "-conf", "/etc/Corefile",
                               "-upstreamsvc", "kube-dns-upstream", "-pidfile",
                               "/tmp/node-cache.pid", "-setupinterface=false",
                               "-setupiptables=false"),
        "helm_chart": argv("-localip", "169.254.20.25", "-conf", "/etc/Corefile",
                           "-upstreamsvc", "kube-dns-upstream", "-skipteardown=true",
                           "-setupinterface=false", "-setupiptables=true",
                           "-health-port", "8080", "--metrics-listen-address=[::]:9353"),
        "every_flag": argv("--localip=fd00::10", "-setupinterface", "-interfacename", "nld0",
                           "-syncinterval", "1m30s", "-metrics-listen-address", ":9353",
                           "-basecorefile", "/etc/coredns/Corefile.base", "-corefile", "/etc/C",
                           "-kubednscm", "/etc/kube-dns", "-health-port=08080", "-reloadwithsignal",
                           "-dns.port", "5353", "-p", "53", "-pidfile", "", "-plugins=0",
                           "-quiet=T", "-version=FALSE", "--"),
        "help": argv("-localip", "x", "-help=false"),
        "err_bool_value": argv("-localip", "169.254.20.10", "-setupiptables=maybe"),
        "err_positional": argv("-localip", "169.254.20.10", "-setupinterface", "false"),
        "err_undefined": argv("-localip=169.254.20.10", "-dns.port=53", "-nope"),
        "err_needs_argument": argv("-localip"),
        "err_bad_syntax": argv("---localip=1.2.3.4"),
        "err_mixed_family": argv("-localip", "169.254.20.10,fd00::1"),
        "err_port": argv("-localip", "169.254.20.10", "-dns.port", "65536"),
        "err_metrics_addr": argv("-localip", "169.254.20.10", "-metrics-listen-address", "::1:9353"),
        "err_syncinterval": argv("-localip", "169.254.20.10", "-syncinterval", "-1h"),
        "syncinterval_odd": argv("-localip", "169.254.20.10", "-syncinterval", "2562047h47m16.854775807s"),
        "err_duration_unit": argv("-localip", "169.254.20.10", "-syncinterval", "5\xb5x"),
        "empty": b"",
    }


def tcp_streams():
    """tcp_framing_fuzz: 2 control bytes (read sizes, in-flight limit), then a client's stream."""
    def frame(msg):
        return struct.pack(">H", len(msg)) + msg
    a = query("example.com", A, edns={})
    b = query("www.example.org", AAAA, id_=0x4321)
    big = query("big.example", TXT, edns={"options": edns_option(12, bytes(1400))})
    three = frame(a) + frame(b) + frame(big)
    return {
        "one_query": b"\x05\x00" + frame(a),
        "pipelined_byte_reads": b"\x00\x07" + three,  # reads of 1-2 bytes
        "pipelined_one_read": b"\x0f\x00" + three,    # reads up to 64 KiB
        "pipelined_paused": b"\x03\x00" + three * 4,  # in-flight limit 1-8
        "header_only": b"\x02\x01" + frame(header(0x0101, RD, 0)),
        "runt_zero": b"\x04\x02" + frame(a) + b"\x00\x00" + frame(b),
        "runt_eleven": b"\x06\x03" + frame(a) + b"\x00\x0b" + a[:11],
        "length_only": b"\x01\x00" + frame(a) + b"\x00",
        "prefix_longer_than_data": b"\x08\x00" + b"\x02\x00" + a,
        "max_length_prefix": b"\x0e\x04" + b"\xff\xff" + bytes(1000),
        "empty": b"\x00\x00",
    }


def worker_inputs():
    """worker_fuzz: 1 control byte, then [tag][length][bytes] records (see worker_fuzz.cc)."""
    def rec(tag, data):
        return bytes([tag]) + struct.pack(">H", len(data)) + data
    def client(msg, who=0, tcp=False):
        return rec(who << 2 | (0x20 if tcp else 0), msg)
    def upstream(msg, fix_id=True):
        return rec(1 | (4 if fix_id else 0), msg)
    def preload(msg, minutes=0):
        return rec(2 | minutes << 2, msg)
    run = rec(3, b"")
    answer = lambda n, ttl=300: [rr(PTR_QNAME, A, ttl, ipv4("192.0.2.%d" % n))]
    www = response("www.example.com", answer=answer(1))
    nx = lambda q: response(q, rcode=3, authority=[rr(name("cluster.local"), SOA, 30, soa_rdata())])
    first = K8S_FIRST_STEP
    return {
        "hit": b"\x00" + preload(www) + client(query("WWW.example.com", edns={})),
        "hit_tcp_do": b"\x00" + preload(www) + client(query("www.example.com"), 1, True) +
                      client(query("www.example.com", edns={"do": True}), 2, True),
        "miss_answered": b"\x00" + client(query("Miss.Example.com", edns={})) +
                         upstream(response("miss.example.com", answer=answer(2), edns={})),
        "miss_unanswered": b"\x00" + client(query("gone.example.com")) + run,
        "miss_wrong_question": b"\x00" + client(query("one.example.com")) +
                               upstream(response("two.example.com", answer=answer(3))),
        "miss_wrong_id": b"\x00" + client(query("id.example.com")) +
                         upstream(response("id.example.com", answer=answer(3)), False),
        "coalesced": b"\x00" + client(query("same.example.com"), 1) +
                     client(query("SAME.example.com"), 2, True) +
                     upstream(response("same.example.com", answer=answer(4))),
        "stale_after_servfail": b"\x00" + preload(response("old.example.com",
                                                             answer=answer(5, 60)), 5) +
                                client(query("old.example.com")),
        "prefetch_late_hits": b"\x00" + preload(response("late.example.com",
                                                           answer=answer(6, 620)), 10) +
                              client(query("late.example.com")) * 3 + run,
        "truncated_upstream": b"\x00" + client(query("tc.example.com")) +
                              upstream(response("tc.example.com", flags=QR | RD | RA | TC)),
        "upstream_servfail": b"\x00" + client(query("sf.example.com", edns={})) +
                             upstream(response("sf.example.com", rcode=2)),
        "nxdomain_rewrite": b"\x00" + client(query(first, edns={})) + upstream(nx(first)) +
                            upstream(nx("api.example.com.svc.cluster.local")) +
                            upstream(nx("api.example.com.cluster.local")) +
                            upstream(response("api.example.com", answer=answer(7))),
        "nxdomain_rewrite_off": b"\x04" + client(query(first)) + upstream(nx(first)),
        "large_answer_udp": b"\x00" + client(query("many.example.com", edns={})) +
                            upstream(response("many.example.com",
                                              answer=[rr(PTR_QNAME, A, 300, bytes([10, 0, i // 256, i % 256]))
                                                      for i in range(100)], edns={})),
        "errors": b"\x00" + client(query("example.com", A, flags=QR | RD)) +
                  client(header(0x1111, RD, 0) + opt()) + client(b"\x12\x34\x01") +
                  client(query("example.com", SOA, flags=4 << 11)) +
                  client(query("example.com", A, edns={"version": 1}), 3, True),
        "chaos_coredns": b"\x03" + client(query("version.bind", TXT, qclass=CH)) +
                         client(query("id.server", TXT, qclass=CH), 1, True) +
                         client(query("example.com", A, qclass=4)),
        "empty": b"\x00",
    }


def write(out, target, files, prefix=b""):
    directory = out / target
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        if not old.name.startswith("found-"):
            old.unlink()
    for stem, data in files.items():
        if isinstance(data, str):
            data = data.encode("latin-1")
        (directory / stem).write_bytes(prefix + data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path,
                        default=pathlib.Path(__file__).resolve().parent / "corpus")
    out = parser.parse_args().out
    write(out, "query_parse_fuzz", queries())
    # The response targets take a control byte first (see the targets' file comments); the seeds
    # cycle through a few, so that the corpus starts with every client shape and lookup delay.
    # response_fuzz: 0x00 plain; 0xb3 EDNS+DO, 3600 s later; 0xcd EDNS+AD+CD, 3601 s (stale);
    # 0xf1 EDNS, 90001 s (gone); 0x54 AD, 5 s; 0x7a DO+CD, 59 s.
    ctl = [0x00, 0xb3, 0xcd, 0xf1, 0x54, 0x7a]
    seeds = {**responses(), **malformed_names()}
    write(out, "response_fuzz", {stem: bytes([ctl[i % len(ctl)]]) + data
                                 for i, (stem, data) in enumerate(seeds.items())})
    # search_rewrite_fuzz: 0x00 plain; 0xdc capitals, EDNS+DO, cap 60, one NXDOMAIN before;
    # 0x26 cap from NegativeTtlCap, two before; 0x43 AAAA fallback, cap 0, EDNS.
    ctl = [0x00, 0xdc, 0x26, 0x43]
    candidates = rewrite_candidates().items()
    write(out, "search_rewrite_fuzz", {stem: bytes([ctl[i % len(ctl)]]) + data
                                       for i, (stem, data) in enumerate(candidates)})
    write(out, "resolv_conf_fuzz", RESOLV_CONFS)
    write(out, "corefile_fuzz", corefiles())
    write(out, "kubedns_config_fuzz", kubedns_inputs())
    write(out, "node_cache_flags_fuzz", node_cache_args())
    write(out, "tcp_framing_fuzz", tcp_streams())
    write(out, "worker_fuzz", worker_inputs())


if __name__ == "__main__":
    main()
