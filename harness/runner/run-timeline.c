/*
 * run-timeline.c - the timeline of a case from its trace text
 * (run-timeline.h).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "run-timeline.h"

/* A SPICE message line nobody draws: "send NAME serial ..." or "recv NAME
 * serial ..." where NAME holds neither MIGRATE nor SWITCH. */
static bool is_traffic(const char *what, size_t len)
{
    if (len < 5 || (strncmp(what, "send ", 5) && strncmp(what, "recv ", 5)))
        return false;
    const char *name = what + 5;
    const char *sp = memchr(name, ' ', len - 5);
    if (!sp || (size_t)(what + len - sp) < 8 || strncmp(sp, " serial ", 8))
        return false;
    size_t nlen = (size_t)(sp - name);
    char buf[96];
    snprintf(buf, sizeof(buf), "%.*s", (int)(nlen < sizeof(buf) ? nlen : sizeof(buf) - 1), name);
    return !strstr(buf, "MIGRATE") && !strstr(buf, "SWITCH");
}

/* "src.spice: linked MAIN:0 for ..." -> adds "MAIN" to chans (sorted set);
 * a channel id other than 0 stays: "DISPLAY:1" (exec_spice_channel_name). */
static void note_channel(json_t *chans, const char *who, size_t wlen, const char *what,
                         size_t len)
{
    if (wlen != 9 || strncmp(who, "src.spice", 9) || len < 8 || strncmp(what, "linked ", 7))
        return;
    const char *name = what + 7;
    const char *colon = memchr(name, ':', len - 7);
    if (!colon || colon == name)
        return;
    char buf[32];
    size_t n = (size_t)(colon - name), idlen = 0;
    while (colon + 1 + idlen < what + len && colon[1 + idlen] >= '0' && colon[1 + idlen] <= '9')
        idlen++;
    if (idlen == 1 && colon[1] == '0')
        idlen = 0;
    else if (idlen)
        n += 1 + idlen;
    if (n >= sizeof(buf))
        return;
    memcpy(buf, name, n);
    buf[n] = 0;
    size_t i, at = json_array_size(chans);
    for (i = 0; i < json_array_size(chans); i++) {
        int c = strcmp(json_string_value(json_array_get(chans, i)), buf);
        if (c == 0)
            return;
        if (c > 0) {
            at = i;
            break;
        }
    }
    json_array_insert_new(chans, at, json_string(buf));
}

json_t *run_timeline_json(const char *trace, size_t len, json_t **channels)
{
    json_t *all = json_array();
    json_t *chans = json_array();
    const char *p = trace, *end = trace ? trace + len : NULL;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        /* "t=NS WHO: WHAT" */
        char *after;
        if (eol - p > 2 && p[0] == 't' && p[1] == '=') {
            uint64_t t = strtoull(p + 2, &after, 10);
            const char *who = after + (*after == ' ');
            const char *colon = who < eol ? memchr(who, ':', (size_t)(eol - who)) : NULL;
            if (after > p + 2 && colon && colon + 1 < eol && colon[1] == ' ') {
                const char *what = colon + 2;
                size_t wlen = (size_t)(colon - who), len2 = (size_t)(eol - what);
                note_channel(chans, who, wlen, what, len2);
                if (!is_traffic(what, len2))
                    json_array_append_new(all, json_pack("[I, s#, s#]", (json_int_t)t, who,
                                                         (int)wlen, what, (int)len2));
            }
        }
        p = nl ? nl + 1 : end;
    }
    *channels = chans;
    size_t n = json_array_size(all);
    if (n <= RUN_TIMELINE_MAX)
        return all;
    /* keep the first 2/3 and the last 1/3 of the budget */
    size_t head = RUN_TIMELINE_MAX * 2 / 3, tail = RUN_TIMELINE_MAX - head - 1;
    json_t *cut = json_array();
    for (size_t i = 0; i < head; i++)
        json_array_append(cut, json_array_get(all, i));
    char msg[64];
    snprintf(msg, sizeof(msg), "timeline: %zu event(s) left out", n - head - tail);
    json_t *last_kept = json_array_get(all, head - 1);
    json_array_append_new(cut, json_pack("[O, s, s]", json_array_get(last_kept, 0), "harness",
                                         msg));
    for (size_t i = n - tail; i < n; i++)
        json_array_append(cut, json_array_get(all, i));
    json_decref(all);
    return cut;
}

json_t *run_spice_verdicts_json(const RunResult *r, json_t **errors)
{
    json_t *v = json_object();
    *errors = json_object();
    for (size_t i = 0; i < r->nspice; i++) {
        const ExecSpiceChannel *ch = &r->spice[i];
        char name[32];
        exec_spice_channel_name(ch->type, ch->id, name, sizeof(name));
        json_object_set_new(v, name, json_string(exec_channel_verdict_names[ch->verdict]));
        if (ch->verdict != EXEC_CHANNEL_PASSED)
            json_object_set_new(*errors, name, json_string(ch->why));
    }
    return v;
}
