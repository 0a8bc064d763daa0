/* engine: the registry of built-in storage engines.
 *
 * configure defines HAVE_<ENGINE> for each engine it builds and may define
 * CAIRN_DEFAULT_ENGINE ("bolt", "sqlite", ...). Adding an engine is two
 * lines under its HAVE_ guard: include its header, list its ops.
 *
 * Invariants:
 * 1. engine_builtin[] holds each built engine once, NULL-terminated.
 * 2. engine_ordered[] is engine_builtin[] with the default engine moved
 *    first; it is filled once (pthread_once) and never changes after.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "engines/engine.h"
#ifdef HAVE_BOLT
#include "engines/bolt/bolt.h"
#endif
#ifdef HAVE_SQLITE
#include "engines/sqlite.h"
#endif
#ifdef HAVE_ROCKSDB
#include "engines/rocksdb.h"
#endif

/* Built-in engines. To add one (bolt, rocksdb, ...), include its header
 * above and list its ops here, each under its HAVE_ guard:
 *	#ifdef HAVE_ROCKSDB
 *		&rocksdb_engine_ops,
 *	#endif
 * Order matters only without CAIRN_DEFAULT_ENGINE: the first is then the
 * default. */
static const struct engine_ops *const engine_builtin[] = {
#ifdef HAVE_BOLT
	&bolt_engine_ops,
#endif
#ifdef HAVE_SQLITE
	&sqlite_engine_ops,
#endif
#ifdef HAVE_ROCKSDB
	&rocksdb_engine_ops,
#endif
	NULL,
};

#define ENGINE_NBUILTIN (sizeof(engine_builtin) / sizeof(engine_builtin[0]) - 1)

static const struct engine_ops *engine_ordered[ENGINE_NBUILTIN + 1];
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static const struct engine_ops *engine_builtin_find(const char *name)
{
	size_t i;

	if (!name)
		return NULL;
	for (i = 0; engine_builtin[i]; i++)
		if (strcmp(engine_builtin[i]->name, name) == 0)
			return engine_builtin[i];
	return NULL;
}

const char *engine_default_name(void)
{
#ifdef CAIRN_DEFAULT_ENGINE
	return CAIRN_DEFAULT_ENGINE;
#else
	/* No engine built at all is a configure bug; "none" finds nothing. */
	return engine_builtin[0] ? engine_builtin[0]->name : "none";
#endif
}

static void engine_order(void)
{
	const struct engine_ops *def;
	size_t i, n = 0;

	def = engine_builtin_find(engine_default_name());
	if (def)
		engine_ordered[n++] = def;
	for (i = 0; engine_builtin[i]; i++)
		if (engine_builtin[i] != def)
			engine_ordered[n++] = engine_builtin[i];
	engine_ordered[n] = NULL;
}

const struct engine_ops *const *engine_list(void)
{
	pthread_once(&engine_once, engine_order);
	return engine_ordered;
}

const struct engine_ops *engine_find(const char *name)
{
	return engine_builtin_find(name);
}

int engine_open(const char *name, const char *path,
		const struct engine_config *cfg, struct engine_handle *h)
{
	const struct engine_ops *ops;
	struct engine *e = NULL;
	int err;

	h->ops = NULL;
	h->e = NULL;
	ops = engine_find(name);
	if (!ops)
		return -ENOENT;
	/* An engine built against another vtable layout must not be run. */
	if (ops->version != ENGINE_OPS_VERSION)
		return -EINVAL;
	err = ops->open(path, cfg, &e);
	if (err)
		return err;
	h->ops = ops;
	h->e = e;
	return 0;
}

void engine_close(struct engine_handle *h)
{
	if (h->ops && h->e)
		h->ops->close(h->e);
	h->ops = NULL;
	h->e = NULL;
}
