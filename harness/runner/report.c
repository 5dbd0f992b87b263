/*
 * report.c - the report files shared by `migcert run` and `migcert certify`
 * (report.h): the XML escaper, the JUnit writer and the JSON file writer.
 * Before this module each command had its own escaper: one dropped control
 * characters silently, the other wrote them raw (invalid XML 1.0, and a
 * CI parser then loses the whole file).  Now both show them as \xNN.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "report.h"

/* The length of the valid UTF-8 sequence at s holding a character XML 1.0
 * allows (U+0080 and up: no surrogates, no U+FFFE/U+FFFF, at most
 * U+10FFFF, no overlong form), or 0. */
static size_t xml_utf8_len(const unsigned char *s)
{
    size_t len;
    uint32_t cp, min;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2, cp = s[0] & 0x1f, min = 0x80;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3, cp = s[0] & 0x0f, min = 0x800;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4, cp = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe ||
        cp == 0xffff)
        return 0;
    return len;
}

void report_xml_escape(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (p && *p) {
        switch (*p) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        case '\t':
        case '\n':
        case '\r':
            fputc(*p, f);
            break;
        default:
            if (*p >= 0x20 && *p < 0x80) {
                fputc(*p, f);
            } else if (*p >= 0x80 && xml_utf8_len(p)) {
                size_t len = xml_utf8_len(p);
                fwrite(p, 1, len, f);
                p += len;
                continue;
            } else {
                fprintf(f, "\\x%02x", *p);
            }
        }
        p++;
    }
}

int report_file_open(const char *path, FILE **out, MigErr **errp)
{
    *out = fopen(path, "w");
    if (!*out) {
        int e = errno;
        return mig_err_set(errp, -e, "cannot create %s: %s", path, strerror(e));
    }
    return 0;
}

int report_file_close(FILE *f, const char *path, MigErr **errp)
{
    int bad = ferror(f);
    errno = 0;
    if (fclose(f) != 0 || bad) {
        int e = errno ? errno : EIO;
        return mig_err_set(errp, -e, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

int report_json_write(const char *path, const json_t *doc, size_t flags, MigErr **errp)
{
    errno = 0;
    if (json_dump_file(doc, path, flags) != 0) {
        int e = errno ? errno : EIO;
        return mig_err_set(errp, -e, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

int report_junit_write(const char *path, const char *suite, const ReportCase *cases, size_t n,
                       MigErr **errp)
{
    FILE *f;
    int rc = report_file_open(path, &f, errp);
    if (rc < 0)
        return rc;
    size_t count[REPORT__COUNT] = {0};
    for (size_t i = 0; i < n; i++)
        count[cases[i].status]++;
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"", f);
    report_xml_escape(f, suite);
    fprintf(f, "\" tests=\"%zu\" failures=\"%zu\" skipped=\"%zu\">\n", n, count[REPORT_FAIL],
            count[REPORT_SKIP]);
    for (size_t i = 0; i < n; i++) {
        const ReportCase *c = &cases[i];
        fputs("  <testcase classname=\"", f);
        report_xml_escape(f, c->classname);
        fputs("\" name=\"", f);
        report_xml_escape(f, c->name);
        fputs("\"", f);
        if (c->status == REPORT_PASS) {
            fputs("/>\n", f);
            continue;
        }
        fputs(c->status == REPORT_SKIP ? ">\n    <skipped message=\""
                                       : ">\n    <failure message=\"",
              f);
        report_xml_escape(f, c->message);
        if (c->status == REPORT_SKIP) {
            fputs("\"/>\n", f);
        } else {
            fputs("\">", f);
            report_xml_escape(f, c->text);
            fputs("</failure>\n", f);
        }
        fputs("  </testcase>\n", f);
    }
    fputs("</testsuite>\n</testsuites>\n", f);
    return report_file_close(f, path, errp);
}
