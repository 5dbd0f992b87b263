/*
 * client-script.h - the script of `migcert client --script F`: what the
 * fake client is and does, as a YAML mapping (every key optional):
 *
 *   old: true                  # no SEMI_SEAMLESS: migrations by switch-host
 *   password: s3cret           # the ticket's password
 *   pixmap-cache: 5000         # the pixmap cache announced in DISPLAY_INIT, pixels
 *   vmc-rate: 1000             # bytes written to a port channel every 10 ms
 *   target: refuse             # connections to a migration's target fail
 *                              # (the client answers CONNECT_ERROR); default connect
 *   disconnect-at-message: 40  # close the session after the 40th message (either way)
 *   migrate-end-delay-ms: 200  # send MSGC_MAIN_MIGRATE_END that much after the switch
 *
 * The same faults are scriptable in scenario files (`client:`,
 * scenarios/README.md); this form drives a client against a real server.
 * Called by: cmd-client.c.
 */
#ifndef MIGCERT_CLIENT_SCRIPT_H
#define MIGCERT_CLIENT_SCRIPT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"

typedef struct ClientScript {
    bool old;
    bool has_password;
    char password[64];
    int64_t pixmap_cache;
    uint32_t vmc_rate;
    bool refuse_target;
    uint32_t disconnect_at_message; /* 0: never */
    uint64_t migrate_end_delay_ns;
} ClientScript;

/* Read `path`; 0, or -EINVAL with errp naming the file and the key. */
int client_script_load(const char *path, ClientScript *out, MigErr **errp);

#endif
