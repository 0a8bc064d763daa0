#!/bin/bash
# tests/linearizability/run.sh — the linearizability checker, tested on
# hand-made and random histories, then used on a history recorded against
# a real server that is killed -9 and restarted in the middle.
#
#   tests/linearizability/run.sh                 # ~15 s
#   LINZ_LONG=1 tests/linearizability/run.sh     # ~2 min: 1000s of random
#                                                # histories, 60 s recording
#                                                # by 8 clients, 5 crashes
#   SERVER_BIN=$(command -v etcd) tests/linearizability/run.sh   # on etcd
#
# Environment: SERVER_BIN (default ./cairn, else cairn at the top of the
# tree), LINZ_CHECK (the checker binary; default the built one, else it is
# compiled here with $CC), LINZ_KEEP=1 keeps the scratch dir (recorded
# histories, server logs), PYTHON (/usr/bin/python3: etcd3 and grpc).
#
# Output: "PASS name" / "FAIL name: reason" per test, then one line
# "N passed, M failed"; exit status 0 only if M is 0.

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
if [ -z "${SERVER_BIN:-}" ]; then
	if [ -x ./cairn ]; then SERVER_BIN=$PWD/cairn; else SERVER_BIN=$TOP/cairn; fi
fi
export SERVER_BIN
: "${PYTHON:=/usr/bin/python3}"
[ -n "${LINZ_KEEP:-}" ] && export ITEST_KEEP=1
# shellcheck source=../integration/lib.sh
. "$TOP/tests/integration/lib.sh"	# servers, run_test, t_fail; EXIT trap

if [ -n "${LINZ_LONG:-}" ]; then
	RANDOM_N=1000 BRUTE_N=30000 REC_SECONDS=60 REC_CLIENTS=8 CRASH_EVERY=9 NCRASH=5
else
	RANDOM_N=100 BRUTE_N=2000 REC_SECONDS=6 REC_CLIENTS=4 CRASH_EVERY=3 NCRASH=1
fi
GEN="$HERE/gen_history.py"
HIST="$ITEST_DIR/recorded.hist"

# find_checker: the linz_check binary, built here from the sources if no
# built one is found.
find_checker() {
	local c
	for c in "${LINZ_CHECK:-}" ./tests/linearizability/linz_check \
		"$HERE/linz_check"; do
		[ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
	done
	c="$ITEST_DIR/linz_check"
	"${CC:-cc}" -std=gnu11 -O2 -D_GNU_SOURCE -I"$TOP" -o "$c" \
		"$HERE/linz.c" "$HERE/linz_load.c" "$HERE/linz_main.c" >&2 ||
		return 1
	echo "$c"
}
LINZ=$(find_checker) || { echo "FAIL linz.build: cannot build linz_check"
	echo "0 passed, 1 failed"; exit 1; }

# lz ARGS...: the checker, bounded in time.
lz() { timeout -k 2 120 "$LINZ" "$@"; }
# lzmany FILE...: the first verdict line of each file, however many files.
lzmany() {
	printf '%s\n' "$@" | xargs timeout -k 2 120 "$LINZ" -q
	return 0
}

# ---- the checker on hand-made histories ---------------------------------

# hist_test FILE: ok_* must be linearizable (0), bad_* must be caught (1).
hist_test() {
	local f=$1 want out rc
	case $(basename "$f") in
	ok_*) want=0 ;;
	*) want=1 ;;
	esac
	out=$(lz "$f")
	rc=$?
	[ $rc -eq $want ] || t_fail "exit $rc, want $want: $out"
	if [ $want -eq 1 ]; then
		case $(basename "$f") in
		bad_revision_*) assert_contains "$out" "VIOLATION revisions" ;;
		*) assert_contains "$out" "VIOLATION key" ;;
		esac
	fi
}

test_parse_error() {
	local f="$ITEST_DIR/bad_format.hist" rc
	printf '0 put k a - 0 10 ok -\n0 get k - - 20 x ok a\n' >"$f"
	lz "$f" >/dev/null 2>"$ITEST_DIR/err"
	rc=$?
	assert_eq "$rc" 3 "exit status on a malformed line"
	assert_contains "$(cat "$ITEST_DIR/err")" "bad_format.hist:2:"
}

# ---- the checker on random histories ------------------------------------

# random_batch KIND WANT SEED0 [OPS KEYS CLIENTS]: RANDOM_N histories of
# KIND (linear|mutate); every one must give the verdict WANT.
random_batch() {
	local kind=$1 want=$2 seed0=$3 dir n bad
	shift 3
	dir="$ITEST_DIR/random_${kind}_$seed0"
	mkdir -p "$dir"
	timeout 120 "$PYTHON" "$GEN" batch "$kind" "$seed0" "$RANDOM_N" \
		"$dir" "$@" || t_fail "generator failed"
	lzmany "$dir"/"$kind"_*.hist >"$dir/out"
	n=$(grep -c ": $want" "$dir/out")
	if [ "$n" != "$RANDOM_N" ]; then
		bad=$(grep -v ": $want" "$dir/out" | head -3)
		t_fail "$n of $RANDOM_N gave $want (replay: $GEN $kind SEED" \
			"OUT $*); first others: $bad"
	fi
}

test_random_linearizable() { random_batch linear OK 1; }
test_random_linearizable_busy() { random_batch linear OK 5001 600 2 8; }
test_random_mutated() { random_batch mutate VIOLATION 1; }
test_random_mutated_busy() { random_batch mutate VIOLATION 5001 600 2 8; }

# Small random histories (random results, about half not linearizable):
# the checker must agree with brute force (brute.py: every order of every
# subset of the unknown ops) on every one. This is what tests the search's
# prunings (greedy reads, unknown-op dominance, value folding).
test_brute_force_agreement() {
	local dir="$ITEST_DIR/brute" n
	mkdir -p "$dir"
	timeout 300 "$PYTHON" "$HERE/brute.py" gen 1 "$BRUTE_N" "$dir" ||
		t_fail "brute.py failed"
	lzmany "$dir"/small_*.hist | awk '{print $1, $2}' | sort >"$dir/got"
	sort "$dir/expected.txt" >"$dir/want"
	n=$(diff "$dir/got" "$dir/want" | grep -c '^<')
	[ "$n" -eq 0 ] || t_fail "$n of $BRUTE_N verdicts differ from brute" \
		"force: $(diff "$dir/got" "$dir/want" | head -4 | tr '\n' ' ')"
	if ! grep -q ': OK' "$dir/want" ||
		! grep -q ': VIOLATION' "$dir/want"; then
		t_fail "brute.py made a one-sided sample"
	fi
}

# 100k ops over 1000 keys must check in seconds.
test_scale_100k() {
	local f="$ITEST_DIR/big.hist" t0 out ms
	timeout 120 "$PYTHON" "$GEN" linear 7 "$f" 100000 1000 16 ||
		t_fail "generator failed"
	t0=$(date +%s%N)
	out=$(lz "$f")
	ms=$((($(date +%s%N) - t0) / 1000000))
	assert_contains "$out" "OK linearizable: 100000 ops"
	[ $ms -lt 10000 ] || t_fail "took $ms ms"
	echo "scale_100k: $ms ms: $out" >&2
}

# ---- a recorded history, with kill -9 and restart ------------------------

test_server_crash() {
	local rp i out ok_after
	start_server s1 || t_fail "server did not start"
	timeout -k 5 $((REC_SECONDS + 60)) "$PYTHON" "$HERE/record.py" \
		--endpoints "127.0.0.1:$PORT" --clients "$REC_CLIENTS" \
		--seconds "$REC_SECONDS" --keys 5 "$HIST" \
		2>"$ITEST_DIR/record.err" &
	rp=$!
	for ((i = 0; i < NCRASH; i++)); do
		sleep "$CRASH_EVERY"
		kill9_server s1
		sleep 0.3
		start_server s1 || t_fail "server did not restart"
	done
	wait $rp || t_fail "recorder failed: $(tail -3 "$ITEST_DIR/record.err")"
	echo "server_crash: $(cat "$ITEST_DIR/record.err")" >&2
	out=$(lz "$HIST")
	assert_eq "$?" 0 "checker exit status ($(short "$out"))"
	# the history must show the server working after the last restart
	ok_after=$(awk -v t="$(grep ' fail \| unknown ' "$HIST" |
		tail -1 | awk '{print $6}')" '$8 == "ok" && $6 > t' "$HIST" |
		wc -l)
	assert_gt "$ok_after" 100 "ops acknowledged after the last crash"
	grep -q ' fail \| unknown ' "$HIST" ||
		t_fail "no op failed: did the crash happen?"
	echo "server_crash: $out" >&2
}

test_server_history_broken() {
	local out rc
	[ -s "$HIST" ] || t_fail "no recorded history (server_crash failed)"
	"$PYTHON" "$GEN" mutate-file 1 "$HIST" "$ITEST_DIR/broken.hist" \
		2>"$ITEST_DIR/mutation" || t_fail "mutation failed"
	out=$(lz "$ITEST_DIR/broken.hist")
	rc=$?
	assert_eq "$rc" 1 "checker exit status on $(cat "$ITEST_DIR/mutation")"
	assert_contains "$out" "VIOLATION key"
	# and the last acknowledged get claiming revision 1: caught by the
	# cross-key revision order
	awk -v n="$(grep -n ' get .* ok ' "$HIST" | tail -1 | cut -d: -f1)" \
		'NR == n { $10 = 1 } { print }' "$HIST" >"$ITEST_DIR/rev.hist"
	out=$(lz "$ITEST_DIR/rev.hist")
	assert_eq "$?" 1 "checker exit status on a stale revision"
	assert_contains "$out" "VIOLATION revisions"
}

# ---- runner -------------------------------------------------------------

passed=0 failed=0
tally() {
	local line
	line=$(run_test "$@")
	echo "$line"
	case ${line##*$'\n'} in
	PASS*) passed=$((passed + 1)) ;;
	*) failed=$((failed + 1)) ;;
	esac
}
for f in "$HERE"/histories/*.hist; do
	n=$(basename "$f" .hist)
	eval "test_hist_$n() { hist_test '$f'; }"
	tally "linz.hist.$n" "test_hist_$n"
done
for fn in parse_error random_linearizable random_linearizable_busy \
	random_mutated random_mutated_busy brute_force_agreement scale_100k \
	server_crash server_history_broken; do
	tally "linz.$fn" "test_$fn"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
