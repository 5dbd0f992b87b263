/*
 * test-run-timeline.c - what `migcert run --json` keeps of a case's trace
 * for the report (harness/runner/run-timeline.h) and how it shows progress
 * (run-progress.h): the SPICE traffic left out but the migration handshake
 * kept, the channels the source linked listed once and sorted, a long trace
 * cut with its end kept and the cut said, a malformed line skipped; on a
 * terminal one line rewritten in place with a failure kept above it, plain
 * lines otherwise, one summary line at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runner/run-progress.h"
#include "runner/run-timeline.h"

static json_t *timeline(const char *text, json_t **chans)
{
    return run_timeline_json(text, strlen(text), chans);
}

static void test_run_timeline_keeps_events_drops_spice_traffic(void **state)
{
    (void)state;
    const char *trace =
        "t=0 harness: step 1: migrate\n"
        "t=5 src.spice: linked MAIN:0 for session 1 (mini header)\n"
        "t=5 src.spice: linked DISPLAY:0 for session 1 (mini header)\n"
        "t=6 src.spice.main0: send MAIN_INIT serial 1 size 32\n"
        "t=7 client.MAIN0: recv MAIN_MIGRATE_BEGIN serial 5 size 24\n"
        "t=8 src.spice: linked MAIN:0 for session 2 (mini header)\n"
        "t=8 src.spice: linked DISPLAY:1 for session 2 (mini header)\n"
        "garbage without a time\n"
        "t=9 src: pass 1 done: sent 4096 bytes, 1 pages dirtied, pending 0 bytes\n"
        "t=10 harness: outcome completed";
    json_t *chans = NULL;
    json_t *tl = timeline(trace, &chans);
    assert_int_equal(json_array_size(tl), 8);
    /* the MIGRATE message is kept, MAIN_INIT is not */
    assert_string_equal(json_string_value(json_array_get(json_array_get(tl, 3), 2)),
                        "recv MAIN_MIGRATE_BEGIN serial 5 size 24");
    json_t *last = json_array_get(tl, 7);
    assert_int_equal(json_integer_value(json_array_get(last, 0)), 10);
    assert_string_equal(json_string_value(json_array_get(last, 1)), "harness");
    assert_string_equal(json_string_value(json_array_get(last, 2)), "outcome completed");
    /* once each; a second head keeps its id */
    assert_int_equal(json_array_size(chans), 3);
    assert_string_equal(json_string_value(json_array_get(chans, 0)), "DISPLAY");
    assert_string_equal(json_string_value(json_array_get(chans, 1)), "DISPLAY:1");
    assert_string_equal(json_string_value(json_array_get(chans, 2)), "MAIN");
    json_decref(tl);
    json_decref(chans);
}

/* The SPICE oracle's verdicts by the channel names spice_channels uses:
 * every channel with its verdict, the reason only for those not passed. */
static void test_run_timeline_spice_verdicts_by_channel_name(void **state)
{
    (void)state;
    RunResult *r = calloc(1, sizeof(*r));
    r->spice[0] = (ExecSpiceChannel){.type = 1, .id = 0, .verdict = EXEC_CHANNEL_PASSED};
    r->spice[1] = (ExecSpiceChannel){.type = 2, .id = 1, .verdict = EXEC_CHANNEL_FAILED, .why = "screen differs"};
    r->spice[2] = (ExecSpiceChannel){.type = 2, .id = 0, .verdict = EXEC_CHANNEL_NOT_JUDGED, .why = "no screen"};
    r->nspice = 3;
    json_t *errors = NULL;
    json_t *v = run_spice_verdicts_json(r, &errors);
    char *a = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT), *b = json_dumps(errors, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(a, "{\"DISPLAY\":\"not judged\",\"DISPLAY:1\":\"failed\",\"MAIN\":\"passed\"}");
    assert_string_equal(b, "{\"DISPLAY\":\"no screen\",\"DISPLAY:1\":\"screen differs\"}");
    free(a);
    free(b);
    json_decref(v);
    json_decref(errors);
    r->nspice = 0; /* no verdicts: empty objects (cmd-run.c then writes none) */
    v = run_spice_verdicts_json(r, &errors);
    assert_int_equal(json_object_size(v), 0);
    assert_int_equal(json_object_size(errors), 0);
    json_decref(v);
    json_decref(errors);
    free(r);
}

static void test_run_timeline_cuts_a_long_trace_keeping_its_end(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    for (int i = 0; i < 1000; i++)
        fprintf(f, "t=%d src: event %d\n", i, i);
    fclose(f);
    json_t *chans = NULL;
    json_t *tl = run_timeline_json(buf, len, &chans);
    assert_int_equal(json_array_size(tl), RUN_TIMELINE_MAX);
    size_t head = RUN_TIMELINE_MAX * 2 / 3;
    assert_string_equal(json_string_value(json_array_get(json_array_get(tl, head), 2)),
                        "timeline: 701 event(s) left out");
    json_t *last = json_array_get(tl, RUN_TIMELINE_MAX - 1);
    assert_string_equal(json_string_value(json_array_get(last, 2)), "event 999");
    assert_int_equal(json_array_size(chans), 0);
    json_decref(tl);
    json_decref(chans);
    free(buf);
}

static void test_run_timeline_empty_trace(void **state)
{
    (void)state;
    json_t *chans = NULL;
    json_t *tl = run_timeline_json(NULL, 0, &chans);
    assert_int_equal(json_array_size(tl), 0);
    json_decref(tl);
    json_decref(chans);
}

static char *progress_output(const char *mode)
{
    setenv("MIGCERT_PROGRESS", mode, 1);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    RunProgress p;
    run_progress_init(&p, f, 3);
    run_progress_case(&p, false, "[1/3] PASS a");
    run_progress_case(&p, true, "[2/3] FAIL b");
    run_progress_case(&p, false, "[3/3] PASS c");
    run_progress_end(&p);
    fclose(f);
    unsetenv("MIGCERT_PROGRESS");
    return buf;
}

static void test_run_progress_plain_lines_off_a_terminal(void **state)
{
    (void)state;
    char *out = progress_output("plain");
    assert_non_null(strstr(out, "[1/3] PASS a\n[2/3] FAIL b\n[3/3] PASS c\n"));
    assert_null(strchr(out, '\r'));
    assert_non_null(strstr(out, "migcert run: 3 case(s), 2 passed, 1 failed in "));
    free(out);
}

static void test_run_progress_one_line_on_a_terminal(void **state)
{
    (void)state;
    char *out = progress_output("tty");
    /* passing cases only move the line; the failure stays above it */
    assert_null(strstr(out, "PASS a"));
    assert_non_null(strstr(out, "[2/3] FAIL b\n"));
    assert_non_null(strstr(out, "migcert run: 2/3 cases, 1 failed, "));
    assert_non_null(strstr(out, " left"));
    /* the summary replaces the progress line and ends the output */
    const char *sum = strstr(out, "\r\033[Kmigcert run: 3 case(s), 2 passed, 1 failed in ");
    assert_non_null(sum);
    assert_int_equal(out[strlen(out) - 1], '\n');
    assert_null(strchr(sum + 1, '\r'));
    free(out);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_timeline_keeps_events_drops_spice_traffic),
        cmocka_unit_test(test_run_timeline_spice_verdicts_by_channel_name),
        cmocka_unit_test(test_run_timeline_cuts_a_long_trace_keeping_its_end),
        cmocka_unit_test(test_run_timeline_empty_trace),
        cmocka_unit_test(test_run_progress_plain_lines_off_a_terminal),
        cmocka_unit_test(test_run_progress_one_line_on_a_terminal),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
