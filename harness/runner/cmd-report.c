/*
 * cmd-report.c - `migcert report [DIR] [--merge DIR...] [--out DIR]`: the
 * HTML report of a run (docs/report.md).  The page is drawn by
 * harness/report/build-report.py (jinja2 + matplotlib, Debian's
 * python3-jinja2 and python3-matplotlib): this command finds that script
 * and runs it with /usr/bin/python3, passing the arguments on.
 *
 * The script is looked for, in order: $MIGCERT_REPORT_SCRIPT; beside the
 * binary's source tree (BIN/../harness/report/build-report.py, i.e. the
 * build folder's parent); ./harness/report/build-report.py.  None found,
 * or no /usr/bin/python3: a sentence saying so, exit 2.  Otherwise the
 * script's exit status: 0 report written, 1 an input could not be read,
 * 2 usage.
 */
#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

#define REPORT_PY "/usr/bin/python3"
#define REPORT_SCRIPT "harness/report/build-report.py"

static bool find_script(char *out, size_t len)
{
    const char *env = getenv("MIGCERT_REPORT_SCRIPT");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return access(out, R_OK) == 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = 0;
        char *dir = dirname(exe); /* BUILD */
        snprintf(out, len, "%s/../%s", dir, REPORT_SCRIPT);
        if (access(out, R_OK) == 0)
            return true;
    }
    snprintf(out, len, "%s", REPORT_SCRIPT);
    return access(out, R_OK) == 0;
}

int cmd_report(int argc, char **argv)
{
    char script[PATH_MAX + 64];
    if (!find_script(script, sizeof(script))) {
        fprintf(stderr, "migcert report: cannot find %s (set MIGCERT_REPORT_SCRIPT, or run "
                        "from the source tree)\n", REPORT_SCRIPT);
        return 2;
    }
    if (access(REPORT_PY, X_OK) != 0) {
        fprintf(stderr, "migcert report: %s is missing (ci/deps installs it)\n", REPORT_PY);
        return 2;
    }
    char **args = calloc((size_t)argc + 3, sizeof(char *));
    if (!args)
        return 2;
    args[0] = REPORT_PY;
    args[1] = script;
    for (int i = 1; i < argc; i++)
        args[i + 1] = argv[i];
    fflush(NULL);
    execv(REPORT_PY, args);
    fprintf(stderr, "migcert report: cannot run %s: %s\n", REPORT_PY, strerror(errno));
    free(args);
    return 2;
}
