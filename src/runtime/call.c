/* SPDX-License-Identifier: MIT */
/* One call from an app: checked by call_check (against the method table,
 * and every memory range against the app's registered buffers) before
 * driver code runs, then run, and its reply sent over the socket or published in the
 * mailbox.  Asynchronous methods reply later, through async.c. */
#include <stdlib.h>
#include <string.h>

#include "common/fastcall.h"
#include "common/wire.h"
#include "runtime/call_check.h"
#include "runtime/runtime_internal.h"
#include "runtime/user_client_internal.h"

int call_reply_status(odk_user_client *uc, enum reply_via via, uint32_t seq, int status)
{
    if (via == VIA_MAILBOX) {
        mailbox_reply_status(uc, seq, status);
        return ODK_OK;
    }
    struct wire_call_reply r = {0};
    return channel_send(uc, WIRE_CALL_REPLY, seq, status, &r, sizeof r, NULL, 0, NULL, 0, -1);
}

int call_reply_refused(odk_user_client *uc, enum reply_via via, uint32_t seq, int status,
                       const char *why)
{
    if (via == VIA_MAILBOX) {
        mailbox_reply_refused(uc, seq, status, why);
        return ODK_OK;
    }
    size_t len = strnlen(why, CALL_REFUSAL_MAX);
    struct wire_call_reply r = {.struct_out_len = len};
    return channel_send(uc, WIRE_CALL_REPLY, seq, status, &r, sizeof r, why, len, NULL, 0, -1);
}

int call_reply_outputs(odk_user_client *uc, enum reply_via via, uint32_t seq,
                       const uint64_t *scalars, uint32_t n, const void *data, size_t len)
{
    if (via == VIA_MAILBOX) {
        mailbox_reply(uc, seq, n, len);
        return ODK_OK;
    }
    struct wire_call_reply r = {.scalar_out_count = n, .struct_out_len = len};
    return channel_send(uc, WIRE_CALL_REPLY, seq, ODK_OK, &r, sizeof r, scalars, (size_t)n * 8,
                        data, len, -1);
}

/* The per-connection output buffer.  New memory is zeroed once, so a
 * driver that reports more bytes than it wrote can only ever show this
 * same app its own earlier replies, never another app's data; reused
 * memory is not zeroed again (that would cost a memset of the app's whole
 * offered room on every call). */
static void *out_buffer(odk_user_client *uc, size_t len)
{
    if (len <= uc->out_cap)
        return uc->out_buf;
    void *p = calloc(1, len);
    if (!p)
        return NULL;
    free(uc->out_buf);
    uc->out_buf = p;
    uc->out_cap = len;
    return p;
}

/* call_check's way to the connection's registered buffers. */
static odk_memory *find_buffer(void *ctx, uint32_t id, uint64_t *len)
{
    odk_memory *m = client_buffer_find(ctx, id);
    if (m)
        *len = odk_memory_length(m);
    return m;
}

int call_serve(odk_user_client *uc, enum reply_via via, uint32_t seq, const uint8_t *body,
               size_t body_len)
{
    struct call_view v;
    char why[200];
    int st = call_check(via == VIA_MAILBOX ? CALL_MAILBOX : CALL_SOCKET, body, body_len,
                        uc->handler.methods, uc->handler.n_methods, find_buffer, uc, &v, why,
                        sizeof why);
    if (st < 0) {
        odk_warn("user client of pid %d: %s: %s", (int)uc->pid, odk_status_name(st), why);
        return call_reply_refused(uc, via, seq, st, why);
    }
    const odk_method *meth = v.method;
    size_t rep_hdr = sizeof(struct fastcall_reply_hdr);

    uint64_t stack_scalars[ODK_MAX_SCALARS];
    uint64_t *scalars_out = stack_scalars;
    odk_call call = {
        .selector = v.hdr.selector,
        .scalar_in = v.scalar_in,
        .scalar_in_count = v.hdr.scalar_in_count,
        .struct_in = v.struct_in,
        .struct_in_len = v.hdr.struct_in_len,
        .scalar_out_count = v.scalar_out_count,
        .struct_out_cap = v.struct_out_cap,
        .struct_out_len = v.struct_out_len,
        .memory = v.memory_count ? v.memory : NULL,
        .memory_count = v.memory_count,
    };
    if (via == VIA_MAILBOX) {
        /* Outputs go straight into shared memory: no copy on the way back. */
        scalars_out = (uint64_t *)(uc->fc->rep + rep_hdr);
        call.struct_out = uc->fc->rep + rep_hdr + (size_t)v.hdr.scalar_out_max * 8;
    } else if (call.struct_out_cap) {
        call.struct_out = out_buffer(uc, call.struct_out_cap);
        if (!call.struct_out)
            return call_reply_status(uc, via, seq, ODK_E_NOMEM);
    }
    call.scalar_out = scalars_out;
    memset(scalars_out, 0, sizeof(uint64_t) * call.scalar_out_count);
    uint32_t scalar_cap = call.scalar_out_count;

    if (meth->flags & ODK_METHOD_ASYNC) {
        odk_async *a = async_start(uc, via, seq, v.hdr.selector, scalar_cap, v.hdr.scalar_out_max,
                                   call.struct_out_cap);
        if (!a)
            return call_reply_status(uc, via, seq, ODK_E_NOMEM);
        call.async = a;
        st = meth->fn(uc->drv, uc, &call);
        if (st != ODK_OK)
            odk_async_complete(a, st, NULL, 0, NULL, 0);
        return ODK_OK;
    }

    st = meth->fn(uc->drv, uc, &call);
    if (call.struct_out_len > call.struct_out_cap || call.scalar_out_count > scalar_cap) {
        odk_error("selector %u returned %zu bytes / %u scalars, more than the %zu / %u allowed",
                  v.hdr.selector, call.struct_out_len, call.scalar_out_count, call.struct_out_cap,
                  scalar_cap);
        return call_reply_status(uc, via, seq, ODK_E_DRIVER);
    }
    if (st > 0)
        st = ODK_E_DRIVER; /* statuses are 0 or negative */
    if (st < 0)
        return call_reply_status(uc, via, seq, st);
    return call_reply_outputs(uc, via, seq, scalars_out, call.scalar_out_count, call.struct_out,
                              call.struct_out_len);
}
