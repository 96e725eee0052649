#!/bin/bash
# Registering memory of every kind of mapping (tests/mr_mappings.c) on one
# daemon: shared file/shm/memfd mappings and MAP_SHARED anonymous memory
# shared with a child, read-only mappings, and hugetlb memory -- for which
# huge pages are reserved here (as root; restored on exit) -- plus
# ib_write_bw --use_hugepages; and files truncated under their MR, after
# which the daemon must live on (its mr_truncated_faults counter counts
# the lost pages) and serve ibv_rc_pingpong.  Skips (77) only the hugetlb
# part, and only when the kernel gives no huge page at all.
# usage: mr-mappings.sh PATH/TO/mr_mappings
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

prog=${1:?usage: mr-mappings.sh PATH/TO/mr_mappings}
[[ -x $prog ]] || ipd_fail "$prog is not executable"

nr=/proc/sys/vm/nr_hugepages
huge_old=
huge_restore() {
	[[ -n $huge_old ]] && echo "$huge_old" >"$nr" 2>/dev/null
	return 0
}
IPD_CLEANUP_HOOKS+=(huge_restore)

ipd_start d
ipd_env
dev=$(ipd_dev)
gid=$(ipd_gid_index)
# The first SysV shm segment a machine creates has id 0, which
# /proc/self/maps shows as inode 0, like anonymous memory (the provider
# once moved such a segment off its pages).  As root the next id is set
# to 0 before each program run that attaches one, when no segment 0 exists.
shm_next=/proc/sys/kernel/shm_next_id
shm_set=
# The program then requires id 0 (IPD_EXPECT_SHM_ID0).
shm_id0() {
	export IPD_EXPECT_SHM_ID0=0
	# slot 0 (ids 0, 32768, ...) taken: the next segment gets another id
	if awk 'NR > 1 && $2 % 32768 == 0 { found = 1 } END { exit !found }' /proc/sysvipc/shm 2>/dev/null; then
		ipd_log "SysV shm slot 0 is taken: the next segment gets another id"
	elif { [[ -w $shm_next ]] && echo 0 >"$shm_next"; } 2>/dev/null; then
		shm_set=1
		IPD_EXPECT_SHM_ID0=1
	else
		ipd_log "cannot set $shm_next: the next SysV shm segment gets any id"
	fi
}
# The kernel resets it (-1) when a segment takes the id; if none did.
shm_restore() {
	[[ -n $shm_set ]] && echo -1 >"$shm_next" 2>/dev/null
	return 0
}
IPD_CLEANUP_HOOKS+=(shm_restore)
shm_id0
ipd_run "$prog" -d "$dev" -g "$gid" -t "$IPD_TMP" shared readonly race ||
	ipd_fail "mr_mappings shared readonly race"

# Huge pages: 8 for the program (moving a private one needs twice its
# pages for a moment), 16 more for perftest's two processes.
free_huge() { awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo; }
want=24
if (($(free_huge) < want)) && [[ -w $nr ]]; then
	huge_old=$(cat "$nr")
	echo $((huge_old + want - $(free_huge))) >"$nr" || true
fi
# Files truncated under an MR (the hugetlb one is skipped without pages).
ipd_run "$prog" -d "$dev" -g "$gid" -t "$IPD_TMP" truncate ||
	ipd_fail "mr_mappings truncate"
ipd_alive || ipd_fail "daemon died of a truncated file"
ipd_ctl counters >"$IPD_TMP/counters" || ipd_fail "ipathctl counters"
faults=$(grep -E '^mr_truncated_faults ' "$IPD_TMP/counters") || true
ipd_log "${faults:-no mr_truncated_faults counter}"
grep -Eq '^mr_truncated_faults +[1-9]' <<<"$faults" ||
	ipd_fail "mr_truncated_faults not counted"
port=$(ipd_port)
run_pair "$port" "ibv_rc_pingpong -d $dev -g $gid -p $port -n 20" \
	"ibv_rc_pingpong -d $dev -g $gid -p $port -n 20 127.0.0.1" ||
	ipd_fail "ibv_rc_pingpong after the truncated files"

if (($(free_huge) < 8)); then
	ipd_log "SKIP hugetlb: the kernel gives only $(free_huge) free huge pages"
	ipd_stop
	exit 77
fi
shm_id0
ipd_run "$prog" -d "$dev" -g "$gid" -t "$IPD_TMP" hugetlb ||
	ipd_fail "mr_mappings hugetlb"
# Without CAP_SYS_ADMIN and CAP_CHECKPOINT_RESTORE /proc/self/map_files
# cannot be opened (an unprivileged application): hugetlb mappings whose
# file has no path are then moved onto the hugetlb arena instead.
if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null; then
	shm_id0
	ipd_run setpriv --bounding-set=-sys_admin,-checkpoint_restore \
		"$prog" -d "$dev" -g "$gid" -t "$IPD_TMP" hugetlb readonly ||
		ipd_fail "mr_mappings hugetlb readonly without map_files"
fi
ipd_alive || ipd_fail "daemon died"

if (($(free_huge) >= 16)); then
	port=$(ipd_port)
	common="-d $dev -i 1 -x $gid -F -p $port -s 65536 -n 100 --use_hugepages"
	run_pair "$port" "ib_write_bw $common" "ib_write_bw $common 127.0.0.1" ||
		ipd_fail "ib_write_bw --use_hugepages"
	grep -Eq "^[[:space:]]*65536[[:space:]]+100[[:space:]]" "$IPD_PAIR_LAST.client" ||
		ipd_fail "ib_write_bw --use_hugepages: no result line"
else
	ipd_log "ib_write_bw --use_hugepages not run: $(free_huge) free huge pages"
fi
ipd_alive || ipd_fail "daemon died"
ipd_stop
echo "PASS mr-mappings"
