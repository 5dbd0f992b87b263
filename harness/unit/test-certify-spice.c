/*
 * test-certify-spice.c - the pieces of `migcert certify --spice` that do
 * not need a SPICE server (harness/runner/certify-spice.h, spice-dial.h):
 * addresses are parsed or refused with what they should look like, and the
 * QMP client on the event loop matches answers by id among events, reads an
 * answer split across writes, reports a server's error class and text, and
 * fails at once with -EPIPE once the server closed its connection.
 *
 * The QMP server is scripted on the same loop (a listening unix socket and
 * fd watches), so nothing here waits on time but the hang guards.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "runner/certify-spice.h"

#define GUARD_NS 10000000000ull

static void test_certify_spice_addr_parse(void **state)
{
    SpiceAddr a;
    assert_int_equal(spice_addr_parse("127.0.0.1:5901", &a, NULL), 0);
    assert_false(a.is_unix);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 5901);
    assert_int_equal(spice_addr_parse("unix:/tmp/s.sock", &a, NULL), 0);
    assert_true(a.is_unix);
    assert_string_equal(a.host, "/tmp/s.sock");
    static const char *const bad[] = {"nowhere", ":5901", "h:", "h:0", "h:65536", "h:59x", "unix:"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        MigErr *err = NULL;
        assert_int_equal(spice_addr_parse(bad[i], &a, &err), -EINVAL);
        assert_non_null(err);
        assert_non_null(strstr(err->msg, bad[i]));
        mig_err_free(err);
    }
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath));
    memcpy(longpath, "unix:", 5);
    longpath[sizeof(longpath) - 1] = 0;
    MigErr *err = NULL;
    assert_int_equal(spice_addr_parse(longpath, &a, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "a unix socket path of 1 to 107 bytes"));
    mig_err_free(err);
}

/* A scripted QMP server on the loop: a greeting, then one answer per line. */
typedef struct Server {
    MigLoop *loop;
    int lfd, fd;
    MigLoopSource *lw, *w;
    char in[4096];
    size_t len;
    char path[108];
    const char *pending; /* the second half of a split answer */
    MigLoopSource *later;
} Server;

static void put(Server *s, const char *txt)
{
    assert_int_equal(write(s->fd, txt, strlen(txt)), (ssize_t)strlen(txt));
}

static void second_half(void *opaque)
{
    Server *s = opaque;
    s->later = NULL;
    put(s, s->pending);
}

static void answer(Server *s, const char *line)
{
    char id[32] = "0";
    const char *p = strstr(line, "\"id\":");
    if (p)
        snprintf(id, sizeof(id), "%.*s", (int)strspn(p + 5, "0123456789"), p + 5);
    char out[512];
    if (strstr(line, "\"query-status\"")) {
        /* an event first, then an answer to another id, then ours */
        snprintf(out, sizeof(out),
                 "{\"event\": \"STOP\", \"timestamp\": {}}\r\n{\"return\": {\"stale\": 1}, \"id\": 999}\r\n"
                 "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": %s}\r\n", id);
        put(s, out);
    } else if (strstr(line, "\"boom\"")) {
        snprintf(out, sizeof(out), "{\"error\": {\"class\": \"GenericError\", \"desc\": \"it broke\"}, \"id\": %s}\r\n",
                 id);
        put(s, out);
    } else if (strstr(line, "\"split\"")) {
        static char tail[128];
        snprintf(out, sizeof(out), "{\"return\": {\"half\": ");
        snprintf(tail, sizeof(tail), "2}, \"id\": %s}\r\n", id);
        put(s, out);
        s->pending = tail;
        s->later = mig_loop_timer_add(s->loop, mig_loop_now_ns(s->loop) + 20000000ull, second_half, s);
    } else if (strstr(line, "\"die\"")) {
        mig_loop_remove(s->loop, s->w);
        s->w = NULL;
        close(s->fd);
        s->fd = -1;
    } else if (strstr(line, "\"mute\"")) {
        /* no answer: the caller's hang guard */
    } else {
        snprintf(out, sizeof(out), "{\"return\": {}, \"id\": %s}\r\n", id);
        put(s, out);
    }
}

static void on_in(int fd, uint32_t ev, void *opaque)
{
    Server *s = opaque;
    ssize_t n = read(fd, s->in + s->len, sizeof(s->in) - s->len - 1);
    if (n <= 0) {
        mig_loop_remove(s->loop, s->w);
        s->w = NULL;
        return;
    }
    s->len += (size_t)n;
    s->in[s->len] = 0;
    char *nl;
    while (s->fd >= 0 && (nl = strchr(s->in, '\n'))) {
        *nl = 0;
        answer(s, s->in);
        s->len -= (size_t)(nl + 1 - s->in);
        memmove(s->in, nl + 1, s->len + 1);
    }
}

static void on_accept(int fd, uint32_t ev, void *opaque)
{
    Server *s = opaque;
    s->fd = accept(fd, NULL, NULL);
    assert_true(s->fd >= 0);
    put(s, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n");
    s->w = mig_loop_fd_watch(s->loop, s->fd, MIG_LOOP_IN, on_in, s);
}

static void server_start(Server *s, MigLoop *loop)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->fd = -1;
    snprintf(s->path, sizeof(s->path), "/tmp/mc-qmp-%d.sock", (int)getpid());
    unlink(s->path);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->path);
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(s->lfd, 4), 0);
    s->lw = mig_loop_fd_watch(loop, s->lfd, MIG_LOOP_IN, on_accept, s);
}

static void server_stop(Server *s)
{
    mig_loop_remove(s->loop, s->later);
    mig_loop_remove(s->loop, s->w);
    mig_loop_remove(s->loop, s->lw);
    if (s->fd >= 0)
        close(s->fd);
    close(s->lfd);
    unlink(s->path);
}

static void test_certify_spice_qmp_answers_by_id_among_events(void **state)
{
    MigLoop *loop = mig_loop_epoll_new(1);
    Server s;
    server_start(&s, loop);
    char addr[120];
    snprintf(addr, sizeof(addr), "unix:%s", s.path);
    MigErr *err = NULL;
    CsQmp *q = cs_qmp_open(loop, addr, GUARD_NS, &err);
    assert_non_null(q);
    json_t *ret = NULL;
    assert_int_equal(cs_qmp_exec(q, "query-status", NULL, GUARD_NS, &ret, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(ret, "status")), "running");
    assert_null(json_object_get(ret, "stale"));
    json_decref(ret);
    /* an answer cut in two writes */
    assert_int_equal(cs_qmp_exec(q, "split", json_pack("{s:i}", "x", 1), GUARD_NS, &ret, NULL), 0);
    assert_int_equal(json_integer_value(json_object_get(ret, "half")), 2);
    json_decref(ret);
    /* the server's error, by class and text */
    assert_int_equal(cs_qmp_exec(q, "boom", NULL, GUARD_NS, NULL, &err), -EPROTO);
    assert_string_equal(err->msg, "boom: GenericError: it broke");
    mig_err_free(err);
    err = NULL;
    /* no answer: the hang guard, and the client still works afterwards */
    assert_int_equal(cs_qmp_exec(q, "mute", NULL, 50000000ull, NULL, &err), -ETIMEDOUT);
    mig_err_free(err);
    err = NULL;
    assert_int_equal(cs_qmp_exec(q, "cont", NULL, GUARD_NS, NULL, NULL), 0);
    assert_true(cs_qmp_alive(q));
    cs_qmp_close(q);
    server_stop(&s);
    assert_int_equal(loop->live_sources, 0);
    mig_loop_free(loop);
}

static void test_certify_spice_qmp_closed_is_epipe(void **state)
{
    MigLoop *loop = mig_loop_epoll_new(1);
    Server s;
    server_start(&s, loop);
    char addr[120];
    snprintf(addr, sizeof(addr), "unix:%s", s.path);
    CsQmp *q = cs_qmp_open(loop, addr, GUARD_NS, NULL);
    assert_non_null(q);
    MigErr *err = NULL;
    assert_int_equal(cs_qmp_exec(q, "die", NULL, GUARD_NS, NULL, &err), -EPIPE);
    assert_non_null(strstr(err->msg, "the server is gone"));
    mig_err_free(err);
    err = NULL;
    assert_false(cs_qmp_alive(q));
    /* every later command fails at once, without waiting */
    assert_int_equal(cs_qmp_exec(q, "query-status", json_object(), GUARD_NS, NULL, &err), -EPIPE);
    mig_err_free(err);
    cs_qmp_close(q);
    server_stop(&s);
    /* nobody listening: the open says where */
    err = NULL;
    assert_null(cs_qmp_open(loop, addr, GUARD_NS, &err));
    assert_non_null(strstr(err->msg, s.path));
    mig_err_free(err);
    mig_loop_free(loop);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_certify_spice_addr_parse),
        cmocka_unit_test(test_certify_spice_qmp_answers_by_id_among_events),
        cmocka_unit_test(test_certify_spice_qmp_closed_is_epipe),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
