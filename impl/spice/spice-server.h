/*
 * spice-server.h - the SPICE server of one machine: the channels it offers,
 * the clients (sessions) linked to it, and the channel / channel-client
 * split of spice-server (docs/protocol-spice.md "Channels").
 *
 * Owns:
 *   - SpiceServer: configuration (ticketing, password and its expiry,
 *     seamless migration), the RSA ticket key, the offered channels, the
 *     clients; it takes connected transports (spice_server_accept), runs
 *     their link stage and hands each linked connection to its channel;
 *   - SpiceChannel: one offered (type, id) and what is shared by every
 *     client of it (a channel class keeps its own state behind `priv`);
 *   - SpiceClient: one session (session_id, from MAIN_INIT), its main
 *     channel client and the others;
 *   - SpiceChannelClient: one connection of one client to one channel: its
 *     SpiceConn (send queue, serials, ACK window) and the class's per-client
 *     state behind `priv`.
 * A channel class (main: spice-main.c, …) says what a channel client does
 * with the messages of its channel.  A client whose main channel goes away
 * loses every other channel too.
 * Called by: the machine (impl/machine), `migcert vm`, the simulator.
 *
 * Invariants: nothing blocks; every random choice (session ids, the key)
 * comes from the loop's PRNG; no channel, connection or timer outlives
 * spice_server_free; a protocol violation closes that channel client (and
 * for main, the client) with a logged reason, never the process.
 */
#ifndef MIGCERT_SPICE_SERVER_H
#define MIGCERT_SPICE_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/loop.h"
#include "../transport/transport.h"
#include "spice-conn.h"
#include "spice-link.h"

typedef struct SpiceServer SpiceServer;
typedef struct SpiceChannel SpiceChannel;
typedef struct SpiceClient SpiceClient;
typedef struct SpiceChannelClient SpiceChannelClient;

/* What a server tells its embedder (QMP's SPICE_* events). */
typedef enum SpiceServerEvent {
    SPICE_SERVER_EV_CONNECTED,    /* a channel linked (cc given) */
    SPICE_SERVER_EV_INITIALIZED,  /* its channel started (cc given) */
    SPICE_SERVER_EV_DISCONNECTED, /* a channel client went away (cc given, about to be freed) */
    SPICE_SERVER_EV_MIGRATE_COMPLETED, /* the clients sent to a migration's target left (cc NULL) */
    SPICE_SERVER_EV__COUNT
} SpiceServerEvent;

typedef struct SpiceServerConfig {
    bool ticketing;          /* false: disable-ticketing=on */
    const char *password;    /* with ticketing */
    bool seamless_migration; /* seamless-migration=on */
    uint32_t migration_version; /* seamless migration protocol version (0: SPICE_MIG_PROTOCOL_VERSION) */
    /* An older spice-server without seamless migration: no SEAMLESS_MIGRATE
     * main capability, never MIGRATE_BEGIN_SEAMLESS, DO_SEAMLESS NACKed
     * (seamless_migration is then ignored). */
    bool no_seamless;
    /* The display blob version it writes and the newest it loads (0:
     * SPICE_MIG_VERSION_DISPLAY).  Below 2 there is no restore list: the
     * pixmap cache is reset whatever pixmap_cache_migration says. */
    uint32_t display_blob_version;
    /* x-pixmap-cache-migration=reset|restore: what seamless migration does
     * with a client's pixmap cache (SpicePixmapCacheMig; 0: reset, as
     * spice-server). */
    int pixmap_cache_migration;
    /* image-compression=glz (or auto_glz): images the client does not hold
     * go as GLZ_RGB with the client's global dictionary, not BITMAP. */
    bool glz;
    const char *name;        /* MAIN_NAME, sent when the client has NAME_AND_UUID */
    uint8_t uuid[16];
    uint32_t ack_window;     /* 0: CLIENT_ACK_WINDOW (20) */
    uint64_t migrate_timeout_ns; /* 0: MIGRATE_TIMEOUT (10 s) */
    /* Seamless target: how long a channel waits for the client's migration
     * data once the machine is loaded (0: 10 s, as spice-server's display). */
    uint64_t migrate_data_timeout_ns;
    /* An old spice-server: the main channel does not advertise
     * SEMI_SEAMLESS, so every client is migrated by switch-host (spice-gtk
     * honours MIGRATE_END only from a server that advertised it); as a
     * target it refuses a main link naming a session (a migrating client)
     * with BAD_CONNECTION_ID, so the client answers CONNECT_ERROR. */
    bool no_semi_seamless;
    const char *who;         /* trace prefix, e.g. "src.spice" */
    void (*event)(void *opaque, SpiceServerEvent ev, SpiceChannelClient *cc); /* optional */
    /* Optional: one line for a person when a link is refused or a channel
     * closes on an error (a client that broke the protocol): what and why. */
    void (*log)(void *opaque, const char *line);
    /* Optional: the ticket key to use (borrowed; outlives the server).
     * NULL: the server makes its own from the loop's PRNG (spice-server
     * makes one per link; one per server is enough to keep passwords off
     * the wire).  A fuzzer shares one to skip the key generation. */
    const struct SpiceTicketKey *key;
    void *event_opaque;
} SpiceServerConfig;

typedef struct SpiceChannelClass {
    const char *name;       /* "main", "display", … */
    uint32_t max_in;        /* largest client message body accepted */
    /* The channel's capabilities for its link reply. */
    void (*caps)(SpiceChannel *ch, SpiceCapSet *channel_caps);
    /* A channel client linked: start it (send its first messages). */
    int (*connect)(SpiceChannelClient *cc, MigErr **errp);
    /* A message from the client (the base messages the connection handles
     * itself never come here). */
    int (*on_message)(SpiceChannelClient *cc, const SpiceMsgInfo *mi, void *body, uint32_t size, MigErr **errp);
    /* The channel client is going away: free `priv`. */
    void (*disconnect)(SpiceChannelClient *cc);
    /* Optional: every queued message of this channel client went out (a
     * producer paced by the backlog may write more). */
    void (*drained)(SpiceChannelClient *cc);
    /* The server is being freed with the channel: forget `ch`. */
    void (*channel_gone)(SpiceChannel *ch);
    /* Seamless migration (docs/protocol-spice.md 8.2).  migrate_flags: the
     * MIGRATE flags of the channel (NEED_FLUSH | NEED_DATA_TRANSFER for
     * channels with migration data, 0 for the others, which start on the
     * target with `connect` as usual).  Source: migrate_save builds the
     * channel client's blob (malloc'ed).  Target: a channel with data does
     * not `connect`: migrate_prepare (optional) runs once the machine has
     * loaded (its messages are held until the data came), migrate_load
     * takes the client's blob, checks it and starts the channel client. */
    uint32_t migrate_flags;
    int (*migrate_save)(SpiceChannelClient *cc, uint8_t **blob, size_t *len, MigErr **errp);
    void (*migrate_prepare)(SpiceChannelClient *cc);
    int (*migrate_load)(SpiceChannelClient *cc, const uint8_t *blob, size_t len, MigErr **errp);
    /* Optional, target: the blob came while the machine is still loading:
     * take at once what needs nothing from the machine's stream (messages
     * it queues go out then); migrate_prepare and migrate_load follow with
     * the same blob once the machine has loaded. */
    int (*migrate_early)(SpiceChannelClient *cc, const uint8_t *blob, size_t len, MigErr **errp);
} SpiceChannelClass;

SpiceServer *spice_server_new(MigLoop *loop, const SpiceServerConfig *cfg, MigErr **errp);
/* Close every client and free the server, its channels and their state
 * (the channel owners free their `priv` in their own code first). */
void spice_server_free(SpiceServer *s);

/* Offer channel (type, id) with `cls`; `priv` is the class's shared state. */
SpiceChannel *spice_server_add_channel(SpiceServer *s, uint8_t type, uint8_t id, const SpiceChannelClass *cls,
                                       void *priv);
/* Link a new connection (the server owns `t` from now on). */
void spice_server_accept(SpiceServer *s, MigTransport *t);
/* Change the password (set_password); NULL with ticketing on locks everyone out. */
void spice_server_set_password(SpiceServer *s, const char *password);
/* From loop time `at_ns` on, the password is refused (expire_password);
 * 0: never.  Links already made stay. */
void spice_server_set_password_expiry(SpiceServer *s, uint64_t at_ns);

/* What a display, main, … channel class uses. */
MigLoop *spice_server_loop(const SpiceServer *s);
const SpiceServerConfig *spice_server_config(const SpiceServer *s);
size_t spice_server_channel_count(const SpiceServer *s);
SpiceChannel *spice_server_channel_at(const SpiceServer *s, size_t i);
size_t spice_server_client_count(const SpiceServer *s);
SpiceClient *spice_server_client_at(const SpiceServer *s, size_t i);

uint8_t spice_channel_type(const SpiceChannel *ch);
uint8_t spice_channel_id(const SpiceChannel *ch);
void *spice_channel_priv(const SpiceChannel *ch);
/* Replace the class's shared state; NULL marks a channel whose device went
 * away (its class refuses new links then). */
void spice_channel_set_priv(SpiceChannel *ch, void *priv);
SpiceServer *spice_channel_server(const SpiceChannel *ch);

uint32_t spice_client_session_id(const SpiceClient *c);
/* Semi-seamless target: the client linked main with the source's session
 * id; its other links are held (linked, not started) until main calls
 * spice_client_end_migration_in on MSGC_MAIN_MIGRATE_END. */
bool spice_client_migrating_in(const SpiceClient *c);
void spice_client_end_migration_in(SpiceClient *c);
/* Seamless migration.  Source: MIGRATE on each channel client after what
 * it queued, then FLUSH_MARK / MIGRATE_DATA as the flags say.  Target:
 * after DST_SEAMLESS_ACK, every held link and every later one starts
 * waiting for its migration data (main too); set_loading tells the server
 * the machine is loading an incoming migration (data waits are not timed
 * and blobs are kept until it ends). */
void spice_client_seamless_out(SpiceClient *c);
void spice_client_begin_seamless_in(SpiceClient *c);
bool spice_client_seamless_in(const SpiceClient *c);
bool spice_cc_waiting_migrate_data(const SpiceChannelClient *cc);
void spice_server_set_loading(SpiceServer *s, bool loading);
/* The client's channel client on (type, id), or NULL. */
SpiceChannelClient *spice_client_find(const SpiceClient *c, uint8_t type, uint8_t id);

SpiceChannel *spice_cc_channel(const SpiceChannelClient *cc);
SpiceClient *spice_cc_client(const SpiceChannelClient *cc);
SpiceConn *spice_cc_conn(const SpiceChannelClient *cc);
void *spice_cc_priv(const SpiceChannelClient *cc);
void spice_cc_set_priv(SpiceChannelClient *cc, void *priv);
/* The capabilities the client sent when it linked this channel. */
const SpiceLinkMessInfo *spice_cc_link(const SpiceChannelClient *cc);
/* Send a message on this channel client (see spice_conn_send). */
int spice_cc_send(SpiceChannelClient *cc, uint16_t type, const void *body);
/* Close this channel client with a reason (logged); main takes the client
 * with it. */
void spice_cc_disconnect(SpiceChannelClient *cc, const char *fmt, ...) MIG_PRINTF(2, 3);

/* A hook for every PONG a channel client receives (the main channel uses
 * it to know a client has read everything before a migration's switch). */
void spice_server_set_pong_hook(SpiceServer *s, void (*hook)(void *opaque, SpiceChannelClient *cc, uint32_t id),
                                void *opaque);

/* Tell the embedder (the config's event callback, when set). */
void spice_server_emit(SpiceServer *s, SpiceServerEvent ev, SpiceChannelClient *cc);
/* The transport under a channel client (for its addresses). */
MigTransport *spice_cc_transport(SpiceChannelClient *cc);

/* Counts for the resource oracle: links in progress and channel clients. */
size_t spice_server_pending_links(const SpiceServer *s);
size_t spice_server_channel_clients(const SpiceServer *s);

#endif
