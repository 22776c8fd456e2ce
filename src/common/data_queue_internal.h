/* SPDX-License-Identifier: MIT */
/* data_queue_internal.h — what libodk's own readers of data queues need
 * beyond odk/data_queue.h. */
#ifndef ODK_COMMON_DATA_QUEUE_INTERNAL_H
#define ODK_COMMON_DATA_QUEUE_INTERNAL_H

#include <stdint.h>

#include "odk/data_queue.h"

/* odk_data_queue_wait with the consumer's spin before it sleeps set to
 * spin_ns (odk_data_queue_wait spins 20 us; 0: sleep at once).  For
 * streams whose records come far apart (HID events: keystrokes), where a
 * spin never finds one and only takes a CPU from the producers.  Errors
 * as odk_data_queue_wait's. */
int data_queue_wait_spin(odk_data_queue *q, int timeout_ms, uint64_t spin_ns);

/* How the producer wakes a consumer that sleeps on the data fd. */
enum data_queue_wake {
    DATA_QUEUE_WAKE_EVENTFD, /* odk_data_queue_create's: for streams */
    /* A socket pair (the consumer gets one end; SOCK_STREAM, blocking): the
     * consumer sleeps in a read of it, which takes the kick as it wakes
     * (one system call a wake-up, not a poll and then a read), with
     * SO_RCVTIMEO as its timeout; and the kernel wakes a socket's reader
     * as a "sync" wake-up, a hint that the writer will sleep soon, so it
     * may run the reader on the writer's CPU at once instead of on another,
     * idle one (an IPI to a halted vCPU: tens of microseconds on the build
     * machines).  The producer's end closing ends the consumer's wait with
     * ODK_E_GONE once the records are read.  For records that come one at
     * a time, each followed by the producer going back to sleep: HID
     * events.  A producer that keeps running would keep its reader
     * waiting. */
    DATA_QUEUE_WAKE_SOCKET,
};

/* odk_data_queue_create with the data fd of kind wake; the consumer side
 * (odk_data_queue_attach, odk_data_queue_wait) takes either.  Errors as
 * odk_data_queue_create's (ODK_E_IO: socketpair failed too). */
int data_queue_create_wake(uint32_t size, enum data_queue_wake wake, odk_data_queue **out);

#endif
