/*
 * spice-conn.h - one SPICE channel connection after its link stage: framing,
 * the send queue ("pipe"), serials, the ACK window and PING/PONG
 * (docs/protocol-spice.md "Data headers" and "Base messages").
 *
 * Owns: SpiceConn, the part spice-server's RedChannelClient and spice-gtk's
 * SpiceChannel have in common, in one role or the other:
 *   - server role: sends SET_ACK when asked and stops writing while more
 *     than twice the window of messages are un-ACKed; answers nothing by
 *     itself; takes ACK_SYNC, ACK and PONG;
 *   - client role: answers SET_ACK with ACK_SYNC, sends ACK every `window`
 *     messages, answers PING with PONG.
 * Every other message is decoded through the message registry
 * (spice-messages.h) and handed to the owner's on_message callback as a
 * decoded body; a message the registry does not know for this channel and
 * direction, a body that does not decode, or one larger than max_in closes
 * the connection with a reason naming the channel, the message and what was
 * wrong, and the process goes on.
 * Called by: the server's channel clients (impl/spice) and the scripted
 * client (fakes/client).
 *
 * Invariants: nothing blocks: reads and writes go through a non-blocking
 * MigTransport watched on the loop; callbacks never run from inside a
 * spice_conn_* call (on_closed is deferred to the loop); serials count from
 * 1 per direction (with the mini header too, where they are implicit).
 * After close, sends are dropped and no callback but on_closed runs.
 */
#ifndef MIGCERT_SPICE_CONN_H
#define MIGCERT_SPICE_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/loop.h"
#include "../transport/transport.h"
#include "spice-marshal.h"
#include "spice-messages.h"

typedef struct SpiceConn SpiceConn;

typedef struct SpiceConnOps {
    /* A decoded message from the peer (body owned by the conn: valid during
     * the call).  Return 0, or a negative errno with errp set to close the
     * connection with that reason ("unexpected DISPLAY_INIT"). */
    int (*on_message)(void *opaque, const SpiceMsgInfo *mi, void *body, uint32_t size, MigErr **errp);
    /* The connection closed: err 0 when the peer closed cleanly, else why.
     * Runs once, from the loop; the owner may free the conn inside, but
     * `reason` is the conn's own text: read it before that. */
    void (*on_closed)(void *opaque, int err, const char *reason);
    /* Optional: every message written entirely (for hand-over points). */
    void (*on_drained)(void *opaque);
    /* Optional, server role: the PONG of spice_conn_ping's `id` arrived:
     * the client has read everything sent before that PING. */
    void (*on_pong)(void *opaque, uint32_t id);
} SpiceConnOps;

/* Bytes queued and unread by the peer past which the connection is closed
 * (-ENOBUFS, "send queue over 64 MiB unread by the peer"); a single message
 * into an empty queue is always accepted. */
#define SPICE_CONN_MAX_BACKLOG (64u << 20)

typedef struct SpiceConnConfig {
    bool is_server;
    bool mini_header;
    uint8_t channel_type, channel_id;
    uint32_t max_in;     /* largest body accepted from the peer */
    const char *who;     /* trace prefix, e.g. "src.spice.display0" */
} SpiceConnConfig;

/* Take over `t` (closed by the conn).  Starts reading at once. */
SpiceConn *spice_conn_new(MigLoop *loop, MigTransport *t, const SpiceConnConfig *cfg, const SpiceConnOps *ops,
                          void *opaque);
/* Close (if open) and free; no callback runs afterwards. */
void spice_conn_free(SpiceConn *c);

/* Queue message `type` whose body is `body` encoded by `d`.  Returns 0,
 * -EPIPE when closed, or -EINVAL when the body does not encode. */
int spice_conn_send(SpiceConn *c, uint16_t type, const SpiceMDesc *d, const void *body, MigErr **errp);
/* Queue a message with an already encoded body (copied). */
int spice_conn_send_raw(SpiceConn *c, uint16_t type, const uint8_t *body, uint32_t len);

/* Server role: send SET_ACK(generation, window) and enforce the window. */
int spice_conn_set_ack(SpiceConn *c, uint32_t generation, uint32_t window);
/* Server role: send PING(id, now) with `pad` zero bytes of padding.
 * Returns the PING's id (> 0), or a negative errno. */
int spice_conn_ping(SpiceConn *c, uint32_t pad);

/* Close with a reason (logged in the trace); on_closed follows from the
 * loop.  err: a negative errno, or 0 for an orderly close. */
void spice_conn_close(SpiceConn *c, int err, const char *fmt, ...) MIG_PRINTF(3, 4);

/* Client role, WAIT_FOR_CHANNELS: hand over no message after the current
 * one (they stay buffered and unread, their serials not yet counted as
 * received) until spice_conn_resume, which hands them over from the loop. */
void spice_conn_pause(SpiceConn *c);
void spice_conn_resume(SpiceConn *c);
bool spice_conn_paused(const SpiceConn *c);

bool spice_conn_is_open(const SpiceConn *c);
/* Bytes queued and not yet accepted by the transport. */
uint64_t spice_conn_backlog(const SpiceConn *c);
/* Messages queued and not yet fully written. */
uint32_t spice_conn_queued_messages(const SpiceConn *c);
/* Serial of the last message queued / received. */
uint64_t spice_conn_last_sent_serial(const SpiceConn *c);
uint64_t spice_conn_last_received_serial(const SpiceConn *c);
/* Continue serials from `serial` (seamless migration: the next message
 * sent gets serial + 1). */
void spice_conn_set_sent_serial(SpiceConn *c, uint64_t serial);
/* Seamless migration (docs/protocol-spice.md section 8.2):
 * hold: queue messages without writing them (a target channel before the
 *   client's migration data);
 * renumber: the queued messages and the next ones count on from `serial`
 *   (the display's message_serial from the source);
 * adopt_serial: take the next received message's serial as the peer's
 *   count (its serials go on from the other server);
 * resume_ack: server role, the ACK window of generation / window as the
 *   source left it, with nothing un-ACKed (no SET_ACK is sent);
 * inherit: client role, a connection to the target continues `from`'s
 *   received serials and ACK count (with the full header it adopts the
 *   target's). */
void spice_conn_hold(SpiceConn *c, bool hold);
void spice_conn_renumber(SpiceConn *c, uint64_t serial);
void spice_conn_adopt_serial(SpiceConn *c);
void spice_conn_resume_ack(SpiceConn *c, uint32_t generation, uint32_t window);
void spice_conn_inherit(SpiceConn *c, const SpiceConn *from);
/* Hand the connection to another owner (a client's copy becoming the
 * channel's connection at a seamless swap). */
void spice_conn_set_ops(SpiceConn *c, const SpiceConnOps *ops, void *opaque);
/* Round trips measured by PONGs (server role); 0 before the first. */
uint64_t spice_conn_last_rtt_ns(const SpiceConn *c);
/* The transport, for owners that hand the socket over (migration). */
MigTransport *spice_conn_transport(SpiceConn *c);

#endif
