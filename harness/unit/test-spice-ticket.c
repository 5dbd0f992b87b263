/*
 * test-spice-ticket.c - SPICE ticket keys and RSA-OAEP tickets
 * (impl/spice/spice-ticket.c): a key is a function of the PRNG, its public
 * half is the 162-byte DER spice-gtk parses, our OAEP encoding decrypts
 * with libcrypto's own OAEP, and libcrypto's OAEP tickets decrypt with ours.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "spice/spice-ticket.h"

static SpiceTicketKey *key_for(uint64_t seed)
{
    MigPrng prng;
    mig_prng_seed(&prng, seed);
    SpiceTicketKey *k = spice_ticket_key_new(&prng, NULL);
    assert_non_null(k);
    return k;
}

static void test_spice_ticket_key_is_a_function_of_the_seed(void **state)
{
    (void)state;
    SpiceTicketKey *a = key_for(0x5eed), *b = key_for(0x5eed), *c = key_for(0x5eee);
    const uint8_t *pa = spice_ticket_key_public(a);
    assert_memory_equal(pa, spice_ticket_key_public(b), SPICE_TICKET_PUBKEY_SIZE);
    assert_memory_not_equal(pa, spice_ticket_key_public(c), SPICE_TICKET_PUBKEY_SIZE);
    /* DER: SEQUENCE of 159 bytes, rsaEncryption, a 1024-bit key with e = 65537 */
    assert_int_equal(pa[0], 0x30);
    assert_int_equal(pa[1], 0x81);
    assert_int_equal(pa[2], 0x9f);
    const uint8_t *p = pa;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, SPICE_TICKET_PUBKEY_SIZE);
    assert_non_null(pk);
    assert_int_equal(EVP_PKEY_get_bits(pk), 1024);
    assert_int_equal(p - pa, SPICE_TICKET_PUBKEY_SIZE);
    EVP_PKEY_free(pk);
    spice_ticket_key_free(a);
    spice_ticket_key_free(b);
    spice_ticket_key_free(c);
}

static void test_spice_ticket_round_trip_and_refusals(void **state)
{
    (void)state;
    SpiceTicketKey *k = key_for(1), *other = key_for(2);
    MigPrng prng;
    mig_prng_seed(&prng, 7);
    uint8_t t[SPICE_TICKET_BYTES], t2[SPICE_TICKET_BYTES];
    char pw[SPICE_PASSWORD_MAX + 1];
    const char *cases[] = {"", "secret", "012345678901234567890123456789012345678901234567890123456789"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(spice_ticket_encrypt(spice_ticket_key_public(k), cases[i], &prng, t, NULL), 0);
        assert_int_equal(spice_ticket_decrypt(k, t, pw, NULL), 0);
        assert_string_equal(pw, cases[i]);
    }
    /* the same password twice: different seeds, different tickets */
    assert_int_equal(spice_ticket_encrypt(spice_ticket_key_public(k), "secret", &prng, t2, NULL), 0);
    assert_int_equal(spice_ticket_encrypt(spice_ticket_key_public(k), "secret", &prng, t, NULL), 0);
    assert_memory_not_equal(t, t2, sizeof(t));

    MigErr *err = NULL;
    assert_int_equal(spice_ticket_decrypt(other, t, pw, &err), -EACCES);
    assert_string_equal(err->msg, "ticket: does not decrypt under this server's key");
    mig_err_free(err);
    err = NULL;
    char longpw[62];
    memset(longpw, 'x', 61);
    longpw[61] = 0;
    assert_int_equal(spice_ticket_encrypt(spice_ticket_key_public(k), longpw, &prng, t, &err), -EINVAL);
    mig_err_free(err);
    err = NULL;
    uint8_t junk[SPICE_TICKET_PUBKEY_SIZE] = {0x30, 0x81, 0x9f};
    assert_int_equal(spice_ticket_encrypt(junk, "x", &prng, t, &err), -EPROTO);
    assert_string_equal(err->msg, "ticket: the server's public key is not an RSA-1024 key");
    mig_err_free(err);
    spice_ticket_key_free(k);
    spice_ticket_key_free(other);
}

/* Through a client's key cache: the same tickets byte for byte as without
 * it, the key parsed once per server (a second server's key replaces the
 * first), and a key that does not parse refused as without it, leaving the
 * cache as it was. */
static void test_spice_ticket_cached_key_gives_the_same_tickets(void **state)
{
    (void)state;
    SpiceTicketKey *k = key_for(1), *other = key_for(2);
    SpiceTicketPubCache cache = {0};
    MigPrng a, b;
    mig_prng_seed(&a, 9);
    mig_prng_seed(&b, 9);
    uint8_t t[SPICE_TICKET_BYTES], want[SPICE_TICKET_BYTES];
    char pw[SPICE_PASSWORD_MAX + 1];
    const SpiceTicketKey *keys[] = {k, k, other, other, k};
    struct evp_pkey_st *first = NULL;
    for (size_t i = 0; i < MIG_ARRAY_SIZE(keys); i++) {
        const uint8_t *pub = spice_ticket_key_public(keys[i]);
        assert_int_equal(spice_ticket_encrypt(pub, "pw", &a, want, NULL), 0);
        assert_int_equal(spice_ticket_encrypt_cached(&cache, pub, "pw", &b, t, NULL), 0);
        assert_memory_equal(t, want, sizeof(t));
        assert_int_equal(spice_ticket_decrypt(keys[i], t, pw, NULL), 0);
        assert_string_equal(pw, "pw");
        assert_memory_equal(cache.pub, pub, SPICE_TICKET_PUBKEY_SIZE);
        if (i == 0)
            first = cache.pkey;
        if (i == 1)
            assert_ptr_equal(cache.pkey, first); /* not parsed again */
    }
    uint8_t junk[SPICE_TICKET_PUBKEY_SIZE] = {0x30, 0x81, 0x9f};
    MigErr *err = NULL;
    assert_int_equal(spice_ticket_encrypt_cached(&cache, junk, "x", &b, t, &err), -EPROTO);
    assert_string_equal(err->msg, "ticket: the server's public key is not an RSA-1024 key");
    mig_err_free(err);
    assert_memory_equal(cache.pub, spice_ticket_key_public(k), SPICE_TICKET_PUBKEY_SIZE);
    spice_ticket_pub_cache_clear(&cache);
    assert_null(cache.pkey);
    spice_ticket_key_free(k);
    spice_ticket_key_free(other);
}

/* A ticket made by libcrypto's own RSA-OAEP (what spice-gtk does) decrypts. */
static void test_spice_ticket_accepts_libcrypto_oaep(void **state)
{
    (void)state;
    SpiceTicketKey *k = key_for(3);
    const uint8_t *p = spice_ticket_key_public(k);
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, SPICE_TICKET_PUBKEY_SIZE);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);
    assert_true(EVP_PKEY_encrypt_init(ctx) > 0);
    assert_true(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0);
    uint8_t t[SPICE_TICKET_BYTES];
    size_t tl = sizeof(t);
    assert_true(EVP_PKEY_encrypt(ctx, t, &tl, (const uint8_t *)"hunter2", 8) > 0);
    char pw[SPICE_PASSWORD_MAX + 1];
    assert_int_equal(spice_ticket_decrypt(k, t, pw, NULL), 0);
    assert_string_equal(pw, "hunter2");
    /* the client a server talks to is not NUL-terminating: refused */
    tl = sizeof(t);
    assert_true(EVP_PKEY_encrypt(ctx, t, &tl, (const uint8_t *)"hunter2", 7) > 0);
    MigErr *err = NULL;
    assert_int_equal(spice_ticket_decrypt(k, t, pw, &err), -EACCES);
    assert_string_equal(err->msg, "ticket: the password is not NUL-terminated");
    mig_err_free(err);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pk);
    spice_ticket_key_free(k);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spice_ticket_key_is_a_function_of_the_seed),
        cmocka_unit_test(test_spice_ticket_round_trip_and_refusals),
        cmocka_unit_test(test_spice_ticket_cached_key_gives_the_same_tickets),
        cmocka_unit_test(test_spice_ticket_accepts_libcrypto_oaep),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
