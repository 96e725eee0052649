"""Address handles."""
import unittest

import pyverbs.enums as e
from pyverbs.addr import AH, AHAttr, GlobalRoute
from pyverbs.pyverbs_error import PyverbsRDMAError

from ipdpy import PORT, DevTest


class AhTest(DevTest):
    def test_create_many(self):
        ahs = [AH(self.pd, attr=self.ah_attr()) for _ in range(32)]
        for ah in ahs:
            ah.close()

    def test_fields(self):
        gr = GlobalRoute(dgid=self.gid, sgid_index=self.gid_index)
        gr.hop_limit = 64
        gr.traffic_class = 0x20
        gr.flow_label = 0x12345
        attr = AHAttr(port_num=PORT, is_global=1, gr=gr, sl=3)
        AH(self.pd, attr=attr).close()

    def test_bad_sgid_index(self):
        gr = GlobalRoute(dgid=self.gid, sgid_index=200)
        with self.assertRaises(PyverbsRDMAError):
            AH(self.pd, attr=AHAttr(port_num=PORT, is_global=1, gr=gr))

    def test_roce_needs_grh(self):
        with self.assertRaises(PyverbsRDMAError):
            AH(self.pd, attr=AHAttr(port_num=PORT, is_global=0, dlid=1))


if __name__ == '__main__':
    unittest.main()
