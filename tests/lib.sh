# shellcheck shell=bash
#
# Helpers for ipathd's integration tests.  Source this file from a test
# script that runs with `set -euo pipefail`; it installs an EXIT trap that
# stops every daemon it started, kills stray tool processes and removes the
# temporary directory, on success and on failure alike.
#
#   ipd_start NAME [daemon args...]   start build/daemon/ipathd with a private
#                                     sysfs tree, socket and device node
#   ipd_env [NAME]                    export what an application needs
#   ipd_stop [NAME]                   SIGTERM, bounded wait, check exit status
#                                     and sanitizer reports
#   ipd_gid_index [NAME]              index of the IPv4-mapped RoCE v2 GID
#   ipd_port                          a free TCP port for a tool's exchange
#   run_pair PORT SERVER_CMD CLIENT_CMD
#                                     server, wait for PORT to listen, client;
#                                     both under `timeout`, both must exit 0
#
# Environment knobs:
#   IPATHD_BUILD_DIR   build directory (meson sets it for `meson test`)
#   IPD_TOOL_TIMEOUT   seconds allowed to one tool run (default 120)

IPD_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ipd_running PID: alive and not a zombie (kill -0 succeeds on zombies).
ipd_running() {
	local st
	st=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ ${st%% *} != Z ]]
}

ipd_log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
ipd_fail() { ipd_log "FAIL: $*"; exit 1; }

# ---- build directory ------------------------------------------------------

ipd_find_build() {
	local d dirs=("$IPD_SRC/build" "$IPD_SRC/build-ci")
	# An explicit build directory is the only candidate.
	[[ -z ${IPATHD_BUILD_DIR:-} ]] || dirs=("$IPATHD_BUILD_DIR")
	for d in "${dirs[@]}"; do
		if [[ -n $d && -x $d/daemon/ipathd ]]; then
			(cd "$d" && pwd)
			return 0
		fi
	done
	return 1
}

IPD_BUILD=$(ipd_find_build) ||
	ipd_fail "no build with daemon/ipathd found (set IPATHD_BUILD_DIR)"
IPD_DAEMON=$IPD_BUILD/daemon/ipathd
IPD_CTL=$IPD_BUILD/daemon/ipathctl
IPD_PROVIDER_DIR=$IPD_BUILD/provider
IPD_TOOL_TIMEOUT=${IPD_TOOL_TIMEOUT:-120}

# Sanitizer build?  The daemon is a normal executable and carries its own
# runtime.  The provider is dlopen()ed into uninstrumented rdma-core tools,
# perftest and python; ASan refuses to start unless its runtime comes first,
# so for a sanitized provider every tool runs with libasan in LD_PRELOAD
# (leak detection off for the tools: their own leaks are not ours; the
# daemon runs with leak detection on and fails on any report).
IPD_TOOL_PRELOAD=
if [[ -f $IPD_PROVIDER_DIR/libipathd-rdmav34.so ]]; then
	IPD_TOOL_PRELOAD=$(ldd "$IPD_PROVIDER_DIR/libipathd-rdmav34.so" 2>/dev/null |
		awk '/libasan\.so/ { print $3; exit }')
fi
# `env` prefix for every tool run (empty assignments when not sanitized).
IPD_TOOL_ENVV=(env)
if [[ -n $IPD_TOOL_PRELOAD ]]; then
	IPD_TOOL_ENVV+=("LD_PRELOAD=$IPD_TOOL_PRELOAD${LD_PRELOAD:+:$LD_PRELOAD}"
		"ASAN_OPTIONS=detect_leaks=0:halt_on_error=1"
		"UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
fi
IPD_DAEMON_SANITIZED=0
if ldd "$IPD_DAEMON" 2>/dev/null | grep -q -e 'libasan\.so' -e 'libubsan\.so'; then
	IPD_DAEMON_SANITIZED=1
fi

# ---- temporary state and cleanup ------------------------------------------

IPD_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ipathd-test.XXXXXX")
declare -A IPD_PID=() IPD_SOCK=() IPD_SYSFS=() IPD_DIR=() IPD_NODE=()
IPD_CUR=
IPD_BG_PIDS=()
# TCP side-channel ports below the kernel's ephemeral range: a port in it
# may be the local port of any outgoing connection (a test's own client
# a moment ago, in TIME_WAIT), and a tool's bind() fails on it ("Couldn't
# listen to port": xsrq_pingpong and kill_client failed so in CI).
IPD_EPH_LO=32768
read -r IPD_EPH_LO _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
((IPD_EPH_LO > 14000)) || IPD_EPH_LO=32768
IPD_PORT_NEXT=$((10000 + RANDOM % (IPD_EPH_LO - 12000)))
IPD_KEEP_TMP=${IPD_KEEP_TMP:-0}

# Functions ipd_cleanup calls first (a test's own restores; its own EXIT
# trap would replace ipd_cleanup's).
IPD_CLEANUP_HOOKS=()

ipd_cleanup() {
	local rc=$? name p
	set +e
	for p in "${IPD_CLEANUP_HOOKS[@]}"; do
		"$p"
	done
	for p in "${IPD_BG_PIDS[@]}"; do
		kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null
	done
	for name in "${!IPD_PID[@]}"; do
		p=${IPD_PID[$name]}
		if kill -0 "$p" 2>/dev/null; then
			kill -TERM "$p" 2>/dev/null
			timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null ||
				kill -KILL "$p" 2>/dev/null
		fi
		[[ $rc -ne 0 && -f ${IPD_DIR[$name]}/daemon.log ]] && {
			ipd_log "---- daemon $name log (tail) ----"
			tail -n 40 "${IPD_DIR[$name]}/daemon.log" >&2
		}
		rm -f "/dev/infiniband/${IPD_NODE[$name]}"
	done
	if [[ $IPD_KEEP_TMP == 1 || $rc -ne 0 && -n ${CI_KEEP_FAILED:-} ]]; then
		ipd_log "kept $IPD_TMP"
	else
		rm -rf "$IPD_TMP"
	fi
	exit "$rc"
}
trap ipd_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- daemon ---------------------------------------------------------------

# ipd_udp_port: a UDP port nobody is bound to, for the daemon's RoCEv2
# link (several daemons on a host cannot share 4791).
ipd_udp_port() {
	local i p
	for ((i = 0; i < 100; i++)); do
		p=$((30000 + RANDOM % 30000))
		ss -Hlun "sport = :$p" | grep -q . || { echo "$p"; return 0; }
	done
	ipd_fail "no free UDP port"
}

# ipd_start NAME [daemon args...]
# Daemon args come after the defaults here, so they override them.
ipd_start() {
	local name=$1; shift
	local dir=$IPD_TMP/$name
	local node="uverbs_ipdt$$_$name"
	local pid

	[[ -z ${IPD_PID[$name]:-} ]] || ipd_fail "daemon $name already started"
	mkdir -p "$dir"
	# An empty configuration file: the tests must not depend on an
	# installed /etc/ipathd/ipathd.conf.
	: >"$dir/ipathd.conf"
	ASAN_OPTIONS=${IPD_DAEMON_ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=66} \
	UBSAN_OPTIONS=${IPD_DAEMON_UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=67} \
		"$IPD_DAEMON" -c "$dir/ipathd.conf" \
		--sysfs "$dir/sysfs" --socket "$dir/ipathd.sock" \
		--dev-node "$node" --udp-port "$(ipd_udp_port)" \
		--log-level "${IPD_LOG_LEVEL:-info}" "$@" \
		>"$dir/daemon.log" 2>&1 &
	pid=$!
	IPD_PID[$name]=$pid
	IPD_SOCK[$name]=$dir/ipathd.sock
	IPD_SYSFS[$name]=$dir/sysfs
	IPD_DIR[$name]=$dir
	IPD_NODE[$name]=$node
	IPD_CUR=$name

	# Ready when the socket and the device's verbs entry are published.
	local deadline=$((SECONDS + 30))
	while ((SECONDS < deadline)); do
		if ! ipd_running "$pid"; then
			cat "$dir/daemon.log" >&2
			ipd_fail "daemon $name exited during start-up"
		fi
		if [[ -S $dir/ipathd.sock && -e $dir/sysfs/class/infiniband_verbs/$node/ibdev ]]; then
			ipd_log "daemon $name up (pid $pid, $dir)"
			return 0
		fi
		sleep 0.1
	done
	cat "$dir/daemon.log" >&2
	ipd_fail "daemon $name not ready after 30 s"
}

# ipd_stop [NAME]: SIGTERM, wait (bounded), require exit status 0 and no
# sanitizer report in the log.
ipd_stop() {
	local name=${1:-$IPD_CUR}
	local pid=${IPD_PID[$name]} log=${IPD_DIR[$name]}/daemon.log rc

	ipd_running "$pid" || ipd_fail "daemon $name (pid $pid) is not running"
	kill -TERM "$pid"
	rc=0
	timeout 30 tail --pid="$pid" -f /dev/null 2>/dev/null || {
		kill -KILL "$pid" 2>/dev/null || true
		ipd_fail "daemon $name did not exit within 30 s of SIGTERM"
	}
	wait "$pid" 2>/dev/null || rc=$?
	unset "IPD_PID[$name]"
	if grep -q -E 'ERROR: (Leak|Address)Sanitizer|runtime error:' "$log"; then
		cat "$log" >&2
		ipd_fail "daemon $name: sanitizer report"
	fi
	[[ $rc -eq 0 ]] || { tail -n 40 "$log" >&2; ipd_fail "daemon $name exited with status $rc"; }
	[[ ! -e ${IPD_SYSFS[$name]}/class/infiniband_verbs/${IPD_NODE[$name]} ]] ||
		ipd_fail "daemon $name left its sysfs entry behind"
	[[ ! -S ${IPD_SOCK[$name]} ]] || ipd_fail "daemon $name left its socket behind"
	[[ ! -e /dev/infiniband/${IPD_NODE[$name]} ]] ||
		ipd_fail "daemon $name left /dev/infiniband/${IPD_NODE[$name]} behind"
	ipd_log "daemon $name stopped cleanly"
}

# ipd_alive [NAME]
ipd_alive() { ipd_running "${IPD_PID[${1:-$IPD_CUR}]}"; }

# ipd_env [NAME]: the environment an application needs to use daemon NAME.
# RDMAV_DRIVERS names the build's provider by absolute path so that an
# installed copy (/etc/libibverbs.d/ipathd.driver) can never shadow it.
ipd_env() {
	local name=${1:-$IPD_CUR}
	export SYSFS_PATH=${IPD_SYSFS[$name]}
	export IPATHD_SOCKET=${IPD_SOCK[$name]}
	export RDMAV_DRIVERS=$IPD_PROVIDER_DIR/libipathd
	export LD_LIBRARY_PATH=$IPD_PROVIDER_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	IPD_CUR=$name
}

# ipd_dev [NAME]: the device name published by daemon NAME.
ipd_dev() {
	local name=${1:-$IPD_CUR}
	cat "${IPD_SYSFS[$name]}/class/infiniband_verbs/${IPD_NODE[$name]}/ibdev"
}

# ipd_gid_index [NAME]: the first IPv4-mapped RoCE v2 GID of port 1 (what
# perftest prefers); prints its index.
ipd_gid_index() {
	local name=${1:-$IPD_CUR} dev port f i
	dev=$(ipd_dev "$name")
	port=${IPD_SYSFS[$name]}/class/infiniband/$dev/ports/1
	for f in "$port"/gids/*; do
		i=${f##*/}
		if grep -qx '0000:0000:0000:0000:0000:ffff:[0-9a-f]\{4\}:[0-9a-f]\{4\}' "$f" &&
			[[ $(cat "$port/gid_attrs/types/$i" 2>/dev/null) == "RoCE v2" ]]; then
			echo "$i"
			return 0
		fi
	done | sort -n | head -n 1 | grep . || ipd_fail "daemon $name publishes no IPv4-mapped RoCE v2 GID"
}

# ipd_ctl [NAME] ARGS...: ipathctl against daemon NAME.
ipd_ctl() {
	local name=$IPD_CUR
	if [[ $# -gt 0 && -n ${IPD_SOCK[$1]:-} ]]; then name=$1; shift; fi
	timeout 10 "$IPD_CTL" --socket "${IPD_SOCK[$name]}" "$@"
}

# ipd_qp_count [NAME]: number of QPs `ipathctl qps` lists (rows start
# with the QP number in hex).
ipd_qp_count() {
	local out
	out=$(ipd_ctl "$@" qps) || ipd_fail "ipathctl qps failed"
	awk '$1 ~ /^(0x[0-9a-f]+|0)$/ { n++ } END { print n + 0 }' <<<"$out"
}

# ipd_cpu_ticks PID: utime + stime of a process, in clock ticks.
ipd_cpu_ticks() {
	# Fields after the parenthesised command name; utime and stime are
	# fields 14 and 15 of /proc/PID/stat.
	sed -e 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# ---- tools ----------------------------------------------------------------

# ipd_port: a TCP port nobody uses, below the ephemeral range, different
# at every call (the counter lives in a file: callers use $(ipd_port), a
# subshell).
ipd_port() {
	local i p f=$IPD_TMP/next-port
	[[ -f $f ]] || echo "$IPD_PORT_NEXT" >"$f"
	for ((i = 0; i < 100; i++)); do
		p=$(<"$f")
		((p < IPD_EPH_LO)) || p=10000
		echo $((p + 1)) >"$f"
		# in use in any state (listening, connected, TIME_WAIT)
		if ! ss -Htan "sport = :$p" | grep -q .; then
			echo "$p"
			return 0
		fi
	done
	ipd_fail "no free TCP port"
}

# ipd_wait_listen PORT PID: wait (bounded) until PORT listens; fail if PID dies.
ipd_wait_listen() {
	local port=$1 pid=$2 deadline=$((SECONDS + 30))
	while ((SECONDS < deadline)); do
		ss -Hltn "sport = :$port" | grep -q . && return 0
		ipd_running "$pid" || return 1
		sleep 0.1
	done
	return 1
}

# ipd_run CMD...: run a verbs tool under `timeout` (and the sanitizer
# preload when the provider is sanitized).
ipd_run() {
	timeout -k 5 "$IPD_TOOL_TIMEOUT" "${IPD_TOOL_ENVV[@]}" "$@"
}

# run_pair PORT SERVER_CMD CLIENT_CMD
# The commands are shell strings (word-split by eval).  The server starts
# first; the client starts once PORT listens.  Both run under `timeout`;
# the pair passes only if both exit 0.  Output goes to $IPD_TMP/pair.N.*.
# perftest times with the TSC and measures its rate against the system
# clock before reporting; on a busy VM that fit can fail ("Correlation
# coefficient r^2 ... < 0.9", then "Can't produce a report", exit 1) after
# every transfer succeeded.  Such a pair runs once more, whole; any other
# failure, or that one twice, fails.
IPD_PAIR_N=0
run_pair() {
	local try
	for try in 1 2; do
		run_pair_once "$@" && return 0
		grep -qs "Can't produce a report" "$IPD_PAIR_LAST".{server,client} &&
			grep -qs "Correlation coefficient r^2" "$IPD_PAIR_LAST".{server,client} ||
			return 1
		((try < 2)) || return 1
		ipd_log "perftest could not calibrate its clock (r^2 < 0.9): the pair once more"
	done
	return 1
}

run_pair_once() {
	local port=$1 scmd=$2 ccmd=$3 spid cpid src=0 crc=0 out
	IPD_PAIR_N=$((IPD_PAIR_N + 1))
	out=$IPD_TMP/pair.$IPD_PAIR_N
	ipd_log "server: $scmd"
	# exec: $! is `timeout` itself, which leads its own process group.
	eval "exec timeout -k 5 $IPD_TOOL_TIMEOUT \"\${IPD_TOOL_ENVV[@]}\" $scmd" \
		>"$out.server" 2>&1 &
	spid=$!
	IPD_BG_PIDS+=("$spid")
	if ! ipd_wait_listen "$port" "$spid"; then
		kill -KILL -- "-$spid" 2>/dev/null || true
		wait "$spid" 2>/dev/null || true
		cat "$out.server" >&2
		ipd_log "server did not listen on port $port"
		IPD_PAIR_LAST=$out
		return 1
	fi
	ipd_log "client: $ccmd"
	eval "timeout -k 5 $IPD_TOOL_TIMEOUT \"\${IPD_TOOL_ENVV[@]}\" $ccmd" \
		>"$out.client" 2>&1 || crc=$?
	# The server finishes right after the client; bound the wait anyway.
	wait "$spid" || src=$?
	IPD_PAIR_LAST=$out
	if [[ $src -ne 0 || $crc -ne 0 ]]; then
		ipd_log "---- server (exit $src) ----"; cat "$out.server" >&2
		ipd_log "---- client (exit $crc) ----"; cat "$out.client" >&2
		return 1
	fi
	return 0
}
