/*
 * test-ram-share.c - shared-memory migration (x-ram-share,
 * docs/protocol-qemu-stream.md section 14) in one process: fd passing in
 * stream order (mig_stream_put_fd / mig_stream_get_fd over a socketpair:
 * the fd rides on exactly its marker byte; none, or two, on the byte are
 * named errors), the destination's checks of the memfd it gets (a stream
 * made by hand: wrong size, sealed, not a memfd, a payload that ends before
 * the fd, a page record), each leaving the memfd's contents untouched, and
 * a whole migration between two machines on the epoll loop: no page in the
 * stream, equal digests, and the destination's writes visible to the
 * source's mapping.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "machine/machine.h"
#include "ram/ram.h"
#include "sim/migration-wait.h"
#include "stream/ram-format.h"
#include "stream/stream.h"
#include "workload/workload.h"

#define PAGES 16
#define LEN ((uint64_t)PAGES * 4096)
#define SHARE (MIG_CAP_BIT(MIG_CAP_X_RAM_SHARE) | MIG_CAP_BIT(MIG_CAP_RETURN_PATH))

static int memfd(uint64_t size, unsigned seals)
{
    int fd = memfd_create("test-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    for (uint64_t i = 0; i < size; i++)
        p[i] = (uint8_t)(i * 13 + 5);
    munmap(p, size);
    if (seals)
        assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
    return fd;
}

/* A byte-sum of the fd's contents: unchanged means nobody wrote it. */
static uint64_t fd_sum(int fd, uint64_t size)
{
    uint8_t *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    uint64_t s = 0;
    for (uint64_t i = 0; i < size; i++)
        s = s * 31 + p[i];
    munmap(p, size);
    return s;
}

static void test_ram_share_fd_rides_on_its_byte(void **state)
{
    MigLoop *loop = mig_loop_epoll_new(1);
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    MigTransport *a = mig_transport_fd_new(loop, sp[0], "unix");
    MigTransport *b = mig_transport_fd_new(loop, sp[1], "unix");
    MigStream *w = mig_stream_new_writer(a), *r = mig_stream_new_reader(b);
    int fd = memfd(4096, 0);
    mig_stream_put_be32(w, 0x11223344);
    mig_stream_put_fd(w, fd);
    mig_stream_put_be32(w, 0x55667788);
    mig_stream_put_u8(w, MIG_TRANSPORT_FD_MARKER); /* a marker without an fd */
    mig_stream_put_fd(w, fd);
    assert_int_equal(mig_stream_flush(w), 0);
    assert_int_equal(mig_stream_offset(w), 4 + 1 + 4 + 1 + 1);
    /* The second fd is sent as a second message: two fds on one byte need a
     * hand-made message (below). */
    MigErr *err = NULL;
    assert_int_equal(mig_stream_get_be32(r), 0x11223344);
    int got = mig_stream_get_fd(r, &err);
    assert_true(got >= 0);
    assert_int_equal(fd_sum(got, 4096), fd_sum(fd, 4096));
    close(got);
    assert_int_equal(mig_stream_get_be32(r), 0x55667788);
    assert_int_equal(mig_stream_get_fd(r, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "no fd came with the marker byte at offset 9"));
    mig_err_free(err);
    err = NULL;
    got = mig_stream_get_fd(r, &err);
    assert_true(got >= 0);
    close(got);
    /* Two fds on one byte. */
    union {
        char b[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    uint8_t m = MIG_TRANSPORT_FD_MARKER;
    struct iovec iov = {.iov_base = &m, .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                         .msg_controllen = sizeof(ctl.b)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(2 * sizeof(int));
    int two[2] = {fd, fd};
    memcpy(CMSG_DATA(c), two, sizeof(two));
    assert_int_equal(sendmsg(sp[0], &msg, 0), 1);
    assert_int_equal(mig_stream_get_fd(r, &err), -EEXIST);
    assert_non_null(strstr(err->msg, "more than one fd came with the marker byte at offset 11"));
    mig_err_free(err);
    /* A memory stream cannot carry fds: a sticky error, named. */
    MigStream *mw = mig_stream_new_mem_writer();
    mig_stream_put_fd(mw, fd);
    assert_int_equal(mig_stream_error(mw), -ENOTSUP);
    assert_non_null(strstr(mig_stream_error_msg(mw), "'memory' stream cannot carry fds"));
    mig_stream_free(mw);
    close(fd);
    mig_stream_free(w);
    mig_stream_free(r);
    mig_transport_close(a);
    mig_transport_close(b);
    mig_loop_free(loop);
}

typedef enum { SEND_FD, SEND_NOTHING, SEND_PAGE } Tail;

/* A destination "ram" START payload made by hand: the block list, then
 * (SEND_FD) the share HOOK record and `fd`, or nothing, or a PAGE record;
 * then EOS.  Returns load_state's result; *msg gets the error. */
static int load_share(int fd, Tail tail, char *msg, size_t msglen)
{
    MigLoop *loop = mig_loop_epoll_new(1);
    MigSavevm *sv = mig_savevm_new();
    MigRam *r = mig_ram_new();
    assert_int_equal(mig_ram_add_block(r, "pc.ram", LEN, NULL), 0);
    assert_int_equal(mig_ram_register(r, sv, NULL), 0);
    const MigSaveEntry *e = mig_savevm_entry(sv, 0); /* the only one: "ram" */
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    MigTransport *a = mig_transport_fd_new(loop, sp[0], "unix");
    MigTransport *b = mig_transport_fd_new(loop, sp[1], "unix");
    MigStream *w = mig_stream_new_writer(a), *s = mig_stream_new_reader(b);
    MigRamWriter rw;
    MigRamBlockInfo bi = {.name = "pc.ram", .length = LEN};
    static uint8_t page[4096] = {1};
    mig_ram_put_mem_size(w, &rw, &bi, 1, false);
    if (tail == SEND_FD) {
        mig_ram_put_hook_addr(w, 0);
        mig_stream_put_fd(w, fd);
    } else if (tail == SEND_PAGE) {
        mig_ram_put_page(w, &rw, "pc.ram", 4096, page);
    }
    mig_ram_put_eos(w);
    assert_int_equal(mig_stream_flush(w), 0);
    mig_ram_set_caps(r, SHARE);
    MigSectionHeader h = {.type = MIG_SECTION_START, .version_id = 4};
    MigErr *err = NULL;
    assert_int_equal(e->iter->load_setup(e->opaque, NULL), 0);
    int rc = e->iter->load_state(e->opaque, s, &h, &err);
    if (rc == 0 && e->iter->load_complete)
        rc = e->iter->load_complete(e->opaque, &err);
    snprintf(msg, msglen, "%s", err ? err->msg : "");
    mig_err_free(err);
    /* A failed load gives everything back: our own RAM is zero again. */
    e->iter->load_cleanup(e->opaque, rc == 0 ? MIG_OUTCOME_COMPLETED : MIG_OUTCOME_FAILED);
    if (rc == 0) {
        /* The block is the memfd now: a write shows through the fd. */
        MigRamBlock *blk = mig_ram_block(r, 0);
        assert_true(blk->fd >= 0);
        blk->host[0] ^= 0xff;
    } else {
        assert_true(mig_ram_page_is_zero(mig_ram_block(r, 0)->host));
        assert_int_equal(mig_ram_block(r, 0)->fd, -1);
    }
    mig_stream_free(w);
    mig_stream_free(s);
    mig_transport_close(a);
    mig_transport_close(b);
    mig_savevm_free(sv);
    mig_ram_free(r);
    mig_loop_free(loop);
    return rc;
}

static void test_ram_share_destination_checks_the_memfd(void **state)
{
    char msg[512];
    int good = memfd(LEN, 0);
    uint64_t before = fd_sum(good, LEN);
    assert_int_equal(load_share(good, SEND_FD, msg, sizeof(msg)), 0);
    assert_int_not_equal(fd_sum(good, LEN), before); /* the destination's write */
    close(good);

    struct {
        int fd;
        int rc;
        const char *words;
    } bad[] = {
        {memfd(LEN / 2, 0), -EINVAL, "has 0x8000 bytes, the block 0x10000"},
        {memfd(LEN, F_SEAL_WRITE), -EPERM, "is sealed against writing"},
        {memfd(LEN, F_SEAL_FUTURE_WRITE), -EPERM, "is sealed against writing"},
        {-1, -EINVAL, "is not a memfd"},
    };
    char path[] = "/tmp/test-ram-share-XXXXXX";
    bad[3].fd = mkstemp(path);
    assert_true(bad[3].fd >= 0);
    unlink(path);
    assert_int_equal(ftruncate(bad[3].fd, (off_t)LEN), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t sum = fd_sum(bad[i].fd, i == 0 ? LEN / 2 : LEN);
        int rc = load_share(bad[i].fd, SEND_FD, msg, sizeof(msg));
        if (rc != bad[i].rc || !strstr(msg, bad[i].words) || !strstr(msg, "x-ram-share") ||
            !strstr(msg, "\"pc.ram\""))
            fail_msg("case %zu: %d %s", i, rc, msg);
        assert_int_equal(fd_sum(bad[i].fd, i == 0 ? LEN / 2 : LEN), sum);
        close(bad[i].fd);
    }
    assert_int_equal(load_share(-1, SEND_NOTHING, msg, sizeof(msg)), -EPROTO);
    assert_non_null(strstr(msg, "the memfd of ramblock \"pc.ram\" never arrived"));
    assert_int_equal(load_share(-1, SEND_PAGE, msg, sizeof(msg)), -EINVAL);
    assert_non_null(strstr(msg, "x-ram-share: a page record for ramblock \"pc.ram\""));
}

/* Two machines on one epoll loop, over a socketpair. */
static void test_ram_share_whole_migration(void **state)
{
    MigLoop *loop = mig_loop_epoll_new(0x5a);
    MigErr *err = NULL;
    MigMachineOptions so = {.name = "src", .ram_size = 4 << 20, .mem_share = true};
    MigMachineOptions dopt = {.name = "dst", .ram_size = 4 << 20, .incoming = true,
                              .start_paused = true};
    MigMachine *m[2] = {mig_machine_new(loop, &so, &err), mig_machine_new(loop, &dopt, &err)};
    assert_non_null(m[0]);
    assert_non_null(m[1]);
    MigWorkloadOptions wo = {.seed = 3, .fill = MIG_WORKLOAD_FILL_RANDOM, .dirty_rate = 1000};
    MigWorkload *w = mig_workload_new(m[0], &wo, &err);
    assert_non_null(w);
    for (int i = 0; i < 2; i++)
        assert_int_equal(mig_migration_set_caps(mig_machine_migration(m[i]), SHARE, SHARE, NULL),
                         0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(mig_machine_incoming_transport(m[1], mig_transport_fd_new(loop, sv[1],
                                                                                "unix"),
                                                    &err),
                     0);
    if (mig_machine_migrate_transport(m[0], mig_transport_fd_new(loop, sv[0], "unix"), &err))
        fail_msg("migrate: %s", err->msg);
    assert_int_equal(sim_migration_wait(loop, m[0], m[1], 60ull * 1000000000ull, NULL), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(mig_migration_status(mig_machine_migration(m[i])),
                         MIG_STATUS_COMPLETED);
    MigInfo info;
    mig_machine_query_migrate(m[0], &info);
    assert_int_equal(info.ram.normal, 0);
    assert_true(info.ram.transferred < 4096);
    char d0[65], d1[65];
    mig_machine_ram_digest(m[0], d0);
    mig_machine_ram_digest(m[1], d1);
    assert_string_equal(d0, d1);
    if (mig_workload_verify(w, mig_machine_ram(m[1]), &err))
        fail_msg("%s", err->msg);
    /* One memory: the destination writes, the source's mapping sees it. */
    mig_ram_block(mig_machine_ram(m[1]), 0)->host[123] ^= 0x5a;
    mig_machine_ram_digest(m[0], d0);
    mig_machine_ram_digest(m[1], d1);
    assert_string_equal(d0, d1);
    /* and the source never runs again */
    assert_int_equal(mig_machine_cont(m[0], &err), -EBUSY);
    assert_non_null(strstr(err->msg, "handed to the destination"));
    mig_err_free(err);
    mig_workload_free(w);
    mig_machine_free(m[0]);
    mig_machine_free(m[1]);
    mig_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ram_share_fd_rides_on_its_byte),
        cmocka_unit_test(test_ram_share_destination_checks_the_memfd),
        cmocka_unit_test(test_ram_share_whole_migration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
