/*
 * faults-spec.c - fault spec parser and the PRNG-driven libfiu injector
 * (see faults-spec.h).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/faults.h"
#include "faults-spec.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#endif

const char *const mig_fault_side_names[MIG_FAULT_SIDE__COUNT] = {"src", "dst", "client"};

const char *const scn_phase_names[SCN_PHASE__COUNT] = {
    "none", "setup", "active", "device", "cancelling", "completed", "failed", "cancelled",
};

int scn_phase_parse(const char *name)
{
    if (!strcmp(name, "precopy"))
        return SCN_PHASE_ACTIVE;
    if (!strcmp(name, "stop-copy"))
        return SCN_PHASE_DEVICE;
    for (int i = 0; i < SCN_PHASE__COUNT; i++)
        if (!strcmp(name, scn_phase_names[i]))
            return i;
    return -1;
}

/*
 * Points where a spec may choose another errno than the registered one
 * (errno=), and the others that make sense there (a peer that resets or
 * goes away).  Every point injects the failnum the injector sets
 * (mig_fault_fire); for the points not listed here a different errno than
 * the registered one would be a fault the code cannot meet, so the parser
 * refuses it.
 */
static const int errno_extra[MIG_FAULT__COUNT][3] = {
    /* negative errnos, 0-terminated, after the registered one */
    [MIG_FAULT_TRANSPORT_READ] = {-ECONNRESET, -EPIPE, 0},
    [MIG_FAULT_TRANSPORT_WRITE] = {-EPIPE, -ECONNRESET, 0},
};

/* The registered errno then the extras, 0-terminated; false when the point
 * has no choice. */
static bool point_errno_choices(size_t point, int errs[4])
{
    if (point >= MIG_FAULT__COUNT || !errno_extra[point][0])
        return false;
    errs[0] = -mig_fault_errno((MigFaultId)point);
    memcpy(errs + 1, errno_extra[point], sizeof(errno_extra[point]));
    return true;
}

/* "EIO, ECONNRESET or EPIPE" */
static void format_choices(const int *errs, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = 0;
    for (size_t i = 0; errs[i] && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s",
                                i == 0 ? "" : errs[i + 1] ? ", " : " or ",
                                mig_errno_name(errs[i]));
}

static int parse_side(const char *s, size_t len)
{
    for (int i = 0; i < MIG_FAULT_SIDE__COUNT; i++)
        if (strlen(mig_fault_side_names[i]) == len && !strncmp(s, mig_fault_side_names[i], len))
            return i;
    return -1;
}

int mig_fault_spec_parse(const char *text, MigFaultSpec *out, MigErr **errp)
{
    MigFaultSpec s = {0};
    const char *colon = strchr(text, ':');
    if (!colon)
        return mig_err_set(errp, -EINVAL,
                           "fault '%s': expected SIDE:POINT (side src, dst or client)", text);
    int side = parse_side(text, (size_t)(colon - text));
    if (side < 0)
        return mig_err_set(errp, -EINVAL,
                           "fault '%s': unknown side '%.*s' (expected src, dst or client)", text,
                           (int)(colon - text), text);
    s.side = (MigFaultSide)side;

    /* The point runs up to the trigger, a space or the end. */
    const char *p = colon + 1;
    size_t plen = strcspn(p, "#@% \t");
    if (plen == 0)
        return mig_err_set(errp, -EINVAL, "fault '%s': missing fault point after '%.*s'", text,
                           (int)(p - text), text);
    if (plen >= sizeof(s.point))
        return mig_err_set(errp, -EINVAL, "fault '%s': fault point name too long", text);
    memcpy(s.point, p, plen);
    s.point[plen] = 0;
    const MigFaultInfo *info = mig_faults_find(s.point);
    if (!info)
        return mig_err_set(errp, -EINVAL,
                           "fault '%s': unknown fault point '%s' (see migcert list-faults)", text,
                           s.point);
    size_t count;
    s.point_index = (size_t)(info - mig_faults_table(&count));
    s.err = -info->err;
    p += plen;

    char *end;
    switch (*p) {
    case '#': {
        if (p[1] < '0' || p[1] > '9')
            return mig_err_set(errp, -EINVAL, "fault '%s': '#' needs a hit number >= 1", text);
        errno = 0;
        unsigned long long n = strtoull(p + 1, &end, 10);
        if (n == 0)
            return mig_err_set(errp, -EINVAL, "fault '%s': hit numbers start at 1", text);
        if (errno == ERANGE || n > MIG_FAULT_MAX_NTH)
            return mig_err_set(errp, -EINVAL, "fault '%s': hit number above %llu, the most a "
                               "fault spec takes", text, (unsigned long long)MIG_FAULT_MAX_NTH);
        s.when = MIG_FAULT_WHEN_NTH;
        s.nth = n;
        p = end;
        break;
    }
    case '@': {
        size_t n = strcspn(p + 1, " \t");
        char name[32];
        if (n == 0 || n >= sizeof(name))
            return mig_err_set(errp, -EINVAL, "fault '%s': '@' needs a phase name", text);
        memcpy(name, p + 1, n);
        name[n] = 0;
        int ph = scn_phase_parse(name);
        if (ph < SCN_PHASE_SETUP || ph > SCN_PHASE_CANCELLING)
            return mig_err_set(errp, -EINVAL,
                               "fault '%s': unknown phase '%s' (expected setup, precopy, "
                               "stop-copy or cancelling)",
                               text, name);
        s.when = MIG_FAULT_WHEN_PHASE;
        s.phase = (ScnPhase)ph;
        p += 1 + n;
        break;
    }
    case '%': {
        double v = strtod(p + 1, &end);
        if (end == p + 1 || !(v > 0.0 && v <= 1.0) || isnan(v))
            return mig_err_set(errp, -EINVAL,
                               "fault '%s': '%%' needs a probability in (0, 1], e.g. %%0.05",
                               text);
        s.when = MIG_FAULT_WHEN_PROB;
        s.prob = v;
        p = end;
        break;
    }
    default:
        s.when = MIG_FAULT_WHEN_ALWAYS;
        break;
    }

    while (*p == ' ' || *p == '\t')
        p++;
    if (!strncmp(p, "errno=", 6)) {
        const char *e = p + 6;
        size_t n = strcspn(e, " \t");
        char name[32];
        if (n == 0 || n >= sizeof(name))
            return mig_err_set(errp, -EINVAL, "fault '%s': errno= needs a name like EIO", text);
        memcpy(name, e, n);
        name[n] = 0;
        int code = mig_errno_parse(name);
        if (code == 0)
            return mig_err_set(errp, -EINVAL, "fault '%s': unknown errno '%s'", text, name);
        int errs[4];
        const int *choices = point_errno_choices(s.point_index, errs) ? errs : NULL;
        if (!choices && code != s.err)
            return mig_err_set(errp, -EINVAL, "fault '%s': point '%s' injects %s, not %s", text,
                               s.point, mig_errno_name(s.err), name);
        if (choices) {
            size_t i = 0;
            while (choices[i] && choices[i] != code)
                i++;
            if (!choices[i]) {
                char list[96];
                format_choices(choices, list, sizeof(list));
                return mig_err_set(errp, -EINVAL,
                                   "fault '%s': point '%s' injects %s, not %s", text, s.point,
                                   list, name);
            }
        }
        s.err = code;
        p = e + n;
        while (*p == ' ' || *p == '\t')
            p++;
    }
    if (*p)
        return mig_err_set(errp, -EINVAL, "fault '%s': unexpected '%s'", text, p);
    *out = s;
    return 0;
}

void mig_fault_spec_format(const MigFaultSpec *s, char *buf, size_t len)
{
    const char *side = mig_fault_side_names[s->side];
    const MigFaultInfo *info = mig_faults_find(s->point);
    /* errno= only when it differs from the point's registered errno */
    if (info && s->err && s->err != -info->err && len) {
        MigFaultSpec plain = *s;
        plain.err = 0;
        mig_fault_spec_format(&plain, buf, len);
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, " errno=%s", mig_errno_name(s->err));
        return;
    }
    switch (s->when) {
    case MIG_FAULT_WHEN_NTH:
        snprintf(buf, len, "%s:%s#%llu", side, s->point, (unsigned long long)s->nth);
        break;
    case MIG_FAULT_WHEN_PHASE:
        snprintf(buf, len, "%s:%s@%s", side, s->point, scn_phase_names[s->phase]);
        break;
    case MIG_FAULT_WHEN_PROB:
        snprintf(buf, len, "%s:%s%%%g", side, s->point, s->prob);
        break;
    default:
        snprintf(buf, len, "%s:%s", side, s->point);
        break;
    }
}

/* A libfiu point's failinfo: the injector and the point's index, so the
 * callback needs no lookup by name. */
typedef struct FiuPoint {
    FaultInjector *inj;
    size_t index;
} FiuPoint;

#define NO_SPEC SIZE_MAX

struct FaultInjector {
    MigPrng prng;
    MigLoop *loop;
    MigTrace *trace;
    MigFaultSpec *specs;
    size_t nspecs;
    bool *spent; /* per spec: a one-shot spec (#N, @PHASE) already fired */
    uint64_t *spec_fired; /* per spec: the hits it fired (or matched, see below) */
    /* The specs of each side and point in spec order, the only ones a hit
     * there looks at: spec_head[side][point], then spec_next[spec]
     * (NO_SPEC ends a list). */
    size_t spec_head[MIG_FAULT_SIDE__COUNT][MIG_FAULT__COUNT];
    size_t *spec_next;
    size_t npoints;
    uint64_t *hits; /* [side][point], the hits libfiu passed on; see granted */
    /* The gate (faults.h): per side and point, how many hits the last grant
     * let pass without asking libfiu (granted) and how many of them are
     * still to come (left, which the engine counts down).  The true count
     * of a point is hits + granted - left.  A grant never covers a hit any
     * spec could fail (grant()), so a passed hit is one that decide()
     * would have counted and let go, and nothing else. */
    uint64_t granted[MIG_FAULT_SIDE__COUNT][MIG_FAULT__COUNT];
    uint64_t left[MIG_FAULT_SIDE__COUNT][MIG_FAULT__COUNT];
    MigFaultGate gate; /* .left: the current side's row of left */
    FiuPoint fiu_points[MIG_FAULT__COUNT];
    MigFaultSide side;
    ScnPhase phase;
    uint64_t fired;
    char first_fired[96];
    bool armed;
};

/* libfiu's registry is process-wide; only one injector may drive it. */
static FaultInjector *armed_injector;

FaultInjector *fault_injector_new(const MigFaultSpec *specs, size_t n, uint64_t seed,
                                  MigLoop *loop, MigTrace *trace)
{
    FaultInjector *inj = mig_malloc0(sizeof(*inj));
    /* A stream of its own, so that decisions do not shift the engine's. */
    mig_prng_seed(&inj->prng, mig_mix64(seed ^ 0xfa0175eedull));
    inj->loop = loop;
    inj->trace = trace;
    inj->nspecs = n;
    inj->specs = mig_malloc0(sizeof(*specs) * (n ? n : 1));
    if (n)
        memcpy(inj->specs, specs, sizeof(*specs) * n);
    inj->spent = mig_malloc0(sizeof(bool) * (n ? n : 1));
    inj->spec_fired = mig_malloc0(sizeof(uint64_t) * (n ? n : 1));
    inj->spec_next = mig_malloc0(sizeof(size_t) * (n ? n : 1));
    mig_faults_table(&inj->npoints);
    inj->hits = mig_malloc0(sizeof(uint64_t) * MIG_FAULT_SIDE__COUNT * (inj->npoints + 1));
    /* each (side, point)'s specs, in spec order: built from the back */
    for (int sd = 0; sd < MIG_FAULT_SIDE__COUNT; sd++)
        for (size_t p = 0; p < MIG_FAULT__COUNT; p++)
            inj->spec_head[sd][p] = NO_SPEC;
    for (size_t i = n; i-- > 0;) {
        const MigFaultSpec *sp = &inj->specs[i];
        if (sp->side >= MIG_FAULT_SIDE__COUNT || sp->point_index >= MIG_FAULT__COUNT) {
            inj->spec_next[i] = NO_SPEC; /* matches no hit, as before */
            continue;
        }
        inj->spec_next[i] = inj->spec_head[sp->side][sp->point_index];
        inj->spec_head[sp->side][sp->point_index] = i;
    }
    for (size_t p = 0; p < MIG_FAULT__COUNT; p++)
        inj->fiu_points[p] = (FiuPoint){inj, p};
    inj->side = MIG_FAULT_SIDE_SRC;
    inj->gate.left = inj->left[inj->side];
    return inj;
}

void fault_injector_free(FaultInjector *inj)
{
    if (!inj)
        return;
    fault_injector_disarm(inj);
    free(inj->specs);
    free(inj->spent);
    free(inj->spec_fired);
    free(inj->spec_next);
    free(inj->hits);
    free(inj);
}

const MigFaultGate *fault_injector_gate(FaultInjector *inj)
{
    return inj ? &inj->gate : NULL;
}

const MigFaultGate *fault_process_gate(FaultProcessGate *g)
{
    if (getenv("FIU_ENABLE") || getenv("FIU_CTRL_FIFO"))
        return NULL;
    for (size_t p = 0; p < MIG_FAULT__COUNT; p++)
        g->left[p] = UINT64_MAX;
    g->gate.left = g->left;
    return &g->gate;
}

/* Take the hits that passed the gate at (side, p) into hits. */
static void settle(FaultInjector *inj, MigFaultSide side, size_t p)
{
    inj->hits[side * inj->npoints + p] += inj->granted[side][p] - inj->left[side][p];
    inj->granted[side][p] = inj->left[side][p] = 0;
}

/* Let the next hits of (side, p) that no spec can fail pass the gate: none
 * while a spec there decides from anything but the hit number (every hit,
 * @PHASE: the phase may change, %P: each hit draws), up to the hit before
 * the nearest `#N`, all of them when no spec is left there.  Only while
 * armed: a disarmed injector counts nothing. */
static void grant(FaultInjector *inj, MigFaultSide side, size_t p)
{
    settle(inj, side, p);
    if (!inj->armed)
        return;
    uint64_t hit = inj->hits[side * inj->npoints + p];
    uint64_t pass = UINT64_MAX;
    for (size_t i = inj->spec_head[side][p]; i != NO_SPEC && pass; i = inj->spec_next[i]) {
        const MigFaultSpec *sp = &inj->specs[i];
        if (inj->spent[i])
            continue;
        if (sp->when != MIG_FAULT_WHEN_NTH)
            pass = 0;
        else if (sp->nth > hit) /* one below: hit nth itself is asked */
            pass = MIG_MIN(pass, sp->nth - hit - 1);
    }
    inj->granted[side][p] = inj->left[side][p] = pass;
}

void fault_injector_set_side(FaultInjector *inj, MigFaultSide side)
{
    if (inj) {
        inj->side = side;
        inj->gate.left = inj->left[side];
    }
}

MigFaultSide fault_injector_side(const FaultInjector *inj)
{
    return inj ? inj->side : MIG_FAULT_SIDE_SRC;
}

void fault_injector_set_phase(FaultInjector *inj, ScnPhase phase)
{
    if (inj)
        inj->phase = phase;
}

uint64_t fault_injector_hits(const FaultInjector *inj, MigFaultSide side, size_t index)
{
    if (!inj || index >= inj->npoints || side >= MIG_FAULT_SIDE__COUNT)
        return 0;
    return inj->hits[side * inj->npoints + index] + inj->granted[side][index] -
           inj->left[side][index];
}

uint64_t fault_injector_fired(const FaultInjector *inj)
{
    return inj ? inj->fired : 0;
}

uint64_t fault_injector_spec_fired(const FaultInjector *inj, size_t spec)
{
    return inj && spec < inj->nspecs ? inj->spec_fired[spec] : 0;
}

const char *fault_injector_first_fired(const FaultInjector *inj)
{
    return inj && inj->fired ? inj->first_fired : NULL;
}

bool fault_injector_decide(FaultInjector *inj, const char *point)
{
    return fault_injector_decide_errno(inj, point) != 0;
}

static int decide(FaultInjector *inj, size_t idx);

int fault_injector_decide_errno(FaultInjector *inj, const char *point)
{
    size_t count;
    const MigFaultInfo *info = mig_faults_find(point);
    return info ? decide(inj, (size_t)(info - mig_faults_table(&count))) : 0;
}

static int decide(FaultInjector *inj, size_t idx)
{
    const MigFaultInfo *info = &mig_faults_table(&(size_t){0})[idx];
    MigFaultSide side = inj->side;
    settle(inj, side, idx); /* the hits that passed the gate came first */
    uint64_t hit = ++inj->hits[side * inj->npoints + idx];
    bool fail = false;
    int err = -info->err;
    /* The first spec that fires decides the hit (and its errno).  Past
     * it, only the specs that decide from the hit alone (every hit, #N) are
     * still looked at, to be credited with the hit: `#N` was reached even
     * when another spec failed that same hit (a sweep must know).  @PHASE
     * and %P are not: @PHASE then waits for the next hit in its phase, %P
     * draws nothing, exactly as when they were never looked at.  Only this
     * side and point's specs, in spec order (spec_head). */
    for (size_t i = inj->spec_head[side][idx]; i != NO_SPEC; i = inj->spec_next[i]) {
        MigFaultSpec *s = &inj->specs[i];
        if (inj->spent[i])
            continue;
        bool match = false;
        switch (s->when) {
        case MIG_FAULT_WHEN_ALWAYS:
            match = true;
            break;
        case MIG_FAULT_WHEN_NTH:
            match = hit == s->nth;
            inj->spent[i] = match;
            break;
        case MIG_FAULT_WHEN_PHASE:
            match = !fail && inj->phase == s->phase;
            inj->spent[i] = match;
            break;
        case MIG_FAULT_WHEN_PROB:
            match = !fail && mig_prng_double(&inj->prng) < s->prob;
            break;
        default:
            break;
        }
        if (!match)
            continue;
        inj->spec_fired[i]++;
        if (!fail && s->err)
            err = s->err;
        fail = true;
    }
    grant(inj, side, idx);
    if (!fail)
        return 0;
    if (inj->fired++ == 0) {
        MigFaultSpec first = {.side = side, .when = MIG_FAULT_WHEN_NTH, .nth = hit,
                              .err = err};
        snprintf(first.point, sizeof(first.point), "%s", info->name);
        mig_fault_spec_format(&first, inj->first_fired, sizeof(inj->first_fired));
    }
    mig_trace_log(inj->trace, inj->loop ? mig_loop_now_ns(inj->loop) : 0, "fault",
                  "%s:%s hit %llu fires %s", mig_fault_side_names[side], info->name,
                  (unsigned long long)hit, mig_errno_name(err));
    return err;
}

#ifdef FIU_ENABLE
static int fiu_external_cb(const char *name, int *failnum, void **failinfo, unsigned int *flags)
{
    (void)name;
    (void)flags;
    const FiuPoint *fp = *failinfo;
    if (!fp)
        return 0;
    int err = decide(fp->inj, fp->index);
    if (!err)
        return 0;
    /* fiu_fail() returns the failnum we leave here: points that use
     * fiu_return_errno_on() return it as their errno. */
    *failnum = -err;
    return 1;
}
#endif

int fault_injector_arm(FaultInjector *inj)
{
    if (armed_injector && armed_injector != inj)
        return -EBUSY;
    if (inj->armed)
        return 0;
#ifdef FIU_ENABLE
    static bool fiu_ready;
    if (!fiu_ready) {
        fiu_init(0);
        fiu_ready = true;
    }
    size_t n;
    const MigFaultInfo *t = mig_faults_table(&n);
    for (size_t i = 0; i < n; i++)
        fiu_enable_external(t[i].name, 1, &inj->fiu_points[i], 0, fiu_external_cb);
#endif
    inj->armed = true;
    armed_injector = inj;
    for (int sd = 0; sd < MIG_FAULT_SIDE__COUNT; sd++)
        for (size_t p = 0; p < MIG_FAULT__COUNT; p++)
            grant(inj, (MigFaultSide)sd, p);
    return 0;
}

void fault_injector_disarm(FaultInjector *inj)
{
    if (!inj || !inj->armed)
        return;
#ifdef FIU_ENABLE
    size_t n;
    const MigFaultInfo *t = mig_faults_table(&n);
    for (size_t i = 0; i < n; i++)
        fiu_disable(t[i].name);
#endif
    inj->armed = false;
    armed_injector = NULL;
    for (int sd = 0; sd < MIG_FAULT_SIDE__COUNT; sd++)
        for (size_t p = 0; p < MIG_FAULT__COUNT; p++)
            settle(inj, (MigFaultSide)sd, p); /* the gate is shut: every hit asks */
}
