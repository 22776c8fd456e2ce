/* SPDX-License-Identifier: MIT */
/* hba_wire.h — the simulated HBA's two channels (native byte order, one
 * machine):
 *
 * - odkd -> model, on the model's fd 3 (SOCK_SEQPACKET): struct hba_ctl.
 *   HBA_CTL_ATTACH carries a descriptor: a new driver link.
 *   HBA_CTL_FAULT injects a fault into one disk slot.
 * - driver host <-> model, on a link (SOCK_SEQPACKET): struct hba_msg, the
 *   HBA's command ring and interrupt.  On attach the model sends
 *   HBA_HELLO (slots) and one HBA_SLOT per slot; the driver maps memory
 *   (HBA_MAP with the memfd) and submits HBA_CMD, each answered by
 *   HBA_DONE with the same tag; HBA_SLOT again when a disk leaves or
 *   arrives.  Task management: HBA_ABORT (tag: the command to abort)
 *   and HBA_RESET (slot: a LUN reset of that disk; HBA_ALL_SLOTS: a bus
 *   reset), each answered by HBA_TMF_DONE (the request's type, tag and
 *   slot echoed; status HBA_TMF_COMPLETE or HBA_TMF_FAILED) after the
 *   HBA_DONE, service HBA_ABORTED, of every command it ended.
 *   A message on a link is 1 to HBA_BATCH_MAX struct hba_msg back to
 *   back: the commands queued together go in one message (one doorbell),
 *   and the completions of the commands the model took in one wake-up
 *   come back in one (one interrupt), so neither side wakes the other
 *   once per command.  An HBA_MAP's descriptor rides on a message of its
 *   own.  Everything from the other side is checked before use (a
 *   message whose length is not a whole number of hba_msg is dropped).
 *
 * A command's data is one range of a map (sg_count 0: map_id, offset,
 * length) or a scatter-gather list of 1 to HBA_SG_MAX entries (sg[],
 * each in a map of its own choosing), whose lengths add up to length: the
 * disk sees one command, the HBA moves its data piece by piece (so a
 * RAID-0 request is one command a disk, not one a chunk).  A list that
 * names an unmapped map, runs past a map's end, has an empty entry or does
 * not add up is refused: HBA_DONE with HBA_BAD_COMMAND and the reason as
 * text in sense (sense_len bytes, no NUL), and the model goes on. */
#ifndef ODK_STORAGE_SIM_HBA_WIRE_H
#define ODK_STORAGE_SIM_HBA_WIRE_H

#include <stdint.h>

#define HBA_MAX_SLOTS 64
#define HBA_MAX_MAPS 64
#define HBA_SENSE_MAX 252
#define HBA_BATCH_MAX 64 /* hba_msg in one message on a link */
#define HBA_SG_MAX 16    /* scatter-gather entries of one command */

enum { HBA_CTL_ATTACH = 1, HBA_CTL_FAULT = 2 };
enum {
    HBA_FAULT_MEDIUM_ERROR = 1, /* [lba, lba + blocks) reads and writes fail */
    HBA_FAULT_NOT_READY = 2,
    HBA_FAULT_REMOVE = 3,   /* the disk leaves the slot */
    HBA_FAULT_INSERT = 4,   /* a new blank disk in the slot */
    HBA_FAULT_CLEAR = 5,    /* medium errors, not-ready and swallow cleared */
    HBA_FAULT_SWALLOW = 6,  /* commands are taken and never answered (until clear or abort) */
    HBA_FAULT_HANG = 7,     /* as SWALLOW, and task management to the disk fails too */
    HBA_FAULT_NO_ABORT = 8, /* as SWALLOW, and ABORT TASK fails; a LUN or bus reset works */
};

struct hba_ctl {
    uint32_t type, fault;
    uint32_t slot, pad;
    uint64_t lba, blocks;
};

enum {
    HBA_HELLO = 1,
    HBA_SLOT = 2,
    HBA_MAP = 3,
    HBA_CMD = 4,
    HBA_DONE = 5,
    HBA_ABORT = 6,
    HBA_RESET = 7,
    HBA_TMF_DONE = 8
};

#define HBA_ALL_SLOTS 0xffffffffu /* HBA_RESET: the bus */

/* Service responses in HBA_DONE. */
enum { HBA_OK = 0, HBA_NO_DEVICE = 1, HBA_BAD_COMMAND = 2, HBA_ABORTED = 3 };

/* HBA_TMF_DONE's status. */
enum { HBA_TMF_COMPLETE = 0, HBA_TMF_FAILED = 1 };

/* One scatter-gather entry of an HBA_CMD. */
struct hba_sge {
    uint64_t offset; /* in the map */
    uint32_t length; /* bytes, not 0 */
    uint32_t map_id;
};

struct hba_msg {
    uint32_t type;
    uint32_t slot;   /* HBA_SLOT, HBA_CMD, HBA_RESET; HBA_HELLO: number of slots */
    uint64_t tag;    /* HBA_CMD, HBA_DONE, HBA_ABORT */
    uint32_t map_id; /* HBA_MAP, HBA_CMD */
    uint8_t dir;     /* HBA_CMD: odk_scsi_dir */
    uint8_t cdb_len;
    uint8_t status;       /* HBA_DONE: SCSI status */
    uint8_t service;      /* HBA_DONE: HBA_OK, HBA_NO_DEVICE, HBA_BAD_COMMAND */
    uint64_t offset;      /* HBA_CMD: where in the map */
    uint64_t length;      /* HBA_CMD: bytes; HBA_MAP: the map's length */
    uint64_t transferred; /* HBA_DONE */
    uint64_t blocks;      /* HBA_SLOT: 0 when empty */
    uint32_t block_size;  /* HBA_SLOT */
    uint32_t sense_len;   /* HBA_DONE */
    uint32_t sg_count;    /* HBA_CMD: entries in sg; 0: the range map_id, offset, length */
    uint32_t pad;
    uint8_t cdb[16];
    union {
        uint8_t sense[HBA_SENSE_MAX];  /* HBA_DONE */
        struct hba_sge sg[HBA_SG_MAX]; /* HBA_CMD with sg_count */
    };
};

#endif
