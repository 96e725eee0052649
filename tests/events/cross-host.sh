#!/bin/bash
# Event mode (-e) across hosts: two daemons in network namespaces joined by
# veth (tests/lab/ipathd-lab.sh), the server on host 2, the client on host
# 1; RoCEv2 over UDP between them.  Needs root; exit 77 = skipped.
# usage: cross-host.sh [TOOL...]  (rc_pingpong srq_pingpong ib_send_lat
#                                   ib_send_bw ib_read_bw; default all)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$HERE/../lab/ipathd-lab.sh
# A private lab per run: concurrent runs never meet.
export IPL_PREFIX=${IPL_PREFIX:-ie$$}
export IPL_SUBNET=${IPL_SUBNET:-10.79.0}
export IPL_STATE=${IPL_STATE:-/run/ipathd-lab/$IPL_PREFIX}
TOOL_TIMEOUT=${IPD_TOOL_TIMEOUT:-60}

log() { printf '[events-xhost %s] %s\n' "$(date +%T)" "$*" >&2; }
[[ $(id -u) == 0 ]] || { log "SKIP: needs root"; exit 77; }

tools=("$@")
((${#tools[@]})) || tools=(rc_pingpong srq_pingpong ib_send_lat ib_send_bw
			    ib_read_bw)
work=$(mktemp -d /tmp/events-xhost.XXXXXX)
lab_up=0
cleanup() {
	local rc=$?
	((lab_up)) && { "$LAB" down || true; rm -rf "$IPL_STATE"; }
	((rc)) && log "logs kept in $work" || rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT

# A sanitized provider needs its runtime preloaded into the tools (as
# tests/lib.sh does); the lab's exec does not do that by itself.
build=${IPATHD_BUILD_DIR:-$HERE/../../build}
asan=$(ldd "$build/provider/libipathd-rdmav34.so" 2>/dev/null |
	awk '/libasan\.so/ { print $3; exit }')
tool_env=(env)
[[ -z $asan ]] || tool_env+=("LD_PRELOAD=$asan"
	"ASAN_OPTIONS=detect_leaks=0:halt_on_error=1")

lab_up=1
"$LAB" up 2 || { lab_up=0; exit 1; }
server_addr=$("$LAB" addr 2)

wait_listen() {
	local i
	for ((i = 0; i < 100; i++)); do
		ip netns exec "${IPL_PREFIX}$1" ss -Hltn "sport = :$2" |
			grep -q . && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# pair NAME GIDOPT TOOL ARGS...: server on host 2, client on host 1.
port=19000
pair() {
	local name=$1 gidopt=$2 spid src=0 crc=0
	shift 2
	port=$((port + 1))
	"$LAB" exec 2 timeout -k 5 "$TOOL_TIMEOUT" "${tool_env[@]}" sh -c \
		'exec "$0" -d "$IPL_DEV" '"$gidopt"' "$IPL_GID" "$@"' \
		"$@" -p "$port" >"$work/$name.server" 2>&1 &
	spid=$!
	wait_listen 2 "$port" "$spid" || {
		cat "$work/$name.server" >&2; log "FAIL $name: no server"; return 1; }
	"$LAB" exec 1 timeout -k 5 "$TOOL_TIMEOUT" "${tool_env[@]}" sh -c \
		'exec "$0" -d "$IPL_DEV" '"$gidopt"' "$IPL_GID" "$@"' \
		"$@" -p "$port" "$server_addr" >"$work/$name.client" 2>&1 || crc=$?
	wait "$spid" || src=$?
	if ((src || crc)); then
		cat "$work/$name.server" "$work/$name.client" >&2
		log "FAIL $name (server $src, client $crc)"
		return 1
	fi
	log "ok $name"
}

fail=0
for t in "${tools[@]}"; do
	case $t in
	rc_pingpong) pair "$t" -g ibv_rc_pingpong -e -c -n 500 || fail=1
		     pair "$t-1M" -g ibv_rc_pingpong -e -c -s 1048576 -n 20 || fail=1 ;;
	srq_pingpong) pair "$t" -g ibv_srq_pingpong -e -c -n 200 || fail=1 ;;
	ib_send_lat|ib_send_bw|ib_read_bw)
		pair "$t" -x "$t" -e -n 500 || fail=1 ;;
	*) log "unknown tool $t"; fail=1 ;;
	esac
done
((fail == 0)) || exit 1
echo "PASS events cross-host ${tools[*]}"
