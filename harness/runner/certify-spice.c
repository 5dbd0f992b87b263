/*
 * certify-spice.c - `migcert certify --spice`: the client-side conformance
 * cases against a SPICE server a vendor points migcert at, a source and a
 * target (two QEMUs, two `migcert vm --spice`, or one of each):
 *
 *   migcert certify --spice --src-qmp ADDR --src-spice ADDR
 *                   --dst-qmp ADDR --dst-spice ADDR [--migrate-uri URI]
 *                   [--src-cmd CMD] [--dst-cmd CMD] [--password P]
 *                   [--out DIR] [--json F] [--junit F] [-k CASE]
 *                   [--timeout SECONDS] [--list]
 *
 * ADDR is unix:PATH or HOST:PORT.  --migrate-uri is what the target's
 * -incoming listens on (the migration cases are skipped without it).  A
 * migration uses the pair up (certify-spice-side.c): with --src-cmd and
 * --dst-cmd (shell commands that start the source, and the target with
 * -incoming) every migration case gets a new pair; without them the vendor
 * provides one fresh pair and the migration cases after the first are not
 * run.  --timeout (default 30 s) is the hang guard of every wait.
 *
 * The cases, each under a rule (certify_spice_rule_text) whose sentence the
 * report prints, are listed in spice_cases[] below and in the files that run
 * them (certify-spice-input.c, certify-spice-cases.c).  Reports: report.txt,
 * report.json and report.junit.xml in DIR (default reports/out/certify-spice),
 * written by certify-report.c as for device certification (report.json
 * adds "kind": "spice" and "endpoint": each side's QMP and SPICE address,
 * command and the version its QMP greeting gave, the migrate URI, whether
 * a password was used), plus --json F and --junit F; one REPRO line per failure on stderr and in the report.  Exit 0
 * every case passed or was skipped, 1 a case failed or was not run, 2 usage,
 * 3 the report could not be written.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "certify-spice.h"

typedef struct Rule {
    const char *id, *text;
} Rule;

static const Rule spice_rules[] = {
    {"spice-link", "a client links main and every channel CHANNELS_LIST names, and the display shows a primary "
                   "surface"},
    {"spice-link-errors", "a link the server cannot take gets the link error of docs/protocol-spice.md section 2: "
                          "INVALID_MAGIC, VERSION_MISMATCH, INVALID_DATA, BAD_CONNECTION_ID, "
                          "CHANNEL_NOT_AVAILABLE, PERMISSION_DENIED"},
    {"spice-migration", "the QMP side of a migration works: client_migrate_info, migrate to --migrate-uri, "
                        "migrate_cancel, and a cancelled migration leaves the source's guest running"},
    {"spice-semi-seamless", "a client with SEMI_SEAMLESS gets MIGRATE_BEGIN, links to the target, and after "
                            "MIGRATE_END is on the target in the same session with every channel (no "
                            "SWITCH_HOST)"},
    {"spice-switch-host", "a client without SEMI_SEAMLESS gets MIGRATE_SWITCH_HOST at the end and starts a new "
                          "session on the target"},
    {"spice-cancel", "migrate_cancel after the client linked to the target sends MIGRATE_CANCEL; the client "
                     "stays on the source in its session with every channel working"},
    {"spice-seamless", "with seamless-migration=on the client gets MIGRATE_BEGIN_SEAMLESS and ends on the target "
                       "in the same session with no MAIN_INIT and no SWITCH_HOST"},
    {"spice-seamless-ack", "when the source offers seamless migration (MIGRATE_BEGIN_SEAMLESS), the target ACKs "
                           "the client's DO_SEAMLESS and the switch is seamless: no NACK, no fallback to "
                           "semi-seamless or switch-host"},
    {"spice-display", "after a migration the client's primary surface is pixel-equal to the target's screendump"},
    {"spice-media", "playback frames and port bytes carrying migcert's sequence go on across the switch with no "
                    "gap and no repeat"},
    {"spice-hostile-input", "a truncated, oversized, unknown or unsolicited message disconnects the client that "
                            "sent it (an unsolicited one may be ignored); the server keeps its other clients and "
                            "serves new ones"},
    {"spice-no-abort", "no client input ends the server process (spice-server 0.15.1 aborts on an unsolicited "
                       "MIGRATE_FLUSH_MARK and on a migration blob with a bad magic or a newer version)"},
    {"spice-blob-refused", "a migration blob with a bad magic or a newer version is refused: that client is "
                           "disconnected"},
};

const char *certify_spice_rule_text(const char *id)
{
    for (size_t i = 0; i < MIG_ARRAY_SIZE(spice_rules); i++)
        if (!strcmp(spice_rules[i].id, id))
            return spice_rules[i].text;
    return NULL;
}

static const CsCase spice_cases[] = {
    {"link.channels", "spice-link", cs_case_link_channels, 0, false},
    {"link.bad-magic", "spice-link-errors", cs_case_link_error, CS_LINK_BAD_MAGIC, false},
    {"link.version-mismatch", "spice-link-errors", cs_case_link_error, CS_LINK_VERSION, false},
    {"link.bad-size", "spice-link-errors", cs_case_link_error, CS_LINK_BAD_SIZE, false},
    {"link.no-session", "spice-link-errors", cs_case_link_error, CS_LINK_NO_SESSION, false},
    {"link.channel-not-available", "spice-link-errors", cs_case_link_error, CS_LINK_NO_CHANNEL, false},
    {"link.wrong-password", "spice-link-errors", cs_case_wrong_password, 0, false},
    {"migrate.semi-seamless", "spice-semi-seamless", cs_case_semi_seamless, 0, true},
    {"migrate.switch-host", "spice-switch-host", cs_case_switch_host, 0, true},
    {"migrate.cancel", "spice-cancel", cs_case_cancel, 0, true},
    {"migrate.seamless", "spice-seamless", cs_case_seamless, 0, true},
    {"hostile.truncated", "spice-hostile-input", cs_case_hostile, CS_HOSTILE_TRUNCATED, false},
    {"hostile.oversized", "spice-hostile-input", cs_case_hostile, CS_HOSTILE_OVERSIZED, false},
    {"hostile.unknown-message", "spice-hostile-input", cs_case_hostile, CS_HOSTILE_UNKNOWN, false},
    {"hostile.unsolicited-migrate-connected", "spice-hostile-input", cs_case_hostile,
     CS_HOSTILE_UNSOLICITED_CONNECTED, false},
    {"hostile.unsolicited-migrate-end", "spice-hostile-input", cs_case_hostile, CS_HOSTILE_UNSOLICITED_END, false},
    {"hostile.flush-mark", "spice-no-abort", cs_case_hostile, CS_HOSTILE_FLUSH_MARK, false},
    {"hostile.blob-bad-magic", "spice-no-abort", cs_case_hostile_blob, CS_BLOB_BAD_MAGIC, false},
    {"hostile.blob-newer-version", "spice-no-abort", cs_case_hostile_blob, CS_BLOB_NEWER_VERSION, false},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: migcert certify --spice --src-qmp ADDR --src-spice ADDR --dst-qmp ADDR --dst-spice ADDR\n"
            "                       [--migrate-uri URI] [--src-cmd CMD] [--dst-cmd CMD] [--password P]\n"
            "                       [--out DIR] [--json F] [--junit F] [-k CASE] [--timeout SECONDS] [--list]\n"
            "  ADDR is unix:PATH or HOST:PORT; --migrate-uri is what the target's -incoming listens on;\n"
            "  --src-cmd/--dst-cmd start a fresh source/target (the target with -incoming) for every case\n"
            "  that migrates; without them one fresh pair serves the first migration case only\n");
}

/* Append `a` to the repro line, quoted for the shell when it needs it. */
static void repro_add(char *b, size_t len, const char *a)
{
    size_t o = strlen(b);
    bool plain = a[0] != 0;
    for (const char *p = a; *p; p++)
        plain &= (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 strchr("-_./:=,@+", *p) != NULL;
    if (plain) {
        snprintf(b + o, len - o, " %s", a);
        return;
    }
    o += (size_t)snprintf(b + o, len - o, " '");
    for (const char *p = a; *p && o + 5 < len; p++)
        o += (size_t)snprintf(b + o, len - o, *p == '\'' ? "'\\''" : "%c", *p);
    snprintf(b + o, len - o, "'");
}

/* A relative unix path made absolute: a migration target's path travels
 * to the other server in client_migrate_info. */
static int side_addr(CsSide *s, MigErr **errp)
{
    if (spice_addr_parse(s->spice_arg, &s->spice, errp) < 0)
        return -EINVAL;
    if (s->spice.is_unix && s->spice.host[0] != '/') {
        char cwd[PATH_MAX], abs[sizeof(s->spice.host)];
        if (!getcwd(cwd, sizeof(cwd)) ||
            (size_t)snprintf(abs, sizeof(abs), "%s/%s", cwd, s->spice.host) >= 108)
            return mig_err_set(errp, -ENAMETOOLONG, "%s: the absolute path is too long for a unix socket",
                               s->spice_arg);
        snprintf(s->spice.host, sizeof(s->spice.host), "%s", abs);
    }
    return 0;
}

int certify_spice_main(int argc, char **argv)
{
    CsRun r = {.src = {.name = "source"}, .dst = {.name = "target"}};
    const char *out = NULL, *pat = NULL, *json_path = NULL, *junit_path = NULL;
    unsigned timeout_s = 30;
    bool list = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **slot = !strcmp(a, "--src-qmp")       ? &r.src.qmp_addr
                            : !strcmp(a, "--src-spice")   ? &r.src.spice_arg
                            : !strcmp(a, "--src-cmd")     ? &r.src.cmd
                            : !strcmp(a, "--dst-qmp")     ? &r.dst.qmp_addr
                            : !strcmp(a, "--dst-spice")   ? &r.dst.spice_arg
                            : !strcmp(a, "--dst-cmd")     ? &r.dst.cmd
                            : !strcmp(a, "--migrate-uri") ? &r.migrate_uri
                            : !strcmp(a, "--password")    ? &r.password
                            : !strcmp(a, "--out")         ? &out
                            : !strcmp(a, "--json")        ? &json_path
                            : !strcmp(a, "--junit")       ? &junit_path
                            : !strcmp(a, "-k")            ? &pat
                                                          : NULL;
        if (!strcmp(a, "--spice"))
            continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--list")) {
            list = true;
        } else if (slot && v) {
            *slot = argv[++i];
        } else if (!strcmp(a, "--timeout") && v) {
            char *end;
            errno = 0;
            unsigned long t = strtoul(v, &end, 10);
            if (errno || end == v || *end || t == 0 || t > 86400 || v[0] == '-' || v[0] == '+') {
                fprintf(stderr, "migcert certify: --timeout takes a whole number of seconds (1 to 86400), not "
                                "'%s'\n", v);
                return 2;
            }
            timeout_s = (unsigned)t;
            i++;
        } else {
            fprintf(stderr, "migcert certify --spice: %s%s\n", slot || !strcmp(a, "--timeout") ? "a value is due after " : "unknown argument ", a);
            usage(stderr);
            return 2;
        }
    }
    bool exact = false, any = false;
    size_t ncases = MIG_ARRAY_SIZE(spice_cases);
    for (size_t i = 0; pat && i < ncases; i++)
        exact |= !strcmp(spice_cases[i].name, pat);
    for (size_t i = 0; i < ncases; i++)
        any |= certify_selected(spice_cases[i].name, pat, exact);
    if (list) {
        for (size_t i = 0; i < ncases; i++)
            if (certify_selected(spice_cases[i].name, pat, exact))
                printf("%s\n", spice_cases[i].name);
        return 0;
    }
    if (!r.src.qmp_addr || !r.src.spice_arg || !r.dst.qmp_addr || !r.dst.spice_arg) {
        fprintf(stderr, "migcert certify --spice: --src-qmp, --src-spice, --dst-qmp and --dst-spice are required\n");
        usage(stderr);
        return 2;
    }
    if (pat && !any) {
        fprintf(stderr, "migcert certify: no case matches '%s' (--list shows them)\n", pat);
        return 2;
    }
    MigErr *err = NULL;
    SpiceAddr qa;
    if (side_addr(&r.src, &err) < 0 || side_addr(&r.dst, &err) < 0 ||
        spice_addr_parse(r.src.qmp_addr, &qa, &err) < 0 || spice_addr_parse(r.dst.qmp_addr, &qa, &err) < 0) {
        fprintf(stderr, "migcert certify --spice: %s\n", err->msg);
        mig_err_free(err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char outdir[PATH_MAX];
    snprintf(outdir, sizeof(outdir), "%s", out ? out : "reports/out/certify-spice");
    /* screendumps are written there by the server: an absolute path */
    if (outdir[0] != '/') {
        char cwd[PATH_MAX / 2], rel[PATH_MAX / 2];
        snprintf(rel, sizeof(rel), "%.2000s", outdir);
        if (getcwd(cwd, sizeof(cwd)))
            snprintf(outdir, sizeof(outdir), "%s/%s", cwd, rel);
    }
    for (char *p = outdir + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(outdir, 0755);
            *p = '/';
        }
    mkdir(outdir, 0755);
    r.outdir = outdir;
    r.timeout_ns = (uint64_t)timeout_s * 1000000000ull;
    r.loop = mig_loop_epoll_new(0x5eed);
    if (!r.loop) {
        fprintf(stderr, "migcert certify --spice: cannot create the event loop\n");
        return 2;
    }

    char repro_base[8192];
    snprintf(repro_base, sizeof(repro_base), "%s certify --spice", argv[-1] ? argv[-1] : "migcert");
    const char *opt[][2] = {{"--src-qmp", r.src.qmp_addr}, {"--src-spice", r.src.spice_arg},
                            {"--dst-qmp", r.dst.qmp_addr}, {"--dst-spice", r.dst.spice_arg},
                            {"--migrate-uri", r.migrate_uri}, {"--src-cmd", r.src.cmd},
                            {"--dst-cmd", r.dst.cmd}, {"--password", r.password}};
    for (size_t i = 0; i < MIG_ARRAY_SIZE(opt); i++)
        if (opt[i][1]) {
            repro_add(repro_base, sizeof(repro_base), opt[i][0]);
            repro_add(repro_base, sizeof(repro_base), opt[i][1]);
        }
    if (timeout_s != 30) {
        char t[16];
        snprintf(t, sizeof(t), "%u", timeout_s);
        repro_add(repro_base, sizeof(repro_base), "--timeout");
        repro_add(repro_base, sizeof(repro_base), t);
    }
    char desc[1024];
    snprintf(desc, sizeof(desc), "source: QMP %s, SPICE %s%s\ntarget: QMP %s, SPICE %s%s", r.src.qmp_addr,
             r.src.spice_arg, r.src.cmd ? " (re-created per case)" : "", r.dst.qmp_addr, r.dst.spice_arg,
             r.dst.cmd ? " (re-created per case)" : "");
    fprintf(stderr, "migcert certify --spice: %s\n", desc);

    CertCase *cases = mig_malloc0(ncases * sizeof(*cases));
    CertResult *res = mig_malloc0(ncases * sizeof(*res));
    size_t npass = 0, nfail = 0, nskip = 0, nnotrun = 0;
    for (size_t i = 0; i < ncases; i++) {
        const CsCase *k = &spice_cases[i];
        snprintf(cases[i].name, sizeof(cases[i].name), "%s", k->name);
        res[i].st = CERT_ST_PASS;
        if (!certify_selected(k->name, pat, exact)) {
            res[i].st = CERT_ST_SKIP;
            snprintf(res[i].msg, sizeof(res[i].msg), "not selected");
            continue;
        }
        r.case_name = k->name;
        res[i].rule = k->rule; /* the rule it checks (a failure may name another) */
        CertCtx c = {.res = &res[i]};
        char why[512] = "";
        int rc = cs_side_ready(&r, &r.src, k->migrates, why, sizeof(why));
        if (rc == 0 && k->migrates)
            rc = cs_side_ready(&r, &r.dst, true, why, sizeof(why));
        if (rc == -EAGAIN) {
            res[i].st = CERT_ST_NOTRUN;
            snprintf(res[i].msg, sizeof(res[i].msg), "%s", why);
            nnotrun++;
            fprintf(stderr, "NOT RUN %s: %s\n", k->name, why);
            continue;
        }
        if (rc < 0)
            certify_fail(&c, k->migrates ? "spice-migration" : "spice-link", "%s", why);
        else
            k->fn(&r, &c, k);
        if (res[i].st == CERT_ST_FAIL) {
            nfail++;
            fprintf(stderr, "FAIL %s [%s]: %s\nREPRO: %s -k %s\n", k->name, res[i].rule, res[i].msg, repro_base,
                    k->name);
        } else if (res[i].st == CERT_ST_SKIP) {
            nskip++;
            fprintf(stderr, "SKIP %s: %s\n", k->name, res[i].msg);
        } else {
            npass++;
            fprintf(stderr, "PASS %s%s%s\n", k->name, res[i].note[0] ? ": " : "", res[i].note);
        }
    }
    cs_side_stop(&r, &r.src);
    cs_side_stop(&r, &r.dst);

    /* what was certified, for the certificate page (docs/report.md) */
    json_t *extra = json_object();
    json_object_set_new(extra, "kind", json_string("spice"));
    json_object_set_new(extra, "timeout_s", json_integer(timeout_s));
    json_t *ep = json_object();
    CsSide *sides[2] = {&r.src, &r.dst};
    for (int i = 0; i < 2; i++)
        json_object_set_new(ep, sides[i]->name,
                            json_pack("{s:s, s:s, s:s?, s:s?}", "qmp", sides[i]->qmp_addr, "spice",
                                      sides[i]->spice_arg, "cmd", sides[i]->cmd, "version",
                                      sides[i]->version[0] ? sides[i]->version : NULL));
    json_object_set_new(ep, "migrate_uri", r.migrate_uri ? json_string(r.migrate_uri) : json_null());
    json_object_set_new(ep, "password", json_boolean(r.password != NULL)); /* never the password itself */
    json_object_set_new(extra, "endpoint", ep);
    CertReport rp = {outdir, "SPICE server", NULL, "spice", desc, repro_base, NULL, cases, res, ncases,
                     npass, nfail, nskip, nnotrun, .kind = "SPICE server", .json_path = json_path,
                     .junit_path = junit_path, .extra = extra};
    int rc = certify_finish(&rp);
    json_decref(extra);
    free(res);
    free(cases);
    r.loop->ops->free(r.loop);
    return rc;
}
