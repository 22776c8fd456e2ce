/* SPDX-License-Identifier: MIT */
/* CDB builders, the table of commands the library knows, and decoding a
 * CDB's opcode, direction and lengths (SPC-4, SBC-3). */
#include <string.h>

#include "odk/scsi.h"
#include "odk/status.h"
#include "scsi_internal.h"

#define IN ODK_SCSI_DIR_FROM_DEVICE
#define OUT ODK_SCSI_DIR_TO_DEVICE
#define NONE ODK_SCSI_DIR_NONE
#define CTL(n) [(n)-1] = 0x38 /* CONTROL: bits 5-3 reserved */

/* Reserved bits as SPC-4 and SBC-3 mark them.  Obsolete bits are not
 * listed: old initiators still set some of them and devices ignore them.
 * Fields in struct order (scsi_internal.h); one command per entry. */
/* clang-format off */
static const scsi_cdb_spec specs[] = {
    {ODK_SCSI_OP_TEST_UNIT_READY, -1, "TEST UNIT READY", 6, NONE, 0, SCSI_LEN_NONE, 0, 0, 0, 0, 0,
     0, NULL, {[1] = 0xff, [2] = 0xff, [3] = 0xff, [4] = 0xff, CTL(6)}},
    {ODK_SCSI_OP_REQUEST_SENSE, -1, "REQUEST SENSE", 6, IN, 0, SCSI_LEN_BYTES, 4, 1, 0, 0, 0, 0,
     "ALLOCATION LENGTH", {[1] = 0xfe, [2] = 0xff, [3] = 0xff, CTL(6)}},
    {ODK_SCSI_OP_INQUIRY, -1, "INQUIRY", 6, IN, 0, SCSI_LEN_BYTES, 3, 2, 0, 0, 0, 0,
     "ALLOCATION LENGTH", {[1] = 0xfe, CTL(6)}},
    {ODK_SCSI_OP_MODE_SELECT_6, -1, "MODE SELECT (6)", 6, OUT, 0, SCSI_LEN_BYTES, 4, 1, 0, 0, 0, 0,
     "PARAMETER LIST LENGTH", {[1] = 0xee, [2] = 0xff, [3] = 0xff, CTL(6)}},
    {ODK_SCSI_OP_MODE_SENSE_6, -1, "MODE SENSE (6)", 6, IN, 0, SCSI_LEN_BYTES, 4, 1, 0, 0, 0, 0,
     "ALLOCATION LENGTH", {[1] = 0xf7, CTL(6)}},
    {ODK_SCSI_OP_START_STOP_UNIT, -1, "START STOP UNIT", 6, NONE, 1, SCSI_LEN_NONE, 0, 0, 0, 0, 0,
     0, NULL, {[1] = 0xfe, [2] = 0xff, [3] = 0xf0, [4] = 0x08, CTL(6)}},
    {ODK_SCSI_OP_READ_CAPACITY_10, -1, "READ CAPACITY (10)", 10, IN, 1, SCSI_LEN_BYTES, 8, 0, 2, 4,
     0, 0, "(fixed 8 bytes)", {[1] = 0xfe, [6] = 0xff, [7] = 0xff, [8] = 0xfe, CTL(10)}},
    {ODK_SCSI_OP_READ_10, -1, "READ (10)", 10, IN, 1, SCSI_LEN_BLOCKS, 7, 2, 2, 4, 7, 2,
     "TRANSFER LENGTH", {[6] = 0xe0, CTL(10)}},
    {ODK_SCSI_OP_WRITE_10, -1, "WRITE (10)", 10, OUT, 1, SCSI_LEN_BLOCKS, 7, 2, 2, 4, 7, 2,
     "TRANSFER LENGTH", {[1] = 0x04, [6] = 0xe0, CTL(10)}},
    {ODK_SCSI_OP_SYNCHRONIZE_CACHE_10, -1, "SYNCHRONIZE CACHE (10)", 10, NONE, 1, SCSI_LEN_NONE, 0,
     0, 2, 4, 7, 2, NULL, {[1] = 0xf8, [6] = 0xe0, CTL(10)}},
    {ODK_SCSI_OP_WRITE_SAME_10, -1, "WRITE SAME (10)", 10, OUT, 1, SCSI_LEN_BLOCK1, 0, 0, 2, 4, 7,
     2, "(one block)", {[1] = 0x01, [6] = 0xe0, CTL(10)}},
    {ODK_SCSI_OP_UNMAP, -1, "UNMAP", 10, OUT, 1, SCSI_LEN_BYTES, 7, 2, 0, 0, 0, 0,
     "PARAMETER LIST LENGTH",
     {[1] = 0xfe, [2] = 0xff, [3] = 0xff, [4] = 0xff, [5] = 0xff, [6] = 0xe0, CTL(10)}},
    {ODK_SCSI_OP_MODE_SELECT_10, -1, "MODE SELECT (10)", 10, OUT, 0, SCSI_LEN_BYTES, 7, 2, 0, 0, 0,
     0, "PARAMETER LIST LENGTH",
     {[1] = 0xee, [2] = 0xff, [3] = 0xff, [4] = 0xff, [5] = 0xff, [6] = 0xff, CTL(10)}},
    {ODK_SCSI_OP_MODE_SENSE_10, -1, "MODE SENSE (10)", 10, IN, 0, SCSI_LEN_BYTES, 7, 2, 0, 0, 0, 0,
     "ALLOCATION LENGTH", {[1] = 0xe7, [4] = 0xff, [5] = 0xff, [6] = 0xff, CTL(10)}},
    {ODK_SCSI_OP_READ_16, -1, "READ (16)", 16, IN, 1, SCSI_LEN_BLOCKS, 10, 4, 2, 8, 10, 4,
     "TRANSFER LENGTH", {CTL(16)}},
    {ODK_SCSI_OP_WRITE_16, -1, "WRITE (16)", 16, OUT, 1, SCSI_LEN_BLOCKS, 10, 4, 2, 8, 10, 4,
     "TRANSFER LENGTH", {[1] = 0x04, CTL(16)}},
    {ODK_SCSI_OP_SYNCHRONIZE_CACHE_16, -1, "SYNCHRONIZE CACHE (16)", 16, NONE, 1, SCSI_LEN_NONE, 0,
     0, 2, 8, 10, 4, NULL, {[1] = 0xf8, [14] = 0xc0, CTL(16)}},
    {ODK_SCSI_OP_WRITE_SAME_16, -1, "WRITE SAME (16)", 16, OUT, 1, SCSI_LEN_BLOCK1, 0, 0, 2, 8, 10,
     4, "(one block)", {[14] = 0xc0, CTL(16)}},
    {ODK_SCSI_OP_SERVICE_ACTION_IN_16, ODK_SCSI_SA_READ_CAPACITY_16, "READ CAPACITY (16)", 16, IN,
     1, SCSI_LEN_BYTES, 10, 4, 2, 8, 0, 0, "ALLOCATION LENGTH",
     {[1] = 0xe0, [14] = 0xfe, CTL(16)}},
    {ODK_SCSI_OP_REPORT_LUNS, -1, "REPORT LUNS", 12, IN, 0, SCSI_LEN_BYTES, 6, 4, 0, 0, 0, 0,
     "ALLOCATION LENGTH", {[1] = 0xff, [3] = 0xff, [4] = 0xff, [5] = 0xff, [10] = 0xff, CTL(12)}},
};
/* clang-format on */

const scsi_cdb_spec *scsi_cdb_spec_find(const uint8_t *cdb, size_t cdb_len)
{
    if (!cdb || !cdb_len)
        return NULL;
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        const scsi_cdb_spec *s = &specs[i];
        if (s->opcode != cdb[0])
            continue;
        if (s->sa < 0)
            return s;
        if (cdb_len > 1 && (cdb[1] & 0x1f) == s->sa)
            return s;
    }
    return NULL;
}

const char *odk_scsi_opcode_name(uint8_t opcode, uint8_t service_action)
{
    uint8_t cdb[2] = {opcode, service_action};
    const scsi_cdb_spec *s = scsi_cdb_spec_find(cdb, sizeof cdb);
    return s ? s->name : NULL;
}

size_t odk_scsi_cdb_group_length(uint8_t opcode)
{
    static const uint8_t by_group[8] = {6, 10, 10, 0, 16, 12, 0, 0};
    return by_group[opcode >> 5];
}

static uint64_t get_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

int odk_scsi_cdb_decode(const uint8_t *cdb, size_t cdb_len, odk_scsi_cdb_info *info)
{
    if (!cdb || !info || !cdb_len)
        return ODK_E_INVALID;
    memset(info, 0, sizeof *info);
    const scsi_cdb_spec *s = scsi_cdb_spec_find(cdb, cdb_len);
    if (!s)
        return ODK_E_NOT_FOUND;
    info->name = s->name;
    if (cdb_len < s->len)
        return ODK_E_PROTOCOL;
    info->dir = (odk_scsi_dir)s->dir;
    if (s->lba_size)
        info->lba = get_be(cdb + s->lba_off, s->lba_size);
    if (s->blocks_size)
        info->blocks = (uint32_t)get_be(cdb + s->blocks_off, s->blocks_size);
    switch (s->len_kind) {
    case SCSI_LEN_BYTES:
        info->length = s->len_size ? (uint32_t)get_be(cdb + s->len_off, s->len_size) : s->len_off;
        break;
    case SCSI_LEN_BLOCKS:
        info->length = info->blocks;
        info->length_in_blocks = true;
        break;
    case SCSI_LEN_BLOCK1:
        /* WRITE SAME (16) with NDOB sends no data. */
        info->length = (cdb[0] == ODK_SCSI_OP_WRITE_SAME_16 && (cdb[1] & 1)) ? 0 : 1;
        info->length_in_blocks = true;
        if (!info->length)
            info->dir = ODK_SCSI_DIR_NONE;
        break;
    default:
        break;
    }
    if (s->len_kind == SCSI_LEN_BLOCKS) {
        info->fua = cdb[1] & ODK_SCSI_RW_FUA;
        info->dpo = cdb[1] & ODK_SCSI_RW_DPO;
    }
    return ODK_OK;
}

/* ---- builders ------------------------------------------------------------ */

static void start(odk_scsi_cdb *cdb, uint8_t opcode, uint8_t len)
{
    memset(cdb, 0, sizeof *cdb);
    cdb->bytes[0] = opcode;
    cdb->length = len;
}

static int refuse(odk_scsi_cdb *cdb)
{
    memset(cdb, 0, sizeof *cdb);
    return ODK_E_INVALID;
}

int odk_scsi_build_inquiry(odk_scsi_cdb *cdb, bool evpd, uint8_t page, uint16_t allocation_length)
{
    if (!evpd && page)
        return refuse(cdb);
    start(cdb, ODK_SCSI_OP_INQUIRY, 6);
    cdb->bytes[1] = evpd ? 1 : 0;
    cdb->bytes[2] = page;
    scsi_put16(cdb->bytes + 3, allocation_length);
    return ODK_OK;
}

int odk_scsi_build_test_unit_ready(odk_scsi_cdb *cdb)
{
    start(cdb, ODK_SCSI_OP_TEST_UNIT_READY, 6);
    return ODK_OK;
}

int odk_scsi_build_request_sense(odk_scsi_cdb *cdb, bool desc, uint8_t allocation_length)
{
    start(cdb, ODK_SCSI_OP_REQUEST_SENSE, 6);
    cdb->bytes[1] = desc ? 1 : 0;
    cdb->bytes[4] = allocation_length;
    return ODK_OK;
}

int odk_scsi_build_read_capacity_10(odk_scsi_cdb *cdb)
{
    start(cdb, ODK_SCSI_OP_READ_CAPACITY_10, 10);
    return ODK_OK;
}

int odk_scsi_build_read_capacity_16(odk_scsi_cdb *cdb, uint32_t allocation_length)
{
    start(cdb, ODK_SCSI_OP_SERVICE_ACTION_IN_16, 16);
    cdb->bytes[1] = ODK_SCSI_SA_READ_CAPACITY_16;
    scsi_put32(cdb->bytes + 10, allocation_length);
    return ODK_OK;
}

static int rw10(odk_scsi_cdb *cdb, uint8_t op, uint64_t lba, uint32_t blocks, unsigned flags)
{
    if (lba > UINT32_MAX || blocks > UINT16_MAX || (flags & ~(ODK_SCSI_RW_FUA | ODK_SCSI_RW_DPO)))
        return refuse(cdb);
    start(cdb, op, 10);
    cdb->bytes[1] = (uint8_t)flags;
    scsi_put32(cdb->bytes + 2, (uint32_t)lba);
    scsi_put16(cdb->bytes + 7, (uint16_t)blocks);
    return ODK_OK;
}

static int rw16(odk_scsi_cdb *cdb, uint8_t op, uint64_t lba, uint32_t blocks, unsigned flags)
{
    if (flags & ~(ODK_SCSI_RW_FUA | ODK_SCSI_RW_DPO))
        return refuse(cdb);
    start(cdb, op, 16);
    cdb->bytes[1] = (uint8_t)flags;
    scsi_put64(cdb->bytes + 2, lba);
    scsi_put32(cdb->bytes + 10, blocks);
    return ODK_OK;
}

int odk_scsi_build_read_10(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, unsigned flags)
{
    return rw10(cdb, ODK_SCSI_OP_READ_10, lba, blocks, flags);
}

int odk_scsi_build_write_10(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, unsigned flags)
{
    return rw10(cdb, ODK_SCSI_OP_WRITE_10, lba, blocks, flags);
}

int odk_scsi_build_read_16(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, unsigned flags)
{
    return rw16(cdb, ODK_SCSI_OP_READ_16, lba, blocks, flags);
}

int odk_scsi_build_write_16(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, unsigned flags)
{
    return rw16(cdb, ODK_SCSI_OP_WRITE_16, lba, blocks, flags);
}

int odk_scsi_build_read(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, unsigned flags)
{
    if (lba <= UINT32_MAX && blocks <= UINT16_MAX)
        return odk_scsi_build_read_10(cdb, lba, blocks, flags);
    return odk_scsi_build_read_16(cdb, lba, blocks, flags);
}

int odk_scsi_build_write(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, unsigned flags)
{
    if (lba <= UINT32_MAX && blocks <= UINT16_MAX)
        return odk_scsi_build_write_10(cdb, lba, blocks, flags);
    return odk_scsi_build_write_16(cdb, lba, blocks, flags);
}

int odk_scsi_build_synchronize_cache_10(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks,
                                        bool immed)
{
    if (lba > UINT32_MAX || blocks > UINT16_MAX)
        return refuse(cdb);
    start(cdb, ODK_SCSI_OP_SYNCHRONIZE_CACHE_10, 10);
    cdb->bytes[1] = immed ? 0x02 : 0;
    scsi_put32(cdb->bytes + 2, (uint32_t)lba);
    scsi_put16(cdb->bytes + 7, (uint16_t)blocks);
    return ODK_OK;
}

int odk_scsi_build_synchronize_cache_16(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks,
                                        bool immed)
{
    start(cdb, ODK_SCSI_OP_SYNCHRONIZE_CACHE_16, 16);
    cdb->bytes[1] = immed ? 0x02 : 0;
    scsi_put64(cdb->bytes + 2, lba);
    scsi_put32(cdb->bytes + 10, blocks);
    return ODK_OK;
}

int odk_scsi_build_mode_sense_6(odk_scsi_cdb *cdb, bool dbd, uint8_t pc, uint8_t page,
                                uint8_t subpage, uint8_t allocation_length)
{
    if (pc > 3 || page > 0x3f)
        return refuse(cdb);
    start(cdb, ODK_SCSI_OP_MODE_SENSE_6, 6);
    cdb->bytes[1] = dbd ? 0x08 : 0;
    cdb->bytes[2] = (uint8_t)(pc << 6 | page);
    cdb->bytes[3] = subpage;
    cdb->bytes[4] = allocation_length;
    return ODK_OK;
}

int odk_scsi_build_mode_sense_10(odk_scsi_cdb *cdb, bool llbaa, bool dbd, uint8_t pc, uint8_t page,
                                 uint8_t subpage, uint16_t allocation_length)
{
    if (pc > 3 || page > 0x3f)
        return refuse(cdb);
    start(cdb, ODK_SCSI_OP_MODE_SENSE_10, 10);
    cdb->bytes[1] = (uint8_t)((llbaa ? 0x10 : 0) | (dbd ? 0x08 : 0));
    cdb->bytes[2] = (uint8_t)(pc << 6 | page);
    cdb->bytes[3] = subpage;
    scsi_put16(cdb->bytes + 7, allocation_length);
    return ODK_OK;
}

int odk_scsi_build_mode_select_6(odk_scsi_cdb *cdb, bool pf, bool sp, uint8_t parameter_list_length)
{
    start(cdb, ODK_SCSI_OP_MODE_SELECT_6, 6);
    cdb->bytes[1] = (uint8_t)((pf ? 0x10 : 0) | (sp ? 0x01 : 0));
    cdb->bytes[4] = parameter_list_length;
    return ODK_OK;
}

int odk_scsi_build_mode_select_10(odk_scsi_cdb *cdb, bool pf, bool sp,
                                  uint16_t parameter_list_length)
{
    start(cdb, ODK_SCSI_OP_MODE_SELECT_10, 10);
    cdb->bytes[1] = (uint8_t)((pf ? 0x10 : 0) | (sp ? 0x01 : 0));
    scsi_put16(cdb->bytes + 7, parameter_list_length);
    return ODK_OK;
}

int odk_scsi_build_report_luns(odk_scsi_cdb *cdb, uint8_t select_report, uint32_t allocation_length)
{
    if (allocation_length < 16)
        return refuse(cdb);
    start(cdb, ODK_SCSI_OP_REPORT_LUNS, 12);
    cdb->bytes[2] = select_report;
    scsi_put32(cdb->bytes + 6, allocation_length);
    return ODK_OK;
}

int odk_scsi_build_unmap(odk_scsi_cdb *cdb, bool anchor, const odk_scsi_unmap_range *ranges,
                         size_t n, uint8_t *list, size_t list_cap, size_t *list_len)
{
    if (!list || !list_len || (n && !ranges))
        return refuse(cdb);
    if (n > 4095 || list_cap < 8 + 16 * n) {
        memset(cdb, 0, sizeof *cdb);
        return ODK_E_LIMIT;
    }
    size_t total = 8 + 16 * n;
    memset(list, 0, total);
    scsi_put16(list, (uint16_t)(total - 2));
    scsi_put16(list + 2, (uint16_t)(16 * n));
    for (size_t i = 0; i < n; i++) {
        scsi_put64(list + 8 + 16 * i, ranges[i].lba);
        scsi_put32(list + 8 + 16 * i + 8, ranges[i].blocks);
    }
    start(cdb, ODK_SCSI_OP_UNMAP, 10);
    cdb->bytes[1] = anchor ? 1 : 0;
    scsi_put16(cdb->bytes + 7, (uint16_t)total);
    *list_len = total;
    return ODK_OK;
}

int odk_scsi_build_write_same_10(odk_scsi_cdb *cdb, uint64_t lba, uint16_t blocks, bool unmap)
{
    if (lba > UINT32_MAX)
        return refuse(cdb);
    start(cdb, ODK_SCSI_OP_WRITE_SAME_10, 10);
    cdb->bytes[1] = unmap ? 0x08 : 0;
    scsi_put32(cdb->bytes + 2, (uint32_t)lba);
    scsi_put16(cdb->bytes + 7, blocks);
    return ODK_OK;
}

int odk_scsi_build_write_same_16(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, bool unmap)
{
    start(cdb, ODK_SCSI_OP_WRITE_SAME_16, 16);
    cdb->bytes[1] = unmap ? 0x08 : 0;
    scsi_put64(cdb->bytes + 2, lba);
    scsi_put32(cdb->bytes + 10, blocks);
    return ODK_OK;
}

int odk_scsi_build_start_stop_unit(odk_scsi_cdb *cdb, bool immed, uint8_t power_condition,
                                   bool loej, bool start_unit)
{
    if (power_condition > 0x0f)
        return refuse(cdb);
    start(cdb, ODK_SCSI_OP_START_STOP_UNIT, 6);
    cdb->bytes[1] = immed ? 1 : 0;
    cdb->bytes[4] = (uint8_t)(power_condition << 4 | (loej ? 0x02 : 0) | (start_unit ? 0x01 : 0));
    return ODK_OK;
}
