#!/bin/bash
# XRC shared by two clients of one daemon (tests/xrc_share.c): a domain
# opened through the same file, TGT QP of one client delivering into the
# other's XRC SRQ, ibv_open_qp.
# usage: xrc-share.sh PATH/TO/xrc_share
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

prog=${1:?usage: xrc-share.sh PATH/TO/xrc_share}
[[ -x $prog ]] || ipd_fail "$prog is not executable"

ipd_start d
ipd_env
ipd_run "$prog" -d "$(ipd_dev)" -g "$(ipd_gid_index)" || ipd_fail "xrc_share"
ipd_alive || ipd_fail "daemon died"
(($(ipd_qp_count) == 0)) || ipd_fail "QPs left behind"
ipd_stop
echo "PASS xrc_share"
