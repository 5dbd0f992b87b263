/*
 * certify-rules.c - the rules a `migcert certify` certificate checks (each
 * case names the one it proves broken), and how a case records its result
 * (certify-internal.h): the first failure wins, and a plugin that crashed
 * or hung is blamed for it (plugin-crash, plugin-timeout) whatever the case
 * was checking, because the symptom (a refused arc, a wrong state read
 * back from a dead sandbox) is not the rule the plugin broke.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "certify-internal.h"
#include "certify-spice.h"

typedef struct Rule {
    const char *id;
    const char *text;
} Rule;

static const Rule rules[] = {
    {"load", "the plugin loads, exports migcert_device_plugin_v1 and speaks a known ABI version"},
    {"arc-table", "each direct arc of the feature set succeeds and the device reports its target"},
    {"non-arc-refused", "a pair that is not a direct arc is refused with EINVAL, nothing changes"},
    {"stopcopy-to-precopy-refused",
     "STOP_COPY -> PRE_COPY(_P2P) is refused; the device stays in STOP_COPY and its data still "
     "reads to the end"},
    {"invalid-state-refused",
     "ERROR, unsupported states and unknown values are refused; nothing changes"},
    {"error-refuses-arcs", "in ERROR every arc is refused"},
    {"reset-leaves-error", "reset takes the device from ERROR (or any state) to RUNNING"},
    {"precopy-info",
     "PRECOPY_INFO is EINVAL outside PRE_COPY*; initial_bytes never grows; dirty_bytes starts "
     "at 0 and rises when the guest writes"},
    {"read-end-codes", "ENOMSG means 'nothing now' only in PRE_COPY*; 0 means the end only in "
                       "STOP_COPY"},
    {"pending-reaches-zero",
     "pending data reaches zero: a drained PRE_COPY reports 0 bytes, and STOP_COPY reads end "
     "with 0, every time"},
    {"read-length", "read() returns at most the number of bytes asked for"},
    {"round-trip", "the state resumed from a saved stream equals the saved state"},
    {"resume-validates",
     "RESUMING -> STOP refuses a truncated, corrupt or concatenated stream and the device stays "
     "RESUMING (or ERROR)"},
    {"abort-keeps-state",
     "aborting a migration returns the device to RUNNING with its state intact, and a new "
     "session carries everything"},
    {"fault-recovery",
     "after a callback fails the device stays consistent and a retried migration succeeds"},
    {"fault-reached",
     "the failure injected into a callback fires during the case (a case whose armed "
     "callback is never called proves nothing)"},
    {"vmstate-description",
     "the optional vmstate description is valid JSON holding one -dump-vmstate entry"},
    {"peer-compatible",
     "source and destination speak the same protocol: a v1 device's stream (transactions "
     "framed by the adapter) does not resume on a v2 device, nor the reverse"},
    {"plugin-crash", "the plugin never crashes"},
    {"plugin-timeout", "every callback returns within the timeout"},
    {"plugin-overrun",
     "the plugin never reads or writes past the end of a buffer it is given (each one ends "
     "at a guard page)"},
    {"plugin-processes", "the plugin starts no process (no fork, no exec)"},
    {"plugin-signals", "the plugin sends no signal to another process (its parent above all)"},
    {"plugin-fds",
     "the plugin writes nothing on file descriptors it did not open (the sandbox's channel is "
     "the one it inherits)"},
    {"plugin-limits", "the plugin stays within the sandbox's rlimits (no file over 64 MiB)"},
};

const char *certify_rule_text(const char *id)
{
    for (size_t i = 0; i < MIG_ARRAY_SIZE(rules); i++)
        if (!strcmp(rules[i].id, id))
            return rules[i].text;
    const char *spice = certify_spice_rule_text(id); /* `certify --spice` */
    return spice ? spice : "";
}

const char *const certify_status_names[CERT_ST__COUNT] = {
    [CERT_ST_PASS] = "pass", [CERT_ST_FAIL] = "fail", [CERT_ST_SKIP] = "skip",
    [CERT_ST_NOTRUN] = "not-run"};

/* The rule each kind of sandbox death proves broken, by the words its
 * message (certify-sandbox.c, certify-jail.c) carries. */
static const struct {
    const char *words, *rule;
} deaths[] = {
    {" timed out after ", "plugin-timeout"},
    {" went past the end of the buffer ", "plugin-overrun"},
    {" (a plugin must not fork)", "plugin-processes"},
    {" to its parent in ", "plugin-signals"},
    {" wrote junk on the sandbox's channel ", "plugin-fds"},
    {" past the sandbox's file size limit ", "plugin-limits"},
};

/* The rule a dead sandbox proves broken. */
const char *certify_death_rule(const char *death)
{
    for (size_t i = 0; i < MIG_ARRAY_SIZE(deaths); i++)
        if (strstr(death, deaths[i].words))
            return deaths[i].rule;
    return "plugin-crash";
}

void certify_fail(CertCtx *c, const char *rule, const char *fmt, ...)
{
    if (c->res->st == CERT_ST_FAIL)
        return; /* first failure wins */
    c->res->st = CERT_ST_FAIL;
    c->res->rule = rule;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->res->msg, sizeof(c->res->msg), fmt, ap);
    va_end(ap);
    /* Whatever the case was checking, a plugin that crashed or hung broke
     * that rule first: never blame the symptom (a refused arc, a wrong
     * state read back from a dead sandbox). */
    if (c->death[0]) {
        c->res->rule = certify_death_rule(c->death);
        if (!strstr(c->res->msg, c->death)) {
            size_t l = strlen(c->res->msg);
            snprintf(c->res->msg + l, sizeof(c->res->msg) - l, " (%s)", c->death);
        }
    }
}

void certify_skip(CertCtx *c, const char *why)
{
    if (c->res->st != CERT_ST_PASS)
        return;
    c->res->st = CERT_ST_SKIP;
    snprintf(c->res->msg, sizeof(c->res->msg), "%s", why);
}

/* Pick the rule an engine-side error proves broken. */
const char *certify_classify(const MigErr *err, const char *dflt)
{
    const char *m = err && err->msg ? err->msg : "";
    if (strstr(m, " crashed (signal") || strstr(m, " exited (status") ||
        strstr(m, ": the sandbox went away in "))
        return "plugin-crash";
    for (size_t i = 0; i < MIG_ARRAY_SIZE(deaths); i++)
        if (strstr(m, deaths[i].words))
            return deaths[i].rule;
    if (strstr(m, "-byte buffer"))
        return "read-length";
    if (strstr(m, "never reports the end"))
        return "pending-reaches-zero";
    if (strstr(m, "ENOMSG in STOP_COPY") || strstr(m, "(end of stream) in"))
        return "read-end-codes";
    return dflt;
}

void certify_fail_err(CertCtx *c, const char *rule, MigErr *err, const char *what)
{
    certify_fail(c, certify_classify(err, rule), "%s: %s", what,
                 err && err->msg ? err->msg : "failed");
    mig_err_free(err);
}
