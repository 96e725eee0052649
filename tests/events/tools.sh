#!/bin/bash
# Event mode (-e: completion channels) of the rdma-core pingpongs and
# perftest between two processes on one daemon.
# usage: tools.sh rc_pingpong|srq_pingpong|ud_pingpong|uc_pingpong|ib_send_lat|
#                 ib_send_bw|ib_write_bw|ib_read_bw|ib_atomic_bw|all
#
# perftest refuses -e for WRITE tests in its option parser, before it
# touches a device ("Events feature not available on WRITE verb", on any
# HCA); the ib_write_bw case checks exactly that refusal, and ib_read_bw
# -e covers event mode for the one-sided path.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

which=${1:-all}

ipd_start d
ipd_env
dev=$(ipd_dev)
gid=$(ipd_gid_index)

pingpong() {
	local tool=ibv_$1 v port
	shift
	for v in "$@"; do
		port=$(ipd_port)
		run_pair "$port" "$tool -d $dev -g $gid -e -c -p $port $v" \
			"$tool -d $dev -g $gid -e -c -p $port $v 127.0.0.1" ||
			ipd_fail "$tool -e $v"
		grep -q ' bytes in .* seconds = ' "$IPD_PAIR_LAST.client" ||
			ipd_fail "$tool -e $v: client printed no result"
		ipd_alive || ipd_fail "daemon died"
	done
}

perftest() {
	local tool=$1 v port
	shift
	for v in "$@"; do
		port=$(ipd_port)
		run_pair "$port" "$tool -d $dev -x $gid -e -p $port $v" \
			"$tool -d $dev -x $gid -e -p $port $v 127.0.0.1" ||
			ipd_fail "$tool -e $v"
		# The result table: a line of numbers starting with the size.
		grep -Eq '^ *[0-9]+ +[0-9]+ ' "$IPD_PAIR_LAST.client" ||
			ipd_fail "$tool -e $v: client printed no result"
		ipd_alive || ipd_fail "daemon died"
	done
}

case $which in
rc_pingpong|all)
	pingpong rc_pingpong "-n 500" "-s 1048576 -n 20" "-s 1 -n 300" ;;&
srq_pingpong|all)
	pingpong srq_pingpong "-n 200" "-q 4 -s 65536 -n 50" ;;&
ib_send_lat|all)
	perftest ib_send_lat "-n 500" "-s 65536 -n 100" ;;&
ib_send_bw|all)
	perftest ib_send_bw "-n 500" "-s 65536 -n 200" "-q 4 -n 300" \
		"-c UD -n 300" "-c UC -n 300" ;;&
ib_atomic_bw|all)
	perftest ib_atomic_bw "-n 300" ;;&
ud_pingpong|all)
	# UD messages fit one packet (the tool adds the GRH itself)
	pingpong ud_pingpong "-s 512 -n 300" ;;&
uc_pingpong|all)
	pingpong uc_pingpong "-n 300" "-s 65536 -n 50" ;;&
ib_write_bw|all)
	out=$(ipd_run ib_write_bw -d "$dev" -x "$gid" -e 2>&1) &&
		ipd_fail "ib_write_bw -e was expected to refuse the option"
	grep -q 'Events feature not available on WRITE verb' <<<"$out" ||
		ipd_fail "ib_write_bw -e: unexpected failure: $out"
	ipd_log "ib_write_bw -e: refused by perftest itself (as on any HCA)" ;;&
ib_read_bw|all)
	perftest ib_read_bw "-n 500" "-s 65536 -n 200" ;;&
rc_pingpong|srq_pingpong|ib_send_lat|ib_send_bw|ib_write_bw|ib_read_bw) ;;
ib_atomic_bw|ud_pingpong|uc_pingpong|all) ;;
*) ipd_fail "unknown tool '$which'" ;;
esac

ipd_stop
echo "PASS events $which"
