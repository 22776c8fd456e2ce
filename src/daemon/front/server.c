/* SPDX-License-Identifier: MIT */
/* odkd's socket: connections from odkctl and libodk, the dispatch of their
 * requests (requests.c, the watch operations here, and those modules
 * add), and registry events to watchers.  Every message is untrusted; a
 * bad one gets an error reply and the connection (and everyone else's)
 * goes on.  Replies and events that a client's full socket cannot take
 * now wait in its outgoing queue (outq.c); a client too far behind is
 * disconnected, with the reason logged, never silently skipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/trace.h"
#include "daemon/core/match.h"
#include "daemon/core/module.h"
#include "daemon/core/msg.h"
#include "daemon/front/access.h"
#include "daemon/front/outq.h"
#include "daemon/front/requests.h"
#include "daemon/front/server.h"
#include "daemon/odkd.h"
#include "daemon/policy/manager.h"
#include "odk/log.h"
#include "odk/status.h"

#define MAX_WATCHES_PER_CONN 256

struct watch_entry {
    uint32_t id;
    odk_value *matching;
};

struct conn {
    uint64_t id;
    int fd;
    struct watch w;
    struct peer peer; /* read once, at accept */
    struct outq out;  /* what its socket could not take yet; EPOLLOUT while not empty */
    bool closed;      /* by conn_close, perhaps while one of its requests is handled */
    struct watch_entry watches[MAX_WATCHES_PER_CONN];
    size_t n_watches;
    uint32_t next_watch;
    struct conn *next;
};

struct server {
    int listen_fd;
    struct watch listen_watch;
    struct conn *conns;
    uint64_t next_conn_id;
    size_t coalesced_closed; /* by connections since closed (server_backlog) */
};

static void conn_free(void *ptr)
{
    struct conn *c = ptr;
    for (size_t i = 0; i < c->n_watches; i++)
        odk_value_free(c->watches[i].matching);
    outq_clear(&c->out);
    peer_release(&c->peer);
    free(c);
}

static void conn_close(struct odkd *d, struct conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    d->server->coalesced_closed += c->out.coalesced;
    for (struct conn **p = &d->server->conns; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    loop_del(d, &c->w);
    close(c->fd);
    c->fd = -1;
    loop_defer_free(d, conn_free, c);
}

static struct conn *conn_by_id(struct odkd *d, uint64_t id)
{
    for (struct conn *c = d->server ? d->server->conns : NULL; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

const struct peer *server_peer(struct odkd *d, uint64_t conn_id)
{
    struct conn *c = conn_by_id(d, conn_id);
    return c ? &c->peer : NULL;
}

/* Sends a message to c, or queues it behind what already waits (outq.h).
 * A client that does not read must not stall odkd (the socket is
 * non-blocking) nor grow its memory without end: past the queue's bounds
 * it is disconnected, saying so.  False when c was closed (it stays
 * allocated until the loop's batch ends, so its next is still valid). */
static bool conn_send(struct odkd *d, struct conn *c, uint16_t type, uint32_t seq, int32_t status,
                      const odk_value *body, int fd, const struct outq_key *key)
{
    if (c->closed) /* an event of its own request went past the bound */
        return false;
    bool waited = outq_pending(&c->out);
    int st = outq_send(&c->out, c->fd, type, seq, status, body, fd, key);
    if (st == ODK_OK || st == ODK_E_DISCONNECTED) /* a hang-up: on_conn reads it and closes */
        return true;
    if (st == ODK_E_AGAIN) {
        if (waited || loop_mod(d, &c->w, EPOLLIN | EPOLLOUT) == ODK_OK)
            return true;
        odk_error("client pid %d: cannot wait for its socket to drain; disconnected",
                  (int)c->peer.pid);
    } else if (st == ODK_E_LIMIT) {
        odk_warn("client pid %d stopped reading its events: %zu pending (%zu KiB, %zu "
                 "descriptors); disconnected",
                 (int)c->peer.pid, c->out.count, c->out.bytes / 1024, c->out.fds);
    } else {
        odk_error("client pid %d: a %s could not be sent or queued (%s); disconnected",
                  (int)c->peer.pid, type == WIRE_EVENT ? "event" : "reply", odk_strerror(st));
    }
    conn_close(d, c);
    return false;
}

static void send_reply(struct odkd *d, struct conn *c, uint32_t seq, int status, odk_value *body,
                       int fd)
{
    conn_send(d, c, WIRE_REPLY, seq, status, body, fd, NULL);
    odk_value_free(body);
}

/* Writable again: what waited goes out, and EPOLLOUT stops once it is
 * all gone (no wake-up per writable socket otherwise). */
static bool conn_flush(struct odkd *d, struct conn *c)
{
    int st = outq_flush(&c->out, c->fd);
    if (st == ODK_E_AGAIN || (st == ODK_OK && loop_mod(d, &c->w, EPOLLIN) == ODK_OK))
        return true;
    conn_close(d, c);
    return false;
}

void server_reply_later(struct odkd *d, uint64_t conn_id, uint32_t seq, int status,
                        odk_value *body)
{
    struct conn *c = conn_by_id(d, conn_id);
    if (c) {
        trace_mark("odkd client replied");
        send_reply(d, c, seq, status, body, -1);
    } else
        odk_value_free(body);
}

/* ---- watching ----------------------------------------------------------- */

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

static odk_value *event_body(const char *event, uint32_t watch, const odk_value *node)
{
    struct msg m = msg_begin();
    msg_str(&m, "event", event);
    msg_int(&m, "watch", watch);
    msg_copy(&m, "node", node);
    return msg_done(&m);
}

/* A manager event: sent to every watch whose matching dictionary matches. */
static void on_event(struct odkd *d, const char *event, reg_node *node, void *ctx)
{
    (void)ctx;
    if (!d->server)
        return;
    odk_value *desc = NULL;
    bool marked = false;
    bool property = strcmp(event, "property") == 0;
    for (struct conn *c = d->server->conns; c; c = c->next) {
        for (size_t i = 0; i < c->n_watches; i++) {
            if (!app_match(d, c->watches[i].matching, node))
                continue;
            if (!desc && !(desc = registry_node_describe(d->reg, node))) {
                odk_error("out of memory describing node %llu; %s event not sent",
                          (unsigned long long)node->id, event);
                return;
            }
            odk_value *ev = event_body(event, c->watches[i].id, desc);
            if (ev && !marked) /* before the first send (trace.h) */
                trace_mark("odkd event %s node %llu", event, (unsigned long long)node->id);
            marked |= ev != NULL;
            if (!ev) {
                odk_error("out of memory; %s event to pid %d not sent", event, (int)c->peer.pid);
                continue;
            }
            /* A property event carries the node's whole description: one
             * still waiting for this watch and node may give way to it. */
            struct outq_key key = {node->id, c->watches[i].id, property};
            bool open = conn_send(d, c, WIRE_EVENT, 0, 0, ev, -1, &key);
            odk_value_free(ev);
            if (!open)
                break; /* c is closed, its other watches with it */
        }
    }
    odk_value_free(desc);
}

struct find_ctx {
    struct odkd *d;
    const odk_value *matching;
    odk_value *nodes;
    int st;
};

static int find_one(reg_node *n, void *ctx)
{
    struct find_ctx *f = ctx;
    if (n->state == REG_INACTIVE || n->state == REG_TERMINATING ||
        !app_match(f->d, f->matching, n))
        return 0;
    odk_value *desc = registry_node_describe(f->d->reg, n);
    f->st = desc ? odk_array_append(f->nodes, desc) : ODK_E_NOMEM;
    return f->st;
}

static int op_find(struct client_request *r)
{
    const odk_value *m = odk_dict_get(r->args, "matching");
    if (!m || odk_value_type(m) != ODK_TYPE_DICT) {
        snprintf(r->err, sizeof r->err, "'matching' must be a dictionary");
        return ODK_E_INVALID;
    }
    struct find_ctx f = {r->d, m, odk_value_new_array(), ODK_OK};
    if (!f.nodes)
        return ODK_E_NOMEM;
    registry_walk(registry_root(r->d->reg), find_one, &f);
    if (f.st < 0) {
        odk_value_free(f.nodes);
        return f.st;
    }
    struct msg out = msg_begin();
    msg_take(&out, "nodes", f.nodes);
    return msg_finish(&out, &r->out);
}

static int op_watch(struct client_request *r)
{
    struct conn *c = conn_by_id(r->d, r->conn_id);
    if (c->n_watches == MAX_WATCHES_PER_CONN) {
        snprintf(r->err, sizeof r->err, "at most %d watches per connection",
                 MAX_WATCHES_PER_CONN);
        return ODK_E_LIMIT;
    }
    /* The reply lists the services already there; later ones arrive as
     * events. */
    int st = op_find(r);
    odk_value *matching = st == ODK_OK ? odk_value_copy(odk_dict_get(r->args, "matching")) : NULL;
    if (st == ODK_OK && !matching)
        st = ODK_E_NOMEM;
    if (st == ODK_OK)
        st = odk_dict_set_int(r->out, "watch", c->next_watch + 1);
    if (st < 0) {
        odk_value_free(matching);
        return st;
    }
    struct watch_entry *w = &c->watches[c->n_watches++];
    w->id = ++c->next_watch;
    w->matching = matching;
    return ODK_OK;
}

static int op_unwatch(struct client_request *r)
{
    struct conn *c = conn_by_id(r->d, r->conn_id);
    uint32_t id = (uint32_t)odk_dict_get_int(r->args, "watch", 0);
    for (size_t i = 0; i < c->n_watches; i++) {
        if (c->watches[i].id == id) {
            odk_value_free(c->watches[i].matching);
            c->watches[i] = c->watches[--c->n_watches];
            return ODK_OK;
        }
    }
    snprintf(r->err, sizeof r->err, "no watch %u on this connection", id);
    return ODK_E_NOT_FOUND;
}

static const struct client_op watch_ops[] = {
    {"find", op_find, false},
    {"watch", op_watch, false},
    {"unwatch", op_unwatch, false},
    {NULL, NULL, false},
};

/* ---- requests ----------------------------------------------------------- */

static const struct client_op *own_op(const char *name)
{
    const struct client_op *tables[] = {watch_ops, client_requests};
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const struct client_op *op = tables[t]; op->name; op++)
            if (strcmp(op->name, name) == 0)
                return op;
    return NULL;
}

static const struct client_op *find_op(const char *name)
{
    const struct client_op *op = own_op(name);
    return op ? op : module_client_op(name);
}

/* A module operation named like one of odkd's own would never be reached. */
static int check_module_ops(void)
{
    for (size_t i = 0; i < module_count(); i++) {
        const struct odkd_module *m = module_at(i);
        for (const struct client_op *op = m->client_ops; op && op->name; op++) {
            if (own_op(op->name)) {
                odk_error("%s %s: operation '%s' is one of odkd's own", m->kind, m->name,
                          op->name);
                return ODK_E_EXISTS;
            }
        }
    }
    return ODK_OK;
}

static int dispatch(struct client_request *r, const wire_msg *m, odk_value **args)
{
    if (m->hdr.type != WIRE_REQUEST) {
        snprintf(r->err, sizeof r->err, "expected a request, got message type %u", m->hdr.type);
        return ODK_E_PROTOCOL;
    }
    if (wire_msg_value(m, args) < 0) {
        snprintf(r->err, sizeof r->err, "the request body is not a valid encoded dictionary");
        return ODK_E_PROTOCOL;
    }
    r->args = *args;
    const char *name = odk_dict_get_string(r->args, "op", "");
    trace_mark("odkd client %s", name);
    const struct client_op *op = find_op(name);
    if (!op) {
        snprintf(r->err, sizeof r->err, "unknown operation '%s'", name);
        return ODK_E_UNSUPPORTED;
    }
    if (op->needs_privilege && !request_privileged(r)) {
        snprintf(r->err, sizeof r->err,
                 "permission denied: %s needs root or odkd's user (uid %u); you are uid %ld", name,
                 (unsigned)getuid(), r->uid == (uid_t)-1 ? -1L : (long)r->uid);
        return ODK_E_ACCESS;
    }
    return op->fn(r);
}

static odk_value *error_body(const char *text)
{
    struct msg m = msg_begin();
    msg_str(&m, "error", text);
    return msg_done(&m);
}

static void handle(struct odkd *d, struct conn *c, wire_msg *m)
{
    struct client_request r = {.d = d,
                               .conn_id = c->id,
                               .seq = m->hdr.seq,
                               .uid = c->peer.uid,
                               .pid = c->peer.pid,
                               .reply_fd = -1,
                               .msg = m};
    odk_value *args = NULL;
    int st = dispatch(&r, m, &args);
    if (st < 0) {
        odk_value_free(r.out);
        r.out = error_body(r.err[0] ? r.err : odk_strerror(st));
        if (r.reply_fd >= 0)
            close(r.reply_fd);
        r.reply_fd = -1;
        r.later = false;
    }
    if (!r.later) {
        trace_mark("odkd client replied");
        send_reply(d, c, r.seq, st, r.out, r.reply_fd);
    } else
        odk_value_free(r.out);
    if (r.reply_fd >= 0)
        close(r.reply_fd);
    odk_value_free(args);
}

static void on_conn(struct odkd *d, void *ptr, uint32_t events)
{
    struct conn *c = ptr;
    if ((events & EPOLLOUT) && !conn_flush(d, c))
        return;
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    wire_msg m;
    wire_msg_init(&m);
    int st = wire_recv(c->fd, &m);
    if (st == ODK_E_PROTOCOL) {
        odk_warn("pid %d sent a malformed message; answered with an error", (int)c->peer.pid);
        send_reply(d, c, 0, ODK_E_PROTOCOL,
                   error_body("malformed message (bad magic, length or flags)"), -1);
    } else if (st == ODK_E_AGAIN) {
        /* spurious wake-up */
    } else if (st < 0) {
        conn_close(d, c);
    } else {
        handle(d, c, &m);
    }
    wire_msg_release(&m);
}

static void on_accept(struct odkd *d, void *ptr, uint32_t events)
{
    (void)ptr;
    (void)events;
    int fd = accept4(d->server->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    peer_read(fd, &c->peer);
    c->id = ++d->server->next_conn_id;
    c->fd = fd;
    if (loop_add(d, &c->w, fd, EPOLLIN, on_conn, c) < 0) {
        close(fd);
        conn_free(c);
        return;
    }
    c->next = d->server->conns;
    d->server->conns = c;
}

void server_backlog(struct odkd *d, struct server_backlog *out)
{
    *out = (struct server_backlog){0};
    if (!d->server)
        return;
    out->coalesced = d->server->coalesced_closed;
    for (struct conn *c = d->server->conns; c; c = c->next) {
        out->clients++;
        out->waiting += c->out.count;
        out->coalesced += c->out.coalesced;
    }
}

void server_close_all(struct odkd *d)
{
    struct server *s = d->server;
    if (!s)
        return;
    while (s->conns) {
        struct conn *c = s->conns;
        s->conns = c->next;
        loop_del(d, &c->w);
        close(c->fd);
        conn_free(c);
    }
    if (s->listen_fd >= 0) {
        loop_del(d, &s->listen_watch);
        close(s->listen_fd);
        unlink(d->sock_path); /* ours: it was bound by this odkd */
    }
    free(s);
    d->server = NULL;
}

/* A socket left by an odkd that died is removed; a live odkd's socket, or
 * a file that is no socket at all, is left alone and refused. */
static int clear_stale_socket(const char *path, const struct sockaddr_un *sa)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return ODK_OK;
    if (!S_ISSOCK(st.st_mode)) {
        odk_error("%s exists and is not a socket; not replacing it", path);
        return ODK_E_EXISTS;
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    bool live = fd >= 0 && connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0;
    if (fd >= 0)
        close(fd);
    if (live) {
        odk_error("another odkd is listening on %s", path);
        return ODK_E_BUSY;
    }
    unlink(path);
    return ODK_OK;
}

int server_listen(struct odkd *d)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(d->sock_path) >= sizeof sa.sun_path) {
        odk_error("socket path %s is longer than %zu bytes", d->sock_path, sizeof sa.sun_path - 1);
        return ODK_E_LIMIT;
    }
    if (check_module_ops() < 0)
        return ODK_E_EXISTS;
    struct server *s = calloc(1, sizeof *s);
    if (!s || manager_subscribe(d, on_event, NULL) < 0) {
        free(s);
        return ODK_E_NOMEM;
    }
    s->listen_fd = -1;
    s->listen_watch.fd = -1;
    d->server = s;
    strcpy(sa.sun_path, d->sock_path);
    int st = clear_stale_socket(d->sock_path, &sa);
    if (st < 0)
        return st;
    s->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(s->listen_fd, 64) < 0) {
        odk_error("cannot listen on %s: %m", d->sock_path);
        if (s->listen_fd >= 0)
            close(s->listen_fd);
        s->listen_fd = -1;
        return ODK_E_IO;
    }
    /* Anyone may connect: access is decided per operation, from the
     * credentials the kernel reports (front/access.c). */
    chmod(d->sock_path, 0666);
    return loop_add(d, &s->listen_watch, s->listen_fd, EPOLLIN, on_accept, NULL);
}
