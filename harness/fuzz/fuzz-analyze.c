/*
 * fuzz-analyze.c - a libFuzzer target for `migcert analyze`'s parser
 * (impl/stream/analyze.h): the input is a stream file, analyzed from a
 * buffer and again as a pipe would deliver it (mig_analyze_stream over an
 * in-memory reader); both must return (a verdict and a document), never
 * crash or leak.
 * Seeds: harness/fuzz/corpus/fuzz-analyze (make-seeds.py: our streams,
 * QEMU 7.2's, the scenario library's drop-device streams).
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/analyze.h"
#include "stream/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = NULL;
    MigErr *err = NULL;
    uint64_t off = 0;
    mig_analyze_buffer(data, size, &doc, &off, &err);
    json_decref(doc);
    mig_err_free(err);
    doc = NULL;
    err = NULL;
    MigStream *s = mig_stream_new_mem_reader(data, size);
    if (s) {
        mig_analyze_stream(s, &doc, &off, &err);
        json_decref(doc);
        mig_err_free(err);
        mig_stream_free(s);
    }
    return 0;
}
