/*
 * cmd-certify.c - `migcert certify --device X.so [--peer Y.so] [--out DIR]
 * [-k CASE] [--timeout SECONDS]`: the device conformance suite for a vendor
 * plugin (include/migcert/device.h), with a certificate report.
 *
 * Sandbox: every case loads the plugin in a child process (fork) and drives
 * it over a socketpair with a small request/response protocol; the parent
 * waits for each answer with poll() and a timeout.  A plugin that crashes or
 * hangs fails that case ("plugin X.so crashed (signal 11) in set_state",
 * "plugin X.so timed out after 10s in read") and the suite goes on with a
 * fresh child.  The child runs the engine's own backends (the v2 table or
 * the v1 adapter, impl/device), and the parent drives them through MigDevice
 * exactly as the engine does, so the checks of impl/device apply too.  This
 * is harness code: blocking I/O with poll timeouts is fine here.
 *
 * Cases (each names the rule it checks; -k runs one, by exact name, glob or
 * substring):
 *   load                               the plugin loads, ABI version known
 *   transition.<FSET>.<CUR>.<TGT>      every cur x target x feature set: the
 *                                      device refuses non-arcs itself, and a
 *                                      request executes the golden path
 *   invalid-values                     out-of-range state values refused
 *   precopy.<FSET>                     PRECOPY_INFO and PRE_COPY reads
 *   stop-copy-end.<FSET>               STOP_COPY reads end with 0, every time
 *   read-sizes.<FSET>                  reads of odd sizes never claim more
 *   round-trip.<FSET>                  save -> resume, state compared
 *   resume-rejects.<truncated|flipped|concatenated>
 *   abort.<STATE>                      abort in every state keeps the state
 *   error-reset                        ERROR refuses arcs; reset leaves it
 *   fault.<callback>                   an injected failure in each callback:
 *                                      reported, recovered, migration retried
 *   peer.<X>-to-<Y>, peer.<Y>-to-<X>   with --peer: cross round trips
 * Reports: report.txt, report.json, report.junit.xml in DIR (default
 * reports/out/certify-<name>).  Exit 0 all passed, 1 a case failed, 2 usage.
 */
#include <fnmatch.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "common/prng.h"
#include "device/device.h"

/* ---- the sandbox protocol ---- */

enum SbOp {
    SB_HELLO,
    SB_CREATE,
    SB_DESTROY,
    SB_ARC,
    SB_GET_STATE,
    SB_READ,
    SB_WRITE,
    SB_PRECOPY_INFO,
    SB_DATA_SIZE,
    SB_RESET,
    SB_GUEST_RUN,
    SB_DIGEST,
    SB_FORCE_ERROR,
    SB_FAULT, /* the next call of op `a` fails with -b without reaching the plugin */
    SB__COUNT
};

static const char *const sb_op_names[SB__COUNT] = {
    [SB_HELLO] = "load",          [SB_CREATE] = "create",       [SB_DESTROY] = "destroy",
    [SB_ARC] = "set_state",       [SB_GET_STATE] = "get_state", [SB_READ] = "read",
    [SB_WRITE] = "write",         [SB_PRECOPY_INFO] = "precopy_info",
    [SB_DATA_SIZE] = "data_size", [SB_RESET] = "reset",         [SB_GUEST_RUN] = "guest_run",
    [SB_DIGEST] = "digest",       [SB_FORCE_ERROR] = "force_error", [SB_FAULT] = "fault",
};

typedef struct SbReq {
    uint32_t op, inst;
    uint64_t a, b;
    uint32_t len;
} SbReq;

typedef struct SbResp {
    int64_t ret;
    uint64_t x, y;
    uint32_t len; /* payload: data, or the error text when ret < 0 */
} SbResp;

#define SB_MAX_INST 8
#define SB_MAX_PAYLOAD (16u << 20)

typedef struct Sandbox {
    pid_t pid;
    int fd;
    bool dead;
    char *death; /* why it died, for every later call */
    char label[128];
    unsigned timeout_s;
    /* from HELLO */
    char name[64], version[64];
    uint32_t features, protocol;
} Sandbox;

static int full_read_fd(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int full_write_fd(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- child side ---- */

static void child_reply(int fd, int64_t ret, uint64_t x, uint64_t y, const void *data, size_t len,
                        MigErr *err)
{
    SbResp r = {ret, x, y, 0};
    const char *msg = NULL;
    if (ret < 0 && err && err->msg) {
        msg = err->msg;
        len = strlen(msg);
        data = msg;
    }
    r.len = (uint32_t)len;
    if (full_write_fd(fd, &r, sizeof(r)) < 0 || (len && full_write_fd(fd, data, len) < 0))
        _exit(3);
}

static void child_main(int fd, const char *path)
{
    MigErr *err = NULL;
    void *handle;
    const MigcertDevicePlugin *p = mig_dev_plugin_load(path, &handle, &err);
    MigDevBackend *inst[SB_MAX_INST] = {0};
    int fault_op = -1, fault_err = 0;
    uint8_t *buf = NULL;
    for (;;) {
        SbReq q;
        if (full_read_fd(fd, &q, sizeof(q)) < 0)
            _exit(0);
        if (q.len > SB_MAX_PAYLOAD)
            _exit(4);
        free(buf);
        buf = malloc(MIG_MAX(q.len, (uint32_t)1));
        if (q.len && full_read_fd(fd, buf, q.len) < 0)
            _exit(0);
        if (q.op == SB_HELLO) {
            if (!p) {
                child_reply(fd, err ? err->code : -EINVAL, 0, 0, NULL, 0, err);
                continue;
            }
            char info[256];
            int n = snprintf(info, sizeof(info), "%s\n%s", p->name, p->version ? p->version : "");
            child_reply(fd, 0, p->features, p->protocol, info, (size_t)n, NULL);
            continue;
        }
        if (!p) {
            child_reply(fd, -ENODEV, 0, 0, NULL, 0, NULL);
            continue;
        }
        if (q.op == SB_FAULT) {
            fault_op = (int)q.a;
            fault_err = (int)q.b;
            child_reply(fd, 0, 0, 0, NULL, 0, NULL);
            continue;
        }
        if ((int)q.op == fault_op) {
            fault_op = -1;
            child_reply(fd, -fault_err, 0, 0, NULL, 0, NULL);
            continue;
        }
        if (q.op == SB_CREATE) {
            uint32_t i = 0;
            while (i < SB_MAX_INST && inst[i])
                i++;
            MigcertDeviceConfig cfg = {sizeof(cfg), (uint32_t)q.a, q.b, 0};
            if (q.len == 8)
                memcpy(&cfg.mem_size, buf, 8);
            err = NULL;
            MigDevBackend *b = i < SB_MAX_INST ? mig_dev_backend_plugin_new(p, &cfg, NULL, &err)
                                               : NULL;
            if (!b) {
                child_reply(fd, err ? err->code : -ENOSPC, 0, 0, NULL, 0, err);
                mig_err_free(err);
                err = NULL;
                continue;
            }
            inst[i] = b;
            child_reply(fd, i, 0, 0, NULL, 0, NULL);
            continue;
        }
        MigDevBackend *b = q.inst < SB_MAX_INST ? inst[q.inst] : NULL;
        if (!b) {
            child_reply(fd, -EBADF, 0, 0, NULL, 0, NULL);
            continue;
        }
        err = NULL;
        int64_t ret = 0;
        uint64_t x = 0, y = 0;
        uint8_t *data = NULL;
        size_t dlen = 0;
        switch (q.op) {
        case SB_DESTROY:
            b->ops->free(b);
            inst[q.inst] = NULL;
            break;
        case SB_ARC:
            ret = b->ops->arc(b, (MigDevState)q.a, &err);
            break;
        case SB_GET_STATE: {
            MigDevState s = MIG_DEV_ERROR;
            ret = b->ops->get_state(b, &s, &err);
            x = s;
            break;
        }
        case SB_READ: {
            size_t len = (size_t)MIG_MIN(q.a, (uint64_t)SB_MAX_PAYLOAD);
            data = malloc(len + 1);
            ssize_t n = b->ops->read(b, data, len, &err);
            ret = n;
            dlen = n > 0 ? MIG_MIN((size_t)n, len) : 0;
            break;
        }
        case SB_WRITE:
            ret = b->ops->write(b, buf, q.len, &err);
            break;
        case SB_PRECOPY_INFO:
            ret = b->ops->precopy_info(b, &x, &y, &err);
            break;
        case SB_DATA_SIZE:
            ret = b->ops->data_size(b, &x, &err);
            break;
        case SB_RESET:
            ret = b->ops->reset(b, &err);
            break;
        case SB_GUEST_RUN:
            ret = b->ops->guest_run(b, (uint32_t)q.a, &err);
            break;
        case SB_DIGEST:
            ret = b->ops->digest(b, &x, &err);
            break;
        case SB_FORCE_ERROR:
            ret = b->ops->force_error(b, &err);
            break;
        default:
            ret = -ENOSYS;
        }
        child_reply(fd, ret, x, y, data, dlen, err);
        mig_err_free(err);
        err = NULL;
        free(data);
    }
}

/* ---- parent side ---- */

static void sb_die(Sandbox *sb, const char *fmt, ...) MIG_PRINTF(2, 3);
static void sb_die(Sandbox *sb, const char *fmt, ...)
{
    if (sb->dead)
        return;
    va_list ap;
    va_start(ap, fmt);
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sb->dead = true;
    sb->death = mig_strdup(msg);
    if (sb->fd >= 0)
        close(sb->fd);
    sb->fd = -1;
}

static void sb_reap(Sandbox *sb, const char *op)
{
    int st = 0;
    if (sb->pid > 0 && waitpid(sb->pid, &st, 0) == sb->pid) {
        sb->pid = 0;
        if (WIFSIGNALED(st))
            sb_die(sb, "plugin %s crashed (signal %d) in %s", sb->label, WTERMSIG(st), op);
        else
            sb_die(sb, "plugin %s exited (status %d) in %s", sb->label, WEXITSTATUS(st), op);
    }
    sb_die(sb, "plugin %s: the sandbox went away in %s", sb->label, op);
}

/* Wait until fd is ready for `events` before the deadline (ms, monotonic). */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        if (now >= deadline_ms)
            return -ETIMEDOUT;
        struct pollfd pfd = {fd, events, 0};
        int r = poll(&pfd, 1, (int)MIG_MIN(deadline_ms - now, (int64_t)INT_MAX));
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

static int io_all(Sandbox *sb, bool out, void *buf, size_t len, int64_t deadline)
{
    uint8_t *p = buf;
    while (len) {
        int r = wait_fd(sb->fd, out ? POLLOUT : POLLIN, deadline);
        if (r < 0)
            return r;
        ssize_t n = out ? send(sb->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT)
                        : recv(sb->fd, p, len, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return -EPIPE;
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        }
    }
    return 0;
}

/* One call: returns resp.ret (or -EPIPE/-ETIMEDOUT when the sandbox died),
 * with the error text in *errp and the payload in out (up to out_cap). */
static int64_t sb_call(Sandbox *sb, uint32_t op, uint32_t inst, uint64_t a, uint64_t b,
                       const void *payload, uint32_t len, SbResp *resp, void *out, size_t out_cap,
                       MigErr **errp)
{
    if (sb->dead)
        return mig_err_set(errp, -EPIPE, "%s", sb->death);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t deadline = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
                       (int64_t)sb->timeout_s * 1000;
    SbReq q = {op, inst, a, b, len};
    SbResp r = {0};
    int rc = io_all(sb, true, &q, sizeof(q), deadline);
    if (rc == 0 && len)
        rc = io_all(sb, true, (void *)payload, len, deadline);
    if (rc == 0)
        rc = io_all(sb, false, &r, sizeof(r), deadline);
    if (rc == -ETIMEDOUT) {
        kill(sb->pid, SIGKILL);
        waitpid(sb->pid, NULL, 0);
        sb->pid = 0;
        sb_die(sb, "plugin %s timed out after %us in %s", sb->label, sb->timeout_s,
               sb_op_names[op]);
    } else if (rc < 0) {
        sb_reap(sb, sb_op_names[op]);
    }
    if (rc < 0)
        return mig_err_set(errp, rc == -ETIMEDOUT ? -ETIMEDOUT : -EPIPE, "%s", sb->death);
    char *data = malloc((size_t)r.len + 1);
    if (r.len > SB_MAX_PAYLOAD || io_all(sb, false, data, r.len, deadline) < 0) {
        free(data);
        sb_reap(sb, sb_op_names[op]);
        return mig_err_set(errp, -EPIPE, "%s", sb->death);
    }
    data[r.len] = 0;
    if (r.ret < 0 && r.len)
        mig_err_set(errp, (int)r.ret, "%s", data);
    else if (out)
        memcpy(out, data, MIG_MIN((size_t)r.len, out_cap));
    free(data);
    if (resp)
        *resp = r;
    return r.ret;
}

static Sandbox *sb_spawn(const char *path, unsigned timeout_s, MigErr **errp)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        mig_err_set(errp, -errno, "socketpair: %s", strerror(errno));
        return NULL;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        mig_err_set(errp, -errno, "fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return NULL;
    }
    if (pid == 0) {
        close(sv[0]);
        signal(SIGPIPE, SIG_DFL);
        child_main(sv[1], path);
        _exit(0);
    }
    close(sv[1]);
    Sandbox *sb = mig_malloc0(sizeof(*sb));
    sb->pid = pid;
    sb->fd = sv[0];
    sb->timeout_s = timeout_s;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    snprintf(sb->label, sizeof(sb->label), "%s", base);
    SbResp r = {0};
    char info[256] = {0};
    if (sb_call(sb, SB_HELLO, 0, 0, 0, NULL, 0, &r, info, sizeof(info) - 1, errp) < 0) {
        /* keep the sandbox: the caller reports its death or the load error */
        return sb;
    }
    sb->features = (uint32_t)r.x;
    sb->protocol = (uint32_t)r.y;
    char *nl = strchr(info, '\n');
    if (nl) {
        *nl = 0;
        snprintf(sb->version, sizeof(sb->version), "%s", nl + 1);
    }
    snprintf(sb->name, sizeof(sb->name), "%.*s", (int)sizeof(sb->name) - 1, info);
    return sb;
}

static void sb_free(Sandbox *sb)
{
    if (!sb)
        return;
    if (sb->fd >= 0)
        close(sb->fd);
    if (sb->pid > 0) {
        /* closing the socket ends the child; do not wait on a hung one */
        if (waitpid(sb->pid, NULL, WNOHANG) == 0) {
            struct timespec d = {0, 2000000};
            for (int i = 0; i < 50 && waitpid(sb->pid, NULL, WNOHANG) == 0; i++)
                nanosleep(&d, NULL);
            if (kill(sb->pid, 0) == 0) {
                kill(sb->pid, SIGKILL);
                waitpid(sb->pid, NULL, 0);
            }
        }
    }
    free(sb->death);
    free(sb);
}

/* ---- the proxy backend (parent) ---- */

typedef struct ProxyBackend {
    MigDevBackend base;
    Sandbox *sb;
    uint32_t inst;
} ProxyBackend;

static ProxyBackend *px(MigDevBackend *b) { return (ProxyBackend *)b; }

static int64_t px_call(MigDevBackend *b, uint32_t op, uint64_t a, SbResp *r, MigErr **errp)
{
    return sb_call(px(b)->sb, op, px(b)->inst, a, 0, NULL, 0, r, NULL, 0, errp);
}

static int px_arc(MigDevBackend *b, MigDevState to, MigErr **errp)
{
    return (int)px_call(b, SB_ARC, (uint64_t)(uint32_t)to, NULL, errp);
}

static int px_get_state(MigDevBackend *b, MigDevState *out, MigErr **errp)
{
    SbResp r = {0};
    int64_t rc = px_call(b, SB_GET_STATE, 0, &r, errp);
    if (rc >= 0)
        *out = (MigDevState)r.x;
    return (int)rc;
}

static ssize_t px_read(MigDevBackend *b, void *buf, size_t len, MigErr **errp)
{
    SbResp r = {0};
    return (ssize_t)sb_call(px(b)->sb, SB_READ, px(b)->inst, len, 0, NULL, 0, &r, buf, len, errp);
}

static ssize_t px_write(MigDevBackend *b, const void *buf, size_t len, MigErr **errp)
{
    size_t done = 0;
    while (done < len) {
        uint32_t k = (uint32_t)MIG_MIN(len - done, (size_t)SB_MAX_PAYLOAD);
        int64_t rc = sb_call(px(b)->sb, SB_WRITE, px(b)->inst, 0, 0, (const uint8_t *)buf + done,
                             k, NULL, NULL, 0, errp);
        if (rc < 0)
            return (ssize_t)rc;
        if (rc == 0 || (uint64_t)rc > k)
            return done ? (ssize_t)done : (ssize_t)rc;
        done += (size_t)rc;
    }
    return (ssize_t)done;
}

static int px_precopy_info(MigDevBackend *b, uint64_t *ini, uint64_t *dirty, MigErr **errp)
{
    SbResp r = {0};
    int64_t rc = px_call(b, SB_PRECOPY_INFO, 0, &r, errp);
    if (rc >= 0) {
        *ini = r.x;
        *dirty = r.y;
    }
    return (int)rc;
}

static int px_data_size(MigDevBackend *b, uint64_t *len, MigErr **errp)
{
    SbResp r = {0};
    int64_t rc = px_call(b, SB_DATA_SIZE, 0, &r, errp);
    if (rc >= 0)
        *len = r.x;
    return (int)rc;
}

static int px_reset(MigDevBackend *b, MigErr **errp)
{
    return (int)px_call(b, SB_RESET, 0, NULL, errp);
}

static int px_guest_run(MigDevBackend *b, uint32_t ops, MigErr **errp)
{
    return (int)px_call(b, SB_GUEST_RUN, ops, NULL, errp);
}

static int px_digest(MigDevBackend *b, uint64_t *out, MigErr **errp)
{
    SbResp r = {0};
    int64_t rc = px_call(b, SB_DIGEST, 0, &r, errp);
    if (rc >= 0)
        *out = r.x;
    return (int)rc;
}

static int px_force_error(MigDevBackend *b, MigErr **errp)
{
    return (int)px_call(b, SB_FORCE_ERROR, 0, NULL, errp);
}

static void px_free(MigDevBackend *b)
{
    px_call(b, SB_DESTROY, 0, NULL, NULL);
    free(b);
}

static const MigDevBackendOps proxy_ops = {
    .arc = px_arc,
    .get_state = px_get_state,
    .read = px_read,
    .write = px_write,
    .precopy_info = px_precopy_info,
    .data_size = px_data_size,
    .reset = px_reset,
    .guest_run = px_guest_run,
    .digest = px_digest,
    .force_error = px_force_error,
    .free = px_free,
};

static MigDevice *sb_device(Sandbox *sb, uint32_t features, uint64_t seed, uint64_t mem,
                            MigErr **errp)
{
    int64_t id = sb_call(sb, SB_CREATE, 0, features, seed, &mem, 8, NULL, NULL, 0, errp);
    if (id < 0)
        return NULL;
    ProxyBackend *b = mig_malloc0(sizeof(*b));
    b->base.ops = &proxy_ops;
    snprintf(b->base.name, sizeof(b->base.name), "%.63s", sb->label);
    b->base.features = features;
    b->sb = sb;
    b->inst = (uint32_t)id;
    return mig_device_new(sb->label, &b->base, errp);
}

/* ---- rules, cases, results ---- */

typedef struct Rule {
    const char *id;
    const char *text;
} Rule;

static const Rule rules[] = {
    {"load", "the plugin loads, exports migcert_device_plugin_v1 and speaks a known ABI version"},
    {"arc-table", "each direct arc of the feature set succeeds and the device reports its target"},
    {"non-arc-refused", "a pair that is not a direct arc is refused with EINVAL, nothing changes"},
    {"stopcopy-to-precopy-refused",
     "STOP_COPY -> PRE_COPY(_P2P) is refused; the device stays in STOP_COPY and its data still "
     "reads to the end"},
    {"invalid-state-refused",
     "ERROR, unsupported states and unknown values are refused; nothing changes"},
    {"error-refuses-arcs", "in ERROR every arc is refused"},
    {"reset-leaves-error", "reset takes the device from ERROR (or any state) to RUNNING"},
    {"precopy-info",
     "PRECOPY_INFO is EINVAL outside PRE_COPY*; initial_bytes never grows; dirty_bytes starts "
     "at 0 and rises when the guest writes"},
    {"read-end-codes", "ENOMSG means 'nothing now' only in PRE_COPY*; 0 means the end only in "
                       "STOP_COPY"},
    {"pending-reaches-zero",
     "pending data reaches zero: a drained PRE_COPY reports 0 bytes, and STOP_COPY reads end "
     "with 0, every time"},
    {"read-length", "read() returns at most the number of bytes asked for"},
    {"round-trip", "the state resumed from a saved stream equals the saved state"},
    {"resume-validates",
     "RESUMING -> STOP refuses a truncated, corrupt or concatenated stream and the device stays "
     "RESUMING (or ERROR)"},
    {"abort-keeps-state",
     "aborting a migration returns the device to RUNNING with its state intact, and a new "
     "session carries everything"},
    {"fault-recovery",
     "after a callback fails the device stays consistent and a retried migration succeeds"},
    {"plugin-crash", "the plugin never crashes"},
    {"plugin-timeout", "every callback returns within the timeout"},
};

static const char *rule_text(const char *id)
{
    for (size_t i = 0; i < MIG_ARRAY_SIZE(rules); i++)
        if (!strcmp(rules[i].id, id))
            return rules[i].text;
    return "";
}

typedef enum { ST_PASS, ST_FAIL, ST_SKIP } Status;

typedef struct Result {
    Status st;
    const char *rule;
    char msg[512];
} Result;

typedef struct Ctx {
    const char *dev_path, *peer_path;
    unsigned timeout_s;
    uint32_t features; /* the plugin's */
    uint32_t peer_features;
    Result *res;
    MigPrng prng;
} Ctx;

typedef struct Case {
    char name[96];
    void (*fn)(Ctx *c, const struct Case *k);
    uint32_t fset;
    int a, b;
} Case;

static void fail(Ctx *c, const char *rule, const char *fmt, ...) MIG_PRINTF(3, 4);
static void fail(Ctx *c, const char *rule, const char *fmt, ...)
{
    if (c->res->st == ST_FAIL)
        return; /* first failure wins */
    c->res->st = ST_FAIL;
    c->res->rule = rule;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->res->msg, sizeof(c->res->msg), fmt, ap);
    va_end(ap);
}

static void skip(Ctx *c, const char *why)
{
    if (c->res->st != ST_PASS)
        return;
    c->res->st = ST_SKIP;
    snprintf(c->res->msg, sizeof(c->res->msg), "%s", why);
}

/* Pick the rule an engine-side error proves broken. */
static const char *classify(const MigErr *err, const char *dflt)
{
    const char *m = err && err->msg ? err->msg : "";
    if (strstr(m, " crashed (signal") || strstr(m, " exited (status"))
        return "plugin-crash";
    if (strstr(m, " timed out after "))
        return "plugin-timeout";
    if (strstr(m, "-byte buffer"))
        return "read-length";
    if (strstr(m, "never reports the end"))
        return "pending-reaches-zero";
    if (strstr(m, "ENOMSG in STOP_COPY") || strstr(m, "(end of stream) in"))
        return "read-end-codes";
    return dflt;
}

static void fail_err(Ctx *c, const char *rule, MigErr *err, const char *what)
{
    fail(c, classify(err, rule), "%s: %s", what, err && err->msg ? err->msg : "failed");
    mig_err_free(err);
}

static Sandbox *open_sb(Ctx *c, const char *path)
{
    MigErr *err = NULL;
    Sandbox *sb = sb_spawn(path, c->timeout_s, &err);
    if (!sb || sb->dead || err) {
        fail_err(c, sb && sb->dead ? "plugin-crash" : "load", err, "load");
        if (sb && sb->dead && sb->death && strstr(sb->death, "timed out"))
            c->res->rule = "plugin-timeout";
        sb_free(sb);
        return NULL;
    }
    return sb;
}

static MigDevice *open_dev(Ctx *c, Sandbox *sb, uint32_t f, uint64_t seed, uint64_t mem)
{
    MigErr *err = NULL;
    MigDevice *d = sb_device(sb, f, seed, mem, &err);
    if (!d) {
        fail_err(c, "load", err, "create");
        return NULL;
    }
    /* bound STOP_COPY reads by the device's own estimate */
    uint64_t est = 0;
    if (mig_device_data_size(d, &est, NULL) == 0 && est > 0) /* 0: no estimate (v1) */
        mig_device_set_stop_copy_limit(d, MIG_MAX(est * 4, (uint64_t)256 << 10));
    return d;
}

static bool set_state(Ctx *c, MigDevice *d, MigDevState s, const char *rule)
{
    MigErr *err = NULL;
    if (mig_device_set_state(d, s, &err) < 0) {
        char what[64];
        snprintf(what, sizeof(what), "enter %s", mig_dev_state_name(s));
        fail_err(c, rule, err, what);
        return false;
    }
    return true;
}

static bool hooks(Ctx *c, MigDevice *d)
{
    uint64_t x;
    MigDevBackend *be = mig_device_backend(d);
    MigErr *err = NULL;
    int r = be->ops->digest(be, &x, &err);
    mig_err_free(err);
    if (r == -ENOTSUP) {
        skip(c, "the plugin has no digest/guest_run test hooks");
        return false;
    }
    return r >= 0;
}

typedef struct Buf {
    uint8_t *p;
    size_t len, cap;
} Buf;

static void buf_add(Buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 4096;
        b->p = mig_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* Read until nothing now (-EAGAIN) or the end (0); sizes from the PRNG up to
 * `max` (0 = 64 KiB).  Returns the last result (-EAGAIN or 0), or -1 after
 * fail(). */
static ssize_t drain(Ctx *c, MigDevice *d, Buf *out, size_t max, const char *rule)
{
    static uint8_t tmp[1 << 16];
    if (!max || max > sizeof(tmp))
        max = sizeof(tmp);
    for (;;) {
        size_t len = 1 + (size_t)mig_prng_below(&c->prng, max);
        MigErr *err = NULL;
        ssize_t n = mig_device_read(d, tmp, len, &err);
        if (n == -EAGAIN || n == 0) {
            mig_err_free(err);
            return n;
        }
        if (n < 0) {
            fail_err(c, rule, err, "read");
            return -1;
        }
        if (out)
            buf_add(out, tmp, (size_t)n);
    }
}

/* The source half: pre-copy passes with the guest writing, then
 * stop-and-copy to the end.  The device ends in STOP. */
static bool save(Ctx *c, MigDevice *d, Buf *out, uint32_t dirty_ops, size_t max_read)
{
    MigDevBackend *be = mig_device_backend(d);
    MigErr *err = NULL;
    uint64_t est = 0;
    if (mig_device_data_size(d, &est, &err) < 0) {
        fail_err(c, "fault-recovery", err, "data_size");
        return false;
    }
    if (est > 0)
        mig_device_set_stop_copy_limit(d, MIG_MAX(est * 4, (uint64_t)256 << 10));
    if (mig_device_features(d) & MIG_DEV_F_PRE_COPY) {
        if (!set_state(c, d, MIG_DEV_PRE_COPY, "arc-table"))
            return false;
        for (int pass = 0; pass < 3; pass++) {
            ssize_t r = drain(c, d, out, max_read, "round-trip");
            if (r == -1)
                return false;
            if (r == 0) {
                fail(c, "read-end-codes", "read returned 0 (end) in PRE_COPY");
                return false;
            }
            uint64_t ini, dirty;
            if (mig_device_precopy_info(d, &ini, &dirty, &err) < 0) {
                fail_err(c, "precopy-info", err, "precopy_info");
                return false;
            }
            if (dirty_ops && be->ops->guest_run(be, dirty_ops, NULL) < 0) {
                fail(c, "round-trip", "guest_run refused in PRE_COPY");
                return false;
            }
        }
    } else if (dirty_ops) {
        be->ops->guest_run(be, dirty_ops, NULL);
    }
    if (!set_state(c, d, MIG_DEV_STOP_COPY, "arc-table"))
        return false;
    ssize_t r = drain(c, d, out, max_read, "pending-reaches-zero");
    if (r == -1)
        return false;
    return set_state(c, d, MIG_DEV_STOP, "arc-table");
}

/* The destination half: RESUMING, writes in random segments, STOP, RUNNING. */
static int load(Ctx *c, MigDevice *d, const uint8_t *p, size_t len, bool segmented, MigErr **errp)
{
    int r = mig_device_set_state(d, MIG_DEV_RESUMING, errp);
    if (r < 0)
        return r;
    size_t off = 0;
    while (off < len) {
        size_t k = len - off;
        /* (MIG_MIN evaluates its arguments twice: draw first) */
        size_t seg = off < 64 ? 1 : 1 + (size_t)mig_prng_below(&c->prng, 100000);
        if (segmented)
            k = MIG_MIN(k, seg);
        r = mig_device_write(d, p + off, k, errp);
        if (r < 0)
            return r;
        off += k;
    }
    return mig_device_set_state(d, MIG_DEV_STOP, errp);
}

static bool digest(Ctx *c, MigDevice *d, uint64_t *out)
{
    MigDevBackend *be = mig_device_backend(d);
    MigErr *err = NULL;
    if (be->ops->digest(be, out, &err) < 0) {
        fail_err(c, "round-trip", err, "digest");
        return false;
    }
    return true;
}

/* A whole migration src -> dst, compared. */
static bool migrate(Ctx *c, MigDevice *src, MigDevice *dst, uint32_t dirty_ops)
{
    Buf s = {0};
    bool ok = save(c, src, &s, dirty_ops, 0);
    uint64_t ds, dd;
    MigErr *err = NULL;
    if (ok && load(c, dst, s.p, s.len, true, &err) < 0) {
        fail_err(c, "round-trip", err, "resume");
        ok = false;
    }
    if (ok)
        ok = set_state(c, dst, MIG_DEV_RUNNING, "arc-table");
    if (ok && digest(c, src, &ds) && digest(c, dst, &dd) && ds != dd) {
        fail(c, "round-trip", "resumed state differs from the saved state (digest %016llx vs %016llx)",
             (unsigned long long)dd, (unsigned long long)ds);
        ok = false;
    }
    free(s.p);
    if (!ok && c->res->st != ST_FAIL)
        fail(c, "round-trip", "the migration stopped without a reason (harness bug)");
    return ok && c->res->st != ST_FAIL;
}

/* ---- cases ---- */

#define SMALL_MEM (64u << 10)

static void case_load(Ctx *c, const Case *k)
{
    Sandbox *sb = open_sb(c, c->dev_path);
    sb_free(sb);
}

static void case_transition(Ctx *c, const Case *k)
{
    uint32_t f = k->fset;
    MigDevState cur = (MigDevState)k->a, tgt = (MigDevState)k->b;
    Sandbox *sb = open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *d = NULL, *src = NULL;
    Buf stream = {0};
    if (cur == MIG_DEV_RESUMING) {
        src = open_dev(c, sb, f, 1, SMALL_MEM);
        if (!src || !save(c, src, &stream, 0, 0))
            goto out;
    }
    d = open_dev(c, sb, f, 2, SMALL_MEM);
    if (!d)
        goto out;
    MigDevBackend *be = mig_device_backend(d);
    if (cur == MIG_DEV_ERROR) {
        MigErr *err = NULL;
        int r = be->ops->force_error(be, &err);
        mig_err_free(err);
        if (r == -ENOTSUP) {
            skip(c, "the plugin has no force_error test hook");
            goto out;
        }
        mig_device_refresh(d);
        if (mig_device_state(d) != MIG_DEV_ERROR) {
            fail(c, "error-refuses-arcs", "force_error left the device in %s",
                 mig_dev_state_name(mig_device_state(d)));
            goto out;
        }
    } else if (cur == MIG_DEV_RESUMING) {
        MigErr *err = NULL;
        if (!set_state(c, d, MIG_DEV_RESUMING, "arc-table"))
            goto out;
        if (mig_device_write(d, stream.p, stream.len, &err) < 0) {
            fail_err(c, "round-trip", err, "write");
            goto out;
        }
    } else if (!set_state(c, d, cur, "arc-table")) {
        goto out;
    }
    MigDevState real = MIG_DEV_ERROR;
    /* 1. the device refuses a pair that is not one of its arcs */
    if (cur != tgt && !mig_dev_arc_allowed(cur, tgt, f)) {
        const char *rule = "non-arc-refused";
        if (cur == MIG_DEV_STOP_COPY && (tgt == MIG_DEV_PRE_COPY || tgt == MIG_DEV_PRE_COPY_P2P))
            rule = "stopcopy-to-precopy-refused";
        else if (cur == MIG_DEV_ERROR)
            rule = "error-refuses-arcs";
        else if (tgt == MIG_DEV_ERROR || !mig_dev_state_supported(tgt, f))
            rule = "invalid-state-refused";
        MigErr *err = NULL;
        int r = be->ops->arc(be, tgt, &err);
        mig_err_free(err);
        err = NULL;
        int g = be->ops->get_state(be, &real, &err);
        if (g < 0) {
            fail_err(c, "plugin-crash", err, "get_state");
            goto out;
        }
        if (r >= 0 || real != cur) {
            fail(c, rule, "the device %s %s -> %s (returned %s) and is now %s",
                 r >= 0 ? "accepted" : "refused", mig_dev_state_name(cur), mig_dev_state_name(tgt),
                 mig_errno_name(r), mig_dev_state_name(real));
            goto out;
        }
        if (!strcmp(rule, "stopcopy-to-precopy-refused") &&
            drain(c, d, NULL, 0, "stopcopy-to-precopy-refused") != 0)
            goto out;
    }
    /* 2. a request executes exactly the golden path */
    MigDevState path[MIG_DEV_STATE__COUNT];
    size_t n = 0;
    int want = mig_dev_path(cur, tgt, f, path, &n);
    mig_device_arc_log_clear(d);
    MigErr *err = NULL;
    int r = mig_device_set_state(d, tgt, &err);
    MigDevState from[16], to[16];
    size_t got = mig_device_arc_log(d, from, to, 16);
    if (want < 0) {
        mig_err_free(err);
        if (r >= 0 || got)
            fail(c, "invalid-state-refused", "%s -> %s was executed; expected EINVAL",
                 mig_dev_state_name(cur), mig_dev_state_name(tgt));
        goto out;
    }
    if (r < 0) {
        fail_err(c, "arc-table", err, "request");
        goto out;
    }
    bool same = got == n;
    for (size_t i = 0; same && i < n; i++)
        same = to[i] == path[i];
    err = NULL;
    if (!same || be->ops->get_state(be, &real, &err) < 0 || real != tgt) {
        mig_err_free(err);
        fail(c, "arc-table", "%s -> %s executed %zu arc(s), expected %zu; device reports %s",
             mig_dev_state_name(cur), mig_dev_state_name(tgt), got, n, mig_dev_state_name(real));
    }
out:
    free(stream.p);
    mig_device_free(d);
    mig_device_free(src);
    sb_free(sb);
}

static void case_invalid_values(Ctx *c, const Case *k)
{
    Sandbox *sb = open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *d = open_dev(c, sb, k->fset, 1, SMALL_MEM);
    if (d) {
        MigDevBackend *be = mig_device_backend(d);
        const uint32_t bad[] = {8, 0xabcd, 0xffffffffu, MIG_DEV_ERROR};
        for (size_t i = 0; i < MIG_ARRAY_SIZE(bad); i++) {
            int r = be->ops->arc(be, (MigDevState)bad[i], NULL);
            MigDevState real = MIG_DEV_ERROR;
            be->ops->get_state(be, &real, NULL);
            if (r >= 0 || real != MIG_DEV_RUNNING) {
                fail(c, "invalid-state-refused",
                     "set_state(%u) from RUNNING returned %s, device now %s", bad[i],
                     mig_errno_name(r), mig_dev_state_name(real));
                break;
            }
        }
        mig_device_free(d);
    }
    sb_free(sb);
}

static void case_precopy(Ctx *c, const Case *k)
{
    Sandbox *sb = open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *d = open_dev(c, sb, k->fset, 3, SMALL_MEM);
    if (!d || !hooks(c, d))
        goto out;
    MigDevBackend *be = mig_device_backend(d);
    uint64_t ini, dirty, last;
    MigErr *err = NULL;
    int r = be->ops->precopy_info(be, &ini, &dirty, &err);
    mig_err_free(err);
    if (r != -EINVAL) {
        fail(c, "precopy-info", "PRECOPY_INFO in RUNNING returned %s, expected EINVAL",
             mig_errno_name(r));
        goto out;
    }
    if (!set_state(c, d, MIG_DEV_PRE_COPY, "arc-table"))
        goto out;
    err = NULL;
    if (mig_device_precopy_info(d, &ini, &dirty, &err) < 0) {
        fail_err(c, "precopy-info", err, "precopy_info");
        goto out;
    }
    if (dirty != 0) {
        fail(c, "pending-reaches-zero",
             "a new session reports %llu dirty bytes; pending dirty data starts at 0",
             (unsigned long long)dirty);
        goto out;
    }
    if (ini == 0) {
        fail(c, "precopy-info", "a new session reports initial %llu, dirty %llu",
             (unsigned long long)ini, (unsigned long long)dirty);
        goto out;
    }
    last = ini;
    uint8_t buf[3000];
    for (;;) {
        err = NULL;
        ssize_t n = mig_device_read(d, buf, sizeof(buf), &err);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            fail_err(c, "read-end-codes", err, "read");
            goto out;
        }
        if (mig_device_precopy_info(d, &ini, &dirty, NULL) < 0 || ini > last) {
            fail(c, "precopy-info", "initial_bytes grew from %llu to %llu",
                 (unsigned long long)last, (unsigned long long)ini);
            goto out;
        }
        last = ini;
    }
    if (mig_device_precopy_info(d, &ini, &dirty, NULL) < 0 || ini + dirty != 0) {
        fail(c, "pending-reaches-zero",
             "drained PRE_COPY with the guest idle still reports initial %llu, dirty %llu",
             (unsigned long long)ini, (unsigned long long)dirty);
        goto out;
    }
    if (be->ops->guest_run(be, 4, NULL) < 0 || mig_device_precopy_info(d, &ini, &dirty, NULL) < 0 ||
        dirty == 0 || ini != 0) {
        fail(c, "precopy-info", "after guest writes: initial %llu, dirty %llu (dirty must rise)",
             (unsigned long long)ini, (unsigned long long)dirty);
        goto out;
    }
    ssize_t rr = drain(c, d, NULL, 0, "read-end-codes");
    if (rr > 0 || rr == 0)
        fail(c, "read-end-codes", "PRE_COPY read returned 0 (end) instead of ENOMSG");
out:
    mig_device_free(d);
    sb_free(sb);
}

static void case_stop_copy_end(Ctx *c, const Case *k)
{
    Sandbox *sb = open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *d = open_dev(c, sb, k->fset, 4, SMALL_MEM);
    if (!d)
        goto out;
    uint64_t est = 0;
    MigErr *err = NULL;
    if (mig_device_data_size(d, &est, &err) < 0) {
        fail_err(c, "arc-table", err, "data_size");
        goto out;
    }
    mig_device_set_stop_copy_limit(d, MIG_MAX(est * 4, (uint64_t)1 << 20));
    if (!set_state(c, d, MIG_DEV_STOP, "arc-table") ||
        !set_state(c, d, MIG_DEV_STOP_COPY, "arc-table"))
        goto out;
    if (drain(c, d, NULL, 0, "pending-reaches-zero") != 0)
        goto out;
    uint8_t b[64];
    for (int i = 0; i < 3; i++) {
        err = NULL;
        ssize_t n = mig_device_read(d, b, sizeof(b), &err);
        if (n != 0) {
            fail_err(c, "pending-reaches-zero", err, "read after the end");
            if (n > 0)
                fail(c, "pending-reaches-zero", "read after the end returned %zd bytes", n);
            goto out;
        }
        mig_err_free(err);
    }
    set_state(c, d, MIG_DEV_STOP, "arc-table");
out:
    mig_device_free(d);
    sb_free(sb);
}

static void case_read_sizes(Ctx *c, const Case *k)
{
    Sandbox *sb = open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *src = open_dev(c, sb, k->fset, 5, SMALL_MEM);
    MigDevice *dst = open_dev(c, sb, k->fset, 6, SMALL_MEM);
    if (!src || !dst || !hooks(c, src))
        goto out;
    Buf s = {0};
    /* tiny and odd sizes: any record boundary falls inside a read */
    if (save(c, src, &s, 8, 97)) {
        MigErr *err = NULL;
        uint64_t a, b;
        if (load(c, dst, s.p, s.len, false, &err) < 0)
            fail_err(c, "round-trip", err, "resume");
        else if (digest(c, src, &a) && digest(c, dst, &b) && a != b)
            fail(c, "round-trip", "state read in small pieces resumes differently");
    }
    free(s.p);
out:
    mig_device_free(src);
    mig_device_free(dst);
    sb_free(sb);
}

static void case_round_trip(Ctx *c, const Case *k)
{
    Sandbox *sb = open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *src = open_dev(c, sb, k->fset, 7, 0);
    MigDevice *dst = open_dev(c, sb, k->fset, 8, 0);
    if (src && dst && hooks(c, src)) {
        mig_device_backend(src)->ops->guest_run(mig_device_backend(src), 500, NULL);
        migrate(c, src, dst, 300);
    }
    mig_device_free(src);
    mig_device_free(dst);
    sb_free(sb);
}

enum { REJ_TRUNCATED, REJ_FLIPPED, REJ_CONCAT };

static void case_resume_rejects(Ctx *c, const Case *k)
{
    Sandbox *sb = open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *src = open_dev(c, sb, MIG_DEV_F_STOP_COPY, 9, SMALL_MEM);
    MigDevice *dst = open_dev(c, sb, MIG_DEV_F_STOP_COPY, 10, SMALL_MEM);
    Buf s = {0};
    if (!src || !dst || !save(c, src, &s, 0, 0))
        goto out;
    /* the variants: truncations (the short ones all, then spread and
     * random), single flipped bytes, or the stream twice */
    size_t cuts[160], ncuts = 0;
    if (k->a == REJ_CONCAT) {
        cuts[ncuts++] = 0;
    } else {
        for (size_t i = 0; i < 48 && i < s.len; i++)
            cuts[ncuts++] = i;
        for (size_t i = 1; i <= 48; i++)
            cuts[ncuts++] = s.len - MIG_MIN(i, s.len);
        while (ncuts < MIG_ARRAY_SIZE(cuts))
            cuts[ncuts++] = (size_t)mig_prng_below(&c->prng, s.len);
    }
    for (size_t i = 0; i < ncuts; i++) {
        Buf v = {0};
        const char *what;
        char desc[96];
        if (k->a == REJ_TRUNCATED) {
            buf_add(&v, s.p, cuts[i]);
            snprintf(desc, sizeof(desc), "stream truncated to %zu of %zu bytes", cuts[i], s.len);
        } else if (k->a == REJ_FLIPPED) {
            buf_add(&v, s.p, s.len);
            v.p[cuts[i]] ^= 0x10;
            snprintf(desc, sizeof(desc), "stream with byte %zu of %zu flipped", cuts[i], s.len);
        } else {
            buf_add(&v, s.p, s.len);
            buf_add(&v, s.p, s.len);
            snprintf(desc, sizeof(desc), "two streams back to back (%zu bytes)", v.len);
        }
        what = desc;
        MigErr *err = NULL;
        int r = load(c, dst, v.p, v.len, false, &err);
        free(v.p);
        if (c->res->st == ST_FAIL) {
            mig_err_free(err);
            break;
        }
        if (err && strcmp(classify(err, "x"), "x") != 0) {
            fail_err(c, "resume-validates", err, what);
            break;
        }
        mig_err_free(err);
        MigDevState st = mig_device_state(dst);
        if (r >= 0 || (st != MIG_DEV_RESUMING && st != MIG_DEV_ERROR)) {
            fail(c, "resume-validates", "%s: RESUMING -> STOP %s; device is %s", what,
                 r >= 0 ? "succeeded" : "failed", mig_dev_state_name(st));
            break;
        }
        err = NULL;
        if (mig_device_reset(dst, &err) < 0) {
            fail_err(c, "reset-leaves-error", err, "reset after a refused resume");
            break;
        }
    }
out:
    free(s.p);
    mig_device_free(src);
    mig_device_free(dst);
    sb_free(sb);
}

static void case_abort(Ctx *c, const Case *k)
{
    MigDevState at = (MigDevState)k->a;
    uint32_t f = k->fset;
    Sandbox *sb = open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *d = open_dev(c, sb, f, 11, SMALL_MEM);
    MigDevice *dst = open_dev(c, sb, f, 12, SMALL_MEM);
    if (!d || !dst || !hooks(c, d))
        goto out;
    MigDevBackend *be = mig_device_backend(d);
    be->ops->guest_run(be, 40, NULL);
    if (at == MIG_DEV_RESUMING) {
        /* a destination aborted mid-load is reset and usable again */
        if (!set_state(c, d, MIG_DEV_RESUMING, "arc-table"))
            goto out;
        uint8_t junk[100] = {0};
        mig_device_write(d, junk, sizeof(junk), NULL);
        MigErr *err = NULL;
        if (mig_device_abort(d, &err) < 0 || mig_device_state(d) != MIG_DEV_RUNNING) {
            fail_err(c, "reset-leaves-error", err, "abort of RESUMING");
            goto out;
        }
        mig_err_free(err);
        migrate(c, d, dst, 20);
        goto out;
    }
    if (at == MIG_DEV_PRE_COPY || at == MIG_DEV_PRE_COPY_P2P || at == MIG_DEV_STOP_COPY) {
        if (f & MIG_DEV_F_PRE_COPY) {
            if (!set_state(c, d, MIG_DEV_PRE_COPY, "arc-table"))
                goto out;
            uint8_t b[5000];
            mig_device_read(d, b, sizeof(b), NULL);
            be->ops->guest_run(be, 40, NULL); /* writes during the session */
        }
    }
    if (!set_state(c, d, at, "arc-table"))
        goto out;
    if (at == MIG_DEV_STOP_COPY) {
        uint8_t b[5000];
        mig_device_read(d, b, sizeof(b), NULL);
    }
    uint64_t before, after;
    if (!digest(c, d, &before))
        goto out;
    MigErr *err = NULL;
    if (mig_device_abort(d, &err) < 0) {
        fail_err(c, "abort-keeps-state", err, "abort");
        goto out;
    }
    if (mig_device_state(d) != MIG_DEV_RUNNING) {
        fail(c, "abort-keeps-state", "after abort the device is %s",
             mig_dev_state_name(mig_device_state(d)));
        goto out;
    }
    if (!digest(c, d, &after))
        goto out;
    if (before != after) {
        fail(c, "abort-keeps-state", "aborting from %s changed the device state",
             mig_dev_state_name(at));
        goto out;
    }
    /* nothing lost: a new session carries everything */
    if (!migrate(c, d, dst, 20) && c->res->st == ST_FAIL)
        c->res->rule = strcmp(c->res->rule, "round-trip") ? c->res->rule : "abort-keeps-state";
out:
    mig_device_free(d);
    mig_device_free(dst);
    sb_free(sb);
}

static void case_error_reset(Ctx *c, const Case *k)
{
    Sandbox *sb = open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *d = open_dev(c, sb, k->fset, 13, SMALL_MEM);
    MigDevice *dst = open_dev(c, sb, k->fset, 14, SMALL_MEM);
    if (!d || !dst)
        goto out;
    MigDevBackend *be = mig_device_backend(d);
    if (be->ops->force_error(be, NULL) == -ENOTSUP) {
        skip(c, "the plugin has no force_error test hook");
        goto out;
    }
    MigDevState real;
    for (int s = 0; s < MIG_DEV_STATE__COUNT; s++) {
        int r = be->ops->arc(be, (MigDevState)s, NULL);
        if (r >= 0 || be->ops->get_state(be, &real, NULL) < 0 || real != MIG_DEV_ERROR) {
            fail(c, "error-refuses-arcs", "in ERROR the device accepted the arc to %s",
                 mig_dev_state_name((MigDevState)s));
            goto out;
        }
    }
    MigErr *err = NULL;
    if (mig_device_reset(d, &err) < 0) {
        fail_err(c, "reset-leaves-error", err, "reset");
        goto out;
    }
    if (be->ops->get_state(be, &real, NULL) < 0 || real != MIG_DEV_RUNNING) {
        fail(c, "reset-leaves-error", "after reset the device is %s", mig_dev_state_name(real));
        goto out;
    }
    if (hooks(c, d))
        migrate(c, d, dst, 10);
out:
    mig_device_free(d);
    mig_device_free(dst);
    sb_free(sb);
}

static void case_fault(Ctx *c, const Case *k)
{
    uint32_t op = (uint32_t)k->a;
    Sandbox *sb = open_sb(c, c->dev_path);
    if (!sb)
        return;
    MigDevice *src = open_dev(c, sb, k->fset, 15, SMALL_MEM);
    MigDevice *dst = open_dev(c, sb, k->fset, 16, SMALL_MEM);
    if (!src || !dst || !hooks(c, src))
        goto out;
    mig_device_backend(src)->ops->guest_run(mig_device_backend(src), 30, NULL);
    uint64_t before, after;
    if (!digest(c, src, &before))
        goto out;
    /* arm: the next call of `op` fails with EIO (not reaching the plugin) */
    sb_call(sb, SB_FAULT, 0, op, EIO, NULL, 0, NULL, NULL, 0, NULL);
    Result saved = *c->res;
    bool ok = migrate(c, src, dst, 0);
    bool failed_as_expected = !ok && c->res->st == ST_FAIL &&
                              strstr(c->res->msg, mig_errno_name(-EIO)) != NULL;
    char first[512];
    snprintf(first, sizeof(first), "%s", c->res->msg);
    if (!failed_as_expected && c->res->st == ST_FAIL && strcmp(c->res->rule, "round-trip") != 0)
        goto out; /* another rule broke first: report that one */
    *c->res = saved;
    if (ok) {
        /* the armed callback was not used on this path: nothing to check */
        goto out;
    }
    if (!failed_as_expected) {
        fail(c, "fault-recovery", "an EIO from %s was reported as: %s", sb_op_names[op], first);
        goto out;
    }
    /* back out like the engine does: source to RUNNING, destination reset */
    MigErr *err = NULL;
    if (mig_device_abort(src, &err) < 0) {
        fail_err(c, "fault-recovery", err, "abort after the failure");
        goto out;
    }
    err = NULL;
    if (mig_device_abort(dst, &err) < 0) {
        fail_err(c, "fault-recovery", err, "destination reset after the failure");
        goto out;
    }
    if (!digest(c, src, &after))
        goto out;
    if (before != after) {
        fail(c, "abort-keeps-state", "after a failed %s and abort the source state changed",
             sb_op_names[op]);
        goto out;
    }
    /* and the migration retried succeeds */
    if (!migrate(c, src, dst, 10) && c->res->st == ST_FAIL && !strcmp(c->res->rule, "round-trip"))
        c->res->rule = "fault-recovery";
out:
    mig_device_free(src);
    mig_device_free(dst);
    sb_free(sb);
}

static void case_peer(Ctx *c, const Case *k)
{
    const char *sp = k->a ? c->peer_path : c->dev_path;
    const char *dp = k->a ? c->dev_path : c->peer_path;
    uint32_t sf = k->a ? c->peer_features : c->features;
    uint32_t df = k->a ? c->features : c->peer_features;
    Sandbox *ss = open_sb(c, sp);
    Sandbox *ds = ss ? open_sb(c, dp) : NULL;
    MigDevice *src = ds ? open_dev(c, ss, sf, 17, 0) : NULL;
    MigDevice *dst = src ? open_dev(c, ds, df, 18, 0) : NULL;
    if (src && dst && hooks(c, src)) {
        mig_device_backend(src)->ops->guest_run(mig_device_backend(src), 200, NULL);
        migrate(c, src, dst, 100);
    }
    mig_device_free(src);
    mig_device_free(dst);
    sb_free(ss);
    sb_free(ds);
}

/* ---- case list ---- */

static const uint32_t fsets[] = {MIG_DEV_F_STOP_COPY, MIG_DEV_F_STOP_COPY | MIG_DEV_F_P2P,
                                 MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY, MIG_DEV_F_ALL};

static const char *fset_tag(uint32_t f)
{
    switch (f) {
    case MIG_DEV_F_STOP_COPY:
        return "SC";
    case MIG_DEV_F_STOP_COPY | MIG_DEV_F_P2P:
        return "SC+P2P";
    case MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY:
        return "SC+PRE";
    default:
        return "SC+P2P+PRE";
    }
}

static Case *add(Case **v, size_t *n, void (*fn)(Ctx *, const Case *), uint32_t fset, int a,
                 int b, const char *fmt, ...) MIG_PRINTF(7, 8);
static Case *add(Case **v, size_t *n, void (*fn)(Ctx *, const Case *), uint32_t fset, int a,
                 int b, const char *fmt, ...)
{
    *v = mig_realloc(*v, (*n + 1) * sizeof(**v));
    Case *k = &(*v)[(*n)++];
    memset(k, 0, sizeof(*k));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->name, sizeof(k->name), fmt, ap);
    va_end(ap);
    k->fn = fn;
    k->fset = fset;
    k->a = a;
    k->b = b;
    return k;
}

static size_t build_cases(Case **v, uint32_t features, const char *peer_stem, const char *stem)
{
    size_t n = 0;
    add(v, &n, case_load, features, 0, 0, "load");
    for (size_t i = 0; i < MIG_ARRAY_SIZE(fsets); i++) {
        uint32_t f = fsets[i];
        if (f & ~features)
            continue;
        for (int cur = 0; cur < MIG_DEV_STATE__COUNT; cur++) {
            if (cur != MIG_DEV_ERROR && !mig_dev_state_supported(cur, f))
                continue;
            for (int tgt = 0; tgt < MIG_DEV_STATE__COUNT; tgt++)
                add(v, &n, case_transition, f, cur, tgt, "transition.%s.%s.%s", fset_tag(f),
                    mig_dev_state_name(cur), mig_dev_state_name(tgt));
        }
    }
    add(v, &n, case_invalid_values, features, 0, 0, "invalid-values");
    for (size_t i = 0; i < MIG_ARRAY_SIZE(fsets); i++) {
        uint32_t f = fsets[i];
        if (f & ~features)
            continue;
        if (f & MIG_DEV_F_PRE_COPY)
            add(v, &n, case_precopy, f, 0, 0, "precopy.%s", fset_tag(f));
        add(v, &n, case_stop_copy_end, f, 0, 0, "stop-copy-end.%s", fset_tag(f));
        add(v, &n, case_read_sizes, f, 0, 0, "read-sizes.%s", fset_tag(f));
        add(v, &n, case_round_trip, f, 0, 0, "round-trip.%s", fset_tag(f));
    }
    add(v, &n, case_resume_rejects, features, REJ_TRUNCATED, 0, "resume-rejects.truncated");
    add(v, &n, case_resume_rejects, features, REJ_FLIPPED, 0, "resume-rejects.flipped");
    add(v, &n, case_resume_rejects, features, REJ_CONCAT, 0, "resume-rejects.concatenated");
    for (int s = 1; s < MIG_DEV_STATE__COUNT; s++)
        if (mig_dev_state_supported(s, features))
            add(v, &n, case_abort, features, s, 0, "abort.%s", mig_dev_state_name(s));
    add(v, &n, case_error_reset, features, 0, 0, "error-reset");
    const uint32_t fault_ops[] = {SB_ARC, SB_READ, SB_WRITE, SB_PRECOPY_INFO, SB_DATA_SIZE};
    for (size_t i = 0; i < MIG_ARRAY_SIZE(fault_ops); i++) {
        if (fault_ops[i] == SB_PRECOPY_INFO && !(features & MIG_DEV_F_PRE_COPY))
            continue;
        add(v, &n, case_fault, features, (int)fault_ops[i], 0, "fault.%s",
            sb_op_names[fault_ops[i]]);
    }
    if (peer_stem) {
        add(v, &n, case_peer, features, 0, 0, "peer.%s-to-%s", stem, peer_stem);
        add(v, &n, case_peer, features, 1, 0, "peer.%s-to-%s", peer_stem, stem);
    }
    return n;
}

static bool selected(const char *name, const char *pat)
{
    if (!pat)
        return true;
    return !strcmp(name, pat) || !fnmatch(pat, name, 0);
}

/* ---- reports ---- */

static void xml_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

static int mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

static char *stem_of(const char *path)
{
    const char *b = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char *s = mig_strdup(b);
    char *dot = strstr(s, ".so");
    if (dot)
        *dot = 0;
    return s;
}

static void usage(void)
{
    fprintf(stderr, "usage: migcert certify --device X.so [--peer Y.so] [--out DIR] [-k CASE] "
                    "[--timeout SECONDS] [--list]\n");
}

int cmd_certify(int argc, char **argv)
{
    const char *dev = NULL, *peer = NULL, *out = NULL, *pat = NULL;
    unsigned timeout_s = 10;
    bool list = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--device") && v)
            dev = argv[++i];
        else if (!strcmp(a, "--peer") && v)
            peer = argv[++i];
        else if (!strcmp(a, "--out") && v)
            out = argv[++i];
        else if (!strcmp(a, "-k") && v)
            pat = argv[++i];
        else if (!strcmp(a, "--timeout") && v) {
            int t = atoi(argv[++i]);
            timeout_s = t > 0 ? (unsigned)t : 1;
        } else if (!strcmp(a, "--list"))
            list = true;
        else {
            usage();
            return 2;
        }
    }
    if (!dev) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char *stem = stem_of(dev);
    char *peer_stem = peer ? stem_of(peer) : NULL;
    char outdir[PATH_MAX];
    snprintf(outdir, sizeof(outdir), "%s", out ? out : "");
    if (!out)
        snprintf(outdir, sizeof(outdir), "reports/out/certify-%s", stem);

    /* what the plugin offers decides the case list */
    MigErr *err = NULL;
    Sandbox *probe = sb_spawn(dev, timeout_s, &err);
    bool loads = probe && !probe->dead && !err;
    uint32_t features = loads ? probe->features : MIG_DEV_F_STOP_COPY;
    if (probe && probe->protocol == MIGCERT_PROTOCOL_V1)
        features = MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY;
    char plugin_desc[256];
    snprintf(plugin_desc, sizeof(plugin_desc), "%s %s, protocol v%u, features %s",
             probe && probe->name[0] ? probe->name : stem, probe ? probe->version : "",
             probe ? probe->protocol : 0, mig_dev_features_name(features));
    sb_free(probe);
    mig_err_free(err);
    uint32_t peer_features = MIG_DEV_F_STOP_COPY;
    if (peer) {
        err = NULL;
        Sandbox *pp = sb_spawn(peer, timeout_s, &err);
        if (pp && !pp->dead && !err)
            peer_features = pp->protocol == MIGCERT_PROTOCOL_V1
                                ? (MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY)
                                : pp->features;
        sb_free(pp);
        mig_err_free(err);
    }

    Case *cases = NULL;
    size_t ncases = build_cases(&cases, features, peer_stem, stem);
    if (!loads)
        ncases = 1; /* only "load": nothing else can run */
    if (list) {
        for (size_t i = 0; i < ncases; i++)
            if (selected(cases[i].name, pat))
                printf("%s\n", cases[i].name);
        free(cases);
        free(stem);
        free(peer_stem);
        return 0;
    }
    bool any = false;
    for (size_t i = 0; i < ncases; i++)
        any |= selected(cases[i].name, pat);
    if (pat && !any) {
        fprintf(stderr, "migcert certify: no case matches '%s' (--list shows them)\n", pat);
        free(cases);
        free(stem);
        free(peer_stem);
        return 2;
    }

    Result *res = mig_malloc0(ncases * sizeof(*res));
    size_t npass = 0, nfail = 0, nskip = 0;
    char repro_base[PATH_MAX * 2];
    /* main.c passes argv + 1: argv[-1] is how migcert itself was invoked */
    snprintf(repro_base, sizeof(repro_base), "%s certify --device %s%s%s", argv[-1] ? argv[-1] : "migcert",
             dev, peer ? " --peer " : "", peer ? peer : "");
    fprintf(stderr, "migcert certify: %s (%s)\n", dev, plugin_desc);
    for (size_t i = 0; i < ncases; i++) {
        res[i].st = ST_PASS;
        if (!selected(cases[i].name, pat)) {
            res[i].st = ST_SKIP;
            snprintf(res[i].msg, sizeof(res[i].msg), "not selected");
            continue;
        }
        Ctx c = {dev, peer, timeout_s, features, peer_features, &res[i], {{0}}};
        mig_prng_seed(&c.prng, 0x5eed ^ (uint64_t)i);
        cases[i].fn(&c, &cases[i]);
        if (res[i].st == ST_FAIL) {
            nfail++;
            fprintf(stderr, "FAIL %s [%s]: %s\nREPRO: %s -k %s\n", cases[i].name, res[i].rule,
                    res[i].msg, repro_base, cases[i].name);
        } else if (res[i].st == ST_SKIP) {
            nskip++;
        } else {
            npass++;
        }
    }

    int rc = mkdir_p(outdir);
    if (rc < 0) {
        fprintf(stderr, "migcert certify: cannot create %s: %s\n", outdir, strerror(-rc));
    } else {
        char path[PATH_MAX + 32];
        /* report.txt */
        snprintf(path, sizeof(path), "%s/report.txt", outdir);
        FILE *f = fopen(path, "w");
        if (f) {
            fprintf(f, "migcert device certification\nplugin: %s (%s)\n", dev, plugin_desc);
            if (peer)
                fprintf(f, "peer: %s\n", peer);
            fprintf(f, "migcert ABI version: %u\n\n", MIGCERT_DEVICE_ABI_VERSION);
            for (size_t i = 0; i < ncases; i++) {
                if (res[i].st == ST_SKIP && !strcmp(res[i].msg, "not selected"))
                    continue;
                fprintf(f, "%s %s", res[i].st == ST_PASS ? "PASS" : res[i].st == ST_FAIL ? "FAIL" : "SKIP",
                        cases[i].name);
                if (res[i].st == ST_FAIL)
                    fprintf(f, "\n  rule %s: %s\n  %s\n  REPRO: %s -k %s", res[i].rule,
                            rule_text(res[i].rule), res[i].msg, repro_base, cases[i].name);
                else if (res[i].st == ST_SKIP)
                    fprintf(f, " (%s)", res[i].msg);
                fputc('\n', f);
            }
            fprintf(f, "\n%zu passed, %zu failed, %zu skipped\n", npass, nfail, nskip);
            fclose(f);
        }
        /* report.json */
        json_t *root = json_object();
        json_object_set_new(root, "plugin", json_string(dev));
        json_object_set_new(root, "description", json_string(plugin_desc));
        json_object_set_new(root, "abi_version", json_integer(MIGCERT_DEVICE_ABI_VERSION));
        if (peer)
            json_object_set_new(root, "peer", json_string(peer));
        json_t *arr = json_array(), *broken = json_array();
        for (size_t i = 0; i < ncases; i++) {
            if (res[i].st == ST_SKIP && !strcmp(res[i].msg, "not selected"))
                continue;
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(cases[i].name));
            json_object_set_new(o, "status", json_string(res[i].st == ST_PASS   ? "pass"
                                                         : res[i].st == ST_FAIL ? "fail"
                                                                                : "skip"));
            if (res[i].st != ST_PASS)
                json_object_set_new(o, "message", json_string(res[i].msg));
            if (res[i].st == ST_FAIL) {
                char repro[PATH_MAX * 2 + 128];
                snprintf(repro, sizeof(repro), "%s -k %s", repro_base, cases[i].name);
                json_object_set_new(o, "rule", json_string(res[i].rule));
                json_object_set_new(o, "rule_text", json_string(rule_text(res[i].rule)));
                json_object_set_new(o, "repro", json_string(repro));
                bool seen = false;
                size_t j;
                json_t *x;
                json_array_foreach(broken, j, x) seen |= !strcmp(json_string_value(x), res[i].rule);
                if (!seen)
                    json_array_append_new(broken, json_string(res[i].rule));
            }
            json_array_append_new(arr, o);
        }
        json_object_set_new(root, "cases", arr);
        json_object_set_new(root, "rules_broken", broken);
        json_object_set_new(root, "passed", json_integer((json_int_t)npass));
        json_object_set_new(root, "failed", json_integer((json_int_t)nfail));
        json_object_set_new(root, "skipped", json_integer((json_int_t)nskip));
        snprintf(path, sizeof(path), "%s/report.json", outdir);
        json_dump_file(root, path, JSON_INDENT(2));
        json_decref(root);
        /* report.junit.xml */
        snprintf(path, sizeof(path), "%s/report.junit.xml", outdir);
        f = fopen(path, "w");
        if (f) {
            fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n"
                       "<testsuite name=\"certify-%s\" tests=\"%zu\" failures=\"%zu\" "
                       "skipped=\"%zu\">\n",
                    stem, npass + nfail + nskip, nfail, nskip);
            for (size_t i = 0; i < ncases; i++) {
                if (res[i].st == ST_SKIP && !strcmp(res[i].msg, "not selected"))
                    continue;
                fprintf(f, "  <testcase classname=\"certify.%s\" name=\"", stem);
                xml_escape(f, cases[i].name);
                fputs("\"", f);
                if (res[i].st == ST_PASS) {
                    fputs("/>\n", f);
                    continue;
                }
                fputs(">\n", f);
                if (res[i].st == ST_SKIP) {
                    fputs("    <skipped message=\"", f);
                    xml_escape(f, res[i].msg);
                    fputs("\"/>\n", f);
                } else {
                    fprintf(f, "    <failure message=\"rule %s: ", res[i].rule);
                    xml_escape(f, res[i].msg);
                    fputs("\">", f);
                    xml_escape(f, rule_text(res[i].rule));
                    fprintf(f, "\nREPRO: ");
                    xml_escape(f, repro_base);
                    fprintf(f, " -k ");
                    xml_escape(f, cases[i].name);
                    fputs("</failure>\n", f);
                }
                fputs("  </testcase>\n", f);
            }
            fputs("</testsuite>\n</testsuites>\n", f);
            fclose(f);
        }
    }
    printf("certify %s: report in %s\n%zu passed, %zu failed\n", stem, outdir, npass, nfail);
    free(res);
    free(cases);
    free(stem);
    free(peer_stem);
    return nfail ? 1 : 0;
}
