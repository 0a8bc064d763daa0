# tests/integration/lib.sh — shared helpers for the integration tests.
#
# Sourced (never run) by every tests/integration/test_*.sh file and by
# tests/crash/kill9.sh. Provides:
#   - server lifecycle: start_server, stop_server, kill9_server
#   - clients with bounded waits: ec (etcdctl), ec_err, py (python3 etcd3),
#     gw (curl POST to the JSON gateway); jfield/jid on JSON; nolog
#   - a tiny test runner: run_suite PREFIX, run_test NAME FUNCTION, t_fail,
#     assert_eq, assert_contains, assert_gt
#
# Output contract (read by run.sh): one line per test on stdout,
#   "PASS name"  or  "FAIL name: reason"
# and nothing else starting with PASS/FAIL.
#
# Invariants:
#   1. Every client call runs under timeout(1) (CLIENT_TIMEOUT seconds).
#   2. Every server this file starts is stopped by the EXIT trap, TERM first,
#      KILL after STOP_TIMEOUT seconds; the scratch dir is always removed.
#   3. A server restarted under the same NAME reuses its data dir and ports,
#      so it comes back as the same member with the same peer URL.
#
# Server lifecycle per NAME:
#   (none) --start_server--> running --stop_server/kill9_server--> stopped
#      stopped --start_server (same data dir, same ports)--> running

: "${SERVER_BIN:=./cairn}"
: "${CLIENT_TIMEOUT:=20}"
: "${START_TIMEOUT:=10}"
: "${STOP_TIMEOUT:=10}"
: "${PYTHON:=/usr/bin/python3}"
export ETCDCTL_API=3

# Scratch dir for this test file: data dirs, logs, failure messages.
# Under /var/tmp when /tmp is a tmpfs, so fsync behaves as on a real disk.
itest_pick_tmp() {
	if [ -n "${ITEST_TMPDIR:-}" ]; then
		echo "$ITEST_TMPDIR"
	elif [ "$(stat -f -c %T /tmp 2>/dev/null)" = "tmpfs" ]; then
		echo /var/tmp
	else
		echo /tmp
	fi
}
ITEST_DIR=$(mktemp -d "$(itest_pick_tmp)/cairn-itest.XXXXXX") || exit 2
T_MSG="$ITEST_DIR/failmsg"

# Per-server state lives in files ($ITEST_DIR/NAME.{pid,port,peer}) rather
# than shell variables, so a test running in a subshell can restart a server
# and the EXIT trap of the main shell still finds and stops it.
PORT=""			# client port of the most recently started server
CUR=""			# name of the most recently started server

srv_get() { cat "$ITEST_DIR/$1.$2" 2>/dev/null; }	# srv_get NAME FIELD
srv_set() { echo "$3" >"$ITEST_DIR/$1.$2"; }		# srv_set NAME FIELD VAL

# free_ports N: print N distinct free TCP ports on 127.0.0.1, one a line.
# All sockets are held open together so the kernel hands out distinct ports.
free_ports() {
	"$PYTHON" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
EOF
}

# ec ARGS...: etcdctl against the current server, bounded.
ec() {
	timeout -k 2 "$CLIENT_TIMEOUT" etcdctl --endpoints="127.0.0.1:$PORT" \
		--dial-timeout=5s --command-timeout="$((CLIENT_TIMEOUT - 2))s" "$@"
}

# ec_err ARGS...: run etcdctl expecting failure; print its "Error: ..." line
# (without the prefix). Prints "UNEXPECTED-SUCCESS" when it succeeded.
ec_err() {
	local out rc
	out=$(ec "$@" 2>&1 </dev/null)
	rc=$?
	if [ $rc -eq 0 ]; then
		echo "UNEXPECTED-SUCCESS"
		return
	fi
	printf '%s\n' "$out" | sed -n 's/^Error: //p' | tail -1
}

# py ARGS...: bounded run of the system python (which has etcd3 and grpc).
py() {
	timeout -k 2 "$CLIENT_TIMEOUT" "$PYTHON" "$@"
}

# server_alive NAME: the process exists and is not a zombie.
server_alive() {
	local pid state
	pid=$(srv_get "$1" pid)
	[ -n "$pid" ] || return 1
	state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
	[ -n "$state" ] && [ "$state" != Z ]
}

# wait_healthy NAME: 0 once `etcdctl endpoint health` passes within
# START_TIMEOUT seconds; 1 if the process died or the time ran out.
wait_healthy() {
	local name=$1 deadline=$((SECONDS + START_TIMEOUT))
	while [ $SECONDS -lt $deadline ]; do
		server_alive "$name" || return 1
		if timeout 3 etcdctl --endpoints="127.0.0.1:$(srv_get "$name" port)" \
			--dial-timeout=1s --command-timeout=2s \
			endpoint health >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# wait_file FILE TEXT [SECONDS]: 0 once FILE contains TEXT (bounded).
wait_file() {
	local i n
	n=$(awk -v s="${3:-10}" 'BEGIN { printf "%d", s * 10 }')
	for ((i = 0; i < n; i++)); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# start_server NAME [EXTRA FLAGS...]: launch $SERVER_BIN as a one-member
# cluster with etcd's flags; sets PORT and CUR. Restarting a NAME reuses its
# data dir and ports. Returns 1 (after printing the log tail to stderr) when
# the server does not become healthy in START_TIMEOUT seconds.
start_server() {
	local name=$1 ports cu pu
	shift
	if [ -z "$(srv_get "$name" port)" ]; then
		ports=$(free_ports 2) || return 1
		srv_set "$name" port "$(echo "$ports" | sed -n 1p)"
		srv_set "$name" peer "$(echo "$ports" | sed -n 2p)"
	fi
	cu="http://127.0.0.1:$(srv_get "$name" port)"
	pu="http://127.0.0.1:$(srv_get "$name" peer)"
	"$SERVER_BIN" --name "$name" --data-dir "$ITEST_DIR/$name.data" \
		--listen-client-urls "$cu" --advertise-client-urls "$cu" \
		--listen-peer-urls "$pu" --initial-advertise-peer-urls "$pu" \
		--initial-cluster "$name=$pu" "$@" \
		>>"$ITEST_DIR/$name.log" 2>&1 </dev/null &
	srv_set "$name" pid $!
	PORT=$(srv_get "$name" port)
	CUR=$name
	if ! wait_healthy "$name"; then
		echo "start_server $name: not healthy within ${START_TIMEOUT}s;" \
			"log tail:" >&2
		tail -n 20 "$ITEST_DIR/$name.log" >&2
		stop_server "$name"
		return 1
	fi
	return 0
}

# stop_server [NAME]: TERM, then KILL after STOP_TIMEOUT s. Default: CUR.
stop_server() {
	local name=${1:-$CUR} pid i
	pid=$(srv_get "$name" pid)
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		server_alive "$name" || break
		sleep 0.1
	done
	server_alive "$name" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	srv_set "$name" pid ""
	return 0
}

# kill9_server [NAME]: SIGKILL at once (crash), then reap.
kill9_server() {
	local name=${1:-$CUR} pid i
	pid=$(srv_get "$name" pid)
	[ -n "$pid" ] || return 0
	kill -KILL "$pid" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		server_alive "$name" || break
		sleep 0.1
	done
	wait "$pid" 2>/dev/null
	srv_set "$name" pid ""
}

server_pid() { srv_get "${1:-$CUR}" pid; }
server_data() { echo "$ITEST_DIR/${1:-$CUR}.data"; }

itest_cleanup() {
	local f n
	for f in "$ITEST_DIR"/*.pid; do
		[ -e "$f" ] || continue
		n=$(basename "$f" .pid)
		stop_server "$n"
	done
	if [ -n "${ITEST_KEEP:-}" ]; then
		echo "kept scratch dir $ITEST_DIR" >&2
	else
		rm -rf "$ITEST_DIR"
	fi
}
trap itest_cleanup EXIT
trap 'exit 130' INT TERM

# ---- test runner -------------------------------------------------------

# short STRING: the first 200 bytes on one line, for failure messages.
short() {
	printf '%s' "$1" | tr '\n' ' ' | cut -c1-200
}

# t_fail REASON: record why the current test failed and end it. Only valid
# at the top level of a test function (run_test runs it in a subshell).
t_fail() {
	printf '%s' "$*" >"$T_MSG"
	exit 1
}

assert_eq() {
	[ "$1" == "$2" ] ||
		t_fail "${3:-value}: got '$(short "$1")' want '$(short "$2")'"
}

assert_contains() {
	case "$1" in
	*"$2"*) ;;
	*) t_fail "${3:-output}: '$(short "$1")' lacks '$(short "$2")'" ;;
	esac
}

assert_gt() {
	[ "$1" -gt "$2" ] 2>/dev/null ||
		t_fail "${3:-value}: got '$(short "$1")' want > $2"
}

# run_test NAME FUNCTION: run FUNCTION in a subshell, print PASS/FAIL;
# returns 1 when the test failed.
run_test() {
	local name=$1 fn=$2 rc
	: >"$T_MSG"
	( "$fn" )
	rc=$?
	if [ $rc -eq 0 ]; then
		echo "PASS $name"
		return 0
	elif [ -s "$T_MSG" ]; then
		echo "FAIL $name: $(short "$(cat "$T_MSG")")"
	else
		echo "FAIL $name: exit status $rc"
	fi
	return 1
}


# Helpers on etcdctl -w json output. jq reads numbers as doubles, so ids
# (uint64) are taken as text with grep, never through jq arithmetic.
jfield() {			# jfield JSON FILTER
	printf '%s' "$1" | jq -r "$2" 2>/dev/null
}
jid() {				# jid JSON FIELD: first "FIELD":digits as text
	printf '%s' "$1" | grep -o "\"$2\":[0-9]*" | head -1 | cut -d: -f2
}
b64() { printf '%s' "$1" | base64 -w0; }
unb64() { printf '%s' "$1" | base64 -d; }

# rev: the current store revision (from a get on any key).
cur_rev() {
	jfield "$(ec get __rev_probe__ -w json)" .header.revision
}

# Every function named test_* in the sourcing file, alphabetically.
suite_fns() {
	declare -F | awk '{print $3}' | grep '^test_'
}

# run_suite PREFIX [START ARGS...]: start server "s1" (with START ARGS as
# extra flags) and run every test_* function as test "PREFIX.name". If the
# server does not start, every test fails with that reason. Returns 1 when
# any test failed (a test file ends with run_suite: that is its status).
run_suite() {
	local prefix=$1 f
	shift
	if ! start_server s1 "$@"; then
		for f in $(suite_fns); do
			echo "FAIL $prefix.${f#test_}: server did not start"
		done
		return 1
	fi
	local dead="" line failed=0
	for f in $(suite_fns); do
		if [ -n "$dead" ]; then
			echo "FAIL $prefix.${f#test_}: $dead"
			failed=1
			continue
		fi
		if ! server_alive "$CUR"; then
			echo "FAIL $prefix.${f#test_}: server is not running"
			failed=1
			continue
		fi
		line=$(run_test "$prefix.${f#test_}" "$f")
		echo "$line"
		# after a failure, a hung server fails the rest at once instead of
		# timing out every client call of every remaining test
		case ${line##*$'\n'} in	# the verdict is the last line
		FAIL*)
			failed=1
			timeout 8 etcdctl --endpoints="127.0.0.1:$PORT" \
				--dial-timeout=3s --command-timeout=4s \
				endpoint health >/dev/null 2>&1 ||
				dead="server unresponsive after an earlier failure"
			;;
		esac
	done
	return $failed
}

# gw PATH JSON: POST to the JSON gateway of the current server, bounded.
gw() {
	curl -sS -m "$CLIENT_TIMEOUT" -X POST "http://127.0.0.1:$PORT$1" -d "$2"
}

# nolog: drop etcdctl's JSON log lines (stderr noise merged by 2>&1).
nolog() {
	grep -v '^{"level"'
}
