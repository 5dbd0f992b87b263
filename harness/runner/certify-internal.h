/*
 * certify-internal.h - what the sibling files of `migcert certify` share
 * (harness/runner/cmd-certify.c and certify-*.c); nothing else includes it.
 *
 *   certify-sandbox.c  a plugin in a child process, driven over a socketpair
 *                      with a request/response protocol and a per-call
 *                      timeout; the child can make one plugin callback fail
 *   certify-jail.c     the processes a sandbox runs in: a PID namespace and
 *                      session, rlimits, one fd, guard pages, bounded waits
 *   certify-proxy.c    a MigDevBackend whose calls go to a sandbox, so the
 *                      parent drives the plugin through MigDevice exactly as
 *                      the engine does (the checks of impl/device apply)
 *   certify-rules.c    the rules a certificate checks, and how a case fails
 *                      or skips (CertResult; the first failure wins)
 *   certify-steps.c    what the cases share: open a sandbox and a device,
 *                      enter a state, drain, save, load, migrate and compare
 *   certify-cases.c    the cases and the case list (-k selection)
 *   certify-report.c   report.txt, report.json and report.junit.xml
 *   cmd-certify.c      the command line and the run loop
 *
 * Invariants: a case reports through CertCtx.res only (certify_fail /
 * certify_skip); a sandbox that dies records why in CertSandbox.death and,
 * once a case has opened it, in CertCtx.death (the first death wins), so a
 * crash or a hang is blamed on plugin-crash / plugin-timeout whatever the
 * case was checking.  Harness code: blocking I/O with poll timeouts.
 */
#ifndef MIGCERT_CERTIFY_INTERNAL_H
#define MIGCERT_CERTIFY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/prng.h"
#include "device/device.h"


enum SbOp {
    SB_HELLO,
    SB_CREATE,
    SB_DESTROY,
    SB_ARC,
    SB_GET_STATE,
    SB_READ,
    SB_WRITE,
    SB_PRECOPY_INFO,
    SB_DATA_SIZE,
    SB_RESET,
    SB_GUEST_RUN,
    SB_DIGEST,
    SB_FORCE_ERROR,
    SB_FAULT,        /* arm: the next call of plugin callback `a` (CbId) fails */
    SB_FAULT_STATUS, /* how many armed failures fired; disarms */
    SB_VMSTATE,      /* the table's vmstate_json (ret 1 and the text, or 0) */
    SB__COUNT
};

/* The plugin callbacks a fault can be injected into.  The child wraps the
 * plugin's own table, so the failure happens below the engine's backends
 * (below the v1 adapter too): the adapter and MigDevice see exactly what a
 * failing plugin would give them.  Callbacks without an error return fail
 * with a value that cannot be right: get_state a non-state, v1_pending_bytes
 * a count the device does not have. */
typedef enum CbId {
    CB_CREATE,
    CB_RESET,
    CB_GET_STATE,
    CB_SET_STATE,
    CB_READ,
    CB_WRITE,
    CB_PRECOPY_INFO,
    CB_DATA_SIZE,
    CB_V1_SET_STATE,
    CB_V1_PENDING_BYTES,
    CB_V1_STAGE,
    CB_V1_RESUME_CHUNK,
    CB__COUNT
} CbId;

typedef struct SbReq {
    uint32_t op, inst;
    uint64_t a, b;
    uint32_t len;
} SbReq;

/* Every answer starts with it: anything else on the channel is junk the
 * plugin wrote there (plugin-fds). */
#define SB_RESP_MAGIC 0x4d435342u /* "MCSB" */

typedef struct SbResp {
    uint32_t magic;
    uint32_t procs; /* the host has child processes (the plugin forked) */
    int64_t ret;
    uint64_t x, y;
    uint32_t len; /* payload: data, or the error text when ret < 0 */
} SbResp;

#define SB_MAX_INST 8
#define SB_MAX_PAYLOAD (16u << 20)

/* ---- the jail (certify-jail.c) ---- */

/* What the host runs: the sandbox's child side, over the socket at `fd`. */
typedef void CertHostFn(int fd, void *arg);

typedef struct CertJail {
    pid_t pid;     /* the jail's init, as certify sees it */
    int pidfd;     /* -1 when the kernel has no pidfd_open */
    bool reaped;
    int status;    /* the init's wait status once reaped (-1: unknown) */
    const char *mode; /* "pid namespace", "user and pid namespaces", "own session only" */
} CertJail;

/* Monotonic milliseconds. */
int64_t certify_now_ms(void);

/* Start a jail whose host runs host(3, arg) with the socket `sock` as its
 * only fd (certify-jail.c says how).  0, or -errno with *errp. */
int certify_jail_spawn(CertJail *j, int sock, CertHostFn *host, void *arg, MigErr **errp);
/* Whether the jail has ended (reaping it, without waiting). */
bool certify_jail_ended(CertJail *j);
/* Wait for the jail to end until deadline_ms (certify_now_ms): 0 once
 * reaped, -ETIMEDOUT. */
int certify_jail_wait(CertJail *j, int64_t deadline_ms);
/* Kill every process of the jail and reap it (bounded). */
void certify_jail_kill(CertJail *j);
/* Processes in the jail besides its init and the host: the plugin's. */
int certify_jail_strays(CertJail *j);
/* Why a reaped jail ended, as one sentence naming the plugin and `op`. */
void certify_jail_death(const CertJail *j, const char *label, const char *op, char *out,
                        size_t cap);
/* Child side: a buffer of `len` bytes whose last byte is followed by a
 * PROT_NONE page (no spare byte); touching it ends the host under
 * plugin-overrun.  The mapping is kept in *g and reused while `len` fits
 * (the buffer always ends at the guard).  NULL when it cannot be mapped. */
typedef struct CertGuardBuf {
    uint8_t *base;
    size_t body;
} CertGuardBuf;
uint8_t *certify_guard_get(CertGuardBuf *g, size_t len);
void certify_guard_release(CertGuardBuf *g);

typedef struct CertSandbox {
    CertJail jail;
    int fd;
    bool dead;
    char *death; /* why it died, for every later call */
    char label[128];
    unsigned timeout_s;
    /* from HELLO */
    char name[64], version[64];
    uint32_t features, protocol;
    uint32_t callbacks; /* bit CbId: the plugin has that callback */
    /* where the case wants to hear about a death (NULL: nobody) */
    char *death_sink; /* 512 bytes; the first death's message */
    bool *hung;       /* set when a call timed out */
} CertSandbox;

/* The name of each CbId ("read", "v1_stage"), as the fault.<callback> cases
 * are named. */
extern const char *const certify_cb_names[CB__COUNT];

/* Load the plugin at `path` in a new child process (HELLO).  Returns NULL
 * when the child cannot be started; else the sandbox, which may already be
 * dead (sb->dead, sb->death) or have refused the plugin (*errp). */
CertSandbox *certify_sb_spawn(const char *path, unsigned timeout_s, MigErr **errp);

/* One call `op` on instance `inst`: returns the child's ret (or -EPIPE /
 * -ETIMEDOUT when the sandbox died, which kills it for every later call),
 * with the error text in *errp and the payload in out (up to out_cap). */
int64_t certify_sb_call(CertSandbox *sb, uint32_t op, uint32_t inst, uint64_t a, uint64_t b,
                        const void *payload, uint32_t len, SbResp *resp, void *out,
                        size_t out_cap, MigErr **errp);

/* Ends the child (without waiting on a hung one) and frees; NULL is fine. */
void certify_sb_free(CertSandbox *sb);

/* The file name part of a path ("good.so"). */
const char *certify_base_name(const char *path);

/* A MigDevice over a new instance of the sandbox's plugin (certify-proxy.c);
 * NULL with *errp when the plugin refuses to create one. */
MigDevice *certify_sb_device(CertSandbox *sb, uint32_t features, uint64_t seed, uint64_t mem,
                             MigErr **errp);

/* ---- results (certify-rules.c) ---- */

/* NOTRUN: the case was not started (the plugin hung earlier, or the time
 * budget is used up); it counts against the certificate like a failure. */
typedef enum CertStatus {
    CERT_ST_PASS,
    CERT_ST_FAIL,
    CERT_ST_SKIP,
    CERT_ST_NOTRUN,
    CERT_ST__COUNT
} CertStatus;

typedef struct CertResult {
    CertStatus st;
    const char *rule;
    char msg[512];
    char note[256]; /* what a passing case saw, when worth reporting */
} CertResult;

typedef struct CertCtx {
    const char *dev_path, *peer_path;
    unsigned timeout_s;
    uint32_t features; /* the plugin's */
    uint32_t peer_features;
    uint32_t callbacks, protocol, peer_protocol;
    CertResult *res;
    MigPrng prng;
    /* filled by the case's sandboxes: the first death, and hangs per plugin */
    char death[512];
    bool dev_hung, peer_hung;
} CertCtx;

typedef struct CertCase {
    char name[96];
    void (*fn)(CertCtx *c, const struct CertCase *k);
    uint32_t fset;
    int a, b;
    bool uses_peer;
} CertCase;

/* "pass", "fail", "skip", "not-run": the status in report.json. */
extern const char *const certify_status_names[CERT_ST__COUNT];

/* The sentence of a rule id ("" for an unknown one). */
const char *certify_rule_text(const char *id);

/* The rule a dead sandbox's message proves broken (plugin-timeout or
 * plugin-crash). */
const char *certify_death_rule(const char *death);

/* Fail the case under `rule` (the first failure wins; a sandbox that died
 * in the case is blamed instead, with its message appended). */
void certify_fail(CertCtx *c, const char *rule, const char *fmt, ...) MIG_PRINTF(3, 4);

/* Skip a case that has not failed, saying why. */
void certify_skip(CertCtx *c, const char *why);

/* The rule an engine-side error proves broken, else `dflt`. */
const char *certify_classify(const MigErr *err, const char *dflt);

/* certify_fail with "what: <err's message>", under the classified rule;
 * frees err. */
void certify_fail_err(CertCtx *c, const char *rule, MigErr *err, const char *what);

/* ---- steps the cases share (certify-steps.c) ---- */

typedef struct CertBuf {
    uint8_t *p;
    size_t len, cap;
} CertBuf;

void certify_buf_add(CertBuf *b, const void *p, size_t n);

/* A sandbox for `path` (the device or the peer plugin) whose deaths and
 * hangs are recorded in the case; NULL after failing the case. */
CertSandbox *certify_open_sb(CertCtx *c, const char *path);

/* A device with a bound on its STOP_COPY reads; NULL after failing. */
MigDevice *certify_open_dev(CertCtx *c, CertSandbox *sb, uint32_t f, uint64_t seed,
                            uint64_t mem);

/* Enter state s; false after failing the case under `rule`. */
bool certify_set_state(CertCtx *c, MigDevice *d, MigDevState s, const char *rule);

/* Whether the plugin has the digest/guest_run test hooks (skips the case
 * when it has none). */
bool certify_hooks(CertCtx *c, MigDevice *d);

/* Read until nothing now (-EAGAIN) or the end (0); sizes from the PRNG up to
 * `max` (0 = 64 KiB).  Returns the last result (-EAGAIN or 0), or -1 after
 * certify_fail(). */
ssize_t certify_drain(CertCtx *c, MigDevice *d, CertBuf *out, size_t max, const char *rule);

/* The source half: pre-copy passes with the guest writing, then
 * stop-and-copy to the end.  The device ends in STOP. */
bool certify_save(CertCtx *c, MigDevice *d, CertBuf *out, uint32_t dirty_ops, size_t max_read);

/* The destination half: RESUMING, writes (in random segments when
 * `segmented`), STOP.  Returns 0 or the first error. */
int certify_load(CertCtx *c, MigDevice *d, const uint8_t *p, size_t len, bool segmented,
                 MigErr **errp);

/* The device's state digest; false after failing the case. */
bool certify_digest(CertCtx *c, MigDevice *d, uint64_t *out);

/* A whole migration src -> dst, compared; false after failing the case. */
bool certify_migrate(CertCtx *c, MigDevice *src, MigDevice *dst, uint32_t dirty_ops);

/* ---- the case list (certify-cases.c) ---- */

/* Appends every case for a plugin with these features and callbacks (and
 * the peer cases when peer_stem is not NULL) to *v; returns the count. */
size_t certify_build_cases(CertCase **v, uint32_t features, uint32_t callbacks,
                           const char *peer_stem, const char *stem);

/* -k PAT: a case name exactly (when `exact`: some case has that name, so a
 * REPRO line reruns one case), else a glob, else a substring; NULL: all. */
bool certify_selected(const char *name, const char *pat, bool exact);

/* ---- reports (certify-report.c) ---- */

typedef struct CertReport {
    const char *outdir, *dev, *peer, *stem, *desc, *repro_base;
    const char *peer_desc; /* NULL without --peer */
    const CertCase *cases;
    const CertResult *res;
    size_t ncases, npass, nfail, nskip, nnotrun;
    /* SPICE certification (certify-spice.c): what is certified ("SPICE
     * server"; NULL: a device plugin), and report.json / report.junit.xml
     * written to these paths as well (NULL: only in outdir) */
    const char *kind;
    const char *json_path, *junit_path;
    struct json_t *extra; /* more fields of report.json (SPICE: the endpoint); NULL none */
} CertReport;

/* Creates rp->outdir and writes report.txt, report.json and
 * report.junit.xml there.  Returns 0, or -errno with *errp saying which
 * file or folder could not be written and why. */
int certify_write_reports(const CertReport *rp, MigErr **errp);

/* certify_write_reports, then "certify STEM: report in DIR" and the counts
 * on stdout; the exit status: 0 all passed, 1 a case failed or was not
 * run, 3 the report could not be written (said on stderr). */
int certify_finish(const CertReport *rp);

#endif
