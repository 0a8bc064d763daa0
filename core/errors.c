#include "core/errors.h"

#include <string.h>

struct err_row {
	enum grpc_status status;
	const char *msg;
};

static const struct err_row rows[] = {
#define CAIRN_X_ROW(name, st, m) {st, m},
	CAIRN_ERROR_TABLE(CAIRN_X_ROW)
#undef CAIRN_X_ROW
};

static const struct err_row *row_of(int err)
{
	int i = -1000 - err;

	if (i < 0 || i >= (int)(sizeof(rows) / sizeof(rows[0])))
		return NULL;
	return &rows[i];
}

const char *cairn_strerror(int err)
{
	const struct err_row *r = row_of(err);

	if (err >= 0)
		return "ok";
	if (r)
		return r->msg;
	return strerror(-err);
}

enum grpc_status cairn_grpc_status(int err)
{
	const struct err_row *r = row_of(err);

	if (err >= 0)
		return GRPC_OK;
	if (r)
		return r->status;
	return GRPC_INTERNAL;
}
