/* tmpdir: scratch directories for unit tests. */
#ifndef CAIRN_TESTS_UNIT_TMPDIR_H
#define CAIRN_TESTS_UNIT_TMPDIR_H

#include <stddef.h>

/* Make a fresh directory /tmp/<name>.XXXXXX into buf (cap bytes); fails
 * the test if it cannot. */
void ut_tmpdir(char *buf, size_t cap, const char *name);

/* Remove dir and everything under it; quiet if it is gone. */
void ut_rmtree(const char *dir);

#endif
