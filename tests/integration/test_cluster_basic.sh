#!/bin/bash
# test_cluster_basic.sh — a 3-member cluster on loopback: election and
# replication, writes and linearizable reads through every member, kill -9
# of the leader and restart on its data dir, no quorum ("etcdserver: no
# leader"), and (cairn only) a partition of the leader by the test-only
# fault switch. Passes on etcd too (SERVER_BIN=$(command -v etcd)), where
# the cairn-only parts are left out. The longer fault tests are in
# tests/cluster/.
#
# Every member of this file is started by cb_start and stopped by lib.sh's
# EXIT trap (its NAME.pid file); every wait is bounded.
. "$(dirname "$0")/lib.sh"

HB=50		# --heartbeat-interval, ms
EL=500		# --election-timeout, ms
TOKEN=cb-$$
IS_ETCD=0
case $(basename "$SERVER_BIN") in *etcd*) IS_ETCD=1 ;; esac

ports=$(free_ports 6) || exit 2
for i in 1 2 3; do
	srv_set "m$i" port "$(echo "$ports" | sed -n "$((2 * i - 1))p")"
	srv_set "m$i" peer "$(echo "$ports" | sed -n "$((2 * i))p")"
done
IC="m1=http://127.0.0.1:$(srv_get m1 peer),m2=http://127.0.0.1:$(srv_get m2 peer),m3=http://127.0.0.1:$(srv_get m3 peer)"
ALL="127.0.0.1:$(srv_get m1 port),127.0.0.1:$(srv_get m2 port),127.0.0.1:$(srv_get m3 port)"

# cb_start NAME: start member NAME of the cluster (again: same data dir).
cb_start() {
	local name=$1 cu pu
	local -a extra=()
	cu="http://127.0.0.1:$(srv_get "$name" port)"
	pu="http://127.0.0.1:$(srv_get "$name" peer)"
	[ $IS_ETCD -eq 0 ] && extra+=(--experimental-test-faults)
	"$SERVER_BIN" --name "$name" --data-dir "$ITEST_DIR/$name.data" \
		--listen-client-urls "$cu" --advertise-client-urls "$cu" \
		--listen-peer-urls "$pu" --initial-advertise-peer-urls "$pu" \
		--initial-cluster "$IC" --initial-cluster-state new \
		--initial-cluster-token "$TOKEN" --heartbeat-interval $HB \
		--election-timeout $EL "${extra[@]}" \
		>>"$ITEST_DIR/$name.log" 2>&1 </dev/null &
	srv_set "$name" pid $!
}

# m NAME ARGS...: etcdctl against member NAME, short bounds.
m() {
	local name=$1
	shift
	timeout -k 2 10 etcdctl --endpoints="127.0.0.1:$(srv_get "$name" port)" \
		--dial-timeout=2s --command-timeout=3s "$@"
}

# leader_of NAME: the leader id (hex) member NAME reports, "" if none.
leader_of() {
	m "$1" endpoint status -w json 2>/dev/null | "$PYTHON" -c '
import json, sys
s = json.load(sys.stdin)[0]["Status"]
print("%x" % s["leader"] if s.get("leader") else "")' 2>/dev/null
}

# id_of NAME: member NAME's id (hex).
id_of() {
	m "$1" endpoint status -w json 2>/dev/null | "$PYTHON" -c '
import json, sys
print("%x" % json.load(sys.stdin)[0]["Status"]["header"]["member_id"])' 2>/dev/null
}

# name_of ID: the member name whose id is ID.
name_of() {
	local n
	for n in m1 m2 m3; do
		[ "$(srv_get "$n" id)" = "$1" ] && echo "$n" && return 0
	done
	return 1
}

# wait_leader [NAMES...]: 0 once every named running member reports the
# same leader, within 10 s; prints the leader's name.
wait_leader() {
	local names=("$@") deadline=$((SECONDS + 10)) l n ok
	[ $# -eq 0 ] && names=(m1 m2 m3)
	while [ $SECONDS -lt $deadline ]; do
		l=$(leader_of "${names[0]}") ok=1
		[ -n "$l" ] || ok=0
		for n in "${names[@]}"; do
			[ "$(leader_of "$n")" = "$l" ] || ok=0
		done
		if [ $ok -eq 1 ] && name_of "$l"; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# put_until NAME KEY VAL: retry a put through NAME for up to 10 s.
put_until() {
	local deadline=$((SECONDS + 10))
	while [ $SECONDS -lt $deadline ]; do
		m "$1" put "$2" "$3" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# get_until NAME KEY VAL: a serializable get through NAME sees VAL within
# 10 s (a member catching up).
get_until() {
	local deadline=$((SECONDS + 10))
	while [ $SECONDS -lt $deadline ]; do
		[ "$(m "$1" get "$2" --print-value-only --consistency=s 2>/dev/null)" = "$3" ] &&
			return 0
		sleep 0.1
	done
	return 1
}

test_a_elect_and_replicate() {
	local n l cid
	for n in m1 m2 m3; do cb_start $n; done
	for n in m1 m2 m3; do
		wait_healthy $n || t_fail "$n not healthy"
		srv_set $n id "$(id_of $n)"
	done
	wait_leader >/dev/null || t_fail "no common leader within 10 s"
	cid=$(timeout 10 etcdctl --endpoints="$ALL" endpoint status -w json |
		"$PYTHON" -c 'import json,sys; print(sorted({e["Status"]["header"]["cluster_id"] for e in json.load(sys.stdin)}))')
	[[ $cid =~ ^\[[0-9]+\]$ ]] || t_fail "not one cluster id: $cid"
	for n in m1 m2 m3; do
		m $n put "k-$n" "v-$n" >/dev/null || t_fail "put through $n"
	done
	# linearizable reads on every member see every acknowledged write
	for n in m1 m2 m3; do
		for l in m1 m2 m3; do
			assert_eq "$(m $n get "k-$l" --print-value-only)" "v-$l" \
				"get k-$l through $n"
		done
	done
	assert_contains "$(m m2 member list)" "m3" "member list"
}

test_b_kill_leader_and_restart() {
	local lead n rest=() t0
	lead=$(wait_leader) || t_fail "no leader"
	for n in m1 m2 m3; do [ $n != "$lead" ] && rest+=($n); done
	kill9_server "$lead"
	t0=$SECONDS
	put_until "${rest[0]}" after-kill v1 || t_fail "no write after the leader died"
	[ $((SECONDS - t0)) -le 8 ] || t_fail "first write after $((SECONDS - t0)) s"
	wait_leader "${rest[@]}" >/dev/null || t_fail "survivors agree on no leader"
	assert_eq "$(m "${rest[1]}" get after-kill --print-value-only)" v1 \
		"linearizable get on the other survivor"
	cb_start "$lead"
	wait_healthy "$lead" || t_fail "$lead did not restart"
	get_until "$lead" after-kill v1 || t_fail "$lead did not catch up"
	assert_eq "$(m "$lead" get k-m1 --print-value-only)" v-m1 "old data"
	put_until "$lead" through-old-leader v2 || t_fail "put through $lead"
}

test_c_no_quorum_no_leader() {
	local out t0
	stop_server m2
	stop_server m3
	sleep 1 # the leader, if m1, steps down (check quorum)
	t0=$SECONDS
	out=$(m m1 put lonely v 2>&1)
	[ $? -ne 0 ] || t_fail "a put without quorum succeeded"
	if [ $IS_ETCD -eq 0 ]; then
		assert_contains "$out" "etcdserver: no leader" "put without quorum"
		[ $((SECONDS - t0)) -le 3 ] || t_fail "no leader after $((SECONDS - t0)) s"
	fi
	cb_start m2
	cb_start m3
	wait_healthy m2 && wait_healthy m3 || t_fail "restart"
	put_until m3 quorum-back v3 || t_fail "no write after the quorum returned"
	get_until m1 quorum-back v3 || t_fail "m1 did not see it"
}

# cairn only: the fault switch cuts the leader off from the majority.
test_d_partition_leader() {
	local lead lid n rest=() out others=""
	[ $IS_ETCD -eq 1 ] && return 0
	lead=$(wait_leader) || t_fail "no leader"
	lid=$(srv_get "$lead" id)
	for n in m1 m2 m3; do
		[ $n != "$lead" ] && rest+=($n) && others+="${others:+,}$(srv_get $n id)"
	done
	out=$(curl -sS -m 5 -X PUT -d "$others" \
		"http://127.0.0.1:$(srv_get "$lead" port)/cairn/test/drop")
	assert_contains "$out" "\"drop\":[" "drop switch"
	put_until "${rest[0]}" majority v4 || t_fail "the majority cannot write"
	n=$(wait_leader "${rest[@]}") || t_fail "the majority agrees on no leader"
	[ "$n" != "$lead" ] || t_fail "the old leader still leads the majority"
	out=$(m "$lead" put minority v 2>&1) && t_fail "the minority acknowledged a write"
	out=$(curl -sS -m 5 -X PUT -d "" \
		"http://127.0.0.1:$(srv_get "$lead" port)/cairn/test/drop")
	assert_eq "$out" '{"drop":[]}' "heal"
	get_until "$lead" majority v4 || t_fail "the old leader did not catch up"
	[ "$(leader_of "$lead")" != "$lid" ] || t_fail "the old leader did not step down"
	# never committed: the old leader's uncommitted entry was replaced
	assert_eq "$(m "${rest[1]}" get minority --print-value-only)" "" \
		"the minority's write"
}

failed=0
for f in $(suite_fns); do
	run_test "cluster_basic.${f#test_}" "$f" || failed=1
done
exit $failed
