#!/usr/bin/python3
"""Writer and checker for the kill -9 crash test (tests/crash/kill9.sh).

  crashio.py write PORT LOGDIR ROUND NPROC SECONDS
      NPROC processes, each with its own etcd3 connection, put unique keys
      crash/ROUND/P/SEQ for up to SECONDS. A put is logged ONLY after the
      server acknowledged it: "key value revision\\n" appended to
      LOGDIR/ack.ROUND.P and fsync'd before the next put is sent. A process
      stops at its first error (the server was killed under it).
      Prints the number of acknowledged puts.

  crashio.py verify PORT LOGDIR
      Every acknowledged key of every round is present with its value and
      with mod_revision == create_revision == the acknowledged revision
      (each key is written once); a new put gets a revision greater than
      every acknowledged one. Prints "ok N keys, max ack rev R, new rev S"
      or "error: ..." (exit 1).
"""

import glob
import multiprocessing
import os
import sys
import time

import etcd3

TIMEOUT = 5


def writer(port, logdir, rnd, proc, seconds):
    client = etcd3.client(host="127.0.0.1", port=port, timeout=TIMEOUT)
    path = os.path.join(logdir, "ack.%s.%d" % (rnd, proc))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    end = time.time() + seconds
    seq = 0
    try:
        while time.time() < end:
            key = "crash/%s/%d/%07d" % (rnd, proc, seq)
            val = "v%s-%d-%d" % (rnd, proc, seq)
            rev = client.put(key, val).header.revision
            # acknowledged: log it durably before sending the next put
            os.write(fd, ("%s %s %d\n" % (key, val, rev)).encode())
            os.fsync(fd)
            seq += 1
    except Exception:  # noqa: B902 - the server died: stop writing
        pass
    finally:
        os.close(fd)
        client.close()


def write(port, logdir, rnd, nproc, seconds):
    procs = [multiprocessing.Process(target=writer,
                                     args=(port, logdir, rnd, p, seconds))
             for p in range(nproc)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    print(sum(len(read_log(f)) for f in
              glob.glob(os.path.join(logdir, "ack.%s.*" % rnd))))
    return 0


def read_log(path):
    """Complete lines only: a torn last line was never acknowledged."""
    with open(path) as f:
        data = f.read()
    lines = data.split("\n")[:-1]
    return [ln.split(" ") for ln in lines]


def verify(port, logdir):
    client = etcd3.client(host="127.0.0.1", port=port, timeout=20)
    acked = {}
    for path in sorted(glob.glob(os.path.join(logdir, "ack.*"))):
        for key, val, rev in read_log(path):
            acked[key] = (val.encode(), int(rev))
    found = {}
    prefixes = sorted({k.rsplit("/", 1)[0] + "/" for k in acked})
    for pfx in prefixes:
        for val, meta in client.get_prefix(pfx):
            found[meta.key.decode()] = (val, meta.mod_revision,
                                        meta.create_revision)
    bad = []
    for key, (val, rev) in sorted(acked.items()):
        got = found.get(key)
        if got is None:
            bad.append("%s missing (acked at rev %d)" % (key, rev))
        elif got != (val, rev, rev):
            bad.append("%s: got %r want %r" % (key, got, (val, rev, rev)))
    max_ack = max((r for _, r in acked.values()), default=0)
    new_rev = client.put("crash/probe", "x").header.revision
    if new_rev <= max_ack:
        bad.append("new put got revision %d <= acknowledged %d"
                   % (new_rev, max_ack))
    client.close()
    if bad:
        print("error: %d problems: %s" % (len(bad), "; ".join(bad[:5])))
        return 1
    print("ok %d keys, max ack rev %d, new rev %d"
          % (len(acked), max_ack, new_rev))
    return 0


def main(argv):
    if len(argv) == 7 and argv[1] == "write":
        return write(int(argv[2]), argv[3], argv[4], int(argv[5]),
                     float(argv[6]))
    if len(argv) == 4 and argv[1] == "verify":
        return verify(int(argv[2]), argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
