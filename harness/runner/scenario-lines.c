/*
 * scenario-lines.c - the scenario loader's line index: every key path of a
 * YAML file ("machines.src.ram", "steps[2].wait.phase", "faults[0]") and
 * the line it is on, built from libyaml events, so that every error reads
 * `FILE:LINE: key 'K': ...`.
 *
 * Called by the loader (scenario.c) and the error reporters of its
 * siblings.  The index is built once per file, before libcyaml's pass, and
 * freed with the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/buf.h"
#include "scenario-internal.h"

/* ---- line index: key path -> line, from libyaml events ---- */

typedef struct Frame {
    bool is_seq;
    bool expect_key; /* mapping: next scalar is a key */
    size_t item;     /* sequence: next item index */
    char path[256];  /* path of this container */
    char key[128];   /* mapping: current key */
} Frame;

/* FNV-1a: the index's hash of a key path. */
static uint64_t path_hash(const char *p)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    return h;
}

/* Put entry i (0-based) in the hash; the first entry of a path wins, as
 * the linear search it replaces did. */
static void slot_put(LineIndex *ix, size_t i)
{
    size_t mask = ix->nslot - 1;
    for (size_t k = path_hash(ix->e[i].path) & mask;; k = (k + 1) & mask) {
        if (!ix->slot[k]) {
            ix->slot[k] = (uint32_t)(i + 1);
            return;
        }
        if (!strcmp(ix->e[ix->slot[k] - 1].path, ix->e[i].path))
            return;
    }
}

static void index_add(LineIndex *ix, const char *path, int line)
{
    MIG_GROW(ix->e, ix->cap, ix->n + 1, 64);
    ix->e[ix->n].path = mig_strdup(path);
    ix->e[ix->n].line = line;
    ix->n++;
    if (2 * ix->n > ix->nslot) {
        free(ix->slot);
        ix->nslot = ix->nslot ? 2 * ix->nslot : 128;
        ix->slot = mig_malloc0(ix->nslot * sizeof(*ix->slot));
        for (size_t i = 0; i < ix->n; i++)
            slot_put(ix, i);
    } else {
        slot_put(ix, ix->n - 1);
    }
}

void scn__index_free(LineIndex *ix)
{
    for (size_t i = 0; i < ix->n; i++)
        free(ix->e[i].path);
    free(ix->e);
    free(ix->slot);
}

int scn__index_line(const LineIndex *ix, const char *path)
{
    if (!ix->nslot)
        return 0;
    size_t mask = ix->nslot - 1;
    for (size_t k = path_hash(path) & mask; ix->slot[k]; k = (k + 1) & mask)
        if (!strcmp(ix->e[ix->slot[k] - 1].path, path))
            return ix->e[ix->slot[k] - 1].line;
    return 0;
}

/* Path of the node about to start inside `top` (a key's value or an item);
 * records it in the index. */
static void child_path(Frame *top, char *out, size_t len, LineIndex *ix, int line)
{
    if (!top) {
        out[0] = 0;
        return;
    }
    if (top->is_seq) {
        snprintf(out, len, "%s[%zu]", top->path, top->item++);
        index_add(ix, out, line);
    } else {
        snprintf(out, len, "%s%s%s", top->path, top->path[0] ? "." : "", top->key);
        top->expect_key = true;
    }
}

/* Build the index; a YAML syntax error is returned with its line. */
int scn__index_build(LineIndex *ix, const char *name, const char *data, size_t len,
                       MigErr **errp)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    Frame stack[32];
    int depth = 0, rc = 0, documents = 0;
    if (!yaml_parser_initialize(&parser))
        return mig_err_set(errp, -ENOMEM, "%s: cannot initialise the YAML parser", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    for (;;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = mig_err_set(errp, -EINVAL, "%s:%zu: YAML syntax error: %s", name,
                             parser.problem_mark.line + 1,
                             parser.problem ? parser.problem : "unreadable");
            break;
        }
        int line = (int)ev.start_mark.line + 1;
        Frame *top = depth ? &stack[depth - 1] : NULL;
        bool done = ev.type == YAML_STREAM_END_EVENT;
        if (!top && (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_SEQUENCE_START_EVENT)) {
            /* the document's root: a scenario is a mapping of keys */
            rc = mig_err_set(errp, -EINVAL,
                             "%s:%d: the top level must be a mapping of keys (summary, machines, "
                             "steps, expect, ...), not a %s",
                             name, line, ev.type == YAML_SCALAR_EVENT ? "scalar" : "sequence");
            yaml_event_delete(&ev);
            break;
        }
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            /* libcyaml reads the first document only: a second one would
             * be ignored without a word */
            if (++documents > 1) {
                rc = mig_err_set(errp, -EINVAL,
                                 "%s:%d: a second YAML document (a scenario file holds one)",
                                 name, line);
                done = true;
            }
            break;
        case YAML_SCALAR_EVENT:
            if (top && !top->is_seq && top->expect_key) {
                scn__scopy(top->key, sizeof(top->key), (const char *)ev.data.scalar.value);
                top->expect_key = false;
                char path[400];
                snprintf(path, sizeof(path), "%s%s%s", top->path, top->path[0] ? "." : "",
                         top->key);
                index_add(ix, path, line);
            } else {
                char path[400];
                child_path(top, path, sizeof(path), ix, line);
            }
            break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT: {
            if (depth == (int)MIG_ARRAY_SIZE(stack)) {
                rc = mig_err_set(errp, -EINVAL, "%s:%d: nesting too deep", name, line);
                done = true;
                break;
            }
            Frame f = {0};
            char path[400];
            child_path(top, path, sizeof(path), ix, line);
            scn__scopy(f.path, sizeof(f.path), path);
            f.is_seq = ev.type == YAML_SEQUENCE_START_EVENT;
            f.expect_key = !f.is_seq;
            stack[depth++] = f;
            break;
        }
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            depth--;
            break;
        case YAML_ALIAS_EVENT:
            rc = mig_err_set(errp, -EINVAL, "%s:%d: YAML aliases are not allowed here", name,
                             line);
            done = true;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (done)
            break;
    }
    yaml_parser_delete(&parser);
    return rc;
}

