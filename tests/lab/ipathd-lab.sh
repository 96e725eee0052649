#!/bin/bash
# SPDX-License-Identifier: MIT
#
# ipathd-lab.sh: a multi-node ipathd lab on one machine.
#
# Each host is a network namespace <prefix><k> (k = 1..N) with one veth
# "eth0" (address 10.77.0.<k>/24, fd77::<k>/64 with --ipv6), plugged into
# a bridge that lives in its own namespace <prefix>br.  Every host runs
# its own ipathd (UDP/RoCEv2 link on eth0) with its own sysfs tree,
# control socket, device node and log under the state directory.  No
# traffic leaves these namespaces.  Run as root.
#
#   ipathd-lab.sh up N [--ipv6] [--mtu BYTES] [--cut-gso] [-- EXTRA IPATHD ARGS...]
#                                  create N hosts and start their daemons;
#                                  --cut-gso: each host's eth0 takes no GSO
#                                  datagrams (gso_max_segs 1), so the kernel
#                                  cuts them into packets (with their IPv4
#                                  IDs 0, 1, ..) before a capture sees them,
#                                  as on a NIC without segmentation offload;
#                                  without it veth and bridge pass them whole
#   ipathd-lab.sh down             stop everything and remove it (idempotent)
#   ipathd-lab.sh exec K CMD...    run CMD in host K with the application
#                                  environment (see "env")
#   ipathd-lab.sh shell K          interactive shell in host K
#   ipathd-lab.sh env K            print that environment as shell exports
#   ipathd-lab.sh addr K [6]       host K's IPv4 (or IPv6) address
#   ipathd-lab.sh gid K [6]        host K's RoCE v2 GID index for that address
#   ipathd-lab.sh netem K ARGS...  impair host K's egress like tc netem: loss,
#                                  delay TIME [JITTER], duplicate, corrupt,
#                                  reorder, e.g. "loss 1% delay 5ms 1ms";
#                                  "off" removes it.  tc netem when the kernel
#                                  has it, else tests/lab/ipl_netem.c
#   ipathd-lab.sh link K up|down   plug/unplug host K (its bridge port)
#   ipathd-lab.sh daemon K start|stop|kill|restart [-- ARGS...]
#                                  control host K's ipathd (kill = SIGKILL);
#                                  ARGS (start/restart): extra ipathd
#                                  arguments for host K from now on
#   ipathd-lab.sh ctl K ARGS...    ipathctl against host K's daemon
#   ipathd-lab.sh status           hosts, addresses, daemons
#   ipathd-lab.sh log K            host K's daemon log
#   ipathd-lab.sh hosts            number of hosts of the running lab
#   ipathd-lab.sh corrupt-drops K  corrupted RoCEv2 packets host K dropped:
#                                  its daemon's drop_icrc plus its kernel's
#                                  Udp InCsumErrors (with UDP GSO, the
#                                  default, the sockets send checksums and
#                                  the kernel drops before the daemon)
#
# Inside "exec"/"shell" these variables are set: SYSFS_PATH, RDMAV_DRIVERS,
# LD_LIBRARY_PATH, IPATHD_SOCKET, IPL_HOST (k), IPL_ADDR, IPL_GID (GID
# index of IPL_ADDR), IPL_DEV (the verbs device name), IPL_PEERS (the
# other hosts' IPv4 addresses).
#
# Environment knobs (the same values must be used for every call):
#   IPL_PREFIX        namespace prefix (default "ipl"; at most 8 characters)
#   IPL_SUBNET        first three IPv4 octets (default 10.77.0)
#   IPL_STATE         state directory (default /run/ipathd-lab/$IPL_PREFIX)
#   IPATHD_BUILD_DIR  build directory (default <source>/build)
#   IPL_LOG_LEVEL     daemon log level (default info)
#   IPL_WAIT          seconds to wait for a daemon to come up (default 15)
#
# A test that calls "up" should install its own trap first, e.g.
#   trap 'tests/lab/ipathd-lab.sh down' EXIT
# "up" itself removes everything it created when it fails half-way.

set -euo pipefail

IPL_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IPL_PREFIX=${IPL_PREFIX:-ipl}
IPL_SUBNET=${IPL_SUBNET:-10.77.0}
IPL_STATE=${IPL_STATE:-/run/ipathd-lab/$IPL_PREFIX}
IPL_BUILD=${IPATHD_BUILD_DIR:-$IPL_SRC/build}
IPL_LOG_LEVEL=${IPL_LOG_LEVEL:-info}
IPL_WAIT=${IPL_WAIT:-15}
IPL_BR_NS=${IPL_PREFIX}br
# the daemon and the applications get absolute paths
IPL_STATE=$(realpath -m "$IPL_STATE")
IPL_BUILD=$(realpath -m "$IPL_BUILD")
IPL_MAX_HOSTS=64

die() { echo "ipathd-lab: $*" >&2; exit 1; }
note() { echo "ipathd-lab: $*" >&2; }

ns_of() { echo "${IPL_PREFIX}$1"; }
host_dir() { echo "$IPL_STATE/host$1"; }
addr4() { echo "$IPL_SUBNET.$1"; }
addr6() { printf 'fd77::%x\n' "$1"; }
dev_node() { echo "uverbs_${IPL_PREFIX}$1"; }

nhosts() {
	[[ -r $IPL_STATE/hosts ]] || return 1
	cat "$IPL_STATE/hosts"
}

check_host() {
	local n
	n=$(nhosts) || die "no lab is up (state $IPL_STATE)"
	[[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= n)) ||
		die "host '$1' is not in 1..$n"
}

ns_exists() { ip netns list 2>/dev/null | grep -qw "^$1"; }

# ---- daemons --------------------------------------------------------------

daemon_pid() {
	local f pid
	f=$(host_dir "$1")/ipathd.pid
	[[ -r $f ]] || return 1
	pid=$(<"$f")
	# only a process that is still our ipathd in our namespace counts
	[[ -d /proc/$pid ]] || return 1
	[[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */ipathd ]] || return 1
	echo "$pid"
}

daemon_start() {
	local k=$1 d ns pid i
	d=$(host_dir "$k")
	ns=$(ns_of "$k")
	[[ -x $IPL_BUILD/daemon/ipathd ]] ||
		die "$IPL_BUILD/daemon/ipathd not built (set IPATHD_BUILD_DIR)"
	daemon_pid "$k" >/dev/null && die "host $k: ipathd already running"
	mkdir -p "$d"
	rm -f "$d/ipathd.sock"
	local extra=()
	[[ -r $IPL_STATE/daemon-args ]] && mapfile -t extra <"$IPL_STATE/daemon-args"
	[[ -r $IPL_STATE/daemon-args.$k ]] &&
		mapfile -t -O "${#extra[@]}" extra <"$IPL_STATE/daemon-args.$k"
	ip netns exec "$ns" "$IPL_BUILD/daemon/ipathd" \
		--link udp --netdev eth0 \
		--sysfs "$d/sysfs" --socket "$d/ipathd.sock" \
		--dev-node "$(dev_node "$k")" \
		--log-level "$IPL_LOG_LEVEL" "${extra[@]}" \
		</dev/null >>"$d/ipathd.log" 2>&1 &
	pid=$!
	echo "$pid" >"$d/ipathd.pid"
	for ((i = 0; i < IPL_WAIT * 10; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$d/ipathd.log" >&2 || true
			die "host $k: ipathd exited during start-up (log $d/ipathd.log)"
		fi
		[[ -S $d/ipathd.sock && -d $d/sysfs/class/infiniband ]] && return 0
		sleep 0.1
	done
	die "host $k: ipathd did not come up in ${IPL_WAIT}s (log $d/ipathd.log)"
}

# SIGTERM, bounded wait, then SIGKILL.  Never touches other processes.
daemon_stop() {
	local k=$1 sig=${2:-TERM} pid i
	pid=$(daemon_pid "$k") || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		note "host $k: ipathd $pid ignored SIGTERM, killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	# a killed daemon leaves its device node behind
	if [[ $sig == KILL ]]; then
		rm -f "/dev/infiniband/$(dev_node "$k")"
	fi
}

# ---- topology ---------------------------------------------------------------

host_create() {
	local k=$1 mtu=$2 v6=$3 ns
	ns=$(ns_of "$k")
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	# the veth is created in the bridge namespace, its peer goes to the host
	ip -n "$IPL_BR_NS" link add "h$k" mtu "$mtu" type veth \
		peer name eth0 netns "$ns"
	ip -n "$IPL_BR_NS" link set "h$k" master br0 up
	ip -n "$ns" link set eth0 mtu "$mtu"
	ip -n "$ns" addr add "$(addr4 "$k")/24" dev eth0
	if [[ $v6 == 1 ]]; then
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0 || true
		ip -n "$ns" addr add "$(addr6 "$k")/64" dev eth0 nodad
	fi
	ip -n "$ns" link set eth0 up
}

lab_up() {
	local n=${1:-}
	shift || true
	local mtu=1500 v6=0 cut=0 k
	local extra=()
	[[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= IPL_MAX_HOSTS)) ||
		die "usage: up N (1..$IPL_MAX_HOSTS) [--ipv6] [--mtu BYTES] [--cut-gso] [-- IPATHD ARGS]"
	while (($#)); do
		case $1 in
		--ipv6) v6=1 ;;
		--mtu) mtu=${2:?--mtu needs a value}; shift ;;
		--cut-gso) cut=1 ;;
		--) shift; extra=("$@"); break ;;
		*) die "up: unknown option $1" ;;
		esac
		shift
	done
	[[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
	if nhosts >/dev/null 2>&1 || ns_exists "$IPL_BR_NS"; then
		die "a lab with prefix '$IPL_PREFIX' exists; run 'down' first"
	fi
	# Whatever fails from here on, leave nothing behind.
	trap 'rc=$?; if ((rc)); then note "up failed, tearing down"; lab_down; fi' EXIT
	mkdir -p "$IPL_STATE"
	printf '%s\n' "${extra[@]}" >"$IPL_STATE/daemon-args"
	[[ ${#extra[@]} -eq 0 ]] && : >"$IPL_STATE/daemon-args"
	echo "$n" >"$IPL_STATE/hosts"
	echo "$v6" >"$IPL_STATE/ipv6"
	ip netns add "$IPL_BR_NS"
	ip -n "$IPL_BR_NS" link set lo up
	ip -n "$IPL_BR_NS" link add br0 type bridge
	# bridged frames need not visit iptables (br_netfilter is built in)
	ip netns exec "$IPL_BR_NS" sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
		net.bridge.bridge-nf-call-ip6tables=0 2>/dev/null || true
	ip -n "$IPL_BR_NS" link set br0 mtu "$mtu" up
	for ((k = 1; k <= n; k++)); do
		host_create "$k" "$mtu" "$v6"
		((!cut)) || ip -n "$(ns_of "$k")" link set eth0 gso_max_segs 1
	done
	for ((k = 1; k <= n; k++)); do
		daemon_start "$k"
	done
	# addresses are reachable before anyone relies on it
	if ((n > 1)) && command -v ping >/dev/null; then
		ip netns exec "$(ns_of 1)" ping -c1 -W2 "$(addr4 2)" >/dev/null ||
			die "host 1 cannot reach host 2"
	fi
	trap - EXIT
	note "lab up: $n hosts ($(addr4 1)..$(addr4 "$n")), state $IPL_STATE"
}

lab_down() {
	local n k ns
	n=$(nhosts 2>/dev/null || echo 0)
	for ((k = 1; k <= n; k++)); do
		daemon_stop "$k"
	done
	# Any process still inside one of our namespaces was started by a
	# lab command (exec/shell): stop it by its pid.
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' |
		    grep -E "^${IPL_PREFIX}([0-9]+|br)$" || true); do
		local pids
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		if [[ -n $pids ]]; then
			kill -TERM $pids 2>/dev/null || true
			sleep 0.3
			pids=$(ip netns pids "$ns" 2>/dev/null || true)
			[[ -n $pids ]] && kill -KILL $pids 2>/dev/null || true
		fi
		ip netns del "$ns" 2>/dev/null || true
	done
	for ((k = 1; k <= n; k++)); do
		rm -f "/dev/infiniband/$(dev_node "$k")"
	done
	rmdir /dev/infiniband 2>/dev/null || true
	if [[ -d $IPL_STATE ]]; then
		# keep the logs for post-mortems; forget the lab
		rm -f "$IPL_STATE/hosts" "$IPL_STATE"/host*/ipathd.pid \
			"$IPL_STATE"/host*/ipathd.sock
	fi
	return 0
}

# ---- per-host commands --------------------------------------------------------

# GID index of an address in host k's published sysfs tree.
gid_index() {
	local k=$1 fam=${2:-4} want g i d
	d=$(host_dir "$k")/sysfs/class/infiniband
	d=$(echo "$d"/*/ports/1/gids)
	if [[ $fam == 6 ]]; then
		want=$(python3 -c 'import ipaddress,sys; print(ipaddress.ip_address(sys.argv[1]).exploded)' "$(addr6 "$k")" 2>/dev/null) || want=
		want=${want//:/}
	else
		local IFS=.
		# shellcheck disable=SC2046
		set -- $(addr4 "$k")
		want=$(printf '00000000000000000000ffff%02x%02x%02x%02x' "$1" "$2" "$3" "$4")
	fi
	for g in "$d"/*; do
		i=${g##*/}
		[[ $(tr -d ':\n' <"$g") == "$want" ]] && { echo "$i"; return 0; }
	done
	return 1
}

dev_name() {
	local d
	d=$(echo "$(host_dir "$1")"/sysfs/class/infiniband/*)
	[[ -d $d ]] || return 1
	echo "${d##*/}"
}

peers() {
	local n k out=()
	n=$(nhosts)
	for ((k = 1; k <= n; k++)); do
		((k == $1)) || out+=("$(addr4 "$k")")
	done
	echo "${out[*]}"
}

env_lines() {
	local k=$1 d
	d=$(host_dir "$k")
	echo "SYSFS_PATH=$d/sysfs"
	echo "RDMAV_DRIVERS=ipathd"
	echo "LD_LIBRARY_PATH=$IPL_BUILD/provider${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	echo "IPATHD_SOCKET=$d/ipathd.sock"
	# A sanitized provider is dlopen()ed into uninstrumented tools: ASan
	# must come first (tests/lib.sh does the same for one-host tests).
	local asan
	asan=$(ldd "$IPL_BUILD/provider/libipathd-rdmav34.so" 2>/dev/null |
		awk '/libasan\.so/ { print $3; exit }')
	if [[ -n $asan ]]; then
		echo "LD_PRELOAD=$asan${LD_PRELOAD:+:$LD_PRELOAD}"
		echo "ASAN_OPTIONS=detect_leaks=0:halt_on_error=1"
		echo "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
	fi
	echo "IPL_HOST=$k"
	echo "IPL_ADDR=$(addr4 "$k")"
	echo "IPL_GID=$(gid_index "$k" || echo 1)"
	echo "IPL_DEV=$(dev_name "$k" || echo ipath0)"
	echo "IPL_PEERS=$(peers "$k")"
	[[ $(cat "$IPL_STATE/ipv6" 2>/dev/null) == 1 ]] &&
		echo "IPL_GID6=$(gid_index "$k" 6 || echo)"
	return 0
}

host_exec() {
	local k=$1 envs=()
	shift
	check_host "$k"
	(($#)) || die "exec: no command"
	mapfile -t envs < <(env_lines "$k")
	exec ip netns exec "$(ns_of "$k")" env "${envs[@]}" "$@"
}

# ---- impairment -----------------------------------------------------------
#
# tc netem when the kernel has it.  Kernels built without sch_netem (the
# project's machines) get tests/lab/ipl_netem.c instead: host k's bridge
# port h<k> is unplugged from br0 and ipl-netem forwards between it and a
# new veth pair n<k>a/n<k>b whose far end is plugged in, impairing frames
# that host k sends (its egress, like netem on its eth0).  IPL_NETEM=user
# forces ipl-netem, IPL_NETEM=tc forbids it.

netem_bin() {
	local b
	for b in "$IPL_BUILD/tests/net/ipl-netem" "$IPL_STATE/ipl-netem"; do
		[[ -x $b && $b -nt $IPL_SRC/tests/lab/ipl_netem.c ]] &&
			{ echo "$b"; return 0; }
	done
	b=$IPL_STATE/ipl-netem
	"${CC:-cc}" -O2 -o "$b" "$IPL_SRC/tests/lab/ipl_netem.c" >&2 ||
		die "cannot build ipl-netem"
	echo "$b"
}

user_netem_stop() {
	local k=$1 f pid i
	f=$(host_dir "$k")/netem.pid
	[[ -r $f ]] || return 0
	pid=$(<"$f")
	if [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */ipl-netem ]]; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

user_netem_unsplice() {
	local k=$1
	user_netem_stop "$k"
	if ip -n "$IPL_BR_NS" link show "n${k}a" >/dev/null 2>&1; then
		ip -n "$IPL_BR_NS" link del "n${k}a"
		ip -n "$IPL_BR_NS" link set "h$k" master br0
	fi
}

user_netem_start() {
	local k=$1 bin mtu d pid i
	shift
	bin=$(netem_bin)
	d=$(host_dir "$k")
	user_netem_stop "$k"
	if ! ip -n "$IPL_BR_NS" link show "n${k}a" >/dev/null 2>&1; then
		mtu=$(ip -n "$IPL_BR_NS" -o link show "h$k" |
		      sed -n 's/.* mtu \([0-9]*\).*/\1/p')
		ip -n "$IPL_BR_NS" link add "n${k}a" mtu "$mtu" type veth \
			peer name "n${k}b" mtu "$mtu"
		ip -n "$IPL_BR_NS" link set "h$k" nomaster
		ip -n "$IPL_BR_NS" link set "n${k}b" master br0 up
		ip -n "$IPL_BR_NS" link set "n${k}a" up
	fi
	ip netns exec "$IPL_BR_NS" "$bin" "h$k" "n${k}a" "$@" \
		</dev/null >>"$d/netem.log" 2>&1 &
	pid=$!
	echo "$pid" >"$d/netem.pid"
	for ((i = 0; i < 20; i++)); do
		kill -0 "$pid" 2>/dev/null ||
			die "ipl-netem failed: $(tail -n 3 "$d/netem.log")"
		grep -q "^ipl-netem: h$k" "$d/netem.log" 2>/dev/null && return 0
		sleep 0.05
	done
}

netem() {
	local k=$1 ns mode=${IPL_NETEM:-auto}
	shift
	check_host "$k"
	ns=$(ns_of "$k")
	if [[ ${1:-} == off ]]; then
		ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
		user_netem_unsplice "$k"
		return 0
	fi
	(($#)) || die "netem: no arguments (e.g. loss 1%, or off)"
	if [[ $mode != user ]] &&
	   ip netns exec "$ns" tc qdisc replace dev eth0 root netem "$@" 2>/dev/null; then
		user_netem_unsplice "$k"
		return 0
	fi
	[[ $mode == tc ]] && die "tc netem failed (kernel without sch_netem?)"
	user_netem_start "$k" "$@"
}

lab_status() {
	local n k pid
	n=$(nhosts) || { echo "no lab (prefix $IPL_PREFIX)"; return 0; }
	echo "lab '$IPL_PREFIX': $n hosts, state $IPL_STATE"
	for ((k = 1; k <= n; k++)); do
		pid=$(daemon_pid "$k") || pid="-"
		printf '  host %d  ns %-8s  %-15s  ipathd pid %-7s  dev %s gid %s\n' \
			"$k" "$(ns_of "$k")" "$(addr4 "$k")" "$pid" \
			"$(dev_name "$k" || echo -)" "$(gid_index "$k" || echo -)"
	done
}

usage() {
	sed -n '4,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

main() {
	local cmd=${1:-}
	shift || true
	case $cmd in
	up) lab_up "$@" ;;
	down) lab_down ;;
	exec) host_exec "$@" ;;
	shell)
		check_host "${1:-}"
		host_exec "$1" "${SHELL:-/bin/bash}" -i
		;;
	env)
		check_host "${1:-}"
		env_lines "$1" | sed 's/^/export /; s/=\(.*\)$/="\1"/'
		;;
	addr)
		check_host "${1:-}"
		if [[ ${2:-4} == 6 ]]; then addr6 "$1"; else addr4 "$1"; fi
		;;
	gid)
		check_host "${1:-}"
		gid_index "$1" "${2:-4}" || die "host $1: no GID for its address"
		;;
	netem) netem "$@" ;;
	link)
		check_host "${1:-}"
		[[ ${2:-} == up || ${2:-} == down ]] || die "link K up|down"
		ip -n "$IPL_BR_NS" link set "h$1" "$2"
		;;
	daemon)
		check_host "${1:-}"
		if [[ ${3:-} == -- ]]; then
			printf '%s\n' "${@:4}" >"$IPL_STATE/daemon-args.$1"
		fi
		case ${2:-} in
		start) daemon_start "$1" ;;
		stop) daemon_stop "$1" ;;
		kill) daemon_stop "$1" KILL ;;
		restart) daemon_stop "$1"; daemon_start "$1" ;;
		*) die "daemon K start|stop|kill|restart" ;;
		esac
		;;
	ctl)
		check_host "${1:-}"
		local k=$1
		shift
		ip netns exec "$(ns_of "$k")" "$IPL_BUILD/daemon/ipathctl" \
			--socket "$(host_dir "$k")/ipathd.sock" "$@"
		;;
	status) lab_status ;;
	log)
		check_host "${1:-}"
		cat "$(host_dir "$1")/ipathd.log"
		;;
	hosts) nhosts || die "no lab is up" ;;
	corrupt-drops)
		check_host "${1:-}"
		local icrc csum
		icrc=$(main ctl "$1" counters |
		       awk '$1 == "drop_icrc" { v = $2 } END { print v + 0 }')
		csum=$(ip netns exec "$(ns_of "$1")" cat /proc/net/snmp | awk '
			$1 == "Udp:" && !h { for (i = 2; i <= NF; i++) c[$i] = i; h = 1; next }
			$1 == "Udp:" { print $c["InCsumErrors"] + 0 }')
		echo $((icrc + ${csum:-0}))
		;;
	-h | --help | help) usage 0 ;;
	*) usage 1 >&2 ;;
	esac
}

main "$@"
