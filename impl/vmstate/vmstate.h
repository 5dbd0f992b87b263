/*
 * vmstate.h - declarative device-state descriptions and their visitors:
 * binary save/load in QEMU's byte layout, JSON description in QEMU's
 * -dump-vmstate and VMDESCRIPTION shapes, and the static compatibility checker
 * over two dumps (compat.c).
 *
 * Owns: VmsField / VmsDescription (constant tables written by device code),
 * vmstate_save(), vmstate_load(), vmstate_describe_dump(),
 * vmstate_describe_vmdesc(), vmstate_check_compat().
 * Called by: fakes/devices (descriptions), impl/device and impl/migration
 * (save/load of FULL sections), the `migcert dump-vmstate` and
 * `migcert check-compat` commands, the analyzer.
 *
 * Wire layout (docs/protocol-qemu-stream.md section 5, QEMU's):
 *   fields in declaration order, no tags or lengths; a field is on the wire
 *   iff field_exists(obj, version) is true or, without that callback,
 *   field.version_id <= the description's version; then for each subsection
 *   in declaration order whose needed(obj) is true:
 *     u8 0x05, counted "<parent>/<sub>", be32 sub.version_id, its fields, its
 *     own subsections.
 *   A nested struct (VMS_TYPE_STRUCT) saves and loads with the child's
 *   *current* version, which never goes on the wire.
 *
 * Invariants:
 *   - Descriptions are constant data; the visitors keep no state between calls.
 *   - vmstate_save() writes all or nothing: the description is encoded into a
 *     private memory buffer first, then copied into the stream in one put.
 *   - vmstate_load() is transactional: before reading anything it copies
 *     every byte the description can write (every field, including pointed-to
 *     structs, nested structs and every subsection's fields, at full array
 *     capacity) into a snapshot; on any failure (stream error, bad count,
 *     unknown subsection, failing pre_load/post_load hook) it copies the
 *     snapshot back, so the object's described state is exactly as before.
 *     Hooks must therefore only change described fields (state outside the
 *     description is not rolled back) - documented here because it is the
 *     price of not knowing the object's size.
 *   - Bad input is never an assert: it is a negative errno and a message that
 *     names the description, the field path and the stream offset, e.g.
 *     "fake-nic: field rx_ring[3].len: stream ended at offset 4711".
 *
 * The subsection ambiguity (docs/protocol-qemu-stream.md section 6).
 *   QEMU's loader, after the fields of *any* description (also one nested as
 *   a struct inside a parent), peeks: byte 0x05, then a length >= strlen(name)
 *   + 1, then a name that merely *starts with* the description's name.  When
 *   a nested struct is followed by a parent field whose bytes happen to look
 *   like that (e.g. a be32 0x05036368 after a struct named "ch"), QEMU takes
 *   the parent's field for a subsection: unknown name -> -ENOENT and the
 *   migration fails; a name that happens to be declared -> silent misparse.
 *   The same happens when the child's name is a prefix of the parent's
 *   ("dev" inside "dev-nic": the parent's own "dev-nic/x" subsection).
 *
 *   migcert's fix keeps QEMU's wire format byte for byte and removes the
 *   ambiguity from both ends:
 *   1. Loader (nested descriptions only).  After a nested struct, 0x05 opens
 *      a subsection of that struct only if the counted name is *exactly* one
 *      of the child's declared subsections that was not loaded yet in this
 *      instance (a sender writes each at most once).  Anything else is left
 *      for the parent to read as its next field.  Every stream that QEMU's
 *      loader parses correctly is parsed identically (a genuine subsection
 *      always has an exact declared name; whatever stopped QEMU's loop also
 *      stops ours, our test being strictly narrower), and the streams that
 *      fool QEMU's prefix test load correctly.
 *      Top-level descriptions keep QEMU's rule, including -ENOENT for an
 *      unknown "<name>/..." subsection: there the next byte is framing
 *      (footer 0x7e, next section), never a device field.
 *   2. Sender.  The one residual case - the parent's next bytes spell
 *      exactly 0x05 + a declared, not-yet-sent subsection name of the child -
 *      is undecidable for any receiver.  vmstate_save() checks every place
 *      where a nested struct with subsections ends and refuses to produce
 *      such a stream (-EPROTO naming the field): a stream migcert writes is
 *      never ambiguous for a migcert destination.  (A QEMU destination still
 *      applies its prefix rule and may refuse, with -ENOENT, a stream whose
 *      field after a nested struct merely starts like a subsection; that is
 *      QEMU's limitation, and the same stream loads here.)
 *   harness/unit/test-vmstate.c carries a reference implementation of QEMU's
 *   rule to show the streams it mis-parses and that ours loads them.
 */
#ifndef MIGCERT_VMSTATE_H
#define MIGCERT_VMSTATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/common.h"
#include "../stream/stream.h"

/* What one element of a field is on the wire.  Integers are big-endian. */
typedef enum VmsType {
    VMS_TYPE_U8,
    VMS_TYPE_U16,
    VMS_TYPE_U32,
    VMS_TYPE_U64,
    VMS_TYPE_I8,
    VMS_TYPE_I16,
    VMS_TYPE_I32,
    VMS_TYPE_I64,
    VMS_TYPE_BOOL,   /* 1 byte, 0 or 1; any other byte on load is -EPROTO */
    VMS_TYPE_BUFFER, /* `size` raw bytes */
    VMS_TYPE_UNUSED, /* `size` zero bytes on save, skipped on load; no storage */
    VMS_TYPE_TIMER,  /* int64_t expiry as be64, -1 = not armed */
    VMS_TYPE_STRUCT, /* nested description `vmsd`, element size `size` */
    VMS_TYPE__COUNT
} VmsType;

/* Name of a type as QEMU's VMDESCRIPTION writes it ("uint32", "struct", ...). */
const char *vmstate_type_name(VmsType t);

/* How the element count of a field is found. */
typedef enum VmsCount {
    VMS_COUNT_ONE,   /* a single element */
    VMS_COUNT_FIXED, /* `num` elements */
    VMS_COUNT_VAR8,  /* uint8_t at `count_offset`, at most `num` (capacity) */
    VMS_COUNT_VAR16, /* uint16_t at `count_offset`, at most `num` */
    VMS_COUNT_VAR32, /* uint32_t at `count_offset`, at most `num` */
    VMS_COUNT__COUNT
} VmsCount;

/* Name of a count kind for messages and logs ("one", "fixed", "var8",
 * "var16", "var32"; "unknown" out of range). */
const char *vmstate_count_name(VmsCount c);

typedef struct VmsDescription VmsDescription;

typedef struct VmsField {
    const char *name;   /* NULL ends the list (VMS_END) */
    size_t offset;      /* offsetof the member in the object */
    VmsType type;
    size_t size;        /* bytes of one element (ints: 1..8; buffer/unused: N;
                           struct: sizeof the child) */
    VmsCount count;
    uint32_t num;       /* FIXED: element count; VAR*: capacity of the array */
    size_t count_offset;/* VAR*: offsetof the count member (an earlier field) */
    bool pointer;       /* the member is a pointer to the element(s) */
    int version_id;     /* on the wire iff version_id <= stream version */
    /* When set, replaces the version gate: on the wire iff it returns true. */
    bool (*field_exists)(void *obj, int version_id);
    const VmsDescription *vmsd; /* STRUCT */
} VmsField;

struct VmsDescription {
    const char *name;
    int version_id;
    int minimum_version_id;
    const VmsField *fields;                  /* ends with VMS_END */
    const VmsDescription *const *subsections; /* NULL-terminated, or NULL */
    /* Subsections only: written iff needed(obj); NULL = always. */
    bool (*needed)(void *obj);
    /* Hooks return 0 or a negative errno (a failure aborts save/load). */
    int (*pre_save)(void *obj);
    int (*pre_load)(void *obj); /* reset what an absent subsection leaves */
    int (*post_load)(void *obj, int version_id);
};

/* ---- field declaration macros (offsetof-based) ----
 * VMS_<T>(member, State) for a scalar; _V adds a version gate.  The element
 * size comes from the member itself, so a type mismatch shows in the size. */
#define VMS__MEMBER(S, m) (((S *)0)->m)
#define VMS_SCALAR_V(m, S, T, v)                                                     \
    {                                                                                \
        .name = #m, .offset = offsetof(S, m), .type = (T),                           \
        .size = sizeof(VMS__MEMBER(S, m)), .count = VMS_COUNT_ONE, .version_id = (v) \
    }
#define VMS_U8_V(m, S, v) VMS_SCALAR_V(m, S, VMS_TYPE_U8, v)
#define VMS_U16_V(m, S, v) VMS_SCALAR_V(m, S, VMS_TYPE_U16, v)
#define VMS_U32_V(m, S, v) VMS_SCALAR_V(m, S, VMS_TYPE_U32, v)
#define VMS_U64_V(m, S, v) VMS_SCALAR_V(m, S, VMS_TYPE_U64, v)
#define VMS_I8_V(m, S, v) VMS_SCALAR_V(m, S, VMS_TYPE_I8, v)
#define VMS_I16_V(m, S, v) VMS_SCALAR_V(m, S, VMS_TYPE_I16, v)
#define VMS_I32_V(m, S, v) VMS_SCALAR_V(m, S, VMS_TYPE_I32, v)
#define VMS_I64_V(m, S, v) VMS_SCALAR_V(m, S, VMS_TYPE_I64, v)
#define VMS_BOOL_V(m, S, v) VMS_SCALAR_V(m, S, VMS_TYPE_BOOL, v)
#define VMS_TIMER_V(m, S, v) VMS_SCALAR_V(m, S, VMS_TYPE_TIMER, v)
#define VMS_BUFFER_V(m, S, v) VMS_SCALAR_V(m, S, VMS_TYPE_BUFFER, v)
#define VMS_U8(m, S) VMS_U8_V(m, S, 0)
#define VMS_U16(m, S) VMS_U16_V(m, S, 0)
#define VMS_U32(m, S) VMS_U32_V(m, S, 0)
#define VMS_U64(m, S) VMS_U64_V(m, S, 0)
#define VMS_I8(m, S) VMS_I8_V(m, S, 0)
#define VMS_I16(m, S) VMS_I16_V(m, S, 0)
#define VMS_I32(m, S) VMS_I32_V(m, S, 0)
#define VMS_I64(m, S) VMS_I64_V(m, S, 0)
#define VMS_BOOL(m, S) VMS_BOOL_V(m, S, 0)
#define VMS_TIMER(m, S) VMS_TIMER_V(m, S, 0) /* int64_t member */
#define VMS_BUFFER(m, S) VMS_BUFFER_V(m, S, 0) /* uint8_t m[N] member */

/* A scalar present only when fn(obj, version) says so. */
#define VMS_SCALAR_TEST(m, S, T, fn)                                                \
    {                                                                               \
        .name = #m, .offset = offsetof(S, m), .type = (T),                          \
        .size = sizeof(VMS__MEMBER(S, m)), .count = VMS_COUNT_ONE, .field_exists = (fn) \
    }

/* Fixed array `T m[n]` of integers (T a VMS_TYPE_*). */
#define VMS_ARRAY_V(m, S, T, v)                                                          \
    {                                                                                    \
        .name = #m, .offset = offsetof(S, m), .type = (T),                               \
        .size = sizeof(VMS__MEMBER(S, m)[0]), .count = VMS_COUNT_FIXED,                  \
        .num = sizeof(VMS__MEMBER(S, m)) / sizeof(VMS__MEMBER(S, m)[0]), .version_id = (v) \
    }
#define VMS_ARRAY(m, S, T) VMS_ARRAY_V(m, S, T, 0)

/* Variable array: the first `cnt` (an earlier uint8/16/32 member) elements of
 * `T m[CAP]` are on the wire; a count above CAP on load is -EPROTO. */
#define VMS__VCOUNT(S, cnt)                                                    \
    (sizeof(VMS__MEMBER(S, cnt)) == 1   ? VMS_COUNT_VAR8                       \
     : sizeof(VMS__MEMBER(S, cnt)) == 2 ? VMS_COUNT_VAR16                      \
                                        : VMS_COUNT_VAR32)
#define VMS_VARRAY(m, S, T, cnt)                                                              \
    {                                                                                         \
        .name = #m, .offset = offsetof(S, m), .type = (T),                                    \
        .size = sizeof(VMS__MEMBER(S, m)[0]), .count = VMS__VCOUNT(S, cnt),                   \
        .num = sizeof(VMS__MEMBER(S, m)) / sizeof(VMS__MEMBER(S, m)[0]),                      \
        .count_offset = offsetof(S, cnt)                                                      \
    }

/* Nested struct member `C m` described by `d` (a VmsDescription). */
#define VMS_STRUCT_V(m, S, d, C, v)                                                   \
    {                                                                                 \
        .name = #m, .offset = offsetof(S, m), .type = VMS_TYPE_STRUCT, .size = sizeof(C), \
        .count = VMS_COUNT_ONE, .vmsd = &(d), .version_id = (v)                       \
    }
#define VMS_STRUCT(m, S, d, C) VMS_STRUCT_V(m, S, d, C, 0)
/* Fixed array `C m[n]` of structs. */
#define VMS_STRUCT_ARRAY(m, S, d, C)                                                       \
    {                                                                                      \
        .name = #m, .offset = offsetof(S, m), .type = VMS_TYPE_STRUCT, .size = sizeof(C),  \
        .count = VMS_COUNT_FIXED, .num = sizeof(VMS__MEMBER(S, m)) / sizeof(C), .vmsd = &(d) \
    }
/* `C m[CAP]` with `cnt` elements on the wire. */
#define VMS_STRUCT_VARRAY(m, S, d, C, cnt)                                                \
    {                                                                                     \
        .name = #m, .offset = offsetof(S, m), .type = VMS_TYPE_STRUCT, .size = sizeof(C), \
        .count = VMS__VCOUNT(S, cnt), .num = sizeof(VMS__MEMBER(S, m)) / sizeof(C),       \
        .count_offset = offsetof(S, cnt), .vmsd = &(d)                                    \
    }
/* `C *m` pointing at one struct the device allocated (never NULL when saved
 * or loaded: NULL is a programmer error reported as -EINVAL). */
#define VMS_STRUCT_POINTER(m, S, d, C)                                                    \
    {                                                                                     \
        .name = #m, .offset = offsetof(S, m), .type = VMS_TYPE_STRUCT, .size = sizeof(C), \
        .count = VMS_COUNT_ONE, .pointer = true, .vmsd = &(d)                             \
    }
/* n bytes of padding: zeros on save, ignored on load. */
#define VMS_UNUSED_V(n, v)                                                             \
    {                                                                                  \
        .name = "unused", .type = VMS_TYPE_UNUSED, .size = (n), .count = VMS_COUNT_ONE, \
        .version_id = (v)                                                              \
    }
#define VMS_UNUSED(n) VMS_UNUSED_V(n, 0)
#define VMS_END \
    {           \
        .name = NULL \
    }

/* ---- visitors ---- */

/* Write `obj` as described by `desc` at desc->version_id: pre_save hooks,
 * fields, needed subsections.  All or nothing (see the header comment).
 * Returns 0, or a negative errno: a failing hook's code, -EINVAL for a
 * description bug (NULL pointer member, count above capacity), -EPROTO when
 * the result would be ambiguous (subsection ambiguity, rule 2), the stream's
 * sticky error.  Fault point "mig/vmstate/save" at entry. */
int vmstate_save(MigStream *s, const VmsDescription *desc, void *obj, MigErr **errp);

/* Read `obj` from a payload written at `version_id` (the version from the
 * section header).  Returns 0; -EINVAL "too new" when version_id >
 * desc->version_id; -ENOTSUP "too old" when version_id <
 * desc->minimum_version_id; -ENOENT for an unknown subsection (named); -EPROTO
 * for a bad count or bool; the stream's error (-EIO "stream ended at offset
 * N", -EAGAIN when a non-blocking reader starved: rewind and retry); a failing
 * hook's code.  On failure the object is unchanged (see the header comment).
 * The version errnos are QEMU's (vmstate_load_state: -EINVAL too new,
 * -EINVAL/-ENOTSUP too old), kept so a version mismatch reads the same from
 * QEMU and migcert; see stream.h for the same choice in the framing.
 * Fault point "mig/vmstate/load" at entry. */
int vmstate_load(MigStream *s, const VmsDescription *desc, void *obj, int version_id,
                 MigErr **errp);
/* vmstate_load, knowing the description the sender writes with (`sent`,
 * e.g. the one the source's machine type emits; NULL: not known, nothing
 * is required, as vmstate_load): each of its
 * top-level subsections without a needed() is in every stream it writes,
 * so one that did not arrive, and that desc declares, fails the load with
 * -EPROTO "subsection X, which the sender always writes, is missing at
 * offset N" (docs/protocol-qemu-stream.md, the completeness rule). */
int vmstate_load_sent(MigStream *s, const VmsDescription *desc, const VmsDescription *sent,
                      void *obj, int version_id, MigErr **errp);
/* vmstate_load_sent that also says, when it succeeds, which of desc's
 * top-level subsections arrived: bit i of *got for desc->subsections[i]
 * (the first 64).  The destination compares them with the subsections the
 * source's VMDESCRIPTION lists for the device (migration-dest.c). */
int vmstate_load_logged(MigStream *s, const VmsDescription *desc, const VmsDescription *sent,
                        void *obj, int version_id, uint64_t *got, MigErr **errp);
/* The index of desc's top-level subsection `name` (among the first 64), or
 * -1. */
int vmstate_subsection_index(const VmsDescription *desc, const char *name);

/* ---- JSON descriptions (jansson; the caller owns the returned reference) ---- */

/* One -dump-vmstate entry: {"Name", "version_id", "minimum_version_id",
 * "Description": {"name", "version_id", "minimum_version_id", "Fields": [...],
 * "Subsections": [...] (only when there are some)}}. */
json_t *vmstate_describe_dump(const VmsDescription *desc);
/* The "Description" object alone (nested structs and subsections use it). */
json_t *vmstate_describe_dump_desc(const VmsDescription *desc);

/* One VMDESCRIPTION device entry for `obj` in its current state, as a save
 * now would write it (counts, field_exists, needed; hooks are not run):
 * {"name": idstr, "instance_id", "vmsd_name", "version", "fields": [{"name",
 * ["array_len"|"index"], "type", ["struct": {...}], "size"}], "subsections":
 * [{"vmsd_name", "version", "fields", ...}]}.  NULL on a description bug. */
json_t *vmstate_describe_vmdesc(const VmsDescription *desc, void *obj, const char *idstr,
                                uint32_t instance_id);

/* ---- static compatibility checker (compat.c) ---- */

typedef enum VmsCompatLevel {
    VMS_COMPAT_ERROR, /* migrating OLD -> NEW breaks */
    VMS_COMPAT_INFO,  /* a compatible change worth knowing (new subsection, ...) */
    VMS_COMPAT__COUNT
} VmsCompatLevel;

typedef struct VmsCompatFinding {
    VmsCompatLevel level;
    int rule;            /* 1..10: docs/protocol-qemu-stream.md section 11;
                            11 = field added in NEW without a version bump;
                            12 = info items;
                            13 = field_exists changed (compat.c's header) */
    const char *section; /* top-level key (device class) */
    const char *where;   /* description / field path, "" when about the section */
    const char *text;    /* one line: what and why */
} VmsCompatFinding;

typedef void (*VmsCompatCb)(const VmsCompatFinding *f, void *opaque);

/* Name of a level for output ("error", "info"). */
const char *vmstate_compat_level_name(VmsCompatLevel l);

/* The checker's limits on a dump (docs/limits.md); past one the document
 * is refused (-EPROTO naming the limit).  QEMU 7.2's pc machine has ~250
 * sections, descriptions a few levels deep, at most ~100 fields and ~10
 * subsections in one description. */
#define VMS_COMPAT_MAX_SECTIONS 10000u    /* top-level keys of a dump */
#define VMS_COMPAT_MAX_FIELDS 10000u      /* entries of one "Fields" */
#define VMS_COMPAT_MAX_SUBSECTIONS 1000u  /* entries of one "Subsections" */
#define VMS_COMPAT_MAX_DEPTH 64           /* descriptions within descriptions */
#define VMS_COMPAT_MAX_FIELD_SIZE (1ll << 30) /* a field's "size" */

/* Compare two -dump-vmstate documents for migrating OLD -> NEW and report
 * every finding through cb (in OLD's key order, then NEW-only keys).  Beyond
 * QEMU's checker it applies the stream's version rules: NEW fields above the
 * OLD version are skipped (fine), NEW fields a stream of the OLD version
 * would have to carry but does not are errors (rule 11), and new subsections
 * are info.  Linear in the size of the documents.  Returns the number of
 * errors (>= 0), or -EPROTO when either document does not have the dump's
 * shape or is past a limit above (errp names which and where): a negative
 * version or size, minimum_version_id above version_id, a section whose
 * "Name" is not its key, two subsections of one name. */
int vmstate_check_compat(json_t *old_dump, json_t *new_dump, VmsCompatCb cb, void *opaque,
                         MigErr **errp);

/* What the checker detects beyond QEMU's and what no static check can
 * (needed() semantics, machine-type compat properties, array lengths, ...):
 * the text `migcert check-compat --help` prints. */
const char *vmstate_compat_scope(void);

/* Format a finding as the one line `migcert check-compat` prints:
 * `error: section "x": field "a.b": <text>` (caller frees). */
char *vmstate_compat_format(const VmsCompatFinding *f);

#endif
