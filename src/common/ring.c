/* SPDX-License-Identifier: MIT */
/* SPSC byte rings; see include/odk/ring.h for the contract. */
#include "odk/ring.h"

#include <stdatomic.h>
#include <string.h>

#include "odk/status.h"

struct odk_ring_shared {
    _Alignas(64) _Atomic uint32_t head;
    _Alignas(64) _Atomic uint32_t tail;
    _Alignas(64) uint32_t size;
};

_Static_assert(sizeof(struct odk_ring_shared) <= ODK_RING_HEADER, "ring header too large");

static int valid_size(uint32_t size)
{
    return size >= ODK_RING_MIN_SIZE && size <= ODK_RING_MAX_SIZE && (size & (size - 1)) == 0;
}

size_t odk_ring_bytes(uint32_t size)
{
    return ODK_RING_HEADER + (size_t)size;
}

int odk_ring_format(odk_ring *r, void *mem, size_t mem_len, uint32_t size)
{
    if (!r || !mem || !valid_size(size) || mem_len < odk_ring_bytes(size))
        return ODK_E_INVALID;
    struct odk_ring_shared *sh = mem;
    atomic_store_explicit(&sh->head, 0, memory_order_relaxed);
    atomic_store_explicit(&sh->tail, 0, memory_order_relaxed);
    sh->size = size;
    r->sh = sh;
    r->data = (uint8_t *)mem + ODK_RING_HEADER;
    r->size = size;
    r->head_seen = r->tail_seen = 0;
    atomic_thread_fence(memory_order_release);
    return ODK_OK;
}

int odk_ring_attach(odk_ring *r, void *mem, size_t mem_len)
{
    if (!r || !mem || mem_len < ODK_RING_HEADER)
        return ODK_E_INVALID;
    struct odk_ring_shared *sh = mem;
    uint32_t size = sh->size;
    if (!valid_size(size) || mem_len < odk_ring_bytes(size))
        return ODK_E_PROTOCOL;
    r->sh = sh;
    r->data = (uint8_t *)mem + ODK_RING_HEADER;
    r->size = size;
    r->head_seen = atomic_load_explicit(&sh->head, memory_order_acquire);
    r->tail_seen = atomic_load_explicit(&sh->tail, memory_order_acquire);
    return ODK_OK;
}

/* The fill level, or -1 when the indices cannot be right. */
static int64_t fill(const odk_ring *r, uint32_t *head, uint32_t *tail)
{
    *head = atomic_load_explicit(&r->sh->head, memory_order_acquire);
    *tail = atomic_load_explicit(&r->sh->tail, memory_order_acquire);
    uint32_t used = *head - *tail;
    return used > r->size ? -1 : (int64_t)used;
}

size_t odk_ring_readable(const odk_ring *r)
{
    uint32_t h, t;
    int64_t used = fill(r, &h, &t);
    return used < 0 ? 0 : (size_t)used;
}

size_t odk_ring_writable(const odk_ring *r)
{
    uint32_t h, t;
    int64_t used = fill(r, &h, &t);
    return used < 0 ? 0 : r->size - (size_t)used;
}

/* The (up to two) contiguous pieces of n bytes starting at index idx. */
static int pieces(const odk_ring *r, uint32_t idx, size_t n, struct iovec iov[2])
{
    if (n == 0)
        return 0;
    uint32_t off = idx & (r->size - 1);
    size_t first = r->size - off;
    if (first >= n) {
        iov[0] = (struct iovec){r->data + off, n};
        return 1;
    }
    iov[0] = (struct iovec){r->data + off, first};
    iov[1] = (struct iovec){r->data, n - first};
    return 2;
}

/* The producer's view: its own head, and free space by the tail it last
 * saw, refreshed when that shows less than want.  -1: corrupt indices. */
static int64_t producer_free(odk_ring *r, size_t want, uint32_t *h)
{
    *h = atomic_load_explicit(&r->sh->head, memory_order_relaxed);
    uint32_t used = *h - r->tail_seen;
    if (used > r->size || r->size - used < want) {
        r->tail_seen = atomic_load_explicit(&r->sh->tail, memory_order_acquire);
        used = *h - r->tail_seen;
        if (used > r->size)
            return -1;
    }
    return (int64_t)(r->size - used);
}

/* The consumer's view: its own tail, and what is readable by the head it
 * last saw, refreshed when that shows less than want. */
static int64_t consumer_avail(odk_ring *r, size_t want, uint32_t *t)
{
    *t = atomic_load_explicit(&r->sh->tail, memory_order_relaxed);
    uint32_t used = r->head_seen - *t;
    if (used > r->size || used < want) {
        r->head_seen = atomic_load_explicit(&r->sh->head, memory_order_acquire);
        used = r->head_seen - *t;
        if (used > r->size)
            return -1;
    }
    return used;
}

/* Whole-ring callers (pumps moving as much as they can) refresh unless the
 * view already shows half the ring. */
int odk_ring_write_segments(odk_ring *r, struct iovec iov[2])
{
    uint32_t h;
    int64_t free_bytes = producer_free(r, r->size / 2, &h);
    if (free_bytes < 0)
        return ODK_E_PROTOCOL;
    return pieces(r, h, (size_t)free_bytes, iov);
}

int odk_ring_read_segments(odk_ring *r, struct iovec iov[2])
{
    uint32_t t;
    int64_t avail = consumer_avail(r, r->size / 2, &t);
    if (avail < 0)
        return ODK_E_PROTOCOL;
    return pieces(r, t, (size_t)avail, iov);
}

int odk_ring_reserve(odk_ring *r, size_t n, struct iovec iov[2])
{
    uint32_t h;
    int64_t free_bytes = producer_free(r, n, &h);
    if (free_bytes < 0)
        return ODK_E_PROTOCOL;
    return (size_t)free_bytes < n ? 0 : pieces(r, h, n, iov);
}

int odk_ring_peek(odk_ring *r, size_t n, struct iovec iov[2])
{
    uint32_t t;
    int64_t avail = consumer_avail(r, n, &t);
    if (avail < 0)
        return ODK_E_PROTOCOL;
    return (size_t)avail < n ? 0 : pieces(r, t, n, iov);
}

int odk_ring_commit(odk_ring *r, size_t n)
{
    uint32_t h;
    int64_t free_bytes = producer_free(r, n, &h);
    if (free_bytes < 0)
        return ODK_E_PROTOCOL;
    if (n > (size_t)free_bytes)
        return ODK_E_INVALID;
    atomic_store_explicit(&r->sh->head, h + (uint32_t)n, memory_order_release);
    return ODK_OK;
}

int odk_ring_consume(odk_ring *r, size_t n)
{
    uint32_t t;
    int64_t avail = consumer_avail(r, n, &t);
    if (avail < 0)
        return ODK_E_PROTOCOL;
    if (n > (size_t)avail)
        return ODK_E_INVALID;
    atomic_store_explicit(&r->sh->tail, t + (uint32_t)n, memory_order_release);
    return ODK_OK;
}

int odk_ring_write(odk_ring *r, const void *buf, size_t len, size_t *done)
{
    struct iovec iov[2];
    *done = 0;
    uint32_t h;
    int64_t free_bytes = producer_free(r, len, &h);
    if (free_bytes < 0)
        return ODK_E_PROTOCOL;
    int n = pieces(r, h, (size_t)free_bytes, iov);
    if (n < 0)
        return n;
    const uint8_t *p = buf;
    for (int i = 0; i < n && len > 0; i++) {
        size_t k = iov[i].iov_len < len ? iov[i].iov_len : len;
        memcpy(iov[i].iov_base, p, k);
        p += k;
        len -= k;
        *done += k;
    }
    int st = odk_ring_commit(r, *done);
    if (st < 0)
        *done = 0; /* the other side broke the indices meanwhile: nothing moved */
    return st;
}

int odk_ring_read(odk_ring *r, void *buf, size_t len, size_t *done)
{
    struct iovec iov[2];
    *done = 0;
    uint32_t t;
    int64_t avail = consumer_avail(r, len, &t);
    if (avail < 0)
        return ODK_E_PROTOCOL;
    int n = pieces(r, t, (size_t)avail, iov);
    if (n < 0)
        return n;
    uint8_t *p = buf;
    for (int i = 0; i < n && len > 0; i++) {
        size_t k = iov[i].iov_len < len ? iov[i].iov_len : len;
        memcpy(p, iov[i].iov_base, k);
        p += k;
        len -= k;
        *done += k;
    }
    int st = odk_ring_consume(r, *done);
    if (st < 0)
        *done = 0; /* the other side broke the indices meanwhile: nothing moved */
    return st;
}

int odk_ring_flush(odk_ring *r)
{
    uint32_t h, t;
    if (fill(r, &h, &t) < 0)
        return ODK_E_PROTOCOL;
    atomic_store_explicit(&r->sh->tail, h, memory_order_release);
    return ODK_OK;
}
