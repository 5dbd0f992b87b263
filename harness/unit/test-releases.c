/*
 * test-releases.c - the release history as data: each ordered release pair's
 * dumps give exactly the breaks the rules predict under check-compat; device
 * state migrates between every pair exactly when the rules say so, with the
 * documented transforms; machine types make a newer build emit what an older
 * one loads.  The SPICE server's history: what each release speaks of
 * migration, the bump rule, and the rules that predict how a client follows
 * a migration between two releases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices/fake-nic.h"
#include "devices/fake-serial.h"
#include "devices/releases.h"
#include "sim/section-copy.h"
#include "spice/spice-pixmap-cache.h"
#include "spice/spice-server.h"
#include "stream/stream.h"
#include "vmstate/vmstate.h"

static const char *const rels[] = {"1.0", "1.1", "2.0", "2.1-dev"};
static const char *const vm_devices[] = {"fake-serial", "fake-nic", "fake-rng"};
/* on a machine with SPICE, in every release (only fake-vmc has a history) */
static const char *const spice_devices[] = {"fake-qxl", "fake-snd", "fake-vmc", "fake-input"};

/* ---- check-compat over every ordered pair ---- */

typedef struct Found {
    char items[32][64]; /* "section:rule" */
    int n;
} Found;

static void add_item(Found *f, const char *section, int rule)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s:%d", section, rule);
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->items[i], buf))
            return;
    assert_true(f->n < 32);
    strcpy(f->items[f->n++], buf);
}

static void on_finding(const VmsCompatFinding *f, void *opaque)
{
    if (f->level == VMS_COMPAT_ERROR)
        add_item(opaque, f->section, f->rule);
}

static size_t nfields(const VmsDescription *d)
{
    size_t n = 0;
    while (d->fields[n].name)
        n++;
    return n;
}

static bool has_sub(const VmsDescription *d, const char *name)
{
    for (size_t i = 0; d->subsections && d->subsections[i]; i++)
        if (!strcmp(d->subsections[i]->name, name))
            return true;
    return false;
}

/* The rules of docs/protocol-qemu-stream.md section 11, applied to the release data
 * directly (not to the JSON): what migrating OLD -> NEW breaks. */
static void predict(const char *old, const char *new, Found *f)
{
    const MigRelease *o = mig_release_find(old);
    size_t nvm = 0;
    while (o->devices[nvm])
        nvm++;
    for (size_t i = 0; i < nvm + MIG_ARRAY_SIZE(spice_devices); i++) {
        const char *dev = i < nvm ? o->devices[i] : spice_devices[i - nvm];
        const VmsDescription *a = mig_release_device_vmsd(old, dev);
        const VmsDescription *b = mig_release_device_vmsd(new, dev);
        if (!a)
            continue;
        if (!b) {
            add_item(f, dev, 1); /* section missing */
            continue;
        }
        if (a->version_id > b->version_id || a->version_id < b->minimum_version_id)
            add_item(f, dev, 2); /* version window */
        if (nfields(a) > nfields(b))
            add_item(f, dev, 6); /* source sends more fields */
        bool a_subs = a->subsections && a->subsections[0];
        bool b_subs = b->subsections && b->subsections[0];
        if (a_subs && !b_subs)
            add_item(f, dev, 4); /* "Subsections" entry missing */
        for (size_t k = 0; a_subs && a->subsections[k]; k++)
            if (!has_sub(b, a->subsections[k]->name))
                add_item(f, dev, 10); /* subsection removed */
    }
}

static int cmp_items(const void *x, const void *y)
{
    return strcmp(x, y);
}

static void test_releases_check_compat_every_ordered_pair(void **state)
{
    (void)state;
    for (size_t i = 0; i < MIG_ARRAY_SIZE(rels); i++)
        for (size_t j = 0; j < MIG_ARRAY_SIZE(rels); j++) {
            json_t *a = mig_release_dump(rels[i]);
            json_t *b = mig_release_dump(rels[j]);
            Found got = {0}, want = {0};
            MigErr *err = NULL;
            int n = vmstate_check_compat(a, b, on_finding, &got, &err);
            if (n < 0)
                fail_msg("%s -> %s: %s", rels[i], rels[j], err ? err->msg : "?");
            predict(rels[i], rels[j], &want);
            qsort(got.items, (size_t)got.n, sizeof(got.items[0]), cmp_items);
            qsort(want.items, (size_t)want.n, sizeof(want.items[0]), cmp_items);
            char gs[1024] = "", ws[1024] = "";
            for (int k = 0; k < got.n; k++)
                strcat(strcat(gs, got.items[k]), " ");
            for (int k = 0; k < want.n; k++)
                strcat(strcat(ws, want.items[k]), " ");
            if (strcmp(gs, ws))
                fail_msg("%s -> %s: check-compat found [%s], rules predict [%s]", rels[i],
                         rels[j], gs, ws);
            /* old -> new never breaks */
            if (i <= j)
                assert_int_equal(n, 0);
            else
                assert_true(n > 0);
            json_decref(a);
            json_decref(b);
        }
}

static void test_releases_history_shape(void **state)
{
    (void)state;
    assert_int_equal(mig_release_count(), 4);
    assert_false(mig_release_find("1.0")->knows_caps_query);
    assert_null(mig_release_find("1.0")->caps[0]);
    /* 1.1 adds the offload subsection without a version bump */
    assert_int_equal(fake_nic_vmsd_1_1.version_id, 1);
    assert_true(has_sub(&fake_nic_vmsd_1_1, "fake-nic/offload"));
    /* 2.0 bumps the version for mtu */
    assert_int_equal(mig_release_device_vmsd("2.0", "fake-nic")->version_id, 2);
    /* 2.1-dev adds a capability and a device */
    const MigRelease *dev = mig_release_find("2.1-dev");
    bool flip = false;
    for (size_t i = 0; dev->caps[i]; i++)
        flip |= !strcmp(dev->caps[i], "x-page-flip");
    assert_true(flip);
    assert_true(mig_release_has_device("2.1-dev", "fake-rng"));
    assert_false(mig_release_has_device("2.0", "fake-rng"));
    assert_string_equal(mig_machine_type_find("mc-1.1")->name, "1.1");
    assert_null(mig_machine_type_find("mc-9"));
    json_t *d = mig_release_dump("1.0");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(d, "vmschkmachine"), "Name")),
                        "mc-1.0");
    assert_non_null(json_object_get(d, "fake-nic"));
    assert_null(json_object_get(d, "fake-rng"));
    json_decref(d);
}

/* ---- device state across pairs ---- */

/* Migrate one device through a memory stream: src saves with what its
 * machine type emits, dst loads with its own release's description. */
static int migrate_device(const char *type, const char *src_rel, const char *src_mt,
                          const char *dst_rel, MigErr **errp, bool check)
{
    MigFakeDevice *src = mig_fake_device_new(type, src_rel, src_mt, 11, errp);
    if (!src)
        return -1000;
    MigFakeDevice *dst = mig_fake_device_new(type, dst_rel, NULL, 22, NULL);
    assert_non_null(dst);
    MigFakeDevice *before = mig_fake_device_clone(dst);
    MigSavevm *sv_src = mig_savevm_new(), *sv_dst = mig_savevm_new();
    assert_int_equal(mig_fake_device_register(src, sv_src, NULL), 0);
    assert_int_equal(mig_fake_device_register(dst, sv_dst, NULL), 0);
    int rc = sim_section_copy(sv_src, sv_dst, errp);
    if (rc == 0 && check)
        rc = mig_fake_device_check_migrated(src, dst, errp);
    if (rc < 0 && check)
        assert_int_equal(mig_fake_device_same(before, dst, NULL), 0); /* unchanged */
    mig_savevm_free(sv_src);
    mig_savevm_free(sv_dst);
    mig_fake_device_free(src);
    mig_fake_device_free(dst);
    mig_fake_device_free(before);
    return rc;
}

static void test_releases_device_every_ordered_pair(void **state)
{
    (void)state;
    for (size_t d = 0; d < MIG_ARRAY_SIZE(vm_devices); d++)
        for (size_t i = 0; i < MIG_ARRAY_SIZE(rels); i++)
            for (size_t j = 0; j < MIG_ARRAY_SIZE(rels); j++) {
                const char *type = vm_devices[d];
                if (!mig_release_has_device(rels[i], type))
                    continue;
                char *devs[] = {(char *)type};
                MigPairPrediction p;
                /* The rules at device level: ignore the machine-type part
                 * (that one is the machine's, checked in the scenarios). */
                mig_pair_predict(rels[i], NULL, rels[j], devs, 1, &p);
                bool dev_ok = p.completes || !p.device[0];
                MigErr *err = NULL;
                int rc = mig_release_has_device(rels[j], type)
                             ? migrate_device(type, rels[i], NULL, rels[j], &err, true)
                             : -ENOENT;
                if (dev_ok != (rc == 0))
                    fail_msg("%s %s -> %s: rules say %s, load gave %d (%s)", type, rels[i],
                             rels[j], dev_ok ? "ok" : p.reason, rc, err ? err->msg : "");
                if (rc < 0 && err && !strstr(err->msg, type))
                    fail_msg("%s %s -> %s: error does not name the device: %s", type,
                             rels[i], rels[j], err->msg);
                mig_err_free(err);
            }
}

static void test_releases_old_machine_type_emits_what_old_loads(void **state)
{
    (void)state;
    /* new -> old with the old machine type always works */
    for (size_t i = 0; i < MIG_ARRAY_SIZE(rels); i++)
        for (size_t j = 0; j < i; j++) {
            const char *mt = mig_release_find(rels[j])->machine_type;
            for (size_t d = 0; d < 2; d++) {
                MigErr *err = NULL;
                int rc = migrate_device(vm_devices[d], rels[i], mt, rels[j], &err, true);
                if (rc != 0)
                    fail_msg("%s %s(%s) -> %s: %s", vm_devices[d], rels[i], mt, rels[j],
                             err ? err->msg : "?");
                char *devs[] = {(char *)vm_devices[d]};
                MigPairPrediction p;
                mig_pair_predict(rels[i], mt, rels[j], devs, 1, &p);
                assert_true(p.completes);
            }
        }
    /* ... and without it fails, naming the first device that breaks
     * (both fake-serial and fake-nic gained a field in 2.0) */
    char *devs[] = {"fake-serial", "fake-nic"};
    MigPairPrediction p;
    mig_pair_predict("2.0", NULL, "1.1", devs, 2, &p);
    assert_false(p.completes);
    assert_string_equal(p.device, "fake-serial");
    assert_string_equal(p.field, "fcr");
    assert_false(p.field_is_subsection);
    char *nic_first[] = {"fake-nic", "fake-serial"};
    mig_pair_predict("2.0", NULL, "1.1", nic_first, 2, &p);
    assert_false(p.completes);
    assert_string_equal(p.device, "fake-nic");
    /* the device and field stay named although the machine type is
     * unknown too (it used to be overridden by "machine type") */
    assert_string_equal(p.field, "mtu");
    assert_false(p.field_is_subsection);
    assert_true(p.machine_unknown);
    mig_pair_predict("1.1", NULL, "1.0", devs, 2, &p);
    assert_false(p.completes);
    assert_string_equal(p.device, "fake-nic");
    assert_string_equal(p.field, "fake-nic/offload");
    assert_true(p.field_is_subsection);
    char *rng[] = {"fake-serial", "fake-rng"};
    mig_pair_predict("2.1-dev", NULL, "2.0", rng, 2, &p);
    assert_false(p.completes);
    assert_string_equal(p.device, "fake-rng");
    assert_string_equal(p.field, "");
    /* only the machine type: no device to name */
    mig_pair_predict("2.1-dev", NULL, "2.0", devs, 1, &p);
    assert_false(p.completes);
    assert_true(p.machine_unknown);
    assert_string_equal(p.device, "");
    mig_pair_predict("1.1", NULL, "2.0", devs, 2, &p);
    assert_true(p.completes);
    /* a machine type newer than the release is refused */
    MigErr *err = NULL;
    assert_null(mig_fake_device_new("fake-nic", "1.1", "mc-2.0", 1, &err));
    assert_non_null(strstr(err->msg, "does not know machine type mc-2.0"));
    mig_err_free(err);
}

static void count_error(const VmsCompatFinding *f, void *opaque)
{
    if (f->level == VMS_COMPAT_ERROR && !strcmp(f->where, "mtu"))
        ++*(int *)opaque;
}

/* The per-machine dump management's pre-flight compares: only the listed
 * devices, the machine type named, fake-gpu described by its plugin. */
static void test_releases_dump_devices_for_preflight(void **state)
{
    (void)state;
    char *devs[] = {"fake-nic", "fake-gpu", "fake-rng"};
    json_t *d = mig_release_dump_devices("2.0", "mc-2.0", devs, 3);
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "vmschkmachine"),
                                                          "Name")),
                        "mc-2.0");
    assert_non_null(json_object_get(d, "fake-nic"));
    assert_non_null(json_object_get(d, "fake-gpu"));
    assert_null(json_object_get(d, "fake-rng"));   /* 2.0 does not ship it */
    assert_null(json_object_get(d, "fake-serial")); /* not listed */
    json_t *old = mig_release_dump_devices("1.1", "mc-1.1", devs, 1);
    int mtu = 0;
    assert_true(vmstate_check_compat(d, old, count_error, &mtu, NULL) > 0);
    assert_int_equal(mtu, 1);
    json_decref(old);
    json_decref(d);
}

static void test_releases_documented_transforms(void **state)
{
    (void)state;
    /* 1.0 -> 2.0: mtu takes its default, offload is off */
    MigErr *err = NULL;
    assert_int_equal(migrate_device("fake-nic", "1.0", NULL, "2.0", &err, true), 0);
    /* a wrong transform is caught, naming the field */
    MigFakeDevice *src = mig_fake_device_new("fake-nic", "2.0", NULL, 1, NULL);
    MigFakeDevice *dst = mig_fake_device_new("fake-nic", "2.0", NULL, 2, NULL);
    assert_int_equal(mig_fake_device_check_migrated(src, dst, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "fake-nic: field mac[1]"));
    mig_err_free(err);
    mig_fake_device_free(src);
    mig_fake_device_free(dst);
}

/* fake-serial's history: a nested struct (modem status) in every release,
 * a field fcr that 2.0 adds (version 2, minimum 1) and its documented
 * default when a 1.x stream arrives. */
static void test_releases_serial_gains_fcr_in_2_0(void **state)
{
    (void)state;
    assert_int_equal(mig_release_device_vmsd("1.1", "fake-serial")->version_id, 1);
    assert_int_equal(mig_release_device_vmsd("2.0", "fake-serial")->version_id, 2);
    assert_int_equal(mig_release_device_vmsd("2.0", "fake-serial")->minimum_version_id, 1);
    /* the dump shows the nested struct in every release, fcr from 2.0 */
    for (int rel = 0; rel < 2; rel++) {
        json_t *d = mig_release_dump(rel ? "2.0" : "1.0");
        json_t *fields =
            json_object_get(json_object_get(json_object_get(d, "fake-serial"), "Description"),
                            "Fields");
        bool modem = false, fcr = false;
        for (size_t i = 0; i < json_array_size(fields); i++) {
            json_t *f = json_array_get(fields, i);
            const char *name = json_string_value(json_object_get(f, "field"));
            if (!strcmp(name, "modem")) {
                json_t *sub = json_object_get(f, "Description");
                modem = sub && !strcmp(json_string_value(json_object_get(sub, "name")),
                                       "fake-serial/modem");
            }
            fcr |= !strcmp(name, "fcr");
        }
        assert_true(modem);
        assert_int_equal(fcr, rel == 1);
        json_decref(d);
    }
    /* a 1.1 stream into 2.0: every 1.1 field (modem too) arrives, fcr takes
     * its default */
    MigPrng prng;
    mig_prng_seed(&prng, 5);
    FakeSerial src, dst;
    fake_serial_init(&src, &prng);
    fake_serial_init(&dst, &prng);
    assert_int_not_equal(dst.fcr, FAKE_SERIAL_DEFAULT_FCR);
    MigStream *w = mig_stream_new_mem_writer();
    assert_int_equal(vmstate_save(w, &fake_serial_vmsd_v1, &src, NULL), 0);
    size_t len;
    const uint8_t *bytes = mig_stream_mem_data(w, &len);
    MigStream *r = mig_stream_new_mem_reader(bytes, len);
    assert_int_equal(vmstate_load(r, &fake_serial_vmsd_v2, &dst, 1, NULL), 0);
    assert_int_equal(dst.modem.msr, src.modem.msr);
    assert_int_equal(dst.modem.lsr, src.modem.lsr);
    assert_int_equal(dst.scr, src.scr);
    assert_int_equal(dst.fcr, FAKE_SERIAL_DEFAULT_FCR);
    mig_stream_free(r);
    mig_stream_free(w);
    /* the same through the release machinery, with the oracle */
    MigErr *err = NULL;
    if (migrate_device("fake-serial", "1.1", NULL, "2.0", &err, true) != 0)
        fail_msg("%s", err ? err->msg : "?");
    /* 2.0 -> 1.1 refuses, naming the field */
    assert_true(migrate_device("fake-serial", "2.0", NULL, "1.1", &err, true) < 0);
    assert_non_null(strstr(err->msg, "fake-serial"));
    mig_err_free(err);
}

/* ---- SPICE: what each release's server speaks, and the pair rules ---- */

/* The history only grows (a later release speaks at least what an earlier
 * one did), and the bump rule holds: a newer display blob comes with a
 * newer migration protocol, so that a target that ACKs (the source's
 * protocol at most its own) always loads every blob the source writes. */
static void test_releases_spice_history_and_bump_rule(void **state)
{
    (void)state;
    for (size_t i = 0; i < mig_release_count(); i++) {
        const MigSpiceRelease *a = &mig_release_at(i)->spice;
        assert_true(!a->mig_version || a->semi_seamless);     /* seamless needs semi-seamless */
        assert_true(!a->mig_version == !a->display_blob);     /* seamless writes blobs */
        assert_true(!a->cache_restore || a->display_blob >= 2); /* the restore list is version 2 */
        for (size_t k = 0; k < mig_release_count(); k++) {
            const MigSpiceRelease *b = &mig_release_at(k)->spice;
            if (i < k) {
                assert_true(a->semi_seamless <= b->semi_seamless);
                assert_true(a->mig_version <= b->mig_version);
            }
            if (a->mig_version && b->mig_version && a->mig_version <= b->mig_version)
                assert_true(a->display_blob <= b->display_blob);
            if (a->display_blob > b->display_blob && b->mig_version)
                assert_true(a->mig_version > b->mig_version); /* the target NACKs first */
        }
    }
    /* the history as documented: 1.0 switch-host only, 1.1 semi-seamless,
     * 2.0 seamless protocol 1 (the reference's blobs), 2.1-dev protocol 2 */
    assert_false(mig_release_find("1.0")->spice.semi_seamless);
    assert_true(mig_release_find("1.1")->spice.semi_seamless);
    assert_int_equal(mig_release_find("1.1")->spice.mig_version, 0);
    assert_int_equal(mig_release_find("2.0")->spice.mig_version, 1);
    assert_int_equal(mig_release_find("2.0")->spice.display_blob, 1);
    assert_false(mig_release_find("2.0")->spice.cache_restore);
    assert_int_equal(mig_release_find("2.1-dev")->spice.mig_version, 2);
    assert_int_equal(mig_release_find("2.1-dev")->spice.display_blob, 2);
    assert_true(mig_release_find("2.1-dev")->spice.cache_restore);
}

/* The SPICE devices' section history as documented (releases.h,
 * fake-vmc.h): fake-vmc v1 in 1.x; 2.0 adds subsection fake-vmc/pacing;
 * 2.1-dev v2 adds field read_errors.  `dump-vmstate --release R` shows it
 * and the pair rules name what breaks new -> old. */
static void test_releases_spice_vmc_history(void **state)
{
    (void)state;
    const VmsDescription *v[4];
    for (size_t i = 0; i < 4; i++) {
        assert_true(mig_release_has_device(rels[i], "fake-vmc"));
        v[i] = mig_release_device_vmsd(rels[i], "fake-vmc");
        assert_non_null(v[i]);
        json_t *d = mig_release_dump(rels[i]);
        json_t *e = json_object_get(d, "fake-vmc");
        assert_non_null(e);
        assert_int_equal(json_integer_value(json_object_get(e, "version_id")), v[i]->version_id);
        json_t *subs = json_object_get(json_object_get(e, "Description"), "Subsections");
        assert_int_equal(subs != NULL, i >= 2);
        json_decref(d);
    }
    assert_int_equal(v[0]->version_id, 1);
    assert_ptr_equal(v[0], v[1]);
    assert_false(has_sub(v[1], "fake-vmc/pacing"));
    assert_int_equal(v[2]->version_id, 1);
    assert_true(has_sub(v[2], "fake-vmc/pacing"));
    assert_int_equal(v[3]->version_id, 2);
    assert_int_equal(v[3]->minimum_version_id, 1);
    assert_true(has_sub(v[3], "fake-vmc/pacing"));
    assert_int_equal(nfields(v[3]), nfields(v[2]) + 1);
    assert_string_equal(v[3]->fields[nfields(v[3]) - 1].name, "read_errors");
    assert_int_equal(v[3]->fields[nfields(v[3]) - 1].version_id, 2);

    char *vmc[] = {"fake-vmc"};
    MigPairPrediction p;
    mig_pair_predict("2.1-dev", NULL, "2.0", vmc, 1, &p);
    assert_false(p.completes);
    assert_string_equal(p.device, "fake-vmc");
    assert_string_equal(p.field, "read_errors");
    mig_pair_predict("2.0", NULL, "1.1", vmc, 1, &p);
    assert_string_equal(p.device, "fake-vmc");
    assert_string_equal(p.field, "fake-vmc/pacing");
    assert_true(p.field_is_subsection);
    mig_pair_predict("2.1-dev", "mc-1.1", "1.1", vmc, 1, &p);
    assert_true(p.completes);
    for (size_t i = 0; i < 4; i++)
        for (size_t j = i; j < 4; j++) {
            mig_pair_predict(rels[i], NULL, rels[j], vmc, 1, &p);
            assert_true(p.completes); /* old -> new */
        }
}

static MigSpiceMig spice_kind(const char *src, const char *dst, bool seamless_on, bool semi, bool seam)
{
    MigSpicePrediction p;
    mig_spice_pair_predict(src, dst, seamless_on, semi, seam, &p);
    assert_true(p.reason[0]);
    return p.kind;
}

/* Each rule of mig_spice_pair_predict, for a client as spice-gtk 0.42 (both
 * capabilities) with seamless-migration on unless said otherwise. */
static void test_releases_spice_pair_rules(void **state)
{
    (void)state;
    /* the same release on both sides: what it speaks */
    assert_int_equal(spice_kind("1.0", "1.0", true, true, true), MIG_SPICE_MIG_SWITCH_HOST);
    assert_int_equal(spice_kind("1.1", "1.1", true, true, true), MIG_SPICE_MIG_SEMI_SEAMLESS);
    assert_int_equal(spice_kind("2.0", "2.0", true, true, true), MIG_SPICE_MIG_SEAMLESS);
    assert_int_equal(spice_kind("2.1-dev", "2.1-dev", true, true, true), MIG_SPICE_MIG_SEAMLESS);
    /* old -> new: the source decides what it starts */
    assert_int_equal(spice_kind("1.0", "2.1-dev", true, true, true), MIG_SPICE_MIG_SWITCH_HOST);
    assert_int_equal(spice_kind("1.1", "2.1-dev", true, true, true), MIG_SPICE_MIG_SEMI_SEAMLESS);
    MigSpicePrediction p;
    mig_spice_pair_predict("2.0", "2.1-dev", true, true, true, &p); /* protocol 1 <= 2: ACK */
    assert_int_equal(p.kind, MIG_SPICE_MIG_SEAMLESS);
    assert_non_null(strstr(p.reason, "ACK"));
    assert_null(p.client_error);
    /* new -> old: the target decides what it takes */
    mig_spice_pair_predict("2.1-dev", "2.0", true, true, true, &p); /* protocol 2 > 1: NACK */
    assert_int_equal(p.kind, MIG_SPICE_MIG_SEMI_SEAMLESS);
    assert_non_null(strstr(p.reason, "NACK"));
    assert_int_equal(spice_kind("2.0", "1.1", true, true, true), MIG_SPICE_MIG_SEMI_SEAMLESS); /* no SEAMLESS */
    mig_spice_pair_predict("1.1", "1.0", true, true, true, &p); /* refuses the migrating link */
    assert_int_equal(p.kind, MIG_SPICE_MIG_SWITCH_HOST);
    assert_string_equal(p.client_error, "BAD_CONNECTION_ID");
    /* the client and the option */
    assert_int_equal(spice_kind("2.1-dev", "2.1-dev", true, false, true), MIG_SPICE_MIG_SWITCH_HOST);
    assert_int_equal(spice_kind("2.1-dev", "2.1-dev", true, true, false), MIG_SPICE_MIG_SEMI_SEAMLESS);
    assert_int_equal(spice_kind("2.1-dev", "2.1-dev", false, true, true), MIG_SPICE_MIG_SEMI_SEAMLESS);
    /* every ordered pair: seamless exactly when both speak it and the
     * source's protocol is at most the target's; switch-host exactly when
     * a side lacks SEMI_SEAMLESS */
    for (size_t i = 0; i < mig_release_count(); i++)
        for (size_t k = 0; k < mig_release_count(); k++) {
            const MigRelease *a = mig_release_at(i), *b = mig_release_at(k);
            MigSpiceMig want = !a->spice.semi_seamless || !b->spice.semi_seamless ? MIG_SPICE_MIG_SWITCH_HOST
                               : a->spice.mig_version && b->spice.mig_version &&
                                       a->spice.mig_version <= b->spice.mig_version
                                   ? MIG_SPICE_MIG_SEAMLESS
                                   : MIG_SPICE_MIG_SEMI_SEAMLESS;
            assert_int_equal(spice_kind(a->name, b->name, true, true, true), want);
        }
}

/* What a release's server is configured with follows the table (the
 * simulator and `migcert vm --release R` build their servers with it). */
static void test_releases_spice_server_config(void **state)
{
    (void)state;
    SpiceServerConfig sc = {.pixmap_cache_migration = SPICE_PIXMAP_CACHE_MIG_RESTORE};
    assert_int_equal(mig_release_spice_config("2.0", &sc), 0);
    assert_false(sc.no_semi_seamless);
    assert_false(sc.no_seamless);
    assert_int_equal(sc.migration_version, 1);
    assert_int_equal(sc.display_blob_version, 1);
    assert_int_equal(sc.pixmap_cache_migration, SPICE_PIXMAP_CACHE_MIG_RESET); /* 2.0 has no restore */
    sc.pixmap_cache_migration = SPICE_PIXMAP_CACHE_MIG_RESTORE;
    assert_int_equal(mig_release_spice_config("2.1-dev", &sc), 0);
    assert_int_equal(sc.migration_version, 2);
    assert_int_equal(sc.pixmap_cache_migration, SPICE_PIXMAP_CACHE_MIG_RESTORE);
    assert_int_equal(mig_release_spice_config("1.1", &sc), 0);
    assert_true(sc.no_seamless);
    assert_false(sc.no_semi_seamless);
    assert_int_equal(mig_release_spice_config("1.0", &sc), 0);
    assert_true(sc.no_semi_seamless);
    assert_int_equal(mig_release_spice_config("0.9", &sc), -EINVAL);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_releases_history_shape),
        cmocka_unit_test(test_releases_check_compat_every_ordered_pair),
        cmocka_unit_test(test_releases_device_every_ordered_pair),
        cmocka_unit_test(test_releases_old_machine_type_emits_what_old_loads),
        cmocka_unit_test(test_releases_documented_transforms),
        cmocka_unit_test(test_releases_dump_devices_for_preflight),
        cmocka_unit_test(test_releases_serial_gains_fcr_in_2_0),
        cmocka_unit_test(test_releases_spice_history_and_bump_rule),
        cmocka_unit_test(test_releases_spice_pair_rules),
        cmocka_unit_test(test_releases_spice_vmc_history),
        cmocka_unit_test(test_releases_spice_server_config),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
