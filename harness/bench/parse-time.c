/*
 * parse-time.c - times one parser in-process for harness/bench/
 * parser-bench.py (`make bench`): linked with one libFuzzer target of
 * harness/fuzz (fuzz-TARGET.c, built without libFuzzer) into
 * BUILD/bench/parse-time-TARGET, it feeds each FILE given to that target's
 * LLVMFuzzerTestOneInput, REPEAT times, and prints one line per file:
 *
 *     FILE BYTES NS
 *
 * NS the least CPU time (CLOCK_PROCESS_CPUTIME_ID) one call took over the
 * repeats: process start-up is not in it, and the least of several is the
 * figure a busy machine disturbs least.  Usage:
 *
 *     parse-time-TARGET [-r REPEAT] FILE...
 *
 * Called by: parser-bench.py only.  A harness tool, not engine code: it
 * reads the clock, that is all it is for.  Exit 0, 2 on usage or an
 * unreadable file (named, with the reason).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* defined by the targets that make something once (fuzz-spice's ticket key) */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "parse-time: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    size_t got;
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *nb = realloc(b, cap *= 2);
            if (!nb)
                free(b);
            b = nb;
        }
    }
    if (!b || ferror(f)) {
        fprintf(stderr, "parse-time: %s: %s\n", path, b ? "read error" : "out of memory");
        free(b);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = n;
    return b;
}

int main(int argc, char **argv)
{
    long repeat = 3;
    int i = 1;
    if (i + 1 < argc && !strcmp(argv[i], "-r")) {
        char *end;
        repeat = strtol(argv[i + 1], &end, 10);
        if (*end || repeat < 1 || repeat > 1000) {
            fprintf(stderr, "parse-time: -r '%s': a count from 1 to 1000\n", argv[i + 1]);
            return 2;
        }
        i += 2;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: %s [-r REPEAT] FILE...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize && LLVMFuzzerInitialize(&argc, &argv) != 0) {
        fprintf(stderr, "parse-time: the target's initialisation failed\n");
        return 2;
    }
    for (; i < argc; i++) {
        size_t len;
        uint8_t *data = slurp(argv[i], &len);
        if (!data)
            return 2;
        uint64_t best = UINT64_MAX;
        for (long r = 0; r < repeat; r++) {
            uint64_t t0 = cpu_ns();
            LLVMFuzzerTestOneInput(data, len);
            uint64_t t = cpu_ns() - t0;
            if (t < best)
                best = t;
        }
        printf("%s %zu %llu\n", argv[i], len, (unsigned long long)best);
        fflush(stdout);
        free(data);
    }
    return 0;
}
