#!/bin/bash
# tools/bench/cluster.sh — a 3-member cairn cluster against a 3-member etcd
# 3.4 cluster on loopback, same load, one run each: put throughput and
# latency with 16 and 256 clients (tools/cairn-bench), and leader failover
# (kill -9 of the leader under a put load to the first acknowledged write).
# Writes the tables into docs/BENCHMARKS.md between the markers
# "<!-- cluster.sh begin -->" and "<!-- cluster.sh end -->" (appended as a
# new section when they are missing), unless -n.
#
# Usage: tools/bench/cluster.sh [options]
#   -c CAIRN   cairn binary (default ./cairn, else <top>/cairn)
#   -b BENCH   cairn-bench (default ./tools/cairn-bench, else <top>/tools/..)
#   -e ETCD    etcd binary (default: etcd on PATH)
#   -s LIST    servers, in order (default "cairn etcd")
#   -t SECS    seconds per throughput cell (default 5)
#   -f N       failover rounds per server (default 3)
#   -o FILE    the doc to write (default <top>/docs/BENCHMARKS.md)
#   -n         print the tables only, write no doc
# Environment: HEARTBEAT_MS (100) and ELECTION_MS (1000): etcd's defaults,
# the same for both servers; VAL_SIZE (256); CLUSTER_PORT_LO/HI (25000-
# 26999); ITEST_TMPDIR (parent of the data dirs; default /var/tmp when /tmp
# is a tmpfs, else /tmp); ITEST_KEEP=1 keeps the data dirs and logs.
#
# Invariants:
#   1. One cluster runs at a time; every member is stopped by PID (TERM,
#      KILL after 10 s) at the end of its server's turn and by the EXIT
#      trap of tests/integration/lib.sh on error or ^C.
#   2. Every wait is bounded: the bench by --duration and --drain-timeout
#      under timeout(1), the failover probes by their own timeouts.
#   3. The raw numbers go to $ITEST_DIR/results.jsonl as measured; the
#      tables are built from that file only.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cairn="" bench="" etcd=$(command -v etcd) servers="cairn etcd" cell_s=5
rounds=3 doc=$top/docs/BENCHMARKS.md nodoc=""
while getopts "c:b:e:s:t:f:o:n" opt; do
	case $opt in
	c) cairn=$OPTARG ;;
	b) bench=$OPTARG ;;
	e) etcd=$OPTARG ;;
	s) servers=$OPTARG ;;
	t) cell_s=$OPTARG ;;
	f) rounds=$OPTARG ;;
	o) doc=$OPTARG ;;
	n) nodoc=1 ;;
	*) sed -n '2,25p' "$0" >&2; exit 2 ;;
	esac
done
pick() {		# pick GIVEN RELATIVE: GIVEN, ./RELATIVE or <top>/RELATIVE
	if [ -n "$1" ]; then echo "$1"
	elif [ -x "./$2" ]; then echo "$PWD/$2"
	else echo "$top/$2"; fi
}
cairn=$(pick "$cairn" cairn)
bench=$(pick "$bench" tools/cairn-bench)
for b in "$bench" $( [[ $servers == *cairn* ]] && echo "$cairn") \
	$( [[ $servers == *etcd* ]] && echo "$etcd"); do
	[ -x "$b" ] || { echo "cluster.sh: $b: not executable" >&2; exit 2; }
done
: "${HEARTBEAT_MS:=100}" "${ELECTION_MS:=1000}" "${VAL_SIZE:=256}"
export HEARTBEAT_MS ELECTION_MS
SERVER_BIN=$cairn
# shellcheck source=../../tests/cluster/lib.sh
. "$top/tests/cluster/lib.sh"	# members, ports, EXIT trap, clhelp.py
CLIENT_TIMEOUT=30
RES="$ITEST_DIR/results.jsonl"
: >"$RES"

# use_server NAME: point the harness at cairn or etcd.
use_server() {
	case $1 in
	cairn) SERVER_BIN=$cairn IS_ETCD=0 ;;
	etcd) SERVER_BIN=$etcd IS_ETCD=1 ;;
	esac
	export SERVER_BIN
}

# put_cell SERVER PREFIX CLIENTS CONNS: one put run over the 3 members.
put_cell() {
	local srv=$1 p=$2 c=$3 conns=$4 out
	out=$(timeout -k 5 $((cell_s + 60)) "$bench" --json --quiet \
		--endpoints "$(cl_eps $(cl_members "$p"))" --clients "$c" \
		--conns "$conns" --duration "${cell_s}s" --val-size "$VAL_SIZE" \
		--key-space 100000 --prefix "put$c/" put)
	echo "$srv put $c clients: $(echo "$out" | "$PYTHON" -c 'import json,sys
j = json.load(sys.stdin); l = j["latency_ms"]
print("%.0f req/s, p50 %.2f ms, p99 %.2f ms, errors %d" % (j["throughput"],
      l["p50"], l["p99"], j["errors"]))' 2>/dev/null)" >&2
	[ -n "$out" ] || return 1
	printf '{"server":"%s","kind":"put","clients":%d,"bench":%s}\n' \
		"$srv" "$c" "$out" >>"$RES"
}

# failover SERVER PREFIX ROUND: under a 16-client put load, kill -9 the
# leader; time to a new leader (Status polled every 10 ms) and to the first
# put acknowledged in a later term (100 ms probes); restart, catch up.
failover() {
	local srv=$1 p=$2 r=$3 ms ld rest term tk tl tw bp n
	ms=$(cl_members "$p")
	ld=$(cl_wait_leader $ms) || return 1
	rest=$(for n in $ms; do [ "$n" != "$ld" ] && echo "$n"; done)
	term=$(cl_status "$ld" | awk '{print $3}')
	timeout -k 5 60 "$bench" --quiet --endpoints "$(cl_eps $ms)" \
		--clients 16 --conns 3 --duration 6s --val-size "$VAL_SIZE" \
		--prefix "fo$r/" --drain-timeout 5s put >/dev/null 2>&1 &
	bp=$!
	"$PYTHON" "$CLHELP" newleader --endpoints "$(cl_eps $rest)" \
		--old "$(cl_id "$ld")" --timeout 20 >"$ITEST_DIR/nl.$srv.$r" &
	local pl=$!
	"$PYTHON" "$CLHELP" probe --endpoints "$(cl_eps $rest)" \
		--term "$term" --timeout 20 >"$ITEST_DIR/pr.$srv.$r" &
	local pp=$!
	sleep 2
	tk=$(date +%s%N)
	kill9_server "$ld"
	wait $pl
	wait $pp
	wait $bp
	tl=$(awk '{print $3}' "$ITEST_DIR/nl.$srv.$r")
	tw=$(awk '{print $3}' "$ITEST_DIR/pr.$srv.$r")
	printf '{"server":"%s","kind":"failover","round":%d,"leader_ms":%s,"write_ms":%s}\n' \
		"$srv" "$r" "${tl:+$(((tl - tk) / 1000000))}" \
		"${tw:+$(((tw - tk) / 1000000))}" | sed 's/:,/:null,/g; s/:}/:null}/' >>"$RES"
	echo "$srv failover $r: $(tail -1 "$RES")" >&2
	cl_restart "$ld"
	cl_wait_healthy "$ld" || return 1
	cl_wait_caught_up "$ld" "$(cl_wait_leader $ms)" 30
}

run_server() {
	local srv=$1 p="$1x" r
	use_server "$srv"
	if ! cl_cluster "$p" 3; then
		echo "cluster.sh: the $srv cluster did not start" >&2
		return 1
	fi
	echo "$srv: 3 members up: $(cl_eps $(cl_members "$p"))" >&2
	put_cell "$srv" "$p" 16 3
	put_cell "$srv" "$p" 256 9
	for ((r = 1; r <= rounds; r++)); do
		failover "$srv" "$p" "$r"
	done
	cl_stop_all
}

for s in $servers; do
	run_server "$s"
done

tables=$("$PYTHON" - "$RES" "$HEARTBEAT_MS" "$ELECTION_MS" "$VAL_SIZE" \
	"$cell_s" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
hb, el, vs, secs = sys.argv[2:6]
put = {(r["server"], r["clients"]): r["bench"] for r in rows
       if r["kind"] == "put"}
fo = {}
for r in rows:
    if r["kind"] == "failover":
        fo.setdefault(r["server"], []).append(r)
def ratio(a, b):
    return "%.2f" % (a / b) if a and b else "-"
out = []
out.append("Put, %s-byte values, random keys of 100 000, %s s per cell, "
           "spread over the 3 members (16 clients on 3 HTTP/2 connections, "
           "256 on 9):" % (vs, secs))
out.append("")
out.append("| clients | metric | cairn | etcd | cairn vs etcd |")
out.append("|--------:|--------|------:|-----:|------:|")
for c in (16, 256):
    a, b = put.get(("cairn", c)), put.get(("etcd", c))
    def g(x, k, sub=None):
        if not x: return None
        return x["latency_ms"][k] if sub else x[k]
    for name, k, sub, better_high in (("puts/s", "throughput", None, True),
                                      ("p50 ms", "p50", 1, False),
                                      ("p99 ms", "p99", 1, False),
                                      ("max ms", "max", 1, False)):
        va, vb = g(a, k, sub), g(b, k, sub)
        fmt = "%.0f" if k == "throughput" else "%.2f"
        r = ratio(va, vb) if better_high else ratio(vb, va)
        out.append("| %d | %s | %s | %s | %s |" % (
            c, name, fmt % va if va is not None else "-",
            fmt % vb if vb is not None else "-", r))
    errs = ", ".join("%s %d" % (s, put[(s, c)]["errors"]) for s in
                     ("cairn", "etcd") if (s, c) in put)
    out.append("| %d | errors | %s | | |" % (c, errs))
out.append("")
out.append("Ratios: throughput cairn/etcd, latency etcd/cairn (above 1: cairn "
           "better).")
out.append("")
out.append("Leader failover, kill -9 of the leader under a 16-client put load "
           "(heartbeat %s ms, election timeout %s ms on both), ms from the "
           "kill:" % (hb, el))
out.append("")
out.append("| server | new leader (each round) | first acknowledged write "
           "(each round) | median leader | median write |")
out.append("|--------|------|------|-----:|-----:|")
for s in ("cairn", "etcd"):
    if s not in fo: continue
    ls = [r["leader_ms"] for r in fo[s]]
    ws = [r["write_ms"] for r in fo[s]]
    ok = [w for w in ws if w is not None]
    okl = [x for x in ls if x is not None]
    out.append("| %s | %s | %s | %s | %s |" % (
        s, ", ".join("-" if x is None else str(x) for x in ls),
        ", ".join("-" if x is None else str(x) for x in ws),
        statistics.median(okl) if okl else "-",
        statistics.median(ok) if ok else "-"))
print("\n".join(out))
EOF
)
echo "$tables"
[ -n "$nodoc" ] && exit 0
echo "$tables" >"$ITEST_DIR/tables.md"
stamp="$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; $("$cairn" --version 2>/dev/null | head -1); $("$etcd" --version | head -1)"
"$PYTHON" - "$doc" "$stamp" "$ITEST_DIR/tables.md" <<'EOF'
import sys
path, stamp, tables = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
body = ("<!-- cluster.sh begin -->\nGenerated by `tools/bench/cluster.sh` "
        "(%s).\n\n%s<!-- cluster.sh end -->" % (stamp, tables))
s = open(path).read()
b, e = "<!-- cluster.sh begin -->", "<!-- cluster.sh end -->"
if b in s and e in s:
    s = s[:s.index(b)] + body + s[s.index(e) + len(e):]
else:
    s = s.rstrip("\n") + "\n\n## 3-member clusters: cairn against etcd " \
        "(tools/bench/cluster.sh)\n\n" + body + "\n"
open(path, "w").write(s)
EOF
echo "wrote $doc" >&2
