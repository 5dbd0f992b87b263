/*
 * exec-internal.h - what the executor's files share: one case's run state
 * (Run), its two machine sides (Side), the side views of the sim loop
 * (SideLoop), the source fake-gpu's arc recorder (ArcRec) and the
 * device-data drop trigger (DropTrigger).  Only for the executor's own
 * files (exec-*.c, oracle-*.c); everyone else uses exec.h.
 *
 * The files, in the order a case meets them:
 *   exec-case.c         exec_run_case: the case driver, a short sequence of
 *                       calls to the files below; the harness trace lines
 *   exec-side-view.c    side views of the sim loop and of a mem transport
 *                       (which side runs: fault specs count hits per side)
 *   exec-side.c         side assembly: a machine, its fake devices, the
 *                       VFIO-style fake-gpu with its recorder and shadow
 *   exec-mgmt.c         management policy: machine types, applicability,
 *                       capability negotiation and return path, parameters,
 *                       pre-flight, and what management does on its own
 *                       while the migration runs (resume / destroy)
 *   exec-steps.c        the scenario step interpreter and the end wait
 *   exec-drop.c         the arc recorder in front of the fake-gpu backend
 *                       and the device-data drop trigger it feeds
 *   exec-spice.c        SPICE: each side's server and devices, the fake
 *                       client over sim links, client_migrate_info, the
 *                       client steps and its scripted faults
 *   exec-spice-keys.c   the servers' RSA ticket keys, made once per process
 *   oracle-outcome.c    outcome and run states against `expect` / pair rules
 *   oracle-memory.c     guest RAM after the migration
 *   oracle-devices.c    fake devices; the fake-gpu's arcs, state and memory
 *   oracle-resources.c  timers, transports, fds, heap blocks, mapped bytes
 *   oracle-spice.c      the client's screen, images, sequences, server and
 *                       the servers' leftovers
 *   exec-selftest.c     EXEC_SELFTEST_*: break one thing so its oracle fails
 *
 * Naming: cross-file functions are exec__*, file-local ones static.
 * Invariants: everything a case builds hangs off its Run, which lives on
 * exec_run_case's stack; nothing here outlives a case (the heap oracle
 * checks that) but the table of SPICE keys (exec-spice-keys.c), which the
 * heap oracle takes off.  Code that runs on behalf of one side calls
 * exec__side_enter() first and restores the previous side after, so the
 * fault injector counts the hit on that side.
 */
#ifndef MIGCERT_RUNNER_EXEC_INTERNAL_H
#define MIGCERT_RUNNER_EXEC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "device/device-savevm.h"
#include "devices/releases.h"
#include "exec.h"
#include "heap-count.h"
#include "machine/machine.h"
#include "client/fake-client.h"
#include "sim/sim.h"
#include "transport/transport.h"
#include "workload/workload.h"

typedef struct Run Run;

/* ---- exec-side-view.c ---- */

/* A side's view of the sim loop: its callbacks tell the injector which side
 * runs, and stop being delivered once the side was killed (dead). */
typedef struct SideLoop {
    MigLoop base;
    MigLoop *inner;
    FaultInjector *inj;
    MigFaultSide side;
    bool dead; /* killed: its callbacks are never delivered again */
    struct SideSrc *zombies; /* its timers and defers that came due once it was dead (freed with it) */
} SideLoop;

SideLoop *exec__side_loop_new(MigLoop *inner, FaultInjector *inj, MigFaultSide side);
/* Make sl's side the injector's current one; *prev gets the one to restore
 * (fault_injector_set_side(inj, prev)) when the side's code returns. */
void exec__side_enter(SideLoop *sl, MigFaultSide *prev);
/* A transport of sl's side over `inner`; *live counts the open ones. */
MigTransport *exec__side_transport_new(SideLoop *sl, MigTransport *inner, long *live);
/* Close a side transport whose side loop is already gone. */
void exec__side_transport_close_orphan(MigTransport *t);

/* ---- exec-drop.c: the arc recorder ---- */

#define ARC_REC_MAX 512

enum { ARC_PHASE_PRE_COPY, ARC_PHASE_STOP_COPY, ARC_PHASE__COUNT };

typedef struct ArcChunk {
    uint64_t dev_off; /* offset of its first byte in the phase's data */
    uint64_t len;
    uint64_t data_at; /* stream offset of its first byte (after the DATA header) */
} ArcChunk;

typedef struct ArcPhase {
    bool sized;    /* entered in the current session, size known */
    uint64_t size; /* PRE_COPY: the snapshot (initial bytes); STOP_COPY: data_size */
    uint64_t read; /* bytes the engine read in this phase */
    ArcChunk *c;   /* one per read, i.e. per DATA record */
    size_t n, cap;
} ArcPhase;

typedef struct ArcRec {
    MigDevBackend base;
    MigDevBackend *inner;
    MigDevState cur; /* the state the device last reported */
    MigDevState from[ARC_REC_MAX], to[ARC_REC_MAX];
    size_t n;
    size_t total; /* arcs taken, also past ARC_REC_MAX */
    int fail_on;  /* device-error step: fail on entering this state (-1: no) */
    MigTrace *trace;
    MigLoop *loop;
    /* the saving session (source only: mig set) */
    MigMigration *mig;          /* whose stream the engine writes the reads into */
    uint64_t sessions;          /* saving sessions opened so far */
    ArcPhase ph[ARC_PHASE__COUNT];
    void (*on_read)(void *opaque); /* after each chunk read in a phase */
    void *opaque;
} ArcRec;

/* A recorder in front of `inner` (which it owns from now on). */
ArcRec *exec__arc_rec_new(MigDevBackend *inner);

/* ---- exec-drop.c: the device-data drop trigger ---- */

/* A `drop: {device-data: P%}` step: the link drops at the stream byte that
 * carries byte floor(P% of size) (the last one for 100%) of the source
 * fake-gpu's data of one phase.  Armed by the step; fires (mig_link_drop_at)
 * as soon as the engine has read that byte from the device, which is before
 * the byte can reach the link; judged once the migration is over. */
typedef struct DropTrigger {
    bool armed, fired, judged;
    size_t step;       /* 1-based, for messages */
    int line;
    int pct;
    int phase;         /* ARC_PHASE_*, -1 = the one the device sends data in next */
    uint64_t sessions; /* the device's sessions before this migration: older
                          sessions' data is not this migration's */
    uint64_t dev_byte, size; /* once fired: the byte and the phase's size */
    uint64_t link_byte;      /* its stream offset: the link carries this many */
    uint64_t record_at;      /* the DATA record holding it */
    size_t record_no;        /* 1-based, among the phase's DATA records */
} DropTrigger;

/* The source recorder's on_read hook (opaque: the Run). */
void exec__drop_on_read(void *opaque);
/* Step i (`st`, a device-data drop) arms the run's trigger. */
int exec__drop_trigger_arm(Run *run, size_t i, const ScnStep *st, MigErr **errp);
/* Say in the trace whether the armed drop landed (once per trigger). */
void exec__drop_trigger_judge(Run *run);

/* ---- exec-spice.c: the client of a case with `spice:` ---- */

typedef struct ExecSpice {
    Run *run;
    SideLoop *sl;          /* the client's side view (MIG_FAULT_SIDE_CLIENT) */
    struct FakeClient *client; /* NULL once it went away */
    struct FakeClient *bystander; /* spice.target-client: another client of the destination */
    MigLink **links;       /* every connection it made, and to which side */
    MigFaultSide *link_to;
    size_t nlinks, cap;
    uint32_t first_session; /* its session when the case started */
    uint64_t nmsgs;        /* messages it recorded (disconnect-at-message) */
    MigLoopSource *disconnect_defer;
    char disconnect_why[96];
    bool gone;             /* it disconnected (a step or a scripted fault) */
    char last_error[320];  /* kept when it went away */
    FakeClientMigrations migs;
    uint8_t ever_type[EXEC_SPICE_CHANNELS_MAX], ever_id[EXEC_SPICE_CHANNELS_MAX];
    size_t never;          /* the channels it ever linked, kept when it went away */
    bool info_pending;     /* client_migrate_info asked, not answered */
    int info_result;
} ExecSpice;

/* ---- the case ---- */

typedef struct Side {
    SideLoop *sl;
    MigMachine *m;
    const char *release;
    char machine_type[32];
    MigFakeDevice *devs[16];
    MigFakeDevice *before[16]; /* src: state when the migration started */
    size_t ndevs;
    bool killed;
    /* the VFIO-style device (fake-gpu), when the machine has one */
    ArcRec *gpu_rec;            /* its backend, owned by gpu */
    MigDevice *gpu;
    MigDevSection *gpu_sec;
    MigDevBackend *gpu_shadow;  /* src: same seed and guest writes, never migrated */
    MigLoopSource *gpu_dirtier; /* src: the guest writing device memory */
    struct FakeSpice *spice;    /* fake-qxl, fake-snd, fake-vmc, fake-input (with `spice:`) */
    Run *run;
} Side;

struct Run {
    const RunCase *c;
    const Scenario *s;
    RunResult *r;
    const char *src_rel, *dst_rel; /* the pair's releases (or the scenario's) */
    MigLoop *loop;
    MigTrace *trace;
    FaultInjector *inj;
    Side src, dst;
    MigWorkload *wl;
    MigLink *link;
    bool migrating; /* a migrate step ran */
    bool start_refused; /* the last migrate was refused at once */
    uint64_t gpu_sessions; /* the src fake-gpu's saving sessions at the last migrate */
    DropTrigger drop;   /* the last device-data drop step */
    bool src_was_running;
    bool preflight_failed; /* management refused to start (pre-flight) */
    char dst_machine_type[32]; /* what management starts the destination with */
    bool mgmt_resumed;     /* management ran `cont` on a source that completed
                              before its destination failed (no return path) */
    MigErr *paused_err;    /* the source's RAM or devices changed while it sat
                              paused in postmigrate (found before that `cont`) */
    MigErr *oracle;        /* the first failed step or oracle (the verdict) */
    long live_transports;  /* harness transports not yet closed */
    char *tracebuf;
    size_t tracelen;
    FILE *tracef;
    ExecSpice *spice;      /* with `spice:` */
    MigTransport *selftest_spice_t; /* EXEC_SELFTEST_SPICE_LEFTOVER's client end */
};

/* exec-case.c: a "harness" line in the case's trace. */
void exec__log(Run *run, const char *fmt, ...) MIG_PRINTF(2, 3);

/* ---- exec-side.c ---- */

/* Build one side: its machine (on a side view of the run's loop), then the
 * devices of `sm` as `release` and `machine_type` have them.  Returns 0, or
 * a negative errno with errp (-ENODEV: a device the release cannot make). */
int exec__side_create(Run *run, Side *sd, MigFaultSide side, const ScnMachine *sm,
                      const char *release, const char *machine_type, bool incoming,
                      uint64_t dev_seed, MigErr **errp);
void exec__side_destroy(Side *sd);
MigStatus exec__side_status(const Side *sd);

/* ---- exec-spice.c ---- */

/* The side's SPICE server and its devices (nothing without `spice:`). */
int exec__spice_side_create(Run *run, Side *sd, MigErr **errp);
void exec__spice_side_destroy(Side *sd);
/* After set-up: run->spice, and the client linked to the source. */
int exec__spice_start(Run *run, MigErr **errp);
/* Free the client, its links and run->spice (before the machines). */
void exec__spice_free(Run *run);
/* The client goes (what the oracle needs is kept). */
void exec__spice_close_client(Run *run);
/* Management's client_migrate_info on the source; `wait`: until the
 * client answered or the server's timeout. */
int exec__spice_migrate_info(Run *run, bool wait, MigErr **errp);
/* The steps client-migrate-info and client. */
int exec__spice_step(Run *run, size_t i, const ScnStep *st, MigErr **errp);
/* A side died: the client's connections to it reset. */
void exec__spice_side_killed(Run *run, MigFaultSide side);

/* The SPICE pair rules (releases.h, mig_spice_pair_predict) for a case:
 * how its client follows a migration at the file's own releases and at the
 * case's (`src_rel` -> `dst_rel`), and whether the file scripts more than
 * the plain flow (a client fault, a step, an expected error, lost channel,
 * end or migration kind other than what its own releases give).  A
 * scripted file whose kind changes with the pair cannot run there
 * (exec_case_applicable: EXEC_NA_SPICE); a plain one expects the pair's. */
typedef struct ExecSpicePair {
    bool on;                /* the file has `spice:` and a client */
    ScnClientMig own, pair; /* the kind at the file's releases, at the case's */
    bool scripted;
    MigSpicePrediction p;   /* at the case's releases (its reason, its error) */
    bool same_rule;         /* the same rule decided at both (e.g. the same versions) */
} ExecSpicePair;
void exec__spice_pair(const Scenario *s, const char *src_rel, const char *dst_rel, ExecSpicePair *out);
/* Whether the case's client follows another kind, or the same kind by
 * another rule (other versions), than at the file's own releases: the
 * file's trace patterns are its own releases'. */
bool exec__spice_pair_differs(const Run *run);

/* ---- exec-mgmt.c ---- */

MigCapMask exec__caps_mask(const char *const *names);
/* The machine type management gives the source of src_rel -> dst_rel. */
const char *exec__src_machine_type(const Scenario *s, const char *src_rel, const char *dst_rel);
/* ... and the destination, given the source's (smt). */
const char *exec__dst_machine_type(const char *smt, const char *dst_rel);
/* Capabilities, return path and parameters on both machines.  Returns 0
 * (r->skipped when the pair cannot give a required capability) or a
 * negative errno with r->error. */
int exec__mgmt_configure(Run *run);
/* The pre-flight compatibility check before a migrate: 0, or -ENOTSUP /
 * -EPROTO with "pre-flight: ..." in errp. */
int exec__mgmt_preflight(Run *run, MigErr **errp);
/* What management does on its own between events (resume, destroy). */
void exec__mgmt_watch(Run *run);

/* ---- exec-steps.c ---- */

void exec__sync_phase(Run *run);
/* Run step i of the scenario: 0, or a negative errno with errp (the case
 * then fails with that message). */
int exec__run_step(Run *run, size_t i, MigErr **errp);
/* Loop predicate (opaque: the Run): the migration is over on both sides. */
bool exec__migration_over(void *opaque);

/* ---- oracle-*.c: each returns 0 or a negative errno with errp ---- */

/* The observed outcome: completed failed cancelled timeout none. */
const char *exec__outcome_of(Run *run);
int exec__oracle_outcome(Run *run, const char *outcome, MigErr **errp);
int exec__oracle_memory(Run *run, const char *outcome, MigErr **errp);
int exec__oracle_devices(Run *run, const char *outcome, MigErr **errp);
int exec__oracle_gpu(Run *run, const char *outcome, MigErr **errp);
int exec__oracle_spice(Run *run, const char *outcome, MigErr **errp);

/* What the resource oracle compares with: taken before the case builds
 * anything. */
typedef struct ExecBaseline {
    long fds;
    bool heap_on; /* false under valgrind: it checks the heap itself */
    HeapCount heap;
    HeapCount keys; /* exec__spice_keys_held() then */
    int64_t mapped;
} ExecBaseline;

void exec__resources_baseline(ExecBaseline *b, bool spice);
/* Once both machines are freed: transports, loop sources, fds. */
int exec__oracle_resources(Run *run, const ExecBaseline *b, MigErr **errp);
/* Last of all: heap blocks and mapped bytes; writes a failure into r. */
void exec__oracle_heap(const ExecBaseline *b, const void *kept, RunResult *r);

/* ---- exec-spice-keys.c ---- */

/* The ticket key a SPICE server on `loop` would make now (it forks
 * loop->prng): made on the first ask, then kept for the process; NULL when
 * the table is full or libcrypto failed (the server makes its own). */
const struct SpiceTicketKey *exec__spice_key(MigLoop *loop);
/* The heap blocks and bytes the kept keys hold. */
void exec__spice_keys_held(HeapCount *out);

/* ---- exec-selftest.c ---- */

/* What a resource self-test left behind, to take back after the oracle. */
typedef struct ExecLeftovers {
    MigLoopSource *timer;
    MigTransport *t[2];
    int fd;
    void *heap;
    void *map; /* MAP_FAILED: none */
} ExecLeftovers;

/* SPICE self-tests, from the SPICE oracle: break what the client sees on
 * the server it ended on (`screen`: its framebuffer, before the screen
 * check; otherwise an image, playback or port message, after it) ... */
void exec__selftest_break_spice(Run *run, Side *end, bool screen);
/* ... or leave a link half-open on the source (taken back with the rest). */
void exec__selftest_leave_spice(Run *run);
/* The client repeats what it sent (record, inputs), or the guest's playback
 * skips a frame, while the end guest still runs: called first thing by the
 * SPICE oracle. */
void exec__selftest_break_spice_client(Run *run);

void exec__selftest_init(ExecLeftovers *l);
/* Break a result of the migration on purpose (page, field, gpu, arc). */
void exec__selftest_break(Run *run, const char *outcome);
/* Break the paused source before management checks it (PAUSED_*). */
void exec__selftest_break_paused(Run *run);
/* Leave a resource behind (timer, fd, heap, map, transport). */
void exec__selftest_leave(Run *run, ExecLeftovers *l);
/* Take back the timer, fd and transports (after the resource oracle). */
void exec__selftest_take_back(Run *run, ExecLeftovers *l);
/* Take back the heap block and mapping (after the heap oracle). */
void exec__selftest_free_late(ExecLeftovers *l);

#endif
