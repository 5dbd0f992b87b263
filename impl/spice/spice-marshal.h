/*
 * spice-marshal.h - the one table-driven encoder/decoder of SPICE message
 * bodies (docs/protocol-spice.md "Messages").
 *
 * Owns: the description types (SpiceMDesc: one per message body or nested
 * structure, a list of SpiceMField), spice_marshal_encode() and
 * spice_marshal_decode(), and the in-memory forms of variable parts
 * (SpiceMBytes, SpiceMArray).  The descriptions of every message the project
 * speaks live in spice-messages.c; the server (impl/spice), the scripted
 * client (fakes/client) and the fuzz targets all go through these two
 * functions, so a layout is written down once.
 *
 * Wire model (SPICE's, little-endian, packed):
 *   - scalar fields are written in order, at their natural width;
 *   - SPICE_MT_COUNTED writes a count (1, 2 or 4 bytes) then the elements
 *     (raw bytes when the field has no sub-description);
 *   - SPICE_MT_PTR writes a u32 offset from the start of the body to a
 *     nested structure (0 = none), and SPICE_MT_SIZED writes a u32 size then
 *     a u32 offset to that many raw bytes (strings carry their NUL in the
 *     size).  What a pointer points at goes into the body's data area, after
 *     the fixed part of the top-level message, in field order;
 *   - SPICE_MT_REST takes the bytes from there to the end of the body; it is
 *     the last field of its description (inside a pointed-to structure: the
 *     rest of the body).
 *
 * Decoding never trusts the peer: every count, size and offset is checked
 * against the body, the total of what a body may allocate is bounded by a
 * multiple of its size, and a failure names the message, the field and the
 * byte offset.  Decoded bodies own their memory: free them with
 * spice_marshal_free().
 *
 * Invariants: descriptions are constant data; the functions keep no state.
 */
#ifndef MIGCERT_SPICE_MARSHAL_H
#define MIGCERT_SPICE_MARSHAL_H

#include <stddef.h>
#include <stdint.h>

#include "../common/common.h"

typedef enum SpiceMType {
    SPICE_MT_U8,
    SPICE_MT_U16,
    SPICE_MT_U32,
    SPICE_MT_U64,
    SPICE_MT_I32,
    SPICE_MT_I64,
    SPICE_MT_FIXED,   /* `len` raw bytes into a uint8_t[len] member */
    SPICE_MT_STRUCT,  /* a nested structure, inline */
    SPICE_MT_COUNTED, /* count of width `len`, then elements: SpiceMArray or SpiceMBytes */
    SPICE_MT_PTR,     /* u32 offset to a nested structure: a pointer member, NULL = 0 */
    SPICE_MT_SIZED,   /* u32 size, u32 offset to raw bytes: SpiceMBytes */
    SPICE_MT_REST,    /* the bytes to the end of the body: SpiceMBytes */
    SPICE_MT__COUNT
} SpiceMType;

/* Raw bytes of a message (REST, SIZED, COUNTED without sub-description). */
typedef struct SpiceMBytes {
    uint32_t len;
    uint8_t *data;
} SpiceMBytes;

/* Elements of a COUNTED field with a sub-description, `n` of `sub->size`. */
typedef struct SpiceMArray {
    uint32_t n;
    void *items;
} SpiceMArray;

typedef struct SpiceMDesc SpiceMDesc;

typedef struct SpiceMField {
    const char *name;
    SpiceMType type;
    uint16_t offset;        /* offsetof() of the member in the C structure */
    uint16_t len;           /* FIXED: bytes; COUNTED: width of the count (1, 2, 4) */
    const SpiceMDesc *sub;  /* STRUCT, PTR, COUNTED of elements */
} SpiceMField;

struct SpiceMDesc {
    const char *name;       /* for errors: "MAIN_INIT", "DstInfo" */
    size_t size;            /* sizeof the C structure */
    const SpiceMField *fields;
    size_t nfields;
};

/* "U8", "COUNTED", …; "?" out of range. */
const char *spice_mtype_name(SpiceMType t);

/* The fixed part of a body of description d, in bytes (what the scalar,
 * FIXED, STRUCT, count-less pointer and size words take; the data area and
 * variable parts not counted). */
size_t spice_marshal_fixed_size(const SpiceMDesc *d);

/* Encode the C structure `in` (of d's type) into a new buffer *out of
 * *out_len bytes (malloc'ed; the caller frees it).  Returns 0, or -EINVAL
 * with errp set when `in` cannot be expressed (a count wider than its field,
 * a REST that is not last). */
int spice_marshal_encode(const SpiceMDesc *d, const void *in, uint8_t **out, size_t *out_len,
                         MigErr **errp);

/* Decode `len` bytes of `body` into the C structure `out` (of d's type;
 * zeroed first).  Returns 0, or -EPROTO with errp naming the message, the
 * field and the byte offset ("DRAW_COPY: field src_bitmap: offset 4000 is
 * past the end of the 93-byte body (at byte 21)"); on error `out` holds
 * nothing to free.  Trailing bytes after the last field are an error unless
 * the description ends with REST. */
int spice_marshal_decode(const SpiceMDesc *d, const uint8_t *body, size_t len, void *out,
                         MigErr **errp);

/* Free what spice_marshal_decode() allocated inside `obj` (not obj itself). */
void spice_marshal_free(const SpiceMDesc *d, void *obj);

#endif
