/* SPDX-License-Identifier: MIT */
/* scsi-raid: a controller driver for the simulated HBA (odkctl storage
 * plug) that presents the HBA's disks as one RAID-0 or RAID-5 volume: one
 * LUN, exported by the storage family as an NBD disk.
 *
 * The level comes from the HBA node's OdkRAIDLevel property (0 or 5;
 * default 5); its OdkNBDTCPPort (0: any free port) also serves the volume
 * on a loopback TCP port.  Stripes are CHUNK bytes per disk; RAID-5 rotates parity
 * left-symmetrically.  Reads go straight from the disks into the task's
 * memory (the HBA's DMA; no copy here).  A RAID-5 write is a
 * read-modify-write of data and parity, done one stripe piece at a time
 * through a FIFO so two writes never race on one parity block.
 *
 * A disk that leaves, or fails a command with MEDIUM ERROR or no answer,
 * is marked failed: RAID-5 keeps serving, reconstructing its blocks from
 * the others (and a read that fails on a healthy disk is reconstructed
 * too).  When a new disk is inserted in the failed slot, the driver
 * rebuilds it row by row in the same FIFO as the writes, and the volume
 * is whole again.  The service node's OdkRAIDState says which:
 * "optimal", "degraded", "rebuilding", "failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odk/driver.h"
#include "odk/log.h"
#include "odk/scsi.h"
#include "odk/storage.h"

#define CHUNK (64u << 10)
#define QUEUE_DEPTH 64
#define UA_RETRIES 3 /* a command that meets UNIT ATTENTION goes again this often */
#define MAX_DISKS 64

enum piece_kind { P_READ_DEGRADED, P_WRITE5, P_REBUILD };

struct vop;

struct piece {
    enum piece_kind kind;
    struct vop *op;
    uint64_t row, disk_lba;
    uint32_t blocks;
    unsigned data, parity;
    uint8_t *buf; /* the data: the task's memory (read into, or written from) */
    int phase;
    unsigned pending;
    bool io_failed;
    int bad_disk;
    struct piece *next;
};

struct vop {
    odk_scsi_task *t;
    unsigned pending;
    uint32_t response;
    uint8_t status;
    uint8_t sense[ODK_SCSI_SENSE_MAX];
    uint32_t sense_len;
};

/* A chunk's worth of a command's data: where it is on the disk and in
 * memory (a direct read keeps it to reconstruct the chunk if the disk
 * fails it). */
struct seg {
    uint64_t row, disk_lba;
    uint32_t blocks;
    uint8_t *buf;
    uint64_t mem_off;
};

/* One command to one disk: for a volume op directly, or a piece's.  A
 * direct READ or WRITE carries every chunk of the op that lies next on
 * its disk, up to ODK_SIM_HBA_SG_MAX, as one scatter-gather command: a
 * RAID-0 request of 1 MiB over 4 disks is 4 commands, not 16. */
struct sub {
    struct vop *op;
    struct piece *piece;
    unsigned disk;
    bool is_read;
    bool fua;
    /* the command as sent, to send again after a UNIT ATTENTION */
    uint8_t cdb[16], cdb_len;
    odk_scsi_dir dir;
    odk_memory *mem;
    unsigned retries;
    unsigned n_seg;
    struct seg seg[ODK_SIM_HBA_SG_MAX];
};

struct raid {
    odk_driver *drv;
    odk_sim_hba *hba;
    odk_storage_controller *ctl;
    odk_storage_lun *lun;
    odk_scsi_disk *spc; /* answers INQUIRY, READ CAPACITY, MODE SENSE... for the volume */
    unsigned level, n;
    uint32_t bs;
    uint64_t chunk_blocks, rows, vol_blocks;
    int failed; /* the failed disk, or -1 */
    bool dead;  /* two disks gone: the volume fails every I/O */
    bool rebuilding;
    uint64_t cursor; /* rows below it are rebuilt */
    odk_memory *scratch;
    uint8_t *scratch_addr;
    struct piece *head, *tail; /* the FIFO; head is running */
    bool busy;
    const char *state;
    /* A LUN, target or bus reset reached the volume: its next command
     * (INQUIRY, REPORT LUNS and REQUEST SENSE excepted) is answered UNIT
     * ATTENTION 29h/00h and does not run.  One for the LUN, not one per
     * initiator: the disk layer or a peripheral driver, whichever asks
     * first, sees it. */
    bool unit_attention;
};

static void set_state(struct raid *r, const char *state)
{
    if (r->state && strcmp(r->state, state) == 0)
        return;
    r->state = state;
    odk_info("volume %s", state);
    odk_driver_set_property(r->drv, "OdkRAIDState", odk_value_new_string(state));
}

static bool failed_for_row(const struct raid *r, unsigned disk, uint64_t row)
{
    return r->failed == (int)disk && !(r->rebuilding && row < r->cursor);
}

static void fail_disk(struct raid *r, unsigned disk, const char *why)
{
    if (r->failed == (int)disk)
        return;
    if (r->level == 0 || r->failed >= 0) {
        odk_error("disk %u %s: the volume has no redundancy left", disk, why);
        r->dead = true;
        set_state(r, "failed");
        return;
    }
    odk_warn("disk %u %s: serving degraded", disk, why);
    r->failed = (int)disk;
    r->rebuilding = false;
    set_state(r, "degraded");
}

/* ---- completing volume ops ---------------------------------------------- */

static void vop_error(struct vop *v, uint8_t key, uint8_t asc, uint8_t ascq)
{
    if (v->status != ODK_SCSI_STATUS_GOOD)
        return;
    odk_scsi_sense s = {.key = key, .asc = asc, .ascq = ascq};
    size_t len = 0;
    v->status = ODK_SCSI_STATUS_CHECK_CONDITION;
    if (odk_scsi_sense_build(&s, false, v->sense, sizeof v->sense, &len) == ODK_OK)
        v->sense_len = (uint32_t)len;
}

static void vop_put(struct vop *v)
{
    if (--v->pending)
        return;
    bool good = v->response == ODK_SCSI_TASK_COMPLETE && v->status == ODK_SCSI_STATUS_GOOD;
    odk_scsi_task_complete(v->t, v->response, v->status, good ? v->t->length : 0,
                           v->sense_len ? v->sense : NULL, v->sense_len);
    free(v);
}

/* ---- commands to disks ---------------------------------------------------- */

static void hba_done(void *ctx, void *cmd_ctx, uint32_t response, uint8_t status,
                     uint64_t transferred, const uint8_t *sense, uint32_t sense_len);

/* Sends the sub's command (again, after a UNIT ATTENTION). */
static int sub_send(struct raid *r, struct sub *s)
{
    odk_sim_hba_sge sg[ODK_SIM_HBA_SG_MAX];
    for (unsigned i = 0; i < s->n_seg; i++)
        sg[i] = (odk_sim_hba_sge){s->mem, s->seg[i].mem_off, (uint64_t)s->seg[i].blocks * r->bs};
    return odk_sim_hba_submit_sg(r->hba, s->disk, s->cdb, s->cdb_len, s->dir, sg, s->n_seg, s);
}

/* Builds the READ or WRITE (16) of the sub's segments, contiguous on its
 * disk from seg[0], and sends it. */
static int sub_submit(struct raid *r, struct sub *s)
{
    uint32_t blocks = 0;
    for (unsigned i = 0; i < s->n_seg; i++)
        blocks += s->seg[i].blocks;
    odk_scsi_cdb cdb;
    uint64_t lba = s->seg[0].disk_lba;
    int st = s->is_read ? odk_scsi_build_read_16(&cdb, lba, blocks, 0)
                        : odk_scsi_build_write_16(&cdb, lba, blocks, s->fua ? ODK_SCSI_RW_FUA : 0);
    if (st == ODK_OK)
        st = odk_sim_hba_map(r->hba, s->mem);
    if (st < 0)
        return st;
    memcpy(s->cdb, cdb.bytes, cdb.length);
    s->cdb_len = (uint8_t)cdb.length;
    s->dir = s->is_read ? ODK_SCSI_DIR_FROM_DEVICE : ODK_SCSI_DIR_TO_DEVICE;
    return sub_send(r, s);
}

/* One range: a stripe piece's command. */
static int submit(struct raid *r, struct sub *s, uint64_t lba, uint32_t blocks, odk_memory *m,
                  uint64_t off, bool fua)
{
    s->mem = m;
    s->fua = fua;
    s->n_seg = 1;
    s->seg[0] = (struct seg){.disk_lba = lba, .blocks = blocks, .mem_off = off};
    return sub_submit(r, s);
}

/* A disk that was reset (or powered on) says so once, to the next command,
 * with UNIT ATTENTION: the command did not run, and goes again. */
static bool retry_unit_attention(struct raid *r, struct sub *s, uint32_t response, uint8_t status,
                                 const uint8_t *sense, uint32_t sense_len)
{
    odk_scsi_sense k;
    if (response != ODK_SCSI_TASK_COMPLETE || status != ODK_SCSI_STATUS_CHECK_CONDITION ||
        odk_scsi_sense_parse(sense, sense_len, &k) < 0 || k.key != ODK_SCSI_SENSE_UNIT_ATTENTION ||
        s->retries >= UA_RETRIES)
        return false;
    char words[256];
    odk_scsi_sense_describe(&k, words, sizeof words);
    s->retries++;
    odk_info("disk %u: %s; the command goes again", s->disk, words);
    return sub_send(r, s) == ODK_OK;
}

static struct sub *sub_new(struct vop *op, struct piece *p, unsigned disk, bool is_read)
{
    struct sub *s = calloc(1, sizeof *s);
    if (s)
        *s = (struct sub){.op = op, .piece = p, .disk = disk, .is_read = is_read};
    return s;
}

/* ---- the FIFO of pieces (RAID-5 writes, reconstructions, rebuild) --------- */

static void piece_step(struct raid *r, struct piece *p);

static void fifo_run(struct raid *r)
{
    if (r->busy || !r->head)
        return;
    r->busy = true;
    piece_step(r, r->head);
}

static void fifo_push(struct raid *r, struct piece *p)
{
    p->next = NULL;
    if (r->tail)
        r->tail->next = p;
    else
        r->head = p;
    r->tail = p;
    fifo_run(r);
}

static void rebuild_next(struct raid *r);

static void piece_finish(struct raid *r, struct piece *p)
{
    r->head = p->next;
    if (!r->head)
        r->tail = NULL;
    r->busy = false;
    bool rebuild = p->kind == P_REBUILD;
    if (p->op)
        vop_put(p->op);
    free(p);
    if (rebuild)
        rebuild_next(r);
    fifo_run(r);
}

static uint8_t *scratch(struct raid *r, unsigned i)
{
    return r->scratch_addr + (size_t)i * CHUNK;
}

/* Reads the piece's range from every disk but skip (and but skip2) into
 * scratch[disk]; returns how many reads went out. */
static unsigned read_others(struct raid *r, struct piece *p, unsigned skip, int skip2)
{
    unsigned n = 0;
    for (unsigned d = 0; d < r->n; d++) {
        if (d == skip || (int)d == skip2)
            continue;
        struct sub *s = sub_new(NULL, p, d, true);
        if (!s ||
            submit(r, s, p->disk_lba, p->blocks, r->scratch, (uint64_t)d * CHUNK, false) < 0) {
            free(s);
            p->io_failed = true;
            p->bad_disk = (int)d;
            continue;
        }
        n++;
    }
    return n;
}

static void xor_into(uint8_t *dst, const uint8_t *src, size_t len)
{
    for (size_t i = 0; i < len; i++)
        dst[i] ^= src[i];
}

/* Advances a piece to its next phase; called when it starts and whenever
 * the commands of a phase are all back. */
static void piece_step(struct raid *r, struct piece *p)
{
    size_t len = (size_t)p->blocks * r->bs;
    if (p->io_failed) {
        p->io_failed = false;
        if (r->dead || p->bad_disk < 0) {
            if (p->op)
                vop_error(p->op, ODK_SCSI_SENSE_MEDIUM_ERROR, 0x11, 0x00);
            piece_finish(r, p);
            return;
        }
        fail_disk(r, (unsigned)p->bad_disk, "failed a command");
        if (r->dead) {
            if (p->op)
                vop_error(p->op, ODK_SCSI_SENSE_MEDIUM_ERROR, 0x11, 0x00);
            piece_finish(r, p);
            return;
        }
        p->phase = 0; /* start over, degraded */
        p->bad_disk = -1;
    }
    if (r->dead && p->op) {
        vop_error(p->op, ODK_SCSI_SENSE_HARDWARE_ERROR, 0x44, 0x00);
        piece_finish(r, p);
        return;
    }
    switch (p->kind) {
    case P_READ_DEGRADED:
        if (p->phase == 0) {
            p->phase = 1;
            p->pending = read_others(r, p, p->data, -1);
            if (!p->pending)
                piece_step(r, p);
            return;
        }
        if (p->phase == 1) {
            memset(p->buf, 0, len);
            for (unsigned d = 0; d < r->n; d++)
                if (d != p->data)
                    xor_into(p->buf, scratch(r, d), len);
            piece_finish(r, p);
        }
        return;
    case P_WRITE5: {
        bool data_ok = !failed_for_row(r, p->data, p->row);
        bool parity_ok = !failed_for_row(r, p->parity, p->row);
        if (p->phase == 0) {
            p->phase = 1;
            if (data_ok && parity_ok) {
                /* old data and old parity */
                unsigned n = 0;
                for (int i = 0; i < 2; i++) {
                    unsigned d = i ? p->parity : p->data;
                    struct sub *s = sub_new(NULL, p, d, true);
                    if (!s || submit(r, s, p->disk_lba, p->blocks, r->scratch, (uint64_t)d * CHUNK,
                                     false) < 0) {
                        free(s);
                        p->io_failed = true;
                        p->bad_disk = (int)d;
                    } else
                        n++;
                }
                p->pending = n;
            } else if (!data_ok) {
                p->pending = read_others(r, p, p->data, (int)p->parity);
            } else {
                p->pending = 0;
            }
            if (!p->pending)
                piece_step(r, p);
            return;
        }
        if (p->phase == 1) {
            p->phase = 2;
            uint8_t *par = scratch(r, p->parity);
            if (data_ok && parity_ok) {
                xor_into(par, scratch(r, p->data), len);
                xor_into(par, p->buf, len);
            } else if (!data_ok) {
                memcpy(par, p->buf, len);
                for (unsigned d = 0; d < r->n; d++)
                    if (d != p->data && d != p->parity)
                        xor_into(par, scratch(r, d), len);
            }
            unsigned n = 0;
            if (data_ok) {
                /* the new data goes from the task's memory to the disk */
                memcpy(scratch(r, r->n), p->buf, len);
                struct sub *s = sub_new(NULL, p, p->data, false);
                if (!s || submit(r, s, p->disk_lba, p->blocks, r->scratch, (uint64_t)r->n * CHUNK,
                                 false) < 0) {
                    free(s);
                    p->io_failed = true;
                    p->bad_disk = (int)p->data;
                } else
                    n++;
            }
            if (parity_ok) {
                struct sub *s = sub_new(NULL, p, p->parity, false);
                if (!s || submit(r, s, p->disk_lba, p->blocks, r->scratch,
                                 (uint64_t)p->parity * CHUNK, false) < 0) {
                    free(s);
                    p->io_failed = true;
                    p->bad_disk = (int)p->parity;
                } else
                    n++;
            }
            p->pending = n;
            if (!p->pending)
                piece_step(r, p);
            return;
        }
        piece_finish(r, p);
        return;
    }
    case P_REBUILD:
        if (r->failed < 0 || !r->rebuilding) {
            piece_finish(r, p);
            return;
        }
        if (p->phase == 0) {
            p->phase = 1;
            p->pending = read_others(r, p, (unsigned)r->failed, -1);
            if (!p->pending)
                piece_step(r, p);
            return;
        }
        if (p->phase == 1) {
            p->phase = 2;
            uint8_t *dst = scratch(r, (unsigned)r->failed);
            memset(dst, 0, len);
            for (unsigned d = 0; d < r->n; d++)
                if ((int)d != r->failed)
                    xor_into(dst, scratch(r, d), len);
            struct sub *s = sub_new(NULL, p, (unsigned)r->failed, false);
            if (!s || submit(r, s, p->disk_lba, p->blocks, r->scratch, (uint64_t)r->failed * CHUNK,
                             false) < 0) {
                free(s);
                p->pending = 0;
                odk_error("rebuild: cannot write the new disk");
                r->rebuilding = false;
                piece_finish(r, p);
                return;
            }
            p->pending = 1;
            return;
        }
        r->cursor = p->row + 1;
        piece_finish(r, p);
        return;
    }
}

static void rebuild_next(struct raid *r)
{
    if (!r->rebuilding || r->failed < 0)
        return;
    if (r->cursor >= r->rows) {
        odk_info("rebuild of disk %d complete", r->failed);
        r->failed = -1;
        r->rebuilding = false;
        set_state(r, "optimal");
        return;
    }
    struct piece *p = calloc(1, sizeof *p);
    if (!p)
        return;
    *p = (struct piece){.kind = P_REBUILD,
                        .row = r->cursor,
                        .disk_lba = r->cursor * r->chunk_blocks,
                        .blocks = (uint32_t)r->chunk_blocks,
                        .bad_disk = -1};
    fifo_push(r, p);
}

static bool medium_or_gone(uint32_t response, uint8_t status, const uint8_t *sense,
                           uint32_t sense_len)
{
    if (response == ODK_SCSI_TASK_ABORTED)
        return false; /* we asked for it: the disk is not at fault */
    if (response != ODK_SCSI_TASK_COMPLETE)
        return true;
    if (status == ODK_SCSI_STATUS_GOOD)
        return false;
    odk_scsi_sense s;
    if (odk_scsi_sense_parse(sense, sense_len, &s) < 0)
        return true;
    return s.key == ODK_SCSI_SENSE_MEDIUM_ERROR || s.key == ODK_SCSI_SENSE_NOT_READY ||
           s.key == ODK_SCSI_SENSE_HARDWARE_ERROR;
}

static void queue_degraded_read(struct raid *r, struct vop *v, uint64_t row, uint64_t disk_lba,
                                uint32_t blocks, unsigned data, uint8_t *buf);

static void hba_done(void *ctx, void *cmd_ctx, uint32_t response, uint8_t status,
                     uint64_t transferred, const uint8_t *sense, uint32_t sense_len)
{
    struct raid *r = ctx;
    struct sub *s = cmd_ctx;
    (void)transferred;
    if (retry_unit_attention(r, s, response, status, sense, sense_len))
        return;
    bool bad = response != ODK_SCSI_TASK_COMPLETE || status != ODK_SCSI_STATUS_GOOD;
    if (s->piece) {
        struct piece *p = s->piece;
        if (bad) {
            odk_warn("disk %u: command failed (response %u, status 0x%02x)", s->disk, response,
                     status);
            p->io_failed = true;
            p->bad_disk = medium_or_gone(response, status, sense, sense_len) ? (int)s->disk : -1;
        }
        free(s);
        if (--p->pending == 0)
            piece_step(r, p);
        return;
    }
    struct vop *v = s->op;
    if (bad && r->level == 5 && s->is_read && s->n_seg &&
        medium_or_gone(response, status, sense, sense_len)) {
        /* Reconstruct its chunks from the other disks. */
        fail_disk(r, s->disk,
                  response != ODK_SCSI_TASK_COMPLETE ? "stopped answering" : "reported an error");
        for (unsigned i = 0; i < s->n_seg; i++)
            if (r->dead)
                vop_error(v, ODK_SCSI_SENSE_MEDIUM_ERROR, 0x11, 0x00);
            else
                queue_degraded_read(r, v, s->seg[i].row, s->seg[i].disk_lba, s->seg[i].blocks,
                                    s->disk, s->seg[i].buf);
    } else if (bad && response == ODK_SCSI_TASK_ABORTED) {
        v->response = ODK_SCSI_SERVICE_FAILURE; /* aborted: the family answers EIO */
    } else if (bad && response != ODK_SCSI_TASK_COMPLETE) {
        if (r->level == 0)
            fail_disk(r, s->disk, "stopped answering");
        v->response = ODK_SCSI_SERVICE_FAILURE;
    } else if (bad && v->status == ODK_SCSI_STATUS_GOOD) {
        v->status = status;
        v->sense_len = sense && sense_len < sizeof v->sense ? sense_len : 0;
        if (v->sense_len)
            memcpy(v->sense, sense, v->sense_len);
    }
    free(s);
    vop_put(v);
}

/* ---- the volume's tasks ---------------------------------------------------- */

struct place {
    unsigned disk, parity;
    uint64_t row, disk_lba;
};

static struct place locate(const struct raid *r, uint64_t lba)
{
    uint64_t stripe = lba / r->chunk_blocks, in = lba % r->chunk_blocks;
    struct place pl;
    if (r->level == 0) {
        pl.row = stripe / r->n;
        pl.disk = (unsigned)(stripe % r->n);
        pl.parity = 0;
    } else {
        unsigned dd = r->n - 1;
        pl.row = stripe / dd;
        pl.parity = (unsigned)(dd - pl.row % r->n);
        pl.disk = (unsigned)((pl.parity + 1 + stripe % dd) % r->n);
    }
    pl.disk_lba = pl.row * r->chunk_blocks + in;
    return pl;
}

static void queue_degraded_read(struct raid *r, struct vop *v, uint64_t row, uint64_t disk_lba,
                                uint32_t blocks, unsigned data, uint8_t *buf)
{
    struct piece *p = calloc(1, sizeof *p);
    if (!p) {
        vop_error(v, ODK_SCSI_SENSE_HARDWARE_ERROR, 0x44, 0x00);
        return;
    }
    *p = (struct piece){.kind = P_READ_DEGRADED,
                        .op = v,
                        .row = row,
                        .disk_lba = disk_lba,
                        .blocks = blocks,
                        .data = data,
                        .buf = buf,
                        .bad_disk = -1};
    v->pending++;
    fifo_push(r, p);
}

/* Sends a direct command gathered by read_write; one that cannot go is
 * read degraded (RAID-5) or fails the op. */
static void sub_flush(struct raid *r, struct vop *v, struct sub *s)
{
    if (sub_submit(r, s) == ODK_OK) {
        v->pending++;
        return;
    }
    for (unsigned i = 0; i < s->n_seg; i++)
        if (r->level == 5 && s->is_read)
            queue_degraded_read(r, v, s->seg[i].row, s->seg[i].disk_lba, s->seg[i].blocks, s->disk,
                                s->seg[i].buf);
        else
            vop_error(v, ODK_SCSI_SENSE_HARDWARE_ERROR, 0x44, 0x00);
    free(s);
}

/* zeroes: WRITE SAME of a zero block (the data comes from the scratch's
 * zero area, not the task's memory).  The chunks that lie next to each
 * other on a disk go in one command (sub), sent when the next chunk for
 * that disk is not next to them, when it is full, or at the end. */
static void read_write(struct raid *r, struct vop *v, uint64_t lba, uint32_t blocks, bool write,
                       bool fua, bool zeroes)
{
    odk_scsi_task *t = v->t;
    uint8_t *base = NULL;
    if (t->memory && odk_memory_map(t->memory, ODK_MAP_READ | ODK_MAP_WRITE, (void **)&base) < 0) {
        vop_error(v, ODK_SCSI_SENSE_HARDWARE_ERROR, 0x44, 0x00);
        return;
    }
    if ((!zeroes && (uint64_t)blocks * r->bs > t->length) || lba > r->vol_blocks ||
        blocks > r->vol_blocks - lba) {
        vop_error(v, ODK_SCSI_SENSE_ILLEGAL_REQUEST, 0x21, 0x00); /* LBA OUT OF RANGE */
        return;
    }
    struct sub *open[MAX_DISKS] = {0};
    uint64_t off = 0;
    while (blocks) {
        struct place pl = locate(r, lba);
        uint32_t n = (uint32_t)(r->chunk_blocks - lba % r->chunk_blocks);
        if (n > blocks)
            n = blocks;
        uint8_t *buf = zeroes ? scratch(r, r->n + 1) : base + t->offset + off;
        odk_memory *src = zeroes ? r->scratch : t->memory;
        uint64_t src_off = zeroes ? (uint64_t)(r->n + 1) * CHUNK : t->offset + off;
        if (r->level == 5 && write) {
            struct piece *p = calloc(1, sizeof *p);
            if (!p) {
                vop_error(v, ODK_SCSI_SENSE_HARDWARE_ERROR, 0x44, 0x00);
                return;
            }
            *p = (struct piece){.kind = P_WRITE5,
                                .op = v,
                                .row = pl.row,
                                .disk_lba = pl.disk_lba,
                                .blocks = n,
                                .data = pl.disk,
                                .parity = pl.parity,
                                .buf = buf,
                                .bad_disk = -1};
            v->pending++;
            fifo_push(r, p);
        } else if (r->level == 5 && failed_for_row(r, pl.disk, pl.row)) {
            queue_degraded_read(r, v, pl.row, pl.disk_lba, n, pl.disk, buf);
        } else {
            struct sub *s = open[pl.disk];
            const struct seg *last = s ? &s->seg[s->n_seg - 1] : NULL;
            if (s && (s->n_seg == ODK_SIM_HBA_SG_MAX || s->mem != src ||
                      last->disk_lba + last->blocks != pl.disk_lba)) {
                sub_flush(r, v, s);
                s = open[pl.disk] = NULL;
            }
            if (!s && (s = open[pl.disk] = sub_new(v, NULL, pl.disk, !write)) != NULL) {
                s->mem = src;
                s->fua = fua;
            }
            if (!s) {
                if (r->level == 5)
                    queue_degraded_read(r, v, pl.row, pl.disk_lba, n, pl.disk, buf);
                else
                    vop_error(v, ODK_SCSI_SENSE_HARDWARE_ERROR, 0x44, 0x00);
            } else {
                s->seg[s->n_seg++] = (struct seg){.row = pl.row,
                                                  .disk_lba = pl.disk_lba,
                                                  .blocks = n,
                                                  .buf = buf,
                                                  .mem_off = src_off};
            }
        }
        lba += n;
        blocks -= n;
        off += (uint64_t)n * r->bs;
    }
    for (unsigned d = 0; d < r->n; d++)
        if (open[d])
            sub_flush(r, v, open[d]);
}

static void sync_disks(struct raid *r, struct vop *v)
{
    for (unsigned d = 0; d < r->n; d++) {
        if (r->failed == (int)d && !r->rebuilding)
            continue;
        odk_scsi_cdb cdb;
        struct sub *s = sub_new(v, NULL, d, false);
        if (s && odk_scsi_build_synchronize_cache_16(&cdb, 0, 0, false) == ODK_OK) {
            memcpy(s->cdb, cdb.bytes, cdb.length);
            s->cdb_len = (uint8_t)cdb.length;
            s->dir = ODK_SCSI_DIR_NONE;
        }
        if (!s || !s->cdb_len || sub_send(r, s) < 0) {
            free(s);
            continue;
        }
        v->pending++;
    }
}

static void task(void *ctx, odk_scsi_task *t)
{
    struct raid *r = ctx;
    struct vop *v = calloc(1, sizeof *v);
    if (!v) {
        odk_scsi_task_complete(t, ODK_SCSI_SERVICE_FAILURE, 0, 0, NULL, 0);
        return;
    }
    v->t = t;
    v->pending = 1; /* ours, dropped at the end */
    t->driver_ctx = r;
    odk_scsi_cdb_info info;
    int st = odk_scsi_cdb_decode(t->cdb, t->cdb_len, &info);
    uint8_t op = t->cdb[0];
    if (r->unit_attention && op != ODK_SCSI_OP_INQUIRY && op != ODK_SCSI_OP_REPORT_LUNS &&
        op != ODK_SCSI_OP_REQUEST_SENSE) {
        r->unit_attention = false;
        vop_error(v, ODK_SCSI_SENSE_UNIT_ATTENTION, 0x29, 0x00);
    } else if (r->dead) {
        vop_error(v, ODK_SCSI_SENSE_HARDWARE_ERROR, 0x44, 0x00);
    } else if (st == ODK_OK && (op == ODK_SCSI_OP_READ_10 || op == ODK_SCSI_OP_READ_16 ||
                                op == ODK_SCSI_OP_WRITE_10 || op == ODK_SCSI_OP_WRITE_16)) {
        bool write = op == ODK_SCSI_OP_WRITE_10 || op == ODK_SCSI_OP_WRITE_16;
        read_write(r, v, info.lba, info.blocks, write, info.fua, false);
    } else if (op == ODK_SCSI_OP_SYNCHRONIZE_CACHE_10 || op == ODK_SCSI_OP_SYNCHRONIZE_CACHE_16) {
        sync_disks(r, v);
    } else if (op == ODK_SCSI_OP_UNMAP) {
        /* The volume does not pass UNMAP to its disks: trimmed blocks keep
         * their data, which NBD's TRIM allows. */
    } else if (op == ODK_SCSI_OP_WRITE_SAME_16 && t->cdb_len == 16) {
        /* Only zeroes (the disk layer's WRITE_ZEROES): the volume writes
         * them from a zeroed area, one stripe piece at a time. */
        uint8_t *base = NULL;
        bool zero = t->memory && t->length >= r->bs &&
                    odk_memory_map(t->memory, ODK_MAP_READ, (void **)&base) == ODK_OK;
        for (uint32_t i = 0; zero && i < r->bs; i++)
            zero = base[t->offset + i] == 0;
        uint64_t lba = 0;
        for (int i = 2; i < 10; i++)
            lba = lba << 8 | t->cdb[i];
        uint32_t blocks = (uint32_t)t->cdb[10] << 24 | (uint32_t)t->cdb[11] << 16 |
                          (uint32_t)t->cdb[12] << 8 | t->cdb[13];
        if (!zero || !blocks)
            vop_error(v, ODK_SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00);
        else
            read_write(r, v, lba, blocks, true, false, true);
    } else {
        /* INQUIRY, READ CAPACITY, MODE SENSE, TEST UNIT READY...: the
         * library's emulation answers for the volume. */
        uint8_t *base = NULL;
        if (t->memory)
            odk_memory_map(t->memory, ODK_MAP_READ | ODK_MAP_WRITE, (void **)&base);
        odk_scsi_result res;
        memset(&res, 0, sizeof res);
        bool in = t->direction == ODK_SCSI_DIR_FROM_DEVICE,
             out = t->direction == ODK_SCSI_DIR_TO_DEVICE;
        uint8_t *data = base ? base + t->offset : NULL;
        if (odk_scsi_disk_execute(r->spc, t->cdb, t->cdb_len, out ? data : NULL,
                                  out ? t->length : 0, in ? data : NULL, in ? t->length : 0,
                                  &res) < 0) {
            vop_error(v, ODK_SCSI_SENSE_HARDWARE_ERROR, 0x44, 0x00);
        } else if (res.status != ODK_SCSI_STATUS_GOOD) {
            v->status = res.status;
            v->sense_len = (uint32_t)res.sense_len;
            memcpy(v->sense, res.sense, res.sense_len);
        }
    }
    vop_put(v);
}

static void slot_changed(void *ctx, uint32_t slot, bool present)
{
    struct raid *r = ctx;
    if (slot >= r->n)
        return;
    if (!present) {
        fail_disk(r, slot, "left its slot");
        return;
    }
    uint64_t blocks;
    uint32_t bs;
    odk_sim_hba_slot_info(r->hba, slot, &blocks, &bs);
    if ((int)slot == r->failed && r->level == 5 && !r->dead && bs == r->bs &&
        blocks >= r->rows * r->chunk_blocks) {
        odk_info("disk %u replaced: rebuilding", slot);
        r->rebuilding = true;
        r->cursor = 0;
        set_state(r, "rebuilding");
        rebuild_next(r);
    }
}

/* Whether an HBA command belongs to the volume task arg (directly, or
 * through a stripe piece of it). */
static bool sub_of_task(void *cmd_ctx, void *arg)
{
    const struct sub *s = cmd_ctx;
    const struct vop *v = s->op ? s->op : s->piece ? s->piece->op : NULL;
    return v && v->t == arg;
}

/* Takes the stripe pieces of task t (every volume task's for t NULL) out
 * of the FIFO while they wait their turn, the running one excepted (its
 * commands are at the disks, for the HBA to abort): they never start,
 * and their task completes with a service failure.  Returns how many. */
static unsigned drop_queued_pieces(struct raid *r, const odk_scsi_task *t)
{
    if (!r->head)
        return 0;
    /* Unlinked first, completed after: a completion may start new tasks,
     * whose pieces join the FIFO. */
    struct piece *dropped = NULL;
    for (struct piece **pp = &r->head->next; *pp;) {
        struct piece *p = *pp;
        if (!p->op || (t && p->op->t != t)) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        p->next = dropped;
        dropped = p;
    }
    r->tail = r->head;
    while (r->tail->next)
        r->tail = r->tail->next;
    unsigned n = 0;
    while (dropped) {
        struct piece *p = dropped;
        dropped = p->next;
        p->op->response = ODK_SCSI_SERVICE_FAILURE;
        vop_put(p->op);
        free(p);
        n++;
    }
    return n;
}

/* The family's recovery steps, passed to the HBA: ABORT TASK aborts every
 * disk command of the volume task (a command the disk holds ends
 * ODK_SCSI_TASK_ABORTED and the task completes with a service failure)
 * and drops its RAID-5 stripe pieces still waiting in the FIFO; a LUN or
 * target reset resets every disk of the volume (its one LUN spans them
 * all), a bus reset the HBA's bus, and each drops every task's waiting
 * pieces (a reset ends the task set; a rebuild's go on).  A disk that
 * answers no task management (`hang`) keeps its commands: the HBA logs
 * the failure and the family goes on to its next step. */
static void reset(void *ctx, uint32_t kind, odk_scsi_task *t, uint32_t target, uint64_t lun,
                  uint32_t deadline_ms)
{
    struct raid *r = ctx;
    (void)deadline_ms;
    static const char *const names[] = {"abort task", "LUN reset", "target reset", "bus reset"};
    unsigned dropped = kind == ODK_SCSI_ABORT_TASK ? (t ? drop_queued_pieces(r, t) : 0)
                                                   : drop_queued_pieces(r, NULL);
    if (dropped)
        odk_warn("%s: %u stripe piece(s) waiting in the FIFO dropped",
                 kind < 4 ? names[kind] : "reset", dropped);
    if (kind != ODK_SCSI_ABORT_TASK)
        r->unit_attention = true; /* the volume's LUN was reset too */
    int st = ODK_OK;
    if (kind == ODK_SCSI_ABORT_TASK && t)
        st = odk_sim_hba_abort(r->hba, sub_of_task, t);
    else if (kind == ODK_SCSI_LUN_RESET || kind == ODK_SCSI_TARGET_RESET)
        for (unsigned d = 0; d < r->n && st >= 0; d++)
            st = odk_sim_hba_reset(r->hba, d);
    else if (kind == ODK_SCSI_BUS_RESET)
        st = odk_sim_hba_reset(r->hba, ODK_SIM_HBA_BUS);
    odk_warn("%s asked (target %u, LUN %llu%s%llu): %s%s", kind < 4 ? names[kind] : "reset", target,
             (unsigned long long)lun, t ? ", tag " : "", t ? (unsigned long long)t->tag : 0ull,
             st < 0 ? "the HBA refused: " : "sent to the HBA", st < 0 ? odk_strerror(st) : "");
}

static const odk_storage_controller_ops controller_ops = {.task = task, .reset = reset};
static const odk_sim_hba_ops hba_ops = {.done = hba_done, .slot_changed = slot_changed};

/* The volume's SPC answers come from the library's disk emulation; its
 * block callbacks are never reached (the driver handles block commands). */
static int no_io(void *ctx, uint64_t off, void *buf, size_t len)
{
    (void)ctx, (void)off, (void)buf, (void)len;
    return ODK_E_STATE;
}
static int no_write(void *ctx, uint64_t off, const void *buf, size_t len, bool fua)
{
    (void)ctx, (void)off, (void)buf, (void)len, (void)fua;
    return ODK_E_STATE;
}
static int no_flush(void *ctx)
{
    (void)ctx;
    return ODK_OK;
}

static int raid_start(odk_driver *drv)
{
    struct raid *r = odk_driver_state(drv);
    r->drv = drv;
    r->failed = -1;
    int64_t level = odk_dict_get_int(odk_driver_provider_properties(drv), "OdkRAIDLevel", 5);
    if (level != 0 && level != 5) {
        odk_error("OdkRAIDLevel %lld: only 0 and 5 are supported", (long long)level);
        return ODK_E_INVALID;
    }
    r->level = (unsigned)level;
    int st = odk_sim_hba_open(drv, &hba_ops, r, &r->hba);
    if (st < 0)
        return st;
    r->n = odk_sim_hba_slots(r->hba);
    uint64_t min_blocks = UINT64_MAX;
    for (unsigned d = 0; d < r->n; d++) {
        uint64_t b;
        uint32_t bs;
        odk_sim_hba_slot_info(r->hba, d, &b, &bs);
        if (!b) {
            odk_error("slot %u is empty: the volume needs every disk to start", d);
            return ODK_E_STATE;
        }
        if (r->bs && bs != r->bs) {
            odk_error("disks of different block sizes");
            return ODK_E_STATE;
        }
        r->bs = bs;
        if (b < min_blocks)
            min_blocks = b;
    }
    if (r->n < (r->level == 5 ? 3u : 1u) || r->n > MAX_DISKS) {
        odk_error("RAID-%u needs %u..%u disks, the HBA has %u", r->level, r->level == 5 ? 3 : 1,
                  MAX_DISKS, r->n);
        return ODK_E_STATE;
    }
    r->chunk_blocks = CHUNK / r->bs;
    r->rows = min_blocks / r->chunk_blocks;
    r->vol_blocks = r->rows * r->chunk_blocks * (r->level == 5 ? r->n - 1 : r->n);
    if (!r->vol_blocks)
        return ODK_E_STATE;
    /* scratch: one chunk per disk, one for the data being written, one of
     * zeroes */
    st = odk_memory_create((uint64_t)(r->n + 2) * CHUNK, ODK_MEM_INOUT, &r->scratch);
    if (st == ODK_OK)
        st = odk_memory_map(r->scratch, ODK_MAP_READ | ODK_MAP_WRITE, (void **)&r->scratch_addr);
    if (st == ODK_OK)
        st = odk_sim_hba_map(r->hba, r->scratch);
    char product[17], serial[32];
    snprintf(product, sizeof product, "RAID-%u VOLUME", r->level);
    snprintf(serial, sizeof serial, "ODKRAID%llu", (unsigned long long)odk_driver_provider_id(drv));
    odk_scsi_disk_config cfg = {.block_size = r->bs,
                                .block_count = r->vol_blocks,
                                .vendor = "ODK",
                                .product = product,
                                .revision = "0001",
                                .serial = serial,
                                .write_cache = true};
    odk_scsi_disk_backend be = {.read = no_io, .write = no_write, .flush = no_flush, .ctx = r};
    if (st == ODK_OK)
        st = odk_scsi_disk_create(&cfg, &be, &r->spc);
    if (st == ODK_OK)
        st = odk_storage_controller_create(drv, &controller_ops, r, QUEUE_DEPTH, &r->ctl);
    /* The HBA node may shorten the family's deadlines (tests do). */
    const odk_value *hp = odk_driver_provider_properties(drv);
    int64_t tmo = odk_dict_get_int(hp, "OdkSCSITaskTimeoutMS", 0);
    int64_t rst = odk_dict_get_int(hp, "OdkSCSIResetDeadlineMS", 0);
    if (st == ODK_OK && (tmo || rst) &&
        (tmo < 0 || rst < 0 || tmo > UINT32_MAX || rst > UINT32_MAX ||
         odk_storage_controller_set_timeouts(r->ctl, (uint32_t)tmo, (uint32_t)rst) < 0))
        odk_warn("OdkSCSITaskTimeoutMS %lld / OdkSCSIResetDeadlineMS %lld refused; "
                 "keeping the family's deadlines",
                 (long long)tmo, (long long)rst);
    char name[48];
    snprintf(name, sizeof name, "raid%u-hba%llu", r->level,
             (unsigned long long)odk_driver_provider_id(drv));
    odk_storage_lun_info info = {.peripheral_type = ODK_SCSI_TYPE_DISK,
                                 .vendor = "ODK",
                                 .product = product,
                                 .serial = serial,
                                 .block_size = r->bs,
                                 .blocks = r->vol_blocks,
                                 .export = true,
                                 .export_name = name};
    if (st == ODK_OK)
        st = odk_storage_lun_create(r->ctl, 0, 0, &info, &r->lun);
    if (st < 0)
        return st;
    odk_info("RAID-%u over %u disks: %llu blocks of %u bytes at %s", r->level, r->n,
             (unsigned long long)r->vol_blocks, r->bs, odk_storage_lun_uri(r->lun));
    odk_driver_set_property(drv, "OdkNBDURI", odk_value_new_string(odk_storage_lun_uri(r->lun)));
    /* The HBA node's OdkNBDTCPPort (0: any free port) also puts the volume
     * on a loopback TCP port; without it the volume still serves on its
     * Unix socket. */
    const odk_value *tcp = odk_dict_get(hp, "OdkNBDTCPPort");
    if (tcp) {
        int64_t want = odk_value_int(tcp);
        uint16_t port = 0;
        if (want < 0 || want > 65535 ||
            odk_storage_lun_export_tcp(r->lun, (uint16_t)want, &port) < 0)
            odk_warn("OdkNBDTCPPort %lld: no TCP listener; the volume serves on its Unix "
                     "socket only",
                     (long long)want);
        else
            odk_info("also at nbd://127.0.0.1:%u/%s", port, name);
    }
    set_state(r, "optimal");
    return odk_driver_register_service(drv);
}

static void raid_stop(odk_driver *drv)
{
    struct raid *r = odk_driver_state(drv);
    odk_storage_controller_destroy(r->ctl);
    r->ctl = NULL;
    odk_sim_hba_close(r->hba);
    r->hba = NULL;
    odk_scsi_disk_free(r->spc);
    r->spc = NULL;
    while (r->head) {
        struct piece *p = r->head;
        r->head = p->next;
        free(p);
    }
    if (r->scratch)
        odk_release(r->scratch);
    r->scratch = NULL;
}

static const odk_driver_class raid_class = {
    .name = "ScsiRaid",
    .state_size = sizeof(struct raid),
    .start = raid_start,
    .stop = raid_stop,
};
ODK_DRIVER_CLASS(raid_class);
