/* peer_codec: struct raft_msg <-> raftpb.Message bytes (net/proto/raft.proto),
 * the payload of the peer protocol's MSG frame (net/peer.h). Internal to
 * net/peer.c, separate so it can be tested without sockets.
 *
 * Mapping (etcd's raftpb field numbers):
 *
 *   raft_msg             raftpb.Message
 *   type                 type (1): MsgApp, MsgAppResp, MsgVote, MsgVoteResp,
 *                        MsgPreVote, MsgPreVoteResp, MsgHeartbeat,
 *                        MsgHeartbeatResp, MsgProp, MsgReadIndex,
 *                        MsgReadIndexResp, MsgSnap, MsgTimeoutNow
 *   to, from, term,      2, 3, 4, 5, 6, 8, 10, 11 (always written, as
 *   log_term, index,     gogoproto's non-nullable fields are)
 *   commit, reject,
 *   reject_hint
 *   entries              entries (7), each Entry {Term 2, Index 3, Type 1,
 *                        Data 4}
 *   ctx (!= 0)           context (12): 8 bytes, big-endian
 *   transfer             context (12): "CampaignTransfer" (etcd's
 *                        campaignTransfer), instead of a ctx
 *   snap (SNAP only)     snapshot (9): Snapshot {metadata 2:
 *                        SnapshotMetadata {conf_state 1: ConfState
 *                        {voters 1, learners 2}, index 2, term 3}}; no data
 *
 * Decoding bounds: at most max_entries entries, at most PEER_MAX_CONF_IDS
 * voters and as many learners, a context of at most 64 bytes (one of
 * another length than 8 or 16 is ignored: ctx 0). A type outside the
 * table decodes to -ENOTSUP (the caller ignores it).
 */
#ifndef CAIRN_NET_PEER_CODEC_H
#define CAIRN_NET_PEER_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/raft/raft.h"
#include "net/peer.h" /* PEER_MAX_CONF_IDS */

/* Decoding state: scratch arrays reused from one message to the next.
 * Zero-initialize, set max_entries (> 0); free with peer_codec_free. */
struct peer_codec {
	size_t max_entries;
	struct raft_entry *ents;
	size_t ents_cap;
	uint64_t voters[PEER_MAX_CONF_IDS], learners[PEER_MAX_CONF_IDS];
};

void peer_codec_free(struct peer_codec *c);

/* Is m->type one the codec knows? */
bool peer_codec_type_ok(enum raft_msg_type type);

/* The encoded size of m with `from` as the sender (m->from is ignored)
 * into *size. 0, or -EINVAL (unknown type, entries NULL with n_entries,
 * ctx and transfer both set, snap arrays NULL with counts, more than
 * PEER_MAX_CONF_IDS ids). */
int peer_codec_size(const struct raft_msg *m, uint64_t from, size_t *size);

/* Encode m into buf[0..size) where size is peer_codec_size's answer.
 * 0, or -EINVAL. */
int peer_codec_encode(const struct raft_msg *m, uint64_t from, uint8_t *buf,
		      size_t size);

/* Decode buf[0..len) into *m. m's entries (and their data, which point
 * into buf) and snap arrays live in c and buf: valid until the next decode
 * with c, or until buf changes. 0, -ENOTSUP (a message type not in the
 * table: skip it), -EPROTO (malformed, or past a bound: logged). */
int peer_codec_decode(struct peer_codec *c, const uint8_t *buf, size_t len,
		      struct raft_msg *m);

#endif
