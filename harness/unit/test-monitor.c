/*
 * test-monitor.c - the QMP server (impl/monitor) with a fake command table,
 * over socketpairs and a unix listener on the epoll loop.  The test plays the
 * management client on the raw end of each socketpair.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/loop.h"
#include "machine/machine.h"
#include "monitor/monitor.h"
#include "monitor/qmp-commands.h"
#include "transport/transport.h"
#include "test-scale.h"

typedef struct Peer {
    int fd;
    char *big; /* for replies larger than buf */
    size_t big_len;
    size_t big_cap; /* allocated: grows by doubling (a realloc per recv
                     * copied the whole buffer each time under valgrind,
                     * whose realloc always moves the block) */
} Peer;

typedef struct Fixture {
    MigLoop *loop;
    MigMonitor *mon;
    Peer peer[3];
    int handler_calls;
    MigQmpLater *later; /* the "wait" command's pending answer */
} Fixture;

/* ---- the fake command table ---- */

static int cmd_add(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    Fixture *f = opaque;
    f->handler_calls++;
    json_int_t a = json_integer_value(json_object_get(args, "a"));
    json_int_t b = json_integer_value(json_object_get(args, "b"));
    *ret = json_pack("{s:I}", "sum", a + b);
    return 0;
}

static int cmd_fail(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    Fixture *f = opaque;
    f->handler_calls++;
    return mig_err_set(errp, -EBUSY, "migration already running");
}

static int cmd_ping(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    Fixture *f = opaque;
    f->handler_calls++;
    mig_monitor_emit(f->mon, "PINGED", json_pack("{s:O}", "with", json_object_get(args, "with")));
    return 0; /* NULL *ret replies {} */
}

static int cmd_big(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    size_t n = (size_t)json_integer_value(json_object_get(args, "size"));
    char *s = malloc(n + 1);
    memset(s, 'x', n);
    s[n] = 0;
    *ret = json_pack("{s:s}", "blob", s);
    free(s);
    return 0;
}

static int cmd_setp(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    *ret = json_pack("{s:I}", "count", (json_int_t)json_object_size(args));
    return 0;
}

/* Answers later, when the test calls answer_wait(). */
static int cmd_wait(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    Fixture *f = opaque;
    f->handler_calls++;
    f->later = mig_monitor_reply_later(f->mon);
    return f->later ? MIG_QMP_LATER : mig_err_set(errp, -EINVAL, "no token");
}

static void answer_wait(void *opaque)
{
    Fixture *f = opaque;
    mig_qmp_later_done(f->later, 0, json_pack("{s:s}", "done", "yes"), NULL);
    f->later = NULL;
}

static const MigQmpArg add_args[] = {
    {"a", MIG_QMP_ARG_INT, false},
    {"b", MIG_QMP_ARG_INT, false},
    {"note", MIG_QMP_ARG_STR, true},
    {NULL},
};
static const MigQmpArg ping_args[] = {{"with", MIG_QMP_ARG_ANY, true}, {NULL}};
static const MigQmpArg big_args[] = {{"size", MIG_QMP_ARG_INT, false}, {NULL}};
static const MigQmpArg setp_args[] = {{"max-bandwidth", MIG_QMP_ARG_INT, true}, {NULL}};

static const MigQmpCommand fake_cmds[] = {
    {"add", cmd_add, add_args, false},
    {"fail", cmd_fail, NULL, false},
    {"ping", cmd_ping, ping_args, false},
    {"big", cmd_big, big_args, false},
    {"setp", cmd_setp, setp_args, true},
    {"wait", cmd_wait, NULL, false},
};

/* ---- the client side ---- */

static void peer_fill(Peer *p)
{
    for (;;) {
        char tmp[1 << 16];
        ssize_t n = recv(p->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (n <= 0)
            return;
        if (p->big_len + (size_t)n + 1 > p->big_cap) {
            p->big_cap = MIG_MAX(2 * p->big_cap, p->big_len + (size_t)n + 1);
            p->big = realloc(p->big, p->big_cap);
        }
        memcpy(p->big + p->big_len, tmp, (size_t)n);
        p->big_len += (size_t)n;
        p->big[p->big_len] = 0;
    }
}

static bool peer_has_line(void *opaque)
{
    Peer *p = opaque;
    peer_fill(p);
    return p->big && memchr(p->big, '\n', p->big_len);
}

static bool never(void *opaque) { return false; }

/* Run the loop for about `ms` milliseconds of loop time. */
static void pump(Fixture *f, unsigned ms)
{
    mig_loop_run_until(f->loop, never, NULL, mig_loop_now_ns(f->loop) + ms * 1000000ull);
}

/* Hang guard of the loop runs below that wait for an event: never reached
 * unless the monitor is broken, however slow the host. */
#define WAIT_NS 60000000000ull

/* The monitor has read every byte this peer sent (the socket's send queue,
 * SIOCOUTQ, is empty once the reader took it all). */
static bool peer_sent_all_read(void *opaque)
{
    Peer *p = opaque;
    int queued = -1;
    return ioctl(p->fd, SIOCOUTQ, &queued) == 0 && queued == 0;
}

/* Run the loop until the monitor has read what the peer sent. */
static void pump_until_read(Fixture *f, Peer *p)
{
    assert_int_equal(mig_loop_run_until(f->loop, peer_sent_all_read, p,
                                        mig_loop_now_ns(f->loop) + WAIT_NS), 0);
}

/* The next message the monitor sent this peer (runs the loop until it comes). */
static json_t *peer_recv(Fixture *f, Peer *p)
{
    int rc = mig_loop_run_until(f->loop, peer_has_line, p, mig_loop_now_ns(f->loop) + WAIT_NS);
    assert_int_equal(rc, 0);
    char *nl = memchr(p->big, '\n', p->big_len);
    size_t len = (size_t)(nl - p->big) + 1;
    assert_true(len >= 2 && nl[-1] == '\r'); /* QEMU frames with CRLF */
    json_error_t jerr;
    json_t *v = json_loadb(p->big, len, 0, &jerr);
    if (!v)
        fail_msg("monitor sent invalid JSON: %s", jerr.text);
    memmove(p->big, p->big + len, p->big_len - len);
    p->big_len -= len;
    return v;
}

static void peer_send(Peer *p, const char *text)
{
    size_t n = strlen(text);
    assert_int_equal(send(p->fd, text, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Nothing arrives while the loop runs for a while (a window for a bug to
 * show; a slow host makes it shorter, never a false failure). */
static void peer_expect_silence(Fixture *f, Peer *p)
{
    pump(f, 20);
    peer_fill(p);
    assert_int_equal(p->big_len, 0);
}

static void peer_connect(Fixture *f, Peer *p)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    MigTransport *t = mig_transport_fd_new(f->loop, sv[0], "unix");
    assert_non_null(t);
    assert_int_equal(mig_monitor_add_client(f->mon, t), 0);
    p->fd = sv[1];
}

static void peer_close(Peer *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    free(p->big);
    p->big = NULL;
    p->big_len = 0;
    p->big_cap = 0;
}

/* Greeting + negotiation, the usual start of a session. */
static void peer_negotiate(Fixture *f, Peer *p)
{
    json_decref(peer_recv(f, p));
    peer_send(p, "{\"execute\": \"qmp_capabilities\"}\n");
    json_t *r = peer_recv(f, p);
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
}

static const char *error_class(json_t *r)
{
    return json_string_value(json_object_get(json_object_get(r, "error"), "class"));
}

static const char *error_desc(json_t *r)
{
    return json_string_value(json_object_get(json_object_get(r, "error"), "desc"));
}

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    f->loop = mig_loop_epoll_new(0x5eed);
    assert_non_null(f->loop);
    MigMonitorVersion v = {2, 1, 0, "migcert 2.1-dev"};
    f->mon = mig_monitor_new(f->loop, &v);
    assert_int_equal(mig_monitor_add_commands(f->mon, fake_cmds, MIG_ARRAY_SIZE(fake_cmds), f), 0);
    for (int i = 0; i < 3; i++)
        f->peer[i].fd = -1;
    peer_connect(f, &f->peer[0]);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    mig_monitor_free(f->mon);
    for (int i = 0; i < 3; i++)
        peer_close(&f->peer[i]);
    mig_loop_free(f->loop);
    free(f);
    return 0;
}

/* ---- tests ---- */

static void test_monitor_greeting_announces_version(void **state)
{
    Fixture *f = *state;
    json_t *g = peer_recv(f, &f->peer[0]);
    json_t *qmp = json_object_get(g, "QMP");
    assert_non_null(qmp);
    json_t *q = json_object_get(json_object_get(qmp, "version"), "qemu");
    assert_int_equal(json_integer_value(json_object_get(q, "major")), 2);
    assert_int_equal(json_integer_value(json_object_get(q, "minor")), 1);
    assert_int_equal(json_integer_value(json_object_get(q, "micro")), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(qmp, "version"), "package")),
        "migcert 2.1-dev");
    assert_true(json_is_array(json_object_get(qmp, "capabilities")));
    assert_int_equal(json_array_size(json_object_get(qmp, "capabilities")), 0);
    json_decref(g);
}

static void test_monitor_negotiation_is_required_first(void **state)
{
    Fixture *f = *state;
    Peer *p = &f->peer[0];
    json_decref(peer_recv(f, p));
    peer_send(p, "{\"execute\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}, \"id\": 7}\n");
    json_t *r = peer_recv(f, p);
    assert_string_equal(error_class(r), "CommandNotFound");
    assert_string_equal(error_desc(r), "Expecting capabilities negotiation with 'qmp_capabilities'");
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 7);
    assert_int_equal(f->handler_calls, 0);
    json_decref(r);

    peer_send(p, "{\"execute\": \"qmp_capabilities\", \"id\": \"neg\"}\n");
    r = peer_recv(f, p);
    assert_true(json_is_object(json_object_get(r, "return")));
    assert_int_equal(json_object_size(json_object_get(r, "return")), 0);
    assert_string_equal(json_string_value(json_object_get(r, "id")), "neg");
    json_decref(r);

    peer_send(p, "{\"execute\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n");
    r = peer_recv(f, p);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "return"), "sum")), 3);
    assert_null(json_object_get(r, "id")); /* no id asked, none echoed */
    json_decref(r);

    /* a second negotiation is refused, the session goes on */
    peer_send(p, "{\"execute\": \"qmp_capabilities\"}\n");
    r = peer_recv(f, p);
    assert_string_equal(error_class(r), "CommandNotFound");
    json_decref(r);
}

static void test_monitor_dispatch_replies_and_errors(void **state)
{
    Fixture *f = *state;
    Peer *p = &f->peer[0];
    peer_negotiate(f, p);

    peer_send(p, "{\"execute\": \"add\", \"arguments\": {\"a\": 40, \"b\": 2}, "
                 "\"id\": {\"seq\": [1, 2]}}\n");
    json_t *r = peer_recv(f, p);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "return"), "sum")), 42);
    json_t *want_id = json_pack("{s:[i,i]}", "seq", 1, 2);
    assert_true(json_equal(json_object_get(r, "id"), want_id)); /* any JSON id is echoed */
    json_decref(want_id);
    json_decref(r);

    peer_send(p, "{\"execute\": \"no-such-thing\", \"id\": 3}\n");
    r = peer_recv(f, p);
    assert_string_equal(error_class(r), "CommandNotFound");
    assert_non_null(strstr(error_desc(r), "no-such-thing"));
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 3);
    json_decref(r);

    peer_send(p, "{\"execute\": \"fail\", \"id\": 4}\n");
    r = peer_recv(f, p);
    assert_string_equal(error_class(r), "GenericError");
    assert_string_equal(error_desc(r), "migration already running");
    json_decref(r);

    peer_send(p, "{\"execute\": \"ping\"}\n");
    json_t *ev = peer_recv(f, p); /* the event the handler emitted comes first */
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "PINGED");
    json_decref(ev);
    r = peer_recv(f, p);
    assert_true(json_is_object(json_object_get(r, "return")));
    json_decref(r);

    peer_send(p, "{\"id\": 5}\n");
    r = peer_recv(f, p);
    assert_string_equal(error_class(r), "GenericError");
    assert_non_null(strstr(error_desc(r), "execute"));
    json_decref(r);

    peer_send(p, "{\"execute\": \"add\", \"arguments\": {\"a\": 1, \"b\": 1}, \"bogus\": 1}\n");
    r = peer_recv(f, p);
    assert_non_null(strstr(error_desc(r), "bogus"));
    json_decref(r);
}

static void test_monitor_argument_errors_name_the_argument(void **state)
{
    Fixture *f = *state;
    Peer *p = &f->peer[0];
    peer_negotiate(f, p);
    static const struct {
        const char *req;
        const char *desc;
    } cases[] = {
        {"{\"execute\": \"add\", \"arguments\": {\"a\": 1}}", "'add': argument 'b' is missing"},
        {"{\"execute\": \"add\", \"arguments\": {\"a\": 1, \"b\": \"2\"}}",
         "'add': argument 'b' must be of type integer"},
        {"{\"execute\": \"add\", \"arguments\": {\"a\": 1.5, \"b\": 2}}",
         "'add': argument 'a' must be of type integer"},
        {"{\"execute\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2, \"note\": 3}}",
         "'add': argument 'note' must be of type string"},
        {"{\"execute\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2, \"c\": 3}}",
         "'add': argument 'c' is not accepted"},
        {"{\"execute\": \"fail\", \"arguments\": {\"x\": 1}}", "'fail': argument 'x' is not accepted"},
        {"{\"execute\": \"add\", \"arguments\": [1, 2]}", "'add': 'arguments' must be an object"},
        {"{\"execute\": 12}", "'execute' must be a string"},
        {"{\"execute\": \"setp\", \"arguments\": {\"max-bandwidth\": \"fast\"}}",
         "'setp': argument 'max-bandwidth' must be of type integer"},
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(cases); i++) {
        peer_send(p, cases[i].req);
        peer_send(p, "\n");
        json_t *r = peer_recv(f, p);
        assert_string_equal(error_class(r), "GenericError");
        assert_string_equal(error_desc(r), cases[i].desc);
        json_decref(r);
    }
    assert_int_equal(f->handler_calls, 0);
    /* open_args: names outside the spec reach the handler, typed ones are checked */
    peer_send(p, "{\"execute\": \"setp\", \"arguments\": {\"max-bandwidth\": 5, \"x-other\": 1}}");
    json_t *r = peer_recv(f, p);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "return"), "count")), 2);
    json_decref(r);
}

static void test_monitor_malformed_json_keeps_connection(void **state)
{
    Fixture *f = *state;
    Peer *p = &f->peer[0];
    peer_negotiate(f, p);
    static const char *bad[] = {
        "{\"execute\": }\n", "{\"execute\": \"add\",,}\n", "hello\n", "42\n",
        "[1, 2]\n",          "\"just a string\"\n",        "}\n",
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(bad); i++) {
        peer_send(p, bad[i]);
        json_t *r = peer_recv(f, p);
        assert_string_equal(error_class(r), "GenericError");
        assert_null(json_object_get(r, "id"));
        if (!strcmp(bad[i], "[1, 2]\n") || !strcmp(bad[i], "42\n"))
            assert_string_equal(error_desc(r), "QMP input must be a JSON object");
        json_decref(r);
    }
    peer_send(p, "{\"execute\": \"add\", \"arguments\": {\"a\": 2, \"b\": 2}, \"id\": 9}\n");
    json_t *r = peer_recv(f, p);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "return"), "sum")), 4);
    json_decref(r);
    assert_int_equal(mig_monitor_client_count(f->mon), 1);
}

/* A string cut by a raw control byte (`"oops` and a newline) is a lexical
 * error answered at once, as QEMU 7.2 does; the next request is served.
 * A long one is quoted only in part. */
static void test_monitor_string_cut_by_a_newline_is_a_parse_error(void **state)
{
    Fixture *f = *state;
    Peer *p = &f->peer[0];
    peer_negotiate(f, p);
    peer_send(p, "\"oops\n");
    json_t *r = peer_recv(f, p);
    assert_string_equal(error_class(r), "GenericError");
    assert_string_equal(error_desc(r), "JSON parse error, stray '\"oops\n'");
    json_decref(r);
    char big[200];
    memset(big, 'x', sizeof(big));
    big[0] = '{';
    big[1] = '"';
    big[sizeof(big) - 2] = '\t';
    big[sizeof(big) - 1] = 0;
    peer_send(p, big);
    r = peer_recv(f, p);
    assert_true(strlen(error_desc(r)) < 100);
    assert_non_null(strstr(error_desc(r), "xxx...'"));
    json_decref(r);
    peer_send(p, "{\"execute\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}, \"id\": 3}\n");
    r = peer_recv(f, p);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "return"), "sum")), 3);
    json_decref(r);
}

static void test_monitor_partial_and_joined_requests(void **state)
{
    Fixture *f = *state;
    Peer *p = &f->peer[0];
    peer_negotiate(f, p);
    /* every split point of one request: nothing is answered until the last
     * byte, then exactly one reply (braces and quotes inside strings count) */
    const char *req = "{\"execute\": \"add\", \"arguments\": {\"a\": 3, \"b\": 4, "
                      "\"note\": \"}{\\\"\"}, \"id\": \"q\"}";
    size_t n = strlen(req);
    for (size_t k = 1; k < n; k++) {
        char head[256];
        memcpy(head, req, k);
        head[k] = 0;
        peer_send(p, head);
        pump_until_read(f, p);
        pump(f, 1);
        peer_fill(p);
        assert_int_equal(p->big_len, 0);
        peer_send(p, req + k);
        json_t *r = peer_recv(f, p);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "return"), "sum")),
                         7);
        json_decref(r);
    }
    assert_int_equal(f->handler_calls, (int)n - 1);
    /* two requests in one write: two replies, in order; no newline needed */
    peer_send(p, "{\"execute\":\"add\",\"arguments\":{\"a\":1,\"b\":1},\"id\":1}"
                 "{\"execute\":\"add\",\"arguments\":{\"a\":2,\"b\":2},\"id\":2}");
    json_t *r1 = peer_recv(f, p);
    json_t *r2 = peer_recv(f, p);
    assert_int_equal(json_integer_value(json_object_get(r1, "id")), 1);
    assert_int_equal(json_integer_value(json_object_get(r2, "id")), 2);
    json_decref(r1);
    json_decref(r2);
    peer_expect_silence(f, p);
}

static void test_monitor_events_reach_negotiated_clients(void **state)
{
    Fixture *f = *state;
    Peer *a = &f->peer[0], *b = &f->peer[1];
    peer_connect(f, b);
    json_decref(peer_recv(f, b)); /* b: greeting only, not negotiated */
    peer_negotiate(f, a);

    uint64_t before = mig_loop_now_ns(f->loop);
    mig_monitor_emit(f->mon, "STOP", NULL);
    mig_monitor_emit(f->mon, "MIGRATION", json_pack("{s:s}", "status", "active"));
    uint64_t after = mig_loop_now_ns(f->loop);

    json_t *e1 = peer_recv(f, a);
    assert_string_equal(json_string_value(json_object_get(e1, "event")), "STOP");
    assert_null(json_object_get(e1, "data"));
    json_t *ts = json_object_get(e1, "timestamp");
    uint64_t t = (uint64_t)json_integer_value(json_object_get(ts, "seconds")) * 1000000000ull +
                 (uint64_t)json_integer_value(json_object_get(ts, "microseconds")) * 1000ull;
    /* the loop clock, truncated to microseconds */
    assert_true(t + 1000 > before && t <= after);
    assert_true(json_integer_value(json_object_get(ts, "microseconds")) < 1000000);
    json_t *e2 = peer_recv(f, a);
    assert_string_equal(json_string_value(json_object_get(e2, "event")), "MIGRATION");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(e2, "data"), "status")), "active");
    json_decref(e1);
    json_decref(e2);
    peer_expect_silence(f, b);
}

static uint64_t event_stamp_ns(json_t *ev)
{
    json_t *ts = json_object_get(ev, "timestamp");
    assert_true(json_integer_value(json_object_get(ts, "microseconds")) < 1000000);
    return (uint64_t)json_integer_value(json_object_get(ts, "seconds")) * 1000000000ull +
           (uint64_t)json_integer_value(json_object_get(ts, "microseconds")) * 1000ull;
}

/* An embedder's clock offset shifts event timestamps (epoch time for
 * `migcert vm`), in seconds and microseconds like QEMU's; the monitor itself
 * still reads only the loop clock. */
static void test_monitor_clock_offset_shifts_event_timestamps(void **state)
{
    Fixture *f = *state;
    Peer *a = &f->peer[0];
    peer_negotiate(f, a);

    /* a fixed epoch-scale offset (about 2026-11-22), nanoseconds included */
    const int64_t offset = 1795341600123456789ll;
    mig_monitor_set_clock_offset(f->mon, offset);
    uint64_t before = mig_loop_now_ns(f->loop);
    mig_monitor_emit(f->mon, "STOP", NULL);
    uint64_t after = mig_loop_now_ns(f->loop);
    json_t *e = peer_recv(f, a);
    uint64_t t = event_stamp_ns(e);
    assert_true(t + 1000 > before + (uint64_t)offset && t <= after + (uint64_t)offset);
    json_decref(e);

    /* an offset that would put time before the epoch stamps 0, not garbage */
    mig_monitor_set_clock_offset(f->mon, -(int64_t)mig_loop_now_ns(f->loop) - 1000000000000ll);
    mig_monitor_emit(f->mon, "RESUME", NULL);
    e = peer_recv(f, a);
    assert_int_equal(event_stamp_ns(e), 0);
    json_decref(e);

    /* back to the default: the loop clock */
    mig_monitor_set_clock_offset(f->mon, 0);
    before = mig_loop_now_ns(f->loop);
    mig_monitor_emit(f->mon, "STOP", NULL);
    after = mig_loop_now_ns(f->loop);
    e = peer_recv(f, a);
    t = event_stamp_ns(e);
    assert_true(t + 1000 > before && t <= after);
    json_decref(e);
}

static bool two_clients(void *mon)
{
    return mig_monitor_client_count(mon) == 2;
}

static bool output_pending(void *mon)
{
    return mig_monitor_pending_output(mon) > 0;
}

static void test_monitor_several_clients_are_independent(void **state)
{
    Fixture *f = *state;
    peer_connect(f, &f->peer[1]);
    peer_connect(f, &f->peer[2]);
    assert_int_equal(mig_monitor_client_count(f->mon), 3);
    for (int i = 0; i < 3; i++)
        peer_negotiate(f, &f->peer[i]);
    /* interleaved partial requests from two clients do not mix */
    peer_send(&f->peer[1], "{\"execute\":\"add\",\"arguments\":{\"a\":10,");
    peer_send(&f->peer[2], "{\"execute\":\"add\",\"arguments\":{\"a\":20,");
    pump_until_read(f, &f->peer[1]);
    pump_until_read(f, &f->peer[2]);
    peer_send(&f->peer[2], "\"b\":2},\"id\":\"two\"}\n");
    peer_send(&f->peer[1], "\"b\":1},\"id\":\"one\"}\n");
    json_t *r1 = peer_recv(f, &f->peer[1]);
    json_t *r2 = peer_recv(f, &f->peer[2]);
    assert_string_equal(json_string_value(json_object_get(r1, "id")), "one");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r1, "return"), "sum")), 11);
    assert_string_equal(json_string_value(json_object_get(r2, "id")), "two");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r2, "return"), "sum")), 22);
    json_decref(r1);
    json_decref(r2);
    peer_expect_silence(f, &f->peer[0]);

    /* one client hangs up; the others keep working and get events */
    peer_close(&f->peer[1]);
    assert_int_equal(mig_loop_run_until(f->loop, two_clients, f->mon,
                                        mig_loop_now_ns(f->loop) + WAIT_NS), 0);
    assert_int_equal(mig_monitor_client_count(f->mon), 2);
    mig_monitor_emit(f->mon, "RESUME", NULL);
    for (int i = 0; i < 3; i += 2) {
        json_t *e = peer_recv(f, &f->peer[i]);
        assert_string_equal(json_string_value(json_object_get(e, "event")), "RESUME");
        json_decref(e);
    }
}

/* A request split across reads while the input buffer must grow: the
 * bytes already consumed are reclaimed and the scanner's place moves with
 * them (it skipped part of the new bytes before). */
static void test_monitor_split_request_across_buffer_growth(void **state)
{
    Fixture *f = *state;
    Peer *p = &f->peer[0];
    peer_negotiate(f, p);
    char first[512], second_a[128], second_b[1024];
    /* a first request of ~400 bytes, then the start of a second one */
    snprintf(first, sizeof(first), "{\"execute\":\"add\",\"arguments\":{\"a\":1,\"b\":1,\"note\":\"%0360d\"}}\n", 0);
    snprintf(second_a, sizeof(second_a), "{\"execute\":\"add\",\"arguments\":{\"a\":40,");
    char both[640];
    snprintf(both, sizeof(both), "%s%s", first, second_a);
    peer_send(p, both);
    json_t *r = peer_recv(f, p);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "return"), "sum")), 2);
    json_decref(r);
    pump_until_read(f, p);
    /* the rest of the second request, long enough that the buffer grows */
    snprintf(second_b, sizeof(second_b), "\"b\":2,\"note\":\"%0700d\"},\"id\":\"second\"}\n", 0);
    peer_send(p, second_b);
    r = peer_recv(f, p);
    assert_string_equal(json_string_value(json_object_get(r, "id")), "second");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "return"), "sum")), 42);
    json_decref(r);
}

static bool one_client(void *mon)
{
    return mig_monitor_client_count(mon) == 1;
}

/* A command that answers later holds that client's next requests (QEMU
 * answers one monitor's commands in order); the other clients go on; the
 * late answer carries its id and the held request follows. */
static void test_monitor_late_answer_keeps_order(void **state)
{
    Fixture *f = *state;
    Peer *a = &f->peer[0], *b = &f->peer[1];
    peer_connect(f, b);
    peer_negotiate(f, a);
    peer_negotiate(f, b);
    peer_send(a, "{\"execute\":\"wait\",\"id\":1}\n{\"execute\":\"add\",\"arguments\":{\"a\":1,\"b\":2},\"id\":2}\n");
    pump_until_read(f, a);
    assert_non_null(f->later);
    assert_int_equal(f->handler_calls, 1); /* "add" waits behind "wait" */
    peer_expect_silence(f, a);
    peer_send(b, "{\"execute\":\"add\",\"arguments\":{\"a\":5,\"b\":5},\"id\":\"b\"}\n");
    json_t *rb = peer_recv(f, b);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(rb, "return"), "sum")), 10);
    json_decref(rb);
    mig_loop_defer(f->loop, answer_wait, f);
    json_t *r1 = peer_recv(f, a), *r2 = peer_recv(f, a);
    assert_int_equal(json_integer_value(json_object_get(r1, "id")), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r1, "return"), "done")), "yes");
    assert_int_equal(json_integer_value(json_object_get(r2, "id")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r2, "return"), "sum")), 3);
    json_decref(r1);
    json_decref(r2);
    /* a client that leaves before its answer: the answer is dropped, nothing leaks */
    peer_send(b, "{\"execute\":\"wait\"}\n");
    pump_until_read(f, b);
    assert_non_null(f->later);
    peer_close(b);
    assert_int_equal(mig_loop_run_until(f->loop, one_client, f->mon, mig_loop_now_ns(f->loop) + WAIT_NS), 0);
    answer_wait(f);
    /* outside a handler there is no token */
    assert_null(mig_monitor_reply_later(f->mon));
}

static void test_monitor_slow_reader_does_not_block(void **state)
{
    Fixture *f = *state;
    Peer *p = &f->peer[0];
    peer_negotiate(f, p);
    const size_t size = 2u << 20; /* far more than a socket buffer holds */
    peer_send(p, "{\"execute\": \"big\", \"arguments\": {\"size\": 2097152}}\n");
    /* the loop keeps turning although the peer does not read: the reply
     * waits in the monitor's queue */
    assert_int_equal(mig_loop_run_until(f->loop, output_pending, f->mon,
                                        mig_loop_now_ns(f->loop) + WAIT_NS), 0);
    assert_true(mig_monitor_pending_output(f->mon) > 0);
    json_t *r = peer_recv(f, p);
    assert_int_equal(strlen(json_string_value(json_object_get(json_object_get(r, "return"), "blob"))),
                     size);
    json_decref(r);
    assert_int_equal(mig_monitor_pending_output(f->mon), 0);
}

static void log_line(void *opaque, const char *line)
{
    snprintf(opaque, 256, "%s", line);
}

/* A client that never reads while events flood in: it is dropped once its
 * queue passes MIG_MONITOR_MAX_OUTPUT, with a log line; another client that
 * reads goes on receiving them. */
static void test_monitor_event_flood_drops_a_client_that_never_reads(void **state)
{
    Fixture *f = *state;
    Peer *deaf = &f->peer[0], *ok = &f->peer[1];
    peer_connect(f, ok);
    peer_negotiate(f, deaf);
    peer_negotiate(f, ok);
    char line[256] = "";
    mig_monitor_set_log(f->mon, log_line, line);
    /* Events of 200 bytes; 4000 under valgrind (test-scale.h): each event
     * takes the same path (queued for both clients, the reader drains its
     * own, the deaf one's queue checked against the limit), and it takes
     * ~5,000 of the small ones to pass the limit. */
    size_t padlen = TEST_SCALE(200, 4000);
    char pad[4000];
    memset(pad, 'e', padlen - 1);
    pad[padlen - 1] = 0;
    size_t sent = 0;
    while (mig_monitor_client_count(f->mon) == 2 && sent < 4 * MIG_MONITOR_MAX_OUTPUT) {
        mig_monitor_emit(f->mon, "FLOOD", json_pack("{s:s}", "pad", pad));
        sent += padlen;
        peer_fill(ok); /* the other client reads what it has */
    }
    assert_int_equal(mig_monitor_client_count(f->mon), 1);
    assert_true(sent > MIG_MONITOR_MAX_OUTPUT / 2); /* ~70 bytes of each event queued are not counted */
    assert_non_null(strstr(line, "client 0 dropped: "));
    assert_non_null(strstr(line, "bytes of replies and events unread (limit 1048576)"));
    mig_monitor_set_log(f->mon, NULL, NULL);
}

static void test_monitor_unix_listener_accepts_clients(void **state)
{
    Fixture *f = *state;
    char dir[] = "/tmp/test-monitor-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/qmp.sock", dir);
    MigErr *err = NULL;
    assert_int_equal(mig_monitor_listen_unix(f->mon, path, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    for (int i = 1; i < 3; i++) {
        Peer *p = &f->peer[i];
        p->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strcpy(sa.sun_path, path);
        assert_int_equal(connect(p->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        peer_negotiate(f, p);
    }
    assert_int_equal(mig_monitor_client_count(f->mon), 3);
    /* a second listener on the same monitor is refused with a reason */
    assert_int_equal(mig_monitor_listen_unix(f->mon, path, &err), -EBUSY);
    assert_non_null(strstr(err->msg, path));
    mig_err_free(err);
    err = NULL;
    mig_monitor_free(f->mon);
    f->mon = NULL;
    assert_int_not_equal(stat(path, &st), 0); /* the socket file is gone */
    rmdir(dir);
    /* clients see EOF once the monitor is gone */
    char c;
    assert_int_equal(recv(f->peer[1].fd, &c, 1, 0), 0);
}

static void test_monitor_listen_refuses_non_socket_path(void **state)
{
    Fixture *f = *state;
    char path[] = "/tmp/test-monitor-file-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    MigErr *err = NULL;
    assert_true(mig_monitor_listen_unix(f->mon, path, &err) < 0);
    assert_non_null(strstr(err->msg, path));
    mig_err_free(err);
    struct stat st;
    assert_int_equal(stat(path, &st), 0); /* never deleted a user's file */
    unlink(path);
}

static void test_monitor_duplicate_command_is_refused(void **state)
{
    Fixture *f = *state;
    static const MigQmpCommand dup[] = {{"add", cmd_add, add_args, false}};
    static const MigQmpCommand neg[] = {{"qmp_capabilities", cmd_add, NULL, false}};
    assert_int_equal(mig_monitor_add_commands(f->mon, dup, 1, f), -EEXIST);
    assert_int_equal(mig_monitor_add_commands(f->mon, neg, 1, f), -EEXIST);
}

static void test_monitor_oversized_request_is_refused_and_session_goes_on(void **state)
{
    Fixture *f = *state;
    Peer *p = &f->peer[0];
    peer_negotiate(f, p);
    size_t n = (1u << 20) + 4096; /* over the 1 MiB request bound */
    char *req = malloc(n + 128);
    int k = sprintf(req, "{\"execute\": \"add\", \"arguments\": {\"note\": \"");
    memset(req + k, '{', n); /* brackets inside a string must not confuse framing */
    strcpy(req + k + n, "\", \"a\": 1, \"b\": 1}}\n");
    size_t len = strlen(req), off = 0;
    while (off < len) { /* the socket buffer is smaller than the request */
        ssize_t w = send(p->fd, req + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0)
            off += (size_t)w;
        pump(f, 1);
    }
    free(req);
    json_t *r = peer_recv(f, p);
    assert_string_equal(error_desc(r), "request too large");
    json_decref(r);
    peer_send(p, "{\"execute\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}");
    r = peer_recv(f, p);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "return"), "sum")), 5);
    json_decref(r);
    assert_int_equal(f->handler_calls, 1); /* the oversized one never ran */
}

/* The machine binding (qmp-commands.c) answers with QEMU's shapes. */
static json_t *call(Fixture *f, Peer *p, const char *req)
{
    peer_send(p, req);
    for (;;) {
        json_t *r = peer_recv(f, p);
        if (!json_object_get(r, "event"))
            return r;
        json_decref(r); /* events are checked separately */
    }
}

static void test_monitor_machine_commands_answer_like_qemu(void **state)
{
    Fixture *f = *state;
    MigMachineOptions mo = {.name = "vm",
                            .ram_size = 1 << 20,
                            .event = mig_qmp_machine_event,
                            .event_opaque = f->mon};
    MigMachine *m = mig_machine_new(f->loop, &mo, NULL);
    assert_non_null(m);
    MigQmpMachine b = {.machine = m};
    assert_int_equal(mig_qmp_add_machine_commands(f->mon, &b), 0);
    Peer *p = &f->peer[0];
    peer_negotiate(f, p);

    json_t *r = call(f, p, "{\"execute\": \"query-status\"}");
    json_t *ret = json_object_get(r, "return");
    assert_true(json_is_true(json_object_get(ret, "running")));
    assert_string_equal(json_string_value(json_object_get(ret, "status")), "running");
    json_decref(r);

    r = call(f, p, "{\"execute\": \"stop\"}");
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
    r = call(f, p, "{\"execute\": \"query-status\"}");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "return"), "status")), "paused");
    json_decref(r);

    r = call(f, p, "{\"execute\": \"query-migrate\"}");
    assert_int_equal(json_object_size(json_object_get(r, "return")), 0); /* {} before any */
    json_decref(r);

    r = call(f, p, "{\"execute\": \"x-query-ram-digest\"}");
    const char *hex = json_string_value(json_object_get(json_object_get(r, "return"), "sha256"));
    assert_non_null(hex);
    assert_int_equal(strlen(hex), 64);
    json_decref(r);

    r = call(f, p, "{\"execute\": \"query-migrate-parameters\"}");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(r, "return"), "max-bandwidth")),
        134217728);
    json_decref(r);
    r = call(f, p, "{\"execute\": \"migrate-set-parameters\", "
                   "\"arguments\": {\"max-bandwidth\": true}}");
    assert_string_equal(error_desc(r),
                        "'migrate-set-parameters': argument 'max-bandwidth' must be of type number");
    json_decref(r);

    r = call(f, p, "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
                   "{\"capabilities\": [{\"capability\": \"events\", \"state\": true}]}}");
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
    r = call(f, p, "{\"execute\": \"query-migrate-capabilities\"}");
    bool events_on = false;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(r, "return"), i, c) {
        if (!strcmp(json_string_value(json_object_get(c, "capability")), "events"))
            events_on = json_is_true(json_object_get(c, "state"));
    }
    assert_true(events_on);
    json_decref(r);

    r = call(f, p, "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"tcp:h:1\"}}");
    assert_string_equal(error_class(r), "GenericError");
    assert_non_null(strstr(error_desc(r), "tcp:h:1"));
    json_decref(r);
    r = call(f, p, "{\"execute\": \"migrate\", \"arguments\": "
                   "{\"uri\": \"file:/x\", \"blk\": true}}");
    assert_non_null(strstr(error_desc(r), "'blk'"));
    json_decref(r);
    r = call(f, p, "{\"execute\": \"migrate_cancel\"}"); /* nothing to cancel: {} */
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);

    /* cont emits RESUME without "data", as QEMU */
    p->big_len = 0;
    peer_send(p, "{\"execute\": \"cont\"}");
    json_t *ev = peer_recv(f, p);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "RESUME");
    assert_null(json_object_get(ev, "data"));
    json_decref(ev);
    json_decref(peer_recv(f, p));

    /* quit with no hook stops the loop; the reply still goes out */
    peer_send(p, "{\"execute\": \"quit\", \"id\": 1}");
    assert_int_equal(mig_loop_run_until(f->loop, NULL, NULL,
                                        mig_loop_now_ns(f->loop) + WAIT_NS),
                     -ECANCELED);
    r = peer_recv(f, p);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
    json_decref(r);

    mig_monitor_free(f->mon); /* the handlers point at the machine */
    f->mon = NULL;
    mig_machine_free(m);
}

static void test_monitor_old_release_lacks_capability_commands(void **state)
{
    Fixture *f = *state;
    MigMachineOptions mo = {.ram_size = 1 << 20};
    MigMachine *m = mig_machine_new(f->loop, &mo, NULL);
    MigQmpMachine b = {.machine = m, .no_caps_commands = true};
    assert_int_equal(mig_qmp_add_machine_commands(f->mon, &b), 0);
    Peer *p = &f->peer[0];
    peer_negotiate(f, p);
    json_t *r = call(f, p, "{\"execute\": \"query-migrate-capabilities\"}");
    assert_string_equal(error_class(r), "CommandNotFound");
    json_decref(r);
    mig_monitor_free(f->mon);
    f->mon = NULL;
    mig_machine_free(m);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_monitor_greeting_announces_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_negotiation_is_required_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_monitor_dispatch_replies_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_argument_errors_name_the_argument, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_monitor_malformed_json_keeps_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_monitor_string_cut_by_a_newline_is_a_parse_error,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_partial_and_joined_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_events_reach_negotiated_clients, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_monitor_clock_offset_shifts_event_timestamps, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_monitor_several_clients_are_independent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_monitor_slow_reader_does_not_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_late_answer_keeps_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_event_flood_drops_a_client_that_never_reads,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_split_request_across_buffer_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_unix_listener_accepts_clients, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_monitor_listen_refuses_non_socket_path, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_monitor_duplicate_command_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_monitor_oversized_request_is_refused_and_session_goes_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor_machine_commands_answer_like_qemu, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_monitor_old_release_lacks_capability_commands, setup,
                                        teardown),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
