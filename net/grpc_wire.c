/* grpc_wire: gRPC message framing, grpc-message escaping, path splitting.
 *
 * Invariants of struct grpc_framer:
 *  1. hdr_got < 5 while collecting a prefix; buf == NULL then.
 *  2. In BODY, buf holds cap + 1 bytes, got <= cap <= len.
 *  3. A message handed out moves buf to the caller; the framer keeps none.
 *  4. err != 0 is final: feed() consumes nothing more.
 *  5. Memory never exceeds max + 1 bytes, whatever the input: the
 *     announced length is checked before anything is allocated, and the
 *     body buffer grows with the bytes that actually arrived (a peer that
 *     announces 4 MiB and sends 5 bytes costs 16 KiB, not 4 MiB).
 */
#include "net/grpc_wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void grpc_wire_put_hdr(uint8_t hdr[GRPC_WIRE_HDR_LEN], uint32_t len)
{
	hdr[0] = 0;
	hdr[1] = (uint8_t)(len >> 24);
	hdr[2] = (uint8_t)(len >> 16);
	hdr[3] = (uint8_t)(len >> 8);
	hdr[4] = (uint8_t)len;
}

void grpc_framer_init(struct grpc_framer *f, size_t max)
{
	memset(f, 0, sizeof(*f));
	f->max = max;
}

void grpc_framer_reset(struct grpc_framer *f)
{
	free(f->buf);
	f->buf = NULL;
	f->hdr_got = 0;
	f->got = 0;
}

bool grpc_framer_idle(const struct grpc_framer *f)
{
	return f->hdr_got == 0 && f->buf == NULL;
}

/* The prefix is complete: validate it and make room for the body. */
static int framer_start_body(struct grpc_framer *f)
{
	f->len = (uint32_t)f->hdr[1] << 24 | (uint32_t)f->hdr[2] << 16 |
		 (uint32_t)f->hdr[3] << 8 | f->hdr[4];
	if (f->hdr[0] == 1)
		return GRPC_FRAMER_COMPRESSED;
	if (f->hdr[0] != 0)
		return GRPC_FRAMER_BAD_FLAG;
	if (f->len > f->max) {
		f->err_len = f->len;
		return GRPC_FRAMER_TOO_LARGE;
	}
	f->cap = f->len < GRPC_FRAMER_FIRST_CHUNK ? f->len
						  : GRPC_FRAMER_FIRST_CHUNK;
	/* +1: an empty message still gets a distinct non-NULL pointer. */
	f->buf = malloc(f->cap + 1);
	if (!f->buf)
		return GRPC_FRAMER_NOMEM;
	f->got = 0;
	return GRPC_FRAMER_OK;
}

/* Make room for at least want body bytes (want <= len): double, capped. */
static int framer_grow(struct grpc_framer *f, size_t want)
{
	size_t cap = f->cap;
	uint8_t *nb;

	while (cap < want)
		cap = cap * 2 > f->len ? f->len : cap * 2;
	nb = realloc(f->buf, cap + 1);
	if (!nb)
		return GRPC_FRAMER_NOMEM;
	f->buf = nb;
	f->cap = cap;
	return GRPC_FRAMER_OK;
}

size_t grpc_framer_feed(struct grpc_framer *f, const uint8_t *p, size_t n,
			uint8_t **msg, size_t *len)
{
	size_t used = 0;

	*msg = NULL;
	*len = 0;
	while (!f->err && (used < n || (f->buf && f->got == f->len))) {
		if (!f->buf) {
			size_t k = GRPC_WIRE_HDR_LEN - f->hdr_got;

			if (k > n - used)
				k = n - used;
			memcpy(f->hdr + f->hdr_got, p + used, k);
			f->hdr_got += k;
			used += k;
			if (f->hdr_got < GRPC_WIRE_HDR_LEN)
				break;
			f->err = framer_start_body(f);
			continue;
		}
		if (f->got < f->len) {
			size_t k = f->len - f->got;

			if (k > n - used)
				k = n - used;
			if (f->got + k > f->cap &&
			    (f->err = framer_grow(f, f->got + k)))
				break;
			memcpy(f->buf + f->got, p + used, k);
			f->got += k;
			used += k;
		}
		if (f->got == f->len) {
			*msg = f->buf;
			*len = f->len;
			f->buf = NULL;
			f->hdr_got = 0;
			f->got = 0;
			break;
		}
	}
	return used;
}

static bool pct_needed(unsigned char c)
{
	return c < 0x20 || c > 0x7e || c == '%';
}

char *grpc_wire_pct_encode(const char *msg)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)msg;
	size_t n = 0;
	char *out, *o;

	for (const unsigned char *q = s; *q; q++)
		n += pct_needed(*q) ? 3 : 1;
	out = malloc(n + 1);
	if (!out)
		return NULL;
	o = out;
	for (; *s; s++) {
		if (pct_needed(*s)) {
			*o++ = '%';
			*o++ = hex[*s >> 4];
			*o++ = hex[*s & 15];
		} else {
			*o++ = (char)*s;
		}
	}
	*o = 0;
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *grpc_wire_pct_decode(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;

	if (!out)
		return NULL;
	while (*s) {
		int hi, lo;

		if (s[0] == '%' && (hi = hexval(s[1])) >= 0 &&
		    (lo = hexval(s[2])) >= 0) {
			*o++ = (char)(hi << 4 | lo);
			s += 3;
		} else {
			*o++ = *s++;
		}
	}
	*o = 0;
	return out;
}

int grpc_wire_split_path(const char *path, const char **svc, size_t *svc_len,
			 const char **meth, size_t *meth_len)
{
	const char *slash;

	if (!path || path[0] != '/')
		return -EINVAL;
	slash = strrchr(path, '/');
	if (slash == path || slash == path + 1 || slash[1] == 0)
		return -EINVAL;
	*svc = path + 1;
	*svc_len = (size_t)(slash - path - 1);
	*meth = slash + 1;
	*meth_len = strlen(slash + 1);
	return 0;
}

int grpc_wire_parse_timeout(const char *s, uint64_t *usec)
{
	uint64_t v = 0, mul_num, mul_den;
	size_t i;

	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++)
		v = v * 10 + (uint64_t)(s[i] - '0');
	if (i == 0 || i > 8 || s[i] == 0 || s[i + 1] != 0)
		return -EINVAL;
	switch (s[i]) {
	case 'H': mul_num = 3600000000ULL; mul_den = 1; break;
	case 'M': mul_num = 60000000ULL; mul_den = 1; break;
	case 'S': mul_num = 1000000ULL; mul_den = 1; break;
	case 'm': mul_num = 1000; mul_den = 1; break;
	case 'u': mul_num = 1; mul_den = 1; break;
	case 'n': mul_num = 1; mul_den = 1000; break;
	default: return -EINVAL;
	}
	/* 8 digits * 3.6e9 < 2^64: no overflow possible. */
	*usec = (v * mul_num + mul_den - 1) / mul_den;
	return 0;
}
