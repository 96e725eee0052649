#!/bin/bash
# ipathctl capture: the daemon writes what it sends and receives to a pcap
# file that tshark decodes as RoCEv2, with the right ICRCs.
#
#  1. two captures at once: A (everything) and B (--qp, one pingpong's QP)
#     while ibv_rc_pingpong, ib_write_bw and ib_read_bw run; Ctrl-C stops
#     them.  A: tshark's frame count equals ipathctl's, every frame is
#     InfiniBand, none malformed, SEND / WRITE / READ request / READ
#     response / ACK all present, both directions, every ICRC right
#     (tests/lab/icrc_check.py).  B: only the pingpong's two QPs, exactly
#     the frames of A that belong to them.  A holds exactly as many
#     packets as the daemon counted (pkts_sent + pkts_rcvd).
#  2. --count N ends the capture by itself with exactly N frames.
#  3. --duration with no traffic: a valid, empty capture.
#  4. ipathctl killed (SIGKILL) mid-capture: the daemon ends the capture
#     and the file it flushed is a valid capture.
#  5. a non-regular output file is refused with a clear error.
#  6. so is a user other than root and the daemon's (it would see every
#     client's data).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

command -v tshark >/dev/null || { echo "SKIP: tshark not installed"; exit 77; }
/usr/bin/python3 -c 'import scapy.contrib.roce' 2>/dev/null ||
	{ echo "SKIP: python3-scapy not installed for /usr/bin/python3"; exit 77; }

ipd_start d
ipd_env
dev=$(ipd_dev)
gid=$(ipd_gid_index)
sock=${IPD_SOCK[d]}

tsh() { tshark -r "$1" --disable-protocol rpcordma \
	-o udp.ignore_ipv6_zero_checksum:TRUE "${@:2}" 2>/dev/null; }
frames() { tsh "$@" | wc -l; }

# cap_start NAME FILE [ipathctl capture options]: ipathctl in the background;
# returns once the daemon confirmed the capture.
declare -A CAP_PID=()
cap_start() {
	local name=$1 file=$2 i
	shift 2
	"$IPD_CTL" --socket "$sock" capture "$file" "$@" \
		>"$IPD_TMP/cap.$name.out" 2>"$IPD_TMP/cap.$name.err" &
	CAP_PID[$name]=$!
	IPD_BG_PIDS+=("${CAP_PID[$name]}")
	for ((i = 0; i < 100; i++)); do
		grep -qs '^ipathctl: capturing' "$IPD_TMP/cap.$name.err" && return 0
		ipd_running "${CAP_PID[$name]}" || break
		sleep 0.1
	done
	cat "$IPD_TMP/cap.$name.err" >&2
	ipd_fail "capture $name did not start"
}

# cap_wait NAME: wait (bounded) for ipathctl to exit 0; CAP_N = the packet
# count it reported.
cap_wait() {
	local name=$1 rc=0
	timeout 30 tail --pid="${CAP_PID[$name]}" -f /dev/null ||
		ipd_fail "capture $name did not end"
	wait "${CAP_PID[$name]}" || rc=$?
	[[ $rc -eq 0 ]] || {
		cat "$IPD_TMP/cap.$name.err" >&2
		ipd_fail "ipathctl capture $name exited with $rc"
	}
	CAP_N=$(awk '/packets .* captured to/ { print $1 }' "$IPD_TMP/cap.$name.out")
	[[ $CAP_N =~ ^[0-9]+$ ]] || ipd_fail "capture $name reported no count"
}

# cap_stop NAME: Ctrl-C, then cap_wait.
cap_stop() {
	kill -INT "${CAP_PID[$1]}"
	cap_wait "$1"
}

# ---- 1. everything vs. one QP, three tools ---------------------------------

# counter NAME: the daemon's counter (ipathctl omits zeros)
counter() { ipd_ctl counters | awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'; }

capA=$IPD_TMP/all.pcap
capB=$IPD_TMP/qp.pcap
pkts0=$(($(counter pkts_sent) + $(counter pkts_rcvd)))
cap_start A "$capA"

# The pingpong server prints its QPN before it waits for the client.
port=$(ipd_port)
ipd_run stdbuf -oL ibv_rc_pingpong -d "$dev" -g "$gid" -p "$port" -n 50 -s 4096 \
	>"$IPD_TMP/pp.server" 2>&1 &
spid=$!
IPD_BG_PIDS+=("$spid")
ipd_wait_listen "$port" "$spid" || ipd_fail "pingpong server did not start"
qpn_of() { awk '/local address/ { for (i = 1; i < NF; i++) if ($i == "QPN") { sub(",", "", $(i + 1)); print $(i + 1); exit } }' "$1"; }
sqpn=$(qpn_of "$IPD_TMP/pp.server")
[[ $sqpn =~ ^0x[0-9a-f]+$ ]] || ipd_fail "no QPN from the pingpong server"
cap_start B "$capB" --qp "$sqpn"
ipd_run ibv_rc_pingpong -d "$dev" -g "$gid" -p "$port" -n 50 -s 4096 127.0.0.1 \
	>"$IPD_TMP/pp.client" 2>&1 || { cat "$IPD_TMP/pp.client" >&2; ipd_fail "pingpong client"; }
wait "$spid" || { cat "$IPD_TMP/pp.server" >&2; ipd_fail "pingpong server"; }
cqpn=$(qpn_of "$IPD_TMP/pp.client")
ipd_log "pingpong QPs: server $sqpn, client $cqpn"

for t in ib_write_bw ib_read_bw; do
	port=$(ipd_port)
	args="-d $dev -i 1 -x $gid -F -p $port -n 50 -s 65536"
	run_pair "$port" "$t $args" "$t $args 127.0.0.1" || ipd_fail "$t"
done

cap_stop B
nB=$CAP_N
cap_stop A
nA=$CAP_N
pkts=$(($(counter pkts_sent) + $(counter pkts_rcvd) - pkts0))
ipd_log "ipathctl reported $nA packets (all), $nB packets (QP $sqpn); the daemon counted $pkts"
[[ $nA -eq $pkts ]] || ipd_fail "capture A holds $nA packets, the daemon sent and received $pkts"

fA=$(frames "$capA")
[[ $fA -eq $nA && $nA -gt 0 ]] || ipd_fail "capture A: tshark reads $fA frames, ipathctl said $nA"
not_ib=$(frames "$capA" -Y '!infiniband')
malformed=$(frames "$capA" -Y '_ws.malformed || _ws.expert.severity >= 8388608')
[[ $not_ib -eq 0 ]] || { tsh "$capA" -Y '!infiniband' | head >&2; ipd_fail "$not_ib frames not decoded as InfiniBand"; }
[[ $malformed -eq 0 ]] || { tsh "$capA" -Y '_ws.malformed || _ws.expert.severity >= 8388608' | head >&2; ipd_fail "$malformed malformed frames"; }

# BTH opcodes (IBA table 39, RC): SEND 0-5, RDMA WRITE 6-11, READ request
# 12, READ response 13-16, ACK 17.
tsh "$capA" -T fields -e infiniband.bth.opcode | sort -n | uniq -c >"$IPD_TMP/opcodes"
cat "$IPD_TMP/opcodes" >&2
opcount() { awk -v lo="$1" -v hi="$2" '$2 >= lo && $2 <= hi { n += $1 } END { print n + 0 }' "$IPD_TMP/opcodes"; }
for r in "SEND 0 5" "WRITE 6 11" "READ_REQUEST 12 12" "READ_RESPONSE 13 16" "ACK 17 17"; do
	read -r name lo hi <<<"$r"
	n=$(opcount "$lo" "$hi")
	ipd_log "  $name: $n"
	[[ $n -gt 0 ]] || ipd_fail "no $name packets in the capture"
done
# Both directions (cooked header: 0 to us, 4 sent by us); on the loopback
# link each packet is seen leaving and arriving.
tx=$(frames "$capA" -Y 'sll.pkttype == 4')
rx=$(frames "$capA" -Y 'sll.pkttype == 0')
ipd_log "sent $tx, received $rx"
[[ $tx -gt 0 && $rx -gt 0 && $((tx + rx)) -eq $fA ]] || ipd_fail "directions: sent $tx + received $rx != $fA"
/usr/bin/python3 "$IPD_SRC/tests/lab/icrc_check.py" --min "$fA" "$capA" >&2 ||
	ipd_fail "capture A: bad ICRCs"

# B: the pingpong's QPs only, and all of A's frames for them.
fB=$(frames "$capB")
[[ $fB -eq $nB && $nB -gt 0 ]] || ipd_fail "capture B: tshark reads $fB frames, ipathctl said $nB"
qpfilter="infiniband.bth.destqp == $sqpn || infiniband.bth.destqp == $cqpn"
others=$(frames "$capB" -Y "!($qpfilter)")
[[ $others -eq 0 ]] || ipd_fail "capture B (--qp $sqpn) holds $others frames of other QPs"
inA=$(frames "$capA" -Y "$qpfilter")
[[ $inA -eq $fB ]] || ipd_fail "capture B has $fB frames, A has $inA for QPs $sqpn/$cqpn"
/usr/bin/python3 "$IPD_SRC/tests/lab/icrc_check.py" --min "$fB" "$capB" >&2 ||
	ipd_fail "capture B: bad ICRCs"

# ---- 2. --count ends it ----------------------------------------------------------

capC=$IPD_TMP/count.pcap
cap_start C "$capC" --count 10
port=$(ipd_port)
run_pair "$port" "ibv_rc_pingpong -d $dev -g $gid -p $port -n 50" \
	"ibv_rc_pingpong -d $dev -g $gid -p $port -n 50 127.0.0.1" || ipd_fail "pingpong (count)"
cap_wait C
nC=$CAP_N
fC=$(frames "$capC")
[[ $nC -eq 10 && $fC -eq 10 ]] || ipd_fail "--count 10: ipathctl $nC, tshark $fC"

# ---- 3. --duration, nothing sent: a valid empty capture -------------------------

capD=$IPD_TMP/empty.pcap
cap_start D "$capD" --duration 0.5
cap_wait D
nD=$CAP_N
tshark -r "$capD" >/dev/null 2>&1 || ipd_fail "empty capture is not readable"
[[ $nD -eq 0 && $(frames "$capD") -eq 0 ]] || ipd_fail "idle capture holds $nD packets"

# ---- 4. ipathctl killed: the daemon ends the capture, the file is valid ----------

capE=$IPD_TMP/killed.pcap
cap_start E "$capE"
port=$(ipd_port)
run_pair "$port" "ibv_rc_pingpong -d $dev -g $gid -p $port -n 20" \
	"ibv_rc_pingpong -d $dev -g $gid -p $port -n 20 127.0.0.1" || ipd_fail "pingpong (kill)"
ended_before=$(grep -c 'capture for client .* ended' "${IPD_DIR[d]}/daemon.log" || true)
kill -KILL "${CAP_PID[E]}"
{ wait "${CAP_PID[E]}"; } 2>/dev/null || true
for ((i = 0; i < 50; i++)); do
	[[ $(grep -c 'capture for client .* ended' "${IPD_DIR[d]}/daemon.log") -gt $ended_before ]] && break
	sleep 0.1
done
((i < 50)) || ipd_fail "the daemon did not end the capture of a killed ipathctl"
fE=$(frames "$capE")
[[ $fE -gt 0 ]] || ipd_fail "killed capture: no frames"
[[ $(frames "$capE" -Y '_ws.malformed') -eq 0 ]] || ipd_fail "killed capture: malformed frames"
ipd_log "killed capture: $fE frames"

# ---- 5. refused: output that is not a regular file -------------------------------

if out=$(timeout 10 "$IPD_CTL" --socket "$sock" capture /dev/null --duration 1 2>&1); then
	ipd_fail "capture to /dev/null was accepted"
fi
grep -q 'regular file' <<<"$out" || ipd_fail "capture to /dev/null: unclear error: $out"

# ---- 6. refused: a user that is neither root nor the daemon's ---------------------

if command -v setpriv >/dev/null && [[ $(id -u) -eq 0 ]]; then
	chmod 755 "$IPD_TMP" "${IPD_DIR[d]}"
	mkdir -m 1777 "$IPD_TMP/nobody"
	if out=$(timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$IPD_CTL" --socket "$sock" capture "$IPD_TMP/nobody/x.pcap" --duration 1 2>&1); then
		ipd_fail "an unprivileged user was allowed to capture"
	fi
	grep -q 'only root' <<<"$out" || ipd_fail "unprivileged capture: unclear error: $out"
	ipd_log "unprivileged capture refused: $out"
fi

ipd_alive || ipd_fail "daemon died"
ipd_stop
echo "PASS capture"
