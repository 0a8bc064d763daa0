/* lease: etcd's lessor — see lease.h.
 *
 * Invariants:
 *  1. Every lease is in the id table and in the expiry heap (heap_idx is
 *     its slot); the heap is ordered by heap_ms.
 *  2. A key is attached to at most one lease: the key table maps it to
 *     its struct lease_key, which sits in that lease's key list.
 *  3. Not primary: every lease's expiry_ms and heap_ms are LEASE_FOREVER.
 *     Primary: expiry_ms is the real expiry; heap_ms == expiry_ms until
 *     lessor_expired hands the lease out, then the retry time.
 *  4. The "lease" bucket holds exactly the leases of the id table once the
 *     engine batch commits (applied operations write the row in the same
 *     batch as their MVCC changes and the applied index).
 *
 * States of the lessor (per member):
 *
 *     non-primary ──lessor_promote──► primary
 *          ▲                             │
 *          └────────lessor_demote────────┘
 *
 * and of a lease: granted ─(renew)─► … ─(expiry, primary)─► handed out
 * by lessor_expired ─(Revoke applied)─► gone; a renew after the expiry
 * finds it "not found" (etcd waits for the revoke and says the same).
 */
#include "core/lease.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/config.h"
#include "core/errors.h"
#include "core/members.h"
#include "core/server.h"
#include "core/util/log.h"
#include "engines/engine.h"
#include "net/peer.h"
#include "net/proto/lease.pb.h"
#include "net/proto/pbutil.h"

#define LEASE_FOREVER INT64_MAX
#define LEASE_TICK_MS 500
#define LEASE_REVOKES_PER_TICK 500 /* etcd: 1000 revokes/s */

struct lease_key {
	struct lease_key *hnext;       /* key table chain */
	struct lease_key *prev, *next; /* the lease's key list */
	struct lease *lease;
	uint64_t hash;
	size_t len;
	uint8_t key[];
};

struct lease {
	int64_t id, ttl, checkpoint;
	int64_t expiry_ms, heap_ms;
	size_t heap_idx;
	struct lease *hnext; /* id table chain */
	struct lease_key *keys;
	size_t n_keys;
};

struct lessor {
	struct lessor_config cfg;
	struct mvcc *mvcc;
	struct engine_handle *eng;
	bool primary;

	struct lease **ids; /* id table, n_id_buckets chains */
	size_t n_id_buckets, n_leases;
	struct lease_key **keys; /* key table */
	size_t n_key_buckets, n_keys;
	struct lease **heap; /* n_leases entries, heap_cap slots */
	size_t heap_cap;

	/* when started inside a server */
	struct server *srv;
	struct event *tick_ev;
	int64_t next_checkpoint_ms;
	void (*close_cb)(void *arg); /* lessor_set_close_cb */
	void *close_arg;
};

/* ---- time, hashing ------------------------------------------------------ */

static int64_t now_ms(const struct lessor *l)
{
	struct timespec ts;

	if (l->cfg.now_ms)
		return l->cfg.now_ms(l->cfg.clock_arg);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static size_t id_slot(const struct lessor *l, int64_t id)
{
	return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ull) >> 20) &
	       (l->n_id_buckets - 1);
}

/* ---- the id table ----------------------------------------------------- */

static struct lease *lease_find(const struct lessor *l, int64_t id)
{
	struct lease *e = l->ids[id_slot(l, id)];

	while (e && e->id != id)
		e = e->hnext;
	return e;
}

static int ids_grow(struct lessor *l)
{
	size_t nb = l->n_id_buckets * 2;
	struct lease **t = calloc(nb, sizeof(*t));
	struct lease **old = l->ids;
	size_t onb = l->n_id_buckets;

	if (!t)
		return -ENOMEM;
	l->ids = t;
	l->n_id_buckets = nb;
	for (size_t i = 0; i < onb; i++)
		while (old[i]) {
			struct lease *e = old[i];
			size_t s = id_slot(l, e->id);

			old[i] = e->hnext;
			e->hnext = t[s];
			t[s] = e;
		}
	free(old);
	return 0;
}

static void ids_remove(struct lessor *l, struct lease *e)
{
	struct lease **p = &l->ids[id_slot(l, e->id)];

	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
}

/* ---- the expiry heap (inv. 1) --------------------------------------- */

static void heap_set(struct lessor *l, size_t i, struct lease *e)
{
	l->heap[i] = e;
	e->heap_idx = i;
}

static void heap_up(struct lessor *l, size_t i)
{
	struct lease *e = l->heap[i];

	while (i > 0 && l->heap[(i - 1) / 2]->heap_ms > e->heap_ms) {
		heap_set(l, i, l->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(l, i, e);
}

static void heap_down(struct lessor *l, size_t i)
{
	struct lease *e = l->heap[i];
	size_t n = l->n_leases;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && l->heap[c + 1]->heap_ms < l->heap[c]->heap_ms)
			c++;
		if (l->heap[c]->heap_ms >= e->heap_ms)
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, e);
}

static void heap_fix(struct lessor *l, struct lease *e)
{
	heap_up(l, e->heap_idx);
	heap_down(l, e->heap_idx);
}

static void heap_remove(struct lessor *l, struct lease *e)
{
	size_t i = e->heap_idx;
	struct lease *last = l->heap[l->n_leases - 1];

	l->n_leases--;
	if (last == e)
		return;
	heap_set(l, i, last);
	heap_fix(l, last);
}

/* Adds e to the id table and the heap; 0 or -ENOMEM (nothing added). */
static int lease_insert(struct lessor *l, struct lease *e)
{
	size_t s;

	if (l->n_leases + 1 > l->n_id_buckets && ids_grow(l) < 0)
		return -ENOMEM;
	if (l->n_leases == l->heap_cap) {
		size_t cap = l->heap_cap ? 2 * l->heap_cap : 64;
		struct lease **h = realloc(l->heap, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		l->heap = h;
		l->heap_cap = cap;
	}
	s = id_slot(l, e->id);
	e->hnext = l->ids[s];
	l->ids[s] = e;
	heap_set(l, l->n_leases++, e);
	heap_up(l, e->heap_idx);
	return 0;
}

/* ---- the key table (inv. 2) ------------------------------------------- */

static struct lease_key **key_slot(const struct lessor *l, const uint8_t *k,
				   size_t n, uint64_t h)
{
	struct lease_key **p = &l->keys[h & (l->n_key_buckets - 1)];

	while (*p && !((*p)->hash == h && (*p)->len == n &&
		       memcmp((*p)->key, k, n) == 0))
		p = &(*p)->hnext;
	return p;
}

static void keys_grow(struct lessor *l)
{
	size_t nb = l->n_key_buckets * 2;
	struct lease_key **t = calloc(nb, sizeof(*t));

	if (!t)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < l->n_key_buckets; i++)
		while (l->keys[i]) {
			struct lease_key *k = l->keys[i];

			l->keys[i] = k->hnext;
			k->hnext = t[k->hash & (nb - 1)];
			t[k->hash & (nb - 1)] = k;
		}
	free(l->keys);
	l->keys = t;
	l->n_key_buckets = nb;
}

static void key_detach(struct lessor *l, const uint8_t *k, size_t n)
{
	struct lease_key **p, *lk;

	if (l->n_keys == 0) /* every change of a key without a lease: no hash */
		return;
	p = key_slot(l, k, n, hash_bytes(k, n));
	lk = *p;
	if (!lk)
		return;
	*p = lk->hnext;
	if (lk->prev)
		lk->prev->next = lk->next;
	else
		lk->lease->keys = lk->next;
	if (lk->next)
		lk->next->prev = lk->prev;
	lk->lease->n_keys--;
	l->n_keys--;
	free(lk);
}

/* Attach key to e (moving it from any other lease). 0 or -ENOMEM. */
static int key_attach(struct lessor *l, struct lease *e, const uint8_t *k,
		      size_t n)
{
	uint64_t h = hash_bytes(k, n);
	struct lease_key **p = key_slot(l, k, n, h), *lk;

	if (*p && (*p)->lease == e)
		return 0;
	if (*p) {
		key_detach(l, k, n);
		p = key_slot(l, k, n, h);
	}
	lk = malloc(sizeof(*lk) + n);
	if (!lk)
		return -ENOMEM;
	memcpy(lk->key, k, n);
	lk->len = n;
	lk->hash = h;
	lk->lease = e;
	lk->hnext = NULL;
	*p = lk;
	lk->prev = NULL;
	lk->next = e->keys;
	if (e->keys)
		e->keys->prev = lk;
	e->keys = lk;
	e->n_keys++;
	if (++l->n_keys > 2 * l->n_key_buckets)
		keys_grow(l);
	return 0;
}

void lessor_on_change(void *arg, int type, const struct mvcc_kv *kv,
		      const struct mvcc_kv *prev)
{
	struct lessor *l = arg;
	struct lease *e;

	(void)prev; /* the key table knows the current lease (inv. 2) */
	if (type != 0 || kv->lease == 0) {
		key_detach(l, kv->key, kv->key_len);
		return;
	}
	e = lease_find(l, kv->lease);
	if (!e) {
		/* apply checked the lease exists; only a foreign store gets
		 * here, and etcd leaves such keys unattached too */
		key_detach(l, kv->key, kv->key_len);
		return;
	}
	if (key_attach(l, e, kv->key, kv->key_len) < 0)
		log_error("lease %llx: out of memory attaching a key; it will "
			  "not be deleted with its lease",
			  (unsigned long long)kv->lease);
}

/* ---- persistence ------------------------------------------------------ */

static void be64(uint8_t *p, int64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
}

static int lease_persist(struct lessor *l, const struct lease *e)
{
	leasepb_Lease pb = {e->id, e->ttl, e->checkpoint};
	uint8_t key[8], val[40];
	size_t len;
	int err;

	be64(key, e->id);
	err = pbu_encode_to(&leasepb_Lease_msg, &pb, val, sizeof(val), &len);
	if (err < 0)
		return err;
	return engine_put(l->eng, LEASE_BUCKET, key, sizeof(key), val, len);
}

static int lease_unpersist(struct lessor *l, int64_t id)
{
	uint8_t key[8];

	be64(key, id);
	return engine_del(l->eng, LEASE_BUCKET, key, sizeof(key));
}

static struct lease *lease_new(int64_t id, int64_t ttl, int64_t checkpoint)
{
	struct lease *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->id = id;
	e->ttl = ttl;
	e->checkpoint = checkpoint;
	e->expiry_ms = LEASE_FOREVER;
	e->heap_ms = LEASE_FOREVER;
	return e;
}

static int load_row(struct lessor *l, struct engine_slice *v)
{
	leasepb_Lease pb = leasepb_Lease_init_zero;
	struct lease *e;

	if (pbu_decode(&leasepb_Lease_msg, &pb, v->p, v->n) < 0 || pb.ID == 0)
		return CAIRN_ECORRUPT;
	if (lease_find(l, pb.ID))
		return 0;
	/* etcd's initAndRecover raises a small TTL the same way */
	if (pb.TTL < l->cfg.min_ttl)
		pb.TTL = l->cfg.min_ttl;
	if (pb.TTL > LEASE_MAX_TTL)
		pb.TTL = LEASE_MAX_TTL;
	e = lease_new(pb.ID, pb.TTL, pb.RemainingTTL);
	if (!e)
		return -ENOMEM;
	if (lease_insert(l, e) < 0) {
		free(e);
		return -ENOMEM;
	}
	return 0;
}

static int load_leases(struct lessor *l)
{
	struct engine_view *v = NULL;
	struct engine_iter *it = NULL;
	struct engine_slice k, val;
	int err;

	if ((err = engine_view_open(l->eng, &v)) < 0)
		return err;
	err = engine_iter_open(l->eng, v, LEASE_BUCKET, NULL, 0, NULL, 0, false,
			       &it);
	if (err < 0)
		goto out;
	while ((err = engine_iter_next(l->eng, it, &k, &val)) > 0)
		if ((err = load_row(l, &val)) < 0)
			break;
	engine_iter_close(l->eng, it);
out:
	engine_view_close(l->eng, v);
	return err;
}

static int reattach(void *arg, const struct mvcc_kv *kv)
{
	struct lessor *l = arg;
	struct lease *e;

	if (kv->lease == 0 || !(e = lease_find(l, kv->lease)))
		return 0;
	return key_attach(l, e, kv->key, kv->key_len) < 0 ? 1 : 0;
}

int lessor_open(const struct lessor_config *cfg, struct mvcc *m,
		struct engine_handle *h, struct lessor **out)
{
	struct lessor *l = calloc(1, sizeof(*l));
	static const uint8_t all[1] = {0};
	int err = -ENOMEM;

	if (!l)
		return -ENOMEM;
	l->cfg = *cfg;
	l->mvcc = m;
	l->eng = h;
	l->n_id_buckets = 64;
	l->n_key_buckets = 256;
	l->ids = calloc(l->n_id_buckets, sizeof(*l->ids));
	l->keys = calloc(l->n_key_buckets, sizeof(*l->keys));
	if (!l->ids || !l->keys)
		goto fail;
	if ((err = engine_bucket_create(h, LEASE_BUCKET)) < 0)
		goto fail;
	if ((err = load_leases(l)) < 0)
		goto fail;
	/* every key >= "\0": the whole store */
	if ((err = mvcc_foreach(m, all, 1, all, 1, reattach, l)) < 0)
		goto fail;
	*out = l;
	return 0;
fail:
	lessor_close(l);
	return err;
}

/* Forget every lease and key attachment (the tables stay allocated). */
static void lessor_clear(struct lessor *l)
{
	for (size_t i = 0; l->keys && i < l->n_key_buckets; i++)
		while (l->keys[i]) {
			struct lease_key *k = l->keys[i];

			l->keys[i] = k->hnext;
			free(k);
		}
	for (size_t i = 0; i < l->n_leases; i++)
		free(l->heap[i]);
	if (l->ids)
		memset(l->ids, 0, l->n_id_buckets * sizeof(*l->ids));
	l->n_leases = 0;
	l->n_keys = 0;
}

void lessor_close(struct lessor *l)
{
	if (!l)
		return;
	if (l->tick_ev)
		event_free(l->tick_ev);
	lessor_clear(l);
	free(l->heap);
	free(l->ids);
	free(l->keys);
	free(l);
}

int lessor_reload(struct lessor *l, struct mvcc *m, struct engine_handle *h)
{
	static const uint8_t all[1] = {0};
	bool primary = l->primary;
	int err;

	lessor_clear(l);
	l->primary = false; /* loaded leases live forever (invariant 3) */
	l->mvcc = m;
	l->eng = h;
	if ((err = engine_bucket_create(h, LEASE_BUCKET)) < 0 ||
	    (err = load_leases(l)) < 0 ||
	    (err = mvcc_foreach(m, all, 1, all, 1, reattach, l)) < 0)
		return err;
	if (primary)
		lessor_promote(l, 0);
	return 0;
}

int64_t lease_min_ttl(uint64_t election_ms, uint64_t heartbeat_ms)
{
	uint64_t ticks, ms;

	if (heartbeat_ms == 0)
		return 1;
	ticks = election_ms / heartbeat_ms;
	ms = (3 * ticks) / 2 * heartbeat_ms; /* etcd's integer arithmetic */
	return (int64_t)((ms + 999) / 1000);
}

/* ---- applied operations ----------------------------------------------- */

/* The seconds a (re)started lease has: its checkpointed remaining TTL
 * if it has one (bounded: a checkpoint comes from a raft entry), else its
 * TTL (<= LEASE_MAX_TTL, so the milliseconds never overflow). */
static int64_t lease_secs(const struct lease *e)
{
	if (e->checkpoint > 0)
		return e->checkpoint < e->ttl ? e->checkpoint : e->ttl;
	return e->ttl;
}

/* etcd's refresh(extend): from now, the checkpointed remaining TTL if
 * there is one, else the whole TTL. */
static void lease_refresh(struct lessor *l, struct lease *e, int64_t extend)
{
	e->expiry_ms = now_ms(l) + extend + lease_secs(e) * 1000;
	e->heap_ms = e->expiry_ms;
	heap_fix(l, e);
}

int lessor_grant(struct lessor *l, int64_t id, int64_t ttl, int64_t *granted)
{
	struct lease *e;
	int err;

	if (id == 0)
		return CAIRN_ELEASE_NOT_FOUND;
	if (ttl > LEASE_MAX_TTL)
		return CAIRN_ELEASE_TTL_TOO_LARGE;
	if (lease_find(l, id))
		return CAIRN_ELEASE_EXIST;
	if (ttl < l->cfg.min_ttl)
		ttl = l->cfg.min_ttl;
	if (!(e = lease_new(id, ttl, 0)))
		return -ENOMEM;
	if ((err = lease_insert(l, e)) < 0) {
		free(e);
		return err;
	}
	if (l->primary)
		lease_refresh(l, e, 0);
	if (granted)
		*granted = ttl;
	return lease_persist(l, e);
}

static int cmp_key_ptr(const void *a, const void *b)
{
	const struct lease_key *x = *(const struct lease_key *const *)a;
	const struct lease_key *y = *(const struct lease_key *const *)b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->key, y->key, n);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Delete the lease's keys in one txn, in byte order so every member
 * assigns the same sub-revisions. */
static int delete_keys(struct lessor *l, struct lease *e)
{
	struct lease_key **v;
	size_t n = 0;
	int err = 0;

	if (e->n_keys == 0)
		return 0;
	v = malloc(e->n_keys * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (struct lease_key *k = e->keys; k; k = k->next)
		v[n++] = k;
	qsort(v, n, sizeof(*v), cmp_key_ptr);
	if ((err = mvcc_txn_begin(l->mvcc)) < 0)
		goto out;
	for (size_t i = 0; i < n && err == 0; i++)
		err = mvcc_txn_delete_range(l->mvcc, v[i]->key, v[i]->len, NULL,
					    0, NULL, NULL);
	/* the change events detach the keys (v's entries are freed then) */
	mvcc_txn_end(l->mvcc);
out:
	free(v);
	return err;
}

int lessor_revoke(struct lessor *l, int64_t id)
{
	struct lease *e = lease_find(l, id);
	int err;

	if (!e)
		return CAIRN_ELEASE_NOT_FOUND;
	if ((err = delete_keys(l, e)) < 0)
		return err;
	/* without an observer wired, the keys are still attached */
	while (e->keys)
		key_detach(l, e->keys->key, e->keys->len);
	ids_remove(l, e);
	heap_remove(l, e);
	free(e);
	return lease_unpersist(l, id);
}

int lessor_checkpoint(struct lessor *l, int64_t id, int64_t remaining_ttl)
{
	struct lease *e = lease_find(l, id);

	if (!e)
		return 0;
	e->checkpoint = remaining_ttl;
	return lease_persist(l, e);
}

bool lessor_exists(void *arg, int64_t id)
{
	return lease_find(arg, id) != NULL;
}

static void encode_resp(const pb_msgdesc_t *d, const void *msg, int err,
			bool want, struct apply_out *out)
{
	out->err = err;
	if (err == 0 && want)
		out->err = pbu_encode_alloc(d, msg, &out->buf, &out->len);
}

static void apply_grant(struct lessor *l, struct apply_ctx *a,
			const etcdserverpb_LeaseGrantRequest *r, bool want,
			struct apply_out *out)
{
	etcdserverpb_LeaseGrantResponse resp = {0};
	int err;

	lessor_sync_leader(l);
	err = lessor_grant(l, r->ID, r->TTL, &resp.TTL);
	resp.has_header = true;
	resp.header = apply_header(a);
	resp.ID = r->ID;
	encode_resp(&etcdserverpb_LeaseGrantResponse_msg, &resp, err, want,
		    out);
}

static void apply_revoke(struct lessor *l, struct apply_ctx *a,
			 const etcdserverpb_LeaseRevokeRequest *r, bool want,
			 struct apply_out *out)
{
	etcdserverpb_LeaseRevokeResponse resp = {0};
	int err = lessor_revoke(l, r->ID);

	resp.has_header = true;
	resp.header = apply_header(a);
	encode_resp(&etcdserverpb_LeaseRevokeResponse_msg, &resp, err, want,
		    out);
}

static void apply_checkpoint(struct lessor *l, struct apply_ctx *a,
			     const etcdserverpb_LeaseCheckpointRequest *r,
			     bool want, struct apply_out *out)
{
	etcdserverpb_LeaseCheckpointResponse resp = {0};
	int err = 0;

	for (pb_size_t i = 0; i < r->checkpoints_count && err == 0; i++)
		err = lessor_checkpoint(l, r->checkpoints[i].ID,
					r->checkpoints[i].remaining_TTL);
	resp.has_header = true;
	resp.header = apply_header(a);
	encode_resp(&etcdserverpb_LeaseCheckpointResponse_msg, &resp, err, want,
		    out);
}

bool lessor_apply(void *arg, struct apply_ctx *a,
		  const etcdserverpb_InternalRaftRequest *req, bool want_resp,
		  struct apply_out *out)
{
	struct lessor *l = arg;

	if (req->has_lease_grant)
		apply_grant(l, a, &req->lease_grant, want_resp, out);
	else if (req->has_lease_revoke)
		apply_revoke(l, a, &req->lease_revoke, want_resp, out);
	else if (req->has_lease_checkpoint)
		apply_checkpoint(l, a, &req->lease_checkpoint, want_resp, out);
	else
		return false;
	return true;
}

/* ---- leader-local operations ------------------------------------------ */

void lessor_promote(struct lessor *l, int64_t extend_ms)
{
	if (l->primary)
		return;
	l->primary = true;
	for (size_t i = 0; i < l->n_leases; i++) {
		struct lease *e = l->heap[i];

		e->expiry_ms = now_ms(l) + extend_ms + lease_secs(e) * 1000;
		e->heap_ms = e->expiry_ms;
	}
	for (size_t i = l->n_leases / 2; i-- > 0;)
		heap_down(l, i);
}

void lessor_demote(struct lessor *l)
{
	l->primary = false;
	for (size_t i = 0; i < l->n_leases; i++) {
		l->heap[i]->expiry_ms = LEASE_FOREVER;
		l->heap[i]->heap_ms = LEASE_FOREVER;
	}
}

bool lessor_is_primary(const struct lessor *l)
{
	return l->primary;
}

int lessor_renew(struct lessor *l, int64_t id, int64_t *ttl,
		 bool *had_checkpoint)
{
	struct lease *e;

	if (had_checkpoint)
		*had_checkpoint = false;
	if (!l->primary)
		return CAIRN_ENOT_LEADER;
	e = lease_find(l, id);
	if (!e || e->expiry_ms <= now_ms(l))
		return CAIRN_ELEASE_NOT_FOUND;
	if (e->checkpoint > 0) {
		e->checkpoint = 0;
		if (had_checkpoint)
			*had_checkpoint = true;
	}
	lease_refresh(l, e, 0);
	*ttl = e->ttl;
	return 0;
}

size_t lessor_expired(struct lessor *l, int64_t *ids, size_t max)
{
	int64_t now = now_ms(l);
	size_t n = 0;

	if (!l->primary)
		return 0;
	while (n < max && l->n_leases > 0 && l->heap[0]->heap_ms <= now) {
		struct lease *e = l->heap[0];

		ids[n++] = e->id;
		e->heap_ms = now + LEASE_RETRY_MS;
		heap_down(l, 0);
	}
	return n;
}

static int64_t remaining_secs(const struct lease *e, int64_t now)
{
	int64_t ms = e->expiry_ms - now;

	return ms <= 0 ? 0 : (ms + 999) / 1000;
}

size_t lessor_checkpoints(struct lessor *l, etcdserverpb_LeaseCheckpoint *cps,
			  size_t max)
{
	int64_t now = now_ms(l);
	size_t n = 0;

	if (!l->primary)
		return 0;
	for (size_t i = 0; i < l->n_leases && n < max; i++) {
		struct lease *e = l->heap[i];
		int64_t r = remaining_secs(e, now);

		/* a full TTL needs no checkpoint; an expired lease gets
		 * its revoke instead */
		if (r <= 0 || r >= e->ttl || r == e->checkpoint)
			continue;
		cps[n].ID = e->id;
		cps[n].remaining_TTL = r;
		n++;
	}
	return n;
}

int lessor_persist_remaining(struct lessor *l)
{
	int64_t now = now_ms(l);
	int err = 0;

	if (!l->primary)
		return 0;
	for (size_t i = 0; i < l->n_leases && err == 0; i++) {
		struct lease *e = l->heap[i];
		int64_t r = remaining_secs(e, now);

		if (r <= 0 || r >= e->ttl || r == e->checkpoint)
			continue;
		e->checkpoint = r;
		err = lease_persist(l, e);
	}
	return err;
}

/* ---- queries ------------------------------------------------------------ */

int lessor_lookup(const struct lessor *l, int64_t id, struct lease_info *out)
{
	const struct lease *e = lease_find(l, id);

	if (!e)
		return CAIRN_ELEASE_NOT_FOUND;
	out->id = e->id;
	out->ttl = e->ttl;
	out->checkpoint = e->checkpoint;
	out->n_keys = e->n_keys;
	if (e->expiry_ms == LEASE_FOREVER) {
		out->remaining = lease_secs(e);
	} else {
		int64_t ms = e->expiry_ms - now_ms(l);

		out->remaining = ms > 0 ? ms / 1000 : 0;
	}
	return 0;
}

int lessor_foreach_key(const struct lessor *l, int64_t id,
		       int (*fn)(void *arg, const uint8_t *key, size_t len),
		       void *arg)
{
	const struct lease *e = lease_find(l, id);

	if (!e)
		return CAIRN_ELEASE_NOT_FOUND;
	for (const struct lease_key *k = e->keys; k; k = k->next) {
		int r = fn(arg, k->key, k->len);

		if (r)
			return r;
	}
	return 0;
}

static int cmp_lease_expiry(const void *a, const void *b)
{
	const struct lease *x = *(const struct lease *const *)a;
	const struct lease *y = *(const struct lease *const *)b;

	if (x->expiry_ms != y->expiry_ms)
		return x->expiry_ms < y->expiry_ms ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

int lessor_list(const struct lessor *l, int64_t **ids, size_t *n)
{
	struct lease **v = malloc((l->n_leases + 1) * sizeof(*v));
	int64_t *out = malloc((l->n_leases + 1) * sizeof(*out));

	if (!v || !out) {
		free(v);
		free(out);
		return -ENOMEM;
	}
	memcpy(v, l->heap, l->n_leases * sizeof(*v));
	qsort(v, l->n_leases, sizeof(*v), cmp_lease_expiry);
	for (size_t i = 0; i < l->n_leases; i++)
		out[i] = v[i]->id;
	free(v);
	*ids = out;
	*n = l->n_leases;
	return 0;
}

size_t lessor_count(const struct lessor *l)
{
	return l->n_leases;
}

static int check_fail(const char *what)
{
	log_error("lessor invariant broken: %s", what);
	return CAIRN_ECORRUPT;
}

static int check_lease(const struct lessor *l, const struct lease *e, size_t i,
		       size_t *keys)
{
	size_t n = 0;

	if (e->heap_idx != i || lease_find(l, e->id) != e)
		return check_fail("1: lease not in its heap slot or id table");
	if (i > 0 && l->heap[(i - 1) / 2]->heap_ms > e->heap_ms)
		return check_fail("1: heap order");
	if (!l->primary &&
	    (e->expiry_ms != LEASE_FOREVER || e->heap_ms != LEASE_FOREVER))
		return check_fail("3: a non-primary tracks an expiry");
	for (const struct lease_key *k = e->keys; k; k = k->next, n++)
		if (k->lease != e ||
		    *key_slot(l, k->key, k->len, k->hash) != k ||
		    (k->next && k->next->prev != k))
			return check_fail("2: key list and key table differ");
	if (n != e->n_keys)
		return check_fail("2: key count");
	*keys += n;
	return 0;
}

int lessor_check(const struct lessor *l)
{
	size_t keys = 0, ids = 0;
	int err;

	for (size_t i = 0; i < l->n_leases; i++)
		if ((err = check_lease(l, l->heap[i], i, &keys)) < 0)
			return err;
	for (size_t b = 0; b < l->n_id_buckets; b++)
		for (const struct lease *e = l->ids[b]; e; e = e->hnext)
			ids++;
	if (ids != l->n_leases)
		return check_fail("1: id table and heap differ");
	if (keys != l->n_keys)
		return check_fail("2: keys in the table but in no lease");
	return 0;
}

/* ---- running inside a server ------------------------------------------ */

static void discard_out(void *arg, struct apply_out *out)
{
	(void)arg;
	free(out->buf);
}

static void propose_msg(struct lessor *l, enum server_req kind,
			const pb_msgdesc_t *d, const void *msg)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int err = pbu_encode_alloc(d, msg, &buf, &len);

	if (err == 0)
		err = server_propose(l->srv, kind, buf, len, discard_out, NULL);
	free(buf);
	/* a lost expiry revoke is retried after LEASE_RETRY_MS; a lost
	 * checkpoint only means a longer TTL after a crash */
	if (err < 0 && err != CAIRN_ESTOPPED)
		log_debug("lease proposal (kind %d) failed: %s", (int)kind,
			  cairn_strerror(err));
}

struct server *lessor_server(const struct lessor *l)
{
	return l->srv;
}

void lessor_sync_leader(struct lessor *l)
{
	bool leader;

	if (!l->srv)
		return;
	leader = server_is_leader(l->srv);
	if (leader && !l->primary) {
		/* etcd extends every lease by an election timeout when a
		 * leader takes over, so clients of the old one have time to
		 * reach it; a lone member has no one to take over from */
		const struct members *ms = server_members(l->srv);
		int64_t extend =
			ms && ms->n > 1
				? (int64_t)server_config(l->srv)->election_ms
				: 0;

		lessor_promote(l, extend);
		l->next_checkpoint_ms = now_ms(l) + LEASE_CHECKPOINT_MS;
	} else if (!leader && l->primary) {
		lessor_demote(l);
	}
}

static void propose_checkpoints(struct lessor *l,
				etcdserverpb_LeaseCheckpoint *cps, size_t n)
{
	etcdserverpb_LeaseCheckpointRequest req = {0};

	req.checkpoints_count = (pb_size_t)n;
	req.checkpoints = cps;
	propose_msg(l, SERVER_REQ_LEASE_CHECKPOINT,
		    &etcdserverpb_LeaseCheckpointRequest_msg, &req);
}

int lessor_keepalive(struct lessor *l, int64_t id, int64_t *ttl)
{
	bool cleared = false;
	int err;

	lessor_sync_leader(l);
	err = lessor_renew(l, id, ttl, &cleared);
	if (err == 0 && cleared && l->srv) {
		etcdserverpb_LeaseCheckpoint cp = {id, 0};

		propose_checkpoints(l, &cp, 1);
	}
	return err;
}

static void checkpoint_all(struct lessor *l)
{
	etcdserverpb_LeaseCheckpoint *cps;
	size_t n;

	cps = malloc(LEASE_CHECKPOINT_BATCH * sizeof(*cps));
	if (!cps)
		return;
	/* one batch per round; the rest waits for the next interval */
	n = lessor_checkpoints(l, cps, LEASE_CHECKPOINT_BATCH);
	if (n > 0)
		propose_checkpoints(l, cps, n);
	free(cps);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lessor *l = arg;
	int64_t ids[LEASE_REVOKES_PER_TICK];
	size_t n;

	(void)fd;
	(void)what;
	lessor_sync_leader(l);
	if (!l->primary)
		return;
	/* expiry is the leader's decision, carried out through raft so
	 * every member deletes the same keys at the same revision */
	n = lessor_expired(l, ids, LEASE_REVOKES_PER_TICK);
	for (size_t i = 0; i < n; i++) {
		etcdserverpb_LeaseRevokeRequest r = {ids[i]};

		propose_msg(l, SERVER_REQ_LEASE_REVOKE,
			    &etcdserverpb_LeaseRevokeRequest_msg, &r);
	}
	if (now_ms(l) >= l->next_checkpoint_ms) {
		l->next_checkpoint_ms = now_ms(l) + LEASE_CHECKPOINT_MS;
		checkpoint_all(l);
	}
}

/* server_on_leader_change hook: only the leader's lessor is primary. */
static void on_leader_change(void *arg, bool leader)
{
	struct lessor *l = arg;

	(void)leader;
	lessor_sync_leader(l);
}

/* server_on_restore hook: the lease bucket and MVCC came from the
 * leader's snapshot. */
static void on_restore(void *arg)
{
	struct lessor *l = arg;
	int err;

	err = lessor_reload(l, server_mvcc(l->srv), server_engine(l->srv));
	if (err < 0)
		log_error("lessor: reloading the leases of a snapshot: %s",
			  cairn_strerror(err));
	else
		log_info("lessor: %zu leases, %zu attached keys after a "
			 "snapshot",
			 l->n_leases, l->n_keys);
	lessor_sync_leader(l);
}

static void on_server_close(void *arg)
{
	struct lessor *l = arg;
	struct apply_ctx *a = server_apply_ctx(l->srv);
	struct peer_transport *t = server_peers(l->srv);

	if (l->close_cb)
		l->close_cb(l->close_arg);
	/* clean shutdown: keep what is left of each TTL (written into the
	 * batch the server commits with sync right after the hooks) */
	if (lessor_persist_remaining(l) < 0)
		log_warn("cannot save the remaining lease TTLs");
	a->lease_exists = NULL;
	a->lease_arg = NULL;
	a->ext = NULL;
	a->ext_arg = NULL;
	if (t) { /* net/leaseservice.c's handlers use l */
		peer_set_request_handler(t, PEER_REQ_LEASE, NULL, NULL);
		peer_set_request_handler(t, PEER_REQ_LEASE_TTL, NULL, NULL);
	}
	/* The hooks cannot be removed, but none runs again (server_close's
	 * order, core/server.c): leader-change hooks stop at s->stopping,
	 * the restore hooks went with server_snap_close before the close
	 * hooks, and the change hook fires only from applies, which end
	 * with the last Ready before them. So l goes now (it used to stay
	 * as a shell: a leak report at every shutdown). */
	lessor_close(l);
}

void lessor_set_close_cb(struct lessor *l, void (*fn)(void *arg), void *arg)
{
	l->close_cb = fn;
	l->close_arg = arg;
}

int lessor_start(struct server *srv, struct lessor **out)
{
	const struct config *c = server_config(srv);
	struct lessor_config cfg = {0};
	struct apply_ctx *a = server_apply_ctx(srv);
	struct timeval tv = {0, LEASE_TICK_MS * 1000};
	struct lessor *l = NULL;
	int err;

	cfg.min_ttl = lease_min_ttl(c->election_ms, c->heartbeat_ms);
	err = lessor_open(&cfg, server_mvcc(srv), server_engine(srv), &l);
	if (err < 0)
		return err;
	l->srv = srv;
	l->tick_ev =
		event_new(server_event_base(srv), -1, EV_PERSIST, tick_cb, l);
	if (!l->tick_ev || event_add(l->tick_ev, &tv) < 0) {
		err = -ENOMEM;
		goto fail;
	}
	if ((err = server_on_change(srv, lessor_on_change, l)) < 0)
		goto fail;
	if ((err = server_on_close(srv, on_server_close, l)) < 0) {
		/* the change hook cannot be removed: keep l (leaked) for it */
		event_del(l->tick_ev);
		return err;
	}
	a->lease_exists = lessor_exists;
	a->lease_arg = l;
	a->ext = lessor_apply;
	a->ext_arg = l;
	/* the 500 ms tick follows leadership too; the hooks make it prompt */
	if (server_on_leader_change(srv, on_leader_change, l) < 0)
		log_warn("lessor: no leader-change hook slot; following "
			 "leadership every %d ms",
			 LEASE_TICK_MS);
	if (server_on_restore(srv, on_restore, l) < 0)
		log_error("lessor: no restore hook slot: leases will be wrong "
			  "after a snapshot from the leader");
	lessor_sync_leader(l);
	log_info("lessor: %zu leases, %zu attached keys, min TTL %llds",
		 l->n_leases, l->n_keys, (long long)cfg.min_ttl);
	*out = l;
	return 0;
fail:
	lessor_close(l);
	return err;
}
