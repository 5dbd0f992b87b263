/*
 * exec-spice-keys.c - the SPICE servers' RSA ticket keys, made once per
 * process for each PRNG state that asks for one.
 *
 * Why: a SPICE server makes its RSA-1024 key from its loop's PRNG
 * (spice_server_new forks loop->prng and searches two 512-bit primes from
 * the child), which cost as much CPU as the rest of a SPICE case; and the
 * cases of a run mostly start from the same seed, so they ask for the same
 * few keys again and again.  exec__spice_key() peeks at the number that
 * fork will draw (without drawing it: the server still does, so the loop's
 * PRNG moves exactly as before), makes the key from it exactly as the
 * server would (same child PRNG, same spice_ticket_key_new), keeps it, and
 * the side passes it as SpiceServerConfig.key.  Every case so gets, bit for
 * bit, the key it made itself before (the trace hashes say so), and no case
 * depends on the ones before it: the cache only saves the search.
 *
 * Called by: exec-spice.c (exec__spice_side_create), just before
 * mig_machine_add_spice, with the machine's loop; oracle-resources.c reads
 * what the cache holds (the heap oracle takes it off, see below).
 *
 * Invariants: the one state that outlives a case besides libcrypto's own
 * and the heap counters: a fixed-size table, filled in run order and never
 * evicted (a run whose cases ask for more keys than it holds makes the
 * rest per case, as the server would).  A key is used once (a ticket
 * encrypted and decrypted) while it is made, so what libcrypto attaches to
 * a key on its first private-key operation (blinding, Montgomery contexts)
 * is counted with it: later cases that use it allocate nothing that stays.
 * The heap blocks the table and its keys hold are summed
 * (exec__spice_keys_held): a case that adds a key leaves that many blocks
 * more, which the heap oracle does not count as the case's.  The table is
 * freed at exit (atexit, registered after libcrypto's own initialisation,
 * so it runs before libcrypto's clean-up): valgrind and LeakSanitizer see
 * nothing left.
 */
#include <stdlib.h>

#include <openssl/err.h>

#include "exec-internal.h"
#include "sim/spice-keys.h"
#include "spice/spice-ticket.h"

/* Distinct key seeds: a run of one seed asks for a handful (one per side
 * and per scripted server restart); more only make keys per case. */
#define KEYS_MAX 64

static struct {
    uint64_t seed[KEYS_MAX];
    SpiceTicketKey *key[KEYS_MAX];
    size_t n;
    HeapCount held;
    bool atexit_done;
} keys;

static void keys_free(void)
{
    for (size_t i = 0; i < keys.n; i++)
        spice_ticket_key_free(keys.key[i]);
    keys.n = 0;
}

/* Make the key of `seed` as spice_server_new would, and use it once. */
static SpiceTicketKey *key_make(uint64_t seed)
{
    MigPrng kp, tp;
    mig_prng_seed(&kp, seed);
    SpiceTicketKey *k = spice_ticket_key_new(&kp, NULL);
    if (!k)
        return NULL;
    uint8_t ticket[SPICE_TICKET_BYTES];
    char pw[SPICE_PASSWORD_MAX + 1];
    mig_prng_seed(&tp, seed ^ 1);
    if (spice_ticket_encrypt(spice_ticket_key_public(k), "", &tp, ticket, NULL) == 0)
        (void)spice_ticket_decrypt(k, ticket, pw, NULL);
    return k;
}

const SpiceTicketKey *exec__spice_key(MigLoop *loop)
{
    uint64_t seed = sim_spice_key_seed(loop);
    for (size_t i = 0; i < keys.n; i++)
        if (keys.seed[i] == seed)
            return keys.key[i];
    if (keys.n == KEYS_MAX)
        return NULL; /* the server makes its own */
    ERR_clear_error();
    HeapCount before, after;
    heap_count_live(&before);
    SpiceTicketKey *k = key_make(seed);
    ERR_clear_error(); /* the decoders' errors are not the key's to keep */
    if (!k)
        return NULL;
    if (!keys.atexit_done)
        keys.atexit_done = atexit(keys_free) == 0;
    keys.seed[keys.n] = seed;
    keys.key[keys.n++] = k;
    heap_count_live(&after);
    keys.held.blocks += after.blocks - before.blocks;
    keys.held.bytes += after.bytes - before.bytes;
    return k;
}

void exec__spice_keys_held(HeapCount *out)
{
    *out = keys.held;
}
