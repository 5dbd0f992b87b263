/*
 * test-pageflip.c - localhost migration with page flipping
 * (docs/protocol-qemu-stream.md section 14): two
 * machines on the epoll loop over a socketpair, the pipe fd handed over
 * after the setup HOOK record, pages moved through the pipe (RAM digest and
 * the workload oracle equal, the socket carrying < 1% of RAM), the
 * negotiation with a release that lacks x-page-flip, unix: source with an
 * fd: destination, transports that cannot pass fds, HOOK records loaded
 * without the capability, a stream without a page channel (pages
 * inline after their HOOK records), a pipe that breaks mid-page or
 * runs short (named failures), and the source's split of a long stream
 * into records and pages (each page wholly in the pipe before its record).
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "machine/machine.h"
#include "ram/ram.h"
#include "sim/migration-wait.h"
#include "stream/ram-format.h"
#include "workload/workload.h"
#include "test-scale.h"

#define MIB ((uint64_t)1 << 20)
/* Guest RAM of the whole migrations: a quarter under valgrind
 * (test-scale.h), the same negotiation, pipe and oracles over fewer random
 * pages, which is where valgrind spends its time here. */
#define RAM_BIG TEST_SCALE(64 * MIB, 16 * MIB)
#define RAM_MID TEST_SCALE(16 * MIB, 4 * MIB)
#define FLIP MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP)

typedef struct Pair {
    MigLoop *loop;
    MigTrace *trace; /* MIG_TRACE=1: the engine's trace on stderr */
    MigMachine *src, *dst;
    MigWorkload *w;
} Pair;

/* A guest that dirties pages in real time (this is an epoll loop) can
 * outrun a slow machine (valgrind, the sanitizers, a loaded host): the
 * source then passes over RAM again and again.  With at most `passes`
 * passes the migration ends at any speed. */
static void bound_passes(Pair *p, uint64_t passes)
{
    MigParamsSet ps = {.has_x_max_passes = true, .p.x_max_passes = passes};
    assert_int_equal(mig_migration_set_params(mig_machine_migration(p->src), &ps, NULL), 0);
}

/* Both machines on one epoll loop.  known_*: what each release offers
 * (0 = everything this build supports); want: what management asks for,
 * cut down to what both offer (docs/protocol-qemu-stream.md section 12). */
static void pair_setup(Pair *p, uint64_t ram, uint64_t dirty_rate, MigCapMask known_src,
                       MigCapMask known_dst, MigCapMask want)
{
    memset(p, 0, sizeof(*p));
    p->loop = mig_loop_epoll_new(0xf11b);
    assert_non_null(p->loop);
    if (getenv("MIG_TRACE")) {
        p->trace = mig_trace_new();
        mig_trace_set_echo(p->trace, stderr);
        p->loop->trace = p->trace;
    }
    MigErr *err = NULL;
    MigMachineOptions so = {.name = "src", .ram_size = ram, .caps_known = known_src};
    MigMachineOptions dopt = {.name = "dst", .ram_size = ram, .incoming = true,
                              .caps_known = known_dst};
    p->src = mig_machine_new(p->loop, &so, &err);
    p->dst = mig_machine_new(p->loop, &dopt, &err);
    assert_non_null(p->src);
    assert_non_null(p->dst);
    MigWorkloadOptions wo = {.seed = 7, .fill = MIG_WORKLOAD_FILL_RANDOM,
                             .dirty_rate = dirty_rate};
    p->w = mig_workload_new(p->src, &wo, &err);
    assert_non_null(p->w);
    MigMigration *sm = mig_machine_migration(p->src), *dm = mig_machine_migration(p->dst);
    MigCapMask caps = want & mig_caps_intersect(mig_migration_caps_known(sm),
                                                mig_migration_caps_known(dm));
    assert_int_equal(mig_migration_set_caps(sm, want, caps, NULL), 0);
    assert_int_equal(mig_migration_set_caps(dm, want, caps, NULL), 0);
    MigParamsSet ps = {.has_max_bandwidth = true, .p.max_bandwidth = 0};
    assert_int_equal(mig_migration_set_params(sm, &ps, NULL), 0);
    if (dirty_rate)
        bound_passes(p, 4);
}

/* Migrate over a socketpair: the source end is a "unix" transport, the
 * destination end `dst_kind` ("unix" or "fd"). */
static void pair_migrate(Pair *p, const char *dst_kind)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    MigTransport *a = mig_transport_fd_new(p->loop, sv[0], "unix");
    MigTransport *b = mig_transport_fd_new(p->loop, sv[1], dst_kind);
    MigErr *err = NULL;
    assert_int_equal(mig_machine_incoming_transport(p->dst, b, &err), 0);
    if (mig_machine_migrate_transport(p->src, a, &err))
        fail_msg("migrate: %s", err ? err->msg : "?");
    if (sim_migration_wait(p->loop, p->src, p->dst, 120ull * 1000000000ull, &err))
        fail_msg("%s", err->msg);
}

static void pair_free(Pair *p)
{
    mig_workload_free(p->w);
    mig_machine_free(p->src);
    mig_machine_free(p->dst);
    mig_loop_free(p->loop);
    mig_trace_free(p->trace);
}

/* The bytes the stream carried are far below 1% of the bytes of the pages
 * it moved (8-byte addresses for 4 KiB pages): a bound that holds however
 * many passes a slow machine needed, unlike a bound on the RAM's size. */
static void assert_pages_flipped(const MigInfo *si)
{
    if (si->ram.transferred >= si->ram.normal * 4096 / 100)
        fail_msg("the stream carried %llu bytes for %llu pages", (unsigned long long)si->ram.transferred,
                 (unsigned long long)si->ram.normal);
}

/* Completed both ways, memory equal page by page and by digest. */
static void assert_migrated(Pair *p)
{
    MigMigration *sm = mig_machine_migration(p->src), *dm = mig_machine_migration(p->dst);
    assert_string_equal(mig_migration_error(sm), "");
    assert_string_equal(mig_migration_error(dm), "");
    assert_int_equal(mig_migration_status(sm), MIG_STATUS_COMPLETED);
    assert_int_equal(mig_migration_status(dm), MIG_STATUS_COMPLETED);
    MigErr *err = NULL;
    if (mig_workload_verify(p->w, mig_machine_ram(p->dst), &err))
        fail_msg("%s", err->msg);
    char d1[65], d2[65];
    mig_machine_ram_digest(p->src, d1);
    mig_machine_ram_digest(p->dst, d2);
    assert_string_equal(d1, d2);
}

static void test_pageflip_pages_go_through_the_pipe(void **state)
{
    Pair p;
    pair_setup(&p, RAM_BIG, 3000, 0, 0, FLIP);
    assert_true(mig_migration_caps(mig_machine_migration(p.src)) & FLIP);
    pair_migrate(&p, "unix");
    assert_migrated(&p);
    MigInfo si;
    mig_machine_query_migrate(p.src, &si);
    /* Every non-zero page went through the pipe: the stream carried 8-byte
     * addresses, yet every page arrived (the digests above). */
    assert_true(si.ram.normal >= RAM_BIG / 4096 - si.ram.duplicate);
    assert_pages_flipped(&si);
    pair_free(&p);
}

static void test_pageflip_with_return_path(void **state)
{
    /* The destination answers on the socket under the local transport. */
    Pair p;
    MigCapMask want = FLIP | MIG_CAP_BIT(MIG_CAP_RETURN_PATH);
    pair_setup(&p, RAM_MID, 2000, 0, 0, want);
    assert_int_equal(mig_migration_caps(mig_machine_migration(p.src)) & want, want);
    pair_migrate(&p, "unix");
    assert_migrated(&p);
    MigInfo si;
    mig_machine_query_migrate(p.src, &si);
    assert_pages_flipped(&si);
    pair_free(&p);
}

static void test_pageflip_off_sends_pages_on_the_socket(void **state)
{
    Pair p;
    pair_setup(&p, RAM_MID, 0, 0, 0, 0);
    pair_migrate(&p, "unix");
    assert_migrated(&p);
    MigInfo si;
    mig_machine_query_migrate(p.src, &si);
    assert_true(si.ram.transferred > si.ram.total / 2);
    pair_free(&p);
}

static void test_pageflip_older_destination_negotiates_it_off(void **state)
{
    /* The destination's release does not know x-page-flip: the intersection
     * leaves it off, and the migration runs as a plain stream. */
    MigCapMask older = mig_caps_supported() & ~FLIP;
    Pair p;
    pair_setup(&p, RAM_MID, 2000, 0, older, FLIP);
    assert_true(mig_migration_caps_known(mig_machine_migration(p.src)) & FLIP);
    assert_false(mig_migration_caps(mig_machine_migration(p.src)) & FLIP);
    pair_migrate(&p, "unix");
    assert_migrated(&p);
    MigInfo si;
    mig_machine_query_migrate(p.src, &si);
    assert_true(si.ram.transferred > si.ram.total / 2);
    pair_free(&p);
}

static void test_pageflip_unix_source_fd_destination(void **state)
{
    Pair p;
    pair_setup(&p, RAM_MID, 2000, 0, 0, 0);
    pair_migrate(&p, "fd");
    assert_migrated(&p);
    pair_free(&p);
}

static void test_pageflip_refused_without_fd_passing(void **state)
{
    Pair p;
    pair_setup(&p, 4 * MIB, 0, 0, 0, FLIP);
    char digest[65], after[65];
    mig_machine_ram_digest(p.src, digest);
    /* file: cannot pass fds. */
    char path[] = "/tmp/test-pageflip-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    MigErr *err = NULL;
    MigTransport *t = mig_transport_file_open(p.loop, path, true, &err);
    assert_non_null(t);
    assert_int_equal(mig_machine_migrate_transport(p.src, t, &err), -ENOTSUP);
    assert_non_null(err);
    assert_non_null(strstr(err->msg, "'x-page-flip'"));
    assert_non_null(strstr(err->msg, "'file' transport"));
    mig_err_free(err);
    err = NULL;
    unlink(path);
    /* Nor can a pipe handed in as fd:. */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    t = mig_transport_fd_new(p.loop, pfd[1], "fd");
    assert_int_equal(mig_machine_migrate_transport(p.src, t, &err), -ENOTSUP);
    assert_non_null(strstr(err->msg, "'fd' transport"));
    mig_err_free(err);
    close(pfd[0]);
    /* A destination with x-page-flip handed a file: its incoming migration
     * fails at once, naming the capability and the transport. */
    char path2[] = "/tmp/test-pageflip-XXXXXX";
    fd = mkstemp(path2);
    assert_true(fd >= 0);
    close(fd);
    t = mig_transport_file_open(p.loop, path2, false, &err);
    assert_non_null(t);
    assert_int_equal(mig_machine_incoming_transport(p.dst, t, &err), -ENOTSUP);
    assert_non_null(strstr(err->msg, "incoming migration: capability 'x-page-flip'"));
    assert_non_null(strstr(err->msg, "'file' transport"));
    mig_err_free(err);
    unlink(path2);
    assert_int_equal(mig_migration_status(mig_machine_migration(p.dst)), MIG_STATUS_FAILED);
    /* The source did not move. */
    assert_true(mig_machine_running(p.src));
    mig_machine_ram_digest(p.src, after);
    assert_string_equal(digest, after);
    pair_free(&p);
}

/* A RAM payload: MEM_SIZE for one 64 KiB block "pc.ram", then a HOOK. */
static uint8_t *hook_payload(size_t *len)
{
    MigStream *w = mig_stream_new_mem_writer();
    MigRamWriter rw;
    mig_ram_writer_init(&rw);
    MigRamBlockInfo b = {.name = "pc.ram", .length = 64 * 1024};
    mig_ram_put_mem_size(w, &rw, &b, 1, false);
    mig_ram_put_hook(w);
    mig_ram_put_eos(w);
    const uint8_t *d = mig_stream_mem_data(w, len);
    uint8_t *copy = malloc(*len);
    memcpy(copy, d, *len);
    mig_stream_free(w);
    return copy;
}

static const MigSaveEntry *ram_entry(MigSavevm *sv)
{
    for (size_t i = 0; i < mig_savevm_count(sv); i++)
        if (strcmp(mig_savevm_entry(sv, i)->idstr, "ram") == 0)
            return mig_savevm_entry(sv, i);
    return NULL;
}

/* One block "pc.ram" of two pages, registered in sv; with `fill`, page 1
 * holds the pattern i * 7 + 1 (page 0 stays zero).  *e: its "ram" entry. */
static MigRam *two_page_ram(MigSavevm *sv, bool fill, const MigSaveEntry **e)
{
    MigRam *r = mig_ram_new();
    assert_int_equal(mig_ram_add_block(r, "pc.ram", 2 * 4096, NULL), 0);
    uint8_t *page1 = mig_ram_block(r, 0)->host + 4096;
    for (int i = 0; fill && i < 4096; i++)
        page1[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(mig_ram_register(r, sv, NULL), 0);
    *e = ram_entry(sv);
    assert_non_null(*e);
    return r;
}

static void test_pageflip_hook_without_capability_fails(void **state)
{
    MigLoop *loop = mig_loop_epoll_new(1);
    MigMachineOptions o = {.name = "dst", .ram_size = 64 * 1024, .incoming = true};
    MigMachine *m = mig_machine_new(loop, &o, NULL);
    assert_non_null(m);
    const MigSaveEntry *e = ram_entry(mig_machine_savevm(m));
    assert_non_null(e);
    size_t len;
    uint8_t *buf = hook_payload(&len);
    /* The expected bytes: be64 MEM_SIZE total|0x04, "pc.ram", be64 length,
     * then the HOOK record, then EOS. */
    static const uint8_t head[] = {0, 0, 0, 0, 0, 1, 0, 0x04, 6, 'p', 'c', '.', 'r', 'a', 'm',
                                   0, 0, 0, 0, 0, 1, 0, 0};
    static const uint8_t tail[] = {0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x10};
    assert_int_equal(len, sizeof(head) + sizeof(tail));
    assert_memory_equal(buf, head, sizeof(head));
    assert_memory_equal(buf + sizeof(head), tail, sizeof(tail));
    MigSectionHeader h = {.type = MIG_SECTION_START, .version_id = 4};
    /* Every truncation is an error, never a load; the whole payload names
     * the record, its offset and the capability. */
    for (size_t cut = 0; cut <= len; cut++) {
        MigStream *s = mig_stream_new_mem_reader(buf, cut);
        MigErr *err = NULL;
        assert_int_equal(e->iter->load_setup(e->opaque, NULL), 0);
        int rc = e->iter->load_state(e->opaque, s, &h, &err);
        assert_true(rc < 0);
        assert_non_null(err);
        if (cut >= sizeof(head) + 8) {
            assert_int_equal(rc, -EINVAL);
            assert_non_null(strstr(err->msg, "RAM hook record"));
            assert_non_null(strstr(err->msg, "offset 23"));
            assert_non_null(strstr(err->msg, "'x-page-flip' is not enabled"));
        }
        mig_err_free(err);
        e->iter->load_cleanup(e->opaque, MIG_OUTCOME_FAILED);
        mig_stream_free(s);
    }
    free(buf);
    mig_machine_free(m);
    mig_loop_free(loop);
}

/* The socket bytes of a flipped two-page block (test_pageflip_wire_bytes_and_pipe). */
static const uint8_t want[] = {
    0, 0, 0, 0, 0, 0, 0x20, 0x04,                /* MEM_SIZE: 0x2000 bytes */
    6, 'p', 'c', '.', 'r', 'a', 'm',             /* block id */
    0, 0, 0, 0, 0, 0, 0x20, 0x00,                /* its length */
    0, 0, 0, 0, 0, 0, 0, 0x80,                   /* setup HOOK */
    MIG_TRANSPORT_FD_MARKER,                     /* carries the pipe's read end */
    0, 0, 0, 0, 0, 0, 0, 0x10,                   /* EOS */
    0, 0, 0, 0, 0, 0, 0, 0x02,                   /* page 0: ZERO */
    6, 'p', 'c', '.', 'r', 'a', 'm', 0x00,       /* block id, fill 0 */
    0, 0, 0, 0, 0, 0, 0x10, 0x80,                /* page 1: HOOK, address 0x1000 */
    0, 0, 0, 0, 0, 0, 0, 0x10,                   /* EOS */
};

/* Everything readable on fd now (non-blocking), and the fds passed with it. */
static size_t drain_socket(int fd, uint8_t *buf, size_t cap, int *fds, int *nfds)
{
    size_t len = 0;
    *nfds = 0;
    for (;;) {
        union {
            char b[CMSG_SPACE(sizeof(int) * 4)];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {.iov_base = buf + len, .iov_len = cap - len};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                             .msg_controllen = sizeof(ctl.b)};
        ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
        if (n <= 0)
            return len;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_type == SCM_RIGHTS)
                memcpy(&fds[(*nfds)++], CMSG_DATA(c), sizeof(int));
        len += (size_t)n;
    }
}

/* A sending local transport over a socketpair: sp[1] is the peer's end. */
static MigTransport *local_source(MigLoop *loop, int sp[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    MigErr *err = NULL;
    MigTransport *t = mig_transport_local_new(mig_transport_fd_new(loop, sp[0], "unix"), true,
                                              &err);
    assert_non_null(t);
    return t;
}

static void out_ready(MigTransport *t, uint32_t events, void *opaque)
{
    mig_transport_watch(t, 0, NULL, NULL);
    *(bool *)opaque = true;
}

static bool flag_set(void *opaque)
{
    return *(bool *)opaque;
}

/* What a writer does after -EAGAIN: wait for watch(OUT), here at most
 * `ns` (a hang guard; the caller tries again either way).  True when it
 * fired. */
static bool wait_writable(MigLoop *loop, MigTransport *t, uint64_t ns)
{
    bool ready = false;
    assert_int_equal(mig_transport_watch(t, MIG_LOOP_OUT, out_ready, &ready), 0);
    mig_loop_run_until(loop, flag_set, &ready, mig_loop_now_ns(loop) + ns);
    mig_transport_watch(t, 0, NULL, NULL);
    return ready;
}

static void test_pageflip_wire_bytes_and_pipe(void **state)
{
    /* One block of two pages: page 0 zero, page 1 a pattern.  Flipping, the
     * socket carries the block list, the setup HOOK and the byte that
     * carries the pipe, then a ZERO record and an 8-byte HOOK with page 1's
     * address; page 1's bytes arrive on the pipe. */
    MigLoop *loop = mig_loop_epoll_new(1);
    MigSavevm *sv = mig_savevm_new();
    const MigSaveEntry *e;
    MigRam *r = two_page_ram(sv, true, &e);
    const uint8_t *page1 = mig_ram_block(r, 0)->host + 4096;
    int sp[2];
    MigErr *err = NULL;
    MigTransport *t = local_source(loop, sp);
    assert_string_equal(t->ops->kind, "local");
    mig_ram_set_caps(r, FLIP);
    MigStream *s = mig_stream_new_writer(t);
    assert_int_equal(e->iter->save_setup(e->opaque, s, &err), 0);
    assert_int_equal(e->iter->save_iterate(e->opaque, s, 1 << 20, &err), 1);
    assert_int_equal(mig_stream_flush(s), 0);
    uint8_t got[256];
    int fds[4], nfds;
    size_t len = drain_socket(sp[1], got, sizeof(got), fds, &nfds);
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(got, want, sizeof(want));
    assert_int_equal(nfds, 1);
    uint8_t data[4096 + 1];
    assert_int_equal(read(fds[0], data, sizeof(data)), 4096);
    assert_memory_equal(data, page1, 4096);
    MigLocalStats st;
    mig_transport_local_stats(t, &st);
    assert_int_equal(st.pages, 1);
    assert_int_equal(st.pipe_bytes, 4096);
    assert_int_equal(st.socket_bytes, sizeof(want));
    /* Written counts both, as the stream's offsets do (rate, convergence). */
    assert_int_equal(t->bytes_written, sizeof(want) + 4096);
    assert_int_equal(mig_stream_offset(s), sizeof(want) + 4096);
    e->iter->save_cleanup(e->opaque, MIG_OUTCOME_COMPLETED);
    mig_stream_free(s);
    mig_transport_close(t);
    close(fds[0]);
    close(sp[1]);
    mig_savevm_free(sv);
    mig_ram_free(r);
    mig_loop_free(loop);
}

static void test_pageflip_load_every_truncation(void **state)
{
    /* The destination side of the bytes above, cut at every length: each
     * cut waits for more (never an error, never a page loaded early); the
     * whole input loads page 1 from the pipe and leaves page 0 zero. */
    MigLoop *loop = mig_loop_epoll_new(1);
    uint8_t page1[4096];
    for (int i = 0; i < 4096; i++)
        page1[i] = (uint8_t)(i * 7 + 1);
    const size_t marker = 31, setup_end = 40, hook_end = sizeof(want) - 8;
    assert_int_equal(want[marker], MIG_TRANSPORT_FD_MARKER);
    for (size_t cut = 0; cut <= sizeof(want); cut++) {
        MigSavevm *sv = mig_savevm_new();
        const MigSaveEntry *e;
        MigRam *r = two_page_ram(sv, false, &e);
        int sp[2], pp[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        assert_int_equal(pipe(pp), 0);
        assert_int_equal(write(pp[1], page1, 4096), 4096);
        /* The bytes before the marker, the marker with the pipe, the rest. */
        size_t first = MIG_MIN(cut, marker);
        if (first)
            assert_int_equal(write(sp[0], want, first), (ssize_t)first);
        MigTransport *w = mig_transport_fd_new(loop, sp[0], "unix"); /* open: no EOF */
        if (cut > marker) {
            assert_int_equal(mig_transport_send_fd(w, pp[0]), 0);
            if (cut > marker + 1)
                assert_int_equal(mig_transport_write(w, want + marker + 1, cut - marker - 1),
                                 (ssize_t)(cut - marker - 1));
        }
        MigErr *err = NULL;
        MigTransport *t = mig_transport_local_new(mig_transport_fd_new(loop, sp[1], "unix"),
                                                  false, &err);
        assert_non_null(t);
        mig_ram_set_caps(r, FLIP);
        MigStream *s = mig_stream_new_reader(t);
        MigSectionHeader h = {.type = MIG_SECTION_START, .version_id = 4};
        assert_int_equal(e->iter->load_setup(e->opaque, NULL), 0);
        int rc = e->iter->load_state(e->opaque, s, &h, &err);
        if (cut >= setup_end) {
            assert_int_equal(rc, 0);
            h.type = MIG_SECTION_PART;
            rc = e->iter->load_state(e->opaque, s, &h, &err);
        }
        const uint8_t *host = mig_ram_block(r, 0)->host;
        if (rc != (cut == sizeof(want) ? 0 : -EAGAIN))
            fail_msg("cut %zu: %d %s", cut, rc, err ? err->msg : "");
        assert_true(mig_ram_page_is_zero(host));
        if (cut >= hook_end)
            assert_memory_equal(host + 4096, page1, 4096);
        else
            assert_true(mig_ram_page_is_zero(host + 4096));
        mig_err_free(err);
        e->iter->load_cleanup(e->opaque, MIG_OUTCOME_COMPLETED);
        mig_stream_free(s);
        mig_transport_close(t);
        mig_transport_close(w);
        close(pp[0]);
        close(pp[1]);
        mig_savevm_free(sv);
        mig_ram_free(r);
    }
    mig_loop_free(loop);
}

/* The pipe breaks mid-page (its write end closed after part of a page) or
 * runs short (part of a page, the source still there): either is a clean,
 * named failure of the load, never a page loaded from what is there. */
static void pipe_fault(bool closed)
{
    MigLoop *loop = mig_loop_epoll_new(1);
    uint8_t page1[4096];
    for (int i = 0; i < 4096; i++)
        page1[i] = (uint8_t)(i * 7 + 1);
    const size_t marker = 31;
    MigSavevm *sv = mig_savevm_new();
    const MigSaveEntry *e;
    MigRam *r = two_page_ram(sv, false, &e);
    int sp[2], pp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    assert_int_equal(pipe(pp), 0);
    assert_int_equal(write(pp[1], page1, 2000), 2000);
    if (closed) {
        close(pp[1]);
        pp[1] = -1;
    }
    assert_int_equal(write(sp[0], want, marker), (ssize_t)marker);
    MigTransport *w = mig_transport_fd_new(loop, sp[0], "unix");
    assert_int_equal(mig_transport_send_fd(w, pp[0]), 0);
    assert_int_equal(mig_transport_write(w, want + marker + 1, sizeof(want) - marker - 1),
                     (ssize_t)(sizeof(want) - marker - 1));
    MigErr *err = NULL;
    MigTransport *t = mig_transport_local_new(mig_transport_fd_new(loop, sp[1], "unix"), false,
                                              &err);
    assert_non_null(t);
    mig_ram_set_caps(r, FLIP);
    MigStream *s = mig_stream_new_reader(t);
    MigSectionHeader h = {.type = MIG_SECTION_START, .version_id = 4};
    assert_int_equal(e->iter->load_setup(e->opaque, NULL), 0);
    assert_int_equal(e->iter->load_state(e->opaque, s, &h, &err), 0);
    h.type = MIG_SECTION_PART;
    int rc = e->iter->load_state(e->opaque, s, &h, &err);
    assert_int_equal(rc, closed ? -EPIPE : -EPROTO);
    assert_non_null(err);
    assert_non_null(strstr(err->msg, closed ? "the pipe closed after 2000 of 4096 bytes"
                                            : "the pipe holds 2000 of the 4096 bytes"));
    if (!strstr(err->msg, "page HOOK records from offset 56"))
        fail_msg("%s", err->msg);
    mig_err_free(err);
    e->iter->load_cleanup(e->opaque, MIG_OUTCOME_FAILED);
    const uint8_t *host = mig_ram_block(r, 0)->host;
    assert_true(mig_ram_page_is_zero(host) && mig_ram_page_is_zero(host + 4096));
    mig_stream_free(s);
    mig_transport_close(t);
    mig_transport_close(w);
    close(pp[0]);
    if (pp[1] >= 0)
        close(pp[1]);
    mig_savevm_free(sv);
    mig_ram_free(r);
    mig_loop_free(loop);
}

static void test_pageflip_pipe_breaks_mid_page(void **state)
{
    pipe_fault(true);
}

static void test_pageflip_pipe_runs_short(void **state)
{
    pipe_fault(false);
}

static void test_pageflip_without_page_channel_pages_go_inline(void **state)
{
    /* x-page-flip on a stream whose transport has no page channel (here a
     * memory stream): the same records, and each page follows its HOOK
     * record inline; a loader with the capability reads it from there. */
    MigSavevm *sv = mig_savevm_new();
    const MigSaveEntry *e;
    MigRam *r = two_page_ram(sv, true, &e);
    const uint8_t *page1 = mig_ram_block(r, 0)->host + 4096;
    mig_ram_set_caps(r, FLIP);
    MigStream *w = mig_stream_new_mem_writer();
    assert_false(mig_stream_has_page_channel(w));
    assert_int_equal(e->iter->save_setup(e->opaque, w, NULL), 0);
    assert_int_equal(e->iter->save_iterate(e->opaque, w, 1 << 20, NULL), 1);
    size_t len;
    const uint8_t *got = mig_stream_mem_data(w, &len);
    const size_t hook_end = sizeof(want) - 8;
    assert_int_equal(len, sizeof(want) + 4096);
    assert_memory_equal(got, want, hook_end);
    assert_memory_equal(got + hook_end, page1, 4096);
    assert_memory_equal(got + hook_end + 4096, want + hook_end, 8);
    MigInfo info;
    mig_ram_info(r, &info.ram);
    assert_int_equal(info.ram.transferred, len); /* the page is the stream's own */
    e->iter->save_cleanup(e->opaque, MIG_OUTCOME_COMPLETED);

    MigSavevm *dsv = mig_savevm_new();
    const MigSaveEntry *de;
    MigRam *d = two_page_ram(dsv, false, &de);
    mig_ram_set_caps(d, FLIP);
    /* Every truncation fails, and page 1 only loads whole; the whole input
     * loads it. */
    for (size_t cut = 0; cut <= len; cut++) {
        MigStream *s = mig_stream_new_mem_reader(got, cut);
        MigErr *err = NULL;
        MigSectionHeader h = {.type = MIG_SECTION_START, .version_id = 4};
        assert_int_equal(de->iter->load_setup(de->opaque, NULL), 0);
        int rc = de->iter->load_state(de->opaque, s, &h, &err);
        if (rc == 0) {
            h.type = MIG_SECTION_PART;
            rc = de->iter->load_state(de->opaque, s, &h, &err);
        }
        const uint8_t *host = mig_ram_block(d, 0)->host;
        if (cut == len) {
            if (rc != 0)
                fail_msg("whole input: %d %s", rc, err ? err->msg : "");
            assert_memory_equal(host + 4096, page1, 4096);
            de->iter->load_cleanup(de->opaque, MIG_OUTCOME_COMPLETED);
        } else {
            assert_true(rc < 0);
            if (cut < hook_end + 4096) /* never a part of the page */
                assert_true(mig_ram_page_is_zero(host + 4096));
            de->iter->load_cleanup(de->opaque, MIG_OUTCOME_FAILED);
        }
        mig_err_free(err);
        mig_stream_free(s);
    }
    mig_stream_free(w);
    mig_savevm_free(dsv);
    mig_ram_free(d);
    mig_savevm_free(sv);
    mig_ram_free(r);
}

/* Single page reads (page_get) and runs (page_getv) mixed take exactly
 * their own bytes from the pipe, nothing ahead: three pages in the pipe,
 * read one, a run of one, one: each gets its own bytes (a read-ahead stage
 * once made the run drop page 3). */
static void test_pageflip_gets_take_only_their_pages(void **state)
{
    MigLoop *loop = mig_loop_epoll_new(1);
    static uint8_t in[3][4096], out[3][4096];
    for (int p = 0; p < 3; p++)
        memset(in[p], 0x11 * (p + 1), 4096);
    int sp[2], pp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    assert_int_equal(pipe(pp), 0);
    assert_int_equal(write(pp[1], in, sizeof(in)), (ssize_t)sizeof(in));
    MigTransport *w = mig_transport_fd_new(loop, sp[0], "unix");
    assert_int_equal(mig_transport_send_fd(w, pp[0]), 0);
    MigErr *err = NULL;
    MigTransport *t = mig_transport_local_new(mig_transport_fd_new(loop, sp[1], "unix"), false,
                                              &err);
    assert_non_null(t);
    MigStream *s = mig_stream_new_reader(t);
    if (mig_stream_get_page_channel(s, &err) != 0)
        fail_msg("%s", err ? err->msg : "?");
    assert_int_equal(mig_stream_get_page(s, out[0], 4096, &err), 0);
    struct iovec one = {.iov_base = out[1], .iov_len = 4096};
    assert_int_equal(mig_stream_get_pagev(s, &one, 1, &err), 0);
    if (mig_stream_get_page(s, out[2], 4096, &err) != 0)
        fail_msg("page 3: %s", err ? err->msg : "?");
    for (int p = 0; p < 3; p++)
        if (memcmp(in[p], out[p], 4096))
            fail_msg("page %d differs", p + 1);
    MigLocalStats st;
    mig_transport_local_stats(t, &st);
    assert_int_equal(st.pages, 3);
    mig_stream_free(s);
    mig_transport_close(t);
    mig_transport_close(w);
    close(pp[0]);
    close(pp[1]);
    mig_loop_free(loop);
}

/* A writer on source transport t with the page channel's marker and then
 * npages pages queued, each after an 8-byte record with its number: mem
 * (npages + gap pages, filled here with a pattern of `mul`) holds them in
 * two runs of contiguous memory, the second `gap` pages after the first
 * (gap 0: one run). */
static MigStream *queue_pages(MigTransport *t, uint8_t *mem, size_t npages, size_t gap,
                              unsigned mul)
{
    for (size_t i = 0; i < (npages + gap) * 4096; i++)
        mem[i] = (uint8_t)(i * mul + (i >> 12));
    MigStream *s = mig_stream_new_writer(t);
    mig_stream_put_page_channel(s);
    for (uint64_t k = 0; k < npages; k++) {
        uint64_t rec = mig_stream_offset(s);
        mig_stream_put_be64(s, k);
        mig_stream_put_page_ref(s, mem + (k < npages / 2 ? k : k + gap) * 4096, 4096, rec);
    }
    return s;
}

/* Everything queue_pages' callers set up: writer, transport, the pipe's
 * read end, the socket's peer, the pages' memory, the loop. */
static void free_source(MigLoop *loop, MigStream *s, MigTransport *t, int pr, int peer,
                        uint8_t *mem)
{
    mig_stream_free(s);
    mig_transport_close(t);
    close(pr);
    close(peer);
    free(mem);
    mig_loop_free(loop);
}

/* The source's split of one stream into socket and pipe, seen from outside:
 * 600 pages (2.4 MiB: more than the 1 MiB pipe) in two runs of contiguous
 * memory with a gap between, each page after an 8-byte record naming it;
 * the reader drains the pipe 3000 bytes at a time (so pages enter it in
 * pieces) and the socket whole.  Every record arrives only after all of
 * its page is in the pipe; the socket carries the marker and the records
 * in order, the pipe the pages in order, nothing else. */
static void test_pageflip_source_pages_before_records(void **state)
{
    enum { NPAGES = 600, GAP = 100 };
    MigLoop *loop = mig_loop_epoll_new(1);
    uint8_t *mem = malloc((size_t)(NPAGES + GAP) * 4096);
    int sp[2];
    MigTransport *t = local_source(loop, sp);
    MigStream *s = queue_pages(t, mem, NPAGES, GAP, 131);
    static uint8_t sock[1 + NPAGES * 8], pipe_got[NPAGES * 4096];
    size_t slen = 0, plen = 0;
    int pr = -1;
    for (int round = 0; plen < sizeof(pipe_got) || slen < sizeof(sock); round++) {
        assert_true(round < 100000);
        int r = mig_stream_flush(s);
        assert_true(r == 0 || r == -EAGAIN);
        if (r == -EAGAIN)
            wait_writable(loop, t, 1000000); /* the pipe or socket took something, or not yet */
        int fds[4], nfds;
        size_t before = slen;
        slen += drain_socket(sp[1], sock + slen, sizeof(sock) - slen, fds, &nfds);
        if (nfds) {
            assert_int_equal(pr, -1);
            pr = fds[0];
        }
        if (pr < 0)
            continue;
        int inpipe = 0;
        assert_int_equal(ioctl(pr, FIONREAD, &inpipe), 0);
        /* each whole record read now: its page is all in the pipe */
        for (size_t end = 1 + 8 * ((before > 0 ? before - 1 : 0) / 8 + 1); end <= slen;
             end += 8)
            if (plen + (size_t)inpipe < (end - 1) / 8 * 4096)
                fail_msg("record %zu arrived with %zu page bytes in the pipe", (end - 1) / 8 - 1,
                         plen + (size_t)inpipe);
        ssize_t n = read(pr, pipe_got + plen, MIG_MIN((size_t)3000, sizeof(pipe_got) - plen));
        if (n > 0)
            plen += (size_t)n;
    }
    assert_int_equal(sock[0], MIG_TRANSPORT_FD_MARKER);
    for (uint64_t k = 0; k < NPAGES; k++) {
        uint64_t v;
        memcpy(&v, sock + 1 + 8 * k, 8);
        assert_int_equal(__builtin_bswap64(v), k);
        if (memcmp(pipe_got + k * 4096, mem + (k < NPAGES / 2 ? k : k + GAP) * 4096, 4096))
            fail_msg("page %llu differs", (unsigned long long)k);
    }
    uint8_t extra;
    assert_int_equal(read(pr, &extra, 1), -1); /* nothing more: EAGAIN */
    MigLocalStats st;
    mig_transport_local_stats(t, &st);
    assert_int_equal(st.pages, NPAGES);
    assert_int_equal(st.pipe_bytes, (uint64_t)NPAGES * 4096);
    assert_int_equal(st.socket_bytes, sizeof(sock));
    assert_int_equal(t->bytes_written, mig_stream_offset(s));
    free_source(loop, s, t, pr, sp[1], mem);
}

/* A source whose pipe is full waits for the reader instead of trying
 * vmsplice again on every flush: more pages than the pipe holds, flushed
 * until it pushes back, then flushed twice more: no vmsplice call, nothing
 * moves.  Once the reader takes a page, watch(OUT) fires and the next
 * flush moves exactly what fits again (the records follow their pages). */
static void test_pageflip_full_pipe_waits_for_reader(void **state)
{
    enum { NPAGES = 600 };
    MigLoop *loop = mig_loop_epoll_new(1);
    uint8_t *mem = aligned_alloc(4096, (size_t)NPAGES * 4096); /* a page: one pipe buffer */
    int sp[2];
    MigTransport *t = local_source(loop, sp);
    MigStream *s = queue_pages(t, mem, NPAGES, 0, 7);
    assert_int_equal(mig_stream_flush(s), -EAGAIN);
    static uint8_t sock[1 + NPAGES * 8];
    int fds[4], nfds;
    size_t slen = drain_socket(sp[1], sock, sizeof(sock), fds, &nfds);
    assert_int_equal(nfds, 1);
    int pr = fds[0], inpipe = 0;
    assert_int_equal(ioctl(pr, FIONREAD, &inpipe), 0);
    size_t held = (size_t)inpipe / 4096;
    assert_true(held > 0 && held < NPAGES && (size_t)inpipe % 4096 == 0);
    assert_int_equal(slen, 1 + held * 8); /* the records of the pages in the pipe */
    MigLocalStats st0, st;
    mig_transport_local_stats(t, &st0);
    for (int k = 0; k < 2; k++)
        assert_int_equal(mig_stream_flush(s), -EAGAIN);
    mig_transport_local_stats(t, &st);
    assert_int_equal(st.splices, st0.splices);
    assert_int_equal(st.pages, held);
    static uint8_t page[4096];
    assert_int_equal(read(pr, page, sizeof(page)), 4096);
    assert_memory_equal(page, mem, 4096);
    assert_true(wait_writable(loop, t, 10ull * 1000000000)); /* hang guard */
    assert_int_equal(mig_stream_flush(s), -EAGAIN);
    mig_transport_local_stats(t, &st);
    assert_int_equal(st.pages, held + 1);
    assert_int_equal(drain_socket(sp[1], sock, sizeof(sock), fds, &nfds), 8);
    free_source(loop, s, t, pr, sp[1], mem);
}

static int policy_now(void);

/* A thread that runs SCHED_IDLE opens and closes a source: its policy
 * stays SCHED_IDLE throughout.  Returns NULL, or what went wrong. */
static void *idle_thread(void *opaque)
{
    MigLoop *loop = opaque;
    struct sched_param sp = {0};
    if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
        return "cannot set SCHED_IDLE";
    int sp2[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp2) != 0)
        return "no socketpair";
    MigTransport *t = mig_transport_local_new(mig_transport_fd_new(loop, sp2[0], "unix"), true, NULL);
    if (!t)
        return "no transport";
    const char *bad = policy_now() != SCHED_IDLE ? "the source changed SCHED_IDLE" : NULL;
    mig_transport_close(t);
    close(sp2[1]);
    if (!bad && policy_now() != SCHED_IDLE)
        bad = "the close changed SCHED_IDLE";
    return (void *)bad;
}

static int policy_now(void)
{
    return sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;
}

/* The source's thread runs SCHED_BATCH while its local transport is open
 * (so that the reader's every read does not make it preempt the reader on
 * a shared CPU), and SCHED_OTHER again once it closed; a policy the user
 * chose (here SCHED_IDLE) is left as it is, before and after. */
static void test_pageflip_source_runs_batch_while_open(void **state)
{
    (void)state;
    if (policy_now() != SCHED_OTHER)
        skip(); /* started under another policy (chrt): the SCHED_OTHER case cannot be shown */
    struct sched_param sp = {0};
    if (sched_setscheduler(0, SCHED_BATCH, &sp) != 0)
        skip(); /* this system refuses SCHED_BATCH (a seccomp filter): the source runs without it */
    assert_int_equal(sched_setscheduler(0, SCHED_OTHER, &sp), 0);
    MigLoop *loop = mig_loop_epoll_new(1);
    int sp2[2];
    MigTransport *t = local_source(loop, sp2);
    assert_int_equal(policy_now(), SCHED_BATCH);
    mig_transport_close(t);
    assert_int_equal(policy_now(), SCHED_OTHER);
    close(sp2[1]);
    /* SCHED_IDLE cannot be left without CAP_SYS_NICE: a thread of its own */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, idle_thread, loop), 0);
    void *ret = NULL;
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_null(ret);
    loop->ops->free(loop);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pageflip_pages_go_through_the_pipe),
        cmocka_unit_test(test_pageflip_with_return_path),
        cmocka_unit_test(test_pageflip_off_sends_pages_on_the_socket),
        cmocka_unit_test(test_pageflip_older_destination_negotiates_it_off),
        cmocka_unit_test(test_pageflip_unix_source_fd_destination),
        cmocka_unit_test(test_pageflip_refused_without_fd_passing),
        cmocka_unit_test(test_pageflip_hook_without_capability_fails),
        cmocka_unit_test(test_pageflip_wire_bytes_and_pipe),
        cmocka_unit_test(test_pageflip_load_every_truncation),
        cmocka_unit_test(test_pageflip_without_page_channel_pages_go_inline),
        cmocka_unit_test(test_pageflip_pipe_breaks_mid_page),
        cmocka_unit_test(test_pageflip_pipe_runs_short),
        cmocka_unit_test(test_pageflip_gets_take_only_their_pages),
        cmocka_unit_test(test_pageflip_source_pages_before_records),
        cmocka_unit_test(test_pageflip_full_pipe_waits_for_reader),
        cmocka_unit_test(test_pageflip_source_runs_batch_while_open),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
