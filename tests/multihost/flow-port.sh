#!/bin/bash
# One UDP source port per QP on the wire, whoever sends the packet.  With
# application transmit (docs/design.md) a latency tool's requests leave
# from the application's socket and its ACKs from the daemon's: both must
# carry the QP's source port (0xC000 | flow bits, IBA A17.2.1's entropy),
# or a network that hashes flows onto paths (ECMP) may send a QP's packets
# down two paths and reorder them.
#   ib_send_lat and ib_write_lat 2 B between host 1 and host 2 while
#   dumpcap captures host 1's eth0; the applications must have sent nearly
#   every message themselves (app_tx_pkts), and for every sender and
#   destination QP in the capture, requests (SEND_ONLY or RDMA WRITE_ONLY)
#   and ACKs both, all with one source port of at least 0xC000.
# usage: flow-port.sh udp|ipv6.  Needs root, tshark and dumpcap; exit 77 =
# skipped.
set -euo pipefail
MH_NAME=sp
. "$(dirname "$0")/mh-lib.sh"

mode=${1:?usage: flow-port.sh udp|ipv6}
command -v tshark >/dev/null || mh_skip "tshark not installed"
command -v dumpcap >/dev/null || mh_skip "dumpcap not installed"
case $mode in
udp) mh_up 2; gid=IPL_GID ip=ip ;;
ipv6) mh_up 2 --ipv6; gid=IPL_GID6 ip=ipv6 ;;
*) mh_fail "unknown mode '$mode'" ;;
esac

wire=$MH_WORK/wire.pcapng
mh_dumpcap 1 "$wire"

n=200
for t in ib_send_lat ib_write_lat; do
	for k in 1 2; do before[k]=$(mh_counter "$k" app_tx_pkts); done
	perf="exec $t -d \"\$IPL_DEV\" -x \"\$$gid\" -F -p \$PORT -n $n -s 2"
	mh_pair "$t" 2 1 "$perf" "$perf \$SRV" || mh_fail "$t"
	for k in 1 2; do
		got=$(($(mh_counter "$k" app_tx_pkts) - before[k]))
		mh_log "$t: host $k's application sent $got of $n messages"
		((got * 100 >= n * 95)) ||
			mh_fail "$t: host $k's application sent only $got of $n itself"
	done
done
# the last ACKs are on their way when the tools exit
sleep 1
mh_dumpcap_stop

tshark -r "$wire" -Y infiniband -T fields -e $ip.src \
	-e infiniband.bth.destqp -e udp.srcport -e infiniband.bth.opcode \
	2>/dev/null >"$MH_WORK/tuples"
mh_log "$(wc -l <"$MH_WORK/tuples") RoCEv2 frames captured"
# per sender and destination QP: packets, requests, ACKs, source ports
awk '{
	k = $1 " QP " $2
	n[k]++
	if ($4 == 4 || $4 == 10) req[k]++
	if ($4 == 17) ack[k]++
	if (!((k, $3) in seen)) { seen[k, $3] = 1; ports[k] = ports[k] " " $3 }
}
END {
	for (k in n)
		printf "%s: %d packets, %d requests, %d ACKs, source port%s\n",
			k, n[k], req[k], ack[k], ports[k]
}' "$MH_WORK/tuples" | sort >"$MH_WORK/flows"
cat "$MH_WORK/flows" >&2
# two tools, two directions each
flows=$(grep -c ' requests' "$MH_WORK/flows" || true)
((flows >= 4)) || mh_fail "$flows flows in the capture, expected at least 4"
awk '{
	split($0, a, "source port ")
	np = split(a[2], p, " ")
	if ($6 < 10 || $8 < 10) { print "too few requests or ACKs: " $0; bad = 1 }
	if (np != 1) { print "more than one source port: " $0; bad = 1 }
	else if (p[1] < 49152) { print "source port below 0xC000: " $0; bad = 1 }
}
END { exit bad }' "$MH_WORK/flows" >&2 || mh_fail "a QP's packets left from more than its own port"
mh_daemons_alive
mh_log "PASS: every QP's requests and ACKs left from one source port"
