/*
 * certify-jail.c - the processes a `migcert certify` sandbox runs in
 * (certify-internal.h), so that a plugin doing anything a process can do
 * cannot take certify down, hang it, or leave anything behind.
 *
 * Called by: certify-sandbox.c (spawn, bounded wait, kill, stray count, the
 * death's sentence) and its child side (the guard-paged buffers).
 *
 * Shape: certify clones the jail's init with CLONE_NEWPID (as root), else
 * CLONE_NEWUSER|CLONE_NEWPID (a user namespace lets anyone make a PID
 * namespace), else a plain fork in its own session (the reason is said once
 * on stderr and kept in CertJail.mode).  The jail's first process starts a
 * new session, keeps no fd but the sandbox socket (moved to fd 3; 0-2 are
 * /dev/null; close_range does the rest), sets rlimits (no core, 64 fds,
 * 64 MiB files) and becomes the subreaper.  In a PID namespace it is the
 * host (pid 1, which loads the plugin): the plugin cannot name certify at
 * all, and the host's end kills every process of the namespace.  Without
 * one, it stays a supervisor above a forked host, so that a plugin
 * signalling its parent hits the supervisor, not certify; the jail's
 * process group is killed before it is reaped.  How the jail ended is its
 * exit code:
 *   - c < 86: the host's own (0 once certify hung up);
 *   - JAIL_EXIT_OVERRUN: the plugin touched a guard page;
 *   - JAIL_EXIT_FSIZE: the plugin wrote past RLIMIT_FSIZE (SIGXFSZ);
 *   - JAIL_EXIT_SIGNALLED + N: the plugin sent signal N with kill() to its
 *     parent or group;
 *   - JAIL_EXIT_SIGNAL + N: the host died of signal N (a crash);
 *   - killed by a fault's signal (the plugin put the kernel's default
 *     action back): a crash too, its core file kept away by RLIMIT_CORE.
 *
 * Invariants: certify never blocks on a jail: every wait has a deadline
 * (poll on a pidfd, else short sleeps); a jail is killed (SIGKILL to the
 * init and to its process group) before it is given up, and its init is
 * reaped once, after the group kill, so no pid is reused under us; the
 * jail counts as ended only once its group is gone.
 * Harness code: no determinism rules apply (real processes, real time).
 */
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "certify-internal.h"

#define JAIL_EXIT_SIGNALLED 150 /* + N: the init got signal N from a process */
#define JAIL_EXIT_SIGNAL 200    /* + N: the host died by signal N */
#define JAIL_EXIT_OVERRUN 86    /* the host touched a guard page */
#define JAIL_EXIT_FSIZE 87      /* the host wrote past RLIMIT_FSIZE */
#define JAIL_FILE_LIMIT (64u << 20)
#define JAIL_FD_LIMIT 64u

/* The signals whose default action ends a process (SIGKILL and SIGSTOP
 * cannot be caught; a PID namespace's init never gets them from inside). */
static const int fatal[] = {SIGHUP,  SIGINT,    SIGQUIT, SIGILL,  SIGTRAP, SIGABRT,
                            SIGBUS,  SIGFPE,    SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE,
                            SIGALRM, SIGTERM,   SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGVTALRM,
                            SIGPROF, SIGIO,     SIGPWR,  SIGSYS};

int64_t certify_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- guard-paged buffers (child side) ---- */

/* The guard pages of the buffers handed to the plugin now (host only): the
 * request and read buffers, and one v1 resume transaction per instance
 * (SB_MAX_INST). */
static struct {
    uintptr_t lo, hi;
} guards[2 + SB_MAX_INST];

static size_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

uint8_t *certify_guard_get(CertGuardBuf *g, size_t len)
{
    size_t pg = page_size(), body = (len + pg - 1) / pg * pg;
    if (!g->base || body > g->body) {
        certify_guard_release(g);
        size_t slot = 0;
        while (slot < MIG_ARRAY_SIZE(guards) && guards[slot].lo)
            slot++;
        if (slot == MIG_ARRAY_SIZE(guards))
            return NULL; /* a guard nobody would recognise is no guard */
        uint8_t *base = mmap(NULL, body + pg, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED)
            return NULL;
        if (mprotect(base + body, pg, PROT_NONE) < 0) {
            munmap(base, body + pg);
            return NULL;
        }
        g->base = base;
        g->body = body;
        guards[slot].lo = (uintptr_t)(base + body);
        guards[slot].hi = guards[slot].lo + pg;
    }
    /* the last byte of the buffer is the last byte before the guard page */
    return g->base + g->body - len;
}

void certify_guard_release(CertGuardBuf *g)
{
    if (!g->base)
        return;
    size_t pg = page_size();
    for (size_t i = 0; i < MIG_ARRAY_SIZE(guards); i++)
        if (guards[i].lo == (uintptr_t)(g->base + g->body))
            guards[i].lo = guards[i].hi = 0;
    munmap(g->base, g->body + pg);
    g->base = NULL;
    g->body = 0;
}

/*
 * The host's handler of every fatal signal.  In a PID namespace the host is
 * the init, which the kernel shields from signals it has no handler for
 * (even its own raise()), so the handler ends it with a code that says what
 * happened: a guard page touched; a signal sent with kill() (by the host
 * itself, i.e. to its parent or group, or by a process it started): the
 * plugin signalled; any other (a fault, raise(), abort()): a crash.
 */
static void on_fatal(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    uintptr_t a = (uintptr_t)si->si_addr;
    if ((sig == SIGSEGV || sig == SIGBUS) && si->si_code > 0)
        for (size_t i = 0; i < MIG_ARRAY_SIZE(guards); i++)
            if (guards[i].lo && a >= guards[i].lo && a < guards[i].hi)
                _exit(JAIL_EXIT_OVERRUN);
    /* RLIMIT_FSIZE: the kernel signals the writer as if it had sent
     * SIGXFSZ to itself */
    if (sig == SIGXFSZ && si->si_code == SI_USER && si->si_pid == getpid())
        _exit(JAIL_EXIT_FSIZE);
    if (si->si_code == SI_USER || si->si_code == SI_QUEUE)
        _exit(JAIL_EXIT_SIGNALLED + sig);
    _exit(JAIL_EXIT_SIGNAL + sig);
}

/* The supervisor's host (a jail without a PID namespace), for its handler:
 * set in the supervisor's own process after the fork. */
static pid_t supervised_host;

/* The init of a jail without a PID namespace (a supervisor above the
 * host): a signal a process sends it is the plugin signalling its parent.
 * The host dies first: a host outliving its supervisor is reparented to
 * certify (the subreaper) before its PR_SET_PDEATHSIG kill lands, and a
 * plugin that signals its parent again in that moment signalled certify
 * (seen once in CI: certify killed by SIGTERM, no report). */
static void on_signalled(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (si->si_code > 0)
        return;
    if (supervised_host > 0) {
        kill(supervised_host, SIGKILL);
        while (waitpid(supervised_host, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    _exit(JAIL_EXIT_SIGNALLED + sig);
}

static void set_limit(int res, rlim_t v)
{
    struct rlimit rl = {v, v};
    setrlimit(res, &rl);
}

static void catch_all(void (*fn)(int, siginfo_t *, void *))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO;
    for (size_t i = 0; i < MIG_ARRAY_SIZE(fatal); i++)
        sigaction(fatal[i], &sa, NULL);
}

static void host_main(CertHostFn *host, void *arg)
{
    /* orphans of the plugin's processes come to the host, which reports
     * them (a PID namespace's init gets them anyway) */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    catch_all(on_fatal);
    host(3, arg);
    _exit(0);
}

/*
 * The jail's first process.  In a PID namespace it is the host itself (pid
 * 1: its end ends every process of the namespace).  Without one it is a
 * supervisor that forks the host, so that the plugin's parent is not
 * certify, and exits with the host's code (JAIL_EXIT_SIGNAL + N when the
 * host died by signal N).
 */
static void jail_init(int sock, bool pidns, CertHostFn *host, void *arg)
{
    setsid();
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* certify gone: the jail goes */
    int s = fcntl(sock, F_DUPFD, 10);
    int nul = open("/dev/null", O_RDWR);
    if (s < 0 || nul < 0)
        _exit(5);
    for (int fd = 0; fd < 3; fd++)
        dup2(nul, fd);
    if (dup2(s, 3) != 3)
        _exit(5);
    close_range(4, ~0u, 0);
    set_limit(RLIMIT_CORE, 0);
    set_limit(RLIMIT_NOFILE, JAIL_FD_LIMIT);
    set_limit(RLIMIT_FSIZE, JAIL_FILE_LIMIT);
    if (pidns)
        host_main(host, arg);
    /* signals wait until the host's pid is known to their handler */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    catch_all(on_signalled);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t h = fork();
    if (h < 0)
        _exit(5);
    if (h == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        host_main(host, arg);
    }
    supervised_host = h;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(3); /* the host's end is the socket's end */
    for (;;) {
        int st = 0;
        pid_t p = waitpid(-1, &st, 0);
        if (p == h)
            _exit(WIFSIGNALED(st) ? JAIL_EXIT_SIGNAL + WTERMSIG(st) : WEXITSTATUS(st));
        if (p < 0 && errno == ECHILD)
            _exit(5);
    }
}

/* ---- parent side ---- */

static pid_t clone_pidns(unsigned long flags)
{
    return (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

int certify_jail_spawn(CertJail *j, int sock, CertHostFn *host, void *arg, MigErr **errp)
{
    static bool warned;
    memset(j, 0, sizeof(*j));
    j->pidfd = -1;
    fflush(NULL);
    /* MIGCERT_CERTIFY_JAIL=session: the fallback on purpose (its tests) */
    const char *force = getenv("MIGCERT_CERTIFY_JAIL");
    bool session = force && !strcmp(force, "session");
    pid_t pid = session ? (errno = EPERM, -1) : clone_pidns(CLONE_NEWPID);
    j->mode = "pid namespace";
    if (pid < 0 && !session && (errno == EPERM || errno == EINVAL || errno == ENOSPC)) {
        pid = clone_pidns(CLONE_NEWUSER | CLONE_NEWPID);
        j->mode = "user and pid namespaces";
    }
    if (pid < 0 && (errno == EPERM || errno == EINVAL || errno == ENOSPC)) {
        char why[96];
        snprintf(why, sizeof(why), "%s", session ? "MIGCERT_CERTIFY_JAIL=session" : strerror(errno));
        /* the jail's orphans come to certify when its supervisor goes (reap_group) */
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        pid = fork();
        j->mode = "own session only";
        if (!warned && pid > 0) {
            warned = true;
            fprintf(stderr,
                    "migcert certify: no PID namespace (clone: %s): plugins run under a "
                    "supervisor in their own session and process group; a plugin that "
                    "signals other processes or leaves its group is not contained\n",
                    why);
        }
    }
    if (pid < 0)
        return mig_err_set(errp, -errno, "starting the sandbox: %s", strerror(errno));
    if (pid == 0)
        jail_init(sock, strcmp(j->mode, "own session only") != 0, host, arg); /* never returns */
    j->pid = pid;
    j->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    return 0;
}

/* The jail's init has ended (not reaped yet: waitid WNOWAIT), or the
 * deadline passed (-ETIMEDOUT). */
static int wait_ended(CertJail *j, int64_t deadline_ms)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        int r = waitid(P_PID, (id_t)j->pid, &si, WEXITED | WNOHANG | WNOWAIT);
        if (r < 0 && errno != EINTR)
            return 0; /* gone already (ECHILD): nothing to wait for */
        if (r == 0 && si.si_pid == j->pid)
            return 0;
        int64_t left = deadline_ms - certify_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        if (j->pidfd >= 0) {
            struct pollfd p = {j->pidfd, POLLIN, 0};
            poll(&p, 1, (int)MIG_MIN(left, (int64_t)1000));
        } else {
            struct timespec d = {0, 2000000};
            nanosleep(&d, NULL);
        }
    }
}

/* A SIGKILLed process is not gone when kill() returns: it dies when next
 * scheduled (on a loaded host, milliseconds later).  The session jail's
 * processes are certify's children once their supervisor is gone (certify
 * is their subreaper): reap the group until none is left, so that certify
 * leaves no process behind.  (A PID namespace's init ends only after every
 * process in it: nothing is left there.)  The bound guards against a
 * process stuck in the kernel. */
#define GROUP_GONE_MS 5000

static void reap_group(pid_t pgid)
{
    int64_t deadline = certify_now_ms() + GROUP_GONE_MS;
    for (;;) {
        pid_t r = waitpid(-pgid, NULL, WNOHANG);
        if (r > 0 || (r < 0 && errno == EINTR))
            continue;
        if (r < 0 || certify_now_ms() >= deadline)
            return; /* ECHILD: none of the group is left */
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
    }
}

/* Kill what is left of the jail's process group, reap the init, and
 * return once the group is gone (certify leaves no process behind). */
static void reap(CertJail *j)
{
    kill(-j->pid, SIGKILL); /* the init's pid is still its group's: not reused yet */
    int st = 0;
    pid_t r;
    do
        r = waitpid(j->pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    j->status = r == j->pid ? st : -1;
    if (r == j->pid)
        reap_group(j->pid);
    j->reaped = true;
    if (j->pidfd >= 0)
        close(j->pidfd);
    j->pidfd = -1;
}

bool certify_jail_ended(CertJail *j)
{
    if (!j->reaped && j->pid > 0 && wait_ended(j, 0) == 0)
        reap(j);
    return j->reaped;
}

int certify_jail_wait(CertJail *j, int64_t deadline_ms)
{
    if (j->reaped || j->pid <= 0)
        return 0;
    if (wait_ended(j, deadline_ms) < 0)
        return -ETIMEDOUT;
    reap(j);
    return 0;
}

void certify_jail_kill(CertJail *j)
{
    if (j->reaped || j->pid <= 0)
        return;
    kill(j->pid, SIGKILL);
    kill(-j->pid, SIGKILL);
    /* SIGKILL is not refused: the bound only guards against a kernel that
     * keeps a process in uninterruptible sleep */
    if (wait_ended(j, certify_now_ms() + 10000) == 0)
        reap(j);
}

/* Pids listed in /proc/PID/task/TID/children for every thread of `pid`;
 * the first one goes to *first. */
static int count_children(pid_t pid, pid_t *first)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char cp[384];
        snprintf(cp, sizeof(cp), "/proc/%d/task/%.255s/children", (int)pid, e->d_name);
        FILE *f = fopen(cp, "r");
        if (!f)
            continue;
        int c;
        while (fscanf(f, "%d", &c) == 1) {
            if (!n && first)
                *first = c;
            n++;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

int certify_jail_strays(CertJail *j)
{
    if (j->reaped || j->pid <= 0)
        return 0;
    pid_t host = 0;
    int n = count_children(j->pid, &host);
    if (n <= 0)
        return 0; /* no children file (kernel without it), or the host is gone */
    int m = count_children(host, NULL);
    return n - 1 + (m > 0 ? m : 0);
}

void certify_jail_death(const CertJail *j, const char *label, const char *op, char *out,
                        size_t cap)
{
    int st = j->status;
    if (st == -1) {
        snprintf(out, cap, "plugin %s: the sandbox went away in %s", label, op);
    } else if (WIFSIGNALED(st) && (WTERMSIG(st) == SIGSEGV || WTERMSIG(st) == SIGBUS ||
                                   WTERMSIG(st) == SIGILL || WTERMSIG(st) == SIGFPE)) {
        /* a fault with the kernel's default action: no process can send
         * it to the init so (the init handles every signal it is sent) */
        snprintf(out, cap, "plugin %s crashed (signal %d) in %s", label, WTERMSIG(st), op);
    } else if (WIFSIGNALED(st)) {
        /* nothing of certify kills an init before it says why: the plugin
         * did (outside a PID namespace, where it can reach its parent) */
        snprintf(out, cap, "plugin %s sent signal %d to its parent in %s", label, WTERMSIG(st),
                 op);
    } else {
        int c = WEXITSTATUS(st);
        if (c > JAIL_EXIT_SIGNAL)
            snprintf(out, cap, "plugin %s crashed (signal %d) in %s", label,
                     c - JAIL_EXIT_SIGNAL, op);
        else if (c > JAIL_EXIT_SIGNALLED && c < JAIL_EXIT_SIGNAL)
            snprintf(out, cap, "plugin %s sent signal %d to its parent in %s", label,
                     c - JAIL_EXIT_SIGNALLED, op);
        else if (c == JAIL_EXIT_FSIZE)
            snprintf(out, cap, "plugin %s wrote past the sandbox's file size limit (%u MiB) in %s",
                     label, JAIL_FILE_LIMIT >> 20, op);
        else if (c == JAIL_EXIT_OVERRUN)
            snprintf(out, cap,
                     "plugin %s went past the end of the buffer it was given (a guard page) "
                     "in %s",
                     label, op);
        else
            snprintf(out, cap, "plugin %s exited (status %d) in %s", label, c, op);
    }
}
