#!/bin/bash
# tools/perf/compare.sh — cairn against etcd on the same disk, in one run,
# one server at a time. See tools/perf/README.md.
#
# Usage: tools/perf/compare.sh [-c CAIRN_BIN] [-e ETCD_BIN] [-d PARENT_DIR]
#                              [-q] [-- EXTRA SERVER FLAGS]
#   -c  cairn binary (default: ./cairn, else cairn at the top of the tree)
#   -e  etcd binary (default: etcd on PATH)
#   -d  parent dir of the data dirs (default: <top>/build if it exists,
#       else /var/tmp; never a tmpfs, which would hide fsync costs)
#   -q  quick: 10x smaller workloads (to check the harness itself)
# Environment: LAT_N (1000), TP_N (10000), TP_PROCS (16), RSS_KEYS (100000).
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

cairn=""
etcd=$(command -v etcd)
parent=""
quick=""
while getopts "c:e:d:q" opt; do
	case $opt in
	c) cairn=$OPTARG ;;
	e) etcd=$OPTARG ;;
	d) parent=$OPTARG ;;
	q) quick=1 ;;
	*) sed -n '4,13p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
extra=("$@")

if [ -z "$cairn" ]; then
	if [ -x ./cairn ]; then cairn=./cairn; else cairn=$top/cairn; fi
fi
if [ -z "$parent" ]; then
	if [ -d "$top/build" ]; then parent=$top/build; else parent=/var/tmp; fi
fi
mkdir -p "$parent" || exit 2
if [ "$(stat -f -c %T "$parent")" = tmpfs ]; then
	echo "compare.sh: $parent is a tmpfs; fsync would cost nothing there." \
		"Pick a disk with -d." >&2
	exit 2
fi

: "${LAT_N:=1000}" "${TP_N:=10000}" "${TP_PROCS:=16}" "${RSS_KEYS:=100000}"
if [ -n "$quick" ]; then
	LAT_N=$((LAT_N / 10)) TP_N=$((TP_N / 10)) RSS_KEYS=$((RSS_KEYS / 10))
fi

# The server helpers of the integration tests; their scratch dir (data dirs,
# logs) goes under $parent and is removed on exit.
export ITEST_TMPDIR=$parent
export START_TIMEOUT=20
. "$top/tests/integration/lib.sh"
CLIENT_TIMEOUT=900

declare -A R		# R[server.metric] = number

# bench NAME BIN: run the four workloads against one server.
bench() {
	local name=$1 bin=$2 js
	if [ ! -x "$bin" ]; then
		echo "# $name: $bin not found, skipped" >&2
		return
	fi
	SERVER_BIN=$bin
	echo "# $name: $bin" >&2
	start_server "$name" "${extra[@]}" || { echo "# $name: did not start" >&2; return; }
	R[$name.rss0]=$(rss_mib "$(server_pid)")
	js=$(py "$here/perfio.py" latency "$PORT" "$LAT_N") || { echo "# $name: latency failed" >&2; }
	R[$name.p50]=$(jfield "$js" .p50_ms)
	R[$name.p99]=$(jfield "$js" .p99_ms)
	R[$name.mean]=$(jfield "$js" .mean_ms)
	echo "#   latency: $js" >&2
	js=$(py "$here/perfio.py" throughput "$PORT" "$TP_PROCS" "$TP_N") || echo "# $name: throughput failed" >&2
	R[$name.tput]=$(jfield "$js" .puts_per_s)
	echo "#   throughput: $js" >&2
	js=$(py "$here/perfio.py" load "$PORT" "$RSS_KEYS") || echo "# $name: load failed" >&2
	R[$name.load]=$(jfield "$js" .seconds)
	echo "#   load: $js" >&2
	R[$name.rss]=$(rss_mib "$(server_pid)")
	R[$name.db]=$(jfield "$(ec endpoint status -w json)" '.[0].Status.dbSize / 1048576 * 10 | floor / 10')
	stop_server "$name"
}

rss_mib() {		# rss_mib PID: VmRSS in MiB, one decimal
	awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null
}

# ratio A B: A/B with two decimals, or "-" when either is missing.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "" || b == "" || a == "null" || b == "null" || b + 0 == 0) print "-";
		else printf "%.2f", a / b }'
}

row() {			# row LABEL METRIC lower|higher
	local e=${R[etcd.$2]:-} c=${R[cairn.$2]:-} r
	if [ "$3" = lower ]; then r=$(ratio "$e" "$c"); else r=$(ratio "$c" "$e"); fi
	printf '%-34s %12s %12s %8s\n' "$1" "${e:--}" "${c:--}" "$r"
}

bench etcd "$etcd"
bench cairn "$cairn"
js=$(py "$here/perfio.py" fsync "$ITEST_DIR" 1000)

echo
echo "data dirs under $parent ($(df -P "$parent" | awk 'NR==2 {print $1}')); workloads: $LAT_N sequential puts, $TP_N puts from $TP_PROCS clients, $RSS_KEYS keys"
printf '%-34s %12s %12s %8s\n' metric etcd cairn ratio
row "put latency p50 ms (1 client)" p50 lower
row "put latency p99 ms (1 client)" p99 lower
row "put latency mean ms (1 client)" mean lower
row "throughput puts/s ($TP_PROCS clients)" tput higher
row "load $RSS_KEYS keys, seconds" load lower
row "RSS MiB at start" rss0 lower
row "RSS MiB after $RSS_KEYS keys" rss lower
row "db size MiB after $RSS_KEYS keys" db lower
printf '%-34s %12s\n' "fsync floor p50 ms (write+fdatasync)" "$(jfield "$js" .p50_ms)"
printf '%-34s %12s\n' "fsync floor p99 ms" "$(jfield "$js" .p99_ms)"
printf '%-34s %12s\n' "fsync floor mean ms" "$(jfield "$js" .mean_ms)"
echo "ratio > 1 means cairn is better: etcd/cairn for latency, time, RSS and size; cairn/etcd for throughput"
