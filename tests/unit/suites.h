/* Every unit-test suite, one per module (tests/unit/check_<module>.c). */
#ifndef CAIRN_TESTS_UNIT_SUITES_H
#define CAIRN_TESTS_UNIT_SUITES_H

#include <check.h>

#define CAIRN_SUITES(X)                                                        \
	X(bio) X(wal) X(raft) X(keyindex) X(engine) X(mvcc) X(proto)           \
		X(grpc) X(config) X(apply) X(rocksdb) X(bench) X(bolt)         \
		X(watch) X(lease) X(peer) X(members) X(raftsim) X(server)

#define CAIRN_DECLARE_SUITE(name) Suite *name##_suite(void);
CAIRN_SUITES(CAIRN_DECLARE_SUITE)
#undef CAIRN_DECLARE_SUITE

#endif
