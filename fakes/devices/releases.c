/*
 * releases.c - release history as data, fake device instances and the pair
 * rules (see releases.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake-gpu.h"
#include "fake-nic.h"
#include "fake-serial.h"
#include "releases.h"
#include "spice/spice-pixmap-cache.h"
#include "spice/spice-server.h"

/* ---- fake-rng: the device 2.1-dev adds ---- */

typedef struct FakeRng {
    uint64_t state;
    uint64_t bytes_out;
} FakeRng;

static const VmsField fake_rng_fields[] = {
    VMS_U64(state, FakeRng),
    VMS_U64(bytes_out, FakeRng),
    VMS_END,
};

static const VmsDescription fake_rng_vmsd_v1 = {
    .name = "fake-rng",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = fake_rng_fields,
};

/* ---- the tables ---- */

static const char *const caps_1_0[] = {NULL};
static const char *const caps_1_1[] = {"events", "zero-blocks", "return-path", NULL};
static const char *const caps_2_0[] = {"events",          "zero-blocks",
                                       "return-path",     "pause-before-switchover",
                                       "validate-uuid",   "x-ignore-shared",
                                       NULL};
static const char *const caps_2_1[] = {"events",          "zero-blocks",
                                       "return-path",     "pause-before-switchover",
                                       "validate-uuid",   "x-ignore-shared",
                                       "x-page-flip",     "x-ram-share",
                                       "x-require-vmdesc", NULL};
static const char *const devs_1[] = {"fake-serial", "fake-nic", NULL};
static const char *const devs_2_0[] = {"fake-serial", "fake-nic", "fake-gpu", NULL};
static const char *const devs_2_1[] = {"fake-serial", "fake-nic", "fake-gpu", "fake-rng", NULL};

/* SPICE (releases.h): {semi_seamless, mig_version, display_blob, cache_restore} */
static const MigRelease releases[] = {
    {"1.0", "mc-1.0", false, caps_1_0, devs_1, 4, {false, 0, 0, false}},
    {"1.1", "mc-1.1", true, caps_1_1, devs_1, 4, {true, 0, 0, false}},
    {"2.0", "mc-2.0", true, caps_2_0, devs_2_0, 4, {true, 1, 1, false}},
    {"2.1-dev", "mc-2.1", true, caps_2_1, devs_2_1, 4, {true, 2, 2, true}},
};

static const char *const device_types[] = {"fake-serial", "fake-nic", "fake-rng", "fake-gpu"};

/* vmstate-described devices per release (index = release index) */
static const struct {
    const char *type;
    const VmsDescription *vmsd[4];
} device_vmsds[] = {
    {"fake-serial",
     {&fake_serial_vmsd_v1, &fake_serial_vmsd_v1, &fake_serial_vmsd_v2, &fake_serial_vmsd_v2}},
    {"fake-nic", {&fake_nic_vmsd_1_0, &fake_nic_vmsd_1_1, &fake_nic_vmsd_2_0, &fake_nic_vmsd_2_0}},
    {"fake-rng", {NULL, NULL, NULL, &fake_rng_vmsd_v1}},
};

size_t mig_release_count(void)
{
    return MIG_ARRAY_SIZE(releases);
}

const MigRelease *mig_release_at(size_t i)
{
    return i < MIG_ARRAY_SIZE(releases) ? &releases[i] : NULL;
}

int mig_release_index(const char *name)
{
    for (size_t i = 0; name && i < MIG_ARRAY_SIZE(releases); i++)
        if (!strcmp(releases[i].name, name))
            return (int)i;
    return -1;
}

const MigRelease *mig_release_find(const char *name)
{
    int i = mig_release_index(name);
    return i < 0 ? NULL : &releases[i];
}

const char *mig_release_names(void)
{
    return "1.0, 1.1, 2.0, 2.1-dev";
}

const MigRelease *mig_machine_type_find(const char *name)
{
    for (size_t i = 0; name && i < MIG_ARRAY_SIZE(releases); i++)
        if (!strcmp(releases[i].machine_type, name))
            return &releases[i];
    return NULL;
}

const char *mig_machine_type_names(void)
{
    return "mc-1.0, mc-1.1, mc-2.0, mc-2.1";
}

bool mig_device_type_known(const char *type)
{
    for (size_t i = 0; type && i < MIG_ARRAY_SIZE(device_types); i++)
        if (!strcmp(device_types[i], type))
            return true;
    return false;
}

const char *mig_device_type_names(void)
{
    return "fake-serial, fake-nic, fake-rng, fake-gpu";
}

bool mig_release_has_device(const char *release, const char *type)
{
    const MigRelease *r = mig_release_find(release);
    for (size_t i = 0; r && r->devices[i]; i++)
        if (!strcmp(r->devices[i], type))
            return true;
    return false;
}

const VmsDescription *mig_release_device_vmsd(const char *release, const char *type)
{
    int ri = mig_release_index(release);
    if (ri < 0 || !type)
        return NULL;
    for (size_t i = 0; i < MIG_ARRAY_SIZE(device_vmsds); i++)
        if (!strcmp(device_vmsds[i].type, type))
            return device_vmsds[i].vmsd[ri];
    return NULL;
}

json_t *mig_release_dump(const char *release)
{
    const MigRelease *r = mig_release_find(release);
    if (!r)
        return NULL;
    json_t *doc = json_object();
    json_object_set_new(doc, "vmschkmachine", json_pack("{s:s}", "Name", r->machine_type));
    for (size_t i = 0; r->devices[i]; i++) {
        const VmsDescription *d = mig_release_device_vmsd(release, r->devices[i]);
        if (d)
            json_object_set_new(doc, r->devices[i], vmstate_describe_dump(d));
    }
    return doc;
}

json_t *mig_release_dump_devices(const char *desc_release, const char *machine_type,
                                 char *const *devices, size_t n)
{
    const MigRelease *r = mig_release_find(desc_release);
    if (!r)
        return NULL;
    json_t *doc = json_object();
    json_object_set_new(doc, "vmschkmachine",
                        json_pack("{s:s}", "Name", machine_type ? machine_type : r->machine_type));
    size_t count = devices ? n : 0;
    if (!devices)
        while (r->devices[count])
            count++;
    for (size_t i = 0; i < count; i++) {
        const char *t = devices ? devices[i] : r->devices[i];
        if (!mig_release_has_device(desc_release, t) || json_object_get(doc, t))
            continue;
        const VmsDescription *d = mig_release_device_vmsd(desc_release, t);
        json_t *desc = NULL;
        if (d)
            desc = vmstate_describe_dump(d);
        else if (!strcmp(t, "fake-gpu") && fake_gpu_plugin()->vmstate_json)
            desc = json_loads(fake_gpu_plugin()->vmstate_json, 0, NULL);
        if (desc)
            json_object_set_new(doc, t, desc);
    }
    return doc;
}

/* ---- device instances ---- */

struct MigFakeDevice {
    const char *type;
    const VmsDescription *emit; /* what it saves (machine type's release) */
    const VmsDescription *load; /* what it loads (its own release) */
    uint64_t got;               /* the last load's subsections (vmstate_load_logged) */
    union {
        FakeSerial serial;
        FakeNic nic;
        FakeRng rng;
    } u;
};

static int full_save(void *opaque, MigStream *s, MigErr **errp)
{
    MigFakeDevice *d = opaque;
    return vmstate_save(s, d->emit, &d->u, errp);
}

static int full_load(void *opaque, MigStream *s, uint32_t version_id, MigErr **errp)
{
    MigFakeDevice *d = opaque;
    /* what the machine type emits is what the source sends: its
     * always-written subsections must arrive */
    return vmstate_load_logged(s, d->load, d->emit, &d->u, (int)version_id, &d->got, errp);
}

static int full_loaded_subsection(void *opaque, const char *name)
{
    MigFakeDevice *d = opaque;
    int i = vmstate_subsection_index(d->load, name);
    return i >= 0 && (d->got >> i & 1);
}

static json_t *full_describe(void *opaque)
{
    MigFakeDevice *d = opaque;
    return vmstate_describe_vmdesc(d->emit, &d->u, d->type, 0);
}

static const MigFullOps fake_full_ops = {
    .save = full_save,
    .load = full_load,
    .describe = full_describe,
    .loaded_subsection = full_loaded_subsection,
};

MigFakeDevice *mig_fake_device_new(const char *type, const char *release, const char *machine,
                                   uint64_t seed, MigErr **errp)
{
    const MigRelease *r = mig_release_find(release);
    if (!r)
        return mig_err_set(errp, -EINVAL, "unknown release '%s'", release ? release : ""), NULL;
    const MigRelease *mt = machine && *machine ? mig_machine_type_find(machine)
                                               : mig_machine_type_find(r->machine_type);
    if (!mt)
        return mig_err_set(errp, -EINVAL, "unknown machine type '%s'", machine), NULL;
    if (mig_release_index(mt->name) > mig_release_index(r->name))
        return mig_err_set(errp, -EINVAL, "release %s does not know machine type %s", r->name,
                           mt->machine_type),
               NULL;
    if (!mig_device_type_known(type))
        return mig_err_set(errp, -EINVAL, "unknown device '%s'", type ? type : ""), NULL;
    if (!mig_release_has_device(mt->name, type))
        return mig_err_set(errp, -ENODEV, "machine type %s has no device %s", mt->machine_type,
                           type),
               NULL;
    const VmsDescription *emit = mig_release_device_vmsd(mt->name, type);
    const VmsDescription *load = mig_release_device_vmsd(r->name, type);
    if (!emit || !load)
        return mig_err_set(errp, -ENOTSUP, "device %s is not vmstate-described", type), NULL;
    MigFakeDevice *d = mig_malloc0(sizeof(*d));
    d->emit = emit;
    d->load = load;
    MigPrng prng;
    mig_prng_seed(&prng, seed);
    if (!strcmp(type, "fake-serial")) {
        d->type = "fake-serial";
        fake_serial_init(&d->u.serial, &prng);
    } else if (!strcmp(type, "fake-nic")) {
        d->type = "fake-nic";
        fake_nic_init(&d->u.nic, &prng);
    } else {
        d->type = "fake-rng";
        d->u.rng.state = mig_prng_next(&prng);
        d->u.rng.bytes_out = mig_prng_below(&prng, 1u << 20);
    }
    return d;
}

void mig_fake_device_free(MigFakeDevice *d)
{
    free(d);
}

const char *mig_fake_device_type(const MigFakeDevice *d)
{
    return d->type;
}

int mig_fake_device_register(MigFakeDevice *d, MigSavevm *sv, MigErr **errp)
{
    int rc = mig_savevm_register_full(sv, d->type, 0, (uint32_t)d->emit->version_id,
                                      &fake_full_ops, d, errp);
    return rc < 0 ? rc : 0;
}

MigFakeDevice *mig_fake_device_clone(const MigFakeDevice *d)
{
    MigFakeDevice *c = mig_malloc0(sizeof(*c));
    *c = *d;
    return c;
}

typedef struct Cmp {
    const char *type;
    MigErr **errp;
    int rc;
} Cmp;

static void cmp_u64(Cmp *c, const char *field, uint64_t want, uint64_t got)
{
    if (c->rc == 0 && want != got)
        c->rc = mig_err_set(c->errp, -EPROTO,
                            "%s: field %s: destination has %llu, source saved %llu", c->type,
                            field, (unsigned long long)got, (unsigned long long)want);
}

static void cmp_desc(Cmp *c, const char *ring, unsigned i, const FakeNicDesc *a,
                     const FakeNicDesc *b)
{
    char name[64];
    snprintf(name, sizeof(name), "%s[%u].addr", ring, i);
    cmp_u64(c, name, a->addr, b->addr);
    snprintf(name, sizeof(name), "%s[%u].len", ring, i);
    cmp_u64(c, name, a->len, b->len);
    snprintf(name, sizeof(name), "%s[%u].flags", ring, i);
    cmp_u64(c, name, a->flags, b->flags);
}

static bool has_subsections(const VmsDescription *d)
{
    return d->subsections && d->subsections[0];
}

/* Compare the state; `sent` = what the source's description carries, `has`
 * = what the destination's carries (NULL: compare every field). */
static int compare(const MigFakeDevice *a, const MigFakeDevice *b, const VmsDescription *sent,
                   const VmsDescription *has, MigErr **errp)
{
    Cmp c = {a->type, errp, 0};
    char name[64];
    if (!strcmp(a->type, "fake-serial")) {
        const FakeSerial *x = &a->u.serial, *y = &b->u.serial;
        cmp_u64(&c, "ier", x->ier, y->ier);
        cmp_u64(&c, "lcr", x->lcr, y->lcr);
        cmp_u64(&c, "mcr", x->mcr, y->mcr);
        cmp_u64(&c, "scr", x->scr, y->scr);
        cmp_u64(&c, "divider", x->divider, y->divider);
        cmp_u64(&c, "modem.msr", x->modem.msr, y->modem.msr);
        cmp_u64(&c, "modem.lsr", x->modem.lsr, y->modem.lsr);
        cmp_u64(&c, "rx_count", x->rx_count, y->rx_count);
        for (unsigned i = 0; i < x->rx_count && i < 16; i++) {
            snprintf(name, sizeof(name), "rx_fifo[%u]", i);
            cmp_u64(&c, name, x->rx_fifo[i], y->rx_fifo[i]);
        }
        cmp_u64(&c, "timeout_timer", (uint64_t)x->timeout_timer, (uint64_t)y->timeout_timer);
        bool sent_fcr = !sent || sent->version_id >= 2;
        bool has_fcr = !has || has->version_id >= 2;
        if (sent_fcr && has_fcr)
            cmp_u64(&c, "fcr", x->fcr, y->fcr);
        else if (has_fcr)
            cmp_u64(&c, "fcr (default)", FAKE_SERIAL_DEFAULT_FCR, y->fcr);
    } else if (!strcmp(a->type, "fake-nic")) {
        const FakeNic *x = &a->u.nic, *y = &b->u.nic;
        for (unsigned i = 0; i < 6; i++) {
            snprintf(name, sizeof(name), "mac[%u]", i);
            cmp_u64(&c, name, x->mac[i], y->mac[i]);
        }
        cmp_u64(&c, "ctrl", x->ctrl, y->ctrl);
        cmp_u64(&c, "status", x->status, y->status);
        cmp_u64(&c, "rx_head", x->rx_head, y->rx_head);
        cmp_u64(&c, "rx_tail", x->rx_tail, y->rx_tail);
        for (unsigned i = 0; i < 8; i++)
            cmp_desc(&c, "rx_ring", i, &x->rx_ring[i], &y->rx_ring[i]);
        cmp_u64(&c, "tx_count", x->tx_count, y->tx_count);
        for (unsigned i = 0; i < x->tx_count && i < 8; i++)
            cmp_desc(&c, "tx_ring", i, &x->tx_ring[i], &y->tx_ring[i]);
        cmp_u64(&c, "stats.rx_packets", x->stats.rx_packets, y->stats.rx_packets);
        cmp_u64(&c, "stats.tx_packets", x->stats.tx_packets, y->stats.tx_packets);
        cmp_u64(&c, "stats.errors", x->stats.errors, y->stats.errors);
        bool sent_offload = !sent || (has_subsections(sent) && x->csum_flags != 0);
        bool has_offload = !has || has_subsections(has);
        if (sent_offload && has_offload) {
            cmp_u64(&c, "csum_flags", x->csum_flags, y->csum_flags);
            cmp_u64(&c, "tso_mss", x->tso_mss, y->tso_mss);
        } else if (has_offload && has->pre_load) {
            /* documented transform: no subsection -> offload off */
            cmp_u64(&c, "csum_flags (default)", 0, y->csum_flags);
            cmp_u64(&c, "tso_mss (default)", 0, y->tso_mss);
        }
        bool sent_mtu = !sent || sent->version_id >= 2;
        bool has_mtu = !has || has->version_id >= 2;
        if (sent_mtu && has_mtu)
            cmp_u64(&c, "mtu", x->mtu, y->mtu);
        else if (has_mtu)
            cmp_u64(&c, "mtu (default)", FAKE_NIC_DEFAULT_MTU, y->mtu);
    } else {
        cmp_u64(&c, "state", a->u.rng.state, b->u.rng.state);
        cmp_u64(&c, "bytes_out", a->u.rng.bytes_out, b->u.rng.bytes_out);
    }
    return c.rc;
}

int mig_fake_device_same(const MigFakeDevice *a, const MigFakeDevice *b, MigErr **errp)
{
    if (strcmp(a->type, b->type))
        return mig_err_set(errp, -EINVAL, "comparing %s with %s", a->type, b->type);
    return compare(a, b, NULL, NULL, errp);
}

int mig_fake_device_check_migrated(const MigFakeDevice *src, const MigFakeDevice *dst,
                                   MigErr **errp)
{
    if (strcmp(src->type, dst->type))
        return mig_err_set(errp, -EINVAL, "comparing %s with %s", src->type, dst->type);
    return compare(src, dst, src->emit, dst->load, errp);
}

void mig_fake_device_poke(MigFakeDevice *d)
{
    if (!strcmp(d->type, "fake-serial"))
        d->u.serial.scr ^= 0x5a;
    else if (!strcmp(d->type, "fake-nic"))
        d->u.nic.ctrl ^= 0x5a;
    else
        d->u.rng.state ^= 0x5a;
}

/* ---- pair rules ---- */

static bool vmsd_has_sub(const VmsDescription *d, const char *name)
{
    for (size_t i = 0; d && d->subsections && d->subsections[i]; i++)
        if (!strcmp(d->subsections[i]->name, name))
            return true;
    return false;
}

/* The first field of `emit` a stream of `emit`'s version carries that a
 * loader of `load`'s version does not know (a field added with a version
 * bump); "" when none is found. */
static void first_new_field(const VmsDescription *emit, const VmsDescription *load, char *out,
                            size_t len)
{
    out[0] = 0;
    for (const VmsField *f = emit->fields; f && f->name; f++)
        if (f->version_id > load->version_id) {
            snprintf(out, len, "%s", f->name);
            return;
        }
}

void mig_pair_predict(const char *src_release, const char *src_machine, const char *dst_release,
                      char *const *devices, size_t ndevices, MigPairPrediction *out)
{
    memset(out, 0, sizeof(*out));
    const MigRelease *sr = mig_release_find(src_release);
    const MigRelease *mt = src_machine && *src_machine ? mig_machine_type_find(src_machine)
                                                       : (sr ? mig_machine_type_find(sr->machine_type)
                                                             : NULL);
    int di = mig_release_index(dst_release);
    if (!sr || !mt || di < 0) {
        snprintf(out->reason, sizeof(out->reason), "unknown release or machine type");
        return;
    }
    out->completes = true;
    /* Devices first: their breakage is what the error must name. */
    for (size_t i = 0; i < ndevices && out->completes; i++) {
        const char *t = devices[i];
        const VmsDescription *emit = mig_release_device_vmsd(mt->name, t);
        const VmsDescription *load = mig_release_device_vmsd(dst_release, t);
        if (!mig_release_has_device(dst_release, t)) {
            out->completes = false;
            snprintf(out->reason, sizeof(out->reason), "release %s has no device %s",
                     dst_release, t);
        } else if (!emit || !load) {
            continue; /* not vmstate-described (fake-gpu): no version history */
        } else if (emit->version_id > load->version_id) {
            out->completes = false;
            first_new_field(emit, load, out->field, sizeof(out->field));
            snprintf(out->reason, sizeof(out->reason), "%s version %d is newer than %d%s%s", t,
                     emit->version_id, load->version_id, out->field[0] ? ": field " : "",
                     out->field);
        } else if (emit->version_id < load->minimum_version_id) {
            out->completes = false;
            snprintf(out->reason, sizeof(out->reason), "%s version %d is older than %d", t,
                     emit->version_id, load->minimum_version_id);
        } else {
            /* fake-nic always needs its offload subsection when it has one */
            for (size_t k = 0; emit->subsections && emit->subsections[k]; k++)
                if (!vmsd_has_sub(load, emit->subsections[k]->name)) {
                    out->completes = false;
                    snprintf(out->field, sizeof(out->field), "%s", emit->subsections[k]->name);
                    out->field_is_subsection = true;
                    snprintf(out->reason, sizeof(out->reason), "%s: subsection %s unknown to %s",
                             t, emit->subsections[k]->name, dst_release);
                    break;
                }
        }
        if (!out->completes)
            snprintf(out->device, sizeof(out->device), "%s", t);
    }
    if (mig_release_index(mt->name) > di) {
        out->machine_unknown = true;
        if (out->completes) {
            out->completes = false;
            snprintf(out->reason, sizeof(out->reason),
                     "release %s does not know machine type %s", dst_release, mt->machine_type);
        }
    }
}

/* ---- SPICE pair rules ---- */

const char *const mig_spice_mig_names[3] = {"switch-host", "semi-seamless", "seamless"};

void mig_spice_pair_predict(const char *src_release, const char *dst_release, bool seamless_on,
                            bool client_semi, bool client_seamless, MigSpicePrediction *out)
{
    memset(out, 0, sizeof(*out));
    const MigRelease *s = mig_release_find(src_release), *d = mig_release_find(dst_release);
    out->kind = MIG_SPICE_MIG_SEMI_SEAMLESS;
    if (!s || !d) {
        snprintf(out->reason, sizeof(out->reason), "unknown release");
        return;
    }
    const MigSpiceRelease *a = &s->spice, *b = &d->spice;
    out->kind = MIG_SPICE_MIG_SWITCH_HOST;
    if (!client_semi) {
        snprintf(out->reason, sizeof(out->reason), "the client lacks SEMI_SEAMLESS");
    } else if (!a->semi_seamless) {
        snprintf(out->reason, sizeof(out->reason), "release %s's SPICE server does not offer SEMI_SEAMLESS",
                 s->name);
    } else if (!b->semi_seamless) {
        snprintf(out->reason, sizeof(out->reason), "release %s's SPICE server refuses a migrating client's "
                 "link (no SEMI_SEAMLESS): CONNECT_ERROR", d->name);
        out->client_error = "BAD_CONNECTION_ID";
    } else {
        out->kind = MIG_SPICE_MIG_SEMI_SEAMLESS;
        if (!seamless_on)
            snprintf(out->reason, sizeof(out->reason), "seamless migration is off");
        else if (!client_seamless)
            snprintf(out->reason, sizeof(out->reason), "the client lacks SEAMLESS_MIGRATE");
        else if (!a->mig_version)
            snprintf(out->reason, sizeof(out->reason), "release %s's SPICE server has no seamless migration",
                     s->name);
        else if (!b->mig_version)
            snprintf(out->reason, sizeof(out->reason), "release %s's SPICE server does not offer SEAMLESS",
                     d->name);
        else if (a->mig_version > b->mig_version)
            snprintf(out->reason, sizeof(out->reason), "migration protocol %u (%s) is newer than %u (%s): NACK",
                     a->mig_version, s->name, b->mig_version, d->name);
        else {
            out->kind = MIG_SPICE_MIG_SEAMLESS;
            snprintf(out->reason, sizeof(out->reason), "migration protocol %u (%s) is at most %u (%s): ACK",
                     a->mig_version, s->name, b->mig_version, d->name);
        }
    }
}

int mig_release_spice_config(const char *release, SpiceServerConfig *sc)
{
    const MigRelease *r = mig_release_find(release);
    if (!r)
        return -EINVAL;
    const MigSpiceRelease *sp = &r->spice;
    sc->no_semi_seamless = !sp->semi_seamless;
    sc->no_seamless = !sp->mig_version;
    sc->migration_version = sp->mig_version;
    sc->display_blob_version = sp->display_blob;
    if (!sp->cache_restore)
        sc->pixmap_cache_migration = SPICE_PIXMAP_CACHE_MIG_RESET;
    return 0;
}
