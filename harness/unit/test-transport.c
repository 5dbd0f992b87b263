/*
 * test-transport.c - the transports (impl/transport): fd over socketpairs and
 * pipes, fd passing, file save/restore, the unix listener, fault points,
 * which backends are duplex, and the simulator's mem link (harness/sim/link.c:
 * timing in virtual time, backpressure, drop at byte N, partition/heal, end
 * of stream).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <fiu-control.h>
#include <fiu.h>

#include "common/loop.h"
#include "sim/sim.h"
#include "stream/stream.h"
#include "transport/transport.h"

#include "test-scale.h"

#define MS 1000000ull
#define SEC 1000000000ull /* real-loop waits below allow 60 s: hang guards, not speeds */

/* ---- a reader that drains whatever is readable, remembering when ---- */

typedef struct Sink {
    MigLoop *loop;
    uint8_t *buf;
    size_t cap, len;
    int calls;
    int eof;      /* reads that returned 0 */
    int err;      /* last negative errno other than -EAGAIN */
    uint32_t ev;  /* union of events seen */
    size_t step;  /* read at most this much per callback (0: all) */
    uint64_t at[64];  /* loop time of each callback that got bytes */
    size_t upto[64];  /* len after it */
    int nat;
} Sink;

static void sink_init(Sink *s, MigLoop *loop, size_t cap)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->cap = cap;
    s->buf = malloc(cap);
}

static void sink_cb(MigTransport *t, uint32_t events, void *opaque)
{
    Sink *s = opaque;
    size_t before = s->len;
    s->calls++;
    s->ev |= events;
    for (;;) {
        size_t want = s->cap - s->len;
        if (s->step && want > s->step)
            want = s->step;
        ssize_t n = mig_transport_read(t, s->buf + s->len, want);
        if (n > 0) {
            s->len += (size_t)n;
            if (s->step)
                break;
            continue;
        }
        if (n == 0) {
            s->eof++;
            mig_transport_watch(t, 0, NULL, NULL);
        } else if (n != -EAGAIN) {
            s->err = (int)n;
            mig_transport_watch(t, 0, NULL, NULL);
        }
        break;
    }
    if (s->len != before && s->nat < 64) {
        s->at[s->nat] = mig_loop_now_ns(s->loop);
        s->upto[s->nat++] = s->len;
    }
}

static bool sink_has(void *opaque)
{
    Sink *s = opaque;
    return s->len == s->cap || s->eof || s->err;
}

static void fill_pattern(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 131 + seed) ^ (i >> 9));
}

/* ---- fd transports ---- */

static void test_transport_socketpair_round_trip_and_eof(void **state)
{
    (void)state;
    MigLoop *l = mig_loop_epoll_new(1);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    MigTransport *a = mig_transport_fd_new(l, sv[0], "unix");
    MigTransport *b = mig_transport_fd_new(l, sv[1], "unix");
    assert_string_equal(a->ops->kind, "unix");
    assert_int_equal(mig_transport_get_fd(a), sv[0]);

    struct iovec iov[3] = {{"mig", 3}, {"cert", 4}, {"!", 1}};
    assert_int_equal(mig_transport_writev(a, iov, 3), 8);
    assert_int_equal(a->bytes_written, 8);

    Sink s;
    sink_init(&s, l, 64);
    assert_int_equal(mig_transport_watch(b, MIG_LOOP_IN, sink_cb, &s), 0);
    assert_int_equal(s.calls, 0); /* never called from inside watch() */
    assert_int_equal(mig_transport_shutdown_write(a), 0);
    assert_int_equal(mig_loop_run_until(l, sink_has, &s, mig_loop_now_ns(l) + 60 * SEC), 0);
    assert_int_equal(s.len, 8);
    assert_memory_equal(s.buf, "migcert!", 8);
    assert_int_equal(s.eof, 1); /* shutdown_write: the peer reads EOF */
    assert_int_equal(b->bytes_read, 8);

    /* after close, writes to the vanished peer fail without a SIGPIPE */
    mig_transport_close(b);
    ssize_t n = mig_transport_write(a, "x", 1);
    assert_true(n == -EPIPE || n == -ECONNRESET);
    mig_transport_close(a);
    assert_int_equal(l->live_sources, 0);
    free(s.buf);
    mig_loop_free(l);
}

typedef struct Pump {
    MigTransport *t;
    const uint8_t *data;
    size_t len, off;
    int eagain;
} Pump;

static void pump_cb(MigTransport *t, uint32_t events, void *opaque)
{
    Pump *p = opaque;
    while (p->off < p->len) {
        struct iovec iov[2] = {{(void *)(p->data + p->off), (p->len - p->off) / 2},
                               {(void *)(p->data + p->off + (p->len - p->off) / 2),
                                p->len - p->off - (p->len - p->off) / 2}};
        ssize_t n = mig_transport_writev(t, iov, 2);
        if (n == -EAGAIN) {
            p->eagain++;
            return;
        }
        assert_true(n > 0);
        p->off += (size_t)n;
    }
    mig_transport_shutdown_write(t);
    mig_transport_watch(t, 0, NULL, NULL);
}

static void test_transport_pipe_backpressure_moves_8mib_intact(void **state)
{
    (void)state;
    MigLoop *l = mig_loop_epoll_new(1);
    int sv[2];
    size_t len = 8u << 20;
    uint8_t *data = malloc(len);
    fill_pattern(data, len, 3);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    MigTransport *a = mig_transport_fd_new(l, sv[0], "unix");
    MigTransport *b = mig_transport_fd_new(l, sv[1], "unix");
    Pump p = {.t = a, .data = data, .len = len};
    Sink s;
    sink_init(&s, l, len);
    assert_int_equal(mig_transport_watch(a, MIG_LOOP_OUT, pump_cb, &p), 0);
    assert_int_equal(mig_transport_watch(b, MIG_LOOP_IN, sink_cb, &s), 0);
    assert_int_equal(mig_loop_run_until(l, sink_has, &s, mig_loop_now_ns(l) + 60 * SEC), 0);
    assert_int_equal(s.len, len);
    assert_true(p.eagain > 0); /* the socket buffer filled: non-blocking */
    assert_memory_equal(s.buf, data, len);
    assert_int_equal(a->bytes_written, len);
    mig_transport_close(a);
    mig_transport_close(b);
    assert_int_equal(l->live_sources, 0);
    free(s.buf);
    free(data);
    mig_loop_free(l);
}

static void test_transport_fd_passing_over_unix_socketpair(void **state)
{
    (void)state;
    MigLoop *l = mig_loop_epoll_new(1);
    int sv[2], pfd[2];
    char c;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(pipe(pfd), 0);
    MigTransport *a = mig_transport_fd_new(l, sv[0], "unix");
    MigTransport *b = mig_transport_fd_new(l, sv[1], "unix");

    /* nothing sent yet */
    assert_int_equal(mig_transport_recv_fd(b), -EAGAIN);
    /* the passed fd is a new fd for the same pipe */
    assert_int_equal(mig_transport_send_fd(a, pfd[1]), 0);
    int got = mig_transport_recv_fd(b);
    assert_true(got >= 0);
    assert_true(got != pfd[1]);
    assert_int_equal(write(got, "p", 1), 1);
    assert_int_equal(read(pfd[0], &c, 1), 1);
    assert_int_equal(c, 'p');
    close(got);

    /* an fd that came along with bytes a plain read took is not lost */
    assert_int_equal(mig_transport_write(a, "ab", 2), 2);
    assert_int_equal(mig_transport_send_fd(a, pfd[1]), 0);
    char buf[8];
    size_t have = 0;
    while (have < 3) {
        ssize_t n = mig_transport_read(b, buf + have, sizeof(buf) - have);
        assert_true(n > 0);
        have += (size_t)n;
    }
    assert_memory_equal(buf, "ab" "F", 3);
    got = mig_transport_recv_fd(b);
    assert_true(got >= 0);
    close(got);

    /* a data byte where an fd was expected is a protocol error */
    assert_int_equal(mig_transport_write(a, "z", 1), 1);
    assert_int_equal(mig_transport_recv_fd(b), -EPROTO);

    /* pipes cannot carry fds */
    MigTransport *p = mig_transport_fd_new(l, pfd[0], "fd");
    assert_string_equal(p->ops->kind, "fd");
    assert_int_equal(mig_transport_send_fd(p, 0), -ENOTSUP);
    assert_int_equal(mig_transport_recv_fd(p), -ENOTSUP);
    mig_transport_close(p);
    close(pfd[1]);
    mig_transport_close(a);
    mig_transport_close(b);
    mig_loop_free(l);
}

static void test_transport_file_save_restore(void **state)
{
    (void)state;
    MigLoop *l = mig_loop_epoll_new(1);
    char path[] = "/tmp/migcert-test-transport-XXXXXX";
    int tmp = mkstemp(path);
    assert_true(tmp >= 0);
    close(tmp);
    size_t len = 3u << 20;
    uint8_t *data = malloc(len);
    fill_pattern(data, len, 9);

    MigErr *err = NULL;
    MigTransport *w = mig_transport_file_open(l, path, true, &err);
    assert_non_null(w);
    assert_string_equal(w->ops->kind, "file");
    struct iovec iov[2] = {{data, 1000}, {data + 1000, len - 1000}};
    size_t off = 0;
    while (off < len) {
        ssize_t n = mig_transport_writev(w, iov, 2);
        assert_true(n > 0);
        off += (size_t)n;
        /* advance the iovecs past what went out */
        for (int i = 0; i < 2; i++) {
            size_t take = MIG_MIN((size_t)n, iov[i].iov_len);
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + take;
            iov[i].iov_len -= take;
            n -= (ssize_t)take;
        }
    }
    mig_transport_close(w);

    /* restore through a watch: a file is always ready, the callback still
     * comes from the loop */
    MigTransport *r = mig_transport_file_open(l, path, false, &err);
    assert_non_null(r);
    Sink s;
    sink_init(&s, l, len + 16);
    assert_int_equal(mig_transport_watch(r, MIG_LOOP_IN, sink_cb, &s), 0);
    assert_int_equal(s.calls, 0);
    assert_int_equal(mig_loop_run_until(l, sink_has, &s, 0), 0);
    assert_int_equal(s.len, len);
    assert_int_equal(s.eof, 1);
    assert_memory_equal(s.buf, data, len);
    assert_int_equal(r->bytes_read, len);
    mig_transport_close(r);
    assert_int_equal(l->live_sources, 0);
    unlink(path);

    /* a missing file: NULL and an error naming it */
    assert_null(mig_transport_file_open(l, path, false, &err));
    assert_non_null(err);
    assert_int_equal(err->code, -ENOENT);
    assert_non_null(strstr(err->msg, path));
    mig_err_free(err);
    free(s.buf);
    free(data);
    mig_loop_free(l);
}

typedef struct Accepted {
    MigTransport *t;
    int n;
} Accepted;

static void on_accept(MigListener *lst, MigTransport *t, void *opaque)
{
    Accepted *a = opaque;
    a->n++;
    if (a->t)
        mig_transport_close(a->t);
    a->t = t;
}

static bool accepted(void *opaque)
{
    return ((Accepted *)opaque)->n > 0;
}

static void test_transport_unix_listener_connect_round_trip(void **state)
{
    (void)state;
    MigLoop *l = mig_loop_epoll_new(1);
    char dir[] = "/tmp/migcert-test-unix-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = mig_strdup_printf("%s/sock", dir);
    MigErr *err = NULL;

    /* nobody listening yet */
    assert_null(mig_transport_unix_connect(l, path, &err));
    assert_non_null(err);
    assert_non_null(strstr(err->msg, path));
    mig_err_free(err);
    err = NULL;

    Accepted acc = {0};
    MigListener *lst = mig_listener_unix_new(l, path, on_accept, &acc, &err);
    assert_non_null(lst);
    MigTransport *c = mig_transport_unix_connect(l, path, &err);
    assert_non_null(c);
    assert_null(err);
    assert_string_equal(c->ops->kind, "unix");
    assert_int_equal(mig_loop_run_until(l, accepted, &acc, mig_loop_now_ns(l) + 60 * SEC), 0);
    assert_string_equal(acc.t->ops->kind, "unix");

    assert_int_equal(mig_transport_write(c, "hello", 5), 5);
    Sink s;
    sink_init(&s, l, 5);
    assert_int_equal(mig_transport_watch(acc.t, MIG_LOOP_IN, sink_cb, &s), 0);
    assert_int_equal(mig_loop_run_until(l, sink_has, &s, mig_loop_now_ns(l) + 60 * SEC), 0);
    assert_memory_equal(s.buf, "hello", 5);

    /* freeing the listener removes its socket file */
    mig_listener_free(lst);
    assert_int_equal(access(path, F_OK), -1);
    mig_transport_close(c);
    mig_transport_close(acc.t);
    assert_int_equal(l->live_sources, 0);

    /* the simulator has no real fds: a clear error, no listener */
    MigLoop *sim = mig_sim_loop_new(1);
    assert_null(mig_listener_unix_new(sim, path, on_accept, &acc, &err));
    assert_int_equal(err->code, -ENOTSUP);
    mig_err_free(err);
    mig_loop_free(sim);

    rmdir(dir);
    free(path);
    free(s.buf);
    mig_loop_free(l);
}

static void test_transport_fault_points_fail_before_any_byte_moves(void **state)
{
    (void)state;
#ifndef FIU_ENABLE
    skip(); /* built with FIU=0: the points compile to nothing */
#else
    MigLoop *l = mig_sim_loop_new(1);
    MigTransport *a, *b;
    char buf[8];
    assert_int_equal(mig_transport_mem_pair(l, NULL, &a, &b), 0);
    fiu_init(0);

    assert_int_equal(fiu_enable("mig/transport/write", 1, NULL, 0), 0);
    assert_int_equal(mig_transport_write(a, "abc", 3), -EIO);
    fiu_disable("mig/transport/write");
    assert_int_equal(a->bytes_written, 0);
    assert_int_equal(mig_sim_run_for(l, MS), 0);
    assert_int_equal(mig_transport_read(b, buf, sizeof(buf)), -EAGAIN);

    assert_int_equal(mig_transport_write(a, "abc", 3), 3);
    assert_int_equal(mig_sim_run_for(l, MS), 0);
    assert_int_equal(fiu_enable("mig/transport/read", 1, NULL, 0), 0);
    assert_int_equal(mig_transport_read(b, buf, sizeof(buf)), -EIO);
    fiu_disable("mig/transport/read");
    assert_int_equal(mig_transport_read(b, buf, sizeof(buf)), 3); /* nothing lost */

    /* the same points guard the fd backends */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    MigTransport *f = mig_transport_fd_new(l, sv[0], "unix");
    assert_int_equal(fiu_enable("mig/transport/write", 1, NULL, 0), 0);
    assert_int_equal(mig_transport_write(f, "abc", 3), -EIO);
    fiu_disable("mig/transport/write");
    assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), -1);
    mig_transport_close(f);
    close(sv[1]);
    mig_transport_close(a);
    mig_transport_close(b);
    assert_int_equal(mig_sim_live_sources(l), 0);
    mig_loop_free(l);
#endif
}

/* ---- the mem link (on the simulator) ---- */

static void test_transport_mem_bandwidth_and_latency_in_virtual_time(void **state)
{
    (void)state;
    MigLoop *l = mig_sim_loop_new(5);
    MigLinkParams p = {.bandwidth = 1 << 20, .latency_ns = 10 * MS, .buffer = 2 << 20};
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(l, &p, &a, &b), 0);
    assert_string_equal(a->ops->kind, "mem");

    /* 1 MiB at 1 MiB/s plus 10 ms: arrives in 256 KiB steps, the last byte
     * at exactly 1.010 s of virtual time */
    size_t len = 1 << 20;
    uint8_t *data = malloc(len);
    fill_pattern(data, len, 1);
    assert_int_equal(mig_transport_write(a, data, len), (ssize_t)len);
    Sink s;
    sink_init(&s, l, len);
    assert_int_equal(mig_transport_watch(b, MIG_LOOP_IN, sink_cb, &s), 0);
    assert_int_equal(mig_loop_run_until(l, sink_has, &s, 0), 0);
    assert_int_equal(s.nat, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s.at[i], (uint64_t)(i + 1) * 250 * MS + 10 * MS);
        assert_int_equal(s.upto[i], (size_t)(i + 1) * (256 << 10));
    }
    assert_memory_equal(s.buf, data, len);

    /* latency alone: a small message written at t sends nothing before t+10ms */
    uint64_t t0 = mig_loop_now_ns(l);
    s.len = 0;
    s.nat = 0;
    assert_int_equal(mig_transport_watch(b, MIG_LOOP_IN, sink_cb, &s), 0);
    assert_int_equal(mig_transport_write(a, "ping", 4), 4);
    assert_int_equal(mig_sim_run_until_time(l, t0 + 10 * MS - 1), 0);
    assert_int_equal(s.len, 0);
    assert_int_equal(mig_sim_run_until_time(l, t0 + 20 * MS), 0);
    assert_int_equal(s.len, 4);
    /* 4 bytes at 1 MiB/s take 3815 ns (rounded up), then the latency */
    assert_int_equal(s.at[0], t0 + 3815 + 10 * MS);

    /* slow the link: the next MiB takes 2 s at half the rate */
    MigLink *k = mig_transport_mem_link(a);
    assert_non_null(k);
    p.bandwidth = 512 << 10;
    mig_link_set_params(k, &p);
    t0 = mig_loop_now_ns(l);
    s.len = 0;
    s.nat = 0;
    assert_int_equal(mig_transport_write(a, data, len), (ssize_t)len);
    assert_int_equal(mig_sim_run_until_time(l, t0 + 2 * SEC + 10 * MS - 1), 0);
    assert_true(s.len < len);
    assert_int_equal(mig_sim_run_until_time(l, t0 + 2 * SEC + 10 * MS), 0);
    assert_int_equal(s.len, len);
    assert_int_equal(mig_link_bytes(k, MIG_LINK_A_TO_B), 2 * len + 4);
    mig_link_unref(k);

    mig_transport_close(a);
    mig_transport_close(b);
    assert_int_equal(mig_sim_live_sources(l), 0);
    free(s.buf);
    free(data);
    mig_loop_free(l);
}

/* mig_transport_queued: what a sender still has on its way to the peer's
 * reader (the source counts it as pending before stopping the guest). */
static void test_transport_queued_counts_bytes_the_peer_has_not_read(void **state)
{
    (void)state;
    /* mem: in transit and arrived-but-unread alike, per direction */
    MigLoop *l = mig_sim_loop_new(5);
    MigLinkParams p = {.bandwidth = 1 << 20, .latency_ns = 10 * MS, .buffer = 1 << 20};
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(l, &p, &a, &b), 0);
    MigLink *k = mig_transport_mem_link(a);
    static uint8_t buf[600 << 10];
    fill_pattern(buf, sizeof(buf), 3);
    assert_int_equal(mig_transport_queued(a), 0);
    assert_int_equal(mig_transport_write(a, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    assert_int_equal(mig_transport_queued(a), sizeof(buf));
    assert_int_equal(mig_link_queued(k, MIG_LINK_A_TO_B), sizeof(buf));
    assert_int_equal(mig_transport_queued(b), 0);
    assert_int_equal(mig_transport_write(b, "ack", 3), 3);
    assert_int_equal(mig_transport_queued(b), 3);
    assert_int_equal(mig_link_queued(k, MIG_LINK_B_TO_A), 3);
    /* the first 256 KiB has arrived at 260 ms: still queued until read */
    assert_int_equal(mig_sim_run_for(l, 300 * MS), 0);
    assert_int_equal(mig_transport_queued(a), sizeof(buf));
    uint8_t got[4096];
    assert_int_equal(mig_transport_read(b, got, 1000), 1000);
    assert_memory_equal(got, buf, 1000);
    assert_int_equal(mig_transport_queued(a), sizeof(buf) - 1000);
    assert_int_equal(mig_transport_read(a, got, sizeof(got)), 3);
    assert_int_equal(mig_transport_queued(b), 0);
    mig_link_unref(k);
    mig_transport_close(a);
    mig_transport_close(b);
    mig_loop_free(l);

    /* a unix socket: the kernel's send queue (SIOCOUTQ counts buffer
     * overhead too) until the peer reads; a pipe cannot tell */
    l = mig_loop_epoll_new(1);
    int sv[2], pv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    a = mig_transport_fd_new(l, sv[0], "unix");
    b = mig_transport_fd_new(l, sv[1], "unix");
    assert_int_equal(mig_transport_queued(a), 0);
    assert_int_equal(mig_transport_write(a, buf, 1000), 1000);
    assert_true(mig_transport_queued(a) >= 1000);
    assert_int_equal(mig_transport_read(b, got, sizeof(got)), 1000);
    assert_int_equal(mig_transport_queued(a), 0);
    mig_transport_close(a);
    mig_transport_close(b);
    assert_int_equal(pipe(pv), 0);
    a = mig_transport_fd_new(l, pv[1], "fd");
    b = mig_transport_fd_new(l, pv[0], "fd");
    assert_int_equal(mig_transport_write(a, buf, 1000), 1000);
    assert_int_equal(mig_transport_queued(a), 0);
    mig_transport_close(a);
    mig_transport_close(b);
    assert_int_equal(mig_transport_queued(NULL), 0);
    mig_loop_free(l);
}

/* ---- guest pages by reference on a unix socket (writev_guest) ---- */

#define GPAGES 1024
#define GCHUNK (40u << 10) /* copied bytes between pages: the arena wraps */

/* Put the same records on a socket's stream and on a memory stream:
 * headers and copied chunks by value, pages of `guest` by reference, an fd
 * (its marker byte) half-way.  Each flush that the socket pushes back
 * drains what the peer can read into got. */
static size_t splice_put_all(MigStream *w, MigStream *m, const uint8_t *guest,
                             const uint8_t *chunk, int fd, MigTransport *peer, uint8_t *got,
                             size_t *have)
{
    for (int p = 0; p < GPAGES; p++) {
        mig_stream_put_be64(w, (uint64_t)p << 12 | 0x28);
        mig_stream_put_be64(m, (uint64_t)p << 12 | 0x28);
        if (p % 10 == 5) { /* in the same writev as a page: through the arena */
            mig_stream_put_buffer(w, chunk + p, GCHUNK);
            mig_stream_put_buffer(m, chunk + p, GCHUNK);
        }
        mig_stream_put_guest_ref(w, guest + (size_t)p * 4096, 4096);
        mig_stream_put_buffer(m, guest + (size_t)p * 4096, 4096);
        if (p == GPAGES / 2) {
            mig_stream_put_fd(w, fd);
            mig_stream_put_u8(m, MIG_TRANSPORT_FD_MARKER);
        }
        int r; /* the reader waits for the socket and the pipe to fill */
        while ((r = mig_stream_flush(w)) == -EAGAIN) {
            ssize_t n = mig_transport_read(peer, got + *have, 64 << 10);
            assert_true(n > 0 || n == -EAGAIN);
            *have += n > 0 ? (size_t)n : 0;
        }
        assert_int_equal(r, 0);
    }
    size_t len = 0;
    mig_stream_mem_data(m, &len);
    return len;
}

/* One run over a fresh socketpair: the bytes arrive in stream order, the fd
 * with its marker; `after` is written over the last page once it was
 * flushed but before the peer read it.  Returns whether the peer read the
 * page as `after` (by reference) rather than as it was at the flush. */
static bool splice_run(uint8_t *guest, const uint8_t *after)
{
    MigLoop *l = mig_loop_epoll_new(1);
    int sv[2], pv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(pipe(pv), 0);
    /* 2 MiB in the socket, the pipe's 1 MiB on top: more copied bytes in
     * flight than the arena holds when it starts over (root ignores
     * net.core.wmem_max with SO_SNDBUFFORCE) */
    int big = 1 << 20;
    if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) != 0)
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    MigTransport *a = mig_transport_fd_new(l, sv[0], "unix");
    MigTransport *b = mig_transport_fd_new(l, sv[1], "unix");
    MigStream *w = mig_stream_new_writer(a), *m = mig_stream_new_mem_writer();
    uint8_t *chunk = malloc(GCHUNK + GPAGES);
    fill_pattern(chunk, GCHUNK + GPAGES, 9);
    fill_pattern(guest, (size_t)GPAGES * 4096, 4);
    size_t cap = (size_t)GPAGES * (4096 + 8) + (GPAGES / 10 + 1) * GCHUNK + 1, have = 0;
    uint8_t *got = malloc(cap);
    size_t total = splice_put_all(w, m, guest, chunk, pv[1], b, got, &have);
    assert_int_equal(mig_stream_pending(w), 0);
    assert_int_equal(a->bytes_written, total);
    uint8_t *want = malloc(total);
    memcpy(want, mig_stream_mem_data(m, &total), total);
    /* the last page is still unread: change it now */
    assert_true(total - have > 4096);
    assert_true(mig_transport_queued(a) > 0);
    memcpy(guest + (size_t)(GPAGES - 1) * 4096, after, 4096);
    for (;;) {
        ssize_t n = mig_transport_read(b, got + have, cap - have);
        if (n == -EAGAIN && have == total)
            break;
        assert_true(n > 0);
        have += (size_t)n;
    }
    assert_int_equal(mig_transport_held(a), 0); /* all read */
    bool by_ref = memcmp(got + total - 4096, after, 4096) == 0;
    if (by_ref)
        memcpy(want + total - 4096, after, 4096);
    assert_memory_equal(got, want, total);
    int fd = mig_transport_take_passed_fd(b);
    assert_true(fd >= 0);
    close(fd);

    /* the peer gone: an error, not a signal, and the writer goes on */
    mig_transport_close(b);
    mig_stream_put_be64(w, 0x28);
    mig_stream_put_guest_ref(w, guest, 4096);
    int r = mig_stream_flush(w);
    assert_true(r == -EPIPE || r == -ECONNRESET);
    mig_stream_free(w);
    mig_stream_free(m);
    mig_transport_close(a);
    close(pv[0]);
    close(pv[1]);
    free(chunk);
    free(got);
    free(want);
    mig_loop_free(l);
    return by_ref;
}

/* A page of guest RAM (mig_stream_put_guest_ref) goes into a unix socket
 * by reference (vmsplice + splice) when the process ignores SIGPIPE, and
 * is copied otherwise; either way the peer reads every byte in stream
 * order with the copied bytes between (the arena wrapped), an fd arrives
 * at its marker byte, and a vanished peer is -EPIPE. */
static void test_transport_unix_sends_guest_pages_by_reference(void **state)
{
    (void)state;
    uint8_t *guest = mmap(NULL, (size_t)GPAGES * 4096, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(guest != MAP_FAILED);
    uint8_t after[4096];
    memset(after, 0xa5, sizeof(after));
    struct sigaction old, ign = {.sa_handler = SIG_IGN};
    assert_int_equal(sigaction(SIGPIPE, NULL, &old), 0);
    assert_true(old.sa_handler != SIG_IGN);
    assert_false(splice_run(guest, after)); /* SIGPIPE would kill: copies */
    assert_int_equal(sigaction(SIGPIPE, &ign, NULL), 0);
    bool by_ref = splice_run(guest, after);
    assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
    assert_true(by_ref);
    munmap(guest, (size_t)GPAGES * 4096);
}

/* Whether the peer can answer (what a return path needs) is the transport's
 * to say: sockets, the mem link and a local transport over its socket yes;
 * pipes and files no. */
static void test_transport_duplex_is_reported_by_each_backend(void **state)
{
    (void)state;
    MigLoop *l = mig_loop_epoll_new(1);
    int sv[2], pv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    MigTransport *a = mig_transport_fd_new(l, sv[0], "unix");
    MigTransport *b = mig_transport_fd_new(l, sv[1], "fd");
    assert_true(mig_transport_is_duplex(a));
    assert_true(mig_transport_is_duplex(b));
    mig_transport_close(b);
    MigErr *err = NULL;
    MigTransport *loc = mig_transport_local_new(a, true, &err);
    assert_non_null(loc);
    assert_true(mig_transport_is_duplex(loc));
    mig_transport_close(loc);

    assert_int_equal(pipe(pv), 0);
    a = mig_transport_fd_new(l, pv[1], "fd");
    b = mig_transport_fd_new(l, pv[0], "fd");
    assert_false(mig_transport_is_duplex(a));
    assert_false(mig_transport_is_duplex(b));
    mig_transport_close(a);
    mig_transport_close(b);

    char path[] = "/tmp/migcert-duplex-XXXXXX";
    int tmp = mkstemp(path);
    assert_true(tmp >= 0);
    close(tmp);
    a = mig_transport_file_open(l, path, true, NULL);
    assert_non_null(a);
    assert_false(mig_transport_is_duplex(a));
    mig_transport_close(a);
    unlink(path);
    assert_false(mig_transport_is_duplex(NULL));
    mig_loop_free(l);

    l = mig_sim_loop_new(1);
    assert_int_equal(mig_transport_mem_pair(l, NULL, &a, &b), 0);
    assert_true(mig_transport_is_duplex(a));
    assert_true(mig_transport_is_duplex(b));
    mig_transport_close(a);
    mig_transport_close(b);
    mig_loop_free(l);
}

typedef struct Writable {
    int calls;
    uint32_t ev;
} Writable;

static void writable_cb(MigTransport *t, uint32_t events, void *opaque)
{
    Writable *w = opaque;
    w->calls++;
    w->ev |= events;
    mig_transport_watch(t, 0, NULL, NULL);
}

static void test_transport_mem_backpressure(void **state)
{
    (void)state;
    MigLoop *l = mig_sim_loop_new(5);
    MigLinkParams p = {.buffer = 4096};
    MigTransport *a, *b;
    uint8_t buf[10000];
    fill_pattern(buf, sizeof(buf), 2);
    assert_int_equal(mig_transport_mem_pair(l, &p, &a, &b), 0);

    /* the buffer bounds bytes written but not yet read */
    assert_int_equal(mig_transport_write(a, buf, sizeof(buf)), 4096);
    assert_int_equal(mig_transport_write(a, buf, sizeof(buf)), -EAGAIN);
    Writable w = {0};
    assert_int_equal(mig_transport_watch(a, MIG_LOOP_OUT, writable_cb, &w), 0);
    assert_int_equal(mig_sim_run_for(l, SEC), 0);
    assert_int_equal(w.calls, 0); /* still full: not writable */

    uint8_t got[1000];
    assert_int_equal(mig_transport_read(b, got, sizeof(got)), 1000);
    assert_memory_equal(got, buf, 1000);
    assert_int_equal(w.calls, 0); /* never re-entrant: only from the loop */
    assert_int_equal(mig_sim_run_for(l, 1), 0);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.ev, MIG_LOOP_OUT);
    assert_int_equal(mig_transport_write(a, buf + 4096, sizeof(buf) - 4096), 1000);
    assert_int_equal(mig_transport_write(a, buf, 1), -EAGAIN);
    mig_transport_close(a);
    mig_transport_close(b);
    assert_int_equal(mig_sim_live_sources(l), 0);
    mig_loop_free(l);
}

static void test_transport_mem_drop_at_byte_n_seen_by_both_ends(void **state)
{
    (void)state;
    MigLoop *l = mig_sim_loop_new(5);
    MigLinkParams p = {.latency_ns = MS};
    MigTransport *a, *b;
    uint8_t buf[5000];
    fill_pattern(buf, sizeof(buf), 4);
    assert_int_equal(mig_transport_mem_pair(l, &p, &a, &b), 0);
    MigLink *k = mig_transport_mem_link(b);
    mig_link_drop_at(k, MIG_LINK_A_TO_B, 1000);
    assert_false(mig_link_is_broken(k));

    assert_int_equal(mig_transport_write(a, buf, 600), 600);
    assert_int_equal(mig_transport_write(a, buf + 600, sizeof(buf) - 600), 400);
    assert_true(mig_link_is_broken(k));
    assert_int_equal(mig_transport_write(a, buf, 1), -ECONNRESET);

    Sink sb, sa;
    sink_init(&sb, l, sizeof(buf));
    sink_init(&sa, l, 16);
    assert_int_equal(mig_transport_watch(b, MIG_LOOP_IN, sink_cb, &sb), 0);
    assert_int_equal(mig_transport_watch(a, MIG_LOOP_IN, sink_cb, &sa), 0);
    assert_int_equal(mig_loop_run(l), 0);
    /* the peer got exactly the first 1000 bytes, then the reset */
    assert_int_equal(sb.len, 1000);
    assert_memory_equal(sb.buf, buf, 1000);
    assert_int_equal(sb.err, -ECONNRESET);
    assert_true(sa.ev & MIG_LOOP_ERR); /* nothing was in flight towards a */
    assert_int_equal(sa.err, -ECONNRESET);
    assert_int_equal(mig_transport_write(b, "x", 1), -ECONNRESET);
    mig_transport_close(a);
    mig_transport_close(b);
    mig_link_unref(k);

    /* drop now: what was in flight is lost, both ends reset at once */
    assert_int_equal(mig_transport_mem_pair(l, &p, &a, &b), 0);
    k = mig_transport_mem_link(a);
    assert_int_equal(mig_transport_write(a, buf, 500), 500);
    mig_link_drop_now(k);
    assert_int_equal(mig_sim_run_for(l, 10 * MS), 0);
    assert_int_equal(mig_transport_read(b, buf, sizeof(buf)), -ECONNRESET);
    assert_int_equal(mig_transport_read(a, buf, sizeof(buf)), -ECONNRESET);
    assert_int_equal(mig_transport_write(b, buf, 1), -ECONNRESET);
    mig_link_unref(k);
    mig_transport_close(a);
    mig_transport_close(b);
    assert_int_equal(mig_sim_live_sources(l), 0);
    free(sa.buf);
    free(sb.buf);
    mig_loop_free(l);
}

static void test_transport_mem_partition_then_heal(void **state)
{
    (void)state;
    MigLoop *l = mig_sim_loop_new(5);
    MigLinkParams p = {.latency_ns = MS, .buffer = 256};
    MigTransport *a, *b;
    uint8_t buf[300], got[300];
    fill_pattern(buf, sizeof(buf), 6);
    assert_int_equal(mig_transport_mem_pair(l, &p, &a, &b), 0);
    MigLink *k = mig_transport_mem_link(a);

    mig_link_partition(k, true);
    assert_int_equal(mig_transport_write(a, buf, sizeof(buf)), 256);
    assert_int_equal(mig_transport_write(a, buf, 1), -EAGAIN);
    assert_int_equal(mig_sim_run_for(l, 10 * SEC), 0);
    /* nothing arrives and nothing errors */
    assert_int_equal(mig_transport_read(b, got, sizeof(got)), -EAGAIN);
    assert_false(mig_link_is_broken(k));
    assert_int_equal(mig_sim_live_sources(l), 0);

    uint64_t heal = mig_loop_now_ns(l);
    mig_link_partition(k, false);
    assert_int_equal(mig_sim_run_until_time(l, heal + MS - 1), 0);
    assert_int_equal(mig_transport_read(b, got, sizeof(got)), -EAGAIN);
    assert_int_equal(mig_sim_run_until_time(l, heal + MS), 0);
    assert_int_equal(mig_transport_read(b, got, sizeof(got)), 256);
    assert_memory_equal(got, buf, 256);
    mig_link_unref(k);
    mig_transport_close(a);
    mig_transport_close(b);
    mig_loop_free(l);
}

static void test_transport_mem_eof_on_close_and_shutdown(void **state)
{
    (void)state;
    MigLoop *l = mig_sim_loop_new(5);
    MigLinkParams p = {.latency_ns = MS};
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(l, &p, &a, &b), 0);

    /* shutdown: the peer reads the bytes, then EOF; the other way still works */
    assert_int_equal(mig_transport_write(a, "half", 4), 4);
    assert_int_equal(mig_transport_shutdown_write(a), 0);
    assert_int_equal(mig_transport_write(a, "x", 1), -EPIPE);
    Sink s;
    sink_init(&s, l, 64);
    assert_int_equal(mig_transport_watch(b, MIG_LOOP_IN, sink_cb, &s), 0);
    assert_int_equal(mig_loop_run_until(l, sink_has, &s, 0), 0);
    assert_int_equal(s.len, 4);
    assert_int_equal(s.eof, 1);
    assert_int_equal(mig_transport_write(b, "back", 4), 4);
    assert_int_equal(mig_sim_run_for(l, MS), 0);
    char buf[8];
    assert_int_equal(mig_transport_read(a, buf, sizeof(buf)), 4);

    mig_transport_close(a);
    mig_transport_close(b);

    /* close: bytes in flight still arrive, then 0; writing back is -EPIPE */
    assert_int_equal(mig_transport_mem_pair(l, &p, &a, &b), 0);
    assert_int_equal(mig_transport_write(a, "bye", 3), 3);
    mig_transport_close(a);
    free(s.buf);
    sink_init(&s, l, 64);
    assert_int_equal(mig_transport_watch(b, MIG_LOOP_IN, sink_cb, &s), 0);
    assert_int_equal(mig_loop_run_until(l, sink_has, &s, 0), 0);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.buf, "bye", 3);
    assert_int_equal(s.eof, 1);
    assert_int_equal(mig_transport_write(b, "x", 1), -EPIPE);
    mig_transport_close(b);
    assert_int_equal(mig_sim_live_sources(l), 0);
    free(s.buf);
    mig_loop_free(l);
}

static void test_transport_mem_level_triggered_small_reads(void **state)
{
    (void)state;
    MigLoop *l = mig_sim_loop_new(5);
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(l, NULL, &a, &b), 0);
    assert_int_equal(mig_transport_write(a, "0123456789", 10), 10);
    Sink s;
    sink_init(&s, l, 10);
    s.step = 3; /* a reader that takes 3 bytes per callback is called again */
    assert_int_equal(mig_transport_watch(b, MIG_LOOP_IN, sink_cb, &s), 0);
    assert_int_equal(mig_loop_run_until(l, sink_has, &s, 0), 0);
    assert_int_equal(s.len, 10);
    assert_int_equal(s.calls, 4);
    assert_memory_equal(s.buf, "0123456789", 10);
    assert_int_equal(mig_loop_now_ns(l), 0); /* no bandwidth, no latency */
    mig_transport_watch(b, 0, NULL, NULL);
    mig_transport_close(a);
    mig_transport_close(b);
    assert_int_equal(mig_sim_live_sources(l), 0);
    free(s.buf);
    mig_loop_free(l);
}

typedef struct Flow {
    MigTransport *w, *r;
    const uint8_t *data;
    size_t len, wr, rd;
    uint8_t chunk[64 << 10];
    bool ok;
} Flow;

static void flow_write(MigTransport *t, uint32_t events, void *opaque)
{
    Flow *f = opaque;
    while (f->wr < f->len) {
        size_t n = MIG_MIN(f->len - f->wr, (size_t)1 << 20);
        ssize_t got = mig_transport_write(t, f->data + f->wr, n);
        if (got == -EAGAIN)
            return;
        assert_true(got > 0);
        f->wr += (size_t)got;
    }
    mig_transport_watch(t, 0, NULL, NULL);
}

static void flow_read(MigTransport *t, uint32_t events, void *opaque)
{
    Flow *f = opaque;
    for (;;) {
        ssize_t n = mig_transport_read(t, f->chunk, sizeof(f->chunk));
        if (n == -EAGAIN)
            return;
        assert_true(n > 0);
        f->ok = f->ok && memcmp(f->chunk, f->data + f->rd, (size_t)n) == 0;
        f->rd += (size_t)n;
        if (f->rd == f->len)
            mig_transport_watch(t, 0, NULL, NULL);
    }
}

static bool flow_done(void *opaque)
{
    Flow *f = opaque;
    return f->rd == f->len;
}

static void test_transport_mem_moves_64mib_at_link_speed(void **state)
{
    (void)state;
    MigLoop *l = mig_sim_loop_new(5);
    /* 1 GiB/s, 100 us: a realistic link; the data must come out intact, at
     * the link's virtual speed.  Its CPU cost is printed, not asserted (a
     * test never depends on the machine's speed; build/bench/sim-bench
     * measures the simulator) */
    MigLinkParams p = {.bandwidth = 1u << 30, .latency_ns = 100000};
    size_t len = 64u << 20;
    uint8_t *data = malloc(len);
    fill_pattern(data, len, 8);
    Flow *f = calloc(1, sizeof(*f));
    f->data = data;
    f->len = len;
    f->ok = true;
    assert_int_equal(mig_transport_mem_pair(l, &p, &f->w, &f->r), 0);
    assert_int_equal(mig_transport_watch(f->w, MIG_LOOP_OUT, flow_write, f), 0);
    assert_int_equal(mig_transport_watch(f->r, MIG_LOOP_IN, flow_read, f), 0);

    struct timespec w0, w1;
    /* CPU time, not wall time: other jobs on the machine must not count */
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &w0);
    assert_int_equal(mig_loop_run_until(l, flow_done, f, 0), 0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &w1);
    double secs = (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;
    assert_true(f->ok);
    /* 64 MiB at 1 GiB/s = 62.5 ms; the buffer never starves the link */
    uint64_t vt = mig_loop_now_ns(l);
    assert_true(vt >= 62500000 + 100000);
    assert_true(vt <= 62500000 + 100000 + 300000);
    print_message("mem link: 64 MiB in %.1f ms of CPU (%.0f MiB/s), %.3f ms virtual, %llu steps\n",
                  secs * 1e3, 64 / secs, (double)vt / 1e6,
                  (unsigned long long)mig_sim_steps(l));
    mig_transport_close(f->w);
    mig_transport_close(f->r);
    assert_int_equal(mig_sim_live_sources(l), 0);
    free(f);
    free(data);
    mig_loop_free(l);
}

static void test_transport_mem_same_seed_same_delivery(void **state)
{
    (void)state;
    /* two links competing on one sim loop: the interleaving of their
     * deliveries is a function of the seed only */
    uint64_t trace[2][64];
    for (int run = 0; run < 2; run++) {
        MigLoop *l = mig_sim_loop_new(0xabc);
        MigTransport *a[2], *b[2];
        Sink s[2];
        for (int i = 0; i < 2; i++) {
            assert_int_equal(mig_transport_mem_pair(l, NULL, &a[i], &b[i]), 0);
            sink_init(&s[i], l, 1000);
            s[i].step = 7;
            mig_transport_watch(b[i], MIG_LOOP_IN, sink_cb, &s[i]);
        }
        uint8_t buf[1000] = {0};
        for (int i = 0; i < 2; i++)
            assert_int_equal(mig_transport_write(a[i], buf, sizeof(buf)), 1000);
        int n = 0;
        while (n < 64 && l->ops->run_once(l) > 0)
            trace[run][n++] = (uint64_t)s[0].len << 32 | s[1].len;
        for (int i = 0; i < 2; i++) {
            mig_transport_close(a[i]);
            mig_transport_close(b[i]);
            free(s[i].buf);
        }
        mig_loop_free(l);
    }
    assert_memory_equal(trace[0], trace[1], sizeof(trace[0]));
}

/* Byte `o` of the stream in the ring test below. */
static uint8_t ring_byte(uint64_t o)
{
    return (uint8_t)(o * 131 + (o >> 11) + (o >> 17));
}

/* The link holds what is in flight in a buffer that starts small, starts
 * again at its beginning when empty and grows (keeping wrapped bytes in
 * order) only as far as the bytes held need: none of that may show.  Writes
 * and reads of uneven sizes drive the ring through wraps, growths from a
 * wrapped state, empties and a fill to exactly `buffer` bytes, past the
 * size where it moves to its own mapping; every byte read is checked.
 * Under valgrind 100 rounds instead of 400 (test-scale.h), half small and
 * half large as in the full run, two of them drains: the same wraps,
 * growths (from a wrapped ring too), empties and mapping, in fewer
 * repetitions of each. */
static void test_transport_mem_ring_keeps_bytes_across_wraps_and_growth(void **state)
{
    (void)state;
    const int rounds = TEST_SCALE(400, 100);
    MigLoop *l = mig_sim_loop_new(9);
    const size_t cap = (size_t)3 << 20;
    MigLinkParams p = {.buffer = cap};
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(l, &p, &a, &b), 0);
    uint8_t *buf = malloc(cap);
    uint64_t wr = 0, rd = 0, x = 12345;
    /* sizes: small against the first buffer, then up to the whole bound */
    for (int round = 0; round < rounds; round++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t big = round < rounds / 2 ? (size_t)40 << 10 : cap;
        size_t w = (size_t)(x >> 33) % big + 1, r = (size_t)(x >> 13) % big + 1;
        if (round % 50 == 49)
            r = cap; /* drain: the ring empties */
        for (size_t i = 0; i < w; i++)
            buf[i] = ring_byte(wr + i);
        ssize_t n = mig_transport_write(a, buf, w);
        size_t room = cap - (size_t)(wr - rd);
        if (room == 0) {
            assert_int_equal(n, -EAGAIN);
        } else {
            assert_int_equal(n, (ssize_t)MIG_MIN(w, room));
            wr += (uint64_t)n;
        }
        assert_int_equal(mig_sim_run_for(l, 1), 0);
        n = mig_transport_read(b, buf, MIG_MIN(r, cap));
        if (wr == rd) {
            assert_int_equal(n, -EAGAIN);
            continue;
        }
        assert_true(n > 0);
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != ring_byte(rd + (uint64_t)i))
                fail_msg("stream byte %llu is 0x%02x, wrote 0x%02x",
                         (unsigned long long)(rd + (uint64_t)i), buf[i], ring_byte(rd + (uint64_t)i));
        rd += (uint64_t)n;
    }
    /* full: exactly `buffer` bytes in flight, then backpressure */
    for (size_t i = 0; i < cap; i++)
        buf[i] = ring_byte(wr + i);
    size_t room = cap - (size_t)(wr - rd);
    assert_int_equal(mig_transport_write(a, buf, cap), (ssize_t)room);
    assert_int_equal(mig_transport_write(a, buf, 1), -EAGAIN);
    wr += room;
    assert_int_equal(mig_sim_run_for(l, 1), 0);
    assert_int_equal(mig_transport_read(b, buf, cap), (ssize_t)cap);
    for (size_t i = 0; i < cap; i++)
        if (buf[i] != ring_byte(rd + i))
            fail_msg("stream byte %llu differs after a fill", (unsigned long long)(rd + i));
    free(buf);
    mig_transport_close(a);
    mig_transport_close(b);
    mig_loop_free(l);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transport_socketpair_round_trip_and_eof),
        cmocka_unit_test(test_transport_pipe_backpressure_moves_8mib_intact),
        cmocka_unit_test(test_transport_fd_passing_over_unix_socketpair),
        cmocka_unit_test(test_transport_file_save_restore),
        cmocka_unit_test(test_transport_unix_listener_connect_round_trip),
        cmocka_unit_test(test_transport_fault_points_fail_before_any_byte_moves),
        cmocka_unit_test(test_transport_mem_bandwidth_and_latency_in_virtual_time),
        cmocka_unit_test(test_transport_mem_backpressure),
        cmocka_unit_test(test_transport_mem_ring_keeps_bytes_across_wraps_and_growth),
        cmocka_unit_test(test_transport_mem_drop_at_byte_n_seen_by_both_ends),
        cmocka_unit_test(test_transport_mem_partition_then_heal),
        cmocka_unit_test(test_transport_mem_eof_on_close_and_shutdown),
        cmocka_unit_test(test_transport_mem_level_triggered_small_reads),
        cmocka_unit_test(test_transport_mem_moves_64mib_at_link_speed),
        cmocka_unit_test(test_transport_mem_same_seed_same_delivery),
        cmocka_unit_test(test_transport_queued_counts_bytes_the_peer_has_not_read),
        cmocka_unit_test(test_transport_duplex_is_reported_by_each_backend),
        cmocka_unit_test(test_transport_unix_sends_guest_pages_by_reference),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
