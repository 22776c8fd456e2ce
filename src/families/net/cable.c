/* SPDX-License-Identifier: MIT */
/* The simulated Ethernet cable between two sim NICs (docs/net.md).
 *
 * A cable is a SOCK_SEQPACKET socket pair: one end per NIC, one frame per
 * packet.  Two sim devices whose property "cable" names the same cable are
 * its two ends; the driver of each asks for its end (net-sim-cable), gets a
 * duplicate, and from then on frames go from driver to driver without odkd.
 * odkd keeps both ends open, so a driver that crashes and restarts gets the
 * same end back and the frames in flight wait for it, as on a real wire
 * whose NIC is being reset.
 *
 * The cable's settings (plugged, loss, delay, rate) are set by the operator
 * (odkctl net cable) and kept here; each end has an eventfd odkd writes when
 * they change, and the driver then asks for them (net-sim-cable-state).
 * The transmitting side applies them, as a PHY and the wire would. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/bookkeeping/instance.h"
#include "daemon/core/msg.h"
#include "daemon/front/hostreq.h"
#include "daemon/odkd.h"
#include "odk/log.h"
#include "odk/status.h"

#define CABLE_NAME_MAX 32
#define MAX_DELAY_US (10u * 1000u * 1000u) /* 10 s: longer is not a cable */

struct cable {
    char name[CABLE_NAME_MAX + 1];
    int sock[2], ev[2];
    uint64_t owner[2]; /* provider node of each end, 0: free */
    bool plugged;
    uint32_t loss_ppm, delay_us;
    uint64_t rate_bps; /* 0: as fast as it goes */
    struct cable *next;
};

struct cables {
    struct cable *list;
};

static const struct odkd_module cable_module;

static struct cables *cables_of(struct odkd *d)
{
    return module_state(d, &cable_module);
}

static struct cable *find(struct cables *cs, const char *name)
{
    for (struct cable *c = cs->list; c; c = c->next)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static void free_cable(struct cable *c)
{
    for (int i = 0; i < 2; i++) {
        if (c->sock[i] >= 0)
            close(c->sock[i]);
        if (c->ev[i] >= 0)
            close(c->ev[i]);
    }
    free(c);
}

static struct cable *new_cable(const char *name)
{
    struct cable *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->sock[0] = c->sock[1] = c->ev[0] = c->ev[1] = -1;
    c->plugged = true;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, c->sock) < 0 ||
        (c->ev[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
        (c->ev[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        free_cable(c);
        return NULL;
    }
    /* Room for a few hundred full frames in flight each way. */
    int buf = 4 << 20;
    for (int i = 0; i < 2; i++) {
        setsockopt(c->sock[i], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
        setsockopt(c->sock[i], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    }
    return c;
}

static void settings(struct msg *m, const struct cable *c)
{
    msg_str(m, "cable", c->name);
    msg_bool(m, "plugged", c->plugged);
    msg_int(m, "loss_ppm", c->loss_ppm);
    msg_int(m, "delay_us", c->delay_us);
    msg_int(m, "rate_bps", (int64_t)c->rate_bps);
    msg_int(m, "end0", (int64_t)c->owner[0]);
    msg_int(m, "end1", (int64_t)c->owner[1]);
}

/* The cable named by the asking driver's provider ("cable" property). */
static struct cable *provider_cable(struct host_request *r, bool create)
{
    reg_node *p = registry_find(r->d->reg, r->in->provider_id);
    const char *name = p ? odk_dict_get_string(p->props, "cable", NULL) : NULL;
    size_t len = name ? strlen(name) : 0;
    if (!name || len == 0 || len > CABLE_NAME_MAX) {
        snprintf(r->err, sizeof r->err, "the device has no 'cable' property of 1-%d characters",
                 CABLE_NAME_MAX);
        return NULL;
    }
    struct cables *cs = cables_of(r->d);
    struct cable *c = find(cs, name);
    if (!c && create) {
        if (!(c = new_cable(name))) {
            snprintf(r->err, sizeof r->err, "cable %s: %s", name, strerror(errno));
            return NULL;
        }
        c->next = cs->list;
        cs->list = c;
    }
    if (!c)
        snprintf(r->err, sizeof r->err, "no cable %s", name);
    return c;
}

/* net-sim-cable {}: this driver's end of its device's cable; the reply
 * carries {"end", settings...} and the end's socket and eventfd. */
static int op_cable(struct host_request *r)
{
    struct cable *c = provider_cable(r, true);
    if (!c)
        return ODK_E_INVALID;
    uint64_t prov = r->in->provider_id;
    int end = c->owner[0] == prov   ? 0
              : c->owner[1] == prov ? 1
              : !c->owner[0]        ? 0
              : !c->owner[1]        ? 1
                                    : -1;
    if (end < 0) {
        snprintf(r->err, sizeof r->err, "cable %s already joins devices %llu and %llu", c->name,
                 (unsigned long long)c->owner[0], (unsigned long long)c->owner[1]);
        return ODK_E_BUSY;
    }
    int s = fcntl(c->sock[end], F_DUPFD_CLOEXEC, 3);
    int e = s >= 0 ? fcntl(c->ev[end], F_DUPFD_CLOEXEC, 3) : -1;
    if (e < 0) {
        snprintf(r->err, sizeof r->err, "cable %s: %s", c->name, strerror(errno));
        if (s >= 0)
            close(s);
        return ODK_E_IO;
    }
    struct msg m = msg_begin();
    msg_int(&m, "end", end);
    settings(&m, c);
    int st = msg_finish(&m, &r->out);
    if (st < 0) {
        close(s);
        close(e);
        return st;
    }
    c->owner[end] = prov;
    r->fds[0] = s;
    r->fds[1] = e;
    r->n_fds = 2;
    return ODK_OK;
}

/* net-sim-cable-state {}: the cable's settings now. */
static int op_cable_state(struct host_request *r)
{
    struct cable *c = provider_cable(r, false);
    if (!c)
        return ODK_E_NOT_FOUND;
    struct msg m = msg_begin();
    settings(&m, c);
    return msg_finish(&m, &r->out);
}

static int int_arg(struct client_request *r, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    const odk_value *v = odk_dict_get(r->args, key);
    if (!v)
        return 0;
    if (odk_value_type(v) != ODK_TYPE_INT || odk_value_int(v) < lo || odk_value_int(v) > hi) {
        snprintf(r->err, sizeof r->err, "'%s' must be an integer in %lld..%lld", key, (long long)lo,
                 (long long)hi);
        return ODK_E_INVALID;
    }
    *out = odk_value_int(v);
    return 1;
}

/* net-cable {"cable", "plugged"?, "loss_ppm"?, "delay_us"?, "rate_bps"?}
 * (privileged): changes a cable's settings and tells both ends; with no
 * "cable", lists the cables.  Replies with the settings. */
static int op_net_cable(struct client_request *r)
{
    struct cables *cs = cables_of(r->d);
    const char *name = odk_dict_get_string(r->args, "cable", NULL);
    if (!name) {
        odk_value *list = odk_value_new_array();
        for (struct cable *c = cs->list; list && c; c = c->next) {
            struct msg m = msg_begin();
            settings(&m, c);
            odk_value *v = msg_done(&m);
            if (!v || odk_array_append(list, v) < 0) {
                odk_value_free(list);
                list = NULL;
            }
        }
        struct msg m = msg_begin();
        msg_take(&m, "cables", list);
        return msg_finish(&m, &r->out);
    }
    struct cable *c = find(cs, name);
    if (!c) {
        snprintf(r->err, sizeof r->err, "no cable %s (a cable exists once a driver asked for it)",
                 name);
        return ODK_E_NOT_FOUND;
    }
    const odk_value *pl = odk_dict_get(r->args, "plugged");
    if (pl && odk_value_type(pl) != ODK_TYPE_BOOL) {
        snprintf(r->err, sizeof r->err, "'plugged' must be a boolean");
        return ODK_E_INVALID;
    }
    int64_t loss = c->loss_ppm, delay = c->delay_us, rate = (int64_t)c->rate_bps;
    if (int_arg(r, "loss_ppm", 0, 1000000, &loss) < 0 ||
        int_arg(r, "delay_us", 0, MAX_DELAY_US, &delay) < 0 ||
        int_arg(r, "rate_bps", 0, INT64_MAX, &rate) < 0)
        return ODK_E_INVALID;
    if (pl)
        c->plugged = odk_value_bool(pl);
    c->loss_ppm = (uint32_t)loss;
    c->delay_us = (uint32_t)delay;
    c->rate_bps = (uint64_t)rate;
    uint64_t one = 1;
    for (int i = 0; i < 2; i++)
        if (write(c->ev[i], &one, sizeof one) < 0 && errno != EAGAIN)
            odk_warn("cable %s: cannot tell end %d: %s", c->name, i, strerror(errno));
    odk_info("cable %s: %s, loss %u ppm, delay %u us, rate %llu bit/s", c->name,
             c->plugged ? "plugged" : "unplugged", c->loss_ppm, c->delay_us,
             (unsigned long long)c->rate_bps);
    struct msg m = msg_begin();
    settings(&m, c);
    return msg_finish(&m, &r->out);
}

static void node_gone(struct odkd *d, reg_node *node)
{
    struct cables *cs = cables_of(d);
    for (struct cable **p = &cs->list; *p;) {
        struct cable *c = *p;
        for (int i = 0; i < 2; i++)
            if (c->owner[i] == node->id)
                c->owner[i] = 0;
        if (!c->owner[0] && !c->owner[1]) {
            *p = c->next;
            free_cable(c);
            continue;
        }
        p = &c->next;
    }
}

static void fini(struct odkd *d)
{
    struct cables *cs = cables_of(d);
    while (cs->list) {
        struct cable *c = cs->list;
        cs->list = c->next;
        free_cable(c);
    }
}

static const struct host_op host_ops[] = {
    {"net-sim-cable", op_cable},
    {"net-sim-cable-state", op_cable_state},
    {NULL, NULL},
};
static const struct client_op client_ops[] = {
    {"net-cable", op_net_cable, true},
    {NULL, NULL, false},
};

static const struct odkd_module cable_module = {
    .name = "net-sim-cable",
    .kind = "bus",
    .state_size = sizeof(struct cables),
    .host_ops = host_ops,
    .client_ops = client_ops,
    .node_gone = node_gone,
    .fini = fini,
};
ODKD_MODULE(cable_module)
