/*
 * cmd-client.c - `migcert client`: the fake SPICE client (fakes/client) as
 * a real process on the epoll loop, against any SPICE server (ours or
 * QEMU's spice-server).
 *
 *   migcert client --connect HOST:PORT|unix:PATH [--password P] [--json F]
 *                  [--old] [--seed N] [--vmc-rate BYTES] [--screenshot F.ppm]
 *                  [--draws N]
 *
 * It links every channel the server lists, follows migrations
 * (semi-seamless and switch-host) until the server closes the session or
 * SIGINT/SIGTERM arrives, then writes a JSON summary (stdout, or --json F):
 * the channels, the migrations followed by kind, the server it ended on, a
 * SHA-256 digest of its primary surface, and the playback and port
 * sequences (received, gaps, repeats), where a migration the source
 * announced stands ("migrating": idle, linking, connected), the last
 * switch-over gap (MIGRATE_END from the source to the first display message
 * from the target, monotonic ms; with the message's name, the display
 * channel's swap and the target's first drawing from the same start) and the drawing messages received with
 * their rate.  --draws N ends the session after N drawing messages (a
 * throughput measurement).  Exit status: 0 when the session
 * ended without a protocol error, 1 when the client saw one (the summary's
 * "error" says which), 2 on a usage error or when the first connection
 * fails.  --script F (client-script.h) scripts what the client is and
 * does: an old client, a password, its cache, the port rate, refusing the
 * migration target, leaving after N messages, delaying MSGC_MIGRATE_END.
 * Connections are made with a blocking connect() to the address given or
 * named in a migration: a command-line tool's choice; the engine itself
 * never blocks.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <spice/enums.h>
#include <spice/protocol.h>

#include "client/fake-client.h"
#include "client-script.h"
#include "commands.h"
#include "spice-dial.h"
#include "common/loop.h"

typedef struct Cli {
    const char *json_path, *shot;
    MigLoop *loop;
    FakeClient *client;
    bool stop;
    bool began; /* a channel linked once */
    bool unix_path; /* --connect unix:PATH: every connection goes there */
    uint64_t stop_after_draws; /* --draws N (0: never) */
    char path[108];
    char first_host[256];  /* where the session began */
    uint16_t first_port;
    ClientScript script;   /* --script (zeroes without) */
    uint64_t messages;     /* received and sent, for disconnect-at-message */
    MigLoopSource *leave;  /* the scripted disconnect, from the loop */
} Cli;

static void usage(FILE *out)
{
    fprintf(out, "usage: migcert client --connect HOST:PORT|unix:PATH [--password P] [--json F]\n"
                 "                      [--old] [--seed N] [--vmc-rate BYTES] [--screenshot F.ppm]\n"
                 "                      [--draws N] [--script F.yaml]\n"
                 "  --connect ADDR    the SPICE server (TCP HOST:PORT, or a unix socket)\n"
                 "  --password P      the ticket's password (default: none)\n"
                 "  --json F          write the summary to F instead of stdout\n"
                 "  --old             an old client: no SEMI_SEAMLESS (switch-host migrations)\n"
                 "  --seed N          the run's seed (the ticket's OAEP padding)\n"
                 "  --vmc-rate BYTES  bytes written to a port channel every 10 ms (default 0)\n"
                 "  --screenshot F    write the primary surface at the end as a PPM (P6)\n"
                 "  --draws N         end the session after N drawing messages (their rate is in\n"
                 "                    the summary)\n"
                 "  --script F        what the client is and does, a YAML mapping: old, password,\n"
                 "                    pixmap-cache, vmc-rate, target (connect|refuse),\n"
                 "                    disconnect-at-message, migrate-end-delay-ms\n"
                 "Follows migrations until the server ends the session or SIGINT (SIGUSR1 writes\n"
                 "the summary and screenshot without stopping); exit 0 clean,\n"
                 "1 when the client saw a protocol error, 2 on a usage or first-connect error.\n");
}

static MigTransport *cli_connect(void *opaque, const char *host, uint16_t port, MigErr **errp)
{
    Cli *cli = opaque;
    int fd = -1;
    if (cli->script.refuse_target && (strcmp(host, cli->first_host) || port != cli->first_port)) {
        mig_err_set(errp, -ECONNREFUSED, "%s:%u: refused by the script (target: refuse)", host, port);
        return NULL;
    }
    /* a host that is a path (a migration target given by its socket) is a unix socket */
    bool is_unix = cli->unix_path || host[0] == '/';
    fd = spice_dial(host[0] == '/' || !cli->unix_path ? host : cli->path, port, is_unix, errp);
    return fd < 0 ? NULL : mig_transport_fd_new(cli->loop, fd, is_unix ? "unix" : "tcp");
}

static int write_outputs(Cli *cli, bool final);

/* SIGINT, SIGTERM: stop; SIGUSR1: write the summary and screenshot now and
 * go on (a test polls the client's view with it). */
static void leave_now(void *opaque)
{
    Cli *cli = opaque;
    cli->leave = NULL;
    fake_client_disconnect(cli->client);
}

/* disconnect-at-message: the session ends after the Nth message (the
 * close runs from the loop: the hook must not free the client) */
static void count_message(void *opaque, const FakeClientEvent *ev)
{
    Cli *cli = opaque;
    if (++cli->messages == cli->script.disconnect_at_message && !cli->leave)
        cli->leave = mig_loop_defer(cli->loop, leave_now, cli);
}

static void on_signal(int fd, uint32_t events, void *opaque)
{
    Cli *cli = opaque;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGUSR1) {
            write_outputs(cli, false);
            continue;
        }
        cli->stop = true;
        mig_loop_stop(cli->loop);
    }
}

/* Over when SIGINT came, when the session ended after it began (no
 * channel left, none linking: a switch-host's new main link counts), or
 * when it never began (the link failed). */
static bool session_over(void *opaque)
{
    Cli *cli = opaque;
    size_t open = fake_client_channels(cli->client);
    cli->began |= fake_client_linked_channels(cli->client) > 0;
    if (cli->stop_after_draws) {
        FakeClientDraws d;
        fake_client_draws(cli->client, &d);
        if (d.count >= cli->stop_after_draws)
            return true;
    }
    return cli->stop || (cli->began && open == 0) ||
           (!cli->began && fake_client_last_error(cli->client)[0] != 0);
}

static json_t *media_json(const FakeClient *c, uint8_t type)
{
    FakeClientMediaStats st;
    fake_client_media_stats(c, type, &st);
    return json_pack("{s:I, s:I, s:I, s:I}", "received", (json_int_t)st.received, "sent", (json_int_t)st.sent,
                     "gaps", (json_int_t)st.gaps, "repeats", (json_int_t)st.dups);
}

/* The primary surface as a binary PPM (P6), as QEMU's screendump writes it. */
static int write_ppm(const SpiceSurface *s, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -errno;
    fprintf(f, "P6\n%u %u\n255\n", s->width, s->height);
    for (size_t i = 0; i < (size_t)s->width * s->height; i++) {
        uint32_t p = s->px[i];
        unsigned char rgb[3] = {(unsigned char)(p >> 16), (unsigned char)(p >> 8), (unsigned char)p};
        fwrite(rgb, 1, 3, f);
    }
    return fclose(f) == 0 ? 0 : -EIO;
}

static json_t *summary(const Cli *cli)
{
    const FakeClient *c = cli->client;
    FakeClientMigrations m;
    fake_client_migrations(c, &m);
    json_t *chans = json_array();
    uint8_t type, id;
    for (size_t i = 0; fake_client_channel_ever(c, i, &type, &id); i++) {
        char name[32];
        snprintf(name, sizeof(name), "%s:%u", spice_channel_type_name(type), id);
        json_array_append_new(chans, json_string(name));
    }
    json_t *j = json_pack("{s:o, s:{s:i, s:i, s:i, s:i, s:i}, s:s, s:i, s:I}", "channels", chans, "migrations",
                          "seamless", m.seamless, "semi_seamless", m.semi_seamless, "switch_host", m.switch_host,
                          "cancelled", m.cancelled, "connect_errors", m.connect_errors, "server",
                          fake_client_server_host(c), "port", fake_client_server_port(c), "session_id",
                          (json_int_t)fake_client_session_id(c));
    const SpiceSurface *s = fake_client_surface(c, 0, 0);
    if (s) {
        char digest[65];
        spice_surface_digest(s, digest);
        json_object_set_new(j, "primary", json_pack("{s:i, s:i, s:s}", "width", s->width, "height", s->height,
                                                    "sha256", digest));
    }
    json_object_set_new(j, "playback", media_json(c, SPICE_CHANNEL_PLAYBACK));
    json_object_set_new(j, "vmc", media_json(c, SPICE_CHANNEL_PORT));
    json_object_set_new(j, "migrating", json_string(fake_client_mig_step_names[fake_client_mig_step(c)]));
    uint64_t gap;
    json_object_set_new(j, "switch_gap_ms",
                        fake_client_switch_gap_ns(c, &gap) ? json_real((double)gap / 1e6) : json_null());
    FakeClientSwitchGaps g;
    fake_client_switch_gaps(c, &g);
    json_object_set_new(j, "switch_gap_msg", g.have_first ? json_string(g.first_msg) : json_null());
    json_object_set_new(j, "switch_draw_gap_ms", g.have_draw ? json_real((double)g.draw_ns / 1e6) : json_null());
    json_object_set_new(j, "switch_swap_ms", g.have_first ? json_real((double)g.swap_ns / 1e6) : json_null());
    FakeClientDraws d;
    fake_client_draws(c, &d);
    double span = (double)(d.last_ns - d.first_ns) / 1e9;
    /* the rate between the first and the last: count - 1 intervals */
    json_object_set_new(j, "draws", json_pack("{s:I, s:f, s:o}", "count", (json_int_t)d.count, "ms", span * 1e3,
                                              "per_s", d.count > 1 && span > 0 ? json_real((double)(d.count - 1) / span)
                                                                              : json_null()));
    json_object_set_new(j, "error", json_string(fake_client_last_error(c)));
    return j;
}

/* The summary (stdout or --json) and the --screenshot; -1 when one could
 * not be written (said on stderr).  A client without a primary surface yet
 * (the summary has no "primary") writes no screenshot and leaves an
 * earlier one; that is no failure, and only the final write says so. */
static int write_outputs(Cli *cli, bool final)
{
    int r = 0;
    json_t *j = summary(cli);
    if (cli->json_path) {
        /* written whole, then renamed: a reader never sees half a file */
        char tmp[4200];
        snprintf(tmp, sizeof(tmp), "%s.part", cli->json_path);
        if (json_dump_file(j, tmp, JSON_INDENT(2)) < 0 || rename(tmp, cli->json_path) < 0) {
            fprintf(stderr, "migcert client: cannot write %s\n", cli->json_path);
            r = -1;
        }
    } else {
        json_dumpf(j, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        fflush(stdout);
    }
    json_decref(j);
    const SpiceSurface *s = cli->shot ? fake_client_surface(cli->client, 0, 0) : NULL;
    if (cli->shot && !s && final)
        fprintf(stderr, "migcert client: --screenshot %s: not written, the client has no primary surface\n",
                cli->shot);
    if (s) {
        char tmp[4200];
        snprintf(tmp, sizeof(tmp), "%s.part", cli->shot);
        int e = write_ppm(s, tmp);
        if (e == 0 && rename(tmp, cli->shot) < 0)
            e = -errno;
        if (e < 0) {
            fprintf(stderr, "migcert client: --screenshot %s: %s\n", cli->shot, strerror(-e));
            r = -1;
        }
    }
    return r;
}

int cmd_client(int argc, char **argv)
{
    enum { O_CONNECT = 1, O_PASSWORD, O_JSON, O_OLD, O_SEED, O_VMC, O_SCRIPT, O_SHOT, O_DRAWS, O_HELP };
    static const struct option opts[] = {
        {"connect", required_argument, NULL, O_CONNECT}, {"password", required_argument, NULL, O_PASSWORD},
        {"json", required_argument, NULL, O_JSON},       {"old", no_argument, NULL, O_OLD},
        {"seed", required_argument, NULL, O_SEED},       {"vmc-rate", required_argument, NULL, O_VMC},
        {"script", required_argument, NULL, O_SCRIPT},   {"screenshot", required_argument, NULL, O_SHOT},
        {"draws", required_argument, NULL, O_DRAWS},     {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *connect_to = NULL, *password = NULL, *json_path = NULL, *shot = NULL;
    ClientScript script;
    bool have_script = false;
    bool old = false;
    unsigned long long seed = 0x5eed;
    unsigned long vmc = 0;
    unsigned long long draws = 0;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        switch (o) {
        case O_CONNECT: connect_to = optarg; break;
        case O_PASSWORD: password = optarg; break;
        case O_JSON: json_path = optarg; break;
        case O_SHOT: shot = optarg; break;
        case O_OLD: old = true; break;
        case O_SEED:
            errno = 0;
            seed = strtoull(optarg, &end, 0);
            if (errno || !*optarg || *end) {
                fprintf(stderr, "migcert client: --seed %s: not a number\n", optarg);
                return 2;
            }
            break;
        case O_VMC:
            errno = 0;
            vmc = strtoul(optarg, &end, 10);
            if (errno || !*optarg || *end || vmc > 1u << 20) {
                fprintf(stderr, "migcert client: --vmc-rate %s: a byte count up to 1048576\n", optarg);
                return 2;
            }
            break;
        case O_DRAWS:
            errno = 0;
            draws = strtoull(optarg, &end, 10);
            if (errno || !*optarg || *end || draws == 0 || optarg[0] == '-') {
                fprintf(stderr, "migcert client: --draws %s: a message count from 1\n", optarg);
                return 2;
            }
            break;
        case O_SCRIPT: {
            MigErr *serr = NULL;
            if (client_script_load(optarg, &script, &serr) < 0) {
                fprintf(stderr, "migcert client: --script %s\n", serr ? serr->msg : optarg);
                mig_err_free(serr);
                return 2;
            }
            have_script = true;
            break;
        }
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || !connect_to) {
        fprintf(stderr, "migcert client: %s\n", connect_to ? "unexpected argument" : "--connect is required");
        usage(stderr);
        return 2;
    }
    Cli cli = {.json_path = json_path, .shot = shot, .stop_after_draws = draws};
    char host[256] = "";
    unsigned long port = 0;
    if (!strncmp(connect_to, "unix:", 5)) {
        if (!connect_to[5] || strlen(connect_to + 5) >= sizeof(cli.path)) {
            fprintf(stderr, "migcert client: --connect %s: a unix socket path of 1 to %zu bytes\n", connect_to,
                    sizeof(cli.path) - 1);
            return 2;
        }
        cli.unix_path = true;
        snprintf(cli.path, sizeof(cli.path), "%s", connect_to + 5);
        snprintf(host, sizeof(host), "%s", connect_to + 5);
    } else {
        const char *colon = strrchr(connect_to, ':');
        char *end = NULL;
        if (colon)
            port = strtoul(colon + 1, &end, 10);
        if (!colon || colon == connect_to || (size_t)(colon - connect_to) >= sizeof(host) || !end || *end ||
            port == 0 || port > 65535) {
            fprintf(stderr, "migcert client: --connect %s: HOST:PORT (port 1-65535) or unix:PATH\n", connect_to);
            return 2;
        }
        memcpy(host, connect_to, (size_t)(colon - connect_to));
    }
    /* signals are taken from the loop; blocked before anything else, so
     * that a SIGUSR1 sent as soon as the process runs is never fatal */
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGUSR1);
    int sigfd = sigprocmask(SIG_BLOCK, &ss, NULL) == 0 ? signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC) : -1;
    cli.loop = mig_loop_epoll_new(seed);
    if (!cli.loop) {
        fprintf(stderr, "migcert client: cannot create the event loop\n");
        if (sigfd >= 0)
            close(sigfd);
        return 2;
    }
    /* the script first, the command line's flags over it */
    if (have_script) {
        cli.script = script;
        old |= script.old;
        if (!password && script.has_password)
            password = cli.script.password;
        if (!vmc)
            vmc = script.vmc_rate;
    }
    snprintf(cli.first_host, sizeof(cli.first_host), "%s", host);
    cli.first_port = (uint16_t)port;
    SpiceCapSet main_caps = {0};
    if (old)
        spice_caps_set(&main_caps, SPICE_MAIN_CAP_NAME_AND_UUID);
    FakeClientConfig cc = {.host = host, .port = (uint16_t)port, .connect = cli_connect, .connect_opaque = &cli,
                           .pixmap_cache_pixels = cli.script.pixmap_cache,
                           .migrate_end_delay_ns = cli.script.migrate_end_delay_ns,
                           .on_event = cli.script.disconnect_at_message ? count_message : NULL,
                           .event_opaque = &cli,
                           .password = password, .main_caps = main_caps, .vmc_bytes_per_tick = (uint32_t)vmc,
                           .who = "client"};
    cli.client = fake_client_new(cli.loop, &cc);
    MigErr *err = NULL;
    if (fake_client_start(cli.client, &err) < 0) {
        fprintf(stderr, "migcert client: %s\n", err ? err->msg : "cannot connect");
        mig_err_free(err);
        fake_client_free(cli.client);
        cli.loop->ops->free(cli.loop);
        if (sigfd >= 0)
            close(sigfd);
        return 2;
    }
    MigLoopSource *sigwatch = sigfd >= 0 ? mig_loop_fd_watch(cli.loop, sigfd, MIG_LOOP_IN, on_signal, &cli) : NULL;
    int rc = mig_loop_run_until(cli.loop, session_over, &cli, 0);
    int status = (rc < 0 && rc != -ECANCELED) || fake_client_last_error(cli.client)[0] ? 1 : 0;
    if (write_outputs(&cli, true) < 0)
        status = 1;
    if (sigwatch)
        mig_loop_remove(cli.loop, sigwatch);
    if (sigfd >= 0)
        close(sigfd);
    if (cli.leave)
        mig_loop_remove(cli.loop, cli.leave);
    fake_client_free(cli.client);
    cli.loop->ops->free(cli.loop);
    return status;
}
