/*
 * spice-dial.c - addresses and blocking connects for the harness commands
 * that talk to real SPICE and QMP servers (spice-dial.h).
 * Called by: cmd-client.c, certify-spice-qmp.c, certify-spice-cases.c.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "spice-dial.h"

int spice_addr_parse(const char *s, SpiceAddr *out, MigErr **errp)
{
    memset(out, 0, sizeof(*out));
    struct sockaddr_un sa;
    if (!strncmp(s, "unix:", 5)) {
        size_t n = strlen(s + 5);
        if (n == 0 || n >= sizeof(sa.sun_path))
            return mig_err_set(errp, -EINVAL, "%s: a unix socket path of 1 to %zu bytes", s,
                               sizeof(sa.sun_path) - 1);
        out->is_unix = true;
        snprintf(out->host, sizeof(out->host), "%s", s + 5);
        return 0;
    }
    const char *colon = strrchr(s, ':');
    char *end = NULL;
    unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof(out->host) || !end || *end || !colon[1] ||
        port == 0 || port > 65535)
        return mig_err_set(errp, -EINVAL, "%s: HOST:PORT (port 1-65535) or unix:PATH", s);
    memcpy(out->host, s, (size_t)(colon - s));
    out->port = (uint16_t)port;
    return 0;
}

int spice_dial(const char *host, uint16_t port, bool is_unix, MigErr **errp)
{
    int fd = -1;
    if (is_unix || host[0] == '/') {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(host) >= sizeof(sa.sun_path))
            return mig_err_set(errp, -ENAMETOOLONG, "%s: a unix socket path too long", host);
        memcpy(sa.sun_path, host, strlen(host));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return mig_err_set(errp, -e, "%s: %s", host, strerror(e));
        }
        return fd;
    }
    char ps[16];
    snprintf(ps, sizeof(ps), "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(host, ps, &hints, &res);
    if (g)
        return mig_err_set(errp, -EHOSTUNREACH, "%s:%u: %s", host, port, gai_strerror(g));
    int err = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
        } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return mig_err_set(errp, -err, "%s:%u: %s", host, port, strerror(err));
    return fd;
}
