#!/bin/bash
# Leases beyond test_more.sh's lease_commands: TTL limits, keep-alive as a
# stream, expiry seen by a watcher as a delete, leases across a kill -9
# and a clean restart, and the python tests of lease_tests.py (raw Lease
# requests, etcd3's Lock). Checked against etcd 3.4 first.
. "$(dirname "$0")/lib.sh"

is_etcd() { [ "$(basename "$SERVER_BIN")" = etcd ]; }

grant() {			# grant TTL: print the new lease id (hex)
	ec lease grant "$1" 2>&1 | nolog | awk '/granted/ {print $2}'
}

remaining() {			# remaining LEASE: seconds left (json "ttl")
	jfield "$(ec lease timetolive "$1" -w json)" .ttl
}

test_grant_limits() {
	local out
	out=$(ec lease grant 1 2>&1 | nolog)
	assert_contains "$out" "granted with TTL(2s)" "TTL raised to the minimum"
	assert_eq "$(ec_err lease grant 9000000001)" \
		"failed to grant lease (etcdserver: too large lease TTL)" "too large TTL"
	out=$(ec lease grant 9000000000 2>&1 | nolog)
	assert_contains "$out" "granted with TTL(9000000000s)" "largest TTL"
	assert_eq "$(ec lease timetolive 1234)" "lease 0000000000001234 already expired" \
		"timetolive of an unknown lease"
}

test_keepalive_stream() {
	local lid out n
	lid=$(grant 3)
	[ -n "$lid" ] || t_fail "grant"
	ec put lk/a 1 --lease="$lid" >/dev/null || t_fail "put"
	# etcdctl renews every TTL/3 on one stream; 7 s > twice the TTL
	out=$(timeout 7 etcdctl --endpoints="127.0.0.1:$PORT" lease keep-alive "$lid" 2>/dev/null)
	n=$(printf '%s\n' "$out" | grep -c "lease $lid keepalived with TTL(3)")
	assert_gt "$n" 2 "keepalive replies on one stream"
	assert_eq "$(ec get lk/a --print-value-only)" 1 "key kept alive past its TTL"
	ec lease revoke "$lid" >/dev/null || t_fail "revoke"
}

test_expiry_is_a_delete() {
	local lid wf=$ITEST_DIR/expiry.watch i r wpid
	lid=$(grant 2)
	ec put le/x 1 --lease="$lid" >/dev/null || t_fail "put"
	ec put le/y 1 --lease="$lid" >/dev/null || t_fail "put"
	r=$(cur_rev)
	timeout 15 etcdctl --endpoints="127.0.0.1:$PORT" watch le/ --prefix >"$wf" 2>/dev/null &
	wpid=$!
	for ((i = 0; i < 100; i++)); do
		[ -z "$(ec get le/ --prefix --keys-only)" ] && break
		sleep 0.1
	done
	assert_eq "$(ec get le/ --prefix)" "" "keys gone after the TTL"
	assert_eq "$(ec lease timetolive "$lid")" "lease $lid already expired" "lease gone"
	# both deletes in one revision
	assert_eq "$(cur_rev)" "$((r + 1))" "revision after the expiry"
	for ((i = 0; i < 30; i++)); do
		[ "$(grep -c '^DELETE$' "$wf")" -ge 2 ] && break
		sleep 0.1
	done
	kill "$wpid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	assert_eq "$(grep -c '^DELETE$' "$wf")" 2 "watcher saw both deletes"
}

test_kill9_keeps_leases() {
	local lid r i gone t0 waited
	lid=$(grant 30)
	[ -n "$lid" ] || t_fail "grant"
	ec put lr/a 1 --lease="$lid" >/dev/null || t_fail "put"
	sleep 1
	kill9_server s1
	start_server s1 || t_fail "server did not come back after kill -9"
	t0=$(date +%s)
	assert_eq "$(ec get lr/a --print-value-only)" 1 "key right after the restart"
	assert_contains "$(ec lease timetolive "$lid" --keys)" "attached keys([lr/a])" \
		"key attached after the restart"
	sleep 3
	assert_eq "$(ec get lr/a --print-value-only)" 1 "key 3 s after the restart"
	r=$(remaining "$lid")
	# not expired for the downtime: the TTL starts again (etcd), or goes on
	# from a checkpoint; either way well above 0
	assert_gt "$r" 15 "remaining TTL after the restart"
	gone=""
	for ((i = 0; i < 450; i++)); do
		if [ -z "$(ec get lr/a --keys-only)" ]; then
			gone=1
			break
		fi
		sleep 0.1
	done
	[ -n "$gone" ] || t_fail "key still there 45 s after the restart"
	waited=$(($(date +%s) - t0))
	assert_gt "$waited" 20 "seconds until the key went (TTL 30)"
}

test_clean_restart_resumes_ttl() {
	local lid r
	lid=$(grant 60)
	ec put lc/a 1 --lease="$lid" >/dev/null || t_fail "put"
	sleep 6
	stop_server s1
	start_server s1 || t_fail "server did not come back"
	r=$(remaining "$lid")
	assert_gt "$r" 40 "remaining TTL after a clean restart"
	if ! is_etcd; then
		# cairn keeps what was left (etcd 3.4 starts the TTL again)
		[ "$r" -le 55 ] || t_fail "remaining TTL $r: reset to the full TTL"
	fi
	assert_eq "$(ec get lc/a --print-value-only)" 1 "key after the restart"
	ec lease revoke "$lid" >/dev/null || t_fail "revoke"
	assert_eq "$(ec get lc/a)" "" "key revoked after the restart"
}

run_suite lease
rc=$?
# the python tests, on the same server
CLIENT_TIMEOUT=120 py "$(dirname "$0")/lease_tests.py" "$PORT"
prc=$?
case $prc in
0 | 1) ;;
124) echo "FAIL lease.py_timeout: lease_tests.py ran over 120 s" ;;
*) echo "FAIL lease.py_run: lease_tests.py exit status $prc" ;;
esac
exit $((rc != 0 || prc != 0))
