/*
 * exec-spice.c - SPICE in a simulated case (scenarios/README.md "SPICE"):
 * each machine's SPICE server and devices, the fake client on its own side
 * view of the loop, its connections as sim links the scenario can drop,
 * partition or slow, management's client_migrate_info, the `client` step
 * and the client's scripted faults (target refused, failed, hanging or
 * slow; a disconnect at a message or a migration step; a delayed
 * MSGC_MIGRATE_END).
 *
 * Called by: exec-side.c (a side's server and devices), exec-case.c (the
 * client after set-up, freed before the machines), exec-steps.c (before a
 * migrate, the two SPICE steps, a kill), oracle-spice.c.
 *
 * The client's host names are "src" (port 1) and "dst" (port 2); a
 * connection goes to whichever machine is on that side now (a restarted
 * destination too), through a new sim link (mem pair) with the client's
 * link parameters, its client end on the client side view
 * (MIG_FAULT_SIDE_CLIENT) and its server end on the server's side view, so
 * fault specs count SPICE hits per side.
 * Invariants: everything here hangs off run->spice and is freed by
 * exec__spice_free before either machine goes; the client is only ever
 * freed from the loop or the harness, never inside one of its callbacks.
 */
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "common/buf.h"
#include "devices/fake-spice.h"
#include "exec-internal.h"

/* ---- a side's server and devices ---- */

int exec__spice_side_create(Run *run, Side *sd, MigErr **errp)
{
    const ScnSpice *sp = &run->s->spice;
    if (!sp->on)
        return 0;
    char who[32];
    snprintf(who, sizeof(who), "%s.spice", mig_fault_side_names[sd->sl->side]);
    SpiceServerConfig sc = {.ticketing = sp->password[0] != 0,
                            .password = sp->password[0] ? sp->password : NULL,
                            .migrate_timeout_ns = sp->migrate_timeout_ns,
                            .seamless_migration = sp->seamless,
                            .migrate_data_timeout_ns = sp->migrate_data_timeout_ns,
                            .pixmap_cache_migration = sp->pixmap_cache_migration, .glz = sp->glz,
                            .who = who};
    /* what it speaks of migration is its release's */
    if (mig_release_spice_config(sd->release, &sc) < 0)
        return mig_err_set(errp, -EINVAL, "%s SPICE: unknown release '%s'", mig_fault_side_names[sd->sl->side],
                           sd->release ? sd->release : "");
    /* the key the server would make, made once per process (exec-spice-keys.c) */
    sc.key = exec__spice_key(mig_machine_loop(sd->m));
    MigFaultSide prev;
    exec__side_enter(sd->sl, &prev);
    int rc = mig_machine_add_spice(sd->m, &sc, errp);
    FakeSpiceOptions fo = {.width = sp->width, .height = sp->height, .heads = sp->heads,
                           .vmc_bytes_per_tick = sp->vmc_rate, .release = sd->release,
                           .machine_type = sd->machine_type};
    if (rc == 0 && !(sd->spice = fake_spice_new(sd->m, &fo, errp)))
        rc = -EINVAL;
    fault_injector_set_side(run->inj, prev);
    if (rc < 0)
        mig_err_prepend(errp, "%s SPICE", mig_fault_side_names[sd->sl->side]);
    return rc;
}

void exec__spice_side_destroy(Side *sd)
{
    fake_spice_free(sd->spice);
    sd->spice = NULL;
}

/* ---- the SPICE pair rules ---- */

static ScnClientMig kind_of(MigSpiceMig k)
{
    return k == MIG_SPICE_MIG_SEAMLESS        ? SCN_CLIENT_MIG_SEAMLESS
           : k == MIG_SPICE_MIG_SEMI_SEAMLESS ? SCN_CLIENT_MIG_SEMI_SEAMLESS
                                              : SCN_CLIENT_MIG_SWITCH_HOST;
}

void exec__spice_pair(const Scenario *s, const char *src_rel, const char *dst_rel, ExecSpicePair *out)
{
    memset(out, 0, sizeof(*out));
    const ScnClient *cl = &s->client;
    out->on = s->spice.on && cl->present;
    if (!out->on)
        return;
    MigSpicePrediction own;
    mig_spice_pair_predict(s->src.release, s->dst.release, s->spice.seamless, !cl->old, !cl->no_seamless, &own);
    mig_spice_pair_predict(src_rel, dst_rel, s->spice.seamless, !cl->old, !cl->no_seamless, &out->p);
    out->same_rule = !strcmp(own.reason, out->p.reason);
    out->own = kind_of(own.kind);
    out->pair = kind_of(out->p.kind);
    bool steps = false;
    for (size_t i = 0; i < s->nsteps; i++)
        steps |= s->steps[i].kind == SCN_STEP_CLIENT;
    out->scripted = steps || cl->target != SCN_TARGET_ACCEPT || cl->disconnect_at || cl->disconnect_at_message ||
                    cl->blob_fault || s->spice.target_client || s->client_error || s->client_channel_lost ||
                    s->outcome != SCN_OUTCOME_COMPLETED ||
                    (s->client_end != SCN_CLIENT_END_AUTO && s->client_end != SCN_CLIENT_END_DST) ||
                    (s->client_mig != SCN_CLIENT_MIG_ANY && s->client_mig != out->own);
}

bool exec__spice_pair_differs(const Run *run)
{
    ExecSpicePair sp;
    exec__spice_pair(run->s, run->src.release, run->dst.release, &sp);
    return sp.on && (sp.own != sp.pair || !sp.same_rule);
}

/* ---- the client's connections ---- */

static Side *side_named(Run *run, const char *host, uint16_t port)
{
    if (!strcmp(host, "src") && port == 1)
        return &run->src;
    if (!strcmp(host, "dst") && port == 2)
        return &run->dst;
    return NULL;
}

static void links_add(ExecSpice *x, MigLink *l, MigFaultSide to)
{
    size_t cap2 = x->cap;
    MIG_GROW(x->links, x->cap, x->nlinks + 1, 16);
    MIG_GROW(x->link_to, cap2, x->nlinks + 1, 16);
    x->links[x->nlinks] = l;
    x->link_to[x->nlinks++] = to;
}

static MigTransport *client_connect(void *opaque, const char *host, uint16_t port, MigErr **errp)
{
    ExecSpice *x = opaque;
    Run *run = x->run;
    const ScnClient *cl = &run->s->client;
    Side *sd = side_named(run, host, port);
    if (!sd || !sd->m || sd->killed || !mig_machine_spice(sd->m))
        return mig_err_set(errp, -ECONNREFUSED, "nothing listens on %s:%u", host, port), NULL;
    bool target = sd == &run->dst;
    if (target && cl->target == SCN_TARGET_REFUSE) {
        exec__log(run, "client: connection to %s:%u refused (client.target: refuse)", host, port);
        return mig_err_set(errp, -ECONNREFUSED, "connection refused (scenario)"), NULL;
    }
    MigLinkParams lp = {.bandwidth = cl->bandwidth,
                        .latency_ns = cl->latency_ns + (target ? cl->target_delay_ns : 0)};
    MigTransport *a, *b;
    int rc = mig_transport_mem_pair(run->loop, &lp, &a, &b);
    if (rc < 0)
        return mig_err_set(errp, rc, "cannot create a sim link"), NULL;
    MigLink *l = mig_transport_mem_link(a);
    links_add(x, l, sd->sl->side);
    if (target && cl->target == SCN_TARGET_FAIL)
        mig_link_drop_at(l, MIG_LINK_A_TO_B, 10); /* resets inside the link header */
    if (target && cl->target == SCN_TARGET_HANG)
        mig_link_partition(l, true);
    MigTransport *ta = exec__side_transport_new(x->sl, a, &run->live_transports);
    MigTransport *tb = exec__side_transport_new(sd->sl, b, &run->live_transports);
    MigFaultSide prev;
    exec__side_enter(sd->sl, &prev);
    spice_server_accept(mig_machine_spice(sd->m), tb);
    fault_injector_set_side(run->inj, prev);
    return ta;
}

/* Every link of the client to `side` (all of them for SCN_CLIENT_DISCONNECT). */
static void links_apply(ExecSpice *x, MigFaultSide side, ScnClientAction act, const MigLinkParams *lp)
{
    for (size_t i = 0; i < x->nlinks; i++) {
        if (x->link_to[i] != side || mig_link_is_broken(x->links[i]))
            continue;
        if (act == SCN_CLIENT_DROP)
            mig_link_drop_now(x->links[i]);
        else if (act == SCN_CLIENT_PARTITION || act == SCN_CLIENT_HEAL)
            mig_link_partition(x->links[i], act == SCN_CLIENT_PARTITION);
        else if (act == SCN_CLIENT_SLOW)
            mig_link_set_params(x->links[i], lp);
    }
}

/* ---- the client goes away (the user closes it, or a scripted fault) ---- */

/* Keep what the oracle needs, then free the client. */
static void client_close(ExecSpice *x, const char *why)
{
    if (!x->client)
        return;
    FakeClient *c = x->client;
    x->gone = x->gone || why != NULL;
    snprintf(x->last_error, sizeof(x->last_error), "%s", fake_client_last_error(c));
    fake_client_migrations(c, &x->migs);
    for (x->never = 0; x->never < EXEC_SPICE_CHANNELS_MAX &&
                       fake_client_channel_ever(c, x->never, &x->ever_type[x->never], &x->ever_id[x->never]);
         x->never++)
        ;
    if (why)
        exec__log(x->run, "client: disconnects (%s)", why);
    x->client = NULL;
    fake_client_free(c);
    fake_client_free(x->bystander);
    x->bystander = NULL;
}

static void disconnect_cb(void *opaque)
{
    ExecSpice *x = opaque;
    x->disconnect_defer = NULL;
    client_close(x, x->disconnect_why);
}

static void disconnect_later(ExecSpice *x, const char *why)
{
    if (x->disconnect_defer || !x->client)
        return;
    snprintf(x->disconnect_why, sizeof(x->disconnect_why), "%s", why);
    x->disconnect_defer = mig_loop_defer(x->run->loop, disconnect_cb, x);
}

/* Scripted disconnects: at the Nth message, or at a migration step. */
static void on_client_event(void *opaque, const FakeClientEvent *ev)
{
    ExecSpice *x = opaque;
    const ScnClient *cl = &x->run->s->client;
    x->nmsgs++;
    char why[96];
    if (cl->disconnect_at_message && x->nmsgs == cl->disconnect_at_message) {
        snprintf(why, sizeof(why), "client.disconnect-at-message: %u, %s %s", cl->disconnect_at_message,
                 ev->sent ? "after sending" : "after receiving", ev->name);
        disconnect_later(x, why);
        return;
    }
    if (ev->channel_type != SPICE_CHANNEL_MAIN || !cl->disconnect_at)
        return;
    ScnClientStep at = SCN_CLIENT_STEP_NONE;
    if (!ev->sent && ev->msg == SPICE_MSG_MAIN_MIGRATE_BEGIN)
        at = SCN_CLIENT_STEP_BEGIN;
    else if (!ev->sent && ev->msg == SPICE_MSG_MAIN_MIGRATE_BEGIN_SEAMLESS)
        at = SCN_CLIENT_STEP_BEGIN;
    else if (ev->sent && (ev->msg == SPICE_MSGC_MAIN_MIGRATE_CONNECTED ||
                          ev->msg == SPICE_MSGC_MAIN_MIGRATE_CONNECTED_SEAMLESS))
        at = SCN_CLIENT_STEP_CONNECTED;
    else if (!ev->sent && ev->msg == SPICE_MSG_MAIN_MIGRATE_DST_SEAMLESS_ACK)
        at = SCN_CLIENT_STEP_ACKED;
    else if (!ev->sent && ev->msg == SPICE_MSG_MIGRATE)
        at = SCN_CLIENT_STEP_MIGRATE;
    else if (ev->sent && ev->msg == SPICE_MSGC_MIGRATE_FLUSH_MARK)
        at = SCN_CLIENT_STEP_FLUSHED;
    else if (!ev->sent && ev->msg == SPICE_MSG_MIGRATE_DATA)
        at = SCN_CLIENT_STEP_DATA;
    else if (ev->sent && ev->msg == SPICE_MSGC_MIGRATE_DATA)
        at = SCN_CLIENT_STEP_SWITCHED;
    else if (!ev->sent && ev->msg == SPICE_MSG_MAIN_MIGRATE_END)
        at = SCN_CLIENT_STEP_END;
    else if (ev->sent && ev->msg == SPICE_MSGC_MAIN_MIGRATE_END)
        at = SCN_CLIENT_STEP_SWITCHED;
    if (at == cl->disconnect_at) {
        snprintf(why, sizeof(why), "client.disconnect-at: %s", scn_client_step_names[at]);
        disconnect_later(x, why);
    }
}

static bool client_linked(void *opaque)
{
    ExecSpice *x = opaque;
    /* main, display, inputs, cursor, playback, record, port */
    return !x->client || fake_client_linked_channels(x->client) >= 7 || fake_client_last_error(x->client)[0];
}

/* ---- the case ---- */

int exec__spice_start(Run *run, MigErr **errp)
{
    const Scenario *s = run->s;
    if (!s->spice.on)
        return 0;
    ExecSpice *x = run->spice = mig_malloc0(sizeof(*x));
    x->run = run;
    if (!s->client.present)
        return 0;
    x->sl = exec__side_loop_new(run->loop, run->inj, MIG_FAULT_SIDE_CLIENT);
    FakeClientConfig cc = {.host = "src", .port = 1, .connect = client_connect, .connect_opaque = x,
                           .password = s->client.password[0] ? s->client.password : NULL,
                           .pixmap_cache_pixels = s->client.pixmap_cache,
                           .vmc_bytes_per_tick = s->client.vmc_rate, .who = "client",
                           .inputs = true, /* keys and mouse, held to their sequence (oracle-spice.c) */
                           .migrate_end_delay_ns = s->client.migrate_end_delay_ns,
                           .flush_mark_delay_ns = s->client.flush_mark_delay_ns,
                           .blob_fault = (FakeClientBlobFault)s->client.blob_fault,
                           .blob_channel = s->client.blob_channel,
                           .on_event = on_client_event, .event_opaque = x};
    if (s->client.old || s->client.no_seamless) /* spice-gtk's main caps without SEMI_SEAMLESS (bit 0) or SEAMLESS (3) */
        for (unsigned cap = 0; cap < 4; cap++)
            if (!(cap == 0 && s->client.old) && !(cap == 3 && s->client.no_seamless))
                spice_caps_set(&cc.main_caps, cap);
    MigFaultSide prev;
    exec__side_enter(x->sl, &prev);
    x->client = fake_client_new(&x->sl->base, &cc);
    int rc = fake_client_start(x->client, errp);
    fault_injector_set_side(run->inj, prev);
    if (rc < 0)
        return rc;
    if (s->spice.target_client) {
        /* the destination serves a client of its own: it cannot ACK DO_SEAMLESS */
        FakeClientConfig bc = {.host = "dst", .port = 2, .connect = client_connect, .connect_opaque = x,
                               .password = cc.password, .who = "bystander"};
        exec__side_enter(x->sl, &prev);
        x->bystander = fake_client_new(&x->sl->base, &bc);
        rc = fake_client_start(x->bystander, errp);
        fault_injector_set_side(run->inj, prev);
        if (rc < 0)
            return rc;
    }
    uint64_t now = mig_loop_now_ns(run->loop);
    mig_loop_run_until(run->loop, client_linked, x, now + 10000000000ull);
    if (x->client) {
        x->first_session = fake_client_session_id(x->client);
        exec__log(run, "client: linked %zu channel(s), session 0x%x%s%s",
                  fake_client_linked_channels(x->client), x->first_session,
                  fake_client_last_error(x->client)[0] ? ", error: " : "", fake_client_last_error(x->client));
    }
    return 0;
}

void exec__spice_free(Run *run)
{
    ExecSpice *x = run->spice;
    if (!x)
        return;
    if (x->disconnect_defer)
        mig_loop_remove(run->loop, x->disconnect_defer);
    client_close(x, NULL);
    for (size_t i = 0; i < x->nlinks; i++)
        mig_link_unref(x->links[i]);
    free(x->links);
    free(x->link_to);
    if (x->sl)
        mig_loop_free(&x->sl->base);
    free(x);
    run->spice = NULL;
}

void exec__spice_close_client(Run *run)
{
    if (run->spice)
        client_close(run->spice, NULL);
}

/* ---- management: client_migrate_info ---- */

static void info_done(void *opaque, int result)
{
    ExecSpice *x = opaque;
    x->info_pending = false;
    x->info_result = result;
    exec__log(x->run, "management: client_migrate_info answered: %s",
              result == 0 ? "every client connected to the target" : mig_errno_name(result));
}

static bool info_answered(void *opaque)
{
    ExecSpice *x = opaque;
    return !x->info_pending || x->run->src.killed;
}

int exec__spice_migrate_info(Run *run, bool wait, MigErr **errp)
{
    ExecSpice *x = run->spice;
    if (!x || !run->src.m || run->src.killed)
        return 0;
    SpiceMain *sm = mig_machine_spice_main(run->src.m);
    MigFaultSide prev;
    MigErr *e = NULL;
    exec__side_enter(run->src.sl, &prev);
    spice_main_set_migrate_dest(sm, "dst", 2, -1, NULL);
    x->info_pending = true;
    int rc = spice_main_migrate_begin(sm, info_done, x, &e);
    fault_injector_set_side(run->inj, prev);
    if (rc < 0) {
        /* QEMU's client_migrate_info fails; management migrates anyway */
        x->info_pending = false;
        exec__log(run, "management: client_migrate_info failed: %s", e ? e->msg : mig_errno_name(rc));
        mig_err_free(e);
        return 0;
    }
    exec__log(run, "management: client_migrate_info dst:2%s", wait ? ", waiting for the answer" : "");
    if (!wait)
        return 0;
    uint64_t now = mig_loop_now_ns(run->loop);
    int w = mig_loop_run_until(run->loop, info_answered, x, now + run->s->timeout_ns);
    if (w < 0 && w != -ETIMEDOUT)
        return mig_err_set(errp, w, "client_migrate_info: the wait for its answer ended: %s", mig_errno_name(w));
    return 0;
}

/* ---- steps ---- */

int exec__spice_step(Run *run, size_t i, const ScnStep *st, MigErr **errp)
{
    ExecSpice *x = run->spice;
    if (st->kind == SCN_STEP_CLIENT_MIGRATE_INFO)
        return exec__spice_migrate_info(run, st->wait, errp);
    if (!x->client && st->client_action != SCN_CLIENT_DROP && st->client_action != SCN_CLIENT_PARTITION &&
        st->client_action != SCN_CLIENT_HEAL && st->client_action != SCN_CLIENT_SLOW) {
        exec__log(run, "step %zu: the client is gone: nothing to do", i + 1);
        return 0;
    }
    switch (st->client_action) {
    case SCN_CLIENT_DISCONNECT:
        client_close(x, "step: disconnect");
        return 0;
    case SCN_CLIENT_SEND: {
        static const struct {
            uint16_t msg;
            uint32_t len;
        } what[SCN_SEND__COUNT] = {
            [SCN_SEND_UNSOLICITED] = {SPICE_MSGC_MAIN_MIGRATE_CONNECTED, 0},
            [SCN_SEND_MALFORMED] = {SPICE_MSGC_MAIN_MOUSE_MODE_REQUEST, 1},
            [SCN_SEND_FLUSH_MARK] = {SPICE_MSGC_MIGRATE_FLUSH_MARK, 0},
            [SCN_SEND_UNKNOWN] = {999, 4},
        };
        static const uint8_t body[4] = {2, 0, 0, 0};
        MigFaultSide prev;
        exec__side_enter(x->sl, &prev);
        int rc = fake_client_send_raw(x->client, SPICE_CHANNEL_MAIN, 0, what[st->send].msg, body, what[st->send].len);
        fault_injector_set_side(run->inj, prev);
        exec__log(run, "step %zu: the client sends %s on main%s", i + 1, scn_send_names[st->send],
                  rc < 0 ? " (main is not linked)" : "");
        return 0;
    }
    default: {
        MigLinkParams lp = {.bandwidth = st->bandwidth ? st->bandwidth : run->s->client.bandwidth,
                            .latency_ns = st->has_latency ? st->latency_ns : run->s->client.latency_ns};
        links_apply(x, st->side, st->client_action, &lp);
        exec__log(run, "step %zu: the client's links to %s: %s", i + 1, mig_fault_side_names[st->side],
                  scn_client_action_names[st->client_action]);
        return 0;
    }
    }
}

void exec__spice_side_killed(Run *run, MigFaultSide side)
{
    if (run->spice)
        links_apply(run->spice, side, SCN_CLIENT_DROP, NULL);
}
