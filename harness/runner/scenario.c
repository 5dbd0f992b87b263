/*
 * scenario.c - scenario file loader: from a file to a checked, defaulted
 * Scenario (see scenario.h; keys documented in scenarios/README.md).
 *
 * Owns the loader's driver and the checks of the machines and the whole
 * file (convert), freeing a Scenario, and collecting scenario files from
 * folders.  Its siblings, sharing scenario-internal.h: scenario-values.c
 * (sizes, durations, rates), scenario-lines.c (the key -> line index),
 * scenario-schema.c (the libcyaml schema and its errors),
 * scenario-steps.c (one step's checks) and scenario-spice.c (the SPICE
 * keys and steps).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "devices/releases.h"
#include "migration/migration.h"
#include "scenario-internal.h"

const char *const scn_step_names[SCN_STEP__COUNT] = {
    "migrate", "wait", "cancel", "kill", "restart", "drop", "partition", "heal", "slow",
    "device-error", "client-migrate-info", "client",
};

const char *const scn_outcome_names[SCN_OUTCOME__COUNT] = {"completed", "failed", "cancelled"};

/* ---- checks on the raw form ---- */

int scn__bad(Ctx *c, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *key = strrchr(path, '.');
    key = key ? key + 1 : path;
    return mig_err_set(c->errp, -EINVAL, "%s:%d: key '%s': %s", c->name,
                       scn__index_line(c->ix, path), key, msg);
}

int scn__bad_value(Ctx *c, const char *path, int rc, const char *text, const char *limit,
                   const char *fmt, ...)
{
    if (rc == -ERANGE)
        return scn__bad(c, path, "'%s' is out of range (%s, docs/limits.md)", text, limit);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return scn__bad(c, path, "%s", msg);
}

char **scn__dup_strv(char **v, uint32_t n)
{
    char **out = mig_malloc0(sizeof(char *) * (n + 1));
    for (uint32_t i = 0; i < n; i++)
        out[i] = mig_strdup(v[i]);
    return out;
}

void scn__free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* "FILE:LINE: key 'capabilities[i]': unknown capability 'x' (known: ...)" */
int scn__bad_cap(Ctx *c, const char *path, uint32_t i, const char *name)
{
    char known[1024] = "";
    for (int k = 0; k < MIG_CAP__COUNT; k++) {
        size_t used = strlen(known);
        snprintf(known + used, sizeof(known) - used, "%s%s", k ? ", " : "",
                 mig_cap_name((MigCap)k));
    }
    const char *dot = strrchr(path, '.');
    char key[64];
    snprintf(key, sizeof(key), "%.*s", (int)strcspn(dot ? dot + 1 : path, "["),
             dot ? dot + 1 : path);
    return mig_err_set(c->errp, -EINVAL,
                       "%s:%d: key '%s[%u]': unknown capability '%s' (known: %s)", c->name,
                       scn__index_line(c->ix, path), key, i, name, known);
}

static int check_machine(Ctx *c, const char *which, const RawMachine *r, const ScnMachine *dflt,
                         ScnMachine *m)
{
    char path[128];
    if (dflt) {
        /* dst inherits whatever it does not say (but never src-only caps) */
        scn__scopy(m->release, sizeof(m->release), dflt->release);
        /* the destination runs what management starts it with (the
         * source's machine type); match-dst is a source-only notion */
        if (strcmp(dflt->machine, "match-dst"))
            scn__scopy(m->machine, sizeof(m->machine), dflt->machine);
        m->ram = dflt->ram;
        m->fill_zero = dflt->fill_zero;
        m->devices = scn__dup_strv(dflt->devices, (uint32_t)dflt->ndevices);
        m->ndevices = dflt->ndevices;
    } else {
        scn__scopy(m->release, sizeof(m->release), MIG_RELEASE_CURRENT);
        m->ram = 64ull << 20;
    }
    if (!r)
        return 0;
    if (r->release) {
        snprintf(path, sizeof(path), "machines.%s.release", which);
        if (!mig_release_find(r->release))
            return scn__bad(c, path, "unknown release '%s' (known: %s)", r->release,
                       mig_release_names());
        scn__scopy(m->release, sizeof(m->release), r->release);
    }
    if (r->machine) {
        snprintf(path, sizeof(path), "machines.%s.machine", which);
        if (strcmp(r->machine, "match-dst") && strcmp(r->machine, "default") &&
            !mig_machine_type_find(r->machine))
            return scn__bad(c, path, "unknown machine type '%s' (known: %s, default, match-dst)",
                       r->machine, mig_machine_type_names());
        snprintf(m->machine, sizeof(m->machine), "%s",
                 strcmp(r->machine, "default") ? r->machine : "");
    }
    if (r->ram) {
        snprintf(path, sizeof(path), "machines.%s.ram", which);
        if (scn_parse_size(r->ram, &m->ram) < 0 || m->ram < 4096 || m->ram % 4096)
            return scn__bad(c, path, "invalid size '%s' (expected a multiple of 4K like 64M)",
                       r->ram);
        if (m->ram > SCN_MAX_RAM)
            return scn__bad_value(c, path, -ERANGE, r->ram, "at most 1G", "%s", "");
    }
    if (r->fill) {
        snprintf(path, sizeof(path), "machines.%s.fill", which);
        if (strcmp(r->fill, "random") && strcmp(r->fill, "zero"))
            return scn__bad(c, path, "invalid fill '%s' (expected random or zero)", r->fill);
        m->fill_zero = !strcmp(r->fill, "zero");
    }
    if (r->devices) {
        for (uint32_t i = 0; i < r->devices_count; i++) {
            snprintf(path, sizeof(path), "machines.%s.devices[%u]", which, i);
            if (!mig_device_type_known(r->devices[i]))
                return scn__bad(c, path, "unknown device '%s' (known: %s)", r->devices[i],
                           mig_device_type_names());
        }
        scn__free_strv(m->devices, m->ndevices);
        m->devices = scn__dup_strv(r->devices, r->devices_count);
        m->ndevices = r->devices_count;
    }
    if (r->capabilities) {
        for (uint32_t i = 0; i < r->capabilities_count; i++) {
            snprintf(path, sizeof(path), "machines.%s.capabilities[%u]", which, i);
            if (mig_cap_parse(r->capabilities[i]) < 0)
                return scn__bad_cap(c, path, i, r->capabilities[i]);
        }
        m->caps_only = scn__dup_strv(r->capabilities, r->capabilities_count);
        m->ncaps_only = r->capabilities_count;
    }
    return 0;
}

static int convert(Ctx *c, const RawScenario *r, Scenario *s)
{
    int rc;
    s->summary = mig_strdup(r->summary);
    if ((rc = check_machine(c, "src", r->machines->src, NULL, &s->src)) < 0)
        return rc;
    if ((rc = check_machine(c, "dst", r->machines->dst, &s->src, &s->dst)) < 0)
        return rc;
    if (!strcmp(s->dst.machine, "match-dst"))
        return scn__bad(c, "machines.dst.machine", "match-dst is for the source only");
    if (r->workload && r->workload->dirty_rate &&
        (rc = scn_parse_rate(r->workload->dirty_rate, &s->dirty_rate)) < 0)
        return scn__bad_value(c, "workload.dirty-rate", rc, r->workload->dirty_rate,
                              SCN_LIMIT_RATE, "invalid rate '%s' (expected e.g. 2000 pages/s)",
                              r->workload->dirty_rate);
    snprintf(s->transport, sizeof(s->transport), "unix");
    if (r->transport) {
        /* The simulator models a connected byte pipe (the mem link): unix
         * and fd have exactly its semantics.  file (no live link) and local
         * (page flipping over real fds) are not modeled: refused rather than
         * silently run as something else. */
        static const char *const kinds[] = {"unix", "fd", "mem"};
        bool ok = false;
        for (size_t i = 0; i < MIG_ARRAY_SIZE(kinds); i++)
            ok |= !strcmp(r->transport, kinds[i]);
        if (!ok && (!strcmp(r->transport, "file") || !strcmp(r->transport, "local")))
            return scn__bad(c, "transport", "transport '%s' is not modeled by the simulator "
                       "(expected unix, fd or mem; file and local run in the pytest interop "
                       "lane)", r->transport);
        if (!ok)
            return scn__bad(c, "transport", "unknown transport '%s' (expected unix, fd or mem)",
                       r->transport);
        scn__scopy(s->transport, sizeof(s->transport), r->transport);
    }
    s->bandwidth = 1ull << 30; /* 1 GiB/s of virtual time */
    s->latency_ns = 50000;
    if (r->link && r->link->bandwidth &&
        (rc = scn_parse_bandwidth(r->link->bandwidth, &s->bandwidth)) < 0)
        return scn__bad_value(c, "link.bandwidth", rc, r->link->bandwidth, SCN_LIMIT_BANDWIDTH,
                              "invalid bandwidth '%s' (expected e.g. 100M/s or unlimited)",
                              r->link->bandwidth);
    if (r->link && r->link->latency &&
        (rc = scn_parse_duration(r->link->latency, &s->latency_ns)) < 0)
        return scn__bad_value(c, "link.latency", rc, r->link->latency, SCN_LIMIT_DURATION,
                              "invalid duration '%s' (expected e.g. 1ms)", r->link->latency);
    if (r->capabilities) {
        for (uint32_t i = 0; i < r->capabilities_count; i++) {
            char path[64];
            snprintf(path, sizeof(path), "capabilities[%u]", i);
            if (mig_cap_parse(r->capabilities[i]) < 0)
                return scn__bad_cap(c, path, i, r->capabilities[i]);
        }
        s->caps = scn__dup_strv(r->capabilities, r->capabilities_count);
        s->ncaps = r->capabilities_count;
    }
    if (r->requires) {
        for (uint32_t i = 0; i < r->requires_count; i++) {
            char path[64];
            snprintf(path, sizeof(path), "requires[%u]", i);
            if (mig_cap_parse(r->requires[i]) < 0)
                return scn__bad_cap(c, path, i, r->requires[i]);
        }
        s->requires = scn__dup_strv(r->requires, r->requires_count);
        s->nrequires = r->requires_count;
    }
    if (r->parameters) {
        if (r->parameters->max_bandwidth) {
            if ((rc = scn_parse_bandwidth(r->parameters->max_bandwidth, &s->max_bandwidth)) < 0)
                return scn__bad_value(c, "parameters.max-bandwidth", rc,
                                      r->parameters->max_bandwidth, SCN_LIMIT_BANDWIDTH,
                                      "invalid bandwidth '%s'", r->parameters->max_bandwidth);
            s->has_max_bandwidth = true;
        }
        if (r->parameters->downtime_limit) {
            uint64_t ns;
            if ((rc = scn_parse_duration(r->parameters->downtime_limit, &ns)) < 0)
                return scn__bad_value(c, "parameters.downtime-limit", rc,
                                      r->parameters->downtime_limit, SCN_LIMIT_DURATION,
                                      "invalid duration '%s' (e.g. 300ms)",
                                      r->parameters->downtime_limit);
            s->downtime_limit_ms = ns / 1000000;
        }
        s->max_passes = r->parameters->max_passes;
    }
    if (r->steps_count > SCN_MAX_STEPS)
        return scn__bad(c, "steps", "%u steps, more than the %u a scenario may have "
                        "(docs/limits.md)", r->steps_count, SCN_MAX_STEPS);
    if (r->faults_count > SCN_MAX_FAULTS)
        return scn__bad(c, "faults", "%u faults, more than the %u a scenario may have "
                        "(docs/limits.md)", r->faults_count, SCN_MAX_FAULTS);
    s->nsteps = r->steps_count;
    s->steps = mig_malloc0(sizeof(ScnStep) * (s->nsteps ? s->nsteps : 1));
    bool migrates = false;
    for (size_t i = 0; i < s->nsteps; i++) {
        if ((rc = scn__check_step(c, i, &r->steps[i], &s->steps[i])) < 0)
            return rc;
        migrates |= s->steps[i].kind == SCN_STEP_MIGRATE;
    }
    if (!migrates)
        return mig_err_set(c->errp, -EINVAL, "%s:%d: key 'steps': no migrate step", c->name,
                           scn__index_line(c->ix, "steps"));
    s->nfaults = r->faults_count;
    s->faults = mig_malloc0(sizeof(MigFaultSpec) * (s->nfaults ? s->nfaults : 1));
    for (size_t i = 0; i < s->nfaults; i++) {
        MigErr *e = NULL;
        if (mig_fault_spec_parse(r->faults[i], &s->faults[i], &e) < 0) {
            char path[64];
            snprintf(path, sizeof(path), "faults[%zu]", i);
            rc = mig_err_set(c->errp, -EINVAL, "%s:%d: key 'faults': %s", c->name,
                             scn__index_line(c->ix, path), e->msg);
            mig_err_free(e);
            return rc;
        }
    }
    s->timeout_ns = 120ull * 1000000000ull;
    if (r->timeout && ((rc = scn_parse_duration(r->timeout, &s->timeout_ns)) < 0 ||
                       !s->timeout_ns))
        return scn__bad_value(c, "timeout", rc, r->timeout, SCN_LIMIT_DURATION,
                              "invalid duration '%s' (expected e.g. 60s)", r->timeout);
    s->outcome = (ScnOutcome)r->expect->outcome;
    if (r->expect->error) {
        s->error = mig_errno_parse(r->expect->error);
        if (!s->error || !strncmp(r->expect->error, "-", 1) ||
            (r->expect->error[0] >= '0' && r->expect->error[0] <= '9'))
            return scn__bad(c, "expect.error", "unknown errno name '%s' (expected e.g. EIO)",
                       r->expect->error);
        if (s->outcome == SCN_OUTCOME_COMPLETED)
            return scn__bad(c, "expect.error", "a completed migration has no error");
    }
    s->error_contains = mig_strdup(r->expect->error_contains);
    s->trace_contains = mig_strdup(r->expect->trace_contains);
    s->trace_excludes = mig_strdup(r->expect->trace_excludes);
    s->preflight = true;
    if (r->preflight) {
        if (strcmp(r->preflight, "true") && strcmp(r->preflight, "false"))
            return scn__bad(c, "preflight", "invalid value '%s' (expected true or false)",
                       r->preflight);
        s->preflight = !strcmp(r->preflight, "true");
    }
    s->return_path = true;
    if (r->return_path) {
        if (strcmp(r->return_path, "true") && strcmp(r->return_path, "false"))
            return scn__bad(c, "return-path", "invalid value '%s' (expected true or false)",
                       r->return_path);
        s->return_path = !strcmp(r->return_path, "true");
    }
    return scn__check_spice(c, r, s);
}

Scenario *scenario_load_data(const char *name, const char *yaml, size_t len, MigErr **errp)
{
    LineIndex ix = {0};
    RawScenario *raw = NULL;
    Scenario *s = NULL;

    if (scn__index_build(&ix, name, yaml, len, errp) < 0)
        goto out_index;
    if (scn__raw_load(name, &ix, yaml, len, &raw, errp) < 0)
        goto out_index;
    if (!raw) {
        mig_err_set(errp, -EINVAL, "%s:1: the file is empty (a scenario needs summary, "
                    "machines, steps and expect)", name);
        goto out_index;
    }
    s = mig_malloc0(sizeof(*s));
    s->path = mig_strdup(name);
    Ctx c = {name, &ix, errp};
    if (convert(&c, raw, s) < 0) {
        scenario_free(s);
        s = NULL;
    }
    scn__raw_free(raw);
out_index:
    scn__index_free(&ix);
    return s;
}

Scenario *scenario_load(const char *path, MigErr **errp)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; only regular
     * files of at most SCN_MAX_FILE_BYTES are read (a FIFO, /dev/zero or a
     * folder is refused before any byte is read) */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return mig_err_set(errp, -errno, "%s: cannot open: %s", path, strerror(errno)), NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return mig_err_set(errp, -e, "%s: cannot stat: %s", path, strerror(e)), NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return mig_err_set(errp, -EINVAL, "%s: not a regular file (a scenario is a .yaml file)",
                           path), NULL;
    }
    if (st.st_size > (off_t)SCN_MAX_FILE_BYTES) {
        close(fd);
        return mig_err_set(errp, -EFBIG, "%s: %lld bytes, larger than the %u bytes a scenario "
                           "file may have (docs/limits.md)", path, (long long)st.st_size,
                           SCN_MAX_FILE_BYTES), NULL;
    }
    /* read one byte past the limit, so a file that grew since fstat is
     * still refused; the buffer is the file's size and grows only when the
     * file did (not the limit each time: a run loads every file, and a
     * zeroed 1 MiB each cost ASan a megabyte of page faults and poisoning) */
    size_t cap = (size_t)st.st_size + 2;
    char *buf = mig_malloc0(cap);
    size_t len = 0;
    for (;;) {
        if (len + 1 == cap && cap < SCN_MAX_FILE_BYTES + 2) {
            size_t more = MIG_MIN(2 * cap, (size_t)SCN_MAX_FILE_BYTES + 2);
            buf = mig_realloc(buf, more);
            memset(buf + cap, 0, more - cap);
            cap = more;
        }
        ssize_t n = read(fd, buf + len, MIG_MIN(cap - 1, (size_t)SCN_MAX_FILE_BYTES + 1) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return mig_err_set(errp, -e, "%s: cannot read: %s", path, strerror(e)), NULL;
        }
        len += (size_t)n;
        if (n == 0 || len > SCN_MAX_FILE_BYTES)
            break;
    }
    close(fd);
    Scenario *s = NULL;
    if (len > SCN_MAX_FILE_BYTES)
        mig_err_set(errp, -EFBIG, "%s: larger than the %u bytes a scenario file may have "
                    "(docs/limits.md)", path, SCN_MAX_FILE_BYTES);
    else
        s = scenario_load_data(path, buf, len, errp);
    free(buf);
    return s;
}

static void machine_free(ScnMachine *m)
{
    scn__free_strv(m->devices, m->ndevices);
    scn__free_strv(m->caps_only, m->ncaps_only);
}

void scenario_free(Scenario *s)
{
    if (!s)
        return;
    free(s->path);
    free(s->summary);
    machine_free(&s->src);
    machine_free(&s->dst);
    scn__free_strv(s->caps, s->ncaps);
    scn__free_strv(s->requires, s->nrequires);
    free(s->steps);
    free(s->faults);
    free(s->error_contains);
    free(s->trace_contains);
    free(s->trace_excludes);
    free(s->client_error);
    free(s);
}

/* ---- collecting files ---- */

typedef struct PathList {
    char **v;
    size_t n, cap;
} PathList;

static void list_add(PathList *l, const char *p)
{
    MIG_GROW(l->v, l->cap, l->n + 1, 32);
    l->v[l->n++] = mig_strdup(p);
}

static bool is_yaml(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && !strcmp(name + n - 5, ".yaml");
}

static int walk(PathList *l, const char *path, bool top, MigErr **errp)
{
    size_t before = l->n;
    struct stat st;
    if (stat(path, &st) < 0)
        return mig_err_set(errp, -errno, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        list_add(l, path);
        return 0;
    }
    DIR *d = opendir(path);
    if (!d)
        return mig_err_set(errp, -errno, "%s: %s", path, strerror(errno));
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *child = mig_strdup_printf("%s%s%s", path,
                                        path[strlen(path) - 1] == '/' ? "" : "/", de->d_name);
        struct stat cst;
        if (stat(child, &cst) == 0 && S_ISDIR(cst.st_mode))
            rc = walk(l, child, false, errp);
        else if (is_yaml(de->d_name))
            list_add(l, child);
        free(child);
    }
    closedir(d);
    /* a folder the user named (not one found inside it) must hold one */
    if (rc == 0 && l->n == before && top)
        rc = mig_err_set(errp, -ENOENT, "%s: no scenario files (*.yaml) in this folder", path);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int scenario_collect(char **paths, size_t npaths, char ***out, MigErr **errp)
{
    PathList l = {0};
    for (size_t i = 0; i < npaths; i++) {
        int rc = walk(&l, paths[i], true, errp);
        if (rc < 0) {
            scenario_paths_free(l.v, l.n);
            return rc;
        }
    }
    if (l.n)
        qsort(l.v, l.n, sizeof(char *), cmp_str);
    *out = l.v;
    return (int)l.n;
}

void scenario_paths_free(char **paths, size_t n)
{
    scn__free_strv(paths, n);
}
