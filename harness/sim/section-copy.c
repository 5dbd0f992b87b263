/*
 * section-copy.c - one FULL section from registry to registry (section-copy.h).
 */
#include <errno.h>

#include "sim/section-copy.h"
#include "stream/stream.h"

int sim_section_copy(MigSavevm *src, MigSavevm *dst, MigErr **errp)
{
    const MigSaveEntry *es = mig_savevm_entry(src, 0), *ed = mig_savevm_entry(dst, 0);
    if (!es || !ed || !es->full || !ed->full)
        return mig_err_set(errp, -EINVAL, "section copy: both registries need a FULL section first");
    MigStream *w = mig_stream_new_mem_writer();
    int rc = es->full->save(es->opaque, w, errp);
    if (rc == 0) {
        size_t len;
        const uint8_t *bytes = mig_stream_mem_data(w, &len);
        MigStream *r = mig_stream_new_mem_reader(bytes, len);
        rc = ed->full->load(ed->opaque, r, es->version_id, errp);
        mig_stream_free(r);
    }
    mig_stream_free(w);
    return rc;
}
