/*
 * analyze.c - the stream analyzer's pass (see analyze.h; the files it is
 * split into: analyze-internal.h).
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
 * (mig_stream_escape) before they reach a message or the JSON.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "analyze-internal.h"

#define RAM_IDSTR "ram"
#define RAM_VERSION 4u /* QEMU's "ram" section version since 2012 */
/* Commands (docs/protocol-qemu-stream.md, commands). */
#define CMD_PACKAGED 7

static const char *const command_names[] = {
    "invalid",      "open-return-path",     "ping",     "postcopy-advise", "postcopy-listen",
    "postcopy-run", "postcopy-ram-discard", "packaged", "enable-colo",     "postcopy-resume",
    "recv-bitmap",  "switchover-start",
};

/* ---------------------------------------------------------------- helpers */

int mig__analyze_fail(MigAnalyzeCtx *c, MigErr **errp, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = mig_stream_vfail(c->s, errp, err, c->item, fmt, ap);
    va_end(ap);
    return r;
}

/* The sticky error of a reader that starved: the analyzer reads in one
 * pass and needs a reader that blocks (or memory). */
static void note_starved(MigAnalyzeCtx *c)
{
    if (!mig_stream_error(c->s) && mig_stream_starved(c->s))
        mig_stream_set_error(c->s, -EAGAIN,
                             "input starved at offset %llu: the analyzer needs a reader that "
                             "blocks",
                             (unsigned long long)mig_stream_offset(c->s));
}

/* The stream's sticky error, if any, as this call's result. */
int mig__analyze_check(MigAnalyzeCtx *c, MigErr **errp)
{
    note_starved(c);
    return mig_stream_take_error(c->s, errp);
}

/* MIG_ANALYZE_MAX_INPUT for a stream, whose length nobody told us. */
static int check_limit(MigAnalyzeCtx *c, MigErr **errp)
{
    if (mig_stream_offset(c->s) <= MIG_ANALYZE_MAX_INPUT)
        return 0;
    return mig__analyze_fail(c, errp, -EFBIG,
                             "input larger than %llu GiB, the most `migcert analyze` reads",
                             (unsigned long long)(MIG_ANALYZE_MAX_INPUT >> 30));
}

json_t *mig__analyze_json_u64(uint64_t v)
{
    if (v <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)v);
    char hex[24];
    snprintf(hex, sizeof(hex), "0x%" PRIx64, v);
    return json_string(hex);
}

/* A name from the wire as a JSON string: bytes, not text (jansson wants
 * UTF-8, a terminal wants no control bytes), so escaped. */
json_t *mig__analyze_json_str(const char *s)
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

static size_t id_slot(uint32_t id, size_t nslot)
{
    return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 17) & (nslot - 1);
}

static MigAnalyzeStarted *find_started(MigAnalyzeCtx *c, uint32_t id)
{
    if (!c->started_nslot)
        return NULL;
    size_t mask = c->started_nslot - 1;
    for (size_t k = id_slot(id, c->started_nslot); c->started_slot[k]; k = (k + 1) & mask)
        if (c->started[c->started_slot[k] - 1].id == id)
            return &c->started[c->started_slot[k] - 1];
    return NULL;
}

static void started_slot_put(MigAnalyzeCtx *c, size_t i)
{
    size_t mask = c->started_nslot - 1;
    size_t k = id_slot(c->started[i].id, c->started_nslot);
    while (c->started_slot[k])
        k = (k + 1) & mask;
    c->started_slot[k] = (uint32_t)(i + 1);
}

/* A new iterative section (its id not started before). */
static MigAnalyzeStarted *add_started(MigAnalyzeCtx *c, uint32_t id)
{
    MIG_GROW(c->started, c->started_cap, c->nstarted + 1, 16);
    MigAnalyzeStarted *st = &c->started[c->nstarted++];
    memset(st, 0, sizeof(*st));
    st->id = id;
    if (2 * c->nstarted > c->started_nslot) {
        free(c->started_slot);
        c->started_nslot = c->started_nslot ? 2 * c->started_nslot : 64;
        c->started_slot = mig_malloc0(c->started_nslot * sizeof(*c->started_slot));
        for (size_t i = 0; i < c->nstarted; i++)
            started_slot_put(c, i);
    } else {
        started_slot_put(c, c->nstarted - 1);
    }
    return st;
}

/* ---------------------------------------------------------------- trailer */

/* Take `json` (n bytes, the trailer at stream offset `at`) as the device
 * descriptions, or note why it cannot serve. */
static void use_vmdesc(MigAnalyzeCtx *c, uint64_t at, const char *json, size_t n)
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
static void locate_vmdesc(MigAnalyzeCtx *c)
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
 * small; the copy doubles as it fills, so a short tail costs a short
 * buffer (a 1 MiB one, zeroed, then grown to 2 MiB, was most of what a
 * sanitizer build spent analysing the prefixes of a small stream). */
int mig__analyze_read_end(MigAnalyzeCtx *c, MigErr **errp)
{
    if (c->have_end)
        return 0;
    enum { CHUNK = 64 << 10 };
    uint64_t base = mig_stream_offset(c->s);
    size_t n = 0, cap = 0;
    uint8_t *b = NULL;
    for (;;) {
        MIG_GROW(b, cap, n + CHUNK, CHUNK);
        size_t k = mig_stream_peek(c->s, b + n, CHUNK, 0);
        if (k == 0)
            break;
        mig_stream_skip(c->s, k);
        n += k;
        if (n > MIG_ANALYZE_TAIL_MAX || base + n > MIG_ANALYZE_MAX_INPUT) {
            free(b);
            c->item = base;
            return mig__analyze_fail(
                c, errp, -EFBIG,
                "the device sections and trailer of this non-seekable input are "
                "more than %u MiB, the most `migcert analyze` keeps in memory "
                "(analyze a regular file instead)",
                (unsigned)(MIG_ANALYZE_TAIL_MAX >> 20));
        }
    }
    int r = mig__analyze_check(c, errp);
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

/* ---------------------------------------------------------------- RAM */

static int parse_ram(MigAnalyzeCtx *c, MigErr **errp)
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

/* ---------------------------------------------------------------- sections */

static int parse_section(MigAnalyzeCtx *c, const MigSectionHeader *h, MigErr **errp)
{
    const char *name = h->idstr;
    uint32_t instance = h->instance_id, version = h->version_id;
    MigAnalyzeStarted *ending = NULL;
    if (h->type == MIG_SECTION_START || h->type == MIG_SECTION_FULL) {
        if (h->type == MIG_SECTION_START && !find_started(c, h->section_id)) {
            if (c->nstarted == MIG_ANALYZE_MAX_STARTED)
                return mig__analyze_fail(c, errp, -E2BIG,
                                         "more than %u iterative sections (START), the most "
                                         "the analyzer takes (docs/limits.md)",
                                         MIG_ANALYZE_MAX_STARTED);
            MigAnalyzeStarted *st = add_started(c, h->section_id);
            memcpy(st->name, h->idstr, sizeof(st->name));
            st->instance = h->instance_id;
            st->version = h->version_id;
            st->ended = false;
        }
    } else {
        MigAnalyzeStarted *st = find_started(c, h->section_id);
        if (!st)
            return mig__analyze_fail(c, errp, -EPROTO,
                                     "%s section for section id %u that was never started",
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
    json_object_set_new(sec, "name", mig__analyze_json_str(name));
    json_object_set_new(sec, "instance_id", json_integer(instance));
    json_object_set_new(sec, "version", json_integer(version));
    json_object_set_new(sec, "offset", mig__analyze_json_u64(h->offset));

    uint64_t start = mig_stream_offset(c->s);
    int r;
    MigAnalyzeStarted *st;
    if (!strcmp(name, RAM_IDSTR)) {
        if (version != RAM_VERSION)
            return mig__analyze_fail(c, errp, -EINVAL,
                                     "savevm: unsupported version %u for '%s' v%u", version, name,
                                     RAM_VERSION);
        r = parse_ram(c, errp);
    } else if (h->type == MIG_SECTION_FULL) {
        r = mig__analyze_parse_device(c, h, errp);
    } else if ((st = find_started(c, h->section_id)) && mig__analyze_is_devrec(c, h, st)) {
        r = mig__analyze_parse_devrec(c, h, st, errp);
    } else {
        char ename[MIG_STREAM_ESCAPED_MAX];
        r = mig__analyze_fail(
            c, errp, -ENOTSUP,
            "the payload of iterative section '%s' has no length on the wire and only "
            "RAM's format is known, so it cannot be skipped",
            MIG_AN_ESC(name, ename));
    }
    json_object_set_new(sec, "size", mig__analyze_json_u64(mig_stream_offset(c->s) - start));
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

static int parse_command(MigAnalyzeCtx *c, MigErr **errp)
{
    uint16_t cmd, len;
    int r = mig_stream_get_command(c->s, &cmd, &len, errp);
    if (r)
        return r;
    json_t *o = json_object();
    json_array_append_new(c->commands, o);
    json_object_set_new(o, "offset", mig__analyze_json_u64(c->item));
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
    return mig__analyze_check(c, errp);
}

static int parse_trailer(MigAnalyzeCtx *c, MigErr **errp)
{
    json_t *vd = json_object();
    json_object_set_new(c->doc, "vmdescription", vd);
    json_object_set_new(vd, "offset", mig__analyze_json_u64(c->item));
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
    json_object_set_new(vd, "size", mig__analyze_json_u64(len));
    if (c->vmdesc_at != c->item || c->vmdesc_len != len || !c->vmdesc)
        return mig__analyze_fail(c, errp, -EPROTO, "VMDESCRIPTION is not usable: %s",
                                 c->vmdesc_problem ? c->vmdesc_problem
                                                   : "it does not end the stream");
    json_object_set_new(
        vd, "devices",
        json_integer((json_int_t)json_array_size(json_object_get(c->vmdesc, "devices"))));
    json_t *ps = json_object_get(c->vmdesc, "page_size");
    if (json_is_integer(ps))
        json_object_set_new(vd, "page_size", json_incref(ps));
    return 0;
}

/* The section started last and not ended yet, or NULL. */
static const MigAnalyzeStarted *last_open(const MigAnalyzeCtx *c)
{
    for (size_t i = c->nstarted; i-- > 0;)
        if (!c->started[i].ended)
            return &c->started[i];
    return NULL;
}

/* The input ended between two sections: name what it left open. */
static int fail_truncated(MigAnalyzeCtx *c, MigErr **errp)
{
    char e[MIG_STREAM_ESCAPED_MAX];
    const MigAnalyzeStarted *st = last_open(c);
    if (st)
        return mig__analyze_fail(
            c, errp, -EIO,
            "section '%s' (id %u): truncated: the stream ends before the section's "
            "END and the EOF marker",
            MIG_AN_ESC(st->name, e), st->id);
    size_t n = json_array_size(c->sections);
    if (n) {
        const json_t *last = json_array_get(c->sections, n - 1);
        return mig__analyze_fail(
            c, errp, -EIO,
            "truncated: the stream ends after section '%s' (id %lld), before its "
            "EOF marker",
            json_string_value(json_object_get(last, "name")),
            (long long)json_integer_value(json_object_get(last, "section_id")));
    }
    return mig__analyze_fail(c, errp, -EIO, "truncated: the stream ends before its EOF marker");
}

static int parse_all(MigAnalyzeCtx *c, MigErr **errp)
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
        json_object_set_new(jc, "machine", mig__analyze_json_str(cfg->machine));
        json_t *caps = json_array();
        for (size_t i = 0; i < cfg->ncaps; i++) {
            json_array_append_new(caps, mig__analyze_json_str(cfg->caps[i]));
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
        if (!r && ++c->nitems > MIG_ANALYZE_MAX_SECTIONS)
            return mig__analyze_fail(c, errp, -E2BIG,
                                     "more than %u sections and commands, the most the analyzer "
                                     "takes (docs/limits.md)",
                                     MIG_ANALYZE_MAX_SECTIONS);
        if (r) {
            const MigAnalyzeStarted *open = last_open(c);
            char e[MIG_STREAM_ESCAPED_MAX];
            size_t n = json_array_size(c->sections);
            const json_t *last = n ? json_array_get(c->sections, n - 1) : NULL;
            if (open)
                mig_err_prepend(errp, "section header (section '%s' (id %u) still open)",
                                MIG_AN_ESC(open->name, e), open->id);
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
                const MigAnalyzeStarted *st = find_started(c, h.section_id);
                char e[MIG_STREAM_ESCAPED_MAX];
                mig_err_prepend(errp, "section '%s' (id %u)",
                                MIG_AN_ESC(h.idstr[0] || !st ? h.idstr : st->name, e),
                                h.section_id);
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
            json_object_set_new(c->doc, "eof_offset", mig__analyze_json_u64(h.offset));
            c->item = mig_stream_offset(c->s);
            if (mig_stream_at_eof(c->s))
                return mig__analyze_check(c, errp);
            r = mig_stream_get_section_header(c->s, &h, errp);
            if (r)
                return r;
            if (h.type != MIG_SECTION_VMDESCRIPTION)
                return mig__analyze_fail(c, errp, -EPROTO,
                                         "Expected vmdescription section, but got %u", h.type);
            if ((r = parse_trailer(c, errp)))
                return r;
            c->item = mig_stream_offset(c->s);
            if (!mig_stream_at_eof(c->s) && c->have_end)
                return mig__analyze_fail(c, errp, -EPROTO,
                                         "%" PRIu64 " bytes follow the VMDESCRIPTION",
                                         c->end_base + c->end_len - c->item);
            if (!mig_stream_at_eof(c->s))
                return mig__analyze_fail(c, errp, -EPROTO, "bytes follow the VMDESCRIPTION");
            return mig__analyze_check(c, errp);
        default:
            return mig__analyze_fail(c, errp, -EPROTO, "VMDESCRIPTION before the EOF marker");
        }
    }
}

static void finish_doc(MigAnalyzeCtx *c)
{
    json_t *blocks = json_array();
    for (size_t i = 0; i < c->ram.nblocks; i++) {
        const MigRamBlockInfo *b = &c->ram.blocks[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", mig__analyze_json_str(b->name));
        json_object_set_new(o, "length", mig__analyze_json_u64(b->length));
        if (c->ram.ignore_shared)
            json_object_set_new(o, "mr_addr", mig__analyze_json_u64(b->mr_addr));
        json_t *p = json_object();
        json_object_set_new(p, "normal", mig__analyze_json_u64(c->counts[i].normal));
        json_object_set_new(p, "zero", mig__analyze_json_u64(c->counts[i].zero));
        json_object_set_new(p, "other", mig__analyze_json_u64(c->counts[i].other));
        json_object_set_new(o, "pages", p);
        json_array_append_new(blocks, o);
    }
    json_object_set_new(c->doc, "ram_blocks", blocks);
    json_t *ram = json_object();
    json_object_set_new(ram, "total", mig__analyze_json_u64(c->ram.total));
    json_object_set_new(ram, "records", mig__analyze_json_u64(c->ram_records));
    json_object_set_new(ram, "hooks", mig__analyze_json_u64(c->ram_hooks));
    json_object_set_new(ram, "multifd_flushes", mig__analyze_json_u64(c->ram_flushes));
    json_object_set_new(c->doc, "ram", ram);
}

/* The pass over c->s and the document; frees what c owns (not c->s's
 * caller stream). */
static int analyze(MigAnalyzeCtx *c, json_t **doc, uint64_t *err_offset, MigErr **errp)
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
        r = mig__analyze_fail(
            c, &err, -EFBIG,
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
        json_object_set_new(c->doc, "file_size", mig__analyze_json_u64(c->end_base + c->end_len));
    else if (r == 0)
        json_object_set_new(c->doc, "file_size", mig__analyze_json_u64(mig_stream_offset(c->s)));
    else if (mig_stream_input_length(c->s, &len))
        json_object_set_new(c->doc, "file_size", mig__analyze_json_u64(len));
    json_object_set_new(c->doc, "complete", json_boolean(r == 0));
    if (r) {
        json_t *e = json_object();
        json_object_set_new(e, "offset", mig__analyze_json_u64(c->item));
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
    free(c->started_slot);
    mig_ram_reader_free(&c->ram);
    mig_stream_free(c->tail_s);
    free(c->tail);
    return r;
}

int mig_analyze_buffer(const void *buf, size_t len, json_t **doc, uint64_t *err_offset,
                       MigErr **errp)
{
    MigAnalyzeCtx c;
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
    MigAnalyzeCtx c;
    memset(&c, 0, sizeof(c));
    c.s = s;
    c.streaming = true;
    c.budget = 100000; /* set from the real size when the end is read */
    return analyze(&c, doc, err_offset, errp);
}
