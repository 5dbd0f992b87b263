/*
 * buf.h - the one way the project grows an array or a byte buffer.
 *
 * Owns: mig_grow / MIG_GROW (make an array hold at least `need` elements)
 * and MigBuf (a growable byte buffer: data[0, len) valid, cap allocated).
 * Called by: every module that appends to something whose size it does not
 * know in advance (stream buffers, vmstate snapshots, the monitor's client
 * buffers, the timer heap, registries, the harness's case lists).
 *
 * Growth: to max(2 * cap, need, min), so n appends cost O(n) copies and a
 * buffer's capacity depends only on the sizes asked for, never on timing.
 * Out of memory aborts, like mig_malloc0 (a host condition, never an input
 * condition); a size that overflows size_t aborts the same way.
 */
#ifndef MIGCERT_BUF_H
#define MIGCERT_BUF_H

#include <stddef.h>
#include <stdint.h>

/* Return p, reallocated so that it holds at least `need` elements of
 * `elem_size` bytes, and update *cap (in elements).  Unchanged when
 * *cap >= need.  New elements are not initialised. */
void *mig_grow(void *p, size_t *cap, size_t need, size_t elem_size, size_t min);

/* MIG_GROW(ptr, cap, need, min): ptr is a T * lvalue, cap its size_t
 * capacity in elements. */
#define MIG_GROW(ptr, cap, need, min)                                                         \
    ((ptr) = mig_grow((ptr), &(cap), (need), sizeof(*(ptr)), (min)))

typedef struct MigBuf {
    uint8_t *data;
    size_t len, cap;
} MigBuf;

#define MIG_BUF_MIN 256

/* Room for n more bytes after data[len]: returns data + len (len unchanged;
 * the caller adds what it wrote). */
uint8_t *mig_buf_reserve(MigBuf *b, size_t n);
/* Append n bytes. */
void mig_buf_append(MigBuf *b, const void *p, size_t n);
/* Free the bytes and empty the buffer. */
void mig_buf_free(MigBuf *b);

#endif
