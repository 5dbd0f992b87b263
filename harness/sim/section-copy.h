/*
 * section-copy.h - move one FULL section between two savevm registries
 * through a memory stream, as a migration's device phase does, without a
 * machine: the first entry of `src` saves, the first entry of `dst` loads at
 * the version src registered.  Test support for device history tests
 * (test-releases, test-spice-devices); no stream framing, no fault points
 * beyond the device's own.
 * Invariants: the stream is freed before returning; neither registry is
 * changed.
 */
#ifndef MIGCERT_SIM_SECTION_COPY_H
#define MIGCERT_SIM_SECTION_COPY_H

#include "common/common.h"
#include "savevm/savevm.h"

/* Returns what dst's load returned (0, or a negative errno with errp), or
 * src's save error. */
int sim_section_copy(MigSavevm *src, MigSavevm *dst, MigErr **errp);

#endif
