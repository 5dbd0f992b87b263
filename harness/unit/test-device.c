/*
 * test-device.c - impl/device: the transition algorithm against the golden
 * tables of docs/protocol-vfio.md (sections 5 and 6, every cur x target x
 * feature set), multi-arc requests on a real device (fake-gpu), sessions and
 * round trips byte for byte, resume validation over every truncation and
 * every flipped byte, abort and reset, the v1 adapter, the plugin loader
 * (vmstate descriptions included), and the device section payload of the
 * migration stream (expected bytes, every truncation, every bad record).
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

#include "device/device-savevm.h"
#include "device/device.h"
#include "devices/fake-gpu.h"
#include "stream/dev-format.h"
#include "test-scale.h"

static char vendor_dir[PATH_MAX];

/* ---- golden tables (docs/protocol-vfio.md 5, 6), written as in the document ---- */

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


/* 1.3 written out as in the document, independently of device.c: which
 * direct arcs a driver implements for each feature condition.  Conditions:
 * "always", "!P2P", "P2P", "PRE", "PRE !P2P", "PRE P2P". */
static const struct {
    const char *when;
    const char *arcs;
} doc_arcs[] = {
    {"always", "STOP>SC SC>STOP STOP>RES RES>STOP"},
    {"!P2P", "RUNNING>STOP STOP>RUNNING"},
    {"P2P", "RUNNING>RP RP>RUNNING RP>STOP STOP>RP"},
    {"PRE", "RUNNING>PC PC>RUNNING"},
    {"PRE !P2P", "PC>SC"},
    {"PRE P2P", "PC>PCP PCP>PC PCP>RP RP>PCP PCP>SC"},
};

static int abbrev_state(const char *s, size_t n)
{
    for (int i = 0; i < MIG_DEV_STATE__COUNT; i++)
        if (strlen(abbrev[i]) == n && strncmp(abbrev[i], s, n) == 0)
            return i;
    fail_msg("unknown state abbreviation %.*s", (int)n, s);
    return -1;
}

static bool doc_condition_holds(const char *when, uint32_t f)
{
    if (!strcmp(when, "always"))
        return true;
    bool ok = true;
    if (strstr(when, "PRE"))
        ok &= (f & MIG_DEV_F_PRE_COPY) != 0;
    if (strstr(when, "!P2P"))
        ok &= !(f & MIG_DEV_F_P2P);
    else if (strstr(when, "P2P"))
        ok &= (f & MIG_DEV_F_P2P) != 0;
    return ok;
}

/* Every from x to (ERROR and one value past the end included) x every
 * combination of the three feature bits: mig_dev_arc_allowed() is true
 * exactly for the arcs 1.3 lists for that feature set.  A set without
 * STOP_COPY is not a defined set: it has no arcs at all.  STOP_COPY ->
 * PRE_COPY(_P2P) ("never") is never allowed. */
static void test_device_arc_allowed_matches_doc_table_for_every_pair(void **state)
{
    (void)state;
    int allowed_total = 0;
    for (uint32_t f = 0; f <= MIG_DEV_F_ALL; f++) {
        bool want[MIG_DEV_STATE__COUNT + 1][MIG_DEV_STATE__COUNT + 1] = {{false}};
        if (f & MIG_DEV_F_STOP_COPY)
            for (size_t i = 0; i < MIG_ARRAY_SIZE(doc_arcs); i++) {
                if (!doc_condition_holds(doc_arcs[i].when, f))
                    continue;
                const char *p = doc_arcs[i].arcs;
                while (*p) {
                    size_t len = strcspn(p, " ");
                    const char *gt = memchr(p, '>', len);
                    assert_non_null(gt);
                    int from = abbrev_state(p, (size_t)(gt - p));
                    int to = abbrev_state(gt + 1, len - (size_t)(gt - p) - 1);
                    want[from][to] = true;
                    p += len + (p[len] == ' ');
                }
            }
        for (int from = 0; from <= MIG_DEV_STATE__COUNT; from++)
            for (int to = 0; to <= MIG_DEV_STATE__COUNT; to++) {
                bool got = mig_dev_arc_allowed((MigDevState)from, (MigDevState)to, f);
                if (got != want[from][to])
                    fail_msg("features 0x%x: %s -> %s: mig_dev_arc_allowed says %s, 1.3 says %s",
                             f, from < MIG_DEV_STATE__COUNT ? abbrev[from] : "8",
                             to < MIG_DEV_STATE__COUNT ? abbrev[to] : "8",
                             got ? "arc" : "no arc", want[from][to] ? "arc" : "no arc");
                allowed_total += got;
            }
        assert_false(mig_dev_arc_allowed(MIG_DEV_STOP_COPY, MIG_DEV_PRE_COPY, f));
        assert_false(mig_dev_arc_allowed(MIG_DEV_STOP_COPY, MIG_DEV_PRE_COPY_P2P, f));
    }
    /* the 4 defined sets: SC 4+2, +P2P 4+4, +PRE 4+2+2+1, all 4+4+2+5 */
    assert_int_equal(allowed_total, 6 + 8 + 9 + 15);
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

/* Every page of d that is not all zeros is in fake_gpu_nonzero_pages (the
 * save, the digest and the runner's gpu oracle skip the others); returns
 * how many pages are in it. */
static size_t nonzero_pages_cover(MigDevice *d)
{
    MigcertDevice *inst = mig_device_backend(d)->instance;
    size_t len, n = 0;
    const uint8_t *m = fake_gpu_memory(inst, &len);
    const uint64_t *bm = fake_gpu_nonzero_pages(inst);
    static const uint8_t zero[FAKE_GPU_PAGE];
    for (size_t page = 0; page < len / FAKE_GPU_PAGE; page++) {
        if (bm[page / 64] >> (page % 64) & 1)
            n++;
        else if (memcmp(m + page * FAKE_GPU_PAGE, zero, FAKE_GPU_PAGE))
            fail_msg("page %zu holds data but is not among the non-zero pages", page);
    }
    return n;
}

static uint64_t digest_of(MigDevice *d)
{
    MigDevBackend *be = mig_device_backend(d);
    uint64_t x = 0;
    assert_int_equal(be->ops->digest(be, &x, NULL), 0);
    return x;
}

/* Pages the guest wrote and pages a stream loaded with data are recorded;
 * zeros loaded over data still land (the page is zeros afterwards, and the
 * digest says so too). */
static void test_device_nonzero_pages_cover_guest_and_loaded_data(void **state)
{
    (void)state;
    const uint32_t f = MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY;
    const uint64_t mem = 256 * FAKE_GPU_PAGE;
    MigPrng prng;
    mig_prng_seed(&prng, 31);
    MigDevice *data = dev_new(fake_gpu_plugin(), f, mem, 7);
    MigDevice *zeros = dev_new(fake_gpu_plugin(), f, mem, 9);
    MigDevice *d = dev_new(fake_gpu_plugin(), f, mem, 8);
    Buf sd = save_all(data, &prng, 10), sz = save_all(zeros, &prng, 0);
    size_t written = nonzero_pages_cover(data);
    assert_true(written > 0 && written < 256); /* both kinds of page */
    assert_int_equal(nonzero_pages_cover(zeros), 0);
    MigErr *err = NULL;
    must(load_all(d, sd.p, sd.len, &prng, &err), err, "load the data");
    assert_same_device(data, d);
    assert_int_equal(nonzero_pages_cover(d), written);
    assert_true(digest_of(d) == digest_of(data));
    must(load_all(d, sz.p, sz.len, &prng, &err), err, "load zeros over it");
    assert_same_device(zeros, d);
    (void)nonzero_pages_cover(d);
    assert_true(digest_of(d) == digest_of(zeros));
    free(sd.p);
    free(sz.p);
    mig_device_free(data);
    mig_device_free(zeros);
    mig_device_free(d);
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

/* A v1 device that reports a device_state no state has (RUNNING|RESUMING):
 * the adapter's error names the raw bits, not a made-up "ERROR -> X". */
static uint32_t v1_bad_bits;
static uint32_t (*v1_real_get_state)(MigcertDevice *dev);

static uint32_t v1_lying_get_state(MigcertDevice *dev)
{
    return v1_bad_bits ? v1_bad_bits : v1_real_get_state(dev);
}

static void test_device_v1_adapter_names_bad_device_state_bits(void **state)
{
    (void)state;
    MigcertDevicePlugin p = *fake_gpu_plugin_v1();
    v1_real_get_state = p.get_state;
    p.get_state = v1_lying_get_state;
    v1_bad_bits = 0;
    MigDevice *d = dev_new(&p, MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY, 4 * FAKE_GPU_PAGE, 1);
    v1_bad_bits = MIGCERT_V1_RUNNING | MIGCERT_V1_RESUMING;
    MigErr *err = NULL;
    assert_true(mig_device_set_state(d, MIG_DEV_PRE_COPY, &err) < 0);
    if (!strstr(err->msg, "device_state is 0x5 (RUNNING|RESUMING), an error state; cannot go to "
                          "PRE_COPY"))
        fail_msg("%s", err->msg);
    mig_err_free(err);
    /* the device layer believes the backend: an error state is ERROR */
    assert_int_equal(mig_device_state(d), MIG_DEV_ERROR);
    v1_bad_bits = 0;
    mig_device_free(d);
}

/* The device layer records an arc only when it is one for the device's
 * feature set, checked when the state changes (dev_enter), not only when
 * the walk is planned: a backend whose features shrink inside its arc
 * callback (a plugin bug) cannot make it record PRE_COPY -> STOP_COPY for
 * what is now a STOP_COPY-only device; and a state the backend reports
 * after a failure that the feature set lacks is taken as ERROR. */
static const MigDevBackendOps *shrink_real;
static MigDevBackendOps shrink_ops;

static int shrink_arc(MigDevBackend *b, MigDevState to, MigErr **errp)
{
    int r = shrink_real->arc(b, to, errp);
    b->features = MIG_DEV_F_STOP_COPY;
    return r;
}

static void test_device_arc_outside_the_feature_set_is_refused(void **state)
{
    (void)state;
    MigDevice *d = dev_new(fake_gpu_plugin(), MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY, 4 * FAKE_GPU_PAGE, 1);
    set(d, MIG_DEV_PRE_COPY);
    MigDevBackend *be = mig_device_backend(d);
    shrink_real = be->ops;
    shrink_ops = *be->ops;
    shrink_ops.arc = shrink_arc;
    be->ops = &shrink_ops;
    MigErr *err = NULL;
    assert_int_equal(mig_device_set_state(d, MIG_DEV_STOP_COPY, &err), -EPROTO);
    if (!strstr(err->msg, "PRE_COPY -> STOP_COPY is not an arc for STOP_COPY"))
        fail_msg("%s", err->msg);
    mig_err_free(err);
    assert_int_equal(mig_device_state(d), MIG_DEV_PRE_COPY);
    be->ops = shrink_real;
    /* after a failure: the backend is in PRE_COPY, which STOP_COPY-only
     * lacks */
    be->features = MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY;
    assert_int_equal(mig_device_reset(d, NULL), 0);
    assert_int_equal(be->ops->arc(be, MIG_DEV_PRE_COPY, NULL), 0);
    be->features = MIG_DEV_F_STOP_COPY;
    mig_device_refresh(d);
    assert_int_equal(mig_device_state(d), MIG_DEV_ERROR);
    be->features = MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY;
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
    /* a v2 device's stream is not framed: the adapter says so */
    MigDevice *v2 = dev_new(fake_gpu_plugin(), f, 40 * FAKE_GPU_PAGE, 5);
    Buf s2 = save_all(v2, &prng, 10);
    MigDevice *d3 = dev_new(fake_gpu_plugin_v1(), f, 40 * FAKE_GPU_PAGE, 6);
    err = NULL;
    assert_true(load_all(d3, s2.p, s2.len, NULL, &err) < 0);
    assert_string_equal(err->msg, "device fake-gpu-v1: write: v1 adapter: the resume stream "
                                  "announces a transaction of 1179078741 bytes (allowed: 1 to "
                                  "67108864); it was not saved by a v1 device (a v2 device's "
                                  "stream is not framed in transactions)");
    mig_err_free(err);
    free(s2.p);
    mig_device_free(v2);
    mig_device_free(d3);
    free(s.p);
    mig_device_free(d2);
    mig_device_free(src);
    mig_device_free(dst);
}

/* The v1 adapter takes each resume transaction from the backend's
 * allocator when one is set (the certify sandbox's guard-paged buffers):
 * the device is handed exactly the buffer it gave, one per transaction of
 * the source's size, and put is called once when the backend goes. */
typedef struct Pool {
    uint8_t *buf;
    size_t cap, gets, puts;
} Pool;

static void *pool_get(void *opaque, size_t len)
{
    Pool *p = opaque;
    p->gets++;
    if (len > p->cap) {
        free(p->buf);
        p->buf = malloc(len);
        p->cap = len;
    }
    return p->buf;
}

static void pool_put(void *opaque)
{
    Pool *p = opaque;
    p->puts++;
    free(p->buf);
    p->buf = NULL;
    p->cap = 0;
}

static Pool *v1_spy_pool;
static size_t v1_seen_calls, v1_seen_foreign;
static int (*v1_real_resume)(MigcertDevice *dev, const void *data, size_t size);

static int v1_spy_resume(MigcertDevice *dev, const void *data, size_t size)
{
    v1_seen_calls++;
    if (data != v1_spy_pool->buf)
        v1_seen_foreign++; /* a buffer not the pool's */
    return v1_real_resume(dev, data, size);
}

static void test_device_v1_adapter_takes_transactions_from_the_allocator(void **state)
{
    (void)state;
    MigPrng prng;
    mig_prng_seed(&prng, 12);
    uint32_t f = MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY;
    MigDevice *src = dev_new(fake_gpu_plugin_v1(), f, 40 * FAKE_GPU_PAGE, 5);
    Buf s = save_all(src, &prng, 100);
    MigcertDevicePlugin spy = *fake_gpu_plugin_v1();
    v1_real_resume = spy.v1_resume_chunk;
    spy.v1_resume_chunk = v1_spy_resume;
    MigDevice *dst = dev_new(&spy, f, 40 * FAKE_GPU_PAGE, 6);
    Pool pool = {0};
    MigDevBackend *be = mig_device_backend(dst);
    be->alloc = (MigDevBufAlloc){pool_get, pool_put, &pool};
    MigErr *err = NULL;
    v1_spy_pool = &pool;
    v1_seen_calls = v1_seen_foreign = 0;
    must(load_all(dst, s.p, s.len, &prng, &err), err, "v1 load");
    set(dst, MIG_DEV_RUNNING);
    assert_same_device(src, dst);
    assert_true(pool.gets > 0);
    assert_int_equal(pool.gets, v1_seen_calls); /* one buffer per transaction */
    assert_int_equal(v1_seen_foreign, 0);
    assert_int_equal(pool.puts, 0);
    mig_device_free(dst);
    assert_int_equal(pool.puts, 1);
    assert_null(pool.buf);
    free(s.p);
    mig_device_free(src);
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


/* The optional vmstate description: absent or a -dump-vmstate entry loads;
 * anything else is refused, naming the plugin and what is wrong. */
static void test_device_loader_checks_vmstate_description(void **state)
{
    (void)state;
    void *h;
    MigErr *err = NULL;
    const MigcertDevicePlugin *p = load("good", &h, &err);
    assert_non_null(p);
    assert_non_null(p->vmstate_json);
    assert_int_equal(mig_dev_plugin_check_vmstate(p->vmstate_json, "good.so", NULL), 0);
    mig_dev_plugin_close(h);
    assert_int_equal(mig_dev_plugin_check_vmstate(NULL, "x.so", NULL), 0);

    assert_null(load("broken-vmstate-description", &h, &err));
    assert_int_equal(err->code, -EINVAL);
    assert_string_equal(err->msg, "plugin broken-vmstate-description.so: vmstate description is "
                                  "not a -dump-vmstate entry: section \"acme\".Description."
                                  "Fields[0]: \"size\" is not an integer");
    mig_err_free(err);

    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"Name\": ", "plugin x.so: vmstate description is not valid JSON: "},
        {"[1, 2]", "plugin x.so: vmstate description is not a -dump-vmstate entry (not an "
                   "object)"},
        {"{\"version_id\": 1, \"Description\": {}}",
         "plugin x.so: vmstate description is not a -dump-vmstate entry (\"Name\" is not a "
         "string)"},
        {"{\"Name\": \"x\", \"version_id\": 1}",
         "plugin x.so: vmstate description is not a -dump-vmstate entry (\"Description\" is "
         "not an object)"},
        {"{\"Name\": \"x\", \"version_id\": \"1\", \"Description\": {\"name\": \"x\", "
         "\"version_id\": 1}}",
         "plugin x.so: vmstate description is not a -dump-vmstate entry: section \"x\": "
         "\"version_id\" is not an integer"},
        {"{\"Name\": \"x\", \"version_id\": 1, \"Description\": {\"name\": \"x\", "
         "\"version_id\": 1, \"Subsections\": [{\"name\": 3}]}}",
         "plugin x.so: vmstate description is not a -dump-vmstate entry: section \"x\"."
         "Description.Subsections[0]: \"name\" is not a string"},
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(bad); i++) {
        err = NULL;
        assert_int_equal(mig_dev_plugin_check_vmstate(bad[i].json, "x.so", &err), -EINVAL);
        if (strncmp(err->msg, bad[i].msg, strlen(bad[i].msg)) != 0)
            fail_msg("%s:\n  got  %s\n  want %s", bad[i].json, err->msg, bad[i].msg);
        mig_err_free(err);
    }
    /* the table check applies it: an in-process backend refuses too */
    MigcertDevicePlugin t = *fake_gpu_plugin();
    t.vmstate_json = "{";
    MigcertDeviceConfig cfg = {sizeof(cfg), MIG_DEV_F_ALL, 1, FAKE_GPU_PAGE};
    err = NULL;
    assert_null(mig_dev_backend_plugin_new(&t, &cfg, "acme.so", &err));
    assert_non_null(strstr(err->msg, "plugin acme.so: vmstate description is not valid JSON"));
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

/* Without an explicit limit the progress rule applies: a device that keeps
 * handing out STOP_COPY data while the remaining size it reports stays put
 * fails once MIG_DEV_STOP_COPY_STALL_BYTES went by without progress (and
 * not before: the honest bytes of its real state come first). */
static void test_device_stop_copy_without_progress_is_an_error(void **state)
{
    (void)state;
    void *h;
    MigErr *err = NULL;
    const MigcertDevicePlugin *p = load("broken-pending-never-zero", &h, &err);
    assert_non_null(p);
    MigDevice *d = dev_new(p, MIG_DEV_F_STOP_COPY, 4 * FAKE_GPU_PAGE, 1);
    /* under valgrind the rule's bound is 16 MiB instead of the default
     * 1 GiB (test-scale.h): the same reads through the same check, 1/64 as
     * many of them (copying the 1 GiB was nearly all of test-device's
     * time under valgrind) */
    uint64_t stall = TEST_SCALE(MIG_DEV_STOP_COPY_STALL_BYTES, (uint64_t)16 << 20);
    if (stall != MIG_DEV_STOP_COPY_STALL_BYTES)
        mig_device_set_stop_copy_stall(d, stall);
    set(d, MIG_DEV_STOP);
    set(d, MIG_DEV_STOP_COPY);
    static uint8_t buf[1 << 16];
    ssize_t n;
    uint64_t total = 0;
    while ((n = mig_device_read(d, buf, sizeof(buf), &err)) > 0)
        total += (uint64_t)n;
    assert_int_equal(n, -EPROTO);
    assert_true(total >= stall);
    assert_true(total <= stall + (1 << 20));
    if (!strstr(err->msg, "while the remaining size it reports stayed at"))
        fail_msg("%s", err->msg);
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


/* ---- the device section of the migration stream (device-savevm.c) ---- */

#define SEC_IDSTR "0000:00:05.0/vfio"

typedef struct Sec {
    MigSavevm *sv;
    MigDevice *dev;
    MigDevSection *sec;
    const MigSaveEntry *e;
} Sec;

static void sec_new(Sec *x, uint64_t seed)
{
    MigErr *err = NULL;
    x->sv = mig_savevm_new();
    x->dev = dev_new(fake_gpu_plugin(), MIG_DEV_F_STOP_COPY, FAKE_GPU_PAGE, seed);
    x->sec = mig_dev_section_register(x->sv, x->dev, SEC_IDSTR, 0, &err);
    if (!x->sec)
        fail_msg("register: %s", err ? err->msg : "?");
    x->e = mig_savevm_find(x->sv, SEC_IDSTR, 0);
    assert_non_null(x->e);
}

static void sec_free(Sec *x)
{
    mig_dev_section_free(x->sec);
    mig_device_free(x->dev);
    mig_savevm_free(x->sv);
}

/* One payload of section `type` through the handler, from memory. */
static int sec_load(Sec *x, uint8_t type, uint32_t version, const void *p, size_t n,
                    MigErr **errp)
{
    MigStream *s = mig_stream_new_mem_reader(p, n);
    MigSectionHeader h = {.type = type, .section_id = 1, .version_id = version};
    snprintf(h.idstr, sizeof(h.idstr), "%s", SEC_IDSTR);
    int r = x->e->iter->load_state(x->e->opaque, s, &h, errp);
    mig_stream_free(s);
    return r;
}

/* The source side of a one-page fake-gpu (STOP_COPY only): START and END
 * payloads. */
static void sec_save(Buf *start, Buf *end, uint64_t seed)
{
    Sec x;
    sec_new(&x, seed);
    MigDevBackend *be = mig_device_backend(x.dev);
    assert_int_equal(be->ops->guest_run(be, 7, NULL), 0);
    MigErr *err = NULL;
    MigStream *s = mig_stream_new_mem_writer();
    must(x.e->iter->save_setup(x.e->opaque, s, &err), err, "save_setup");
    size_t n;
    const uint8_t *p = mig_stream_mem_data(s, &n);
    buf_add(start, p, n);
    mig_stream_free(s);
    s = mig_stream_new_mem_writer();
    int r = x.e->iter->save_complete(x.e->opaque, s, 1 << 20, &err);
    must(r, err, "save_complete");
    assert_int_equal(r, 1);
    p = mig_stream_mem_data(s, &n);
    buf_add(end, p, n);
    mig_stream_free(s);
    assert_int_equal(mig_device_state(x.dev), MIG_DEV_STOP);
    sec_free(&x);
}

static void test_device_section_payload_bytes(void **state)
{
    (void)state;
    Buf start = {0}, end = {0};
    sec_save(&start, &end, 3);
    static const uint8_t want_start[] = {
        0x01,                   /* SETUP */
        0x00, 0x00, 0x00, 0x01, /* be32 format version 1 */
        0x04,                   /* EOS */
    };
    assert_int_equal(start.len, sizeof(want_start));
    assert_memory_equal(start.p, want_start, sizeof(want_start));
    /* one page: header 20 + page record 4101 + registers 65 + end 9 */
    const uint32_t dev_len = 20 + 4101 + 65 + 9;
    assert_int_equal(end.len, 1 + 4 + dev_len + 1 + 1);
    static const uint8_t want_end_head[] = {
        0x02,                   /* DATA */
        0x00, 0x00, 0x10, 0x63, /* be32 length 4195 */
        'F',  'G',  'P',  'U',  /* the device's own stream from here */
        0x00, 0x00, 0x00, 0x01, /*   its version */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, /* mem_size 4096 */
    };
    assert_memory_equal(end.p, want_end_head, sizeof(want_end_head));
    static const uint8_t want_end_tail[] = {
        0x03, /* COMPLETE */
        0x04, /* EOS */
    };
    assert_memory_equal(end.p + end.len - 2, want_end_tail, 2);
    /* and both load into a fresh device, which then equals the source */
    Sec d;
    sec_new(&d, 4);
    MigErr *err = NULL;
    must(sec_load(&d, MIG_SECTION_START, 1, start.p, start.len, &err), err, "START");
    assert_int_equal(mig_device_state(d.dev), MIG_DEV_RESUMING);
    must(sec_load(&d, MIG_SECTION_END, 1, end.p, end.len, &err), err, "END");
    assert_int_equal(mig_device_state(d.dev), MIG_DEV_STOP);
    d.e->iter->load_cleanup(d.e->opaque, MIG_OUTCOME_COMPLETED);
    assert_int_equal(mig_device_state(d.dev), MIG_DEV_RUNNING);
    sec_free(&d);
    free(start.p);
    free(end.p);
}

/* Every truncation of each payload is an error naming the device section
 * and an offset; records are whole or not at all: a START cut inside its
 * SETUP record leaves the device untouched (RUNNING), after it RESUMING, and
 * a cut END leaves it RESUMING: never STOP or RUNNING with partial state
 * (only the cut of the final EOS finds the whole state loaded, in STOP). */
/* Under valgrind (test-scale.h): whether `cut` falls strictly inside the
 * bytes of a DATA record of payload b, past their first three and before
 * their last three, and not at their middle.  The loader takes a DATA
 * record in one piece, so every such cut fails the same way; the ~20,000
 * of them (a device built, loaded and freed for each) were nearly all of
 * valgrind's time in this file.  Natively every cut runs. */
static bool inside_data(const Buf *b, size_t cut)
{
    if (!test_scale_small())
        return false;
    for (size_t at = 0; at < b->len;) {
        unsigned tag = b->p[at];
        size_t n = 0;
        if (mig_dev_rec_has_value(tag) && at + MIG_DEV_REC_DATA_HDR <= b->len && tag == MIG_DEV_REC_DATA)
            n = (size_t)b->p[at + 1] << 24 | (size_t)b->p[at + 2] << 16 | (size_t)b->p[at + 3] << 8 |
                b->p[at + 4];
        size_t bytes = at + MIG_DEV_REC_DATA_HDR;
        if (n && cut > bytes + 2 && cut < bytes + n - 2 && cut != bytes + n / 2)
            return true;
        at += mig_dev_rec_has_value(tag) ? MIG_DEV_REC_DATA_HDR + n : 1;
    }
    return false;
}

static void test_device_section_load_every_truncation(void **state)
{
    (void)state;
    Buf start = {0}, end = {0};
    sec_save(&start, &end, 5);
    for (int which = 0; which < 2; which++) {
        const Buf *b = which ? &end : &start;
        for (size_t cut = 0; cut < b->len; cut++) {
            if (inside_data(b, cut))
                continue;
            Sec d;
            sec_new(&d, 6);
            MigErr *err = NULL;
            if (which)
                must(sec_load(&d, MIG_SECTION_START, 1, start.p, start.len, &err), err, "START");
            int r = sec_load(&d, which ? MIG_SECTION_END : MIG_SECTION_START, 1, b->p, cut, &err);
            if (r >= 0 || r == -EAGAIN)
                fail_msg("%s payload cut at %zu of %zu: load returned %d", which ? "END" : "START",
                         cut, b->len, r);
            assert_non_null(err);
            if (strncmp(err->msg, "device " SEC_IDSTR ": ", strlen("device " SEC_IDSTR ": ")) ||
                !strstr(err->msg, " at offset "))
                fail_msg("cut at %zu: error does not name the device and offset: %s", cut,
                         err->msg);
            mig_err_free(err);
            MigDevState want = which || cut >= 5 ? MIG_DEV_RESUMING : MIG_DEV_RUNNING;
            if (which && cut == b->len - 1)
                want = MIG_DEV_STOP; /* all but EOS: COMPLETE validated the whole state */
            assert_int_equal(mig_device_state(d.dev), want);
            d.e->iter->load_cleanup(d.e->opaque, MIG_OUTCOME_FAILED);
            assert_int_equal(mig_device_state(d.dev), MIG_DEV_RUNNING);
            sec_free(&d);
        }
    }
    /* exact messages for a cut inside the tag-less start and inside DATA */
    Sec d;
    sec_new(&d, 6);
    MigErr *err = NULL;
    assert_int_equal(sec_load(&d, MIG_SECTION_START, 1, start.p, 0, &err), -EIO);
    assert_string_equal(err->msg, "device " SEC_IDSTR ": record at offset 0: truncated: stream "
                                  "ended at offset 0");
    mig_err_free(err);
    err = NULL;
    must(sec_load(&d, MIG_SECTION_START, 1, start.p, start.len, &err), err, "START");
    assert_int_equal(sec_load(&d, MIG_SECTION_END, 1, end.p, 100, &err), -EIO);
    assert_string_equal(err->msg, "device " SEC_IDSTR ": DATA record at offset 0: truncated: "
                                  "stream ended at offset 100");
    mig_err_free(err);
    sec_free(&d);
    free(start.p);
    free(end.p);
}

/* Bad tags, lengths, versions and records in the wrong section: each is
 * refused with the errno and message below, before the device sees it. */
static void test_device_section_load_rejects_bad_records(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        bool after_setup; /* a valid START was loaded first */
        uint8_t type;
        uint32_t version;
        uint8_t bytes[12];
        size_t len;
        int err;
        const char *msg; /* after "device <idstr>: " */
        MigDevState state;
    } cases[] = {
        {"unknown tag", false, MIG_SECTION_START, 1, {0x09}, 1, -EPROTO,
         "unknown record 0x09 at offset 0", MIG_DEV_RUNNING},
        {"tag 0", true, MIG_SECTION_PART, 1, {0x00}, 1, -EPROTO,
         "unknown record 0x00 at offset 0", MIG_DEV_RESUMING},
        {"format version 2", false, MIG_SECTION_START, 1, {0x01, 0, 0, 0, 2, 0x04}, 6, -ENOTSUP,
         "section format 2 at offset 0 is not supported (known: 1)", MIG_DEV_RUNNING},
        {"format version 0", false, MIG_SECTION_START, 1, {0x01, 0, 0, 0, 0, 0x04}, 6, -ENOTSUP,
         "section format 0 at offset 0 is not supported (known: 1)", MIG_DEV_RUNNING},
        {"section version 2", false, MIG_SECTION_START, 2, {0x01, 0, 0, 0, 1, 0x04}, 6, -ENOTSUP,
         "section version 2 at offset 0 is not supported (known: 1)", MIG_DEV_RUNNING},
        {"DATA of 0 bytes", true, MIG_SECTION_PART, 1, {0x02, 0, 0, 0, 0, 0x04}, 6, -EPROTO,
         "DATA record of 0 bytes at offset 0 (allowed: 1 to 1048576)", MIG_DEV_RESUMING},
        {"DATA too long", true, MIG_SECTION_PART, 1, {0x02, 0, 0x10, 0, 1, 0x04}, 6, -EPROTO,
         "DATA record of 1048577 bytes at offset 0 (allowed: 1 to 1048576)", MIG_DEV_RESUMING},
        {"DATA of 4 GiB - 1", true, MIG_SECTION_PART, 1, {0x02, 0xff, 0xff, 0xff, 0xff}, 5,
         -EPROTO, "DATA record of 4294967295 bytes at offset 0 (allowed: 1 to 1048576)",
         MIG_DEV_RESUMING},
        {"DATA before SETUP", false, MIG_SECTION_PART, 1, {0x02, 0, 0, 0, 1, 0xaa, 0x04}, 7,
         -EPROTO, "DATA record at offset 0 before the section's SETUP", MIG_DEV_RUNNING},
        {"SETUP in PART", true, MIG_SECTION_PART, 1, {0x01, 0, 0, 0, 1, 0x04}, 6, -EPROTO,
         "unexpected SETUP record at offset 0 (the session is already set up)",
         MIG_DEV_RESUMING},
        {"SETUP outside START", false, MIG_SECTION_END, 1, {0x01, 0, 0, 0, 1, 0x04}, 6, -EPROTO,
         "unexpected SETUP record at offset 0 (outside the START section)", MIG_DEV_RUNNING},
        {"COMPLETE in PART", true, MIG_SECTION_PART, 1, {0x03, 0x04}, 2, -EPROTO,
         "unexpected COMPLETE record at offset 0 (outside the END section)", MIG_DEV_RESUMING},
        {"COMPLETE before SETUP", false, MIG_SECTION_END, 1, {0x03, 0x04}, 2, -EPROTO,
         "unexpected COMPLETE record at offset 0 (before the section's SETUP)", MIG_DEV_RUNNING},
        {"COMPLETE of a short stream", true, MIG_SECTION_END, 1,
         {0x02, 0, 0, 0, 4, 'F', 'G', 'P', 'U', 0x03, 0x04}, 11, -EPROTO,
         "COMPLETE record at offset 9: device fake-gpu: arc RESUMING -> STOP: EPROTO",
         MIG_DEV_RESUMING},
    };
    static const uint8_t setup[] = {0x01, 0, 0, 0, 1, 0x04};
    for (size_t i = 0; i < MIG_ARRAY_SIZE(cases); i++) {
        Sec d;
        sec_new(&d, 7);
        MigErr *err = NULL;
        if (cases[i].after_setup)
            must(sec_load(&d, MIG_SECTION_START, 1, setup, sizeof(setup), &err), err, "START");
        int r = sec_load(&d, cases[i].type, cases[i].version, cases[i].bytes, cases[i].len, &err);
        if (r != cases[i].err)
            fail_msg("%s: load returned %d (%s), expected %d", cases[i].what, r,
                     err ? err->msg : "no message", cases[i].err);
        char want[256];
        snprintf(want, sizeof(want), "device %s: %s", SEC_IDSTR, cases[i].msg);
        if (strcmp(err->msg, want) != 0)
            fail_msg("%s:\n  got  %s\n  want %s", cases[i].what, err->msg, want);
        mig_err_free(err);
        if (mig_device_state(d.dev) != cases[i].state)
            fail_msg("%s: device is %s, expected %s", cases[i].what,
                     mig_dev_state_name(mig_device_state(d.dev)),
                     mig_dev_state_name(cases[i].state));
        sec_free(&d);
    }
    /* the record names */
    assert_string_equal(mig_dev_rec_name(MIG_DEV_REC_SETUP), "SETUP");
    assert_string_equal(mig_dev_rec_name(MIG_DEV_REC_EOS), "EOS");
    assert_string_equal(mig_dev_rec_name(0), "?");
    assert_string_equal(mig_dev_rec_name(MIG_DEV_REC__COUNT), "?");
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
        cmocka_unit_test(test_device_arc_allowed_matches_doc_table_for_every_pair),
        cmocka_unit_test(test_device_set_state_executes_golden_arcs_on_device),
        cmocka_unit_test(test_device_round_trip_v2_byte_for_byte),
        cmocka_unit_test(test_device_nonzero_pages_cover_guest_and_loaded_data),
        cmocka_unit_test(test_device_precopy_info_and_read_semantics),
        cmocka_unit_test(test_device_resume_rejects_every_truncation_and_flip),
        cmocka_unit_test(test_device_abort_returns_to_running_with_state_intact),
        cmocka_unit_test(test_device_error_is_left_only_by_reset),
        cmocka_unit_test(test_device_refuses_invalid_and_unsupported_targets),
        cmocka_unit_test(test_device_v1_adapter_maps_states_to_bits),
        cmocka_unit_test(test_device_v1_adapter_names_bad_device_state_bits),
        cmocka_unit_test(test_device_arc_outside_the_feature_set_is_refused),
        cmocka_unit_test(test_device_v1_adapter_round_trip_and_truncation),
        cmocka_unit_test(test_device_v1_adapter_takes_transactions_from_the_allocator),
        cmocka_unit_test(test_device_loader_loads_good_plugin),
        cmocka_unit_test(test_device_loader_refuses_unknown_abi_version),
        cmocka_unit_test(test_device_loader_refuses_missing_symbol_and_file),
        cmocka_unit_test(test_device_loader_checks_vmstate_description),
        cmocka_unit_test(test_device_read_never_trusts_a_claimed_length),
        cmocka_unit_test(test_device_stop_copy_that_never_ends_is_an_error),
        cmocka_unit_test(test_device_stop_copy_without_progress_is_an_error),
        cmocka_unit_test(test_device_trace_records_every_arc),
        cmocka_unit_test(test_device_section_payload_bytes),
        cmocka_unit_test(test_device_section_load_every_truncation),
        cmocka_unit_test(test_device_section_load_rejects_bad_records),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
