/*
 * fake-input.c - the guest's keyboard, mouse and cursor (fake-input.h).
 */
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>

#include "devices/fake-input.h"
#include "devices/fake-media.h"
#include "savevm/savevm.h"

#define CURSOR_TICK_NS 30000000ull
#define QUEUE_MAX 4096u
#define SHAPE_STEPS 24u
#define SHAPE_MAX 24u

struct FakeInput {
    MigLoop *loop;
    SpiceServer *server;
    bool running;
    MigLoopSource *timer;
    FakeInputStats st;
    uint32_t phase;    /* 0: the group's mouse event, 1: KEY_DOWN, 2: KEY_UP,
                          3: in a group that came again */
    bool restart;      /* loaded: the next event may show what the source lost */
    bool have_next;    /* an event came (or the state loaded): next_group holds */
    bool saved;        /* the state went out: what comes now is lost with the source */
    SpiceInputEvent *queue;
    size_t nqueue;
    uint64_t step;     /* the cursor's */
    uint8_t shape[SHAPE_MAX * SHAPE_MAX * 4];
    FakeInputCursor cur;
};

uint32_t fake_input_digest(const uint8_t *p, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* ---- keyboard and mouse */

static bool is_mouse(uint16_t msg)
{
    return msg == SPICE_MSGC_INPUTS_MOUSE_MOTION || msg == SPICE_MSGC_INPUTS_MOUSE_POSITION;
}

static void take(FakeInput *d, const SpiceInputEvent *ev)
{
    FakeInputStats *st = &d->st;
    st->events++;
    bool restart = d->restart;
    d->restart = false;
    if (is_mouse(ev->msg)) {
        if (ev->msg == SPICE_MSGC_INPUTS_MOUSE_MOTION)
            st->motions++;
        else
            st->positions++;
        uint64_t g = fake_media_input_group(ev->x, ev->y, d->have_next ? st->next_group : 0);
        if (d->have_next && d->phase != 0 && d->phase != 3)
            st->out_of_order++; /* the last group's keys did not all come */
        if (d->have_next && g < st->next_group) {
            st->dups++;
            d->phase = 3; /* a group again: its keys are not held to anything */
            return;
        }
        if (d->have_next && g > st->next_group) {
            if (restart)
                st->restart_gaps += g - st->next_group;
            else
                st->gaps += g - st->next_group;
        }
        d->have_next = true;
        st->next_group = g + 1;
        d->phase = 1;
        return;
    }
    if (ev->msg == SPICE_MSGC_INPUTS_KEY_DOWN || ev->msg == SPICE_MSGC_INPUTS_KEY_UP) {
        if (d->phase == 3)
            return;
        uint32_t want_phase = ev->msg == SPICE_MSGC_INPUTS_KEY_DOWN ? 1 : 2;
        /* the keys of group next_group - 1, down then up */
        if (!d->have_next || d->phase != want_phase || ev->code != fake_media_scancode(st->next_group - 1)) {
            st->out_of_order++;
            return;
        }
        d->phase = want_phase == 2 ? 0 : 2;
    }
    /* modifiers and buttons: no sequence to hold them to */
}

static void sink(void *opaque, const SpiceInputEvent *ev)
{
    FakeInput *d = opaque;
    if (is_mouse(ev->msg)) {
        uint64_t g = fake_media_input_group(ev->x, ev->y, d->st.seen_next);
        if (g + 1 > d->st.seen_next)
            d->st.seen_next = g + 1;
    }
    if (d->running && !d->nqueue) {
        take(d, ev);
        return;
    }
    if (d->nqueue == QUEUE_MAX) {
        d->st.overflow++;
        return;
    }
    d->queue = mig_realloc(d->queue, (d->nqueue + 1) * sizeof(*d->queue));
    d->queue[d->nqueue++] = *ev;
    if (d->saved && is_mouse(ev->msg))
        d->st.after_save++;
}

/* ---- cursor */

/* The cursor at step k: position, visibility and shape, all from k. */
static void cursor_at(FakeInput *d, uint64_t k)
{
    uint64_t sh = k / SHAPE_STEPS;
    FakeInputCursor *c = &d->cur;
    c->x = (int16_t)((k * 7) % 600);
    c->y = (int16_t)((k * 5) % 440);
    c->visible = (k / 16) % 4 != 3;
    c->unique = 0x6d6300000000ull + sh;
    c->width = c->height = (uint16_t)(8 + (sh % 3) * 8);
    c->hot_x = (uint16_t)(sh % c->width);
    c->hot_y = (uint16_t)((sh * 3) % c->height);
    size_t n = (size_t)c->width * c->height * 4;
    for (size_t i = 0; i < n; i++)
        d->shape[i] = (uint8_t)((i * 31 + sh * 17) ^ (i >> 3));
    c->digest = fake_input_digest(d->shape, n);
}

static void cursor_publish(FakeInput *d)
{
    const FakeInputCursor *c = &d->cur;
    SpiceCursorState s = {.x = c->x, .y = c->y, .visible = c->visible, .has_shape = true, .unique = c->unique,
                          .width = c->width, .height = c->height, .hot_x = c->hot_x, .hot_y = c->hot_y,
                          .data = d->shape};
    spice_cursor_set_state(d->server, &s);
}

static void cursor_tick(void *opaque)
{
    FakeInput *d = opaque;
    d->timer = NULL;
    cursor_at(d, ++d->step);
    cursor_publish(d);
    d->timer = mig_loop_timer_add(d->loop, mig_loop_now_ns(d->loop) + CURSOR_TICK_NS, cursor_tick, d);
}

/* ---- the device */

FakeInput *fake_input_new(MigLoop *loop, SpiceServer *server, MigErr **errp)
{
    FakeInput *d = mig_malloc0(sizeof(*d));
    d->loop = loop;
    d->server = server;
    if (spice_inputs_set_sink(server, sink, d) < 0) {
        free(d);
        mig_err_set(errp, -ENOENT, "fake-input: the SPICE server has no INPUTS channel to attach to");
        return NULL;
    }
    cursor_at(d, 0);
    if (spice_cursor_set_state(server, &(SpiceCursorState){0}) < 0) {
        spice_inputs_set_sink(server, NULL, NULL);
        free(d);
        mig_err_set(errp, -ENOENT, "fake-input: the SPICE server has no CURSOR channel to attach to");
        return NULL;
    }
    cursor_publish(d);
    return d;
}

void fake_input_set_running(FakeInput *d, bool running)
{
    if (d->running == running)
        return;
    d->running = running;
    if (running) {
        /* what came while the guest stood still, in order */
        for (size_t i = 0; i < d->nqueue; i++)
            take(d, &d->queue[i]);
        d->nqueue = 0;
        d->saved = false;
        d->st.after_save = 0;
        d->timer = mig_loop_timer_add(d->loop, mig_loop_now_ns(d->loop) + CURSOR_TICK_NS, cursor_tick, d);
    } else if (d->timer) {
        mig_loop_remove(d->loop, d->timer);
        d->timer = NULL;
    }
}

void fake_input_free(FakeInput *d)
{
    if (!d)
        return;
    if (d->timer)
        mig_loop_remove(d->loop, d->timer);
    spice_inputs_set_sink(d->server, NULL, NULL);
    free(d->queue);
    free(d);
}

/* The counts as the guest will see them once it takes its queue (a
 * stopped target's first event may be the one that shows a loss). */
void fake_input_stats(const FakeInput *d, FakeInputStats *out)
{
    FakeInput tmp = *d; /* take() touches only the counts and the phase */
    for (size_t i = 0; i < d->nqueue; i++)
        take(&tmp, &d->queue[i]);
    *out = tmp.st;
    out->events = d->st.events;
    out->queued = d->nqueue;
}

void fake_input_cursor(const FakeInput *d, FakeInputCursor *out)
{
    *out = d->cur;
}

/* ---- migration state ("fake-input", version 1): next group (be64), phase
 * (u8), whether a group came (u8), events (be64), the group after the
 * newest seen (be64), the cursor's step (be64),
 * the queue: a be32 count then per event msg be16, code be32, x be32, y be32,
 * buttons be16, display u8 */

static int input_save(void *opaque, MigStream *s, MigErr **errp)
{
    FakeInput *d = opaque;
    mig_stream_put_be64(s, d->st.next_group);
    mig_stream_put_u8(s, (uint8_t)d->phase);
    mig_stream_put_u8(s, d->have_next);
    mig_stream_put_be64(s, d->st.events);
    mig_stream_put_be64(s, d->st.seen_next);
    mig_stream_put_be64(s, d->step);
    mig_stream_put_be32(s, (uint32_t)d->nqueue);
    for (size_t i = 0; i < d->nqueue; i++) {
        const SpiceInputEvent *e = &d->queue[i];
        mig_stream_put_be16(s, e->msg);
        mig_stream_put_be32(s, e->code);
        mig_stream_put_be32(s, (uint32_t)e->x);
        mig_stream_put_be32(s, (uint32_t)e->y);
        mig_stream_put_be16(s, e->buttons);
        mig_stream_put_u8(s, e->display_id);
    }
    d->saved = true;
    d->st.after_save = 0;
    return mig_stream_error(s);
}

static int input_load(void *opaque, MigStream *s, uint32_t version_id, MigErr **errp)
{
    FakeInput *d = opaque;
    uint64_t next = mig_stream_get_be64(s);
    uint8_t phase = mig_stream_get_u8(s);
    uint8_t have = mig_stream_get_u8(s);
    uint64_t events = mig_stream_get_be64(s);
    uint64_t seen = mig_stream_get_be64(s);
    uint64_t step = mig_stream_get_be64(s);
    uint32_t n = mig_stream_get_be32(s);
    if (mig_stream_starved(s))
        return -EAGAIN;
    if (mig_stream_error(s))
        return mig_err_set(errp, mig_stream_error(s), "device fake-input: stream error");
    if (phase > 3 || have > 1 || n > QUEUE_MAX)
        return mig_err_set(errp, -EINVAL, "device fake-input: phase %u, flag %u, %u queued events (at most "
                           "3, 1 and %u)", phase, have, n, QUEUE_MAX);
    SpiceInputEvent *q = n ? mig_malloc0(n * sizeof(*q)) : NULL;
    for (uint32_t i = 0; i < n; i++) {
        q[i].msg = mig_stream_get_be16(s);
        q[i].code = mig_stream_get_be32(s);
        q[i].x = (int32_t)mig_stream_get_be32(s);
        q[i].y = (int32_t)mig_stream_get_be32(s);
        q[i].buttons = mig_stream_get_be16(s);
        q[i].display_id = mig_stream_get_u8(s);
    }
    if (mig_stream_starved(s) || mig_stream_error(s)) {
        free(q);
        if (mig_stream_starved(s))
            return -EAGAIN;
        return mig_err_set(errp, mig_stream_error(s), "device fake-input: stream error in the queue");
    }
    /* a target that never ran has nothing queued of its own */
    free(d->queue);
    d->queue = q;
    d->nqueue = n;
    d->st.next_group = next;
    d->phase = phase;
    d->have_next = have;
    d->st.events = events;
    d->st.seen_next = seen;
    d->restart = true;
    d->saved = false; /* a target's own state went nowhere */
    d->st.after_save = 0;
    d->step = step;
    cursor_at(d, step);
    cursor_publish(d);
    return 0;
}

static const MigFullOps input_ops = {.save = input_save, .load = input_load};

int fake_input_register(FakeInput *d, MigSavevm *sv, MigErr **errp)
{
    int r = mig_savevm_register_full(sv, "fake-input", 0, 1, &input_ops, d, errp);
    return r < 0 ? r : 0;
}
