/* SPDX-License-Identifier: MIT */
/* An SBC-3 direct-access logical unit that answers CDBs: the target side
 * of odk's disk model and of a virtual volume.  Blocks live behind a
 * backend (a sparse file here, or the caller's callbacks).
 *
 * Order of checks for each CDB, as SAM-5 and SPC-4 have a device do it: a
 * pending UNIT ATTENTION (except for INQUIRY, REPORT LUNS and REQUEST
 * SENSE), the CDB's own fields (the library's checker, strict: an opcode
 * it does not know is INVALID COMMAND OPERATION CODE), what this device
 * does not support (NACA, protection), readiness for commands that touch
 * the medium, then the command. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "odk/scsi.h"
#include "odk/status.h"
#include "scsi_internal.h"

/* Named limits, reported in the Block Limits VPD page. */
#define DISK_MAX_UNMAP_DESCRIPTORS 256u
#define DISK_MAX_UNMAP_BLOCKS (1u << 22)
#define DISK_DEFAULT_MAX_TRANSFER 65536u
#define DISK_UA_QUEUE 4u
#define DISK_CHUNK (1u << 20) /* WRITE SAME writes this much at a time */

struct odk_scsi_disk {
    uint32_t block_size;
    uint64_t block_count;
    uint32_t max_transfer;
    char vendor[9], product[17], revision[5], serial[33];
    uint64_t naa_id;
    bool wce, wce_default, d_sense, d_sense_default;
    bool stopped, not_ready;
    uint64_t bad_lba, bad_blocks;
    bool bad_writes;
    struct {
        uint8_t asc, ascq;
    } ua[DISK_UA_QUEUE];
    unsigned n_ua;
    bool ua_overflow;
    odk_scsi_disk_backend be;
    int fd; /* the file backend's, owned; -1 otherwise */
};

/* ---- result helpers ------------------------------------------------------ */

typedef struct exec {
    odk_scsi_disk *disk;
    const uint8_t *cdb;
    size_t cdb_len;
    const uint8_t *out;
    size_t out_len;
    uint8_t *in;
    size_t in_len;
    odk_scsi_result *res;
} exec;

static void check_sense(exec *x, odk_scsi_sense *s)
{
    x->res->status = ODK_SCSI_STATUS_CHECK_CONDITION;
    odk_scsi_sense_build(s, x->disk->d_sense, x->res->sense, sizeof x->res->sense,
                         &x->res->sense_len);
}

static void check(exec *x, uint8_t key, uint8_t asc, uint8_t ascq)
{
    odk_scsi_sense s = {.key = key, .asc = asc, .ascq = ascq};
    check_sense(x, &s);
}

static void check_info(exec *x, uint8_t key, uint8_t asc, uint8_t ascq, uint64_t info)
{
    odk_scsi_sense s = {
        .key = key, .asc = asc, .ascq = ascq, .info_valid = true, .information = info};
    check_sense(x, &s);
}

/* ILLEGAL REQUEST with the field pointer: in the CDB (INVALID FIELD IN CDB)
 * or in the parameter list (INVALID FIELD IN PARAMETER LIST). */
static void invalid_field(exec *x, bool in_cdb, uint16_t byte, int bit)
{
    odk_scsi_sense s = {.key = ODK_SCSI_SENSE_ILLEGAL_REQUEST, .asc = in_cdb ? 0x24 : 0x26};
    odk_scsi_sense_set_field_pointer(&s, in_cdb, byte, bit);
    check_sense(x, &s);
}

static void lba_out_of_range(exec *x, uint64_t lba)
{
    check_info(x, ODK_SCSI_SENSE_ILLEGAL_REQUEST, 0x21, 0x00, lba);
}

static void param_list_length_error(exec *x)
{
    check(x, ODK_SCSI_SENSE_ILLEGAL_REQUEST, 0x1a, 0x00);
}

/* A backend error as sense (odk/scsi.h documents the mapping). */
static void backend_error(exec *x, int st, bool writing, uint64_t lba)
{
    if (st == ODK_E_IO)
        check_info(x, ODK_SCSI_SENSE_MEDIUM_ERROR, writing ? 0x0c : 0x11, 0x00, lba);
    else if (st == ODK_E_GONE || st == ODK_E_STATE)
        check(x, ODK_SCSI_SENSE_NOT_READY, 0x04, 0x00);
    else
        check(x, ODK_SCSI_SENSE_HARDWARE_ERROR, 0x44, 0x00); /* INTERNAL TARGET FAILURE */
}

/* Data-in: copies what the command produced, cut to its allocation
 * length and to the buffer. */
static void data_in(exec *x, const uint8_t *data, size_t n, size_t alloc)
{
    if (n > alloc)
        n = alloc;
    size_t copy = n < x->in_len ? n : x->in_len;
    if (copy)
        memcpy(x->in, data, copy);
    x->res->transferred = copy;
    x->res->overflow = n > x->in_len;
}

/* ---- identity ------------------------------------------------------------ */

static void pad(uint8_t *dst, const char *src, size_t n)
{
    memset(dst, ' ', n);
    size_t l = strlen(src);
    memcpy(dst, src, l < n ? l : n);
}

static void inquiry_standard(exec *x, size_t alloc)
{
    odk_scsi_disk *d = x->disk;
    uint8_t b[74];
    memset(b, 0, sizeof b);
    b[0] = ODK_SCSI_TYPE_DISK;
    b[2] = 0x06; /* SPC-4 */
    b[3] = 0x02; /* response data format 2 */
    b[4] = sizeof b - 5;
    b[7] = 0x02; /* CMDQUE */
    pad(b + 8, d->vendor, 8);
    pad(b + 16, d->product, 16);
    pad(b + 32, d->revision, 4);
    /* Version descriptors: SAM-5, SPC-4, SBC-3. */
    scsi_put16(b + 58, 0x00a0);
    scsi_put16(b + 60, 0x0460);
    scsi_put16(b + 62, 0x04c0);
    data_in(x, b, sizeof b, alloc);
}

static bool thin(const odk_scsi_disk *d)
{
    return d->be.unmap != NULL;
}

static void inquiry_vpd(exec *x, uint8_t page, size_t alloc)
{
    odk_scsi_disk *d = x->disk;
    uint8_t b[128];
    memset(b, 0, sizeof b);
    b[0] = ODK_SCSI_TYPE_DISK;
    b[1] = page;
    size_t n = 4;
    switch (page) {
    case 0x00: {
        static const uint8_t pages[] = {0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2};
        size_t count = thin(d) ? sizeof pages : sizeof pages - 1;
        memcpy(b + 4, pages, count);
        n += count;
        break;
    }
    case 0x80: {
        size_t l = strlen(d->serial);
        memcpy(b + 4, d->serial, l);
        n += l;
        break;
    }
    case 0x83: {
        uint8_t *p = b + 4;
        /* NAA, binary, associated with the logical unit. */
        p[0] = 0x01, p[1] = 0x03, p[3] = 8;
        scsi_put64(p + 4, d->naa_id);
        p += 12;
        /* T10 vendor ID: vendor, product, serial (ASCII). */
        size_t sl = strlen(d->serial);
        p[0] = 0x02, p[1] = 0x01, p[3] = (uint8_t)(24 + sl);
        pad(p + 4, d->vendor, 8);
        pad(p + 12, d->product, 16);
        memcpy(p + 28, d->serial, sl);
        p += 28 + sl;
        n = (size_t)(p - b);
        break;
    }
    case 0xb0: {
        n = 64;
        scsi_put16(b + 6, 1);
        scsi_put32(b + 8, d->max_transfer);
        scsi_put32(b + 12, d->max_transfer);
        if (thin(d)) {
            scsi_put32(b + 20, DISK_MAX_UNMAP_BLOCKS);
            scsi_put32(b + 24, DISK_MAX_UNMAP_DESCRIPTORS);
            scsi_put32(b + 28, 1);
        }
        scsi_put64(b + 36, DISK_MAX_UNMAP_BLOCKS);
        break;
    }
    case 0xb1:
        n = 64;
        scsi_put16(b + 4, 1); /* non-rotating */
        break;
    case 0xb2:
        if (!thin(d)) {
            invalid_field(x, true, 2, -1);
            return;
        }
        n = 8;
        b[5] = 0x80 | 0x40 | 0x20 | 0x04; /* LBPU, LBPWS, LBPWS10, LBPRZ */
        b[6] = 0x02;                      /* thin provisioned */
        break;
    default:
        invalid_field(x, true, 2, -1);
        return;
    }
    scsi_put16(b + 2, (uint16_t)(n - 4));
    data_in(x, b, n, alloc);
}

static void do_inquiry(exec *x)
{
    size_t alloc = scsi_get16(x->cdb + 3);
    if (x->cdb[1] & 1)
        inquiry_vpd(x, x->cdb[2], alloc);
    else
        inquiry_standard(x, alloc);
}

static void do_report_luns(exec *x)
{
    uint8_t b[16];
    memset(b, 0, sizeof b);
    size_t n = 8;
    if (x->cdb[2] != 0x01 && x->cdb[2] != 0x11) { /* not "well known LUs only" */
        scsi_put32(b, 8);
        n = 16; /* LUN 0 */
    }
    data_in(x, b, n, scsi_get32(x->cdb + 6));
}

static void pop_ua(odk_scsi_disk *d, odk_scsi_sense *s)
{
    s->key = ODK_SCSI_SENSE_UNIT_ATTENTION;
    s->asc = d->ua[0].asc;
    s->ascq = d->ua[0].ascq;
    if (d->ua_overflow) {
        s->sks_valid = true;
        s->sks[0] = 0x81;
        d->ua_overflow = false;
    }
    memmove(d->ua, d->ua + 1, sizeof d->ua[0] * (d->n_ua - 1));
    d->n_ua--;
}

static void do_request_sense(exec *x)
{
    odk_scsi_disk *d = x->disk;
    odk_scsi_sense s = {0};
    if (d->n_ua)
        pop_ua(d, &s);
    else if (d->not_ready)
        s.key = ODK_SCSI_SENSE_NOT_READY, s.asc = 0x04, s.ascq = 0x03;
    else if (d->stopped)
        s.key = ODK_SCSI_SENSE_NOT_READY, s.asc = 0x04, s.ascq = 0x02;
    uint8_t b[ODK_SCSI_SENSE_MAX];
    size_t n = 0;
    odk_scsi_sense_build(&s, x->cdb[1] & 1, b, sizeof b, &n);
    data_in(x, b, n, x->cdb[4]);
}

static void do_read_capacity_10(exec *x)
{
    uint8_t b[8];
    uint64_t last = x->disk->block_count - 1;
    scsi_put32(b, last > UINT32_MAX ? UINT32_MAX : (uint32_t)last);
    scsi_put32(b + 4, x->disk->block_size);
    data_in(x, b, sizeof b, sizeof b);
}

static void do_read_capacity_16(exec *x)
{
    uint8_t b[32];
    memset(b, 0, sizeof b);
    scsi_put64(b, x->disk->block_count - 1);
    scsi_put32(b + 8, x->disk->block_size);
    if (thin(x->disk))
        b[14] = 0x80 | 0x40; /* LBPME, LBPRZ */
    data_in(x, b, sizeof b, scsi_get32(x->cdb + 10));
}

/* ---- mode pages ---------------------------------------------------------- */

enum { PC_CURRENT, PC_CHANGEABLE, PC_DEFAULT, PC_SAVED };

static size_t caching_page(const odk_scsi_disk *d, int pc, uint8_t *p)
{
    memset(p, 0, 20);
    p[0] = 0x08;
    p[1] = 0x12;
    bool wce = pc == PC_CHANGEABLE ? true : pc == PC_DEFAULT ? d->wce_default : d->wce;
    if (wce)
        p[2] |= 0x04;
    return 20;
}

static size_t control_page(const odk_scsi_disk *d, int pc, uint8_t *p)
{
    memset(p, 0, 12);
    p[0] = 0x0a;
    p[1] = 0x0a;
    bool ds = pc == PC_CHANGEABLE ? true : pc == PC_DEFAULT ? d->d_sense_default : d->d_sense;
    if (ds)
        p[2] |= 0x04;
    if (pc != PC_CHANGEABLE) {
        p[3] = 0x10;               /* queue algorithm modifier 1: unrestricted reordering */
        scsi_put16(p + 8, 0xffff); /* busy timeout: unlimited */
    }
    return 12;
}

static void do_mode_sense(exec *x, bool ten)
{
    odk_scsi_disk *d = x->disk;
    const uint8_t *c = x->cdb;
    int pc = c[2] >> 6;
    uint8_t page = c[2] & 0x3f, subpage = c[3];
    bool dbd = c[1] & 0x08, llbaa = ten && (c[1] & 0x10);
    if (pc == PC_SAVED) {
        check(x, ODK_SCSI_SENSE_ILLEGAL_REQUEST, 0x39, 0x00);
        return;
    }
    if (page != 0x08 && page != 0x0a && page != 0x3f) {
        invalid_field(x, true, 2, 5);
        return;
    }
    if (subpage && !(page == 0x3f && subpage == 0xff)) {
        invalid_field(x, true, 3, -1);
        return;
    }
    uint8_t b[128];
    memset(b, 0, sizeof b);
    size_t hdr = ten ? 8 : 4, n = hdr;
    b[ten ? 3 : 2] = 0x10; /* device-specific parameter: DPOFUA */
    if (!dbd) {
        if (llbaa) {
            b[4] = 0x01; /* LONGLBA */
            scsi_put64(b + n, d->block_count);
            scsi_put32(b + n + 12, d->block_size);
            n += 16;
        } else {
            scsi_put32(b + n, d->block_count > UINT32_MAX ? UINT32_MAX : (uint32_t)d->block_count);
            scsi_put32(b + n + 4, d->block_size & 0xffffff);
            n += 8;
        }
        if (ten)
            scsi_put16(b + 6, (uint16_t)(n - hdr));
        else
            b[3] = (uint8_t)(n - hdr);
    }
    if (page == 0x08 || page == 0x3f)
        n += caching_page(d, pc, b + n);
    if (page == 0x0a || page == 0x3f)
        n += control_page(d, pc, b + n);
    if (ten)
        scsi_put16(b, (uint16_t)(n - 2));
    else
        b[0] = (uint8_t)(n - 1);
    data_in(x, b, n, ten ? scsi_get16(c + 7) : c[4]);
}

/* Applies one page of a MODE SELECT parameter list at p (off: its offset in
 * the list, for the field pointer); only WCE and D_SENSE may change. */
static bool select_page(exec *x, const uint8_t *p, size_t avail, size_t off, bool *wce,
                        bool *d_sense)
{
    odk_scsi_disk *d = x->disk;
    uint8_t cur[20], mask[20];
    size_t n;
    if ((p[0] & 0x3f) == 0x08 && !(p[0] & 0x40)) {
        n = caching_page(d, PC_CURRENT, cur);
        caching_page(d, PC_CHANGEABLE, mask);
    } else if ((p[0] & 0x3f) == 0x0a && !(p[0] & 0x40)) {
        n = control_page(d, PC_CURRENT, cur);
        control_page(d, PC_CHANGEABLE, mask);
    } else {
        invalid_field(x, false, (uint16_t)off, 5);
        return false;
    }
    mask[0] = mask[1] = 0;
    if (avail < 2 || p[1] != cur[1]) {
        invalid_field(x, false, (uint16_t)(off + 1), -1);
        return false;
    }
    if (avail < n) {
        param_list_length_error(x);
        return false;
    }
    for (size_t i = 2; i < n; i++) {
        uint8_t diff = (uint8_t)((p[i] ^ cur[i]) & ~mask[i]);
        if (diff) {
            int bit = 7;
            while (!(diff & (1u << bit)))
                bit--;
            invalid_field(x, false, (uint16_t)(off + i), bit);
            return false;
        }
    }
    if (cur[0] == 0x08)
        *wce = p[2] & 0x04;
    else
        *d_sense = p[2] & 0x04;
    return true;
}

static void do_mode_select(exec *x, bool ten)
{
    odk_scsi_disk *d = x->disk;
    const uint8_t *c = x->cdb;
    size_t len = ten ? scsi_get16(c + 7) : c[4];
    if (!(c[1] & 0x10)) {
        invalid_field(x, true, 1, 4); /* PF 0: vendor-specific pages, none here */
        return;
    }
    if (c[1] & 0x01) {
        invalid_field(x, true, 1, 0); /* SP: nothing is saveable */
        return;
    }
    if (!len)
        return;
    size_t hdr = ten ? 8 : 4;
    if (x->out_len < len || len < hdr) {
        param_list_length_error(x);
        return;
    }
    const uint8_t *p = x->out;
    size_t bdl = ten ? scsi_get16(p + 6) : p[3];
    bool longlba = ten && (p[4] & 1);
    size_t bd = longlba ? 16 : 8;
    if (hdr + bdl > len || (bdl && bdl != bd)) {
        param_list_length_error(x);
        return;
    }
    if (bdl) {
        uint32_t bl = longlba ? scsi_get32(p + hdr + 12) : scsi_get24(p + hdr + 5);
        if (bl != d->block_size) {
            invalid_field(x, false, (uint16_t)(hdr + (longlba ? 12 : 5)), -1);
            return;
        }
    }
    bool wce = d->wce, d_sense = d->d_sense;
    for (size_t off = hdr + bdl; off < len;) {
        if (len - off < 2) {
            param_list_length_error(x);
            return;
        }
        if (!select_page(x, p + off, len - off, off, &wce, &d_sense))
            return;
        off += 2u + p[off + 1];
    }
    d->wce = wce;
    d->d_sense = d_sense;
    x->res->transferred = len;
}

/* ---- medium access ------------------------------------------------------- */

static bool range_ok(exec *x, uint64_t lba, uint64_t blocks)
{
    if (lba > x->disk->block_count || blocks > x->disk->block_count - lba ||
        (!blocks && lba == x->disk->block_count)) {
        lba_out_of_range(x, lba);
        return false;
    }
    return true;
}

/* First LBA in [lba, lba + blocks) with an injected medium error, or
 * UINT64_MAX. */
static uint64_t first_bad(const odk_scsi_disk *d, uint64_t lba, uint64_t blocks, bool writing)
{
    if (!d->bad_blocks || (writing && !d->bad_writes))
        return UINT64_MAX;
    uint64_t end = lba + blocks, bad_end = d->bad_lba + d->bad_blocks;
    if (bad_end <= lba || d->bad_lba >= end)
        return UINT64_MAX;
    return d->bad_lba > lba ? d->bad_lba : lba;
}

static void do_read(exec *x, uint64_t lba, uint32_t blocks)
{
    odk_scsi_disk *d = x->disk;
    if (!range_ok(x, lba, blocks))
        return;
    uint64_t bytes = (uint64_t)blocks * d->block_size;
    uint64_t bad = first_bad(d, lba, blocks, false);
    uint64_t good = bad == UINT64_MAX ? bytes : (bad - lba) * d->block_size;
    uint64_t fits = good < x->in_len ? good : (x->in_len / d->block_size) * d->block_size;
    if (fits) {
        int st = d->be.read(d->be.ctx, lba * d->block_size, x->in, fits);
        if (st != ODK_OK) {
            backend_error(x, st, false, lba);
            return;
        }
    }
    x->res->transferred = fits;
    x->res->overflow = bytes > x->in_len;
    if (bad != UINT64_MAX && fits == good)
        check_info(x, ODK_SCSI_SENSE_MEDIUM_ERROR, 0x11, 0x00, bad);
}

static void do_write(exec *x, uint64_t lba, uint32_t blocks, bool fua)
{
    odk_scsi_disk *d = x->disk;
    if (!range_ok(x, lba, blocks))
        return;
    uint64_t bytes = (uint64_t)blocks * d->block_size;
    if (x->out_len < bytes) {
        /* The initiator sent less than the CDB announced. */
        check(x, ODK_SCSI_SENSE_ABORTED_COMMAND, 0x4b, 0x00); /* DATA PHASE ERROR */
        return;
    }
    uint64_t bad = first_bad(d, lba, blocks, true);
    uint64_t good = bad == UINT64_MAX ? bytes : (bad - lba) * d->block_size;
    if (good) {
        int st = d->be.write(d->be.ctx, lba * d->block_size, x->out, good, fua || !d->wce);
        if (st != ODK_OK) {
            backend_error(x, st, true, lba);
            return;
        }
    }
    x->res->transferred = good;
    if (bad != UINT64_MAX)
        check_info(x, ODK_SCSI_SENSE_MEDIUM_ERROR, 0x0c, 0x00, bad);
}

static void do_sync(exec *x, uint64_t lba, uint32_t blocks)
{
    if (!range_ok(x, lba, blocks ? blocks : 0))
        return;
    int st = x->disk->be.flush(x->disk->be.ctx);
    if (st != ODK_OK)
        backend_error(x, st, true, lba);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static void do_write_same(exec *x, uint64_t lba, uint64_t blocks, bool unmap, bool ndob,
                          uint8_t blocks_byte)
{
    odk_scsi_disk *d = x->disk;
    if (lba >= d->block_count) {
        lba_out_of_range(x, lba);
        return;
    }
    if (!blocks)
        blocks = d->block_count - lba;
    if (!range_ok(x, lba, blocks))
        return;
    if (blocks > DISK_MAX_UNMAP_BLOCKS) {
        invalid_field(x, true, blocks_byte, -1);
        return;
    }
    if (!ndob && x->out_len < d->block_size) {
        check(x, ODK_SCSI_SENSE_ABORTED_COMMAND, 0x4b, 0x00);
        return;
    }
    bool zero = ndob || all_zero(x->out, d->block_size);
    uint64_t bad = first_bad(d, lba, blocks, true);
    if (unmap && zero && thin(d) && bad == UINT64_MAX) {
        int st = d->be.unmap(d->be.ctx, lba * d->block_size, blocks * d->block_size);
        if (st != ODK_OK)
            backend_error(x, st, true, lba);
        x->res->transferred = ndob ? 0 : d->block_size;
        return;
    }
    uint64_t todo = (bad == UINT64_MAX ? blocks : bad - lba) * d->block_size;
    size_t chunk = todo < DISK_CHUNK ? (size_t)todo : DISK_CHUNK;
    chunk -= chunk % d->block_size;
    if (chunk < d->block_size)
        chunk = d->block_size;
    uint8_t *buf = malloc(chunk);
    if (!buf) {
        check(x, ODK_SCSI_SENSE_HARDWARE_ERROR, 0x55, 0x03); /* INSUFFICIENT RESOURCES */
        return;
    }
    for (size_t i = 0; i < chunk; i += d->block_size) {
        if (ndob)
            memset(buf + i, 0, d->block_size);
        else
            memcpy(buf + i, x->out, d->block_size);
    }
    uint64_t off = lba * d->block_size;
    for (uint64_t done = 0; done < todo;) {
        size_t n = todo - done < chunk ? (size_t)(todo - done) : chunk;
        int st = d->be.write(d->be.ctx, off + done, buf, n, !d->wce);
        if (st != ODK_OK) {
            backend_error(x, st, true, lba + done / d->block_size);
            free(buf);
            return;
        }
        done += n;
    }
    free(buf);
    x->res->transferred = ndob ? 0 : d->block_size;
    if (bad != UINT64_MAX)
        check_info(x, ODK_SCSI_SENSE_MEDIUM_ERROR, 0x0c, 0x00, bad);
}

static void do_unmap(exec *x)
{
    odk_scsi_disk *d = x->disk;
    const uint8_t *c = x->cdb;
    if (!thin(d)) {
        check(x, ODK_SCSI_SENSE_ILLEGAL_REQUEST, 0x20, 0x00);
        return;
    }
    if (c[1] & 1) {
        invalid_field(x, true, 1, 0); /* ANCHOR: no anchored state here */
        return;
    }
    size_t len = scsi_get16(c + 7);
    if (!len)
        return;
    if (len < 8 || x->out_len < len) {
        param_list_length_error(x);
        return;
    }
    const uint8_t *p = x->out;
    size_t bdl = scsi_get16(p + 2);
    if (bdl % 16 || 8 + bdl > len) {
        param_list_length_error(x);
        return;
    }
    size_t n = bdl / 16;
    if (n > DISK_MAX_UNMAP_DESCRIPTORS) {
        invalid_field(x, false, 2, -1);
        return;
    }
    /* Every range is checked before any is unmapped. */
    for (size_t i = 0; i < n; i++) {
        const uint8_t *e = p + 8 + 16 * i;
        uint64_t lba = scsi_get64(e);
        uint32_t blocks = scsi_get32(e + 8);
        if (!range_ok(x, lba, blocks))
            return;
        if (blocks > DISK_MAX_UNMAP_BLOCKS) {
            invalid_field(x, false, (uint16_t)(8 + 16 * i + 8), -1);
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *e = p + 8 + 16 * i;
        uint64_t lba = scsi_get64(e);
        uint32_t blocks = scsi_get32(e + 8);
        if (!blocks)
            continue;
        int st = d->be.unmap(d->be.ctx, lba * d->block_size, (uint64_t)blocks * d->block_size);
        if (st != ODK_OK) {
            backend_error(x, st, true, lba);
            return;
        }
    }
    x->res->transferred = len;
}

static void do_start_stop(exec *x)
{
    odk_scsi_disk *d = x->disk;
    uint8_t pc = x->cdb[4] >> 4;
    bool start = x->cdb[4] & 1, no_flush = x->cdb[4] & 0x04;
    if (pc == 0x0 || pc == 0x1) { /* START_VALID or ACTIVE */
        bool stop = pc == 0 && !start;
        if (stop && !no_flush && !d->not_ready) {
            int st = d->be.flush(d->be.ctx);
            if (st != ODK_OK) {
                backend_error(x, st, true, 0);
                return;
            }
        }
        d->stopped = stop;
    }
    /* IDLE, STANDBY and the control values change nothing a disk model
     * needs to show. */
}

/* ---- dispatch ------------------------------------------------------------ */

static bool touches_medium(uint8_t op)
{
    switch (op) {
    case ODK_SCSI_OP_INQUIRY:
    case ODK_SCSI_OP_REPORT_LUNS:
    case ODK_SCSI_OP_REQUEST_SENSE:
    case ODK_SCSI_OP_MODE_SENSE_6:
    case ODK_SCSI_OP_MODE_SENSE_10:
    case ODK_SCSI_OP_MODE_SELECT_6:
    case ODK_SCSI_OP_MODE_SELECT_10:
    case ODK_SCSI_OP_START_STOP_UNIT:
        return false;
    default:
        return true;
    }
}

/* What the checker cannot know: features this device lacks. */
static bool supported(exec *x)
{
    const uint8_t *c = x->cdb;
    if (c[x->cdb_len - 1] & 0x04) {
        invalid_field(x, true, (uint16_t)(x->cdb_len - 1), 2); /* NACA: no ACA */
        return false;
    }
    switch (c[0]) {
    case ODK_SCSI_OP_READ_10:
    case ODK_SCSI_OP_WRITE_10:
    case ODK_SCSI_OP_READ_16:
    case ODK_SCSI_OP_WRITE_16:
    case ODK_SCSI_OP_WRITE_SAME_10:
    case ODK_SCSI_OP_WRITE_SAME_16:
        if (c[1] & 0xe0) {
            invalid_field(x, true, 1, 7); /* RDPROTECT/WRPROTECT: no protection info */
            return false;
        }
        if ((c[0] == ODK_SCSI_OP_WRITE_SAME_10 || c[0] == ODK_SCSI_OP_WRITE_SAME_16) &&
            (c[1] & 0x10)) {
            invalid_field(x, true, 1, 4); /* ANCHOR */
            return false;
        }
        if ((c[0] == ODK_SCSI_OP_WRITE_SAME_10 || c[0] == ODK_SCSI_OP_WRITE_SAME_16) &&
            (c[1] & 0x06)) {
            invalid_field(x, true, 1, 2); /* PBDATA/LBDATA: obsolete, not emulated */
            return false;
        }
        break;
    default:
        break;
    }
    return true;
}

int odk_scsi_disk_execute(odk_scsi_disk *disk, const uint8_t *cdb, size_t cdb_len,
                          const void *data_out, size_t data_out_len, void *data_in_buf,
                          size_t data_in_len, odk_scsi_result *result)
{
    if (!disk || !cdb || !result)
        return ODK_E_INVALID;
    memset(result, 0, sizeof *result);
    if (!data_out)
        data_out_len = 0;
    if (!data_in_buf)
        data_in_len = 0;
    exec x = {disk, cdb, cdb_len, data_out, data_out_len, data_in_buf, data_in_len, result};
    result->status = ODK_SCSI_STATUS_GOOD;
    uint8_t op = cdb_len ? cdb[0] : 0xff;

    if (!cdb_len) {
        check(&x, ODK_SCSI_SENSE_ILLEGAL_REQUEST, 0x20, 0x00);
    } else if (disk->n_ua && op != ODK_SCSI_OP_INQUIRY && op != ODK_SCSI_OP_REPORT_LUNS &&
               op != ODK_SCSI_OP_REQUEST_SENSE) {
        odk_scsi_sense s = {0};
        pop_ua(disk, &s);
        check_sense(&x, &s);
    } else {
        odk_scsi_cdb_error err;
        if (odk_scsi_cdb_check_fields(cdb, cdb_len, ODK_SCSI_TYPE_DISK, ODK_SCSI_CHECK_STRICT,
                                      &err) != ODK_OK) {
            if (err.asc == 0x24)
                invalid_field(&x, true, err.byte, err.bit);
            else
                check(&x, ODK_SCSI_SENSE_ILLEGAL_REQUEST, err.asc ? err.asc : 0x24, err.ascq);
        } else if (!supported(&x)) {
            /* sense set */
        } else if (touches_medium(op) && disk->not_ready) {
            check(&x, ODK_SCSI_SENSE_NOT_READY, 0x04, 0x03); /* MANUAL INTERVENTION REQUIRED */
        } else if (touches_medium(op) && disk->stopped) {
            check(&x, ODK_SCSI_SENSE_NOT_READY, 0x04, 0x02); /* INITIALIZING COMMAND REQUIRED */
        } else {
            odk_scsi_cdb_info info;
            odk_scsi_cdb_decode(cdb, cdb_len, &info);
            switch (op) {
            case ODK_SCSI_OP_TEST_UNIT_READY:
                break;
            case ODK_SCSI_OP_INQUIRY:
                do_inquiry(&x);
                break;
            case ODK_SCSI_OP_REQUEST_SENSE:
                do_request_sense(&x);
                break;
            case ODK_SCSI_OP_REPORT_LUNS:
                do_report_luns(&x);
                break;
            case ODK_SCSI_OP_READ_CAPACITY_10:
                do_read_capacity_10(&x);
                break;
            case ODK_SCSI_OP_SERVICE_ACTION_IN_16:
                do_read_capacity_16(&x);
                break;
            case ODK_SCSI_OP_MODE_SENSE_6:
                do_mode_sense(&x, false);
                break;
            case ODK_SCSI_OP_MODE_SENSE_10:
                do_mode_sense(&x, true);
                break;
            case ODK_SCSI_OP_MODE_SELECT_6:
                do_mode_select(&x, false);
                break;
            case ODK_SCSI_OP_MODE_SELECT_10:
                do_mode_select(&x, true);
                break;
            case ODK_SCSI_OP_START_STOP_UNIT:
                do_start_stop(&x);
                break;
            case ODK_SCSI_OP_UNMAP:
                do_unmap(&x);
                break;
            case ODK_SCSI_OP_READ_10:
            case ODK_SCSI_OP_READ_16:
            case ODK_SCSI_OP_WRITE_10:
            case ODK_SCSI_OP_WRITE_16:
                if (info.blocks > disk->max_transfer) {
                    invalid_field(&x, true,
                                  op == ODK_SCSI_OP_READ_10 || op == ODK_SCSI_OP_WRITE_10 ? 7 : 10,
                                  -1);
                } else if (info.dir == ODK_SCSI_DIR_FROM_DEVICE) {
                    do_read(&x, info.lba, info.blocks);
                } else {
                    do_write(&x, info.lba, info.blocks, info.fua);
                }
                break;
            case ODK_SCSI_OP_SYNCHRONIZE_CACHE_10:
            case ODK_SCSI_OP_SYNCHRONIZE_CACHE_16:
                do_sync(&x, info.lba, info.blocks);
                break;
            case ODK_SCSI_OP_WRITE_SAME_10:
            case ODK_SCSI_OP_WRITE_SAME_16:
                do_write_same(&x, info.lba, info.blocks, cdb[1] & 0x08,
                              op == ODK_SCSI_OP_WRITE_SAME_16 && (cdb[1] & 0x01),
                              op == ODK_SCSI_OP_WRITE_SAME_10 ? 7 : 10);
                break;
            default: /* the strict checker let through only what is above */
                check(&x, ODK_SCSI_SENSE_ILLEGAL_REQUEST, 0x20, 0x00);
                break;
            }
        }
    }
    /* The residual is against the buffer the command moves data through. */
    size_t buf_len = data_in_len ? data_in_len : data_out_len;
    if (result->transferred > buf_len)
        result->transferred = buf_len;
    result->residual = buf_len - result->transferred;
    return ODK_OK;
}

/* ---- life ---------------------------------------------------------------- */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static void copy_ascii(char *dst, size_t cap, const char *src, const char *dflt)
{
    if (!src)
        src = dflt;
    size_t n = 0;
    for (; src[n] && n < cap - 1; n++)
        dst[n] = src[n] >= 0x20 && src[n] < 0x7f ? src[n] : '?';
    while (n && dst[n - 1] == ' ')
        n--;
    dst[n] = 0;
}

int odk_scsi_disk_create(const odk_scsi_disk_config *config, const odk_scsi_disk_backend *backend,
                         odk_scsi_disk **out)
{
    if (out)
        *out = NULL;
    if (!config || !backend || !out || !backend->read || !backend->write || !backend->flush)
        return ODK_E_INVALID;
    uint32_t bs = config->block_size;
    if (bs < 512 || bs > 65536 || (bs & (bs - 1)) || !config->block_count ||
        config->block_count > UINT64_MAX / bs)
        return ODK_E_INVALID;
    odk_scsi_disk *d = calloc(1, sizeof *d);
    if (!d)
        return ODK_E_NOMEM;
    d->block_size = bs;
    d->block_count = config->block_count;
    d->max_transfer =
        config->max_transfer_blocks ? config->max_transfer_blocks : DISK_DEFAULT_MAX_TRANSFER;
    copy_ascii(d->vendor, sizeof d->vendor, config->vendor, "ODK");
    copy_ascii(d->product, sizeof d->product, config->product, "SIM DISK");
    copy_ascii(d->revision, sizeof d->revision, config->revision, "0001");
    if (config->serial) {
        copy_ascii(d->serial, sizeof d->serial, config->serial, "");
    } else {
        /* Unique among the disks of one process, which is what a model
         * with several disks needs. */
        uint64_t h = fnv1a(d->product) ^ (uint64_t)(uintptr_t)d;
        for (int i = 0; i < 16; i++)
            d->serial[i] = "0123456789ABCDEF"[(h >> (60 - 4 * i)) & 0xf];
    }
    d->naa_id =
        config->naa_id ? config->naa_id : (3ull << 60) | (fnv1a(d->serial) & 0x0fffffffffffffffull);
    d->wce = d->wce_default = config->write_cache;
    d->d_sense = d->d_sense_default = config->descriptor_sense;
    d->be = *backend;
    d->fd = -1;
    if (config->power_on_reset)
        odk_scsi_disk_post_unit_attention(d, 0x29, 0x01);
    *out = d;
    return ODK_OK;
}

/* ---- the file backend ---------------------------------------------------- */

static int file_read(void *ctx, uint64_t offset, void *buf, size_t len)
{
    int fd = *(int *)ctx;
    for (size_t done = 0; done < len;) {
        ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ODK_E_IO;
        if (n == 0) { /* past the end of a shorter file: zeroes, as a hole reads */
            memset((uint8_t *)buf + done, 0, len - done);
            break;
        }
        done += (size_t)n;
    }
    return ODK_OK;
}

static int file_write(void *ctx, uint64_t offset, const void *buf, size_t len, bool fua)
{
    int fd = *(int *)ctx;
    for (size_t done = 0; done < len;) {
        ssize_t n = pwrite(fd, (const uint8_t *)buf + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ODK_E_IO;
        done += (size_t)n;
    }
    if (fua && fdatasync(fd) < 0)
        return ODK_E_IO;
    return ODK_OK;
}

static int file_flush(void *ctx)
{
    return fdatasync(*(int *)ctx) < 0 ? ODK_E_IO : ODK_OK;
}

static int file_unmap(void *ctx, uint64_t offset, uint64_t len)
{
    int fd = *(int *)ctx;
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)len) == 0)
        return ODK_OK;
    if (errno != EOPNOTSUPP)
        return ODK_E_IO;
    /* A file system without holes: zeroes read the same. */
    static const uint8_t zero[65536];
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < sizeof zero ? (size_t)(len - done) : sizeof zero;
        int st = file_write(ctx, offset + done, zero, n, false);
        if (st != ODK_OK)
            return st;
        done += n;
    }
    return ODK_OK;
}

int odk_scsi_disk_create_file(const odk_scsi_disk_config *config, int fd, odk_scsi_disk **out)
{
    if (out)
        *out = NULL;
    if (!config || !out || fd < 0)
        return ODK_E_INVALID;
    /* The config is checked before the file is touched. */
    odk_scsi_disk_backend be = {file_read, file_write, file_flush, file_unmap, NULL};
    odk_scsi_disk *d = NULL;
    int rc = odk_scsi_disk_create(config, &be, &d);
    if (rc != ODK_OK)
        return rc;
    d->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    struct stat st;
    uint64_t size = (uint64_t)d->block_size * d->block_count;
    if (d->fd < 0 || size > INT64_MAX || fstat(d->fd, &st) < 0 ||
        ((uint64_t)st.st_size < size && ftruncate(d->fd, (off_t)size) < 0)) {
        odk_scsi_disk_free(d);
        return ODK_E_IO;
    }
    d->be.ctx = &d->fd;
    *out = d;
    return ODK_OK;
}

void odk_scsi_disk_free(odk_scsi_disk *disk)
{
    if (!disk)
        return;
    if (disk->fd >= 0)
        close(disk->fd);
    free(disk);
}

void odk_scsi_disk_set_not_ready(odk_scsi_disk *disk, bool not_ready)
{
    disk->not_ready = not_ready;
}

void odk_scsi_disk_set_medium_error(odk_scsi_disk *disk, uint64_t lba, uint64_t blocks, bool writes)
{
    disk->bad_lba = lba;
    disk->bad_blocks = blocks;
    disk->bad_writes = writes;
}

void odk_scsi_disk_post_unit_attention(odk_scsi_disk *disk, uint8_t asc, uint8_t ascq)
{
    if (disk->n_ua == DISK_UA_QUEUE) {
        disk->ua_overflow = true;
        return;
    }
    disk->ua[disk->n_ua].asc = asc;
    disk->ua[disk->n_ua].ascq = ascq;
    disk->n_ua++;
}

uint32_t odk_scsi_disk_block_size(const odk_scsi_disk *disk)
{
    return disk->block_size;
}

uint64_t odk_scsi_disk_block_count(const odk_scsi_disk *disk)
{
    return disk->block_count;
}

const char *odk_scsi_disk_serial(const odk_scsi_disk *disk)
{
    return disk->serial;
}
