/*
 * spice-inputs.c - inputs and cursor channels (spice-inputs.h).
 */
#include <stdlib.h>

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

static int cursor_connect(SpiceChannelClient *cc, MigErr **errp)
{
    /* seamless migration: the client's cursor channel goes on (spice-gtk
     * asserts on a second CURSOR_INIT) */
    if (spice_client_seamless_in(spice_cc_client(cc)))
        return 0;
    SpiceMsgCursorInit init = {.visible = 0, .cursor_flags = SPICE_CURSOR_FLAGS_NONE};
    return spice_cc_send(cc, SPICE_MSG_CURSOR_INIT, &init) < 0 ? mig_err_set(errp, -EPIPE, "cannot queue CURSOR_INIT")
                                                               : 0;
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
};

void spice_inputs_add(SpiceServer *s, SpiceInputsStats *stats)
{
    spice_server_add_channel(s, SPICE_CHANNEL_INPUTS, 0, &inputs_class, stats);
    spice_server_add_channel(s, SPICE_CHANNEL_CURSOR, 0, &cursor_class, NULL);
}
