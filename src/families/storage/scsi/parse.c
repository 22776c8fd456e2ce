/* SPDX-License-Identifier: MIT */
/* Parsers for the data-in an initiator reads: standard INQUIRY data, READ
 * CAPACITY, REPORT LUNS, and the VPD pages a block layer needs. */
#include <string.h>

#include "odk/scsi.h"
#include "odk/status.h"
#include "scsi_internal.h"

const char *scsi_device_type_name(int type)
{
    switch (type) {
    case ODK_SCSI_TYPE_DISK:
        return "direct-access block device";
    case ODK_SCSI_TYPE_TAPE:
        return "sequential-access device";
    case 0x02:
        return "printer";
    case ODK_SCSI_TYPE_PROCESSOR:
        return "processor";
    case 0x04:
        return "write-once device";
    case ODK_SCSI_TYPE_CDROM:
        return "CD/DVD device";
    case 0x07:
        return "optical memory device";
    case 0x08:
        return "medium changer";
    case 0x0c:
        return "storage array controller";
    case ODK_SCSI_TYPE_ENCLOSURE:
        return "enclosure services device";
    case 0x0e:
        return "simplified direct-access device";
    case 0x0f:
        return "optical card reader/writer";
    case 0x11:
        return "object-based storage device";
    case 0x12:
        return "automation/drive interface";
    case 0x14:
        return "host managed zoned block device";
    case ODK_SCSI_TYPE_WELL_KNOWN_LU:
        return "well known logical unit";
    case ODK_SCSI_TYPE_UNKNOWN:
        return "unknown or no device type";
    default:
        return "reserved device type";
    }
}

/* Copies an ASCII field, '.' for what is not printable, trailing spaces
 * (and NULs, which some devices pad with) removed. */
static void ascii(char *dst, const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? (char)src[i] : '.';
    while (n && (dst[n - 1] == ' ' || (src[n - 1] == 0 && dst[n - 1] == '.')))
        n--;
    dst[n] = 0;
}

int odk_scsi_inquiry_parse(const uint8_t *buf, size_t len, odk_scsi_inquiry_data *out)
{
    if (!buf || !out)
        return ODK_E_INVALID;
    memset(out, 0, sizeof *out);
    if (len < 5)
        return ODK_E_PROTOCOL;
    out->qualifier = buf[0] >> 5;
    out->device_type = buf[0] & 0x1f;
    out->removable = buf[1] & 0x80;
    out->version = buf[2];
    out->normaca = buf[3] & 0x20;
    out->hisup = buf[3] & 0x10;
    out->response_format = buf[3] & 0x0f;
    out->additional_length = buf[4];
    if (len < ODK_SCSI_INQUIRY_STD_LEN || out->response_format != 2)
        return ODK_E_PROTOCOL;
    out->sccs = buf[5] & 0x80;
    out->acc = buf[5] & 0x40;
    out->tpgs_implicit = buf[5] & 0x10;
    out->tpgs_explicit = buf[5] & 0x20;
    out->three_pc = buf[5] & 0x08;
    out->protect = buf[5] & 0x01;
    out->encserv = buf[6] & 0x40;
    out->multip = buf[6] & 0x10;
    out->cmdque = buf[7] & 0x02;
    ascii(out->vendor, buf + 8, 8);
    ascii(out->product, buf + 16, 16);
    ascii(out->revision, buf + 32, 4);
    return ODK_OK;
}

int odk_scsi_capacity10_parse(const uint8_t *buf, size_t len, odk_scsi_capacity *out)
{
    if (!buf || !out)
        return ODK_E_INVALID;
    memset(out, 0, sizeof *out);
    if (len < 8)
        return ODK_E_PROTOCOL;
    out->last_lba = scsi_get32(buf);
    out->block_count = out->last_lba + 1;
    out->block_size = scsi_get32(buf + 4);
    return ODK_OK;
}

int odk_scsi_capacity16_parse(const uint8_t *buf, size_t len, odk_scsi_capacity *out)
{
    if (!buf || !out)
        return ODK_E_INVALID;
    memset(out, 0, sizeof *out);
    if (len < 32)
        return ODK_E_PROTOCOL;
    out->last_lba = scsi_get64(buf);
    /* The largest LBA has no block count in 64 bits; report the LBA's. */
    out->block_count = out->last_lba == UINT64_MAX ? UINT64_MAX : out->last_lba + 1;
    out->block_size = scsi_get32(buf + 8);
    out->prot_en = buf[12] & 0x01;
    out->p_type = (buf[12] >> 1) & 0x07;
    out->p_i_exponent = buf[13] >> 4;
    out->lb_per_pb_exponent = buf[13] & 0x0f;
    out->lbpme = buf[14] & 0x80;
    out->lbprz = buf[14] & 0x40;
    out->lowest_aligned_lba = (uint16_t)((buf[14] & 0x3f) << 8 | buf[15]);
    return ODK_OK;
}

int odk_scsi_report_luns_parse(const uint8_t *buf, size_t len, uint64_t *luns, size_t max,
                               size_t *count, size_t *total)
{
    if (!buf || !count || (max && !luns))
        return ODK_E_INVALID;
    if (len < 8)
        return ODK_E_PROTOCOL;
    uint32_t list = scsi_get32(buf);
    if (list % 8)
        return ODK_E_PROTOCOL;
    size_t listed = list / 8;
    size_t present = (len - 8) / 8;
    if (present > listed)
        present = listed;
    size_t n = present < max ? present : max;
    for (size_t i = 0; i < n; i++)
        luns[i] = scsi_get64(buf + 8 + 8 * i);
    *count = n;
    if (total)
        *total = listed;
    return ODK_OK;
}

uint64_t odk_scsi_lun_from_number(uint16_t number)
{
    if (number > 0x3fff)
        number = 0x3fff;
    uint64_t top = number < 256 ? number : (0x4000u | number);
    return top << 48;
}

int odk_scsi_lun_number(uint64_t lun)
{
    if (lun & 0x0000ffffffffffffull)
        return -1;
    unsigned top = (unsigned)(lun >> 48);
    switch (top >> 14) {
    case 0: /* peripheral device addressing, bus 0 */
        return top >> 8 ? -1 : (int)top;
    case 1: /* flat space addressing */
        return (int)(top & 0x3fff);
    default:
        return -1;
    }
}

int odk_scsi_vpd_block_limits_parse(const uint8_t *buf, size_t len, odk_scsi_block_limits *out)
{
    if (!buf || !out)
        return ODK_E_INVALID;
    memset(out, 0, sizeof *out);
    if (len < 64 || buf[1] != 0xb0 || scsi_get16(buf + 2) < 0x3c)
        return ODK_E_PROTOCOL;
    out->optimal_transfer_granularity = scsi_get16(buf + 6);
    out->maximum_transfer_length = scsi_get32(buf + 8);
    out->optimal_transfer_length = scsi_get32(buf + 12);
    out->maximum_unmap_lba_count = scsi_get32(buf + 20);
    out->maximum_unmap_descriptor_count = scsi_get32(buf + 24);
    out->optimal_unmap_granularity = scsi_get32(buf + 28);
    out->maximum_write_same_length = scsi_get64(buf + 36);
    return ODK_OK;
}

int odk_scsi_vpd_serial_parse(const uint8_t *buf, size_t len, char *serial, size_t serial_len)
{
    if (!buf || !serial || !serial_len)
        return ODK_E_INVALID;
    serial[0] = 0;
    if (len < 4 || buf[1] != 0x80)
        return ODK_E_PROTOCOL;
    size_t n = scsi_get16(buf + 2);
    if (4 + n > len)
        return ODK_E_PROTOCOL;
    int st = ODK_OK;
    if (n >= serial_len) {
        n = serial_len - 1;
        st = ODK_E_LIMIT;
    }
    /* Leading spaces are allowed in a serial number (SPC); trailing ones pad. */
    ascii(serial, buf + 4, n);
    return st;
}
