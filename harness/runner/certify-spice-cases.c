/*
 * certify-spice-cases.c - the migration cases of `migcert certify --spice`
 * (certify-spice.h) and what every case shares: a fake client (fakes/client)
 * on the run's loop over real sockets, as `migcert client` runs it, and the
 * waits.
 *
 *   migrate.semi-seamless  client_migrate_info, the client's
 *                          MIGRATE_CONNECTED, migrate: the client ends on
 *                          the target in the same session, every channel
 *                          linked again, its screen equal to the target's
 *                          screendump, playback and port sequences unbroken
 *   migrate.switch-host    a client without SEMI_SEAMLESS gets SWITCH_HOST
 *                          and a new session on the target
 *   migrate.cancel         migrate_cancel once the client linked to the
 *                          target (the source holds the migration at
 *                          pre-switchover): MIGRATE_CANCEL, the client stays
 *   migrate.seamless       with seamless-migration=on: BEGIN_SEAMLESS and
 *                          the client on the target with no MAIN_INIT
 *
 * The screen comparison: the target's guest is stopped and, once the client
 * has read what the server sent, its primary surface must be pixel-equal to
 * `screendump`.  A picture the client could not have (QEMU's text cursor
 * blinks on the guest's clock, and its last blink may not have left the
 * display worker when the guest stopped) gets more rounds: the guest runs a
 * little and is stopped again, until both sides show the same blink.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "certify-spice.h"

static MigTransport *dial(void *opaque, const char *host, uint16_t port, MigErr **errp)
{
    CsRun *r = opaque;
    int fd = spice_dial(host, port, false, errp);
    return fd < 0 ? NULL : mig_transport_fd_new(r->loop, fd, host[0] == '/' ? "unix" : "tcp");
}

FakeClient *cs_client_new(CsRun *r, CertCtx *c, CsSide *side, const SpiceCapSet *main_caps, const char *who)
{
    FakeClientConfig cc = {.host = side->spice.host, .port = side->spice.port, .connect = dial,
                           .connect_opaque = r, .password = r->password, .who = who, .join_streams = true};
    if (main_caps)
        cc.main_caps = *main_caps;
    FakeClient *fc = fake_client_new(r->loop, &cc);
    MigErr *err = NULL;
    if (fake_client_start(fc, &err) < 0) {
        certify_fail(c, "spice-link", "%s: cannot connect to the %s's SPICE address %s: %s", who, side->name,
                     side->spice_arg, err ? err->msg : "failed");
        mig_err_free(err);
        fake_client_free(fc);
        return NULL;
    }
    return fc;
}

void cs_client_free(FakeClient *fc)
{
    if (fc)
        fake_client_free(fc);
}

bool cs_wait(CsRun *r, bool (*pred)(void *opaque), void *opaque)
{
    return mig_loop_run_until(r->loop, pred, opaque, mig_loop_now_ns(r->loop) + r->timeout_ns) == 0;
}

static void nap(CsRun *r, uint64_t ns)
{
    mig_loop_run_until(r->loop, NULL, NULL, mig_loop_now_ns(r->loop) + ns);
}

/* Linked everything listed: CHANNELS_LIST came and nothing is linking. */
bool cs_links_done(const FakeClient *fc)
{
    return fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_CHANNELS_LIST) > 0 &&
           fake_client_channels(fc) == fake_client_linked_channels(fc);
}

bool cs_client_gone(const FakeClient *fc)
{
    return fake_client_channels(fc) == 0 || fake_client_last_error(fc)[0];
}

static bool settled_pred(void *opaque)
{
    const FakeClient *fc = opaque;
    return (cs_links_done(fc) && fake_client_surface(fc, 0, 0)) || cs_client_gone(fc);
}

bool cs_client_settled(CsRun *r, CertCtx *c, FakeClient *fc, const char *rule)
{
    bool in_time = cs_wait(r, settled_pred, fc);
    const char *e = fake_client_last_error(fc);
    if (e[0]) {
        certify_fail(c, rule, "the client: %s", e);
        return false;
    }
    if (!in_time || fake_client_channels(fc) == 0) {
        certify_fail(c, rule, "the client %s within the hang guard (CHANNELS_LIST %s, %zu of %zu channels linked, %s)",
                     fake_client_channels(fc) ? "did not settle" : "lost its session",
                     fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_CHANNELS_LIST) ? "received" : "not received",
                     fake_client_linked_channels(fc), fake_client_channels(fc),
                     fake_client_surface(fc, 0, 0) ? "a primary surface" : "no primary surface");
        return false;
    }
    return true;
}

/* The channels the client has linked, as "MAIN:0 DISPLAY:0 ..." (for messages). */
static void channel_names(const FakeClient *fc, char *out, size_t len)
{
    out[0] = 0;
    uint8_t t, id;
    size_t o = 0;
    for (size_t i = 0; fake_client_channel_ever(fc, i, &t, &id) && o < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%s%s:%u", i ? " " : "", spice_channel_type_name(t), id);
}

/* ---- QMP steps ---- */

static bool qmp(CsRun *r, CertCtx *c, CsSide *s, const char *rule, const char *cmd, json_t *args, json_t **ret)
{
    MigErr *err = NULL;
    if (cs_qmp_exec(s->qmp, cmd, args, r->timeout_ns, ret, &err) == 0)
        return true;
    certify_fail(c, rule, "the %s: %s", s->name, err ? err->msg : cmd);
    mig_err_free(err);
    if (!cs_qmp_alive(s->qmp))
        cs_side_mark(s, CS_SIDE_DEAD, "its QMP connection closed");
    return false;
}

static bool migrate_info(CsRun *r, CertCtx *c, const char *rule)
{
    const SpiceAddr *d = &r->dst.spice;
    return qmp(r, c, &r->src, rule, "client_migrate_info",
               json_pack("{s:s, s:s, s:i}", "protocol", "spice", "hostname", d->host, "port", (int)d->port), NULL);
}

/* Poll query-migrate (every 20 ms of loop time) until a final status or
 * `want`; false after failing the case. */
static bool wait_migration(CsRun *r, CertCtx *c, const char *rule, const char *want, char *status, size_t len)
{
    uint64_t end = mig_loop_now_ns(r->loop) + 4 * r->timeout_ns;
    for (;;) {
        json_t *ret = NULL;
        if (!qmp(r, c, &r->src, rule, "query-migrate", NULL, &ret))
            return false;
        const char *st = json_string_value(json_object_get(ret, "status"));
        snprintf(status, len, "%s", st ? st : "none");
        const char *desc = json_string_value(json_object_get(ret, "error-desc"));
        char d[256];
        snprintf(d, sizeof(d), "%s", desc ? desc : "");
        json_decref(ret);
        if ((want && !strcmp(status, want)) || !strcmp(status, "completed") || !strcmp(status, "failed") ||
            !strcmp(status, "cancelled")) {
            if (want && strcmp(status, want)) {
                certify_fail(c, rule, "the migration ended %s%s%s before reaching %s", status, d[0] ? ": " : "", d,
                             want);
                return false;
            }
            if (!want && strcmp(status, "completed")) {
                certify_fail(c, rule, "the migration ended %s%s%s", status, d[0] ? ": " : "", d);
                return false;
            }
            return true;
        }
        if (mig_loop_now_ns(r->loop) >= end) {
            certify_fail(c, rule, "the migration is still %s after the hang guard", status);
            return false;
        }
        nap(r, 20000000ull);
    }
}

static bool migrate(CsRun *r, CertCtx *c, const char *rule, const char *want)
{
    char st[32];
    if (!qmp(r, c, &r->src, rule, "migrate", json_pack("{s:s}", "uri", r->migrate_uri), NULL))
        return false;
    char what[160];
    snprintf(what, sizeof(what), "case %s migrated it", r->case_name);
    cs_side_mark(&r->src, CS_SIDE_USED, what);
    cs_side_mark(&r->dst, CS_SIDE_USED, what);
    return wait_migration(r, c, rule, want, st, sizeof(st));
}

/* ---- the screen ---- */

/* Read a binary PPM (P6, maxval 255) as 0x00RRGGBB pixels. */
static uint32_t *read_ppm(const char *path, uint32_t *w, uint32_t *h)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned ww = 0, hh = 0, max = 0;
    uint32_t *px = NULL;
    if (fscanf(f, "P6 %u %u %u", &ww, &hh, &max) == 3 && max == 255 && fgetc(f) != EOF && ww && hh &&
        ww <= 16384 && hh <= 16384) {
        px = mig_malloc0((size_t)ww * hh * sizeof(*px));
        for (size_t i = 0; i < (size_t)ww * hh; i++) {
            unsigned char rgb[3];
            if (fread(rgb, 1, 3, f) != 3) {
                free(px);
                px = NULL;
                break;
            }
            px[i] = (uint32_t)rgb[0] << 16 | (uint32_t)rgb[1] << 8 | rgb[2];
        }
    }
    fclose(f);
    *w = ww;
    *h = hh;
    return px;
}

typedef enum { SCREEN_EQUAL, SCREEN_DIFFERS, SCREEN_NO_DUMP } ScreenCmp;

/* Compare the client's primary surface with the side's screendump now;
 * *diff gets the number of differing pixels (or a size mismatch). */
static ScreenCmp screen_cmp(CsRun *r, CsSide *s, FakeClient *fc, char *why, size_t len)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s-screendump.ppm", r->outdir, r->case_name);
    remove(path);
    MigErr *err = NULL;
    if (cs_qmp_exec(s->qmp, "screendump", json_pack("{s:s}", "filename", path), r->timeout_ns, NULL, &err) < 0) {
        snprintf(why, len, "no screendump (%s)", err ? err->msg : "failed");
        mig_err_free(err);
        return SCREEN_NO_DUMP;
    }
    uint32_t w, h;
    uint32_t *px = read_ppm(path, &w, &h);
    if (!px) {
        snprintf(why, len, "the screendump %.300s cannot be read here (a server on another host?)", path);
        return SCREEN_NO_DUMP;
    }
    const SpiceSurface *sf = fake_client_surface(fc, 0, 0);
    ScreenCmp rc = SCREEN_EQUAL;
    if (!sf) {
        snprintf(why, len, "the client has no primary surface");
        rc = SCREEN_DIFFERS;
    } else if (sf->width != w || sf->height != h) {
        snprintf(why, len, "the client's primary is %ux%u, the screendump %ux%u", sf->width, sf->height, w, h);
        rc = SCREEN_DIFFERS;
    } else {
        size_t diff = 0;
        for (size_t i = 0; i < (size_t)w * h; i++)
            diff += (sf->px[i] & 0xffffff) != px[i];
        if (diff) {
            snprintf(why, len, "%zu of %zu pixels differ from the screendump", diff, (size_t)w * h);
            rc = SCREEN_DIFFERS;
        }
    }
    free(px);
    return rc;
}

static uint64_t draws_of(const FakeClient *fc)
{
    FakeClientDraws d;
    fake_client_draws(fc, &d);
    return d.count;
}

/* The client's screen equals the side's screendump; false after failing
 * the case under spice-display.  Each round stops the guest, waits until
 * no drawing message arrives over 50 ms (the client read what the server
 * had), compares, and lets the guest run again; the rounds end at the
 * first equal picture or at the hang guard. */
static bool same_screen(CsRun *r, CertCtx *c, CsSide *s, FakeClient *fc)
{
    char why[512] = "";
    uint64_t end = mig_loop_now_ns(r->loop) + r->timeout_ns;
    ScreenCmp rc;
    unsigned rounds = 0;
    for (;;) {
        rounds++;
        bool stopped = cs_qmp_exec(s->qmp, "stop", NULL, r->timeout_ns, NULL, NULL) == 0;
        uint64_t seen;
        do {
            seen = draws_of(fc);
            nap(r, 50000000ull);
        } while (draws_of(fc) != seen && mig_loop_now_ns(r->loop) < end);
        rc = screen_cmp(r, s, fc, why, sizeof(why));
        if (stopped)
            cs_qmp_exec(s->qmp, "cont", NULL, r->timeout_ns, NULL, NULL);
        if (rc != SCREEN_DIFFERS || mig_loop_now_ns(r->loop) >= end)
            break;
        nap(r, 100000000ull); /* the guest moves on; the next stop may catch both sides alike */
    }
    if (rc == SCREEN_NO_DUMP) {
        snprintf(c->res->note, sizeof(c->res->note), "screen not compared: %s", why);
        return true;
    }
    if (rc == SCREEN_DIFFERS) {
        certify_fail(c, "spice-display", "after the switch, on the %s: %s (%u stops of the guest)", s->name, why,
                     rounds);
        return false;
    }
    return true;
}

/* ---- playback and port sequences ---- */

typedef struct Media {
    FakeClient *fc;
    uint8_t type;
    uint64_t after;
} Media;

static bool more_media(void *opaque)
{
    Media *m = opaque;
    FakeClientMediaStats st;
    fake_client_media_stats(m->fc, m->type, &st);
    return st.received > m->after || fake_client_channels(m->fc) == 0;
}

/* A stream that carried migcert's sequence before the switch (the fake
 * devices of `migcert vm`) must go on after it with no gap and no repeat;
 * any other stream is not checked (noted). */
static bool media_continuous(CsRun *r, CertCtx *c, FakeClient *fc, uint8_t type, const FakeClientMediaStats *before,
                             char *note, size_t len)
{
    const char *name = type == SPICE_CHANNEL_PLAYBACK ? "playback" : "port";
    size_t o = strlen(note);
    if (before->foreign && before->name[0]) {
        snprintf(note + o, len - o, "%sport %s not checked (not migcert's; %llu bytes accepted)", o ? "; " : "",
                 before->name, (unsigned long long)before->received);
        return true;
    }
    if (!before->received || before->gaps || before->dups) {
        snprintf(note + o, len - o, "%s%s not checked (%s)", o ? "; " : "", name,
                 before->received ? "not migcert's sequence" : "no data before the switch");
        return true;
    }
    Media m = {fc, type, before->received};
    if (!cs_wait(r, more_media, &m)) {
        certify_fail(c, "spice-media", "%s: nothing arrived after the switch (%llu before it)", name,
                     (unsigned long long)before->received);
        return false;
    }
    FakeClientMediaStats st;
    fake_client_media_stats(fc, type, &st);
    if (st.gaps || st.dups) {
        certify_fail(c, "spice-media", "%s across the switch: %llu missing, %llu repeated", name,
                     (unsigned long long)st.gaps, (unsigned long long)st.dups);
        return false;
    }
    snprintf(note + o, len - o, "%s%s continuous", o ? "; " : "", name);
    return true;
}

/* ---- the cases ---- */

typedef struct OnTarget {
    CsRun *r;
    FakeClient *fc;
    uint32_t semi, sw;
    bool seamless;
} OnTarget;

static bool on_server(const FakeClient *fc, const CsSide *s)
{
    return !strcmp(fake_client_server_host(fc), s->spice.host) && fake_client_server_port(fc) == s->spice.port;
}

static bool switched(void *opaque)
{
    OnTarget *o = opaque;
    FakeClientMigrations m;
    fake_client_migrations(o->fc, &m);
    if (fake_client_channels(o->fc) == 0 || fake_client_last_error(o->fc)[0])
        return true;
    if (o->seamless && (m.semi_seamless || m.switch_host))
        return true; /* it fell back: judged by the caller */
    /* a seamless switch shows as none of the others: the client simply
     * went on with the target */
    bool kind = o->seamless ? !m.semi_seamless && !m.switch_host
                            : m.semi_seamless >= o->semi && m.switch_host >= o->sw && (m.semi_seamless || m.switch_host);
    return kind && on_server(o->fc, &o->r->dst) && settled_pred(o->fc);
}

static bool mig_connected(void *opaque)
{
    FakeClient *fc = opaque;
    FakeClientMigrations m;
    fake_client_migrations(fc, &m);
    return fake_client_mig_step(fc) == FAKE_CLIENT_MIG_CONNECTED || m.connect_errors || fake_client_channels(fc) == 0;
}

static bool need_uri(CertCtx *c, CsRun *r)
{
    if (r->migrate_uri)
        return true;
    certify_skip(c, "no --migrate-uri: the URI the target's -incoming listens on is needed to migrate");
    return false;
}

static SpiceCapSet caps_of(bool semi, bool seamless)
{
    SpiceCapSet s = {0};
    spice_caps_set(&s, SPICE_MAIN_CAP_NAME_AND_UUID);
    spice_caps_set(&s, SPICE_MAIN_CAP_AGENT_CONNECTED_TOKENS);
    if (semi)
        spice_caps_set(&s, SPICE_MAIN_CAP_SEMI_SEAMLESS_MIGRATE);
    if (seamless)
        spice_caps_set(&s, SPICE_MAIN_CAP_SEAMLESS_MIGRATE);
    return s;
}

/* The start of a migration case: a client with these main capabilities on
 * the source, settled; its session and linked channels.  NULL after
 * failing or skipping the case. */
static FakeClient *start_client(CsRun *r, CertCtx *c, bool semi, bool seamless, uint32_t *session, size_t *linked)
{
    if (!need_uri(c, r))
        return NULL;
    SpiceCapSet caps = caps_of(semi, seamless);
    FakeClient *fc = cs_client_new(r, c, &r->src, &caps, semi ? "certify.client" : "certify.old-client");
    if (fc && !cs_client_settled(r, c, fc, "spice-link")) {
        cs_client_free(fc);
        return NULL;
    }
    if (fc) {
        *session = fake_client_session_id(fc);
        *linked = fake_client_linked_channels(fc);
    }
    return fc;
}

/* The media streams under way before a migration case migrates, so that
 * media_continuous can hold them to continuity across the switch (a
 * stream still empty then is noted unchecked).  How soon the first data
 * comes is the machine's speed, not the endpoint's: the fake devices of
 * `migcert vm` send every 10 ms, and a quick machine had the client linked
 * to the target before the first of them.  Playback: a server sends
 * PLAYBACK_MODE when the channel connects (spice-server 0.15.1 and
 * migcert alike) and, if its device plays, PLAYBACK_START right behind it;
 * so the MODE (or START) first, then up to START_GRACE_NS for the START
 * (QEMU's sound device sends none while its guest plays nothing), then,
 * once it came, the data it announced.  migcert's
 * port (PORT_INIT named its device) sends from the start: its data.  The
 * data waits end at the hang guard; whatever they end on, media_continuous
 * says what it saw. */
#define START_GRACE_NS (100ull * 1000 * 1000)

static bool playback_connected(void *opaque)
{
    const FakeClient *fc = opaque;
    return fake_client_count(fc, SPICE_CHANNEL_PLAYBACK, SPICE_MSG_PLAYBACK_MODE) > 0 ||
           fake_client_count(fc, SPICE_CHANNEL_PLAYBACK, SPICE_MSG_PLAYBACK_START) > 0 || cs_client_gone(fc);
}

static bool playback_started(void *opaque)
{
    const FakeClient *fc = opaque;
    return fake_client_count(fc, SPICE_CHANNEL_PLAYBACK, SPICE_MSG_PLAYBACK_START) > 0 || cs_client_gone(fc);
}

static bool streams_flowing(void *opaque)
{
    const FakeClient *fc = opaque;
    FakeClientMediaStats pb, port;
    fake_client_media_stats(fc, SPICE_CHANNEL_PLAYBACK, &pb);
    fake_client_media_stats(fc, SPICE_CHANNEL_PORT, &port);
    bool pb_due = fake_client_count(fc, SPICE_CHANNEL_PLAYBACK, SPICE_MSG_PLAYBACK_START) > 0;
    bool port_due = port.name[0] && !port.foreign;
    return ((!pb_due || pb.received) && (!port_due || port.received)) || cs_client_gone(fc);
}

static void streams_wait(CsRun *r, FakeClient *fc)
{
    if (fake_client_has_channel(fc, SPICE_CHANNEL_PLAYBACK, 0)) {
        cs_wait(r, playback_connected, fc);
        mig_loop_run_until(r->loop, playback_started, fc, mig_loop_now_ns(r->loop) + START_GRACE_NS);
    }
    cs_wait(r, streams_flowing, fc);
}

/* The client answered MIGRATE_BEGIN with MIGRATE_CONNECTED; false after failing. */
static bool client_linked_to_target(CsRun *r, CertCtx *c, FakeClient *fc, const char *rule)
{
    cs_wait(r, mig_connected, fc);
    FakeClientMigrations m;
    fake_client_migrations(fc, &m);
    if (fake_client_mig_step(fc) == FAKE_CLIENT_MIG_CONNECTED)
        return true;
    if (!fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_MIGRATE_BEGIN) &&
        !fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_MIGRATE_BEGIN_SEAMLESS))
        certify_fail(c, rule, "client_migrate_info sent the client no MIGRATE_BEGIN");
    else
        certify_fail(c, rule, "the client could not link to the target %s: %s", r->dst.spice_arg,
                     fake_client_last_error(fc)[0] ? fake_client_last_error(fc) : "no answer within the hang guard");
    return false;
}

void cs_case_semi_seamless(CsRun *r, CertCtx *c, const CsCase *k)
{
    uint32_t session;
    size_t linked;
    FakeClient *fc = start_client(r, c, true, false, &session, &linked);
    if (!fc)
        return;
    char before[256];
    channel_names(fc, before, sizeof(before));
    streams_wait(r, fc);
    if (!migrate_info(r, c, k->rule) || !client_linked_to_target(r, c, fc, k->rule))
        goto out;
    FakeClientMediaStats pb, vmc;
    fake_client_media_stats(fc, SPICE_CHANNEL_PLAYBACK, &pb);
    fake_client_media_stats(fc, SPICE_CHANNEL_PORT, &vmc);
    if (!migrate(r, c, "spice-migration", NULL))
        goto out;
    OnTarget o = {r, fc, 1, 0, false};
    cs_wait(r, switched, &o);
    FakeClientMigrations m;
    fake_client_migrations(fc, &m);
    if (m.switch_host) {
        certify_fail(c, k->rule, "the server sent MIGRATE_SWITCH_HOST to a client that answered MIGRATE_CONNECTED");
        goto out;
    }
    if (!switched(&o) || fake_client_last_error(fc)[0] || !m.semi_seamless || !on_server(fc, &r->dst)) {
        certify_fail(c, k->rule, "the client did not end on the target %s: it is on %s:%u (%u semi-seamless "
                     "switches, %u cancels)%s%s", r->dst.spice_arg, fake_client_server_host(fc),
                     fake_client_server_port(fc), m.semi_seamless, m.cancelled,
                     fake_client_last_error(fc)[0] ? "; " : "", fake_client_last_error(fc));
        goto out;
    }
    if (fake_client_session_id(fc) != session || fake_client_linked_channels(fc) != linked) {
        char after[256];
        channel_names(fc, after, sizeof(after));
        certify_fail(c, k->rule, "on the target: session %u (was %u), %zu channels linked (was %zu: %s)",
                     fake_client_session_id(fc), session, fake_client_linked_channels(fc), linked, before);
        goto out;
    }
    char note[256] = "";
    if (!media_continuous(r, c, fc, SPICE_CHANNEL_PLAYBACK, &pb, note, sizeof(note)) ||
        !media_continuous(r, c, fc, SPICE_CHANNEL_PORT, &vmc, note, sizeof(note)))
        goto out;
    if (same_screen(r, c, &r->dst, fc) && !c->res->note[0])
        snprintf(c->res->note, sizeof(c->res->note), "screen equal to the target's screendump; %s", note);
out:
    cs_client_free(fc);
}

void cs_case_switch_host(CsRun *r, CertCtx *c, const CsCase *k)
{
    uint32_t session;
    size_t linked;
    FakeClient *fc = start_client(r, c, false, false, &session, &linked);
    if (!fc)
        return;
    if (!migrate_info(r, c, k->rule) || !migrate(r, c, "spice-migration", NULL))
        goto out;
    OnTarget o = {r, fc, 0, 1, false};
    cs_wait(r, switched, &o);
    FakeClientMigrations m;
    fake_client_migrations(fc, &m);
    if (!switched(&o) || fake_client_last_error(fc)[0] || m.switch_host != 1 || !on_server(fc, &r->dst)) {
        certify_fail(c, k->rule, "a client without SEMI_SEAMLESS did not start a new session on the target %s: "
                     "it is on %s:%u after %u switch-host, %u semi-seamless%s%s", r->dst.spice_arg,
                     fake_client_server_host(fc), fake_client_server_port(fc), m.switch_host, m.semi_seamless,
                     fake_client_last_error(fc)[0] ? "; " : "", fake_client_last_error(fc));
        goto out;
    }
    /* a new session: the target's own MAIN_INIT (the id may equal the source's) */
    if (fake_client_session_id(fc) == 0 || fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_INIT) != 2) {
        certify_fail(c, k->rule, "after SWITCH_HOST the session is %u (the source's was %u) after %zu MAIN_INIT",
                     fake_client_session_id(fc), session, fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_INIT));
        goto out;
    }
    if (same_screen(r, c, &r->dst, fc) && !c->res->note[0])
        snprintf(c->res->note, sizeof(c->res->note), "new session on the target, screen equal to its screendump");
out:
    cs_client_free(fc);
}

typedef struct Cancelled {
    FakeClient *fc;
    size_t lists;
} Cancelled;

static bool got_cancel(void *opaque)
{
    FakeClient *fc = opaque;
    FakeClientMigrations m;
    fake_client_migrations(fc, &m);
    return m.cancelled || cs_client_gone(fc);
}

static bool answered_attach(void *opaque)
{
    Cancelled *x = opaque;
    return fake_client_count(x->fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_CHANNELS_LIST) > x->lists ||
           fake_client_channels(x->fc) == 0;
}

void cs_case_cancel(CsRun *r, CertCtx *c, const CsCase *k)
{
    uint32_t session;
    size_t linked;
    FakeClient *fc = start_client(r, c, true, false, &session, &linked);
    if (!fc)
        return;
    MigErr *err = NULL;
    json_t *cap = json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability", "pause-before-switchover", "state", 1);
    if (cs_qmp_exec(r->src.qmp, "migrate-set-capabilities", cap, r->timeout_ns, NULL, &err) < 0) {
        char why[400];
        snprintf(why, sizeof(why), "the source cannot hold a migration at pre-switchover (%s): no known moment "
                 "to cancel at", err ? err->msg : "refused");
        mig_err_free(err);
        certify_skip(c, why);
        goto out;
    }
    if (!migrate_info(r, c, k->rule) || !client_linked_to_target(r, c, fc, k->rule) ||
        !migrate(r, c, "spice-migration", "pre-switchover"))
        goto out;
    char st[32];
    if (!qmp(r, c, &r->src, "spice-migration", "migrate_cancel", NULL, NULL) ||
        !wait_migration(r, c, "spice-migration", "cancelled", st, sizeof(st)))
        goto out;
    cs_wait(r, got_cancel, fc);
    FakeClientMigrations m;
    fake_client_migrations(fc, &m);
    if (!m.cancelled) {
        certify_fail(c, k->rule, "migrate_cancel after the client linked to the target sent it no MIGRATE_CANCEL "
                     "(%u semi-seamless, %u switch-host%s%s)", m.semi_seamless, m.switch_host,
                     fake_client_last_error(fc)[0] ? "; " : "", fake_client_last_error(fc));
        goto out;
    }
    /* the source still serves it: main answers, every channel still linked */
    Cancelled x = {fc, fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_CHANNELS_LIST)};
    fake_client_send_raw(fc, SPICE_CHANNEL_MAIN, 0, SPICE_MSGC_MAIN_ATTACH_CHANNELS, NULL, 0);
    cs_wait(r, answered_attach, &x);
    if (!on_server(fc, &r->src) || fake_client_session_id(fc) != session ||
        fake_client_linked_channels(fc) != linked || !answered_attach(&x) || fake_client_channels(fc) == 0 ||
        fake_client_last_error(fc)[0]) {
        certify_fail(c, k->rule, "after MIGRATE_CANCEL the client is on %s:%u, session %u (was %u), %zu of %zu "
                     "channels linked, main %s%s%s", fake_client_server_host(fc), fake_client_server_port(fc),
                     fake_client_session_id(fc), session, fake_client_linked_channels(fc), linked,
                     answered_attach(&x) ? "answering" : "not answering ATTACH_CHANNELS",
                     fake_client_last_error(fc)[0] ? "; " : "", fake_client_last_error(fc));
        goto out;
    }
    json_t *ret = NULL;
    if (qmp(r, c, &r->src, "spice-migration", "query-status", NULL, &ret) &&
        !json_is_true(json_object_get(ret, "running")))
        certify_fail(c, "spice-migration", "after migrate_cancel the source's guest is %s, not running",
                     json_string_value(json_object_get(ret, "status")));
    json_decref(ret);
    if (c->res->st == CERT_ST_PASS)
        snprintf(c->res->note, sizeof(c->res->note), "MIGRATE_CANCEL; the client stayed on the source with its "
                 "%zu channels", linked);
out:
    cs_client_free(fc);
}

static bool begin_seen(void *opaque)
{
    FakeClient *fc = opaque;
    return fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_MIGRATE_BEGIN) ||
           fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_MIGRATE_BEGIN_SEAMLESS) ||
           fake_client_channels(fc) == 0;
}

void cs_case_seamless(CsRun *r, CertCtx *c, const CsCase *k)
{
    uint32_t session;
    size_t linked;
    FakeClient *fc = start_client(r, c, true, true, &session, &linked);
    if (!fc)
        return;
    streams_wait(r, fc);
    if (!migrate_info(r, c, k->rule))
        goto out;
    cs_wait(r, begin_seen, fc);
    /* the pair heard of a migration: whatever follows, it is used */
    char what[160];
    snprintf(what, sizeof(what), "case %s announced a migration", r->case_name);
    cs_side_mark(&r->src, CS_SIDE_USED, what);
    cs_side_mark(&r->dst, CS_SIDE_USED, what);
    if (!fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_MIGRATE_BEGIN_SEAMLESS)) {
        certify_skip(c, fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_MIGRATE_BEGIN)
                            ? "the source offers no seamless migration (MIGRATE_BEGIN to a client with "
                              "SEAMLESS_MIGRATE): start it with seamless-migration=on"
                            : "client_migrate_info sent the client nothing");
        goto out;
    }
    if (fake_client_mig_step(fc) == FAKE_CLIENT_MIG_IDLE && !fake_client_last_error(fc)[0]) {
        certify_skip(c, "the fake client does not follow a seamless migration yet (MIGRATE_BEGIN_SEAMLESS "
                        "was left unanswered)");
        goto out;
    }
    if (!client_linked_to_target(r, c, fc, k->rule))
        goto out;
    FakeClientMediaStats pb, vmc;
    fake_client_media_stats(fc, SPICE_CHANNEL_PLAYBACK, &pb);
    fake_client_media_stats(fc, SPICE_CHANNEL_PORT, &vmc);
    size_t surfaces = fake_client_count(fc, SPICE_CHANNEL_DISPLAY, SPICE_MSG_DISPLAY_SURFACE_CREATE);
    if (!migrate(r, c, "spice-migration", NULL))
        goto out;
    OnTarget o = {r, fc, 0, 0, true};
    cs_wait(r, switched, &o);
    FakeClientMigrations m;
    fake_client_migrations(fc, &m);
    /* the pair offered seamless migration (BEGIN_SEAMLESS): the target must
     * ACK and the switch be seamless, not a fallback */
    size_t acks = fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_MIGRATE_DST_SEAMLESS_ACK);
    size_t nacks = fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_MIGRATE_DST_SEAMLESS_NACK);
    if (nacks || m.semi_seamless || m.switch_host) {
        certify_fail(c, "spice-seamless-ack", "the source offered seamless migration (MIGRATE_BEGIN_SEAMLESS) but "
                     "it fell back: %s; the client made %u seamless, %u semi-seamless and %u switch-host switch(es)",
                     nacks ? "the target answered DO_SEAMLESS with NACK"
                     : acks ? "the target ACKed DO_SEAMLESS and still did not take the migration data"
                            : "the client sent no DO_SEAMLESS (the target's main link offers no SEAMLESS_MIGRATE)",
                     m.seamless, m.semi_seamless, m.switch_host);
        goto out;
    }
    size_t inits = fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_INIT);
    if (!on_server(fc, &r->dst) || m.switch_host || m.semi_seamless || fake_client_session_id(fc) != session ||
        fake_client_linked_channels(fc) != linked || fake_client_last_error(fc)[0]) {
        certify_fail(c, k->rule, "the client is on %s:%u, session %u (was %u), %zu of %zu channels, after %u "
                     "semi-seamless and %u switch-host switches%s%s", fake_client_server_host(fc),
                     fake_client_server_port(fc), fake_client_session_id(fc), session,
                     fake_client_linked_channels(fc), linked, m.semi_seamless, m.switch_host,
                     fake_client_last_error(fc)[0] ? "; " : "", fake_client_last_error(fc));
        goto out;
    }
    if (inits != 1) {
        certify_fail(c, k->rule, "the target sent MAIN_INIT after a seamless switch (%zu in the session)", inits);
        goto out;
    }
    char note[256] = "";
    if (!media_continuous(r, c, fc, SPICE_CHANNEL_PLAYBACK, &pb, note, sizeof(note)) ||
        !media_continuous(r, c, fc, SPICE_CHANNEL_PORT, &vmc, note, sizeof(note)))
        goto out;
    size_t resent = fake_client_count(fc, SPICE_CHANNEL_DISPLAY, SPICE_MSG_DISPLAY_SURFACE_CREATE) - surfaces;
    if (resent) {
        certify_fail(c, k->rule, "the target created %zu surface(s) again after a seamless switch", resent);
        goto out;
    }
    if (same_screen(r, c, &r->dst, fc) && !c->res->note[0])
        snprintf(c->res->note, sizeof(c->res->note), "no MAIN_INIT, no surface re-sent, screen equal; %s; "
                 "DO_SEAMLESS ACKed %zu, fell back 0", note, acks);
out:
    cs_client_free(fc);
}
