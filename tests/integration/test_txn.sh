#!/bin/bash
# Txn with etcdctl in interactive mode (-i) fed on stdin. The stdin format
# etcdctl 3.4 reads: compare lines, a blank line, success ops, a blank
# line, failure ops, a blank line. Compare targets: value("k") = "v",
# ver("k") / version("k"), create("k"), mod("k"); operators = != < >.
# (lease("k") compares make etcdctl 3.4 panic, so they are left out.)
. "$(dirname "$0")/lib.sh"

# txn_section LINES: LINES (if any), then the blank line ending a section.
txn_section() {
	[ -z "$1" ] || printf '%s\n' "$1"
	printf '\n'
}

# txn COMPARES SUCCESS FAILURE [etcdctl flags...]: each arg is lines.
txn() {
	local c=$1 s=$2 f=$3
	shift 3
	{
		txn_section "$c"
		txn_section "$s"
		txn_section "$f"
	} | ec txn -i "$@" 2>/dev/null |
		grep -v -e '^compares:$' -e '^success requests' -e '^failure requests'
}

test_success_branch() {
	local r0 out js
	ec put tx/a 1 >/dev/null || t_fail "put"
	r0=$(cur_rev)
	out=$(txn 'value("tx/a") = "1"' 'put tx/a 2
put tx/b 2' 'put tx/a failed')
	assert_eq "$out" "SUCCESS

OK

OK" "txn text output"
	assert_eq "$(cur_rev)" "$((r0 + 1))" "a txn with two puts is one revision"
	js=$(ec get tx/ --prefix -w json)
	assert_eq "$(jfield "$js" '[.kvs[].mod_revision] | join(",")')" "$((r0 + 1)),$((r0 + 1))" "mod_revision of both keys"
	assert_eq "$(ec get tx/a --print-value-only)" 2 "tx/a after txn"
}

test_failure_branch() {
	local r0 out js
	ec put tf/a 1 >/dev/null || t_fail "put"
	r0=$(cur_rev)
	js=$(txn 'value("tf/a") = "nope"' 'put tf/a success' 'put tf/a failure
get tf/a' -w json)
	assert_eq "$(jfield "$js" '.succeeded // false')" false "succeeded"
	assert_eq "$(jfield "$js" .header.revision)" "$((r0 + 1))" "header revision"
	assert_eq "$(jfield "$js" '.responses | length')" 2 "responses"
	# the get inside the txn sees the put before it
	assert_eq "$(unb64 "$(jfield "$js" '.responses[1].Response.ResponseRange.kvs[0].value')")" failure "get after put in txn"
	assert_eq "$(ec get tf/a --print-value-only)" failure "tf/a after txn"
}

# cmp_ok COMPARE WANT: run a txn with one compare; check the branch taken.
cmp_ok() {
	local out
	out=$(txn "$1" 'get tc/a' 'get tc/none' | head -1)
	[ "$out" = "$2" ] || echo "compare '$1': got '$out' want '$2'; "
}

test_compares() {
	local rc rm errs=""
	rc=$(jfield "$(ec put tc/a v1 -w json)" .header.revision)
	rm=$(jfield "$(ec put tc/a v2 -w json)" .header.revision)
	errs+=$(cmp_ok 'value("tc/a") = "v2"' SUCCESS)
	errs+=$(cmp_ok 'value("tc/a") = "v1"' FAILURE)
	errs+=$(cmp_ok 'value("tc/a") != "v1"' SUCCESS)
	errs+=$(cmp_ok 'value("tc/a") > "v1"' SUCCESS)
	errs+=$(cmp_ok 'value("tc/a") < "v1"' FAILURE)
	errs+=$(cmp_ok 'version("tc/a") = "2"' SUCCESS)
	errs+=$(cmp_ok 'ver("tc/a") > "2"' FAILURE)
	errs+=$(cmp_ok 'ver("tc/a") < "3"' SUCCESS)
	errs+=$(cmp_ok "create(\"tc/a\") = \"$rc\"" SUCCESS)
	errs+=$(cmp_ok "create(\"tc/a\") = \"$rm\"" FAILURE)
	errs+=$(cmp_ok "create(\"tc/a\") < \"$rm\"" SUCCESS)
	errs+=$(cmp_ok "mod(\"tc/a\") = \"$rm\"" SUCCESS)
	errs+=$(cmp_ok "mod(\"tc/a\") > \"$rm\"" FAILURE)
	errs+=$(cmp_ok "mod(\"tc/a\") != \"$rc\"" SUCCESS)
	# a missing key has version/create/mod 0 and no value
	errs+=$(cmp_ok 'version("tc/missing") = "0"' SUCCESS)
	errs+=$(cmp_ok 'create("tc/missing") = "0"' SUCCESS)
	errs+=$(cmp_ok 'mod("tc/missing") = "0"' SUCCESS)
	errs+=$(cmp_ok 'value("tc/missing") = "x"' FAILURE)
	# all compares must hold
	errs+=$(cmp_ok 'value("tc/a") = "v2"
version("tc/a") = "2"
mod("tc/a") = "1"' FAILURE)
	errs+=$(cmp_ok "value(\"tc/a\") = \"v2\"
version(\"tc/a\") = \"2\"
create(\"tc/a\") = \"$rc\"" SUCCESS)
	[ -z "$errs" ] || t_fail "$errs"
}

test_read_only_txn() {
	local r0 js
	ec put tr/a 1 >/dev/null || t_fail "put"
	r0=$(cur_rev)
	js=$(txn 'value("tr/a") = "1"' 'get tr/a' '' -w json)
	assert_eq "$(jfield "$js" .succeeded)" true "succeeded"
	assert_eq "$(jfield "$js" .header.revision)" "$r0" "read-only txn header revision"
	assert_eq "$(cur_rev)" "$r0" "read-only txn makes no revision"
	# a txn whose delete matches nothing makes no revision either
	js=$(txn '' 'del tr/none' '' -w json)
	assert_eq "$(cur_rev)" "$r0" "txn deleting nothing makes no revision"
}

test_txn_delete_and_counts() {
	local r0 js
	ec put td/a 1 >/dev/null && ec put td/b 2 >/dev/null || t_fail "put"
	r0=$(cur_rev)
	js=$(txn '' 'del td/ --prefix
put te/c 3' '' -w json)
	assert_eq "$(jfield "$js" '.responses[0].Response.ResponseDeleteRange.deleted')" 2 "deleted in txn"
	assert_eq "$(cur_rev)" "$((r0 + 1))" "revision after del + put txn"
	assert_eq "$(ec get td/ --prefix --keys-only)" "" "td/ after txn"
	assert_eq "$(ec get te/c --print-value-only)" 3 "te/c after txn"
}

test_too_many_ops() {
	local ops i out
	ops=$(for i in $(seq 129); do echo "put tm/k$i v"; done)
	out=$(printf '\n%s\n\n\n' "$ops" | ec txn 2>&1 | sed -n 's/^Error: //p')
	assert_eq "$out" "etcdserver: too many operations in txn request" "129 ops"
	assert_eq "$(ec get tm/ --prefix --keys-only)" "" "nothing written"
	ops=$(for i in $(seq 128); do echo "put tm/k$i v"; done)
	out=$(printf '\n%s\n\n\n' "$ops" | ec txn 2>&1 | nolog | head -1)
	assert_eq "$out" "SUCCESS" "128 ops"
	assert_eq "$(ec get tm/ --prefix -w json | jq -r .count)" 128 "128 keys written"
}

test_duplicate_key() {
	local out
	out=$(printf '\nput dk/a 1\nput dk/a 2\n\n\n' | ec txn 2>&1 | sed -n 's/^Error: //p')
	assert_eq "$out" "etcdserver: duplicate key given in txn request" "two puts"
	out=$(printf '\nput dk/a 1\ndel dk/ --prefix\n\n\n' | ec txn 2>&1 | sed -n 's/^Error: //p')
	assert_eq "$out" "etcdserver: duplicate key given in txn request" "put + covering delete"
	assert_eq "$(ec get dk/a)" "" "nothing written"
	# the same key in the success and the failure branch is fine
	out=$(printf '\nput dk/a 1\n\nput dk/a 2\n\n' | ec txn 2>&1 | nolog | head -1)
	assert_eq "$out" "SUCCESS" "same key in both branches"
	# two gets of one key are fine too
	out=$(printf '\nget dk/a\nget dk/a\n\n\n' | ec txn 2>&1 | nolog | head -1)
	assert_eq "$out" "SUCCESS" "two gets of one key"
}

run_suite txn
