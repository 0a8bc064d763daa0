#!/usr/bin/python3
"""Random histories for testing the checker (format: linz.h).

  gen_history.py linear SEED OUT [OPS KEYS CLIENTS]
      a linearizable history: ops get random invocation/completion windows,
      a linearization point inside each window, and their results from a
      sequential register model applied in linearization-point order. Some
      writes time out (unknown: applied at some later point, or never), some
      fail (never applied), some gets time out.
  gen_history.py mutate SEED OUT [OPS KEYS CLIENTS]
      the same history with ONE result changed so that it is certainly not
      linearizable (prints which mutation to stderr): a get returns a value
      never written, a value written only after the get completed, or the
      value of a write overwritten (by an acknowledged write) before the
      get began. Values are unique, so each mutation is a violation.
  gen_history.py mutate-file SEED IN OUT
      apply one such mutation to an existing (recorded) history.
  gen_history.py batch linear|mutate SEED COUNT DIR [OPS KEYS CLIENTS]
      COUNT histories DIR/<kind>_<seed>.hist for seeds SEED..SEED+COUNT-1
      (one process: fast); mutations are listed in DIR/mutations.txt.

Times are integers (ns-like units); OUT "-" is stdout.
"""

import random
import sys

ABSENT = "~"


def gen_ops(rng, nops, nkeys, nclients):
    """Op skeletons with windows and linearization points, in time order
    per client."""
    free = [0] * nclients
    ops = []
    vid = 0
    for _ in range(nops):
        c = min(range(nclients), key=lambda i: (free[i], i))
        inv = free[c] + rng.randint(0, 20)
        lin = inv + rng.randint(0, 30)
        ret = lin + rng.randint(0, 30)
        free[c] = ret + 1
        key = "k%d" % rng.randrange(nkeys)
        r = rng.random()
        op = {"c": c, "key": key, "inv": inv, "lin": lin, "ret": ret,
              "a1": "-", "a2": "-", "st": "ok", "out": "-", "applied": True}
        if r < 0.4:
            op["op"] = "get"
        elif r < 0.75:
            vid += 1
            op["op"], op["a1"] = "put", "v%d" % vid
        elif r < 0.92:
            vid += 1
            op["op"], op["a2"] = "cas", "v%d" % vid
            op["a1"] = ABSENT if rng.random() < 0.2 else None  # later
        else:
            op["op"] = "delete"
        s = rng.random()
        if s < 0.04:
            op["st"] = "unknown"
            if op["op"] != "get" and rng.random() < 0.6:
                # applied, possibly long after the client gave up
                op["lin"] = inv + rng.randint(0, 400)
            else:
                op["applied"] = False
        elif s < 0.06 and op["op"] != "get":
            op["st"], op["applied"] = "fail", False
        ops.append(op)
    return ops


def run_model(rng, ops):
    """Fill in results by applying the applied ops in lin order."""
    state = {}
    seen = {}       # values written so far per key, for cas arguments
    for op in sorted(ops, key=lambda o: (o["lin"], o["inv"])):
        k = op["key"]
        cur = state.get(k, ABSENT)
        if op["op"] == "cas" and op["a1"] is None:
            vals = seen.get(k, [])
            if vals and rng.random() < 0.7:
                op["a1"] = cur if rng.random() < 0.6 else rng.choice(vals)
            else:
                op["a1"] = vals[-1] if vals else "v0"
        if not op["applied"]:
            continue
        if op["op"] == "get":
            op["out"] = cur
        elif op["op"] == "put":
            state[k] = op["a1"]
            seen.setdefault(k, []).append(op["a1"])
        elif op["op"] == "cas":
            ok = cur == op["a1"]
            op["out"] = "true" if ok else "false"
            if ok:
                state[k] = op["a2"]
                seen.setdefault(k, []).append(op["a2"])
        else:
            op["out"] = "1" if cur != ABSENT else "0"
            state[k] = ABSENT


def fmt(op):
    ret = "-" if op["st"] == "unknown" else str(op["ret"])
    out = op["out"] if op["st"] == "ok" else "-"
    return "%d %s %s %s %s %d %s %s %s" % (
        op["c"], op["op"], op["key"], op["a1"], op["a2"], op["inv"], ret,
        op["st"], out)


def parse(path):
    ops = []
    with open(path) as f:
        for line in f:
            t = line.split()
            if not t or t[0].startswith("#"):
                continue
            op = {"c": int(t[0]), "op": t[1], "key": t[2], "a1": t[3],
                  "a2": t[4], "inv": int(t[5]),
                  "ret": None if t[6] == "-" else int(t[6]), "st": t[7],
                  "out": t[8]}
            if op["ret"] is None:
                op["ret"] = 1 << 62
            ops.append(op)
    return ops


def written(op):
    """The value an op writes if it certainly took effect, else None."""
    if op["st"] != "ok":
        return None
    if op["op"] == "put":
        return op["a1"]
    if op["op"] == "cas" and op["out"] == "true":
        return op["a2"]
    if op["op"] == "delete":
        return ABSENT
    return None


def mutate(rng, ops):
    """Change one get's result so the history is certainly not
    linearizable; returns a description."""
    gets = [o for o in ops if o["op"] == "get" and o["st"] == "ok"]
    if not gets:
        raise SystemExit("mutate: the history has no successful get")
    rng.shuffle(gets)
    kinds = ["stale", "future", "never"]
    rng.shuffle(kinds)
    bykey = {}
    for o in ops:
        bykey.setdefault(o["key"], []).append(o)
    for kind in kinds:
        for g in gets[:200]:
            same = bykey[g["key"]]
            if kind == "never":
                g["out"] = "never-written-%d" % rng.randrange(1 << 30)
                return "get at %d on %s returns a value never written" % (
                    g["inv"], g["key"])
            if kind == "future":
                cand = [o for o in same if o["op"] in ("put", "cas")
                        and o["inv"] > g["ret"]]
                if cand:
                    w = rng.choice(cand)
                    g["out"] = w["a1"] if w["op"] == "put" else w["a2"]
                    return "get at %d on %s returns %s, written later" % (
                        g["inv"], g["key"], g["out"])
            if kind == "stale":
                # w then x (both certainly applied, x's value differs from
                # w's) completed before g began: g cannot see w's value
                ws = [o for o in same if written(o) not in (None, ABSENT)
                      and o["ret"] < g["inv"]]
                for w in ws:
                    xs = [o for o in same if written(o) is not None and
                          written(o) != written(w) and
                          o["inv"] > w["ret"] and o["ret"] < g["inv"]]
                    if xs and g["out"] != written(w):
                        g["out"] = written(w)
                        return ("get at %d on %s returns %s, overwritten "
                                "before it began" % (g["inv"], g["key"],
                                                     g["out"]))
    raise SystemExit("mutate: no mutation applies")


def write(ops, path):
    f = sys.stdout if path == "-" else open(path, "w")
    f.write("# client op key arg1 arg2 invoke complete status output\n")
    for op in sorted(ops, key=lambda o: o["inv"]):
        f.write(fmt(op) + "\n")
    if f is not sys.stdout:
        f.close()


def main(argv):
    if len(argv) >= 4 and argv[1] in ("linear", "mutate"):
        rng = random.Random(int(argv[2]))
        nops, nkeys, ncl = (int(x) for x in (argv[4:7] + ["300", "3", "5"]
                                             [len(argv[4:7]):]))
        ops = gen_ops(rng, nops, nkeys, ncl)
        run_model(rng, ops)
        if argv[1] == "mutate":
            print(mutate(rng, ops), file=sys.stderr)
        write(ops, argv[3])
        return 0
    if len(argv) >= 6 and argv[1] == "batch":
        kind, seed0, count, outdir = argv[2], int(argv[3]), int(argv[4]), \
            argv[5]
        shape = [int(x) for x in argv[6:9]]
        with open("%s/mutations.txt" % outdir, "a") as log:
            for seed in range(seed0, seed0 + count):
                rng = random.Random(seed)
                ops = gen_ops(rng, *shape) if shape else \
                    gen_ops(rng, 300, 3, 5)
                run_model(rng, ops)
                if kind == "mutate":
                    log.write("seed %d: %s\n" % (seed, mutate(rng, ops)))
                write(ops, "%s/%s_%d.hist" % (outdir, kind, seed))
        return 0
    if len(argv) == 5 and argv[1] == "mutate-file":
        rng = random.Random(int(argv[2]))
        ops = parse(argv[3])
        desc = mutate(rng, ops)
        for o in ops:
            if o["ret"] == 1 << 62:
                o["st"] = "unknown"
        print(desc, file=sys.stderr)
        write(ops, argv[4])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
