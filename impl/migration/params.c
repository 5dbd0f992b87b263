/*
 * params.c - capability names, parameters and the MigrationInfo renderer
 * (see migration.h).  Constant tables only: no state.
 */
#include <inttypes.h>
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
    return c == MIG_CAP_X_IGNORE_SHARED || c == MIG_CAP_X_PAGE_FLIP;
}

MigCapMask mig_caps_supported(void)
{
    /* events: MIGRATION/MIGRATION_PASS; zero-blocks: no block migration here,
     * accepted as a no-op like QEMU without block devices; validate-uuid: no
     * UUID configured, so nothing to send; x-ignore-shared: no shared blocks,
     * only the block-list format changes; x-page-flip: announced and
     * validated (the local transport does the flipping). */
    return MIG_CAP_BIT(MIG_CAP_EVENTS) | MIG_CAP_BIT(MIG_CAP_ZERO_BLOCKS) |
           MIG_CAP_BIT(MIG_CAP_PAUSE_BEFORE_SWITCHOVER) | MIG_CAP_BIT(MIG_CAP_X_IGNORE_SHARED) |
           MIG_CAP_BIT(MIG_CAP_VALIDATE_UUID) | MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP);
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

void mig_params_default(MigParams *p)
{
    p->max_bandwidth = MIG_DEFAULT_MAX_BANDWIDTH;
    p->downtime_limit = MIG_DEFAULT_DOWNTIME_LIMIT;
    p->x_max_passes = 0;
}

int mig_params_validate(const MigParamsSet *set, MigErr **errp)
{
    if (set->has_downtime_limit && set->p.downtime_limit > MIG_MAX_DOWNTIME_LIMIT)
        return mig_err_set(errp, -EINVAL,
                           "Parameter 'downtime-limit' expects an integer in the range of 0 to "
                           "%llu milliseconds",
                           (unsigned long long)MIG_MAX_DOWNTIME_LIMIT);
    if (set->has_max_bandwidth && set->p.max_bandwidth > (uint64_t)INT64_MAX)
        return mig_err_set(errp, -EINVAL,
                           "Parameter 'max-bandwidth' expects an integer in the range of 0 to "
                           "%lld bytes/second",
                           (long long)INT64_MAX);
    if (set->has_x_max_passes && set->p.x_max_passes > MIG_MAX_PASSES_LIMIT)
        return mig_err_set(errp, -EINVAL,
                           "Parameter 'x-max-passes' expects an integer in the range of 0 to %llu",
                           (unsigned long long)MIG_MAX_PASSES_LIMIT);
    return 0;
}

json_t *mig_params_to_json(const MigParams *p)
{
    return json_pack("{s:I, s:I, s:I}", "max-bandwidth", (json_int_t)p->max_bandwidth,
                     "downtime-limit", (json_int_t)p->downtime_limit, "x-max-passes",
                     (json_int_t)p->x_max_passes);
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

int mig_params_from_json(json_t *args, MigParamsSet *set, MigErr **errp)
{
    memset(set, 0, sizeof(*set));
    if (!args)
        return 0;
    if (!json_is_object(args))
        return mig_err_set(errp, -EINVAL, "migrate-set-parameters expects an object");
    const char *key;
    json_t *v;
    json_object_foreach(args, key, v) {
        int r;
        if (strcmp(key, "max-bandwidth") == 0) {
            r = get_uint(v, key, &set->p.max_bandwidth, errp);
            set->has_max_bandwidth = true;
        } else if (strcmp(key, "downtime-limit") == 0) {
            r = get_uint(v, key, &set->p.downtime_limit, errp);
            set->has_downtime_limit = true;
        } else if (strcmp(key, "x-max-passes") == 0) {
            r = get_uint(v, key, &set->p.x_max_passes, errp);
            set->has_x_max_passes = true;
        } else {
            r = mig_err_set(errp, -EINVAL, "Parameter '%s' is unexpected", key);
        }
        if (r < 0)
            return r;
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
