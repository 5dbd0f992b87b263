/*
 * spice-inputs.c - inputs and cursor channels (spice-inputs.h).
 */
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "spice-inputs.h"
#include "spice-migrate-data.h"

typedef struct InputsCC {
    uint32_t motions; /* since the last MOUSE_MOTION_ACK */
} InputsCC;

static void inputs_caps(SpiceChannel *ch, SpiceCapSet *caps)
{
    spice_caps_set(caps, SPICE_INPUTS_CAP_KEY_SCANCODE);
}

static int inputs_connect(SpiceChannelClient *cc, MigErr **errp)
{
    spice_cc_set_priv(cc, mig_malloc0(sizeof(InputsCC)));
    SpiceMsgU16 init = {0}; /* keyboard modifiers */
    return spice_cc_send(cc, SPICE_MSG_INPUTS_INIT, &init) < 0 ? mig_err_set(errp, -EPIPE, "cannot queue INPUTS_INIT")
                                                               : 0;
}

static int inputs_on_message(SpiceChannelClient *cc, const SpiceMsgInfo *mi, void *body, uint32_t size,
                             MigErr **errp)
{
    SpiceInputsStats *st = spice_channel_priv(spice_cc_channel(cc));
    InputsCC *ic = spice_cc_priv(cc);
    if (st && st->sink && mi->id >= SPICE_MSGC_INPUTS_KEY_DOWN && mi->id <= SPICE_MSGC_INPUTS_MOUSE_RELEASE) {
        /* the guest's keyboard and mouse get every event, in order */
        SpiceInputEvent ev = {.msg = mi->id};
        if (mi->id == SPICE_MSGC_INPUTS_KEY_DOWN || mi->id == SPICE_MSGC_INPUTS_KEY_UP) {
            ev.code = ((SpiceMsgU32 *)body)->v;
        } else if (mi->id == SPICE_MSGC_INPUTS_KEY_MODIFIERS) {
            ev.code = ((SpiceMsgU16 *)body)->v;
        } else if (mi->id == SPICE_MSGC_INPUTS_MOUSE_MOTION) {
            SpiceMsgMouseMotion *m = body;
            ev.x = m->dx, ev.y = m->dy, ev.buttons = m->buttons_state;
        } else if (mi->id == SPICE_MSGC_INPUTS_MOUSE_POSITION) {
            SpiceMsgMousePosition *m = body;
            ev.x = (int32_t)m->x, ev.y = (int32_t)m->y, ev.buttons = m->buttons_state, ev.display_id = m->display_id;
        } else {
            SpiceMsgMouseButton *m = body;
            ev.code = m->button, ev.buttons = m->buttons_state;
        }
        st->sink(st->sink_opaque, &ev);
    }
    switch (mi->id) {
    case SPICE_MSGC_INPUTS_KEY_DOWN:
    case SPICE_MSGC_INPUTS_KEY_UP:
    case SPICE_MSGC_INPUTS_KEY_MODIFIERS:
        if (st)
            st->keys++;
        return 0;
    case SPICE_MSGC_INPUTS_MOUSE_MOTION:
    case SPICE_MSGC_INPUTS_MOUSE_POSITION:
        if (st)
            st->mouse_events++;
        /* the client stops sending motion until acknowledged */
        if (++ic->motions == SPICE_INPUT_MOTION_ACK_BUNCH) {
            ic->motions = 0;
            return spice_cc_send(cc, SPICE_MSG_INPUTS_MOUSE_MOTION_ACK, NULL);
        }
        return 0;
    case SPICE_MSGC_INPUTS_MOUSE_PRESS:
    case SPICE_MSGC_INPUTS_MOUSE_RELEASE:
        if (st)
            st->mouse_events++;
        return 0;
    default:
        return mig_err_set(errp, -EPROTO, "unexpected %s", mi->name);
    }
}

static void inputs_disconnect(SpiceChannelClient *cc)
{
    free(spice_cc_priv(cc));
    spice_cc_set_priv(cc, NULL);
}

/* Seamless migration (ICMD): the motions not yet acknowledged go on. */
static int inputs_migrate_save(SpiceChannelClient *cc, uint8_t **blob, size_t *len, MigErr **errp)
{
    InputsCC *ic = spice_cc_priv(cc);
    SpiceMigInputs m = {.h = {SPICE_MIG_MAGIC_INPUTS, SPICE_MIG_VERSION_INPUTS},
                        .motion_count = ic ? (uint16_t)ic->motions : 0};
    return spice_mig_encode(&spice_mig_inputs_desc, &m, NULL, 0, blob, len, errp);
}

static int inputs_migrate_load(SpiceChannelClient *cc, const uint8_t *blob, size_t len, MigErr **errp)
{
    SpiceMigInputs m;
    int r = spice_mig_decode("inputs", &spice_mig_inputs_desc, blob, len, SPICE_MIG_MAGIC_INPUTS,
                             SPICE_MIG_VERSION_INPUTS, &m, errp);
    if (r < 0)
        return r;
    if (m.motion_count >= SPICE_INPUT_MOTION_ACK_BUNCH)
        return mig_err_set(errp, -EPROTO, "inputs migration data: %u motions pending, at most %u", m.motion_count,
                           SPICE_INPUT_MOTION_ACK_BUNCH - 1);
    InputsCC *ic = mig_malloc0(sizeof(*ic));
    ic->motions = m.motion_count;
    spice_cc_set_priv(cc, ic);
    return 0;
}

static const SpiceChannelClass inputs_class = {
    .name = "inputs",
    .max_in = 1024,
    .caps = inputs_caps,
    .connect = inputs_connect,
    .on_message = inputs_on_message,
    .disconnect = inputs_disconnect,
    .migrate_flags = SPICE_MIGRATE_NEED_FLUSH | SPICE_MIGRATE_NEED_DATA_TRANSFER,
    .migrate_save = inputs_migrate_save,
    .migrate_load = inputs_migrate_load,
};

/* The cursor channel's shared state: the guest's cursor, the channel
 * clients it goes to (those whose `connect` ran). */
typedef struct CursorDev {
    SpiceCursorState st; /* st.data points at `data` */
    uint8_t *data;
    SpiceChannelClient **ccs;
    size_t nccs;
} CursorDev;

/* The Cursor after the flags: the header and the shape, or nothing. */
static int cursor_shape(const CursorDev *d, uint16_t *flags, SpiceMBytes *out)
{
    *flags = SPICE_CURSOR_FLAGS_NONE;
    out->len = 0, out->data = NULL;
    if (!d || !d->st.has_shape)
        return 0;
    SpiceCursorHeader h = {.unique = d->st.unique, .type = SPICE_CURSOR_TYPE_ALPHA, .width = d->st.width,
                           .height = d->st.height, .hot_x = d->st.hot_x, .hot_y = d->st.hot_y,
                           .data = {.len = (uint32_t)d->st.width * d->st.height * 4, .data = d->data}};
    uint8_t *buf;
    size_t len;
    if (spice_marshal_encode(&spice_cursor_header_desc, &h, &buf, &len, NULL) < 0)
        return -EINVAL;
    *flags = 0;
    out->len = (uint32_t)len, out->data = buf;
    return 0;
}

static int send_cursor_set(CursorDev *d, SpiceChannelClient *cc)
{
    SpiceMsgCursorSet m = {.x = (uint16_t)d->st.x, .y = (uint16_t)d->st.y, .visible = d->st.visible};
    if (cursor_shape(d, &m.cursor_flags, &m.shape) < 0)
        return -EINVAL;
    int r = spice_cc_send(cc, SPICE_MSG_CURSOR_SET, &m);
    free(m.shape.data);
    return r;
}

static int cursor_connect(SpiceChannelClient *cc, MigErr **errp)
{
    CursorDev *d = spice_channel_priv(spice_cc_channel(cc));
    d->ccs = mig_realloc(d->ccs, (d->nccs + 1) * sizeof(*d->ccs));
    d->ccs[d->nccs++] = cc;
    /* seamless migration: the client's cursor channel goes on (spice-gtk
     * asserts on a second CURSOR_INIT); the guest's cursor follows as a
     * CURSOR_SET when the machine has loaded it */
    if (spice_client_seamless_in(spice_cc_client(cc)))
        return 0;
    SpiceMsgCursorInit init = {.x = (uint16_t)d->st.x, .y = (uint16_t)d->st.y, .visible = d->st.visible};
    if (cursor_shape(d, &init.cursor_flags, &init.shape) < 0)
        return mig_err_set(errp, -EINVAL, "cannot encode the cursor's shape");
    int r = spice_cc_send(cc, SPICE_MSG_CURSOR_INIT, &init);
    free(init.shape.data);
    return r < 0 ? mig_err_set(errp, -EPIPE, "cannot queue CURSOR_INIT") : 0;
}

static void cursor_disconnect(SpiceChannelClient *cc)
{
    CursorDev *d = spice_channel_priv(spice_cc_channel(cc));
    for (size_t i = 0; d && i < d->nccs; i++)
        if (d->ccs[i] == cc) {
            memmove(d->ccs + i, d->ccs + i + 1, (d->nccs - i - 1) * sizeof(*d->ccs));
            d->nccs--;
            return;
        }
}

static void cursor_channel_gone(SpiceChannel *ch)
{
    CursorDev *d = spice_channel_priv(ch);
    spice_channel_set_priv(ch, NULL);
    if (d) {
        free(d->data);
        free(d->ccs);
        free(d);
    }
}

static int cursor_on_message(SpiceChannelClient *cc, const SpiceMsgInfo *mi, void *body, uint32_t size,
                             MigErr **errp)
{
    return mig_err_set(errp, -EPROTO, "unexpected %s", mi->name);
}

static const SpiceChannelClass cursor_class = {
    .name = "cursor",
    .max_in = 1024,
    .connect = cursor_connect,
    .on_message = cursor_on_message,
    .disconnect = cursor_disconnect,
    .channel_gone = cursor_channel_gone,
};

static SpiceChannel *find_channel(SpiceServer *s, uint8_t type)
{
    for (size_t i = 0; i < spice_server_channel_count(s); i++)
        if (spice_channel_type(spice_server_channel_at(s, i)) == type)
            return spice_server_channel_at(s, i);
    return NULL;
}

int spice_cursor_set_state(SpiceServer *s, const SpiceCursorState *st)
{
    SpiceChannel *ch = find_channel(s, SPICE_CHANNEL_CURSOR);
    CursorDev *d = ch ? spice_channel_priv(ch) : NULL;
    if (!d)
        return -ENOENT;
    SpiceCursorState old = d->st;
    bool reshaped = st->has_shape != old.has_shape ||
                    (st->has_shape && (st->unique != old.unique || st->width != old.width ||
                                       st->height != old.height || st->hot_x != old.hot_x || st->hot_y != old.hot_y));
    if (reshaped) {
        size_t n = st->has_shape ? (size_t)st->width * st->height * 4 : 0;
        free(d->data);
        d->data = n ? mig_malloc0(n) : NULL;
        if (n)
            memcpy(d->data, st->data, n);
    }
    d->st = *st;
    d->st.data = d->data;
    for (size_t i = 0; i < d->nccs; i++) {
        SpiceChannelClient *cc = d->ccs[i];
        if (reshaped || (st->visible && !old.visible)) {
            send_cursor_set(d, cc);
        } else if (!st->visible && old.visible) {
            spice_cc_send(cc, SPICE_MSG_CURSOR_HIDE, NULL);
            if (st->x != old.x || st->y != old.y) {
                SpiceMsgCursorMove mv = {(uint16_t)st->x, (uint16_t)st->y};
                spice_cc_send(cc, SPICE_MSG_CURSOR_MOVE, &mv);
            }
        } else if (st->x != old.x || st->y != old.y) {
            SpiceMsgCursorMove mv = {(uint16_t)st->x, (uint16_t)st->y};
            spice_cc_send(cc, SPICE_MSG_CURSOR_MOVE, &mv);
        }
    }
    return 0;
}

int spice_inputs_set_sink(SpiceServer *s, SpiceInputSink sink, void *opaque)
{
    SpiceChannel *ch = find_channel(s, SPICE_CHANNEL_INPUTS);
    SpiceInputsStats *st = ch ? spice_channel_priv(ch) : NULL;
    if (!st)
        return -ENOENT;
    st->sink = sink;
    st->sink_opaque = opaque;
    return 0;
}

void spice_inputs_add(SpiceServer *s, SpiceInputsStats *stats)
{
    spice_server_add_channel(s, SPICE_CHANNEL_INPUTS, 0, &inputs_class, stats);
    spice_server_add_channel(s, SPICE_CHANNEL_CURSOR, 0, &cursor_class, mig_malloc0(sizeof(CursorDev)));
}
