/*
 * dev-format.c - device section payload records: names, encoders, the head
 * decoder (see dev-format.h).
 */
#include "dev-format.h"

static const char *const rec_names[MIG_DEV_REC__COUNT] = {
    [MIG_DEV_REC_SETUP] = "SETUP",
    [MIG_DEV_REC_DATA] = "DATA",
    [MIG_DEV_REC_COMPLETE] = "COMPLETE",
    [MIG_DEV_REC_EOS] = "EOS",
};

const char *mig_dev_rec_name(unsigned tag)
{
    return tag < MIG_DEV_REC__COUNT && rec_names[tag] ? rec_names[tag] : "?";
}

bool mig_dev_rec_known(unsigned tag)
{
    return tag >= MIG_DEV_REC_SETUP && tag < MIG_DEV_REC__COUNT;
}

bool mig_dev_rec_has_value(unsigned tag)
{
    return tag == MIG_DEV_REC_SETUP || tag == MIG_DEV_REC_DATA;
}

void mig_dev_put_setup(MigStream *s)
{
    mig_stream_put_u8(s, MIG_DEV_REC_SETUP);
    mig_stream_put_be32(s, MIG_DEV_SECTION_VERSION);
}

void mig_dev_put_data(MigStream *s, const void *p, size_t n)
{
    mig_stream_put_u8(s, MIG_DEV_REC_DATA);
    mig_stream_put_be32(s, (uint32_t)n);
    mig_stream_put_buffer(s, p, n);
}

void mig_dev_put_complete(MigStream *s)
{
    mig_stream_put_u8(s, MIG_DEV_REC_COMPLETE);
}

void mig_dev_put_eos(MigStream *s)
{
    mig_stream_put_u8(s, MIG_DEV_REC_EOS);
}

static bool read_ok(const MigStream *s)
{
    return !mig_stream_error(s) && !mig_stream_starved(s);
}

bool mig_dev_get_record_head(MigStream *s, uint8_t *tag, uint32_t *value)
{
    *value = 0;
    *tag = mig_stream_get_u8(s);
    if (!read_ok(s))
        return false;
    if (mig_dev_rec_has_value(*tag))
        *value = mig_stream_get_be32(s);
    return true;
}
