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

uint64_t sim_spice_key_seed(const MigLoop *loop)
{
    MigPrng peek = loop->prng;
    return mig_prng_next(&peek);
}

const SpiceTicketKey *sim_spice_key(MigLoop *loop)
{
    uint64_t seed = sim_spice_key_seed(loop);
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
