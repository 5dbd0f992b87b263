/*
 * spice-linker.h - the link stage of one SPICE connection, driven on the
 * event loop, in the server's role (SpiceLinkAccept) or the client's
 * (SpiceLinkConnect) (docs/protocol-spice.md "Link").
 *
 * Server, in spice-server's order:
 *   read SpiceLinkHeader + SpiceLinkMess → refuse (INVALID_MAGIC,
 *   VERSION_MISMATCH, INVALID_DATA) or ask the owner (check: channel
 *   available, connection id known) → SpiceLinkReply with the RSA public key
 *   and the server's capabilities → when both sides have
 *   PROTOCOL_AUTH_SELECTION, a u32 mechanism (SPICE only: SASL is refused
 *   with PERMISSION_DENIED) → a 128-byte ticket, decrypted even when
 *   ticketing is disabled → the u32 link result → the data phase.
 * Client: the mirror image, with the password encrypted under the key of
 * the reply.  A refusal closes the transport after its reply went out.
 *
 * Owns: the transport until `done` runs: on success `done` receives it
 * (with the mini-header decision and both sides' capabilities), on failure
 * it is closed and `done` gets the reason.  `done` runs from the loop,
 * exactly once, unless the linker is freed first.
 * Called by: the server's listener code and the scripted client.
 */
#ifndef MIGCERT_SPICE_LINKER_H
#define MIGCERT_SPICE_LINKER_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/loop.h"
#include "../transport/transport.h"
#include "spice-link.h"
#include "spice-ticket.h"

typedef struct SpiceLinker SpiceLinker;

typedef struct SpiceLinkResult {
    int err;              /* 0 linked; else a negative errno */
    uint32_t link_err;    /* the SPICE_LINK_ERR_* sent or received */
    char reason[256];     /* why it failed, "" on success */
    MigTransport *t;      /* success: the transport, now the caller's */
    bool mini_header;     /* both sides have MINI_HEADER */
    SpiceLinkMessInfo mess;   /* what the client asked */
    SpiceCapSet server_common, server_channel; /* what the server offered */
} SpiceLinkResult;

typedef void (*SpiceLinkDone)(void *opaque, SpiceLinkResult *res);

typedef struct SpiceLinkServerConfig {
    const SpiceTicketKey *key;
    bool ticketing;         /* false: disable-ticketing (the ticket is still decrypted) */
    const char *password;   /* with ticketing (copied); NULL: every ticket is refused */
    uint64_t password_expires_ns; /* loop time from which the password is refused; 0: never */
    /* SPICE_LINK_ERR_OK to accept the link, else the error to reply; may
     * fill `why`.  Also gives the server's capabilities for the channel. */
    uint32_t (*check)(void *opaque, const SpiceLinkMessInfo *m, SpiceCapSet *common, SpiceCapSet *channel,
                      char *why, size_t why_len);
} SpiceLinkServerConfig;

SpiceLinker *spice_link_accept(MigLoop *loop, MigTransport *t, const SpiceLinkServerConfig *cfg,
                               SpiceLinkDone done, void *opaque);

typedef struct SpiceLinkClientConfig {
    SpiceLinkMessInfo mess; /* connection id, channel, the client's capabilities */
    const char *password;   /* "" or NULL: none */
    MigPrng *prng;          /* the OAEP seed */
    SpiceTicketPubCache *tickets; /* the client's parsed server key, or NULL */
} SpiceLinkClientConfig;

SpiceLinker *spice_link_connect(MigLoop *loop, MigTransport *t, const SpiceLinkClientConfig *cfg,
                                SpiceLinkDone done, void *opaque);

/* Stop (closing the transport if it is still the linker's); `done` will
 * not run.  NULL is a no-op. */
void spice_linker_free(SpiceLinker *l);

#endif
