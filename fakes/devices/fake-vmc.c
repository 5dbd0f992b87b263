/*
 * fake-vmc.c - the fake char device (fake-vmc.h).
 */
#include <stdlib.h>

#include "devices/fake-media.h"
#include "devices/fake-vmc.h"
#include "savevm/savevm.h"
#include "spice/spice-port.h"

#define TICK_NS 10000000ull

struct FakeVmc {
    MigLoop *loop;
    SpicePort *port;
    uint32_t per_tick;
    uint32_t budget; /* bytes still allowed in this tick */
    bool running;
    MigLoopSource *timer;
    FakeVmcStats st;
};

static void pump(FakeVmc *v)
{
    uint8_t buf[4096];
    while (v->running && v->budget) {
        uint32_t n = v->budget < sizeof(buf) ? v->budget : (uint32_t)sizeof(buf);
        for (uint32_t i = 0; i < n; i++)
            buf[i] = fake_media_byte(v->st.written + i);
        size_t took = spice_port_write(v->port, buf, n);
        v->st.written += took;
        v->budget -= (uint32_t)took;
        if (took < n)
            break; /* the client's backlog is full: `writable` calls again */
    }
}

static void tick(void *opaque)
{
    FakeVmc *v = opaque;
    v->timer = NULL;
    v->budget = v->per_tick;
    pump(v);
    v->timer = mig_loop_timer_add(v->loop, mig_loop_now_ns(v->loop) + TICK_NS, tick, v);
}

static void sink(void *opaque, const uint8_t *data, size_t len)
{
    FakeVmc *v = opaque;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != fake_media_byte(v->st.read))
            v->st.read_errors++;
        v->st.read++;
    }
}

static void writable(void *opaque)
{
    pump(opaque);
}

/* A stopped guest reads nothing: the port holds the client's bytes (and a
 * seamless migration carries them to the target). */
static bool accepting(void *opaque)
{
    return ((FakeVmc *)opaque)->running;
}

static const SpicePortOps port_ops = {.sink = sink, .writable = writable, .accepting = accepting};

FakeVmc *fake_vmc_new(MigLoop *loop, SpiceServer *server, uint32_t bytes_per_tick)
{
    FakeVmc *v = mig_malloc0(sizeof(*v));
    v->loop = loop;
    v->per_tick = bytes_per_tick;
    v->port = spice_port_add(server, 0, FAKE_VMC_PORT_NAME, &port_ops, v);
    return v;
}

void fake_vmc_set_running(FakeVmc *v, bool running)
{
    if (v->running == running)
        return;
    v->running = running;
    spice_port_set_open(v->port, running);
    if (running) {
        spice_port_device_ready(v->port);
        v->timer = mig_loop_timer_add(v->loop, mig_loop_now_ns(v->loop) + TICK_NS, tick, v);
    } else if (v->timer) {
        mig_loop_remove(v->loop, v->timer);
        v->timer = NULL;
    }
}

void fake_vmc_free(FakeVmc *v)
{
    if (!v)
        return;
    if (v->timer)
        mig_loop_remove(v->loop, v->timer);
    spice_port_free(v->port);
    free(v);
}

void fake_vmc_stats(const FakeVmc *v, FakeVmcStats *out)
{
    *out = v->st;
    out->held = spice_port_held(v->port);
}

/* ---- migration state: ("fake-vmc", version 1: the bytes written to and read from the client so far, so that the sequence goes on) */

static int vmc_save(void *opaque, MigStream *s, MigErr **errp)
{
    FakeVmc *d = opaque;
    mig_stream_put_be64(s, d->st.written);
    mig_stream_put_be64(s, d->st.read);
    return mig_stream_error(s);
}

static int vmc_load(void *opaque, MigStream *s, uint32_t version_id, MigErr **errp)
{
    FakeVmc *d = opaque;
    uint64_t written = mig_stream_get_be64(s);
    uint64_t read = mig_stream_get_be64(s);
    if (mig_stream_starved(s))
        return -EAGAIN;
    if (mig_stream_error(s))
        return mig_err_set(errp, mig_stream_error(s), "device fake-vmc: stream error");
    d->st.written = written;
    d->st.read = read;
    return 0;
}

static const MigFullOps vmc_ops = {.save = vmc_save, .load = vmc_load};

int fake_vmc_register(FakeVmc *d, MigSavevm *sv, MigErr **errp)
{
    int r = mig_savevm_register_full(sv, "fake-vmc", 0, 1, &vmc_ops, d, errp);
    return r < 0 ? r : 0;
}
