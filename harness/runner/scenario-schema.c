/*
 * scenario-schema.c - the libcyaml schema of a scenario file (the raw form:
 * strings, checked afterwards by scenario.c and scenario-steps.c) and the
 * translation of libcyaml's log into `FILE:LINE: key 'K': reason`.
 *
 * Called by the loader (scenario.c) through scn__raw_load/scn__raw_free.
 * The Raw* types it fills are in scenario-internal.h; a field added here is
 * added there and documented in scenarios/README.md.
 */
#include <cyaml/cyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario-internal.h"

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

static const cyaml_schema_field_t mig_info_fields[] = {
    STR("wait", RawMigInfo, wait),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t client_step_fields[] = {
    STR("disconnect", RawClientStep, disconnect),
    STR("send", RawClientStep, send),
    STR("drop", RawClientStep, drop),
    STR("partition", RawClientStep, partition),
    STR("heal", RawClientStep, heal),
    STR("slow", RawClientStep, slow),
    STR("bandwidth", RawClientStep, bandwidth),
    STR("latency", RawClientStep, latency),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t spice_fields[] = {
    STR("password", RawSpice, password),
    STR("migrate-timeout", RawSpice, migrate_timeout),
    STR("migrate-info", RawSpice, migrate_info),
    STR("display", RawSpice, display),
    STR("heads", RawSpice, heads),
    STR("pixmap-cache-migration", RawSpice, pixmap_cache_migration),
    STR("image-compression", RawSpice, image_compression),
    STR("vmc-rate", RawSpice, vmc_rate),
    STR("semi-seamless", RawSpice, semi_seamless),
    STR("seamless", RawSpice, seamless),
    STR("migration-version-src", RawSpice, migration_version_src),
    STR("migration-version-dst", RawSpice, migration_version_dst),
    STR("migrate-data-timeout", RawSpice, migrate_data_timeout),
    STR("target-client", RawSpice, target_client),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t client_fields[] = {
    STR("present", RawClient, present),
    STR("old", RawClient, old),
    STR("pixmap-cache", RawClient, pixmap_cache),
    STR("vmc-rate", RawClient, vmc_rate),
    CYAML_FIELD_MAPPING_PTR("link", OPT, RawClient, link, link_fields),
    STR("password", RawClient, password),
    STR("target", RawClient, target),
    STR("target-delay", RawClient, target_delay),
    STR("disconnect-at", RawClient, disconnect_at),
    STR("disconnect-at-message", RawClient, disconnect_at_message),
    STR("migrate-end-delay", RawClient, migrate_end_delay),
    STR("flush-mark-delay", RawClient, flush_mark_delay),
    STR("blob", RawClient, blob),
    STR("blob-channel", RawClient, blob_channel),
    STR("seamless", RawClient, seamless),
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
    CYAML_FIELD_MAPPING_PTR("client-migrate-info", OPT, RawStep, client_migrate_info,
                            mig_info_fields),
    CYAML_FIELD_MAPPING_PTR("client", OPT, RawStep, client, client_step_fields),
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
    STR("client", RawExpect, client),
    STR("client-migration", RawExpect, client_migration),
    STR("client-error", RawExpect, client_error),
    STR("client-channel-lost", RawExpect, client_channel_lost),
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
    CYAML_FIELD_MAPPING_PTR("spice", OPT, RawScenario, spice, spice_fields),
    CYAML_FIELD_MAPPING_PTR("client", OPT, RawScenario, client, client_fields),
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
            scn__scopy(reason, sizeof(reason), line + 6);
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
        scn__scopy(key, sizeof(key), reason + strlen(unexpected));
        size_t used = strlen(path);
        snprintf(path + used, sizeof(path) - used, "%s%s", used ? "." : "", key);
        int line = scn__index_line(ix, path);
        return mig_err_set(errp, -EINVAL, "%s:%d: key '%s': unknown key%s%.*s", name,
                           line ? line : inner_line, key, used ? " in " : "", (int)used, path);
    }
    for (int i = 0; i < nkeys; i++)
        if (keys[i][0] != '[') {
            scn__scopy(key, sizeof(key), keys[i]);
            break;
        }
    int line = scn__index_line(ix, path);
    if (!reason[0])
        scn__scopy(reason, sizeof(reason), cyaml_strerror(err));
    const char *missing = "Missing required mapping field: ";
    if (!strncmp(reason, missing, strlen(missing))) {
        /* libcyaml's backtrace names the last field it visited, not the
         * mapping that lacks the key: that mapping is the visited field's
         * parent (the file itself for top-level keys). */
        scn__scopy(key, sizeof(key), reason + strlen(missing));
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
        int pl = path[0] ? scn__index_line(ix, path) : 1;
        return mig_err_set(errp, -EINVAL, "%s:%d: key '%s': required key missing in %s", name,
                           pl ? pl : inner_line, key, path[0] ? path : "the file");
    }
    return mig_err_set(errp, -EINVAL, "%s:%d: key '%s': %s", name, line ? line : inner_line,
                       key[0] ? key : "(top)", reason);
}

int scn__raw_load(const char *name, const LineIndex *ix, const char *yaml, size_t len,
                  RawScenario **out, MigErr **errp)
{
    CyLog log = {0};
    cyaml_config_t cfg;
    *out = NULL;
    cyaml_err_t err = cyaml_load_data((const uint8_t *)yaml, len, cy_config(&log, &cfg),
                                      &scenario_schema, (cyaml_data_t **)out, NULL);
    if (err != CYAML_OK)
        return cy_error(name, ix, &log, err, errp);
    return 0;
}

void scn__raw_free(RawScenario *raw)
{
    CyLog log = {0};
    cyaml_config_t cfg;
    cyaml_free(cy_config(&log, &cfg), &scenario_schema, raw, 0);
}
