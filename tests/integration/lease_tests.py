#!/usr/bin/python3
"""Lease tests with the python etcd3 client (Debian python3-etcd3 0.12) and
raw gRPC requests for what it lacks (client-chosen IDs, several renewals on
one KeepAlive stream), plus etcd3's Lock, which is built on leases, txn
and watch.

Run by test_lease.sh as: /usr/bin/python3 lease_tests.py PORT
Prints one line per test, "PASS lease.name" or "FAIL lease.name: reason".
Checked against etcd 3.4 (default --heartbeat-interval/--election-timeout,
so the minimum TTL is 2 s). Every wait is bounded.
"""

import sys
import threading
import time

import etcd3
import etcd3.etcdrpc as rpc
import etcd3.exceptions
import grpc

from etcdtest import TIMEOUT, Fail, collector, eq, rpc_error, run

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 2379
C = None
TESTS = []
test = collector(TESTS)


def grant(ttl, lid=0):
    return C.leasestub.LeaseGrant(rpc.LeaseGrantRequest(TTL=ttl, ID=lid),
                                  TIMEOUT)


def ttl_of(lid, keys=False):
    return C.leasestub.LeaseTimeToLive(
        rpc.LeaseTimeToLiveRequest(ID=lid, keys=keys), TIMEOUT)


@test
def grant_ids_and_ttls():
    lid = 0x1234abcd5678
    r = grant(60, lid)
    eq((r.ID, r.TTL), (lid, 60), "client-chosen id")
    rpc_error(lambda: grant(60, lid), grpc.StatusCode.FAILED_PRECONDITION,
              "etcdserver: lease already exists", "duplicate id")
    rpc_error(lambda: grant(9000000001), grpc.StatusCode.OUT_OF_RANGE,
              "etcdserver: too large lease TTL", "too large TTL")
    eq(grant(9000000000).TTL, 9000000000, "largest TTL")
    r = grant(1)
    eq(r.TTL, 2, "TTL raised to the minimum")
    if r.ID <= 0:
        raise Fail("server-chosen id %r is not positive" % r.ID)
    ids = set()
    for _ in range(20):
        ids.add(grant(60).ID)
    eq(len(ids), 20, "distinct server-chosen ids")
    listed = {s.ID for s in C.leasestub.LeaseLeases(
        rpc.LeaseLeasesRequest(), TIMEOUT).leases}
    if not ids <= listed or lid not in listed:
        raise Fail("LeaseLeases misses granted leases")
    for i in ids | {lid}:
        C.revoke_lease(i)


@test
def time_to_live():
    r = ttl_of(987654321)
    eq((r.ID, r.TTL), (987654321, -1), "unknown lease")
    lid = grant(100).ID
    C.put("py/lt/b", "1", lease=lid)
    C.put("py/lt/a", "1", lease=lid)
    r = ttl_of(lid, keys=True)
    eq(r.grantedTTL, 100, "grantedTTL")
    if not 95 <= r.TTL <= 100:
        raise Fail("TTL %r" % r.TTL)
    eq(sorted(r.keys), [b"py/lt/a", b"py/lt/b"], "keys")
    eq(list(ttl_of(lid).keys), [], "no keys unless asked")
    # moving a key to another lease, and deleting one, detach them
    other = grant(100).ID
    C.put("py/lt/a", "2", lease=other)
    C.delete("py/lt/b")
    eq(list(ttl_of(lid, keys=True).keys), [], "keys after move and delete")
    eq(list(ttl_of(other, keys=True).keys), [b"py/lt/a"], "moved key")
    C.revoke_lease(lid)
    C.revoke_lease(other)
    eq(C.get("py/lt/a"), (None, None), "moved key revoked with its lease")


@test
def keepalive_stream():
    lid = grant(5).ID
    reqs = [rpc.LeaseKeepAliveRequest(ID=lid),
            rpc.LeaseKeepAliveRequest(ID=424242),
            rpc.LeaseKeepAliveRequest(ID=lid)]
    got = [(r.ID, r.TTL) for r in
           C.leasestub.LeaseKeepAlive(iter(reqs), TIMEOUT)]
    eq(got, [(lid, 5), (424242, 0), (lid, 5)], "keepalive replies")
    # renewals keep a lease alive past its TTL
    C.put("py/lk/a", "1", lease=lid)
    end = time.time() + 7
    while time.time() < end:
        list(C.refresh_lease(lid))
        time.sleep(1)
    eq(C.get("py/lk/a")[0], b"1", "key of a renewed lease")
    C.revoke_lease(lid)


@test
def revoke_one_revision():
    lid = grant(60).ID
    for k in "cab":
        C.put("py/lr/" + k, k, lease=lid)
    C.put("py/lr/z", "z")
    before = C.get("py/lr/z")[1].mod_revision
    resp = C.leasestub.LeaseRevoke(rpc.LeaseRevokeRequest(ID=lid), TIMEOUT)
    eq(resp.header.revision, before + 1, "one revision for three deletes")
    eq([m.key for _, m in C.get_prefix("py/lr/")], [b"py/lr/z"],
       "keys left")


def acquire(lock, timeout):
    """lock.acquire(timeout), waiting the way etcd3's Lock means to: Debian's
    etcd3 0.12 passes tenacity a wait function of the old signature, so a
    blocking acquire of a held lock raises TypeError (on etcd as well).
    acquire(timeout=0) is one non-blocking try; between tries, wait for a
    change of the lock key with watch_once, as the library does."""
    deadline = time.time() + timeout
    while True:
        if lock.acquire(timeout=0):
            return True
        left = deadline - time.time()
        if left <= 0:
            return False
        try:
            C.watch_once(lock.key, min(left, 1.0))
        except etcd3.exceptions.WatchTimedOut:
            pass


@test
def lock_contention():
    """Two clients contend for one lock: the second waits until the first
    releases it."""
    other = etcd3.client(host="127.0.0.1", port=PORT, timeout=TIMEOUT)
    released = []
    got = []

    a = C.lock("py-lock-1", ttl=10)
    if not acquire(a, 5):
        raise Fail("first acquire failed")

    def contender():
        b = other.lock("py-lock-1", ttl=10)
        if acquire(b, 15):
            got.append(time.time())
            b.release()

    t = threading.Thread(target=contender)
    t.start()
    time.sleep(1.5)
    if got:
        raise Fail("second client got the lock while it was held")
    released.append(time.time())
    a.release()
    t.join(20)
    other.close()
    if not got:
        raise Fail("second client never got the lock after its release")
    if got[0] < released[0]:
        raise Fail("lock acquired before it was released")
    if got[0] - released[0] > 5:
        raise Fail("lock acquired %.1f s after release" %
                   (got[0] - released[0]))


@test
def lock_holder_expires():
    """A holder that dies (never refreshes, never releases) loses the lock
    when its lease expires."""
    a = C.lock("py-lock-2", ttl=2)
    if not acquire(a, 5):
        raise Fail("first acquire failed")
    start = time.time()
    b = C.lock("py-lock-2", ttl=10)
    if not acquire(b, 15):
        raise Fail("lock not freed by the holder's lease expiry")
    waited = time.time() - start
    b.release()
    if waited < 1:
        raise Fail("lock taken after %.1f s, before the TTL" % waited)


def set_client(client):
    global C
    C = client


def main():
    return run("lease.py_", TESTS, set_client, __file__)


if __name__ == "__main__":
    sys.exit(main())
