# shellcheck shell=bash
#
# Helpers for the multi-host tests (tests/multihost/*.sh): a private lab
# (tests/lab/ipathd-lab.sh) per script, torn down on exit, failure
# included; tools run inside the lab's hosts under `timeout`.  Source it
# from a script running with `set -euo pipefail` after setting MH_NAME (a
# short tag, one letter or two: it becomes part of the lab prefix).
#
#   mh_up N [LAB UP ARGS...]   create an N-host lab (skip 77 when it cannot)
#   mh_exec K CMD...           run CMD in host K under timeout, with the
#                              sanitizer preload a sanitized provider needs
#   mh_pair NAME S C SCMD CCMD run SCMD on host S (server, a TCP listener on
#                              $MH_PORT), then CCMD on host C; both must exit
#                              0.  Commands are sh -c strings run in the
#                              host's environment ($IPL_DEV, $IPL_GID, ...);
#                              $SRV is the server's address.  Output in
#                              $MH_WORK/NAME.{server,client}
#   mh_counter K NAME          a counter of host K's daemon (0 when absent)
#   mh_dumpcap K FILE          capture host K's eth0 (UDP 4791) into FILE;
#                              mh_dumpcap_stop ends it
#
# Knobs: IPATHD_BUILD_DIR, IPD_TOOL_TIMEOUT (seconds per tool, default 120),
# IPL_PREFIX / IPL_SUBNET / IPL_STATE (default: per run).

MH_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MH_SRC=$(cd "$MH_HERE/../.." && pwd)
LAB=$MH_SRC/tests/lab/ipathd-lab.sh
MH_NAME=${MH_NAME:-x}
# A private lab per run (prefix at most 8 characters): concurrent runs
# never meet.
export IPL_PREFIX=${IPL_PREFIX:-m${MH_NAME}$(($$ % 100000))}
export IPL_SUBNET=${IPL_SUBNET:-10.$((100 + $$ % 100)).$((RANDOM % 250)).}
IPL_SUBNET=${IPL_SUBNET%.}
export IPL_STATE=${IPL_STATE:-/run/ipathd-lab/$IPL_PREFIX}
export IPATHD_BUILD_DIR=${IPATHD_BUILD_DIR:-$MH_SRC/build}
MH_T=${IPD_TOOL_TIMEOUT:-120}
MH_PORT=${MH_PORT:-$((18600 + $$ % 1000))}

mh_log() { printf '[%s %s] %s\n' "${0##*/}" "$(date +%T)" "$*" >&2; }
mh_fail() { mh_log "FAIL: $*"; exit 1; }
mh_skip() { mh_log "SKIP: $*"; exit 77; }

[[ $(id -u) == 0 ]] || mh_skip "needs root (network namespaces)"
[[ -x $IPATHD_BUILD_DIR/daemon/ipathd ]] || mh_skip "no daemon in $IPATHD_BUILD_DIR"
ip netns list >/dev/null 2>&1 || mh_skip "no network namespaces (ip netns)"

# A sanitized provider needs its runtime preloaded into the tools, as
# tests/lib.sh does; the lab's exec does not do that by itself.
MH_ASAN=$(ldd "$IPATHD_BUILD_DIR/provider/libipathd-rdmav34.so" 2>/dev/null |
	awk '/libasan\.so/ { print $3; exit }')
MH_ENV=(env)
[[ -z $MH_ASAN ]] || MH_ENV+=("LD_PRELOAD=$MH_ASAN"
	"ASAN_OPTIONS=detect_leaks=0:halt_on_error=1"
	"UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")

MH_WORK=$(mktemp -d /tmp/ipathd-mh.XXXXXX)
MH_UP=0
mh_cleanup() {
	local rc=$? p
	set +e
	# our own background jobs still running (never a stale pid)
	for p in $(jobs -p); do
		kill -KILL "$p" 2>/dev/null
	done
	if ((MH_UP)); then
		if ((rc)); then
			for p in "$IPL_STATE"/host*/ipathd.log; do
				[[ -f $p ]] || continue
				mh_log "---- $p (tail) ----"
				tail -n 15 "$p" >&2
			done
		fi
		"$LAB" down >/dev/null 2>&1
		rm -rf "$IPL_STATE"
	fi
	if ((rc)) && [[ -n ${CI_KEEP_FAILED:-} || -n ${IPD_KEEP_TMP:-} ]]; then
		mh_log "kept $MH_WORK"
	else
		rm -rf "$MH_WORK"
	fi
	exit "$rc"
}
trap mh_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mh_up() {
	local n=$1
	shift
	MH_UP=1
	"$LAB" up "$n" "$@" >"$MH_WORK/lab-up.log" 2>&1 || {
		cat "$MH_WORK/lab-up.log" >&2
		mh_fail "lab up $n $*"
	}
	mh_log "lab $IPL_PREFIX up: $n hosts, $IPL_SUBNET.1..$IPL_SUBNET.$n"
}

mh_addr() { "$LAB" addr "$@"; }

# mh_exec K CMD...: in host K, bounded, sanitizer preload if needed.
mh_exec() {
	local k=$1
	shift
	"$LAB" exec "$k" timeout -k 5 "$MH_T" "${MH_ENV[@]}" "$@"
}

# mh_sh K 'shell string' [ARGS]: a sh -c string in host K (it sees the
# lab's variables: $IPL_DEV, $IPL_GID, $IPL_ADDR, ...).
mh_sh() {
	local k=$1 cmd=$2
	shift 2
	mh_exec "$k" sh -c "$cmd" sh "$@"
}

# mh_wait_listen K PORT PID: host K listens on TCP PORT (bounded).
mh_wait_listen() {
	local i
	for ((i = 0; i < 150; i++)); do
		ip netns exec "$IPL_PREFIX$1" ss -Hltn "sport = :$2" | grep -q . &&
			return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# mh_wait_output FILE PATTERN PID TRIES: FILE gets a line matching PATTERN
# (grep -E) while PID runs, within TRIES tenths of a second.  On failure
# FILE goes to stderr.
mh_wait_output() {
	local i
	for ((i = 0; i < $4; i++)); do
		grep -Eqs "$2" "$1" && return 0
		kill -0 "$3" 2>/dev/null || break
		sleep 0.1
	done
	cat "$1" >&2
	return 1
}

# mh_pair NAME S C SCMD CCMD
mh_pair() {
	local name=$1 s=$2 c=$3 scmd=$4 ccmd=$5 spid src=0 crc=0 srv
	srv=$(mh_addr "$s")
	MH_PORT=$((MH_PORT + 1))
	mh_sh "$s" "PORT=$MH_PORT; SRV=$srv; $scmd" >"$MH_WORK/$name.server" 2>&1 &
	spid=$!
	if ! mh_wait_listen "$s" "$MH_PORT" "$spid"; then
		wait "$spid" 2>/dev/null || true
		cat "$MH_WORK/$name.server" >&2
		mh_log "FAIL $name: the server on host $s did not listen on $MH_PORT"
		return 1
	fi
	mh_sh "$c" "PORT=$MH_PORT; SRV=$srv; $ccmd" >"$MH_WORK/$name.client" 2>&1 || crc=$?
	wait "$spid" || src=$?
	MH_LAST=$MH_WORK/$name
	if ((src || crc)); then
		mh_log "---- $name server, host $s (exit $src) ----"
		cat "$MH_WORK/$name.server" >&2
		mh_log "---- $name client, host $c (exit $crc) ----"
		cat "$MH_WORK/$name.client" >&2
		mh_log "FAIL $name (server $src, client $crc)"
		return 1
	fi
	return 0
}

# mh_dumpcap K FILE: dumpcap captures host K's eth0 (UDP port 4791) into
# FILE, started (bounded) when it returns; mh_dumpcap_stop ends it.
mh_dumpcap() {
	local i
	ip netns exec "${IPL_PREFIX}$1" dumpcap -q -i eth0 -f 'udp port 4791' \
		-w "$2" >"$MH_WORK/dumpcap.log" 2>&1 &
	MH_DUMPCAP=$!
	for ((i = 0; i < 100; i++)); do
		[[ -s $2 ]] && return 0
		kill -0 "$MH_DUMPCAP" 2>/dev/null || {
			cat "$MH_WORK/dumpcap.log" >&2
			mh_fail "dumpcap"
		}
		sleep 0.1
	done
	mh_fail "dumpcap did not start"
}

mh_dumpcap_stop() {
	kill -INT "$MH_DUMPCAP"
	wait "$MH_DUMPCAP" || true
}

# mh_counter K NAME: ipathctl omits counters still at 0.
mh_counter() {
	local v
	v=$("$LAB" ctl "$1" counters | awk -v k="$2" '$1 == k { print $2 }')
	echo "${v:-0}"
}

# mh_daemons_alive: every host's daemon still runs.
mh_daemons_alive() {
	local n k st
	n=$("$LAB" hosts)
	st=$("$LAB" status)
	for ((k = 1; k <= n; k++)); do
		grep -Eq "host $k +ns .*ipathd pid [0-9]" <<<"$st" ||
			mh_fail "host $k: ipathd is gone: $(tail -n 5 "$IPL_STATE/host$k/ipathd.log" 2>/dev/null)"
	done
	return 0
}
