#!/bin/bash
# SPDX-License-Identifier: MIT
# Model ULPs (tests/ulp/ulp_addr.c) on one daemon: initiator and target are
# two processes on the same device, so the pair is <b,b> with b the
# daemon's --dma-capable.  Checks the data (IPoIB SEND, SRP READ/WRITE of
# lowmem and highmem pages, WRITE with immediate, CMP_SWAP, FETCH_ADD), the
# NAKs for bad addresses, and, on the software device, that ipath's 2006
# mapping operations (--legacy) fail cleanly at ib_dma_map_sg on highmem.
# Then a hostile stub (PATH/TO/kstub_hostile, optional): bad attach and
# IOTLB requests get clear errors and the daemon keeps serving.
# usage: addr_forms_local.sh PATH/TO/ulp_addr yes|no [PATH/TO/kstub_hostile]
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

ulp=${1:?usage: addr_forms_local.sh PATH/TO/ulp_addr yes|no [PATH/TO/kstub_hostile]}
mode=${2:?yes|no}
hostile=${3:-}
[[ -x $ulp ]] || ipd_fail "$ulp is not executable"

ipd_start one --dma-capable "$mode"
ipd_env one
out=$IPD_TMP/ulp.out
rc=0
ipd_run "$ulp" self --gid-index "$(ipd_gid_index)" >"$out" || rc=$?
if ((rc == 77)); then
	ipd_stop one
	echo "SKIP: this daemon does not serve the kernel stubs"
	exit 77
fi
((rc == 0)) || { cat "$out"; ipd_fail "ulp_addr self (dma_capable $mode)"; }
cat "$out"
for r in ipoib data_out data_in atomics; do
	grep -q "^RESULT $r " "$out" || ipd_fail "no $r result"
done
ipd_ctl counters | grep -E '^ *addr_' || true

if [[ $mode == no ]]; then
	# ipath_dma.c's behaviour: a highmem page has no address, map_sg
	# fails; the ULP stops there, nothing reaches the wire.
	if ipd_run "$ulp" self --legacy --gid-index "$(ipd_gid_index)" \
		>"$out" 2>"$IPD_TMP/legacy.err"; then
		ipd_fail "legacy ipath ops mapped highmem pages"
	fi
	grep -q 'FAIL: ib_dma_map_sg' "$IPD_TMP/legacy.err" ||
		{ cat "$IPD_TMP/legacy.err"; ipd_fail "legacy: no map_sg failure"; }
fi
if [[ -n $hostile ]]; then
	ipd_run "$hostile" || ipd_fail "kstub_hostile (dma_capable $mode)"
	# ... and the ULPs still run on the same daemon afterwards.
	ipd_run "$ulp" self --gid-index "$(ipd_gid_index)" >"$out" ||
		{ cat "$out"; ipd_fail "ulp_addr after the hostile stub"; }
fi
ipd_stop one
echo "PASS addr_forms_local $mode"
