"""many_qps.py server|client PEER PORT N: N RC QPs one after another in one
context, each connected to one of the peer's (QPN, PSN, GID and the bytes
to expect over TCP), an inline SEND each way (application transmit sends
it from the QP's own UDP port), every byte checked, then destroyed.  At
the end each side requires that its sockets for application transmit
closed with their QPs: at most a few sockets more than it started with,
while it has had far more QPs than the provider's 71 such sockets.

The device, GID index and address come from the lab's environment
(IPL_DEV, IPL_GID).  Every wait is bounded.
"""
import os
import socket
import struct
import sys
import time

import pyverbs.enums as e
from pyverbs.addr import AHAttr, GID, GlobalRoute
from pyverbs.cq import CQ
from pyverbs.device import Context
from pyverbs.mr import MR
from pyverbs.pd import PD
from pyverbs.qp import QP, QPCap, QPInitAttr
from pyverbs.wr import RecvWR, SGE, SendWR

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'pyverbs_set'))
from ipdpy import rc_attr  # noqa: E402  (the pyverbs set's helpers)

TIMEOUT = 10.0
MSG = 8
WIRE = struct.Struct('!II64s8s')   # QPN, PSN, GID text, the bytes sent


def sockets():
    n = 0
    for fd in os.listdir('/proc/self/fd'):
        try:
            n += os.readlink(f'/proc/self/fd/{fd}').startswith('socket:')
        except OSError:
            pass
    return n


def recv_exact(conn, n):
    buf = b''
    while len(buf) < n:
        got = conn.recv(n - len(buf))
        if not got:
            sys.exit('many_qps: the peer closed the TCP connection')
        buf += got
    return buf


def poll(cq, what):
    deadline = time.monotonic() + TIMEOUT
    while True:
        got, wcs = cq.poll(1)
        if got:
            wc = wcs[0]
            if wc.status != e.IBV_WC_SUCCESS:
                sys.exit(f'many_qps: {what}: completion status {wc.status}')
            return wc
        if time.monotonic() > deadline:
            sys.exit(f'many_qps: {what}: no completion within {TIMEOUT} s')
        time.sleep(0.0001)


def main():
    role, peer, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
        int(sys.argv[4])
    if role == 'server':
        ls = socket.create_server(('', port))
        ls.settimeout(60)
        conn, _ = ls.accept()
        ls.close()
    else:
        conn = socket.create_connection((peer, port), timeout=TIMEOUT)
    conn.settimeout(TIMEOUT)
    ctx = Context(name=os.environ['IPL_DEV'])
    gid_index = int(os.environ['IPL_GID'])
    pd = PD(ctx)
    cq = CQ(ctx, 16)
    mr = MR(pd, 2 * MSG, e.IBV_ACCESS_LOCAL_WRITE)
    mtu = ctx.query_port(1).active_mtu
    gid = str(ctx.query_gid(1, gid_index)).encode()
    before = peak = sockets()
    for i in range(n):
        qp = QP(pd, QPInitAttr(qp_type=e.IBV_QPT_RC, scq=cq, rcq=cq,
                               cap=QPCap(max_send_wr=4, max_recv_wr=4,
                                         max_send_sge=1, max_recv_sge=1,
                                         max_inline_data=64)))
        psn = int.from_bytes(os.urandom(3), 'big')
        data = os.urandom(MSG)
        conn.sendall(WIRE.pack(qp.qp_num, psn, gid, data))
        pqpn, ppsn, pgid, pdata = WIRE.unpack(recv_exact(conn, WIRE.size))
        qp.to_rts(rc_attr(mtu, pqpn, ppsn, psn, AHAttr(
            port_num=1, is_global=1, gr=GlobalRoute(
                dgid=GID(pgid.rstrip(b'\0').decode()),
                sgid_index=gid_index)), e.IBV_ACCESS_LOCAL_WRITE))
        mr.write(b'\0' * MSG, MSG, MSG)
        qp.post_recv(RecvWR(wr_id=1, num_sge=1,
                            sg=[SGE(mr.buf + MSG, MSG, mr.lkey)]))
        conn.sendall(b'r')                       # both at RTS, RQ posted
        recv_exact(conn, 1)
        mr.write(data, MSG, 0)
        qp.post_send(SendWR(wr_id=2, opcode=e.IBV_WR_SEND, num_sge=1,
                            sg=[SGE(mr.buf, MSG, mr.lkey)],
                            send_flags=e.IBV_SEND_SIGNALED |
                            e.IBV_SEND_INLINE))
        got = sorted((poll(cq, f'QP {i}').opcode for _ in range(2)))
        if got != sorted((e.IBV_WC_SEND, e.IBV_WC_RECV)):
            sys.exit(f'many_qps: QP {i}: completions {got}')
        if mr.read(MSG, MSG) != pdata:
            sys.exit(f'many_qps: QP {i}: received bytes differ')
        peak = max(peak, sockets())
        conn.sendall(b'd')                       # both completed
        recv_exact(conn, 1)
        qp.close()
    after = sockets()
    print(f'many_qps: {n} QPs, sockets: {before} before, at most {peak} '
          f'with a QP, {after} after')
    # a QP's own port (the application sent its SEND itself) and the
    # context's ephemeral socket at most
    if peak == before:
        sys.exit('many_qps: no socket for application transmit was opened')
    if peak - before > 2 or after - before > 1:
        sys.exit('many_qps: sockets for application transmit outlived '
                 'their QPs')
    mr.close()
    cq.close()
    pd.close()
    ctx.close()
    conn.close()


if __name__ == '__main__':
    main()
