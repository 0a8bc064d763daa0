#!/bin/bash
# KV with etcdctl: put/get/del and all their flags, text and -w json output.
# Every test uses its own key prefix so the tests stay independent; expected
# values were checked against etcd 3.4.
. "$(dirname "$0")/lib.sh"

test_put_get_basic() {
	local out js rev
	out=$(ec put kv/basic hello)
	assert_eq "$out" "OK" "put output"
	out=$(ec get kv/basic)
	assert_eq "$out" "kv/basic
hello" "get output"
	js=$(ec get kv/basic -w json)
	rev=$(jfield "$js" .header.revision)
	assert_eq "$(jfield "$js" .count)" 1 "count"
	assert_eq "$(unb64 "$(jfield "$js" '.kvs[0].key')")" kv/basic "key"
	assert_eq "$(unb64 "$(jfield "$js" '.kvs[0].value')")" hello "value"
	assert_eq "$(jfield "$js" '.kvs[0].version')" 1 "version"
	assert_eq "$(jfield "$js" '.kvs[0].create_revision')" "$rev" "create_revision"
	assert_eq "$(jfield "$js" '.kvs[0].mod_revision')" "$rev" "mod_revision"
	out=$(ec get kv/missing)
	assert_eq "$out" "" "get of a missing key"
	js=$(ec get kv/missing -w json)
	assert_eq "$(jfield "$js" '.count // 0')" 0 "count of a missing key"
	assert_eq "$(jfield "$js" '.kvs // [] | length')" 0 "kvs of a missing key"
	# overwrite: version 2, create kept, mod moves
	ec put kv/basic world >/dev/null || t_fail "second put failed"
	js=$(ec get kv/basic -w json)
	assert_eq "$(jfield "$js" '.kvs[0].version')" 2 "version after overwrite"
	assert_eq "$(jfield "$js" '.kvs[0].create_revision')" "$rev" "create kept"
	assert_eq "$(jfield "$js" '.kvs[0].mod_revision')" "$((rev + 1))" "mod_revision"
}

test_get_prefix() {
	local k out
	for k in a b c; do ec put pf/$k v$k >/dev/null || t_fail "put"; done
	ec put pf0 other >/dev/null
	ec put pe/z other >/dev/null
	out=$(ec get pf/ --prefix)
	assert_eq "$out" "pf/a
va
pf/b
vb
pf/c
vc" "get --prefix"
	out=$(ec get pf/ --prefix --keys-only | grep -v '^$')
	assert_eq "$out" "pf/a
pf/b
pf/c" "get --prefix --keys-only"
}

test_get_from_key() {
	local out
	# '~' sorts after every other test's keys, so from-key sees only ours.
	for k in a b c; do ec put "~fk/$k" $k >/dev/null || t_fail "put"; done
	out=$(ec get "~fk/b" --from-key --keys-only | grep -v '^$')
	assert_eq "$out" "~fk/b
~fk/c" "get --from-key"
	out=$(ec get "~fk/b" --from-key -w json)
	assert_eq "$(jfield "$out" .count)" 2 "from-key count"
}

test_get_range() {
	local out k
	for k in a b c d e; do ec put rg/$k $k >/dev/null || t_fail "put"; done
	out=$(ec get rg/b rg/d --keys-only | grep -v '^$')
	assert_eq "$out" "rg/b
rg/c" "range [rg/b, rg/d)"
	out=$(ec get rg/b rg/b0 --keys-only | grep -v '^$')
	assert_eq "$out" "rg/b" "range [rg/b, rg/b0)"
	out=$(ec get rg/x rg/z -w json)
	assert_eq "$(jfield "$out" '.count // 0')" 0 "empty range count"
}

test_get_limit() {
	local out k
	for k in a b c d e; do ec put lm/$k $k >/dev/null || t_fail "put"; done
	out=$(ec get lm/ --prefix --limit 2 -w json)
	assert_eq "$(jfield "$out" '.kvs | length')" 2 "kvs with --limit 2"
	assert_eq "$(jfield "$out" .count)" 5 "count with --limit 2"
	assert_eq "$(jfield "$out" .more)" true "more with --limit 2"
	assert_eq "$(unb64 "$(jfield "$out" '.kvs[1].key')")" lm/b "second key"
	out=$(ec get lm/ --prefix --limit 5 -w json)
	assert_eq "$(jfield "$out" '.more // false')" false "more with --limit 5"
	assert_eq "$(jfield "$out" '.kvs | length')" 5 "kvs with --limit 5"
	out=$(ec get lm/ --prefix --limit 3 --keys-only | grep -v '^$')
	assert_eq "$out" "lm/a
lm/b
lm/c" "text with --limit 3"
}

test_get_rev_history() {
	local r1 r2 r3 out
	r1=$(jfield "$(ec put hist/k v1 -w json)" .header.revision)
	r2=$(jfield "$(ec put hist/k v2 -w json)" .header.revision)
	ec del hist/k >/dev/null
	r3=$(jfield "$(ec put hist/k v3 -w json)" .header.revision)
	assert_eq "$r2" "$((r1 + 1))" "revision after second put"
	assert_eq "$r3" "$((r1 + 3))" "revision after del + put"
	assert_eq "$(ec get hist/k --rev="$r1" --print-value-only)" v1 "at r1"
	assert_eq "$(ec get hist/k --rev="$r2" --print-value-only)" v2 "at r2"
	assert_eq "$(ec get hist/k --rev="$((r2 + 1))")" "" "at the tombstone"
	assert_eq "$(ec get hist/k --rev="$r3" --print-value-only)" v3 "at r3"
	assert_eq "$(ec get hist/k --rev="$((r1 - 1))")" "" "before creation"
	out=$(ec get hist/k --rev="$r2" -w json)
	assert_eq "$(jfield "$out" '.kvs[0].version')" 2 "version at r2"
	assert_eq "$(jfield "$out" '.kvs[0].create_revision')" "$r1" "create at r2"
	out=$(ec get hist/k -w json)
	assert_eq "$(jfield "$out" '.kvs[0].version')" 1 "version after recreate"
	assert_eq "$(jfield "$out" '.kvs[0].create_revision')" "$r3" "create after recreate"
}

# so/d is created first; then c, a, b; then b, b, c are overwritten:
#   key: a b c d   create: d c a b   mod: d a b c   value: b c a d
#   version over [so/a, so/d): a=1 c=2 b=3
sort_setup() {
	ec put so/d 4 >/dev/null && ec put so/c 2 >/dev/null &&
		ec put so/a 3 >/dev/null && ec put so/b 1 >/dev/null &&
		ec put so/b 1 >/dev/null && ec put so/b 1 >/dev/null &&
		ec put so/c 2 >/dev/null
}

sorted_keys() {			# sorted_keys ARGS...: keys of get, one line
	ec get "$@" --keys-only | grep -v '^$' | sed 's#^so/##' | tr -d '\n'
}

test_get_sort() {
	sort_setup || t_fail "setup puts failed"
	assert_eq "$(sorted_keys so/ --prefix --sort-by=KEY --order=ASCEND)" abcd "KEY ASCEND"
	assert_eq "$(sorted_keys so/ --prefix --sort-by=KEY --order=DESCEND)" dcba "KEY DESCEND"
	assert_eq "$(sorted_keys so/ --prefix --sort-by=CREATE --order=ASCEND)" dcab "CREATE ASCEND"
	assert_eq "$(sorted_keys so/ --prefix --sort-by=CREATE --order=DESCEND)" bacd "CREATE DESCEND"
	assert_eq "$(sorted_keys so/ --prefix --sort-by=MODIFY --order=ASCEND)" dabc "MODIFY ASCEND"
	assert_eq "$(sorted_keys so/ --prefix --sort-by=MODIFY --order=DESCEND)" cbad "MODIFY DESCEND"
	assert_eq "$(sorted_keys so/ --prefix --sort-by=VALUE --order=ASCEND)" bcad "VALUE ASCEND"
	assert_eq "$(sorted_keys so/ --prefix --sort-by=VALUE --order=DESCEND)" dacb "VALUE DESCEND"
	assert_eq "$(sorted_keys so/a so/d --sort-by=VERSION --order=ASCEND)" acb "VERSION ASCEND"
	assert_eq "$(sorted_keys so/a so/d --sort-by=VERSION --order=DESCEND)" bca "VERSION DESCEND"
	# --order alone sorts by key
	assert_eq "$(sorted_keys so/ --prefix --order=DESCEND)" dcba "DESCEND by default target"
	# --limit applies after sorting
	assert_eq "$(sorted_keys so/ --prefix --sort-by=CREATE --order=DESCEND --limit=2)" ba "CREATE DESCEND limit 2"
}

test_get_output_modes() {
	local out
	ec put om/a va >/dev/null && ec put om/b vb >/dev/null || t_fail "put"
	out=$(ec get om/ --prefix --keys-only)
	assert_eq "$out" "om/a

om/b" "--keys-only text"
	out=$(ec get om/ --prefix --keys-only -w json)
	assert_eq "$(jfield "$out" '[.kvs[] | .value // ""] | join(",")')" "," "--keys-only json carries no values"
	out=$(ec get om/ --prefix --print-value-only)
	assert_eq "$out" "va
vb" "--print-value-only"
	out=$(ec get om/a --consistency=s)
	assert_eq "$out" "om/a
va" "--consistency=s"
	out=$(ec get om/a --consistency=l --print-value-only)
	assert_eq "$out" "va" "--consistency=l"
}

# etcdctl 3.4 has no --count-only: ask the JSON gateway (over gRPC the
# same is checked by py.range_filters).
test_gateway_count_only() {
	local out
	ec put om/a va >/dev/null && ec put om/b vb >/dev/null || t_fail "put"
	out=$(gw /v3/kv/range "{\"key\":\"$(b64 om/)\",\"range_end\":\"$(b64 om0)\",\"count_only\":true}")
	assert_eq "$(jfield "$out" .count)" 2 "count_only count"
	assert_eq "$(jfield "$out" '.kvs // [] | length')" 0 "count_only kvs"
}

# etcdctl 3.4 has no --min/max-*-revision flags: use the JSON gateway (over
# gRPC the same is checked by py.range_filters).
rf_keys() {			# rf_keys FILTER-JSON: keys in rf/ passing it
	gw /v3/kv/range "{\"key\":\"$(b64 rf/)\",\"range_end\":\"$(b64 rf0)\",\"keys_only\":true$1}" |
		jq -r '[.kvs // [] | .[] | .key | @base64d] | join(" ")'
}

test_gateway_revision_filters() {
	local ra rb rc out
	ra=$(jfield "$(ec put rf/a 1 -w json)" .header.revision)
	rb=$(jfield "$(ec put rf/b 1 -w json)" .header.revision)
	rc=$(jfield "$(ec put rf/c 1 -w json)" .header.revision)
	ec put rf/a 2 >/dev/null || t_fail "put"	# a: create ra, mod rc+1
	[ "$ra" -lt "$rb" ] || t_fail "revisions not increasing"
	assert_eq "$(rf_keys ",\"min_mod_revision\":\"$rb\"")" "rf/a rf/b rf/c" "min_mod_revision"
	assert_eq "$(rf_keys ",\"max_mod_revision\":\"$rc\"")" "rf/b rf/c" "max_mod_revision"
	assert_eq "$(rf_keys ",\"min_create_revision\":\"$rb\"")" "rf/b rf/c" "min_create_revision"
	assert_eq "$(rf_keys ",\"max_create_revision\":\"$rb\"")" "rf/a rf/b" "max_create_revision"
	assert_eq "$(rf_keys ",\"min_create_revision\":\"$rb\",\"max_mod_revision\":\"$rb\"")" "rf/b" "min_create and max_mod"
	# etcd counts the range before these filters apply
	out=$(gw /v3/kv/range "{\"key\":\"$(b64 rf/)\",\"range_end\":\"$(b64 rf0)\",\"max_mod_revision\":\"$rb\"}")
	assert_eq "$(jfield "$out" .count)" 3 "count ignores the filters"
	assert_eq "$(jfield "$out" '.kvs | length')" 1 "kvs after max_mod_revision"
}

test_put_prev_kv() {
	local out
	out=$(ec put pk/a first --prev-kv)
	assert_eq "$out" "OK" "prev-kv on a new key"
	out=$(ec put pk/a second --prev-kv)
	assert_eq "$out" "OK
pk/a
first" "prev-kv text"
	out=$(ec put pk/a third --prev-kv -w json)
	assert_eq "$(unb64 "$(jfield "$out" .prev_kv.value)")" second "prev_kv.value"
	assert_eq "$(unb64 "$(jfield "$out" .prev_kv.key)")" pk/a "prev_kv.key"
	assert_eq "$(jfield "$out" .prev_kv.version)" 2 "prev_kv.version"
}

test_put_ignore_value() {
	local out js
	ec put iv/a orig >/dev/null || t_fail "put"
	out=$(ec put iv/a --ignore-value </dev/null)
	assert_eq "$out" "OK" "put --ignore-value"
	js=$(ec get iv/a -w json)
	assert_eq "$(unb64 "$(jfield "$js" '.kvs[0].value')")" orig "value kept"
	assert_eq "$(jfield "$js" '.kvs[0].version')" 2 "version bumped"
	assert_eq "$(ec_err put iv/missing --ignore-value)" "etcdserver: key not found" "ignore-value on a missing key"
	assert_eq "$(ec get iv/missing)" "" "missing key stays missing"
}

test_put_lease() {
	local out lid js
	assert_eq "$(ec_err put ls/a v --lease=123)" "etcdserver: requested lease not found" "unknown lease"
	assert_eq "$(ec get ls/a)" "" "no key after a failed put"
	assert_eq "$(ec_err put ls/missing v --ignore-lease)" "etcdserver: key not found" "ignore-lease on a missing key"
	out=$(ec lease grant 60 2>&1 | nolog)
	lid=$(echo "$out" | awk '/granted/ {print $2}')
	[ -n "$lid" ] || t_fail "no lease id in '$out'"
	ec put ls/a v1 --lease="$lid" >/dev/null || t_fail "put with lease"
	js=$(ec get ls/a -w json)
	assert_eq "$(printf '%016x' "$(jid "$js" lease)")" "$lid" "lease on the key"
	ec put ls/a v2 --ignore-lease >/dev/null || t_fail "put --ignore-lease"
	js=$(ec get ls/a -w json)
	assert_eq "$(printf '%016x' "$(jid "$js" lease)")" "$lid" "lease kept by --ignore-lease"
	assert_eq "$(unb64 "$(jfield "$js" '.kvs[0].value')")" v2 "value after --ignore-lease"
	ec put ls/a v3 >/dev/null || t_fail "put without lease"
	js=$(ec get ls/a -w json)
	assert_eq "$(jid "$js" lease)" "" "lease dropped by a plain put"
	ec lease revoke "$lid" >/dev/null || t_fail "lease revoke"
	assert_eq "$(ec get ls/a --print-value-only)" v3 "key without lease survives revoke"
}

test_del() {
	local out js rev
	for k in a b c; do ec put dl/$k v$k >/dev/null || t_fail "put"; done
	ec put dl0 x >/dev/null
	assert_eq "$(ec del dl/a)" 1 "del one key"
	assert_eq "$(ec del dl/a)" 0 "del a missing key"
	assert_eq "$(ec get dl/a)" "" "deleted key is gone"
	for k in a d e; do ec put dl/$k v$k >/dev/null || t_fail "put"; done
	rev=$(cur_rev)
	assert_eq "$(ec del dl/ --prefix)" 5 "del --prefix count"
	assert_eq "$(cur_rev)" "$((rev + 1))" "del --prefix is one revision"
	assert_eq "$(ec get dl0 --print-value-only)" x "key outside the prefix kept"
	assert_eq "$(ec get dl/ --prefix -w json | jq -r '.count // 0')" 0 "prefix is empty"
}

test_del_from_key() {
	for k in a b c; do ec put "~dk/$k" $k >/dev/null || t_fail "put"; done
	assert_eq "$(ec del "~dk/b" --from-key)" 2 "del --from-key count"
	assert_eq "$(ec get "~dk/" --prefix --keys-only | grep -v '^$')" "~dk/a" "left after from-key"
}

test_del_prev_kv() {
	local out js
	ec put dp/a 1 >/dev/null && ec put dp/b 2 >/dev/null || t_fail "put"
	out=$(ec del dp/ --prefix --prev-kv)
	assert_eq "$out" "2
dp/a
1
dp/b
2" "del --prev-kv text"
	ec put dp/c 3 >/dev/null || t_fail "put"
	js=$(ec del dp/c --prev-kv -w json)
	assert_eq "$(jfield "$js" .deleted)" 1 "deleted"
	assert_eq "$(unb64 "$(jfield "$js" '.prev_kvs[0].value')")" 3 "prev_kvs value"
}

run_suite kv
