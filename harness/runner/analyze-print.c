/*
 * analyze-print.c - `migcert analyze` output: the analyzer's document as
 * text or JSON (see analyze-print.h).
 */
#include <stdio.h>

#include <jansson.h>

#include "analyze-print.h"

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

void analyze_print_text(FILE *out, const json_t *doc)
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

void analyze_print_json(FILE *out, const json_t *doc)
{
    json_dumpf(doc, out, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
}
