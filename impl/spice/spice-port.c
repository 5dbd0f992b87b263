/*
 * spice-port.c - the port channel (spice-port.h).  A char device has one
 * client at a time, as in spice-server: a second client's link is refused
 * while the first is linked.
 */
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "spice-port.h"

struct SpicePort {
    SpiceServer *server;
    SpiceChannel *ch;
    char *name;
    bool open;
    SpicePortOps ops;
    void *opaque;
    SpiceChannelClient *cc;
};

static int send_init(SpicePort *p)
{
    SpiceMsgPortInit init = {.name = {.len = (uint32_t)strlen(p->name) + 1, .data = (uint8_t *)p->name},
                             .opened = p->open};
    return spice_cc_send(p->cc, SPICE_MSG_PORT_INIT, &init);
}

static int port_connect(SpiceChannelClient *cc, MigErr **errp)
{
    SpicePort *p = spice_channel_priv(spice_cc_channel(cc));
    if (!p)
        return mig_err_set(errp, -ENODEV, "the port's device is gone");
    if (p->cc)
        return mig_err_set(errp, -EBUSY, "port %s already has a client", p->name);
    p->cc = cc;
    int r = send_init(p);
    if (r < 0)
        return mig_err_set(errp, r, "cannot queue PORT_INIT");
    if (p->ops.writable)
        p->ops.writable(p->opaque);
    return 0;
}

static int port_on_message(SpiceChannelClient *cc, const SpiceMsgInfo *mi, void *body, uint32_t size,
                           MigErr **errp)
{
    SpicePort *p = spice_channel_priv(spice_cc_channel(cc));
    if (!p || p->cc != cc)
        return mig_err_set(errp, -EPROTO, "%s from a client that is not the port's", mi->name);
    switch (mi->id) {
    case SPICE_MSGC_SPICEVMC_DATA: {
        SpiceMsgBytes *d = body;
        if (p->ops.sink && d->data.len)
            p->ops.sink(p->opaque, d->data.data, d->data.len);
        return 0;
    }
    case SPICE_MSGC_PORT_EVENT:
        if (p->ops.client_event)
            p->ops.client_event(p->opaque, ((SpiceMsgU8 *)body)->v);
        return 0;
    default:
        return mig_err_set(errp, -EPROTO, "unexpected %s", mi->name);
    }
}

static void port_drained(SpiceChannelClient *cc)
{
    SpicePort *p = spice_channel_priv(spice_cc_channel(cc));
    if (p && p->cc == cc && p->ops.writable)
        p->ops.writable(p->opaque);
}

static void port_disconnect(SpiceChannelClient *cc)
{
    SpicePort *p = spice_channel_priv(spice_cc_channel(cc));
    if (p && p->cc == cc)
        p->cc = NULL;
}

static void port_channel_gone(SpiceChannel *ch)
{
    SpicePort *p = spice_channel_priv(ch);
    if (p) {
        p->ch = NULL;
        p->cc = NULL;
    }
}

static const SpiceChannelClass port_class = {
    .name = "port",
    .max_in = SPICE_PORT_CHUNK,
    .connect = port_connect,
    .on_message = port_on_message,
    .disconnect = port_disconnect,
    .drained = port_drained,
    .channel_gone = port_channel_gone,
};

SpicePort *spice_port_add(SpiceServer *s, uint8_t id, const char *name, const SpicePortOps *ops, void *opaque)
{
    SpicePort *p = mig_malloc0(sizeof(*p));
    p->server = s;
    p->name = mig_strdup(name);
    p->ops = *ops;
    p->opaque = opaque;
    p->ch = spice_server_add_channel(s, SPICE_CHANNEL_PORT, id, &port_class, p);
    return p;
}

void spice_port_free(SpicePort *p)
{
    if (!p)
        return;
    if (p->ch)
        spice_channel_set_priv(p->ch, NULL);
    if (p->cc)
        spice_cc_disconnect(p->cc, "the port's device went away");
    free(p->name);
    free(p);
}

void spice_port_set_open(SpicePort *p, bool open)
{
    if (p->open == open)
        return;
    p->open = open;
    if (p->cc) {
        SpiceMsgU8 ev = {open ? SPICE_PORT_EVENT_OPENED : SPICE_PORT_EVENT_CLOSED};
        spice_cc_send(p->cc, SPICE_MSG_PORT_EVENT, &ev);
    }
}

size_t spice_port_write(SpicePort *p, const uint8_t *data, size_t len)
{
    if (!p->cc || !spice_conn_is_open(spice_cc_conn(p->cc)))
        return 0;
    size_t taken = 0;
    while (taken < len) {
        uint64_t backlog = spice_conn_backlog(spice_cc_conn(p->cc));
        if (backlog >= SPICE_PORT_MAX_BACKLOG)
            break;
        size_t n = MIG_MIN(len - taken, (size_t)SPICE_PORT_CHUNK);
        n = MIG_MIN(n, (size_t)(SPICE_PORT_MAX_BACKLOG - backlog));
        SpiceMsgBytes d = {.data = {.len = (uint32_t)n, .data = (uint8_t *)data + taken}};
        if (spice_cc_send(p->cc, SPICE_MSG_SPICEVMC_DATA, &d) < 0)
            break;
        taken += n;
    }
    return taken;
}

bool spice_port_has_client(const SpicePort *p)
{
    return p->cc != NULL;
}
