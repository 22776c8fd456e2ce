/* SPDX-License-Identifier: MIT */
/* storage_internal.h — what controller.c and peripheral.c (both in the
 * driver host) give each other: a LUN's door for peripheral drivers, and
 * the tasks that come through it. */
#ifndef ODK_STORAGE_INTERNAL_H
#define ODK_STORAGE_INTERNAL_H

#include <sys/types.h>

#include "odk/queue.h"
#include "odk/storage.h"

/* controller.c */
odk_queue *storage_lun_queue(odk_storage_lun *l);
uint64_t storage_lun_node(const odk_storage_lun *l);
/* A task for l on behalf of a peripheral (owner is handed back to
 * periph_task_done), counted against the controller's queue depth: NULL
 * when the controller has queue_depth tasks out (or no memory).  The
 * caller fills cdb, direction, memory, offset, length and timeout, then
 * hands it to the driver with storage_periph_task_start. */
odk_scsi_task *storage_periph_task_new(odk_storage_lun *l, void *owner);
void storage_periph_task_start(odk_scsi_task *t);

/* Sends the len bytes of msg with fd attached (SCM_RIGHTS) on sock with
 * flags (MSG_NOSIGNAL is added): sendmsg's result. */
ssize_t storage_send_with_fd(int sock, const void *msg, size_t len, int fd, int flags);

/* Batches (controller.c).  While one runs on this thread (the HBA's
 * completions taken in one wake-up, the export's requests read in one),
 * the replies to the export and the commands to the HBA are queued, and
 * sent at its end: one syscall for many.  storage_batch_defer registers
 * flush(obj) to run at the end (once per obj); false when no batch runs
 * (or too many objects wait): then the caller sends now.  An object must
 * live until the batch ends. */
void storage_batch_begin(void);
void storage_batch_end(void);
bool storage_batch_defer(void (*flush)(void *obj), void *obj);
/* obj goes away: drops what it registered. */
void storage_batch_forget(void *obj);

/* peripheral.c */
struct periph_door;
/* Asks odkd for the LUN's door (storage-lun-door) and serves the
 * peripheral drivers that come through it on l's queue. */
int periph_door_open(odk_storage_lun *l, struct periph_door **out);
void periph_door_close(struct periph_door *d);
/* The driver completed a peripheral task (odk_scsi_task_complete); the
 * task is freed by the caller afterwards. */
void periph_task_done(void *owner, uint32_t service_response, uint8_t status, uint64_t transferred,
                      const uint8_t *sense, uint32_t sense_len);

#endif
