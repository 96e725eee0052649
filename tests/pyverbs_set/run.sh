#!/bin/bash
# The pyverbs test set (tests/pyverbs_set) against a fresh daemon.
# usage: run.sh [module ...]     (default: every test_*.py)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

/usr/bin/python3 -c 'import pyverbs' 2>/dev/null ||
	ipd_fail "/usr/bin/python3 cannot import pyverbs (apt-get install python3-pyverbs)"

ipd_start d
ipd_env
ipd_run /usr/bin/python3 "$IPD_SRC/tests/pyverbs_set/run.py" -v \
	-d "$(ipd_dev)" -g "$(ipd_gid_index)" "$@" || ipd_fail "pyverbs set $*"
ipd_alive || ipd_fail "daemon died"
(($(ipd_qp_count) == 0)) || ipd_fail "QPs left after the set ended"
ipd_stop
echo "PASS pyverbs set $*"
