/*
 * vm-spice.c - SPICE in `migcert vm` (vm-spice.h).
 *
 * The listener is a non-blocking socket watched on the loop; each accepted
 * connection is handed to the SPICE server, which runs its link stage.
 * client_migrate_info answers once every client answered MIGRATE_BEGIN
 * (MIGRATE_CONNECTED or CONNECT_ERROR) or the server's timeout passed, so
 * that management may start `migrate` the moment it returns (QEMU 7.2
 * returns at once, and a short migration then ends before the client is
 * connected: the client falls back to switch-host).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <spice/enums.h>

#include "spice/spice-pixmap-cache.h"
#include "devices/fake-spice.h"
#include "devices/releases.h"
#include "spice/spice-ticket.h"
#include "vm-spice.h"

struct VmSpice {
    MigMachine *machine;
    MigMonitor *mon;
    MigLoop *loop;
    VmSpiceOptions o;
    FakeSpice *devices;
    int lfd;
    MigLoopSource *lwatch;
    bool migrated; /* a migration's clients were sent to its target */
    MigQmpLater *cmi; /* client_migrate_info waiting for the clients' answers */
};

/* ------------------------------------------------------------------ options */

static int parse_bool(const char *key, const char *v, bool *out, char *why, size_t n)
{
    if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true"))
        *out = true;
    else if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false"))
        *out = false;
    else {
        snprintf(why, n, "%s=%s: expected on or off", key, v);
        return -EINVAL;
    }
    return 0;
}

int vm_spice_parse(const char *text, VmSpiceOptions *o, char *why, size_t why_len)
{
    memset(o, 0, sizeof(*o));
    o->port = -1;
    char *dup = mig_strdup(text), *save = NULL;
    int r = 0;
    for (char *item = strtok_r(dup, ",", &save); item && r == 0; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq) {
            snprintf(why, why_len, "'%s': expected key=value", item);
            r = -EINVAL;
            break;
        }
        *eq = '\0';
        const char *k = item, *v = eq + 1;
        if (!strcmp(k, "port")) {
            char *end = NULL;
            long p = strtol(v, &end, 10);
            if (!*v || *end || p < 0 || p > 65535) {
                snprintf(why, why_len, "port=%s: expected 0 to 65535", v);
                r = -EINVAL;
            }
            o->port = (int)p;
        } else if (!strcmp(k, "addr")) {
            if (strlen(v) >= sizeof(o->addr)) {
                snprintf(why, why_len, "addr: longer than %zu bytes", sizeof(o->addr) - 1);
                r = -EINVAL;
            } else {
                snprintf(o->addr, sizeof(o->addr), "%s", v);
            }
        } else if (!strcmp(k, "unix")) {
            r = parse_bool(k, v, &o->unix_socket, why, why_len);
        } else if (!strcmp(k, "disable-ticketing")) {
            r = parse_bool(k, v, &o->disable_ticketing, why, why_len);
        } else if (!strcmp(k, "seamless-migration")) {
            r = parse_bool(k, v, &o->seamless_migration, why, why_len);
        } else if (!strcmp(k, "x-seamless-version")) { /* migcert's: a server of another release (NACK tests) */
            char *end = NULL;
            unsigned long n = strtoul(v, &end, 10);
            if (!*v || *end || n < 1 || n > 255) {
                snprintf(why, why_len, "x-seamless-version=%s: expected a version from 1 to 255", v);
                r = -EINVAL;
            } else {
                o->seamless_version = (uint32_t)n;
            }
        } else if (!strcmp(k, "password")) {
            if (strlen(v) >= sizeof(o->password)) {
                snprintf(why, why_len, "password: longer than %zu characters", sizeof(o->password) - 1);
                r = -EINVAL;
            } else {
                snprintf(o->password, sizeof(o->password), "%s", v);
                o->have_password = true;
            }
        } else if (!strcmp(k, "x-draw-rate")) { /* migcert's: the display device's drawing rate */
            char *end = NULL;
            unsigned long n = strtoul(v, &end, 10);
            if (!*v || *end || v[0] == '-' || n > 10000000) {
                snprintf(why, why_len, "x-draw-rate=%s: expected 0 to 10000000 operations per second", v);
                r = -EINVAL;
            }
            o->draw_rate = (uint32_t)n;
        } else if (!strcmp(k, "x-pixmap-cache-migration")) { /* migcert's: seamless migration's cache strategy */
            if (!strcmp(v, "reset") || !strcmp(v, "restore")) {
                o->pixmap_cache_migration = !strcmp(v, "restore") ? SPICE_PIXMAP_CACHE_MIG_RESTORE
                                                                   : SPICE_PIXMAP_CACHE_MIG_RESET;
            } else {
                snprintf(why, why_len, "x-pixmap-cache-migration=%s: expected reset or restore", v);
                r = -EINVAL;
            }
        } else if (!strcmp(k, "x-heads")) { /* migcert's: the guest's heads (display channels) */
            if (strlen(v) != 1 || v[0] < '1' || v[0] > '4') {
                snprintf(why, why_len, "x-heads=%s: expected 1 to 4 heads", v);
                r = -EINVAL;
            } else {
                o->heads = (uint32_t)(v[0] - '0');
            }
        } else if (!strcmp(k, "tls-port") || !strcmp(k, "x509-dir")) {
            snprintf(why, why_len, "%s: TLS is not supported", k);
            r = -ENOTSUP;
        } else if (!strcmp(k, "image-compression") && (!strcmp(v, "glz") || !strcmp(v, "auto_glz"))) {
            o->glz = true; /* images as GLZ_RGB with the client's dictionary */
        } else if (!strcmp(k, "image-compression") || !strcmp(k, "jpeg-wan-compression") ||
                   !strcmp(k, "zlib-glz-wan-compression") || !strcmp(k, "streaming-video") ||
                   !strcmp(k, "playback-compression") || !strcmp(k, "agent-mouse")) {
            /* accepted for QEMU command lines: images other than GLZ are raw bitmaps here */
        } else {
            snprintf(why, why_len, "unknown option '%s'", k);
            r = -EINVAL;
        }
    }
    free(dup);
    if (r == 0 && o->unix_socket && !o->addr[0]) {
        snprintf(why, why_len, "unix=on needs addr=PATH");
        r = -EINVAL;
    }
    if (r == 0 && !o->unix_socket && o->port < 0) {
        snprintf(why, why_len, "port=N (or unix=on,addr=PATH) is required");
        r = -EINVAL;
    }
    if (r == 0 && !o->unix_socket && !o->addr[0])
        snprintf(o->addr, sizeof(o->addr), "127.0.0.1");
    return r;
}

/* ------------------------------------------------------------------ addresses */

/* {host, port, family} of one end of a socket (QEMU's SpiceBasicInfo). */
static json_t *basic_info(int fd, bool peer)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int r = fd < 0 ? -1 : peer ? getpeername(fd, (struct sockaddr *)&ss, &len) : getsockname(fd, (struct sockaddr *)&ss, &len);
    char host[NI_MAXHOST] = "", port[NI_MAXSERV] = "";
    const char *family = "unknown";
    if (r == 0 && (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV);
        family = ss.ss_family == AF_INET ? "ipv4" : "ipv6";
    } else if (r == 0 && ss.ss_family == AF_UNIX) {
        struct sockaddr_un *su = (struct sockaddr_un *)&ss;
        snprintf(host, sizeof(host), "%s", len > offsetof(struct sockaddr_un, sun_path) ? su->sun_path : "");
        family = "unix";
    }
    return json_pack("{s:s, s:s, s:s}", "host", host, "port", port, "family", family);
}

static json_t *channel_info(SpiceChannelClient *cc)
{
    json_t *j = basic_info(mig_transport_get_fd(spice_cc_transport(cc)), true);
    SpiceChannel *ch = spice_cc_channel(cc);
    json_object_set_new(j, "connection-id", json_integer(spice_client_session_id(spice_cc_client(cc))));
    json_object_set_new(j, "channel-type", json_integer(spice_channel_type(ch)));
    json_object_set_new(j, "channel-id", json_integer(spice_channel_id(ch)));
    json_object_set_new(j, "tls", json_false());
    return j;
}

static void on_log(void *opaque, const char *line)
{
    fprintf(stderr, "migcert vm: SPICE: %s\n", line);
}

static void on_event(void *opaque, SpiceServerEvent ev, SpiceChannelClient *cc)
{
    VmSpice *v = opaque;
    if (ev == SPICE_SERVER_EV_MIGRATE_COMPLETED) {
        mig_monitor_emit(v->mon, "SPICE_MIGRATE_COMPLETED", NULL);
        return;
    }
    int fd = mig_transport_get_fd(spice_cc_transport(cc));
    json_t *server = basic_info(fd, false);
    if (ev == SPICE_SERVER_EV_INITIALIZED) {
        json_object_set_new(server, "auth", json_string(v->o.disable_ticketing ? "none" : "spice"));
        mig_monitor_emit(v->mon, "SPICE_INITIALIZED", json_pack("{s:o, s:o}", "server", server, "client",
                                                                 channel_info(cc)));
        return;
    }
    mig_monitor_emit(v->mon, ev == SPICE_SERVER_EV_CONNECTED ? "SPICE_CONNECTED" : "SPICE_DISCONNECTED",
                     json_pack("{s:o, s:o}", "server", server, "client", basic_info(fd, true)));
}

/* ------------------------------------------------------------------ listener */

static void on_accept(int fd, uint32_t events, void *opaque)
{
    VmSpice *v = opaque;
    for (int i = 0; i < 16; i++) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            return; /* EAGAIN: nothing more now; other errors: the next wake-up retries */
        MigTransport *t = mig_transport_fd_new(v->loop, c, v->o.unix_socket ? "unix" : "tcp");
        if (t)
            spice_server_accept(mig_machine_spice(v->machine), t);
        else
            close(c);
    }
}

static int listen_on(VmSpice *v, MigErr **errp)
{
    int fd;
    if (v->o.unix_socket) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(v->o.addr) >= sizeof(sa.sun_path))
            return mig_err_set(errp, -ENAMETOOLONG, "--spice addr=%s: a unix socket path of at most %zu bytes",
                               v->o.addr, sizeof(sa.sun_path) - 1);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", v->o.addr);
        unlink(v->o.addr);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return mig_err_set(errp, -e, "--spice: cannot listen on %s: %s", v->o.addr, strerror(e));
        }
    } else {
        char ps[16];
        snprintf(ps, sizeof(ps), "%d", v->o.port);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
        int g = getaddrinfo(v->o.addr, ps, &hints, &res);
        if (g)
            return mig_err_set(errp, -EINVAL, "--spice addr=%s: %s", v->o.addr, gai_strerror(g));
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 16) < 0) {
            int e = errno;
            freeaddrinfo(res);
            if (fd >= 0)
                close(fd);
            return mig_err_set(errp, -e, "--spice: cannot listen on %s:%d: %s", v->o.addr, v->o.port, strerror(e));
        }
        freeaddrinfo(res);
        if (v->o.port == 0) { /* port=0: the kernel's choice, as QEMU reports it in query-spice */
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);
            if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
                v->o.port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                          : ((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    v->lfd = fd;
    v->lwatch = mig_loop_fd_watch(v->loop, fd, MIG_LOOP_IN, on_accept, v);
    return 0;
}

/* ------------------------------------------------------------------ QMP */

/* Every client answered MIGRATE_BEGIN, or the time is up: the command
 * answers (QEMU's client_migrate_info returns {} either way; the outcome
 * shows at the migration's end: MIGRATE_END or SWITCH_HOST). */
static void clients_answered(void *opaque, int result)
{
    VmSpice *v = opaque;
    if (v->cmi) {
        mig_qmp_later_done(v->cmi, 0, NULL, NULL);
        v->cmi = NULL;
    }
}

static int q_client_migrate_info(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    VmSpice *v = opaque;
    const char *proto = json_string_value(json_object_get(args, "protocol"));
    if (strcmp(proto, "spice"))
        return mig_err_set(errp, -EINVAL, "client_migrate_info: protocol '%s' is not supported (spice is)",
                           proto);
    json_t *port = json_object_get(args, "port"), *tls = json_object_get(args, "tls-port");
    if (!port && !tls)
        return mig_err_set(errp, -EINVAL, "client_migrate_info: 'port' or 'tls-port' is required");
    const char *host = json_string_value(json_object_get(args, "hostname"));
    const char *subject = json_string_value(json_object_get(args, "cert-subject"));
    SpiceMain *m = mig_machine_spice_main(v->machine);
    if (v->cmi)
        return mig_err_set(errp, -EBUSY, "client_migrate_info: the previous one is still waiting for clients");
    spice_main_set_migrate_dest(m, host, port ? (int)json_integer_value(port) : -1,
                                tls ? (int)json_integer_value(tls) : -1, subject);
    int r = spice_main_migrate_begin(m, clients_answered, v, errp);
    if (r < 0)
        return r;
    v->migrated = false;
    v->cmi = mig_monitor_reply_later(v->mon);
    return v->cmi ? MIG_QMP_LATER : 0;
}

static int q_query_spice(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    VmSpice *v = opaque;
    SpiceServer *s = mig_machine_spice(v->machine);
    json_t *chans = json_array();
    for (size_t i = 0; i < spice_server_client_count(s); i++) {
        SpiceClient *c = spice_server_client_at(s, i);
        for (size_t k = 0; k < spice_server_channel_count(s); k++) {
            SpiceChannel *ch = spice_server_channel_at(s, k);
            SpiceChannelClient *cc = spice_client_find(c, spice_channel_type(ch), spice_channel_id(ch));
            if (cc)
                json_array_append_new(chans, channel_info(cc));
        }
    }
    *ret = json_pack("{s:b, s:b, s:s, s:s, s:s, s:s, s:o}", "enabled", 1, "migrated", v->migrated, "host",
                     v->o.addr, "auth", v->o.disable_ticketing ? "none" : "spice", "compiled-version", "0.15.1",
                     "mouse-mode", "server", "channels", chans);
    if (!v->o.unix_socket)
        json_object_set_new(*ret, "port", json_integer(v->o.port));
    /* migcert's own: each head's display counters (QEMU has no such field) */
    json_t *heads = json_array();
    for (uint32_t h = 0; v->devices->qxl && h < fake_qxl_heads(v->devices->qxl); h++) {
        SpiceDisplayStats st;
        spice_display_stats(fake_qxl_head_display(v->devices->qxl, h), &st);
        json_array_append_new(heads, json_pack("{s:I, s:I, s:I, s:I}", "draws", (json_int_t)st.draws_sent,
                                               "images", (json_int_t)st.images_sent, "glz-images",
                                               (json_int_t)st.glz_images, "glz-inherited-refs",
                                               (json_int_t)st.glz_inherited_refs));
    }
    json_object_set_new(*ret, "x-display", heads);
    return 0;
}

static int q_set_password(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    VmSpice *v = opaque;
    const char *proto = json_string_value(json_object_get(args, "protocol"));
    if (strcmp(proto, "spice"))
        return mig_err_set(errp, -EINVAL, "set_password: protocol '%s' is not available (spice is)", proto);
    const char *connected = json_string_value(json_object_get(args, "connected"));
    if (connected && strcmp(connected, "keep"))
        return mig_err_set(errp, -ENOTSUP, "set_password: connected=%s is not supported (keep is)", connected);
    const char *pw = json_string_value(json_object_get(args, "password"));
    if (strlen(pw) > SPICE_PASSWORD_MAX)
        return mig_err_set(errp, -EINVAL, "set_password: a password of at most %u characters", SPICE_PASSWORD_MAX);
    spice_server_set_password(mig_machine_spice(v->machine), pw);
    return 0;
}

/* expire_password {protocol, time}: "now", "never", "+N" (seconds from now)
 * or "N" (seconds since the epoch, QEMU's absolute form).  The loop's clock
 * is monotonic: an absolute time is turned into loop time with the wall
 * clock read here, in the harness. */
static int q_expire_password(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    VmSpice *v = opaque;
    const char *proto = json_string_value(json_object_get(args, "protocol"));
    const char *when = json_string_value(json_object_get(args, "time"));
    if (strcmp(proto, "spice"))
        return mig_err_set(errp, -EINVAL, "expire_password: protocol '%s' is not available (spice is)", proto);
    uint64_t now = mig_loop_now_ns(v->loop), at;
    char *end = NULL;
    if (!strcmp(when, "now")) {
        at = now ? now : 1;
    } else if (!strcmp(when, "never")) {
        at = 0;
    } else {
        bool rel = when[0] == '+';
        errno = 0;
        unsigned long long sec = strtoull(when + rel, &end, 10);
        if (!when[rel] || *end || errno || sec > 100ull * 365 * 86400 * (rel ? 1 : 100))
            return mig_err_set(errp, -EINVAL, "expire_password: time '%s': now, never, +SECONDS or SECONDS since "
                               "the epoch", when);
        if (rel) {
            at = now + sec * 1000000000ull;
        } else {
            struct timespec rt;
            clock_gettime(CLOCK_REALTIME, &rt);
            int64_t left = (int64_t)sec - (int64_t)rt.tv_sec;
            at = left <= 0 ? (now ? now : 1) : now + (uint64_t)left * 1000000000ull;
        }
    }
    spice_server_set_password_expiry(mig_machine_spice(v->machine), at);
    return 0;
}

static int q_screendump(json_t *args, json_t **ret, void *opaque, MigErr **errp)
{
    VmSpice *v = opaque;
    const char *path = json_string_value(json_object_get(args, "filename"));
    const char *format = json_string_value(json_object_get(args, "format"));
    if (format && strcmp(format, "ppm"))
        return mig_err_set(errp, -ENOTSUP, "screendump: format '%s' is not supported (ppm is)", format);
    json_t *jhead = json_object_get(args, "head");
    json_int_t head = jhead ? json_integer_value(jhead) : 0;
    if (!v->devices->qxl)
        return mig_err_set(errp, -ENODEV, "screendump: the machine has no display device (fake-qxl)");
    const SpiceSurface *s = head >= 0 && head < (json_int_t)fake_qxl_heads(v->devices->qxl)
                                ? fake_qxl_head_framebuffer(v->devices->qxl, (uint32_t)head) : NULL;
    if (!s)
        return mig_err_set(errp, -EINVAL, "screendump: head %lld does not exist (the display has %u)",
                           (long long)head, fake_qxl_heads(v->devices->qxl));
    FILE *f = fopen(path, "wb");
    if (!f)
        return mig_err_set(errp, -errno, "screendump: cannot open %s: %s", path, strerror(errno));
    fprintf(f, "P6\n%u %u\n255\n", s->width, s->height);
    for (size_t i = 0; i < (size_t)s->width * s->height; i++) {
        unsigned char rgb[3] = {(unsigned char)(s->px[i] >> 16), (unsigned char)(s->px[i] >> 8),
                                (unsigned char)s->px[i]};
        fwrite(rgb, 1, 3, f);
    }
    if (fclose(f) != 0)
        return mig_err_set(errp, -EIO, "screendump: writing %s failed", path);
    return 0;
}

static const MigQmpArg cmi_args[] = {
    {"protocol", MIG_QMP_ARG_STR, false},   {"hostname", MIG_QMP_ARG_STR, false},
    {"port", MIG_QMP_ARG_INT, true},        {"tls-port", MIG_QMP_ARG_INT, true},
    {"cert-subject", MIG_QMP_ARG_STR, true}, {NULL},
};
static const MigQmpArg pw_args[] = {
    {"protocol", MIG_QMP_ARG_STR, false},
    {"password", MIG_QMP_ARG_STR, false},
    {"connected", MIG_QMP_ARG_STR, true},
    {NULL},
};
static const MigQmpArg expire_args[] = {
    {"protocol", MIG_QMP_ARG_STR, false},
    {"time", MIG_QMP_ARG_STR, false},
    {NULL},
};
static const MigQmpArg shot_args[] = {
    {"filename", MIG_QMP_ARG_STR, false}, {"device", MIG_QMP_ARG_STR, true},
    {"head", MIG_QMP_ARG_INT, true},      {"format", MIG_QMP_ARG_STR, true},
    {NULL},
};
static const MigQmpCommand spice_cmds[] = {
    {"client_migrate_info", q_client_migrate_info, cmi_args, false},
    {"query-spice", q_query_spice, NULL, false},
    {"set_password", q_set_password, pw_args, false},
    {"expire_password", q_expire_password, expire_args, false},
    {"screendump", q_screendump, shot_args, false},
};

/* ------------------------------------------------------------------ life */

static void on_migration_finished(void *opaque, bool incoming, MigStatus status)
{
    VmSpice *v = opaque;
    if (!incoming && status == MIG_STATUS_COMPLETED)
        v->migrated = true;
    /* a migration started from another monitor connection ended before the
     * clients answered: the waiting client_migrate_info answers now */
    if (!incoming)
        clients_answered(v, 0);
}

static const MigMachineObserver observer = {.migration_finished = on_migration_finished};

VmSpice *vm_spice_new(MigMachine *m, MigMonitor *mon, const VmSpiceOptions *o, MigErr **errp)
{
    VmSpice *v = mig_malloc0(sizeof(*v));
    v->machine = m;
    v->mon = mon;
    v->loop = mig_machine_loop(m);
    v->o = *o;
    v->lfd = -1;
    SpiceServerConfig sc = {.ticketing = !o->disable_ticketing, .password = o->have_password ? o->password : NULL,
                            .seamless_migration = o->seamless_migration, .name = "migcert",
                            .pixmap_cache_migration = o->pixmap_cache_migration, .glz = o->glz,
                            .event = on_event, .log = on_log, .event_opaque = v};
    /* what it speaks of migration is its release's */
    if (mig_release_spice_config(o->release, &sc) < 0) {
        mig_err_set(errp, -EINVAL, "SPICE: unknown release '%s'", o->release ? o->release : "");
        goto fail;
    }
    if (o->seamless_version) /* x-seamless-version=N over the release's (a NACK on purpose) */
        sc.migration_version = o->seamless_version;
    if (sc.pixmap_cache_migration != o->pixmap_cache_migration) {
        mig_err_set(errp, -EINVAL, "x-pixmap-cache-migration=restore: release %s's SPICE server has no restore "
                    "strategy (2.1-dev has; docs/protocol-spice.md 10.1)", o->release);
        goto fail;
    }
    if (mig_machine_add_spice(m, &sc, errp) < 0)
        goto fail;
    FakeSpiceOptions fo = {.heads = o->heads, .release = o->release, .machine_type = o->machine_type,
                           .devices = o->devices};
    v->devices = fake_spice_new(m, &fo, errp);
    if (!v->devices)
        goto fail;
    if (o->draw_rate && v->devices->qxl)
        fake_qxl_set_draw_rate(v->devices->qxl, o->draw_rate);
    mig_machine_add_observer(m, &observer, v);
    if (listen_on(v, errp) < 0)
        goto fail;
    /* last: the monitor keeps `v` for these from now on */
    if (mig_monitor_add_commands(mon, spice_cmds, MIG_ARRAY_SIZE(spice_cmds), v) < 0) {
        mig_err_set(errp, -EEXIST, "a SPICE QMP command is already registered");
        goto fail;
    }
    return v;
fail:
    vm_spice_free(v);
    return NULL;
}

void vm_spice_free(VmSpice *v)
{
    if (!v)
        return;
    if (v->cmi) {
        MigErr *err = NULL;
        mig_err_set(&err, -ECANCELED, "client_migrate_info: the machine is shutting down");
        mig_qmp_later_done(v->cmi, -ECANCELED, NULL, err);
    }
    if (v->lwatch)
        mig_loop_remove(v->loop, v->lwatch);
    if (v->lfd >= 0)
        close(v->lfd);
    if (v->o.unix_socket && v->lfd >= 0)
        unlink(v->o.addr);
    mig_machine_remove_observer(v->machine, &observer, v);
    fake_spice_free(v->devices);
    free(v);
}
