/*
 * spice-sound.h - the playback and record channels (docs/protocol-spice.md
 * "Playback and record"): raw S16 stereo PCM, as spice-server sends it to a
 * client without the Opus capability.
 *
 * Playback: at link, MODE (RAW); while the device plays, START, then DATA
 * messages of at most 480 frames with the multimedia time (milliseconds of
 * the loop clock, never going back), STOP when it stops.  No frame is
 * dropped for a slow client: the backlog grows and the device can read it.
 * Nor for a client migrating in (semi-seamless target, whose playback link
 * waits for its MIGRATE_END while the machine already plays here): what
 * the device plays meanwhile is kept for that session, at most 10 s (the
 * newest), and follows START when its playback channel starts.
 * Record: while the device records, START; the client's MODE must be RAW,
 * its DATA goes to the device's sink; STOP when the device stops.
 * Called by: the sound device (fakes/devices/fake-snd), machine assembly.
 */
#ifndef MIGCERT_SPICE_SOUND_H
#define MIGCERT_SPICE_SOUND_H

#include <stddef.h>
#include <stdint.h>

#include "spice-server.h"

#define SPICE_SOUND_CHANNELS 2u
#define SPICE_SOUND_FRAME_BYTES 4u      /* stereo S16 */
#define SPICE_SOUND_FRAMES_PER_DATA 480u

typedef struct SpicePlayback SpicePlayback;
typedef struct SpiceRecord SpiceRecord;

SpicePlayback *spice_playback_add(SpiceServer *s, uint32_t frequency);
void spice_playback_free(SpicePlayback *p);
void spice_playback_start(SpicePlayback *p);
void spice_playback_stop(SpicePlayback *p);
/* Play `nframes` stereo S16 frames (sent to every linked client). */
void spice_playback_put(SpicePlayback *p, const int16_t *frames, uint32_t nframes);
/* Bytes queued to the slowest client. */
uint64_t spice_playback_backlog(const SpicePlayback *p);

typedef void (*SpiceRecordSink)(void *opaque, const uint8_t *pcm, size_t len);
SpiceRecord *spice_record_add(SpiceServer *s, uint32_t frequency, SpiceRecordSink sink, void *opaque);
void spice_record_free(SpiceRecord *r);
void spice_record_start(SpiceRecord *r);
void spice_record_stop(SpiceRecord *r);
/* Frames a client sent after the device stopped recording: dropped, as
 * the protocol allows (the client learns of the stop one trip later). */
uint64_t spice_record_dropped(const SpiceRecord *r);

#endif
