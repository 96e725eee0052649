#!/bin/bash
# pyverbs with the extended verbs (CQEX, QPEx): tests/pyverbs/ex_verbs.py.
# Debian's /usr/bin/python3 has python3-pyverbs; `python3` on PATH may not.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

/usr/bin/python3 -c 'import pyverbs' 2>/dev/null ||
	ipd_fail "/usr/bin/python3 cannot import pyverbs (apt-get install python3-pyverbs)"

ipd_start d
ipd_env
ipd_run /usr/bin/python3 "$IPD_SRC/tests/pyverbs/ex_verbs.py" \
	-d "$(ipd_dev)" -g "$(ipd_gid_index)" || ipd_fail "ex_verbs.py"
ipd_alive || ipd_fail "daemon died"
(($(ipd_qp_count) == 0)) || ipd_fail "QPs left after the script ended"
ipd_stop
echo "PASS pyverbs"
