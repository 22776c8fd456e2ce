/* SPDX-License-Identifier: MIT */
/* Synchronous calls: a call goes through the mailbox when the connection
 * has one and the call fits it both ways, otherwise over the socket; the
 * reply is the driver host's writing and is checked before it is trusted. */
#include <string.h>

#include "client/client_internal.h"
#include "common/fastcall.h"
#include "common/wire.h"
#include "odk/client.h"
#include "odk/driver.h"

size_t call_layout(struct wire_call *c, uint32_t selector, uint32_t n_in, uint32_t n_mem,
                   size_t struct_in_len, uint32_t n_out, size_t struct_out)
{
    *c = (struct wire_call){.selector = selector,
                            .scalar_in_count = n_in,
                            .scalar_out_max = n_out,
                            .memory_count = n_mem,
                            .struct_in_len = struct_in_len,
                            .struct_out_max = struct_out};
    return sizeof *c + (size_t)n_in * 8 + (size_t)n_mem * sizeof(struct wire_memory_ref) +
           struct_in_len;
}

void call_refs_to_wire(const odk_memory_ref *mem, uint32_t n, struct wire_memory_ref *w)
{
    for (uint32_t i = 0; i < n; i++)
        w[i] = (struct wire_memory_ref){.id = mem[i].buffer, .offset = mem[i].offset,
                                        .length = mem[i].length};
}

void call_keep_refusal(odk_connection *conn, const uint8_t *text, uint64_t len)
{
    size_t n = len < CALL_REFUSAL_MAX ? (size_t)len : CALL_REFUSAL_MAX;
    for (size_t i = 0; i < n; i++)
        conn->error[i] = text[i] >= 0x20 && text[i] < 0x7f ? (char)text[i] : '?';
    conn->error[n] = '\0';
}

const char *odk_connection_error(const odk_connection *conn)
{
    return conn && conn->error[0] ? conn->error : NULL;
}

int odk_connection_call_memory(odk_connection *conn, uint32_t selector, const uint64_t *in,
                               uint32_t n_in, const void *struct_in, size_t struct_in_len,
                               const odk_memory_ref *mem, uint32_t n_mem, uint64_t *out,
                               uint32_t *n_out, void *struct_out, size_t *struct_out_len)
{
    if (conn->gone)
        return ODK_E_GONE;
    conn->error[0] = '\0';
    if (n_mem > ODK_MAX_CALL_MEMORY || n_in > ODK_MAX_SCALARS)
        return ODK_E_LIMIT;
    uint32_t out_max = n_out ? *n_out : 0;
    size_t sout_max = struct_out_len ? *struct_out_len : 0;
    if (n_out)
        *n_out = 0;
    if (struct_out_len)
        *struct_out_len = 0;
    struct wire_call c;
    size_t len = call_layout(&c, selector, n_in, n_mem, struct_in_len, out_max, sout_max);
    struct wire_memory_ref refs[ODK_MAX_CALL_MEMORY];
    call_refs_to_wire(mem, n_mem, refs);
    if (conn->fc && len <= FASTCALL_AREA &&
        sizeof(struct fastcall_reply_hdr) + (uint64_t)out_max * 8 + sout_max <= FASTCALL_AREA)
        return mailbox_call(conn, &c, in, refs, struct_in, out, n_out, struct_out,
                            struct_out_len);

    uint32_t seq = ++conn->seq;
    /* Scalars and refs are small: one contiguous head, then the structure. */
    uint8_t head[sizeof c + ODK_MAX_SCALARS * 8 + ODK_MAX_CALL_MEMORY * sizeof(struct wire_memory_ref)];
    memcpy(head, &c, sizeof c);
    if (n_in)
        memcpy(head + sizeof c, in, (size_t)n_in * 8);
    if (n_mem)
        memcpy(head + sizeof c + (size_t)n_in * 8, refs, (size_t)n_mem * sizeof *refs);
    size_t head_len = sizeof c + (size_t)n_in * 8 + (size_t)n_mem * sizeof *refs;
    int st = connection_wait_writable(conn);
    if (st < 0)
        return st;
    st = wire_sendv(conn->fd, WIRE_CALL, seq, 0, head, head_len, struct_in, struct_in_len,
                        NULL, 0, NULL, 0);
    if (st == ODK_E_DISCONNECTED) {
        conn->gone = true;
        return ODK_E_GONE;
    }
    if (st == ODK_OK)
        st = connection_wait_reply(conn, WIRE_CALL_REPLY, seq);
    if (st < 0)
        return st;
    wire_msg *m = &conn->msg;
    struct wire_call_reply r;
    if (m->hdr.status < 0) {
        if (m->body_len > sizeof r) {
            memcpy(&r, m->body, sizeof r);
            if (r.scalar_out_count == 0 && r.struct_out_len == m->body_len - sizeof r)
                call_keep_refusal(conn, m->body + sizeof r, r.struct_out_len);
        }
        return m->hdr.status;
    }
    if (m->body_len < sizeof r)
        return ODK_E_PROTOCOL;
    memcpy(&r, m->body, sizeof r);
    uint64_t want = sizeof r + (uint64_t)r.scalar_out_count * 8 + r.struct_out_len;
    if (want != m->body_len || r.scalar_out_count > out_max || r.struct_out_len > sout_max)
        return ODK_E_PROTOCOL;
    if (n_out) {
        if (r.scalar_out_count)
            memcpy(out, m->body + sizeof r, (size_t)r.scalar_out_count * 8);
        *n_out = r.scalar_out_count;
    }
    if (struct_out_len) {
        if (r.struct_out_len)
            memcpy(struct_out, m->body + sizeof r + (size_t)r.scalar_out_count * 8,
                   r.struct_out_len);
        *struct_out_len = r.struct_out_len;
    }
    return ODK_OK;
}

int odk_connection_call(odk_connection *conn, uint32_t selector, const uint64_t *in,
                        uint32_t n_in, const void *struct_in, size_t struct_in_len,
                        uint64_t *out, uint32_t *n_out, void *struct_out, size_t *struct_out_len)
{
    return odk_connection_call_memory(conn, selector, in, n_in, struct_in, struct_in_len, NULL, 0,
                                      out, n_out, struct_out, struct_out_len);
}
