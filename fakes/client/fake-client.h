/*
 * fake-client.h - the scripted fake SPICE client: it speaks the wire
 * protocol through the same link code, connection and marshaller as the
 * server (impl/spice), opens every channel the server lists, and records
 * every message with its loop time, so that tests and scenarios can check
 * what a client saw.
 *
 * Owns: FakeClient and its channels.  How a connection is made is the
 * caller's: `connect` returns a transport to (host, port) — a simulator
 * link in scenarios, a TCP or unix socket in `migcert client`.
 * Called by: harness/unit tests, the scenario executor, `migcert client`.
 *
 * Invariants: nothing blocks; every random choice (the OAEP seed) comes
 * from the loop's PRNG; fake_client_free leaves no source on the loop.
 */
#ifndef MIGCERT_FAKE_CLIENT_H
#define MIGCERT_FAKE_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/loop.h"
#include "spice/spice-canvas.h"
#include "spice/spice-link.h"
#include "transport/transport.h"

typedef struct FakeClient FakeClient;
typedef struct FakeClientEvent FakeClientEvent;

/* A blob the client spoils before handing it to the target (scenarios). */
typedef enum FakeClientBlobFault {
    FAKE_CLIENT_BLOB_NONE,
    FAKE_CLIENT_BLOB_SHORT,       /* cut to 12 bytes */
    FAKE_CLIENT_BLOB_BAD_MAGIC,
    FAKE_CLIENT_BLOB_NEWER,       /* version + 1 */
    FAKE_CLIENT_BLOB_OLDER,       /* version - 1 */
    FAKE_CLIENT_BLOB_BAD_SURFACE, /* display: the first listed surface id out of range */
    FAKE_CLIENT_BLOB_DROP,        /* not sent at all */
    FAKE_CLIENT_BLOB__COUNT
} FakeClientBlobFault;
extern const char *const fake_client_blob_fault_names[FAKE_CLIENT_BLOB__COUNT];

typedef MigTransport *(*FakeClientConnectFn)(void *opaque, const char *host, uint16_t port, MigErr **errp);

typedef struct FakeClientConfig {
    const char *host;
    uint16_t port;
    FakeClientConnectFn connect;
    void *connect_opaque;
    const char *password;  /* NULL: none */
    SpiceCapSet common;    /* n == 0: spice-gtk 0.42's (0xD) */
    SpiceCapSet main_caps; /* n == 0: spice-gtk 0.42's (0xF) */
    int64_t pixmap_cache_pixels; /* 0: spice-gtk 0.42's (80 MiB of pixels) */
    uint32_t vmc_bytes_per_tick; /* bytes the client writes to a port every 10 ms (0: none) */
    const char *who;       /* trace prefix, e.g. "client" */
    uint64_t migrate_end_delay_ns; /* send MSGC_MAIN_MIGRATE_END this much after the switch (0: at once) */
    uint64_t flush_mark_delay_ns;  /* seamless: FLUSH_MARK this much after MIGRATE (0: at once) */
    FakeClientBlobFault blob_fault; /* seamless: spoil the blob of ... */
    uint8_t blob_channel;           /* ... this channel type */
    /* The server may have served other clients before: a port stream is
     * joined where its first byte says, not required to start at 0
     * (`certify --spice` runs several clients against one server). */
    bool join_streams;
    /* Send the input sequence of fake-media.h on INPUTS (a mouse event and
     * a key pressed and released every 50 ms), as a user at the keyboard. */
    bool inputs;
    /* Optional: every message recorded (received or sent), as it is
     * recorded; the hook must not free the client from inside (defer it). */
    void (*on_event)(void *opaque, const FakeClientEvent *ev);
    void *event_opaque;
} FakeClientConfig;

/* One message the client received or sent. */
struct FakeClientEvent {
    uint64_t t_ns;
    uint8_t channel_type, channel_id;
    bool sent;
    uint16_t msg;
    const char *name; /* registry name: constant */
};

FakeClient *fake_client_new(MigLoop *loop, const FakeClientConfig *cfg);
/* Link the main channel (the rest follows the server's CHANNELS_LIST). */
int fake_client_start(FakeClient *c, MigErr **errp);
void fake_client_free(FakeClient *c);

/* The session id from MAIN_INIT (0 before it). */
uint32_t fake_client_session_id(const FakeClient *c);
/* Channels currently linked (main included). */
size_t fake_client_linked_channels(const FakeClient *c);
/* Channels linked or still linking (0: the session is over; during a
 * switch-host the new main link counts before it is linked). */
size_t fake_client_channels(const FakeClient *c);
/* Every channel the client ever linked, in the order they first linked:
 * type and id of the i-th (false past the end). */
bool fake_client_channel_ever(const FakeClient *c, size_t i, uint8_t *type, uint8_t *id);
/* Whether channel (type, id) is linked now. */
bool fake_client_has_channel(const FakeClient *c, uint8_t type, uint8_t id);
/* The last error that ended a channel or a link ("" when none). */
const char *fake_client_last_error(const FakeClient *c);
/* Everything received and sent, in order. */
const FakeClientEvent *fake_client_events(const FakeClient *c, size_t *n);
/* How many times message `msg` arrived on a channel of `channel_type`. */
size_t fake_client_count(const FakeClient *c, uint8_t channel_type, uint16_t msg);
/* The client's copy of surface `surface_id` of display channel
 * `display_id`, or NULL. */
const SpiceSurface *fake_client_surface(const FakeClient *c, uint8_t display_id, uint32_t surface_id);
/* MARK messages the display channel received. */
uint64_t fake_client_display_marks(const FakeClient *c, uint8_t display_id);
/* Playback frames, port bytes, record frames sent: what arrived against
 * the devices' sequence (fakes/devices/fake-media.h).  A port whose
 * PORT_INIT did not name migcert's device (or that sent none) is
 * `foreign`: its bytes are counted in `received`, never checked (gaps and
 * dups stay 0), and the client writes nothing to it. */
typedef struct FakeClientMediaStats {
    uint64_t received, sent, gaps, dups, starts;
    bool foreign;
    char name[64]; /* the port's name from PORT_INIT ("" before it) */
} FakeClientMediaStats;
void fake_client_media_stats(const FakeClient *c, uint8_t channel_type, FakeClientMediaStats *out);
/* Input groups sent (cfg.inputs), over every session. */
uint64_t fake_client_input_groups(const FakeClient *c);
/* Send no more input groups (the user stops typing). */
void fake_client_stop_inputs(FakeClient *c);
/* The cursor as the server described it (CURSOR_INIT, SET, MOVE, HIDE,
 * RESET); `have` false before any cursor message. */
typedef struct FakeClientCursor {
    bool have, has_shape, visible;
    int16_t x, y;
    uint64_t unique;
    uint8_t type;
    uint16_t width, height, hot_x, hot_y;
    uint32_t digest; /* FNV-1a of the shape's bytes (fake_input_digest) */
} FakeClientCursor;
void fake_client_cursor(const FakeClient *c, FakeClientCursor *out);
/* The migrations the client followed, by kind. */
typedef struct FakeClientMigrations {
    uint32_t semi_seamless; /* MIGRATE_END: switched to the target's session */
    uint32_t switch_host;   /* SWITCH_HOST: a new session on the target */
    uint32_t cancelled;     /* MIGRATE_CANCEL: stayed */
    uint32_t connect_errors; /* CONNECT_ERROR sent */
    uint32_t seamless;      /* every channel swapped with its migration data */
} FakeClientMigrations;
void fake_client_migrations(const FakeClient *c, FakeClientMigrations *out);
/* Where a migration the source announced stands (what management waits
 * for before `migrate`: spice-server needs MIGRATE_CONNECTED first). */
typedef enum FakeClientMigStep {
    FAKE_CLIENT_MIG_IDLE,      /* no migration under way */
    FAKE_CLIENT_MIG_LINKING,   /* MIGRATE_BEGIN followed, copies linking to the target */
    FAKE_CLIENT_MIG_CONNECTED, /* every copy linked, MIGRATE_CONNECTED sent */
    FAKE_CLIENT_MIG__COUNT
} FakeClientMigStep;
extern const char *const fake_client_mig_step_names[FAKE_CLIENT_MIG__COUNT];
FakeClientMigStep fake_client_mig_step(const FakeClient *c);
/* The switch-over gap of the last semi-seamless migration, in loop time:
 * from the source's MIGRATE_END to the first display message from the
 * target.  False when no switch has shown a display message yet. */
bool fake_client_switch_gap_ns(const FakeClient *c, uint64_t *gap_ns);
/* The last switch, both ends measured from the same start: the target's
 * first display message of any kind (and its name: a server may send a
 * cache reset before drawing anything) and its first drawing message
 * (DRAW_FILL, DRAW_COPY, COPY_BITS). */
typedef struct FakeClientSwitchGaps {
    bool have_first, have_draw;
    uint64_t first_ns, draw_ns;
    uint64_t swap_ns;      /* the display channel moved to the target (seamless: sent its blob) */
    const char *first_msg; /* registry name: constant */
} FakeClientSwitchGaps;
void fake_client_switch_gaps(const FakeClient *c, FakeClientSwitchGaps *out);
/* Drawing messages (DRAW_FILL, DRAW_COPY, COPY_BITS) received over the
 * session, and the loop times of the first and the last. */
typedef struct FakeClientDraws {
    uint64_t count, first_ns, last_ns;
} FakeClientDraws;
void fake_client_draws(const FakeClient *c, FakeClientDraws *out);
/* The host and port the client's main channel is on now. */
const char *fake_client_server_host(const FakeClient *c);
uint16_t fake_client_server_port(const FakeClient *c);
/* Close every channel, main last (as a user closing the window). */
void fake_client_disconnect(FakeClient *c);
/* Send message `msg` with the raw body given on the linked channel (type,
 * id), bypassing the marshaller (scenarios send unsolicited or malformed
 * messages with it).  -ENOENT when that channel is not linked. */
int fake_client_send_raw(FakeClient *c, uint8_t type, uint8_t id, uint16_t msg, const uint8_t *body,
                         uint32_t len);

#endif
