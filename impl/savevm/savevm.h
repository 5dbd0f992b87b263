/*
 * savevm.h - the savevm handler registry: everything a machine migrates,
 * as sections of the v3 stream (docs/protocol-qemu-stream.md).
 *
 * Owns: MigSavevm, an ordered list of entries (idstr, instance_id, version_id,
 * section_id).  section_id is the registration counter of the registry, so ids
 * keep their gaps after unregistration, as in QEMU; it starts at 1 (see
 * savevm.c: a QEMU 7.2 loader mistakes a START with id 0).  An entry is either
 *   - iterative (MigIterOps): RAM and VFIO-style devices.  The source writes
 *     START (save_setup) once, PART (save_iterate) during pre-copy and END
 *     (save_complete) at stop-and-copy; the destination's load_state reads
 *     each of those payloads; or
 *   - full (MigFullOps, or a vmstate description through
 *     mig_savevm_register_vmsd): one FULL section after the iterative END
 *     sections, when needed().
 * Called by: impl/machine (creates it, registers RAM), impl/device (registers
 * VFIO-style devices), fakes/devices via the machine, impl/migration (drives
 * the handlers, loads by (idstr, instance_id)).
 *
 * Invariants: entries are visited in registration order (never in address
 * order); (idstr, instance_id) is unique; the registry does not own the
 * opaque pointers.
 *
 * Layer: a module of its own between vmstate and {ram, device} (see
 * docs/architecture.md): it knows the stream and vmstate descriptions, and
 * the handlers below the engine (RAM, devices) register here without
 * knowing the migration state machines that drive them.
 *
 * Non-blocking contract for iterative handlers:
 *   - save_iterate / save_complete write roughly `budget` bytes at most and
 *     return 1 when they have nothing more to write for now (save_iterate: the
 *     pass is done; save_complete: all data is out, the END payload can be
 *     closed), 0 when more remains, or a negative errno.  The engine writes
 *     section headers and footers; the payload, with its terminator (RAM
 *     writes EOS), is the handler's.
 *   - Every save_iterate call is one whole PART section: the engine writes
 *     the header before the call and the footer after it, whatever it
 *     returns, so the handler terminates its payload on every call.  After
 *     0 the engine may flush, wait for the transport and turn to other
 *     handlers; the next call opens a new PART (QEMU does the same: one PART
 *     per handler per iteration).
 *   - save_complete calls all go into one END section: the header before the
 *     first call, the footer after the call that returned 1, so the handler
 *     terminates its payload only then.
 *   - load_state is restartable: it marks (mig_stream_mark) at the start of
 *     each unit it reads, and when the stream is starved it rewinds
 *     (mig_stream_rewind) and returns -EAGAIN, keeping what it committed; the
 *     engine calls it again for the same section once bytes arrive.  It
 *     returns 0 once it consumed the whole payload (the engine reads the
 *     footer next).
 */
#ifndef MIGCERT_SAVEVM_H
#define MIGCERT_SAVEVM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "../common/common.h"
#include "../stream/stream.h"

typedef struct MigSavevm MigSavevm;

/* How a migration ended, for cleanup hooks. */
typedef enum MigOutcome {
    MIG_OUTCOME_COMPLETED = 0,
    MIG_OUTCOME_FAILED = 1,
    MIG_OUTCOME_CANCELLED = 2,
    MIG_OUTCOME__COUNT
} MigOutcome;

typedef struct MigIterOps {
    /* ---- source ---- */
    /* Optional: false = this handler sends nothing in this migration (no
     * START/PART/END sections at all). */
    bool (*is_active)(void *opaque);
    /* START payload (called once, guest running). */
    int (*save_setup)(void *opaque, MigStream *s, MigErr **errp);
    /* Optional: called at the start of every pre-copy pass after the first
     * (RAM: fold the dirty log into the migration bitmap). */
    void (*save_sync)(void *opaque);
    /* Bytes still to send: `precopy` can move while the guest runs, `stopcopy`
     * only once it is stopped (a VFIO device's stop-copy size). */
    void (*save_pending)(void *opaque, uint64_t *precopy, uint64_t *stopcopy);
    /* One PART payload; see the contract above (1 = pass done). */
    int (*save_iterate)(void *opaque, MigStream *s, size_t budget, MigErr **errp);
    /* The END payload, guest stopped; may span several calls (0 = more). */
    int (*save_complete)(void *opaque, MigStream *s, size_t budget, MigErr **errp);
    /* Source end of migration.  On FAILED/CANCELLED the handler undoes
     * everything migration changed (a device returns to running, state
     * intact). */
    void (*save_cleanup)(void *opaque, MigOutcome outcome);
    /* ---- destination ---- */
    /* Optional: before the first section of this handler is loaded. */
    int (*load_setup)(void *opaque, MigErr **errp);
    /* Load one START/PART/END payload (h->type tells which; h->version_id is
     * the START's version).  Restartable; see above. */
    int (*load_state)(void *opaque, MigStream *s, const MigSectionHeader *h, MigErr **errp);
    /* Optional: the stream ended (EOF section read); called for every
     * iterative entry before the destination is declared completed.  A
     * negative errno (with *errp naming what is missing) fails the
     * migration: e.g. a device whose END section lacked its final record. */
    int (*load_complete)(void *opaque, MigErr **errp);
    /* Destination end of migration.  On FAILED/CANCELLED the handler discards
     * everything it loaded. */
    void (*load_cleanup)(void *opaque, MigOutcome outcome);
    /* ---- both ---- */
    /* Optional: the guest has just started running (run state -> running:
     * `cont`, a source resuming after a failed or cancelled migration, a
     * destination starting after a completed one).  A VFIO-style device that
     * a migration left stopped (e.g. in STOP after a completed migration,
     * then `cont` on the source) returns to RUNNING here.  Called by
     * impl/machine through mig_savevm_guest_resumed, after any cleanup hook;
     * it must be harmless when the device already runs. */
    void (*guest_resumed)(void *opaque);
} MigIterOps;

typedef struct MigFullOps {
    /* Optional; NULL = always sent. */
    bool (*needed)(void *opaque);
    int (*save)(void *opaque, MigStream *s, MigErr **errp);
    /* Load a whole FULL payload of `version_id`.  On error (or starvation:
     * return -EAGAIN) the device must be left exactly as it was. */
    int (*load)(void *opaque, MigStream *s, uint32_t version_id, MigErr **errp);
    /* Optional: the VMDESCRIPTION entry for this device (a new reference),
     * QEMU 7.2 shape: {"vmsd_name", "version", "fields", "subsections"}; the
     * registry adds "name" and "instance_id".  NULL = old-style entry. */
    json_t *(*describe)(void *opaque);
    /* Optional: after a successful load, whether the top-level subsection
     * `name` of the device's description arrived (1) or not (0).  The
     * destination checks it against the subsections the source's
     * VMDESCRIPTION lists for the device (what the source wrote); NULL = not
     * recorded, not checked. */
    int (*loaded_subsection)(void *opaque, const char *name);
} MigFullOps;

typedef enum MigSaveKind { MIG_SAVE_ITERATIVE, MIG_SAVE_FULL, MIG_SAVE_KIND__COUNT } MigSaveKind;

/* One registered entry; read-only for callers. */
typedef struct MigSaveEntry {
    char idstr[256];
    uint32_t instance_id;
    uint32_t version_id;
    uint32_t section_id;
    MigSaveKind kind;
    const MigIterOps *iter; /* MIG_SAVE_ITERATIVE */
    const MigFullOps *full; /* MIG_SAVE_FULL */
    void *opaque;
    /* vmstate-described entries (mig_savevm_register_vmsd) keep these. */
    const struct VmsDescription *vmsd;
} MigSaveEntry;

MigSavevm *mig_savevm_new(void);
void mig_savevm_free(MigSavevm *sv);

/* Register; returns the section_id (>= 1) or a negative errno (-EEXIST when
 * (idstr, instance_id) is taken, -EINVAL for an empty or >255-byte idstr). */
int mig_savevm_register_iterative(MigSavevm *sv, const char *idstr, uint32_t instance_id,
                                  uint32_t version_id, const MigIterOps *ops, void *opaque,
                                  MigErr **errp);
int mig_savevm_register_full(MigSavevm *sv, const char *idstr, uint32_t instance_id,
                             uint32_t version_id, const MigFullOps *ops, void *opaque,
                             MigErr **errp);
/* A FULL entry described by a vmstate description (impl/vmstate): saved with
 * vmstate_save, loaded with vmstate_load (transactional), described with
 * vmstate_describe_vmdesc; written when vmsd->needed is NULL or true.  The
 * section version is vmsd->version_id. */
struct VmsDescription;
int mig_savevm_register_vmsd(MigSavevm *sv, const char *idstr, uint32_t instance_id,
                             const struct VmsDescription *vmsd, void *obj, MigErr **errp);
/* Remove an entry (no-op when absent).  Not while a migration runs. */
void mig_savevm_unregister(MigSavevm *sv, const char *idstr, uint32_t instance_id);

/* Save / load / needed of a FULL entry, whichever way it was registered. */
int mig_savevm_entry_save_full(const MigSaveEntry *e, MigStream *s, MigErr **errp);
int mig_savevm_entry_load_full(const MigSaveEntry *e, MigStream *s, uint32_t version_id,
                               MigErr **errp);
bool mig_savevm_entry_needed(const MigSaveEntry *e);
/* Whether e's section is in every stream: iterative entries, and FULL ones
 * without a needed() (one with needed() is left out when it says no). */
bool mig_savevm_entry_always(const MigSaveEntry *e);

size_t mig_savevm_count(const MigSavevm *sv);
/* Entry i in registration order (NULL past the end). */
const MigSaveEntry *mig_savevm_entry(const MigSavevm *sv, size_t i);
const MigSaveEntry *mig_savevm_find(const MigSavevm *sv, const char *idstr, uint32_t instance_id);

/* Call guest_resumed of every iterative entry that has one, in registration
 * order. */
void mig_savevm_guest_resumed(const MigSavevm *sv);

/* The VMDESCRIPTION trailer document {"page_size": 4096, "devices": [...]}
 * for the FULL entries that are needed now (new reference). */
json_t *mig_savevm_vmdesc(const MigSavevm *sv);

#endif
