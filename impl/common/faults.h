/*
 * faults.h - the fault-point registry: every libfiu point in engine code, with
 * the errno it injects and what it means (docs/style.md section 7,
 * docs/determinism.md section 5).
 *
 * A point is named <area>/<module>/<op>[/<variant>], lower case, and is never
 * reused for a different meaning.  Code names a point by its id,
 * MIG_FAULT_<ID>, never by its string, and takes the errno from here: at the
 * boundary, before any state change (so a fired fault leaves nothing
 * half-done), it writes one of
 *
 *     MIG_FAULT_RETURN(MIG_FAULT_STREAM_READ);           return the errno
 *     MIG_FAULT_RETURN_ERR(MIG_FAULT_RAM_ITERATE, errp, "ram: ...");
 *                                                        the same, with a MigErr
 *     int r = mig_fault_fire(MIG_FAULT_DEVICE_ARC);      0 or the errno, to act on
 *
 * A point hit once per page or per transport call asks through the loop's
 * gate instead (MIG_FAULT_RETURN_GATED, mig_fault_fire_gated; MigFaultGate
 * below): the same decision, without libfiu's lookup for the hits no spec
 * can fail.
 *
 * so a point that is not registered does not compile, and the errno a point
 * injects is written once.  A harness may choose another errno for a hit
 * (`errno=EPIPE` in a fault spec, handed over as libfiu's failnum); the
 * registered one is the default.  A test checks that every registered point
 * is used in impl/ and that impl/ calls no fiu_* directly.
 *
 * To add a point: add one X(...) entry below, keep the list sorted by name.
 *
 * Stream-damage points (".../omit-..."): the side goes on as if nothing
 * happened and writes a stream that lacks something (a device section, a
 * RAM page, the EOF, a subsection), as a buggy or hostile source would; the
 * errno is what the destination must fail with (EPROTO), not one the source
 * sees (scenarios/stream-damage/).  The x-page-flip ones (pipe-break,
 * splice-short) fire only on a real page pipe, never in the simulator:
 * harness/pytest/test_vm_pageflip.py shows them between processes.
 */
#ifndef MIGCERT_FAULTS_H
#define MIGCERT_FAULTS_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fiu-local.h"

/* X(ID, name, errno, sentence) */
#define MIG_FAULT_POINTS(X)                                                                       \
    X(DEVICE_ARC, "mig/device/arc", EIO,                                                          \
      "a device state arc fails before the device is asked")                                      \
    X(DEVICE_READ, "mig/device/read", EIO,                                                        \
      "reading a device's saving data fails before the device is asked")                          \
    X(DEVICE_WRITE, "mig/device/write", EIO,                                                      \
      "writing resume data to a device fails before it is asked")                                 \
    X(MIGRATION_LOAD, "mig/migration/load", EIO,                                                  \
      "the destination fails a START/FULL section before loading it")                             \
    X(MIGRATION_OMIT_EOF, "mig/migration/omit-eof", EPROTO,                                       \
      "stream damage: the source ends its stream without the EOF and the VMDESCRIPTION")          \
    X(MIGRATION_OMIT_SECTION, "mig/migration/omit-section", EPROTO,                               \
      "stream damage: the source leaves out the device (FULL) section it was about to write")    \
    X(MIGRATION_OMIT_VMDESC, "mig/migration/omit-vmdesc", EPROTO,                                 \
      "stream damage: the source writes the EOF but not the VMDESCRIPTION after it")              \
    X(MIGRATION_START, "mig/migration/start", EIO,                                                \
      "an outgoing migration fails to start before anything is sent")                             \
    X(RAM_ITERATE, "mig/ram/iterate", EIO,                                                        \
      "a RAM pre-copy step fails before sending its next pages")                                  \
    X(RAM_OMIT_PAGE, "mig/ram/omit-page", EPROTO,                                                 \
      "stream damage: the source leaves out the RAM page it was about to send")                  \
    X(STREAM_FLUSH, "mig/stream/flush", EIO,                                                      \
      "the stream cannot push buffered bytes to its transport")                                   \
    X(STREAM_READ, "mig/stream/read", EIO,                                                        \
      "the stream's transport read fails")                                                        \
    X(TRANSPORT_PIPE_BREAK, "mig/transport/pipe-break", EPIPE,                                    \
      "stream damage: x-page-flip's pipe closes half-way into a page, the source sends on")       \
    X(TRANSPORT_READ, "mig/transport/read", EIO,                                                  \
      "a transport read fails")                                                                   \
    X(TRANSPORT_SPLICE_SHORT, "mig/transport/splice-short", EPROTO,                               \
      "stream damage: x-page-flip splices half a page, sends its record, and splices no more")    \
    X(TRANSPORT_WRITE, "mig/transport/write", EIO,                                                \
      "a transport write fails")                                                                  \
    X(VMSTATE_LOAD, "mig/vmstate/load", EINVAL,                                                   \
      "loading a device's vmstate fails before any field is read")                                \
    X(VMSTATE_OMIT_SUBSECTION, "mig/vmstate/omit-subsection", EPROTO,                             \
      "stream damage: the source leaves out a needed subsection its VMDESCRIPTION lists")        \
    X(VMSTATE_SAVE, "mig/vmstate/save", EIO,                                                      \
      "saving a device's vmstate fails before any field is written")                              \
    X(SPICE_CONN_RECEIVE, "spice/conn/receive", EIO,                                              \
      "a SPICE connection's read fails: it closes before reading")                                \
    X(SPICE_CONN_SEND, "spice/conn/send", EIO,                                                    \
      "queuing a SPICE message fails: the connection closes, nothing queued")                     \
    X(SPICE_LINKER_LINK, "spice/linker/link", EIO,                                                \
      "a SPICE link stage fails before its first byte")                                           \
    X(SPICE_MAIN_DO_SEAMLESS, "spice/main/do-seamless", EIO,                                      \
      "the target cannot take a client's DO_SEAMLESS: it drops the client")                       \
    X(SPICE_MAIN_MIGRATE_BEGIN, "spice/main/migrate-begin", EIO,                                  \
      "client_migrate_info fails before any MIGRATE_BEGIN is sent")                               \
    X(SPICE_MAIN_MIGRATE_END, "spice/main/migrate-end", EIO,                                      \
      "the target refuses a migrating client's MIGRATE_END: it drops the client")                 \
    X(SPICE_SERVER_MIGRATE_DATA_LOAD, "spice/server/migrate-data-load", EIO,                      \
      "a target channel cannot take the client's migration data: that channel client closes")    \
    X(SPICE_SERVER_MIGRATE_DATA_SEND, "spice/server/migrate-data-send", EIO,                      \
      "a source channel cannot build its migration data: that channel client closes")

/* Points only a real page pipe reaches (x-page-flip; the simulator's link
 * has none, so no scenario can): each names the test that reaches it
 * between real processes.  `list-faults --unreached` leaves them out and
 * says so; harness/pytest/test_faults_registry.py checks that the named
 * test names the point.  X(name, test) */
#define MIG_FAULT_POINTS_REAL_FDS_ONLY(X)                                                          \
    X("mig/transport/pipe-break", "harness/pytest/test_vm_pageflip.py")                           \
    X("mig/transport/splice-short", "harness/pytest/test_vm_pageflip.py")

/* The test that reaches point `name` outside the scenarios, or NULL. */
static inline const char *mig_fault_reached_outside_scenarios(const char *name)
{
#define MIG_FAULT_OUTSIDE_(point, test)                                                            \
    if (!strcmp(name, point))                                                                      \
        return test;
    MIG_FAULT_POINTS_REAL_FDS_ONLY(MIG_FAULT_OUTSIDE_)
#undef MIG_FAULT_OUTSIDE_
    return NULL;
}

/* Points that wrap another: every hit of `outer` is followed at once by
 * exactly one hit of `inner` (the stream's read fires mig/stream/read, then
 * asks its transport for one read, which fires mig/transport/read), and a
 * failure of either returns the same errno to the same caller before
 * anything changes.  So when a run hits both equally often on one side
 * (no transport read there comes from elsewhere), failing outer's hit k
 * and inner's hit k are the same failure of the same read: same outcome,
 * same virtual time, same errors, only the point's name in the trace
 * differs.  A sweep (`migcert run --sweep`) then fails every hit of inner
 * and only the first MIG_FAULT_WRAP_SWEPT hits of outer.  X(outer, inner) */
#define MIG_FAULT_WRAPS(X) X(STREAM_READ, TRANSPORT_READ)
#define MIG_FAULT_WRAP_SWEPT 16u

typedef enum MigFaultId {
#define MIG_FAULT_ID_(id, name, err, sentence) MIG_FAULT_##id,
    MIG_FAULT_POINTS(MIG_FAULT_ID_)
#undef MIG_FAULT_ID_
    MIG_FAULT__COUNT
} MigFaultId;

typedef struct MigFaultInfo {
    const char *name;
    int err; /* positive errno injected */
    const char *sentence;
} MigFaultInfo;

/* The registry as a table indexed by MigFaultId (constant data, not state). */
const MigFaultInfo *mig_faults_table(size_t *count);
/* Look a point up by name; NULL when it is not registered. */
const MigFaultInfo *mig_faults_find(const char *name);

/* A point's name and registered (positive) errno; constants for a constant id. */
static inline const char *mig_fault_name(MigFaultId id)
{
    switch (id) {
#define MIG_FAULT_NAME_(id, name, err, sentence)                                                   \
    case MIG_FAULT_##id:                                                                           \
        return name;
        MIG_FAULT_POINTS(MIG_FAULT_NAME_)
#undef MIG_FAULT_NAME_
    default:
        return "";
    }
}

static inline int mig_fault_errno(MigFaultId id)
{
    switch (id) {
#define MIG_FAULT_ERRNO_(id, name, err, sentence)                                                  \
    case MIG_FAULT_##id:                                                                           \
        return err;
        MIG_FAULT_POINTS(MIG_FAULT_ERRNO_)
#undef MIG_FAULT_ERRNO_
    default:
        return EIO;
    }
}

/* Whether point `id` fires on this hit: 0, or the negative errno to inject
 * (the registered one, or the one the harness chose as libfiu's failnum: a
 * failnum of 1, what a plain fiu_enable passes, means the registered one).
 * Always 0 when built without libfiu (FIU=0). */
static inline int mig_fault_fire(MigFaultId id)
{
#ifdef FIU_ENABLE
    int failnum = fiu_fail(mig_fault_name(id));
    if (!failnum)
        return 0;
    return failnum > 1 ? -failnum : -mig_fault_errno(id);
#else
    (void)id;
    return 0;
#endif
}

/*
 * A gate: hits a point may take without asking libfiu.  Whoever arms
 * libfiu with a decider (the harness's injector, harness/runner/
 * faults-spec.h) may hand one to the engine through the loop
 * (MigLoop.faults); the engine's hot points (one hit per page or per
 * transport call) ask through it.  left[id] is how many more hits of point
 * id the decider has promised not to fail: such a hit only takes one off
 * (the decider counts left's drop as hits, so every hit is still counted,
 * and a `#N` still means the Nth); at 0 the hit goes to libfiu as any other.
 * The decider owns the array and points left at the running side's; the
 * engine only decrements.  NULL gate (the default, and every real
 * process): every hit asks libfiu.
 */
typedef struct MigFaultGate {
    uint64_t *left; /* [MIG_FAULT__COUNT] */
} MigFaultGate;

/* mig_fault_fire(id), through `gate` (may be NULL). */
static inline int mig_fault_fire_gated(const MigFaultGate *gate, MigFaultId id)
{
#ifdef FIU_ENABLE
    if (gate && gate->left[id]) {
        gate->left[id]--;
        return 0;
    }
    return mig_fault_fire(id);
#else
    (void)gate;
    (void)id;
    return 0;
#endif
}

/* Return the point's errno from the enclosing function when it fires. */
#define MIG_FAULT_RETURN(id)                                                                       \
    do {                                                                                           \
        int mig_fault_err_ = mig_fault_fire(id);                                                   \
        if (mig_fault_err_)                                                                        \
            return mig_fault_err_;                                                                 \
    } while (0)

/* MIG_FAULT_RETURN through a gate (mig_fault_fire_gated). */
#define MIG_FAULT_RETURN_GATED(gate, id)                                                           \
    do {                                                                                           \
        int mig_fault_err_ = mig_fault_fire_gated((gate), (id));                                  \
        if (mig_fault_err_)                                                                        \
            return mig_fault_err_;                                                                 \
    } while (0)

/* The same, setting *errp to the message first (fmt and its arguments). */
#define MIG_FAULT_RETURN_ERR(id, errp, ...)                                                        \
    do {                                                                                           \
        int mig_fault_err_ = mig_fault_fire(id);                                                   \
        if (mig_fault_err_)                                                                        \
            return mig_err_set((errp), mig_fault_err_, __VA_ARGS__);                               \
    } while (0)

#endif
