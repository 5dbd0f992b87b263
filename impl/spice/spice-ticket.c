/*
 * spice-ticket.c - RSA-1024 keys from the run's PRNG, the DER public key,
 * and RSA-OAEP (SHA-1) tickets (spice-ticket.h).  OAEP encoding is written
 * out here (RFC 8017 section 7.1.1) only so that its seed comes from the
 * PRNG; the RSA operations, SHA-1 and the DER encoding are libcrypto's.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "spice-ticket.h"

#define RSA_BITS 1024
#define RSA_E 65537ul
#define SHA1_LEN 20u
/* Prime gaps near 2^512 average about 355; a search that walks this far
 * from its start has hit a libcrypto failure, not bad luck. */
#define PRIME_SEARCH_MAX 200000

struct SpiceTicketKey {
    EVP_PKEY *pkey;
    uint8_t pub[SPICE_TICKET_PUBKEY_SIZE];
};

static void prng_bytes(MigPrng *prng, uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = mig_prng_next(prng);
        for (size_t k = 0; k < 8 && i + k < n; k++)
            b[i + k] = (uint8_t)(v >> (8 * k));
    }
}

/* The candidates are sieved by the odd primes below SIEVE_BOUND,
 * SIEVE_WINDOW consecutive odd numbers at a time: about one in ten is
 * left (Mertens: 1.12 / ln SIEVE_BOUND), against one in five after
 * libcrypto's own trial division, and only those pay for a modular
 * exponentiation. */
#define SIEVE_BOUND 65536u
#define SIEVE_WINDOW 4096u

/* The Miller-Rabin bases, one round each, for a candidate the sieve left.
 * The candidates are drawn from the PRNG, not chosen by an adversary, so
 * fixed bases do as well as random ones (and draw nothing).  For a random
 * 512-bit odd number the chance that a composite passes 7 rounds is below
 * 2^-96 (Damgard, Landrock and Pomerance 1993).  libcrypto's
 * BN_check_prime runs 64 rounds with bases from its DRBG: it accepts the
 * same candidates (a composite fails either test) at about three times
 * the cost per prime found (a SPICE case makes three keys; under valgrind
 * they were three quarters of the case). */
static const uint8_t mr_bases[] = {2, 3, 5, 7, 11, 13, 17};

/* The odd primes below SIEVE_BOUND into `out` (room for SIEVE_BOUND / 2);
 * returns how many. */
static size_t odd_primes(uint16_t *out)
{
    uint8_t *comp = mig_malloc0(SIEVE_BOUND);
    size_t n = 0;
    for (uint32_t q = 3; q < SIEVE_BOUND; q += 2) {
        if (comp[q])
            continue;
        out[n++] = (uint16_t)q;
        for (uint32_t m = q * q; m < SIEVE_BOUND; m += 2 * q)
            comp[m] = 1;
    }
    free(comp);
    return n;
}

/* 1: w (odd, above SIEVE_BOUND) is prime with the confidence above; 0:
 * composite; -1: libcrypto failed. */
static int probably_prime(const BIGNUM *w, BN_CTX *ctx)
{
    int ret = -1;
    BN_CTX_start(ctx);
    BIGNUM *w1 = BN_CTX_get(ctx), *d = BN_CTX_get(ctx), *y = BN_CTX_get(ctx), *a = BN_CTX_get(ctx);
    BN_MONT_CTX *mont = BN_MONT_CTX_new();
    if (!a || !mont || !BN_MONT_CTX_set(mont, w, ctx) || !BN_sub(w1, w, BN_value_one()))
        goto out;
    int s = 1; /* w - 1 = d * 2^s with d odd (w is odd: s >= 1) */
    while (!BN_is_bit_set(w1, s))
        s++;
    if (!BN_rshift(d, w1, s))
        goto out;
    for (size_t i = 0; i < sizeof(mr_bases); i++) {
        if (!BN_set_word(a, mr_bases[i]) || !BN_mod_exp_mont(y, a, d, w, ctx, mont))
            goto out;
        /* a^d = 1, or a^(d 2^k) = w - 1 for some k < s; else w is composite */
        int k = 0;
        while (!BN_is_one(y) && BN_cmp(y, w1) != 0) {
            if (++k == s) {
                ret = 0;
                goto out;
            }
            if (!BN_mod_sqr(y, y, w, ctx))
                goto out;
        }
        if (k > 0 && BN_is_one(y)) { /* 1 by squaring a root other than -1 */
            ret = 0;
            goto out;
        }
    }
    ret = 1;
out:
    BN_MONT_CTX_free(mont);
    BN_CTX_end(ctx);
    return ret;
}

/* A 512-bit prime p with the two top bits set (so p*q has 1024 bits) and
 * gcd(p - 1, e) = 1 (e is prime: p mod e != 1): the first such number at
 * or above a PRNG-drawn odd start.  `primes`: the sieve's. */
static BIGNUM *prime_from(MigPrng *prng, const uint16_t *primes, size_t nprimes, BN_CTX *ctx)
{
    uint8_t buf[RSA_BITS / 16];
    prng_bytes(prng, buf, sizeof(buf));
    buf[0] |= 0xc0;
    buf[sizeof(buf) - 1] |= 1;
    BIGNUM *base = BN_bin2bn(buf, sizeof(buf), NULL), *c = BN_new();
    uint8_t *comp = mig_malloc0(SIEVE_WINDOW);
    for (uint32_t done = 0; base && c && done < PRIME_SEARCH_MAX; done += SIEVE_WINDOW) {
        /* comp[j]: base + 2j has a factor below SIEVE_BOUND */
        memset(comp, 0, SIEVE_WINDOW);
        for (size_t i = 0; i < nprimes; i++) {
            uint32_t q = primes[i];
            BN_ULONG r = BN_mod_word(base, q);
            if (r == (BN_ULONG)-1)
                goto fail;
            /* base + 2j = 0 mod q: j = -r / 2 = (q - r) (q + 1) / 2 mod q */
            uint32_t j = (uint32_t)((uint64_t)((q - r) % q) * ((q + 1) / 2) % q);
            for (; j < SIEVE_WINDOW; j += q)
                comp[j] = 1;
        }
        for (uint32_t j = 0; j < SIEVE_WINDOW; j++) {
            if (comp[j])
                continue;
            if (!BN_copy(c, base) || !BN_add_word(c, 2 * j))
                goto fail;
            if (BN_mod_word(c, RSA_E) == 1)
                continue;
            int r = probably_prime(c, ctx);
            if (r < 0)
                goto fail;
            if (r == 1) {
                BN_free(base);
                free(comp);
                return c;
            }
        }
        if (!BN_add_word(base, 2 * SIEVE_WINDOW))
            break;
    }
fail:
    BN_free(base);
    BN_free(c);
    free(comp);
    return NULL;
}

static EVP_PKEY *key_from_primes(BIGNUM *p, BIGNUM *q, BN_CTX *ctx)
{
    EVP_PKEY *pkey = NULL;
    BIGNUM *n = BN_new(), *e = BN_new(), *d = BN_new(), *p1 = BN_new(), *q1 = BN_new(), *phi = BN_new();
    BIGNUM *dp = BN_new(), *dq = BN_new(), *qinv = BN_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    if (!n || !e || !d || !p1 || !q1 || !phi || !dp || !dq || !qinv || !bld)
        goto out;
    if (!BN_mul(n, p, q, ctx) || !BN_set_word(e, RSA_E) || !BN_sub(p1, p, BN_value_one()) ||
        !BN_sub(q1, q, BN_value_one()) || !BN_mul(phi, p1, q1, ctx) || !BN_mod_inverse(d, e, phi, ctx) ||
        !BN_mod(dp, d, p1, ctx) || !BN_mod(dq, d, q1, ctx) || !BN_mod_inverse(qinv, q, p, ctx))
        goto out;
    if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qinv))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!params || !pctx || EVP_PKEY_fromdata_init(pctx) <= 0 ||
        EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_KEYPAIR, params) <= 0)
        pkey = NULL;
out:
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    BN_clear_free(d);
    BN_free(p1);
    BN_free(q1);
    BN_clear_free(phi);
    BN_clear_free(dp);
    BN_clear_free(dq);
    BN_clear_free(qinv);
    return pkey;
}

SpiceTicketKey *spice_ticket_key_new(MigPrng *prng, MigErr **errp)
{
    BN_CTX *ctx = BN_CTX_new();
    uint16_t *primes = mig_malloc0(SIEVE_BOUND / 2 * sizeof(*primes));
    size_t nprimes = odd_primes(primes);
    BIGNUM *p = ctx ? prime_from(prng, primes, nprimes, ctx) : NULL;
    BIGNUM *q = p ? prime_from(prng, primes, nprimes, ctx) : NULL;
    free(primes);
    EVP_PKEY *pkey = q && BN_cmp(p, q) != 0 ? key_from_primes(p, q, ctx) : NULL;
    BN_clear_free(p);
    BN_clear_free(q);
    BN_CTX_free(ctx);
    if (!pkey) {
        mig_err_set(errp, -ENOMEM, "ticket: libcrypto could not make an RSA-%d key", RSA_BITS);
        return NULL;
    }
    SpiceTicketKey *k = mig_malloc0(sizeof(*k));
    k->pkey = pkey;
    uint8_t *der = NULL;
    int len = i2d_PUBKEY(pkey, &der);
    if (len != (int)SPICE_TICKET_PUBKEY_SIZE) {
        OPENSSL_free(der);
        spice_ticket_key_free(k);
        mig_err_set(errp, -EINVAL, "ticket: the public key encodes to %d bytes, not %u", len,
                    SPICE_TICKET_PUBKEY_SIZE);
        return NULL;
    }
    memcpy(k->pub, der, SPICE_TICKET_PUBKEY_SIZE);
    OPENSSL_free(der);
    return k;
}

void spice_ticket_key_free(SpiceTicketKey *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

const uint8_t *spice_ticket_key_public(const SpiceTicketKey *k)
{
    return k->pub;
}

int spice_ticket_decrypt(const SpiceTicketKey *k, const uint8_t ticket[SPICE_TICKET_BYTES],
                         char password[SPICE_PASSWORD_MAX + 1], MigErr **errp)
{
    uint8_t out[SPICE_TICKET_BYTES];
    size_t outlen = sizeof(out);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k->pkey, NULL);
    int ok = ctx && EVP_PKEY_decrypt_init(ctx) > 0 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
             EVP_PKEY_decrypt(ctx, out, &outlen, ticket, SPICE_TICKET_BYTES) > 0;
    EVP_PKEY_CTX_free(ctx);
    if (!ok)
        return mig_err_set(errp, -EACCES, "ticket: does not decrypt under this server's key");
    const uint8_t *nul = memchr(out, 0, outlen);
    if (!nul)
        return mig_err_set(errp, -EACCES, "ticket: the password is not NUL-terminated");
    size_t n = (size_t)(nul - out);
    if (n > SPICE_PASSWORD_MAX)
        return mig_err_set(errp, -EACCES, "ticket: a password of %zu characters (at most %u)", n,
                           SPICE_PASSWORD_MAX);
    memcpy(password, out, n + 1);
    return 0;
}

static int sha1(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint8_t out[SHA1_LEN])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex(c, EVP_sha1(), NULL) > 0 && EVP_DigestUpdate(c, a, alen) > 0 &&
             (!blen || EVP_DigestUpdate(c, b, blen) > 0) && EVP_DigestFinal_ex(c, out, NULL) > 0;
    EVP_MD_CTX_free(c);
    return ok ? 0 : -1;
}

/* out ^= MGF1-SHA1(seed, n) */
static int mgf1_xor(uint8_t *out, size_t n, const uint8_t *seed, size_t seedlen)
{
    uint8_t h[SHA1_LEN];
    for (uint32_t counter = 0; (size_t)counter * SHA1_LEN < n; counter++) {
        uint8_t c[4] = {(uint8_t)(counter >> 24), (uint8_t)(counter >> 16), (uint8_t)(counter >> 8),
                        (uint8_t)counter};
        if (sha1(seed, seedlen, c, sizeof(c), h) < 0)
            return -1;
        for (size_t i = 0; i < SHA1_LEN && counter * SHA1_LEN + i < n; i++)
            out[counter * SHA1_LEN + i] ^= h[i];
    }
    return 0;
}

void spice_ticket_pub_cache_clear(SpiceTicketPubCache *c)
{
    EVP_PKEY_free(c->pkey);
    memset(c, 0, sizeof(*c));
}

/* The RSA-1024 key `pub` holds, from `cache` when it is the cached one
 * (the caller frees it only when no cache took it: *owned). */
static EVP_PKEY *pub_key(SpiceTicketPubCache *cache, const uint8_t pub[SPICE_TICKET_PUBKEY_SIZE], bool *owned,
                         MigErr **errp)
{
    *owned = false;
    if (cache && cache->pkey && !memcmp(cache->pub, pub, SPICE_TICKET_PUBKEY_SIZE))
        return cache->pkey;
    const uint8_t *p = pub;
    EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, SPICE_TICKET_PUBKEY_SIZE);
    if (!pkey || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA || EVP_PKEY_get_bits(pkey) != RSA_BITS) {
        EVP_PKEY_free(pkey);
        mig_err_set(errp, -EPROTO, "ticket: the server's public key is not an RSA-%d key", RSA_BITS);
        return NULL;
    }
    if (!cache) {
        *owned = true;
        return pkey;
    }
    spice_ticket_pub_cache_clear(cache);
    memcpy(cache->pub, pub, SPICE_TICKET_PUBKEY_SIZE);
    cache->pkey = pkey;
    return pkey;
}

int spice_ticket_encrypt(const uint8_t pub[SPICE_TICKET_PUBKEY_SIZE], const char *password, MigPrng *prng,
                         uint8_t ticket[SPICE_TICKET_BYTES], MigErr **errp)
{
    return spice_ticket_encrypt_cached(NULL, pub, password, prng, ticket, errp);
}

int spice_ticket_encrypt_cached(SpiceTicketPubCache *cache, const uint8_t pub[SPICE_TICKET_PUBKEY_SIZE],
                                const char *password, MigPrng *prng, uint8_t ticket[SPICE_TICKET_BYTES],
                                MigErr **errp)
{
    size_t mlen = strlen(password) + 1; /* the NUL travels */
    if (mlen - 1 > SPICE_PASSWORD_MAX)
        return mig_err_set(errp, -EINVAL, "ticket: a password of %zu characters (at most %u)", mlen - 1,
                           SPICE_PASSWORD_MAX);
    bool owned;
    EVP_PKEY *pkey = pub_key(cache, pub, &owned, errp);
    if (!pkey)
        return -EPROTO;
    /* EM = 0x00 || maskedSeed || maskedDB, DB = SHA1("") || 0…0 || 0x01 || M */
    uint8_t em[SPICE_TICKET_BYTES] = {0};
    uint8_t *seed = em + 1, *db = em + 1 + SHA1_LEN;
    size_t dblen = SPICE_TICKET_BYTES - SHA1_LEN - 1;
    int r = sha1((const uint8_t *)"", 0, NULL, 0, db);
    db[dblen - mlen - 1] = 0x01;
    memcpy(db + dblen - mlen, password, mlen);
    prng_bytes(prng, seed, SHA1_LEN);
    if (r == 0)
        r = mgf1_xor(db, dblen, seed, SHA1_LEN);
    if (r == 0)
        r = mgf1_xor(seed, SHA1_LEN, db, dblen);
    size_t outlen = SPICE_TICKET_BYTES;
    EVP_PKEY_CTX *ctx = r == 0 ? EVP_PKEY_CTX_new(pkey, NULL) : NULL;
    int ok = ctx && EVP_PKEY_encrypt_init(ctx) > 0 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) > 0 &&
             EVP_PKEY_encrypt(ctx, ticket, &outlen, em, sizeof(em)) > 0 && outlen == SPICE_TICKET_BYTES;
    EVP_PKEY_CTX_free(ctx);
    if (owned)
        EVP_PKEY_free(pkey);
    if (!ok)
        return mig_err_set(errp, -EPROTO, "ticket: RSA encryption failed");
    return 0;
}
