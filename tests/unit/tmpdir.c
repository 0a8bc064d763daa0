#include "tests/unit/tmpdir.h"

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

void ut_tmpdir(char *buf, size_t cap, const char *name)
{
	int n = snprintf(buf, cap, "/tmp/%s.XXXXXX", name);

	ck_assert(n > 0 && (size_t)n < cap);
	ck_assert_ptr_nonnull(mkdtemp(buf));
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

void ut_rmtree(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
