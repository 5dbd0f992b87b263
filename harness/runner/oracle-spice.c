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
 *   leftovers once the client is gone, no server keeps a channel client or
 *             a link in progress.
 * Called by: exec-case.c (last in the oracle table: it runs the loop on).
 */
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>

#include "devices/fake-spice.h"
#include "exec-internal.h"

#define SETTLE_NS 2000000000ull /* the switch and the first frames on the target */
#define DRAIN_NS 1000000000ull  /* a stopped guest's last messages reach the client */

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
            return mig_err_set(errp, -EPROTO, "spice: the client is still linked to %s (session 0x%x), "
                               "expected none (expect.client: none)", host, fake_client_session_id(c));
    } else {
        const char *name = want == SCN_CLIENT_END_DST ? "dst" : "src";
        Side *end = want == SCN_CLIENT_END_DST ? &run->dst : &run->src;
        if (!linked)
            return mig_err_set(errp, -EPROTO, "spice: the client ended %s, expected on %s (the migration %s)%s%s",
                               x->gone ? "disconnected" : "with no channel linked", name, outcome,
                               x->last_error[0] || (c && fake_client_last_error(c)[0]) ? "; its last error: " : "",
                               c ? fake_client_last_error(c) : x->last_error);
        if (strcmp(host, name))
            return mig_err_set(errp, -EPROTO, "spice: the client ended on %s, expected on %s (the migration %s)",
                               host, name, outcome);
        if (!alive(end) || !holds_session(end, fake_client_session_id(c)))
            return mig_err_set(errp, -EPROTO, "spice: the client believes it is on %s in session 0x%x, which "
                               "that server does not hold", name, fake_client_session_id(c));
        *endp = end;
    }
    FakeClientMigrations m = x->migs;
    if (c)
        fake_client_migrations(c, &m);
    if (c && (m.semi_seamless || m.seamless) && !m.switch_host && fake_client_session_id(c) != x->first_session)
        return mig_err_set(errp, -EPROTO, "spice: a semi-seamless migration changed the session (0x%x -> 0x%x)",
                           x->first_session, fake_client_session_id(c));
    if (c && m.switch_host && linked && fake_client_session_id(c) == x->first_session)
        return mig_err_set(errp, -EPROTO, "spice: after a switch-host the client kept session 0x%x (a new "
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
        if (s->client_channel_lost) {
            if (fake_client_has_channel(c, s->client_channel_lost, 0) || fake_client_linked_channels(c) != ever - 1)
                return mig_err_set(errp, -EPROTO, "spice: the target was to refuse the client's %s channel "
                                   "(expect.client-channel-lost); the client has %zu of its %zu channels linked",
                                   spice_channel_type_name(s->client_channel_lost), fake_client_linked_channels(c),
                                   ever);
            lost = 1;
        }
        if (fake_client_linked_channels(c) != ever - lost)
            return mig_err_set(errp, -EPROTO, "spice: after the seamless migration the client has %zu of its %zu "
                               "channels linked (last error: %s)", fake_client_linked_channels(c), ever,
                               fake_client_last_error(c)[0] ? fake_client_last_error(c) : "none");
        /* the session goes on: no second MAIN_INIT (a surface sent again is
         * an error of the client's own: SURFACE_CREATE of one it holds) */
        size_t inits = fake_client_count(c, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_INIT);
        if (inits != 1)
            return mig_err_set(errp, -EPROTO, "spice: the client got %zu MAIN_INIT over a seamless migration "
                               "(exactly 1 expected)", inits);
    }
    if (!ok)
        return mig_err_set(errp, -EPROTO, "spice: the client followed %u seamless, %u semi-seamless, %u "
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
 * head's framebuffer. */
static int check_head(FakeClient *c, Side *end, uint32_t head, MigErr **errp)
{
    const SpiceSurface *fb = fake_qxl_head_framebuffer(end->spice->qxl, head);
    const SpiceSurface *cs = fake_client_surface(c, (uint8_t)head, 0);
    if (!cs)
        return mig_err_set(errp, -EPROTO, "spice: the client has no primary surface of display %u on %s", head,
                           mig_fault_side_names[end->sl->side]);
    if (cs->width != fb->width || cs->height != fb->height)
        return mig_err_set(errp, -EPROTO, "spice: the client's primary surface of display %u is %ux%u, the "
                           "guest's %ux%u", head, cs->width, cs->height, fb->width, fb->height);
    size_t n = (size_t)fb->width * fb->height, diff = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (cs->px[i] != fb->px[i] && !diff++)
            first = i;
    if (diff)
        return mig_err_set(errp, -EPROTO, "spice: the client's screen differs from the guest framebuffer of %s "
                           "in %zu pixel(s), first at (%zu, %zu) of display %u: 0x%06x, the guest has 0x%06x",
                           mig_fault_side_names[end->sl->side], diff, first % fb->width, first / fb->width, head,
                           cs->px[first], fb->px[first]);
    return 0;
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
    if (mig_loop_run_until(run->loop, settled, end, now + 120000000000ull) < 0)
        return mig_err_set(errp, -ETIMEDOUT, "spice: the links to %s did not settle within 120 s of the "
                           "guest stopping", mig_fault_side_names[end->sl->side]);
    exec__selftest_break_spice(run, end, true);
    for (uint32_t head = 0; head < fake_qxl_heads(end->spice->qxl); head++) {
        int r = check_head(c, end, head, errp);
        if (r < 0)
            return r;
    }
    return 0;
}

static int check_errors_and_sequences(Run *run, const char *outcome, MigErr **errp)
{
    const Scenario *s = run->s;
    ExecSpice *x = run->spice;
    FakeClient *c = x->client;
    if (c) {
        FakeClientMediaStats play, port;
        fake_client_media_stats(c, SPICE_CHANNEL_PLAYBACK, &play);
        fake_client_media_stats(c, SPICE_CHANNEL_PORT, &port);
        if (play.dups)
            return mig_err_set(errp, -EPROTO, "spice: playback repeated %llu frame(s) (of %llu received)",
                               (unsigned long long)play.dups, (unsigned long long)play.received);
        FakeClientMigrations mm;
        fake_client_migrations(c, &mm);
        if (mm.seamless && play.gaps)
            return mig_err_set(errp, -EPROTO, "spice: playback lost %llu frame(s) over a seamless migration (of %llu "
                               "received)", (unsigned long long)play.gaps, (unsigned long long)play.received);
        if (port.gaps || port.dups)
            return mig_err_set(errp, -EPROTO, "spice: port bytes to the client: %llu lost or out of order, %llu "
                               "repeated (of %llu)", (unsigned long long)port.gaps, (unsigned long long)port.dups,
                               (unsigned long long)port.received);
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
            return mig_err_set(errp, -EPROTO, "spice: port bytes from the client: fake-vmc on %s read %llu byte(s) "
                               "out of sequence (of %llu)", mig_fault_side_names[i],
                               (unsigned long long)v.read_errors, (unsigned long long)v.read);
    }
    const char *err = c ? fake_client_last_error(c) : x->last_error;
    /* a target the pair rules say refuses the migrating client's link */
    ExecSpicePair sp;
    exec__spice_pair(s, run->src.release, run->dst.release, &sp);
    bool refused = sp.on && sp.p.client_error && strstr(err, sp.p.client_error);
    if (!s->client_error && err[0] && !refused)
        return mig_err_set(errp, -EPROTO, "spice: the client met an error: %s", err);
    /* the file's expected error is for its own outcome (see check_server) */
    bool own = !strcmp(outcome, scn_outcome_names[s->outcome]);
    if (s->client_error && own && !strstr(err, s->client_error))
        return mig_err_set(errp, -EPROTO, "spice: the client's last error is '%s', expected one containing '%s' "
                           "(expect.client-error)", err, s->client_error);
    return 0;
}

/* The client goes; nothing of it may stay on a server that lives on. */
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
            return mig_err_set(errp, -EPROTO, "spice: after the client left, the %s server still has %zu channel "
                               "client(s) and %zu link(s) in progress", mig_fault_side_names[i], cc, pl);
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
    Side *end = NULL;
    int rc = check_server(run, outcome, &end, errp);
    if (rc == 0 && end && run->s->client_channel_lost != SPICE_CHANNEL_DISPLAY)
        rc = check_screen(run, end, errp);
    if (rc == 0 && end)
        exec__selftest_break_spice(run, end, false);
    if (rc == 0)
        rc = check_errors_and_sequences(run, outcome, errp);
    if (rc == 0)
        rc = check_leftovers(run, errp);
    return rc;
}
