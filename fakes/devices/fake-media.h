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

#include <stdint.h>

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
