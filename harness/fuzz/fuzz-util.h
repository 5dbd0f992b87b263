/*
 * fuzz-util.h - small helpers every fuzz target that feeds a transport
 * shares (fuzz-stream.c, fuzz-qmp.c, fuzz-spice.c).
 * Invariants: header-only, no state.
 */
#ifndef MIGCERT_FUZZ_UTIL_H
#define MIGCERT_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "transport/transport.h"

/* Write as much of d[0..n) as the transport takes (an in-memory link takes
 * it all). */
static inline void fuzz_write_all(MigTransport *t, const uint8_t *d, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = mig_transport_write(t, d + off, n - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

#endif
