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
# "many": more flows than a daemon keeps sockets of their own ports for
# (63 per family) and than a context keeps such sockets for (71).
#   ib_write_bw -q 70 (the first message of each QP leaves from the
#   application), twice, more than a second apart: within each capture
#   one source port per sender and destination QP; the second run's
#   requests leave from at least 60 ports of their own (the first run's
#   idle sockets made room: udp_sport_evictions), not from the 8 shared
#   ones.  Then many_qps.py: 90 QPs one after another in one process on
#   each host, each sending an inline SEND itself; the sockets it bound
#   to their ports must close with them.
# usage: flow-port.sh udp|ipv6|many.  Needs root, tshark and dumpcap; exit
# 77 = skipped.
set -euo pipefail
MH_NAME=sp
. "$(dirname "$0")/mh-lib.sh"

mode=${1:?usage: flow-port.sh udp|ipv6|many}
command -v tshark >/dev/null || mh_skip "tshark not installed"
command -v dumpcap >/dev/null || mh_skip "dumpcap not installed"
case $mode in
udp | many) mh_up 2; gid=IPL_GID ip=ip ;;
ipv6) mh_up 2 --ipv6; gid=IPL_GID6 ip=ipv6 ;;
*) mh_fail "unknown mode '$mode'" ;;
esac

# flows CAPTURE OUT: per sender and destination QP, packets, requests
# (SEND_ONLY, RDMA WRITE_ONLY), ACKs and the source ports, a line each.
flows() {
	tshark -r "$1" -Y infiniband -T fields -e $ip.src \
		-e infiniband.bth.destqp -e udp.srcport -e infiniband.bth.opcode \
		2>/dev/null >"$MH_WORK/tuples"
	mh_log "$(wc -l <"$MH_WORK/tuples") RoCEv2 frames captured"
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
	}' "$MH_WORK/tuples" | sort >"$2"
}

# one_port FLOWS MIN: every flow has MIN requests and MIN ACKs or more,
# and one source port.
one_port() {
	awk -v min="$2" '{
		split($0, a, "source port ")
		np = split(a[2], p, " ")
		if ($6 < min || $8 < min) { print "too few requests or ACKs: " $0; bad = 1 }
		if (np != 1) { print "more than one source port: " $0; bad = 1 }
	}
	END { exit bad }' "$1" >&2 || mh_fail "a QP's packets left from more than one port"
}

if [[ $mode == many ]]; then
	src=$(mh_addr 1)
	for run in 1 2; do
		((run == 1)) || sleep 1.5    # > UDP_SPORT_IDLE: run 1's ports idle
		before=$(mh_counter 1 app_tx_pkts)
		evict=$(mh_counter 1 udp_sport_evictions)
		mh_dumpcap 1 "$MH_WORK/many$run.pcapng"
		perf="exec ib_write_bw -d \"\$IPL_DEV\" -x \"\$IPL_GID\" -F -p \$PORT -q 70 -n 20 -s 2"
		mh_pair "write_bw$run" 2 1 "$perf" "$perf \$SRV" || mh_fail "ib_write_bw -q 70"
		sleep 1
		mh_dumpcap_stop
		got=$(($(mh_counter 1 app_tx_pkts) - before))
		evict=$(($(mh_counter 1 udp_sport_evictions) - evict))
		mh_log "run $run: host 1's application sent $got messages itself; its daemon closed $evict idle port sockets"
		((got >= 64)) || mh_fail "run $run: the application sent only $got messages itself"
		flows "$MH_WORK/many$run.pcapng" "$MH_WORK/flows$run"
		nf=$(grep -c "^$src QP" "$MH_WORK/flows$run" || true)
		((nf == 70)) || mh_fail "run $run: $nf request flows from host 1, expected 70"
		one_port "$MH_WORK/flows$run" 0
		np=$(awk -v s="$src" '$1 == s { print $NF }' "$MH_WORK/flows$run" | sort -u | wc -l)
		mh_log "run $run: host 1's 70 request flows left from $np source ports"
		if ((run == 2)); then
			((evict >= 60)) || mh_fail "run 2: only $evict port sockets closed"
			((np >= 60)) || mh_fail "run 2: the flows left from only $np ports"
		fi
	done
	py="exec /usr/bin/python3 $MH_HERE/many_qps.py"
	mh_pair many_qps 2 1 "$py server - \$PORT 90" "$py client \$SRV \$PORT 90" ||
		mh_fail "many_qps.py"
	cat "$MH_WORK/many_qps.server" "$MH_WORK/many_qps.client" >&2
	mh_daemons_alive
	mh_log "PASS: one port per QP beyond the daemon's and the context's socket tables"
	exit 0
fi

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

flows "$wire" "$MH_WORK/flows"
cat "$MH_WORK/flows" >&2
# two tools, two directions each
flows=$(grep -c ' requests' "$MH_WORK/flows" || true)
((flows >= 4)) || mh_fail "$flows flows in the capture, expected at least 4"
one_port "$MH_WORK/flows" 10
awk '{ split($0, a, "source port "); if (a[2] + 0 < 49152) { print "source port below 0xC000: " $0; bad = 1 } }
END { exit bad }' "$MH_WORK/flows" >&2 || mh_fail "a QP's packets left from a port below 0xC000"
mh_daemons_alive
mh_log "PASS: every QP's requests and ACKs left from one source port"
