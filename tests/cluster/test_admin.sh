#!/bin/bash
# tests/cluster/test_admin.sh — `etcdctl endpoint status --cluster -w table`
# (one row per member: one leader, one raft term, raft index, is learner)
# and `etcdctl move-leader` (to a follower: it leads after; to an id that is
# not a member, and through an endpoint list without the leader: etcd's
# errors).
. "$(dirname "$0")/lib.sh"

test_status_table() {
	local ms=$(cl_members a) out hdr rows ld
	ld=$(cl_wait_leader $ms) || t_fail "no leader"
	out=$(ecn a1 endpoint status --cluster -w table 2>"$ITEST_DIR/st.err") ||
		t_fail "endpoint status --cluster:" \
			"$(nolog <"$ITEST_DIR/st.err" | head -2)"
	hdr=$(echo "$out" | grep ENDPOINT)
	for col in ENDPOINT ID VERSION "IS LEADER" "IS LEARNER" "RAFT TERM" \
		"RAFT INDEX" "RAFT APPLIED INDEX" ERRORS; do
		assert_contains "$hdr" "$col" "table header"
	done
	rows=$(echo "$out" | grep '^| http')
	assert_eq "$(echo "$rows" | wc -l)" 3 "rows: $out"
	# columns: 1 endpoint 2 id 3 version 4 db size 5 leader 6 learner
	# 7 term 8 index 9 applied 10 errors
	rows=$(echo "$rows" | awk -F'|' '{for (i = 2; i <= 11; i++) {
		gsub(/^ +| +$/, "", $i); printf "%s;", $i } print ""}')
	assert_eq "$(echo "$rows" | awk -F';' '$5 == "true"' | wc -l)" 1 \
		"rows with IS LEADER true: $rows"
	assert_eq "$(echo "$rows" | awk -F';' '$5 == "true" {print $2}')" \
		"$(cl_id "$ld")" "leader's row id"
	assert_eq "$(echo "$rows" | awk -F';' '$6 != "false"' | wc -l)" 0 \
		"rows with IS LEARNER not false: $rows"
	assert_eq "$(echo "$rows" | awk -F';' '{print $7}' | sort -u | wc -l)" 1 \
		"one raft term in: $rows"
	echo "$rows" | awk -F';' '$8 !~ /^[1-9][0-9]*$/ || $9 !~ /^[1-9][0-9]*$/ \
		{ exit 1 }' || t_fail "raft index / applied index: $rows"
	local n
	for n in $ms; do
		assert_contains "$rows" "$(cl_ep "$n");$(cl_id "$n");" "row of $n"
	done
}

test_move_leader() {
	local ms=$(cl_members a) ld to out nl t0 t1
	ld=$(cl_wait_leader $ms) || t_fail "no leader"
	to=$(for n in $ms; do [ "$n" != "$ld" ] && echo "$n"; done | tail -1)
	t0=$(cl_status "$ld" | awk '{print $3}')
	out=$(timeout -k 2 20 etcdctl --endpoints="$(cl_eps $ms)" \
		move-leader "$(cl_id "$to")" 2>&1) || t_fail "move-leader: $out"
	assert_contains "$out" \
		"Leadership transferred from $(cl_id "$ld") to $(cl_id "$to")"
	nl=$(cl_wait_leader $ms) || t_fail "no leader after the transfer"
	assert_eq "$nl" "$to" "leader after move-leader"
	t1=$(cl_status "$to" | awk '{print $3}')
	assert_gt "$t1" "$t0" "raft term after the transfer"
	ecn "$ld" put adm/after-move x >/dev/null || t_fail "put on the old leader"
	# to a member id that does not exist: etcd's error
	out=$(timeout -k 2 20 etcdctl --endpoints="$(cl_eps $ms)" move-leader \
		12345 2>&1 | sed -n 's/^Error: //p')
	assert_eq "$out" "etcdserver: bad leader transferee" "move-leader to 12345"
	# etcdctl needs the leader among the endpoints it is given
	out=$(ecn_err "$ld" move-leader "$(cl_id "$ld")")
	assert_eq "$out" "no leader endpoint given at [$(cl_ep "$ld")]" \
		"move-leader through a follower only"
}

cl_tests_on a 3 -- admin test_status_table test_move_leader
