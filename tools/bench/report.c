/* report: cairn-bench's results as text or as one JSON line. */
#include "tools/bench/bench.h"

#include <string.h>

static const char *const status_names[BENCH_NSTATUS] = {
	"OK",
	"CANCELLED",
	"UNKNOWN",
	"INVALID_ARGUMENT",
	"DEADLINE_EXCEEDED",
	"NOT_FOUND",
	"ALREADY_EXISTS",
	"PERMISSION_DENIED",
	"RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION",
	"ABORTED",
	"OUT_OF_RANGE",
	"UNIMPLEMENTED",
	"INTERNAL",
	"UNAVAILABLE",
	"DATA_LOSS",
	"UNAUTHENTICATED",
};

const char *bench_status_name(int code)
{
	return code >= 0 && code < BENCH_NSTATUS ? status_names[code] : "?";
}

static const double pcts[] = {50, 90, 99, 99.9};
static const char *const pct_names[] = {"p50", "p90", "p99", "p99.9"};
#define NPCT (sizeof(pcts) / sizeof(pcts[0]))

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static double rate(const struct bench_result *r)
{
	return r->seconds > 0 ? (double)r->requests / r->seconds : 0.0;
}

static double us_per_req(const struct bench_result *r)
{
	return r->requests
		       ? (r->cpu_user + r->cpu_sys) * 1e6 / (double)r->requests
		       : 0.0;
}

static void text_errors(FILE *out, const struct bench_result *r)
{
	int i;

	fprintf(out, "errors:      %llu", (unsigned long long)r->errors);
	for (i = 1; i < BENCH_NSTATUS; i++)
		if (r->by_status[i])
			fprintf(out, "  %s(%d)=%llu", status_names[i], i,
				(unsigned long long)r->by_status[i]);
	if (r->transport)
		fprintf(out, "  transport=%llu",
			(unsigned long long)r->transport);
	fputc('\n', out);
	if (r->unfinished)
		fprintf(out,
			"unfinished:  %llu (no response when the run "
			"ended)\n",
			(unsigned long long)r->unfinished);
	if (r->first_error[0])
		fprintf(out, "first error: %s\n", r->first_error);
}

void bench_report_text(FILE *out, const struct bench_cfg *cfg,
		       const struct bench_result *r)
{
	size_t i;

	fprintf(out,
		"workload:    %s%s (clients %u, conns %u, endpoints %u, "
		"key-size %zu, val-size %zu)\n",
		r->name, r->aborted ? " ABORTED" : "", cfg->clients, cfg->conns,
		cfg->nep, cfg->key_size, cfg->val_size);
	fprintf(out, "requests:    %llu\n", (unsigned long long)r->requests);
	if (cfg->workload == BENCH_NONE || !strcmp(r->name, "preload"))
		fprintf(out, "keys:        %llu\n",
			(unsigned long long)r->keys);
	text_errors(out, r);
	fprintf(out, "seconds:     %.3f\n", r->seconds);
	fprintf(out, "throughput:  %.1f req/s\n", rate(r));
	fprintf(out, "latency ms:  min %.3f  mean %.3f",
		ms(r->lat.count ? r->lat.min : 0), hist_mean(&r->lat) / 1e6);
	for (i = 0; i < NPCT; i++)
		fprintf(out, "  %s %.3f", pct_names[i],
			ms(hist_percentile(&r->lat, pcts[i])));
	fprintf(out, "  max %.3f\n", ms(r->lat.max));
	fprintf(out, "bench cpu:   user %.3f s  sys %.3f s  (%.1f us/req)\n",
		r->cpu_user, r->cpu_sys, us_per_req(r));
}

/* JSON string body of s (escaping quotes, backslashes, controls). */
static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

void bench_report_json(FILE *out, const struct bench_cfg *cfg,
		       const struct bench_result *r)
{
	const char *sep = "";
	size_t i;
	int s;

	fprintf(out,
		"{\"workload\":\"%s\",\"aborted\":%s,\"clients\":%u,"
		"\"conns\":%u,\"requests\":%llu,\"keys\":%llu,\"errors\":%llu,"
		"\"unfinished\":%llu,\"seconds\":%.6f,\"throughput\":%.2f,",
		r->name, r->aborted ? "true" : "false", cfg->clients,
		cfg->conns, (unsigned long long)r->requests,
		(unsigned long long)r->keys, (unsigned long long)r->errors,
		(unsigned long long)r->unfinished, r->seconds, rate(r));
	fprintf(out, "\"latency_ms\":{\"min\":%.6f,\"mean\":%.6f",
		ms(r->lat.count ? r->lat.min : 0), hist_mean(&r->lat) / 1e6);
	for (i = 0; i < NPCT; i++)
		fprintf(out, ",\"%s\":%.6f", pct_names[i],
			ms(hist_percentile(&r->lat, pcts[i])));
	fprintf(out, ",\"max\":%.6f},\"errors_by_status\":{", ms(r->lat.max));
	for (s = 1; s < BENCH_NSTATUS; s++) {
		if (!r->by_status[s])
			continue;
		fprintf(out, "%s\"%s\":%llu", sep, status_names[s],
			(unsigned long long)r->by_status[s]);
		sep = ",";
	}
	if (r->transport)
		fprintf(out, "%s\"TRANSPORT\":%llu", sep,
			(unsigned long long)r->transport);
	fprintf(out, "},\"first_error\":");
	json_str(out, r->first_error);
	fprintf(out,
		",\"resp_bytes\":%llu,\"cpu_user_s\":%.6f,"
		"\"cpu_sys_s\":%.6f,\"cpu_us_per_req\":%.3f}\n",
		(unsigned long long)r->resp_bytes, r->cpu_user, r->cpu_sys,
		us_per_req(r));
}
