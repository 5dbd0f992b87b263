/*
 * faults-spec.h - fault specs (`side:point` + when) and the injector that
 * decides, hit by hit, whether a libfiu point fires in a simulated run.
 *
 * Spec grammar (docs/determinism.md section 5.3):
 *
 *     SIDE ":" POINT [ "#" N | "@" PHASE | "%" P ] [ " errno=" ERRNO ]
 *
 *   SIDE   src | dst | client
 *   POINT  a name registered in impl/common/faults.h (`migcert list-faults`)
 *   #N     fail the Nth hit of POINT on SIDE (1 <= N <= MIG_FAULT_MAX_NTH), once
 *   @PHASE fail the first hit of POINT on SIDE while the source migration
 *          is in PHASE (setup, precopy|active, stop-copy|device, cancelling)
 *   %P     fail each hit with probability P (0 < P <= 1, e.g. %0.05),
 *          drawn from the run's PRNG
 *   (none) fail every hit
 *   errno=E  the errno the point injects; the injector hands it to the
 *          point as libfiu's failnum (mig_fault_fire).  For most points E
 *          must be the registered one and any other is refused at parse
 *          time; transport reads and writes (mig/transport/read,
 *          mig/transport/write) also accept EPIPE and ECONNRESET.
 *
 * The injector (harness only; libfiu's registry is process-wide, which is
 * why this lives in the harness and never in impl/): arming it enables every
 * registered point with fiu_enable_external(), passing the injector as the
 * point's failinfo, so the external callback counts hits per (side, point)
 * and decides from the specs and the injector's PRNG (forked from the run
 * seed) — libfiu's own random source is never used.  The callback finds
 * the point by its failinfo (no lookup by name) and looks only at the specs
 * of the running side and that point.  The engine's hot points (a hit per
 * page or per transport call) ask through the injector's gate first
 * (fault_injector_gate): a hit no spec can fail is only counted, and
 * libfiu is asked for the hits a spec may fail (the next `#N`, every hit
 * of an every-hit, @PHASE or %P spec).  The harness tells the
 * injector which side's code is running (fault_injector_set_side) before it
 * runs that side's callbacks, and which phase the migration is in.
 * Only one injector may be armed at a time.
 */
#ifndef MIGCERT_RUNNER_FAULTS_SPEC_H
#define MIGCERT_RUNNER_FAULTS_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "common/faults.h"
#include "common/loop.h"
#include "common/trace.h"

typedef enum MigFaultSide {
    MIG_FAULT_SIDE_SRC,
    MIG_FAULT_SIDE_DST,
    MIG_FAULT_SIDE_CLIENT,
    MIG_FAULT_SIDE__COUNT
} MigFaultSide;
extern const char *const mig_fault_side_names[MIG_FAULT_SIDE__COUNT];

/* Migration phases as the harness sees them (QEMU MigrationStatus names,
 * with the aliases precopy = active and stop-copy = device on input). */
typedef enum ScnPhase {
    SCN_PHASE_NONE,
    SCN_PHASE_SETUP,
    SCN_PHASE_ACTIVE,
    SCN_PHASE_DEVICE,
    SCN_PHASE_CANCELLING,
    SCN_PHASE_COMPLETED,
    SCN_PHASE_FAILED,
    SCN_PHASE_CANCELLED,
    SCN_PHASE__COUNT
} ScnPhase;
extern const char *const scn_phase_names[SCN_PHASE__COUNT];
/* Parse a phase name or alias; -1 when unknown. */
int scn_phase_parse(const char *name);

typedef enum MigFaultWhen {
    MIG_FAULT_WHEN_ALWAYS, /* no trigger: every hit */
    MIG_FAULT_WHEN_NTH,    /* #N */
    MIG_FAULT_WHEN_PHASE,  /* @PHASE */
    MIG_FAULT_WHEN_PROB,   /* %P */
    MIG_FAULT_WHEN__COUNT
} MigFaultWhen;

/* The largest hit number #N takes (docs/limits.md): far above the hits of
 * any point in a run, far below where the counter could wrap. */
#define MIG_FAULT_MAX_NTH 1000000000000ull

typedef struct MigFaultSpec {
    MigFaultSide side;
    char point[64];
    size_t point_index; /* index in mig_faults_table() */
    MigFaultWhen when;
    uint64_t nth;       /* #N */
    ScnPhase phase;     /* @PHASE */
    double prob;        /* %P */
    int err;            /* negative errno the point injects (errno= or registered) */
} MigFaultSpec;

/* Parse one spec.  Errors name the spec text and the offending part, e.g.
 * "fault 'src:mig/x#1': unknown fault point 'mig/x' (see migcert list-faults)". */
int mig_fault_spec_parse(const char *text, MigFaultSpec *out, MigErr **errp);
/* Canonical text of a spec, as accepted by the parser (for REPRO lines). */
void mig_fault_spec_format(const MigFaultSpec *s, char *buf, size_t len);

typedef struct FaultInjector FaultInjector;

/* specs are copied.  seed seeds the injector's own PRNG; trace (may be NULL)
 * receives one line per fired fault; loop (may be NULL) gives trace times. */
FaultInjector *fault_injector_new(const MigFaultSpec *specs, size_t n, uint64_t seed,
                                  MigLoop *loop, MigTrace *trace);
void fault_injector_free(FaultInjector *inj);
/* The injector's gate (impl/common/faults.h, MigFaultGate), for the loops
 * of the run (MigLoop.faults): while armed, the hits of a point that no
 * spec on the running side can fail pass it uncounted by libfiu and
 * counted here; the rest ask libfiu.  NULL for a NULL injector. */
const MigFaultGate *fault_injector_gate(FaultInjector *inj);

/* A process that arms no injector (`migcert vm`): no libfiu point can be
 * enabled in it unless libfiu's fiu-run preload does it, from FIU_ENABLE or
 * through the control fifo FIU_CTRL_FIFO names.  Without either in the
 * environment every hit would ask libfiu only to hear "no": the gate this
 * returns lets every hit pass (left: UINT64_MAX each; a process does not
 * make 2^64 hits).  With either, NULL: every hit asks libfiu.  `g` is the
 * caller's and must outlive the loop it is set on. */
typedef struct FaultProcessGate {
    MigFaultGate gate;
    uint64_t left[MIG_FAULT__COUNT];
} FaultProcessGate;
const MigFaultGate *fault_process_gate(FaultProcessGate *g);
/* Enable every registered point (libfiu) with this injector deciding.
 * Returns 0 or -EBUSY when another injector is armed. */
int fault_injector_arm(FaultInjector *inj);
void fault_injector_disarm(FaultInjector *inj);
void fault_injector_set_side(FaultInjector *inj, MigFaultSide side);
MigFaultSide fault_injector_side(const FaultInjector *inj);
void fault_injector_set_phase(FaultInjector *inj, ScnPhase phase);
/* Hits of registered point `index` on `side` so far (fired or not). */
uint64_t fault_injector_hits(const FaultInjector *inj, MigFaultSide side, size_t index);
/* Faults fired so far, and the first fired fault's canonical spec (#N form). */
uint64_t fault_injector_fired(const FaultInjector *inj);
const char *fault_injector_first_fired(const FaultInjector *inj);
/* The hits spec `spec` (its index in the specs given to _new) fired.  A hit
 * that an earlier spec already fails is still credited to a later `#N` or
 * every-hit spec it matches (it was reached), not to a later @PHASE or %P
 * one (never looked at).  What tells a swept `#N` whether its hit came. */
uint64_t fault_injector_spec_fired(const FaultInjector *inj, size_t spec);
/* Ask the injector directly (what the libfiu callback does): records a hit
 * of `point` on the current side and returns true when it must fail.
 * Exposed so unit tests can drive it without libfiu. */
bool fault_injector_decide(FaultInjector *inj, const char *point);
/* The same, returning the negative errno the point must inject (the spec's
 * errno= or the registered one), or 0 when it must not fail. */
int fault_injector_decide_errno(FaultInjector *inj, const char *point);

#endif
