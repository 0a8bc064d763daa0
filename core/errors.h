/* errors: the one table of cairn's error codes.
 *
 * Functions return int: 0 on success, -errno for system errors, or a
 * negative CAIRN_E* code below. cairn_strerror() gives the message a
 * client sees (etcd's exact text where etcd has one, because client
 * libraries match on it) and cairn_grpc_status() the gRPC status code.
 * -errno values map to "etcdserver: <strerror>" with UNKNOWN/INTERNAL.
 */
#ifndef CAIRN_CORE_ERRORS_H
#define CAIRN_CORE_ERRORS_H

/* gRPC status codes (grpc/status.h numbering). */
enum grpc_status {
	GRPC_OK = 0,
	GRPC_CANCELLED = 1,
	GRPC_UNKNOWN = 2,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_DEADLINE_EXCEEDED = 4,
	GRPC_NOT_FOUND = 5,
	GRPC_ALREADY_EXISTS = 6,
	GRPC_PERMISSION_DENIED = 7,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_FAILED_PRECONDITION = 9,
	GRPC_ABORTED = 10,
	GRPC_OUT_OF_RANGE = 11,
	GRPC_UNIMPLEMENTED = 12,
	GRPC_INTERNAL = 13,
	GRPC_UNAVAILABLE = 14,
	GRPC_DATA_LOSS = 15,
	GRPC_UNAUTHENTICATED = 16,
};

/* X(name, grpc status, message). Codes are -1000, -1001, ... */
#define CAIRN_ERROR_TABLE(X)                                                   \
	X(EMPTY_KEY, GRPC_INVALID_ARGUMENT, "etcdserver: key is not provided") \
	X(KEY_NOT_FOUND, GRPC_INVALID_ARGUMENT, "etcdserver: key not found")   \
	X(VALUE_PROVIDED, GRPC_INVALID_ARGUMENT,                               \
	  "etcdserver: value is provided")                                     \
	X(LEASE_PROVIDED, GRPC_INVALID_ARGUMENT,                               \
	  "etcdserver: lease is provided")                                     \
	X(TOO_MANY_OPS, GRPC_INVALID_ARGUMENT,                                 \
	  "etcdserver: too many operations in txn request")                    \
	X(DUPLICATE_KEY, GRPC_INVALID_ARGUMENT,                                \
	  "etcdserver: duplicate key given in txn request")                    \
	X(COMPACTED, GRPC_OUT_OF_RANGE,                                        \
	  "etcdserver: mvcc: required revision has been compacted")            \
	X(FUTURE_REV, GRPC_OUT_OF_RANGE,                                       \
	  "etcdserver: mvcc: required revision is a future revision")          \
	X(NO_SPACE, GRPC_RESOURCE_EXHAUSTED,                                   \
	  "etcdserver: mvcc: database space exceeded")                         \
	X(LEASE_NOT_FOUND, GRPC_NOT_FOUND,                                     \
	  "etcdserver: requested lease not found")                             \
	X(LEASE_EXIST, GRPC_FAILED_PRECONDITION,                               \
	  "etcdserver: lease already exists")                                  \
	X(LEASE_TTL_TOO_LARGE, GRPC_OUT_OF_RANGE,                              \
	  "etcdserver: too large lease TTL")                                   \
	X(REQUEST_TOO_LARGE, GRPC_INVALID_ARGUMENT,                            \
	  "etcdserver: request is too large")                                  \
	X(NO_LEADER, GRPC_UNAVAILABLE, "etcdserver: no leader")                \
	X(NOT_LEADER, GRPC_FAILED_PRECONDITION, "etcdserver: not leader")      \
	X(LEADER_CHANGED, GRPC_UNAVAILABLE, "etcdserver: leader changed")      \
	X(STOPPED, GRPC_UNAVAILABLE, "etcdserver: server stopped")             \
	X(TIMEOUT, GRPC_UNAVAILABLE, "etcdserver: request timed out")          \
	X(PERMISSION_DENIED, GRPC_PERMISSION_DENIED,                           \
	  "etcdserver: permission denied")                                     \
	X(INVALID_AUTH_TOKEN, GRPC_UNAUTHENTICATED,                            \
	  "etcdserver: invalid auth token")                                    \
	X(MEMBER_NOT_FOUND, GRPC_NOT_FOUND, "etcdserver: member not found")    \
	X(CORRUPT, GRPC_DATA_LOSS, "etcdserver: corrupt cluster")              \
	X(INVALID_SORT, GRPC_INVALID_ARGUMENT,                                 \
	  "etcdserver: invalid sort option")                                   \
	X(BAD_REQUEST, GRPC_INVALID_ARGUMENT, "etcdserver: malformed request") \
	X(UNIMPLEMENTED, GRPC_UNIMPLEMENTED, "unknown method")                 \
	X(MEMBER_EXIST, GRPC_FAILED_PRECONDITION,                              \
	  "etcdserver: member ID already exist")                               \
	X(PEER_URL_EXIST, GRPC_FAILED_PRECONDITION,                            \
	  "etcdserver: Peer URLs already exists")                              \
	X(MEMBER_NOT_ENOUGH_STARTED, GRPC_FAILED_PRECONDITION,                 \
	  "etcdserver: re-configuration failed due to not enough started "     \
	  "members")                                                           \
	X(MEMBER_BAD_URLS, GRPC_INVALID_ARGUMENT,                              \
	  "etcdserver: given member URLs are invalid")                         \
	X(MEMBER_NOT_LEARNER, GRPC_FAILED_PRECONDITION,                        \
	  "etcdserver: can only promote a learner member")                     \
	X(LEARNER_NOT_READY, GRPC_FAILED_PRECONDITION,                         \
	  "etcdserver: can only promote a learner member which is in sync "    \
	  "with leader")                                                       \
	X(TOO_MANY_LEARNERS, GRPC_FAILED_PRECONDITION,                         \
	  "etcdserver: too many learner members in cluster")                   \
	X(NOT_SUPPORTED_FOR_LEARNER, GRPC_UNAVAILABLE,                         \
	  "etcdserver: rpc not supported for learner")                         \
	X(BAD_LEADER_TRANSFEREE, GRPC_FAILED_PRECONDITION,                     \
	  "etcdserver: bad leader transferee")                                 \
	X(TIMEOUT_LEADER_FAIL, GRPC_UNAVAILABLE,                               \
	  "etcdserver: request timed out, possibly due to previous leader "    \
	  "failure")                                                           \
	X(TIMEOUT_CONN_LOST, GRPC_UNAVAILABLE,                                 \
	  "etcdserver: request timed out, possibly due to connection lost")    \
	X(UNHEALTHY, GRPC_UNAVAILABLE, "etcdserver: unhealthy cluster")        \
	X(TOO_MANY_REQUESTS, GRPC_RESOURCE_EXHAUSTED,                          \
	  "etcdserver: too many requests")                                     \
	X(MEMBER_REMOVED, GRPC_UNAVAILABLE,                                    \
	  "etcdserver: the member has been permanently removed from the "      \
	  "cluster")                                                           \
	X(CONF_CHANGE_PENDING, GRPC_FAILED_PRECONDITION,                       \
	  "etcdserver: a membership change is still in progress")              \
	X(LEADER_TRANSFER, GRPC_UNAVAILABLE,                                   \
	  "etcdserver: leadership transfer in progress")                       \
	X(TIMEOUT_LEADER_TRANSFER, GRPC_UNAVAILABLE,                           \
	  "etcdserver: request timed out, leader transfer took too long")

enum cairn_error {
	CAIRN_EBASE = -1000,
#define CAIRN_X_ENUM(name, status, msg) CAIRN_E##name##_PLACEHOLDER,
	CAIRN_ERROR_TABLE(CAIRN_X_ENUM)
#undef CAIRN_X_ENUM
};

/* CAIRN_E<NAME> == -(1000 + position in the table). */
#define CAIRN_X_CODE(name, status, msg)                                        \
	static const int CAIRN_E##name =                                       \
		-1000 - (CAIRN_E##name##_PLACEHOLDER - CAIRN_EBASE - 1);
CAIRN_ERROR_TABLE(CAIRN_X_CODE)
#undef CAIRN_X_CODE

/* Message for err (a negative code or -errno); never NULL, static. */
const char *cairn_strerror(int err);

/* gRPC status for err; GRPC_OK for err >= 0. */
enum grpc_status cairn_grpc_status(int err);

#endif
