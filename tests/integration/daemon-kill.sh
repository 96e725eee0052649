#!/bin/bash
# The daemon dies under load (docs/design.md "Daemon failure"):
#   1. tests/daemon_kill (polling, then on a completion channel) keeps a
#      window of WRITEs/SENDs in flight between two QPs; the daemon is
#      SIGKILLed (then SIGTERMed) mid-run, or kills itself at the worst
#      moment ($IPATHD_TEST_DIE_AT_CQE: slot freed, completion not posted).  The program must end by itself
#      with DEVICE_FATAL, every wr_id completed exactly once, successes
#      before flushes, errors from control verbs (daemon_kill.c checks).
#   2. ib_write_bw by iteration count, daemon SIGKILLed mid-run: both sides
#      exit non-zero with an error message within a bound, no hang.
#   After each kill the daemon is restarted on the same socket path (its
#   stale socket and sysfs entries left behind) and ibv_rc_pingpong passes.
# usage: daemon-kill.sh [DAEMON_KILL]
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

dk=${1:-$IPD_BUILD/tests/daemon_kill}
[[ -x $dk ]] || ipd_fail "$dk is not executable"
out=$IPD_TMP
# Seconds an application may take to notice the dead daemon and finish.
BOUND=20
# Part 3 crashes a daemon on purpose: no core file.
ulimit -c 0

ipd_start d
ipd_env

# restart_daemon: start d again on the same paths; a SIGKILLed daemon left
# its socket and sysfs entry behind, so readiness means "answers".
restart_daemon() {
	local pid=${IPD_PID[d]} deadline
	unset "IPD_PID[d]"
	wait "$pid" 2>/dev/null || true
	ipd_start d
	deadline=$((SECONDS + 30))
	until ipd_ctl d qps >/dev/null 2>&1; do
		((SECONDS < deadline)) || ipd_fail "restarted daemon does not answer"
		sleep 0.2
	done
}

pingpong_ok() {
	local port gid
	port=$(ipd_port)
	gid=$(ipd_gid_index)
	run_pair "$port" "ibv_rc_pingpong -d $(ipd_dev) -g $gid -p $port -n 200" \
		"ibv_rc_pingpong -d $(ipd_dev) -g $gid -p $port -n 200 127.0.0.1" ||
		ipd_fail "ibv_rc_pingpong after the daemon restart"
}

# wait_line FILE PID TEXT: until FILE holds TEXT (bounded; PID must live).
wait_line() {
	local deadline=$((SECONDS + 60))
	until grep -q "$3" "$1"; do
		((SECONDS < deadline)) || { cat "$1" >&2; ipd_fail "no '$3' from $2"; }
		ipd_running "$2" || { cat "$1" >&2; ipd_fail "$2 ended before '$3'"; }
		sleep 0.1
	done
}

# finish PID NAME: exit status of a background tool, bounded by BOUND s.
finish() {
	local t0=$SECONDS
	rc=0
	timeout "$BOUND" tail --pid="$1" -f /dev/null 2>/dev/null || {
		kill -KILL -- "-$1" 2>/dev/null || true
		ipd_fail "$2 still running $BOUND s after the daemon died (hang)"
	}
	wait "$1" || rc=$?
	ipd_log "$2 exited with status $rc after $((SECONDS - t0)) s"
}

# ---- 1. the verbs program ---------------------------------------------------
# SELF: the daemon (restarted with $IPATHD_TEST_DIE_AT_CQE) kills itself
# between freeing a WQE's slot and posting its completion, the one point
# where a completion could be lost.
for mode in "KILL poll" "KILL events" "TERM poll" "SELF poll" "SELF events"; do
	sig=${mode% *}
	args=(-d "$(ipd_dev)" -g "$(ipd_gid_index)" -t 15)
	[[ $mode == *events ]] && args+=(-e)
	log=$out/dk.${sig}.${mode#* }
	if [[ $sig == SELF ]]; then
		kill -TERM "${IPD_PID[d]}"
		# an even and an odd count: a send and a receive completion
		IPATHD_TEST_DIE_AT_CQE=$((${#mode} % 2 ? 6001 : 6000)) restart_daemon
	fi
	ipd_log "daemon_kill ${args[*]}: $sig, daemon killed mid-run"
	timeout -k 5 "$IPD_TOOL_TIMEOUT" "${IPD_TOOL_ENVV[@]}" "$dk" "${args[@]}" \
		>"$log" 2>&1 &
	p=$!
	IPD_BG_PIDS+=("$p")
	wait_line "$log" "$p" RUNNING
	[[ $sig == SELF ]] || kill "-$sig" "${IPD_PID[d]}"
	finish "$p" daemon_kill
	! ipd_running "${IPD_PID[d]}" || ipd_fail "the daemon is still running"
	cat "$log" >&2
	((rc == 0)) || ipd_fail "daemon_kill ($mode) failed"
	grep -q "IBV_EVENT_DEVICE_FATAL received" "$log" ||
		ipd_fail "no DEVICE_FATAL event"
	restart_daemon
	pingpong_ok
done

# ---- 2. ib_write_bw ---------------------------------------------------------
port=$(ipd_port)
bw=(ib_write_bw -d "$(ipd_dev)" -x "$(ipd_gid_index)" -F -s 65536 -n 5000000 -p "$port")
timeout -k 5 "$IPD_TOOL_TIMEOUT" "${IPD_TOOL_ENVV[@]}" "${bw[@]}" >"$out/bw.srv" 2>&1 &
s=$!
IPD_BG_PIDS+=("$s")
ipd_wait_listen "$port" "$s" || ipd_fail "ib_write_bw server not listening"
timeout -k 5 "$IPD_TOOL_TIMEOUT" "${IPD_TOOL_ENVV[@]}" "${bw[@]}" 127.0.0.1 >"$out/bw.cli" 2>&1 &
c=$!
IPD_BG_PIDS+=("$c")
deadline=$((SECONDS + 30))
until (($(ipd_qp_count) >= 2)); do
	((SECONDS < deadline)) || ipd_fail "ib_write_bw QPs never appeared"
	sleep 0.2
done
sleep 2
ipd_running "$c" || { cat "$out/bw.cli" >&2; ipd_fail "ib_write_bw ended before the kill"; }
ipd_log "SIGKILL the daemon under ib_write_bw"
kill -KILL "${IPD_PID[d]}"
finish "$c" "ib_write_bw client"
crc=$rc
finish "$s" "ib_write_bw server"
cat "$out/bw.cli" >&2
((crc != 0)) || ipd_fail "ib_write_bw client reported success on a dead device"
grep -Eqi "error|fail" "$out/bw.cli" || ipd_fail "ib_write_bw client printed no error"
restart_daemon
pingpong_ok

# 3. A daemon that crashes dies by the signal (so it can dump core), not by
#    libinfinipath's backtrace handler, which exits 1 (main.c).
pid=${IPD_PID[d]}
ipd_log "SIGSEGV the daemon"
kill -SEGV "$pid"
timeout 30 tail --pid="$pid" -f /dev/null 2>/dev/null || ipd_fail "daemon survived SIGSEGV"
rc=0
wait "$pid" 2>/dev/null || rc=$?
((rc == 128 + 11)) || ipd_fail "SIGSEGV: daemon exit status $rc, expected death by signal 11 (139)"
if grep -qi "backtrace" "${IPD_DIR[d]}/daemon.log"; then
	ipd_fail "a library's crash handler ran instead of the default action"
fi
restart_daemon
pingpong_ok
ipd_stop d
ipd_log "PASS"
