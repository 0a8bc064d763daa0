#!/bin/bash
# Watch beyond test_more.sh: etcdctl --prev-kv and interactive watch with
# progress; raw gRPC streams from python (the project's own .proto compiled
# with protoc, since python3-etcd3's copy predates watch_id, fragment and
# progress requests): client and server ids, duplicates, cancel, filters,
# progress notify and requests, many streams on one connection, a slow
# reader that must neither stall the server nor lose an event, and a watch
# resumed after a restart.
. "$(dirname "$0")/lib.sh"

PROTO_DIR=$(cd "$(dirname "$0")/../../net/proto" && pwd)
PB=$ITEST_DIR/pb
WT=$ITEST_DIR/watchtest.py

mkdir -p "$PB" && protoc -I"$PROTO_DIR" --python_out="$PB" \
	"$PROTO_DIR/rpc.proto" "$PROTO_DIR/kv.proto" "$PROTO_DIR/auth.proto"

cat >"$WT" <<'EOF'
import queue, sys, threading, time
import grpc
sys.path.insert(0, sys.argv[1])
import rpc_pb2 as R

PORT, TEST = sys.argv[2], sys.argv[3]
ch = grpc.insecure_channel("127.0.0.1:" + PORT)
def unary(path, req, resp):
    return ch.unary_unary(path, request_serializer=req.SerializeToString,
                          response_deserializer=resp.FromString)
put = unary("/etcdserverpb.KV/Put", R.PutRequest, R.PutResponse)
rng = unary("/etcdserverpb.KV/Range", R.RangeRequest, R.RangeResponse)
dele = unary("/etcdserverpb.KV/DeleteRange", R.DeleteRangeRequest,
             R.DeleteRangeResponse)

class Fail(Exception):
    pass

def eq(got, want, what):
    if got != want:
        raise Fail("%s: got %r want %r" % (what, got, want))

class Stream:
    """One Watch stream; read() pulls responses only when asked."""
    def __init__(self, channel=ch):
        self.q = queue.Queue()
        f = channel.stream_stream("/etcdserverpb.Watch/Watch",
                                  request_serializer=R.WatchRequest.SerializeToString,
                                  response_deserializer=R.WatchResponse.FromString)
        self.it = f(iter(self.q.get, None))
        self.out = queue.Queue()
        self.reader = None
    def start_reader(self):
        def rd():
            try:
                for r in self.it:
                    self.out.put(r)
            except Exception as e:  # noqa: B902
                self.out.put(e)
        self.reader = threading.Thread(target=rd, daemon=True)
        self.reader.start()
    def create(self, **kw):
        self.q.put(R.WatchRequest(create_request=R.WatchCreateRequest(**kw)))
    def cancel(self, wid):
        self.q.put(R.WatchRequest(cancel_request=R.WatchCancelRequest(watch_id=wid)))
    def progress(self):
        self.q.put(R.WatchRequest(progress_request=R.WatchProgressRequest()))
    def get(self, t=5):
        if self.reader is None:
            self.start_reader()
        try:
            r = self.out.get(timeout=t)
        except queue.Empty:
            return None
        if isinstance(r, Exception):
            raise r
        return r
    def close(self):
        self.q.put(None)
        self.it.cancel()

def need(s, what, t=5):
    r = s.get(t)
    if r is None:
        raise Fail("no response: " + what)
    return r

def t_ids():
    s = Stream()
    s.create(key=b"wi/a")
    r = need(s, "created 0")
    eq((r.created, r.watch_id), (True, 0), "server-chosen id")
    s.create(key=b"wi/", range_end=b"wi0", watch_id=5, prev_kv=True)
    eq(need(s, "created 5").watch_id, 5, "client-chosen id")
    s.create(key=b"wi/", watch_id=5)
    r = need(s, "duplicate")
    eq((r.watch_id, r.created, r.canceled, r.cancel_reason),
       (-1, True, True, "mvcc: duplicate watch ID provided on the WatchStream"),
       "duplicate id")
    s.create(key=b"wi/b", range_end=b"wi/a")
    r = need(s, "empty range")
    eq((r.watch_id, r.canceled, r.cancel_reason),
       (-1, True, "mvcc: watcher range is empty"), "empty range")
    s.create(key=b"wi/")
    eq(need(s, "created 1").watch_id, 1, "next server-chosen id")
    s.create(key=b"wi/", range_end=b"\0", filters=[R.WatchCreateRequest.NOPUT],
             watch_id=6)
    need(s, "created 6")
    s.create(key=b"wi/", range_end=b"wi0", filters=[R.WatchCreateRequest.NODELETE],
             watch_id=7)
    need(s, "created 7")
    r1 = put(R.PutRequest(key=b"wi/a", value=b"1")).header.revision
    put(R.PutRequest(key=b"wi/a", value=b"2"))
    dele(R.DeleteRangeRequest(key=b"wi/a"))
    got = {}
    while sum(len(v) for v in got.values()) < 9:
        r = need(s, "events")
        for e in r.events:
            eq(r.header.revision >= e.kv.mod_revision, True, "header revision")
            got.setdefault(r.watch_id, []).append(
                (e.type, e.kv.mod_revision - r1, e.kv.value,
                 e.prev_kv.value if e.HasField("prev_kv") else None))
    eq(got[0], [(0, 0, b"1", None), (0, 1, b"2", None), (1, 2, b"", None)], "watch 0")
    eq(got[5], [(0, 0, b"1", None), (0, 1, b"2", b"1"), (1, 2, b"", b"2")], "watch 5 prev_kv")
    eq(got[6], [(1, 2, b"", None)], "NOPUT")
    eq(got[7], [(0, 0, b"1", None), (0, 1, b"2", None)], "NODELETE")
    eq(got.get(1), None, "single key wi/ saw nothing")
    s.cancel(5)
    r = need(s, "cancel")
    eq((r.watch_id, r.canceled), (5, True), "cancel")
    s.cancel(99)
    s.progress()
    r = need(s, "progress")
    eq((r.watch_id, r.header.revision, len(r.events)), (-1, r1 + 2, 0),
       "progress after unknown cancel (which has no reply)")
    put(R.PutRequest(key=b"wi/a", value=b"3"))
    ids = set()
    while True:
        r = s.get(1)
        if r is None:
            break
        ids.add(r.watch_id)
    eq(sorted(ids), [0, 7], "watchers after the cancel of 5")
    s.close()

def t_progress_notify():
    s = Stream()
    s.create(key=b"wp/a", progress_notify=True)
    need(s, "created")
    rev = put(R.PutRequest(key=b"wq/other", value=b"x")).header.revision
    r = need(s, "progress notify", 8)
    eq((r.watch_id, len(r.events), r.header.revision >= rev), (0, 0, True),
       "progress notification")
    s.close()

def t_many_streams():
    # 20 streams on one connection, 25 watchers each on keys under one
    # prefix and on the prefix itself
    streams = []
    for i in range(20):
        s = Stream()
        for j in range(24):
            s.create(key=b"wm/%02d" % j)
        s.create(key=b"wm/", range_end=b"wm0")
        for _ in range(25):
            eq(need(s, "created").created, True, "created")
        streams.append(s)
    base = put(R.PutRequest(key=b"wm/00", value=b"v")).header.revision
    for j in range(1, 24):
        put(R.PutRequest(key=b"wm/%02d" % j, value=b"v"))
    for i, s in enumerate(streams):
        seen = {}
        while sum(len(v) for v in seen.values()) < 48:
            r = need(s, "events of stream %d" % i)
            for e in r.events:
                seen.setdefault(r.watch_id, []).append(e.kv.mod_revision - base)
        eq(seen[24], list(range(24)), "prefix watcher of stream %d" % i)
        for j in range(24):
            eq(seen[j], [j], "key watcher %d of stream %d" % (j, i))
        s.close()

def t_slow_reader():
    # a stream that does not read while 20 000 puts happen: bdp probing off
    # keeps the client's HTTP/2 window at 64 KiB, so the server's send
    # queue really fills and its watcher must fall back to history
    slow_ch = grpc.insecure_channel("127.0.0.1:" + PORT,
                                    options=[("grpc.http2.bdp_probe", 0)])
    s = Stream(slow_ch)
    s.create(key=b"ws/", range_end=b"ws0")
    N, W = 20000, 16
    val = b"v" * 200
    base = rng(R.RangeRequest(key=b"ws/")).header.revision
    lat = []
    errs = []
    def writer(k):
        try:
            for i in range(k, N, W):
                put(R.PutRequest(key=b"ws/%05d" % i, value=val))
        except Exception as e:  # noqa: B902
            errs.append(e)
    def prober():
        # another client: reads and writes keep their latency
        end = time.time() + 600
        while not done.is_set() and time.time() < end:
            t0 = time.time()
            rng(R.RangeRequest(key=b"wsp/x"))
            put(R.PutRequest(key=b"wsp/x", value=b"1"))
            lat.append(time.time() - t0)
            time.sleep(0.02)
    done = threading.Event()
    th = [threading.Thread(target=writer, args=(k,)) for k in range(W)]
    pt = threading.Thread(target=prober)
    pt.start()
    t0 = time.time()
    for t in th:
        t.start()
    for t in th:
        t.join()
    wtime = time.time() - t0
    done.set()
    pt.join()
    if errs:
        raise Fail("writer: %s" % errs[0])
    lat.sort()
    p99 = lat[int(len(lat) * 0.99)] if lat else 0
    if p99 > 1.0:
        raise Fail("other client's p99 latency %.3f s while a watcher stalls" % p99)
    # now read: every event, in order, exactly once
    r = need(s, "created")
    eq(r.created, True, "created")
    # (the prober's puts take revisions too: check keys and order)
    last, seen = base, set()
    deadline = time.time() + 120
    while len(seen) < N and time.time() < deadline:
        r = need(s, "events after revision %d" % last, 30)
        for e in r.events:
            if e.kv.mod_revision <= last:
                raise Fail("event revision %d after %d" % (e.kv.mod_revision, last))
            if e.kv.key in seen:
                raise Fail("event for %r twice" % e.kv.key)
            last = e.kv.mod_revision
            seen.add(e.kv.key)
    eq(len(seen), N, "events received")
    # and the watcher is live again afterwards
    rev = put(R.PutRequest(key=b"ws/after", value=b"1")).header.revision
    r = need(s, "live event after catch-up")
    eq([e.kv.mod_revision for e in r.events], [rev], "live again")
    print("slow reader: %d puts in %.1f s, other client p99 %.1f ms over %d probes"
          % (N, wtime, p99 * 1000, len(lat)), file=sys.stderr)
    s.close()

def t_fragment():
    # one revision deleting four 600 KB values: with prev_kv its response
    # is 2.4 MB; fragment splits it under --max-request-bytes plus etcd's
    # 512 KiB grpc allowance (2 MiB by default): 3 events, then 1
    big = b"x" * (600 * 1024)
    for i in range(4):
        put(R.PutRequest(key=b"wf/%d" % i, value=big))
    s = Stream()
    s.create(key=b"wf/", range_end=b"wf0", prev_kv=True, fragment=True,
             filters=[R.WatchCreateRequest.NOPUT], watch_id=1)
    s.create(key=b"wf/", range_end=b"wf0", prev_kv=True,
             filters=[R.WatchCreateRequest.NOPUT], watch_id=2)
    need(s, "created 1")
    need(s, "created 2")
    dele(R.DeleteRangeRequest(key=b"wf/", range_end=b"wf0"))
    got = {1: [], 2: []}
    while len(got[1]) < 2 or len(got[2]) < 1:
        r = need(s, "fragments")
        got[r.watch_id].append((r.fragment, len(r.events)))
    eq(got[1], [(True, 3), (False, 1)], "fragmented watcher")
    eq(got[2], [(False, 4)], "watcher without fragment")
    s.close()

def t_resume():
    # resume after a restart: print the events from a revision
    s = Stream()
    s.create(key=b"wr/", range_end=b"wr0", start_revision=int(sys.argv[4]))
    need(s, "created")
    r = need(s, "history")
    print(" ".join("%s=%s" % (e.kv.key.decode(), e.kv.value.decode())
                   for e in r.events))
    s.close()

try:
    globals()["t_" + TEST]()
except Fail as e:
    print(e)
    sys.exit(1)
EOF

# wt TEST [ARGS]: run one python watch test; its stdout is the failure
wt() {
	local out rc
	out=$(CLIENT_TIMEOUT=${WT_TIMEOUT:-60} py "$WT" "$PB" "$PORT" "$@" 2>"$ITEST_DIR/wt.err")
	rc=$?
	[ $rc -eq 0 ] || t_fail "${out:-exit $rc: $(tail -3 "$ITEST_DIR/wt.err")}"
	printf '%s' "$out"
}

test_prev_kv() {
	local out=$ITEST_DIR/prev.out wpid i
	ec watch wv/a --prev-kv >"$out" 2>&1 &
	wpid=$!
	for ((i = 0; i < 50; i++)); do
		ec put wv/a 0 >/dev/null
		wait_file "$out" PUT 0.2 && break
	done
	ec put wv/a 1 >/dev/null && ec put wv/a 2 >/dev/null || t_fail "puts"
	wait_file "$out" 2
	kill "$wpid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	assert_eq "$(tail -n 5 "$out")" "PUT
wv/a
1
wv/a
2" "prev kv then kv"
}

test_interactive() {
	local out=$ITEST_DIR/inter.out fifo=$ITEST_DIR/inter.fifo wpid r
	mkfifo "$fifo"
	ec watch -i <"$fifo" >"$out" 2>&1 &
	wpid=$!
	exec 7>"$fifo"
	echo "watch wi2/ --prefix" >&7
	sleep 1
	r=$(jfield "$(ec put wi2/x hello -w json)" .header.revision)
	wait_file "$out" hello 5
	echo "progress" >&7
	wait_file "$out" "progress notify" 5
	exec 7>&-
	wait "$wpid" 2>/dev/null
	assert_contains "$(cat "$out")" "PUT
wi2/x
hello" "interactive watch event"
	assert_contains "$(cat "$out")" "progress notify: $r" "progress reply revision"
}

test_ids_filters_cancel() {
	wt ids >/dev/null
}

test_progress_notify() {
	wt progress_notify >/dev/null
}

test_many_streams() {
	wt many_streams >/dev/null
}

test_fragment() {
	wt fragment >/dev/null
}

test_slow_reader() {
	WT_TIMEOUT=400 wt slow_reader >/dev/null
	cat "$ITEST_DIR/wt.err" >&2
}

test_z_restart_resume() {
	local r out
	r=$(jfield "$(ec put wr/a 1 -w json)" .header.revision)
	ec put wr/b 2 >/dev/null && ec del wr/a >/dev/null || t_fail "writes"
	stop_server s1
	start_server s1 --experimental-watch-progress-notify-interval=1s ||
		t_fail "restart"
	ec put wr/c 3 >/dev/null || t_fail "put after restart"
	out=$(wt resume "$((r + 1))")
	assert_eq "$out" "wr/b=2 wr/a= wr/c=3" "events after revision $r"
}

run_suite watch --experimental-watch-progress-notify-interval=1s
