#!/bin/sh
# Build tests/grpc/echo_server (straight from the sources, no configure
# needed) into a temp dir and run the python transport tests against it.
#   tests/grpc/run.sh [unittest args, e.g. -v or EchoTests.test_stream_echo]
# Env: CC (gcc), SAN=1 builds with -fsanitize=address,undefined.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
cflags="-std=gnu11 -Wall -Wextra -O2 -g -D_GNU_SOURCE -DPB_ENABLE_MALLOC=1"
[ "${SAN:-0}" = 1 ] && cflags="$cflags -O1 -fsanitize=address,undefined"
${CC:-gcc} $cflags -I"$top" -o "$tmp/echo_server" \
	"$top/tests/grpc/echo_server.c" "$top/net/grpc.c" "$top/net/h2conn.c" \
	"$top/net/grpc_wire.c" "$top/core/util/log.c" "$top/core/errors.c" \
	-levent -lnghttp2
/usr/bin/python3 "$top/tests/grpc/test_echo.py" "$tmp/echo_server" "$@"
