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
 * spin never finds one and only takes a CPU from the producers. */
int data_queue_wait_spin(odk_data_queue *q, int timeout_ms, uint64_t spin_ns);

#endif
