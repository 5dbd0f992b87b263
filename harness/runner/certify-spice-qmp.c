/*
 * certify-spice-qmp.c - a QMP client on the event loop for `migcert certify
 * --spice` (certify-spice.h): the server under test may answer a command
 * only once the fake client, on the same loop, has done its part
 * (client_migrate_info waits for MIGRATE_CONNECTED in `migcert vm`), so a
 * command never blocks the loop: it is written, and the loop runs until its
 * answer.  Events are read and dropped; answers are matched by "id".
 *
 * Harness code: the connect and the writes block (commands are small); the
 * reads come from the loop.  Invariant: once the connection closed, every
 * command fails at once with -EPIPE.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "certify-spice.h"

struct CsQmp {
    MigLoop *loop;
    int fd;
    MigLoopSource *watch;
    char *in;
    size_t len, cap;
    bool greeted, closed;
    uint64_t next_id, want_id;
    json_t *answer; /* the answer to want_id, once it came */
    char version[128]; /* from the greeting: "7.2.0 (Debian 1:7.2+dfsg-7)" */
};

static void handle_line(CsQmp *q, const char *line, size_t n)
{
    json_t *j = json_loadb(line, n, 0, NULL);
    if (!j)
        return;
    if (json_object_get(j, "QMP")) {
        q->greeted = true;
        json_t *v = json_object_get(json_object_get(json_object_get(j, "QMP"), "version"), "qemu");
        const char *pkg = json_string_value(json_object_get(json_object_get(json_object_get(j, "QMP"), "version"),
                                                            "package"));
        if (v)
            snprintf(q->version, sizeof(q->version), "%lld.%lld.%lld%s%s%s",
                     (long long)json_integer_value(json_object_get(v, "major")),
                     (long long)json_integer_value(json_object_get(v, "minor")),
                     (long long)json_integer_value(json_object_get(v, "micro")), pkg && pkg[0] ? " (" : "",
                     pkg && pkg[0] ? pkg : "", pkg && pkg[0] ? ")" : "");
    } else if (json_object_get(j, "return") || json_object_get(j, "error")) {
        json_t *id = json_object_get(j, "id");
        if (json_is_integer(id) && (uint64_t)json_integer_value(id) == q->want_id && !q->answer) {
            q->answer = j;
            return;
        }
    }
    json_decref(j);
}

static void on_readable(int fd, uint32_t events, void *opaque)
{
    CsQmp *q = opaque;
    for (;;) {
        if (q->cap - q->len < 4096) {
            q->cap = q->cap ? 2 * q->cap : 8192;
            q->in = mig_realloc(q->in, q->cap);
        }
        ssize_t n = recv(fd, q->in + q->len, q->cap - q->len, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            q->closed = true;
            mig_loop_remove(q->loop, q->watch);
            q->watch = NULL;
            return;
        }
        q->len += (size_t)n;
    }
    /* one JSON document per line */
    size_t start = 0;
    for (size_t i = 0; i < q->len; i++)
        if (q->in[i] == '\n') {
            handle_line(q, q->in + start, i - start);
            start = i + 1;
        }
    memmove(q->in, q->in + start, q->len - start);
    q->len -= start;
}

static bool greeted(void *opaque)
{
    CsQmp *q = opaque;
    return q->greeted || q->closed;
}

static bool answered(void *opaque)
{
    CsQmp *q = opaque;
    return q->answer || q->closed;
}

static int send_cmd(CsQmp *q, const char *cmd, json_t *args, uint64_t id)
{
    json_t *j = json_pack("{s:s, s:I}", "execute", cmd, "id", (json_int_t)id);
    if (args)
        json_object_set_new(j, "arguments", args);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    size_t len = strlen(s), off = 0;
    s = mig_realloc(s, len + 2);
    s[len++] = '\n';
    while (off < len) {
        ssize_t n = send(q->fd, s + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(s);
            return -EPIPE;
        }
        off += (size_t)n;
    }
    free(s);
    return 0;
}

CsQmp *cs_qmp_open(MigLoop *loop, const char *addr, uint64_t timeout_ns, MigErr **errp)
{
    SpiceAddr a;
    if (spice_addr_parse(addr, &a, errp) < 0)
        return NULL;
    int fd = spice_dial(a.host, a.port, a.is_unix, errp);
    if (fd < 0)
        return NULL;
    CsQmp *q = mig_malloc0(sizeof(*q));
    q->loop = loop;
    q->fd = fd;
    q->next_id = 1;
    q->watch = mig_loop_fd_watch(loop, fd, MIG_LOOP_IN, on_readable, q);
    mig_loop_run_until(loop, greeted, q, mig_loop_now_ns(loop) + timeout_ns);
    if (!q->greeted) {
        mig_err_set(errp, -EPROTO, "%s: %s", addr, q->closed ? "closed before its QMP greeting" : "no QMP greeting");
        cs_qmp_close(q);
        return NULL;
    }
    if (cs_qmp_exec(q, "qmp_capabilities", NULL, timeout_ns, NULL, errp) < 0) {
        cs_qmp_close(q);
        return NULL;
    }
    return q;
}

const char *cs_qmp_version(const CsQmp *q)
{
    return q->version;
}

int cs_qmp_exec(CsQmp *q, const char *cmd, json_t *args, uint64_t timeout_ns, json_t **ret, MigErr **errp)
{
    if (ret)
        *ret = NULL;
    if (q->closed || !q->watch) {
        json_decref(args);
        return mig_err_set(errp, -EPIPE, "%s: the QMP connection is closed (the server is gone)", cmd);
    }
    json_decref(q->answer);
    q->answer = NULL;
    q->want_id = q->next_id++;
    if (send_cmd(q, cmd, args, q->want_id) < 0) {
        q->closed = true;
        return mig_err_set(errp, -EPIPE, "%s: the QMP connection is closed (the server is gone)", cmd);
    }
    mig_loop_run_until(q->loop, answered, q, mig_loop_now_ns(q->loop) + timeout_ns);
    if (!q->answer)
        return mig_err_set(errp, q->closed ? -EPIPE : -ETIMEDOUT, "%s: %s", cmd,
                           q->closed ? "the QMP connection closed before the answer (the server is gone)"
                                     : "no answer in time");
    json_t *e = json_object_get(q->answer, "error");
    int rc = 0;
    if (e) {
        rc = mig_err_set(errp, -EPROTO, "%s: %s: %s", cmd, json_string_value(json_object_get(e, "class")),
                         json_string_value(json_object_get(e, "desc")));
    } else if (ret) {
        *ret = json_incref(json_object_get(q->answer, "return"));
    }
    json_decref(q->answer);
    q->answer = NULL;
    return rc;
}

bool cs_qmp_alive(CsQmp *q)
{
    return q && !q->closed;
}

void cs_qmp_close(CsQmp *q)
{
    if (!q)
        return;
    if (q->watch)
        mig_loop_remove(q->loop, q->watch);
    close(q->fd);
    json_decref(q->answer);
    free(q->in);
    free(q);
}
