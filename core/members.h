/* members: the membership of a cluster as a plain value, with etcd's ids,
 * checks and JSON (etcd 3.4's etcdserver/api/membership).
 *
 * Pure: no I/O, no clock (callers pass the time), no server. The server
 * side (core/server_member.c) keeps one struct members for the applied
 * membership, changes it only by applying committed entries, and stores
 * it in the engine with members_member_json().
 *
 * Ids (etcd's NewMember and RaftCluster.genID):
 *   member id  = first 8 bytes, big-endian, of
 *                SHA-1(sorted peer URLs concatenated + cluster token
 *                      [+ decimal Unix seconds, for a member added later])
 *   cluster id = first 8 bytes of SHA-1(the sorted member ids, each 8
 *                bytes big-endian), for the --initial-cluster members.
 *
 * JSON of one member (etcd's membership.Member, Go field order and
 * omitempty rules), as stored in the "members" bucket under the id in
 * lower-case hex without padding (etcd's types.ID.String()):
 *   {"id":N,"peerURLs":[...],"isLearner":true,"name":"n","clientURLs":[...]}
 *   isLearner, name and clientURLs are left out when false / empty;
 *   peerURLs is null when there is none. The conf-change context of a
 *   promotion is {"id":N,"peerURLs":null,"isPromote":true}.
 *
 * Started: a member is started once it published its name (etcd's
 * IsStarted: name != ""); the strict reconfiguration checks count them.
 *
 * Ownership: every string in a struct member is heap memory owned by it
 * (member_clear frees them); a struct members owns its members.
 */
#ifndef CAIRN_CORE_MEMBERS_H
#define CAIRN_CORE_MEMBERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEMBERS_MAX_LEARNERS 1 /* etcd 3.4's maxLearners */
/* A learner may be promoted once its match index reaches this share of
 * the leader's (etcd's readyPercent). */
#define MEMBERS_READY_PERCENT 90

struct config_peer;

struct member {
	uint64_t id;
	char *name;	  /* never NULL: "" until the member published */
	char **peer_urls; /* sorted */
	size_t n_peer_urls;
	char **client_urls; /* as published, in that order */
	size_t n_client_urls;
	bool is_learner;
};

struct members {
	struct member *v; /* sorted by id */
	size_t n;
	uint64_t *removed; /* ids removed for good, sorted */
	size_t n_removed;
};

/* The kinds of change (raftpb.ConfChangeType numbering). */
enum members_cc {
	MEMBERS_CC_ADD_NODE = 0, /* add a voter, or promote (is_promote) */
	MEMBERS_CC_REMOVE_NODE = 1,
	MEMBERS_CC_UPDATE_NODE = 2, /* new peer URLs */
	MEMBERS_CC_ADD_LEARNER = 3,
};

/* ---- ids ---------------------------------------------------------------- */

/* etcd's member id of peer_urls (any order; sorted here) + token (may be
 * NULL or ""), + the decimal unix_secs when unix_secs is not NULL (a member
 * added at run time: etcd's NewMember(..., &now)). */
uint64_t members_compute_id(const char *const *peer_urls, size_t n,
			    const char *token, const int64_t *unix_secs);

/* etcd's cluster id of the member ids in ms. */
uint64_t members_cluster_id(const struct members *ms);

/* ---- URLs ------------------------------------------------------------- */

/* etcd's types.NewURLs check of peer URLs: at least one; each (trimmed of
 * spaces) with scheme http, https, unix or unixs, an authority with a
 * ":port" part, and no path. 0 or CAIRN_EMEMBER_BAD_URLS. */
int members_check_urls(const char *const *urls, size_t n);

/* Split "scheme://host:port" into host (brackets of an IPv6 literal
 * removed) and port. 0, -EINVAL (no host:port or bad port), -ENAMETOOLONG
 * (host longer than cap - 1). */
int members_url_host_port(const char *url, char *host, size_t cap,
			  uint16_t *port);

/* ---- one member ---------------------------------------------------------- */

/* Fill m with id and copies of peer_urls (trimmed, sorted), no name,
 * no client URLs. 0 or -ENOMEM (m is then empty). */
int member_init(struct member *m, uint64_t id, const char *const *peer_urls,
		size_t n, bool is_learner);
void member_clear(struct member *m);
/* Free the n strings of v, then v (v may be NULL). */
void members_strv_free(char **v, size_t n);
int member_copy(struct member *dst, const struct member *src);
bool member_is_started(const struct member *m);

/* etcd's JSON of m (see the top of this file), NUL-terminated, malloc'd:
 * the caller frees it. NULL on out of memory. */
char *members_member_json(const struct member *m);

/* The conf-change context of promoting id, as etcd writes it. */
char *members_promote_json(uint64_t id);

/* Parse etcd's member JSON (or conf-change context) buf[0..len) into m,
 * with m->id = id: the "id" in the text is ignored (the callers know it
 * from the bucket key or ConfChange.NodeID, and JSON numbers above 2^63
 * do not survive jansson). *is_promote (may be NULL) gets "isPromote".
 * 0, CAIRN_EBAD_REQUEST (not such an object), -ENOMEM. */
int member_from_json(const char *buf, size_t len, uint64_t id, struct member *m,
		     bool *is_promote);

/* ---- the membership ------------------------------------------------------ */

void members_init(struct members *ms);
void members_free(struct members *ms); /* and leaves it empty */
int members_copy(struct members *dst, const struct members *src);

/* The --initial-cluster members (name=url entries; several entries of one
 * name are one member with several URLs), all voters named as there (as
 * etcd's NewMember(name, ...): they count as started), no client URLs
 * yet, and their etcd ids with token.
 * ms must be empty. 0, CAIRN_EMEMBER_BAD_URLS, -ENOMEM. */
int members_from_initial_cluster(struct members *ms,
				 const struct config_peer *peers, size_t n,
				 const char *token);

const struct member *members_find(const struct members *ms, uint64_t id);
/* The member whose peer URL set equals urls (any order), or NULL. */
const struct member *members_find_by_urls(const struct members *ms,
					  const char *const *urls, size_t n);
bool members_is_removed(const struct members *ms, uint64_t id);
size_t members_count_voters(const struct members *ms);

/* Insert a copy of m. 0, -EEXIST, -ENOMEM. */
int members_add(struct members *ms, const struct member *m);
/* Remove id and remember it as removed. 0, -ENOENT, -ENOMEM. */
int members_remove(struct members *ms, uint64_t id);
/* Remember id as removed (members_removed bucket at load). 0, -ENOMEM. */
int members_mark_removed(struct members *ms, uint64_t id);
/* Set name and client URLs (copied). 0, -ENOENT, -ENOMEM. */
int members_set_attrs(struct members *ms, uint64_t id, const char *name,
		      const char *const *client_urls, size_t n);

/* etcd's ValidateConfigurationChange, on the applied membership: the
 * change of `type` to member id, whose context (ADD_*, UPDATE) parsed
 * into ctx (may be NULL for REMOVE). 0, or CAIRN_EMEMBER_NOT_FOUND (id
 * removed before, or absent for remove/update/promote),
 * CAIRN_EMEMBER_EXIST, CAIRN_EPEER_URL_EXIST, CAIRN_EMEMBER_NOT_LEARNER,
 * CAIRN_ETOO_MANY_LEARNERS, CAIRN_EBAD_REQUEST (no context where one is
 * needed, unknown type). */
int members_check_change(const struct members *ms, enum members_cc type,
			 uint64_t id, const struct member *ctx,
			 bool is_promote);

/* Apply a change members_check_change accepted: add ctx (as a learner for
 * ADD_LEARNER), promote id, remove id, or set id's peer URLs to ctx's.
 * 0, -ENOMEM, or the check's error when called without it. */
int members_apply_change(struct members *ms, enum members_cc type, uint64_t id,
			 const struct member *ctx, bool is_promote);

/* etcd's strict reconfiguration checks (--strict-reconfig-check):
 * adding a voter, removing voter id, promoting learner id keeps a
 * quorum of started voters. */
bool members_ready_to_add_voter(const struct members *ms);
bool members_ready_to_remove_voter(const struct members *ms, uint64_t id);
bool members_ready_to_promote(const struct members *ms, uint64_t id);

/* Debug aid: check the invariants listed in members.c. 0, or
 * CAIRN_ECORRUPT. */
int members_check(const struct members *ms);

/* The list format of cairn's own member-to-member messages (join
 * answers, forwarded promotions): a JSON array of member objects whose
 * "id" is a hex string. members_list_json: malloc'd text or NULL (out of
 * memory). members_from_list_json: into an empty ms; 0,
 * CAIRN_EBAD_REQUEST, -ENOMEM. */
char *members_list_json(const struct members *ms);
int members_from_list_json(struct members *ms, const char *buf, size_t len);

#endif
