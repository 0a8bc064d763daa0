#!/bin/bash
# Compaction, request size limits, response headers, endpoint status and
# health, and the plain HTTP endpoints /health and /version.
. "$(dirname "$0")/lib.sh"

test_compaction() {
	local r1 r2 r3 cur
	r1=$(jfield "$(ec put cp/k v1 -w json)" .header.revision)
	r2=$(jfield "$(ec put cp/k v2 -w json)" .header.revision)
	r3=$(jfield "$(ec put cp/k v3 -w json)" .header.revision)
	assert_eq "$(ec compaction "$r2")" "compacted revision $r2" "compaction output"
	assert_eq "$(ec_err get cp/k --rev="$r1")" \
		"etcdserver: mvcc: required revision has been compacted" "get below the compaction"
	assert_eq "$(ec get cp/k --rev="$r2" --print-value-only)" v2 "get at the compaction revision"
	assert_eq "$(ec get cp/k --print-value-only)" v3 "get latest"
	cur=$(cur_rev)
	assert_eq "$(ec_err get cp/k --rev="$((cur + 10))")" \
		"etcdserver: mvcc: required revision is a future revision" "get in the future"
	assert_eq "$(ec_err compaction "$r1")" \
		"etcdserver: mvcc: required revision has been compacted" "compaction again below"
	assert_eq "$(ec_err compaction "$((cur + 100))")" \
		"etcdserver: mvcc: required revision is a future revision" "compaction in the future"
	assert_eq "$(ec compaction --physical "$r3")" "compacted revision $r3" "compaction --physical"
	assert_eq "$(ec_err get cp/k --rev="$r2")" \
		"etcdserver: mvcc: required revision has been compacted" "get below the physical compaction"
	# history at and after the compaction point is intact
	assert_eq "$(ec get cp/k --rev="$r3" --print-value-only)" v3 "get at r3"
	assert_eq "$(cur_rev)" "$cur" "compaction makes no revision"
}

test_value_sizes() {
	local want got out
	want=$(head -c 1048576 /dev/zero | tr '\0' a | md5sum)
	out=$(head -c 1048576 /dev/zero | tr '\0' a | ec put sz/big 2>&1 | nolog)
	assert_eq "$out" OK "1 MiB put"
	got=$(ec get sz/big --print-value-only | head -c 1048576 | md5sum)
	assert_eq "$got" "$want" "1 MiB value round trip"
	out=$(head -c 1600000 /dev/zero | tr '\0' b | ec put sz/huge 2>&1 | sed -n 's/^Error: //p')
	assert_eq "$out" "etcdserver: request is too large" "1.6 MiB put"
	assert_eq "$(ec get sz/huge)" "" "oversized value not stored"
}

test_header_revisions() {
	local js r0 cid mid
	js=$(ec put hd/a 1 -w json)
	r0=$(jfield "$js" .header.revision)
	cid=$(jid "$js" cluster_id)
	mid=$(jid "$js" member_id)
	[ -n "$cid" ] && [ "$cid" != 0 ] || t_fail "cluster_id is '$cid'"
	[ -n "$mid" ] && [ "$mid" != 0 ] || t_fail "member_id is '$mid'"
	assert_gt "$(jfield "$js" .header.raft_term)" 0 "raft_term"
	js=$(ec get hd/a -w json)
	assert_eq "$(jfield "$js" .header.revision)" "$r0" "get does not move the revision"
	assert_eq "$(jid "$js" cluster_id)" "$cid" "cluster_id stable"
	assert_eq "$(jid "$js" member_id)" "$mid" "member_id stable"
	assert_eq "$(jfield "$(ec put hd/b 1 -w json)" .header.revision)" "$((r0 + 1))" "put +1"
	assert_eq "$(jfield "$(ec put hd/b 2 -w json)" .header.revision)" "$((r0 + 2))" "overwrite +1"
	assert_eq "$(jfield "$(ec del hd/none -w json)" .header.revision)" "$((r0 + 2))" "del of nothing +0"
	assert_eq "$(jfield "$(ec del hd/ --prefix -w json)" .header.revision)" "$((r0 + 3))" "del of two keys +1"
	js=$(ec get hd/ --prefix -w json)
	assert_eq "$(jfield "$js" .header.revision)" "$((r0 + 3))" "revision after del"
	assert_eq "$(jid "$js" member_id)" "$mid" "member_id stable after writes"
	js=$(ec member list -w json)
	assert_eq "$(jid "$js" ID)" "$mid" "member list ID"
	assert_eq "$(jfield "$js" '.members | length')" 1 "one member"
	assert_eq "$(jfield "$js" '.members[0].name')" s1 "member name"
	assert_eq "$(jfield "$js" '.members[0].clientURLs[0]')" "http://127.0.0.1:$PORT" "member client URL"
}

test_endpoint_status() {
	local js mid out
	ec put st/a 1 >/dev/null || t_fail "put"
	mid=$(jid "$(ec get st/a -w json)" member_id)
	js=$(ec endpoint status -w json)
	assert_eq "$(jfield "$js" '.[0].Endpoint')" "127.0.0.1:$PORT" "Endpoint"
	[ -n "$(jfield "$js" '.[0].Status.version // empty')" ] || t_fail "no version in $(short "$js")"
	assert_gt "$(jfield "$js" '.[0].Status.dbSize')" 0 "dbSize"
	assert_eq "$(jid "$js" leader)" "$mid" "leader is this member"
	assert_eq "$(jid "$js" member_id)" "$mid" "status header member_id"
	assert_gt "$(jfield "$js" '.[0].Status.raftIndex')" 0 "raftIndex"
	assert_gt "$(jfield "$js" '.[0].Status.raftTerm')" 0 "raftTerm"
	out=$(ec endpoint status -w table)
	assert_contains "$out" "ENDPOINT" "table header"
	assert_contains "$out" "IS LEADER" "table header"
	assert_contains "$out" "| 127.0.0.1:$PORT |" "table row"
	assert_contains "$out" "$(printf '%x' "$mid")" "table member id"
	assert_contains "$out" "true" "table is leader"
	out=$(ec endpoint status)
	assert_contains "$out" "127.0.0.1:$PORT, $(printf '%x' "$mid")," "simple status"
}

# grpc-go sends the endpoint as written, scheme included, in :authority
# ("http://127.0.0.1:PORT"); the server must take it as grpc-go does.
test_endpoint_with_scheme() {
	local out
	out=$(timeout -k 2 "$CLIENT_TIMEOUT" etcdctl \
		--endpoints="http://127.0.0.1:$PORT" --dial-timeout=5s \
		endpoint status -w table 2>&1)
	assert_contains "$out" "| http://127.0.0.1:$PORT |" "status via http:// endpoint"
	out=$(timeout -k 2 "$CLIENT_TIMEOUT" etcdctl \
		--endpoints="http://127.0.0.1:$PORT" --dial-timeout=5s \
		put sch/k v 2>&1)
	assert_eq "$out" OK "put via http:// endpoint"
}

test_endpoint_health() {
	local out js
	out=$(ec endpoint health 2>&1)
	assert_contains "$out" "127.0.0.1:$PORT is healthy: successfully committed proposal" "health text"
	js=$(ec endpoint health -w json 2>&1)
	assert_eq "$(jfield "$js" '.[0].health')" true "health json"
}

test_http_health_version() {
	local out
	out=$(curl -sS -m "$CLIENT_TIMEOUT" "http://127.0.0.1:$PORT/health")
	assert_eq "$(jfield "$out" .health)" true "/health"
	assert_eq "$(printf '%s' "$out" | jq -r '.health | type')" string "/health health is a string"
	out=$(curl -sS -m "$CLIENT_TIMEOUT" "http://127.0.0.1:$PORT/version")
	[ -n "$(jfield "$out" '.etcdserver // empty')" ] || t_fail "/version: no etcdserver in $(short "$out")"
	[ -n "$(jfield "$out" '.etcdcluster // empty')" ] || t_fail "/version: no etcdcluster in $(short "$out")"
}

run_suite misc
