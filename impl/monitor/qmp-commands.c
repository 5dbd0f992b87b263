/*
 * qmp-commands.c - QMP commands of a machine (see qmp-commands.h).  Each
 * handler is a thin translation between QMP JSON and impl/machine's API; the
 * monitor has already checked argument types against the specs below.
 */
#include <stdlib.h>
#include <string.h>

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

static int q_migrate(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    MigQmpMachine *b = opaque;
    static const char *const refused[] = {"blk", "inc", "resume"};
    for (size_t i = 0; i < MIG_ARRAY_SIZE(refused); i++)
        if (json_is_true(json_object_get(args, refused[i])))
            return mig_err_set(errp, -ENOTSUP, "'migrate': argument '%s' is not supported",
                               refused[i]);
    /* detach is accepted and ignored: migrate always returns at once */
    return mig_machine_migrate(b->machine, json_string_value(json_object_get(args, "uri")),
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
    return mig_machine_migrate_incoming(b->machine,
                                        json_string_value(json_object_get(args, "uri")), errp);
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
};

static const MigQmpCommand caps_cmds[] = {
    {"query-migrate-capabilities", q_query_caps, NULL, false},
    {"migrate-set-capabilities", q_set_caps, set_caps_args, false},
};

int mig_qmp_add_machine_commands(MigMonitor *mon, MigQmpMachine *b)
{
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
