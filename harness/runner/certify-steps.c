/*
 * certify-steps.c - the steps the `migcert certify` cases share
 * (certify-internal.h): open a sandbox and a device on it, enter a state,
 * drain the device's data, the source and destination halves of a
 * migration, and a whole migration compared by the plugin's state digest.
 * A step that fails has failed the case (certify_fail) when it returns,
 * so the case only stops.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certify-internal.h"

CertSandbox *certify_open_sb(CertCtx *c, const char *path)
{
    MigErr *err = NULL;
    CertSandbox *sb = certify_sb_spawn(path, c->timeout_s, &err);
    if (sb) {
        sb->death_sink = c->death;
        sb->hung = path == c->peer_path ? &c->peer_hung : &c->dev_hung;
        if (sb->dead) {
            /* died during HELLO, before the sink was there */
            snprintf(c->death, sizeof(c->death), "%s", sb->death);
            if (strstr(sb->death, " timed out after "))
                *sb->hung = true;
        }
    }
    if (!sb || sb->dead || err) {
        const char *rule = "load";
        if (err && strstr(err->msg, "vmstate description"))
            rule = "vmstate-description";
        certify_fail_err(c, rule, err, "load");
        certify_sb_free(sb);
        return NULL;
    }
    return sb;
}

MigDevice *certify_open_dev(CertCtx *c, CertSandbox *sb, uint32_t f, uint64_t seed, uint64_t mem)
{
    MigErr *err = NULL;
    MigDevice *d = certify_sb_device(sb, f, seed, mem, &err);
    if (!d) {
        certify_fail_err(c, "load", err, "create");
        return NULL;
    }
    /* bound STOP_COPY reads by the device's own estimate */
    uint64_t est = 0;
    if (mig_device_data_size(d, &est, NULL) == 0 && est > 0) /* 0: no estimate (v1) */
        mig_device_set_stop_copy_limit(d, MIG_MAX(est * 4, (uint64_t)256 << 10));
    return d;
}

bool certify_set_state(CertCtx *c, MigDevice *d, MigDevState s, const char *rule)
{
    MigErr *err = NULL;
    if (mig_device_set_state(d, s, &err) < 0) {
        char what[64];
        snprintf(what, sizeof(what), "enter %s", mig_dev_state_name(s));
        certify_fail_err(c, rule, err, what);
        return false;
    }
    return true;
}

bool certify_hooks(CertCtx *c, MigDevice *d)
{
    uint64_t x;
    MigDevBackend *be = mig_device_backend(d);
    MigErr *err = NULL;
    int r = be->ops->digest(be, &x, &err);
    mig_err_free(err);
    if (r == -ENOTSUP) {
        certify_skip(c, "the plugin has no digest/guest_run test hooks");
        return false;
    }
    return r >= 0;
}


void certify_buf_add(CertBuf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 4096;
        b->p = mig_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* Read until nothing now (-EAGAIN) or the end (0); sizes from the PRNG up to
 * `max` (0 = 64 KiB).  Returns the last result (-EAGAIN or 0), or -1 after
 * certify_fail(). */
ssize_t certify_drain(CertCtx *c, MigDevice *d, CertBuf *out, size_t max, const char *rule)
{
    static uint8_t tmp[1 << 16];
    if (!max || max > sizeof(tmp))
        max = sizeof(tmp);
    for (;;) {
        size_t len = 1 + (size_t)mig_prng_below(&c->prng, max);
        MigErr *err = NULL;
        ssize_t n = mig_device_read(d, tmp, len, &err);
        if (n == -EAGAIN || n == 0) {
            mig_err_free(err);
            return n;
        }
        if (n < 0) {
            certify_fail_err(c, rule, err, "read");
            return -1;
        }
        if (out)
            certify_buf_add(out, tmp, (size_t)n);
    }
}

/* The source half: pre-copy passes with the guest writing, then
 * stop-and-copy to the end.  The device ends in STOP. */
bool certify_save(CertCtx *c, MigDevice *d, CertBuf *out, uint32_t dirty_ops, size_t max_read)
{
    MigDevBackend *be = mig_device_backend(d);
    MigErr *err = NULL;
    uint64_t est = 0;
    if (mig_device_data_size(d, &est, &err) < 0) {
        certify_fail_err(c, "fault-recovery", err, "data_size");
        return false;
    }
    if (est > 0)
        mig_device_set_stop_copy_limit(d, MIG_MAX(est * 4, (uint64_t)256 << 10));
    if (mig_device_features(d) & MIG_DEV_F_PRE_COPY) {
        if (!certify_set_state(c, d, MIG_DEV_PRE_COPY, "arc-table"))
            return false;
        for (int pass = 0; pass < 3; pass++) {
            ssize_t r = certify_drain(c, d, out, max_read, "round-trip");
            if (r == -1)
                return false;
            if (r == 0) {
                certify_fail(c, "read-end-codes", "read returned 0 (end) in PRE_COPY");
                return false;
            }
            uint64_t ini, dirty;
            if (mig_device_precopy_info(d, &ini, &dirty, &err) < 0) {
                certify_fail_err(c, "precopy-info", err, "precopy_info");
                return false;
            }
            if (dirty_ops && be->ops->guest_run(be, dirty_ops, NULL) < 0) {
                certify_fail(c, "round-trip", "guest_run refused in PRE_COPY");
                return false;
            }
        }
    } else if (dirty_ops) {
        be->ops->guest_run(be, dirty_ops, NULL);
    }
    if (!certify_set_state(c, d, MIG_DEV_STOP_COPY, "arc-table"))
        return false;
    ssize_t r = certify_drain(c, d, out, max_read, "pending-reaches-zero");
    if (r == -1)
        return false;
    return certify_set_state(c, d, MIG_DEV_STOP, "arc-table");
}

/* The destination half: RESUMING, writes in random segments, STOP, RUNNING. */
int certify_load(CertCtx *c, MigDevice *d, const uint8_t *p, size_t len, bool segmented,
                 MigErr **errp)
{
    int r = mig_device_set_state(d, MIG_DEV_RESUMING, errp);
    if (r < 0)
        return r;
    size_t off = 0;
    while (off < len) {
        size_t k = len - off;
        /* (MIG_MIN evaluates its arguments twice: draw first) */
        size_t seg = off < 64 ? 1 : 1 + (size_t)mig_prng_below(&c->prng, 100000);
        if (segmented)
            k = MIG_MIN(k, seg);
        r = mig_device_write(d, p + off, k, errp);
        if (r < 0)
            return r;
        off += k;
    }
    return mig_device_set_state(d, MIG_DEV_STOP, errp);
}

bool certify_digest(CertCtx *c, MigDevice *d, uint64_t *out)
{
    MigDevBackend *be = mig_device_backend(d);
    MigErr *err = NULL;
    if (be->ops->digest(be, out, &err) < 0) {
        certify_fail_err(c, "round-trip", err, "digest");
        return false;
    }
    return true;
}

/* A whole migration src -> dst, compared. */
bool certify_migrate(CertCtx *c, MigDevice *src, MigDevice *dst, uint32_t dirty_ops)
{
    CertBuf s = {0};
    bool ok = certify_save(c, src, &s, dirty_ops, 0);
    uint64_t ds, dd;
    MigErr *err = NULL;
    if (ok && certify_load(c, dst, s.p, s.len, true, &err) < 0) {
        certify_fail_err(c, "round-trip", err, "resume");
        ok = false;
    }
    if (ok)
        ok = certify_set_state(c, dst, MIG_DEV_RUNNING, "arc-table");
    if (ok && certify_digest(c, src, &ds) && certify_digest(c, dst, &dd) && ds != dd) {
        certify_fail(c, "round-trip",
                     "resumed state differs from the saved state (digest %016llx vs %016llx)",
                     (unsigned long long)dd, (unsigned long long)ds);
        ok = false;
    }
    free(s.p);
    if (!ok && c->res->st != CERT_ST_FAIL)
        certify_fail(c, "round-trip", "the migration stopped without a reason (harness bug)");
    return ok && c->res->st != CERT_ST_FAIL;
}
