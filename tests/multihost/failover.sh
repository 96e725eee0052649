#!/bin/bash
# RC when a peer fails (tests/multihost/failover.c does the verbs side):
#   kill  3 hosts.  Host 1 holds QPs to host 2 (two with different
#         timeout/retry_cnt, one idle) and one to host 3; host 2's daemon
#         is SIGKILLed: the two busy QPs complete with RETRY_EXC_ERR in the
#         time their attributes imply, go to ERR with a QP_FATAL event and
#         flush; the idle one stays RTS; the QP to host 3 keeps working.
#   heal  2 hosts.  Host 2 is unplugged from the bridge while WRITEs and
#         a READ are outstanding and plugged back before the retries run
#         out: everything completes, bytes right at both ends, and host
#         1's daemon counted the timeouts.
# usage: failover.sh kill|heal [FAILOVER]
# Needs root; exit 77 = skipped.
set -euo pipefail
MH_NAME=f
. "$(dirname "$0")/mh-lib.sh"

mode=${1:?usage: failover.sh kill|heal [FAILOVER]}
fo=${2:-$IPATHD_BUILD_DIR/tests/multihost/failover}
[[ -x $fo ]] || mh_fail "$fo is not executable"
# the commands the client runs at the failure point (from host 1's
# namespace; the lab script works from anywhere); no sanitizer preload
lab_cmd="env -u LD_PRELOAD IPL_PREFIX=$IPL_PREFIX IPL_SUBNET=$IPL_SUBNET IPL_STATE=$IPL_STATE IPATHD_BUILD_DIR=$IPATHD_BUILD_DIR $LAB"

case $mode in
kill)
	mh_up 3
	p2=$((MH_PORT + 1)) p3=$((MH_PORT + 2))
	mh_exec 2 "$fo" --server "$p2" >"$MH_WORK/server2" 2>&1 &
	s2=$!
	mh_exec 3 "$fo" --server "$p3" >"$MH_WORK/server3" 2>&1 &
	s3=$!
	mh_wait_listen 2 "$p2" "$s2" || mh_fail "server on host 2"
	mh_wait_listen 3 "$p3" "$s3" || mh_fail "server on host 3"
	before=$(mh_counter 1 timeouts)
	crc=0
	mh_exec 1 "$fo" --client kill --peer "$(mh_addr 2):$p2" \
		--other "$(mh_addr 3):$p3" --fail-cmd "$lab_cmd daemon 2 kill" \
		>"$MH_WORK/client" 2>&1 || crc=$?
	cat "$MH_WORK/client" >&2
	src3=0
	wait "$s3" || src3=$?
	wait "$s2" || true	# its daemon is gone: any ending will do
	cat "$MH_WORK/server3" >&2
	((crc == 0)) || mh_fail "failover kill (client exit $crc)"
	((src3 == 0)) || mh_fail "the server on host 3 failed (exit $src3)"
	after=$(mh_counter 1 timeouts)
	mh_log "host 1 timeouts: $before -> $after"
	((after > before)) || mh_fail "host 1 counted no ACK timeout"
	st=$("$LAB" status)
	grep -Eq "host 1 +ns .*ipathd pid [0-9]" <<<"$st" &&
		grep -Eq "host 3 +ns .*ipathd pid [0-9]" <<<"$st" ||
		mh_fail "a surviving daemon died: $st"
	;;
heal)
	mh_up 2
	before=$(mh_counter 1 timeouts)
	mh_pair heal 2 1 "exec $fo --server \$PORT" \
		"exec $fo --client heal --peer \$SRV:\$PORT --fail-cmd '$lab_cmd link 2 down' --heal-cmd '$lab_cmd link 2 up' --heal-after 700" || {
		"$LAB" link 2 up || true
		mh_fail "failover heal"
	}
	cat "$MH_LAST.client" >&2
	after=$(mh_counter 1 timeouts)
	mh_log "host 1 timeouts: $before -> $after"
	((after > before)) || mh_fail "host 1 counted no ACK timeout: did the partition happen?"
	mh_daemons_alive
	;;
*) mh_fail "unknown mode '$mode'" ;;
esac
echo "PASS multihost failover $mode"
