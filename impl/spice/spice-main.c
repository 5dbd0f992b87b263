/*
 * spice-main.c - the main channel (spice-main.h).
 *
 * Start-up as spice-server does it: MAIN_INIT, then NAME and UUID when the
 * client has NAME_AND_UUID; CHANNELS_LIST only after the client's
 * ATTACH_CHANNELS.  The server always advertises every main capability
 * (SEMI_SEAMLESS first of all: spice-gtk honours MIGRATE_END only from a
 * server that advertised it).
 */
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "spice-main.h"

#define AGENT_TOKENS 10u

static void main_caps(SpiceChannel *ch, SpiceCapSet *caps)
{
    spice_caps_set(caps, SPICE_MAIN_CAP_SEMI_SEAMLESS_MIGRATE);
    spice_caps_set(caps, SPICE_MAIN_CAP_NAME_AND_UUID);
    spice_caps_set(caps, SPICE_MAIN_CAP_AGENT_CONNECTED_TOKENS);
    spice_caps_set(caps, SPICE_MAIN_CAP_SEAMLESS_MIGRATE);
}

static int send_init(SpiceChannelClient *cc)
{
    SpiceServer *s = spice_channel_server(spice_cc_channel(cc));
    const SpiceServerConfig *cfg = spice_server_config(s);
    uint32_t displays = 0;
    for (size_t i = 0; i < spice_server_channel_count(s); i++)
        displays += spice_channel_type(spice_server_channel_at(s, i)) == SPICE_CHANNEL_DISPLAY;
    SpiceMsgMainInit init = {
        .session_id = spice_client_session_id(spice_cc_client(cc)),
        .display_channels_hint = displays,
        .supported_mouse_modes = SPICE_MOUSE_MODE_SERVER,
        .current_mouse_mode = SPICE_MOUSE_MODE_SERVER,
        .agent_connected = 0,
        .agent_tokens = AGENT_TOKENS,
        .multi_media_time = (uint32_t)(mig_loop_now_ns(spice_server_loop(s)) / 1000000u),
        .ram_hint = 0,
    };
    int r = spice_cc_send(cc, SPICE_MSG_MAIN_INIT, &init);
    if (r == 0 && spice_caps_has(&spice_cc_link(cc)->channel, SPICE_MAIN_CAP_NAME_AND_UUID)) {
        const char *name = cfg->name ? cfg->name : "migcert";
        SpiceMsgName n = {.name = {.len = (uint32_t)strlen(name) + 1, .data = (uint8_t *)name}};
        SpiceMsgUuid u;
        memcpy(u.uuid, cfg->uuid, sizeof(u.uuid));
        r = spice_cc_send(cc, SPICE_MSG_MAIN_NAME, &n);
        if (r == 0)
            r = spice_cc_send(cc, SPICE_MSG_MAIN_UUID, &u);
    }
    return r;
}

static int main_connect(SpiceChannelClient *cc, MigErr **errp)
{
    int r = send_init(cc);
    return r < 0 ? mig_err_set(errp, r, "cannot queue MAIN_INIT") : 0;
}

static int send_channels_list(SpiceChannelClient *cc)
{
    SpiceServer *s = spice_channel_server(spice_cc_channel(cc));
    size_t n = spice_server_channel_count(s);
    SpiceChannelRef *refs = mig_malloc0((n ? n : 1) * sizeof(*refs));
    uint32_t k = 0;
    for (size_t i = 0; i < n; i++) {
        SpiceChannel *ch = spice_server_channel_at(s, i);
        if (spice_channel_type(ch) == SPICE_CHANNEL_MAIN)
            continue;
        refs[k++] = (SpiceChannelRef){spice_channel_type(ch), spice_channel_id(ch)};
    }
    SpiceMsgChannelsList list = {.channels = {.n = k, .items = refs}};
    int r = spice_cc_send(cc, SPICE_MSG_MAIN_CHANNELS_LIST, &list);
    free(refs);
    return r;
}

static int main_on_message(SpiceChannelClient *cc, const SpiceMsgInfo *mi, void *body, uint32_t size,
                           MigErr **errp)
{
    switch (mi->id) {
    case SPICE_MSGC_MAIN_ATTACH_CHANNELS:
        return send_channels_list(cc);
    case SPICE_MSGC_MAIN_MOUSE_MODE_REQUEST: {
        /* only server mode is offered: the answer names it whatever was asked */
        SpiceMsgMouseMode mm = {.supported = SPICE_MOUSE_MODE_SERVER, .current = SPICE_MOUSE_MODE_SERVER};
        return spice_cc_send(cc, SPICE_MSG_MAIN_MOUSE_MODE, &mm);
    }
    case SPICE_MSGC_MAIN_CLIENT_INFO:
    case SPICE_MSGC_MAIN_AGENT_START:
    case SPICE_MSGC_MAIN_AGENT_TOKEN:
        return 0; /* no agent: tokens have nothing to pace */
    case SPICE_MSGC_MAIN_AGENT_DATA:
        return 0; /* no agent: spice-server drops client data for an absent agent too */
    default:
        return mig_err_set(errp, -EPROTO, "unexpected %s", mi->name);
    }
}

static const SpiceChannelClass main_class = {
    .name = "main",
    .max_in = 64 * 1024,
    .caps = main_caps,
    .connect = main_connect,
    .on_message = main_on_message,
};

SpiceChannel *spice_main_add(SpiceServer *s)
{
    return spice_server_add_channel(s, SPICE_CHANNEL_MAIN, 0, &main_class, NULL);
}
