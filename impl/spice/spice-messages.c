/*
 * spice-messages.c - the descriptions of the SPICE message bodies of
 * spice-messages.h and the registry by (channel type, direction, id).  Each
 * description is the field list of one layout of the SPICE protocol, in
 * wire order; offsets into the C structures come from offsetof().
 */
#include <stddef.h>

#include <spice/enums.h>

#include "spice-messages.h"

#define F(T, S, m) {.name = #m, .type = SPICE_MT_##T, .offset = offsetof(S, m)}
#define FL(T, S, m, l) {.name = #m, .type = SPICE_MT_##T, .offset = offsetof(S, m), .len = (l)}
#define FS(T, S, m, d) {.name = #m, .type = SPICE_MT_##T, .offset = offsetof(S, m), .sub = &(d)}
#define FC(S, m, w, d) {.name = #m, .type = SPICE_MT_COUNTED, .offset = offsetof(S, m), .len = (w), .sub = (d)}
#define DESC(var, S, nm) \
    const SpiceMDesc var = {.name = nm, .size = sizeof(S), .fields = var##_f, .nfields = MIG_ARRAY_SIZE(var##_f)}
#define LOCAL_DESC(var, S, nm) static DESC(var, S, nm)

/* ---------------------------------------------------------------- pieces */
static const SpiceMField rect_desc_f[] = {
    F(I32, SpiceRect, top), F(I32, SpiceRect, left), F(I32, SpiceRect, bottom), F(I32, SpiceRect, right),
};
LOCAL_DESC(rect_desc, SpiceRect, "Rect");

static const SpiceMField point_desc_f[] = {F(I32, SpicePoint, x), F(I32, SpicePoint, y)};
LOCAL_DESC(point_desc, SpicePoint, "Point");

static const SpiceMField spice_image_desc_f[] = {
    F(U64, SpiceImage, id),    F(U8, SpiceImage, type),     F(U8, SpiceImage, flags),
    F(U32, SpiceImage, width), F(U32, SpiceImage, height), F(REST, SpiceImage, payload),
};
DESC(spice_image_desc, SpiceImage, "Image");

static const SpiceMField spice_bitmap_desc_f[] = {
    F(U8, SpiceBitmapBody, format), F(U8, SpiceBitmapBody, flags),   F(U32, SpiceBitmapBody, x),
    F(U32, SpiceBitmapBody, y),     F(U32, SpiceBitmapBody, stride), F(U32, SpiceBitmapBody, palette),
    F(REST, SpiceBitmapBody, data),
};
DESC(spice_bitmap_desc, SpiceBitmapBody, "Bitmap");

static const SpiceMField qmask_desc_f[] = {
    F(U8, SpiceQMaskBody, flags), FS(STRUCT, SpiceQMaskBody, pos, point_desc),
    FS(PTR, SpiceQMaskBody, bitmap, spice_image_desc),
};
LOCAL_DESC(qmask_desc, SpiceQMaskBody, "QMask");

static const SpiceMField draw_base_desc_f[] = {
    F(U32, SpiceDrawBase, surface_id), FS(STRUCT, SpiceDrawBase, box, rect_desc),
    F(U8, SpiceDrawBase, clip_type),
};
LOCAL_DESC(draw_base_desc, SpiceDrawBase, "DrawBase");

static const SpiceMField channel_ref_desc_f[] = {F(U8, SpiceChannelRef, type), F(U8, SpiceChannelRef, id)};
LOCAL_DESC(channel_ref_desc, SpiceChannelRef, "ChannelId");

static const SpiceMField wait_item_desc_f[] = {
    F(U8, SpiceWaitItem, channel_type), F(U8, SpiceWaitItem, channel_id), F(U64, SpiceWaitItem, serial),
};
LOCAL_DESC(wait_item_desc, SpiceWaitItem, "WaitForChannel");

static const SpiceMField resource_desc_f[] = {F(U8, SpiceResourceRef, type), F(U64, SpiceResourceRef, id)};
LOCAL_DESC(resource_desc, SpiceResourceRef, "ResourceID");

static const SpiceMField u16_item_desc_f[] = {F(U16, SpiceU16Item, v)};
LOCAL_DESC(u16_item_desc, SpiceU16Item, "u16");

static const SpiceMField dst_info_desc_f[] = {
    F(U16, SpiceDstInfo, port), F(U16, SpiceDstInfo, sport), F(SIZED, SpiceDstInfo, host),
    F(SIZED, SpiceDstInfo, cert_subject),
};
LOCAL_DESC(dst_info_desc, SpiceDstInfo, "DstInfo");

/* ---------------------------------------------------------------- bodies */
static const SpiceMField empty_f[1];
static const SpiceMDesc empty_desc = {.name = "empty", .size = sizeof(SpiceMsgEmpty), .fields = empty_f, .nfields = 0};

static const SpiceMField u8_desc_f[] = {F(U8, SpiceMsgU8, v)};
LOCAL_DESC(u8_desc, SpiceMsgU8, "u8");
static const SpiceMField u16_desc_f[] = {F(U16, SpiceMsgU16, v)};
LOCAL_DESC(u16_desc, SpiceMsgU16, "u16");
static const SpiceMField u32_desc_f[] = {F(U32, SpiceMsgU32, v)};
LOCAL_DESC(u32_desc, SpiceMsgU32, "u32");
static const SpiceMField u64_desc_f[] = {F(U64, SpiceMsgU64, v)};
LOCAL_DESC(u64_desc, SpiceMsgU64, "u64");
static const SpiceMField bytes_desc_f[] = {F(REST, SpiceMsgBytes, data)};
LOCAL_DESC(bytes_desc, SpiceMsgBytes, "data");

static const SpiceMField set_ack_desc_f[] = {F(U32, SpiceMsgSetAck, generation), F(U32, SpiceMsgSetAck, window)};
LOCAL_DESC(set_ack_desc, SpiceMsgSetAck, "SetAck");

static const SpiceMField ping_desc_f[] = {
    F(U32, SpiceMsgPing, id), F(U64, SpiceMsgPing, timestamp), F(REST, SpiceMsgPing, data),
};
LOCAL_DESC(ping_desc, SpiceMsgPing, "Ping");

static const SpiceMField pong_desc_f[] = {F(U32, SpiceMsgPong, id), F(U64, SpiceMsgPong, timestamp)};
LOCAL_DESC(pong_desc, SpiceMsgPong, "Pong");

static const SpiceMField wait_list_desc_f[] = {FC(SpiceMsgWaitList, items, 1, &wait_item_desc)};
LOCAL_DESC(wait_list_desc, SpiceMsgWaitList, "WaitForChannels");

static const SpiceMField disconnecting_desc_f[] = {
    F(U64, SpiceMsgDisconnecting, time_stamp), F(U32, SpiceMsgDisconnecting, reason),
};
LOCAL_DESC(disconnecting_desc, SpiceMsgDisconnecting, "Disconnecting");

static const SpiceMField notify_desc_f[] = {
    F(U64, SpiceMsgNotify, time_stamp), F(U32, SpiceMsgNotify, severity), F(U32, SpiceMsgNotify, visibility),
    F(U32, SpiceMsgNotify, what),       FC(SpiceMsgNotify, text, 4, NULL), F(REST, SpiceMsgNotify, tail),
};
LOCAL_DESC(notify_desc, SpiceMsgNotify, "Notify");

static const SpiceMField main_init_desc_f[] = {
    F(U32, SpiceMsgMainInit, session_id),           F(U32, SpiceMsgMainInit, display_channels_hint),
    F(U32, SpiceMsgMainInit, supported_mouse_modes), F(U32, SpiceMsgMainInit, current_mouse_mode),
    F(U32, SpiceMsgMainInit, agent_connected),      F(U32, SpiceMsgMainInit, agent_tokens),
    F(U32, SpiceMsgMainInit, multi_media_time),     F(U32, SpiceMsgMainInit, ram_hint),
};
LOCAL_DESC(main_init_desc, SpiceMsgMainInit, "MainInit");

static const SpiceMField channels_list_desc_f[] = {FC(SpiceMsgChannelsList, channels, 4, &channel_ref_desc)};
LOCAL_DESC(channels_list_desc, SpiceMsgChannelsList, "ChannelsList");

static const SpiceMField mouse_mode_desc_f[] = {
    F(U16, SpiceMsgMouseMode, supported), F(U16, SpiceMsgMouseMode, current),
};
LOCAL_DESC(mouse_mode_desc, SpiceMsgMouseMode, "MouseMode");

static const SpiceMField name_desc_f[] = {FC(SpiceMsgName, name, 4, NULL)};
LOCAL_DESC(name_desc, SpiceMsgName, "Name");

static const SpiceMField uuid_desc_f[] = {FL(FIXED, SpiceMsgUuid, uuid, 16)};
LOCAL_DESC(uuid_desc, SpiceMsgUuid, "Uuid");

static const SpiceMField migrate_begin_desc_f[] = {FS(STRUCT, SpiceMsgMigrateBegin, dst, dst_info_desc)};
LOCAL_DESC(migrate_begin_desc, SpiceMsgMigrateBegin, "MigrationBegin");

static const SpiceMField migrate_begin_seamless_desc_f[] = {
    FS(STRUCT, SpiceMsgMigrateBeginSeamless, dst, dst_info_desc),
    F(U32, SpiceMsgMigrateBeginSeamless, src_mig_version),
};
LOCAL_DESC(migrate_begin_seamless_desc, SpiceMsgMigrateBeginSeamless, "MigrateBeginSeamless");

static const SpiceMField display_init_desc_f[] = {
    F(U8, SpiceMsgDisplayInit, pixmap_cache_id), F(I64, SpiceMsgDisplayInit, pixmap_cache_size),
    F(U8, SpiceMsgDisplayInit, glz_dictionary_id), F(I32, SpiceMsgDisplayInit, glz_dictionary_window_size),
};
LOCAL_DESC(display_init_desc, SpiceMsgDisplayInit, "DisplayInit");

static const SpiceMField surface_create_desc_f[] = {
    F(U32, SpiceMsgSurfaceCreate, surface_id), F(U32, SpiceMsgSurfaceCreate, width),
    F(U32, SpiceMsgSurfaceCreate, height),     F(U32, SpiceMsgSurfaceCreate, format),
    F(U32, SpiceMsgSurfaceCreate, flags),
};
LOCAL_DESC(surface_create_desc, SpiceMsgSurfaceCreate, "SurfaceCreate");

static const SpiceMField draw_fill_desc_f[] = {
    FS(STRUCT, SpiceMsgDrawFill, base, draw_base_desc), F(U8, SpiceMsgDrawFill, brush_type),
    F(U32, SpiceMsgDrawFill, color), F(U16, SpiceMsgDrawFill, rop_descriptor),
    FS(STRUCT, SpiceMsgDrawFill, mask, qmask_desc),
};
LOCAL_DESC(draw_fill_desc, SpiceMsgDrawFill, "DrawFill");

static const SpiceMField draw_copy_desc_f[] = {
    FS(STRUCT, SpiceMsgDrawCopy, base, draw_base_desc), FS(PTR, SpiceMsgDrawCopy, src_bitmap, spice_image_desc),
    FS(STRUCT, SpiceMsgDrawCopy, src_area, rect_desc),  F(U16, SpiceMsgDrawCopy, rop_descriptor),
    F(U8, SpiceMsgDrawCopy, scale_mode),                FS(STRUCT, SpiceMsgDrawCopy, mask, qmask_desc),
};
LOCAL_DESC(draw_copy_desc, SpiceMsgDrawCopy, "DrawCopy");

static const SpiceMField copy_bits_desc_f[] = {
    FS(STRUCT, SpiceMsgCopyBits, base, draw_base_desc), FS(STRUCT, SpiceMsgCopyBits, src_pos, point_desc),
};
LOCAL_DESC(copy_bits_desc, SpiceMsgCopyBits, "CopyBits");

static const SpiceMField inval_list_desc_f[] = {FC(SpiceMsgInvalList, resources, 2, &resource_desc)};
LOCAL_DESC(inval_list_desc, SpiceMsgInvalList, "ResourceList");

static const SpiceMField playback_start_desc_f[] = {
    F(U32, SpiceMsgPlaybackStart, channels), F(U16, SpiceMsgPlaybackStart, format),
    F(U32, SpiceMsgPlaybackStart, frequency), F(U32, SpiceMsgPlaybackStart, time),
};
LOCAL_DESC(playback_start_desc, SpiceMsgPlaybackStart, "PlaybackStart");

static const SpiceMField record_start_desc_f[] = {
    F(U32, SpiceMsgRecordStart, channels), F(U16, SpiceMsgRecordStart, format),
    F(U32, SpiceMsgRecordStart, frequency),
};
LOCAL_DESC(record_start_desc, SpiceMsgRecordStart, "RecordStart");

static const SpiceMField audio_data_desc_f[] = {F(U32, SpiceMsgAudioData, time), F(REST, SpiceMsgAudioData, data)};
LOCAL_DESC(audio_data_desc, SpiceMsgAudioData, "AudioData");

static const SpiceMField audio_mode_desc_f[] = {
    F(U32, SpiceMsgAudioMode, time), F(U16, SpiceMsgAudioMode, mode), F(REST, SpiceMsgAudioMode, data),
};
LOCAL_DESC(audio_mode_desc, SpiceMsgAudioMode, "AudioMode");

static const SpiceMField volume_desc_f[] = {FC(SpiceMsgVolume, volume, 1, &u16_item_desc)};
LOCAL_DESC(volume_desc, SpiceMsgVolume, "AudioVolume");

static const SpiceMField port_init_desc_f[] = {F(SIZED, SpiceMsgPortInit, name), F(U8, SpiceMsgPortInit, opened)};
LOCAL_DESC(port_init_desc, SpiceMsgPortInit, "PortInit");

static const SpiceMField mouse_motion_desc_f[] = {
    F(I32, SpiceMsgMouseMotion, dx), F(I32, SpiceMsgMouseMotion, dy), F(U16, SpiceMsgMouseMotion, buttons_state),
};
LOCAL_DESC(mouse_motion_desc, SpiceMsgMouseMotion, "MouseMotion");

static const SpiceMField mouse_position_desc_f[] = {
    F(U32, SpiceMsgMousePosition, x), F(U32, SpiceMsgMousePosition, y),
    F(U16, SpiceMsgMousePosition, buttons_state), F(U8, SpiceMsgMousePosition, display_id),
};
LOCAL_DESC(mouse_position_desc, SpiceMsgMousePosition, "MousePosition");

static const SpiceMField mouse_button_desc_f[] = {
    F(U8, SpiceMsgMouseButton, button), F(U16, SpiceMsgMouseButton, buttons_state),
};
LOCAL_DESC(mouse_button_desc, SpiceMsgMouseButton, "MouseButton");

static const SpiceMField cursor_init_desc_f[] = {
    F(U16, SpiceMsgCursorInit, x),           F(U16, SpiceMsgCursorInit, y),
    F(U16, SpiceMsgCursorInit, trail_length), F(U16, SpiceMsgCursorInit, trail_frequency),
    F(U8, SpiceMsgCursorInit, visible),      F(U16, SpiceMsgCursorInit, cursor_flags),
    F(REST, SpiceMsgCursorInit, shape),
};
LOCAL_DESC(cursor_init_desc, SpiceMsgCursorInit, "CursorInit");

static const SpiceMField cursor_set_desc_f[] = {
    F(U16, SpiceMsgCursorSet, x), F(U16, SpiceMsgCursorSet, y), F(U8, SpiceMsgCursorSet, visible),
    F(U16, SpiceMsgCursorSet, cursor_flags), F(REST, SpiceMsgCursorSet, shape),
};
LOCAL_DESC(cursor_set_desc, SpiceMsgCursorSet, "CursorSet");

static const SpiceMField cursor_move_desc_f[] = {F(U16, SpiceMsgCursorMove, x), F(U16, SpiceMsgCursorMove, y)};
LOCAL_DESC(cursor_move_desc, SpiceMsgCursorMove, "CursorMove");

static const SpiceMField spice_cursor_header_desc_f[] = {
    F(U64, SpiceCursorHeader, unique), F(U8, SpiceCursorHeader, type),   F(U16, SpiceCursorHeader, width),
    F(U16, SpiceCursorHeader, height), F(U16, SpiceCursorHeader, hot_x), F(U16, SpiceCursorHeader, hot_y),
    F(REST, SpiceCursorHeader, data),
};
DESC(spice_cursor_header_desc, SpiceCursorHeader, "CursorHeader");

/* ---------------------------------------------------------------- registry */
#define S(ch, id, nm, d) {SPICE_CHANNEL_##ch, false, SPICE_MSG_##id, nm, &(d)}
#define C(ch, id, nm, d) {SPICE_CHANNEL_##ch, true, SPICE_MSGC_##id, nm, &(d)}
#define SB(id, d) {0, false, SPICE_MSG_##id, #id, &(d)}
#define CB(id, d) {0, true, SPICE_MSGC_##id, #id, &(d)}

static const SpiceMsgInfo registry[] = {
    SB(MIGRATE, u32_desc),
    SB(MIGRATE_DATA, bytes_desc),
    SB(SET_ACK, set_ack_desc),
    SB(PING, ping_desc),
    SB(WAIT_FOR_CHANNELS, wait_list_desc),
    SB(DISCONNECTING, disconnecting_desc),
    SB(NOTIFY, notify_desc),
    CB(ACK_SYNC, u32_desc),
    CB(ACK, empty_desc),
    CB(PONG, pong_desc),
    CB(MIGRATE_FLUSH_MARK, empty_desc),
    CB(MIGRATE_DATA, bytes_desc),
    CB(DISCONNECTING, disconnecting_desc),

    S(MAIN, MAIN_MIGRATE_BEGIN, "MAIN_MIGRATE_BEGIN", migrate_begin_desc),
    S(MAIN, MAIN_MIGRATE_CANCEL, "MAIN_MIGRATE_CANCEL", empty_desc),
    S(MAIN, MAIN_INIT, "MAIN_INIT", main_init_desc),
    S(MAIN, MAIN_CHANNELS_LIST, "MAIN_CHANNELS_LIST", channels_list_desc),
    S(MAIN, MAIN_MOUSE_MODE, "MAIN_MOUSE_MODE", mouse_mode_desc),
    S(MAIN, MAIN_MULTI_MEDIA_TIME, "MAIN_MULTI_MEDIA_TIME", u32_desc),
    S(MAIN, MAIN_AGENT_CONNECTED, "MAIN_AGENT_CONNECTED", empty_desc),
    S(MAIN, MAIN_AGENT_DISCONNECTED, "MAIN_AGENT_DISCONNECTED", u32_desc),
    S(MAIN, MAIN_AGENT_DATA, "MAIN_AGENT_DATA", bytes_desc),
    S(MAIN, MAIN_AGENT_TOKEN, "MAIN_AGENT_TOKEN", u32_desc),
    S(MAIN, MAIN_MIGRATE_SWITCH_HOST, "MAIN_MIGRATE_SWITCH_HOST", migrate_begin_desc),
    S(MAIN, MAIN_MIGRATE_END, "MAIN_MIGRATE_END", empty_desc),
    S(MAIN, MAIN_NAME, "MAIN_NAME", name_desc),
    S(MAIN, MAIN_UUID, "MAIN_UUID", uuid_desc),
    S(MAIN, MAIN_AGENT_CONNECTED_TOKENS, "MAIN_AGENT_CONNECTED_TOKENS", u32_desc),
    S(MAIN, MAIN_MIGRATE_BEGIN_SEAMLESS, "MAIN_MIGRATE_BEGIN_SEAMLESS", migrate_begin_seamless_desc),
    S(MAIN, MAIN_MIGRATE_DST_SEAMLESS_ACK, "MAIN_MIGRATE_DST_SEAMLESS_ACK", empty_desc),
    S(MAIN, MAIN_MIGRATE_DST_SEAMLESS_NACK, "MAIN_MIGRATE_DST_SEAMLESS_NACK", empty_desc),
    C(MAIN, MAIN_CLIENT_INFO, "MAIN_CLIENT_INFO", u64_desc),
    C(MAIN, MAIN_MIGRATE_CONNECTED, "MAIN_MIGRATE_CONNECTED", empty_desc),
    C(MAIN, MAIN_MIGRATE_CONNECT_ERROR, "MAIN_MIGRATE_CONNECT_ERROR", empty_desc),
    C(MAIN, MAIN_ATTACH_CHANNELS, "MAIN_ATTACH_CHANNELS", empty_desc),
    C(MAIN, MAIN_MOUSE_MODE_REQUEST, "MAIN_MOUSE_MODE_REQUEST", u16_desc),
    C(MAIN, MAIN_AGENT_START, "MAIN_AGENT_START", u32_desc),
    C(MAIN, MAIN_AGENT_DATA, "MAIN_AGENT_DATA", bytes_desc),
    C(MAIN, MAIN_AGENT_TOKEN, "MAIN_AGENT_TOKEN", u32_desc),
    C(MAIN, MAIN_MIGRATE_END, "MAIN_MIGRATE_END", empty_desc),
    C(MAIN, MAIN_MIGRATE_DST_DO_SEAMLESS, "MAIN_MIGRATE_DST_DO_SEAMLESS", u32_desc),
    C(MAIN, MAIN_MIGRATE_CONNECTED_SEAMLESS, "MAIN_MIGRATE_CONNECTED_SEAMLESS", empty_desc),

    S(DISPLAY, DISPLAY_MARK, "DISPLAY_MARK", empty_desc),
    S(DISPLAY, DISPLAY_RESET, "DISPLAY_RESET", empty_desc),
    S(DISPLAY, DISPLAY_COPY_BITS, "DISPLAY_COPY_BITS", copy_bits_desc),
    S(DISPLAY, DISPLAY_INVAL_LIST, "DISPLAY_INVAL_LIST", inval_list_desc),
    S(DISPLAY, DISPLAY_INVAL_ALL_PIXMAPS, "DISPLAY_INVAL_ALL_PIXMAPS", wait_list_desc),
    S(DISPLAY, DISPLAY_INVAL_PALETTE, "DISPLAY_INVAL_PALETTE", u64_desc),
    S(DISPLAY, DISPLAY_INVAL_ALL_PALETTES, "DISPLAY_INVAL_ALL_PALETTES", empty_desc),
    /* spice-server 0.15.1 may send it to a client switching to a migration
     * target although it never created a stream (seen) */
    S(DISPLAY, DISPLAY_STREAM_DESTROY_ALL, "DISPLAY_STREAM_DESTROY_ALL", empty_desc),
    S(DISPLAY, DISPLAY_DRAW_FILL, "DISPLAY_DRAW_FILL", draw_fill_desc),
    S(DISPLAY, DISPLAY_DRAW_COPY, "DISPLAY_DRAW_COPY", draw_copy_desc),
    S(DISPLAY, DISPLAY_SURFACE_CREATE, "DISPLAY_SURFACE_CREATE", surface_create_desc),
    S(DISPLAY, DISPLAY_SURFACE_DESTROY, "DISPLAY_SURFACE_DESTROY", u32_desc),
    C(DISPLAY, DISPLAY_INIT, "DISPLAY_INIT", display_init_desc),

    S(INPUTS, INPUTS_INIT, "INPUTS_INIT", u16_desc),
    S(INPUTS, INPUTS_KEY_MODIFIERS, "INPUTS_KEY_MODIFIERS", u16_desc),
    S(INPUTS, INPUTS_MOUSE_MOTION_ACK, "INPUTS_MOUSE_MOTION_ACK", empty_desc),
    C(INPUTS, INPUTS_KEY_DOWN, "INPUTS_KEY_DOWN", u32_desc),
    C(INPUTS, INPUTS_KEY_UP, "INPUTS_KEY_UP", u32_desc),
    C(INPUTS, INPUTS_KEY_MODIFIERS, "INPUTS_KEY_MODIFIERS", u16_desc),
    C(INPUTS, INPUTS_MOUSE_MOTION, "INPUTS_MOUSE_MOTION", mouse_motion_desc),
    C(INPUTS, INPUTS_MOUSE_POSITION, "INPUTS_MOUSE_POSITION", mouse_position_desc),
    C(INPUTS, INPUTS_MOUSE_PRESS, "INPUTS_MOUSE_PRESS", mouse_button_desc),
    C(INPUTS, INPUTS_MOUSE_RELEASE, "INPUTS_MOUSE_RELEASE", mouse_button_desc),

    S(CURSOR, CURSOR_INIT, "CURSOR_INIT", cursor_init_desc),
    S(CURSOR, CURSOR_RESET, "CURSOR_RESET", empty_desc),
    S(CURSOR, CURSOR_SET, "CURSOR_SET", cursor_set_desc),
    S(CURSOR, CURSOR_MOVE, "CURSOR_MOVE", cursor_move_desc),
    S(CURSOR, CURSOR_HIDE, "CURSOR_HIDE", empty_desc),
    S(CURSOR, CURSOR_INVAL_ALL, "CURSOR_INVAL_ALL", empty_desc),

    S(PLAYBACK, PLAYBACK_DATA, "PLAYBACK_DATA", audio_data_desc),
    S(PLAYBACK, PLAYBACK_MODE, "PLAYBACK_MODE", audio_mode_desc),
    S(PLAYBACK, PLAYBACK_START, "PLAYBACK_START", playback_start_desc),
    S(PLAYBACK, PLAYBACK_STOP, "PLAYBACK_STOP", empty_desc),
    S(PLAYBACK, PLAYBACK_VOLUME, "PLAYBACK_VOLUME", volume_desc),
    S(PLAYBACK, PLAYBACK_MUTE, "PLAYBACK_MUTE", u8_desc),
    S(PLAYBACK, PLAYBACK_LATENCY, "PLAYBACK_LATENCY", u32_desc),

    S(RECORD, RECORD_START, "RECORD_START", record_start_desc),
    S(RECORD, RECORD_STOP, "RECORD_STOP", empty_desc),
    S(RECORD, RECORD_VOLUME, "RECORD_VOLUME", volume_desc),
    S(RECORD, RECORD_MUTE, "RECORD_MUTE", u8_desc),
    C(RECORD, RECORD_DATA, "RECORD_DATA", audio_data_desc),
    C(RECORD, RECORD_MODE, "RECORD_MODE", audio_mode_desc),
    C(RECORD, RECORD_START_MARK, "RECORD_START_MARK", u32_desc),

    S(PORT, SPICEVMC_DATA, "SPICEVMC_DATA", bytes_desc),
    S(PORT, PORT_INIT, "PORT_INIT", port_init_desc),
    S(PORT, PORT_EVENT, "PORT_EVENT", u8_desc),
    C(PORT, SPICEVMC_DATA, "SPICEVMC_DATA", bytes_desc),
    C(PORT, PORT_EVENT, "PORT_EVENT", u8_desc),
};

/* The registry's order, and the key of binary search: channel type, then
 * direction (server's first), then id; test-spice-marshal checks that every
 * entry sorts after the one before it. */
static uint32_t msg_key(uint8_t channel_type, bool from_client, uint16_t id)
{
    return (uint32_t)channel_type << 17 | (uint32_t)from_client << 16 | id;
}

const SpiceMsgInfo *spice_msg_find(uint8_t channel_type, bool from_client, uint16_t id)
{
    uint32_t want = msg_key(id < SPICE_MSG_BASE_LAST ? 0 : channel_type, from_client, id);
    size_t lo = 0, hi = MIG_ARRAY_SIZE(registry);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t k = msg_key(registry[mid].channel_type, registry[mid].from_client, registry[mid].id);
        if (k == want)
            return &registry[mid];
        if (k < want)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const SpiceMsgInfo *spice_msg_table(size_t *count)
{
    *count = MIG_ARRAY_SIZE(registry);
    return registry;
}

static const char *const channel_names[] = {
    [SPICE_CHANNEL_MAIN] = "MAIN",         [SPICE_CHANNEL_DISPLAY] = "DISPLAY",
    [SPICE_CHANNEL_INPUTS] = "INPUTS",     [SPICE_CHANNEL_CURSOR] = "CURSOR",
    [SPICE_CHANNEL_PLAYBACK] = "PLAYBACK", [SPICE_CHANNEL_RECORD] = "RECORD",
    [SPICE_CHANNEL_TUNNEL] = "TUNNEL",     [SPICE_CHANNEL_SMARTCARD] = "SMARTCARD",
    [SPICE_CHANNEL_USBREDIR] = "USBREDIR", [SPICE_CHANNEL_PORT] = "PORT",
    [SPICE_CHANNEL_WEBDAV] = "WEBDAV",
};

const char *spice_channel_type_name(uint8_t type)
{
    return type < MIG_ARRAY_SIZE(channel_names) && channel_names[type] ? channel_names[type] : "?";
}
