/*
 * test-common.c - errors and errno names, growable arrays and buffers, the
 * run's PRNG, the trace hash and the fault-point registry (impl/common).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#ifdef FIU_ENABLE
#include <fiu-control.h>
#endif

#include "common/buf.h"
#include "common/common.h"
#include "common/faults.h"
#include "common/prng.h"
#include "common/trace.h"

static void test_common_err_first_wins_and_context(void **state)
{
    (void)state;
    MigErr *err = NULL;
    assert_int_equal(mig_err_set(&err, -EPROTO, "field %s: stream ended at offset %d", "len", 4711),
                     -EPROTO);
    mig_err_set(&err, -EIO, "second error is dropped");
    mig_err_prepend(&err, "device %s", "fake-nic");
    assert_string_equal(err->msg, "device fake-nic: field len: stream ended at offset 4711");
    assert_int_equal(err->code, -EPROTO);
    mig_err_free(err);
    /* NULL errp: the caller does not care, and the code still comes back */
    assert_int_equal(mig_err_set(NULL, -EIO, "ignored"), -EIO);
}

static void test_common_errno_names_round_trip(void **state)
{
    (void)state;
    assert_string_equal(mig_errno_name(-EIO), "EIO");
    assert_string_equal(mig_errno_name(-ECANCELED), "ECANCELED");
    assert_int_equal(mig_errno_parse("ENOTSUP"), -ENOTSUP);
    assert_int_equal(mig_errno_parse("-5"), -5);
    assert_int_equal(mig_errno_parse("NOPE"), 0);
}

/* Every errno the project returns, or passes on from a system call where a
 * user can meet it, prints as its name and parses back (harness/pytest's
 * test_errno_names.py checks that code names no errno outside the table). */
static void test_common_errno_every_used_errno_has_a_name(void **state)
{
    (void)state;
    static const int used[] = {
        /* returned by the project's own code */
        E2BIG, EACCES, EAGAIN, EALREADY, EBADF, EBADMSG, EBUSY, ECANCELED, ECHILD,
        ECONNABORTED, ECONNREFUSED, ECONNRESET, EDEADLK, EEXIST, EFAULT, EFBIG, EHOSTUNREACH,
        EILSEQ, EINPROGRESS, EINTR, EINVAL, EIO, EISDIR, ELOOP, EMFILE, ENAMETOOLONG, ENFILE,
        ENODATA, ENODEV, ENOENT, ENOMEM, ENOMSG, ENOSPC, ENOSYS, ENOTCONN, ENOTSUP, ENOTTY,
        ENXIO, EOVERFLOW, EPERM, EPIPE, EPROTO, ERANGE, EROFS, ESHUTDOWN, ESPIPE, ESRCH, ETIME,
        ETIMEDOUT,
        /* passed on from open, bind, connect, splice, dlopen of a plugin */
        EADDRINUSE, EADDRNOTAVAIL, EAFNOSUPPORT, EDQUOT, EHOSTDOWN, EMSGSIZE, ENETDOWN,
        ENETUNREACH, ENOBUFS, ENOEXEC, ENOTDIR, ENOTEMPTY, ENOTSOCK, EPROTONOSUPPORT, ETXTBSY,
        EXDEV,
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(used); i++) {
        const char *name = mig_errno_name(-used[i]);
        assert_string_not_equal(name, "EUNKNOWN");
        assert_int_equal(mig_errno_parse(name), -used[i]);
    }
    assert_string_equal(mig_errno_name(-ELOOP), "ELOOP");
    assert_string_equal(mig_errno_name(-ENAMETOOLONG), "ENAMETOOLONG");
    /* one value, two names: the canonical one prints, both parse */
    assert_string_equal(mig_errno_name(-EWOULDBLOCK), "EAGAIN");
    assert_int_equal(mig_errno_parse("EWOULDBLOCK"), -EAGAIN);
    assert_string_equal(mig_errno_name(-EOPNOTSUPP), "ENOTSUP");
    assert_int_equal(mig_errno_parse("EOPNOTSUPP"), -ENOTSUP);
    assert_string_equal(mig_errno_name(-4095), "EUNKNOWN");
    assert_string_equal(mig_errno_name(0), "OK");
}

static void test_common_grow_doubles_and_keeps_contents(void **state)
{
    (void)state;
    int *v = NULL;
    size_t cap = 0;
    MIG_GROW(v, cap, 1, 8);
    assert_int_equal(cap, 8);
    for (int i = 0; i < 8; i++)
        v[i] = i;
    int *before = v;
    MIG_GROW(v, cap, 8, 8); /* enough room already: nothing moves */
    assert_ptr_equal(v, before);
    assert_int_equal(cap, 8);
    MIG_GROW(v, cap, 9, 8);
    assert_int_equal(cap, 16); /* doubles */
    MIG_GROW(v, cap, 100, 8);
    assert_int_equal(cap, 100); /* or jumps to what is asked */
    for (int i = 0; i < 8; i++)
        assert_int_equal(v[i], i);
    free(v);

    MigBuf b = {0};
    mig_buf_append(&b, "abc", 3);
    mig_buf_append(&b, NULL, 0);
    uint8_t *p = mig_buf_reserve(&b, 1000);
    assert_ptr_equal(p, b.data + 3);
    assert_true(b.cap >= 1003);
    memset(p, 'x', 1000);
    b.len += 1000;
    mig_buf_append(&b, "yz", 2);
    assert_int_equal(b.len, 1005);
    assert_memory_equal(b.data, "abcx", 4);
    assert_memory_equal(b.data + 1003, "yz", 2);
    mig_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len + b.cap, 0);
}

static void test_common_prng_same_seed_same_sequence(void **state)
{
    (void)state;
    MigPrng a, b, c;
    mig_prng_seed(&a, 0x5eed);
    mig_prng_seed(&b, 0x5eed);
    mig_prng_seed(&c, 0x5eee);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = mig_prng_next(&a);
        assert_int_equal(x, mig_prng_next(&b));
        differ += x != mig_prng_next(&c);
    }
    assert_true(differ > 990);
}

static void test_common_prng_below_stays_in_range(void **state)
{
    (void)state;
    MigPrng p;
    mig_prng_seed(&p, 1);
    unsigned seen[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint64_t v = mig_prng_below(&p, 7);
        assert_true(v < 7);
        seen[v]++;
    }
    for (int i = 0; i < 7; i++)
        assert_true(seen[i] > 800 && seen[i] < 1200);
    assert_int_equal(mig_prng_below(&p, 0), 0);
    double d = mig_prng_double(&p);
    assert_true(d >= 0.0 && d < 1.0);
}

static void test_common_trace_hash_depends_on_content(void **state)
{
    (void)state;
    MigTrace *a = mig_trace_new(), *b = mig_trace_new(), *c = mig_trace_new();
    char ha[65], hb[65], hc[65];
    mig_trace_log(a, 10, "src", "state %s -> %s", "none", "setup");
    mig_trace_log(b, 10, "src", "state %s -> %s", "none", "setup");
    mig_trace_log(c, 11, "src", "state %s -> %s", "none", "setup");
    mig_trace_hash(a, ha);
    mig_trace_hash(b, hb);
    mig_trace_hash(c, hc);
    assert_string_equal(ha, hb);
    assert_string_not_equal(ha, hc);
    assert_int_equal(strlen(ha), 64);
    assert_int_equal(mig_trace_count(a), 1);
    /* hashing is not destructive: more lines change it again */
    mig_trace_log(a, 12, "dst", "x");
    mig_trace_hash(a, hc);
    assert_string_not_equal(ha, hc);
    mig_trace_free(a);
    mig_trace_free(b);
    mig_trace_free(c);
}

/* The trace's line, as users read it (--trace) and as every recorded
 * trace hash was taken: "t=<ns> <who>: <body>\n", the prefix cut at 175
 * bytes and the body at 1023; mig_trace_msg writes the very line
 * mig_trace_log writes for its format. */
static char *echoed(void (*emit)(MigTrace *, uint64_t, const char *, const char *), uint64_t now,
                    const char *who, const char *name, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    MigTrace *t = mig_trace_new();
    mig_trace_set_echo(t, f);
    emit(t, now, who, name);
    mig_trace_free(t);
    fclose(f);
    return buf;
}

static void by_printf(MigTrace *t, uint64_t now, const char *who, const char *name)
{
    mig_trace_log(t, now, who, "%s %s serial %llu size %u", "recv", name, (unsigned long long)now, 4096u);
}

static void by_msg(MigTrace *t, uint64_t now, const char *who, const char *name)
{
    mig_trace_msg(t, now, who, "recv", name, now, 4096u);
}

static void test_common_trace_line_shape(void **state)
{
    (void)state;
    char who[300], name[1100];
    memset(who, 'w', sizeof(who) - 1);
    who[sizeof(who) - 1] = 0;
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = 0;
    const uint64_t nows[] = {0, 7, 1000000007ull, UINT64_MAX};
    const char *whos[] = {"src", who};
    const char *names[] = {"PING", name};
    for (size_t i = 0; i < MIG_ARRAY_SIZE(nows); i++)
        for (size_t j = 0; j < MIG_ARRAY_SIZE(whos); j++)
            for (size_t k = 0; k < MIG_ARRAY_SIZE(names); k++) {
                char want[1300], body[1100];
                int p = snprintf(want, 176, "t=%llu %s: ", (unsigned long long)nows[i], whos[j]);
                size_t len = MIG_MIN((size_t)p, 175);
                snprintf(body, 1024, "recv %s serial %llu size 4096", names[k], (unsigned long long)nows[i]);
                len += (size_t)snprintf(want + len, sizeof(want) - len, "%s\n", body);
                size_t la, lb;
                char *a = echoed(by_printf, nows[i], whos[j], names[k], &la);
                char *b = echoed(by_msg, nows[i], whos[j], names[k], &lb);
                assert_int_equal(la, len);
                assert_memory_equal(a, want, len);
                assert_int_equal(lb, len);
                assert_memory_equal(b, want, len);
                free(a);
                free(b);
            }
}

static void test_common_fault_registry_is_sorted_and_unique(void **state)
{
    (void)state;
    size_t n;
    const MigFaultInfo *t = mig_faults_table(&n);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(mig_faults_find(t[i].name));
        assert_true(t[i].err > 0);
        assert_true(strlen(t[i].sentence) > 10);
        /* <area>/<module>/<op>: at least two slashes, lower case */
        const char *s1 = strchr(t[i].name, '/');
        assert_non_null(s1);
        assert_non_null(strchr(s1 + 1, '/'));
        for (const char *p = t[i].name; *p; p++)
            assert_false(*p >= 'A' && *p <= 'Z');
        if (i > 0)
            assert_true(strcmp(t[i - 1].name, t[i].name) < 0);
    }
    assert_null(mig_faults_find("mig/nothing/here"));
}

/* The ids, names and errnos code uses are the table's, entry for entry. */
static void test_common_fault_ids_index_the_registry(void **state)
{
    (void)state;
    size_t n;
    const MigFaultInfo *t = mig_faults_table(&n);
    assert_int_equal(n, MIG_FAULT__COUNT);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(mig_fault_name((MigFaultId)i), t[i].name);
        assert_int_equal(mig_fault_errno((MigFaultId)i), t[i].err);
        assert_string_not_equal(mig_errno_name(-t[i].err), "EUNKNOWN");
    }
    assert_string_equal(mig_fault_name(MIG_FAULT_TRANSPORT_WRITE), "mig/transport/write");
    assert_int_equal(mig_fault_errno(MIG_FAULT_VMSTATE_LOAD), EINVAL);
}

/* A fired point injects its registered errno, or the one the harness chose
 * (libfiu's failnum); an idle point injects nothing. */
static void test_common_fault_fire_takes_the_errno_from_the_registry(void **state)
{
    (void)state;
    assert_int_equal(mig_fault_fire(MIG_FAULT_VMSTATE_LOAD), 0);
#ifdef FIU_ENABLE
    fiu_init(0);
    assert_int_equal(fiu_enable("mig/vmstate/load", 1, NULL, 0), 0);
    assert_int_equal(mig_fault_fire(MIG_FAULT_VMSTATE_LOAD), -EINVAL);
    assert_int_equal(mig_fault_fire(MIG_FAULT_VMSTATE_SAVE), 0);
    fiu_disable("mig/vmstate/load");
    assert_int_equal(fiu_enable("mig/transport/write", EPIPE, NULL, 0), 0);
    assert_int_equal(mig_fault_fire(MIG_FAULT_TRANSPORT_WRITE), -EPIPE);
    fiu_disable("mig/transport/write");
    assert_int_equal(mig_fault_fire(MIG_FAULT_TRANSPORT_WRITE), 0);
#endif
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_err_first_wins_and_context),
        cmocka_unit_test(test_common_errno_names_round_trip),
        cmocka_unit_test(test_common_errno_every_used_errno_has_a_name),
        cmocka_unit_test(test_common_grow_doubles_and_keeps_contents),
        cmocka_unit_test(test_common_prng_same_seed_same_sequence),
        cmocka_unit_test(test_common_prng_below_stays_in_range),
        cmocka_unit_test(test_common_trace_hash_depends_on_content),
        cmocka_unit_test(test_common_trace_line_shape),
        cmocka_unit_test(test_common_fault_registry_is_sorted_and_unique),
        cmocka_unit_test(test_common_fault_ids_index_the_registry),
        cmocka_unit_test(test_common_fault_fire_takes_the_errno_from_the_registry),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
