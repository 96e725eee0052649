#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Verify the RoCEv2 ICRC of every UDP/4791 packet in a capture.

Run with Debian's /usr/bin/python3 (python3-scapy):

    /usr/bin/python3 tests/lab/icrc_check.py CAPTURE.pcapng [--min N] [-v]

Every IPv4 packet is checked twice, by scapy's RoCE layer
(scapy.contrib.roce.BTH.compute_icrc) and by the reference computation
below (IBA annex A17.3.3 written out independently of daemon/icrc.c);
the two must agree with each other and with the ICRC on the wire.  scapy
has no IPv6 ICRC, so IPv6 packets are checked by the reference alone.

Exit status 0 when at least N (default 1) packets were checked and all
were right; 1 otherwise (each bad packet is listed with its frame number).
"""
import argparse
import struct
import sys
import zlib

from scapy.all import IP, IPv6, UDP, PcapNgReader, PcapReader, bind_layers, raw
from scapy.contrib.roce import BTH

ROCE_PORT = 4791


def ref_icrc(dgram):
    """ICRC over an IP datagram without its last 4 bytes (the ICRC)."""
    b = bytearray(dgram)
    if b[0] >> 4 == 4:
        ihl = (b[0] & 0x0f) * 4
        b[1] = 0xff                     # TOS
        b[8] = 0xff                     # TTL
        b[10:12] = b'\xff\xff'          # header checksum
    else:
        ihl = 40
        b[0] |= 0x0f                    # traffic class
        b[1:4] = b'\xff\xff\xff'        # traffic class + flow label
        b[7] = 0xff                     # hop limit
    b[ihl + 6:ihl + 8] = b'\xff\xff'    # UDP checksum
    b[ihl + 8 + 4] = 0xff               # BTH FECN, BECN, resv6
    return zlib.crc32(b'\xff' * 8 + bytes(b)) & 0xffffffff


def ip_layer(pkt):
    if IP in pkt:
        return pkt[IP]
    if IPv6 in pkt:
        return pkt[IPv6]
    return None


def check(pkt):
    """None when not RoCEv2, else (ok, message)."""
    ip = ip_layer(pkt)
    if ip is None or UDP not in pkt or pkt[UDP].dport != ROCE_PORT:
        return None
    dgram = raw(ip)
    if isinstance(ip, IP):
        dgram = dgram[:ip.len]          # drop Ethernet padding
        if ip.frag or ip.flags.MF:
            return False, 'IP fragment'
    else:
        dgram = dgram[:40 + ip.plen]
    iplen = (dgram[0] & 0x0f) * 4 if isinstance(ip, IP) else 40
    if len(dgram) < iplen + 8 + 12 + 4:
        return False, 'runt (shorter than UDP + BTH + ICRC)'
    wire = struct.unpack('<I', dgram[-4:])[0]
    ref = ref_icrc(dgram[:-4])
    if isinstance(ip, IP):
        p = IP(dgram)
        if BTH not in p:
            return False, 'scapy does not decode a BTH'
        sc = struct.unpack('<I', p[BTH].compute_icrc(None))[0]
        if sc != ref:
            return False, 'scapy %08x != reference %08x' % (sc, ref)
    if wire != ref:
        return False, 'ICRC on the wire %08x, computed %08x' % (wire, ref)
    return True, 'ok %08x' % wire


def packets(path):
    with open(path, 'rb') as f:
        magic = f.read(4)
    reader = PcapNgReader if magic == b'\x0a\x0d\x0d\x0a' else PcapReader
    with reader(path) as r:
        for pkt in r:
            yield pkt


def main():
    global ROCE_PORT
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('capture')
    ap.add_argument('--min', type=int, default=1,
                    help='fail when fewer RoCEv2 packets were checked')
    ap.add_argument('--port', type=int, default=ROCE_PORT,
                    help='RoCEv2 UDP destination port (default 4791)')
    ap.add_argument('-v', '--verbose', action='store_true')
    args = ap.parse_args()
    if args.port != ROCE_PORT:
        ROCE_PORT = args.port
        bind_layers(UDP, BTH, dport=args.port)

    checked = bad = v6 = 0
    for frame, pkt in enumerate(packets(args.capture), 1):
        r = check(pkt)
        if r is None:
            continue
        checked += 1
        v6 += IPv6 in pkt
        ok, msg = r
        if not ok:
            bad += 1
            print('frame %d: %s' % (frame, msg))
        elif args.verbose:
            print('frame %d: %s' % (frame, msg))
    print('icrc_check: %d RoCEv2 packets (%d IPv6), %d bad ICRC'
          % (checked, v6, bad))
    if checked < args.min:
        print('icrc_check: expected at least %d packets' % args.min)
        return 1
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
