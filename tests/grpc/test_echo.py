#!/usr/bin/python3
"""Black-box tests of net/grpc over the echo server (tests/grpc/echo_server.c).

Run: /usr/bin/python3 tests/grpc/test_echo.py PATH/TO/echo_server [-v]
     (or ECHO_SERVER=path). Every wait is bounded; every server started is
stopped. Uses grpcio (Debian python3-grpcio), etcdctl and curl.
"""
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

import grpc

SERVER = os.environ.get("ECHO_SERVER", "")
FAIL_MSG = "bad request: 100% wrong, caf\u00e9\tok"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TIMEOUT = 10


class Server:
    """An echo_server child process on a free port."""

    def __init__(self, *args, max_fds=None):
        cmd = [SERVER, "-p", "0", *args]
        if max_fds:
            cmd = ["/bin/sh", "-c", 'ulimit -n %d && exec "$@"' % max_fds,
                   "sh", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError("server did not start: %r" % line)
        self.port = int(line.split()[1])
        self.addr = "127.0.0.1:%d" % self.port

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(TIMEOUT)
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode, err


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def hpack_literal(headers):
    """HPACK block of literal fields without indexing (no huffman);
    names and values shorter than 127 bytes."""
    out = b""
    for k, v in headers:
        k, v = k.encode(), v.encode()
        out += b"\x00" + bytes([len(k)]) + k + bytes([len(v)]) + v
    return out


def grpc_request(sid, path, msg):
    """HEADERS + DATA(END_STREAM) frames of one unary gRPC request."""
    hdrs = hpack_literal([(":method", "POST"), (":scheme", "http"),
                          (":path", path), (":authority", "x"),
                          ("content-type", "application/grpc"),
                          ("te", "trailers")])
    body = b"\x00" + struct.pack(">I", len(msg)) + msg
    out = frame(0x1, 0x4, sid, hdrs)
    for i in range(0, len(body), 16384):
        last = i + 16384 >= len(body)
        out += frame(0x0, 0x1 if last else 0, sid, body[i:i + 16384])
    return out


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_until_closed(sock, limit=5.0):
    """Read until EOF; returns (bytes, closed?) within limit seconds."""
    sock.settimeout(0.2)
    data, end = b"", time.monotonic() + limit
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


class EchoTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server("-H", "500")
        cls.ch = grpc.insecure_channel(cls.srv.addr)
        grpc.channel_ready_future(cls.ch).result(timeout=TIMEOUT)

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()
        rc, err = cls.srv.stop()
        if rc != 0 or "ERROR" in err or "AddressSanitizer" in err:
            raise AssertionError("server exit %d: %s" % (rc, err))

    def unary(self, method, req, ch=None, **kw):
        kw.setdefault("timeout", TIMEOUT)
        return (ch or self.ch).unary_unary("/test.Echo/" + method)(req, **kw)

    def assert_serving(self):
        self.assertTrue(self.srv.alive())
        self.assertEqual(self.unary("Unary", b"still here"), b"still here")

    def test_echo_sizes(self):
        for n in (0, 1, 1024, 16384, 100000, 3 * 1024 * 1024):
            req = bytes(i % 251 for i in range(n))
            self.assertEqual(self.unary("Unary", req), req, n)

    def test_async_reply(self):
        t0 = time.monotonic()
        self.assertEqual(self.unary("Slow", b"later"), b"later")
        self.assertGreaterEqual(time.monotonic() - t0, 0.09)

    def test_error_status_and_message(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("Fail", b"x")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(cm.exception.details(), FAIL_MSG)

    def test_unknown_method_and_service(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("Nope", b"")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertEqual(cm.exception.details(),
                         "unknown method Nope for service test.Echo")
        with self.assertRaises(grpc.RpcError) as cm:
            self.ch.unary_unary("/other.Svc/M")(b"", timeout=TIMEOUT)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertEqual(cm.exception.details(), "unknown service other.Svc")

    def test_peer_and_metadata(self):
        out = self.unary("Peer", b"", metadata=(("x-k", "v1"),)).decode()
        peer, k = out.split(" ")
        self.assertTrue(peer.startswith("127.0.0.1:"), peer)
        self.assertEqual(k, "v1")

    def test_200_concurrent_one_channel(self):
        futs = [self.ch.unary_unary("/test.Echo/" + ("Slow" if i % 2 else
                                                     "Unary")).future(
                    b"%d" % i, timeout=TIMEOUT) for i in range(200)]
        for i, f in enumerate(futs):
            self.assertEqual(f.result(), b"%d" % i)

    def test_20_channels_concurrent(self):
        chans = [grpc.insecure_channel(self.srv.addr) for _ in range(20)]
        try:
            futs = [(c, i, c.unary_unary("/test.Echo/Slow").future(
                b"%d" % i, timeout=TIMEOUT)) for c in chans
                for i in range(20)]
            for _, i, f in futs:
                self.assertEqual(f.result(), b"%d" % i)
        finally:
            for c in chans:
                c.close()

    def test_stream_echo(self):
        msgs = [bytes([i % 256]) * (i * 37) for i in range(100)]
        call = self.ch.stream_stream("/test.Echo/Stream")
        self.assertEqual(list(call(iter(msgs), timeout=TIMEOUT)), msgs)

    def test_stream_flood_backpressure(self):
        # 200 x 64 KiB from the server, read slowly at first: the server
        # must queue within its high-water mark and resume on drain.
        call = self.ch.stream_stream("/test.Echo/Flood")
        it = call(iter([struct.pack(">II", 200, 65536)]), timeout=30)
        got = 0
        for i, m in enumerate(it):
            if i < 3:
                time.sleep(0.2)
            self.assertEqual(len(m), 65536)
            self.assertEqual(m[0], (200 - i) & 0xff)
            got += 1
        self.assertEqual(got, 200)
        stats = dict(kv.split("=") for kv in
                     self.unary("Stats", b"").decode().split())
        self.assertGreater(int(stats["eagain"]), 0)
        self.assertGreater(int(stats["writable"]), 0)

    def test_cancel_mid_call(self):
        f = self.ch.unary_unary("/test.Echo/Slow").future(b"x", timeout=5)
        time.sleep(0.02)
        self.assertTrue(f.cancel())
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("Slow", b"x", timeout=0.02)
        self.assertEqual(cm.exception.code(),
                         grpc.StatusCode.DEADLINE_EXCEEDED)
        # A stream cancelled mid-way (client resets it).
        it = self.ch.stream_stream("/test.Echo/Flood")(
            iter([struct.pack(">II", 1000, 65536)]), timeout=10)
        next(it)
        it.cancel()
        time.sleep(0.2)  # let the server see the RST and finish the call
        self.assert_serving()

    def test_compressed_request(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("Unary", b"z" * 1000,
                       compression=grpc.Compression.Gzip)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertIn("Decompressor is not installed", cm.exception.details())
        self.assert_serving()

    def test_http1_health(self):
        out = subprocess.run(["curl", "-s", "--http1.1", "-m", "5",
                              "http://%s/health" % self.srv.addr],
                             capture_output=True, timeout=TIMEOUT)
        self.assertEqual(out.returncode, 0)
        self.assertEqual(out.stdout, b'{"health":"true"}')
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w",
                              "%{http_code}", "-m", "5",
                              "http://%s/nothing" % self.srv.addr],
                             capture_output=True, timeout=TIMEOUT)
        self.assertEqual(out.stdout, b"404")

    def test_etcdctl_range(self):
        out = subprocess.run(["etcdctl", "--endpoints", self.srv.addr,
                              "--dial-timeout=3s", "--command-timeout=5s",
                              "get", "foo"],
                             capture_output=True, timeout=TIMEOUT,
                             env=dict(os.environ, ETCDCTL_API="3"))
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_garbage_closes(self):
        with socket.create_connection(("127.0.0.1", self.srv.port), 5) as s:
            s.sendall(b"\x00\x01\x02garbage\xff\r\n\r\n")
            data, closed = read_until_closed(s)
            self.assertTrue(closed)
        self.assert_serving()

    def test_truncated_preface_times_out(self):
        with socket.create_connection(("127.0.0.1", self.srv.port), 5) as s:
            s.sendall(PREFACE[:10])
            t0 = time.monotonic()
            data, closed = read_until_closed(s, 5)
            self.assertTrue(closed)
            self.assertEqual(data, b"")
            self.assertLess(time.monotonic() - t0, 3)  # -H 500
        self.assert_serving()

    def test_silent_client_and_early_eof(self):
        with socket.create_connection(("127.0.0.1", self.srv.port), 5) as s:
            data, closed = read_until_closed(s, 5)
            self.assertTrue(closed)
        socket.create_connection(("127.0.0.1", self.srv.port), 5).close()
        with socket.create_connection(("127.0.0.1", self.srv.port), 5) as s:
            s.sendall(PREFACE)  # then EOF right away
        self.assert_serving()

    def test_bad_h2_frames_goaway(self):
        bad = [
            frame(0x0, 0, 0, b"data on stream 0"),       # DATA on stream 0
            frame(0x4, 0, 0, b"\x00\x04\xff\xff\xff\xff"),  # window > 2^31-1
            frame(0x1, 0x4, 2, b"\x82"),                 # even stream id
            b"\xff" * 64,                                 # frame too large
        ]
        for payload in bad:
            with socket.create_connection(("127.0.0.1", self.srv.port),
                                          5) as s:
                s.sendall(PREFACE + frame(0x4, 0, 0) + payload)
                data, closed = read_until_closed(s)
                self.assertTrue(closed, payload)
                self.assertIn(b"\x07", data[:200])  # some GOAWAY frame
        self.assert_serving()

    def test_header_limits(self):
        # One 100 KB field: nghttp2's HPACK limit, GOAWAY for the connection.
        with grpc.insecure_channel(self.srv.addr) as ch:
            with self.assertRaises(grpc.RpcError) as cm:
                self.unary("Peer", b"", ch=ch,
                           metadata=(("x-k", "v" * 100000),))
            self.assertEqual(cm.exception.code(),
                             grpc.StatusCode.UNAVAILABLE)
        # 80 KB in two fields: our per-call cap resets just that stream.
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("Peer", b"", metadata=(("x-k", "v" * 40000),
                                              ("x-j", "w" * 40000)))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INTERNAL)
        out = self.unary("Peer", b"", metadata=(("x-k", "v" * 200),))
        self.assertTrue(out.endswith(b" " + b"v" * 200))

    def test_ping_answered(self):
        with socket.create_connection(("127.0.0.1", self.srv.port), 5) as s:
            s.sendall(PREFACE + frame(0x4, 0, 0) +
                      frame(0x6, 0, 0, b"12345678"))
            s.settimeout(0.2)
            data, end = b"", time.monotonic() + 5
            ack = frame(0x6, 0x1, 0, b"12345678")
            while ack not in data and time.monotonic() < end:
                try:
                    data += s.recv(65536)
                except socket.timeout:
                    pass
            self.assertIn(ack, data)

    def test_server_settings(self):
        with socket.create_connection(("127.0.0.1", self.srv.port), 5) as s:
            s.sendall(PREFACE + frame(0x4, 0, 0))
            s.settimeout(5)
            data = b""
            while len(data) < 9 or len(data) < 9 + int.from_bytes(
                    data[:3], "big"):
                data += s.recv(65536)
            n = int.from_bytes(data[:3], "big")
            self.assertEqual(data[3], 0x4)  # SETTINGS comes first
            settings = dict(struct.unpack(">HI", data[9 + i:15 + i])
                            for i in range(0, n, 6))
            self.assertEqual(settings[0x3], 1000)     # MAX_CONCURRENT_STREAMS
            self.assertEqual(settings[0x4], 1 << 20)  # INITIAL_WINDOW_SIZE
            self.assertEqual(settings[0x2], 0)        # ENABLE_PUSH

    def test_client_that_never_reads(self):
        # A client opens huge windows, pipelines 64 KiB echo requests and
        # never reads: the server must stop reading (output high-water
        # mark), so the client blocks, and memory stays bounded.
        before = rss_kb(self.srv.proc.pid)
        msg = b"r" * 65536
        with socket.create_connection(("127.0.0.1", self.srv.port), 5) as s:
            s.sendall(PREFACE + frame(0x4, 0, 0, struct.pack(">HI", 4,
                                                             0x7fffffff)) +
                      frame(0x8, 0, 0, struct.pack(">I", 0x7fffffff - 65535)))
            s.settimeout(1.0)
            sent, blocked = 0, False
            for i in range(3000):  # 3000 x 64 KiB = 192 MiB of replies
                try:
                    s.sendall(grpc_request(2 * i + 1, "/test.Echo/Unary",
                                           msg))
                except socket.timeout:
                    blocked = True
                    break
                sent += 1
            grown = rss_kb(self.srv.proc.pid) - before
            self.assertTrue(blocked, "server kept reading: %d sent" % sent)
            self.assertLess(grown, 64 * 1024, "RSS grew %d KiB" % grown)
        self.assert_serving()

    def test_many_raw_connections(self):
        socks = [socket.create_connection(("127.0.0.1", self.srv.port), 5)
                 for _ in range(200)]
        for s in socks:
            s.sendall(PREFACE + frame(0x4, 0, 0))
        for s in socks:
            s.close()
        self.assert_serving()


class FdExhaustionTests(unittest.TestCase):
    def test_emfile_then_recovers(self):
        # With 32 fds the server runs out while 60 clients connect; accept
        # must pause (not spin) and serve again once the clients leave.
        srv = Server(max_fds=32)
        try:
            socks = []
            for _ in range(60):
                s = socket.create_connection(("127.0.0.1", srv.port), 5)
                s.sendall(PREFACE)
                socks.append(s)
            time.sleep(0.5)
            for s in socks:
                s.close()
            with grpc.insecure_channel(srv.addr) as ch:
                u = ch.unary_unary("/test.Echo/Unary")
                self.assertEqual(u(b"back", timeout=TIMEOUT), b"back")
        finally:
            rc, err = srv.stop()
        self.assertEqual(rc, 0, err)
        self.assertIn("pausing", err)
        self.assertLess(err.count("pausing"), 100)  # no busy loop


class SmallMaxTests(unittest.TestCase):
    def test_resource_exhausted(self):
        srv = Server("-m", str(1024 * 1024))
        try:
            with grpc.insecure_channel(srv.addr) as ch:
                u = ch.unary_unary("/test.Echo/Unary")
                big = b"q" * (3 * 1024 * 1024)
                with self.assertRaises(grpc.RpcError) as cm:
                    u(big, timeout=TIMEOUT)
                self.assertEqual(cm.exception.code(),
                                 grpc.StatusCode.RESOURCE_EXHAUSTED)
                self.assertEqual(
                    cm.exception.details(),
                    "grpc: received message larger than max "
                    "(3145728 vs. 1048576)")
                # exactly max is fine; the connection is still usable
                ok = b"k" * (1024 * 1024)
                self.assertEqual(u(ok, timeout=TIMEOUT), ok)
                s = ch.stream_stream("/test.Echo/Stream")
                with self.assertRaises(grpc.RpcError) as cm:
                    list(s(iter([b"a", big]), timeout=TIMEOUT))
                self.assertEqual(cm.exception.code(),
                                 grpc.StatusCode.RESOURCE_EXHAUSTED)
        finally:
            rc, err = srv.stop()
        self.assertEqual(rc, 0, err)


class Bench(unittest.TestCase):
    def test_unary_rate(self):
        srv = Server()
        try:
            with grpc.insecure_channel(srv.addr) as ch:
                u = ch.unary_unary("/test.Echo/Unary")
                u(b"warm", timeout=TIMEOUT)
                n, t0 = 0, time.monotonic()
                while time.monotonic() - t0 < 2.0:
                    u(b"0123456789abcdef", timeout=TIMEOUT)
                    n += 1
                seq = n / (time.monotonic() - t0)
                n, t0 = 0, time.monotonic()
                while time.monotonic() - t0 < 2.0:
                    fs = [u.future(b"0123456789abcdef", timeout=TIMEOUT)
                          for _ in range(100)]
                    for f in fs:
                        f.result()
                    n += 100
                par = n / (time.monotonic() - t0)
                sys.stderr.write("\nBENCH unary echo: %.0f req/s sequential,"
                                 " %.0f req/s with 100 in flight\n"
                                 % (seq, par))
        finally:
            rc, err = srv.stop()
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        SERVER = sys.argv.pop(1)
    if not SERVER:
        sys.exit("usage: test_echo.py PATH/TO/echo_server [unittest args]")
    unittest.main()
