#!/bin/bash
# The python etcd3 client tests (etcd3_tests.py) against a fresh server.
. "$(dirname "$0")/lib.sh"

if ! start_server s1; then
	echo "FAIL py.start: server did not start"
	exit 1
fi
# the python file prints its own PASS/FAIL lines; bound the whole run
CLIENT_TIMEOUT=120 py "$(dirname "$0")/etcd3_tests.py" "$PORT"
rc=$?
case $rc in
0 | 1) ;;
124) echo "FAIL py.timeout: etcd3_tests.py ran over 120 s" ;;
*) echo "FAIL py.run: etcd3_tests.py exit status $rc" ;;
esac
exit $((rc != 0))
