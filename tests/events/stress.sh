#!/bin/bash
# tests/events/event_stress.c against a fresh daemon, then a lossy one.
# usage: stress.sh PATH/TO/event_stress [options]
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

prog=${1:?usage: stress.sh PATH/TO/event_stress}
shift
[[ -x $prog ]] || ipd_fail "$prog is not executable"

ipd_start d
ipd_env
ipd_run "$prog" -d "$(ipd_dev)" -g "$(ipd_gid_index)" "$@" ||
	ipd_fail "event_stress $*"
ipd_alive || ipd_fail "daemon died"
ipd_stop

# Again through the loopback link with loss, duplication and reordering:
# events must follow retransmitted completions too.
ipd_start lossy --link loopback --loop-loss 5 --loop-dup 5 --loop-reorder 5
ipd_env lossy
ipd_run "$prog" -d "$(ipd_dev)" -g "$(ipd_gid_index)" -n 300 "$@" ||
	ipd_fail "event_stress $* over a lossy link"
ipd_stop lossy
echo "PASS event_stress"
