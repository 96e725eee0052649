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
echo "PASS devinfo"
