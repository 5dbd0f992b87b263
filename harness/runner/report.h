/*
 * report.h - the report files the commands share: `migcert run --json/--junit`
 * (cmd-run.c) and `migcert certify`'s certificate (certify-report.c).
 *
 * Owns the one XML escaper and the one JUnit writer, so what one command
 * learns about XML (XML 1.0 forbids most control characters, even escaped
 * as &#N;) the other knows too, and the JSON file writer with its error
 * message.  Every writer returns 0 or a negative errno with "cannot create
 * PATH: why" / "cannot write PATH: why" in *errp.
 *
 * Invariant: what report_xml_escape writes is well-formed XML 1.0 character
 * data or attribute text in UTF-8 for any input bytes: < > & " ' become
 * entities; tab, LF and CR stay; any other control character, a byte that
 * is not part of valid UTF-8, and U+FFFE / U+FFFF are written visibly as
 * the four characters \xNN (one per byte), never raw and never dropped.
 */
#ifndef MIGCERT_REPORT_H
#define MIGCERT_REPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "common/common.h"

/* Writes s (NULL: nothing) escaped for XML text or a quoted attribute. */
void report_xml_escape(FILE *f, const char *s);

/* *out = fopen(path, "w"); 0, or -errno with "cannot create PATH: why". */
int report_file_open(const char *path, FILE **out, MigErr **errp);

/* fclose(f), which fails when any write to f failed ("cannot write PATH:
 * why"); returns 0 or -errno. */
int report_file_close(FILE *f, const char *path, MigErr **errp);

/* Writes doc to path (jansson flags, e.g. JSON_INDENT(2)); 0 or -errno. */
int report_json_write(const char *path, const json_t *doc, size_t flags, MigErr **errp);

typedef enum ReportStatus {
    REPORT_PASS,
    REPORT_FAIL,
    REPORT_SKIP, /* skipped or not run: <skipped message=.../> */
    REPORT__COUNT
} ReportStatus;

/* One <testcase>.  The strings are copied out while writing. */
typedef struct ReportCase {
    const char *classname; /* "certify.good", "scenarios.precopy" */
    const char *name;
    ReportStatus status;
    const char *message; /* the failure's or the skip's message attribute */
    const char *text;    /* the failure's body (NULL: none) */
} ReportCase;

/* Writes a JUnit XML file: one <testsuite name="suite"> holding the cases,
 * with tests/failures/skipped counted from them.  Returns 0 or -errno. */
int report_junit_write(const char *path, const char *suite, const ReportCase *cases, size_t n,
                       MigErr **errp);

#endif
