/*
 * fake-client-internal.h - what the files of the fake client share
 * (fake-client.c: channels and main; fake-client-display.c: surfaces and
 * the pixmap cache).
 */
#ifndef MIGCERT_FAKE_CLIENT_INTERNAL_H
#define MIGCERT_FAKE_CLIENT_INTERNAL_H

#include "client/fake-client.h"
#include "spice/spice-conn.h"
#include "spice/spice-linker.h"

typedef struct FakeDisplay FakeDisplay;
typedef struct FakePixmapCache FakePixmapCache;

/* Playback, record and port channels: what arrived against the devices'
 * sequence, and what the client sends. */
typedef struct FakeMedia {
    uint64_t next, received, sent, gaps, dups, starts;
    uint32_t last_time;
    bool have_time, recording;
    /* port: PORT_INIT named migcert's device (fake-vmc): its bytes are
     * checked against the sequence and the client writes its own; any
     * other port's bytes are only counted, and nothing is written to it */
    bool migcert_port;
    char port_name[64];
    MigLoopSource *timer;
    /* inputs: INPUTS_INIT came (the client may send); motion and position
     * events not yet acknowledged (at most two bunches, as spice-gtk) */
    bool inputs_on;
    uint32_t unacked;
    /* cursor: what the server said of it */
    FakeClientCursor cursor;
} FakeMedia;

typedef struct FakeChannel {
    FakeClient *client;
    uint8_t type, id;
    SpiceLinker *linker;
    SpiceConn *conn;
    FakeDisplay *display; /* display channels only */
    FakeMedia *media;     /* playback, record, port */
    /* semi-seamless migration: the copy linked to the target */
    SpiceLinker *mig_linker;
    MigTransport *mig_t; /* linked, not started until the switch */
    bool mig_mini;
    /* seamless migration (fake-client-seamless.c) */
    SpiceConn *mig_conn;  /* main: the copy that carried DO_SEAMLESS */
    SpiceConn *old_conn;  /* swapped: the source's connection, closed after the last swap */
    bool mig_expect_data; /* MIGRATE announced data: MIGRATE_DATA must come next */
    bool mig_flushed;     /* FLUSH_MARK due or sent: nothing more to the source */
    MigLoopSource *mig_flush_timer, *mig_swap_defer;
    uint8_t *mig_blob;    /* the blob for the target, until the swap */
    uint32_t mig_blob_len;
    bool mig_have_blob;
    bool mig_handed;      /* main after a NACK: its copy is the connection already */
    /* WAIT_FOR_CHANNELS / INVAL_ALL_PIXMAPS: the conn is paused until every
     * listed channel processed its serial */
    SpiceWaitItem waits[16];
    uint32_t nwaits;
    bool clear_after_wait; /* INVAL_ALL_PIXMAPS: clear the cache then */
} FakeChannel;

struct FakeClient {
    MigLoop *loop;
    FakeClientConfig cfg;
    char who[48];
    char host[256];
    char *password;
    SpiceTicketPubCache tickets; /* the server key its channels' links parsed */
    uint32_t session_id;
    FakeChannel **chans;
    size_t nchans;
    FakeClientEvent *events;
    size_t nevents, cap_events;
    char last_error[320];
    uint8_t ever[64][2]; /* every channel linked once: type, id */
    size_t never;
    /* migration */
    char mig_host[256];
    uint16_t mig_port;
    bool migrating;            /* MIGRATE_BEGIN followed, not yet ended */
    bool mig_connected;        /* every copy linked: MIGRATE_CONNECTED(_SEAMLESS) sent */
    size_t mig_wanted, mig_linked; /* copies started (main's, then the others as they start), linked */
    MigLoopSource *mig_defer;  /* the switch, run from the loop */
    int mig_action;            /* what mig_defer does */
    MigLoopSource *mig_end_timer; /* MSGC_MAIN_MIGRATE_END, delayed (cfg.migrate_end_delay_ns) */
    bool mig_seamless;         /* MIGRATE_BEGIN_SEAMLESS, and (after DO_SEAMLESS) the target ACKed */
    bool mig_answered;         /* the target answered DO_SEAMLESS */
    uint32_t mig_src_version;
    size_t seamless_left;      /* channels still to swap */
    FakeClientMigrations migs;
    /* timing (loop time): the switch-over gap, drawing messages */
    uint64_t mig_end_ns;       /* when the source's MIGRATE_END arrived */
    bool gap_pending;          /* switched, no display message from the target yet */
    bool have_gap;
    uint64_t switch_gap_ns;
    const char *gap_msg;       /* the message that ended it */
    bool draw_gap_pending;     /* switched, no drawing message from the target yet */
    bool have_draw_gap;
    uint64_t draw_gap_ns;      /* the same start to the target's first drawing message */
    uint64_t display_swap_ns;  /* the same start to the display channel's swap (seamless: its blob sent) */
    FakeClientDraws draws;
    FakePixmapCache *pcache; /* shared by every display channel (cache id 1) */
    struct FakeGlzWindow *glz; /* the GLZ window, shared the same way */
    uint64_t waits_held;     /* waits that held a channel */
    /* the client's own streams, over every session: record frames and
     * input groups sent (fake-media.h), the server's mouse mode */
    uint64_t record_frames, input_groups;
    uint32_t mouse_mode;
};

/* Record a message in the client's event list (with its loop time). */
void fake__record(FakeClient *c, const FakeChannel *ch, bool sent, uint16_t msg, const char *name);
/* Send a message of the channel's registry (records it). */
int fake__chan_send(FakeChannel *ch, uint16_t type, const void *body);

/* The display channel: DISPLAY_INIT after the link, every display message,
 * and the state freed with the channel. */
void fake__display_start(FakeChannel *ch);
int fake__display_message(FakeChannel *ch, const SpiceMsgInfo *mi, void *body, MigErr **errp);
void fake__display_free(FakeChannel *ch);
/* The shared pixmap cache: emptied (a migration's switch), freed. */
void fake__pixmap_cache_clear(FakeClient *c);
void fake__pixmap_cache_free(FakeClient *c);
/* WAIT_FOR_CHANNELS on any channel (INVAL_ALL_PIXMAPS: clear the cache
 * once the waits are over); fake__wait_check after every message and
 * every channel gone releases the channels whose waits are over. */
void fake__wait_start(FakeChannel *ch, const SpiceMsgWaitList *m, bool clear);
void fake__wait_check(FakeClient *c);

/* Attach a linked transport to a channel (its SpiceConn and channel state). */
void fake__chan_attach(FakeChannel *ch, MigTransport *t, bool mini);
/* Connect and link channel (type, id) to host:port (connection id given);
 * NULL when the connect failed (last_error says why). */
SpiceLinker *fake__link(FakeClient *c, FakeChannel *ch, const char *host, uint16_t port, uint32_t connection_id,
                        SpiceLinkDone done);
void fake__chan_free(FakeChannel *ch);
/* Link a new main channel to the client's current host (a new session). */
void fake__link_main(FakeClient *c);
/* The main channel's migration messages. */
int fake__migrate_message(FakeChannel *main_ch, const SpiceMsgInfo *mi, void *body, MigErr **errp);
void fake__migrate_free(FakeClient *c);

/* The connection of a channel (client role, the client's callbacks). */
SpiceConn *fake__chan_conn(FakeChannel *ch, MigTransport *t, bool mini);
const SpiceConnOps *fake__conn_ops(void);
/* Migration: link the copies of the channels other than main, open or
 * still linking to the source (MIGRATE_CONNECTED at once when there are
 * none); give up (CONNECT_ERROR); a channel going mid-migration takes its
 * copy with it (MIGRATE_CONNECTED when the copies left all linked). */
void fake__migrate_link_others(FakeClient *c);
void fake__migrate_fail(FakeClient *c);
void fake__migrate_chan_gone(FakeChannel *ch);
/* Seamless: main's copy linked (true: DO_SEAMLESS sent, the others wait
 * for the answer); MIGRATE / MIGRATE_DATA on any channel (1: handled,
 * 0: not a seamless message, <0: error); a channel's seamless state goes. */
bool fake__seamless_main_linked(FakeChannel *m, SpiceLinkResult *res);
int fake__seamless_message(FakeChannel *ch, const SpiceMsgInfo *mi, void *body, MigErr **errp);
void fake__seamless_free(FakeChannel *ch);
/* Media after a seamless swap: the client's stream goes on. */
void fake__media_resume(FakeChannel *ch);

/* Playback, record and port channels. */
void fake__media_start(FakeChannel *ch);
int fake__media_message(FakeChannel *ch, const SpiceMsgInfo *mi, void *body, MigErr **errp);
void fake__media_free(FakeChannel *ch);

#endif
