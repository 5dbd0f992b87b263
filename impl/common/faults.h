/*
 * faults.h - the fault-point registry: every libfiu point in engine code, with
 * the errno it injects and what it means (docs/style.md section 7,
 * docs/determinism.md section 5).
 *
 * A point is named <area>/<module>/<op>[/<variant>], lower case, and is never
 * reused for a different meaning.  At the point itself the code calls
 * fiu_return_on("<name>", -<ERRNO>) (or fiu_do_on) at the boundary, before
 * any state change, so a fired fault leaves nothing half-done.  A unit test
 * checks that every fiu_* name in impl/ is registered here and vice versa.
 *
 * To add a point: add one X(...) line below, keep the list sorted by name.
 */
#ifndef MIGCERT_FAULTS_H
#define MIGCERT_FAULTS_H

#include <stddef.h>

/* X(name, errno, sentence) */
#define MIG_FAULT_POINTS(X)                                                                   \
    X("mig/device/arc", EIO, "a device state arc fails before the device is asked")          \
    X("mig/device/read", EIO, "reading a device's saving data fails before the device is asked") \
    X("mig/device/write", EIO, "writing resume data to a device fails before it is asked")    \
    X("mig/migration/load", EIO, "the destination fails a START/FULL section before loading it") \
    X("mig/migration/start", EIO, "an outgoing migration fails to start before anything is sent") \
    X("mig/ram/iterate", EIO, "a RAM pre-copy step fails before sending its next pages")     \
    X("mig/stream/flush", EIO, "the stream cannot push buffered bytes to its transport")       \
    X("mig/stream/read", EIO, "the stream's transport read fails")                             \
    X("mig/transport/read", EIO, "a transport read fails")                                     \
    X("mig/transport/write", EIO, "a transport write fails")                                   \
    X("mig/vmstate/load", EINVAL, "loading a device's vmstate fails before any field is read") \
    X("mig/vmstate/save", EIO, "saving a device's vmstate fails before any field is written") \
    X("spice/conn/receive", EIO, "a SPICE connection's read fails: it closes before reading")  \
    X("spice/conn/send", EIO, "queuing a SPICE message fails: the connection closes, nothing queued") \
    X("spice/linker/link", EIO, "a SPICE link stage fails before its first byte")             \
    X("spice/main/migrate-begin", EIO, "client_migrate_info fails before any MIGRATE_BEGIN is sent") \
    X("spice/main/migrate-end", EIO, "the target refuses a migrating client's MIGRATE_END: it drops the client")

typedef struct MigFaultInfo {
    const char *name;
    int err; /* positive errno injected */
    const char *sentence;
} MigFaultInfo;

/* The registry as a table (constant data, not state). */
const MigFaultInfo *mig_faults_table(size_t *count);
/* Look a point up by name; NULL when it is not registered. */
const MigFaultInfo *mig_faults_find(const char *name);

#endif
