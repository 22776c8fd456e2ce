/* SPDX-License-Identifier: MIT */
/* odk/ring.h — single-producer / single-consumer byte rings in shared
 * memory.  The serial family's TX and RX rings are these; so is anything
 * else that streams bytes between two parties who may live in different
 * processes.
 *
 * Layout of the shared memory (ODK_RING_HEADER bytes of header, then the
 * data area of `size` bytes, a power of two):
 *
 *   head  free-running producer index: written ONLY by the producer
 *   tail  free-running consumer index: written ONLY by the consumer
 *   size  capacity, fixed at odk_ring_format
 *
 * Indices count bytes since the ring was formatted and wrap at 2^32; the
 * byte at index i lives at data[i & (size - 1)].  readable = head - tail
 * (unsigned), writable = size - readable.  The producer publishes head with
 * release order after writing data; the consumer reads head with acquire
 * order (and the reverse for tail), so neither side needs a lock.
 *
 * The other side's index is untrusted: if head - tail ever exceeds size,
 * every call answers ODK_E_PROTOCOL and moves nothing.
 *
 * Threads: producer calls from one thread at a time, consumer calls from one
 * thread at a time (the same odk_ring may serve both sides: each touches only
 * its own fields).  Nothing blocks or takes a lock.  r must be a ring that
 * odk_ring_format or odk_ring_attach set up (anything else is a caller bug);
 * iov pieces and mem are borrowed, never freed by the ring.
 */
#ifndef ODK_RING_H
#define ODK_RING_H

#include "odk/export.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "odk/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ODK_RING_HEADER 192u /* head, tail and size on separate cache lines */
#define ODK_RING_MIN_SIZE 16u
#define ODK_RING_MAX_SIZE (1u << 30)

struct odk_ring_shared; /* the header in shared memory */

/* A process's view of a ring: where the header and data are mapped. */
typedef struct odk_ring {
    struct odk_ring_shared *sh;
    uint8_t *data;
    uint32_t size; /* local copy: the shared one is never trusted after attach */
    /* This side's last look at the other side's index.  Indices only grow,
     * so a stale copy only under-states what is there: it is refreshed when
     * it is not enough, which keeps the other side's cache line from
     * bouncing on every operation. */
    uint32_t head_seen, tail_seen;
} odk_ring;

/* Bytes of shared memory a ring of `size` bytes needs (header + size). */
ODK_PUBLIC size_t odk_ring_bytes(uint32_t size);
/* Formats mem (mem_len bytes, borrowed for r's life) as an empty ring of size
 * bytes.  Errors: ODK_E_INVALID (r or mem NULL, size not a power of two in
 * [ODK_RING_MIN_SIZE, ODK_RING_MAX_SIZE], mem_len < odk_ring_bytes(size)). */
ODK_PUBLIC int odk_ring_format(odk_ring *r, void *mem, size_t mem_len, uint32_t size);
/* Attaches to a ring someone else formatted in mem (borrowed for r's life).
 * Errors: ODK_E_INVALID (r or mem NULL, mem_len < ODK_RING_HEADER),
 * ODK_E_PROTOCOL (the header's size is not a valid size or does not fit in
 * mem_len). */
ODK_PUBLIC int odk_ring_attach(odk_ring *r, void *mem, size_t mem_len);

/* Bytes the consumer may read / the producer may write now (0 when the
 * indices are corrupt).  Either side; never fail. */
ODK_PUBLIC size_t odk_ring_readable(const odk_ring *r);
ODK_PUBLIC size_t odk_ring_writable(const odk_ring *r);

/* Producer: copies up to len bytes from buf in and publishes them; consumer:
 * copies up to len bytes out into buf and consumes them.  *done is set on
 * every return: the bytes moved (0 when the ring is full / empty, and 0 on
 * error).  Errors: ODK_E_PROTOCOL. */
ODK_PUBLIC int odk_ring_write(odk_ring *r, const void *buf, size_t len, size_t *done);
ODK_PUBLIC int odk_ring_read(odk_ring *r, void *buf, size_t len, size_t *done);

/* Zero-copy forms.  *_segments fills iov[0..1] with the contiguous pieces
 * free for writing (producer) or ready for reading (consumer) and returns how
 * many pieces (0..2), or ODK_E_PROTOCOL.  commit (producer) / consume
 * (consumer) then publishes n bytes: ODK_OK, ODK_E_INVALID (n more than is
 * free / readable), ODK_E_PROTOCOL. */
ODK_PUBLIC int odk_ring_write_segments(odk_ring *r, struct iovec iov[2]);
ODK_PUBLIC int odk_ring_commit(odk_ring *r, size_t n);
ODK_PUBLIC int odk_ring_read_segments(odk_ring *r, struct iovec iov[2]);
ODK_PUBLIC int odk_ring_consume(odk_ring *r, size_t n);

/* Exactly n bytes: reserve fills iov with the pieces of n free bytes (for
 * the producer; commit them after writing), peek with the pieces of the
 * next n readable bytes (for the consumer).  They return the number of
 * pieces (1..2), 0 when fewer than n bytes are free / readable now (or n is
 * 0), or ODK_E_PROTOCOL.  They look at the other side's index only when what
 * they saw last is not enough, so batches of small records stay cheap. */
ODK_PUBLIC int odk_ring_reserve(odk_ring *r, size_t n, struct iovec iov[2]);
ODK_PUBLIC int odk_ring_peek(odk_ring *r, size_t n, struct iovec iov[2]);

/* Consumer: drops everything readable (tail = head).  Errors:
 * ODK_E_PROTOCOL. */
ODK_PUBLIC int odk_ring_flush(odk_ring *r);

#ifdef __cplusplus
}
#endif
#endif
