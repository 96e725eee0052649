#!/usr/bin/python3
"""Extended verbs through pyverbs: CQEX (ibv_cq_ex) and QPEx (ibv_qp_ex).

Two RC QPs of this process, on one device, connected to each other.  Data
moves with the ibv_wr_* builders (send, send_imm, rdma_write, rdma_write_imm,
rdma_read, atomic_fetch_add, atomic_cmp_swp) and completions are read with
start_poll/next_poll/end_poll and the read_* accessors.  Every byte and
every completion field is checked; any mismatch exits non-zero.

Run with Debian's /usr/bin/python3 (python3-pyverbs), with SYSFS_PATH and
the provider environment set (tests/lib.sh: ipd_env):
    ex_verbs.py -d DEV -g GID_INDEX
"""
import argparse
import os
import random
import socket
import struct
import sys
import time

import pyverbs.enums as e
from pyverbs.addr import AHAttr, GlobalRoute
from pyverbs.cq import CQEX, CqInitAttrEx, PollCqAttr
from pyverbs.device import Context
from pyverbs.mr import MR
from pyverbs.pd import PD
from pyverbs.qp import QPAttr, QPCap, QPEx, QPInitAttrEx
from pyverbs.wr import RecvWR, SGE

PORT = 1
BUF = 2 << 20          # per MR: room for a 1 MiB message and atomics
ATOMIC_OFF = BUF - 64  # 8-byte aligned atomic targets at the end
POLL_TIMEOUT = 20.0    # seconds
ENOENT = 2

SEND_OPS = (e.IBV_QP_EX_WITH_SEND | e.IBV_QP_EX_WITH_SEND_WITH_IMM |
            e.IBV_QP_EX_WITH_RDMA_WRITE | e.IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM |
            e.IBV_QP_EX_WITH_RDMA_READ | e.IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP |
            e.IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD)
ACCESS = (e.IBV_ACCESS_LOCAL_WRITE | e.IBV_ACCESS_REMOTE_WRITE |
          e.IBV_ACCESS_REMOTE_READ | e.IBV_ACCESS_REMOTE_ATOMIC)

checks = 0


class Mismatch(Exception):
    pass


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        raise Mismatch(what)


class Side:
    """One endpoint: CQEX, MR and QPEx."""

    def __init__(self, ctx, pd, name):
        self.name = name
        self.cq = CQEX(ctx, CqInitAttrEx(cqe=256,
                                         wc_flags=e.IBV_WC_STANDARD_FLAGS))
        self.mr = MR(pd, BUF, ACCESS)
        cap = QPCap(max_send_wr=64, max_recv_wr=64, max_send_sge=2,
                    max_recv_sge=2)
        attr = QPInitAttrEx(qp_type=e.IBV_QPT_RC, scq=self.cq, rcq=self.cq,
                            pd=pd, cap=cap, send_ops_flags=SEND_OPS,
                            comp_mask=e.IBV_QP_INIT_ATTR_PD |
                            e.IBV_QP_INIT_ATTR_SEND_OPS_FLAGS)
        self.qp = QPEx(ctx, attr)
        self.psn = random.getrandbits(24)


def connect(ctx, gid_index, a, b):
    gid = ctx.query_gid(PORT, gid_index)
    for me, peer in ((a, b), (b, a)):
        attr = QPAttr(port_num=PORT)
        attr.pkey_index = 0
        attr.qp_access_flags = ACCESS
        attr.path_mtu = e.IBV_MTU_1024
        attr.dest_qp_num = peer.qp.qp_num
        attr.rq_psn = peer.psn
        attr.sq_psn = me.psn
        attr.max_dest_rd_atomic = 4
        attr.max_rd_atomic = 4
        attr.min_rnr_timer = 12
        attr.timeout = 14
        attr.retry_cnt = 7
        attr.rnr_retry = 7
        attr.ah_attr = AHAttr(port_num=PORT, is_global=1,
                              gr=GlobalRoute(dgid=gid, sgid_index=gid_index))
        me.qp.to_rts(attr)
        check(me.qp.qp_state == e.IBV_QPS_RTS, f'{me.name}: QP not in RTS')


def read_wc(cq):
    """The fields of the completion start_poll/next_poll just made current."""
    wc = {'status': cq.status, 'wr_id': cq.wr_id,
          'opcode': cq.read_opcode(), 'qp_num': cq.read_qp_num(),
          'wc_flags': cq.read_wc_flags()}
    if wc['status'] == e.IBV_WC_SUCCESS:
        wc['byte_len'] = cq.read_byte_len()
        if wc['wc_flags'] & e.IBV_WC_WITH_IMM:
            wc['imm'] = socket.ntohl(cq.read_imm_data())
    return wc


def poll(cq, n):
    """n completions in one start_poll/next_poll.../end_poll batch."""
    deadline = time.monotonic() + POLL_TIMEOUT
    attr = PollCqAttr()
    ret = cq.start_poll(attr)
    while ret == ENOENT:
        if time.monotonic() > deadline:
            raise Mismatch(f'no completion within {POLL_TIMEOUT} s')
        ret = cq.start_poll(attr)
    check(ret == 0, f'start_poll returned {ret}')
    wcs = [read_wc(cq)]
    try:
        while len(wcs) < n:
            ret = cq.poll_next()
            if ret == ENOENT:
                if time.monotonic() > deadline:
                    raise Mismatch(f'only {len(wcs)} of {n} completions')
                continue
            check(ret == 0, f'poll_next returned {ret}')
            wcs.append(read_wc(cq))
    finally:
        cq.end_poll()
    return wcs


def expect_wc(wc, qp, wr_id, opcode, byte_len=None, imm=None, what=''):
    check(wc['status'] == e.IBV_WC_SUCCESS,
          f'{what}: status {wc["status"]}')
    check(wc['wr_id'] == wr_id, f'{what}: wr_id {wc["wr_id"]} != {wr_id}')
    check(wc['opcode'] == opcode, f'{what}: opcode {wc["opcode"]} != {opcode}')
    check(wc['qp_num'] == qp.qp.qp_num,
          f'{what}: qp_num {wc["qp_num"]:#x} != {qp.qp.qp_num:#x}')
    if byte_len is not None:
        check(wc['byte_len'] == byte_len,
              f'{what}: byte_len {wc["byte_len"]} != {byte_len}')
    if imm is not None:
        check(wc.get('imm') == imm, f'{what}: imm {wc.get("imm")} != {imm:#x}')


def no_more(side):
    """The CQ holds nothing beyond what was expected."""
    ret = side.cq.start_poll(PollCqAttr())
    if ret == 0:
        extra = read_wc(side.cq)
        side.cq.end_poll()
        raise Mismatch(f'{side.name}: unexpected completion {extra}')
    check(ret == ENOENT, f'start_poll on empty CQ returned {ret}')


def fill(side, off, n):
    data = os.urandom(n)
    side.mr.write(data, n, off)
    return data


def post_recv(side, wr_id, off, n):
    sge = SGE(side.mr.buf + off, n, side.mr.lkey)
    side.qp.post_recv(RecvWR(wr_id=wr_id, num_sge=1, sg=[sge]))


def post_one(side, wr_id, build, sge, flags=e.IBV_SEND_SIGNALED):
    q = side.qp
    q.wr_start()
    q.wr_id = wr_id
    q.wr_flags = flags
    build(q)
    q.wr_set_sge(sge)
    q.wr_complete()


def test_send(a, b, size, imm=None):
    what = f'send{"_imm" if imm is not None else ""} {size} B'
    data = fill(a, 0, size)
    b.mr.write(b'\0' * size, size, 0)
    post_recv(b, 0x100 + size, 0, size)
    if imm is None:
        post_one(a, 0x200 + size, lambda q: q.wr_send(),
                 SGE(a.mr.buf, size, a.mr.lkey))
    else:
        post_one(a, 0x200 + size, lambda q: q.wr_send_imm(imm),
                 SGE(a.mr.buf, size, a.mr.lkey))
    expect_wc(poll(a.cq, 1)[0], a, 0x200 + size, e.IBV_WC_SEND, what=what)
    expect_wc(poll(b.cq, 1)[0], b, 0x100 + size, e.IBV_WC_RECV, size, imm,
              what=what + ' (receiver)')
    check(b.mr.read(size, 0) == data, f'{what}: payload differs')


def test_write(a, b, size, off, imm=None):
    what = f'rdma_write{"_imm" if imm is not None else ""} {size} B at +{off}'
    data = fill(a, 0, size)
    b.mr.write(b'\0' * size, size, off)
    if imm is None:
        build = lambda q: q.wr_rdma_write(b.mr.rkey, b.mr.buf + off)
    else:
        post_recv(b, 0x300, 0, 0)
        build = lambda q: q.wr_rdma_write_imm(b.mr.rkey, b.mr.buf + off, imm)
    post_one(a, 0x400 + size, build, SGE(a.mr.buf, size, a.mr.lkey))
    expect_wc(poll(a.cq, 1)[0], a, 0x400 + size, e.IBV_WC_RDMA_WRITE,
              what=what)
    if imm is not None:
        expect_wc(poll(b.cq, 1)[0], b, 0x300, e.IBV_WC_RECV_RDMA_WITH_IMM,
                  size, imm, what=what + ' (receiver)')
    check(b.mr.read(size, off) == data, f'{what}: remote memory differs')


def test_read(a, b, size, off):
    what = f'rdma_read {size} B from +{off}'
    data = fill(b, off, size)
    a.mr.write(b'\0' * size, size, 0)
    post_one(a, 0x500 + size, lambda q: q.wr_rdma_read(b.mr.rkey,
                                                        b.mr.buf + off),
             SGE(a.mr.buf, size, a.mr.lkey))
    expect_wc(poll(a.cq, 1)[0], a, 0x500 + size, e.IBV_WC_RDMA_READ,
              size, what=what)
    check(a.mr.read(size, 0) == data, f'{what}: local memory differs')


def u64(side, off):
    return struct.unpack('<Q', side.mr.read(8, off))[0]


def set_u64(side, off, val):
    side.mr.write(struct.pack('<Q', val), 8, off)


def test_atomics(a, b):
    tgt = ATOMIC_OFF
    res = ATOMIC_OFF
    sge = SGE(a.mr.buf + res, 8, a.mr.lkey)
    addr = b.mr.buf + tgt

    start = random.getrandbits(64)
    set_u64(b, tgt, start)
    expected = start
    for i in range(20):
        add = random.getrandbits(40)
        set_u64(a, res, 0)
        post_one(a, 0x600 + i,
                 lambda q, add=add: q.wr_atomic_fetch_add(b.mr.rkey, addr, add),
                 sge)
        expect_wc(poll(a.cq, 1)[0], a, 0x600 + i, e.IBV_WC_FETCH_ADD,
                  what='fetch_add')
        check(u64(a, res) == expected,
              f'fetch_add #{i}: returned {u64(a, res):#x} != {expected:#x}')
        expected = (expected + add) & (2**64 - 1)
        check(u64(b, tgt) == expected,
              f'fetch_add #{i}: target {u64(b, tgt):#x} != {expected:#x}')

    # Compare-and-swap: a miss leaves the target alone, a hit swaps.
    cur = u64(b, tgt)
    for wr_id, cmp, swp, after in ((0x700, cur ^ 1, 0x1111, cur),
                                   (0x701, cur, 0x2222, 0x2222)):
        set_u64(a, res, 0)
        post_one(a, wr_id,
                 lambda q, c=cmp, s=swp: q.wr_atomic_cmp_swp(b.mr.rkey, addr,
                                                             c, s), sge)
        expect_wc(poll(a.cq, 1)[0], a, wr_id, e.IBV_WC_COMP_SWAP,
                  what='cmp_swp')
        check(u64(a, res) == cur, f'cmp_swp: returned {u64(a, res):#x}')
        check(u64(b, tgt) == after, f'cmp_swp: target {u64(b, tgt):#x}')
        cur = after


def test_batch(a, b):
    """Several WRs in one wr_start/wr_complete, only the last signaled,
    then a batch of all-signaled WRs read with next_poll."""
    size = 3000
    datas = [fill(a, i * 4096, size) for i in range(4)]
    q = a.qp
    q.wr_start()
    for i in range(4):
        q.wr_id = 0x800 + i
        q.wr_flags = e.IBV_SEND_SIGNALED if i == 3 else 0
        q.wr_rdma_write(b.mr.rkey, b.mr.buf + 65536 + i * 4096)
        q.wr_set_sge(SGE(a.mr.buf + i * 4096, size, a.mr.lkey))
    q.wr_complete()
    expect_wc(poll(a.cq, 1)[0], a, 0x803, e.IBV_WC_RDMA_WRITE,
              what='unsignaled batch')
    no_more(a)
    for i in range(4):
        check(b.mr.read(size, 65536 + i * 4096) == datas[i],
              f'batch write {i}: remote memory differs')

    q.wr_start()
    for i in range(4):
        q.wr_id = 0x900 + i
        q.wr_flags = e.IBV_SEND_SIGNALED
        q.wr_rdma_read(b.mr.rkey, b.mr.buf + 65536 + i * 4096)
        q.wr_set_sge(SGE(a.mr.buf + 131072 + i * 4096, size, a.mr.lkey))
    q.wr_complete()
    wcs = poll(a.cq, 4)
    for i, wc in enumerate(wcs):
        expect_wc(wc, a, 0x900 + i, e.IBV_WC_RDMA_READ, size,
                  what=f'signaled batch read {i}')
        check(a.mr.read(size, 131072 + i * 4096) == datas[i],
              f'batch read {i}: local memory differs')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('-d', '--dev', required=True)
    ap.add_argument('-g', '--gid-index', type=int, required=True)
    ap.add_argument('--seed', type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    random.seed(seed)
    print(f'seed {seed}')

    with Context(name=args.dev) as ctx:
        pd = PD(ctx)
        a = Side(ctx, pd, 'A')
        b = Side(ctx, pd, 'B')
        connect(ctx, args.gid_index, a, b)
        print(f'QPs {a.qp.qp_num:#x} <-> {b.qp.qp_num:#x} in RTS')

        for size in (1, 4096, 10000, 1 << 20):
            test_send(a, b, size)
            test_send(b, a, size)
        test_send(a, b, 777, imm=0xdeadbeef)
        print('send, send_imm: ok')
        for size, off in ((1, 0), (4096, 3), (65537, 4096), (1 << 20, 0)):
            test_write(a, b, size, off)
        test_write(a, b, 5000, 8, imm=0x01020304)
        print('rdma_write, rdma_write_imm: ok')
        for size, off in ((1, 0), (4096, 1), (65537, 4096), (1 << 20, 0)):
            test_read(a, b, size, off)
        print('rdma_read: ok')
        test_atomics(a, b)
        print('atomic_fetch_add, atomic_cmp_swp: ok')
        test_batch(a, b)
        print('batched wr_start/wr_complete, next_poll: ok')
        no_more(a)
        no_more(b)
        for s in (a, b):
            s.qp.close()
            s.mr.close()
            s.cq.close()
        pd.close()
    print(f'PASS ex_verbs: {checks} checks')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except Mismatch as ex:
        print(f'FAIL ex_verbs: {ex}', file=sys.stderr)
        sys.exit(1)
