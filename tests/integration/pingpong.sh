#!/bin/bash
# ibv_{rc,uc,ud,srq}_pingpong between two processes on one daemon, with -g
# (RoCE) and -c (the receiver validates the buffer).
# usage: pingpong.sh rc|uc|ud|srq
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

kind=${1:?usage: pingpong.sh rc|uc|ud|srq}
tool=ibv_${kind}_pingpong

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
*) ipd_fail "unknown pingpong kind '$kind'" ;;
esac

for v in "${variants[@]}"; do
	port=$(ipd_port)
	run_pair "$port" "$tool -d $dev -g $gid -c -p $port $v" \
		"$tool -d $dev -g $gid -c -p $port $v 127.0.0.1" ||
		ipd_fail "$tool $v"
	# Both sides report what they moved ("N bytes in T seconds = ...").
	grep -q ' bytes in .* seconds = ' "$IPD_PAIR_LAST.client" ||
		ipd_fail "$tool $v: client printed no result"
	ipd_alive || ipd_fail "daemon died"
done

ipd_stop
echo "PASS $tool"
