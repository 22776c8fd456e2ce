/* SPDX-License-Identifier: MIT */
/* User-client connections: opening one (odkd grants it and passes the
 * channel to the driver host; the driver's open hook has the last word),
 * closing it, and the request/reply plumbing on its channel that calls,
 * buffers and the mailbox share. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "common/fastcall.h"
#include "common/wire.h"
#include "odk/client.h"

/* ---- the channel -------------------------------------------------------- */

/* Receives one message into conn->msg; ODK_E_GONE once the driver is gone. */
static int receive_one(odk_connection *conn)
{
    int st = wire_recv(conn->fd, &conn->msg);
    if (st == ODK_E_DISCONNECTED) {
        conn->gone = true;
        return ODK_E_GONE;
    }
    return st;
}

int connection_wait_reply(odk_connection *conn, uint16_t type, uint32_t seq)
{
    for (;;) {
        int st = receive_one(conn);
        if (st < 0)
            return st;
        if (conn->msg.hdr.type == type && conn->msg.hdr.seq == seq)
            return ODK_OK;
        if (conn->msg.hdr.type == WIRE_CALL_REPLY)
            call_async_complete(conn, &conn->msg);
    }
}

/* The driver stops reading while its replies to us wait, so a sender that
 * never reads would wait forever: completions are delivered meanwhile. */
int connection_wait_writable(odk_connection *conn)
{
    for (;;) {
        struct pollfd p = {.fd = conn->fd, .events = POLLIN | POLLOUT};
        if (poll(&p, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            return ODK_E_IO;
        }
        if (p.revents & POLLOUT)
            return ODK_OK;
        if (p.revents & (POLLHUP | POLLERR) && !(p.revents & POLLIN)) {
            conn->gone = true;
            return ODK_E_GONE;
        }
        int st = receive_one(conn);
        if (st < 0)
            return st;
        if (conn->msg.hdr.type == WIRE_CALL_REPLY)
            call_async_complete(conn, &conn->msg);
    }
}

int connection_request(odk_connection *conn, uint16_t type, const void *body, size_t len,
                       const int *fds, size_t n_fds)
{
    uint32_t seq = ++conn->seq;
    int st = wire_send(conn->fd, type, seq, 0, body, len, fds, n_fds);
    if (st == ODK_OK)
        st = connection_wait_reply(conn, WIRE_REPLY, seq);
    return st == ODK_OK ? conn->msg.hdr.status : st;
}

/* ---- opening and closing ------------------------------------------------ */

int odk_connection_open(odk_client *c, uint64_t node_id, uint32_t type, odk_connection **out)
{
    if (out)
        *out = NULL;
    if (!c || !out)
        return ODK_E_INVALID;
    odk_value *args = odk_value_new_dict();
    if (!args || odk_dict_set_int(args, "node", (int64_t)node_id) < 0 ||
        odk_dict_set_int(args, "type", type) < 0) {
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    /* The call mailbox goes with the open: odkd queues it on the channel
     * before the host hears of the open, and the host answers it in the
     * verdict, so the open is one exchange with the host, not two. */
    struct mailbox_offer offer;
    bool offered = mailbox_prepare(&offer);
    int st = client_request_fds(c, "open", args, offered ? offer.fds : NULL,
                                offered ? offer.n_fds : 0, NULL);
    int fd = st < 0 ? -1 : client_take_reply_fd(c);
    if (st >= 0 && fd < 0)
        st = ODK_E_PROTOCOL;
    odk_connection *conn = st < 0 ? NULL : calloc(1, sizeof *conn);
    if (st >= 0 && !conn)
        st = ODK_E_NOMEM;
    if (st < 0) {
        if (fd >= 0)
            close(fd);
        if (offered)
            mailbox_drop(&offer);
        return st;
    }
    conn->fd = fd;
    conn->wake_fd = -1;
    conn->sync_fd = -1;
    wire_msg_init(&conn->msg);
    /* The driver's verdict on the open is the first message; its body, when
     * the host took up the offer queued with the open, says whether it
     * took the mailbox (struct fastcall_open_verdict). */
    st = wire_recv(fd, &conn->msg);
    if (st == ODK_E_DISCONNECTED)
        st = ODK_E_GONE;
    if (st == ODK_OK)
        st = conn->msg.hdr.type == WIRE_REPLY ? conn->msg.hdr.status : ODK_E_PROTOCOL;
    if (st < 0) {
        if (offered)
            mailbox_drop(&offer);
        odk_connection_close(conn);
        return st;
    }
    struct fastcall_open_verdict v;
    if (!offered) {
        /* no mailbox: calls use the socket */
    } else if (conn->msg.body_len >= sizeof v) {
        memcpy(&v, conn->msg.body, sizeof v);
        if (v.mailbox_status == ODK_OK)
            mailbox_adopt(conn, &offer);
        else
            mailbox_drop(&offer);
    } else {
        mailbox_offer(conn, &offer); /* the offer did not come with the open */
    }
    *out = conn;
    return ODK_OK;
}

void odk_connection_close(odk_connection *conn)
{
    if (!conn)
        return;
    close(conn->fd);
    while (conn->pending) {
        struct pending_call *p = conn->pending;
        conn->pending = p->next;
        p->fn(p->ctx, ODK_E_CANCELLED, NULL, 0, NULL, 0);
        free(p);
    }
    if (conn->fc) {
        mailbox_stats_print(conn);
        mailbox_trace_write(conn);
        munmap(conn->fc, sizeof *conn->fc);
    }
    if (conn->wake_fd >= 0)
        close(conn->wake_fd);
    if (conn->sync_fd >= 0)
        close(conn->sync_fd);
    wire_msg_release(&conn->msg);
    free(conn);
}

int odk_connection_fd(const odk_connection *conn)
{
    return conn->fd;
}

uint32_t odk_connection_pending(const odk_connection *conn)
{
    return conn->n_pending;
}
