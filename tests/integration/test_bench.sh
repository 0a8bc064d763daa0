#!/bin/bash
# cairn-bench (tools/bench) against the server under test: every workload
# runs a tiny load and its report is checked, and what the load wrote is
# checked with etcdctl. Passes on etcd too (SERVER_BIN=$(command -v etcd)).
#
# The bench binary: $BENCH_BIN, else tools/cairn-bench beside the server
# binary (the build tree), else at the top of the source tree, else on PATH.
. "$(dirname "$0")/lib.sh"

: "${BENCH_TIMEOUT:=60}"
top=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${BENCH_BIN:-}" ]; then
	for b in "$(dirname "$SERVER_BIN")/tools/cairn-bench" \
		"$top/tools/cairn-bench" "$(command -v cairn-bench)"; do
		if [ -n "$b" ] && [ -x "$b" ]; then
			BENCH_BIN=$b
			break
		fi
	done
fi

# bench ARGS...: cairn-bench against the current server, bounded; stdout
# is the report, stderr goes to $ITEST_DIR/bench.err.
bench() {
	timeout -k 2 "$BENCH_TIMEOUT" "$BENCH_BIN" \
		--endpoints "127.0.0.1:$PORT" "$@" 2>"$ITEST_DIR/bench.err"
}

# count PREFIX: number of keys under PREFIX.
count() {
	jfield "$(ec get "$1" --prefix --keys-only -w json)" '.count // 0'
}

test_put_json() {
	local js
	js=$(bench --json --quiet --clients 4 --conns 2 --total 200 \
		--sequential-keys --key-space 200 --prefix tb/put/ put) ||
		t_fail "exit status $?: $(cat "$ITEST_DIR/bench.err")"
	assert_eq "$(jfield "$js" .workload)" put "workload"
	assert_eq "$(jfield "$js" .requests)" 200 "requests"
	assert_eq "$(jfield "$js" .errors)" 0 "errors"
	assert_eq "$(jfield "$js" .aborted)" false "aborted"
	assert_eq "$(jfield "$js" '.throughput > 0')" true "throughput"
	assert_eq "$(jfield "$js" '.latency_ms | .min <= .p50 and .p50 <= .p90
		and .p90 <= .p99 and .p99 <= ."p99.9" and ."p99.9" <= .max
		and .min <= .mean and .mean <= .max and .min > 0')" true \
		"latency order"
	assert_eq "$(count tb/put/)" 200 "keys written"
	# keys are the prefix + a zero-padded number filling --key-size (16
	# by default), the value 8 bytes a..h
	assert_eq "$(ec get tb/put/000000042 --print-value-only)" abcdefgh \
		"value"
}

test_text_report() {
	local out
	out=$(bench --quiet --clients 2 --total 50 --prefix tb/txt/ put) ||
		t_fail "exit status $?"
	assert_contains "$out" "workload:    put"
	assert_contains "$out" "requests:    50"
	assert_contains "$out" "errors:      0"
	assert_contains "$out" "throughput:"
	assert_contains "$out" "p99.9"
	assert_contains "$out" "bench cpu:"
}

test_preload_range() {
	local js hit miss
	js=$(bench --json --quiet --preload 300 --batch 128 --clients 2 \
		--prefix tb/rng/ --key-space 300) || t_fail "preload failed"
	assert_eq "$(jfield "$js" .workload)" preload "workload"
	assert_eq "$(jfield "$js" .requests)" 3 "txns (128+128+44)"
	assert_eq "$(jfield "$js" .keys)" 300 "keys"
	assert_eq "$(count tb/rng/)" 300 "keys stored"
	# serializable ranges over the preloaded keys find them; over an
	# empty prefix they find nothing and their responses are smaller
	js=$(bench --json --quiet --clients 8 --total 400 --consistency s \
		--prefix tb/rng/ --key-space 300 range) || t_fail "range s"
	assert_eq "$(jfield "$js" .requests)" 400 "range requests"
	assert_eq "$(jfield "$js" .errors)" 0 "range errors"
	hit=$(jfield "$js" .resp_bytes)
	js=$(bench --json --quiet --clients 8 --total 400 --consistency s \
		--prefix tb/none/ --key-space 300 range) || t_fail "range miss"
	miss=$(jfield "$js" .resp_bytes)
	assert_gt "$hit" "$((miss + 400 * 20))" "bytes of found vs missing"
	js=$(bench --json --quiet --clients 8 --total 400 --consistency l \
		--prefix tb/rng/ --key-space 300 range) || t_fail "range l"
	assert_eq "$(jfield "$js" .errors)" 0 "linearizable range errors"
	assert_eq "$(jfield "$js" .resp_bytes)" "$hit" "same answers"
}

test_txn_put_delete() {
	local js
	js=$(bench --json --quiet --clients 4 --total 100 --sequential-keys \
		--key-space 100 --val-size 20 --prefix tb/del/ txn-put) ||
		t_fail "txn-put failed"
	assert_eq "$(jfield "$js" .errors)" 0 "txn-put errors"
	assert_eq "$(count tb/del/)" 100 "keys after txn-put"
	assert_eq "$(ec get tb/del/000000007 --print-value-only)" \
		abcdefghijklmnopqrst "value"
	js=$(bench --json --quiet --clients 4 --total 100 --sequential-keys \
		--key-space 100 --prefix tb/del/ delete) ||
		t_fail "delete failed"
	assert_eq "$(jfield "$js" .requests)" 100 "delete requests"
	assert_eq "$(jfield "$js" .errors)" 0 "delete errors"
	assert_eq "$(count tb/del/)" 0 "keys after delete"
}

test_mixed_duration_progress() {
	local js
	js=$(bench --json --clients 4 --conns 2 --duration 2200ms \
		--read-ratio 0.5 --prefix tb/mix/ mixed) || t_fail "mixed"
	assert_eq "$(jfield "$js" .errors)" 0 "errors"
	assert_gt "$(jfield "$js" .requests)" 10 "requests"
	assert_eq "$(jfield "$js" '.seconds >= 2.1 and .seconds < 12')" true \
		"seconds"
	assert_contains "$(cat "$ITEST_DIR/bench.err")" "] mixed: " \
		"progress on stderr"
	js=$(bench --json --quiet --clients 2 --duration 1100ms \
		--read-ratio 1 --prefix tb/mix/ mixed) || t_fail "mixed quiet"
	assert_eq "$(cat "$ITEST_DIR/bench.err")" "" "--quiet stderr"
	assert_gt "$(count tb/mix/)" 0 "mixed wrote keys"
}

test_errors_counted() {
	local js rc
	# 2 MB values are over the default --max-request-bytes (1.5 MiB)
	js=$(bench --json --quiet --clients 2 --total 4 --val-size 2000000 \
		--prefix tb/big/ put)
	rc=$?
	assert_eq "$rc" 1 "exit status with errors"
	assert_eq "$(jfield "$js" .requests)" 4 "requests"
	assert_eq "$(jfield "$js" .errors)" 4 "errors"
	assert_eq "$(jfield "$js" .errors_by_status.INVALID_ARGUMENT)" 4 \
		"by status"
	assert_contains "$(jfield "$js" .first_error)" "request is too large"
	assert_eq "$(count tb/big/)" 0 "nothing written"
}

test_bad_usage() {
	local rc port
	bench --total 1 --clients 0 put >/dev/null
	assert_eq "$?" 2 "exit status of a bad flag"
	port=$(free_ports 1)
	timeout -k 2 "$BENCH_TIMEOUT" "$BENCH_BIN" --endpoints \
		"127.0.0.1:$port" --total 1 put >/dev/null 2>&1
	rc=$?
	assert_eq "$rc" 2 "exit status with no server"
}

if [ -z "${BENCH_BIN:-}" ]; then
	for f in $(suite_fns); do
		echo "FAIL bench.${f#test_}: cairn-bench not found (set BENCH_BIN)"
	done
	exit 1
fi
run_suite bench
