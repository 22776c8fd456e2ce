/* SPDX-License-Identifier: MIT */
/* System power transitions (odkctl power sleep|wake): every running driver
 * through set_power_state in tree order — on the way down the deepest
 * providers' drivers first (children before their providers), on the way
 * up the shallowest first — one tree level at a time, each driver under
 * its own power deadline.  A driver that misses it is killed and
 * restarted; the rest of its level and the levels after it go on. */
#include <stdlib.h>
#include <string.h>

#include "daemon/bookkeeping/instance.h"
#include "daemon/core/msg.h"
#include "daemon/odkd.h"
#include "daemon/policy/power.h"
#include "odk/driver.h"
#include "odk/log.h"
#include "odk/status.h"

struct pmember {
    struct power_tx *tx;
    struct instance *in; /* NULL once it went away */
    char *bundle;
    uint32_t inst_id;
    size_t depth;
    int status;
    uint64_t started, elapsed, timer;
    bool sent, done, missed;
};

struct power_tx {
    uint32_t state;
    power_done_fn done;
    void *ctx;
    struct pmember *m;
    size_t n;
    size_t level_idx, n_levels;
    size_t *levels; /* depths, in the order they are processed */
    size_t pending;
};

static size_t depth_of(struct odkd *d, uint64_t node_id)
{
    size_t depth = 0;
    for (reg_node *n = registry_find(d->reg, node_id); n; n = n->parent)
        depth++;
    return depth;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static odk_value *member_result(const struct power_tx *tx, const struct pmember *m)
{
    struct msg r = msg_begin();
    msg_str(&r, "bundle", m->bundle);
    msg_int(&r, "instance", m->inst_id);
    msg_str(&r, "state", tx->state == ODK_POWER_ON ? "on" : "off");
    msg_int(&r, "status", m->status);
    msg_str(&r, "status_name", odk_status_name(m->status));
    msg_int(&r, "elapsed_ms", (int64_t)m->elapsed);
    msg_bool(&r, "missed_deadline", m->missed);
    msg_int(&r, "depth", (int64_t)m->depth);
    return msg_done(&r);
}

static void finish(struct odkd *d, struct power_tx *tx)
{
    odk_value *results = odk_value_new_array();
    int st = results ? ODK_OK : ODK_E_NOMEM;
    for (size_t i = 0; i < tx->n; i++) {
        struct pmember *m = &tx->m[i];
        /* Every instance still pointing here lets go before tx is freed. */
        if (m->in && m->in->power_tx == tx) {
            m->in->power_tx = NULL;
            m->in->power_seq = 0;
        }
        if (st == ODK_OK)
            st = odk_array_append(results, member_result(tx, m));
        free(m->bundle);
    }
    if (st < 0) {
        odk_value_free(results);
        results = NULL;
    }
    struct msg body = msg_begin();
    msg_str(&body, "state", tx->state == ODK_POWER_ON ? "on" : "off");
    msg_take(&body, "results", results);
    odk_info("power %s: done (%zu drivers)", tx->state == ODK_POWER_ON ? "on" : "off", tx->n);
    d->power = NULL;
    power_done_fn done = tx->done;
    void *ctx = tx->ctx;
    free(tx->m);
    free(tx->levels);
    free(tx);
    done(d, ctx, msg_done(&body));
}

static void start_level(struct odkd *d, struct power_tx *tx);

static void member_done(struct odkd *d, struct pmember *m, int status, bool missed)
{
    if (m->done)
        return;
    m->done = true;
    m->status = status;
    m->missed = missed;
    m->elapsed = loop_now_ms() - m->started;
    loop_timer_cancel(d, m->timer);
    if (m->in) {
        m->in->power_tx = NULL;
        m->in->power_seq = 0;
    }
    struct power_tx *tx = m->tx;
    if (--tx->pending == 0) {
        tx->level_idx++;
        start_level(d, tx);
    }
}

static void power_deadline(struct odkd *d, void *ptr)
{
    struct pmember *m = ptr;
    m->timer = 0;
    if (m->done)
        return;
    struct instance *in = m->in;
    if (in && instance_stopped(in)) {
        /* Held by a debugger (or SIGSTOP): the deadline starts again. */
        instance_event(in, ODK_LOG_INFO,
                       "%s#%u (pid %d): its power deadline passed while the host is stopped (a "
                       "debugger?); it gets its deadline again",
                       in->bundle->id, in->id, (int)in->pid);
        m->timer = loop_timer(d, in->deadlines.power_ms, power_deadline, m);
        return;
    }
    if (in) {
        odk_error("deadline missed: %s#%u (pid %d) operation power took more than %llu ms "
                  "(elapsed %llu ms); killing it",
                  in->bundle->id, in->id, (int)in->pid, (unsigned long long)in->deadlines.power_ms,
                  (unsigned long long)(loop_now_ms() - m->started));
        instance_kill(d, in, "missed its power deadline");
    }
    member_done(d, m, ODK_E_TIMEOUT, true);
}

/* Sends the next level's requests.  Members whose host cannot be asked
 * are done at once without touching pending, so this never re-enters
 * itself or frees tx under its own feet; only replies, deadlines and
 * deaths (member_done) move to the next level. */
static void start_level(struct odkd *d, struct power_tx *tx)
{
    while (tx->level_idx < tx->n_levels) {
        size_t depth = tx->levels[tx->level_idx];
        for (size_t i = 0; i < tx->n; i++) {
            struct pmember *m = &tx->m[i];
            if (m->depth != depth || m->sent)
                continue;
            m->sent = true;
            m->started = loop_now_ms();
            struct instance *in = m->in;
            uint32_t seq = 0;
            if (in && in->pid > 0 && !in->kill_reason) {
                struct msg args = msg_begin();
                msg_str(&args, "op", "power");
                msg_int(&args, "state", tx->state);
                seq = instance_request(in, msg_done(&args), NULL, 0);
            }
            if (!seq) {
                m->done = true;
                m->status = ODK_E_GONE;
                continue;
            }
            in->power_seq = seq;
            in->power_tx = tx;
            tx->pending++;
            /* 0 means no deadline, as for start and stop; a host waiting
             * for a debugger gets none either. */
            if (in->deadlines.power_ms && !in->debug)
                m->timer = loop_timer(d, in->deadlines.power_ms, power_deadline, m);
        }
        if (tx->pending)
            return;
        tx->level_idx++;
    }
    finish(d, tx);
}

static struct pmember *member_of(struct power_tx *tx, struct instance *in)
{
    for (size_t i = 0; tx && i < tx->n; i++)
        if (tx->m[i].in == in)
            return &tx->m[i];
    return NULL;
}

void power_reply(struct odkd *d, struct instance *in, int status)
{
    struct pmember *m = member_of(in->power_tx, in);
    if (m)
        member_done(d, m, status, false);
}

void power_instance_gone(struct odkd *d, struct instance *in)
{
    struct pmember *m = member_of(in->power_tx, in);
    in->power_tx = NULL;
    in->power_seq = 0;
    if (!m)
        return;
    m->in = NULL; /* the instance may be freed before the transaction ends */
    if (!m->sent) {
        /* Its level has not come yet: it simply will not be asked. */
        m->sent = m->done = true;
        m->status = ODK_E_GONE;
        return;
    }
    member_done(d, m, ODK_E_GONE, false);
}

int power_begin(struct odkd *d, uint32_t state, power_done_fn done, void *ctx)
{
    if (d->power)
        return ODK_E_BUSY;
    struct power_tx *tx = calloc(1, sizeof *tx);
    size_t count = 0;
    for (struct instance *in = d->instances; in; in = in->next)
        count += in->state == INST_RUNNING && in->pid > 0;
    if (!tx || !(tx->m = calloc(count + 1, sizeof *tx->m)) ||
        !(tx->levels = calloc(count + 1, sizeof *tx->levels))) {
        if (tx)
            free(tx->m);
        free(tx);
        return ODK_E_NOMEM;
    }
    *tx = (struct power_tx){.state = state, .done = done, .ctx = ctx, .m = tx->m,
                            .levels = tx->levels};
    for (struct instance *in = d->instances; in; in = in->next) {
        if (in->state != INST_RUNNING || in->pid <= 0)
            continue;
        struct pmember *m = &tx->m[tx->n++];
        *m = (struct pmember){.tx = tx, .in = in, .bundle = strdup(in->bundle->id),
                              .inst_id = in->id, .depth = depth_of(d, in->provider_id)};
        /* So that an instance going away before its level is reached is
         * noticed (power_instance_gone) and never touched afterwards. */
        in->power_tx = tx;
        tx->levels[tx->n_levels++] = m->depth;
    }
    /* Unique depths; deepest first going down, shallowest first coming up. */
    qsort(tx->levels, tx->n_levels, sizeof *tx->levels, cmp_size);
    size_t u = 0;
    for (size_t i = 0; i < tx->n_levels; i++)
        if (u == 0 || tx->levels[u - 1] != tx->levels[i])
            tx->levels[u++] = tx->levels[i];
    tx->n_levels = u;
    if (state == ODK_POWER_OFF)
        for (size_t i = 0; i < u / 2; i++) {
            size_t t = tx->levels[i];
            tx->levels[i] = tx->levels[u - 1 - i];
            tx->levels[u - 1 - i] = t;
        }
    d->power = tx;
    d->power_state = state;
    odk_info("power %s: %zu drivers in %zu tree levels", state == ODK_POWER_ON ? "on" : "off",
             tx->n, tx->n_levels);
    start_level(d, tx);
    return ODK_OK;
}
