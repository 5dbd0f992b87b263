/*
 * exec-case.c - the case driver: exec_run_case (exec.h) as a short
 * sequence of calls to the executor's other files (exec-internal.h lists
 * them), and the harness's lines in the case's trace (exec__log).
 *
 * Called by: `migcert run` (cmd-run.c), `migcert list-faults --unreached`,
 * unit tests.
 *
 * A case: resource baseline -> trace, sim loop, fault injector -> (does
 * the pair apply? arm) -> both sides, the guest, management's set-up ->
 * the steps and the end wait -> the result -> the oracles in order (first
 * failure wins) -> teardown and the resource oracle -> everything freed ->
 * the heap oracle -> the trace echoed.
 * Invariants: the trace hash is taken before anything is torn down, so
 * teardown and the self-tests' leftovers never change it; a case that
 * could not be set up (negative return) or was skipped never passes and is
 * never judged by the oracles.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/faults.h"
#include "exec-internal.h"

void exec__log(Run *run, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    mig_trace_log(run->trace, mig_loop_now_ns(run->loop), "harness", "%s", buf);
}

/* The oracles, in the order they judge; the first failure wins.  Those
 * marked after_migrate judge only a case that ran a migrate. */
static const struct {
    int (*check)(Run *run, const char *outcome, MigErr **errp);
    bool after_migrate;
} oracles[] = {
    {exec__oracle_outcome, false},
    {exec__oracle_memory, false},
    {exec__oracle_devices, true},
    {exec__oracle_gpu, true},
    {exec__oracle_spice, true}, /* last: it runs the loop on (settles, stops a guest) */
};

/* The case's trace, sim loop and fault injector (not armed yet). */
static void case_open(Run *run)
{
    const RunCase *c = run->c;
    const Scenario *s = run->s;
    run->tracef = open_memstream(&run->tracebuf, &run->tracelen);
    run->trace = mig_trace_new();
    mig_trace_set_echo(run->trace, run->tracef);
    run->loop = mig_sim_loop_new(c->seed);
    run->loop->trace = run->trace;
    mig_sim_set_step_limit(run->loop, 200000000ull);

    size_t nf = s->nfaults + c->nextra;
    MigFaultSpec *specs = mig_malloc0(sizeof(*specs) * (nf ? nf : 1));
    memcpy(specs, s->faults, sizeof(*specs) * s->nfaults);
    if (c->nextra)
        memcpy(specs + s->nfaults, c->extra, sizeof(*specs) * c->nextra);
    run->inj = fault_injector_new(specs, nf, c->seed, run->loop, run->trace);
    free(specs);
    /* the hot points ask through it; the side loops inherit it */
    run->loop->faults = fault_injector_gate(run->inj);
    mig_trace_log(run->trace, 0, "harness", "scenario %s seed 0x%llx pair %s:%s", s->path,
                  (unsigned long long)c->seed, run->src_rel, run->dst_rel);
}

/* The guest: RAM contents and the dirtying workload on the source. */
static int case_guest(Run *run, MigErr **errp)
{
    const Scenario *s = run->s;
    MigWorkloadOptions wo = {
        .seed = run->c->seed,
        .fill = s->src.fill_zero ? MIG_WORKLOAD_FILL_ZERO : MIG_WORKLOAD_FILL_RANDOM,
        .dirty_rate = s->dirty_rate,
        .keyed = true, /* pages cross the mem link as keys (harness/sim/link.c) */
    };
    MigFaultSide prev;
    exec__side_enter(run->src.sl, &prev);
    run->wl = mig_workload_new(run->src.m, &wo, errp);
    fault_injector_set_side(run->inj, prev);
    if (!run->wl) {
        snprintf(run->r->error, sizeof(run->r->error), "workload: %s",
                 *errp ? (*errp)->msg : "?");
        return -EINVAL;
    }
    return 0;
}

/* Both sides, the guest and management's configuration.  Returns 0
 * (r->skipped when the pair cannot run the case) or a negative errno with
 * r->error. */
static int case_setup(Run *run)
{
    const RunCase *c = run->c;
    const Scenario *s = run->s;
    RunResult *r = run->r;
    MigErr *err = NULL;
    const char *smt = exec__src_machine_type(s, run->src_rel, run->dst_rel);
    const char *dmt = exec__dst_machine_type(smt, run->dst_rel);
    snprintf(run->dst_machine_type, sizeof(run->dst_machine_type), "%s", dmt);
    int rc = exec__side_create(run, &run->src, MIG_FAULT_SIDE_SRC, &s->src, run->src_rel, smt,
                               false, c->seed ^ 0x5c, &err);
    if (rc == 0)
        rc = exec__side_create(run, &run->dst, MIG_FAULT_SIDE_DST, &s->dst, run->dst_rel, dmt,
                               true, c->seed ^ 0xd57, &err);
    if (rc < 0) {
        if (rc == -ENOTSUP || rc == -ENODEV) {
            r->skipped = true;
            rc = 0;
        }
        snprintf(r->error, sizeof(r->error), "%s", err ? err->msg : "setup failed");
    } else {
        rc = case_guest(run, &err);
        if (rc == 0)
            rc = exec__mgmt_configure(run);
        if (rc == 0 && !r->skipped && (rc = exec__spice_start(run, &err)) < 0)
            snprintf(r->error, sizeof(r->error), "SPICE client: %s", err ? err->msg : "?");
    }
    mig_err_free(err);
    return rc;
}

/* What the run observed, into r and the trace. */
static void case_result(Run *run, const char *outcome)
{
    RunResult *r = run->r;
    snprintf(r->outcome, sizeof(r->outcome), "%s", outcome);
    Side *errside = run->src.killed ? &run->dst : &run->src;
    if (errside->m && !r->mig_error[0])
        snprintf(r->mig_error, sizeof(r->mig_error), "%s",
                 mig_migration_error(mig_machine_migration(errside->m)));
    r->fired = fault_injector_fired(run->inj);
    /* the extra specs follow the scenario's own (case_open) */
    for (size_t i = 0; i < run->c->nextra; i++) {
        uint64_t n = fault_injector_spec_fired(run->inj, run->s->nfaults + i);
        r->extra_fired += n;
        if (i + 1 == run->c->nextra)
            r->last_extra_fired = n;
    }
    if (fault_injector_first_fired(run->inj))
        snprintf(r->first_fired, sizeof(r->first_fired), "%s",
                 fault_injector_first_fired(run->inj));
    exec__log(run, "outcome %s%s%s (faults fired: %llu, link bytes %llu)", outcome,
              r->mig_error[0] ? ": " : "", r->mig_error, (unsigned long long)r->fired,
              (unsigned long long)(run->link ? mig_link_bytes(run->link, MIG_LINK_A_TO_B) : 0));
}

/* The steps, the end of the migration, the result and the oracles. */
static void case_run(Run *run)
{
    const Scenario *s = run->s;
    for (size_t i = 0; i < s->nsteps && !run->oracle; i++)
        exec__run_step(run, i, &run->oracle);
    if (!run->oracle && run->migrating) {
        int w = mig_loop_run_until(run->loop, exec__migration_over, run, s->timeout_ns);
        exec__log(run, "end wait: %s", w == 0 ? "over" : mig_errno_name(w));
    }
    exec__sync_phase(run);
    const char *outcome = exec__outcome_of(run);
    case_result(run, outcome);
    exec__selftest_break(run, outcome);
    for (size_t i = 0; i < MIG_ARRAY_SIZE(oracles) && !run->oracle; i++)
        if (!oracles[i].after_migrate || run->migrating)
            oracles[i].check(run, outcome, &run->oracle);
}

/* Disarm, take the counters and the trace hash, free both sides, then the
 * resource oracle and the verdict.  rc: the set-up's. */
static void case_teardown(Run *run, int rc, const ExecBaseline *base, ExecLeftovers *left)
{
    RunResult *r = run->r;
    fault_injector_disarm(run->inj);
    size_t np;
    mig_faults_table(&np);
    for (int sd = 0; sd < MIG_FAULT_SIDE__COUNT; sd++)
        for (size_t i = 0; i < np; i++)
            r->hits[sd][i] = fault_injector_hits(run->inj, (MigFaultSide)sd, i);
    r->virtual_ns = mig_loop_now_ns(run->loop);
    mig_trace_hash(run->trace, r->trace_hash);
    exec__selftest_leave(run, left);
    exec__spice_free(run); /* the client before the servers it is linked to */
    if (run->wl)
        mig_workload_free(run->wl);
    exec__side_destroy(&run->dst);
    exec__side_destroy(&run->src);
    if (run->link)
        mig_link_unref(run->link);
    run->link = NULL;
    if (rc == 0 && !r->skipped && !run->oracle && run->migrating)
        exec__oracle_resources(run, base, &run->oracle);
    /* what the self-test left behind goes now (after the oracle saw it) */
    exec__selftest_take_back(run, left);
    if (rc == 0 && !r->skipped) {
        r->passed = !run->oracle;
        if (run->oracle)
            snprintf(r->error, sizeof(r->error), "%s", run->oracle->msg);
    }
}

static void case_close(Run *run)
{
    mig_err_free(run->oracle);
    mig_err_free(run->paused_err);
    fault_injector_free(run->inj);
    mig_loop_free(run->loop);
    mig_trace_free(run->trace);
    fclose(run->tracef);
}

int exec_run_case(const RunCase *c, RunResult *r)
{
    const Scenario *s = c->scn;
    memset(r, 0, sizeof(*r));
    Run run = {.c = c, .s = s, .r = r};
    run.src_rel = c->pair_src ? c->pair_src : s->src.release;
    run.dst_rel = c->pair_dst ? c->pair_dst : s->dst.release;
    ExecBaseline base;
    exec__resources_baseline(&base, s->spice.on);
    ExecLeftovers left;
    exec__selftest_init(&left);
    int rc = 0;
    bool armed = false;
    case_open(&run);
    /* a pair that cannot have the scenario's devices or capabilities: the
     * case does not apply (`migcert run` leaves such cases out) */
    if (exec_case_applicable(c, r->error, sizeof(r->error)) != EXEC_APPLICABLE) {
        r->skipped = true;
    } else if (fault_injector_arm(run.inj) < 0) {
        rc = -EBUSY;
        snprintf(r->error, sizeof(r->error), "another fault injector is armed");
    } else {
        armed = true;
        rc = case_setup(&run);
        if (rc == 0 && !r->skipped)
            case_run(&run);
        case_teardown(&run, rc, &base, &left);
    }
    if (!armed) { /* nothing ran: the trace so far */
        r->virtual_ns = 0;
        mig_trace_hash(run.trace, r->trace_hash);
    }
    case_close(&run);
    /* the heap oracle comes last, when all the case built is gone but the
     * trace it echoes (writing to trace_out may allocate the caller's
     * buffers: after the check); like the other resource checks it only
     * judges a case that ran and passed */
    if (rc == 0 && !r->skipped && r->passed && run.migrating)
        exec__oracle_heap(&base, run.tracebuf, r);
    exec__selftest_free_late(&left);
    if (c->trace_out && run.tracebuf)
        fwrite(run.tracebuf, 1, run.tracelen, c->trace_out);
    free(run.tracebuf);
    return rc;
}
