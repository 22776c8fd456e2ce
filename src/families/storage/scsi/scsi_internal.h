/* SPDX-License-Identifier: MIT */
/* Private helpers of the SCSI library: big-endian fields and text into a
 * caller's buffer. */
#ifndef ODK_SCSI_INTERNAL_H
#define ODK_SCSI_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

static inline void scsi_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void scsi_put32(uint8_t *p, uint32_t v)
{
    scsi_put16(p, (uint16_t)(v >> 16));
    scsi_put16(p + 2, (uint16_t)v);
}

static inline void scsi_put64(uint8_t *p, uint64_t v)
{
    scsi_put32(p, (uint32_t)(v >> 32));
    scsi_put32(p + 4, (uint32_t)v);
}

static inline uint16_t scsi_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t scsi_get24(const uint8_t *p)
{
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static inline uint32_t scsi_get32(const uint8_t *p)
{
    return (uint32_t)scsi_get16(p) << 16 | scsi_get16(p + 2);
}

static inline uint64_t scsi_get64(const uint8_t *p)
{
    return (uint64_t)scsi_get32(p) << 32 | scsi_get32(p + 4);
}

/* How a command says how much data it moves. */
enum scsi_len_kind {
    SCSI_LEN_NONE,   /* no data */
    SCSI_LEN_BYTES,  /* allocation or parameter list length in bytes */
    SCSI_LEN_BLOCKS, /* transfer length in blocks */
    SCSI_LEN_BLOCK1, /* one block of data-out (WRITE SAME) */
};

/* One command the library knows: layout, reserved bits, where its length
 * and LBA sit.  sa < 0: no service action. */
typedef struct scsi_cdb_spec {
    uint8_t opcode;
    int16_t sa;
    const char *name;
    uint8_t len;
    uint8_t dir; /* odk_scsi_dir */
    uint8_t disk_only;
    uint8_t len_kind, len_off, len_size; /* len_size 0: always len_off bytes */
    uint8_t lba_off, lba_size;           /* lba_size 0: no LBA */
    uint8_t blocks_off, blocks_size;     /* blocks_size 0: no block count */
    const char *len_field;
    uint8_t reserved[16]; /* per byte: bits that must be zero */
} scsi_cdb_spec;

/* The spec for a CDB's opcode (and service action when cdb_len allows
 * reading it), or NULL. */
const scsi_cdb_spec *scsi_cdb_spec_find(const uint8_t *cdb, size_t cdb_len);

/* "direct-access block device" for a peripheral device type. */
const char *scsi_device_type_name(int type);

/* Text appended to a caller's buffer; truncated records that it was. */
typedef struct scsi_text {
    char *buf;
    size_t cap, len;
    int truncated;
} scsi_text;

void scsi_text_init(scsi_text *t, char *buf, size_t cap);
void scsi_text_add(scsi_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* ODK_OK, or ODK_E_LIMIT when something did not fit. */
int scsi_text_status(const scsi_text *t);

#endif
