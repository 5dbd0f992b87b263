/*
 * exec-selftest.c - the oracle self-tests (EXEC_SELFTEST_*, exec.h): the
 * executor breaks one thing on purpose so a test can prove that the
 * matching oracle turns the case red and names it.
 *
 * Called by: exec-case.c (a result broken once the migration is over; a
 * resource left behind before the resource oracle and taken back after
 * it), exec-mgmt.c (the paused source, before management's `cont`).
 * EXEC_SELFTEST_NO_RESUME needs no breaking: exec-mgmt.c's watch stands
 * still.  Invariant: whatever a self-test leaves behind is taken back
 * before exec_run_case returns, so one self-test case cannot make the next
 * case fail.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "devices/fake-gpu.h"
#include "devices/fake-spice.h"
#include "exec-internal.h"

/* Break one thing on purpose once the migration is over (oracle self-test). */
void exec__selftest_break(Run *run, const char *outcome)
{
    switch (run->c->selftest) {
    case EXEC_SELFTEST_PAGE:
        if (!strcmp(outcome, "completed") && run->dst.m) {
            MigRamBlock *b = mig_ram_block(mig_machine_ram(run->dst.m), 0);
            /* bytes in place first: the page may hold only its key */
            mig_ram_page_host(b, b->npages / 2)[7] ^= 0x5a;
        }
        break;
    case EXEC_SELFTEST_FIELD:
        if (run->dst.ndevs)
            mig_fake_device_poke(run->dst.devs[0]);
        break;
    case EXEC_SELFTEST_GPU:
    case EXEC_SELFTEST_GPU_WRITTEN:
        if (run->dst.gpu) {
            MigcertDevice *inst = mig_device_backend(run->dst.gpu)->instance;
            size_t len, at = 0;
            (void)fake_gpu_memory(inst, &len);
            if (run->c->selftest == EXEC_SELFTEST_GPU)
                at = len / 3;
            /* else in the last page the guest wrote (set on both sides) */
            const uint64_t *bm = fake_gpu_nonzero_pages(inst);
            for (size_t page = len / FAKE_GPU_PAGE; !at && page-- > 0;)
                if (bm[page / 64] >> (page % 64) & 1)
                    at = page * FAKE_GPU_PAGE + 100;
            fake_gpu_poke(inst, at, 0x5a);
        }
        break;
    case EXEC_SELFTEST_ARC:
        if (run->src.gpu_rec && run->src.gpu_rec->n < ARC_REC_MAX) {
            ArcRec *a = run->src.gpu_rec;
            a->from[a->n] = MIG_DEV_STOP_COPY;
            a->to[a->n] = MIG_DEV_PRE_COPY;
            a->n++;
        }
        break;
    default:
        break;
    }
}

/* The source sits paused after completing; management is about to check
 * it and run `cont` (the memory and devices oracles, through paused_err). */
void exec__selftest_break_paused(Run *run)
{
    Side *src = &run->src;
    if (run->c->selftest == EXEC_SELFTEST_PAUSED_PAGE) {
        MigRamBlock *b = mig_ram_block(mig_machine_ram(src->m), 0);
        uint64_t at = b->length / 3 + 5;
        mig_ram_page_host(b, at / MIG_RAM_PAGE_SIZE)[at % MIG_RAM_PAGE_SIZE] ^= 0x5a;
    }
    if (run->c->selftest == EXEC_SELFTEST_PAUSED_FIELD && src->ndevs)
        mig_fake_device_poke(src->devs[0]);
}

/* ---- SPICE (the SPICE oracle) ---- */

/* A raw message from `end`'s server to its first client on (type, 0). */
static void spice_raw(Run *run, Side *end, uint8_t type, uint16_t msg, const uint8_t *body, uint32_t len)
{
    SpiceServer *sv = mig_machine_spice(end->m);
    for (size_t i = 0; i < spice_server_client_count(sv); i++) {
        SpiceChannelClient *cc = spice_client_find(spice_server_client_at(sv, i), type, 0);
        if (cc) {
            spice_conn_send_raw(spice_cc_conn(cc), msg, body, len);
            break;
        }
    }
    mig_sim_run_for(run->loop, 100000000ull);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void exec__selftest_break_spice(Run *run, Side *end, bool screen)
{
    if (screen != (run->c->selftest == EXEC_SELFTEST_SPICE_SCREEN))
        return;
    switch (run->c->selftest) {
    case EXEC_SELFTEST_SPICE_SCREEN: {
        SpiceSurface *fb = (SpiceSurface *)fake_qxl_framebuffer(end->spice->qxl);
        fb->px[fb->width * (fb->height / 2) + 3] ^= 0x00ff00;
        break;
    }
    case EXEC_SELFTEST_SPICE_IMAGE: {
        /* DRAW_COPY of image 0xdead as FROM_CACHE (docs/protocol-spice.md
         * section 6): the client never cached it */
        uint8_t b[75] = {0};
        put32(b + 12, 16); /* box bottom, right */
        put32(b + 16, 16);
        put32(b + 21, 57); /* src_bitmap */
        put32(b + 33, 16);
        put32(b + 37, 16);
        b[41] = 8; /* OP_PUT */
        put32(b + 57, 0xdead);
        b[65] = SPICE_IMAGE_TYPE_FROM_CACHE;
        put32(b + 67, 16);
        put32(b + 71, 16);
        spice_raw(run, end, SPICE_CHANNEL_DISPLAY, SPICE_MSG_DISPLAY_DRAW_COPY, b, sizeof(b));
        break;
    }
    case EXEC_SELFTEST_SPICE_PLAYBACK: {
        uint8_t b[8] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}; /* the latest time, frame 0 */
        spice_raw(run, end, SPICE_CHANNEL_PLAYBACK, SPICE_MSG_PLAYBACK_DATA, b, sizeof(b));
        break;
    }
    case EXEC_SELFTEST_SPICE_PORT: {
        uint8_t b[1] = {0xff}; /* bytes run modulo 251: never 0xff */
        spice_raw(run, end, SPICE_CHANNEL_PORT, SPICE_MSG_SPICEVMC_DATA, b, sizeof(b));
        break;
    }
    case EXEC_SELFTEST_SPICE_CURSOR: {
        FakeInputCursor cur;
        fake_input_cursor(end->spice->input, &cur);
        uint8_t b[4] = {(uint8_t)(cur.x + 1), (uint8_t)((uint16_t)(cur.x + 1) >> 8), (uint8_t)cur.y,
                        (uint8_t)((uint16_t)cur.y >> 8)}; /* CURSOR_MOVE one pixel right */
        spice_raw(run, end, SPICE_CHANNEL_CURSOR, SPICE_MSG_CURSOR_MOVE, b, sizeof(b));
        break;
    }
    default:
        break;
    }
}

void exec__selftest_break_spice_client(Run *run)
{
    FakeClient *c = run->spice ? run->spice->client : NULL;
    if (!c)
        return;
    if (run->c->selftest == EXEC_SELFTEST_SPICE_RECORD) {
        uint8_t b[8] = {0}; /* time 0, frame 0 */
        fake_client_send_raw(c, SPICE_CHANNEL_RECORD, 0, SPICE_MSGC_RECORD_DATA, b, sizeof(b));
    } else if (run->c->selftest == EXEC_SELFTEST_SPICE_PLAYBACK_GAP) {
        /* while the guests still run: frames after the hole reach the client */
        Side *sides[2] = {&run->dst, &run->src};
        for (int i = 0; i < 2; i++)
            if (sides[i]->spice && sides[i]->m && !sides[i]->killed)
                fake_snd_skip_playback(sides[i]->spice->snd, 1);
    } else if (run->c->selftest == EXEC_SELFTEST_SPICE_INPUTS) {
        uint8_t b[10] = {0}; /* MOUSE_MOTION (0, 0): group 0 */
        fake_client_send_raw(c, SPICE_CHANNEL_INPUTS, 0, SPICE_MSGC_INPUTS_MOUSE_MOTION, b, sizeof(b));
    } else {
        return;
    }
    mig_sim_run_for(run->loop, 100000000ull);
}

void exec__selftest_leave_spice(Run *run)
{
    if (run->c->selftest != EXEC_SELFTEST_SPICE_LEFTOVER || !run->src.m || run->src.killed)
        return;
    MigTransport *a, *b;
    if (mig_transport_mem_pair(run->loop, NULL, &a, &b) < 0)
        return;
    run->selftest_spice_t = a; /* the client end stays open and silent */
    spice_server_accept(mig_machine_spice(run->src.m),
                        exec__side_transport_new(run->src.sl, b, &run->live_transports));
    mig_sim_run_for(run->loop, 100000000ull);
}

/* ---- resources (the resource oracle) ---- */

static void nop(void *p)
{
    (void)p;
}

void exec__selftest_init(ExecLeftovers *l)
{
    *l = (ExecLeftovers){.fd = -1, .map = MAP_FAILED};
}

void exec__selftest_leave(Run *run, ExecLeftovers *l)
{
    ExecSelftest st = run->c->selftest;
    if (st == EXEC_SELFTEST_TIMER)
        l->timer = mig_loop_timer_add(run->loop, mig_loop_now_ns(run->loop) + 1000000000ull,
                                      nop, NULL);
    if (st == EXEC_SELFTEST_FD)
        l->fd = dup(0);
    if (st == EXEC_SELFTEST_HEAP)
        l->heap = mig_malloc0(120);
    if (st == EXEC_SELFTEST_MAP)
        l->map = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (st == EXEC_SELFTEST_TRANSPORT && run->src.sl) {
        MigTransport *a, *b;
        MigLinkParams lp = {0};
        if (mig_transport_mem_pair(run->loop, &lp, &a, &b) == 0) {
            l->t[0] = exec__side_transport_new(run->src.sl, a, &run->live_transports);
            l->t[1] = exec__side_transport_new(run->src.sl, b, &run->live_transports);
        }
    }
}

void exec__selftest_take_back(Run *run, ExecLeftovers *l)
{
    if (l->timer)
        mig_loop_remove(run->loop, l->timer);
    if (l->fd >= 0)
        close(l->fd);
    for (int i = 0; i < 2; i++)
        if (l->t[i])
            exec__side_transport_close_orphan(l->t[i]);
    if (run->selftest_spice_t)
        mig_transport_close(run->selftest_spice_t);
    run->selftest_spice_t = NULL;
}

void exec__selftest_free_late(ExecLeftovers *l)
{
    free(l->heap);
    if (l->map != MAP_FAILED)
        munmap(l->map, 8192);
}
