# tests/integration/runner.sh — what tests/integration/run.sh and
# tests/cluster/run.sh share: find the server, check the tools, run each test
# file under a time bound and count its "PASS/FAIL/SKIP name" lines.
# Sourced by both. The caller sets verbose, FILE_TIMEOUT and FILTERS, and
# may fill the associative array pending (test name -> why: a FAIL of one is
# counted as skipped). runner_run sets an EXIT trap that removes its scratch
# file.
# shellcheck shell=bash

declare -A pending=()

# runner_setup TOP: resolve SERVER_BIN (default ./cairn, else TOP/cairn) to an
# absolute path and export it; when it or a needed tool is missing, print a
# "FAIL setup" line and the summary line, and exit 1.
runner_setup() {
	local tool
	if [ -z "${SERVER_BIN:-}" ]; then
		if [ -x ./cairn ]; then SERVER_BIN=./cairn; else SERVER_BIN=$1/cairn; fi
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
}

# runner_selected FILE: 0 when there is no filter or one of FILTERS is part
# of "dir/file" (e.g. integration/test_kv.sh, crash/kill9.sh).
runner_selected() {
	local f=$1 w
	[ ${#FILTERS[@]} -eq 0 ] && return 0
	for w in "${FILTERS[@]}"; do
		case $(basename "$(dirname "$f")")/$(basename "$f") in
		*"$w"*) return 0 ;;
		esac
	done
	return 1
}

# runner_run FILE...: run each selected FILE under timeout(1) (FILE_TIMEOUT
# seconds), echo its result lines (and, with verbose, its other output and
# stderr), then print "N passed, M failed[, K skipped]". A file that times
# out or prints no result counts as one failure. 0 only when M is 0.
runner_run() {
	local f name seen line t rc pass=0 fail=0 skip=0
	errlog=$(mktemp) || exit 2
	trap 'rm -f "$errlog"' EXIT
	echo "# server: $SERVER_BIN" >&2
	for f in "$@"; do
		runner_selected "$f" || continue
		name=$(basename "$f" .sh)
		seen=0
		: >"$errlog"
		while IFS= read -r line; do
			case $line in
			"PASS "*)
				pass=$((pass + 1)); seen=1; t=${line#PASS }
				if [ -n "${pending[$t]:-}" ]; then
					echo "$line (listed in pending.txt: remove it there)"
				else
					echo "$line"
				fi ;;
			"FAIL "*)
				seen=1; t=${line#FAIL }; t=${t%%:*}
				if [ -n "${pending[$t]:-}" ]; then
					skip=$((skip + 1))
					echo "SKIP $t: pending (${pending[$t]}); it failed with:${line#FAIL "$t":}"
				else
					fail=$((fail + 1)); echo "$line"
				fi ;;
			"SKIP "*) skip=$((skip + 1)); seen=1; echo "$line" ;;
			"RC "*) ;;
			*) [ -n "$verbose" ] && echo "# $line" ;;
			esac
		done < <(timeout -k 5 "$FILE_TIMEOUT" bash "$f" 2>"$errlog"; echo "RC $?")
		# the last line read was "RC n" (the file's exit status)
		rc=${line#RC }
		if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
			fail=$((fail + 1))
			echo "FAIL $name: timed out after ${FILE_TIMEOUT}s"
		elif [ $seen -eq 0 ]; then
			fail=$((fail + 1))
			echo "FAIL $name: no test results (exit status $rc)"
		fi
		if [ -n "$verbose" ] && [ -s "$errlog" ]; then
			# not bash's "Killed" notes of the servers a test kill -9s
			grep -v ' Killed  ' "$errlog" | sed "s/^/# $name: /" >&2
		fi
	done
	if [ "$skip" -gt 0 ]; then
		echo "$pass passed, $fail failed, $skip skipped"
	else
		echo "$pass passed, $fail failed"
	fi
	[ "$fail" -eq 0 ]
}
