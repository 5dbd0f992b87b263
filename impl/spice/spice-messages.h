/*
 * spice-messages.h - the C form of every SPICE message body the project
 * speaks, and the registry that finds a body's description by (channel
 * type, direction, message id) (docs/protocol-spice.md "Messages").
 *
 * Owns: the Spice* body structures below and their descriptions
 * (spice-messages.c), one per layout; message ids, channel types and enum
 * values come from spice-protocol's <spice/enums.h>.
 * Called by: the server channels (impl/spice), the scripted client
 * (fakes/client), tests and fuzz targets, always through
 * spice_marshal_encode()/spice_marshal_decode().
 *
 * Bump rule: a layout is SPICE's and never changes here; a message the
 * project starts to speak gets a structure, a description and a registry
 * row, and a test with its expected bytes (harness/unit/test-spice-marshal.c).
 *
 * Simplifications, each refused cleanly when met on the wire: a Clip is its
 * type byte only (NONE; RECTS is not sent or accepted), a Brush is SOLID (a
 * colour), an Image's type-specific payload is raw bytes that the display
 * decodes with spice_bitmap_desc when the type is BITMAP.
 */
#ifndef MIGCERT_SPICE_MESSAGES_H
#define MIGCERT_SPICE_MESSAGES_H

#include <stdbool.h>
#include <stdint.h>

#include "spice-marshal.h"

/* ---- shared pieces */
typedef struct SpiceRect {
    int32_t top, left, bottom, right;
} SpiceRect;

typedef struct SpicePoint {
    int32_t x, y;
} SpicePoint;

typedef struct SpiceImage {
    uint64_t id;
    uint8_t type;  /* SPICE_IMAGE_TYPE_* */
    uint8_t flags; /* SPICE_IMAGE_FLAGS_* */
    uint32_t width, height;
    SpiceMBytes payload; /* BITMAP: a SpiceBitmapBody; FROM_CACHE: empty */
} SpiceImage;

typedef struct SpiceBitmapBody {
    uint8_t format; /* SPICE_BITMAP_FMT_* */
    uint8_t flags;  /* SPICE_BITMAP_FLAGS_* */
    uint32_t x, y, stride;
    uint32_t palette; /* offset of a palette: always 0 (none) here */
    SpiceMBytes data; /* stride * y bytes */
} SpiceBitmapBody;

typedef struct SpiceQMaskBody {
    uint8_t flags;
    SpicePoint pos;
    SpiceImage *bitmap; /* NULL: no mask */
} SpiceQMaskBody;

typedef struct SpiceDrawBase {
    uint32_t surface_id;
    SpiceRect box;
    uint8_t clip_type; /* SPICE_CLIP_TYPE_NONE only */
} SpiceDrawBase;

typedef struct SpiceChannelRef {
    uint8_t type, id;
} SpiceChannelRef;

typedef struct SpiceWaitItem {
    uint8_t channel_type, channel_id;
    uint64_t serial;
} SpiceWaitItem;

typedef struct SpiceResourceRef {
    uint8_t type;
    uint64_t id;
} SpiceResourceRef;

typedef struct SpiceU16Item {
    uint16_t v;
} SpiceU16Item;

typedef struct SpiceDstInfo {
    uint16_t port, sport; /* 0xffff: none */
    SpiceMBytes host;          /* NUL-terminated, NUL counted */
    SpiceMBytes cert_subject;  /* same; empty: none */
} SpiceDstInfo;

/* ---- bodies (one structure serves every message of the same layout) */
typedef struct SpiceMsgEmpty {
    uint8_t unused;
} SpiceMsgEmpty;

typedef struct SpiceMsgU8 {
    uint8_t v;
} SpiceMsgU8;
typedef struct SpiceMsgU16 {
    uint16_t v;
} SpiceMsgU16;
typedef struct SpiceMsgU32 {
    uint32_t v;
} SpiceMsgU32;
typedef struct SpiceMsgU64 {
    uint64_t v;
} SpiceMsgU64;
typedef struct SpiceMsgBytes {
    SpiceMBytes data;
} SpiceMsgBytes;

typedef struct SpiceMsgSetAck {
    uint32_t generation, window;
} SpiceMsgSetAck;

typedef struct SpiceMsgPing {
    uint32_t id;
    uint64_t timestamp;
    SpiceMBytes data;
} SpiceMsgPing;

typedef struct SpiceMsgPong {
    uint32_t id;
    uint64_t timestamp;
} SpiceMsgPong;

typedef struct SpiceMsgWaitList {
    SpiceMArray items; /* SpiceWaitItem, u8 count */
} SpiceMsgWaitList;

typedef struct SpiceMsgDisconnecting {
    uint64_t time_stamp;
    uint32_t reason;
} SpiceMsgDisconnecting;

typedef struct SpiceMsgNotify {
    uint64_t time_stamp;
    uint32_t severity, visibility, what;
    SpiceMBytes text; /* u32 length, then the text */
    SpiceMBytes tail; /* spice-server adds a NUL the length does not count */
} SpiceMsgNotify;

typedef struct SpiceMsgMainInit {
    uint32_t session_id, display_channels_hint, supported_mouse_modes, current_mouse_mode,
        agent_connected, agent_tokens, multi_media_time, ram_hint;
} SpiceMsgMainInit;

typedef struct SpiceMsgChannelsList {
    SpiceMArray channels; /* SpiceChannelRef, u32 count */
} SpiceMsgChannelsList;

typedef struct SpiceMsgMouseMode {
    uint16_t supported, current;
} SpiceMsgMouseMode;

typedef struct SpiceMsgName {
    SpiceMBytes name; /* u32 length, NUL included */
} SpiceMsgName;

typedef struct SpiceMsgUuid {
    uint8_t uuid[16];
} SpiceMsgUuid;

typedef struct SpiceMsgMigrateBegin {
    SpiceDstInfo dst;
} SpiceMsgMigrateBegin;

typedef struct SpiceMsgMigrateBeginSeamless {
    SpiceDstInfo dst;
    uint32_t src_mig_version;
} SpiceMsgMigrateBeginSeamless;

typedef struct SpiceMsgDisplayInit {
    uint8_t pixmap_cache_id;
    int64_t pixmap_cache_size;
    uint8_t glz_dictionary_id;
    int32_t glz_dictionary_window_size;
} SpiceMsgDisplayInit;

typedef struct SpiceMsgSurfaceCreate {
    uint32_t surface_id, width, height, format, flags;
} SpiceMsgSurfaceCreate;

typedef struct SpiceMsgDrawFill {
    SpiceDrawBase base;
    uint8_t brush_type; /* SPICE_BRUSH_TYPE_SOLID */
    uint32_t color;
    uint16_t rop_descriptor;
    SpiceQMaskBody mask;
} SpiceMsgDrawFill;

typedef struct SpiceMsgDrawCopy {
    SpiceDrawBase base;
    SpiceImage *src_bitmap;
    SpiceRect src_area;
    uint16_t rop_descriptor;
    uint8_t scale_mode;
    SpiceQMaskBody mask;
} SpiceMsgDrawCopy;

typedef struct SpiceMsgCopyBits {
    SpiceDrawBase base;
    SpicePoint src_pos;
} SpiceMsgCopyBits;

typedef struct SpiceMsgInvalList {
    SpiceMArray resources; /* SpiceResourceRef, u16 count */
} SpiceMsgInvalList;

typedef struct SpiceMsgPlaybackStart {
    uint32_t channels;
    uint16_t format;
    uint32_t frequency, time;
} SpiceMsgPlaybackStart;

typedef struct SpiceMsgRecordStart {
    uint32_t channels;
    uint16_t format;
    uint32_t frequency;
} SpiceMsgRecordStart;

typedef struct SpiceMsgAudioData {
    uint32_t time;
    SpiceMBytes data;
} SpiceMsgAudioData;

typedef struct SpiceMsgAudioMode {
    uint32_t time;
    uint16_t mode;
    SpiceMBytes data;
} SpiceMsgAudioMode;

typedef struct SpiceMsgVolume {
    SpiceMArray volume; /* SpiceU16Item, u8 count */
} SpiceMsgVolume;

typedef struct SpiceMsgMouseMotion {
    int32_t dx, dy;
    uint16_t buttons_state;
} SpiceMsgMouseMotion;

typedef struct SpiceMsgMousePosition {
    uint32_t x, y;
    uint16_t buttons_state;
    uint8_t display_id;
} SpiceMsgMousePosition;

typedef struct SpiceMsgMouseButton {
    uint8_t button;
    uint16_t buttons_state;
} SpiceMsgMouseButton;

/* The cursor channel (spice.proto's CursorChannel): a position of two i16
 * (carried as their u16 bits), then a Cursor: its flags, and unless they
 * say NONE a header (spice_cursor_header_desc) followed by the shape's
 * bytes to the end of the body.  The messages carry the Cursor as `shape`
 * (REST): the header's presence depends on the flags, so the sender
 * encodes it and the receiver decodes it with the same description. */
typedef struct SpiceMsgCursorInit {
    uint16_t x, y;
    uint16_t trail_length, trail_frequency;
    uint8_t visible;
    uint16_t cursor_flags; /* SPICE_CURSOR_FLAGS_NONE: no shape follows */
    SpiceMBytes shape;     /* the header and the shape's bytes; empty with NONE */
} SpiceMsgCursorInit;

typedef struct SpiceMsgCursorSet {
    uint16_t x, y;
    uint8_t visible;
    uint16_t cursor_flags;
    SpiceMBytes shape;
} SpiceMsgCursorSet;

typedef struct SpiceMsgCursorMove {
    uint16_t x, y;
} SpiceMsgCursorMove;

/* What follows a Cursor's flags unless they say NONE. */
typedef struct SpiceCursorHeader {
    uint64_t unique;
    uint8_t type; /* SPICE_CURSOR_TYPE_*: ALPHA is width x height x 4 bytes */
    uint16_t width, height, hot_x, hot_y;
    SpiceMBytes data;
} SpiceCursorHeader;

typedef struct SpiceMsgPortInit {
    SpiceMBytes name; /* NUL-terminated, NUL counted */
    uint8_t opened;
} SpiceMsgPortInit;

/* ---- descriptions */
extern const SpiceMDesc spice_image_desc, spice_bitmap_desc, spice_cursor_header_desc;

/* One row of the registry. */
typedef struct SpiceMsgInfo {
    uint8_t channel_type; /* SPICE_CHANNEL_*, 0: every channel (the base messages) */
    bool from_client;
    uint16_t id;
    const char *name;     /* "MAIN_INIT", "DISPLAY_DRAW_COPY", "ACK_SYNC" */
    const SpiceMDesc *desc;
} SpiceMsgInfo;

/* The description of message `id` sent on a channel of `channel_type` by
 * the client (from_client) or the server; NULL when that channel does not
 * have that message.  The base messages (ids below 100) belong to every
 * channel; PORT has the SPICEVMC messages too. */
const SpiceMsgInfo *spice_msg_find(uint8_t channel_type, bool from_client, uint16_t id);

/* The whole registry, for tests and fuzzers (constant data). */
const SpiceMsgInfo *spice_msg_table(size_t *count);

/* "MAIN", "DISPLAY", …, "PORT"; "?" for an unknown type. */
const char *spice_channel_type_name(uint8_t type);

#endif
