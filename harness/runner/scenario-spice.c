/*
 * scenario-spice.c - the scenario loader's SPICE keys: `spice:` (both
 * machines get a SPICE server with the default devices), `client:` (the
 * fake client and its scripted faults), the steps `client-migrate-info`
 * and `client`, and the client's expectations (expect.client,
 * expect.client-migration, expect.client-error).  Every key is documented
 * in scenarios/README.md, section "SPICE".
 *
 * Called by the loader (scenario.c: convert; scenario-steps.c for the two
 * steps).  Like the rest of the loader: every error is one
 * `FILE:LINE: key 'K': ...`, nothing is half-built.
 * Invariants of the result: client.present and every client or step key
 * imply spice.on; defaults are filled in (display 160x120, vmc 500 bytes
 * per 10 ms from the device and 300 from the client, client links
 * 20M/s with 500us latency).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/fake-client.h"
#include "scenario-internal.h"
#include "spice/spice-pixmap-cache.h"

const char *const scn_migrate_info_names[SCN_MIGRATE_INFO__COUNT] = {"wait", "no-wait", "manual"};
const char *const scn_target_names[SCN_TARGET__COUNT] = {"accept", "refuse", "fail", "hang"};
const char *const scn_client_step_names[SCN_CLIENT_STEP__COUNT] = {
    "none", "begin", "connected", "end", "switched", "seamless-ack", "migrate", "flushed", "data"};
const char *const scn_client_end_names[SCN_CLIENT_END__COUNT] = {"auto", "src", "dst", "none"};
const char *const scn_client_mig_names[SCN_CLIENT_MIG__COUNT] = {"any", "semi-seamless", "switch-host",
                                                                 "cancelled", "none", "seamless"};
static const char *const blob_channel_names[] = {"main", "display", "inputs", "port"};
static const uint8_t blob_channel_types[] = {1, 2, 3, 10};
const char *const scn_client_action_names[SCN_CLIENT_ACTION__COUNT] = {"disconnect", "send", "drop",
                                                                       "partition", "heal", "slow"};
const char *const scn_send_names[SCN_SEND__COUNT] = {"unsolicited", "malformed", "flush-mark", "unknown"};

int scn__bool(Ctx *c, const char *path, const char *v, bool *out)
{
    if (strcmp(v, "true") && strcmp(v, "false"))
        return scn__bad(c, path, "invalid value '%s' (expected true or false)", v);
    *out = !strcmp(v, "true");
    return 0;
}

int scn__enum(Ctx *c, const char *path, const char *v, const char *const *names, int n, int *out)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) {
            *out = i;
            return 0;
        }
    char known[256] = "";
    for (int i = 0; i < n; i++) {
        size_t used = strlen(known);
        snprintf(known + used, sizeof(known) - used, "%s%s", i ? ", " : "", names[i]);
    }
    return scn__bad(c, path, "invalid value '%s' (expected one of: %s)", v, known);
}

static int parse_u32(Ctx *c, const char *path, const char *v, uint32_t max, uint32_t *out)
{
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end || n > max)
        return scn__bad(c, path, "invalid number '%s' (expected 0 to %u)", v, max);
    *out = (uint32_t)n;
    return 0;
}

static int check_password(Ctx *c, const char *path, const char *v, char *out, size_t len)
{
    /* the ticket carries at most 60 characters (docs/protocol-spice.md section 2) */
    if (strlen(v) > 60 || strlen(v) >= len)
        return scn__bad(c, path, "a SPICE password has at most 60 characters");
    scn__scopy(out, len, v);
    return 0;
}

static int check_server(Ctx *c, const RawSpice *r, ScnSpice *sp)
{
    int rc = 0;
    sp->on = true;
    sp->width = 160;
    sp->height = 120;
    sp->vmc_rate = 500;
    if (r->password && check_password(c, "spice.password", r->password, sp->password, sizeof(sp->password)) < 0)
        return -EINVAL;
    if (r->migrate_timeout &&
        ((rc = scn_parse_duration(r->migrate_timeout, &sp->migrate_timeout_ns)) < 0 ||
         !sp->migrate_timeout_ns))
        return scn__bad_value(c, "spice.migrate-timeout", rc, r->migrate_timeout,
                              SCN_LIMIT_DURATION, "invalid duration '%s' (expected e.g. 10s)",
                              r->migrate_timeout);
    int v;
    if (r->migrate_info) {
        if (scn__enum(c, "spice.migrate-info", r->migrate_info, scn_migrate_info_names, SCN_MIGRATE_INFO__COUNT,
                      &v) < 0)
            return -EINVAL;
        sp->migrate_info = (ScnMigrateInfo)v;
    }
    if (r->display) {
        unsigned w, h;
        char tail;
        if (sscanf(r->display, "%ux%u%c", &w, &h, &tail) != 2 || w < 16 || h < 16 || w > 1920 || h > 1200)
            return scn__bad(c, "spice.display", "invalid display '%s' (expected WxH from 16x16 to 1920x1200, "
                            "e.g. 160x120)", r->display);
        sp->width = w;
        sp->height = h;
    }
    sp->heads = 1;
    if (r->heads && parse_u32(c, "spice.heads", r->heads, 4, &sp->heads) < 0)
        return -EINVAL;
    if (!sp->heads)
        return scn__bad(c, "spice.heads", "a guest has at least one head (1 to 4)");
    if (r->image_compression) {
        static const char *const kinds[] = {"off", "glz"};
        int v;
        if (scn__enum(c, "spice.image-compression", r->image_compression, kinds, 2, &v) < 0)
            return -EINVAL;
        sp->glz = v == 1;
    }
    if (r->pixmap_cache_migration) {
        int v;
        if (scn__enum(c, "spice.pixmap-cache-migration", r->pixmap_cache_migration, spice_pixmap_cache_mig_names,
                      SPICE_PIXMAP_CACHE_MIG__COUNT, &v) < 0)
            return -EINVAL;
        sp->pixmap_cache_migration = v;
    }
    if (r->vmc_rate && parse_u32(c, "spice.vmc-rate", r->vmc_rate, 1u << 20, &sp->vmc_rate) < 0)
        return -EINVAL;
    if (r->vmc_rate && !sp->vmc_rate)
        return scn__bad(c, "spice.vmc-rate", "the device writes at least one byte every 10 ms");
    /* what a server speaks of migration is its release's (releases.h) */
    if (r->semi_seamless)
        return scn__bad(c, "spice.semi-seamless", "removed: a server's SEMI_SEAMLESS comes from its release; "
                        "name one without it instead (machines.src.release: \"1.0\" is an old spice-server "
                        "that migrates every client by switch-host; docs/protocol-spice.md section 10)");
    if (r->migration_version_src || r->migration_version_dst)
        return scn__bad(c, r->migration_version_src ? "spice.migration-version-src" : "spice.migration-version-dst",
                        "removed: the seamless migration protocol version comes from the release; name the "
                        "releases instead (machines.src.release / machines.dst.release: 2.0 speaks 1, "
                        "2.1-dev speaks 2; docs/protocol-spice.md section 10)");
    if (r->seamless && scn__bool(c, "spice.seamless", r->seamless, &sp->seamless) < 0)
        return -EINVAL;
    if (r->target_client && scn__bool(c, "spice.target-client", r->target_client, &sp->target_client) < 0)
        return -EINVAL;
    if (r->migrate_data_timeout &&
        ((rc = scn_parse_duration(r->migrate_data_timeout, &sp->migrate_data_timeout_ns)) < 0 ||
         !sp->migrate_data_timeout_ns))
        return scn__bad_value(c, "spice.migrate-data-timeout", rc, r->migrate_data_timeout, SCN_LIMIT_DURATION,
                              "invalid duration '%s' (expected e.g. 10s)", r->migrate_data_timeout);
    return 0;
}

static int check_client(Ctx *c, const RawClient *r, ScnClient *cl)
{
    int v, rc;
    cl->present = true;
    cl->vmc_rate = 300;
    cl->bandwidth = 20u << 20;
    cl->latency_ns = 500000;
    if (!r)
        return 0;
    if (r->present && scn__bool(c, "client.present", r->present, &cl->present) < 0)
        return -EINVAL;
    if (r->old && scn__bool(c, "client.old", r->old, &cl->old) < 0)
        return -EINVAL;
    if (r->pixmap_cache) {
        uint64_t px;
        if (scn_parse_size(r->pixmap_cache, &px) < 0 || px < 1024 || px > (1ull << 32))
            return scn__bad(c, "client.pixmap-cache", "invalid size '%s' (pixels, from 1K to 4G, e.g. 1M)",
                            r->pixmap_cache);
        cl->pixmap_cache = (int64_t)px;
    }
    if (r->vmc_rate && parse_u32(c, "client.vmc-rate", r->vmc_rate, 1u << 20, &cl->vmc_rate) < 0)
        return -EINVAL;
    if (r->link && r->link->bandwidth &&
        (rc = scn_parse_bandwidth(r->link->bandwidth, &cl->bandwidth)) < 0)
        return scn__bad_value(c, "client.link.bandwidth", rc, r->link->bandwidth,
                              SCN_LIMIT_BANDWIDTH, "invalid bandwidth '%s' (expected e.g. 20M/s)",
                              r->link->bandwidth);
    if (r->link && r->link->latency &&
        (rc = scn_parse_duration(r->link->latency, &cl->latency_ns)) < 0)
        return scn__bad_value(c, "client.link.latency", rc, r->link->latency, SCN_LIMIT_DURATION,
                              "invalid duration '%s' (expected e.g. 1ms)", r->link->latency);
    if (r->password) {
        cl->has_password = true;
        if (check_password(c, "client.password", r->password, cl->password, sizeof(cl->password)) < 0)
            return -EINVAL;
    }
    if (r->target) {
        if (scn__enum(c, "client.target", r->target, scn_target_names, SCN_TARGET__COUNT, &v) < 0)
            return -EINVAL;
        cl->target = (ScnTarget)v;
    }
    if (r->target_delay && (rc = scn_parse_duration(r->target_delay, &cl->target_delay_ns)) < 0)
        return scn__bad_value(c, "client.target-delay", rc, r->target_delay, SCN_LIMIT_DURATION,
                              "invalid duration '%s' (expected e.g. 2s)", r->target_delay);
    if (r->disconnect_at) {
        if (scn__enum(c, "client.disconnect-at", r->disconnect_at, scn_client_step_names + 1,
                      SCN_CLIENT_STEP__COUNT - 1, &v) < 0)
            return -EINVAL;
        cl->disconnect_at = (ScnClientStep)(v + 1);
    }
    if (r->disconnect_at_message) {
        if (parse_u32(c, "client.disconnect-at-message", r->disconnect_at_message, 1u << 30,
                      &cl->disconnect_at_message) < 0)
            return -EINVAL;
        if (!cl->disconnect_at_message)
            return scn__bad(c, "client.disconnect-at-message", "messages count from 1");
        if (cl->disconnect_at)
            return scn__bad(c, "client.disconnect-at-message", "a client disconnects once: disconnect-at or "
                            "disconnect-at-message, not both");
    }
    if (r->migrate_end_delay &&
        (rc = scn_parse_duration(r->migrate_end_delay, &cl->migrate_end_delay_ns)) < 0)
        return scn__bad_value(c, "client.migrate-end-delay", rc, r->migrate_end_delay,
                              SCN_LIMIT_DURATION, "invalid duration '%s' (expected e.g. 1s)",
                              r->migrate_end_delay);
    if (r->flush_mark_delay && (rc = scn_parse_duration(r->flush_mark_delay, &cl->flush_mark_delay_ns)) < 0)
        return scn__bad_value(c, "client.flush-mark-delay", rc, r->flush_mark_delay, SCN_LIMIT_DURATION,
                              "invalid duration '%s' (expected e.g. 1s)", r->flush_mark_delay);
    if (r->blob && scn__enum(c, "client.blob", r->blob, fake_client_blob_fault_names, FAKE_CLIENT_BLOB__COUNT,
                             &cl->blob_fault) < 0)
        return -EINVAL;
    cl->blob_channel = 2;
    if (r->blob_channel) {
        if (scn__enum(c, "client.blob-channel", r->blob_channel, blob_channel_names,
                      (int)MIG_ARRAY_SIZE(blob_channel_names), &v) < 0)
            return -EINVAL;
        cl->blob_channel = blob_channel_types[v];
    }
    if (r->seamless) {
        bool yes;
        if (scn__bool(c, "client.seamless", r->seamless, &yes) < 0)
            return -EINVAL;
        cl->no_seamless = !yes;
    }
    return 0;
}

int scn__check_spice(Ctx *c, const RawScenario *r, Scenario *s)
{
    if (!r->spice) {
        const char *stray = r->client ? "client" : r->expect->client ? "expect.client"
                          : r->expect->client_migration ? "expect.client-migration"
                          : r->expect->client_error ? "expect.client-error" : NULL;
        if (stray)
            return scn__bad(c, stray, "needs `spice:` (the machines have no SPICE server)");
        for (size_t i = 0; i < s->nsteps; i++)
            if (s->steps[i].kind == SCN_STEP_CLIENT_MIGRATE_INFO || s->steps[i].kind == SCN_STEP_CLIENT) {
                char path[64];
                snprintf(path, sizeof(path), "steps[%zu]", i);
                return scn__bad(c, path, "step %s needs `spice:` (the machines have no SPICE server)",
                                scn_step_names[s->steps[i].kind]);
            }
        return 0;
    }
    if (check_server(c, r->spice, &s->spice) < 0 || check_client(c, r->client, &s->client) < 0)
        return -EINVAL;
    if (!s->client.has_password)
        scn__scopy(s->client.password, sizeof(s->client.password), s->spice.password);
    int v;
    if (r->expect->client) {
        if (scn__enum(c, "expect.client", r->expect->client, scn_client_end_names + 1, SCN_CLIENT_END__COUNT - 1,
                      &v) < 0)
            return -EINVAL;
        s->client_end = (ScnClientEnd)(v + 1);
    }
    if (r->expect->client_migration) {
        if (scn__enum(c, "expect.client-migration", r->expect->client_migration, scn_client_mig_names + 1,
                      SCN_CLIENT_MIG__COUNT - 1, &v) < 0)
            return -EINVAL;
        s->client_mig = (ScnClientMig)(v + 1);
    }
    s->client_error = mig_strdup(r->expect->client_error);
    if (r->expect->client_channel_lost) {
        if (scn__enum(c, "expect.client-channel-lost", r->expect->client_channel_lost, blob_channel_names,
                      (int)MIG_ARRAY_SIZE(blob_channel_names), &v) < 0)
            return -EINVAL;
        s->client_channel_lost = blob_channel_types[v];
    }
    if (!s->client.present) {
        if (r->expect->client || r->expect->client_migration || r->expect->client_error)
            return scn__bad(c, "client.present", "a scenario without a client expects nothing of it");
        for (size_t i = 0; i < s->nsteps; i++)
            if (s->steps[i].kind == SCN_STEP_CLIENT) {
                char path[64];
                snprintf(path, sizeof(path), "steps[%zu]", i);
                return scn__bad(c, path, "step client needs a client (client.present is false)");
            }
    }
    return 0;
}

/* ---- the steps ---- */

static int side_of(Ctx *c, const char *path, const char *v, MigFaultSide *side)
{
    if (!strcmp(v, "src"))
        *side = MIG_FAULT_SIDE_SRC;
    else if (!strcmp(v, "dst"))
        *side = MIG_FAULT_SIDE_DST;
    else
        return scn__bad(c, path, "invalid server '%s' (expected src or dst)", v);
    return 0;
}

int scn__check_spice_step(Ctx *c, const char *base, const RawStep *r, ScnStep *st)
{
    char path[160];
    if (st->kind == SCN_STEP_CLIENT_MIGRATE_INFO) {
        st->wait = true;
        snprintf(path, sizeof(path), "%s.wait", base);
        return r->client_migrate_info->wait ? scn__bool(c, path, r->client_migrate_info->wait, &st->wait) : 0;
    }
    const RawClientStep *k = r->client;
    const char *acts[SCN_CLIENT_ACTION__COUNT] = {k->disconnect, k->send, k->drop, k->partition, k->heal, k->slow};
    int found = -1, count = 0;
    for (int i = 0; i < SCN_CLIENT_ACTION__COUNT; i++)
        if (acts[i]) {
            found = found < 0 ? i : found;
            count++;
        }
    if (count != 1)
        return scn__bad(c, base, "a client step has exactly one of disconnect, send, drop, partition, heal, "
                        "slow (it has %d)", count);
    st->client_action = (ScnClientAction)found;
    snprintf(path, sizeof(path), "%s.%s", base, scn_client_action_names[found]);
    if ((k->bandwidth || k->latency) && found != SCN_CLIENT_SLOW)
        return scn__bad(c, path, "bandwidth and latency go with slow");
    int v;
    switch (st->client_action) {
    case SCN_CLIENT_DISCONNECT: {
        bool yes;
        if (scn__bool(c, path, k->disconnect, &yes) < 0)
            return -EINVAL;
        if (!yes)
            return scn__bad(c, path, "disconnect: true is the only value");
        return 0;
    }
    case SCN_CLIENT_SEND:
        if (scn__enum(c, path, k->send, scn_send_names, SCN_SEND__COUNT, &v) < 0)
            return -EINVAL;
        st->send = (ScnClientSend)v;
        return 0;
    default:
        break;
    }
    if (side_of(c, path, acts[found], &st->side) < 0)
        return -EINVAL;
    if (st->client_action == SCN_CLIENT_SLOW) {
        if (!k->bandwidth && !k->latency)
            return scn__bad(c, path, "slow needs bandwidth or latency");
        snprintf(path, sizeof(path), "%s.bandwidth", base);
        int rc;
        if (k->bandwidth && (rc = scn_parse_bandwidth(k->bandwidth, &st->bandwidth)) < 0)
            return scn__bad_value(c, path, rc, k->bandwidth, SCN_LIMIT_BANDWIDTH,
                                  "invalid bandwidth '%s' (expected e.g. 1M/s)", k->bandwidth);
        snprintf(path, sizeof(path), "%s.latency", base);
        if (k->latency && (rc = scn_parse_duration(k->latency, &st->latency_ns)) < 0)
            return scn__bad_value(c, path, rc, k->latency, SCN_LIMIT_DURATION,
                                  "invalid duration '%s'", k->latency);
        st->has_latency = k->latency != NULL;
    }
    return 0;
}
