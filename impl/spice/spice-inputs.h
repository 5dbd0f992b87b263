/*
 * spice-inputs.h - the inputs and cursor channels, as much as a client
 * needs to open them (docs/protocol-spice.md "Channels"): inputs answers
 * with INPUTS_INIT and acknowledges mouse motion in bunches of four;
 * cursor sends CURSOR_INIT without a shape.  Key and mouse events are
 * counted, not delivered to a guest (the machine has no keyboard device).
 * Called by: whoever assembles a server.
 */
#ifndef MIGCERT_SPICE_INPUTS_H
#define MIGCERT_SPICE_INPUTS_H

#include "spice-server.h"

typedef struct SpiceInputsStats {
    uint64_t keys, mouse_events;
} SpiceInputsStats;

/* Offer INPUTS:0 and CURSOR:0; `stats` (owned by the caller, may be NULL)
 * counts what clients send. */
void spice_inputs_add(SpiceServer *s, SpiceInputsStats *stats);

#endif
