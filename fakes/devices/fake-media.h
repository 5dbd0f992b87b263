/*
 * fake-media.h - the sequence conventions of the fake sound and char
 * devices, shared by the devices (fake-snd, fake-vmc) and the fake client,
 * so that either end can tell a lost, repeated or reordered unit:
 *   - PCM: frame n is the stereo pair (n & 0xffff, (n >> 16) & 0xffff) as
 *     int16 bits: 2^32 frames (a day at 48 kHz) before it wraps;
 *   - char device bytes: byte n is n modulo FAKE_MEDIA_BYTE_PERIOD (251, a
 *     prime, so no power-of-two chunking lines up with it);
 *   - input events: the client sends groups g = 0, 1, ...; group g is a
 *     mouse event (MOUSE_MOTION in server mouse mode, MOUSE_POSITION in
 *     client mode) whose (x, y) or (dx, dy) is (g % 640, g / 640 % 480),
 *     then KEY_DOWN and KEY_UP of scancode fake_media_scancode(g): a group
 *     is told from its mouse event (modulo 307200, about 4 hours at the
 *     client's 20 groups a second), its keys from their place.
 */
#ifndef MIGCERT_FAKE_MEDIA_H
#define MIGCERT_FAKE_MEDIA_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FAKE_MEDIA_FREQUENCY 48000u
#define FAKE_MEDIA_FRAMES_PER_TICK 480u /* 10 ms */
#define FAKE_MEDIA_BYTE_PERIOD 251u

static inline void fake_media_frame(uint64_t n, int16_t out[2])
{
    out[0] = (int16_t)(uint16_t)(n & 0xffff);
    out[1] = (int16_t)(uint16_t)((n >> 16) & 0xffff);
}

static inline uint64_t fake_media_frame_seq(const int16_t in[2])
{
    return (uint64_t)(uint16_t)in[0] | (uint64_t)(uint16_t)in[1] << 16;
}

static inline uint8_t fake_media_byte(uint64_t n)
{
    return (uint8_t)(n % FAKE_MEDIA_BYTE_PERIOD);
}

/* Bytes n, n + 1, ... of the sequence into out[0..len): one division, not
 * one a byte (a port moves megabytes in a case). */
static inline void fake_media_bytes(uint64_t n, uint8_t *out, size_t len)
{
    unsigned r = (unsigned)(n % FAKE_MEDIA_BYTE_PERIOD);
    for (size_t i = 0; i < len; i++) {
        out[i] = (uint8_t)r;
        r = r + 1 == FAKE_MEDIA_BYTE_PERIOD ? 0 : r + 1;
    }
}

/* How many of the len bytes at in are bytes n, n + 1, ... of the sequence
 * (len when all are; else the index of the first one out of place). */
static inline size_t fake_media_bytes_match(uint64_t n, const uint8_t *in, size_t len)
{
    unsigned r = (unsigned)(n % FAKE_MEDIA_BYTE_PERIOD);
    for (size_t i = 0; i < len; i++) {
        if (in[i] != r)
            return i;
        r = r + 1 == FAKE_MEDIA_BYTE_PERIOD ? 0 : r + 1;
    }
    return len;
}

/* How many of the n PCM frames at pcm (4 bytes each, any alignment) are
 * frames first, first + 1, ... in order: the common case, which needs no
 * frame-by-frame bookkeeping. */
static inline size_t fake_media_frames_in_order(const void *pcm, size_t n, uint64_t first)
{
    const unsigned char *p = pcm;
    for (size_t i = 0; i < n; i++) {
        int16_t f[2];
        memcpy(f, p + 4 * i, sizeof(f));
        if (fake_media_frame_seq(f) != first + i)
            return i;
    }
    return n;
}

#define FAKE_MEDIA_INPUT_W 640u
#define FAKE_MEDIA_INPUT_H 480u

static inline uint32_t fake_media_scancode(uint64_t g)
{
    return 0x10u + (uint32_t)(g % 0x1cu); /* the q and a rows of a PC keyboard */
}

static inline void fake_media_input_xy(uint64_t g, int32_t *x, int32_t *y)
{
    *x = (int32_t)(g % FAKE_MEDIA_INPUT_W);
    *y = (int32_t)(g / FAKE_MEDIA_INPUT_W % FAKE_MEDIA_INPUT_H);
}

/* The group of mouse event (x, y): the one of that residue nearest to
 * `near` (the group expected), so that a loss reads forward and a repeat
 * backward. */
static inline uint64_t fake_media_input_group(int32_t x, int32_t y, uint64_t near)
{
    const uint64_t period = (uint64_t)FAKE_MEDIA_INPUT_W * FAKE_MEDIA_INPUT_H;
    uint64_t r = (uint64_t)(uint32_t)y % FAKE_MEDIA_INPUT_H * FAKE_MEDIA_INPUT_W + (uint64_t)(uint32_t)x % FAKE_MEDIA_INPUT_W;
    uint64_t base = near - near % period, g = base + r;
    if (g > near && g - near > period / 2 && g >= period)
        g -= period;
    else if (g < near && near - g > period / 2)
        g += period;
    return g;
}

#endif
