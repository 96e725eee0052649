#!/bin/bash
# The daemon dies under load, across hosts (docs/design.md "Daemon
# failure"; tests/integration/daemon-kill.sh is the one-host version).
# 2 hosts.  ib_write_bw runs between host 1 (client) and host 2 (server);
# host 1's daemon is SIGKILLed mid-run:
#   - host 1's ib_write_bw exits non-zero with an error within a bound
#     (the provider flushes its outstanding WRITEs, says "lost the daemon");
#   - host 2's ib_write_bw (passive) ends within a bound too;
#   - host 2's daemon lives on and its QPs keep working (a pingpong inside
#     host 2 while host 1 is still down);
#   - host 1's daemon restarts on the same paths and ibv_rc_pingpong
#     between the hosts passes.
# What the peer's QP sees (RETRY_EXC_ERR) is failover.sh's: perftest uses
# retry_cnt 7, which ipathd (like rxe) treats as infinite.
# Needs root; exit 77 = skipped.
set -euo pipefail
MH_NAME=k
. "$(dirname "$0")/mh-lib.sh"

BOUND=30	# seconds each side may take to give up
mh_up 2

# finish PID NAME: exit status of a background job into rc, bounded.
finish() {
	local t0=$SECONDS
	rc=0
	timeout "$BOUND" tail --pid="$1" -f /dev/null 2>/dev/null || {
		kill -KILL "$1" 2>/dev/null || true
		mh_fail "$2 still running $BOUND s after the daemon died (hang)"
	}
	wait "$1" || rc=$?
	mh_log "$2 exited with status $rc after $((SECONDS - t0)) s"
}

bw='exec ib_write_bw -d "$IPL_DEV" -x "$IPL_GID" -F -s 65536 -n 5000000 -p $PORT'
srv=$(mh_addr 2)
MH_PORT=$((MH_PORT + 1))
mh_sh 2 "PORT=$MH_PORT; $bw" >"$MH_WORK/bw.server" 2>&1 &
s=$!
mh_wait_listen 2 "$MH_PORT" "$s" || mh_fail "ib_write_bw server on host 2"
mh_sh 1 "PORT=$MH_PORT; $bw $srv" >"$MH_WORK/bw.client" 2>&1 &
c=$!
# Mid-transfer: host 1's daemon has sent data and the client still runs
# (perftest's stdout to a file is block-buffered: its header shows only at
# exit, so the daemon's counter is the sign).
for ((i = 0; i < 300; i++)); do
	(($(mh_counter 1 pkts_sent) > 2000)) && break
	kill -0 "$c" 2>/dev/null || break
	sleep 0.1
done
(($(mh_counter 1 pkts_sent) > 2000)) || {
	cat "$MH_WORK/bw.client" >&2
	mh_fail "the transfer did not start"
}
sleep 2
kill -0 "$c" 2>/dev/null || { cat "$MH_WORK/bw.client" >&2; mh_fail "client not running at kill time"; }
mh_log "SIGKILL host 1's daemon under ib_write_bw"
"$LAB" daemon 1 kill
finish "$c" "host 1 ib_write_bw"
crc=$rc
finish "$s" "host 2 ib_write_bw"
mh_log "---- host 1 ----"; cat "$MH_WORK/bw.client" >&2
mh_log "---- host 2 ----"; cat "$MH_WORK/bw.server" >&2
((crc != 0)) || mh_fail "host 1's ib_write_bw reported success on a dead device"
grep -q "lost the daemon" "$MH_WORK/bw.client" ||
	mh_fail "host 1: no device-fatal message"

# Host 2's daemon survived and still serves its own QPs.
st=$("$LAB" status)
grep -Eq "host 2 +ns .*ipathd pid [0-9]" <<<"$st" || mh_fail "host 2's daemon died: $st"
pp='exec ibv_rc_pingpong -d "$IPL_DEV" -g "$IPL_GID" -c -n 100 -p $PORT'
mh_pair local2 2 2 "$pp" "$pp 127.0.0.1" || mh_fail "pingpong inside host 2"

# Host 1 comes back on the same socket path.
"$LAB" daemon 1 start >/dev/null
mh_pair after 2 1 "$pp" "$pp \$SRV" || mh_fail "pingpong after host 1's restart"
mh_daemons_alive
mh_log "PASS"
