#!/bin/bash
# Beyond KV: watch, leases, snapshot, defrag, alarms with etcdctl, and the
# JSON gateway (POST /v3/...: base64 bytes, int64 as strings, etcd's error
# body) with curl.
. "$(dirname "$0")/lib.sh"

test_watch_live() {
	local out=$ITEST_DIR/watch_live.out wpid i
	ec watch wl/ --prefix >"$out" 2>&1 &
	wpid=$!
	# the watch is live once it reports a put made after it started
	for ((i = 0; i < 50; i++)); do
		ec put wl/0ready x >/dev/null
		wait_file "$out" wl/0ready 0.2 && break
	done
	ec put wl/a 1 >/dev/null && ec del wl/a >/dev/null &&
		ec put wl/b 2 >/dev/null || { kill "$wpid"; t_fail "writes"; }
	wait_file "$out" wl/b
	kill "$wpid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	grep -qF wl/0ready "$out" || t_fail "watch never became live"
	assert_eq "$(tail -n 9 "$out")" "PUT
wl/a
1
DELETE
wl/a

PUT
wl/b
2" "watch output"
}

test_watch_history() {
	local out=$ITEST_DIR/watch_hist.out r wpid js
	r=$(jfield "$(ec put wh/a 1 -w json)" .header.revision)
	ec put wh/a 2 >/dev/null && ec del wh/a >/dev/null || t_fail "writes"
	ec watch wh/a --rev="$r" -w json >"$out" 2>&1 &
	wpid=$!
	wait_file "$out" '"type":1'
	kill "$wpid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	js=$(head -1 "$out")
	assert_eq "$(jfield "$js" '[.Events[] | .type // 0] | join(",")')" "0,0,1" "event types"
	assert_eq "$(jfield "$js" '[.Events[].kv.mod_revision] | join(",")')" "$r,$((r + 1)),$((r + 2))" "event revisions"
	assert_eq "$(jfield "$js" '.Events[1].kv.value | @base64d')" 2 "second event value"
	assert_eq "$(jfield "$js" '.Events[1].kv.version')" 2 "second event version"
}

test_watch_compacted() {
	local r out
	r=$(jfield "$(ec put wc/a 1 -w json)" .header.revision)
	ec put wc/a 2 >/dev/null || t_fail "put"
	ec compaction "$((r + 1))" >/dev/null || t_fail "compaction"
	out=$(timeout 10 etcdctl --endpoints="127.0.0.1:$PORT" watch wc/a --rev="$r" 2>&1)
	assert_contains "$out" "watch was canceled (etcdserver: mvcc: required revision has been compacted)" "watch below compaction"
}

test_lease_commands() {
	local out lid js
	out=$(ec lease grant 100 2>&1 | nolog)
	lid=$(echo "$out" | awk '/granted/ {print $2}')
	assert_eq "$out" "lease $lid granted with TTL(100s)" "grant output"
	ec put le/a 1 --lease="$lid" >/dev/null || t_fail "put with lease"
	out=$(ec lease timetolive "$lid" --keys)
	assert_contains "$out" "lease $lid granted with TTL(100s), remaining(" "timetolive"
	assert_contains "$out" "attached keys([le/a])" "timetolive keys"
	assert_contains "$(ec lease list)" "$lid" "lease list"
	assert_eq "$(ec lease keep-alive --once "$lid")" "lease $lid keepalived with TTL(100)" "keep-alive --once"
	js=$(ec lease timetolive "$lid" -w json)
	assert_eq "$(jfield "$js" '."granted-ttl"')" 100 "granted-ttl"
	assert_eq "$(jid "$js" cluster_id)" "$(jid "$(ec get le/a -w json)" cluster_id)" "cluster_id in lease header"
	assert_eq "$(ec lease revoke "$lid")" "lease $lid revoked" "revoke"
	assert_eq "$(ec get le/a)" "" "key gone with its lease"
	assert_eq "$(ec lease timetolive "$lid")" "lease $lid already expired" "timetolive after revoke"
	assert_eq "$(ec_err lease revoke "$lid")" "failed to revoke lease (etcdserver: requested lease not found)" "revoke twice"
	assert_eq "$(ec_err lease keep-alive --once "$lid")" "etcdserver: requested lease not found" "keep-alive of a revoked lease"
}

test_snapshot() {
	local f=$ITEST_DIR/snap.db out js rev
	ec put sn/a 1 >/dev/null && ec put sn/b 2 >/dev/null || t_fail "put"
	rev=$(cur_rev)
	out=$(ec snapshot save "$f" 2>&1 | nolog)
	assert_contains "$out" "Snapshot saved at $f" "snapshot save"
	[ -s "$f" ] || t_fail "snapshot file empty"
	# etcdctl reads the file as a bbolt db: cairn must write etcd's format
	js=$(timeout 20 etcdctl snapshot status "$f" -w json 2>/dev/null)
	assert_eq "$(jfield "$js" .revision)" "$rev" "snapshot revision"
	assert_gt "$(jfield "$js" .totalKey)" 1 "snapshot totalKey"
	rm -f "$f"
}

test_defrag_and_alarms() {
	local out
	ec put df/a 1 >/dev/null || t_fail "put"
	out=$(ec defrag 2>&1 | nolog)
	assert_eq "$out" "Finished defragmenting etcd member[127.0.0.1:$PORT]" "defrag"
	assert_eq "$(ec get df/a --print-value-only)" 1 "data after defrag"
	out=$(ec alarm list 2>&1 | nolog)
	assert_eq "$out" "" "no alarms"
	assert_gt "$(jfield "$(ec endpoint status -w json)" '.[0].Status.dbSize')" 0 "dbSize after defrag"
}

test_hex_output() {
	ec put hx/k v >/dev/null || t_fail "put"
	assert_eq "$(ec get hx/k --hex)" '\x68\x78\x2f\x6b
\x76' "get --hex"
}

test_gateway_kv() {
	local js k r
	k=$(b64 gw/a)
	js=$(gw /v3/kv/put "{\"key\":\"$k\",\"value\":\"$(b64 one)\"}")
	r=$(jfield "$js" .header.revision)
	assert_eq "$(printf '%s' "$js" | jq -r '.header.revision | type')" string "int64 as a JSON string"
	[ -n "$(jfield "$js" '.header.cluster_id // empty')" ] || t_fail "no cluster_id in $(short "$js")"
	js=$(gw /v3/kv/range "{\"key\":\"$k\"}")
	assert_eq "$(jfield "$js" '.kvs[0].value | @base64d')" one "range value"
	assert_eq "$(jfield "$js" '.kvs[0].create_revision')" "$r" "range create_revision"
	assert_eq "$(jfield "$js" .count)" 1 "range count"
	js=$(gw /v3/kv/txn "{\"compare\":[{\"key\":\"$k\",\"target\":\"VALUE\",\"result\":\"EQUAL\",\"value\":\"$(b64 one)\"}],\"success\":[{\"requestPut\":{\"key\":\"$k\",\"value\":\"$(b64 two)\"}}]}")
	assert_eq "$(jfield "$js" .succeeded)" true "txn succeeded"
	assert_eq "$(jfield "$js" .header.revision)" "$((r + 1))" "txn revision"
	js=$(gw /v3/kv/deleterange "{\"key\":\"$k\",\"prev_kv\":true}")
	assert_eq "$(jfield "$js" .deleted)" 1 "deleted"
	assert_eq "$(jfield "$js" '.prev_kvs[0].value | @base64d')" two "prev_kvs"
	# binary-safe values (NUL and high bytes)
	gw /v3/kv/put "{\"key\":\"$(b64 gw/bin)\",\"value\":\"AP8BgH8=\"}" >/dev/null
	js=$(gw /v3/kv/range "{\"key\":\"$(b64 gw/bin)\"}")
	assert_eq "$(jfield "$js" '.kvs[0].value')" "AP8BgH8=" "binary value"
	js=$(gw /v3/kv/put "{\"key\":\"$k\",\"value\":\"$(b64 x)\",\"lease\":\"1\"}")
	assert_eq "$(jfield "$js" .message)" "etcdserver: requested lease not found" "error message"
	assert_eq "$(jfield "$js" .code)" 5 "error code (NotFound)"
	js=$(gw /v3/lease/grant '{"TTL":30}')
	assert_eq "$(jfield "$js" .TTL)" 30 "lease grant TTL"
	js=$(gw /v3/maintenance/status '{}')
	assert_gt "$(jfield "$js" .raftIndex)" 0 "maintenance status raftIndex"
}

run_suite more
