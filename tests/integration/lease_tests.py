#!/usr/bin/python3
"""Lease tests with the python etcd3 client (Debian python3-etcd3 0.12) and
raw gRPC requests for what it lacks (client-chosen IDs, several renewals on
one KeepAlive stream), plus etcd3's Lock, which is built on leases, txn
and watch.

Run by test_lease.sh as: /usr/bin/python3 lease_tests.py PORT
Prints one line per test, "PASS lease.name" or "FAIL lease.name: reason".

On a cluster (issue 5): /usr/bin/python3 lease_tests.py --cluster P1,P2,..
[TEST...] with the client ports of every member runs the cluster_* tests
("PASS lease.cluster_name"): leases used from a follower, whose KeepAlive
and TimeToLive are forwarded to the leader (only the leader's lessor
knows expiries), Grant/Revoke through raft, Leases answered locally. A
follower with no leader answers both "etcdserver: no leader" (UNAVAILABLE)
after 5 s + 2 election timeouts (etcd's request timeout; 7 s by
default), one whose leader does not answer "etcdserver: request timed
out": not tested here (checked by hand against etcd 3.4).
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

from etcdtest import TIMEOUT, Fail, _reason, collector, eq, rpc_error, run

PORT = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 2379
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


# ---- on a cluster --------------------------------------------------------

CLUSTER_TESTS = []
cluster_test = collector(CLUSTER_TESTS)
LEADER = None     # client of the leader
FOLLOWER = None   # client of a follower
MEMBERS = []      # clients of every member


def until(fn, secs, what):
    """Poll fn() until true, at most secs seconds."""
    end = time.time() + secs
    while time.time() < end:
        if fn():
            return
        time.sleep(0.1)
    raise Fail("%s: not within %d s" % (what, secs))


def has_key(client, key):
    """Does this member's own state hold key? (serializable: local)"""
    return client.get(key, serializable=True)[0] is not None


@cluster_test
def cluster_ttl_on_follower():
    """TimeToLive on a follower is the leader's answer: the time left,
    not the full TTL a follower's lessor would say, and the keys."""
    lid = LEADER.leasestub.LeaseGrant(
        rpc.LeaseGrantRequest(TTL=30), TIMEOUT).ID
    LEADER.put("c-ttl/k", "v", lease=lid)
    time.sleep(2.2)
    r = FOLLOWER.leasestub.LeaseTimeToLive(
        rpc.LeaseTimeToLiveRequest(ID=lid, keys=True), TIMEOUT)
    eq(r.grantedTTL, 30, "granted TTL")
    if not 20 <= r.TTL <= 28:
        raise Fail("follower says %d s left, want the leader's ~27" % r.TTL)
    eq(list(r.keys), [b"c-ttl/k"], "attached keys")
    r = FOLLOWER.leasestub.LeaseTimeToLive(
        rpc.LeaseTimeToLiveRequest(ID=9191), TIMEOUT)
    eq(r.TTL, -1, "TTL of an unknown lease")
    LEADER.leasestub.LeaseRevoke(rpc.LeaseRevokeRequest(ID=lid), TIMEOUT)


@cluster_test
def cluster_keepalive_on_follower():
    """Renewals sent to a follower keep a lease alive past its TTL (the
    leader's lessor renews them); once they stop, the leader expires it and
    its key goes on every member."""
    lid = LEADER.leasestub.LeaseGrant(
        rpc.LeaseGrantRequest(TTL=3), TIMEOUT).ID
    LEADER.put("c-ka/k", "v", lease=lid)
    ttls = []

    def reqs():
        for _ in range(6):
            yield rpc.LeaseKeepAliveRequest(ID=lid)
            time.sleep(1)
        yield rpc.LeaseKeepAliveRequest(ID=7171)
    for r in FOLLOWER.leasestub.LeaseKeepAlive(reqs(), TIMEOUT + 10):
        ttls.append((r.ID, r.TTL))
    eq(ttls, [(lid, 3)] * 6 + [(7171, 0)], "keep-alive answers")
    if not has_key(LEADER, "c-ka/k"):
        raise Fail("key gone while kept alive through a follower")
    start = time.time()
    until(lambda: not has_key(FOLLOWER, "c-ka/k"), 12, "expiry on follower")
    until(lambda: not has_key(LEADER, "c-ka/k"), 3, "expiry on leader")
    if time.time() - start < 1:
        raise Fail("expired %.1f s after the last renewal" %
                   (time.time() - start))


@cluster_test
def cluster_grant_revoke_on_follower():
    """Grant and Revoke from a follower go through raft: every member's
    Leases lists it, and the revoke deletes its keys everywhere."""
    lid = FOLLOWER.leasestub.LeaseGrant(
        rpc.LeaseGrantRequest(TTL=60, ID=0x5eed), TIMEOUT).ID
    eq(lid, 0x5eed, "granted ID")
    FOLLOWER.put("c-gr/k", "v", lease=lid)
    for m in MEMBERS:
        until(lambda m=m: lid in [x.ID for x in m.leasestub.LeaseLeases(
            rpc.LeaseLeasesRequest(), TIMEOUT).leases], 5, "Leases lists it")
        until(lambda m=m: has_key(m, "c-gr/k"), 5, "key replicated")
    FOLLOWER.leasestub.LeaseRevoke(rpc.LeaseRevokeRequest(ID=lid), TIMEOUT)
    for m in MEMBERS:
        until(lambda m=m: not has_key(m, "c-gr/k"), 5, "key revoked")
    rpc_error(lambda: FOLLOWER.leasestub.LeaseRevoke(
        rpc.LeaseRevokeRequest(ID=lid), TIMEOUT),
        grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found",
        "second revoke")


def cluster_main(ports, only):
    global LEADER, FOLLOWER, MEMBERS
    MEMBERS = [etcd3.client(host="127.0.0.1", port=p, timeout=TIMEOUT)
               for p in ports]
    for m in MEMBERS:
        st = m.maintenancestub.Status(rpc.StatusRequest(), TIMEOUT)
        if st.leader == st.header.member_id:
            LEADER = m
        elif FOLLOWER is None:
            FOLLOWER = m
    if LEADER is None or FOLLOWER is None:
        print("FAIL lease.cluster_setup: no leader or no follower among %r"
              % (ports,), flush=True)
        return 1
    failed = 0
    for fn in CLUSTER_TESTS:
        if only and fn.__name__ not in only:
            continue
        try:
            fn()
            print("PASS lease." + fn.__name__, flush=True)
        except Fail as e:
            failed += 1
            print("FAIL lease.%s: %s" % (fn.__name__, str(e)[:300]),
                  flush=True)
        except Exception as e:  # noqa: B902 - any error fails the test
            failed += 1
            msg = _reason(e, __file__).replace("\n", " ")[:300]
            print("FAIL lease.%s: %s" % (fn.__name__, msg), flush=True)
    for m in MEMBERS:
        m.close()
    return 1 if failed else 0


def set_client(client):
    global C
    C = client


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--cluster":
        return cluster_main([int(p) for p in sys.argv[2].split(",")],
                            sys.argv[3:])
    return run("lease.py_", TESTS, set_client, __file__)


if __name__ == "__main__":
    sys.exit(main())
