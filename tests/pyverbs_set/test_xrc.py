"""XRC: domains (shared by file), XRC SRQs, INI (XRC_SEND) and TGT
(XRC_RECV) QPs; SEND and WRITE with immediate through XRCETH, RDMA READ
and both atomics checked in the XRC SRQ's PD, the QPEx wr_set_xrc_srqn
path, SEND with Invalidate of a window of the SRQ's PD, and an SRQ number
of another domain refused with an invalid-request NAK."""
import errno
import os
import random
import struct
import tempfile
import unittest

import pyverbs.enums as e
from pyverbs.cq import CQ
from pyverbs.mr import MR, MW, MWBindInfo
from pyverbs.pd import PD
from pyverbs.pyverbs_error import PyverbsRDMAError
from pyverbs.qp import QP, QPAttr, QPCap, QPEx, QPInitAttrEx
from pyverbs.srq import SRQ, SrqAttr, SrqInitAttrEx
from pyverbs.wr import RecvWR, SGE, SendWR
from pyverbs.xrcd import XRCD, XRCDInitAttr

from ipdpy import (ACCESS, PORT, DevTest, Endpoint, async_event, connect,
                   poll, quiet)

XRCD_MASK = e.IBV_XRCD_INIT_ATTR_FD | e.IBV_XRCD_INIT_ATTR_OFLAGS
SIZE = 8192


class XrcTest(DevTest):
    def setUp(self):
        super().setUp()
        self.objs = []
        self.tmp = tempfile.NamedTemporaryFile(prefix='ipd-xrcd-')

    def tearDown(self):
        for o in reversed(self.objs):
            o.close()
        self.tmp.close()
        super().tearDown()

    def keep(self, o):
        self.objs.append(o)
        return o

    def xrcd(self, fd=-1, oflags=os.O_CREAT):
        return self.keep(XRCD(self.ctx, XRCDInitAttr(XRCD_MASK, oflags, fd)))

    def xsrq(self, xrcd, cq, max_wr=16, pd=None):
        a = SrqInitAttrEx(max_wr=max_wr)
        a.srq_type = e.IBV_SRQT_XRC
        a.pd = pd or self.pd
        a.xrcd = xrcd
        a.cq = cq
        a.comp_mask = (e.IBV_SRQ_INIT_ATTR_TYPE | e.IBV_SRQ_INIT_ATTR_PD |
                       e.IBV_SRQ_INIT_ATTR_CQ | e.IBV_SRQ_INIT_ATTR_XRCD)
        return self.keep(SRQ(self.ctx, a))

    def tgt(self, xrcd):
        a = QPInitAttrEx(qp_type=e.IBV_QPT_XRC_RECV,
                         comp_mask=e.IBV_QP_INIT_ATTR_XRCD, xrcd=xrcd)
        return self.keep(QP(self.ctx, a))

    def ini(self, cq, ex=False):
        cap = QPCap(max_send_wr=16, max_recv_wr=0, max_send_sge=1,
                    max_recv_sge=0)
        mask = e.IBV_QP_INIT_ATTR_PD
        ops = 0
        if ex:
            mask |= e.IBV_QP_INIT_ATTR_SEND_OPS_FLAGS
            ops = e.IBV_QP_EX_WITH_SEND | e.IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM
        a = QPInitAttrEx(qp_type=e.IBV_QPT_XRC_SEND, scq=cq, pd=self.pd,
                         cap=cap, comp_mask=mask, send_ops_flags=ops)
        return self.keep(QPEx(self.ctx, a) if ex else QP(self.ctx, a))

    def connect(self, ini, tgt):
        """INI -> TGT with the masks of the kernel's XRC transition table."""
        ipsn, tpsn = random.getrandbits(24), random.getrandbits(24)
        for qp, dest, rq_psn, sq_psn, access in (
                (tgt, ini.qp_num, ipsn, tpsn, ACCESS),
                (ini, tgt.qp_num, tpsn, ipsn, 0)):
            a = QPAttr(qp_state=e.IBV_QPS_INIT, port_num=PORT)
            a.pkey_index = 0
            a.qp_access_flags = access
            qp.modify(a, e.IBV_QP_STATE | e.IBV_QP_PKEY_INDEX |
                      e.IBV_QP_PORT | e.IBV_QP_ACCESS_FLAGS)
            a = QPAttr(qp_state=e.IBV_QPS_RTR)
            a.ah_attr = self.ah_attr()
            a.path_mtu = self.mtu
            a.dest_qp_num = dest
            a.rq_psn = rq_psn
            mask = (e.IBV_QP_STATE | e.IBV_QP_AV | e.IBV_QP_PATH_MTU |
                    e.IBV_QP_DEST_QPN | e.IBV_QP_RQ_PSN)
            if qp is tgt:
                a.max_dest_rd_atomic = 1
                a.min_rnr_timer = 1
                mask |= e.IBV_QP_MAX_DEST_RD_ATOMIC | e.IBV_QP_MIN_RNR_TIMER
            qp.modify(a, mask)
            a = QPAttr(qp_state=e.IBV_QPS_RTS)
            a.timeout = 14
            a.sq_psn = sq_psn
            mask = e.IBV_QP_STATE | e.IBV_QP_TIMEOUT | e.IBV_QP_SQ_PSN
            if qp is ini:
                a.retry_cnt = 7
                a.rnr_retry = 7
                a.max_rd_atomic = 1
                mask |= (e.IBV_QP_RETRY_CNT | e.IBV_QP_RNR_RETRY |
                         e.IBV_QP_MAX_QP_RD_ATOMIC)
            qp.modify(a, mask)

    def setup_pair(self, ex=False, srq_pd=None):
        self.x = self.xrcd(self.tmp.fileno())
        self.rcq = self.keep(CQ(self.ctx, 64))
        self.scq = self.keep(CQ(self.ctx, 64))
        self.srq = self.xsrq(self.x, self.rcq, pd=srq_pd)
        self.t = self.tgt(self.x)
        self.i = self.ini(self.scq, ex)
        self.mr = self.keep(MR(self.pd, SIZE, ACCESS))
        self.connect(self.i, self.t)

    def setup_two_pds(self):
        """The INI QP and its buffer in self.pd, the XRC SRQ and the
        target memory in a second PD: on XRC the rkey is checked in the
        PD of the SRQ that XRCETH names (IBA 9.8.4)."""
        self.pd2 = self.keep(PD(self.ctx))
        self.setup_pair(srq_pd=self.pd2)
        self.tmr = self.keep(MR(self.pd2, SIZE, ACCESS))

    def post_rd_atomic(self, wr_id, off, length, opcode, raddr, rkey,
                       cmp_add=0, swap=0, srqn=None):
        wr = SendWR(wr_id=wr_id, opcode=opcode, num_sge=1,
                    sg=[SGE(self.mr.buf + off, length, self.mr.lkey)],
                    send_flags=e.IBV_SEND_SIGNALED)
        if opcode == e.IBV_WR_RDMA_READ:
            wr.set_wr_rdma(rkey, raddr)
        else:
            wr.set_wr_atomic(rkey, raddr, cmp_add, swap)
        wr.set_qp_type_xrc(self.srq.get_srq_num() if srqn is None else srqn)
        self.i.post_send(wr)

    def post_srq(self, srq, wr_id, off, length):
        srq.post_recv(RecvWR(wr_id=wr_id, num_sge=1,
                             sg=[SGE(self.mr.buf + off, length,
                                     self.mr.lkey)]))

    def send(self, srqn, wr_id, off, length, opcode=e.IBV_WR_SEND, imm=0,
             raddr=0, rkey=0):
        wr = SendWR(wr_id=wr_id, opcode=opcode, num_sge=1,
                    sg=[SGE(self.mr.buf + off, length, self.mr.lkey)],
                    send_flags=e.IBV_SEND_SIGNALED)
        if imm:
            wr.imm_data = imm
        if opcode == e.IBV_WR_RDMA_WRITE_WITH_IMM:
            wr.set_wr_rdma(rkey, raddr)
        wr.set_qp_type_xrc(srqn)
        self.i.post_send(wr)

    # ---- tests -----------------------------------------------------------

    def test_xrcd_sharing_by_file(self):
        fd = self.tmp.fileno()
        self.xrcd(fd)                         # creates the domain
        self.xrcd(fd, 0)                      # exists: no O_CREAT needed
        with self.assertRaises(PyverbsRDMAError) as c:
            self.xrcd(fd, os.O_CREAT | os.O_EXCL)
        self.assertEqual(c.exception.error_code, errno.EEXIST)
        with tempfile.NamedTemporaryFile() as other:
            with self.assertRaises(PyverbsRDMAError) as c:
                self.xrcd(other.fileno(), 0)
            self.assertEqual(c.exception.error_code, errno.ENOENT)
        self.xrcd()                           # fd -1: a private domain

    def test_send_and_write_imm(self):
        self.setup_pair()
        srqn = self.srq.get_srq_num()
        self.assertGreater(srqn, 0)
        for k in range(4):
            self.post_srq(self.srq, 10 + k, 4096 + k * 1024, 1024)
        payload = bytes(random.getrandbits(8) for _ in range(777))
        self.mr.write(payload, len(payload), 0)
        self.send(srqn, 1, 0, len(payload))
        wc = poll(self.rcq, 1)[0]
        self.assertEqual(wc.status, e.IBV_WC_SUCCESS)
        self.assertEqual(wc.opcode, e.IBV_WC_RECV)
        self.assertEqual(wc.wr_id, 10)
        self.assertEqual(wc.byte_len, len(payload))
        self.assertEqual(wc.qp_num, self.t.qp_num)   # the TGT QP
        self.assertEqual(self.mr.read(len(payload), 4096), payload)
        wc = poll(self.scq, 1)[0]
        self.assertEqual((wc.status, wc.wr_id), (e.IBV_WC_SUCCESS, 1))
        # RDMA WRITE with immediate: memory checked in the SRQ's PD, the
        # immediate consumes the next SRQ WQE.
        self.send(srqn, 2, 0, 300, e.IBV_WR_RDMA_WRITE_WITH_IMM,
                  imm=0x12345678, raddr=self.mr.buf + 2048,
                  rkey=self.mr.rkey)
        wc = poll(self.rcq, 1)[0]
        self.assertEqual(wc.status, e.IBV_WC_SUCCESS)
        self.assertEqual(wc.opcode, e.IBV_WC_RECV_RDMA_WITH_IMM)
        self.assertEqual(wc.wr_id, 11)
        self.assertEqual(self.mr.read(300, 2048), payload[:300])
        self.assertEqual(poll(self.scq, 1)[0].status, e.IBV_WC_SUCCESS)

    def test_read(self):
        """RDMA READ over XRC, one and several packets, byte for byte."""
        self.setup_two_pds()
        data = os.urandom(SIZE)
        self.tmr.write(data, SIZE, 0)
        for wr_id, (off, length) in enumerate(((0, 100), (100, 7000),
                                               (4096, 0))):
            self.mr.write(bytes(SIZE), SIZE, 0)
            self.post_rd_atomic(wr_id, 0, length, e.IBV_WR_RDMA_READ,
                                self.tmr.buf + off, self.tmr.rkey)
            wc = poll(self.scq, 1)[0]
            self.assertEqual((wc.status, wc.wr_id, wc.opcode),
                             (e.IBV_WC_SUCCESS, wr_id, e.IBV_WC_RDMA_READ))
            self.assertEqual(self.mr.read(length, 0) if length else b'',
                             data[off:off + length])
        self.assertTrue(quiet(self.rcq))      # no receive WQE consumed

    def test_atomics(self):
        """CMP_SWAP (hit and miss) and FETCH_ADD over XRC: the original
        value returned, memory changed exactly once each."""
        self.setup_two_pds()
        target = self.tmr.buf + 64
        self.tmr.write(struct.pack('<Q', 0x1122334455667788), 8, 64)
        steps = (
            (e.IBV_WR_ATOMIC_CMP_AND_SWP, 0x1122334455667788, 0xabc,
             0x1122334455667788, 0xabc),            # compare hits
            (e.IBV_WR_ATOMIC_CMP_AND_SWP, 0x1, 0xdead, 0xabc, 0xabc),
            (e.IBV_WR_ATOMIC_FETCH_AND_ADD, 0xffffffff00000001, 0,
             0xabc, 0xffffffff00000abd),
        )
        for wr_id, (op, cmp_add, swap, orig, after) in enumerate(steps):
            self.post_rd_atomic(wr_id, 0, 8, op, target, self.tmr.rkey,
                                cmp_add, swap)
            wc = poll(self.scq, 1)[0]
            self.assertEqual((wc.status, wc.wr_id), (e.IBV_WC_SUCCESS,
                                                      wr_id))
            self.assertEqual(struct.unpack('<Q', self.mr.read(8, 0))[0],
                             orig)
            self.assertEqual(struct.unpack('<Q', self.tmr.read(8, 64))[0],
                             after)

    def test_read_rkey_of_other_pd_refused(self):
        """The INI QP's own PD does not count on the TGT side: an MR of a
        PD other than the SRQ's gets a remote access NAK."""
        self.setup_two_pds()
        self.post_rd_atomic(1, 0, 64, e.IBV_WR_RDMA_READ, self.mr.buf,
                            self.mr.rkey)
        wc = poll(self.scq, 1)[0]
        self.assertEqual(wc.status, e.IBV_WC_REM_ACCESS_ERR)
        self.assertEqual(async_event(self), e.IBV_EVENT_QP_ACCESS_ERR)

    def test_send_with_invalidate(self):
        """SEND with Invalidate through a TGT QP invalidates a type 2
        window of the XRC SRQ's PD, as on RC."""
        self.setup_pair()
        a = self.keep(Endpoint(self, e.IBV_QPT_RC, size=1 << 12))
        b = self.keep(Endpoint(self, e.IBV_QPT_RC, size=1 << 12))
        connect(self, a, b)
        wmr = self.keep(MR(self.pd, 4096, ACCESS | e.IBV_ACCESS_MW_BIND))
        mw = self.keep(MW(self.pd, e.IBV_MW_TYPE_2))
        wr = SendWR(wr_id=5, opcode=e.IBV_WR_BIND_MW,
                    send_flags=e.IBV_SEND_SIGNALED)
        wr.set_bind_wr(mw, MWBindInfo(wmr, wmr.buf, 4096,
                                      e.IBV_ACCESS_REMOTE_READ))
        b.qp.post_send(wr)
        self.assertEqual(poll(b.cq, 1)[0].status, e.IBV_WC_SUCCESS)
        rkey = wr.rkey

        def read_status():
            rd = a.send_wr(1, e.IBV_WR_RDMA_READ, 0, 16)
            rd.set_wr_rdma(rkey, wmr.buf)
            a.qp.post_send(rd)
            return poll(a.cq, 1)[0].status

        self.assertEqual(read_status(), e.IBV_WC_SUCCESS)
        self.post_srq(self.srq, 8, 4096, 64)
        self.send(self.srq.get_srq_num(), 6, 0, 32, e.IBV_WR_SEND_WITH_INV,
                  imm=rkey)
        wc = poll(self.rcq, 1)[0]
        self.assertEqual(wc.status, e.IBV_WC_SUCCESS)
        self.assertTrue(wc.wc_flags & e.IBV_WC_WITH_INV)
        self.assertEqual(wc.imm_data, rkey)
        self.assertEqual(poll(self.scq, 1)[0].status, e.IBV_WC_SUCCESS)
        self.assertEqual(read_status(), e.IBV_WC_REM_ACCESS_ERR)

    def test_multi_packet_send(self):
        self.setup_pair()
        self.post_srq(self.srq, 7, 4096, 4096)
        data = os.urandom(4000)
        self.mr.write(data, len(data), 0)
        self.send(self.srq.get_srq_num(), 3, 0, len(data))
        wc = poll(self.rcq, 1)[0]
        self.assertEqual((wc.status, wc.byte_len), (e.IBV_WC_SUCCESS, 4000))
        self.assertEqual(self.mr.read(4000, 4096), data)
        self.assertEqual(poll(self.scq, 1)[0].status, e.IBV_WC_SUCCESS)

    def test_qpex_set_xrc_srqn(self):
        self.setup_pair(ex=True)
        self.post_srq(self.srq, 5, 4096, 512)
        self.mr.write(b'x' * 64, 64, 0)
        self.i.wr_start()
        self.i.wr_id = 9
        self.i.wr_flags = e.IBV_SEND_SIGNALED
        self.i.wr_send()
        self.i.wr_set_xrc_srqn(self.srq.get_srq_num())
        self.i.wr_set_sge(SGE(self.mr.buf, 64, self.mr.lkey))
        self.i.wr_complete()
        wc = poll(self.rcq, 1)[0]
        self.assertEqual((wc.status, wc.wr_id, wc.byte_len),
                         (e.IBV_WC_SUCCESS, 5, 64))
        wc = poll(self.scq, 1)[0]
        self.assertEqual((wc.status, wc.wr_id), (e.IBV_WC_SUCCESS, 9))

    def test_srq_of_other_domain_refused(self):
        """IBA 9.8.4: XRCETH must name an XRC SRQ of the TGT QP's own
        domain; anything else is NAKed as an invalid request."""
        self.setup_pair()
        other = self.xrcd()
        ocq = self.keep(CQ(self.ctx, 8))
        osrq = self.xsrq(other, ocq)
        self.post_srq(osrq, 1, 4096, 1024)
        self.send(osrq.get_srq_num(), 4, 0, 100)
        wc = poll(self.scq, 1)[0]
        self.assertEqual(wc.status, e.IBV_WC_REM_INV_REQ_ERR)
        self.assertTrue(quiet(ocq))            # nothing reached it
        self.assertEqual(async_event(self), e.IBV_EVENT_QP_REQ_ERR)

    def test_destroy_order(self):
        """ibv_xsrq_pingpong's order: QPs, SRQ, XRCD, then the CQ (the
        daemon's EBUSY checks are in tests/objects)."""
        self.setup_pair()
        self.post_srq(self.srq, 1, 4096, 64)
        for o in (self.i, self.t, self.srq, self.x, self.rcq):
            o.close()

    def test_tgt_has_no_queues(self):
        x = self.xrcd()
        t = self.tgt(x)
        mr = self.keep(MR(self.pd, 64, ACCESS))
        with self.assertRaises(PyverbsRDMAError):
            t.post_recv(RecvWR(wr_id=1, num_sge=1,
                               sg=[SGE(mr.buf, 64, mr.lkey)]))
        # INI needs a PD; a TGT QP's init attributes need no CQ.
        with self.assertRaises(PyverbsRDMAError):
            QP(self.ctx, QPInitAttrEx(qp_type=e.IBV_QPT_XRC_RECV,
                                      comp_mask=e.IBV_QP_INIT_ATTR_PD,
                                      pd=self.pd))


if __name__ == '__main__':
    unittest.main()
