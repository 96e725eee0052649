#!/bin/bash
# ipathctl capture across hosts: host 1's daemon captures while
# ibv_rc_pingpong, ib_write_bw and ib_read_bw run between host 1 and
# host 2.  The capture must hold exactly the packets host 1's daemon
# counted (pkts_sent + pkts_rcvd), all decoded by tshark as InfiniBand, none
# malformed, with right ICRCs (tests/lab/icrc_check.py).
#   udp:    dumpcap also captures host 1's eth0, and the daemon's frames
#           must be the wire's: same addresses, IPv4 ID, UDP source port,
#           DestQP, PSN, opcode and ICRC, frame for frame (so the
#           synthesized headers are the real ones and the ICRC of received
#           packets is the one that was on the wire).  Multi-packet
#           messages leave as UDP GSO datagrams (on by default; counted in
#           udp_gso_sends), cut by the kernel as they leave each host (lab
#           up --cut-gso), so their later segments carry IPv4 IDs 1, 2..:
#           both captures must hold such frames.
#   ipv6:   udp with the hosts' IPv6 GIDs (IPv6 headers, UDP checksum).
#   fabric: the same over --link fabric (tcp;ofi_rxm), where no IP/UDP
#           wire exists: the frames are synthesized from the fabric
#           header's addresses.
# usage: capture.sh udp|ipv6|fabric.  Needs root, tshark (and dumpcap for udp);
# exit 77 = skipped.
set -euo pipefail
MH_NAME=c
. "$(dirname "$0")/mh-lib.sh"

mode=${1:?usage: capture.sh udp|ipv6|fabric}
wired=0
[[ $mode == fabric ]] || wired=1
command -v tshark >/dev/null || mh_skip "tshark not installed"
((!wired)) || command -v dumpcap >/dev/null || mh_skip "dumpcap not installed"
/usr/bin/python3 -c 'import scapy.contrib.roce' 2>/dev/null ||
	mh_skip "python3-scapy not installed for /usr/bin/python3"

gid=IPL_GID ip=ip
case $mode in
udp) mh_up 2 --cut-gso ;;
ipv6) mh_up 2 --ipv6 --cut-gso; gid=IPL_GID6 ip=ipv6 ;;
fabric)
	prov='tcp;ofi_rxm'
	if command -v fi_info >/dev/null; then
		timeout 20 fi_info -p "$prov" -t FI_EP_RDM -c FI_MSG >/dev/null 2>&1 ||
			mh_skip "libfabric has no usable provider '$prov'"
	fi
	printf '[link]\nfabric_provider = %s\n' "$prov" >"$MH_WORK/fabric.conf"
	mh_up 2 -- -c "$MH_WORK/fabric.conf" --link fabric
	grep -q "fabric: .* endpoint at" "$IPL_STATE/host1/ipathd.log" ||
		mh_fail "host 1 runs no fabric endpoint"
	;;
*) mh_fail "unknown mode '$mode'" ;;
esac

tsh() { tshark -r "$1" --disable-protocol rpcordma -o udp.check_checksum:TRUE -o ip.check_checksum:TRUE "${@:2}" 2>/dev/null; }
frames() { tsh "$@" | wc -l; }

wire=$MH_WORK/wire.pcapng
cap=$MH_WORK/daemon.pcap
((!wired)) || mh_dumpcap 1 "$wire"

sent0=$(mh_counter 1 pkts_sent)
rcvd0=$(mh_counter 1 pkts_rcvd)
gso0=$(mh_counter 1 udp_gso_sends)
# ipathctl itself in the background (not under the lab script), so that
# the SIGINT below reaches it as Ctrl-C would.
"$IPATHD_BUILD_DIR/daemon/ipathctl" --socket "$IPL_STATE/host1/ipathd.sock" \
	capture "$cap" >"$MH_WORK/ctl.out" 2>"$MH_WORK/ctl.err" &
cpid=$!
mh_wait_output "$MH_WORK/ctl.err" '^ipathctl: capturing' "$cpid" 100 ||
	mh_fail "the capture did not start"

pp='exec ibv_rc_pingpong -d "$IPL_DEV" -g "$'$gid'" -c -p $PORT -n 50 -s 4096'
mh_pair rc 2 1 "$pp" "$pp \$SRV" || mh_fail "ibv_rc_pingpong"
for t in ib_write_bw ib_read_bw; do
	perf="exec $t -d \"\$IPL_DEV\" -x \"\$$gid\" -F -p \$PORT -n 50 -s 65536"
	mh_pair "$t" 2 1 "$perf" "$perf \$SRV" || mh_fail "$t"
done
# the last ACKs are on their way when the tools exit
sleep 1

kill -INT "$cpid"
timeout 30 tail --pid="$cpid" -f /dev/null || mh_fail "ipathctl did not stop on SIGINT"
rc=0
wait "$cpid" || rc=$?
((rc == 0)) || { cat "$MH_WORK/ctl.err" >&2; mh_fail "ipathctl capture exited with $rc"; }
n=$(awk '/packets .* captured to/ { print $1 }' "$MH_WORK/ctl.out")
[[ $n =~ ^[0-9]+$ ]] || mh_fail "ipathctl reported no count"
sent=$(($(mh_counter 1 pkts_sent) - sent0))
rcvd=$(($(mh_counter 1 pkts_rcvd) - rcvd0))
gso=$(($(mh_counter 1 udp_gso_sends) - gso0))
((!wired || gso > 0)) || mh_fail "host 1 sent no GSO datagram"
((!wired)) || mh_dumpcap_stop

f=$(frames "$cap")
mh_log "ipathctl: $n packets; tshark: $f frames; daemon counted $sent sent + $rcvd received"
((f == n && n > 0)) || mh_fail "tshark reads $f frames, ipathctl reported $n"
((n == sent + rcvd)) || mh_fail "captured $n, the daemon sent $sent and received $rcvd"
tx=$(frames "$cap" -Y 'sll.pkttype == 4')
((tx == sent)) || mh_fail "$tx frames marked sent, the daemon sent $sent"
not_ib=$(frames "$cap" -Y '!infiniband')
bad=$(frames "$cap" -Y '_ws.malformed || _ws.expert.severity >= 8388608')
((not_ib == 0 && bad == 0)) || mh_fail "$not_ib frames not InfiniBand, $bad malformed"
tsh "$cap" -T fields -e infiniband.bth.opcode | sort -n | uniq -c |
	awk '{ printf "  opcode %3d: %d\n", $2, $1 }' >&2
for r in "SEND 0 5" "WRITE 6 11" "READ_REQUEST 12 12" "READ_RESPONSE 13 16" "ACK 17 17"; do
	read -r name lo hi <<<"$r"
	c=$(frames "$cap" -Y "infiniband.bth.opcode >= $lo && infiniband.bth.opcode <= $hi")
	((c > 0)) || mh_fail "no $name packets in the capture"
done
if [[ $mode == ipv6 ]]; then
	good=$(frames "$cap" -Y 'udp.checksum.status == "Good"')
	((good == n)) || mh_fail "only $good of $n IPv6 frames have a good UDP checksum"
fi
min_id=0
[[ $mode == udp ]] && min_id=1   # IPv4: GSO segments 1, 2.. (fabric: no GSO)
/usr/bin/python3 "$MH_SRC/tests/lab/icrc_check.py" --min "$n" \
	--min-id "$min_id" "$cap" >&2 || mh_fail "bad ICRCs in the daemon's capture"

if ((wired)); then
	# Frame for frame: what the daemon wrote is what crossed eth0.
	fields=(-T fields -e $ip.src -e $ip.dst -e udp.srcport -e infiniband.bth.destqp
		-e infiniband.bth.psn -e infiniband.bth.opcode -e infiniband.invariant.crc)
	[[ $mode == udp ]] && fields+=(-e ip.id)
	/usr/bin/python3 "$MH_SRC/tests/lab/icrc_check.py" --min "$n" \
		--min-id "$min_id" "$wire" >&2 || mh_fail "bad ICRCs on the wire"
	tsh "$cap" -Y infiniband "${fields[@]}" | sort >"$MH_WORK/daemon.tuples"
	tsh "$wire" -Y infiniband "${fields[@]}" | sort >"$MH_WORK/wire.tuples"
	w=$(wc -l <"$MH_WORK/wire.tuples")
	if ! cmp -s "$MH_WORK/daemon.tuples" "$MH_WORK/wire.tuples"; then
		diff "$MH_WORK/wire.tuples" "$MH_WORK/daemon.tuples" | head -20 >&2
		mh_fail "the daemon's capture ($n) differs from the wire ($w frames)"
	fi
	mh_log "the daemon's $n frames are the wire's, headers and ICRCs included"
fi
mh_daemons_alive
mh_log "PASS capture ($mode)"
