/*
 * spice-link.c - link messages and data headers (spice-link.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "spice-link.h"

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

bool spice_caps_has(const SpiceCapSet *s, unsigned cap)
{
    unsigned w = cap / 32;
    return w < s->n && w < SPICE_CAP_WORDS && (s->words[w] >> (cap % 32) & 1u);
}

void spice_caps_set(SpiceCapSet *s, unsigned cap)
{
    unsigned w = cap / 32;
    if (w >= SPICE_CAP_WORDS)
        return;
    s->words[w] |= 1u << (cap % 32);
    if (s->n < w + 1)
        s->n = w + 1;
}

static const char *const link_err_names[] = {
    [SPICE_LINK_ERR_OK] = "OK",
    [SPICE_LINK_ERR_ERROR] = "ERROR",
    [SPICE_LINK_ERR_INVALID_MAGIC] = "INVALID_MAGIC",
    [SPICE_LINK_ERR_INVALID_DATA] = "INVALID_DATA",
    [SPICE_LINK_ERR_VERSION_MISMATCH] = "VERSION_MISMATCH",
    [SPICE_LINK_ERR_NEED_SECURED] = "NEED_SECURED",
    [SPICE_LINK_ERR_NEED_UNSECURED] = "NEED_UNSECURED",
    [SPICE_LINK_ERR_PERMISSION_DENIED] = "PERMISSION_DENIED",
    [SPICE_LINK_ERR_BAD_CONNECTION_ID] = "BAD_CONNECTION_ID",
    [SPICE_LINK_ERR_CHANNEL_NOT_AVAILABLE] = "CHANNEL_NOT_AVAILABLE",
};

const char *spice_link_err_name(uint32_t err)
{
    return err < MIG_ARRAY_SIZE(link_err_names) ? link_err_names[err] : "?";
}

static int refuse(uint32_t *link_err, uint32_t code, MigErr **errp, const char *what)
{
    if (link_err)
        *link_err = code;
    return mig_err_set(errp, -EPROTO, "link: %s (%s)", what, spice_link_err_name(code));
}

int spice_link_header_parse(const uint8_t b[SPICE_LINK_HEADER_SIZE], uint32_t *body_size,
                            uint32_t *link_err, MigErr **errp)
{
    char what[96];
    if (le32(b) != SPICE_MAGIC) {
        snprintf(what, sizeof(what), "bad magic 0x%08x (want \"REDQ\")", le32(b));
        return refuse(link_err, SPICE_LINK_ERR_INVALID_MAGIC, errp, what);
    }
    if (le32(b + 4) != SPICE_VERSION_MAJOR) {
        snprintf(what, sizeof(what), "protocol major version %u (want %u)", le32(b + 4), SPICE_VERSION_MAJOR);
        return refuse(link_err, SPICE_LINK_ERR_VERSION_MISMATCH, errp, what);
    }
    uint32_t size = le32(b + 12);
    if (size < SPICE_LINK_MESS_SIZE || size > SPICE_LINK_MAX_BODY) {
        snprintf(what, sizeof(what), "link body of %u bytes (allowed: %u to %u)", size, SPICE_LINK_MESS_SIZE,
                 SPICE_LINK_MAX_BODY);
        return refuse(link_err, SPICE_LINK_ERR_INVALID_DATA, errp, what);
    }
    *body_size = size;
    return 0;
}

/* Read the two capability sets of a link body; `fixed` is the size of the
 * structure the caps_offset must not point into. */
static int read_caps(const uint8_t *body, size_t len, size_t at, size_t fixed, SpiceCapSet *common,
                     SpiceCapSet *channel, uint32_t *link_err, MigErr **errp)
{
    char what[128];
    uint32_t nc = le32(body + at), nch = le32(body + at + 4), off = le32(body + at + 8);
    if (nc > SPICE_LINK_MAX_CAP_WORDS || nch > SPICE_LINK_MAX_CAP_WORDS) {
        snprintf(what, sizeof(what), "%u common and %u channel capability words (at most %u each)", nc, nch,
                 SPICE_LINK_MAX_CAP_WORDS);
        return refuse(link_err, SPICE_LINK_ERR_INVALID_DATA, errp, what);
    }
    if ((nc || nch) && (off < fixed || off > len || (uint64_t)(nc + nch) * 4 > len - off)) {
        snprintf(what, sizeof(what), "capabilities at offset %u (%u words) outside the %zu-byte body", off,
                 nc + nch, len);
        return refuse(link_err, SPICE_LINK_ERR_INVALID_DATA, errp, what);
    }
    memset(common, 0, sizeof(*common));
    memset(channel, 0, sizeof(*channel));
    common->n = nc;
    channel->n = nch;
    for (uint32_t i = 0; i < nc && i < SPICE_CAP_WORDS; i++)
        common->words[i] = le32(body + off + 4 * i);
    for (uint32_t i = 0; i < nch && i < SPICE_CAP_WORDS; i++)
        channel->words[i] = le32(body + off + 4 * (nc + i));
    return 0;
}

int spice_link_mess_parse(const uint8_t *body, size_t len, SpiceLinkMessInfo *out, uint32_t *link_err,
                          MigErr **errp)
{
    if (len < SPICE_LINK_MESS_SIZE)
        return refuse(link_err, SPICE_LINK_ERR_INVALID_DATA, errp, "link message shorter than 18 bytes");
    memset(out, 0, sizeof(*out));
    out->connection_id = le32(body);
    out->channel_type = body[4];
    out->channel_id = body[5];
    return read_caps(body, len, 6, SPICE_LINK_MESS_SIZE, &out->common, &out->channel, link_err, errp);
}

static uint8_t *put_header(uint8_t *b, uint32_t size)
{
    put32(b, SPICE_MAGIC);
    put32(b + 4, SPICE_VERSION_MAJOR);
    put32(b + 8, SPICE_VERSION_MINOR);
    put32(b + 12, size);
    return b + SPICE_LINK_HEADER_SIZE;
}

static void put_caps(uint8_t *b, const SpiceCapSet *s)
{
    for (uint32_t i = 0; i < s->n && i < SPICE_CAP_WORDS; i++)
        put32(b + 4 * i, s->words[i]);
}

static uint32_t cap_words(const SpiceCapSet *s)
{
    return s ? MIG_MIN(s->n, SPICE_CAP_WORDS) : 0;
}

size_t spice_link_mess_build(const SpiceLinkMessInfo *m, uint8_t **out)
{
    uint32_t nc = cap_words(&m->common), nch = cap_words(&m->channel);
    uint32_t size = SPICE_LINK_MESS_SIZE + 4 * (nc + nch);
    uint8_t *b = mig_malloc0(SPICE_LINK_HEADER_SIZE + size);
    uint8_t *p = put_header(b, size);
    put32(p, m->connection_id);
    p[4] = m->channel_type;
    p[5] = m->channel_id;
    put32(p + 6, nc);
    put32(p + 10, nch);
    put32(p + 14, SPICE_LINK_MESS_SIZE);
    put_caps(p + SPICE_LINK_MESS_SIZE, &m->common);
    put_caps(p + SPICE_LINK_MESS_SIZE + 4 * nc, &m->channel);
    *out = b;
    return SPICE_LINK_HEADER_SIZE + size;
}

size_t spice_link_reply_build(uint32_t error, const uint8_t pub_key[SPICE_PUBKEY_SIZE],
                              const SpiceCapSet *common, const SpiceCapSet *channel, uint8_t **out)
{
    uint32_t nc = error ? 0 : cap_words(common), nch = error ? 0 : cap_words(channel);
    uint32_t size = SPICE_LINK_REPLY_SIZE + 4 * (nc + nch);
    uint8_t *b = mig_malloc0(SPICE_LINK_HEADER_SIZE + size);
    uint8_t *p = put_header(b, size);
    put32(p, error);
    if (pub_key && !error)
        memcpy(p + 4, pub_key, SPICE_PUBKEY_SIZE);
    put32(p + 166, nc);
    put32(p + 170, nch);
    put32(p + 174, SPICE_LINK_REPLY_SIZE);
    if (nc)
        put_caps(p + SPICE_LINK_REPLY_SIZE, common);
    if (nch)
        put_caps(p + SPICE_LINK_REPLY_SIZE + 4 * nc, channel);
    *out = b;
    return SPICE_LINK_HEADER_SIZE + size;
}

int spice_link_reply_parse(const uint8_t *body, size_t len, SpiceLinkReplyInfo *out, MigErr **errp)
{
    if (len < SPICE_LINK_REPLY_SIZE)
        return mig_err_set(errp, -EPROTO, "link: reply of %zu bytes, shorter than %u", len, SPICE_LINK_REPLY_SIZE);
    memset(out, 0, sizeof(*out));
    out->error = le32(body);
    memcpy(out->pub_key, body + 4, SPICE_PUBKEY_SIZE);
    return read_caps(body, len, 166, SPICE_LINK_REPLY_SIZE, &out->common, &out->channel, NULL, errp);
}

int spice_header_parse(bool mini, const uint8_t *b, SpiceMsgHeader *h, MigErr **errp)
{
    if (mini) {
        h->serial = 0;
        h->type = (uint16_t)(b[0] | b[1] << 8);
        h->size = le32(b + 2);
        return 0;
    }
    h->serial = (uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32;
    h->type = (uint16_t)(b[8] | b[9] << 8);
    h->size = le32(b + 10);
    uint32_t sub = le32(b + 14);
    if (sub)
        return mig_err_set(errp, -EPROTO, "message %u (serial %llu) carries a sub-message list at %u, "
                           "which this protocol subset does not use", h->type,
                           (unsigned long long)h->serial, sub);
    return 0;
}

void spice_header_put(bool mini, uint8_t *b, const SpiceMsgHeader *h)
{
    if (mini) {
        b[0] = (uint8_t)h->type;
        b[1] = (uint8_t)(h->type >> 8);
        put32(b + 2, h->size);
        return;
    }
    put32(b, (uint32_t)h->serial);
    put32(b + 4, (uint32_t)(h->serial >> 32));
    b[8] = (uint8_t)h->type;
    b[9] = (uint8_t)(h->type >> 8);
    put32(b + 10, h->size);
    put32(b + 14, 0);
}
