/* SPDX-License-Identifier: MIT */
/* Buffers an app shares with the driver (odk_connection_register_buffer):
 * memfds mapped into the host under the app's id, so that a call's memory
 * ranges name them.  At most ODK_MAX_CLIENT_BUFFERS per client. */
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"
#include "runtime/runtime_internal.h"
#include "runtime/user_client_internal.h"

struct client_buffer {
    uint32_t id;
    odk_memory *mem;
};

odk_memory *client_buffer_find(odk_user_client *uc, uint32_t id)
{
    for (size_t i = 0; i < uc->n_buffers; i++)
        if (uc->buffers[i].id == id)
            return uc->buffers[i].mem;
    return NULL;
}

int client_buffer_map(odk_user_client *uc, wire_msg *m)
{
    struct wire_buffer b;
    if (m->body_len != sizeof b)
        return ODK_E_PROTOCOL;
    memcpy(&b, m->body, sizeof b);
    if (client_buffer_find(uc, b.id))
        return ODK_E_EXISTS;
    if (uc->n_buffers == ODK_MAX_CLIENT_BUFFERS) {
        odk_warn("user client of pid %d: more than ODK_MAX_CLIENT_BUFFERS (%u) buffers",
                 (int)uc->pid, ODK_MAX_CLIENT_BUFFERS);
        return ODK_E_LIMIT;
    }
    odk_memory *mem;
    int st = odk_memory_from_fd(wire_msg_take_fd(m, 0), b.length, b.direction, &mem);
    if (st < 0)
        return st;
    struct client_buffer *nb = realloc(uc->buffers, (uc->n_buffers + 1) * sizeof *nb);
    if (!nb) {
        odk_release(mem);
        return ODK_E_NOMEM;
    }
    uc->buffers = nb;
    uc->buffers[uc->n_buffers++] = (struct client_buffer){b.id, mem};
    return ODK_OK;
}

int client_buffer_unmap(odk_user_client *uc, wire_msg *m)
{
    struct wire_buffer b;
    if (m->body_len != sizeof b)
        return ODK_E_PROTOCOL;
    memcpy(&b, m->body, sizeof b);
    for (size_t i = 0; i < uc->n_buffers; i++) {
        if (uc->buffers[i].id == b.id) {
            odk_release(uc->buffers[i].mem);
            uc->buffers[i] = uc->buffers[--uc->n_buffers];
            return ODK_OK;
        }
    }
    return ODK_E_NOT_FOUND;
}

void client_buffer_free_all(odk_user_client *uc)
{
    for (size_t i = 0; i < uc->n_buffers; i++)
        odk_release(uc->buffers[i].mem);
    free(uc->buffers);
}
