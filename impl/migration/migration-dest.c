/*
 * migration-dest.c - the destination side of a migration (migration.h has
 * the status diagram, migration-internal.h the phases).
 *
 * dst_consume() is a loop callback that parses restartable units (file
 * header, configuration, section header, a section's payload, footer, the
 * vmdescription) and waits for MIG_LOOP_IN when the stream is starved: a
 * unit that runs out of bytes rewinds the stream to its mark and is parsed
 * again whole when more has arrived.  At most DST_SLICE bytes per call, so
 * that the guest and the monitor get their turn.
 *
 * Discard: FULL handlers are snapshotted (saved into memory) just before
 * their section is loaded; a failed or cancelled load loads the snapshots
 * back, so device state is what it was before the migration.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration-internal.h"
#include "ram/ram.h"

#define DST_SLICE ((uint64_t)64 << 20)

/* Destination: keep the state of FULL entry i as it is before its section
 * is loaded (once per migration). */
static void snapshot_full(MigMigration *mm, size_t i, const MigSaveEntry *e)
{
    if (!mm->snap_taken || mm->snap_taken[i])
        return;
    mm->snap_taken[i] = true;
    MigStream *w = mig_stream_new_mem_writer();
    MigErr *err = NULL;
    int r = mig_savevm_entry_save_full(e, w, &err);
    if (r == 0)
        r = mig_stream_take_error(w, &err);
    if (r == 0) {
        size_t len = 0;
        const uint8_t *d = mig_stream_mem_data(w, &len);
        mm->snap[i] = mig_malloc0(len ? len : 1);
        memcpy(mm->snap[i], d, len);
        mm->snap_len[i] = len;
    } else {
        mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who,
                      "cannot snapshot '%s' before loading it: %s", e->idstr,
                      err ? err->msg : mig_errno_name(r));
    }
    mig_err_free(err);
    mig_stream_free(w);
}

/* Destination, load not completed: FULL entries get their snapshot back,
 * last loaded first. */
void mig__dst_restore_full(MigMigration *mm)
{
    for (size_t k = mm->nentries; k-- > 0;) {
        if (!mm->snap || !mm->snap[k])
            continue;
        const MigSaveEntry *e = mig_savevm_entry(mm->env.savevm, k);
        MigStream *r = mig_stream_new_mem_reader_borrow(mm->snap[k], mm->snap_len[k]);
        MigErr *err = NULL;
        int rc = e ? mig_savevm_entry_load_full(e, r, e->version_id, &err) : -ENOENT;
        if (rc < 0)
            mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who,
                          "cannot restore '%s' after a failed load: %s", e ? e->idstr : "?",
                          err ? err->msg : mig_errno_name(rc));
        else
            mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who,
                          "'%s' restored to its state before the migration", e->idstr);
        mig_err_free(err);
        mig_stream_free(r);
    }
}

/* ------------------------------------------------------------ loader */

static void dst_consume(void *opaque);

static void dst_readable(MigTransport *t, uint32_t events, void *opaque)
{
    MigMigration *mm = opaque;
    mig_transport_watch(t, 0, NULL, NULL);
    mm->watching = false;
    mm->hangup_seen = (events & (MIG_LOOP_ERR | MIG_LOOP_HUP)) != 0;
    dst_consume(mm);
}

static void dst_timer(void *opaque)
{
    MigMigration *mm = opaque;
    mm->timer_src = NULL;
    dst_consume(mm);
}

static bool dst_alive(const MigMigration *mm)
{
    return mm->incoming && (mm->status == MIG_STATUS_SETUP || mm->status == MIG_STATUS_ACTIVE);
}

static int check_config(MigMigration *mm, const MigStreamConfig *cfg, MigErr **errp)
{
    char name[1100];
    size_t len = strlen(cfg->machine);
    if (strncmp(cfg->machine, mm->machine_type, len) != 0)
        return mig_err_set(errp, -EINVAL, "Machine type received is '%s' and local is '%s'",
                           mig__esc(cfg->machine, name, sizeof(name)), mm->machine_type);
    MigCapMask got = 0;
    for (size_t i = 0; i < cfg->ncaps; i++) {
        int c = mig_cap_parse(cfg->caps[i]);
        if (c < 0 || !mig_cap_validatable(c))
            return mig_err_set(errp, -EINVAL,
                               "Received capability '%s' is not a validatable capability known "
                               "here",
                               mig__esc(cfg->caps[i], name, sizeof(name)));
        if (!(mm->caps & MIG_CAP_BIT(c)))
            return mig_err_set(errp, -EINVAL,
                               "capability '%s' announced by the source is not enabled on the "
                               "destination",
                               cfg->caps[i]);
        got |= MIG_CAP_BIT(c);
    }
    for (int c = 0; c < MIG_CAP__COUNT; c++)
        if ((mm->caps & MIG_CAP_BIT(c)) && mig_cap_validatable(c) && !(got & MIG_CAP_BIT(c)))
            return mig_err_set(errp, -EINVAL,
                               "capability '%s' is enabled on the destination but the source "
                               "did not announce it",
                               mig_cap_name(c));
    return 0;
}

static long find_entry(MigMigration *mm, const char *idstr, uint32_t instance)
{
    for (size_t i = 0; i < mm->nentries; i++) {
        const MigSaveEntry *e = mig__entry_at(mm, i);
        if (e->instance_id == instance && strcmp(e->idstr, idstr) == 0)
            return (long)i;
    }
    return -1;
}

static const MigSectionMap *find_section(MigMigration *mm, uint32_t id)
{
    for (size_t i = 0; i < mm->nsecs; i++)
        if (mm->secs[i].section_id == id)
            return &mm->secs[i];
    return NULL;
}

/* Look up a START/FULL header's handler and check its version. */
static int resolve_entry(MigMigration *mm, const MigSectionHeader *h, MigErr **errp)
{
    long i = find_entry(mm, h->idstr, h->instance_id);
    char name[1100];
    if (i < 0)
        return mig_err_set(errp, -EINVAL,
                           "Unknown savevm section or instance '%s' %u. Make sure that your "
                           "current VM setup matches your saved VM setup, including any "
                           "hotplugged devices",
                           mig__esc(h->idstr, name, sizeof(name)), h->instance_id);
    const MigSaveEntry *e = mig__entry_at(mm, (size_t)i);
    if (h->version_id > e->version_id)
        return mig_err_set(errp, -EINVAL, "savevm: unsupported version %u for '%s' v%u",
                           h->version_id, e->idstr, e->version_id);
    bool want_iter = h->type == MIG_SECTION_START;
    if (want_iter != (e->kind == MIG_SAVE_ITERATIVE))
        return mig_err_set(errp, -EINVAL, "savevm: section '%s' arrived as %s, expected %s",
                           e->idstr, mig_section_type_name(h->type) ? mig_section_type_name(h->type) : "?",
                           e->kind == MIG_SAVE_ITERATIVE ? "start/part/end" : "full");
    return (int)i;
}

/* One unit.  Returns 0 progress, 1 done, -EAGAIN starved, other <0 failed
 * (*errp set). */
/* No VMDESCRIPTION after the EOF byte (the stream ended there, -1, or byte
 * b follows): QEMU only logs it and completes; with x-require-vmdesc the
 * destination fails, since only the trailer tells it a needed() subsection
 * was left out (the offset is the EOF byte's end). */
static int dst_no_vmdesc(MigMigration *mm, MigStream *s, int b, MigErr **errp)
{
    if (mm->caps & MIG_CAP_BIT(MIG_CAP_X_REQUIRE_VMDESC))
        return mig_err_set(errp, -EPROTO,
                           "incomplete stream: no VMDESCRIPTION after its EOF marker (offset "
                           "%llu), which capability x-require-vmdesc requires: the subsections "
                           "the source wrote cannot be checked",
                           (unsigned long long)mig_stream_offset(s));
    if (b < 0)
        return 1;
    mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who,
                  "Expected vmdescription section, but got %d", b);
    return 1;
}

/* The source's VMDESCRIPTION says what it wrote: per device, the
 * subsections whose needed() was true.  A device it lists whose section
 * never arrived, or a subsection it lists that the device's load did not
 * get (where the device records that: MigFullOps.loaded_subsection), was
 * left out of the stream; fail naming the device and the subsection
 * (docs/protocol-qemu-stream.md, the completeness rule).  A trailer that is
 * not the JSON we know is not checked (QEMU ignores it on load): the trace
 * says so. */
static int dst_check_vmdesc(MigMigration *mm, const char *json, size_t len, MigErr **errp)
{
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, 0, &jerr);
    json_t *devs = json_object_get(doc, "devices");
    if (!json_is_array(devs)) {
        json_decref(doc);
        if (mm->caps & MIG_CAP_BIT(MIG_CAP_X_REQUIRE_VMDESC))
            return mig_err_set(errp, -EPROTO,
                               "incomplete stream: its VMDESCRIPTION has no device list, which "
                               "capability x-require-vmdesc requires (the subsections it wrote "
                               "cannot be checked)");
        mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who,
                      "VMDESCRIPTION has no device list: the subsections are not checked");
        return 0;
    }
    int r = 0;
    size_t i;
    json_t *dev;
    json_array_foreach(devs, i, dev) {
        const char *name = json_string_value(json_object_get(dev, "name"));
        json_t *inst = json_object_get(dev, "instance_id");
        if (!name || !json_is_integer(inst))
            continue;
        size_t k = 0;
        const MigSaveEntry *e = NULL;
        for (; k < mm->nentries; k++) {
            e = mig__entry_at(mm, k);
            if (e->instance_id == (uint64_t)json_integer_value(inst) && !strcmp(e->idstr, name))
                break;
        }
        if (k == mm->nentries || e->kind != MIG_SAVE_FULL)
            continue; /* not ours: resolve_entry refuses its section */
        if (!mm->loaded[k] && mig_savevm_entry_always(e))
            continue; /* dst_load_complete names it, listed or not */
        if (!mm->loaded[k]) {
            r = mig_err_set(errp, -EPROTO,
                            "incomplete stream: section '%s' (instance %u), which the source's "
                            "VMDESCRIPTION lists, never arrived",
                            e->idstr, e->instance_id);
            break;
        }
        json_t *subs = json_object_get(dev, "subsections");
        if (!json_is_array(subs) || !e->full || !e->full->loaded_subsection)
            continue;
        size_t j;
        json_t *sub;
        json_array_foreach(subs, j, sub) {
            const char *sn = json_string_value(json_object_get(sub, "vmsd_name"));
            if (sn && e->full->loaded_subsection(e->opaque, sn) == 0) {
                r = mig_err_set(errp, -EPROTO,
                                "incomplete stream: device '%s' (instance %u): subsection %s, "
                                "which the source wrote (its VMDESCRIPTION lists it), never "
                                "arrived",
                                e->idstr, e->instance_id, sn);
                break;
            }
        }
        if (r < 0)
            break;
    }
    json_decref(doc);
    return r;
}

static int dst_step(MigMigration *mm, MigErr **errp)
{
    MigStream *s = mm->s;
    int r;
    switch (mm->phase) {
    case MIG_PHASE_DST_HEADER:
        mig_stream_mark(s);
        r = mig_stream_get_file_header(s, errp);
        if (r < 0)
            return r;
        /* Capabilities that change the RAM format (x-ignore-shared) must be
         * known to the loader before its first record. */
        if (mm->env.ram)
            mig_ram_set_caps(mm->env.ram, mm->caps);
        for (size_t i = 0; i < mm->nentries; i++) {
            const MigSaveEntry *e = mig__entry_at(mm, i);
            if (e->kind != MIG_SAVE_ITERATIVE)
                continue;
            mm->started[i] = true;
            r = e->iter->load_setup ? e->iter->load_setup(e->opaque, errp) : 0;
            if (r < 0) {
                mig_err_prepend(errp, "load setup of '%s'", e->idstr);
                return r;
            }
        }
        r = mig__migration_set_phase(mm, MIG_PHASE_DST_CONFIG, errp);
        if (r < 0)
            return r;
        return mig__migration_advance(mm, MIG_STATUS_ACTIVE, errp);
    case MIG_PHASE_DST_CONFIG: {
        mig_stream_mark(s);
        int b = mig_stream_peek_u8(s, 0);
        if (b < 0 && mig_stream_starved(s))
            return -EAGAIN;
        if (b != MIG_SECTION_CONFIGURATION)
            return mig_err_set(errp, -EINVAL, "Configuration section missing (offset %llu)",
                               (unsigned long long)mig_stream_offset(s));
        MigStreamConfig cfg;
        r = mig_stream_get_configuration(s, &cfg, errp);
        if (r < 0)
            return r;
        r = check_config(mm, &cfg, errp);
        if (r < 0)
            return r;
        return mig__migration_set_phase(mm, MIG_PHASE_DST_SECTION, errp);
    }
    case MIG_PHASE_DST_SECTION: {
        mig_stream_mark(s);
        /* the stream ends between sections: the EOF marker is what is
         * missing (the completeness rule) */
        if (mig_stream_at_eof(s) && !mig_stream_error(s))
            return mig_err_set(errp, -EPROTO,
                               "incomplete stream: it ends at offset %llu, after a whole "
                               "section, without its EOF marker",
                               (unsigned long long)mig_stream_offset(s));
        if (mig_stream_starved(s))
            return -EAGAIN;
        MigSectionHeader h;
        r = mig_stream_get_section_header(s, &h, errp);
        if (r < 0)
            return r;
        switch (h.type) {
        case MIG_SECTION_START:
        case MIG_SECTION_FULL: {
            int i = resolve_entry(mm, &h, errp);
            if (i < 0)
                return i;
            MIG_FAULT_RETURN_ERR(MIG_FAULT_MIGRATION_LOAD, errp,
                                 "loading section '%s' failed (injected fault)", h.idstr);
            const MigSaveEntry *e = mig__entry_at(mm, (size_t)i);
            mm->hdr = h;
            mm->cur_entry = (size_t)i;
            if (h.type == MIG_SECTION_FULL) {
                snapshot_full(mm, (size_t)i, e);
                r = mig_savevm_entry_load_full(e, s, h.version_id, errp);
                if (r == -EAGAIN || (r == 0 && mig_stream_starved(s)))
                    return -EAGAIN;
                if (r < 0) {
                    mig_err_prepend(errp, "error while loading state for instance 0x%x of "
                                          "device '%s'",
                                    h.instance_id, e->idstr);
                    return r;
                }
                mm->loaded[i] = true;
                return mig__migration_set_phase(mm, MIG_PHASE_DST_FOOTER, errp);
            }
            mm->loaded[i] = true;
            /* one id per handler, as QEMU's load_section_id: a second
             * START for it replaces the id, so the map never grows past
             * the handlers the machine has, whatever the stream says */
            MigSectionMap *m = NULL;
            for (size_t k = 0; k < mm->nsecs && !m; k++)
                if (mm->secs[k].entry == (size_t)i)
                    m = &mm->secs[k];
            if (!m) {
                mm->secs = mig_realloc(mm->secs, (mm->nsecs + 1) * sizeof(*mm->secs));
                m = &mm->secs[mm->nsecs++];
            }
            *m = (MigSectionMap){h.section_id, (size_t)i, h.version_id};
            return mig__migration_set_phase(mm, MIG_PHASE_DST_PAYLOAD, errp);
        }
        case MIG_SECTION_PART:
        case MIG_SECTION_END: {
            const MigSectionMap *m = find_section(mm, h.section_id);
            if (!m)
                return mig_err_set(errp, -EINVAL, "Unknown savevm section %u (offset %llu)",
                                   h.section_id, (unsigned long long)h.offset);
            const MigSaveEntry *e = mig__entry_at(mm, m->entry);
            mm->hdr = h;
            snprintf(mm->hdr.idstr, sizeof(mm->hdr.idstr), "%s", e->idstr);
            mm->hdr.instance_id = e->instance_id;
            mm->hdr.version_id = m->version_id;
            mm->cur_entry = m->entry;
            return mig__migration_set_phase(mm, MIG_PHASE_DST_PAYLOAD, errp);
        }
        case MIG_SECTION_EOF:
            return mig__migration_set_phase(mm, MIG_PHASE_DST_VMDESC, errp);
        case MIG_SECTION_COMMAND: {
            uint16_t cmd = 0, len = 0;
            r = mig_stream_get_command(s, &cmd, &len, errp);
            if (r < 0)
                return r;
            return mig__rp_command(mm, cmd, len, h.offset, errp);
        }
        default:
            return mig_err_set(errp, -EINVAL, "Unknown savevm section type %d (offset %llu)",
                               h.type, (unsigned long long)h.offset);
        }
    }
    case MIG_PHASE_DST_PAYLOAD: {
        const MigSaveEntry *e = mig__entry_at(mm, mm->cur_entry);
        r = e->iter->load_state(e->opaque, s, &mm->hdr, errp);
        if (r == -EAGAIN)
            return r;
        if (r < 0) {
            /* The loader's own message says "truncated" when the stream
             * ended inside the section. */
            mig_err_prepend(errp, "section '%s' (id %u)", e->idstr, mm->hdr.section_id);
            return r;
        }
        return mig__migration_set_phase(mm, MIG_PHASE_DST_FOOTER, errp);
    }
    case MIG_PHASE_DST_FOOTER:
        mig_stream_mark(s);
        r = mig_stream_get_section_footer(s, mm->hdr.section_id, mm->hdr.idstr, errp);
        if (r == -EAGAIN)
            return r;
        if (r < 0) {
            mig_err_prepend(errp, "section '%s' (id %u)", mm->hdr.idstr, mm->hdr.section_id);
            return r;
        }
        return mig__migration_set_phase(mm, MIG_PHASE_DST_SECTION, errp);
    case MIG_PHASE_DST_VMDESC: {
        mig_stream_mark(s);
        if (mig_stream_at_eof(s))
            return dst_no_vmdesc(mm, s, -1, errp); /* QEMU only logs this */
        if (mig_stream_starved(s))
            return -EAGAIN;
        int b = mig_stream_peek_u8(s, 0);
        if (b < 0)
            return mig_stream_starved(s) ? -EAGAIN : dst_no_vmdesc(mm, s, -1, errp);
        if (b != MIG_SECTION_VMDESCRIPTION)
            return dst_no_vmdesc(mm, s, b, errp);
        MigSectionHeader h;
        r = mig_stream_get_section_header(s, &h, errp);
        if (r < 0)
            return r;
        char *json = NULL;
        size_t len = 0;
        r = mig_stream_get_vmdesc(s, &json, &len, errp);
        if (r == 0)
            r = dst_check_vmdesc(mm, json, len, errp);
        free(json);
        if (r < 0)
            return r;
        return 1;
    }
    default:
        return -EINVAL;
    }
}

/* The stream ended: the destination completes only when it loaded every
 * section its machine has (mig_savevm_entry_always) and every iterative handler
 * says it got all it needs (load_complete: RAM, every page; a VFIO-style
 * device, its data), else the error names what is missing
 * (docs/protocol-qemu-stream.md, the completeness rule). */
static int dst_load_complete(MigMigration *mm, MigErr **errp)
{
    for (size_t i = 0; i < mm->nentries; i++) {
        const MigSaveEntry *e = mig__entry_at(mm, i);
        if (mig_savevm_entry_always(e) && !mm->loaded[i])
            return mig_err_set(errp, -EPROTO,
                               "incomplete stream: section '%s' (instance %u) never arrived: the "
                               "machine cannot run without its state",
                               e->idstr, e->instance_id);
    }
    for (size_t i = 0; i < mm->nentries; i++) {
        const MigSaveEntry *e = mig__entry_at(mm, i);
        if (e->kind != MIG_SAVE_ITERATIVE || !e->iter->load_complete)
            continue;
        int r = e->iter->load_complete(e->opaque, errp);
        if (r < 0) {
            mig_err_prepend(errp, "'%s'", e->idstr);
            return r;
        }
    }
    return 0;
}

static int dst_complete(MigMigration *mm, MigErr **errp)
{
    int r = mig__migration_advance(mm, MIG_STATUS_COMPLETED, errp);
    if (r < 0)
        return r;
    mig__migration_finish(mm, MIG_OUTCOME_COMPLETED);
    return 0;
}

/* Every destination error names a stream offset: one that says none gets
 * the start of the unit that could not be accepted (a section header, a
 * payload, a footer: mm->unit_at) or, at the end, where the stream ended.
 * In front, so that a long message cut to the error buffer keeps it. */
static void add_offset(MigErr *err, uint64_t at, bool at_end)
{
    if (!err || !err->msg || strstr(err->msg, "offset"))
        return;
    char *m = mig_strdup_printf("%s offset %llu: %s", at_end ? "stream ends at" : "stream",
                                (unsigned long long)at, err->msg);
    free(err->msg);
    err->msg = m;
}

static void dst_kick(MigMigration *mm)
{
    if (!mm->kick_src)
        mm->kick_src = mig_loop_defer(mm->env.loop, dst_consume, mm);
}

static void dst_consume(void *opaque)
{
    MigMigration *mm = opaque;
    mm->kick_src = NULL;
    if (!dst_alive(mm) || mm->watching || mm->timer_src)
        return;
    uint64_t start = mig_stream_offset(mm->s);
    for (;;) {
        if (!dst_alive(mm))
            return;
        if (mig_stream_offset(mm->s) - start >= DST_SLICE) {
            dst_kick(mm);
            return;
        }
        MigErr *err = NULL;
        mm->unit_at = mig_stream_offset(mm->s);
        int r = dst_step(mm, &err);
        if (r == -EAGAIN) {
            mig_err_free(err);
            mig_stream_rewind(mm->s);
            if (!dst_alive(mm))
                return;
            if (mm->hangup_seen) {
                /* The transport reported an error or hang-up but the read
                 * still says "not yet" (bytes in flight before a reset):
                 * a level-triggered watch would fire again at once, so poll
                 * with a short timer instead of spinning. */
                mm->hangup_seen = false;
                mm->timer_src = mig_loop_timer_add(mm->env.loop, mig__now_ns(mm) + NS_PER_MS,
                                                   dst_timer, mm);
                return;
            }
            mm->watching = true;
            mig_transport_watch(mm->t, MIG_LOOP_IN, dst_readable, mm);
            return;
        }
        if (r < 0) {
            if (!err)
                mig_stream_take_error(mm->s, &err);
            add_offset(err, mm->unit_at, false);
            mig__migration_fail_err(mm, err, r, "load failed");
            return;
        }
        if (r == 1) {
            r = dst_load_complete(mm, &err);
            if (r < 0)
                add_offset(err, mig_stream_offset(mm->s), true);
            if (r == 0)
                r = dst_complete(mm, &err);
            if (r < 0)
                mig__migration_fail_err(mm, err, r, "load failed");
            return;
        }
    }
}

int mig_migration_listen(MigMigration *mm, MigErr **errp)
{
    if (mm->status != MIG_STATUS_NONE)
        return mig_err_set(errp, -EBUSY, "The incoming migration has already been started");
    mm->incoming = true;
    mig__migration_prepare(mm);
    return mig__migration_advance(mm, MIG_STATUS_SETUP, errp);
}

int mig_migration_start_incoming(MigMigration *mm, MigTransport *t, MigErr **errp)
{
    if (mm->status == MIG_STATUS_NONE) {
        int r = mig_migration_listen(mm, errp);
        if (r < 0) {
            mig_transport_close(t);
            return r;
        }
    }
    if (!mm->incoming || mm->status != MIG_STATUS_SETUP || mm->t) {
        mig_transport_close(t);
        return mig_err_set(errp, -EBUSY, "The incoming migration has already been started");
    }
    if (mm->caps & MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP)) {
        /* The source's pages arrive on the pipe it passes (page flipping,
         * docs/protocol-qemu-stream.md). */
        MigErr *err = NULL;
        t = mig_transport_local_new(t, false, &err);
        if (!t) {
            int code = err ? err->code : -ENOTSUP;
            mig_err_prepend(&err, "incoming migration");
            mig__migration_fail(mm, code, err ? err->msg : "x-page-flip needs a unix socket");
            if (errp)
                *errp = err;
            else
                mig_err_free(err);
            return code;
        }
    }
    mm->t = t;
    mm->s = mig_stream_new_reader(t);
    MigErr *err = NULL;
    int r = mig__migration_set_phase(mm, MIG_PHASE_DST_HEADER, &err);
    if (r < 0) {
        mig__migration_fail(mm, r, err->msg); /* closes t */
        return mig_err_propagate(errp, err);
    }
    dst_kick(mm);
    return 0;
}

void mig_migration_fail(MigMigration *mm, int err, const char *why)
{
    mig__migration_fail(mm, err, why);
}
