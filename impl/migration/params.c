/*
 * params.c - capability names, parameters and the MigrationInfo renderer
 * (see migration.h).  Constant tables only: no state.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "migration.h"

static const char *const status_names[MIG_STATUS__COUNT] = {
    [MIG_STATUS_NONE] = "none",
    [MIG_STATUS_SETUP] = "setup",
    [MIG_STATUS_CANCELLING] = "cancelling",
    [MIG_STATUS_CANCELLED] = "cancelled",
    [MIG_STATUS_ACTIVE] = "active",
    [MIG_STATUS_PRE_SWITCHOVER] = "pre-switchover",
    [MIG_STATUS_DEVICE] = "device",
    [MIG_STATUS_COMPLETED] = "completed",
    [MIG_STATUS_FAILED] = "failed",
};

const char *mig_status_name(MigStatus s)
{
    return (unsigned)s < MIG_STATUS__COUNT ? status_names[s] : "?";
}

bool mig_status_is_terminal(MigStatus s)
{
    return s == MIG_STATUS_COMPLETED || s == MIG_STATUS_FAILED || s == MIG_STATUS_CANCELLED;
}

static const char *const cap_names[MIG_CAP__COUNT] = {
    [MIG_CAP_XBZRLE] = "xbzrle",
    [MIG_CAP_RDMA_PIN_ALL] = "rdma-pin-all",
    [MIG_CAP_AUTO_CONVERGE] = "auto-converge",
    [MIG_CAP_ZERO_BLOCKS] = "zero-blocks",
    [MIG_CAP_COMPRESS] = "compress",
    [MIG_CAP_EVENTS] = "events",
    [MIG_CAP_POSTCOPY_RAM] = "postcopy-ram",
    [MIG_CAP_X_COLO] = "x-colo",
    [MIG_CAP_RELEASE_RAM] = "release-ram",
    [MIG_CAP_BLOCK] = "block",
    [MIG_CAP_RETURN_PATH] = "return-path",
    [MIG_CAP_PAUSE_BEFORE_SWITCHOVER] = "pause-before-switchover",
    [MIG_CAP_MULTIFD] = "multifd",
    [MIG_CAP_DIRTY_BITMAPS] = "dirty-bitmaps",
    [MIG_CAP_POSTCOPY_BLOCKTIME] = "postcopy-blocktime",
    [MIG_CAP_LATE_BLOCK_ACTIVATE] = "late-block-activate",
    [MIG_CAP_X_IGNORE_SHARED] = "x-ignore-shared",
    [MIG_CAP_VALIDATE_UUID] = "validate-uuid",
    [MIG_CAP_BACKGROUND_SNAPSHOT] = "background-snapshot",
    [MIG_CAP_ZERO_COPY_SEND] = "zero-copy-send",
    [MIG_CAP_POSTCOPY_PREEMPT] = "postcopy-preempt",
    [MIG_CAP_X_PAGE_FLIP] = "x-page-flip",
    [MIG_CAP_X_RAM_SHARE] = "x-ram-share",
    [MIG_CAP_X_REQUIRE_VMDESC] = "x-require-vmdesc",
};

const char *mig_cap_name(MigCap c)
{
    return (unsigned)c < MIG_CAP__COUNT ? cap_names[c] : "?";
}

int mig_cap_parse(const char *name)
{
    for (int i = 0; i < MIG_CAP__COUNT; i++)
        if (strcmp(cap_names[i], name) == 0)
            return i;
    return -1;
}

bool mig_cap_validatable(MigCap c)
{
    return c == MIG_CAP_X_IGNORE_SHARED || c == MIG_CAP_X_PAGE_FLIP || c == MIG_CAP_X_RAM_SHARE;
}

MigCapMask mig_caps_supported(void)
{
    /* events: MIGRATION/MIGRATION_PASS; zero-blocks: no block migration here,
     * accepted as a no-op like QEMU without block devices; validate-uuid: no
     * UUID configured, so nothing to send; x-ignore-shared: no shared blocks,
     * only the block-list format changes; return-path: the destination
     * reports the end of its load (SHUT) and the source completes only then.
     * x-page-flip: page flipping over the local transport
     * (docs/protocol-qemu-stream.md section 14); offered
     * only on a loop with real fds, refused at migrate time on a transport
     * that cannot pass fds (migration-source.c).  x-ram-share: the RAM's
     * memfd passed at setup, only device state in the stream (same section
     * of that note); offered and refused like x-page-flip, and refused at
     * migrate on a machine whose RAM is not shared memory.
     * x-require-vmdesc: the destination fails a stream without the
     * VMDESCRIPTION trailer (or without its device list); the source always
     * writes one. */
    return MIG_CAP_BIT(MIG_CAP_EVENTS) | MIG_CAP_BIT(MIG_CAP_ZERO_BLOCKS) |
           MIG_CAP_BIT(MIG_CAP_PAUSE_BEFORE_SWITCHOVER) | MIG_CAP_BIT(MIG_CAP_X_IGNORE_SHARED) |
           MIG_CAP_BIT(MIG_CAP_VALIDATE_UUID) | MIG_CAP_BIT(MIG_CAP_RETURN_PATH) |
           MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP) | MIG_CAP_BIT(MIG_CAP_X_RAM_SHARE) |
           MIG_CAP_BIT(MIG_CAP_X_REQUIRE_VMDESC);
}

json_t *mig_caps_to_json(MigCapMask known, MigCapMask enabled)
{
    json_t *a = json_array();
    for (int i = 0; i < MIG_CAP__COUNT; i++) {
        if (!(known & MIG_CAP_BIT(i)))
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "capability", json_string(cap_names[i]));
        json_object_set_new(o, "state", json_boolean(enabled & MIG_CAP_BIT(i)));
        json_array_append_new(a, o);
    }
    return a;
}

int mig_caps_from_json(json_t *list, MigCapMask *named, MigCapMask *states, MigErr **errp)
{
    MigCapMask n = 0, st = 0;
    if (!json_is_array(list))
        return mig_err_set(errp, -EINVAL, "Parameter 'capabilities' expects an array");
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        json_t *c = json_object_get(e, "capability");
        json_t *s = json_object_get(e, "state");
        if (!json_is_object(e) || !json_is_string(c) || !json_is_boolean(s))
            return mig_err_set(errp, -EINVAL,
                               "capabilities[%zu]: expects {\"capability\": name, \"state\": bool}",
                               i);
        int cap = mig_cap_parse(json_string_value(c));
        if (cap < 0)
            return mig_err_set(errp, -EINVAL, "capabilities[%zu]: unknown capability '%s'", i,
                               json_string_value(c));
        n |= MIG_CAP_BIT(cap);
        if (json_is_true(s))
            st |= MIG_CAP_BIT(cap);
        else
            st &= ~MIG_CAP_BIT(cap);
    }
    *named = n;
    *states = st;
    return 0;
}

/* One row per MigParam: QEMU 7.2's name, JSON type, where it lives, its
 * default and its accepted range (QEMU's migrate_params_check). */
typedef enum ParamKind { PK_U64, PK_BOOL, PK_STR, PK_ENUM, PK__COUNT } ParamKind;

static const char *const multifd_compression_names[] = {"none", "zlib", "zstd", NULL};

typedef struct ParamDesc {
    ParamKind kind;
    size_t off;
    uint64_t def, min, max;
    const char *what; /* range message: "milliseconds", "a power of two", ... */
} ParamDesc;

#define P_U64(id, field, d, lo, hi, w) \
    [MIG_PARAM_##id] = {PK_U64, offsetof(MigParams, field), d, lo, hi, w}
#define P_BOOL(id, field, d) [MIG_PARAM_##id] = {PK_BOOL, offsetof(MigParams, field), d, 0, 1, NULL}
#define P_STR(id, field) [MIG_PARAM_##id] = {PK_STR, offsetof(MigParams, field), 0, 0, 0, NULL}

static const ParamDesc params[MIG_PARAM__COUNT] = {
    P_U64(ANNOUNCE_INITIAL, announce_initial, 50, 0, 100000, "milliseconds"),
    P_U64(ANNOUNCE_MAX, announce_max, 550, 0, 100000, "milliseconds"),
    P_U64(ANNOUNCE_ROUNDS, announce_rounds, 5, 0, 1000, NULL),
    P_U64(ANNOUNCE_STEP, announce_step, 100, 1, 10000, "milliseconds"),
    P_U64(COMPRESS_LEVEL, compress_level, 1, 0, 9, NULL),
    P_U64(COMPRESS_THREADS, compress_threads, 8, 1, 255, NULL),
    P_BOOL(COMPRESS_WAIT_THREAD, compress_wait_thread, 1),
    P_U64(DECOMPRESS_THREADS, decompress_threads, 2, 1, 255, NULL),
    P_U64(THROTTLE_TRIGGER_THRESHOLD, throttle_trigger_threshold, 50, 1, 100, "percent"),
    P_U64(CPU_THROTTLE_INITIAL, cpu_throttle_initial, 20, 1, 99, "percent"),
    P_U64(CPU_THROTTLE_INCREMENT, cpu_throttle_increment, 10, 1, 99, "percent"),
    P_BOOL(CPU_THROTTLE_TAILSLOW, cpu_throttle_tailslow, 0),
    P_STR(TLS_CREDS, tls_creds),
    P_STR(TLS_HOSTNAME, tls_hostname),
    P_STR(TLS_AUTHZ, tls_authz),
    P_U64(MAX_BANDWIDTH, max_bandwidth, MIG_DEFAULT_MAX_BANDWIDTH, 0, (uint64_t)INT64_MAX,
          "bytes/second"),
    P_U64(DOWNTIME_LIMIT, downtime_limit, MIG_DEFAULT_DOWNTIME_LIMIT, 0, MIG_MAX_DOWNTIME_LIMIT,
          "milliseconds"),
    P_U64(X_CHECKPOINT_DELAY, x_checkpoint_delay, 20000, 0, UINT32_MAX, "milliseconds"),
    P_BOOL(BLOCK_INCREMENTAL, block_incremental, 0),
    P_U64(MULTIFD_CHANNELS, multifd_channels, 2, 1, 255, NULL),
    /* also a power of two (checked apart) */
    P_U64(XBZRLE_CACHE_SIZE, xbzrle_cache_size, 64ull << 20, 4096, (uint64_t)INT64_MAX, "bytes"),
    P_U64(MAX_POSTCOPY_BANDWIDTH, max_postcopy_bandwidth, 0, 0, (uint64_t)INT64_MAX,
          "bytes/second"),
    P_U64(MAX_CPU_THROTTLE, max_cpu_throttle, 99, 1, 99, "percent"),
    [MIG_PARAM_MULTIFD_COMPRESSION] = {PK_ENUM, offsetof(MigParams, multifd_compression), 0,
                                       0, 2, NULL},
    P_U64(MULTIFD_ZLIB_LEVEL, multifd_zlib_level, 1, 0, 9, NULL),
    P_U64(MULTIFD_ZSTD_LEVEL, multifd_zstd_level, 1, 0, 20, NULL),
    P_U64(X_MAX_PASSES, x_max_passes, 0, 0, MIG_MAX_PASSES_LIMIT, NULL),
};
#undef P_U64
#undef P_BOOL
#undef P_STR

static const char *const param_names[MIG_PARAM__COUNT] = {
    [MIG_PARAM_ANNOUNCE_INITIAL] = "announce-initial",
    [MIG_PARAM_ANNOUNCE_MAX] = "announce-max",
    [MIG_PARAM_ANNOUNCE_ROUNDS] = "announce-rounds",
    [MIG_PARAM_ANNOUNCE_STEP] = "announce-step",
    [MIG_PARAM_COMPRESS_LEVEL] = "compress-level",
    [MIG_PARAM_COMPRESS_THREADS] = "compress-threads",
    [MIG_PARAM_COMPRESS_WAIT_THREAD] = "compress-wait-thread",
    [MIG_PARAM_DECOMPRESS_THREADS] = "decompress-threads",
    [MIG_PARAM_THROTTLE_TRIGGER_THRESHOLD] = "throttle-trigger-threshold",
    [MIG_PARAM_CPU_THROTTLE_INITIAL] = "cpu-throttle-initial",
    [MIG_PARAM_CPU_THROTTLE_INCREMENT] = "cpu-throttle-increment",
    [MIG_PARAM_CPU_THROTTLE_TAILSLOW] = "cpu-throttle-tailslow",
    [MIG_PARAM_TLS_CREDS] = "tls-creds",
    [MIG_PARAM_TLS_HOSTNAME] = "tls-hostname",
    [MIG_PARAM_TLS_AUTHZ] = "tls-authz",
    [MIG_PARAM_MAX_BANDWIDTH] = "max-bandwidth",
    [MIG_PARAM_DOWNTIME_LIMIT] = "downtime-limit",
    [MIG_PARAM_X_CHECKPOINT_DELAY] = "x-checkpoint-delay",
    [MIG_PARAM_BLOCK_INCREMENTAL] = "block-incremental",
    [MIG_PARAM_MULTIFD_CHANNELS] = "multifd-channels",
    [MIG_PARAM_XBZRLE_CACHE_SIZE] = "xbzrle-cache-size",
    [MIG_PARAM_MAX_POSTCOPY_BANDWIDTH] = "max-postcopy-bandwidth",
    [MIG_PARAM_MAX_CPU_THROTTLE] = "max-cpu-throttle",
    [MIG_PARAM_MULTIFD_COMPRESSION] = "multifd-compression",
    [MIG_PARAM_MULTIFD_ZLIB_LEVEL] = "multifd-zlib-level",
    [MIG_PARAM_MULTIFD_ZSTD_LEVEL] = "multifd-zstd-level",
    [MIG_PARAM_X_MAX_PASSES] = "x-max-passes",
};

const char *mig_param_name(MigParam p)
{
    return (unsigned)p < MIG_PARAM__COUNT ? param_names[p] : "?";
}

static uint64_t *u64_at(MigParams *p, const ParamDesc *d)
{
    return (uint64_t *)((char *)p + d->off);
}

static bool *bool_at(MigParams *p, const ParamDesc *d)
{
    return (bool *)((char *)p + d->off);
}

static char *str_at(MigParams *p, const ParamDesc *d)
{
    return (char *)p + d->off;
}

void mig_params_default(MigParams *p)
{
    memset(p, 0, sizeof(*p));
    for (int i = 0; i < MIG_PARAM__COUNT; i++) {
        const ParamDesc *d = &params[i];
        if (d->kind == PK_U64 || d->kind == PK_ENUM)
            *u64_at(p, d) = d->def;
        else if (d->kind == PK_BOOL)
            *bool_at(p, d) = d->def != 0;
    }
}

bool mig_params_set_has(const MigParamsSet *set, MigParam which)
{
    if (set->has & MIG_PARAM_BIT(which))
        return true;
    switch (which) {
    case MIG_PARAM_MAX_BANDWIDTH: return set->has_max_bandwidth;
    case MIG_PARAM_DOWNTIME_LIMIT: return set->has_downtime_limit;
    case MIG_PARAM_X_MAX_PASSES: return set->has_x_max_passes;
    default: return false;
    }
}

int mig_params_validate(const MigParamsSet *set, MigErr **errp)
{
    MigParams *p = (MigParams *)&set->p;
    for (int i = 0; i < MIG_PARAM__COUNT; i++) {
        const ParamDesc *d = &params[i];
        if (!mig_params_set_has(set, i) || d->kind != PK_U64)
            continue;
        uint64_t v = *u64_at(p, d);
        bool bad = v < d->min || v > d->max;
        if (i == MIG_PARAM_XBZRLE_CACHE_SIZE && (v & (v - 1)))
            bad = true;
        if (!bad)
            continue;
        if (i == MIG_PARAM_XBZRLE_CACHE_SIZE)
            return mig_err_set(errp, -EINVAL,
                               "Parameter 'xbzrle-cache-size' expects a power of two no less "
                               "than the target page size (4096)");
        return mig_err_set(errp, -EINVAL,
                           "Parameter '%s' expects an integer in the range of %llu to %llu%s%s",
                           param_names[i], (unsigned long long)d->min,
                           (unsigned long long)d->max, d->what ? " " : "",
                           d->what ? d->what : "");
    }
    return 0;
}

void mig_params_apply(MigParams *p, const MigParamsSet *set)
{
    MigParams *src = (MigParams *)&set->p;
    for (int i = 0; i < MIG_PARAM__COUNT; i++) {
        const ParamDesc *d = &params[i];
        if (!mig_params_set_has(set, i))
            continue;
        if (d->kind == PK_U64 || d->kind == PK_ENUM)
            *u64_at(p, d) = *u64_at(src, d);
        else if (d->kind == PK_BOOL)
            *bool_at(p, d) = *bool_at(src, d);
        else
            snprintf(str_at(p, d), 256, "%s", str_at(src, d));
    }
}

json_t *mig_params_to_json(const MigParams *p)
{
    MigParams *q = (MigParams *)p;
    json_t *o = json_object();
    for (int i = 0; i < MIG_PARAM__COUNT; i++) {
        const ParamDesc *d = &params[i];
        json_t *v;
        switch (d->kind) {
        case PK_U64: v = json_integer((json_int_t)*u64_at(q, d)); break;
        case PK_BOOL: v = json_boolean(*bool_at(q, d)); break;
        case PK_STR: v = json_string(str_at(q, d)); break;
        default: {
            uint64_t e = *u64_at(q, d);
            v = json_string(e <= d->max ? multifd_compression_names[e] : "none");
            break;
        }
        }
        json_object_set_new(o, param_names[i], v);
    }
    return o;
}

static int get_uint(json_t *v, const char *name, uint64_t *out, MigErr **errp)
{
    if (json_is_real(v)) {
        /* Management tools often write 1e12 for "unlimited". */
        double d = json_real_value(v);
        if (d < 0 || d > 9.2e18 || d != (double)(uint64_t)d)
            return mig_err_set(errp, -EINVAL, "Parameter '%s' expects a non-negative integer",
                               name);
        *out = (uint64_t)d;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return mig_err_set(errp, -EINVAL, "Parameter '%s' expects a non-negative integer", name);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_param(json_t *v, MigParam i, MigParams *p, MigErr **errp)
{
    const ParamDesc *d = &params[i];
    const char *name = param_names[i];
    switch (d->kind) {
    case PK_U64:
        return get_uint(v, name, u64_at(p, d), errp);
    case PK_BOOL:
        if (!json_is_boolean(v))
            return mig_err_set(errp, -EINVAL, "Parameter '%s' expects a boolean", name);
        *bool_at(p, d) = json_is_true(v);
        return 0;
    case PK_STR:
        /* QEMU takes null for "reset to empty" too. */
        if (json_is_null(v)) {
            str_at(p, d)[0] = '\0';
            return 0;
        }
        if (!json_is_string(v) || strlen(json_string_value(v)) > 255)
            return mig_err_set(errp, -EINVAL, "Parameter '%s' expects a string of at most 255 "
                                              "bytes", name);
        snprintf(str_at(p, d), 256, "%s", json_string_value(v));
        return 0;
    default:
        for (uint64_t e = 0; json_is_string(v) && multifd_compression_names[e]; e++) {
            if (strcmp(json_string_value(v), multifd_compression_names[e]) == 0) {
                *u64_at(p, d) = e;
                return 0;
            }
        }
        return mig_err_set(errp, -EINVAL, "Parameter '%s' expects 'none', 'zlib' or 'zstd'",
                           name);
    }
}

int mig_params_from_json(json_t *args, MigParamsSet *set, MigErr **errp)
{
    memset(set, 0, sizeof(*set));
    mig_params_default(&set->p);
    if (!args)
        return 0;
    if (!json_is_object(args))
        return mig_err_set(errp, -EINVAL, "migrate-set-parameters expects an object");
    const char *key;
    json_t *v;
    json_object_foreach(args, key, v) {
        int which = -1;
        for (int i = 0; i < MIG_PARAM__COUNT; i++)
            if (strcmp(key, param_names[i]) == 0)
                which = i;
        if (which < 0)
            return mig_err_set(errp, -EINVAL, "Parameter '%s' is unexpected", key);
        int r = get_param(v, which, &set->p, errp);
        if (r < 0)
            return r;
        set->has |= MIG_PARAM_BIT(which);
        if (which == MIG_PARAM_MAX_BANDWIDTH)
            set->has_max_bandwidth = true;
        else if (which == MIG_PARAM_DOWNTIME_LIMIT)
            set->has_downtime_limit = true;
        else if (which == MIG_PARAM_X_MAX_PASSES)
            set->has_x_max_passes = true;
    }
    return 0;
}

json_t *mig_info_to_json(const MigInfo *info)
{
    json_t *o = json_object();
    if (info->status == MIG_STATUS_NONE)
        return o;
    json_object_set_new(o, "status", json_string(mig_status_name(info->status)));
    if (info->has_total_time)
        json_object_set_new(o, "total-time", json_integer((json_int_t)info->total_time));
    if (info->has_setup_time)
        json_object_set_new(o, "setup-time", json_integer((json_int_t)info->setup_time));
    if (info->has_expected_downtime)
        json_object_set_new(o, "expected-downtime",
                            json_integer((json_int_t)info->expected_downtime));
    if (info->has_downtime)
        json_object_set_new(o, "downtime", json_integer((json_int_t)info->downtime));
    if (info->has_ram) {
        const MigRamInfo *r = &info->ram;
        json_t *ram = json_object();
#define U(k, v) json_object_set_new(ram, k, json_integer((json_int_t)(v)))
        U("transferred", r->transferred);
        U("remaining", r->remaining);
        U("total", r->total);
        U("duplicate", r->duplicate);
        U("skipped", 0);
        U("normal", r->normal);
        U("normal-bytes", r->normal_bytes);
        U("dirty-pages-rate", r->dirty_pages_rate);
        json_object_set_new(ram, "mbps", json_real(r->mbps));
        U("dirty-sync-count", r->dirty_sync_count);
        U("postcopy-requests", 0);
        U("page-size", r->page_size);
        U("multifd-bytes", 0);
        U("pages-per-second", r->pages_per_second);
        U("precopy-bytes", r->precopy_bytes);
        U("downtime-bytes", r->downtime_bytes);
        U("postcopy-bytes", 0);
        U("dirty-sync-missed-zero-copy", 0);
#undef U
        json_object_set_new(o, "ram", ram);
    }
    if (info->error_desc[0])
        json_object_set_new(o, "error-desc", json_string(info->error_desc));
    return o;
}
