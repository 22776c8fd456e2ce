/* SPDX-License-Identifier: MIT */
/* One call from an app: checked against the method table (and every memory
 * range against the app's registered buffers) before driver code runs,
 * then run, and its reply sent over the socket or published in the
 * mailbox.  Asynchronous methods reply later, through async.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fastcall.h"
#include "common/wire.h"
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

int call_serve(odk_user_client *uc, enum reply_via via, uint32_t seq, const uint8_t *body,
               size_t body_len)
{
    struct wire_call c;
    if (body_len < sizeof c)
        return call_reply_status(uc, via, seq, ODK_E_PROTOCOL);
    memcpy(&c, body, sizeof c);
    char why[200];
    int st = odk_method_check(uc->handler.methods, uc->handler.n_methods, c.selector,
                              c.scalar_in_count, c.struct_in_len, c.scalar_out_max,
                              c.struct_out_max, why, sizeof why);
    const odk_method *meth = st == ODK_OK ? &uc->handler.methods[c.selector] : NULL;
    if (st == ODK_OK && c.memory_count > ODK_MAX_CALL_MEMORY) {
        snprintf(why, sizeof why, "selector %u: more than ODK_MAX_CALL_MEMORY (%u) memory ranges",
                 c.selector, ODK_MAX_CALL_MEMORY);
        st = ODK_E_LIMIT;
    } else if (st == ODK_OK && meth->memory != ODK_VARIABLE && meth->memory != c.memory_count) {
        snprintf(why, sizeof why, "selector %u: expected %u memory ranges, got %u", c.selector,
                 meth->memory, c.memory_count);
        st = ODK_E_BAD_ARGUMENTS;
    }
    size_t refs_at = sizeof c + (size_t)c.scalar_in_count * 8;
    size_t struct_at = refs_at + (size_t)c.memory_count * sizeof(struct wire_memory_ref);
    if (st == ODK_OK && (uint64_t)struct_at + c.struct_in_len != body_len) {
        snprintf(why, sizeof why, "call body is %zu bytes, its header describes %llu", body_len,
                 (unsigned long long)(struct_at + c.struct_in_len));
        st = ODK_E_PROTOCOL;
    }
    odk_memory_range ranges[ODK_MAX_CALL_MEMORY];
    for (uint32_t i = 0; st == ODK_OK && i < c.memory_count; i++) {
        struct wire_memory_ref ref;
        memcpy(&ref, body + refs_at + i * sizeof ref, sizeof ref);
        odk_memory *m = client_buffer_find(uc, ref.id);
        uint64_t len = m ? odk_memory_length(m) : 0;
        if (!m) {
            snprintf(why, sizeof why, "memory range %u names buffer %u, which is not registered",
                     i, ref.id);
            st = ODK_E_NOT_FOUND;
        } else if (ref.offset > len || ref.length > len - ref.offset) {
            snprintf(why, sizeof why, "memory range %u [%llu, +%llu) is outside buffer %u (%llu bytes)",
                     i, (unsigned long long)ref.offset, (unsigned long long)ref.length, ref.id,
                     (unsigned long long)len);
            st = ODK_E_INVALID;
        } else {
            ranges[i] = (odk_memory_range){m, ref.offset, ref.length};
        }
    }
    size_t rep_hdr = sizeof(struct fastcall_reply_hdr);
    if (st == ODK_OK && via == VIA_MAILBOX &&
        rep_hdr + (uint64_t)c.scalar_out_max * 8 + c.struct_out_max > FASTCALL_AREA) {
        snprintf(why, sizeof why, "the outputs do not fit the call mailbox");
        st = ODK_E_PROTOCOL;
    }
    if (st < 0) {
        odk_warn("user client of pid %d: %s: %s", (int)uc->pid, odk_status_name(st), why);
        return call_reply_status(uc, via, seq, st);
    }

    uint64_t stack_scalars[ODK_MAX_SCALARS];
    uint64_t *scalars_out = stack_scalars;
    odk_call call = {
        .selector = c.selector,
        .scalar_in = (const uint64_t *)(body + sizeof c),
        .scalar_in_count = c.scalar_in_count,
        .struct_in = c.struct_in_len ? body + struct_at : NULL,
        .struct_in_len = c.struct_in_len,
        .scalar_out_count = meth->scalar_out == ODK_VARIABLE ? c.scalar_out_max : meth->scalar_out,
        .struct_out_cap =
            meth->struct_out == ODK_VARIABLE_SIZE ? c.struct_out_max : meth->struct_out,
        .memory = c.memory_count ? ranges : NULL,
        .memory_count = c.memory_count,
    };
    call.struct_out_len = meth->struct_out == ODK_VARIABLE_SIZE ? 0 : meth->struct_out;
    if (via == VIA_MAILBOX) {
        /* Outputs go straight into shared memory: no copy on the way back. */
        scalars_out = (uint64_t *)(uc->fc->rep + rep_hdr);
        call.struct_out = uc->fc->rep + rep_hdr + (size_t)c.scalar_out_max * 8;
    } else if (call.struct_out_cap) {
        call.struct_out = out_buffer(uc, call.struct_out_cap);
        if (!call.struct_out)
            return call_reply_status(uc, via, seq, ODK_E_NOMEM);
    }
    call.scalar_out = scalars_out;
    memset(scalars_out, 0, sizeof(uint64_t) * call.scalar_out_count);
    uint32_t scalar_cap = call.scalar_out_count;

    if (meth->flags & ODK_METHOD_ASYNC) {
        odk_async *a = async_start(uc, via, seq, c.selector, scalar_cap, c.scalar_out_max,
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
                  c.selector, call.struct_out_len, call.scalar_out_count, call.struct_out_cap,
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
