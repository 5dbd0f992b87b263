/*
 * link-probe.c - the host's own ceilings for the benchmark (ci/bench,
 * harness/bench/bench.py): how fast two processes move bytes through a unix
 * socketpair, and through a pipe fed with vmsplice and drained with read().
 * The socketpair copies on both sides, the goal a migration over `unix:`
 * is held to (which copies on the destination only: its source splices
 * guest pages into the socket, impl/transport/transport-fd.c); page
 * flipping (`local:`) does the pipe's work plus the records.  bench.py
 * prints each migration as a share of these, measured in the same run.
 *
 *   link-probe socket|vmsplice [--mib N] [--chunk KIB] [--pipe KIB] [--records]
 *              [--runs R] [--cpus W,R] [--settle MS] [--json]
 *
 * socket:   a parent writes N MiB from a pre-faulted buffer in chunks of
 *           KIB (default 1024) into one end of an AF_UNIX socketpair with
 *           1 MiB socket buffers; a child reads them into its own
 *           pre-faulted buffer.  (The migration writes the same way: iovecs
 *           of guest pages, the destination reads into guest RAM.)  With
 *           --records, in the shape of the stream's PAGE records (below).
 * vmsplice: the parent vmsplices (no SPLICE_F_GIFT) the buffer's pages in
 *           chunks of KIB into a pipe of that size; the child reads them
 *           into its buffer.
 * Prints the median of R runs (default 3) in GB/s (10^9 bytes/s) on the
 * last line, with the slowest and fastest run and the median CPU seconds
 * per GiB of each side ("socket 1024 KiB: 7.85 GB/s median of 3 (...)"), or
 * a JSON object with --json: the statistic bench.py takes of migrations.
 * Wall time from the first byte written to the child's last byte read; the
 * clock starts once both buffers are pre-faulted (and settled: --settle).
 * --cpus W,R pins the writer to CPU W and the reader to CPU R (bench.py
 * --pin places both ends of a migration the same way).
 *
 * Harness code (not in libmigcert.a); it measures the host, not migcert.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A pre-faulted, huge-page-backed buffer.  The writer's (random) holds
 * bytes like the bench's guests (`migcert vm --fill random`, QEMU's loaded
 * random file): a buffer that is zero but for a byte a page made the
 * writer's copy up to five times slower in some runs here (the host's
 * handling of nearly-empty memory), which is not what a migration moves. */
static unsigned char *buffer(size_t len, int random)
{
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("link-probe: mmap");
        exit(2);
    }
    madvise(p, len, MADV_HUGEPAGE);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < len; i += 4096) {
        if (!random) {
            p[i] = (unsigned char)(i >> 12) | 1;
            continue;
        }
        for (size_t j = 0; j < 4096; j += 8) {
            x ^= x << 13; /* xorshift64 */
            x ^= x >> 7;
            x ^= x << 17;
            memcpy(p + i + j, &x, 8);
        }
    }
    return p;
}

/* --records (socket): the bytes travel in the shape of the migration
 * stream's PAGE records, an 8-byte header before each 4 KiB page, written
 * with writev from the pages in place and read with readv straight into
 * the reader's pages (headers into a small array), as migcert's source and
 * destination do: what that shape costs over the same socket.  GB/s counts
 * the pages' bytes, as the bench's rows count guest RAM. */
static int records;
#define REC_PAGE 4096
#define REC_LEN (8 + REC_PAGE)
#define REC_RUN 256 /* records per writev/readv: 512 iovecs, 1 MiB of pages */

/* iovecs for the record stream from byte `pos` on: up to REC_RUN records
 * of the npages pages at `pages`, headers in hdr[] (one slot per record of
 * a run). */
static int record_iov(unsigned char *pages, unsigned char (*hdr)[8], size_t npages, size_t pos,
                      struct iovec *iov)
{
    int n = 0;
    for (size_t j = pos / REC_LEN, in = pos % REC_LEN, k = 0; j < npages && k < REC_RUN;
         j++, k++, in = 0) {
        if (in < 8) {
            iov[n].iov_base = hdr[j % REC_RUN] + in;
            iov[n++].iov_len = 8 - in;
            in = 8;
        }
        iov[n].iov_base = pages + j * REC_PAGE + (in - 8);
        iov[n++].iov_len = REC_PAGE - (in - 8);
    }
    return n;
}

/* Move the npages records through fd, writing (to_fd) or reading; 0 when
 * all went. */
static int move_records(int fd, unsigned char *pages, size_t npages, int to_fd)
{
    static unsigned char hdr[REC_RUN][8];
    struct iovec iov[2 * REC_RUN];
    size_t pos = 0, total = npages * REC_LEN;
    for (size_t j = 0; to_fd && j < REC_RUN; j++)
        memset(hdr[j], 0x20, 8); /* what a header holds does not matter here */
    while (pos < total) {
        int n = record_iov(pages, hdr, npages, pos, iov);
        ssize_t got = to_fd ? writev(fd, iov, n) : readv(fd, iov, n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return 1;
        pos += (size_t)got;
    }
    return 0;
}

/* Read exactly len bytes from fd into buf; the child's whole job. */
static int drain(int fd, unsigned char *buf, size_t len, size_t chunk)
{
    size_t got = 0;
    while (got < len) {
        size_t want = len - got < chunk ? len - got : chunk;
        ssize_t n = read(fd, buf + got, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 1;
        got += (size_t)n;
    }
    return 0;
}

/* --cpus W,R: the writer on CPU W, the reader on CPU R (-1: wherever the
 * scheduler puts it), as bench.py --pin places a migration's two ends. */
static int pin_cpu[2] = {-1, -1};

static void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0)
        perror("link-probe: sched_setaffinity");
}

/* --settle MS: both buffers sit that long between their pre-faulting and
 * the first byte written, as a migration's RAM does between its machine's
 * start and `migrate` (memory touched just now copies faster here). */
static unsigned settle_ms;

static void settle(void)
{
    struct timespec ts = {settle_ms / 1000, (long)(settle_ms % 1000) * 1000000L};
    while (settle_ms && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static double cpu_s(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* One run: seconds, or a negative number on failure; cpu[0] and cpu[1]
 * get the writer's and the reader's CPU seconds for the transfer. */
static double run(int vmsplice_mode, size_t len, size_t chunk, size_t pipe_sz, double cpu[2])
{
    int fds[2];
    if (vmsplice_mode) {
        if (pipe(fds) < 0)
            return -1;
        fcntl(fds[1], F_SETPIPE_SZ, (int)(pipe_sz ? pipe_sz : chunk));
    } else {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0)
            return -1;
        int sz = 1 << 20;
        setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    int rd = vmsplice_mode ? fds[0] : fds[1], wr = vmsplice_mode ? fds[1] : fds[0];
    int done[2], ready[2];
    if (pipe(done) < 0)
        return -1;
    if (pipe(ready) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(wr);
        close(done[0]);
        close(ready[0]);
        pin(pin_cpu[1]);
        unsigned char *dst = buffer(len, 0);
        settle();
        /* ready: the writer starts the clock only now, so the time is the
         * transfer's and not this buffer's pre-faulting */
        if (write(ready[1], "r", 1) != 1)
            _exit(1);
        close(ready[1]);
        double c0 = cpu_s(RUSAGE_SELF);
        int rc = records ? move_records(rd, dst, len / REC_PAGE, 0) : drain(rd, dst, len, chunk);
        double t[2] = {now_s(), cpu_s(RUSAGE_SELF) - c0};
        if (write(done[1], t, sizeof(t)) != (ssize_t)sizeof(t))
            rc = 1;
        _exit(rc);
    }
    close(rd);
    close(done[1]);
    close(ready[1]);
    pin(pin_cpu[0]);
    unsigned char *src = buffer(len, 1);
    settle();
    char r;
    ssize_t got = read(ready[0], &r, 1);
    close(ready[0]);
    if (got != 1) {
        close(wr);
        close(done[0]);
        waitpid(pid, NULL, 0);
        munmap(src, len);
        return -1;
    }
    double t0 = now_s(), c0 = cpu_s(RUSAGE_SELF);
    size_t off = 0;
    if (records && !move_records(wr, src, len / REC_PAGE, 1))
        off = len;
    while (!records && off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        struct iovec iov = {.iov_base = src + off, .iov_len = n};
        ssize_t w = vmsplice_mode ? vmsplice(wr, &iov, 1, 0) : write(wr, src + off, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(wr);
    cpu[0] = cpu_s(RUSAGE_SELF) - c0;
    double t1[2] = {-1, 0};
    if (read(done[0], t1, sizeof(t1)) != (ssize_t)sizeof(t1))
        t1[0] = -1;
    cpu[1] = t1[1];
    close(done[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    munmap(src, len);
    if (off < len || t1[0] < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -1;
    return t1[0] - t0;
}

/* The median of n values (sorts them). */
static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define MAX_RUNS 64

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "socket") && strcmp(argv[1], "vmsplice"))) {
        fprintf(stderr, "usage: link-probe socket|vmsplice [--mib N] [--chunk KIB] [--pipe KIB] "
                        "[--records] [--runs R] [--cpus W,R] [--settle MS] [--json]\n");
        return 2;
    }
    int vs = !strcmp(argv[1], "vmsplice");
    size_t mib = 1024, kib = 1024, pipe_kib = 0;
    int runs = 3, json = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--mib") && i + 1 < argc)
            mib = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
            kib = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--pipe") && i + 1 < argc)
            pipe_kib = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cpus") && i + 1 < argc &&
                 sscanf(argv[i + 1], "%d,%d", &pin_cpu[0], &pin_cpu[1]) == 2)
            i++;
        else if (!strcmp(argv[i], "--settle") && i + 1 < argc)
            settle_ms = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--records") && !vs)
            records = 1;
        else if (!strcmp(argv[i], "--json"))
            json = 1;
        else {
            fprintf(stderr, "link-probe: unknown or malformed argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!mib || !kib || kib % 4 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "link-probe: --mib > 0, --runs 1..%d and --chunk a positive multiple "
                        "of 4\n", MAX_RUNS);
        return 2;
    }
    size_t len = mib << 20, chunk = kib << 10;
    double gbs[MAX_RUNS], cpu_w[MAX_RUNS], cpu_r[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        double cpu[2];
        double s = run(vs, len, chunk, pipe_kib << 10, cpu);
        if (s <= 0) {
            fprintf(stderr, "link-probe: %s run %d failed\n", argv[1], r);
            return 1;
        }
        gbs[r] = (double)len / s / 1e9;
        cpu_w[r] = cpu[0];
        cpu_r[r] = cpu[1];
    }
    /* The median, as bench.py takes of a migration's runs; the spread
     * beside it. */
    double lo = gbs[0], hi = gbs[0];
    for (int r = 1; r < runs; r++) {
        lo = gbs[r] < lo ? gbs[r] : lo;
        hi = gbs[r] > hi ? gbs[r] : hi;
    }
    double med = median(gbs, runs), gib = (double)len / (double)(1u << 30);
    double cw = median(cpu_w, runs) / gib, cr = median(cpu_r, runs) / gib;
    size_t pk = vs ? (pipe_kib ? pipe_kib : kib) : 0;
    if (json)
        printf("{\"probe\": \"%s\", \"chunk_kib\": %zu, \"pipe_kib\": %zu, \"mib\": %zu, "
               "\"records\": %s, \"runs\": %d, \"statistic\": \"median\", \"gbps\": %.3f, "
               "\"min_gbps\": %.3f, "
               "\"max_gbps\": %.3f, \"cpus\": [%d, %d], \"settle_ms\": %u, "
               "\"writer_cpu_s_per_gib\": %.3f, \"reader_cpu_s_per_gib\": %.3f}\n",
               argv[1], kib, pk, mib, records ? "true" : "false", runs, med, lo, hi, pin_cpu[0],
               pin_cpu[1], settle_ms, cw, cr);
    else
        printf("%s %zu KiB%s: %.2f GB/s median of %d (%.2f-%.2f) (CPU s/GiB: writer %.3f, "
               "reader %.3f)\n",
               argv[1], records ? REC_RUN * REC_PAGE / 1024 : kib, records ? " of records" : "",
               med, runs, lo, hi, cw, cr);
    return 0;
}
