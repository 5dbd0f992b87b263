/*
 * cmd-vm.c - `migcert vm`: one real machine process on the epoll loop,
 * driven over QMP (impl/monitor), like a QEMU started with -qmp.
 *
 *   migcert vm [--release R] [--machine M] [--ram SIZE] [--devices LIST]
 *              --qmp unix:PATH [--spice OPTIONS] [--incoming URI]
 *              [--fill random|zero] [--dirty-rate PAGES] [--seed N] [-S]
 *              [--gpu-mem SIZE]
 *              [--mem-prealloc] [--mem-share] [--exit-on-incoming-failure] [--trace]
 *
 * (docs/architecture.md section 5).  --spice takes QEMU's -spice syntax
 * (port=N,addr=H or unix=on,addr=PATH; disable-ticketing, seamless-migration)
 * and gives the machine a SPICE server with its display, sound and char
 * devices and QEMU's SPICE QMP commands (vm-spice.c).
 *
 * Devices: the vmstate-described fakes (fake-serial, fake-nic, fake-rng) are
 * FULL sections; fake-gpu is a VFIO-style device, a MigDevice over the
 * in-process plugin table, migrated as the iterative device section
 * "fake-gpu" (impl/device/device-savevm.h), built as the scenario executor
 * builds it.  A release (or machine type) that does not ship a device
 * refuses it, naming itself.  A source's guest fills fake-gpu's memory at
 * start and, with --dirty-rate, keeps writing it.  Besides QEMU's commands,
 * x-query-ram-digest and x-query-device-digest (impl/monitor/qmp-commands.h;
 * this file feeds fake-gpu's memory and registers) let management compare a
 * source at stop time with its destination.  An fd: URI over QMP names an
 * fd handed over with getfd (fd:NAME); only --incoming takes fd:N, an fd
 * the process was started with.  The monitor's lines for a person (a client
 * dropped for not reading its replies) go to stderr as "migcert vm: QMP: ".
 *
 * Lifetime: the process runs until `quit` (or SIGTERM/SIGINT/SIGHUP) and
 * then exits 0.  A migration that fails or is cancelled never ends it: the
 * error goes to stderr and stays in query-migrate ("failed" with error-desc,
 * or "cancelled").  The source resumes its guest (query-status "running");
 * a destination keeps the guest stopped (query-status "inmigrate", running
 * false: it has discarded what it loaded and accepts no second incoming
 * migration) and waits for `quit`, so management can ask it why.  A
 * destination whose incoming migration completed runs the guest and may
 * migrate it on, as QEMU's (the soak, harness/soak/soak.py).  This is
 * where migcert parts from QEMU, whose destination exits 1 when its incoming
 * migration fails; --exit-on-incoming-failure restores that.  Exit 2: bad
 * options or a machine that cannot start; 1: an --incoming URI that cannot
 * be listened on or opened at start, a broken event loop, or an incoming
 * failure with --exit-on-incoming-failure.
 *
 * Machine types: the project's mc-* types (a release's own or an older
 * one), or, for interop with a real QEMU, one of QEMU's machine type names
 * (pc-i440fx-7.2; `pc` resolves to it, as in QEMU 7.2).  A QEMU type stands
 * for a machine whose RAM block is pc.ram and that has no devices, so it is
 * accepted only with --devices none: the stream's configuration section then
 * names a machine QEMU's `-M pc` loads, and QEMU finds no section it does not
 * know.
 *
 * Harness code (not in libmigcert.a): it may block, e.g. in pmemsave, the
 * extra command the benchmark uses to give QEMU the same RAM content.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "common/loop.h"
#include "common/trace.h"
#include "device/device-savevm.h"
#include "devices/fake-gpu.h"
#include "devices/fake-spice.h"
#include "devices/releases.h"
#include "machine/machine.h"
#include "monitor/monitor.h"
#include "faults-spec.h"
#include "monitor/qmp-commands.h"
#include "vm-spice.h"
#include "workload/workload.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

typedef struct Vm {
    MigLoop *loop;
    FaultProcessGate gate; /* loop->faults (fault_process_gate) */
    MigMachine *machine;
    MigMonitor *mon;
    MigWorkload *work;
    MigFakeDevice *devs[16];
    size_t ndevs;
    /* the VFIO-style device (fake-gpu), at most one: a device section */
    MigDevice *gpu;
    MigDevSection *gpu_sec;
    MigLoopSource *gpu_dirtier;
    uint32_t gpu_ops; /* guest writes to its memory per tick (--dirty-rate) */
    uint64_t gpu_mem; /* bytes of its memory (--gpu-mem) */
    MigQmpMachine qmp;
    VmSpice *spice;
    bool incoming;
    bool exit_on_incoming_failure;
    bool quit;
    int sigfd;
    MigLoopSource *sigwatch;
    MigStatus last_status;
    MigStatus reported_status; /* the last outcome line written to stderr */
    int exit_code;
} Vm;

/* QEMU machine types this process can stand in for (newest first): the
 * name QEMU writes into a stream, and the alias QEMU resolves to it. */
static const struct {
    const char *name;
    const char *alias;
} qemu_machines[] = {
    {"pc-i440fx-7.2", "pc"},
};

/* The QEMU machine type `name` names (resolving an alias), or NULL. */
static const char *qemu_machine_find(const char *name)
{
    for (size_t i = 0; i < MIG_ARRAY_SIZE(qemu_machines); i++)
        if (!strcmp(name, qemu_machines[i].name) || !strcmp(name, qemu_machines[i].alias))
            return qemu_machines[i].name;
    return NULL;
}

static bool no_devices(const char *list)
{
    return !list || !*list || !strcmp(list, "none");
}

/* Take the SPICE devices (fake-qxl, fake-snd, fake-vmc, fake-input) out of
 * a --devices list: their FAKE_SPICE_* bits into *bits, the rest into `rest`
 * ("none" when nothing is left).  Returns -1 with a message on stderr when
 * one is named without --spice. */
static int split_spice_devices(const char *list, bool have_spice, unsigned *bits, char *rest,
                               size_t rest_len)
{
    *bits = 0;
    snprintf(rest, rest_len, "%s", list ? list : "none");
    if (no_devices(list) || !strcmp(list, "default"))
        return 0;
    char *copy = mig_strdup(list);
    size_t used = 0;
    rest[0] = 0;
    int rc = 0;
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
        unsigned bit = fake_spice_device_bit(t);
        if (bit && !have_spice) {
            fprintf(stderr, "migcert vm: --devices: %s is a SPICE device: it needs --spice (the SPICE "
                    "devices are %s)\n", t, mig_spice_device_type_names());
            rc = -1;
        } else if (bit) {
            *bits |= bit;
        } else if (used < rest_len) {
            used += (size_t)snprintf(rest + used, rest_len - used, "%s%s", used ? "," : "", t);
        }
    }
    free(copy);
    if (!rest[0])
        snprintf(rest, rest_len, "none");
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: migcert vm [--release R] [--machine M] [--ram SIZE] [--devices LIST]\n"
            "                  --qmp unix:PATH [--spice OPTIONS] [--incoming URI]\n"
            "                  [--fill random|zero] [--dirty-rate PAGES] [--seed N] [-S]\n"
            "                  [--mem-prealloc] [--mem-share] [--exit-on-incoming-failure]\n"
            "                  [--gpu-mem SIZE] [--trace]\n"
            "One real machine, driven over QMP; it runs until `quit` or SIGTERM.\n"
            "  --release R       behave as release R (%s;\n"
            "                    default %s)\n"
            "  --machine M       machine type: R's own (default) or an older one, so that R\n"
            "                    emits what that one loads (%s);\n"
            "                    or QEMU's %s (alias %s), only with --devices none\n"
            "  --ram SIZE        bytes of pc.ram: N[K|M|G|T], a bare N is MiB (default 128M)\n"
            "  --devices LIST    comma-separated fake devices, 'default' for the release's,\n"
            "                    'none' (the default); known:\n"
            "                    %s;\n"
            "                    with --spice also the SPICE devices\n"
            "                    %s;\n"
            "                    naming any of them gives the machine only those (no\n"
            "                    fake-snd: no playback or record channel; no fake-vmc:\n"
            "                    no port channel)\n"
            "                    fake-gpu, at most one, is VFIO-style (a device section,\n"
            "                    16 MiB of memory), shipped by releases 2.0 and later\n"
            "  --gpu-mem SIZE    fake-gpu's memory instead of 16M (4K to 1G, a multiple of\n"
            "                    4 KiB); both sides of a migration need the same: the\n"
            "                    destination refuses another size (EPROTO)\n"
            "  --qmp unix:PATH   the QMP monitor's socket (required)\n"
            "  --spice OPTIONS   a SPICE server, QEMU's -spice syntax: port=N[,addr=H] or\n"
            "                    unix=on,addr=PATH; disable-ticketing=on, password=P,\n"
            "                    seamless-migration=on; adds the display, sound and\n"
            "                    port devices (fake-qxl, fake-snd, fake-vmc) and the\n"
            "                    keyboard, mouse and cursor (fake-input); x-draw-rate=N\n"
            "                    makes the display draw N operations a second (benchmarks);\n"
            "                    x-heads=N gives the guest N heads (1 to 4);\n"
            "                    x-pixmap-cache-migration=reset|restore: what seamless\n"
            "                    migration does with a client's pixmap cache;\n"
            "                    image-compression=glz (or auto_glz) sends GLZ images;\n"
            "                    its migration is R's: 1.0 switch-host only, 1.1\n"
            "                    semi-seamless, 2.0 seamless protocol 1, 2.1-dev protocol 2\n"
            "                    with the restore strategy (docs/protocol-spice.md 10.1);\n"
            "                    x-seamless-version=N speaks seamless protocol N instead\n"
            "                    (a target below the source's NACKs)\n"
            "  --incoming URI    be a destination: unix:PATH (listen), fd:N, file:PATH, or\n"
            "                    defer (wait for migrate-incoming)\n"
            "  --fill KIND       initial guest RAM: random (default) or zero\n"
            "  --dirty-rate N    guest writes N pages/s while running (default 0: idle),\n"
            "                    to RAM and as many to fake-gpu's memory\n"
            "  --seed N          seed of the guest workload and the loop (default 1)\n"
            "  -S                do not start the guest (prelaunch; stays paused after an\n"
            "                    incoming migration)\n"
            "  --mem-prealloc    touch every RAM page before starting (like QEMU's)\n"
            "  --mem-share       RAM in shared memory (a memfd): with capability x-ram-share\n"
            "                    a migration to this host hands it over instead of copying\n"
            "  --exit-on-incoming-failure\n"
            "                    exit 1 when the incoming migration fails or is cancelled\n"
            "                    (QEMU's behaviour); by default the destination stays up,\n"
            "                    stopped, and query-migrate says why\n"
            "  --trace           echo the engine's trace on stderr\n",
            mig_release_names(), MIG_RELEASE_CURRENT, mig_machine_type_names(),
            qemu_machines[0].name, qemu_machines[0].alias, mig_device_type_names(),
            mig_spice_device_type_names());
}

/* "256M", "1G", "65536K", "4096" (MiB, as QEMU's -m). */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return -EINVAL;
    unsigned shift = 20;
    if (*end) {
        switch (*end) {
        case 'b': case 'B': shift = 0; break;
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        case 't': case 'T': shift = 40; break;
        default: return -EINVAL;
        }
        if (end[1] && strcmp(end + 1, "iB") && strcmp(end + 1, "B"))
            return -EINVAL;
    }
    if (v > (UINT64_MAX >> shift))
        return -ERANGE;
    *out = (uint64_t)v << shift;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || *s == '-')
        return -EINVAL;
    *out = v;
    return 0;
}

/* "major.minor[-suffix]" of a release for the QMP greeting. */
static void release_version(const char *name, MigMonitorVersion *v)
{
    unsigned a = 0, b = 0;
    sscanf(name, "%u.%u", &a, &b);
    v->major = (int)a;
    v->minor = (int)b;
    v->micro = 0;
}

/* The monitor's lines for a person (a client dropped for not reading). */
static void qmp_log(void *opaque, const char *line)
{
    fprintf(stderr, "migcert vm: QMP: %s\n", line);
}

static void vm_quit(void *opaque)
{
    Vm *vm = opaque;
    vm->quit = true;
    mig_loop_stop(vm->loop);
}

static void on_signal(int fd, uint32_t events, void *opaque)
{
    Vm *vm = opaque;
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        vm_quit(vm);
}

/* The outcome line of a migration that ended ("... migration failed: why"),
 * once per status.  Written from the MIGRATION event, before the event goes
 * out over QMP, and between loop batches (events off).  A query-migrate
 * answered in the same batch as the failure can still show the status first:
 * a client waits for the line rather than expecting it. */
static void vm_report_outcome(Vm *vm)
{
    MigMigration *mm = mig_machine_migration(vm->machine);
    MigStatus st = mig_migration_status(mm);
    if (st == vm->reported_status)
        return;
    vm->reported_status = st;
    const char *dir = vm->incoming ? "incoming" : "outgoing";
    if (st == MIG_STATUS_FAILED) {
        const char *why = mig_migration_error(mm);
        fprintf(stderr, "migcert vm: %s migration failed: %s\n", dir,
                why && *why ? why : "no reason given");
    } else if (st == MIG_STATUS_CANCELLED) {
        fprintf(stderr, "migcert vm: %s migration cancelled\n", dir);
    } else if (st == MIG_STATUS_COMPLETED) {
        fprintf(stderr, "migcert vm: %s migration completed\n", dir);
    }
}

static void vm_event(void *opaque, const char *name, json_t *data)
{
    Vm *vm = opaque;
    if (vm->machine && !strcmp(name, "MIGRATION"))
        vm_report_outcome(vm);
    mig_qmp_machine_event(vm->mon, name, data);
}

/* Checked between loop batches: report migration outcomes on stderr; exit
 * only on quit, or on an incoming failure with --exit-on-incoming-failure. */
static bool vm_should_exit(void *opaque)
{
    Vm *vm = opaque;
    if (vm->quit)
        return true;
    MigMigration *mm = mig_machine_migration(vm->machine);
    MigStatus st = mig_migration_status(mm);
    if (st == vm->last_status)
        return false;
    vm->last_status = st;
    vm_report_outcome(vm);
    if (st != MIG_STATUS_FAILED && st != MIG_STATUS_CANCELLED)
        return false;
    const char *rs = mig_run_state_name(mig_machine_run_state(vm->machine));
    if (!vm->incoming) {
        fprintf(stderr, "migcert vm: the source carries on as it was (%s)\n", rs);
        return false;
    }
    if (!vm->exit_on_incoming_failure) {
        fprintf(stderr, "migcert vm: the destination discarded what it loaded and stays "
                        "stopped (%s); query-migrate shows why, quit ends it\n",
                rs);
        return false;
    }
    vm->exit_code = 1; /* QEMU's destination exits when it cannot load */
    return true;
}

/* pmemsave {val, size, filename}: QEMU's command; writes guest RAM
 * [val, val+size) of pc.ram to a file (the benchmark feeds it to QEMU's
 * -device loader so both engines migrate the same bytes). */
static int q_pmemsave(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    Vm *vm = opaque;
    json_int_t val = json_integer_value(json_object_get(args, "val"));
    json_int_t size = json_integer_value(json_object_get(args, "size"));
    const char *path = json_string_value(json_object_get(args, "filename"));
    MigRam *ram = mig_machine_ram(vm->machine);
    if (mig_ram_block_count(ram) == 0)
        return mig_err_set(errp, -ENOENT, "pmemsave: the machine has no RAM");
    MigRamBlock *b = mig_ram_block(ram, 0);
    if (val < 0 || size < 0 || (uint64_t)val > b->length || (uint64_t)size > b->length - (uint64_t)val)
        return mig_err_set(errp, -EINVAL,
                           "pmemsave: range [%lld, +%lld) is outside %s (%" PRIu64 " bytes)",
                           (long long)val, (long long)size, b->idstr, b->length);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return mig_err_set(errp, -errno, "pmemsave: cannot open %s: %s", path, strerror(errno));
    const uint8_t *p = b->host + val;
    size_t left = (size_t)size;
    while (left) {
        ssize_t n = write(fd, p, MIG_MIN(left, (size_t)1 << 30));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            close(fd);
            return mig_err_set(errp, -e, "pmemsave: writing %s: %s", path, strerror(e));
        }
        p += n;
        left -= (size_t)n;
    }
    if (close(fd) < 0)
        return mig_err_set(errp, -errno, "pmemsave: closing %s: %s", path, strerror(errno));
    return 0;
}

static const MigQmpArg pmemsave_args[] = {
    {"val", MIG_QMP_ARG_INT, false},
    {"size", MIG_QMP_ARG_INT, false},
    {"filename", MIG_QMP_ARG_STR, false},
    {"cpu-index", MIG_QMP_ARG_INT, true},
    {NULL},
};
static const MigQmpCommand vm_cmds[] = {
    {"pmemsave", q_pmemsave, pmemsave_args, false},
};

/* Back guest RAM as QEMU does: transparent huge pages when the host allows
 * them (fewer faults and TLB misses on the 1 GiB hot path), and with
 * --mem-prealloc every page populated before the guest or a migration
 * touches it. */
static void back_ram(MigMachine *m, bool populate)
{
    MigRam *ram = mig_machine_ram(m);
    for (size_t i = 0; i < mig_ram_block_count(ram); i++) {
        MigRamBlock *b = mig_ram_block(ram, i);
        madvise(b->host, b->length, MADV_HUGEPAGE); /* advice only: may fail */
        if (!populate || madvise(b->host, b->length, MADV_POPULATE_WRITE) == 0)
            continue;
        /* older kernels: touch each page without changing it */
        for (uint64_t off = 0; off < b->length; off += MIG_RAM_PAGE_SIZE) {
            volatile uint8_t *p = b->host + off;
            *p = *p;
        }
    }
}

/* ---- the VFIO-style device ----
 * fake-gpu as the scenario executor runs it (harness/runner/exec-side.c
 * gpu_create): the plugin table in-process, all features (PRE_COPY, P2P),
 * 16 MiB of device memory, migrated as the iterative device section
 * "fake-gpu" (impl/device/device-savevm.h). */

#define GPU_TICK_NS 10000000ull /* the guest writes device memory every 10 ms */

/* The guest writes device memory while it runs, at --dirty-rate writes per
 * second (each write dirties one page); a stopped device refuses (-EBUSY),
 * which is what a stopped guest does. */
static void gpu_tick(void *opaque)
{
    Vm *vm = opaque;
    MigDevBackend *be = mig_device_backend(vm->gpu);
    if (mig_machine_run_state(vm->machine) == MIG_RUN_STATE_RUNNING)
        be->ops->guest_run(be, vm->gpu_ops, NULL);
    vm->gpu_dirtier = mig_loop_timer_add(vm->loop, mig_loop_now_ns(vm->loop) + GPU_TICK_NS,
                                         gpu_tick, vm);
}

/* "fake-serial, fake-nic" */
static const char *device_list(const MigRelease *rel, char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = '\0';
    for (const char *const *d = rel->devices; d && *d && at < size; d++)
        at += (size_t)snprintf(buf + at, size - at, "%s%s", at ? ", " : "", *d);
    return buf;
}

/* Create and register the fake-gpu; errors name the release or machine type
 * that does not ship it. */
static int add_gpu(Vm *vm, const MigRelease *rel, const char *machine, uint64_t seed,
                   MigErr **errp)
{
    char have[128];
    if (vm->gpu)
        return mig_err_set(errp, -EINVAL, "device fake-gpu: one per machine");
    if (!mig_release_has_device(rel->name, "fake-gpu"))
        return mig_err_set(errp, -ENODEV, "release %s does not ship device fake-gpu (it has: %s)",
                           rel->name, device_list(rel, have, sizeof(have)));
    const MigRelease *mt = mig_machine_type_find(machine);
    if (mt && !mig_release_has_device(mt->name, "fake-gpu"))
        return mig_err_set(errp, -ENODEV, "machine type %s has no device fake-gpu", machine);
    MigcertDeviceConfig cfg = {sizeof(cfg), MIG_DEV_F_ALL, seed, vm->gpu_mem};
    MigDevBackend *be = mig_dev_backend_plugin_new(fake_gpu_plugin(), &cfg, "fake-gpu", errp);
    if (!be)
        return -EINVAL;
    vm->gpu = mig_device_new("fake-gpu", be, errp); /* owns be, even on failure */
    if (!vm->gpu)
        return -EINVAL;
    vm->gpu_sec = mig_dev_section_register(mig_machine_savevm(vm->machine), vm->gpu, "fake-gpu",
                                           0, errp);
    if (!vm->gpu_sec)
        return -EINVAL;
    return 0;
}

/* The source's guest gives its device content (as --fill does to RAM) and,
 * with --dirty-rate, keeps writing it. */
static void gpu_start(Vm *vm, bool fill, uint64_t dirty_rate)
{
    if (!vm->gpu)
        return;
    MigDevBackend *be = mig_device_backend(vm->gpu);
    if (fill)
        be->ops->guest_run(be, (uint32_t)(vm->gpu_mem / FAKE_GPU_PAGE), NULL);
    if (!dirty_rate)
        return;
    uint64_t per_tick = dirty_rate * GPU_TICK_NS / 1000000000ull;
    vm->gpu_ops = (uint32_t)MIG_MIN(MIG_MAX(per_tick, (uint64_t)1), (uint64_t)UINT32_MAX);
    vm->gpu_dirtier = mig_loop_timer_add(vm->loop, mig_loop_now_ns(vm->loop) + GPU_TICK_NS,
                                         gpu_tick, vm);
}

/* MigQmpMachine.device_state: the fake-gpu's memory, then its registers as
 * big-endian 32-bit words. */
static int vm_device_state(void *opaque, const MigSaveEntry *e, MigQmpDigestFeed *feed, void *ctx,
                           const char **state)
{
    Vm *vm = opaque;
    if (!vm->gpu_sec || e->opaque != vm->gpu_sec)
        return 0;
    MigcertDevice *inst = mig_device_backend(vm->gpu)->instance;
    size_t len = 0;
    const uint8_t *mem = fake_gpu_memory(inst, &len);
    feed(ctx, mem, len);
    const uint32_t *regs = fake_gpu_regs(inst);
    uint8_t be[4 * FAKE_GPU_NREGS];
    for (unsigned i = 0; i < FAKE_GPU_NREGS; i++) {
        be[4 * i] = (uint8_t)(regs[i] >> 24);
        be[4 * i + 1] = (uint8_t)(regs[i] >> 16);
        be[4 * i + 2] = (uint8_t)(regs[i] >> 8);
        be[4 * i + 3] = (uint8_t)regs[i];
    }
    feed(ctx, be, sizeof(be));
    *state = mig_dev_state_name(mig_device_state(vm->gpu));
    return 1;
}

static void gpu_free(Vm *vm)
{
    if (vm->gpu_dirtier)
        mig_loop_remove(vm->loop, vm->gpu_dirtier);
    vm->gpu_dirtier = NULL;
    mig_dev_section_free(vm->gpu_sec);
    vm->gpu_sec = NULL;
    mig_device_free(vm->gpu);
    vm->gpu = NULL;
}

static int add_devices(Vm *vm, const char *list, const MigRelease *rel, const char *machine,
                       uint64_t seed)
{
    if (no_devices(list))
        return 0;
    const char *const *names = NULL;
    char *copy = NULL;
    const char *items[16];
    size_t n = 0;
    if (!strcmp(list, "default")) {
        names = rel->devices;
        for (; names && names[n] && n < MIG_ARRAY_SIZE(items); n++)
            items[n] = names[n];
    } else {
        copy = mig_strdup(list);
        for (char *save = NULL, *t = strtok_r(copy, ",", &save); t && n < MIG_ARRAY_SIZE(items);
             t = strtok_r(NULL, ",", &save))
            items[n++] = t;
    }
    /* vmstate-described devices first, in the order given; the device
     * section last, so that the section order (and x-query-device-digest's)
     * does not depend on where fake-gpu sits in the list, and so that its
     * entry, removed from the registry before the machine is freed, is the
     * last one (the migration's per-entry bookkeeping is by index) */
    int rc = 0;
    size_t gpu_at = n;
    for (size_t i = 0; i < n && rc == 0; i++) {
        MigErr *err = NULL;
        if (!strcmp(items[i], "fake-gpu")) {
            if (gpu_at < n) {
                fprintf(stderr, "migcert vm: --devices: device fake-gpu: one per machine\n");
                rc = -EINVAL;
            }
            gpu_at = i;
            continue;
        }
        MigFakeDevice *d = mig_fake_device_new(items[i], rel->name, machine, seed + i, &err);
        if (d && mig_fake_device_register(d, mig_machine_savevm(vm->machine), &err) < 0) {
            mig_fake_device_free(d);
            d = NULL;
        }
        if (!d) {
            fprintf(stderr, "migcert vm: --devices: %s\n", err ? err->msg : items[i]);
            mig_err_free(err);
            rc = -EINVAL;
            break;
        }
        vm->devs[vm->ndevs++] = d;
    }
    if (rc == 0 && gpu_at < n) {
        MigErr *err = NULL;
        rc = add_gpu(vm, rel, machine, seed + gpu_at, &err);
        if (rc < 0)
            fprintf(stderr, "migcert vm: --devices: %s\n", err ? err->msg : "fake-gpu");
        mig_err_free(err);
    }
    free(copy);
    return rc;
}

int cmd_vm(int argc, char **argv)
{
    const char *release = MIG_RELEASE_CURRENT, *machine_type = NULL, *qmp = NULL;
    const char *incoming = NULL, *devices = NULL, *fill = "random";
    uint64_t ram_size = 128ull << 20, dirty_rate = 0, seed = 1, gpu_mem = FAKE_GPU_MACHINE_MEM;
    bool start_paused = false, mem_prealloc = false, trace = false, exit_on_fail = false;
    bool mem_share = false;
    bool have_spice = false;
    VmSpiceOptions spice_opts;
    enum { O_RELEASE = 256, O_MACHINE, O_RAM, O_FILL, O_DIRTY, O_SEED, O_QMP, O_INCOMING,
           O_DEVICES, O_PREALLOC, O_TRACE, O_EXIT_ON_FAIL, O_SPICE, O_HELP, O_SHARE, O_GPU_MEM };
    static const struct option opts[] = {
        {"release", required_argument, NULL, O_RELEASE},
        {"machine", required_argument, NULL, O_MACHINE},
        {"ram", required_argument, NULL, O_RAM},
        {"fill", required_argument, NULL, O_FILL},
        {"dirty-rate", required_argument, NULL, O_DIRTY},
        {"seed", required_argument, NULL, O_SEED},
        {"qmp", required_argument, NULL, O_QMP},
        {"incoming", required_argument, NULL, O_INCOMING},
        {"devices", required_argument, NULL, O_DEVICES},
        {"gpu-mem", required_argument, NULL, O_GPU_MEM},
        {"mem-prealloc", no_argument, NULL, O_PREALLOC},
        {"mem-share", no_argument, NULL, O_SHARE},
        {"trace", no_argument, NULL, O_TRACE},
        {"exit-on-incoming-failure", no_argument, NULL, O_EXIT_ON_FAIL},
        {"spice", required_argument, NULL, O_SPICE},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+Sh", opts, NULL)) != -1) {
        switch (c) {
        case O_RELEASE: release = optarg; break;
        case O_MACHINE: machine_type = optarg; break;
        case O_RAM:
            if (parse_size(optarg, &ram_size) < 0 || ram_size == 0 ||
                ram_size % MIG_RAM_PAGE_SIZE) {
                fprintf(stderr,
                        "migcert vm: --ram '%s': expected a size such as 256M or 1G, a "
                        "multiple of 4 KiB\n",
                        optarg);
                return 2;
            }
            break;
        case O_GPU_MEM:
            if (parse_size(optarg, &gpu_mem) < 0 || gpu_mem < FAKE_GPU_PAGE ||
                gpu_mem > (1ull << 30) || gpu_mem % FAKE_GPU_PAGE) {
                fprintf(stderr,
                        "migcert vm: --gpu-mem '%s': expected a size from 4K to 1G, a multiple "
                        "of 4 KiB\n",
                        optarg);
                return 2;
            }
            break;
        case O_FILL: fill = optarg; break;
        case O_DIRTY:
            if (parse_u64(optarg, &dirty_rate) < 0) {
                fprintf(stderr, "migcert vm: --dirty-rate '%s': expected pages per second\n",
                        optarg);
                return 2;
            }
            break;
        case O_SEED:
            if (parse_u64(optarg, &seed) < 0) {
                fprintf(stderr, "migcert vm: --seed '%s': expected an integer\n", optarg);
                return 2;
            }
            break;
        case O_QMP: qmp = optarg; break;
        case O_INCOMING: incoming = optarg; break;
        case O_DEVICES: devices = optarg; break;
        case O_PREALLOC: mem_prealloc = true; break;
        case O_SHARE: mem_share = true; break;
        case O_TRACE: trace = true; break;
        case O_EXIT_ON_FAIL: exit_on_fail = true; break;
        case O_SPICE: {
            char why[256];
            if (vm_spice_parse(optarg, &spice_opts, why, sizeof(why)) < 0) {
                fprintf(stderr, "migcert vm: --spice %s: %s\n", optarg, why);
                return 2;
            }
            have_spice = true;
            break;
        }
        case 'S': start_paused = true; break;
        case 'h':
        case O_HELP: usage(stdout); return 0;
        default:
            fprintf(stderr, "migcert vm: unknown or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "migcert vm: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    const MigRelease *rel = mig_release_find(release);
    if (!rel) {
        fprintf(stderr, "migcert vm: --release '%s': unknown release (known: %s)\n", release,
                mig_release_names());
        return 2;
    }
    char other_devices[256];
    if (split_spice_devices(devices, have_spice, &spice_opts.devices, other_devices,
                            sizeof(other_devices)) < 0)
        return 2;
    devices = other_devices;
    const MigRelease *mt_rel = machine_type ? mig_machine_type_find(machine_type) : NULL;
    const char *qemu_type = machine_type && !mt_rel ? qemu_machine_find(machine_type) : NULL;
    if (machine_type && !mt_rel && !qemu_type) {
        fprintf(stderr,
                "migcert vm: --machine '%s': unknown machine type (known: %s; QEMU's %s, "
                "alias %s)\n",
                machine_type, mig_machine_type_names(), qemu_machines[0].name,
                qemu_machines[0].alias);
        return 2;
    }
    if (qemu_type && !no_devices(devices)) {
        fprintf(stderr,
                "migcert vm: --machine '%s': QEMU's machine type %s stands for a machine with "
                "pc.ram and no devices; it needs --devices none, not '%s'\n",
                machine_type, qemu_type, devices);
        return 2;
    }
    if (qemu_type)
        machine_type = qemu_type;
    if (mt_rel && mig_release_index(mt_rel->name) > mig_release_index(rel->name)) {
        fprintf(stderr,
                "migcert vm: --machine '%s': newer than release %s (its newest is %s)\n",
                machine_type, rel->name, rel->machine_type);
        return 2;
    }
    int fill_kind = mig_workload_fill_parse(fill);
    if (fill_kind < 0) {
        fprintf(stderr, "migcert vm: --fill '%s': expected random or zero\n", fill);
        return 2;
    }
    if (!qmp || strncmp(qmp, "unix:", 5) || !qmp[5]) {
        fprintf(stderr, "migcert vm: %s: --qmp unix:PATH is required\n",
                qmp ? "--qmp accepts only unix:PATH" : "no monitor");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN); /* a vanished peer is an EPIPE error, not a death */
    Vm vm = {.sigfd = -1, .gpu_mem = gpu_mem, .incoming = incoming != NULL,
             .exit_on_incoming_failure = exit_on_fail};
    int rc = 2;
    MigErr *err = NULL;
    MigTrace *tr = NULL;
    vm.loop = mig_loop_epoll_new(seed);
    if (!vm.loop) {
        fprintf(stderr, "migcert vm: cannot create the event loop\n");
        return 2;
    }
    /* no injector here: the hot fault points skip libfiu unless its fiu-run
     * preload may have enabled some (faults-spec.h) */
    vm.loop->faults = fault_process_gate(&vm.gate);
    if (trace) {
        tr = mig_trace_new();
        mig_trace_set_echo(tr, stderr);
        vm.loop->trace = tr;
    }
    MigMonitorVersion ver = {0};
    release_version(rel->name, &ver);
    char package[64];
    snprintf(package, sizeof(package), "migcert %s", rel->name);
    ver.package = package;
    vm.mon = mig_monitor_new(vm.loop, &ver);
    /* QMP events carry epoch time (as QEMU's do); the engine only knows the
     * loop's monotonic clock, so the harness supplies the difference. */
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    int64_t realtime_ns = (int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec;
    mig_monitor_set_clock_offset(vm.mon, realtime_ns - (int64_t)mig_loop_now_ns(vm.loop));
    mig_monitor_set_log(vm.mon, qmp_log, NULL);

    MigCapMask known = 0;
    for (const char *const *cn = rel->caps; cn && *cn; cn++) {
        int cap = mig_cap_parse(*cn);
        if (cap >= 0)
            known |= MIG_CAP_BIT(cap);
    }
    MigMachineOptions mo = {
        .name = incoming ? "dst" : "src",
        .machine_type = machine_type ? machine_type : rel->machine_type,
        .ram_size = ram_size,
        .incoming = incoming != NULL,
        .start_paused = start_paused,
        .mem_share = mem_share,
        /* 0 means "everything supported" to the machine; a release with no
         * capability at all offers the empty mask through an empty list */
        .caps_known = known,
        .event = vm_event,
        .event_opaque = &vm,
    };
    vm.machine = mig_machine_new(vm.loop, &mo, &err);
    if (vm.machine)
        vm.reported_status = mig_migration_status(mig_machine_migration(vm.machine));
    if (!vm.machine) {
        fprintf(stderr, "migcert vm: cannot create the machine: %s\n", err ? err->msg : "?");
        goto out_monitor;
    }
    if (add_devices(&vm, devices, rel, mo.machine_type, seed) < 0)
        goto out_machine;
    back_ram(vm.machine, mem_prealloc);
    /* An incoming machine's RAM comes from the stream: no fill; its dirtier
     * runs after the migration only when asked for. */
    if (!incoming || dirty_rate) {
        MigWorkloadOptions wo = {.seed = seed,
                                 .fill = incoming ? MIG_WORKLOAD_FILL_ZERO
                                                  : (MigWorkloadFill)fill_kind,
                                 .dirty_rate = dirty_rate};
        vm.work = mig_workload_new(vm.machine, &wo, &err);
        if (!vm.work) {
            fprintf(stderr, "migcert vm: workload: %s\n", err ? err->msg : "?");
            goto out_devices;
        }
    }
    /* as with RAM: an incoming machine's device state comes from the stream */
    gpu_start(&vm, !incoming, dirty_rate);
    vm.qmp = (MigQmpMachine){.machine = vm.machine,
                             .quit = vm_quit,
                             .quit_opaque = &vm,
                             .no_caps_commands = !rel->knows_caps_query,
                             .device_state = vm_device_state,
                             .device_state_opaque = &vm};
    if (mig_qmp_add_machine_commands(vm.mon, &vm.qmp) < 0 ||
        mig_monitor_add_commands(vm.mon, vm_cmds, MIG_ARRAY_SIZE(vm_cmds), &vm) < 0) {
        fprintf(stderr, "migcert vm: duplicate QMP command\n");
        goto out_workload;
    }
    spice_opts.release = rel->name;
    spice_opts.machine_type = mt_rel ? machine_type : NULL; /* QEMU's types: the release's own */
    if (have_spice && !(vm.spice = vm_spice_new(vm.machine, vm.mon, &spice_opts, &err))) {
        fprintf(stderr, "migcert vm: --spice: %s\n", err ? err->msg : "failed");
        goto out_workload;
    }
    if (mig_monitor_listen_unix(vm.mon, qmp + 5, &err) < 0) {
        fprintf(stderr, "migcert vm: %s\n", err->msg);
        goto out_workload;
    }
    if (incoming && strcmp(incoming, "defer") &&
        mig_machine_migrate_incoming(vm.machine, incoming, &err) < 0) {
        fprintf(stderr, "migcert vm: --incoming %s: %s\n", incoming, err ? err->msg : "failed");
        rc = 1;
        goto out_workload;
    }
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &ss, NULL) == 0) {
        vm.sigfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
        if (vm.sigfd >= 0)
            vm.sigwatch = mig_loop_fd_watch(vm.loop, vm.sigfd, MIG_LOOP_IN, on_signal, &vm);
    }

    vm.last_status = mig_migration_status(mig_machine_migration(vm.machine));
    vm.exit_code = 0;
    for (;;) {
        int r = mig_loop_run_until(vm.loop, vm_should_exit, &vm, 0);
        if (r == 0 || vm.quit)
            break;
        if (r != -ECANCELED) {
            fprintf(stderr, "migcert vm: event loop stopped: %s\n", mig_errno_name(r));
            vm.exit_code = 1;
            break;
        }
    }
    rc = vm.exit_code;
    /* let quit's reply and last events reach the clients */
    for (int i = 0; i < 100 && mig_monitor_pending_output(vm.mon); i++)
        mig_loop_run_until(vm.loop, NULL, NULL, mig_loop_now_ns(vm.loop) + 10000000ull);

    mig_loop_remove(vm.loop, vm.sigwatch);
    if (vm.sigfd >= 0)
        close(vm.sigfd);
out_workload:
    mig_workload_free(vm.work);
    /* the monitor is freed after the machine: its SPICE commands must not
     * outlive their state, so the listener and devices go now, and the
     * server with the machine */
    vm_spice_free(vm.spice);
out_devices:
out_machine:
    /* the device section leaves the registry before the machine goes (as
     * in the executor); it is the registry's last entry (add_devices) */
    gpu_free(&vm);
    /* the machine goes first: it may still emit events (a cancel) into the
     * monitor; no handler runs without the loop */
    mig_machine_free(vm.machine);
    for (size_t i = 0; i < vm.ndevs; i++)
        mig_fake_device_free(vm.devs[i]);
out_monitor:
    mig_monitor_free(vm.mon);
    mig_err_free(err);
    mig_loop_free(vm.loop);
    mig_trace_free(tr);
    return rc;
}
