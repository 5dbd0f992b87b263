/*
 * test-pageflip.c - localhost migration with page flipping (seed 002): two
 * machines on the epoll loop over a socketpair, the pipe fd handed over
 * after the setup HOOK record, pages moved through the pipe (RAM digest and
 * the workload oracle equal, the socket carrying < 1% of RAM), the
 * negotiation with a release that lacks x-page-flip, unix: source with an
 * fd: destination, transports that cannot pass fds, and HOOK records loaded
 * without the capability.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "machine/machine.h"
#include "ram/ram.h"
#include "stream/ram-format.h"
#include "workload/workload.h"

#define MIB ((uint64_t)1 << 20)
#define FLIP MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP)

typedef struct Pair {
    MigLoop *loop;
    MigMachine *src, *dst;
    MigWorkload *w;
} Pair;

/* Both machines on one epoll loop.  known_*: what each release offers
 * (0 = everything this build supports); want: what management asks for,
 * cut down to what both offer (seed 004's rule). */
static void pair_setup(Pair *p, uint64_t ram, uint64_t dirty_rate, MigCapMask known_src,
                       MigCapMask known_dst, MigCapMask want)
{
    memset(p, 0, sizeof(*p));
    p->loop = mig_loop_epoll_new(0xf11b);
    assert_non_null(p->loop);
    MigErr *err = NULL;
    MigMachineOptions so = {.name = "src", .ram_size = ram, .caps_known = known_src};
    MigMachineOptions dopt = {.name = "dst", .ram_size = ram, .incoming = true,
                              .caps_known = known_dst};
    p->src = mig_machine_new(p->loop, &so, &err);
    p->dst = mig_machine_new(p->loop, &dopt, &err);
    assert_non_null(p->src);
    assert_non_null(p->dst);
    MigWorkloadOptions wo = {.seed = 7, .fill = MIG_WORKLOAD_FILL_RANDOM,
                             .dirty_rate = dirty_rate};
    p->w = mig_workload_new(p->src, &wo, &err);
    assert_non_null(p->w);
    MigMigration *sm = mig_machine_migration(p->src), *dm = mig_machine_migration(p->dst);
    MigCapMask caps = want & mig_caps_intersect(mig_migration_caps_known(sm),
                                                mig_migration_caps_known(dm));
    assert_int_equal(mig_migration_set_caps(sm, want, caps, NULL), 0);
    assert_int_equal(mig_migration_set_caps(dm, want, caps, NULL), 0);
    MigParamsSet ps = {.has_max_bandwidth = true, .p.max_bandwidth = 0};
    assert_int_equal(mig_migration_set_params(sm, &ps, NULL), 0);
}

static bool both_done(void *opaque)
{
    Pair *p = opaque;
    return mig_status_is_terminal(mig_migration_status(mig_machine_migration(p->src))) &&
           mig_status_is_terminal(mig_migration_status(mig_machine_migration(p->dst)));
}

/* Migrate over a socketpair: the source end is a "unix" transport, the
 * destination end `dst_kind` ("unix" or "fd"). */
static void pair_migrate(Pair *p, const char *dst_kind)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    MigTransport *a = mig_transport_fd_new(p->loop, sv[0], "unix");
    MigTransport *b = mig_transport_fd_new(p->loop, sv[1], dst_kind);
    MigErr *err = NULL;
    assert_int_equal(mig_machine_incoming_transport(p->dst, b, &err), 0);
    if (mig_machine_migrate_transport(p->src, a, &err))
        fail_msg("migrate: %s", err ? err->msg : "?");
    uint64_t deadline = mig_loop_now_ns(p->loop) + 120ull * 1000000000ull;
    int rc = mig_loop_run_until(p->loop, both_done, p, deadline);
    if (rc)
        fail_msg("run_until %d: %s / %s", rc, mig_migration_error(mig_machine_migration(p->src)),
                 mig_migration_error(mig_machine_migration(p->dst)));
}

static void pair_free(Pair *p)
{
    mig_workload_free(p->w);
    mig_machine_free(p->src);
    mig_machine_free(p->dst);
    mig_loop_free(p->loop);
}

/* Completed both ways, memory equal page by page and by digest. */
static void assert_migrated(Pair *p)
{
    MigMigration *sm = mig_machine_migration(p->src), *dm = mig_machine_migration(p->dst);
    assert_string_equal(mig_migration_error(sm), "");
    assert_string_equal(mig_migration_error(dm), "");
    assert_int_equal(mig_migration_status(sm), MIG_STATUS_COMPLETED);
    assert_int_equal(mig_migration_status(dm), MIG_STATUS_COMPLETED);
    MigErr *err = NULL;
    if (mig_workload_verify(p->w, mig_machine_ram(p->dst), &err))
        fail_msg("%s", err->msg);
    char d1[65], d2[65];
    mig_machine_ram_digest(p->src, d1);
    mig_machine_ram_digest(p->dst, d2);
    assert_string_equal(d1, d2);
}

static void test_pageflip_pages_go_through_the_pipe(void **state)
{
    Pair p;
    pair_setup(&p, 64 * MIB, 3000, 0, 0, FLIP);
    assert_true(mig_migration_caps(mig_machine_migration(p.src)) & FLIP);
    pair_migrate(&p, "unix");
    assert_migrated(&p);
    MigInfo si;
    mig_machine_query_migrate(p.src, &si);
    /* Every non-zero page went through the pipe: the stream carried 8-byte
     * addresses, far below 1% of RAM, yet every page arrived (the digests
     * above). */
    assert_true(si.ram.normal >= 64 * MIB / 4096 - si.ram.duplicate);
    assert_true(si.ram.transferred < si.ram.total / 100);
    pair_free(&p);
}

static void test_pageflip_off_sends_pages_on_the_socket(void **state)
{
    Pair p;
    pair_setup(&p, 16 * MIB, 0, 0, 0, 0);
    pair_migrate(&p, "unix");
    assert_migrated(&p);
    MigInfo si;
    mig_machine_query_migrate(p.src, &si);
    assert_true(si.ram.transferred > si.ram.total / 2);
    pair_free(&p);
}

static void test_pageflip_older_destination_negotiates_it_off(void **state)
{
    /* The destination's release does not know x-page-flip: the intersection
     * leaves it off, and the migration runs as a plain stream. */
    MigCapMask older = mig_caps_supported() & ~FLIP;
    Pair p;
    pair_setup(&p, 16 * MIB, 2000, 0, older, FLIP);
    assert_true(mig_migration_caps_known(mig_machine_migration(p.src)) & FLIP);
    assert_false(mig_migration_caps(mig_machine_migration(p.src)) & FLIP);
    pair_migrate(&p, "unix");
    assert_migrated(&p);
    MigInfo si;
    mig_machine_query_migrate(p.src, &si);
    assert_true(si.ram.transferred > si.ram.total / 2);
    pair_free(&p);
}

static void test_pageflip_unix_source_fd_destination(void **state)
{
    Pair p;
    pair_setup(&p, 16 * MIB, 2000, 0, 0, 0);
    pair_migrate(&p, "fd");
    assert_migrated(&p);
    pair_free(&p);
}

static void test_pageflip_refused_without_fd_passing(void **state)
{
    Pair p;
    pair_setup(&p, 4 * MIB, 0, 0, 0, FLIP);
    char digest[65], after[65];
    mig_machine_ram_digest(p.src, digest);
    /* file: cannot pass fds. */
    char path[] = "/tmp/test-pageflip-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    MigErr *err = NULL;
    MigTransport *t = mig_transport_file_open(p.loop, path, true, &err);
    assert_non_null(t);
    assert_int_equal(mig_machine_migrate_transport(p.src, t, &err), -ENOTSUP);
    assert_non_null(err);
    assert_non_null(strstr(err->msg, "'x-page-flip'"));
    assert_non_null(strstr(err->msg, "'file' transport"));
    mig_err_free(err);
    err = NULL;
    unlink(path);
    /* Nor can a pipe handed in as fd:. */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    t = mig_transport_fd_new(p.loop, pfd[1], "fd");
    assert_int_equal(mig_machine_migrate_transport(p.src, t, &err), -ENOTSUP);
    assert_non_null(strstr(err->msg, "'fd' transport"));
    mig_err_free(err);
    close(pfd[0]);
    /* The source did not move. */
    assert_true(mig_machine_running(p.src));
    mig_machine_ram_digest(p.src, after);
    assert_string_equal(digest, after);
    pair_free(&p);
}

/* A RAM payload: MEM_SIZE for one 64 KiB block "pc.ram", then a HOOK. */
static uint8_t *hook_payload(size_t *len)
{
    MigStream *w = mig_stream_new_mem_writer();
    MigRamWriter rw;
    mig_ram_writer_init(&rw);
    MigRamBlockInfo b = {.name = "pc.ram", .length = 64 * 1024};
    mig_ram_put_mem_size(w, &rw, &b, 1, false);
    mig_ram_put_hook(w);
    mig_ram_put_eos(w);
    const uint8_t *d = mig_stream_mem_data(w, len);
    uint8_t *copy = malloc(*len);
    memcpy(copy, d, *len);
    mig_stream_free(w);
    return copy;
}

static const MigSaveEntry *ram_entry(MigSavevm *sv)
{
    for (size_t i = 0; i < mig_savevm_count(sv); i++)
        if (strcmp(mig_savevm_entry(sv, i)->idstr, "ram") == 0)
            return mig_savevm_entry(sv, i);
    return NULL;
}

static void test_pageflip_hook_without_capability_fails(void **state)
{
    MigLoop *loop = mig_loop_epoll_new(1);
    MigMachineOptions o = {.name = "dst", .ram_size = 64 * 1024, .incoming = true};
    MigMachine *m = mig_machine_new(loop, &o, NULL);
    assert_non_null(m);
    const MigSaveEntry *e = ram_entry(mig_machine_savevm(m));
    assert_non_null(e);
    size_t len;
    uint8_t *buf = hook_payload(&len);
    /* The expected bytes: be64 MEM_SIZE total|0x04, "pc.ram", be64 length,
     * then the HOOK record, then EOS. */
    static const uint8_t head[] = {0, 0, 0, 0, 0, 1, 0, 0x04, 6, 'p', 'c', '.', 'r', 'a', 'm',
                                   0, 0, 0, 0, 0, 1, 0, 0};
    static const uint8_t tail[] = {0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x10};
    assert_int_equal(len, sizeof(head) + sizeof(tail));
    assert_memory_equal(buf, head, sizeof(head));
    assert_memory_equal(buf + sizeof(head), tail, sizeof(tail));
    MigSectionHeader h = {.type = MIG_SECTION_START, .version_id = 4};
    /* Every truncation is an error, never a load; the whole payload names
     * the record, its offset and the capability. */
    for (size_t cut = 0; cut <= len; cut++) {
        MigStream *s = mig_stream_new_mem_reader(buf, cut);
        MigErr *err = NULL;
        assert_int_equal(e->iter->load_setup(e->opaque, NULL), 0);
        int rc = e->iter->load_state(e->opaque, s, &h, &err);
        assert_true(rc < 0);
        assert_non_null(err);
        if (cut >= sizeof(head) + 8) {
            assert_int_equal(rc, -EINVAL);
            assert_non_null(strstr(err->msg, "RAM hook record"));
            assert_non_null(strstr(err->msg, "offset 23"));
            assert_non_null(strstr(err->msg, "'x-page-flip' is not enabled"));
        }
        mig_err_free(err);
        e->iter->load_cleanup(e->opaque, MIG_OUTCOME_FAILED);
        mig_stream_free(s);
    }
    free(buf);
    mig_machine_free(m);
    mig_loop_free(loop);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pageflip_pages_go_through_the_pipe),
        cmocka_unit_test(test_pageflip_off_sends_pages_on_the_socket),
        cmocka_unit_test(test_pageflip_older_destination_negotiates_it_off),
        cmocka_unit_test(test_pageflip_unix_source_fd_destination),
        cmocka_unit_test(test_pageflip_refused_without_fd_passing),
        cmocka_unit_test(test_pageflip_hook_without_capability_fails),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
