/*
 * device.h - VFIO-style device migration: the v2 state machine, the
 * multi-arc transition algorithm, sessions, and the backends that carry a
 * device's calls (an in-process plugin table, the v1 adapter, or a harness
 * proxy).
 *
 * Owns: MigDevState and its tables, MigDevice (one device as the engine sees
 * it), MigDevBackend (the vtable a device is driven through), the plugin
 * loader (device-plugin.c) and the v1 adapter (device-v1.c).  Migration-stream
 * glue (iterative sections) lives in device-savevm.c (device-savevm.h).
 * Called by: impl/machine (devices of a machine), the savevm glue,
 * `migcert certify` (harness/runner/cmd-certify.c), tests.
 *
 * The states and arcs are the kernel's (docs/protocol-vfio.md sections 3-6):
 *
 *                     +---------- RESUMING
 *                     v              ^
 *   RUNNING <------> STOP <------> STOP_COPY          (no P2P: RUNNING<->STOP)
 *     ^  \            ^  \            ^
 *     |   RUNNING_P2P-+   +->RP       |               (P2P: via RUNNING_P2P)
 *     v        ^                      |
 *   PRE_COPY <-+-> PRE_COPY_P2P ------+               (PRE_COPY[_P2P]->STOP_COPY)
 *
 *   ERROR: entered only when an arc fails with no valid state left; left only
 *   by reset (to RUNNING).  Never requested.
 *
 * Transitions -> function that performs them:
 *   any multi-arc request        -> mig_device_set_state() (path by
 *                                   mig_dev_next_state, one backend arc each)
 *   every arc, reset, failure    -> dev_enter() in device.c: the only writer
 *                                   of the state field; checks the arc table,
 *                                   traces "device N: A -> B", emits the event
 *   anything -> RUNNING          -> mig_device_reset()
 *   abort of a migration         -> mig_device_abort() (source: back to
 *                                   RUNNING, state intact; destination: reset)
 *
 * Invariants: the cached state equals what the backend reports after every
 * call (a failed arc re-reads it); a path never passes through a saving-group
 * state (PRE_COPY, PRE_COPY_P2P, STOP_COPY) unless it starts and ends in that
 * group (PRE_COPY -> PRE_COPY_P2P -> STOP_COPY), so the arc that opens a
 * session is the last of its request; a device never trusts a length the backend
 * claims beyond the buffer it gave.  No globals, no clock, no blocking (the
 * backends are in-process calls; the harness proxy is not engine code).
 *
 * Plugins on the engine path (a machine's devices, the simulator) run
 * in-process through mig_dev_backend_plugin_new(): a plugin that crashes
 * takes the process with it.  `migcert certify` instead runs each plugin in a
 * child process behind a proxy MigDevBackend with a timeout on every call
 * (harness/runner/cmd-certify.c), so a crash or a hang is that plugin's
 * failure; certify is where an untrusted plugin is run first.
 *
 * device-savevm.h is this module's second public header: the registry glue
 * needs impl/savevm/savevm.h and this header must not (see there).
 */
#ifndef MIGCERT_DEVICE_DEVICE_H
#define MIGCERT_DEVICE_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/common.h"
#include "../common/loop.h"
#include "../common/trace.h"
#include "migcert/device.h"

typedef enum MigDevState {
    MIG_DEV_ERROR = MIGCERT_STATE_ERROR,
    MIG_DEV_STOP = MIGCERT_STATE_STOP,
    MIG_DEV_RUNNING = MIGCERT_STATE_RUNNING,
    MIG_DEV_STOP_COPY = MIGCERT_STATE_STOP_COPY,
    MIG_DEV_RESUMING = MIGCERT_STATE_RESUMING,
    MIG_DEV_RUNNING_P2P = MIGCERT_STATE_RUNNING_P2P,
    MIG_DEV_PRE_COPY = MIGCERT_STATE_PRE_COPY,
    MIG_DEV_PRE_COPY_P2P = MIGCERT_STATE_PRE_COPY_P2P,
    MIG_DEV_STATE__COUNT
} MigDevState;

#define MIG_DEV_F_STOP_COPY MIGCERT_FEATURE_STOP_COPY
#define MIG_DEV_F_P2P MIGCERT_FEATURE_P2P
#define MIG_DEV_F_PRE_COPY MIGCERT_FEATURE_PRE_COPY
#define MIG_DEV_F_ALL (MIG_DEV_F_STOP_COPY | MIG_DEV_F_P2P | MIG_DEV_F_PRE_COPY)

/* "STOP_COPY", "RUNNING_P2P", ...; "?" past the end. */
const char *mig_dev_state_name(MigDevState s);
/* Parse a state name (as printed); -EINVAL when unknown. */
int mig_dev_state_parse(const char *name, MigDevState *out);
/* "STOP_COPY", "STOP_COPY+P2P", "STOP_COPY+PRE_COPY", "STOP_COPY+P2P+PRE_COPY". */
const char *mig_dev_features_name(uint32_t features);
/* One of the four defined feature sets. */
bool mig_dev_features_valid(uint32_t features);
/* The state exists on a device with these features (ERROR never does). */
bool mig_dev_state_supported(MigDevState s, uint32_t features);
/* A saving-group state: PRE_COPY, PRE_COPY_P2P, STOP_COPY. */
bool mig_dev_state_saving(MigDevState s);
/* `from -> to` is one direct arc a driver implements for `features`. */
bool mig_dev_arc_allowed(MigDevState from, MigDevState to, uint32_t features);
/* The kernel's next-step algorithm: the next state on the way from cur to
 * target.  -EINVAL when cur or target is unsupported (or ERROR) or the
 * target cannot be reached (STOP_COPY -> PRE_COPY*).  cur == target gives
 * *next = cur. */
int mig_dev_next_state(MigDevState cur, MigDevState target, uint32_t features,
                       MigDevState *next);
/* The whole path: the states visited after cur, *n of them (0 = no-op). */
int mig_dev_path(MigDevState cur, MigDevState target, uint32_t features,
                 MigDevState out[MIG_DEV_STATE__COUNT], size_t *n);

/* ---- backends ---- */

typedef struct MigDevBackend MigDevBackend;

/* Every op returns 0 / a byte count or a negative errno with *errp set where
 * the backend knows more (a crashed plugin, a timeout). */
typedef struct MigDevBackendOps {
    int (*arc)(MigDevBackend *b, MigDevState to, MigErr **errp);
    int (*get_state)(MigDevBackend *b, MigDevState *out, MigErr **errp);
    /* Raw v2 semantics: >0 bytes, 0 end (STOP_COPY), -ENOMSG nothing now. */
    ssize_t (*read)(MigDevBackend *b, void *buf, size_t len, MigErr **errp);
    ssize_t (*write)(MigDevBackend *b, const void *buf, size_t len, MigErr **errp);
    int (*precopy_info)(MigDevBackend *b, uint64_t *initial, uint64_t *dirty, MigErr **errp);
    int (*data_size)(MigDevBackend *b, uint64_t *len, MigErr **errp);
    int (*reset)(MigDevBackend *b, MigErr **errp);
    /* Test hooks; NULL or -ENOTSUP when the device has none. */
    int (*guest_run)(MigDevBackend *b, uint32_t ops, MigErr **errp);
    int (*digest)(MigDevBackend *b, uint64_t *out, MigErr **errp);
    int (*force_error)(MigDevBackend *b, MigErr **errp);
    void (*free)(MigDevBackend *b);
} MigDevBackendOps;

/* Where a backend gets a buffer it hands to the plugin (the v1 adapter's
 * resume transaction, given to v1_resume_chunk).  get: a buffer of `len`
 * bytes, valid until the next get or put; put: the backend is done with
 * every buffer it got (it is being freed).  All NULL: malloc and free.  The
 * certify sandbox sets one whose buffers end right before a guard page, as
 * every other buffer it hands a plugin (harness/runner/certify-jail.c). */
typedef struct MigDevBufAlloc {
    void *(*get)(void *opaque, size_t len);
    void (*put)(void *opaque);
    void *opaque;
} MigDevBufAlloc;

struct MigDevBackend {
    const MigDevBackendOps *ops;
    MigDevBufAlloc alloc; /* set by the caller after creation; zero: malloc */
    char name[64];     /* device model name, for messages */
    uint32_t features; /* the feature set this instance runs with */
    /* The plugin's instance for in-process backends (tests compare device
     * memory through it); NULL for out-of-process ones. */
    MigcertDevice *instance;
};

/* An in-process backend over a plugin table: the v2 calls directly, or the
 * v1 adapter for a MIGCERT_PROTOCOL_V1 table.  cfg->features must be a
 * defined subset of the plugin's (v1: of STOP_COPY|PRE_COPY).  `label`
 * names the device in errors (e.g. the .so file); NULL = the plugin's name. */
MigDevBackend *mig_dev_backend_plugin_new(const MigcertDevicePlugin *p,
                                          const MigcertDeviceConfig *cfg, const char *label,
                                          MigErr **errp);
/* The v1 adapter alone (device-v1.c); used by the function above. */
MigDevBackend *mig_dev_backend_v1_new(const MigcertDevicePlugin *p, const MigcertDeviceConfig *cfg,
                                      const char *label, MigErr **errp);
/* Internal to device-plugin.c and device-v1.c: call the plugin's create and
 * allocate a backend object of `size` bytes (its first member a
 * MigDevBackend) with ops, name, features and instance filled in. */
void *mig__dev_backend_create(const MigcertDevicePlugin *p, const MigcertDeviceConfig *cfg,
                              const char *label, const MigDevBackendOps *ops, size_t size,
                              MigErr **errp);

/* Load a plugin with dlopen: checks the symbol and the ABI version.  On
 * success *handle is the dlopen handle (close with mig_dev_plugin_close).
 * Errors name the file: "plugin X.so: ABI version 7 is not supported (this
 * migcert speaks 1)", "plugin X.so: no symbol migcert_device_plugin_v1". */
const MigcertDevicePlugin *mig_dev_plugin_load(const char *path, void **handle, MigErr **errp);
void mig_dev_plugin_close(void *handle);
/* Check a table (ABI version, size, mandatory members for its protocol, and
 * its vmstate description when it has one). */
int mig_dev_plugin_check(const MigcertDevicePlugin *p, const char *label, MigErr **errp);
/* Check an optional vmstate description (MigcertDevicePlugin.vmstate_json):
 * NULL is fine; otherwise valid JSON holding one -dump-vmstate entry
 * {"Name", "version_id", ["minimum_version_id"], "Description": {"name",
 * "version_id", "Fields": [{"field", "version_id", "size", ...}],
 * ["Subsections"]}}.  -EINVAL with "plugin <label>: vmstate description
 * ..." naming what is wrong and where. */
int mig_dev_plugin_check_vmstate(const char *json, const char *label, MigErr **errp);

/* ---- the device ---- */

typedef struct MigDevice MigDevice;
typedef void (*MigDevEventCb)(MigDevice *dev, MigDevState from, MigDevState to, void *opaque);

/* Takes ownership of `be`.  The device starts in the backend's state. */
MigDevice *mig_device_new(const char *name, MigDevBackend *be, MigErr **errp);
void mig_device_free(MigDevice *dev);
const char *mig_device_name(const MigDevice *dev);
uint32_t mig_device_features(const MigDevice *dev);
MigDevState mig_device_state(const MigDevice *dev);
MigDevBackend *mig_device_backend(MigDevice *dev);
/* Trace arcs into t (timestamps from loop when given). */
void mig_device_set_trace(MigDevice *dev, MigTrace *t, MigLoop *loop);
void mig_device_set_event_cb(MigDevice *dev, MigDevEventCb cb, void *opaque);

/* Move to `target` arc by arc.  Refuses (-EINVAL, nothing executed) an
 * unsupported target, ERROR, or an unreachable one.  When arc k fails, the
 * device re-reads the backend's state (the state after arc k-1, or ERROR)
 * and returns the error. */
int mig_device_set_state(MigDevice *dev, MigDevState target, MigErr **errp);
/* Re-read the backend's state after something outside this layer changed
 * it (a device that failed underneath, a test hook). */
void mig_device_refresh(MigDevice *dev);
/* Reset: back to RUNNING from anything, sessions dropped. */
int mig_device_reset(MigDevice *dev, MigErr **errp);
/* Undo a migration: a saving source returns to RUNNING with its state
 * intact; a resuming or failed destination is reset. */
int mig_device_abort(MigDevice *dev, MigErr **errp);

/* Saving session data.  Returns >0 bytes, -EAGAIN when nothing is available
 * now (PRE_COPY*), 0 at the end of the stream (STOP_COPY), or an error.
 * Checks the device's answers: more bytes than asked, 0 in PRE_COPY, ENOMSG
 * in STOP_COPY, or stop-copy data beyond the limit are -EPROTO. */
ssize_t mig_device_read(MigDevice *dev, void *buf, size_t len, MigErr **errp);
/* Resuming session: hand all len bytes to the device. */
int mig_device_write(MigDevice *dev, const void *buf, size_t len, MigErr **errp);
int mig_device_precopy_info(MigDevice *dev, uint64_t *initial, uint64_t *dirty, MigErr **errp);
int mig_device_data_size(MigDevice *dev, uint64_t *len, MigErr **errp);
/* Stop-copy data: by default (no limit) a read fails with -EPROTO when the
 * device has handed out more than MIG_DEV_STOP_COPY_STALL_BYTES since the
 * remaining size it reports (data_size) last fell (a device whose pending
 * data never reaches zero); the size of the device or of its first estimate
 * does not matter.  An explicit limit (bytes > 0; certify bounds its small
 * devices by their own estimate) replaces that rule: the read that passes
 * it fails.  0 returns to the progress rule. */
#define MIG_DEV_STOP_COPY_STALL_BYTES ((uint64_t)1 << 30)
void mig_device_set_stop_copy_limit(MigDevice *dev, uint64_t bytes);
/* The progress rule's bound for this device instead of
 * MIG_DEV_STOP_COPY_STALL_BYTES (0: that default again).  For a test that
 * drives the rule with less data (under valgrind, harness/unit/test-scale.h). */
void mig_device_set_stop_copy_stall(MigDevice *dev, uint64_t bytes);

/* The arcs executed since the last clear (for conformance checks). */
size_t mig_device_arc_log(const MigDevice *dev, MigDevState from[], MigDevState to[], size_t max);
void mig_device_arc_log_clear(MigDevice *dev);
/* Session bytes handed out by the device (mig_device_read) and taken by it
 * (mig_device_write) over the device's lifetime. */
uint64_t mig_device_bytes_read(const MigDevice *dev);
uint64_t mig_device_bytes_written(const MigDevice *dev);

#endif
