#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/).

Independent of the daemon's own encoders: packets are built here from the
IBA header layouts (BTH, DETH, RETH, AtomicETH, AETH, AtomicAckETH, ImmDt,
IETH) with the real RoCEv2 ICRC (zlib CRC-32 over the masked IPv4/UDP
pseudo header, FACTS.md) for 127.0.0.1:49153 -> 127.0.0.1:4791; control and
peer messages are protobuf encoded by hand from proto/*.proto.  The names
match the fuzz fixtures: RC QPs 0x11 <-> 0x12, UC 0x13 <-> 0x14, UD 0x15
(Q_Key 0x11111111), MR R_Key 0x15a at IOVA 0x100000.

    tests/fuzz/gen_corpus.py [outdir]      (default: tests/fuzz/corpus)
"""
import os
import struct
import sys
import zlib

RC, UC, UD = 0x00, 0x20, 0x60
OPS = dict(SEND_FIRST=0x00, SEND_MIDDLE=0x01, SEND_LAST=0x02,
           SEND_LAST_IMM=0x03, SEND_ONLY=0x04, SEND_ONLY_IMM=0x05,
           WRITE_FIRST=0x06, WRITE_MIDDLE=0x07, WRITE_LAST=0x08,
           WRITE_ONLY=0x0a, WRITE_ONLY_IMM=0x0b, READ_REQUEST=0x0c,
           READ_RESP_FIRST=0x0d, READ_RESP_LAST=0x0f, READ_RESP_ONLY=0x10,
           ACKNOWLEDGE=0x11, ATOMIC_ACK=0x12, COMPARE_SWAP=0x13,
           FETCH_ADD=0x14, SEND_ONLY_INV=0x17)
RKEY, VA, QKEY = 0x15a, 0x100000, 0x11111111


def icrc(payload, sport=49153, dport=4791):
    """RoCEv2 ICRC of a UDP payload without its ICRC (IPv4, ID 0, DF)."""
    total = 20 + 8 + len(payload) + 4
    ip = struct.pack('>BBHHHBBH4s4s', 0x45, 0xff, total, 0, 0x4000, 0xff,
                     17, 0xffff, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    udp = struct.pack('>HHHH', sport, dport, 8 + len(payload) + 4, 0xffff)
    bth = bytearray(payload)
    bth[4] = 0xff
    crc = zlib.crc32(b'\xff' * 8 + ip + udp + bytes(bth)) & 0xffffffff
    return struct.pack('<I', crc)


def pkt(op, qpn, psn, *hdrs, payload=b'', se=False, ackreq=True):
    pad = -len(payload) & 3
    bth = struct.pack('>BBHBBHBBH', op, (0x80 if se else 0) | 0x40 | pad << 4,
                      0xffff, 0, qpn >> 16, qpn & 0xffff,
                      0x80 if ackreq else 0, psn >> 16, psn & 0xffff)
    body = bth + b''.join(hdrs) + payload + b'\0' * pad
    return body + icrc(body)


def reth(va, rkey, length):
    return struct.pack('>QII', va, rkey, length)


def aeth(syndrome, msn):
    return struct.pack('>I', syndrome << 24 | msn)


def atomiceth(va, rkey, swap_add, cmp):
    return struct.pack('>QIQQ', va, rkey, swap_add, cmp)


def deth(qkey, sqp):
    return struct.pack('>II', qkey, sqp)


def imm(v):
    return struct.pack('>I', v)


def packets():
    o = OPS
    data = bytes(range(64))
    mtu = bytes(i & 0xff for i in range(1024))
    return {
        'rc_send_only': pkt(RC | o['SEND_ONLY'], 0x12, 0, payload=data),
        'rc_send_only_imm': pkt(RC | o['SEND_ONLY_IMM'], 0x12, 0, imm(7),
                                payload=data[:13], se=True),
        'rc_send_only_inv': pkt(RC | o['SEND_ONLY_INV'], 0x12, 0, imm(RKEY),
                                payload=data),
        'rc_send_first': pkt(RC | o['SEND_FIRST'], 0x12, 0, payload=mtu,
                             ackreq=False),
        'rc_send_middle': pkt(RC | o['SEND_MIDDLE'], 0x12, 1, payload=mtu,
                              ackreq=False),
        'rc_send_last_imm': pkt(RC | o['SEND_LAST_IMM'], 0x12, 2, imm(9),
                                payload=data[:7]),
        'rc_write_only': pkt(RC | o['WRITE_ONLY'], 0x12, 0,
                             reth(VA + 64, RKEY, 64), payload=data),
        'rc_write_first': pkt(RC | o['WRITE_FIRST'], 0x12, 0,
                              reth(VA, RKEY, 2048), payload=mtu,
                              ackreq=False),
        'rc_write_last': pkt(RC | o['WRITE_LAST'], 0x12, 1, payload=mtu),
        'rc_write_only_imm': pkt(RC | o['WRITE_ONLY_IMM'], 0x12, 0,
                                 reth(VA + 4000, RKEY, 5), imm(3),
                                 payload=data[:5]),
        'rc_write_zero_len': pkt(RC | o['WRITE_ONLY'], 0x12, 0,
                                 reth(0, 0, 0)),
        'rc_read_request': pkt(RC | o['READ_REQUEST'], 0x12, 0,
                               reth(VA, RKEY, 4096)),
        'rc_compare_swap': pkt(RC | o['COMPARE_SWAP'], 0x12, 0,
                               atomiceth(VA + 8, RKEY, 5, 0)),
        'rc_fetch_add': pkt(RC | o['FETCH_ADD'], 0x12, 0,
                            atomiceth(VA + 16, RKEY, 1, 0)),
        'rc_ack': pkt(RC | o['ACKNOWLEDGE'], 0x11, 0, aeth(0x1f, 1),
                      ackreq=False),
        'rc_nak_seq': pkt(RC | o['ACKNOWLEDGE'], 0x11, 0, aeth(0x60, 0),
                          ackreq=False),
        'rc_nak_access': pkt(RC | o['ACKNOWLEDGE'], 0x11, 0, aeth(0x62, 0),
                             ackreq=False),
        'rc_rnr_nak': pkt(RC | o['ACKNOWLEDGE'], 0x11, 0, aeth(0x21, 0),
                          ackreq=False),
        'rc_read_resp_only': pkt(RC | o['READ_RESP_ONLY'], 0x11, 0,
                                 aeth(0x1f, 1), payload=data,
                                 ackreq=False),
        'rc_read_resp_first': pkt(RC | o['READ_RESP_FIRST'], 0x11, 0,
                                  aeth(0x1f, 0), payload=mtu,
                                  ackreq=False),
        'rc_atomic_ack': pkt(RC | o['ATOMIC_ACK'], 0x11, 0, aeth(0x1f, 1),
                             struct.pack('>Q', 42), ackreq=False),
        'uc_send_only': pkt(UC | o['SEND_ONLY'], 0x14, 0, payload=data),
        'uc_write_only_imm': pkt(UC | o['WRITE_ONLY_IMM'], 0x14, 0,
                                 reth(VA, RKEY, 64), imm(1), payload=data),
        'ud_send_only': pkt(UD | o['SEND_ONLY'], 0x15, 0, deth(QKEY, 0x15),
                            payload=data),
        'ud_send_only_imm': pkt(UD | o['SEND_ONLY_IMM'], 0x15, 0,
                                deth(QKEY, 0x15), imm(5), payload=data[:3]),
    }


# ---- protobuf, by hand (varint = 0, length-delimited = 2) ----

def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7f
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def f_int(num, v):
    return varint(num << 3) + varint(v)


def f_msg(num, body):
    return varint(num << 3 | 2) + varint(len(body)) + body


def requests():
    dgid = bytes(10) + b'\xff\xff' + bytes([127, 0, 0, 1])
    grh = f_msg(1, dgid) + f_int(3, 1) + f_int(4, 64)
    ah = f_msg(1, grh) + f_int(6, 1) + f_int(7, 1)
    cap = f_int(1, 16) + f_int(2, 16) + f_int(3, 1) + f_int(4, 1)
    rtr = (f_int(1, 2) + f_int(3, 3) + f_int(6, 0) + f_int(8, 0x12) +
           f_msg(11, ah) + f_int(18, 1) + f_int(19, 1))
    return {
        'hello_again': f_msg(1, f_int(1, 1) + f_msg(2, b'x')),
        'query_device': f_msg(2, b''),
        'query_port': f_msg(3, f_int(1, 1)),
        'alloc_pd': f_msg(4, b''),
        'reg_mr_no_fd': f_msg(5, f_int(1, 1) + f_int(2, 0x10000) +
                              f_int(3, 4096) + f_int(4, 0x10000) +
                              f_int(5, 7) + f_msg(6, f_int(2, 1))),
        'create_cq': f_msg(6, f_int(1, 16) + f_int(2, 0xdead)),
        'resize_cq': f_msg(7, f_int(1, 1) + f_int(2, 64)),
        'create_srq': f_msg(8, f_int(1, 1) + f_msg(2, f_int(1, 16) +
                                                   f_int(2, 1))),
        'create_ah': f_msg(11, f_int(1, 1) + f_msg(2, ah)),
        'create_qp_rc': f_msg(12, f_int(1, 1) + f_int(2, 2) + f_int(3, 1) +
                              f_int(4, 1) + f_msg(6, cap)),
        'modify_qp_init': f_msg(13, f_int(1, 0x11) + f_int(2, 0x1 | 0x10 |
                                                          0x20 | 0x8) +
                                f_msg(3, f_int(1, 1) + f_int(9, 7) +
                                      f_int(20, 1))),
        'modify_qp_rtr': f_msg(13, f_int(1, 0x11) + f_int(2, 0x1 | 0x80 |
                                                         0x100 | 0x1000 |
                                                         0x100000 | 0x8000 |
                                                         0x20000) +
                               f_msg(3, rtr)),
        'query_qp': f_msg(14, f_int(1, 0x11) + f_int(2, 0x1fffff)),
        'destroy_qp': f_msg(15, f_int(1, 5) + f_int(2, 0x11)),
        'destroy_pd': f_msg(15, f_int(1, 1) + f_int(2, 1)),
        'status': f_msg(16, b''),
        'iommu_inval': f_msg(18, f_int(1, 1) + f_int(2, 0) + f_int(3, 1)),
        'alloc_mw': f_msg(20, f_int(1, 1) + f_int(2, 2)),
        'dealloc_mw': f_msg(21, f_int(1, 0x800000)),
        'bind_mw': f_msg(22, f_int(1, 0x11) + f_int(2, 0x800000) +
                         f_int(3, 0x80000001) + f_int(4, 1) +
                         f_int(5, 0x10000) + f_int(6, 64) + f_int(7, 2)),
        'unknown_op': f_msg(60, b'\x08\x01'),
    }


# The ctl target's first byte: descriptors to send (fuzz_ctl.c).
FDS_NONE, FDS_MEMFD, FDS_SOCKET, FDS_2MEMFD = 0x00, 0x01, 0x01 | 2 << 2, 0x02


def ctl_inputs():
    """Control packets in an order that builds on itself (the daemon keeps
    the objects between inputs): named NN_what so the driver, which reads
    files in name order, replays them in this order."""
    req = requests()
    reg_mr_fd = f_msg(5, f_int(1, 1) + f_int(2, 0x10000) + f_int(3, 4096) +
                      f_int(4, 0x10000) + f_int(5, 7) + f_msg(6, f_int(2, 1)))
    kstub = f_msg(17, f_int(1, 1) + f_int(2, 16) + f_int(3, 8) +
                  f_int(4, 16) + f_int(5, 0x7f0000000000))
    order = [(FDS_NONE, n, req[n]) for n in (
        'hello_again', 'query_device', 'query_port', 'alloc_pd',
        'reg_mr_no_fd')]
    order += [(FDS_MEMFD, 'reg_mr_memfd', reg_mr_fd)]
    order += [(FDS_NONE, n, req[n]) for n in (
        'create_cq', 'resize_cq', 'create_srq', 'create_ah', 'create_qp_rc',
        'modify_qp_init', 'modify_qp_rtr', 'query_qp', 'alloc_mw',
        'bind_mw', 'dealloc_mw')]
    order += [(FDS_SOCKET, 'create_channel_socket', f_msg(19, b'')),
              (FDS_2MEMFD, 'kstub_attach_memfds', kstub)]
    order += [(FDS_NONE, n, req[n]) for n in (
        'iommu_inval', 'status', 'destroy_qp', 'destroy_pd', 'unknown_op')]
    return {'%02d_%s' % (i, name): bytes([fds]) + body
            for i, (fds, name, body) in enumerate(order)}


def peer_hellos():
    caps = (f_int(1, 1) + f_int(2, 63) + f_int(3, 1) + f_int(4, 0x1234) +
            f_int(5, 0xabcdef) + f_int(6, 4791) + f_msg(7, b'ipathpeer0'))
    return {
        'hello': f_msg(1, caps) + f_int(3, 77),
        'hello_v2': f_msg(1, caps.replace(f_int(1, 1), f_int(1, 2), 1)) +
        f_int(3, 78),
        'reply_unasked': f_msg(1, caps) + f_int(2, 1) + f_int(3, 79),
        'no_caps': f_int(3, 80),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'corpus')
    for target, seeds in (('pkt', packets()), ('ctl', ctl_inputs()),
                          ('peer', peer_hellos())):
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for old in os.listdir(d):   # the directory is ours: no stale seeds
            os.unlink(os.path.join(d, old))
        for name, data in seeds.items():
            with open(os.path.join(d, name), 'wb') as f:
                f.write(data)


if __name__ == '__main__':
    main()
