#!/bin/bash
# ibv_devices and `ibv_devinfo -v` see the device that ipathd publishes, with
# the attributes perftest and the pingpongs rely on.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

ipd_start d
ipd_env
dev=$(ipd_dev)
out=$IPD_TMP/out

ipd_run ibv_devices >"$out"
cat "$out"
grep -Eq "^[[:space:]]+$dev[[:space:]]+[0-9a-f]{16}$" "$out" ||
	ipd_fail "ibv_devices does not list $dev with its node GUID"

ipd_run ibv_devinfo -v -d "$dev" >"$out"
cat "$out"
expect() {
	grep -Eq "$1" "$out" || ipd_fail "ibv_devinfo -v: no line matching '$1'"
}
expect "^hca_id:[[:space:]]+$dev\$"
expect '^[[:space:]]+transport:[[:space:]]+InfiniBand \(0\)'
expect '^[[:space:]]+max_qp_rd_atom:[[:space:]]+[1-9][0-9]*$'
expect '^[[:space:]]+max_qp:[[:space:]]+[1-9][0-9]*$'
expect '^[[:space:]]+state:[[:space:]]+PORT_ACTIVE \(4\)'
expect '^[[:space:]]+active_mtu:[[:space:]]+(256|512|1024|2048|4096) \('
expect '^[[:space:]]+link_layer:[[:space:]]+Ethernet'
# The IPv4-mapped RoCE v2 GID that ipd_gid_index found, as libibverbs reads it.
gid=$(ipd_gid_index)
expect "GID\[ *$gid\]:[[:space:]]+::ffff:[0-9.]+, RoCE v2"
# Every published GID type is RoCE v2 (design.md: no RoCE v1 GIDs).
if grep -E 'GID\[' "$out" | grep -v 'RoCE v2'; then
	ipd_fail "a GID that is not RoCE v2"
fi

# Without SYSFS_PATH pointing at the tree the device is not there (no
# kernel RDMA on this host): proof that the tools above really used it.
if SYSFS_PATH=$IPD_TMP/nonexistent ipd_run ibv_devices 2>/dev/null | grep -qw "$dev"; then
	ipd_fail "$dev visible without the published sysfs tree"
fi

ipd_stop

# max_qp_rd_atom is bounded by the responder's READ/atomic result cache
# (IPD_MAX_RD_ATOM, 32): more is refused at start-up with the range, the
# bound itself is published as is.
bad=$IPD_TMP/rd_atom_bad.conf
printf '[limits]\nmax_qp_rd_atom = 33\n' >"$bad"
if timeout 10 "$IPD_DAEMON" -c "$bad" --sysfs "$IPD_TMP/rd_sysfs" \
	--socket "$IPD_TMP/rd.sock" >"$out" 2>&1; then
	ipd_fail "daemon started with max_qp_rd_atom = 33"
fi
cat "$out"
grep -q 'max_qp_rd_atom: 33 is outside 1..32' "$out" ||
	ipd_fail "no clear error for max_qp_rd_atom = 33"
good=$IPD_TMP/rd_atom_32.conf
printf '[limits]\nmax_qp_rd_atom = 32\n' >"$good"
ipd_start d32 -c "$good"
ipd_env
ipd_run ibv_devinfo -v -d "$(ipd_dev)" >"$out"
expect '^[[:space:]]+max_qp_rd_atom:[[:space:]]+32$'
ipd_stop
echo "PASS devinfo"
