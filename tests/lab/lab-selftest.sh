#!/bin/bash
# SPDX-License-Identifier: MIT
#
# lab-selftest.sh: ipathd-lab.sh does what it says.  Three hosts come up
# with their own daemons; ibv_rc_pingpong runs between every pair; under
# impairment (netem or ipl-netem: loss, duplication, reordering, delay
# with jitter, corruption) a transfer still completes and the corrupted
# packets show up in the receiver's drop_icrc counter; "down" leaves no
# namespace, daemon or device node behind and can be repeated.
# Exit 0 = pass, 77 = skipped (not root, no daemon build).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$HERE/ipathd-lab.sh
export IPL_PREFIX=${IPL_PREFIX:-is$$}
export IPL_SUBNET=${IPL_SUBNET:-10.80.0}
export IPL_STATE=${IPL_STATE:-/run/ipathd-lab/$IPL_PREFIX}
T=${TOOL_TIMEOUT:-60}

log() { printf '[lab-selftest %s] %s\n' "$(date +%T)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

[[ $(id -u) == 0 ]] || { log "SKIP: needs root"; exit 77; }
build=${IPATHD_BUILD_DIR:-$HERE/../../build}
[[ -x $build/daemon/ipathd ]] || { log "SKIP: no daemon build"; exit 77; }
command -v ibv_rc_pingpong >/dev/null || { log "SKIP: no ibv_rc_pingpong"; exit 77; }

up=0
cleanup() {
	local rc=$?
	((up)) && { "$LAB" down || true; rm -rf "$IPL_STATE"; }
	exit "$rc"
}
trap cleanup EXIT

# pingpong SERVER CLIENT PORT [ARGS]: ibv_rc_pingpong between two hosts.
pingpong() {
	local s=$1 c=$2 port=$3 spid rc=0 i
	shift 3
	"$LAB" exec "$s" timeout "$T" sh -c \
		'exec ibv_rc_pingpong -g "$IPL_GID" "$@"' sh -p "$port" "$@" \
		>"$IPL_STATE/pp.server" 2>&1 &
	spid=$!
	for ((i = 0; i < 100; i++)); do
		ip netns exec "$IPL_PREFIX$s" ss -Hltn "sport = :$port" |
			grep -q . && break
		sleep 0.1
	done
	"$LAB" exec "$c" timeout "$T" sh -c \
		'exec ibv_rc_pingpong -g "$IPL_GID" "$@"' sh -p "$port" "$@" \
		"$("$LAB" addr "$s")" >"$IPL_STATE/pp.client" 2>&1 || rc=$?
	wait "$spid" || rc=$((rc ? rc : $?))
	if ((rc)); then
		cat "$IPL_STATE/pp.server" "$IPL_STATE/pp.client" >&2
		return 1
	fi
}

up=1
"$LAB" up 3 || { up=0; fail "up"; }
[[ $("$LAB" hosts) == 3 ]] || fail "hosts"
"$LAB" exec 2 sh -c '[ "$IPL_HOST" = 2 ] && [ -S "$IPATHD_SOCKET" ] &&
	[ -d "$SYSFS_PATH/class/infiniband/$IPL_DEV" ]' || fail "exec environment"

port=18950
for s in 1 2 3; do
	for c in 1 2 3; do
		((s == c)) && continue
		port=$((port + 1))
		pingpong "$s" "$c" "$port" -n 50 -s 4096 || fail "pingpong $c -> $s"
	done
done
log "all-to-all ibv_rc_pingpong on 3 hosts: ok"

before=$("$LAB" corrupt-drops 2)
"$LAB" netem 1 loss 2% duplicate 2% reorder 10% corrupt 2% delay 1ms 500us
pingpong 2 1 18990 -n 400 -s 8192 || fail "pingpong under impairment"
"$LAB" netem 1 off
after=$("$LAB" corrupt-drops 2)
log "impaired pingpong ok; host 2 corrupt-drops (drop_icrc + Udp InCsumErrors) $before -> $after"
((after > before)) || fail "corrupted packets were not dropped (ICRC or UDP checksum)"
pingpong 2 1 18991 -n 50 || fail "pingpong after netem off"

"$LAB" daemon 3 kill
"$LAB" daemon 3 start
pingpong 3 1 18992 -n 50 || fail "pingpong after a daemon restart"

"$LAB" down
"$LAB" down
up=0
if ip netns list | grep -qE "^$IPL_PREFIX([0-9]+|br)( |$)"; then
	fail "namespaces left behind"
fi
ls /dev/infiniband/uverbs_"$IPL_PREFIX"* >/dev/null 2>&1 &&
	fail "device nodes left behind"
rm -rf "$IPL_STATE"
log "lab self-test passed"
