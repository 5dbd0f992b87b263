/*
 * ram-share.c - the destination of x-ram-share (docs/protocol-qemu-stream.md,
 * shared memory): takes each RAM block's memfd from the setup payload, checks
 * it, keeps it mapped read-only beside the block until the load completes,
 * then puts it in the block's place; a failed or cancelled load drops it.
 *
 * Called by: ram-section.c (the "ram" handler's load side) only.
 *
 * Invariants: before load_complete the destination has the source's memory
 * mapped read-only and nowhere else, so it cannot write a byte of it; the
 * block's address (b->host) never changes (the memfd is mapped onto it with
 * MAP_FIXED), so whoever holds a pointer into guest RAM keeps a good one;
 * a failed load puts fresh private memory back at that address before the
 * usual discard, which therefore never touches the source's memory.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ram-internal.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/* Is fd a memfd?  Sealing works on shmem files only, and a memfd's name in
 * /proc starts with "/memfd:" (a tmpfs file that was opened by path does
 * not). */
static bool is_memfd(int fd, int *seals)
{
    char link[64], target[64];
    *seals = fcntl(fd, F_GET_SEALS);
    if (*seals < 0)
        return false;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n < 0)
        return true; /* no /proc: sealing is the test */
    target[n] = '\0';
    return strncmp(target, "/memfd:", 7) == 0;
}

/* Check the fd for block b: a memfd of b's length that we may write.
 * Returns 0 or an error naming the block, the offset and what is wrong. */
static int check_fd(const MigRamBlock *b, int fd, unsigned long long at, MigErr **errp)
{
    struct stat st;
    int seals = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !is_memfd(fd, &seals))
        return mig_err_set(errp, -EINVAL,
                           "x-ram-share: the fd for ramblock \"%s\" at offset %llu is not a "
                           "memfd",
                           b->idstr, at);
    if ((uint64_t)st.st_size != b->length)
        return mig_err_set(errp, -EINVAL,
                           "x-ram-share: the memfd for ramblock \"%s\" at offset %llu has "
                           "0x%llx bytes, the block 0x%llx",
                           b->idstr, at, (unsigned long long)st.st_size,
                           (unsigned long long)b->length);
    if (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE))
        return mig_err_set(errp, -EPERM,
                           "x-ram-share: the memfd for ramblock \"%s\" at offset %llu is sealed "
                           "against writing",
                           b->idstr, at);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_ACCMODE) != O_RDWR)
        return mig_err_set(errp, -EPERM,
                           "x-ram-share: the memfd for ramblock \"%s\" at offset %llu is not "
                           "open for writing",
                           b->idstr, at);
    return 0;
}

int mig__ram_share_hook(MigRam *r, MigStream *s, const MigRamRecord *rec, MigErr **errp)
{
    unsigned long long at = (unsigned long long)rec->stream_offset;
    const MigRamReader *rd = &r->reader;
    if (!r->load_map)
        return mig_err_set(errp, -EINVAL, "x-ram-share: HOOK record before the block list "
                                          "(offset %llu)",
                           at);
    size_t i = r->share_next;
    uint64_t base = 0;
    for (size_t k = 0; k < i; k++)
        base += rd->blocks[k].length;
    MigRamBlock *b = r->blocks[r->load_map[i]];
    if (rec->offset != base)
        return mig_err_set(errp, -EINVAL,
                           "x-ram-share: HOOK record for RAM address 0x%llx at offset %llu, "
                           "expected the one of ramblock \"%s\" (0x%llx)",
                           (unsigned long long)rec->offset, at, b->idstr,
                           (unsigned long long)base);
    int fd = mig_stream_get_fd(s, errp);
    if (fd == -EAGAIN)
        return fd;
    if (fd < 0) {
        mig_err_prepend(errp, "x-ram-share: the memfd of ramblock \"%s\" (HOOK record at "
                              "offset %llu)",
                        b->idstr, at);
        return fd;
    }
    if (b->share_fd >= 0) {
        close(fd);
        return mig_err_set(errp, -EEXIST,
                           "x-ram-share: a second memfd for ramblock \"%s\" at offset %llu", b->idstr,
                           at);
    }
    int ret = check_fd(b, fd, at, errp);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    /* Read-only until the load completes: nothing here can write it. */
    void *map = mmap(NULL, b->length, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        int e = errno;
        close(fd);
        return mig_err_set(errp, -e, "x-ram-share: cannot map the memfd of ramblock \"%s\": %s",
                           b->idstr, strerror(e));
    }
    b->share_fd = fd;
    b->share_map = map;
    r->share_next++;
    return 0;
}

int mig__ram_share_page_refused(MigRam *r, const MigRamRecord *rec, MigErr **errp)
{
    return mig_err_set(errp, -EINVAL,
                       "x-ram-share: a page record for ramblock \"%s\" offset 0x%llx at offset "
                       "%llu, but the source shares its memory and sends no page",
                       r->blocks[r->load_map[rec->block]]->idstr,
                       (unsigned long long)rec->offset, (unsigned long long)rec->stream_offset);
}

int mig__ram_share_missing(MigRam *r, uint64_t at, MigErr **errp)
{
    return mig_err_set(errp, -EPROTO,
                       "x-ram-share: the memfd of ramblock \"%s\" never arrived (the RAM "
                       "payload ended at offset %llu)",
                       r->blocks[r->load_map[r->share_next]]->idstr, (unsigned long long)at);
}

/* Fresh memory of the block's own at its address: its memfd `own` mapped
 * again (shared memory keeps its content), else zero private memory. */
static void map_own(MigRamBlock *b, int own)
{
    void *p = own >= 0 ? mmap(b->host, b->length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                              own, 0)
                       : mmap(b->host, b->length, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED)
        /* Never leave the source's memory writable here. */
        mprotect(b->host, b->length, PROT_NONE);
}

int mig__ram_share_adopt(MigRam *r, MigErr **errp)
{
    if (!r->load_map || r->share_next < r->reader.nblocks) {
        const char *name = r->load_map ? r->blocks[r->load_map[r->share_next]]->idstr
                                       : r->nblocks ? r->blocks[0]->idstr : "?";
        return mig_err_set(errp, -EPROTO,
                           "x-ram-share: the stream ended without the memfd of ramblock \"%s\"",
                           name);
    }
    for (size_t i = 0; i < r->nblocks; i++) {
        MigRamBlock *b = r->blocks[i];
        if (!b->share_map)
            return mig_err_set(errp, -EPROTO,
                               "x-ram-share: ramblock \"%s\" was not in the source's block list",
                               b->idstr);
    }
    for (size_t i = 0; i < r->nblocks; i++) {
        MigRamBlock *b = r->blocks[i];
        /* Same address, the source's memory behind it, writable; our own
         * is freed.  A new mapping, not the read-only one moved here: a
         * move (mremap) walks the range 2 MiB at a time (73 us for 8 GiB,
         * 22 us for 1 GiB in strace), a new mapping costs the same at any
         * size, and the read-only one was never touched, so it goes
         * cheaply. */
        void *p = mmap(b->host, b->length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                       b->share_fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            map_own(b, b->fd); /* whatever the failed call left there */
            return mig_err_set(errp, -e,
                               "x-ram-share: cannot put the shared memory of ramblock \"%s\" "
                               "in place: %s",
                               b->idstr, strerror(e));
        }
        munmap(b->share_map, b->length);
        b->share_map = NULL;
        /* The source's fd becomes the block's (a later migration can share
         * it on); ours, if the block had one, waits in share_fd for the
         * outcome. */
        if (b->keyed) /* the memory is the source's bytes now: no key of ours holds */
            memset(b->keyed, 0, ((b->npages + 63) / 64) * sizeof(uint64_t));
        int own = b->fd;
        b->fd = b->share_fd;
        b->share_fd = own;
        r->share_adopted = true;
    }
    return 0;
}

/* A failed load after adopt: our own memory (a fresh one: what the block
 * had was given up) back at the block's address, the source's fd closed. */
static void share_give_back(MigRamBlock *b)
{
    int own = b->share_fd;
    map_own(b, own);
    close(b->fd);
    b->fd = own;
    b->share_fd = -1;
}

void mig__ram_share_cleanup(MigRam *r, bool completed)
{
    bool adopted = r->share_adopted;
    r->share_adopted = false;
    if (!r->share)
        return;
    for (size_t i = 0; i < r->nblocks; i++) {
        MigRamBlock *b = r->blocks[i];
        if (b->share_map)
            munmap(b->share_map, b->length);
        b->share_map = NULL;
        if (adopted && !completed && b->fd >= 0) {
            share_give_back(b);
            continue;
        }
        if (b->share_fd >= 0)
            close(b->share_fd);
        b->share_fd = -1;
    }
}
