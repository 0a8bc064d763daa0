#!/bin/bash
# Restarts around WAL snapshots: with a tiny --snapshot-count the server
# snapshots (and may purge its WAL) many times; after kill -9 and after a
# clean stop right on a snapshot boundary every key comes back and the
# revision continues.
. "$(dirname "$0")/lib.sh"

test_kill9_across_snapshots() {
	local i js rev
	for i in $(seq 1 37); do ec put sc/k$i v$i >/dev/null || t_fail "put $i"; done
	rev=$(cur_rev)
	kill9_server s1
	start_server s1 --snapshot-count 10 || t_fail "no restart after kill -9"
	assert_eq "$(ec get sc/ --prefix --keys-only | grep -c .)" 37 "keys after kill -9"
	assert_eq "$(ec get sc/k37 --print-value-only)" v37 "last value"
	js=$(ec put sc/after x -w json)
	assert_eq "$(jfield "$js" .header.revision)" "$((rev + 1))" "revision continues"
}

test_clean_stop_and_restart_twice() {
	local i rev
	for i in $(seq 1 20); do ec put sd/k$i v$i >/dev/null || t_fail "put $i"; done
	rev=$(cur_rev)
	stop_server s1
	start_server s1 --snapshot-count 10 || t_fail "no restart"
	stop_server s1
	start_server s1 --snapshot-count 10 || t_fail "no second restart"
	assert_eq "$(cur_rev)" "$rev" "revision after two restarts"
	assert_eq "$(ec get sd/k20 --print-value-only)" v20 "value after two restarts"
	assert_eq "$(jfield "$(ec put sd/x y -w json)" .header.revision)" "$((rev + 1))" "revision continues"
}

run_suite snapcount --snapshot-count 10
