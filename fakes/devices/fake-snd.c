/*
 * fake-snd.c - the fake sound device (fake-snd.h).
 */
#include <stdlib.h>
#include <string.h>

#include "devices/fake-media.h"
#include "devices/fake-snd.h"
#include "savevm/savevm.h"
#include "spice/spice-sound.h"

#define TICK_NS 10000000ull

struct FakeSnd {
    MigLoop *loop;
    SpicePlayback *playback;
    SpiceRecord *record;
    bool running;
    MigLoopSource *timer;
    uint64_t next_frame;
    FakeSndStats st;
    uint64_t rec_next;
    int16_t partial[2]; /* a frame split across two DATA messages */
    size_t partial_len;
    bool rec_restart; /* recording (re)started: the next frame may show a drop */
};

static void tick(void *opaque)
{
    FakeSnd *s = opaque;
    s->timer = NULL;
    int16_t pcm[FAKE_MEDIA_FRAMES_PER_TICK * 2];
    for (uint32_t i = 0; i < FAKE_MEDIA_FRAMES_PER_TICK; i++)
        fake_media_frame(s->next_frame++, &pcm[2 * i]);
    spice_playback_put(s->playback, pcm, FAKE_MEDIA_FRAMES_PER_TICK);
    s->st.played += FAKE_MEDIA_FRAMES_PER_TICK;
    s->timer = mig_loop_timer_add(s->loop, mig_loop_now_ns(s->loop) + TICK_NS, tick, s);
}

static void check_frame(FakeSnd *s, const int16_t f[2])
{
    uint64_t n = fake_media_frame_seq(f);
    if (s->st.recorded && n < s->rec_next)
        s->st.rec_dups++;
    else if (s->st.recorded && n > s->rec_next && s->rec_restart)
        s->st.rec_restart_gaps += n - s->rec_next;
    else if (s->st.recorded && n > s->rec_next)
        s->st.rec_gaps += n - s->rec_next;
    s->rec_restart = false;
    s->rec_next = n + 1;
    s->st.recorded++;
}

static void record_sink(void *opaque, const uint8_t *pcm, size_t len)
{
    FakeSnd *s = opaque;
    uint8_t *part = (uint8_t *)s->partial;
    while (len) {
        if (s->partial_len == 0 && s->st.recorded) {
            /* whole frames, each the one expected: check_frame would count
             * nothing for them */
            size_t k = fake_media_frames_in_order(pcm, len / 4, s->rec_next);
            if (k) {
                s->rec_restart = false;
                s->rec_next += k;
                s->st.recorded += k;
                pcm += 4 * k;
                len -= 4 * k;
                continue;
            }
        }
        size_t n = sizeof(s->partial) - s->partial_len;
        n = n < len ? n : len;
        memcpy(part + s->partial_len, pcm, n);
        s->partial_len += n;
        pcm += n;
        len -= n;
        if (s->partial_len == sizeof(s->partial)) {
            check_frame(s, s->partial);
            s->partial_len = 0;
        }
    }
}

FakeSnd *fake_snd_new(MigLoop *loop, SpiceServer *server)
{
    FakeSnd *s = mig_malloc0(sizeof(*s));
    s->loop = loop;
    s->playback = spice_playback_add(server, FAKE_MEDIA_FREQUENCY);
    s->record = spice_record_add(server, FAKE_MEDIA_FREQUENCY, record_sink, s);
    return s;
}

void fake_snd_set_running(FakeSnd *s, bool running)
{
    if (s->running == running)
        return;
    s->running = running;
    if (running) {
        spice_playback_start(s->playback);
        spice_record_start(s->record);
        s->rec_restart = true;
        s->partial_len = 0; /* the client starts every DATA on a frame */
        s->timer = mig_loop_timer_add(s->loop, mig_loop_now_ns(s->loop) + TICK_NS, tick, s);
    } else {
        spice_playback_stop(s->playback);
        spice_record_stop(s->record);
        if (s->timer)
            mig_loop_remove(s->loop, s->timer);
        s->timer = NULL;
    }
}

void fake_snd_free(FakeSnd *s)
{
    if (!s)
        return;
    if (s->timer)
        mig_loop_remove(s->loop, s->timer);
    spice_playback_free(s->playback);
    spice_record_free(s->record);
    free(s);
}

void fake_snd_skip_playback(FakeSnd *s, uint64_t frames)
{
    s->next_frame += frames;
}

void fake_snd_stats(const FakeSnd *s, FakeSndStats *out)
{
    *out = s->st;
    out->rec_dropped = spice_record_dropped(s->record);
}

/* ---- migration state: ("fake-snd", version 1: the next playback frame, frames played, the next record frame expected, frames recorded) */

static int snd_save(void *opaque, MigStream *s, MigErr **errp)
{
    FakeSnd *d = opaque;
    mig_stream_put_be64(s, d->next_frame);
    mig_stream_put_be64(s, d->st.played);
    mig_stream_put_be64(s, d->rec_next);
    mig_stream_put_be64(s, d->st.recorded);
    return mig_stream_error(s);
}

static int snd_load(void *opaque, MigStream *s, uint32_t version_id, MigErr **errp)
{
    FakeSnd *d = opaque;
    uint64_t next_frame = mig_stream_get_be64(s);
    uint64_t played = mig_stream_get_be64(s);
    uint64_t rec_next = mig_stream_get_be64(s);
    uint64_t recorded = mig_stream_get_be64(s);
    if (mig_stream_starved(s))
        return -EAGAIN;
    if (mig_stream_error(s))
        return mig_err_set(errp, mig_stream_error(s), "device fake-snd: stream error");
    d->next_frame = next_frame;
    d->st.played = played;
    d->rec_next = rec_next;
    d->st.recorded = recorded;
    d->rec_restart = true;
    return 0;
}

static const MigFullOps snd_ops = {.save = snd_save, .load = snd_load};

int fake_snd_register(FakeSnd *d, MigSavevm *sv, MigErr **errp)
{
    int r = mig_savevm_register_full(sv, "fake-snd", 0, 1, &snd_ops, d, errp);
    return r < 0 ? r : 0;
}
