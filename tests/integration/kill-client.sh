#!/bin/bash
# SIGKILL an ib_write_bw client in the middle of a long run: the daemon stays
# up, a bystander client (ib_send_bw) running at the same time completes,
# every QP of the dead processes disappears from `ipathctl qps`, and a new
# ibv_rc_pingpong passes.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

ipd_start d
ipd_env
dev=$(ipd_dev)
gid=$(ipd_gid_index)
out=$IPD_TMP

# bg_tool NAME CMD...: start a tool in the background under timeout; its pid
# (timeout's, leader of the tool's process group) goes to BG[NAME].
declare -A BG=()
bg_tool() {
	local name=$1; shift
	timeout -k 5 "$IPD_TOOL_TIMEOUT" "${IPD_TOOL_ENVV[@]}" "$@" >"$out/$name.log" 2>&1 &
	BG[$name]=$!
	IPD_BG_PIDS+=("$!")
}
# wait_bg NAME: exit status of a background tool (bounded by its timeout)
# into $rc.  Not in $(...): a subshell cannot wait for our children.
wait_bg() { rc=0; wait "${BG[$1]}" || rc=$?; }

# The bystander: ib_send_bw for a fixed time (an iteration count finishes
# before the kill on a fast run), long enough to span the kill.
bys_args=(-d "$dev" -x "$gid" -F -s 65536 -D 12)
pb=$(ipd_port)
bg_tool bys_srv ib_send_bw "${bys_args[@]}" -p "$pb"
ipd_wait_listen "$pb" "${BG[bys_srv]}" ||
	{ cat "$out/bys_srv.log" >&2; ipd_fail "bystander server not listening"; }
bg_tool bys_cli ib_send_bw "${bys_args[@]}" -p "$pb" 127.0.0.1

# The victim: ib_write_bw by iteration count (hundreds of GB; the tool
# timeout bounds it).
vic_args=(-d "$dev" -x "$gid" -F -s 65536 -n 5000000)
pv=$(ipd_port)
bg_tool vic_srv ib_write_bw "${vic_args[@]}" -p "$pv"
ipd_wait_listen "$pv" "${BG[vic_srv]}" || ipd_fail "victim server not listening"
bg_tool vic_cli ib_write_bw "${vic_args[@]}" -p "$pv" 127.0.0.1

# Mid-transfer: all four processes have their QP (perftest: one each).
deadline=$((SECONDS + 30))
until (($(ipd_qp_count) >= 4)); do
	((SECONDS < deadline)) || { ipd_ctl qps >&2 || true; ipd_fail "QPs never appeared"; }
	ipd_running "${BG[vic_cli]}" || { cat "$out/vic_cli.log" >&2; ipd_fail "victim client ended early"; }
	sleep 0.2
done
sleep 2
ipd_running "${BG[vic_cli]}" || { cat "$out/vic_cli.log" >&2; ipd_fail "victim client not running at kill time"; }
ipd_running "${BG[bys_cli]}" || { cat "$out/bys_cli.log" >&2; ipd_fail "bystander not running at kill time"; }
ipd_ctl qps || true
ipd_log "SIGKILL victim client (process group ${BG[vic_cli]})"
kill -KILL -- "-${BG[vic_cli]}"
wait "${BG[vic_cli]}" 2>/dev/null || true

# The victim's server loses its TCP peer and must give up; if it hangs in
# the exchange it is killed too (a second dead client for the daemon).
deadline=$((SECONDS + 20))
while ipd_running "${BG[vic_srv]}" && ((SECONDS < deadline)); do sleep 0.2; done
if ipd_running "${BG[vic_srv]}"; then
	ipd_log "victim server still waiting: SIGKILL it too"
	kill -KILL -- "-${BG[vic_srv]}" 2>/dev/null || true
fi
wait "${BG[vic_srv]}" 2>/dev/null || true

ipd_alive || ipd_fail "daemon died when its client was killed"

# The bystander is unaffected.
wait_bg bys_srv
[[ $rc -eq 0 ]] || { cat "$out/bys_srv.log" >&2; ipd_fail "bystander server exited $rc"; }
wait_bg bys_cli
[[ $rc -eq 0 ]] || { cat "$out/bys_cli.log" >&2; ipd_fail "bystander client exited $rc"; }
grep -Eq '^[[:space:]]*65536[[:space:]]+[1-9][0-9]*[[:space:]]' "$out/bys_cli.log" ||
	{ cat "$out/bys_cli.log" >&2; ipd_fail "bystander printed no result"; }

# Everything the dead and the finished clients owned is gone.
deadline=$((SECONDS + 15))
until (($(ipd_qp_count) == 0)); do
	((SECONDS < deadline)) || { ipd_ctl qps >&2 || true; ipd_fail "QPs left behind"; }
	sleep 0.2
done
ipd_ctl status | tee "$out/status"
# Every client is gone (ipathctl itself may count as one).
clients=$(awk '/^device / { print $3; exit }' "$out/status")
[[ $clients =~ ^[0-9]+$ ]] || ipd_fail "no client count in ipathctl status"
((clients <= 1)) || ipd_fail "$clients clients still connected"

# And the daemon still serves new clients.
port=$(ipd_port)
run_pair "$port" "ibv_rc_pingpong -d $dev -g $gid -c -p $port -n 200" \
	"ibv_rc_pingpong -d $dev -g $gid -c -p $port -n 200 127.0.0.1" ||
	ipd_fail "pingpong after the kill"

ipd_stop
echo "PASS kill-client"
