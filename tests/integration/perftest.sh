#!/bin/bash
# perftest between two processes on one daemon; sizes from 2 B to 1 MiB with
# small iteration counts (a functional test, not a benchmark).
# usage: perftest.sh TEST [RC|UD]   e.g. perftest.sh ib_write_bw
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

test=${1:?usage: perftest.sh ib_TEST [RC|UD]}
conn=${2:-RC}

ipd_start d
ipd_env
dev=$(ipd_dev)
gid=$(ipd_gid_index)
mtu=$(ipd_run ibv_devinfo -d "$dev" | awk '/active_mtu:/ { print $2; exit }')
[[ $mtu =~ ^[0-9]+$ ]] || ipd_fail "no active_mtu from ibv_devinfo"

# "size iterations [extra options]" per run; iterations "D<s>" = run for
# <s> seconds (-D, perftest's duration mode) instead of -n.
case $test:$conn in
ib_send_bw:UD)
	runs=("2 200" "$mtu 200") ;;
ib_send_bw:RC | ib_write_bw:RC | ib_read_bw:RC)
	runs=("2 200" "4096 200" "65536 100" "1048576 20" "65536 100 -q 2"
	      "65536 D3") ;;
ib_atomic_bw:RC)
	runs=("8 200 -A FETCH_AND_ADD" "8 200 -A CMP_AND_SWAP") ;;
ib_send_lat:RC | ib_write_lat:RC | ib_read_lat:RC)
	runs=("2 200" "4096 100" "1048576 10") ;;
*) ipd_fail "no runs defined for $test -c $conn" ;;
esac

for r in "${runs[@]}"; do
	read -r size iters extra <<<"$r"
	port=$(ipd_port)
	if [[ $iters == D* ]]; then
		count="-D ${iters#D}"
	else
		count="-n $iters"
	fi
	common="-d $dev -i 1 -x $gid -F -c $conn -p $port $count ${extra:-}"
	[[ $test == ib_atomic_bw ]] || common+=" -s $size"
	run_pair "$port" "$test $common" "$test $common 127.0.0.1" ||
		ipd_fail "$test -c $conn -s $size $count ${extra:-}"
	# The client prints the result table: a line starting with the size
	# and an iteration count (perftest multiplies -n by the QP count).
	grep -Eq "^[[:space:]]*$size[[:space:]]+[0-9]+[[:space:]]" "$IPD_PAIR_LAST.client" || {
		cat "$IPD_PAIR_LAST.client" >&2
		ipd_fail "$test -s $size: no result line"
	}
	grep -E "^[[:space:]]*$size[[:space:]]+[0-9]+[[:space:]]" "$IPD_PAIR_LAST.client"
	ipd_alive || ipd_fail "daemon died"
done

ipd_stop
echo "PASS $test -c $conn"
