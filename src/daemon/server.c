/* odkd's socket: requests from odkctl and libodk, and events to watchers.
 * Every message is untrusted; a bad one gets an error reply and the
 * connection (and everyone else's) goes on. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/match.h"
#include "odk/log.h"
#include "odk/status.h"

#define MAX_WATCHES_PER_CONN 256
#define LOG_REPLY_MAX (256 * 1024) /* `odkctl log` returns at most the last 256 KiB */

struct watch_entry {
    uint32_t id;
    odk_value *matching;
};

struct conn {
    uint64_t id;
    int fd;
    struct watch w;
    uid_t uid;
    pid_t pid;
    struct watch_entry watches[MAX_WATCHES_PER_CONN];
    size_t n_watches;
    uint32_t next_watch;
    struct conn *next;
};

static void conn_free(void *ptr)
{
    struct conn *c = ptr;
    for (size_t i = 0; i < c->n_watches; i++)
        odk_value_free(c->watches[i].matching);
    free(c);
}

static void conn_close(struct odkd *d, struct conn *c)
{
    for (struct conn **p = &d->conns; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    loop_del(d, &c->w);
    close(c->fd);
    loop_defer_free(d, conn_free, c);
}

static struct conn *conn_by_id(struct odkd *d, uint64_t id)
{
    for (struct conn *c = d->conns; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

static void send_reply(struct conn *c, uint32_t seq, int status, odk_value *body, const int *fds,
                       size_t n_fds)
{
    /* A client that does not read its replies must not stall odkd: the
     * socket is non-blocking, and a reply to a full one is lost (logged). */
    int st = wire_send_value(c->fd, WIRE_REPLY, seq, status, body, fds, n_fds);
    if (st < 0 && st != ODK_E_DISCONNECTED)
        odk_warn("reply to pid %d failed: %s", (int)c->pid, odk_strerror(st));
    odk_value_free(body);
}

void server_reply_later(struct odkd *d, uint64_t conn_id, uint32_t seq, int status,
                        odk_value *body)
{
    struct conn *c = conn_by_id(d, conn_id);
    if (c)
        send_reply(c, seq, status, body, NULL, 0);
    else
        odk_value_free(body);
}

/* A matching dictionary from an app: personality keys, IOProviderClass
 * defaulting to IOService. */
static bool app_match(struct odkd *d, const odk_value *matching, const reg_node *n)
{
    char why[256];
    if (odk_dict_get(matching, "IOProviderClass"))
        return match_personality(d->reg, n, matching, why, sizeof why) == 1;
    odk_value *m = odk_value_copy(matching);
    if (!m || odk_dict_set_string(m, "IOProviderClass", "IOService") < 0) {
        odk_value_free(m);
        return false;
    }
    bool ok = match_personality(d->reg, n, m, why, sizeof why) == 1;
    odk_value_free(m);
    return ok;
}

void server_notify(struct odkd *d, const char *event, reg_node *node)
{
    odk_value *desc = NULL;
    for (struct conn *c = d->conns; c; c = c->next) {
        for (size_t i = 0; i < c->n_watches; i++) {
            if (!app_match(d, c->watches[i].matching, node))
                continue;
            if (!desc)
                desc = registry_node_describe(d->reg, node);
            odk_value *ev = odk_value_new_dict();
            odk_dict_set_string(ev, "event", event);
            odk_dict_set_int(ev, "watch", c->watches[i].id);
            odk_dict_set(ev, "node", odk_value_copy(desc));
            wire_send_value(c->fd, WIRE_EVENT, 0, 0, ev, NULL, 0);
            odk_value_free(ev);
        }
    }
    odk_value_free(desc);
}

/* ---- operations ------------------------------------------------------- */

struct req {
    struct odkd *d;
    struct conn *c;
    uint32_t seq;
    odk_value *args;
    odk_value *out; /* reply body */
    int reply_fd;   /* an fd to pass with the reply, or -1 */
    bool later;     /* the reply is sent later */
    char err[1024];
};

static bool privileged(const struct req *r)
{
    return r->c->uid == 0 || r->c->uid == getuid();
}

static reg_node *arg_node(struct req *r)
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

static int op_list(struct req *r)
{
    odk_value *a = odk_value_new_array();
    for (struct instance *in = r->d->instances; in; in = in->next)
        odk_array_append(a, instance_describe(r->d, in));
    r->out = odk_value_new_dict();
    return odk_dict_set(r->out, "instances", a);
}

static int describe_into(reg_node *n, void *ctx)
{
    struct req *r = ctx;
    odk_array_append((odk_value *)odk_dict_get(r->out, "nodes"),
                     registry_node_describe(r->d->reg, n));
    return 0;
}

static int op_tree(struct req *r)
{
    r->out = odk_value_new_dict();
    odk_dict_set(r->out, "nodes", odk_value_new_array());
    registry_walk(registry_root(r->d->reg), describe_into, r);
    return ODK_OK;
}

struct find_ctx {
    struct req *r;
    const odk_value *matching;
    odk_value *nodes;
};

static int find_one(reg_node *n, void *ctx)
{
    struct find_ctx *f = ctx;
    if (n->state != REG_INACTIVE && n->state != REG_TERMINATING &&
        app_match(f->r->d, f->matching, n))
        odk_array_append(f->nodes, registry_node_describe(f->r->d->reg, n));
    return 0;
}

static int op_find(struct req *r)
{
    const odk_value *m = odk_dict_get(r->args, "matching");
    if (!m || odk_value_type(m) != ODK_TYPE_DICT) {
        snprintf(r->err, sizeof r->err, "'matching' must be a dictionary");
        return ODK_E_INVALID;
    }
    struct find_ctx f = {r, m, odk_value_new_array()};
    registry_walk(registry_root(r->d->reg), find_one, &f);
    r->out = odk_value_new_dict();
    return odk_dict_set(r->out, "nodes", f.nodes);
}

static int op_watch(struct req *r)
{
    if (r->c->n_watches == MAX_WATCHES_PER_CONN) {
        snprintf(r->err, sizeof r->err, "at most %d watches per connection",
                 MAX_WATCHES_PER_CONN);
        return ODK_E_LIMIT;
    }
    /* The reply lists the services already there; later ones arrive as
     * events. */
    int st = op_find(r);
    if (st < 0)
        return st;
    struct watch_entry *w = &r->c->watches[r->c->n_watches++];
    w->id = ++r->c->next_watch;
    w->matching = odk_value_copy(odk_dict_get(r->args, "matching"));
    return odk_dict_set_int(r->out, "watch", w->id);
}

static int op_unwatch(struct req *r)
{
    uint32_t id = (uint32_t)odk_dict_get_int(r->args, "watch", 0);
    for (size_t i = 0; i < r->c->n_watches; i++) {
        if (r->c->watches[i].id == id) {
            odk_value_free(r->c->watches[i].matching);
            r->c->watches[i] = r->c->watches[--r->c->n_watches];
            return ODK_OK;
        }
    }
    return ODK_E_NOT_FOUND;
}

static int op_explain(struct req *r)
{
    reg_node *n = arg_node(r);
    if (!n)
        return ODK_E_NOT_FOUND;
    size_t nb = 0;
    odk_bundle **b = catalog_bundles(r->d, &nb);
    /* Explain the ranking itself: a category that already has a driver
     * still shows which personality wins it. */
    odk_value *list = match_explain(r->d->reg, n, b, nb, NULL, 0);
    free(b);
    r->out = odk_value_new_dict();
    odk_dict_set(r->out, "node", registry_node_describe(r->d->reg, n));
    return odk_dict_set(r->out, "personalities", list ? list : odk_value_new_array());
}

static int op_sim_plug(struct req *r)
{
    const odk_value *dev = odk_dict_get(r->args, "device");
    if (!dev || odk_value_type(dev) != ODK_TYPE_DICT) {
        snprintf(r->err, sizeof r->err, "'device' must be a dictionary");
        return ODK_E_INVALID;
    }
    uint64_t id = 0;
    int st = sim_plug(r->d, dev, &id, r->err, sizeof r->err);
    if (st == ODK_OK) {
        r->out = odk_value_new_dict();
        odk_dict_set_int(r->out, "node", (int64_t)id);
    }
    return st;
}

struct unplug_wait {
    uint64_t conn_id;
    uint32_t seq;
    uint64_t node_id;
};

static void unplug_done(struct odkd *d, void *ctx)
{
    struct unplug_wait *u = ctx;
    reg_node *n = registry_find(d->reg, u->node_id);
    if (n) {
        matcher_remove_node(d, n);
        odk_info("unplugged node %llu", (unsigned long long)u->node_id);
    }
    server_reply_later(d, u->conn_id, u->seq, ODK_OK, NULL);
    free(u);
}

static int op_sim_unplug(struct req *r)
{
    reg_node *n = arg_node(r);
    if (!n)
        return ODK_E_NOT_FOUND;
    if (!n->parent || n->parent != r->d->sim_bus) {
        snprintf(r->err, sizeof r->err, "node %llu is not a device on the sim bus",
                 (unsigned long long)n->id);
        return ODK_E_INVALID;
    }
    if (n->state == REG_TERMINATING) {
        snprintf(r->err, sizeof r->err, "node %llu is already being unplugged",
                 (unsigned long long)n->id);
        return ODK_E_STATE;
    }
    struct unplug_wait *u = malloc(sizeof *u);
    if (!u)
        return ODK_E_NOMEM;
    *u = (struct unplug_wait){r->c->id, r->seq, n->id};
    n->state = REG_TERMINATING;
    r->later = true;
    instance_terminate_tree(r->d, n, unplug_done, u);
    return ODK_OK;
}

static int op_install(struct req *r)
{
    const char *path = odk_dict_get_string(r->args, "path", NULL);
    if (!path) {
        snprintf(r->err, sizeof r->err, "missing string argument 'path'");
        return ODK_E_INVALID;
    }
    bool changed = false;
    int st = catalog_install(r->d, path, &changed, r->err, sizeof r->err);
    if (st < 0)
        return st;
    r->out = odk_value_new_dict();
    odk_dict_set_bool(r->out, "changed", changed);
    if (changed)
        matcher_run_all(r->d);
    return ODK_OK;
}

static int op_uninstall(struct req *r)
{
    const char *id = odk_dict_get_string(r->args, "bundle", NULL);
    if (!id)
        return ODK_E_INVALID;
    int st = catalog_uninstall(r->d, id);
    if (st == ODK_E_NOT_FOUND)
        snprintf(r->err, sizeof r->err, "no bundle %s is installed", id);
    return st;
}

static int op_log(struct req *r)
{
    const char *id = odk_dict_get_string(r->args, "bundle", NULL);
    if (!id || strchr(id, '/') || !catalog_find(r->d, id)) {
        snprintf(r->err, sizeof r->err, "no bundle %s", id ? id : "(none)");
        return ODK_E_NOT_FOUND;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/logs/%s.log", r->d->state_dir, id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf = calloc(1, LOG_REPLY_MAX + 1);
    ssize_t n = 0;
    if (fd >= 0 && buf) {
        off_t size = lseek(fd, 0, SEEK_END);
        off_t from = size > LOG_REPLY_MAX ? size - LOG_REPLY_MAX : 0;
        n = pread(fd, buf, LOG_REPLY_MAX, from);
        if (n < 0)
            n = 0;
        buf[n] = 0;
    }
    if (fd >= 0)
        close(fd);
    r->out = odk_value_new_dict();
    odk_dict_set_string(r->out, "text", buf ? buf : "");
    free(buf);
    return ODK_OK;
}

static int op_restart(struct req *r)
{
    const char *id = odk_dict_get_string(r->args, "bundle", NULL);
    struct catalog_entry *e = id ? catalog_find(r->d, id) : NULL;
    if (!e) {
        snprintf(r->err, sizeof r->err, "no bundle %s", id ? id : "(none)");
        return ODK_E_NOT_FOUND;
    }
    for (struct instance *in = r->d->instances, *next; in; in = next) {
        next = in->next;
        if (in->entry == e)
            instance_terminate(r->d, in);
    }
    /* Matching launches fresh instances once the old ones are down. */
    matcher_run_all(r->d);
    return ODK_OK;
}

static int op_crashes(struct req *r)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/crashes", r->d->state_dir);
    odk_value *list = odk_value_new_array();
    DIR *dh = opendir(path);
    struct dirent *de;
    while (dh && (de = readdir(dh))) {
        if (de->d_name[0] == '.')
            continue;
        char f[4096 + 256];
        snprintf(f, sizeof f, "%s/%s", path, de->d_name);
        odk_array_append(list, odk_value_new_string(f));
    }
    if (dh)
        closedir(dh);
    r->out = odk_value_new_dict();
    return odk_dict_set(r->out, "crashes", list);
}

static int op_open(struct req *r)
{
    reg_node *n = arg_node(r);
    if (!n)
        return ODK_E_NOT_FOUND;
    struct instance *in = instance_by_node(r->d, n->id);
    if (!in) {
        snprintf(r->err, sizeof r->err, "no driver serves node %llu",
                 (unsigned long long)n->id);
        return ODK_E_NOT_FOUND;
    }
    if (in->state != INST_RUNNING || in->ctl_fd < 0) {
        snprintf(r->err, sizeof r->err, "the driver of node %llu is %s",
                 (unsigned long long)n->id, inst_state_name(in->state));
        return ODK_E_STATE;
    }
    /* Access: the owner of odkd, root, or anyone when the personality says
     * so ("OdkUserClientAccess": "everyone"). */
    const char *access = odk_dict_get_string(in->personality, "OdkUserClientAccess", "owner");
    if (!privileged(r) && strcmp(access, "everyone") != 0) {
        snprintf(r->err, sizeof r->err, "uid %u may not open %s", (unsigned)r->c->uid,
                 in->bundle->id);
        return ODK_E_ACCESS;
    }
    uint64_t target = n->owner ? n->id : in->node_id;
    int sv[2];
    int st = wire_socketpair(sv);
    if (st < 0)
        return st;
    odk_value *args = odk_value_new_dict();
    odk_dict_set_string(args, "op", "open-client");
    odk_dict_set_int(args, "node", (int64_t)target);
    odk_dict_set_int(args, "type", odk_dict_get_int(r->args, "type", 0));
    odk_dict_set_int(args, "uid", r->c->uid);
    odk_dict_set_int(args, "pid", r->c->pid);
    st = wire_send_value(in->ctl_fd, WIRE_REQUEST, ++in->next_seq, 0, args, &sv[1], 1);
    odk_value_free(args);
    close(sv[1]);
    if (st < 0) {
        close(sv[0]);
        return ODK_E_GONE;
    }
    r->reply_fd = sv[0];
    r->out = odk_value_new_dict();
    odk_dict_set_int(r->out, "node", (int64_t)target);
    odk_dict_set_string(r->out, "bundle", in->bundle->id);
    return ODK_OK;
}

static int op_power(struct req *r)
{
    const char *state = odk_dict_get_string(r->args, "state", "");
    uint32_t st_code;
    if (strcmp(state, "sleep") == 0 || strcmp(state, "off") == 0)
        st_code = 0;
    else if (strcmp(state, "wake") == 0 || strcmp(state, "on") == 0)
        st_code = 1;
    else {
        snprintf(r->err, sizeof r->err, "power state must be sleep or wake, not '%s'", state);
        return ODK_E_INVALID;
    }
    int st = power_begin(r->d, st_code, r->c->id, r->seq);
    if (st == ODK_E_BUSY)
        snprintf(r->err, sizeof r->err, "a power transition is already running");
    if (st == ODK_OK)
        r->later = true;
    return st;
}

static int op_debug(struct req *r)
{
    const char *id = odk_dict_get_string(r->args, "bundle", NULL);
    if (!id || !catalog_find(r->d, id)) {
        snprintf(r->err, sizeof r->err, "no bundle %s", id ? id : "(none)");
        return ODK_E_NOT_FOUND;
    }
    odk_value *pids = odk_value_new_array();
    for (struct instance *in = r->d->instances; in; in = in->next)
        if (strcmp(in->bundle->id, id) == 0 && in->pid > 0)
            odk_array_append(pids, instance_describe(r->d, in));
    r->out = odk_value_new_dict();
    return odk_dict_set(r->out, "instances", pids);
}

static int op_ping(struct req *r)
{
    r->out = odk_value_new_dict();
    odk_dict_set_int(r->out, "pid", getpid());
    return ODK_OK;
}

static const struct op {
    const char *name;
    int (*fn)(struct req *r);
    bool needs_privilege;
} ops[] = {
    {"ping", op_ping, false},         {"list", op_list, false},
    {"tree", op_tree, false},         {"find", op_find, false},
    {"watch", op_watch, false},       {"unwatch", op_unwatch, false},
    {"explain", op_explain, false},   {"open", op_open, false},
    {"log", op_log, false},           {"crashes", op_crashes, false},
    {"sim-plug", op_sim_plug, true},  {"sim-unplug", op_sim_unplug, true},
    {"install", op_install, true},    {"uninstall", op_uninstall, true},
    {"restart", op_restart, true},    {"power", op_power, true},
    {"debug", op_debug, false},
};

static void handle(struct odkd *d, struct conn *c, wire_msg *m)
{
    struct req r = {.d = d, .c = c, .seq = m->hdr.seq, .reply_fd = -1};
    int st;
    if (m->hdr.type != WIRE_REQUEST) {
        st = ODK_E_PROTOCOL;
        snprintf(r.err, sizeof r.err, "expected a request, got message type %u", m->hdr.type);
    } else if ((st = wire_msg_value(m, &r.args)) < 0) {
        snprintf(r.err, sizeof r.err, "the request body is not a valid encoded dictionary");
    } else {
        const char *name = odk_dict_get_string(r.args, "op", "");
        const struct op *op = NULL;
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
            if (strcmp(ops[i].name, name) == 0)
                op = &ops[i];
        if (!op) {
            st = ODK_E_UNSUPPORTED;
            snprintf(r.err, sizeof r.err, "unknown operation '%s'", name);
        } else if (op->needs_privilege && !privileged(&r)) {
            st = ODK_E_ACCESS;
            snprintf(r.err, sizeof r.err, "'%s' needs root or odkd's own user", name);
        } else {
            st = op->fn(&r);
        }
    }
    if (st < 0) {
        odk_value_free(r.out);
        r.out = odk_value_new_dict();
        odk_dict_set_string(r.out, "error", r.err[0] ? r.err : odk_strerror(st));
        if (r.reply_fd >= 0)
            close(r.reply_fd);
        r.reply_fd = -1;
        r.later = false;
    }
    if (!r.later)
        send_reply(c, r.seq, st, r.out, r.reply_fd >= 0 ? &r.reply_fd : NULL,
                   r.reply_fd >= 0 ? 1 : 0);
    else
        odk_value_free(r.out);
    if (r.reply_fd >= 0)
        close(r.reply_fd);
    odk_value_free(r.args);
}

static void on_conn(struct odkd *d, void *ptr, uint32_t events)
{
    struct conn *c = ptr;
    wire_msg m;
    wire_msg_init(&m);
    int st = wire_recv(c->fd, &m);
    if (st == ODK_E_PROTOCOL) {
        odk_warn("pid %d sent a malformed message; answered with an error", (int)c->pid);
        odk_value *body = odk_value_new_dict();
        odk_dict_set_string(body, "error", "malformed message (bad magic, length or flags)");
        send_reply(c, 0, ODK_E_PROTOCOL, body, NULL, 0);
    } else if (st == ODK_E_AGAIN) {
        /* spurious wake-up */
    } else if (st < 0) {
        conn_close(d, c);
    } else {
        handle(d, c, &m);
    }
    wire_msg_release(&m);
    (void)events;
}

static void on_accept(struct odkd *d, void *ptr, uint32_t events)
{
    int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        c->uid = cred.uid;
        c->pid = cred.pid;
    } else {
        c->uid = (uid_t)-1;
    }
    c->id = ++d->next_conn_id;
    c->fd = fd;
    if (loop_add(d, &c->w, fd, EPOLLIN, on_conn, c) < 0) {
        close(fd);
        free(c);
        return;
    }
    c->next = d->conns;
    d->conns = c;
    (void)ptr;
    (void)events;
}

void server_close_all(struct odkd *d)
{
    while (d->conns) {
        struct conn *c = d->conns;
        d->conns = c->next;
        loop_del(d, &c->w);
        close(c->fd);
        conn_free(c);
    }
    if (d->listen_fd >= 0) {
        loop_del(d, &d->listen_watch);
        close(d->listen_fd);
        d->listen_fd = -1;
    }
}

int server_listen(struct odkd *d)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(d->sock_path) >= sizeof sa.sun_path) {
        odk_error("socket path %s is longer than %zu bytes", d->sock_path, sizeof sa.sun_path - 1);
        return ODK_E_LIMIT;
    }
    strcpy(sa.sun_path, d->sock_path);
    unlink(d->sock_path);
    d->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (d->listen_fd < 0 || bind(d->listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(d->listen_fd, 64) < 0) {
        odk_error("cannot listen on %s: %m", d->sock_path);
        return ODK_E_IO;
    }
    chmod(d->sock_path, 0666); /* access is decided per operation */
    return loop_add(d, &d->listen_watch, d->listen_fd, EPOLLIN, on_accept, NULL);
}
