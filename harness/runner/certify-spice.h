/*
 * certify-spice.h - what the files of `migcert certify --spice` share
 * (certify-spice*.c); nothing else includes it but cmd-certify.c, which
 * hands the command line over (certify_spice_main).
 *
 *   certify-spice.c        the command line, the case list, the run loop,
 *                          the reports (through certify-report.c)
 *   certify-spice-side.c   a source or target: its QMP and SPICE addresses,
 *                          the command that (re)creates it, whether it is
 *                          still fresh for a migration
 *   certify-spice-qmp.c    a QMP client on the event loop (the fake client
 *                          runs on the same loop while a command waits)
 *   certify-spice-cases.c  the migration cases (semi-seamless, switch-host,
 *                          cancel, seamless) and the display comparison
 *   certify-spice-input.c  the link stage and hostile-input cases
 *
 * Invariants: a case reports through CertCtx.res only (certify_fail /
 * certify_skip, certify-rules.c), under one of the rules of
 * certify_spice_rule_text; every wait runs the loop until the event it
 * means, bounded by --timeout as a hang guard only; a case leaves no fake
 * client, probe or QMP command pending on the loop.
 */
#ifndef MIGCERT_CERTIFY_SPICE_H
#define MIGCERT_CERTIFY_SPICE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "certify-internal.h"
#include "client/fake-client.h"
#include "common/loop.h"
#include "spice-dial.h"

/* ---- QMP (certify-spice-qmp.c) ---- */

typedef struct CsQmp CsQmp;

/* Connect to "unix:PATH" or "HOST:PORT", read the greeting and negotiate
 * capabilities, running `loop` (bounded by timeout_ns of loop time).
 * NULL with errp set when it cannot. */
CsQmp *cs_qmp_open(MigLoop *loop, const char *addr, uint64_t timeout_ns, MigErr **errp);
/* Run `cmd` with `args` (stolen; NULL: none), running the loop until the
 * answer or timeout_ns.  0 with *ret the "return" value (the caller's; ret
 * may be NULL), or -EPROTO with the server's error class and description,
 * -ETIMEDOUT, or -EPIPE when the connection closed. */
int cs_qmp_exec(CsQmp *q, const char *cmd, json_t *args, uint64_t timeout_ns, json_t **ret, MigErr **errp);
/* The version its QMP greeting gave ("7.2.0 (package)"; "" without one). */
const char *cs_qmp_version(const CsQmp *q);
/* Whether the connection is still open (a server that died closes it). */
bool cs_qmp_alive(CsQmp *q);
void cs_qmp_close(CsQmp *q);

/* ---- sides (certify-spice-side.c) ---- */

typedef enum CsSideState {
    CS_SIDE_NONE,  /* not connected yet */
    CS_SIDE_FRESH, /* connected, never migrated */
    CS_SIDE_USED,  /* took part in a migration */
    CS_SIDE_DEAD,  /* its QMP connection closed */
    CS_SIDE__COUNT
} CsSideState;

typedef struct CsSide {
    const char *name;      /* "source", "target" */
    const char *qmp_addr;  /* --src-qmp */
    const char *spice_arg; /* --src-spice as given */
    const char *cmd;       /* --src-cmd (NULL: the vendor provides it) */
    SpiceAddr spice;
    CsQmp *qmp;
    CsSideState state;
    char why[160];         /* what used or killed it ("case migrate.cancel") */
    pid_t pid;             /* the command's process group, when we started it */
    unsigned starts;
    char version[128];     /* its QMP greeting's version, once connected */
} CsSide;

/* ---- the run (certify-spice.c) ---- */

typedef struct CsRun {
    MigLoop *loop;
    CsSide src, dst;
    const char *password;
    const char *migrate_uri; /* --migrate-uri */
    const char *outdir;
    uint64_t timeout_ns;     /* --timeout: the hang guard of every wait */
    const char *case_name;   /* the case running (for side logs and messages) */
} CsRun;

typedef struct CsCase {
    const char *name;
    const char *rule;
    void (*fn)(CsRun *r, CertCtx *c, const struct CsCase *k);
    int arg;
    bool migrates; /* needs a fresh source and target, and uses both up */
} CsCase;

/* The sentence of a SPICE rule id (NULL for an unknown one). */
const char *certify_spice_rule_text(const char *id);

/* Make `s` usable: connect (starting its command first when it has one and
 * is not running, or re-creating it when `fresh` is asked and it was used).
 * 0, or -errno with `why` saying why the case cannot run. */
int cs_side_ready(CsRun *r, CsSide *s, bool fresh, char *why, size_t why_len);
/* The side took part in a migration, or died: `what` says how. */
void cs_side_mark(CsSide *s, CsSideState st, const char *what);
/* Whether the side's process still answers QMP (query-status). */
bool cs_side_alive(CsRun *r, CsSide *s);
/* Stop what this run started (quit, then SIGKILL to the process group). */
void cs_side_stop(CsRun *r, CsSide *s);

/* ---- what the cases share (certify-spice-cases.c) ---- */

/* A fake client linked to `side` with main capabilities `main_caps`
 * (n == 0: spice-gtk's 0xF); NULL after failing the case. */
FakeClient *cs_client_new(CsRun *r, CertCtx *c, CsSide *side, const SpiceCapSet *main_caps, const char *who);
void cs_client_free(FakeClient *fc);
/* Run the loop until pred(opaque) or --timeout; false when it timed out. */
bool cs_wait(CsRun *r, bool (*pred)(void *opaque), void *opaque);
/* The client linked every channel its server listed (CHANNELS_LIST came
 * and nothing is still linking). */
bool cs_links_done(const FakeClient *fc);
/* The client's session ended (no channel left) or it met an error: what
 * every wait on the client also stops for. */
bool cs_client_gone(const FakeClient *fc);
/* Wait until the client linked every channel its server listed and shows
 * a primary surface; false after failing the case under `rule`. */
bool cs_client_settled(CsRun *r, CertCtx *c, FakeClient *fc, const char *rule);

/* ---- the cases ---- */

void cs_case_link_channels(CsRun *r, CertCtx *c, const CsCase *k);
void cs_case_link_error(CsRun *r, CertCtx *c, const CsCase *k);
void cs_case_wrong_password(CsRun *r, CertCtx *c, const CsCase *k);
void cs_case_semi_seamless(CsRun *r, CertCtx *c, const CsCase *k);
void cs_case_switch_host(CsRun *r, CertCtx *c, const CsCase *k);
void cs_case_cancel(CsRun *r, CertCtx *c, const CsCase *k);
void cs_case_seamless(CsRun *r, CertCtx *c, const CsCase *k);
void cs_case_hostile(CsRun *r, CertCtx *c, const CsCase *k);
void cs_case_hostile_blob(CsRun *r, CertCtx *c, const CsCase *k);

/* The link-error and hostile-input variants (CsCase.arg). */
enum {
    CS_LINK_BAD_MAGIC,
    CS_LINK_VERSION,
    CS_LINK_BAD_SIZE,
    CS_LINK_NO_SESSION,
    CS_LINK_NO_CHANNEL,
    CS_LINK__COUNT
};
enum {
    CS_HOSTILE_TRUNCATED,
    CS_HOSTILE_OVERSIZED,
    CS_HOSTILE_UNKNOWN,
    CS_HOSTILE_UNSOLICITED_CONNECTED,
    CS_HOSTILE_UNSOLICITED_END,
    CS_HOSTILE_FLUSH_MARK,
    CS_HOSTILE__COUNT
};
enum { CS_BLOB_BAD_MAGIC, CS_BLOB_NEWER_VERSION, CS_BLOB__COUNT };

/* The entry point: argv as cmd_certify got it (argv[-1] is migcert). */
int certify_spice_main(int argc, char **argv);

#endif
