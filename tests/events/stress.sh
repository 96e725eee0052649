#!/bin/bash
# tests/events/event_stress.c against a fresh daemon.
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
echo "PASS event_stress"
