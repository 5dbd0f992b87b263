/*
 * oracle-spice.c - the SPICE oracle (docs/architecture.md section 6.1,
 * scenarios/README.md "SPICE"): after every case with `spice:`, once the
 * hand-over had time to settle,
 *   server    the client ends where it must: on the destination after a
 *             completed migration, on the source after a failed or
 *             cancelled one, nowhere when the scenario says so
 *             (expect.client); the server there holds its session; a
 *             semi-seamless migration kept the session id, a switch-host
 *             did not; the kind matches expect.client-migration;
 *   screen    with the guest stopped there and the links drained, the
 *             client's primary surface of every head equals that head's
 *             framebuffer (fake-qxl) pixel for pixel;
 *   images    the client never met an image it does not hold nor any other
 *             protocol error (its last error is empty, or contains
 *             expect.client-error);
 *   sequences playback never repeats a frame; port bytes arrive once and in
 *             order both ways (the client's port gaps/dups, fake-vmc's
 *             read_errors on both machines);
 *   record    what the client recorded reaches the guest's sound sink
 *             (fake-snd) in order with no repeat; a frame may be lost only
 *             where the protocol allows it: sent before the client learnt
 *             of a RECORD_STOP (the guest stopped: a migration's stop-and-
 *             copy, or this oracle's own stop), dropped by that server,
 *             seen as a gap at the first frame after recording started
 *             again; the client's last frame is in the end guest unless
 *             such a drop took it;
 *   inputs    every group of keys and mouse events the client sent
 *             (fake-media.h) reached the guest (fake-input) once and in
 *             order, across a migration too; the one loss allowed is what
 *             the source took after its state went out (the target shows
 *             it at its first event: exactly that many groups), and
 *             nothing overflowed a stopped guest's queue;
 *   cursor    the client's cursor (shape, hot spot, position, visibility)
 *             equals the guest's on the server it ended on;
 *   leftovers once the client is gone, no server keeps a channel client or
 *             a link in progress.
 * Each failed check names the channel it judged, and the oracle goes on
 * with the checks of the other channels, so that RunResult.spice holds a
 * verdict per channel the client linked (exec.h; `migcert run --json`
 * spice_channel_verdicts, the report's matrix): server and session checks
 * judge MAIN (and, after a seamless migration, each channel that was
 * dropped), the screen each DISPLAY head, record RECORD, inputs INPUTS,
 * cursor CURSOR, the sequences PLAYBACK and PORT,
 * a client error the channel it names (MAIN when it names none), the
 * leftovers MAIN.  The case's error stays the first failure in this order.
 * Called by: exec-case.c (last in the oracle table: it runs the loop on).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>

#include "devices/fake-spice.h"
#include "exec-internal.h"

#define SETTLE_NS 2000000000ull /* the switch and the first frames on the target */
#define DRAIN_NS 1000000000ull  /* a stopped guest's last messages reach the client */

const char *const exec_channel_verdict_names[EXEC_CHANNEL__COUNT] = {
    [EXEC_CHANNEL_PASSED] = "passed",
    [EXEC_CHANNEL_FAILED] = "failed",
    [EXEC_CHANNEL_NOT_JUDGED] = "not judged",
};

void exec_spice_channel_name(uint8_t type, uint8_t id, char *buf, size_t len)
{
    if (id)
        snprintf(buf, len, "%s:%u", spice_channel_type_name(type), id);
    else
        snprintf(buf, len, "%s", spice_channel_type_name(type));
}

/* Every channel the client ever linked, each passed until a check fails it. */
static void verdicts_open(Run *run)
{
    ExecSpice *x = run->spice;
    RunResult *r = run->r;
    uint8_t t, id;
    r->nspice = 0;
    for (size_t i = 0; r->nspice < EXEC_SPICE_CHANNELS_MAX; i++) {
        if (x->client ? !fake_client_channel_ever(x->client, i, &t, &id) : i >= x->never)
            break;
        if (!x->client)
            t = x->ever_type[i], id = x->ever_id[i];
        r->spice[r->nspice++] = (ExecSpiceChannel){.type = t, .id = id, .verdict = EXEC_CHANNEL_PASSED};
    }
}

/* The verdict of (type, id), or of MAIN (the session) for a channel the
 * client never linked; NULL without any. */
static ExecSpiceChannel *verdict_of(Run *run, uint8_t type, uint8_t id)
{
    RunResult *r = run->r;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < r->nspice; i++)
            if (r->spice[i].type == type && r->spice[i].id == id)
                return &r->spice[i];
        type = SPICE_CHANNEL_MAIN, id = 0;
    }
    return NULL;
}

static void mark(Run *run, uint8_t type, uint8_t id, ExecChannelVerdict v, const char *why)
{
    ExecSpiceChannel *ch = verdict_of(run, type, id);
    if (!ch || ch->verdict == EXEC_CHANNEL_FAILED)
        return; /* its first failure stays */
    ch->verdict = v;
    snprintf(ch->why, sizeof(ch->why), "%s", why);
}

/* A check of channel (type, id) failed: its verdict, and the case's error
 * unless an earlier check set it (first failure wins).  Returns `code`. */
static int MIG_PRINTF(6, 7) channel_fail(Run *run, MigErr **errp, uint8_t type, uint8_t id, int code,
                                         const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mark(run, type, id, EXEC_CHANNEL_FAILED, msg);
    return mig_err_set(errp, code, "%s", msg);
}

/* The channel a client error names ("PORT:0: ...", "migration: DISPLAY:1
 * to the target: ..."), MAIN when it names none. */
static void channel_of_error(const char *err, uint8_t *type, uint8_t *id)
{
    *type = SPICE_CHANNEL_MAIN, *id = 0;
    if (!strncmp(err, "migration: ", 11))
        err += 11;
    for (unsigned t = 0; t < 256; t++) {
        const char *name = spice_channel_type_name((uint8_t)t);
        size_t n = strlen(name);
        unsigned v;
        char colon;
        if (strcmp(name, "?") && !strncmp(err, name, n) && err[n] == ':' &&
            sscanf(err + n + 1, "%u%c", &v, &colon) == 2 && (colon == ':' || colon == ' ') && v < 256) {
            *type = (uint8_t)t, *id = (uint8_t)v;
            return;
        }
    }
}

static bool alive(const Side *sd)
{
    return sd->m && !sd->killed && mig_machine_spice(sd->m);
}

/* Whether `sd`'s server holds a client with session `session`. */
static bool holds_session(const Side *sd, uint32_t session)
{
    SpiceServer *sv = mig_machine_spice(sd->m);
    for (size_t i = 0; i < spice_server_client_count(sv); i++)
        if (spice_client_session_id(spice_server_client_at(sv, i)) == session)
            return true;
    return false;
}

static int check_server(Run *run, const char *outcome, Side **endp, MigErr **errp)
{
    const Scenario *s = run->s;
    ExecSpice *x = run->spice;
    ScnClientEnd want = s->client_end;
    ScnClientMig want_mig = s->client_mig;
    /* the outcome oracle accepted another outcome than the file's (a pair's
     * rules, a --fault): the file's client expectations were for its own */
    FakeClient *c = x->client;
    bool linked = c && fake_client_linked_channels(c) > 0;
    if (strcmp(outcome, scn_outcome_names[s->outcome])) {
        /* a client the file expects gone may have had no cause to go (e.g.
         * pre-flight refused the migration before MIGRATE_BEGIN); if it is
         * there, it is where the outcome puts it */
        if (want != SCN_CLIENT_END_NONE || linked)
            want = SCN_CLIENT_END_AUTO;
        want_mig = SCN_CLIENT_MIG_ANY;
    }
    /* the SPICE pair rules: a plain file at a pair whose servers migrate
     * its client another way expects that way (a scripted one does not run
     * there: exec_case_applicable) */
    ExecSpicePair sp;
    exec__spice_pair(s, run->src.release, run->dst.release, &sp);
    if (sp.on && sp.own != sp.pair && want_mig != SCN_CLIENT_MIG_ANY)
        want_mig = sp.pair;
    if (run->preflight_failed) /* management never started it: nothing to follow */
        want_mig = SCN_CLIENT_MIG_NONE;
    if (want == SCN_CLIENT_END_AUTO)
        want = !strcmp(outcome, "completed") ? SCN_CLIENT_END_DST : SCN_CLIENT_END_SRC;
    const char *host = linked ? fake_client_server_host(c) : "nowhere";
    if (want == SCN_CLIENT_END_NONE) {
        if (linked)
            return channel_fail(run, errp, SPICE_CHANNEL_MAIN, 0, -EPROTO, "spice: the client is still linked to %s (session 0x%x), "
                               "expected none (expect.client: none)", host, fake_client_session_id(c));
    } else {
        const char *name = want == SCN_CLIENT_END_DST ? "dst" : "src";
        Side *end = want == SCN_CLIENT_END_DST ? &run->dst : &run->src;
        if (!linked)
            return channel_fail(run, errp, SPICE_CHANNEL_MAIN, 0, -EPROTO, "spice: the client ended %s, expected on %s (the migration %s)%s%s",
                               x->gone ? "disconnected" : "with no channel linked", name, outcome,
                               x->last_error[0] || (c && fake_client_last_error(c)[0]) ? "; its last error: " : "",
                               c ? fake_client_last_error(c) : x->last_error);
        if (strcmp(host, name))
            return channel_fail(run, errp, SPICE_CHANNEL_MAIN, 0, -EPROTO, "spice: the client ended on %s, expected on %s (the migration %s)",
                               host, name, outcome);
        if (!alive(end) || !holds_session(end, fake_client_session_id(c)))
            return channel_fail(run, errp, SPICE_CHANNEL_MAIN, 0, -EPROTO, "spice: the client believes it is on %s in session 0x%x, which "
                               "that server does not hold", name, fake_client_session_id(c));
        *endp = end;
    }
    FakeClientMigrations m = x->migs;
    if (c)
        fake_client_migrations(c, &m);
    if (c && (m.semi_seamless || m.seamless) && !m.switch_host && fake_client_session_id(c) != x->first_session)
        return channel_fail(run, errp, SPICE_CHANNEL_MAIN, 0, -EPROTO, "spice: a semi-seamless migration changed the session (0x%x -> 0x%x)",
                           x->first_session, fake_client_session_id(c));
    if (c && m.switch_host && linked && fake_client_session_id(c) == x->first_session)
        return channel_fail(run, errp, SPICE_CHANNEL_MAIN, 0, -EPROTO, "spice: after a switch-host the client kept session 0x%x (a new "
                           "session was expected)", x->first_session);
    bool ok = true;
    switch (want_mig) {
    case SCN_CLIENT_MIG_SEMI_SEAMLESS:
        ok = m.semi_seamless > 0 && !m.switch_host && !m.seamless;
        break;
    case SCN_CLIENT_MIG_SEAMLESS:
        ok = m.seamless > 0 && !m.switch_host && !m.semi_seamless;
        break;
    case SCN_CLIENT_MIG_SWITCH_HOST:
        ok = m.switch_host > 0 && !m.semi_seamless;
        break;
    case SCN_CLIENT_MIG_CANCELLED:
        ok = m.cancelled > 0 && !m.semi_seamless && !m.switch_host;
        break;
    case SCN_CLIENT_MIG_NONE:
        ok = !m.semi_seamless && !m.switch_host && !m.cancelled && !m.seamless;
        break;
    default:
        break;
    }
    if (ok && c && m.seamless && linked) {
        /* seamless: every channel went on, none was dropped on the way */
        size_t ever = 0;
        uint8_t t, id;
        while (fake_client_channel_ever(c, ever, &t, &id))
            ever++;
        size_t lost = 0;
        char msg[512] = "";
        if (s->client_channel_lost) {
            if (fake_client_has_channel(c, s->client_channel_lost, 0) || fake_client_linked_channels(c) != ever - 1)
                snprintf(msg, sizeof(msg), "spice: the target was to refuse the client's %s channel "
                         "(expect.client-channel-lost); the client has %zu of its %zu channels linked",
                         spice_channel_type_name(s->client_channel_lost), fake_client_linked_channels(c), ever);
            lost = 1;
        }
        if (!msg[0] && fake_client_linked_channels(c) != ever - lost)
            snprintf(msg, sizeof(msg), "spice: after the seamless migration the client has %zu of its %zu "
                     "channels linked (last error: %s)", fake_client_linked_channels(c), ever,
                     fake_client_last_error(c)[0] ? fake_client_last_error(c) : "none");
        if (msg[0]) {
            /* the verdict of each channel: dropped though it was to stay,
             * or kept though the target was to refuse it */
            size_t named = 0;
            for (size_t i = 0; fake_client_channel_ever(c, i, &t, &id); i++) {
                bool to_lose = s->client_channel_lost == t && id == 0;
                if (fake_client_has_channel(c, t, id) == to_lose) {
                    channel_fail(run, errp, t, id, -EPROTO, "%s", msg);
                    named++;
                }
            }
            if (!named) /* the counts disagree with no channel to blame: the session */
                channel_fail(run, errp, SPICE_CHANNEL_MAIN, 0, -EPROTO, "%s", msg);
            return -EPROTO;
        }
        /* the session goes on: no second MAIN_INIT (a surface sent again is
         * an error of the client's own: SURFACE_CREATE of one it holds) */
        size_t inits = fake_client_count(c, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_INIT);
        if (inits != 1)
            return channel_fail(run, errp, SPICE_CHANNEL_MAIN, 0, -EPROTO, "spice: the client got %zu MAIN_INIT over a seamless migration "
                               "(exactly 1 expected)", inits);
    }
    if (!ok)
        return channel_fail(run, errp, SPICE_CHANNEL_MAIN, 0, -EPROTO, "spice: the client followed %u seamless, %u semi-seamless, %u "
                           "switch-host and %u cancelled migration(s); expected %s", m.seamless, m.semi_seamless,
                           m.switch_host, m.cancelled, scn_client_mig_names[want_mig]);
    return 0;
}

/* The end server has sent everything it queued and every byte on the
 * client's links to it arrived (either way). */
static bool settled(void *opaque)
{
    Side *end = opaque;
    Run *run = end->run;
    SpiceServer *sv = mig_machine_spice(end->m);
    for (size_t i = 0; i < spice_server_client_count(sv); i++) {
        SpiceClient *cl = spice_server_client_at(sv, i);
        for (size_t k = 0; k < spice_server_channel_count(sv); k++) {
            SpiceChannel *ch = spice_server_channel_at(sv, k);
            SpiceChannelClient *cc = spice_client_find(cl, spice_channel_type(ch), spice_channel_id(ch));
            if (cc && spice_conn_queued_messages(spice_cc_conn(cc)))
                return false;
        }
    }
    ExecSpice *x = run->spice;
    for (size_t i = 0; i < x->nlinks; i++)
        if (x->link_to[i] == end->sl->side && !mig_link_is_broken(x->links[i]) &&
            mig_link_queued(x->links[i], MIG_LINK_B_TO_A)) /* server to client; the client never stops sending */
            return false;
    return true;
}

/* The client's primary surface of display channel `head` against that
 * head's framebuffer (the verdict of DISPLAY:head). */
static int check_head(Run *run, FakeClient *c, Side *end, uint32_t head, MigErr **errp)
{
    const SpiceSurface *fb = fake_qxl_head_framebuffer(end->spice->qxl, head);
    const SpiceSurface *cs = fake_client_surface(c, (uint8_t)head, 0);
    uint8_t id = (uint8_t)head;
    if (!cs)
        return channel_fail(run, errp, SPICE_CHANNEL_DISPLAY, id, -EPROTO, "spice: the client has no primary "
                            "surface of display %u on %s", head, mig_fault_side_names[end->sl->side]);
    if (cs->width != fb->width || cs->height != fb->height)
        return channel_fail(run, errp, SPICE_CHANNEL_DISPLAY, id, -EPROTO, "spice: the client's primary surface "
                            "of display %u is %ux%u, the guest's %ux%u", head, cs->width, cs->height, fb->width,
                            fb->height);
    size_t n = (size_t)fb->width * fb->height, diff = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (cs->px[i] != fb->px[i] && !diff++)
            first = i;
    if (diff)
        return channel_fail(run, errp, SPICE_CHANNEL_DISPLAY, id, -EPROTO, "spice: the client's screen differs "
                            "from the guest framebuffer of %s in %zu pixel(s), first at (%zu, %zu) of display %u: "
                            "0x%06x, the guest has 0x%06x", mig_fault_side_names[end->sl->side], diff,
                            first % fb->width, first / fb->width, head, cs->px[first], fb->px[first]);
    return 0;
}

/* Every display channel the client linked is (type DISPLAY) gets `v`. */
static void mark_displays(Run *run, ExecChannelVerdict v, const char *why)
{
    RunResult *r = run->r;
    for (size_t i = 0; i < r->nspice; i++)
        if (r->spice[i].type == SPICE_CHANNEL_DISPLAY)
            mark(run, SPICE_CHANNEL_DISPLAY, r->spice[i].id, v, why);
}

static int check_screen(Run *run, Side *end, MigErr **errp)
{
    FakeClient *c = run->spice->client;
    if (mig_machine_running(end->m)) {
        MigFaultSide prev;
        exec__side_enter(end->sl, &prev);
        mig_machine_stop(end->m, NULL); /* the guest stops drawing */
        fault_injector_set_side(run->inj, prev);
    }
    /* until the stopped guest's last messages reached the client (the ACK
     * window paces a slow link: no fixed time is enough) */
    mig_sim_run_for(run->loop, DRAIN_NS);
    uint64_t now = mig_loop_now_ns(run->loop);
    if (mig_loop_run_until(run->loop, settled, end, now + 120000000000ull) < 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "spice: the links to %s did not settle within 120 s of the guest stopping",
                 mig_fault_side_names[end->sl->side]);
        mark_displays(run, EXEC_CHANNEL_FAILED, msg);
        return mig_err_set(errp, -ETIMEDOUT, "%s", msg);
    }
    exec__selftest_break_spice(run, end, true);
    int rc = 0;
    for (uint32_t head = 0; head < fake_qxl_heads(end->spice->qxl); head++) {
        int r = check_head(run, c, end, head, errp);
        rc = rc ? rc : r;
    }
    return rc;
}

/* ---- record, inputs, cursor: after the screen check, with the end guest
 * stopped and the links from the server drained */

/* The guests that saw the client's streams: the source, and the
 * destination unless it never loaded (it is then still in the list: its
 * counts are zero). */
static size_t io_sides(Run *run, Side *out[2])
{
    size_t n = 0;
    Side *sides[2] = {&run->src, &run->dst};
    for (int i = 0; i < 2; i++)
        if (sides[i]->spice)
            out[n++] = sides[i];
    return n;
}

static int check_record(Run *run, Side *end, MigErr **errp)
{
    FakeClient *c = run->spice->client;
    if (!fake_client_has_channel(c, SPICE_CHANNEL_RECORD, 0) && !fake_client_count(c, SPICE_CHANNEL_RECORD, SPICE_MSG_RECORD_START))
        return 0;
    FakeClientMediaStats rec;
    fake_client_media_stats(c, SPICE_CHANNEL_RECORD, &rec);
    Side *sides[2];
    size_t n = io_sides(run, sides);
    uint64_t dropped = 0, restart_gaps = 0;
    /* a destination that serves a client of its own (spice.target-client)
     * records both clients' streams into one sink: not this client's */
    bool mixed_dst = run->spice->bystander != NULL;
    for (size_t i = 0; i < n; i++) {
        if (mixed_dst && sides[i] == &run->dst)
            continue;
        FakeSndStats st;
        fake_snd_stats(sides[i]->spice->snd, &st);
        const char *name = mig_fault_side_names[sides[i]->sl->side];
        if (st.rec_dups || st.rec_gaps)
            return channel_fail(run, errp, SPICE_CHANNEL_RECORD, 0, -EPROTO, "spice: record: fake-snd on %s got "
                                "%llu frame(s) again or out of order and lost %llu while recording went on (of %llu "
                                "received)", name, (unsigned long long)st.rec_dups, (unsigned long long)st.rec_gaps,
                                (unsigned long long)st.recorded);
        dropped += st.rec_dropped;
        restart_gaps += st.rec_restart_gaps;
    }
    if (restart_gaps > dropped)
        return channel_fail(run, errp, SPICE_CHANNEL_RECORD, 0, -EPROTO, "spice: record: %llu frame(s) missing "
                            "where recording started again, but the servers dropped only %llu after a RECORD_STOP",
                            (unsigned long long)restart_gaps, (unsigned long long)dropped);
    if (!end || !rec.sent || (mixed_dst && end == &run->dst))
        return 0;
    FakeSndStats e;
    fake_snd_stats(end->spice->snd, &e);
    if (!e.recorded)
        return channel_fail(run, errp, SPICE_CHANNEL_RECORD, 0, -EPROTO, "spice: record: the client sent %llu "
                            "frame(s), none reached fake-snd on %s", (unsigned long long)rec.sent,
                            mig_fault_side_names[end->sl->side]);
    return 0;
}

/* The client's links to the servers carry nothing more toward them. */
static bool client_sent_all(void *opaque)
{
    ExecSpice *x = opaque;
    for (size_t i = 0; i < x->nlinks; i++)
        if (!mig_link_is_broken(x->links[i]) && mig_link_queued(x->links[i], MIG_LINK_A_TO_B))
            return false;
    return true;
}

static int check_inputs(Run *run, Side *end, MigErr **errp)
{
    ExecSpice *x = run->spice;
    FakeClient *c = x->client;
    uint64_t sent = fake_client_input_groups(c);
    if (!sent)
        return 0;
    Side *sides[2];
    size_t n = io_sides(run, sides);
    uint64_t restart_gaps = 0, lost = 0;
    for (size_t i = 0; i < n; i++) {
        FakeInputStats st;
        fake_input_stats(sides[i]->spice->input, &st);
        const char *name = mig_fault_side_names[sides[i]->sl->side];
        if (st.dups || st.gaps || st.out_of_order || st.overflow)
            return channel_fail(run, errp, SPICE_CHANNEL_INPUTS, 0, -EPROTO, "spice: inputs: the guest on %s got "
                                "%llu group(s) of key and mouse events again, lost %llu, had %llu key(s) out of "
                                "order and %llu event(s) its queue could not take (of %llu events)", name,
                                (unsigned long long)st.dups, (unsigned long long)st.gaps,
                                (unsigned long long)st.out_of_order, (unsigned long long)st.overflow,
                                (unsigned long long)st.events);
        restart_gaps += st.restart_gaps;
        if (sides[i] != end)
            lost += st.after_save;
    }
    /* a client that went nowhere (expect.client: none) shows no loss: what
     * it lost is then only bounded */
    if (end ? restart_gaps != lost : restart_gaps > lost)
        return channel_fail(run, errp, SPICE_CHANNEL_INPUTS, 0, -EPROTO, "spice: inputs: %llu group(s) missing "
                            "where the target took over, but the source took %llu after its state went out",
                            (unsigned long long)restart_gaps, (unsigned long long)lost);
    if (!end)
        return 0;
    FakeInputStats e;
    fake_input_stats(end->spice->input, &e);
    if (e.seen_next != sent)
        return channel_fail(run, errp, SPICE_CHANNEL_INPUTS, 0, -EPROTO, "spice: inputs: the client sent %llu "
                            "group(s) of key and mouse events, the guest on %s got %llu",
                            (unsigned long long)sent, mig_fault_side_names[end->sl->side],
                            (unsigned long long)e.seen_next);
    return 0;
}

static int check_cursor(Run *run, Side *end, MigErr **errp)
{
    FakeClient *c = run->spice->client;
    if (!end || !fake_client_has_channel(c, SPICE_CHANNEL_CURSOR, 0))
        return 0;
    FakeClientCursor cc;
    FakeInputCursor g;
    fake_client_cursor(c, &cc);
    fake_input_cursor(end->spice->input, &g);
    const char *name = mig_fault_side_names[end->sl->side];
    if (!cc.have || !cc.has_shape)
        return channel_fail(run, errp, SPICE_CHANNEL_CURSOR, 0, -EPROTO, "spice: cursor: the client has %s, the "
                            "guest on %s shows shape 0x%llx", cc.have ? "no cursor shape" : "no cursor at all", name,
                            (unsigned long long)g.unique);
    if (cc.unique != g.unique || cc.width != g.width || cc.height != g.height || cc.hot_x != g.hot_x ||
        cc.hot_y != g.hot_y || cc.digest != g.digest)
        return channel_fail(run, errp, SPICE_CHANNEL_CURSOR, 0, -EPROTO, "spice: cursor: the client's shape is "
                            "0x%llx (%ux%u, hot spot %u,%u, digest %08x), the guest's on %s 0x%llx (%ux%u, %u,%u, "
                            "%08x)", (unsigned long long)cc.unique, cc.width, cc.height, cc.hot_x, cc.hot_y,
                            cc.digest, name, (unsigned long long)g.unique, g.width, g.height, g.hot_x, g.hot_y,
                            g.digest);
    if (cc.x != g.x || cc.y != g.y || cc.visible != g.visible)
        return channel_fail(run, errp, SPICE_CHANNEL_CURSOR, 0, -EPROTO, "spice: cursor: the client's is at "
                            "(%d, %d), %s; the guest's on %s at (%d, %d), %s", cc.x, cc.y,
                            cc.visible ? "shown" : "hidden", name, g.x, g.y, g.visible ? "shown" : "hidden");
    return 0;
}

/* Playback and the port (PLAYBACK, PORT), then the client's own error (the
 * channel it names). */
static int check_errors_and_sequences(Run *run, const char *outcome, MigErr **errp)
{
    const Scenario *s = run->s;
    ExecSpice *x = run->spice;
    FakeClient *c = x->client;
    int rc = 0;
    if (c) {
        FakeClientMediaStats play, port;
        fake_client_media_stats(c, SPICE_CHANNEL_PLAYBACK, &play);
        fake_client_media_stats(c, SPICE_CHANNEL_PORT, &port);
        if (play.dups)
            rc = channel_fail(run, errp, SPICE_CHANNEL_PLAYBACK, 0, -EPROTO, "spice: playback repeated %llu "
                              "frame(s) (of %llu received)", (unsigned long long)play.dups,
                              (unsigned long long)play.received);
        FakeClientMigrations mm;
        fake_client_migrations(c, &mm);
        /* a client that followed the migration in its session (seamless or
         * semi-seamless) loses no frame: the target keeps what it plays
         * for a client migrating in until its playback channel links */
        if ((mm.seamless || mm.semi_seamless) && play.gaps)
            rc = channel_fail(run, errp, SPICE_CHANNEL_PLAYBACK, 0, -EPROTO, "spice: playback lost %llu frame(s) "
                              "over a %s migration (of %llu received)", (unsigned long long)play.gaps,
                              mm.seamless ? "seamless" : "semi-seamless", (unsigned long long)play.received);
        if (port.gaps || port.dups)
            rc = channel_fail(run, errp, SPICE_CHANNEL_PORT, 0, -EPROTO, "spice: port bytes to the client: %llu "
                              "lost or out of order, %llu repeated (of %llu)", (unsigned long long)port.gaps,
                              (unsigned long long)port.dups, (unsigned long long)port.received);
    }
    /* switch-host starts a new session: what was in flight to the source is
     * legitimately lost and the client's stream to the port starts afresh,
     * so the destination device's count of the client's bytes only holds
     * without it (the client still checks its own new session) */
    FakeClientMigrations m = x->migs;
    if (c)
        fake_client_migrations(c, &m);
    Side *sides[2] = {&run->src, &run->dst};
    for (int i = 0; i < 2; i++) {
        if (!sides[i]->spice || (i == 1 && m.switch_host))
            continue;
        FakeVmcStats v;
        fake_vmc_stats(sides[i]->spice->vmc, &v);
        if (v.read_errors)
            rc = channel_fail(run, errp, SPICE_CHANNEL_PORT, 0, -EPROTO, "spice: port bytes from the client: "
                              "fake-vmc on %s read %llu byte(s) out of sequence (of %llu)",
                              mig_fault_side_names[i], (unsigned long long)v.read_errors,
                              (unsigned long long)v.read);
    }
    const char *err = c ? fake_client_last_error(c) : x->last_error;
    /* a target the pair rules say refuses the migrating client's link */
    ExecSpicePair sp;
    exec__spice_pair(s, run->src.release, run->dst.release, &sp);
    bool refused = sp.on && sp.p.client_error && strstr(err, sp.p.client_error);
    uint8_t t, id;
    channel_of_error(err, &t, &id);
    if (!s->client_error && err[0] && !refused)
        rc = channel_fail(run, errp, t, id, -EPROTO, "spice: the client met an error: %s", err);
    /* the file's expected error is for its own outcome (see check_server) */
    bool own = !strcmp(outcome, scn_outcome_names[s->outcome]);
    if (s->client_error && own && !strstr(err, s->client_error))
        rc = channel_fail(run, errp, t, id, -EPROTO, "spice: the client's last error is '%s', expected one "
                          "containing '%s' (expect.client-error)", err, s->client_error);
    return rc;
}

/* The client goes; nothing of it may stay on a server that lives on (a
 * link left half-open belongs to no channel yet: MAIN, the session). */
static int check_leftovers(Run *run, MigErr **errp)
{
    /* the network works again (a partitioned link would hide the close:
     * the server may wait for bytes that cannot come, as over TCP) */
    ExecSpice *x = run->spice;
    for (size_t i = 0; i < x->nlinks; i++)
        if (!mig_link_is_broken(x->links[i]))
            mig_link_partition(x->links[i], false);
    exec__spice_close_client(run);
    mig_sim_run_for(run->loop, DRAIN_NS);
    exec__selftest_leave_spice(run);
    Side *sides[2] = {&run->src, &run->dst};
    for (int i = 0; i < 2; i++) {
        if (!alive(sides[i]))
            continue;
        SpiceServer *sv = mig_machine_spice(sides[i]->m);
        size_t cc = spice_server_channel_clients(sv), pl = spice_server_pending_links(sv);
        if (cc || pl)
            return channel_fail(run, errp, SPICE_CHANNEL_MAIN, 0, -EPROTO, "spice: after the client left, the %s "
                                "server still has %zu channel client(s) and %zu link(s) in progress",
                                mig_fault_side_names[i], cc, pl);
    }
    return 0;
}

int exec__oracle_spice(Run *run, const char *outcome, MigErr **errp)
{
    ExecSpice *x = run->spice;
    if (!x)
        return 0;
    if (!run->s->client.present)
        return check_leftovers(run, errp);
    /* the hand-over: a few round trips on the links to the target */
    const ScnClient *cl = &run->s->client;
    int srr = mig_sim_run_for(run->loop, SETTLE_NS + cl->migrate_end_delay_ns + 10 * (cl->target_delay_ns + cl->latency_ns));
    if (srr < 0)
        return mig_err_set(errp, srr, "spice: the run could not go on for the hand-over to settle (%s)",
                           mig_errno_name(srr));
    verdicts_open(run);
    exec__selftest_break_spice_client(run);
    if (x->client) /* a user who stops typing: the inputs oracle counts what came */
        fake_client_stop_inputs(x->client);
    /* every check runs, whatever failed before it, so that each channel
     * has its own verdict; the screen needs the client where it must be */
    Side *end = NULL;
    int rc = check_server(run, outcome, &end, errp);
    int r2 = 0;
    if (end && run->s->client_channel_lost != SPICE_CHANNEL_DISPLAY)
        r2 = check_screen(run, end, errp);
    else if (!end && rc < 0)
        mark_displays(run, EXEC_CHANNEL_NOT_JUDGED, "the client is not where it must be: no screen to compare");
    rc = rc ? rc : r2;
    if (end)
        exec__selftest_break_spice(run, end, false);
    if (run->spice->client) {
        /* what the client sent in flight reaches the servers (the client
         * stopped sending inputs before the screen check) */
        uint64_t now = mig_loop_now_ns(run->loop);
        mig_loop_run_until(run->loop, client_sent_all, x, now + 120000000000ull);
        mig_sim_run_for(run->loop, DRAIN_NS / 10);
        r2 = check_record(run, end, errp);
        rc = rc ? rc : r2;
        r2 = check_inputs(run, end, errp);
        rc = rc ? rc : r2;
        r2 = check_cursor(run, end, errp);
        rc = rc ? rc : r2;
    }
    r2 = check_errors_and_sequences(run, outcome, errp);
    rc = rc ? rc : r2;
    r2 = check_leftovers(run, errp);
    return rc ? rc : r2;
}
