/*
 * cmd-certify.c - `migcert certify --device X.so [--peer Y.so] [--out DIR]
 * [-k CASE] [--timeout SECONDS] [--budget SECONDS] [--list]`: the device
 * conformance suite for a vendor plugin (include/migcert/device.h), with a
 * certificate report.
 *
 * Sandbox: every case loads the plugin in a child process (fork) and drives
 * it over a socketpair with a small request/response protocol; the parent
 * waits for each answer with poll() and a timeout (--timeout, default 10 s
 * per call).  A plugin that crashes or hangs fails that case under the rule
 * plugin-crash or plugin-timeout ("plugin X.so crashed (signal 11) in
 * set_state", "plugin X.so timed out after 10s in read"), whatever the case
 * was checking when it happened.  Once a plugin has hung in a case, the
 * later cases with that plugin are not run ("not run: plugin X.so hung
 * earlier in case C"): each would only wait for its own timeout.  --budget
 * bounds the whole run: cases that would start after it are not run either.
 * The child runs the engine's own backends (the v2 table or the v1 adapter,
 * impl/device) over a copy of the plugin's table whose callbacks can be
 * made to fail (fault.<callback>), and the parent drives them through
 * MigDevice exactly as the engine does, so the checks of impl/device apply
 * too.  This is harness code: blocking I/O with poll timeouts is fine here.
 *
 * Cases (each names the rule it checks; -k selects by exact name when one
 * case has that name, else by glob, else by substring):
 *   load                               the plugin loads, ABI version known
 *   vmstate-description                its vmstate description is absent or
 *                                      a -dump-vmstate entry
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
 *   fault.<callback>                   a failure injected into each callback
 *                                      the plugin has (create, reset,
 *                                      get_state, the v2 or the v1 ones):
 *                                      it must fire, be reported (or
 *                                      absorbed intact), and a retried
 *                                      migration succeeds
 *   peer.<X>-to-<Y>, peer.<Y>-to-<X>   with --peer: cross round trips (the
 *                                      same stem twice: <Y> is <stem>-peer)
 * Reports: report.txt, report.json, report.junit.xml in DIR (default
 * reports/out/certify-<name>).  Exit 0 all passed, 1 a case failed or was
 * not run, 2 usage, 3 the report could not be written.
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
    SB_FAULT,        /* arm: the next call of plugin callback `a` (CbId) fails */
    SB_FAULT_STATUS, /* how many armed failures fired; disarms */
    SB_VMSTATE,      /* the table's vmstate_json (ret 1 and the text, or 0) */
    SB__COUNT
};

static const char *const sb_op_names[SB__COUNT] = {
    [SB_HELLO] = "load",          [SB_CREATE] = "create",       [SB_DESTROY] = "destroy",
    [SB_ARC] = "set_state",       [SB_GET_STATE] = "get_state", [SB_READ] = "read",
    [SB_WRITE] = "write",         [SB_PRECOPY_INFO] = "precopy_info",
    [SB_DATA_SIZE] = "data_size", [SB_RESET] = "reset",         [SB_GUEST_RUN] = "guest_run",
    [SB_DIGEST] = "digest",       [SB_FORCE_ERROR] = "force_error", [SB_FAULT] = "fault",
    [SB_FAULT_STATUS] = "fault status", [SB_VMSTATE] = "vmstate description",
};

/* The plugin callbacks a fault can be injected into.  The child wraps the
 * plugin's own table, so the failure happens below the engine's backends
 * (below the v1 adapter too): the adapter and MigDevice see exactly what a
 * failing plugin would give them.  Callbacks without an error return fail
 * with a value that cannot be right: get_state a non-state, v1_pending_bytes
 * a count the device does not have. */
typedef enum CbId {
    CB_CREATE,
    CB_RESET,
    CB_GET_STATE,
    CB_SET_STATE,
    CB_READ,
    CB_WRITE,
    CB_PRECOPY_INFO,
    CB_DATA_SIZE,
    CB_V1_SET_STATE,
    CB_V1_PENDING_BYTES,
    CB_V1_STAGE,
    CB_V1_RESUME_CHUNK,
    CB__COUNT
} CbId;

static const char *const cb_names[CB__COUNT] = {
    [CB_CREATE] = "create",
    [CB_RESET] = "reset",
    [CB_GET_STATE] = "get_state",
    [CB_SET_STATE] = "set_state",
    [CB_READ] = "read",
    [CB_WRITE] = "write",
    [CB_PRECOPY_INFO] = "precopy_info",
    [CB_DATA_SIZE] = "data_size",
    [CB_V1_SET_STATE] = "v1_set_state",
    [CB_V1_PENDING_BYTES] = "v1_pending_bytes",
    [CB_V1_STAGE] = "v1_stage",
    [CB_V1_RESUME_CHUNK] = "v1_resume_chunk",
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
    uint32_t callbacks; /* bit CbId: the plugin has that callback */
    /* where the case wants to hear about a death (NULL: nobody) */
    char *death_sink;     /* 512 bytes; the first death's message */
    bool *hung;           /* set when a call timed out */
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
    SbResp r;
    memset(&r, 0, sizeof(r)); /* padding too: the whole struct is sent */
    r.ret = ret;
    r.x = x;
    r.y = y;
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

/* Child-process state for the wrapped table (one plugin per child). */
static struct {
    const MigcertDevicePlugin *real;
    MigcertDevicePlugin table;
    int armed; /* CbId, or -1 */
    unsigned fired;
} chaos = {.armed = -1};

static bool fire(CbId id)
{
    if (chaos.armed != (int)id)
        return false;
    chaos.armed = -1;
    chaos.fired++;
    return true;
}

static MigcertDevice *w_create(const MigcertDeviceConfig *cfg)
{
    if (fire(CB_CREATE)) {
        errno = EIO;
        return NULL;
    }
    return chaos.real->create(cfg);
}

static int w_reset(MigcertDevice *d) { return fire(CB_RESET) ? -EIO : chaos.real->reset(d); }

static uint32_t w_get_state(MigcertDevice *d)
{
    return fire(CB_GET_STATE) ? 0xdeadbeefu : chaos.real->get_state(d);
}

static int w_set_state(MigcertDevice *d, uint32_t st)
{
    return fire(CB_SET_STATE) ? -EIO : chaos.real->set_state(d, st);
}

static ssize_t w_read(MigcertDevice *d, void *buf, size_t len)
{
    return fire(CB_READ) ? -EIO : chaos.real->read(d, buf, len);
}

static ssize_t w_write(MigcertDevice *d, const void *buf, size_t len)
{
    return fire(CB_WRITE) ? -EIO : chaos.real->write(d, buf, len);
}

static int w_precopy_info(MigcertDevice *d, uint64_t *ini, uint64_t *dirty)
{
    return fire(CB_PRECOPY_INFO) ? -EIO : chaos.real->precopy_info(d, ini, dirty);
}

static int w_data_size(MigcertDevice *d, uint64_t *len)
{
    return fire(CB_DATA_SIZE) ? -EIO : chaos.real->data_size(d, len);
}

static int w_v1_set_state(MigcertDevice *d, uint32_t bits)
{
    return fire(CB_V1_SET_STATE) ? -EIO : chaos.real->v1_set_state(d, bits);
}

/* Sticky until SB_FAULT_STATUS: "more is pending" on every call, also once
 * the device has nothing left to stage (a one-off lie would fall where the
 * real count is non-zero too and change nothing). */
static uint64_t w_v1_pending_bytes(MigcertDevice *d)
{
    if (chaos.armed == CB_V1_PENDING_BYTES) {
        chaos.fired++;
        return (uint64_t)1 << 40;
    }
    return chaos.real->v1_pending_bytes(d);
}

static ssize_t w_v1_stage(MigcertDevice *d, const void **data)
{
    return fire(CB_V1_STAGE) ? -EIO : chaos.real->v1_stage(d, data);
}

static int w_v1_resume_chunk(MigcertDevice *d, const void *data, size_t size)
{
    return fire(CB_V1_RESUME_CHUNK) ? -EIO : chaos.real->v1_resume_chunk(d, data, size);
}

/* The plugin's table with every present callback wrapped; returns the
 * bitmask of present callbacks. */
static uint32_t wrap_table(const MigcertDevicePlugin *p)
{
    chaos.real = p;
    memset(&chaos.table, 0, sizeof(chaos.table));
    /* a table built against an older header may be shorter than ours */
    memcpy(&chaos.table, p, MIG_MIN((size_t)p->struct_size, sizeof(chaos.table)));
    MigcertDevicePlugin *t = &chaos.table;
    uint32_t m = 0;
#define WRAP(member, id, fn)                                                                  \
    do {                                                                                      \
        if (t->member) {                                                                      \
            t->member = fn;                                                                   \
            m |= 1u << (id);                                                                  \
        }                                                                                     \
    } while (0)
    WRAP(create, CB_CREATE, w_create);
    WRAP(reset, CB_RESET, w_reset);
    WRAP(get_state, CB_GET_STATE, w_get_state);
    WRAP(set_state, CB_SET_STATE, w_set_state);
    WRAP(read, CB_READ, w_read);
    WRAP(write, CB_WRITE, w_write);
    WRAP(precopy_info, CB_PRECOPY_INFO, w_precopy_info);
    WRAP(data_size, CB_DATA_SIZE, w_data_size);
    if (p->protocol == MIGCERT_PROTOCOL_V1) {
        WRAP(v1_set_state, CB_V1_SET_STATE, w_v1_set_state);
        WRAP(v1_pending_bytes, CB_V1_PENDING_BYTES, w_v1_pending_bytes);
        WRAP(v1_stage, CB_V1_STAGE, w_v1_stage);
        WRAP(v1_resume_chunk, CB_V1_RESUME_CHUNK, w_v1_resume_chunk);
    }
#undef WRAP
    return m;
}

static void child_main(int fd, const char *path)
{
    MigErr *err = NULL;
    void *handle = NULL;
    const MigcertDevicePlugin *p = mig_dev_plugin_load(path, &handle, &err);
    uint32_t callbacks = p ? wrap_table(p) : 0;
    const char *label = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const MigcertDevicePlugin *table = p ? &chaos.table : NULL;
    MigDevBackend *inst[SB_MAX_INST] = {0};
    uint8_t *buf = NULL;
    for (;;) {
        SbReq q;
        int code = -1;
        if (full_read_fd(fd, &q, sizeof(q)) < 0)
            code = 0;
        else if (q.len > SB_MAX_PAYLOAD)
            code = 4;
        if (code < 0) {
            free(buf);
            buf = malloc(MIG_MAX(q.len, (uint32_t)1));
            if (q.len && full_read_fd(fd, buf, q.len) < 0)
                code = 0;
        }
        if (code >= 0) {
            /* the parent hung up (or sent garbage): release everything so a
             * leak checker following the child sees nothing left */
            free(buf);
            for (size_t i = 0; i < SB_MAX_INST; i++)
                if (inst[i])
                    inst[i]->ops->free(inst[i]);
            mig_err_free(err);
            if (handle && p)
                mig_dev_plugin_close(handle);
            _exit(code);
        }
        if (q.op == SB_HELLO) {
            if (!p) {
                child_reply(fd, err ? err->code : -EINVAL, 0, 0, NULL, 0, err);
                continue;
            }
            char info[256];
            int n = snprintf(info, sizeof(info), "%s\n%s", p->name, p->version ? p->version : "");
            child_reply(fd, 0, p->features, p->protocol | (uint64_t)callbacks << 8, info,
                        (size_t)n, NULL);
            continue;
        }
        if (!p) {
            child_reply(fd, -ENODEV, 0, 0, NULL, 0, NULL);
            continue;
        }
        if (q.op == SB_FAULT) {
            chaos.armed = q.a < CB__COUNT ? (int)q.a : -1;
            chaos.fired = 0;
            child_reply(fd, 0, 0, 0, NULL, 0, NULL);
            continue;
        }
        if (q.op == SB_FAULT_STATUS) {
            child_reply(fd, chaos.fired, 0, 0, NULL, 0, NULL);
            chaos.armed = -1;
            continue;
        }
        if (q.op == SB_VMSTATE) {
            const char *j = p->vmstate_json;
            child_reply(fd, j != NULL, 0, 0, j, j ? strlen(j) : 0, NULL);
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
            MigDevBackend *b =
                i < SB_MAX_INST ? mig_dev_backend_plugin_new(table, &cfg, label, &err) : NULL;
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
    if (sb->death_sink && !sb->death_sink[0])
        snprintf(sb->death_sink, 512, "%s", msg);
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
    SbReq q;
    memset(&q, 0, sizeof(q)); /* padding too: the whole struct is sent */
    q.op = op;
    q.inst = inst;
    q.a = a;
    q.b = b;
    q.len = len;
    SbResp r;
    memset(&r, 0, sizeof(r));
    int rc = io_all(sb, true, &q, sizeof(q), deadline);
    if (rc == 0 && len)
        rc = io_all(sb, true, (void *)payload, len, deadline);
    if (rc == 0)
        rc = io_all(sb, false, &r, sizeof(r), deadline);
    if (rc == -ETIMEDOUT) {
        kill(sb->pid, SIGKILL);
        waitpid(sb->pid, NULL, 0);
        sb->pid = 0;
        if (sb->hung)
            *sb->hung = true;
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
    sb->protocol = (uint32_t)(r.y & 0xff);
    sb->callbacks = (uint32_t)(r.y >> 8);
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
    {"fault-reached",
     "the failure injected into a callback fires during the case (a case whose armed "
     "callback is never called proves nothing)"},
    {"vmstate-description",
     "the optional vmstate description is valid JSON holding one -dump-vmstate entry"},
    {"peer-compatible",
     "source and destination speak the same protocol: a v1 device's stream (transactions "
     "framed by the adapter) does not resume on a v2 device, nor the reverse"},
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

/* NOTRUN: the case was not started (the plugin hung earlier, or the time
 * budget is used up); it counts against the certificate like a failure. */
typedef enum { ST_PASS, ST_FAIL, ST_SKIP, ST_NOTRUN, ST__COUNT } Status;

static const char *const status_names[ST__COUNT] = {
    [ST_PASS] = "pass", [ST_FAIL] = "fail", [ST_SKIP] = "skip", [ST_NOTRUN] = "not-run"};

typedef struct Result {
    Status st;
    const char *rule;
    char msg[512];
    char note[256]; /* what a passing case saw, when worth reporting */
} Result;

typedef struct Ctx {
    const char *dev_path, *peer_path;
    unsigned timeout_s;
    uint32_t features; /* the plugin's */
    uint32_t peer_features;
    uint32_t callbacks, protocol, peer_protocol;
    Result *res;
    MigPrng prng;
    /* filled by the case's sandboxes: the first death, and hangs per plugin */
    char death[512];
    bool dev_hung, peer_hung;
} Ctx;

typedef struct Case {
    char name[96];
    void (*fn)(Ctx *c, const struct Case *k);
    uint32_t fset;
    int a, b;
    bool uses_peer;
} Case;

/* The rule a dead sandbox proves broken. */
static const char *death_rule(const char *death)
{
    return strstr(death, " timed out after ") ? "plugin-timeout" : "plugin-crash";
}

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
    /* Whatever the case was checking, a plugin that crashed or hung broke
     * that rule first: never blame the symptom (a refused arc, a wrong
     * state read back from a dead sandbox). */
    if (c->death[0]) {
        c->res->rule = death_rule(c->death);
        if (!strstr(c->res->msg, c->death)) {
            size_t l = strlen(c->res->msg);
            snprintf(c->res->msg + l, sizeof(c->res->msg) - l, " (%s)", c->death);
        }
    }
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
    if (sb) {
        sb->death_sink = c->death;
        sb->hung = path == c->peer_path ? &c->peer_hung : &c->dev_hung;
        if (sb->dead) {
            /* died during HELLO, before the sink was there */
            snprintf(c->death, sizeof(c->death), "%s", sb->death);
            if (strstr(sb->death, " timed out after "))
                *sb->hung = true;
        }
    }
    if (!sb || sb->dead || err) {
        const char *rule = "load";
        if (err && strstr(err->msg, "vmstate description"))
            rule = "vmstate-description";
        fail_err(c, rule, err, "load");
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
            MigErr *err = NULL;
            int r = be->ops->arc(be, (MigDevState)bad[i], &err);
            const char *rule = classify(err, "invalid-state-refused");
            if (strcmp(rule, "invalid-state-refused") != 0) {
                char what[64];
                snprintf(what, sizeof(what), "set_state(%u) from RUNNING", bad[i]);
                fail_err(c, rule, err, what);
                break;
            }
            mig_err_free(err);
            err = NULL;
            MigDevState real = MIG_DEV_ERROR;
            if (be->ops->get_state(be, &real, &err) < 0) {
                fail_err(c, classify(err, "invalid-state-refused"), err, "get_state");
                break;
            }
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
    MigErr *err = NULL;
    int fr = be->ops->force_error(be, &err);
    if (fr == -ENOTSUP) {
        mig_err_free(err);
        skip(c, "the plugin has no force_error test hook");
        goto out;
    }
    if (fr < 0) {
        fail_err(c, classify(err, "error-refuses-arcs"), err, "force_error");
        goto out;
    }
    mig_err_free(err);
    MigDevState real = MIG_DEV_ERROR;
    for (int s = 0; s < MIG_DEV_STATE__COUNT; s++) {
        err = NULL;
        int r = be->ops->arc(be, (MigDevState)s, &err);
        const char *rule = classify(err, "error-refuses-arcs");
        if (strcmp(rule, "error-refuses-arcs") != 0) {
            char what[64];
            snprintf(what, sizeof(what), "arc to %s in ERROR", mig_dev_state_name((MigDevState)s));
            fail_err(c, rule, err, what);
            goto out;
        }
        mig_err_free(err);
        err = NULL;
        if (be->ops->get_state(be, &real, &err) < 0) {
            fail_err(c, classify(err, "error-refuses-arcs"), err, "get_state");
            goto out;
        }
        if (r >= 0 || real != MIG_DEV_ERROR) {
            fail(c, "error-refuses-arcs", "in ERROR the device %s the arc to %s and is now %s",
                 r >= 0 ? "accepted" : "refused", mig_dev_state_name((MigDevState)s),
                 mig_dev_state_name(real));
            goto out;
        }
    }
    err = NULL;
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

/* Arm a failure of plugin callback k->a (below the engine's backends and
 * the v1 adapter), run the part of a migration that calls it, then check:
 * the failure fired; it was reported (or absorbed with the state intact);
 * the devices recover (source back to RUNNING with its state, destination
 * reset) and a retried migration carries everything. */
static void case_fault(Ctx *c, const Case *k)
{
    CbId cb = (CbId)k->a;
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
    MigErr *err = NULL;
    if (sb_call(sb, SB_FAULT, 0, cb, 0, NULL, 0, NULL, NULL, 0, &err) < 0) {
        fail_err(c, "plugin-crash", err, "arming the fault");
        goto out;
    }
    Result saved = *c->res;
    bool ok = false;
    char how[512] = "";
    const char *exercise = "a migration";
    if (cb == CB_CREATE) {
        exercise = "creating a device";
        MigDevice *x = sb_device(sb, k->fset, 19, SMALL_MEM, &err);
        ok = x != NULL;
        mig_device_free(x);
        snprintf(how, sizeof(how), "%s", err && err->msg ? err->msg : "");
        mig_err_free(err);
        err = NULL;
    } else if (cb == CB_RESET) {
        /* a destination aborted in the middle of a resume is reset */
        exercise = "aborting a destination that is RESUMING";
        if (set_state(c, dst, MIG_DEV_RESUMING, "arc-table")) {
            uint8_t junk[64] = {0};
            mig_device_write(dst, junk, sizeof(junk), NULL);
            ok = mig_device_abort(dst, &err) == 0;
            snprintf(how, sizeof(how), "%s", err && err->msg ? err->msg : "");
            mig_err_free(err);
            err = NULL;
        }
    } else {
        ok = migrate(c, src, dst, 0);
        snprintf(how, sizeof(how), "%s", c->res->msg);
    }
    int64_t fired = sb_call(sb, SB_FAULT_STATUS, 0, 0, 0, NULL, 0, NULL, NULL, 0, NULL);
    if (c->death[0]) {
        if (c->res->st != ST_FAIL)
            fail(c, "plugin-crash", "after the injected failure of %s", cb_names[cb]);
        goto out;
    }
    if (fired <= 0) {
        if (c->res->st == ST_FAIL)
            goto out; /* another rule broke first: report that one */
        fail(c, "fault-reached", "the failure armed in %s never fired: %s did not call it%s%s",
             cb_names[cb], exercise, how[0] ? "; " : "", how);
        goto out;
    }
    *c->res = saved;
    if (ok) {
        if (cb == CB_RESET || cb == CB_CREATE) {
            fail(c, "fault-recovery", "%s succeeded although its %s failed", exercise,
                 cb_names[cb]);
            goto out;
        }
        /* absorbed: migrate() compared the states */
        snprintf(c->res->note, sizeof(c->res->note),
                 "the failure of %s fired and was absorbed; the migration completed intact",
                 cb_names[cb]);
        goto out;
    }
    snprintf(c->res->note, sizeof(c->res->note), "the failure of %s fired and was reported: %.180s",
             cb_names[cb], how[0] ? how : "(no message)");
    /* back out like the engine does: source to RUNNING, destination reset */
    err = NULL;
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
             cb_names[cb]);
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

/* The optional vmstate description: absent, or a -dump-vmstate entry.  A
 * malformed one already stops the plugin from loading (open_sb reports it
 * under this rule); here the text is fetched and checked again. */
static void case_vmstate(Ctx *c, const Case *k)
{
    Sandbox *sb = open_sb(c, c->dev_path);
    if (!sb)
        return;
    size_t cap = 1u << 20;
    char *text = mig_malloc0(cap + 1);
    SbResp r = {0};
    MigErr *err = NULL;
    int64_t rc = sb_call(sb, SB_VMSTATE, 0, 0, 0, NULL, 0, &r, text, cap, &err);
    if (rc < 0) {
        fail_err(c, classify(err, "vmstate-description"), err, "vmstate description");
    } else if (rc == 0) {
        snprintf(c->res->note, sizeof(c->res->note), "the plugin has no vmstate description");
    } else if (r.len > cap) {
        fail(c, "vmstate-description", "the vmstate description is longer than %zu bytes", cap);
    } else {
        text[r.len] = 0;
        err = NULL;
        if (mig_dev_plugin_check_vmstate(text, sb->label, &err) < 0) {
            fail_err(c, "vmstate-description", err, "vmstate description");
        } else {
            json_t *j = json_loads(text, 0, NULL);
            snprintf(c->res->note, sizeof(c->res->note),
                     "a -dump-vmstate entry for \"%s\" version %lld, %zu field(s)",
                     json_string_value(json_object_get(j, "Name")),
                     (long long)json_integer_value(json_object_get(j, "version_id")),
                     json_array_size(json_object_get(json_object_get(j, "Description"),
                                                     "Fields")));
            json_decref(j);
        }
    }
    free(text);
    sb_free(sb);
}

static const char *base_name(const char *path)
{
    return strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
}

static void case_peer(Ctx *c, const Case *k)
{
    const char *sp = k->a ? c->peer_path : c->dev_path;
    const char *dp = k->a ? c->dev_path : c->peer_path;
    uint32_t sf = k->a ? c->peer_features : c->features;
    uint32_t df = k->a ? c->features : c->peer_features;
    uint32_t sproto = k->a ? c->peer_protocol : c->protocol;
    uint32_t dproto = k->a ? c->protocol : c->peer_protocol;
    if (sproto != dproto) {
        fail(c, "peer-compatible",
             "%s speaks protocol v%u and %s speaks v%u: the stream of a v%u device cannot "
             "resume on a v%u device, so these two cannot migrate to each other",
             base_name(sp), sproto, base_name(dp), dproto, sproto, dproto);
        return;
    }
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

static size_t build_cases(Case **v, uint32_t features, uint32_t callbacks, const char *peer_stem,
                          const char *stem)
{
    size_t n = 0;
    add(v, &n, case_load, features, 0, 0, "load");
    add(v, &n, case_vmstate, features, 0, 0, "vmstate-description");
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
    /* every callback the plugin has (v1 callbacks only for a v1 table) */
    for (int cb = 0; cb < CB__COUNT; cb++)
        if (callbacks & (1u << cb))
            add(v, &n, case_fault, features, cb, 0, "fault.%s", cb_names[cb]);
    if (peer_stem) {
        /* the same stem on both sides still gives two names */
        char other[128];
        snprintf(other, sizeof(other), "%s%s", peer_stem, strcmp(stem, peer_stem) ? "" : "-peer");
        add(v, &n, case_peer, features, 0, 0, "peer.%s-to-%s", stem, other)->uses_peer = true;
        add(v, &n, case_peer, features, 1, 0, "peer.%s-to-%s", other, stem)->uses_peer = true;
    }
    return n;
}

/* -k PAT: a case name exactly (when some case has that name: the REPRO
 * lines rerun one case), else a glob, else a substring. */
static bool selected(const char *name, const char *pat, bool exact)
{
    if (!pat)
        return true;
    if (exact)
        return !strcmp(name, pat);
    return !fnmatch(pat, name, 0) || strstr(name, pat) != NULL;
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
                    "[--timeout SECONDS] [--budget SECONDS] [--list]\n");
}

/* A whole number of seconds > 0; false for anything else ("abc", "5s", 0). */
static bool parse_seconds(const char *v, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long t = strtoul(v, &end, 10);
    if (errno || end == v || *end || t == 0 || t > 86400 || v[0] == '-' || v[0] == '+')
        return false;
    *out = (unsigned)t;
    return true;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What a probe learned about a plugin before the cases are chosen. */
typedef struct Probe {
    bool loads;
    uint32_t features, protocol, callbacks;
    char name[64], version[64];
    char error[512];
} Probe;

static void probe_plugin(const char *path, unsigned timeout_s, Probe *pr)
{
    memset(pr, 0, sizeof(*pr));
    MigErr *err = NULL;
    Sandbox *sb = sb_spawn(path, timeout_s, &err);
    pr->loads = sb && !sb->dead && !err;
    if (!pr->loads)
        snprintf(pr->error, sizeof(pr->error), "%s",
                 err && err->msg ? err->msg : sb && sb->death ? sb->death : "cannot start");
    if (sb) {
        pr->features = sb->features;
        pr->protocol = sb->protocol;
        pr->callbacks = sb->callbacks;
        snprintf(pr->name, sizeof(pr->name), "%s", sb->name);
        snprintf(pr->version, sizeof(pr->version), "%s", sb->version);
    }
    if (!pr->loads)
        pr->features = MIG_DEV_F_STOP_COPY;
    else if (pr->protocol == MIGCERT_PROTOCOL_V1)
        pr->features = MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY;
    sb_free(sb);
    mig_err_free(err);
}

/* ---- reports (each writer returns 0 or -errno with *what naming the file) ---- */

typedef struct Report {
    const char *outdir, *dev, *peer, *stem, *desc, *repro_base;
    const Case *cases;
    const Result *res;
    size_t ncases, npass, nfail, nskip, nnotrun;
} Report;

static bool listed(const Result *r)
{
    return !(r->st == ST_SKIP && !strcmp(r->msg, "not selected"));
}

static int close_report(FILE *f, const char *path, char *what, size_t cap)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        int e = errno ? errno : EIO;
        snprintf(what, cap, "cannot write %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

static int write_txt(const Report *rp, char *what, size_t cap)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/report.txt", rp->outdir);
    FILE *f = fopen(path, "w");
    if (!f) {
        int e = errno;
        snprintf(what, cap, "cannot create %s: %s", path, strerror(e));
        return -e;
    }
    fprintf(f, "migcert device certification\nplugin: %s (%s)\n", rp->dev, rp->desc);
    if (rp->peer)
        fprintf(f, "peer: %s\n", rp->peer);
    fprintf(f, "migcert ABI version: %u\n\n", MIGCERT_DEVICE_ABI_VERSION);
    for (size_t i = 0; i < rp->ncases; i++) {
        const Result *r = &rp->res[i];
        if (!listed(r))
            continue;
        static const char *const tag[ST__COUNT] = {"PASS", "FAIL", "SKIP", "NOT RUN"};
        fprintf(f, "%s %s", tag[r->st], rp->cases[i].name);
        if (r->st == ST_FAIL)
            fprintf(f, "\n  rule %s: %s\n  %s\n  REPRO: %s -k %s", r->rule, rule_text(r->rule),
                    r->msg, rp->repro_base, rp->cases[i].name);
        else if (r->st == ST_SKIP || r->st == ST_NOTRUN)
            fprintf(f, " (%s)", r->msg);
        else if (r->note[0])
            fprintf(f, " (%s)", r->note);
        fputc('\n', f);
    }
    fprintf(f, "\n%zu passed, %zu failed, %zu skipped, %zu not run\n", rp->npass, rp->nfail,
            rp->nskip, rp->nnotrun);
    return close_report(f, path, what, cap);
}

static int write_json(const Report *rp, char *what, size_t cap)
{
    json_t *root = json_object();
    json_object_set_new(root, "plugin", json_string(rp->dev));
    json_object_set_new(root, "description", json_string(rp->desc));
    json_object_set_new(root, "abi_version", json_integer(MIGCERT_DEVICE_ABI_VERSION));
    if (rp->peer)
        json_object_set_new(root, "peer", json_string(rp->peer));
    json_t *arr = json_array(), *broken = json_array();
    for (size_t i = 0; i < rp->ncases; i++) {
        const Result *r = &rp->res[i];
        if (!listed(r))
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(rp->cases[i].name));
        json_object_set_new(o, "status", json_string(status_names[r->st]));
        if (r->st != ST_PASS)
            json_object_set_new(o, "message", json_string(r->msg));
        else if (r->note[0])
            json_object_set_new(o, "note", json_string(r->note));
        if (r->st == ST_FAIL) {
            char repro[PATH_MAX * 2 + 128];
            snprintf(repro, sizeof(repro), "%s -k %s", rp->repro_base, rp->cases[i].name);
            json_object_set_new(o, "rule", json_string(r->rule));
            json_object_set_new(o, "rule_text", json_string(rule_text(r->rule)));
            json_object_set_new(o, "repro", json_string(repro));
            bool seen = false;
            size_t j;
            json_t *x;
            json_array_foreach(broken, j, x) seen |= !strcmp(json_string_value(x), r->rule);
            if (!seen)
                json_array_append_new(broken, json_string(r->rule));
        }
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "cases", arr);
    json_object_set_new(root, "rules_broken", broken);
    json_object_set_new(root, "passed", json_integer((json_int_t)rp->npass));
    json_object_set_new(root, "failed", json_integer((json_int_t)rp->nfail));
    json_object_set_new(root, "skipped", json_integer((json_int_t)rp->nskip));
    json_object_set_new(root, "not_run", json_integer((json_int_t)rp->nnotrun));
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/report.json", rp->outdir);
    errno = 0;
    int rc = json_dump_file(root, path, JSON_INDENT(2));
    json_decref(root);
    if (rc != 0) {
        int e = errno ? errno : EIO;
        snprintf(what, cap, "cannot write %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

static int write_junit(const Report *rp, char *what, size_t cap)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/report.junit.xml", rp->outdir);
    FILE *f = fopen(path, "w");
    if (!f) {
        int e = errno;
        snprintf(what, cap, "cannot create %s: %s", path, strerror(e));
        return -e;
    }
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n"
               "<testsuite name=\"certify-%s\" tests=\"%zu\" failures=\"%zu\" "
               "skipped=\"%zu\">\n",
            rp->stem, rp->npass + rp->nfail + rp->nskip + rp->nnotrun, rp->nfail,
            rp->nskip + rp->nnotrun);
    for (size_t i = 0; i < rp->ncases; i++) {
        const Result *r = &rp->res[i];
        if (!listed(r))
            continue;
        fprintf(f, "  <testcase classname=\"certify.%s\" name=\"", rp->stem);
        xml_escape(f, rp->cases[i].name);
        fputs("\"", f);
        if (r->st == ST_PASS) {
            fputs("/>\n", f);
            continue;
        }
        fputs(">\n", f);
        if (r->st == ST_SKIP || r->st == ST_NOTRUN) {
            fputs("    <skipped message=\"", f);
            xml_escape(f, r->msg);
            fputs("\"/>\n", f);
        } else {
            fprintf(f, "    <failure message=\"rule %s: ", r->rule);
            xml_escape(f, r->msg);
            fputs("\">", f);
            xml_escape(f, rule_text(r->rule));
            fprintf(f, "\nREPRO: ");
            xml_escape(f, rp->repro_base);
            fprintf(f, " -k ");
            xml_escape(f, rp->cases[i].name);
            fputs("</failure>\n", f);
        }
        fputs("  </testcase>\n", f);
    }
    fputs("</testsuite>\n</testsuites>\n", f);
    return close_report(f, path, what, cap);
}

int cmd_certify(int argc, char **argv)
{
    const char *dev = NULL, *peer = NULL, *out = NULL, *pat = NULL;
    unsigned timeout_s = 10, budget_s = 0;
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
        else if ((!strcmp(a, "--timeout") || !strcmp(a, "--budget")) && v) {
            if (!parse_seconds(argv[++i], a[2] == 't' ? &timeout_s : &budget_s)) {
                fprintf(stderr,
                        "migcert certify: %s takes a whole number of seconds (1 to 86400), "
                        "not '%s'\n",
                        a, v);
                usage();
                return 2;
            }
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
    int64_t started = now_ms();
    char *stem = stem_of(dev);
    char *peer_stem = peer ? stem_of(peer) : NULL;
    char outdir[PATH_MAX];
    snprintf(outdir, sizeof(outdir), "%s", out ? out : "");
    if (!out)
        snprintf(outdir, sizeof(outdir), "reports/out/certify-%s", stem);

    /* what the plugin offers decides the case list */
    Probe pd, pp = {0};
    probe_plugin(dev, timeout_s, &pd);
    char plugin_desc[256];
    snprintf(plugin_desc, sizeof(plugin_desc), "%s %s, protocol v%u, features %s",
             pd.name[0] ? pd.name : stem, pd.version, pd.protocol,
             mig_dev_features_name(pd.features));
    if (peer)
        probe_plugin(peer, timeout_s, &pp);

    Case *cases = NULL;
    size_t ncases = build_cases(&cases, pd.features, pd.callbacks, peer_stem, stem);
    if (!pd.loads) /* nothing but loading can run; a bad description is its own rule */
        ncases = strstr(pd.error, "vmstate description") ? 2 : 1;
    bool exact = false;
    for (size_t i = 0; pat && i < ncases; i++)
        exact |= !strcmp(cases[i].name, pat);
    if (list) {
        for (size_t i = 0; i < ncases; i++)
            if (selected(cases[i].name, pat, exact))
                printf("%s\n", cases[i].name);
        free(cases);
        free(stem);
        free(peer_stem);
        return 0;
    }
    bool any = false;
    for (size_t i = 0; i < ncases; i++)
        any |= selected(cases[i].name, pat, exact);
    if (pat && !any) {
        fprintf(stderr, "migcert certify: no case matches '%s' (--list shows them)\n", pat);
        free(cases);
        free(stem);
        free(peer_stem);
        return 2;
    }

    Result *res = mig_malloc0(ncases * sizeof(*res));
    size_t npass = 0, nfail = 0, nskip = 0, nnotrun = 0;
    char repro_base[PATH_MAX * 2];
    /* main.c passes argv + 1: argv[-1] is how migcert itself was invoked */
    snprintf(repro_base, sizeof(repro_base), "%s certify --device %s%s%s", argv[-1] ? argv[-1] : "migcert",
             dev, peer ? " --peer " : "", peer ? peer : "");
    fprintf(stderr, "migcert certify: %s (%s)\n", dev, plugin_desc);
    /* the first case in which each plugin hung: later cases with it do not run */
    char dev_hung_in[96] = "", peer_hung_in[96] = "";
    for (size_t i = 0; i < ncases; i++) {
        res[i].st = ST_PASS;
        if (!selected(cases[i].name, pat, exact)) {
            res[i].st = ST_SKIP;
            snprintf(res[i].msg, sizeof(res[i].msg), "not selected");
            continue;
        }
        if (dev_hung_in[0] || (cases[i].uses_peer && peer_hung_in[0])) {
            bool d = dev_hung_in[0] != 0;
            res[i].st = ST_NOTRUN;
            snprintf(res[i].msg, sizeof(res[i].msg), "not run: plugin %s hung earlier in case %s",
                     base_name(d ? dev : peer), d ? dev_hung_in : peer_hung_in);
            nnotrun++;
            continue;
        }
        if (budget_s && now_ms() - started >= (int64_t)budget_s * 1000) {
            res[i].st = ST_NOTRUN;
            snprintf(res[i].msg, sizeof(res[i].msg),
                     "not run: the time budget of %us was used up", budget_s);
            nnotrun++;
            continue;
        }
        Ctx c = {.dev_path = dev,
                 .peer_path = peer,
                 .timeout_s = timeout_s,
                 .features = pd.features,
                 .peer_features = pp.features,
                 .callbacks = pd.callbacks,
                 .protocol = pd.protocol,
                 .peer_protocol = pp.protocol,
                 .res = &res[i]};
        mig_prng_seed(&c.prng, 0x5eed ^ (uint64_t)i);
        cases[i].fn(&c, &cases[i]);
        /* a sandbox that died without the case noticing still fails it */
        if (c.death[0] && res[i].st != ST_FAIL)
            fail(&c, death_rule(c.death), "%s", c.death);
        if (c.dev_hung && !dev_hung_in[0])
            snprintf(dev_hung_in, sizeof(dev_hung_in), "%s", cases[i].name);
        if (c.peer_hung && !peer_hung_in[0])
            snprintf(peer_hung_in, sizeof(peer_hung_in), "%s", cases[i].name);
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

    Report rp = {outdir, dev, peer, stem, plugin_desc, repro_base, cases, res, ncases,
                 npass,  nfail, nskip, nnotrun};
    char what[PATH_MAX + 256] = "";
    int wrc = mkdir_p(outdir);
    if (wrc < 0)
        snprintf(what, sizeof(what), "cannot create the report folder %s: %s", outdir,
                 strerror(-wrc));
    if (wrc == 0)
        wrc = write_txt(&rp, what, sizeof(what));
    if (wrc == 0)
        wrc = write_json(&rp, what, sizeof(what));
    if (wrc == 0)
        wrc = write_junit(&rp, what, sizeof(what));
    int rc = nfail || nnotrun ? 1 : 0;
    if (wrc < 0) {
        fprintf(stderr, "migcert certify: no certificate report: %s\n", what);
        rc = 3;
    } else {
        printf("certify %s: report in %s\n", stem, outdir);
    }
    if (nnotrun)
        printf("%zu passed, %zu failed, %zu not run\n", npass, nfail, nnotrun);
    else
        printf("%zu passed, %zu failed\n", npass, nfail);
    free(res);
    free(cases);
    free(stem);
    free(peer_stem);
    return rc;
}
