#!/usr/bin/env bash
# cairn set-up for a fresh Debian 12 machine (run as root, or with sudo).
#
#   tools/bootstrap.sh run  [cairn flags...]  install, build, start a server
#   tools/bootstrap.sh test                   install, build, run every test
#   tools/bootstrap.sh build                  install and build only
#
# Installs only the Debian packages that are missing, builds in place
# (./cairn), and for `test` runs `make check` (unit tests, integration
# tests with etcdctl and python etcd3, the kill -9 crash test).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
	build-essential autoconf automake libtool pkg-config
	libevent-dev libnghttp2-dev nanopb libnanopb-dev protobuf-compiler
	libsqlite3-dev librocksdb-dev libssl-dev libyaml-dev libjansson-dev
	check libsubunit-dev
	etcd-client etcd-server python3-etcd3 python3-grpcio python3-protobuf curl procps jq
)

install_missing() {
	local missing=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "bootstrap: installing ${missing[*]}"
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
	# Debian starts the etcd it just installed on localhost:2379, cairn's
	# default port; the tests only run etcd themselves, on free ports.
	if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null &&
		systemctl is-active --quiet etcd 2>/dev/null; then
		$sudo systemctl disable --now etcd >/dev/null 2>&1 || true
	fi
}

build() {
	[ -x configure ] && [ configure -nt configure.ac ] || ./autogen.sh
	[ -f Makefile ] && [ config.status -nt configure ] || ./configure
	make -j"$(nproc)"
}

# Print the closing tally from every test log: Check's "Checks: N,
# Failures: F, Errors: E" lines and the integration scripts' "N passed,
# M failed" lines.
tally() {
	local passed=0 failed=0 line n f e ran=
	while read -r line; do
		if [[ $line =~ Checks:\ ([0-9]+),\ Failures:\ ([0-9]+),\ Errors:\ ([0-9]+) ]]; then
			n=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]} e=${BASH_REMATCH[3]}
			passed=$((passed + n - f - e)); failed=$((failed + f + e))
		elif [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
			passed=$((passed + BASH_REMATCH[1])); failed=$((failed + BASH_REMATCH[2]))
		elif [[ $line =~ ^Ran\ ([0-9]+)\ tests? ]]; then
			ran=${BASH_REMATCH[1]}       # python unittest
		elif [[ $line =~ ^OK ]] && [ -n "${ran:-}" ]; then
			passed=$((passed + ran)); ran=
		elif [[ $line =~ ^FAILED\ \((.*)\) ]] && [ -n "${ran:-}" ]; then
			f=0
			[[ ${BASH_REMATCH[1]} =~ failures=([0-9]+) ]] && f=$((f + BASH_REMATCH[1]))
			[[ ${BASH_REMATCH[1]} =~ errors=([0-9]+) ]] && f=$((f + BASH_REMATCH[1]))
			passed=$((passed + ran - f)); failed=$((failed + f)); ran=
		fi
	done < <(cat tests/unit/check_cairn.log tests/unit/check_interop.sh.log \
		tests/grpc/check_transport.sh.log tests/integration/run.sh.log \
		tests/crash/kill9.sh.log tests/linearizability/run.sh.log 2>/dev/null)
	echo "$passed passed, $failed failed"
}

cmd=${1:-run}
[ $# -gt 0 ] && shift
install_missing
build
case "$cmd" in
run) exec ./cairn "$@" ;;
build) ;;
test)
	rc=0
	make check VERBOSE=1 || rc=$?
	tally
	exit $rc
	;;
*) echo "usage: $0 run|test|build" >&2; exit 2 ;;
esac
