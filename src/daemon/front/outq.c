/* SPDX-License-Identifier: MIT */
/* A client connection's outgoing queue (outq.h says what and why). */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/wire.h"
#include "daemon/front/outq.h"
#include "odk/status.h"

struct outq_item {
    struct outq_item *prev, *next;
    uint16_t type;
    uint32_t seq;
    int32_t status;
    void *body; /* encoded, malloc'd */
    size_t len;
    int fd; /* owned, or -1 */
    bool keyed;
    struct outq_key key;
};

static size_t item_bytes(const struct outq_item *it)
{
    return sizeof *it + it->len;
}

static void item_unlink(struct outq *q, struct outq_item *it)
{
    if (it->prev)
        it->prev->next = it->next;
    else
        q->head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    else
        q->tail = it->prev;
    q->count--;
    q->bytes -= item_bytes(it);
    q->fds -= it->fd >= 0;
}

static void item_free(struct outq_item *it)
{
    if (it->fd >= 0)
        close(it->fd);
    free(it->body);
    free(it);
}

/* The last waiting message of key's watch and node, when it is a property
 * event: a later property event carries all it said.  Anything else of
 * that node (registered, started, terminated) stops the search: what
 * follows it must stay after it. */
static struct outq_item *superseded(struct outq *q, const struct outq_key *key)
{
    for (struct outq_item *it = q->tail; it; it = it->prev)
        if (it->keyed && it->key.node == key->node && it->key.watch == key->watch)
            return it->key.property ? it : NULL;
    return NULL;
}

static int send_item(int sock, const struct outq_item *it)
{
    return wire_send(sock, it->type, it->seq, it->status, it->body, it->len,
                     it->fd >= 0 ? &it->fd : NULL, it->fd >= 0 ? 1 : 0);
}

int outq_send(struct outq *q, int sock, uint16_t type, uint32_t seq, int32_t status,
              const odk_value *body, int fd, const struct outq_key *key)
{
    void *buf = NULL;
    size_t len = 0;
    if (body) {
        int st = odk_value_encode(body, &buf, &len);
        if (st < 0)
            return st;
    }
    if (len > WIRE_MAX_BODY) { /* wire_send's ODK_E_LIMIT: not to be taken for the bound's */
        free(buf);
        return ODK_E_INVALID;
    }
    if (!q->head) {
        /* The common case: one send, as without a queue. */
        int st = wire_send(sock, type, seq, status, buf, len, fd >= 0 ? &fd : NULL, fd >= 0);
        if (st != ODK_E_AGAIN) {
            free(buf);
            return st;
        }
    }
    struct outq_item *old = key && key->property ? superseded(q, key) : NULL;
    if (old) {
        item_unlink(q, old);
        item_free(old);
        q->coalesced++;
    }
    struct outq_item *it = calloc(1, sizeof *it);
    if (!it) {
        free(buf);
        return ODK_E_NOMEM;
    }
    *it = (struct outq_item){.type = type,
                             .seq = seq,
                             .status = status,
                             .body = buf,
                             .len = len,
                             .fd = -1,
                             .keyed = key != NULL};
    if (key)
        it->key = *key;
    if (q->count + 1 > OUTQ_MAX_MSGS || q->bytes + item_bytes(it) > OUTQ_MAX_BYTES ||
        q->fds + (fd >= 0) > OUTQ_MAX_FDS) {
        item_free(it);
        return ODK_E_LIMIT;
    }
    if (fd >= 0 && (it->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        item_free(it);
        return ODK_E_NOMEM;
    }
    it->prev = q->tail;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->count++;
    q->bytes += item_bytes(it);
    q->fds += it->fd >= 0;
    return ODK_E_AGAIN;
}

int outq_flush(struct outq *q, int sock)
{
    while (q->head) {
        /* A SOCK_SEQPACKET send is all or nothing: the head is either
         * gone whole or still waits whole. */
        int st = send_item(sock, q->head);
        if (st < 0)
            return st;
        struct outq_item *it = q->head;
        item_unlink(q, it);
        item_free(it);
    }
    return ODK_OK;
}

void outq_clear(struct outq *q)
{
    while (q->head) {
        struct outq_item *it = q->head;
        item_unlink(q, it);
        item_free(it);
    }
}
