/*
 * fake-nic.c - the fake-nic device state and its per-release descriptions
 * (see fake-nic.h).
 */
#include <string.h>

#include "fake-nic.h"

static const VmsField desc_fields[] = {
    VMS_U64(addr, FakeNicDesc),
    VMS_U16(len, FakeNicDesc),
    VMS_U16(flags, FakeNicDesc),
    VMS_END,
};

static const VmsDescription desc_vmsd = {
    .name = "fake-nic/desc",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = desc_fields,
};

static const VmsField stats_fields[] = {
    VMS_U64(rx_packets, FakeNicStats),
    VMS_U64(tx_packets, FakeNicStats),
    VMS_U32(errors, FakeNicStats),
    VMS_END,
};

static const VmsDescription stats_vmsd = {
    .name = "fake-nic/stats",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = stats_fields,
};

static const VmsField offload_fields[] = {
    VMS_U32(csum_flags, FakeNic),
    VMS_U16(tso_mss, FakeNic),
    VMS_END,
};

static bool offload_needed(void *obj)
{
    return ((FakeNic *)obj)->csum_flags != 0;
}

static const VmsDescription offload_vmsd = {
    .name = "fake-nic/offload",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = offload_fields,
    .needed = offload_needed,
};

static const VmsDescription *const nic_subsections[] = {&offload_vmsd, NULL};

#define NIC_V1_FIELDS                                                \
    VMS_BUFFER(mac, FakeNic), VMS_U32(ctrl, FakeNic), VMS_U32(status, FakeNic), \
        VMS_U16(rx_head, FakeNic), VMS_U16(rx_tail, FakeNic),        \
        VMS_STRUCT_ARRAY(rx_ring, FakeNic, desc_vmsd, FakeNicDesc),  \
        VMS_U8(tx_count, FakeNic),                                   \
        VMS_STRUCT_VARRAY(tx_ring, FakeNic, desc_vmsd, FakeNicDesc, tx_count), \
        VMS_STRUCT(stats, FakeNic, stats_vmsd, FakeNicStats)

static const VmsField nic_fields_v1[] = {
    NIC_V1_FIELDS,
    VMS_END,
};

static const VmsField nic_fields_v2[] = {
    NIC_V1_FIELDS,
    VMS_U32_V(mtu, FakeNic, 2),
    VMS_END,
};

/* What an absent subsection or version-gated field leaves: the defaults. */
static int nic_pre_load(void *obj)
{
    FakeNic *d = obj;
    d->csum_flags = 0;
    d->tso_mss = 0;
    d->mtu = FAKE_NIC_DEFAULT_MTU;
    return 0;
}

const VmsDescription fake_nic_vmsd_1_0 = {
    .name = "fake-nic",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = nic_fields_v1,
};

const VmsDescription fake_nic_vmsd_1_1 = {
    .name = "fake-nic",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = nic_fields_v1,
    .subsections = nic_subsections,
    .pre_load = nic_pre_load,
};

const VmsDescription fake_nic_vmsd_2_0 = {
    .name = "fake-nic",
    .version_id = 2,
    .minimum_version_id = 1,
    .fields = nic_fields_v2,
    .subsections = nic_subsections,
    .pre_load = nic_pre_load,
};

static void desc_init(FakeNicDesc *x, MigPrng *prng)
{
    x->addr = mig_prng_next(prng) & ~0xfffull;
    x->len = (uint16_t)(64 + mig_prng_below(prng, 1455));
    x->flags = (uint16_t)mig_prng_below(prng, 4);
}

void fake_nic_init(FakeNic *d, MigPrng *prng)
{
    memset(d, 0, sizeof(*d));
    uint64_t r = mig_prng_next(prng);
    memcpy(d->mac, &r, sizeof(d->mac));
    d->mac[0] = 0x52; /* locally administered, like QEMU's 52:54:00 */
    d->ctrl = (uint32_t)mig_prng_next(prng);
    d->status = (uint32_t)mig_prng_next(prng);
    d->rx_head = (uint16_t)mig_prng_below(prng, 8);
    d->rx_tail = (uint16_t)mig_prng_below(prng, 8);
    for (unsigned i = 0; i < 8; i++)
        desc_init(&d->rx_ring[i], prng);
    d->tx_count = (uint8_t)(1 + mig_prng_below(prng, 8));
    for (unsigned i = 0; i < d->tx_count; i++)
        desc_init(&d->tx_ring[i], prng);
    d->stats.rx_packets = mig_prng_below(prng, 1u << 30);
    d->stats.tx_packets = mig_prng_below(prng, 1u << 30);
    d->stats.errors = (uint32_t)mig_prng_below(prng, 100);
    d->csum_flags = 1 + (uint32_t)mig_prng_below(prng, 7);
    d->tso_mss = (uint16_t)(536 + mig_prng_below(prng, 1000));
    d->mtu = 1500 + (uint32_t)mig_prng_below(prng, 7500);
}
