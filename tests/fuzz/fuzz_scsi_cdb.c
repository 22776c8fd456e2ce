/* SPDX-License-Identifier: MIT */
/* fuzz_scsi_cdb — the CDB checker and the SBC-3 disk emulation on
 * arbitrary CDBs, the way a peripheral driver or a guest could send them.
 *
 * Input: byte 0 picks the CDB length (1..16) and the fault injection,
 * byte 1 the data-in buffer size, then the CDB, then the data-out bytes.
 * The disk (64 blocks of 512 bytes, thin-provisioned) lives in memory and
 * keeps its state across inputs, as a real LUN does across commands.
 *
 * Invariants, else the harness aborts: execute always answers; GOOD comes
 * without sense and CHECK CONDITION with sense that parses; transferred
 * plus residual is the buffer's length; a CDB the strict checker refuses
 * is never GOOD; every refusal says why. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odk/scsi.h"
#include "odk/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BS 512u
#define BLOCKS 64u

static uint8_t medium[BS * BLOCKS];

static int m_read(void *ctx, uint64_t off, void *buf, size_t len)
{
    if (off > sizeof medium || len > sizeof medium - off)
        abort(); /* the disk asked for blocks outside itself */
    memcpy(buf, medium + off, len);
    return ODK_OK;
}

static int m_write(void *ctx, uint64_t off, const void *buf, size_t len, bool fua)
{
    if (off > sizeof medium || len > sizeof medium - off)
        abort();
    memcpy(medium + off, buf, len);
    return ODK_OK;
}

static int m_flush(void *ctx)
{
    return ODK_OK;
}

static int m_unmap(void *ctx, uint64_t off, uint64_t len)
{
    if (off > sizeof medium || len > sizeof medium - off)
        abort();
    memset(medium + off, 0, (size_t)len);
    return ODK_OK;
}

static odk_scsi_disk *disk;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    if (!disk) {
        odk_scsi_disk_backend be = {m_read, m_write, m_flush, m_unmap, NULL};
        odk_scsi_disk_config cfg = {.block_size = BS,
                                    .block_count = BLOCKS,
                                    .write_cache = true,
                                    .max_transfer_blocks = 32};
        if (odk_scsi_disk_create(&cfg, &be, &disk) != ODK_OK)
            abort();
    }
    size_t cdb_len = 1u + (data[0] & 0x0f);
    unsigned faults = data[0] >> 4;
    size_t in_len = (size_t)data[1] * 64;
    data += 2, size -= 2;
    if (size < cdb_len)
        cdb_len = size;
    uint8_t *cdb = malloc(cdb_len);
    size_t out_len = size - cdb_len;
    uint8_t *out = malloc(out_len ? out_len : 1);
    uint8_t *in = malloc(in_len ? in_len : 1);
    if (!cdb || !out || !in)
        abort();
    memcpy(cdb, data, cdb_len);
    memcpy(out, data + cdb_len, out_len);

    odk_scsi_disk_set_not_ready(disk, faults & 1);
    if (faults & 2)
        odk_scsi_disk_set_medium_error(disk, data[0] % BLOCKS, 1 + (faults >> 2), faults & 4);
    else
        odk_scsi_disk_set_medium_error(disk, 0, 0, false);
    if (faults == 0xf)
        odk_scsi_disk_post_unit_attention(disk, 0x29, 0x00);

    odk_scsi_cdb_error err;
    int strict =
        odk_scsi_cdb_check_fields(cdb, cdb_len, ODK_SCSI_TYPE_DISK, ODK_SCSI_CHECK_STRICT, &err);
    if (strict != ODK_OK && !err.text[0])
        abort();
    odk_scsi_dir dir = out_len  ? ODK_SCSI_DIR_TO_DEVICE
                       : in_len ? ODK_SCSI_DIR_FROM_DEVICE
                                : ODK_SCSI_DIR_NONE;
    if (odk_scsi_cdb_check(cdb, cdb_len, ODK_SCSI_TYPE_ANY, 0, dir, out_len ? out_len : in_len, BS,
                           &err) != ODK_OK &&
        !err.text[0])
        abort();
    odk_scsi_cdb_info info;
    (void)odk_scsi_cdb_decode(cdb, cdb_len, &info);

    odk_scsi_result res;
    if (odk_scsi_disk_execute(disk, cdb, cdb_len, out, out_len, in, in_len, &res) != ODK_OK)
        abort();
    size_t buf_len = in_len ? in_len : out_len;
    if (res.transferred + res.residual != buf_len || res.transferred > buf_len) {
        fprintf(stderr, "fuzz_scsi_cdb: transferred %zu + residual %zu != %zu\n", res.transferred,
                res.residual, buf_len);
        abort();
    }
    if (res.status == ODK_SCSI_STATUS_GOOD) {
        if (res.sense_len || strict != ODK_OK) {
            fprintf(stderr, "fuzz_scsi_cdb: GOOD for a CDB the checker refused (%s)\n", err.text);
            abort();
        }
    } else {
        odk_scsi_sense s;
        if (res.status != ODK_SCSI_STATUS_CHECK_CONDITION ||
            odk_scsi_sense_parse(res.sense, res.sense_len, &s) != ODK_OK || !s.key)
            abort();
    }
    free(cdb);
    free(out);
    free(in);
    return 0;
}
