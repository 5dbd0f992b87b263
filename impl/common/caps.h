/*
 * caps.h - the migration capabilities as bits: MigCap (QEMU 7.2's names in
 * QEMU's order, then the project's own), MigCapMask and MIG_CAP_BIT.
 *
 * Owns: the capability numbering only.  The names, the JSON of
 * query-migrate-capabilities and the rules of which capability may be set
 * when are the engine's (impl/migration/migration.h, params.c).
 * Called by: every layer that changes behaviour by capability: impl/ram
 * (x-ignore-shared, x-page-flip, x-ram-share change the RAM records), impl/migration,
 * impl/machine, the harness.
 *
 * Invariants: a capability's number is its bit in a MigCapMask and its index
 * in the engine's name table; numbers are never reused, and new
 * capabilities go before MIG_CAP__COUNT (a MigCapMask holds 64).
 */
#ifndef MIGCERT_CAPS_H
#define MIGCERT_CAPS_H

#include <stdint.h>

typedef enum MigCap {
    /* QEMU 7.2's, in QEMU's order. */
    MIG_CAP_XBZRLE,
    MIG_CAP_RDMA_PIN_ALL,
    MIG_CAP_AUTO_CONVERGE,
    MIG_CAP_ZERO_BLOCKS,
    MIG_CAP_COMPRESS,
    MIG_CAP_EVENTS,
    MIG_CAP_POSTCOPY_RAM,
    MIG_CAP_X_COLO,
    MIG_CAP_RELEASE_RAM,
    MIG_CAP_BLOCK,
    MIG_CAP_RETURN_PATH,
    MIG_CAP_PAUSE_BEFORE_SWITCHOVER,
    MIG_CAP_MULTIFD,
    MIG_CAP_DIRTY_BITMAPS,
    MIG_CAP_POSTCOPY_BLOCKTIME,
    MIG_CAP_LATE_BLOCK_ACTIVATE,
    MIG_CAP_X_IGNORE_SHARED,
    MIG_CAP_VALIDATE_UUID,
    MIG_CAP_BACKGROUND_SNAPSHOT,
    MIG_CAP_ZERO_COPY_SEND,
    MIG_CAP_POSTCOPY_PREEMPT,
    /* Project capabilities. */
    /* Localhost page flipping (HOOK + SCM_RIGHTS, the "local" transport;
     * docs/protocol-qemu-stream.md).  Offered only on a loop with real fds;
     * migrate refuses it (-ENOTSUP) on a transport that cannot pass fds. */
    MIG_CAP_X_PAGE_FLIP,
    /* Shared-memory localhost migration: RAM in a memfd passed over the unix
     * socket with SCM_RIGHTS at setup, only device state in the stream
     * (docs/protocol-qemu-stream.md, shared memory).  Offered only on a loop
     * with real fds; migrate refuses it on a transport that cannot pass fds
     * or a machine whose RAM is not shared. */
    MIG_CAP_X_RAM_SHARE,
    /* The destination requires the VMDESCRIPTION trailer after the EOF
     * byte and a device list in it: what tells it a needed() subsection was
     * left out (docs/protocol-qemu-stream.md, the completeness rule).  The
     * stream does not change (a migcert source always writes the trailer);
     * management sets it on both sides when both offer it, so a QEMU
     * source, which does not, is never held to it. */
    MIG_CAP_X_REQUIRE_VMDESC,
    MIG_CAP__COUNT
} MigCap;

typedef uint64_t MigCapMask;
#define MIG_CAP_BIT(c) ((MigCapMask)1 << (c))

#endif
