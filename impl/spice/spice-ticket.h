/*
 * spice-ticket.h - the SPICE ticket: an RSA-1024 key per server, its public
 * half as the 162-byte DER SubjectPublicKeyInfo of the link reply, and the
 * 128-byte RSA-OAEP (SHA-1, MGF1-SHA-1) encryption of the NUL-terminated
 * password (docs/protocol-spice.md "Auth and ticket").
 *
 * Owns: SpiceTicketKey.  The crypto is OpenSSL's libcrypto; what it would
 * draw from the system's random source is drawn from the run's PRNG instead
 * (the primes of the key, the OAEP seed), so a simulated run that links a
 * SPICE client still replays bit for bit from its seed.  The key is for
 * conformance testing, like spice-server's ticket: it keeps a password off
 * the wire in clear, nothing more.
 * Called by: the server (key, decrypt) and the scripted client (encrypt).
 *
 * Even with ticketing disabled the server decrypts the ticket and refuses
 * one that does not decrypt (spice-server does the same; spice-gtk always
 * sends one): only the password comparison is skipped.
 */
#ifndef MIGCERT_SPICE_TICKET_H
#define MIGCERT_SPICE_TICKET_H

#include <stddef.h>
#include <stdint.h>

#include "../common/common.h"
#include "../common/prng.h"

#define SPICE_TICKET_BYTES 128u
#define SPICE_TICKET_PUBKEY_SIZE 162u
#define SPICE_PASSWORD_MAX 60u

typedef struct SpiceTicketKey SpiceTicketKey;

/* A new RSA-1024 key (e = 65537) whose primes come from `prng`.  NULL with
 * errp set when libcrypto fails. */
SpiceTicketKey *spice_ticket_key_new(MigPrng *prng, MigErr **errp);
void spice_ticket_key_free(SpiceTicketKey *k);

/* The 162-byte public key of the link reply. */
const uint8_t *spice_ticket_key_public(const SpiceTicketKey *k);

/* Decrypt a ticket into `password` (NUL-terminated, at most
 * SPICE_PASSWORD_MAX characters).  Returns 0, or -EACCES with errp set when
 * the ticket does not decrypt or holds no NUL-terminated password. */
int spice_ticket_decrypt(const SpiceTicketKey *k, const uint8_t ticket[SPICE_TICKET_BYTES],
                         char password[SPICE_PASSWORD_MAX + 1], MigErr **errp);

/* The client's side: encrypt `password` ("" when there is none) under the
 * server's public key, the OAEP seed drawn from `prng`.  Returns 0, -EINVAL
 * for a password longer than SPICE_PASSWORD_MAX, or -EPROTO when the public
 * key does not parse as an RSA key (errp says which). */
int spice_ticket_encrypt(const uint8_t pub[SPICE_TICKET_PUBKEY_SIZE], const char *password, MigPrng *prng,
                         uint8_t ticket[SPICE_TICKET_BYTES], MigErr **errp);

/* The last server key a client parsed: a client's channels all link to one
 * server, and parsing its key (OpenSSL 3's DER decoder) is most of what an
 * encryption costs.  Owned by the client, zero-initialised when empty,
 * emptied with spice_ticket_pub_cache_clear; it holds one key (a migrating
 * client's target key replaces its source's). */
typedef struct SpiceTicketPubCache {
    uint8_t pub[SPICE_TICKET_PUBKEY_SIZE];
    struct evp_pkey_st *pkey; /* NULL: empty */
} SpiceTicketPubCache;

void spice_ticket_pub_cache_clear(SpiceTicketPubCache *c);

/* spice_ticket_encrypt through `cache` (NULL: parse the key each time); the
 * same ticket, byte for byte. */
int spice_ticket_encrypt_cached(SpiceTicketPubCache *cache, const uint8_t pub[SPICE_TICKET_PUBKEY_SIZE],
                                const char *password, MigPrng *prng, uint8_t ticket[SPICE_TICKET_BYTES],
                                MigErr **errp);

#endif
