/* SPDX-License-Identifier: MIT */
/* The CDB checker: refuses a malformed CDB before it is sent (or, in the
 * disk emulation, before it is executed) and names the byte, bits and field
 * at fault. */
#include <stdio.h>
#include <string.h>

#include "odk/scsi.h"
#include "odk/status.h"
#include "scsi_internal.h"

static int fail(odk_scsi_cdb_error *err, uint8_t byte, int bit, uint8_t asc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(odk_scsi_cdb_error *err, uint8_t byte, int bit, uint8_t asc, const char *fmt, ...)
{
    if (err) {
        err->byte = byte;
        err->bit = (int8_t)bit;
        err->asc = asc;
        err->ascq = 0;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->text, sizeof err->text, fmt, ap);
        va_end(ap);
    }
    return ODK_E_PROTOCOL;
}

#define ASC_INVALID_OPCODE 0x20
#define ASC_INVALID_FIELD 0x24

/* The run of reserved bits in mask that holds bit top: "bit 4 is" or
 * "bits 7-5 are". */
static int reserved_bits(odk_scsi_cdb_error *err, const char *name, unsigned byte, uint8_t mask,
                         uint8_t value)
{
    uint8_t set = value & mask;
    int top = 7;
    while (!(set & (1u << top)))
        top--;
    int low = top;
    while (low > 0 && (mask & (1u << (low - 1))))
        low--;
    int high = top;
    while (high < 7 && (mask & (1u << (high + 1))))
        high++;
    uint8_t run = (uint8_t)(((1u << (high + 1)) - 1) & ~((1u << low) - 1));
    if (high == low)
        return fail(err, (uint8_t)byte, top, ASC_INVALID_FIELD,
                    "%s: byte %u bit %d is reserved and set (0x%02x)", name, byte, high,
                    value & run);
    return fail(err, (uint8_t)byte, top, ASC_INVALID_FIELD,
                "%s: byte %u bits %d-%d are reserved and set (0x%02x)", name, byte, high, low,
                value & run);
}

static bool valid_power_condition(uint8_t pc)
{
    return pc <= 3 || pc == 7 || pc == 0xa || pc == 0xb;
}

/* Field values the standards forbid, beyond reserved bits. */
static int check_values(const uint8_t *c, const scsi_cdb_spec *s, odk_scsi_cdb_error *err)
{
    switch (c[0]) {
    case ODK_SCSI_OP_INQUIRY:
        if (!(c[1] & 1) && c[2])
            return fail(err, 2, -1, ASC_INVALID_FIELD,
                        "INQUIRY: byte 2 (PAGE CODE) is 0x%02x but EVPD (byte 1 bit 0) is 0", c[2]);
        break;
    case ODK_SCSI_OP_READ_CAPACITY_10:
        if (!(c[8] & 1) && scsi_get32(c + 2))
            return fail(err, 2, -1, ASC_INVALID_FIELD,
                        "READ CAPACITY (10): bytes 2-5 (LOGICAL BLOCK ADDRESS) are 0x%08x but PMI "
                        "(byte 8 bit 0) is 0",
                        scsi_get32(c + 2));
        break;
    case ODK_SCSI_OP_SERVICE_ACTION_IN_16:
        if (!(c[14] & 1) && scsi_get64(c + 2))
            return fail(err, 2, -1, ASC_INVALID_FIELD,
                        "READ CAPACITY (16): bytes 2-9 (LOGICAL BLOCK ADDRESS) are 0x%llx but PMI "
                        "(byte 14 bit 0) is 0",
                        (unsigned long long)scsi_get64(c + 2));
        break;
    case ODK_SCSI_OP_REPORT_LUNS: {
        uint8_t sel = c[2];
        if (!(sel <= 2 || (sel >= 0x10 && sel <= 0x12)))
            return fail(err, 2, -1, ASC_INVALID_FIELD,
                        "REPORT LUNS: byte 2 (SELECT REPORT) is 0x%02x, a reserved value", sel);
        if (scsi_get32(c + 6) < 16)
            return fail(err, 6, -1, ASC_INVALID_FIELD,
                        "REPORT LUNS: bytes 6-9 (ALLOCATION LENGTH) are %u; the least is 16",
                        scsi_get32(c + 6));
        break;
    }
    case ODK_SCSI_OP_START_STOP_UNIT:
        if (!valid_power_condition(c[4] >> 4))
            return fail(err, 4, 7, ASC_INVALID_FIELD,
                        "START STOP UNIT: byte 4 bits 7-4 (POWER CONDITION) are 0x%x, a reserved "
                        "value",
                        c[4] >> 4);
        break;
    case ODK_SCSI_OP_MODE_SENSE_6:
    case ODK_SCSI_OP_MODE_SENSE_10:
        break;
    default:
        break;
    }
    (void)s;
    return ODK_OK;
}

int odk_scsi_cdb_check_fields(const uint8_t *cdb, size_t cdb_len, int device_type, unsigned flags,
                              odk_scsi_cdb_error *err)
{
    if (err)
        memset(err, 0, sizeof *err);
    if (!cdb || !cdb_len)
        return ODK_E_INVALID;
    uint8_t op = cdb[0];
    size_t group_len = odk_scsi_cdb_group_length(op);
    unsigned group = op >> 5;
    if (!group_len) {
        if (group == 3)
            return fail(err, 0, -1, ASC_INVALID_OPCODE,
                        "opcode 0x%02x: group 3 is reserved (0x7f is the variable-length CDB, "
                        "which odk does not send)",
                        op);
        if (cdb_len < 6 || cdb_len > ODK_SCSI_CDB_MAX)
            return fail(err, 0, -1, ASC_INVALID_FIELD,
                        "vendor-specific opcode 0x%02x: the CDB is %zu bytes; odk sends 6 to %u",
                        op, cdb_len, ODK_SCSI_CDB_MAX);
    } else if (cdb_len != group_len) {
        const scsi_cdb_spec *s = scsi_cdb_spec_find(cdb, cdb_len);
        return fail(err, 0, -1, ASC_INVALID_FIELD,
                    "%s%sopcode 0x%02x: the CDB is %zu bytes; group %u opcodes take %zu",
                    s ? s->name : "", s ? ": " : "", op, cdb_len, group, group_len);
    }
    const scsi_cdb_spec *s = scsi_cdb_spec_find(cdb, cdb_len);
    if (!s) {
        if (flags & ODK_SCSI_CHECK_STRICT) {
            if (op == ODK_SCSI_OP_SERVICE_ACTION_IN_16)
                return fail(err, 1, 4, ASC_INVALID_FIELD,
                            "SERVICE ACTION IN (16): byte 1 bits 4-0 (SERVICE ACTION) 0x%02x is "
                            "not one odk knows",
                            cdb[1] & 0x1f);
            return fail(err, 0, -1, ASC_INVALID_OPCODE, "opcode 0x%02x is not one odk knows", op);
        }
        return ODK_OK;
    }
    if (s->disk_only && device_type != ODK_SCSI_TYPE_ANY && device_type != ODK_SCSI_TYPE_DISK &&
        device_type != 0x0e && device_type != 0x14)
        return fail(err, 0, -1, ASC_INVALID_OPCODE, "%s is not defined for device type 0x%02x (%s)",
                    s->name, (unsigned)device_type & 0xffu, scsi_device_type_name(device_type));
    for (unsigned i = 0; i < s->len; i++)
        if (cdb[i] & s->reserved[i])
            return reserved_bits(err, s->name, i, s->reserved[i], cdb[i]);
    return check_values(cdb, s, err);
}

static const char *bytes_word(unsigned off, unsigned size, char *buf, size_t len)
{
    if (size == 1)
        snprintf(buf, len, "byte %u", off);
    else
        snprintf(buf, len, "bytes %u-%u", off, off + size - 1);
    return buf;
}

int odk_scsi_cdb_check(const uint8_t *cdb, size_t cdb_len, int device_type, unsigned flags,
                       odk_scsi_dir dir, size_t buffer_len, uint32_t block_size,
                       odk_scsi_cdb_error *err)
{
    int st = odk_scsi_cdb_check_fields(cdb, cdb_len, device_type, flags, err);
    if (st != ODK_OK)
        return st;
    odk_scsi_cdb_info info;
    if (odk_scsi_cdb_decode(cdb, cdb_len, &info) != ODK_OK)
        return ODK_OK; /* unknown opcode: nothing known about its data */
    const scsi_cdb_spec *s = scsi_cdb_spec_find(cdb, cdb_len);
    char where[24];
    bytes_word(s->len_off, s->len_size, where, sizeof where);

    /* How many bytes the CDB says move (0: none), or unknown. */
    bool known = true;
    uint64_t want = info.length;
    if (info.length_in_blocks) {
        if (block_size)
            want = (uint64_t)info.length * block_size;
        else
            known = false;
    }
    odk_scsi_dir cmd_dir = want || !known ? info.dir : ODK_SCSI_DIR_NONE;
    if (cmd_dir == ODK_SCSI_DIR_NONE) {
        if (dir != ODK_SCSI_DIR_NONE && buffer_len)
            return fail(err, s->len_size ? s->len_off : 0, -1, 0,
                        "%s moves no data%s, but a %zu-byte %s buffer comes with it", s->name,
                        info.dir != ODK_SCSI_DIR_NONE ? " (its length is 0)" : "", buffer_len,
                        dir == ODK_SCSI_DIR_TO_DEVICE ? "data-out" : "data-in");
        return ODK_OK;
    }
    if (dir != cmd_dir)
        return fail(err, 0, -1, 0, "%s moves data %s, but the buffer is %s", s->name,
                    cmd_dir == ODK_SCSI_DIR_FROM_DEVICE ? "from the device (data-in)"
                                                        : "to the device (data-out)",
                    dir == ODK_SCSI_DIR_NONE          ? "absent"
                    : dir == ODK_SCSI_DIR_FROM_DEVICE ? "data-in"
                                                      : "data-out");
    if (!known)
        return ODK_OK;
    if (s->len_kind == SCSI_LEN_BLOCK1) {
        if (buffer_len != want)
            return fail(err, 1, -1, 0,
                        "%s: sends one %u-byte block of data-out, but the buffer holds %zu bytes",
                        s->name, block_size, buffer_len);
        return ODK_OK;
    }
    bool short_in = cmd_dir == ODK_SCSI_DIR_FROM_DEVICE && buffer_len < want;
    bool wrong_out = cmd_dir == ODK_SCSI_DIR_TO_DEVICE && buffer_len != want;
    if (!short_in && !wrong_out)
        return ODK_OK;
    if (info.length_in_blocks)
        return fail(err, s->len_off, -1, 0,
                    "%s: %s (%s) is %u blocks of %u bytes = %llu bytes, but the buffer holds %zu",
                    s->name, where, s->len_field, info.length, block_size, (unsigned long long)want,
                    buffer_len);
    if (!s->len_size)
        return fail(err, 0, -1, 0, "%s: returns %llu bytes, but the buffer holds %zu", s->name,
                    (unsigned long long)want, buffer_len);
    return fail(err, s->len_off, -1, 0, "%s: %s (%s) is %llu, but the buffer holds %zu bytes",
                s->name, where, s->len_field, (unsigned long long)want, buffer_len);
}
