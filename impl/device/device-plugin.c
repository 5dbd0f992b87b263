/*
 * device-plugin.c - the vendor ABI loader (dlopen) and the in-process v2
 * backend over a plugin table.
 *
 * The loader refuses, naming the file and both versions, any table whose
 * abi_version is not MIGCERT_DEVICE_ABI_VERSION: an older one may lay its
 * members out differently, a newer one may rely on behaviour this build does
 * not have.  A table shorter than the members its protocol needs is refused
 * too.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"

/* Size of the table up to and including member m. */
#define TABLE_NEEDS(m) (offsetof(MigcertDevicePlugin, m) + sizeof(((MigcertDevicePlugin *)0)->m))

int mig_dev_plugin_check(const MigcertDevicePlugin *p, const char *label, MigErr **errp)
{
    if (!p)
        return mig_err_set(errp, -EINVAL, "plugin %s: the plugin function returned NULL", label);
    if (p->abi_version != MIGCERT_DEVICE_ABI_VERSION)
        return mig_err_set(errp, -ENOTSUP,
                           "plugin %s: ABI version %u is not supported (this migcert speaks "
                           "ABI version %u)",
                           label, p->abi_version, MIGCERT_DEVICE_ABI_VERSION);
    if (p->struct_size < TABLE_NEEDS(data_size))
        return mig_err_set(errp, -ENOTSUP, "plugin %s: table of %u bytes is too short (need %zu)",
                           label, p->struct_size, TABLE_NEEDS(data_size));
    if (!p->name || !p->create || !p->destroy || !p->reset || !p->get_state)
        return mig_err_set(errp, -EINVAL,
                           "plugin %s: name, create, destroy, reset and get_state are mandatory",
                           label);
    if (p->protocol == MIGCERT_PROTOCOL_V2) {
        if (!p->set_state || !p->read || !p->write || !p->data_size)
            return mig_err_set(errp, -EINVAL,
                               "plugin %s: a v2 plugin needs set_state, read, write, data_size",
                               label);
        if (!mig_dev_features_valid(p->features))
            return mig_err_set(errp, -EINVAL, "plugin %s: feature flags 0x%x are not a defined set",
                               label, p->features);
        if ((p->features & MIG_DEV_F_PRE_COPY) && !p->precopy_info)
            return mig_err_set(errp, -EINVAL,
                               "plugin %s: PRE_COPY is advertised but precopy_info is missing",
                               label);
    } else if (p->protocol == MIGCERT_PROTOCOL_V1) {
        if (p->struct_size < TABLE_NEEDS(v1_resume_chunk) || !p->v1_set_state ||
            !p->v1_pending_bytes || !p->v1_stage || !p->v1_resume_chunk)
            return mig_err_set(errp, -EINVAL,
                               "plugin %s: a v1 plugin needs v1_set_state, v1_pending_bytes, "
                               "v1_stage, v1_resume_chunk",
                               label);
    } else {
        return mig_err_set(errp, -ENOTSUP, "plugin %s: unknown protocol %u (known: 1, 2)", label,
                           p->protocol);
    }
    return 0;
}

const MigcertDevicePlugin *mig_dev_plugin_load(const char *path, void **handle, MigErr **errp)
{
    *handle = NULL;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        mig_err_set(errp, -ENOENT, "plugin %s: cannot load: %s", base, dlerror());
        return NULL;
    }
    dlerror();
    void *sym = dlsym(h, MIGCERT_DEVICE_PLUGIN_SYMBOL);
    if (!sym) {
        mig_err_set(errp, -ENOENT, "plugin %s: no symbol %s", base, MIGCERT_DEVICE_PLUGIN_SYMBOL);
        dlclose(h);
        return NULL;
    }
    MigcertDevicePluginFn fn;
    memcpy(&fn, &sym, sizeof(fn));
    const MigcertDevicePlugin *p = fn();
    if (mig_dev_plugin_check(p, base, errp) < 0) {
        dlclose(h);
        return NULL;
    }
    *handle = h;
    return p;
}

void mig_dev_plugin_close(void *handle)
{
    if (handle)
        dlclose(handle);
}

/* ---- the in-process v2 backend ---- */

typedef struct PluginBackend {
    MigDevBackend base;
    const MigcertDevicePlugin *p;
    MigcertDevice *dev;
} PluginBackend;

static PluginBackend *pb(MigDevBackend *b) { return (PluginBackend *)b; }

static int pb_arc(MigDevBackend *b, MigDevState to, MigErr **errp)
{
    return pb(b)->p->set_state(pb(b)->dev, (uint32_t)to);
}

static int pb_get_state(MigDevBackend *b, MigDevState *out, MigErr **errp)
{
    uint32_t s = pb(b)->p->get_state(pb(b)->dev);
    if (s >= MIG_DEV_STATE__COUNT)
        return mig_err_set(errp, -EPROTO, "get_state returned %u, not a state", s);
    *out = (MigDevState)s;
    return 0;
}

static ssize_t pb_read(MigDevBackend *b, void *buf, size_t len, MigErr **errp)
{
    return pb(b)->p->read(pb(b)->dev, buf, len);
}

static ssize_t pb_write(MigDevBackend *b, const void *buf, size_t len, MigErr **errp)
{
    return pb(b)->p->write(pb(b)->dev, buf, len);
}

static int pb_precopy_info(MigDevBackend *b, uint64_t *initial, uint64_t *dirty, MigErr **errp)
{
    if (!pb(b)->p->precopy_info)
        return -EINVAL;
    return pb(b)->p->precopy_info(pb(b)->dev, initial, dirty);
}

static int pb_data_size(MigDevBackend *b, uint64_t *len, MigErr **errp)
{
    return pb(b)->p->data_size(pb(b)->dev, len);
}

static int pb_reset(MigDevBackend *b, MigErr **errp) { return pb(b)->p->reset(pb(b)->dev); }

static int pb_guest_run(MigDevBackend *b, uint32_t ops, MigErr **errp)
{
    return pb(b)->p->guest_run ? pb(b)->p->guest_run(pb(b)->dev, ops) : -ENOTSUP;
}

static int pb_digest(MigDevBackend *b, uint64_t *out, MigErr **errp)
{
    return pb(b)->p->digest ? pb(b)->p->digest(pb(b)->dev, out) : -ENOTSUP;
}

static int pb_force_error(MigDevBackend *b, MigErr **errp)
{
    return pb(b)->p->force_error ? pb(b)->p->force_error(pb(b)->dev) : -ENOTSUP;
}

static void pb_free(MigDevBackend *b)
{
    pb(b)->p->destroy(pb(b)->dev);
    free(b);
}

static const MigDevBackendOps plugin_backend_ops = {
    .arc = pb_arc,
    .get_state = pb_get_state,
    .read = pb_read,
    .write = pb_write,
    .precopy_info = pb_precopy_info,
    .data_size = pb_data_size,
    .reset = pb_reset,
    .guest_run = pb_guest_run,
    .digest = pb_digest,
    .force_error = pb_force_error,
    .free = pb_free,
};

MigDevBackend *mig_dev_backend_plugin_new(const MigcertDevicePlugin *p,
                                          const MigcertDeviceConfig *cfg, const char *label,
                                          MigErr **errp)
{
    if (!label)
        label = p && p->name ? p->name : "?";
    if (mig_dev_plugin_check(p, label, errp) < 0)
        return NULL;
    if (p->protocol == MIGCERT_PROTOCOL_V1)
        return mig_dev_backend_v1_new(p, cfg, label, errp);
    if (!mig_dev_features_valid(cfg->features) || (cfg->features & ~p->features)) {
        mig_err_set(errp, -ENOTSUP, "plugin %s: feature set %s is not offered (device has %s)",
                    label, mig_dev_features_name(cfg->features), mig_dev_features_name(p->features));
        return NULL;
    }
    errno = 0;
    MigcertDevice *dev = p->create(cfg);
    if (!dev) {
        mig_err_set(errp, errno ? -errno : -EINVAL, "plugin %s: create refused the configuration",
                    label);
        return NULL;
    }
    PluginBackend *b = mig_malloc0(sizeof(*b));
    b->base.ops = &plugin_backend_ops;
    snprintf(b->base.name, sizeof(b->base.name), "%s", label);
    b->base.features = cfg->features;
    b->p = p;
    b->dev = dev;
    b->base.instance = dev;
    return &b->base;
}
