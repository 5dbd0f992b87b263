/*
 * device-plugin.c - the vendor ABI loader (dlopen) and the in-process v2
 * backend over a plugin table.
 *
 * The loader refuses, naming the file and both versions, any table whose
 * abi_version is not MIGCERT_DEVICE_ABI_VERSION: an older one may lay its
 * members out differently, a newer one may rely on behaviour this build does
 * not have.  A table shorter than the members its protocol needs is refused
 * too, and so is one whose optional vmstate description is not a
 * -dump-vmstate entry (checked with the vmstate module's own shape rules).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../vmstate/vmstate.h"
#include "device.h"

/* Size of the table up to and including member m. */
#define TABLE_NEEDS(m) (offsetof(MigcertDevicePlugin, m) + sizeof(((MigcertDevicePlugin *)0)->m))

static void no_finding(const VmsCompatFinding *f, void *opaque) {}

int mig_dev_plugin_check_vmstate(const char *text, const char *label, MigErr **errp)
{
    if (!text)
        return 0;
    json_error_t jerr;
    json_t *entry = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!entry)
        return mig_err_set(errp, -EINVAL,
                           "plugin %s: vmstate description is not valid JSON: %s (line %d, "
                           "column %d)",
                           label, jerr.text, jerr.line, jerr.column);
    int ret = 0;
    if (!json_is_object(entry))
        ret = mig_err_set(errp, -EINVAL,
                          "plugin %s: vmstate description is not a -dump-vmstate entry (not an "
                          "object)",
                          label);
    else if (!json_is_string(json_object_get(entry, "Name")))
        ret = mig_err_set(errp, -EINVAL,
                          "plugin %s: vmstate description is not a -dump-vmstate entry "
                          "(\"Name\" is not a string)",
                          label);
    else if (!json_is_object(json_object_get(entry, "Description")))
        ret = mig_err_set(errp, -EINVAL,
                          "plugin %s: vmstate description is not a -dump-vmstate entry "
                          "(\"Description\" is not an object)",
                          label);
    if (ret == 0) {
        /* a one-entry dump, checked against itself: the shape rules of
         * check-compat (every field, nested description and subsection) */
        json_t *doc = json_object();
        json_object_set(doc, json_string_value(json_object_get(entry, "Name")), entry);
        MigErr *e = NULL;
        if (vmstate_check_compat(doc, doc, no_finding, NULL, &e) < 0) {
            const char *m = e && e->msg ? e->msg : "malformed";
            if (!strncmp(m, "OLD: ", 5))
                m += 5;
            ret = mig_err_set(errp, -EINVAL,
                              "plugin %s: vmstate description is not a -dump-vmstate entry: %s",
                              label, m);
        }
        mig_err_free(e);
        json_decref(doc);
    }
    json_decref(entry);
    return ret;
}

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
    return mig_dev_plugin_check_vmstate(p->vmstate_json, label, errp);
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
    PluginBackend *b = mig__dev_backend_create(p, cfg, label, &plugin_backend_ops,
                                               sizeof(*b), errp);
    if (!b)
        return NULL;
    b->p = p;
    b->dev = b->base.instance;
    return &b->base;
}

void *mig__dev_backend_create(const MigcertDevicePlugin *p, const MigcertDeviceConfig *cfg,
                              const char *label, const MigDevBackendOps *ops, size_t size,
                              MigErr **errp)
{
    errno = 0;
    MigcertDevice *dev = p->create(cfg);
    if (!dev) {
        int e = errno ? -errno : -EINVAL;
        mig_err_set(errp, e, "plugin %s: create refused the configuration (%s)", label,
                    mig_errno_name(e));
        return NULL;
    }
    MigDevBackend *base = mig_malloc0(size);
    base->ops = ops;
    snprintf(base->name, sizeof(base->name), "%s", label);
    base->features = cfg->features;
    base->instance = dev;
    return base;
}
