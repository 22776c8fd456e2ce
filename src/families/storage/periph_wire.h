/* SPDX-License-Identifier: MIT */
/* periph_wire.h — CDBs from a peripheral driver to the controller driver
 * that owns its LUN, on a SOCK_SEQPACKET socket odkd hands both sides
 * (peripheral.c).  One message per request and per reply, native byte
 * order.  A request with data carries the peripheral's memfd (SCM_RIGHTS):
 * the controller's device reads and writes it in place. */
#ifndef ODK_STORAGE_PERIPH_WIRE_H
#define ODK_STORAGE_PERIPH_WIRE_H

#include <stdint.h>

#include "odk/scsi.h"

#define PERIPH_REQ_MAGIC 0x6f646b63u /* "odkc" */
#define PERIPH_REP_MAGIC 0x6f646b64u /* "odkd" */

struct periph_req {
    uint32_t magic;
    uint8_t cdb_len, dir, pad[2];
    uint64_t id;
    uint8_t cdb[ODK_SCSI_CDB_MAX];
    uint64_t mem_len; /* the memfd's length (0: no data, no fd) */
    uint64_t offset, length;
    uint32_t timeout_ms, pad2;
};

struct periph_rep {
    uint32_t magic;
    uint32_t service_response;
    uint64_t id;
    uint64_t transferred;
    uint8_t status, pad[3];
    uint32_t sense_len;
    uint8_t sense[ODK_SCSI_SENSE_MAX];
};

#endif
