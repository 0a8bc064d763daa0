#!/usr/bin/python3
"""Integration tests with the python etcd3 client (Debian python3-etcd3 0.12).

Run by test_python.sh as: /usr/bin/python3 etcd3_tests.py PORT
Prints one line per test, "PASS py.name" or "FAIL py.name: reason".

What the client raises (checked against etcd 3.4):
  - etcd3 maps only INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED and
    FAILED_PRECONDITION to its own classes (InternalServerError,
    ConnectionFailedError, ConnectionTimeoutError, PreconditionFailedError);
  - every other gRPC status comes out as the raw grpc.RpcError, whose
    .code() and .details() carry etcd's status and message, e.g.
    NOT_FOUND "etcdserver: requested lease not found",
    INVALID_ARGUMENT "etcdserver: too many operations in txn request",
    OUT_OF_RANGE "etcdserver: mvcc: required revision has been compacted".
Each test uses its own key prefix; tests do not depend on each other's data.
"""

import sys
import threading
import time

import etcd3
import etcd3.etcdrpc as rpc
import etcd3.exceptions as exc
import grpc

from etcdtest import TIMEOUT, Fail, collector, eq, rpc_error, run

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 2379
C = None
TESTS = []
test = collector(TESTS)


def cur_rev():
    return C.get_response("__rev_probe__").header.revision


def raw_range(key, range_end=b"", **kw):
    req = rpc.RangeRequest(key=key.encode(), range_end=range_end, **kw)
    return C.kvstub.Range(req, TIMEOUT)


@test
def put_get():
    resp = C.put("py/pg/a", "v1")
    rev = resp.header.revision
    val, meta = C.get("py/pg/a")
    eq(val, b"v1", "value")
    eq(meta.key, b"py/pg/a", "key")
    eq(meta.version, 1, "version")
    eq(meta.create_revision, rev, "create_revision")
    eq(meta.mod_revision, rev, "mod_revision")
    eq(meta.lease_id, 0, "lease")
    eq(C.put("py/pg/a", b"v2").header.revision, rev + 1, "revision of 2nd put")
    val, meta = C.get("py/pg/a")
    eq((val, meta.version, meta.create_revision, meta.mod_revision),
       (b"v2", 2, rev, rev + 1), "after overwrite")
    eq(C.get("py/pg/missing"), (None, None), "missing key")
    blob = bytes(range(256)) * 4
    C.put(b"py/pg/\x00\xffbin", blob)
    eq(C.get(b"py/pg/\x00\xffbin")[0], blob, "binary key and value")
    val, _ = C.get("py/pg/a", serializable=True)
    eq(val, b"v2", "serializable get")
    hdr = C.get_response("py/pg/a").header
    if hdr.cluster_id == 0 or hdr.member_id == 0 or hdr.raft_term == 0:
        raise Fail("bad header %r" % hdr)


@test
def put_prev_kv():
    eq(C.put("py/pk/a", "one", prev_kv=True).HasField("prev_kv"), False,
       "prev_kv on a new key")
    resp = C.put("py/pk/a", "two", prev_kv=True)
    eq(resp.prev_kv.value, b"one", "prev_kv.value")
    eq(resp.prev_kv.key, b"py/pk/a", "prev_kv.key")
    eq(resp.prev_kv.version, 1, "prev_kv.version")


@test
def get_prefix_and_range():
    for k in "cab":
        C.put("py/gp/" + k, "v" + k)
    C.put("py/gp0", "out")
    got = [(m.key, v) for v, m in C.get_prefix("py/gp/")]
    eq(got, [(b"py/gp/a", b"va"), (b"py/gp/b", b"vb"), (b"py/gp/c", b"vc")],
       "get_prefix")
    got = [(m.key, v) for v, m in C.get_prefix("py/gp/", keys_only=True)]
    eq(got, [(b"py/gp/a", b""), (b"py/gp/b", b""), (b"py/gp/c", b"")],
       "get_prefix keys_only")
    got = [m.key for _, m in C.get_range("py/gp/a", "py/gp/c")]
    eq(got, [b"py/gp/a", b"py/gp/b"], "get_range")
    got = [m.key for _, m in C.get_prefix("py/gp/", sort_order="descend")]
    eq(got, [b"py/gp/c", b"py/gp/b", b"py/gp/a"], "get_prefix descend")
    got = [m.key for _, m in C.get_prefix("py/gp/", sort_order="ascend",
                                           sort_target="create")]
    eq(got, [b"py/gp/c", b"py/gp/a", b"py/gp/b"], "sort by create")
    got = [m.key for _, m in C.get_range("py/gp/a", "py/gp/d",
                                          sort_order="descend",
                                          sort_target="value")]
    eq(got, [b"py/gp/c", b"py/gp/b", b"py/gp/a"], "sort by value")
    # etcd3 0.12 drops its limit argument: send it raw
    resp = raw_range("py/gp/", b"py/gp0", limit=2)
    eq((len(resp.kvs), resp.count, resp.more), (2, 3, True), "limit")


@test
def get_all_sorted():
    C.put("py/ga/x", "1")
    C.put("py/ga/y", "2")
    keys = [m.key for _, m in C.get_all()]
    eq(keys, sorted(keys), "get_all in key order")
    if b"py/ga/x" not in keys or b"py/ga/y" not in keys:
        raise Fail("get_all lacks our keys")
    keys = [m.key for _, m in C.get_all(sort_order="descend")]
    eq(keys, sorted(keys, reverse=True), "get_all descend")
    revs = [m.mod_revision for _, m in
            C.get_all(sort_order="ascend", sort_target="mod")]
    eq(revs, sorted(revs), "get_all by mod")
    vers = [m.version for _, m in
            C.get_all(sort_order="descend", sort_target="version")]
    eq(vers, sorted(vers, reverse=True), "get_all by version")
    vals = [v for v, _ in C.get_all(sort_order="ascend",
                                    sort_target="value")]
    eq(vals, sorted(vals), "get_all by value")
    n = len(list(C.get_all(keys_only=True)))
    eq(n, len(keys), "get_all keys_only count")


@test
def range_filters():
    """Range fields python etcd3 has no argument for, sent raw."""
    revs = {}
    for k in "abc":
        revs[k] = C.put("py/rf/" + k, "1").header.revision
    C.put("py/rf/a", "2")
    end = b"py/rf0"
    resp = raw_range("py/rf/", end, count_only=True)
    eq((resp.count, len(resp.kvs)), (3, 0), "count_only")
    resp = raw_range("py/rf/", end, min_mod_revision=revs["b"])
    eq([kv.key for kv in resp.kvs], [b"py/rf/a", b"py/rf/b", b"py/rf/c"],
       "min_mod_revision")
    resp = raw_range("py/rf/", end, max_create_revision=revs["b"])
    eq([kv.key for kv in resp.kvs], [b"py/rf/a", b"py/rf/b"],
       "max_create_revision")
    resp = raw_range("py/rf/a", revision=revs["a"])
    eq(resp.kvs[0].value, b"1", "value at an old revision")
    rpc_error(lambda: raw_range("py/rf/a", revision=cur_rev() + 100),
              grpc.StatusCode.OUT_OF_RANGE,
              "etcdserver: mvcc: required revision is a future revision",
              "future revision")


@test
def delete():
    C.put("py/de/a", "1")
    eq(C.delete("py/de/a"), True, "delete existing")
    eq(C.delete("py/de/a"), False, "delete missing")
    C.put("py/de/b", "2")
    resp = C.delete("py/de/b", prev_kv=True, return_response=True)
    eq(resp.deleted, 1, "deleted")
    eq(resp.prev_kvs[0].value, b"2", "prev_kvs")
    for k in "xyz":
        C.put("py/dp/" + k, k)
    C.put("py/dp0", "keep")
    rev = cur_rev()
    resp = C.delete_prefix("py/dp/")
    eq(resp.deleted, 3, "delete_prefix deleted")
    eq(resp.header.revision, rev + 1, "delete_prefix is one revision")
    eq(list(C.get_prefix("py/dp/")), [], "prefix empty")
    eq(C.get("py/dp0")[0], b"keep", "neighbour kept")


@test
def transaction_compares():
    t = C.transactions
    r1 = C.put("py/tx/a", "v1").header.revision
    r2 = C.put("py/tx/a", "v2").header.revision
    cases = [
        (t.value("py/tx/a") == "v2", True),
        (t.value("py/tx/a") == "v1", False),
        (t.value("py/tx/a") != "v1", True),
        (t.value("py/tx/a") > "v1", True),
        (t.value("py/tx/a") < "v1", False),
        (t.version("py/tx/a") == 2, True),
        (t.version("py/tx/a") > 2, False),
        (t.version("py/tx/a") < 3, True),
        (t.create("py/tx/a") == r1, True),
        (t.create("py/tx/a") > r1, False),
        (t.mod("py/tx/a") == r2, True),
        (t.mod("py/tx/a") < r2, False),
        (t.mod("py/tx/a") != r1, True),
        (t.version("py/tx/missing") == 0, True),
        (t.create("py/tx/missing") == 0, True),
    ]
    for cmp, want in cases:
        ok, _ = C.transaction(compare=[cmp], success=[], failure=[])
        eq(ok, want, repr(cmp))


@test
def transaction_branches():
    t = C.transactions
    C.put("py/tb/a", "1")
    rev = cur_rev()
    ok, resps = C.transaction(
        compare=[t.value("py/tb/a") == "1", t.version("py/tb/a") == 1],
        success=[t.put("py/tb/a", "2"), t.put("py/tb/b", "2"),
                 t.get("py/tb/a")],
        failure=[t.put("py/tb/a", "fail")])
    eq(ok, True, "succeeded")
    eq(len(resps), 3, "responses")
    eq(resps[2][0][0], b"2", "get inside txn sees the put")
    eq(cur_rev(), rev + 1, "one revision for the txn")
    _, meta_a = C.get("py/tb/a")
    _, meta_b = C.get("py/tb/b")
    eq((meta_a.mod_revision, meta_b.mod_revision), (rev + 1, rev + 1),
       "both keys at the txn revision")
    ok, resps = C.transaction(
        compare=[t.value("py/tb/a") == "1"],
        success=[t.put("py/tb/a", "3")],
        failure=[t.delete("py/tb/b"), t.get("py/tb/b")])
    eq(ok, False, "failure branch")
    eq(resps[0].response_delete_range.deleted, 1, "delete in failure")
    eq(resps[1], [], "get after delete in txn")
    eq(C.get("py/tb/a")[0], b"2", "value untouched by failed branch")


@test
def transaction_raw_lease():
    """LEASE compares, which etcd3 has no helper for."""
    lease = C.lease(60)
    C.put("py/tl/a", "1", lease=lease)

    def lease_cmp(lid, result=rpc.Compare.EQUAL):
        return rpc.Compare(key=b"py/tl/a", target=rpc.Compare.LEASE,
                           result=result, lease=lid)

    def txn(compare, success=(), failure=()):
        return C.kvstub.Txn(rpc.TxnRequest(compare=compare, success=success,
                                           failure=failure), TIMEOUT)

    eq(txn([lease_cmp(lease.id)]).succeeded, True, "lease == its id")
    eq(txn([lease_cmp(0)]).succeeded, False, "lease == 0")
    eq(txn([lease_cmp(0, rpc.Compare.GREATER)]).succeeded, True, "lease > 0")
    lease.revoke()


@test
def transaction_raw_nested():
    """Nested txns, which etcd3 has no helper for."""
    def txn(compare, success=(), failure=()):
        return C.kvstub.Txn(rpc.TxnRequest(compare=compare, success=success,
                                           failure=failure), TIMEOUT)

    rev = cur_rev()
    inner = rpc.TxnRequest(
        compare=[rpc.Compare(key=b"py/tl/b", target=rpc.Compare.VERSION,
                             result=rpc.Compare.EQUAL, version=0)],
        success=[rpc.RequestOp(request_put=rpc.PutRequest(key=b"py/tl/b",
                                                          value=b"in"))])
    resp = txn([], success=[
        rpc.RequestOp(request_put=rpc.PutRequest(key=b"py/tl/c", value=b"o")),
        rpc.RequestOp(request_txn=inner)])
    eq(resp.succeeded, True, "outer txn")
    eq(resp.responses[1].response_txn.succeeded, True, "inner txn")
    eq(cur_rev(), rev + 1, "nested txn is one revision")
    eq(C.get("py/tl/b")[0], b"in", "put of the inner txn")


@test
def replace_and_put_if_not_exists():
    C.put("py/rp/a", "old")
    eq(C.replace("py/rp/a", "old", "new"), True, "replace matching")
    eq(C.replace("py/rp/a", "old", "newer"), False, "replace stale")
    eq(C.get("py/rp/a")[0], b"new", "value after replace")
    eq(C.put_if_not_exists("py/rp/b", "1"), True, "put_if_not_exists new")
    eq(C.put_if_not_exists("py/rp/b", "2"), False, "put_if_not_exists old")
    eq(C.get("py/rp/b")[0], b"1", "value after put_if_not_exists")


@test
def status_and_members():
    st = C.status()
    hdr = C.get_response("py/st").header
    if not st.version:
        raise Fail("no version")
    if st.db_size <= 0:
        raise Fail("db_size %r" % st.db_size)
    if st.raft_index <= 0 or st.raft_term <= 0:
        raise Fail("raft index/term %r/%r" % (st.raft_index, st.raft_term))
    if st.leader is None:
        raise Fail("leader not among members")
    eq(st.leader.id, hdr.member_id, "leader id")
    members = list(C.members)
    eq(len(members), 1, "member count")
    eq(members[0].id, hdr.member_id, "member id")
    eq(members[0].name, "s1", "member name")
    eq(list(members[0].client_urls), ["http://127.0.0.1:%d" % PORT],
       "client urls")


@test
def compaction():
    r1 = C.put("py/cp/a", "1").header.revision
    r2 = C.put("py/cp/a", "2").header.revision
    C.put("py/cp/a", "3")
    C.compact(r2)
    rpc_error(lambda: raw_range("py/cp/a", revision=r1),
              grpc.StatusCode.OUT_OF_RANGE,
              "etcdserver: mvcc: required revision has been compacted",
              "range below compaction")
    eq(raw_range("py/cp/a", revision=r2).kvs[0].value, b"2",
       "range at compaction revision")
    rpc_error(lambda: C.compact(r1), grpc.StatusCode.OUT_OF_RANGE,
              "etcdserver: mvcc: required revision has been compacted",
              "compact twice")
    rpc_error(lambda: C.compact(cur_rev() + 100),
              grpc.StatusCode.OUT_OF_RANGE,
              "etcdserver: mvcc: required revision is a future revision",
              "compact future")
    C.compact(r2 + 1, physical=True)


@test
def errors():
    t = C.transactions
    rpc_error(lambda: C.put("py/er/a", "v", lease=123),
              grpc.StatusCode.NOT_FOUND,
              "etcdserver: requested lease not found", "unknown lease")
    rpc_error(lambda: C.transaction(
        compare=[], success=[t.put("py/er/k%d" % i, "v") for i in range(129)],
        failure=[]), grpc.StatusCode.INVALID_ARGUMENT,
        "etcdserver: too many operations in txn request", "129 ops")
    rpc_error(lambda: C.transaction(
        compare=[], success=[t.put("py/er/d", "1"), t.put("py/er/d", "2")],
        failure=[]), grpc.StatusCode.INVALID_ARGUMENT,
        "etcdserver: duplicate key given in txn request", "duplicate key")
    rpc_error(lambda: C.put("py/er/big", b"x" * (1600 * 1024)),
              grpc.StatusCode.INVALID_ARGUMENT,
              "etcdserver: request is too large", "too large")
    eq(C.get("py/er/big"), (None, None), "oversized value not stored")
    C.put("py/er/mib", b"y" * (1024 * 1024))
    eq(C.get("py/er/mib")[0], b"y" * (1024 * 1024), "1 MiB value")
    rpc_error(lambda: C.kvstub.Put(rpc.PutRequest(key=b"py/er/a",
                                                  ignore_value=True),
                                   TIMEOUT),
              grpc.StatusCode.INVALID_ARGUMENT,
              "etcdserver: key not found", "ignore_value on missing key")
    rpc_error(lambda: C.kvstub.Put(rpc.PutRequest(key=b"", value=b"v"),
                                   TIMEOUT),
              grpc.StatusCode.INVALID_ARGUMENT,
              "etcdserver: key is not provided", "empty key")


@test
def lease_errors():
    rpc_error(lambda: C.revoke_lease(424242), grpc.StatusCode.NOT_FOUND,
              "etcdserver: requested lease not found", "revoke unknown lease")


@test
def connection_failed():
    dead = etcd3.client(host="127.0.0.1", port=1, timeout=3)
    try:
        dead.get("x")
    except exc.ConnectionFailedError:
        return
    except Exception as e:  # noqa: B902 - report what came instead
        raise Fail("got %s instead of ConnectionFailedError" % type(e))
    raise Fail("no error from a dead endpoint")


@test
def leases():
    lease = C.lease(30)
    if lease.id <= 0 or not 0 < lease.ttl <= 30:
        raise Fail("lease %r ttl %r" % (lease.id, lease.ttl))
    C.put("py/ls/a", "1", lease=lease)
    C.put("py/ls/b", "2", lease=lease.id)
    eq(C.get("py/ls/a")[1].lease_id, lease.id, "lease id on key")
    info = C.get_lease_info(lease.id)
    eq(sorted(info.keys), [b"py/ls/a", b"py/ls/b"], "lease keys")
    if not 0 < info.TTL <= 30 or info.grantedTTL != 30:
        raise Fail("TTL %r granted %r" % (info.TTL, info.grantedTTL))
    resp = list(C.refresh_lease(lease.id))
    eq(resp[0].ID, lease.id, "keepalive id")
    lease.revoke()
    eq(list(C.get_prefix("py/ls/")), [], "keys gone with the lease")
    # expiry: a short lease drops its key within a bounded time
    short = C.lease(2)
    C.put("py/ls/short", "x", lease=short)
    deadline = time.time() + 10
    while time.time() < deadline and C.get("py/ls/short")[0] is not None:
        time.sleep(0.2)
    eq(C.get("py/ls/short"), (None, None), "key after lease expiry")


@test
def watch():
    events = []
    done = threading.Event()

    def cb(resp):
        if isinstance(resp, Exception):
            return
        events.extend(resp.events)
        if len(events) >= 2:
            done.set()

    wid = C.add_watch_prefix_callback("py/wa/", cb)
    try:
        time.sleep(0.2)
        r1 = C.put("py/wa/a", "1").header.revision
        C.delete("py/wa/a")
        if not done.wait(10):
            raise Fail("saw %d of 2 events in 10 s" % len(events))
    finally:
        C.cancel_watch(wid)
    eq(type(events[0]).__name__, "PutEvent", "first event")
    eq((events[0].key, events[0].value, events[0].mod_revision),
       (b"py/wa/a", b"1", r1), "put event")
    eq(type(events[1]).__name__, "DeleteEvent", "second event")
    eq(events[1].mod_revision, r1 + 1, "delete event revision")


def set_client(client):
    global C
    C = client


def main():
    return run("py.", TESTS, set_client, __file__)


if __name__ == "__main__":
    sys.exit(main())
