/*
 * scenario-steps.c - the scenario loader's checks of one step (migrate,
 * wait, cancel, kill, restart, drop, partition, heal, slow, device-error;
 * the SPICE steps client-migrate-info and client are in scenario-spice.c):
 * exactly one action, its values parsed, errors at the step's line.
 *
 * Called by the loader (scenario.c: convert) once per entry of `steps`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/device.h"
#include "devices/releases.h"
#include "scenario-internal.h"

static int parse_side_name(const char *s)
{
    for (int i = 0; i < MIG_FAULT_SIDE__COUNT; i++)
        if (s && !strcmp(s, mig_fault_side_names[i]))
            return i;
    return -1;
}

/* "50%" -> 50; -1 unless an integer from 0 to 100 followed by '%'. */
static int parse_percent(const char *s)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    long v = strtol(s, &end, 10);
    if (strcmp(end, "%") || v < 0 || v > 100)
        return -1;
    return (int)v;
}

int scn__check_step(Ctx *c, size_t i, const RawStep *r, ScnStep *st)
{
    char base[64], path[128];
    int rc;
    snprintf(base, sizeof(base), "steps[%zu]", i);
    const void *acts[SCN_STEP__COUNT] = {r->migrate, r->wait,      r->cancel, r->kill,
                                         r->restart, r->drop,      r->partition,
                                         r->heal,    r->slow,      r->device_error,
                                         r->client_migrate_info,   r->client};
    int found = -1, count = 0;
    for (int k = 0; k < SCN_STEP__COUNT; k++)
        if (acts[k]) {
            found = found < 0 ? k : found;
            count++;
        }
    st->line = scn__index_line(c->ix, base);
    st->ram_progress = -1;
    st->device_data = -1;
    if (count != 1)
        return mig_err_set(c->errp, -EINVAL,
                           "%s:%d: key 'steps': step %zu must have exactly one action "
                           "(migrate, wait, cancel, kill, restart, drop, partition, heal, "
                           "slow, device-error, client-migrate-info, client), it has %d",
                           c->name, st->line, i + 1, count);
    st->kind = (ScnStepKind)found;
    snprintf(base + strlen(base), sizeof(base) - strlen(base), ".%s", scn_step_names[found]);
    switch (st->kind) {
    case SCN_STEP_WAIT: {
        const RawWait *w = r->wait;
        if (!w->phase && !w->iteration && !w->ram_progress && !w->time && !w->bytes &&
            !w->device_state)
            return scn__bad(c, base, "a wait needs phase, iteration, ram-progress, time, bytes or "
                       "device-state");
        if (w->device_state) {
            snprintf(path, sizeof(path), "%s.device-state", base);
            MigDevState ds;
            if (mig_dev_state_parse(w->device_state, &ds) < 0 || ds == MIG_DEV_ERROR)
                return scn__bad(c, path, "unknown device state '%s' (expected e.g. PRE_COPY, "
                           "STOP_COPY, RUNNING)", w->device_state);
            st->has_device_state = true;
            st->device_state = (int)ds;
        }
        if (w->phase) {
            snprintf(path, sizeof(path), "%s.phase", base);
            int ph = scn_phase_parse(w->phase);
            if (ph <= SCN_PHASE_NONE)
                return scn__bad(c, path,
                           "unknown phase '%s' (expected setup, precopy, stop-copy, "
                           "cancelling, completed, failed or cancelled)",
                           w->phase);
            st->has_phase = true;
            st->phase = (ScnPhase)ph;
        }
        st->iteration = w->iteration;
        if (w->ram_progress) {
            snprintf(path, sizeof(path), "%s.ram-progress", base);
            if ((st->ram_progress = parse_percent(w->ram_progress)) < 0)
                return scn__bad(c, path, "invalid percentage '%s' (expected 0%% to 100%%)",
                           w->ram_progress);
        }
        if (w->time) {
            snprintf(path, sizeof(path), "%s.time", base);
            if ((rc = scn_parse_duration(w->time, &st->time_ns)) < 0)
                return scn__bad_value(c, path, rc, w->time, SCN_LIMIT_DURATION,
                                      "invalid duration '%s' (expected e.g. 10ms, 2s)", w->time);
        }
        if (w->bytes) {
            snprintf(path, sizeof(path), "%s.bytes", base);
            if (scn_parse_size(w->bytes, &st->bytes) < 0)
                return scn__bad(c, path, "invalid byte count '%s'", w->bytes);
        }
        break;
    }
    case SCN_STEP_KILL:
    case SCN_STEP_RESTART:
    case SCN_STEP_DEVICE_ERROR: {
        const RawSide *s = acts[found];
        snprintf(path, sizeof(path), "%s.side", base);
        int side = parse_side_name(s->side);
        if (side < 0 || side == MIG_FAULT_SIDE_CLIENT)
            return scn__bad(c, s->side ? path : base, "%s needs side: src or dst (got '%s')",
                       scn_step_names[found], s->side ? s->side : "nothing");
        if (st->kind == SCN_STEP_RESTART && side != MIG_FAULT_SIDE_DST)
            return scn__bad(c, path, "only the destination can be restarted");
        st->side = (MigFaultSide)side;
        if (st->kind == SCN_STEP_DEVICE_ERROR) {
            snprintf(path, sizeof(path), "%s.device", base);
            if (!s->device || !mig_device_type_known(s->device))
                return scn__bad(c, s->device ? path : base, "device-error needs a known device "
                           "(known: %s)", mig_device_type_names());
            scn__scopy(st->device, sizeof(st->device), s->device);
            if (strcmp(s->device, "fake-gpu"))
                return scn__bad(c, path, "device-error needs a VFIO-style device (fake-gpu); %s has "
                           "no device state machine", s->device);
            st->device_state = -1;
            if (s->state) {
                snprintf(path, sizeof(path), "%s.state", base);
                MigDevState ds;
                if (mig_dev_state_parse(s->state, &ds) < 0 || ds == MIG_DEV_ERROR)
                    return scn__bad(c, path, "unknown device state '%s' (expected e.g. STOP_COPY)",
                               s->state);
                st->device_state = (int)ds;
            }
        } else if (s->state) {
            snprintf(path, sizeof(path), "%s.state", base);
            return scn__bad(c, path, "%s takes no state", scn_step_names[found]);
        } else if (s->device) {
            snprintf(path, sizeof(path), "%s.device", base);
            return scn__bad(c, path, "%s takes no device", scn_step_names[found]);
        }
        break;
    }
    case SCN_STEP_DROP: {
        const RawDrop *d = r->drop;
        if (d->at_byte) {
            snprintf(path, sizeof(path), "%s.at-byte", base);
            if (scn_parse_size(d->at_byte, &st->bytes) < 0)
                return scn__bad(c, path, "invalid byte count '%s'", d->at_byte);
        }
        if (d->device_data) {
            snprintf(path, sizeof(path), "%s.device-data", base);
            if (d->at_byte)
                return scn__bad(c, path, "a drop is either at-byte or device-data, not both");
            if ((st->device_data = parse_percent(d->device_data)) < 0)
                return scn__bad(c, path, "invalid share '%s' of the device's data (expected 0%% "
                           "to 100%%, e.g. 50%%)", d->device_data);
        }
        st->device_state = -1;
        if (d->device_state) {
            snprintf(path, sizeof(path), "%s.device-state", base);
            if (!d->device_data)
                return scn__bad(c, path, "device-state goes with device-data (whose data the "
                           "drop lands in)");
            MigDevState ds;
            if (mig_dev_state_parse(d->device_state, &ds) < 0 ||
                (ds != MIG_DEV_PRE_COPY && ds != MIG_DEV_STOP_COPY))
                return scn__bad(c, path, "invalid device state '%s' (expected PRE_COPY or "
                           "STOP_COPY: the states in which a device sends data)",
                           d->device_state);
            st->device_state = (int)ds;
        }
        break;
    }
    case SCN_STEP_CLIENT_MIGRATE_INFO:
    case SCN_STEP_CLIENT:
        return scn__check_spice_step(c, base, r, st);
    case SCN_STEP_SLOW:
        if (!r->slow->bandwidth && !r->slow->latency)
            return scn__bad(c, base, "slow needs bandwidth or latency");
        if (r->slow->bandwidth) {
            snprintf(path, sizeof(path), "%s.bandwidth", base);
            if ((rc = scn_parse_bandwidth(r->slow->bandwidth, &st->bandwidth)) < 0)
                return scn__bad_value(c, path, rc, r->slow->bandwidth, SCN_LIMIT_BANDWIDTH,
                                      "invalid bandwidth '%s' (expected e.g. 10M/s)",
                                      r->slow->bandwidth);
        }
        if (r->slow->latency) {
            snprintf(path, sizeof(path), "%s.latency", base);
            if ((rc = scn_parse_duration(r->slow->latency, &st->latency_ns)) < 0)
                return scn__bad_value(c, path, rc, r->slow->latency, SCN_LIMIT_DURATION,
                                      "invalid duration '%s'", r->slow->latency);
            st->has_latency = true;
        }
        break;
    default:
        break;
    }
    return 0;
}

