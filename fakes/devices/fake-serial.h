/*
 * fake-serial.h - a small UART-like fake device.
 *
 * Owns: FakeSerial state and its VmsDescriptions "fake-serial":
 *   v1 (releases 1.0, 1.1): registers, a nested struct "fake-serial/modem"
 *      (modem and line status), a receive FIFO as a variable array (count in
 *      rx_count), 2 bytes of padding and a timer;
 *   v2 (release 2.0 on, minimum version 1): adds the field fcr (FIFO
 *      control) after the v1 fields.  A v1 stream has no fcr: pre_load sets
 *      FAKE_SERIAL_DEFAULT_FCR, what releases before 2.0 always ran with (FIFO
 *      enabled, 14-byte receive trigger).
 * Called by fakes/devices/releases.c (release data, device instances), tests.
 */
#ifndef MIGCERT_FAKE_SERIAL_H
#define MIGCERT_FAKE_SERIAL_H

#include <stdint.h>

#include "common/prng.h"
#include "vmstate/vmstate.h"

/* fcr after loading a stream without it (releases 1.0 and 1.1). */
#define FAKE_SERIAL_DEFAULT_FCR 0xc1

typedef struct FakeSerialModem {
    uint8_t msr; /* modem status */
    uint8_t lsr; /* line status */
} FakeSerialModem;

typedef struct FakeSerial {
    uint8_t ier, lcr, mcr, scr;
    uint16_t divider;
    FakeSerialModem modem;
    uint8_t rx_count;
    uint8_t rx_fifo[16];
    int64_t timeout_timer;
    uint8_t fcr; /* v2 */
} FakeSerial;

extern const VmsDescription fake_serial_vmsd_v1;
extern const VmsDescription fake_serial_vmsd_v2;

/* Deterministic non-trivial state from a PRNG (fcr never equals the
 * default, so a test sees whether it was migrated or defaulted). */
void fake_serial_init(FakeSerial *d, MigPrng *prng);

#endif
