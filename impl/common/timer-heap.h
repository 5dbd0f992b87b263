/*
 * timer-heap.h - the binary min-heap of timers that both MigLoop backends
 * (impl/common/loop-epoll.c and the simulator, harness/sim/sim.c) keep their
 * pending timers in.
 *
 * Owns: MigTimerHeap (an array of pointers to nodes) and MigTimerNode, which
 * a backend embeds in its own source struct (MIG_CONTAINER_OF gets back to
 * it).  The heap never allocates or frees nodes, only its array.
 *
 * Ordering: by (deadline, seq), seq being the creation order the backend
 * assigns; never by address.  The heap's shape is therefore a function of
 * the sequence of push/remove calls only, which the simulator relies on when
 * it walks the top of the heap for due timers (mig_timer_heap_at): the same
 * calls give the same walk, bit for bit, on every machine.
 *
 * Invariants: node->idx is the node's index in the array while it is in the
 * heap; a node is in at most one heap; remove only a node that is in it.
 */
#ifndef MIGCERT_TIMER_HEAP_H
#define MIGCERT_TIMER_HEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct MigTimerNode {
    uint64_t deadline; /* loop clock, ns */
    uint64_t seq;      /* creation order: the tie-break among equal deadlines */
    size_t idx;        /* position in the heap array (heap's business) */
} MigTimerNode;

typedef struct MigTimerHeap {
    MigTimerNode **v;
    size_t len, cap;
} MigTimerHeap;

/* Insert n (deadline and seq already set). */
void mig_timer_heap_push(MigTimerHeap *h, MigTimerNode *n);
/* Take n out of the heap; n must be in it. */
void mig_timer_heap_remove(MigTimerHeap *h, MigTimerNode *n);
/* Free the array (not the nodes) and empty the heap. */
void mig_timer_heap_clear(MigTimerHeap *h);

/* The earliest timer, or NULL when the heap is empty. */
static inline MigTimerNode *mig_timer_heap_top(const MigTimerHeap *h)
{
    return h->len ? h->v[0] : NULL;
}

/* The node at array index i < h->len: children of i are 2i+1 and 2i+2, each
 * no earlier than i (the walk the simulator does over due timers). */
static inline MigTimerNode *mig_timer_heap_at(const MigTimerHeap *h, size_t i)
{
    return h->v[i];
}

#endif
