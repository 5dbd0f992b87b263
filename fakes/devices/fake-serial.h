/*
 * fake-serial.h - a small UART-like fake device whose description never
 * changed across releases (the control case of the version matrix).
 *
 * Owns: FakeSerial state and its VmsDescription "fake-serial" v1: registers,
 * a receive FIFO as a variable array (count in rx_count), 2 bytes of padding
 * and a timer.  Called by fakes/devices/releases.c (release data, device
 * instances), tests.
 */
#ifndef MIGCERT_FAKE_SERIAL_H
#define MIGCERT_FAKE_SERIAL_H

#include <stdint.h>

#include "common/prng.h"
#include "vmstate/vmstate.h"

typedef struct FakeSerial {
    uint8_t ier, lcr, mcr, scr;
    uint16_t divider;
    uint8_t rx_count;
    uint8_t rx_fifo[16];
    int64_t timeout_timer;
} FakeSerial;

extern const VmsDescription fake_serial_vmsd_v1;

/* Deterministic non-trivial state from a PRNG. */
void fake_serial_init(FakeSerial *d, MigPrng *prng);

#endif
