/* SPDX-License-Identifier: MIT */
/* Sense data (SPC-4 4.5): fixed and descriptor formats, built and parsed,
 * and decoded to words with T10's ASC/ASCQ table. */
#include <string.h>

#include "asc_table.h"
#include "odk/scsi.h"
#include "odk/status.h"
#include "scsi_internal.h"

/* ---- parsing ------------------------------------------------------------- */

static void parse_fixed(const uint8_t *b, size_t n, odk_scsi_sense *s)
{
    s->key = b[2] & 0x0f;
    s->filemark = b[2] & 0x80;
    s->eom = b[2] & 0x40;
    s->ili = b[2] & 0x20;
    s->information = scsi_get32(b + 3);
    s->info_valid = b[0] & 0x80;
    if (n >= 12) {
        s->command_info = scsi_get32(b + 8);
        s->command_info_valid = true;
    }
    if (n >= 13)
        s->asc = b[12];
    if (n >= 14)
        s->ascq = b[13];
    if (n >= 15)
        s->fru = b[14];
    if (n >= 18 && (b[15] & 0x80)) {
        memcpy(s->sks, b + 15, 3);
        s->sks_valid = true;
    }
}

static void parse_descriptors(const uint8_t *b, size_t n, odk_scsi_sense *s)
{
    s->key = b[1] & 0x0f;
    s->asc = b[2];
    s->ascq = b[3];
    /* Each descriptor: type, additional length, then that many bytes.  One
     * that runs past the data ends the walk (SPC: the initiator ignores a
     * truncated descriptor). */
    for (size_t off = 8; off + 2 <= n;) {
        const uint8_t *d = b + off;
        size_t len = 2u + d[1];
        if (off + len > n)
            break;
        switch (d[0]) {
        case 0x00: /* information */
            if (len >= 12) {
                s->info_valid = d[2] & 0x80;
                s->information = scsi_get64(d + 4);
            }
            break;
        case 0x01: /* command-specific information */
            if (len >= 12) {
                s->command_info_valid = true;
                s->command_info = scsi_get64(d + 4);
            }
            break;
        case 0x02: /* sense key specific */
            if (len >= 7 && (d[4] & 0x80)) {
                memcpy(s->sks, d + 4, 3);
                s->sks_valid = true;
            }
            break;
        case 0x03: /* field replaceable unit */
            if (len >= 4)
                s->fru = d[3];
            break;
        case 0x04: /* stream commands */
            if (len >= 4) {
                s->filemark = d[3] & 0x80;
                s->eom = d[3] & 0x40;
                s->ili = d[3] & 0x20;
            }
            break;
        case 0x05: /* block commands */
            if (len >= 4)
                s->ili = d[3] & 0x20;
            break;
        default:
            break;
        }
        off += len;
    }
}

int odk_scsi_sense_parse(const uint8_t *buf, size_t len, odk_scsi_sense *out)
{
    if (!buf || !out)
        return ODK_E_INVALID;
    memset(out, 0, sizeof *out);
    if (len < 8)
        return ODK_E_PROTOCOL;
    uint8_t code = buf[0] & 0x7f;
    if (code < 0x70 || code > 0x73)
        return ODK_E_PROTOCOL;
    out->response_code = code;
    out->deferred = code == 0x71 || code == 0x73;
    out->descriptor = code >= 0x72;
    /* Only what the additional sense length covers counts. */
    size_t n = 8u + buf[7];
    if (n > len)
        n = len;
    if (out->descriptor)
        parse_descriptors(buf, n, out);
    else
        parse_fixed(buf, n, out);
    return ODK_OK;
}

/* ---- building ------------------------------------------------------------ */

int odk_scsi_sense_build(const odk_scsi_sense *s, bool descriptor, uint8_t *buf, size_t cap,
                         size_t *len)
{
    if (!s || !buf || !len)
        return ODK_E_INVALID;
    uint8_t b[ODK_SCSI_SENSE_MAX];
    size_t n;
    memset(b, 0, sizeof b);
    if (!descriptor) {
        n = ODK_SCSI_SENSE_FIXED_LEN;
        b[0] = s->deferred ? 0x71 : 0x70;
        if (s->info_valid && s->information <= UINT32_MAX)
            b[0] |= 0x80;
        b[2] = (uint8_t)((s->key & 0x0f) | (s->filemark ? 0x80 : 0) | (s->eom ? 0x40 : 0) |
                         (s->ili ? 0x20 : 0));
        if (s->info_valid)
            scsi_put32(b + 3, (uint32_t)s->information);
        b[7] = (uint8_t)(n - 8);
        if (s->command_info_valid)
            scsi_put32(b + 8, (uint32_t)s->command_info);
        b[12] = s->asc;
        b[13] = s->ascq;
        b[14] = s->fru;
        if (s->sks_valid) {
            memcpy(b + 15, s->sks, 3);
            b[15] |= 0x80;
        }
    } else {
        b[0] = s->deferred ? 0x73 : 0x72;
        b[1] = s->key & 0x0f;
        b[2] = s->asc;
        b[3] = s->ascq;
        n = 8;
        if (s->info_valid) {
            uint8_t *d = b + n;
            d[0] = 0x00, d[1] = 0x0a, d[2] = 0x80;
            scsi_put64(d + 4, s->information);
            n += 12;
        }
        if (s->command_info_valid) {
            uint8_t *d = b + n;
            d[0] = 0x01, d[1] = 0x0a;
            scsi_put64(d + 4, s->command_info);
            n += 12;
        }
        if (s->sks_valid) {
            uint8_t *d = b + n;
            d[0] = 0x02, d[1] = 0x06;
            memcpy(d + 4, s->sks, 3);
            d[4] |= 0x80;
            n += 8;
        }
        if (s->fru) {
            uint8_t *d = b + n;
            d[0] = 0x03, d[1] = 0x02, d[3] = s->fru;
            n += 4;
        }
        if (s->filemark || s->eom) {
            uint8_t *d = b + n;
            d[0] = 0x04, d[1] = 0x02;
            d[3] = (uint8_t)((s->filemark ? 0x80 : 0) | (s->eom ? 0x40 : 0) | (s->ili ? 0x20 : 0));
            n += 4;
        } else if (s->ili) {
            uint8_t *d = b + n;
            d[0] = 0x05, d[1] = 0x02, d[3] = 0x20;
            n += 4;
        }
        b[7] = (uint8_t)(n - 8);
    }
    if (cap < n)
        return ODK_E_LIMIT;
    memcpy(buf, b, n);
    *len = n;
    return ODK_OK;
}

void odk_scsi_sense_set_field_pointer(odk_scsi_sense *s, bool in_cdb, uint16_t byte, int bit)
{
    s->sks_valid = true;
    s->sks[0] = (uint8_t)(0x80 | (in_cdb ? 0x40 : 0));
    if (bit >= 0 && bit <= 7)
        s->sks[0] |= (uint8_t)(0x08 | bit);
    scsi_put16(s->sks + 1, byte);
}

/* ---- words --------------------------------------------------------------- */

const char *odk_scsi_sense_key_name(uint8_t key)
{
    static const char *const names[16] = {
        "NO SENSE",       "RECOVERED ERROR", "NOT READY",      "MEDIUM ERROR",
        "HARDWARE ERROR", "ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT",
        "BLANK CHECK",    "VENDOR SPECIFIC", "COPY ABORTED",   "ABORTED COMMAND",
        "RESERVED",       "VOLUME OVERFLOW", "MISCOMPARE",     "COMPLETED",
    };
    return key < 16 ? names[key] : "?";
}

static const scsi_asc_entry *asc_find(uint8_t asc, uint8_t ascq)
{
    size_t lo = 0, hi = scsi_asc_table_len;
    unsigned want = (unsigned)asc << 8 | ascq;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const scsi_asc_entry *e = &scsi_asc_table[mid];
        unsigned have = (unsigned)e->asc << 8 | e->ascq;
        if (have == want)
            return e;
        if (have < want)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int odk_scsi_asc_describe(uint8_t asc, uint8_t ascq, char *buf, size_t len)
{
    scsi_text t;
    scsi_text_init(&t, buf, len);
    const scsi_asc_entry *e = asc_find(asc, ascq);
    int st = ODK_OK;
    if (e)
        scsi_text_add(&t, "%s", e->text);
    else if (asc == 0x40 && ascq >= 0x80)
        scsi_text_add(&t, "DIAGNOSTIC FAILURE ON COMPONENT %02Xh", ascq);
    else if (asc == 0x4d)
        scsi_text_add(&t, "TAGGED OVERLAPPED COMMANDS (TASK TAG %02Xh)", ascq);
    else if (asc == 0x70)
        scsi_text_add(&t, "DECOMPRESSION EXCEPTION SHORT ALGORITHM ID OF %02Xh", ascq);
    else if (asc >= 0x80 || ascq >= 0x80)
        scsi_text_add(&t, "VENDOR SPECIFIC (ASC 0x%02x, ASCQ 0x%02x)", asc, ascq);
    else {
        scsi_text_add(&t, "ASC 0x%02x ASCQ 0x%02x", asc, ascq);
        st = ODK_E_NOT_FOUND;
    }
    return t.truncated ? ODK_E_LIMIT : st;
}

static void field_pointer(scsi_text *t, const uint8_t *sks, bool segment)
{
    bool cd = sks[0] & 0x40;
    if (segment)
        scsi_text_add(t, "%s ", sks[0] & 0x20 ? "segment descriptor" : "parameter list");
    scsi_text_add(t, "%sbyte %u", segment || cd ? "" : "parameter ", scsi_get16(sks + 1));
    if (sks[0] & 0x08)
        scsi_text_add(t, " bit %u", sks[0] & 0x07);
}

static void specific(scsi_text *t, const odk_scsi_sense *s)
{
    if (!s->sks_valid)
        return;
    const uint8_t *k = s->sks;
    switch (s->key) {
    case ODK_SCSI_SENSE_ILLEGAL_REQUEST:
        field_pointer(t, k, false);
        break;
    case ODK_SCSI_SENSE_NO_SENSE:
    case ODK_SCSI_SENSE_NOT_READY:
        scsi_text_add(t, "progress %u%%", scsi_get16(k + 1) * 100u / 65536u);
        break;
    case ODK_SCSI_SENSE_RECOVERED_ERROR:
    case ODK_SCSI_SENSE_MEDIUM_ERROR:
    case ODK_SCSI_SENSE_HARDWARE_ERROR:
        scsi_text_add(t, "actual retry count %u", scsi_get16(k + 1));
        break;
    case ODK_SCSI_SENSE_COPY_ABORTED:
        field_pointer(t, k, true);
        break;
    case ODK_SCSI_SENSE_UNIT_ATTENTION:
        if (k[0] & 0x01)
            scsi_text_add(t, "unit attention queue overflowed");
        break;
    default:
        scsi_text_add(t, "sense-key-specific 0x%02x%02x%02x", k[0], k[1], k[2]);
        break;
    }
}

int odk_scsi_sense_specific_describe(const odk_scsi_sense *s, char *buf, size_t len)
{
    scsi_text t;
    scsi_text_init(&t, buf, len);
    specific(&t, s);
    return scsi_text_status(&t);
}

int odk_scsi_sense_describe(const odk_scsi_sense *s, char *buf, size_t len)
{
    scsi_text t;
    scsi_text_init(&t, buf, len);
    char asc[96], sks[80];
    odk_scsi_asc_describe(s->asc, s->ascq, asc, sizeof asc);
    scsi_text_add(&t, "%s: %s", odk_scsi_sense_key_name(s->key), asc);
    odk_scsi_sense_specific_describe(s, sks, sizeof sks);
    if (sks[0])
        scsi_text_add(&t, ", %s", sks);
    if (s->info_valid)
        scsi_text_add(&t, ", information 0x%llx", (unsigned long long)s->information);
    if (s->deferred)
        scsi_text_add(&t, " (deferred)");
    return scsi_text_status(&t);
}
