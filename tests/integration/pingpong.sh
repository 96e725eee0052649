#!/bin/bash
# ibv_{rc,uc,ud,srq}_pingpong between two processes on one daemon, with -g
# (RoCE) and -c (the receiver validates the buffer); ibv_xsrq_pingpong
# (XRC: no -c, it prints "success"), also with one server and 3 clients.
# usage: pingpong.sh rc|uc|ud|srq|xsrq
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

kind=${1:?usage: pingpong.sh rc|uc|ud|srq|xsrq}
tool=ibv_${kind}_pingpong
check=-c done_re=' bytes in .* seconds = '
if [[ $kind == xsrq ]]; then
	check= done_re='^success$'
fi

ipd_start d
ipd_env
dev=$(ipd_dev)
gid=$(ipd_gid_index)
mtu=$(ipd_run ibv_devinfo -d "$dev" | awk '/active_mtu:/ { print $2; exit }')
[[ $mtu =~ ^[0-9]+$ ]] || ipd_fail "no active_mtu from ibv_devinfo"

# One line per run: extra options for both sides.  Path MTUs stay at or
# below the port's active MTU (1024 by default: a 1500-byte link).
case $kind in
rc) variants=("-n 500" "-s 1 -n 200" "-s 1048576 -n 20" "-m 256 -s 10000 -n 100"
	      "-m 512 -s 65536 -n 100" "-N -n 200")
    ;;
uc) variants=("-n 500" "-s 1 -n 200" "-s 1048576 -n 20" "-m 512 -s 65536 -n 100")
    ;;
ud) # UD messages fit one packet; ud_pingpong adds the 40-byte GRH itself.
    variants=("-s 1 -n 200" "-s $mtu -n 500")
    ;;
srq) variants=("-n 200" "-s 1 -n 100" "-q 4 -s 65536 -n 50")
    ;;
xsrq) variants=("-n 200" "-s 1 -n 100" "-m 512 -s 65536 -n 50"
		"-s 1048576 -n 10" "-e -n 100")
    ;;
*) ipd_fail "unknown pingpong kind '$kind'" ;;
esac

for v in "${variants[@]}"; do
	port=$(ipd_port)
	run_pair "$port" "$tool -d $dev -g $gid $check -p $port $v" \
		"$tool -d $dev -g $gid $check -p $port $v 127.0.0.1" ||
		ipd_fail "$tool $v"
	# Both sides report what they moved ("N bytes in T seconds = ...").
	grep -Eq "$done_re" "$IPD_PAIR_LAST.client" ||
		ipd_fail "$tool $v: client printed no result"
	ipd_alive || ipd_fail "daemon died"
done

# XRC's point: one server, several clients, each client's messages sent
# round robin over all the server's INI QPs to one XRC SRQ per process.
if [[ $kind == xsrq ]]; then
	nc=3 port=$(ipd_port) out=$IPD_TMP/xsrq-multi pids=()
	ipd_log "server: $tool -c $nc"
	eval "exec timeout -k 5 $IPD_TOOL_TIMEOUT \"\${IPD_TOOL_ENVV[@]}\" \
		$tool -d $dev -g $gid -p $port -c $nc -n 50" >"$out.server" 2>&1 &
	spid=$!
	IPD_BG_PIDS+=("$spid")
	ipd_wait_listen "$port" "$spid" || ipd_fail "$tool -c $nc: no listener"
	for i in $(seq "$nc"); do
		eval "exec timeout -k 5 $IPD_TOOL_TIMEOUT \"\${IPD_TOOL_ENVV[@]}\" \
			$tool -d $dev -g $gid -p $port -n 50 127.0.0.1" \
			>"$out.client$i" 2>&1 &
		pids+=($!)
		IPD_BG_PIDS+=("$!")
	done
	rc=0
	for p in "${pids[@]}" "$spid"; do wait "$p" || rc=$?; done
	for f in "$out".*; do
		grep -q '^success$' "$f" || { cat "$f" >&2; rc=1; }
	done
	((rc == 0)) || ipd_fail "$tool: server with $nc clients"
	ipd_alive || ipd_fail "daemon died"
fi

ipd_stop
echo "PASS $tool"
