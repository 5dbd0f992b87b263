/*
 * fake-qxl.h - the fake display device: a deterministic drawing workload
 * from the loop's PRNG that runs only while the machine runs, like a guest.
 * Every 16 ms of loop time it draws a few operations on its primary surface:
 * solid fills, copies of images from a small recurring set (so that the
 * client's pixmap cache is used and evicted), and copies of bits inside the
 * surface.  The device keeps its own framebuffer, drawn by the same rules:
 * the truth the display oracle compares the client's surface with.
 * A faster rate (fake_qxl_set_draw_rate) is a throughput workload: it
 * draws every millisecond, but never while a display client has
 * FAKE_QXL_MAX_PIPE messages or more not yet written, as spice-server's
 * worker stops taking commands while a client's pipe is full, so that
 * the server never runs ahead of a client that keeps up.
 * A guest may have several heads (monitors): each is its own display
 * channel (DISPLAY:0 .. DISPLAY:n-1) with its own primary surface and
 * framebuffer; every operation goes to one head chosen by the PRNG, and the
 * recurring images are the same on every head, so that one client's heads
 * share what its pixmap cache holds.
 * Owns: its SPICE display channels and their framebuffers.
 * Called by: machine assembly in the harness and `migcert vm`.
 */
#ifndef MIGCERT_FAKE_QXL_H
#define MIGCERT_FAKE_QXL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/loop.h"
#include "spice/spice-canvas.h"
#include "spice/spice-display.h"

#define FAKE_QXL_IMAGES 6u /* recurring images, ids 1..6 */
#define FAKE_QXL_MAX_HEADS 4u /* display channels sharing one client's pixmap cache */
#define FAKE_QXL_MAX_PIPE 256u /* messages a client may have waiting at a fast rate */

typedef struct FakeQxl FakeQxl;

FakeQxl *fake_qxl_new(MigLoop *loop, SpiceServer *server, uint32_t width, uint32_t height);
/* `heads` (1..FAKE_QXL_MAX_HEADS) heads of width × height each; NULL
 * otherwise. */
FakeQxl *fake_qxl_new_heads(MigLoop *loop, SpiceServer *server, uint32_t width, uint32_t height, uint32_t heads);
void fake_qxl_free(FakeQxl *q);
void fake_qxl_set_running(FakeQxl *q, bool running);
/* Draw `ops_per_s` operations per second of loop time, in ticks of 1 ms
 * (fractions carry over to the next tick); a tick stops early, and its
 * remaining operations are dropped, when a display client has
 * FAKE_QXL_MAX_PIPE messages waiting.  0: the default workload (4
 * operations every 16 ms, never held back). */
void fake_qxl_set_draw_rate(FakeQxl *q, uint32_t ops_per_s);
/* The guest's framebuffer (the primary surface as the guest drew it) and
 * display channel of head 0. */
const SpiceSurface *fake_qxl_framebuffer(const FakeQxl *q);
SpiceDisplay *fake_qxl_display(const FakeQxl *q);
/* The same for every head (NULL past the last). */
uint32_t fake_qxl_heads(const FakeQxl *q);
const SpiceSurface *fake_qxl_head_framebuffer(const FakeQxl *q, uint32_t head);
SpiceDisplay *fake_qxl_head_display(const FakeQxl *q, uint32_t head);
uint64_t fake_qxl_ops(const FakeQxl *q);
/* Register the device's state ("fake-qxl", version 1 for one head, 2 for
 * several: the framebuffers, the drawing PRNG and the operation count) as a
 * FULL section: what the guest
 * had on screen goes with the machine. */
struct MigSavevm;
int fake_qxl_register(FakeQxl *q, struct MigSavevm *sv, MigErr **errp);

#endif
