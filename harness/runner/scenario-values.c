/*
 * scenario-values.c - the scenario loader's value parsers: sizes ("64M"),
 * durations ("50ms"), rates ("2000 pages/s") and bandwidths ("100M/s").
 *
 * Called by the loader's checks (scenario.c, scenario-steps.c), the
 * executor and `migcert vm` (scn_parse_size for --ram).  Pure functions:
 * 0 and the value, or -EINVAL (malformed) or -ERANGE (past a limit of
 * scenario.h, docs/limits.md) with *out untouched.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scenario-internal.h"

/* ---- value parsers ---- */

/* A plain decimal number (digits, a point, an exponent) after optional
 * spaces: what strtod alone would also take (nan, inf, hex floats, a sign)
 * is refused here, and so is anything not finite. */
static int parse_decimal(const char *s, double *v, const char **rest)
{
    while (*s == ' ')
        s++;
    if (!isdigit((unsigned char)*s) && !(*s == '.' && isdigit((unsigned char)s[1])))
        return -EINVAL;
    char *end;
    double d = strtod(s, &end);
    for (const char *q = s; q < end; q++)
        if (!isdigit((unsigned char)*q) && !strchr(".eE+-", *q))
            return -EINVAL;
    if (!isfinite(d))
        return -EINVAL;
    *v = d;
    *rest = end;
    return 0;
}

/* v as a uint64_t; -EINVAL when it does not fit (2^64 and up) */
static int to_u64(double v, uint64_t *out)
{
    if (!(v >= 0 && v < 18446744073709551616.0))
        return -EINVAL;
    *out = (uint64_t)v;
    return 0;
}

static int parse_u64_suffix(const char *s, uint64_t *num, const char **rest)
{
    double v;
    if (parse_decimal(s, &v, rest) < 0)
        return -EINVAL;
    return to_u64(v, num);
}

static double size_unit(const char *u)
{
    static const struct {
        const char *s;
        double mul;
    } units[] = {
        {"", 1},        {"B", 1},     {"K", 1024.0},     {"KiB", 1024.0},
        {"KB", 1024.0}, {"M", 1048576.0}, {"MiB", 1048576.0}, {"MB", 1048576.0},
        {"G", 1073741824.0}, {"GiB", 1073741824.0}, {"GB", 1073741824.0},
    };
    while (*u == ' ')
        u++;
    for (size_t i = 0; i < MIG_ARRAY_SIZE(units); i++)
        if (!strcmp(u, units[i].s))
            return units[i].mul;
    return 0;
}

int scn_parse_size(const char *s, uint64_t *out)
{
    const char *end;
    double v;
    if (!s || parse_decimal(s, &v, &end) < 0)
        return -EINVAL;
    double mul = size_unit(end);
    if (mul == 0)
        return -EINVAL;
    return to_u64(v * mul, out);
}

int scn_parse_duration(const char *s, uint64_t *ns)
{
    static const struct {
        const char *s;
        double mul;
    } units[] = {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"min", 60e9}};
    const char *end;
    double v;
    if (!s || parse_decimal(s, &v, &end) < 0)
        return -EINVAL;
    while (*end == ' ')
        end++;
    if (!*end && v == 0) {
        *ns = 0;
        return 0;
    }
    for (size_t i = 0; i < MIG_ARRAY_SIZE(units); i++) {
        uint64_t n;
        if (strcmp(end, units[i].s))
            continue;
        if (to_u64(v * units[i].mul, &n) < 0)
            return -EINVAL;
        if (n > SCN_MAX_DURATION)
            return -ERANGE;
        *ns = n;
        return 0;
    }
    return -EINVAL;
}

int scn_parse_rate(const char *s, uint64_t *per_s)
{
    uint64_t n;
    const char *rest;
    if (!s || parse_u64_suffix(s, &n, &rest) < 0)
        return -EINVAL;
    while (*rest == ' ')
        rest++;
    if (*rest && strcmp(rest, "pages/s"))
        return -EINVAL;
    if (n > SCN_MAX_DIRTY_RATE)
        return -ERANGE;
    *per_s = n;
    return 0;
}

int scn_parse_bandwidth(const char *s, uint64_t *bps)
{
    if (!s)
        return -EINVAL;
    if (!strcmp(s, "unlimited")) {
        *bps = 0;
        return 0;
    }
    size_t len = strlen(s);
    if (len < 3 || strcmp(s + len - 2, "/s"))
        return -EINVAL;
    char tmp[64];
    if (len - 2 >= sizeof(tmp))
        return -EINVAL;
    memcpy(tmp, s, len - 2);
    tmp[len - 2] = 0;
    uint64_t v;
    if (scn_parse_size(tmp, &v) < 0)
        return -EINVAL;
    /* 0/s is not "unlimited" (that is spelled out): a link that moves
     * nothing would make the run wait for ever */
    if (v == 0 || v > SCN_MAX_BANDWIDTH)
        return -ERANGE;
    *bps = v;
    return 0;
}

