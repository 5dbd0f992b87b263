/*
 * certify-sandbox.c - a vendor plugin in a child process, for `migcert
 * certify` (certify-internal.h).  The parent sends a request (SbReq and its
 * payload) over a socketpair and waits for the answer (SbResp and its
 * payload) with poll() and a per-call timeout (--timeout); a child that
 * crashes, exits or does not answer in time kills the sandbox with one
 * message ("plugin X.so crashed (signal 11) in set_state", "plugin X.so
 * timed out after 10s in read") that every later call returns.
 *
 * The child runs the engine's own backends (the v2 table or the v1
 * adapter, impl/device) over a copy of the plugin's table whose callbacks
 * can be made to fail one call (SB_FAULT: fault.<callback>), so a failure
 * is injected below the adapter, where a failing plugin would produce it.
 *
 * The child lives in a jail (certify-jail.c): its own PID namespace and
 * session, one fd, rlimits.  Every buffer handed to the plugin (the read
 * buffer, the written data, the v1 adapter's resume transaction through
 * MigDevBackend.alloc) ends right before a guard page.  Every wait of
 * the parent has a deadline (the call's timeout): a reply wait also wakes
 * when the jail ends (pidfd), so a plugin that forks and crashes is a crash,
 * not a hang.  After each call the parent counts the jail's processes: a
 * plugin that started one fails under plugin-processes.  An answer that does
 * not start with SB_RESP_MAGIC is junk the plugin wrote on the channel
 * (plugin-fds).
 */
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "certify-internal.h"

static const char *const sb_op_names[SB__COUNT] = {
    [SB_HELLO] = "load",          [SB_CREATE] = "create",       [SB_DESTROY] = "destroy",
    [SB_ARC] = "set_state",       [SB_GET_STATE] = "get_state", [SB_READ] = "read",
    [SB_WRITE] = "write",         [SB_PRECOPY_INFO] = "precopy_info",
    [SB_DATA_SIZE] = "data_size", [SB_RESET] = "reset",         [SB_GUEST_RUN] = "guest_run",
    [SB_DIGEST] = "digest",       [SB_FORCE_ERROR] = "force_error", [SB_FAULT] = "fault",
    [SB_FAULT_STATUS] = "fault status", [SB_VMSTATE] = "vmstate description",
};

const char *const certify_cb_names[CB__COUNT] = {
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
    r.magic = SB_RESP_MAGIC;
    /* the host is the jail's subreaper: any process the plugin started, or
     * an orphan of one, is its child (one cheap check per call; the parent
     * also counts them from /proc when the sandbox ends) */
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    r.procs = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
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

/* MigDevBackend.alloc over one CertGuardBuf per instance. */
static void *guard_alloc_get(void *opaque, size_t len) { return certify_guard_get(opaque, len); }
static void guard_alloc_put(void *opaque) { certify_guard_release(opaque); }

static void child_main(int fd, void *arg)
{
    const char *path = arg;
    MigErr *err = NULL;
    void *handle = NULL;
    const MigcertDevicePlugin *p = mig_dev_plugin_load(path, &handle, &err);
    uint32_t callbacks = p ? wrap_table(p) : 0;
    const char *label = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const MigcertDevicePlugin *table = p ? &chaos.table : NULL;
    MigDevBackend *inst[SB_MAX_INST] = {0};
    CertGuardBuf in_map = {0}, out_map = {0}; /* guard-paged: the plugin reads / writes them */
    CertGuardBuf chunk_map[SB_MAX_INST] = {{0}}; /* each instance's v1 transaction */
    uint8_t *buf = NULL; /* the request's payload */
    for (;;) {
        SbReq q;
        int code = -1;
        if (full_read_fd(fd, &q, sizeof(q)) < 0)
            code = 0;
        else if (q.len > SB_MAX_PAYLOAD)
            code = 4;
        if (code < 0) {
            buf = certify_guard_get(&in_map, q.len);
            if (!buf || (q.len && full_read_fd(fd, buf, q.len) < 0))
                code = 0;
        }
        if (code >= 0) {
            /* the parent hung up (or sent garbage): release everything so a
             * leak checker following the child sees nothing left */
            certify_guard_release(&in_map);
            certify_guard_release(&out_map);
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
            b->alloc = (MigDevBufAlloc){guard_alloc_get, guard_alloc_put, &chunk_map[i]};
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
        uint8_t *data = NULL; /* the read buffer */
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
            data = certify_guard_get(&out_map, len);
            if (!data) {
                ret = -ENOMEM;
                break;
            }
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
    }
}


/* ---- parent side ---- */

static void sb_die(CertSandbox *sb, const char *fmt, ...) MIG_PRINTF(2, 3);
static void sb_die(CertSandbox *sb, const char *fmt, ...)
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

/* The jail ended or broke the protocol during `op`: wait for its end (up
 * to the call's timeout), kill what is left, and say why it died. */
static void sb_reap(CertSandbox *sb, const char *op)
{
    if (certify_jail_wait(&sb->jail, certify_now_ms() + (int64_t)sb->timeout_s * 1000) < 0)
        certify_jail_kill(&sb->jail);
    char msg[512];
    certify_jail_death(&sb->jail, sb->label, op, msg, sizeof(msg));
    sb_die(sb, "%s", msg);
}

/* Wait until fd is ready for `events` before the deadline (ms, monotonic);
 * -EPIPE when the jail ends first. */
static int wait_fd(CertSandbox *sb, short events, int64_t deadline_ms)
{
    for (;;) {
        int64_t now = certify_now_ms();
        if (now >= deadline_ms)
            return -ETIMEDOUT;
        struct pollfd pfd[2] = {{sb->fd, events, 0}, {sb->jail.pidfd, POLLIN, 0}};
        int n = sb->jail.pidfd >= 0 ? 2 : 1;
        /* without a pidfd, look at the jail every 100 ms */
        int64_t slice = n == 2 ? deadline_ms - now : MIG_MIN(deadline_ms - now, (int64_t)100);
        int r = poll(pfd, (nfds_t)n, (int)MIG_MIN(slice, (int64_t)INT_MAX));
        if (r > 0 && pfd[0].revents)
            return 0;
        if ((r > 0 && pfd[1].revents) || (n == 1 && r == 0 && certify_jail_ended(&sb->jail)))
            return -EPIPE;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

static int io_all(CertSandbox *sb, bool out, void *buf, size_t len, int64_t deadline)
{
    uint8_t *p = buf;
    while (len) {
        int r = wait_fd(sb, out ? POLLOUT : POLLIN, deadline);
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

/* Junk on the channel: the plugin wrote on the fd it inherited. */
static void sb_junk(CertSandbox *sb, const char *op)
{
    sb_die(sb, "plugin %s wrote junk on the sandbox's channel (the one fd it inherited) in %s",
           sb->label, op);
    certify_jail_kill(&sb->jail);
}

/* One call: returns resp.ret (or -EPIPE/-ETIMEDOUT when the sandbox died),
 * with the error text in *errp and the payload in out (up to out_cap). */
int64_t certify_sb_call(CertSandbox *sb, uint32_t op, uint32_t inst, uint64_t a, uint64_t b,
                       const void *payload, uint32_t len, SbResp *resp, void *out, size_t out_cap,
                       MigErr **errp)
{
    if (sb->dead)
        return mig_err_set(errp, -EPIPE, "%s", sb->death);
    int64_t deadline = certify_now_ms() + (int64_t)sb->timeout_s * 1000;
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
        if (sb->hung)
            *sb->hung = true;
        sb_die(sb, "plugin %s timed out after %us in %s", sb->label, sb->timeout_s,
               sb_op_names[op]);
        certify_jail_kill(&sb->jail);
    } else if (rc < 0) {
        sb_reap(sb, sb_op_names[op]);
    } else if (r.magic != SB_RESP_MAGIC || r.len > SB_MAX_PAYLOAD) {
        sb_junk(sb, sb_op_names[op]);
    }
    if (sb->dead)
        return mig_err_set(errp, rc == -ETIMEDOUT ? -ETIMEDOUT : -EPIPE, "%s", sb->death);
    char *data = malloc((size_t)r.len + 1);
    rc = io_all(sb, false, data, r.len, deadline);
    if (rc < 0) {
        free(data);
        if (rc == -ETIMEDOUT)
            sb_junk(sb, sb_op_names[op]); /* a length that no payload follows */
        else
            sb_reap(sb, sb_op_names[op]);
        return mig_err_set(errp, -EPIPE, "%s", sb->death);
    }
    if (r.procs) {
        free(data);
        sb_die(sb, "plugin %s started a process in %s (a plugin must not fork)", sb->label,
               sb_op_names[op]);
        certify_jail_kill(&sb->jail);
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

CertSandbox *certify_sb_spawn(const char *path, unsigned timeout_s, MigErr **errp)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        mig_err_set(errp, -errno, "socketpair: %s", strerror(errno));
        return NULL;
    }
    CertSandbox *sb = mig_malloc0(sizeof(*sb));
    if (certify_jail_spawn(&sb->jail, sv[1], child_main, (void *)path, errp) < 0) {
        close(sv[0]);
        close(sv[1]);
        free(sb);
        return NULL;
    }
    close(sv[1]);
    sb->fd = sv[0];
    sb->timeout_s = timeout_s;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    snprintf(sb->label, sizeof(sb->label), "%s", base);
    SbResp r = {0};
    char info[256] = {0};
    if (certify_sb_call(sb, SB_HELLO, 0, 0, 0, NULL, 0, &r, info, sizeof(info) - 1, errp) < 0) {
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

void certify_sb_free(CertSandbox *sb)
{
    if (!sb)
        return;
    int strays = sb->dead ? 0 : certify_jail_strays(&sb->jail);
    if (strays > 0)
        sb_die(sb, "plugin %s left %d process(es) running at the end of the case (a plugin "
               "must not fork)", sb->label, strays);
    if (sb->fd >= 0)
        close(sb->fd);
    /* closing the socket ends a healthy child; a hung one is killed, and
     * either way every process of the jail is gone when this returns */
    if (certify_jail_wait(&sb->jail, certify_now_ms() + 2000) < 0)
        certify_jail_kill(&sb->jail);
    free(sb->death);
    free(sb);
}


const char *certify_base_name(const char *path)
{
    return strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
}
