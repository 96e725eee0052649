#!/bin/bash
# Run one program (with args) against a fresh daemon; it gets the
# application environment (IPATHD_SOCKET, SYSFS_PATH, ...).
# usage: run-prog.sh PROGRAM [args...]
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

prog=${1:?usage: run-prog.sh PROGRAM [args...]}
shift
ipd_start d
ipd_env
ipd_run "$prog" "$@" || ipd_fail "${prog##*/} $*"
ipd_alive || ipd_fail "daemon died"
ipd_stop
echo "PASS ${prog##*/}"
