/*
 * qmp-commands.c - QMP commands of a machine (see qmp-commands.h).  Each
 * handler is a thin translation between QMP JSON and impl/machine's API; the
 * monitor has already checked argument types against the specs below.
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qmp-commands.h"

static int q_query_status(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    *ret = mig_machine_query_status_json(b->machine);
    return 0;
}

static int q_stop(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    return mig_machine_stop(b->machine, errp);
}

static int q_cont(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    return mig_machine_cont(b->machine, errp);
}

static int q_quit(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    if (b->quit)
        b->quit(b->quit_opaque);
    else
        mig_loop_stop(mig_machine_loop(b->machine));
    return 0;
}

static int q_query_migrate(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    MigInfo info;
    mig_machine_query_migrate(b->machine, &info);
    *ret = mig_info_to_json(&info);
    return 0;
}

static int q_query_caps(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    MigMigration *mm = mig_machine_migration(b->machine);
    *ret = mig_caps_to_json(mig_migration_caps_known(mm), mig_migration_caps(mm));
    return 0;
}

static int q_set_caps(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    MigCapMask named, states;
    int rc = mig_caps_from_json(json_object_get(args, "capabilities"), &named, &states, errp);
    if (rc < 0)
        return rc;
    return mig_migration_set_caps(mig_machine_migration(b->machine), named, states, errp);
}

static int q_query_params(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    MigParams p;
    mig_migration_params(mig_machine_migration(b->machine), &p);
    *ret = mig_params_to_json(&p);
    return 0;
}

static int q_set_params(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    MigParamsSet set;
    int rc = mig_params_from_json(args, &set, errp);
    if (rc < 0)
        return rc;
    return mig_migration_set_params(mig_machine_migration(b->machine), &set, errp);
}

/*
 * migrate / migrate-incoming to `uri`.  An fd: URI over QMP names an fd the
 * client handed over with getfd (fd:NAME), never an fd number: a number
 * would let a client point the machine at any fd the process holds (its
 * event loop, the QMP listener, the client's own socket).
 */
static int migrate_uri(MigQmpMachine *b, const char *cmd, const char *uri, bool incoming,
                       MigErr **errp)
{
    if (strncmp(uri, "fd:", 3) != 0)
        return incoming ? mig_machine_migrate_incoming(b->machine, uri, errp)
                        : mig_machine_migrate(b->machine, uri, errp);
    const char *name = uri + 3;
    if (!name[0] || (name[0] >= '0' && name[0] <= '9'))
        return mig_err_set(errp, -EINVAL,
                           "'%s': uri '%s': an fd must be handed over with 'getfd' and named "
                           "(fd:NAME); fd numbers are refused",
                           cmd, uri);
    int fd = mig_monitor_take_fd(b->monitor, name, errp);
    if (fd < 0)
        return fd;
    MigTransport *t = mig_transport_fd_new(mig_machine_loop(b->machine), fd, "fd");
    if (!t) {
        close(fd);
        return mig_err_set(errp, -EBADF, "'%s': uri '%s': the fd cannot be used", cmd, uri);
    }
    return incoming ? mig_machine_incoming_transport(b->machine, t, errp)
                    : mig_machine_migrate_transport(b->machine, t, errp);
}

static int q_migrate(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    static const char *const refused[] = {"blk", "inc", "resume"};
    for (size_t i = 0; i < MIG_ARRAY_SIZE(refused); i++)
        if (json_is_true(json_object_get(args, refused[i])))
            return mig_err_set(errp, -ENOTSUP, "'migrate': argument '%s' is not supported",
                               refused[i]);
    /* detach is accepted and ignored: migrate always returns at once */
    return migrate_uri(b, "migrate", json_string_value(json_object_get(args, "uri")), false,
                       errp);
}

static int q_migrate_cancel(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    int rc = mig_machine_migrate_cancel(b->machine);
    /* QEMU answers {} when there is nothing to cancel; so do we */
    return rc == -EINVAL ? 0 : rc;
}

static int q_migrate_incoming(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    return migrate_uri(b, "migrate-incoming", json_string_value(json_object_get(args, "uri")),
                       true, errp);
}

static int q_migrate_continue(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    return mig_machine_migrate_continue(b->machine,
                                        json_string_value(json_object_get(args, "state")), errp);
}

static int q_ram_digest(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    char hex[65];
    mig_machine_ram_digest(b->machine, hex);
    *ret = json_pack("{s:s}", "sha256", hex);
    return 0;
}

static void sha256_feed(void *ctx, const void *buf, size_t len)
{
    EVP_DigestUpdate(ctx, buf, len);
}

static void sha256_hex(EVP_MD_CTX *ctx, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

/* One device of x-query-device-digest, or NULL when `e` is not a device
 * (RAM, or an iterative section the embedder does not describe). */
static json_t *device_digest(MigQmpMachine *b, const MigSaveEntry *e, EVP_MD_CTX *ctx,
                             MigErr **errp)
{
    const char *kind = "vmstate", *state = NULL;
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    if (e->kind == MIG_SAVE_FULL) {
        /* its canonical bytes: the vmstate it would send now */
        MigStream *s = mig_stream_new_mem_writer();
        int rc = mig_savevm_entry_save_full(e, s, errp);
        if (rc == 0)
            rc = mig_stream_take_error(s, errp);
        if (rc < 0) {
            mig_stream_free(s);
            mig_err_prepend(errp, "x-query-device-digest: device %s", e->idstr);
            return NULL;
        }
        size_t len;
        const uint8_t *data = mig_stream_mem_data(s, &len);
        EVP_DigestUpdate(ctx, data, len);
        mig_stream_free(s);
    } else {
        kind = "vfio";
        if (!b->device_state ||
            b->device_state(b->device_state_opaque, e, sha256_feed, ctx, &state) <= 0)
            return NULL;
    }
    char hex[65];
    sha256_hex(ctx, hex);
    json_t *d = json_pack("{s:s, s:I, s:s, s:s}", "id", e->idstr, "instance-id",
                          (json_int_t)e->instance_id, "kind", kind, "digest", hex);
    if (state)
        json_object_set_new(d, "state", json_string(state));
    return d;
}

static int q_device_digest(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    const MigSavevm *sv = mig_machine_savevm(b->machine);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return mig_err_set(errp, -ENOMEM, "x-query-device-digest: no digest context");
    json_t *list = json_array();
    /* registration order: the order of the machine's sections */
    for (size_t i = 0; i < mig_savevm_count(sv); i++) {
        MigErr *err = NULL;
        json_t *d = device_digest(b, mig_savevm_entry(sv, i), ctx, &err);
        if (err) {
            int rc = mig_err_propagate(errp, err);
            json_decref(list);
            EVP_MD_CTX_free(ctx);
            return rc;
        }
        if (d)
            json_array_append_new(list, d);
    }
    EVP_MD_CTX_free(ctx);
    *ret = json_pack("{s:o}", "devices", list);
    return 0;
}

static const MigQmpArg set_caps_args[] = {{"capabilities", MIG_QMP_ARG_ARRAY, false}, {NULL}};
/* Typed here so a wrong type is refused naming the argument; the engine
 * refuses names it does not know. */
static const MigQmpArg set_params_args[] = {
    {"max-bandwidth", MIG_QMP_ARG_NUMBER, true},
    {"downtime-limit", MIG_QMP_ARG_NUMBER, true},
    {"x-max-passes", MIG_QMP_ARG_NUMBER, true},
    {NULL},
};
static const MigQmpArg migrate_args[] = {
    {"uri", MIG_QMP_ARG_STR, false},   {"detach", MIG_QMP_ARG_BOOL, true},
    {"resume", MIG_QMP_ARG_BOOL, true}, {"blk", MIG_QMP_ARG_BOOL, true},
    {"inc", MIG_QMP_ARG_BOOL, true},    {NULL},
};
static const MigQmpArg uri_args[] = {{"uri", MIG_QMP_ARG_STR, false}, {NULL}};
static const MigQmpArg state_args[] = {{"state", MIG_QMP_ARG_STR, false}, {NULL}};

static const MigQmpCommand machine_cmds[] = {
    {"query-status", q_query_status, NULL, false},
    {"stop", q_stop, NULL, false},
    {"cont", q_cont, NULL, false},
    {"quit", q_quit, NULL, false},
    {"query-migrate", q_query_migrate, NULL, false},
    {"query-migrate-parameters", q_query_params, NULL, false},
    {"migrate-set-parameters", q_set_params, set_params_args, true},
    {"migrate", q_migrate, migrate_args, false},
    {"migrate_cancel", q_migrate_cancel, NULL, false},
    {"migrate-incoming", q_migrate_incoming, uri_args, false},
    {"migrate-continue", q_migrate_continue, state_args, false},
    {"x-query-ram-digest", q_ram_digest, NULL, false},
    {"x-query-device-digest", q_device_digest, NULL, false},
};

static const MigQmpCommand caps_cmds[] = {
    {"query-migrate-capabilities", q_query_caps, NULL, false},
    {"migrate-set-capabilities", q_set_caps, set_caps_args, false},
};

int mig_qmp_add_machine_commands(MigMonitor *mon, MigQmpMachine *b)
{
    b->monitor = mon;
    int rc = mig_monitor_add_commands(mon, machine_cmds, MIG_ARRAY_SIZE(machine_cmds), b);
    if (rc == 0 && !b->no_caps_commands)
        rc = mig_monitor_add_commands(mon, caps_cmds, MIG_ARRAY_SIZE(caps_cmds), b);
    return rc;
}

void mig_qmp_machine_event(void *monitor, const char *name, json_t *data)
{
    /* QEMU events without members (STOP, RESUME) carry no "data" at all */
    bool empty = !data || (json_is_object(data) && json_object_size(data) == 0);
    mig_monitor_emit(monitor, name, empty ? NULL : json_incref(data));
}
