#!/usr/bin/python3
"""Workloads for tools/perf/compare.sh. Each prints one JSON object.

  perfio.py latency PORT N
      N sequential puts from one etcd3 client (key lat_%06d, 100-byte
      values): {"n", "p50_ms", "p99_ms", "mean_ms"}.
  perfio.py throughput PORT NPROC TOTAL
      TOTAL puts split over NPROC processes, each with its own connection,
      all released together: {"n", "seconds", "puts_per_s"}.
  perfio.py load PORT NKEYS [NPROC]
      keys key_%06d with 100-byte values, in txns of 128 puts from NPROC
      processes: {"n", "seconds"}; then checks the count.
  perfio.py fsync DIR N
      N times: write 100 bytes, fdatasync, in a file in DIR (the disk's
      floor for one durable commit): {"n", "p50_ms", "p99_ms", "mean_ms"}.
"""

import json
import multiprocessing
import os
import statistics
import sys
import time

import etcd3

TIMEOUT = 60
VALUE = b"v" * 100


def client(port):
    return etcd3.client(host="127.0.0.1", port=port, timeout=TIMEOUT)


def summary(lat_s):
    lat = sorted(x * 1000.0 for x in lat_s)
    return {
        "n": len(lat),
        "p50_ms": round(lat[len(lat) // 2], 3),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3),
        "mean_ms": round(statistics.mean(lat), 3),
    }


def latency(port, n):
    c = client(port)
    c.put("lat_warmup", VALUE)
    lat = []
    for i in range(n):
        t0 = time.perf_counter()
        c.put("lat_%06d" % i, VALUE)
        lat.append(time.perf_counter() - t0)
    c.close()
    return summary(lat)


def tp_worker(port, proc, count, barrier, out):
    c = client(port)
    c.put("tp_warmup_%d" % proc, VALUE)	# connect before the clock starts
    barrier.wait()
    for i in range(count):
        c.put("tp_%02d_%06d" % (proc, i), VALUE)
    out.put(time.perf_counter())
    c.close()


def throughput(port, nproc, total):
    counts = [total // nproc + (1 if p < total % nproc else 0)
              for p in range(nproc)]
    barrier = multiprocessing.Barrier(nproc + 1)
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=tp_worker,
                                     args=(port, p, counts[p], barrier, out))
             for p in range(nproc)]
    for p in procs:
        p.start()
    barrier.wait(timeout=TIMEOUT)
    t0 = time.perf_counter()
    ends = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    secs = max(ends) - t0
    return {"n": total, "seconds": round(secs, 3),
            "puts_per_s": round(total / secs, 1)}


def load_worker(port, lo, hi):
    c = client(port)
    t = c.transactions
    for start in range(lo, hi, 128):
        ops = [t.put("key_%06d" % i, VALUE)
               for i in range(start, min(start + 128, hi))]
        c.transaction(compare=[], success=ops, failure=[])
    c.close()


def load(port, nkeys, nproc):
    step = (nkeys + nproc - 1) // nproc
    step = (step + 127) // 128 * 128
    t0 = time.perf_counter()
    procs = [multiprocessing.Process(target=load_worker,
                                     args=(port, lo, min(lo + step, nkeys)))
             for lo in range(0, nkeys, step)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    secs = time.perf_counter() - t0
    c = client(port)
    resp = c.kvstub.Range(etcd3.etcdrpc.RangeRequest(
        key=b"key_", range_end=b"key`", count_only=True), TIMEOUT)
    c.close()
    if resp.count != nkeys:
        raise SystemExit("load: %d keys stored, want %d" % (resp.count, nkeys))
    return {"n": nkeys, "seconds": round(secs, 3)}


def fsync_floor(d, n):
    path = os.path.join(d, "fsync_probe.%d" % os.getpid())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    buf = b"x" * 100
    lat = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, buf)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    return summary(lat)


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "latency" and len(argv) == 4:
        res = latency(int(argv[2]), int(argv[3]))
    elif cmd == "throughput" and len(argv) == 5:
        res = throughput(int(argv[2]), int(argv[3]), int(argv[4]))
    elif cmd == "load" and len(argv) in (4, 5):
        res = load(int(argv[2]), int(argv[3]),
                   int(argv[4]) if len(argv) == 5 else 4)
    elif cmd == "fsync" and len(argv) == 4:
        res = fsync_floor(argv[2], int(argv[3]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
