/* cairn-bench: entry point (see bench.h and tools/bench/README.md).
 *
 * Exit status: 0 when every request succeeded, 1 when some failed or the
 * run was cut short, 2 on a bad command line or when no connection could
 * be made. */
#include "tools/bench/bench.h"

#include <signal.h>
#include <stdlib.h>

static struct bench_result pre, res; /* ~37 KB each: not on the stack */

static int report(const struct bench_cfg *cfg, const struct bench_result *r)
{
	if (cfg->json)
		bench_report_json(stdout, cfg, r);
	else
		bench_report_text(stdout, cfg, r);
	return r->errors || r->aborted;
}

int main(int argc, char **argv)
{
	struct bench_cfg cfg;
	int rc, bad = 0;

	rc = bench_parse(&cfg, argc, argv, stdout, stderr);
	if (rc)
		return rc > 0 ? 0 : 2;
	signal(SIGPIPE, SIG_IGN); /* a lost server is an error, not death */
	if (bench_run(&cfg, &pre, &res))
		return 2;
	if (cfg.preload) {
		/* Preload's own report goes to stderr when a workload follows,
		 * so stdout holds the workload's result alone. */
		if (cfg.workload != BENCH_NONE && !cfg.quiet)
			bench_report_text(stderr, &cfg, &pre);
		else if (cfg.workload == BENCH_NONE)
			bad |= report(&cfg, &pre);
		bad |= pre.errors || pre.aborted;
	}
	if (cfg.workload != BENCH_NONE && !(cfg.preload && pre.aborted))
		bad |= report(&cfg, &res);
	return bad ? 1 : 0;
}
