#!/bin/bash
# The daemon sleeps when idle: after traffic, with a client that holds a QP
# with posted receives but sends nothing, its CPU use over 5 s stays under
# 5 % (a functional check of "sleeps when idle", with room for noisy CI).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

ipd_start d
ipd_env
dev=$(ipd_dev)
gid=$(ipd_gid_index)
pid=${IPD_PID[d]}
hz=$(getconf CLK_TCK)

# cpu_pct SECONDS: the daemon's CPU use over an interval, in percent.
cpu_pct() {
	local t0 t1
	t0=$(ipd_cpu_ticks "$pid")
	sleep "$1"
	t1=$(ipd_cpu_ticks "$pid")
	echo $(((t1 - t0) * 100 / (hz * $1)))
}
check_idle() {
	local what=$1 pct
	sleep 3
	pct=$(cpu_pct 5)
	ipd_log "daemon CPU $what: $pct %"
	((pct < 5)) || ipd_fail "daemon uses $pct % CPU $what"
}

check_idle "after start-up"

# Some traffic first, so that any polling the daemon does has been started.
port=$(ipd_port)
run_pair "$port" "ibv_rc_pingpong -d $dev -g $gid -c -p $port -n 500" \
	"ibv_rc_pingpong -d $dev -g $gid -c -p $port -n 500 127.0.0.1" ||
	ipd_fail "pingpong"
check_idle "after traffic"

# A client with a QP and posted receives that waits for its peer.
port=$(ipd_port)
timeout -k 5 60 "${IPD_TOOL_ENVV[@]}" ibv_rc_pingpong -d "$dev" -g "$gid" -p "$port" \
	>"$IPD_TMP/waiter.log" 2>&1 &
waiter=$!
IPD_BG_PIDS+=("$waiter")
ipd_wait_listen "$port" "$waiter" || ipd_fail "waiting pingpong server did not start"
check_idle "with an idle client holding a QP"
kill -TERM -- "-$waiter" 2>/dev/null || kill -TERM "$waiter"
wait "$waiter" 2>/dev/null || true

ipd_stop
echo "PASS idle"
