#!/bin/bash
# The negative tests (tests/negative.c) against a daemon.
# usage: negative.sh PATH/TO/negative [options]
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

negative=${1:?usage: negative.sh PATH/TO/negative}
shift
[[ -x $negative ]] || ipd_fail "$negative is not executable"

ipd_start d
ipd_env
ipd_run "$negative" -d "$(ipd_dev)" -g "$(ipd_gid_index)" "$@" || ipd_fail "negative"
ipd_alive || ipd_fail "daemon died"
ipd_stop
echo "PASS negative"
