#!/bin/bash
# The bolt engine writes and reads bbolt's on-disk format (etcd's backend):
#   1. cairn --backend bolt writes keys; stopped, its member/snap/db is read
#      by etcdctl snapshot status (bbolt's own consistency check, the
#      revision from the last "key" bucket key, the key count) and by an
#      independent python reader of the format, and both agree;
#   2. a real etcd 3.4 writes keys; cairn --backend bolt starts on a fresh
#      data dir whose member/snap/db is a copy of etcd's db and serves
#      those keys with etcd's revisions and versions;
#   3. the other way: etcdctl snapshot restore of cairn's db, then etcd
#      serves cairn's keys with cairn's revisions and versions.
# Tests 2 and 3 need the etcd server binary (Debian etcd-server, or
# ETCD_BIN).
# Validation on etcd (SERVER_BIN=etcd): test 1 runs on etcd's own db,
# test 2 has nothing to import into and passes trivially.
. "$(dirname "$0")/lib.sh"

: "${ETCD_BIN:=$(command -v etcd)}"
# cairn's flag selecting the engine; etcd has no such flag
BOLT_FLAGS=(--backend bolt)
if [ -n "$ETCD_BIN" ] && [ "$SERVER_BIN" -ef "$ETCD_BIN" ]; then
	BOLT_FLAGS=()
fi

# status_of FILE: etcdctl snapshot status as JSON (the server must be off:
# bbolt takes the file lock).
status_of() {
	timeout -k 2 "$CLIENT_TIMEOUT" etcdctl snapshot status "$1" -w json \
		2>/dev/null
}

# bbolt_count FILE: an independent reader of bbolt's format (python, after
# engines/bolt/format.h): prints "TOTAL KEYBUCKET LASTREV": the keys in all
# top-level buckets, those in "key", the main revision of its last key.
bbolt_count() {
	py - "$1" <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
def fnv(b):
    h = 14695981039346656037
    for c in b:
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h
metas = []
for off in (0, 4096):
    m = data[off + 16:off + 80]
    magic, ver, psz = struct.unpack_from("<III", m)
    if magic == 0xED0CDAED and ver == 2 and \
            struct.unpack_from("<Q", m, 56)[0] == fnv(m[:56]):
        metas.append(struct.unpack_from("<QQQQQ", m, 16) + (psz,))
root, _, _, _, _, psz = max(metas, key=lambda x: x[4])
def leaves(page):
    flags, count = struct.unpack_from("<HH", page, 8)
    for i in range(count):
        e = 16 + 16 * i
        if flags & 1:
            pos, ks, child = struct.unpack_from("<IIQ", page, e)
            yield from leaves(data[child * psz:])
        else:
            fl, pos, ks, vs = struct.unpack_from("<IIII", page, e)
            k = page[e + pos:e + pos + ks]
            yield fl, k, page[e + pos + ks:e + pos + ks + vs]
total = nkey = last = 0
for fl, name, v in leaves(data[root * psz:]):
    if not fl & 1:
        continue
    broot = struct.unpack_from("<Q", v)[0]
    page = v[16:] if broot == 0 else data[broot * psz:]
    for _, k, _ in leaves(page):
        total += 1
        if name == b"key":
            nkey += 1
            last = struct.unpack_from(">Q", k)[0]
print(total, nkey, last)
EOF
}

# field N of a bbolt_count line
nth() { echo "$1" | cut -d' ' -f"$2"; }

test_snapshot_status_reads_cairn_db() {
	local db js0 js1 n0 n1 rev i out
	db="$(server_data s1)/member/snap/db"
	stop_server s1
	[ -f "$db" ] || t_fail "no $db"
	js0=$(status_of "$db") || t_fail "snapshot status (new db) failed: $(short "$js0")"
	n0=$(bbolt_count "$db") || t_fail "python bbolt reader failed"
	assert_eq "$(jfield "$js0" .totalKey)" "$(nth "$n0" 1)" \
		"totalKey of the new db (etcdctl vs python)"
	start_server s1 "${BOLT_FLAGS[@]}" || t_fail "restart"
	# 25 puts (5 keys overwritten) and 5 deletes: 30 revisions, 30 entries
	# in the "key" bucket (a delete writes a tombstone)
	for i in $(seq 1 20); do
		ec put "bf/k$i" "value-$i" >/dev/null || t_fail "put bf/k$i"
	done
	for i in 1 2 3 4 5; do
		ec put "bf/k$i" "again-$i" >/dev/null || t_fail "overwrite bf/k$i"
	done
	for i in 16 17 18 19 20; do
		ec del "bf/k$i" >/dev/null || t_fail "del bf/k$i"
	done
	rev=$(cur_rev)
	stop_server s1
	js1=$(status_of "$db") || t_fail "snapshot status failed: $(short "$js1")"
	n1=$(bbolt_count "$db") || t_fail "python bbolt reader failed"
	assert_eq "$(jfield "$js1" .revision)" "$rev" "revision (etcdctl)"
	assert_eq "$(nth "$n1" 3)" "$rev" "revision (python)"
	assert_eq "$(jfield "$js1" .totalKey)" "$(nth "$n1" 1)" \
		"totalKey (etcdctl vs python)"
	assert_eq "$(nth "$n1" 2)" "$(($(nth "$n0" 2) + 30))" \
		"entries in the key bucket"
	assert_gt "$(jfield "$js1" .totalSize)" 16383 "totalSize"
	# and cairn reads back what it wrote
	start_server s1 "${BOLT_FLAGS[@]}" || t_fail "restart after status"
	out=$(ec get bf/k3 --print-value-only)
	assert_eq "$out" "again-3" "value after restart"
	assert_eq "$(ec get bf/k18)" "" "deleted key after restart"
}

# etcd writes, cairn reads the same db file.
test_cairn_serves_etcd_db() {
	local edata db js want got k
	if [ -z "$ETCD_BIN" ] || [ ! -x "$ETCD_BIN" ]; then
		t_fail "etcd not installed (Debian etcd-server; or set ETCD_BIN)"
	fi
	if [ ${#BOLT_FLAGS[@]} -eq 0 ]; then
		return 0 # validating the test on etcd: nothing to import into
	fi
	SERVER_BIN=$ETCD_BIN start_server etcd1 || t_fail "etcd did not start"
	for k in a b c d; do
		ec put "imp/$k" "etcd-$k-1" >/dev/null || t_fail "etcd put imp/$k"
	done
	ec put imp/a etcd-a-2 >/dev/null && ec put imp/a etcd-a-3 >/dev/null &&
		ec put imp/c etcd-c-2 >/dev/null && ec del imp/d >/dev/null ||
		t_fail "etcd updates"
	# a 100 KiB value and 300 more keys: branch pages, overflow pages
	head -c 102400 /dev/zero | tr '\0' 'x' >"$ITEST_DIR/big"
	ec put imp/big <"$ITEST_DIR/big" >/dev/null || t_fail "etcd put imp/big"
	(printf '\n'; for k in $(seq 1 100); do echo "put imp/m$k v$k"; done;
	 printf '\n\n') | ec txn >/dev/null || t_fail "etcd txn"
	for k in $(seq 1 200); do
		ec put "imp/n$k" "w$k" >/dev/null || t_fail "etcd put imp/n$k"
	done
	want=$(ec get imp/ --prefix -w json)
	stop_server etcd1
	edata=$(server_data etcd1)
	# cairn on a fresh data dir holding only etcd's db
	mkdir -p "$(server_data imp)/member/snap" || t_fail "mkdir"
	cp "$edata/member/snap/db" "$(server_data imp)/member/snap/db" ||
		t_fail "copy etcd's db"
	start_server imp "${BOLT_FLAGS[@]}" ||
		t_fail "cairn did not start on etcd's db (log: $(short "$(tail -3 "$ITEST_DIR/imp.log")"))"
	got=$(ec get imp/ --prefix -w json)
	assert_eq "$(jfield "$got" .header.revision)" \
		"$(jfield "$want" .header.revision)" "revision"
	assert_eq "$(jfield "$got" .count)" "$(jfield "$want" .count)" "count"
	assert_eq "$(printf '%s' "$got" | jq -c '[.kvs[] | [.key, .value, .create_revision, .mod_revision, .version]]')" \
		"$(printf '%s' "$want" | jq -c '[.kvs[] | [.key, .value, .create_revision, .mod_revision, .version]]')" \
		"kvs (key, value, revisions, version)"
	assert_eq "$(ec get imp/a --print-value-only)" etcd-a-3 "imp/a"
	assert_eq "$(jfield "$(ec get imp/a -w json)" '.kvs[0].version')" 3 "imp/a version"
	assert_eq "$(ec get imp/d)" "" "deleted in etcd"
	# history below the last revision is there too
	js=$(ec get imp/a --rev=2 --print-value-only)
	assert_eq "$js" etcd-a-1 "imp/a at revision 2"
	# and cairn keeps writing on top: revisions continue
	js=$(ec put imp/after x -w json)
	assert_eq "$(jfield "$js" .header.revision)" \
		"$(($(jfield "$want" .header.revision) + 1))" "next revision"
	stop_server imp
	# what cairn wrote on etcd's file is still a sound bbolt db
	js=$(status_of "$(server_data imp)/member/snap/db") ||
		t_fail "snapshot status after cairn wrote on etcd's db"
	assert_eq "$(jfield "$js" .revision)" \
		"$(($(jfield "$want" .header.revision) + 1))" "revision in the db"
}

# cairn writes, etcd reads: cairn's db file (taken while cairn is stopped)
# restored by etcdctl snapshot restore and served by etcd itself.
test_etcd_serves_cairn_db() {
	local snap want got ports ed pu k
	if [ -z "$ETCD_BIN" ] || [ ! -x "$ETCD_BIN" ]; then
		t_fail "etcd not installed (Debian etcd-server; or set ETCD_BIN)"
	fi
	for k in 1 2 3 4 5 6; do
		ec put "exp/k$k" "cairn-$k" >/dev/null || t_fail "put exp/k$k"
	done
	ec put exp/k2 cairn-2b >/dev/null && ec put exp/k2 cairn-2c >/dev/null &&
		ec del exp/k6 >/dev/null || t_fail "updates"
	want=$(ec get exp/ --prefix -w json)
	snap="$ITEST_DIR/cairn.db"
	stop_server s1
	cp "$(server_data s1)/member/snap/db" "$snap" || t_fail "copy the db"
	start_server s1 "${BOLT_FLAGS[@]}" || t_fail "restart"
	ports=$(free_ports 2) || t_fail "no ports"
	srv_set e2 port "$(echo "$ports" | sed -n 1p)"
	srv_set e2 peer "$(echo "$ports" | sed -n 2p)"
	pu="http://127.0.0.1:$(srv_get e2 peer)"
	ed=$(server_data e2)
	# a bare db file has no appended sha256 (etcd's snapshot RPC adds one)
	timeout -k 2 "$CLIENT_TIMEOUT" etcdctl snapshot restore "$snap" \
		--skip-hash-check --name e2 --data-dir "$ed" \
		--initial-cluster "e2=$pu" --initial-advertise-peer-urls "$pu" \
		>/dev/null 2>&1 ||
		t_fail "etcdctl snapshot restore of cairn's db failed"
	SERVER_BIN=$ETCD_BIN start_server e2 || t_fail "etcd did not start"
	got=$(ec get exp/ --prefix -w json)
	assert_eq "$(printf '%s' "$got" | jq -c '[.kvs[] | [.key, .value, .create_revision, .mod_revision, .version]]')" \
		"$(printf '%s' "$want" | jq -c '[.kvs[] | [.key, .value, .create_revision, .mod_revision, .version]]')" \
		"kvs served by etcd (key, value, revisions, version)"
	assert_eq "$(jfield "$got" .header.revision)" \
		"$(jfield "$want" .header.revision)" "revision served by etcd"
	stop_server e2
}

run_suite bolt_format "${BOLT_FLAGS[@]}"
