/* SPDX-License-Identifier: MIT */
/* Asynchronous calls: sent without waiting (many may be in flight), each
 * remembered until its completion arrives on the channel, which
 * odk_connection_dispatch (or any wait on the channel) delivers. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "common/wire.h"
#include "odk/client.h"
#include "odk/driver.h"

void call_async_complete(odk_connection *conn, wire_msg *m)
{
    struct pending_call **pp = &conn->pending;
    while (*pp && (*pp)->seq != m->hdr.seq)
        pp = &(*pp)->next;
    struct pending_call *p = *pp;
    if (!p)
        return; /* not ours: a late reply to something abandoned */
    *pp = p->next;
    conn->n_pending--;
    int st = m->hdr.status;
    struct wire_call_reply r = {0};
    const uint8_t *body = m->body;
    conn->error[0] = '\0';
    if (st < 0 && m->body_len > sizeof r) {
        memcpy(&r, body, sizeof r);
        if (r.scalar_out_count == 0 && r.struct_out_len == m->body_len - sizeof r)
            call_keep_refusal(conn, body + sizeof r, r.struct_out_len);
        r = (struct wire_call_reply){0};
    }
    if (st == ODK_OK) {
        if (m->body_len < sizeof r)
            st = ODK_E_PROTOCOL;
        else
            memcpy(&r, body, sizeof r);
        if (st == ODK_OK && (sizeof r + (uint64_t)r.scalar_out_count * 8 + r.struct_out_len !=
                                 m->body_len ||
                             r.scalar_out_count > p->n_out_max ||
                             r.struct_out_len > p->struct_out_max))
            st = ODK_E_PROTOCOL;
    }
    uint64_t scalars[ODK_MAX_SCALARS];
    if (st == ODK_OK)
        memcpy(scalars, body + sizeof r, (size_t)r.scalar_out_count * 8);
    if (st == ODK_OK)
        p->fn(p->ctx, st, scalars, r.scalar_out_count,
              body + sizeof r + (size_t)r.scalar_out_count * 8, r.struct_out_len);
    else
        p->fn(p->ctx, st, NULL, 0, NULL, 0);
    free(p);
}

int odk_connection_call_async(odk_connection *conn, uint32_t selector, const uint64_t *in,
                              uint32_t n_in, const void *struct_in, size_t struct_in_len,
                              const odk_memory_ref *mem, uint32_t n_mem, uint32_t n_out_max,
                              size_t struct_out_max, odk_async_fn fn, void *ctx)
{
    if (!conn || !fn)
        return ODK_E_INVALID;
    if (conn->gone)
        return ODK_E_GONE;
    if (n_mem > ODK_MAX_CALL_MEMORY || n_in > ODK_MAX_SCALARS || n_out_max > ODK_MAX_SCALARS)
        return ODK_E_LIMIT;
    struct pending_call *p = calloc(1, sizeof *p);
    if (!p)
        return ODK_E_NOMEM;
    struct wire_call c;
    call_layout(&c, selector, n_in, n_mem, struct_in_len, n_out_max, struct_out_max);
    struct wire_memory_ref refs[ODK_MAX_CALL_MEMORY];
    call_refs_to_wire(mem, n_mem, refs);
    uint8_t head[sizeof c + ODK_MAX_SCALARS * 8];
    memcpy(head, &c, sizeof c);
    if (n_in)
        memcpy(head + sizeof c, in, (size_t)n_in * 8);
    *p = (struct pending_call){.seq = ++conn->seq, .fn = fn, .ctx = ctx, .n_out_max = n_out_max,
                               .struct_out_max = struct_out_max};
    int st = connection_wait_writable(conn);
    if (st == ODK_OK)
        st = wire_sendv(conn->fd, WIRE_CALL, p->seq, 0, head, sizeof c + (size_t)n_in * 8, refs,
                        (size_t)n_mem * sizeof *refs, struct_in, struct_in_len, NULL, 0);
    if (st < 0) {
        free(p);
        if (st == ODK_E_DISCONNECTED)
            conn->gone = true;
        return st == ODK_E_DISCONNECTED ? ODK_E_GONE : st;
    }
    p->next = conn->pending;
    conn->pending = p;
    conn->n_pending++;
    return ODK_OK;
}

int odk_connection_dispatch(odk_connection *conn, int timeout_ms)
{
    int delivered = 0;
    for (;;) {
        struct pollfd p = {.fd = conn->fd, .events = POLLIN};
        int n = poll(&p, 1, delivered ? 0 : timeout_ms);
        if (n < 0 && errno != EINTR)
            return ODK_E_IO;
        if (n <= 0)
            return delivered;
        int st = wire_recv(conn->fd, &conn->msg);
        if (st == ODK_E_DISCONNECTED) {
            conn->gone = true;
            /* Calls the driver can no longer answer fail now. */
            while (conn->pending) {
                struct pending_call *pc = conn->pending;
                conn->pending = pc->next;
                conn->n_pending--;
                pc->fn(pc->ctx, ODK_E_GONE, NULL, 0, NULL, 0);
                free(pc);
                delivered++;
            }
            return delivered ? delivered : ODK_E_GONE;
        }
        if (st < 0)
            return st;
        if (conn->msg.hdr.type == WIRE_CALL_REPLY) {
            call_async_complete(conn, &conn->msg);
            delivered++;
        }
    }
}
