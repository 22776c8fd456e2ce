/* SPDX-License-Identifier: MIT */
/* fifo.h — the byte FIFO a loopback model keeps between its OUT and IN
 * endpoints, as a UART's FIFO would: bounded, so a full FIFO makes the
 * model hold (NAK) OUT transfers until the host reads. */
#ifndef ODK_USB_MODEL_FIFO_H
#define ODK_USB_MODEL_FIFO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FIFO_SIZE (64u * 1024u)

struct fifo {
    uint8_t bytes[FIFO_SIZE];
    size_t head, len; /* head: oldest byte */
};

static inline size_t fifo_room(const struct fifo *f)
{
    return FIFO_SIZE - f->len;
}

/* Appends up to n bytes; returns how many fitted. */
static inline size_t fifo_put(struct fifo *f, const uint8_t *src, size_t n)
{
    if (n > fifo_room(f))
        n = fifo_room(f);
    size_t tail = (f->head + f->len) % FIFO_SIZE, first = FIFO_SIZE - tail;
    if (first > n)
        first = n;
    memcpy(f->bytes + tail, src, first);
    memcpy(f->bytes, src + first, n - first);
    f->len += n;
    return n;
}

/* Removes up to n bytes into dst; returns how many. */
static inline size_t fifo_get(struct fifo *f, uint8_t *dst, size_t n)
{
    if (n > f->len)
        n = f->len;
    size_t first = FIFO_SIZE - f->head;
    if (first > n)
        first = n;
    memcpy(dst, f->bytes + f->head, first);
    memcpy(dst + first, f->bytes, n - first);
    f->head = (f->head + n) % FIFO_SIZE;
    f->len -= n;
    return n;
}

static inline void fifo_clear(struct fifo *f)
{
    f->head = f->len = 0;
}

#endif
