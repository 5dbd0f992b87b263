/*
 * test-report.c - the report module shared by `migcert run` and `migcert
 * certify` (harness/runner/report.h): the XML escaper on every byte value
 * and on broken UTF-8 (what it writes is XML 1.0 text, a control character
 * is shown as \xNN, never raw and never dropped), and a JUnit file written
 * from cases whose strings hold such bytes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runner/report.h"

static char *escaped(const char *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    report_xml_escape(f, s);
    fclose(f);
    return buf;
}

static void expect_escape(const char *in, const char *want)
{
    char *got = escaped(in);
    assert_string_equal(got, want);
    free(got);
}

static void test_report_xml_escape_markup_and_controls(void **state)
{
    (void)state;
    expect_escape("a<b>&\"c'", "a&lt;b&gt;&amp;&quot;c&apos;");
    /* tab, LF and CR are XML characters; the other C0 controls are not */
    expect_escape("x\ty\nz\r", "x\ty\nz\r");
    expect_escape("bell\a esc\x1b nul-free\x01", "bell\\x07 esc\\x1b nul-free\\x01");
    expect_escape(NULL, "");
}

static void test_report_xml_escape_every_byte_is_xml_text(void **state)
{
    (void)state;
    for (int b = 1; b < 256; b++) {
        char in[2] = {(char)b, 0};
        char *got = escaped(in);
        for (const unsigned char *p = (const unsigned char *)got; *p; p++)
            assert_true(*p >= 0x20 ? *p < 0x80 : (*p == '\t' || *p == '\n' || *p == '\r'));
        if (b < 0x20 && b != '\t' && b != '\n' && b != '\r') {
            char want[8];
            snprintf(want, sizeof(want), "\\x%02x", b);
            assert_string_equal(got, want);
        }
        free(got);
    }
}

static void test_report_xml_escape_utf8_kept_broken_utf8_shown(void **state)
{
    (void)state;
    expect_escape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    expect_escape("\xc3", "\\xc3");               /* truncated */
    expect_escape("\xc0\xaf", "\\xc0\\xaf");      /* overlong */
    expect_escape("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* a surrogate */
    expect_escape("\xef\xbf\xbe", "\\xef\\xbf\\xbe"); /* U+FFFE */
    expect_escape("\xff", "\\xff");
}

static void test_report_junit_write_escapes_every_string(void **state)
{
    (void)state;
    char path[] = "/tmp/test-report-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    ReportCase cases[] = {
        {.classname = "c<1>", .name = "ok", .status = REPORT_PASS},
        {.classname = "c", .name = "bad\x07", .status = REPORT_FAIL, .message = "m\x01",
         .text = "REPRO: x\x02"},
        {.classname = "c", .name = "later", .status = REPORT_SKIP, .message = "not run\x03"},
    };
    MigErr *err = NULL;
    assert_int_equal(report_junit_write(path, "suite\x1f", cases, 3, &err), 0);
    FILE *f = fopen(path, "r");
    char buf[4096] = {0};
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    unlink(path);
    for (size_t i = 0; i < n; i++)
        assert_true((unsigned char)buf[i] >= 0x20 || buf[i] == '\n');
    assert_non_null(strstr(buf, "<testsuite name=\"suite\\x1f\" tests=\"3\" failures=\"1\" "
                                "skipped=\"1\">"));
    assert_non_null(strstr(buf, "<testcase classname=\"c&lt;1&gt;\" name=\"ok\"/>"));
    assert_non_null(strstr(buf, "<failure message=\"m\\x01\">REPRO: x\\x02</failure>"));
    assert_non_null(strstr(buf, "<skipped message=\"not run\\x03\"/>"));
}

static void test_report_junit_write_unwritable_path_says_which(void **state)
{
    (void)state;
    MigErr *err = NULL;
    assert_int_equal(report_junit_write("/nonexistent-dir/x.xml", "s", NULL, 0, &err), -ENOENT);
    assert_string_equal(err->msg,
                        "cannot create /nonexistent-dir/x.xml: No such file or directory");
    mig_err_free(err);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_xml_escape_markup_and_controls),
        cmocka_unit_test(test_report_xml_escape_every_byte_is_xml_text),
        cmocka_unit_test(test_report_xml_escape_utf8_kept_broken_utf8_shown),
        cmocka_unit_test(test_report_junit_write_escapes_every_string),
        cmocka_unit_test(test_report_junit_write_unwritable_path_says_which),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
