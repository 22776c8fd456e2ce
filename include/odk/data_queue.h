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

#include <stddef.h>
#include <stdint.h>

#include "odk/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odk_data_queue odk_data_queue;

/* ---- producer (driver) ------------------------------------------------ */

/* A new queue whose ring holds size bytes (a power of two, 4 KiB..1 GiB).
 * Free with odk_data_queue_free.  Errors: ODK_E_INVALID, ODK_E_NOMEM, ODK_E_IO. */
int odk_data_queue_create(uint32_t size, odk_data_queue **out);
/* Appends one record.  ODK_E_AGAIN when it does not fit now (then the
 * space eventfd fires once the consumer made room), ODK_E_LIMIT when len
 * is over size/2. */
int odk_data_queue_enqueue(odk_data_queue *q, const void *data, uint32_t len);
/* Readable (EPOLLIN) when the consumer made room after an ODK_E_AGAIN;
 * read it (odk_data_queue_ack_space) before waiting again.  Borrowed. */
int odk_data_queue_space_fd(const odk_data_queue *q);
void odk_data_queue_ack_space(odk_data_queue *q);

/* What a driver hands to odkd/app: the memfd and both eventfds (borrowed). */
int odk_data_queue_export(const odk_data_queue *q, int fds[3], uint32_t *size);

/* ---- consumer (app) --------------------------------------------------- */

/* Attaches to a queue from its three descriptors (taken).  ODK_E_PROTOCOL
 * when the shared header does not describe a ring of size bytes. */
int odk_data_queue_attach(int fds[3], uint32_t size, odk_data_queue **out);
/* Takes the next record into buf (cap bytes); *len = its length.
 * ODK_E_AGAIN when empty, ODK_E_LIMIT when cap is too small (*len tells
 * the size needed; the record stays). */
int odk_data_queue_dequeue(odk_data_queue *q, void *buf, uint32_t cap, uint32_t *len);
/* Waits until a record is there: spins briefly, then sleeps up to
 * timeout_ms (-1: forever).  ODK_OK, or ODK_E_TIMEOUT. */
int odk_data_queue_wait(odk_data_queue *q, int timeout_ms);

void odk_data_queue_free(odk_data_queue *q);

#ifdef __cplusplus
}
#endif
#endif
