/*
 * fake-serial.c - the fake-serial device state and description (see
 * fake-serial.h).
 */
#include <string.h>

#include "fake-serial.h"

static const VmsField fake_serial_fields[] = {
    VMS_U8(ier, FakeSerial),
    VMS_U8(lcr, FakeSerial),
    VMS_U8(mcr, FakeSerial),
    VMS_U8(scr, FakeSerial),
    VMS_U16(divider, FakeSerial),
    VMS_U8(rx_count, FakeSerial),
    VMS_VARRAY(rx_fifo, FakeSerial, VMS_TYPE_U8, rx_count),
    VMS_UNUSED(2),
    VMS_TIMER(timeout_timer, FakeSerial),
    VMS_END,
};

const VmsDescription fake_serial_vmsd_v1 = {
    .name = "fake-serial",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = fake_serial_fields,
};

void fake_serial_init(FakeSerial *d, MigPrng *prng)
{
    memset(d, 0, sizeof(*d));
    uint64_t r = mig_prng_next(prng);
    d->ier = (uint8_t)(r & 0x0f);
    d->lcr = (uint8_t)(r >> 8);
    d->mcr = (uint8_t)(r >> 16) & 0x1f;
    d->scr = (uint8_t)(r >> 24);
    d->divider = (uint16_t)(1 + (r >> 32) % 1024);
    d->rx_count = (uint8_t)mig_prng_below(prng, 17);
    for (unsigned i = 0; i < d->rx_count; i++)
        d->rx_fifo[i] = (uint8_t)mig_prng_next(prng);
    d->timeout_timer = mig_prng_below(prng, 2) ? (int64_t)mig_prng_below(prng, 1000000000) : -1;
}
