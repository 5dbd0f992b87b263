/*
 * monitor.c - the QMP server: listener, clients, framing, dispatch, events
 * (see monitor.h for the rules it keeps).
 *
 * Framing: QMP is a stream of JSON texts, not of lines.  A small scanner
 * follows brackets and strings across reads and cuts the input where a
 * top-level object or array closes; bytes outside any bracket are cut at a
 * newline, so a stray `42` or `hello` gets its own error reply instead of
 * poisoning the next request.  A raw control byte inside a string (a
 * string left open to the end of the line: `"oops` and a newline) is a
 * lexical error, as in QEMU 7.2: the text so far is answered with "JSON
 * parse error, stray '...'" and scanning starts afresh after it, so the
 * connection goes on.  Each cut text is parsed with jansson.
 *
 * Limits (monitor.h): MONITOR_MAX_REQUEST bytes per request (refused and
 * skipped), MIG_MONITOR_MAX_OUTPUT bytes of replies and events queued per
 * client (past it the client is dropped with a log line: a client that never
 * reads cannot pin memory), MIG_MONITOR_MAX_FDS named fds (getfd).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "monitor.h"

/* A request larger than this is refused and dropped (the connection stays). */
#define MONITOR_MAX_REQUEST (1u << 20)
/* How much of a lexically broken text an error reply quotes. */
#define MONITOR_STRAY_QUOTE 64
#define MONITOR_READ_CHUNK 4096

const char *const mig_qmp_arg_type_names[MIG_QMP_ARG__COUNT] = {
    [MIG_QMP_ARG_STR] = "string",   [MIG_QMP_ARG_INT] = "integer",
    [MIG_QMP_ARG_NUMBER] = "number", [MIG_QMP_ARG_BOOL] = "boolean",
    [MIG_QMP_ARG_ARRAY] = "array",  [MIG_QMP_ARG_OBJECT] = "object",
    [MIG_QMP_ARG_ANY] = "any",
};

typedef struct Buf {
    char *data;
    size_t len, cap, off; /* valid bytes are data[off, len) */
} Buf;

typedef struct Client {
    MigMonitor *mon;
    MigTransport *t;
    struct Client *next;
    unsigned id; /* connection order, for logs */
    bool negotiated;
    bool dead;
    uint32_t watching; /* events currently asked of the transport */
    Buf in, out;
    /* scanner state over in.data[in.off, in.len) */
    size_t scan;   /* next byte to look at */
    int depth;     /* bracket depth */
    bool in_str, esc;
    bool skipping; /* dropping an oversized request up to its end */
    MigQmpLater *waiting;  /* a command that answers later: requests wait */
    MigLoopSource *rescan; /* go on with the requests after that answer */
} Client;

struct MigQmpLater {
    MigMonitor *mon;
    Client *c; /* NULL: the client went away */
    json_t *id;
};

/* An fd handed over with getfd (SCM_RIGHTS), until a command takes it or
 * closefd closes it. */
typedef struct NamedFd {
    char *name;
    int fd;
} NamedFd;

typedef struct CommandSet {
    const MigQmpCommand *cmds;
    size_t n;
    void *opaque;
} CommandSet;

struct MigMonitor {
    MigLoop *loop;
    int greet_major, greet_minor, greet_micro;
    char *package;
    CommandSet *sets;
    size_t n_sets, sets_cap;
    Client *clients; /* in connection order */
    unsigned next_client_id;
    MigLoopSource *reap;
    MigListener *listener;
    char *listen_path;
    /* Added to the loop clock to stamp events (see mig_monitor_set_clock_offset). */
    int64_t clock_offset_ns;
    /* the request being handled (mig_monitor_reply_later) */
    Client *dispatching;
    json_t *dispatch_id;
    MigQmpLater *later;
    /* getfd: in the order they were named (at most MIG_MONITOR_MAX_FDS) */
    NamedFd fds[MIG_MONITOR_MAX_FDS];
    size_t n_fds;
    void (*log)(void *opaque, const char *line);
    void *log_opaque;
};

/* ---- buffers ---- */

/* Append n bytes.  `scan`, when given, is an index into the buffer (the
 * input scanner's position) that moves with the bytes when consumed space
 * is reclaimed. */
static void buf_append(Buf *b, const char *p, size_t n, size_t *scan)
{
    if (b->off && b->off == b->len) {
        b->off = b->len = 0;
        if (scan)
            *scan = 0;
    }
    if (b->len + n > b->cap) {
        if (b->off) { /* reclaim consumed space first */
            memmove(b->data, b->data + b->off, b->len - b->off);
            b->len -= b->off;
            if (scan)
                *scan -= b->off;
            b->off = 0;
        }
        MIG_GROW(b->data, b->cap, b->len + n, 1024);
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static size_t buf_used(const Buf *b) { return b->len - b->off; }

static void buf_free(Buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* ---- clients: output ---- */

static void client_io(MigTransport *t, uint32_t events, void *opaque);

static void mon_log(MigMonitor *m, const char *fmt, ...) MIG_PRINTF(2, 3);
static void mon_log(MigMonitor *m, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    mig_trace_log(m->loop->trace, mig_loop_now_ns(m->loop), "qmp", "%s", line);
    if (m->log)
        m->log(m->log_opaque, line);
}

static void schedule_reap(MigMonitor *m);

static void client_kill(Client *c)
{
    if (c->dead)
        return;
    c->dead = true;
    if (c->waiting) {
        c->waiting->c = NULL; /* the answer has nowhere to go */
        c->waiting = NULL;
    }
    if (c->rescan) {
        mig_loop_remove(c->mon->loop, c->rescan);
        c->rescan = NULL;
    }
    if (c->watching)
        c->t->ops->watch(c->t, 0, NULL, NULL);
    c->watching = 0;
    schedule_reap(c->mon);
}

static void client_set_watch(Client *c)
{
    if (c->dead)
        return;
    uint32_t want = MIG_LOOP_IN | (buf_used(&c->out) ? MIG_LOOP_OUT : 0);
    if (want == c->watching)
        return;
    if (c->t->ops->watch(c->t, want, client_io, c) < 0) {
        client_kill(c);
        return;
    }
    c->watching = want;
}

/* Write what the socket takes now; the rest waits for MIG_LOOP_OUT. */
static void client_flush(Client *c)
{
    while (!c->dead && buf_used(&c->out)) {
        ssize_t n = mig_transport_write(c->t, c->out.data + c->out.off, buf_used(&c->out));
        if (n == -EAGAIN || n == -EINTR || n == 0)
            break;
        if (n < 0) {
            client_kill(c);
            return;
        }
        c->out.off += (size_t)n;
    }
    if (!buf_used(&c->out))
        c->out.off = c->out.len = 0;
    client_set_watch(c);
}

/* Queue one JSON message (steals `msg`) followed by CRLF, as QEMU frames it. */
static void client_send(Client *c, json_t *msg)
{
    if (!c->dead) {
        char *text = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
        /* one message into an empty queue always goes, whatever its size */
        bool had = buf_used(&c->out) > 0;
        if (text) {
            buf_append(&c->out, text, strlen(text), NULL);
            buf_append(&c->out, "\r\n", 2, NULL);
            free(text);
        }
        if (had && buf_used(&c->out) > MIG_MONITOR_MAX_OUTPUT) {
            mon_log(c->mon,
                    "client %u dropped: %zu bytes of replies and events unread (limit %u)",
                    c->id, buf_used(&c->out), MIG_MONITOR_MAX_OUTPUT);
            client_kill(c);
        } else
            client_flush(c);
    }
    json_decref(msg);
}

static void client_send_error(Client *c, json_t *id, const char *cls, const char *desc)
{
    json_t *reply = json_pack("{s:{s:s,s:s}}", "error", "class", cls, "desc", desc);
    if (id)
        json_object_set(reply, "id", id);
    client_send(c, reply);
}

/* ---- dispatch ---- */

static const MigQmpCommand *find_command(MigMonitor *m, const char *name, void **opaque)
{
    for (size_t s = 0; s < m->n_sets; s++)
        for (size_t i = 0; i < m->sets[s].n; i++)
            if (!strcmp(m->sets[s].cmds[i].name, name)) {
                *opaque = m->sets[s].opaque;
                return &m->sets[s].cmds[i];
            }
    return NULL;
}

static bool type_matches(json_t *v, MigQmpArgType type)
{
    switch (type) {
    case MIG_QMP_ARG_STR: return json_is_string(v);
    case MIG_QMP_ARG_INT: return json_is_integer(v);
    case MIG_QMP_ARG_NUMBER: return json_is_number(v);
    case MIG_QMP_ARG_BOOL: return json_is_boolean(v);
    case MIG_QMP_ARG_ARRAY: return json_is_array(v);
    case MIG_QMP_ARG_OBJECT: return json_is_object(v);
    case MIG_QMP_ARG_ANY: return true;
    case MIG_QMP_ARG__COUNT: break;
    }
    return false;
}

int mig_qmp_check_args(const char *command, json_t *args, const MigQmpArg *spec,
                       bool open_args, MigErr **errp)
{
    if (args && !json_is_object(args))
        return mig_err_set(errp, -EINVAL, "'%s': 'arguments' must be an object", command);
    for (const MigQmpArg *a = spec; a && a->name; a++) {
        json_t *v = args ? json_object_get(args, a->name) : NULL;
        if (!v) {
            if (a->optional)
                continue;
            return mig_err_set(errp, -EINVAL, "'%s': argument '%s' is missing", command,
                               a->name);
        }
        if (!type_matches(v, a->type))
            return mig_err_set(errp, -EINVAL, "'%s': argument '%s' must be of type %s", command,
                               a->name, mig_qmp_arg_type_names[a->type]);
    }
    if (open_args || !args)
        return 0;
    const char *key;
    json_t *v;
    /* jansson keeps insertion order here, so the first unknown one the
     * client wrote is the one reported */
    json_object_foreach(args, key, v) {
        const MigQmpArg *a = spec;
        while (a && a->name && strcmp(a->name, key))
            a++;
        if (!a || !a->name)
            return mig_err_set(errp, -EINVAL, "'%s': argument '%s' is not accepted", command,
                               key);
    }
    return 0;
}

/* ---- named fds (getfd, closefd) ---- */

static NamedFd *find_fd(MigMonitor *m, const char *name)
{
    for (size_t i = 0; i < m->n_fds; i++)
        if (!strcmp(m->fds[i].name, name))
            return &m->fds[i];
    return NULL;
}

static void drop_fd(MigMonitor *m, NamedFd *f)
{
    free(f->name);
    size_t i = (size_t)(f - m->fds);
    memmove(&m->fds[i], &m->fds[i + 1], (m->n_fds - i - 1) * sizeof(*f));
    m->n_fds--;
}

/* getfd {fdname}: the fd that came with the request (SCM_RIGHTS) gets a
 * name; an fd of the same name is closed and replaced, as in QEMU. */
static int q_getfd(Client *c, json_t *args, MigErr **errp)
{
    MigMonitor *m = c->mon;
    const char *name = json_string_value(json_object_get(args, "fdname"));
    int fd = mig_transport_take_passed_fd(c->t);
    if (fd < 0)
        return mig_err_set(errp, -EINVAL, "No file descriptor supplied via SCM_RIGHTS");
    int rc = 0;
    NamedFd *f = find_fd(m, name);
    if (!name[0] || (name[0] >= '0' && name[0] <= '9'))
        rc = mig_err_set(errp, -EINVAL,
                         "Parameter 'fdname' expects a name not starting with a digit");
    else if (strlen(name) > 127)
        rc = mig_err_set(errp, -EINVAL, "Parameter 'fdname' is longer than 127 bytes");
    else if (!f && m->n_fds == MIG_MONITOR_MAX_FDS)
        rc = mig_err_set(errp, -EMFILE,
                         "getfd '%s': the monitor already holds %u named fds (the limit); "
                         "closefd one first",
                         name, MIG_MONITOR_MAX_FDS);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    if (f) {
        close(f->fd);
        f->fd = fd;
    } else {
        m->fds[m->n_fds++] = (NamedFd){mig_strdup(name), fd};
    }
    return 0;
}

static int q_closefd(Client *c, json_t *args, MigErr **errp)
{
    const char *name = json_string_value(json_object_get(args, "fdname"));
    NamedFd *f = find_fd(c->mon, name);
    if (!f)
        return mig_err_set(errp, -ENOENT, "File descriptor named '%s' not found", name);
    close(f->fd);
    drop_fd(c->mon, f);
    return 0;
}

int mig_monitor_take_fd(MigMonitor *m, const char *name, MigErr **errp)
{
    NamedFd *f = find_fd(m, name);
    if (!f)
        return mig_err_set(errp, -ENOENT, "File descriptor named '%s' has not been found",
                           name);
    int fd = f->fd;
    drop_fd(m, f);
    return fd;
}

size_t mig_monitor_fd_count(const MigMonitor *m)
{
    return m->n_fds;
}

/* The commands the monitor answers itself, because they need the client's
 * connection: getfd and closefd.  Returns false for any other name. */
static bool builtin_command(Client *c, const char *name, json_t *args, json_t *id)
{
    static const MigQmpArg spec[] = {{"fdname", MIG_QMP_ARG_STR, false}, {NULL}};
    int (*fn)(Client *, json_t *, MigErr **) =
        !strcmp(name, "getfd") ? q_getfd : !strcmp(name, "closefd") ? q_closefd : NULL;
    if (!fn)
        return false;
    MigErr *err = NULL;
    if (mig_qmp_check_args(name, args, spec, false, &err) == 0 && fn(c, args, &err) == 0) {
        json_t *reply = json_pack("{s:{}}", "return");
        if (id)
            json_object_set(reply, "id", id);
        client_send(c, reply);
    } else {
        client_send_error(c, id, "GenericError", err->msg);
    }
    mig_err_free(err);
    return true;
}

static void dispatch(Client *c, json_t *req)
{
    MigMonitor *m = c->mon;
    json_t *id = json_object_get(req, "id");
    json_t *exec = json_object_get(req, "execute");
    if (!exec && json_object_get(req, "exec-oob")) {
        client_send_error(c, id, "GenericError", "out-of-band execution is not supported");
        return;
    }
    if (!exec) {
        client_send_error(c, id, "GenericError", "request has no 'execute' member");
        return;
    }
    if (!json_is_string(exec)) {
        client_send_error(c, id, "GenericError", "'execute' must be a string");
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(req, key, v) {
        if (strcmp(key, "execute") && strcmp(key, "arguments") && strcmp(key, "id")) {
            char *d = mig_strdup_printf("request member '%s' is not expected", key);
            client_send_error(c, id, "GenericError", d);
            free(d);
            return;
        }
    }
    const char *name = json_string_value(exec);
    if (!c->negotiated && strcmp(name, "qmp_capabilities")) {
        client_send_error(c, id, "CommandNotFound",
                          "Expecting capabilities negotiation with 'qmp_capabilities'");
        return;
    }
    json_t *args = json_object_get(req, "arguments");
    if (args && !json_is_object(args)) {
        char *d = mig_strdup_printf("'%s': 'arguments' must be an object", name);
        client_send_error(c, id, "GenericError", d);
        free(d);
        return;
    }
    if (!strcmp(name, "qmp_capabilities")) {
        static const MigQmpArg spec[] = {{"enable", MIG_QMP_ARG_ARRAY, true}, {NULL}};
        MigErr *err = NULL;
        if (c->negotiated) {
            client_send_error(c, id, "CommandNotFound",
                              "capabilities negotiation already done; 'qmp_capabilities' "
                              "is only valid first");
        } else if (mig_qmp_check_args(name, args, spec, false, &err) < 0) {
            client_send_error(c, id, "GenericError", err->msg);
        } else if (args && json_array_size(json_object_get(args, "enable")) > 0) {
            /* the greeting offers no capability, so none can be enabled */
            client_send_error(c, id, "GenericError",
                              "'qmp_capabilities': argument 'enable': no QMP capability "
                              "is offered");
        } else {
            c->negotiated = true;
            json_t *reply = json_pack("{s:{}}", "return");
            if (id)
                json_object_set(reply, "id", id);
            client_send(c, reply);
        }
        mig_err_free(err);
        return;
    }
    if (builtin_command(c, name, args, id))
        return;
    void *opaque = NULL;
    const MigQmpCommand *cmd = find_command(m, name, &opaque);
    if (!cmd) {
        char *d = mig_strdup_printf("command '%s' not found", name);
        client_send_error(c, id, "CommandNotFound", d);
        free(d);
        return;
    }
    MigErr *err = NULL;
    json_t *ret = NULL;
    json_t *own_args = args ? json_incref(args) : json_object();
    /* the request may be freed by nothing but us, yet keep `id` alive across
     * a handler that emits events to this same client */
    json_incref(id);
    int rc = mig_qmp_check_args(name, own_args, cmd->args, cmd->open_args, &err);
    if (rc == 0) {
        m->dispatching = c;
        m->dispatch_id = id;
        m->later = NULL;
        rc = cmd->fn(own_args, &ret, opaque, &err);
        m->dispatching = NULL;
        m->dispatch_id = NULL;
    }
    json_decref(own_args);
    if (rc == MIG_QMP_LATER && m->later) {
        c->waiting = m->later; /* the reply, and this client's next requests, come later */
        m->later = NULL;
        json_decref(ret);
    } else if (rc == MIG_QMP_LATER) {
        json_decref(ret);
        client_send_error(c, id, "GenericError", "the command promised an answer later without a token");
    } else if (rc < 0) {
        if (!err)
            mig_err_set(&err, rc, "'%s' failed: %s", name, mig_errno_name(rc));
        client_send_error(c, id, "GenericError", err->msg);
        json_decref(ret);
    } else {
        json_t *reply = json_object();
        json_object_set_new(reply, "return", ret ? ret : json_object());
        if (id)
            json_object_set(reply, "id", id);
        client_send(c, reply);
    }
    json_decref(id);
    mig_err_free(err);
}

static void handle_text(Client *c, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    if (!v) {
        char *d = mig_strdup_printf("JSON parse error at column %d: %s", jerr.column, jerr.text);
        client_send_error(c, NULL, "GenericError", d);
        free(d);
        return;
    }
    if (!json_is_object(v))
        client_send_error(c, NULL, "GenericError", "QMP input must be a JSON object");
    else
        dispatch(c, v);
    json_decref(v);
}

static bool is_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    return true;
}

/* Cut the text scanned so far out of c->in and start the scanner afresh;
 * returns whether it was the end of an oversized request being skipped. */
static bool cut_text(Client *c, const char **text, size_t *len)
{
    Buf *b = &c->in;
    *text = b->data + b->off;
    *len = c->scan - b->off;
    bool skipped = c->skipping;
    b->off = c->scan;
    c->depth = 0;
    c->in_str = c->esc = false;
    c->skipping = false;
    return skipped;
}

/* Cut complete JSON texts out of c->in and handle them, in order. */
static void client_scan(Client *c)
{
    Buf *b = &c->in;
    while (!c->dead && !c->waiting && c->scan < b->len) {
        char ch = b->data[c->scan++];
        bool cut = false;
        if (c->in_str && (unsigned char)ch < 0x20) {
            /* a raw control byte cannot be in a JSON string: a lexical error
             * that ends this text here (QEMU 7.2 recovers the same way) */
            const char *text;
            size_t len;
            if (!cut_text(c, &text, &len)) {
                int q = (int)MIG_MIN(len, (size_t)MONITOR_STRAY_QUOTE);
                char *d = mig_strdup_printf("JSON parse error, stray '%.*s%s'", q, text,
                                            len > MONITOR_STRAY_QUOTE ? "..." : "");
                client_send_error(c, NULL, "GenericError", d);
                free(d);
            }
            continue;
        }
        if (c->in_str) {
            if (c->esc)
                c->esc = false;
            else if (ch == '\\')
                c->esc = true;
            else if (ch == '"')
                c->in_str = false;
        } else if (ch == '"') {
            c->in_str = true;
        } else if (ch == '{' || ch == '[') {
            c->depth++;
        } else if (ch == '}' || ch == ']') {
            c->depth--;
            cut = c->depth <= 0;
        } else if (ch == '\n' && c->depth == 0) {
            cut = true;
        }
        if (c->scan - b->off > MONITOR_MAX_REQUEST && !cut) {
            if (!c->skipping)
                client_send_error(c, NULL, "GenericError", "request too large");
            c->skipping = true;
            b->off = c->scan; /* drop what we have, keep scanning */
            continue;
        }
        if (!cut)
            continue;
        const char *text;
        size_t len;
        if (!cut_text(c, &text, &len) && !is_blank(text, len))
            handle_text(c, text, len);
    }
    if (b->off == b->len) {
        b->off = b->len = 0;
        c->scan = 0;
    } else if (b->off > b->cap / 2) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        c->scan -= b->off;
        b->off = 0;
    }
}

static void client_io(MigTransport *t, uint32_t events, void *opaque)
{
    Client *c = opaque;
    if (c->dead)
        return;
    if (events & MIG_LOOP_OUT)
        client_flush(c);
    if (!(events & (MIG_LOOP_IN | MIG_LOOP_HUP | MIG_LOOP_ERR)))
        return;
    /* Bounded per wake-up so one chatty client cannot starve the loop. */
    for (int round = 0; round < 16 && !c->dead; round++) {
        char chunk[MONITOR_READ_CHUNK];
        ssize_t n = mig_transport_read(t, chunk, sizeof(chunk));
        if (n == -EAGAIN || n == -EINTR)
            break;
        if (n <= 0) {
            client_kill(c);
            break;
        }
        buf_append(&c->in, chunk, (size_t)n, &c->scan);
        client_scan(c);
    }
}

/* ---- client list ---- */

static void reap_cb(void *opaque)
{
    MigMonitor *m = opaque;
    m->reap = NULL;
    Client **pp = &m->clients;
    while (*pp) {
        Client *c = *pp;
        if (!c->dead) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        mig_transport_close(c->t);
        buf_free(&c->in);
        buf_free(&c->out);
        free(c);
    }
}

static void schedule_reap(MigMonitor *m)
{
    if (!m->reap)
        m->reap = mig_loop_defer(m->loop, reap_cb, m);
}

int mig_monitor_add_client(MigMonitor *m, MigTransport *t)
{
    if (!m || !t)
        return -EINVAL;
    Client *c = mig_malloc0(sizeof(*c));
    c->mon = m;
    c->t = t;
    c->id = m->next_client_id++;
    Client **pp = &m->clients;
    while (*pp)
        pp = &(*pp)->next;
    *pp = c;
    json_t *greeting = json_pack(
        "{s:{s:{s:{s:i,s:i,s:i},s:s},s:[]}}", "QMP", "version", "qemu", "micro", m->greet_micro,
        "minor", m->greet_minor, "major", m->greet_major, "package", m->package, "capabilities");
    client_send(c, greeting);
    client_set_watch(c);
    return c->dead ? -EIO : 0;
}

size_t mig_monitor_client_count(const MigMonitor *m)
{
    size_t n = 0;
    for (const Client *c = m->clients; c; c = c->next)
        n += !c->dead;
    return n;
}

size_t mig_monitor_pending_output(const MigMonitor *m)
{
    size_t n = 0;
    for (const Client *c = m->clients; c; c = c->next)
        if (!c->dead)
            n += buf_used(&c->out);
    return n;
}

MigQmpLater *mig_monitor_reply_later(MigMonitor *m)
{
    if (!m->dispatching || m->later)
        return NULL;
    MigQmpLater *l = mig_malloc0(sizeof(*l));
    l->mon = m;
    l->c = m->dispatching;
    l->id = m->dispatch_id ? json_incref(m->dispatch_id) : NULL;
    m->later = l;
    return l;
}

static void rescan_cb(void *opaque)
{
    Client *c = opaque;
    c->rescan = NULL;
    client_scan(c);
}

void mig_qmp_later_done(MigQmpLater *l, int rc, json_t *ret, MigErr *err)
{
    Client *c = l->c;
    if (c && !c->dead) {
        if (rc < 0) {
            client_send_error(c, l->id, "GenericError", err ? err->msg : mig_errno_name(rc));
            json_decref(ret);
        } else {
            json_t *reply = json_object();
            json_object_set_new(reply, "return", ret ? ret : json_object());
            if (l->id)
                json_object_set(reply, "id", l->id);
            client_send(c, reply);
        }
        c->waiting = NULL;
        if (!c->rescan)
            c->rescan = mig_loop_defer(c->mon->loop, rescan_cb, c);
    } else {
        json_decref(ret);
    }
    mig_err_free(err);
    json_decref(l->id);
    free(l);
}

void mig_monitor_set_log(MigMonitor *m, void (*log)(void *opaque, const char *line),
                         void *opaque)
{
    m->log = log;
    m->log_opaque = opaque;
}

void mig_monitor_set_clock_offset(MigMonitor *m, int64_t offset_ns)
{
    m->clock_offset_ns = offset_ns;
}

void mig_monitor_emit(MigMonitor *m, const char *name, json_t *data)
{
    /* A sum below zero (an offset from a broken caller) is clamped to 0. */
    int64_t stamp = (int64_t)mig_loop_now_ns(m->loop) + m->clock_offset_ns;
    uint64_t now = stamp > 0 ? (uint64_t)stamp : 0;
    json_t *ev = json_pack("{s:s}", "event", name);
    if (data)
        json_object_set_new(ev, "data", data);
    json_object_set_new(ev, "timestamp",
                        json_pack("{s:I,s:I}", "seconds", (json_int_t)(now / 1000000000u),
                                  "microseconds", (json_int_t)(now % 1000000000u / 1000u)));
    for (Client *c = m->clients; c; c = c->next)
        if (c->negotiated && !c->dead)
            client_send(c, json_incref(ev));
    json_decref(ev);
}

/* ---- listener ---- */

static void listener_accept(MigListener *l, MigTransport *t, void *opaque)
{
    mig_monitor_add_client(opaque, t);
}

int mig_monitor_listen_unix(MigMonitor *m, const char *path, MigErr **errp)
{
    if (m->listener)
        return mig_err_set(errp, -EBUSY, "monitor already listens on %s", m->listen_path);
    MigErr *err = NULL;
    m->listener = mig_listener_unix_new(m->loop, path, listener_accept, m, &err);
    if (!m->listener) {
        if (!err)
            mig_err_set(&err, -EIO, "cannot listen on unix:%s", path);
        mig_err_prepend(&err, "QMP socket");
        return mig_err_propagate(errp, err);
    }
    m->listen_path = mig_strdup(path);
    return 0;
}

/* ---- life cycle ---- */

MigMonitor *mig_monitor_new(MigLoop *loop, const MigMonitorVersion *version)
{
    if (!loop || !version)
        return NULL;
    MigMonitor *m = mig_malloc0(sizeof(*m));
    m->loop = loop;
    m->greet_major = version->major;
    m->greet_minor = version->minor;
    m->greet_micro = version->micro;
    m->package = mig_strdup(version->package ? version->package : "migcert");
    return m;
}

int mig_monitor_add_commands(MigMonitor *m, const MigQmpCommand *cmds, size_t n, void *opaque)
{
    for (size_t i = 0; i < n; i++) {
        void *o;
        if (!strcmp(cmds[i].name, "qmp_capabilities") || find_command(m, cmds[i].name, &o))
            return -EEXIST;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(cmds[i].name, cmds[j].name))
                return -EEXIST;
    }
    MIG_GROW(m->sets, m->sets_cap, m->n_sets + 1, 4);
    m->sets[m->n_sets++] = (CommandSet){cmds, n, opaque};
    return 0;
}

void mig_monitor_free(MigMonitor *m)
{
    if (!m)
        return;
    for (Client *c = m->clients; c; c = c->next) {
        if (!c->dead)
            client_flush(c); /* one last non-blocking try, e.g. quit's reply */
        client_kill(c);
    }
    mig_loop_remove(m->loop, m->reap);
    m->reap = NULL;
    reap_cb(m);
    m->reap = NULL;
    while (m->n_fds) {
        close(m->fds[0].fd);
        drop_fd(m, &m->fds[0]);
    }
    mig_listener_free(m->listener); /* also removes the socket file */
    free(m->listen_path);
    free(m->sets);
    free(m->package);
    free(m);
}
