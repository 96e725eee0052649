#!/bin/bash
# The provider's verbs smoke test (tests/provider/test_verbs.c) against a
# daemon: control verbs, post validation, the completion channel, four
# threads of control traffic, and (--data) SEND/WRITE between two QPs.
# usage: provider-verbs.sh PATH/TO/test_verbs
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

prog=${1:?usage: provider-verbs.sh PATH/TO/test_verbs}
[[ -x $prog ]] || ipd_fail "$prog is not executable"

ipd_start d
ipd_env
# 77 (no device visible) would be a harness failure here, not a skip.
ipd_run "$prog" --data || ipd_fail "test_verbs --data"
ipd_alive || ipd_fail "daemon died"
ipd_stop
echo "PASS provider-verbs"
