/*
 * spice-net.h - the simulated network between fake SPICE clients and
 * SpiceServers: each connection a client makes is a new mem link
 * (mig_transport_mem_pair) whose far end the server listening on that port
 * accepts.
 *
 * Owns: SimSpiceNet, the table of listening ports and the connections held
 * unanswered; sim_spice_dial, the one-connection form of the same.
 * Called by: the SPICE unit tests (harness/unit/test-spice-*.c, several
 * through harness/sim/spice-guest.c), the GLZ
 * bench (harness/bench/glz-bench.c) and the SPICE fuzzer
 * (harness/fuzz/fuzz-spice.c): a FakeClientConfig's `connect` is
 * sim_spice_net_connect with the SimSpiceNet as `connect_opaque`.  The
 * scenario executor has its own (harness/runner/exec-spice.c): its links
 * carry fault controls and side bookkeeping.
 *
 * Invariants: every connection's link has the parameters `link` had when
 * it was made; a port nobody listens on, or one set to refuse, fails the
 * connect with -ECONNREFUSED naming host and port, and makes no link; a
 * connection held on a port set to hold is accepted by that port's server
 * when the port is set to accept again, or closed by sim_spice_net_close.
 * Nothing here reads a clock or allocates beyond the links themselves.
 */
#ifndef MIGCERT_SIM_SPICE_NET_H
#define MIGCERT_SIM_SPICE_NET_H

#include <stdint.h>

#include "common/common.h"
#include "sim/sim.h"
#include "spice/spice-server.h"

typedef enum SimSpiceAnswer {
    SIM_SPICE_ACCEPT = 0, /* the port's server accepts at once */
    SIM_SPICE_REFUSE,     /* connection refused: no link is made */
    SIM_SPICE_HOLD,       /* the link is made, nobody answers it yet */
} SimSpiceAnswer;

#define SIM_SPICE_NET_PORTS 4
#define SIM_SPICE_NET_HELD 16

typedef struct SimSpiceNet {
    MigLoop *loop;
    MigLinkParams link; /* each new connection's; all zero: unlimited, no latency */
    struct {
        uint16_t port; /* 0: a free slot */
        SpiceServer *server;
        SimSpiceAnswer answer;
    } listen[SIM_SPICE_NET_PORTS];
    int connects; /* links made so far (accepted or held) */
    struct {
        uint16_t port;
        MigTransport *end; /* the server's end, not yet accepted */
    } held[SIM_SPICE_NET_HELD];
    int nheld;
} SimSpiceNet;

/* An empty network on `loop`; `link` may be NULL (unlimited). */
void sim_spice_net_init(SimSpiceNet *n, MigLoop *loop, const MigLinkParams *link);
/* `server` answers connections to `port` (replaces an earlier listener of
 * that port); at most SIM_SPICE_NET_PORTS ports. */
void sim_spice_net_listen(SimSpiceNet *n, uint16_t port, SpiceServer *server);
/* How `port` answers from now on; setting SIM_SPICE_ACCEPT accepts the
 * connections held on it, oldest first. */
void sim_spice_net_answer(SimSpiceNet *n, uint16_t port, SimSpiceAnswer answer);
/* A FakeClientConnectFn: opaque is the SimSpiceNet.  Returns the client's
 * end of a new link, or NULL with errp set. */
MigTransport *sim_spice_net_connect(void *opaque, const char *host, uint16_t port, MigErr **errp);
/* Close the connections still held (before the loop is freed). */
void sim_spice_net_close(SimSpiceNet *n);

/* One connection without a table: a new link on `loop` (`lp` NULL:
 * unlimited) whose far end `server` accepts; the near end, or NULL with
 * errp set. */
MigTransport *sim_spice_dial(MigLoop *loop, const MigLinkParams *lp, SpiceServer *server, MigErr **errp);

#endif
