/* linz: a linearizability checker for histories of single-key operations
 * on an etcd keyspace, modelled as one register per key.
 *
 * History file format (text, one operation per line, a token starting
 * with '#' starts a comment to the end of the line, fields separated by
 * blanks; a value is any token without blanks,
 * except the two reserved tokens below):
 *
 *   CLIENT OP KEY ARG1 ARG2 INVOKE COMPLETE STATUS OUTPUT [REVISION]
 *
 *   CLIENT    integer client id (informational: a client's own ops are
 *             ordered by their times like everyone else's)
 *   OP        put | get | cas | delete
 *   KEY       the key
 *   ARG1      put: the value written; cas: the value expected, or "~" for
 *             "the key must not exist" (etcd: version == 0); else "-"
 *   ARG2      cas: the value written when the compare holds; else "-"
 *   INVOKE    invocation time, integer nanoseconds on one monotonic clock
 *   COMPLETE  completion time (same clock), or "-" when STATUS is unknown
 *   STATUS    ok       completed, OUTPUT is what the server answered
 *             fail     definitely not applied (a validation error, or the
 *                      request never left the client); the op is ignored
 *             unknown  timed out or broken connection: may or may not have
 *                      been applied; its completion time is infinite
 *   OUTPUT    get: the value read, or "~" when the key did not exist;
 *             cas: true | false (the compare held or not);
 *             delete: the number of keys deleted (0 or 1) or "-";
 *             put: "-". Ignored unless STATUS is ok.
 *   REVISION  optional: the etcd header revision of the response (ok ops).
 *             Not part of the register model (see below); checked on its
 *             own across all keys: a response that began after another
 *             completed has a revision >= the other's, > if both created a
 *             revision (put, cas true, delete of 1 key), and no two writes
 *             share a revision.
 *
 * Reserved tokens: "~" is "no value" (the key is absent), "-" is "field not
 * used". The initial state of every key is absent.
 *
 * Why a check per key is sound: every operation of the format touches one
 * key, and etcd's keyspace is a map of independent registers for such
 * operations (a put, get, delete or single-key compare-and-set of key k
 * reads and writes only k's value). Linearizability is local (Herlihy &
 * Wing, 1990, Theorem 1): a history is linearizable iff the sub-history of
 * each object is. The global revision counter couples keys, so revisions
 * are not part of the model (they are checked separately, globally, by
 * the cheap order rules above); multi-key txns cannot be written in the
 * format at all.
 *
 * The search is Wing & Gong's with Lowe's improvements (as in porcupine):
 * just-in-time linearization over a list of call/return events, and a
 * cache of (linearized set, state) pairs already explored.
 */
#ifndef CAIRN_TESTS_LINZ_H
#define CAIRN_TESTS_LINZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum linz_kind { LINZ_PUT, LINZ_GET, LINZ_CAS, LINZ_DEL };
enum linz_status { LINZ_OK, LINZ_FAIL, LINZ_UNKNOWN };

#define LINZ_ABSENT 0	   /* value id of "~": the key does not exist */
#define LINZ_NONE (-1)	   /* value id of "-": field not used */
#define LINZ_INF INT64_MAX /* completion time of an unknown op */

struct linz_op {
	int client;
	enum linz_kind kind;
	uint32_t key;	    /* index into linz_history.keys */
	int32_t arg1, arg2; /* value ids (LINZ_ABSENT, LINZ_NONE, > 0) */
	int64_t inv, ret;   /* ret is LINZ_INF when status is unknown */
	enum linz_status status;
	int32_t out; /* get: value id; cas: 0/1; delete: 0/1/-1 */
	int line;    /* line number in the source file */
	int64_t rev; /* REVISION, or -1 when absent or "-" */
};

struct linz_history {
	struct linz_op *ops;
	size_t nops;
	char **keys; /* key names, owned */
	size_t nkeys;
	char **values; /* value names by id (0 is "~"), owned */
	size_t nvalues;
	void *priv; /* interning tables */
};

/* Verdicts of linz_check(); also the exit codes of linz_check(1). */
enum linz_verdict {
	LINZ_LINEARIZABLE = 0,
	LINZ_VIOLATION = 1,
	LINZ_INCONCLUSIVE = 2, /* a key's search ran out of its budget */
};

struct linz_limits {
	uint64_t max_steps; /* search steps per key search (0: 50M) */
	size_t max_memory;  /* bytes of cache per key search (0: 1 GiB) */
	int max_report_ops; /* ops listed in a failing window (0: 40) */
};

/* linz_history_load: parse the history file F (NAME is used in error
 * messages). On success *OUT is a new history owned by the caller (free it
 * with linz_history_free). Errors: -EINVAL on a malformed line (ERR gets
 * "NAME:LINE: why", ERRLEN bytes at most), -ENOMEM, -EIO on a read error.
 * On error *OUT is untouched. */
int linz_history_load(FILE *f, const char *name, struct linz_history **out,
		      char *err, size_t errlen);

/* linz_history_free: free H and everything it owns; NULL is fine. */
void linz_history_free(struct linz_history *h);

/* linz_check: check every key of H. Writes to OUT (may be NULL) one line
 * "OK ..." or, per failing key, "VIOLATION key K: ..." and the shortest
 * failing window the search found (the ops of that window, one a line,
 * with their source line numbers), or "INCONCLUSIVE key K: ..." when a
 * search exceeded LIM, and "VIOLATION revisions: ..." for each broken
 * revision rule (at most 5). LIM may be NULL (defaults). Returns the verdict:
 * VIOLATION if any key fails, else INCONCLUSIVE if any key ran out of
 * budget, else LINEARIZABLE; or -ENOMEM. H is not modified. */
int linz_check(const struct linz_history *h, const struct linz_limits *lim,
	       FILE *out);

#endif
