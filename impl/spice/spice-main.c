/*
 * spice-main.c - the main channel (spice-main.h).
 *
 * Start-up as spice-server does it: MAIN_INIT, then NAME and UUID when the
 * client has NAME_AND_UUID; CHANNELS_LIST only after the client's
 * ATTACH_CHANNELS.  The server always advertises every main capability
 * (SEMI_SEAMLESS first of all: spice-gtk honours MIGRATE_END only from a
 * server that advertised it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "spice-main.h"
#include "spice-migrate-data.h"

#define AGENT_TOKENS 10u
#define MIGRATE_TIMEOUT_NS 10000000000ull

typedef enum MainMig {
    MAIN_MIG_NONE,      /* not part of a migration */
    MAIN_MIG_BEGUN,     /* MIGRATE_BEGIN sent, no answer yet */
    MAIN_MIG_CONNECTED, /* MIGRATE_CONNECTED */
    MAIN_MIG_FAILED,    /* CONNECT_ERROR, or no answer in time */
    MAIN_MIG_DRAINING,  /* completed: MIGRATE_END waits for a PONG on each channel */
    MAIN_MIG_SENT_AWAY, /* MIGRATE_END or SWITCH_HOST sent: leaving */
    MAIN_MIG_CANCELLED, /* MIGRATE_CANCEL sent: staying */
} MainMig;

#define MAX_DRAIN 16 /* channels of one client that can wait for a PONG */

/* Per client. */
typedef struct MainCC {
    MainMig mig;
    bool seamless; /* MIGRATE_BEGIN_SEAMLESS sent (cleared by a plain MIGRATE_CONNECTED: the target NACKed) */
    /* DRAINING: the PINGs not yet answered, by channel client */
    struct {
        SpiceChannelClient *cc;
        uint32_t id;
    } pings[MAX_DRAIN];
    size_t npings;
    uint64_t leave_by; /* SENT_AWAY: closed if still here at this time */
} MainCC;

struct SpiceMain {
    SpiceServer *server;
    SpiceChannel *ch;
    bool have_dest;
    char host[256], cert_subject[256];
    int port, tls_port;
    /* the migration in progress */
    bool begun;
    uint32_t waiting;
    SpiceMigrateConnected done;
    void *done_opaque;
    int result;
    MigLoopSource *timer, *done_defer, *leave_timer, *completed_defer, *drain_timer;
    uint32_t leaving; /* clients sent away that have not left yet */
    SpiceMainMigrateStats stats;
};

static uint32_t migration_version(const SpiceServer *s)
{
    uint32_t v = spice_server_config(s)->migration_version;
    return v ? v : SPICE_MIG_PROTOCOL_VERSION;
}

static uint64_t migrate_timeout(const SpiceMain *m)
{
    uint64_t t = spice_server_config(m->server)->migrate_timeout_ns;
    return t ? t : MIGRATE_TIMEOUT_NS;
}

static void main_caps(SpiceChannel *ch, SpiceCapSet *caps)
{
    if (!spice_server_config(spice_channel_server(ch))->no_semi_seamless)
        spice_caps_set(caps, SPICE_MAIN_CAP_SEMI_SEAMLESS_MIGRATE);
    spice_caps_set(caps, SPICE_MAIN_CAP_NAME_AND_UUID);
    spice_caps_set(caps, SPICE_MAIN_CAP_AGENT_CONNECTED_TOKENS);
    if (!spice_server_config(spice_channel_server(ch))->no_seamless)
        spice_caps_set(caps, SPICE_MAIN_CAP_SEAMLESS_MIGRATE);
}

static int send_init(SpiceChannelClient *cc)
{
    SpiceServer *s = spice_channel_server(spice_cc_channel(cc));
    const SpiceServerConfig *cfg = spice_server_config(s);
    uint32_t displays = 0;
    for (size_t i = 0; i < spice_server_channel_count(s); i++)
        displays += spice_channel_type(spice_server_channel_at(s, i)) == SPICE_CHANNEL_DISPLAY;
    SpiceMsgMainInit init = {
        .session_id = spice_client_session_id(spice_cc_client(cc)),
        .display_channels_hint = displays,
        .supported_mouse_modes = SPICE_MOUSE_MODE_SERVER,
        .current_mouse_mode = SPICE_MOUSE_MODE_SERVER,
        .agent_connected = 0,
        .agent_tokens = AGENT_TOKENS,
        .multi_media_time = (uint32_t)(mig_loop_now_ns(spice_server_loop(s)) / 1000000u),
        .ram_hint = 0,
    };
    int r = spice_cc_send(cc, SPICE_MSG_MAIN_INIT, &init);
    if (r == 0 && spice_caps_has(&spice_cc_link(cc)->channel, SPICE_MAIN_CAP_NAME_AND_UUID)) {
        const char *name = cfg->name ? cfg->name : "migcert";
        SpiceMsgName n = {.name = {.len = (uint32_t)strlen(name) + 1, .data = (uint8_t *)name}};
        SpiceMsgUuid u;
        memcpy(u.uuid, cfg->uuid, sizeof(u.uuid));
        r = spice_cc_send(cc, SPICE_MSG_MAIN_NAME, &n);
        if (r == 0)
            r = spice_cc_send(cc, SPICE_MSG_MAIN_UUID, &u);
    }
    return r;
}

static void begin_finished(SpiceMain *m);
static void drain_timeout(void *opaque);

static int main_connect(SpiceChannelClient *cc, MigErr **errp)
{
    spice_cc_set_priv(cc, mig_malloc0(sizeof(MainCC)));
    /* a migrating client gets its MAIN_INIT after MSGC_MAIN_MIGRATE_END */
    if (spice_client_migrating_in(spice_cc_client(cc)))
        return 0;
    int r = send_init(cc);
    return r < 0 ? mig_err_set(errp, r, "cannot queue MAIN_INIT") : 0;
}

static void completed_cb(void *opaque)
{
    SpiceMain *m = opaque;
    m->completed_defer = NULL;
    if (m->leave_timer) {
        mig_loop_remove(spice_server_loop(m->server), m->leave_timer);
        m->leave_timer = NULL;
    }
    spice_server_emit(m->server, SPICE_SERVER_EV_MIGRATE_COMPLETED, NULL);
}

/* The hand-over is over once every client sent away has left. */
static void hand_over_done(SpiceMain *m)
{
    if (!m->completed_defer)
        m->completed_defer = mig_loop_defer(spice_server_loop(m->server), completed_cb, m);
}

static void main_disconnect(SpiceChannelClient *cc)
{
    SpiceMain *m = spice_channel_priv(spice_cc_channel(cc));
    MainCC *mc = spice_cc_priv(cc);
    if (m && mc && (mc->mig == MAIN_MIG_SENT_AWAY || mc->mig == MAIN_MIG_DRAINING) && m->leaving &&
        --m->leaving == 0)
        hand_over_done(m);
    if (m && mc && mc->mig == MAIN_MIG_BEGUN && m->waiting) {
        /* a client that leaves while the source waits for its answer */
        mc->mig = MAIN_MIG_FAILED;
        m->stats.connect_errors++;
        if (--m->waiting == 0)
            begin_finished(m);
    }
    free(mc);
    spice_cc_set_priv(cc, NULL);
}

static int send_channels_list(SpiceChannelClient *cc)
{
    SpiceServer *s = spice_channel_server(spice_cc_channel(cc));
    size_t n = spice_server_channel_count(s);
    SpiceChannelRef *refs = mig_malloc0((n ? n : 1) * sizeof(*refs));
    uint32_t k = 0;
    for (size_t i = 0; i < n; i++) {
        SpiceChannel *ch = spice_server_channel_at(s, i);
        if (spice_channel_type(ch) == SPICE_CHANNEL_MAIN)
            continue;
        refs[k++] = (SpiceChannelRef){spice_channel_type(ch), spice_channel_id(ch)};
    }
    SpiceMsgChannelsList list = {.channels = {.n = k, .items = refs}};
    int r = spice_cc_send(cc, SPICE_MSG_MAIN_CHANNELS_LIST, &list);
    free(refs);
    return r;
}

static void done_cb(void *opaque)
{
    SpiceMain *m = opaque;
    m->done_defer = NULL;
    if (m->done)
        m->done(m->done_opaque, m->result);
}

/* Every client answered (or the time is up): tell whoever waits. */
static void begin_finished(SpiceMain *m)
{
    if (m->timer) {
        mig_loop_remove(spice_server_loop(m->server), m->timer);
        m->timer = NULL;
    }
    if (!m->done_defer)
        m->done_defer = mig_loop_defer(spice_server_loop(m->server), done_cb, m);
}

static MainCC *main_cc_of(SpiceClient *c, SpiceChannelClient **ccp)
{
    SpiceChannelClient *cc = spice_client_find(c, SPICE_CHANNEL_MAIN, 0);
    if (ccp)
        *ccp = cc;
    return cc ? spice_cc_priv(cc) : NULL;
}

static void begin_timeout(void *opaque)
{
    SpiceMain *m = opaque;
    m->timer = NULL;
    SpiceServer *s = m->server;
    for (size_t i = 0; i < spice_server_client_count(s); i++) {
        MainCC *mc = main_cc_of(spice_server_client_at(s, i), NULL);
        if (mc && mc->mig == MAIN_MIG_BEGUN) {
            mc->mig = MAIN_MIG_FAILED;
            m->stats.timed_out++;
        }
    }
    m->waiting = 0;
    if (m->result == 0)
        m->result = -ETIMEDOUT;
    begin_finished(m);
}

void spice_main_set_migrate_dest(SpiceMain *m, const char *host, int port, int tls_port, const char *cert_subject)
{
    snprintf(m->host, sizeof(m->host), "%s", host ? host : "");
    snprintf(m->cert_subject, sizeof(m->cert_subject), "%s", cert_subject ? cert_subject : "");
    m->port = port;
    m->tls_port = tls_port;
    m->have_dest = true;
}

bool spice_main_has_migrate_dest(const SpiceMain *m)
{
    return m->have_dest;
}

static SpiceDstInfo dst_info(const SpiceMain *m)
{
    SpiceDstInfo d = {.port = m->port >= 0 ? (uint16_t)m->port : 0xffff,
                      .sport = m->tls_port >= 0 ? (uint16_t)m->tls_port : 0xffff,
                      .host = {.len = (uint32_t)strlen(m->host) + 1, .data = (uint8_t *)m->host}};
    if (m->cert_subject[0])
        d.cert_subject = (SpiceMBytes){.len = (uint32_t)strlen(m->cert_subject) + 1,
                                       .data = (uint8_t *)m->cert_subject};
    return d;
}

int spice_main_migrate_begin(SpiceMain *m, SpiceMigrateConnected done, void *opaque, MigErr **errp)
{
    if (!m->have_dest)
        return mig_err_set(errp, -EINVAL, "no destination: client_migrate_info first");
    MIG_FAULT_RETURN_ERR(MIG_FAULT_SPICE_MAIN_MIGRATE_BEGIN, errp, "MIGRATE_BEGIN cannot be sent (fault)");
    /* a second client_migrate_info before the migration ended (the client
     * could not reach the first target, or management changed its mind):
     * as spice-server, the pending one is cancelled (MIGRATE_CANCEL to the
     * clients it reached) and this one starts afresh */
    if (m->begun)
        spice_main_migrate_end(m, false);
    SpiceServer *s = m->server;
    m->begun = true;
    m->done = done;
    m->done_opaque = opaque;
    m->result = 0;
    m->waiting = 0;
    memset(&m->stats, 0, sizeof(m->stats));
    SpiceMsgMigrateBegin b = {.dst = dst_info(m)};
    SpiceMsgMigrateBeginSeamless bs = {.dst = b.dst, .src_mig_version = migration_version(s)};
    /* seamless: enabled on this server, one client only (spice.md 8.2) */
    bool one = spice_server_client_count(s) == 1;
    for (size_t i = 0; i < spice_server_client_count(s); i++) {
        SpiceChannelClient *cc;
        MainCC *mc = main_cc_of(spice_server_client_at(s, i), &cc);
        if (!mc || spice_client_migrating_in(spice_cc_client(cc)))
            continue;
        mc->mig = MAIN_MIG_NONE;
        /* a client without SEMI_SEAMLESS, or a server that does not offer
         * it, gets the switch-host path at the end */
        if (!spice_caps_has(&spice_cc_link(cc)->channel, SPICE_MAIN_CAP_SEMI_SEAMLESS_MIGRATE) ||
            spice_server_config(s)->no_semi_seamless)
            continue;
        const SpiceCapSet *caps = &spice_cc_link(cc)->channel;
        mc->seamless = one && spice_server_config(s)->seamless_migration && !spice_server_config(s)->no_seamless &&
                       spice_caps_has(caps, SPICE_MAIN_CAP_SEAMLESS_MIGRATE) &&
                       spice_caps_has(caps, SPICE_MAIN_CAP_AGENT_CONNECTED_TOKENS);
        int r = mc->seamless ? spice_cc_send(cc, SPICE_MSG_MAIN_MIGRATE_BEGIN_SEAMLESS, &bs)
                             : spice_cc_send(cc, SPICE_MSG_MAIN_MIGRATE_BEGIN, &b);
        if (r == 0) {
            mc->mig = MAIN_MIG_BEGUN;
            m->waiting++;
            m->stats.begun++;
        }
    }
    MigLoop *loop = spice_server_loop(s);
    if (m->waiting)
        m->timer = mig_loop_timer_add(loop, mig_loop_now_ns(loop) + migrate_timeout(m), begin_timeout, m);
    else
        begin_finished(m);
    return 0;
}

/* Each client sent away has the migrate timeout from the moment it was
 * told to leave (MIGRATE_END after a drain can come a whole timeout after
 * the migration completed); the one timer is due at the earliest of them. */
static void leave_timeout(void *opaque)
{
    SpiceMain *m = opaque;
    m->leave_timer = NULL;
    SpiceServer *s = m->server;
    MigLoop *loop = spice_server_loop(s);
    uint64_t now = mig_loop_now_ns(loop), next = 0;
    for (size_t i = 0; i < spice_server_client_count(s); i++) {
        SpiceChannelClient *cc;
        MainCC *mc = main_cc_of(spice_server_client_at(s, i), &cc);
        if (!mc || mc->mig != MAIN_MIG_SENT_AWAY)
            continue;
        if (mc->leave_by <= now)
            spice_conn_close(spice_cc_conn(cc), 0, "the client did not leave after the migration");
        else if (!next || mc->leave_by < next)
            next = mc->leave_by;
    }
    if (next)
        m->leave_timer = mig_loop_timer_add(loop, next, leave_timeout, m);
}

/* The client is told to leave (MIGRATE_END, SWITCH_HOST or the seamless
 * hand-over): its wait to go starts now. */
static void sent_away(SpiceMain *m, MainCC *mc)
{
    MigLoop *loop = spice_server_loop(m->server);
    mc->mig = MAIN_MIG_SENT_AWAY;
    mc->leave_by = mig_loop_now_ns(loop) + migrate_timeout(m);
    if (!m->leave_timer)
        m->leave_timer = mig_loop_timer_add(loop, mc->leave_by, leave_timeout, m);
}

/* MIGRATE_END to a client whose channels have all been read. */
static void send_end(SpiceMain *m, SpiceChannelClient *cc, MainCC *mc)
{
    mc->npings = 0;
    sent_away(m, mc);
    spice_cc_send(cc, SPICE_MSG_MAIN_MIGRATE_END, NULL);
    m->stats.ended++;
}

/*
 * The guest stopped, so nothing new is queued for this client: a PING on
 * each of its other channels, and MIGRATE_END once every one is answered.
 * A client drops what it has not read on its old connections when it
 * switches (spice-gtk does, and so does the fake client); a PONG says the
 * channel's earlier messages were read.  Bounded by the migrate timeout.
 */
static void start_drain(SpiceMain *m, SpiceChannelClient *main_cc, MainCC *mc)
{
    SpiceServer *s = m->server;
    SpiceClient *client = spice_cc_client(main_cc);
    mc->npings = 0;
    mc->mig = MAIN_MIG_DRAINING;
    for (size_t i = 0; i < spice_server_channel_count(s) && mc->npings < MAX_DRAIN; i++) {
        SpiceChannel *ch = spice_server_channel_at(s, i);
        SpiceChannelClient *cc = spice_client_find(client, spice_channel_type(ch), spice_channel_id(ch));
        if (!cc || cc == main_cc)
            continue;
        int id = spice_conn_ping(spice_cc_conn(cc), 0);
        if (id > 0) {
            mc->pings[mc->npings].cc = cc;
            mc->pings[mc->npings].id = (uint32_t)id;
            mc->npings++;
        }
    }
    if (mc->npings == 0) {
        send_end(m, main_cc, mc);
        return;
    }
    MigLoop *loop = spice_server_loop(s);
    if (!m->drain_timer)
        m->drain_timer = mig_loop_timer_add(loop, mig_loop_now_ns(loop) + migrate_timeout(m), drain_timeout, m);
}

static void drain_timeout(void *opaque)
{
    SpiceMain *m = opaque;
    m->drain_timer = NULL;
    SpiceServer *s = m->server;
    for (size_t i = 0; i < spice_server_client_count(s); i++) {
        SpiceChannelClient *cc;
        MainCC *mc = main_cc_of(spice_server_client_at(s, i), &cc);
        if (mc && mc->mig == MAIN_MIG_DRAINING)
            send_end(m, cc, mc); /* a channel that never answered: it gets what it got */
    }
}

static void on_pong(void *opaque, SpiceChannelClient *cc, uint32_t id)
{
    SpiceMain *m = opaque;
    SpiceChannelClient *main_cc;
    MainCC *mc = main_cc_of(spice_cc_client(cc), &main_cc);
    if (!mc || mc->mig != MAIN_MIG_DRAINING)
        return;
    for (size_t i = 0; i < mc->npings; i++)
        if (mc->pings[i].cc == cc && mc->pings[i].id == id) {
            mc->pings[i] = mc->pings[--mc->npings];
            break;
        }
    if (mc->npings == 0)
        send_end(m, main_cc, mc);
}

void spice_main_migrate_end(SpiceMain *m, bool completed)
{
    SpiceServer *s = m->server;
    MigLoop *loop = spice_server_loop(s);
    if (m->timer) {
        mig_loop_remove(loop, m->timer);
        m->timer = NULL;
    }
    if (m->done_defer) {
        mig_loop_remove(loop, m->done_defer);
        m->done_defer = NULL;
    }
    m->waiting = 0;
    m->leaving = 0;
    SpiceMsgMigrateBegin sw = {.dst = dst_info(m)};
    for (size_t i = 0; i < spice_server_client_count(s); i++) {
        SpiceChannelClient *cc;
        MainCC *mc = main_cc_of(spice_server_client_at(s, i), &cc);
        if (!mc || spice_client_migrating_in(spice_cc_client(cc)))
            continue;
        if (!completed) {
            if (mc->mig == MAIN_MIG_BEGUN || mc->mig == MAIN_MIG_CONNECTED || mc->mig == MAIN_MIG_FAILED) {
                spice_cc_send(cc, SPICE_MSG_MAIN_MIGRATE_CANCEL, NULL);
                m->stats.cancelled++;
                mc->mig = MAIN_MIG_CANCELLED;
            } else {
                mc->mig = MAIN_MIG_NONE;
            }
            continue;
        }
        m->leaving++;
        if (mc->mig == MAIN_MIG_CONNECTED && mc->seamless) {
            /* every channel: MIGRATE after what it queued, then its data */
            sent_away(m, mc);
            spice_client_seamless_out(spice_cc_client(cc));
            m->stats.seamless++;
            continue;
        }
        if (mc->mig == MAIN_MIG_CONNECTED) {
            start_drain(m, cc, mc);
            continue;
        }
        if (m->have_dest) {
            spice_cc_send(cc, SPICE_MSG_MAIN_MIGRATE_SWITCH_HOST, &sw);
            m->stats.switched++;
        }
        sent_away(m, mc);
    }
    m->begun = false;
    if (completed && !m->leaving)
        hand_over_done(m); /* nobody to wait for */
}

void spice_main_migrate_stats(const SpiceMain *m, SpiceMainMigrateStats *out)
{
    *out = m->stats;
}

static void main_channel_gone(SpiceChannel *ch)
{
    SpiceMain *m = spice_channel_priv(ch);
    MigLoop *loop = spice_server_loop(m->server);
    if (m->timer)
        mig_loop_remove(loop, m->timer);
    if (m->done_defer)
        mig_loop_remove(loop, m->done_defer);
    if (m->leave_timer)
        mig_loop_remove(loop, m->leave_timer);
    if (m->completed_defer)
        mig_loop_remove(loop, m->completed_defer);
    if (m->drain_timer)
        mig_loop_remove(loop, m->drain_timer);
    free(m);
}

/* Target: DO_SEAMLESS from a migrating client.  ACK when this server has
 * that one client and the source's version is at most ours (no lower
 * bound, and whatever our own seamless option: the source decides); a
 * server without seamless migration (which does not offer SEAMLESS)
 * NACKs. */
static int do_seamless(SpiceMain *m, SpiceChannelClient *cc, uint32_t src_version, MigErr **errp)
{
    MIG_FAULT_RETURN_ERR(MIG_FAULT_SPICE_MAIN_DO_SEAMLESS, errp, "DO_SEAMLESS cannot be taken (fault)");
    SpiceServer *s = spice_channel_server(spice_cc_channel(cc));
    bool ok = !spice_server_config(s)->no_seamless && src_version <= migration_version(s) &&
              spice_server_client_count(s) == 1;
    int r = spice_cc_send(cc, ok ? SPICE_MSG_MAIN_MIGRATE_DST_SEAMLESS_ACK : SPICE_MSG_MAIN_MIGRATE_DST_SEAMLESS_NACK,
                          NULL);
    if (r < 0)
        return mig_err_set(errp, r, "cannot queue the answer to DO_SEAMLESS");
    mig_trace_log(spice_server_loop(s)->trace, mig_loop_now_ns(spice_server_loop(s)), spice_server_config(s)->who,
                  "DO_SEAMLESS version %u (ours %u, %zu client(s)): %s", src_version, migration_version(s),
                  spice_server_client_count(s), ok ? "ACK" : "NACK");
    if (ok) {
        m->stats.acked++;
        spice_client_begin_seamless_in(spice_cc_client(cc));
    } else {
        m->stats.nacked++;
    }
    return 0;
}

/* Source: the main blob.  No agent here: tokens, no data in flight. */
static int main_migrate_save(SpiceChannelClient *cc, uint8_t **blob, size_t *len, MigErr **errp)
{
    SpiceMigMain d = {.h = {SPICE_MIG_MAGIC_MAIN, SPICE_MIG_VERSION_MAIN},
                      .agent_base = {.version = SPICE_MIG_VERSION_CHAR_DEVICE, .num_client_tokens = AGENT_TOKENS}};
    return spice_mig_encode(&spice_mig_main_desc, &d, NULL, 0, blob, len, errp);
}

/* Target: the main blob came (first on main): checked, then the session
 * goes on (no MAIN_INIT; MULTI_MEDIA_TIME as spice-server). */
static int main_migrate_load(SpiceChannelClient *cc, const uint8_t *blob, size_t len, MigErr **errp)
{
    SpiceMigMain d;
    int r = spice_mig_decode("main", &spice_mig_main_desc, blob, len, SPICE_MIG_MAGIC_MAIN, SPICE_MIG_VERSION_MAIN,
                             &d, errp);
    if (r < 0)
        return r;
    const uint8_t *data;
    size_t fixed = spice_marshal_fixed_size(&spice_mig_main_desc);
    r = spice_mig_char_device_data("main", &d.agent_base, blob, len, fixed, &data, errp);
    if (r == 0 && d.msg_header_partial_len &&
        (d.msg_header_ptr < fixed || d.msg_header_ptr > len || d.msg_header_partial_len > len - d.msg_header_ptr))
        r = mig_err_set(errp, -EPROTO, "main migration data: a partial agent header of %u byte(s) at %u lies outside "
                        "the %zu-byte blob", d.msg_header_partial_len, d.msg_header_ptr, len);
    spice_marshal_free(&spice_mig_main_desc, &d);
    if (r < 0)
        return r;
    /* no agent: what it had in flight has nowhere to go, as with spice-server without one */
    SpiceServer *s = spice_channel_server(spice_cc_channel(cc));
    SpiceMsgU32 t = {(uint32_t)(mig_loop_now_ns(spice_server_loop(s)) / 1000000u)};
    return spice_cc_send(cc, SPICE_MSG_MAIN_MULTI_MEDIA_TIME, &t);
}

static int main_on_message(SpiceChannelClient *cc, const SpiceMsgInfo *mi, void *body, uint32_t size,
                           MigErr **errp)
{
    SpiceMain *m = spice_channel_priv(spice_cc_channel(cc));
    MainCC *mc = spice_cc_priv(cc);
    SpiceClient *client = spice_cc_client(cc);
    if (spice_client_migrating_in(client) && mi->id == SPICE_MSGC_MAIN_MIGRATE_DST_DO_SEAMLESS)
        return do_seamless(m, cc, ((SpiceMsgU32 *)body)->v, errp);
    if (spice_client_migrating_in(client)) {
        /* the target: nothing but the end of the migration */
        if (mi->id != SPICE_MSGC_MAIN_MIGRATE_END)
            return mig_err_set(errp, -EPROTO, "%s from a migrating client before its MIGRATE_END", mi->name);
        MIG_FAULT_RETURN_ERR(MIG_FAULT_SPICE_MAIN_MIGRATE_END, errp,
                             "the client's MIGRATE_END cannot be taken (fault)");
        spice_client_end_migration_in(client);
        int r = send_init(cc);
        return r < 0 ? mig_err_set(errp, r, "cannot queue MAIN_INIT") : 0;
    }
    switch (mi->id) {
    case SPICE_MSGC_MAIN_MIGRATE_CONNECTED_SEAMLESS:
        if (m && mc->mig == MAIN_MIG_BEGUN && !mc->seamless)
            return mig_err_set(errp, -EPROTO, "MIGRATE_CONNECTED_SEAMLESS to a MIGRATE_BEGIN that was not seamless");
        /* fall through */
    case SPICE_MSGC_MAIN_MIGRATE_CONNECTED:
    case SPICE_MSGC_MAIN_MIGRATE_CONNECT_ERROR:
        if (m && mc->mig == MAIN_MIG_FAILED) {
            /* too late: the wait timed out and this client goes by SWITCH_HOST;
             * as spice-server, a late CONNECTED gets MIGRATE_CANCEL so that the
             * client drops its links to the target */
            m->stats.late_answers++;
            return mi->id == SPICE_MSGC_MAIN_MIGRATE_CONNECTED ? spice_cc_send(cc, SPICE_MSG_MAIN_MIGRATE_CANCEL, NULL)
                                                               : 0;
        }
        if (m && (mc->mig == MAIN_MIG_SENT_AWAY || mc->mig == MAIN_MIG_CANCELLED)) {
            /* the migration ended before the answer arrived: it crossed our
             * SWITCH_HOST or MIGRATE_CANCEL on the wire, and the client
             * follows that */
            m->stats.late_answers++;
            return 0;
        }
        if (!m || mc->mig != MAIN_MIG_BEGUN)
            return mig_err_set(errp, -EPROTO, "%s without a MIGRATE_BEGIN to answer", mi->name);
        if (mi->id != SPICE_MSGC_MAIN_MIGRATE_CONNECT_ERROR) {
            mc->mig = MAIN_MIG_CONNECTED;
            m->stats.connected++;
            /* a plain CONNECTED after BEGIN_SEAMLESS: the target NACKed, semi-seamless goes on */
            if (mi->id == SPICE_MSGC_MAIN_MIGRATE_CONNECTED && mc->seamless) {
                mc->seamless = false;
                m->stats.seamless_fallbacks++;
            }
        } else {
            mc->mig = MAIN_MIG_FAILED;
            m->stats.connect_errors++;
            if (m->result == 0)
                m->result = -ECONNREFUSED;
        }
        if (--m->waiting == 0)
            begin_finished(m);
        return 0;
    case SPICE_MSGC_MAIN_MIGRATE_END:
        return mig_err_set(errp, -EPROTO, "MIGRATE_END from a client that is not migrating here");
    case SPICE_MSGC_MAIN_ATTACH_CHANNELS:
        return send_channels_list(cc);
    case SPICE_MSGC_MAIN_MOUSE_MODE_REQUEST: {
        /* only server mode is offered: the answer names it whatever was asked */
        SpiceMsgMouseMode mm = {.supported = SPICE_MOUSE_MODE_SERVER, .current = SPICE_MOUSE_MODE_SERVER};
        return spice_cc_send(cc, SPICE_MSG_MAIN_MOUSE_MODE, &mm);
    }
    case SPICE_MSGC_MAIN_CLIENT_INFO:
    case SPICE_MSGC_MAIN_AGENT_START:
    case SPICE_MSGC_MAIN_AGENT_TOKEN:
        return 0; /* no agent: tokens have nothing to pace */
    case SPICE_MSGC_MAIN_AGENT_DATA:
        return 0; /* no agent: spice-server drops client data for an absent agent too */
    default:
        return mig_err_set(errp, -EPROTO, "unexpected %s", mi->name);
    }
}

static const SpiceChannelClass main_class = {
    .name = "main",
    .max_in = 64 * 1024,
    .caps = main_caps,
    .connect = main_connect,
    .on_message = main_on_message,
    .disconnect = main_disconnect,
    .channel_gone = main_channel_gone,
    .migrate_flags = SPICE_MIGRATE_NEED_FLUSH | SPICE_MIGRATE_NEED_DATA_TRANSFER,
    .migrate_save = main_migrate_save,
    .migrate_load = main_migrate_load,
};

SpiceMain *spice_main_add(SpiceServer *s)
{
    SpiceMain *m = mig_malloc0(sizeof(*m));
    m->server = s;
    m->port = m->tls_port = -1;
    m->ch = spice_server_add_channel(s, SPICE_CHANNEL_MAIN, 0, &main_class, m);
    spice_server_set_pong_hook(s, on_pong, m);
    return m;
}
