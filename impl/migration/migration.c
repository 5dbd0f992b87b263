/*
 * migration.c - the source and destination state machines (see migration.h
 * for the diagram and the transition -> function list).
 *
 * Both sides are loop callbacks that do a bounded slice of work and return:
 *   - source: src_produce() writes sections while the stream holds less than
 *     SRC_HWM unsent bytes, waits for MIG_LOOP_OUT otherwise, for a timer
 *     when max-bandwidth says so, and re-arms itself with a defer after
 *     SRC_SLICE bytes so that the guest and the monitor get their turn;
 *   - destination: dst_consume() parses restartable units (section header,
 *     RAM record, FULL section, footer) and waits for MIG_LOOP_IN when the
 *     stream is starved.
 * Cancel sets "cancelling" at once and tears down from a defer, so it is safe
 * from any callback, including a MIGRATION event handler.
 *
 * Return path (capability return-path, QEMU's migration.c): the source
 * sends COMMAND open-return-path and ping(1) after the configuration; the
 * destination then answers on the same connection with messages of the form
 * be16 type, be16 len, payload: PONG (be32, the ping's value) and, when its
 * load ends, SHUT (be32 0 = loaded, 1 = failed).  With it the source stays
 * in "device" after its last byte (phase SP_RP_WAIT) and completes only on
 * SHUT(0); SHUT(1), EOF or an error there fail it, and failing resumes the
 * guest as it was.  A transport with no way back (file:, a pipe) refuses
 * the capability at migrate time.
 *
 * Destination discard: FULL handlers are snapshotted (saved into memory)
 * just before their section is loaded; a failed or cancelled load loads the
 * snapshots back, so device state is what it was before the migration.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/sockios.h>

#include "migration-internal.h"
#include "ram/ram.h"

#define SRC_HWM ((size_t)8 << 20)
#define SRC_BUDGET ((size_t)1 << 20)
#define SRC_SLICE ((uint64_t)64 << 20)
#define DST_SLICE ((uint64_t)64 << 20)
#define RATE_WINDOW_NS 100000000ull
/* How long to watch a transport that holds bytes before the source has any
 * measure of the rate they leave at. */
#define DRAIN_PROBE_NS 10000000ull
#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

/* Return-path messages (destination -> source) and stream commands. */
enum { RP_MSG_SHUT = 1, RP_MSG_PONG = 2 };
enum { CMD_OPEN_RETURN_PATH = 1, CMD_PING = 2 };
#define RP_OUT_MAX 64

typedef enum SrcPhase {
    SP_IDLE,
    SP_SETUP,
    SP_ITERATE,
    SP_SWITCHOVER_WAIT,
    SP_END,
    SP_FULL,
    SP_TAIL,
    SP_DRAIN,
    SP_RP_WAIT, /* every byte out; waiting for the destination's SHUT */
    SP__COUNT
} SrcPhase;

static const char *const src_phase_names[SP__COUNT] = {
    [SP_IDLE] = "idle",       [SP_SETUP] = "setup", [SP_ITERATE] = "iterate",
    [SP_SWITCHOVER_WAIT] = "switchover-wait",       [SP_END] = "end",
    [SP_FULL] = "full",       [SP_TAIL] = "tail",   [SP_DRAIN] = "drain",
    [SP_RP_WAIT] = "return-path-wait",
};

typedef enum DstPhase {
    DP_IDLE,
    DP_HEADER,
    DP_CONFIG,
    DP_SECTION,
    DP_PAYLOAD,
    DP_FOOTER,
    DP_VMDESC,
    DP__COUNT
} DstPhase;

static const char *const dst_phase_names[DP__COUNT] = {
    [DP_IDLE] = "idle",       [DP_HEADER] = "header",   [DP_CONFIG] = "configuration",
    [DP_SECTION] = "section", [DP_PAYLOAD] = "payload", [DP_FOOTER] = "footer",
    [DP_VMDESC] = "vmdescription",
};

typedef struct SectionMap {
    uint32_t section_id;
    size_t entry;
    uint32_t version_id;
} SectionMap;

struct MigMigration {
    MigMigrationEnv env;
    char who[32];
    char machine_type[256];
    MigStatus status;
    bool incoming;
    MigCapMask caps_known, caps;
    MigParams params;
    char error[512];

    MigTransport *t;
    MigStream *s;
    MigLoopSource *kick_src;   /* defer: next slice */
    MigLoopSource *timer_src;  /* rate limit window */
    MigLoopSource *cancel_src; /* defer: cancelling -> cancelled */
    bool watching;
    bool hangup_seen; /* the last readiness carried ERR/HUP */

    uint64_t start_ns, setup_end_ns, end_ns, stop_ns;
    bool has_setup_time, has_end, has_downtime;
    uint64_t downtime_ms, expected_downtime_ms;
    uint64_t passes;
    bool stopped_guest;

    /* per registry entry, sized at start */
    size_t nentries;
    bool *started; /* save_setup / load_setup ran: cleanup owed */
    bool *pass_done;
    /* destination: FULL entries' state before their section was loaded */
    bool *snap_taken;
    uint8_t **snap;
    size_t *snap_len;

    /* return path */
    bool rp_on;         /* source: capability on for this migration */
    uint8_t rp_in[8];   /* source: partial message */
    size_t rp_in_len;
    bool rp_open;       /* destination: open-return-path received */
    uint8_t rp_out[RP_OUT_MAX]; /* destination: messages not yet written */
    size_t rp_out_len;
    MigTransport *linger_t; /* destination: finished, flushing rp_out */

    /* source convergence: the pass ended with only queued bytes in the way */
    bool drain_wait;
    bool drain_timed; /* waited on a timer for the transport: decide again */
    bool drain_probe; /* the wait measures the rate: no sync, no new pass */
    uint64_t drain_target;

    /* source */
    SrcPhase sp;
    size_t entry;
    bool in_section;
    uint64_t pass_start_ns, pass_start_bytes;
    uint64_t window_start_ns, window_start_off;
    uint64_t bandwidth; /* bytes/s measured over the last pass; 0 unknown */
    uint64_t last_sync_ns, dirty_rate;

    /* destination */
    DstPhase dp;
    MigSectionHeader hdr;
    size_t cur_entry;
    SectionMap *secs;
    size_t nsecs;
};

/* ------------------------------------------------------------ state tables */

#define A(from, to) [MIG_STATUS_##from][MIG_STATUS_##to] = true
static const bool src_arcs[MIG_STATUS__COUNT][MIG_STATUS__COUNT] = {
    A(NONE, SETUP),
    A(SETUP, ACTIVE),
    A(SETUP, FAILED),
    A(SETUP, CANCELLING),
    A(ACTIVE, PRE_SWITCHOVER),
    A(ACTIVE, DEVICE),
    A(ACTIVE, FAILED),
    A(ACTIVE, CANCELLING),
    A(PRE_SWITCHOVER, DEVICE),
    A(PRE_SWITCHOVER, FAILED),
    A(PRE_SWITCHOVER, CANCELLING),
    A(DEVICE, COMPLETED),
    A(DEVICE, FAILED),
    A(DEVICE, CANCELLING),
    A(CANCELLING, CANCELLED),
    A(COMPLETED, SETUP),
    A(FAILED, SETUP),
    A(CANCELLED, SETUP),
};
static const bool dst_arcs[MIG_STATUS__COUNT][MIG_STATUS__COUNT] = {
    A(NONE, SETUP),
    A(SETUP, ACTIVE),
    A(SETUP, FAILED),
    A(SETUP, CANCELLING),
    A(ACTIVE, COMPLETED),
    A(ACTIVE, FAILED),
    A(ACTIVE, CANCELLING),
    A(CANCELLING, CANCELLED),
};
#undef A

bool mig_status_arc_allowed(bool incoming, MigStatus from, MigStatus to)
{
    if ((unsigned)from >= MIG_STATUS__COUNT || (unsigned)to >= MIG_STATUS__COUNT)
        return false;
    return incoming ? dst_arcs[from][to] : src_arcs[from][to];
}

static uint64_t now_ns(const MigMigration *mm)
{
    return mig_loop_now_ns(mm->env.loop);
}

/* A name from the wire, printable for an error message: printable ASCII
 * stays, quote and backslash and everything else become \xNN. */
static const char *esc(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (; *in && o + 5 < n; in++) {
        unsigned char c = (unsigned char)*in;
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

/* Can the peer answer on t (a socket or the simulator's duplex link)? */
static bool has_back_channel(MigTransport *t)
{
    if (!t)
        return false;
    if (strcmp(t->ops->kind, "mem") == 0 || mig_transport_is_local(t))
        return true;
    struct stat st;
    int fd = mig_transport_get_fd(t);
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static void emit(MigMigration *mm, const char *name, json_t *data)
{
    if (mm->env.event && (mm->caps & MIG_CAP_BIT(MIG_CAP_EVENTS)))
        mm->env.event(mm->env.opaque, name, data);
    json_decref(data);
}

int mig__migration_set_status(MigMigration *mm, MigStatus to)
{
    MigStatus from = mm->status;
    if (!mig_status_arc_allowed(mm->incoming, from, to)) {
        mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who,
                      "migration %s -> %s refused", mig_status_name(from), mig_status_name(to));
        return -EINVAL;
    }
    mm->status = to;
    mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who, "migration %s -> %s",
                  mig_status_name(from), mig_status_name(to));
    emit(mm, "MIGRATION", json_pack("{s:s}", "status", mig_status_name(to)));
    return 0;
}

void mig__migration_set_direction(MigMigration *mm, bool incoming)
{
    if (mm->status == MIG_STATUS_NONE)
        mm->incoming = incoming;
}

/* ------------------------------------------------------------ object */

MigMigration *mig_migration_new(const MigMigrationEnv *env)
{
    MigMigration *mm = mig_malloc0(sizeof(*mm));
    mm->env = *env;
    snprintf(mm->who, sizeof(mm->who), "%s", env->who ? env->who : "vm");
    snprintf(mm->machine_type, sizeof(mm->machine_type), "%s",
             env->machine_type ? env->machine_type : "");
    mm->env.who = mm->who;
    mm->env.machine_type = mm->machine_type;
    mm->caps_known = env->caps_known ? env->caps_known : mig_caps_supported();
    /* x-page-flip (seed 002) passes a pipe fd over a unix socket: a loop
     * without real fds (the simulator's mem links) never offers it, so
     * management that intersects offers never enables it there. */
    if (!env->loop || !env->loop->ops->fd_watch)
        mm->caps_known &= ~MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP);
    mig_params_default(&mm->params);
    return mm;
}

static void stop_sources(MigMigration *mm)
{
    mig_loop_remove(mm->env.loop, mm->kick_src);
    mm->kick_src = NULL;
    mig_loop_remove(mm->env.loop, mm->timer_src);
    mm->timer_src = NULL;
    if (mm->watching && mm->t)
        mig_transport_watch(mm->t, 0, NULL, NULL);
    mm->watching = false;
}

static void close_stream(MigMigration *mm)
{
    stop_sources(mm);
    mig_stream_free(mm->s);
    mm->s = NULL;
    mig_transport_close(mm->t);
    mm->t = NULL;
}

/* Destination: keep the state of FULL entry i as it is before its section
 * is loaded (once per migration). */
static void snapshot_full(MigMigration *mm, size_t i, const MigSaveEntry *e)
{
    if (!mm->snap_taken || mm->snap_taken[i])
        return;
    mm->snap_taken[i] = true;
    MigStream *w = mig_stream_new_mem_writer();
    MigErr *err = NULL;
    int r = mig_savevm_entry_save_full(e, w, &err);
    if (r == 0)
        r = mig_stream_take_error(w, &err);
    if (r == 0) {
        size_t len = 0;
        const uint8_t *d = mig_stream_mem_data(w, &len);
        mm->snap[i] = mig_malloc0(len ? len : 1);
        memcpy(mm->snap[i], d, len);
        mm->snap_len[i] = len;
    } else {
        mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who,
                      "cannot snapshot '%s' before loading it: %s", e->idstr,
                      err ? err->msg : mig_errno_name(r));
    }
    mig_err_free(err);
    mig_stream_free(w);
}

/* Destination, load not completed: FULL entries get their snapshot back,
 * last loaded first. */
static void restore_full(MigMigration *mm)
{
    for (size_t k = mm->nentries; k-- > 0;) {
        if (!mm->snap || !mm->snap[k])
            continue;
        const MigSaveEntry *e = mig_savevm_entry(mm->env.savevm, k);
        MigStream *r = mig_stream_new_mem_reader_borrow(mm->snap[k], mm->snap_len[k]);
        MigErr *err = NULL;
        int rc = e ? mig_savevm_entry_load_full(e, r, e->version_id, &err) : -ENOENT;
        if (rc < 0)
            mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who,
                          "cannot restore '%s' after a failed load: %s", e ? e->idstr : "?",
                          err ? err->msg : mig_errno_name(rc));
        else
            mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who,
                          "'%s' restored to its state before the migration", e->idstr);
        mig_err_free(err);
        mig_stream_free(r);
    }
}

/* Run the cleanup hooks owed and release per-migration memory. */
static void cleanup_handlers(MigMigration *mm, MigOutcome outcome)
{
    for (size_t i = 0; i < mm->nentries; i++) {
        if (!mm->started || !mm->started[i])
            continue;
        mm->started[i] = false;
        const MigSaveEntry *e = mig_savevm_entry(mm->env.savevm, i);
        if (!e || e->kind != MIG_SAVE_ITERATIVE)
            continue;
        if (mm->incoming) {
            if (e->iter->load_cleanup)
                e->iter->load_cleanup(e->opaque, outcome);
        } else if (e->iter->save_cleanup) {
            e->iter->save_cleanup(e->opaque, outcome);
        }
    }
    free(mm->started);
    mm->started = NULL;
    free(mm->pass_done);
    mm->pass_done = NULL;
    for (size_t i = 0; mm->snap && i < mm->nentries; i++)
        free(mm->snap[i]);
    free(mm->snap);
    mm->snap = NULL;
    free(mm->snap_len);
    mm->snap_len = NULL;
    free(mm->snap_taken);
    mm->snap_taken = NULL;
    free(mm->secs);
    mm->secs = NULL;
    mm->nsecs = 0;
    mm->nentries = 0;
}

/* ---- return path, destination side ---- */

/* Write what rp_out holds to t without blocking; a write error drops the
 * messages (the source then sees the connection fail, which fails it). */
static void rp_flush(MigMigration *mm, MigTransport *t)
{
    while (mm->rp_out_len && t) {
        ssize_t n = mig_transport_write(t, mm->rp_out, mm->rp_out_len);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who,
                          "return path: write failed (%s), %zu bytes dropped",
                          mig_errno_name(n < 0 ? (int)n : -EPIPE), mm->rp_out_len);
            mm->rp_out_len = 0;
            return;
        }
        memmove(mm->rp_out, mm->rp_out + n, mm->rp_out_len - (size_t)n);
        mm->rp_out_len -= (size_t)n;
    }
}

static void rp_send(MigMigration *mm, uint16_t type, uint32_t val)
{
    if (mm->rp_out_len + 8 > sizeof(mm->rp_out)) {
        mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who,
                      "return path: queue full, message %u dropped", type);
        return;
    }
    uint8_t *b = mm->rp_out + mm->rp_out_len;
    b[0] = (uint8_t)(type >> 8);
    b[1] = (uint8_t)type;
    b[2] = 0;
    b[3] = 4;
    b[4] = (uint8_t)(val >> 24);
    b[5] = (uint8_t)(val >> 16);
    b[6] = (uint8_t)(val >> 8);
    b[7] = (uint8_t)val;
    mm->rp_out_len += 8;
    mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who, "return path: send %s %u",
                  type == RP_MSG_SHUT ? "SHUT" : "PONG", val);
    rp_flush(mm, mm->t);
}

static void linger_writable(MigTransport *t, uint32_t events, void *opaque)
{
    MigMigration *mm = opaque;
    rp_flush(mm, t);
    if (mm->rp_out_len && !(events & (MIG_LOOP_ERR | MIG_LOOP_HUP)))
        return;
    mm->rp_out_len = 0;
    mig_transport_watch(t, 0, NULL, NULL);
    mm->linger_t = NULL;
    mig_transport_close(t);
}

/* Destination end: tell the source how the load ended (SHUT), and keep the
 * connection until those bytes are out when the transport is full. */
static void rp_shut(MigMigration *mm, MigOutcome outcome)
{
    if (!mm->incoming || !mm->rp_open || !mm->t)
        return;
    mm->rp_open = false;
    rp_send(mm, RP_MSG_SHUT, outcome == MIG_OUTCOME_COMPLETED ? 0 : 1);
    if (!mm->rp_out_len)
        return;
    stop_sources(mm);
    mig_stream_free(mm->s);
    mm->s = NULL;
    mig_transport_close(mm->linger_t);
    mm->linger_t = mm->t;
    mm->t = NULL;
    mig_transport_watch(mm->linger_t, MIG_LOOP_OUT, linger_writable, mm);
}

/* Common end of a migration: the state is already terminal. */
static void finish(MigMigration *mm, MigOutcome outcome)
{
    rp_shut(mm, outcome);
    close_stream(mm);
    if (mm->incoming && outcome != MIG_OUTCOME_COMPLETED)
        restore_full(mm);
    cleanup_handlers(mm, outcome);
    mm->end_ns = now_ns(mm);
    mm->has_end = true;
    mm->sp = SP_IDLE;
    mm->dp = DP_IDLE;
    if (!mm->incoming && outcome != MIG_OUTCOME_COMPLETED && mm->stopped_guest &&
        mm->env.guest_resume) {
        mm->stopped_guest = false;
        mm->env.guest_resume(mm->env.opaque);
    }
    if (mm->env.finished)
        mm->env.finished(mm->env.opaque, mm->status);
}

static int rp_read(MigMigration *mm, uint16_t *type, uint32_t *val, char *why, size_t whylen);

/* Source failing for another reason: did the destination say it failed
 * (its SHUT may be waiting on the return path)? */
static bool rp_reported_failure(MigMigration *mm)
{
    if (mm->incoming || !mm->rp_on || !mm->t || mm->sp == SP_RP_WAIT)
        return false;
    for (int i = 0; i < 4; i++) {
        uint16_t type;
        uint32_t val;
        char why[256];
        if (rp_read(mm, &type, &val, why, sizeof(why)) != 1)
            return false;
        if (type == RP_MSG_SHUT)
            return val != 0;
    }
    return false;
}

static void fail(MigMigration *mm, int err, const char *msg)
{
    if (mig_status_is_terminal(mm->status) || mm->status == MIG_STATUS_NONE)
        return;
    if (mm->status == MIG_STATUS_CANCELLING)
        return; /* the cancel wins; its defer finishes the job */
    snprintf(mm->error, sizeof(mm->error), "%s%s",
             rp_reported_failure(mm) ? "the destination reported a failed load over the return "
                                       "path; "
                                     : "",
             msg ? msg : mig_errno_name(err));
    mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who, "migration failing in %s phase %s",
                  mm->incoming ? "destination" : "source",
                  mm->incoming ? ((unsigned)mm->dp < DP__COUNT ? dst_phase_names[mm->dp] : "?")
                               : ((unsigned)mm->sp < SP__COUNT ? src_phase_names[mm->sp] : "?"));
    mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who, "migration error: %s (%s)",
                  mm->error, mig_errno_name(err));
    mig__migration_set_status(mm, MIG_STATUS_FAILED);
    finish(mm, MIG_OUTCOME_FAILED);
}

static void fail_err(MigMigration *mm, MigErr *err, int code, const char *fallback)
{
    fail(mm, err ? err->code : code, err ? err->msg : fallback);
    mig_err_free(err);
}

void mig_migration_free(MigMigration *mm)
{
    if (!mm)
        return;
    mig_loop_remove(mm->env.loop, mm->cancel_src);
    mm->cancel_src = NULL;
    if (!mig_status_is_terminal(mm->status) && mm->status != MIG_STATUS_NONE)
        cleanup_handlers(mm, MIG_OUTCOME_CANCELLED);
    close_stream(mm);
    cleanup_handlers(mm, MIG_OUTCOME_CANCELLED);
    if (mm->linger_t) {
        mig_transport_watch(mm->linger_t, 0, NULL, NULL);
        mig_transport_close(mm->linger_t);
    }
    free(mm);
}

MigStatus mig_migration_status(const MigMigration *mm)
{
    return mm->status;
}

bool mig_migration_is_incoming(const MigMigration *mm)
{
    return mm->incoming;
}

const char *mig_migration_error(const MigMigration *mm)
{
    return mm->error;
}

uint64_t mig_migration_stream_offset(const MigMigration *mm)
{
    return mm->s ? mig_stream_offset(mm->s) : 0;
}

static bool running(const MigMigration *mm)
{
    return mm->status != MIG_STATUS_NONE && !mig_status_is_terminal(mm->status);
}

MigCapMask mig_migration_caps_known(const MigMigration *mm)
{
    return mm->caps_known;
}

MigCapMask mig_migration_caps(const MigMigration *mm)
{
    return mm->caps;
}

int mig_migration_set_caps(MigMigration *mm, MigCapMask named, MigCapMask states, MigErr **errp)
{
    /* A destination still waiting for its connection may change them (as
     * QEMU allows while -incoming is pending); a load or a send may not. */
    bool waiting = mm->incoming && mm->status == MIG_STATUS_SETUP && !mm->t;
    if (running(mm) && !waiting)
        return mig_err_set(errp, -EBUSY, "There's a migration process in progress");
    for (int c = 0; c < MIG_CAP__COUNT; c++) {
        if (!(named & MIG_CAP_BIT(c)) || !(states & MIG_CAP_BIT(c)))
            continue;
        if (c == MIG_CAP_X_PAGE_FLIP && !mm->env.loop->ops->fd_watch)
            return mig_err_set(errp, -ENOTSUP,
                               "Capability 'x-page-flip' needs a unix socket that can pass "
                               "fds; the %s loop's links cannot carry fds",
                               mm->env.loop->ops->name);
        if (!(mm->caps_known & MIG_CAP_BIT(c)))
            return mig_err_set(errp, -EINVAL, "Capability '%s' is not known by this machine",
                               mig_cap_name(c));
        if (!(mig_caps_supported() & MIG_CAP_BIT(c)))
            return mig_err_set(errp, -ENOTSUP, "Capability '%s' is not supported by migcert",
                               mig_cap_name(c));
    }
    mm->caps = (mm->caps & ~named) | (states & named);
    return 0;
}

void mig_migration_params(const MigMigration *mm, MigParams *out)
{
    *out = mm->params;
}

int mig_migration_set_params(MigMigration *mm, const MigParamsSet *set, MigErr **errp)
{
    int r = mig_params_validate(set, errp);
    if (r < 0)
        return r;
    mig_params_apply(&mm->params, set);
    return 0;
}

/* Per-migration arrays, sized by the registry as it is now. */
static void prepare(MigMigration *mm)
{
    mm->nentries = mig_savevm_count(mm->env.savevm);
    size_t n = mm->nentries ? mm->nentries : 1;
    mm->started = mig_malloc0(n * sizeof(bool));
    mm->pass_done = mig_malloc0(n * sizeof(bool));
    mm->snap_taken = mig_malloc0(n * sizeof(bool));
    mm->snap = mig_malloc0(n * sizeof(*mm->snap));
    mm->snap_len = mig_malloc0(n * sizeof(*mm->snap_len));
    mm->rp_in_len = mm->rp_out_len = 0;
    mm->rp_open = false;
    mm->drain_wait = false;
    mm->error[0] = '\0';
    mm->start_ns = now_ns(mm);
    mm->has_setup_time = mm->has_end = mm->has_downtime = false;
    mm->downtime_ms = mm->expected_downtime_ms = 0;
    mm->passes = 0;
    mm->stopped_guest = false;
    mm->bandwidth = 0;
    mm->dirty_rate = 0;
}

/* ------------------------------------------------------------ source */

static void src_produce(void *opaque);

static void src_kick(MigMigration *mm)
{
    if (!mm->kick_src)
        mm->kick_src = mig_loop_defer(mm->env.loop, src_produce, mm);
}

static void src_writable(MigTransport *t, uint32_t events, void *opaque)
{
    MigMigration *mm = opaque;
    mig_transport_watch(t, 0, NULL, NULL);
    mm->watching = false;
    src_produce(mm);
}

static void src_timer(void *opaque)
{
    MigMigration *mm = opaque;
    mm->timer_src = NULL;
    src_produce(mm);
}

static bool src_alive(const MigMigration *mm)
{
    return !mm->incoming && (mm->status == MIG_STATUS_SETUP || mm->status == MIG_STATUS_ACTIVE ||
                             mm->status == MIG_STATUS_DEVICE);
}

static const MigSaveEntry *entry_at(MigMigration *mm, size_t i)
{
    return mig_savevm_entry(mm->env.savevm, i);
}

static bool iter_active(const MigSaveEntry *e)
{
    return e && e->kind == MIG_SAVE_ITERATIVE && (!e->iter->is_active || e->iter->is_active(e->opaque));
}

static void put_header(MigStream *s, uint8_t type, const MigSaveEntry *e)
{
    MigSectionHeader h;
    memset(&h, 0, sizeof(h));
    h.type = type;
    h.section_id = e->section_id;
    snprintf(h.idstr, sizeof(h.idstr), "%s", e->idstr);
    h.instance_id = e->instance_id;
    h.version_id = e->version_id;
    mig_stream_put_section_header(s, &h);
}

static int src_setup(MigMigration *mm)
{
    MigStream *s = mm->s;
    const char *caps[MIG_CAP__COUNT];
    size_t ncaps = 0;
    for (int c = 0; c < MIG_CAP__COUNT; c++)
        if ((mm->caps & MIG_CAP_BIT(c)) && mig_cap_validatable(c))
            caps[ncaps++] = mig_cap_name(c);
    if (mm->env.ram) {
        mig_ram_set_caps(mm->env.ram, mm->caps);
        mig_ram_set_flip(mm->env.ram, mig_transport_is_local(mm->t) ? mm->t : NULL);
    }
    mig_stream_put_file_header(s);
    mig_stream_put_configuration(s, mm->machine_type, caps, ncaps);
    if (mm->rp_on) {
        /* As QEMU: the destination opens its end, then a ping to trace. */
        mig_stream_put_u8(s, MIG_SECTION_COMMAND);
        mig_stream_put_be16(s, CMD_OPEN_RETURN_PATH);
        mig_stream_put_be16(s, 0);
        mig_stream_put_u8(s, MIG_SECTION_COMMAND);
        mig_stream_put_be16(s, CMD_PING);
        mig_stream_put_be16(s, 4);
        mig_stream_put_be32(s, 1);
    }
    for (size_t i = 0; i < mm->nentries; i++) {
        const MigSaveEntry *e = entry_at(mm, i);
        if (!iter_active(e))
            continue;
        put_header(s, MIG_SECTION_START, e);
        mm->started[i] = true;
        MigErr *err = NULL;
        int r = e->iter->save_setup ? e->iter->save_setup(e->opaque, s, &err) : 0;
        if (r < 0) {
            mig_err_prepend(&err, "savevm: setup of '%s' failed", e->idstr);
            fail_err(mm, err, r, "savevm: setup failed");
            return r;
        }
        mig_stream_put_section_footer(s, e->section_id);
    }
    mm->setup_end_ns = now_ns(mm);
    mm->has_setup_time = true;
    mm->pass_start_ns = mm->last_sync_ns = mm->window_start_ns = now_ns(mm);
    mm->pass_start_bytes = mm->t->bytes_written - mig_transport_queued(mm->t);
    mm->window_start_off = mig_stream_offset(s);
    mm->sp = SP_ITERATE;
    mm->entry = 0;
    mig__migration_set_status(mm, MIG_STATUS_ACTIVE);
    return 0;
}

static void src_switchover(MigMigration *mm)
{
    if (mm->env.guest_running && mm->env.guest_running(mm->env.opaque)) {
        mm->stopped_guest = true;
        if (mm->env.guest_stop)
            mm->env.guest_stop(mm->env.opaque);
    }
    mm->stop_ns = now_ns(mm);
    mm->entry = 0;
    mm->in_section = false;
    if (mm->caps & MIG_CAP_BIT(MIG_CAP_PAUSE_BEFORE_SWITCHOVER)) {
        mm->sp = SP_SWITCHOVER_WAIT;
        mig__migration_set_status(mm, MIG_STATUS_PRE_SWITCHOVER);
        return;
    }
    mm->sp = SP_END;
    mig__migration_set_status(mm, MIG_STATUS_DEVICE);
}

/* All handlers finished the pass: sync, measure, decide.  sync false: only
 * measure and decide again (after probing the rate of a transport that
 * holds bytes; not a new pass). */
static void src_end_of_pass(MigMigration *mm, bool sync)
{
    uint64_t now = now_ns(mm);
    if (sync)
        mm->passes++;
    for (size_t i = 0; i < mm->nentries; i++) {
        const MigSaveEntry *e = entry_at(mm, i);
        if (sync && iter_active(e) && e->iter->save_sync)
            e->iter->save_sync(e->opaque);
        mm->pass_done[i] = false;
    }
    uint64_t dt = now - mm->last_sync_ns;
    if (sync && mm->env.ram && dt > 0)
        mm->dirty_rate = mig_ram_last_sync_dirtied(mm->env.ram) * NS_PER_S / dt;
    if (sync)
        mm->last_sync_ns = now;
    uint64_t dirty = 0;
    for (size_t i = 0; i < mm->nentries; i++) {
        const MigSaveEntry *e = entry_at(mm, i);
        if (!iter_active(e) || !e->iter->save_pending)
            continue;
        uint64_t pre = 0, stop = 0;
        e->iter->save_pending(e->opaque, &pre, &stop);
        dirty += pre + stop;
    }
    /* What stop-and-copy must still push also includes the bytes already
     * queued in the stream (up to SRC_HWM) and in the transport (a socket's
     * send queue, the simulated link's buffer): the guest waits for those
     * too.  The rate is what reached the peer, not what a big transport
     * buffer took in. */
    uint64_t tq = mig_transport_queued(mm->t);
    uint64_t queued = mig_stream_pending(mm->s) + tq;
    uint64_t pending = dirty + queued;
    uint64_t delivered = mm->t->bytes_written - tq;
    uint64_t bytes = delivered > mm->pass_start_bytes ? delivered - mm->pass_start_bytes : 0;
    uint64_t pass_ns = now - mm->pass_start_ns;
    if (pass_ns > 0 && bytes > 0)
        mm->bandwidth = (uint64_t)((double)bytes * NS_PER_S / (double)pass_ns);
    else if (bytes > 0 || !mm->bandwidth)
        mm->bandwidth = UINT64_MAX; /* nothing measurable: the link kept up instantly */
    /* ... unless the transport still holds bytes: then nothing is known */
    bool unrated = mm->bandwidth == UINT64_MAX && tq > 0;
    double expected = mm->bandwidth == UINT64_MAX ? 0.0
                                                  : (double)pending * 1000.0 / (double)mm->bandwidth;
    mm->expected_downtime_ms = (uint64_t)expected;
    uint64_t syncs = mm->env.ram ? mig_ram_sync_count(mm->env.ram) : mm->passes + 1;
    mig_trace_log(mm->env.loop->trace, now, mm->who,
                  "pass %" PRIu64 " %s: pending %" PRIu64 " bytes, expected downtime %" PRIu64
                  " ms",
                  mm->passes, sync ? "done" : "re-measured", pending, mm->expected_downtime_ms);
    if (sync)
        emit(mm, "MIGRATION_PASS", json_pack("{s:I}", "pass", (json_int_t)syncs));
    if (!src_alive(mm))
        return;
    bool converged = !unrated && expected <= (double)mm->params.downtime_limit;
    bool bounded = mm->params.x_max_passes && mm->passes >= mm->params.x_max_passes;
    if (!converged && !bounded &&
        (unrated || (mm->bandwidth != UINT64_MAX && mm->bandwidth > 0 &&
                     (double)(pending - queued) * 1000.0 / (double)mm->bandwidth <=
                         (double)mm->params.downtime_limit))) {
        /* The dirty pages alone would fit: what is in the way is bytes
         * queued earlier.  Let them drain to half the budget, then sync and
         * decide again (src_iterate).  Or the rate is not known yet (the
         * pass went into the transport's buffer at once): probe it, and
         * decide again without a new pass. */
        mm->drain_target = unrated ? 0
                                   : (uint64_t)((double)mm->params.downtime_limit *
                                                (double)mm->bandwidth / 2000.0);
        if (queued > mm->drain_target) {
            mm->drain_wait = true;
            mm->drain_timed = false;
            mm->drain_probe = unrated;
            mig_trace_log(mm->env.loop->trace, now, mm->who,
                          unrated ? "%" PRIu64 " queued bytes at an unknown rate: probing "
                                    "it (target %" PRIu64 ")"
                                  : "draining %" PRIu64 " queued bytes to %" PRIu64
                                    " before deciding",
                          queued, mm->drain_target);
            return;
        }
    }
    if (converged || bounded) {
        if (!converged)
            mig_trace_log(mm->env.loop->trace, now, mm->who,
                          "pass bound x-max-passes=%" PRIu64 " reached: stopping the guest",
                          mm->params.x_max_passes);
        src_switchover(mm);
        return;
    }
    mm->pass_start_ns = now;
    mm->pass_start_bytes = delivered;
}

/* One PART section (or the end of a pass).  Returns 1 when the producer must
 * wait for the rate-limit timer. */
static int src_iterate(MigMigration *mm)
{
    MigStream *s = mm->s;
    if (mm->drain_wait) {
        int r = mig_stream_flush(s);
        if (r < 0 && r != -EAGAIN)
            return 0; /* sticky error: the producer reports it */
        if (!mm->drain_probe && mig_stream_pending(s) > mm->drain_target) {
            mm->watching = true;
            mig_transport_watch(mm->t, MIG_LOOP_OUT, src_writable, mm);
            return 1;
        }
        /* The rest sits in the transport, and no readiness says when it has
         * left: wait as long as that takes at the measured rate (a probe
         * when there is none), then decide again with a fresh measure. */
        uint64_t q = mig_stream_pending(s) + mig_transport_queued(mm->t);
        if (q > mm->drain_target && !mm->drain_timed) {
            uint64_t wait = DRAIN_PROBE_NS;
            if (!mm->drain_probe && mm->bandwidth && mm->bandwidth != UINT64_MAX)
                wait = MIG_MAX(NS_PER_MS, (uint64_t)((double)(q - mm->drain_target) *
                                                     NS_PER_S / (double)mm->bandwidth));
            mm->drain_timed = true;
            mm->timer_src = mig_loop_timer_add(mm->env.loop, now_ns(mm) + wait, src_timer, mm);
            return 1;
        }
        mm->drain_wait = false;
        src_end_of_pass(mm, !mm->drain_probe);
        return 0;
    }
    size_t budget = SRC_BUDGET;
    uint64_t bw = mm->params.max_bandwidth;
    if (bw) {
        uint64_t now = now_ns(mm);
        if (now >= mm->window_start_ns + RATE_WINDOW_NS) {
            mm->window_start_ns = now;
            mm->window_start_off = mig_stream_offset(s);
        }
        uint64_t allowed = bw / (NS_PER_S / RATE_WINDOW_NS);
        if (allowed == 0)
            allowed = 1;
        uint64_t used = mig_stream_offset(s) - mm->window_start_off;
        if (used >= allowed) {
            mm->timer_src = mig_loop_timer_add(mm->env.loop, mm->window_start_ns + RATE_WINDOW_NS,
                                               src_timer, mm);
            return 1;
        }
        budget = (size_t)MIG_MIN((uint64_t)budget, allowed - used);
    }
    size_t n = mm->nentries;
    for (size_t k = 0; k < n; k++) {
        size_t i = (mm->entry + k) % n;
        const MigSaveEntry *e = entry_at(mm, i);
        if (!iter_active(e) || mm->pass_done[i])
            continue;
        put_header(s, MIG_SECTION_PART, e);
        MigErr *err = NULL;
        int r = e->iter->save_iterate(e->opaque, s, budget, &err);
        if (r < 0) {
            mig_err_prepend(&err, "savevm: iteration of '%s' failed", e->idstr);
            fail_err(mm, err, r, "savevm: iteration failed");
            return 0;
        }
        mig_stream_put_section_footer(s, e->section_id);
        if (r == 1)
            mm->pass_done[i] = true;
        mm->entry = (i + 1) % n;
        return 0;
    }
    src_end_of_pass(mm, true);
    return 0;
}

static void src_end(MigMigration *mm)
{
    MigStream *s = mm->s;
    while (mm->entry < mm->nentries && !iter_active(entry_at(mm, mm->entry)))
        mm->entry++;
    if (mm->entry >= mm->nentries) {
        mm->sp = SP_FULL;
        mm->entry = 0;
        return;
    }
    const MigSaveEntry *e = entry_at(mm, mm->entry);
    if (!mm->in_section) {
        put_header(s, MIG_SECTION_END, e);
        mm->in_section = true;
    }
    MigErr *err = NULL;
    int r = e->iter->save_complete ? e->iter->save_complete(e->opaque, s, SRC_BUDGET, &err) : 1;
    if (r < 0) {
        mig_err_prepend(&err, "savevm: completion of '%s' failed", e->idstr);
        fail_err(mm, err, r, "savevm: completion failed");
        return;
    }
    if (r == 1) {
        mig_stream_put_section_footer(s, e->section_id);
        mm->in_section = false;
        mm->entry++;
    }
}

static void src_full(MigMigration *mm)
{
    MigStream *s = mm->s;
    for (; mm->entry < mm->nentries; mm->entry++) {
        const MigSaveEntry *e = entry_at(mm, mm->entry);
        if (e->kind != MIG_SAVE_FULL || !mig_savevm_entry_needed(e))
            continue;
        put_header(s, MIG_SECTION_FULL, e);
        MigErr *err = NULL;
        int r = mig_savevm_entry_save_full(e, s, &err);
        if (r < 0) {
            mig_err_prepend(&err, "savevm: failed to save '%s'", e->idstr);
            fail_err(mm, err, r, "savevm: save failed");
            return;
        }
        mig_stream_put_section_footer(s, e->section_id);
        mm->entry++;
        return;
    }
    mm->sp = SP_TAIL;
}

static void src_tail(MigMigration *mm)
{
    mig_stream_put_eof(mm->s);
    json_t *desc = mig_savevm_vmdesc(mm->env.savevm);
    char *text = json_dumps(desc, 0);
    json_decref(desc);
    if (text) {
        mig_stream_put_vmdesc(mm->s, text, strlen(text));
        free(text);
    }
    mm->sp = SP_DRAIN;
}

/* device -> completed: the destination has everything (and, with the
 * return path, said it loaded it). */
static void src_done(MigMigration *mm)
{
    uint64_t now = now_ns(mm);
    mm->downtime_ms = (now - mm->stop_ns) / NS_PER_MS;
    mm->has_downtime = true;
    mig__migration_set_status(mm, MIG_STATUS_COMPLETED);
    finish(mm, MIG_OUTCOME_COMPLETED);
}

/* Read one return-path message without blocking.  Returns 1 with *type and
 * *val set, 0 when the rest has not arrived yet, or a negative errno with
 * `why` set (-EPIPE: the destination closed it first). */
static int rp_read(MigMigration *mm, uint16_t *type, uint32_t *val, char *why, size_t whylen)
{
    for (;;) {
        size_t need = 4;
        if (mm->rp_in_len >= 4) {
            uint16_t t = (uint16_t)(mm->rp_in[0] << 8 | mm->rp_in[1]);
            uint16_t len = (uint16_t)(mm->rp_in[2] << 8 | mm->rp_in[3]);
            if (t != RP_MSG_SHUT && t != RP_MSG_PONG) {
                snprintf(why, whylen, "return path: unknown message type 0x%04x (length %u)", t,
                         len);
                return -EPROTO;
            }
            if (len != 4) {
                snprintf(why, whylen,
                         "return path: message '%s' (0x%04x) with incorrect length %u, "
                         "expecting 4",
                         t == RP_MSG_SHUT ? "SHUT" : "PONG", t, len);
                return -EPROTO;
            }
            need = 8;
            if (mm->rp_in_len == need) {
                *type = t;
                *val = (uint32_t)mm->rp_in[4] << 24 | (uint32_t)mm->rp_in[5] << 16 |
                       (uint32_t)mm->rp_in[6] << 8 | mm->rp_in[7];
                mm->rp_in_len = 0;
                return 1;
            }
        }
        ssize_t n = mig_transport_read(mm->t, mm->rp_in + mm->rp_in_len, need - mm->rp_in_len);
        if (n > 0) {
            mm->rp_in_len += (size_t)n;
            continue;
        }
        if (n == -EAGAIN)
            return 0;
        if (n == 0) {
            snprintf(why, whylen,
                     "return path: the destination closed the connection before reporting "
                     "the end of its load");
            return -EPIPE;
        }
        snprintf(why, whylen, "return path: read failed (%s)", mig_errno_name((int)n));
        return (int)n;
    }
}

static void src_rp_poll(MigMigration *mm);

static void src_rp_readable(MigTransport *t, uint32_t events, void *opaque)
{
    MigMigration *mm = opaque;
    mig_transport_watch(t, 0, NULL, NULL);
    mm->watching = false;
    src_rp_poll(mm);
}

/* SP_RP_WAIT: handle what the destination sent; SHUT decides. */
static void src_rp_poll(MigMigration *mm)
{
    for (;;) {
        uint16_t type;
        uint32_t val;
        char why[256];
        int r = rp_read(mm, &type, &val, why, sizeof(why));
        if (r == 0) {
            mm->watching = true;
            mig_transport_watch(mm->t, MIG_LOOP_IN, src_rp_readable, mm);
            return;
        }
        if (r < 0) {
            fail(mm, r, why);
            return;
        }
        if (type == RP_MSG_PONG) {
            mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who, "return path: PONG %u",
                          val);
            continue;
        }
        if (val != 0) {
            snprintf(why, sizeof(why),
                     "the destination failed to load the migration (return path: SHUT %u)", val);
            fail(mm, -EIO, why);
            return;
        }
        mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who,
                      "return path: SHUT 0, the destination loaded everything");
        src_done(mm);
        return;
    }
}

/* Every byte is out (SP_DRAIN flushed). */
static void src_complete(MigMigration *mm)
{
    if (mm->t)
        mig_transport_shutdown_write(mm->t);
    if (!mm->rp_on) {
        src_done(mm);
        return;
    }
    mm->sp = SP_RP_WAIT;
    mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who,
                  "all sent; waiting for the destination's SHUT on the return path");
    src_rp_poll(mm);
}

static void src_produce(void *opaque)
{
    MigMigration *mm = opaque;
    mm->kick_src = NULL;
    if (!src_alive(mm) || mm->watching || mm->timer_src)
        return;
    uint64_t slice_start = mig_stream_offset(mm->s);
    for (;;) {
        if (!src_alive(mm) || mm->sp == SP_SWITCHOVER_WAIT)
            return;
        MigStream *s = mm->s;
        if (mig_stream_error(s)) {
            MigErr *err = NULL;
            int code = mig_stream_take_error(s, &err);
            mig_err_prepend(&err, "migration stream");
            fail_err(mm, err, code, "stream error");
            return;
        }
        size_t pend = mig_stream_pending(s);
        if (pend >= SRC_HWM || (mm->sp == SP_DRAIN && pend > 0)) {
            int r = mig_stream_flush(s);
            if (r == -EAGAIN) {
                if (mig_stream_pending(s) >= SRC_HWM / 2 || mm->sp == SP_DRAIN) {
                    mm->watching = true;
                    mig_transport_watch(mm->t, MIG_LOOP_OUT, src_writable, mm);
                    return;
                }
            } else if (r < 0) {
                continue; /* sticky error: reported above */
            }
            continue;
        }
        if (mig_stream_offset(s) - slice_start >= SRC_SLICE) {
            src_kick(mm);
            return;
        }
        switch (mm->sp) {
        case SP_SETUP:
            src_setup(mm);
            break;
        case SP_ITERATE:
            if (src_iterate(mm) == 1)
                return;
            break;
        case SP_END:
            src_end(mm);
            break;
        case SP_FULL:
            src_full(mm);
            break;
        case SP_TAIL:
            src_tail(mm);
            break;
        case SP_DRAIN: {
            int r = mig_stream_flush(s);
            if (r == 0) {
                src_complete(mm);
                return;
            }
            if (r == -EAGAIN) {
                mm->watching = true;
                mig_transport_watch(mm->t, MIG_LOOP_OUT, src_writable, mm);
                return;
            }
            break;
        }
        default:
            return;
        }
    }
}

int mig_migration_start(MigMigration *mm, MigTransport *t, MigErr **errp)
{
    if (running(mm)) {
        mig_transport_close(t);
        return mig_err_set(errp, -EBUSY, "There's a migration process in progress");
    }
    if (mm->status != MIG_STATUS_NONE && mm->incoming) {
        mig_transport_close(t);
        return mig_err_set(errp, -EINVAL, "this machine was a migration destination");
    }
    int fault = mig_fault_fire(MIG_FAULT_MIGRATION_START);
    if (fault) {
        mig_transport_close(t);
        return mig_err_set(errp, fault, "migration: start failed (injected fault)");
    }
    bool rp = (mm->caps & MIG_CAP_BIT(MIG_CAP_RETURN_PATH)) != 0;
    if (rp && !has_back_channel(t)) {
        const char *kind = t->ops->kind;
        mig_transport_close(t);
        return mig_err_set(errp, -ENOTSUP,
                           "capability 'return-path' needs a connection the destination can "
                           "answer on; a '%s' transport has none (use a unix: or fd: socket, "
                           "or disable return-path)",
                           kind);
    }
    if (mm->caps & MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP)) {
        /* Page flipping: pages go through a pipe passed over the socket. */
        t = mig_transport_local_new(t, true, errp);
        if (!t)
            return -ENOTSUP;
    }
    mm->incoming = false;
    prepare(mm);
    mm->rp_on = rp;
    mm->t = t;
    mm->s = mig_stream_new_writer(t);
    mm->sp = SP_SETUP;
    mig__migration_set_status(mm, MIG_STATUS_SETUP);
    if (mm->status == MIG_STATUS_SETUP)
        src_kick(mm);
    return 0;
}

int mig_migration_continue(MigMigration *mm, MigStatus expected, MigErr **errp)
{
    if (mm->status != expected)
        return mig_err_set(errp, -EINVAL, "Migration not in expected state: %s",
                           mig_status_name(mm->status));
    if (mm->status != MIG_STATUS_PRE_SWITCHOVER || mm->sp != SP_SWITCHOVER_WAIT)
        return mig_err_set(errp, -EINVAL, "Migration not in expected state: %s",
                           mig_status_name(mm->status));
    mm->sp = SP_END;
    mig__migration_set_status(mm, MIG_STATUS_DEVICE);
    if (mm->status == MIG_STATUS_DEVICE)
        src_kick(mm);
    return 0;
}

/* ------------------------------------------------------------ destination */

static void dst_consume(void *opaque);

static void dst_readable(MigTransport *t, uint32_t events, void *opaque)
{
    MigMigration *mm = opaque;
    mig_transport_watch(t, 0, NULL, NULL);
    mm->watching = false;
    mm->hangup_seen = (events & (MIG_LOOP_ERR | MIG_LOOP_HUP)) != 0;
    dst_consume(mm);
}

static void dst_timer(void *opaque)
{
    MigMigration *mm = opaque;
    mm->timer_src = NULL;
    dst_consume(mm);
}

static bool dst_alive(const MigMigration *mm)
{
    return mm->incoming && (mm->status == MIG_STATUS_SETUP || mm->status == MIG_STATUS_ACTIVE);
}

static int check_config(MigMigration *mm, const MigStreamConfig *cfg, MigErr **errp)
{
    char name[1100];
    size_t len = strlen(cfg->machine);
    if (strncmp(cfg->machine, mm->machine_type, len) != 0)
        return mig_err_set(errp, -EINVAL, "Machine type received is '%s' and local is '%s'",
                           esc(cfg->machine, name, sizeof(name)), mm->machine_type);
    MigCapMask got = 0;
    for (size_t i = 0; i < cfg->ncaps; i++) {
        int c = mig_cap_parse(cfg->caps[i]);
        if (c < 0 || !mig_cap_validatable(c))
            return mig_err_set(errp, -EINVAL,
                               "Received capability '%s' is not a validatable capability known "
                               "here",
                               esc(cfg->caps[i], name, sizeof(name)));
        if (!(mm->caps & MIG_CAP_BIT(c)))
            return mig_err_set(errp, -EINVAL,
                               "capability '%s' announced by the source is not enabled on the "
                               "destination",
                               cfg->caps[i]);
        got |= MIG_CAP_BIT(c);
    }
    for (int c = 0; c < MIG_CAP__COUNT; c++)
        if ((mm->caps & MIG_CAP_BIT(c)) && mig_cap_validatable(c) && !(got & MIG_CAP_BIT(c)))
            return mig_err_set(errp, -EINVAL,
                               "capability '%s' is enabled on the destination but the source "
                               "did not announce it",
                               mig_cap_name(c));
    return 0;
}

static long find_entry(MigMigration *mm, const char *idstr, uint32_t instance)
{
    for (size_t i = 0; i < mm->nentries; i++) {
        const MigSaveEntry *e = entry_at(mm, i);
        if (e->instance_id == instance && strcmp(e->idstr, idstr) == 0)
            return (long)i;
    }
    return -1;
}

static const SectionMap *find_section(MigMigration *mm, uint32_t id)
{
    for (size_t i = 0; i < mm->nsecs; i++)
        if (mm->secs[i].section_id == id)
            return &mm->secs[i];
    return NULL;
}

/* Look up a START/FULL header's handler and check its version. */
static int resolve_entry(MigMigration *mm, const MigSectionHeader *h, MigErr **errp)
{
    long i = find_entry(mm, h->idstr, h->instance_id);
    char name[1100];
    if (i < 0)
        return mig_err_set(errp, -EINVAL,
                           "Unknown savevm section or instance '%s' %u. Make sure that your "
                           "current VM setup matches your saved VM setup, including any "
                           "hotplugged devices",
                           esc(h->idstr, name, sizeof(name)), h->instance_id);
    const MigSaveEntry *e = entry_at(mm, (size_t)i);
    if (h->version_id > e->version_id)
        return mig_err_set(errp, -EINVAL, "savevm: unsupported version %u for '%s' v%u",
                           h->version_id, e->idstr, e->version_id);
    bool want_iter = h->type == MIG_SECTION_START;
    if (want_iter != (e->kind == MIG_SAVE_ITERATIVE))
        return mig_err_set(errp, -EINVAL, "savevm: section '%s' arrived as %s, expected %s",
                           e->idstr, mig_section_type_name(h->type) ? mig_section_type_name(h->type) : "?",
                           e->kind == MIG_SAVE_ITERATIVE ? "start/part/end" : "full");
    return (int)i;
}

/* A COMMAND section (its type, cmd and len already read). */
static int dst_command(MigMigration *mm, uint16_t cmd, uint16_t len, uint64_t at, MigErr **errp)
{
    MigStream *s = mm->s;
    unsigned long long off = (unsigned long long)at;
    switch (cmd) {
    case CMD_OPEN_RETURN_PATH:
        if (len != 0)
            return mig_err_set(errp, -EINVAL,
                               "command open-return-path with length %u, expected 0 (offset %llu)",
                               len, off);
        if (mm->rp_open)
            return mig_err_set(errp, -EINVAL,
                               "command open-return-path while the return path is already open "
                               "(offset %llu)",
                               off);
        if (!has_back_channel(mm->t))
            return mig_err_set(errp, -ENOTSUP,
                               "command open-return-path: a '%s' transport cannot carry "
                               "messages back to the source (offset %llu)",
                               mm->t->ops->kind, off);
        mm->rp_open = true;
        mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who, "return path opened");
        return 0;
    case CMD_PING: {
        if (len != 4)
            return mig_err_set(errp, -EINVAL, "command ping with length %u, expected 4 (offset "
                                              "%llu)",
                               len, off);
        uint32_t v = mig_stream_get_be32(s);
        if (mig_stream_starved(s))
            return -EAGAIN;
        int r = mig_stream_take_error(s, errp);
        if (r < 0)
            return r;
        if (!mm->rp_open)
            return mig_err_set(errp, -EINVAL,
                               "command ping (0x%x) received with no return path (offset %llu)",
                               v, off);
        rp_send(mm, RP_MSG_PONG, v);
        return 0;
    }
    default:
        return mig_err_set(errp, -ENOTSUP,
                           "command %u (length %u) is not supported by this destination "
                           "(offset %llu)",
                           cmd, len, off);
    }
}

/* One unit.  Returns 0 progress, 1 done, -EAGAIN starved, other <0 failed
 * (*errp set). */
static int dst_step(MigMigration *mm, MigErr **errp)
{
    MigStream *s = mm->s;
    int r;
    switch (mm->dp) {
    case DP_HEADER:
        mig_stream_mark(s);
        r = mig_stream_get_file_header(s, errp);
        if (r < 0)
            return r;
        /* Capabilities that change the RAM format (x-ignore-shared) must be
         * known to the loader before its first record. */
        if (mm->env.ram)
            mig_ram_set_caps(mm->env.ram, mm->caps);
        for (size_t i = 0; i < mm->nentries; i++) {
            const MigSaveEntry *e = entry_at(mm, i);
            if (e->kind != MIG_SAVE_ITERATIVE)
                continue;
            mm->started[i] = true;
            r = e->iter->load_setup ? e->iter->load_setup(e->opaque, errp) : 0;
            if (r < 0) {
                mig_err_prepend(errp, "load setup of '%s'", e->idstr);
                return r;
            }
        }
        mm->dp = DP_CONFIG;
        mig__migration_set_status(mm, MIG_STATUS_ACTIVE);
        return 0;
    case DP_CONFIG: {
        mig_stream_mark(s);
        int b = mig_stream_peek_u8(s, 0);
        if (b < 0 && mig_stream_starved(s))
            return -EAGAIN;
        if (b != MIG_SECTION_CONFIGURATION)
            return mig_err_set(errp, -EINVAL, "Configuration section missing (offset %llu)",
                               (unsigned long long)mig_stream_offset(s));
        MigStreamConfig cfg;
        r = mig_stream_get_configuration(s, &cfg, errp);
        if (r < 0)
            return r;
        r = check_config(mm, &cfg, errp);
        if (r < 0)
            return r;
        mm->dp = DP_SECTION;
        return 0;
    }
    case DP_SECTION: {
        mig_stream_mark(s);
        MigSectionHeader h;
        r = mig_stream_get_section_header(s, &h, errp);
        if (r < 0)
            return r;
        switch (h.type) {
        case MIG_SECTION_START:
        case MIG_SECTION_FULL: {
            int i = resolve_entry(mm, &h, errp);
            if (i < 0)
                return i;
            MIG_FAULT_RETURN_ERR(MIG_FAULT_MIGRATION_LOAD, errp,
                                 "loading section '%s' failed (injected fault)", h.idstr);
            const MigSaveEntry *e = entry_at(mm, (size_t)i);
            mm->hdr = h;
            mm->cur_entry = (size_t)i;
            if (h.type == MIG_SECTION_FULL) {
                snapshot_full(mm, (size_t)i, e);
                r = mig_savevm_entry_load_full(e, s, h.version_id, errp);
                if (r == -EAGAIN || (r == 0 && mig_stream_starved(s)))
                    return -EAGAIN;
                if (r < 0) {
                    mig_err_prepend(errp, "error while loading state for instance 0x%x of "
                                          "device '%s'",
                                    h.instance_id, e->idstr);
                    return r;
                }
                mm->dp = DP_FOOTER;
                return 0;
            }
            if (!find_section(mm, h.section_id)) {
                mm->secs = mig_realloc(mm->secs, (mm->nsecs + 1) * sizeof(*mm->secs));
                mm->secs[mm->nsecs++] = (SectionMap){h.section_id, (size_t)i, h.version_id};
            }
            mm->dp = DP_PAYLOAD;
            return 0;
        }
        case MIG_SECTION_PART:
        case MIG_SECTION_END: {
            const SectionMap *m = find_section(mm, h.section_id);
            if (!m)
                return mig_err_set(errp, -EINVAL, "Unknown savevm section %u (offset %llu)",
                                   h.section_id, (unsigned long long)h.offset);
            const MigSaveEntry *e = entry_at(mm, m->entry);
            mm->hdr = h;
            snprintf(mm->hdr.idstr, sizeof(mm->hdr.idstr), "%s", e->idstr);
            mm->hdr.instance_id = e->instance_id;
            mm->hdr.version_id = m->version_id;
            mm->cur_entry = m->entry;
            mm->dp = DP_PAYLOAD;
            return 0;
        }
        case MIG_SECTION_EOF:
            mm->dp = DP_VMDESC;
            return 0;
        case MIG_SECTION_COMMAND: {
            uint16_t cmd = 0, len = 0;
            r = mig_stream_get_command(s, &cmd, &len, errp);
            if (r < 0)
                return r;
            return dst_command(mm, cmd, len, h.offset, errp);
        }
        default:
            return mig_err_set(errp, -EINVAL, "Unknown savevm section type %d (offset %llu)",
                               h.type, (unsigned long long)h.offset);
        }
    }
    case DP_PAYLOAD: {
        const MigSaveEntry *e = entry_at(mm, mm->cur_entry);
        r = e->iter->load_state(e->opaque, s, &mm->hdr, errp);
        if (r == -EAGAIN)
            return r;
        if (r < 0) {
            /* The loader's own message says "truncated" when the stream
             * ended inside the section. */
            mig_err_prepend(errp, "section '%s' (id %u)", e->idstr, mm->hdr.section_id);
            return r;
        }
        mm->dp = DP_FOOTER;
        return 0;
    }
    case DP_FOOTER:
        mig_stream_mark(s);
        r = mig_stream_get_section_footer(s, mm->hdr.section_id, mm->hdr.idstr, errp);
        if (r == -EAGAIN)
            return r;
        if (r < 0) {
            mig_err_prepend(errp, "section '%s' (id %u)", mm->hdr.idstr, mm->hdr.section_id);
            return r;
        }
        mm->dp = DP_SECTION;
        return 0;
    case DP_VMDESC: {
        mig_stream_mark(s);
        if (mig_stream_at_eof(s))
            return 1; /* no trailer: QEMU only logs this */
        if (mig_stream_starved(s))
            return -EAGAIN;
        int b = mig_stream_peek_u8(s, 0);
        if (b < 0)
            return mig_stream_starved(s) ? -EAGAIN : 1;
        if (b != MIG_SECTION_VMDESCRIPTION) {
            mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who,
                          "Expected vmdescription section, but got %d", b);
            return 1;
        }
        MigSectionHeader h;
        r = mig_stream_get_section_header(s, &h, errp);
        if (r < 0)
            return r;
        char *json = NULL;
        size_t len = 0;
        r = mig_stream_get_vmdesc(s, &json, &len, errp);
        free(json);
        if (r < 0)
            return r;
        return 1;
    }
    default:
        return -EINVAL;
    }
}

/* The stream ended: every iterative handler says whether it got all it
 * needs (load_complete) before the destination completes. */
static int dst_load_complete(MigMigration *mm, MigErr **errp)
{
    for (size_t i = 0; i < mm->nentries; i++) {
        const MigSaveEntry *e = entry_at(mm, i);
        if (e->kind != MIG_SAVE_ITERATIVE || !e->iter->load_complete)
            continue;
        int r = e->iter->load_complete(e->opaque, errp);
        if (r < 0) {
            mig_err_prepend(errp, "end of stream: '%s'", e->idstr);
            return r;
        }
    }
    return 0;
}

static void dst_complete(MigMigration *mm)
{
    mig__migration_set_status(mm, MIG_STATUS_COMPLETED);
    finish(mm, MIG_OUTCOME_COMPLETED);
}

static void dst_kick(MigMigration *mm)
{
    if (!mm->kick_src)
        mm->kick_src = mig_loop_defer(mm->env.loop, dst_consume, mm);
}

static void dst_consume(void *opaque)
{
    MigMigration *mm = opaque;
    mm->kick_src = NULL;
    if (!dst_alive(mm) || mm->watching || mm->timer_src)
        return;
    uint64_t start = mig_stream_offset(mm->s);
    for (;;) {
        if (!dst_alive(mm))
            return;
        if (mig_stream_offset(mm->s) - start >= DST_SLICE) {
            dst_kick(mm);
            return;
        }
        MigErr *err = NULL;
        int r = dst_step(mm, &err);
        if (r == -EAGAIN) {
            mig_err_free(err);
            mig_stream_rewind(mm->s);
            if (!dst_alive(mm))
                return;
            if (mm->hangup_seen) {
                /* The transport reported an error or hang-up but the read
                 * still says "not yet" (bytes in flight before a reset):
                 * a level-triggered watch would fire again at once, so poll
                 * with a short timer instead of spinning. */
                mm->hangup_seen = false;
                mm->timer_src = mig_loop_timer_add(mm->env.loop, now_ns(mm) + NS_PER_MS,
                                                   dst_timer, mm);
                return;
            }
            mm->watching = true;
            mig_transport_watch(mm->t, MIG_LOOP_IN, dst_readable, mm);
            return;
        }
        if (r < 0) {
            if (!err)
                mig_stream_take_error(mm->s, &err);
            fail_err(mm, err, r, "load failed");
            return;
        }
        if (r == 1) {
            r = dst_load_complete(mm, &err);
            if (r < 0) {
                fail_err(mm, err, r, "load failed");
                return;
            }
            dst_complete(mm);
            return;
        }
    }
}

int mig_migration_listen(MigMigration *mm, MigErr **errp)
{
    if (mm->status != MIG_STATUS_NONE)
        return mig_err_set(errp, -EBUSY, "The incoming migration has already been started");
    mm->incoming = true;
    prepare(mm);
    return mig__migration_set_status(mm, MIG_STATUS_SETUP);
}

int mig_migration_start_incoming(MigMigration *mm, MigTransport *t, MigErr **errp)
{
    if (mm->status == MIG_STATUS_NONE) {
        int r = mig_migration_listen(mm, errp);
        if (r < 0) {
            mig_transport_close(t);
            return r;
        }
    }
    if (!mm->incoming || mm->status != MIG_STATUS_SETUP || mm->t) {
        mig_transport_close(t);
        return mig_err_set(errp, -EBUSY, "The incoming migration has already been started");
    }
    if (mm->caps & MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP)) {
        /* The source's pages arrive on the pipe it passes (seed 002). */
        MigErr *err = NULL;
        t = mig_transport_local_new(t, false, &err);
        if (!t) {
            int code = err ? err->code : -ENOTSUP;
            mig_err_prepend(&err, "incoming migration");
            fail(mm, code, err ? err->msg : "x-page-flip needs a unix socket");
            if (errp)
                *errp = err;
            else
                mig_err_free(err);
            return code;
        }
    }
    if (mm->env.ram)
        mig_ram_set_flip(mm->env.ram, mig_transport_is_local(t) ? t : NULL);
    mm->t = t;
    mm->s = mig_stream_new_reader(t);
    mm->dp = DP_HEADER;
    dst_kick(mm);
    return 0;
}

void mig_migration_fail(MigMigration *mm, int err, const char *why)
{
    fail(mm, err, why);
}

/* ------------------------------------------------------------ cancel */

static void cancel_done(void *opaque)
{
    MigMigration *mm = opaque;
    mm->cancel_src = NULL;
    if (mm->status != MIG_STATUS_CANCELLING)
        return;
    mig__migration_set_status(mm, MIG_STATUS_CANCELLED);
    finish(mm, MIG_OUTCOME_CANCELLED);
}

int mig_migration_cancel(MigMigration *mm)
{
    if (!running(mm) || mm->status == MIG_STATUS_CANCELLING)
        return 0;
    int r = mig__migration_set_status(mm, MIG_STATUS_CANCELLING);
    if (r < 0)
        return r;
    /* Stop producing/consuming now; the teardown runs from the loop. */
    stop_sources(mm);
    if (!mm->cancel_src)
        mm->cancel_src = mig_loop_defer(mm->env.loop, cancel_done, mm);
    return 0;
}

/* ------------------------------------------------------------ query */

void mig_migration_query(const MigMigration *mm, MigInfo *out)
{
    memset(out, 0, sizeof(*out));
    out->status = mm->status;
    if (mm->status == MIG_STATUS_NONE)
        return;
    uint64_t end = mm->has_end ? mm->end_ns : mig_loop_now_ns(mm->env.loop);
    uint64_t elapsed_ns = end - mm->start_ns;
    out->has_total_time = true;
    out->total_time = elapsed_ns / NS_PER_MS;
    out->passes = mm->passes;
    if (mm->has_setup_time) {
        out->has_setup_time = true;
        out->setup_time = (mm->setup_end_ns - mm->start_ns) / NS_PER_MS;
    }
    if (!mm->incoming && mm->status == MIG_STATUS_ACTIVE) {
        out->has_expected_downtime = true;
        out->expected_downtime = mm->passes ? mm->expected_downtime_ms : mm->params.downtime_limit;
    }
    if (mm->has_downtime && mm->status == MIG_STATUS_COMPLETED) {
        out->has_downtime = true;
        out->downtime = mm->downtime_ms;
    }
    bool ram_states = mm->status == MIG_STATUS_ACTIVE || mm->status == MIG_STATUS_DEVICE ||
                      mm->status == MIG_STATUS_PRE_SWITCHOVER ||
                      mm->status == MIG_STATUS_COMPLETED;
    if (!mm->incoming && ram_states && mm->env.ram) {
        out->has_ram = true;
        mig_ram_info(mm->env.ram, &out->ram);
        double secs = (double)elapsed_ns / 1e9;
        if (secs > 0) {
            out->ram.mbps = (double)out->ram.transferred * 8.0 / 1e6 / secs;
            out->ram.pages_per_second =
                (uint64_t)((double)(out->ram.normal + out->ram.duplicate) / secs);
        }
        out->ram.dirty_pages_rate = mm->dirty_rate;
    }
    snprintf(out->error_desc, sizeof(out->error_desc), "%s", mm->error);
}
