/* peer_codec: raft_msg <-> raftpb.Message (mapping in net/peer_codec.h).
 *
 * Invariants:
 *  1. Decoding allocates nothing per message except growth of c->ents;
 *     entry data and the context point into the input buffer (pbslice).
 *  2. No decoded count exceeds its bound (max_entries, PEER_MAX_CONF_IDS):
 *     the callbacks fail the decode before writing past one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <pb.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "core/util/log.h"
#include "net/peer_codec.h"
#include "net/proto/raft.pb.h"

#define CTX_LEN 8
#define CTX_MAX 64
static const char transfer_ctx[] = "CampaignTransfer"; /* etcd's */
#define TRANSFER_LEN (sizeof(transfer_ctx) - 1)

/* nanopb calls these for the pbslice fields (net/proto/raft.options). */
bool raftpb_Entry_callback(pb_istream_t *is, pb_ostream_t *os,
			   const pb_field_t *field)
{
	return pbslice_field_cb(is, os, field);
}

bool raftpb_Message_callback(pb_istream_t *is, pb_ostream_t *os,
			     const pb_field_t *field)
{
	return pbslice_field_cb(is, os, field);
}

bool raftpb_Snapshot_callback(pb_istream_t *is, pb_ostream_t *os,
			      const pb_field_t *field)
{
	return pbslice_field_cb(is, os, field);
}

static const uint32_t type_to_pb[] = {
	[RAFT_MSG_APP] = raftpb_MessageType_MsgApp,
	[RAFT_MSG_APP_RESP] = raftpb_MessageType_MsgAppResp,
	[RAFT_MSG_VOTE] = raftpb_MessageType_MsgVote,
	[RAFT_MSG_VOTE_RESP] = raftpb_MessageType_MsgVoteResp,
	[RAFT_MSG_PRE_VOTE] = raftpb_MessageType_MsgPreVote,
	[RAFT_MSG_PRE_VOTE_RESP] = raftpb_MessageType_MsgPreVoteResp,
	[RAFT_MSG_HEARTBEAT] = raftpb_MessageType_MsgHeartbeat,
	[RAFT_MSG_HEARTBEAT_RESP] = raftpb_MessageType_MsgHeartbeatResp,
	[RAFT_MSG_PROP] = raftpb_MessageType_MsgProp,
	[RAFT_MSG_READ_INDEX] = raftpb_MessageType_MsgReadIndex,
	[RAFT_MSG_READ_INDEX_RESP] = raftpb_MessageType_MsgReadIndexResp,
	[RAFT_MSG_SNAP] = raftpb_MessageType_MsgSnap,
	[RAFT_MSG_TIMEOUT_NOW] = raftpb_MessageType_MsgTimeoutNow,
};
#define N_TYPES (sizeof(type_to_pb) / sizeof(type_to_pb[0]))

bool peer_codec_type_ok(enum raft_msg_type type)
{
	return (unsigned)type < N_TYPES;
}

static int type_from_pb(uint32_t pb, enum raft_msg_type *out)
{
	for (size_t i = 0; i < N_TYPES; i++) {
		if (type_to_pb[i] == pb) {
			*out = (enum raft_msg_type)i;
			return 0;
		}
	}
	return -ENOTSUP;
}

void peer_codec_free(struct peer_codec *c)
{
	free(c->ents);
	c->ents = NULL;
	c->ents_cap = 0;
}

/* ---- encoding ---------------------------------------------------------- */

static bool entries_encode(pb_ostream_t *os, const pb_field_t *field,
			   void *const *arg)
{
	const struct raft_msg *m = *arg;

	for (size_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		raftpb_Entry pe;

		memset(&pe, 0, sizeof(pe));
		pe.has_Type = pe.has_Term = pe.has_Index = true;
		pe.Type = (raftpb_EntryType)e->type;
		pe.Term = e->term;
		pe.Index = e->index;
		pe.Data.p = e->data;
		pe.Data.n = e->len;
		if (!pb_encode_tag_for_field(os, field) ||
		    !pb_encode_submessage(os, raftpb_Entry_fields, &pe))
			return false;
	}
	return true;
}

struct id_list {
	const uint64_t *ids; /* encode */
	uint64_t *out;	     /* decode: PEER_MAX_CONF_IDS slots */
	size_t n;
	bool over; /* decode: past the bound (nanopb loses the message of
		    * an unpacked field's callback) */
};

/* Unpacked, as gogoproto writes proto2 repeated scalars. */
static bool ids_encode(pb_ostream_t *os, const pb_field_t *field,
		       void *const *arg)
{
	const struct id_list *l = *arg;

	for (size_t i = 0; i < l->n; i++)
		if (!pb_encode_tag_for_field(os, field) ||
		    !pb_encode_varint(os, l->ids[i]))
			return false;
	return true;
}

static int msg_check(const struct raft_msg *m)
{
	if (!peer_codec_type_ok(m->type) || (m->n_entries && !m->entries) ||
	    (m->ctx && m->transfer))
		return -EINVAL;
	if (m->type != RAFT_MSG_SNAP)
		return 0;
	if (m->snap.n_voters > PEER_MAX_CONF_IDS ||
	    m->snap.n_learners > PEER_MAX_CONF_IDS ||
	    (m->snap.n_voters && !m->snap.voters) ||
	    (m->snap.n_learners && !m->snap.learners))
		return -EINVAL;
	return 0;
}

/* Fill pm from m; ctxbuf (CTX_LEN bytes) and the id lists must outlive
 * the encode. */
static void msg_fill(const struct raft_msg *m, uint64_t from,
		     raftpb_Message *pm, uint8_t *ctxbuf, struct id_list *ids)
{
	memset(pm, 0, sizeof(*pm));
	/* gogoproto's non-nullable fields are always on the wire: same here
	 * (except the snapshot, written on MsgSnap only). */
	pm->has_type = pm->has_to = pm->has_from = pm->has_term = true;
	pm->has_logTerm = pm->has_index = pm->has_commit = true;
	pm->has_reject = pm->has_rejectHint = true;
	pm->type = (raftpb_MessageType)type_to_pb[m->type];
	pm->to = m->to;
	pm->from = from;
	pm->term = m->term;
	pm->logTerm = m->log_term;
	pm->index = m->index;
	pm->commit = m->commit;
	pm->reject = m->reject;
	pm->rejectHint = m->reject_hint;
	pm->entries.funcs.encode = entries_encode;
	pm->entries.arg = (void *)m;
	if (m->transfer) {
		pm->context.p = (const uint8_t *)transfer_ctx;
		pm->context.n = TRANSFER_LEN;
	} else if (m->ctx) {
		for (int i = 0; i < CTX_LEN; i++)
			ctxbuf[i] =
				(uint8_t)(m->ctx >> (8 * (CTX_LEN - 1 - i)));
		pm->context.p = ctxbuf;
		pm->context.n = CTX_LEN;
	}
	if (m->type == RAFT_MSG_SNAP) {
		raftpb_SnapshotMetadata *md = &pm->snapshot.metadata;

		pm->has_snapshot = pm->snapshot.has_metadata = true;
		md->has_index = md->has_term = md->has_conf_state = true;
		md->index = m->snap.index;
		md->term = m->snap.term;
		ids[0] = (struct id_list){m->snap.voters, NULL,
					  m->snap.n_voters, false};
		ids[1] = (struct id_list){m->snap.learners, NULL,
					  m->snap.n_learners, false};
		md->conf_state.voters.funcs.encode = ids_encode;
		md->conf_state.voters.arg = &ids[0];
		md->conf_state.learners.funcs.encode = ids_encode;
		md->conf_state.learners.arg = &ids[1];
	}
}

int peer_codec_size(const struct raft_msg *m, uint64_t from, size_t *size)
{
	raftpb_Message pm;
	uint8_t ctxbuf[CTX_LEN];
	struct id_list ids[2];

	if (!m || msg_check(m))
		return -EINVAL;
	msg_fill(m, from, &pm, ctxbuf, ids);
	if (!pb_get_encoded_size(size, raftpb_Message_fields, &pm))
		return -EINVAL;
	return 0;
}

int peer_codec_encode(const struct raft_msg *m, uint64_t from, uint8_t *buf,
		      size_t size)
{
	raftpb_Message pm;
	uint8_t ctxbuf[CTX_LEN];
	struct id_list ids[2];
	pb_ostream_t os = pb_ostream_from_buffer(buf, size);

	if (!m || msg_check(m))
		return -EINVAL;
	msg_fill(m, from, &pm, ctxbuf, ids);
	if (!pb_encode(&os, raftpb_Message_fields, &pm) ||
	    os.bytes_written != size)
		return -EINVAL;
	return 0;
}

/* ---- decoding ---------------------------------------------------------- */

struct dec_ctx {
	struct peer_codec *c;
	size_t n;
};

static bool entries_decode(pb_istream_t *is, const pb_field_t *field,
			   void **arg)
{
	struct dec_ctx *d = *arg;
	struct peer_codec *c = d->c;
	raftpb_Entry pe;
	struct raft_entry *e;

	(void)field;
	if (d->n >= c->max_entries)
		PB_RETURN_ERROR(is, "too many entries");
	if (d->n == c->ents_cap) {
		size_t cap = c->ents_cap ? c->ents_cap * 2 : 64;
		struct raft_entry *v = reallocarray(c->ents, cap, sizeof(*v));

		if (!v)
			PB_RETURN_ERROR(is, "out of memory");
		c->ents = v;
		c->ents_cap = cap;
	}
	memset(&pe, 0, sizeof(pe));
	if (!pb_decode(is, raftpb_Entry_fields, &pe))
		return false;
	e = &c->ents[d->n++];
	e->term = pe.Term;
	e->index = pe.Index;
	e->type = (uint32_t)pe.Type;
	e->data = pe.Data.n ? (uint8_t *)pe.Data.p : NULL;
	e->len = pe.Data.n;
	return true;
}

/* Packed or not: nanopb hands a packed run as one substream. */
static bool ids_decode(pb_istream_t *is, const pb_field_t *field, void **arg)
{
	struct id_list *l = *arg;

	(void)field;
	do {
		uint64_t v;

		if (l->n >= PEER_MAX_CONF_IDS) {
			l->over = true;
			PB_RETURN_ERROR(is, "too many member ids");
		}
		if (!pb_decode_varint(is, &v))
			return false;
		l->out[l->n++] = v;
	} while (is->bytes_left);
	return true;
}

static void ctx_decode(const struct pbslice *s, struct raft_msg *m)
{
	if (s->n == TRANSFER_LEN && !memcmp(s->p, transfer_ctx, s->n)) {
		m->transfer = true;
	} else if (s->n == CTX_LEN) {
		for (int i = 0; i < CTX_LEN; i++)
			m->ctx = m->ctx << 8 | s->p[i];
	}
}

int peer_codec_decode(struct peer_codec *c, const uint8_t *buf, size_t len,
		      struct raft_msg *m)
{
	raftpb_Message pm;
	struct dec_ctx d = {c, 0};
	struct id_list ids[2] = {{NULL, c->voters, 0, false},
				 {NULL, c->learners, 0, false}};
	pb_istream_t is = pbslice_istream(buf, len);
	raftpb_ConfState *cs = &pm.snapshot.metadata.conf_state;

	memset(&pm, 0, sizeof(pm));
	pm.entries.funcs.decode = entries_decode;
	pm.entries.arg = &d;
	cs->voters.funcs.decode = cs->learners.funcs.decode = ids_decode;
	cs->voters.arg = &ids[0];
	cs->learners.arg = &ids[1];
	if (!pb_decode(&is, raftpb_Message_fields, &pm)) {
		log_warn("peer: bad raft message: %s",
			 ids[0].over || ids[1].over ? "too many member ids"
						    : PB_GET_ERROR(&is));
		return -EPROTO;
	}
	if (pm.context.n > CTX_MAX) {
		log_warn("peer: bad raft message: context of %zu bytes",
			 pm.context.n);
		return -EPROTO;
	}
	memset(m, 0, sizeof(*m));
	if (type_from_pb((uint32_t)pm.type, &m->type))
		return -ENOTSUP;
	m->to = pm.to;
	m->from = pm.from;
	m->term = pm.term;
	m->log_term = pm.logTerm;
	m->index = pm.index;
	m->commit = pm.commit;
	m->reject = pm.reject;
	m->reject_hint = pm.rejectHint;
	m->entries = d.n ? c->ents : NULL;
	m->n_entries = d.n;
	ctx_decode(&pm.context, m);
	if (m->type == RAFT_MSG_SNAP) {
		m->snap.index = pm.snapshot.metadata.index;
		m->snap.term = pm.snapshot.metadata.term;
		m->snap.voters = ids[0].n ? c->voters : NULL;
		m->snap.n_voters = ids[0].n;
		m->snap.learners = ids[1].n ? c->learners : NULL;
		m->snap.n_learners = ids[1].n;
	}
	return 0;
}
