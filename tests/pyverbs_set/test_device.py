"""Device, port, GID and async-event basics."""
import unittest

import pyverbs.enums as e
from pyverbs.device import Context, get_device_list

from ipdpy import PORT, DevTest, dev_name


class DeviceTest(DevTest):
    def test_listed(self):
        names = [d.name.decode() for d in get_device_list()]
        if dev_name():
            self.assertIn(dev_name(), names)
        self.assertTrue(names)

    def test_query_device(self):
        a = self.ctx.query_device()
        self.assertGreaterEqual(a.phys_port_cnt, 1)
        self.assertGreater(a.max_qp, 0)
        self.assertGreater(a.max_qp_wr, 0)
        self.assertGreater(a.max_cq, 0)
        self.assertGreater(a.max_cqe, 0)
        self.assertGreater(a.max_mr, 0)
        self.assertGreater(a.max_pd, 0)
        self.assertGreater(a.max_sge, 0)
        self.assertGreater(a.max_qp_rd_atom, 0)
        self.assertGreater(a.max_srq, 0)
        self.assertNotEqual(a.node_guid, 0)

    def test_query_device_ex(self):
        a = self.ctx.query_device_ex()
        self.assertEqual(a.orig_attr.max_qp, self.ctx.query_device().max_qp)

    def test_query_port(self):
        p = self.ctx.query_port(PORT)
        self.assertEqual(p.state, e.IBV_PORT_ACTIVE)
        self.assertEqual(p.link_layer, e.IBV_LINK_LAYER_ETHERNET)
        self.assertIn(p.active_mtu, (e.IBV_MTU_256, e.IBV_MTU_512,
                                     e.IBV_MTU_1024, e.IBV_MTU_2048,
                                     e.IBV_MTU_4096))
        self.assertGreater(p.gid_tbl_len, self.gid_index)

    def test_gid_and_pkey(self):
        self.assertEqual(self.ctx.query_pkey(PORT, 0), 0xffff)
        gid = str(self.ctx.query_gid(PORT, self.gid_index))
        self.assertNotEqual(gid.replace(':', '').strip('0'), '')
        # ibv_query_gid_type answers in the sysfs enumeration
        self.assertEqual(self.ctx.query_gid_type(PORT, self.gid_index),
                         e.IBV_GID_TYPE_SYSFS_ROCE_V2)

    def test_two_contexts(self):
        name = dev_name()
        other = Context(name=name) if name else Context()
        self.assertEqual(other.query_device().node_guid,
                         self.ctx.query_device().node_guid)
        other.close()

    def test_num_comp_vectors(self):
        self.assertGreaterEqual(self.ctx.num_comp_vectors, 1)


if __name__ == '__main__':
    unittest.main()
