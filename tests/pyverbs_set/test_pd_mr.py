"""Protection domains and memory regions."""
import os
import unittest

import pyverbs.enums as e
from pyverbs.mr import MR
from pyverbs.pd import PD
from pyverbs.pyverbs_error import PyverbsRDMAError

from ipdpy import ACCESS, DevTest


class PdMrTest(DevTest):
    def test_many_pds(self):
        pds = [PD(self.ctx) for _ in range(16)]
        for pd in pds:
            pd.close()

    def test_mr_keys_and_data(self):
        mrs = [MR(self.pd, 4096 * (i + 1), ACCESS) for i in range(8)]
        keys = set()
        for i, mr in enumerate(mrs):
            self.assertEqual(mr.length, 4096 * (i + 1))
            keys.add(mr.lkey)
            data = os.urandom(mr.length)
            mr.write(data, len(data))
            self.assertEqual(mr.read(len(data), 0), data)
        self.assertEqual(len(keys), len(mrs), 'lkeys must differ')
        for mr in mrs:
            mr.close()

    def test_access_flags(self):
        for acc in (e.IBV_ACCESS_LOCAL_WRITE,
                    e.IBV_ACCESS_LOCAL_WRITE | e.IBV_ACCESS_REMOTE_WRITE,
                    e.IBV_ACCESS_REMOTE_READ,
                    ACCESS):
            MR(self.pd, 8192, acc).close()

    def test_remote_write_needs_local_write(self):
        # verbs: REMOTE_WRITE/ATOMIC without LOCAL_WRITE is EINVAL
        with self.assertRaises(PyverbsRDMAError):
            MR(self.pd, 4096, e.IBV_ACCESS_REMOTE_WRITE)

    def test_large_mr(self):
        mr = MR(self.pd, 16 << 20, ACCESS)
        mr.write(b'x' * 16, 16, (16 << 20) - 16)
        self.assertEqual(mr.read(16, (16 << 20) - 16), b'x' * 16)
        mr.close()


if __name__ == '__main__':
    unittest.main()
