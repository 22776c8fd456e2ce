/* SPDX-License-Identifier: MIT */
/* User clients inside the host: one channel per app connection, served on
 * the driver's default queue.  This file holds the connection object: its
 * accessors, opening it (the driver's open hook decides), reading the
 * channel and handing each message to its handler, and closing it.  The
 * other jobs are in their own files (user_client_internal.h lists them). */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/fastcall.h"
#include "common/wire.h"
#include "runtime/runtime_internal.h"
#include "runtime/user_client_internal.h"

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

/* ---- closing ------------------------------------------------------------ */

static void client_free(void *arg)
{
    odk_user_client *uc = arg;
    channel_free_queued(uc);
    wire_msg_release(&uc->msg);
    client_buffer_free_all(uc);
    if (uc->fc)
        munmap(uc->fc, sizeof *uc->fc);
    if (uc->wake_fd >= 0)
        close(uc->wake_fd);
    if (uc->sync_fd >= 0)
        close(uc->sync_fd);
    free(uc->out_buf);
    free(uc);
}

/* Unlinks, cancels pending calls, runs the close hook, closes the channel;
 * the memory goes once the fd sources can no longer call us. */
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
    async_cancel_all(uc);
    if (uc->handler.close)
        uc->handler.close(uc->handler.ctx, uc);
    close(uc->fd);
    uc->fd = -1;
    mailbox_close(uc);
    if (uc->src) {
        odk_fd_source_cancel(uc->src, client_free, uc);
        odk_release(uc->src);
    } else {
        client_free(uc);
    }
}

void user_client_close_all(odk_driver *drv)
{
    while (drv->clients)
        client_close(drv->clients);
}

void driver_close_node_clients(odk_driver *drv, uint64_t node_id)
{
    for (odk_user_client *uc = drv->clients, *next; uc; uc = next) {
        next = uc->next; /* client_close unlinks uc */
        if (uc->node_id == node_id)
            client_close(uc);
    }
}

/* ---- reading the channel ------------------------------------------------ */

static void handle_message(odk_user_client *uc);

static void on_readable(void *ctx, uint32_t revents)
{
    odk_user_client *uc = ctx;
    if (uc->closing)
        return;
    if (uc->outq) {
        /* Waiting for room: requests stay unread until the replies are out. */
        if (channel_flush(uc) < 0)
            client_close(uc);
        return;
    }
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
    handle_message(uc);
    (void)revents;
}

/* Serves the message in uc->msg. */
static void handle_message(odk_user_client *uc)
{
    int st = ODK_OK;
    wire_msg *m = &uc->msg;
    switch (m->hdr.type) {
    case WIRE_CALL:
        st = call_serve(uc, VIA_SOCKET, m->hdr.seq, m->body, m->body_len);
        break;
    case WIRE_MAP_BUFFER:
        st = channel_send_status(uc, WIRE_REPLY, m->hdr.seq, client_buffer_map(uc, m));
        break;
    case WIRE_UNMAP_BUFFER:
        st = channel_send_status(uc, WIRE_REPLY, m->hdr.seq, client_buffer_unmap(uc, m));
        break;
    case WIRE_FASTPATH:
        st = channel_send_status(uc, WIRE_REPLY, m->hdr.seq, mailbox_take(uc, m));
        break;
    case WIRE_CLIENT_MEMORY:
        client_share_memory(uc, m);
        break;
    case WIRE_CLIENT_DATA_QUEUE:
        client_share_data_queue(uc, m);
        break;
    default:
        st = channel_send_status(uc, WIRE_REPLY, m->hdr.seq, ODK_E_PROTOCOL);
    }
    if (st == ODK_E_DISCONNECTED)
        client_close(uc);
}

/* ---- opening ------------------------------------------------------------ */

static const node_handler *find_handler(odk_driver *d, uint64_t node_id)
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
    const node_handler *h = find_handler(d, uc->node_id);
    if (h) {
        uc->handler = *h;
    } else {
        uc->handler = (node_handler){.node_id = uc->node_id,
                                         .methods = d->cls->methods,
                                         .n_methods = d->cls->n_methods,
                                         .open = class_open,
                                         .close = class_close,
                                         .ctx = d};
    }
    /* odkd queued the app's offer of a call mailbox, if it made one, on
     * the channel before we got it (requests.c, offer_mailbox): read it
     * now, so that the verdict answers it too (one exchange with the app,
     * not two), and so that a refused client's channel is closed with
     * nothing unread: a socket closed with unread data makes the app's
     * read of the verdict fail (ECONNRESET) instead of returning it. */
    fcntl(uc->fd, F_SETFL, O_NONBLOCK); /* odkd's new socket has no other status flag */
    int got = wire_recv(uc->fd, &uc->msg);
    if (got == ODK_E_PROTOCOL)
        odk_warn("user client of pid %d sent a malformed message; ignored", (int)uc->pid);
    bool offered = got == ODK_OK && uc->msg.hdr.type == WIRE_FASTPATH;
    int st = d->stopped ? ODK_E_GONE : ODK_OK;
    if (st == ODK_OK && uc->handler.open)
        st = uc->handler.open(uc->handler.ctx, uc, uc->type);
    if (st < 0) {
        if (st != ODK_E_GONE)
            odk_warn("user client open by pid %d refused: %s", (int)uc->pid, odk_strerror(st));
        /* The app waits for this first message: the open's verdict.  The
         * socket is empty, so this send cannot block.  The offer's fds go
         * with uc->msg. */
        wire_send(uc->fd, WIRE_REPLY, 0, st, NULL, 0, NULL, 0);
        uc->handler.close = NULL; /* open failed: no close hook */
        uc->closing = true;
        close(uc->fd);
        client_free(uc);
        return;
    }
    uc->next = d->clients;
    d->clients = uc;
    /* The verdict, with the mailbox's answer when one was offered. */
    struct fastcall_open_verdict v = {.mailbox_status = ODK_E_UNSUPPORTED};
    if (offered)
        v.mailbox_status = mailbox_take(uc, &uc->msg);
    wire_send(uc->fd, WIRE_REPLY, 0, ODK_OK, offered ? &v : NULL, offered ? sizeof v : 0, NULL, 0);
    st = odk_fd_source_create(d->queue, uc->fd, EPOLLIN, on_readable, uc, &uc->src);
    if (st < 0) {
        odk_warn("user client of pid %d opened but cannot be served: %s", (int)uc->pid,
                 odk_strerror(st));
        client_close(uc); /* opened, then could not be served: the close hook runs */
        return;
    }
    if (got == ODK_OK && !offered)
        handle_message(uc); /* the app did not wait for the verdict */
}

int user_client_accept(odk_driver *drv, int fd, uint64_t node_id, uint32_t type, uint32_t uid,
                          int32_t pid)
{
    odk_user_client *uc = calloc(1, sizeof *uc);
    if (!uc) {
        close(fd);
        return ODK_E_NOMEM;
    }
    uc->drv = drv;
    uc->fd = fd;
    uc->wake_fd = -1;
    uc->sync_fd = -1;
    uc->outq_tail = &uc->outq;
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
