/*
 * spice-port.c - the port channel (spice-port.h).  A char device has one
 * client at a time, as in spice-server: a second client's link is refused
 * while the first is linked.
 */
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "../common/buf.h"
#include "spice-migrate-data.h"
#include "spice-port.h"

struct SpicePort {
    SpiceServer *server;
    SpiceChannel *ch;
    char *name;
    bool open;
    SpicePortOps ops;
    void *opaque;
    SpiceChannelClient *cc;
    /* client bytes the device has not taken (it was stopped): written to it
     * when it takes again, or carried to the target by seamless migration */
    uint8_t *wbuf;
    size_t wlen, wcap;
    uint32_t wmsgs;
};

/* Client bytes to the device, in order: what is held first. */
static void deliver(SpicePort *p, const uint8_t *data, size_t len)
{
    bool take = !p->ops.accepting || p->ops.accepting(p->opaque);
    if (take && p->wlen) {
        size_t n = p->wlen;
        p->wlen = 0;
        p->wmsgs = 0;
        if (p->ops.sink)
            p->ops.sink(p->opaque, p->wbuf, n);
    }
    if (!len)
        return;
    if (take) {
        if (p->ops.sink)
            p->ops.sink(p->opaque, data, len);
        return;
    }
    MIG_GROW(p->wbuf, p->wcap, p->wlen + len, 4096);
    memcpy(p->wbuf + p->wlen, data, len);
    p->wlen += len;
    p->wmsgs++;
}

size_t spice_port_held(const SpicePort *p)
{
    return p->wlen;
}

void spice_port_device_ready(SpicePort *p)
{
    deliver(p, NULL, 0);
}

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
        if (d->data.len)
            deliver(p, d->data.data, d->data.len);
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

/* Seamless migration: the SVMD blob carries the client bytes the device
 * has not taken (the guest stopped), so that none is lost or doubled. */
static int port_migrate_save(SpiceChannelClient *cc, uint8_t **blob, size_t *len, MigErr **errp)
{
    SpicePort *p = spice_channel_priv(spice_cc_channel(cc));
    SpiceMigVmc v = {.h = {SPICE_MIG_MAGIC_VMC, SPICE_MIG_VERSION_VMC},
                     .base = {.version = SPICE_MIG_VERSION_CHAR_DEVICE, .connected = 1}};
    size_t n = p && p->cc == cc ? p->wlen : 0;
    if (n) {
        v.base.write_size = (uint32_t)n;
        v.base.write_num_client_tokens = p->wmsgs;
        v.base.write_data_ptr = (uint32_t)spice_marshal_fixed_size(&spice_mig_vmc_desc);
    }
    int r = spice_mig_encode(&spice_mig_vmc_desc, &v, n ? p->wbuf : NULL, n, blob, len, errp);
    if (r == 0 && n) {
        p->wlen = 0; /* they go with the client to the target */
        p->wmsgs = 0;
    }
    return r;
}

static int port_migrate_load(SpiceChannelClient *cc, const uint8_t *blob, size_t len, MigErr **errp)
{
    SpicePort *p = spice_channel_priv(spice_cc_channel(cc));
    if (!p)
        return mig_err_set(errp, -ENODEV, "the port's device is gone");
    if (p->cc)
        return mig_err_set(errp, -EBUSY, "port %s already has a client", p->name);
    SpiceMigVmc v;
    int r = spice_mig_decode("port", &spice_mig_vmc_desc, blob, len, SPICE_MIG_MAGIC_VMC, SPICE_MIG_VERSION_VMC, &v,
                             errp);
    if (r < 0)
        return r;
    const uint8_t *data;
    r = spice_mig_char_device_data("port", &v.base, blob, len, spice_marshal_fixed_size(&spice_mig_vmc_desc), &data,
                                   errp);
    spice_marshal_free(&spice_mig_vmc_desc, &v);
    if (r < 0)
        return r;
    p->cc = cc;
    /* the client keeps its port open; it learns the device's side as it is here */
    SpiceMsgU8 ev = {p->open ? SPICE_PORT_EVENT_OPENED : SPICE_PORT_EVENT_CLOSED};
    r = spice_cc_send(cc, SPICE_MSG_PORT_EVENT, &ev);
    if (r < 0)
        return mig_err_set(errp, r, "cannot queue PORT_EVENT");
    if (v.base.write_size) {
        MIG_GROW(p->wbuf, p->wcap, p->wlen + v.base.write_size, 4096);
        memcpy(p->wbuf + p->wlen, data, v.base.write_size);
        p->wlen += v.base.write_size;
        p->wmsgs += v.base.write_num_client_tokens;
    }
    deliver(p, NULL, 0);
    if (p->ops.writable)
        p->ops.writable(p->opaque);
    return 0;
}

static const SpiceChannelClass port_class = {
    .name = "port",
    .max_in = SPICE_PORT_CHUNK,
    .connect = port_connect,
    .on_message = port_on_message,
    .disconnect = port_disconnect,
    .drained = port_drained,
    .channel_gone = port_channel_gone,
    .migrate_flags = SPICE_MIGRATE_NEED_FLUSH | SPICE_MIGRATE_NEED_DATA_TRANSFER,
    .migrate_save = port_migrate_save,
    .migrate_load = port_migrate_load,
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
    free(p->wbuf);
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
