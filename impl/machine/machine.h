/*
 * machine.h - one virtual machine: RAM, the device registry, the guest run
 * state and its migration engine, on one MigLoop.
 *
 * Owns: MigMachine.  It creates the RAM ("pc.ram" of the requested size, plus
 * any extra blocks), registers the "ram" handler first in its MigSavevm
 * registry (devices register after it), holds the run state and a
 * MigMigration wired to all of that, and turns URIs into transports.
 * Called by: impl/monitor (QMP commands), `migcert vm`, the scenario
 * executor, impl/device (registers handlers via mig_machine_savevm), the
 * workload (fakes/workload, through MigGuestOps).
 *
 * Run states (query-status names):
 *   prelaunch (-S) --cont--> running <--stop/cont--> paused
 *   inmigrate (incoming) --completed--> running (or paused with -S)
 *   running --migration completed--> postmigrate (source stays paused)
 *   running --stop-and-copy--> finish-migrate --failed/cancelled--> running
 * STOP and RESUME events are emitted on every change of `running`; every
 * change to running also calls the iterative handlers' guest_resumed
 * (savevm.h), so a VFIO-style device stopped by a completed migration runs
 * again on `cont`.
 * With capability return-path the source stays in finish-migrate until the
 * destination's SHUT: postmigrate on SHUT(0), running again otherwise.
 * A source that completed a migration with x-ram-share gave its RAM to the
 * destination: it never runs again (cont and migrate are refused, -EBUSY).
 *
 * Invariants: all time from the loop, no globals; the machine owns its loop
 * sources and frees them in mig_machine_free.
 */
#ifndef MIGCERT_MACHINE_H
#define MIGCERT_MACHINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "../common/common.h"
#include "../common/loop.h"
#include "../migration/migration.h"
#include "../savevm/savevm.h"
#include "../ram/ram.h"
#include "../spice/spice-main.h"
#include "../spice/spice-server.h"

typedef enum MigRunState {
    MIG_RUN_STATE_PRELAUNCH,
    MIG_RUN_STATE_RUNNING,
    MIG_RUN_STATE_PAUSED,
    MIG_RUN_STATE_INMIGRATE,
    MIG_RUN_STATE_FINISH_MIGRATE,
    MIG_RUN_STATE_POSTMIGRATE,
    MIG_RUN_STATE__COUNT
} MigRunState;

const char *mig_run_state_name(MigRunState s);

typedef struct MigMachine MigMachine;

/* Called when the guest starts or stops running (the workload ticks only
 * while running). */
typedef struct MigGuestOps {
    void (*run_changed)(void *opaque, bool running);
} MigGuestOps;

/* What else follows the machine (devices of the harness: the display,
 * sound and char devices behind SPICE): the guest starts or stops running;
 * an outgoing or incoming migration ended with `status`.  Called in the
 * order added, after the guest hook. */
typedef struct MigMachineObserver {
    void (*run_changed)(void *opaque, bool running);
    void (*migration_finished)(void *opaque, bool incoming, MigStatus status);
} MigMachineObserver;

typedef struct MigMachineOptions {
    const char *name;         /* trace prefix ("src", "dst"); default "vm" */
    const char *machine_type; /* default MIG_MACHINE_DEFAULT_TYPE */
    uint64_t ram_size;        /* bytes of "pc.ram" (multiple of 4096); 0 = 128 MiB */
    bool incoming;            /* start in inmigrate, waiting for migrate-incoming */
    bool start_paused;        /* -S: prelaunch; an incoming machine stays paused */
    MigCapMask caps_known;    /* capabilities this release knows; 0 = all supported */
    /* RAM in shared memory (memfds), which x-ram-share hands to a
     * destination on the same host instead of copying it. */
    bool mem_share;
    /* Events (STOP, RESUME, MIGRATION, MIGRATION_PASS); data borrowed. */
    void (*event)(void *opaque, const char *name, json_t *data);
    void *event_opaque;
} MigMachineOptions;

#define MIG_MACHINE_DEFAULT_TYPE "mc-2.1"

MigMachine *mig_machine_new(MigLoop *loop, const MigMachineOptions *o, MigErr **errp);
void mig_machine_free(MigMachine *m);

MigLoop *mig_machine_loop(MigMachine *m);
MigRam *mig_machine_ram(MigMachine *m);
MigSavevm *mig_machine_savevm(MigMachine *m);
MigMigration *mig_machine_migration(MigMachine *m);
const char *mig_machine_name(const MigMachine *m);
const char *mig_machine_type(const MigMachine *m);

/* The guest workload hook (one; NULL ops detaches). */
void mig_machine_set_guest(MigMachine *m, const MigGuestOps *ops, void *opaque);
/* Add / remove an observer (remove: the same ops and opaque). */
void mig_machine_add_observer(MigMachine *m, const MigMachineObserver *ops, void *opaque);
void mig_machine_remove_observer(MigMachine *m, const MigMachineObserver *ops, void *opaque);

/* The machine's SPICE server (QEMU's -spice): main, inputs and cursor
 * channels; display, sound and char devices add their own channels to it.
 * An outgoing migration that ends tells it (MIGRATE_END / SWITCH_HOST on
 * completion, MIGRATE_CANCEL otherwise).  -EEXIST when it has one. */
int mig_machine_add_spice(MigMachine *m, const SpiceServerConfig *cfg, MigErr **errp);
SpiceServer *mig_machine_spice(const MigMachine *m);      /* NULL without */
SpiceMain *mig_machine_spice_main(const MigMachine *m);   /* NULL without */

MigRunState mig_machine_run_state(const MigMachine *m);
bool mig_machine_running(const MigMachine *m);
/* QMP stop / cont.  cont is refused while incoming or migrating to the end
 * (inmigrate, finish-migrate) with -EBUSY. */
int mig_machine_stop(MigMachine *m, MigErr **errp);
int mig_machine_cont(MigMachine *m, MigErr **errp);

/* Outgoing migration.  URIs: "unix:PATH" (connect), "fd:N" (an inherited fd;
 * the machine owns it), "file:PATH" (write a stream file). */
int mig_machine_migrate(MigMachine *m, const char *uri, MigErr **errp);
int mig_machine_migrate_transport(MigMachine *m, MigTransport *t, MigErr **errp);
/* Incoming migration: "unix:PATH" (listen, accept one), "fd:N", "file:PATH"
 * (restore).  Only on a machine created with .incoming. */
int mig_machine_migrate_incoming(MigMachine *m, const char *uri, MigErr **errp);
int mig_machine_incoming_transport(MigMachine *m, MigTransport *t, MigErr **errp);
/* migrate_cancel: see mig_migration_cancel. */
int mig_machine_migrate_cancel(MigMachine *m);
/* migrate-continue {state}. */
int mig_machine_migrate_continue(MigMachine *m, const char *state, MigErr **errp);

void mig_machine_query_migrate(MigMachine *m, MigInfo *out);
/* query-status reply {"running": bool, "status": name} (new reference). */
json_t *mig_machine_query_status_json(MigMachine *m);
/* x-query-ram-digest: hex SHA-256 of all guest RAM. */
void mig_machine_ram_digest(MigMachine *m, char out[65]);

#endif
