/*
 * test-scale.h - how many of its seeds, cases, offsets or bytes a heavy unit
 * test walks: all of them natively and under the sanitizers, fewer under
 * valgrind.
 *
 * Owns: test_scale_small() and TEST_SCALE(full, small).  Called by the unit
 * tests whose loops dominate the valgrind lane (ci/lane-full-valgrind, which
 * names them and says what each one shrinks).
 *
 * Why: valgrind runs a test 20-50 times slower than it runs natively, and
 * what it adds over the ASan+UBSan build of the same tests
 * (ci/lane-full-sanitizers, which runs the full counts) is reads of
 * uninitialised memory.  Walking each code path once finds those; the
 * hundredth seed or the thousandth cut offset through the same path does
 * not.  So under valgrind a test takes the smaller count or size, which
 * must still reach every branch the full one reaches and leave every
 * assertion of the test in place (a count that an assertion names, e.g.
 * "more than 600 cuts checked", is scaled with it).
 *
 * Invariants: the choice depends only on whether the process runs under
 * valgrind (RUNNING_ON_VALGRIND, a no-op instruction sequence natively) or
 * on MIGCERT_TEST_SCALE=full, which keeps the full counts under valgrind
 * too; never on time or load.  Without valgrind's header (not installed)
 * everything runs at full scale.
 */
#ifndef MIGCERT_TEST_SCALE_H
#define MIGCERT_TEST_SCALE_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* True when this run takes the small counts (under valgrind, unless
 * MIGCERT_TEST_SCALE=full). */
static inline bool test_scale_small(void)
{
    if (!RUNNING_ON_VALGRIND)
        return false;
    const char *e = getenv("MIGCERT_TEST_SCALE");
    return !(e && !strcmp(e, "full"));
}

/* `full` natively and under the sanitizers, `small` under valgrind. */
#define TEST_SCALE(full, small) (test_scale_small() ? (small) : (full))

#endif
