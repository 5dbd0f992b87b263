/*
 * cmd-certify.c - `migcert certify --device X.so [--peer Y.so] [--out DIR]
 * [-k CASE] [--timeout SECONDS] [--budget SECONDS] [--list]`: the device
 * conformance suite for a vendor plugin (include/migcert/device.h), with a
 * certificate report.  This file is the command line and the run loop; the
 * sandbox, the cases and the reports are its siblings (certify-internal.h).
 *
 * Sandbox: every case loads the plugin in a child process and drives it
 * with a timeout per call (--timeout, default 10 s).  A plugin that crashes
 * or hangs fails that case under the rule plugin-crash or plugin-timeout
 * ("plugin X.so crashed (signal 11) in set_state", "plugin X.so timed out
 * after 10s in read"), whatever the case was checking when it happened.
 * Once a plugin has hung in a case, the later cases with that plugin are
 * not run ("not run: plugin X.so hung earlier in case C"): each would only
 * wait for its own timeout.  --budget bounds the whole run in wall-clock
 * seconds: cases that would start after it are not run either ("not run:
 * the time budget of Ns was used up").
 *
 * For tests only, the environment variable MIGCERT_CERTIFY_CASE_MS=N makes
 * the budget's clock virtual: it reads 0 when the run starts and advances
 * N ms per case run, so `--budget S` starts the first ceil(S * 1000 / N)
 * selected cases whatever the speed of the machine.
 *
 * Cases (each names the rule it checks; -k selects by exact name when one
 * case has that name, else by glob, else by substring):
 *   load                               the plugin loads, ABI version known
 *   vmstate-description                its vmstate description is absent or
 *                                      a -dump-vmstate entry
 *   transition.<FSET>.<CUR>.<TGT>      every cur x target x feature set: the
 *                                      device refuses non-arcs itself, and a
 *                                      request executes the golden path
 *   invalid-values                     out-of-range state values refused
 *   precopy.<FSET>                     PRECOPY_INFO and PRE_COPY reads
 *   stop-copy-end.<FSET>               STOP_COPY reads end with 0, every time
 *   read-sizes.<FSET>                  reads of odd sizes never claim more
 *   round-trip.<FSET>                  save -> resume, state compared
 *   resume-rejects.<truncated|flipped|concatenated>
 *   abort.<STATE>                      abort in every state keeps the state
 *   error-reset                        ERROR refuses arcs; reset leaves it
 *   fault.<callback>                   a failure injected into each callback
 *                                      the plugin has (create, reset,
 *                                      get_state, the v2 or the v1 ones):
 *                                      it must fire, be reported (or
 *                                      absorbed intact), and a retried
 *                                      migration succeeds
 *   peer.<X>-to-<Y>, peer.<Y>-to-<X>   with --peer: cross round trips (the
 *                                      same stem twice: <Y> is <stem>-peer)
 * Reports: report.txt, report.json, report.junit.xml in DIR (default
 * reports/out/certify-<name>).  `--spice` certifies a SPICE server
 * instead (certify-spice.c).  Exit 0 all passed, 1 a case failed or was
 * not run, 2 usage, 3 the report could not be written.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certify-internal.h"
#include "certify-spice.h"
#include "commands.h"

static char *stem_of(const char *path)
{
    char *s = mig_strdup(certify_base_name(path));
    char *dot = strstr(s, ".so");
    if (dot)
        *dot = 0;
    return s;
}

static void usage_to(FILE *f)
{
    fprintf(f, "usage: migcert certify --device X.so [--peer Y.so] [--out DIR] [-k CASE] "
               "[--timeout SECONDS] [--budget SECONDS] [--list]\n"
               "       migcert certify --spice --src-qmp ADDR --src-spice ADDR --dst-qmp ADDR "
               "--dst-spice ADDR [...] (certify-spice.c)\n");
}

static void usage(void)
{
    usage_to(stderr);
}

/* A whole number of seconds > 0; false for anything else ("abc", "5s", 0). */
static bool parse_seconds(const char *v, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long t = strtoul(v, &end, 10);
    if (errno || end == v || *end || t == 0 || t > 86400 || v[0] == '-' || v[0] == '+')
        return false;
    *out = (unsigned)t;
    return true;
}

/* The clock --budget is measured on: the monotonic wall clock, or for
 * tests a virtual one (MIGCERT_CERTIFY_CASE_MS, see the top of the file). */
typedef struct BudgetClock {
    int64_t step_ms; /* > 0: virtual, advanced by clock_case_done() */
    int64_t now_ms;  /* the virtual reading */
} BudgetClock;

/* false for a MIGCERT_CERTIFY_CASE_MS that is not a whole number > 0 */
static bool clock_init(BudgetClock *clk)
{
    const char *v = getenv("MIGCERT_CERTIFY_CASE_MS");
    clk->step_ms = 0;
    clk->now_ms = 0;
    if (!v)
        return true;
    char *end;
    errno = 0;
    long long ms = strtoll(v, &end, 10);
    if (errno || end == v || *end || ms <= 0)
        return false;
    clk->step_ms = ms;
    return true;
}

static int64_t clock_now_ms(const BudgetClock *clk)
{
    if (clk->step_ms)
        return clk->now_ms;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void clock_case_done(BudgetClock *clk)
{
    clk->now_ms += clk->step_ms;
}

/* What a probe learned about a plugin before the cases are chosen. */
typedef struct Probe {
    bool loads;
    uint32_t features, protocol, callbacks;
    char name[64], version[64];
    char error[512];
} Probe;

static void probe_plugin(const char *path, unsigned timeout_s, Probe *pr)
{
    memset(pr, 0, sizeof(*pr));
    MigErr *err = NULL;
    CertSandbox *sb = certify_sb_spawn(path, timeout_s, &err);
    pr->loads = sb && !sb->dead && !err;
    if (!pr->loads)
        snprintf(pr->error, sizeof(pr->error), "%s",
                 err && err->msg ? err->msg : sb && sb->death ? sb->death : "cannot start");
    if (sb) {
        pr->features = sb->features;
        pr->protocol = sb->protocol;
        pr->callbacks = sb->callbacks;
        snprintf(pr->name, sizeof(pr->name), "%s", sb->name);
        snprintf(pr->version, sizeof(pr->version), "%s", sb->version);
    }
    if (!pr->loads)
        pr->features = MIG_DEV_F_STOP_COPY;
    else if (pr->protocol == MIGCERT_PROTOCOL_V1)
        pr->features = MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY;
    certify_sb_free(sb);
    mig_err_free(err);
}

int cmd_certify(int argc, char **argv)
{
    const char *dev = NULL, *peer = NULL, *out = NULL, *pat = NULL;
    unsigned timeout_s = 10, budget_s = 0;
    bool list = false;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--spice")) /* a SPICE server instead of a plugin */
            return certify_spice_main(argc, argv);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--device") && v)
            dev = argv[++i];
        else if (!strcmp(a, "--peer") && v)
            peer = argv[++i];
        else if (!strcmp(a, "--out") && v)
            out = argv[++i];
        else if (!strcmp(a, "-k") && v)
            pat = argv[++i];
        else if ((!strcmp(a, "--timeout") || !strcmp(a, "--budget")) && v) {
            if (!parse_seconds(argv[++i], a[2] == 't' ? &timeout_s : &budget_s)) {
                fprintf(stderr,
                        "migcert certify: %s takes a whole number of seconds (1 to 86400), "
                        "not '%s'\n",
                        a, v);
                usage();
                return 2;
            }
        } else if (!strcmp(a, "--list"))
            list = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage_to(stdout);
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    if (!dev) {
        usage();
        return 2;
    }
    BudgetClock clk;
    if (!clock_init(&clk)) {
        fprintf(stderr, "migcert certify: MIGCERT_CERTIFY_CASE_MS takes a whole number of "
                        "milliseconds > 0, not '%s'\n",
                getenv("MIGCERT_CERTIFY_CASE_MS"));
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int64_t started = clock_now_ms(&clk);
    char *stem = stem_of(dev);
    char *peer_stem = peer ? stem_of(peer) : NULL;
    char outdir[PATH_MAX];
    snprintf(outdir, sizeof(outdir), "%s", out ? out : "");
    if (!out)
        snprintf(outdir, sizeof(outdir), "reports/out/certify-%s", stem);

    /* what the plugin offers decides the case list */
    Probe pd, pp = {0};
    probe_plugin(dev, timeout_s, &pd);
    char plugin_desc[256];
    snprintf(plugin_desc, sizeof(plugin_desc), "%s %s, protocol v%u, features %s",
             pd.name[0] ? pd.name : stem, pd.version, pd.protocol,
             mig_dev_features_name(pd.features));
    char peer_desc[256] = "";
    if (peer) {
        probe_plugin(peer, timeout_s, &pp);
        snprintf(peer_desc, sizeof(peer_desc), "%s %s, protocol v%u, features %s",
                 pp.name[0] ? pp.name : peer_stem, pp.version, pp.protocol,
                 mig_dev_features_name(pp.features));
    }

    CertCase *cases = NULL;
    size_t ncases = certify_build_cases(&cases, pd.features, pd.callbacks, peer_stem, stem);
    if (!pd.loads) /* nothing but loading can run; a bad description is its own rule */
        ncases = strstr(pd.error, "vmstate description") ? 2 : 1;
    bool exact = false;
    for (size_t i = 0; pat && i < ncases; i++)
        exact |= !strcmp(cases[i].name, pat);
    if (list) {
        for (size_t i = 0; i < ncases; i++)
            if (certify_selected(cases[i].name, pat, exact))
                printf("%s\n", cases[i].name);
        free(cases);
        free(stem);
        free(peer_stem);
        return 0;
    }
    bool any = false;
    for (size_t i = 0; i < ncases; i++)
        any |= certify_selected(cases[i].name, pat, exact);
    if (pat && !any) {
        fprintf(stderr, "migcert certify: no case matches '%s' (--list shows them)\n", pat);
        free(cases);
        free(stem);
        free(peer_stem);
        return 2;
    }

    CertResult *res = mig_malloc0(ncases * sizeof(*res));
    size_t npass = 0, nfail = 0, nskip = 0, nnotrun = 0;
    char repro_base[PATH_MAX * 2];
    /* main.c passes argv + 1: argv[-1] is how migcert itself was invoked */
    snprintf(repro_base, sizeof(repro_base), "%s certify --device %s%s%s",
             argv[-1] ? argv[-1] : "migcert", dev, peer ? " --peer " : "", peer ? peer : "");
    fprintf(stderr, "migcert certify: %s (%s)\n", dev, plugin_desc);
    /* the first case in which each plugin hung: later cases with it do not run */
    char dev_hung_in[96] = "", peer_hung_in[96] = "";
    for (size_t i = 0; i < ncases; i++) {
        res[i].st = CERT_ST_PASS;
        if (!certify_selected(cases[i].name, pat, exact)) {
            res[i].st = CERT_ST_SKIP;
            snprintf(res[i].msg, sizeof(res[i].msg), "not selected");
            continue;
        }
        if (dev_hung_in[0] || (cases[i].uses_peer && peer_hung_in[0])) {
            bool d = dev_hung_in[0] != 0;
            res[i].st = CERT_ST_NOTRUN;
            snprintf(res[i].msg, sizeof(res[i].msg), "not run: plugin %s hung earlier in case %s",
                     certify_base_name(d ? dev : peer), d ? dev_hung_in : peer_hung_in);
            nnotrun++;
            continue;
        }
        if (budget_s && clock_now_ms(&clk) - started >= (int64_t)budget_s * 1000) {
            res[i].st = CERT_ST_NOTRUN;
            snprintf(res[i].msg, sizeof(res[i].msg),
                     "not run: the time budget of %us was used up", budget_s);
            nnotrun++;
            continue;
        }
        CertCtx c = {.dev_path = dev,
                 .peer_path = peer,
                 .timeout_s = timeout_s,
                 .features = pd.features,
                 .peer_features = pp.features,
                 .callbacks = pd.callbacks,
                 .protocol = pd.protocol,
                 .peer_protocol = pp.protocol,
                 .res = &res[i]};
        mig_prng_seed(&c.prng, 0x5eed ^ (uint64_t)i);
        cases[i].fn(&c, &cases[i]);
        clock_case_done(&clk);
        /* a sandbox that died without the case noticing still fails it */
        if (c.death[0] && res[i].st != CERT_ST_FAIL)
            certify_fail(&c, certify_death_rule(c.death), "%s", c.death);
        if (c.dev_hung && !dev_hung_in[0])
            snprintf(dev_hung_in, sizeof(dev_hung_in), "%s", cases[i].name);
        if (c.peer_hung && !peer_hung_in[0])
            snprintf(peer_hung_in, sizeof(peer_hung_in), "%s", cases[i].name);
        if (res[i].st == CERT_ST_FAIL) {
            nfail++;
            fprintf(stderr, "FAIL %s [%s]: %s\nREPRO: %s -k %s\n", cases[i].name, res[i].rule,
                    res[i].msg, repro_base, cases[i].name);
        } else if (res[i].st == CERT_ST_SKIP) {
            nskip++;
        } else {
            npass++;
        }
    }

    CertReport rp = {outdir, dev, peer, stem, plugin_desc, repro_base, peer ? peer_desc : NULL,
                     cases,  res, ncases, npass, nfail, nskip, nnotrun};
    int rc = certify_finish(&rp);
    free(res);
    free(cases);
    free(stem);
    free(peer_stem);
    return rc;
}
