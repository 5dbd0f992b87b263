/*
 * migration-return-path.c - the return path, both ends (capability
 * return-path, QEMU's migration.c; docs/protocol-qemu-stream.md).
 *
 * The source sends COMMAND open-return-path and ping(1) after the
 * configuration; the destination then answers on the same connection with
 * messages of the form be16 type, be16 len, payload: PONG (be32, the ping's
 * value) and, when its load ends, SHUT (be32 0 = loaded, 1 = failed).  With
 * it the source stays in "device" after its last byte (phase
 * return-path-wait) and completes only on SHUT(0); SHUT(1), EOF or an error
 * there fail it, and failing resumes the guest as it was.  A transport the
 * peer cannot answer on (mig_transport_is_duplex false: file:, a pipe)
 * refuses the capability at migrate time.
 */
#include <stdio.h>
#include <string.h>

#include "migration-internal.h"

/* Return-path messages (destination -> source) and stream commands. */
enum { RP_MSG_SHUT = 1, RP_MSG_PONG = 2 };
enum { CMD_OPEN_RETURN_PATH = 1, CMD_PING = 2 };

void mig__rp_put_open(MigStream *s)
{
    /* As QEMU: the destination opens its end, then a ping to trace. */
    mig_stream_put_u8(s, MIG_SECTION_COMMAND);
    mig_stream_put_be16(s, CMD_OPEN_RETURN_PATH);
    mig_stream_put_be16(s, 0);
    mig_stream_put_u8(s, MIG_SECTION_COMMAND);
    mig_stream_put_be16(s, CMD_PING);
    mig_stream_put_be16(s, 4);
    mig_stream_put_be32(s, 1);
}

/* ---- destination side ---- */

/* Write what rp_out holds to t without blocking; a write error drops the
 * messages (the source then sees the connection fail, which fails it). */
static void rp_flush(MigMigration *mm, MigTransport *t)
{
    while (mm->rp_out_len && t) {
        ssize_t n = mig_transport_write(t, mm->rp_out, mm->rp_out_len);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who,
                          "return path: write failed (%s), %zu bytes dropped",
                          mig_errno_name(n < 0 ? (int)n : -EPIPE), mm->rp_out_len);
            mm->rp_out_len = 0;
            return;
        }
        memmove(mm->rp_out, mm->rp_out + n, mm->rp_out_len - (size_t)n);
        mm->rp_out_len -= (size_t)n;
    }
}

static void rp_send(MigMigration *mm, uint16_t type, uint32_t val)
{
    if (mm->rp_out_len + 8 > sizeof(mm->rp_out)) {
        mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who,
                      "return path: queue full, message %u dropped", type);
        return;
    }
    uint8_t *b = mm->rp_out + mm->rp_out_len;
    b[0] = (uint8_t)(type >> 8);
    b[1] = (uint8_t)type;
    b[2] = 0;
    b[3] = 4;
    b[4] = (uint8_t)(val >> 24);
    b[5] = (uint8_t)(val >> 16);
    b[6] = (uint8_t)(val >> 8);
    b[7] = (uint8_t)val;
    mm->rp_out_len += 8;
    mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who, "return path: send %s %u",
                  type == RP_MSG_SHUT ? "SHUT" : "PONG", val);
    rp_flush(mm, mm->t);
}

static void linger_writable(MigTransport *t, uint32_t events, void *opaque)
{
    MigMigration *mm = opaque;
    rp_flush(mm, t);
    if (mm->rp_out_len && !(events & (MIG_LOOP_ERR | MIG_LOOP_HUP)))
        return;
    mm->rp_out_len = 0;
    mig_transport_watch(t, 0, NULL, NULL);
    mm->linger_t = NULL;
    mig_transport_close(t);
}

/* Destination end: tell the source how the load ended (SHUT), and keep the
 * connection until those bytes are out when the transport is full. */
void mig__rp_shut(MigMigration *mm, MigOutcome outcome)
{
    if (!mm->incoming || !mm->rp_open || !mm->t)
        return;
    mm->rp_open = false;
    rp_send(mm, RP_MSG_SHUT, outcome == MIG_OUTCOME_COMPLETED ? 0 : 1);
    if (!mm->rp_out_len)
        return;
    mig__migration_stop_sources(mm);
    mig_stream_free(mm->s);
    mm->s = NULL;
    mig_transport_close(mm->linger_t);
    mm->linger_t = mm->t;
    mm->t = NULL;
    mig_transport_watch(mm->linger_t, MIG_LOOP_OUT, linger_writable, mm);
}

/* A COMMAND section (its type, cmd and len already read). */
int mig__rp_command(MigMigration *mm, uint16_t cmd, uint16_t len, uint64_t at, MigErr **errp)
{
    MigStream *s = mm->s;
    unsigned long long off = (unsigned long long)at;
    switch (cmd) {
    case CMD_OPEN_RETURN_PATH:
        if (len != 0)
            return mig_err_set(errp, -EINVAL,
                               "command open-return-path with length %u, expected 0 (offset %llu)",
                               len, off);
        if (mm->rp_open)
            return mig_err_set(errp, -EINVAL,
                               "command open-return-path while the return path is already open "
                               "(offset %llu)",
                               off);
        if (!mig_transport_is_duplex(mm->t))
            return mig_err_set(errp, -ENOTSUP,
                               "command open-return-path: a '%s' transport cannot carry "
                               "messages back to the source (offset %llu)",
                               mm->t->ops->kind, off);
        mm->rp_open = true;
        mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who, "return path opened");
        return 0;
    case CMD_PING: {
        if (len != 4)
            return mig_err_set(errp, -EINVAL, "command ping with length %u, expected 4 (offset "
                                              "%llu)",
                               len, off);
        uint32_t v = mig_stream_get_be32(s);
        if (mig_stream_starved(s))
            return -EAGAIN;
        int r = mig_stream_take_error(s, errp);
        if (r < 0)
            return r;
        if (!mm->rp_open)
            return mig_err_set(errp, -EINVAL,
                               "command ping (0x%x) received with no return path (offset %llu)",
                               v, off);
        rp_send(mm, RP_MSG_PONG, v);
        return 0;
    }
    default:
        return mig_err_set(errp, -ENOTSUP,
                           "command %u (length %u) is not supported by this destination "
                           "(offset %llu)",
                           cmd, len, off);
    }
}

/* ---- source side ---- */

/* Read one return-path message without blocking.  Returns 1 with *type and
 * *val set, 0 when the rest has not arrived yet, or a negative errno with
 * `why` set (-EPIPE: the destination closed it first). */
static int rp_read(MigMigration *mm, uint16_t *type, uint32_t *val, char *why, size_t whylen)
{
    for (;;) {
        size_t need = 4;
        if (mm->rp_in_len >= 4) {
            uint16_t t = (uint16_t)(mm->rp_in[0] << 8 | mm->rp_in[1]);
            uint16_t len = (uint16_t)(mm->rp_in[2] << 8 | mm->rp_in[3]);
            if (t != RP_MSG_SHUT && t != RP_MSG_PONG) {
                snprintf(why, whylen, "return path: unknown message type 0x%04x (length %u)", t,
                         len);
                return -EPROTO;
            }
            if (len != 4) {
                snprintf(why, whylen,
                         "return path: message '%s' (0x%04x) with incorrect length %u, "
                         "expecting 4",
                         t == RP_MSG_SHUT ? "SHUT" : "PONG", t, len);
                return -EPROTO;
            }
            need = 8;
            if (mm->rp_in_len == need) {
                *type = t;
                *val = (uint32_t)mm->rp_in[4] << 24 | (uint32_t)mm->rp_in[5] << 16 |
                       (uint32_t)mm->rp_in[6] << 8 | mm->rp_in[7];
                mm->rp_in_len = 0;
                return 1;
            }
        }
        ssize_t n = mig_transport_read(mm->t, mm->rp_in + mm->rp_in_len, need - mm->rp_in_len);
        if (n > 0) {
            mm->rp_in_len += (size_t)n;
            continue;
        }
        if (n == -EAGAIN)
            return 0;
        if (n == 0) {
            snprintf(why, whylen,
                     "return path: the destination closed the connection before reporting "
                     "the end of its load");
            return -EPIPE;
        }
        snprintf(why, whylen, "return path: read failed (%s)", mig_errno_name((int)n));
        return (int)n;
    }
}

/* Source failing for another reason: did the destination say it failed
 * (its SHUT may be waiting on the return path)? */
bool mig__rp_reported_failure(MigMigration *mm)
{
    if (mm->incoming || !mm->rp_on || !mm->t || mm->phase == MIG_PHASE_SRC_RP_WAIT)
        return false;
    for (int i = 0; i < 4; i++) {
        uint16_t type;
        uint32_t val;
        char why[256];
        if (rp_read(mm, &type, &val, why, sizeof(why)) != 1)
            return false;
        if (type == RP_MSG_SHUT)
            return val != 0;
    }
    return false;
}

static void src_rp_readable(MigTransport *t, uint32_t events, void *opaque)
{
    MigMigration *mm = opaque;
    mig_transport_watch(t, 0, NULL, NULL);
    mm->watching = false;
    mig__rp_poll(mm);
}

/* Phase return-path-wait: handle what the destination sent; SHUT decides. */
void mig__rp_poll(MigMigration *mm)
{
    for (;;) {
        uint16_t type;
        uint32_t val;
        char why[256];
        int r = rp_read(mm, &type, &val, why, sizeof(why));
        if (r == 0) {
            mm->watching = true;
            mig_transport_watch(mm->t, MIG_LOOP_IN, src_rp_readable, mm);
            return;
        }
        if (r < 0) {
            mig__migration_fail(mm, r, why);
            return;
        }
        if (type == RP_MSG_PONG) {
            mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who, "return path: PONG %u",
                          val);
            continue;
        }
        if (val != 0) {
            snprintf(why, sizeof(why),
                     "the destination failed to load the migration (return path: SHUT %u)", val);
            mig__migration_fail(mm, -EIO, why);
            return;
        }
        mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who,
                      "return path: SHUT 0, the destination loaded everything");
        mig__src_done(mm);
        return;
    }
}
