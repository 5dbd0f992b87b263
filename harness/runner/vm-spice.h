/*
 * vm-spice.h - the SPICE part of `migcert vm`: QEMU's -spice option syntax,
 * the listening socket (TCP or unix), the machine's SPICE server with its
 * display, sound and char devices (fakes/devices/fake-spice), and the QMP
 * commands and events QEMU has for it: client_migrate_info, query-spice,
 * set_password, expire_password, screendump; SPICE_CONNECTED, SPICE_INITIALIZED,
 * SPICE_DISCONNECTED, SPICE_MIGRATE_COMPLETED.
 * Called by: cmd-vm.c.
 */
#ifndef MIGCERT_VM_SPICE_H
#define MIGCERT_VM_SPICE_H

#include <stdbool.h>
#include <stdint.h>

#include "machine/machine.h"
#include "monitor/monitor.h"

typedef struct VmSpiceOptions {
    char addr[256];          /* host, or the socket path with unix=on */
    int port;                /* TCP port (-1 with unix=on) */
    bool unix_socket;
    bool disable_ticketing;
    bool seamless_migration;
    char password[64];       /* legacy password= (QEMU now takes set_password) */
    bool have_password;
    int pixmap_cache_migration; /* x-pixmap-cache-migration=reset|restore (SpicePixmapCacheMig) */
    bool glz;                /* image-compression=glz|auto_glz: GLZ images */
    uint32_t heads;          /* x-heads=N: fake-qxl's heads (0: the release's) */
    uint32_t draw_rate;      /* x-draw-rate=N: fake-qxl operations per second (0: its default) */
    uint32_t seamless_version; /* x-seamless-version=N: the seamless migration protocol version it speaks (0: 1) */
    const char *release;     /* the machine's release: what its server speaks of migration (releases.h);
                                set by cmd-vm.c, not by the option string */
    const char *machine_type; /* its machine type (NULL: the release's), set by cmd-vm.c */
    unsigned devices;        /* the SPICE devices (FAKE_SPICE_* bits, 0: all), from --devices */
} VmSpiceOptions;

/* Parse QEMU's `-spice` value ("port=5900,addr=127.0.0.1,disable-ticketing=on",
 * "unix=on,addr=/run/x.sock,...") plus migcert's own x-draw-rate=N (the
 * display device's drawing operations per second, for throughput
 * measurements: fakes/devices/fake-qxl.h); on error, a sentence into `why`. */
int vm_spice_parse(const char *text, VmSpiceOptions *o, char *why, size_t why_len);

typedef struct VmSpice VmSpice;

/* Give `m` a SPICE server with the default devices, listen, and register
 * the QMP commands on `mon` (events go to it too). */
VmSpice *vm_spice_new(MigMachine *m, MigMonitor *mon, const VmSpiceOptions *o, MigErr **errp);
void vm_spice_free(VmSpice *v);

#endif
