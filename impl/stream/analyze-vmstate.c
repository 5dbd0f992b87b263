/*
 * analyze-vmstate.c - FULL device sections (vmstate) in the analyzer: their
 * payloads are decoded field by field with the field lists of the
 * VMDESCRIPTION trailer, since a payload carries no length of its own; and
 * when no trailer ends the input, the section footers are followed to tell
 * a cut input from one written without a trailer (see analyze.h).
 *
 * Called by analyze.c (mig__analyze_parse_device) for every FULL section
 * other than RAM.  Reads the trailer that analyze.c located
 * (MigAnalyzeCtx.vmdesc) and the input's end (end_buf); writes one
 * "devices" entry per section.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "analyze-internal.h"

/* Bounds on what a trailer may describe: nesting of structs and
 * subsections, one field's size, one array's length. */
#define MAX_NEST 32
#define MAX_FIELD_SIZE (1u << 30)
#define MAX_ARRAY_LEN (1u << 24)

static json_t *vmdesc_device(MigAnalyzeCtx *c, const char *name, uint32_t instance)
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
static void probe_end(const MigAnalyzeCtx *c, const MigSectionHeader *h, uint64_t payload,
                      EndProbe *pr)
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
static int fail_without_trailer(MigAnalyzeCtx *c, const MigSectionHeader *h, MigErr **errp)
{
    EndProbe pr;
    uint64_t end = c->end_base + c->end_len;
    char e[MIG_STREAM_ESCAPED_MAX];
    if (c->footers == 1) {
        probe_end(c, h, mig_stream_offset(c->s), &pr);
        MIG_AN_ESC(pr.name, e);
        switch (pr.kind) {
        case END_IN_SECTION:
            c->located = true;
            c->item = pr.at;
            return mig__analyze_fail(
                c, errp, -EIO,
                "truncated: stream ended at offset %llu inside section '%s' (id %u), "
                "which starts",
                (unsigned long long)end, e, pr.id);
        case END_AFTER_SECTION:
            c->located = true;
            c->item = end;
            return mig__analyze_fail(
                c, errp, -EIO,
                "truncated: the stream ends after section '%s' (id %u), before its "
                "EOF marker",
                e, pr.id);
        case END_IN_HEADER:
            c->located = true;
            c->item = pr.at;
            return mig__analyze_fail(
                c, errp, -EIO,
                "truncated: stream ended at offset %llu inside the header of the "
                "section after section '%s' (id %u), which starts",
                (unsigned long long)end, e, pr.id);
        case END_IN_TRAILER:
            c->located = true;
            c->item = pr.at;
            if (pr.announced)
                return mig__analyze_fail(
                    c, errp, -EIO,
                    "truncated: stream ended at offset %llu inside the VMDESCRIPTION "
                    "trailer (%llu of its %llu JSON bytes present), which starts",
                    (unsigned long long)end, (unsigned long long)(end - pr.at - 5),
                    (unsigned long long)pr.announced);
            return mig__analyze_fail(
                c, errp, -EIO,
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
    return mig__analyze_fail(
        c, errp, -ENOTSUP,
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
        return mig__analyze_json_u64(v);
    }
}

static int decode_vmsd(MigAnalyzeCtx *c, const json_t *desc, json_t *out, int depth, MigErr **errp);

static int decode_field(MigAnalyzeCtx *c, const json_t *f, json_t *out_fields, int depth,
                        MigErr **errp)
{
    const char *name = json_string_value(json_object_get(f, "name"));
    const char *type = json_string_value(json_object_get(f, "type"));
    json_t *jsize = json_object_get(f, "size");
    json_t *jalen = json_object_get(f, "array_len");
    if (!name || !type || !json_is_integer(jsize))
        return mig__analyze_fail(c, errp, -EPROTO,
                                 "VMDESCRIPTION field without name, type or size");
    char ename[MIG_STREAM_ESCAPED_MAX];
    MIG_AN_ESC(name, ename);
    int64_t size = json_integer_value(jsize);
    if (size < 0 || size > MAX_FIELD_SIZE)
        return mig__analyze_fail(c, errp, -EPROTO, "VMDESCRIPTION field %s has a bad size %" PRId64,
                                 ename, size);
    int64_t n = 1;
    if (jalen) {
        if (!json_is_integer(jalen) || json_integer_value(jalen) < 0 ||
            json_integer_value(jalen) > MAX_ARRAY_LEN)
            return mig__analyze_fail(c, errp, -EPROTO, "VMDESCRIPTION field %s has a bad array_len",
                                     ename);
        n = json_integer_value(jalen);
    }
    /* Elements of size 0 and structs consume no bytes by themselves, so a
     * damaged array_len could make us loop and allocate without bound. */
    if ((uint64_t)n > c->budget)
        return mig__analyze_fail(c, errp, -EPROTO,
                                 "VMDESCRIPTION field %s: array_len %" PRId64
                                 " is more than the stream "
                                 "can hold",
                                 ename, n);
    c->budget -= (uint64_t)n;
    json_t *e = json_object();
    json_array_append_new(out_fields, e);
    json_object_set_new(e, "name", mig__analyze_json_str(name));
    json_object_set_new(e, "type", mig__analyze_json_str(type));
    json_object_set_new(e, "size", json_integer(size));
    if (jalen)
        json_object_set_new(e, "array_len", json_integer(n));
    json_object_set_new(e, "offset", mig__analyze_json_u64(mig_stream_offset(c->s)));

    if (!strcmp(type, "struct")) {
        const json_t *sdesc = json_object_get(f, "struct");
        if (!json_is_object(sdesc))
            return mig__analyze_fail(c, errp, -EPROTO,
                                     "VMDESCRIPTION struct field %s has no \"struct\"", ename);
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
        return mig__analyze_fail(c, errp, -EIO,
                                 "field %s (%" PRId64 " x %" PRId64
                                 " bytes): truncated, the stream ends "
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
            return mig__analyze_check(c, errp);
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

static int decode_vmsd(MigAnalyzeCtx *c, const json_t *desc, json_t *out, int depth, MigErr **errp)
{
    if (depth > MAX_NEST)
        return mig__analyze_fail(c, errp, -EPROTO, "VMDESCRIPTION nests deeper than %d levels",
                                 MAX_NEST);
    const char *vmsd = json_string_value(json_object_get(desc, "vmsd_name"));
    if (vmsd)
        json_object_set_new(out, "vmsd_name", mig__analyze_json_str(vmsd));
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
        int r = mig__analyze_check(c, errp);
        if (r)
            return r;
        if (b != MIG_SECTION_SUBSECTION || !want || strcmp(name, want)) {
            char ewant[MIG_STREAM_ESCAPED_MAX];
            return mig__analyze_fail(c, errp, -EPROTO,
                                     "subsection %s not found (the VMDESCRIPTION lists it here)",
                                     want ? MIG_AN_ESC(want, ewant) : "?");
        }
        json_t *o = json_object();
        json_array_append_new(out_subs, o);
        json_object_set_new(o, "name", mig__analyze_json_str(name));
        json_object_set_new(o, "version", json_integer(version));
        if ((r = decode_vmsd(c, f, o, depth + 1, errp)))
            return r;
    }
    return 0;
}

int mig__analyze_parse_device(MigAnalyzeCtx *c, const MigSectionHeader *h, MigErr **errp)
{
    int r = mig__analyze_read_end(c, errp);
    if (r)
        return r;
    char ename[MIG_STREAM_ESCAPED_MAX];
    const json_t *d = vmdesc_device(c, h->idstr, h->instance_id);
    if (!d) {
        if (c->vmdesc_missing)
            return fail_without_trailer(c, h, errp);
        if (c->vmdesc_problem)
            return mig__analyze_fail(
                c, errp, -ENOTSUP,
                "device payloads carry no length and %s, so this section can be "
                "neither decoded nor skipped",
                c->vmdesc_problem);
        return mig__analyze_fail(
            c, errp, -EPROTO,
            "device '%s' instance %u is not in the VMDESCRIPTION, so its payload "
            "can be neither decoded nor skipped",
            MIG_AN_ESC(h->idstr, ename), h->instance_id);
    }
    json_t *v = json_object_get(d, "version");
    if (json_is_integer(v) && json_integer_value(v) != (json_int_t)h->version_id)
        return mig__analyze_fail(c, errp, -EPROTO,
                                 "section version %u differs from version %" JSON_INTEGER_FORMAT
                                 " in the VMDESCRIPTION",
                                 h->version_id, json_integer_value(v));
    json_t *dev = json_object();
    json_array_append_new(c->devices, dev);
    json_object_set_new(dev, "name", mig__analyze_json_str(h->idstr));
    json_object_set_new(dev, "instance_id", json_integer(h->instance_id));
    json_object_set_new(dev, "version", json_integer(h->version_id));
    json_object_set_new(dev, "section_id", json_integer(h->section_id));
    json_object_set_new(dev, "offset", mig__analyze_json_u64(h->offset));
    uint64_t start = mig_stream_offset(c->s);
    r = decode_vmsd(c, d, dev, 0, errp);
    json_object_set_new(dev, "size", mig__analyze_json_u64(mig_stream_offset(c->s) - start));
    return r;
}
