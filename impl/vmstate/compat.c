/*
 * compat.c - the static compatibility checker over two -dump-vmstate
 * documents (see vmstate.h; rules from docs/protocol-qemu-stream.md section 11).
 *
 * How a pair of field lists is compared.  The source writes the fields its
 * description has at the version it sends; the destination reads the fields
 * its description has at the version it loads with:
 *   - top level and subsections: the version on the wire, i.e. OLD's;
 *   - nested structs: each side's *own current* version (never on the wire),
 *     so a field added to a nested struct is an error even with a bump.
 * Fields hidden by those gates are dropped from each list (field_exists
 * fields stay: their presence is decided at run time), then the two lists are
 * walked in step.  Tolerated like QEMU's checker: fields moved into or out of
 * a sub-struct (wire unchanged), `unused` padding replaced by fields of the
 * same total size, known section renames.
 *
 * What it detects (finding.rule):
 *   1-10  QEMU's scripts/vmstate-static-checker.py, same meaning: section
 *         missing, version above NEW's or below its minimum, description
 *         renamed, entry missing, field renamed or reordered, OLD sends more
 *         fields, unused padding mismatch, field size, struct without its
 *         description, subsection missing.
 *   Beyond QEMU's checker:
 *   11    a field NEW reads that OLD does not send: appended or inserted
 *         without a version bump (QEMU does not see extra trailing fields,
 *         even at version 0), also in nested structs, where a bump does not
 *         help because they load with NEW's own version;
 *   13    field_exists changed: a field that became conditional (false ->
 *         true) or unconditional (true -> false).  Decision: an error when
 *         the description's version did not change (nothing lets NEW's test
 *         tell OLD's streams apart, so one side reads what the other may not
 *         send); info when it did, stating what the test must answer for
 *         OLD's version (QEMU's tests usually key on the version);
 *   5     (with more words) a field OLD sends that NEW reads only from a
 *         later version (its version gate moved);
 *   12    info (--info): new sections and subsections, extra conditional
 *         fields NEW may read, machine types that differ.
 * What no static check can detect - the dump does not carry it:
 *   - needed() semantics: when a subsection is sent, and whether NEW's
 *     pre_load resets what an absent subsection leaves;
 *   - field_exists semantics: what the test answers for which version or
 *     state (the dump only says that there is a test);
 *   - machine-type compat properties: the dump is per device class and the
 *     same for every machine type of a binary, so what a machine type
 *     changes (property defaults, which subsections are needed) is invisible;
 *   - array length changes: the dump gives an element's size, not the
 *     element count of a fixed array nor the field that counts a var array;
 *   - type or meaning changes of the same size (uint32 -> int32, units);
 *   - VALIDATE fields and post_load checks (not in the dump), value ranges;
 *   - sections without a description (ram, block, dirty-bitmap: old-style
 *     and iterative handlers) and which devices a machine instantiates.
 * vmstate_compat_scope() says the same for `migcert check-compat --help`.
 */
#include <stdlib.h>
#include <string.h>

#include "vmstate.h"

static const char *const level_names[VMS_COMPAT__COUNT] = {
    [VMS_COMPAT_ERROR] = "error",
    [VMS_COMPAT_INFO] = "info",
};

const char *vmstate_compat_level_name(VmsCompatLevel l)
{
    return (unsigned)l < VMS_COMPAT__COUNT ? level_names[l] : "unknown";
}

char *vmstate_compat_format(const VmsCompatFinding *f)
{
    if (f->where && f->where[0]) {
        /* a path ending in "<parent>/<sub>" names a subsection, else a field */
        const char *last = strrchr(f->where, '.');
        last = last ? last + 1 : f->where;
        return mig_strdup_printf("%s: section \"%s\": %s \"%s\": %s",
                                 vmstate_compat_level_name(f->level), f->section,
                                 strchr(last, '/') ? "subsection" : "field", f->where, f->text);
    }
    return mig_strdup_printf("%s: section \"%s\": %s", vmstate_compat_level_name(f->level),
                             f->section, f->text);
}

const char *vmstate_compat_scope(void)
{
    return "Detects, for migrating OLD -> NEW (numbered as VmsCompatFinding.rule):\n"
           "  QEMU's vmstate-static-checker.py, same meaning:\n"
           "    1 section missing in NEW (known renames tolerated)\n"
           "    2 version: OLD's above NEW's, or below NEW's minimum\n"
           "    3 description renamed          4 Description/Fields/Subsections entry missing\n"
           "    5 field renamed or reordered   6 OLD sends more fields than NEW reads\n"
           "    7 unused padding mismatch      8 field size changed\n"
           "    9 struct lost its description  10 subsection missing in NEW\n"
           "  Beyond QEMU's checker:\n"
           "    11 a field NEW reads that OLD does not send (added without a version bump,\n"
           "       also inside nested structs, which load with NEW's own version)\n"
           "    13 field_exists changed (field became conditional or unconditional):\n"
           "       an error without a version change, info with one\n"
           "    5  a field OLD sends that NEW reads only from a later version\n"
           "    12 info: new sections and subsections, extra conditional fields,\n"
           "       machine types that differ\n"
           "Cannot detect (not in the dump; review by hand, test with real migrations):\n"
           "  - needed() semantics: when a subsection is sent, and whether NEW's pre_load\n"
           "    resets what an absent subsection leaves\n"
           "  - field_exists semantics: what the test answers for which version or state\n"
           "  - machine-type compat properties: the dump is per device class, the same for\n"
           "    every machine type of a binary\n"
           "  - array length changes: the dump gives element sizes, not element counts\n"
           "  - type or meaning changes of the same size (uint32 -> int32, units)\n"
           "  - VALIDATE fields and post_load checks, value ranges\n"
           "  - sections without a description (ram, block, dirty-bitmap) and which\n"
           "    devices a machine instantiates\n";
}

/* ---- shape validation (malformed input is -EPROTO, not a finding) ---- */

static int bad(MigErr **errp, const char *doc, const char *path, const char *what)
{
    return mig_err_set(errp, -EPROTO, "%s: %s: %s", doc, path, what);
}

/* A description's or section's version window: non-negative versions, the
 * minimum not above the version. */
static int validate_versions(json_t *d, const char *doc, const char *path, MigErr **errp)
{
    json_t *v = json_object_get(d, "version_id"), *m = json_object_get(d, "minimum_version_id");
    if (!json_is_integer(v))
        return bad(errp, doc, path, "\"version_id\" is not an integer");
    if (m && !json_is_integer(m))
        return bad(errp, doc, path, "\"minimum_version_id\" is not an integer");
    if (json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
        return bad(errp, doc, path, "\"version_id\" is not a 32-bit unsigned number");
    if (m && (json_integer_value(m) < 0 || json_integer_value(m) > json_integer_value(v)))
        return mig_err_set(errp, -EPROTO, "%s: %s: \"minimum_version_id\" %lld is above "
                           "\"version_id\" %lld (or negative)", doc, path,
                           (long long)json_integer_value(m), (long long)json_integer_value(v));
    return 0;
}

static int validate_desc(json_t *d, const char *doc, const char *path, int depth, MigErr **errp)
{
    if (depth > VMS_COMPAT_MAX_DEPTH)
        return mig_err_set(errp, -EPROTO, "%s: %s: descriptions nested more than %d deep",
                           doc, path, VMS_COMPAT_MAX_DEPTH);
    if (!json_is_object(d))
        return bad(errp, doc, path, "not an object");
    if (!json_is_string(json_object_get(d, "name")))
        return bad(errp, doc, path, "\"name\" is not a string");
    int ret = validate_versions(d, doc, path, errp);
    if (ret < 0)
        return ret;
    json_t *fields = json_object_get(d, "Fields");
    if (fields && !json_is_array(fields))
        return bad(errp, doc, path, "\"Fields\" is not an array");
    if (json_array_size(fields) > VMS_COMPAT_MAX_FIELDS)
        return mig_err_set(errp, -EPROTO, "%s: %s: %zu fields, more than the %u one "
                           "description may have", doc, path, json_array_size(fields),
                           VMS_COMPAT_MAX_FIELDS);
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        char *fp = mig_strdup_printf("%s.Fields[%zu]", path, i);
        json_t *size = json_object_get(f, "size");
        if (!json_is_object(f))
            ret = bad(errp, doc, fp, "not an object");
        else if (!json_is_string(json_object_get(f, "field")))
            ret = bad(errp, doc, fp, "\"field\" is not a string");
        else if (!json_is_integer(json_object_get(f, "version_id")))
            ret = bad(errp, doc, fp, "\"version_id\" is not an integer");
        else if (json_integer_value(json_object_get(f, "version_id")) < 0)
            ret = bad(errp, doc, fp, "\"version_id\" is negative");
        else if (!json_is_integer(size))
            ret = bad(errp, doc, fp, "\"size\" is not an integer");
        else if (json_integer_value(size) < 0 ||
                 json_integer_value(size) > VMS_COMPAT_MAX_FIELD_SIZE)
            ret = mig_err_set(errp, -EPROTO, "%s: %s: \"size\" %lld is negative or above "
                              "%lld", doc, fp, (long long)json_integer_value(size),
                              (long long)VMS_COMPAT_MAX_FIELD_SIZE);
        else if (json_object_get(f, "field_exists") &&
                 !json_is_boolean(json_object_get(f, "field_exists")))
            ret = bad(errp, doc, fp, "\"field_exists\" is not a boolean");
        else if (json_object_get(f, "Description")) {
            char *dp = mig_strdup_printf("%s.Description", fp);
            ret = validate_desc(json_object_get(f, "Description"), doc, dp, depth + 1, errp);
            free(dp);
        }
        free(fp);
        if (ret < 0)
            return ret;
    }
    json_t *subs = json_object_get(d, "Subsections");
    if (subs && !json_is_array(subs))
        return bad(errp, doc, path, "\"Subsections\" is not an array");
    if (json_array_size(subs) > VMS_COMPAT_MAX_SUBSECTIONS)
        return mig_err_set(errp, -EPROTO, "%s: %s: %zu subsections, more than the %u one "
                           "description may have", doc, path, json_array_size(subs),
                           VMS_COMPAT_MAX_SUBSECTIONS);
    json_t *seen = json_object(); /* subsection names: each once */
    json_t *sd;
    json_array_foreach(subs, i, sd)
    {
        char *sp = mig_strdup_printf("%s.Subsections[%zu]", path, i);
        ret = validate_desc(sd, doc, sp, depth + 1, errp);
        const char *n = ret < 0 ? NULL : json_string_value(json_object_get(sd, "name"));
        if (n && json_object_get(seen, n))
            ret = mig_err_set(errp, -EPROTO, "%s: %s: a second subsection named \"%s\"", doc,
                              sp, n);
        else if (n)
            json_object_set_new(seen, n, json_integer((json_int_t)i));
        free(sp);
        if (ret < 0)
            break;
    }
    json_decref(seen);
    return ret;
}

static int validate_dump(json_t *doc, const char *name, MigErr **errp)
{
    if (!json_is_object(doc))
        return mig_err_set(errp, -EPROTO, "%s: the top level is not an object", name);
    if (json_object_size(doc) > VMS_COMPAT_MAX_SECTIONS)
        return mig_err_set(errp, -EPROTO, "%s: %zu sections, more than the %u a dump may have",
                           name, json_object_size(doc), VMS_COMPAT_MAX_SECTIONS);
    const char *key;
    json_t *sec;
    json_object_foreach(doc, key, sec)
    {
        char *path = mig_strdup_printf("section \"%s\"", key);
        int ret = 0;
        json_t *nm = json_object_get(sec, "Name");
        if (!json_is_object(sec))
            ret = bad(errp, name, path, "not an object");
        else if (strcmp(key, "vmschkmachine") == 0)
            ret = 0;
        else if (nm && !json_is_string(nm))
            ret = bad(errp, name, path, "\"Name\" is not a string");
        else if (nm && strcmp(json_string_value(nm), key) != 0)
            ret = mig_err_set(errp, -EPROTO, "%s: %s: \"Name\" \"%s\" is not the section's "
                              "key", name, path, json_string_value(nm));
        else if ((ret = validate_versions(sec, name, path, errp)) < 0)
            ;
        else if (json_object_get(sec, "Description")) {
            char *dp = mig_strdup_printf("%s.Description", path);
            ret = validate_desc(json_object_get(sec, "Description"), name, dp, 0, errp);
            free(dp);
        }
        free(path);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* ---- findings ---- */

typedef struct Ctx {
    VmsCompatCb cb;
    void *opaque;
    int errors;
    const char *section;
} Ctx;

static void report(Ctx *c, VmsCompatLevel level, int rule, const char *where, const char *fmt,
                   ...) MIG_PRINTF(5, 6);
static void report(Ctx *c, VmsCompatLevel level, int rule, const char *where, const char *fmt,
                   ...)
{
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&text, fmt, ap) < 0)
        text = NULL;
    va_end(ap);
    if (level == VMS_COMPAT_ERROR)
        c->errors++;
    VmsCompatFinding f = {
        .level = level,
        .rule = rule,
        .section = c->section,
        .where = where ? where : "",
        .text = text ? text : "?",
    };
    if (c->cb)
        c->cb(&f, c->opaque);
    free(text);
}

static json_int_t jint(json_t *o, const char *key, json_int_t dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static char *join(const char *prefix, const char *name)
{
    return prefix && prefix[0] ? mig_strdup_printf("%s.%s", prefix, name) : mig_strdup(name);
}

/* Rule 2: a stream of OLD's version must fit NEW's window. */
static void check_version(Ctx *c, json_t *s, json_t *d, const char *where, const char *what)
{
    json_int_t sv = jint(s, "version_id", 0), dv = jint(d, "version_id", 0);
    if (sv > dv)
        report(c, VMS_COMPAT_ERROR, 2, where,
               "%s version %lld in OLD is newer than NEW's %lld", what, (long long)sv,
               (long long)dv);
    json_t *dm = json_object_get(d, "minimum_version_id");
    if (dm && sv < json_integer_value(dm))
        report(c, VMS_COMPAT_ERROR, 2, where,
               "%s version %lld in OLD is below NEW's minimum %lld", what, (long long)sv,
               (long long)json_integer_value(dm));
}

/* A cursor over a field list that descends into sub-structs on request and
 * hides fields gated out at its frame's version. */
#define CUR_DEPTH 16
typedef struct Cursor {
    struct {
        json_t *fields;
        size_t i;
        json_int_t ver;
        char *prefix;
        /* built at the first mismatch in this frame (frame_index), so the
         * lookups below cost the same for every field: name -> index of
         * its last visible field, name -> its first hidden field */
        json_t *last_visible, *first_hidden;
    } f[CUR_DEPTH];
    int depth;
} Cursor;

static bool visible(json_t *item, json_int_t ver)
{
    return json_is_true(json_object_get(item, "field_exists")) ||
           jint(item, "version_id", 0) <= ver;
}

static void cur_init(Cursor *c, json_t *fields, json_int_t ver, const char *prefix)
{
    memset(c, 0, sizeof(*c));
    c->f[0].fields = fields;
    c->f[0].ver = ver;
    c->f[0].prefix = mig_strdup(prefix ? prefix : "");
    c->depth = 1;
}

static void frame_free(Cursor *c, int i)
{
    free(c->f[i].prefix);
    json_decref(c->f[i].last_visible);
    json_decref(c->f[i].first_hidden);
    c->f[i].last_visible = c->f[i].first_hidden = NULL;
}

static void cur_free(Cursor *c)
{
    for (int i = 0; i < c->depth; i++)
        frame_free(c, i);
    c->depth = 0;
}

/* The next visible field, or NULL at the end of every frame. */
static json_t *cur_peek(Cursor *c)
{
    while (c->depth > 0) {
        typeof(c->f[0]) *fr = &c->f[c->depth - 1];
        while (fr->i < json_array_size(fr->fields)) {
            json_t *item = json_array_get(fr->fields, fr->i);
            if (visible(item, fr->ver))
                return item;
            fr->i++;
        }
        if (c->depth == 1)
            return NULL;
        frame_free(c, c->depth - 1);
        c->depth--;
    }
    return NULL;
}

static void cur_next(Cursor *c)
{
    if (c->depth > 0)
        c->f[c->depth - 1].i++;
}

static const char *cur_prefix(Cursor *c)
{
    return c->f[c->depth - 1].prefix;
}

/* Enter the struct the cursor points at (the caller peeked it). */
static bool cur_enter(Cursor *c, json_t *item)
{
    json_t *desc = json_object_get(item, "Description");
    json_t *fields = json_object_get(desc, "Fields");
    if (!fields || json_array_size(fields) == 0 || c->depth == CUR_DEPTH)
        return false;
    char *prefix = join(cur_prefix(c), jstr(item, "field"));
    cur_next(c);
    c->f[c->depth].fields = fields;
    c->f[c->depth].i = 0;
    c->f[c->depth].ver = jint(desc, "version_id", 0);
    c->f[c->depth].prefix = prefix;
    c->f[c->depth].last_visible = c->f[c->depth].first_hidden = NULL;
    c->depth++;
    return true;
}

/* QEMU's tolerance: a field moved into a new sub-struct keeps the wire. */
static bool first_field_is(json_t *item, const char *name)
{
    json_t *fields = json_object_get(json_object_get(item, "Description"), "Fields");
    json_t *first = json_array_get(fields, 0);
    return first && strcmp(jstr(first, "field"), name) == 0;
}

/* The current frame's name maps (see Cursor), built once per frame. */
static void frame_index(Cursor *c)
{
    typeof(c->f[0]) *fr = &c->f[c->depth - 1];
    if (fr->last_visible)
        return;
    fr->last_visible = json_object();
    fr->first_hidden = json_object();
    for (size_t i = 0; i < json_array_size(fr->fields); i++) {
        json_t *item = json_array_get(fr->fields, i);
        const char *name = jstr(item, "field");
        if (visible(item, fr->ver))
            json_object_set_new(fr->last_visible, name, json_integer((json_int_t)i));
        else if (!json_object_get(fr->first_hidden, name))
            json_object_set(fr->first_hidden, name, item);
    }
}

static bool later_in_frame(Cursor *c, const char *name)
{
    frame_index(c);
    typeof(c->f[0]) *fr = &c->f[c->depth - 1];
    json_t *last = json_object_get(fr->last_visible, name);
    return last && (size_t)json_integer_value(last) > fr->i;
}

/* A field of that name in the current frame that the version gate hides. */
static json_t *hidden_in_frame(Cursor *c, const char *name)
{
    frame_index(c);
    return json_object_get(c->f[c->depth - 1].first_hidden, name);
}

static void compare_desc(Ctx *c, json_t *s, json_t *d, const char *where, bool nested, int depth);

/* `unused` padding on one side may stand for fields of the same total size
 * on the other (rule 7).  `pad` is the unused item of cursor `pc`; the other
 * cursor `oc` is consumed until the sizes add up. */
static bool absorb_unused(Ctx *c, Cursor *pc, json_t *pad, Cursor *oc, const char *where)
{
    json_int_t want = jint(pad, "size", 0), got = 0;
    cur_next(pc);
    json_t *o;
    while (got < want && (o = cur_peek(oc))) {
        got += jint(o, "size", 0);
        cur_next(oc);
    }
    if (got != want) {
        report(c, VMS_COMPAT_ERROR, 7, where,
               "unused size mismatch: %lld bytes of padding against %lld bytes of fields",
               (long long)want, (long long)got);
        return false;
    }
    return true;
}

/* Rule 13: field_exists (a run-time test decides whether the field is on
 * the wire) appeared or disappeared.  Without a version change nothing tells
 * the two tests apart, so one side reads what the other may not send: an
 * error.  With one, the test may key on the version (QEMU's usual form,
 * e.g. "version_id < 3"): info saying what it must answer for OLD's streams. */
static void check_exists_change(Ctx *c, json_t *s, json_t *d, const char *w, json_int_t sver,
                                json_int_t down)
{
    bool sx = json_is_true(json_object_get(s, "field_exists"));
    bool dx = json_is_true(json_object_get(d, "field_exists"));
    if (sx == dx)
        return;
    if (sver == down && dx)
        report(c, VMS_COMPAT_ERROR, 13, w,
               "field became conditional (field_exists) in NEW without a version change: OLD "
               "always sends it, NEW reads it only when its test says so");
    else if (sver == down)
        report(c, VMS_COMPAT_ERROR, 13, w,
               "field became unconditional in NEW without a version change: OLD sends it only "
               "when its field_exists test says so, NEW always reads it");
    else if (dx)
        report(c, VMS_COMPAT_INFO, 13, w,
               "field became conditional (field_exists) at version %lld -> %lld: NEW's test "
               "must say yes for streams of version %lld, which always carry it",
               (long long)sver, (long long)down, (long long)sver);
    else
        report(c, VMS_COMPAT_INFO, 13, w,
               "field became unconditional at version %lld -> %lld: NEW always reads it from "
               "streams of version %lld, so OLD's field_exists test must have sent it for them",
               (long long)sver, (long long)down, (long long)sver);
}

/* sver/dver: the versions each side's fields are gated at (see the header);
 * down: NEW's own description version (a change against sver is a bump). */
static void compare_fields(Ctx *c, json_t *sf, json_t *df, json_int_t sver, json_int_t dver,
                           json_int_t down, const char *prefix, bool nested, int depth)
{
    Cursor S, D;
    cur_init(&S, sf, sver, prefix);
    cur_init(&D, df, dver, prefix);
    for (;;) {
        json_t *s = cur_peek(&S), *d = cur_peek(&D);
        if (!s && !d)
            break;
        if (!s) {
            char *w = join(cur_prefix(&D), jstr(d, "field"));
            if (json_is_true(json_object_get(d, "field_exists")))
                report(c, VMS_COMPAT_INFO, 12, w,
                       "NEW may read this extra field (decided by field_exists at run time)");
            else
                report(c, VMS_COMPAT_ERROR, 11, w,
                       "NEW reads this field from a stream of version %lld but OLD does not "
                       "send it (added without a version bump%s)",
                       (long long)(nested ? dver : sver),
                       nested ? "; a nested struct loads with NEW's own version" : "");
            free(w);
            cur_next(&D);
            continue;
        }
        const char *sn = jstr(s, "field");
        char *w = join(cur_prefix(&S), sn);
        if (!d) {
            report(c, VMS_COMPAT_ERROR, 6, w, "OLD sends this field but NEW has no further fields");
            free(w);
            break;
        }
        const char *dn = jstr(d, "field");
        if (strcmp(sn, dn) != 0) {
            bool ok = true;
            if (strcmp(sn, "unused") == 0 && strcmp(dn, "unused") != 0)
                ok = absorb_unused(c, &S, s, &D, w);
            else if (strcmp(dn, "unused") == 0 && strcmp(sn, "unused") != 0)
                ok = absorb_unused(c, &D, d, &S, w);
            else if (first_field_is(d, sn) && cur_enter(&D, d))
                ok = true;
            else if (first_field_is(s, dn) && cur_enter(&S, s))
                ok = true;
            else if (later_in_frame(&D, sn)) {
                char *dw = join(cur_prefix(&D), dn);
                report(c, VMS_COMPAT_ERROR, 11, dw,
                       "NEW reads this field before \"%s\" but OLD does not send it "
                       "(inserted without a version bump)", sn);
                free(dw);
                cur_next(&D);
            } else {
                json_t *h = hidden_in_frame(&D, sn);
                if (h)
                    report(c, VMS_COMPAT_ERROR, 5, w,
                           "NEW reads this field only from version %lld, OLD sends it at "
                           "version %lld",
                           (long long)jint(h, "version_id", 0), (long long)(nested ? dver : sver));
                else
                    report(c, VMS_COMPAT_ERROR, 5, w,
                           "expected field \"%s\", NEW has \"%s\" here; skipping the rest", sn,
                           dn);
                ok = false;
            }
            free(w);
            if (!ok)
                break;
            continue;
        }
        check_exists_change(c, s, d, w, sver, down);
        json_t *sd = json_object_get(s, "Description");
        json_t *dd = json_object_get(d, "Description");
        if (!sd) {
            json_int_t ss = jint(s, "size", 0), ds = jint(d, "size", 0);
            if (ss != ds && strcmp(sn, "unused") == 0)
                report(c, VMS_COMPAT_ERROR, 7, w,
                       "unused size mismatch: %lld bytes of padding in OLD, %lld in NEW",
                       (long long)ss, (long long)ds);
            else if (ss != ds)
                report(c, VMS_COMPAT_ERROR, 8, w, "size mismatch: %lld bytes in OLD, %lld in NEW",
                       (long long)ss, (long long)ds);
        } else if (!dd) {
            report(c, VMS_COMPAT_ERROR, 9, w, "struct field lost its description in NEW");
        } else {
            compare_desc(c, sd, dd, w, true, depth + 1);
        }
        free(w);
        cur_next(&S);
        cur_next(&D);
    }
    cur_free(&S);
    cur_free(&D);
}

/* name -> subsection of a "Subsections" list (names are unique: checked
 * by validate_desc), so matching two lists is linear. */
static json_t *index_subs(json_t *subs)
{
    json_t *ix = json_object();
    size_t i;
    json_t *x;
    json_array_foreach(subs, i, x)
    {
        json_object_set(ix, jstr(x, "name"), x);
    }
    return ix;
}

/* `where`: path of the field holding this description ("" at the top). */
static void compare_desc(Ctx *c, json_t *s, json_t *d, const char *where, bool nested, int depth)
{
    if (depth > 64)
        return;
    const char *sname = jstr(s, "name"), *dname = jstr(d, "name");
    if (depth > 0) { /* the top description's version is the section's */
        char *what = mig_strdup_printf("description \"%s\"", sname);
        check_version(c, s, d, where, what);
        free(what);
    }
    if (strcmp(sname, dname) != 0) {
        report(c, VMS_COMPAT_ERROR, 3, where, "description \"%s\" in OLD is \"%s\" in NEW",
               sname, dname);
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(s, key, v)
    {
        if (!json_object_get(d, key))
            report(c, VMS_COMPAT_ERROR, 4, where, "description \"%s\": entry \"%s\" missing in NEW",
                   sname, key);
    }
    json_t *sf = json_object_get(s, "Fields"), *df = json_object_get(d, "Fields");
    if (sf && df) {
        json_int_t sv = jint(s, "version_id", 0), dv = jint(d, "version_id", 0);
        compare_fields(c, sf, df, sv, nested ? dv : sv, dv, where, nested, depth);
    }
    json_t *ss = json_object_get(s, "Subsections"), *ds = json_object_get(d, "Subsections");
    json_t *six = index_subs(ss), *dix = index_subs(ds);
    size_t i;
    json_t *x;
    json_array_foreach(ss, i, x)
    {
        const char *n = jstr(x, "name");
        char *w = join(where, n);
        json_t *y = json_object_get(dix, n);
        if (!y)
            report(c, VMS_COMPAT_ERROR, 10, w, "subsection not found in NEW");
        else
            compare_desc(c, x, y, w, nested, depth + 1);
        free(w);
    }
    json_array_foreach(ds, i, x)
    {
        const char *n = jstr(x, "name");
        if (json_object_get(six, n))
            continue;
        char *w = join(where, n);
        report(c, VMS_COMPAT_INFO, 12, w,
               "new subsection in NEW (fine: OLD never sends it; NEW's pre_load must set its "
               "defaults)");
        free(w);
    }
    json_decref(six);
    json_decref(dix);
}

/* Section renames QEMU's checker tolerates (the wire does not carry class
 * names, only idstr, which stayed the same). */
static const char *const renames[][2] = {
    {"ICH9 LPC", "ICH9-LPC"},
    {"e1000-82540em", "e1000"},
};

static json_t *find_section(json_t *doc, const char *key)
{
    json_t *v = json_object_get(doc, key);
    if (v)
        return v;
    for (size_t i = 0; i < MIG_ARRAY_SIZE(renames); i++) {
        if (strcmp(renames[i][0], key) == 0 && (v = json_object_get(doc, renames[i][1])))
            return v;
        if (strcmp(renames[i][1], key) == 0 && (v = json_object_get(doc, renames[i][0])))
            return v;
    }
    return NULL;
}

int vmstate_check_compat(json_t *old_dump, json_t *new_dump, VmsCompatCb cb, void *opaque,
                         MigErr **errp)
{
    int ret = validate_dump(old_dump, "OLD", errp);
    if (ret == 0)
        ret = validate_dump(new_dump, "NEW", errp);
    if (ret < 0)
        return ret;
    Ctx c = {.cb = cb, .opaque = opaque};
    const char *key;
    json_t *s;
    json_object_foreach(old_dump, key, s)
    {
        c.section = key;
        json_t *d = find_section(new_dump, key);
        if (strcmp(key, "vmschkmachine") == 0) {
            if (d && strcmp(jstr(s, "Name"), jstr(d, "Name")) != 0)
                report(&c, VMS_COMPAT_INFO, 12, "",
                       "machine types differ: \"%s\" and \"%s\" (the dump is per device class, "
                       "machine compat properties are not checked)",
                       jstr(s, "Name"), jstr(d, "Name"));
            continue;
        }
        if (!d) {
            report(&c, VMS_COMPAT_ERROR, 1, "", "section does not exist in NEW");
            continue;
        }
        check_version(&c, s, d, "", "section");
        const char *ekey;
        json_t *v;
        json_object_foreach(s, ekey, v)
        {
            if (!json_object_get(d, ekey))
                report(&c, VMS_COMPAT_ERROR, 4, "", "entry \"%s\" missing in NEW", ekey);
        }
        json_t *sd = json_object_get(s, "Description"), *dd = json_object_get(d, "Description");
        if (sd && dd)
            compare_desc(&c, sd, dd, "", false, 0);
    }
    json_object_foreach(new_dump, key, s)
    {
        if (find_section(old_dump, key))
            continue;
        c.section = key;
        report(&c, VMS_COMPAT_INFO, 12, "", "new section in NEW");
    }
    return c.errors;
}
