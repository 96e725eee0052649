#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Probe the kernel's UDP steering that receiving in the application would
rely on (docs/design.md, "Next: receiving in the application").

    /usr/bin/python3 tests/lab/steering-probe.py      (as root)

Two network namespaces joined by a veth pair (10.79.0.1 <-> 10.79.0.2),
created here and removed on exit.  In the receiving namespace two UDP
sockets share 10.79.0.2:4791 with SO_REUSEPORT, as a daemon's and an
application's would: one unconnected ("daemon") and one connected to
10.79.0.1:50001 ("app").  The sending namespace sends N
datagrams from source port 50001 and N from each of the OTHER ports
50002.. to 10.79.0.2:4791.

Prints where they arrived.  Exit status 0 when every datagram from 50001
reached "app" and every other one reached "daemon" (the connected member
wins for its 4-tuple, the unconnected one gets the rest), 1 otherwise.
Without the connect, the reuseport hash spreads the other ports over both
sockets and the probe fails.
"""
import ctypes
import os
import socket
import subprocess
import sys
import time

A, B, PORT, N, OTHER = "10.79.0.1", "10.79.0.2", 4791, 20, 32
NS_A, NS_B = "ipd-steer-a", "ipd-steer-b"
CLONE_NEWNET = 0x40000000
SO_RCVBUFFORCE = 33


def sh(*args):
    r = subprocess.run(args, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=10)
    if r.returncode:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.strip()))


def ns_del():
    for ns in (NS_A, NS_B):
        try:
            subprocess.run(["ip", "netns", "del", ns], timeout=10,
                           stderr=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            print("steering-probe: could not remove netns", ns)


def setns(name):
    # os.setns is Python 3.12; Debian 12 has 3.11
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), f"setns {name}")
    finally:
        os.close(fd)


def member(conn=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
    s.bind((B, PORT))
    if conn:
        s.connect(conn)
    s.setblocking(False)
    return s


def drain(s):
    got = {}
    while True:
        try:
            d = s.recv(64)
        except BlockingIOError:
            return got
        got[d] = got.get(d, 0) + 1


def probe():
    setns(NS_B)
    socks = {"daemon": member(), "app": member((A, 50001))}
    setns(NS_A)
    tx = []
    for port in range(50001, 50002 + OTHER):
        t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t.bind((A, port))
        tx.append(t)
    for _ in range(N):
        for t in tx:
            t.sendto(b"from%d" % t.getsockname()[1], (B, PORT))
    time.sleep(0.3)
    res = {name: drain(s) for name, s in socks.items()}
    mine = b"from50001"
    for name, got in res.items():
        print(f"{name:8s} from 50001: {got.get(mine, 0):3d}, from the "
              f"{OTHER} other ports: {sum(got.values()) - got.get(mine, 0)}")
    app = res["app"]
    ok = app.get(mine, 0) == N and sum(app.values()) == N
    ok = ok and sum(res["daemon"].values()) == N * OTHER
    print("connected member wins for its 4-tuple:", "yes" if ok else "NO")
    return 0 if ok else 1


def main():
    if os.geteuid():
        sys.exit("steering-probe: run as root (it creates namespaces)")
    ns_del()  # left by a killed run
    try:
        sh("ip", "netns", "add", NS_A)
        sh("ip", "netns", "add", NS_B)
        sh("ip", "link", "add", "ipdst0", "netns", NS_A, "type", "veth",
           "peer", "name", "ipdst1", "netns", NS_B)
        sh("ip", "-n", NS_A, "addr", "add", A + "/24", "dev", "ipdst0")
        sh("ip", "-n", NS_B, "addr", "add", B + "/24", "dev", "ipdst1")
        sh("ip", "-n", NS_A, "link", "set", "ipdst0", "up")
        sh("ip", "-n", NS_B, "link", "set", "ipdst1", "up")
        return probe()
    except RuntimeError as e:
        print("steering-probe:", e)
        return 1
    finally:
        ns_del()


if __name__ == "__main__":
    sys.exit(main())
