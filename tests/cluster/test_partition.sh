#!/bin/bash
# tests/cluster/test_partition.sh — cut the leader of a 3-member cluster off
# from the majority with cairn's test-only fault switch
# (--experimental-test-faults; PUT /cairn/test/drop on a member's client URL
# with the comma-separated hex ids of the members whose peer traffic it must
# drop, both ways; an empty body heals). etcd has no such switch: on etcd
# the test prints a SKIP line.
#
# Checks: a write on the cut-off leader is not acknowledged (an error within
# a bounded wait) and is not applied anywhere later; the cut-off member
# stops saying it leads (check-quorum); the majority elects a
# new leader and takes writes; after healing, the old leader follows the
# new one (term at least the new leader's) and has the same revision and
# data as the others.
. "$(dirname "$0")/lib.sh"
: "${MINORITY_PUT_TIMEOUT:=15}"

test_leader_cut_off() {
	local ms=$(cl_members p) ld rest nl t0 dt out rc n d0 d r0 st
	cl_remember_ids $ms || t_fail "member ids"
	ld=$(cl_wait_leader $ms) || t_fail "no leader"
	rest=$(for n in $ms; do [ "$n" != "$ld" ] && echo "$n"; done)
	ecn "$ld" put part/before b >/dev/null || t_fail "put before the cut"
	cl_partition "$ld" "$(echo $rest)" || t_fail "fault switch refused"

	# the old leader must not acknowledge a write any more
	t0=$SECONDS
	out=$(timeout -k 2 $((MINORITY_PUT_TIMEOUT + 5)) etcdctl \
		--endpoints="$(cl_ep "$ld")" --dial-timeout=3s \
		--command-timeout="${MINORITY_PUT_TIMEOUT}s" \
		put part/minority lost 2>&1)
	rc=$?
	dt=$((SECONDS - t0))
	[ $rc -ne 0 ] || t_fail "the cut-off leader acknowledged a put: $out"
	[ $rc -ne 124 ] && [ $rc -ne 137 ] ||
		t_fail "put on the cut-off leader hung past ${MINORITY_PUT_TIMEOUT}s"
	echo "partition: put on the cut-off leader $ld failed after ${dt}s:" \
		"$(echo "$out" | grep '^Error' | tail -1)" >&2
	# check-quorum: cut off for longer than an election timeout, it no
	# longer says it leads
	st=$(cl_status "$ld") || t_fail "no Status from the cut-off member"
	[ "$(echo "$st" | awk '{print $2}')" != "$(srv_get "$ld" idhex)" ] ||
		t_fail "the cut-off member still says it leads: $st"

	# the majority elects one of its own and goes on
	nl=$(cl_wait_leader $rest) || t_fail "the majority elected no leader"
	case " $(echo $rest) " in *" $nl "*) ;;
	*) t_fail "leader of the majority is $nl" ;; esac
	for n in $rest; do
		ecn "$n" put "part/majority-$n" ok >/dev/null ||
			t_fail "put on $n in the majority"
	done

	cl_heal $ms || t_fail "heal refused"
	# the old leader steps down and follows the new leader
	local deadline=$((SECONDS + 20)) ok=""
	while [ $SECONDS -lt $deadline ]; do
		st=$(cl_status "$ld")
		if [ -n "$st" ] && [ "$(echo "$st" | awk '{print $2}')" = \
			"$(srv_get "$nl" idhex)" ]; then
			ok=1
			break
		fi
		sleep 0.2
	done
	[ -n "$ok" ] || t_fail "old leader $ld: status '$st' after healing"
	ecn "$nl" put part/after a >/dev/null || t_fail "put after healing"
	r0=$(cl_rev "$nl")
	d0=$(cl_dump "$nl" part/)
	for n in $ms; do
		cl_wait_caught_up "$n" "$nl" 20 || t_fail "$n does not catch up"
		d=$(cl_dump "$n" part/)
		assert_eq "$d" "$d0" "keys on $n (serializable) and on $nl"
		assert_eq "$(cl_rev "$n")" "$r0" "revision on $n"
	done
	case $d0 in *part/minority*) t_fail "the refused put was applied" ;; esac
	assert_contains "$d0" "part/majority" "keys after healing"
}

if [ $IS_ETCD -eq 1 ]; then
	skip_test partition.leader_cut_off "cairn's fault switch only"
	exit 0
fi
export CL_FAULTS=1
cl_tests_on p 3 -- partition test_leader_cut_off
