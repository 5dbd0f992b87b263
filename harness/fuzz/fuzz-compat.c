/*
 * fuzz-compat.c - a libFuzzer target for `migcert check-compat`'s input:
 * two -dump-vmstate JSON documents, OLD and NEW, separated by the first
 * NUL byte of the input (none: the input is both), read as check-compat
 * reads them and compared (impl/vmstate/compat.c) with every finding
 * formatted.  Never a crash, hang or leak.  Seeds:
 * harness/fuzz/corpus/fuzz-compat (make-seeds.py: QEMU 7.2's -dump-vmstate
 * cut to a few devices, ours of two releases).
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmstate/vmstate.h"

static void finding(const VmsCompatFinding *f, void *opaque)
{
    free(vmstate_compat_format(f));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t old_len = nul ? (size_t)(nul - data) : size;
    const uint8_t *new_d = nul ? nul + 1 : data;
    size_t new_len = nul ? size - old_len - 1 : size;
    json_error_t jerr;
    json_t *old_doc = json_loadb((const char *)data, old_len, 0, &jerr);
    json_t *new_doc = json_loadb((const char *)new_d, new_len, 0, &jerr);
    if (old_doc && new_doc) {
        MigErr *err = NULL;
        vmstate_check_compat(old_doc, new_doc, finding, NULL, &err);
        mig_err_free(err);
    }
    json_decref(old_doc);
    json_decref(new_doc);
    return 0;
}
