/* SPDX-License-Identifier: MIT */
/* Human-readable INQUIRY data, VPD pages, capacity and sense: what
 * `odkctl scsi` prints.  One "name: value" per line. */
#include <string.h>

#include "odk/scsi.h"
#include "odk/status.h"
#include "scsi_internal.h"

static const char *yes(bool b)
{
    return b ? "yes" : "no";
}

static const char *version_name(uint8_t v)
{
    switch (v) {
    case 0x00:
        return "no standard claimed";
    case 0x03:
        return "SPC";
    case 0x04:
        return "SPC-2";
    case 0x05:
        return "SPC-3";
    case 0x06:
        return "SPC-4";
    case 0x07:
        return "SPC-5";
    default:
        return "obsolete or reserved";
    }
}

static void hex(scsi_text *t, const char *label, const uint8_t *b, size_t n)
{
    scsi_text_add(t, "%s:", label);
    for (size_t i = 0; i < n; i++)
        scsi_text_add(t, " %02x", b[i]);
    scsi_text_add(t, "\n");
}

static int format_standard(scsi_text *t, const uint8_t *buf, size_t len)
{
    odk_scsi_inquiry_data d;
    int st = odk_scsi_inquiry_parse(buf, len, &d);
    if (st != ODK_OK) {
        scsi_text_add(t,
                      "not standard INQUIRY data: %zu bytes, response data format %u "
                      "(needs at least 36 bytes and format 2)\n",
                      len, len >= 4 ? buf[3] & 0x0f : 0);
        if (len)
            hex(t, "bytes", buf, len);
        return st;
    }
    scsi_text_add(t, "vendor: %s\nproduct: %s\nrevision: %s\n", d.vendor, d.product, d.revision);
    scsi_text_add(t, "device type: 0x%02x (%s)\n", d.device_type,
                  scsi_device_type_name(d.device_type));
    scsi_text_add(t, "qualifier: %u (%s)\n", d.qualifier,
                  d.qualifier == 0   ? "connected"
                  : d.qualifier == 1 ? "supported, not connected"
                  : d.qualifier == 3 ? "not supported"
                                     : "reserved");
    scsi_text_add(t, "version: 0x%02x (%s)\n", d.version, version_name(d.version));
    scsi_text_add(t, "removable: %s\ncommand queuing: %s\nprotection: %s\n", yes(d.removable),
                  yes(d.cmdque), yes(d.protect));
    scsi_text_add(t, "hierarchical LUNs: %s\nNACA: %s\nthird-party copy: %s\n", yes(d.hisup),
                  yes(d.normaca), yes(d.three_pc));
    scsi_text_add(t, "ALUA: %s\n",
                  d.tpgs_implicit && d.tpgs_explicit ? "implicit and explicit"
                  : d.tpgs_implicit                  ? "implicit"
                  : d.tpgs_explicit                  ? "explicit"
                                                     : "no");
    scsi_text_add(t, "additional length: %u\n", d.additional_length);
    return ODK_OK;
}

static const char *designator_type(unsigned type)
{
    static const char *const names[] = {"vendor specific",
                                        "T10 vendor ID",
                                        "EUI-64",
                                        "NAA",
                                        "relative target port",
                                        "target port group",
                                        "logical unit group",
                                        "MD5 logical unit",
                                        "SCSI name string",
                                        "protocol specific port",
                                        "UUID"};
    return type < sizeof names / sizeof names[0] ? names[type] : "reserved";
}

static void format_device_id(scsi_text *t, const uint8_t *p, size_t n)
{
    static const char *const assoc[] = {"logical unit", "target port", "target device", "reserved"};
    for (size_t off = 0; off + 4 <= n;) {
        const uint8_t *d = p + off;
        size_t dl = d[3];
        if (off + 4 + dl > n) {
            scsi_text_add(t, "designator at byte %zu: length %zu runs past the page\n", off + 4,
                          dl);
            return;
        }
        unsigned code_set = d[0] & 0x0f;
        scsi_text_add(t, "designator: %s, %s: ", designator_type(d[1] & 0x0f),
                      assoc[(d[1] >> 4) & 3]);
        if (code_set == 2 || code_set == 3) {
            for (size_t i = 0; i < dl; i++)
                scsi_text_add(t, "%c", d[4 + i] >= 0x20 && d[4 + i] < 0x7f ? d[4 + i] : '.');
        } else {
            scsi_text_add(t, "0x");
            for (size_t i = 0; i < dl; i++)
                scsi_text_add(t, "%02x", d[4 + i]);
        }
        scsi_text_add(t, "\n");
        off += 4 + dl;
    }
}

static int format_vpd(scsi_text *t, const uint8_t *buf, size_t len)
{
    if (len < 4) {
        scsi_text_add(t, "VPD page truncated: %zu bytes, the header alone is 4\n", len);
        if (len)
            hex(t, "bytes", buf, len);
        return ODK_E_PROTOCOL;
    }
    size_t n = scsi_get16(buf + 2);
    const uint8_t *p = buf + 4;
    bool short_page = 4 + n > len;
    if (short_page)
        n = len - 4;
    uint8_t page = buf[1];
    scsi_text_add(t, "device type: 0x%02x (%s)\n", buf[0] & 0x1f,
                  scsi_device_type_name(buf[0] & 0x1f));
    switch (page) {
    case 0x00:
        scsi_text_add(t, "page: 0x00 (supported VPD pages)\npages:");
        for (size_t i = 0; i < n; i++)
            scsi_text_add(t, " 0x%02x", p[i]);
        scsi_text_add(t, "\n");
        break;
    case 0x80: {
        char serial[256];
        memset(serial, 0, sizeof serial);
        for (size_t i = 0; i < n && i < sizeof serial - 1; i++)
            serial[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.';
        for (size_t i = strlen(serial); i && serial[i - 1] == ' ';)
            serial[--i] = 0;
        scsi_text_add(t, "page: 0x80 (unit serial number)\nserial: %s\n", serial);
        break;
    }
    case 0x83:
        scsi_text_add(t, "page: 0x83 (device identification)\n");
        format_device_id(t, p, n);
        break;
    case 0xb0: {
        odk_scsi_block_limits bl;
        scsi_text_add(t, "page: 0xb0 (block limits)\n");
        if (odk_scsi_vpd_block_limits_parse(buf, len, &bl) != ODK_OK) {
            scsi_text_add(t, "page too short: %zu bytes, block limits are 64\n", len);
            break;
        }
        scsi_text_add(t, "optimal transfer granularity: %u blocks\n",
                      bl.optimal_transfer_granularity);
        scsi_text_add(t, "maximum transfer length: %u blocks%s\n", bl.maximum_transfer_length,
                      bl.maximum_transfer_length ? "" : " (no limit)");
        scsi_text_add(t, "optimal transfer length: %u blocks\n", bl.optimal_transfer_length);
        scsi_text_add(t, "maximum unmap LBA count: %u\n", bl.maximum_unmap_lba_count);
        scsi_text_add(t, "maximum unmap descriptors: %u\n", bl.maximum_unmap_descriptor_count);
        scsi_text_add(t, "optimal unmap granularity: %u blocks\n", bl.optimal_unmap_granularity);
        scsi_text_add(t, "maximum write same length: %llu blocks\n",
                      (unsigned long long)bl.maximum_write_same_length);
        break;
    }
    case 0xb1: {
        scsi_text_add(t, "page: 0xb1 (block device characteristics)\n");
        if (n < 5) {
            scsi_text_add(t, "page too short: %zu bytes\n", n + 4);
            break;
        }
        unsigned rate = scsi_get16(p);
        if (rate == 1)
            scsi_text_add(t, "rotation rate: non-rotating (solid state)\n");
        else if (rate >= 0x401 && rate <= 0xfffe)
            scsi_text_add(t, "rotation rate: %u rpm\n", rate);
        else
            scsi_text_add(t, "rotation rate: not reported\n");
        static const char *const forms[] = {"not reported", "5.25 inch", "3.5 inch",
                                            "2.5 inch",     "1.8 inch",  "below 1.8 inch"};
        unsigned form = p[3] & 0x0f;
        scsi_text_add(t, "form factor: %s\n", form < 6 ? forms[form] : "reserved");
        break;
    }
    default:
        scsi_text_add(t, "page: 0x%02x\n", page);
        hex(t, "data", p, n);
        break;
    }
    if (short_page) {
        scsi_text_add(t, "page length %u is past the %zu bytes returned\n", scsi_get16(buf + 2),
                      len);
        return ODK_E_PROTOCOL;
    }
    return ODK_OK;
}

int odk_scsi_format_inquiry(const uint8_t *buf, size_t len, bool vpd, char *out, size_t out_len)
{
    if (!buf && len)
        return ODK_E_INVALID;
    scsi_text t;
    scsi_text_init(&t, out, out_len);
    int st = vpd ? format_vpd(&t, buf, len) : format_standard(&t, buf, len);
    return st != ODK_OK ? st : scsi_text_status(&t);
}

static void size_words(scsi_text *t, uint64_t blocks, uint32_t block_size)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    unsigned __int128 bytes = (unsigned __int128)blocks * block_size;
    if (bytes > UINT64_MAX) {
        scsi_text_add(t, "capacity: more than 16 EiB\n");
        return;
    }
    double v = (double)(uint64_t)bytes;
    unsigned u = 0;
    while (v >= 1024 && u < 6)
        v /= 1024, u++;
    scsi_text_add(t, "capacity: %llu bytes (%.2f %s)\n", (unsigned long long)(uint64_t)bytes, v,
                  units[u]);
}

int odk_scsi_format_capacity(const uint8_t *buf, size_t len, bool sixteen, char *out,
                             size_t out_len)
{
    if (!buf && len)
        return ODK_E_INVALID;
    scsi_text t;
    scsi_text_init(&t, out, out_len);
    odk_scsi_capacity c;
    int st =
        sixteen ? odk_scsi_capacity16_parse(buf, len, &c) : odk_scsi_capacity10_parse(buf, len, &c);
    if (st != ODK_OK) {
        scsi_text_add(&t, "READ CAPACITY (%s) data truncated: %zu bytes, needs %u\n",
                      sixteen ? "16" : "10", len, sixteen ? 32u : 8u);
        return st;
    }
    if (!sixteen && c.last_lba == UINT32_MAX) {
        scsi_text_add(&t,
                      "last LBA: 0xffffffff (too large for READ CAPACITY (10): ask (16))\n"
                      "block size: %u bytes\n",
                      c.block_size);
        return scsi_text_status(&t);
    }
    scsi_text_add(&t, "blocks: %llu\nlast LBA: %llu\nblock size: %u bytes\n",
                  (unsigned long long)c.block_count, (unsigned long long)c.last_lba, c.block_size);
    size_words(&t, c.block_count, c.block_size);
    if (sixteen) {
        scsi_text_add(&t, "thin provisioned: %s\nunmapped blocks read zero: %s\n", yes(c.lbpme),
                      yes(c.lbprz));
        if (c.prot_en)
            scsi_text_add(&t, "protection: type %u\n", c.p_type + 1u);
        else
            scsi_text_add(&t, "protection: off\n");
        scsi_text_add(&t, "logical blocks per physical block: %u\nlowest aligned LBA: %u\n",
                      1u << c.lb_per_pb_exponent, c.lowest_aligned_lba);
    }
    return scsi_text_status(&t);
}

int odk_scsi_format_sense(const uint8_t *buf, size_t len, char *out, size_t out_len)
{
    if (!buf && len)
        return ODK_E_INVALID;
    scsi_text t;
    scsi_text_init(&t, out, out_len);
    odk_scsi_sense s;
    int st = odk_scsi_sense_parse(buf, len, &s);
    if (st != ODK_OK) {
        scsi_text_add(&t,
                      "not sense data: %zu bytes, response code 0x%02x (needs at least 8 "
                      "bytes and 0x70-0x73)\n",
                      len, len ? buf[0] & 0x7f : 0);
        if (len)
            hex(&t, "bytes", buf, len);
        return st;
    }
    char line[256], asc[96], sks[80];
    odk_scsi_sense_describe(&s, line, sizeof line);
    odk_scsi_asc_describe(s.asc, s.ascq, asc, sizeof asc);
    odk_scsi_sense_specific_describe(&s, sks, sizeof sks);
    scsi_text_add(&t, "%s\n", line);
    scsi_text_add(&t, "response code: 0x%02x (%s, %s)\n", s.response_code,
                  s.descriptor ? "descriptor" : "fixed", s.deferred ? "deferred" : "current");
    scsi_text_add(&t, "sense key: 0x%x %s\n", s.key, odk_scsi_sense_key_name(s.key));
    scsi_text_add(&t, "ASC/ASCQ: 0x%02x/0x%02x %s\n", s.asc, s.ascq, asc);
    if (s.info_valid)
        scsi_text_add(&t, "information: 0x%llx\n", (unsigned long long)s.information);
    if (s.command_info_valid && s.command_info)
        scsi_text_add(&t, "command-specific information: 0x%llx\n",
                      (unsigned long long)s.command_info);
    if (sks[0])
        scsi_text_add(&t, "sense-key specific: %s\n", sks);
    if (s.fru)
        scsi_text_add(&t, "field replaceable unit: 0x%02x\n", s.fru);
    if (s.filemark || s.eom || s.ili)
        scsi_text_add(&t, "flags:%s%s%s\n", s.filemark ? " FILEMARK" : "", s.eom ? " EOM" : "",
                      s.ili ? " ILI" : "");
    hex(&t, "bytes", buf, len < ODK_SCSI_SENSE_MAX ? len : ODK_SCSI_SENSE_MAX);
    return scsi_text_status(&t);
}
