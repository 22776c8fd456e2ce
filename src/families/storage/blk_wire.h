/* SPDX-License-Identifier: MIT */
/* blk_wire.h — block requests between an NBD export process
 * (odk-nbd-export) and the driver host that serves the disk, on a stream
 * socket odkd hands both sides.  Native byte order: both ends are on one
 * machine.  A request is a blk_req followed, for BLK_WRITE, by length
 * bytes; a reply is a blk_rep followed, for a BLK_READ that succeeded, by
 * length bytes.  Replies may come in any order; id pairs them. */
#ifndef ODK_STORAGE_BLK_WIRE_H
#define ODK_STORAGE_BLK_WIRE_H

#include <stdint.h>

#define BLK_REQ_MAGIC 0x6f646b71u     /* "odkq" */
#define BLK_REP_MAGIC 0x6f646b72u     /* "odkr" */
#define BLK_ARENA_MAGIC 0x6f646b61u   /* "odka" */
#define BLK_RELEASE_MAGIC 0x6f646b66u /* "odkf" */

/* The NBD command numbers are reused. */
#define BLK_READ 0u
#define BLK_WRITE 1u
#define BLK_FLUSH 3u
#define BLK_TRIM 4u
#define BLK_WRITE_ZEROES 6u

#define BLK_FUA 1u
#define BLK_NO_HOLE 2u /* WRITE_ZEROES: write the zeroes, do not unmap */

/* blk_rep.flags */
#define BLK_REP_IN_AREA 1u /* a READ's data is in its area, not on the socket */
#define BLK_REP_KEEP 2u    /* the area stays with the driver until BLK_RELEASE */

struct blk_req {
    uint32_t magic;
    uint16_t type, flags;
    uint64_t id;
    uint64_t offset;
    uint32_t length;
    uint32_t area; /* 0: data inline; else the arena area's index + 1 */
};

struct blk_rep {
    uint32_t magic;
    uint32_t error; /* 0 or an NBD error number (NBD_EIO...) */
    uint64_t id;
    uint32_t length;
    uint32_t flags; /* BLK_REP_* */
};

#endif
