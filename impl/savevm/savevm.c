/*
 * savevm.c - the savevm handler registry (see savevm.h).
 *
 * A plain array in registration order: lookups are linear, which is fine for
 * the tens of entries a machine has, and keeps every walk in a deterministic
 * order.
 *
 * Section ids: the registration counter, starting at 1; 0 is never given to
 * a section.  A QEMU 7.2 loader finds the handler of a PART or END by
 * comparing the id with each handler's load_section_id, which is 0 for every
 * handler whose START it has not read yet (and for FULL-only ones such as
 * "timer"); a START with id 0 would send the following PART/END of "ram" to
 * the first such handler.  QEMU itself never hits this because the first
 * handler it registers is not iterative ("timer" gets 0, "ram" 2 on pc).
 * Ids keep their gaps after unregistration, as in QEMU.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "savevm.h"
#include "vmstate/vmstate.h"

struct MigSavevm {
    MigSaveEntry *entries;
    size_t count, cap;
    uint32_t next_section_id;
};

MigSavevm *mig_savevm_new(void)
{
    MigSavevm *sv = mig_malloc0(sizeof(MigSavevm));
    sv->next_section_id = 1;
    return sv;
}

void mig_savevm_free(MigSavevm *sv)
{
    if (!sv)
        return;
    free(sv->entries);
    free(sv);
}

static int add_entry(MigSavevm *sv, const char *idstr, uint32_t instance_id, uint32_t version_id,
                     MigSaveKind kind, const void *ops, void *opaque, MigErr **errp)
{
    if (!idstr || !idstr[0] || strlen(idstr) > 255)
        return mig_err_set(errp, -EINVAL, "savevm: bad section name '%s'", idstr ? idstr : "");
    if (mig_savevm_find(sv, idstr, instance_id))
        return mig_err_set(errp, -EEXIST, "savevm: section '%s' instance %u already registered",
                           idstr, instance_id);
    MIG_GROW(sv->entries, sv->cap, sv->count + 1, 16);
    MigSaveEntry *e = &sv->entries[sv->count++];
    memset(e, 0, sizeof(*e));
    strcpy(e->idstr, idstr);
    e->instance_id = instance_id;
    e->version_id = version_id;
    e->section_id = sv->next_section_id++;
    e->kind = kind;
    if (kind == MIG_SAVE_ITERATIVE)
        e->iter = ops;
    else
        e->full = ops;
    e->opaque = opaque;
    return (int)e->section_id;
}

int mig_savevm_register_iterative(MigSavevm *sv, const char *idstr, uint32_t instance_id,
                                  uint32_t version_id, const MigIterOps *ops, void *opaque,
                                  MigErr **errp)
{
    return add_entry(sv, idstr, instance_id, version_id, MIG_SAVE_ITERATIVE, ops, opaque, errp);
}

int mig_savevm_register_full(MigSavevm *sv, const char *idstr, uint32_t instance_id,
                             uint32_t version_id, const MigFullOps *ops, void *opaque,
                             MigErr **errp)
{
    return add_entry(sv, idstr, instance_id, version_id, MIG_SAVE_FULL, ops, opaque, errp);
}

/* vmstate-described FULL entries: the entry's opaque is the device object,
 * its vmsd the description. */
int mig_savevm_register_vmsd(MigSavevm *sv, const char *idstr, uint32_t instance_id,
                             const struct VmsDescription *vmsd, void *obj, MigErr **errp)
{
    int id = add_entry(sv, idstr, instance_id, (uint32_t)vmsd->version_id, MIG_SAVE_FULL, NULL,
                       obj, errp);
    if (id >= 0)
        sv->entries[sv->count - 1].vmsd = vmsd;
    return id;
}

int mig_savevm_entry_save_full(const MigSaveEntry *e, MigStream *s, MigErr **errp)
{
    if (e->vmsd)
        return vmstate_save(s, e->vmsd, e->opaque, errp);
    return e->full->save(e->opaque, s, errp);
}

int mig_savevm_entry_load_full(const MigSaveEntry *e, MigStream *s, uint32_t version_id,
                               MigErr **errp)
{
    if (e->vmsd)
        return vmstate_load(s, e->vmsd, e->opaque, (int)version_id, errp);
    return e->full->load(e->opaque, s, version_id, errp);
}

bool mig_savevm_entry_needed(const MigSaveEntry *e)
{
    if (e->kind != MIG_SAVE_FULL)
        return true;
    if (e->vmsd) {
        const VmsDescription *d = e->vmsd;
        return !d->needed || d->needed(e->opaque);
    }
    return !e->full->needed || e->full->needed(e->opaque);
}

bool mig_savevm_entry_always(const MigSaveEntry *e)
{
    if (e->kind != MIG_SAVE_FULL)
        return true;
    return e->vmsd ? !e->vmsd->needed : !e->full->needed;
}

void mig_savevm_unregister(MigSavevm *sv, const char *idstr, uint32_t instance_id)
{
    for (size_t i = 0; i < sv->count; i++) {
        if (sv->entries[i].instance_id == instance_id && strcmp(sv->entries[i].idstr, idstr) == 0) {
            memmove(&sv->entries[i], &sv->entries[i + 1],
                    (sv->count - i - 1) * sizeof(*sv->entries));
            sv->count--;
            return;
        }
    }
}

size_t mig_savevm_count(const MigSavevm *sv)
{
    return sv->count;
}

const MigSaveEntry *mig_savevm_entry(const MigSavevm *sv, size_t i)
{
    return i < sv->count ? &sv->entries[i] : NULL;
}

const MigSaveEntry *mig_savevm_find(const MigSavevm *sv, const char *idstr, uint32_t instance_id)
{
    for (size_t i = 0; i < sv->count; i++)
        if (sv->entries[i].instance_id == instance_id && strcmp(sv->entries[i].idstr, idstr) == 0)
            return &sv->entries[i];
    return NULL;
}

void mig_savevm_guest_resumed(const MigSavevm *sv)
{
    for (size_t i = 0; i < sv->count; i++) {
        const MigSaveEntry *e = &sv->entries[i];
        if (e->kind == MIG_SAVE_ITERATIVE && e->iter && e->iter->guest_resumed)
            e->iter->guest_resumed(e->opaque);
    }
}

json_t *mig_savevm_vmdesc(const MigSavevm *sv)
{
    json_t *devices = json_array();
    for (size_t i = 0; i < sv->count; i++) {
        const MigSaveEntry *e = &sv->entries[i];
        if (e->kind != MIG_SAVE_FULL)
            continue;
        if (!mig_savevm_entry_needed(e))
            continue;
        json_t *d = NULL;
        if (e->vmsd)
            d = vmstate_describe_vmdesc(e->vmsd, e->opaque, e->idstr, e->instance_id);
        else if (e->full->describe)
            d = e->full->describe(e->opaque);
        if (!d) {
            /* Old-style entry: the payload size is not known up front. */
            d = json_object();
            json_object_set_new(d, "fields", json_array());
        }
        /* QEMU puts name and instance_id first. */
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(e->idstr));
        json_object_set_new(o, "instance_id", json_integer(e->instance_id));
        const char *key;
        json_t *val;
        json_object_foreach(d, key, val) {
            if (strcmp(key, "name") && strcmp(key, "instance_id"))
                json_object_set(o, key, val);
        }
        json_decref(d);
        json_array_append_new(devices, o);
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "page_size", json_integer(4096));
    json_object_set_new(doc, "devices", devices);
    return doc;
}
