#!/bin/bash
# tools/bench/engines.sh — every storage engine cairn was built with, and
# real etcd, under the same workloads on the same disk, one server at a time;
# writes docs/BENCHMARKS.md (between its marker comments),
# docs/bench-results.json and docs/bench-throughput.png.
#
# Usage: tools/bench/engines.sh [options]
#   -c CAIRN   cairn binary (default ./cairn, else <top>/cairn)
#   -b BENCH   cairn-bench (default ./tools/cairn-bench, else <top>/tools/..)
#   -e ETCD    etcd binary (default: etcd on PATH; "" or -E skips etcd)
#   -E         no etcd
#   -s LIST    servers to run, e.g. "sqlite etcd" (default: every engine
#              `cairn --version` lists, then etcd)
#   -d DIR     parent of the data dirs (default /var/tmp; a tmpfs is refused)
#   -o DIR     where the docs go (default <top>/docs)
#   -t SECS    seconds per cell (default 5)
#   -k KEYS    keys preloaded for the range workloads (default 100000)
#   -C LIST    client counts (default "1 16 256")
#   -n         no profile runs (strace -c, perf stat, perf record)
#   -q         quick check of the harness: -t 1 -k 10000, output to /tmp
#   -R WORK    no measuring: rebuild the docs from the raw files of an
#              earlier run kept with KEEP=1 (its work dir is printed)
# Environment: VAL_SIZE (256), CONNS_PER (32: one HTTP/2 connection per 32
# clients), PROFILE_N (2000 requests per strace run), KEEP=1 (keep the work
# dir: raw strace/perf output, server logs).
#
# Invariants:
#   1. At most one server runs at a time, and it is always stopped by PID
#      (TERM, KILL after 15 s), also on error or ^C (the EXIT trap).
#   2. Every server starts on a fresh data dir under the same parent dir,
#      on a disk, and the dir is removed when the run ends.
#   3. Every cell is bounded: by -t seconds plus the bench's own
#      --drain-timeout, and by timeout(1) around every client call.
#   4. Raw numbers are appended to $work/*.jsonl as they are measured; the
#      report is built from those files only (the python at the end).
#
# Per server:  start -> preload -> measure -> cells (family x clients)
#              -> measure -> profile runs -> stop
set -u
argv=("$@")
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
PY=/usr/bin/python3
export ETCDCTL_API=3

cairn="" bench="" etcd=$(command -v etcd) servers="" parent=/var/tmp
docs=$top/docs cell_s=5 keys=100000 clients="1 16 256" profile=1 quick="" rebuild=""
while getopts "c:b:e:Es:d:o:t:k:C:nqR:" opt; do
	case $opt in
	c) cairn=$OPTARG ;;
	b) bench=$OPTARG ;;
	e) etcd=$OPTARG ;;
	E) etcd="" ;;
	s) servers=$OPTARG ;;
	d) parent=$OPTARG ;;
	o) docs=$OPTARG ;;
	t) cell_s=$OPTARG ;;
	k) keys=$OPTARG ;;
	C) clients=$OPTARG ;;
	n) profile="" ;;
	q) quick=1 ;;
	R) rebuild=$OPTARG ;;
	*) sed -n '7,27p' "$0" >&2; exit 2 ;;
	esac
done
if [ -n "$quick" ]; then
	cell_s=1 keys=10000 docs=/tmp/engines-quick
fi
: "${VAL_SIZE:=256}" "${CONNS_PER:=32}" "${PROFILE_N:=2000}"

pick() {		# pick CANDIDATES...: the first executable one
	local f
	for f in "$@"; do
		[ -x "$f" ] && { echo "$f"; return; }
	done
	echo "$1"
}
SRV_PID=""

cleanup() {
	stop_server
	if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}

# setup: find the binaries and the servers, make the work dir.
setup() {
	local f
	[ -n "$cairn" ] || cairn=$(pick ./cairn "$top/cairn")
	[ -n "$bench" ] || bench=$(pick ./tools/cairn-bench "$top/tools/cairn-bench")
	for f in "$cairn" "$bench"; do
		[ -x "$f" ] || { echo "engines.sh: $f not found (build first, or -c/-b)" >&2; exit 2; }
	done
	cairn=$(realpath "$cairn") bench=$(realpath "$bench")
	engines=$("$cairn" --version | sed -n 's/^Storage engines: \([^(]*\).*/\1/p')
	if [ -z "$servers" ]; then
		servers="$engines"
		[ -n "$etcd" ] && servers="$servers etcd"
	fi
	mkdir -p "$parent" "$docs" || exit 2
	if [ "$(stat -f -c %T "$parent")" = tmpfs ]; then
		echo "engines.sh: $parent is a tmpfs; fsync would cost nothing there (-d)" >&2
		exit 2
	fi
	work=$(mktemp -d "$parent/cairn-engines.XXXXXX") || exit 2
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

log() { echo "# $(date -u +%H:%M:%S) $*" >&2; }

free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

ec() {			# ec ARGS..: etcdctl against the running server, bounded
	timeout -k 2 20 etcdctl --endpoints="127.0.0.1:$PORT" \
		--dial-timeout=3s --command-timeout=15s "$@"
}

alive() {		# alive PID: exists and is not a zombie
	local s
	s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
	[ -n "$s" ] && [ "$s" != Z ]
}

# start_server NAME: fresh data dir, free ports; sets SRV_PID and PORT.
start_server() {
	local name=$1 peer cu pu i
	local -a cmd
	PORT=$(free_port) peer=$(free_port)
	cu=http://127.0.0.1:$PORT pu=http://127.0.0.1:$peer
	if [ "$name" = etcd ]; then cmd=("$etcd"); else cmd=("$cairn" --backend "$name"); fi
	"${cmd[@]}" --name bench --data-dir "$work/$name.data" \
		--listen-client-urls "$cu" --advertise-client-urls "$cu" \
		--listen-peer-urls "$pu" --initial-advertise-peer-urls "$pu" \
		--initial-cluster "bench=$pu" >"$work/$name.log" 2>&1 </dev/null &
	SRV_PID=$!
	for ((i = 0; i < 300; i++)); do
		alive "$SRV_PID" || break
		if timeout 3 etcdctl --endpoints="127.0.0.1:$PORT" --dial-timeout=1s \
			--command-timeout=2s endpoint health >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	log "$name did not become healthy; log tail:"
	tail -n 20 "$work/$name.log" >&2
	stop_server
	return 1
}

stop_server() {
	local i
	[ -n "$SRV_PID" ] || return 0
	kill -TERM "$SRV_PID" 2>/dev/null
	for ((i = 0; i < 150; i++)); do
		alive "$SRV_PID" || break
		sleep 0.1
	done
	alive "$SRV_PID" && kill -KILL "$SRV_PID" 2>/dev/null
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=""
}

cpu_s() {		# utime + stime of the server (all threads), seconds
	awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' \
		"/proc/$SRV_PID/stat" 2>/dev/null || echo 0
}
busy_s() {		# busy CPU seconds of the whole machine, all cores
	awk -v t="$(getconf CLK_TCK)" '/^cpu / {
		printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / t }' /proc/stat
}
rss_kib() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$SRV_PID/status"; }
db_size() {		# db_size: {"db":..,"in_use":..,"rev":..} from endpoint status
	ec endpoint status -w json 2>/dev/null |
		jq -c '.[0].Status | {db: .dbSize, in_use: (.dbSizeInUse // null),
			rev: .header.revision}' 2>/dev/null ||
		echo '{"db":null,"in_use":null,"rev":null}'
}
snapshot() {		# snapshot: sizes and memory now, as one JSON object
	jq -c -n --argjson s "$(db_size)" --arg rss "$(rss_kib VmRSS)" \
		--arg hwm "$(rss_kib VmHWM)" --arg dir "$(du -sb "$work/$1.data" | cut -f1)" \
		--arg cpu "$(cpu_s)" \
		'{db_size: $s.db, db_size_in_use: $s.in_use, revision: $s.rev,
		  data_dir_bytes: ($dir|tonumber),
		  rss_kib: ($rss|tonumber), peak_rss_kib: ($hwm|tonumber), cpu_s: ($cpu|tonumber)}'
}

# run_bench ARGS..: cairn-bench --json against the server; prints its line
# (or {} when it printed none). Bounded: the cell time plus a margin.
run_bench() {
	local out
	out=$(timeout -k 5 $((cell_s + 60)) "$bench" --endpoints "127.0.0.1:$PORT" \
		--json --quiet --val-size "$VAL_SIZE" "$@" 2>>"$work/bench.err" | tail -n 1)
	case $out in "{"*) echo "$out" ;; *) echo '{}' ;; esac
}

# cell NAME FAMILY CLIENTS ARGS..: one measured run, appended to cells.jsonl
cell() {
	local name=$1 fam=$2 c=$3 conns js c0 c1 b0 b1
	shift 3
	conns=$(((c + CONNS_PER - 1) / CONNS_PER))
	c0=$(cpu_s) b0=$(busy_s)
	js=$(run_bench --clients "$c" --conns "$conns" --duration "${cell_s}s" "$@")
	c1=$(cpu_s) b1=$(busy_s)
	jq -c -n --arg srv "$name" --arg fam "$fam" --argjson c "$c" \
		--argjson conns "$conns" --argjson b "$js" --arg c0 "$c0" --arg c1 "$c1" \
		--arg b0 "$b0" --arg b1 "$b1" '
		(($c1|tonumber) - ($c0|tonumber)) as $cpu |
		(($b1|tonumber) - ($b0|tonumber)) as $busy |
		{server: $srv, family: $fam, clients: $c, conns: $conns,
		 throughput: $b.throughput, p99_ms: $b.latency_ms."p99",
		 p50_ms: $b.latency_ms.p50, requests: $b.requests, errors: $b.errors,
		 server_cpu_s: $cpu,
		 server_cpu_us_per_req: (if ($b.requests // 0) > 0
			then $cpu * 1e6 / $b.requests else null end),
		 bench_cpu_us_per_req: $b.cpu_us_per_req,
		 other_cpu_s: ($busy - $cpu - (($b.cpu_user_s // 0) + ($b.cpu_sys_s // 0))),
		 bench: $b}' >>"$work/cells.jsonl"
	log "  $fam c=$c: $(jq -r '"\(.throughput // "-") req/s p99 \(.latency_ms.p99 // "-") ms errors \(.errors // "-")"' <<<"$js")"
}

# strace_run NAME LABEL CLIENTS WORKLOAD ARGS..: syscalls per request
strace_run() {
	local name=$1 label=$2 c=$3 n=$PROFILE_N sp js
	shift 3
	[ "$c" = 1 ] && n=$((PROFILE_N / 2))
	command -v strace >/dev/null || return 0
	strace -f -c -o "$work/strace.$name.$label" -p "$SRV_PID" 2>/dev/null &
	sp=$!
	sleep 1		# strace attaches to every thread before the load starts
	js=$(run_bench --clients "$c" --total "$n" "$@")
	kill -INT "$sp" 2>/dev/null
	wait "$sp" 2>/dev/null
	awk -v srv="$name" -v label="$label" -v n="$(jq '.requests // 0' <<<"$js")" '
		$1 ~ /^[0-9.]+$/ && $NF !~ /^total$/ { calls[$NF] = $4 }
		END {
			printf "{\"server\":\"%s\",\"run\":\"%s\",\"requests\":%d,\"syscalls\":{", srv, label, n
			sep = ""
			for (s in calls) { printf "%s\"%s\":%d", sep, s, calls[s]; sep = "," }
			print "}}"
		}' "$work/strace.$name.$label" >>"$work/strace.jsonl"
}

# files_run NAME LABEL CLIENTS WORKLOAD ARGS..: which file each write and
# sync goes to (strace -y), calls and bytes per request, by file; the data
# dir prefix is dropped, hex and digit runs become N (member/wal/N-N.wal).
files_run() {
	local name=$1 label=$2 c=$3 n=$PROFILE_N sp js
	shift 3
	[ "$c" = 1 ] && n=$((PROFILE_N / 2))
	command -v strace >/dev/null || return 0
	strace -f -y -qq -o "$work/files.$name.$label" -p "$SRV_PID" \
		-e trace=write,pwrite64,writev,pwritev,pwritev2,fsync,fdatasync,sync_file_range \
		2>/dev/null &
	sp=$!
	sleep 1
	js=$(run_bench --clients "$c" --total "$n" "$@")
	kill -INT "$sp" 2>/dev/null
	wait "$sp" 2>/dev/null
	awk -v srv="$name" -v label="$label" -v dir="$work/$name.data/" \
		-v n="$(jq '.requests // 0' <<<"$js")" '
		function class(f) {
			if (f ~ /^TCP/ || f ~ /^socket/) return "socket"
			if (f ~ /^pipe/) return "pipe"
			if (f ~ /^anon_inode/) return "eventfd"
			if (index(f, dir) == 1) f = substr(f, length(dir) + 1)
			gsub(/[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]+/, "N", f)
			gsub(/[0-9]+/, "N", f)
			return f
		}
		/^[0-9]+ +[a-z0-9_]+\([0-9]+</ {
			pid = $1
			sc = $2; sub(/\(.*/, "", sc)
			f = $0; sub(/^[^<]*</, "", f); sub(/>.*/, "", f)
			k = sc " " class(f)
			calls[k]++
			if ($0 ~ /unfinished \.\.\.>$/) { open[pid] = k; next }
			if (match($0, /= [0-9]+$/)) bytes[k] += substr($0, RSTART + 2)
			next
		}
		/resumed>/ && ($1 in open) {
			if (match($0, /= [0-9]+$/)) bytes[open[$1]] += substr($0, RSTART + 2)
			delete open[$1]
		}
		END {
			printf "{\"server\":\"%s\",\"run\":\"%s\",\"requests\":%d,\"files\":[", srv, label, n
			sep = ""
			for (k in calls) {
				split(k, a, " ")
				printf "%s{\"syscall\":\"%s\",\"file\":\"%s\",\"calls\":%d,\"bytes\":%d}", sep, a[1], substr(k, length(a[1]) + 2), calls[k], bytes[k]
				sep = ","
			}
			print "]}"
		}' "$work/files.$name.$label" >>"$work/files.jsonl"
	rm -f "$work/files.$name.$label"
}

# perf_run NAME LABEL CLIENTS WORKLOAD ARGS..: perf stat + where the CPU
# goes by DSO (perf record) during one run of -t seconds.
perf_run() {
	local name=$1 label=$2 c=$3 js pr ps
	shift 3
	command -v perf >/dev/null || return 0
	: >"$work/pstat.$name.$label"	# stays empty if perf cannot attach
	perf record -q -F 499 -o "$work/perf.$name.$label" -p "$SRV_PID" \
		-- sleep "$cell_s" >/dev/null 2>&1 &
	pr=$!
	perf stat -x, -o "$work/pstat.$name.$label" \
		-e task-clock,context-switches,cpu-migrations,page-faults \
		-p "$SRV_PID" -- sleep "$cell_s" >/dev/null 2>&1 &
	ps=$!
	js=$(run_bench --clients "$c" --duration "${cell_s}s" "$@")
	wait "$pr" "$ps" 2>/dev/null
	perf report -q -i "$work/perf.$name.$label" --sort dso --stdio 2>/dev/null |
		awk 'NF >= 2 && $1 ~ /%$/ { sub(/%/, "", $1); print $1 "\t" $2 }' \
		>"$work/dso.$name.$label"
	jq -c -n --arg srv "$name" --arg run "$label" --argjson b "$js" \
		--rawfile dso "$work/dso.$name.$label" \
		--rawfile st "$work/pstat.$name.$label" '
		{server: $srv, run: $run, requests: ($b.requests // 0),
		 throughput: $b.throughput,
		 dso: [$dso | split("\n")[] | select(length > 0) | split("\t")
			| {dso: .[1], pct: (.[0]|tonumber)}],
		 stat: ([$st | split("\n")[] | select(test("^[0-9]")) | split(",")
			| {key: .[2], value: (.[0]|tonumber)}] | from_entries)}' \
		>>"$work/perf.jsonl"
}

# range-s-after: serializable ranges again, after the writes (by then the
# engines have flushed their memtables or checkpointed, and the key index
# holds every version written)
families=(range-s range-l put-seq put-rand txn-put range-s-after)
family_args() {		# the bench arguments of one workload family
	case $1 in
	range-s | range-s-after) echo "--key-space $keys --consistency s range" ;;
	range-l) echo "--key-space $keys --consistency l range" ;;
	put-seq) echo "--key-space $keys --prefix put/ --sequential-keys put" ;;
	put-rand) echo "--key-space $keys --prefix put/ --seed 7 put" ;;
	txn-put) echo "--key-space $keys --prefix txn/ --seed 11 txn-put" ;;
	esac
}

bench_server() {
	local name=$1 js pre f c s0 s1 s2 ver
	log "$name: starting (load $(cut -d' ' -f1-3 /proc/loadavg))"
	start_server "$name" || {
		jq -c -n --arg s "$name" '{server: $s, failed: true}' >>"$work/servers.jsonl"
		return
	}
	s0=$(snapshot "$name")
	c=$(cpu_s)
	pre=$(run_bench --preload "$keys" --key-space "$keys" --clients 4)
	s1=$(snapshot "$name")
	log "  preload $keys keys: $(jq -r '.seconds // "-"' <<<"$pre") s"
	for f in "${families[@]}"; do
		for c in $clients; do
			# shellcheck disable=SC2046
			cell "$name" "$f" "$c" $(family_args "$f")
		done
	done
	s2=$(snapshot "$name")
	if [ "$name" = etcd ]; then ver=$("$etcd" --version | head -1)
	else ver=$("$cairn" --version | head -1); fi
	jq -c -n --arg s "$name" --arg v "$ver" --argjson pre "$pre" \
		--argjson s0 "$s0" --argjson s1 "$s1" --argjson s2 "$s2" \
		--arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
		'{server: $s, version: $v, preload: $pre, start: $s0,
		  after_preload: $s1, after_run: $s2, loadavg_end: $load}' \
		>>"$work/servers.jsonl"
	if [ -n "$profile" ]; then
		log "  profile runs"
		strace_run "$name" put-1 1 --key-space "$keys" --prefix prof/ put
		strace_run "$name" put-16 16 --key-space "$keys" --prefix prof/ put
		strace_run "$name" range-s-16 16 --key-space "$keys" --consistency s range
		files_run "$name" put-1 1 --key-space "$keys" --prefix prof/ put
		files_run "$name" put-16 16 --key-space "$keys" --prefix prof/ put
		perf_run "$name" put-16 16 --key-space "$keys" --prefix prof/ put
		perf_run "$name" range-s-16 16 --key-space "$keys" --consistency s range
	fi
	stop_server
	rm -rf "$work/$name.data"
}

fsync_probe() {		# write 256 bytes + fdatasync, 500 times, in $work
	"$PY" - "$work" <<'EOF'
import os, sys, time, json
p = os.path.join(sys.argv[1], "fsync.probe")
fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
t = []
for i in range(500):
    a = time.perf_counter()
    os.pwrite(fd, b"x" * 256, i * 256)
    os.fdatasync(fd)
    t.append((time.perf_counter() - a) * 1e3)
os.close(fd)
os.unlink(p)
t.sort()
print(json.dumps({"p50_ms": t[len(t) // 2], "p99_ms": t[len(t) * 99 // 100],
                  "mean_ms": sum(t) / len(t)}))
EOF
}

machine() {
	local dev
	dev=$(df -P "$parent" | awk 'NR == 2 {print $1}')
	jq -c -n --arg nproc "$(nproc)" \
		--arg cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
		--arg mem "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)" \
		--arg kernel "$(uname -sr)" --arg dir "$parent" --arg dev "$dev" \
		--arg fs "$(findmnt -no FSTYPE -T "$parent" 2>/dev/null || stat -f -c %T "$parent")" \
		--arg rot "$(cat "/sys/block/$(basename "$dev")/queue/rotational" 2>/dev/null)" \
		--arg disk "$(df -h -P "$parent" | awk 'NR == 2 {print $2}')" \
		--argjson fsync "$(fsync_probe)" \
		--arg cairn "$("$cairn" --version | tr '\n' ';')" \
		--arg etcd "$([ -n "$etcd" ] && "$etcd" --version | head -1)" \
		--arg tree "$(git -C "$(dirname "$cairn")" describe --always --dirty 2>/dev/null)" \
		'{nproc: ($nproc|tonumber), cpu: $cpu, mem_kib: ($mem|tonumber),
		  kernel: $kernel, data_parent: $dir, device: $dev, fs: $fs,
		  rotational: $rot, disk_size: $disk, fsync: $fsync,
		  cairn_version: $cairn, etcd_version: $etcd, cairn_tree: $tree}'
}

settings() {
	jq -c -n --arg t "$cell_s" --arg k "$keys" --arg c "$clients" \
		--arg v "$VAL_SIZE" --arg cp "$CONNS_PER" --arg s "$servers" \
		--arg when "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		--arg cmd "tools/bench/engines.sh $*" \
		'{date: $when, cell_seconds: ($t|tonumber), keys: ($k|tonumber),
		  clients: [$c | split(" ")[] | select(length > 0) | tonumber],
		  val_size: ($v|tonumber), key_size: 16, clients_per_conn: ($cp|tonumber),
		  servers: [$s | split(" ")[] | select(length > 0)], command: $cmd}'
}

measure() {
	log "servers: $servers; $cell_s s per cell; $keys keys; data under $work"
	: >"$work/cells.jsonl"
	: >"$work/servers.jsonl"
	: >"$work/strace.jsonl"
	: >"$work/perf.jsonl"
	: >"$work/files.jsonl"
	machine >"$work/machine.json"
	settings "${argv[@]}" >"$work/settings.json"
	for s in $servers; do
		bench_server "$s"
	done
}

if [ -n "$rebuild" ]; then
	work=$rebuild
	mkdir -p "$docs" || exit 2
else
	setup
	measure
fi

log "writing $docs/bench-results.json, BENCHMARKS.md, bench-throughput.png"
"$PY" - "$work" "$docs" "$here/plot.gp" <<'EOF' || exit 1
import json, math, os, subprocess, sys

work, docs, plot = sys.argv[1:4]

def lines(name):
    with open(os.path.join(work, name)) as f:
        return [json.loads(l) for l in f if l.strip()]

res = {
    "settings": json.load(open(os.path.join(work, "settings.json"))),
    "machine": json.load(open(os.path.join(work, "machine.json"))),
    "servers": lines("servers.jsonl"),
    "cells": lines("cells.jsonl"),
    "strace": lines("strace.jsonl"),
    "perf": lines("perf.jsonl"),
    "files": lines("files.jsonl") if os.path.exists(os.path.join(work, "files.jsonl")) else [],
}
for c in res["cells"]:		# CLK_TCK arithmetic leaves float noise
    for k in ("server_cpu_s", "other_cpu_s", "server_cpu_us_per_req"):
        if isinstance(c.get(k), float):
            c[k] = round(c[k], 3)
with open(os.path.join(docs, "bench-results.json"), "w") as f:
    json.dump(res, f, indent=1)
    f.write("\n")

S = res["settings"]
names = [s["server"] for s in res["servers"] if not s.get("failed")]
failed = [s["server"] for s in res["servers"] if s.get("failed")]
label = lambda n: "etcd 3.4" if n == "etcd" else "cairn " + n
cells = {(c["server"], c["family"], c["clients"]): c for c in res["cells"]}
FAM = [("range-s", "serializable range (one key of %d)" % S["keys"]),
       ("range-l", "linearizable range (one key of %d)" % S["keys"]),
       ("put-seq", "put, sequential keys"),
       ("put-rand", "put, random keys"),
       ("txn-put", "txn-put (one put per txn), random keys"),
       ("range-s-after", "serializable range again, after the writes above")]

def num(x, fmt):
    return "-" if x is None else fmt % x

def ratio(a, b):
    if a is None or not b:
        return ""
    return " (%.2f×)" % (a / b)

out = []
m = res["machine"]
out.append("Run of %s: %d cores (%s), %.1f GiB RAM, kernel %s; data on %s "
           "(%s, %s, rotational=%s) under %s; fsync floor (256 B write + "
           "fdatasync) p50 %.2f ms, p99 %.2f ms. %s s per cell, %d preloaded "
           "keys, 16-byte keys, %d-byte values, one HTTP/2 connection per %d "
           "clients. Servers: %s.%s" % (
               S["date"], m["nproc"], m["cpu"], m["mem_kib"] / 1048576.0,
               m["kernel"], m["device"], m["fs"], m["disk_size"],
               m["rotational"], m["data_parent"], m["fsync"]["p50_ms"],
               m["fsync"]["p99_ms"], S["cell_seconds"], S["keys"],
               S["val_size"], S["clients_per_conn"],
               ", ".join("%s (`%s`)" % (label(s["server"]), s.get("version", ""))
                         for s in res["servers"] if not s.get("failed")),
               " cairn tree: `%s`." % m["cairn_tree"] if m.get("cairn_tree") else ""))
if failed:
    out.append("\n**Did not start:** %s.\n" % ", ".join(failed))
out.append("")
out.append("Each cell: requests per second (ratio to etcd), p99 latency in ms, "
           "server CPU µs per request (utime+stime of the whole server "
           "process over the cell / requests).")
for fam, title in FAM:
    out.append("")
    out.append("#### %s" % title)
    out.append("")
    hdr = "| server |"
    sep = "|---|"
    for c in S["clients"]:
        hdr += " %d cl. req/s | p99 ms | CPU µs/req |" % c
        sep += "---:|---:|---:|"
    out.append(hdr)
    out.append(sep)
    for n in names:
        row = "| %s |" % label(n)
        for c in S["clients"]:
            x = cells.get((n, fam, c), {})
            e = cells.get(("etcd", fam, c), {})
            t = x.get("throughput")
            err = " **%d err**" % x["errors"] if x.get("errors") else ""
            r = ratio(t, e.get("throughput")) if n != "etcd" else ""
            row += " %s%s%s | %s | %s |" % (
                num(t, "%.0f"), r, err, num(x.get("p99_ms"), "%.2f"),
                num(x.get("server_cpu_us_per_req"), "%.0f"))
        out.append(row)

def mib(x):
    return "-" if x is None else "%.1f" % (x / 1048576.0)

def kmib(x):
    return "-" if x is None else "%.1f" % (x / 1024.0)

out.append("")
out.append("#### size and memory")
out.append("")
out.append("dbSize is `etcdctl endpoint status` (the engine's file), in MiB "
           "and in bytes per key version stored (the preloaded keys plus one "
           "per put and txn-put: revision - 1 - preload txns + keys; no "
           "compaction runs, so all history is kept); data dir is `du -sb` of the "
           "whole data dir (raft WAL included); RSS is VmRSS, peak is VmHWM, "
           "in MiB. \"after run\" is after all the cells above.")
out.append("")
out.append("| server | preload s | dbSize after preload | dbSize after run "
           "| key versions after run | bytes/version | data dir after run "
           "| RSS at start | RSS after preload "
           "| RSS after run | peak RSS | server CPU s, whole run |")
out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for s in res["servers"]:
    if s.get("failed"):
        continue
    a, b, z = s["start"], s["after_preload"], s["after_run"]
    rev = z.get("revision")
    if rev:
        rev = rev - 1 - (s["preload"].get("requests") or 0) + S["keys"]
    out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f |" % (
        label(s["server"]), num(s["preload"].get("seconds"), "%.2f"),
        mib(b["db_size"]), mib(z["db_size"]), num(rev, "%d"),
        num(z["db_size"] / rev if rev and z["db_size"] else None, "%.0f"),
        mib(z["data_dir_bytes"]),
        kmib(a["rss_kib"]), kmib(b["rss_kib"]), kmib(z["rss_kib"]),
        kmib(z["peak_rss_kib"]), z["cpu_s"] - a["cpu_s"]))

other = [c["other_cpu_s"] for c in res["cells"] if c.get("other_cpu_s") is not None]
if other:
    out.append("")
    out.append("CPU used by other processes on the machine during a cell "
               "(all cores, busy time minus server and bench): median %.1f s, "
               "max %.1f s per %s s cell." % (
                   sorted(other)[len(other) // 2], max(other), S["cell_seconds"]))

if res["strace"]:
    keep = ["fdatasync", "fsync", "sync_file_range", "write", "pwrite64",
            "writev", "pwritev", "pwritev2", "sendmsg", "read", "pread64",
            "readv", "recvfrom", "epoll_wait", "epoll_pwait", "futex",
            "nanosleep", "mmap", "madvise"]
    tr = {(t["server"], t["run"]): t for t in res["strace"]}
    runs = []
    for t in res["strace"]:
        if t["run"] not in runs:
            runs.append(t["run"])
    seen = set()
    for t in res["strace"]:
        seen.update(k for k, v in t["syscalls"].items() if v)
    cols = [k for k in keep if k in seen]
    out.append("")
    out.append("#### system calls per request (strace -c -f, separate short runs)")
    out.append("")
    out.append("| server | run | requests | " + " | ".join(cols) +
               " | all syscalls |")
    out.append("|---|---|---:|" + "---:|" * (len(cols) + 1))
    for n in names:
        for r in runs:
            t = tr.get((n, r))
            if not t or not t["requests"]:
                continue
            q = float(t["requests"])
            sc = t["syscalls"]
            out.append("| %s | %s | %d | %s | %.1f |" % (
                label(n), r, t["requests"],
                " | ".join("%.2f" % (sc.get(k, 0) / q) for k in cols),
                sum(sc.values()) / q))

if res["files"]:
    out.append("")
    out.append("#### where the writes go (strace -f -y, separate short put runs): "
               "calls and bytes per request, by syscall and file")
    out.append("")
    out.append("Paths are relative to the data dir, hex and digit runs shown as N; "
               "socket = the client connections, pipe/eventfd = wake-ups "
               "between threads.")
    out.append("")
    out.append("| server | run | requests | syscall | file | calls/req | bytes/req |")
    out.append("|---|---|---:|---|---|---:|---:|")
    for n in names:
        for t in [t for t in res["files"] if t["server"] == n and t["requests"]]:
            q = float(t["requests"])
            rows = sorted(t["files"], key=lambda f: (f["file"], f["syscall"]))
            for f in rows:
                if f["calls"] / q < 0.005:
                    continue
                out.append("| %s | %s | %d | %s | `%s` | %.2f | %s |" % (
                    label(n), t["run"], t["requests"], f["syscall"], f["file"],
                    f["calls"] / q,
                    "%.0f" % (f["bytes"] / q) if f["bytes"] else "-"))

if res["perf"]:
    out.append("")
    out.append("#### where the server's CPU goes (perf record -F 499, by DSO; "
               "perf stat per request)")
    out.append("")
    out.append("| server | run | req/s | CPU ms/s | ctx switches/req "
               "| top DSOs (% of samples) |")
    out.append("|---|---|---:|---:|---:|---|")
    for n in names:
        for p in [p for p in res["perf"] if p["server"] == n]:
            st = p["stat"]
            q = float(p["requests"] or 1)
            dso = ", ".join("%s %.0f%%" % (d["dso"], d["pct"])
                            for d in p["dso"][:5])
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                label(n), p["run"], num(p.get("throughput"), "%.0f"),
                num(st.get("task-clock", 0) / S["cell_seconds"]
                    if "task-clock" in st else None, "%.0f"),
                num(st["context-switches"] / q
                    if "context-switches" in st else None, "%.2f"),
                dso))

block = "\n".join(out)
doc = os.path.join(docs, "BENCHMARKS.md")
B, E = "<!-- engines.sh:begin -->", "<!-- engines.sh:end -->"
text = open(doc).read() if os.path.exists(doc) else \
    "# Benchmarks\n\n%s\n%s\n" % (B, E)
if B not in text or E not in text:
    text += "\n%s\n%s\n" % (B, E)
i, j = text.index(B) + len(B), text.index(E)
text = text[:i] + "\n" + block + "\n" + text[j:]
with open(doc, "w") as f:
    f.write(text)

# gnuplot: one row per cell, one column per server
dat = os.path.join(work, "plot.dat")
with open(dat, "w") as f:
    f.write("cell " + " ".join('"%s"' % label(n) for n in names) + "\n")
    for fam, _ in FAM:
        for c in S["clients"]:
            v = [cells.get((n, fam, c), {}).get("throughput") for n in names]
            f.write('"%s/%d" %s\n' % (fam, c, " ".join(
                "%.1f" % x if x else "NaN" for x in v)))
top = max([c.get("throughput") or 0 for c in res["cells"]] + [1000])
ymax = top * 1.5
subprocess.check_call(["gnuplot", "-e",
    "datafile='%s'; outfile='%s'; nservers=%d; ymax=%g" % (
        dat, os.path.join(docs, "bench-throughput.png"), len(names), ymax), plot])
EOF
log "done"
