/*
 * heap-count.h - exact live-heap accounting for the harness process: the
 * memory part of the resource oracle (exec.h, docs/architecture.md 6.1).
 *
 * Why: the executor must tell, after every case, whether the case left heap
 * blocks behind, and a leak of one 16-byte block must count.  glibc's
 * mallinfo2() cannot say that: it counts chunks parked in the tcache and
 * fastbins as in use, so it drifts by tens to hundreds of bytes with no leak
 * at all.  heap-count.c instead replaces the malloc family of the
 * executable (glibc allows a program to replace malloc, free, calloc and
 * realloc, and then asks for aligned_alloc, memalign, posix_memalign,
 * pvalloc, valloc and reallocarray too) with thin wrappers around glibc's
 * exported __libc_malloc/__libc_free/... that keep two counters: live
 * bytes (malloc_usable_size of each block, so the same figure is added at
 * allocation and taken off at free) and live blocks.  Every allocation of
 * the process goes through them: the engine, libc's own (strdup, fopen,
 * open_memstream, opendir, ...) and the shared libraries' (jansson,
 * libcyaml, libcrypto, libfiu, dlopen'd vendor plugins), because the
 * definitions are in the executable's dynamic symbol table and the
 * executable comes first in symbol lookup.
 *
 * The block count is exact.  The byte count is exact too, but of usable
 * sizes, and those depend on the heap's layout: a block freed and
 * allocated again at the same size may come back a few bytes larger (glibc
 * hands out the whole free chunk when splitting it would leave too little),
 * so a caller that wants "nothing leaked" compares blocks and reports
 * bytes (oracle-resources.c exec__oracle_heap).
 *
 * Memory mapped with mmap is not heap: guest RAM and the mem transport's
 * rings are mmap'ed and never pass through the malloc family, so
 * heap-count.c replaces mmap, mmap64, munmap and mremap as well and counts
 * mapped bytes (heap_count_mapped).  Valgrind does not replace those, so
 * that count works under valgrind too.
 *
 * Process state, harness only: the counters are the one thing here that
 * must be process-wide (the allocator is), relaxed C11 atomics so that a
 * thread allocating meanwhile cannot tear them.  The object lives in
 * librunner.a and in the `migcert` binary only, never in libmigcert.a or
 * libsupport.a; oracle-resources.c references heap_count_live(), so every
 * binary that links the executor pulls it in, and the link rules of those
 * binaries (harness/runner/module.mk HEAP_COUNT_LDFLAGS, `-rdynamic` for
 * migcert) export the wrappers so that shared libraries bind to them.
 *
 * Under valgrind: memcheck replaces the malloc family wherever it is
 * defined, the executable included (its "somalloc" soname synonym), so
 * malloc, free, calloc, realloc, memalign, posix_memalign, aligned_alloc and
 * valloc here never run; pvalloc and reallocarray, which memcheck does not
 * replace in the executable, only delegate to memalign/realloc and so reach
 * memcheck too.  The counters then stay constant (consistent, never a
 * false leak), heap_count_active() says false and the executor leaves the
 * memory check to valgrind's --leak-check, which also gives the stack.
 * (It does not intercept __libc_malloc: a wrapper that counted and called
 * glibc under valgrind would hand memcheck blocks it never saw.)
 */
#ifndef MIGCERT_RUNNER_HEAP_COUNT_H
#define MIGCERT_RUNNER_HEAP_COUNT_H

#include <stdbool.h>
#include <stdint.h>

/* AddressSanitizer brings its own malloc and mmap interceptors, and a
 * second replacement in the executable breaks its start-up: with ASan the
 * functions are not replaced, the counters never move, heap_count_active()
 * is false (as under valgrind) and ASan's leak checker takes over. */
#if defined(__SANITIZE_ADDRESS__)
#define HEAP_COUNT_REPLACES 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HEAP_COUNT_REPLACES 0
#endif
#endif
#ifndef HEAP_COUNT_REPLACES
#define HEAP_COUNT_REPLACES 1
#endif

typedef struct HeapCount {
    int64_t bytes;  /* sum of malloc_usable_size() of the live blocks */
    int64_t blocks; /* live blocks */
} HeapCount;

/* The live heap of this process now. */
void heap_count_live(HeapCount *out);

/* What the counters hold for the live block p (its malloc_usable_size):
 * lets a caller take a block it knowingly keeps off a comparison, exactly. */
int64_t heap_count_block_bytes(const void *p);

/* Whether the counters see this process's allocations: true when the
 * wrappers are the allocator, false when something replaced them (valgrind).
 * Probes with one malloc(1)/free; single-threaded callers only. */
bool heap_count_active(void);

/* Bytes the process has mapped through mmap/mremap and not unmapped
 * (page-rounded lengths): heap-count.c also replaces mmap, mmap64, munmap
 * and mremap of the executable, because guest RAM and the mem transport's
 * rings never pass through the malloc family.  glibc's malloc maps its big
 * blocks with its internal mmap, which this does not see (they are blocks
 * above).  A MAP_FIXED mapping over an existing one counts twice: nothing
 * in migcert maps that way. */
int64_t heap_count_mapped(void);

#endif
