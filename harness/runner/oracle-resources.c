/*
 * oracle-resources.c - the resource oracle: what a case leaves behind.
 *
 * Called by: exec-case.c: the baseline before the case builds anything,
 * the checks once both machines are freed, the heap check last of all.
 *   after freeing everything: no timer/defer left on the sim loop, no
 *   harness mem transport left open, no more open fds than before the case
 *   (/proc/self/fd);
 *   last, once the loop, trace, injector and errors are freed too: no more
 *   live heap blocks than before the case and no more bytes mapped with
 *   mmap (heap-count.h).
 * What legitimately outlives a case is built before the baseline
 * (libcrypto's first-use initialisation by the trace's SHA-256, libfiu's
 * fiu_init).  All resource checks judge only a case that ran a migrate and
 * passed every other oracle (exec-case.c decides).
 */
#include <dirent.h>
#include <stdio.h>

#include <openssl/err.h>

#include "common/fiu-local.h"
#include "exec-internal.h"
#include "spice/spice-ticket.h"

/* Open fds of this process (the resource oracle). */
static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own */
}

/* The baseline, before the case allocates anything; under valgrind the
 * heap counters are off (heap-count.h) and valgrind checks.
 * Warm-up first: the trace's SHA-256 initialises libcrypto on first use
 * in the process (its config, error strings, the default provider and
 * its algorithm cache: ~3,000 blocks that live until exit, freed by
 * libcrypto's own atexit handler).  Doing that before the baseline is a
 * no-op for every case but the process's first.  Likewise libfiu's
 * tables (fiu_init, which the injector calls on its first arm and which
 * does nothing the second time).  A case with SPICE also makes RSA keys
 * and OAEP tickets (spice-ticket.h), whose first use loads more of
 * libcrypto (the RSA and OAEP implementations, its DRBG): one throwaway
 * key and ticket do that first, and the error queue is emptied on both
 * ends of the case.  Where the heap is counted, before every SPICE case
 * (without it a case once freed blocks that the previous case's libcrypto
 * use had left, counted against it); where it is not (valgrind, ASan:
 * their own leak checks stand in, at exit), before the process's first
 * only: the key costs a third of a small SPICE case under valgrind. */
static void warm_up_spice(bool heap_on)
{
    static bool warmed; /* this process's libcrypto was warmed up */
    if (warmed && !heap_on)
        return;
    warmed = true;
    MigPrng prng;
    mig_prng_seed(&prng, 1);
    SpiceTicketKey *k = spice_ticket_key_new(&prng, NULL);
    if (!k)
        return;
    uint8_t ticket[SPICE_TICKET_BYTES];
    char pw[SPICE_PASSWORD_MAX + 1];
    if (spice_ticket_encrypt(spice_ticket_key_public(k), "", &prng, ticket, NULL) == 0)
        (void)spice_ticket_decrypt(k, ticket, pw, NULL);
    spice_ticket_key_free(k);
    ERR_clear_error();
}

void exec__resources_baseline(ExecBaseline *b, bool spice)
{
    b->fds = count_fds();
    mig_trace_free(mig_trace_new());
    (void)fiu_init(0);
    b->heap_on = heap_count_active();
    if (spice)
        warm_up_spice(b->heap_on);
    heap_count_live(&b->heap);
    b->mapped = heap_count_mapped();
}

int exec__oracle_resources(Run *run, const ExecBaseline *b, MigErr **errp)
{
    long live = mig_sim_live_sources(run->loop);
    long fds = count_fds();
    if (run->live_transports != 0)
        return mig_err_set(errp, -EPROTO, "resources: %ld mem transport(s) of the migration "
                           "link left open after both machines were freed",
                           run->live_transports);
    if (live != 0)
        return mig_err_set(errp, -EPROTO, "resources: %ld timer(s)/defer(s) left on the loop "
                           "after both machines were freed", live);
    if (b->fds >= 0 && fds > b->fds)
        return mig_err_set(errp, -EPROTO, "resources: %ld fd(s) more open than before the "
                           "case (/proc/self/fd)", fds - b->fds);
    return 0;
}

/* The memory part of the resource oracle: once everything the case
 * allocated is freed, as many heap blocks are live as before the case
 * (unless b->heap_on is false: valgrind replaced the malloc family and checks
 * it), and no more bytes are mapped with mmap (guest RAM, rings: valgrind
 * does not see those, so this part always runs).  Blocks, not
 * bytes, decide: a leak always leaves a block, while the byte count moves
 * with the heap's layout even with no leak (glibc may hand a block a few
 * bytes more than asked when the free chunk it splits leaves too little,
 * so a table that libfiu frees and allocates again at the same size can
 * come back 16 bytes larger); the bytes are told, not judged.  `kept` is
 * the one block the caller still holds on purpose (the trace, echoed after
 * this), taken off exactly.  Writes the failure into r. */
void exec__oracle_heap(const ExecBaseline *b, const void *kept, RunResult *r)
{
    const bool heap_on = b->heap_on;
    /* libcrypto keeps the errors its decoders raise (a SPICE client parsing
     * the server's key) in the thread's error queue until the next clear:
     * not the case's to keep */
    ERR_clear_error();
    HeapCount now;
    heap_count_live(&now);
    long long blocks = now.blocks - b->heap.blocks, bytes = now.bytes - b->heap.bytes;
    long long mapped = heap_count_mapped() - b->mapped;
    if (kept) {
        blocks -= 1;
        bytes -= heap_count_block_bytes(kept);
    }
    if (heap_on && blocks > 0) {
        r->passed = false;
        snprintf(r->error, sizeof(r->error), "resources: %lld heap block(s), %lld byte(s) "
                 "still allocated after the case (run the REPRO line under valgrind "
                 "--leak-check=full --show-leak-kinds=all to see where)", blocks, bytes);
    } else if (heap_on && blocks < 0) {
        /* a case frees what an earlier one left: state that outlives a case
         * (which then depends on the cases before it) */
        r->passed = false;
        snprintf(r->error, sizeof(r->error), "resources: the case freed %lld heap block(s) "
                 "allocated before it (state kept from one case to the next)", -blocks);
    } else if (mapped > 0) {
        r->passed = false;
        snprintf(r->error, sizeof(r->error), "resources: %lld byte(s) still mapped (mmap "
                 "without munmap: guest RAM, a transport ring) after the case", mapped);
    }
}
