/* SPDX-License-Identifier: MIT */
/* scsi_inquiry.h — the scsi-inquiry driver's user-client interface, shared
 * with its apps (odkctl scsi).
 *   selector 0  standard INQUIRY: scalar_in[0] allocation length (1..65535)
 *   selector 1  a VPD page: scalar_in[0] page code, [1] allocation length
 *   selector 2  a raw CDB (standard or vendor-specific): struct_in is the
 *               CDB's length (1 byte), the CDB, then the data to send;
 *               scalar_in[0] direction (odk_scsi_dir), [1] bytes to
 *               receive, [2] flags (SCSI_INQ_UNCHECKED: the device, not
 *               the library's checker, judges the CDB), [3] timeout in ms
 *               (0: the family's 30 s)
 * Each answers struct_out: a scsi_inq_reply, then the bytes received. */
#ifndef SCSI_INQUIRY_H
#define SCSI_INQUIRY_H

#include <stdint.h>

#define SCSI_INQ_STANDARD 0u
#define SCSI_INQ_VPD 1u
#define SCSI_INQ_RAW 2u

#define SCSI_INQ_UNCHECKED 0x1u
/* scsi_inq_reply.service_response when the controller never completed the
 * CDB (odk/storage.h's ODK_SCSI_TASK_TIMED_OUT) */
#define SCSI_INQ_TIMED_OUT 2u
#define SCSI_INQ_DATA_MAX 65536u

struct scsi_inq_reply {
    int32_t result; /* ODK_OK: the LUN answered; ODK_E_PROTOCOL: the checker refused (text) */
    uint32_t service_response;
    uint32_t status; /* SCSI status */
    uint32_t transferred;
    uint32_t sense_len;
    uint8_t sense[252];
    char text[256]; /* the checker's sentence, or the sense in words, or "" */
};

#endif
