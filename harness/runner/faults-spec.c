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

struct FaultInjector {
    MigPrng prng;
    MigLoop *loop;
    MigTrace *trace;
    MigFaultSpec *specs;
    size_t nspecs;
    bool *spent; /* per spec: a one-shot spec (#N, @PHASE) already fired */
    uint64_t *spec_fired; /* per spec: the hits it fired (or matched, see below) */
    size_t npoints;
    uint64_t *hits; /* [side][point] */
    MigFaultSide side;
    ScnPhase phase;
    uint64_t fired;
    char first_fired[96];
    bool armed;
    /* The point each name pointer libfiu passed to fiu_external_cb is, by
     * the pointer (direct-mapped; a miss searches the registry by name).
     * Those pointers are string constants of the engine or libfiu's copies
     * of the names it holds while armed: the same text for the whole case. */
    struct {
        const char *name;
        const MigFaultInfo *info;
    } by_ptr[64];
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
    mig_faults_table(&inj->npoints);
    inj->hits = mig_malloc0(sizeof(uint64_t) * MIG_FAULT_SIDE__COUNT * (inj->npoints + 1));
    inj->side = MIG_FAULT_SIDE_SRC;
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
    free(inj->hits);
    free(inj);
}

void fault_injector_set_side(FaultInjector *inj, MigFaultSide side)
{
    if (inj)
        inj->side = side;
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
    return inj->hits[side * inj->npoints + index];
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

static int decide(FaultInjector *inj, const MigFaultInfo *info, const char *point);

int fault_injector_decide_errno(FaultInjector *inj, const char *point)
{
    const MigFaultInfo *info = mig_faults_find(point);
    return info ? decide(inj, info, point) : 0;
}

static int decide(FaultInjector *inj, const MigFaultInfo *info, const char *point)
{
    size_t count;
    size_t idx = (size_t)(info - mig_faults_table(&count));
    uint64_t hit = ++inj->hits[inj->side * inj->npoints + idx];
    bool fail = false;
    int err = -info->err;
    /* The first spec that fires decides the hit (and its errno).  Past
     * it, only the specs that decide from the hit alone (every hit, #N) are
     * still looked at, to be credited with the hit: `#N` was reached even
     * when another spec failed that same hit (a sweep must know).  @PHASE
     * and %P are not: @PHASE then waits for the next hit in its phase, %P
     * draws nothing, exactly as when they were never looked at. */
    for (size_t i = 0; i < inj->nspecs; i++) {
        MigFaultSpec *s = &inj->specs[i];
        if (s->point_index != idx || s->side != inj->side || inj->spent[i])
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
    if (!fail)
        return 0;
    if (inj->fired++ == 0) {
        MigFaultSpec first = {.side = inj->side, .when = MIG_FAULT_WHEN_NTH, .nth = hit,
                              .err = err};
        snprintf(first.point, sizeof(first.point), "%s", point);
        mig_fault_spec_format(&first, inj->first_fired, sizeof(inj->first_fired));
    }
    mig_trace_log(inj->trace, inj->loop ? mig_loop_now_ns(inj->loop) : 0, "fault",
                  "%s:%s hit %llu fires %s", mig_fault_side_names[inj->side], point,
                  (unsigned long long)hit, mig_errno_name(err));
    return err;
}

#ifdef FIU_ENABLE
static int fiu_external_cb(const char *name, int *failnum, void **failinfo, unsigned int *flags)
{
    (void)flags;
    FaultInjector *inj = *failinfo;
    if (!inj)
        return 0;
    size_t slot = ((uintptr_t)name >> 3) % MIG_ARRAY_SIZE(inj->by_ptr);
    if (inj->by_ptr[slot].name != name) {
        const MigFaultInfo *info = mig_faults_find(name);
        if (!info)
            return 0;
        inj->by_ptr[slot].name = name;
        inj->by_ptr[slot].info = info;
    }
    int err = decide(inj, inj->by_ptr[slot].info, name);
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
        fiu_enable_external(t[i].name, 1, inj, 0, fiu_external_cb);
    memset(inj->by_ptr, 0, sizeof(inj->by_ptr)); /* libfiu's copies are new */
#endif
    inj->armed = true;
    armed_injector = inj;
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
}
