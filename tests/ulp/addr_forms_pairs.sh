#!/bin/bash
# SPDX-License-Identifier: MIT
# The four address-form pairs across two hosts (docs/address-forms.md):
# a two-host lab (tests/lab/ipathd-lab.sh), host 1 runs the model SRP
# target (the RDMA requester), host 2 the initiator (the responder).  The
# pairs are visited by restarting ONE daemon at a time with the other
# --dma-capable value:
#     <0,0>  -> host 2 to yes -> <0,1> -> host 1 to yes -> <1,1>
#            -> host 2 to no  -> <1,0>
# so each step also proves that the surviving daemon refreshes its cached
# capabilities of the restarted peer (new boot id): the ULPs check that
# the daemon's status shows the pair they actually run with.
# For every pair: the ULP results must be byte-identical to the other
# pairs' and to those of the same transfers made by a verbs application
# (tests/ulp/verbs_addr.c), bad addresses must get IBV_WC_REM_ACCESS_ERR,
# and rdma-core/perftest tools (ibv_rc_pingpong -c: SEND; ib_write_bw,
# ib_read_bw, ib_atomic_bw) must pass across the hosts.
# usage: addr_forms_pairs.sh PATH/TO/ulp_addr PATH/TO/verbs_addr
set -euo pipefail

ulp=${1:?usage: addr_forms_pairs.sh PATH/TO/ulp_addr PATH/TO/verbs_addr}
vapp=${2:?usage: addr_forms_pairs.sh PATH/TO/ulp_addr PATH/TO/verbs_addr}
src=$(cd "$(dirname "$0")/../.." && pwd)
lab=$src/tests/lab/ipathd-lab.sh
# A prefix of our own: concurrent runs (other build trees) must not
# tear down each other's labs (at most 8 characters).
export IPL_PREFIX=${IPL_PREFIX:-ipa$(($$ % 100000))}
export IPL_STATE=${IPL_STATE:-/run/ipathd-lab/$IPL_PREFIX}
export IPATHD_BUILD_DIR=${IPATHD_BUILD_DIR:-$src/build}
tmo=${IPD_TOOL_TIMEOUT:-120}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ipathd-addr.XXXXXX")
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

[[ $(id -u) == 0 ]] || { echo "SKIP: needs root"; exit 77; }
# A sanitized provider is dlopen()ed by uninstrumented tools: they need
# the ASan runtime first (as tests/lib.sh does).
tool_env=(env)
asan=$(ldd "$IPATHD_BUILD_DIR/provider/libipathd-rdmav34.so" 2>/dev/null |
	awk '/libasan\.so/ { print $3; exit }')
if [[ -n $asan ]]; then
	tool_env+=("LD_PRELOAD=$asan" "ASAN_OPTIONS=detect_leaks=0:halt_on_error=1")
fi
[[ -x $ulp && -x $vapp ]] || fail "$ulp or $vapp is not executable"
cleanup() {
	local rc=$?
	if ((rc && rc != 77)); then
		for k in 1 2; do
			log "---- host $k daemon log (tail) ----"
			"$lab" log "$k" 2>/dev/null | tail -n 15 >&2 || true
		done
	fi
	"$lab" down >/dev/null 2>&1 || true
	# The per-run state directory is ours alone.
	[[ $IPL_PREFIX == ipa[0-9]* ]] && rm -rf "$IPL_STATE"
	rm -rf "$tmp"
}
trap cleanup EXIT

"$lab" down >/dev/null 2>&1 || true
"$lab" up 2 -- --dma-capable no
a1=$("$lab" addr 1)

# Restart host K's daemon with --dma-capable V (the lab passes the same
# extra arguments to every daemon it starts; only K restarts now).
set_mode() {
	printf '%s\n' --dma-capable "$2" >"$IPL_STATE/daemon-args"
	"$lab" daemon "$1" restart
}

port=18600
# Host K's verbs device name and GID index (after any restart).
hv() {
	dev[$1]=$("$lab" exec "$1" printenv IPL_DEV)
	gid[$1]=$("$lab" gid "$1")
}
declare -a dev gid

perftest_pair() {
	local pair=$1 t=$2 s rc=0
	port=$((port + 1))
	"$lab" exec 1 "${tool_env[@]}" timeout "$tmo" "$t" -d "${dev[1]}" -x "${gid[1]}" \
		-p "$port" -n 200 -F >"$tmp/$t.s" 2>&1 &
	s=$!
	sleep 0.5
	"$lab" exec 2 "${tool_env[@]}" timeout "$tmo" "$t" -d "${dev[2]}" -x "${gid[2]}" \
		-p "$port" -n 200 -F "$a1" >"$tmp/$t.c" 2>&1 ||
		{ cat "$tmp/$t.c" >&2; rc=1; }
	wait "$s" || { cat "$tmp/$t.s" >&2; rc=1; }
	return "$rc"
}

verbs_apps() {
	local pair=$1 t
	# ibv_rc_pingpong: SEND both ways, contents checked (-c).
	port=$((port + 1))
	"$lab" exec 1 "${tool_env[@]}" timeout "$tmo" ibv_rc_pingpong -d "${dev[1]}" -g "${gid[1]}" \
		-p "$port" -n 50 -s 4096 -c >"$tmp/pp.s" 2>&1 &
	t=$!
	sleep 0.5
	"$lab" exec 2 "${tool_env[@]}" timeout "$tmo" ibv_rc_pingpong -d "${dev[2]}" -g "${gid[2]}" \
		-p "$port" -n 50 -s 4096 -c "$a1" >"$tmp/pp.c" 2>&1 ||
		{ cat "$tmp/pp.c" "$tmp/pp.s"; fail "$pair ibv_rc_pingpong"; }
	wait "$t" || { cat "$tmp/pp.s"; fail "$pair ibv_rc_pingpong server"; }
	for t in ib_write_bw ib_read_bw ib_atomic_bw; do
		perftest_pair "$pair" "$t" && continue
		# Verbs MRs do not depend on the mode; a perftest failure
		# here is another part's bug: logged, retried once.
		log "$pair: $t failed once (not address-form related?), retrying"
		perftest_pair "$pair" "$t" || fail "$pair $t"
	done
	# The ULPs' transfers from a verbs application: same bytes.
	port=$((port + 1))
	"$lab" exec 1 timeout "$tmo" "$vapp" target --listen "$port" \
		-d "${dev[1]}" -g "${gid[1]}" >"$tmp/vt.out" 2>"$tmp/vt.err" &
	t=$!
	"$lab" exec 2 timeout "$tmo" "$vapp" initiator --connect "$a1:$port" \
		-d "${dev[2]}" -g "${gid[2]}" >"$tmp/vi.out" 2>"$tmp/vi.err" ||
		{ cat "$tmp/vi.err" "$tmp/vt.err"; fail "$pair verbs_addr initiator"; }
	wait "$t" || { cat "$tmp/vt.err"; fail "$pair verbs_addr target"; }
	sort "$tmp/vt.out" "$tmp/vi.out" >"$tmp/vresults.$pair"
	cmp -s "$tmp/results.$pair" "$tmp/vresults.$pair" ||
		{ diff "$tmp/results.$pair" "$tmp/vresults.$pair" >&2
		  fail "$pair: verbs application and ULP results differ"; }
	log "$pair: verbs applications passed (rc_pingpong -c, write/read/atomic bw; verbs_addr = ULP results)"
}

ulps() {
	local pair=$1 t
	port=$((port + 1))
	"$lab" exec 1 timeout "$tmo" "$ulp" target --listen "$port" \
		--gid-index "${gid[1]}" >"$tmp/t.out" 2>"$tmp/t.err" &
	t=$!
	local rc=0
	"$lab" exec 2 timeout "$tmo" "$ulp" initiator --connect "$a1:$port" \
		--gid-index "${gid[2]}" >"$tmp/i.out" 2>"$tmp/i.err" || rc=$?
	if ((rc == 77)); then
		wait "$t" || true
		echo "SKIP: the daemons do not serve the kernel stubs"
		exit 77
	fi
	((rc == 0)) || { cat "$tmp/i.err" "$tmp/t.err"; fail "$pair ULP initiator"; }
	wait "$t" || { cat "$tmp/t.err"; fail "$pair ULP target"; }
	grep -h -e 'addr_form' -e 'REM\|remote access' -e 'n/a' "$tmp/t.err" "$tmp/i.err" >&2 || true
	sort "$tmp/t.out" "$tmp/i.out" >"$tmp/results.$pair"
	[[ $(grep -c '^RESULT' "$tmp/results.$pair") == 4 ]] ||
		fail "$pair: expected 4 RESULT lines"
	log "$pair: ULPs passed"
}

run_pair() {
	local pair=$1
	log "==== pair <requester,responder> = $pair ===="
	hv 1
	hv 2
	ulps "$pair"
	verbs_apps "$pair"
	"$lab" ctl 1 status >"$tmp/status.$pair" 2>&1 || true
}

run_pair '<0,0>'
set_mode 2 yes
run_pair '<0,1>'
set_mode 1 yes
run_pair '<1,1>'
set_mode 2 no
run_pair '<1,0>'

# Byte-identical results in all four pairs.
for p in '<0,1>' '<1,1>' '<1,0>'; do
	cmp -s "$tmp/results.<0,0>" "$tmp/results.$p" ||
		{ diff "$tmp/results.<0,0>" "$tmp/results.$p" >&2; fail "$p results differ from <0,0>"; }
done
cat "$tmp/results.<0,0>"

# Never a stray access: no sanitizer report in either daemon's log (an
# ASan/UBSan build reports there; leaks show at exit, so stop them first).
for k in 1 2; do
	"$lab" daemon "$k" stop
	if "$lab" log "$k" | grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' >&2; then
		fail "host $k: sanitizer report in the daemon log"
	fi
done
echo "PASS addr_forms_pairs (all four pairs; ULP and verbs results identical)"
