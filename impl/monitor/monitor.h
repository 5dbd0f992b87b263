/*
 * monitor.h - a QMP-compatible JSON command server on the event loop.
 *
 * Owns: MigMonitor (a unix-socket listener and its clients) and the QMP
 * session rules of docs/protocol-qemu-stream.md section 15: the greeting, the
 * mandatory `qmp_capabilities` negotiation, request/response framing with
 * `id` echo, error classes (GenericError, CommandNotFound) and events with a
 * timestamp.  The monitor knows nothing of machines: the embedding program
 * registers a command table (name -> handler + argument spec), and the monitor
 * validates each request's arguments against the spec before calling the
 * handler, so a handler only ever sees arguments of the declared types.
 * impl/monitor/qmp-commands.c is the table that binds QMP to impl/machine.
 *
 * Called by: `migcert vm` (harness/runner/cmd-vm.c) and the unit tests.
 *
 * Invariants:
 * - never blocks: reads and writes are non-blocking; unsent output is queued
 *   per client and flushed when the socket is writable;
 * - input is a stream of JSON texts: a request may arrive in pieces (partial
 *   lines are buffered) and several may arrive in one read;
 * - bad input (malformed JSON, a non-object, a wrong argument type, an
 *   unknown command, a request before negotiation) gets an error reply and the
 *   connection goes on; nothing a client sends aborts the process;
 * - a client is freed from a deferred callback, never from inside one of its
 *   own callbacks, so a handler may emit events or stop the loop freely;
 * - event timestamps come from the loop clock (mig_loop_now_ns) plus an
 *   offset the embedding program may set (mig_monitor_set_clock_offset); the
 *   monitor never reads the wall clock itself, so simulated runs (offset 0)
 *   stay reproducible while `migcert vm` stamps events with epoch time as
 *   QEMU does;
 * - clients are kept in connection order; events go to them in that order;
 * - bounded: a request over 1 MiB is refused and skipped; a client whose
 *   unread replies and events pass MIG_MONITOR_MAX_OUTPUT is dropped with a
 *   log line (it never read them: nothing it could still use is lost);
 * - fds: only fds a client handed over with getfd (SCM_RIGHTS, QEMU's
 *   command) are ever given to a command, by name (mig_monitor_take_fd);
 *   the monitor answers getfd and closefd itself and holds at most
 *   MIG_MONITOR_MAX_FDS named fds.
 */
#ifndef MIGCERT_MONITOR_H
#define MIGCERT_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "../common/common.h"
#include "../common/loop.h"
#include "../transport/transport.h"

typedef struct MigMonitor MigMonitor;

/* Replies and events queued for one client that does not read them; past
 * this the client is dropped (a single message into an empty queue always
 * goes).  Far above any reply (the largest, a device-digest list, is a few
 * KiB) and any burst of events. */
#define MIG_MONITOR_MAX_OUTPUT (1u << 20)
/* Named fds (getfd) the monitor holds at once. */
#define MIG_MONITOR_MAX_FDS 16u

/* The type an argument must have.  INT accepts only JSON integers; NUMBER
 * accepts integers and reals (QEMU's "number"). */
typedef enum MigQmpArgType {
    MIG_QMP_ARG_STR,
    MIG_QMP_ARG_INT,
    MIG_QMP_ARG_NUMBER,
    MIG_QMP_ARG_BOOL,
    MIG_QMP_ARG_ARRAY,
    MIG_QMP_ARG_OBJECT,
    MIG_QMP_ARG_ANY,
    MIG_QMP_ARG__COUNT
} MigQmpArgType;

/* Name of each type as error messages quote it ("string", "integer", ...). */
extern const char *const mig_qmp_arg_type_names[MIG_QMP_ARG__COUNT];

typedef struct MigQmpArg {
    const char *name;
    MigQmpArgType type;
    bool optional;
} MigQmpArg;

/*
 * A command handler.  `args` is the request's "arguments" object (an empty
 * object when the request had none), already checked against the spec.  On
 * success the handler returns 0 and may set *ret to a new reference (NULL
 * replies {}).  On failure it returns a negative errno and sets *errp; the
 * client receives {"error": {"class": "GenericError", "desc": <msg>}}.
 */
typedef int (*MigQmpHandlerFn)(json_t *args, json_t **ret, void *opaque, MigErr **errp);

/*
 * A command that answers later (QEMU's client_migrate_info waits for the
 * SPICE client): inside its handler it takes a token with
 * mig_monitor_reply_later() and returns MIG_QMP_LATER; the reply goes out
 * when mig_qmp_later_done() is called, from any later callback.  Meanwhile
 * that client's next requests wait, as QEMU answers one monitor's commands
 * in order; other clients go on.  A client that goes away meanwhile gets
 * nothing (done still frees the token).
 */
#define MIG_QMP_LATER 1
typedef struct MigQmpLater MigQmpLater;
/* Only inside a handler; NULL otherwise. */
MigQmpLater *mig_monitor_reply_later(MigMonitor *m);
/* Reply: rc 0 with `ret` (stolen; NULL: {}), or rc < 0 with `err` (stolen).
 * Frees the token. */
void mig_qmp_later_done(MigQmpLater *l, int rc, json_t *ret, MigErr *err);

typedef struct MigQmpCommand {
    const char *name;
    MigQmpHandlerFn fn;
    /* Accepted arguments, terminated by {NULL}; NULL means "no arguments"
     * (or, with open_args, "anything: the handler checks"). */
    const MigQmpArg *args;
    /* When true, arguments not in `args` are passed to the handler (which
     * validates them, e.g. migrate-set-parameters); otherwise they are
     * refused naming the argument. */
    bool open_args;
} MigQmpCommand;

/* What the greeting announces: {"qemu": {major, minor, micro}, "package"}. */
typedef struct MigMonitorVersion {
    int major, minor, micro;
    const char *package; /* e.g. "migcert 2.1-dev" */
} MigMonitorVersion;

/* A monitor with no clients and no commands.  `version` is copied. */
MigMonitor *mig_monitor_new(MigLoop *loop, const MigMonitorVersion *version);

/* Close every client and the listener (removing its socket file), then free. */
void mig_monitor_free(MigMonitor *m);

/*
 * Register `n` commands; the table must outlive the monitor (static const
 * data).  `opaque` is passed to each handler.  Returns 0, or -EEXIST (and
 * registers nothing) when a name is already taken.
 */
int mig_monitor_add_commands(MigMonitor *m, const MigQmpCommand *cmds, size_t n, void *opaque);

/* Listen on a unix socket at `path` (a stale socket file is replaced);
 * every accepted connection becomes a client.  One listener per monitor. */
int mig_monitor_listen_unix(MigMonitor *m, const char *path, MigErr **errp);

/* Make an already-connected transport a client (the monitor owns it from now
 * on) and send it the greeting.  Returns 0 or a negative errno. */
int mig_monitor_add_client(MigMonitor *m, MigTransport *t);

/* Clients currently connected (closed ones are no longer counted). */
size_t mig_monitor_client_count(const MigMonitor *m);

/*
 * Send {"event": name, "data": data, "timestamp": {seconds, microseconds}} to
 * every client that completed negotiation.  Steals the reference to `data`;
 * NULL data omits the member (as QEMU does for STOP and RESUME).
 */
void mig_monitor_emit(MigMonitor *m, const char *name, json_t *data);

/*
 * Stamp events with loop time + offset_ns.  QEMU stamps events with the
 * wall clock (seconds and microseconds since the epoch); an embedding program
 * that runs on the real loop passes (realtime - monotonic) read once at start,
 * so timestamps read as epoch time without the engine reading the wall clock.
 * The default, 0, keeps the loop clock (the simulator's virtual time).
 */
void mig_monitor_set_clock_offset(MigMonitor *m, int64_t offset_ns);

/* Where the monitor says what a person should know (a client dropped for not
 * reading): one line without a newline.  NULL (the default): the trace
 * only. */
void mig_monitor_set_log(MigMonitor *m, void (*log)(void *opaque, const char *line),
                         void *opaque);

/*
 * The fd a client named with getfd, now owned by the caller (the name is
 * gone), or -ENOENT with "File descriptor named 'X' has not been found"
 * (QEMU's words).  Only for handlers: `migrate` and `migrate-incoming` with
 * uri fd:NAME.
 */
int mig_monitor_take_fd(MigMonitor *m, const char *name, MigErr **errp);
/* Named fds held now. */
size_t mig_monitor_fd_count(const MigMonitor *m);

/* Bytes queued for clients and not yet written (0 once all is flushed). */
size_t mig_monitor_pending_output(const MigMonitor *m);

/*
 * Check `args` (an object, or NULL for none) against a NULL-terminated spec:
 * missing required arguments, wrong types and (unless open_args) unknown
 * arguments are refused with an error naming the argument.  Used by the
 * monitor before each handler; exported for handlers that validate nested
 * objects.  Returns 0 or -EINVAL.
 */
int mig_qmp_check_args(const char *command, json_t *args, const MigQmpArg *spec,
                       bool open_args, MigErr **errp);

#endif
