#!/bin/bash
# tests/cluster/test_learner.sh — a learner: `member add --learner` (listed
# as a learner), promoting it before it has started is refused with etcd's
# error, as is promoting a voter; started with --initial-cluster-state
# existing it catches up (serializable reads on it) and refuses writes;
# then `member promote` makes it a voter that takes writes.
. "$(dirname "$0")/lib.sh"

test_learner_promote() {
	local ms=$(cl_members l) ld id out st i vid
	ld=$(cl_wait_leader $ms) || t_fail "no leader"
	for ((i = 0; i < 50; i++)); do
		ecn "$ld" put "lrn/k$i" "v$i" >/dev/null || t_fail "put $i"
	done
	id=$(cl_member_add "$ld" l4 --learner) || t_fail "member add --learner"
	[ -n "$id" ] || t_fail "no id in the member add output"
	st=$(cl_member_line "$ld" "$id")
	assert_contains "$st" "unstarted" "member list"
	assert_eq "${st##*, }" true "IS LEARNER column of the new member"

	# promoting a learner that has not caught up: etcd's error
	out=$(ecn_err "$ld" member promote "$id")
	assert_eq "$out" \
		"etcdserver: can only promote a learner member which is in sync with leader" \
		"promote of a learner that never started"
	# promoting a voter: etcd's error
	vid=$(cl_id "$ld")
	out=$(ecn_err "$ld" member promote "$vid")
	assert_eq "$out" "etcdserver: can only promote a learner member" \
		"promote of a voter"

	cl_launch l4 existing "$(cat "$ITEST_DIR/l4.ic")"
	# a learner has no say in reads or writes: wait for it with a
	# serializable read, the only kind it serves
	local deadline=$((SECONDS + 20)) v=""
	while [ $SECONDS -lt $deadline ]; do
		v=$(ecn l4 get lrn/k49 --consistency=s --print-value-only 2>/dev/null)
		[ "$v" = v49 ] && break
		sleep 0.2
	done
	assert_eq "$v" v49 "serializable read on the learner"
	out=$(ecn_err l4 put lrn/on-learner x)
	assert_eq "$out" "etcdserver: rpc not supported for learner" \
		"put on the learner"
	st=$(cl_status l4)
	assert_eq "$(echo "$st" | awk '{print $6}')" true "learner's own status"

	# caught up: promote (etcd may need a moment to see it in sync)
	deadline=$((SECONDS + 20))
	while :; do
		out=$(ecn "$ld" member promote "$id" 2>&1) && break
		[ $SECONDS -lt $deadline ] ||
			t_fail "member promote: $(short "$(echo "$out" | nolog)")"
		sleep 0.5
	done
	assert_contains "$out" "$(printf 'Member %16s promoted in cluster' "$id")"
	st=$(cl_member_line "$ld" "$id")
	assert_eq "${st##*, }" false "IS LEARNER column after the promotion"
	assert_contains "$st" "started" "member list after the promotion"
	out=$(ecn l4 put lrn/on-voter y) || t_fail "put on the promoted member: $out"
	assert_eq "$(ecn l4 get lrn/on-voter --print-value-only)" y \
		"linearizable read on the promoted member"
	deadline=$((SECONDS + 10))
	while [ $SECONDS -lt $deadline ]; do
		st=$(cl_status l4)
		[ "$(echo "$st" | awk '{print $6}')" = false ] && break
		sleep 0.2
	done
	assert_eq "$(echo "$st" | awk '{print $6}')" false \
		"promoted member's own status"
}

cl_tests_on l 3 -- learner test_learner_promote
