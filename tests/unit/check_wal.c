/* Unit tests of raftlog/wal and core/util/crc32c.
 *
 * Every test works in its own mkdtemp directory, removed at the end; every
 * wait on the loop is bounded by event_base_loopexit. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util/bio.h"
#include "core/util/crc32c.h"
#include "raftlog/wal.h"
#include "tests/unit/tmpdir.h"

/* ---- fixtures --------------------------------------------------------- */

static char tdir[64];
static char wdir[128];

static void wal_setup(void)
{
	ut_tmpdir(tdir, sizeof(tdir), "check_wal");
	/* A missing parent too: wal_open must create both. */
	snprintf(wdir, sizeof(wdir), "%s/member/wal", tdir);
}

static void wal_teardown(void)
{
	ut_rmtree(tdir);
}

/* Path of the n-th segment (0 = oldest) or of the last when n < 0. */
static char *seg_path(int n)
{
	struct dirent **names;
	int k = scandir(wdir, &names, NULL, alphasort), cnt = 0, want;
	char *out = NULL;

	ck_assert_int_ge(k, 0);
	for (int i = 0; i < k; i++)
		cnt += strstr(names[i]->d_name, ".wal") &&
		       !strstr(names[i]->d_name, ".tmp");
	want = n < 0 ? cnt - 1 : n;
	for (int i = 0, s = 0; i < k; i++) {
		if (!strstr(names[i]->d_name, ".wal") ||
		    strstr(names[i]->d_name, ".tmp"))
			continue;
		if (s++ == want &&
		    asprintf(&out, "%s/%s", wdir, names[i]->d_name) < 0)
			out = NULL;
	}
	for (int i = 0; i < k; i++)
		free(names[i]);
	free(names);
	ck_assert_ptr_nonnull(out);
	return out;
}

static int seg_count(void)
{
	struct dirent **names;
	int k = scandir(wdir, &names, NULL, alphasort), cnt = 0;

	for (int i = 0; i < k; i++) {
		cnt += strlen(names[i]->d_name) == 37;
		free(names[i]);
	}
	free(names);
	return cnt;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n ? (size_t)n : 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void write_file(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* End of the data: entries in these tests end in a non-zero byte and need
 * no padding, so the last non-zero byte ends the last record. */
static size_t data_end(const uint8_t *buf, size_t len)
{
	while (len && !buf[len - 1])
		len--;
	return len;
}

/* An entry whose data is 8 bytes derived from (index, tag), the last one
 * non-zero: 12 + 20 + 8 = 40, a multiple of 8, so no padding. */
struct tent {
	struct wal_entry e;
	uint8_t d[8];
};

static void tent_make(struct tent *t, uint64_t index, uint64_t term, int tag)
{
	for (int i = 0; i < 8; i++)
		t->d[i] = (uint8_t)(index * 7 + (uint64_t)tag * 31 + i);
	t->d[7] |= 0x80;
	t->e = (struct wal_entry){index, term, (uint32_t)tag, t->d, 8};
}

static void save_one(struct wal *w, uint64_t index, uint64_t term, int tag)
{
	struct tent t;

	tent_make(&t, index, term, tag);
	ck_assert_int_eq(wal_save(w, NULL, &t.e, 1), 0);
}

static void check_ent(const struct wal_entry *e, uint64_t index, uint64_t term,
		      int tag)
{
	struct tent t;

	tent_make(&t, index, term, tag);
	ck_assert_uint_eq(e->index, index);
	ck_assert_uint_eq(e->term, term);
	ck_assert_uint_eq(e->type, (uint32_t)tag);
	ck_assert_uint_eq(e->len, 8);
	ck_assert_mem_eq(e->data, t.d, 8);
}

static struct wal *open_ok(struct wal_replay *rp)
{
	struct wal *w = NULL;
	int err = wal_open(wdir, "meta!", 5, &w, rp);

	ck_assert_msg(err == 0, "wal_open: %d %s", err, rp->error);
	return w;
}

/* ---- crc32c ----------------------------------------------------------- */

START_TEST(test_crc32c_vectors)
{
	static const uint8_t zeros[32], ones[32] = {[0 ... 31] = 0xff};
	uint8_t inc[32], buf[1031];

	for (int i = 0; i < 32; i++)
		inc[i] = (uint8_t)i;
	ck_assert_uint_eq(crc32c(0, "123456789", 9), 0xE3069283);
	ck_assert_uint_eq(crc32c_sw(0, "123456789", 9), 0xE3069283);
	ck_assert_uint_eq(crc32c(0, NULL, 0), 0);
	/* RFC 3720 B.4 iSCSI vectors. */
	ck_assert_uint_eq(crc32c(0, zeros, 32), 0x8A9136AA);
	ck_assert_uint_eq(crc32c(0, ones, 32), 0x62A8AB43);
	ck_assert_uint_eq(crc32c(0, inc, 32), 0x46DD794E);
	/* Both paths, every alignment and length, and chaining. */
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len + off <= sizeof(buf); len += 13) {
			uint32_t a = crc32c(0, buf + off, len);

			ck_assert_uint_eq(a, crc32c_sw(0, buf + off, len));
			ck_assert_uint_eq(
				a, crc32c(crc32c(0, buf + off, len / 3),
					  buf + off + len / 3, len - len / 3));
		}
}
END_TEST

/* ---- round trip ------------------------------------------------------- */

START_TEST(test_wal_round_trip)
{
	struct wal_replay rp;
	struct wal_hard_state hs = {3, 2, 4};
	struct wal *w = open_ok(&rp);

	ck_assert_uint_eq(rp.meta_len, 5);
	ck_assert_mem_eq(rp.meta, "meta!", 5);
	ck_assert(!rp.has_hs);
	ck_assert_uint_eq(rp.n_entries, 0);
	wal_replay_free(&rp);
	for (uint64_t i = 1; i <= 10; i++)
		save_one(w, i, 1 + i / 5, (int)i);
	ck_assert_int_eq(wal_save(w, &hs, NULL, 0), 0);
	ck_assert_int_eq(wal_save_snapshot(w, 3, 1), 0);
	ck_assert_uint_eq(wal_last_index(w), 10);
	ck_assert_int_eq(wal_sync_now(w), 0);
	ck_assert_int_eq(wal_close(w), 0);

	/* Reopen: meta given now is ignored, the stored one comes back. */
	ck_assert_int_eq(wal_open(wdir, "other", 5, &w, &rp), 0);
	ck_assert_mem_eq(rp.meta, "meta!", 5);
	ck_assert(rp.has_hs);
	ck_assert_uint_eq(rp.hs.term, 3);
	ck_assert_uint_eq(rp.hs.vote, 2);
	ck_assert_uint_eq(rp.hs.commit, 4);
	ck_assert_uint_eq(rp.snap_index, 3);
	ck_assert_uint_eq(rp.snap_term, 1);
	ck_assert_uint_eq(rp.n_entries, 7); /* 4..10 */
	for (size_t i = 0; i < 7; i++)
		check_ent(&rp.entries[i], 4 + i, 1 + (4 + i) / 5, (int)(4 + i));
	wal_replay_free(&rp);

	/* Appends continue at the end and survive another reopen. */
	hs.commit = 11;
	save_one(w, 11, 3, 11);
	ck_assert_int_eq(wal_save(w, &hs, NULL, 0), 0);
	ck_assert_int_eq(wal_sync_now(w), 0);
	/* Saved but never synced: not durable, dropped by close. */
	save_one(w, 12, 3, 12);
	ck_assert_int_eq(wal_close(w), 0);
	w = open_ok(&rp);
	ck_assert_uint_eq(rp.n_entries, 8);
	check_ent(&rp.entries[7], 11, 3, 11);
	ck_assert_uint_eq(rp.hs.commit, 11);
	wal_replay_free(&rp);
	ck_assert_int_eq(wal_close(w), 0);
}
END_TEST

START_TEST(test_wal_bad_args)
{
	struct wal_replay rp;
	struct wal *w;
	struct wal_entry big = {1, 1, 0, (const uint8_t *)"x",
				(size_t)WAL_MAX_ENTRY_DATA + 1};
	static uint8_t meta[WAL_MAX_META + 1];

	ck_assert_int_eq(wal_open(wdir, meta, sizeof(meta), &w, &rp), -EINVAL);
	ck_assert_int_eq(wal_open(NULL, NULL, 0, &w, &rp), -EINVAL);
	w = open_ok(&rp);
	wal_replay_free(&rp);
	ck_assert_int_eq(wal_save(w, NULL, &big, 1), -EINVAL);
	ck_assert_int_eq(wal_save(w, NULL, NULL, 1), -EINVAL);
	ck_assert_uint_eq(wal_last_index(w), 0);
	ck_assert_int_eq(wal_close(w), 0);
}
END_TEST

/* Raft overwrite on leader change (§5.3): 5,6,7 then 6' gives 5,6'. */
START_TEST(test_wal_overwrite)
{
	struct wal_replay rp;
	struct wal *w = open_ok(&rp);

	wal_replay_free(&rp);
	ck_assert_int_eq(wal_save_snapshot(w, 4, 1), 0);
	for (uint64_t i = 5; i <= 7; i++)
		save_one(w, i, 1, 0);
	ck_assert_int_eq(wal_sync_now(w), 0);
	save_one(w, 6, 2, 1);
	ck_assert_int_eq(wal_sync_now(w), 0);
	ck_assert_uint_eq(wal_last_index(w), 6);
	ck_assert_int_eq(wal_close(w), 0);
	w = open_ok(&rp);
	ck_assert_uint_eq(rp.n_entries, 2);
	check_ent(&rp.entries[0], 5, 1, 0);
	check_ent(&rp.entries[1], 6, 2, 1);
	wal_replay_free(&rp);
	/* And the log grows again from there: 7'' follows 6'. */
	save_one(w, 7, 2, 2);
	ck_assert_int_eq(wal_sync_now(w), 0);
	ck_assert_int_eq(wal_close(w), 0);
	w = open_ok(&rp);
	ck_assert_uint_eq(rp.n_entries, 3);
	check_ent(&rp.entries[2], 7, 2, 2);
	wal_replay_free(&rp);
	ck_assert_int_eq(wal_close(w), 0);
}
END_TEST

/* wal_open_after: entries the caller already holds come back with index,
 * term and type but no data; the rest in full. */
START_TEST(test_wal_open_after)
{
	struct wal_replay rp;
	struct wal *w = open_ok(&rp);

	wal_replay_free(&rp);
	for (uint64_t i = 1; i <= 10; i++)
		save_one(w, i, 1 + i / 5, (int)i);
	ck_assert_int_eq(wal_sync_now(w), 0);
	ck_assert_int_eq(wal_close(w), 0);
	ck_assert_int_eq(wal_open_after(wdir, "meta!", 5, 6, &w, &rp), 0);
	ck_assert_uint_eq(rp.n_entries, 10);
	for (uint64_t i = 1; i <= 6; i++) {
		ck_assert_uint_eq(rp.entries[i - 1].index, i);
		ck_assert_uint_eq(rp.entries[i - 1].term, 1 + i / 5);
		ck_assert_uint_eq(rp.entries[i - 1].type, (uint32_t)i);
		ck_assert_uint_eq(rp.entries[i - 1].len, 0);
	}
	for (uint64_t i = 7; i <= 10; i++)
		check_ent(&rp.entries[i - 1], i, 1 + i / 5, (int)i);
	wal_replay_free(&rp);
	ck_assert_int_eq(wal_close(w), 0);
}
END_TEST

/* ---- torn tails ----------------------------------------------------- */

/* Build 1..4 (4 in its own sync) and return the segment's bytes. */
static uint8_t *build_four(char **path, size_t *len, size_t *end)
{
	struct wal_replay rp;
	struct wal *w = open_ok(&rp);
	uint8_t *buf;

	wal_replay_free(&rp);
	for (uint64_t i = 1; i <= 3; i++)
		save_one(w, i, 1, 0);
	ck_assert_int_eq(wal_sync_now(w), 0);
	save_one(w, 4, 1, 0);
	ck_assert_int_eq(wal_sync_now(w), 0);
	ck_assert_int_eq(wal_close(w), 0);
	*path = seg_path(-1);
	buf = read_file(*path, len);
	*end = data_end(buf, *len);
	return buf;
}

static void expect_three_then_append(void)
{
	struct wal_replay rp;
	struct wal *w = open_ok(&rp);

	ck_assert_uint_eq(rp.n_entries, 3);
	for (size_t i = 0; i < 3; i++)
		check_ent(&rp.entries[i], i + 1, 1, 0);
	wal_replay_free(&rp);
	save_one(w, 4, 2, 9);
	ck_assert_int_eq(wal_sync_now(w), 0);
	ck_assert_int_eq(wal_close(w), 0);
	w = open_ok(&rp);
	ck_assert_uint_eq(rp.n_entries, 4);
	check_ent(&rp.entries[3], 4, 2, 9);
	wal_replay_free(&rp);
	ck_assert_int_eq(wal_close(w), 0);
}

START_TEST(test_wal_torn_every_offset)
{
	size_t len, end;
	char *path;
	uint8_t *buf = build_four(&path, &len, &end);

	ck_assert_uint_ge(end, 40);
	/* Cut the file at every byte of the last (40-byte) record. */
	for (size_t t = end - 40; t < end; t++) {
		ck_assert_int_eq(truncate(path, 0), 0);
		write_file(path, buf, t);
		expect_three_then_append();
	}
	/* The same cuts, but the rest of the record zeroed in place (a
	 * preallocated file whose last write was lost in part). */
	for (size_t t = end - 40; t < end; t++) {
		static const uint8_t zeros[40];
		int fd = open(path, O_WRONLY);

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(pwrite(fd, buf, t, 0), (ssize_t)t);
		ck_assert_int_eq(pwrite(fd, zeros, end - t, (off_t)t),
				 (ssize_t)(end - t));
		close(fd);
		expect_three_then_append();
	}
	free(buf);
	free(path);
}
END_TEST

START_TEST(test_wal_garbage_after_end)
{
	size_t len, end;
	char *path;
	uint8_t *buf = build_four(&path, &len, &end);
	struct wal_replay rp;
	struct wal *w;

	/* Zeros after the end (the preallocation) are just the end. */
	ck_assert_uint_gt(len, end + 4096);
	ck_assert(data_end(buf, len) == end);
	w = open_ok(&rp);
	ck_assert_uint_eq(rp.n_entries, 4);
	wal_replay_free(&rp);
	ck_assert_int_eq(wal_close(w), 0);

	/* Garbage over the whole last record and beyond it: torn. */
	for (size_t i = end - 40; i < end + 300; i++)
		buf[i] = (uint8_t)(i * 37 + 11);
	write_file(path, buf, len);
	expect_three_then_append();

	/* Garbage that looks like a record header (right shape, bad crc). */
	free(buf);
	buf = read_file(path, &len);
	end = data_end(buf, len);
	memcpy(buf + end, "\x11\x22\x33\x44\x08\x00\x00\x00\x04\x00\x00\x00",
	       12);
	write_file(path, buf, len);
	w = open_ok(&rp);
	ck_assert_uint_eq(rp.n_entries, 4);
	wal_replay_free(&rp);
	save_one(w, 5, 2, 5);
	ck_assert_int_eq(wal_sync_now(w), 0);
	ck_assert_int_eq(wal_close(w), 0);
	w = open_ok(&rp);
	ck_assert_uint_eq(rp.n_entries, 5);
	check_ent(&rp.entries[4], 5, 2, 5);
	wal_replay_free(&rp);
	ck_assert_int_eq(wal_close(w), 0);
	free(buf);
	free(path);
}
END_TEST

/* ---- corruption ------------------------------------------------------ */

/* 1..5, one sync each; flip one bit at byte rec_off(3) + delta. */
static void flip_in_third(size_t delta, uint8_t bit)
{
	struct wal_replay rp;
	struct wal *w = open_ok(&rp);
	char want[64], *path;
	size_t len, end, third;
	uint8_t *buf;

	wal_replay_free(&rp);
	for (uint64_t i = 1; i <= 5; i++) {
		save_one(w, i, 1, 0);
		ck_assert_int_eq(wal_sync_now(w), 0);
	}
	ck_assert_int_eq(wal_close(w), 0);
	path = seg_path(-1);
	buf = read_file(path, &len);
	end = data_end(buf, len);
	third = end - 3 * 40; /* records 3, 4, 5 are the last 120 bytes */
	buf[third + delta] ^= bit;
	write_file(path, buf, len);
	ck_assert_int_eq(wal_open(wdir, NULL, 0, &w, &rp), -EBADMSG);
	snprintf(want, sizeof(want), "offset %zu", third);
	ck_assert_msg(strstr(rp.error, path) && strstr(rp.error, want),
		      "error '%s' should name %s and %s", rp.error, path, want);
	/* Nothing was truncated: the damage is left for a human. */
	free(buf);
	buf = read_file(path, &len);
	ck_assert_uint_eq(data_end(buf, len), end);
	free(buf);
	free(path);
}

START_TEST(test_wal_flip_data_bit)
{
	flip_in_third(36, 0x10); /* inside the entry data */
}
END_TEST

START_TEST(test_wal_flip_length_bit)
{
	flip_in_third(5, 0x01); /* inside the length field */
}
END_TEST

START_TEST(test_wal_flip_crc_bit)
{
	flip_in_third(0, 0x04); /* inside the crc field itself */
}
END_TEST

/* Segment roll: many entries over many segments, replayed in order; a
 * bad record in a sealed segment is corruption even at its very end. */
START_TEST(test_wal_segments)
{
	struct wal_replay rp;
	struct wal *w = open_ok(&rp);
	struct wal_hard_state hs = {1, 1, 0};
	int nsegs, released;

	wal_replay_free(&rp);
	wal_set_segment_size(w, 4096);
	for (uint64_t i = 1; i <= 2000; i++) {
		save_one(w, i, 1, (int)(i & 0xff));
		if (i % 7 == 0) {
			hs.commit = i;
			ck_assert_int_eq(wal_save(w, &hs, NULL, 0), 0);
			ck_assert_int_eq(wal_sync_now(w), 0);
		}
	}
	ck_assert_int_eq(wal_sync_now(w), 0);
	ck_assert_int_eq(wal_close(w), 0);
	nsegs = seg_count();
	ck_assert_int_ge(nsegs, 15);

	w = open_ok(&rp);
	ck_assert_uint_eq(rp.n_entries, 2000);
	for (size_t i = 0; i < 2000; i++)
		check_ent(&rp.entries[i], i + 1, 1, (int)((i + 1) & 0xff));
	ck_assert_uint_eq(rp.hs.commit, 1995);
	wal_replay_free(&rp);

	/* Release is bounded by a durable snapshot marker. */
	ck_assert_int_eq(wal_release_to(w, 1500), 0);
	ck_assert_int_eq(wal_save_snapshot(w, 1500, 1), 0);
	ck_assert_int_eq(wal_sync_now(w), 0);
	released = wal_release_to(w, 1500);
	ck_assert_int_gt(released, 5);
	ck_assert_int_eq(seg_count(), nsegs - released);
	ck_assert_int_eq(wal_close(w), 0);
	w = open_ok(&rp);
	ck_assert_mem_eq(rp.meta, "meta!", 5); /* from a segment head */
	ck_assert_uint_eq(rp.snap_index, 1500);
	ck_assert_uint_eq(rp.n_entries, 500);
	check_ent(&rp.entries[0], 1501, 1, 1501 & 0xff);
	ck_assert_uint_eq(rp.hs.commit, 1995);
	wal_replay_free(&rp);
	ck_assert_int_eq(wal_close(w), 0);

	/* Damage the last byte of data in a sealed segment. */
	{
		char *path = seg_path(1);
		size_t len;
		uint8_t *buf = read_file(path, &len);

		/* Sealed: truncated at its last record, no preallocation. */
		ck_assert_uint_lt(len, 4096 + 64);
		buf[len - 1] ^= 0x01;
		write_file(path, buf, len);
		ck_assert_int_eq(wal_open(wdir, NULL, 0, &w, &rp), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(rp.error, path));
		free(buf);
		free(path);
	}
}
END_TEST

START_TEST(test_wal_big_entry)
{
	size_t n = 2u << 20;
	uint8_t *d = malloc(n);
	struct wal_replay rp;
	struct wal *w = open_ok(&rp);
	struct wal_entry e = {1, 1, 0, d, n};

	wal_replay_free(&rp);
	for (size_t i = 0; i < n; i++)
		d[i] = (uint8_t)(i ^ (i >> 8));
	ck_assert_int_eq(wal_save(w, NULL, &e, 1), 0);
	save_one(w, 2, 1, 2);
	ck_assert_int_eq(wal_sync_now(w), 0);
	ck_assert_int_eq(wal_close(w), 0);
	w = open_ok(&rp);
	ck_assert_uint_eq(rp.n_entries, 2);
	ck_assert_uint_eq(rp.entries[0].len, n);
	ck_assert_mem_eq(rp.entries[0].data, d, n);
	check_ent(&rp.entries[1], 2, 1, 2);
	wal_replay_free(&rp);
	ck_assert_int_eq(wal_close(w), 0);
	free(d);
}
END_TEST

/* ---- asynchronous sync through bio ----------------------------------- */

struct sync_ctx {
	struct wal *w;
	struct bio *b;
	struct event_base *base;
	int calls;
	int status[4];
};

static void sync_cb(void *arg, int status)
{
	struct sync_ctx *c = arg;

	c->status[c->calls++] = status;
	if (c->calls == 1) {
		/* Saved while the first sync ran: one group, one more sync. */
		ck_assert_int_eq(wal_sync(c->w, c->b, sync_cb, c), 0);
		return;
	}
	event_base_loopbreak(c->base);
}

static void loop_bounded(struct event_base *base)
{
	struct timeval tv = {10, 0};

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

START_TEST(test_wal_group_commit_async)
{
	struct sync_ctx c = {0};
	struct wal_replay rp;

	c.base = event_base_new();
	ck_assert_int_eq(bio_create(c.base, 2, &c.b), 0);
	c.w = open_ok(&rp);
	wal_replay_free(&rp);
	/* Three saves, one sync. */
	for (uint64_t i = 1; i <= 3; i++)
		save_one(c.w, i, 1, 0);
	ck_assert_int_eq(wal_sync(c.w, c.b, sync_cb, &c), 0);
	ck_assert_int_eq(wal_sync(c.w, c.b, sync_cb, &c), -EBUSY);
	ck_assert_int_eq(wal_sync_now(c.w), -EBUSY);
	ck_assert_int_eq(wal_close(c.w), -EBUSY);
	/* These go to the next group while the first is in flight. */
	for (uint64_t i = 4; i <= 6; i++)
		save_one(c.w, i, 1, 0);
	loop_bounded(c.base);
	ck_assert_int_eq(c.calls, 2);
	ck_assert_int_eq(c.status[0], 0);
	ck_assert_int_eq(c.status[1], 0);
	ck_assert_int_eq(wal_close(c.w), 0);
	c.w = open_ok(&rp);
	ck_assert_uint_eq(rp.n_entries, 6);
	for (size_t i = 0; i < 6; i++)
		check_ent(&rp.entries[i], i + 1, 1, 0);
	wal_replay_free(&rp);
	ck_assert_int_eq(wal_close(c.w), 0);
	bio_destroy(c.b);
	event_base_free(c.base);
}
END_TEST

/* Many groups through the helper thread, rolling segments there. */
struct roll_ctx {
	struct wal *w;
	struct bio *b;
	struct event_base *base;
	uint64_t next; /* next index to save */
	int syncs;
	int status;
};

static void roll_cb(void *arg, int status)
{
	struct roll_ctx *c = arg;

	c->syncs++;
	if (status || c->next > 1500) {
		c->status = status;
		event_base_loopbreak(c->base);
		return;
	}
	for (int k = 0; k < 5; k++) {
		save_one(c->w, c->next, 2, (int)(c->next & 0x7f));
		c->next++;
	}
	ck_assert_int_eq(wal_sync(c->w, c->b, roll_cb, c), 0);
}

START_TEST(test_wal_roll_async)
{
	struct roll_ctx c = {.next = 1};
	struct wal_replay rp;

	c.base = event_base_new();
	ck_assert_int_eq(bio_create(c.base, 2, &c.b), 0);
	c.w = open_ok(&rp);
	wal_replay_free(&rp);
	wal_set_segment_size(c.w, 4096);
	ck_assert_int_eq(wal_sync(c.w, c.b, roll_cb, &c), 0);
	{
		struct timeval tv = {60, 0};

		event_base_loopexit(c.base, &tv);
		event_base_dispatch(c.base);
	}
	ck_assert_int_eq(c.status, 0);
	ck_assert_uint_eq(c.next, 1501);
	ck_assert_int_eq(c.syncs, 301);
	ck_assert_int_eq(wal_close(c.w), 0);
	ck_assert_int_ge(seg_count(), 10);
	c.w = open_ok(&rp);
	ck_assert_uint_eq(rp.n_entries, 1500);
	for (size_t i = 0; i < 1500; i++)
		check_ent(&rp.entries[i], i + 1, 2, (int)((i + 1) & 0x7f));
	wal_replay_free(&rp);
	ck_assert_int_eq(wal_close(c.w), 0);
	bio_destroy(c.b);
	event_base_free(c.base);
}
END_TEST

/* An interrupted segment creation leaves only a *.tmp: removed on open. */
START_TEST(test_wal_stale_tmp)
{
	struct wal_replay rp;
	struct wal *w = open_ok(&rp);
	char *tmp;
	FILE *f;

	wal_replay_free(&rp);
	save_one(w, 1, 1, 0);
	ck_assert_int_eq(wal_sync_now(w), 0);
	ck_assert_int_eq(wal_close(w), 0);
	ck_assert_int_ge(asprintf(&tmp, "%s/%016x-%016x.wal.tmp", wdir, 1, 2),
			 0);
	f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fputs("half a segment", f);
	fclose(f);
	w = open_ok(&rp);
	ck_assert_uint_eq(rp.n_entries, 1);
	ck_assert_int_eq(access(tmp, F_OK), -1);
	wal_replay_free(&rp);
	ck_assert_int_eq(wal_close(w), 0);
	free(tmp);
}
END_TEST

static void fail_cb(void *arg, int status)
{
	struct sync_ctx *c = arg;

	c->status[c->calls++] = status;
	event_base_loopbreak(c->base);
}

START_TEST(test_wal_write_error_sticky)
{
	struct sync_ctx c = {0};
	struct wal_replay rp;

	c.base = event_base_new();
	ck_assert_int_eq(bio_create(c.base, 1, &c.b), 0);
	c.w = open_ok(&rp);
	wal_replay_free(&rp);
	save_one(c.w, 1, 1, 0);
	ck_assert_int_eq(wal_sync_now(c.w), 0);
	save_one(c.w, 2, 1, 0);
	wal_inject_error(c.w, -EIO);
	ck_assert_int_eq(wal_sync(c.w, c.b, fail_cb, &c), 0);
	loop_bounded(c.base);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.status[0], -EIO);
	ck_assert_int_eq(wal_error(c.w), -EIO);
	ck_assert_int_eq(wal_save(c.w, NULL, NULL, 0), -EIO);
	ck_assert_int_eq(wal_save_snapshot(c.w, 1, 1), -EIO);
	ck_assert_int_eq(wal_sync(c.w, c.b, fail_cb, &c), -EIO);
	ck_assert_int_eq(wal_sync_now(c.w), -EIO);
	ck_assert_int_eq(wal_close(c.w), 0);
	/* What was durable before the failure is still there. */
	c.w = open_ok(&rp);
	ck_assert_uint_eq(rp.n_entries, 1);
	wal_replay_free(&rp);
	ck_assert_int_eq(wal_close(c.w), 0);
	bio_destroy(c.b);
	event_base_free(c.base);
}
END_TEST

Suite *wal_suite(void)
{
	Suite *s = suite_create("wal");
	TCase *tc = tcase_create("crc32c");

	tcase_add_test(tc, test_crc32c_vectors);
	suite_add_tcase(s, tc);
	tc = tcase_create("wal");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, wal_setup, wal_teardown);
	tcase_add_test(tc, test_wal_round_trip);
	tcase_add_test(tc, test_wal_bad_args);
	tcase_add_test(tc, test_wal_open_after);
	tcase_add_test(tc, test_wal_overwrite);
	tcase_add_test(tc, test_wal_torn_every_offset);
	tcase_add_test(tc, test_wal_garbage_after_end);
	tcase_add_test(tc, test_wal_flip_data_bit);
	tcase_add_test(tc, test_wal_flip_length_bit);
	tcase_add_test(tc, test_wal_flip_crc_bit);
	tcase_add_test(tc, test_wal_segments);
	tcase_add_test(tc, test_wal_big_entry);
	tcase_add_test(tc, test_wal_group_commit_async);
	tcase_add_test(tc, test_wal_write_error_sticky);
	tcase_add_test(tc, test_wal_roll_async);
	tcase_add_test(tc, test_wal_stale_tmp);
	suite_add_tcase(s, tc);
	return s;
}
