#!/bin/bash
# tests/cluster/run.sh — the cluster tests (tests/cluster/test_*.sh): 3 and
# 5 members on loopback ports (25000-26999 by default), with kill -9,
# restarts, partitions (cairn's test-only fault switch), membership
# changes, learners, leadership transfer and a linearizability check under
# faults. See tests/cluster/README.md.
#
# Usage: [SERVER_BIN=path] tests/cluster/run.sh [-v] [FILTER...]
#   SERVER_BIN  server binary (default ./cairn, else cairn at the top of the
#               tree); validate the tests with SERVER_BIN=$(command -v etcd)
#   -v          show each test file's stderr (measured times, verify lines,
#               server start failures)
#   FILTER      run only the files whose name contains one of these words
#   CLUSTER_LONG=1  the long linearizability run
#
# Prints "PASS name" / "FAIL name: reason" / "SKIP name: why" per test and,
# last, exactly one line "N passed, M failed[, K skipped]"; exit status 0
# only when M is 0. Every file runs under FILE_TIMEOUT seconds (default 150).

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
verbose=""
while getopts "v" opt; do
	case $opt in
	v) verbose=1 ;;
	*) echo "usage: $0 [-v] [FILTER...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
: "${FILE_TIMEOUT:=150}"
[ -n "${CLUSTER_LONG:-}" ] && FILE_TIMEOUT=$((FILE_TIMEOUT + 120))

if [ -z "${SERVER_BIN:-}" ]; then
	if [ -x ./cairn ]; then SERVER_BIN=./cairn; else SERVER_BIN=$top/cairn; fi
fi
case $SERVER_BIN in
/*) ;;
*) SERVER_BIN=$(cd "$(dirname "$SERVER_BIN")" 2>/dev/null && pwd)/$(basename "$SERVER_BIN") ;;
esac
export SERVER_BIN
if [ ! -x "$SERVER_BIN" ]; then
	echo "FAIL setup: server binary '$SERVER_BIN' not found or not executable"
	echo "0 passed, 1 failed"
	exit 1
fi
for tool in etcdctl jq curl /usr/bin/python3; do
	if ! command -v "$tool" >/dev/null; then
		echo "FAIL setup: $tool not installed"
		echo "0 passed, 1 failed"
		exit 1
	fi
done

# the order: quick checks first, the long ones last
files=()
for n in basic admin learner snapshot failover partition membership linz; do
	files+=("$here/test_$n.sh")
done
FILTERS=("$@")
selected() {
	local w
	[ ${#FILTERS[@]} -eq 0 ] && return 0
	for w in "${FILTERS[@]}"; do
		case $(basename "$1") in *"$w"*) return 0 ;; esac
	done
	return 1
}

pass=0 fail=0 skip=0
errlog=$(mktemp) || exit 2
trap 'rm -f "$errlog"' EXIT
echo "# server: $SERVER_BIN" >&2
for f in "${files[@]}"; do
	selected "$f" || continue
	name=$(basename "$f" .sh)
	seen=0
	: >"$errlog"
	while IFS= read -r line; do
		case $line in
		"PASS "*) pass=$((pass + 1)); seen=1; echo "$line" ;;
		"FAIL "*) fail=$((fail + 1)); seen=1; echo "$line" ;;
		"SKIP "*) skip=$((skip + 1)); seen=1; echo "$line" ;;
		"RC "*) ;;
		*) [ -n "$verbose" ] && echo "# $line" ;;
		esac
	done < <(timeout -k 5 "$FILE_TIMEOUT" bash "$f" 2>"$errlog"; echo "RC $?")
	rc=${line#RC }
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		fail=$((fail + 1))
		echo "FAIL $name: timed out after ${FILE_TIMEOUT}s"
	elif [ $seen -eq 0 ]; then
		fail=$((fail + 1))
		echo "FAIL $name: no test results (exit status $rc)"
	fi
	if [ -n "$verbose" ] && [ -s "$errlog" ]; then
		grep -v ' Killed  ' "$errlog" | sed "s/^/# $name: /" >&2
	fi
done
if [ "$skip" -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
