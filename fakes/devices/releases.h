/*
 * releases.h - the release history of the fake machine, as data
 * (docs/architecture.md section 7): releases 1.0, 1.1, 2.0 and the working tree
 * 2.1-dev, their capabilities, device descriptions and migration-data
 * versions, and the machine types that make a newer build emit what an older
 * one loads.
 *
 * Owns: the release and machine-type tables, fake device instances as a
 * given release runs them (MigFakeDevice), the -dump-vmstate document of a
 * release, and the rules that predict the outcome of a version pair.
 * Called by: the scenario loader and executor, `migcert dump-vmstate`,
 * harness/unit/test-releases.c.  Test support (libsupport.a).
 *
 * History:
 *   1.0      caps: none (1.0 does not know query-migrate-capabilities: it
 *            offers the empty mask); devices fake-serial v1, fake-nic v1
 *   1.1      caps events, zero-blocks, return-path; fake-nic adds subsection
 *            fake-nic/offload (version stays 1)
 *   2.0      + pause-before-switchover, validate-uuid, x-ignore-shared;
 *            fake-nic v2 adds field mtu (version 2, minimum 1); fake-serial v2
 *            adds field fcr (version 2, minimum 1)
 *   2.1-dev  + capabilities x-page-flip, x-ram-share, x-require-vmdesc; new
 *            device fake-rng v1
 * Its SPICE server (MigSpiceRelease, docs/protocol-spice.md section 10):
 *   1.0      switch-host only: no SEMI_SEAMLESS; as a target it refuses a
 *            migrating client's main link (BAD_CONNECTION_ID)
 *   1.1      + semi-seamless (SEMI_SEAMLESS); no seamless migration
 *   2.0      + seamless: migration protocol 1, every blob version 1 (the
 *            reference's layouts; the pixmap cache is reset)
 *   2.1-dev  + the restore strategy of the pixmap cache: display blob
 *            version 2 (the restore list), migration protocol 2
 * Its SPICE devices (fake-qxl, fake-snd, fake-vmc and fake-input, whose
 * keyboard/mouse/cursor section "fake-input" v1 is new in this tree) are
 * the same in every release: a machine with SPICE has all four whatever
 * its release or machine type, so every pair of this build agrees on them
 * and no pair rule depends on them.
 * Machine types: mc-1.0, mc-1.1, mc-2.0 and mc-2.1 (2.1-dev's default).  A
 * build of release R running machine type mc-X (X <= R) emits the device
 * descriptions of X and only the devices X shipped; it loads with R's own
 * descriptions.  "ram" is version 4 in every release.
 *
 * Pair rules (what a pair must do, not a hand-written table):
 *   old -> new        must complete;
 *   new -> old        completes when the source runs a machine type the
 *                     destination knows (<= dst release) and every listed
 *                     device exists there; otherwise fails cleanly with an
 *                     error naming the device (and field / subsection).
 * A broken device is what the error must name: management's pre-flight
 * (vmstate_check_compat over both sides' dumps, see the executor) finds it
 * before the migration starts; without pre-flight the destination's own
 * configuration check refuses the unknown machine type first.
 */
#ifndef MIGCERT_FAKE_RELEASES_H
#define MIGCERT_FAKE_RELEASES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/common.h"
#include "savevm/savevm.h"
#include "vmstate/vmstate.h"

#define MIG_RELEASE_CURRENT "2.1-dev"

/* What a release's SPICE server speaks of migration. */
typedef struct MigSpiceRelease {
    bool semi_seamless;     /* main capability SEMI_SEAMLESS (false: a target
                               refuses a migrating client's main link) */
    uint32_t mig_version;   /* seamless migration protocol version; 0: no
                               seamless migration (no SEAMLESS capability) */
    uint32_t display_blob;  /* DCMD version it writes and the newest it loads */
    bool cache_restore;     /* knows x-pixmap-cache-migration=restore */
} MigSpiceRelease;

typedef struct MigRelease {
    const char *name;          /* "1.0" */
    const char *machine_type;  /* its default (newest) machine type */
    bool knows_caps_query;     /* false: offers the empty mask */
    const char *const *caps;   /* capability names it knows, NULL-terminated */
    const char *const *devices; /* device types it ships, NULL-terminated */
    unsigned ram_version;      /* "ram" section version */
    MigSpiceRelease spice;     /* its SPICE server */
} MigRelease;

size_t mig_release_count(void);
const MigRelease *mig_release_at(size_t i); /* oldest first */
const MigRelease *mig_release_find(const char *name);
/* Position in history (0 = oldest), -1 when unknown. */
int mig_release_index(const char *name);
/* "1.0, 1.1, 2.0, 2.1-dev" */
const char *mig_release_names(void);

/* Machine type -> the release whose descriptions it emits; NULL if unknown. */
const MigRelease *mig_machine_type_find(const char *name);
const char *mig_machine_type_names(void);

/* Every device type the scenarios may name (fake-serial, fake-nic, fake-rng,
 * fake-gpu). */
bool mig_device_type_known(const char *type);
const char *mig_device_type_names(void);
/* Does `release` ship device `type`? */
bool mig_release_has_device(const char *release, const char *type);

/* The description of device `type` in release `release` (NULL when the
 * release does not ship it or it is not vmstate-described). */
const VmsDescription *mig_release_device_vmsd(const char *release, const char *type);

/* The -dump-vmstate document of a release: {"vmschkmachine": {"Name":
 * machine type}, "<device>": <vmstate_describe_dump>...} (new reference). */
json_t *mig_release_dump(const char *release);
/* The same restricted to devices[] (n of them; NULL = every device the
 * release ships): the descriptions of `desc_release` under machine type
 * `machine_type` (for the source of a pair: the descriptions its machine
 * type emits; for the destination: its own release's).  VFIO-style devices
 * (fake-gpu) are described by their plugin's vmstate_json.  Devices the
 * release does not ship are left out.  New reference. */
json_t *mig_release_dump_devices(const char *desc_release, const char *machine_type,
                                 char *const *devices, size_t n);

/* ---- device instances ---- */

typedef struct MigFakeDevice MigFakeDevice;

/* A device `type` as a build of `release` running machine type `machine`
 * (NULL/"" = the release's default) has it, with state drawn from `seed`.
 * Errors: unknown type, release or machine type; a machine type newer than
 * the release; a device the machine type does not ship. */
MigFakeDevice *mig_fake_device_new(const char *type, const char *release, const char *machine,
                                   uint64_t seed, MigErr **errp);
void mig_fake_device_free(MigFakeDevice *d);
const char *mig_fake_device_type(const MigFakeDevice *d);
/* Register as a FULL section (idstr = type, instance 0, version = the emitted
 * description's version). */
int mig_fake_device_register(MigFakeDevice *d, MigSavevm *sv, MigErr **errp);
/* A copy of the state (for the "source unchanged" oracle). */
MigFakeDevice *mig_fake_device_clone(const MigFakeDevice *d);
/* Every field equal (both instances of the same type)? Errors name the
 * device and the first different field. */
int mig_fake_device_same(const MigFakeDevice *a, const MigFakeDevice *b, MigErr **errp);
/* The device oracle after a completed migration: dst's loaded state equals
 * src's saved state field by field (fields src emitted), and fields dst has
 * but src did not send hold the documented defaults (fake-nic.h).  Errors
 * name the device and field, e.g. "fake-nic: field rx_ring[3].len: ...". */
int mig_fake_device_check_migrated(const MigFakeDevice *src, const MigFakeDevice *dst,
                                   MigErr **errp);
/* Test hook for the oracle self-test: change one field that every release
 * migrates (fake-serial scr, fake-nic ctrl, fake-rng state). */
void mig_fake_device_poke(MigFakeDevice *d);

/* ---- pair rules ---- */

typedef struct MigPairPrediction {
    bool completes;
    bool machine_unknown; /* dst does not know the source's machine type: the
                             engine's configuration check refuses it (what a
                             run without pre-flight observes) */
    char device[32]; /* the first device that breaks it, "" when none; set
                        whether or not the machine type is known too */
    char field[64];  /* what of it breaks: a field ("mtu"), a subsection
                        ("fake-nic/offload"), "" when the whole device is
                        missing on the destination */
    bool field_is_subsection;
    char reason[160];
} MigPairPrediction;

/* Predict migrating devices[] from (src_release, src_machine) to dst_release.
 * src_machine NULL/"" = the source release's default.  Devices come first:
 * an unknown machine type never hides the device that breaks. */
void mig_pair_predict(const char *src_release, const char *src_machine, const char *dst_release,
                      char *const *devices, size_t ndevices, MigPairPrediction *out);

/* ---- SPICE pair rules ---- */

typedef enum MigSpiceMig {
    MIG_SPICE_MIG_SWITCH_HOST,
    MIG_SPICE_MIG_SEMI_SEAMLESS,
    MIG_SPICE_MIG_SEAMLESS,
} MigSpiceMig;

typedef struct MigSpicePrediction {
    MigSpiceMig kind; /* how a client follows a completed migration */
    char reason[160]; /* why (the rule that decided), for messages */
    /* what the client's last error names when the rule is the target's
     * refusal of its link ("BAD_CONNECTION_ID"), NULL otherwise */
    const char *client_error;
} MigSpicePrediction;

/* How one client follows a migration from a `src_release` server to a
 * `dst_release` one when nothing goes wrong (docs/protocol-spice.md 8, 10):
 *   switch-host    the client lacks SEMI_SEAMLESS (`client_semi` false), the
 *                  source does not offer it, or the target refuses the
 *                  migrating client's link (CONNECT_ERROR, then SWITCH_HOST);
 *   seamless       `seamless_on` (seamless-migration=on), the client has
 *                  SEAMLESS (`client_seamless`), both releases speak seamless
 *                  migration and the source's protocol version is at most
 *                  the target's (DO_SEAMLESS is ACKed; every blob the source
 *                  writes is then at most the target's version);
 *   semi-seamless  otherwise (the target NACKs a newer version, or does not
 *                  offer SEAMLESS, or the source does not speak it).
 * Unknown releases predict semi-seamless with a reason saying so. */
void mig_spice_pair_predict(const char *src_release, const char *dst_release, bool seamless_on,
                            bool client_semi, bool client_seamless, MigSpicePrediction *out);
extern const char *const mig_spice_mig_names[3]; /* "switch-host", "semi-seamless", "seamless" */

/* Set what `release`'s SPICE server speaks in `sc` (no_semi_seamless,
 * no_seamless, migration_version, display_blob_version; a release without
 * the restore strategy gets reset).  The rest of `sc` is the caller's.
 * -EINVAL for an unknown release. */
struct SpiceServerConfig;
int mig_release_spice_config(const char *release, struct SpiceServerConfig *sc);

#endif
