/*
 * vendor-gpu.c - the one source of every sample vendor plugin: the fake GPU
 * (fakes/devices/fake-gpu.c) wrapped in the plugin symbol.  good.c includes
 * it as is; fakes/vendor/module.mk compiles it again with one -D each:
 *   FAKE_GPU_BROKEN_<RULE>   a device that breaks exactly one rule (fake-gpu.h)
 *   VENDOR_V1                the same device speaking the v1 protocol
 *   VENDOR_ABI=N             a table claiming ABI version N (loader refuses)
 *   VENDOR_NO_SYMBOL         no migcert_device_plugin_v1 symbol at all
 *   VENDOR_CRASH_SET_STATE   SIGSEGV when asked to enter STOP_COPY or an
 *                            unknown state value (>= 8)
 *   VENDOR_BAD_VMSTATE       a vmstate description of the wrong shape
 *   VENDOR_HANG_READ         never returns from a STOP_COPY read
 * and the hostile ones, which do what any process can (issue 12):
 *   VENDOR_JUNK_FDS          set_state writes junk on every fd it inherited
 *   VENDOR_OVERRUN_READ      read writes one byte past the buffer it is given
 *   VENDOR_FORK_SLEEPERS     create forks a child that sleeps forever
 *   VENDOR_FORK_CRASH        set_state forks a sleeping child, then crashes
 *   VENDOR_SIGNAL_PARENT     set_state sends SIGTERM to its parent
 *   VENDOR_HOARD_FDS         create opens /dev/null until refused, closes
 *                            them all, and crashes if it got 64 or more (the
 *                            sandbox's RLIMIT_NOFILE did not hold); else it
 *                            behaves as good.so
 *   VENDOR_OVERRUN_RESUME    (with VENDOR_V1) v1_resume_chunk reads one byte
 *                            past the transaction the v1 adapter gives it
 * VENDOR_NAME is the device name the table reports (the .so's stem).
 */
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "devices/fake-gpu.c"

#ifndef VENDOR_NAME
#define VENDOR_NAME "good"
#endif
#ifndef VENDOR_ABI
#define VENDOR_ABI MIGCERT_DEVICE_ABI_VERSION
#endif

#ifdef VENDOR_CRASH_SET_STATE
static int crash_set_state(MigcertDevice *d, uint32_t s)
{
    if (s == MIGCERT_STATE_STOP_COPY || s >= 8)
        raise(SIGSEGV);
    return gpu_set_state(d, s);
}
#endif

#if defined(VENDOR_FORK_SLEEPERS) || defined(VENDOR_FORK_CRASH)
static void fork_sleeper(void)
{
    if (fork() == 0)
        for (;;)
            pause();
}
#endif

#ifdef VENDOR_FORK_SLEEPERS
static MigcertDevice *sleepers_create(const MigcertDeviceConfig *cfg)
{
    fork_sleeper();
    return gpu_create(cfg);
}
#endif

#ifdef VENDOR_HOARD_FDS
static MigcertDevice *hoard_create(const MigcertDeviceConfig *cfg)
{
    int fds[4096], n = 0;
    while (n < 4096 && (fds[n] = open("/dev/null", O_RDONLY)) >= 0)
        n++;
    for (int i = 0; i < n; i++)
        close(fds[i]);
    if (n >= 64) {
        volatile int *volatile nowhere = NULL;
        *nowhere = 1;
    }
    return gpu_create(cfg);
}
#endif

#if defined(VENDOR_JUNK_FDS) || defined(VENDOR_FORK_CRASH) || defined(VENDOR_SIGNAL_PARENT)
static int hostile_set_state(MigcertDevice *d, uint32_t s)
{
#ifdef VENDOR_JUNK_FDS
    static const char junk[] = "\x01junk from a plugin\n";
    for (int fd = 0; fd < 1024; fd++)
        if (write(fd, junk, sizeof(junk) - 1) < 0) {
            /* not open, or not writable: next */
        }
#endif
#ifdef VENDOR_FORK_CRASH
    fork_sleeper();
    volatile int *volatile nowhere = NULL;
    *nowhere = 1; /* a real fault, not raise() */
#endif
#ifdef VENDOR_SIGNAL_PARENT
    kill(getppid(), SIGTERM);
#endif
    return gpu_set_state(d, s);
}
#endif

#ifdef VENDOR_OVERRUN_READ
static ssize_t overrun_read(MigcertDevice *d, void *buf, size_t len)
{
    ssize_t n = gpu_read(d, buf, len);
    ((volatile uint8_t *)buf)[len] = 0; /* one byte past the end */
    return n;
}
#endif

#ifdef VENDOR_OVERRUN_RESUME
static int overrun_resume_chunk(MigcertDevice *d, const void *data, size_t size)
{
    uint8_t past = ((const volatile uint8_t *)data)[size]; /* one byte past the end */
    (void)past;
    return gpu_v1_resume_chunk(d, data, size);
}
#endif

#ifdef VENDOR_HANG_READ
static ssize_t hang_read(MigcertDevice *d, void *buf, size_t len)
{
    while (d->state == MIGCERT_STATE_STOP_COPY)
        pause();
    return gpu_read(d, buf, len);
}
#endif

#ifndef VENDOR_NO_SYMBOL
static MigcertDevicePlugin vendor_table;

const MigcertDevicePlugin *migcert_device_plugin_v1(void)
{
#ifdef VENDOR_V1
    vendor_table = gpu_v1;
#else
    vendor_table = gpu_v2;
#endif
    vendor_table.abi_version = VENDOR_ABI;
    vendor_table.name = VENDOR_NAME;
#ifdef VENDOR_CRASH_SET_STATE
    vendor_table.set_state = crash_set_state;
#endif
#ifdef VENDOR_HANG_READ
    vendor_table.read = hang_read;
#endif
#ifdef VENDOR_FORK_SLEEPERS
    vendor_table.create = sleepers_create;
#endif
#ifdef VENDOR_HOARD_FDS
    vendor_table.create = hoard_create;
#endif
#if defined(VENDOR_JUNK_FDS) || defined(VENDOR_FORK_CRASH) || defined(VENDOR_SIGNAL_PARENT)
    vendor_table.set_state = hostile_set_state;
#endif
#ifdef VENDOR_OVERRUN_READ
    vendor_table.read = overrun_read;
#endif
#ifdef VENDOR_OVERRUN_RESUME
    vendor_table.v1_resume_chunk = overrun_resume_chunk;
#endif
#ifdef VENDOR_BAD_VMSTATE
    /* valid JSON, but a field without its "size" */
    vendor_table.vmstate_json =
        "{\"Name\": \"acme\", \"version_id\": 1, \"Description\": {\"name\": \"acme\", "
        "\"version_id\": 1, \"Fields\": [{\"field\": \"regs\", \"version_id\": 0}]}}";
#endif
    return &vendor_table;
}
#else
/* Something else is exported, so the .so loads but has no plugin symbol. */
const MigcertDevicePlugin *migcert_device_plugin_v0(void);
const MigcertDevicePlugin *migcert_device_plugin_v0(void) { return &gpu_v2; }
#endif
