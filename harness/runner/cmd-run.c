/*
 * cmd-run.c - `migcert run [PATH...] [options]`: run scenario files in the
 * simulator (harness/runner/exec.h, exec-case.c) and report.
 *
 *   PATH...          files or folders (recursively *.yaml); default scenarios
 *   --seed N         the run's seed (decimal or 0x hex; default 0x5eed)
 *   --pair SRC:DST   run as these releases (e.g. 2.0:1.1)
 *   --pairs all      every ordered pair of releases (16 cases per scenario)
 *   --fault SPEC     add a fault (faults-spec.h grammar); repeatable
 *   --sweep          for each case: fail hit 1, 2, 3 ... of each point the
 *                    case reaches (or of the --fault points given without a
 *                    trigger) until a run does not reach that hit (the
 *                    scenario's own faults firing do not count); each hit a
 *                    case, at most 1000000 per point;
 *                    stream-damage points (.../omit-...) only when named;
 *                    a point that wraps another one for one
 *                    (MIG_FAULT_WRAPS) to its 16th hit unless named
 *   --shard I/N      run the I-th of N shares of the cases (1 <= I <= N)
 *   -k PAT           only cases whose id contains PAT (repeatable: any);
 *                    a selection that matches no case exits 2
 *   --json F         {"seed", "cases": [{"id", "status", "seed", "pair",
 *                    "faults", "trace_hash", "repro", "error", "outcome",
 *                    "scenario", "src", "dst", "devices", "spice_channels",
 *                    "mig_error", "fired", "first_fired", "virtual_ns",
 *                    "timeline", "spice_channel_verdicts",
 *                    "spice_channel_errors", "reached"}]}: src/dst the releases
 *                    the case ran, reached the fault points ("side:point")
 *                    its run hit, fired or not (not in sweep cases),
 *                    mig_error the migration's own error (a pair refused
 *                    by pre-flight names its rule there), timeline the
 *                    events a report draws (run-timeline.h), the SPICE
 *                    oracle's verdict per channel and why (oracle-spice.c);
 *                    what
 *                    `migcert report` reads (docs/report.md)
 *   --junit F        JUnit XML
 *   --list           print the case ids and exit
 *   -v               echo each case's event trace on stderr
 *   -h, --help       usage on stdout, exit 0
 *
 * Output: the seed first; progress on stderr (run-progress.h: one line per
 * case, `PASS|FAIL id ... trace <hash>`, or on a terminal one line
 * rewritten in place) and one summary line; at the end a table of failures
 * with exactly one `REPRO:` line each, how many pair combinations were not
 * applicable and why, then `N passed, N failed` last.  A pair that cannot
 * run a scenario (exec_case_applicable: a device the source machine type
 * lacks, a capability not known or not offered) is no case at all: not
 * listed, not run, not in the JSON, whose status is only passed|failed.
 * A case id is the scenario path below scenarios/ without .yaml, plus
 * `[SRC:DST]` with a pair and `+SPEC` for each extra fault.  Exit status: 0
 * iff every case passed, 1 otherwise, 2 on usage errors.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common/buf.h"
#include "common/faults.h"
#include "devices/releases.h"
#include "exec.h"
#include "heap-count.h"
#include "report.h"
#include "run-progress.h"
#include "run-timeline.h"

typedef struct Case {
    char *id;
    char *path;
    Scenario *scn;     /* NULL when the file did not load */
    char *load_error;  /* why */
    const char *pair_src, *pair_dst;
    MigFaultSpec *extra;
    size_t nextra;
    /* results */
    const char *status; /* "passed" "failed" */
    char *error;
    char *outcome;
    char *repro;
    char trace_hash[65];
    char *mig_error;
    uint64_t fired, virtual_ns;
    char first_fired[96];
    json_t *timeline, *channels;
    json_t *spice_verdicts, *spice_errors; /* RunResult.spice by channel name */
    json_t *reached;   /* "side:point" hit by the run (run_one's cases only) */
} Case;

typedef struct Opts {
    const char *argv0;
    uint64_t seed;
    char **paths;
    size_t npaths;
    char *pair_src, *pair_dst;
    bool all_pairs;
    MigFaultSpec faults[16];
    char *fault_text[16];
    size_t nfaults;
    bool sweep, list, verbose;
    unsigned shard_i, shard_n;
    char *k[16];
    size_t nk;
    const char *json, *junit;
    size_t na[EXEC_NA__COUNT]; /* pair combinations left out, by reason */
    bool help;
    Scenario **scns; /* every loaded scenario, freed at the end */
    size_t nscns;
} Opts;

typedef struct Cases {
    Case *v;
    size_t n, cap;
    size_t passed, failed;
} Cases;

static Case *case_add(Cases *cs)
{
    MIG_GROW(cs->v, cs->cap, cs->n + 1, 64);
    Case *c = &cs->v[cs->n++];
    memset(c, 0, sizeof(*c));
    return c;
}

static void case_clear(Case *c)
{
    free(c->id);
    free(c->path);
    free(c->load_error);
    free(c->extra);
    free(c->error);
    free(c->outcome);
    free(c->repro);
    free(c->mig_error);
    json_decref(c->timeline);
    json_decref(c->channels);
    json_decref(c->spice_verdicts);
    json_decref(c->spice_errors);
    json_decref(c->reached);
}

static char *shell_quote(const char *s)
{
    bool plain = true;
    for (const char *p = s; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:", *p))
            plain = false;
    if (plain && *s)
        return mig_strdup(s);
    return mig_strdup_printf("'%s'", s); /* specs and paths never hold quotes */
}

static char *make_id(const char *path, const char *ps, const char *pd, const MigFaultSpec *extra,
                     size_t nextra)
{
    const char *rel = strstr(path, "scenarios/");
    rel = rel ? rel + strlen("scenarios/") : path;
    size_t len = strlen(rel);
    if (len > 5 && !strcmp(rel + len - 5, ".yaml"))
        len -= 5;
    char *id = mig_strdup_printf("%.*s", (int)len, rel);
    if (ps) {
        char *n = mig_strdup_printf("%s[%s:%s]", id, ps, pd);
        free(id);
        id = n;
    }
    for (size_t i = 0; i < nextra; i++) {
        char spec[128];
        mig_fault_spec_format(&extra[i], spec, sizeof(spec));
        char *n = mig_strdup_printf("%s+%s", id, spec);
        free(id);
        id = n;
    }
    return id;
}

static char *make_repro(const Opts *o, const Case *c)
{
    char *q = shell_quote(c->path);
    char *r = mig_strdup_printf("%s run %s --seed 0x%llx", o->argv0, q,
                                (unsigned long long)o->seed);
    free(q);
    if (c->pair_src) {
        char *n = mig_strdup_printf("%s --pair %s:%s", r, c->pair_src, c->pair_dst);
        free(r);
        r = n;
    }
    for (size_t i = 0; i < c->nextra; i++) {
        char spec[128];
        mig_fault_spec_format(&c->extra[i], spec, sizeof(spec));
        char *n = mig_strdup_printf("%s --fault '%s'", r, spec);
        free(r);
        r = n;
    }
    return r;
}

static bool k_match(const Opts *o, const char *id)
{
    if (!o->nk)
        return true;
    for (size_t i = 0; i < o->nk; i++)
        if (strstr(id, o->k[i]))
            return true;
    return false;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (!*s || *end || errno)
        return -EINVAL;
    *out = v;
    return 0;
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "migcert run: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return 2;
}

static int parse_opts(int argc, char **argv, Opts *o)
{
    o->seed = 0x5eed;
    o->paths = mig_malloc0(sizeof(char *) * (size_t)(argc + 1));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED()                                                    \
    do {                                                          \
        if (!v)                                                   \
            return usage_error("option %s needs a value", a);     \
        i++;                                                      \
    } while (0)
        if (!strcmp(a, "--seed")) {
            NEED();
            if (parse_u64(v, &o->seed) < 0)
                return usage_error("invalid seed '%s' (decimal or 0x hex)", v);
        } else if (!strcmp(a, "--pair")) {
            NEED();
            const char *colon = strchr(v, ':');
            if (!colon)
                return usage_error("invalid pair '%s' (expected SRC:DST, e.g. 2.0:1.1)", v);
            o->pair_src = mig_strdup_printf("%.*s", (int)(colon - v), v);
            o->pair_dst = mig_strdup(colon + 1);
            if (!mig_release_find(o->pair_src) || !mig_release_find(o->pair_dst))
                return usage_error("unknown release in pair '%s' (known: 1.0, 1.1, 2.0, "
                                   "2.1-dev)", v);
        } else if (!strcmp(a, "--pairs")) {
            NEED();
            if (strcmp(v, "all"))
                return usage_error("--pairs takes 'all', not '%s'", v);
            o->all_pairs = true;
        } else if (!strcmp(a, "--fault")) {
            NEED();
            if (o->nfaults == MIG_ARRAY_SIZE(o->faults))
                return usage_error("too many --fault options (max 16)%s", "");
            MigErr *err = NULL;
            if (mig_fault_spec_parse(v, &o->faults[o->nfaults], &err) < 0) {
                fprintf(stderr, "migcert run: %s\n", err->msg);
                mig_err_free(err);
                return 2;
            }
            o->fault_text[o->nfaults++] = (char *)v;
        } else if (!strcmp(a, "--sweep")) {
            o->sweep = true;
        } else if (!strcmp(a, "--list")) {
            o->list = true;
        } else if (!strcmp(a, "-v")) {
            o->verbose = true;
        } else if (!strcmp(a, "--shard")) {
            NEED();
            if (sscanf(v, "%u/%u", &o->shard_i, &o->shard_n) != 2 || o->shard_n == 0 ||
                o->shard_i == 0 || o->shard_i > o->shard_n)
                return usage_error("invalid shard '%s' (expected I/N with 1 <= I <= N)", v);
        } else if (!strcmp(a, "-k")) {
            NEED();
            if (o->nk < MIG_ARRAY_SIZE(o->k))
                o->k[o->nk++] = (char *)v;
        } else if (!strcmp(a, "--json")) {
            NEED();
            o->json = v;
        } else if (!strcmp(a, "--junit")) {
            NEED();
            o->junit = v;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            o->help = true;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option '%s' (see migcert run --help)", a);
        } else {
            o->paths[o->npaths++] = (char *)a;
        }
#undef NEED
    }
    if (!o->npaths)
        o->paths[o->npaths++] = "scenarios";
    return 0;
}

/* Build the list of cases from the files and pairs, then -k and --shard. */
static int build_cases(Opts *o, Cases *cs)
{
    char **files = NULL;
    MigErr *err = NULL;
    int n = scenario_collect(o->paths, o->npaths, &files, &err);
    if (n < 0) {
        fprintf(stderr, "migcert run: %s\n", err->msg);
        mig_err_free(err);
        return 2;
    }
    Cases all = {0};
    for (int f = 0; f < n; f++) {
        MigErr *lerr = NULL;
        Scenario *scn = scenario_load(files[f], &lerr);
        if (scn) {
            o->scns = mig_realloc(o->scns, sizeof(Scenario *) * (o->nscns + 1));
            o->scns[o->nscns++] = scn;
        }
        size_t npairs = o->all_pairs ? mig_release_count() * mig_release_count() : 1;
        for (size_t p = 0; p < npairs; p++) {
            Case *c = case_add(&all);
            c->path = mig_strdup(files[f]);
            c->scn = scn;
            if (!scn)
                c->load_error = mig_strdup(lerr->msg);
            if (o->all_pairs) {
                c->pair_src = mig_release_at(p / mig_release_count())->name;
                c->pair_dst = mig_release_at(p % mig_release_count())->name;
            } else if (o->pair_src) {
                c->pair_src = mig_release_find(o->pair_src)->name;
                c->pair_dst = mig_release_find(o->pair_dst)->name;
            }
            /* with --sweep, a --fault without trigger names a point to sweep,
             * it is not injected into the base case */
            c->extra = mig_malloc0(sizeof(MigFaultSpec) * (o->nfaults + 1));
            for (size_t f = 0; f < o->nfaults; f++)
                if (!o->sweep || o->faults[f].when != MIG_FAULT_WHEN_ALWAYS)
                    c->extra[c->nextra++] = o->faults[f];
            c->id = make_id(c->path, c->pair_src, c->pair_dst, c->extra, c->nextra);
            if (!scn)
                break; /* one failing case per unreadable file */
            /* a pair that cannot run the scenario is no case at all */
            char why[256];
            RunCase probe = {.scn = scn, .pair_src = c->pair_src, .pair_dst = c->pair_dst};
            int na = exec_case_applicable(&probe, why, sizeof(why));
            if (na != EXEC_APPLICABLE) {
                o->na[na]++;
                case_clear(c);
                all.n--;
            }
        }
        mig_err_free(lerr);
    }
    scenario_paths_free(files, (size_t)n);
    /* -k, then the shard over what is left */
    size_t kept = 0;
    for (size_t i = 0; i < all.n; i++) {
        Case *c = &all.v[i];
        bool keep = k_match(o, c->id);
        if (keep && o->shard_n)
            keep = (kept++ % o->shard_n) == o->shard_i - 1;
        else if (keep)
            kept++;
        if (keep)
            *case_add(cs) = *c;
        else
            case_clear(c);
    }
    free(all.v);
    return 0;
}

static void print_progress(const Opts *o, RunProgress *pr, const Case *c)
{
    bool failed = strcmp(c->status, "passed") != 0;
    char pos[48];
    if (pr->total)
        snprintf(pos, sizeof(pos), "%zu/%zu", pr->done + 1, pr->total);
    else
        snprintf(pos, sizeof(pos), "%zu", pr->done + 1);
    char *line = mig_strdup_printf(
        "[%s] seed 0x%llx %s %s%s%s%s%s trace %s", pos, (unsigned long long)o->seed,
        failed ? "FAIL" : "PASS", c->id, c->outcome ? " " : "", c->outcome ? c->outcome : "",
        c->error && failed ? ": " : "", c->error && failed ? c->error : "",
        c->trace_hash[0] ? c->trace_hash : "-");
    run_progress_case(pr, failed, line);
    free(line);
}

/* Runs rc into r, keeping in c what the JSON reports besides the verdict
 * (the trace as a timeline, faults fired, the migration's error); the
 * trace is echoed on stderr with -v.  Without -v and --json nothing shows
 * the trace's lines (the hash is taken either way): they are not copied
 * out, nor parsed into a timeline (5% of a native pair run).  Returns
 * exec_run_case's result. */
static int run_capture(const Opts *o, RunCase *rc, RunResult *r, Case *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = o->verbose || o->json ? open_memstream(&buf, &len) : NULL;
    rc->trace_out = mem;
    int ret = exec_run_case(rc, r);
    if (mem)
        fclose(mem);
    if (o->verbose && buf)
        fwrite(buf, 1, len, stderr);
    memcpy(c->trace_hash, r->trace_hash, sizeof(c->trace_hash));
    c->outcome = r->outcome[0] ? mig_strdup(r->outcome) : NULL;
    c->mig_error = r->mig_error[0] ? mig_strdup(r->mig_error) : NULL;
    c->fired = r->fired;
    c->virtual_ns = r->virtual_ns;
    snprintf(c->first_fired, sizeof(c->first_fired), "%s", r->first_fired);
    if (mem)
        c->timeline = run_timeline_json(buf, len, &c->channels);
    c->spice_verdicts = run_spice_verdicts_json(r, &c->spice_errors);
    free(buf);
    return ret;
}

/* Run one case, filling in its results. */
static void run_one(const Opts *o, Case *c)
{
    if (!c->scn) {
        c->status = "failed";
        c->error = mig_strdup(c->load_error);
        c->repro = make_repro(o, c);
        return;
    }
    RunCase rc = {
        .scn = c->scn,
        .seed = o->seed,
        .pair_src = c->pair_src,
        .pair_dst = c->pair_dst,
        .extra = c->extra,
        .nextra = c->nextra,
    };
    RunResult *r = mig_malloc0(sizeof(*r));
    int ret = run_capture(o, &rc, r, c);
    /* the points the run hit (what `list-faults --unreached` counts; pytest
     * checks every registered point against the own-release cases) */
    size_t np;
    const MigFaultInfo *tab = mig_faults_table(&np);
    c->reached = json_array();
    for (int side = 0; side < MIG_FAULT_SIDE__COUNT; side++)
        for (size_t p = 0; p < np; p++)
            if (r->hits[side][p])
                json_array_append_new(c->reached, json_sprintf("%s:%s",
                                                               mig_fault_side_names[side],
                                                               tab[p].name));
    if (ret < 0) {
        c->status = "failed";
        c->error = mig_strdup_printf("harness: %s", r->error);
    } else if (r->skipped) {
        /* build_cases() left out the pairs that cannot run the scenario; one
         * that only shows at run time is a harness bug: red, not hidden */
        c->status = "failed";
        c->error = mig_strdup_printf("not applicable, found only at run time: %s", r->error);
    } else if (r->passed) {
        c->status = "passed";
    } else {
        c->status = "failed";
        c->error = mig_strdup(r->error);
    }
    c->repro = make_repro(o, c);
    free(r);
}

/* The most hits of one point a sweep fails, one case each: a guard against
 * a sweep that would not end (each injected failure reaching the point
 * again), not a limit any scenario comes near.  Reaching it fails that
 * case, naming the point. */
#define SWEEP_MAX_HITS 1000000u

/* The point that point `p` wraps (MIG_FAULT_WRAPS), or NULL. */
static const char *wrapped_inner_name(size_t p)
{
#define WRAP_INNER_(outer, inner)                                                                  \
    if (p == MIG_FAULT_##outer)                                                                    \
        return mig_fault_name(MIG_FAULT_##inner);
    MIG_FAULT_WRAPS(WRAP_INNER_)
#undef WRAP_INNER_
    return NULL;
}

/* The last hit of point `p` a sweep fails when the base run `r` shows it
 * wraps its inner point one for one on `side` (equal hit counts; see
 * MIG_FAULT_WRAPS), else 0 (every hit).  A point named with --fault is
 * swept in full. */
static uint64_t wrapped_sweep_limit(const RunResult *r, int side, size_t p, bool chosen)
{
    if (chosen || r->hits[side][p] <= MIG_FAULT_WRAP_SWEPT)
        return 0;
#define WRAP_LIMIT_(outer, inner)                                                                  \
    if (p == MIG_FAULT_##outer && r->hits[side][p] == r->hits[side][MIG_FAULT_##inner])            \
        return MIG_FAULT_WRAP_SWEPT;
    MIG_FAULT_WRAPS(WRAP_LIMIT_)
#undef WRAP_LIMIT_
    return 0;
}

/* --sweep: after the base case, fail hit k of each reached point until the
 * run with `#k` does not reach hit k (stream-damage points only when
 * --fault names them). */
static void sweep_case(const Opts *o, Cases *out, const Case *base_in, RunProgress *progress)
{
    /* a shallow copy: case_add() below may move `out`, base_in lives there */
    const Case base_copy = *base_in;
    const Case *base = &base_copy;
    if (!base->scn)
        return;
    size_t np;
    const MigFaultInfo *tab = mig_faults_table(&np);
    RunResult *r = mig_malloc0(sizeof(*r));
    RunCase rc = {.scn = base->scn, .seed = o->seed, .pair_src = base->pair_src,
                  .pair_dst = base->pair_dst, .extra = base->extra, .nextra = base->nextra};
    exec_run_case(&rc, r);
    for (int side = 0; side < MIG_FAULT_SIDE__COUNT; side++)
        for (size_t p = 0; p < np; p++) {
            bool chosen = false;
            for (size_t f = 0; f < o->nfaults; f++)
                if (o->faults[f].when == MIG_FAULT_WHEN_ALWAYS &&
                    o->faults[f].point_index == p && (int)o->faults[f].side == side)
                    chosen = true;
            if (o->nfaults ? !chosen : r->hits[side][p] == 0)
                continue;
            /* stream-damage points (".../omit-...", impl/common/faults.h)
             * fail nothing: every hit of omit-page is one more case alike;
             * swept only when named with --fault */
            if (!chosen && strstr(tab[p].name, "/omit-"))
                continue;
            uint64_t last = wrapped_sweep_limit(r, side, p, chosen);
            if (last)
                fprintf(stderr,
                        "sweep: %s:%s to hit %llu of %llu: each hit is one of %s, swept in "
                        "full (MIG_FAULT_WRAPS, impl/common/faults.h)\n",
                        mig_fault_side_names[side], tab[p].name, (unsigned long long)last,
                        (unsigned long long)r->hits[side][p], wrapped_inner_name(p));
            for (uint64_t k = 1;; k++) {
                Case *c = case_add(out);
                c->path = mig_strdup(base->path);
                c->scn = base->scn;
                c->pair_src = base->pair_src;
                c->pair_dst = base->pair_dst;
                /* the base case's own extra faults minus the swept ones */
                c->extra = mig_malloc0(sizeof(MigFaultSpec) * (base->nextra + 1));
                for (size_t f = 0; f < base->nextra; f++)
                    if (base->extra[f].when != MIG_FAULT_WHEN_ALWAYS)
                        c->extra[c->nextra++] = base->extra[f];
                MigFaultSpec *s = &c->extra[c->nextra++];
                memset(s, 0, sizeof(*s));
                s->side = (MigFaultSide)side;
                snprintf(s->point, sizeof(s->point), "%s", tab[p].name);
                s->point_index = p;
                s->when = MIG_FAULT_WHEN_NTH;
                s->nth = k;
                s->err = -tab[p].err;
                c->id = make_id(c->path, c->pair_src, c->pair_dst, c->extra, c->nextra);
                RunCase sc = {.scn = c->scn, .seed = o->seed, .pair_src = c->pair_src,
                              .pair_dst = c->pair_dst, .extra = c->extra, .nextra = c->nextra};
                RunResult *sr = mig_malloc0(sizeof(*sr));
                int ret = run_capture(o, &sc, sr, c);
                c->status = ret < 0 || !sr->passed ? "failed" : "passed";
                if (strcmp(c->status, "passed"))
                    c->error = mig_strdup(sr->error);
                /* whether hit k came: the swept spec's own count, never
                 * the run's (the scenario's own faults fire in every run) */
                bool fired = sr->last_extra_fired > 0;
                if (fired && k == SWEEP_MAX_HITS && !strcmp(c->status, "passed")) {
                    c->status = "failed";
                    c->error = mig_strdup_printf("sweep: %s:%s still reached at hit %llu, "
                                                 "the most a sweep takes",
                                                 mig_fault_side_names[side], tab[p].name,
                                                 (unsigned long long)k);
                }
                c->repro = make_repro(o, c);
                free(sr);
                print_progress(o, progress, c);
                if (!fired || k == SWEEP_MAX_HITS || k == last)
                    break;
            }
        }
    free(r);
}

static void write_json(const Opts *o, const Cases *cs)
{
    json_t *doc = json_object();
    json_object_set_new(doc, "seed", json_sprintf("0x%llx", (unsigned long long)o->seed));
    json_t *arr = json_array();
    for (size_t i = 0; i < cs->n; i++) {
        const Case *c = &cs->v[i];
        json_t *faults = json_array();
        for (size_t f = 0; c->scn && f < c->scn->nfaults; f++) {
            char spec[128];
            mig_fault_spec_format(&c->scn->faults[f], spec, sizeof(spec));
            json_array_append_new(faults, json_string(spec));
        }
        for (size_t f = 0; f < c->nextra; f++) {
            char spec[128];
            mig_fault_spec_format(&c->extra[f], spec, sizeof(spec));
            json_array_append_new(faults, json_string(spec));
        }
        json_t *pair = c->pair_src ? json_sprintf("%s:%s", c->pair_src, c->pair_dst)
                                   : json_null();
        json_t *devices = json_array();
        for (size_t d = 0; c->scn && d < c->scn->src.ndevices; d++)
            json_array_append_new(devices, json_string(c->scn->src.devices[d]));
        json_t *o1 = json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:s?, s:s?, s:s}", "id",
                               c->id, "status", c->status, "seed",
                               json_string_value(json_object_get(doc, "seed")), "pair", pair,
                               "faults", faults, "trace_hash", c->trace_hash, "repro",
                               c->repro, "error", c->error, "outcome", c->outcome, "scenario",
                               c->path);
        const char *src = c->pair_src ? c->pair_src : c->scn ? c->scn->src.release : NULL;
        const char *dst = c->pair_dst ? c->pair_dst : c->scn ? c->scn->dst.release : NULL;
        json_object_update_missing_new(
            o1, json_pack("{s:s?, s:s?, s:o, s:O?, s:s?, s:I, s:s?, s:I, s:O?}", "src", src,
                          "dst", dst, "devices", devices, "spice_channels", c->channels,
                          "mig_error", c->mig_error, "fired", (json_int_t)c->fired,
                          "first_fired", c->first_fired[0] ? c->first_fired : NULL,
                          "virtual_ns", (json_int_t)c->virtual_ns, "timeline", c->timeline));
        if (c->reached)
            json_object_set(o1, "reached", c->reached);
        if (c->spice_verdicts && json_object_size(c->spice_verdicts))
            json_object_update_missing_new(
                o1, json_pack("{s:O, s:O}", "spice_channel_verdicts", c->spice_verdicts,
                              "spice_channel_errors", c->spice_errors));
        json_array_append_new(arr, o1);
    }
    json_object_set_new(doc, "cases", arr);
    MigErr *err = NULL;
    if (report_json_write(o->json, doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER, &err) < 0) {
        fprintf(stderr, "migcert run: %s\n", err->msg);
        mig_err_free(err);
    }
    json_decref(doc);
}

static void write_junit(const Opts *o, const Cases *cs)
{
    ReportCase *rc = mig_malloc0((cs->n + 1) * sizeof(*rc));
    char **classnames = mig_malloc0((cs->n + 1) * sizeof(*classnames));
    char **texts = mig_malloc0((cs->n + 1) * sizeof(*texts));
    for (size_t i = 0; i < cs->n; i++) {
        const Case *c = &cs->v[i];
        const char *slash = strchr(c->id, '/');
        classnames[i] = slash ? mig_strdup_printf("scenarios.%.*s", (int)(slash - c->id), c->id)
                              : mig_strdup("scenarios.top");
        rc[i].classname = classnames[i];
        rc[i].name = c->id;
        rc[i].status = strcmp(c->status, "failed") ? REPORT_PASS : REPORT_FAIL;
        if (rc[i].status == REPORT_FAIL) {
            rc[i].message = c->error;
            rc[i].text = texts[i] = mig_strdup_printf("REPRO: %s", c->repro);
        }
    }
    MigErr *err = NULL;
    if (report_junit_write(o->junit, "migcert-run", rc, cs->n, &err) < 0) {
        fprintf(stderr, "migcert run: %s\n", err->msg);
        mig_err_free(err);
    }
    for (size_t i = 0; i < cs->n; i++) {
        free(classnames[i]);
        free(texts[i]);
    }
    free(classnames);
    free(texts);
    free(rc);
}

static void print_usage(void)
{
    printf("usage: migcert run [PATH...] [options]\n"
           "Run scenario files (default: scenarios/) in the simulator.\n"
           "  --seed N         the run's seed (decimal or 0x hex; default 0x5eed)\n"
           "  --pair SRC:DST   run as these releases (1.0, 1.1, 2.0, 2.1-dev)\n"
           "  --pairs all      every ordered pair of releases (pairs that cannot run a\n"
           "                   scenario are left out and counted)\n"
           "  --fault SPEC     add a fault, e.g. src:mig/transport/write#3; repeatable\n"
           "  --sweep          fail hit 1, 2, 3 ... of each reached point, a case each\n"
           "                   (stream-damage points, .../omit-..., only when --fault\n"
           "                   names them)\n"
           "  --shard I/N      run the I-th of N shares of the cases\n"
           "  -k PAT           only cases whose id contains PAT (repeatable)\n"
           "  --json F         write the results as JSON\n"
           "  --junit F        write the results as JUnit XML\n"
           "  --list           print the case ids and exit\n"
           "  -v               echo each case's event trace on stderr\n"
           "  -h, --help       this text\n"
           "Exit status: 0 when every case passed, 1 otherwise, 2 on usage errors.\n");
}

/* "N pair combinations not applicable (...)", or nothing when none were. */
static void print_not_applicable(FILE *f, const Opts *o)
{
    static const char *const reason[EXEC_NA__COUNT] = {
        [EXEC_NA_DEVICE] = "device not in the source machine type",
        [EXEC_NA_CAPABILITY] = "capability not known or not offered by both",
        [EXEC_NA_SPICE] = "a scripted SPICE migration the pair makes another kind",
    };
    size_t total = 0;
    for (int i = 0; i < EXEC_NA__COUNT; i++)
        total += o->na[i];
    if (!total)
        return;
    fprintf(f, "%zu pair combination(s) not applicable (", total);
    const char *sep = "";
    for (int i = 0; i < EXEC_NA__COUNT; i++)
        if (o->na[i]) {
            fprintf(f, "%s%s: %zu", sep, reason[i], o->na[i]);
            sep = ", ";
        }
    fprintf(f, ")\n");
}

int cmd_run(int argc, char **argv)
{
    Opts o = {0};
    /* main() passes argv + 1, so argv[-1] is the program as invoked: the
     * REPRO line repeats it so it can be pasted as is. */
    o.argv0 = argv[-1];
    int rc = parse_opts(argc, argv, &o);
    Cases cs = {0};
    if (rc == 0 && o.help) {
        print_usage();
        goto out;
    }
    if (rc == 0)
        rc = build_cases(&o, &cs);
    if (rc != 0)
        goto out;
    if (!cs.n && (o.nk || o.shard_n)) {
        /* a filter that selects nothing is a typo, not a green run */
        fprintf(stderr, "migcert run: no case matches%s%s%s\n", o.nk ? " -k '" : "",
                o.nk ? o.k[0] : "", o.nk ? (o.nk > 1 ? "' (and the other -k patterns)" : "'")
                                         : " the shard");
        rc = 2;
        goto out;
    }
    if (o.list) {
        for (size_t i = 0; i < cs.n; i++)
            printf("%s\n", cs.v[i].id);
        goto out;
    }
    printf("seed: 0x%llx\n", (unsigned long long)o.seed);
    fflush(stdout);
    fprintf(stderr, "migcert run: seed 0x%llx, %zu case(s)%s\n", (unsigned long long)o.seed,
            cs.n, o.sweep ? " (+ sweeps)" : "");
    print_not_applicable(stderr, &o);
    if (!heap_count_active())
        fprintf(stderr, "migcert run: the heap part of the resource oracle is off: "
                "something else replaced the malloc family (valgrind, a sanitizer); its "
                "leak check stands in\n");
    Cases done = {0};
    RunProgress progress;
    run_progress_init(&progress, stderr, o.sweep ? 0 : cs.n);
    for (size_t i = 0; i < cs.n; i++) {
        Case *c = &cs.v[i];
        run_one(&o, c);
        print_progress(&o, &progress, c);
        Case *keep = case_add(&done);
        *keep = *c;
        if (o.sweep)
            sweep_case(&o, &done, keep, &progress);
    }
    run_progress_end(&progress);
    for (size_t i = 0; i < done.n; i++) {
        const char *st = done.v[i].status;
        if (!strcmp(st, "passed"))
            done.passed++;
        else
            done.failed++;
    }
    if (o.json)
        write_json(&o, &done);
    if (o.junit)
        write_junit(&o, &done);
    if (done.failed) {
        printf("\nFAILED cases:\n");
        for (size_t i = 0; i < done.n; i++) {
            const Case *c = &done.v[i];
            if (strcmp(c->status, "failed"))
                continue;
            printf("  %-60s %s\n", c->id, c->error ? c->error : "");
            printf("REPRO: %s\n", c->repro);
        }
    }
    print_not_applicable(stdout, &o);
    if (done.n == 1 && done.v[0].trace_hash[0])
        printf("trace: %s\n", done.v[0].trace_hash);
    printf("%zu passed, %zu failed\n", done.passed, done.failed);
    rc = done.failed ? 1 : 0;
    for (size_t i = 0; i < done.n; i++)
        case_clear(&done.v[i]);
    free(done.v);
    free(cs.v);
    cs.v = NULL;
    cs.n = 0;
out:
    for (size_t i = 0; i < cs.n; i++)
        case_clear(&cs.v[i]);
    free(cs.v);
    free(o.paths);
    free(o.pair_src);
    free(o.pair_dst);
    for (size_t i = 0; i < o.nscns; i++)
        scenario_free(o.scns[i]);
    free(o.scns);
    return rc;
}
