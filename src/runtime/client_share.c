/* SPDX-License-Identifier: MIT */
/* What a driver shares out to an app on request: its memory
 * (copy_client_memory, mapped by odk_connection_map_memory) and its data
 * queues (copy_client_data_queue, odk_connection_map_data_queue).  A
 * published node's handler may offer data queues and memory too
 * (node_handler.data_queue, node_handler.memory). */
#include <string.h>

#include "common/wire.h"
#include "runtime/runtime_internal.h"
#include "runtime/user_client_internal.h"

void client_share_memory(odk_user_client *uc, wire_msg *m)
{
    uint32_t type;
    odk_memory *mem = NULL;
    int st = ODK_E_UNSUPPORTED;
    if (m->body_len != sizeof type)
        st = ODK_E_PROTOCOL;
    else if (uc->drv->cls->copy_client_memory && uc->handler.ctx == uc->drv) {
        memcpy(&type, m->body, sizeof type);
        st = uc->drv->cls->copy_client_memory(uc->drv, uc, type, &mem);
        /* A positive status is no success either: the driver broke the
         * hook's contract. */
        if (st > 0 || (st == ODK_OK && !mem))
            st = ODK_E_DRIVER;
    } else if (uc->handler.memory && uc->handler.ctx != uc->drv) {
        memcpy(&type, m->body, sizeof type); /* a published node's (the audio family's) */
        st = uc->handler.memory(uc->handler.ctx, uc, type, &mem);
        if (st > 0 || (st == ODK_OK && !mem))
            st = ODK_E_DRIVER;
    }
    if (st < 0) {
        channel_send_status(uc, WIRE_REPLY, m->hdr.seq, st);
        return;
    }
    struct wire_buffer b = {.id = type, .direction = odk_memory_direction(mem),
                            .length = odk_memory_length(mem)};
    channel_send(uc, WIRE_REPLY, m->hdr.seq, ODK_OK, &b, sizeof b, NULL, 0, NULL, 0,
                 odk_memory_fd(mem));
    odk_release(mem);
}

void client_share_data_queue(odk_user_client *uc, wire_msg *m)
{
    uint32_t type;
    odk_data_queue *q = NULL;
    int st = ODK_E_UNSUPPORTED;
    if (m->body_len != sizeof type)
        st = ODK_E_PROTOCOL;
    else if (uc->drv->cls->copy_client_data_queue && uc->handler.ctx == uc->drv) {
        memcpy(&type, m->body, sizeof type);
        st = uc->drv->cls->copy_client_data_queue(uc->drv, uc, type, &q);
        if (st > 0 || (st == ODK_OK && !q))
            st = ODK_E_DRIVER;
    } else if (uc->handler.data_queue && uc->handler.ctx != uc->drv) {
        memcpy(&type, m->body, sizeof type); /* a published node's (the HID family's streams) */
        st = uc->handler.data_queue(uc->handler.ctx, uc, type, &q);
        if (st > 0 || (st == ODK_OK && !q))
            st = ODK_E_DRIVER;
    }
    int fds[3];
    uint32_t size;
    if (st == ODK_OK && (st = odk_data_queue_export(q, fds, &size)) < 0)
        st = ODK_E_DRIVER; /* never send descriptors the export did not fill */
    if (st < 0) {
        channel_send_status(uc, WIRE_REPLY, m->hdr.seq, st);
        return;
    }
    /* Three descriptors: sent directly (the reply is tiny and the queue of
     * waiting replies carries at most one). */
    if (!uc->outq)
        st = wire_send(uc->fd, WIRE_REPLY, m->hdr.seq, ODK_OK, &size, sizeof size, fds, 3);
    if (uc->outq || st == ODK_E_AGAIN)
        channel_send_status(uc, WIRE_REPLY, m->hdr.seq, ODK_E_BUSY);
}
