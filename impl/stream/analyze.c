/*
 * analyze.c - the stream analyzer (see analyze.h).
 *
 * One pass from the start.  Device payloads can only be walked with the
 * field lists of the VMDESCRIPTION trailer, which sits at the very end:
 *   - over a buffer (a mapped file) the trailer is located from the end
 *     before the pass starts;
 *   - over a stream (a pipe) the RAM sections, which are nearly all of a
 *     stream, are parsed as they arrive with the stream's bounded buffer;
 *     at the first device section the rest of the input (device sections,
 *     EOF, trailer: ~100 KB for QEMU's pc machine) is read into memory, at
 *     most MIG_ANALYZE_TAIL_MAX bytes, and the pass goes on over that copy
 *     with a reader whose offsets continue where the stream stopped.
 * Every wire item (header, configuration, section header, RAM record,
 * device payload, footer) records its start in `item` before it is read, so
 * a failure can name the item that could not be accepted.  Names that come
 * from the wire (idstrs, block names, the trailer's field names) are escaped
 * (mig_stream_escape) before they reach a message, the JSON or the text.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"
#include "ram-format.h"
#include "stream.h"

#define RAM_IDSTR "ram"
#define RAM_VERSION 4u /* QEMU's "ram" section version since 2012 */
#define MAX_NEST 32
#define MAX_FIELD_SIZE (1u << 30)
#define MAX_ARRAY_LEN (1u << 24)
/* Commands (protocols/qemu-stream.md section 4). */
#define CMD_PACKAGED 7
/* Payload records of a VFIO-style device section.  The source of truth is
 * impl/device/device-savevm.h ("Payload records"); the stream module does
 * not depend on impl/device, so the documented wire values are repeated
 * here and must follow that header's bumps:
 *   0x01 SETUP     be32 format version                        (START only)
 *   0x02 DATA      be32 length (1 .. 1 MiB) + bytes
 *   0x03 COMPLETE  the device's state is whole                (END only)
 *   0x04 EOS       end of this payload
 * Such a section is recognised by its START payload opening with SETUP. */
#define DEVREC_SETUP 0x01
#define DEVREC_DATA 0x02
#define DEVREC_COMPLETE 0x03
#define DEVREC_EOS 0x04
#define DEVREC_FORMAT 1u
#define DEVREC_MAX_DATA (1u << 20)

typedef struct Started {
    uint32_t id;
    char name[256];
    uint32_t instance;
    uint32_t version;
    bool ended; /* its END section was parsed */
    /* A device section in the payload-record format (devrec_* below): its
     * entry in "device_sections" (owned by the document) and what was seen. */
    json_t *dev;
    bool setup, complete;
    uint64_t nrec[5], precopy_bytes, stopcopy_bytes;
} Started;

typedef struct PageCounts {
    uint64_t normal, zero, other;
} PageCounts;

typedef struct Ctx {
    MigStream *s;      /* the reader: the caller's, then the one over `tail` */
    bool streaming;    /* the caller's stream, whose length is unknown */
    /* The input from end_base to its end, once known: the caller's buffer,
     * or `tail` read ahead from a stream. */
    const uint8_t *end_buf;
    size_t end_len;
    uint64_t end_base;
    bool have_end;
    uint8_t *tail;       /* owned */
    MigStream *tail_s;   /* owned reader over tail */
    uint64_t item; /* start of the wire item being read */
    json_t *doc, *sections, *devices, *commands, *dev_sections;

    MigRamReader ram;
    PageCounts *counts; /* per ram.blocks entry */
    uint64_t ram_records, ram_hooks, ram_flushes;

    Started *started;
    size_t nstarted;
    int footers; /* -1 not known yet, 0 stream has none, 1 every section has one */

    uint64_t budget; /* field elements left to decode (damaged array_len) */
    json_t *vmdesc;  /* parsed trailer or NULL */
    char *vmdesc_problem;
    bool vmdesc_missing; /* no trailer ends the input (vmdesc_problem says so) */
    bool located; /* the error names its own section: add no section context */
    size_t vmdesc_at, vmdesc_len;
} Ctx;

static const char *const command_names[] = {
    "invalid",       "open-return-path", "ping",         "postcopy-advise",
    "postcopy-listen", "postcopy-run",   "postcopy-ram-discard", "packaged",
    "enable-colo",   "postcopy-resume",  "recv-bitmap",  "switchover-start",
};

/* ---------------------------------------------------------------- helpers */

static int ctx_fail(Ctx *c, MigErr **errp, int err, const char *fmt, ...) MIG_PRINTF(4, 5);
static int ctx_fail(Ctx *c, MigErr **errp, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *m = NULL;
    if (vasprintf(&m, fmt, ap) < 0)
        m = NULL;
    va_end(ap);
    mig_stream_set_error(c->s, err, "%s at offset %llu", m ? m : "malformed stream",
                         (unsigned long long)c->item);
    free(m);
    return mig_stream_take_error(c->s, errp);
}

/* The sticky error of a reader that starved: the analyzer reads in one
 * pass and needs a reader that blocks (or memory). */
static void note_starved(Ctx *c)
{
    if (!mig_stream_error(c->s) && mig_stream_starved(c->s))
        mig_stream_set_error(c->s, -EAGAIN,
                             "input starved at offset %llu: the analyzer needs a reader that "
                             "blocks",
                             (unsigned long long)mig_stream_offset(c->s));
}

/* The stream's sticky error, if any, as this call's result. */
static int ctx_check(Ctx *c, MigErr **errp)
{
    note_starved(c);
    return mig_stream_take_error(c->s, errp);
}

/* MIG_ANALYZE_MAX_INPUT for a stream, whose length nobody told us. */
static int check_limit(Ctx *c, MigErr **errp)
{
    if (mig_stream_offset(c->s) <= MIG_ANALYZE_MAX_INPUT)
        return 0;
    return ctx_fail(c, errp, -EFBIG,
                    "input larger than %llu GiB, the most `migcert analyze` reads",
                    (unsigned long long)(MIG_ANALYZE_MAX_INPUT >> 30));
}

static json_t *json_u64(uint64_t v)
{
    if (v <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)v);
    char hex[24];
    snprintf(hex, sizeof(hex), "0x%" PRIx64, v);
    return json_string(hex);
}

/* A name from the wire as a JSON string: bytes, not text (jansson wants
 * UTF-8, a terminal wants no control bytes), so escaped. */
static json_t *json_str(const char *s)
{
    size_t n = strlen(s);
    char small[MIG_STREAM_ESCAPED_MAX];
    char *out = n <= 255 ? small : mig_malloc0(4 * n + 1);
    mig_stream_escape(s, n, out, n <= 255 ? sizeof(small) : 4 * n + 1);
    json_t *j = json_string(out);
    if (out != small)
        free(out);
    return j;
}

/* A wire name escaped into a caller's buffer, for messages. */
#define ESC(name, buf) mig_stream_escape((name), strlen(name), (buf), sizeof(buf))

static Started *find_started(Ctx *c, uint32_t id)
{
    for (size_t i = 0; i < c->nstarted; i++)
        if (c->started[i].id == id)
            return &c->started[i];
    return NULL;
}

/* ---------------------------------------------------------------- trailer */

/* Take `json` (n bytes, the trailer at stream offset `at`) as the device
 * descriptions, or note why it cannot serve. */
static void use_vmdesc(Ctx *c, uint64_t at, const char *json, size_t n)
{
    json_error_t jerr;
    json_decref(c->vmdesc);
    free(c->vmdesc_problem);
    c->vmdesc_problem = NULL;
    c->vmdesc_missing = false;
    c->vmdesc_at = at;
    c->vmdesc_len = n;
    c->vmdesc = json_loadb(json, n, 0, &jerr);
    if (!c->vmdesc)
        c->vmdesc_problem = mig_strdup_printf(
            "its VMDESCRIPTION at offset %llu is not valid JSON (%s, JSON line %d column %d)",
            (unsigned long long)at, jerr.text, jerr.line, jerr.column);
    else if (!json_is_array(json_object_get(c->vmdesc, "devices")))
        c->vmdesc_problem = mig_strdup_printf(
            "its VMDESCRIPTION at offset %llu has no \"devices\" list", (unsigned long long)at);
}

/* Find the trailer (0x06, be32 len, JSON up to the last byte) from the end
 * of end_buf. */
static void locate_vmdesc(Ctx *c)
{
    const uint8_t *b = c->end_buf;
    size_t len = c->end_len;
    size_t lo = len > MIG_STREAM_VMDESC_MAX + 5 ? len - MIG_STREAM_VMDESC_MAX - 5 : 0;
    for (size_t p = len >= 5 ? len - 5 : 0; len >= 5; p--) {
        if (b[p] == MIG_SECTION_VMDESCRIPTION) {
            uint32_t n = (uint32_t)b[p + 1] << 24 | (uint32_t)b[p + 2] << 16 |
                         (uint32_t)b[p + 3] << 8 | b[p + 4];
            if ((size_t)n == len - p - 5 && n > 0 && b[p + 5] == '{') {
                use_vmdesc(c, c->end_base + p, (const char *)b + p + 5, n);
                return;
            }
        }
        if (p == lo)
            break;
    }
    free(c->vmdesc_problem);
    c->vmdesc_missing = true;
    c->vmdesc_problem = mig_strdup_printf(
        "the stream has no VMDESCRIPTION trailer at the end of the input (input ends at offset "
        "%llu: truncated, or written without one)",
        (unsigned long long)(c->end_base + len));
}

/* Streaming: read the rest of the input into memory (at most
 * MIG_ANALYZE_TAIL_MAX bytes), go on over that copy, locate the trailer.
 * Chunks are consumed as they are copied, so the stream's own buffer stays
 * small. */
static int read_end(Ctx *c, MigErr **errp)
{
    if (c->have_end)
        return 0;
    enum { CHUNK = 1 << 20 };
    uint64_t base = mig_stream_offset(c->s);
    size_t n = 0, cap = CHUNK;
    uint8_t *b = mig_malloc0(cap);
    for (;;) {
        if (cap - n < CHUNK) {
            cap *= 2;
            b = mig_realloc(b, cap);
        }
        size_t k = mig_stream_peek(c->s, b + n, CHUNK, 0);
        if (k == 0)
            break;
        mig_stream_skip(c->s, k);
        n += k;
        if (n > MIG_ANALYZE_TAIL_MAX || base + n > MIG_ANALYZE_MAX_INPUT) {
            free(b);
            c->item = base;
            return ctx_fail(c, errp, -EFBIG,
                            "the device sections and trailer of this non-seekable input are "
                            "more than %u MiB, the most `migcert analyze` keeps in memory "
                            "(analyze a regular file instead)",
                            (unsigned)(MIG_ANALYZE_TAIL_MAX >> 20));
        }
    }
    int r = ctx_check(c, errp);
    if (r) {
        free(b);
        return r;
    }
    c->tail = b;
    c->tail_s = mig_stream_new_mem_reader_borrow_at(b, n, base);
    c->s = c->tail_s;
    c->end_buf = b;
    c->end_len = n;
    c->end_base = base;
    c->have_end = true;
    c->budget = 2 * (base + n) + 100000;
    locate_vmdesc(c);
    return 0;
}

static json_t *vmdesc_device(Ctx *c, const char *name, uint32_t instance)
{
    if (c->vmdesc_problem)
        return NULL;
    json_t *devs = json_object_get(c->vmdesc, "devices");
    size_t i;
    json_t *d;
    json_array_foreach(devs, i, d)
    {
        const char *n = json_string_value(json_object_get(d, "name"));
        json_t *inst = json_object_get(d, "instance_id");
        if (n && !strcmp(n, name) && json_is_integer(inst) &&
            json_integer_value(inst) == (json_int_t)instance)
            return d;
    }
    return NULL;
}

/* ---------------------------------------------------------------- no trailer */

/* Where the input ends, as far as it can be told without the trailer. */
typedef enum EndKind {
    END_UNKNOWN,       /* the footers could not be followed to the end */
    END_IN_SECTION,    /* inside section id/name, whose header is at `at` */
    END_AFTER_SECTION, /* right after the footer of section id/name */
    END_IN_HEADER,     /* inside the section header at `at`, after section id/name */
    END_AFTER_EOF,     /* right after the EOF marker at `at` */
    END_IN_TRAILER,    /* inside the trailer at `at`; `announced` JSON bytes (0: unread) */
} EndKind;

typedef struct EndProbe {
    EndKind kind;
    uint64_t at;
    uint32_t id;
    char name[256];
    uint64_t announced;
} EndProbe;

static uint32_t be32_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A device payload has no length, but in a stream with footers every
 * section ends with 0x7e + be32 section id.  From the payload of section h
 * (which starts at `payload`), follow the footers to the end of the input
 * and say where it ends.  Those five bytes may also occur inside a payload,
 * so a footer is taken only when what follows fits (a FULL section header
 * with a NUL-free idstr, the EOF marker, the input's end), and "inside
 * section X" is said only when no footer of X is left in the input at all;
 * when the footers cannot be followed the answer is END_UNKNOWN.  Reads only
 * end_buf. */
static void probe_end(const Ctx *c, const MigSectionHeader *h, uint64_t payload, EndProbe *pr)
{
    const uint8_t *b = c->end_buf;
    size_t len = c->end_len;
    uint64_t base = c->end_base;
    memset(pr, 0, sizeof(*pr));
    pr->kind = END_UNKNOWN;
    pr->id = h->section_id;
    pr->at = h->offset;
    memcpy(pr->name, h->idstr, sizeof(pr->name));
    size_t p = (size_t)(payload - base);
    for (;;) {
        bool footer_seen = false, next = false;
        for (size_t q = p; q + 5 <= len && !next; q++) {
            if (b[q] != MIG_SECTION_FOOTER || be32_at(b + q + 1) != pr->id)
                continue;
            footer_seen = true;
            size_t x = q + 5, have = len - x;
            if (have == 0) {
                pr->kind = END_AFTER_SECTION;
                pr->at = base + len;
                return;
            }
            if (b[x] == MIG_SECTION_EOF) {
                if (have == 1) {
                    pr->kind = END_AFTER_EOF;
                    pr->at = base + x;
                    return;
                }
                if (b[x + 1] != MIG_SECTION_VMDESCRIPTION)
                    continue;
                if (have < 6 || have - 6 < (size_t)be32_at(b + x + 2)) {
                    pr->kind = END_IN_TRAILER;
                    pr->at = base + x + 1;
                    pr->announced = have < 6 ? 0 : be32_at(b + x + 2);
                    return;
                }
                continue; /* a whole trailer that does not end the input */
            }
            if (b[x] != MIG_SECTION_FULL)
                continue;
            /* type, be32 id, u8 idstr length, idstr, be32 instance, be32 version */
            size_t idlen = have > 5 ? b[x + 5] : 0;
            size_t named = have > 6 ? MIG_MIN(idlen, have - 6) : 0;
            if ((have > 5 && idlen == 0) || (named && memchr(b + x + 6, 0, named)))
                continue;
            if (have < 6 + idlen + 8) {
                pr->kind = END_IN_HEADER;
                pr->at = base + x;
                return;
            }
            pr->id = be32_at(b + x + 1);
            pr->at = base + x;
            memcpy(pr->name, b + x + 6, idlen);
            pr->name[idlen] = '\0';
            p = x + 6 + idlen + 8;
            next = true;
        }
        if (!next) {
            if (!footer_seen)
                pr->kind = END_IN_SECTION;
            return;
        }
    }
}

/* Device section h cannot be walked: no trailer ends the input.  When the
 * footers show that the input was cut (inside a later section, a header,
 * the trailer), say that, naming where; otherwise say that this section
 * is opaque. */
static int fail_without_trailer(Ctx *c, const MigSectionHeader *h, MigErr **errp)
{
    EndProbe pr;
    uint64_t end = c->end_base + c->end_len;
    char e[MIG_STREAM_ESCAPED_MAX];
    if (c->footers == 1) {
        probe_end(c, h, mig_stream_offset(c->s), &pr);
        ESC(pr.name, e);
        switch (pr.kind) {
        case END_IN_SECTION:
            c->located = true;
            c->item = pr.at;
            return ctx_fail(c, errp, -EIO,
                            "truncated: stream ended at offset %llu inside section '%s' (id %u), "
                            "which starts",
                            (unsigned long long)end, e, pr.id);
        case END_AFTER_SECTION:
            c->located = true;
            c->item = end;
            return ctx_fail(c, errp, -EIO,
                            "truncated: the stream ends after section '%s' (id %u), before its "
                            "EOF marker",
                            e, pr.id);
        case END_IN_HEADER:
            c->located = true;
            c->item = pr.at;
            return ctx_fail(c, errp, -EIO,
                            "truncated: stream ended at offset %llu inside the header of the "
                            "section after section '%s' (id %u), which starts",
                            (unsigned long long)end, e, pr.id);
        case END_IN_TRAILER:
            c->located = true;
            c->item = pr.at;
            if (pr.announced)
                return ctx_fail(c, errp, -EIO,
                                "truncated: stream ended at offset %llu inside the VMDESCRIPTION "
                                "trailer (%llu of its %llu JSON bytes present), which starts",
                                (unsigned long long)end,
                                (unsigned long long)(end - pr.at - 5),
                                (unsigned long long)pr.announced);
            return ctx_fail(c, errp, -EIO,
                            "truncated: stream ended at offset %llu inside the VMDESCRIPTION "
                            "trailer's length, which starts",
                            (unsigned long long)end);
        case END_AFTER_EOF:
            free(c->vmdesc_problem);
            c->vmdesc_problem = mig_strdup_printf(
                "the stream has no VMDESCRIPTION trailer: it ends with its EOF marker (input ends "
                "at offset %llu: truncated there, or written without one)",
                (unsigned long long)end);
            break;
        case END_UNKNOWN:
            break;
        }
    }
    return ctx_fail(c, errp, -ENOTSUP,
                    "device payloads carry no length and %s, so this section can be neither "
                    "decoded nor skipped",
                    c->vmdesc_problem);
}

/* ---------------------------------------------------------------- devices */

enum { VAL_BYTES, VAL_BOOL, VAL_SIGNED, VAL_UNSIGNED, VAL_FLOAT };

static int value_kind(const char *type, int64_t size)
{
    if (size != 1 && size != 2 && size != 4 && size != 8)
        return VAL_BYTES;
    if (!strcmp(type, "bool"))
        return size == 1 ? VAL_BOOL : VAL_BYTES;
    if (!strcmp(type, "timer"))
        return size == 8 ? VAL_SIGNED : VAL_BYTES;
    if (!strcmp(type, "float64"))
        return size == 8 ? VAL_FLOAT : VAL_BYTES;
    if (!strncmp(type, "uint", 4))
        return VAL_UNSIGNED;
    if (!strncmp(type, "int", 3))
        return VAL_SIGNED;
    return VAL_BYTES;
}

static json_t *decode_value(int kind, const uint8_t *p, size_t size)
{
    uint64_t v = 0;
    for (size_t i = 0; i < size; i++)
        v = v << 8 | p[i];
    switch (kind) {
    case VAL_BOOL:
        return json_boolean(v != 0);
    case VAL_SIGNED: {
        unsigned sh = (unsigned)(64 - 8 * size);
        int64_t sv = (int64_t)(v << sh) >> sh;
        return json_integer((json_int_t)sv);
    }
    case VAL_FLOAT: {
        double d;
        memcpy(&d, &v, sizeof(d));
        return json_real(d);
    }
    default:
        return json_u64(v);
    }
}

static int decode_vmsd(Ctx *c, const json_t *desc, json_t *out, int depth, MigErr **errp);

static int decode_field(Ctx *c, const json_t *f, json_t *out_fields, int depth, MigErr **errp)
{
    const char *name = json_string_value(json_object_get(f, "name"));
    const char *type = json_string_value(json_object_get(f, "type"));
    json_t *jsize = json_object_get(f, "size");
    json_t *jalen = json_object_get(f, "array_len");
    if (!name || !type || !json_is_integer(jsize))
        return ctx_fail(c, errp, -EPROTO, "VMDESCRIPTION field without name, type or size");
    char ename[MIG_STREAM_ESCAPED_MAX];
    ESC(name, ename);
    int64_t size = json_integer_value(jsize);
    if (size < 0 || size > MAX_FIELD_SIZE)
        return ctx_fail(c, errp, -EPROTO, "VMDESCRIPTION field %s has a bad size %" PRId64,
                        ename, size);
    int64_t n = 1;
    if (jalen) {
        if (!json_is_integer(jalen) || json_integer_value(jalen) < 0 ||
            json_integer_value(jalen) > MAX_ARRAY_LEN)
            return ctx_fail(c, errp, -EPROTO, "VMDESCRIPTION field %s has a bad array_len",
                            ename);
        n = json_integer_value(jalen);
    }
    /* Elements of size 0 and structs consume no bytes by themselves, so a
     * damaged array_len could make us loop and allocate without bound. */
    if ((uint64_t)n > c->budget)
        return ctx_fail(c, errp, -EPROTO,
                        "VMDESCRIPTION field %s: array_len %" PRId64 " is more than the stream "
                        "can hold",
                        ename, n);
    c->budget -= (uint64_t)n;
    json_t *e = json_object();
    json_array_append_new(out_fields, e);
    json_object_set_new(e, "name", json_str(name));
    json_object_set_new(e, "type", json_str(type));
    json_object_set_new(e, "size", json_integer(size));
    if (jalen)
        json_object_set_new(e, "array_len", json_integer(n));
    json_object_set_new(e, "offset", json_u64(mig_stream_offset(c->s)));

    if (!strcmp(type, "struct")) {
        const json_t *sdesc = json_object_get(f, "struct");
        if (!json_is_object(sdesc))
            return ctx_fail(c, errp, -EPROTO, "VMDESCRIPTION struct field %s has no \"struct\"",
                            ename);
        json_t *elems = jalen ? json_array() : NULL;
        if (elems)
            json_object_set_new(e, "elements", elems);
        for (int64_t i = 0; i < n; i++) {
            json_t *o = json_object();
            if (elems)
                json_array_append_new(elems, o);
            else
                json_object_set_new(e, "struct", o);
            int r = decode_vmsd(c, sdesc, o, depth + 1, errp);
            if (r) {
                mig_err_prepend(errp, "%s", ename);
                return r;
            }
        }
        return 0;
    }
    /* Every element must fit in what is left, before we loop over them. */
    uint64_t left = c->end_base + c->end_len - mig_stream_offset(c->s);
    if ((uint64_t)size * (uint64_t)n > left) {
        c->item = mig_stream_offset(c->s);
        return ctx_fail(c, errp, -EIO,
                        "field %s (%" PRId64 " x %" PRId64 " bytes): truncated, the stream ends "
                        "%" PRIu64 " bytes later",
                        ename, n, size, left);
    }
    int kind = value_kind(type, size);
    json_t *vals = kind != VAL_BYTES && jalen ? json_array() : NULL;
    if (vals)
        json_object_set_new(e, "values", vals);
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *p = mig_stream_get_view(c->s, (size_t)size);
        if (!p)
            return ctx_check(c, errp);
        if (kind == VAL_BYTES) {
            if (i == 0 && !jalen && size <= 16) {
                char hex[16 * 2 + 1];
                for (int64_t k = 0; k < size; k++)
                    snprintf(hex + 2 * k, 3, "%02x", p[k]);
                hex[2 * size] = '\0';
                json_object_set_new(e, "hex", json_string(hex));
            }
        } else if (vals) {
            json_array_append_new(vals, decode_value(kind, p, (size_t)size));
        } else {
            json_object_set_new(e, "value", decode_value(kind, p, (size_t)size));
        }
    }
    if (kind == VAL_BYTES)
        json_object_set_new(e, "bytes", json_integer(size * n));
    return 0;
}

static int decode_vmsd(Ctx *c, const json_t *desc, json_t *out, int depth, MigErr **errp)
{
    if (depth > MAX_NEST)
        return ctx_fail(c, errp, -EPROTO, "VMDESCRIPTION nests deeper than %d levels", MAX_NEST);
    const char *vmsd = json_string_value(json_object_get(desc, "vmsd_name"));
    if (vmsd)
        json_object_set_new(out, "vmsd_name", json_str(vmsd));
    json_t *fields = json_object_get(desc, "fields");
    json_t *out_fields = json_array();
    json_object_set_new(out, "fields", out_fields);
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        int r = decode_field(c, f, out_fields, depth, errp);
        if (r)
            return r;
    }
    json_t *subs = json_object_get(desc, "subsections");
    if (!json_array_size(subs))
        return 0;
    json_t *out_subs = json_array();
    json_object_set_new(out, "subsections", out_subs);
    json_array_foreach(subs, i, f)
    {
        const char *want = json_string_value(json_object_get(f, "vmsd_name"));
        c->item = mig_stream_offset(c->s);
        uint8_t b = mig_stream_get_u8(c->s);
        char name[256] = "";
        uint32_t version = 0;
        if (b == MIG_SECTION_SUBSECTION) {
            mig_stream_get_counted(c->s, name);
            version = mig_stream_get_be32(c->s);
        }
        int r = ctx_check(c, errp);
        if (r)
            return r;
        if (b != MIG_SECTION_SUBSECTION || !want || strcmp(name, want)) {
            char ewant[MIG_STREAM_ESCAPED_MAX];
            return ctx_fail(c, errp, -EPROTO,
                            "subsection %s not found (the VMDESCRIPTION lists it here)",
                            want ? ESC(want, ewant) : "?");
        }
        json_t *o = json_object();
        json_array_append_new(out_subs, o);
        json_object_set_new(o, "name", json_str(name));
        json_object_set_new(o, "version", json_integer(version));
        if ((r = decode_vmsd(c, f, o, depth + 1, errp)))
            return r;
    }
    return 0;
}

static int parse_device(Ctx *c, const MigSectionHeader *h, MigErr **errp)
{
    int r = read_end(c, errp);
    if (r)
        return r;
    char ename[MIG_STREAM_ESCAPED_MAX];
    const json_t *d = vmdesc_device(c, h->idstr, h->instance_id);
    if (!d) {
        if (c->vmdesc_missing)
            return fail_without_trailer(c, h, errp);
        if (c->vmdesc_problem)
            return ctx_fail(c, errp, -ENOTSUP,
                            "device payloads carry no length and %s, so this section can be "
                            "neither decoded nor skipped",
                            c->vmdesc_problem);
        return ctx_fail(c, errp, -EPROTO,
                        "device '%s' instance %u is not in the VMDESCRIPTION, so its payload "
                        "can be neither decoded nor skipped",
                        ESC(h->idstr, ename), h->instance_id);
    }
    json_t *v = json_object_get(d, "version");
    if (json_is_integer(v) && json_integer_value(v) != (json_int_t)h->version_id)
        return ctx_fail(c, errp, -EPROTO,
                        "section version %u differs from version %" JSON_INTEGER_FORMAT
                        " in the VMDESCRIPTION",
                        h->version_id, json_integer_value(v));
    json_t *dev = json_object();
    json_array_append_new(c->devices, dev);
    json_object_set_new(dev, "name", json_str(h->idstr));
    json_object_set_new(dev, "instance_id", json_integer(h->instance_id));
    json_object_set_new(dev, "version", json_integer(h->version_id));
    json_object_set_new(dev, "section_id", json_integer(h->section_id));
    json_object_set_new(dev, "offset", json_u64(h->offset));
    uint64_t start = mig_stream_offset(c->s);
    r = decode_vmsd(c, d, dev, 0, errp);
    json_object_set_new(dev, "size", json_u64(mig_stream_offset(c->s) - start));
    return r;
}

/* ---------------------------------------------------------------- RAM */

static int parse_ram(Ctx *c, MigErr **errp)
{
    for (;;) {
        MigRamRecord rec;
        c->item = mig_stream_offset(c->s);
        int r = c->streaming && !c->have_end ? check_limit(c, errp) : 0;
        if (r)
            return r;
        r = mig_ram_get_record(c->s, &c->ram, &rec, errp);
        if (r)
            return r;
        c->ram_records++;
        switch (rec.kind) {
        case MIG_RAM_FLAG_EOS:
            return 0;
        case MIG_RAM_FLAG_MEM_SIZE:
            free(c->counts);
            c->counts = mig_malloc0((c->ram.nblocks + 1) * sizeof(*c->counts));
            break;
        case MIG_RAM_FLAG_PAGE:
            c->counts[rec.block].normal++;
            break;
        case MIG_RAM_FLAG_ZERO:
            c->counts[rec.block].zero++;
            break;
        case MIG_RAM_FLAG_XBZRLE:
        case MIG_RAM_FLAG_COMPRESS:
            c->counts[rec.block].other++;
            break;
        case MIG_RAM_FLAG_HOOK:
            c->ram_hooks++;
            break;
        case MIG_RAM_FLAG_MULTIFD_FLUSH:
            c->ram_flushes++;
            break;
        }
    }
}

/* ---------------------------------------------------------------- device records */

static const char *devrec_name(unsigned tag)
{
    static const char *const names[] = {"?", "SETUP", "DATA", "COMPLETE", "EOS"};
    return tag < MIG_ARRAY_SIZE(names) ? names[tag] : "?";
}

/* The stream's sticky error (a cut, a failed read) as the failure of the
 * record that starts at `at`. */
static int devrec_check(Ctx *c, uint64_t at, int tag, MigErr **errp)
{
    int r = ctx_check(c, errp);
    if (r && tag >= 0)
        mig_err_prepend(errp, "%s record at offset %llu", devrec_name((unsigned)tag),
                        (unsigned long long)at);
    else if (r)
        mig_err_prepend(errp, "device record at offset %llu", (unsigned long long)at);
    return r;
}

static json_t *devrec_entry(const Started *st, const MigSectionHeader *h)
{
    json_t *d = json_object();
    json_object_set_new(d, "name", json_str(st->name));
    json_object_set_new(d, "instance_id", json_integer(st->instance));
    json_object_set_new(d, "version", json_integer(st->version));
    json_object_set_new(d, "section_id", json_integer(st->id));
    json_object_set_new(d, "offset", json_u64(h->offset));
    return d;
}

/* Fill st->dev from what was counted so far (called after every payload,
 * so a failed analysis still shows the records before the failure). */
static void devrec_report(const Started *st)
{
    json_t *recs = json_object();
    for (unsigned t = DEVREC_SETUP; t <= DEVREC_EOS; t++)
        json_object_set_new(recs, devrec_name(t), json_u64(st->nrec[t]));
    json_object_set_new(st->dev, "records", recs);
    json_object_set_new(st->dev, "precopy_bytes", json_u64(st->precopy_bytes));
    json_object_set_new(st->dev, "stopcopy_bytes", json_u64(st->stopcopy_bytes));
    json_object_set_new(st->dev, "complete", json_boolean(st->complete));
}

/* One START/PART/END payload of a device section in the record format: up
 * to and including its EOS.  DATA bytes are skipped, not kept. */
static int parse_devrec(Ctx *c, const MigSectionHeader *h, Started *st, MigErr **errp)
{
    int r = 0;
    for (;;) {
        uint64_t at = c->item = mig_stream_offset(c->s);
        uint8_t tag = mig_stream_get_u8(c->s);
        if ((r = devrec_check(c, at, -1, errp)))
            break;
        uint32_t v = 0;
        if (tag == DEVREC_SETUP || tag == DEVREC_DATA) {
            v = mig_stream_get_be32(c->s);
            if ((r = devrec_check(c, at, tag, errp)))
                break;
        }
        if (tag < DEVREC_SETUP || tag > DEVREC_EOS) {
            r = ctx_fail(c, errp, -EPROTO, "unknown device record 0x%02x", tag);
            break;
        }
        if (tag == DEVREC_SETUP) {
            if (h->type != MIG_SECTION_START || st->setup) {
                r = ctx_fail(c, errp, -EPROTO, "unexpected SETUP record (%s)",
                             st->setup ? "the session is already set up"
                                       : "outside the START section");
                break;
            }
            if (v != DEVREC_FORMAT) {
                r = ctx_fail(c, errp, -ENOTSUP,
                             "SETUP record: section format %u is not supported (known: %u)", v,
                             DEVREC_FORMAT);
                break;
            }
            st->setup = true;
            json_object_set_new(st->dev, "format", json_integer(v));
        } else if (tag == DEVREC_DATA) {
            if (v < 1 || v > DEVREC_MAX_DATA) {
                r = ctx_fail(c, errp, -EPROTO, "DATA record of %u bytes (allowed: 1 to %u)", v,
                             DEVREC_MAX_DATA);
                break;
            }
            if (!st->setup || st->complete) {
                r = ctx_fail(c, errp, -EPROTO, "DATA record %s",
                             st->setup ? "after the section's COMPLETE"
                                       : "before the section's SETUP");
                break;
            }
            mig_stream_skip(c->s, v);
            if ((r = ctx_check(c, errp))) {
                mig_err_prepend(errp, "DATA record of %u bytes at offset %llu", v,
                                (unsigned long long)at);
                break;
            }
            if (h->type == MIG_SECTION_END)
                st->stopcopy_bytes += v;
            else
                st->precopy_bytes += v;
        } else if (tag == DEVREC_COMPLETE) {
            if (h->type != MIG_SECTION_END || !st->setup || st->complete) {
                r = ctx_fail(c, errp, -EPROTO, "unexpected COMPLETE record (%s)",
                             !st->setup           ? "before the section's SETUP"
                             : st->complete       ? "a second one"
                                                  : "outside the END section");
                break;
            }
            st->complete = true;
        }
        st->nrec[tag]++;
        if (tag == DEVREC_EOS)
            break;
    }
    devrec_report(st);
    return r;
}

/* ---------------------------------------------------------------- sections */

static int parse_section(Ctx *c, const MigSectionHeader *h, MigErr **errp)
{
    const char *name = h->idstr;
    uint32_t instance = h->instance_id, version = h->version_id;
    Started *ending = NULL;
    if (h->type == MIG_SECTION_START || h->type == MIG_SECTION_FULL) {
        if (h->type == MIG_SECTION_START && !find_started(c, h->section_id)) {
            c->started = mig_realloc(c->started, (c->nstarted + 1) * sizeof(*c->started));
            Started *st = &c->started[c->nstarted++];
            memset(st, 0, sizeof(*st));
            st->id = h->section_id;
            memcpy(st->name, h->idstr, sizeof(st->name));
            st->instance = h->instance_id;
            st->version = h->version_id;
            st->ended = false;
        }
    } else {
        Started *st = find_started(c, h->section_id);
        if (!st)
            return ctx_fail(c, errp, -EPROTO, "%s section for section id %u that was never started",
                            mig_section_type_name(h->type), h->section_id);
        name = st->name;
        instance = st->instance;
        version = st->version;
        if (h->type == MIG_SECTION_END)
            ending = st;
    }
    json_t *sec = json_object();
    json_array_append_new(c->sections, sec);
    json_object_set_new(sec, "type", json_string(mig_section_type_name(h->type)));
    json_object_set_new(sec, "section_id", json_integer(h->section_id));
    json_object_set_new(sec, "name", json_str(name));
    json_object_set_new(sec, "instance_id", json_integer(instance));
    json_object_set_new(sec, "version", json_integer(version));
    json_object_set_new(sec, "offset", json_u64(h->offset));

    uint64_t start = mig_stream_offset(c->s);
    int r;
    Started *st;
    if (!strcmp(name, RAM_IDSTR)) {
        if (version != RAM_VERSION)
            return ctx_fail(c, errp, -EINVAL, "savevm: unsupported version %u for '%s' v%u",
                            version, name, RAM_VERSION);
        r = parse_ram(c, errp);
    } else if (h->type == MIG_SECTION_FULL) {
        r = parse_device(c, h, errp);
    } else if ((st = find_started(c, h->section_id)) &&
               (st->dev || (h->type == MIG_SECTION_START &&
                            (mig_stream_peek_u8(c->s, 0) == DEVREC_SETUP ||
                             mig_stream_at_eof(c->s))))) {
        /* A START that ends right after its header is cut: read it as a
         * device section so the cut is reported as such. */
        if (!st->dev) {
            st->dev = devrec_entry(st, h);
            json_array_append_new(c->dev_sections, st->dev);
        }
        r = parse_devrec(c, h, st, errp);
    } else {
        char ename[MIG_STREAM_ESCAPED_MAX];
        r = ctx_fail(c, errp, -ENOTSUP,
                     "the payload of iterative section '%s' has no length on the wire and only "
                     "RAM's format is known, so it cannot be skipped",
                     ESC(name, ename));
    }
    json_object_set_new(sec, "size", json_u64(mig_stream_offset(c->s) - start));
    if (r)
        return r;

    c->item = mig_stream_offset(c->s);
    if (c->footers < 0)
        c->footers = mig_stream_peek_u8(c->s, 0) == MIG_SECTION_FOOTER;
    if (c->footers && (r = mig_stream_get_section_footer(c->s, h->section_id, name, errp)))
        return r;
    if (ending)
        ending->ended = true;
    return 0;
}

static int parse_command(Ctx *c, MigErr **errp)
{
    uint16_t cmd, len;
    int r = mig_stream_get_command(c->s, &cmd, &len, errp);
    if (r)
        return r;
    json_t *o = json_object();
    json_array_append_new(c->commands, o);
    json_object_set_new(o, "offset", json_u64(c->item));
    json_object_set_new(o, "cmd", json_integer(cmd));
    if (cmd < MIG_ARRAY_SIZE(command_names))
        json_object_set_new(o, "name", json_string(command_names[cmd]));
    json_object_set_new(o, "len", json_integer(len));
    if (cmd == CMD_PACKAGED && len == 4) {
        /* The packaged sub-stream follows; we report and skip it. */
        uint32_t n = mig_stream_get_be32(c->s);
        json_object_set_new(o, "packaged_bytes", json_integer(n));
        mig_stream_skip(c->s, n);
    } else {
        mig_stream_skip(c->s, len);
    }
    return ctx_check(c, errp);
}

static int parse_trailer(Ctx *c, MigErr **errp)
{
    json_t *vd = json_object();
    json_object_set_new(c->doc, "vmdescription", vd);
    json_object_set_new(vd, "offset", json_u64(c->item));
    char *json = NULL;
    size_t len = 0;
    int r = mig_stream_get_vmdesc(c->s, &json, &len, errp);
    if (r) {
        mig_err_prepend(errp, "VMDESCRIPTION");
        return r;
    }
    if (!c->have_end) /* streaming: nothing was located ahead, this is it */
        use_vmdesc(c, c->item, json, len);
    free(json);
    json_object_set_new(vd, "size", json_u64(len));
    if (c->vmdesc_at != c->item || c->vmdesc_len != len || !c->vmdesc)
        return ctx_fail(c, errp, -EPROTO, "VMDESCRIPTION is not usable: %s",
                        c->vmdesc_problem ? c->vmdesc_problem
                                          : "it does not end the stream");
    json_object_set_new(vd, "devices",
                        json_integer((json_int_t)json_array_size(
                            json_object_get(c->vmdesc, "devices"))));
    json_t *ps = json_object_get(c->vmdesc, "page_size");
    if (json_is_integer(ps))
        json_object_set_new(vd, "page_size", json_incref(ps));
    return 0;
}

/* The section started last and not ended yet, or NULL. */
static const Started *last_open(const Ctx *c)
{
    for (size_t i = c->nstarted; i-- > 0;)
        if (!c->started[i].ended)
            return &c->started[i];
    return NULL;
}

/* The input ended between two sections: name what it left open. */
static int fail_truncated(Ctx *c, MigErr **errp)
{
    char e[MIG_STREAM_ESCAPED_MAX];
    const Started *st = last_open(c);
    if (st)
        return ctx_fail(c, errp, -EIO,
                        "section '%s' (id %u): truncated: the stream ends before the section's "
                        "END and the EOF marker",
                        ESC(st->name, e), st->id);
    size_t n = json_array_size(c->sections);
    if (n) {
        const json_t *last = json_array_get(c->sections, n - 1);
        return ctx_fail(c, errp, -EIO,
                        "truncated: the stream ends after section '%s' (id %lld), before its "
                        "EOF marker",
                        json_string_value(json_object_get(last, "name")),
                        (long long)json_integer_value(json_object_get(last, "section_id")));
    }
    return ctx_fail(c, errp, -EIO, "truncated: the stream ends before its EOF marker");
}

static int parse_all(Ctx *c, MigErr **errp)
{
    c->item = 0;
    int r = mig_stream_get_file_header(c->s, errp);
    if (r) {
        mig_err_prepend(errp, "file header");
        return r;
    }
    json_t *hdr = json_object();
    json_object_set_new(hdr, "magic", json_string("QEVM"));
    json_object_set_new(hdr, "version", json_integer(MIG_STREAM_VERSION));
    json_object_set_new(c->doc, "header", hdr);

    c->item = mig_stream_offset(c->s);
    if (mig_stream_peek_u8(c->s, 0) == MIG_SECTION_CONFIGURATION) {
        MigStreamConfig *cfg = mig_malloc0(sizeof(*cfg));
        r = mig_stream_get_configuration(c->s, cfg, errp);
        if (r) {
            free(cfg);
            mig_err_prepend(errp, "configuration");
            return r;
        }
        json_t *jc = json_object();
        json_object_set_new(jc, "machine", json_str(cfg->machine));
        json_t *caps = json_array();
        for (size_t i = 0; i < cfg->ncaps; i++) {
            json_array_append_new(caps, json_str(cfg->caps[i]));
            if (!strcmp(cfg->caps[i], "x-ignore-shared"))
                c->ram.ignore_shared = true;
        }
        json_object_set_new(jc, "capabilities", caps);
        if (cfg->target_page_bits)
            json_object_set_new(jc, "target_page_bits", json_integer(cfg->target_page_bits));
        if (cfg->has_uuid) {
            char u[37];
            const uint8_t *b = cfg->uuid;
            snprintf(u, sizeof(u),
                     "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                     b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                     b[13], b[14], b[15]);
            json_object_set_new(jc, "uuid", json_string(u));
        }
        json_object_set_new(c->doc, "config", jc);
        free(cfg);
        /* send-configuration and send-section-footer are both off for
         * machine types <= 2.3 and both on since: a stream with a
         * configuration has footers. */
        c->footers = 1;
    }
    bool have_config = c->footers == 1;
    uint64_t first_at = mig_stream_offset(c->s);

    for (;;) {
        MigSectionHeader h;
        c->item = mig_stream_offset(c->s);
        if (c->streaming && !c->have_end && (r = check_limit(c, errp)))
            return r;
        if (mig_stream_at_eof(c->s) && !mig_stream_error(c->s))
            return fail_truncated(c, errp);
        r = mig_stream_get_section_header(c->s, &h, errp);
        if (r) {
            const Started *open = last_open(c);
            char e[MIG_STREAM_ESCAPED_MAX];
            size_t n = json_array_size(c->sections);
            const json_t *last = n ? json_array_get(c->sections, n - 1) : NULL;
            if (open)
                mig_err_prepend(errp, "section header (section '%s' (id %u) still open)",
                                ESC(open->name, e), open->id);
            else if (last)
                mig_err_prepend(errp, "header of the section after section '%s' (id %lld)",
                                json_string_value(json_object_get(last, "name")),
                                (long long)json_integer_value(json_object_get(last, "section_id")));
            return r;
        }
        switch (h.type) {
        case MIG_SECTION_START:
        case MIG_SECTION_PART:
        case MIG_SECTION_END:
        case MIG_SECTION_FULL:
            r = parse_section(c, &h, errp);
            if (r && c->located)
                return r;
            if (r) {
                const Started *st = find_started(c, h.section_id);
                char e[MIG_STREAM_ESCAPED_MAX];
                mig_err_prepend(errp, "section '%s' (id %u)",
                                ESC(h.idstr[0] || !st ? h.idstr : st->name, e), h.section_id);
                if (!have_config && h.offset == first_at) {
                    /* Only <= 2.3 machine types omit it; more likely damage. */
                    mig_err_prepend(errp, "Configuration section missing, or the first section "
                                          "is damaged");
                    c->item = first_at;
                }
                return r;
            }
            break;
        case MIG_SECTION_COMMAND:
            if ((r = parse_command(c, errp))) {
                mig_err_prepend(errp, "command");
                return r;
            }
            break;
        case MIG_SECTION_EOF:
            json_object_set_new(c->doc, "eof_offset", json_u64(h.offset));
            c->item = mig_stream_offset(c->s);
            if (mig_stream_at_eof(c->s))
                return ctx_check(c, errp);
            r = mig_stream_get_section_header(c->s, &h, errp);
            if (r)
                return r;
            if (h.type != MIG_SECTION_VMDESCRIPTION)
                return ctx_fail(c, errp, -EPROTO, "Expected vmdescription section, but got %u",
                                h.type);
            if ((r = parse_trailer(c, errp)))
                return r;
            c->item = mig_stream_offset(c->s);
            if (!mig_stream_at_eof(c->s) && c->have_end)
                return ctx_fail(c, errp, -EPROTO, "%" PRIu64 " bytes follow the VMDESCRIPTION",
                                c->end_base + c->end_len - c->item);
            if (!mig_stream_at_eof(c->s))
                return ctx_fail(c, errp, -EPROTO, "bytes follow the VMDESCRIPTION");
            return ctx_check(c, errp);
        default:
            return ctx_fail(c, errp, -EPROTO, "VMDESCRIPTION before the EOF marker");
        }
    }
}

static void finish_doc(Ctx *c)
{
    json_t *blocks = json_array();
    for (size_t i = 0; i < c->ram.nblocks; i++) {
        const MigRamBlockInfo *b = &c->ram.blocks[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_str(b->name));
        json_object_set_new(o, "length", json_u64(b->length));
        if (c->ram.ignore_shared)
            json_object_set_new(o, "mr_addr", json_u64(b->mr_addr));
        json_t *p = json_object();
        json_object_set_new(p, "normal", json_u64(c->counts[i].normal));
        json_object_set_new(p, "zero", json_u64(c->counts[i].zero));
        json_object_set_new(p, "other", json_u64(c->counts[i].other));
        json_object_set_new(o, "pages", p);
        json_array_append_new(blocks, o);
    }
    json_object_set_new(c->doc, "ram_blocks", blocks);
    json_t *ram = json_object();
    json_object_set_new(ram, "total", json_u64(c->ram.total));
    json_object_set_new(ram, "records", json_u64(c->ram_records));
    json_object_set_new(ram, "hooks", json_u64(c->ram_hooks));
    json_object_set_new(ram, "multifd_flushes", json_u64(c->ram_flushes));
    json_object_set_new(c->doc, "ram", ram);
}

/* The pass over c->s and the document; frees what c owns (not c->s's
 * caller stream). */
static int analyze(Ctx *c, json_t **doc, uint64_t *err_offset, MigErr **errp)
{
    mig_ram_reader_init(&c->ram);
    c->footers = -1;
    c->doc = json_object();
    c->sections = json_array();
    c->devices = json_array();
    c->commands = json_array();
    c->dev_sections = json_array();
    json_object_set_new(c->doc, "file_size", json_null());
    json_object_set_new(c->doc, "config", json_null());
    json_object_set_new(c->doc, "sections", c->sections);
    json_object_set_new(c->doc, "devices", c->devices);
    json_object_set_new(c->doc, "device_sections", c->dev_sections);
    json_object_set_new(c->doc, "commands", c->commands);
    json_object_set_new(c->doc, "vmdescription", json_null());

    MigErr *err = NULL;
    int r;
    if (c->have_end && c->end_base + c->end_len > MIG_ANALYZE_MAX_INPUT) {
        r = ctx_fail(c, &err, -EFBIG,
                     "input of %llu bytes is larger than %llu GiB, the most `migcert analyze` "
                     "reads",
                     (unsigned long long)(c->end_base + c->end_len),
                     (unsigned long long)(MIG_ANALYZE_MAX_INPUT >> 30));
    } else {
        if (c->have_end)
            locate_vmdesc(c);
        r = parse_all(c, &err);
    }
    if (r == -EAGAIN && !err) {
        note_starved(c);
        mig_stream_take_error(c->s, &err);
    }
    finish_doc(c);
    /* The size is known when the end was read (a buffer, a pipe's tail), the
     * parse reached it, or the input ended under the parse (a truncated
     * stream through a pipe). */
    uint64_t len;
    if (c->have_end)
        json_object_set_new(c->doc, "file_size", json_u64(c->end_base + c->end_len));
    else if (r == 0)
        json_object_set_new(c->doc, "file_size", json_u64(mig_stream_offset(c->s)));
    else if (mig_stream_input_length(c->s, &len))
        json_object_set_new(c->doc, "file_size", json_u64(len));
    json_object_set_new(c->doc, "complete", json_boolean(r == 0));
    if (r) {
        json_t *e = json_object();
        json_object_set_new(e, "offset", json_u64(c->item));
        json_object_set_new(e, "message", json_string(err ? err->msg : "unknown error"));
        json_object_set_new(c->doc, "error", e);
        if (err_offset)
            *err_offset = c->item;
    }
    mig_err_propagate(errp, err);

    if (doc)
        *doc = c->doc;
    else
        json_decref(c->doc);
    json_decref(c->vmdesc);
    free(c->vmdesc_problem);
    free(c->counts);
    free(c->started);
    mig_ram_reader_free(&c->ram);
    mig_stream_free(c->tail_s);
    free(c->tail);
    return r;
}

int mig_analyze_buffer(const void *buf, size_t len, json_t **doc, uint64_t *err_offset,
                       MigErr **errp)
{
    Ctx c;
    memset(&c, 0, sizeof(c));
    c.end_buf = buf;
    c.end_len = len;
    c.have_end = true;
    c.budget = 2 * (uint64_t)len + 100000;
    c.s = c.tail_s = mig_stream_new_mem_reader_borrow(buf, len);
    return analyze(&c, doc, err_offset, errp);
}

int mig_analyze_stream(MigStream *s, json_t **doc, uint64_t *err_offset, MigErr **errp)
{
    Ctx c;
    memset(&c, 0, sizeof(c));
    c.s = s;
    c.streaming = true;
    c.budget = 100000; /* set from the real size when the end is read */
    return analyze(&c, doc, err_offset, errp);
}

/* ---------------------------------------------------------------- text */

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "?";
}

static long long jint(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void print_scalar(FILE *out, const json_t *v)
{
    if (json_is_true(v))
        fputs("true", out);
    else if (json_is_false(v))
        fputs("false", out);
    else if (json_is_integer(v)) {
        long long x = (long long)json_integer_value(v);
        if (x >= 0 && x > 9)
            fprintf(out, "%lld (0x%llx)", x, (unsigned long long)x);
        else
            fprintf(out, "%lld", x);
    } else if (json_is_real(v))
        fprintf(out, "%g", json_real_value(v));
    else if (json_is_string(v))
        fputs(json_string_value(v), out);
}

static void print_vmsd(FILE *out, const json_t *o, int indent);

static void print_field(FILE *out, const json_t *f, int indent)
{
    fprintf(out, "%*s%s", indent, "", jstr(f, "name"));
    const json_t *v;
    if ((v = json_object_get(f, "value"))) {
        fputs(" = ", out);
        print_scalar(out, v);
        fputc('\n', out);
    } else if ((v = json_object_get(f, "values"))) {
        fputs(" = [", out);
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            if (i)
                fputs(", ", out);
            if (i == 16) {
                fprintf(out, "... %zu more", json_array_size(v) - 16);
                break;
            }
            print_scalar(out, x);
        }
        fputs("]\n", out);
    } else if ((v = json_object_get(f, "struct"))) {
        fprintf(out, " (struct %s):\n", jstr(v, "vmsd_name"));
        print_vmsd(out, v, indent + 2);
    } else if ((v = json_object_get(f, "elements"))) {
        fprintf(out, " (%zu x struct):\n", json_array_size(v));
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            fprintf(out, "%*s[%zu]:\n", indent + 2, "", i);
            print_vmsd(out, x, indent + 4);
        }
    } else {
        fprintf(out, " = %lld bytes (%s)", jint(f, "bytes"), jstr(f, "type"));
        if ((v = json_object_get(f, "hex")))
            fprintf(out, " %s", json_string_value(v));
        fputc('\n', out);
    }
}

static void print_vmsd(FILE *out, const json_t *o, int indent)
{
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(o, "fields"), i, x)
        print_field(out, x, indent);
    json_array_foreach(json_object_get(o, "subsections"), i, x)
    {
        fprintf(out, "%*ssubsection %s version %lld:\n", indent, "", jstr(x, "name"),
                jint(x, "version"));
        print_vmsd(out, x, indent + 2);
    }
}

void mig_analyze_print_text(FILE *out, const json_t *doc)
{
    size_t i;
    json_t *x;
    if (json_is_integer(json_object_get(doc, "file_size")))
        fprintf(out, "stream: %lld bytes", jint(doc, "file_size"));
    else
        fputs("stream: size unknown (a non-seekable input not read to its end)", out);
    const json_t *hdr = json_object_get(doc, "header");
    if (hdr)
        fprintf(out, ", %s version %lld", jstr(hdr, "magic"), jint(hdr, "version"));
    fputc('\n', out);

    const json_t *cfg = json_object_get(doc, "config");
    if (json_is_object(cfg)) {
        fprintf(out, "configuration: machine %s, capabilities:", jstr(cfg, "machine"));
        const json_t *caps = json_object_get(cfg, "capabilities");
        if (!json_array_size(caps))
            fputs(" (none)", out);
        json_array_foreach(caps, i, x)
            fprintf(out, " %s", json_string_value(x));
        fputc('\n', out);
    } else if (hdr) {
        fputs("configuration: none (machine types <= 2.3 send none)\n", out);
    }

    fprintf(out, "sections:\n");
    json_array_foreach(json_object_get(doc, "sections"), i, x)
        fprintf(out, "  @%-10lld %-5s id %-3lld %s instance %lld version %lld: %lld bytes\n",
                jint(x, "offset"), jstr(x, "type"), jint(x, "section_id"), jstr(x, "name"),
                jint(x, "instance_id"), jint(x, "version"), jint(x, "size"));
    json_array_foreach(json_object_get(doc, "commands"), i, x)
        fprintf(out, "command @%lld: %s (%lld), %lld bytes\n", jint(x, "offset"), jstr(x, "name"),
                jint(x, "cmd"), jint(x, "len"));

    const json_t *blocks = json_object_get(doc, "ram_blocks");
    if (json_array_size(blocks)) {
        const json_t *ram = json_object_get(doc, "ram");
        fprintf(out, "ram: %lld bytes in %zu blocks, %lld records, %lld hooks\n",
                jint(ram, "total"), json_array_size(blocks), jint(ram, "records"),
                jint(ram, "hooks"));
        json_array_foreach(blocks, i, x)
        {
            const json_t *p = json_object_get(x, "pages");
            fprintf(out, "  %-24s length 0x%llx: %lld normal, %lld zero, %lld other pages\n",
                    jstr(x, "name"), (unsigned long long)jint(x, "length"), jint(p, "normal"),
                    jint(p, "zero"), jint(p, "other"));
        }
    }

    json_array_foreach(json_object_get(doc, "devices"), i, x)
    {
        fprintf(out, "device %s instance %lld version %lld (section %lld, %lld bytes):\n",
                jstr(x, "name"), jint(x, "instance_id"), jint(x, "version"),
                jint(x, "section_id"), jint(x, "size"));
        print_vmsd(out, x, 4);
    }

    json_array_foreach(json_object_get(doc, "device_sections"), i, x)
    {
        const json_t *rc = json_object_get(x, "records");
        fprintf(out,
                "device section %s instance %lld version %lld (section %lld): %lld SETUP, %lld "
                "DATA, %lld COMPLETE, %lld EOS records; %lld bytes pre-copy, %lld bytes "
                "stop-copy; COMPLETE %s\n",
                jstr(x, "name"), jint(x, "instance_id"), jint(x, "version"),
                jint(x, "section_id"), jint(rc, "SETUP"), jint(rc, "DATA"), jint(rc, "COMPLETE"),
                jint(rc, "EOS"), jint(x, "precopy_bytes"), jint(x, "stopcopy_bytes"),
                json_is_true(json_object_get(x, "complete")) ? "seen" : "missing");
    }

    const json_t *vd = json_object_get(doc, "vmdescription");
    if (json_is_object(vd))
        fprintf(out, "vmdescription: @%lld, %lld bytes, %lld devices\n", jint(vd, "offset"),
                jint(vd, "size"), jint(vd, "devices"));
    if (json_object_get(doc, "eof_offset"))
        fprintf(out, "eof: @%lld\n", jint(doc, "eof_offset"));
    fprintf(out, "complete: %s\n", json_is_true(json_object_get(doc, "complete")) ? "yes" : "no");
}
