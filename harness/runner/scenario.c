/*
 * scenario.c - scenario file loader: libcyaml schema, libyaml line index,
 * value checks (see scenario.h; keys documented in scenarios/README.md).
 */
#include <cyaml/cyaml.h>
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "device/device.h"
#include "devices/releases.h"
#include "migration/migration.h"
#include "scenario.h"

const char *const scn_step_names[SCN_STEP__COUNT] = {
    "migrate", "wait", "cancel", "kill", "restart", "drop", "partition", "heal", "slow",
    "device-error",
};

const char *const scn_outcome_names[SCN_OUTCOME__COUNT] = {"completed", "failed", "cancelled"};

/* Bounded copy that always terminates (truncation is fine for messages). */
static void scopy(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* ---- value parsers ---- */

/* A plain decimal number (digits, a point, an exponent) after optional
 * spaces: what strtod alone would also take (nan, inf, hex floats, a sign)
 * is refused here, and so is anything not finite. */
static int parse_decimal(const char *s, double *v, const char **rest)
{
    while (*s == ' ')
        s++;
    if (!isdigit((unsigned char)*s) && !(*s == '.' && isdigit((unsigned char)s[1])))
        return -EINVAL;
    char *end;
    double d = strtod(s, &end);
    for (const char *q = s; q < end; q++)
        if (!isdigit((unsigned char)*q) && !strchr(".eE+-", *q))
            return -EINVAL;
    if (!isfinite(d))
        return -EINVAL;
    *v = d;
    *rest = end;
    return 0;
}

/* v as a uint64_t; -EINVAL when it does not fit (2^64 and up) */
static int to_u64(double v, uint64_t *out)
{
    if (!(v >= 0 && v < 18446744073709551616.0))
        return -EINVAL;
    *out = (uint64_t)v;
    return 0;
}

static int parse_u64_suffix(const char *s, uint64_t *num, const char **rest)
{
    double v;
    if (parse_decimal(s, &v, rest) < 0)
        return -EINVAL;
    return to_u64(v, num);
}

static double size_unit(const char *u)
{
    static const struct {
        const char *s;
        double mul;
    } units[] = {
        {"", 1},        {"B", 1},     {"K", 1024.0},     {"KiB", 1024.0},
        {"KB", 1024.0}, {"M", 1048576.0}, {"MiB", 1048576.0}, {"MB", 1048576.0},
        {"G", 1073741824.0}, {"GiB", 1073741824.0}, {"GB", 1073741824.0},
    };
    while (*u == ' ')
        u++;
    for (size_t i = 0; i < MIG_ARRAY_SIZE(units); i++)
        if (!strcmp(u, units[i].s))
            return units[i].mul;
    return 0;
}

int scn_parse_size(const char *s, uint64_t *out)
{
    const char *end;
    double v;
    if (!s || parse_decimal(s, &v, &end) < 0)
        return -EINVAL;
    double mul = size_unit(end);
    if (mul == 0)
        return -EINVAL;
    return to_u64(v * mul, out);
}

int scn_parse_duration(const char *s, uint64_t *ns)
{
    static const struct {
        const char *s;
        double mul;
    } units[] = {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"min", 60e9}};
    const char *end;
    double v;
    if (!s || parse_decimal(s, &v, &end) < 0)
        return -EINVAL;
    while (*end == ' ')
        end++;
    if (!*end && v == 0) {
        *ns = 0;
        return 0;
    }
    for (size_t i = 0; i < MIG_ARRAY_SIZE(units); i++)
        if (!strcmp(end, units[i].s))
            return to_u64(v * units[i].mul, ns);
    return -EINVAL;
}

int scn_parse_rate(const char *s, uint64_t *per_s)
{
    uint64_t n;
    const char *rest;
    if (!s || parse_u64_suffix(s, &n, &rest) < 0)
        return -EINVAL;
    while (*rest == ' ')
        rest++;
    if (*rest && strcmp(rest, "pages/s"))
        return -EINVAL;
    *per_s = n;
    return 0;
}

int scn_parse_bandwidth(const char *s, uint64_t *bps)
{
    if (!s)
        return -EINVAL;
    if (!strcmp(s, "unlimited")) {
        *bps = 0;
        return 0;
    }
    size_t len = strlen(s);
    if (len < 3 || strcmp(s + len - 2, "/s"))
        return -EINVAL;
    char tmp[64];
    if (len - 2 >= sizeof(tmp))
        return -EINVAL;
    memcpy(tmp, s, len - 2);
    tmp[len - 2] = 0;
    return scn_parse_size(tmp, bps);
}

/* ---- line index: key path -> line, from libyaml events ---- */

typedef struct LineEntry {
    char *path; /* "machines.src.ram", "steps[2].wait.phase", "faults[0]" */
    int line;   /* 1-based */
} LineEntry;

typedef struct LineIndex {
    LineEntry *e;
    size_t n, cap;
} LineIndex;

typedef struct Frame {
    bool is_seq;
    bool expect_key; /* mapping: next scalar is a key */
    size_t item;     /* sequence: next item index */
    char path[256];  /* path of this container */
    char key[128];   /* mapping: current key */
} Frame;

static void index_add(LineIndex *ix, const char *path, int line)
{
    if (ix->n == ix->cap) {
        ix->cap = ix->cap ? ix->cap * 2 : 64;
        ix->e = mig_realloc(ix->e, ix->cap * sizeof(*ix->e));
    }
    ix->e[ix->n].path = mig_strdup(path);
    ix->e[ix->n].line = line;
    ix->n++;
}

static void index_free(LineIndex *ix)
{
    for (size_t i = 0; i < ix->n; i++)
        free(ix->e[i].path);
    free(ix->e);
}

static int index_line(const LineIndex *ix, const char *path)
{
    for (size_t i = 0; i < ix->n; i++)
        if (!strcmp(ix->e[i].path, path))
            return ix->e[i].line;
    return 0;
}

/* Path of the node about to start inside `top` (a key's value or an item);
 * records it in the index. */
static void child_path(Frame *top, char *out, size_t len, LineIndex *ix, int line)
{
    if (!top) {
        out[0] = 0;
        return;
    }
    if (top->is_seq) {
        snprintf(out, len, "%s[%zu]", top->path, top->item++);
        index_add(ix, out, line);
    } else {
        snprintf(out, len, "%s%s%s", top->path, top->path[0] ? "." : "", top->key);
        top->expect_key = true;
    }
}

/* Build the index; a YAML syntax error is returned with its line. */
static int index_build(LineIndex *ix, const char *name, const char *data, size_t len,
                       MigErr **errp)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    Frame stack[32];
    int depth = 0, rc = 0;
    if (!yaml_parser_initialize(&parser))
        return mig_err_set(errp, -ENOMEM, "%s: cannot initialise the YAML parser", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    for (;;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = mig_err_set(errp, -EINVAL, "%s:%zu: YAML syntax error: %s", name,
                             parser.problem_mark.line + 1,
                             parser.problem ? parser.problem : "unreadable");
            break;
        }
        int line = (int)ev.start_mark.line + 1;
        Frame *top = depth ? &stack[depth - 1] : NULL;
        bool done = ev.type == YAML_STREAM_END_EVENT;
        if (!top && (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_SEQUENCE_START_EVENT)) {
            /* the document's root: a scenario is a mapping of keys */
            rc = mig_err_set(errp, -EINVAL,
                             "%s:%d: the top level must be a mapping of keys (summary, machines, "
                             "steps, expect, ...), not a %s",
                             name, line, ev.type == YAML_SCALAR_EVENT ? "scalar" : "sequence");
            yaml_event_delete(&ev);
            break;
        }
        switch (ev.type) {
        case YAML_SCALAR_EVENT:
            if (top && !top->is_seq && top->expect_key) {
                scopy(top->key, sizeof(top->key), (const char *)ev.data.scalar.value);
                top->expect_key = false;
                char path[400];
                snprintf(path, sizeof(path), "%s%s%s", top->path, top->path[0] ? "." : "",
                         top->key);
                index_add(ix, path, line);
            } else {
                char path[400];
                child_path(top, path, sizeof(path), ix, line);
            }
            break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT: {
            if (depth == (int)MIG_ARRAY_SIZE(stack)) {
                rc = mig_err_set(errp, -EINVAL, "%s:%d: nesting too deep", name, line);
                done = true;
                break;
            }
            Frame f = {0};
            char path[400];
            child_path(top, path, sizeof(path), ix, line);
            scopy(f.path, sizeof(f.path), path);
            f.is_seq = ev.type == YAML_SEQUENCE_START_EVENT;
            f.expect_key = !f.is_seq;
            stack[depth++] = f;
            break;
        }
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            depth--;
            break;
        case YAML_ALIAS_EVENT:
            rc = mig_err_set(errp, -EINVAL, "%s:%d: YAML aliases are not allowed here", name,
                             line);
            done = true;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (done)
            break;
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* ---- libcyaml schema (raw form: strings, checked afterwards) ---- */

typedef struct RawMachine {
    char *release;
    char *machine;
    char *ram;
    char **devices;
    uint32_t devices_count;
    char *fill;
    char **capabilities;
    uint32_t capabilities_count;
} RawMachine;

typedef struct RawMachines {
    RawMachine *src;
    RawMachine *dst;
} RawMachines;

typedef struct RawWorkload {
    char *dirty_rate;
} RawWorkload;

typedef struct RawLink {
    char *bandwidth;
    char *latency;
} RawLink;

typedef struct RawParams {
    char *max_bandwidth;
    char *downtime_limit;
    uint32_t max_passes;
} RawParams;

typedef struct RawEmpty {
    int unused;
} RawEmpty;

typedef struct RawWait {
    char *phase;
    char *device_state;
    uint32_t iteration;
    char *ram_progress;
    char *time;
    char *bytes;
} RawWait;

typedef struct RawSide {
    char *side;
    char *device;
    char *state;
} RawSide;

typedef struct RawDrop {
    char *at_byte;
    char *device_data;
    char *device_state;
} RawDrop;

typedef struct RawSlow {
    char *bandwidth;
    char *latency;
} RawSlow;

typedef struct RawStep {
    RawEmpty *migrate;
    RawWait *wait;
    RawEmpty *cancel;
    RawSide *kill;
    RawSide *restart;
    RawDrop *drop;
    RawEmpty *partition;
    RawEmpty *heal;
    RawSlow *slow;
    RawSide *device_error;
} RawStep;

typedef struct RawExpect {
    int outcome;
    char *error;
    char *error_contains;
    char *trace_contains;
    char *trace_excludes;
} RawExpect;

typedef struct RawScenario {
    char *summary;
    RawMachines *machines;
    RawWorkload *workload;
    char *transport;
    RawLink *link;
    char **capabilities;
    uint32_t capabilities_count;
    char **requires;
    uint32_t requires_count;
    RawParams *parameters;
    RawStep *steps;
    uint32_t steps_count;
    char **faults;
    uint32_t faults_count;
    char *timeout;
    char *preflight;
    char *return_path;
    RawExpect *expect;
} RawScenario;

#define OPT (CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL)
#define STR(key, type, member) CYAML_FIELD_STRING_PTR(key, OPT, type, member, 0, CYAML_UNLIMITED)

static const cyaml_schema_value_t string_entry = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 1, CYAML_UNLIMITED),
};

static const cyaml_schema_field_t machine_fields[] = {
    STR("release", RawMachine, release),
    STR("machine", RawMachine, machine),
    STR("ram", RawMachine, ram),
    CYAML_FIELD_SEQUENCE("devices", OPT, RawMachine, devices, &string_entry, 0, CYAML_UNLIMITED),
    STR("fill", RawMachine, fill),
    CYAML_FIELD_SEQUENCE("capabilities", OPT, RawMachine, capabilities, &string_entry, 0,
                         CYAML_UNLIMITED),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t machines_fields[] = {
    CYAML_FIELD_MAPPING_PTR("src", OPT, RawMachines, src, machine_fields),
    CYAML_FIELD_MAPPING_PTR("dst", OPT, RawMachines, dst, machine_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t workload_fields[] = {
    STR("dirty-rate", RawWorkload, dirty_rate),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t link_fields[] = {
    STR("bandwidth", RawLink, bandwidth),
    STR("latency", RawLink, latency),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t params_fields[] = {
    STR("max-bandwidth", RawParams, max_bandwidth),
    STR("downtime-limit", RawParams, downtime_limit),
    CYAML_FIELD_UINT("max-passes", CYAML_FLAG_OPTIONAL, RawParams, max_passes),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t empty_fields[] = {
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t wait_fields[] = {
    STR("phase", RawWait, phase),
    STR("device-state", RawWait, device_state),
    CYAML_FIELD_UINT("iteration", CYAML_FLAG_OPTIONAL, RawWait, iteration),
    STR("ram-progress", RawWait, ram_progress),
    STR("time", RawWait, time),
    STR("bytes", RawWait, bytes),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t side_fields[] = {
    STR("side", RawSide, side),
    STR("device", RawSide, device),
    STR("state", RawSide, state),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t drop_fields[] = {
    STR("at-byte", RawDrop, at_byte),
    STR("device-data", RawDrop, device_data),
    STR("device-state", RawDrop, device_state),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t slow_fields[] = {
    STR("bandwidth", RawSlow, bandwidth),
    STR("latency", RawSlow, latency),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t step_fields[] = {
    CYAML_FIELD_MAPPING_PTR("migrate", OPT, RawStep, migrate, empty_fields),
    CYAML_FIELD_MAPPING_PTR("wait", OPT, RawStep, wait, wait_fields),
    CYAML_FIELD_MAPPING_PTR("cancel", OPT, RawStep, cancel, empty_fields),
    CYAML_FIELD_MAPPING_PTR("kill", OPT, RawStep, kill, side_fields),
    CYAML_FIELD_MAPPING_PTR("restart", OPT, RawStep, restart, side_fields),
    CYAML_FIELD_MAPPING_PTR("drop", OPT, RawStep, drop, drop_fields),
    CYAML_FIELD_MAPPING_PTR("partition", OPT, RawStep, partition, empty_fields),
    CYAML_FIELD_MAPPING_PTR("heal", OPT, RawStep, heal, empty_fields),
    CYAML_FIELD_MAPPING_PTR("slow", OPT, RawStep, slow, slow_fields),
    CYAML_FIELD_MAPPING_PTR("device-error", OPT, RawStep, device_error, side_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t step_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, RawStep, step_fields),
};

static const cyaml_strval_t outcome_strings[] = {
    {"completed", SCN_OUTCOME_COMPLETED},
    {"failed", SCN_OUTCOME_FAILED},
    {"cancelled", SCN_OUTCOME_CANCELLED},
};

static const cyaml_schema_field_t expect_fields[] = {
    CYAML_FIELD_ENUM("outcome", CYAML_FLAG_STRICT, RawExpect, outcome, outcome_strings,
                     CYAML_ARRAY_LEN(outcome_strings)),
    STR("error", RawExpect, error),
    STR("error-contains", RawExpect, error_contains),
    STR("trace-contains", RawExpect, trace_contains),
    STR("trace-excludes", RawExpect, trace_excludes),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t scenario_fields[] = {
    CYAML_FIELD_STRING_PTR("summary", CYAML_FLAG_POINTER, RawScenario, summary, 1,
                           CYAML_UNLIMITED),
    CYAML_FIELD_MAPPING_PTR("machines", CYAML_FLAG_POINTER, RawScenario, machines,
                            machines_fields),
    CYAML_FIELD_MAPPING_PTR("workload", OPT, RawScenario, workload, workload_fields),
    STR("transport", RawScenario, transport),
    CYAML_FIELD_MAPPING_PTR("link", OPT, RawScenario, link, link_fields),
    CYAML_FIELD_SEQUENCE("capabilities", OPT, RawScenario, capabilities, &string_entry, 0,
                         CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("requires", OPT, RawScenario, requires, &string_entry, 0,
                         CYAML_UNLIMITED),
    CYAML_FIELD_MAPPING_PTR("parameters", OPT, RawScenario, parameters, params_fields),
    CYAML_FIELD_SEQUENCE("steps", CYAML_FLAG_POINTER, RawScenario, steps, &step_entry, 1,
                         CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("faults", OPT, RawScenario, faults, &string_entry, 0,
                         CYAML_UNLIMITED),
    STR("timeout", RawScenario, timeout),
    STR("preflight", RawScenario, preflight),
    STR("return-path", RawScenario, return_path),
    CYAML_FIELD_MAPPING_PTR("expect", CYAML_FLAG_POINTER, RawScenario, expect, expect_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t scenario_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, RawScenario, scenario_fields),
};

/* ---- libcyaml's log, captured: only error-level lines matter ---- */

typedef struct CyLog {
    char text[2048];
    size_t len;
} CyLog;

static void cy_log(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
    CyLog *log = ctx;
    if (level < CYAML_LOG_ERROR || log->len >= sizeof(log->text) - 1)
        return;
    int n = vsnprintf(log->text + log->len, sizeof(log->text) - log->len, fmt, args);
    if (n > 0)
        log->len = MIG_MIN(log->len + (size_t)n, sizeof(log->text) - 1);
}

static const cyaml_config_t *cy_config(CyLog *log, cyaml_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->log_fn = cy_log;
    cfg->log_ctx = log;
    cfg->mem_fn = cyaml_mem;
    cfg->log_level = CYAML_LOG_ERROR;
    cfg->flags = CYAML_CFG_NO_ALIAS;
    return cfg;
}

/* Turn libcyaml's error and backtrace into "FILE:LINE: key 'K': reason".
 * The backtrace names the fields from the innermost out; the key path
 * built from it finds the exact line in the index. */
static int cy_error(const char *name, const LineIndex *ix, const CyLog *log, cyaml_err_t err,
                    MigErr **errp)
{
    char reason[256] = "";
    char keys[8][128];
    int nkeys = 0, inner_line = 0;
    const char *p = log->text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int)MIG_MIN(n, sizeof(line) - 1), p);
        const char *f;
        if (!reason[0] && !strncmp(line, "Load: ", 6) && strcmp(line + 6, "Backtrace:"))
            scopy(reason, sizeof(reason), line + 6);
        if ((f = strstr(line, "in mapping field '")) && nkeys < 8) {
            const char *s = f + strlen("in mapping field '");
            const char *q = strchr(s, '\'');
            if (q)
                snprintf(keys[nkeys++], sizeof(keys[0]), "%.*s", (int)(q - s), s);
        } else if ((f = strstr(line, "in sequence entry '")) && nkeys < 8) {
            long idx = strtol(f + strlen("in sequence entry '"), NULL, 10);
            snprintf(keys[nkeys++], sizeof(keys[0]), "[%ld]", idx > 0 ? idx - 1 : 0);
        }
        const char *l = strstr(line, "(line: ");
        if (l && !inner_line)
            inner_line = atoi(l + 7);
        p += n + (eol ? 1 : 0);
    }
    /* Path from the outermost key in. */
    char path[400] = "";
    for (int i = nkeys - 1; i >= 0; i--) {
        size_t used = strlen(path);
        if (keys[i][0] == '[')
            snprintf(path + used, sizeof(path) - used, "%s", keys[i]);
        else
            snprintf(path + used, sizeof(path) - used, "%s%s", used ? "." : "", keys[i]);
    }
    char key[128] = "";
    const char *unexpected = "Unexpected key: ";
    if (!strncmp(reason, unexpected, strlen(unexpected))) {
        scopy(key, sizeof(key), reason + strlen(unexpected));
        size_t used = strlen(path);
        snprintf(path + used, sizeof(path) - used, "%s%s", used ? "." : "", key);
        int line = index_line(ix, path);
        return mig_err_set(errp, -EINVAL, "%s:%d: key '%s': unknown key%s%.*s", name,
                           line ? line : inner_line, key, used ? " in " : "", (int)used, path);
    }
    for (int i = 0; i < nkeys; i++)
        if (keys[i][0] != '[') {
            scopy(key, sizeof(key), keys[i]);
            break;
        }
    int line = index_line(ix, path);
    if (!reason[0])
        scopy(reason, sizeof(reason), cyaml_strerror(err));
    const char *missing = "Missing required mapping field: ";
    if (!strncmp(reason, missing, strlen(missing))) {
        /* libcyaml's backtrace names the last field it visited, not the
         * mapping that lacks the key: that mapping is the visited field's
         * parent (the file itself for top-level keys). */
        scopy(key, sizeof(key), reason + strlen(missing));
        char *dot = strrchr(path, '.');
        char *br = strrchr(path, '[');
        char *cut = dot > br ? dot : br;
        if (cut)
            *cut = 0;
        else
            path[0] = 0;
        static const char *const top_keys[] = {"summary", "machines", "steps", "expect"};
        for (size_t i = 0; i < MIG_ARRAY_SIZE(top_keys); i++)
            if (!strcmp(key, top_keys[i]))
                path[0] = 0;
        int pl = path[0] ? index_line(ix, path) : 1;
        return mig_err_set(errp, -EINVAL, "%s:%d: key '%s': required key missing in %s", name,
                           pl ? pl : inner_line, key, path[0] ? path : "the file");
    }
    return mig_err_set(errp, -EINVAL, "%s:%d: key '%s': %s", name, line ? line : inner_line,
                       key[0] ? key : "(top)", reason);
}

/* ---- checks on the raw form ---- */

typedef struct Ctx {
    const char *name;
    const LineIndex *ix;
    MigErr **errp;
} Ctx;

static int bad(Ctx *c, const char *path, const char *fmt, ...) MIG_PRINTF(3, 4);
static int bad(Ctx *c, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *key = strrchr(path, '.');
    key = key ? key + 1 : path;
    return mig_err_set(c->errp, -EINVAL, "%s:%d: key '%s': %s", c->name,
                       index_line(c->ix, path), key, msg);
}

static char **dup_strv(char **v, uint32_t n)
{
    char **out = mig_malloc0(sizeof(char *) * (n + 1));
    for (uint32_t i = 0; i < n; i++)
        out[i] = mig_strdup(v[i]);
    return out;
}

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* "FILE:LINE: key 'capabilities[i]': unknown capability 'x' (known: ...)" */
static int bad_cap(Ctx *c, const char *path, uint32_t i, const char *name)
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
                       index_line(c->ix, path), key, i, name, known);
}

static int check_machine(Ctx *c, const char *which, const RawMachine *r, const ScnMachine *dflt,
                         ScnMachine *m)
{
    char path[128];
    if (dflt) {
        /* dst inherits whatever it does not say (but never src-only caps) */
        scopy(m->release, sizeof(m->release), dflt->release);
        /* the destination runs what management starts it with (the
         * source's machine type); match-dst is a source-only notion */
        if (strcmp(dflt->machine, "match-dst"))
            scopy(m->machine, sizeof(m->machine), dflt->machine);
        m->ram = dflt->ram;
        m->fill_zero = dflt->fill_zero;
        m->devices = dup_strv(dflt->devices, (uint32_t)dflt->ndevices);
        m->ndevices = dflt->ndevices;
    } else {
        scopy(m->release, sizeof(m->release), MIG_RELEASE_CURRENT);
        m->ram = 64ull << 20;
    }
    if (!r)
        return 0;
    if (r->release) {
        snprintf(path, sizeof(path), "machines.%s.release", which);
        if (!mig_release_find(r->release))
            return bad(c, path, "unknown release '%s' (known: %s)", r->release,
                       mig_release_names());
        scopy(m->release, sizeof(m->release), r->release);
    }
    if (r->machine) {
        snprintf(path, sizeof(path), "machines.%s.machine", which);
        if (strcmp(r->machine, "match-dst") && strcmp(r->machine, "default") &&
            !mig_machine_type_find(r->machine))
            return bad(c, path, "unknown machine type '%s' (known: %s, default, match-dst)",
                       r->machine, mig_machine_type_names());
        snprintf(m->machine, sizeof(m->machine), "%s",
                 strcmp(r->machine, "default") ? r->machine : "");
    }
    if (r->ram) {
        snprintf(path, sizeof(path), "machines.%s.ram", which);
        if (scn_parse_size(r->ram, &m->ram) < 0 || m->ram < 4096 || m->ram % 4096)
            return bad(c, path, "invalid size '%s' (expected a multiple of 4K like 64M)",
                       r->ram);
    }
    if (r->fill) {
        snprintf(path, sizeof(path), "machines.%s.fill", which);
        if (strcmp(r->fill, "random") && strcmp(r->fill, "zero"))
            return bad(c, path, "invalid fill '%s' (expected random or zero)", r->fill);
        m->fill_zero = !strcmp(r->fill, "zero");
    }
    if (r->devices) {
        for (uint32_t i = 0; i < r->devices_count; i++) {
            snprintf(path, sizeof(path), "machines.%s.devices[%u]", which, i);
            if (!mig_device_type_known(r->devices[i]))
                return bad(c, path, "unknown device '%s' (known: %s)", r->devices[i],
                           mig_device_type_names());
        }
        free_strv(m->devices, m->ndevices);
        m->devices = dup_strv(r->devices, r->devices_count);
        m->ndevices = r->devices_count;
    }
    if (r->capabilities) {
        for (uint32_t i = 0; i < r->capabilities_count; i++) {
            snprintf(path, sizeof(path), "machines.%s.capabilities[%u]", which, i);
            if (mig_cap_parse(r->capabilities[i]) < 0)
                return bad_cap(c, path, i, r->capabilities[i]);
        }
        m->caps_only = dup_strv(r->capabilities, r->capabilities_count);
        m->ncaps_only = r->capabilities_count;
    }
    return 0;
}

static int parse_side_name(const char *s)
{
    for (int i = 0; i < MIG_FAULT_SIDE__COUNT; i++)
        if (s && !strcmp(s, mig_fault_side_names[i]))
            return i;
    return -1;
}

/* "50%" -> 50; -1 unless an integer from 0 to 100 followed by '%'. */
static int parse_percent(const char *s)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    long v = strtol(s, &end, 10);
    if (strcmp(end, "%") || v < 0 || v > 100)
        return -1;
    return (int)v;
}

static int check_step(Ctx *c, size_t i, const RawStep *r, ScnStep *st)
{
    char base[64], path[128];
    snprintf(base, sizeof(base), "steps[%zu]", i);
    const void *acts[SCN_STEP__COUNT] = {r->migrate, r->wait,      r->cancel, r->kill,
                                         r->restart, r->drop,      r->partition,
                                         r->heal,    r->slow,      r->device_error};
    int found = -1, count = 0;
    for (int k = 0; k < SCN_STEP__COUNT; k++)
        if (acts[k]) {
            found = found < 0 ? k : found;
            count++;
        }
    st->line = index_line(c->ix, base);
    st->ram_progress = -1;
    st->device_data = -1;
    if (count != 1)
        return mig_err_set(c->errp, -EINVAL,
                           "%s:%d: key 'steps': step %zu must have exactly one action "
                           "(migrate, wait, cancel, kill, restart, drop, partition, heal, "
                           "slow, device-error), it has %d",
                           c->name, st->line, i + 1, count);
    st->kind = (ScnStepKind)found;
    snprintf(base + strlen(base), sizeof(base) - strlen(base), ".%s", scn_step_names[found]);
    switch (st->kind) {
    case SCN_STEP_WAIT: {
        const RawWait *w = r->wait;
        if (!w->phase && !w->iteration && !w->ram_progress && !w->time && !w->bytes &&
            !w->device_state)
            return bad(c, base, "a wait needs phase, iteration, ram-progress, time, bytes or "
                       "device-state");
        if (w->device_state) {
            snprintf(path, sizeof(path), "%s.device-state", base);
            MigDevState ds;
            if (mig_dev_state_parse(w->device_state, &ds) < 0 || ds == MIG_DEV_ERROR)
                return bad(c, path, "unknown device state '%s' (expected e.g. PRE_COPY, "
                           "STOP_COPY, RUNNING)", w->device_state);
            st->has_device_state = true;
            st->device_state = (int)ds;
        }
        if (w->phase) {
            snprintf(path, sizeof(path), "%s.phase", base);
            int ph = scn_phase_parse(w->phase);
            if (ph <= SCN_PHASE_NONE)
                return bad(c, path,
                           "unknown phase '%s' (expected setup, precopy, stop-copy, "
                           "cancelling, completed, failed or cancelled)",
                           w->phase);
            st->has_phase = true;
            st->phase = (ScnPhase)ph;
        }
        st->iteration = w->iteration;
        if (w->ram_progress) {
            snprintf(path, sizeof(path), "%s.ram-progress", base);
            if ((st->ram_progress = parse_percent(w->ram_progress)) < 0)
                return bad(c, path, "invalid percentage '%s' (expected 0%% to 100%%)",
                           w->ram_progress);
        }
        if (w->time) {
            snprintf(path, sizeof(path), "%s.time", base);
            if (scn_parse_duration(w->time, &st->time_ns) < 0)
                return bad(c, path, "invalid duration '%s' (expected e.g. 10ms, 2s)", w->time);
        }
        if (w->bytes) {
            snprintf(path, sizeof(path), "%s.bytes", base);
            if (scn_parse_size(w->bytes, &st->bytes) < 0)
                return bad(c, path, "invalid byte count '%s'", w->bytes);
        }
        break;
    }
    case SCN_STEP_KILL:
    case SCN_STEP_RESTART:
    case SCN_STEP_DEVICE_ERROR: {
        const RawSide *s = acts[found];
        snprintf(path, sizeof(path), "%s.side", base);
        int side = parse_side_name(s->side);
        if (side < 0 || side == MIG_FAULT_SIDE_CLIENT)
            return bad(c, s->side ? path : base, "%s needs side: src or dst (got '%s')",
                       scn_step_names[found], s->side ? s->side : "nothing");
        if (st->kind == SCN_STEP_RESTART && side != MIG_FAULT_SIDE_DST)
            return bad(c, path, "only the destination can be restarted");
        st->side = (MigFaultSide)side;
        if (st->kind == SCN_STEP_DEVICE_ERROR) {
            snprintf(path, sizeof(path), "%s.device", base);
            if (!s->device || !mig_device_type_known(s->device))
                return bad(c, s->device ? path : base, "device-error needs a known device "
                           "(known: %s)", mig_device_type_names());
            scopy(st->device, sizeof(st->device), s->device);
            if (strcmp(s->device, "fake-gpu"))
                return bad(c, path, "device-error needs a VFIO-style device (fake-gpu); %s has "
                           "no device state machine", s->device);
            st->device_state = -1;
            if (s->state) {
                snprintf(path, sizeof(path), "%s.state", base);
                MigDevState ds;
                if (mig_dev_state_parse(s->state, &ds) < 0 || ds == MIG_DEV_ERROR)
                    return bad(c, path, "unknown device state '%s' (expected e.g. STOP_COPY)",
                               s->state);
                st->device_state = (int)ds;
            }
        } else if (s->state) {
            snprintf(path, sizeof(path), "%s.state", base);
            return bad(c, path, "%s takes no state", scn_step_names[found]);
        } else if (s->device) {
            snprintf(path, sizeof(path), "%s.device", base);
            return bad(c, path, "%s takes no device", scn_step_names[found]);
        }
        break;
    }
    case SCN_STEP_DROP: {
        const RawDrop *d = r->drop;
        if (d->at_byte) {
            snprintf(path, sizeof(path), "%s.at-byte", base);
            if (scn_parse_size(d->at_byte, &st->bytes) < 0)
                return bad(c, path, "invalid byte count '%s'", d->at_byte);
        }
        if (d->device_data) {
            snprintf(path, sizeof(path), "%s.device-data", base);
            if (d->at_byte)
                return bad(c, path, "a drop is either at-byte or device-data, not both");
            if ((st->device_data = parse_percent(d->device_data)) < 0)
                return bad(c, path, "invalid share '%s' of the device's data (expected 0%% "
                           "to 100%%, e.g. 50%%)", d->device_data);
        }
        st->device_state = -1;
        if (d->device_state) {
            snprintf(path, sizeof(path), "%s.device-state", base);
            if (!d->device_data)
                return bad(c, path, "device-state goes with device-data (whose data the "
                           "drop lands in)");
            MigDevState ds;
            if (mig_dev_state_parse(d->device_state, &ds) < 0 ||
                (ds != MIG_DEV_PRE_COPY && ds != MIG_DEV_STOP_COPY))
                return bad(c, path, "invalid device state '%s' (expected PRE_COPY or "
                           "STOP_COPY: the states in which a device sends data)",
                           d->device_state);
            st->device_state = (int)ds;
        }
        break;
    }
    case SCN_STEP_SLOW:
        if (!r->slow->bandwidth && !r->slow->latency)
            return bad(c, base, "slow needs bandwidth or latency");
        if (r->slow->bandwidth) {
            snprintf(path, sizeof(path), "%s.bandwidth", base);
            if (scn_parse_bandwidth(r->slow->bandwidth, &st->bandwidth) < 0)
                return bad(c, path, "invalid bandwidth '%s' (expected e.g. 10M/s)",
                           r->slow->bandwidth);
        }
        if (r->slow->latency) {
            snprintf(path, sizeof(path), "%s.latency", base);
            if (scn_parse_duration(r->slow->latency, &st->latency_ns) < 0)
                return bad(c, path, "invalid duration '%s'", r->slow->latency);
            st->has_latency = true;
        }
        break;
    default:
        break;
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
        return bad(c, "machines.dst.machine", "match-dst is for the source only");
    if (r->workload && r->workload->dirty_rate &&
        scn_parse_rate(r->workload->dirty_rate, &s->dirty_rate) < 0)
        return bad(c, "workload.dirty-rate", "invalid rate '%s' (expected e.g. 2000 pages/s)",
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
            return bad(c, "transport", "transport '%s' is not modeled by the simulator "
                       "(expected unix, fd or mem; file and local run in the pytest interop "
                       "lane)", r->transport);
        if (!ok)
            return bad(c, "transport", "unknown transport '%s' (expected unix, fd or mem)",
                       r->transport);
        scopy(s->transport, sizeof(s->transport), r->transport);
    }
    s->bandwidth = 1ull << 30; /* 1 GiB/s of virtual time */
    s->latency_ns = 50000;
    if (r->link && r->link->bandwidth && scn_parse_bandwidth(r->link->bandwidth, &s->bandwidth) < 0)
        return bad(c, "link.bandwidth", "invalid bandwidth '%s' (expected e.g. 100M/s or "
                   "unlimited)", r->link->bandwidth);
    if (r->link && r->link->latency && scn_parse_duration(r->link->latency, &s->latency_ns) < 0)
        return bad(c, "link.latency", "invalid duration '%s' (expected e.g. 1ms)",
                   r->link->latency);
    if (r->capabilities) {
        for (uint32_t i = 0; i < r->capabilities_count; i++) {
            char path[64];
            snprintf(path, sizeof(path), "capabilities[%u]", i);
            if (mig_cap_parse(r->capabilities[i]) < 0)
                return bad_cap(c, path, i, r->capabilities[i]);
        }
        s->caps = dup_strv(r->capabilities, r->capabilities_count);
        s->ncaps = r->capabilities_count;
    }
    if (r->requires) {
        for (uint32_t i = 0; i < r->requires_count; i++) {
            char path[64];
            snprintf(path, sizeof(path), "requires[%u]", i);
            if (mig_cap_parse(r->requires[i]) < 0)
                return bad_cap(c, path, i, r->requires[i]);
        }
        s->requires = dup_strv(r->requires, r->requires_count);
        s->nrequires = r->requires_count;
    }
    if (r->parameters) {
        if (r->parameters->max_bandwidth) {
            if (scn_parse_bandwidth(r->parameters->max_bandwidth, &s->max_bandwidth) < 0)
                return bad(c, "parameters.max-bandwidth", "invalid bandwidth '%s'",
                           r->parameters->max_bandwidth);
            s->has_max_bandwidth = true;
        }
        if (r->parameters->downtime_limit) {
            uint64_t ns;
            if (scn_parse_duration(r->parameters->downtime_limit, &ns) < 0)
                return bad(c, "parameters.downtime-limit", "invalid duration '%s' (e.g. 300ms)",
                           r->parameters->downtime_limit);
            s->downtime_limit_ms = ns / 1000000;
        }
        s->max_passes = r->parameters->max_passes;
    }
    s->nsteps = r->steps_count;
    s->steps = mig_malloc0(sizeof(ScnStep) * (s->nsteps ? s->nsteps : 1));
    bool migrates = false;
    for (size_t i = 0; i < s->nsteps; i++) {
        if ((rc = check_step(c, i, &r->steps[i], &s->steps[i])) < 0)
            return rc;
        migrates |= s->steps[i].kind == SCN_STEP_MIGRATE;
    }
    if (!migrates)
        return mig_err_set(c->errp, -EINVAL, "%s:%d: key 'steps': no migrate step", c->name,
                           index_line(c->ix, "steps"));
    s->nfaults = r->faults_count;
    s->faults = mig_malloc0(sizeof(MigFaultSpec) * (s->nfaults ? s->nfaults : 1));
    for (size_t i = 0; i < s->nfaults; i++) {
        MigErr *e = NULL;
        if (mig_fault_spec_parse(r->faults[i], &s->faults[i], &e) < 0) {
            char path[64];
            snprintf(path, sizeof(path), "faults[%zu]", i);
            rc = mig_err_set(c->errp, -EINVAL, "%s:%d: key 'faults': %s", c->name,
                             index_line(c->ix, path), e->msg);
            mig_err_free(e);
            return rc;
        }
    }
    s->timeout_ns = 120ull * 1000000000ull;
    if (r->timeout && (scn_parse_duration(r->timeout, &s->timeout_ns) < 0 || !s->timeout_ns))
        return bad(c, "timeout", "invalid duration '%s' (expected e.g. 60s)", r->timeout);
    s->outcome = (ScnOutcome)r->expect->outcome;
    if (r->expect->error) {
        s->error = mig_errno_parse(r->expect->error);
        if (!s->error || !strncmp(r->expect->error, "-", 1) ||
            (r->expect->error[0] >= '0' && r->expect->error[0] <= '9'))
            return bad(c, "expect.error", "unknown errno name '%s' (expected e.g. EIO)",
                       r->expect->error);
        if (s->outcome == SCN_OUTCOME_COMPLETED)
            return bad(c, "expect.error", "a completed migration has no error");
    }
    s->error_contains = mig_strdup(r->expect->error_contains);
    s->trace_contains = mig_strdup(r->expect->trace_contains);
    s->trace_excludes = mig_strdup(r->expect->trace_excludes);
    s->preflight = true;
    if (r->preflight) {
        if (strcmp(r->preflight, "true") && strcmp(r->preflight, "false"))
            return bad(c, "preflight", "invalid value '%s' (expected true or false)",
                       r->preflight);
        s->preflight = !strcmp(r->preflight, "true");
    }
    s->return_path = true;
    if (r->return_path) {
        if (strcmp(r->return_path, "true") && strcmp(r->return_path, "false"))
            return bad(c, "return-path", "invalid value '%s' (expected true or false)",
                       r->return_path);
        s->return_path = !strcmp(r->return_path, "true");
    }
    return 0;
}

Scenario *scenario_load_data(const char *name, const char *yaml, size_t len, MigErr **errp)
{
    LineIndex ix = {0};
    RawScenario *raw = NULL;
    Scenario *s = NULL;
    CyLog log = {0};
    cyaml_config_t cfg;

    if (index_build(&ix, name, yaml, len, errp) < 0)
        goto out_index;
    cyaml_err_t err = cyaml_load_data((const uint8_t *)yaml, len, cy_config(&log, &cfg),
                                      &scenario_schema, (cyaml_data_t **)&raw, NULL);
    if (err != CYAML_OK) {
        cy_error(name, &ix, &log, err, errp);
        goto out_index;
    }
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
    cyaml_free(&cfg, &scenario_schema, raw, 0);
out_index:
    index_free(&ix);
    return s;
}

Scenario *scenario_load(const char *path, MigErr **errp)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return mig_err_set(errp, -errno, "%s: cannot open: %s", path, strerror(errno)), NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = mig_realloc(buf, cap);
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    fclose(f);
    Scenario *s = scenario_load_data(path, buf, len, errp);
    free(buf);
    return s;
}

static void machine_free(ScnMachine *m)
{
    free_strv(m->devices, m->ndevices);
    free_strv(m->caps_only, m->ncaps_only);
}

void scenario_free(Scenario *s)
{
    if (!s)
        return;
    free(s->path);
    free(s->summary);
    machine_free(&s->src);
    machine_free(&s->dst);
    free_strv(s->caps, s->ncaps);
    free_strv(s->requires, s->nrequires);
    free(s->steps);
    free(s->faults);
    free(s->error_contains);
    free(s->trace_contains);
    free(s->trace_excludes);
    free(s);
}

/* ---- collecting files ---- */

typedef struct PathList {
    char **v;
    size_t n, cap;
} PathList;

static void list_add(PathList *l, const char *p)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->v = mig_realloc(l->v, l->cap * sizeof(char *));
    }
    l->v[l->n++] = mig_strdup(p);
}

static bool is_yaml(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && !strcmp(name + n - 5, ".yaml");
}

static int walk(PathList *l, const char *path, MigErr **errp)
{
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
            rc = walk(l, child, errp);
        else if (is_yaml(de->d_name))
            list_add(l, child);
        free(child);
    }
    closedir(d);
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
        int rc = walk(&l, paths[i], errp);
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
    free_strv(paths, n);
}
