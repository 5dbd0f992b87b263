/*
 * analyze-devices.c - VFIO-style device sections in the analyzer: iterative
 * sections whose START, PART and END payloads are records in the format of
 * dev-format.h (SETUP, DATA, COMPLETE, EOS), walked record by record, so
 * they need no trailer.  Each such section gets one "device_sections" entry
 * (analyze.h) with its record counts and DATA bytes per phase.
 *
 * Called by analyze.c for every START/PART/END payload other than RAM's.
 * A record that is cut, unknown, of a bad length or in the wrong section
 * is an error naming the record and its offset; DATA bytes are read past,
 * never kept.
 */
#include <stdlib.h>

#include "analyze-internal.h"

/* The stream's sticky error (a cut, a failed read) as the failure of the
 * record that starts at `at`. */
static int devrec_check(MigAnalyzeCtx *c, uint64_t at, int tag, MigErr **errp)
{
    int r = mig__analyze_check(c, errp);
    if (r && tag >= 0)
        mig_err_prepend(errp, "%s record at offset %llu", mig_dev_rec_name((unsigned)tag),
                        (unsigned long long)at);
    else if (r)
        mig_err_prepend(errp, "device record at offset %llu", (unsigned long long)at);
    return r;
}

static json_t *devrec_entry(const MigAnalyzeStarted *st, const MigSectionHeader *h)
{
    json_t *d = json_object();
    json_object_set_new(d, "name", mig__analyze_json_str(st->name));
    json_object_set_new(d, "instance_id", json_integer(st->instance));
    json_object_set_new(d, "version", json_integer(st->version));
    json_object_set_new(d, "section_id", json_integer(st->id));
    json_object_set_new(d, "offset", mig__analyze_json_u64(h->offset));
    return d;
}

/* Fill st->dev from what was counted so far (called after every payload,
 * so a failed analysis still shows the records before the failure). */
static void devrec_report(const MigAnalyzeStarted *st)
{
    json_t *recs = json_object();
    for (unsigned t = MIG_DEV_REC_SETUP; t < MIG_DEV_REC__COUNT; t++)
        json_object_set_new(recs, mig_dev_rec_name(t), mig__analyze_json_u64(st->nrec[t]));
    json_object_set_new(st->dev, "records", recs);
    json_object_set_new(st->dev, "precopy_bytes", mig__analyze_json_u64(st->precopy_bytes));
    json_object_set_new(st->dev, "stopcopy_bytes", mig__analyze_json_u64(st->stopcopy_bytes));
    json_object_set_new(st->dev, "complete", json_boolean(st->complete));
}

/* One START/PART/END payload of a device section in the record format: up
 * to and including its EOS.  DATA bytes are read past, not kept. */
static int parse_devrec(MigAnalyzeCtx *c, const MigSectionHeader *h, MigAnalyzeStarted *st,
                        MigErr **errp)
{
    int r = 0;
    for (;;) {
        uint64_t at = c->item = mig_stream_offset(c->s);
        uint8_t tag;
        uint32_t v;
        bool got_tag = mig_dev_get_record_head(c->s, &tag, &v);
        if ((r = devrec_check(c, at, got_tag ? tag : -1, errp)))
            break;
        if (!mig_dev_rec_known(tag)) {
            r = mig__analyze_fail(c, errp, -EPROTO, "unknown device record 0x%02x", tag);
            break;
        }
        if (tag == MIG_DEV_REC_SETUP) {
            if (h->type != MIG_SECTION_START || st->setup) {
                r = mig__analyze_fail(c, errp, -EPROTO, "unexpected SETUP record (%s)",
                                      st->setup ? "the session is already set up"
                                                : "outside the START section");
                break;
            }
            if (v != MIG_DEV_SECTION_VERSION) {
                r = mig__analyze_fail(
                    c, errp, -ENOTSUP,
                    "SETUP record: section format %u is not supported (known: %u)", v,
                    MIG_DEV_SECTION_VERSION);
                break;
            }
            st->setup = true;
            json_object_set_new(st->dev, "format", json_integer(v));
        } else if (tag == MIG_DEV_REC_DATA) {
            if (v < 1 || v > MIG_DEV_SECTION_MAX_DATA) {
                r = mig__analyze_fail(c, errp, -EPROTO,
                                      "DATA record of %u bytes (allowed: 1 to %u)", v,
                                      MIG_DEV_SECTION_MAX_DATA);
                break;
            }
            if (!st->setup || st->complete) {
                r = mig__analyze_fail(c, errp, -EPROTO, "DATA record %s",
                                      st->setup ? "after the section's COMPLETE"
                                                : "before the section's SETUP");
                break;
            }
            /* Taken whole (at most MIG_DEV_SECTION_MAX_DATA bytes) rather
             * than skipped in what arrived: a record cut short is not
             * consumed in part, so a pipe reports the sizes a file does. */
            mig_stream_get_view(c->s, v);
            if ((r = mig__analyze_check(c, errp))) {
                mig_err_prepend(errp, "DATA record of %u bytes at offset %llu", v,
                                (unsigned long long)at);
                break;
            }
            if (h->type == MIG_SECTION_END)
                st->stopcopy_bytes += v;
            else
                st->precopy_bytes += v;
        } else if (tag == MIG_DEV_REC_COMPLETE) {
            if (h->type != MIG_SECTION_END || !st->setup || st->complete) {
                r = mig__analyze_fail(c, errp, -EPROTO, "unexpected COMPLETE record (%s)",
                                      !st->setup     ? "before the section's SETUP"
                                      : st->complete ? "a second one"
                                                     : "outside the END section");
                break;
            }
            st->complete = true;
        }
        st->nrec[tag]++;
        if (tag == MIG_DEV_REC_EOS)
            break;
    }
    devrec_report(st);
    return r;
}

bool mig__analyze_is_devrec(MigAnalyzeCtx *c, const MigSectionHeader *h,
                            const MigAnalyzeStarted *st)
{
    /* A START that ends right after its header is cut: read it as a device
     * section so the cut is reported as such. */
    return st->dev ||
           (h->type == MIG_SECTION_START &&
            (mig_stream_peek_u8(c->s, 0) == MIG_DEV_REC_SETUP || mig_stream_at_eof(c->s)));
}

int mig__analyze_parse_devrec(MigAnalyzeCtx *c, const MigSectionHeader *h, MigAnalyzeStarted *st,
                              MigErr **errp)
{
    if (!st->dev) {
        st->dev = devrec_entry(st, h);
        json_array_append_new(c->dev_sections, st->dev);
    }
    return parse_devrec(c, h, st, errp);
}
