/*
 * fuzz-stream.c - a libFuzzer target for the destination's stream loader:
 * the input is a whole migration stream, loaded by a destination machine
 * (fuzz-machine.h: RAM and the release's devices) over an in-memory link,
 * on the simulator's loop.  Whatever the bytes, the destination must end in
 * completed or failed (never hang, crash or leak).
 * Seeds: harness/fuzz/corpus/fuzz-stream (make-seeds.py: our streams of this
 * machine, QEMU 7.2's).  MIGCERT_FUZZ_SEEDS=DIR writes our seeds and exits;
 * MIGCERT_FUZZ_VERBOSE=1 prints how each input ended.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz-machine.h"
#include "fuzz-util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("MIGCERT_FUZZ_SEEDS");
    if (!dir)
        return 0;
    int rc = fuzz_vm_write_stream(dir, "ours-zero", 1, 0) | fuzz_vm_write_stream(dir, "ours-fill", 2, 0xa5);
    exit(rc ? 1 : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzVm v;
    if (fuzz_vm_new(&v, true, 1) < 0)
        abort();
    MigTransport *a, *b;
    if (mig_transport_mem_pair(v.loop, NULL, &a, &b) == 0) {
        fuzz_write_all(a, data, size);
        mig_transport_shutdown_write(a);
        if (mig_machine_incoming_transport(v.m, b, NULL) == 0)
            mig_sim_run_for(v.loop, 10000000000ull);
        MigStatus st = mig_migration_status(mig_machine_migration(v.m));
        if (getenv("MIGCERT_FUZZ_VERBOSE")) /* what the loader said, for a reproducer */
            fprintf(stderr, "destination: %s %s\n", mig_status_name(st),
                    mig_migration_error(mig_machine_migration(v.m)) ?: "");
        if (!mig_status_is_terminal(st) && st != MIG_STATUS_NONE) {
            /* the whole input is there: a loader still waiting is a hang */
            if (!getenv("MIGCERT_FUZZ_ALLOW_WAIT"))
                abort();
        }
        mig_transport_close(a);
        mig_sim_run_for(v.loop, 1000000000ull);
    }
    fuzz_vm_free(&v);
    return 0;
}
