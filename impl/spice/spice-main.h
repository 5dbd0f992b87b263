/*
 * spice-main.h - the main channel of a SPICE server (docs/protocol-spice.md
 * "Main channel" and "Migration flows"): the session start (MAIN_INIT,
 * NAME, UUID), the list of channels after ATTACH_CHANNELS, mouse modes,
 * agent tokens without an agent, and semi-seamless migration.
 *
 * Semi-seamless migration, source side:
 *   spice_main_set_migrate_dest (QMP client_migrate_info) names the target;
 *   spice_main_migrate_begin sends MIGRATE_BEGIN to every client whose main
 *   link has SEMI_SEAMLESS and calls `done` once each has answered
 *   MIGRATE_CONNECTED or CONNECT_ERROR, or the timeout (10 s by default, as
 *   spice-server) passed: done(0) when all connected, -ECONNREFUSED when one
 *   could not, -ETIMEDOUT when one did not answer; spice_main_migrate_end
 *   then sends MIGRATE_END to the clients that connected (once each has
 *   answered a PING on every other channel, so that nothing sent before the
 *   guest stopped is dropped at the switch), SWITCH_HOST to the
 *   others (completed), or MIGRATE_CANCEL (failed or cancelled), and drops
 *   the clients that were sent away if they are still there after the
 *   timeout; an answer that comes after the wait or the migration ended is
 *   no protocol error (a late CONNECTED gets MIGRATE_CANCEL, as from
 *   spice-server; one that crossed END/SWITCH_HOST/CANCEL is ignored);
 *   once every client sent away has left (at once when there was
 *   none) the server emits SPICE_SERVER_EV_MIGRATE_COMPLETED, after which
 *   management may end the source (QEMU's SPICE_MIGRATE_COMPLETED).
 * Seamless migration (spice.md 8.2), when the server has
 *   seamless-migration=on, one client, and the client has SEAMLESS and
 *   AGENT_CONNECTED_TOKENS: MIGRATE_BEGIN_SEAMLESS with the migration
 *   protocol version; MIGRATE_CONNECTED_SEAMLESS is the client's yes (a
 *   plain CONNECTED means the target NACKed: semi-seamless goes on); at a
 *   completed end every channel of the client gets MIGRATE and gives its
 *   migration data (spice_client_seamless_out).  Target: DO_SEAMLESS is
 *   ACKed when this server has that one client and the version is at most
 *   its own, else NACKed; after ACK the client's channels wait for their
 *   data, and main's (MNMD) continues the session without MAIN_INIT.
 * Target side: a client whose main link carries a session id is a
 * migrating client: no MAIN_INIT and no other channel starts until its
 * MSGC_MAIN_MIGRATE_END; then MAIN_INIT and the held channels start (the
 * display sends every surface whole).
 *
 * Owns: the main channel's class, its migration state and per-client state.
 * Called by: whoever assembles a server (impl/machine, tests), the monitor.
 */
#ifndef MIGCERT_SPICE_MAIN_H
#define MIGCERT_SPICE_MAIN_H

#include "spice-server.h"

typedef struct SpiceMain SpiceMain;

/* Offer MAIN:0 on `s`; the SpiceMain lives as long as the server. */
SpiceMain *spice_main_add(SpiceServer *s);

/* client_migrate_info: where clients go.  port / tls_port -1: none. */
void spice_main_set_migrate_dest(SpiceMain *m, const char *host, int port, int tls_port,
                                 const char *cert_subject);
bool spice_main_has_migrate_dest(const SpiceMain *m);

typedef void (*SpiceMigrateConnected)(void *opaque, int result);
/* Start a migration's client part; `done` runs from the loop.  -EINVAL
 * without a destination.  One still pending (its machine migration never
 * ran, e.g. the client could not reach the target) is cancelled first, as
 * spice-server does on consecutive client_migrate_info: its clients get
 * MIGRATE_CANCEL and its `done` never runs. */
int spice_main_migrate_begin(SpiceMain *m, SpiceMigrateConnected done, void *opaque, MigErr **errp);
/* The migration ended (completed or not). */
void spice_main_migrate_end(SpiceMain *m, bool completed);

/* How the last migration's clients were sent (counts, for oracles). */
typedef struct SpiceMainMigrateStats {
    uint32_t begun, connected, connect_errors, timed_out;
    uint32_t ended, switched, cancelled;
    uint32_t late_answers; /* answers after the wait or the migration ended (tolerated) */
    uint32_t seamless;     /* source: clients sent away by seamless migration */
    uint32_t seamless_fallbacks; /* source: BEGIN_SEAMLESS answered by a plain CONNECTED (target NACKed) */
    uint32_t acked, nacked; /* target: DO_SEAMLESS answers (kept across migrations) */
} SpiceMainMigrateStats;
void spice_main_migrate_stats(const SpiceMain *m, SpiceMainMigrateStats *out);

#endif
