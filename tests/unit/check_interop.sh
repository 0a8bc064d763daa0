#!/bin/sh
# make check: wire compatibility of cairn's protobuf codec with the python
# etcd3 library's generated classes (tests/unit/proto_interop.py), using the
# helper built by make.
set -eu
srcdir=${srcdir:-$(dirname "$0")/../..}
exec /usr/bin/python3 "$srcdir/tests/unit/proto_interop.py" \
	--helper ./tests/unit/proto_interop_helper
