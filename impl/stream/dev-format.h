/*
 * dev-format.h - the wire format of a VFIO-style device section's payload:
 * the record tags, their names, their sizes and the record encoders and the
 * head decoder (docs/protocol-vfio.md).
 *
 * Owns: only the byte layout, the one description of it in the project.
 * What to send and what a record does to a device belong to
 * impl/device/device-savevm.c (the writer on the source, the loader on the
 * destination); what a record says about a stream belongs to the analyzer
 * (impl/stream/analyze-devices.c); the scenario executor places its
 * device-data drop with MIG_DEV_REC_DATA_HDR.  It sits in impl/stream, below
 * impl/device, so that the analyzer can use it (as ram-format.h does for RAM
 * records).
 *
 * Payload records (big-endian; bump MIG_DEV_SECTION_VERSION on change):
 *   0x01 SETUP     be32 format version                        (START only)
 *   0x02 DATA      be32 length (1 .. MIG_DEV_SECTION_MAX_DATA) + bytes
 *   0x03 COMPLETE  the device's state is whole                (END only)
 *   0x04 EOS       end of this payload
 * Every START, PART and END payload of such a section ends with EOS; the
 * section is recognised by its START payload opening with SETUP.  0x00 is
 * not a tag.
 */
#ifndef MIGCERT_DEV_FORMAT_H
#define MIGCERT_DEV_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream.h"

/* The format version SETUP carries, and the section's version_id. */
#define MIG_DEV_SECTION_VERSION 1u
/* The largest DATA record's byte count (a device read is cut to it). */
#define MIG_DEV_SECTION_MAX_DATA (1u << 20)
/* The bytes of a record's head: its tag, and for SETUP and DATA the be32
 * after it.  A DATA record's bytes start MIG_DEV_REC_DATA_HDR bytes after
 * its tag. */
#define MIG_DEV_REC_DATA_HDR 5u

typedef enum MigDevRec {
    MIG_DEV_REC_SETUP = 0x01,
    MIG_DEV_REC_DATA = 0x02,
    MIG_DEV_REC_COMPLETE = 0x03,
    MIG_DEV_REC_EOS = 0x04,
    MIG_DEV_REC__COUNT /* one past the last tag; 0x00 is not a tag */
} MigDevRec;

/* "SETUP", "DATA", "COMPLETE", "EOS"; "?" for anything else. */
const char *mig_dev_rec_name(unsigned tag);
/* Whether `tag` is one of the records above. */
bool mig_dev_rec_known(unsigned tag);
/* Whether a be32 follows `tag` (SETUP's format, DATA's length). */
bool mig_dev_rec_has_value(unsigned tag);

/* ---- encoders (errors are the stream's sticky error) ---- */
/* SETUP with MIG_DEV_SECTION_VERSION. */
void mig_dev_put_setup(MigStream *s);
/* DATA: n (1 .. MIG_DEV_SECTION_MAX_DATA) bytes of p, copied. */
void mig_dev_put_data(MigStream *s, const void *p, size_t n);
void mig_dev_put_complete(MigStream *s);
void mig_dev_put_eos(MigStream *s);

/* ---- decoder ---- */
/* Read a record's head: the tag into *tag and, when mig_dev_rec_has_value,
 * the be32 after it into *value (else 0).  A DATA record's bytes are left
 * to the caller (read or skip *value of them).  Nothing is read after a
 * failed or starved read.  Returns true when the tag was read (so a failure
 * after it belongs to that record), false when not even the tag was; the
 * stream's sticky error, or mig_stream_starved, says whether the whole head
 * was read.  An unknown tag is read like COMPLETE and left to the caller to
 * refuse. */
bool mig_dev_get_record_head(MigStream *s, uint8_t *tag, uint32_t *value);

#endif
