/* arena: bump allocation for one request's scratch memory.
 *
 * Building a response (nested txn responses, kv arrays, range results)
 * makes many small allocations that all die together once the response
 * is encoded. An arena hands them out from a few chunks and frees them at
 * once; arena_defer() registers other cleanups (e.g. an mvcc range result)
 * to run at arena_reset()/arena_free(), in reverse order of registration.
 *
 * Errors: arena_alloc/arena_defer return NULL/-ENOMEM when out of memory.
 */
#ifndef CAIRN_CORE_UTIL_ARENA_H
#define CAIRN_CORE_UTIL_ARENA_H

#include <stddef.h>

struct arena_chunk;
struct arena_defer;

struct arena {
	struct arena_chunk *chunks;
	struct arena_defer *defers;
};

#define ARENA_INIT {NULL, NULL}

/* n bytes, zeroed, aligned for any type; valid until reset/free. */
void *arena_alloc(struct arena *a, size_t n);
/* Run fn(arg) at reset/free. 0 or -ENOMEM (then fn(arg) ran at once). */
int arena_defer(struct arena *a, void (*fn)(void *), void *arg);
/* Run deferred cleanups and release every allocation. */
void arena_free(struct arena *a);

#endif
