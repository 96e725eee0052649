#!/bin/bash
# All-to-all on 3 hosts, all at once: every host runs an ibv_rc_pingpong
# server for each of the two others and a client towards each of them,
# the six pairs concurrently (each daemon carries four QPs to two peers at
# the same time).  tests/lab/lab-selftest.sh runs the same pairs one after
# the other; this is the concurrent case.  A verify run (tests/verify.c,
# two processes) from host 1 to host 2 and from host 3 to host 1 runs
# alongside.  Needs root; exit 77 = skipped.
set -euo pipefail
MH_NAME=a
. "$(dirname "$0")/mh-lib.sh"

verify=${1:-$IPATHD_BUILD_DIR/tests/verify}
[[ -x $verify ]] || mh_fail "$verify is not executable"

mh_up 3
declare -A spid=() port=()
base=$MH_PORT
pp='exec ibv_rc_pingpong -d "$IPL_DEV" -g "$IPL_GID" -c -n 300 -s 8192'
for s in 1 2 3; do
	for c in 1 2 3; do
		((s == c)) && continue
		p=$((base + 10 * s + c))
		port[$s$c]=$p
		mh_sh "$s" "$pp -p $p" >"$MH_WORK/pp.$s.$c.server" 2>&1 &
		spid[$s$c]=$!
	done
done
# the verify servers: host 2 for host 1, host 1 for host 3
vport1=$((base + 41)) vport3=$((base + 43))
mh_exec 2 "$verify" --server "$vport1" >"$MH_WORK/verify.2.server" 2>&1 &
vs1=$!
mh_exec 1 "$verify" --server "$vport3" >"$MH_WORK/verify.1.server" 2>&1 &
vs3=$!
for s in 1 2 3; do
	for c in 1 2 3; do
		((s == c)) && continue
		mh_wait_listen "$s" "${port[$s$c]}" "${spid[$s$c]}" ||
			mh_fail "pingpong server on host $s (for host $c) did not listen"
	done
done
mh_wait_listen 2 "$vport1" "$vs1" || mh_fail "verify server on host 2"
mh_wait_listen 1 "$vport3" "$vs3" || mh_fail "verify server on host 1"

declare -A cpid=()
for s in 1 2 3; do
	for c in 1 2 3; do
		((s == c)) && continue
		mh_sh "$c" "$pp -p ${port[$s$c]} $(mh_addr "$s")" \
			>"$MH_WORK/pp.$s.$c.client" 2>&1 &
		cpid[$s$c]=$!
	done
done
vopts=(--all --type rc --iters 10 --max-size 262144)
mh_exec 1 "$verify" --client "$(mh_addr 2):$vport1" "${vopts[@]}" \
	>"$MH_WORK/verify.1.client" 2>&1 &
vc1=$!
mh_exec 3 "$verify" --client "$(mh_addr 1):$vport3" "${vopts[@]}" \
	>"$MH_WORK/verify.3.client" 2>&1 &
vc3=$!

fails=0
for s in 1 2 3; do
	for c in 1 2 3; do
		((s == c)) && continue
		src=0 crc=0
		wait "${cpid[$s$c]}" || crc=$?
		wait "${spid[$s$c]}" || src=$?
		if ((src || crc)) ||
		   ! grep -q ' bytes in .* seconds = ' "$MH_WORK/pp.$s.$c.client"; then
			cat "$MH_WORK/pp.$s.$c.server" "$MH_WORK/pp.$s.$c.client" >&2
			mh_log "FAIL rc_pingpong host $c -> host $s (server $src, client $crc)"
			fails=$((fails + 1))
		else
			mh_log "ok   rc_pingpong host $c -> host $s: $(grep -h 'iters in' "$MH_WORK/pp.$s.$c.client")"
		fi
	done
done
for v in "1 2 $vc1 $vs1" "3 1 $vc3 $vs3"; do
	read -r c s cp sp <<<"$v"
	src=0 crc=0
	wait "$cp" || crc=$?
	wait "$sp" || src=$?
	if ((src || crc)); then
		cat "$MH_WORK/verify.$s.server" "$MH_WORK/verify.$c.client" >&2
		mh_log "FAIL verify host $c -> host $s (server $src, client $crc)"
		fails=$((fails + 1))
	else
		mh_log "ok   verify host $c -> host $s: $(grep -c '^PASS' "$MH_WORK/verify.$c.client") combinations"
	fi
done
mh_daemons_alive
((fails == 0)) || mh_fail "$fails of 8 concurrent runs failed"
echo "PASS multihost all-to-all (3 hosts, 6 pingpongs + 2 verify runs at once)"
