/*
 * fuzz-qmp.c - a libFuzzer target for QMP input: the monitor's JSON
 * scanner, its negotiation and its command dispatch (impl/monitor), fed as
 * the bytes one client sends, on the simulator's loop.
 *
 * Byte 0 chooses the command table:
 *   even  the machine's own commands (qmp-commands.h) on a small machine.
 *         Inputs that could name a file or a socket path (a migrate URI
 *         "file:" or "unix:", or any \u escape that could spell one) are
 *         skipped: the file system is not the target.  "fd:" needs no
 *         filter: QMP takes only fd:NAME of an fd handed over with getfd
 *         (SCM_RIGHTS), never a number, and the client here is a mem
 *         transport, which carries no fd: every getfd fails, so no input
 *         reaches a real fd (checked after each input: the monitor holds
 *         no named fd);
 *   odd   a table of test commands taking every argument type (the
 *         scanner and argument checks without side effects), any bytes.
 * The session is negotiated first unless byte 1 is odd.  Every reply is
 * read off and must be one JSON object per line; the client then hangs up,
 * and the monitor must hold no client and leak nothing.
 * Seeds: harness/fuzz/corpus/fuzz-qmp (make-seeds.py: the sessions the
 * pytest QMP tests send).
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
#include "machine/machine.h"
#include "monitor/monitor.h"
#include "monitor/qmp-commands.h"
#include "sim/sim.h"

static int t_echo(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    *ret = json_incref(args ? args : json_null());
    return 0;
}

static int t_fail(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    return mig_err_set(errp, -EBUSY, "busy");
}

static const MigQmpArg all_args[] = {
    {"s", MIG_QMP_ARG_STR, false},   {"n", MIG_QMP_ARG_NUMBER, true}, {"b", MIG_QMP_ARG_BOOL, true},
    {"a", MIG_QMP_ARG_ARRAY, true},  {NULL},
};
static const MigQmpCommand test_cmds[] = {
    {"echo", t_echo, all_args, false},
    {"open", t_echo, all_args, true},
    {"none", t_echo, NULL, false},
    {"fail", t_fail, NULL, false},
};

static bool could_name_a_resource(const uint8_t *d, size_t n)
{
    static const char *const bad[] = {"file:", "unix:", "\\u"};
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            size_t l = strlen(bad[k]);
            if (i + l <= n && !memcmp(d + i, bad[k], l))
                return true;
        }
    return false;
}

static void drain(MigTransport *t)
{
    uint8_t buf[4096];
    while (mig_transport_read(t, buf, sizeof(buf)) > 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    bool machine = !(data[0] & 1), negotiate = !(data[1] & 1);
    data += 2;
    size -= 2;
    if (machine && could_name_a_resource(data, size))
        return 0;
    MigLoop *loop = mig_sim_loop_new(1);
    mig_sim_set_step_limit(loop, 2000000);
    MigMonitorVersion ver = {2, 1, 0, "migcert fuzz"};
    MigMonitor *mon = mig_monitor_new(loop, &ver);
    MigMachine *m = NULL;
    MigQmpMachine b = {0};
    if (machine) {
        MigMachineOptions o = {.name = "vm", .ram_size = 64 << 10, .event = mig_qmp_machine_event,
                               .event_opaque = mon};
        m = mig_machine_new(loop, &o, NULL);
        b.machine = m;
        if (!m || mig_qmp_add_machine_commands(mon, &b) < 0)
            abort();
    } else if (mig_monitor_add_commands(mon, test_cmds, 4, NULL) < 0) {
        abort();
    }
    MigTransport *a, *t;
    if (mig_transport_mem_pair(loop, NULL, &a, &t) == 0 && mig_monitor_add_client(mon, t) == 0) {
        static const char neg[] = "{\"execute\": \"qmp_capabilities\"}\n";
        if (negotiate)
            mig_transport_write(a, neg, sizeof(neg) - 1);
        fuzz_write_all(a, data, size);
        mig_sim_run_for(loop, 1000000000ull);
        drain(a);
        mig_transport_close(a);
        mig_sim_run_for(loop, 1000000000ull);
        if (mig_monitor_client_count(mon) != 0)
            abort(); /* the client hung up: the monitor must let it go */
        if (mig_monitor_fd_count(mon) != 0)
            abort(); /* a mem client passes no fd: nothing may have been named */
    }
    mig_monitor_free(mon);
    if (m)
        mig_machine_free(m);
    mig_sim_run_for(loop, 1000000000ull);
    mig_loop_free(loop);
    return 0;
}
