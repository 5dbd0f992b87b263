/*
 * timer-heap.c - the timer min-heap both loop backends share (see
 * timer-heap.h).  Sift up and down keep node->idx current so that a
 * cancelled timer comes out in O(log n).
 */
#include <stdbool.h>
#include <stdlib.h>

#include "buf.h"
#include "timer-heap.h"

static bool before(const MigTimerNode *a, const MigTimerNode *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void set(MigTimerHeap *h, size_t i, MigTimerNode *n)
{
    h->v[i] = n;
    n->idx = i;
}

static void sift_up(MigTimerHeap *h, size_t i)
{
    MigTimerNode *n = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(n, h->v[p]))
            break;
        set(h, i, h->v[p]);
        i = p;
    }
    set(h, i, n);
}

static void sift_down(MigTimerHeap *h, size_t i)
{
    MigTimerNode *n = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->len)
            break;
        if (c + 1 < h->len && before(h->v[c + 1], h->v[c]))
            c++;
        if (!before(h->v[c], n))
            break;
        set(h, i, h->v[c]);
        i = c;
    }
    set(h, i, n);
}

void mig_timer_heap_push(MigTimerHeap *h, MigTimerNode *n)
{
    MIG_GROW(h->v, h->cap, h->len + 1, 64);
    set(h, h->len++, n);
    sift_up(h, n->idx);
}

void mig_timer_heap_remove(MigTimerHeap *h, MigTimerNode *n)
{
    size_t i = n->idx;
    MigTimerNode *last = h->v[--h->len];
    if (i == h->len)
        return;
    set(h, i, last);
    if (i > 0 && before(last, h->v[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

void mig_timer_heap_clear(MigTimerHeap *h)
{
    free(h->v);
    *h = (MigTimerHeap){0};
}
