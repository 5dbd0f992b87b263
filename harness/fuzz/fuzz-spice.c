/*
 * fuzz-spice.c - a libFuzzer target for everything that parses SPICE bytes
 * from a peer (built with clang -fsanitize=fuzzer,address,undefined by
 * harness/fuzz/module.mk; ci/lane-fuzz runs a bounded smoke in make check).
 *
 * The first input byte chooses what the rest is fed to:
 *   0  the decoders: the body of message id (bytes 2-3) of channel type
 *      (byte 1) in both directions through the registry and the
 *      marshaller, a bitmap body, the seamless migration blobs (main,
 *      spicevmc, display, inputs; the char devices' write data copied out
 *      as the port channel takes it over), link header/message/reply, both
 *      data headers;
 *   1  the server: a client links a channel (type from byte 1) properly,
 *      then the rest arrives as what that client sends next (main,
 *      display, inputs, cursor, playback, record, port);
 *   2  the fake client: linked to a real server, its channel of that type
 *      then receives the rest as what the server sends;
 *   3  the fake client's GLZ decoder, its window holding two images the
 *      encoder made: with byte 1 odd, a valid third image (referring to
 *      both) with the rest XORed into it; even, the rest as the image.
 * Every run is on the simulator's loop, deterministic, and must leave
 * nothing behind (LeakSanitizer checks).  The ticket key is made once.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>

#include "client/fake-client-glz.h"
#include "client/fake-client-internal.h"
#include "fuzz-util.h"
#include "sim/sim.h"
#include "sim/spice-net.h"
#include "spice/spice-display.h"
#include "spice/spice-glz.h"
#include "spice/spice-inputs.h"
#include "spice/spice-link.h"
#include "spice/spice-main.h"
#include "spice/spice-messages.h"
#include "spice/spice-migrate-data.h"
#include "spice/spice-port.h"
#include "spice/spice-sound.h"

static SpiceTicketKey *key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    MigPrng p;
    mig_prng_seed(&p, 1);
    key = spice_ticket_key_new(&p, NULL);
    return key ? 0 : -1;
}

static void decoders(uint8_t type, uint16_t id, const uint8_t *b, size_t n)
{
    for (int dir = 0; dir < 2; dir++) {
        const SpiceMsgInfo *mi = spice_msg_find(type, dir, id);
        if (!mi)
            continue;
        void *obj = calloc(1, mi->desc->size);
        if (spice_marshal_decode(mi->desc, b, n, obj, NULL) == 0)
            spice_marshal_free(mi->desc, obj);
        free(obj);
    }
    SpiceBitmapBody bm;
    if (spice_marshal_decode(&spice_bitmap_desc, b, n, &bm, NULL) == 0)
        spice_marshal_free(&spice_bitmap_desc, &bm);
    /* the blobs, whatever their magic says (the version check passes any) */
    static const SpiceMDesc *const blobs[] = {&spice_mig_main_desc, &spice_mig_vmc_desc, &spice_mig_display_desc,
                                              &spice_mig_inputs_desc};
    for (size_t i = 0; i < sizeof(blobs) / sizeof(blobs[0]) && n >= 4; i++) {
        uint32_t magic = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        union {
            SpiceMigMain m;
            SpiceMigVmc v;
            SpiceMigDisplay d;
            SpiceMigInputs in;
        } u;
        if (spice_mig_decode("fuzz", blobs[i], b, n, magic, UINT32_MAX, &u, NULL) < 0)
            continue;
        const uint8_t *data;
        size_t fixed = spice_marshal_fixed_size(blobs[i]);
        const SpiceMigCharDevice *cd = blobs[i] == &spice_mig_main_desc ? &u.m.agent_base
                                       : blobs[i] == &spice_mig_vmc_desc ? &u.v.base
                                                                         : NULL;
        /* the pending write data, taken over as the port channel does */
        if (cd && spice_mig_char_device_data("fuzz", cd, b, n, fixed, &data, NULL) == 0 && cd->write_size) {
            uint8_t *copy = malloc(cd->write_size);
            if (copy)
                memcpy(copy, data, cd->write_size);
            free(copy);
        }
        spice_marshal_free(blobs[i], &u);
    }
    uint32_t size, lerr;
    if (n >= SPICE_LINK_HEADER_SIZE)
        spice_link_header_parse(b, &size, &lerr, NULL);
    SpiceLinkMessInfo m;
    spice_link_mess_parse(b, n, &m, &lerr, NULL);
    SpiceLinkReplyInfo r;
    spice_link_reply_parse(b, n, &r, NULL);
    SpiceMsgHeader h;
    if (n >= SPICE_FULL_HEADER_SIZE)
        spice_header_parse(false, b, &h, NULL);
    if (n >= SPICE_MINI_HEADER_SIZE)
        spice_header_parse(true, b, &h, NULL);
}

/* ---- 1: the server ---- */

typedef struct ServerRun {
    MigTransport *client_end;
    const uint8_t *rest;
    size_t n;
    bool written;
} ServerRun;

static void sink(void *opaque, const uint8_t *d, size_t n) {}
static const SpicePortOps port_ops = {.sink = sink};

static void linked(void *opaque, SpiceLinkResult *res)
{
    ServerRun *r = opaque;
    if (res->err)
        return;
    r->client_end = res->t;
    /* the fuzz bytes, as the linked client's next bytes */
    fuzz_write_all(r->client_end, r->rest, r->n);
    r->written = true;
}

static void server(uint8_t which, const uint8_t *rest, size_t n)
{
    static const uint8_t types[] = {SPICE_CHANNEL_MAIN,     SPICE_CHANNEL_DISPLAY, SPICE_CHANNEL_INPUTS,
                                    SPICE_CHANNEL_CURSOR,   SPICE_CHANNEL_PLAYBACK, SPICE_CHANNEL_RECORD,
                                    SPICE_CHANNEL_PORT};
    uint8_t type = types[which % sizeof(types)];
    MigLoop *loop = mig_sim_loop_new(1);
    SpiceServerConfig sc = {.key = key};
    SpiceServer *s = spice_server_new(loop, &sc, NULL);
    spice_main_add(s);
    spice_inputs_add(s, NULL);
    SpiceDisplay *d = spice_display_add(s, 0);
    spice_display_surface_create(d, 0, 16, 8, NULL);
    SpicePlayback *pb = spice_playback_add(s, 48000);
    SpiceRecord *rec = spice_record_add(s, 48000, NULL, NULL);
    SpicePort *port = spice_port_add(s, 0, "fuzz", &port_ops, NULL);
    spice_record_start(rec);
    ServerRun r = {.rest = rest, .n = n};
    SpiceLinker *main_l = NULL, *ch_l = NULL;
    MigTransport *a;
    MigPrng prng;
    mig_prng_seed(&prng, 2);
    /* main first (the session), then the channel under test */
    if ((a = sim_spice_dial(loop, NULL, s, NULL))) {
        SpiceLinkClientConfig lc = {.mess = {.channel_type = SPICE_CHANNEL_MAIN, .common = {{0xd}, 1},
                                             .channel = {{0xf}, 1}},
                                    .prng = &prng};
        ServerRun *target = type == SPICE_CHANNEL_MAIN ? &r : NULL;
        static ServerRun ignore;
        ignore = (ServerRun){0};
        main_l = spice_link_connect(loop, a, &lc, linked, target ? target : &ignore);
        mig_sim_run_for(loop, 100000000ull);
        if (type != SPICE_CHANNEL_MAIN && spice_server_client_count(s) == 1 &&
            (a = sim_spice_dial(loop, NULL, s, NULL))) {
            lc.mess.connection_id = spice_client_session_id(spice_server_client_at(s, 0));
            lc.mess.channel_type = type;
            lc.mess.channel = (SpiceCapSet){0};
            ch_l = spice_link_connect(loop, a, &lc, linked, &r);
        }
        mig_sim_run_for(loop, 1000000000ull);
        if (ignore.client_end)
            mig_transport_close(ignore.client_end);
    }
    if (r.client_end)
        mig_transport_close(r.client_end);
    spice_linker_free(main_l);
    spice_linker_free(ch_l);
    spice_display_free(d);
    spice_playback_free(pb);
    spice_record_free(rec);
    spice_port_free(port);
    spice_server_free(s);
    mig_sim_run_for(loop, 1000000000ull);
    mig_loop_free(loop);
}

/* ---- 2: the fake client ---- */

/* A channel list in the input makes the client link more channels: there
 * is nobody to link to. */
static MigTransport *no_connect(void *opaque, const char *host, uint16_t port, MigErr **errp)
{
    mig_err_set(errp, -ECONNREFUSED, "the fuzzer connects nowhere");
    return NULL;
}

static void client(uint8_t which, const uint8_t *rest, size_t n)
{
    static const uint8_t types[] = {SPICE_CHANNEL_MAIN, SPICE_CHANNEL_DISPLAY, SPICE_CHANNEL_PLAYBACK,
                                    SPICE_CHANNEL_RECORD, SPICE_CHANNEL_PORT, SPICE_CHANNEL_INPUTS};
    MigLoop *loop = mig_sim_loop_new(1);
    FakeClientConfig cc = {.connect = no_connect, .who = "fuzz"};
    FakeClient *c = fake_client_new(loop, &cc);
    MigTransport *a, *b;
    if (mig_transport_mem_pair(loop, NULL, &a, &b) == 0) {
        /* a linked channel of the client (the link stage has its own
         * decoders above), fed the bytes a server would send */
        FakeChannel *ch = mig_malloc0(sizeof(*ch));
        ch->client = c;
        ch->type = types[(which & 0x7f) % sizeof(types)]; /* 0x80: mini header */
        c->chans = mig_realloc(c->chans, sizeof(*c->chans));
        c->chans[c->nchans++] = ch;
        fake__chan_attach(ch, a, which & 0x80);
        fuzz_write_all(b, rest, n);
        mig_sim_run_for(loop, 1000000000ull);
        mig_transport_close(b);
        mig_sim_run_for(loop, 1000000000ull);
    }
    fake_client_free(c);
    mig_sim_run_for(loop, 1000000000ull);
    mig_loop_free(loop);
}

#define GLZ_W 16u
#define GLZ_H 8u

static void glz(const uint8_t *b, size_t n)
{
    SpiceGlzDict *d = spice_glz_dict_new(1, 1u << 16);
    FakeGlzWindow *w = fake_glz_window_new();
    uint32_t px[3][GLZ_W * GLZ_H];
    for (uint32_t k = 0; k < 3; k++)
        for (uint32_t i = 0; i < GLZ_W * GLZ_H; i++)
            px[k][i] = k == 2 && i % 3 ? px[i % 2][i] : (uint32_t)mig_mix64(k * 1000 + i / 4) & 0xffffff;
    MigBuf s = {0};
    SpicePixmapWaits waits;
    uint64_t id;
    for (uint32_t k = 0; k < 3; k++) {
        s.len = 0;
        spice_glz_encode(d, (uint8_t)(k % 2), px[k], GLZ_W, GLZ_H, &s, &waits, &id);
        if (k == 2)
            break;
        uint32_t *out = NULL;
        if (fake_glz_decode(w, s.data, s.len, GLZ_W, GLZ_H, &out, NULL) == 0)
            free(out);
    }
    uint32_t *out = NULL;
    if (n && (b[0] & 1)) {
        for (size_t i = 1; i < n && s.len; i++)
            s.data[(i - 1) % s.len] ^= b[i];
        if (fake_glz_decode(w, s.data, s.len, GLZ_W, GLZ_H, &out, NULL) == 0)
            free(out);
    } else if (n) {
        if (fake_glz_decode(w, b + 1, n - 1, GLZ_W, GLZ_H, &out, NULL) == 0)
            free(out);
    }
    mig_buf_free(&s);
    fake_glz_window_free(w);
    spice_glz_dict_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    if (data[0] % 4 == 3) {
        glz(data + 1, size - 1);
        return 0;
    }
    switch (data[0] % 3) {
    case 0:
        decoders(data[1], (uint16_t)(data[2] | data[3] << 8), data + 4, size - 4);
        break;
    case 1:
        server(data[1], data + 2, size - 2);
        break;
    default:
        client(data[1], data + 2, size - 2);
        break;
    }
    return 0;
}
