/*
 * exec.h - the scenario executor: one case = one scenario run on the
 * simulator loop with a seed, an optional version pair and extra faults,
 * followed by the oracles of docs/architecture.md section 6.1.
 *
 * Owns: RunCase / RunResult and exec_run_case().  The executor is split
 * into one file per concern (exec-case.c the driver, exec-side*.c,
 * exec-mgmt.c, exec-steps.c, exec-drop.c, oracle-*.c, exec-selftest.c);
 * exec-internal.h is what they share and lists them.
 * Called by: `migcert run` (cmd-run.c), `migcert list-faults --unreached`,
 * unit tests.
 *
 * How a case runs:
 *   1. a sim loop (harness/sim) seeded with the case seed and a trace; the
 *      fault injector (faults-spec.h) armed with the scenario's faults plus
 *      the extra ones;
 *   2. src and dst machines (impl/machine) each on a *side view* of the sim
 *      loop: a MigLoop whose callbacks are trampolines that tell the injector
 *      which side runs (fault specs count hits per side) and that stop
 *      delivering once the side was killed; RAM + the deterministic workload
 *      (fakes/workload) on src; fake devices as their release and machine
 *      type have them (fakes/devices/releases.h) on both;
 *   3. management: capabilities intersected (a release that does not know
 *      the query offers the empty mask), plus return-path whenever both
 *      sides offer it (unless the scenario says `return-path: false`),
 *      parameters set; the steps run in order (`migrate` makes a new mem
 *      link per attempt, with the scenario's bandwidth/latency; a `drop:
 *      {device-data: P%}` is placed from the source fake-gpu's recorder,
 *      which sees every chunk the engine reads and where it goes in the
 *      stream: the link drops at the stream byte that carries that share of
 *      the device's PRE_COPY snapshot or STOP_COPY data, and the trace says
 *      whether the destination failed in that DATA record); then the
 *      run waits, in virtual time, until the migration is over on both sides
 *      (bounded by the scenario timeout).  Meanwhile (exec-mgmt.c
 *      exec__mgmt_watch) management starts the destination paused and
 *      resumes it once the source completed (destroys it when the source
 *      failed after it loaded everything), and, without a return path,
 *      resumes a source that completed before its destination failed: the
 *      outcome is then `failed` with the destination's error;
 *   4. oracles, in this order, first failure wins:
 *      outcome   completed => dst completed and running, src postmigrate
 *                (a src that completed while dst failed and nobody resumed
 *                it: "the guest is lost");
 *                failed/cancelled => src running, dst not running;
 *                and the observed outcome/error matches `expect` (or, with a
 *                --pair, the pair rules of releases.h);
 *      memory    completed => every dst page equals the src page at stop
 *                time (mig_workload_verify); otherwise the src RAM still
 *                matches its own generations (and, when management resumed
 *                a completed src, its RAM and devices were unchanged at
 *                that `cont`);
 *      devices   completed => mig_fake_device_check_migrated (field by field
 *                or the documented transform); otherwise the src devices
 *                equal their state before the migration; the VFIO-style
 *                fake-gpu: every arc it took (recorded in front of its
 *                backend) is in the arc table and matches the engine's arc
 *                log, it ends in the state the protocol says, and its memory
 *                and registers equal the source's byte for byte (completed)
 *                or a shadow device that got the same guest writes but was
 *                never migrated (failed/cancelled);
 *      resources after freeing everything: no timer/defer left on the sim
 *                loop, no harness mem transport left open, no more open
 *                fds than before the case (/proc/self/fd); and, last of
 *                all, once the loop, trace, injector and errors are freed
 *                too, no more live heap blocks than before the case
 *                (heap-count.h: the process's malloc family, counted
 *                exactly): "resources: N heap block(s), M byte(s) still
 *                allocated after the case".  What legitimately outlives a
 *                case is built before the baseline (libcrypto's first-use
 *                initialisation by the trace's SHA-256, libfiu's
 *                fiu_init); the trace buffer, echoed to trace_out after the
 *                check, is taken off exactly, and so are the SPICE ticket
 *                keys a case adds to the process's table
 *                (exec-spice-keys.c: each the key its server would
 *                make).  Under valgrind the block counters are off and
 *                that check with them: the valgrind lane
 *                (ci/lane-full-valgrind) still gives the leak's stack.
 *                Then no more bytes mapped with mmap than before (guest
 *                RAM, transport rings; heap-count.h counts mmap/munmap/
 *                mremap): "resources: N byte(s) still mapped"; valgrind
 *                does not see those, so this check always runs.
 *                All resource checks judge only a case that ran a migrate
 *                and passed every other oracle.
 *   Pair rules (mig_pair_predict): when the pair breaks, the case expects
 *   `failed` with the error management's pre-flight gives ("pre-flight:
 *   DEVICE: field F", or the engine's "Machine type" refusal with
 *   `preflight: false`), whatever the scenario expects; when the scenario's
 *   own releases break but the pair does not, it expects `completed`.
 *   Pre-flight: before each migrate, management compares the source's
 *   -dump-vmstate (its machine type's descriptions) with the destination's
 *   (vmstate_check_compat); a break is a refused start (outcome failed,
 *   source untouched, nothing sent).
 *   A fault that fired because of an extra (--fault, --sweep) spec relaxes
 *   `expect` to "completed or failed"; the oracles still apply.  Only the
 *   extra specs count there (RunResult.extra_fired): the scenario's own
 *   faults firing relax nothing.
 */
#ifndef MIGCERT_RUNNER_EXEC_H
#define MIGCERT_RUNNER_EXEC_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "faults-spec.h"
#include "scenario.h"

/* Oracle self-test: the executor breaks one thing on purpose so a test can
 * prove that the matching oracle turns the case red and names it. */
typedef enum ExecSelftest {
    EXEC_SELFTEST_NONE,
    EXEC_SELFTEST_PAGE,      /* flip a byte of a destination page (memory) */
    EXEC_SELFTEST_FIELD,     /* change a field of a destination device (devices) */
    EXEC_SELFTEST_GPU,       /* change a byte of the destination fake-gpu memory */
    EXEC_SELFTEST_GPU_WRITTEN, /* the same in a page the guest wrote (both sides
                                  hold data there: compared byte for byte) */
    EXEC_SELFTEST_ARC,       /* record an arc the table forbids (device arcs) */
    EXEC_SELFTEST_TIMER,     /* leave a timer on the loop (resources) */
    EXEC_SELFTEST_FD,        /* leave an fd open (resources) */
    EXEC_SELFTEST_TRANSPORT, /* leave a mem transport open (resources) */
    EXEC_SELFTEST_NO_RESUME, /* management is gone: nobody resumes a source that
                                completed before its destination failed (outcome) */
    EXEC_SELFTEST_PAUSED_PAGE,  /* flip a byte of a source page while it sits
                                   paused after completing (memory) */
    EXEC_SELFTEST_PAUSED_FIELD, /* change a source device field then (devices) */
    EXEC_SELFTEST_HEAP,      /* leave a heap block allocated (resources) */
    EXEC_SELFTEST_MAP,       /* leave an anonymous mapping mapped (resources) */
    EXEC_SELFTEST_SPICE_SERVER,   /* management skips client_migrate_info: the
                                     client stays behind (spice: server) */
    EXEC_SELFTEST_SPICE_SCREEN,   /* flip a pixel of the guest framebuffer (spice: screen) */
    EXEC_SELFTEST_SPICE_IMAGE,    /* the server draws an image the client does not
                                     hold (spice: images) */
    EXEC_SELFTEST_SPICE_PLAYBACK, /* the server repeats playback frame 0 (spice: sequences) */
    EXEC_SELFTEST_SPICE_PLAYBACK_GAP, /* the guest's playback skips a frame (spice: sequences) */
    EXEC_SELFTEST_SPICE_PORT,     /* the server sends a port byte out of sequence */
    EXEC_SELFTEST_SPICE_LEFTOVER, /* a link to a server stays half-open (spice: leftovers) */
    EXEC_SELFTEST_SPICE_RECORD,   /* the client records frame 0 again (spice: record) */
    EXEC_SELFTEST_SPICE_INPUTS,   /* the client sends the mouse event of group 0 again (spice: inputs) */
    EXEC_SELFTEST_SPICE_CURSOR,   /* the server moves the client's cursor away from the guest's (spice: cursor) */
    EXEC_SELFTEST__COUNT
} ExecSelftest;

typedef struct RunCase {
    const Scenario *scn;
    uint64_t seed;
    const char *pair_src; /* release overrides (NULL = the scenario's) */
    const char *pair_dst;
    const MigFaultSpec *extra; /* added to the scenario's faults */
    size_t nextra;
    FILE *trace_out; /* echo the trace here (NULL: quiet) */
    ExecSelftest selftest;
} RunCase;

/* The SPICE oracle's verdict on one channel the client linked
 * (RunResult.spice, oracle-spice.c): passed (no check of it failed), failed
 * (`why` says which check), or not judged (an earlier failure left nothing
 * to judge it on: the screen when the client is not where it must be). */
typedef enum ExecChannelVerdict {
    EXEC_CHANNEL_PASSED,
    EXEC_CHANNEL_FAILED,
    EXEC_CHANNEL_NOT_JUDGED,
    EXEC_CHANNEL__COUNT
} ExecChannelVerdict;

extern const char *const exec_channel_verdict_names[EXEC_CHANNEL__COUNT];

#define EXEC_SPICE_CHANNELS_MAX 16

typedef struct ExecSpiceChannel {
    uint8_t type, id;  /* SPICE_CHANNEL_*, channel id (DISPLAY: the head) */
    ExecChannelVerdict verdict;
    char why[256];     /* the failed check's message */
} ExecSpiceChannel;

/* "MAIN", "DISPLAY", "DISPLAY:1": the channel's name in `migcert run
 * --json` (spice_channels, spice_channel_verdicts); id 0 is left out. */
void exec_spice_channel_name(uint8_t type, uint8_t id, char *buf, size_t len);

typedef struct RunResult {
    bool passed;
    bool skipped;          /* the pair cannot run this scenario (e.g. device) */
    char error[1024];      /* why it failed or was skipped */
    char outcome[16];      /* observed: completed failed cancelled timeout */
    char mig_error[512];   /* the migration's error text, if any */
    char trace_hash[65];
    uint64_t fired;        /* faults that fired (the scenario's own and the extra) */
    uint64_t extra_fired;  /* hits the extra specs (RunCase.extra) fired or reached
                              (fault_injector_spec_fired) */
    uint64_t last_extra_fired; /* the same for the last extra spec alone: the
                                  one `run --sweep` moves from hit to hit */
    char first_fired[96];  /* "src:point#N" of the first one */
    uint64_t hits[MIG_FAULT_SIDE__COUNT][MIG_FAULT__COUNT]; /* per registered point */
    uint64_t virtual_ns;   /* virtual time the run took */
    /* with `spice:` and a client, once the SPICE oracle ran: every channel
     * the client linked, in the order it first linked them (none when an
     * earlier oracle failed the case, or without a client) */
    ExecSpiceChannel spice[EXEC_SPICE_CHANNELS_MAX];
    size_t nspice;
} RunResult;

/* Whether the case's pair can run its scenario: EXEC_APPLICABLE, or why not
 * (the source machine type lacks one of the scenario's devices; a
 * capability the scenario sets on one side is unknown to that side's
 * release, or one it requires is not offered by both).  `why` gets the
 * sentence.  Release data only: nothing runs. */
typedef enum ExecApplicable {
    EXEC_APPLICABLE,
    EXEC_NA_DEVICE,     /* device not in the source machine type */
    EXEC_NA_CAPABILITY, /* capability not known / not offered by both */
    EXEC_NA_SPICE,      /* a scripted SPICE scenario whose client migration kind the pair changes */
    EXEC_NA__COUNT
} ExecApplicable;

int exec_case_applicable(const RunCase *c, char *why, size_t whylen);

/* Run one case.  Returns 0 when the case ran (passed or not: see r->passed),
 * a negative errno when it could not be set up (r->error says why). */
int exec_run_case(const RunCase *c, RunResult *r);

#endif
