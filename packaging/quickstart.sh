#!/bin/bash
# Quick start (README, first command), on a Debian 12 machine as root:
#
#     bash packaging/quickstart.sh
#
# installs what is missing, builds ipathd, starts the daemon in a temporary
# directory, points libibverbs at it and runs unmodified rdma-core tools
# through it: ibv_devinfo, then ibv_rc_pingpong between two processes.  It
# shows what happened (ipathctl) and stops the daemon.  Nothing is
# installed system-wide apart from missing Debian packages.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${IPD_QUICKSTART_BUILD:-$SRC/build}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# cmd CMD...: print a command the way a user would type it.
cmd() { printf '$ %s\n' "$*"; }
# show CMD...: print it, then run it.
show() { cmd "$@"; "$@"; }

# ---- 1. packages ----------------------------------------------------------
PACKAGES=(gcc libc6-dev meson ninja-build pkg-config libibverbs-dev
	ibverbs-utils libev-dev libprotobuf-c-dev protobuf-c-compiler
	libfabric-dev libinih-dev zlib1g-dev libisal-dev iproute2)
missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
		grep -q '^install ok installed$' || missing+=("$p")
done
if ((${#missing[@]})); then
	say "Installing ${missing[*]}"
	[[ $(id -u) -eq 0 ]] || { echo "run as root to install: ${missing[*]}" >&2; exit 1; }
	export DEBIAN_FRONTEND=noninteractive
	timeout 900 apt-get update -q
	timeout 1800 apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# ---- 2. build -------------------------------------------------------------
say "Building in $BUILD"
[[ -f $BUILD/build.ninja ]] || meson setup "$BUILD" "$SRC"
ninja -C "$BUILD"

# ---- 3. start the daemon --------------------------------------------------
RUN=$(mktemp -d /tmp/ipathd-quickstart.XXXXXX)
NODE=uverbs_qs$$
DAEMON_PID=
SERVER_PID=
cleanup() {
	set +e
	[[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null
	if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -TERM "$DAEMON_PID"
		timeout 10 tail --pid="$DAEMON_PID" -f /dev/null || kill -KILL "$DAEMON_PID"
	fi
	rm -f "/dev/infiniband/$NODE"
	rm -rf "$RUN"
}
trap cleanup EXIT

say "Starting ipathd (state in $RUN)"
: >"$RUN/ipathd.conf"   # defaults only; see conf/ipathd.conf for the options
# A free UDP port for the RoCEv2 link, so that the demo never collides with
# an ipathd already bound to 4791 (a daemon installed on this host).
UDP_PORT=4791
for ((i = 0; i < 100; i++)); do
	ss -Hlun "sport = :$UDP_PORT" | grep -q . || break
	UDP_PORT=$((30000 + RANDOM % 30000))
done
cmd "$BUILD/daemon/ipathd" -c "$RUN/ipathd.conf" --sysfs "$RUN/sysfs" \
	--socket "$RUN/ipathd.sock" --dev-node "$NODE" --udp-port "$UDP_PORT" --log-level info
"$BUILD/daemon/ipathd" -c "$RUN/ipathd.conf" --sysfs "$RUN/sysfs" \
	--socket "$RUN/ipathd.sock" --dev-node "$NODE" --udp-port "$UDP_PORT" \
	--log-level info 2>"$RUN/ipathd.log" &
DAEMON_PID=$!
for ((i = 0; i < 100; i++)); do
	[[ -S $RUN/ipathd.sock && -e $RUN/sysfs/class/infiniband_verbs/$NODE/ibdev ]] && break
	kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$RUN/ipathd.log" >&2; exit 1; }
	sleep 0.1
done
[[ -S $RUN/ipathd.sock ]] || { cat "$RUN/ipathd.log" >&2; echo "ipathd did not start" >&2; exit 1; }
DEV=$(cat "$RUN/sysfs/class/infiniband_verbs/$NODE/ibdev")

# ---- 4. point libibverbs at it --------------------------------------------
say "Environment for verbs applications"
export SYSFS_PATH=$RUN/sysfs
export RDMAV_DRIVERS=ipathd
export LD_LIBRARY_PATH=$BUILD/provider${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export IPATHD_SOCKET=$RUN/ipathd.sock
printf 'export %s\n' "SYSFS_PATH=$SYSFS_PATH" "RDMAV_DRIVERS=$RDMAV_DRIVERS" \
	"LD_LIBRARY_PATH=$LD_LIBRARY_PATH" "IPATHD_SOCKET=$IPATHD_SOCKET"

say "ibv_devinfo sees the device"
show timeout 30 ibv_devinfo -d "$DEV"

# The IPv4-mapped RoCE v2 GID (what -g needs on RoCE).
PORTDIR=$SYSFS_PATH/class/infiniband/$DEV/ports/1
GID=
for f in "$PORTDIR"/gids/*; do
	if grep -q '^0000:0000:0000:0000:0000:ffff:' "$f" &&
		[[ $(cat "$PORTDIR/gid_attrs/types/${f##*/}") == "RoCE v2" ]]; then
		GID=${f##*/}
		break
	fi
done
[[ -n $GID ]] || { echo "no IPv4-mapped RoCE v2 GID published" >&2; exit 1; }
echo "GID index $GID = $(cat "$PORTDIR/gids/$GID")"

# ---- 5. ibv_rc_pingpong, two processes ------------------------------------
say "ibv_rc_pingpong: server and client through ipathd"
PORT=$((20000 + RANDOM % 20000))
cmd ibv_rc_pingpong -d "$DEV" -g "$GID" -p "$PORT" -c -n 1000 "&"
timeout 60 ibv_rc_pingpong -d "$DEV" -g "$GID" -p "$PORT" -c -n 1000 \
	>"$RUN/server.out" 2>&1 &
SERVER_PID=$!
for ((i = 0; i < 100; i++)); do
	ss -Hltn "sport = :$PORT" | grep -q . && break
	sleep 0.1
done
show timeout 60 ibv_rc_pingpong -d "$DEV" -g "$GID" -p "$PORT" -c -n 1000 127.0.0.1
src=0
wait "$SERVER_PID" || src=$?
SERVER_PID=
echo "--- server side:"
cat "$RUN/server.out"
[[ $src -eq 0 ]] || { echo "server failed ($src)" >&2; exit 1; }

# ---- 6. what happened -----------------------------------------------------
say "What the daemon saw"
# status = device and GIDs, QPs (gone: the pingpongs have exited), counters
show "$BUILD/daemon/ipathctl" --socket "$IPATHD_SOCKET" status
echo "--- daemon log:"
cat "$RUN/ipathd.log"

# ---- 7. stop --------------------------------------------------------------
say "Stopping ipathd"
kill -TERM "$DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=
echo "ipathd exited with status $rc"
[[ $rc -eq 0 ]]
say "Done.  Full test suite: bash tests/run-all.sh"
