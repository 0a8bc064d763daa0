#!/usr/bin/python3
"""A brute-force linearizability oracle for small histories, to test the
checker's search and its prunings against the definition itself.

  brute.py gen SEED COUNT DIR
      COUNT small random histories DIR/small_<seed>.hist (3 to 9 ops on
      one or two keys, three values, 30% unknown and 10% failed ops,
      random results: about half of them are not linearizable) and DIR/expected.txt, one "PATH: OK|VIOLATION" a
      line, decided by trying every order of every subset of the unknown
      ops (no pruning, no cleverness).
"""

import os
import random
import sys

ABSENT = "~"


def step(op, s):
    """(accepted, next state) under the register model of linz.h."""
    kind, known = op["op"], op["st"] == "ok"
    if kind == "put":
        return True, op["a1"]
    if kind == "get":
        return s == op["out"], s
    if kind == "cas":
        if not known:
            return True, op["a2"] if s == op["a1"] else s
        if op["out"] == "true":
            return s == op["a1"], op["a2"]
        return s != op["a1"], s
    if not known or op["out"] == "-":
        return True, ABSENT
    return (s != ABSENT) == (op["out"] == "1"), ABSENT


def linearizable_key(ops):
    known = [o for o in ops if o["st"] == "ok"]
    unk = [o for o in ops if o["st"] == "unknown" and o["op"] != "get"]
    INF = float("inf")

    def ret(o):
        return o["ret"] if o["st"] == "ok" else INF

    def dfs(done, rest_known, rest_unk, s):
        if not rest_known:
            return True
        for o in rest_known + rest_unk:
            # o may go next iff no remaining op must precede it
            if any(ret(p) < o["inv"] for p in rest_known + rest_unk
                   if p is not o):
                continue
            ok, ns = step(o, s)
            if not ok:
                continue
            if dfs(done + [o], [p for p in rest_known if p is not o],
                   [p for p in rest_unk if p is not o], ns):
                return True
        return False

    return dfs([], known, unk, ABSENT)


def linearizable(ops):
    keys = sorted({o["key"] for o in ops})
    return all(linearizable_key([o for o in ops if o["key"] == k])
               for k in keys)


def random_history(rng):
    n = rng.randint(3, 9)
    keys = ["k0"] if rng.random() < 0.7 else ["k0", "k1"]
    vals = ["a", "b", "c"]
    ops = []
    for i in range(n):
        inv = rng.randint(0, 30)
        op = {"c": i, "key": rng.choice(keys), "inv": inv,
              "ret": inv + rng.randint(0, 20), "a1": "-", "a2": "-",
              "out": "-",
              "op": rng.choice(["put", "put", "get", "get", "cas",
                                "delete"])}
        r = rng.random()
        op["st"] = "ok" if r < 0.6 else ("unknown" if r < 0.9 else "fail")
        if op["op"] == "put":
            op["a1"] = rng.choice(vals)
        elif op["op"] == "cas":
            op["a1"] = rng.choice(vals[:2] + [ABSENT])
            op["a2"] = rng.choice(vals)
        if op["st"] == "ok":
            if op["op"] == "get":
                op["out"] = rng.choice(vals + [ABSENT])
            elif op["op"] == "cas":
                op["out"] = rng.choice(["true", "false"])
            elif op["op"] == "delete":
                op["out"] = rng.choice(["0", "1", "-"])
        ops.append(op)
    return ops


def fmt(op):
    return "%d %s %s %s %s %d %s %s %s" % (
        op["c"], op["op"], op["key"], op["a1"], op["a2"], op["inv"],
        "-" if op["st"] == "unknown" else op["ret"], op["st"],
        op["out"] if op["st"] == "ok" else "-")


def main(argv):
    if len(argv) != 5 or argv[1] != "gen":
        print(__doc__, file=sys.stderr)
        return 2
    seed0, count, outdir = int(argv[2]), int(argv[3]), argv[4]
    with open(os.path.join(outdir, "expected.txt"), "w") as exp:
        for seed in range(seed0, seed0 + count):
            rng = random.Random(seed)
            ops = random_history(rng)
            path = os.path.join(outdir, "small_%d.hist" % seed)
            with open(path, "w") as f:
                for op in sorted(ops, key=lambda o: o["inv"]):
                    f.write(fmt(op) + "\n")
            exp.write("%s: %s\n" % (path, "OK" if linearizable(ops)
                                    else "VIOLATION"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
