/*
 * certify-report.c - the certificate of `migcert certify`: report.txt (for
 * a person, with a REPRO line per failure), report.json (every listed case
 * with its status, rule and repro; rules_broken; the counts) and
 * report.junit.xml (through report.c, shared with `migcert run`).
 * The JSON also says what was certified, so the certificate can be read
 * alone (and `migcert report` draws its page from it, docs/report.md): the
 * plugin file and its SHA-256 (and the peer's), the ABI version, the suite
 * version (`git describe` at build time, harness/runner/module.mk), the
 * plugin releases tested and the verdict ("certified" when no case
 * failed and none was left unrun).
 * Cases that -k did not select are not listed.  The same writers serve
 * `certify --spice` (CertReport.kind: a server instead of a plugin, no
 * plugin file or ABI version, and --json / --junit paths besides the
 * folder, the rule of every case, not only of a failed one; CertReport.extra
 * adds its "kind" and "endpoint").  Each writer returns 0 or
 * -errno with `what` naming the file.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "certify-internal.h"
#include "report.h"

static bool listed(const CertResult *r)
{
    return !(r->st == CERT_ST_SKIP && !strcmp(r->msg, "not selected"));
}

static int write_txt(const CertReport *rp, MigErr **errp)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/report.txt", rp->outdir);
    FILE *f;
    int rc = report_file_open(path, &f, errp);
    if (rc < 0)
        return rc;
    if (rp->kind) {
        fprintf(f, "migcert %s certification\n%s\n\n", rp->kind, rp->desc);
    } else {
        fprintf(f, "migcert device certification\nplugin: %s (%s)\n", rp->dev, rp->desc);
        if (rp->peer)
            fprintf(f, "peer: %s\n", rp->peer);
        fprintf(f, "migcert ABI version: %u\n\n", MIGCERT_DEVICE_ABI_VERSION);
    }
    for (size_t i = 0; i < rp->ncases; i++) {
        const CertResult *r = &rp->res[i];
        if (!listed(r))
            continue;
        static const char *const tag[CERT_ST__COUNT] = {"PASS", "FAIL", "SKIP", "NOT RUN"};
        fprintf(f, "%s %s", tag[r->st], rp->cases[i].name);
        if (r->st == CERT_ST_FAIL)
            fprintf(f, "\n  rule %s: %s\n  %s\n  REPRO: %s -k %s", r->rule,
                    certify_rule_text(r->rule), r->msg, rp->repro_base, rp->cases[i].name);
        else if (r->st == CERT_ST_SKIP || r->st == CERT_ST_NOTRUN)
            fprintf(f, " (%s)", r->msg);
        else if (r->note[0])
            fprintf(f, " (%s)", r->note);
        fputc('\n', f);
    }
    fprintf(f, "\n%zu passed, %zu failed, %zu skipped, %zu not run\n", rp->npass, rp->nfail,
            rp->nskip, rp->nnotrun);
    return report_file_close(f, path, errp);
}

#ifndef MIGCERT_SUITE_VERSION
#define MIGCERT_SUITE_VERSION "unknown"
#endif

/* The file's SHA-256 in hex, or NULL when it cannot be read. */
static json_t *file_sha256(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return json_null();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        EVP_DigestUpdate(ctx, buf, n);
    bool bad = ferror(f);
    fclose(f);
    unsigned mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (bad)
        return json_null();
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return json_string(hex);
}

static int write_json(const CertReport *rp, const char *to, MigErr **errp)
{
    json_t *root = json_object();
    json_object_set_new(root, rp->kind ? "server" : "plugin", json_string(rp->dev));
    if (!rp->kind)
        json_object_set_new(root, "plugin_sha256", file_sha256(rp->dev));
    json_object_set_new(root, "suite_version", json_string(MIGCERT_SUITE_VERSION));
    json_object_set_new(root, "verdict", json_string(rp->nfail || rp->nnotrun ? "not certified"
                                                                             : "certified"));
    json_t *rel = json_array();
    json_array_append_new(rel, json_pack("{s:s, s:s}", "role", rp->peer ? "source" : "both",
                                         "release", rp->desc));
    if (rp->peer)
        json_array_append_new(rel, json_pack("{s:s, s:s}", "role", "destination", "release",
                                             rp->peer_desc ? rp->peer_desc : rp->peer));
    json_object_set_new(root, "releases_tested", rel);
    json_object_set_new(root, "description", json_string(rp->desc));
    if (!rp->kind)
        json_object_set_new(root, "abi_version", json_integer(MIGCERT_DEVICE_ABI_VERSION));
    if (rp->peer) {
        json_object_set_new(root, "peer", json_string(rp->peer));
        json_object_set_new(root, "peer_sha256", file_sha256(rp->peer));
    }
    json_t *arr = json_array(), *broken = json_array();
    for (size_t i = 0; i < rp->ncases; i++) {
        const CertResult *r = &rp->res[i];
        if (!listed(r))
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(rp->cases[i].name));
        json_object_set_new(o, "status", json_string(certify_status_names[r->st]));
        if (r->st != CERT_ST_PASS)
            json_object_set_new(o, "message", json_string(r->msg));
        else if (r->note[0])
            json_object_set_new(o, "note", json_string(r->note));
        if (r->st == CERT_ST_FAIL || (rp->kind && r->rule)) { /* SPICE: every case's rule */
            json_object_set_new(o, "rule", json_string(r->rule));
            json_object_set_new(o, "rule_text", json_string(certify_rule_text(r->rule)));
        }
        if (r->st == CERT_ST_FAIL) {
            char repro[PATH_MAX * 2 + 128];
            snprintf(repro, sizeof(repro), "%s -k %s", rp->repro_base, rp->cases[i].name);
            json_object_set_new(o, "repro", json_string(repro));
            bool seen = false;
            size_t j;
            json_t *x;
            json_array_foreach(broken, j, x) seen |= !strcmp(json_string_value(x), r->rule);
            if (!seen)
                json_array_append_new(broken, json_string(r->rule));
        }
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "cases", arr);
    json_object_set_new(root, "rules_broken", broken);
    if (rp->extra)
        json_object_update(root, rp->extra);
    json_object_set_new(root, "passed", json_integer((json_int_t)rp->npass));
    json_object_set_new(root, "failed", json_integer((json_int_t)rp->nfail));
    json_object_set_new(root, "skipped", json_integer((json_int_t)rp->nskip));
    json_object_set_new(root, "not_run", json_integer((json_int_t)rp->nnotrun));
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/report.json", rp->outdir);
    int rc = report_json_write(to ? to : path, root, JSON_INDENT(2), errp);
    json_decref(root);
    return rc;
}

static int write_junit(const CertReport *rp, const char *to, MigErr **errp)
{
    ReportCase *rc = mig_malloc0((rp->ncases + 1) * sizeof(*rc));
    char **owned = mig_malloc0((rp->ncases + 1) * 3 * sizeof(*owned));
    char *classname = mig_strdup_printf("certify.%s", rp->stem);
    char *suite = mig_strdup_printf("certify-%s", rp->stem);
    size_t n = 0, nowned = 0;
    for (size_t i = 0; i < rp->ncases; i++) {
        const CertResult *r = &rp->res[i];
        if (!listed(r))
            continue;
        ReportCase *c = &rc[n++];
        c->classname = classname;
        c->name = rp->cases[i].name;
        c->status = r->st == CERT_ST_PASS ? REPORT_PASS
                    : r->st == CERT_ST_FAIL ? REPORT_FAIL
                                            : REPORT_SKIP; /* skipped, not run */
        c->message = r->msg;
        if (r->st == CERT_ST_FAIL) {
            c->message = owned[nowned++] = mig_strdup_printf("rule %s: %s", r->rule, r->msg);
            c->text = owned[nowned++] =
                mig_strdup_printf("%s\nREPRO: %s -k %s", certify_rule_text(r->rule),
                                  rp->repro_base, rp->cases[i].name);
        }
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/report.junit.xml", rp->outdir);
    int ret = report_junit_write(to ? to : path, suite, rc, n, errp);
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
    free(owned);
    free(classname);
    free(suite);
    free(rc);
    return ret;
}

/* mkdir -p: every missing folder of dir; 0 or -errno. */
static int mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

int certify_write_reports(const CertReport *rp, MigErr **errp)
{
    int rc = mkdir_p(rp->outdir);
    if (rc < 0)
        return mig_err_set(errp, rc, "cannot create the report folder %s: %s", rp->outdir,
                           strerror(-rc));
    rc = write_txt(rp, errp);
    if (rc == 0)
        rc = write_json(rp, NULL, errp);
    if (rc == 0)
        rc = write_junit(rp, NULL, errp);
    if (rc == 0 && rp->json_path)
        rc = write_json(rp, rp->json_path, errp);
    if (rc == 0 && rp->junit_path)
        rc = write_junit(rp, rp->junit_path, errp);
    return rc;
}

int certify_finish(const CertReport *rp)
{
    MigErr *werr = NULL;
    int rc = rp->nfail || rp->nnotrun ? 1 : 0;
    if (certify_write_reports(rp, &werr) < 0) {
        fprintf(stderr, "migcert certify: no certificate report: %s\n", werr->msg);
        mig_err_free(werr);
        rc = 3;
    } else {
        printf("certify %s: report in %s\n", rp->stem, rp->outdir);
    }
    if (rp->nnotrun)
        printf("%zu passed, %zu failed, %zu not run\n", rp->npass, rp->nfail, rp->nnotrun);
    else
        printf("%zu passed, %zu failed\n", rp->npass, rp->nfail);
    return rc;
}
