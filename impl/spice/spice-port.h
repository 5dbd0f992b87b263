/*
 * spice-port.h - a spicevmc channel of type PORT: a named byte stream
 * between a char device of the machine and the client
 * (docs/protocol-spice.md "Channels").
 *
 * At link: PORT_INIT with the name and whether the device side is open;
 * PORT_EVENT OPENED/CLOSED when that changes.  Device → client bytes go in
 * SPICEVMC_DATA messages of at most SPICE_PORT_CHUNK bytes; the device is
 * paced by the client's backlog (spice_port_write accepts what fits under
 * SPICE_PORT_MAX_BACKLOG, and `writable` says when more fits), so that a
 * slow client holds the device back instead of losing bytes.  Client →
 * device bytes go to the device's sink in order.
 * Called by: the char device (fakes/devices/fake-vmc), machine assembly.
 */
#ifndef MIGCERT_SPICE_PORT_H
#define MIGCERT_SPICE_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spice-server.h"

#define SPICE_PORT_CHUNK 65536u
#define SPICE_PORT_MAX_BACKLOG (256u * 1024u)

typedef struct SpicePort SpicePort;

typedef struct SpicePortOps {
    void (*sink)(void *opaque, const uint8_t *data, size_t len); /* bytes from the client */
    void (*writable)(void *opaque);                             /* room for more device bytes */
    void (*client_event)(void *opaque, uint8_t event);          /* PORT_EVENT from the client */
    /* Optional: whether the device takes client bytes now (false while the
     * guest is stopped: the port holds them, in order, until
     * spice_port_device_ready, or hands them to the target by seamless
     * migration).  NULL: always. */
    bool (*accepting)(void *opaque);
} SpicePortOps;

SpicePort *spice_port_add(SpiceServer *s, uint8_t id, const char *name, const SpicePortOps *ops, void *opaque);
void spice_port_free(SpicePort *p);
/* The device side opened or closed (PORT_EVENT to linked clients). */
void spice_port_set_open(SpicePort *p, bool open);
/* Queue up to `len` device bytes to the linked client; returns how many
 * were taken (0 when no client is linked or its backlog is full). */
size_t spice_port_write(SpicePort *p, const uint8_t *data, size_t len);
bool spice_port_has_client(const SpicePort *p);
/* Client bytes the port holds for the device (it is not accepting). */
size_t spice_port_held(const SpicePort *p);
/* The device takes client bytes again: what the port held goes first. */
void spice_port_device_ready(SpicePort *p);

#endif
