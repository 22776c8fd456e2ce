/* SPDX-License-Identifier: MIT */
/* odk/data_queue.h — a stream of records from a driver to an app through
 * shared memory (DriverKit's IODataQueueDispatchSource), for events and
 * samples at high rate.
 *
 * One producer (the driver), one consumer (the app).  Records are up to
 * size/2 bytes each, kept whole and in order.  Nothing is dropped: a full
 * queue refuses the record with ODK_E_AGAIN and tells the producer when
 * there is room again (back-pressure).  Wake-ups cost a syscall only when
 * the other side actually sleeps: each side raises a "waiting" flag in the
 * shared header before it sleeps, and the other side writes the eventfd
 * only when it sees that flag.
 *
 * The consumer's view of the shared header and ring is untrusted (odk/ring.h
 * checks the indices; a record longer than what the ring holds is
 * ODK_E_PROTOCOL).
 */
#ifndef ODK_DATA_QUEUE_H
#define ODK_DATA_QUEUE_H

#include "odk/export.h"

#include <stddef.h>
#include <stdint.h>

#include "odk/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odk_data_queue odk_data_queue;

/* Threads: the producer functions are called by one thread at a time (the
 * driver's queue), the consumer functions by one thread at a time; the two
 * sides need no lock between them.  Only odk_data_queue_wait blocks. */

/* ---- producer (driver) ------------------------------------------------ */

/* A new queue whose ring holds size bytes (a power of two, 4 KiB..1 GiB).
 * The caller owns it: odk_data_queue_free.  Errors: ODK_E_INVALID (size, out
 * NULL), ODK_E_NOMEM, ODK_E_IO (memfd, eventfd or sealing failed). */
ODK_PUBLIC int odk_data_queue_create(uint32_t size, odk_data_queue **out);
/* Appends one record of len bytes (copied; len 0 is a record too).  Never
 * blocks.  Errors: ODK_E_INVALID (q NULL, data NULL with len > 0),
 * ODK_E_LIMIT (len over size/2), ODK_E_AGAIN (no room now: the space eventfd
 * fires once the consumer made room), ODK_E_PROTOCOL (the consumer corrupted
 * the shared indices). */
ODK_PUBLIC int odk_data_queue_enqueue(odk_data_queue *q, const void *data, uint32_t len);
/* Readable (EPOLLIN) when the consumer made room after an ODK_E_AGAIN; drain
 * it with odk_data_queue_ack_space before waiting again.  Borrowed (closed by
 * odk_data_queue_free).  Never fail, never block. */
ODK_PUBLIC int odk_data_queue_space_fd(const odk_data_queue *q);
ODK_PUBLIC void odk_data_queue_ack_space(odk_data_queue *q);

/* What a driver hands to odkd/app: the memfd, the data eventfd and the space
 * eventfd, in that order, and the ring size.  The fds stay q's (borrowed:
 * dup or send them, never close them).  Errors: ODK_E_INVALID (a NULL). */
ODK_PUBLIC int odk_data_queue_export(const odk_data_queue *q, int fds[3], uint32_t *size);

/* ---- consumer (app) --------------------------------------------------- */

/* Attaches to a queue from the three descriptors odk_data_queue_export gave,
 * taken whatever happens (closed on failure).  The caller owns *out:
 * odk_data_queue_free.  Errors: ODK_E_INVALID (fds or out NULL),
 * ODK_E_PROTOCOL (not a shrink-sealed memfd holding a ring of size bytes),
 * ODK_E_NOMEM. */
ODK_PUBLIC int odk_data_queue_attach(int fds[3], uint32_t size, odk_data_queue **out);
/* Takes the next record into buf (cap bytes) and sets *len to its length.
 * Never blocks.  Errors: ODK_E_INVALID (q or len NULL, buf NULL with cap >
 * 0), ODK_E_AGAIN (empty), ODK_E_LIMIT (cap too small: *len is set to the
 * size needed and the record stays), ODK_E_PROTOCOL (the producer wrote a
 * record or indices that cannot be right; nothing is consumed). */
ODK_PUBLIC int odk_data_queue_dequeue(odk_data_queue *q, void *buf, uint32_t cap, uint32_t *len);
/* BLOCKS until a record is there: spins about 20 us, then sleeps on the data
 * eventfd (or socket), at most timeout_ms in all (-1: forever; 0: only the
 * spin).  Errors: ODK_E_INVALID (q NULL), ODK_E_TIMEOUT, ODK_E_GONE (a
 * queue woken through a socket, as a HID stream is: the driver closed it
 * and every record was read), ODK_E_IO. */
ODK_PUBLIC int odk_data_queue_wait(odk_data_queue *q, int timeout_ms);

/* Unmaps and closes q (either side); NULL is allowed.  The other side sees
 * no more records or room, nothing else. */
ODK_PUBLIC void odk_data_queue_free(odk_data_queue *q);

#ifdef __cplusplus
}
#endif
#endif
