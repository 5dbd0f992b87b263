/*
 * machine.c - MigMachine: RAM + registry + run state + migration engine
 * (see machine.h).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "machine.h"
#include "../spice/spice-inputs.h"

/* Socket buffer asked for on migration sockets.  A unix stream socket can
 * hold at most the sender's SO_SNDBUF in flight (the default, 208 KiB, makes
 * the source and the destination take turns every ~100 KiB: ~5000 wakeups
 * per GiB, each a scheduling delay on a busy host).  The kernel caps the
 * request at net.core.wmem_max / rmem_max; a refusal only costs speed. */
#define MACHINE_SOCK_BUF (8 << 20)

struct MigMachine {
    MigLoop *loop;
    char name[32];
    char type[128];
    MigRam *ram;
    MigSavevm *sv;
    MigMigration *mm;
    MigRunState rs;
    bool start_paused;
    bool incoming;
    bool incoming_used;
    bool incoming_done; /* the incoming migration completed: the guest is here */
    bool ram_given; /* completed an x-ram-share migration: never runs again */
    const MigGuestOps *guest;
    void *guest_opaque;
    void (*event)(void *opaque, const char *name, json_t *data);
    void *event_opaque;
    MigListener *listener;
    struct {
        const MigMachineObserver *ops;
        void *opaque;
    } obs[8];
    size_t nobs;
    SpiceServer *spice;
    SpiceMain *spice_main;
    SpiceInputsStats spice_inputs;
};

static const char *const run_state_names[MIG_RUN_STATE__COUNT] = {
    [MIG_RUN_STATE_PRELAUNCH] = "prelaunch",
    [MIG_RUN_STATE_RUNNING] = "running",
    [MIG_RUN_STATE_PAUSED] = "paused",
    [MIG_RUN_STATE_INMIGRATE] = "inmigrate",
    [MIG_RUN_STATE_FINISH_MIGRATE] = "finish-migrate",
    [MIG_RUN_STATE_POSTMIGRATE] = "postmigrate",
};

const char *mig_run_state_name(MigRunState s)
{
    return (unsigned)s < MIG_RUN_STATE__COUNT ? run_state_names[s] : "?";
}

static void emit(MigMachine *m, const char *name, json_t *data)
{
    if (m->event)
        m->event(m->event_opaque, name, data);
    json_decref(data);
}

/* The one run-state setter: traces, tells the guest, emits STOP/RESUME. */
static void set_run_state(MigMachine *m, MigRunState to)
{
    MigRunState from = m->rs;
    if (from == to)
        return;
    bool was = from == MIG_RUN_STATE_RUNNING, now = to == MIG_RUN_STATE_RUNNING;
    m->rs = to;
    mig_trace_log(m->loop->trace, mig_loop_now_ns(m->loop), m->name, "run state %s -> %s",
                  mig_run_state_name(from), mig_run_state_name(to));
    if (was != now) {
        if (m->guest && m->guest->run_changed)
            m->guest->run_changed(m->guest_opaque, now);
        for (size_t i = 0; i < m->nobs; i++)
            if (m->obs[i].ops->run_changed)
                m->obs[i].ops->run_changed(m->obs[i].opaque, now);
        /* VFIO-style devices a migration left stopped run again with it. */
        if (now)
            mig_savevm_guest_resumed(m->sv);
        emit(m, now ? "RESUME" : "STOP", json_object());
    }
}

/* ---- engine hooks ---- */

static bool env_guest_running(void *opaque)
{
    MigMachine *m = opaque;
    return m->rs == MIG_RUN_STATE_RUNNING;
}

static void env_guest_stop(void *opaque)
{
    set_run_state(opaque, MIG_RUN_STATE_FINISH_MIGRATE);
}

static void env_guest_resume(void *opaque)
{
    set_run_state(opaque, MIG_RUN_STATE_RUNNING);
}

static void env_finished(void *opaque, MigStatus status)
{
    MigMachine *m = opaque;
    bool incoming = mig_migration_is_incoming(m->mm);
    if (incoming) {
        m->incoming_done = status == MIG_STATUS_COMPLETED;
        if (status == MIG_STATUS_COMPLETED)
            set_run_state(m, m->start_paused ? MIG_RUN_STATE_PAUSED : MIG_RUN_STATE_RUNNING);
        if (m->spice)
            spice_server_set_loading(m->spice, false);
    } else {
        if (status == MIG_STATUS_COMPLETED) {
            set_run_state(m, MIG_RUN_STATE_POSTMIGRATE);
            if (mig_migration_caps(m->mm) & MIG_CAP_BIT(MIG_CAP_X_RAM_SHARE))
                m->ram_given = true;
        }
        /* the SPICE clients follow the machine: to the target, or they stay */
        if (m->spice_main)
            spice_main_migrate_end(m->spice_main, status == MIG_STATUS_COMPLETED);
    }
    for (size_t i = 0; i < m->nobs; i++)
        if (m->obs[i].ops->migration_finished)
            m->obs[i].ops->migration_finished(m->obs[i].opaque, incoming, status);
}

static void env_event(void *opaque, const char *name, json_t *data)
{
    MigMachine *m = opaque;
    if (m->event)
        m->event(m->event_opaque, name, data);
}

MigMachine *mig_machine_new(MigLoop *loop, const MigMachineOptions *o, MigErr **errp)
{
    MigMachine *m = mig_malloc0(sizeof(*m));
    m->loop = loop;
    snprintf(m->name, sizeof(m->name), "%s", o->name ? o->name : "vm");
    snprintf(m->type, sizeof(m->type), "%s",
             o->machine_type ? o->machine_type : MIG_MACHINE_DEFAULT_TYPE);
    m->start_paused = o->start_paused;
    m->incoming = o->incoming;
    m->event = o->event;
    m->event_opaque = o->event_opaque;
    m->rs = o->incoming ? MIG_RUN_STATE_INMIGRATE
                        : o->start_paused ? MIG_RUN_STATE_PRELAUNCH : MIG_RUN_STATE_RUNNING;
    m->ram = mig_ram_new();
    m->sv = mig_savevm_new();
    uint64_t size = o->ram_size ? o->ram_size : (uint64_t)128 << 20;
    mig_ram_share_memory(m->ram, o->mem_share);
    /* a machine waiting for its incoming migration never ran: its RAM reads zero */
    mig_ram_set_fresh(m->ram, o->incoming);
    if (mig_ram_add_block(m->ram, "pc.ram", size, errp) < 0 ||
        mig_ram_register(m->ram, m->sv, errp) < 0) {
        mig_machine_free(m);
        return NULL;
    }
    MigMigrationEnv env = {
        .loop = loop,
        .who = m->name,
        .savevm = m->sv,
        .ram = m->ram,
        .machine_type = m->type,
        .caps_known = o->caps_known,
        .guest_running = env_guest_running,
        .guest_stop = env_guest_stop,
        .guest_resume = env_guest_resume,
        .finished = env_finished,
        .event = env_event,
        .opaque = m,
    };
    m->mm = mig_migration_new(&env);
    return m;
}

void mig_machine_free(MigMachine *m)
{
    if (!m)
        return;
    mig_listener_free(m->listener);
    spice_server_free(m->spice);
    mig_migration_free(m->mm);
    mig_savevm_free(m->sv);
    mig_ram_free(m->ram);
    free(m);
}

void mig_machine_add_observer(MigMachine *m, const MigMachineObserver *ops, void *opaque)
{
    assert(m->nobs < MIG_ARRAY_SIZE(m->obs)); /* a fixed set of devices: a programming error */
    m->obs[m->nobs].ops = ops;
    m->obs[m->nobs].opaque = opaque;
    m->nobs++;
}

void mig_machine_remove_observer(MigMachine *m, const MigMachineObserver *ops, void *opaque)
{
    for (size_t i = 0; i < m->nobs; i++)
        if (m->obs[i].ops == ops && m->obs[i].opaque == opaque) {
            memmove(m->obs + i, m->obs + i + 1, (m->nobs - i - 1) * sizeof(m->obs[0]));
            m->nobs--;
            return;
        }
}

int mig_machine_add_spice(MigMachine *m, const SpiceServerConfig *cfg, MigErr **errp)
{
    if (m->spice)
        return mig_err_set(errp, -EEXIST, "machine %s: it has a SPICE server", m->name);
    SpiceServerConfig c = *cfg;
    char who[48];
    snprintf(who, sizeof(who), "%s.spice", m->name);
    if (!c.who)
        c.who = who;
    m->spice = spice_server_new(m->loop, &c, errp);
    if (!m->spice)
        return errp && *errp ? (*errp)->code : -ENOMEM;
    m->spice_main = spice_main_add(m->spice);
    spice_inputs_add(m->spice, &m->spice_inputs);
    /* a target's seamless clients wait for their data until it has loaded */
    spice_server_set_loading(m->spice, m->incoming && mig_migration_status(m->mm) != MIG_STATUS_COMPLETED);
    return 0;
}

SpiceServer *mig_machine_spice(const MigMachine *m)
{
    return m->spice;
}

SpiceMain *mig_machine_spice_main(const MigMachine *m)
{
    return m->spice_main;
}

MigLoop *mig_machine_loop(MigMachine *m)
{
    return m->loop;
}

MigRam *mig_machine_ram(MigMachine *m)
{
    return m->ram;
}

MigSavevm *mig_machine_savevm(MigMachine *m)
{
    return m->sv;
}

MigMigration *mig_machine_migration(MigMachine *m)
{
    return m->mm;
}

const char *mig_machine_name(const MigMachine *m)
{
    return m->name;
}

const char *mig_machine_type(const MigMachine *m)
{
    return m->type;
}

void mig_machine_set_guest(MigMachine *m, const MigGuestOps *ops, void *opaque)
{
    m->guest = ops;
    m->guest_opaque = opaque;
}

MigRunState mig_machine_run_state(const MigMachine *m)
{
    return m->rs;
}

bool mig_machine_running(const MigMachine *m)
{
    return m->rs == MIG_RUN_STATE_RUNNING;
}

int mig_machine_stop(MigMachine *m, MigErr **errp)
{
    switch (m->rs) {
    case MIG_RUN_STATE_RUNNING:
        set_run_state(m, MIG_RUN_STATE_PAUSED);
        return 0;
    default:
        return 0; /* already stopped: QEMU answers stop with success too */
    }
}

/* The refusal of a source whose RAM the destination now runs on. */
static int ram_given_err(MigErr **errp)
{
    return mig_err_set(errp, -EBUSY,
                       "this machine's RAM was handed to the destination of a completed "
                       "x-ram-share migration: it cannot run or migrate again");
}

int mig_machine_cont(MigMachine *m, MigErr **errp)
{
    if (m->ram_given)
        return ram_given_err(errp);
    switch (m->rs) {
    case MIG_RUN_STATE_INMIGRATE:
        return mig_err_set(errp, -EBUSY, "The guest is waiting for an incoming migration");
    case MIG_RUN_STATE_FINISH_MIGRATE:
        return mig_err_set(errp, -EBUSY, "Migration is finishing; cannot continue now");
    default:
        set_run_state(m, MIG_RUN_STATE_RUNNING);
        return 0;
    }
}

/* ---- URIs ---- */

/* Big socket buffers on a migration socket: the send buffer on the source,
 * the receive buffer on the destination (TCP uses it; unix ignores it).
 * Files and pipes are left alone, and so is a socket whose buffer is already
 * at least that big (an fd handed over by management keeps its tuning). */
static void tune_socket(MigTransport *t, bool sending)
{
    int fd = mig_transport_get_fd(t), size = MACHINE_SOCK_BUF, type = 0, cur = 0;
    int opt = sending ? SO_SNDBUF : SO_RCVBUF;
    socklen_t len = sizeof(type);
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
        return;
    len = sizeof(cur);
    if (getsockopt(fd, SOL_SOCKET, opt, &cur, &len) == 0 && cur >= size)
        return;
    setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size));
}

static MigTransport *open_uri(MigMachine *m, const char *uri, bool for_write, MigErr **errp)
{
    if (strncmp(uri, "unix:", 5) == 0)
        return mig_transport_unix_connect(m->loop, uri + 5, errp);
    if (strncmp(uri, "file:", 5) == 0)
        return mig_transport_file_open(m->loop, uri + 5, for_write, errp);
    if (strncmp(uri, "fd:", 3) == 0) {
        char *end = NULL;
        long fd = strtol(uri + 3, &end, 10);
        if (!uri[3] || *end || fd < 0 || fd > 1 << 20) {
            mig_err_set(errp, -EINVAL, "bad fd in URI '%s'", uri);
            return NULL;
        }
        MigTransport *t = mig_transport_fd_new(m->loop, (int)fd, "fd");
        if (!t)
            mig_err_set(errp, -EBADF, "cannot use fd %ld from URI '%s'", fd, uri);
        return t;
    }
    mig_err_set(errp, -EINVAL, "unsupported migration URI '%s' (unix:PATH, fd:N, file:PATH)", uri);
    return NULL;
}

/* Waiting for (or loading) its incoming migration; once that completed,
 * the machine runs the guest and may migrate it on, as QEMU's. */
static bool awaiting_incoming(MigMachine *m)
{
    return m->incoming && !m->incoming_done;
}

int mig_machine_migrate(MigMachine *m, const char *uri, MigErr **errp)
{
    if (awaiting_incoming(m))
        return mig_err_set(errp, -EINVAL, "a machine waiting for an incoming migration cannot "
                                          "migrate out");
    MigStatus st = mig_migration_status(m->mm);
    if (st != MIG_STATUS_NONE && !mig_status_is_terminal(st))
        return mig_err_set(errp, -EBUSY, "There's a migration process in progress");
    if (m->ram_given)
        return ram_given_err(errp);
    /* Refused before the file is created (the engine refuses any transport
     * without a back channel, this only spares the file). */
    if (strncmp(uri, "file:", 5) == 0 &&
        (mig_migration_caps(m->mm) & MIG_CAP_BIT(MIG_CAP_RETURN_PATH)))
        return mig_err_set(errp, -ENOTSUP,
                           "capability 'return-path' needs a connection the destination can "
                           "answer on; a file: URI has none (disable return-path)");
    MigTransport *t = open_uri(m, uri, true, errp);
    if (!t)
        return errp && *errp ? (*errp)->code : -EINVAL;
    return mig_machine_migrate_transport(m, t, errp);
}

int mig_machine_migrate_transport(MigMachine *m, MigTransport *t, MigErr **errp)
{
    if (awaiting_incoming(m)) {
        mig_transport_close(t);
        return mig_err_set(errp, -EINVAL, "a machine waiting for an incoming migration cannot "
                                          "migrate out");
    }
    if (m->ram_given) {
        mig_transport_close(t);
        return ram_given_err(errp);
    }
    tune_socket(t, true);
    return mig_migration_start(m->mm, t, errp);
}

static void on_accept(MigListener *l, MigTransport *t, void *opaque)
{
    MigMachine *m = opaque;
    if (m->incoming_used) {
        mig_transport_close(t); /* one migration per destination */
        return;
    }
    m->incoming_used = true;
    tune_socket(t, false);
    MigErr *err = NULL;
    if (mig_migration_start_incoming(m->mm, t, &err) < 0) {
        mig_trace_log(m->loop->trace, mig_loop_now_ns(m->loop), m->name, "incoming: %s",
                      err ? err->msg : "failed");
        mig_err_free(err);
    }
}

int mig_machine_migrate_incoming(MigMachine *m, const char *uri, MigErr **errp)
{
    if (!m->incoming)
        return mig_err_set(errp, -EINVAL, "'-incoming' was not specified on the command line");
    if (m->incoming_used || m->listener || mig_migration_status(m->mm) != MIG_STATUS_NONE)
        return mig_err_set(errp, -EBUSY, "The incoming migration has already been started");
    if (strncmp(uri, "unix:", 5) == 0) {
        m->listener = mig_listener_unix_new(m->loop, uri + 5, on_accept, m, errp);
        if (!m->listener)
            return errp && *errp ? (*errp)->code : -EIO;
        return mig_migration_listen(m->mm, errp);
    }
    MigTransport *t = open_uri(m, uri, false, errp);
    if (!t)
        return errp && *errp ? (*errp)->code : -EINVAL;
    return mig_machine_incoming_transport(m, t, errp);
}

int mig_machine_incoming_transport(MigMachine *m, MigTransport *t, MigErr **errp)
{
    if (!m->incoming || m->incoming_used) {
        mig_transport_close(t);
        return mig_err_set(errp, m->incoming ? -EBUSY : -EINVAL,
                           m->incoming ? "The incoming migration has already been started"
                                       : "'-incoming' was not specified on the command line");
    }
    m->incoming_used = true;
    tune_socket(t, false);
    return mig_migration_start_incoming(m->mm, t, errp);
}

int mig_machine_migrate_cancel(MigMachine *m)
{
    return mig_migration_cancel(m->mm);
}

int mig_machine_migrate_continue(MigMachine *m, const char *state, MigErr **errp)
{
    MigStatus want = MIG_STATUS__COUNT;
    for (int s = 0; s < MIG_STATUS__COUNT; s++)
        if (strcmp(mig_status_name(s), state) == 0)
            want = s;
    if (want == MIG_STATUS__COUNT)
        return mig_err_set(errp, -EINVAL, "Parameter 'state' does not accept value '%s'", state);
    return mig_migration_continue(m->mm, want, errp);
}

void mig_machine_query_migrate(MigMachine *m, MigInfo *out)
{
    mig_migration_query(m->mm, out);
}

json_t *mig_machine_query_status_json(MigMachine *m)
{
    return json_pack("{s:b, s:b, s:s}", "running", m->rs == MIG_RUN_STATE_RUNNING, "singlestep",
                     0, "status", mig_run_state_name(m->rs));
}

void mig_machine_ram_digest(MigMachine *m, char out[65])
{
    mig_ram_digest(m->ram, out);
}
