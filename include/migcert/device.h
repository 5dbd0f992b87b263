/*
 * migcert/device.h - the vendor ABI for device migration plugins.
 *
 * A vendor builds a shared object that exports one C function,
 *
 *     const MigcertDevicePlugin *migcert_device_plugin_v1(void);
 *
 * (MIGCERT_DEVICE_PLUGIN_SYMBOL) returning a static table whose first member
 * is `abi_version`.  migcert loads it with dlopen(), refuses a table whose
 * abi_version it does not know (newer or older), and drives the device
 * through this table only: the header has no engine types, and a plugin
 * links against nothing from migcert.  Compile with
 * `pkg-config --cflags migcert` (build/migcert.pc).
 *
 * The model is the kernel's VFIO migration v2 uAPI (docs/protocol-vfio.md
 * sections 2-8), with the data fd replaced by read()/write() callbacks:
 *   - states keep the kernel's numbers (ERROR 0 ... PRE_COPY_P2P 7);
 *   - set_state() performs ONE direct arc of the table for the device's
 *     feature set; migcert computes multi-arc paths itself (the kernel's
 *     vfio_mig_get_next_state algorithm) and never asks for anything else.
 *     A pair that is not a direct arc, an unknown state value or ERROR must
 *     be refused with -EINVAL and change nothing (the certification suite
 *     asks for such pairs on purpose);
 *   - a saving session opens on RUNNING->PRE_COPY, RUNNING_P2P->PRE_COPY_P2P
 *     and STOP->STOP_COPY and ends on leaving the saving group; read() hands
 *     out the initial snapshot first, then dirty data.  In PRE_COPY* a read
 *     with nothing available now returns -ENOMSG (never 0); in STOP_COPY it
 *     returns 0, every time, once the whole state has been read;
 *   - a resuming session opens on STOP->RESUMING; write() takes any
 *     segmentation of the saved bytes; RESUMING->STOP validates the whole
 *     stream and fails (staying in RESUMING, or going to ERROR) when it is
 *     truncated, corrupt or followed by extra bytes;
 *   - from ERROR only reset() leaves (to RUNNING); reset() from any state
 *     drops every session and returns to RUNNING.
 * The older v1 protocol (device_state bits, pending_bytes, staged buffers)
 * is accepted too: set `protocol` to MIGCERT_PROTOCOL_V1 and fill the v1_*
 * members instead of the v2 ones; migcert adapts it.
 *
 * Where a plugin runs: the engine (a machine's devices, `migcert run`, the
 * simulator) loads a plugin into its own process and calls this table
 * directly, so a plugin that crashes or hangs there takes the engine down
 * with it.  `migcert certify` runs the plugin in a sandbox instead: a child
 * process per case, every call with a timeout, so a crash or a hang is
 * reported as that plugin's failure.  Certify a plugin before the engine
 * runs it.
 *
 * ABI rules: members are only ever appended; `struct_size` tells migcert how
 * much of the table the plugin knows.  Bump MIGCERT_DEVICE_ABI_VERSION (and
 * the symbol's suffix) when a member changes meaning.  All callbacks return 0
 * (or a byte count) on success and a negative errno on failure.
 */
#ifndef MIGCERT_DEVICE_H
#define MIGCERT_DEVICE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MIGCERT_DEVICE_ABI_VERSION 1u
#define MIGCERT_DEVICE_PLUGIN_SYMBOL "migcert_device_plugin_v1"

/* Device states: the kernel's enum vfio_device_mig_state values. */
enum {
    MIGCERT_STATE_ERROR = 0,
    MIGCERT_STATE_STOP = 1,
    MIGCERT_STATE_RUNNING = 2,
    MIGCERT_STATE_STOP_COPY = 3,
    MIGCERT_STATE_RESUMING = 4,
    MIGCERT_STATE_RUNNING_P2P = 5,
    MIGCERT_STATE_PRE_COPY = 6,
    MIGCERT_STATE_PRE_COPY_P2P = 7,
};

/* Feature flags: the kernel's VFIO_MIGRATION_* (STOP_COPY is mandatory).
 * Defined sets: STOP_COPY, +P2P, +PRE_COPY, +P2P+PRE_COPY. */
enum {
    MIGCERT_FEATURE_STOP_COPY = 1u << 0,
    MIGCERT_FEATURE_P2P = 1u << 1,
    MIGCERT_FEATURE_PRE_COPY = 1u << 2,
};

/* v1 device_state bits (kernels 5.8-5.17).  110b is the error state. */
enum {
    MIGCERT_V1_RUNNING = 1u << 0,
    MIGCERT_V1_SAVING = 1u << 1,
    MIGCERT_V1_RESUMING = 1u << 2,
};

enum { MIGCERT_PROTOCOL_V2 = 2, MIGCERT_PROTOCOL_V1 = 1 };

typedef struct MigcertDevice MigcertDevice; /* the plugin's instance, opaque */

/* What migcert asks of a new instance. */
typedef struct MigcertDeviceConfig {
    uint32_t struct_size; /* sizeof(MigcertDeviceConfig) of the caller */
    uint32_t features;    /* a defined subset of the plugin's `features` */
    uint64_t seed;        /* the run's seed for this device (content, workload) */
    uint64_t mem_size;    /* device memory hint in bytes; 0 = plugin default */
} MigcertDeviceConfig;

typedef struct MigcertDevicePlugin {
    uint32_t abi_version; /* MIGCERT_DEVICE_ABI_VERSION: always first */
    uint32_t struct_size; /* sizeof(MigcertDevicePlugin) the plugin was built with */
    const char *name;     /* device model, e.g. "acme-gpu" */
    const char *version;  /* the vendor's release string */
    uint32_t protocol;    /* MIGCERT_PROTOCOL_V2 or _V1 */
    uint32_t features;    /* MIGCERT_FEATURE_* supported (v1: ignored, treated
                           * as STOP_COPY|PRE_COPY) */
    /* Optional: the device's state described as one entry of QEMU's
     * -dump-vmstate JSON, or NULL:
     *   {"Name": "acme-gpu", "version_id": 1, "minimum_version_id": 1,
     *    "Description": {"name": "acme-gpu", "version_id": 1,
     *      "minimum_version_id": 1, "Fields": [{"field": "regs",
     *      "version_id": 0, "field_exists": false, "size": 4}, ...],
     *      "Subsections": [...]}}
     * migcert refuses to load a plugin whose description is not valid JSON
     * of that shape, naming the plugin and the faulty member. */
    const char *vmstate_json;

    /* Instance lifetime.  create() returns NULL (and may set errno) when the
     * config is refused, e.g. a feature set it cannot honour.  A new
     * instance is RUNNING with no session. */
    MigcertDevice *(*create)(const MigcertDeviceConfig *cfg);
    void (*destroy)(MigcertDevice *dev);
    /* Back to RUNNING from any state (ERROR included); drops sessions. */
    int (*reset)(MigcertDevice *dev);
    /* The current state (v2: MIGCERT_STATE_*; v1: device_state bits). */
    uint32_t (*get_state)(MigcertDevice *dev);

    /* ---- v2 ---- */
    /* Perform the single direct arc from the current state to `state`. */
    int (*set_state)(MigcertDevice *dev, uint32_t state);
    /* Saving session: copy at most `len` bytes into buf and return how many;
     * -ENOMSG in PRE_COPY* when nothing is available now; 0 in STOP_COPY at
     * the end; -EINVAL outside a saving session. */
    ssize_t (*read)(MigcertDevice *dev, void *buf, size_t len);
    /* Resuming session: take `len` bytes; returns len or a negative errno. */
    ssize_t (*write)(MigcertDevice *dev, const void *buf, size_t len);
    /* PRE_COPY* only (-EINVAL elsewhere): bytes of the initial snapshot still
     * to read (never grows) and dirty bytes (starts at 0). */
    int (*precopy_info)(MigcertDevice *dev, uint64_t *initial_bytes, uint64_t *dirty_bytes);
    /* Estimate of the STOP_COPY data length, valid in any state. */
    int (*data_size)(MigcertDevice *dev, uint64_t *stop_copy_length);

    /* ---- v1 (protocol == MIGCERT_PROTOCOL_V1) ---- */
    /* Write device_state bits; on failure the state is unchanged, or 110b. */
    int (*v1_set_state)(MigcertDevice *dev, uint32_t bits);
    /* pending_bytes: what the driver still has to hand out; no side effect. */
    uint64_t (*v1_pending_bytes)(MigcertDevice *dev);
    /* Reading data_offset + data_size: stage the next buffer and return its
     * size (> 0) with *data pointing at it, valid until the next call. */
    ssize_t (*v1_stage)(MigcertDevice *dev, const void **data);
    /* Resume one transaction: the chunk written at data_offset, then its
     * size written to data_size.  Sizes must match the source's. */
    int (*v1_resume_chunk)(MigcertDevice *dev, const void *data, size_t size);

    /* ---- test hooks for certification (optional; NULL = case skipped) ---- */
    /* Act as the guest: `ops` writes to device state (memory, registers).
     * Allowed while the device runs; -EBUSY when it is stopped. */
    int (*guest_run)(MigcertDevice *dev, uint32_t ops);
    /* A digest of all guest-visible state, for comparing source and
     * destination; valid in every state. */
    int (*digest)(MigcertDevice *dev, uint64_t *out);
    /* Simulate an internal failure: the device enters ERROR now. */
    int (*force_error)(MigcertDevice *dev);
} MigcertDevicePlugin;

typedef const MigcertDevicePlugin *(*MigcertDevicePluginFn)(void);

/* The one symbol a plugin exports. */
const MigcertDevicePlugin *migcert_device_plugin_v1(void);

#ifdef __cplusplus
}
#endif

#endif
