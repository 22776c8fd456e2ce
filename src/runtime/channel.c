/* SPDX-License-Identifier: MIT */
/* An app's channel, outgoing: sending without blocking.  A reply the
 * socket cannot take yet waits in the client's queue; while anything
 * waits, the client is polled for EPOLLOUT instead of EPOLLIN, so no new
 * request is read (back-pressure) and the driver's queue never blocks on a
 * slow app. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/wire.h"
#include "runtime/runtime_internal.h"
#include "runtime/user_client_internal.h"

/* A reply the socket could not take yet (the app is not reading). */
struct queued_msg {
    uint16_t type;
    uint32_t seq;
    int32_t status;
    uint8_t *body;
    size_t len;
    int fd; /* passed with it, or -1 */
    struct queued_msg *next;
};

static void set_client_events(odk_user_client *uc)
{
    if (uc->src)
        odk_fd_source_set_events(uc->src, uc->outq ? EPOLLOUT : EPOLLIN);
}

static int enqueue(odk_user_client *uc, uint16_t type, uint32_t seq, int32_t status,
                   const void *a, size_t alen, const void *b, size_t blen, const void *c,
                   size_t clen, int fd)
{
    struct queued_msg *q = calloc(1, sizeof *q);
    uint8_t *body = malloc(alen + blen + clen + 1);
    int dupfd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (!q || !body || (fd >= 0 && dupfd < 0)) {
        free(q);
        free(body);
        if (dupfd >= 0)
            close(dupfd);
        return ODK_E_NOMEM;
    }
    if (alen)
        memcpy(body, a, alen);
    if (blen)
        memcpy(body + alen, b, blen);
    if (clen)
        memcpy(body + alen + blen, c, clen);
    *q = (struct queued_msg){type, seq, status, body, alen + blen + clen, dupfd, NULL};
    bool was_empty = !uc->outq;
    *uc->outq_tail = q;
    uc->outq_tail = &q->next;
    if (was_empty)
        set_client_events(uc);
    return ODK_OK;
}

int channel_send(odk_user_client *uc, uint16_t type, uint32_t seq, int32_t status, const void *a,
                 size_t alen, const void *b, size_t blen, const void *c, size_t clen, int fd)
{
    if (uc->fd < 0)
        return ODK_E_DISCONNECTED;
    if (!uc->outq) {
        int st = wire_sendv(uc->fd, type, seq, status, a, alen, b, blen, c, clen,
                            fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
        if (st != ODK_E_AGAIN)
            return st;
    }
    return enqueue(uc, type, seq, status, a, alen, b, blen, c, clen, fd);
}

int channel_send_status(odk_user_client *uc, uint16_t type, uint32_t seq, int status)
{
    return channel_send(uc, type, seq, status, NULL, 0, NULL, 0, NULL, 0, -1);
}

static void free_queued(struct queued_msg *q)
{
    if (q->fd >= 0)
        close(q->fd);
    free(q->body);
    free(q);
}

int channel_flush(odk_user_client *uc)
{
    while (uc->outq) {
        struct queued_msg *q = uc->outq;
        int st = wire_sendv(uc->fd, q->type, q->seq, q->status, q->body, q->len, NULL, 0, NULL, 0,
                            q->fd >= 0 ? &q->fd : NULL, q->fd >= 0 ? 1 : 0);
        if (st == ODK_E_AGAIN)
            return ODK_OK;
        if (st < 0)
            return st;
        uc->outq = q->next;
        free_queued(q);
    }
    uc->outq_tail = &uc->outq;
    set_client_events(uc);
    return ODK_OK;
}

void channel_free_queued(odk_user_client *uc)
{
    while (uc->outq) {
        struct queued_msg *q = uc->outq;
        uc->outq = q->next;
        free_queued(q);
    }
}
