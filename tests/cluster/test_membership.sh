#!/bin/bash
# tests/cluster/test_membership.sh — membership changes on a running
# cluster: `member add` under a write load and a new member started with
# --initial-cluster-state existing joins and catches up; `member remove` of
# a follower under load; `member update` of a follower's peer URL and the
# member restarted on it; then 5 members with 2 killed (the leader among
# them) still take writes, and the 2 catch up when restarted.
. "$(dirname "$0")/lib.sh"

# cur: the members of cluster m now (m.cur changes with add and remove).
cur() { cat "$ITEST_DIR/m.cur"; }

test_add_under_load() {
	local id n st
	cl_load_start add 8 6 $(cur)
	sleep 1
	id=$(cl_member_add m1 m4) || t_fail "member add"
	[ -n "$id" ] || t_fail "no id in the member add output"
	st=$(cl_member_line m1 "$id")
	assert_contains "$st" "unstarted" "member list before m4 starts"
	cl_launch m4 existing "$(cat "$ITEST_DIR/m4.ic")"
	cl_wait_healthy m4 || t_fail "m4 did not join"
	echo "m1 m2 m3 m4" >"$ITEST_DIR/m.cur"
	cl_load_wait add
	st=$(ecn m4 member list)
	assert_eq "$(echo "$st" | grep -c ', started, ')" 4 "started members: $st"
	for n in $(cur); do
		cl_wait_caught_up "$n" "$(cl_wait_leader $(cur))" 20 ||
			t_fail "$n does not catch up"
		st=$(cl_verify add "$n") || t_fail "$st"
		echo "membership add: $st" >&2
	done
}

test_remove_follower_under_load() {
	local ld f id out rest n st
	ld=$(cl_wait_leader $(cur)) || t_fail "no leader"
	f=$(for n in $(cur); do [ "$n" != "$ld" ] && echo "$n"; done | head -1)
	rest=$(for n in $(cur); do [ "$n" != "$f" ] && echo "$n"; done)
	id=$(cl_id "$f")
	cl_load_start rm 5 6 $rest
	sleep 1
	out=$(ecn "$ld" member remove "$id") || t_fail "member remove: $out"
	assert_contains "$out" "$(printf 'Member %16s removed from cluster' "$id")"
	echo $rest >"$ITEST_DIR/m.cur"
	cl_load_wait rm
	stop_server "$f"
	st=$(ecn "$ld" member list)
	assert_eq "$(echo "$st" | wc -l)" 3 "members after the removal: $st"
	case $st in *"$id"*) t_fail "$id still listed: $st" ;; esac
	for n in $rest; do
		cl_wait_caught_up "$n" "$ld" 20 || t_fail "$n does not catch up"
		st=$(cl_verify rm "$n") || t_fail "$st"
		echo "membership remove: $st" >&2
	done
	ecn "$(echo $rest | awk '{print $NF}')" put mem/after-remove x \
		>/dev/null || t_fail "put after the removal"
}

test_update_peer_url() {
	local ld u id np old new out st
	ld=$(cl_wait_leader $(cur)) || t_fail "no leader"
	u=$(for n in $(cur); do [ "$n" != "$ld" ] && echo "$n"; done | head -1)
	id=$(cl_id "$u")
	np=$(cl_port) || t_fail "no port"
	old=$(cl_purl "$u")
	new="http://127.0.0.1:$np"
	out=$(ecn "$ld" member update "$id" --peer-urls="$new") ||
		t_fail "member update: $out"
	assert_contains "$out" "$(printf 'Member %16s updated in cluster' "$id")"
	st=$(cl_member_line "$ld" "$id")
	assert_contains "$st" "$new" "member list after the update"
	# restart the member on its new peer URL
	stop_server "$u"
	sed -i "s|$old|$new|g" "$ITEST_DIR/$u.args"
	srv_set "$u" peer "$np"
	ecn "$ld" put mem/while-down y >/dev/null || t_fail "put with $u down"
	cl_restart "$u"
	cl_wait_healthy "$u" || t_fail "$u did not come back on $new"
	ecn "$u" put mem/after-update z >/dev/null || t_fail "put through $u"
	cl_wait_caught_up "$u" "$ld" 20 || t_fail "$u does not catch up"
	assert_eq "$(ecn "$u" get mem/while-down --consistency=s \
		--print-value-only)" y "write made while $u was down"
}

test_five_kill_two() {
	local ms=$(cl_members v) ld f rest n st
	ld=$(cl_wait_leader $ms) || t_fail "no leader"
	f=$(for n in $ms; do [ "$n" != "$ld" ] && echo "$n"; done | head -1)
	rest=$(for n in $ms; do [ "$n" != "$ld" ] && [ "$n" != "$f" ] &&
		echo "$n"; done)
	kill9_server "$ld"
	kill9_server "$f"
	cl_wait_leader $rest >/dev/null || t_fail "no leader among the 3 left"
	cl_load_start five 3 6 $rest
	cl_load_wait five
	assert_gt "$(wc -l <"$ITEST_DIR/five.acks")" 50 \
		"puts acknowledged by 3 of 5 members"
	cl_restart "$ld"
	cl_restart "$f"
	cl_wait_healthy "$ld" "$f" || t_fail "the killed members did not come back"
	for n in $ms; do
		cl_wait_caught_up "$n" "$(cl_wait_leader $ms)" 20 ||
			t_fail "$n does not catch up"
		st=$(cl_verify five "$n") || t_fail "$st"
	done
}

failed=0
if cl_cluster m 3; then
	echo "m1 m2 m3" >"$ITEST_DIR/m.cur"
	for f in test_add_under_load test_remove_follower_under_load \
		test_update_peer_url; do
		run_test "membership.${f#test_}" "$f" || failed=1
	done
else
	for f in add_under_load remove_follower_under_load update_peer_url; do
		echo "FAIL membership.$f: the 3-member cluster did not start"
	done
	failed=1
fi
cl_stop_all
if cl_cluster v 5; then
	run_test membership.five_kill_two test_five_kill_two || failed=1
else
	echo "FAIL membership.five_kill_two: the 5-member cluster did not start"
	failed=1
fi
exit $failed
