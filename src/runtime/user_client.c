/* User clients inside the host: one channel per app connection, served on
 * the driver's default queue.  Every call is checked against the method
 * table before driver code runs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/wire.h"
#include "runtime/user_client_internal.h"

struct odk_user_client {
    odk_driver *drv;
    int fd;
    odk_fd_source *src;
    uint64_t node_id;
    uint32_t type, uid;
    int32_t pid;
    odk_node_handler handler; /* methods and hooks for this node */
    void *ctx;
    wire_msg msg;
    uint8_t *out_buf; /* reused output structure buffer */
    size_t out_cap;
    struct odk_user_client *next;
    bool closing;
};

void *odk_user_client_ctx(const odk_user_client *uc)
{
    return uc->ctx;
}

void odk_user_client_set_ctx(odk_user_client *uc, void *ctx)
{
    uc->ctx = ctx;
}

uint64_t odk_user_client_node_id(const odk_user_client *uc)
{
    return uc->node_id;
}

uint32_t odk_user_client_uid(const odk_user_client *uc)
{
    return uc->uid;
}

int32_t odk_user_client_pid(const odk_user_client *uc)
{
    return uc->pid;
}

/* The class's own hooks, adapted to the handler shape. */
static int class_open(void *ctx, odk_user_client *uc, uint32_t type)
{
    odk_driver *d = ctx;
    return d->cls->client_open ? d->cls->client_open(d, uc, type) : ODK_OK;
}

static void class_close(void *ctx, odk_user_client *uc)
{
    odk_driver *d = ctx;
    if (d->cls->client_close)
        d->cls->client_close(d, uc);
}

static void client_free(void *arg)
{
    odk_user_client *uc = arg;
    wire_msg_release(&uc->msg);
    free(uc->out_buf);
    free(uc);
}

/* Unlinks, runs the close hook, closes the channel; the memory goes once
 * the fd source can no longer call us. */
static void client_close(odk_user_client *uc)
{
    if (uc->closing)
        return;
    uc->closing = true;
    for (odk_user_client **p = &uc->drv->clients; *p; p = &(*p)->next) {
        if (*p == uc) {
            *p = uc->next;
            break;
        }
    }
    if (uc->handler.close)
        uc->handler.close(uc->handler.ctx, uc);
    close(uc->fd);
    uc->fd = -1;
    if (uc->src) {
        odk_fd_source_cancel(uc->src, client_free, uc);
        odk_release(uc->src);
    } else {
        client_free(uc);
    }
}

void odk_user_client_close_all(odk_driver *drv)
{
    while (drv->clients)
        client_close(drv->clients);
}

static int reply_status(odk_user_client *uc, uint32_t seq, int status)
{
    struct wire_call_reply r = {0};
    return wire_send(uc->fd, WIRE_CALL_REPLY, seq, status, &r, sizeof r, NULL, 0);
}

static void *out_buffer(odk_user_client *uc, size_t len)
{
    if (len <= uc->out_cap)
        return uc->out_buf;
    void *p = realloc(uc->out_buf, len);
    if (!p)
        return NULL;
    uc->out_buf = p;
    uc->out_cap = len;
    return p;
}

static int serve_call(odk_user_client *uc, const wire_msg *m)
{
    uint32_t seq = m->hdr.seq;
    struct wire_call c;
    if (m->body_len < sizeof c)
        return reply_status(uc, seq, ODK_E_PROTOCOL);
    memcpy(&c, m->body, sizeof c);
    char why[200];
    int st = odk_method_check(uc->handler.methods, uc->handler.n_methods, c.selector,
                              c.scalar_in_count, c.struct_in_len, c.scalar_out_max,
                              c.struct_out_max, why, sizeof why);
    if (st == ODK_OK) {
        uint64_t want = sizeof c + (uint64_t)c.scalar_in_count * 8 + c.struct_in_len;
        if (want != m->body_len) {
            snprintf(why, sizeof why, "call body is %zu bytes, its header describes %llu",
                     m->body_len, (unsigned long long)want);
            st = ODK_E_PROTOCOL;
        }
    }
    if (st < 0) {
        odk_warn("user client of pid %d: %s: %s", (int)uc->pid, odk_status_name(st), why);
        return reply_status(uc, seq, st);
    }

    const odk_method *meth = &uc->handler.methods[c.selector];
    uint64_t scalars_out[ODK_MAX_SCALARS];
    odk_call call = {
        .selector = c.selector,
        .scalar_in = (const uint64_t *)(m->body + sizeof c),
        .scalar_in_count = c.scalar_in_count,
        .struct_in = m->body + sizeof c + (size_t)c.scalar_in_count * 8,
        .struct_in_len = c.struct_in_len,
        .scalar_out = scalars_out,
        .scalar_out_count = meth->scalar_out == ODK_VARIABLE ? c.scalar_out_max : meth->scalar_out,
        .struct_out_cap =
            meth->struct_out == ODK_VARIABLE_SIZE ? c.struct_out_max : meth->struct_out,
    };
    call.struct_out_len = meth->struct_out == ODK_VARIABLE_SIZE ? 0 : meth->struct_out;
    if (c.struct_in_len == 0)
        call.struct_in = NULL;
    if (call.struct_out_cap) {
        call.struct_out = out_buffer(uc, call.struct_out_cap);
        if (!call.struct_out)
            return reply_status(uc, seq, ODK_E_NOMEM);
        memset(call.struct_out, 0, call.struct_out_cap);
    }
    memset(scalars_out, 0, sizeof(uint64_t) * call.scalar_out_count);
    uint32_t scalar_cap = call.scalar_out_count;

    st = meth->fn(uc->drv, uc, &call);

    if (call.struct_out_len > call.struct_out_cap || call.scalar_out_count > scalar_cap) {
        odk_error("selector %u returned %zu bytes / %u scalars, more than the %zu / %u allowed",
                  c.selector, call.struct_out_len, call.scalar_out_count, call.struct_out_cap,
                  scalar_cap);
        return reply_status(uc, seq, ODK_E_DRIVER);
    }
    if (st > 0)
        st = ODK_E_DRIVER; /* statuses are 0 or negative */
    if (st < 0)
        return reply_status(uc, seq, st);
    struct wire_call_reply r = {.scalar_out_count = call.scalar_out_count,
                                .struct_out_len = call.struct_out_len};
    return wire_sendv(uc->fd, WIRE_CALL_REPLY, seq, ODK_OK, &r, sizeof r, scalars_out,
                      (size_t)call.scalar_out_count * 8, call.struct_out, call.struct_out_len,
                      NULL, 0);
}

static void on_readable(void *ctx, uint32_t revents)
{
    odk_user_client *uc = ctx;
    if (uc->closing)
        return;
    int st = wire_recv(uc->fd, &uc->msg);
    if (st == ODK_E_PROTOCOL) {
        odk_warn("user client of pid %d sent a malformed message; ignored", (int)uc->pid);
        return;
    }
    if (st == ODK_E_AGAIN)
        return;
    if (st < 0) {
        client_close(uc);
        return;
    }
    if (uc->msg.hdr.type == WIRE_CALL)
        st = serve_call(uc, &uc->msg);
    else
        st = reply_status(uc, uc->msg.hdr.seq, ODK_E_PROTOCOL);
    if (st == ODK_E_DISCONNECTED)
        client_close(uc);
    (void)revents;
}


static const odk_node_handler *find_handler(odk_driver *d, uint64_t node_id)
{
    for (size_t i = 0; i < d->n_handlers; i++)
        if (d->handlers[i].node_id == node_id)
            return &d->handlers[i];
    return NULL;
}

static void open_on_queue(void *arg)
{
    odk_user_client *uc = arg;
    odk_driver *d = uc->drv;
    const odk_node_handler *h = find_handler(d, uc->node_id);
    if (h) {
        uc->handler = *h;
    } else {
        uc->handler = (odk_node_handler){.node_id = uc->node_id,
                                         .methods = d->cls->methods,
                                         .n_methods = d->cls->n_methods,
                                         .open = class_open,
                                         .close = class_close,
                                         .ctx = d};
    }
    int st = d->stopped ? ODK_E_GONE : ODK_OK;
    if (st == ODK_OK && uc->handler.open)
        st = uc->handler.open(uc->handler.ctx, uc, uc->type);
    if (st == ODK_OK)
        st = odk_fd_source_create(d->queue, uc->fd, EPOLLIN, on_readable, uc, &uc->src);
    /* The app waits for this first message: the open's verdict. */
    wire_send(uc->fd, WIRE_REPLY, 0, st, NULL, 0, NULL, 0);
    if (st < 0) {
        if (st != ODK_E_GONE)
            odk_warn("user client open by pid %d refused: %s", (int)uc->pid, odk_strerror(st));
        uc->handler.close = NULL; /* open failed: no close hook */
        uc->closing = true;
        close(uc->fd);
        client_free(uc);
        return;
    }
    uc->next = d->clients;
    d->clients = uc;
}

int odk_driver_add_client(odk_driver *drv, int fd, uint64_t node_id, uint32_t type, uint32_t uid,
                          int32_t pid)
{
    odk_user_client *uc = calloc(1, sizeof *uc);
    if (!uc) {
        close(fd);
        return ODK_E_NOMEM;
    }
    uc->drv = drv;
    uc->fd = fd;
    uc->node_id = node_id;
    uc->type = type;
    uc->uid = uid;
    uc->pid = pid;
    wire_msg_init(&uc->msg);
    int st = odk_queue_dispatch_async(drv->queue, open_on_queue, uc);
    if (st < 0) {
        wire_send(fd, WIRE_REPLY, 0, ODK_E_GONE, NULL, 0, NULL, 0);
        close(fd);
        free(uc);
    }
    return st;
}
