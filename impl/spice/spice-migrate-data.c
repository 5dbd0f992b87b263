/*
 * spice-migrate-data.c - the blob descriptions and their checks
 * (spice-migrate-data.h).  Each description is the layout of
 * docs/protocol-spice.md section 9 in wire order.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spice-migrate-data.h"

#define F(T, S, m) {.name = #m, .type = SPICE_MT_##T, .offset = offsetof(S, m)}
#define FS(T, S, m, d) {.name = #m, .type = SPICE_MT_##T, .offset = offsetof(S, m), .sub = &(d)}
#define FC(S, m, w, d) {.name = #m, .type = SPICE_MT_COUNTED, .offset = offsetof(S, m), .len = (w), .sub = (d)}
#define DESC(var, S, nm) \
    const SpiceMDesc var = {.name = nm, .size = sizeof(S), .fields = var##_f, .nfields = MIG_ARRAY_SIZE(var##_f)}
#define LOCAL_DESC(var, S, nm) static DESC(var, S, nm)

static const SpiceMField header_desc_f[] = {F(U32, SpiceMigHeader, magic), F(U32, SpiceMigHeader, version)};
LOCAL_DESC(header_desc, SpiceMigHeader, "SpiceMigrateDataHeader");

static const SpiceMField char_device_desc_f[] = {
    F(U32, SpiceMigCharDevice, version),
    F(U8, SpiceMigCharDevice, connected),
    F(U32, SpiceMigCharDevice, num_client_tokens),
    F(U32, SpiceMigCharDevice, num_send_tokens),
    F(U32, SpiceMigCharDevice, write_size),
    F(U32, SpiceMigCharDevice, write_num_client_tokens),
    F(U32, SpiceMigCharDevice, write_data_ptr),
};
LOCAL_DESC(char_device_desc, SpiceMigCharDevice, "CharDevice");

static const SpiceMField spice_mig_main_desc_f[] = {
    FS(STRUCT, SpiceMigMain, h, header_desc),
    FS(STRUCT, SpiceMigMain, agent_base, char_device_desc),
    F(U8, SpiceMigMain, client_agent_started),
    F(U32, SpiceMigMain, chunk_header_size),
    F(U32, SpiceMigMain, chunk_port),
    F(U32, SpiceMigMain, chunk_size),
    F(U8, SpiceMigMain, msg_header_done),
    F(U32, SpiceMigMain, msg_header_partial_len),
    F(U32, SpiceMigMain, msg_header_ptr),
    F(U32, SpiceMigMain, msg_remaining),
    F(U8, SpiceMigMain, msg_filter_result),
    F(U32, SpiceMigMain, c2a_msg_remaining),
    F(U8, SpiceMigMain, c2a_msg_filter_result),
};
DESC(spice_mig_main_desc, SpiceMigMain, "MNMD");

static const SpiceMField spice_mig_vmc_desc_f[] = {
    FS(STRUCT, SpiceMigVmc, h, header_desc),
    FS(STRUCT, SpiceMigVmc, base, char_device_desc),
};
DESC(spice_mig_vmc_desc, SpiceMigVmc, "SVMD");

static const SpiceMField surface_desc_f[] = {F(U32, SpiceMigSurface, id)};
LOCAL_DESC(surface_desc, SpiceMigSurface, "surface");

static const SpiceMField surfaces_desc_f[] = {FC(SpiceMigSurfaces, surfaces, 4, &surface_desc)};
LOCAL_DESC(surfaces_desc, SpiceMigSurfaces, "surfaces_at_client");

static const SpiceMField spice_mig_display_desc_f[] = {
    FS(STRUCT, SpiceMigDisplay, h, header_desc),
    F(U64, SpiceMigDisplay, message_serial),
    F(U8, SpiceMigDisplay, low_bandwidth_setting),
    F(U8, SpiceMigDisplay, pixmap_cache_id),
    F(I64, SpiceMigDisplay, pixmap_cache_size),
    F(U8, SpiceMigDisplay, pixmap_cache_freezer),
    F(U64, SpiceMigDisplay, pixmap_cache_clients[0]),
    F(U64, SpiceMigDisplay, pixmap_cache_clients[1]),
    F(U64, SpiceMigDisplay, pixmap_cache_clients[2]),
    F(U64, SpiceMigDisplay, pixmap_cache_clients[3]),
    F(U8, SpiceMigDisplay, glz_dict_id),
    F(U32, SpiceMigDisplay, glz_dict_size),
    F(U32, SpiceMigDisplay, glz_max_encoders),
    F(U64, SpiceMigDisplay, glz_last_image_id),
    FS(PTR, SpiceMigDisplay, surfaces_at_client, surfaces_desc),
};
DESC(spice_mig_display_desc, SpiceMigDisplay, "DCMD");

static const SpiceMField spice_mig_inputs_desc_f[] = {
    FS(STRUCT, SpiceMigInputs, h, header_desc),
    F(U16, SpiceMigInputs, motion_count),
};
DESC(spice_mig_inputs_desc, SpiceMigInputs, "ICMD");

void spice_mig_magic_text(uint32_t magic, char out[5])
{
    for (int i = 0; i < 4; i++) {
        char ch = (char)(magic >> (8 * i));
        out[i] = ch >= 0x20 && ch < 0x7f ? ch : '?';
    }
    out[4] = 0;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int spice_mig_check_header(const char *channel, const uint8_t *blob, size_t len, uint32_t magic,
                           uint32_t local_version, MigErr **errp)
{
    char want[5], got[5];
    spice_mig_magic_text(magic, want);
    if (len < 8)
        return mig_err_set(errp, -EPROTO, "%s migration data: %zu byte(s), shorter than its 8-byte header",
                           channel, len);
    uint32_t m = le32(blob), v = le32(blob + 4);
    spice_mig_magic_text(m, got);
    if (m != magic)
        return mig_err_set(errp, -EPROTO, "%s migration data: magic 0x%08x (\"%s\"), expected \"%s\"", channel, m,
                           got, want);
    if (v > local_version)
        return mig_err_set(errp, -EPROTO, "%s migration data: version %u is newer than this server's %u (%s)",
                           channel, v, local_version, want);
    return 0;
}

int spice_mig_decode(const char *channel, const SpiceMDesc *d, const uint8_t *blob, size_t len, uint32_t magic,
                     uint32_t local_version, void *out, MigErr **errp)
{
    memset(out, 0, d->size);
    int r = spice_mig_check_header(channel, blob, len, magic, local_version, errp);
    if (r < 0)
        return r;
    size_t fixed = spice_marshal_fixed_size(d);
    if (len < fixed)
        return mig_err_set(errp, -EPROTO, "%s migration data (%s): %zu byte(s), shorter than its %zu-byte layout",
                           channel, d->name, len, fixed);
    MigErr *e = NULL;
    /* a char device's write data lies after the fixed part (write_data_ptr) */
    bool char_device = d == &spice_mig_main_desc || d == &spice_mig_vmc_desc;
    r = spice_marshal_decode(d, blob, char_device ? fixed : len, out, &e);
    if (r < 0) {
        mig_err_set(errp, r, "%s migration data: %s", channel, e ? e->msg : "does not decode");
        mig_err_free(e);
    }
    return r;
}

int spice_mig_char_device_data(const char *channel, const SpiceMigCharDevice *cd, const uint8_t *blob, size_t len,
                               size_t fixed, const uint8_t **data, MigErr **errp)
{
    *data = NULL;
    if (cd->version > SPICE_MIG_VERSION_CHAR_DEVICE)
        return mig_err_set(errp, -EPROTO, "%s migration data: CharDevice version %u is newer than this server's %u",
                           channel, cd->version, SPICE_MIG_VERSION_CHAR_DEVICE);
    if (!cd->write_size)
        return 0;
    if (cd->write_data_ptr < fixed || cd->write_data_ptr > len || cd->write_size > len - cd->write_data_ptr)
        return mig_err_set(errp, -EPROTO, "%s migration data: %u byte(s) of write data at %u lie outside the "
                           "%zu-byte blob (data may start at %zu)", channel, cd->write_size, cd->write_data_ptr,
                           len, fixed);
    *data = blob + cd->write_data_ptr;
    return 0;
}

int spice_mig_encode(const SpiceMDesc *d, const void *in, const uint8_t *extra, size_t extra_len, uint8_t **out,
                     size_t *out_len, MigErr **errp)
{
    uint8_t *b;
    size_t n;
    int r = spice_marshal_encode(d, in, &b, &n, errp);
    if (r < 0)
        return r;
    if (extra_len) {
        b = mig_realloc(b, n + extra_len);
        memcpy(b + n, extra, extra_len);
        n += extra_len;
    }
    *out = b;
    *out_len = n;
    return 0;
}
