#!/usr/bin/env python3
"""Hostile TCP clients against each peer (Unbound, dnsdist, nodedns): a forwarder in front of
hostile_upstream.py's "normal" upstream, and clients that misuse DNS over TCP. Records, per case,
when the peer closed the connection (or that it had not after the case's bound) and what it
answered. Uses harness.py's process handling (on ports 164xx of its own); only 127.0.0.1.

Usage:
    python3 tcp_clients.py [--out DIR] [--peers unbound,dnsdist,nodedns] [--nodedns PATH]

Cases (all of a peer's run in parallel, each on its own connections):
    silent      connect, send nothing (bound 40 s)
    trickle     a 40-byte query framed and sent one byte per second (bound 40 s)
    stall       a length prefix of 512, 100 bytes, then nothing (bound 40 s)
    zero        a query, a 0-length frame, a query, in one write (bound 10 s)
    unread      queries for a cached name pipelined for 10 s without reading a reply:
                bytes accepted before the peer stopped reading, peer RSS growth
    many        500 idle connections, then a 501st asks a query (bound 5 s)
"""
import argparse
import json
import os
import select
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# Ports of our own, so that this runs beside harness.py: peer -> (upstream, listen, health).
harness.PORTS = {
    "unbound": (16453, 16454, None),
    "dnsdist": (16463, 16465, None),
    "nodedns": (16473, 16474, 16475),
}


def query(name, qid):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.strip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)


def frame(msg):
    return struct.pack(">H", len(msg)) + msg


def connect(port, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(3)  # a peer that stops accepting leaves connect() waiting on SYN retries
    s.connect(("127.0.0.1", port))
    s.settimeout(None)
    return s


def watch(s, bound):
    """Seconds until the peer closed `s` (None: still open after `bound`), bytes received."""
    t0, got = time.monotonic(), 0
    while True:
        left = bound - (time.monotonic() - t0)
        if left <= 0:
            return None, got
        r, _, _ = select.select([s], [], [], left)
        if not r:
            return None, got
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data:
            return round(time.monotonic() - t0, 2), got
        got += len(data)


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def case_silent(port):
    s = connect(port)
    closed, got = watch(s, 40)
    s.close()
    return {"closed_after_s": closed, "bytes": got}


def case_trickle(port):
    s = connect(port)
    data = frame(query("trickle.example.lab", 1))
    t0, closed, got = time.monotonic(), None, 0
    for b in data:
        try:
            s.send(bytes([b]))
        except OSError:
            closed = round(time.monotonic() - t0, 2)
            break
        c, g = watch(s, 1.0)
        got += g
        if c is not None:
            closed = round(time.monotonic() - t0, 2)
            break
    if closed is None:
        c, g = watch(s, max(0.0, 40 - (time.monotonic() - t0)))
        got += g
        closed = None if c is None else round(time.monotonic() - t0, 2)
    s.close()
    return {"closed_after_s": closed, "bytes": got, "frame_bytes": len(data)}


def case_stall(port):
    s = connect(port)
    s.sendall(b"\x02\x00" + (query("stall.example.lab", 2) + bytes(100))[:100])
    closed, got = watch(s, 40)
    s.close()
    return {"closed_after_s": closed, "bytes": got}


def case_zero(port):
    s = connect(port)
    s.sendall(frame(query("zero1.example.lab", 3)) + b"\x00\x00" +
              frame(query("zero2.example.lab", 4)))
    t0, replies, buf = time.monotonic(), [], b""
    closed = None
    while time.monotonic() - t0 < 10:
        r, _, _ = select.select([s], [], [], 10 - (time.monotonic() - t0))
        if not r:
            break
        data = s.recv(65536)
        if not data:
            closed = round(time.monotonic() - t0, 2)
            break
        buf += data
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
            n = struct.unpack(">H", buf[:2])[0]
            msg, buf = buf[2:2 + n], buf[2 + n:]
            replies.append({"id": struct.unpack(">H", msg[:2])[0], "rcode": msg[3] & 0xf})
    s.close()
    return {"replies": replies, "closed_after_s": closed}


def case_unread(port, pid):
    warm = connect(port)
    warm.sendall(frame(query("unread.example.lab", 5)))
    watch(warm, 1)
    warm.close()
    before = rss_kib(pid)
    s = connect(port, rcvbuf=4096)
    s.setblocking(False)
    chunk = b"".join(frame(query("unread.example.lab", i)) for i in range(1000))
    sent, t0, off = 0, time.monotonic(), 0
    blocked_at = None
    while time.monotonic() - t0 < 10 and sent < (64 << 20):
        try:
            n = s.send(chunk[off:])
            sent += n
            off = (off + n) % len(chunk)
            continue
        except BlockingIOError:
            pass
        _, w, _ = select.select([], [s], [], 1.0)
        if not w:
            blocked_at = round(time.monotonic() - t0, 2)
            break
    after = rss_kib(pid)
    s.setblocking(True)
    closed, _ = watch_no_read(s, 30)
    s.close()
    return {"bytes_sent": sent, "blocked_after_s": blocked_at, "rss_kib_before": before,
            "rss_kib_after": after, "closed_after_s": closed}


def watch_no_read(s, bound):
    """Seconds until the peer reset or closed `s` without reading from it (POLLHUP/ERR)."""
    t0 = time.monotonic()
    p = select.poll()
    p.register(s, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    while time.monotonic() - t0 < bound:
        ev = p.poll(500)
        if ev:
            return round(time.monotonic() - t0, 2), None
    return None, None


def case_many(port):
    conns = []
    for _ in range(500):
        try:
            conns.append(connect(port))
        except OSError:
            break
    time.sleep(0.5)
    s = connect(port)
    s.sendall(frame(query("many.example.lab", 6)))
    closed, got = watch(s, 5)
    s.close()
    still_open = 0
    for c in conns:
        r, _, _ = select.select([c], [], [], 0)
        if not r:
            still_open += 1
        c.close()
    return {"opened": len(conns), "new_one_got_bytes": got, "new_one_closed_after_s": closed,
            "idle_ones_still_open": still_open}


def run_peer(peer):
    r = harness.Run("tcp-clients", peer, "normal", hold=40)
    try:
        pid = r.peer_proc.pid
        res = {}
        cases = {"silent": lambda: case_silent(r.lport), "trickle": lambda: case_trickle(r.lport),
                 "stall": lambda: case_stall(r.lport), "zero": lambda: case_zero(r.lport),
                 "unread": lambda: case_unread(r.lport, pid)}

        def go(name, fn):
            try:
                res[name] = fn()
            except Exception as e:  # record and go on
                res[name] = {"error": repr(e)}
        ths = [threading.Thread(target=go, args=(n, f), daemon=True) for n, f in cases.items()]
        for t in ths:
            t.start()
        for t in ths:
            t.join(90)
        go("many", lambda: case_many(r.lport))  # alone: it fills the peer's connection table
        return res
    finally:
        r.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out")
    ap.add_argument("--peers", default="unbound,dnsdist,nodedns")
    ap.add_argument("--nodedns", default=harness.default_nodedns())
    a = ap.parse_args()
    harness.NODEDNS = os.path.abspath(a.nodedns) if a.nodedns else None
    peers = [p for p in a.peers.split(",") if p]
    for p in peers:
        if p != "nodedns" and not shutil.which(p):
            ap.error("%s is not installed" % p)
    out = os.path.abspath(a.out) if a.out else tempfile.mkdtemp(prefix="tcp-clients-")
    harness.LOGS, harness.RES = os.path.join(out, "logs"), os.path.join(out, "results")
    os.makedirs(harness.LOGS, exist_ok=True)
    os.makedirs(harness.RES, exist_ok=True)
    print("output: %s" % out, flush=True)
    results = harness.for_peers(peers, run_peer, "tcp-clients")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        harness.cleanup_all()
