/*
 * spice-inputs.h - the inputs and cursor channels (docs/protocol-spice.md
 * "Channels"): inputs answers with INPUTS_INIT, acknowledges mouse motion
 * in bunches of four, counts key and mouse events and hands each to the
 * guest's keyboard and mouse when one is attached (spice_inputs_set_sink);
 * cursor sends the guest's cursor (spice_cursor_set_state): CURSOR_INIT
 * with it when a client links, then CURSOR_SET, CURSOR_MOVE and
 * CURSOR_HIDE as it changes, to every client whose cursor channel runs.
 * Called by: whoever assembles a server (machine.c), the guest's devices
 * (fakes/devices/fake-input.c).
 */
#ifndef MIGCERT_SPICE_INPUTS_H
#define MIGCERT_SPICE_INPUTS_H

#include <stdbool.h>

#include "spice-server.h"

/* One event a client sent, as the guest's devices get it. */
typedef struct SpiceInputEvent {
    uint16_t msg;     /* SPICE_MSGC_INPUTS_KEY_DOWN, ..._MOUSE_RELEASE */
    uint32_t code;    /* KEY_DOWN / KEY_UP: the scancode; KEY_MODIFIERS: the
                         modifiers; MOUSE_PRESS / RELEASE: the button */
    int32_t x, y;     /* MOUSE_MOTION: dx, dy; MOUSE_POSITION: x, y */
    uint16_t buttons; /* the mouse events' buttons_state */
    uint8_t display_id;
} SpiceInputEvent;
typedef void (*SpiceInputSink)(void *opaque, const SpiceInputEvent *ev);

typedef struct SpiceInputsStats {
    uint64_t keys, mouse_events;
    SpiceInputSink sink; /* the guest's keyboard and mouse; NULL: none */
    void *sink_opaque;
} SpiceInputsStats;

/* The guest's cursor: its position, whether it shows, and its shape
 * (`unique` names it; SPICE_CURSOR_TYPE_ALPHA, width x height x 4 bytes). */
typedef struct SpiceCursorState {
    int16_t x, y;
    bool visible;
    bool has_shape;
    uint64_t unique;
    uint16_t width, height, hot_x, hot_y;
    const uint8_t *data; /* width * height * 4 bytes; copied */
} SpiceCursorState;

/* Offer INPUTS:0 and CURSOR:0; `stats` (owned by the caller, may be NULL)
 * counts what clients send. */
void spice_inputs_add(SpiceServer *s, SpiceInputsStats *stats);
/* Attach the guest's keyboard and mouse to the INPUTS channel of `s` (its
 * stats must have been given); NULL detaches.  -ENOENT without one. */
int spice_inputs_set_sink(SpiceServer *s, SpiceInputSink sink, void *opaque);
/* The guest's cursor changed: remember it (for clients that link later)
 * and send the change to every running cursor channel.  -ENOENT when `s`
 * has no cursor channel. */
int spice_cursor_set_state(SpiceServer *s, const SpiceCursorState *st);

#endif
