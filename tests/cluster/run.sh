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

# shellcheck source=../integration/runner.sh
. "$top/tests/integration/runner.sh"
runner_setup "$top"

# the order: quick checks first, the long ones last
files=()
for n in basic admin learner snapshot failover partition membership linz; do
	files+=("$here/test_$n.sh")
done
FILTERS=("$@")
runner_run "${files[@]}"
