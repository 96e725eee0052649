"""Shared helpers of the pyverbs test set (tests/pyverbs_set).

Only public pyverbs/libibverbs behaviour is used, so the set means the same
against ipathd and against any RoCE device (e.g. Linux rxe).  The device and
GID index come from IPD_PY_DEV / IPD_PY_GID (run.py sets them).  Every wait
is bounded by TIMEOUT seconds.
"""
import os
import random
import select
import time
import unittest

import pyverbs.enums as e
from pyverbs.addr import AH, AHAttr, GlobalRoute
from pyverbs.cq import CQ, CQEX, CqInitAttrEx, PollCqAttr
from pyverbs.device import Context
from pyverbs.mr import MR
from pyverbs.pd import PD
from pyverbs.qp import QP, QPAttr, QPCap, QPEx, QPInitAttr, QPInitAttrEx
from pyverbs.srq import SRQ, SrqAttr, SrqInitAttr
from pyverbs.wr import RecvWR, SGE, SendWR

PORT = 1
TIMEOUT = 10.0
QKEY = 0x11111111
GRH = 40
ACCESS = (e.IBV_ACCESS_LOCAL_WRITE | e.IBV_ACCESS_REMOTE_WRITE |
          e.IBV_ACCESS_REMOTE_READ | e.IBV_ACCESS_REMOTE_ATOMIC)
ENOENT = 2


def dev_name():
    return os.environ.get('IPD_PY_DEV') or None


def gid_index():
    return int(os.environ.get('IPD_PY_GID', '1'))


class DevTest(unittest.TestCase):
    """A context and a PD per test; everything closed at the end."""

    def setUp(self):
        name = dev_name()
        before = fd_links()
        self.ctx = Context(name=name) if name else Context()
        # pyverbs hides context->async_fd: it is the read end of the pipe
        # the context opened (the daemon holds the write end, and so does
        # the provider, for IBV_EVENT_DEVICE_FATAL).
        pipes = [fd for fd, link in fd_links().items()
                 if fd not in before and link.startswith('pipe:')
                 and read_end(fd)]
        self.async_fd = pipes[0] if len(pipes) == 1 else None
        self.pd = PD(self.ctx)
        self.gid_index = gid_index()
        self.gid = self.ctx.query_gid(PORT, self.gid_index)
        self.port_attr = self.ctx.query_port(PORT)
        self.mtu = self.port_attr.active_mtu

    def tearDown(self):
        self.pd.close()
        self.ctx.close()

    def ah_attr(self):
        return AHAttr(port_num=PORT, is_global=1,
                      gr=GlobalRoute(dgid=self.gid,
                                     sgid_index=self.gid_index))


def read_end(fd):
    """fd was opened read-only (O_ACCMODE of its flags is O_RDONLY)."""
    with open(f'/proc/self/fdinfo/{fd}') as f:
        for line in f:
            if line.startswith('flags:'):
                return int(line.split()[1], 8) & os.O_ACCMODE == os.O_RDONLY
    return False


def fd_links():
    out = {}
    for fd in os.listdir('/proc/self/fd'):
        try:
            out[int(fd)] = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:
            pass
    return out


def async_event(t, timeout=TIMEOUT):
    """The next async event of t.ctx (bounded wait), acked."""
    assert t.async_fd is not None, 'async_fd not found'
    r, _, _ = select.select([t.async_fd], [], [], timeout)
    assert r, f'no async event within {timeout} s'
    ev = t.ctx.get_async_event()
    ev.ack()
    return ev.event_type


def poll(cq, n, timeout=TIMEOUT):
    """n work completions from a CQ (ibv_poll_cq), or AssertionError."""
    wcs = []
    deadline = time.monotonic() + timeout
    while len(wcs) < n:
        got, batch = cq.poll(n - len(wcs))
        if got:
            wcs.extend(batch[:got])
            continue
        if time.monotonic() > deadline:
            raise AssertionError(f'{len(wcs)} of {n} completions after '
                                 f'{timeout} s')
        time.sleep(0.0002)
    return wcs


def poll_ex(cq, n, timeout=TIMEOUT):
    """n completions from a CQEX as dicts (start_poll/next_poll/end_poll)."""
    def read(cq):
        d = {'status': cq.status, 'wr_id': cq.wr_id,
             'opcode': cq.read_opcode(), 'qp_num': cq.read_qp_num(),
             'wc_flags': cq.read_wc_flags()}
        if d['status'] == e.IBV_WC_SUCCESS:
            d['byte_len'] = cq.read_byte_len()
        return d

    deadline = time.monotonic() + timeout
    out = []
    while len(out) < n:
        ret = cq.start_poll(PollCqAttr())
        if ret == ENOENT:
            if time.monotonic() > deadline:
                raise AssertionError(f'{len(out)} of {n} completions')
            continue
        assert ret == 0, f'start_poll {ret}'
        try:
            out.append(read(cq))
            while len(out) < n:
                ret = cq.poll_next()
                if ret == ENOENT:
                    break
                assert ret == 0, f'poll_next {ret}'
                out.append(read(cq))
        finally:
            cq.end_poll()
    return out


def quiet(cq, ms=200):
    """True if nothing completes on cq within ms milliseconds."""
    deadline = time.monotonic() + ms / 1000
    while time.monotonic() < deadline:
        got, _ = cq.poll(1)
        if got:
            return False
        time.sleep(0.001)
    return True


def channel_ready(channel_fd, ms):
    r, _, _ = select.select([channel_fd], [], [], ms / 1000)
    return bool(r)


class Endpoint:
    """One QP with its CQ(s) and an MR; optionally on an SRQ or extended."""

    def __init__(self, t, qp_type, size=1 << 16, srq=None, cq=None,
                 ex=False, sig_all=False, ex_ops=0):
        self.t = t
        self.type = qp_type
        self.size = size
        self.cq = cq or CQ(t.ctx, 256)
        self.own_cq = cq is None
        self.mr = MR(t.pd, size, ACCESS)
        self.srq = srq
        cap = QPCap(max_send_wr=64, max_recv_wr=0 if srq else 64,
                    max_send_sge=4, max_recv_sge=4, max_inline_data=64)
        if ex:
            ops = (e.IBV_QP_EX_WITH_SEND | e.IBV_QP_EX_WITH_SEND_WITH_IMM |
                   e.IBV_QP_EX_WITH_RDMA_WRITE |
                   e.IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM)
            if qp_type == e.IBV_QPT_RC:
                ops |= (e.IBV_QP_EX_WITH_RDMA_READ |
                        e.IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP |
                        e.IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD)
            if qp_type == e.IBV_QPT_UD:
                ops = e.IBV_QP_EX_WITH_SEND | e.IBV_QP_EX_WITH_SEND_WITH_IMM
            ops |= ex_ops
            attr = QPInitAttrEx(qp_type=qp_type, scq=self.cq, rcq=self.cq,
                                pd=t.pd, cap=cap, srq=srq,
                                sq_sig_all=sig_all, send_ops_flags=ops,
                                comp_mask=e.IBV_QP_INIT_ATTR_PD |
                                e.IBV_QP_INIT_ATTR_SEND_OPS_FLAGS)
            self.qp = QPEx(t.ctx, attr)
        else:
            attr = QPInitAttr(qp_type=qp_type, scq=self.cq, rcq=self.cq,
                              srq=srq, cap=cap, sq_sig_all=sig_all)
            self.qp = QP(t.pd, attr)
        self.psn = random.getrandbits(24)
        self.ah = None

    @property
    def qpn(self):
        return self.qp.qp_num

    def close(self):
        if self.ah:
            self.ah.close()
        self.qp.close()
        self.mr.close()
        if self.own_cq:
            self.cq.close()

    def post_recv(self, wr_id, off=0, length=None):
        length = self.size - off if length is None else length
        wr = RecvWR(wr_id=wr_id, num_sge=1,
                    sg=[SGE(self.mr.buf + off, length, self.mr.lkey)])
        (self.srq or self.qp).post_recv(wr)

    def send_wr(self, wr_id, opcode, off, length, peer=None, flags=None,
                imm=0):
        flags = e.IBV_SEND_SIGNALED if flags is None else flags
        wr = SendWR(wr_id=wr_id, opcode=opcode, num_sge=1,
                    sg=[SGE(self.mr.buf + off, length, self.mr.lkey)],
                    send_flags=flags)
        if imm:
            wr.imm_data = imm
        if self.type == e.IBV_QPT_UD and peer is not None:
            wr.set_wr_ud(self.ah, peer.qpn, QKEY)
        return wr


def rc_attr(mtu, dest_qpn, rq_psn, sq_psn, ah_attr, access=ACCESS):
    """The attributes that bring an RC (or UC) QP from RESET to RTS."""
    attr = QPAttr(port_num=PORT)
    attr.pkey_index = 0
    attr.qp_access_flags = access
    attr.path_mtu = mtu
    attr.dest_qp_num = dest_qpn
    attr.rq_psn = rq_psn
    attr.sq_psn = sq_psn
    attr.max_dest_rd_atomic = 4
    attr.max_rd_atomic = 4
    attr.min_rnr_timer = 1
    attr.timeout = 14
    attr.retry_cnt = 7
    attr.rnr_retry = 7
    attr.ah_attr = ah_attr
    return attr


def connect(t, a, b, mtu=None):
    """Bring a and b to RTS addressed to each other (UD: to RTS, AH to peer)."""
    for me, peer in ((a, b), (b, a)):
        if me.type == e.IBV_QPT_UD:
            attr = QPAttr(port_num=PORT)
            attr.pkey_index = 0
            attr.qkey = QKEY
            attr.sq_psn = me.psn
            me.qp.to_rts(attr)
            me.ah = AH(t.pd, attr=t.ah_attr())
            continue
        me.qp.to_rts(rc_attr(mtu or t.mtu, peer.qpn, peer.psn, me.psn,
                             t.ah_attr()))
