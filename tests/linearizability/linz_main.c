/* linz_check: check history files for linearizability (format: linz.h).
 *
 *   linz_check [-q] [-s MAX_STEPS] [-m MAX_MiB] FILE...   ("-" is stdin)
 *
 * Prints, per file, "FILE: " and the checker's verdict lines (-q: only the
 * first line of each). Exit status: 0 all linearizable, 1 a violation in
 * some file, 2 inconclusive (a search budget ran out), 3 usage, read or
 * parse error. The worst status of all files wins (3 > 1 > 2 > 0).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/linearizability/linz.h"

static int worse(int a, int b)
{
	static const int rank[] = {0, 2, 1, 3}; /* by exit status */

	return rank[b] > rank[a] ? b : a;
}

/* check_file: the exit status for one file. */
static int check_file(const char *path, const struct linz_limits *lim,
		      int quiet)
{
	struct linz_history *h = NULL;
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	char err[512] = "", *buf = NULL;
	size_t len = 0;
	FILE *mem;
	int rc;

	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return 3;
	}
	rc = linz_history_load(f, path, &h, err, sizeof(err));
	if (f != stdin)
		fclose(f);
	if (rc < 0) {
		fprintf(stderr, "%s\n", err);
		return 3;
	}
	mem = open_memstream(&buf, &len);
	if (!mem) {
		linz_history_free(h);
		return 3;
	}
	rc = linz_check(h, lim, mem);
	fclose(mem);
	linz_history_free(h);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(-rc));
		free(buf);
		return 3;
	}
	if (quiet && strchr(buf, '\n'))
		strchr(buf, '\n')[1] = '\0';
	printf("%s: %s", path, buf);
	free(buf);
	return rc;
}

int main(int argc, char **argv)
{
	struct linz_limits lim = {0, 0, 0};
	int c, quiet = 0, status = 0;

	while ((c = getopt(argc, argv, "qs:m:")) != -1) {
		switch (c) {
		case 'q':
			quiet = 1;
			break;
		case 's':
			lim.max_steps = strtoull(optarg, NULL, 10);
			break;
		case 'm':
			lim.max_memory = strtoull(optarg, NULL, 10) << 20;
			break;
		default:
			goto usage;
		}
	}
	if (optind >= argc)
		goto usage;
	for (; optind < argc; optind++)
		status = worse(status, check_file(argv[optind], &lim, quiet));
	return status;
usage:
	fprintf(stderr, "usage: linz_check [-q] [-s MAX_STEPS] [-m MAX_MiB] "
			"FILE...\n");
	return 3;
}
