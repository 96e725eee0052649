#!/bin/bash
# The data-verifying program (tests/verify.c) with every opcode and QP type
# on a plain daemon; then RC (every opcode, with and without SRQ) and XRC
# (every opcode) through the loopback link with 5 % loss, duplication and
# reordering injected: with selective recovery (the default: the daemon
# keeps out-of-order packets, daemon/ooo.c) and again with go back N only
# (--selective-retransmit no); both also with multi-MiB messages.
# UC and UD are unreliable by definition (a lost packet loses the message),
# so they are not part of the lossy run.
# usage: verify.sh PATH/TO/verify [extra verify options]
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

verify=${1:?usage: verify.sh PATH/TO/verify}
shift
[[ -x $verify ]] || ipd_fail "$verify is not executable"

ipd_start plain
ipd_env plain
ipd_run "$verify" --all -d "$(ipd_dev)" -g "$(ipd_gid_index)" "$@" ||
	ipd_fail "verify --all on a plain daemon"
# Multi-MiB RC/XRC messages: on one daemon these go as direct loopback
# packets of many PSNs (docs/design.md "Direct loopback"), over SGE lists
# with odd offsets and gaps.
ipd_run "$verify" --type rc,xrc --max-size 6291456 --iters 4 -d "$(ipd_dev)" \
	-g "$(ipd_gid_index)" "$@" ||
	ipd_fail "verify --max-size 6 MiB on a plain daemon"
ipd_ctl counters | tee "$IPD_TMP/counters.plain"
grep -Eq '^loop_direct_pkts +[1-9]' "$IPD_TMP/counters.plain" ||
	ipd_fail "no direct loopback packet: was the direct path exercised?"
ipd_stop plain

# usage: lossy_run NAME selective(yes|no)
lossy_run() {
	local name=$1 sel=$2 held resent
	ipd_start "$name" --link loopback --loop-loss 5 --loop-dup 5 \
		--loop-reorder 5 --selective-retransmit "$sel"
	ipd_env "$name"
	# Fewer batches: every loss costs a retransmission timeout.
	ipd_run "$verify" --all --type rc,xrc --iters 30 -d "$(ipd_dev)" \
		-g "$(ipd_gid_index)" "${extra[@]}" ||
		ipd_fail "verify --all --type rc,xrc through a lossy loopback link (selective $sel)"
	ipd_run "$verify" --type rc,xrc --max-size 3145728 --iters 2 -d "$(ipd_dev)" \
		-g "$(ipd_gid_index)" "${extra[@]}" ||
		ipd_fail "verify --max-size 3 MiB through a lossy loopback link (selective $sel)"
	ipd_ctl counters | tee "$IPD_TMP/counters"
	grep -Eq '^loop_(dropped|duplicated|reordered) +[1-9]' "$IPD_TMP/counters" ||
		ipd_fail "the loopback link injected no faults"
	grep -Eq '^retransmits +[1-9]' "$IPD_TMP/counters" ||
		ipd_fail "no retransmission counted: was the lossy path exercised?"
	# (ipathctl leaves counters at 0 out)
	held=$(awk '$1 == "ooo_held" { print $2 }' "$IPD_TMP/counters")
	resent=$(awk '$1 == "selective_resends" { print $2 }' "$IPD_TMP/counters")
	if [[ $sel == yes ]]; then
		[[ ${held:-0} -gt 0 ]] ||
			ipd_fail "selective recovery kept no out-of-order packet"
		[[ ${resent:-0} -gt 0 ]] ||
			ipd_fail "selective recovery resent no packet alone"
	else
		[[ ${held:-0} -eq 0 ]] ||
			ipd_fail "selective_retransmit = no, yet $held packets kept"
		[[ ${resent:-0} -eq 0 ]] ||
			ipd_fail "selective_retransmit = no, yet $resent packets resent alone"
	fi
	ipd_stop "$name"
}
extra=("$@")
lossy_run lossy yes
lossy_run lossy-gbn no
echo "PASS verify"
