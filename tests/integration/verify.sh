#!/bin/bash
# The data-verifying program (tests/verify.c) with every opcode and QP type:
# once on a plain daemon, once through the loopback link with 5 % loss,
# duplication and reordering injected.
# usage: verify.sh PATH/TO/verify [extra verify options]
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

verify=${1:?usage: verify.sh PATH/TO/verify}
shift
[[ -x $verify ]] || ipd_fail "$verify is not executable"

ipd_start plain
ipd_env plain
ipd_run "$verify" --all -d "$(ipd_dev)" -g "$(ipd_gid_index)" "$@" ||
	ipd_fail "verify --all on a plain daemon"
ipd_stop plain

ipd_start lossy --link loopback --loop-loss 5 --loop-dup 5 --loop-reorder 5
ipd_env lossy
ipd_run "$verify" --all -d "$(ipd_dev)" -g "$(ipd_gid_index)" "$@" ||
	ipd_fail "verify --all through a lossy loopback link"
ipd_ctl counters || true
ipd_stop lossy
echo "PASS verify"
