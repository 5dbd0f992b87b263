/*
 * certify-proxy.c - the proxy backend of `migcert certify`: a MigDevBackend
 * (impl/device) whose every operation is one call to a sandbox
 * (certify-sandbox.c), so the parent drives a plugin through MigDevice
 * exactly as the engine does and the engine's own checks apply.  Writes
 * larger than one sandbox payload go in pieces; freeing the backend
 * destroys the plugin's instance in the child.
 */
#include <stdio.h>
#include <stdlib.h>

#include "certify-internal.h"

typedef struct ProxyBackend {
    MigDevBackend base;
    CertSandbox *sb;
    uint32_t inst;
} ProxyBackend;

static ProxyBackend *px(MigDevBackend *b) { return (ProxyBackend *)b; }

static int64_t px_call(MigDevBackend *b, uint32_t op, uint64_t a, SbResp *r, MigErr **errp)
{
    return certify_sb_call(px(b)->sb, op, px(b)->inst, a, 0, NULL, 0, r, NULL, 0, errp);
}

static int px_arc(MigDevBackend *b, MigDevState to, MigErr **errp)
{
    return (int)px_call(b, SB_ARC, (uint64_t)(uint32_t)to, NULL, errp);
}

static int px_get_state(MigDevBackend *b, MigDevState *out, MigErr **errp)
{
    SbResp r = {0};
    int64_t rc = px_call(b, SB_GET_STATE, 0, &r, errp);
    if (rc >= 0)
        *out = (MigDevState)r.x;
    return (int)rc;
}

static ssize_t px_read(MigDevBackend *b, void *buf, size_t len, MigErr **errp)
{
    SbResp r = {0};
    return (ssize_t)certify_sb_call(px(b)->sb, SB_READ, px(b)->inst, len, 0, NULL, 0, &r, buf, len,
                                    errp);
}

static ssize_t px_write(MigDevBackend *b, const void *buf, size_t len, MigErr **errp)
{
    size_t done = 0;
    while (done < len) {
        uint32_t k = (uint32_t)MIG_MIN(len - done, (size_t)SB_MAX_PAYLOAD);
        int64_t rc = certify_sb_call(px(b)->sb, SB_WRITE, px(b)->inst, 0, 0,
                                     (const uint8_t *)buf + done, k, NULL, NULL, 0, errp);
        if (rc < 0)
            return (ssize_t)rc;
        if (rc == 0 || (uint64_t)rc > k)
            return done ? (ssize_t)done : (ssize_t)rc;
        done += (size_t)rc;
    }
    return (ssize_t)done;
}

static int px_precopy_info(MigDevBackend *b, uint64_t *ini, uint64_t *dirty, MigErr **errp)
{
    SbResp r = {0};
    int64_t rc = px_call(b, SB_PRECOPY_INFO, 0, &r, errp);
    if (rc >= 0) {
        *ini = r.x;
        *dirty = r.y;
    }
    return (int)rc;
}

static int px_data_size(MigDevBackend *b, uint64_t *len, MigErr **errp)
{
    SbResp r = {0};
    int64_t rc = px_call(b, SB_DATA_SIZE, 0, &r, errp);
    if (rc >= 0)
        *len = r.x;
    return (int)rc;
}

static int px_reset(MigDevBackend *b, MigErr **errp)
{
    return (int)px_call(b, SB_RESET, 0, NULL, errp);
}

static int px_guest_run(MigDevBackend *b, uint32_t ops, MigErr **errp)
{
    return (int)px_call(b, SB_GUEST_RUN, ops, NULL, errp);
}

static int px_digest(MigDevBackend *b, uint64_t *out, MigErr **errp)
{
    SbResp r = {0};
    int64_t rc = px_call(b, SB_DIGEST, 0, &r, errp);
    if (rc >= 0)
        *out = r.x;
    return (int)rc;
}

static int px_force_error(MigDevBackend *b, MigErr **errp)
{
    return (int)px_call(b, SB_FORCE_ERROR, 0, NULL, errp);
}

static void px_free(MigDevBackend *b)
{
    px_call(b, SB_DESTROY, 0, NULL, NULL);
    free(b);
}

static const MigDevBackendOps proxy_ops = {
    .arc = px_arc,
    .get_state = px_get_state,
    .read = px_read,
    .write = px_write,
    .precopy_info = px_precopy_info,
    .data_size = px_data_size,
    .reset = px_reset,
    .guest_run = px_guest_run,
    .digest = px_digest,
    .force_error = px_force_error,
    .free = px_free,
};

MigDevice *certify_sb_device(CertSandbox *sb, uint32_t features, uint64_t seed, uint64_t mem,
                            MigErr **errp)
{
    int64_t id = certify_sb_call(sb, SB_CREATE, 0, features, seed, &mem, 8, NULL, NULL, 0, errp);
    if (id < 0)
        return NULL;
    ProxyBackend *b = mig_malloc0(sizeof(*b));
    b->base.ops = &proxy_ops;
    snprintf(b->base.name, sizeof(b->base.name), "%.63s", sb->label);
    b->base.features = features;
    b->sb = sb;
    b->inst = (uint32_t)id;
    return mig_device_new(sb->label, &b->base, errp);
}
