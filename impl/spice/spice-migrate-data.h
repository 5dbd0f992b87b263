/*
 * spice-migrate-data.h - the migration data blobs of seamless SPICE
 * migration (docs/protocol-spice.md section 9): what a source channel
 * sends in its last message, MIGRATE_DATA, and the client hands to the
 * target channel as its first.
 *
 * Owns: the C form of the main (MNMD), spicevmc (SVMD) and display (DCMD)
 * blobs and of the inputs blob (ICMD), one marshaller description each (the
 * same table style as spice-messages.c; a blob is a message body whose
 * pointers count from its first byte, header included, as the marshaller's
 * do), and their encode / decode.  Decoding checks the magic against the
 * channel, refuses a version newer than ours, bound-checks every count,
 * id and pointer against the blob, and names what was wrong; it never
 * trusts the client that carried the blob.
 * Called by: the channel classes of impl/spice (main, port, display,
 * inputs) and the fake client's tests.
 *
 * Bump rule (section 10): a layout change bumps that blob's version and
 * SPICE_MIG_PROTOCOL_VERSION; a CharDevice change bumps main and spicevmc.
 * A version at most ours loads (older layouts are kept here).
 */
#ifndef MIGCERT_SPICE_MIGRATE_DATA_H
#define MIGCERT_SPICE_MIGRATE_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/common.h"
#include "spice-marshal.h"

/* The migration protocol version sent in MIGRATE_BEGIN_SEAMLESS.  2: the
 * display blob gained the restore list (version 2); the reference speaks 1
 * (docs/protocol-spice.md section 10). */
#define SPICE_MIG_PROTOCOL_VERSION 2u

#define SPICE_MIG_MAGIC(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define SPICE_MIG_MAGIC_MAIN SPICE_MIG_MAGIC('M', 'N', 'M', 'D')
#define SPICE_MIG_MAGIC_DISPLAY SPICE_MIG_MAGIC('D', 'C', 'M', 'D')
#define SPICE_MIG_MAGIC_VMC SPICE_MIG_MAGIC('S', 'V', 'M', 'D')
#define SPICE_MIG_MAGIC_INPUTS SPICE_MIG_MAGIC('I', 'C', 'M', 'D')

#define SPICE_MIG_VERSION_MAIN 1u
#define SPICE_MIG_VERSION_DISPLAY 2u /* 1: the reference's layout; 2: + the restore list */
#define SPICE_MIG_VERSION_VMC 1u
#define SPICE_MIG_VERSION_INPUTS 1u
#define SPICE_MIG_VERSION_CHAR_DEVICE 1u

/* Surface ids a blob may name (spice-server's NUM_SURFACES). */
#define SPICE_MIG_MAX_SURFACES 10000u
/* Display channels whose cache serials the display blob carries. */
#define SPICE_MIG_MAX_DISPLAYS 4u

typedef struct SpiceMigHeader {
    uint32_t magic, version;
} SpiceMigHeader;

/* CharDevice, the first member of main and spicevmc blobs (25 bytes). */
typedef struct SpiceMigCharDevice {
    uint32_t version;
    uint8_t connected;
    uint32_t num_client_tokens, num_send_tokens;
    uint32_t write_size, write_num_client_tokens, write_data_ptr;
} SpiceMigCharDevice;

typedef struct SpiceMigMain {
    SpiceMigHeader h;
    SpiceMigCharDevice agent_base;
    uint8_t client_agent_started;
    /* agent to client */
    uint32_t chunk_header_size, chunk_port, chunk_size;
    uint8_t msg_header_done;
    uint32_t msg_header_partial_len, msg_header_ptr, msg_remaining;
    uint8_t msg_filter_result;
    /* client to agent */
    uint32_t c2a_msg_remaining;
    uint8_t c2a_msg_filter_result;
} SpiceMigMain;

typedef struct SpiceMigVmc {
    SpiceMigHeader h;
    SpiceMigCharDevice base;
} SpiceMigVmc;

typedef struct SpiceMigSurface {
    uint32_t id;
} SpiceMigSurface;

typedef struct SpiceMigSurfaces {
    SpiceMArray surfaces; /* SpiceMigSurface, u32 count */
} SpiceMigSurfaces;

typedef struct SpiceMigDisplay {
    SpiceMigHeader h;
    uint64_t message_serial;
    uint8_t low_bandwidth_setting, pixmap_cache_id;
    int64_t pixmap_cache_size;
    uint8_t pixmap_cache_freezer;
    uint64_t pixmap_cache_clients[SPICE_MIG_MAX_DISPLAYS];
    uint8_t glz_dict_id;
    uint32_t glz_dict_size, glz_max_encoders;
    uint64_t glz_last_image_id;
    SpiceMigSurfaces *surfaces_at_client; /* NULL: none listed */
} SpiceMigDisplay;

typedef struct SpiceMigInputs {
    SpiceMigHeader h;
    uint16_t motion_count;
} SpiceMigInputs;

extern const SpiceMDesc spice_mig_main_desc, spice_mig_vmc_desc, spice_mig_display_desc, spice_mig_inputs_desc;

/* The magic as text ("MNMD"), for messages. */
void spice_mig_magic_text(uint32_t magic, char out[5]);

/* Check a blob's header: `magic` for this channel, a version at most
 * `local_version`.  0, or -EPROTO with errp naming the channel and what. */
int spice_mig_check_header(const char *channel, const uint8_t *blob, size_t len, uint32_t magic,
                           uint32_t local_version, MigErr **errp);

/* Decode a blob of description d (header checked first; for main and
 * spicevmc blobs the bytes after the fixed part are the write data).  Returns 0 or a
 * negative errno with errp set; free with spice_marshal_free(d, out). */
int spice_mig_decode(const char *channel, const SpiceMDesc *d, const uint8_t *blob, size_t len, uint32_t magic,
                     uint32_t local_version, void *out, MigErr **errp);

/* A char device's pending write data inside a decoded blob: checks
 * write_data_ptr / write_size against the blob (the data lies after the
 * fixed part).  *data points into `blob`. */
int spice_mig_char_device_data(const char *channel, const SpiceMigCharDevice *cd, const uint8_t *blob, size_t len,
                               size_t fixed, const uint8_t **data, MigErr **errp);

/* Encode `in` (of description d) and append `extra` bytes after it (a char
 * device's write data: set write_data_ptr to spice_marshal_fixed_size(d)
 * first).  *out malloc'ed. */
int spice_mig_encode(const SpiceMDesc *d, const void *in, const uint8_t *extra, size_t extra_len, uint8_t **out,
                     size_t *out_len, MigErr **errp);

#endif
