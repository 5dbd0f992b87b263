/*
 * test-device.c - impl/device: the transition algorithm against the golden
 * tables of protocols/vfio-migration.md (1.4 and 1.6, every cur x target x
 * feature set), multi-arc requests on a real device (fake-gpu), sessions and
 * round trips byte for byte, resume validation over every truncation and
 * every flipped byte, abort and reset, the v1 adapter, and the plugin loader.
 */
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "device/device.h"
#include "devices/fake-gpu.h"

static char vendor_dir[PATH_MAX];

/* ---- golden tables (vfio-migration.md), written as in the document ---- */

static const char *const abbrev[MIG_DEV_STATE__COUNT] = {
    [MIG_DEV_ERROR] = "ERROR", [MIG_DEV_STOP] = "STOP",      [MIG_DEV_RUNNING] = "RUNNING",
    [MIG_DEV_STOP_COPY] = "SC", [MIG_DEV_RESUMING] = "RES",  [MIG_DEV_RUNNING_P2P] = "RP",
    [MIG_DEV_PRE_COPY] = "PC",  [MIG_DEV_PRE_COPY_P2P] = "PCP",
};

/* 1.4: next state with every feature; "E" = refused. Rows/cols in the
 * document's order STOP RUNNING SC RES RP PC PCP ERROR. */
static const MigDevState doc_order[8] = {MIG_DEV_STOP,        MIG_DEV_RUNNING,  MIG_DEV_STOP_COPY,
                                         MIG_DEV_RESUMING,    MIG_DEV_RUNNING_P2P,
                                         MIG_DEV_PRE_COPY,    MIG_DEV_PRE_COPY_P2P, MIG_DEV_ERROR};
static const char *const next_doc[8][8] = {
    {"STOP", "RP", "SC", "RES", "RP", "RP", "RP", "E"},
    {"RP", "RUNNING", "RP", "RP", "RP", "PC", "RP", "E"},
    {"STOP", "STOP", "SC", "STOP", "STOP", "E", "E", "E"},
    {"STOP", "STOP", "STOP", "RES", "STOP", "STOP", "STOP", "E"},
    {"STOP", "RUNNING", "STOP", "STOP", "RP", "RUNNING", "PCP", "E"},
    {"RUNNING", "RUNNING", "PCP", "RUNNING", "RUNNING", "PC", "PCP", "E"},
    {"RP", "RP", "SC", "RP", "RP", "PC", "PCP", "E"},
    {"E", "E", "E", "E", "E", "E", "E", "E"},
};

/* 1.6: resulting paths.  "-" = no-op, "EINVAL" = refused; states joined by
 * '>'.  Pairs not listed (unsupported states, ERROR) must be EINVAL. */
typedef struct Golden {
    uint32_t features;
    int n;
    MigDevState order[7];
    const char *cell[7][7];
} Golden;

static const Golden golden[] = {
    {MIG_DEV_F_STOP_COPY,
     4,
     {MIG_DEV_STOP, MIG_DEV_RUNNING, MIG_DEV_STOP_COPY, MIG_DEV_RESUMING},
     {
         {"-", "RUNNING", "SC", "RES"},
         {"STOP", "-", "STOP>SC", "STOP>RES"},
         {"STOP", "STOP>RUNNING", "-", "STOP>RES"},
         {"STOP", "STOP>RUNNING", "STOP>SC", "-"},
     }},
    {MIG_DEV_F_STOP_COPY | MIG_DEV_F_P2P,
     5,
     {MIG_DEV_STOP, MIG_DEV_RUNNING, MIG_DEV_STOP_COPY, MIG_DEV_RESUMING, MIG_DEV_RUNNING_P2P},
     {
         {"-", "RP>RUNNING", "SC", "RES", "RP"},
         {"RP>STOP", "-", "RP>STOP>SC", "RP>STOP>RES", "RP"},
         {"STOP", "STOP>RP>RUNNING", "-", "STOP>RES", "STOP>RP"},
         {"STOP", "STOP>RP>RUNNING", "STOP>SC", "-", "STOP>RP"},
         {"STOP", "RUNNING", "STOP>SC", "STOP>RES", "-"},
     }},
    {MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY,
     5,
     {MIG_DEV_STOP, MIG_DEV_RUNNING, MIG_DEV_STOP_COPY, MIG_DEV_RESUMING, MIG_DEV_PRE_COPY},
     {
         {"-", "RUNNING", "SC", "RES", "RUNNING>PC"},
         {"STOP", "-", "STOP>SC", "STOP>RES", "PC"},
         {"STOP", "STOP>RUNNING", "-", "STOP>RES", "EINVAL"},
         {"STOP", "STOP>RUNNING", "STOP>SC", "-", "STOP>RUNNING>PC"},
         {"RUNNING>STOP", "RUNNING", "SC", "RUNNING>STOP>RES", "-"},
     }},
    {MIG_DEV_F_ALL,
     7,
     {MIG_DEV_STOP, MIG_DEV_RUNNING, MIG_DEV_STOP_COPY, MIG_DEV_RESUMING, MIG_DEV_RUNNING_P2P,
      MIG_DEV_PRE_COPY, MIG_DEV_PRE_COPY_P2P},
     {
         {"-", "RP>RUNNING", "SC", "RES", "RP", "RP>RUNNING>PC", "RP>PCP"},
         {"RP>STOP", "-", "RP>STOP>SC", "RP>STOP>RES", "RP", "PC", "RP>PCP"},
         {"STOP", "STOP>RP>RUNNING", "-", "STOP>RES", "STOP>RP", "EINVAL", "EINVAL"},
         {"STOP", "STOP>RP>RUNNING", "STOP>SC", "-", "STOP>RP", "STOP>RP>RUNNING>PC",
          "STOP>RP>PCP"},
         {"STOP", "RUNNING", "STOP>SC", "STOP>RES", "-", "RUNNING>PC", "PCP"},
         {"RUNNING>RP>STOP", "RUNNING", "PCP>SC", "RUNNING>RP>STOP>RES", "RUNNING>RP", "-",
          "PCP"},
         {"RP>STOP", "RP>RUNNING", "SC", "RP>STOP>RES", "RP", "PC", "-"},
     }},
};

/* The expected cell for (cur, target): "EINVAL" when not in the table. */
static const char *golden_cell(const Golden *g, MigDevState cur, MigDevState tgt)
{
    int ci = -1, ti = -1;
    for (int i = 0; i < g->n; i++) {
        if (g->order[i] == cur)
            ci = i;
        if (g->order[i] == tgt)
            ti = i;
    }
    return ci < 0 || ti < 0 ? "EINVAL" : g->cell[ci][ti];
}

static void path_text(const MigDevState *p, size_t n, char *out, size_t cap)
{
    out[0] = 0;
    if (n == 0)
        snprintf(out, cap, "-");
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", i ? ">" : "", abbrev[p[i]]);
    }
}

static void test_device_next_step_table_all_features(void **state)
{
    (void)state;
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 8; c++) {
            MigDevState next;
            int rc = mig_dev_next_state(doc_order[r], doc_order[c], MIG_DEV_F_ALL, &next);
            const char *got = rc < 0 ? "E" : abbrev[next];
            if (strcmp(got, next_doc[r][c]) != 0)
                fail_msg("next(%s, %s) = %s, table says %s", abbrev[doc_order[r]],
                         abbrev[doc_order[c]], got, next_doc[r][c]);
        }
}

static void test_device_paths_match_golden_for_every_feature_set(void **state)
{
    (void)state;
    int checked = 0;
    for (size_t g = 0; g < MIG_ARRAY_SIZE(golden); g++)
        for (int cur = 0; cur < MIG_DEV_STATE__COUNT; cur++)
            for (int tgt = 0; tgt < MIG_DEV_STATE__COUNT; tgt++) {
                MigDevState path[MIG_DEV_STATE__COUNT];
                size_t n;
                char got[128];
                int rc = mig_dev_path(cur, tgt, golden[g].features, path, &n);
                if (rc < 0)
                    snprintf(got, sizeof(got), "EINVAL");
                else
                    path_text(path, n, got, sizeof(got));
                const char *want = golden_cell(&golden[g], cur, tgt);
                if (strcmp(got, want) != 0)
                    fail_msg("%s: %s -> %s: path %s, golden %s",
                             mig_dev_features_name(golden[g].features), abbrev[cur], abbrev[tgt],
                             got, want);
                checked++;
            }
    assert_int_equal(checked, 4 * 8 * 8);
}

static void test_device_paths_are_direct_arcs_and_skip_saving_states(void **state)
{
    (void)state;
    for (size_t g = 0; g < MIG_ARRAY_SIZE(golden); g++) {
        uint32_t f = golden[g].features;
        for (int cur = 0; cur < MIG_DEV_STATE__COUNT; cur++)
            for (int tgt = 0; tgt < MIG_DEV_STATE__COUNT; tgt++) {
                MigDevState path[MIG_DEV_STATE__COUNT];
                size_t n;
                if (mig_dev_path(cur, tgt, f, path, &n) < 0)
                    continue;
                MigDevState at = cur;
                for (size_t i = 0; i < n; i++) {
                    assert_true(mig_dev_arc_allowed(at, path[i], f));
                    /* only a path inside the saving group may pass
                     * through a saving state (PC -> PCP -> SC) */
                    if (i + 1 < n && mig_dev_state_saving(path[i]))
                        assert_true(mig_dev_state_saving(cur) && mig_dev_state_saving(tgt));
                    at = path[i];
                }
            }
        /* ERROR is never a source or target of an arc */
        for (int s = 0; s < MIG_DEV_STATE__COUNT; s++) {
            assert_false(mig_dev_arc_allowed(MIG_DEV_ERROR, s, f));
            assert_false(mig_dev_arc_allowed(s, MIG_DEV_ERROR, f));
        }
    }
    MigDevState next;
    assert_int_equal(mig_dev_next_state(MIG_DEV_RUNNING, 8, MIG_DEV_F_ALL, &next), -EINVAL);
    assert_int_equal(mig_dev_next_state(MIG_DEV_STOP_COPY, MIG_DEV_PRE_COPY, MIG_DEV_F_ALL, &next),
                     -EINVAL);
}

/* ---- devices ---- */

static MigDevice *dev_new(const MigcertDevicePlugin *p, uint32_t features, uint64_t mem,
                          uint64_t seed)
{
    MigcertDeviceConfig cfg = {sizeof(cfg), features, seed, mem};
    MigErr *err = NULL;
    MigDevBackend *be = mig_dev_backend_plugin_new(p, &cfg, NULL, &err);
    if (!be)
        fail_msg("backend: %s", err ? err->msg : "?");
    MigDevice *d = mig_device_new(p->name, be, &err);
    assert_non_null(d);
    return d;
}

static void must(int rc, MigErr *err, const char *what)
{
    if (rc < 0)
        fail_msg("%s: %s (%s)", what, err ? err->msg : "no message", mig_errno_name(rc));
    mig_err_free(err);
}

static void set(MigDevice *d, MigDevState s)
{
    MigErr *err = NULL;
    must(mig_device_set_state(d, s, &err), err, mig_dev_state_name(s));
    assert_int_equal(mig_device_state(d), s);
}

typedef struct Buf {
    uint8_t *p;
    size_t len, cap;
} Buf;

static void buf_add(Buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* Read until "nothing now" (PRE_COPY) or the end (STOP_COPY), with varying
 * buffer sizes.  Returns the last read's result (-EAGAIN or 0). */
static ssize_t drain(MigDevice *d, Buf *out, MigPrng *prng)
{
    uint8_t tmp[9000];
    for (;;) {
        size_t len = 1 + (size_t)mig_prng_below(prng, sizeof(tmp));
        MigErr *err = NULL;
        ssize_t n = mig_device_read(d, tmp, len, &err);
        if (n == -EAGAIN || n == 0) {
            mig_err_free(err);
            return n;
        }
        if (n < 0)
            fail_msg("read: %s", err ? err->msg : "?");
        assert_true((size_t)n <= len);
        buf_add(out, tmp, (size_t)n);
    }
}

/* A whole source side: pre-copy (when offered) with the guest dirtying in
 * between, then stop-and-copy to the end.  Leaves the device in STOP. */
static Buf save_all(MigDevice *d, MigPrng *prng, uint32_t dirty_ops)
{
    Buf out = {0};
    MigDevBackend *be = mig_device_backend(d);
    if (mig_device_features(d) & MIG_DEV_F_PRE_COPY) {
        set(d, MIG_DEV_PRE_COPY);
        for (int pass = 0; pass < 3; pass++) {
            assert_int_equal(drain(d, &out, prng), -EAGAIN);
            assert_int_equal(be->ops->guest_run(be, dirty_ops, NULL), 0);
        }
    } else {
        assert_int_equal(be->ops->guest_run(be, dirty_ops, NULL), 0);
    }
    set(d, MIG_DEV_STOP_COPY);
    assert_int_equal(drain(d, &out, prng), 0);
    /* the end stays the end */
    uint8_t b[16];
    assert_int_equal(mig_device_read(d, b, sizeof(b), NULL), 0);
    set(d, MIG_DEV_STOP);
    return out;
}

static int load_all(MigDevice *d, const uint8_t *p, size_t len, MigPrng *prng, MigErr **errp)
{
    MigErr *err = NULL;
    must(mig_device_set_state(d, MIG_DEV_RESUMING, &err), err, "RESUMING");
    size_t off = 0;
    while (off < len) {
        size_t k = prng ? 1 + (size_t)mig_prng_below(prng, 5000) : len - off;
        k = MIG_MIN(k, len - off);
        int r = mig_device_write(d, p + off, k, errp);
        if (r < 0)
            return r;
        off += k;
    }
    return mig_device_set_state(d, MIG_DEV_STOP, errp);
}

static void assert_same_device(MigDevice *a, MigDevice *b)
{
    size_t la, lb;
    const uint8_t *ma = fake_gpu_memory(mig_device_backend(a)->instance, &la);
    const uint8_t *mb = fake_gpu_memory(mig_device_backend(b)->instance, &lb);
    assert_int_equal(la, lb);
    for (size_t i = 0; i < la; i += FAKE_GPU_PAGE)
        if (memcmp(ma + i, mb + i, FAKE_GPU_PAGE) != 0)
            fail_msg("device memory differs in page %zu", i / FAKE_GPU_PAGE);
    assert_memory_equal(fake_gpu_regs(mig_device_backend(a)->instance),
                        fake_gpu_regs(mig_device_backend(b)->instance), 4 * FAKE_GPU_NREGS);
}

/* Walk every (cur, target) with the real device for every feature set:
 * the arcs the device executed are the golden path, and the device itself
 * (not only our cached copy) ends in the target. */
static void test_device_set_state_executes_golden_arcs_on_device(void **state)
{
    (void)state;
    MigPrng prng;
    mig_prng_seed(&prng, 4);
    for (size_t g = 0; g < MIG_ARRAY_SIZE(golden); g++) {
        uint32_t f = golden[g].features;
        MigDevice *src = dev_new(fake_gpu_plugin(), f, 3 * FAKE_GPU_PAGE, 1);
        Buf stream = save_all(src, &prng, 5);
        for (int cur = 0; cur < MIG_DEV_STATE__COUNT; cur++) {
            if (!mig_dev_state_supported(cur, f))
                continue;
            for (int tgt = 0; tgt < MIG_DEV_STATE__COUNT; tgt++) {
                MigDevice *d = dev_new(fake_gpu_plugin(), f, 3 * FAKE_GPU_PAGE, 2);
                if (cur == MIG_DEV_RESUMING) {
                    set(d, MIG_DEV_RESUMING);
                    assert_int_equal(mig_device_write(d, stream.p, stream.len, NULL), 0);
                } else {
                    set(d, cur);
                }
                mig_device_arc_log_clear(d);
                MigErr *err = NULL;
                int rc = mig_device_set_state(d, tgt, &err);
                mig_err_free(err);
                MigDevState to[16];
                size_t n = mig_device_arc_log(d, NULL, to, 16);
                char got[128];
                if (rc < 0) {
                    snprintf(got, sizeof(got), "EINVAL");
                    assert_int_equal(n, 0);
                    assert_int_equal(mig_device_state(d), cur);
                } else {
                    path_text(to, n, got, sizeof(got));
                }
                const char *want = golden_cell(&golden[g], cur, tgt);
                if (strcmp(got, want) != 0)
                    fail_msg("%s: %s -> %s executed %s, golden %s", mig_dev_features_name(f),
                             abbrev[cur], abbrev[tgt], got, want);
                MigDevBackend *be = mig_device_backend(d);
                MigDevState real;
                assert_int_equal(be->ops->get_state(be, &real, NULL), 0);
                assert_int_equal(real, mig_device_state(d));
                mig_device_free(d);
            }
        }
        free(stream.p);
        mig_device_free(src);
    }
}

static void test_device_round_trip_v2_byte_for_byte(void **state)
{
    (void)state;
    for (size_t g = 0; g < MIG_ARRAY_SIZE(golden); g++) {
        uint32_t f = golden[g].features;
        MigPrng prng;
        mig_prng_seed(&prng, 10 + g);
        MigDevice *src = dev_new(fake_gpu_plugin(), f, 64 * FAKE_GPU_PAGE, 7);
        MigDevice *dst = dev_new(fake_gpu_plugin(), f, 64 * FAKE_GPU_PAGE, 8);
        Buf s = save_all(src, &prng, 200);
        MigErr *err = NULL;
        must(load_all(dst, s.p, s.len, &prng, &err), err, "load");
        set(dst, MIG_DEV_RUNNING);
        assert_same_device(src, dst);
        free(s.p);
        mig_device_free(src);
        mig_device_free(dst);
    }
}

static void test_device_precopy_info_and_read_semantics(void **state)
{
    (void)state;
    MigPrng prng;
    mig_prng_seed(&prng, 3);
    MigDevice *d = dev_new(fake_gpu_plugin(), MIG_DEV_F_ALL, 16 * FAKE_GPU_PAGE, 3);
    MigDevBackend *be = mig_device_backend(d);
    uint64_t ini, dirty;
    MigErr *err = NULL;
    /* outside PRE_COPY*: EINVAL */
    assert_int_equal(mig_device_precopy_info(d, &ini, &dirty, &err), -EINVAL);
    mig_err_free(err);
    set(d, MIG_DEV_PRE_COPY);
    assert_int_equal(mig_device_precopy_info(d, &ini, &dirty, NULL), 0);
    assert_true(ini > 16 * FAKE_GPU_PAGE);
    assert_int_equal(dirty, 0);
    uint64_t last = ini;
    uint8_t buf[1000];
    ssize_t n;
    while ((n = mig_device_read(d, buf, sizeof(buf), NULL)) > 0) {
        assert_int_equal(mig_device_precopy_info(d, &ini, &dirty, NULL), 0);
        assert_true(ini <= last);
        last = ini;
    }
    /* nothing now: ENOMSG from the device, -EAGAIN here, counters at 0 */
    assert_int_equal(n, -EAGAIN);
    assert_int_equal(mig_device_precopy_info(d, &ini, &dirty, NULL), 0);
    assert_int_equal(ini + dirty, 0);
    assert_int_equal(be->ops->read(be, buf, sizeof(buf), NULL), -ENOMSG);
    /* the guest dirties: dirty bytes appear, initial stays 0 */
    assert_int_equal(be->ops->guest_run(be, 3, NULL), 0);
    assert_int_equal(mig_device_precopy_info(d, &ini, &dirty, NULL), 0);
    assert_int_equal(ini, 0);
    assert_true(dirty > 0);
    /* PRE_COPY -> PRE_COPY_P2P keeps the session */
    set(d, MIG_DEV_PRE_COPY_P2P);
    assert_true(mig_device_read(d, buf, sizeof(buf), NULL) > 0);
    set(d, MIG_DEV_STOP_COPY);
    while ((n = mig_device_read(d, buf, sizeof(buf), NULL)) > 0)
        ;
    assert_int_equal(n, 0);
    assert_int_equal(be->ops->read(be, buf, sizeof(buf), NULL), 0);
    assert_int_equal(mig_device_precopy_info(d, &ini, &dirty, NULL), -EINVAL);
    set(d, MIG_DEV_STOP);
    err = NULL;
    assert_int_equal(mig_device_read(d, buf, sizeof(buf), &err), -EINVAL);
    assert_non_null(strstr(err->msg, "outside a saving session"));
    mig_err_free(err);
    mig_device_free(d);
}

/* Small device: every truncation and every flipped byte of its stream is
 * refused at RESUMING -> STOP, and the device stays RESUMING. */
static void test_device_resume_rejects_every_truncation_and_flip(void **state)
{
    (void)state;
    MigPrng prng;
    mig_prng_seed(&prng, 5);
    MigDevice *src = dev_new(fake_gpu_plugin(), MIG_DEV_F_STOP_COPY, 2 * FAKE_GPU_PAGE, 1);
    Buf s = save_all(src, &prng, 3);
    MigDevice *d = dev_new(fake_gpu_plugin(), MIG_DEV_F_STOP_COPY, 2 * FAKE_GPU_PAGE, 2);
    for (size_t cut = 0; cut < s.len; cut++) {
        MigErr *err = NULL;
        int rc = load_all(d, s.p, cut, NULL, &err);
        if (rc >= 0)
            fail_msg("truncation at %zu of %zu accepted", cut, s.len);
        mig_err_free(err);
        assert_int_equal(mig_device_state(d), MIG_DEV_RESUMING);
        err = NULL;
        must(mig_device_reset(d, &err), err, "reset");
    }
    for (size_t at = 0; at < s.len; at++) {
        s.p[at] ^= 0x20;
        int rc = load_all(d, s.p, s.len, NULL, NULL);
        s.p[at] ^= 0x20;
        if (rc >= 0)
            fail_msg("flipped byte %zu of %zu accepted", at, s.len);
        assert_true(mig_device_state(d) == MIG_DEV_RESUMING ||
                    mig_device_state(d) == MIG_DEV_ERROR);
        assert_int_equal(mig_device_reset(d, NULL), 0);
    }
    /* two streams back to back */
    Buf two = {0};
    buf_add(&two, s.p, s.len);
    buf_add(&two, s.p, s.len);
    assert_true(load_all(d, two.p, two.len, NULL, NULL) < 0);
    assert_int_equal(mig_device_reset(d, NULL), 0);
    /* and the intact one loads */
    MigErr *err = NULL;
    must(load_all(d, s.p, s.len, NULL, &err), err, "intact stream");
    assert_same_device(src, d);
    free(two.p);
    free(s.p);
    mig_device_free(src);
    mig_device_free(d);
}

static void test_device_abort_returns_to_running_with_state_intact(void **state)
{
    (void)state;
    MigPrng prng;
    mig_prng_seed(&prng, 6);
    const MigDevState from[] = {MIG_DEV_PRE_COPY, MIG_DEV_PRE_COPY_P2P, MIG_DEV_STOP_COPY,
                                MIG_DEV_STOP, MIG_DEV_RUNNING_P2P};
    for (size_t i = 0; i < MIG_ARRAY_SIZE(from); i++) {
        MigDevice *d = dev_new(fake_gpu_plugin(), MIG_DEV_F_ALL, 32 * FAKE_GPU_PAGE, 9);
        MigDevBackend *be = mig_device_backend(d);
        assert_int_equal(be->ops->guest_run(be, 50, NULL), 0);
        if (from[i] != MIG_DEV_STOP && from[i] != MIG_DEV_RUNNING_P2P) {
            set(d, MIG_DEV_PRE_COPY);
            Buf junk = {0};
            uint8_t b[3000];
            mig_device_read(d, b, sizeof(b), NULL);
            assert_int_equal(be->ops->guest_run(be, 50, NULL), 0);
            free(junk.p);
        }
        set(d, from[i]);
        uint64_t before, after;
        assert_int_equal(be->ops->digest(be, &before, NULL), 0);
        MigErr *err = NULL;
        must(mig_device_abort(d, &err), err, "abort");
        assert_int_equal(mig_device_state(d), MIG_DEV_RUNNING);
        assert_int_equal(be->ops->digest(be, &after, NULL), 0);
        assert_int_equal(before, after);
        /* nothing lost: a new session carries everything */
        MigDevice *dst = dev_new(fake_gpu_plugin(), MIG_DEV_F_ALL, 32 * FAKE_GPU_PAGE, 1);
        Buf s = save_all(d, &prng, 20);
        must(load_all(dst, s.p, s.len, &prng, &err), err, "load after abort");
        assert_same_device(d, dst);
        free(s.p);
        mig_device_free(dst);
        mig_device_free(d);
    }
}

static void test_device_error_is_left_only_by_reset(void **state)
{
    (void)state;
    MigDevice *d = dev_new(fake_gpu_plugin(), MIG_DEV_F_ALL, 4 * FAKE_GPU_PAGE, 1);
    MigDevBackend *be = mig_device_backend(d);
    set(d, MIG_DEV_PRE_COPY);
    assert_int_equal(be->ops->force_error(be, NULL), 0);
    /* an arc asked of a device that failed underneath: the error comes back
     * and the device is believed to be in ERROR */
    MigErr *err = NULL;
    assert_true(mig_device_set_state(d, MIG_DEV_RUNNING, &err) < 0);
    assert_non_null(strstr(err->msg, "arc PRE_COPY -> RUNNING"));
    mig_err_free(err);
    assert_int_equal(mig_device_state(d), MIG_DEV_ERROR);
    for (int s = 0; s < MIG_DEV_STATE__COUNT; s++) {
        assert_int_equal(mig_device_set_state(d, s, NULL), -EINVAL);
        assert_int_equal(mig_device_state(d), MIG_DEV_ERROR);
    }
    assert_int_equal(be->ops->arc(be, MIG_DEV_STOP, NULL), -EINVAL);
    err = NULL;
    must(mig_device_reset(d, &err), err, "reset");
    assert_int_equal(mig_device_state(d), MIG_DEV_RUNNING);
    set(d, MIG_DEV_STOP);
    mig_device_free(d);
}

static void test_device_refuses_invalid_and_unsupported_targets(void **state)
{
    (void)state;
    MigDevice *d = dev_new(fake_gpu_plugin(), MIG_DEV_F_STOP_COPY, FAKE_GPU_PAGE, 1);
    const unsigned bad[] = {8, 0xabcd, 0xffffffffu, MIG_DEV_ERROR, MIG_DEV_RUNNING_P2P,
                            MIG_DEV_PRE_COPY, MIG_DEV_PRE_COPY_P2P};
    for (size_t i = 0; i < MIG_ARRAY_SIZE(bad); i++) {
        MigErr *err = NULL;
        assert_int_equal(mig_device_set_state(d, (MigDevState)bad[i], &err), -EINVAL);
        assert_non_null(strstr(err->msg, "not supported"));
        mig_err_free(err);
        assert_int_equal(mig_device_state(d), MIG_DEV_RUNNING);
        /* the device itself refuses too */
        MigDevBackend *be = mig_device_backend(d);
        assert_int_equal(be->ops->arc(be, (MigDevState)bad[i], NULL), -EINVAL);
    }
    /* the current state: no arc */
    mig_device_arc_log_clear(d);
    assert_int_equal(mig_device_set_state(d, MIG_DEV_RUNNING, NULL), 0);
    MigDevState to[4];
    assert_int_equal(mig_device_arc_log(d, NULL, to, 4), 0);
    mig_device_free(d);
}

/* ---- v1 adapter ---- */

static void test_device_v1_adapter_maps_states_to_bits(void **state)
{
    (void)state;
    MigDevice *d = dev_new(fake_gpu_plugin_v1(), MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY,
                           4 * FAKE_GPU_PAGE, 1);
    MigcertDevice *raw = mig_device_backend(d)->instance;
    const MigcertDevicePlugin *p = fake_gpu_plugin_v1();
    assert_int_equal(p->get_state(raw), MIGCERT_V1_RUNNING);
    set(d, MIG_DEV_PRE_COPY); /* logging on: the session starts */
    assert_int_equal(p->get_state(raw), MIGCERT_V1_RUNNING | MIGCERT_V1_SAVING);
    set(d, MIG_DEV_STOP_COPY);
    assert_int_equal(p->get_state(raw), MIGCERT_V1_SAVING);
    set(d, MIG_DEV_STOP);
    assert_int_equal(p->get_state(raw), 0);
    set(d, MIG_DEV_RESUMING);
    assert_int_equal(p->get_state(raw), MIGCERT_V1_RESUMING);
    /* the invalid combinations are refused by the device and change nothing */
    assert_int_equal(p->v1_set_state(raw, 5), -EINVAL);
    assert_int_equal(p->v1_set_state(raw, 7), -EINVAL);
    assert_int_equal(p->get_state(raw), MIGCERT_V1_RESUMING);
    /* P2P is not offered by a v1 device */
    MigcertDeviceConfig cfg = {sizeof(cfg), MIG_DEV_F_ALL, 1, 0};
    MigErr *err = NULL;
    assert_null(mig_dev_backend_plugin_new(p, &cfg, "old.so", &err));
    assert_non_null(strstr(err->msg, "v1 device"));
    mig_err_free(err);
    mig_device_free(d);
}

static void test_device_v1_adapter_round_trip_and_truncation(void **state)
{
    (void)state;
    MigPrng prng;
    mig_prng_seed(&prng, 11);
    uint32_t f = MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY;
    MigDevice *src = dev_new(fake_gpu_plugin_v1(), f, 40 * FAKE_GPU_PAGE, 5);
    MigDevice *dst = dev_new(fake_gpu_plugin_v1(), f, 40 * FAKE_GPU_PAGE, 6);
    MigDevBackend *be = mig_device_backend(src);
    /* pending_bytes is the data-available counter: initial data first */
    set(src, MIG_DEV_PRE_COPY);
    uint64_t ini, dirty;
    assert_int_equal(mig_device_precopy_info(src, &ini, &dirty, NULL), 0);
    assert_true(ini > 0);
    assert_int_equal(dirty, 0);
    set(src, MIG_DEV_RUNNING); /* toggling logging ends the session ... */
    assert_int_equal(be->ops->guest_run(be, 10, NULL), 0);
    Buf s = save_all(src, &prng, 100); /* ... and a new one starts afresh */
    MigErr *err = NULL;
    must(load_all(dst, s.p, s.len, &prng, &err), err, "v1 load");
    set(dst, MIG_DEV_RUNNING);
    assert_same_device(src, dst);
    /* cut inside a transaction frame, and at a frame boundary (missing END) */
    MigDevice *d2 = dev_new(fake_gpu_plugin_v1(), f, 40 * FAKE_GPU_PAGE, 6);
    err = NULL;
    assert_true(load_all(d2, s.p, s.len - 3, NULL, &err) < 0);
    assert_non_null(strstr(err->msg, "inside a transaction"));
    mig_err_free(err);
    assert_int_equal(mig_device_state(d2), MIG_DEV_RESUMING);
    free(s.p);
    mig_device_free(d2);
    mig_device_free(src);
    mig_device_free(dst);
}

/* ---- loader ---- */

static const MigcertDevicePlugin *load(const char *stem, void **h, MigErr **errp)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s.so", vendor_dir, stem);
    return mig_dev_plugin_load(path, h, errp);
}

static void test_device_loader_loads_good_plugin(void **state)
{
    (void)state;
    void *h;
    MigErr *err = NULL;
    const MigcertDevicePlugin *p = load("good", &h, &err);
    if (!p)
        fail_msg("%s", err->msg);
    assert_string_equal(p->name, "good");
    assert_int_equal(p->abi_version, MIGCERT_DEVICE_ABI_VERSION);
    MigPrng prng;
    mig_prng_seed(&prng, 1);
    MigDevice *a = dev_new(p, MIG_DEV_F_ALL, 8 * FAKE_GPU_PAGE, 1);
    MigDevice *b = dev_new(p, MIG_DEV_F_ALL, 8 * FAKE_GPU_PAGE, 2);
    Buf s = save_all(a, &prng, 30);
    must(load_all(b, s.p, s.len, &prng, &err), err, "load");
    uint64_t da, db;
    assert_int_equal(mig_device_backend(a)->ops->digest(mig_device_backend(a), &da, NULL), 0);
    assert_int_equal(mig_device_backend(b)->ops->digest(mig_device_backend(b), &db, NULL), 0);
    assert_int_equal(da, db);
    free(s.p);
    mig_device_free(a);
    mig_device_free(b);
    mig_dev_plugin_close(h);
}

static void test_device_loader_refuses_unknown_abi_version(void **state)
{
    (void)state;
    void *h = (void *)1;
    MigErr *err = NULL;
    assert_null(load("bad-abi", &h, &err));
    assert_null(h);
    assert_int_equal(err->code, -ENOTSUP);
    assert_string_equal(err->msg, "plugin bad-abi.so: ABI version 99 is not supported (this "
                                  "migcert speaks ABI version 1)");
    mig_err_free(err);
}

static void test_device_loader_refuses_missing_symbol_and_file(void **state)
{
    (void)state;
    void *h;
    MigErr *err = NULL;
    assert_null(load("no-symbol", &h, &err));
    assert_string_equal(err->msg, "plugin no-symbol.so: no symbol migcert_device_plugin_v1");
    mig_err_free(err);
    err = NULL;
    assert_null(load("does-not-exist", &h, &err));
    assert_non_null(strstr(err->msg, "plugin does-not-exist.so: cannot load"));
    mig_err_free(err);
}

static void test_device_read_never_trusts_a_claimed_length(void **state)
{
    (void)state;
    void *h;
    MigErr *err = NULL;
    const MigcertDevicePlugin *p = load("broken-short-read", &h, &err);
    assert_non_null(p);
    MigDevice *d = dev_new(p, MIG_DEV_F_ALL, 4 * FAKE_GPU_PAGE, 1);
    set(d, MIG_DEV_PRE_COPY);
    uint8_t buf[64 + 16];
    memset(buf, 0xaa, sizeof(buf));
    assert_int_equal(mig_device_read(d, buf, 20, NULL), 20); /* the header fits */
    assert_int_equal(mig_device_read(d, buf, 64, &err), -EPROTO);
    assert_string_equal(err->msg,
                        "device broken-short-read: read returned 4101 bytes for a 64-byte buffer");
    mig_err_free(err);
    /* nothing was written past the buffer the device was given */
    for (size_t i = 64; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0xaa);
    mig_device_free(d);
    mig_dev_plugin_close(h);
}

static void test_device_stop_copy_that_never_ends_is_an_error(void **state)
{
    (void)state;
    void *h;
    MigErr *err = NULL;
    const MigcertDevicePlugin *p = load("broken-pending-never-zero", &h, &err);
    assert_non_null(p);
    MigDevice *d = dev_new(p, MIG_DEV_F_STOP_COPY, 4 * FAKE_GPU_PAGE, 1);
    mig_device_set_stop_copy_limit(d, 1 << 20);
    set(d, MIG_DEV_STOP);
    set(d, MIG_DEV_STOP_COPY);
    uint8_t buf[4096];
    ssize_t n;
    while ((n = mig_device_read(d, buf, sizeof(buf), &err)) > 0)
        ;
    assert_int_equal(n, -EPROTO);
    assert_non_null(strstr(err->msg, "never reports the end"));
    mig_err_free(err);
    mig_device_free(d);
    mig_dev_plugin_close(h);
}

static void test_device_trace_records_every_arc(void **state)
{
    (void)state;
    MigTrace *t = mig_trace_new();
    MigDevice *d = dev_new(fake_gpu_plugin(), MIG_DEV_F_ALL, FAKE_GPU_PAGE, 1);
    mig_device_set_trace(d, t, NULL);
    set(d, MIG_DEV_STOP); /* RUNNING -> RP -> STOP */
    assert_int_equal(mig_trace_count(t), 2);
    assert_int_equal(mig_device_reset(d, NULL), 0);
    assert_int_equal(mig_trace_count(t), 3);
    mig_device_free(d);
    mig_trace_free(t);
}

int main(int argc, char **argv)
{
    char self[PATH_MAX];
    snprintf(self, sizeof(self), "%s", argv[0]);
    /* BUILD/unit/test-device -> BUILD/fakes/vendor */
    snprintf(vendor_dir, sizeof(vendor_dir), "%s/../fakes/vendor", dirname(self));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_next_step_table_all_features),
        cmocka_unit_test(test_device_paths_match_golden_for_every_feature_set),
        cmocka_unit_test(test_device_paths_are_direct_arcs_and_skip_saving_states),
        cmocka_unit_test(test_device_set_state_executes_golden_arcs_on_device),
        cmocka_unit_test(test_device_round_trip_v2_byte_for_byte),
        cmocka_unit_test(test_device_precopy_info_and_read_semantics),
        cmocka_unit_test(test_device_resume_rejects_every_truncation_and_flip),
        cmocka_unit_test(test_device_abort_returns_to_running_with_state_intact),
        cmocka_unit_test(test_device_error_is_left_only_by_reset),
        cmocka_unit_test(test_device_refuses_invalid_and_unsupported_targets),
        cmocka_unit_test(test_device_v1_adapter_maps_states_to_bits),
        cmocka_unit_test(test_device_v1_adapter_round_trip_and_truncation),
        cmocka_unit_test(test_device_loader_loads_good_plugin),
        cmocka_unit_test(test_device_loader_refuses_unknown_abi_version),
        cmocka_unit_test(test_device_loader_refuses_missing_symbol_and_file),
        cmocka_unit_test(test_device_read_never_trusts_a_claimed_length),
        cmocka_unit_test(test_device_stop_copy_that_never_ends_is_an_error),
        cmocka_unit_test(test_device_trace_records_every_arc),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
