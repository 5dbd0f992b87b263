/*
 * oracle-outcome.c - the outcome oracle: how the migration ended, the run
 * state each side is left in, and whether that is what the scenario
 * expects (its `expect`, or with a --pair the pair rules of releases.h).
 *
 * Called by: exec-case.c, first of the oracles (first failure wins).
 *   completed => dst completed and running, src postmigrate (a src that
 *                completed while dst failed and nobody resumed it: "the
 *                guest is lost");
 *   failed/cancelled => src running (when it ran before), dst not running;
 *   then the outcome, the errno the engine traced, the error texts and the
 *   trace patterns of `expect`.  A fault that fired because of an extra
 *   (--fault, --sweep) spec relaxes the outcome to "completed or failed".
 * Pair rules (mig_pair_predict): when the pair breaks, the case expects
 * `failed` with the error management's pre-flight gives (or the engine's
 * own refusal without pre-flight); when the scenario's own releases break
 * but the pair does not, it expects `completed`.
 */
#include <stdlib.h>
#include <string.h>

#include "exec-internal.h"

const char *exec__outcome_of(Run *run)
{
    if (run->mgmt_resumed)
        return "failed"; /* the destination's failure, the source resumed */
    MigStatus st = run->src.killed ? exec__side_status(&run->dst) : exec__side_status(&run->src);
    switch (st) {
    case MIG_STATUS_COMPLETED:
        return "completed";
    case MIG_STATUS_FAILED:
        return "failed";
    case MIG_STATUS_CANCELLED:
        return "cancelled";
    default:
        if (run->start_refused)
            return "failed";
        return run->migrating ? "timeout" : "none";
    }
}

/* The errno the engine traced with its error ("<who>: migration error: ...
 * (EIO)"); 0 when none. */
static int traced_errno(Run *run, const char *who)
{
    fflush(run->tracef);
    char pat[64];
    snprintf(pat, sizeof(pat), " %s: migration error: ", who);
    const char *p = run->tracebuf ? strstr(run->tracebuf, pat) : NULL;
    if (!p)
        return 0;
    const char *eol = strchr(p, '\n');
    const char *open = eol ? eol : p + strlen(p);
    while (open > p && *open != '(')
        open--;
    char name[32];
    size_t n = strcspn(open + 1, ")");
    if (*open != '(' || n >= sizeof(name))
        return 0;
    memcpy(name, open + 1, n);
    name[n] = 0;
    return mig_errno_parse(name);
}

/* The run states the outcome implies on both sides. */
static int outcome_states(Run *run, const char *outcome, MigErr **errp)
{
    Side *src = &run->src, *dst = &run->dst;
    MigStatus ds = exec__side_status(dst);
    if (!strcmp(outcome, "timeout") || !strcmp(outcome, "none"))
        return mig_err_set(errp, -ETIMEDOUT,
                           "migration still %s after %.3f s of virtual time (timeout)",
                           mig_status_name(exec__side_status(src)),
                           (double)run->s->timeout_ns / 1e9);
    if (!strcmp(outcome, "completed")) {
        if (ds != MIG_STATUS_COMPLETED && !dst->killed)
            return mig_err_set(errp, -EPROTO,
                               "source completed but the destination is %s (%s): the guest "
                               "is lost",
                               mig_status_name(ds),
                               mig_migration_error(mig_machine_migration(dst->m)));
        if (!dst->killed && !mig_machine_running(dst->m))
            return mig_err_set(errp, -EPROTO, "destination completed but is %s, not running",
                               mig_run_state_name(mig_machine_run_state(dst->m)));
        if (!src->killed && mig_machine_run_state(src->m) != MIG_RUN_STATE_POSTMIGRATE)
            return mig_err_set(errp, -EPROTO, "source completed but is %s, not postmigrate",
                               mig_run_state_name(mig_machine_run_state(src->m)));
    } else {
        if (!src->killed && run->src_was_running && !mig_machine_running(src->m))
            return mig_err_set(errp, -EPROTO, "migration %s but the source is %s, not running",
                               outcome, mig_run_state_name(mig_machine_run_state(src->m)));
        if (!dst->killed && dst->m && mig_machine_running(dst->m))
            return mig_err_set(errp, -EPROTO, "migration %s but the destination runs",
                               outcome);
    }
    return 0;
}

/* What the case expects: the scenario's `expect`, under the pair rules. */
typedef struct Expect {
    const char *want;      /* outcome */
    int want_err;          /* errno, 0: any */
    const char *want_text; /* in the src or dst error, NULL: any */
    char pair_text[160];   /* want_text when the pair rules say it */
    MigPairPrediction own; /* the scenario's own releases */
    MigPairPrediction p;   /* the case's pair */
} Expect;

static void expect_of(Run *run, Expect *x)
{
    const Scenario *s = run->s;
    Side *src = &run->src, *dst = &run->dst;
    x->want = scn_outcome_names[s->outcome];
    x->want_err = s->error;
    x->want_text = s->error_contains;
    x->pair_text[0] = 0;
    const char *own_dst = s->dst.release;
    mig_pair_predict(s->src.release, exec__src_machine_type(s, s->src.release, own_dst),
                     own_dst, s->src.devices, s->src.ndevices, &x->own);
    mig_pair_predict(src->release, src->machine_type, dst->release, s->src.devices,
                     s->src.ndevices, &x->p);
    const MigPairPrediction *p = &x->p;
    if (!p->completes) {
        /* the pair breaks: it fails cleanly, naming the device and field
         * (management's pre-flight) or, without pre-flight, as the engine
         * refuses it (the machine type comes first in the stream) */
        x->want = "failed";
        x->want_err = 0;
        if (!s->preflight)
            /* the engine's own refusal: the machine type comes first */
            snprintf(x->pair_text, sizeof(x->pair_text), "%s",
                     p->machine_unknown ? "Machine type" : p->device);
        else if (!p->device[0])
            snprintf(x->pair_text, sizeof(x->pair_text), "pre-flight: machine type %s: "
                     "release %s does not know it", src->machine_type, dst->release);
        else if (p->field[0])
            snprintf(x->pair_text, sizeof(x->pair_text), "pre-flight: %s: %s %s", p->device,
                     p->field_is_subsection ? "subsection" : "field", p->field);
        else
            snprintf(x->pair_text, sizeof(x->pair_text), "pre-flight: %s:", p->device);
        x->want_text = x->pair_text;
    } else if (!x->own.completes) {
        /* the scenario's own releases break (a version scenario); this pair
         * does not, so the rules say it completes */
        x->want = "completed";
        x->want_err = 0;
        x->want_text = NULL;
    }
}

/* The error texts and the trace patterns of `expect`. */
static int expect_texts(Run *run, const Expect *x, MigErr **errp)
{
    const Scenario *s = run->s;
    RunResult *r = run->r;
    const char *dst_error = run->dst.m && !run->dst.killed
                                ? mig_migration_error(mig_machine_migration(run->dst.m))
                                : "";
    /* at its own releases a scenario's own text must hold too */
    const char *own_text = !run->c->pair_src && x->want_text != s->error_contains
                               ? s->error_contains
                               : NULL;
    const char *texts[2] = {x->want_text, own_text};
    for (int i = 0; i < 2; i++)
        if (texts[i] && !strstr(r->mig_error, texts[i]) && !strstr(dst_error, texts[i]))
            return mig_err_set(errp, -EPROTO, "errors (src '%s', dst '%s') do not mention '%s'",
                               r->mig_error, dst_error, texts[i]);
    /* the file's trace is for its own releases: the pair rules may change
     * them (a device breaks, the SPICE client migrates another way) */
    bool overridden = !x->p.completes || !x->own.completes || exec__spice_pair_differs(run);
    if (s->trace_contains && !overridden && (fflush(run->tracef), !run->tracebuf ||
                              !strstr(run->tracebuf, s->trace_contains)))
        return mig_err_set(errp, -EPROTO, "the event trace does not contain '%s' (rerun with "
                           "-v to see it)", s->trace_contains);
    if (s->trace_excludes && !overridden && (fflush(run->tracef), run->tracebuf &&
                              strstr(run->tracebuf, s->trace_excludes)))
        return mig_err_set(errp, -EPROTO, "the event trace contains '%s', which the scenario "
                           "excludes (rerun with -v to see it)", s->trace_excludes);
    return 0;
}

int exec__oracle_outcome(Run *run, const char *outcome, MigErr **errp)
{
    const Scenario *s = run->s;
    RunResult *r = run->r;
    int rc = outcome_states(run, outcome, errp);
    if (rc < 0)
        return rc;
    Expect x;
    expect_of(run, &x);
    if (!run->c->pair_src && !x.own.completes && s->outcome != SCN_OUTCOME_FAILED)
        return mig_err_set(errp, -EPROTO, "the scenario expects %s but the pair rules say "
                           "%s -> %s fails (%s)", x.want, s->src.release, s->dst.release,
                           x.own.reason);
    bool relaxed = r->extra_fired > 0;
    if (relaxed) {
        if (strcmp(outcome, x.want) && strcmp(outcome, "failed") &&
            strcmp(outcome, "completed"))
            return mig_err_set(errp, -EPROTO, "with an injected fault the outcome is %s "
                               "(expected %s, failed or completed)", outcome, x.want);
        return 0;
    }
    if (strcmp(outcome, x.want))
        return mig_err_set(errp, -EPROTO, "outcome %s, expected %s%s%s", outcome, x.want,
                           r->mig_error[0] ? ": " : "", r->mig_error);
    if (x.want_err) {
        int got = traced_errno(run, run->src.killed || run->mgmt_resumed ? "dst" : "src");
        if (got != x.want_err)
            return mig_err_set(errp, -EPROTO, "error %s (%s), expected %s", mig_errno_name(got),
                               r->mig_error, mig_errno_name(x.want_err));
    }
    return expect_texts(run, &x, errp);
}
