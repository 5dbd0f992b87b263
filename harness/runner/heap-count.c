/*
 * heap-count.c - the malloc family of the executable, counted (see
 * heap-count.h for why and for the valgrind behaviour).
 *
 * Every wrapper forwards to glibc's own entry points (__libc_malloc, ...,
 * exported by libc.so.6 for exactly this use) and, only when glibc
 * succeeded, adds or takes off malloc_usable_size() of the block.  A failed
 * call changes nothing.  realloc(NULL, n) is malloc(n); realloc(p, 0) frees
 * p and returns NULL, as glibc's does; calloc, reallocarray and pvalloc
 * refuse a size that overflows (ENOMEM).  pvalloc and reallocarray call the
 * exported memalign/realloc through a volatile pointer, never glibc
 * directly: valgrind replaces those two in the executable but not the
 * former (heap-count.h).
 */
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "heap-count.h"

/* glibc's allocator under its own names (libc.so.6, GLIBC_2.2.5) */
extern void *__libc_malloc(size_t n);
extern void __libc_free(void *p);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void *__libc_valloc(size_t n);

/* The process-wide counters (heap-count.h says why they must be). */
static atomic_int_fast64_t live_bytes;
static atomic_int_fast64_t live_blocks;

void heap_count_live(HeapCount *out)
{
    out->bytes = (int64_t)atomic_load_explicit(&live_bytes, memory_order_relaxed);
    out->blocks = (int64_t)atomic_load_explicit(&live_blocks, memory_order_relaxed);
}

int64_t heap_count_block_bytes(const void *p)
{
    return p ? (int64_t)malloc_usable_size((void *)p) : 0;
}

bool heap_count_active(void)
{
    /* through a volatile pointer: the compiler may not drop the pair */
    void *(*volatile alloc)(size_t) = malloc;
    HeapCount before, during;
    heap_count_live(&before);
    void *p = alloc(1);
    heap_count_live(&during);
    free(p);
    return p && during.blocks == before.blocks + 1;
}

/* mapped bytes (heap_count_mapped), moved by the mmap family below */
static atomic_int_fast64_t live_mapped;

int64_t heap_count_mapped(void)
{
    return (int64_t)atomic_load_explicit(&live_mapped, memory_order_relaxed);
}

#if HEAP_COUNT_REPLACES

static void *counted(void *p)
{
    if (p) {
        atomic_fetch_add_explicit(&live_bytes, (int_fast64_t)malloc_usable_size(p),
                                  memory_order_relaxed);
        atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    }
    return p;
}

static void uncount(void *p)
{
    atomic_fetch_sub_explicit(&live_bytes, (int_fast64_t)malloc_usable_size(p),
                              memory_order_relaxed);
    atomic_fetch_sub_explicit(&live_blocks, 1, memory_order_relaxed);
}

/* ---- the replaced functions ---- */

void *malloc(size_t n)
{
    return counted(__libc_malloc(n));
}

void free(void *p)
{
    if (!p)
        return;
    uncount(p);
    __libc_free(p);
}

void *calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return counted(__libc_calloc(n, size));
}

void *realloc(void *p, size_t n)
{
    if (!p)
        return counted(__libc_malloc(n));
    if (n == 0) {
        free(p);
        return NULL;
    }
    size_t old = malloc_usable_size(p);
    void *q = __libc_realloc(p, n);
    if (!q)
        return NULL; /* p is still allocated, still counted */
    atomic_fetch_add_explicit(&live_bytes,
                              (int_fast64_t)malloc_usable_size(q) - (int_fast64_t)old,
                              memory_order_relaxed);
    return q;
}

void *reallocarray(void *p, size_t n, size_t size)
{
    void *(*volatile re)(void *, size_t) = realloc;
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return re(p, total);
}

void *memalign(size_t align, size_t n)
{
    return counted(__libc_memalign(align, n));
}

void *aligned_alloc(size_t align, size_t n)
{
    return counted(__libc_memalign(align, n));
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (align % sizeof(void *) != 0 || (align & (align - 1)) != 0 || align == 0)
        return EINVAL;
    int saved = errno;
    void *p = counted(__libc_memalign(align, n));
    errno = saved;
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void *valloc(size_t n)
{
    return counted(__libc_valloc(n));
}

void *pvalloc(size_t n)
{
    void *(*volatile align_alloc)(size_t, size_t) = memalign;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t rounded;
    if (__builtin_add_overflow(n, page - 1, &rounded)) {
        errno = ENOMEM;
        return NULL;
    }
    rounded &= ~(page - 1);
    return align_alloc(page, rounded ? rounded : page);
}

/* ---- mappings: mmap, munmap and mremap of the executable, counted ----
 * glibc's malloc maps its big blocks through its own internal mmap, which
 * these do not see (those blocks are counted as blocks above); everything
 * else that maps memory by calling mmap (guest RAM, the mem transport's
 * rings, a file analyze maps) comes here.  The system calls are made
 * directly, as glibc's wrappers do on x86-64 and aarch64. */

static int64_t page_round(size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (int64_t)((len + page - 1) & ~(page - 1));
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p = (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED)
        atomic_fetch_add_explicit(&live_mapped, page_round(len), memory_order_relaxed);
    return p;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return mmap(addr, len, prot, flags, fd, off);
}

int munmap(void *addr, size_t len)
{
    int rc = (int)syscall(SYS_munmap, addr, len);
    if (rc == 0)
        atomic_fetch_sub_explicit(&live_mapped, page_round(len), memory_order_relaxed);
    return rc;
}

void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    void *want = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        want = va_arg(ap, void *);
        va_end(ap);
    }
    void *p = (void *)syscall(SYS_mremap, old, old_len, new_len, flags, want);
    if (p != MAP_FAILED)
        atomic_fetch_add_explicit(&live_mapped, page_round(new_len) - page_round(old_len),
                                  memory_order_relaxed);
    return p;
}

#endif /* HEAP_COUNT_REPLACES */
