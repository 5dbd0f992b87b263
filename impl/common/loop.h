/*
 * loop.h - the event-loop interface every engine module runs on.
 *
 * Owns: MigLoop, a vtable with two backends:
 *   - epoll (impl/common/loop-epoll.c): real fds, CLOCK_MONOTONIC; used by the
 *     `migcert vm` processes, benchmarks and interop tests;
 *   - sim (harness/sim/): virtual clock, in-memory links, every scheduling
 *     choice drawn from the run's PRNG.
 * Engine code asks the loop for the time (mig_loop_now_ns), for randomness
 * (mig_loop_random / loop->prng) and for callbacks; it never reads the wall
 * clock, never blocks and keeps no global state.
 *
 * Invariants: callbacks run one at a time, never re-entrantly from inside a
 * mig_loop_* call; a removed source never fires afterwards, even if it was
 * already due in the current batch.  The loop counts live sources so that the
 * resource oracle can report leaked timers and watches at the end of a run.
 */
#ifndef MIGCERT_LOOP_H
#define MIGCERT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "prng.h"
#include "trace.h"

typedef struct MigLoop MigLoop;
typedef struct MigLoopSource MigLoopSource;
typedef struct MigFaultGate MigFaultGate; /* faults.h */

enum {
    MIG_LOOP_IN = 1u << 0,
    MIG_LOOP_OUT = 1u << 1,
    MIG_LOOP_ERR = 1u << 2,
    MIG_LOOP_HUP = 1u << 3,
};

typedef void (*MigLoopCb)(void *opaque);
typedef void (*MigLoopFdCb)(int fd, uint32_t events, void *opaque);

typedef struct MigLoopOps {
    const char *name; /* "epoll" or "sim" */
    uint64_t (*now_ns)(MigLoop *loop);
    MigLoopSource *(*timer_add)(MigLoop *loop, uint64_t deadline_ns, MigLoopCb cb, void *opaque);
    MigLoopSource *(*defer)(MigLoop *loop, MigLoopCb cb, void *opaque);
    /* NULL in backends without real fds (sim). */
    MigLoopSource *(*fd_watch)(MigLoop *loop, int fd, uint32_t events, MigLoopFdCb cb,
                               void *opaque);
    int (*fd_update)(MigLoop *loop, MigLoopSource *src, uint32_t events);
    void (*remove)(MigLoop *loop, MigLoopSource *src);
    /* Run one batch of due callbacks, waiting (epoll) or advancing the virtual
     * clock (sim) when nothing is due.  Returns 1 when something ran, 0 when
     * nothing is left to run, a negative errno on failure. */
    int (*run_once)(MigLoop *loop);
    void (*free)(MigLoop *loop);
} MigLoopOps;

/* Public part of every backend's loop object (backends embed it first). */
struct MigLoop {
    const MigLoopOps *ops;
    MigPrng prng;      /* the run's randomness for whoever runs on this loop */
    MigTrace *trace;   /* may be NULL */
    bool stop;         /* set by mig_loop_stop(); cleared by mig_loop_run() */
    long live_sources; /* timers + defers + watches not yet removed or fired */
    /* Hits of fault points that may pass without asking libfiu (faults.h,
     * MigFaultGate): set by the harness's fault injector on the loops of a
     * run; NULL (every hit asks libfiu) unless set. */
    const MigFaultGate *faults;
};

/* The real backend.  `seed` seeds loop->prng. Returns NULL on failure. */
MigLoop *mig_loop_epoll_new(uint64_t seed);

static inline uint64_t mig_loop_now_ns(MigLoop *l) { return l->ops->now_ns(l); }
static inline uint64_t mig_loop_random(MigLoop *l) { return mig_prng_next(&l->prng); }

/* One-shot timer at absolute `deadline_ns` (loop clock).  The source is freed
 * after it fires; do not remove it afterwards. */
MigLoopSource *mig_loop_timer_add(MigLoop *l, uint64_t deadline_ns, MigLoopCb cb, void *opaque);
/* Run cb once from the loop, after the current callback returns. */
MigLoopSource *mig_loop_defer(MigLoop *l, MigLoopCb cb, void *opaque);
/* Watch a real fd (epoll backend only; returns NULL on sim). */
MigLoopSource *mig_loop_fd_watch(MigLoop *l, int fd, uint32_t events, MigLoopFdCb cb,
                                 void *opaque);
int mig_loop_fd_update(MigLoop *l, MigLoopSource *src, uint32_t events);
/* Cancel a pending timer/defer or stop a watch.  NULL is a no-op. */
void mig_loop_remove(MigLoop *l, MigLoopSource *src);
/* Run until mig_loop_stop() or until nothing is left.  Returns 0 or -errno. */
int mig_loop_run(MigLoop *l);
/* Run until pred(opaque) is true, mig_loop_stop(), nothing is left, or the
 * loop clock passes deadline_ns (0 = no deadline).  Returns 0 when pred held,
 * -ETIMEDOUT, -ECANCELED (stopped) or -EDEADLK (nothing left to run). */
int mig_loop_run_until(MigLoop *l, bool (*pred)(void *opaque), void *opaque,
                       uint64_t deadline_ns);
static inline void mig_loop_stop(MigLoop *l) { l->stop = true; }
void mig_loop_free(MigLoop *l);

#endif
