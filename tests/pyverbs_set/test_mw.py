"""Memory windows, type 1 and 2: remote access is granted exactly while a
window is bound, within its range and rights (a type 2 window only on the
QP it was bound through), and refused after unbinding, local invalidation
or SEND with Invalidate; type 2 binding and local invalidation also
through the ibv_qp_ex builders."""
import os
import unittest

import pyverbs.enums as e
from pyverbs.mr import MR, MW, MWBind, MWBindInfo
from pyverbs.pyverbs_error import PyverbsRDMAError
from pyverbs.wr import SendWR, SGE

from ipdpy import DevTest, Endpoint, connect, poll

WIN_OFF = 4096
WIN_LEN = 8192
MR_ACCESS = (e.IBV_ACCESS_LOCAL_WRITE | e.IBV_ACCESS_REMOTE_WRITE |
             e.IBV_ACCESS_REMOTE_READ | e.IBV_ACCESS_MW_BIND)
WIN_ACCESS = e.IBV_ACCESS_REMOTE_WRITE | e.IBV_ACCESS_REMOTE_READ


class MwTest(DevTest):
    def setUp(self):
        super().setUp()
        if not self.ctx.query_device().max_mw:
            self.skipTest('device reports no memory windows')

    def pair(self):
        """a: requester; b: owns win_mr (the MR windows are bound to)."""
        a = Endpoint(self, e.IBV_QPT_RC, size=1 << 16)
        b = Endpoint(self, e.IBV_QPT_RC, size=1 << 16)
        connect(self, a, b)
        self.addCleanup(b.close)
        self.addCleanup(a.close)
        if not hasattr(self, 'win_mr'):
            self.win_mr = MR(self.pd, 1 << 16, MR_ACCESS)
        return a, b

    def rdma(self, a, rkey, addr, size=64, op=e.IBV_WR_RDMA_WRITE):
        """One RDMA op from a; returns the completion status."""
        wr = a.send_wr(1, op, 0, size)
        wr.set_wr_rdma(rkey, addr)
        a.qp.post_send(wr)
        return poll(a.cq, 1)[0].status

    def win_addr(self, off=0):
        return self.win_mr.buf + WIN_OFF + off

    def test_type1(self):
        a, b = self.pair()
        mw = MW(self.pd, e.IBV_MW_TYPE_1)
        info = MWBindInfo(self.win_mr, self.win_addr(), WIN_LEN, WIN_ACCESS)
        b.qp.bind_mw(mw, MWBind(info, e.IBV_SEND_SIGNALED, wr_id=77))
        wc = poll(b.cq, 1)[0]
        self.assertEqual((wc.status, wc.opcode, wc.wr_id),
                         (e.IBV_WC_SUCCESS, e.IBV_WC_BIND_MW, 77))
        data = os.urandom(64)
        a.mr.write(data, 64, 0)
        self.assertEqual(self.rdma(a, mw.rkey, self.win_addr(100)),
                         e.IBV_WC_SUCCESS)
        self.assertEqual(self.win_mr.read(64, WIN_OFF + 100), data)
        self.assertEqual(self.rdma(a, mw.rkey, self.win_addr(200), 64,
                                   e.IBV_WR_RDMA_READ), e.IBV_WC_SUCCESS)
        # outside the window: refused (the QP goes to error)
        self.assertEqual(self.rdma(a, mw.rkey, self.win_addr(WIN_LEN - 8)),
                         e.IBV_WC_REM_ACCESS_ERR)
        # An access error moves both QPs to the error state; windows
        # belong to the PD, so go on through a fresh pair.
        # "Unbind" (a zero-length bind): access refused from then on.
        a, b = self.pair_on(b)
        old = mw.rkey
        info = MWBindInfo(self.win_mr, self.win_addr(), 0, WIN_ACCESS)
        b.qp.bind_mw(mw, MWBind(info, 0))
        self.assertNotEqual(mw.rkey, old)
        self.assertEqual(self.rdma(a, mw.rkey, self.win_addr(100)),
                         e.IBV_WC_REM_ACCESS_ERR)
        a, _ = self.pair_on(b)
        self.assertEqual(self.rdma(a, old, self.win_addr(100)),
                         e.IBV_WC_REM_ACCESS_ERR)
        mw.close()

    def pair_on(self, b):
        """A new requester connected to a new QP on b's side; b keeps its
        windows (they belong to the PD)."""
        a2 = Endpoint(self, e.IBV_QPT_RC, size=1 << 16)
        b2 = Endpoint(self, e.IBV_QPT_RC, size=1 << 16)
        connect(self, a2, b2)
        self.addCleanup(b2.close)
        self.addCleanup(a2.close)
        return a2, b2

    def bind2(self, b, mw, length=WIN_LEN, access=WIN_ACCESS):
        wr = SendWR(wr_id=5, opcode=e.IBV_WR_BIND_MW,
                    send_flags=e.IBV_SEND_SIGNALED)
        wr.set_bind_wr(mw, MWBindInfo(self.win_mr, self.win_addr(), length,
                                      access))
        b.qp.post_send(wr)
        wc = poll(b.cq, 1)[0]
        self.assertEqual((wc.status, wc.opcode),
                         (e.IBV_WC_SUCCESS, e.IBV_WC_BIND_MW))
        return wr.rkey

    def test_type2_local_inv(self):
        a, b = self.pair()
        mw = MW(self.pd, e.IBV_MW_TYPE_2)
        rkey = self.bind2(b, mw)
        self.assertEqual(self.rdma(a, rkey, self.win_addr()),
                         e.IBV_WC_SUCCESS)
        # bound once: a second bind without invalidation is refused
        with self.assertRaises(PyverbsRDMAError):
            self.bind2(b, mw)
        wr = SendWR(wr_id=6, opcode=e.IBV_WR_LOCAL_INV,
                    send_flags=e.IBV_SEND_SIGNALED)
        wr.imm_data = rkey          # shares the union with invalidate_rkey
        b.qp.post_send(wr)
        wc = poll(b.cq, 1)[0]
        self.assertEqual((wc.status, wc.opcode),
                         (e.IBV_WC_SUCCESS, e.IBV_WC_LOCAL_INV))
        self.assertEqual(self.rdma(a, rkey, self.win_addr()),
                         e.IBV_WC_REM_ACCESS_ERR)
        # rebind after invalidation: access again, with the new key only
        a, b = self.pair_on(b)
        rkey2 = self.bind2(b, mw)
        self.assertNotEqual(rkey2, rkey)
        self.assertEqual(self.rdma(a, rkey2, self.win_addr()),
                         e.IBV_WC_SUCCESS)
        mw.close()

    def test_type2_send_with_invalidate(self):
        a, b = self.pair()
        mw = MW(self.pd, e.IBV_MW_TYPE_2)
        rkey = self.bind2(b, mw, access=e.IBV_ACCESS_REMOTE_READ)
        self.assertEqual(self.rdma(a, rkey, self.win_addr(), 16,
                                   e.IBV_WR_RDMA_READ), e.IBV_WC_SUCCESS)
        # SEND with Invalidate on the window's QP
        b.post_recv(9, 0, 64)
        wr = a.send_wr(10, e.IBV_WR_SEND_WITH_INV, 0, 32)
        wr.imm_data = rkey
        a.qp.post_send(wr)
        self.assertEqual(poll(a.cq, 1)[0].status, e.IBV_WC_SUCCESS)
        wc = poll(b.cq, 1)[0]
        self.assertEqual(wc.status, e.IBV_WC_SUCCESS)
        self.assertTrue(wc.wc_flags & e.IBV_WC_WITH_INV)
        # (pyverbs' WC names the invalidated_rkey union member imm_data)
        self.assertEqual(wc.imm_data, rkey)
        self.assertEqual(self.rdma(a, rkey, self.win_addr(), 16,
                                   e.IBV_WR_RDMA_READ),
                         e.IBV_WC_REM_ACCESS_ERR)
        mw.close()

    def test_type2_read_only(self):
        a, b = self.pair()
        mw = MW(self.pd, e.IBV_MW_TYPE_2)
        rkey = self.bind2(b, mw, access=e.IBV_ACCESS_REMOTE_READ)
        self.assertEqual(self.rdma(a, rkey, self.win_addr()),
                         e.IBV_WC_REM_ACCESS_ERR)
        mw.close()

    def test_type2_only_on_its_qp(self):
        """IBA 10.6.1 (type 2 windows are associated with a QP): the
        rkey works on the QP the window was bound through, on no other
        QP of the same PD; a type 1 window works on every QP of the PD."""
        a, b = self.pair()
        mw = MW(self.pd, e.IBV_MW_TYPE_2)
        rkey = self.bind2(b, mw)
        a2, _ = self.pair_on(b)
        self.assertEqual(self.rdma(a2, rkey, self.win_addr()),
                         e.IBV_WC_REM_ACCESS_ERR)
        self.assertEqual(self.rdma(a, rkey, self.win_addr()),
                         e.IBV_WC_SUCCESS)
        mw1 = MW(self.pd, e.IBV_MW_TYPE_1)
        info = MWBindInfo(self.win_mr, self.win_addr(), WIN_LEN, WIN_ACCESS)
        b.qp.bind_mw(mw1, MWBind(info, 0))
        a3, _ = self.pair_on(b)
        self.assertEqual(self.rdma(a3, mw1.rkey, self.win_addr()),
                         e.IBV_WC_SUCCESS)
        mw1.close()
        mw.close()

    def test_qpex_bind_local_inv(self):
        """ibv_wr_bind_mw and ibv_wr_local_inv between other work
        requests of one batch: they complete in order, and the window is
        usable exactly in between."""
        a = Endpoint(self, e.IBV_QPT_RC, size=1 << 16)
        b = Endpoint(self, e.IBV_QPT_RC, size=1 << 16, ex=True,
                     ex_ops=e.IBV_QP_EX_WITH_BIND_MW |
                     e.IBV_QP_EX_WITH_LOCAL_INV)
        connect(self, a, b)
        self.addCleanup(b.close)
        self.addCleanup(a.close)
        self.win_mr = MR(self.pd, 1 << 16, MR_ACCESS)
        mw = MW(self.pd, e.IBV_MW_TYPE_2)
        rkey = (mw.rkey & ~0xff) | ((mw.rkey + 1) & 0xff)
        a.post_recv(1, 0, 64)
        a.post_recv(2, 64, 64)
        q = b.qp
        q.wr_start()
        q.wr_id, q.wr_flags = 11, e.IBV_SEND_SIGNALED
        q.wr_send()
        q.wr_set_sge(SGE(b.mr.buf, 8, b.mr.lkey))
        q.wr_id, q.wr_flags = 12, e.IBV_SEND_SIGNALED
        q.wr_bind_mw(mw, rkey, MWBindInfo(self.win_mr, self.win_addr(),
                                          WIN_LEN, WIN_ACCESS))
        q.wr_id, q.wr_flags = 13, e.IBV_SEND_SIGNALED
        q.wr_send()
        q.wr_set_sge(SGE(b.mr.buf, 8, b.mr.lkey))
        q.wr_complete()
        wcs = poll(b.cq, 3)
        self.assertEqual([(w.wr_id, w.status, w.opcode) for w in wcs],
                         [(11, e.IBV_WC_SUCCESS, e.IBV_WC_SEND),
                          (12, e.IBV_WC_SUCCESS, e.IBV_WC_BIND_MW),
                          (13, e.IBV_WC_SUCCESS, e.IBV_WC_SEND)])
        self.assertEqual(mw.rkey, rkey)
        self.assertEqual(len(poll(a.cq, 2)), 2)
        self.assertEqual(self.rdma(a, rkey, self.win_addr()),
                         e.IBV_WC_SUCCESS)
        q.wr_start()
        q.wr_id, q.wr_flags = 14, e.IBV_SEND_SIGNALED
        q.wr_local_inv(rkey)
        q.wr_complete()
        wc = poll(b.cq, 1)[0]
        self.assertEqual((wc.wr_id, wc.status, wc.opcode),
                         (14, e.IBV_WC_SUCCESS, e.IBV_WC_LOCAL_INV))
        self.assertEqual(self.rdma(a, rkey, self.win_addr()),
                         e.IBV_WC_REM_ACCESS_ERR)
        mw.close()

    def test_bind_needs_mw_bind_access(self):
        a, b = self.pair()
        plain = MR(self.pd, 1 << 16, e.IBV_ACCESS_LOCAL_WRITE |
                   e.IBV_ACCESS_REMOTE_WRITE)
        mw = MW(self.pd, e.IBV_MW_TYPE_1)
        info = MWBindInfo(plain, plain.buf, 4096, WIN_ACCESS)
        with self.assertRaises(PyverbsRDMAError):
            b.qp.bind_mw(mw, MWBind(info, e.IBV_SEND_SIGNALED))
        mw.close()
        plain.close()

    def test_dereg_bound_mr(self):
        a, b = self.pair()
        mr = MR(self.pd, 1 << 14, MR_ACCESS)
        mw = MW(self.pd, e.IBV_MW_TYPE_1)
        b.qp.bind_mw(mw, MWBind(MWBindInfo(mr, mr.buf, 4096, WIN_ACCESS), 0))
        with self.assertRaises(PyverbsRDMAError):   # a window is bound
            mr.close()
        mw.close()                                   # dealloc unbinds
        mr.close()

    def test_window_rkey_is_no_lkey(self):
        a, b = self.pair()
        mw = MW(self.pd, e.IBV_MW_TYPE_1)
        info = MWBindInfo(self.win_mr, self.win_addr(), WIN_LEN, WIN_ACCESS)
        b.qp.bind_mw(mw, MWBind(info, 0))
        b.post_recv(1, 0, 64)
        wr = SendWR(wr_id=2, opcode=e.IBV_WR_SEND, num_sge=1,
                    sg=[SGE(self.win_addr(), 64, mw.rkey)])
        a.qp.post_send(wr)
        self.assertEqual(poll(a.cq, 1)[0].status, e.IBV_WC_LOC_PROT_ERR)
        mw.close()


if __name__ == '__main__':
    unittest.main()
