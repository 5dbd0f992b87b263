/*
 * fake-nic.h - a network-card-like fake device with a release history: nested
 * structs, arrays of structs, a variable array, a subsection and a versioned
 * field.
 *
 * Owns: FakeNic state (one C struct for every release) and its descriptions:
 *   1.0      "fake-nic" v1: mac, ctrl, status, rx_head/tail, rx_ring[8] of
 *            fake-nic/desc structs, tx_count + tx_ring[tx_count], stats
 *            (nested fake-nic/stats);
 *   1.1      v1 + subsection "fake-nic/offload" (csum_flags, tso_mss), sent
 *            when csum_flags != 0;
 *   2.0      v2 (minimum 1): + field mtu (version 2), offload kept.
 * Documented transforms when a newer release loads an older stream: mtu
 * absent (version 1 stream) -> 1500; offload subsection absent ->
 * csum_flags = 0, tso_mss = 0 (the pre_load hook sets these defaults).
 * Called by fakes/devices/releases.c, tests.
 */
#ifndef MIGCERT_FAKE_NIC_H
#define MIGCERT_FAKE_NIC_H

#include <stdint.h>

#include "common/prng.h"
#include "vmstate/vmstate.h"

typedef struct FakeNicDesc {
    uint64_t addr;
    uint16_t len;
    uint16_t flags;
} FakeNicDesc;

typedef struct FakeNicStats {
    uint64_t rx_packets;
    uint64_t tx_packets;
    uint32_t errors;
} FakeNicStats;

typedef struct FakeNic {
    uint8_t mac[6];
    uint32_t ctrl, status;
    uint16_t rx_head, rx_tail;
    FakeNicDesc rx_ring[8];
    uint8_t tx_count;
    FakeNicDesc tx_ring[8];
    FakeNicStats stats;
    uint32_t csum_flags; /* 1.1+: subsection fake-nic/offload */
    uint16_t tso_mss;
    uint32_t mtu; /* 2.0+: version 2 */
} FakeNic;

#define FAKE_NIC_DEFAULT_MTU 1500u

extern const VmsDescription fake_nic_vmsd_1_0;
extern const VmsDescription fake_nic_vmsd_1_1;
extern const VmsDescription fake_nic_vmsd_2_0;

/* Deterministic state; offload is enabled (the subsection is needed). */
void fake_nic_init(FakeNic *d, MigPrng *prng);

#endif
