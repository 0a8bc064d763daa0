#!/usr/bin/python3
"""Clients for the cluster tests (tests/cluster), on raw etcd v3 gRPC stubs
from python3-etcd3.

  clhelp.py load --endpoints H:P[,..] --clients N --seconds T --prefix P
                 --acks FILE [--timeout S]
      N client threads, each with its own channel to endpoint i mod n, put
      unique keys P c<i>/<seq> (value "v<i>.<seq>") one after the other for
      T seconds. Every acknowledged put is appended to FILE as
      "KEY VALUE TIME_NS ENDPOINT TERM" (TIME_NS: CLOCK_REALTIME at the
      answer, TERM: the raft term in the answer's header).
      After an error a client waits 20 ms; after UNAVAILABLE it opens a new
      channel. Summary on stderr. Exit 0 (errors are expected under faults).
  clhelp.py verify --endpoint H:P --prefix P --acks FILE
      every key of FILE is on that endpoint with its value, read with one
      serializable range over P (the member's own copy). Prints one line;
      exit 1 when a key is missing or has another value.
  clhelp.py dump --endpoint H:P --prefix P [--linearizable]
      "KEY VALUE" lines of the keys under P, sorted (serializable unless
      --linearizable).
  clhelp.py fill --endpoint H:P[,..] --prefix P --count N [--clients C]
      put keys P%06d (value "f%d") 0..N-1 with C threads (default 8); exit 1
      if any put failed after 3 tries.
  clhelp.py newleader --endpoints H:P[,..] --old HEXID [--timeout S]
      poll Status on each endpoint every 10 ms until one of them says it
      is the leader and is not HEXID; print "ENDPOINT HEXID TIME_NS"
      (CLOCK_REALTIME when seen). Start it before the fault: it keeps
      polling while HEXID leads. Exit 1 after S seconds (default 20).
  clhelp.py probe --endpoints H:P[,..] --term T [--timeout S]
      put key __probe__ round-robin on the endpoints, each put with a
      100 ms deadline, until one is acknowledged with a raft term above T
      (committed after the leader of term T is gone); print "ENDPOINT TERM
      TIME_NS" (CLOCK_REALTIME at the answer). Exit 1 after S seconds.
  clhelp.py watch --endpoint H:P --prefix P --count N --out FILE
                  [--timeout S]
      watch P (prefix) on that endpoint; once the watch is created, write
      "ready" to FILE.ready; append every event to FILE as "KEY
      MOD_REVISION PUT|DELETE"; exit 0 after N events, 1 after S seconds
      (default 60) with fewer.
"""

import argparse
import sys
import threading
import time

import grpc
from etcd3 import etcdrpc

OPTS = [("grpc.use_local_subchannel_pool", 1)]


def range_end(prefix):
    b = bytearray(prefix.encode())
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[:i + 1])
    return b"\0"


class Conn:
    def __init__(self, ep):
        self.ep = ep
        self.open()

    def open(self):
        self.chan = grpc.insecure_channel(self.ep, options=OPTS)
        self.kv = etcdrpc.KVStub(self.chan)

    def reopen(self):
        self.chan.close()
        self.open()


def load_client(cid, ep, prefix, end, timeout, out, lock, stats):
    c = Conn(ep)
    seq = 0
    while time.monotonic() < end:
        seq += 1
        key = "%sc%d/%06d" % (prefix, cid, seq)
        val = "v%d.%d" % (cid, seq)
        try:
            r = c.kv.Put(etcdrpc.PutRequest(key=key.encode(),
                                            value=val.encode()), timeout)
            t = time.time_ns()
            with lock:
                out.write("%s %s %d %s %d\n" % (key, val, t, ep,
                                                r.header.raft_term))
                out.flush()
                stats["ok"] = stats.get("ok", 0) + 1
        except grpc.RpcError as err:
            code = err.code().name if hasattr(err, "code") else "?"
            with lock:
                stats[code] = stats.get(code, 0) + 1
                if code not in stats.setdefault("first", {}):
                    stats["first"][code] = (err.details() or "")[:120]
            if code == "UNAVAILABLE":
                c.reopen()
            time.sleep(0.02)
    c.chan.close()


def cmd_load(a):
    eps = a.endpoints.split(",")
    end = time.monotonic() + a.seconds
    lock = threading.Lock()
    stats = {}
    with open(a.acks, "a") as out:
        ths = [threading.Thread(target=load_client, args=(
            i, eps[i % len(eps)], a.prefix, end, a.timeout, out, lock, stats))
            for i in range(a.clients)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
    first = stats.pop("first", {})
    print("load: %s; first errors: %s" % (
        " ".join("%s=%d" % kv for kv in sorted(stats.items())),
        "; ".join("%s: %s" % kv for kv in sorted(first.items()))),
        file=sys.stderr)
    return 0


def scan(ep, prefix, serializable=True):
    c = Conn(ep)
    r = c.kv.Range(etcdrpc.RangeRequest(key=prefix.encode(),
                                        range_end=range_end(prefix),
                                        serializable=serializable), 20)
    c.chan.close()
    return {kv.key.decode(): kv.value.decode() for kv in r.kvs}


def cmd_verify(a):
    have = scan(a.endpoint, a.prefix)
    acked = {}
    with open(a.acks) as f:
        for ln in f:
            t = ln.split()
            if len(t) >= 2:
                acked[t[0]] = t[1]
    missing = [k for k in acked if k not in have]
    wrong = [k for k in acked if k in have and have[k] != acked[k]]
    print("verify %s: %d acknowledged, %d keys there, %d missing%s, "
          "%d with another value%s" % (
              a.endpoint, len(acked), len(have), len(missing),
              " (first %s)" % sorted(missing)[0] if missing else "",
              len(wrong), " (first %s)" % sorted(wrong)[0] if wrong else ""))
    return 1 if missing or wrong or not acked else 0


def cmd_dump(a):
    have = scan(a.endpoint, a.prefix, not a.linearizable)
    for k in sorted(have):
        print(k, have[k])
    return 0


def fill_client(ep, prefix, keys, timeout, errs, lock):
    c = Conn(ep)
    for i in keys:
        for attempt in range(3):
            try:
                c.kv.Put(etcdrpc.PutRequest(
                    key=("%s%06d" % (prefix, i)).encode(),
                    value=("f%d" % i).encode()), timeout)
                break
            except grpc.RpcError as err:
                if attempt == 2:
                    with lock:
                        errs.append("%d: %s" % (i, err.details()))
                else:
                    c.reopen()
                    time.sleep(0.1)
    c.chan.close()


def cmd_fill(a):
    eps = a.endpoint.split(",")
    errs = []
    lock = threading.Lock()
    ths = [threading.Thread(target=fill_client, args=(
        eps[j % len(eps)], a.prefix, range(j, a.count, a.clients), 5, errs,
        lock)) for j in range(a.clients)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    if errs:
        print("fill: %d failed puts, first: %s" % (len(errs), errs[0]),
              file=sys.stderr)
        return 1
    return 0


def cmd_newleader(a):
    conns = [Conn(ep) for ep in a.endpoints.split(",")]
    old = int(a.old, 16)
    end = time.monotonic() + a.timeout
    while time.monotonic() < end:
        for c in conns:
            try:
                st = etcdrpc.MaintenanceStub(c.chan).Status(
                    etcdrpc.StatusRequest(), 0.3)
            except grpc.RpcError:
                continue
            if st.leader and st.leader != old and \
                    st.leader == st.header.member_id:
                print("%s %x %d" % (c.ep, st.leader, time.time_ns()))
                return 0
        time.sleep(0.01)
    return 1


def cmd_probe(a):
    conns = [Conn(ep) for ep in a.endpoints.split(",")]
    end = time.monotonic() + a.timeout
    i = 0
    while time.monotonic() < end:
        c = conns[i % len(conns)]
        i += 1
        try:
            r = c.kv.Put(etcdrpc.PutRequest(key=b"__probe__", value=b"p"), 0.1)
            if r.header.raft_term > a.term:
                print("%s %d %d" % (c.ep, r.header.raft_term, time.time_ns()))
                return 0
            time.sleep(0.005)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.UNAVAILABLE:
                c.reopen()
    return 1


def cmd_watch(a):
    import etcd3
    host, port = a.endpoint.rsplit(":", 1)
    cl = etcd3.client(host=host, port=int(port), timeout=10)
    got = []
    done = threading.Event()

    def cb(resp):
        if isinstance(resp, Exception):
            return
        for ev in resp.events:
            got.append("%s %d %s" % (ev.key.decode(), ev.mod_revision,
                                     "DELETE" if isinstance(
                                         ev, etcd3.events.DeleteEvent)
                                     else "PUT"))
        if len(got) >= a.count:
            done.set()

    wid = cl.add_watch_prefix_callback(a.prefix, cb)
    with open(a.out + ".ready", "w") as f:
        f.write("ready\n")
    done.wait(a.timeout)
    cl.cancel_watch(wid)
    with open(a.out, "w") as f:
        f.write("".join(ln + "\n" for ln in got))
    return 0 if len(got) >= a.count else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("load")
    p.add_argument("--endpoints", required=True)
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--prefix", required=True)
    p.add_argument("--acks", required=True)
    p.add_argument("--timeout", type=float, default=2.0)
    p = sub.add_parser("verify")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--acks", required=True)
    p = sub.add_parser("dump")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--linearizable", action="store_true")
    p = sub.add_parser("fill")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--clients", type=int, default=8)
    p = sub.add_parser("newleader")
    p.add_argument("--endpoints", required=True)
    p.add_argument("--old", required=True)
    p.add_argument("--timeout", type=float, default=20)
    p = sub.add_parser("probe")
    p.add_argument("--endpoints", required=True)
    p.add_argument("--term", type=int, required=True)
    p.add_argument("--timeout", type=float, default=20)
    p = sub.add_parser("watch")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()
    return {"load": cmd_load, "verify": cmd_verify, "dump": cmd_dump,
            "fill": cmd_fill, "newleader": cmd_newleader,
            "probe": cmd_probe, "watch": cmd_watch}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
