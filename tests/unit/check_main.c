/* One runner for every unit-test suite.
 *
 * Usage: check_cairn [SUITE...]   (no argument: all suites)
 * CK_RUN_CASE / CK_RUN_SUITE from Check also work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/suites.h"

struct suite_entry {
	const char *name;
	Suite *(*make)(void);
};

static const struct suite_entry all_suites[] = {
#define CAIRN_SUITE_ROW(name) {#name, name##_suite},
	CAIRN_SUITES(CAIRN_SUITE_ROW)
#undef CAIRN_SUITE_ROW
};

static int wanted(const char *name, int argc, char **argv)
{
	if (argc < 2)
		return 1;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	SRunner *sr = NULL;
	size_t n = sizeof(all_suites) / sizeof(all_suites[0]);
	int failed;

	for (size_t i = 0; i < n; i++) {
		if (!wanted(all_suites[i].name, argc, argv))
			continue;
		if (!sr)
			sr = srunner_create(all_suites[i].make());
		else
			srunner_add_suite(sr, all_suites[i].make());
	}
	if (!sr) {
		fprintf(stderr, "check_cairn: no such suite\n");
		return 2;
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
