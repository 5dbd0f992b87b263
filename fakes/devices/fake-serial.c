/*
 * fake-serial.c - the fake-serial device state and descriptions (see
 * fake-serial.h).
 */
#include <string.h>

#include "fake-serial.h"

static const VmsField modem_fields[] = {
    VMS_U8(msr, FakeSerialModem),
    VMS_U8(lsr, FakeSerialModem),
    VMS_END,
};

static const VmsDescription modem_vmsd = {
    .name = "fake-serial/modem",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = modem_fields,
};

#define SERIAL_V1_FIELDS                                                             \
    VMS_U8(ier, FakeSerial), VMS_U8(lcr, FakeSerial), VMS_U8(mcr, FakeSerial),       \
        VMS_U8(scr, FakeSerial), VMS_U16(divider, FakeSerial),                       \
        VMS_STRUCT(modem, FakeSerial, modem_vmsd, FakeSerialModem),                  \
        VMS_U8(rx_count, FakeSerial), VMS_VARRAY(rx_fifo, FakeSerial, VMS_TYPE_U8, rx_count), \
        VMS_UNUSED(2), VMS_TIMER(timeout_timer, FakeSerial)

static const VmsField fake_serial_fields_v1[] = {
    SERIAL_V1_FIELDS,
    VMS_END,
};

static const VmsField fake_serial_fields_v2[] = {
    SERIAL_V1_FIELDS,
    VMS_U8_V(fcr, FakeSerial, 2),
    VMS_END,
};

/* What a v1 stream leaves of the v2 state: the documented default. */
static int serial_pre_load(void *obj)
{
    ((FakeSerial *)obj)->fcr = FAKE_SERIAL_DEFAULT_FCR;
    return 0;
}

const VmsDescription fake_serial_vmsd_v1 = {
    .name = "fake-serial",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = fake_serial_fields_v1,
};

const VmsDescription fake_serial_vmsd_v2 = {
    .name = "fake-serial",
    .version_id = 2,
    .minimum_version_id = 1,
    .fields = fake_serial_fields_v2,
    .pre_load = serial_pre_load,
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
    /* drawn after the v1 state, so v1 state per seed is what it was */
    uint64_t m = mig_prng_next(prng);
    d->modem.msr = (uint8_t)m;
    d->modem.lsr = (uint8_t)(0x60 | ((m >> 8) & 0x1f));
    d->fcr = (uint8_t)((m >> 16) & 0x07) << 1; /* FIFO reset bits only: never 0xc1 */
}
