/* SPDX-License-Identifier: MIT */
/* Asynchronous calls: a method flagged ODK_METHOD_ASYNC gets an odk_async
 * and completes it later with odk_async_complete.  Pending calls are
 * listed on their client so that, when the app goes away, each is
 * cancelled and the driver told. */
#include <stdlib.h>
#include <string.h>

#include "common/fastcall.h"
#include "runtime/runtime_internal.h"
#include "runtime/user_client_internal.h"

struct odk_async {
    odk_user_client *uc; /* NULL once the client is gone */
    enum reply_via via;
    uint32_t seq;
    uint32_t selector;
    uint32_t scalar_out_cap;
    uint32_t scalar_room; /* the app's scalar room: where the mailbox reply's structure starts */
    uint64_t struct_out_cap;
    bool cancelled;
    void (*cancel_fn)(void *ctx, odk_async *a);
    void *cancel_ctx;
    odk_async *prev, *next; /* in uc's pending list */
};

odk_async *async_start(odk_user_client *uc, enum reply_via via, uint32_t seq, uint32_t selector,
                       uint32_t scalar_out_cap, uint32_t scalar_room, uint64_t struct_out_cap)
{
    odk_async *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    *a = (odk_async){.uc = uc, .via = via, .seq = seq, .selector = selector,
                     .scalar_out_cap = scalar_out_cap, .scalar_room = scalar_room,
                     .struct_out_cap = struct_out_cap};
    a->next = uc->pending;
    if (uc->pending)
        uc->pending->prev = a;
    uc->pending = a;
    if (via == VIA_MAILBOX)
        uc->fc_busy = true;
    return a;
}

static void async_unlink(odk_async *a)
{
    odk_user_client *uc = a->uc;
    if (!uc)
        return;
    if (a->prev)
        a->prev->next = a->next;
    else
        uc->pending = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;
}

int odk_async_complete(odk_async *a, int status, const uint64_t *scalars, uint32_t n_scalars,
                       const void *data, size_t len)
{
    if (!a)
        return ODK_E_INVALID;
    odk_user_client *uc = a->uc;
    int st = ODK_OK;
    if (!uc || a->cancelled || uc->closing) {
        st = ODK_E_CANCELLED;
    } else if (n_scalars > a->scalar_out_cap || len > a->struct_out_cap) {
        odk_error("async selector %u completed with %u scalars / %zu bytes, more than the %u / "
                  "%llu the app has room for",
                  a->selector, n_scalars, len, a->scalar_out_cap,
                  (unsigned long long)a->struct_out_cap);
        call_reply_status(uc, a->via, a->seq, ODK_E_DRIVER);
        st = ODK_E_INVALID;
    } else if (status > 0 || status < 0) {
        call_reply_status(uc, a->via, a->seq, status > 0 ? ODK_E_DRIVER : status);
    } else if (a->via == VIA_MAILBOX) {
        uint8_t *rep = uc->fc->rep + sizeof(struct fastcall_reply_hdr);
        if (n_scalars)
            memcpy(rep, scalars, (size_t)n_scalars * 8);
        if (len)
            memcpy(rep + (size_t)a->scalar_room * 8, data, len);
        call_reply_outputs(uc, VIA_MAILBOX, a->seq, NULL, n_scalars, NULL, len);
    } else {
        call_reply_outputs(uc, VIA_SOCKET, a->seq, scalars, n_scalars, data, len);
    }
    async_unlink(a);
    free(a);
    return st;
}

bool odk_async_cancelled(const odk_async *a)
{
    return !a || a->cancelled;
}

void odk_async_set_cancel_handler(odk_async *a, void (*fn)(void *ctx, odk_async *a), void *ctx)
{
    if (!a)
        return;
    a->cancel_fn = fn;
    a->cancel_ctx = ctx;
}

uint32_t odk_async_selector(const odk_async *a)
{
    return a ? a->selector : 0;
}

void async_cancel_all(odk_user_client *uc)
{
    while (uc->pending) {
        odk_async *a = uc->pending;
        uc->pending = a->next;
        a->prev = a->next = NULL;
        a->cancelled = true;
        a->uc = NULL;
        if (a->cancel_fn)
            a->cancel_fn(a->cancel_ctx, a);
    }
}
