/*
 * buf.c - array growth and MigBuf (see buf.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "common.h"

void *mig_grow(void *p, size_t *cap, size_t need, size_t elem_size, size_t min)
{
    if (need <= *cap)
        return p;
    size_t n = *cap > SIZE_MAX / 2 ? need : MIG_MAX(MIG_MAX(*cap * 2, need), min);
    if (n > SIZE_MAX / elem_size) {
        fprintf(stderr, "migcert: out of memory (%zu elements of %zu bytes)\n", need, elem_size);
        exit(70);
    }
    p = mig_realloc(p, n * elem_size);
    *cap = n;
    return p;
}

uint8_t *mig_buf_reserve(MigBuf *b, size_t n)
{
    if (n > SIZE_MAX - b->len) {
        fprintf(stderr, "migcert: out of memory (buffer of %zu + %zu bytes)\n", b->len, n);
        exit(70);
    }
    MIG_GROW(b->data, b->cap, b->len + n, MIG_BUF_MIN);
    return b->data + b->len;
}

void mig_buf_append(MigBuf *b, const void *p, size_t n)
{
    if (!n)
        return;
    memcpy(mig_buf_reserve(b, n), p, n);
    b->len += n;
}

void mig_buf_free(MigBuf *b)
{
    free(b->data);
    *b = (MigBuf){0};
}
