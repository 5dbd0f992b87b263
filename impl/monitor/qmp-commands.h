/*
 * qmp-commands.h - the QMP command table of a machine: binds the monitor
 * (impl/monitor/monitor.h) to impl/machine, with QEMU 7.2's command names,
 * arguments and reply fields (docs/protocol-qemu-stream.md section 15), so one
 * driver (harness/pytest/qmp.py) drives QEMU and `migcert vm` alike.
 *
 * Commands: query-status, stop, cont, quit, query-migrate,
 * query-migrate-capabilities, migrate-set-capabilities,
 * query-migrate-parameters, migrate-set-parameters, migrate {uri},
 * migrate_cancel, migrate-incoming {uri}, migrate-continue {state} (an fd:
 * uri of migrate and migrate-incoming names an fd handed over with getfd,
 * fd:NAME; an fd number is refused),
 * x-query-ram-digest (-> {"sha256": hex} of all guest RAM),
 * x-query-device-digest (-> {"devices": [{"id": idstr, "instance-id": n,
 * "kind": "vmstate"|"vfio", "digest": hex SHA-256, ["state": device FSM
 * state]}, ...]}, in the machine's section order; RAM is left out).  A
 * vmstate-described device (a FULL section) is digested over the vmstate it
 * would send now; a VFIO-style device (an iterative section) over the state
 * bytes its embedder feeds through MigQmpMachine.device_state, since only
 * the device model can read them.  Management compares a source at stop time
 * with the destination after the migration, as with the RAM digest.
 * Events reach clients through mig_qmp_machine_event, which the embedder
 * passes as MigMachineOptions.event with the monitor as event_opaque: STOP,
 * RESUME, MIGRATION {status} (with capability `events`), MIGRATION_PASS.
 *
 * Called by: `migcert vm` (harness/runner/cmd-vm.c).
 */
#ifndef MIGCERT_QMP_COMMANDS_H
#define MIGCERT_QMP_COMMANDS_H

#include "../machine/machine.h"
#include "monitor.h"

/* Adds bytes to a digest under way (x-query-device-digest). */
typedef void MigQmpDigestFeed(void *ctx, const void *buf, size_t len);

/* The binding: caller-owned, must outlive the monitor. */
typedef struct MigQmpMachine {
    MigMachine *machine;
    /* `quit`: called from the quit handler; NULL stops the machine's loop
     * (mig_loop_stop).  Either way the reply is still written: the loop
     * stops only after the current callback returns. */
    void (*quit)(void *opaque);
    void *quit_opaque;
    /* A release that predates query-migrate-capabilities (it offers the empty
     * mask: docs/protocol-qemu-stream.md section 12): leave
     * out both capability commands, so management sees CommandNotFound and
     * offers the empty mask for this side. */
    bool no_caps_commands;
    /* x-query-device-digest for an iterative section: feed the device's
     * guest-visible state (memory, registers) through feed(ctx, ...), set
     * *state to its state name (mig_dev_state_name) or NULL, and return 1;
     * return 0 for a section that is not a device (RAM) or that the embedder
     * does not know: it is left out.  NULL: only vmstate-described devices
     * are reported.  Called with device_state_opaque. */
    int (*device_state)(void *opaque, const MigSaveEntry *e, MigQmpDigestFeed *feed, void *ctx,
                        const char **state);
    void *device_state_opaque;
    /* Set by mig_qmp_add_machine_commands: where fd:NAME URIs are looked up
     * (getfd). */
    MigMonitor *monitor;
} MigQmpMachine;

/* Register the machine commands on `mon`.  Returns 0 or -EEXIST. */
int mig_qmp_add_machine_commands(MigMonitor *mon, MigQmpMachine *b);

/* A MigMachineOptions.event callback: `monitor` is the MigMonitor; data is
 * borrowed (the monitor takes its own reference); NULL or an empty object
 * sends the event without "data", as QEMU does for STOP and RESUME. */
void mig_qmp_machine_event(void *monitor, const char *name, json_t *data);

#endif
