/*
 * spice-link.h - the link stage and the data headers of the SPICE wire
 * protocol (docs/protocol-spice.md "Link" and "Data headers"), as pure
 * functions over byte buffers: no sockets, no state.
 *
 * Owns: SpiceCapSet (a capability word set), parsing and building of
 * SpiceLinkHeader + SpiceLinkMess (client → server) and SpiceLinkHeader +
 * SpiceLinkReply (server → client), and the full (18-byte) and mini
 * (6-byte) data headers.  The structures and constants come from
 * spice-protocol's <spice/protocol.h>; this module reads them field by field
 * in little-endian, never by casting a packed structure over the buffer.
 * Called by: the server's link handling and channel clients (impl/spice),
 * the scripted client (fakes/client), tests and fuzz targets.
 *
 * Server checks, in spice-server's order: magic "REDQ" (else
 * INVALID_MAGIC), major version 2 (else VERSION_MISMATCH; the minor is
 * informational), a body of 18 to 4,096 bytes, at most 1,024 capability
 * words per set, the words inside the body (else INVALID_DATA).  A refusal
 * is a reply of the 178-byte body with no capabilities.
 */
#ifndef MIGCERT_SPICE_LINK_H
#define MIGCERT_SPICE_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/common.h"

#define SPICE_LINK_HEADER_SIZE 16u
#define SPICE_LINK_MESS_SIZE 18u
#define SPICE_LINK_REPLY_SIZE 178u
#define SPICE_LINK_MAX_BODY 4096u
#define SPICE_LINK_MAX_CAP_WORDS 1024u
#define SPICE_PUBKEY_SIZE 162u
#define SPICE_FULL_HEADER_SIZE 18u
#define SPICE_MINI_HEADER_SIZE 6u

/* The capability words a side sent; words past SPICE_CAP_WORDS are read and
 * ignored (no capability defined today lives there). */
#define SPICE_CAP_WORDS 4u
typedef struct SpiceCapSet {
    uint32_t words[SPICE_CAP_WORDS];
    uint32_t n; /* words on the wire (the count sent; at most SPICE_CAP_WORDS when built here) */
} SpiceCapSet;

bool spice_caps_has(const SpiceCapSet *s, unsigned cap);
void spice_caps_set(SpiceCapSet *s, unsigned cap);

typedef struct SpiceLinkMessInfo {
    uint32_t minor;
    uint32_t connection_id;
    uint8_t channel_type, channel_id;
    SpiceCapSet common, channel;
} SpiceLinkMessInfo;

typedef struct SpiceLinkReplyInfo {
    uint32_t error; /* SPICE_LINK_ERR_* */
    uint8_t pub_key[SPICE_PUBKEY_SIZE];
    SpiceCapSet common, channel;
} SpiceLinkReplyInfo;

/* Check the 16-byte link header at `b`.  Returns 0 and the body size that
 * follows, or -EPROTO with *link_err the SPICE_LINK_ERR_* to reply and errp
 * naming what was wrong. */
int spice_link_header_parse(const uint8_t b[SPICE_LINK_HEADER_SIZE], uint32_t *body_size,
                            uint32_t *link_err, MigErr **errp);

/* Parse a SpiceLinkMess body of `len` bytes (as announced by the header).
 * Returns 0, or -EPROTO with *link_err = INVALID_DATA and errp set. */
int spice_link_mess_parse(const uint8_t *body, size_t len, SpiceLinkMessInfo *out, uint32_t *link_err,
                          MigErr **errp);

/* Header + SpiceLinkMess + caps into a new buffer (the client's first
 * bytes).  Returns its length. */
size_t spice_link_mess_build(const SpiceLinkMessInfo *m, uint8_t **out);

/* Header + SpiceLinkReply into a new buffer.  An error other than OK gets
 * no capabilities, as spice-server sends it.  Returns its length. */
size_t spice_link_reply_build(uint32_t error, const uint8_t pub_key[SPICE_PUBKEY_SIZE],
                              const SpiceCapSet *common, const SpiceCapSet *channel, uint8_t **out);

/* Parse a SpiceLinkReply body (client side).  Returns 0 or -EPROTO. */
int spice_link_reply_parse(const uint8_t *body, size_t len, SpiceLinkReplyInfo *out, MigErr **errp);

/* A data header. */
typedef struct SpiceMsgHeader {
    uint64_t serial; /* full header only; with the mini header the reader counts */
    uint16_t type;
    uint32_t size;
} SpiceMsgHeader;

static inline size_t spice_header_size(bool mini)
{
    return mini ? SPICE_MINI_HEADER_SIZE : SPICE_FULL_HEADER_SIZE;
}

/* Parse a header of spice_header_size(mini) bytes.  A full header with a
 * sub-message list (sub_list != 0) is refused: neither spice-gtk nor
 * spice-server sends one on the channels of this project.  Returns 0 or
 * -EPROTO. */
int spice_header_parse(bool mini, const uint8_t *b, SpiceMsgHeader *h, MigErr **errp);
void spice_header_put(bool mini, uint8_t *b, const SpiceMsgHeader *h);

/* "OK", "INVALID_MAGIC", …; "?" out of range. */
const char *spice_link_err_name(uint32_t err);

#endif
