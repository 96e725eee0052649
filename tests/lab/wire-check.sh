#!/bin/bash
# SPDX-License-Identifier: MIT
#
# wire-check.sh: is what ipathd puts on the wire RoCEv2 that others accept?
#
# In a 2-node lab (ipathd-lab.sh) capture host 1's eth0 with dumpcap while
# verbs tools run between the hosts, then check from outside the daemon:
#   1. tshark decodes every UDP/4791 frame as InfiniBand (RRoCE), with no
#      malformed packet (rpcordma's heuristic disabled, see FACTS.md);
#   2. icrc_check.py (scapy's RoCE layer + a reference computation) finds
#      the right ICRC on every captured RoCEv2 packet;
#   3. multi-packet messages left as UDP GSO datagrams (the daemons'
#      udp_gso_sends counters) and, on IPv4, their segments are on the
#      wire with IP IDs 1, 2.. and right ICRCs: the lab runs with --cut-gso,
#      so the kernel cuts the datagrams as they leave each host.
# It prints the opcodes seen (SEND, WRITE, READ request/response, atomics,
# ACK/NAK) so a reader can tell which packet types were covered.
#
#   tests/lab/wire-check.sh [--ipv6] [--out DIR] [--strict] [TOOL...]
#
# TOOL is any of rc rc_small uc ud srq xsrq send_bw write_bw write_small read_bw
# read_small atomic_bw lossy (default: all; *_small use 64-byte messages for
# the *_ONLY opcodes, lossy runs rc/write_bw/read_bw with 3 % loss both ways
# for NAKs and retransmissions).  A tool that fails is reported; with --strict it fails the check,
# otherwise only the wire checks decide (they need at least one packet).
# --out keeps the capture and logs in DIR.  Needs root, dumpcap, tshark,
# /usr/bin/python3 with scapy.  Exit 0 = wire clean, 77 = skipped.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$HERE/ipathd-lab.sh
# A private lab per run: concurrent runs (meson, a developer) never meet.
export IPL_PREFIX=${IPL_PREFIX:-iw$$}
export IPL_SUBNET=${IPL_SUBNET:-10.78.0}
export IPL_STATE=${IPL_STATE:-/run/ipathd-lab/$IPL_PREFIX}
TOOL_TIMEOUT=${TOOL_TIMEOUT:-60}

v6=0 strict=0 out=
tools=()
while (($#)); do
	case $1 in
	--ipv6) v6=1 ;;
	--strict) strict=1 ;;
	--out) out=${2:?}; shift ;;
	-h | --help) sed -n '4,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) tools+=("$1") ;;
	esac
	shift
done
((${#tools[@]})) || tools=(rc rc_small uc ud srq xsrq send_bw write_bw write_small
			    read_bw read_small atomic_bw lossy)

log() { printf '[wire-check %s] %s\n' "$(date +%T)" "$*" >&2; }
skip() { log "SKIP: $*"; exit 77; }

[[ $(id -u) == 0 ]] || skip "needs root"
for t in dumpcap tshark /usr/bin/python3; do
	command -v "$t" >/dev/null || skip "$t not installed"
done
/usr/bin/python3 -c 'import scapy.contrib.roce' 2>/dev/null ||
	skip "python3-scapy not installed for /usr/bin/python3"

work=${out:-$(mktemp -d /tmp/wire-check.XXXXXX)}
mkdir -p "$work"
cap=$work/wire.pcapng
cap_pid=
lab_up=0

cleanup() {
	local rc=$?
	if [[ -n $cap_pid ]]; then
		kill -INT "$cap_pid" 2>/dev/null || true
		wait "$cap_pid" 2>/dev/null || true
	fi
	# only our own lab: "up" refuses (and leaves alone) an existing one
	((lab_up)) && { "$LAB" down || true; rm -rf "$IPL_STATE"; }
	[[ -z $out ]] && rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT

up_args=(up 2 --cut-gso)
((v6)) && up_args+=(--ipv6)
lab_up=1
"$LAB" "${up_args[@]}" || { lab_up=0; exit 1; }

# The tools' TCP exchange stays on IPv4 (their servers listen on IPv4);
# the GID index decides the RoCE traffic's family.
server_addr=$("$LAB" addr 2)
gid_var=IPL_GID
((v6)) && gid_var=IPL_GID6

# ---- capture --------------------------------------------------------------

# Bounded: a retransmission storm must not become a capture that takes
# tshark minutes (the checks need a sample of every packet type, not all).
CAP_MAX_FRAMES=${CAP_MAX_FRAMES:-500000}
ip netns exec "${IPL_PREFIX}1" dumpcap -q -i eth0 -f 'udp port 4791' \
	-c "$CAP_MAX_FRAMES" -w "$cap" >"$work/dumpcap.log" 2>&1 &
cap_pid=$!
for ((i = 0; i < 100; i++)); do
	[[ -s $cap ]] && break
	kill -0 "$cap_pid" 2>/dev/null || { cat "$work/dumpcap.log" >&2; exit 1; }
	sleep 0.1
done

# ---- traffic ----------------------------------------------------------------

# wait_listen HOST PORT PID: bounded wait for a TCP listener in host's ns.
wait_listen() {
	local i
	for ((i = 0; i < 100; i++)); do
		ip netns exec "${IPL_PREFIX}$1" ss -Hltn "sport = :$2" |
			grep -q . && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# pair NAME PORT SERVER_ARGS... -- CLIENT_EXTRA...: the tool runs as
# server on host 2 and as client on host 1 (which adds server_addr).
pair() {
	local name=$1 port=$2 spid src=0 crc=0
	shift 2
	local cmd=()
	while (($#)) && [[ $1 != -- ]]; do cmd+=("$1"); shift; done
	shift || true
	"$LAB" exec 2 timeout -k 5 "$TOOL_TIMEOUT" sh -c \
		'exec "$0" -g "$'"$gid_var"'" "$@"' "${cmd[@]}" \
		>"$work/$name.server" 2>&1 &
	spid=$!
	if ! wait_listen 2 "$port" "$spid"; then
		wait "$spid" 2>/dev/null || true
		log "$name: server did not start"; results+=("$name:FAIL")
		return 0
	fi
	"$LAB" exec 1 timeout -k 5 "$TOOL_TIMEOUT" sh -c \
		'exec "$0" -g "$'"$gid_var"'" "$@"' "${cmd[@]}" "$@" "$server_addr" \
		>"$work/$name.client" 2>&1 || crc=$?
	wait "$spid" || src=$?
	if ((src || crc)); then
		log "$name: FAILED (server $src, client $crc); logs in $work"
		results+=("$name:FAIL")
	else
		log "$name: ok"
		results+=("$name:ok")
	fi
}

# perftest takes the GID index as -x, not -g: wrap it.
perf() {
	local name=$1 tool=$2 port=$3
	shift 3
	command -v "$tool" >/dev/null || { results+=("$name:absent"); return 0; }
	local spid src=0 crc=0
	"$LAB" exec 2 timeout -k 5 "$TOOL_TIMEOUT" sh -c \
		'exec "$0" -x "$'"$gid_var"'" "$@"' "$tool" -p "$port" "$@" \
		>"$work/$name.server" 2>&1 &
	spid=$!
	if ! wait_listen 2 "$port" "$spid"; then
		wait "$spid" 2>/dev/null || true
		log "$name: server did not start"; results+=("$name:FAIL")
		return 0
	fi
	"$LAB" exec 1 timeout -k 5 "$TOOL_TIMEOUT" sh -c \
		'exec "$0" -x "$'"$gid_var"'" "$@"' "$tool" -p "$port" "$@" \
		"$server_addr" >"$work/$name.client" 2>&1 || crc=$?
	wait "$spid" || src=$?
	if ((src || crc)); then
		log "$name: FAILED (server $src, client $crc); logs in $work"
		results+=("$name:FAIL")
	else
		log "$name: ok"
		results+=("$name:ok")
	fi
}

results=()
port=18600
for t in "${tools[@]}"; do
	port=$((port + 1))
	case $t in
	rc | uc | srq)
		pair "$t" "$port" "ibv_${t}_pingpong" -p "$port" -n 200 -s 4000 ;;
	rc_small)
		pair "$t" "$port" ibv_rc_pingpong -p "$port" -n 100 -s 64 ;;
	ud)
		pair ud "$port" ibv_ud_pingpong -p "$port" -n 200 -s 512 ;;
	xsrq)	# XRC: XRCETH on every request, XRC ACKNOWLEDGE back
		pair xsrq "$port" ibv_xsrq_pingpong -p "$port" -n 100 -s 4000 ;;
	send_bw | write_bw | read_bw | atomic_bw)
		perf "$t" "ib_$t" "$port" -n 200 ;;
	write_small | read_small)
		perf "$t" "ib_${t%_small}_bw" "$port" -n 100 -s 64 ;;
	lossy)
		"$LAB" netem 1 loss 3%
		"$LAB" netem 2 loss 3%
		pair lossy_rc "$port" ibv_rc_pingpong -p "$port" -n 300 -s 4000
		port=$((port + 1))
		perf lossy_write_bw ib_write_bw "$port" -n 300
		port=$((port + 1))
		perf lossy_read_bw ib_read_bw "$port" -n 200 -s 16384
		"$LAB" netem 1 off
		"$LAB" netem 2 off
		;;
	*) log "unknown tool $t"; exit 2 ;;
	esac
done

sleep 0.5
kill -INT "$cap_pid" 2>/dev/null || true
wait "$cap_pid" 2>/dev/null || true
cap_pid=

# ---- checks -------------------------------------------------------------------

tsh=(tshark -r "$cap" --disable-protocol rpcordma
     -o udp.ignore_ipv6_zero_checksum:TRUE)
fail=0
total=$("${tsh[@]}" -Y 'udp.dstport == 4791' 2>/dev/null | wc -l)
not_ib=$("${tsh[@]}" -Y 'udp.dstport == 4791 && !infiniband' 2>/dev/null | wc -l)
malformed=$("${tsh[@]}" -Y '_ws.malformed || _ws.expert.severity >= 8388608' \
	2>/dev/null | wc -l)
log "captured $total RoCEv2 frames; $not_ib not decoded as InfiniBand; $malformed malformed/error"
((total < CAP_MAX_FRAMES)) ||
	log "capture stopped at $CAP_MAX_FRAMES frames (CAP_MAX_FRAMES): a storm?"
if ((total == 0)); then
	log "FAIL: nothing captured"
	fail=1
fi
if ((not_ib || malformed)); then
	"${tsh[@]}" -Y '(udp.dstport == 4791 && !infiniband) || _ws.malformed || _ws.expert.severity >= 8388608' \
		2>/dev/null | head -20 >&2
	fail=1
fi
# IBA table 39 (RC 0x00.., UC 0x20.., UD 0x60.., XRC 0xa0..)
opcode_names() {
	awk 'BEGIN {
		split("SEND_FIRST SEND_MIDDLE SEND_LAST SEND_LAST_IMM SEND_ONLY SEND_ONLY_IMM WRITE_FIRST WRITE_MIDDLE WRITE_LAST WRITE_LAST_IMM WRITE_ONLY WRITE_ONLY_IMM READ_REQUEST READ_RESP_FIRST READ_RESP_MIDDLE READ_RESP_LAST READ_RESP_ONLY ACK ATOMIC_ACK CMP_SWAP FETCH_ADD RESV SEND_LAST_INV SEND_ONLY_INV", n, " ")
		for (i = 1; i <= 24; i++) name[i - 1] = n[i]
	}
	{
		op = $2 + 0; cls = int(op / 32); o = op % 32
		c = cls == 0 ? "RC" : cls == 1 ? "UC" : cls == 3 ? "UD" : cls == 5 ? "XRC" : "?"
		printf "  %7d  %s %s (%d)\n", $1, c, (o in name) ? name[o] : "?", op
	}'
}
log "opcodes seen (count, transport, BTH opcode):"
"${tsh[@]}" -Y infiniband -T fields -e infiniband.bth.opcode 2>/dev/null |
	sort -n | uniq -c | opcode_names >&2 || true
log "AETH syndromes (0x00-0x1f ACK, 0x20-0x3f RNR NAK, 0x60-0x63 NAK):"
"${tsh[@]}" -Y infiniband.aeth -T fields -e infiniband.aeth.syndrome 2>/dev/null |
	sort | uniq -c | sed 's/^/  /' >&2 || true
gso_sends=0 gso_pkts=0
for h in 1 2; do
	c=$("$LAB" ctl "$h" counters 2>/dev/null | awk '
		$1 == "udp_gso_sends" { s = $2 } $1 == "udp_gso_pkts" { p = $2 }
		END { print s + 0, p + 0 }')
	gso_sends=$((gso_sends + ${c% *})) gso_pkts=$((gso_pkts + ${c#* }))
done
log "the daemons sent $gso_pkts packets in $gso_sends GSO datagrams"
if ((gso_sends == 0)); then
	log "FAIL: no GSO datagram was sent (udp_gso is on by default)"
	fail=1
fi
min_id=1
((v6)) && min_id=0     # IPv6 has no identification field
if ! /usr/bin/python3 "$HERE/icrc_check.py" --min 1 --min-id "$min_id" \
	"$cap" >&2; then
	log "FAIL: bad ICRCs or no GSO segments (frames listed above)"
	fail=1
fi

log "tools: ${results[*]}"
if ((strict)) && [[ " ${results[*]} " == *:FAIL* ]]; then
	fail=1
fi
if ((fail)); then
	log "wire check FAILED (capture kept in ${out:-a temporary dir, use --out})"
	exit 1
fi
log "wire check passed"
exit 0
