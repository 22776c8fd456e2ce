/* SPDX-License-Identifier: MIT */
/* odk/storage.h — the storage family: SCSI controller (HBA) drivers, their
 * LUNs, and the disks the family exports as NBD block devices
 * (docs/storage.md).  Shaped after SCSIControllerDriverKit.
 *
 * A controller driver creates one odk_storage_controller in its start,
 * declaring how many tasks it takes at once, then one odk_storage_lun per
 * logical unit it finds.  A LUN created with `export` set becomes a disk:
 * the family publishes its node and serves it as an NBD export through a
 * process of its own, turning every block request into a CDB (READ 16,
 * WRITE 16, SYNCHRONIZE CACHE 16, UNMAP, WRITE SAME 16) that reaches the
 * driver's `task` callback.  The driver completes each task, in any order,
 * with odk_scsi_task_complete.
 *
 * Threads: every function here is called on the driver's default queue,
 * and every callback runs there. */
#ifndef ODK_STORAGE_H
#define ODK_STORAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "odk/driver.h"
#include "odk/export.h"
#include "odk/memory.h"
#include "odk/scsi.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odk_storage_controller odk_storage_controller;
typedef struct odk_storage_lun odk_storage_lun;

/* Service responses (SAM-5): whether the task reached the device at all. */
#define ODK_SCSI_TASK_COMPLETE 0u   /* the device answered: see status */
#define ODK_SCSI_SERVICE_FAILURE 1u /* it did not (device gone, controller fault) */
/* The controller did not complete it within its timeout: the family
 * aborted it and answered for the driver (a peripheral's CDB sees this). */
#define ODK_SCSI_TASK_TIMED_OUT 2u
/* An abort or reset ended it before the device answered (the simulated
 * HBA's done callback). */
#define ODK_SCSI_TASK_ABORTED 3u

/* One SCSI task, given to the controller's `task` callback.  The fields
 * are the task's description, read-only to the driver; the memory is
 * borrowed until the task is completed (map it, or hand its fd to the
 * device for DMA: it is a memfd the export never copies out of early). */
typedef struct odk_scsi_task {
    uint8_t cdb[ODK_SCSI_CDB_MAX];
    uint8_t cdb_len;
    odk_scsi_dir direction;
    uint32_t target;
    uint64_t lun;
    odk_memory *memory; /* NULL when direction is NONE */
    uint64_t offset;    /* where in memory the data starts */
    uint64_t length;    /* requested transfer length in bytes */
    uint32_t timeout_ms;
    uint64_t tag;     /* unique among the controller's tasks in flight */
    void *driver_ctx; /* free for the driver's use while it holds the task */
} odk_scsi_task;

/* The kinds of reset a controller is asked for. */
#define ODK_SCSI_ABORT_TASK 0u
#define ODK_SCSI_LUN_RESET 1u
#define ODK_SCSI_TARGET_RESET 2u
#define ODK_SCSI_BUS_RESET 3u

typedef struct odk_storage_controller_ops {
    /* A new task for one of the controller's LUNs.  Complete it exactly
     * once with odk_scsi_task_complete, now or later. */
    void (*task)(void *ctx, odk_scsi_task *t);
    /* A task passed its timeout: abort it (kind ODK_SCSI_ABORT_TASK, t
     * set), or reset the LUN, target or bus (t NULL).  The driver should
     * complete the tasks concerned within deadline_ms.  Past the abort's
     * deadline the family answers the task's client itself (EIO, or
     * ODK_SCSI_TASK_TIMED_OUT to a peripheral); while the driver still
     * holds such tasks it asks for a LUN reset, then a target reset, then
     * a bus reset, one per deadline, and takes the late completions
     * (ignoring their results).  May be NULL: then a late task is failed
     * at its timeout, with no reset. */
    void (*reset)(void *ctx, uint32_t kind, odk_scsi_task *t, uint32_t target, uint64_t lun,
                  uint32_t deadline_ms);
} odk_storage_controller_ops;

/* Creates the driver's controller, taking up to queue_depth tasks at once
 * (1..4096); ops and ctx are borrowed for its life.  *out is owned by the
 * caller (odk_storage_controller_destroy).  Errors: ODK_E_INVALID,
 * ODK_E_NOMEM. */
ODK_PUBLIC int odk_storage_controller_create(odk_driver *drv, const odk_storage_controller_ops *ops,
                                             void *ctx, uint32_t queue_depth,
                                             odk_storage_controller **out);

/* Sets c's deadlines: task_timeout_ms for the disk layer's tasks (default
 * 30 000; a peripheral's CDB carries its own timeout) and
 * reset_deadline_ms for each recovery step after it: abort, LUN reset,
 * target reset, bus reset (default 2 000; a peripheral's abort step is
 * capped at 1 500 so its answer comes before it stops waiting).  0 keeps
 * a value.  Applies to tasks started afterwards.  Errors: ODK_E_INVALID
 * (c NULL, a value over 600 000). */
ODK_PUBLIC int odk_storage_controller_set_timeouts(odk_storage_controller *c,
                                                   uint32_t task_timeout_ms,
                                                   uint32_t reset_deadline_ms);

/* Withdraws every LUN (their exports are told the disk went away: the
 * driver's stop) and frees the controller.  Tasks still held are
 * forgotten: their completions must not come after this. */
ODK_PUBLIC void odk_storage_controller_destroy(odk_storage_controller *c);

/* What a LUN is.  Strings are copied. */
typedef struct odk_storage_lun_info {
    uint8_t peripheral_type; /* 0x00: direct-access block device */
    const char *vendor;      /* T10 vendor id, up to 8 characters */
    const char *product;     /* up to 16 */
    const char *serial;
    uint32_t block_size;     /* logical block size: 512 or 4096 */
    uint64_t blocks;         /* number of logical blocks */
    bool export;             /* also a disk node with an NBD export */
    const char *export_name; /* its NBD export name (default "lunT-L") */
} odk_storage_lun_info;

/* Publishes a LUN node (class OdkSCSILUN, below the driver's service) with
 * Peripheral Device Type, Vendor Identification, Product Identification,
 * Serial Number, SCSI Target Identifier and SCSI Logical Unit Number.
 * With info->export, also a disk node (OdkBlockDisk, below the LUN) with
 * Size, Block Size, Vendor, Product, Serial Number and OdkNBDURI, served
 * by the family's export process: blocks odkd until the export listens.
 * *out is borrowed from c (may be NULL).  Errors: ODK_E_INVALID,
 * ODK_E_NOMEM, ODK_E_EXISTS (target and lun taken), and odkd's refusals. */
ODK_PUBLIC int odk_storage_lun_create(odk_storage_controller *c, uint32_t target, uint64_t lun,
                                      const odk_storage_lun_info *info, odk_storage_lun **out);

/* The LUN's NBD URI ("nbd+unix:///NAME?socket=PATH"), borrowed, or NULL
 * when it is not exported. */
ODK_PUBLIC const char *odk_storage_lun_uri(const odk_storage_lun *l);

/* Also serves the LUN's export on 127.0.0.1:port, a loopback TCP port any
 * local user reaches (0: a free port; *bound, may be NULL, gets the one
 * listening).  The disk node gets OdkNBDTCPURI ("nbd://127.0.0.1:PORT/NAME")
 * and OdkNBDTCPPort.  The listener lives as long as the export: a
 * restarted driver asking again gets the same port.  Needs the
 * "block-tcp" entitlement (entitlements.resources).  Errors:
 * ODK_E_INVALID (not exported, a port below 1024), ODK_E_BUSY (the port
 * is taken), ODK_E_EXISTS (the export listens on another port already),
 * ODK_E_ACCESS (not entitled); odkd's sentence is in the driver's log. */
ODK_PUBLIC int odk_storage_lun_export_tcp(odk_storage_lun *l, uint16_t port, uint16_t *bound);

/* Completes a task: service response, SCSI status, bytes actually
 * transferred, and sense data (copied; NULL/0 for none; at most
 * ODK_SCSI_SENSE_MAX bytes).  t is gone after the call. */
ODK_PUBLIC void odk_scsi_task_complete(odk_scsi_task *t, uint32_t service_response, uint8_t status,
                                       uint64_t transferred, const uint8_t *sense,
                                       uint32_t sense_len);

/* ---- the peripheral role ---------------------------------------------------
 * Shaped after SCSIPeripheralsDriverKit: a driver matched to an OdkSCSILUN
 * node (IOProviderClass "OdkSCSILUN") sends CDBs to that logical unit.
 * They go straight to the controller driver that owns the LUN, as tasks
 * counted against its queue depth; the data buffer is the peripheral's
 * memory descriptor, which the controller's device reads or writes in
 * place.  The library's checker runs before a CDB leaves: a malformed CDB
 * never reaches the LUN. */

typedef struct odk_storage_peripheral odk_storage_peripheral;

/* What came back for one CDB. */
typedef struct odk_scsi_cdb_result {
    uint32_t service_response; /* ODK_SCSI_TASK_COMPLETE or ODK_SCSI_SERVICE_FAILURE */
    uint8_t status;            /* SCSI status (GOOD, CHECK CONDITION, TASK SET FULL...) */
    uint64_t transferred;      /* bytes moved, at most the length sent */
    uint32_t sense_len;        /* 0 without sense */
    uint8_t sense[ODK_SCSI_SENSE_MAX];
} odk_scsi_cdb_result;

/* A flag of odk_storage_peripheral_send_cdb besides ODK_SCSI_CHECK_STRICT:
 * skip the checker and let the device judge the CDB (to see its sense). */
#define ODK_SCSI_SEND_UNCHECKED 0x100u

/* Opens the LUN the driver was matched to.  Blocks until odkd answers.
 * *out is owned by the caller (odk_storage_peripheral_close).  Errors:
 * ODK_E_INVALID (the provider is not a LUN node), ODK_E_NOT_FOUND (its
 * controller takes no peripheral drivers), ODK_E_GONE, ODK_E_NOMEM. */
ODK_PUBLIC int odk_storage_peripheral_open(odk_driver *drv, odk_storage_peripheral **out);
ODK_PUBLIC void odk_storage_peripheral_close(odk_storage_peripheral *p);

/* The LUN's peripheral device type (ODK_SCSI_TYPE_*). */
ODK_PUBLIC uint8_t odk_storage_peripheral_type(const odk_storage_peripheral *p);

/* Sends one CDB and waits for its completion (UserSendCDB).  dir says
 * where the data goes; m (NULL for ODK_SCSI_DIR_NONE) holds it at offset,
 * length bytes.  Unless flags has ODK_SCSI_SEND_UNCHECKED,
 * odk_scsi_cdb_check runs first with the LUN's type and block size:
 * a refusal is ODK_E_PROTOCOL with err (may be NULL) naming the byte, bit
 * and field, and nothing is sent.  ODK_OK means the controller answered:
 * *res holds the service response, status, bytes moved and sense, whatever
 * the SCSI status.  timeout_ms 0 is 30 s.  Other errors: ODK_E_INVALID,
 * ODK_E_GONE (the controller driver went away), ODK_E_TIMEOUT (no answer
 * within timeout_ms + 2 s). */
ODK_PUBLIC int odk_storage_peripheral_send_cdb(odk_storage_peripheral *p, const uint8_t *cdb,
                                               size_t cdb_len, odk_scsi_dir dir, odk_memory *m,
                                               uint64_t offset, uint64_t length,
                                               uint32_t timeout_ms, unsigned flags,
                                               odk_scsi_cdb_result *res, odk_scsi_cdb_error *err);

/* ---- the simulated HBA (odkctl storage plug) ----------------------------
 * The hardware interface of the HBA model, which a controller driver for
 * it (scsi-raid) programs as it would program registers and a command
 * ring: commands go to the model with their CDB and the place in a
 * mapped memory descriptor where the device reads or writes the data
 * (DMA), and come back as completions on the driver's default queue (its
 * interrupt).  odkd is never on this path. */

typedef struct odk_sim_hba odk_sim_hba;

typedef struct odk_sim_hba_ops {
    /* A command finished: status, bytes moved, sense (sense_len may be 0).
     * service_response is ODK_SCSI_SERVICE_FAILURE for a disk that is not
     * there (or left), for a command the HBA refused (logged with its
     * reason) and for a model that died, ODK_SCSI_TASK_ABORTED
     * for a command an abort or reset ended. */
    void (*done)(void *ctx, void *cmd_ctx, uint32_t service_response, uint8_t status,
                 uint64_t transferred, const uint8_t *sense, uint32_t sense_len);
    /* A disk slot changed: present or not (a disk left, or a new one was
     * inserted).  May be NULL. */
    void (*slot_changed)(void *ctx, uint32_t slot, bool present);
} odk_sim_hba_ops;

/* Opens the HBA the driver was matched to (its provider must be an
 * OdkStorageHBA node).  Blocks until odkd and the model answer.  *out is
 * owned by the caller (odk_sim_hba_close).  Errors: ODK_E_INVALID,
 * ODK_E_ACCESS (not this driver's provider), ODK_E_GONE, ODK_E_PROTOCOL. */
ODK_PUBLIC int odk_sim_hba_open(odk_driver *drv, const odk_sim_hba_ops *ops, void *ctx,
                                odk_sim_hba **out);
ODK_PUBLIC void odk_sim_hba_close(odk_sim_hba *h);

/* Disk slots of the HBA, and what is in one: blocks of block_size bytes
 * (0, 0 when the slot is empty). */
ODK_PUBLIC uint32_t odk_sim_hba_slots(const odk_sim_hba *h);
ODK_PUBLIC void odk_sim_hba_slot_info(const odk_sim_hba *h, uint32_t slot, uint64_t *blocks,
                                      uint32_t *block_size);

/* Makes m reachable by the device (maps it into the model once; later
 * calls with the same m are free).  Errors: ODK_E_INVALID, ODK_E_GONE,
 * ODK_E_LIMIT (more than 64 descriptors). */
ODK_PUBLIC int odk_sim_hba_map(odk_sim_hba *h, odk_memory *m);

/* Queues a command for the disk in slot: cdb, the data's place (m mapped
 * with odk_sim_hba_map, or NULL with length 0) and direction.  ops->done
 * runs later with cmd_ctx, also for a command refused by the device.
 * Errors: ODK_E_INVALID (bad slot, cdb_len, range, unmapped m),
 * ODK_E_GONE (the model is gone). */
ODK_PUBLIC int odk_sim_hba_submit(odk_sim_hba *h, uint32_t slot, const uint8_t *cdb,
                                  uint8_t cdb_len, odk_scsi_dir direction, odk_memory *m,
                                  uint64_t offset, uint64_t length, void *cmd_ctx);

/* One piece of a command's data: length bytes (not 0, below 4 GiB) at
 * offset in m, which odk_sim_hba_map made reachable. */
typedef struct odk_sim_hba_sge {
    odk_memory *memory;
    uint64_t offset;
    uint64_t length;
} odk_sim_hba_sge;

#define ODK_SIM_HBA_SG_MAX 16 /* entries of one command's scatter-gather list */

/* As odk_sim_hba_submit, the data in n_sg pieces (a scatter-gather list,
 * 0 to ODK_SIM_HBA_SG_MAX; sg may be NULL for 0): the disk sees one
 * command of their total length, the device moves each piece in place.
 * A READ or WRITE whose blocks are contiguous on the disk and scattered
 * in memory (a RAID-0 request's chunks for one disk) is one command.
 * Errors: ODK_E_INVALID (bad slot, cdb_len, an entry empty, out of its
 * memory's range or unmapped, more than ODK_SIM_HBA_SG_MAX), ODK_E_GONE. */
ODK_PUBLIC int odk_sim_hba_submit_sg(odk_sim_hba *h, uint32_t slot, const uint8_t *cdb,
                                     uint8_t cdb_len, odk_scsi_dir direction,
                                     const odk_sim_hba_sge *sg, uint32_t n_sg, void *cmd_ctx);

/* ABORT TASK for each command in flight whose cmd_ctx match(cmd_ctx, arg)
 * accepts: a command the disk still holds ends, its done callback runs
 * with ODK_SCSI_TASK_ABORTED, and it never reaches the medium; one the
 * disk already finished completes as usual.  Returns how many aborts were
 * sent (0 for none), or ODK_E_INVALID, ODK_E_GONE.  The HBA's answer to
 * each abort is logged when it failed (a hung disk). */
ODK_PUBLIC int odk_sim_hba_abort(odk_sim_hba *h, bool (*match)(void *cmd_ctx, void *arg),
                                 void *arg);

/* LOGICAL UNIT RESET of the disk in slot, or a bus reset for
 * ODK_SIM_HBA_BUS: every command the disk(s) hold ends with
 * ODK_SCSI_TASK_ABORTED.  Errors: ODK_E_INVALID, ODK_E_GONE. */
#define ODK_SIM_HBA_BUS 0xffffffffu
ODK_PUBLIC int odk_sim_hba_reset(odk_sim_hba *h, uint32_t slot);

#ifdef __cplusplus
}
#endif

#endif
