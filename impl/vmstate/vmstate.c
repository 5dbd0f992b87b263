/*
 * vmstate.c - save/load visitors, the transactional snapshot and the
 * JSON describers (see vmstate.h for the wire layout and the subsection
 * ambiguity rules).
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "vmstate.h"

static const char *const type_names[VMS_TYPE__COUNT] = {
    [VMS_TYPE_U8] = "uint8",    [VMS_TYPE_U16] = "uint16",   [VMS_TYPE_U32] = "uint32",
    [VMS_TYPE_U64] = "uint64",  [VMS_TYPE_I8] = "int8",      [VMS_TYPE_I16] = "int16",
    [VMS_TYPE_I32] = "int32",   [VMS_TYPE_I64] = "int64",    [VMS_TYPE_BOOL] = "bool",
    [VMS_TYPE_BUFFER] = "buffer", [VMS_TYPE_UNUSED] = "unused_buffer",
    [VMS_TYPE_TIMER] = "timer", [VMS_TYPE_STRUCT] = "struct",
};

const char *vmstate_type_name(VmsType t)
{
    return (unsigned)t < VMS_TYPE__COUNT ? type_names[t] : "unknown";
}

static const char *const count_names[VMS_COUNT__COUNT] = {
    [VMS_COUNT_ONE] = "one",     [VMS_COUNT_FIXED] = "fixed", [VMS_COUNT_VAR8] = "var8",
    [VMS_COUNT_VAR16] = "var16", [VMS_COUNT_VAR32] = "var32",
};

const char *vmstate_count_name(VmsCount c)
{
    return (unsigned)c < VMS_COUNT__COUNT ? count_names[c] : "unknown";
}

/* Wire bytes of one integer element; 0 for the others. */
static size_t int_width(VmsType t)
{
    switch (t) {
    case VMS_TYPE_U8:
    case VMS_TYPE_I8:
    case VMS_TYPE_BOOL:
        return 1;
    case VMS_TYPE_U16:
    case VMS_TYPE_I16:
        return 2;
    case VMS_TYPE_U32:
    case VMS_TYPE_I32:
        return 4;
    case VMS_TYPE_U64:
    case VMS_TYPE_I64:
    case VMS_TYPE_TIMER:
        return 8;
    default:
        return 0;
    }
}

/* ---- the walk shared by save and load ---- */

/* A place in a saved buffer where a nested struct with subsections ended:
 * the bytes there must not spell one of its unsent subsections (rule 2). */
typedef struct AmbCheck {
    size_t pos;
    const VmsDescription *child;
    bool *sent; /* one per child subsection */
    char *path;
} AmbCheck;

typedef struct Walk {
    MigStream *s;
    const VmsDescription *top;
    char path[512];
    size_t plen;
    MigErr **errp;
    bool hooks;
    bool load; /* s is the incoming stream: errors say where in it */
    const VmsDescription *sent; /* load: what the sender writes with (top level) */
    uint64_t got;               /* load: the top level's subsections that arrived (bit = index) */
    AmbCheck *checks;
    size_t nchecks, capchecks;
} Walk;

static size_t path_push(Walk *w, const char *sep, const char *name, long index)
{
    size_t old = w->plen;
    int n;
    if (index >= 0)
        n = snprintf(w->path + w->plen, sizeof(w->path) - w->plen, "%s%s[%ld]",
                     w->plen ? sep : "", name, index);
    else
        n = snprintf(w->path + w->plen, sizeof(w->path) - w->plen, "%s%s", w->plen ? sep : "",
                     name);
    if (n > 0)
        w->plen = MIG_MIN(w->plen + (size_t)n, sizeof(w->path) - 1);
    return old;
}

static void path_pop(Walk *w, size_t old)
{
    w->plen = old;
    w->path[old] = '\0';
}

static int walk_fail(Walk *w, int code, const char *fmt, ...) MIG_PRINTF(3, 4);
static int walk_fail(Walk *w, int code, const char *fmt, ...)
{
    if (!w->errp || *w->errp)
        return code;
    va_list ap;
    va_start(ap, fmt);
    char *msg = mig_strdup_vprintf(fmt, ap);
    va_end(ap);
    /* a load error says where in the incoming stream, unless the message
     * does already (the stream's own errors name their offset).  Unlike
     * mig_stream_fail, a field that fails leaves the stream itself good: the
     * bytes were well formed, the value is what the device refuses. */
    char at[48] = "";
    if (w->load && !strstr(msg, "offset"))
        snprintf(at, sizeof(at), " (stream offset %llu)",
                 (unsigned long long)mig_stream_offset(w->s));
    if (w->plen)
        mig_err_set(w->errp, code, "%s: field %s: %s%s", w->top->name, w->path, msg, at);
    else
        mig_err_set(w->errp, code, "%s: %s%s", w->top->name, msg, at);
    free(msg);
    return code;
}

/* Turn the stream's sticky error (or starvation) into the walk's error. */
static int stream_check(Walk *w)
{
    int err = mig_stream_error(w->s);
    if (err)
        return walk_fail(w, err, "%s", mig_stream_error_msg(w->s));
    if (mig_stream_starved(w->s))
        return walk_fail(w, -EAGAIN, "stream starved at offset %llu",
                         (unsigned long long)mig_stream_offset(w->s));
    return 0;
}

static bool field_on_wire(const VmsField *f, void *obj, int version)
{
    if (f->field_exists)
        return f->field_exists(obj, version);
    return f->version_id <= version;
}

static uint32_t read_count(const VmsField *f, const void *obj)
{
    const uint8_t *p = (const uint8_t *)obj + f->count_offset;
    switch (f->count) {
    case VMS_COUNT_ONE:
        return 1;
    case VMS_COUNT_FIXED:
        return f->num;
    case VMS_COUNT_VAR8:
        return *p;
    case VMS_COUNT_VAR16: {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case VMS_COUNT_VAR32: {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    default:
        return 0;
    }
}

/* Element base of a field (follows a pointer member); NULL when the pointer
 * is NULL. */
static uint8_t *field_base(const VmsField *f, void *obj)
{
    uint8_t *base = (uint8_t *)obj + f->offset;
    if (f->pointer) {
        void *p;
        memcpy(&p, base, sizeof(p));
        return p;
    }
    return base;
}

/* Description bugs the visitors refuse instead of corrupting memory. */
static int check_field_decl(Walk *w, const VmsField *f)
{
    size_t width = int_width(f->type);
    if ((unsigned)f->type >= VMS_TYPE__COUNT)
        return walk_fail(w, -EINVAL, "bad field declaration: type %d", (int)f->type);
    if ((unsigned)f->count >= VMS_COUNT__COUNT)
        return walk_fail(w, -EINVAL, "bad field declaration: count kind %d", (int)f->count);
    if (width && f->size != width)
        return walk_fail(w, -EINVAL, "member is %zu bytes but %s needs %zu", f->size,
                         vmstate_type_name(f->type), width);
    if (f->type == VMS_TYPE_STRUCT && !f->vmsd)
        return walk_fail(w, -EINVAL, "struct field without a description");
    return 0;
}

/* Declaration checks, element count and base of a field; errors name the
 * field.  A count above capacity is `count_err` (a bug when saving, bad input
 * when loading: the count came from the stream). */
static int field_prepare(Walk *w, const VmsField *f, void *obj, int count_err, uint32_t *n,
                         uint8_t **base)
{
    size_t old = path_push(w, ".", f->name ? f->name : "?", -1);
    int ret = check_field_decl(w, f);
    if (ret == 0) {
        *n = read_count(f, obj);
        *base = f->type == VMS_TYPE_UNUSED ? NULL : field_base(f, obj);
        if (f->count >= VMS_COUNT_VAR8 && *n > f->num)
            ret = walk_fail(w, count_err, "count %u exceeds capacity %u", *n, f->num);
        else if (f->type != VMS_TYPE_UNUSED && !*base && *n)
            ret = walk_fail(w, -EINVAL, "NULL pointer member");
    }
    path_pop(w, old);
    return ret;
}

static size_t count_subsections(const VmsDescription *d)
{
    size_t n = 0;
    if (d->subsections)
        while (d->subsections[n])
            n++;
    return n;
}

/* ---- save ---- */

static json_t *vmdesc_field_name(const VmsDescription *d, const VmsField *f)
{
    int total = 0, index = 0;
    for (const VmsField *g = d->fields; g->name; g++) {
        if (strcmp(g->name, f->name) == 0) {
            if (g == f)
                index = total;
            total++;
        }
    }
    if (total > 1) {
        char *s = mig_strdup_printf("%s[%d]", f->name, index);
        json_t *j = json_string(s);
        free(s);
        return j;
    }
    return json_string(f->name);
}

/* QEMU collapses an array into one vmdesc entry with array_len unless its
 * elements may differ in layout. */
static bool vmdesc_can_compress(const VmsField *f)
{
    if (f->field_exists)
        return false;
    if (f->type == VMS_TYPE_STRUCT) {
        if (count_subsections(f->vmsd))
            return false;
        for (const VmsField *g = f->vmsd->fields; g->name; g++)
            if (!vmdesc_can_compress(g))
                return false;
    }
    return true;
}

static int save_desc(Walk *w, const VmsDescription *d, void *obj, json_t *jd, bool *sent_out);

static int save_element(Walk *w, const VmsField *f, uint8_t *elem, json_t *jstruct)
{
    MigStream *s = w->s;
    switch (f->type) {
    case VMS_TYPE_U8:
    case VMS_TYPE_I8:
        mig_stream_put_u8(s, *elem);
        break;
    case VMS_TYPE_BOOL: {
        bool b;
        memcpy(&b, elem, 1);
        mig_stream_put_u8(s, b ? 1 : 0);
        break;
    }
    case VMS_TYPE_U16:
    case VMS_TYPE_I16: {
        uint16_t v;
        memcpy(&v, elem, 2);
        mig_stream_put_be16(s, v);
        break;
    }
    case VMS_TYPE_U32:
    case VMS_TYPE_I32: {
        uint32_t v;
        memcpy(&v, elem, 4);
        mig_stream_put_be32(s, v);
        break;
    }
    case VMS_TYPE_U64:
    case VMS_TYPE_I64:
    case VMS_TYPE_TIMER: {
        uint64_t v;
        memcpy(&v, elem, 8);
        mig_stream_put_be64(s, v);
        break;
    }
    case VMS_TYPE_BUFFER:
        mig_stream_put_buffer(s, elem, f->size);
        break;
    case VMS_TYPE_UNUSED: {
        static const uint8_t zeros[256];
        for (size_t left = f->size; left;) {
            size_t n = MIG_MIN(left, sizeof(zeros));
            mig_stream_put_buffer(s, zeros, n);
            left -= n;
        }
        break;
    }
    case VMS_TYPE_STRUCT: {
        size_t nsub = count_subsections(f->vmsd);
        bool *sent = nsub ? mig_malloc0(nsub * sizeof(bool)) : NULL;
        int ret = save_desc(w, f->vmsd, elem, jstruct, sent);
        if (ret < 0 || !nsub) {
            free(sent);
            return ret;
        }
        MIG_GROW(w->checks, w->capchecks, w->nchecks + 1, 8);
        w->checks[w->nchecks++] = (AmbCheck){
            .pos = (size_t)mig_stream_offset(s),
            .child = f->vmsd,
            .sent = sent,
            .path = mig_strdup(w->path),
        };
        return 0;
    }
    default:
        return walk_fail(w, -EINVAL, "bad field type");
    }
    return stream_check(w);
}

static int save_field(Walk *w, const VmsDescription *d, const VmsField *f, void *obj,
                      json_t *jfields)
{
    uint32_t n = 0;
    uint8_t *base = NULL;
    int ret = field_prepare(w, f, obj, -EINVAL, &n, &base);
    if (ret < 0)
        return ret;
    bool array = f->count != VMS_COUNT_ONE;
    bool compress = vmdesc_can_compress(f);
    for (uint32_t i = 0; i < n; i++) {
        size_t old = path_push(w, ".", f->name, array ? (long)i : -1);
        json_t *jf = NULL, *jstruct = NULL;
        if (jfields && (i == 0 || !compress)) {
            jf = json_object();
            json_object_set_new(jf, "name", vmdesc_field_name(d, f));
            if (n > 1)
                json_object_set_new(jf, compress ? "array_len" : "index",
                                    json_integer(compress ? n : i));
            json_object_set_new(jf, "type", json_string(vmstate_type_name(f->type)));
            if (f->type == VMS_TYPE_STRUCT) {
                jstruct = json_object();
                json_object_set_new(jf, "struct", jstruct);
            }
        }
        uint64_t start = mig_stream_offset(w->s);
        ret = save_element(w, f, base ? base + (size_t)i * f->size : NULL, jstruct);
        if (jf) {
            json_object_set_new(jf, "size", json_integer((json_int_t)(mig_stream_offset(w->s) - start)));
            json_array_append_new(jfields, jf);
        }
        path_pop(w, old);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* Fields, then needed subsections, of `d` at d->version_id.  `jd` (may be
 * NULL) receives vmsd_name/version/fields/subsections; `sent_out` (may be
 * NULL) marks which subsections went out. */
static int save_desc(Walk *w, const VmsDescription *d, void *obj, json_t *jd, bool *sent_out)
{
    int ret;
    if (w->hooks && d->pre_save && (ret = d->pre_save(obj)) < 0)
        return walk_fail(w, ret, "pre_save hook of %s failed", d->name);
    json_t *jfields = NULL;
    if (jd) {
        json_object_set_new(jd, "vmsd_name", json_string(d->name));
        json_object_set_new(jd, "version", json_integer(d->version_id));
        jfields = json_array();
        json_object_set_new(jd, "fields", jfields);
    }
    for (const VmsField *f = d->fields; f && f->name; f++) {
        if (!field_on_wire(f, obj, d->version_id))
            continue;
        if ((ret = save_field(w, d, f, obj, jfields)) < 0)
            return ret;
    }
    json_t *jsubs = NULL;
    for (size_t i = 0; d->subsections && d->subsections[i]; i++) {
        const VmsDescription *sub = d->subsections[i];
        if (sub->needed && !sub->needed(obj))
            continue;
        /* stream damage, in a real save only (not the VMDESCRIPTION's
         * describe walk, which has jd): the subsection is left out */
        if (!jd && w->hooks && d == w->top && sub->needed &&
            mig_fault_fire(MIG_FAULT_VMSTATE_OMIT_SUBSECTION))
            continue;
        if (strlen(sub->name) > 255)
            return walk_fail(w, -EINVAL, "subsection name %s is too long", sub->name);
        mig_stream_put_u8(w->s, MIG_SECTION_SUBSECTION);
        mig_stream_put_counted(w->s, sub->name);
        mig_stream_put_be32(w->s, (uint32_t)sub->version_id);
        json_t *jsub = NULL;
        if (jd) {
            if (!jsubs) {
                jsubs = json_array();
                json_object_set_new(jd, "subsections", jsubs);
            }
            jsub = json_object();
            json_array_append_new(jsubs, jsub);
        }
        size_t old = path_push(w, ".", sub->name, -1);
        ret = save_desc(w, sub, obj, jsub, NULL);
        path_pop(w, old);
        if (ret < 0)
            return ret;
        if (sent_out)
            sent_out[i] = true;
    }
    return stream_check(w);
}

static void walk_free_checks(Walk *w)
{
    for (size_t i = 0; i < w->nchecks; i++) {
        free(w->checks[i].sent);
        free(w->checks[i].path);
    }
    free(w->checks);
    w->checks = NULL;
    w->nchecks = w->capchecks = 0;
}

/* Rule 2 of the ambiguity fix: no nested struct may be followed by bytes
 * that spell one of its declared, unsent subsections. */
static int check_ambiguity(Walk *w, const uint8_t *data, size_t len)
{
    for (size_t c = 0; c < w->nchecks; c++) {
        const AmbCheck *a = &w->checks[c];
        if (a->pos + 2 > len || data[a->pos] != MIG_SECTION_SUBSECTION)
            continue;
        size_t nlen = data[a->pos + 1];
        if (a->pos + 2 + nlen > len)
            continue;
        for (size_t i = 0; a->child->subsections[i]; i++) {
            const char *name = a->child->subsections[i]->name;
            if (!a->sent[i] && strlen(name) == nlen &&
                memcmp(data + a->pos + 2, name, nlen) == 0) {
                w->plen = 0;
                w->path[0] = '\0';
                return walk_fail(w, -EPROTO,
                                 "field %s: the bytes after it at offset %zu spell its "
                                 "subsection %s; refusing an ambiguous stream",
                                 a->path, a->pos, name);
            }
        }
    }
    return 0;
}

int vmstate_save(MigStream *s, const VmsDescription *desc, void *obj, MigErr **errp)
{
    MIG_FAULT_RETURN_ERR(MIG_FAULT_VMSTATE_SAVE, errp, "%s: injected fault mig/vmstate/save",
                         desc->name);
    if (mig_stream_error(s))
        return mig_stream_take_error(s, errp);
    MigStream *mem = mig_stream_new_mem_writer();
    Walk w = {.s = mem, .top = desc, .errp = errp, .hooks = true};
    int ret = save_desc(&w, desc, obj, NULL, NULL);
    if (ret == 0) {
        size_t len = 0;
        const uint8_t *data = mig_stream_mem_data(mem, &len);
        ret = check_ambiguity(&w, data, len);
        if (ret == 0) {
            mig_stream_put_buffer(s, data, len);
            ret = mig_stream_error(s);
            if (ret)
                mig_err_set(errp, ret, "%s: %s", desc->name, mig_stream_error_msg(s));
        }
    }
    walk_free_checks(&w);
    mig_stream_free(mem);
    return ret;
}

json_t *vmstate_describe_vmdesc(const VmsDescription *desc, void *obj, const char *idstr,
                                uint32_t instance_id)
{
    MigStream *mem = mig_stream_new_mem_writer();
    Walk w = {.s = mem, .top = desc, .hooks = false};
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(idstr ? idstr : desc->name));
    json_object_set_new(j, "instance_id", json_integer(instance_id));
    int ret = save_desc(&w, desc, obj, j, NULL);
    walk_free_checks(&w);
    mig_stream_free(mem);
    if (ret < 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- snapshot for transactional load ---- */

typedef struct Snap {
    MigBuf b;
    size_t pos; /* restore: next byte to give back */
    bool restore;
} Snap;

static void snap_bytes(Snap *sn, void *p, size_t n)
{
    if (!n)
        return;
    if (sn->restore) {
        memcpy(p, sn->b.data + sn->pos, n);
        sn->pos += n;
        return;
    }
    mig_buf_append(&sn->b, p, n);
}

/* Every byte a load of `d` may write, in a fixed order (depth 16 bounds
 * recursive descriptions, which the visitors never produce). */
static void snap_desc(Snap *sn, const VmsDescription *d, void *obj, int depth)
{
    if (depth > 16)
        return;
    for (const VmsField *f = d->fields; f && f->name; f++) {
        if (f->type == VMS_TYPE_UNUSED || (unsigned)f->type >= VMS_TYPE__COUNT)
            continue;
        uint8_t *base = field_base(f, obj);
        if (!base)
            continue;
        size_t cap = f->count == VMS_COUNT_ONE ? 1 : f->num;
        if (f->type == VMS_TYPE_STRUCT && f->vmsd) {
            for (size_t i = 0; i < cap; i++)
                snap_desc(sn, f->vmsd, base + i * f->size, depth + 1);
        } else {
            snap_bytes(sn, base, cap * f->size);
        }
    }
    for (size_t i = 0; d->subsections && d->subsections[i]; i++)
        snap_desc(sn, d->subsections[i], obj, depth + 1);
}

/* ---- load ---- */

static int load_desc(Walk *w, const VmsDescription *d, void *obj, int version, bool nested);

/* The version window (QEMU's): above the local version -EINVAL, below the
 * local minimum -ENOTSUP. */
static int check_version(Walk *w, const VmsDescription *d, int version, bool sub)
{
    const char *what = sub ? "subsection " : "";
    const char *name = sub ? d->name : "";
    const char *sep = sub ? ": " : "";
    if (version > d->version_id)
        return walk_fail(w, -EINVAL, "%s%s%sincoming version %d is too new for local version %d",
                         what, name, sep, version, d->version_id);
    if (version < d->minimum_version_id)
        return walk_fail(w, -ENOTSUP,
                         "%s%s%sincoming version %d is too old for local minimum version %d",
                         what, name, sep, version, d->minimum_version_id);
    return 0;
}

static int load_element(Walk *w, const VmsField *f, uint8_t *elem)
{
    MigStream *s = w->s;
    uint64_t at = mig_stream_offset(s);
    switch (f->type) {
    case VMS_TYPE_U8:
    case VMS_TYPE_I8:
        *elem = mig_stream_get_u8(s);
        break;
    case VMS_TYPE_BOOL: {
        uint8_t v = mig_stream_get_u8(s);
        int ret = stream_check(w);
        if (ret < 0)
            return ret;
        if (v > 1)
            return walk_fail(w, -EPROTO, "invalid bool value %u at offset %llu", v,
                             (unsigned long long)at);
        bool b = v;
        memcpy(elem, &b, 1);
        break;
    }
    case VMS_TYPE_U16:
    case VMS_TYPE_I16: {
        uint16_t v = mig_stream_get_be16(s);
        memcpy(elem, &v, 2);
        break;
    }
    case VMS_TYPE_U32:
    case VMS_TYPE_I32: {
        uint32_t v = mig_stream_get_be32(s);
        memcpy(elem, &v, 4);
        break;
    }
    case VMS_TYPE_U64:
    case VMS_TYPE_I64:
    case VMS_TYPE_TIMER: {
        uint64_t v = mig_stream_get_be64(s);
        memcpy(elem, &v, 8);
        break;
    }
    case VMS_TYPE_BUFFER:
        mig_stream_get_buffer(s, elem, f->size);
        break;
    case VMS_TYPE_UNUSED: {
        uint8_t junk[256];
        for (size_t left = f->size; left && !mig_stream_error(s) && !mig_stream_starved(s);) {
            size_t n = MIG_MIN(left, sizeof(junk));
            mig_stream_get_buffer(s, junk, n);
            left -= n;
        }
        break;
    }
    case VMS_TYPE_STRUCT:
        /* A nested struct loads with the child's current version. */
        return load_desc(w, f->vmsd, elem, f->vmsd->version_id, true);
    default:
        return walk_fail(w, -EINVAL, "bad field type");
    }
    return stream_check(w);
}

static int load_field(Walk *w, const VmsField *f, void *obj)
{
    uint32_t n = 0;
    uint8_t *base = NULL;
    int ret = field_prepare(w, f, obj, -EPROTO, &n, &base);
    if (ret < 0)
        return ret;
    bool array = f->count != VMS_COUNT_ONE;
    for (uint32_t i = 0; i < n; i++) {
        size_t old = path_push(w, ".", f->name, array ? (long)i : -1);
        ret = load_element(w, f, base ? base + (size_t)i * f->size : NULL);
        path_pop(w, old);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* Look at the next bytes for a subsection header of `d`.  Returns 1 and the
 * subsection index in *idx when one starts here, 0 when the bytes belong to
 * someone else, a negative errno on an unknown subsection or starvation. */
static int peek_subsection(Walk *w, const VmsDescription *d, bool nested, const bool *loaded,
                           size_t *idx)
{
    MigStream *s = w->s;
    int b = mig_stream_peek_u8(s, 0);
    if (b < 0 && mig_stream_starved(s))
        return walk_fail(w, -EAGAIN, "stream starved at offset %llu looking for subsections",
                         (unsigned long long)mig_stream_offset(s));
    if (b != MIG_SECTION_SUBSECTION)
        return 0;
    int len = mig_stream_peek_u8(s, 1);
    if (len < 0 && mig_stream_starved(s))
        return walk_fail(w, -EAGAIN, "stream starved at offset %llu looking for subsections",
                         (unsigned long long)mig_stream_offset(s));
    size_t plen = strlen(d->name);
    if (len < 0 || (size_t)len < plen + 1)
        return 0;
    char name[256];
    size_t got = mig_stream_peek(s, name, (size_t)len, 2);
    if (got < (size_t)len) {
        if (mig_stream_starved(s))
            return walk_fail(w, -EAGAIN, "stream starved at offset %llu looking for subsections",
                             (unsigned long long)mig_stream_offset(s));
        return 0;
    }
    name[len] = '\0';
    for (size_t i = 0; d->subsections && d->subsections[i]; i++) {
        if (strcmp(d->subsections[i]->name, name) == 0) {
            if (nested && loaded[i])
                return 0;
            *idx = i;
            return 1;
        }
    }
    /* Not declared.  Nested: the bytes are the parent's (rule 1).  Top level:
     * QEMU's prefix rule, and a "<name>..." we do not know is fatal. */
    if (nested || strncmp(name, d->name, plen) != 0)
        return 0;
    char esc[MIG_STREAM_ESCAPED_MAX];
    return walk_fail(w, -ENOENT, "unknown subsection %s at offset %llu",
                     mig_stream_escape(name, (size_t)len, esc, sizeof(esc)),
                     (unsigned long long)mig_stream_offset(s));
}

static int load_desc(Walk *w, const VmsDescription *d, void *obj, int version, bool nested)
{
    int ret;
    if (w->hooks && d->pre_load && (ret = d->pre_load(obj)) < 0)
        return walk_fail(w, ret, "pre_load hook of %s failed", d->name);
    for (const VmsField *f = d->fields; f && f->name; f++) {
        if (!field_on_wire(f, obj, version))
            continue;
        if ((ret = load_field(w, f, obj)) < 0)
            return ret;
    }
    size_t nsub = count_subsections(d);
    bool loaded_small[32] = {false};
    bool *loaded = nsub > 32 ? mig_malloc0(nsub * sizeof(bool)) : loaded_small;
    for (;;) {
        size_t idx = 0;
        ret = peek_subsection(w, d, nested, loaded, &idx);
        if (ret <= 0)
            break;
        const VmsDescription *sub = d->subsections[idx];
        uint8_t hdr[2 + 255];
        mig_stream_get_buffer(w->s, hdr, 2 + strlen(sub->name));
        int subver = (int)mig_stream_get_be32(w->s);
        if (mig_stream_error(w->s) || mig_stream_starved(w->s)) {
            ret = mig_stream_error(w->s) ? mig_stream_error(w->s) : -EAGAIN;
            walk_fail(w, ret, "subsection %s: %s", sub->name,
                      mig_stream_error(w->s) ? mig_stream_error_msg(w->s) : "stream starved");
            break;
        }
        ret = check_version(w, sub, subver, true);
        if (ret < 0)
            break;
        size_t old = path_push(w, ".", sub->name, -1);
        ret = load_desc(w, sub, obj, subver, nested);
        path_pop(w, old);
        if (ret < 0)
            break;
        loaded[idx] = true;
    }
    /* the sender's always-written subsections must all have come */
    for (size_t k = 0; ret >= 0 && d == w->top && w->sent && w->sent->subsections &&
                       w->sent->subsections[k];
         k++) {
        const VmsDescription *want = w->sent->subsections[k];
        for (size_t i = 0; !want->needed && i < nsub; i++)
            if (!loaded[i] && strcmp(d->subsections[i]->name, want->name) == 0) {
                ret = walk_fail(w, -EPROTO,
                                "subsection %s, which the sender always writes, is missing at "
                                "offset %llu",
                                want->name, (unsigned long long)mig_stream_offset(w->s));
                break;
            }
    }
    if (d == w->top && !nested)
        for (size_t i = 0; i < nsub && i < 64; i++)
            if (loaded[i])
                w->got |= 1ull << i;
    if (loaded != loaded_small)
        free(loaded);
    if (ret < 0)
        return ret;
    if (w->hooks && d->post_load && (ret = d->post_load(obj, version)) < 0)
        return walk_fail(w, ret, "post_load hook of %s failed", d->name);
    return 0;
}

int vmstate_load(MigStream *s, const VmsDescription *desc, void *obj, int version_id,
                 MigErr **errp)
{
    return vmstate_load_sent(s, desc, NULL, obj, version_id, errp);
}

int vmstate_load_sent(MigStream *s, const VmsDescription *desc, const VmsDescription *sent,
                      void *obj, int version_id, MigErr **errp)
{
    return vmstate_load_logged(s, desc, sent, obj, version_id, NULL, errp);
}

int vmstate_subsection_index(const VmsDescription *desc, const char *name)
{
    for (size_t i = 0; desc->subsections && desc->subsections[i] && i < 64; i++)
        if (!strcmp(desc->subsections[i]->name, name))
            return (int)i;
    return -1;
}

int vmstate_load_logged(MigStream *s, const VmsDescription *desc, const VmsDescription *sent,
                        void *obj, int version_id, uint64_t *got, MigErr **errp)
{
    MIG_FAULT_RETURN_ERR(MIG_FAULT_VMSTATE_LOAD, errp, "%s: injected fault mig/vmstate/load",
                         desc->name);
    if (mig_stream_error(s))
        return mig_stream_take_error(s, errp);
    Snap sn = {0};
    snap_desc(&sn, desc, obj, 0);
    Walk w = {.s = s, .top = desc, .errp = errp, .hooks = true, .load = true,
              .sent = sent};
    int ret = check_version(&w, desc, version_id, false);
    if (ret == 0)
        ret = load_desc(&w, desc, obj, version_id, false);
    if (ret == 0 && got)
        *got = w.got;
    if (ret < 0) {
        sn.restore = true;
        sn.pos = 0;
        snap_desc(&sn, desc, obj, 0);
    }
    mig_buf_free(&sn.b);
    return ret;
}

/* ---- -dump-vmstate shape ---- */

json_t *vmstate_describe_dump_desc(const VmsDescription *d)
{
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(d->name));
    json_object_set_new(j, "version_id", json_integer(d->version_id));
    json_object_set_new(j, "minimum_version_id", json_integer(d->minimum_version_id));
    json_t *fields = json_array();
    for (const VmsField *f = d->fields; f && f->name; f++) {
        json_t *jf = json_object();
        json_object_set_new(jf, "field", json_string(f->name));
        json_object_set_new(jf, "version_id", json_integer(f->version_id));
        json_object_set_new(jf, "field_exists", json_boolean(f->field_exists != NULL));
        json_object_set_new(jf, "size", json_integer((json_int_t)f->size));
        if (f->type == VMS_TYPE_STRUCT && f->vmsd)
            json_object_set_new(jf, "Description", vmstate_describe_dump_desc(f->vmsd));
        json_array_append_new(fields, jf);
    }
    json_object_set_new(j, "Fields", fields);
    if (count_subsections(d)) {
        json_t *subs = json_array();
        for (size_t i = 0; d->subsections[i]; i++)
            json_array_append_new(subs, vmstate_describe_dump_desc(d->subsections[i]));
        json_object_set_new(j, "Subsections", subs);
    }
    return j;
}

json_t *vmstate_describe_dump(const VmsDescription *d)
{
    json_t *j = json_object();
    json_object_set_new(j, "Name", json_string(d->name));
    json_object_set_new(j, "version_id", json_integer(d->version_id));
    json_object_set_new(j, "minimum_version_id", json_integer(d->minimum_version_id));
    json_object_set_new(j, "Description", vmstate_describe_dump_desc(d));
    return j;
}
