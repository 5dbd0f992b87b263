/*
 * prng.h - the run's pseudo-random number generator (xoshiro256**, seeded by
 * splitmix64).
 *
 * Owns: MigPrng, a value type with no hidden state.  Every random choice in
 * the engine, the simulator, the fakes and the fault decisions draws from a
 * MigPrng that descends from the run's seed, so a run is a pure function of
 * its seed.  Never rand(), never the wall clock.
 */
#ifndef MIGCERT_PRNG_H
#define MIGCERT_PRNG_H

#include <stdint.h>

typedef struct MigPrng {
    uint64_t s[4];
} MigPrng;

void mig_prng_seed(MigPrng *p, uint64_t seed);
uint64_t mig_prng_next(MigPrng *p);
/* Uniform in [0, bound); bound 0 returns 0. */
uint64_t mig_prng_below(MigPrng *p, uint64_t bound);
/* Uniform double in [0, 1). */
double mig_prng_double(MigPrng *p);
/* A child generator for a sub-component; deterministic in the parent's state. */
void mig_prng_fork(MigPrng *parent, MigPrng *child);
/* Stateless mix: a 64-bit hash of x (splitmix64 finaliser).  Inline: the
 * simulator keys every guest page through four of them. */
static inline uint64_t mig_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

#endif
