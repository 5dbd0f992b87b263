/*
 * spice-main.h - the main channel of a SPICE server (docs/protocol-spice.md
 * "Main channel"): the session start (MAIN_INIT, NAME, UUID), the list of
 * channels after ATTACH_CHANNELS, mouse modes, agent tokens without an
 * agent, and (later) the migration messages.
 *
 * Owns: the main channel's class and its per-client state.
 * Called by: whoever assembles a server (impl/machine, tests).
 */
#ifndef MIGCERT_SPICE_MAIN_H
#define MIGCERT_SPICE_MAIN_H

#include "spice-server.h"

/* Offer MAIN:0 on `s`. */
SpiceChannel *spice_main_add(SpiceServer *s);

#endif
