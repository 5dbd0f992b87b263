/*
 * workload.h - a deterministic guest for a MigMachine: initial RAM content
 * and a memory dirtier driven by loop timers.
 *
 * Owns: MigWorkload.  Every page's content is a pure function of
 * (seed, block index, page index, generation) (mig_workload_page), and the
 * workload keeps one generation counter per page, so the memory oracle checks
 * a destination page by page without keeping a copy of the source.
 * Generation 0 is the initial fill (zero or random); each write the dirtier
 * makes bumps the page's generation and sets its dirty bit.
 * Called by: `migcert vm` (--fill, --dirty-rate, --seed), the scenario
 * executor, tests.  Test support: linked into libsupport.a, never into
 * libmigcert.a.
 *
 * Page format: a 64-bit key, a hash of (seed, block, page, generation), and
 * the keyed page of that key (impl/ram/ram.h: word i holds
 * key + i * MIG_RAM_KEY_STEP).  The key is in every word, so another page's
 * or another generation's content differs in every word, and a damaged byte
 * anywhere is found because the oracle compares the whole page (in place,
 * without generating it).  A non-zero page is never all-zero.
 * With `keyed` (the simulator) the guest writes a non-zero page as its key
 * only (mig_ram_page_set_key): a 64 MiB guest is never written byte by
 * byte, its pages cross the simulator's link as keys, and the oracle checks
 * a page that arrived as a key by comparing keys (the key says all of the
 * page: a stale generation or another page's key differs), and any page
 * that has bytes by its bytes.
 * The filled RAM is advised onto transparent huge pages (as `migcert vm` and
 * QEMU do), which makes the fill take a few page faults instead of one per
 * 4 KiB page.
 *
 * The dirtier runs only while the machine runs (MigGuestOps hook): every
 * tick_ns of loop time it writes rate*elapsed pages (fraction carried), each
 * page chosen with the loop's PRNG.  Some generations are all-zero pages on
 * purpose (1 in 16), so zero-page detection is exercised mid-migration.
 */
#ifndef MIGCERT_WORKLOAD_H
#define MIGCERT_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "machine/machine.h"

typedef enum MigWorkloadFill {
    MIG_WORKLOAD_FILL_ZERO,
    MIG_WORKLOAD_FILL_RANDOM,
    MIG_WORKLOAD_FILL__COUNT
} MigWorkloadFill;

typedef struct MigWorkloadOptions {
    uint64_t seed;
    MigWorkloadFill fill;
    uint64_t dirty_rate; /* pages per second of loop time; 0 = idle guest */
    uint64_t tick_ns;    /* 0 = 10 ms */
    bool keyed;          /* non-zero pages as keys, not bytes (see above) */
} MigWorkloadOptions;

typedef struct MigWorkload MigWorkload;

/* Fill the machine's RAM (every block) and attach the dirtier. */
MigWorkload *mig_workload_new(MigMachine *m, const MigWorkloadOptions *o, MigErr **errp);
/* Detach and free (the RAM keeps its content). */
void mig_workload_free(MigWorkload *w);

/* "zero" / "random" -> fill; -1 when unknown. */
int mig_workload_fill_parse(const char *name);

/* The content of one page (4096 bytes into out; format above). */
void mig_workload_page(uint64_t seed, MigWorkloadFill fill, uint32_t block, uint64_t page,
                       uint32_t gen, void *out);

void mig_workload_set_rate(MigWorkload *w, uint64_t pages_per_s);
uint64_t mig_workload_writes(const MigWorkload *w);
uint32_t mig_workload_generation(const MigWorkload *w, uint32_t block, uint64_t page);

/* The memory oracle: every page of `ram` (a destination with the same block
 * layout) equals this workload's page at its current generation.  Errors
 * name the first bad block and page and count the bad pages (-EIO), or the
 * block count or size that differs (-EINVAL). */
int mig_workload_verify(const MigWorkload *w, MigRam *ram, MigErr **errp);

#endif
