/*
 * fake-gpu.h - a VFIO-style fake device with a large device memory, dirty
 * tracking, PRE_COPY and optional P2P, speaking the vendor ABI
 * (include/migcert/device.h) in v2 or in v1 form.
 *
 * Owns: the device model.  Memory (default 1 MiB, cfg->mem_size up to any
 * size, e.g. 64 MiB) is written by guest_run() (the workload); registers are
 * sent only at stop-and-copy.  A saving session hands out a header, then
 * every page once (the initial snapshot), then pages dirtied since they were
 * sent, and in STOP_COPY the registers and an END record carrying a checksum
 * of everything before it.  RESUMING -> STOP refuses a stream that is
 * truncated, corrupt, followed by extra bytes or from a device of another
 * memory size.  Both tables carry a vmstate description (a -dump-vmstate
 * entry naming the registers and the memory pages).
 *
 * Stream (all big-endian):
 *   header  "FGPU" be32 version=1 be64 mem_size be32 page_size     20 bytes
 *   page    u8 0x01 be32 page_index page_size bytes                  4101
 *   regs    u8 0x02 16 x be32                                         65
 *   end     u8 0x03 be64 FNV-1a-64 of every byte before the checksum   9
 *
 * The sample vendor plugins (fakes/vendor) are built from this file: each
 * FAKE_GPU_BROKEN_<RULE> macro breaks exactly one rule of the ABI:
 *   STOPCOPY_TO_PRECOPY  accepts the arc STOP_COPY -> PRE_COPY
 *   PENDING_NEVER_ZERO   pending data never reaches zero; STOP_COPY never ends
 *   ABORT_LOSES_DATA     PRE_COPY -> RUNNING drops the writes not yet sent
 *   RESET_KEEPS_ERROR    reset does not leave ERROR
 *   SHORT_READ           a read cut short claims the whole record's length
 *   ACCEPTS_TRUNCATED    RESUMING -> STOP accepts a stream without its END
 * (fakes/vendor/src/vendor-gpu.c adds the plugin-level variants: a malformed
 * vmstate description, a crash, a hang, a wrong ABI version, no symbol.)
 */
#ifndef MIGCERT_FAKE_GPU_H
#define MIGCERT_FAKE_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "migcert/device.h"

#define FAKE_GPU_PAGE 4096u
#define FAKE_GPU_NREGS 16u
#define FAKE_GPU_DEFAULT_MEM (1u << 20)
/* the device memory a machine's fake-gpu gets, in the simulator (exec-side.c)
 * and in `migcert vm` alike */
#define FAKE_GPU_MACHINE_MEM ((uint64_t)16 << 20)

/* The v2 table (all features) and the v1 table (protocol 1). */
const MigcertDevicePlugin *fake_gpu_plugin(void);
const MigcertDevicePlugin *fake_gpu_plugin_v1(void);

/* The device's memory and registers, for byte-for-byte checks. */
const uint8_t *fake_gpu_memory(MigcertDevice *dev, size_t *len);
const uint32_t *fake_gpu_regs(MigcertDevice *dev);
/* The pages that may hold a non-zero byte: bit i % 64 of word i / 64 for
 * page i.  A page whose bit is clear is all zeros (every write the device
 * makes sets the bit first, unless it writes zeros onto such a page), so a
 * comparison of two devices' memory may skip the pages clear in both. */
const uint64_t *fake_gpu_nonzero_pages(MigcertDevice *dev);
/* XOR byte `off` of the memory with x, as a write would (oracle self-tests:
 * memory that differs from what the stream carried). */
void fake_gpu_poke(MigcertDevice *dev, size_t off, uint8_t x);

#endif
