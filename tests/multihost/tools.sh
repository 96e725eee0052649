#!/bin/bash
# The single-host issue's pingpongs and perftests between two hosts: a
# 2-host lab (tests/lab/ipathd-lab.sh), the server on host 2, the client
# on host 1, RoCEv2 over UDP between their daemons.  Each run must exit 0
# on both sides and print its result (pingpongs with -c: the receiver
# validates the buffer; ibv_xsrq_pingpong has no -c and prints "success").
# Sizes and counts are modest: a functional test.
# usage: tools.sh pingpong|perftest|TOOL...
#   TOOL: rc uc ud srq xsrq (pingpongs), ib_send_bw ib_write_bw ib_read_bw
#         ib_atomic_bw ib_send_lat ib_write_lat ib_read_lat ib_send_bw_ud
# Needs root; exit 77 = skipped.
set -euo pipefail
MH_NAME=t
. "$(dirname "$0")/mh-lib.sh"

tools=()
(($#)) || set -- pingpong perftest
for a in "$@"; do
	case $a in
	pingpong) tools+=(rc uc ud srq xsrq) ;;
	perftest) tools+=(ib_send_bw ib_write_bw ib_read_bw ib_atomic_bw
			  ib_send_lat ib_write_lat ib_read_lat ib_send_bw_ud) ;;
	*) tools+=("$a") ;;
	esac
done
((${#tools[@]})) || mh_fail "nothing to run"

# with application transmit (docs/design.md; the default, named anyway):
# the latency runs check that the applications sent their messages
# themselves
mh_up 2 -- --app-tx yes
mtu=$(mh_sh 1 'ibv_devinfo -d "$IPL_DEV"' | awk '/active_mtu:/ { print $2; exit }')
[[ $mtu =~ ^[0-9]+$ ]] || mh_fail "no active_mtu from ibv_devinfo on host 1"

fails=0 runs=0
# pingpong KIND OPTIONS
pingpong() {
	local kind=$1 opts=$2 tool=ibv_${1}_pingpong
	local check=-c done_re=' bytes in .* seconds = '
	[[ $kind != xsrq ]] || check= done_re='^success$'
	local cmd="exec $tool -d \"\$IPL_DEV\" -g \"\$IPL_GID\" $check -p \$PORT $opts"
	runs=$((runs + 1))
	if mh_pair "$kind-$runs" 2 1 "$cmd" "$cmd \$SRV" &&
	   grep -Eq "$done_re" "$MH_LAST.client" &&
	   grep -Eq "$done_re" "$MH_LAST.server"; then
		mh_log "ok   $tool $opts: $(grep -hE 'iters in|^success' "$MH_LAST.client")"
	else
		mh_log "FAIL $tool $opts (host 1 -> host 2)"
		fails=$((fails + 1))
	fi
}

# perf TEST CONN SIZE COUNT [EXTRA]
perf() {
	local t=$1 conn=$2 size=$3 count=$4 extra=${5:-} opts
	opts="-c $conn $count $extra"
	[[ $t == ib_atomic_bw ]] || opts+=" -s $size"
	local cmd="exec $t -d \"\$IPL_DEV\" -x \"\$IPL_GID\" -F -p \$PORT $opts"
	runs=$((runs + 1))
	if mh_pair "$t-$runs" 2 1 "$cmd" "$cmd \$SRV" &&
	   grep -Eq "^[[:space:]]*$size[[:space:]]+[0-9]+[[:space:]]" "$MH_LAST.client"; then
		mh_log "ok   $t $opts: $(grep -E "^[[:space:]]*$size[[:space:]]+[0-9]+[[:space:]]" "$MH_LAST.client" | tr -s ' \t' ' ')"
	else
		[[ -f $MH_LAST.client ]] && cat "$MH_LAST.client" >&2
		mh_log "FAIL $t $opts (host 1 -> host 2)"
		fails=$((fails + 1))
	fi
}

# app_tx_runs TEST CONN SIZE COUNT: perf, and each host's application sent
# (nearly) every message itself (app_tx_pkts, at least 95 %)
app_tx_runs() {
	local k n=${4#-n } before=() got
	for k in 1 2; do before[k]=$(mh_counter "$k" app_tx_pkts); done
	perf "$@"
	for k in 1 2; do
		got=$(($(mh_counter "$k" app_tx_pkts) - before[k]))
		mh_log "host $k: $got of $n messages sent by the application"
		if ((got * 100 < n * 95)); then
			mh_log "FAIL $1: host $k's application sent $got of $n itself"
			fails=$((fails + 1))
		fi
	done
}

for t in "${tools[@]}"; do
	case $t in
	rc) for v in "-n 300" "-s 1 -n 100" "-s 1048576 -n 10" \
		     "-m 512 -s 65536 -n 50" "-N -n 200"; do
		pingpong rc "$v"; done ;;
	uc) for v in "-n 300" "-s 65536 -n 50" "-m 512 -s 10000 -n 100"; do
		pingpong uc "$v"; done ;;
	ud) for v in "-s 1 -n 200" "-s $mtu -n 300"; do
		pingpong ud "$v"; done ;;
	srq) for v in "-n 200" "-q 4 -s 65536 -n 50"; do
		pingpong srq "$v"; done ;;
	xsrq) for v in "-n 200" "-m 512 -s 65536 -n 50" "-e -n 100"; do
		pingpong xsrq "$v"; done ;;
	ib_send_bw | ib_write_bw | ib_read_bw)
		perf "$t" RC 2 "-n 200"
		perf "$t" RC 65536 "-n 100"
		perf "$t" RC 1048576 "-n 10"
		perf "$t" RC 65536 "-n 50" "-q 2" ;;
	ib_atomic_bw)
		perf "$t" RC 8 "-n 200" "-A FETCH_AND_ADD"
		perf "$t" RC 8 "-n 200" "-A CMP_AND_SWAP" ;;
	ib_send_lat | ib_write_lat)
		# one message at a time, on an idle QP: the applications send
		# them themselves (docs/design.md "Application transmit")
		app_tx_runs "$t" RC 2 "-n 200"
		perf "$t" RC 65536 "-n 50" ;;
	ib_read_lat)
		perf "$t" RC 2 "-n 200"
		perf "$t" RC 65536 "-n 50" ;;
	ib_send_bw_ud)
		perf ib_send_bw UD 2 "-n 200"
		perf ib_send_bw UD "$mtu" "-n 200" ;;
	*) mh_fail "unknown tool '$t'" ;;
	esac
	mh_daemons_alive
done

((fails == 0)) || mh_fail "$fails of $runs runs failed"
echo "PASS multihost tools: $runs runs (${tools[*]})"
