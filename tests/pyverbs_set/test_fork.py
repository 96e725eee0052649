"""ibv_fork_init: a child after fork() cannot corrupt the parent's
registered memory, and the parent's registered memory keeps receiving
RDMA after the fork.

ibv_fork_init() must come before the first registration of the process,
so the checks run in a fresh interpreter (this file with --worker).
"""
import ctypes
import os
import signal
import subprocess
import sys
import unittest

import pyverbs.enums as e

from ipdpy import TIMEOUT, DevTest, Endpoint, connect, poll

PATTERN = bytes(range(256)) * 16


class _Checks:
    """Mixed into a DevTest in the worker only (not discovered here)."""

    def runTest(self):
        a = Endpoint(self, e.IBV_QPT_RC, size=len(PATTERN))
        b = Endpoint(self, e.IBV_QPT_RC, size=len(PATTERN))
        connect(self, a, b)
        b.mr.write(PATTERN, len(PATTERN), 0)

        # Child 1 touches the registered range: not mapped in the child
        # (MADV_DONTFORK), so it dies of SIGSEGV instead of sharing pages.
        pid = os.fork()
        if pid == 0:
            ctypes.memset(b.mr.buf, 0x5a, 64)
            os._exit(0)
        _, st = os.waitpid(pid, 0)
        self.assertTrue(os.WIFSIGNALED(st) and
                        os.WTERMSIG(st) == signal.SIGSEGV,
                        f'child touching the MR: status {st:#x}')

        # Child 2 writes everywhere else it may (its heap) and exits.
        pid = os.fork()
        if pid == 0:
            junk = bytearray(b'\xa5' * (4 << 20))
            os._exit(0 if junk[-1] == 0xa5 else 1)
        _, st = os.waitpid(pid, 0)
        self.assertTrue(os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0)

        self.assertEqual(b.mr.read(len(PATTERN), 0), PATTERN)
        # RDMA into the parent's registered memory after the forks.
        data = os.urandom(len(PATTERN))
        a.mr.write(data, len(data), 0)
        wr = a.send_wr(1, e.IBV_WR_RDMA_WRITE, 0, len(data))
        wr.set_wr_rdma(b.mr.rkey, b.mr.buf)
        a.qp.post_send(wr)
        self.assertEqual(poll(a.cq, 1)[0].status, e.IBV_WC_SUCCESS)
        self.assertEqual(b.mr.read(len(data), 0), data)
        a.close()
        b.close()


class ForkTest(unittest.TestCase):
    def test_fork_init(self):
        env = dict(os.environ)
        # Under a sanitizer preload the child's SIGSEGV must stay a signal.
        if 'ASAN_OPTIONS' in env or 'LD_PRELOAD' in env:
            env['ASAN_OPTIONS'] = env.get('ASAN_OPTIONS', '') + \
                ':handle_segv=0'
        r = subprocess.run([sys.executable, os.path.abspath(__file__),
                            '--worker'], timeout=TIMEOUT * 6,
                           capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


def worker():
    from pyverbs.fork import fork_init, is_fork_initialized
    fork_init()
    assert is_fork_initialized() == e.IBV_FORK_ENABLED, \
        'ibv_fork_init did not enable fork protection'
    worker_case = type('Worker', (_Checks, DevTest), {})
    res = unittest.TextTestRunner(verbosity=0).run(worker_case())
    return 0 if res.wasSuccessful() else 1


if __name__ == '__main__':
    if '--worker' in sys.argv:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        sys.exit(worker())
    unittest.main()
