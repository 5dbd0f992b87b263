/*
 * fake-media.h - the sequence conventions of the fake sound and char
 * devices, shared by the devices (fake-snd, fake-vmc) and the fake client,
 * so that either end can tell a lost, repeated or reordered unit:
 *   - PCM: frame n is the stereo pair (n & 0xffff, (n >> 16) & 0xffff) as
 *     int16 bits: 2^32 frames (a day at 48 kHz) before it wraps;
 *   - char device bytes: byte n is n modulo FAKE_MEDIA_BYTE_PERIOD (251, a
 *     prime, so no power-of-two chunking lines up with it).
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

#endif
