"""Queue pairs: creation per type, QPEx, the state machine, query round
trips of every attribute."""
import unittest

import pyverbs.enums as e
from pyverbs.pyverbs_error import PyverbsRDMAError
from pyverbs.qp import QPAttr

from ipdpy import ACCESS, PORT, QKEY, DevTest, Endpoint, connect, rc_attr

ALL_MASK = (e.IBV_QP_STATE | e.IBV_QP_CUR_STATE | e.IBV_QP_PKEY_INDEX |
            e.IBV_QP_PORT | e.IBV_QP_QKEY | e.IBV_QP_ACCESS_FLAGS |
            e.IBV_QP_AV | e.IBV_QP_PATH_MTU | e.IBV_QP_TIMEOUT |
            e.IBV_QP_RETRY_CNT | e.IBV_QP_RNR_RETRY | e.IBV_QP_RQ_PSN |
            e.IBV_QP_MAX_QP_RD_ATOMIC | e.IBV_QP_MIN_RNR_TIMER |
            e.IBV_QP_SQ_PSN | e.IBV_QP_MAX_DEST_RD_ATOMIC |
            e.IBV_QP_DEST_QPN | e.IBV_QP_CAP)

TYPES = (e.IBV_QPT_RC, e.IBV_QPT_UC, e.IBV_QPT_UD)


class QpTest(DevTest):
    def test_create_each_type(self):
        for t in TYPES:
            for ex in (False, True):
                ep = Endpoint(self, t, size=4096, ex=ex)
                self.assertEqual(ep.qp.qp_state, e.IBV_QPS_RESET)
                self.assertNotEqual(ep.qpn, 0)
                attr, init = ep.qp.query(e.IBV_QP_STATE | e.IBV_QP_CAP)
                self.assertEqual(attr.qp_state, e.IBV_QPS_RESET)
                self.assertEqual(init.qp_type, t)
                self.assertGreaterEqual(init.cap.max_send_wr, 64)
                self.assertGreaterEqual(init.cap.max_recv_wr, 64)
                self.assertGreaterEqual(init.cap.max_send_sge, 4)
                self.assertGreaterEqual(init.cap.max_inline_data, 64)
                ep.close()

    def test_qpn_unique(self):
        eps = [Endpoint(self, e.IBV_QPT_RC, size=4096) for _ in range(8)]
        self.assertEqual(len({ep.qpn for ep in eps}), 8)
        for ep in eps:
            ep.close()

    def test_illegal_transitions(self):
        ep = Endpoint(self, e.IBV_QPT_RC, size=4096)
        attr = QPAttr(qp_state=e.IBV_QPS_RTS)
        with self.assertRaises(PyverbsRDMAError):
            ep.qp.modify(attr, e.IBV_QP_STATE)          # RESET -> RTS
        attr = QPAttr(qp_state=e.IBV_QPS_INIT)
        with self.assertRaises(PyverbsRDMAError):       # missing PORT etc.
            ep.qp.modify(attr, e.IBV_QP_STATE)
        attr = QPAttr(qp_state=e.IBV_QPS_INIT, port_num=PORT)
        attr.pkey_index = 0
        attr.qp_access_flags = ACCESS
        attr.qkey = QKEY
        with self.assertRaises(PyverbsRDMAError):       # QKEY not for RC
            ep.qp.modify(attr, e.IBV_QP_STATE | e.IBV_QP_PKEY_INDEX |
                         e.IBV_QP_PORT | e.IBV_QP_ACCESS_FLAGS |
                         e.IBV_QP_QKEY)
        ep.qp.modify(attr, e.IBV_QP_STATE | e.IBV_QP_PKEY_INDEX |
                     e.IBV_QP_PORT | e.IBV_QP_ACCESS_FLAGS)
        self.assertEqual(ep.qp.query(e.IBV_QP_STATE)[0].qp_state,
                         e.IBV_QPS_INIT)
        ep.qp.modify(QPAttr(qp_state=e.IBV_QPS_ERR), e.IBV_QP_STATE)
        ep.qp.modify(QPAttr(qp_state=e.IBV_QPS_RESET), e.IBV_QP_STATE)
        self.assertEqual(ep.qp.query(e.IBV_QP_STATE)[0].qp_state,
                         e.IBV_QPS_RESET)
        ep.close()

    def test_rc_round_trip(self):
        a = Endpoint(self, e.IBV_QPT_RC, size=4096)
        b = Endpoint(self, e.IBV_QPT_RC, size=4096)
        want = rc_attr(e.IBV_MTU_512, b.qpn, 0x123456, 0xabcdef,
                       self.ah_attr(), e.IBV_ACCESS_LOCAL_WRITE |
                       e.IBV_ACCESS_REMOTE_READ)
        # other values than rc_attr's
        want.max_dest_rd_atomic = 2
        want.max_rd_atomic = 3
        want.min_rnr_timer = 17
        want.timeout = 15
        want.retry_cnt = 5
        want.rnr_retry = 6
        a.qp.to_rts(want)
        got, init = a.qp.query(ALL_MASK)
        self.assertEqual(got.qp_state, e.IBV_QPS_RTS)
        for f in ('pkey_index', 'qp_access_flags', 'path_mtu', 'dest_qp_num',
                  'rq_psn', 'sq_psn', 'max_dest_rd_atomic', 'max_rd_atomic',
                  'min_rnr_timer', 'timeout', 'retry_cnt', 'rnr_retry',
                  'port_num'):
            self.assertEqual(getattr(got, f), getattr(want, f), f)
        self.assertEqual(got.ah_attr.port_num, PORT)
        self.assertEqual(got.ah_attr.is_global, 1)
        self.assertEqual(str(got.ah_attr.dgid), str(self.gid))
        self.assertEqual(got.ah_attr.sgid_index, self.gid_index)
        self.assertEqual(got.ah_attr.hop_limit, want.ah_attr.hop_limit)
        self.assertEqual(init.qp_type, e.IBV_QPT_RC)
        self.assertEqual(init.cap.max_send_wr, got.cap.max_send_wr)
        # RTS -> RTS with optional attributes, then query again
        upd = QPAttr(qp_state=e.IBV_QPS_RTS)
        upd.min_rnr_timer = 3
        upd.qp_access_flags = ACCESS
        a.qp.modify(upd, e.IBV_QP_STATE | e.IBV_QP_MIN_RNR_TIMER |
                    e.IBV_QP_ACCESS_FLAGS)
        got, _ = a.qp.query(ALL_MASK)
        self.assertEqual(got.min_rnr_timer, 3)
        self.assertEqual(got.qp_access_flags, ACCESS)
        # Alternate path and migration state (stored and reported even
        # though no migration happens).
        upd = QPAttr(qp_state=e.IBV_QPS_RTS)
        upd.alt_ah_attr = self.ah_attr()
        upd.alt_port_num = PORT
        upd.alt_pkey_index = 0
        upd.alt_timeout = 12
        upd.path_mig_state = e.IBV_MIG_REARM
        a.qp.modify(upd, e.IBV_QP_STATE | e.IBV_QP_ALT_PATH |
                    e.IBV_QP_PATH_MIG_STATE)
        got, _ = a.qp.query(ALL_MASK | e.IBV_QP_ALT_PATH |
                            e.IBV_QP_PATH_MIG_STATE)
        self.assertEqual(got.alt_port_num, PORT)
        self.assertEqual(got.alt_timeout, 12)
        self.assertEqual(got.path_mig_state, e.IBV_MIG_REARM)
        self.assertEqual(str(got.alt_ah_attr.dgid), str(self.gid))
        # RTS -> SQD -> RTS
        a.qp.modify(QPAttr(qp_state=e.IBV_QPS_SQD), e.IBV_QP_STATE)
        self.assertEqual(a.qp.query(e.IBV_QP_STATE)[0].qp_state,
                         e.IBV_QPS_SQD)
        a.qp.modify(QPAttr(qp_state=e.IBV_QPS_RTS), e.IBV_QP_STATE)
        self.assertEqual(a.qp.query(e.IBV_QP_STATE)[0].qp_state,
                         e.IBV_QPS_RTS)
        a.close()
        b.close()

    def test_ud_round_trip(self):
        ep = Endpoint(self, e.IBV_QPT_UD, size=4096)
        attr = QPAttr(port_num=PORT)
        attr.pkey_index = 0
        attr.qkey = 0x7654321
        attr.sq_psn = 0x42
        ep.qp.to_rts(attr)
        got, init = ep.qp.query(ALL_MASK)
        self.assertEqual(got.qp_state, e.IBV_QPS_RTS)
        self.assertEqual(got.qkey, 0x7654321)
        self.assertEqual(got.sq_psn, 0x42)
        self.assertEqual(got.port_num, PORT)
        self.assertEqual(init.qp_type, e.IBV_QPT_UD)
        ep.close()

    def test_uc_connect(self):
        a = Endpoint(self, e.IBV_QPT_UC, size=4096)
        b = Endpoint(self, e.IBV_QPT_UC, size=4096)
        connect(self, a, b)
        got, _ = a.qp.query(ALL_MASK)
        self.assertEqual(got.qp_state, e.IBV_QPS_RTS)
        self.assertEqual(got.dest_qp_num, b.qpn)
        self.assertEqual(got.sq_psn, a.psn)
        self.assertEqual(got.rq_psn, b.psn)
        a.close()
        b.close()


if __name__ == '__main__':
    unittest.main()
