/*
 * certify-spice-side.c - the source and the target of `migcert certify
 * --spice` (certify-spice.h): their QMP connections and, when the vendor
 * gave --src-cmd / --dst-cmd, the processes this run starts and stops.
 *
 * A migration uses both sides up: the source hands its guest over and the
 * target has taken an incoming migration (or, after a cancel, lost it), so
 * neither can serve another migration case.  With a command, a used (or
 * dead) side is re-created before the next case that needs it: the old
 * process gets `quit` over QMP, then SIGKILL to its process group once
 * --timeout passed, and the command runs again (`/bin/sh -c CMD` in a
 * process group of its own, its output in OUTDIR/<side>-<N>.log).  Without
 * a command the vendor provides one fresh pair per run, and a case that
 * would need another is not run, saying which case used the pair.  With a
 * command a used source is re-created for the cases that do not migrate
 * too; without, they run on it as it is.
 *
 * Harness code: waits for a started process's QMP socket by retrying the
 * connect every 20 ms until --timeout (a hang guard).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "certify-spice.h"

static const char *const state_names[CS_SIDE__COUNT] = {"not connected", "fresh", "used", "dead"};

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Whether the process we started has exited (reaped). */
static bool exited(CsSide *s)
{
    if (s->pid <= 0)
        return true;
    int st;
    pid_t p = waitpid(s->pid, &st, WNOHANG);
    if (p == s->pid || (p < 0 && errno == ECHILD)) {
        s->pid = 0;
        return true;
    }
    return false;
}

void cs_side_stop(CsRun *r, CsSide *s)
{
    /* quit is answered before the process exits; a QMP connection closed
     * before the answer may drop the command unread (QEMU does) */
    if (s->qmp && s->pid > 0 && cs_qmp_alive(s->qmp))
        cs_qmp_exec(s->qmp, "quit", NULL, r->timeout_ns, NULL, NULL);
    cs_qmp_close(s->qmp);
    s->qmp = NULL;
    if (s->pid > 0) {
        /* a hang guard: quit normally ends it at once */
        for (uint64_t waited = 0; !exited(s) && waited < r->timeout_ns; waited += 20000000ull)
            nap_ms(20);
        if (s->pid > 0) {
            kill(-s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            s->pid = 0;
        }
    }
    if (s->state != CS_SIDE_NONE)
        s->state = CS_SIDE_NONE;
}

static int start(CsRun *r, CsSide *s, MigErr **errp)
{
    char log[4200];
    snprintf(log, sizeof(log), "%s/%s-%u.log", r->outdir, s->name, ++s->starts);
    int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (lfd < 0)
        return mig_err_set(errp, -errno, "cannot create %s: %s", log, strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(lfd);
        return mig_err_set(errp, -errno, "cannot start the %s: %s", s->name, strerror(errno));
    }
    if (pid == 0) {
        setpgid(0, 0);
        int nul = open("/dev/null", O_RDONLY);
        dup2(nul, 0);
        dup2(lfd, 1);
        dup2(lfd, 2);
        execl("/bin/sh", "sh", "-c", s->cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    close(lfd);
    s->pid = pid;
    MigErr *last = NULL;
    for (uint64_t waited = 0;; waited += 20000000ull) {
        mig_err_free(last);
        last = NULL;
        s->qmp = cs_qmp_open(r->loop, s->qmp_addr, r->timeout_ns, &last);
        if (s->qmp)
            break;
        if (exited(s) || waited >= r->timeout_ns) {
            int rc = mig_err_set(errp, -ECONNREFUSED, "the %s command %s before its QMP answered (%s; its output: %s)",
                                 s->name, s->pid ? "ran out of time" : "exited", last ? last->msg : "", log);
            mig_err_free(last);
            cs_side_stop(r, s);
            return rc;
        }
        nap_ms(20);
    }
    mig_err_free(last);
    return 0;
}

int cs_side_ready(CsRun *r, CsSide *s, bool fresh, char *why, size_t why_len)
{
    /* a used side serves the cases that do not migrate only when it cannot
     * be re-created (a migrated-away QEMU is paused, its display stopped) */
    if (s->state == CS_SIDE_FRESH || (s->state == CS_SIDE_USED && !fresh && !s->cmd)) {
        if (cs_side_alive(r, s))
            return 0;
    }
    if (s->state != CS_SIDE_NONE && !s->cmd) {
        snprintf(why, why_len, "not run: the %s is %s (%s); give --%s-cmd to re-create it for every case",
                 s->name, state_names[s->state], s->why, s == &r->src ? "src" : "dst");
        return -EAGAIN;
    }
    MigErr *err = NULL;
    if (s->state != CS_SIDE_NONE || s->pid > 0)
        cs_side_stop(r, s);
    if (s->cmd ? start(r, s, &err) < 0 : !(s->qmp = cs_qmp_open(r->loop, s->qmp_addr, r->timeout_ns, &err))) {
        snprintf(why, why_len, "the %s: %s", s->name, err ? err->msg : "cannot connect");
        mig_err_free(err);
        return -ECONNREFUSED;
    }
    s->state = CS_SIDE_FRESH;
    s->why[0] = 0;
    snprintf(s->version, sizeof(s->version), "%s", cs_qmp_version(s->qmp));
    return 0;
}

void cs_side_mark(CsSide *s, CsSideState st, const char *what)
{
    if (s->state == CS_SIDE_DEAD)
        return;
    s->state = st;
    snprintf(s->why, sizeof(s->why), "%s", what);
}

bool cs_side_alive(CsRun *r, CsSide *s)
{
    if (!s->qmp)
        return false;
    json_t *ret = NULL;
    int rc = cs_qmp_exec(s->qmp, "query-status", NULL, r->timeout_ns, &ret, NULL);
    json_decref(ret);
    if (rc == -EPIPE || !cs_qmp_alive(s->qmp)) {
        char what[160];
        snprintf(what, sizeof(what), "its process ended in case %s", r->case_name ? r->case_name : "?");
        cs_side_mark(s, CS_SIDE_DEAD, what);
        return false;
    }
    return rc == 0;
}
