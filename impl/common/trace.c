/*
 * trace.c - the run's event trace folded into a running SHA-256 (see trace.h).
 */
#include <openssl/evp.h>
#include <stdarg.h>
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

/* A line is "t=<now_ns> <who>: <body>\n": the prefix at most PREFIX_MAX
 * bytes (who is short), the body at most BODY_MAX.  The lines of the
 * messages of a SPICE case are most of a run's lines: the prefix and
 * mig_trace_msg's body are written by hand, not by printf (a sixth of a
 * native pair run went to formatting them), with the very bytes printf
 * wrote, so no trace hash moves. */
#define BODY_MAX 1023
#define PREFIX_MAX 175
#define LINE_SIZE (PREFIX_MAX + BODY_MAX + 2)

/* Append what fits of s[0..n) at line[*len], up to `cap` bytes in all. */
static void put_bytes(char *line, size_t *len, size_t cap, const char *s, size_t n)
{
    n = MIG_MIN(n, cap - *len);
    memcpy(line + *len, s, n);
    *len += n;
}

/* v in decimal, as %llu writes it. */
static void put_u64(char *line, size_t *len, size_t cap, uint64_t v)
{
    char d[20];
    size_t n = sizeof(d);
    do {
        d[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put_bytes(line, len, cap, d + n, sizeof(d) - n);
}

static size_t put_prefix(char *line, uint64_t now_ns, const char *who)
{
    size_t len = 0;
    put_bytes(line, &len, PREFIX_MAX, "t=", 2);
    put_u64(line, &len, PREFIX_MAX, now_ns);
    put_bytes(line, &len, PREFIX_MAX, " ", 1);
    put_bytes(line, &len, PREFIX_MAX, who, strlen(who));
    put_bytes(line, &len, PREFIX_MAX, ": ", 2);
    return len;
}

static void emit(MigTrace *t, char *line, size_t len)
{
    line[len++] = '\n';
    EVP_DigestUpdate(t->md, line, len);
    t->count++;
    if (t->echo)
        fwrite(line, 1, len, t->echo);
}

void mig_trace_log(MigTrace *t, uint64_t now_ns, const char *who, const char *fmt, ...)
{
    if (!t)
        return;
    char line[LINE_SIZE];
    size_t len = put_prefix(line, now_ns, who);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + len, BODY_MAX + 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    emit(t, line, len + MIG_MIN((size_t)n, BODY_MAX));
}

void mig_trace_msg(MigTrace *t, uint64_t now_ns, const char *who, const char *verb, const char *name,
                   uint64_t serial, uint32_t size)
{
    if (!t)
        return;
    char line[LINE_SIZE];
    size_t len = put_prefix(line, now_ns, who);
    size_t cap = len + BODY_MAX;
    put_bytes(line, &len, cap, verb, strlen(verb));
    put_bytes(line, &len, cap, " ", 1);
    put_bytes(line, &len, cap, name, strlen(name));
    put_bytes(line, &len, cap, " serial ", 8);
    put_u64(line, &len, cap, serial);
    put_bytes(line, &len, cap, " size ", 6);
    put_u64(line, &len, cap, size);
    emit(t, line, len);
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
