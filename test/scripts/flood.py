#!/usr/bin/env python3
"""Packet floods for test/e2e/load.test.ts, run inside a test namespace.

  flood.py syn SRC DST PORT COUNT       COUNT TCP SYNs from SRC:random to DST:PORT (raw socket)
  flood.py connect DST PORT COUNT       COUNT connections to DST:PORT, each reset at once
  flood.py udp DST PORT NPORTS COUNT    COUNT datagrams to DST:PORT..PORT+NPORTS-1
  flood.py ping DST IDS COUNT           COUNT ICMP echo requests to DST, identifiers 1..IDS
                                        (raw socket: ping -f without iputils)

Prints "SENT n" (connect: "SENT n OK m", m the connections that completed)
and the seconds taken.
"""
import errno
import os
import random
import select
import socket
import struct
import sys
import time


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def syn(src, dst, port, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sa, da = socket.inet_aton(src), socket.inet_aton(dst)
    sent = 0
    for i in range(count):
        sport = 1024 + (i % 64000)
        seq = random.getrandbits(32)
        # MSS 1460, window scale 7
        opts = b"\x02\x04\x05\xb4\x01\x03\x03\x07"
        tcp = struct.pack("!HHIIBBHHH", sport, port, seq, 0, (5 + len(opts) // 4) << 4, 0x02, 64240, 0, 0) + opts
        c = csum(sa + da + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
        tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0, sa, da)
        for _ in range(1000):
            try:
                s.sendto(ip + tcp, (dst, 0))
                sent += 1
                break
            except OSError as e:
                if e.errno not in (errno.ENOBUFS, errno.EAGAIN):
                    raise
                time.sleep(0.0005)
    return "SENT %d" % sent


def connect(dst, port, count):
    linger = struct.pack("ii", 1, 0)
    pending = {}
    ok = started = 0
    poll = select.poll()
    deadline = time.time() + 120
    while (started < count or pending) and time.time() < deadline:
        while started < count and len(pending) < 256:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            r = s.connect_ex((dst, port))
            started += 1
            if r in (0, errno.EINPROGRESS):
                pending[s.fileno()] = (s, time.time())
                poll.register(s.fileno(), select.POLLOUT)
            else:
                s.close()
        for fd, _ in poll.poll(50):
            s, _t = pending.pop(fd)
            poll.unregister(fd)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                ok += 1
            s.close()
        now = time.time()
        for fd in [fd for fd, (_s, t) in pending.items() if now - t > 3]:
            s, _t = pending.pop(fd)
            poll.unregister(fd)
            s.close()
    return "SENT %d OK %d" % (started, ok)


def udp(dst, port, nports, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sent = 0
    payload = b"x" * 32
    for i in range(count):
        try:
            s.sendto(payload, (dst, port + i % nports))
            sent += 1
        except OSError as e:
            if e.errno not in (errno.ENOBUFS, errno.EAGAIN, errno.ECONNREFUSED):
                raise
            time.sleep(0.0002)
    return "SENT %d" % sent


def ping(dst, ids, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.setblocking(False)
    sent = replies = 0
    payload = b"p" * 56
    for i in range(count):
        m = struct.pack("!BBHHH", 8, 0, 0, 1 + i % ids, i & 0xFFFF) + payload
        m = m[:2] + struct.pack("!H", csum(m)) + m[4:]
        try:
            s.sendto(m, (dst, 0))
            sent += 1
        except OSError as e:
            if e.errno not in (errno.ENOBUFS, errno.EAGAIN):
                raise
            time.sleep(0.0002)
        try:
            while True:
                s.recv(2048)
                replies += 1
        except BlockingIOError:
            pass
    return "SENT %d REPLIES %d" % (sent, replies)


def main():
    a = sys.argv[1:]
    t0 = time.time()
    if a[0] == "syn":
        out = syn(a[1], a[2], int(a[3]), int(a[4]))
    elif a[0] == "connect":
        out = connect(a[1], int(a[2]), int(a[3]))
    elif a[0] == "udp":
        out = udp(a[1], int(a[2]), int(a[3]), int(a[4]))
    elif a[0] == "ping":
        out = ping(a[1], int(a[2]), int(a[3]))
    else:
        sys.exit("unknown mode " + a[0])
    print("%s IN %.2f" % (out, time.time() - t0), flush=True)


if __name__ == "__main__":
    main()
