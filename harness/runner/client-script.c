/*
 * client-script.c - `migcert client --script F` files (client-script.h),
 * read with libcyaml as strings and checked here, each error naming the
 * file and the key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cyaml/cyaml.h>

#include "client-script.h"

typedef struct RawScript {
    char *old, *password, *pixmap_cache, *vmc_rate, *target, *disconnect_at_message, *migrate_end_delay_ms;
} RawScript;

#define OPT (CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL)
#define STR(key, member) CYAML_FIELD_STRING_PTR(key, OPT, RawScript, member, 0, CYAML_UNLIMITED)

static const cyaml_schema_field_t fields[] = {
    STR("old", old),
    STR("password", password),
    STR("pixmap-cache", pixmap_cache),
    STR("vmc-rate", vmc_rate),
    STR("target", target),
    STR("disconnect-at-message", disconnect_at_message),
    STR("migrate-end-delay-ms", migrate_end_delay_ms),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t top = {CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, RawScript, fields)};

/* libcyaml's first error line ("Load: Unexpected key: colour"), kept for
 * the message */
typedef struct Log {
    char text[256];
} Log;

static void log_fn(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
    Log *log = ctx;
    if (level < CYAML_LOG_ERROR || log->text[0])
        return;
    vsnprintf(log->text, sizeof(log->text), fmt, args);
    log->text[strcspn(log->text, "\n")] = '\0';
}

static int number(const char *path, const char *key, const char *v, uint64_t max, uint64_t *out, MigErr **errp)
{
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (!*v || *end || errno || n > max || v[0] == '-')
        return mig_err_set(errp, -EINVAL, "%s: key '%s': '%s' is not a whole number from 0 to %llu", path, key, v,
                           (unsigned long long)max);
    *out = n;
    return 0;
}

int client_script_load(const char *path, ClientScript *out, MigErr **errp)
{
    memset(out, 0, sizeof(*out));
    RawScript *r = NULL;
    Log log = {{0}};
    const cyaml_config_t config = {.log_fn = log_fn, .log_ctx = &log, .log_level = CYAML_LOG_ERROR,
                                   .mem_fn = cyaml_mem, .flags = CYAML_CFG_NO_ALIAS};
    cyaml_err_t ce = cyaml_load_file(path, &config, &top, (cyaml_data_t **)&r, NULL);
    if (ce != CYAML_OK)
        return mig_err_set(errp, -EINVAL, "%s: %s%s%s (keys: old, password, pixmap-cache, vmc-rate, target, "
                           "disconnect-at-message, migrate-end-delay-ms)", path, cyaml_strerror(ce),
                           log.text[0] ? ": " : "", log.text);
    int rc = 0;
    uint64_t n;
    if (r->old) {
        if (!strcmp(r->old, "true") || !strcmp(r->old, "yes"))
            out->old = true;
        else if (strcmp(r->old, "false") && strcmp(r->old, "no"))
            rc = mig_err_set(errp, -EINVAL, "%s: key 'old': '%s' is not true or false", path, r->old);
    }
    if (!rc && r->password) {
        if (strlen(r->password) >= sizeof(out->password))
            rc = mig_err_set(errp, -EINVAL, "%s: key 'password': longer than %zu characters", path,
                             sizeof(out->password) - 1);
        else {
            snprintf(out->password, sizeof(out->password), "%s", r->password);
            out->has_password = true;
        }
    }
    if (!rc && r->pixmap_cache && !(rc = number(path, "pixmap-cache", r->pixmap_cache, INT64_MAX, &n, errp)))
        out->pixmap_cache = (int64_t)n;
    if (!rc && r->vmc_rate && !(rc = number(path, "vmc-rate", r->vmc_rate, 1u << 20, &n, errp)))
        out->vmc_rate = (uint32_t)n;
    if (!rc && r->target) {
        if (!strcmp(r->target, "refuse"))
            out->refuse_target = true;
        else if (strcmp(r->target, "connect"))
            rc = mig_err_set(errp, -EINVAL, "%s: key 'target': '%s' is not connect or refuse", path, r->target);
    }
    if (!rc && r->disconnect_at_message &&
        !(rc = number(path, "disconnect-at-message", r->disconnect_at_message, UINT32_MAX, &n, errp)))
        out->disconnect_at_message = (uint32_t)n;
    if (!rc && r->migrate_end_delay_ms &&
        !(rc = number(path, "migrate-end-delay-ms", r->migrate_end_delay_ms, 3600000, &n, errp)))
        out->migrate_end_delay_ns = n * 1000000ull;
    cyaml_free(&config, &top, r, 0);
    return rc;
}
