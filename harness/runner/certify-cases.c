/*
 * certify-cases.c - the cases of `migcert certify` and the case list
 * (the list of names is in cmd-certify.c's header).  A case gets a fresh
 * CertCtx (its own PRNG seeded from its index, so a REPRO line reruns the
 * same draws), opens its own sandboxes and devices, and reports only
 * through certify_fail / certify_skip; it never decides whether later
 * cases run.  Which cases exist depends on what the plugin offers: its
 * feature set (one case per supported subset), its callbacks (one
 * fault.<callback> each) and --peer.
 */
#include <fnmatch.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certify-internal.h"

/* ---- cases ---- */

#define SMALL_MEM (64u << 10)

static void case_load(CertCtx *c, const CertCase *k)
{
    CertSandbox *sb = certify_open_sb(c, c->dev_path);
    certify_sb_free(sb);
}

static void case_transition(CertCtx *c, const CertCase *k)
{
    uint32_t f = k->fset;
    MigDevState cur = (MigDevState)k->a, tgt = (MigDevState)k->b;
    CertSandbox *sb = certify_open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *d = NULL, *src = NULL;
    CertBuf stream = {0};
    if (cur == MIG_DEV_RESUMING) {
        src = certify_open_dev(c, sb, f, 1, SMALL_MEM);
        if (!src || !certify_save(c, src, &stream, 0, 0))
            goto out;
    }
    d = certify_open_dev(c, sb, f, 2, SMALL_MEM);
    if (!d)
        goto out;
    MigDevBackend *be = mig_device_backend(d);
    if (cur == MIG_DEV_ERROR) {
        MigErr *err = NULL;
        int r = be->ops->force_error(be, &err);
        mig_err_free(err);
        if (r == -ENOTSUP) {
            certify_skip(c, "the plugin has no force_error test hook");
            goto out;
        }
        mig_device_refresh(d);
        if (mig_device_state(d) != MIG_DEV_ERROR) {
            certify_fail(c, "error-refuses-arcs", "force_error left the device in %s",
                 mig_dev_state_name(mig_device_state(d)));
            goto out;
        }
    } else if (cur == MIG_DEV_RESUMING) {
        MigErr *err = NULL;
        if (!certify_set_state(c, d, MIG_DEV_RESUMING, "arc-table"))
            goto out;
        if (mig_device_write(d, stream.p, stream.len, &err) < 0) {
            certify_fail_err(c, "round-trip", err, "write");
            goto out;
        }
    } else if (!certify_set_state(c, d, cur, "arc-table")) {
        goto out;
    }
    MigDevState real = MIG_DEV_ERROR;
    /* 1. the device refuses a pair that is not one of its arcs */
    if (cur != tgt && !mig_dev_arc_allowed(cur, tgt, f)) {
        const char *rule = "non-arc-refused";
        if (cur == MIG_DEV_STOP_COPY && (tgt == MIG_DEV_PRE_COPY || tgt == MIG_DEV_PRE_COPY_P2P))
            rule = "stopcopy-to-precopy-refused";
        else if (cur == MIG_DEV_ERROR)
            rule = "error-refuses-arcs";
        else if (tgt == MIG_DEV_ERROR || !mig_dev_state_supported(tgt, f))
            rule = "invalid-state-refused";
        MigErr *err = NULL;
        int r = be->ops->arc(be, tgt, &err);
        mig_err_free(err);
        err = NULL;
        int g = be->ops->get_state(be, &real, &err);
        if (g < 0) {
            certify_fail_err(c, "plugin-crash", err, "get_state");
            goto out;
        }
        if (r >= 0 || real != cur) {
            certify_fail(c, rule, "the device %s %s -> %s (returned %s) and is now %s",
                 r >= 0 ? "accepted" : "refused", mig_dev_state_name(cur), mig_dev_state_name(tgt),
                 mig_errno_name(r), mig_dev_state_name(real));
            goto out;
        }
        if (!strcmp(rule, "stopcopy-to-precopy-refused") &&
            certify_drain(c, d, NULL, 0, "stopcopy-to-precopy-refused") != 0)
            goto out;
    }
    /* 2. a request executes exactly the golden path */
    MigDevState path[MIG_DEV_STATE__COUNT];
    size_t n = 0;
    int want = mig_dev_path(cur, tgt, f, path, &n);
    mig_device_arc_log_clear(d);
    MigErr *err = NULL;
    int r = mig_device_set_state(d, tgt, &err);
    MigDevState from[16], to[16];
    size_t got = mig_device_arc_log(d, from, to, 16);
    if (want < 0) {
        mig_err_free(err);
        if (r >= 0 || got)
            certify_fail(c, "invalid-state-refused", "%s -> %s was executed; expected EINVAL",
                 mig_dev_state_name(cur), mig_dev_state_name(tgt));
        goto out;
    }
    if (r < 0) {
        certify_fail_err(c, "arc-table", err, "request");
        goto out;
    }
    bool same = got == n;
    for (size_t i = 0; same && i < n; i++)
        same = to[i] == path[i];
    err = NULL;
    if (!same || be->ops->get_state(be, &real, &err) < 0 || real != tgt) {
        mig_err_free(err);
        certify_fail(
            c, "arc-table", "%s -> %s executed %zu arc(s), expected %zu; device reports %s",
            mig_dev_state_name(cur), mig_dev_state_name(tgt), got, n, mig_dev_state_name(real));
    }
out:
    free(stream.p);
    mig_device_free(d);
    mig_device_free(src);
    certify_sb_free(sb);
}

static void case_invalid_values(CertCtx *c, const CertCase *k)
{
    CertSandbox *sb = certify_open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *d = certify_open_dev(c, sb, k->fset, 1, SMALL_MEM);
    if (d) {
        MigDevBackend *be = mig_device_backend(d);
        const uint32_t bad[] = {8, 0xabcd, 0xffffffffu, MIG_DEV_ERROR};
        for (size_t i = 0; i < MIG_ARRAY_SIZE(bad); i++) {
            MigErr *err = NULL;
            int r = be->ops->arc(be, (MigDevState)bad[i], &err);
            const char *rule = certify_classify(err, "invalid-state-refused");
            if (strcmp(rule, "invalid-state-refused") != 0) {
                char what[64];
                snprintf(what, sizeof(what), "set_state(%u) from RUNNING", bad[i]);
                certify_fail_err(c, rule, err, what);
                break;
            }
            mig_err_free(err);
            err = NULL;
            MigDevState real = MIG_DEV_ERROR;
            if (be->ops->get_state(be, &real, &err) < 0) {
                certify_fail_err(c, certify_classify(err, "invalid-state-refused"), err,
                                 "get_state");
                break;
            }
            if (r >= 0 || real != MIG_DEV_RUNNING) {
                certify_fail(c, "invalid-state-refused",
                     "set_state(%u) from RUNNING returned %s, device now %s", bad[i],
                     mig_errno_name(r), mig_dev_state_name(real));
                break;
            }
        }
        mig_device_free(d);
    }
    certify_sb_free(sb);
}

static void case_precopy(CertCtx *c, const CertCase *k)
{
    CertSandbox *sb = certify_open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *d = certify_open_dev(c, sb, k->fset, 3, SMALL_MEM);
    if (!d || !certify_hooks(c, d))
        goto out;
    MigDevBackend *be = mig_device_backend(d);
    uint64_t ini, dirty, last;
    MigErr *err = NULL;
    int r = be->ops->precopy_info(be, &ini, &dirty, &err);
    mig_err_free(err);
    if (r != -EINVAL) {
        certify_fail(c, "precopy-info", "PRECOPY_INFO in RUNNING returned %s, expected EINVAL",
             mig_errno_name(r));
        goto out;
    }
    if (!certify_set_state(c, d, MIG_DEV_PRE_COPY, "arc-table"))
        goto out;
    err = NULL;
    if (mig_device_precopy_info(d, &ini, &dirty, &err) < 0) {
        certify_fail_err(c, "precopy-info", err, "precopy_info");
        goto out;
    }
    if (dirty != 0) {
        certify_fail(c, "pending-reaches-zero",
             "a new session reports %llu dirty bytes; pending dirty data starts at 0",
             (unsigned long long)dirty);
        goto out;
    }
    if (ini == 0) {
        certify_fail(c, "precopy-info", "a new session reports initial %llu, dirty %llu",
             (unsigned long long)ini, (unsigned long long)dirty);
        goto out;
    }
    last = ini;
    uint8_t buf[3000];
    for (;;) {
        err = NULL;
        ssize_t n = mig_device_read(d, buf, sizeof(buf), &err);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            certify_fail_err(c, "read-end-codes", err, "read");
            goto out;
        }
        if (mig_device_precopy_info(d, &ini, &dirty, NULL) < 0 || ini > last) {
            certify_fail(c, "precopy-info", "initial_bytes grew from %llu to %llu",
                 (unsigned long long)last, (unsigned long long)ini);
            goto out;
        }
        last = ini;
    }
    if (mig_device_precopy_info(d, &ini, &dirty, NULL) < 0 || ini + dirty != 0) {
        certify_fail(c, "pending-reaches-zero",
             "drained PRE_COPY with the guest idle still reports initial %llu, dirty %llu",
             (unsigned long long)ini, (unsigned long long)dirty);
        goto out;
    }
    if (be->ops->guest_run(be, 4, NULL) < 0 || mig_device_precopy_info(d, &ini, &dirty, NULL) < 0 ||
        dirty == 0 || ini != 0) {
        certify_fail(c, "precopy-info",
                     "after guest writes: initial %llu, dirty %llu (dirty must rise)",
                     (unsigned long long)ini, (unsigned long long)dirty);
        goto out;
    }
    ssize_t rr = certify_drain(c, d, NULL, 0, "read-end-codes");
    if (rr > 0 || rr == 0)
        certify_fail(c, "read-end-codes", "PRE_COPY read returned 0 (end) instead of ENOMSG");
out:
    mig_device_free(d);
    certify_sb_free(sb);
}

static void case_stop_copy_end(CertCtx *c, const CertCase *k)
{
    CertSandbox *sb = certify_open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *d = certify_open_dev(c, sb, k->fset, 4, SMALL_MEM);
    if (!d)
        goto out;
    uint64_t est = 0;
    MigErr *err = NULL;
    if (mig_device_data_size(d, &est, &err) < 0) {
        certify_fail_err(c, "arc-table", err, "data_size");
        goto out;
    }
    mig_device_set_stop_copy_limit(d, MIG_MAX(est * 4, (uint64_t)1 << 20));
    if (!certify_set_state(c, d, MIG_DEV_STOP, "arc-table") ||
        !certify_set_state(c, d, MIG_DEV_STOP_COPY, "arc-table"))
        goto out;
    if (certify_drain(c, d, NULL, 0, "pending-reaches-zero") != 0)
        goto out;
    uint8_t b[64];
    for (int i = 0; i < 3; i++) {
        err = NULL;
        ssize_t n = mig_device_read(d, b, sizeof(b), &err);
        if (n != 0) {
            certify_fail_err(c, "pending-reaches-zero", err, "read after the end");
            if (n > 0)
                certify_fail(c, "pending-reaches-zero", "read after the end returned %zd bytes", n);
            goto out;
        }
        mig_err_free(err);
    }
    certify_set_state(c, d, MIG_DEV_STOP, "arc-table");
out:
    mig_device_free(d);
    certify_sb_free(sb);
}

static void case_read_sizes(CertCtx *c, const CertCase *k)
{
    CertSandbox *sb = certify_open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *src = certify_open_dev(c, sb, k->fset, 5, SMALL_MEM);
    MigDevice *dst = certify_open_dev(c, sb, k->fset, 6, SMALL_MEM);
    if (!src || !dst || !certify_hooks(c, src))
        goto out;
    CertBuf s = {0};
    /* tiny and odd sizes: any record boundary falls inside a read */
    if (certify_save(c, src, &s, 8, 97)) {
        MigErr *err = NULL;
        uint64_t a, b;
        if (certify_load(c, dst, s.p, s.len, false, &err) < 0)
            certify_fail_err(c, "round-trip", err, "resume");
        else if (certify_digest(c, src, &a) && certify_digest(c, dst, &b) && a != b)
            certify_fail(c, "round-trip", "state read in small pieces resumes differently");
    }
    free(s.p);
out:
    mig_device_free(src);
    mig_device_free(dst);
    certify_sb_free(sb);
}

static void case_round_trip(CertCtx *c, const CertCase *k)
{
    CertSandbox *sb = certify_open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *src = certify_open_dev(c, sb, k->fset, 7, 0);
    MigDevice *dst = certify_open_dev(c, sb, k->fset, 8, 0);
    if (src && dst && certify_hooks(c, src)) {
        mig_device_backend(src)->ops->guest_run(mig_device_backend(src), 500, NULL);
        certify_migrate(c, src, dst, 300);
    }
    mig_device_free(src);
    mig_device_free(dst);
    certify_sb_free(sb);
}

enum { REJ_TRUNCATED, REJ_FLIPPED, REJ_CONCAT };

static void case_resume_rejects(CertCtx *c, const CertCase *k)
{
    CertSandbox *sb = certify_open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *src = certify_open_dev(c, sb, MIG_DEV_F_STOP_COPY, 9, SMALL_MEM);
    MigDevice *dst = certify_open_dev(c, sb, MIG_DEV_F_STOP_COPY, 10, SMALL_MEM);
    CertBuf s = {0};
    if (!src || !dst || !certify_save(c, src, &s, 0, 0))
        goto out;
    /* the variants: truncations (the short ones all, then spread and
     * random), single flipped bytes, or the stream twice */
    size_t cuts[160], ncuts = 0;
    if (k->a == REJ_CONCAT) {
        cuts[ncuts++] = 0;
    } else {
        for (size_t i = 0; i < 48 && i < s.len; i++)
            cuts[ncuts++] = i;
        for (size_t i = 1; i <= 48; i++)
            cuts[ncuts++] = s.len - MIG_MIN(i, s.len);
        while (ncuts < MIG_ARRAY_SIZE(cuts))
            cuts[ncuts++] = (size_t)mig_prng_below(&c->prng, s.len);
    }
    for (size_t i = 0; i < ncuts; i++) {
        CertBuf v = {0};
        const char *what;
        char desc[96];
        if (k->a == REJ_TRUNCATED) {
            certify_buf_add(&v, s.p, cuts[i]);
            snprintf(desc, sizeof(desc), "stream truncated to %zu of %zu bytes", cuts[i], s.len);
        } else if (k->a == REJ_FLIPPED) {
            certify_buf_add(&v, s.p, s.len);
            v.p[cuts[i]] ^= 0x10;
            snprintf(desc, sizeof(desc), "stream with byte %zu of %zu flipped", cuts[i], s.len);
        } else {
            certify_buf_add(&v, s.p, s.len);
            certify_buf_add(&v, s.p, s.len);
            snprintf(desc, sizeof(desc), "two streams back to back (%zu bytes)", v.len);
        }
        what = desc;
        MigErr *err = NULL;
        int r = certify_load(c, dst, v.p, v.len, false, &err);
        free(v.p);
        if (c->res->st == CERT_ST_FAIL) {
            mig_err_free(err);
            break;
        }
        if (err && strcmp(certify_classify(err, "x"), "x") != 0) {
            certify_fail_err(c, "resume-validates", err, what);
            break;
        }
        mig_err_free(err);
        MigDevState st = mig_device_state(dst);
        if (r >= 0 || (st != MIG_DEV_RESUMING && st != MIG_DEV_ERROR)) {
            certify_fail(c, "resume-validates", "%s: RESUMING -> STOP %s; device is %s", what,
                 r >= 0 ? "succeeded" : "failed", mig_dev_state_name(st));
            break;
        }
        err = NULL;
        if (mig_device_reset(dst, &err) < 0) {
            certify_fail_err(c, "reset-leaves-error", err, "reset after a refused resume");
            break;
        }
    }
out:
    free(s.p);
    mig_device_free(src);
    mig_device_free(dst);
    certify_sb_free(sb);
}

static void case_abort(CertCtx *c, const CertCase *k)
{
    MigDevState at = (MigDevState)k->a;
    uint32_t f = k->fset;
    CertSandbox *sb = certify_open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *d = certify_open_dev(c, sb, f, 11, SMALL_MEM);
    MigDevice *dst = certify_open_dev(c, sb, f, 12, SMALL_MEM);
    if (!d || !dst || !certify_hooks(c, d))
        goto out;
    MigDevBackend *be = mig_device_backend(d);
    be->ops->guest_run(be, 40, NULL);
    if (at == MIG_DEV_RESUMING) {
        /* a destination aborted mid-load is reset and usable again */
        if (!certify_set_state(c, d, MIG_DEV_RESUMING, "arc-table"))
            goto out;
        uint8_t junk[100] = {0};
        mig_device_write(d, junk, sizeof(junk), NULL);
        MigErr *err = NULL;
        if (mig_device_abort(d, &err) < 0 || mig_device_state(d) != MIG_DEV_RUNNING) {
            certify_fail_err(c, "reset-leaves-error", err, "abort of RESUMING");
            goto out;
        }
        mig_err_free(err);
        certify_migrate(c, d, dst, 20);
        goto out;
    }
    if (at == MIG_DEV_PRE_COPY || at == MIG_DEV_PRE_COPY_P2P || at == MIG_DEV_STOP_COPY) {
        if (f & MIG_DEV_F_PRE_COPY) {
            if (!certify_set_state(c, d, MIG_DEV_PRE_COPY, "arc-table"))
                goto out;
            uint8_t b[5000];
            mig_device_read(d, b, sizeof(b), NULL);
            be->ops->guest_run(be, 40, NULL); /* writes during the session */
        }
    }
    if (!certify_set_state(c, d, at, "arc-table"))
        goto out;
    if (at == MIG_DEV_STOP_COPY) {
        uint8_t b[5000];
        mig_device_read(d, b, sizeof(b), NULL);
    }
    uint64_t before, after;
    if (!certify_digest(c, d, &before))
        goto out;
    MigErr *err = NULL;
    if (mig_device_abort(d, &err) < 0) {
        certify_fail_err(c, "abort-keeps-state", err, "abort");
        goto out;
    }
    if (mig_device_state(d) != MIG_DEV_RUNNING) {
        certify_fail(c, "abort-keeps-state", "after abort the device is %s",
             mig_dev_state_name(mig_device_state(d)));
        goto out;
    }
    if (!certify_digest(c, d, &after))
        goto out;
    if (before != after) {
        certify_fail(c, "abort-keeps-state", "aborting from %s changed the device state",
             mig_dev_state_name(at));
        goto out;
    }
    /* nothing lost: a new session carries everything */
    if (!certify_migrate(c, d, dst, 20) && c->res->st == CERT_ST_FAIL)
        c->res->rule = strcmp(c->res->rule, "round-trip") ? c->res->rule : "abort-keeps-state";
out:
    mig_device_free(d);
    mig_device_free(dst);
    certify_sb_free(sb);
}

static void case_error_reset(CertCtx *c, const CertCase *k)
{
    CertSandbox *sb = certify_open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *d = certify_open_dev(c, sb, k->fset, 13, SMALL_MEM);
    MigDevice *dst = certify_open_dev(c, sb, k->fset, 14, SMALL_MEM);
    if (!d || !dst)
        goto out;
    MigDevBackend *be = mig_device_backend(d);
    MigErr *err = NULL;
    int fr = be->ops->force_error(be, &err);
    if (fr == -ENOTSUP) {
        mig_err_free(err);
        certify_skip(c, "the plugin has no force_error test hook");
        goto out;
    }
    if (fr < 0) {
        certify_fail_err(c, certify_classify(err, "error-refuses-arcs"), err, "force_error");
        goto out;
    }
    mig_err_free(err);
    MigDevState real = MIG_DEV_ERROR;
    for (int s = 0; s < MIG_DEV_STATE__COUNT; s++) {
        err = NULL;
        int r = be->ops->arc(be, (MigDevState)s, &err);
        const char *rule = certify_classify(err, "error-refuses-arcs");
        if (strcmp(rule, "error-refuses-arcs") != 0) {
            char what[64];
            snprintf(what, sizeof(what), "arc to %s in ERROR", mig_dev_state_name((MigDevState)s));
            certify_fail_err(c, rule, err, what);
            goto out;
        }
        mig_err_free(err);
        err = NULL;
        if (be->ops->get_state(be, &real, &err) < 0) {
            certify_fail_err(c, certify_classify(err, "error-refuses-arcs"), err, "get_state");
            goto out;
        }
        if (r >= 0 || real != MIG_DEV_ERROR) {
            certify_fail(c, "error-refuses-arcs",
                         "in ERROR the device %s the arc to %s and is now %s",
                         r >= 0 ? "accepted" : "refused", mig_dev_state_name((MigDevState)s),
                         mig_dev_state_name(real));
            goto out;
        }
    }
    err = NULL;
    if (mig_device_reset(d, &err) < 0) {
        certify_fail_err(c, "reset-leaves-error", err, "reset");
        goto out;
    }
    if (be->ops->get_state(be, &real, NULL) < 0 || real != MIG_DEV_RUNNING) {
        certify_fail(c, "reset-leaves-error", "after reset the device is %s",
                     mig_dev_state_name(real));
        goto out;
    }
    if (certify_hooks(c, d))
        certify_migrate(c, d, dst, 10);
out:
    mig_device_free(d);
    mig_device_free(dst);
    certify_sb_free(sb);
}

/* Arm a failure of plugin callback k->a (below the engine's backends and
 * the v1 adapter), run the part of a migration that calls it, then check:
 * the failure fired; it was reported (or absorbed with the state intact);
 * the devices recover (source back to RUNNING with its state, destination
 * reset) and a retried migration carries everything. */
static void case_fault(CertCtx *c, const CertCase *k)
{
    CbId cb = (CbId)k->a;
    CertSandbox *sb = certify_open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *src = certify_open_dev(c, sb, k->fset, 15, SMALL_MEM);
    MigDevice *dst = certify_open_dev(c, sb, k->fset, 16, SMALL_MEM);
    if (!src || !dst || !certify_hooks(c, src))
        goto out;
    mig_device_backend(src)->ops->guest_run(mig_device_backend(src), 30, NULL);
    uint64_t before, after;
    if (!certify_digest(c, src, &before))
        goto out;
    MigErr *err = NULL;
    if (certify_sb_call(sb, SB_FAULT, 0, cb, 0, NULL, 0, NULL, NULL, 0, &err) < 0) {
        certify_fail_err(c, "plugin-crash", err, "arming the fault");
        goto out;
    }
    CertResult saved = *c->res;
    bool ok = false;
    char how[512] = "";
    const char *exercise = "a migration";
    if (cb == CB_CREATE) {
        exercise = "creating a device";
        MigDevice *x = certify_sb_device(sb, k->fset, 19, SMALL_MEM, &err);
        ok = x != NULL;
        mig_device_free(x);
        snprintf(how, sizeof(how), "%s", err && err->msg ? err->msg : "");
        mig_err_free(err);
        err = NULL;
    } else if (cb == CB_RESET) {
        /* a destination aborted in the middle of a resume is reset */
        exercise = "aborting a destination that is RESUMING";
        if (certify_set_state(c, dst, MIG_DEV_RESUMING, "arc-table")) {
            uint8_t junk[64] = {0};
            mig_device_write(dst, junk, sizeof(junk), NULL);
            ok = mig_device_abort(dst, &err) == 0;
            snprintf(how, sizeof(how), "%s", err && err->msg ? err->msg : "");
            mig_err_free(err);
            err = NULL;
        }
    } else {
        ok = certify_migrate(c, src, dst, 0);
        snprintf(how, sizeof(how), "%s", c->res->msg);
    }
    int64_t fired = certify_sb_call(sb, SB_FAULT_STATUS, 0, 0, 0, NULL, 0, NULL, NULL, 0, NULL);
    if (c->death[0]) {
        if (c->res->st != CERT_ST_FAIL)
            certify_fail(c, "plugin-crash", "after the injected failure of %s",
                         certify_cb_names[cb]);
        goto out;
    }
    if (fired <= 0) {
        if (c->res->st == CERT_ST_FAIL)
            goto out; /* another rule broke first: report that one */
        certify_fail(c, "fault-reached",
                     "the failure armed in %s never fired: %s did not call it%s%s",
                     certify_cb_names[cb], exercise, how[0] ? "; " : "", how);
        goto out;
    }
    *c->res = saved;
    if (ok) {
        if (cb == CB_RESET || cb == CB_CREATE) {
            certify_fail(c, "fault-recovery", "%s succeeded although its %s failed", exercise,
                 certify_cb_names[cb]);
            goto out;
        }
        /* absorbed: certify_migrate() compared the states */
        snprintf(c->res->note, sizeof(c->res->note),
                 "the failure of %s fired and was absorbed; the migration completed intact",
                 certify_cb_names[cb]);
        goto out;
    }
    snprintf(c->res->note, sizeof(c->res->note), "the failure of %s fired and was reported: %.180s",
             certify_cb_names[cb], how[0] ? how : "(no message)");
    /* back out like the engine does: source to RUNNING, destination reset */
    err = NULL;
    if (mig_device_abort(src, &err) < 0) {
        certify_fail_err(c, "fault-recovery", err, "abort after the failure");
        goto out;
    }
    err = NULL;
    if (mig_device_abort(dst, &err) < 0) {
        certify_fail_err(c, "fault-recovery", err, "destination reset after the failure");
        goto out;
    }
    if (!certify_digest(c, src, &after))
        goto out;
    if (before != after) {
        certify_fail(c, "abort-keeps-state", "after a failed %s and abort the source state changed",
             certify_cb_names[cb]);
        goto out;
    }
    /* and the migration retried succeeds */
    if (!certify_migrate(c, src, dst, 10) && c->res->st == CERT_ST_FAIL &&
        !strcmp(c->res->rule, "round-trip"))
        c->res->rule = "fault-recovery";
out:
    mig_device_free(src);
    mig_device_free(dst);
    certify_sb_free(sb);
}

/* The optional vmstate description: absent, or a -dump-vmstate entry.  A
 * malformed one already stops the plugin from loading (open_sb reports it
 * under this rule); here the text is fetched and checked again. */
static void case_vmstate(CertCtx *c, const CertCase *k)
{
    CertSandbox *sb = certify_open_sb(c, c->dev_path);
    if (!sb)
        return;
    size_t cap = 1u << 20;
    char *text = mig_malloc0(cap + 1);
    SbResp r = {0};
    MigErr *err = NULL;
    int64_t rc = certify_sb_call(sb, SB_VMSTATE, 0, 0, 0, NULL, 0, &r, text, cap, &err);
    if (rc < 0) {
        certify_fail_err(c, certify_classify(err, "vmstate-description"), err,
                         "vmstate description");
    } else if (rc == 0) {
        snprintf(c->res->note, sizeof(c->res->note), "the plugin has no vmstate description");
    } else if (r.len > cap) {
        certify_fail(c, "vmstate-description", "the vmstate description is longer than %zu bytes",
                     cap);
    } else {
        text[r.len] = 0;
        err = NULL;
        if (mig_dev_plugin_check_vmstate(text, sb->label, &err) < 0) {
            certify_fail_err(c, "vmstate-description", err, "vmstate description");
        } else {
            json_t *j = json_loads(text, 0, NULL);
            snprintf(c->res->note, sizeof(c->res->note),
                     "a -dump-vmstate entry for \"%s\" version %lld, %zu field(s)",
                     json_string_value(json_object_get(j, "Name")),
                     (long long)json_integer_value(json_object_get(j, "version_id")),
                     json_array_size(json_object_get(json_object_get(j, "Description"),
                                                     "Fields")));
            json_decref(j);
        }
    }
    free(text);
    certify_sb_free(sb);
}

static void case_peer(CertCtx *c, const CertCase *k)
{
    const char *sp = k->a ? c->peer_path : c->dev_path;
    const char *dp = k->a ? c->dev_path : c->peer_path;
    uint32_t sf = k->a ? c->peer_features : c->features;
    uint32_t df = k->a ? c->features : c->peer_features;
    uint32_t sproto = k->a ? c->peer_protocol : c->protocol;
    uint32_t dproto = k->a ? c->protocol : c->peer_protocol;
    if (sproto != dproto) {
        certify_fail(c, "peer-compatible",
             "%s speaks protocol v%u and %s speaks v%u: the stream of a v%u device cannot "
             "resume on a v%u device, so these two cannot migrate to each other",
             certify_base_name(sp), sproto, certify_base_name(dp), dproto, sproto, dproto);
        return;
    }
    CertSandbox *ss = certify_open_sb(c, sp);
    CertSandbox *ds = ss ? certify_open_sb(c, dp) : NULL;
    MigDevice *src = ds ? certify_open_dev(c, ss, sf, 17, 0) : NULL;
    MigDevice *dst = src ? certify_open_dev(c, ds, df, 18, 0) : NULL;
    if (src && dst && certify_hooks(c, src)) {
        mig_device_backend(src)->ops->guest_run(mig_device_backend(src), 200, NULL);
        certify_migrate(c, src, dst, 100);
    }
    mig_device_free(src);
    mig_device_free(dst);
    certify_sb_free(ss);
    certify_sb_free(ds);
}

/* ---- case list ---- */

static const uint32_t fsets[] = {MIG_DEV_F_STOP_COPY, MIG_DEV_F_STOP_COPY | MIG_DEV_F_P2P,
                                 MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY, MIG_DEV_F_ALL};

static const char *fset_tag(uint32_t f)
{
    switch (f) {
    case MIG_DEV_F_STOP_COPY:
        return "SC";
    case MIG_DEV_F_STOP_COPY | MIG_DEV_F_P2P:
        return "SC+P2P";
    case MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY:
        return "SC+PRE";
    default:
        return "SC+P2P+PRE";
    }
}

static CertCase *add(CertCase **v, size_t *n, void (*fn)(CertCtx *, const CertCase *),
                     uint32_t fset, int a, int b, const char *fmt, ...) MIG_PRINTF(7, 8);
static CertCase *add(CertCase **v, size_t *n, void (*fn)(CertCtx *, const CertCase *),
                     uint32_t fset, int a, int b, const char *fmt, ...)
{
    *v = mig_realloc(*v, (*n + 1) * sizeof(**v));
    CertCase *k = &(*v)[(*n)++];
    memset(k, 0, sizeof(*k));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->name, sizeof(k->name), fmt, ap);
    va_end(ap);
    k->fn = fn;
    k->fset = fset;
    k->a = a;
    k->b = b;
    return k;
}

size_t certify_build_cases(CertCase **v, uint32_t features, uint32_t callbacks,
                           const char *peer_stem, const char *stem)
{
    size_t n = 0;
    add(v, &n, case_load, features, 0, 0, "load");
    add(v, &n, case_vmstate, features, 0, 0, "vmstate-description");
    for (size_t i = 0; i < MIG_ARRAY_SIZE(fsets); i++) {
        uint32_t f = fsets[i];
        if (f & ~features)
            continue;
        for (int cur = 0; cur < MIG_DEV_STATE__COUNT; cur++) {
            if (cur != MIG_DEV_ERROR && !mig_dev_state_supported(cur, f))
                continue;
            for (int tgt = 0; tgt < MIG_DEV_STATE__COUNT; tgt++)
                add(v, &n, case_transition, f, cur, tgt, "transition.%s.%s.%s", fset_tag(f),
                    mig_dev_state_name(cur), mig_dev_state_name(tgt));
        }
    }
    add(v, &n, case_invalid_values, features, 0, 0, "invalid-values");
    for (size_t i = 0; i < MIG_ARRAY_SIZE(fsets); i++) {
        uint32_t f = fsets[i];
        if (f & ~features)
            continue;
        if (f & MIG_DEV_F_PRE_COPY)
            add(v, &n, case_precopy, f, 0, 0, "precopy.%s", fset_tag(f));
        add(v, &n, case_stop_copy_end, f, 0, 0, "stop-copy-end.%s", fset_tag(f));
        add(v, &n, case_read_sizes, f, 0, 0, "read-sizes.%s", fset_tag(f));
        add(v, &n, case_round_trip, f, 0, 0, "round-trip.%s", fset_tag(f));
    }
    add(v, &n, case_resume_rejects, features, REJ_TRUNCATED, 0, "resume-rejects.truncated");
    add(v, &n, case_resume_rejects, features, REJ_FLIPPED, 0, "resume-rejects.flipped");
    add(v, &n, case_resume_rejects, features, REJ_CONCAT, 0, "resume-rejects.concatenated");
    for (int s = 1; s < MIG_DEV_STATE__COUNT; s++)
        if (mig_dev_state_supported(s, features))
            add(v, &n, case_abort, features, s, 0, "abort.%s", mig_dev_state_name(s));
    add(v, &n, case_error_reset, features, 0, 0, "error-reset");
    /* every callback the plugin has (v1 callbacks only for a v1 table) */
    for (int cb = 0; cb < CB__COUNT; cb++)
        if (callbacks & (1u << cb))
            add(v, &n, case_fault, features, cb, 0, "fault.%s", certify_cb_names[cb]);
    if (peer_stem) {
        /* the same stem on both sides still gives two names */
        char other[128];
        snprintf(other, sizeof(other), "%s%s", peer_stem, strcmp(stem, peer_stem) ? "" : "-peer");
        add(v, &n, case_peer, features, 0, 0, "peer.%s-to-%s", stem, other)->uses_peer = true;
        add(v, &n, case_peer, features, 1, 0, "peer.%s-to-%s", other, stem)->uses_peer = true;
    }
    return n;
}

/* -k PAT: a case name exactly (when some case has that name: the REPRO
 * lines rerun one case), else a glob, else a substring. */
bool certify_selected(const char *name, const char *pat, bool exact)
{
    if (!pat)
        return true;
    if (exact)
        return !strcmp(name, pat);
    return !fnmatch(pat, name, 0) || strstr(name, pat) != NULL;
}
