# tests/cluster/lib.sh — helpers for the cluster tests (3 and 5 members on
# loopback ports, with faults).
#
# Sourced (never run) by every tests/cluster/test_*.sh file and by
# tools/bench/cluster.sh. Sources tests/integration/lib.sh for the scratch
# dir, the EXIT-trap cleanup, stop_server/kill9_server, run_test and the
# asserts, and adds:
#   - ports from this project's range (CLUSTER_PORT_LO..CLUSTER_PORT_HI,
#     default 25000..26999), each checked free before use: cl_port
#   - members: cl_define NAME, cl_launch NAME STATE INITIAL [FLAGS...],
#     cl_restart NAME, cl_cluster PREFIX N [FLAGS...] (a fresh cluster of N
#     members PREFIX1..PREFIXN, every one healthy and a leader elected)
#   - queries, all bounded: ecn NAME ARGS (etcdctl on one member), cl_ep,
#     cl_eps, cl_id (hex member id), cl_leader, cl_wait_leader, cl_status,
#     cl_wait_caught_up, cl_wait_healthy
#   - clhelp.py (python etcd3): write load with an acknowledgement log, bulk
#     fill, verification of acknowledged writes on one member
#   - the fault switch (cairn only): cl_partition "A.." "B..", cl_heal
#   - at exit (cl_cleanup): every member stopped, and a sanitizer report in
#     a member's log printed as "FAIL sanitizer.NAME" (scratch dir kept)
#
# Server under test: SERVER_BIN (cairn by default; `$(command -v etcd)` for
# real etcd). IS_ETCD is 1 when it is etcd. Every member is started with
# etcd's flags and short timings: HEARTBEAT_MS (50), ELECTION_MS (500).
# CL_FAULTS=1 adds --experimental-test-faults (cairn only).
#
# Per-member state lives in files of the scratch dir ($ITEST_DIR/NAME.port,
# .peer, .pid, .args, .log, .data) so that test functions, which run in
# subshells, can stop and restart members and the EXIT trap still stops
# every member started (invariant 2 of tests/integration/lib.sh).

CL_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CL_TOP=$(cd "$CL_HERE/../.." && pwd)
if [ -z "${SERVER_BIN:-}" ]; then
	if [ -x ./cairn ]; then SERVER_BIN=$PWD/cairn; else SERVER_BIN=$CL_TOP/cairn; fi
fi
export SERVER_BIN
# shellcheck source=../integration/lib.sh
. "$CL_TOP/tests/integration/lib.sh"

: "${HEARTBEAT_MS:=50}"
: "${ELECTION_MS:=500}"
: "${CLUSTER_PORT_LO:=25000}"
: "${CLUSTER_PORT_HI:=26999}"
CLHELP="$CL_HERE/clhelp.py"
IS_ETCD=0
[ "$(basename "$SERVER_BIN")" = etcd ] && IS_ETCD=1

# ---- ports ----------------------------------------------------------------

# cl_port: print one TCP port of the range, free on 127.0.0.1 right now and
# never handed out before in this scratch dir. The scan starts at a random
# point of the range so that two runs at once rarely meet.
cl_port() {
	local f="$ITEST_DIR/nextport" p span tries=0
	span=$((CLUSTER_PORT_HI - CLUSTER_PORT_LO + 1))
	if [ ! -s "$f" ]; then
		echo $((CLUSTER_PORT_LO + (RANDOM * 32768 + RANDOM) % span)) >"$f"
	fi
	p=$(cat "$f")
	while [ $tries -lt 200 ]; do
		tries=$((tries + 1))
		[ "$p" -gt "$CLUSTER_PORT_HI" ] && p=$CLUSTER_PORT_LO
		if "$PYTHON" -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$p" 2>/dev/null; then
			echo $((p + 1)) >"$f"
			echo "$p"
			return 0
		fi
		p=$((p + 1))
	done
	echo "cl_port: no free port in $CLUSTER_PORT_LO-$CLUSTER_PORT_HI" >&2
	return 1
}

# ---- members ----------------------------------------------------------------

cl_ep() { echo "127.0.0.1:$(srv_get "$1" port)"; }	# client endpoint
cl_curl() { echo "http://127.0.0.1:$(srv_get "$1" port)"; }	# client URL
cl_purl() { echo "http://127.0.0.1:$(srv_get "$1" peer)"; }	# peer URL

# cl_define NAME: give member NAME its two ports (once).
cl_define() {
	[ -n "$(srv_get "$1" port)" ] && return 0
	srv_set "$1" port "$(cl_port)" || return 1
	srv_set "$1" peer "$(cl_port)" || return 1
	[ -n "$(srv_get "$1" port)" ] && [ -n "$(srv_get "$1" peer)" ]
}

# cl_initial NAME...: the --initial-cluster value for these members.
cl_initial() {
	local n out=""
	for n in "$@"; do out="$out${out:+,}$n=$(cl_purl "$n")"; done
	echo "$out"
}

# cl_launch NAME STATE INITIAL [FLAGS...]: start member NAME in the
# background (new|existing, --initial-cluster INITIAL), not waiting for it.
# The command line is kept in NAME.args for cl_restart.
cl_launch() {
	local name=$1 state=$2 ic=$3 cu pu
	shift 3
	cl_define "$name" || return 1
	cu=$(cl_curl "$name")
	pu=$(cl_purl "$name")
	local args=(--name "$name" --data-dir "$ITEST_DIR/$name.data"
		--listen-client-urls "$cu" --advertise-client-urls "$cu"
		--listen-peer-urls "$pu" --initial-advertise-peer-urls "$pu"
		--initial-cluster "$ic" --initial-cluster-state "$state"
		--initial-cluster-token "${CL_TOKEN:-cl-$$}"
		--heartbeat-interval "$HEARTBEAT_MS"
		--election-timeout "$ELECTION_MS")
	if [ -n "${CL_FAULTS:-}" ] && [ $IS_ETCD -eq 0 ]; then
		args+=(--experimental-test-faults)
	fi
	args+=("$@")
	printf '%s\n' "${args[@]}" >"$ITEST_DIR/$name.args"
	cl_exec "$name"
}

# cl_exec NAME: run the server with the arguments saved in NAME.args.
cl_exec() {
	local name=$1 args=()
	mapfile -t args <"$ITEST_DIR/$name.args"
	echo "=== start $(date +%T.%N) ${args[*]}" >>"$ITEST_DIR/$name.log"
	"$SERVER_BIN" "${args[@]}" >>"$ITEST_DIR/$name.log" 2>&1 </dev/null &
	srv_set "$name" pid $!
}

# cl_restart NAME: start NAME again on its data dir with the same flags.
cl_restart() { cl_exec "$1"; }

# cl_wait_healthy NAME...: 0 once every NAME answers `endpoint health` (a
# linearizable read: it needs a leader), within START_TIMEOUT seconds each;
# else 1 with the log tail of the first that did not, on stderr.
cl_wait_healthy() {
	local n
	for n in "$@"; do
		PORT=$(srv_get "$n" port)
		if ! wait_healthy "$n"; then
			echo "member $n not healthy within ${START_TIMEOUT}s;" \
				"log tail:" >&2
			tail -n 15 "$ITEST_DIR/$n.log" >&2
			return 1
		fi
	done
}

# cl_cluster PREFIX N [FLAGS...]: start a new cluster of N members named
# PREFIX1..PREFIXN with FLAGS added to each; wait until all are healthy and
# they agree on a leader. Writes the member names to PREFIX.members.
# Sets PORT to the first member's client port.
cl_cluster() {
	local prefix=$1 n=$2 i names=() ic
	shift 2
	for ((i = 1; i <= n; i++)); do
		names+=("$prefix$i")
		cl_define "$prefix$i" || return 1
	done
	printf '%s\n' "${names[@]}" >"$ITEST_DIR/$prefix.members"
	ic=$(cl_initial "${names[@]}")
	CL_TOKEN="tok-$prefix-$$"
	for i in "${names[@]}"; do
		cl_launch "$i" new "$ic" "$@" || return 1
	done
	cl_wait_healthy "${names[@]}" || return 1
	cl_wait_leader "${names[@]}" >/dev/null || return 1
	cl_wait_published "${names[0]}" "$n" || return 1
	PORT=$(srv_get "${names[0]}" port)
}

# cl_wait_published VIA N: wait (10 s) until `member list` on VIA shows N
# started members, each with its client URL (etcd serves clients only
# after publishing its member attributes; cairn may serve a moment before).
cl_wait_published() {
	local deadline=$((SECONDS + 10)) out
	while [ $SECONDS -lt $deadline ]; do
		out=$(ecn "$1" member list -w json 2>/dev/null)
		[ "$(printf '%s' "$out" | jq '[.members[] |
			select((.clientURLs // []) | length > 0)] | length' \
			2>/dev/null)" = "$2" ] && return 0
		sleep 0.1
	done
	echo "cl_wait_published: member list: $out" >&2
	return 1
}

# cl_members PREFIX: the member names of cluster PREFIX, one a line.
cl_members() { cat "$ITEST_DIR/$1.members"; }

# cl_running NAME...: those of NAME... whose process is alive.
cl_running() {
	local n
	for n in "$@"; do server_alive "$n" && echo "$n"; done
}

# cl_eps NAME...: comma-separated client endpoints.
cl_eps() {
	local n out=""
	for n in "$@"; do out="$out${out:+,}$(cl_ep "$n")"; done
	echo "$out"
}

# ---- queries -----------------------------------------------------------------

# ecn NAME ARGS...: etcdctl on member NAME only, bounded.
ecn() {
	timeout -k 2 "$CLIENT_TIMEOUT" etcdctl --endpoints="$(cl_ep "$1")" \
		--dial-timeout=3s --command-timeout="$((CLIENT_TIMEOUT - 2))s" \
		"${@:2}"
}

# ecn_err NAME ARGS...: like ec_err on member NAME: the "Error: " line.
ecn_err() {
	local out
	if out=$(ecn "$@" 2>&1 </dev/null); then
		echo "UNEXPECTED-SUCCESS"
		return
	fi
	printf '%s\n' "$out" | sed -n 's/^Error: //p' | tail -1
}

# cl_status NAME: one line "ID LEADER TERM INDEX APPLIED LEARNER" from
# NAME's Status (ids in hex as etcdctl prints them, LEARNER true|false);
# nothing and status 1 when NAME does not answer within 3 s.
cl_status() {
	local js
	js=$(timeout -k 1 3 etcdctl --endpoints="$(cl_ep "$1")" \
		--dial-timeout=1s --command-timeout=2s endpoint status \
		-w json 2>/dev/null) || return 1
	printf '%s' "$js" | "$PYTHON" -c '
import json, sys
s = json.load(sys.stdin)[0]["Status"]
print("%x %x %d %d %d %s" % (s["header"]["member_id"], s.get("leader", 0),
      s.get("raftTerm", 0), s.get("raftIndex", 0),
      s.get("raftAppliedIndex", 0), str(s.get("isLearner", False)).lower()))
' 2>/dev/null
}

# cl_id NAME: NAME's member id in hex (from its own Status).
cl_id() { cl_status "$1" | awk '{print $1}'; }

# cl_leader NAME...: the name of the member among NAME... that answers and
# says it is the leader, with the highest term; status 1 if none does.
cl_leader() {
	local n st best="" bterm=-1 id ld term
	for n in "$@"; do
		server_alive "$n" || continue
		st=$(cl_status "$n") || continue
		read -r id ld term _ <<<"$st"
		if [ "$id" = "$ld" ] && [ "$term" -gt "$bterm" ]; then
			best=$n
			bterm=$term
		fi
	done
	[ -n "$best" ] && echo "$best"
}

# cl_wait_leader NAME...: print the leader once every live NAME reports the
# same leader id and that member says it leads; bounded by LEADER_TIMEOUT
# seconds (default 10). Status 1 on time out.
cl_wait_leader() {
	local deadline=$((SECONDS + ${LEADER_TIMEOUT:-10})) n st ids ld
	while [ $SECONDS -lt $deadline ]; do
		ids=""
		for n in "$@"; do
			server_alive "$n" || continue
			st=$(cl_status "$n") || { ids="x"; break; }
			ids="$ids $(echo "$st" | awk '{print $2}')"
		done
		ld=$(echo "$ids" | tr ' ' '\n' | sed '/^$/d' | sort -u)
		if [ -n "$ld" ] && [ "$ld" != 0 ] && [ "$(echo "$ld" | wc -l)" = 1 ]; then
			for n in "$@"; do
				server_alive "$n" || continue
				if [ "$(cl_id "$n")" = "$ld" ]; then
					echo "$n"
					return 0
				fi
			done
		fi
		sleep 0.1
	done
	return 1
}

# cl_rev NAME: the store revision NAME has applied (serializable read).
cl_rev() {
	ecn "$1" get --consistency=s __rev_probe__ -w json 2>/dev/null |
		"$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])' \
			2>/dev/null
}

# cl_wait_caught_up NAME REF [SECONDS]: wait (default 20 s) until member
# NAME has applied at least the revision member REF has now.
cl_wait_caught_up() {
	local name=$1 ref=$2 want got deadline=$((SECONDS + ${3:-20}))
	want=$(cl_rev "$ref")
	[ -n "$want" ] || return 1
	while [ $SECONDS -lt $deadline ]; do
		got=$(cl_rev "$name")
		[ -n "$got" ] && [ "$got" -ge "$want" ] && return 0
		sleep 0.2
	done
	echo "cl_wait_caught_up: $name at revision ${got:-none}, want $want" >&2
	return 1
}

# cl_dump NAME PREFIX: NAME's keys and values under PREFIX, read
# serializably (NAME's own state), as "key value" lines sorted.
cl_dump() {
	"$PYTHON" "$CLHELP" dump --endpoint "$(cl_ep "$1")" --prefix "$2"
}

# ---- load --------------------------------------------------------------------

# cl_load_start TAG SECONDS CLIENTS NAME...: start clhelp.py load in the
# background against NAME... (client i on member i mod n), logging
# acknowledged puts to $ITEST_DIR/TAG.acks; its pid in TAG.loadpid.
cl_load_start() {
	local tag=$1 secs=$2 clients=$3
	shift 3
	timeout -k 5 $((secs + 30)) "$PYTHON" "$CLHELP" load \
		--endpoints "$(cl_eps "$@")" --clients "$clients" \
		--seconds "$secs" --prefix "load/$tag/" \
		--acks "$ITEST_DIR/$tag.acks" 2>"$ITEST_DIR/$tag.loaderr" &
	echo $! >"$ITEST_DIR/$tag.loadpid"
}

# cl_load_wait TAG: wait for the load to end; 1 if it failed.
cl_load_wait() {
	wait "$(cat "$ITEST_DIR/$1.loadpid")"
}

# cl_verify TAG NAME: every put acknowledged in TAG.acks is on member NAME
# with its value (serializable read: NAME's own copy). Prints a summary.
cl_verify() {
	"$PYTHON" "$CLHELP" verify --endpoint "$(cl_ep "$2")" \
		--prefix "load/$1/" --acks "$ITEST_DIR/$1.acks"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# ---- faults (cairn's test-only switch) ---------------------------------------

# cl_drop NAME IDS: tell member NAME to drop peer traffic to and from the
# members with these hex ids (comma-separated; empty heals NAME).
cl_drop() {
	curl -sS -f -m 5 -X PUT --data-binary "$2" \
		"$(cl_curl "$1")/cairn/test/drop" >/dev/null
}

# cl_partition "A B" "C D E": cut the members of the first group off from
# those of the second, on both sides.
cl_partition() {
	local a=($1) b=($2) n ida="" idb=""
	for n in "${a[@]}"; do ida="$ida${ida:+,}$(srv_get "$n" idhex)"; done
	for n in "${b[@]}"; do idb="$idb${idb:+,}$(srv_get "$n" idhex)"; done
	for n in "${a[@]}"; do cl_drop "$n" "$idb" || return 1; done
	for n in "${b[@]}"; do cl_drop "$n" "$ida" || return 1; done
}

# cl_heal NAME...: clear the drop list of every NAME.
cl_heal() {
	local n rc=0
	for n in "$@"; do cl_drop "$n" "" || rc=1; done
	return $rc
}

# cl_remember_ids NAME...: store each member's hex id (NAME.idhex) while
# they all answer, for cl_partition.
cl_remember_ids() {
	local n id
	for n in "$@"; do
		id=$(cl_id "$n")
		[ -n "$id" ] || return 1
		srv_set "$n" idhex "$id"
	done
}

# ---- running a test file -------------------------------------------------------

# cl_tests_on NAME N [FLAGS...] -- PREFIX FN...: start the N-member cluster
# NAME (cl_cluster NAME N FLAGS...), then run each FN as test
# "PREFIX.FN-without-test_"; when the cluster does not start, each of them is
# a FAIL. Returns 1 when any test failed.
cl_tests_on() {
	local name=$1 n=$2 prefix f failed=0 flags=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do flags+=("$1"); shift; done
	shift
	prefix=$1
	shift
	if ! cl_cluster "$name" "$n" "${flags[@]}"; then
		for f in "$@"; do
			echo "FAIL $prefix.${f#test_}: the $n-member cluster did not start"
		done
		return 1
	fi
	for f in "$@"; do
		run_test "$prefix.${f#test_}" "$f" || failed=1
	done
	return $failed
}

# cl_stop_all: stop every member started in this scratch dir (TERM, KILL
# after STOP_TIMEOUT).
cl_stop_all() {
	local f
	for f in "$ITEST_DIR"/*.pid; do
		[ -e "$f" ] || continue
		stop_server "$(basename "$f" .pid)"
	done
}

# cl_cleanup: the EXIT trap: stop every member (TERM first, so that a
# sanitizer build runs its leak check), then report each member log that
# holds an AddressSanitizer, LeakSanitizer or UBSan report as a failed test
# "sanitizer.NAME", then the scratch-dir cleanup of tests/integration.
cl_cleanup() {
	local f pat='ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:'
	cl_stop_all
	for f in "$ITEST_DIR"/*.log; do
		[ -e "$f" ] || continue
		grep -q "$pat" "$f" || continue
		echo "FAIL sanitizer.$(basename "$f" .log): $(short "$(grep -m1 "$pat" "$f")")"
		ITEST_KEEP=1
	done
	itest_cleanup
}
trap cl_cleanup EXIT

# skip_test NAME REASON: print the SKIP line run.sh counts.
skip_test() { echo "SKIP $1: $2"; }

# ---- membership ------------------------------------------------------------------

# cl_member_add VIA NAME [--learner]: `etcdctl member add NAME` on member
# VIA for a new member NAME (ports given here), retried for up to 15 s while
# the answer is "unhealthy cluster" (etcd refuses changes until every member
# has been connected for 5 s). Prints the new member's hex id; its
# --initial-cluster (ETCD_INITIAL_CLUSTER of the output) goes to NAME.ic.
cl_member_add() {
	local via=$1 name=$2 out deadline=$((SECONDS + 15))
	shift 2
	cl_define "$name" || return 1
	while :; do
		out=$(ecn "$via" member add "$name" --peer-urls="$(cl_purl "$name")" \
			"$@" 2>&1)
		if [ $? -eq 0 ]; then
			break
		fi
		case $out in
		*"unhealthy cluster"*)
			[ $SECONDS -lt $deadline ] && { sleep 0.5; continue; } ;;
		esac
		echo "member add $name: $(short "$(echo "$out" | nolog)")" >&2
		return 1
	done
	echo "$out" | sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p' \
		>"$ITEST_DIR/$name.ic"
	echo "$out" | sed -n 's/^Member *\([0-9a-f]*\) added.*/\1/p'
}

# cl_member_line VIA ID: the `member list` line of member ID (hex), as
# "ID, STATUS, NAME, PEERS, CLIENTS, IS_LEARNER".
cl_member_line() {
	ecn "$1" member list 2>/dev/null | grep "^$2, "
}
