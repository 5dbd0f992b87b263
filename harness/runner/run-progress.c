/*
 * run-progress.c - the progress display of `migcert run` (run-progress.h):
 * one line rewritten in place on a terminal, plain lines otherwise.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "run-progress.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "1m05s", "42s" */
static void fmt_secs(char *buf, size_t len, int64_t ms)
{
    int64_t s = (ms + 500) / 1000;
    if (s >= 60)
        snprintf(buf, len, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
    else
        snprintf(buf, len, "%llds", (long long)s);
}

void run_progress_init(RunProgress *p, FILE *out, size_t total)
{
    memset(p, 0, sizeof(*p));
    p->out = out;
    p->total = total;
    const char *force = getenv("MIGCERT_PROGRESS");
    if (force && !strcmp(force, "tty"))
        p->tty = true;
    else if (force && !strcmp(force, "plain"))
        p->tty = false;
    else
        p->tty = isatty(fileno(out));
    p->start_ms = now_ms();
}

static void clear_line(RunProgress *p)
{
    if (p->line_open)
        fputs("\r\033[K", p->out);
    p->line_open = false;
}

void run_progress_case(RunProgress *p, bool failed, const char *line)
{
    p->done++;
    p->failed += failed;
    if (!p->tty) {
        fprintf(p->out, "%s\n", line);
        fflush(p->out);
        return;
    }
    clear_line(p);
    if (failed)
        fprintf(p->out, "%s\n", line);
    int64_t el = now_ms() - p->start_ms;
    char elapsed[32], remaining[48] = "";
    fmt_secs(elapsed, sizeof(elapsed), el);
    if (p->total && p->done < p->total) {
        char r[32];
        fmt_secs(r, sizeof(r), el * (int64_t)(p->total - p->done) / (int64_t)p->done);
        snprintf(remaining, sizeof(remaining), ", about %s left", r);
    }
    if (p->total)
        fprintf(p->out, "migcert run: %zu/%zu cases, %zu failed, %s elapsed%s", p->done,
                p->total, p->failed, elapsed, remaining);
    else
        fprintf(p->out, "migcert run: %zu cases, %zu failed, %s elapsed", p->done, p->failed,
                elapsed);
    p->line_open = true;
    fflush(p->out);
}

void run_progress_end(RunProgress *p)
{
    clear_line(p);
    char elapsed[32];
    fmt_secs(elapsed, sizeof(elapsed), now_ms() - p->start_ms);
    fprintf(p->out, "migcert run: %zu case(s), %zu passed, %zu failed in %s\n", p->done,
            p->done - p->failed, p->failed, elapsed);
    fflush(p->out);
}
