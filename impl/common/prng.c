/*
 * prng.c - xoshiro256** seeded through splitmix64 (see prng.h).
 */
#include "prng.h"

void mig_prng_seed(MigPrng *p, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ull;
        p->s[i] = mig_mix64(x);
    }
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mig_prng_next(MigPrng *p)
{
    uint64_t *s = p->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t mig_prng_below(MigPrng *p, uint64_t bound)
{
    if (bound == 0)
        return 0;
    /* Rejection sampling keeps the result unbiased. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t v;
    do {
        v = mig_prng_next(p);
    } while (v >= limit);
    return v % bound;
}

double mig_prng_double(MigPrng *p)
{
    return (double)(mig_prng_next(p) >> 11) * (1.0 / 9007199254740992.0);
}

void mig_prng_fork(MigPrng *parent, MigPrng *child)
{
    mig_prng_seed(child, mig_prng_next(parent));
}
