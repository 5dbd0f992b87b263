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
    const VmsDescription *emit, *load; /* the section as written and as read */
};

static void pump(FakeVmc *v)
{
    uint8_t buf[4096];
    while (v->running && v->budget) {
        uint32_t n = v->budget < sizeof(buf) ? v->budget : (uint32_t)sizeof(buf);
        fake_media_bytes(v->st.written, buf, n);
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
    while (len) {
        size_t k = fake_media_bytes_match(v->st.read, data, len);
        v->st.read += k;
        data += k;
        len -= k;
        if (len) { /* a byte out of place: counted, and the check goes on */
            v->st.read_errors++;
            v->st.read++;
            data++;
            len--;
        }
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
    fake_vmc_set_vmsd(v, NULL, NULL);
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

/* ---- migration state: "fake-vmc", described per release (fake-vmc.h) ----
 * The section is written from a snapshot of what migrates and read into
 * one, so the device changes only when the whole section loaded. */

typedef struct VmcMig {
    uint64_t written, read, read_errors;
    uint32_t per_tick;
} VmcMig;

static const VmsField pacing_fields[] = {
    VMS_U32(per_tick, VmcMig),
    VMS_END,
};

/* The guest's pacing goes with it only when it is not the default (a
 * destination that does not know the subsection keeps its own). */
static bool pacing_needed(void *obj)
{
    return ((VmcMig *)obj)->per_tick != FAKE_VMC_DEFAULT_BYTES_PER_TICK;
}

static const VmsDescription pacing_vmsd = {
    .name = "fake-vmc/pacing",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = pacing_fields,
    .needed = pacing_needed,
};

static const VmsDescription *const vmc_subsections[] = {&pacing_vmsd, NULL};

#define VMC_V1_FIELDS VMS_U64(written, VmcMig), VMS_U64(read, VmcMig)

static const VmsField vmc_fields_v1[] = {
    VMC_V1_FIELDS,
    VMS_END,
};

static const VmsField vmc_fields_v2[] = {
    VMC_V1_FIELDS,
    VMS_U64_V(read_errors, VmcMig, 2),
    VMS_END,
};

const VmsDescription fake_vmc_vmsd_1_0 = {
    .name = "fake-vmc",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = vmc_fields_v1,
};

const VmsDescription fake_vmc_vmsd_2_0 = {
    .name = "fake-vmc",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = vmc_fields_v1,
    .subsections = vmc_subsections,
};

const VmsDescription fake_vmc_vmsd_2_1 = {
    .name = "fake-vmc",
    .version_id = 2,
    .minimum_version_id = 1,
    .fields = vmc_fields_v2,
    .subsections = vmc_subsections,
};

static void vmc_snapshot(const FakeVmc *d, VmcMig *m)
{
    *m = (VmcMig){d->st.written, d->st.read, d->st.read_errors, d->per_tick};
}

static int vmc_save(void *opaque, MigStream *s, MigErr **errp)
{
    FakeVmc *d = opaque;
    VmcMig m;
    vmc_snapshot(d, &m);
    return vmstate_save(s, d->emit, &m, errp);
}

static int vmc_load(void *opaque, MigStream *s, uint32_t version_id, MigErr **errp)
{
    FakeVmc *d = opaque;
    VmcMig m;
    vmc_snapshot(d, &m);
    m.read_errors = 0; /* a v1 stream: this side counts its own from here */
    int r = vmstate_load_sent(s, d->load, d->emit, &m, (int)version_id, errp);
    if (r < 0)
        return r;
    d->st.written = m.written;
    d->st.read = m.read;
    d->st.read_errors = m.read_errors;
    d->per_tick = m.per_tick;
    return 0;
}

static const MigFullOps vmc_ops = {.save = vmc_save, .load = vmc_load};

void fake_vmc_set_vmsd(FakeVmc *d, const VmsDescription *emit, const VmsDescription *load)
{
    d->emit = emit ? emit : &fake_vmc_vmsd_2_1;
    d->load = load ? load : &fake_vmc_vmsd_2_1;
}

uint32_t fake_vmc_bytes_per_tick(const FakeVmc *v)
{
    return v->per_tick;
}

int fake_vmc_register(FakeVmc *d, MigSavevm *sv, MigErr **errp)
{
    int r = mig_savevm_register_full(sv, "fake-vmc", 0, (uint32_t)d->emit->version_id, &vmc_ops, d, errp);
    return r < 0 ? r : 0;
}
