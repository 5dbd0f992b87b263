/*
 * spice-keys.c - the unit tests' SPICE ticket keys, made once per PRNG
 * state (see spice-keys.h).
 */
#include "sim/spice-keys.h"

#include "common/prng.h"

#define KEYS_MAX 16

static struct {
    uint64_t seed[KEYS_MAX];
    SpiceTicketKey *key[KEYS_MAX];
    size_t n;
} keys;

const SpiceTicketKey *sim_spice_key(MigLoop *loop)
{
    /* what mig_prng_fork(&loop->prng, &kp) in spice_server_new seeds kp
     * with: the loop's next number */
    MigPrng peek = loop->prng;
    uint64_t seed = mig_prng_next(&peek);
    for (size_t i = 0; i < keys.n; i++)
        if (keys.seed[i] == seed)
            return keys.key[i];
    if (keys.n == KEYS_MAX)
        return NULL;
    MigPrng kp;
    mig_prng_seed(&kp, seed);
    SpiceTicketKey *k = spice_ticket_key_new(&kp, NULL);
    if (!k)
        return NULL;
    keys.seed[keys.n] = seed;
    keys.key[keys.n++] = k;
    return k;
}

void sim_spice_keys_free(void)
{
    for (size_t i = 0; i < keys.n; i++)
        spice_ticket_key_free(keys.key[i]);
    keys.n = 0;
}
