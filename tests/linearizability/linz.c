/* linz: per-key linearizability search (Wing & Gong with Lowe's
 * improvements) and the search for a short failing window.
 *
 * The search, on the ops of one key (porcupine's formulation):
 *
 *   events: a call and a return per op with a known outcome, sorted by
 *   time (a call before a return at equal times: ops touching in time are
 *   concurrent). Unknown ops never return: they sit in their own list by
 *   invocation, may linearize anywhere after their call, and "never
 *   applied" is "linearized after everything else".
 *
 *   A search node is (linearized set, state). Its candidates are the calls
 *   before the first return still in the list, plus the unknown ops
 *   invoked by then. States of the loop in search_run():
 *
 *     node --read-only op accepted--> commit to it (greedy) --> node
 *     node --pass 0: next known candidate accepted, pair not cached-->
 *            push, lift (remove its call and return) --> node
 *     node --pass 0 reaches the first return--> pass 1 (unknown ops)
 *     pass 1 --unknown op accepted, useful, pair not cached--> push --> node
 *     pass 1 --exhausted--> backtrack: pop, unlift, resume after the popped
 *            op (popping greedy frames through) --> stack empty: FAIL
 *     node with every known op lifted --> OK
 *
 * Invariants:
 *   1. The event list is sorted by (time, return after call); lift/unlift
 *      happen in stack order, so a node's prev/next are still valid when
 *      it is reinserted.
 *   2. bits/zh always describe exactly the ops on the stack; the cache
 *      holds only (set, state, flags) triples whose subtree was explored
 *      or is being explored, so a triple found there can be skipped (Lowe).
 *   3. Every pruning only skips orders dominated by one that is still
 *      explored (arguments at readonly() and search_run()); brute.py checks
 *      the verdicts against exhaustive enumeration.
 *   4. A failing window is reported only after a search on it failed: the
 *      window is a real witness, whatever the shrinking heuristics did.
 *
 * On a key whose whole-history search fails or runs out of budget,
 * check_key() slides windows of LINZ_SLIDE ops to find one that fails on
 * its own (slide()), then narrows it (shrink()) and prints it (report()).
 *
 * Window semantics (why a failing window proves a violation): a window
 * [S, T] keeps the ops with inv < T and ret >= S. An op spanning a bound
 * (inv < S, or ret > T) may have taken effect outside the window, so a
 * spanning write becomes unknown and a spanning read is dropped; the state
 * at S is unknown, so every possible start state is tried (absent, each
 * value appearing in the window, one "fresh" value standing for all the
 * others). Any linearization of the whole history restricted to the ops
 * placed at or after S is then a linearization of the window.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tests/linearizability/linz.h"

/* A value no op of the window observes (no get returns it, no cas
 * expects it): all such values behave alike, so they are one value. */
#define LINZ_FRESH (-2)
#define DEF_STEPS 50000000ULL
#define DEF_MEMORY (1024UL * 1024 * 1024)
#define DEF_REPORT 40
#define LINZ_SLIDE 256 /* ops per window in slide() */

enum { SEARCH_FAIL = 0, SEARCH_OK = 1, SEARCH_BUDGET = 2 };

/* One op as the search sees it (after the window transform). */
struct sop {
	enum linz_kind kind;
	int known; /* 1: status ok, OUTPUT is checked */
	int32_t arg1, arg2, out;
	int64_t inv, ret;
};

struct node {
	int op;
	int is_call;
	int64_t time;
	struct node *match, *prev, *next;
};

/* The cache of explored (linearized set, state) pairs. Known ops have bit
 * numbers in the order of their returns, unknown ops after them, so a set
 * is mostly a run of ones (ops long done), a short frontier, then the few
 * unknown ops: an entry stores the set without its leading all-ones words.
 *
 * Entry layout in data (uint64 words):
 *   OFFSET  SIZE       DESCRIPTION
 *   0       1          hash of (set, skey)
 *   1       1          skey: state and search flags
 *   2       1          w0 (low 32 bits): leading all-ones words skipped;
 *                      n (high 32 bits): known-op words stored
 *   3       n          known-op words w0 .. w0+n-1 (the rest up to kwords
 *                      are zero)
 *   3+n     uwords     unknown-op words
 */
struct cache {
	uint32_t *slots; /* 0 empty, else entry offset + 1 */
	size_t nslots, used;
	uint64_t *data;
	size_t len, cap; /* in uint64s */
	size_t kwords, uwords;
	size_t max_bytes;
};

/* A search frame: how to undo one linearized op and where to resume. */
struct frame {
	struct node *node; /* the lifted call (known op), or NULL */
	int op;
	int ui;	       /* unknown op: its index in unk */
	int32_t state; /* the state before the op */
	uint8_t pass;
	uint8_t needread; /* the flag before the op */
	uint8_t greedy;	  /* a read-only op committed to (no alternatives) */
	int32_t prev;	  /* the prev before the op */
	int64_t limit;	  /* pass 1: time of the first return */
};

struct search {
	const struct sop *ops;
	int m;
	struct node *nodes; /* 2m + head */
	uint64_t *zob;	    /* a random 64-bit word per op */
	uint64_t *bits;	    /* the linearized set */
	struct cache cache;
	struct frame *stack;
	int *unk; /* unknown ops, by invocation */
	int nunk;
	int *where;	/* build_list scratch */
	int *bitidx;	/* op -> bit number (see struct cache) */
	size_t words;	/* size of bits */
	int *same_next; /* unknown op -> next unknown op (by
			 * invocation) with the same effect, or -1 */
	uint64_t max_steps, steps;
};

/* ---- the model: one register ------------------------------------------ */

/* model_step: 1 if OP may run in state S (next state in *NS), else 0. */
static int model_step(const struct sop *op, int32_t s, int32_t *ns)
{
	switch (op->kind) {
	case LINZ_PUT:
		*ns = op->arg1;
		return 1;
	case LINZ_GET:
		*ns = s;
		return s == op->out;
	case LINZ_CAS:
		if (!op->known) {
			*ns = s == op->arg1 ? op->arg2 : s;
			return 1;
		}
		*ns = op->out ? op->arg2 : s;
		return op->out ? s == op->arg1 : s != op->arg1;
	case LINZ_DEL:
		*ns = LINZ_ABSENT;
		if (!op->known || op->out < 0)
			return 1;
		return (s != LINZ_ABSENT) == op->out;
	}
	return 0;
}

/* ---- cache of (linearized set, state) --------------------------------- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static size_t entry_size(const uint64_t *e)
{
	return 3 + (e[2] >> 32);
}

static int cache_grow(struct cache *c)
{
	size_t ns = c->nslots ? c->nslots * 2 : 4096, off;
	uint32_t *slots;

	if (ns > UINT32_MAX || ns * sizeof(*slots) + c->cap * 8 > c->max_bytes)
		return -E2BIG;
	slots = calloc(ns, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (off = 0; off < c->len;
	     off += entry_size(c->data + off) + c->uwords) {
		size_t j = c->data[off] & (ns - 1);

		while (slots[j])
			j = (j + 1) & (ns - 1);
		slots[j] = (uint32_t)off + 1;
	}
	free(c->slots);
	c->slots = slots;
	c->nslots = ns;
	return 0;
}

/* cache_reset: empty C for sets of KWORDS words of known ops and UWORDS of
 * unknown ops. A large table left by a long key is dropped rather than
 * cleared, so that the many small keys after it do not each pay for it. */
static void cache_reset(struct cache *c, size_t kwords, size_t uwords)
{
	c->len = c->used = 0;
	c->kwords = kwords;
	c->uwords = uwords;
	if (c->nslots > 65536) {
		free(c->slots);
		c->slots = NULL;
		c->nslots = 0;
	} else if (c->slots) {
		memset(c->slots, 0, c->nslots * sizeof(uint32_t));
	}
}

/* cache_add: 1 if (BITS, SKEY) was new (now added), 0 if present;
 * -E2BIG past the memory budget, -ENOMEM. SKEY is the model state and the
 * search's own flags (see search_run). */
static int cache_add(struct cache *c, const uint64_t *bits, uint64_t zh,
		     uint64_t skey)
{
	uint64_t h = mix64(zh ^ (skey * 0x9e3779b97f4a7c15ULL)), hdr;
	size_t w0 = 0, end = c->kwords, n, esz, j;
	uint64_t *e;
	int rc;

	while (w0 < end && bits[w0] == ~0ULL)
		w0++;
	while (end > w0 && !bits[end - 1])
		end--;
	n = end - w0;
	hdr = (uint64_t)w0 | (uint64_t)n << 32;
	esz = 3 + n + c->uwords;
	if ((c->used + 1) * 2 > c->nslots) {
		rc = cache_grow(c);
		if (rc < 0)
			return rc;
	}
	for (j = h & (c->nslots - 1); c->slots[j];
	     j = (j + 1) & (c->nslots - 1)) {
		e = c->data + c->slots[j] - 1;
		if (e[0] == h && e[1] == skey && e[2] == hdr &&
		    !memcmp(e + 3, bits + w0, n * 8) &&
		    !memcmp(e + 3 + n, bits + c->kwords, c->uwords * 8))
			return 0;
	}
	if (c->len + esz > c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 65536;
		uint64_t *nd;

		while (nc < c->len + esz)
			nc *= 2;
		if (nc > UINT32_MAX || nc * 8 + c->nslots * 4 > c->max_bytes)
			return -E2BIG;
		nd = realloc(c->data, nc * 8);
		if (!nd)
			return -ENOMEM;
		c->data = nd;
		c->cap = nc;
	}
	e = c->data + c->len;
	e[0] = h;
	e[1] = skey;
	e[2] = hdr;
	memcpy(e + 3, bits + w0, n * 8);
	memcpy(e + 3 + n, bits + c->kwords, c->uwords * 8);
	c->slots[j] = (uint32_t)c->len + 1;
	c->len += esz;
	c->used++;
	return 1;
}

/* ---- the search -------------------------------------------------------- */

static int event_cmp(const void *a, const void *b)
{
	const struct node *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	if (x->is_call != y->is_call)
		return x->is_call ? -1 : 1;
	return x->op - y->op;
}

static void lift(struct node *c)
{
	struct node *r = c->match;

	c->prev->next = c->next;
	c->next->prev = c->prev;
	r->prev->next = r->next;
	if (r->next)
		r->next->prev = r->prev;
}

static void unlift(struct node *c)
{
	struct node *r = c->match;

	r->prev->next = r;
	if (r->next)
		r->next->prev = r;
	c->prev->next = c;
	c->next->prev = c;
}

/* lin_get, lin_flip: op OP's bit in the linearized set. */
static int lin_get(const struct search *s, int op)
{
	int i = s->bitidx[op];

	return (s->bits[i / 64] >> (i % 64)) & 1;
}

static void lin_flip(struct search *s, int op)
{
	int i = s->bitidx[op];

	s->bits[i / 64] ^= 1ULL << (i % 64);
}

static int unk_cmp(const void *a, const void *b, void *arg)
{
	const struct sop *ops = arg;
	int x = *(const int *)a, y = *(const int *)b;

	if (ops[x].inv != ops[y].inv)
		return ops[x].inv < ops[y].inv ? -1 : 1;
	return x - y;
}

/* effect_cmp: unknown ops by effect (kind, arguments), then invocation. */
static int effect_cmp(const void *a, const void *b, void *arg)
{
	const struct sop *ops = arg, *x = &ops[*(const int *)a],
			 *y = &ops[*(const int *)b];

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->arg1 != y->arg1)
		return x->arg1 < y->arg1 ? -1 : 1;
	if (x->arg2 != y->arg2)
		return x->arg2 < y->arg2 ? -1 : 1;
	return unk_cmp(a, b, arg);
}

/* link_same: S->same_next for the unknown ops (uses S->where as scratch). */
static void link_same(struct search *s)
{
	int i, *by = s->where;

	memcpy(by, s->unk, s->nunk * sizeof(*by));
	qsort_r(by, s->nunk, sizeof(*by), effect_cmp, (void *)s->ops);
	for (i = 0; i < s->nunk; i++) {
		const struct sop *x = &s->ops[by[i]], *y;

		s->same_next[by[i]] = -1;
		if (i + 1 == s->nunk)
			break;
		y = &s->ops[by[i + 1]];
		if (x->kind == y->kind && x->arg1 == y->arg1 &&
		    x->arg2 == y->arg2)
			s->same_next[by[i]] = by[i + 1];
	}
}

/* dominated: unknown op OP has a later twin (same effect) still unused and
 * already invoked by LIMIT. Using the twin instead is never worse: OP,
 * invoked earlier, can stand in for the twin anywhere later. */
static int dominated(const struct search *s, int op, int64_t limit)
{
	int j;

	for (j = s->same_next[op]; j >= 0 && s->ops[j].inv <= limit;
	     j = s->same_next[j])
		if (!lin_get(s, j))
			return 1;
	return 0;
}

/* build_list: the sorted event list of the known ops behind the head node
 * S->nodes[2m], and the unknown ops sorted by invocation in S->unk.
 * Returns the number of known ops. */
static int build_list(struct search *s)
{
	struct node *ev = s->nodes, *head = &s->nodes[2 * s->m];
	int i, j, k = 0, m = s->m;
	int *where = s->where;
	size_t kw;

	s->nunk = 0;
	for (i = 0; i < m; i++) {
		if (s->ops[i].ret == LINZ_INF) {
			s->unk[s->nunk++] = i;
			continue;
		}
		ev[2 * k] = (struct node){
			.op = i, .is_call = 1, .time = s->ops[i].inv};
		ev[2 * k + 1] = (struct node){
			.op = i, .is_call = 0, .time = s->ops[i].ret};
		k++;
	}
	qsort(ev, 2 * k, sizeof(*ev), event_cmp);
	qsort_r(s->unk, s->nunk, sizeof(*s->unk), unk_cmp, (void *)s->ops);
	link_same(s);
	kw = ((size_t)k + 63) / 64;
	for (i = 0, j = 0; i < 2 * k; i++) {
		if (ev[i].is_call)
			where[ev[i].op] = i;
		else
			s->bitidx[ev[i].op] = j++;
	}
	for (i = 0; i < s->nunk; i++)
		s->bitidx[s->unk[i]] = (int)kw * 64 + i;
	cache_reset(&s->cache, kw, ((size_t)s->nunk + 63) / 64);
	for (i = 0; i < 2 * k; i++) {
		if (!ev[i].is_call) {
			ev[where[ev[i].op]].match = &ev[i];
			ev[i].match = &ev[where[ev[i].op]];
		}
		ev[i].prev = i ? &ev[i - 1] : head;
		ev[i].next = i + 1 < 2 * k ? &ev[i + 1] : NULL;
	}
	*head = (struct node){.op = -1, .next = k ? &ev[0] : NULL};
	return k;
}

/* blind: OP's effect and acceptance do not depend on the state. */
static int blind(const struct sop *op)
{
	return op->kind == LINZ_PUT ||
	       (op->kind == LINZ_DEL && (!op->known || op->out < 0));
}

/* readonly: a known op that never changes the state when it is accepted
 * (a get, a cas that failed, a delete of nothing). If one is accepted at a
 * search node, linearizing it right there is never worse than any other
 * choice: every op that must precede it is already linearized (its call
 * is before the first return), and the state sequence is unchanged. So the
 * search commits to it without branching (a "greedy" frame). This is what
 * keeps histories with many concurrent clients on one key tractable. */
static int readonly(const struct sop *op)
{
	return op->known &&
	       (op->kind == LINZ_GET || (op->kind == LINZ_CAS && !op->out) ||
		(op->kind == LINZ_DEL && op->out == 0));
}

/* search_run: is the op list of S linearizable from state INIT?
 *
 * Candidates at a search node are the calls before the first return. They
 * are tried in two passes: ops with a known outcome first (the event
 * list), then unknown ops (S->unk, by invocation; they have no return, so
 * they are kept out of the event list and never slow its scan). Any order
 * is complete (every candidate is tried before a backtrack); this one
 * keeps the search from eagerly applying timed-out writes that usually
 * never took effect.
 *
 * Two prunings of unknown ops, by dominance. An unknown op has no return,
 * so it may always be left out (placed at the end) or moved later. Every
 * valid linearization can be rewritten, by dropping or delaying unknown
 * ops, into one where (a) each unknown op changes the state, and (b) the op
 * right after an unknown op u (which took the state from `prev` to s)
 * needs u: a known op that would also be accepted in `prev` either leaves
 * the state alone (a cas that failed: swap it before u) or sets it
 * regardless (a put, a delete: drop u), and an unknown put or delete next
 * erases u (drop u). The search explores only such rewritten orders:
 * (a) skips unknown ops that change nothing; (b) after an unknown op
 * (needread), skips blind ops and known ops accepted in `prev`. Without
 * (b) a read waiting for one of u timed-out puts explores 2^u subsets.
 * needread and prev are part of the cache key: a pair explored under the
 * restriction says nothing about the same pair without it. */
static int search_run(struct search *s, int32_t init)
{
	struct node *head = &s->nodes[2 * s->m], *e, *g;
	struct frame *f;
	int sp = 0, known, rc, pass = 0, ui = 0, op, needread = 0, fresh = 1;
	int32_t state = init, ns, prev = 0, dummy;
	int64_t limit = 0;
	uint64_t zh = 0;

	known = build_list(s);
	if (!known)
		return SEARCH_OK;
	memset(s->bits, 0, s->words * 8);
	e = head->next;
	for (;;) {
		if (++s->steps > s->max_steps)
			return SEARCH_BUDGET;
		if (fresh && !needread) {
			/* a new search node: commit to a read-only op if one
			 * is accepted (see readonly()) */
			fresh = 0;
			for (g = head->next; g->is_call; g = g->next)
				if (readonly(&s->ops[g->op]) &&
				    model_step(&s->ops[g->op], state, &ns))
					break;
			if (g->is_call) {
				lin_flip(s, g->op);
				rc = cache_add(&s->cache, s->bits,
					       zh ^ s->zob[g->op],
					       (uint64_t)(uint32_t)state);
				if (rc < 0)
					return rc == -E2BIG ? SEARCH_BUDGET
							    : rc;
				if (rc == 0) { /* explored: this node fails */
					lin_flip(s, g->op);
					goto backtrack;
				}
				s->stack[sp++] = (struct frame){.node = g,
								.op = g->op,
								.state = state,
								.prev = prev,
								.greedy = 1};
				zh ^= s->zob[g->op];
				lift(g);
				if (!--known)
					return SEARCH_OK;
				e = head->next;
				fresh = 1;
				continue;
			}
		}
		fresh = 0;
		if (pass == 0 && !e->is_call) {
			/* known candidates exhausted: unknown ops next */
			pass = 1;
			ui = 0;
			limit = e->time;
			continue;
		}
		if (pass == 1) {
			while (ui < s->nunk &&
			       s->ops[s->unk[ui]].inv <= limit &&
			       (lin_get(s, s->unk[ui]) ||
				dominated(s, s->unk[ui], limit)))
				ui++;
			if (ui >= s->nunk || s->ops[s->unk[ui]].inv > limit)
				goto backtrack;
			op = s->unk[ui];
		} else {
			op = e->op;
		}
		if (model_step(&s->ops[op], state, &ns) &&
		    !(pass && ns == state) &&
		    !(needread &&
		      (blind(&s->ops[op]) ||
		       (!pass && model_step(&s->ops[op], prev, &dummy))))) {
			lin_flip(s, op);
			/* pass 1: the op is unknown, needread follows (with
			 * prev = state); prev >= LINZ_FRESH, so prev + 3 > 0 */
			rc = cache_add(
				&s->cache, s->bits, zh ^ s->zob[op],
				(uint64_t)(uint32_t)ns |
					(pass ? (uint64_t)(state + 3) << 32
					      : 0));
			if (rc < 0)
				return rc == -E2BIG ? SEARCH_BUDGET : rc;
			if (rc == 1) {
				s->stack[sp++] = (struct frame){
					.node = pass ? NULL : e,
					.op = op,
					.ui = ui,
					.state = state,
					.pass = (uint8_t)pass,
					.needread = (uint8_t)needread,
					.prev = prev,
					.limit = limit};
				zh ^= s->zob[op];
				prev = state;
				state = ns;
				needread = pass;
				if (!pass) {
					lift(e);
					if (!--known)
						return SEARCH_OK;
				}
				pass = 0;
				e = head->next;
				fresh = 1;
				continue;
			}
			lin_flip(s, op);
		}
		if (pass)
			ui++;
		else
			e = e->next;
		continue;
	backtrack:
		/* undo the last op; a greedy frame had no alternatives, so
		 * its node fails as a whole and the undo goes on */
		do {
			if (!sp)
				return SEARCH_FAIL;
			f = &s->stack[--sp];
			state = f->state;
			pass = f->pass;
			needread = f->needread;
			prev = f->prev;
			lin_flip(s, f->op);
			zh ^= s->zob[f->op];
			if (f->node) {
				unlift(f->node);
				known++;
			}
		} while (f->greedy);
		if (f->node) {
			e = f->node->next;
		} else {
			ui = f->ui + 1;
			limit = f->limit;
		}
	}
}

static void search_free(struct search *s)
{
	free(s->nodes);
	free(s->zob);
	free(s->bits);
	free(s->stack);
	free(s->unk);
	free(s->where);
	free(s->same_next);
	free(s->bitidx);
	free(s->cache.slots);
	free(s->cache.data);
}

/* search_init: room for up to M ops. -ENOMEM. */
static int search_init(struct search *s, int m, const struct linz_limits *lim)
{
	int i;

	memset(s, 0, sizeof(*s));
	s->words = (size_t)(m + 63) / 64 + 2;
	s->cache.max_bytes = lim->max_memory;
	s->max_steps = lim->max_steps;
	s->nodes = calloc(2 * (size_t)m + 1, sizeof(*s->nodes));
	s->zob = calloc((size_t)m + 1, sizeof(*s->zob));
	s->bits = calloc(s->words, 8);
	s->bitidx = calloc((size_t)m + 1, sizeof(*s->bitidx));
	s->stack = calloc((size_t)m + 1, sizeof(*s->stack));
	s->unk = calloc((size_t)m + 1, sizeof(*s->unk));
	s->where = calloc((size_t)m + 1, sizeof(*s->where));
	s->same_next = calloc((size_t)m + 1, sizeof(*s->same_next));
	if (!s->nodes || !s->zob || !s->bits || !s->stack || !s->unk ||
	    !s->where || !s->same_next || !s->bitidx) {
		search_free(s);
		return -ENOMEM;
	}
	for (i = 0; i <= m; i++)
		s->zob[i] = mix64(0x1234567ULL +
				  (uint64_t)i * 0x9e3779b97f4a7c15ULL);
	return 0;
}

/* ---- windows ----------------------------------------------------------- */

struct keyrun {
	const struct linz_history *h;
	const struct linz_op **ops; /* this key's checked ops, by inv */
	int n;
	struct sop *w; /* the current window */
	int32_t *inits;
	uint32_t *seen; /* per value id: stamp if observed */
	uint32_t stamp;
	struct search s;
};

/* fold_unobserved: written values that no op of the window K->w[0..m)
 * observes become LINZ_FRESH (one value for all of them: the model only
 * compares the state with observed values, so they are indistinguishable,
 * and folding them lets the cache and dominated() merge equivalent
 * branches). */
static void fold_unobserved(struct keyrun *k, int m)
{
	int i;

	if (++k->stamp == 0) {
		memset(k->seen, 0, k->h->nvalues * sizeof(*k->seen));
		k->stamp = 1;
	}
	for (i = 0; i < m; i++) {
		if (k->w[i].kind == LINZ_GET)
			k->seen[k->w[i].out] = k->stamp;
		else if (k->w[i].kind == LINZ_CAS && k->w[i].arg1 > 0)
			k->seen[k->w[i].arg1] = k->stamp;
	}
	for (i = 0; i < m; i++) {
		struct sop *w = &k->w[i];

		if (w->kind == LINZ_PUT && k->seen[w->arg1] != k->stamp)
			w->arg1 = LINZ_FRESH;
		if (w->kind == LINZ_CAS && k->seen[w->arg2] != k->stamp)
			w->arg2 = LINZ_FRESH;
	}
}

/* window_build: the window [S, T] of the key's ops into K->w (see the
 * comment at the top); returns its op count. */
static int window_build(struct keyrun *k, int64_t lo, int64_t hi)
{
	int i, m = 0;

	for (i = 0; i < k->n; i++) {
		const struct linz_op *o = k->ops[i];
		struct sop *w = &k->w[m];
		int span;

		if (o->inv >= hi || o->ret < lo)
			continue;
		span = o->inv < lo || o->ret > hi;
		if (span && o->kind == LINZ_GET)
			continue;
		*w = (struct sop){.kind = o->kind,
				  .arg1 = o->arg1,
				  .arg2 = o->arg2,
				  .out = o->out,
				  .inv = o->inv,
				  .ret = o->ret,
				  .known = o->status == LINZ_OK && !span};
		if (!w->known)
			w->ret = LINZ_INF;
		m++;
	}
	fold_unobserved(k, m);
	return m;
}

/* window_check: SEARCH_OK / SEARCH_FAIL / SEARCH_BUDGET / -ENOMEM for the
 * window [LO, HI]; the start state is absent when LO is INT64_MIN, else
 * every candidate is tried (the window fails only if all fail). */
static int window_check(struct keyrun *k, int64_t lo, int64_t hi)
{
	int m = window_build(k, lo, hi), i, n = 0, rc, budget = 0;

	k->s.ops = k->w;
	k->s.m = m;
	if (lo == INT64_MIN)
		return search_run(&k->s, LINZ_ABSENT);
	/* the start state: absent, an unobserved value, or an observed one,
	 * observed ones first in order of first appearance (the first reads
	 * most likely show the real one, and a linearizable window stops at
	 * its first success).
	 * fold_unobserved() left seen[v] == stamp for observed values: a
	 * value is taken once by setting its mark back. */
	for (i = 0; i < m; i++) {
		int32_t v = k->w[i].kind == LINZ_GET   ? k->w[i].out
			    : k->w[i].kind == LINZ_CAS ? k->w[i].arg1
						       : 0;

		if (v > 0 && k->seen[v] == k->stamp) {
			k->seen[v] = k->stamp - 1;
			k->inits[n++] = v;
		}
	}
	k->inits[n++] = LINZ_ABSENT;
	k->inits[n++] = LINZ_FRESH;
	for (i = 0; i < n; i++) {
		rc = search_run(&k->s, k->inits[i]);
		if (rc == SEARCH_OK || rc < 0)
			return rc;
		budget |= rc == SEARCH_BUDGET;
	}
	return budget ? SEARCH_BUDGET : SEARCH_FAIL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* shrink: a shorter failing window inside the failing window [*LO, *HI]
 * (INT64_MIN / LINZ_INF for the whole history). Binary search for the
 * earliest end T such that [*LO, T] fails, then for the latest start S
 * such that [S, T] fails. Each accepted bound was verified by a failing
 * search (invariant 4); a search out of budget counts as not failing. */
static int shrink(struct keyrun *k, int64_t *lo, int64_t *hi)
{
	int64_t *t = malloc(((size_t)k->n + 2) * sizeof(*t));
	int nt = 0, i, a, b, mid, rc = 0;

	if (!t)
		return -ENOMEM;
	for (i = 0; i < k->n; i++)
		if (k->ops[i]->ret > *lo && k->ops[i]->ret < *hi)
			t[nt++] = k->ops[i]->ret;
	qsort(t, nt, sizeof(*t), cmp_i64);
	for (a = 0, b = nt; a < b;) { /* t[b] (or +inf) fails */
		mid = (a + b) / 2;
		rc = window_check(k, *lo, t[mid]);
		if (rc < 0)
			goto out;
		if (rc == SEARCH_FAIL)
			b = mid;
		else
			a = mid + 1;
	}
	if (b < nt)
		*hi = t[b];
	nt = 0;
	for (i = 0; i < k->n; i++)
		if (k->ops[i]->inv > *lo && k->ops[i]->inv < *hi)
			t[nt++] = k->ops[i]->inv;
	qsort(t, nt, sizeof(*t), cmp_i64);
	for (a = -1, b = nt - 1; a < b;) { /* t[a] (or *lo) fails */
		mid = (a + b + 1) / 2;
		rc = window_check(k, t[mid], *hi);
		if (rc < 0)
			goto out;
		if (rc == SEARCH_FAIL)
			a = mid;
		else
			b = mid - 1;
	}
	if (a >= 0)
		*lo = t[a];
	rc = 0;
out:
	free(t);
	return rc;
}

/* ---- reporting and the driver ------------------------------------------ */

static const char *val_name(const struct linz_history *h, int32_t v)
{
	return v == LINZ_NONE ? "-" : h->values[v];
}

static void print_op(FILE *out, const struct linz_history *h,
		     const struct linz_op *o, int span)
{
	static const char *kinds[] = {"put", "get", "cas", "delete"};
	static const char *sts[] = {"ok", "fail", "unknown"};
	char ret[32] = "-", res[64] = "-", rev[32] = "";

	if (o->rev >= 0)
		snprintf(rev, sizeof(rev), " %" PRId64, o->rev);
	if (o->ret != LINZ_INF)
		snprintf(ret, sizeof(ret), "%" PRId64, o->ret);
	if (o->status == LINZ_OK && o->kind == LINZ_GET)
		snprintf(res, sizeof(res), "%s", val_name(h, o->out));
	else if (o->status == LINZ_OK && o->kind == LINZ_CAS)
		snprintf(res, sizeof(res), "%s", o->out ? "true" : "false");
	else if (o->status == LINZ_OK && o->kind == LINZ_DEL && o->out >= 0)
		snprintf(res, sizeof(res), "%d", o->out);
	fprintf(out, "  line %d: %d %s %s %s %s %" PRId64 " %s %s %s%s%s\n",
		o->line, o->client, kinds[o->kind], h->keys[o->key],
		val_name(h, o->arg1), val_name(h, o->arg2), o->inv, ret,
		sts[o->status], res, rev,
		span ? "  (spans the window edge)" : "");
}

/* in_report: ops of the window [LO, HI] worth showing: unknown ops
 * invoked before LO are counted, not listed (there may be thousands). */
static int in_report(const struct linz_op *o, int64_t lo, int64_t hi)
{
	return o->inv < hi && o->ret >= lo &&
	       !(o->ret == LINZ_INF && o->inv < lo);
}

static void report(FILE *out, struct keyrun *k, uint32_t key, int64_t lo,
		   int64_t hi, int max_ops)
{
	int i, n = 0, old_unknown = 0, shown = 0;

	for (i = 0; i < k->n; i++) {
		n += in_report(k->ops[i], lo, hi);
		old_unknown +=
			k->ops[i]->ret == LINZ_INF && k->ops[i]->inv < lo;
	}
	fprintf(out,
		"VIOLATION key %s: no linearization of the %d ops in "
		"window [%s%" PRId64 ", %" PRId64 "]%s",
		k->h->keys[key], n, lo == INT64_MIN ? "start " : "",
		lo == INT64_MIN ? (int64_t)0 : lo, hi,
		lo == INT64_MIN ? " from the initial state (absent)"
				: " from any start state");
	if (old_unknown)
		fprintf(out, " (with %d unknown ops invoked earlier)",
			old_unknown);
	fprintf(out, ":\n");
	for (i = 0; i < k->n && shown < max_ops; i++) {
		const struct linz_op *o = k->ops[i];

		if (!in_report(o, lo, hi))
			continue;
		print_op(out, k->h, o, o->inv < lo || o->ret > hi);
		shown++;
	}
	if (shown < n)
		fprintf(out, "  ... %d more ops\n", n - shown);
}

/* slide: look for a failing window of about LINZ_SLIDE ops (windows
 * overlap by half), when the whole-history search failed or ran out of
 * budget: a violation deep in a long history makes that search explore
 * the whole prefix, while a window around it fails at once. Returns 1 and
 * the window in *LO, *HI if one fails, 0 if none does, or -ENOMEM. */
static int slide(struct keyrun *k, int64_t *lo, int64_t *hi)
{
	int i, rc;

	k->s.steps = 0; /* one budget for all the windows */
	for (i = 0; i < k->n; i += LINZ_SLIDE / 2) {
		int64_t a = i ? k->ops[i]->inv : INT64_MIN;
		int64_t b = i + LINZ_SLIDE < k->n ? k->ops[i + LINZ_SLIDE]->inv
						  : LINZ_INF;

		rc = window_check(k, a, b);
		if (rc < 0)
			return rc;
		if (k->s.steps > k->s.max_steps)
			break;
		if (rc == SEARCH_FAIL) {
			*lo = a;
			*hi = b;
			return 1;
		}
		if (b == LINZ_INF)
			break;
	}
	return 0;
}

/* check_key: verdict for the ops K->ops[0..n) of KEY. */
static int check_key(struct keyrun *k, uint32_t key,
		     const struct linz_limits *lim, FILE *out)
{
	int64_t lo = INT64_MIN, hi = LINZ_INF;
	int rc, found;

	rc = window_check(k, INT64_MIN, LINZ_INF);
	if (rc < 0)
		return rc;
	if (rc == SEARCH_OK)
		return LINZ_LINEARIZABLE;
	found = k->n > LINZ_SLIDE ? slide(k, &lo, &hi) : 0;
	if (found < 0)
		return found;
	if (!found && rc == SEARCH_BUDGET) {
		if (out)
			fprintf(out,
				"INCONCLUSIVE key %s: search budget of %" PRIu64
				" steps or %zu bytes exceeded (%d ops), and no "
				"window of %d ops fails\n",
				k->h->keys[key], lim->max_steps,
				lim->max_memory, k->n, LINZ_SLIDE);
		return LINZ_INCONCLUSIVE;
	}
	k->s.steps = 0;
	rc = shrink(k, &lo, &hi);
	if (rc < 0)
		return rc;
	if (out)
		report(out, k, key, lo, hi, lim->max_report_ops);
	return LINZ_VIOLATION;
}

/* ---- revisions ---------------------------------------------------------- */

/* writes_rev: an ok op that created a revision. */
static int writes_rev(const struct linz_op *o)
{
	return o->kind == LINZ_PUT || (o->kind == LINZ_CAS && o->out == 1) ||
	       (o->kind == LINZ_DEL && o->out == 1);
}

static int by_ret(const void *a, const void *b)
{
	const struct linz_op *x = *(const struct linz_op *const *)a;
	const struct linz_op *y = *(const struct linz_op *const *)b;

	return x->ret < y->ret ? -1 : x->ret > y->ret;
}

static int by_inv(const void *a, const void *b)
{
	const struct linz_op *x = *(const struct linz_op *const *)a;
	const struct linz_op *y = *(const struct linz_op *const *)b;

	return x->inv < y->inv ? -1 : x->inv > y->inv;
}

static int by_rev(const void *a, const void *b)
{
	const struct linz_op *x = *(const struct linz_op *const *)a;
	const struct linz_op *y = *(const struct linz_op *const *)b;

	return x->rev < y->rev ? -1 : x->rev > y->rev;
}

static void rev_report(FILE *out, const struct linz_history *h,
		       const struct linz_op *a, const struct linz_op *b,
		       const char *why)
{
	if (!out)
		return;
	fprintf(out, "VIOLATION revisions: %s:\n", why);
	print_op(out, h, a, 0);
	print_op(out, h, b, 0);
}

/* rev_check: the revision rules of linz.h over the ok ops that carry a
 * revision, all keys together (the revision counter is global). A sweep
 * in invocation order keeps the highest revision, and the highest written
 * one, among the ops completed before. Returns the number of violations
 * (at most 5 are printed), or -ENOMEM. */
static int rev_check(const struct linz_history *h, FILE *out)
{
	const struct linz_op **r = malloc((h->nops + 1) * sizeof(*r));
	const struct linz_op **v = malloc((h->nops + 1) * sizeof(*v));
	const struct linz_op *any = NULL, *wr = NULL;
	size_t i, j, n = 0;
	int bad = 0;

	if (!r || !v) {
		free(r);
		free(v);
		return -ENOMEM;
	}
	for (i = 0; i < h->nops; i++)
		if (h->ops[i].status == LINZ_OK && h->ops[i].rev >= 0)
			r[n] = v[n] = &h->ops[i], n++;
	qsort(r, n, sizeof(*r), by_ret);
	qsort(v, n, sizeof(*v), by_inv);
	for (i = 0, j = 0; i < n; i++) {
		const struct linz_op *b = v[i];

		for (; j < n && r[j]->ret < b->inv; j++) {
			if (!any || r[j]->rev > any->rev)
				any = r[j];
			if (writes_rev(r[j]) && (!wr || r[j]->rev > wr->rev))
				wr = r[j];
		}
		if (any && b->rev < any->rev && bad++ < 5)
			rev_report(out, h, any, b,
				   "a response older than one completed before "
				   "the request began");
		else if (wr && writes_rev(b) && b->rev <= wr->rev && bad++ < 5)
			rev_report(out, h, wr, b,
				   "a write's revision not above one completed "
				   "before it began");
	}
	n = 0;
	for (i = 0; i < h->nops; i++)
		if (h->ops[i].status == LINZ_OK && h->ops[i].rev >= 0 &&
		    writes_rev(&h->ops[i]))
			r[n++] = &h->ops[i];
	qsort(r, n, sizeof(*r), by_rev);
	for (i = 1; i < n; i++)
		if (r[i]->rev == r[i - 1]->rev && bad++ < 5)
			rev_report(out, h, r[i - 1], r[i],
				   "two writes with one revision");
	free(r);
	free(v);
	return bad;
}

static int op_cmp(const void *a, const void *b)
{
	const struct linz_op *x = *(const struct linz_op *const *)a;
	const struct linz_op *y = *(const struct linz_op *const *)b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	if (x->inv != y->inv)
		return x->inv < y->inv ? -1 : 1;
	return x->line - y->line;
}

/* kept: ops the search needs. A failed op never happened; an unknown get
 * observed nothing. */
static int kept(const struct linz_op *o)
{
	return o->status == LINZ_OK ||
	       (o->status == LINZ_UNKNOWN && o->kind != LINZ_GET);
}

int linz_check(const struct linz_history *h, const struct linz_limits *limp,
	       FILE *out)
{
	struct linz_limits lim = {DEF_STEPS, DEF_MEMORY, DEF_REPORT};
	const struct linz_op **ops = malloc((h->nops + 1) * sizeof(*ops));
	struct keyrun k = {.h = h};
	size_t i, n = 0, a, b, maxm = 0;
	int rc = -ENOMEM, verdict = LINZ_LINEARIZABLE, unknown = 0, v;
	uint64_t steps = 0;

	if (limp && limp->max_steps)
		lim.max_steps = limp->max_steps;
	if (limp && limp->max_memory)
		lim.max_memory = limp->max_memory;
	if (limp && limp->max_report_ops)
		lim.max_report_ops = limp->max_report_ops;
	if (!ops)
		goto fail;
	for (i = 0; i < h->nops; i++) {
		if (kept(&h->ops[i]))
			ops[n++] = &h->ops[i];
		unknown += h->ops[i].status == LINZ_UNKNOWN;
	}
	qsort(ops, n, sizeof(*ops), op_cmp);
	for (a = 0; a < n; a = b) {
		for (b = a; b < n && ops[b]->key == ops[a]->key; b++)
			;
		if (b - a > maxm)
			maxm = b - a;
	}
	if (maxm > INT32_MAX / 4)
		goto fail;
	k.w = malloc((maxm + 1) * sizeof(*k.w));
	k.inits = malloc((3 * maxm + 2) * sizeof(*k.inits));
	k.seen = calloc(h->nvalues + 1, sizeof(*k.seen));
	if (!k.w || !k.inits || !k.seen ||
	    search_init(&k.s, (int)maxm, &lim) < 0)
		goto fail;
	for (a = 0; a < n; a = b) {
		for (b = a; b < n && ops[b]->key == ops[a]->key; b++)
			;
		k.ops = ops + a;
		k.n = (int)(b - a);
		k.s.steps = 0;
		v = check_key(&k, ops[a]->key, &lim, out);
		steps += k.s.steps;
		if (v < 0) {
			rc = v;
			goto fail_search;
		}
		if (v == LINZ_VIOLATION)
			verdict = LINZ_VIOLATION;
		else if (v == LINZ_INCONCLUSIVE && verdict == LINZ_LINEARIZABLE)
			verdict = LINZ_INCONCLUSIVE;
	}
	v = rev_check(h, out);
	if (v < 0) {
		rc = v;
		goto fail_search;
	}
	if (v > 0)
		verdict = LINZ_VIOLATION;
	if (verdict == LINZ_INCONCLUSIVE && out)
		fprintf(out, "INCONCLUSIVE\n");
	if (verdict == LINZ_LINEARIZABLE && out)
		fprintf(out,
			"OK linearizable: %zu ops (%zu checked, %d unknown), "
			"%zu keys, at most %zu ops on one key, %" PRIu64
			" search steps\n",
			h->nops, n, unknown, h->nkeys, maxm, steps);
	rc = verdict;
fail_search:
	search_free(&k.s);
fail:
	free(k.w);
	free(k.inits);
	free(k.seen);
	free(ops);
	return rc;
}
