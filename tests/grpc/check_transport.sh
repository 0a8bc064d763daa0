#!/bin/sh
# make check: the gRPC transport tests (python grpcio against the echo
# server built by make as tests/grpc/echo_server).
set -eu
srcdir=${srcdir:-$(dirname "$0")/../..}
exec /usr/bin/python3 "$srcdir/tests/grpc/test_echo.py" ./tests/grpc/echo_server
