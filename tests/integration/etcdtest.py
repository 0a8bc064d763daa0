"""The shared harness of the python integration tests (etcd3_tests.py,
lease_tests.py): test registration, asserts, and the runner that prints
one "PASS name" / "FAIL name: reason" line per test (read by run.sh).
"""

import sys
import traceback

import etcd3
import grpc

TIMEOUT = 10


class Fail(Exception):
    pass


def collector(tests):
    """A decorator that appends each test function to the list tests."""
    def test(fn):
        tests.append(fn)
        return fn
    return test


def eq(got, want, what):
    if got != want:
        raise Fail("%s: got %r want %r" % (what, got, want))


def rpc_error(fn, code, details, what):
    """Call fn; it must raise grpc.RpcError with this code and message."""
    try:
        fn()
    except grpc.RpcError as e:
        eq(e.code(), code, what + " code")
        eq(e.details(), details, what + " details")
        return
    raise Fail("%s: no error raised" % what)


def _reason(e, src):
    ours = [f for f in traceback.extract_tb(e.__traceback__)
            if f.filename == src]
    where = "line %d" % ours[-1].lineno if ours else ""
    if isinstance(e, grpc.RpcError):
        return "grpc %s %s: %s" % (e.code(), where, e.details())
    return "%s %s: %s" % (type(e).__name__, where, e)


def run(prefix, tests, set_client, src):
    """argv: PORT [TEST...]. Connect, hand the client to set_client, run
    the tests (all, or those named), print a line each; exit status 1 if
    any failed. src is the test file, for line numbers in reasons."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 2379
    only = sys.argv[2:]
    client = etcd3.client(host="127.0.0.1", port=port, timeout=TIMEOUT)
    set_client(client)
    failed = 0
    for fn in tests:
        if only and fn.__name__ not in only:
            continue
        name = prefix + fn.__name__
        try:
            fn()
            print("PASS " + name, flush=True)
        except Fail as e:
            failed += 1
            print("FAIL %s: %s" % (name, str(e)[:300]), flush=True)
        except Exception as e:  # noqa: B902 - any error fails the test
            failed += 1
            msg = _reason(e, src).replace("\n", " ")[:300]
            print("FAIL %s: %s" % (name, msg), flush=True)
    client.close()
    return 1 if failed else 0
