/*
 * sim-bench.c - how many simulated migrations one core completes per minute
 * (issue 5's speed goal: 64 MiB with workload, at least 1,000; issue 14's:
 * at least 5,000, every oracle still run after every case).
 *
 *   sim-bench [--runs N] [--seed S] [--goal G] [--json FILE] [SCENARIO]
 *
 * Runs SCENARIO (default scenarios/precopy/basic.yaml) through the same
 * executor as `migcert run` (harness/runner/exec.h: the sim loop, both
 * machines, the workload and every oracle), once to warm up and then N times
 * (default 20) with seeds S, S+1, ... (default 0x5eed), all in this process
 * on this thread.  CPU time is this process's user + system time from
 * getrusage over the N runs, so page faults of guest RAM count; process
 * start-up (dynamic linking, libcrypto's init) does not.
 *
 * Prints per-run cost and, last, the line
 *   simulated migrations (64 MiB, workload) per core-minute: N (goal 5000)
 * Exit status: 0 when every run passed its oracles (and, with --goal, the
 * figure reached G), 1 otherwise, 2 on usage errors.
 *
 * Test support: a harness program, so it may read clocks; it is never part
 * of libmigcert.a.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "runner/exec.h"
#include "runner/scenario.h"

static double cpu_seconds(double *user, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    return *user + *sys;
}

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "sim-bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nusage: sim-bench [--runs N] [--seed S] [--goal G] [--json FILE] "
                    "[SCENARIO]\n");
    return 2;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || s[0] == '-')
        return -EINVAL;
    *out = v;
    return 0;
}

/* One case; prints why when it did not pass. */
static bool run_one(const Scenario *scn, uint64_t seed)
{
    RunCase c = {.scn = scn, .seed = seed};
    RunResult *r = mig_malloc0(sizeof(*r));
    int rc = exec_run_case(&c, r);
    bool ok = rc == 0 && r->passed && !r->skipped;
    if (!ok)
        fprintf(stderr, "sim-bench: %s seed 0x%llx %s: %s\n", scn->path,
                (unsigned long long)seed, r->skipped ? "skipped" : "failed",
                r->error[0] ? r->error : "setup failed");
    free(r);
    return ok;
}

int main(int argc, char **argv)
{
    uint64_t runs = 20, seed = 0x5eed, goal = 0;
    const char *json = NULL, *path = "scenarios/precopy/basic.yaml";
    enum { O_RUNS = 256, O_SEED, O_GOAL, O_JSON };
    static const struct option lopts[] = {
        {"runs", required_argument, NULL, O_RUNS},
        {"seed", required_argument, NULL, O_SEED},
        {"goal", required_argument, NULL, O_GOAL},
        {"json", required_argument, NULL, O_JSON},
        {0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        switch (opt) {
        case O_RUNS:
            if (parse_u64(optarg, &runs) < 0 || runs == 0)
                return usage("invalid --runs '%s' (a positive count)", optarg);
            break;
        case O_SEED:
            if (parse_u64(optarg, &seed) < 0)
                return usage("invalid --seed '%s' (decimal or 0x hex)", optarg);
            break;
        case O_GOAL:
            if (parse_u64(optarg, &goal) < 0)
                return usage("invalid --goal '%s'", optarg);
            break;
        case O_JSON:
            json = optarg;
            break;
        default:
            return usage("unknown option%s", "");
        }
    }
    if (optind < argc)
        path = argv[optind++];
    if (optind < argc)
        return usage("one scenario only (got '%s' too)", argv[optind]);

    MigErr *err = NULL;
    Scenario *scn = scenario_load(path, &err);
    if (!scn) {
        fprintf(stderr, "sim-bench: %s\n", err ? err->msg : path);
        mig_err_free(err);
        return 1;
    }
    int status = 0;
    /* Warm-up: the allocator's arenas and the kernel's free huge pages get
     * into the state every later run finds. */
    if (!run_one(scn, seed)) {
        status = 1;
        goto out;
    }
    double u0, s0, u1, s1;
    double c0 = cpu_seconds(&u0, &s0), w0 = wall_seconds();
    for (uint64_t i = 0; i < runs; i++)
        if (!run_one(scn, seed + 1 + i)) {
            status = 1;
            goto out;
        }
    double c1 = cpu_seconds(&u1, &s1), w1 = wall_seconds();
    double per = (c1 - c0) / (double)runs;
    uint64_t per_min = per > 0 ? (uint64_t)(60.0 / per) : 0;
    char what[96];
    snprintf(what, sizeof(what), "%llu MiB%s", (unsigned long long)(scn->src.ram >> 20),
             scn->dirty_rate ? ", workload" : "");
    printf("sim-bench: %s x %llu: %.1f ms CPU per migration (user %.1f, sys %.1f), "
           "%.1f ms wall\n",
           scn->path, (unsigned long long)runs, per * 1e3, (u1 - u0) / (double)runs * 1e3,
           (s1 - s0) / (double)runs * 1e3, (w1 - w0) / (double)runs * 1e3);
    printf("simulated migrations (%s) per core-minute: %llu (goal 5000)\n", what,
           (unsigned long long)per_min);
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            fprintf(stderr, "sim-bench: cannot write %s: %s\n", json, strerror(errno));
            status = 1;
        } else {
            fprintf(f,
                    "{\"scenario\": \"%s\", \"runs\": %llu, \"cpu_ms_per_run\": %.3f, "
                    "\"user_ms_per_run\": %.3f, \"sys_ms_per_run\": %.3f, "
                    "\"wall_ms_per_run\": %.3f, \"per_core_minute\": %llu, \"goal\": 5000}\n",
                    scn->path, (unsigned long long)runs, per * 1e3,
                    (u1 - u0) / (double)runs * 1e3, (s1 - s0) / (double)runs * 1e3,
                    (w1 - w0) / (double)runs * 1e3, (unsigned long long)per_min);
            fclose(f);
        }
    }
    if (goal && per_min < goal)
        status = 1;
out:
    scenario_free(scn);
    return status;
}
