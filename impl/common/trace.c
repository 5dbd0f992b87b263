/*
 * trace.c - the run's event trace folded into a running SHA-256 (see trace.h).
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

struct MigTrace {
    EVP_MD_CTX *md;
    uint64_t count;
    FILE *echo;
};

MigTrace *mig_trace_new(void)
{
    MigTrace *t = mig_malloc0(sizeof(*t));
    t->md = EVP_MD_CTX_new();
    if (!t->md || EVP_DigestInit_ex(t->md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(t->md);
        free(t);
        return NULL;
    }
    return t;
}

void mig_trace_free(MigTrace *t)
{
    if (!t)
        return;
    EVP_MD_CTX_free(t->md);
    free(t);
}

void mig_trace_set_echo(MigTrace *t, FILE *out)
{
    if (t)
        t->echo = out;
}

void mig_trace_log(MigTrace *t, uint64_t now_ns, const char *who, const char *fmt, ...)
{
    if (!t)
        return;
    /* The line "t=<now_ns> <who>: <body>\n", the body cut at 1023 bytes;
     * the body is formatted straight into the line (this runs for every
     * message of a case: one formatting pass, not two). */
    char line[1200];
    /* the prefix gets what the body's 1024 bytes leave (who is short) */
    int p = snprintf(line, sizeof(line) - 1024, "t=%llu %s: ", (unsigned long long)now_ns, who);
    if (p < 0)
        return;
    size_t len = MIG_MIN((size_t)p, sizeof(line) - 1024 - 1);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + len, 1024, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    len += MIG_MIN((size_t)n, 1023);
    line[len++] = '\n';
    EVP_DigestUpdate(t->md, line, len);
    t->count++;
    if (t->echo)
        fwrite(line, 1, len, t->echo);
}

uint64_t mig_trace_count(const MigTrace *t)
{
    return t ? t->count : 0;
}

void mig_trace_hash(const MigTrace *t, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    out[0] = 0;
    if (!copy)
        return;
    if (EVP_MD_CTX_copy_ex(copy, t->md) == 1 && EVP_DigestFinal_ex(copy, md, &len) == 1)
        for (unsigned i = 0; i < len && i < 32; i++)
            snprintf(out + 2 * i, 3, "%02x", md[i]);
    EVP_MD_CTX_free(copy);
}
