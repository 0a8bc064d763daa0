#!/bin/bash
# tests/cluster/test_linz.sh — linearizability under faults: record.py
# (tests/linearizability) records gets, puts, cas txns and deletes by
# clients spread over all 3 members while the leader is killed -9 and
# restarted and (cairn only) cut off from the majority and healed; the
# history must pass linz_check, show ops that failed or may have failed
# (the faults happened) and ops acknowledged after the last fault.
#
# Short by default (16 s, 6 clients, one fault of each kind);
# CLUSTER_LONG=1 records 90 s with 8 clients and 4 rounds of faults.
. "$(dirname "$0")/lib.sh"
LZ_DIR="$CL_TOP/tests/linearizability"

if [ -n "${CLUSTER_LONG:-}" ]; then
	REC_SECONDS=90 REC_CLIENTS=8 ROUNDS=4
else
	REC_SECONDS=16 REC_CLIENTS=6 ROUNDS=1
fi

# find_checker: the built linz_check, else compiled here from its sources.
find_checker() {
	local c
	for c in "${LINZ_CHECK:-}" ./tests/linearizability/linz_check \
		"$LZ_DIR/linz_check"; do
		[ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
	done
	c="$ITEST_DIR/linz_check"
	"${CC:-cc}" -std=gnu11 -O2 -D_GNU_SOURCE -I"$CL_TOP" -o "$c" \
		"$LZ_DIR/linz.c" "$LZ_DIR/linz_load.c" "$LZ_DIR/linz_main.c" >&2 ||
		return 1
	echo "$c"
}

# fault_kill MEMBERS: kill -9 the leader, restart it 1.5 s later.
fault_kill() {
	local ld
	ld=$(cl_leader "$@") || { echo "linz: no leader to kill" >&2; return 1; }
	echo "linz: $(date +%T.%N) kill -9 $ld" >&2
	kill9_server "$ld"
	sleep 1.5
	cl_restart "$ld"
	cl_wait_healthy "$ld"
}

# fault_cut MEMBERS: cut the leader off from the others for 2 s (cairn).
fault_cut() {
	local ld rest n
	ld=$(cl_leader "$@") || { echo "linz: no leader to cut off" >&2; return 1; }
	rest=$(for n in "$@"; do [ "$n" != "$ld" ] && echo "$n"; done)
	echo "linz: $(date +%T.%N) cut $ld off" >&2
	cl_partition "$ld" "$(echo $rest)" || return 1
	sleep 2
	echo "linz: $(date +%T.%N) heal" >&2
	cl_heal "$@"
}

test_faults_linearizable() {
	local ms=$(cl_members z) hist="$ITEST_DIR/cluster.hist" rp lz out r
	local tlast ok_after
	lz=$(find_checker) || t_fail "cannot build linz_check"
	cl_remember_ids $ms || t_fail "member ids"
	timeout -k 5 $((REC_SECONDS + 60)) "$PYTHON" "$LZ_DIR/record.py" \
		--endpoints "$(cl_eps $ms)" --clients "$REC_CLIENTS" \
		--seconds "$REC_SECONDS" --keys 5 "$hist" \
		2>"$ITEST_DIR/record.err" &
	rp=$!
	sleep 2
	for ((r = 0; r < ROUNDS; r++)); do
		fault_kill $ms || t_fail "kill/restart round $r failed"
		sleep 1
		if [ $IS_ETCD -eq 0 ]; then
			fault_cut $ms || t_fail "partition round $r failed"
			sleep 1
		fi
		[ -n "${CLUSTER_LONG:-}" ] && sleep 6
	done
	tlast=$(date +%s%N)
	wait $rp || t_fail "recorder failed: $(tail -3 "$ITEST_DIR/record.err")"
	[ $(($(date +%s%N) - tlast)) -gt 1000000000 ] ||
		t_fail "the recording ended less than 1 s after the last fault:" \
			"make REC_SECONDS longer"
	echo "linz: $(cat "$ITEST_DIR/record.err")" >&2
	out=$(timeout -k 2 120 "$lz" "$hist")
	assert_eq "$?" 0 "linz_check exit status ($(short "$out"))"
	echo "linz: $out" >&2
	grep -q ' fail \| unknown ' "$hist" ||
		t_fail "no op failed: did the faults happen?"
	# ops acknowledged after the last failed one: the cluster recovered
	ok_after=$(awk -v t="$(grep ' fail \| unknown ' "$hist" |
		tail -1 | awk '{print $6}')" '$8 == "ok" && $6 > t' "$hist" |
		wc -l)
	assert_gt "$ok_after" 50 "ops acknowledged after the last fault"
	[ -n "${CLUSTER_KEEP_HIST:-}" ] && cp "$hist" "$CLUSTER_KEEP_HIST"
	return 0
}

export CL_FAULTS=1
cl_tests_on z 3 -- linz test_faults_linearizable
