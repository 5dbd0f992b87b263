/*
 * test-heap-count.c - the counted malloc family (harness/runner/heap-count.h)
 * that the executor's heap oracle relies on: a block of N bytes raises the
 * live count by >= N bytes and 1 block; libc's internal allocations
 * (strdup, open_memstream, fopen, opendir) and the shared libraries'
 * (jansson, libcyaml) go through the wrappers and come back to zero when
 * freed; realloc/calloc/reallocarray/posix_memalign edge cases leave the
 * counters right; mmap/mremap/munmap move the mapped count by page-rounded
 * lengths; every wrapper is what a shared library binds to.
 *
 * Under valgrind (the valgrind lane runs this binary) memcheck replaces the
 * allocator: heap_count_active() is false and the tests check instead that
 * the counters never move (and memcheck that nothing is freed that it did
 * not allocate).
 */
#include <cyaml/cyaml.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "runner/heap-count.h"

/* Calls through volatile pointers: the compiler may neither drop an
 * allocation whose result is unused nor fold a malloc/free pair. */
static void *(*volatile t_malloc)(size_t) = malloc;
static void (*volatile t_free)(void *) = free;
static void *(*volatile t_calloc)(size_t, size_t) = calloc;
static void *(*volatile t_realloc)(void *, size_t) = realloc;
static void *(*volatile t_reallocarray)(void *, size_t, size_t) = reallocarray;
static void *(*volatile t_memalign)(size_t, size_t) = memalign;
static void *(*volatile t_aligned_alloc)(size_t, size_t) = aligned_alloc;
static int (*volatile t_posix_memalign)(void **, size_t, size_t) = posix_memalign;
static void *(*volatile t_valloc)(size_t) = valloc;
static void *(*volatile t_pvalloc)(size_t) = pvalloc;

static bool active(void)
{
    static int state = -1;
    if (state < 0)
        state = heap_count_active();
    return state;
}

/* live - base, as a HeapCount */
static HeapCount delta(const HeapCount *base)
{
    HeapCount now;
    heap_count_live(&now);
    return (HeapCount){now.bytes - base->bytes, now.blocks - base->blocks};
}

/* While `blocks` more blocks (at least `bytes` bytes) should be live. */
static void assert_grew(const HeapCount *base, int64_t blocks, int64_t bytes)
{
    HeapCount d = delta(base);
    if (!active()) {
        assert_int_equal(d.blocks, 0);
        assert_int_equal(d.bytes, 0);
        return;
    }
    assert_int_equal(d.blocks, blocks);
    assert_true(d.bytes >= bytes);
}

/* At least one more block live (an allocation we do not size ourselves). */
static void assert_some_live(const HeapCount *base)
{
    HeapCount d = delta(base);
    if (active())
        assert_true(d.blocks > 0 && d.bytes > 0);
    else
        assert_true(d.blocks == 0 && d.bytes == 0);
}

static void assert_back(const HeapCount *base)
{
    HeapCount d = delta(base);
    assert_int_equal(d.blocks, 0);
    assert_int_equal(d.bytes, 0);
}

static void test_heap_count_malloc_counts_bytes_and_blocks(void **state)
{
    (void)state;
    HeapCount base;
    heap_count_live(&base);
    void *p = t_malloc(1000);
    assert_non_null(p);
    assert_grew(&base, 1, 1000);
    void *q = t_calloc(10, 300);
    assert_non_null(q);
    assert_grew(&base, 2, 4000);
    t_free(p);
    assert_grew(&base, 1, 3000);
    t_free(q);
    assert_back(&base);
    t_free(NULL);
    assert_back(&base);
}

static void test_heap_count_libc_allocations_go_through_the_wrappers(void **state)
{
    (void)state;
    HeapCount base;
    heap_count_live(&base);

    char *s = strdup("a string libc copies with its own malloc");
    assert_non_null(s);
    assert_grew(&base, 1, 41);
    free(s);
    assert_back(&base);

    char *buf = NULL;
    size_t len = 0;
    FILE *ms = open_memstream(&buf, &len);
    assert_non_null(ms);
    for (int i = 0; i < 2000; i++)
        fprintf(ms, "line %d of a trace that outgrows the first buffer\n", i);
    fflush(ms);
    assert_true(len > 4096);
    assert_some_live(&base);
    fclose(ms);
    assert_some_live(&base); /* the buffer is the caller's now */
    free(buf);
    assert_back(&base);

    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    assert_non_null(fgets(line, sizeof(line), f)); /* allocates the stdio buffer */
    assert_some_live(&base);
    fclose(f);
    assert_back(&base);

    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    assert_some_live(&base);
    while (readdir(d))
        ;
    closedir(d);
    assert_back(&base);
}

typedef struct Doc {
    char *name;
} Doc;

static const cyaml_schema_field_t doc_fields[] = {
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_POINTER, Doc, name, 0, CYAML_UNLIMITED),
    CYAML_FIELD_END,
};
static const cyaml_schema_value_t doc_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, Doc, doc_fields),
};

static void test_heap_count_libraries_go_through_the_wrappers(void **state)
{
    (void)state;
    HeapCount base;
    heap_count_live(&base);

    json_error_t jerr;
    json_t *j = json_loads("{\"caps\": [\"xbzrle\", \"return-path\"], \"n\": 3}", 0, &jerr);
    assert_non_null(j);
    assert_some_live(&base);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(text);
    free(text);
    json_decref(j);
    assert_back(&base);

    const cyaml_config_t cfg = {
        .log_level = CYAML_LOG_ERROR,
        .log_fn = NULL,
        .mem_fn = cyaml_mem,
        .flags = CYAML_CFG_DEFAULT,
    };
    static const char yaml[] = "name: precopy/idle-guest\n";
    Doc *doc = NULL;
    assert_int_equal(cyaml_load_data((const uint8_t *)yaml, sizeof(yaml) - 1, &cfg, &doc_schema,
                                     (cyaml_data_t **)&doc, NULL),
                     CYAML_OK);
    assert_string_equal(doc->name, "precopy/idle-guest");
    assert_some_live(&base);
    cyaml_free(&cfg, &doc_schema, doc, 0);
    assert_back(&base);
}

static void test_heap_count_realloc_edges(void **state)
{
    (void)state;
    HeapCount base;
    heap_count_live(&base);

    char *p = t_realloc(NULL, 100); /* malloc */
    assert_non_null(p);
    assert_grew(&base, 1, 100);
    memset(p, 'x', 100);
    p = t_realloc(p, 5000); /* grows, same block count */
    assert_non_null(p);
    assert_grew(&base, 1, 5000);
    assert_int_equal(p[99], 'x');
    p = t_realloc(p, 10); /* shrinks */
    assert_non_null(p);
    assert_grew(&base, 1, 10);
    if (active()) {
        /* a refused realloc leaves the block (and the counters) alone;
         * memcheck would only warn about the size, so not under it */
        HeapCount before;
        heap_count_live(&before);
        errno = 0;
        assert_null(t_realloc(p, PTRDIFF_MAX - 4096));
        assert_int_equal(errno, ENOMEM);
        assert_back(&before);
        assert_int_equal(p[9], 'x');
    }
    assert_null(t_realloc(p, 0)); /* glibc frees */
    assert_back(&base);

    /* size overflow: refused with ENOMEM (memcheck's calloc leaves errno
     * alone), nothing counted.  Not in a sanitizer build: nothing is
     * replaced there, and ASan reports an overflowing calloc as an error. */
    if (HEAP_COUNT_REPLACES) {
        errno = 0;
        assert_null(t_calloc(SIZE_MAX / 2, 3));
        if (active())
            assert_int_equal(errno, ENOMEM);
        errno = 0;
        assert_null(t_reallocarray(NULL, SIZE_MAX / 2, 3));
        assert_int_equal(errno, ENOMEM);
        assert_back(&base);
    }
    int *a = t_reallocarray(NULL, 100, sizeof(int));
    assert_non_null(a);
    assert_grew(&base, 1, 400);
    a = t_reallocarray(a, 1000, sizeof(int));
    assert_non_null(a);
    assert_grew(&base, 1, 4000);
    t_free(a);
    assert_back(&base);
}

static void test_heap_count_aligned_allocations(void **state)
{
    (void)state;
    HeapCount base;
    heap_count_live(&base);
    long page = sysconf(_SC_PAGESIZE);

    void *m = t_memalign(64, 100);
    void *al = t_aligned_alloc(256, 512);
    void *v = t_valloc(10);
    void *pv = t_pvalloc(10);
    void *pm = NULL;
    assert_int_equal(t_posix_memalign(&pm, 4096, 33), 0);
    assert_non_null(m);
    assert_non_null(al);
    assert_non_null(v);
    assert_non_null(pv);
    assert_non_null(pm);
    assert_int_equal((uintptr_t)m % 64, 0);
    assert_int_equal((uintptr_t)al % 256, 0);
    assert_int_equal((uintptr_t)v % (uintptr_t)page, 0);
    assert_int_equal((uintptr_t)pv % (uintptr_t)page, 0);
    assert_int_equal((uintptr_t)pm % 4096, 0);
    assert_grew(&base, 5, 100 + 512 + 10 + page + 33);
    t_free(m);
    t_free(al);
    t_free(v);
    t_free(pv);
    t_free(pm);
    assert_back(&base);

    if (!HEAP_COUNT_REPLACES)
        return; /* ASan reports a bad alignment as an error of its own */
    void *bad = (void *)&base;
    assert_int_equal(t_posix_memalign(&bad, 24, 10), EINVAL); /* not a power of two */
    assert_ptr_equal(bad, (void *)&base);
    assert_back(&base);
}

/* The executable exports every wrapper (HEAP_COUNT_LDFLAGS / -rdynamic):
 * a dlopen'd library resolves through the same global lookup as dlsym
 * here, and must not get glibc's copy. */
static void test_heap_count_wrappers_are_what_libraries_bind_to(void **state)
{
    (void)state;
    if (!HEAP_COUNT_REPLACES)
        skip(); /* a sanitizer build replaces nothing (heap-count.h): nothing to bind to */
    static const char *const names[] = {"malloc", "free", "calloc", "realloc",
                                        "reallocarray", "memalign", "aligned_alloc",
                                        "posix_memalign", "valloc", "pvalloc", "mmap",
                                        "mmap64", "munmap", "mremap"};
    Dl_info self, got;
    assert_true(dladdr((void *)heap_count_live, &self) != 0);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        void *sym = dlsym(RTLD_DEFAULT, names[i]);
        assert_non_null(sym);
        assert_true(dladdr(sym, &got) != 0);
        if (strcmp(got.dli_fname, self.dli_fname) != 0)
            fail_msg("%s binds to %s, not to the executable %s", names[i], got.dli_fname,
                     self.dli_fname);
    }
}

/* Mappings made with mmap count by page-rounded length until munmap'ed;
 * mremap moves the count by the change; a failed call changes nothing.
 * (Not replaced by valgrind: counted there too.) */
static void test_heap_count_mappings(void **state)
{
    (void)state;
    const int64_t page = sysconf(_SC_PAGESIZE), base = heap_count_mapped();
    if (!HEAP_COUNT_REPLACES) {
        /* a sanitizer build: nothing replaced, nothing counted */
        void *m = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(m != MAP_FAILED);
        assert_int_equal(heap_count_mapped(), base);
        munmap(m, page);
        return;
    }
    void *p = mmap(NULL, 3 * page - 100, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    assert_true(p != MAP_FAILED);
    assert_int_equal(heap_count_mapped() - base, 3 * page);
    void *q = mremap(p, 3 * page, 5 * page, MREMAP_MAYMOVE);
    assert_true(q != MAP_FAILED);
    assert_int_equal(heap_count_mapped() - base, 5 * page);
    errno = 0;
    assert_true(mmap(NULL, page, PROT_READ, MAP_PRIVATE, -1, 0) == MAP_FAILED);
    assert_int_equal(errno, EBADF);
    assert_int_equal(heap_count_mapped() - base, 5 * page);
    assert_int_equal(munmap(q, 5 * page), 0);
    assert_int_equal(heap_count_mapped(), base);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_count_malloc_counts_bytes_and_blocks),
        cmocka_unit_test(test_heap_count_libc_allocations_go_through_the_wrappers),
        cmocka_unit_test(test_heap_count_libraries_go_through_the_wrappers),
        cmocka_unit_test(test_heap_count_realloc_edges),
        cmocka_unit_test(test_heap_count_aligned_allocations),
        cmocka_unit_test(test_heap_count_wrappers_are_what_libraries_bind_to),
        cmocka_unit_test(test_heap_count_mappings),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
