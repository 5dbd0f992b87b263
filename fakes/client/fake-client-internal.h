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

/* Playback, record and port channels: what arrived against the devices'
 * sequence, and what the client sends. */
typedef struct FakeMedia {
    uint64_t next, received, sent, gaps, dups, starts;
    uint32_t last_time;
    bool have_time, recording;
    MigLoopSource *timer;
} FakeMedia;

typedef struct FakeChannel {
    FakeClient *client;
    uint8_t type, id;
    SpiceLinker *linker;
    SpiceConn *conn;
    FakeDisplay *display; /* display channels only */
    FakeMedia *media;     /* playback, record, port */
} FakeChannel;

struct FakeClient {
    MigLoop *loop;
    FakeClientConfig cfg;
    char who[48];
    char host[256];
    char *password;
    uint32_t session_id;
    FakeChannel **chans;
    size_t nchans;
    FakeClientEvent *events;
    size_t nevents, cap_events;
    char last_error[320];
};

/* Record a message in the client's event list. */
void fake__record(FakeClient *c, const FakeChannel *ch, bool sent, uint16_t msg, const char *name);
/* Send a message of the channel's registry (records it). */
int fake__chan_send(FakeChannel *ch, uint16_t type, const void *body);

/* The display channel: DISPLAY_INIT after the link, every display message,
 * and the state freed with the channel. */
void fake__display_start(FakeChannel *ch);
int fake__display_message(FakeChannel *ch, const SpiceMsgInfo *mi, void *body, MigErr **errp);
void fake__display_free(FakeChannel *ch);

/* Playback, record and port channels. */
void fake__media_start(FakeChannel *ch);
int fake__media_message(FakeChannel *ch, const SpiceMsgInfo *mi, void *body, MigErr **errp);
void fake__media_free(FakeChannel *ch);

#endif
