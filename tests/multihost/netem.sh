#!/bin/bash
# The data verifier (tests/verify.c, two processes) between two hosts:
# every QP type and opcode plainly (IPv4 and IPv6 GIDs), and every RC
# opcode (with and without SRQ) while both hosts' egress is
# impaired (tc netem, or tests/lab/ipl_netem.c on kernels without
# sch_netem): every byte right, immediates right, atomics exact (each
# returned value and the final one), no extra completion (nothing
# delivered twice).  Then the daemons' counters must show that the
# impairment was met: retransmissions after loss, duplicate requests
# after duplication, ICRC or UDP checksum drops after corruption.
# Between two ipathd daemons recovery is selective (daemon/ooo.c): the
# lossy and reordering profiles also check that out-of-order packets were
# kept; loss1-gbn runs loss1 with host 2's daemon not advertising it
# (--selective-retransmit no), so both directions go back N, and with
# host 2's clients sending nothing themselves (--app-tx no: app_tx_pkts
# must stay 0 there).  Every profile runs with application transmit on
# (--app-tx yes, docs/design.md "Application transmit": clients send RC
# single-packet SENDs and WRITEs themselves whenever their QP is idle);
# how many go that way depends on timing (tools.sh checks the latency
# tests, where every message does).
# usage: netem.sh PROFILE [VERIFY]
#   PROFILE: none loss1 loss1-gbn loss10 reorder duplicate corrupt delay,
#   or ipv6: no impairment, every QP type (RC, UC, UD) over the hosts'
#   IPv6 GIDs, or packet / packet_cut: no impairment, every QP type, both
#   daemons receive IPv4 through a packet socket (udp_rx = packet: the
#   ICRC is checked over the IP header as it arrived) from a peer that
#   sends multi-packet messages as UDP GSO datagrams (the default): packet
#   gets them uncut from veth and bridge and cuts them itself, packet_cut
#   (lab up --cut-gso) gets the kernel's segments with IPv4 IDs 1, 2..
# Needs root; exit 77 = skipped.
set -euo pipefail
MH_NAME=n
. "$(dirname "$0")/mh-lib.sh"

profile=${1:?usage: netem.sh PROFILE [VERIFY]}
verify=${2:-$IPATHD_BUILD_DIR/tests/verify}
[[ -x $verify ]] || mh_fail "$verify is not executable"

# impairment, verify options, counter that must rise ("HOST:NAME ...")
case $profile in
none)      imp=;                     vo="--iters 20";                      must="" ;;
ipv6)      imp=;                     vo="--iters 10";                      must="" ;;
loss1)     imp="loss 1%";            vo="--iters 10 --max-size 262144";    must="1:retransmits 2:ooo_held 1:selective_resends" ;;
loss1-gbn) imp="loss 1%";            vo="--iters 10 --max-size 262144";    must="1:retransmits" ;;
loss10)    imp="loss 10%";           vo="--iters 5 --max-size 65536";      must="1:retransmits 2:ooo_held 1:selective_resends" ;;
# READ responses are placed in any order and only missing ones are asked
# for again, so READ recovers on reordering paths too.
# reordered requests are kept, not dropped
reorder)   imp="delay 2ms reorder 25%"; vo="--iters 8 --max-size 262144";  must="2:ooo_held" ;;
duplicate) imp="duplicate 10%";      vo="--iters 8 --max-size 262144";     must="2:dup_requests" ;;
corrupt)   imp="corrupt 5%";         vo="--iters 8 --max-size 262144";     must="1:corrupt_drops 2:corrupt_drops" ;;
delay)     imp="delay 5ms 2ms";      vo="--iters 5 --max-size 262144";     must="" ;;
packet | packet_cut)
	   imp=;                     vo="--iters 10 --max-size 262144";
	   must="1:udp_gso_sends 2:udp_gso_sends" ;;
*) mh_fail "unknown profile '$profile'" ;;
esac

gidopt= types="--type rc" want=10
# without impairment every QP type (UC and UD lose messages on a lossy link)
[[ $profile == none || $profile == packet* ]] && types= want=28
# XRC is reliable like RC: every opcode under loss in one profile
[[ $profile == loss1 || $profile == loss1-gbn ]] && types="--type rc,xrc" want=17
if [[ $profile == ipv6 ]]; then
	mh_up 2 --ipv6 -- --app-tx yes
	# every QP type; RoCE v2 over IPv6 (the side channel stays on IPv4)
	gidopt='-g "$IPL_GID6"' types= want=28
elif [[ $profile == packet ]]; then
	mh_up 2 -- --udp-rx packet --app-tx yes
elif [[ $profile == packet_cut ]]; then
	mh_up 2 --cut-gso -- --udp-rx packet --app-tx yes
else
	mh_up 2 -- --app-tx yes
fi
if [[ $profile == packet* ]]; then
	for k in 1 2; do
		grep -q 'received through a packet socket' "$IPL_STATE/host$k/ipathd.log" ||
			mh_fail "host $k does not receive through a packet socket"
	done
fi
if [[ $profile == loss1-gbn ]]; then
	"$LAB" daemon 2 restart -- --selective-retransmit no --app-tx no ||
		mh_fail "restart host 2's daemon without selective recovery"
	mh_log "host 2: selective_retransmit = no, app_tx = no"
fi
declare -A before=()
# counter K NAME: the daemon's counter NAME, or corrupt_drops (see
# ipathd-lab.sh corrupt-drops: ICRC and UDP checksum drops).
counter() {
	if [[ $2 == corrupt_drops ]]; then
		"$LAB" corrupt-drops "$1"
	else
		mh_counter "$1" "$2"
	fi
}
for m in $must; do
	before[$m]=$(counter "${m%%:*}" "${m#*:}")
done
if [[ -n $imp ]]; then
	# shellcheck disable=SC2086
	"$LAB" netem 1 $imp && "$LAB" netem 2 $imp || mh_fail "netem $imp"
	mh_log "both hosts' egress: $imp"
fi

t0=$SECONDS
# the side channel crosses the impaired link too: generous waits
# shellcheck disable=SC2086
mh_pair "verify-$profile" 2 1 \
	"exec $verify --server \$PORT --wait 300 $gidopt" \
	"exec $verify --client \$SRV:\$PORT --wait 300 --all $types $vo $gidopt" || {
	[[ -n $imp ]] && { "$LAB" netem 1 off; "$LAB" netem 2 off; }
	for k in 1 2; do mh_log "host $k counters:"; "$LAB" ctl "$k" counters >&2 || true; done
	mh_fail "verify under '${imp:-no impairment}'"
}
[[ -n $imp ]] && { "$LAB" netem 1 off; "$LAB" netem 2 off; }
grep -h '^\(PASS\|FAIL\)' "$MH_LAST.client" >&2
n=$(grep -c '^PASS' "$MH_LAST.client")
((n >= want)) || mh_fail "only $n combinations passed (expected $want)"
grep -q '^verify: server all passed' "$MH_LAST.server" ||
	mh_fail "the server side did not report success"

for m in $must; do
	after=$(counter "${m%%:*}" "${m#*:}")
	mh_log "host ${m%%:*} ${m#*:}: ${before[$m]} -> $after"
	((after > before[$m])) ||
		mh_fail "host ${m%%:*}: ${m#*:} did not rise under '$imp': was the impairment met?"
done
if [[ $profile == packet* ]]; then
	# nothing dropped: every GSO segment had the ICRC for its IP ID
	for k in 1 2; do
		for c in drop_icrc drop_malformed; do
			v=$(mh_counter "$k" "$c")
			((v == 0)) || mh_fail "host $k: $c = $v"
		done
	done
fi
if [[ $profile == loss1-gbn ]]; then
	# neither side kept a packet nor resent one alone
	for k in 1 2; do
		for c in ooo_held selective_resends; do
			((0 == $(mh_counter "$k" "$c"))) ||
				mh_fail "host $k: $c rose although host 2 does not advertise selective recovery"
		done
	done
	# host 2's daemon never let its clients send (app_tx = no)
	((0 == $(mh_counter 2 app_tx_pkts))) ||
		mh_fail "host 2: app_tx_pkts rose with app_tx = no"
	"$LAB" ctl 1 status | grep -E 'features=0x[0-9a-f]+' >&2 || true
fi
mh_daemons_alive
[[ -z $gidopt ]] || grep -q 'GID fd77::' "$MH_LAST.client" ||
	mh_fail "the client did not talk to the server's IPv6 GID"
echo "PASS multihost verify ${types:-all types} under '${imp:-no impairment}' ($n combinations, $((SECONDS - t0)) s)"
