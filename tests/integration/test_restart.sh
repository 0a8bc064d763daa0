#!/bin/bash
# Persistence across a clean restart (SIGTERM, then start on the same data
# dir): keys, values, versions, create/mod revisions, history, compaction,
# ids all come back and the revision continues from where it was.
. "$(dirname "$0")/lib.sh"

# restart: TERM the server and start it again on the same data dir.
restart() {
	stop_server s1
	start_server s1 || t_fail "server did not come back after restart"
}

test_restart_persistence() {
	local before after rev mid cid rh i js
	for i in 1 2 3 4 5; do ec put rs/a "a$i" >/dev/null || t_fail "put"; done
	ec put rs/b b1 >/dev/null && ec put rs/c c1 >/dev/null || t_fail "put"
	rh=$(jfield "$(ec put rs/h old -w json)" .header.revision)
	ec put rs/h new >/dev/null && ec del rs/c >/dev/null || t_fail "put/del"
	before=$(ec get rs/ --prefix -w json)
	rev=$(jfield "$before" .header.revision)
	cid=$(jid "$before" cluster_id)
	mid=$(jid "$before" member_id)
	restart
	after=$(ec get rs/ --prefix -w json)
	assert_eq "$(jfield "$after" .header.revision)" "$rev" "revision after restart"
	assert_eq "$(printf '%s' "$after" | jq -c .kvs)" \
		"$(printf '%s' "$before" | jq -c .kvs)" "kvs after restart"
	assert_eq "$(jid "$after" cluster_id)" "$cid" "cluster_id after restart"
	assert_eq "$(jid "$after" member_id)" "$mid" "member_id after restart"
	assert_eq "$(ec get rs/h --rev="$rh" --print-value-only)" old "history after restart"
	assert_eq "$(ec get rs/c)" "" "deleted key stays deleted"
	js=$(ec put rs/new x -w json)
	assert_eq "$(jfield "$js" .header.revision)" "$((rev + 1))" "revision continues"
	js=$(ec put rs/a a6 -w json)
	js=$(ec get rs/a -w json)
	assert_eq "$(jfield "$js" '.kvs[0].version')" 6 "version continues"
}

test_restart_twice_and_compaction() {
	local r1 r2 rev i
	r1=$(jfield "$(ec put rc/k v1 -w json)" .header.revision)
	r2=$(jfield "$(ec put rc/k v2 -w json)" .header.revision)
	ec compaction "$r2" >/dev/null || t_fail "compaction"
	restart
	assert_eq "$(ec_err get rc/k --rev="$r1")" \
		"etcdserver: mvcc: required revision has been compacted" "compaction survives restart"
	rev=$(jfield "$(ec put rc/k v3 -w json)" .header.revision)
	assert_eq "$rev" "$((r2 + 1))" "revision after first restart"
	restart
	assert_eq "$(ec get rc/k --print-value-only)" v3 "value after second restart"
	assert_eq "$(jfield "$(ec get rc/k -w json)" '.kvs[0].version')" 3 "version after second restart"
	assert_eq "$(jfield "$(ec put rc/k v4 -w json)" .header.revision)" "$((rev + 1))" "revision after second restart"
	# many keys written just before the stop are all there
	(printf '\n'; for i in $(seq 1 100); do echo "put rc/m$i v$i"; done; printf '\n\n') |
		ec txn >/dev/null || t_fail "txn of 100 puts"
	restart
	assert_eq "$(ec get rc/m --prefix -w json | jq -r .count)" 100 "100 keys after restart"
}

run_suite restart
