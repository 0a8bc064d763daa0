#!/bin/bash
# tests/crash/kill9.sh — no acknowledged write is lost across kill -9.
#
# Three rounds on ONE data dir. Each round: start the server, run
# crashio.py writers (CRASH_PROCS processes, own connections) that log a key
# only after its put was acknowledged (fsync'd log), kill -9 the server while
# puts are in flight, restart it on the same data dir, and verify that every
# key acknowledged in any round so far is there with its value and revision
# and that a new put gets a higher revision than any acknowledged one.
#
# Usage: SERVER_BIN=path tests/crash/kill9.sh   (or tests/integration/run.sh -c)
# Output: "PASS crash.roundN" / "FAIL crash.roundN: reason" per round, then
# "N passed, M failed"; exit 0 only when every round passed.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/lib.sh"

: "${CRASH_ROUNDS:=3}"
: "${CRASH_PROCS:=6}"
LOGDIR="$ITEST_DIR/acks"
mkdir -p "$LOGDIR" || exit 2

# acked ROUND: acknowledged puts logged so far in ROUND.
acked() {
	cat "$LOGDIR"/ack."$1".* 2>/dev/null | wc -l
}

# crash_round N: writers on, kill -9 mid-flight, restart, verify.
crash_round() {
	local n=$1 wpid i out before
	server_alive c1 || start_server c1 || t_fail "server did not start"
	timeout -k 2 60 "$PYTHON" "$here/crashio.py" write "$PORT" "$LOGDIR" \
		"$n" "$CRASH_PROCS" 30 >/dev/null 2>&1 &
	wpid=$!
	# let the writers get going (bounded), then crash at a random moment
	for ((i = 0; i < 100; i++)); do
		[ "$(acked "$n")" -ge 200 ] && break
		sleep 0.1
	done
	sleep "0.$((RANDOM % 9 + 1))"
	before=$(acked "$n")
	kill9_server c1
	wait "$wpid"
	[ "$before" -gt 0 ] || t_fail "no put was acknowledged before the kill"
	start_server c1 || t_fail "server did not restart after kill -9"
	out=$(py "$here/crashio.py" verify "$PORT" "$LOGDIR" 2>&1)
	case $out in
	ok*) echo "round $n: $(acked "$n") acked; $out" >&2 ;;
	*) t_fail "$(short "$out")" ;;
	esac
}

round_1() { crash_round 1; }
round_2() { crash_round 2; }
round_3() { crash_round 3; }
round_4() { crash_round 4; }
round_5() { crash_round 5; }

if ! start_server c1; then
	echo "FAIL crash.start: server did not start"
	echo "0 passed, 1 failed"
	exit 1
fi
passed=0
failed=0
for ((r = 1; r <= CRASH_ROUNDS && r <= 5; r++)); do
	if run_test "crash.round$r" "round_$r"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
