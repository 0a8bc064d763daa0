/* bolt/format.h: bbolt's on-disk format (etcd's backend), byte by byte.
 *
 * The source of truth is go.etcd.io/bbolt (page.go, db.go meta, bucket.go,
 * node.go, freelist.go, tx.go). All integers are little-endian (bbolt
 * writes host order; every platform etcd ships on is little-endian). The
 * file is an array of pages of PAGE_SIZE bytes (the meta's pageSize, the
 * OS page size when created: 4096). Page n starts at byte n * PAGE_SIZE.
 *
 * PAGE HEADER (every page; 16 bytes)
 *   OFFSET SIZE DESCRIPTION
 *   0      8    id: the page's own pgid (0 inside an inline bucket)
 *   8      2    flags: 0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist
 *   10     2    count: elements in the page (freelist: 0xFFFF = escape)
 *   12     4    overflow: pages that follow this one in the same node
 *   16     ...  data (elements, meta or freelist ids)
 * A node bigger than a page takes 1 + overflow contiguous pages.
 *
 * META (data of pages 0 and 1; 64 bytes at page offset 16)
 *   OFFSET SIZE DESCRIPTION
 *   0      4    magic 0xED0CDAED
 *   4      4    version 2
 *   8      4    pageSize
 *   12     4    flags: bbolt writes 0 and ignores it; cairn: see below
 *   16     8    root bucket: root pgid
 *   24     8    root bucket: sequence
 *   32     8    freelist pgid (0xFFFFFFFFFFFFFFFF: not synced, rebuild)
 *   40     8    pgid: high water mark, first page never allocated
 *   48     8    txid of the transaction that wrote this meta
 *   56     8    checksum: FNV-1a 64 over meta bytes [0, 56)
 * Transaction txid writes meta page txid % 2. bbolt opens the valid meta
 * (magic, version, checksum) with the highest txid.
 *
 * CAIRN'S META FLAGS: unsynced commits (commit(e, false), no fdatasync).
 *   bit 0      BOLT_MF_UNSYNCED: this meta was written without fdatasync
 *   bits 1-31  with bit 0: the tag of the boot that wrote it (a hash of
 *              /proc/sys/kernel/random/boot_id; 0 unknown)
 *   flags 0 is a synced meta (what bbolt writes: etcd syncs every commit).
 * Slot rule: let S be the last synced transaction. S's meta page is never
 * written while S is the last synced one: every later transaction takes a
 * txid of the other parity (txids may skip one), so its meta goes to the
 * other page, and S's tree pages are not written either (bolt.c
 * invariant 6). A synced commit writes pages, fdatasync, its meta (flags
 * 0), fdatasync, and becomes S.
 * Open rule: a meta is trusted if it is synced, or unsynced with the tag
 * of the running boot (no power loss since: the page cache still holds
 * every page it points to, as after a kill -9). Open uses the trusted
 * valid meta with the highest txid, and first makes it synced when it is
 * not (fdatasync, rewrite it with flags 0, fdatasync). A newer unsynced
 * meta from another boot is ignored (logged): a power loss may have lost
 * its pages; the caller's WAL replays the commits it held.
 *
 * BRANCH ELEMENT (count of them right after the header; 16 bytes each)
 *   OFFSET SIZE DESCRIPTION
 *   0      4    pos: offset of the key from the start of THIS element
 *   4      4    ksize
 *   8      8    pgid of the child whose keys are >= this key
 *
 * LEAF ELEMENT (16 bytes each)
 *   OFFSET SIZE DESCRIPTION
 *   0      4    flags: 0x01 bucketLeafFlag (value is a bucket)
 *   4      4    pos: offset of the key from the start of THIS element
 *   8      4    ksize
 *   12     4    vsize; the value follows the key
 * Keys and values are written after all the elements, in element order.
 * Keys within a page are strictly ascending (memcmp, shorter first).
 *
 * BUCKET VALUE (the value of a leaf element with bucketLeafFlag)
 *   OFFSET SIZE DESCRIPTION
 *   0      8    root pgid of the bucket's B+tree; 0 = inline bucket
 *   8      8    sequence
 *   16     ...  inline only: a leaf page (header with id 0 + elements)
 * A bucket is written inline when its root is a leaf holding no nested
 * bucket and header + elements + data <= PAGE_SIZE / 4.
 * The root bucket (in the meta) holds the top-level buckets: etcd's
 * "key", "meta", "lease", ... are leaf elements with bucketLeafFlag.
 *
 * FREELIST PAGE (flags 0x10)
 *   count < 0xFFFF: count sorted u64 pgids at offset 16
 *   count = 0xFFFF: u64 n at offset 16, then n sorted u64 pgids
 * It lists the free pages and the pages pending release (free at the
 * commit, reusable once no reader can see them), so after a reopen all of
 * them are free.
 *
 * A new file (bbolt's init): meta 0 (txid 0), meta 1 (txid 1), page 2 an
 * empty freelist, page 3 an empty leaf (the root bucket); pgid 4.
 */
#ifndef CAIRN_ENGINES_BOLT_FORMAT_H
#define CAIRN_ENGINES_BOLT_FORMAT_H

#include <stdint.h>
#include <string.h>

#define BOLT_MAGIC 0xED0CDAEDu
#define BOLT_VERSION 2u
#define BOLT_PGID_NONE UINT64_MAX /* freelist not synced */

#define BOLT_PAGE_HDR 16
#define BOLT_PH_ID 0
#define BOLT_PH_FLAGS 8
#define BOLT_PH_COUNT 10
#define BOLT_PH_OVERFLOW 12

#define BOLT_FLAG_BRANCH 0x01
#define BOLT_FLAG_LEAF 0x02
#define BOLT_FLAG_META 0x04
#define BOLT_FLAG_FREELIST 0x10

#define BOLT_META_SIZE 64
#define BOLT_M_MAGIC 0
#define BOLT_M_VERSION 4
#define BOLT_M_PAGESIZE 8
#define BOLT_M_FLAGS 12
#define BOLT_M_ROOT 16
#define BOLT_M_SEQ 24
#define BOLT_M_FREELIST 32
#define BOLT_M_PGID 40
#define BOLT_M_TXID 48
#define BOLT_M_CHECKSUM 56
#define BOLT_MF_UNSYNCED 0x1u /* cairn: meta written without fdatasync */
#define BOLT_MF_BOOT_SHIFT 1  /* cairn: boot tag above the unsynced bit */

#define BOLT_ELEM_SIZE 16 /* branch and leaf elements alike */
#define BOLT_BE_POS 0
#define BOLT_BE_KSIZE 4
#define BOLT_BE_PGID 8
#define BOLT_LE_FLAGS 0
#define BOLT_LE_POS 4
#define BOLT_LE_KSIZE 8
#define BOLT_LE_VSIZE 12
#define BOLT_LEAF_BUCKET 0x01 /* bucketLeafFlag */

#define BOLT_BUCKET_HDR 16
#define BOLT_BH_ROOT 0
#define BOLT_BH_SEQ 8

#define BOLT_FREELIST_ESCAPE 0xFFFF
#define BOLT_MIN_KEYS 2 /* minKeysPerPage */

static inline uint16_t bolt_ld16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t bolt_ld32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t bolt_ld64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void bolt_st16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void bolt_st32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void bolt_st64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* FNV-1a 64, bbolt's meta checksum. */
static inline uint64_t bolt_fnv64a(const uint8_t *p, size_t n)
{
	uint64_t h = 14695981039346656037ull;

	while (n--) {
		h ^= *p++;
		h *= 1099511628211ull;
	}
	return h;
}

#endif
