#!/bin/bash
# tests/cluster/test_basic.sh — a healthy 3-member cluster: every member
# takes writes and both kinds of reads; a watch on a follower sees a put
# made on the leader; a lease granted and kept alive on a follower keeps its
# key, and the key goes at expiry once the keep-alives stop. Then the
# python lease tests on a cluster (tests/integration/lease_tests.py
# --cluster, h6's).
. "$(dirname "$0")/lib.sh"

# followers: the two members that are not the leader.
followers() {
	local n
	for n in $(cl_members b); do [ "$n" != "$1" ] && echo "$n"; done
}

test_rw_every_member() {
	local n m v
	for n in $(cl_members b); do
		ecn "$n" put "rw/$n" "val-$n" >/dev/null || t_fail "put on $n"
	done
	for n in $(cl_members b); do
		for m in $(cl_members b); do
			v=$(ecn "$n" get "rw/$m" --print-value-only)
			assert_eq "$v" "val-$m" "linearizable get rw/$m on $n"
		done
	done
	# serializable reads are local: give each member the last write first
	for n in $(cl_members b); do
		cl_wait_caught_up "$n" b1 10 || t_fail "$n does not catch up"
		for m in $(cl_members b); do
			v=$(ecn "$n" get "rw/$m" --consistency=s --print-value-only)
			assert_eq "$v" "val-$m" "serializable get rw/$m on $n"
		done
	done
	# one revision for all: a put on one member, then a linearizable get on
	# another returns at least that revision
	local r1 r2
	r1=$(jfield "$(ecn b2 put rw/rev x -w json)" .header.revision)
	r2=$(jfield "$(ecn b3 get rw/rev -w json)" .header.revision)
	[ -n "$r1" ] && [ "$r2" -ge "$r1" ] ||
		t_fail "get on b3 at revision $r2 after a put at $r1 on b2"
}

test_watch_on_follower() {
	local ld f w out i
	ld=$(cl_wait_leader $(cl_members b)) || t_fail "no leader"
	f=$(followers "$ld" | head -1)
	w="$ITEST_DIR/watch.out"
	timeout -k 1 8 etcdctl --endpoints="$(cl_ep "$f")" watch wkey \
		>"$w" 2>&1 &
	local wp=$!
	sleep 1	# let the watch be created before the put
	ecn "$ld" put wkey from-leader >/dev/null || t_fail "put on leader $ld"
	for ((i = 0; i < 50; i++)); do
		grep -q from-leader "$w" && break
		sleep 0.1
	done
	kill "$wp" 2>/dev/null
	wait "$wp" 2>/dev/null
	out=$(cat "$w")
	assert_contains "$out" "PUT" "watch on follower $f"
	assert_contains "$out" "from-leader" "watch on follower $f"
}

test_lease_on_follower() {
	local ld f out id kp i v
	ld=$(cl_wait_leader $(cl_members b)) || t_fail "no leader"
	f=$(followers "$ld" | head -1)
	out=$(ecn "$f" lease grant 2) || t_fail "lease grant on $f: $out"
	id=$(echo "$out" | awk '/granted/ {print $2}')
	[ -n "$id" ] || t_fail "no lease id in '$out'"
	ecn "$f" put lkey lval --lease="$id" >/dev/null || t_fail "put with lease"
	timeout -k 1 4 etcdctl --endpoints="$(cl_ep "$f")" lease keep-alive \
		"$id" >"$ITEST_DIR/ka.out" 2>&1 &
	kp=$!
	sleep 3.5	# > TTL: only the keep-alives on the follower keep the key
	for n in $(cl_members b); do
		v=$(ecn "$n" get lkey --print-value-only)
		assert_eq "$v" lval "key with a kept-alive lease, on $n after 3.5 s"
	done
	wait "$kp" 2>/dev/null
	grep -q "keepalived with TTL" "$ITEST_DIR/ka.out" ||
		t_fail "keep-alive output: $(short "$(cat "$ITEST_DIR/ka.out")")"
	# keep-alives stopped: gone within TTL + slack, on every member
	for ((i = 0; i < 80; i++)); do
		v=$(ecn "$f" get lkey --print-value-only)
		[ -z "$v" ] && break
		sleep 0.1
	done
	assert_eq "$v" "" "key 8 s after the keep-alives stopped"
	for n in $(cl_members b); do
		cl_wait_caught_up "$n" "$ld" 10 || t_fail "$n does not catch up"
		v=$(ecn "$n" get lkey --consistency=s --print-value-only)
		assert_eq "$v" "" "expired key on $n (serializable)"
	done
	out=$(ecn_err "$f" lease keep-alive --once "$id")
	assert_contains "$out" "requested lease not found" "keep-alive after expiry"
}

if ! cl_cluster b 3; then
	for f in rw_every_member watch_on_follower lease_on_follower; do
		echo "FAIL basic.$f: the 3-member cluster did not start"
	done
	exit 1
fi
failed=0
for f in test_rw_every_member test_watch_on_follower test_lease_on_follower; do
	run_test "basic.${f#test_}" "$f" || failed=1
done
# h6's lease tests on a cluster (tests/integration/lease_tests.py
# --cluster): TimeToLive, KeepAlive, Grant and Revoke through a follower.
# They print their own "PASS/FAIL lease.cluster_*" lines.
ports=$(for n in $(cl_members b); do srv_get "$n" port; done | paste -sd,)
out=$(timeout -k 2 90 "$PYTHON" "$CL_TOP/tests/integration/lease_tests.py" \
	--cluster "$ports" 2>&1)
rc=$?
echo "$out" | grep '^PASS \|^FAIL '
echo "$out" | grep -v '^PASS \|^FAIL ' >&2
if [ $rc -ne 0 ]; then
	failed=1
	echo "$out" | grep -q '^FAIL ' ||
		echo "FAIL lease.cluster: lease_tests.py --cluster exit status $rc"
fi
exit $failed
