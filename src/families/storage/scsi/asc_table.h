/* SPDX-License-Identifier: MIT */
/* The ASC/ASCQ table (asc_table.c), sorted by (asc, ascq). */
#ifndef ODK_SCSI_ASC_TABLE_H
#define ODK_SCSI_ASC_TABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct scsi_asc_entry {
    uint8_t asc, ascq;
    const char *text;
} scsi_asc_entry;

extern const scsi_asc_entry scsi_asc_table[];
extern const size_t scsi_asc_table_len;

#endif
