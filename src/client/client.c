/* SPDX-License-Identifier: MIT */
/* libodk: the app side.  This file is the connection to odkd: requests,
 * finding and watching services, and the events watches deliver.  The
 * connections to drivers (user clients) are in connection.c and its
 * neighbours (client_internal.h lists them). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/defaults.h"
#include "client/client_internal.h"
#include "common/wire.h"
#include "odk/client.h"



struct pending_event {
    odk_value *ev;
    struct pending_event *next;
};

struct client_watch {
    uint32_t id;
    odk_watch_fn fn;
    void *ctx;
    struct client_watch *next;
};

struct odk_client {
    int fd;
    uint32_t seq;
    wire_msg msg;
    struct pending_event *events, **events_tail;
    struct client_watch *watches;
    char *error; /* odkd's sentence for the last failed request */
};

int odk_client_open(const char *state_dir, odk_client **out)
{
    if (!out)
        return ODK_E_INVALID;
    *out = NULL;
    if (!state_dir)
        state_dir = getenv("ODK_STATE_DIR");
    if (!state_dir)
        state_dir = ODK_DEFAULT_RUN_DIR;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/odkd.sock", state_dir) >=
        sizeof sa.sun_path)
        return ODK_E_LIMIT;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ODK_E_IO;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        return e == ENOENT || e == ECONNREFUSED ? ODK_E_NOT_FOUND : ODK_E_IO;
    }
    odk_client *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return ODK_E_NOMEM;
    }
    c->fd = fd;
    c->events_tail = &c->events;
    wire_msg_init(&c->msg);
    *out = c;
    return ODK_OK;
}

void odk_client_close(odk_client *c)
{
    if (!c)
        return;
    close(c->fd);
    wire_msg_release(&c->msg);
    free(c->error);
    while (c->events) {
        struct pending_event *e = c->events;
        c->events = e->next;
        odk_value_free(e->ev);
        free(e);
    }
    while (c->watches) {
        struct client_watch *w = c->watches;
        c->watches = w->next;
        free(w);
    }
    free(c);
}

static void queue_event(odk_client *c, odk_value *ev)
{
    struct pending_event *e = calloc(1, sizeof *e);
    if (!e) {
        odk_value_free(ev);
        return;
    }
    e->ev = ev;
    *c->events_tail = e;
    c->events_tail = &e->next;
}

int odk_client_request(odk_client *c, const char *op, odk_value *args, odk_value **reply)
{
    return client_request_fds(c, op, args, NULL, 0, reply);
}

int client_request_fds(odk_client *c, const char *op, odk_value *args, const int *fds, size_t n_fds,
                       odk_value **reply)
{
    if (reply)
        *reply = NULL;
    free(c->error);
    c->error = NULL;
    if (!args)
        args = odk_value_new_dict();
    if (!args || odk_dict_set_string(args, "op", op) < 0) {
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    uint32_t seq = ++c->seq;
    int st = wire_send_value(c->fd, WIRE_REQUEST, seq, 0, args, fds, n_fds);
    odk_value_free(args);
    if (st < 0)
        return st;
    for (;;) {
        st = wire_recv(c->fd, &c->msg);
        if (st < 0)
            return st;
        odk_value *v = NULL;
        if (wire_msg_value(&c->msg, &v) < 0)
            return ODK_E_PROTOCOL;
        if (c->msg.hdr.type == WIRE_EVENT) {
            queue_event(c, v);
            continue;
        }
        if (c->msg.hdr.type != WIRE_REPLY || c->msg.hdr.seq != seq) {
            odk_value_free(v);
            continue;
        }
        const char *why = odk_dict_get_string(v, "error", NULL);
        if (c->msg.hdr.status < 0 && why)
            c->error = strdup(why); /* NULL when out of memory: no sentence */
        if (reply)
            *reply = v;
        else
            odk_value_free(v);
        return c->msg.hdr.status;
    }
}

const char *odk_client_error(const odk_client *c)
{
    return c ? c->error : NULL;
}

int client_take_reply_fd(odk_client *c)
{
    return wire_msg_take_fd(&c->msg, 0);
}

int odk_find_services(odk_client *c, const odk_value *matching, odk_value **nodes)
{
    if (nodes)
        *nodes = NULL;
    if (!c || !matching || !nodes)
        return ODK_E_INVALID;
    odk_value *args = odk_value_new_dict();
    if (!args || odk_dict_set(args, "matching", odk_value_copy(matching)) < 0) {
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    odk_value *r = NULL;
    int st = odk_client_request(c, "find", args, &r);
    if (st == ODK_OK) {
        const odk_value *n = odk_dict_get(r, "nodes");
        *nodes = n ? odk_value_copy(n) : odk_value_new_array();
        if (!*nodes)
            st = ODK_E_NOMEM;
    }
    odk_value_free(r);
    return st;
}

int odk_watch_services(odk_client *c, const odk_value *matching, odk_watch_fn fn, void *ctx,
                       uint32_t *watch_id)
{
    odk_value *args = odk_value_new_dict();
    if (!args || odk_dict_set(args, "matching", odk_value_copy(matching)) < 0) {
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    odk_value *r = NULL;
    int st = odk_client_request(c, "watch", args, &r);
    if (st < 0) {
        odk_value_free(r);
        return st;
    }
    struct client_watch *w = calloc(1, sizeof *w);
    if (!w) {
        odk_value_free(r);
        return ODK_E_NOMEM;
    }
    w->id = (uint32_t)odk_dict_get_int(r, "watch", 0);
    w->fn = fn;
    w->ctx = ctx;
    w->next = c->watches;
    c->watches = w;
    if (watch_id)
        *watch_id = w->id;
    /* Nodes already registered come first, as events. */
    const odk_value *nodes = odk_dict_get(r, "nodes");
    for (size_t i = 0; nodes && i < odk_array_count(nodes); i++) {
        odk_value *ev = odk_value_new_dict();
        odk_dict_set_string(ev, "event", "registered");
        odk_dict_set_int(ev, "watch", w->id);
        odk_dict_set(ev, "node", odk_value_copy(odk_array_get(nodes, i)));
        queue_event(c, ev);
    }
    odk_value_free(r);
    return ODK_OK;
}

int odk_unwatch_services(odk_client *c, uint32_t watch_id)
{
    for (struct client_watch **p = &c->watches; *p; p = &(*p)->next) {
        if ((*p)->id == watch_id) {
            struct client_watch *w = *p;
            *p = w->next;
            free(w);
            odk_value *args = odk_value_new_dict();
            odk_dict_set_int(args, "watch", watch_id);
            return odk_client_request(c, "unwatch", args, NULL);
        }
    }
    return ODK_E_NOT_FOUND;
}

int odk_client_fd(const odk_client *c)
{
    return c->fd;
}

static void deliver(odk_client *c, odk_value *ev)
{
    uint32_t id = (uint32_t)odk_dict_get_int(ev, "watch", 0);
    for (struct client_watch *w = c->watches; w; w = w->next)
        if (w->id == id)
            w->fn(w->ctx, odk_dict_get_string(ev, "event", ""), odk_dict_get(ev, "node"));
    odk_value_free(ev);
}

int odk_client_dispatch(odk_client *c, int timeout_ms)
{
    int delivered = 0;
    for (;;) {
        while (c->events) {
            struct pending_event *e = c->events;
            c->events = e->next;
            if (!c->events)
                c->events_tail = &c->events;
            deliver(c, e->ev);
            free(e);
            delivered++;
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = poll(&p, 1, delivered ? 0 : timeout_ms);
        if (n <= 0)
            return n < 0 && errno != EINTR ? ODK_E_IO : delivered;
        int st = wire_recv(c->fd, &c->msg);
        if (st < 0)
            return st;
        odk_value *v = NULL;
        if (c->msg.hdr.type == WIRE_EVENT && wire_msg_value(&c->msg, &v) == ODK_OK)
            queue_event(c, v);
    }
}
