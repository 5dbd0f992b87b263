/*
 * fuzz-devices.c - a libFuzzer target for vmstate and device section
 * loading: one section payload at a time, straight into a handler of the
 * destination machine of fuzz-machine.h (no stream framing around it).
 *
 * Input: byte 0 picks the savevm entry (ram, fake-serial, fake-nic,
 * fake-rng, fake-gpu: index modulo the count), then records
 *   u8 kind, u16 length (big-endian), length bytes of payload
 * each loaded as one section of that entry: a FULL entry's load gets the
 * payload with version (kind & 0x7f) + its own version - 1 (so older and
 * newer versions are tried); an iterative entry's load_state gets it as a
 * START (kind % 3 == 0), PART (1) or END (2) section, then load_complete
 * and load_cleanup run.  A refused load must leave a FULL device as it was.
 * Seeds: harness/fuzz/corpus/fuzz-devices: with MIGCERT_FUZZ_SEEDS=DIR set,
 * LLVMFuzzerInitialize writes each FULL device's saved state as a seed and
 * exits (make-seeds.py).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz-machine.h"
#include "savevm/savevm.h"
#include "stream/stream.h"

static int write_seeds(const char *dir)
{
    FuzzVm v;
    if (fuzz_vm_new(&v, false, 3) < 0)
        return 1;
    MigSavevm *sv = mig_machine_savevm(v.m);
    int rc = 0;
    for (size_t i = 0; i < mig_savevm_count(sv); i++) {
        const MigSaveEntry *e = mig_savevm_entry(sv, i);
        if (e->kind != MIG_SAVE_FULL)
            continue;
        MigStream *s = mig_stream_new_mem_writer();
        if (mig_savevm_entry_save_full(e, s, NULL) < 0) {
            rc = 1;
        } else {
            size_t n = 0;
            const uint8_t *b = mig_stream_mem_data(s, &n);
            char path[4096];
            snprintf(path, sizeof(path), "%s/full-%s", dir, e->idstr);
            FILE *f = fopen(path, "wb");
            uint8_t hdr[4] = {(uint8_t)i, 1, (uint8_t)(n >> 8), (uint8_t)n};
            if (!f || n > 0xffff || fwrite(hdr, 1, 4, f) != 4 || fwrite(b, 1, n, f) != n)
                rc = 1;
            if (f)
                fclose(f);
        }
        mig_stream_free(s);
    }
    fuzz_vm_free(&v);
    return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("MIGCERT_FUZZ_SEEDS");
    if (dir)
        exit(write_seeds(dir));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    FuzzVm v;
    if (fuzz_vm_new(&v, true, 1) < 0)
        abort();
    MigSavevm *sv = mig_machine_savevm(v.m);
    const MigSaveEntry *e = mig_savevm_entry(sv, data[0] % mig_savevm_count(sv));
    bool set_up = false;
    size_t off = 1;
    while (off + 3 <= size) {
        uint8_t kind = data[off];
        size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
        off += 3;
        if (len > size - off)
            len = size - off;
        MigStream *s = mig_stream_new_mem_reader_borrow(data + off, len);
        off += len;
        if (e->kind == MIG_SAVE_FULL) {
            uint32_t version = (uint32_t)(kind & 0x7f) + e->version_id - 1;
            MigFakeDevice *dev = NULL, *before = NULL;
            for (size_t i = 0; i < v.ndevs; i++)
                if (!strcmp(mig_fake_device_type(v.devs[i]), e->idstr))
                    dev = v.devs[i];
            if (dev)
                before = mig_fake_device_clone(dev);
            if (mig_savevm_entry_load_full(e, s, version, NULL) < 0 && before) {
                MigErr *err = NULL;
                if (mig_fake_device_same(before, dev, &err) < 0) {
                    fprintf(stderr, "a refused load changed the device: %s\n", err ? err->msg : "");
                    abort();
                }
                mig_err_free(err);
            }
            mig_fake_device_free(before);
        } else {
            MigSectionHeader h = {.type = (uint8_t)(MIG_SECTION_START + kind % 3),
                                  .section_id = e->section_id, .instance_id = e->instance_id,
                                  .version_id = e->version_id};
            snprintf(h.idstr, sizeof(h.idstr), "%s", e->idstr);
            MigErr *err = NULL;
            if (!set_up && e->iter->load_setup && e->iter->load_setup(e->opaque, &err) < 0) {
                mig_err_free(err);
                mig_stream_free(s);
                break;
            }
            set_up = true;
            e->iter->load_state(e->opaque, s, &h, &err);
            mig_err_free(err);
        }
        mig_stream_free(s);
    }
    if (set_up) {
        MigErr *err = NULL;
        int rc = e->iter->load_complete ? e->iter->load_complete(e->opaque, &err) : 0;
        mig_err_free(err);
        if (e->iter->load_cleanup)
            e->iter->load_cleanup(e->opaque, rc == 0 ? MIG_OUTCOME_COMPLETED : MIG_OUTCOME_FAILED);
    }
    fuzz_vm_free(&v);
    return 0;
}
