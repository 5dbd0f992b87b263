/*
 * framing.c - stream v3 framing: file header, configuration, section
 * headers and footers, EOF, VMDESCRIPTION (docs/protocol-qemu-stream.md
 * sections 2-4 and 8).
 *
 * Byte-exact to QEMU 7.2 (migration/savevm.c) and with its error texts, so
 * a person comparing our messages with QEMU's sees the same words; we add
 * the stream offset.  Getters build their result in a local and copy it out
 * only on success, so a failed or starved call leaves the caller's struct
 * unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include "stream.h"

#define CONFIG_VMSD "configuration"
#define CONFIG_SUB_CAPS "configuration/capabilities"
#define CONFIG_SUB_PAGE_BITS "configuration/target-page-bits"
#define CONFIG_SUB_UUID "configuration/uuid"
/* Each configuration subsection is at version 1 (minimum 1) in QEMU 7.2. */
#define CONFIG_SUB_VERSION 1u

const char *mig_section_type_name(uint8_t type)
{
    switch (type) {
    case MIG_SECTION_EOF: return "eof";
    case MIG_SECTION_START: return "start";
    case MIG_SECTION_PART: return "part";
    case MIG_SECTION_END: return "end";
    case MIG_SECTION_FULL: return "full";
    case MIG_SECTION_SUBSECTION: return "subsection";
    case MIG_SECTION_VMDESCRIPTION: return "vmdescription";
    case MIG_SECTION_CONFIGURATION: return "configuration";
    case MIG_SECTION_COMMAND: return "command";
    case MIG_SECTION_FOOTER: return "footer";
    }
    return NULL;
}

/* ---------------------------------------------------------------- writers */

void mig_stream_put_file_header(MigStream *s)
{
    mig_stream_put_be32(s, MIG_STREAM_MAGIC);
    mig_stream_put_be32(s, MIG_STREAM_VERSION);
}

void mig_stream_put_configuration(MigStream *s, const char *machine, const char *const *caps,
                                  size_t ncaps)
{
    size_t len = strlen(machine);
    mig_stream_put_u8(s, MIG_SECTION_CONFIGURATION);
    mig_stream_put_be32(s, (uint32_t)len);
    mig_stream_put_buffer(s, machine, len);
    if (ncaps == 0)
        return;
    mig_stream_put_u8(s, MIG_SECTION_SUBSECTION);
    mig_stream_put_counted(s, CONFIG_SUB_CAPS);
    mig_stream_put_be32(s, CONFIG_SUB_VERSION);
    mig_stream_put_be32(s, (uint32_t)ncaps);
    for (size_t i = 0; i < ncaps; i++)
        mig_stream_put_counted(s, caps[i]);
}

void mig_stream_put_section_header(MigStream *s, const MigSectionHeader *h)
{
    switch (h->type) {
    case MIG_SECTION_START:
    case MIG_SECTION_FULL:
        mig_stream_put_u8(s, h->type);
        mig_stream_put_be32(s, h->section_id);
        mig_stream_put_counted(s, h->idstr);
        mig_stream_put_be32(s, h->instance_id);
        mig_stream_put_be32(s, h->version_id);
        break;
    case MIG_SECTION_PART:
    case MIG_SECTION_END:
        mig_stream_put_u8(s, h->type);
        mig_stream_put_be32(s, h->section_id);
        break;
    default:
        mig_stream_set_error(s, -EINVAL, "section header of type %u is not a section",
                             h->type);
    }
}

void mig_stream_put_section_footer(MigStream *s, uint32_t section_id)
{
    mig_stream_put_u8(s, MIG_SECTION_FOOTER);
    mig_stream_put_be32(s, section_id);
}

void mig_stream_put_eof(MigStream *s)
{
    mig_stream_put_u8(s, MIG_SECTION_EOF);
}

void mig_stream_put_vmdesc(MigStream *s, const char *json, size_t len)
{
    if (len > MIG_STREAM_VMDESC_MAX) {
        mig_stream_set_error(s, -EINVAL, "VMDESCRIPTION of %zu bytes is too large", len);
        return;
    }
    mig_stream_put_u8(s, MIG_SECTION_VMDESCRIPTION);
    mig_stream_put_be32(s, (uint32_t)len);
    mig_stream_put_buffer(s, json, len);
}

/* ---------------------------------------------------------------- getters */

int mig_stream_get_file_header(MigStream *s, MigErr **errp)
{
    uint64_t at = mig_stream_offset(s);
    uint32_t magic = mig_stream_get_be32(s);
    int r = mig_stream_result(s, errp);
    if (r)
        return r;
    if (magic != MIG_STREAM_MAGIC)
        return mig_stream_fail(s, errp, -EINVAL, at, "Not a migration stream (magic 0x%08x)",
                               magic);
    uint32_t version = mig_stream_get_be32(s);
    r = mig_stream_result(s, errp);
    if (r)
        return r;
    if (version == 2)
        return mig_stream_fail(s, errp, -ENOTSUP, at + 4,
                               "SaveVM v2 format is obsolete (stream version 2)");
    if (version != MIG_STREAM_VERSION)
        return mig_stream_fail(s, errp, -ENOTSUP, at + 4,
                               "Unsupported migration stream version %u", version);
    return 0;
}

/* Is a subsection of vmsd `parent` next?  QEMU's peek rules (section 5):
 * 0x05, then a length that can hold "<parent>/", then a name starting with
 * the parent's.  Returns 1 yes, 0 no, -EAGAIN starved. */
static int subsection_next(MigStream *s, const char *parent, char name[256], size_t *namelen)
{
    int b = mig_stream_peek_u8(s, 0);
    if (b != MIG_SECTION_SUBSECTION)
        return b < 0 && mig_stream_starved(s) ? -EAGAIN : 0;
    /* 0x05 is no section type either, so a stream that ends inside the
     * name is truncated whoever reads it next: say so here. */
    int len = mig_stream_peek_u8(s, 1);
    if (len < 0) {
        if (mig_stream_starved(s))
            return -EAGAIN;
        mig_stream_skip(s, 2);
        return mig_stream_error(s);
    }
    if ((size_t)len < strlen(parent) + 1)
        return 0;
    if (mig_stream_peek(s, name, (size_t)len, 2) != (size_t)len) {
        if (mig_stream_starved(s))
            return -EAGAIN;
        mig_stream_skip(s, 2 + (size_t)len);
        return mig_stream_error(s);
    }
    name[len] = '\0';
    *namelen = (size_t)len;
    return strncmp(name, parent, strlen(parent)) == 0 ? 1 : 0;
}

int mig_stream_get_configuration(MigStream *s, MigStreamConfig *cfg, MigErr **errp)
{
    MigStreamConfig c;
    memset(&c, 0, sizeof(c));
    uint64_t at = mig_stream_offset(s);
    uint8_t type = mig_stream_get_u8(s);
    int r = mig_stream_result(s, errp);
    if (r)
        return r;
    if (type != MIG_SECTION_CONFIGURATION)
        return mig_stream_fail(s, errp, -EINVAL, at, "Configuration section missing");
    uint32_t len = mig_stream_get_be32(s);
    if (!mig_stream_error(s) && len >= sizeof(c.machine))
        return mig_stream_fail(s, errp, -EINVAL, at + 1, "Machine type name too long");
    mig_stream_get_buffer(s, c.machine, len);
    c.machine[len] = '\0';
    if ((r = mig_stream_result(s, errp)))
        return r;
    if (memchr(c.machine, '\0', len))
        return mig_stream_fail(s, errp, -EINVAL, at + 5, "Machine type name contains a NUL byte");

    char name[256];
    size_t namelen = 0;
    while ((r = subsection_next(s, CONFIG_VMSD, name, &namelen)) == 1) {
        uint64_t sub_at = mig_stream_offset(s);
        mig_stream_skip(s, 2 + namelen);
        uint32_t version = mig_stream_get_be32(s);
        if ((r = mig_stream_result(s, errp)))
            return r;
        if (strcmp(name, CONFIG_SUB_CAPS) && strcmp(name, CONFIG_SUB_PAGE_BITS) &&
            strcmp(name, CONFIG_SUB_UUID)) {
            char esc[MIG_STREAM_ESCAPED_MAX];
            return mig_stream_fail(s, errp, -ENOENT, sub_at,
                                   "Unknown subsection '%s' in configuration",
                                   mig_stream_escape(name, namelen, esc, sizeof(esc)));
        }
        if (version != CONFIG_SUB_VERSION)
            return mig_stream_fail(s, errp, -EINVAL, sub_at,
                                   "%s: unsupported version %u (expected %u)", name, version,
                                   CONFIG_SUB_VERSION);
        if (!strcmp(name, CONFIG_SUB_CAPS)) {
            uint64_t count_at = mig_stream_offset(s);
            uint32_t count = mig_stream_get_be32(s);
            if (!mig_stream_error(s) && !mig_stream_starved(s) &&
                count > MIG_ARRAY_SIZE(c.caps))
                return mig_stream_fail(s, errp, -EINVAL, count_at,
                                       "Too many capabilities in configuration");
            for (uint32_t i = 0; i < count && !mig_stream_error(s); i++)
                mig_stream_get_counted(s, c.caps[i]);
            c.ncaps = count;
        } else if (!strcmp(name, CONFIG_SUB_PAGE_BITS)) {
            c.target_page_bits = mig_stream_get_be32(s);
        } else {
            mig_stream_get_buffer(s, c.uuid, sizeof(c.uuid));
            c.has_uuid = true;
        }
        if ((r = mig_stream_result(s, errp)))
            return r;
    }
    if (r < 0)
        return r == -EAGAIN ? r : mig_stream_result(s, errp);
    *cfg = c;
    return 0;
}

int mig_stream_get_section_header(MigStream *s, MigSectionHeader *h, MigErr **errp)
{
    MigSectionHeader x;
    memset(&x, 0, sizeof(x));
    size_t idlen = 0;
    x.offset = mig_stream_offset(s);
    x.type = mig_stream_get_u8(s);
    int r = mig_stream_result(s, errp);
    if (r)
        return r;
    switch (x.type) {
    case MIG_SECTION_START:
    case MIG_SECTION_FULL:
        x.section_id = mig_stream_get_be32(s);
        idlen = mig_stream_get_counted(s, x.idstr);
        x.instance_id = mig_stream_get_be32(s);
        x.version_id = mig_stream_get_be32(s);
        break;
    case MIG_SECTION_PART:
    case MIG_SECTION_END:
        x.section_id = mig_stream_get_be32(s);
        break;
    case MIG_SECTION_EOF:
    case MIG_SECTION_COMMAND:
    case MIG_SECTION_VMDESCRIPTION:
        break;
    default:
        return mig_stream_fail(s, errp, -EPROTO, x.offset, "Unknown savevm section type %u",
                               x.type);
    }
    if ((r = mig_stream_result(s, errp)))
        return r;
    if (strlen(x.idstr) != idlen) {
        /* the name up to a little past its NUL: the message stays short
         * enough for an error buffer to keep its offset */
        size_t show = MIG_MIN(idlen, strlen(x.idstr) + 16);
        char esc[MIG_STREAM_ESCAPED_MAX], more[48] = "";
        if (show < idlen)
            snprintf(more, sizeof(more), "... (%u bytes)", (unsigned)idlen);
        return mig_stream_fail(s, errp, -EPROTO, x.offset + 5,
                               "section idstr \"%s\"%s contains a NUL byte",
                               mig_stream_escape(x.idstr, show, esc, sizeof(esc)), more);
    }
    *h = x;
    return 0;
}

int mig_stream_get_section_footer(MigStream *s, uint32_t section_id, const char *name,
                                  MigErr **errp)
{
    /* `name` may come from the wire (the analyzer passes idstrs). */
    char esc[MIG_STREAM_ESCAPED_MAX];
    name = mig_stream_escape(name, strlen(name), esc, sizeof(esc));
    uint64_t at = mig_stream_offset(s);
    uint8_t b = mig_stream_get_u8(s);
    int r = mig_stream_result(s, errp);
    if (r)
        return r;
    if (b != MIG_SECTION_FOOTER)
        return mig_stream_fail(s, errp, -EINVAL, at, "Missing section footer for %s", name);
    uint32_t id = mig_stream_get_be32(s);
    if ((r = mig_stream_result(s, errp)))
        return r;
    if (id != section_id)
        return mig_stream_fail(s, errp, -EINVAL, at + 1,
                               "Mismatched section id in footer for %s - read 0x%x expected 0x%x",
                               name, id, section_id);
    return 0;
}

int mig_stream_get_vmdesc(MigStream *s, char **json, size_t *len, MigErr **errp)
{
    uint64_t at = mig_stream_offset(s);
    uint32_t n = mig_stream_get_be32(s);
    int r = mig_stream_result(s, errp);
    if (r)
        return r;
    if (n > MIG_STREAM_VMDESC_MAX)
        return mig_stream_fail(s, errp, -EINVAL, at, "VMDESCRIPTION length too large");
    const void *p = mig_stream_get_view(s, n);
    if ((r = mig_stream_result(s, errp)))
        return r;
    char *j = malloc((size_t)n + 1);
    if (!j)
        return mig_err_set(errp, -ENOMEM, "no memory for a VMDESCRIPTION of %u bytes", n);
    memcpy(j, p, n);
    j[n] = '\0';
    *json = j;
    *len = n;
    return 0;
}

int mig_stream_get_command(MigStream *s, uint16_t *cmd, uint16_t *len, MigErr **errp)
{
    uint16_t c = mig_stream_get_be16(s);
    uint16_t l = mig_stream_get_be16(s);
    int r = mig_stream_result(s, errp);
    if (r)
        return r;
    *cmd = c;
    *len = l;
    return 0;
}
