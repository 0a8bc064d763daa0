#!/usr/bin/python3
"""Record a history of random single-key operations against etcd v3
endpoints, for linz_check (history format: linz.h).

  record.py [options] OUT

  --endpoints H:P[,H:P...]  client i talks to endpoint i mod n (127.0.0.1:2379)
  --clients N               client processes (4)
  --seconds T               recording time (5)
  --keys K                  keys, PREFIX k0..k{K-1} (5)
  --prefix P                key prefix (default: a fresh one per run, so
                            every key starts absent, as the checker assumes)
  --timeout S               per-request deadline in seconds (1.0)
  --seed S                  random seed (time)

Each client is its own process with its own gRPC channel; it loops for T
seconds picking a key and one of get (40%), put (30%), cas (20%: a txn
"value(key) == V" -- or "version(key) == 0" when V is absent -- then put,
V being the value this client last saw for the key) and delete (10%).
Values are unique ("c<client>.<seq>"), which is what makes a history
checkable in practice.

Times: time.monotonic_ns(), i.e. CLOCK_MONOTONIC, one clock for every
process on the host, taken just before the request is sent and just after
its answer (or error) arrives; so real-time order between clients is
exact up to scheduling noise, which only widens the windows.

Outcomes: an answer is "ok" with its result. A gRPC error is "fail"
(definitely not applied) only when the request never reached a server
(UNAVAILABLE "failed to connect" / "Connection refused") or the server
refused it before proposing it (INVALID_ARGUMENT, FAILED_PRECONDITION,
OUT_OF_RANGE, RESOURCE_EXHAUSTED, PERMISSION_DENIED, UNAUTHENTICATED,
NOT_FOUND, ALREADY_EXISTS, UNIMPLEMENTED); every other error (deadline,
broken connection, "etcdserver: request timed out", "leader changed", ...)
is "unknown": it may or may not have been applied, now or later. After an
error a client pauses 20 ms; after UNAVAILABLE it makes a new channel
(a grpc 1.51 channel does not reconnect to a restarted server by itself).

REVISION is the response header's revision for every ok op (the store
revision the op saw or made): linz_check checks its real-time order.

Prints a summary line to stderr: ops by kind and by outcome.
"""

import argparse
import multiprocessing
import os
import random
import sys
import time

import grpc
from etcd3 import etcdrpc

DEFINITE = {
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.UNIMPLEMENTED,
}
NOT_SENT = ("failed to connect", "Connection refused", "connection refused")

# A channel whose server was killed keeps failing with "failed to connect"
# long after the server is back (grpc 1.51), so after an UNAVAILABLE error
# the client makes a new channel, with its own subchannel.
CHANNEL_OPTS = [("grpc.use_local_subchannel_pool", 1)]


def classify(err):
    """'fail' if the request certainly was not applied, else 'unknown'."""
    code = err.code() if hasattr(err, "code") else None
    if code in DEFINITE:
        return "fail"
    details = (err.details() if hasattr(err, "details") else "") or ""
    if code == grpc.StatusCode.UNAVAILABLE and \
            any(s in details for s in NOT_SENT):
        return "fail"
    return "unknown"


class Client:
    def __init__(self, cid, endpoint, timeout):
        self.cid = cid
        self.timeout = timeout
        self.endpoint = endpoint
        self.connect()
        self.seen = {}      # key -> last value this client saw ("~": absent)
        self.seq = 0

    def connect(self):
        self.chan = grpc.insecure_channel(self.endpoint, options=CHANNEL_OPTS)
        self.kv = etcdrpc.KVStub(self.chan)

    def reconnect(self):
        self.chan.close()
        self.connect()

    def value(self):
        self.seq += 1
        return "c%d.%d" % (self.cid, self.seq)

    def do_get(self, key):
        r = self.kv.Range(etcdrpc.RangeRequest(key=key.encode()),
                          self.timeout)
        v = r.kvs[0].value.decode() if r.kvs else "~"
        self.seen[key] = v
        return ("-", "-", v, r.header.revision)

    def do_put(self, key):
        v = self.value()
        r = self.kv.Put(etcdrpc.PutRequest(key=key.encode(),
                                           value=v.encode()), self.timeout)
        self.seen[key] = v
        return (v, "-", "-", r.header.revision)

    def do_cas(self, key):
        exp = self.seen.get(key, "~")
        new = self.value()
        if exp == "~":
            cmp = etcdrpc.Compare(result=etcdrpc.Compare.EQUAL,
                                  target=etcdrpc.Compare.VERSION,
                                  key=key.encode(), version=0)
        else:
            cmp = etcdrpc.Compare(result=etcdrpc.Compare.EQUAL,
                                  target=etcdrpc.Compare.VALUE,
                                  key=key.encode(), value=exp.encode())
        put = etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(
            key=key.encode(), value=new.encode()))
        r = self.kv.Txn(etcdrpc.TxnRequest(compare=[cmp], success=[put]),
                        self.timeout)
        if r.succeeded:
            self.seen[key] = new
        return (exp, new, "true" if r.succeeded else "false",
                r.header.revision)

    def do_delete(self, key):
        r = self.kv.DeleteRange(etcdrpc.DeleteRangeRequest(key=key.encode()),
                                self.timeout)
        self.seen[key] = "~"
        return ("-", "-", str(r.deleted), r.header.revision)


def client_main(cid, endpoint, keys, seconds, timeout, seed, path):
    rng = random.Random(seed * 1000 + cid)
    cl = Client(cid, endpoint, timeout)
    ops = {"get": cl.do_get, "put": cl.do_put, "cas": cl.do_cas,
           "delete": cl.do_delete}
    kinds = ["get"] * 4 + ["put"] * 3 + ["cas"] * 2 + ["delete"]
    end = time.monotonic() + seconds
    with open(path, "w") as out:
        while time.monotonic() < end:
            kind = rng.choice(kinds)
            key = rng.choice(keys)
            seq0 = cl.seq
            exp0 = cl.seen.get(key, "~")
            inv = time.monotonic_ns()
            try:
                a1, a2, res, rev = ops[kind](key)
                ret = time.monotonic_ns()
                line = "%d %s %s %s %s %d %d ok %s %s" % (
                    cid, kind, key, a1, a2, inv, ret, res, rev)
            except grpc.RpcError as err:
                ret = time.monotonic_ns()
                st = classify(err)
                cl.seen[key] = exp0
                if kind == "put":
                    a1, a2 = "c%d.%d" % (cid, seq0 + 1), "-"
                elif kind == "cas":
                    a1, a2 = exp0, "c%d.%d" % (cid, seq0 + 1)
                else:
                    a1, a2 = "-", "-"
                if st == "unknown":
                    # the op may still apply: forget what we knew
                    cl.seen.pop(key, None)
                line = "%d %s %s %s %s %d %s %s - -  # %s %s" % (
                    cid, kind, key, a1, a2, inv,
                    "-" if st == "unknown" else str(ret), st,
                    err.code().name if hasattr(err, "code") else "?",
                    ((err.details() if hasattr(err, "details") else "")
                     or "").replace("\n", " ")[:300])
                if hasattr(err, "code") and \
                        err.code() == grpc.StatusCode.UNAVAILABLE:
                    cl.reconnect()
                time.sleep(0.02)
            out.write(line + "\n")
    cl.chan.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--endpoints", default="127.0.0.1:2379")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--keys", type=int, default=5)
    ap.add_argument("--prefix", default=None)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else int(time.time())
    prefix = a.prefix or "linz/%d.%d/" % (os.getpid(), time.time_ns())
    keys = ["%sk%d" % (prefix, i) for i in range(a.keys)]
    eps = a.endpoints.split(",")
    parts = ["%s.part%d" % (a.out, i) for i in range(a.clients)]
    procs = [multiprocessing.Process(
        target=client_main,
        args=(i, eps[i % len(eps)], keys, a.seconds, a.timeout, seed,
              parts[i])) for i in range(a.clients)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lines = []
    for path in parts:
        with open(path) as f:
            lines += [ln for ln in f.read().split("\n") if ln]
        os.unlink(path)
    lines.sort(key=lambda ln: int(ln.split()[5]))
    counts = {}
    for ln in lines:
        t = ln.split()
        for k in (t[1], t[7]):
            counts[k] = counts.get(k, 0) + 1
    with open(a.out, "w") as f:
        f.write("# recorded by record.py: %d clients, endpoints %s, "
                "seed %d, %.1f s\n" % (a.clients, a.endpoints, seed,
                                       a.seconds))
        f.write("# client op key arg1 arg2 invoke complete status output "
                "revision\n")
        for ln in lines:
            f.write(ln + "\n")
    print("recorded %d ops: %s" % (len(lines), " ".join(
        "%s=%d" % kv for kv in sorted(counts.items()))), file=sys.stderr)
    return 0 if all(p.exitcode == 0 for p in procs) else 1


if __name__ == "__main__":
    sys.exit(main())
