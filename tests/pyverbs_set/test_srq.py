"""Shared receive queues: create, query/modify round trips, limit event,
traffic from several QPs into one SRQ."""
import unittest

import pyverbs.enums as e
from pyverbs.pyverbs_error import PyverbsRDMAError
from pyverbs.srq import SRQ, SrqAttr, SrqInitAttr

from ipdpy import DevTest, Endpoint, async_event, connect, poll


class SrqTest(DevTest):
    def test_create_query(self):
        srq = SRQ(self.pd, SrqInitAttr(SrqAttr(max_wr=100, max_sge=3)))
        a = srq.query()
        self.assertGreaterEqual(a.max_wr, 100)
        self.assertGreaterEqual(a.max_sge, 3)
        self.assertEqual(a.srq_limit, 0)
        srq.close()

    def test_limits(self):
        d = self.ctx.query_device()
        with self.assertRaises(PyverbsRDMAError):
            SRQ(self.pd, SrqInitAttr(SrqAttr(max_wr=d.max_srq_wr + 1)))
        with self.assertRaises(PyverbsRDMAError):
            SRQ(self.pd, SrqInitAttr(SrqAttr(max_wr=8,
                                             max_sge=d.max_srq_sge + 1)))

    def test_modify_limit_round_trip(self):
        srq = SRQ(self.pd, SrqInitAttr(SrqAttr(max_wr=64)))
        srq.modify(SrqAttr(srq_limit=10), e.IBV_SRQ_LIMIT)
        self.assertEqual(srq.query().srq_limit, 10)
        with self.assertRaises(PyverbsRDMAError):  # limit above max_wr
            srq.modify(SrqAttr(srq_limit=1000), e.IBV_SRQ_LIMIT)
        self.assertEqual(srq.query().srq_limit, 10)
        srq.close()

    def _pairs(self, srq, n):
        out = []
        for _ in range(n):
            a = Endpoint(self, e.IBV_QPT_RC, size=4096)
            b = Endpoint(self, e.IBV_QPT_RC, size=4096, srq=srq)
            connect(self, a, b)
            out.append((a, b))
        return out

    def test_traffic_and_limit_event(self):
        srq = SRQ(self.pd, SrqInitAttr(SrqAttr(max_wr=64)))
        pairs = self._pairs(srq, 3)
        recv_ep = pairs[0][1]
        for i in range(8):
            recv_ep.post_recv(i, i * 256, 256)
        # Arm the limit at 6: it fires once fewer than 6 WQEs remain
        # (the third receive of eight).
        srq.modify(SrqAttr(srq_limit=6), e.IBV_SRQ_LIMIT)
        for k, (a, b) in enumerate(pairs):
            a.qp.post_send(a.send_wr(100 + k, e.IBV_WR_SEND, 0, 100))
            wc = poll(b.cq, 1)[0]
            self.assertEqual(wc.status, e.IBV_WC_SUCCESS)
            self.assertEqual(wc.qp_num, b.qpn)
            self.assertEqual(wc.byte_len, 100)
            poll(a.cq, 1)
        self.assertEqual(async_event(self), e.IBV_EVENT_SRQ_LIMIT_REACHED)
        # Limit is disarmed after the event (reads back as 0).
        self.assertEqual(srq.query().srq_limit, 0)
        for a, b in pairs:
            a.close()
            b.close()
        srq.close()


if __name__ == '__main__':
    unittest.main()
