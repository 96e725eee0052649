#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Verify the RoCEv2 ICRC of every UDP/4791 packet in a capture.

Run with Debian's /usr/bin/python3 (python3-scapy):

    /usr/bin/python3 tests/lab/icrc_check.py CAPTURE [--min N]
                     [--min-id N] [--scapy all|N] [--port P] [-v]

Every packet's ICRC is recomputed by the reference computation below (IBA
annex A17.3.3 written out independently of daemon/icrc.c) and compared
with the ICRC on the wire.  IPv4 packets are also checked by scapy's RoCE
layer (scapy.contrib.roce.BTH.compute_icrc), which must agree with the
reference: by default the first 1000 packets, the first packet of every
BTH opcode and every 50th packet after that (scapy dissection is slow);
--scapy all checks every packet, --scapy N every Nth.  scapy has no IPv6
ICRC, so IPv6 packets are checked by the reference alone.

IPv4 packets with a non-zero IP identification are counted: ipathd sends
ID 0, so those are the segments of UDP GSO datagrams (1, 2, .. in each);
--min-id N requires at least N of them.  An uncut GSO datagram (a capture
on a veth that takes GSO) fails the check: capture where they are cut
(tests/lab/ipathd-lab.sh up --cut-gso).

Exit status 0 when at least N (default 1) packets were checked and all
were right; 1 otherwise (each bad packet is listed with its frame number).
"""
import argparse
import struct
import sys
import zlib

from scapy.all import IP, UDP, bind_layers
from scapy.contrib.roce import BTH
from scapy.utils import RawPcapNgReader, RawPcapReader

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
LINKTYPE_RAW = 101


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


def ip_datagram(frame, linktype):
    """The IP datagram in a captured frame (Ethernet padding cut), or None."""
    if linktype == LINKTYPE_ETHERNET:
        off, etype = 14, frame[12:14]
        if etype == b'\x81\x00':        # one VLAN tag
            off, etype = 18, frame[16:18]
        if etype not in (b'\x08\x00', b'\x86\xdd'):
            return None
        ip = frame[off:]
    elif linktype == LINKTYPE_LINUX_SLL:
        ip = frame[16:]
    elif linktype == LINKTYPE_RAW:
        ip = frame
    else:
        return None
    if len(ip) >= 20 and ip[0] >> 4 == 4:
        return ip[:struct.unpack('>H', ip[2:4])[0]]
    if len(ip) >= 40 and ip[0] >> 4 == 6:
        return ip[:40 + struct.unpack('>H', ip[4:6])[0]]
    return None


def udp_payload_offset(ip, port):
    """Offset of the UDP payload when ip is UDP to port, else None."""
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 0x0f) * 4
        if ip[9] != 17:
            return None
        if struct.unpack('>H', ip[6:8])[0] & 0x3fff:
            return -1                   # a fragment: cannot be checked
    else:
        ihl = 40
        if ip[6] != 17:
            return None
    if len(ip) < ihl + 8 or struct.unpack('>H', ip[ihl + 2:ihl + 4])[0] != port:
        return None
    return ihl + 8


def scapy_icrc(dgram):
    p = IP(dgram)
    if BTH not in p:
        return None
    return struct.unpack('<I', p[BTH].compute_icrc(None))[0]


def frames(path):
    with open(path, 'rb') as f:
        magic = f.read(4)
    ng = magic == b'\x0a\x0d\x0d\x0a'
    r = RawPcapNgReader(path) if ng else RawPcapReader(path)
    try:
        for data, meta in r:
            yield data, (meta.linktype if ng else r.linktype)
    finally:
        r.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('capture')
    ap.add_argument('--min', type=int, default=1,
                    help='fail when fewer RoCEv2 packets were checked')
    ap.add_argument('--min-id', type=int, default=0,
                    help='fail when fewer IPv4 packets had a non-zero IP ID')
    ap.add_argument('--scapy', default='sample',
                    help='all, N (every Nth) or sample (default)')
    ap.add_argument('--port', type=int, default=4791,
                    help='RoCEv2 UDP destination port (default 4791)')
    ap.add_argument('-v', '--verbose', action='store_true')
    args = ap.parse_args()
    if args.port != 4791:
        bind_layers(UDP, BTH, dport=args.port)
    every = 1 if args.scapy == 'all' else \
        50 if args.scapy == 'sample' else max(1, int(args.scapy))

    checked = bad = v6 = by_scapy = with_id = 0
    opcodes_seen = set()
    for frame_no, (frame, lt) in enumerate(frames(args.capture), 1):
        ip = ip_datagram(frame, lt)
        if ip is None:
            continue
        off = udp_payload_offset(ip, args.port)
        if off is None:
            continue
        checked += 1
        if off < 0:
            bad += 1
            print('frame %d: IP fragment' % frame_no)
            continue
        if len(ip) < off + 12 + 4:
            bad += 1
            print('frame %d: runt (shorter than UDP + BTH + ICRC)' % frame_no)
            continue
        is4 = ip[0] >> 4 == 4
        v6 += not is4
        with_id += is4 and ip[4:6] != b'\x00\x00'
        wire = struct.unpack('<I', ip[-4:])[0]
        ref = ref_icrc(ip[:-4])
        msg = None
        if wire != ref:
            msg = 'ICRC on the wire %08x, computed %08x' % (wire, ref)
        opcode = ip[off]
        if is4 and (args.scapy == 'all' or checked <= 1000 or
                    opcode not in opcodes_seen or checked % every == 0):
            sc = scapy_icrc(ip)
            by_scapy += 1
            if sc is None:
                msg = 'scapy does not decode a BTH'
            elif sc != ref:
                msg = 'scapy %08x != reference %08x' % (sc, ref)
        opcodes_seen.add(opcode)
        if msg:
            bad += 1
            print('frame %d: %s' % (frame_no, msg))
        elif args.verbose:
            print('frame %d: opcode %d ok %08x' % (frame_no, opcode, wire))
    print('icrc_check: %d RoCEv2 packets (%d IPv6, %d also checked by scapy, '
          '%d IPv4 with a non-zero IP ID: GSO segments), %d bad'
          % (checked, v6, by_scapy, with_id, bad))
    if checked < args.min:
        print('icrc_check: expected at least %d packets' % args.min)
        return 1
    if with_id < args.min_id:
        print('icrc_check: expected at least %d packets with a non-zero IP ID'
              % args.min_id)
        return 1
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
