#!/bin/bash
# `meson install --destdir` puts every file README's "Installing" names
# where it says: ipathd (sbin), ipathctl (bin), the provider in
# <libdir>/libibverbs/, the libibverbs driver file naming that provider by
# absolute path, ipathd.conf, the environment snippet and the systemd unit
# (ExecStart = the installed daemon).  The installed programs run and the
# installed provider's libraries resolve.
# usage: install.sh BUILD_DIR
set -euo pipefail

build=${1:?usage: install.sh BUILD_DIR}
dest=$(mktemp -d "${TMPDIR:-/tmp}/ipathd-install.XXXXXX")
trap 'rm -rf "$dest"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

meson install -C "$build" --destdir "$dest" --no-rebuild --quiet ||
	fail "meson install"

# Directories as configured: absolute, or relative to the prefix.
opt() {
	meson introspect "$build" --buildoptions |
		python3 -c 'import json, sys
for o in json.load(sys.stdin):
    if o["name"] == sys.argv[1]:
        print(o["value"])' "$1"
}
prefix=$(opt prefix)
abs() { case $1 in /*) echo "$1" ;; *) echo "$prefix/$1" ;; esac; }
sbindir=$(abs "$(opt sbindir)")
bindir=$(abs "$(opt bindir)")
libdir=$(abs "$(opt libdir)")
sysconfdir=$(abs "$(opt sysconfdir)")
datadir=$(abs "$(opt datadir)")
provdir=$(opt provider_dir)
provdir=$(abs "${provdir:-$(opt libdir)/libibverbs}")
driverdir=$(abs "$(opt ibverbs_driver_dir)")
unitdir=$(opt systemd_unit_dir)
unitdir=$(abs "${unitdir:-lib/systemd/system}")

check_file() {
	[[ -f $dest$1 ]] || fail "$1 not installed (DESTDIR $dest)"
	echo "  ok  $1"
}
check_file "$sbindir/ipathd"
check_file "$bindir/ipathctl"
check_file "$provdir/libipathd-rdmav34.so"
check_file "$driverdir/ipathd.driver"
check_file "$sysconfdir/ipathd/ipathd.conf"
check_file "$datadir/ipathd/ipathd.env"
check_file "$unitdir/ipathd.service"

[[ -x $dest$sbindir/ipathd && -x $dest$bindir/ipathctl ]] ||
	fail "ipathd or ipathctl not executable"
want="driver $provdir/libipathd"
got=$(cat "$dest$driverdir/ipathd.driver")
[[ $got == "$want" ]] || fail "ipathd.driver says '$got', want '$want'"
grep -qx "ExecStart=$sbindir/ipathd" "$dest$unitdir/ipathd.service" ||
	fail "ipathd.service: ExecStart is not $sbindir/ipathd"
grep -q '^SYSFS_PATH=' "$dest$datadir/ipathd/ipathd.env" ||
	fail "ipathd.env sets no SYSFS_PATH"
"$dest$sbindir/ipathd" --help >/dev/null || fail "installed ipathd --help"
"$dest$bindir/ipathctl" --help >/dev/null || fail "installed ipathctl --help"
if ldd "$dest$provdir/libipathd-rdmav34.so" | grep -q 'not found'; then
	ldd "$dest$provdir/libipathd-rdmav34.so" >&2
	fail "the installed provider has unresolved libraries"
fi
echo "PASS install ($(find "$dest" -type f | wc -l) files under prefix $prefix)"
