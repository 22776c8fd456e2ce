/* SPDX-License-Identifier: MIT */
/* What odkctl and libodk can ask odkd: list, tree, explain, open a user
 * client, logs and crash reports, install, uninstall, restart, power,
 * debug.  Each operation checks its arguments (they come from outside),
 * fills r->out or r->err, and returns a status.  Reads are open to every
 * uid; what changes or inspects the drivers (install, uninstall, restart,
 * power, debug) is privileged (the table's last column, checked in
 * server.c); opening a user client asks access.c. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wire.h"
#include "daemon/bookkeeping/catalog.h"
#include "daemon/bookkeeping/crash.h"
#include "daemon/bookkeeping/instance.h"
#include "daemon/core/match.h"
#include "daemon/core/msg.h"
#include "daemon/front/access.h"
#include "daemon/front/requests.h"
#include "daemon/front/server.h"
#include "daemon/odkd.h"
#include "daemon/policy/manager.h"
#include "daemon/policy/power.h"
#include "odk/driver.h"
#include "odk/log.h"
#include "odk/status.h"

#define LOG_REPLY_MAX (256 * 1024) /* `odkctl log` returns at most the last 256 KiB */

bool request_privileged(const struct client_request *r)
{
    return r->uid == 0 || r->uid == getuid();
}

reg_node *request_node(struct client_request *r)
{
    const odk_value *v = odk_dict_get(r->args, "node");
    if (!v || odk_value_type(v) != ODK_TYPE_INT) {
        snprintf(r->err, sizeof r->err, "missing integer argument 'node'");
        return NULL;
    }
    reg_node *n = registry_find(r->d->reg, (uint64_t)odk_value_int(v));
    if (!n)
        snprintf(r->err, sizeof r->err, "no registry node %lld", (long long)odk_value_int(v));
    return n;
}

/* Appends item (taken) to array; the first failure sticks in *st. */
static void append(odk_value *array, odk_value *item, int *st)
{
    if (*st == ODK_OK && !item)
        *st = ODK_E_NOMEM;
    if (*st != ODK_OK) {
        odk_value_free(item);
        return;
    }
    *st = odk_array_append(array, item);
}

static odk_value *new_array(int *st)
{
    odk_value *a = odk_value_new_array();
    *st = a ? ODK_OK : ODK_E_NOMEM;
    return a;
}

/* r->out = {key: list}, taking list. */
static int reply_with(struct client_request *r, const char *key, odk_value *list, int st)
{
    if (st < 0) {
        odk_value_free(list);
        return st;
    }
    struct msg m = msg_begin();
    msg_take(&m, key, list);
    return msg_finish(&m, &r->out);
}

static int op_ping(struct client_request *r)
{
    struct msg m = msg_begin();
    msg_int(&m, "pid", getpid());
    /* The hosts started in advance (bookkeeping/host.c): the
     * odk-driver-host children of odkd that no instance owns, besides the
     * zygote; "spare_host" is the next one handed out, 0 when none. */
    odk_value *spares = odk_value_new_array();
    for (size_t i = 0; spares && i < HOST_SPARES; i++)
        if (r->d->spare[i].pid > 0)
            odk_array_append(spares, odk_value_new_int(r->d->spare[i].pid));
    msg_int(&m, "spare_host",
            odk_array_count(spares) ? odk_value_int(odk_array_get(spares, 0)) : 0);
    msg_take(&m, "spare_hosts", spares);
    /* The host that forks the spares (src/host/zygote.h), 0 when none. */
    msg_int(&m, "zygote", host_zygote_pid(r->d));
    /* The hosts primed for a bundle (and priming), and the descriptors
     * odkd holds for them (docs/architecture.md, "primed hosts"). */
    pid_t primed[HOST_PRIMES];
    size_t n_primed = host_primed_pids(r->d, primed);
    odk_value *pa = odk_value_new_array();
    for (size_t i = 0; pa && i < n_primed; i++)
        odk_array_append(pa, odk_value_new_int(primed[i]));
    msg_take(&m, "primed_hosts", pa);
    msg_take(&m, "primed", host_primed_describe(r->d));
    msg_int(&m, "primed_fds", (int64_t)host_primed_fds(r->d));
    /* Clients' outgoing queues (front/outq.h): "client_waiting" messages
     * their full sockets could not take yet, "client_coalesced" property
     * events that gave way to a later one. */
    struct server_backlog b;
    server_backlog(r->d, &b);
    msg_int(&m, "clients", (int64_t)b.clients);
    msg_int(&m, "client_waiting", (int64_t)b.waiting);
    msg_int(&m, "client_coalesced", (int64_t)b.coalesced);
    return msg_finish(&m, &r->out);
}

static int op_list(struct client_request *r)
{
    int st;
    odk_value *a = new_array(&st);
    for (struct instance *in = r->d->instances; in; in = in->next)
        append(a, instance_describe(r->d, in), &st);
    return reply_with(r, "instances", a, st);
}

struct tree_ctx {
    struct odkd *d;
    odk_value *nodes;
    int st;
};

static int describe_into(reg_node *n, void *ctx)
{
    struct tree_ctx *t = ctx;
    append(t->nodes, registry_node_describe(t->d->reg, n), &t->st);
    return t->st;
}

static int op_tree(struct client_request *r)
{
    struct tree_ctx t = {r->d, odk_value_new_array(), ODK_OK};
    t.st = t.nodes ? ODK_OK : ODK_E_NOMEM;
    if (t.st == ODK_OK)
        registry_walk(registry_root(r->d->reg), describe_into, &t);
    return reply_with(r, "nodes", t.nodes, t.st);
}

static int op_explain(struct client_request *r)
{
    reg_node *n = request_node(r);
    if (!n)
        return ODK_E_NOT_FOUND;
    size_t nb = 0;
    bundle **b = catalog_bundles(r->d, &nb);
    if (!b)
        return ODK_E_NOMEM;
    /* Explain the ranking itself: a category that already has a driver
     * still shows which personality wins it. */
    odk_value *list = match_explain(r->d->reg, n, b, nb, NULL, 0);
    free(b);
    /* And who holds each category on this node now: a matching
     * personality that is not running says whose driver is. */
    odk_value *held = list ? odk_value_new_array() : NULL;
    for (size_t i = 0; held && i < odk_array_count(list); i++) {
        odk_value *e = odk_value_copy(odk_array_get(list, i));
        if (!e || odk_array_append(held, e) < 0) {
            odk_value_free(e);
            odk_value_free(held);
            held = NULL;
            break;
        }
        for (struct instance *in = r->d->instances; in; in = in->next) {
            if (in->provider_id != n->id || !in->category ||
                strcmp(in->category, odk_dict_get_string(e, "category", "")) != 0)
                continue;
            char who[300];
            snprintf(who, sizeof who, "%s#%u (%s, %s)", in->bundle->id, in->id,
                     in->personality_name ? in->personality_name : "?",
                     inst_state_name(in->state));
            bool self = strcmp(in->bundle->id, odk_dict_get_string(e, "bundle", "")) == 0 &&
                        in->personality_name &&
                        strcmp(in->personality_name, odk_dict_get_string(e, "personality", "")) == 0;
            odk_dict_set_string(e, self ? "running_as" : "held_by", who);
            break;
        }
    }
    odk_value_free(list);
    list = held;
    struct msg m = msg_begin();
    msg_take(&m, "node", registry_node_describe(r->d->reg, n));
    msg_take(&m, "personalities", list);
    return msg_finish(&m, &r->out);
}

struct install_reply {
    uint64_t conn_id;
    uint32_t seq;
};

static void install_done(struct odkd *d, void *ctx, int status, bool changed, const char *err)
{
    struct install_reply *p = ctx;
    struct msg m = msg_begin();
    if (status < 0)
        msg_str(&m, "error", err && err[0] ? err : odk_strerror(status));
    else
        msg_bool(&m, "changed", changed);
    server_reply_later(d, p->conn_id, p->seq, status, msg_done(&m));
    free(p);
}

/* Answers once the bundle was checked in a throwaway host and installed
 * (policy/manager.c). */
static int op_install(struct client_request *r)
{
    const char *path = odk_dict_get_string(r->args, "path", NULL);
    if (!path) {
        snprintf(r->err, sizeof r->err, "missing string argument 'path'");
        return ODK_E_INVALID;
    }
    struct install_reply *p = malloc(sizeof *p);
    if (!p)
        return ODK_E_NOMEM;
    *p = (struct install_reply){r->conn_id, r->seq};
    int st = manager_install(r->d, path, install_done, p, r->err, sizeof r->err);
    if (st < 0)
        free(p);
    else
        r->later = true;
    return st;
}

static int op_uninstall(struct client_request *r)
{
    const char *id = odk_dict_get_string(r->args, "bundle", NULL);
    if (!id) {
        snprintf(r->err, sizeof r->err, "missing string argument 'bundle'");
        return ODK_E_INVALID;
    }
    int st = manager_uninstall(r->d, id);
    if (st == ODK_E_NOT_FOUND)
        snprintf(r->err, sizeof r->err, "no bundle %s is installed", id);
    return st;
}

static int op_restart(struct client_request *r)
{
    const char *id = odk_dict_get_string(r->args, "bundle", NULL);
    int st = id ? manager_restart(r->d, id) : ODK_E_NOT_FOUND;
    if (st == ODK_E_NOT_FOUND)
        snprintf(r->err, sizeof r->err, "no bundle %s", id ? id : "(none)");
    return st;
}

/* The last LOG_REPLY_MAX bytes of a file, "" if it cannot be read. */
static char *tail_of(const char *path)
{
    char *buf = calloc(1, LOG_REPLY_MAX + 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (buf && fd >= 0) {
        off_t size = lseek(fd, 0, SEEK_END);
        off_t from = size > LOG_REPLY_MAX ? size - LOG_REPLY_MAX : 0;
        ssize_t n = pread(fd, buf, LOG_REPLY_MAX, from);
        buf[n > 0 ? n : 0] = 0;
    }
    if (fd >= 0)
        close(fd);
    return buf;
}

static int op_log(struct client_request *r)
{
    const char *id = odk_dict_get_string(r->args, "bundle", NULL);
    if (!id || strchr(id, '/') || !catalog_find(r->d, id)) {
        snprintf(r->err, sizeof r->err, "no bundle %s", id ? id : "(none)");
        return ODK_E_NOT_FOUND;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/logs/%s.log", r->d->state_dir, id);
    char *text = tail_of(path);
    if (!text)
        return ODK_E_NOMEM;
    struct msg m = msg_begin();
    msg_str(&m, "text", text);
    free(text);
    return msg_finish(&m, &r->out);
}

static odk_value *crash_list(struct odkd *d, int *st)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/crashes", d->state_dir);
    odk_value *list = new_array(st);
    DIR *dh = opendir(path);
    struct dirent *de;
    while (dh && *st == ODK_OK && (de = readdir(dh))) {
        size_t len = strlen(de->d_name);
        /* NAME.txt.part: a report crash.c is still writing. */
        if (de->d_name[0] == '.' || (len > 5 && strcmp(de->d_name + len - 5, ".part") == 0))
            continue;
        char f[4096 + 256];
        snprintf(f, sizeof f, "%s/%s", path, de->d_name);
        append(list, odk_value_new_string(f), st);
    }
    if (dh)
        closedir(dh);
    return list;
}

struct crashes_wait {
    uint64_t conn_id;
    uint32_t seq;
};

static void crashes_written(struct odkd *d, void *ctx)
{
    struct crashes_wait *w = ctx;
    int st;
    odk_value *list = crash_list(d, &st);
    struct msg m = msg_begin();
    msg_take(&m, "crashes", st == ODK_OK ? list : NULL);
    if (st != ODK_OK)
        odk_value_free(list);
    odk_value *body = msg_done(&m);
    server_reply_later(d, w->conn_id, w->seq, st == ODK_OK && body ? ODK_OK : ODK_E_NOMEM, body);
    free(w);
}

/* Every report of a crash odkd has logged: one still being symbolised
 * (crash.c) is waited for, so a report named in the log is listed. */
static int op_crashes(struct client_request *r)
{
    if (crash_pending()) {
        struct crashes_wait *w = malloc(sizeof *w);
        if (!w)
            return ODK_E_NOMEM;
        *w = (struct crashes_wait){r->conn_id, r->seq};
        if (crash_when_written(r->d, crashes_written, w) < 0) {
            free(w);
            return ODK_E_NOMEM;
        }
        r->later = true;
        return ODK_OK;
    }
    int st;
    odk_value *list = crash_list(r->d, &st);
    return reply_with(r, "crashes", list, st);
}

static odk_value *open_client_args(struct client_request *r, uint64_t target)
{
    struct msg m = msg_begin();
    msg_str(&m, "op", "open-client");
    msg_int(&m, "node", (int64_t)target);
    msg_int(&m, "type", odk_dict_get_int(r->args, "type", 0));
    msg_int(&m, "uid", r->uid);
    msg_int(&m, "pid", r->pid);
    return msg_done(&m);
}

static void offer_mailbox(struct client_request *r, int app_end)
{
    int fds[3];
    size_t n = 0;
    for (size_t i = 0; r->msg && i < r->msg->n_fds && n < 3; i++) {
        int fd = wire_msg_take_fd(r->msg, i);
        if (fd >= 0)
            fds[n++] = fd;
    }
    if (n > 0 && wire_send(app_end, WIRE_FASTPATH, 1, 0, NULL, 0, fds, n) < 0)
        odk_warn("open by pid %d: its call mailbox could not be queued; its calls use the socket",
                 (int)r->pid);
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

static int op_open(struct client_request *r)
{
    reg_node *n = request_node(r);
    if (!n)
        return ODK_E_NOT_FOUND;
    struct instance *in = instance_by_node(r->d, n->id);
    if (!in) {
        snprintf(r->err, sizeof r->err, "no driver serves node %llu", (unsigned long long)n->id);
        return ODK_E_NOT_FOUND;
    }
    if (in->state != INST_RUNNING || in->ctl_fd < 0) {
        snprintf(r->err, sizeof r->err, "the driver of node %llu is %s",
                 (unsigned long long)n->id, inst_state_name(in->state));
        return ODK_E_STATE;
    }
    /* Decided here, before the host hears of the open: a refused app
     * never reaches the driver (its client_open does not run). */
    const struct peer *peer = server_peer(r->d, r->conn_id);
    if (!peer)
        return ODK_E_DISCONNECTED;
    int st = access_user_client(in->personality, in->personality_name, in->bundle->id, peer,
                                r->err, sizeof r->err);
    if (st < 0)
        return st;
    uint64_t target = n->owner ? n->id : in->node_id;
    struct msg m = msg_begin();
    msg_int(&m, "node", (int64_t)target);
    msg_str(&m, "bundle", in->bundle->id);
    st = msg_finish(&m, &r->out);
    int sv[2];
    if (st == ODK_OK)
        st = wire_socketpair(sv);
    if (st < 0)
        return st;
    /* Descriptors with the open are the app's call mailbox (a memfd and its
     * wake-up ends): queued on the channel as the app's WIRE_FASTPATH offer
     * before the host has the channel, so the host finds it there when it
     * opens the client and answers it with the verdict.  odkd neither looks
     * at nor keeps them (the host checks them, mailbox_take).  The socket
     * is new and empty: this send cannot block. */
    offer_mailbox(r, sv[0]);
    /* The app's end goes back with the reply, the driver's to the host. */
    bool sent = instance_request(in, open_client_args(r, target), &sv[1], 1) != 0;
    close(sv[1]);
    if (!sent) {
        close(sv[0]);
        snprintf(r->err, sizeof r->err, "the driver of node %llu cannot be reached",
                 (unsigned long long)n->id);
        return ODK_E_GONE;
    }
    r->reply_fd = sv[0];
    return ODK_OK;
}

struct pending_reply {
    uint64_t conn_id;
    uint32_t seq;
};

static void power_done(struct odkd *d, void *ctx, odk_value *results)
{
    struct pending_reply *p = ctx;
    server_reply_later(d, p->conn_id, p->seq, results ? ODK_OK : ODK_E_NOMEM, results);
    free(p);
}

static int op_power(struct client_request *r)
{
    const char *state = odk_dict_get_string(r->args, "state", "");
    uint32_t target;
    if (strcmp(state, "sleep") == 0 || strcmp(state, "off") == 0)
        target = ODK_POWER_OFF;
    else if (strcmp(state, "wake") == 0 || strcmp(state, "on") == 0)
        target = ODK_POWER_ON;
    else {
        snprintf(r->err, sizeof r->err, "power state must be sleep or wake, not '%s'", state);
        return ODK_E_INVALID;
    }
    struct pending_reply *p = malloc(sizeof *p);
    if (!p)
        return ODK_E_NOMEM;
    *p = (struct pending_reply){r->conn_id, r->seq};
    int st = power_begin(r->d, target, power_done, p);
    if (st < 0)
        free(p);
    if (st == ODK_E_BUSY)
        snprintf(r->err, sizeof r->err, "a power transition is already running");
    if (st == ODK_OK)
        r->later = true;
    return st;
}

static int op_debug(struct client_request *r)
{
    const char *id = odk_dict_get_string(r->args, "bundle", NULL);
    if (!id || !catalog_find(r->d, id)) {
        snprintf(r->err, sizeof r->err, "no bundle %s", id ? id : "(none)");
        return ODK_E_NOT_FOUND;
    }
    int st;
    odk_value *list = new_array(&st);
    for (struct instance *in = r->d->instances; in; in = in->next)
        if (strcmp(in->bundle->id, id) == 0 && in->pid > 0)
            append(list, instance_describe(r->d, in), &st);
    return reply_with(r, "instances", list, st);
}

const struct client_op client_requests[] = {
    {"ping", op_ping, false},           {"list", op_list, false},
    {"tree", op_tree, false},           {"explain", op_explain, false},
    {"open", op_open, false},           {"log", op_log, false},
    {"crashes", op_crashes, false},     {"debug", op_debug, true},
    {"install", op_install, true},      {"uninstall", op_uninstall, true},
    {"restart", op_restart, true},      {"power", op_power, true},
    {NULL, NULL, false},
};
