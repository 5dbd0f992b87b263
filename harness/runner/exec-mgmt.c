/*
 * exec-mgmt.c - management policy: what the management layer (libvirt's
 * part) decides around a migration.
 *
 * Owns: the machine types management starts both sides with, whether a
 * pair can run a scenario at all (exec_case_applicable), capability
 * negotiation with the return-path policy, migration parameters, the
 * pre-flight compatibility check, and what management does on its own
 * while the migration runs (exec__mgmt_watch: resume or destroy a side).
 * Called by: exec-case.c (set-up), exec-steps.c (pre-flight before each
 * migrate; the watch from the loop's predicates), exec-side.c (the
 * capabilities a release knows).
 * The protocol facts behind it (capabilities negotiation, the return
 * path): docs/protocol-qemu-stream.md.
 *
 * Invariants: release data only decides (releases.h); management never
 * changes a machine except by the calls a real management layer has
 * (set capabilities, set parameters, cont, destroy).
 */
#include <stdlib.h>
#include <string.h>

#include "exec-internal.h"

MigCapMask exec__caps_mask(const char *const *names)
{
    MigCapMask m = 0;
    for (size_t i = 0; names[i]; i++) {
        int c = mig_cap_parse(names[i]);
        if (c >= 0)
            m |= MIG_CAP_BIT(c);
    }
    return m;
}

/* ---- machine types and applicability ---- */

const char *exec__src_machine_type(const Scenario *s, const char *src_rel, const char *dst_rel)
{
    const MigRelease *sr = mig_release_find(src_rel);
    const char *m = s->src.machine;
    if (!strcmp(m, "match-dst")) {
        /* the older of the two releases' machine types */
        int si = mig_release_index(src_rel), di = mig_release_index(dst_rel);
        return mig_release_at((size_t)(di < si ? di : si))->machine_type;
    }
    if (!m[0])
        return sr->machine_type;
    /* an explicit machine type newer than the (pair's) source release is
     * replaced by the source's own */
    const MigRelease *mt = mig_machine_type_find(m);
    if (mig_release_index(mt->name) > mig_release_index(src_rel))
        return sr->machine_type;
    return m;
}

/* The destination runs the source's machine type when it knows it (as
 * management starts it), else its own newest. */
const char *exec__dst_machine_type(const char *smt, const char *dst_rel)
{
    const MigRelease *smt_rel = mig_machine_type_find(smt);
    return mig_release_index(smt_rel->name) <= mig_release_index(dst_rel)
               ? smt
               : mig_release_find(dst_rel)->machine_type;
}

/* A capability the scenario sets on one side only that the side's release
 * does not know: the case does not apply to the pair (the management bug it
 * stages cannot happen there).  Returns the name, or NULL. */
static const char *unknown_side_cap(const ScnMachine *m, const char *release)
{
    const MigRelease *rel = mig_release_find(release);
    for (size_t i = 0; i < m->ncaps_only; i++) {
        bool known = false;
        for (size_t k = 0; rel->caps[k]; k++)
            known |= !strcmp(rel->caps[k], m->caps_only[i]);
        if (!known)
            return m->caps_only[i];
    }
    return NULL;
}

/* What both sides offer: a release that does not know the query offers the
 * empty mask. */
static MigCapMask caps_offer(const char *src_rel, const char *dst_rel)
{
    const MigRelease *sr = mig_release_find(src_rel), *dr = mig_release_find(dst_rel);
    return (sr->knows_caps_query ? exec__caps_mask(sr->caps) : 0) &
           (dr->knows_caps_query ? exec__caps_mask(dr->caps) : 0);
}

/* The first capability the scenario requires that `offer` lacks, or NULL. */
static const char *missing_required_cap(const Scenario *s, MigCapMask offer)
{
    for (size_t i = 0; i < s->nrequires; i++) {
        int cp = mig_cap_parse(s->requires[i]);
        if (cp >= 0 && !(offer & MIG_CAP_BIT(cp)))
            return s->requires[i];
    }
    return NULL;
}

int exec_case_applicable(const RunCase *c, char *why, size_t whylen)
{
    const Scenario *s = c->scn;
    const char *src_rel = c->pair_src ? c->pair_src : s->src.release;
    const char *dst_rel = c->pair_dst ? c->pair_dst : s->dst.release;
    const char *smt = exec__src_machine_type(s, src_rel, dst_rel);
    const MigRelease *smt_rel = mig_machine_type_find(smt);
    for (size_t i = 0; i < s->src.ndevices; i++)
        if (!mig_release_has_device(smt_rel->name, s->src.devices[i])) {
            snprintf(why, whylen, "machine type %s has no %s", smt, s->src.devices[i]);
            return EXEC_NA_DEVICE;
        }
    const char *cap = unknown_side_cap(&s->src, src_rel);
    const char *cap_rel = src_rel;
    if (!cap) {
        cap = unknown_side_cap(&s->dst, dst_rel);
        cap_rel = dst_rel;
    }
    if (cap) {
        snprintf(why, whylen, "release %s does not know capability %s", cap_rel, cap);
        return EXEC_NA_CAPABILITY;
    }
    const char *req = missing_required_cap(s, caps_offer(src_rel, dst_rel));
    if (req) {
        snprintf(why, whylen, "the scenario requires capability %s, which %s -> %s do "
                 "not both offer", req, src_rel, dst_rel);
        return EXEC_NA_CAPABILITY;
    }
    ExecSpicePair sp;
    exec__spice_pair(s, src_rel, dst_rel, &sp);
    if (sp.on && sp.scripted && sp.own != sp.pair) {
        snprintf(why, whylen, "the scenario scripts a %s SPICE migration; %s -> %s gives %s (%s)",
                 scn_client_mig_names[sp.own], src_rel, dst_rel, scn_client_mig_names[sp.pair], sp.p.reason);
        return EXEC_NA_SPICE;
    }
    return EXEC_APPLICABLE;
}

/* ---- management: capabilities, return path, parameters ---- */

/* The capabilities both sides get: the required ones and the scenario's
 * `caps` that both offer, plus the return path whenever both can give one
 * (unless the scenario opts out) and x-require-vmdesc whenever both offer
 * it. */
static MigCapMask caps_wanted(Run *run, MigCapMask offer)
{
    const Scenario *s = run->s;
    MigCapMask want = 0;
    for (size_t i = 0; i < s->nrequires; i++) {
        int cp = mig_cap_parse(s->requires[i]);
        if (cp >= 0)
            want |= MIG_CAP_BIT(cp);
    }
    for (size_t i = 0; i < s->ncaps; i++) {
        int cp = mig_cap_parse(s->caps[i]);
        if (cp < 0 || !(offer & MIG_CAP_BIT(cp)))
            exec__log(run, "capability %s not offered by both sides: left off", s->caps[i]);
        else
            want |= MIG_CAP_BIT(cp);
    }
    /* like libvirt, management asks for a return path whenever both sides
     * can give one: a destination that fails after the last byte can then
     * still tell the source, which keeps its guest */
    const MigCapMask rp = MIG_CAP_BIT(MIG_CAP_RETURN_PATH);
    if (!(offer & rp))
        exec__log(run, "management: return-path not offered by both sides (%s -> %s): "
                  "no return path", run->src_rel, run->dst_rel);
    else if (!s->return_path && !(want & rp))
        exec__log(run, "management: return-path left off (the scenario opts out)");
    else
        exec__log(run, "management: return-path enabled (both sides offer it)");
    if (s->return_path)
        want |= offer & rp;
    /* both sides offer migcert's x-require-vmdesc (a QEMU or an older
     * release does not): the destination may then insist on the trailer
     * that tells it which needed() subsections the source wrote */
    const MigCapMask vd = MIG_CAP_BIT(MIG_CAP_X_REQUIRE_VMDESC);
    if ((offer & vd) && !(want & vd))
        exec__log(run, "management: x-require-vmdesc enabled (both sides offer it)");
    want |= offer & vd;
    return want;
}

/* What the scenario sets on one side only (a management bug it stages). */
static MigCapMask caps_one_side(const ScnMachine *m)
{
    MigCapMask mask = 0;
    for (size_t i = 0; i < m->ncaps_only; i++) {
        int cp = mig_cap_parse(m->caps_only[i]);
        if (cp >= 0)
            mask |= MIG_CAP_BIT(cp);
    }
    return mask;
}

/* A side that refuses its capabilities says so in the trace; the migration
 * then shows what that does. */
static void caps_set(Run *run, Side *sd, MigCapMask caps)
{
    MigErr *e = NULL;
    if (caps && mig_migration_set_caps(mig_machine_migration(sd->m), caps, caps, &e) < 0)
        exec__log(run, "%s refused capabilities: %s", mig_fault_side_names[sd->sl->side],
                  e ? e->msg : "?");
    mig_err_free(e);
}

int exec__mgmt_configure(Run *run)
{
    const Scenario *s = run->s;
    RunResult *r = run->r;
    MigCapMask offer = caps_offer(run->src_rel, run->dst_rel);
    const char *req = missing_required_cap(s, offer);
    if (req) {
        r->skipped = true;
        snprintf(r->error, sizeof(r->error), "the scenario requires capability %s, which "
                 "%s -> %s do not both offer", req, run->src_rel, run->dst_rel);
        return 0;
    }
    MigCapMask want = caps_wanted(run, offer);
    MigCapMask src_only = caps_one_side(&s->src), dst_only = caps_one_side(&s->dst);
    if (want || src_only || dst_only) {
        caps_set(run, &run->src, want | src_only);
        caps_set(run, &run->dst, want | dst_only);
    }
    MigParamsSet ps = {0};
    ps.has_max_bandwidth = s->has_max_bandwidth;
    ps.p.max_bandwidth = s->max_bandwidth;
    ps.has_downtime_limit = s->downtime_limit_ms != 0;
    ps.p.downtime_limit = s->downtime_limit_ms;
    ps.has_x_max_passes = s->max_passes != 0;
    ps.p.x_max_passes = s->max_passes;
    MigErr *err = NULL;
    int rc = 0;
    if (mig_migration_set_params(mig_machine_migration(run->src.m), &ps, &err) < 0) {
        rc = -EINVAL;
        snprintf(r->error, sizeof(r->error), "parameters: %s", err ? err->msg : "?");
    }
    mig_err_free(err);
    return rc;
}

/* ---- management: what it does on its own while the migration runs ----
 *
 * As libvirt does, management starts the destination paused (-S) and only
 * lets one side run the guest:
 *   - source completed and destination completed: `cont` on the destination
 *     (the guest moves);
 *   - destination completed but the source failed (with a return path: the
 *     source never got the destination's SHUT, e.g. its return-path read
 *     failed): the source resumed its guest, so the destination, which never
 *     ran, is destroyed (as if killed);
 *   - source died after the destination completed: `cont` on the
 *     destination (it holds the only copy);
 *   - without a return path the source completes as soon as its last byte
 *     is out, before the destination has loaded anything (QEMU does so); a
 *     destination that fails after that leaves the guest paused on a source
 *     that believes it is done: management sees the destination's failure
 *     and runs `cont` on the source.  Before that `cont` the source's RAM
 *     and devices must still be what they were at stop time (nothing may
 *     touch them while the guest is paused).  With a return path the source
 *     waits for the destination's verdict and resumes by itself, so
 *     management does not: an engine that completes anyway keeps the "guest
 *     is lost" oracle red, as does a management that is gone
 *     (EXEC_SELFTEST_NO_RESUME).
 * Called from the loop's predicates, between events. */

static bool side_has_return_path(const Side *sd)
{
    return sd->m && (mig_migration_caps(mig_machine_migration(sd->m)) &
                     MIG_CAP_BIT(MIG_CAP_RETURN_PATH));
}

static void management_cont(Run *run, Side *sd)
{
    MigFaultSide prev;
    MigErr *e = NULL;
    exec__side_enter(sd->sl, &prev);
    int rc = mig_machine_cont(sd->m, &e);
    fault_injector_set_side(run->inj, prev);
    if (rc < 0)
        exec__log(run, "management: cont on the %s refused: %s",
                  mig_fault_side_names[sd->sl->side], e ? e->msg : "?");
    mig_err_free(e);
}

static void management_resume_source(Run *run)
{
    Side *src = &run->src, *dst = &run->dst;
    run->mgmt_resumed = true;
    exec__log(run, "management: destination failed after the source completed; resuming "
                     "the source (no return path)");
    snprintf(run->r->mig_error, sizeof(run->r->mig_error), "%s",
             mig_migration_error(mig_machine_migration(dst->m)));
    exec__selftest_break_paused(run);
    if (run->wl && mig_workload_verify(run->wl, mig_machine_ram(src->m), &run->paused_err) < 0)
        mig_err_prepend(&run->paused_err, "memory: source while paused after completing");
    for (size_t i = 0; i < src->ndevs && !run->paused_err; i++)
        if (src->before[i] &&
            mig_fake_device_same(src->before[i], src->devs[i], &run->paused_err) < 0)
            mig_err_prepend(&run->paused_err, "devices: source while paused after completing");
    management_cont(run, src);
}

void exec__mgmt_watch(Run *run)
{
    Side *src = &run->src, *dst = &run->dst;
    if (!run->migrating || dst->killed || !dst->m ||
        run->c->selftest == EXEC_SELFTEST_NO_RESUME)
        return;
    MigStatus ss = exec__side_status(src), ds = exec__side_status(dst);
    if (ds == MIG_STATUS_COMPLETED && mig_machine_run_state(dst->m) == MIG_RUN_STATE_PAUSED) {
        if (src->killed || ss == MIG_STATUS_COMPLETED) {
            exec__log(run, "management: %s; resuming the destination",
                      src->killed ? "the source died after the destination completed"
                                    : "both sides completed");
            management_cont(run, dst);
        } else if (mig_status_is_terminal(ss)) {
            exec__log(run, "management: the source %s after the destination loaded "
                      "everything; destroying the destination (it never ran)",
                      mig_status_name(ss));
            dst->killed = true;
            dst->sl->dead = true;
            if (run->link)
                mig_link_drop_now(run->link);
            exec__spice_side_killed(run, MIG_FAULT_SIDE_DST);
        }
        return;
    }
    if (!run->mgmt_resumed && !src->killed && ss == MIG_STATUS_COMPLETED &&
        mig_machine_run_state(src->m) == MIG_RUN_STATE_POSTMIGRATE &&
        ds == MIG_STATUS_FAILED && !side_has_return_path(src))
        management_resume_source(run);
}

/* ---- management: the pre-flight check ---- */

/* compat's findings are worded for `check-compat OLD NEW`: here OLD is the
 * source and NEW the destination. */
static void reword(char *out, size_t len, const char *text)
{
    size_t o = 0;
    for (const char *p = text; *p && o + 1 < len;) {
        const char *rep = NULL;
        size_t skip = 0;
        bool word_start = p == text || p[-1] == ' ' || p[-1] == '(' || p[-1] == '\'';
        if (word_start && !strncmp(p, "OLD", 3) && !(p[3] >= 'A' && p[3] <= 'Z'))
            rep = "the source", skip = 3;
        else if (word_start && !strncmp(p, "NEW", 3) && !(p[3] >= 'A' && p[3] <= 'Z'))
            rep = "the destination", skip = 3;
        if (rep) {
            int n = snprintf(out + o, len - o, "%s", rep);
            o = MIG_MIN(o + (size_t)(n > 0 ? n : 0), len - 1);
            p += skip;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = 0;
}

typedef struct Findings {
    char *section[32];
    char *where[32];
    char *text[32];
    int rule[32];
    size_t n;
} Findings;

static void preflight_finding(const VmsCompatFinding *f, void *opaque)
{
    Findings *fs = opaque;
    if (f->level != VMS_COMPAT_ERROR || fs->n == MIG_ARRAY_SIZE(fs->text))
        return;
    fs->section[fs->n] = mig_strdup(f->section ? f->section : "");
    fs->where[fs->n] = mig_strdup(f->where ? f->where : "");
    fs->text[fs->n] = mig_strdup(f->text);
    fs->rule[fs->n] = f->rule;
    fs->n++;
}

/* The first device of the machine that breaks, its most precise finding
 * (a field or subsection over a whole-section one). */
static size_t preflight_pick(const Scenario *s, const Findings *fs)
{
    size_t pick = 0;
    bool found = false;
    for (size_t d = 0; d < s->src.ndevices && !found; d++)
        for (size_t i = 0; i < fs->n; i++)
            if (!strcmp(fs->section[i], s->src.devices[d]) &&
                (!found || (!fs->where[pick][0] && fs->where[i][0]))) {
                if (found && fs->where[pick][0])
                    break;
                pick = i;
                found = true;
            }
    return pick;
}

/* n > 0 incompatibilities: the refusal names the first. */
static int preflight_refuse(Run *run, const Findings *fs, int n, MigErr **errp)
{
    size_t pick = preflight_pick(run->s, fs);
    char text[400];
    reword(text, sizeof(text), fs->text[pick]);
    char what[160] = "";
    if (fs->where[pick][0])
        snprintf(what, sizeof(what), "%s %s: ", fs->rule[pick] == 10 ? "subsection" : "field",
                 fs->where[pick]);
    return mig_err_set(errp, -ENOTSUP, "pre-flight: %s: %s%s (%d incompatibilit%s between "
                       "source machine type %s and destination release %s)",
                       fs->section[pick], what, text, n, n == 1 ? "y" : "ies",
                       run->src.machine_type, run->dst.release);
}

/* Management's pre-flight (management checks automatically before each
 * migrate: docs/architecture.md): the source's -dump-vmstate for the
 * machine type it runs against the destination's, through the static
 * checker.  Returns 0 when compatible,
 * -ENOTSUP with "pre-flight: DEVICE: field F: ..." naming the first broken
 * device (in the machine's device order) and field or subsection. */
int exec__mgmt_preflight(Run *run, MigErr **errp)
{
    const Scenario *s = run->s;
    const MigRelease *emit = mig_machine_type_find(run->src.machine_type);
    /* a machine without devices: an empty list, not NULL (every device) */
    char *none[1] = {NULL};
    json_t *sdump = mig_release_dump_devices(emit->name, run->src.machine_type,
                                             s->src.devices ? s->src.devices : none,
                                             s->src.ndevices);
    json_t *ddump = mig_release_dump_devices(run->dst.release, run->dst.machine_type,
                                             s->dst.devices ? s->dst.devices : none,
                                             s->dst.ndevices);
    Findings fs = {0};
    MigErr *e = NULL;
    int n = vmstate_check_compat(sdump, ddump, preflight_finding, &fs, &e);
    json_decref(sdump);
    json_decref(ddump);
    int rc = 0;
    if (n < 0) {
        rc = mig_err_set(errp, -EPROTO, "pre-flight: %s", e ? e->msg : "bad dump");
    } else if (n > 0) {
        rc = preflight_refuse(run, &fs, n, errp);
    }
    if (rc == 0 && mig_release_index(emit->name) > mig_release_index(run->dst.release))
        /* every device fits, but the destination build cannot run the
         * source's machine type: management cannot start it that way */
        rc = mig_err_set(errp, -ENOTSUP, "pre-flight: machine type %s: release %s does not "
                         "know it (its newest is %s)", run->src.machine_type, run->dst.release,
                         mig_release_find(run->dst.release)->machine_type);
    for (size_t i = 0; i < fs.n; i++) {
        free(fs.section[i]);
        free(fs.where[i]);
        free(fs.text[i]);
    }
    mig_err_free(e);
    return rc;
}
