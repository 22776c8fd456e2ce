/* SPDX-License-Identifier: MIT */
/* The network family's buffer ownership and descriptor records (pool.h). */
#include "families/net/pool.h"

#include <stdlib.h>
#include <string.h>

int net_pool_init(struct net_pool *p, uint32_t count, uint32_t size)
{
    memset(p, 0, sizeof *p);
    if (count == 0)
        return ODK_E_INVALID;
    p->owner = calloc(count, 1);
    p->free = calloc(count, sizeof *p->free);
    if (!p->owner || !p->free) {
        net_pool_fini(p);
        return ODK_E_NOMEM;
    }
    p->count = count;
    p->size = size;
    /* Lowest indices on top, so a quiet interface keeps reusing a few
     * buffers that stay in the cache. */
    for (uint32_t i = 0; i < count; i++)
        p->free[i] = count - 1 - i;
    p->n_free = count;
    return ODK_OK;
}

void net_pool_fini(struct net_pool *p)
{
    free(p->owner);
    free(p->free);
    memset(p, 0, sizeof *p);
}

int net_pool_get(struct net_pool *p, uint32_t *buf)
{
    if (p->n_free == 0)
        return ODK_E_AGAIN;
    *buf = p->free[--p->n_free];
    return ODK_OK;
}

void net_pool_put(struct net_pool *p, uint32_t buf)
{
    p->owner[buf] = NET_FAMILY;
    p->free[p->n_free++] = buf;
}

void net_pool_lend(struct net_pool *p, uint32_t buf, enum net_owner to)
{
    p->owner[buf] = (uint8_t)to;
}

int net_pool_take_back(struct net_pool *p, const odk_net_packet *pkt, enum net_owner as,
                       uint32_t min_len)
{
    if (pkt->buffer >= p->count || p->owner[pkt->buffer] != as)
        return ODK_E_NOT_FOUND;
    p->owner[pkt->buffer] = NET_FAMILY;
    return pkt->length < min_len || pkt->length > p->size ? ODK_E_INVALID : ODK_OK;
}

uint32_t net_ring_size(uint32_t n)
{
    uint64_t bytes = (uint64_t)n * sizeof(odk_net_packet);
    uint32_t size = ODK_RING_MIN_SIZE;
    while (size < bytes)
        size <<= 1;
    return size;
}

int net_ring_push(odk_ring *r, const odk_net_packet *pkt)
{
    struct iovec iov[2];
    int n = odk_ring_reserve(r, sizeof *pkt, iov);
    if (n < 0)
        return n;
    if (n == 0)
        return ODK_E_AGAIN;
    /* Records are 8 bytes in a power-of-two ring, so one never wraps,
     * unless the other side moved the shared head by a non-multiple of 8
     * (fuzz_net found the write past the ring's end that followed). */
    if (n != 1)
        return ODK_E_PROTOCOL;
    memcpy(iov[0].iov_base, pkt, sizeof *pkt);
    return odk_ring_commit(r, sizeof *pkt);
}

int net_ring_pop(odk_ring *r, odk_net_packet *pkt)
{
    struct iovec iov[2];
    int n = odk_ring_peek(r, sizeof *pkt, iov);
    if (n < 0)
        return n;
    if (n == 0)
        return ODK_E_AGAIN;
    if (n != 1) /* only a head the other side moved by a non-multiple of 8 splits a record */
        return ODK_E_PROTOCOL;
    memcpy(pkt, iov[0].iov_base, sizeof *pkt);
    return odk_ring_consume(r, sizeof *pkt);
}
