#!/bin/bash
# pyverbs with the extended verbs (CQEX, QPEx): tests/pyverbs/ex_verbs.py,
# on a plain daemon and through the loopback link with 5 % loss,
# duplication and reordering (RC: every byte and atomic result still exact).
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

ipd_start lossy --link loopback --loop-loss 5 --loop-dup 5 --loop-reorder 5
ipd_env lossy
ipd_run /usr/bin/python3 "$IPD_SRC/tests/pyverbs/ex_verbs.py" \
	-d "$(ipd_dev)" -g "$(ipd_gid_index)" || ipd_fail "ex_verbs.py over a lossy link"
ipd_ctl counters | grep -E '^loop_(dropped|duplicated|reordered) +[1-9]' ||
	ipd_fail "the loopback link injected no faults"
ipd_stop lossy
echo "PASS pyverbs"
