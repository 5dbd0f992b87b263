/*
 * device-savevm.h - a VFIO-style device (MigDevice) as an iterative section
 * of the migration stream, through the engine's savevm registry
 * (impl/migration/savevm.h).
 *
 * Owns: the device section payload format and MigDevSection, the handler
 * glue.  Called by: whoever assembles a machine (impl/machine, the scenario
 * executor, tests, the simulator) after creating the device;
 * vmstate-described devices do not come here (the engine sends those as
 * FULL sections).
 *
 * Why a second public header of impl/device: this glue depends on the
 * migration module's savevm registry (impl/migration/savevm.h), and device.h
 * must not.  `migcert certify`, the plugin backends and the v1 adapter use
 * device.h alone, and impl/migration never includes anything of impl/device;
 * keeping the registry glue here keeps that layering one-way (device.h <-
 * device-savevm.h -> savevm.h).
 *
 * Source: save_setup writes START and opens the saving session (PRE_COPY
 * when offered); save_iterate streams what the device has now as PART
 * payloads (the snapshot, then dirty data) until the device says "nothing
 * now"; save_complete enters STOP_COPY and reads until the device reports
 * the end (END payload), then STOP.  A failed or cancelled migration aborts
 * the device back to RUNNING, state intact.  When the guest runs again
 * (`cont` after a completed migration) a stopped device runs with it
 * (guest_resumed).
 * Destination: SETUP (in START) enters RESUMING; DATA records are written
 * to the device; COMPLETE (in END) asks RESUMING -> STOP, which validates the
 * whole stream; the device runs when the migration completes and is reset
 * when it fails.  A malformed payload (unknown tag, bad length, unknown
 * format or section version, a record in the wrong section, a stream that
 * ends inside a record) is -EPROTO/-ENOTSUP with an error naming the device
 * section (idstr) and the stream offset of the record; nothing of that
 * record reaches the device.
 *
 * Payload records: impl/stream/dev-format.h (docs/protocol-vfio.md).
 */
#ifndef MIGCERT_DEVICE_SAVEVM_H
#define MIGCERT_DEVICE_SAVEVM_H

#include "../savevm/savevm.h"
#include "device.h"
#include "../stream/dev-format.h"

typedef struct MigDevSection MigDevSection;

/* Register `dev` as iterative section (idstr, instance_id) version 1.
 * The section does not own the device; free it before the device. */
MigDevSection *mig_dev_section_register(MigSavevm *sv, MigDevice *dev, const char *idstr,
                                        uint32_t instance_id, MigErr **errp);
void mig_dev_section_free(MigDevSection *sec);

#endif
