#!/bin/bash
# THE test command (README, .ci/run): on a Debian 12 machine, as root,
#
#     bash tests/run-all.sh
#
# installs what is missing, builds ipathd (warnings are errors), runs every
# meson test suite (unit tests and the integration tests that drive real
# rdma-core tools, perftest and pyverbs against a real daemon), then builds
# again with ASan/UBSan and runs the suites once more.  The last line is
# exactly "N passed, M failed" over both runs; the exit status is non-zero
# when anything failed.
#
# Environment:
#   IPD_CI_BUILD        plain build directory      (default: build-ci)
#   IPD_CI_ASAN_BUILD   sanitizer build directory  (default: build-asan)
#   IPD_CI_SANITIZE=0   skip the sanitizer run
#   IPD_CI_SUITES       meson test arguments selecting suites, e.g.
#                       "--suite integration" (default: all suites)
#   IPD_CI_NO_INSTALL=1 never call apt-get
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${IPD_CI_BUILD:-$SRC/build-ci}
ASAN_BUILD=${IPD_CI_ASAN_BUILD:-$SRC/build-asan}
read -r -a SUITES <<<"${IPD_CI_SUITES:-}"

log() { printf '\n=== [%s] %s\n' "$(date +%T)" "$*"; }

# ---- packages ---------------------------------------------------------------

PACKAGES=(gcc libc6-dev meson ninja-build pkg-config
	libibverbs-dev ibverbs-utils perftest python3-pyverbs
	libev-dev libprotobuf-c-dev protobuf-c-compiler libfabric-dev
	libinih-dev zlib1g-dev libisal-dev libpcap-dev
	iproute2 procps python3-scapy tshark iperf3 sockperf)

install_missing() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q '^install ok installed$' || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	log "installing: ${missing[*]}"
	if [[ ${IPD_CI_NO_INSTALL:-0} == 1 ]]; then
		echo "missing packages and IPD_CI_NO_INSTALL=1: ${missing[*]}" >&2
		return 1
	fi
	if [[ $(id -u) -ne 0 ]]; then
		echo "missing packages (run as root to install them): ${missing[*]}" >&2
		return 1
	fi
	# tshark asks whether non-root users may capture; answer no, quietly.
	echo 'wireshark-common wireshark-common/install-setuid boolean false' |
		debconf-set-selections
	export DEBIAN_FRONTEND=noninteractive
	timeout 900 apt-get update -q
	timeout 1800 apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# ---- build and test ---------------------------------------------------------

TOTAL_PASS=0
TOTAL_FAIL=0

# build DIR [meson options...]: configure once (reconfigure when the options
# differ is left to meson), then compile.
build() {
	local dir=$1; shift
	if [[ ! -f $dir/build.ninja ]]; then
		meson setup --werror "$@" "$dir" "$SRC"
	fi
	ninja -C "$dir"
}

# count DIR: add the results of the last `meson test` in DIR to the totals.
count() {
	local dir=$1 line pass fail skip
	line=$(/usr/bin/python3 - "$dir/meson-logs/testlog.json" <<'EOF'
import json, sys
ok = fail = skip = 0
try:
    with open(sys.argv[1]) as f:
        for raw in f:
            raw = raw.strip()
            if not raw:
                continue
            r = json.loads(raw).get('result', '')
            if r in ('OK', 'EXPECTEDFAIL'):
                ok += 1
            elif r == 'SKIP':
                skip += 1
            else:
                fail += 1
except FileNotFoundError:
    fail = 1
print(ok, fail, skip)
EOF
)
	read -r pass fail skip <<<"$line"
	echo "$dir: $pass passed, $fail failed, $skip skipped"
	TOTAL_PASS=$((TOTAL_PASS + pass))
	TOTAL_FAIL=$((TOTAL_FAIL + fail))
}

# run_suites LABEL DIR [meson test options...]
run_suites() {
	local label=$1 dir=$2; shift 2
	log "$label: meson test"
	rm -f "$dir/meson-logs/testlog.json"
	# Integration tests are is_parallel: false; unit tests run in parallel.
	meson test -C "$dir" --print-errorlogs "${SUITES[@]}" "$@" || true
	count "$dir"
}

# phase LABEL DIR [meson setup options...]
phase() {
	local label=$1 dir=$2; shift 2
	log "$label: build in $dir"
	if ! build "$dir" "$@"; then
		echo "$label: BUILD FAILED" >&2
		TOTAL_FAIL=$((TOTAL_FAIL + 1))
		return 0
	fi
	if [[ $label == asan ]]; then
		# Unit tests are sanitized executables: leaks and UB fail them.
		# The daemon's own options come from tests/lib.sh (leaks fail it,
		# checked at ipd_stop).  The provider is sanitized too: it is
		# dlopen()ed into uninstrumented rdma-core tools, perftest and
		# python, so lib.sh starts every tool with libasan in LD_PRELOAD
		# (ASan must be the first DSO) and leak detection off for the tool
		# processes (their own leaks are not ours; ASan/UBSan errors in the
		# provider still kill the tool and fail the test).
		ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			run_suites "$label" "$dir" --timeout-multiplier 3
	else
		run_suites "$label" "$dir"
	fi
}

start=$SECONDS
if ! install_missing; then
	echo "0 passed, 1 failed"
	exit 1
fi

phase plain "$BUILD"
if [[ ${IPD_CI_SANITIZE:-1} != 0 ]]; then
	phase asan "$ASAN_BUILD" -Db_sanitize=address,undefined -Db_lundef=false
fi

log "done in $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s"
echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
((TOTAL_FAIL == 0))
