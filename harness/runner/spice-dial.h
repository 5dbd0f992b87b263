/*
 * spice-dial.h - addresses and blocking connects for the harness commands
 * that talk to real servers: `migcert client` (cmd-client.c) and
 * `migcert certify --spice` (certify-spice*.c), for SPICE and QMP alike.
 *
 * An address is "HOST:PORT" (TCP, port 1-65535) or "unix:PATH" (a unix
 * socket path of at most 107 bytes).  A host that starts with '/' is a unix
 * socket path too: that is how a migration target given by its socket
 * (client_migrate_info hostname=PATH) reaches the fake client.
 *
 * Harness code: connect() blocks (a command-line tool's choice; the engine
 * never blocks).  Invariant: every error names the address and why.
 */
#ifndef MIGCERT_SPICE_DIAL_H
#define MIGCERT_SPICE_DIAL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"

typedef struct SpiceAddr {
    bool is_unix;
    char host[256]; /* the host, or the socket path */
    uint16_t port;  /* 0 for a unix socket */
} SpiceAddr;

/* Parse "HOST:PORT" or "unix:PATH"; 0, or -EINVAL with errp saying what
 * the address should look like. */
int spice_addr_parse(const char *s, SpiceAddr *out, MigErr **errp);

/* A connected stream socket (close-on-exec, blocking) to host:port, or to
 * the unix socket `host` when is_unix or host starts with '/'; or -errno
 * with errp naming the address. */
int spice_dial(const char *host, uint16_t port, bool is_unix, MigErr **errp);

#endif
