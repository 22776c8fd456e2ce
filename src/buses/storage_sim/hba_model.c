/* SPDX-License-Identifier: MIT */
/* hba_model.c — odk-storage-model, the simulated SCSI HBA: one process per
 * plugged HBA, carrying N disks (the SCSI library's SBC-3 emulation,
 * odk/scsi.h, over sparse files DIR/disk-SLOT.GEN.img, or with MEMORY
 * over sparse memfds it maps: reads and writes are then copies with no
 * syscall, as nbdkit's memory plugin does).
 *
 *   odk-storage-model DIR DISKS SIZE_MB BLOCK_SIZE [file|memory]
 *
 * odkd talks to it on fd 3 (hba_wire.h: attach a driver link, inject a
 * fault).  A driver link carries the HBA's command ring: the driver maps
 * its memory descriptors once (their memfds), then each command names a
 * disk slot, a CDB and where in mapped descriptors the data is (one range,
 * or a scatter-gather list); the
 * model executes it there (DMA: no copy between driver and device) and
 * answers with status, bytes moved and sense.  A disk removed by a fault
 * answers NO DEVICE; a new one inserted is blank.  A disk told to swallow
 * takes commands and answers none (a hung device: its driver's tasks time
 * out) until `clear`, which runs the held commands late.  Task
 * management reaches the disks: ABORT TASK ends a held command (it is
 * answered HBA_ABORTED and never runs), a LUN reset ends every command
 * its disk holds, a bus reset every disk's; a disk told to `hang` holds
 * commands like a swallowing one and fails task management too (a dead
 * device: its driver's resets get nowhere); one told `no-abort` holds
 * them and fails ABORT TASK, but a LUN or bus reset ends them (a device
 * whose abort is broken).  A disk that a LUN or bus reset reached
 * reports UNIT ATTENTION, POWER ON, RESET, OR BUS DEVICE RESET OCCURRED
 * (29h/00h) to its next command, as SAM-5 has it.  The model ends when
 * odkd closes fd 3. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buses/storage_sim/hba_wire.h"
#include "odk/scsi.h"
#include "odk/status.h"

#define CONTROL_FD 3
#define MAX_LINKS 8

struct map {
    uint8_t *addr;
    uint64_t len;
};

#define LINK_BATCH HBA_BATCH_MAX
#define LINK_RECV 8 /* messages (each a batch) taken per recvmmsg */
/* Completions are sent once the commands taken in a wake-up are done, or
 * sooner, each time the commands behind them have moved this many bytes:
 * the driver hears of a large transfer while the next is copied, not
 * after every transfer at hand (an HBA coalesces its interrupts by count
 * and by time; this is by bytes). */
#define LINK_FLUSH_BYTES (1u << 20)

struct link {
    int fd;
    /* Messages for the driver, sent together (one message of a batch)
     * once the commands at hand are done: one syscall and one wake-up of
     * the driver for a batch of completions, as an HBA coalesces its
     * interrupts. */
    struct hba_msg out[LINK_BATCH];
    unsigned n_out;
    uint64_t moved; /* bytes the commands behind out[] carried */
    unsigned gen; /* bumped at each attach: a held command's link is still its own */
    struct map maps[HBA_MAX_MAPS];
};

struct slot {
    odk_scsi_disk *disk; /* NULL: empty */
    uint8_t *mem;        /* a memory-backed disk's mapping */
    uint64_t mem_len;
    int mem_fd;
    unsigned gen;
    bool swallow;
    bool hang;     /* task management fails too */
    bool no_abort; /* ABORT TASK fails; resets work */
};

/* Commands a swallowing disk took and has not answered. */
struct held {
    struct link *l;
    unsigned link_gen;
    struct hba_msg cmd;
};

static struct {
    const char *dir;
    bool memory; /* disks in memfds, not files */
    unsigned n_slots;
    uint64_t blocks;
    uint32_t block_size;
    struct slot slots[HBA_MAX_SLOTS];
    struct link links[MAX_LINKS];
    int epfd;
    struct held *held;
    size_t n_held, held_cap;
} m;

/* ---- memory-backed disks: a sparse memfd, mapped ---------------------------- */

static int mem_read(void *ctx, uint64_t off, void *buf, size_t len)
{
    struct slot *s = ctx;
    memcpy(buf, s->mem + off, len); /* the library checked the range */
    return ODK_OK;
}

static int mem_write(void *ctx, uint64_t off, const void *buf, size_t len, bool fua)
{
    struct slot *s = ctx;
    (void)fua; /* memory is the medium: nothing is cached in front of it */
    memcpy(s->mem + off, buf, len);
    return ODK_OK;
}

static int mem_flush(void *ctx)
{
    (void)ctx;
    return ODK_OK;
}

static int mem_unmap(void *ctx, uint64_t off, uint64_t len)
{
    struct slot *s = ctx;
    if (fallocate(s->mem_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) <
        0)
        memset(s->mem + off, 0, len);
    return ODK_OK;
}

static void disk_close(unsigned i)
{
    struct slot *s = &m.slots[i];
    odk_scsi_disk_free(s->disk);
    s->disk = NULL;
    if (s->mem) {
        munmap(s->mem, s->mem_len);
        close(s->mem_fd);
        s->mem = NULL;
        s->mem_fd = -1;
    }
}

static int disk_open(unsigned i)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/disk-%u.%u.img", m.dir, i, m.slots[i].gen);
    int fd = m.memory ? memfd_create(path + strlen(m.dir) + 1, MFD_CLOEXEC)
                      : open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "odk-storage-model: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char serial[32];
    snprintf(serial, sizeof serial, "SIM%04u%02u%02u", (unsigned)getpid() % 10000, i,
             m.slots[i].gen);
    odk_scsi_disk_config c = {.block_size = m.block_size,
                              .block_count = m.blocks,
                              .vendor = "ODK",
                              .product = "SIM DISK",
                              .revision = "0001",
                              .serial = serial,
                              .write_cache = true};
    struct slot *s = &m.slots[i];
    int st;
    if (m.memory) {
        uint64_t len = m.blocks * m.block_size;
        void *a = ftruncate(fd, (off_t)len) == 0
                      ? mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0)
                      : MAP_FAILED;
        if (a == MAP_FAILED) {
            fprintf(stderr, "odk-storage-model: disk %u: %s\n", i, strerror(errno));
            close(fd);
            return -1;
        }
        s->mem = a;
        s->mem_len = len;
        s->mem_fd = fd;
        odk_scsi_disk_backend be = {
            .read = mem_read, .write = mem_write, .flush = mem_flush, .unmap = mem_unmap, .ctx = s};
        st = odk_scsi_disk_create(&c, &be, &s->disk);
    } else {
        st = odk_scsi_disk_create_file(&c, fd, &s->disk);
        close(fd);
    }
    if (st < 0) {
        fprintf(stderr, "odk-storage-model: disk %u: %s\n", i, odk_strerror(st));
        s->disk = NULL;
        disk_close(i);
        return -1;
    }
    return 0;
}

static void link_flush(struct link *l)
{
    while (l->fd >= 0 && l->n_out) {
        ssize_t k = send(l->fd, l->out, l->n_out * sizeof l->out[0], MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno != EAGAIN)
            fprintf(stderr, "odk-storage-model: link: %s\n", strerror(errno));
        break;
    }
    l->n_out = 0;
    l->moved = 0;
}

static void send_msg(struct link *l, const struct hba_msg *msg)
{
    if (l->fd < 0)
        return;
    if (l->n_out == LINK_BATCH)
        link_flush(l);
    l->out[l->n_out++] = *msg;
}

static void slot_msg(struct link *l, unsigned i)
{
    struct hba_msg msg = {.type = HBA_SLOT, .slot = i};
    if (m.slots[i].disk) {
        msg.blocks = odk_scsi_disk_block_count(m.slots[i].disk);
        msg.block_size = odk_scsi_disk_block_size(m.slots[i].disk);
    }
    send_msg(l, &msg);
}

static void link_close(struct link *l)
{
    l->n_out = 0;
    epoll_ctl(m.epfd, EPOLL_CTL_DEL, l->fd, NULL);
    close(l->fd);
    l->fd = -1;
    for (unsigned i = 0; i < HBA_MAX_MAPS; i++)
        if (l->maps[i].addr) {
            munmap(l->maps[i].addr, l->maps[i].len);
            l->maps[i].addr = NULL;
        }
}

static void attach(int fd)
{
    struct link *l = NULL;
    for (unsigned i = 0; i < MAX_LINKS && !l; i++)
        if (m.links[i].fd < 0)
            l = &m.links[i];
    if (!l) {
        close(fd);
        return;
    }
    l->fd = fd;
    l->gen++;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
    epoll_ctl(m.epfd, EPOLL_CTL_ADD, fd, &ev);
    struct hba_msg hello = {.type = HBA_HELLO, .slot = m.n_slots};
    send_msg(l, &hello);
    for (unsigned i = 0; i < m.n_slots; i++)
        slot_msg(l, i);
}

static void tell_links(unsigned slot)
{
    for (unsigned i = 0; i < MAX_LINKS; i++)
        if (m.links[i].fd >= 0)
            slot_msg(&m.links[i], slot);
}

static void execute(struct link *l, const struct hba_msg *cmd);

/* The slot stops swallowing: its held commands run now, for the links
 * that sent them (a link closed since has no one to answer). */
static void release_held(unsigned slot)
{
    m.slots[slot].swallow = false;
    size_t keep = 0;
    for (size_t i = 0; i < m.n_held; i++) {
        struct held h = m.held[i];
        if (h.cmd.slot != slot) {
            m.held[keep++] = h;
            continue;
        }
        if (h.l->fd >= 0 && h.l->gen == h.link_gen)
            execute(h.l, &h.cmd);
    }
    m.n_held = keep;
}

static void fault(const struct hba_ctl *c)
{
    if (c->slot >= m.n_slots)
        return;
    struct slot *s = &m.slots[c->slot];
    switch (c->fault) {
    case HBA_FAULT_MEDIUM_ERROR:
        if (s->disk)
            odk_scsi_disk_set_medium_error(s->disk, c->lba, c->blocks ? c->blocks : 1, true);
        break;
    case HBA_FAULT_NOT_READY:
        if (s->disk)
            odk_scsi_disk_set_not_ready(s->disk, true);
        break;
    case HBA_FAULT_SWALLOW:
        s->swallow = true;
        break;
    case HBA_FAULT_HANG:
        s->swallow = s->hang = true;
        break;
    case HBA_FAULT_NO_ABORT:
        s->swallow = s->no_abort = true;
        break;
    case HBA_FAULT_CLEAR:
        s->hang = s->no_abort = false;
        release_held(c->slot);
        if (s->disk) {
            odk_scsi_disk_set_not_ready(s->disk, false);
            odk_scsi_disk_set_medium_error(s->disk, 0, 0, false);
        }
        break;
    case HBA_FAULT_REMOVE:
        if (s->disk) {
            disk_close(c->slot);
            char path[4096];
            snprintf(path, sizeof path, "%s/disk-%u.%u.img", m.dir, c->slot, s->gen);
            unlink(path);
            tell_links(c->slot);
        }
        break;
    case HBA_FAULT_INSERT:
        if (!s->disk) {
            s->gen++;
            if (disk_open(c->slot) == 0)
                tell_links(c->slot);
        }
        break;
    }
}

static void control(void)
{
    struct hba_ctl c;
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {&c, sizeof c};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(CONTROL_FD, &mh, MSG_CMSG_CLOEXEC);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
        exit(0); /* odkd unplugged us */
    int fd = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    if (n != (ssize_t)sizeof c) {
        if (fd >= 0)
            close(fd);
        return;
    }
    if (c.type == HBA_CTL_ATTACH && fd >= 0)
        attach(fd);
    else {
        if (fd >= 0)
            close(fd);
        if (c.type == HBA_CTL_FAULT)
            fault(&c);
    }
}

/* Takes a command for a swallowing slot; false when there is no memory
 * to hold it (then it is answered). */
static bool hold(struct link *l, const struct hba_msg *cmd)
{
    if (m.n_held == m.held_cap) {
        size_t cap = m.held_cap ? m.held_cap * 2 : 64;
        struct held *h = realloc(m.held, cap * sizeof *h);
        if (!h)
            return false;
        m.held = h;
        m.held_cap = cap;
    }
    m.held[m.n_held++] = (struct held){l, l->gen, *cmd};
    return true;
}

struct seg {
    uint8_t *addr;
    uint64_t len;
};

/* Answers cmd HBA_BAD_COMMAND with why (also on stderr, for odkd's log):
 * the driver's side logs it. */
static void refuse(struct link *l, const struct hba_msg *cmd, const char *why)
{
    fprintf(stderr, "odk-storage-model: a command for slot %u (tag %llx) refused: %s\n", cmd->slot,
            (unsigned long long)cmd->tag, why);
    struct hba_msg done = {
        .type = HBA_DONE, .slot = cmd->slot, .tag = cmd->tag, .service = HBA_BAD_COMMAND};
    size_t n = strlen(why);
    done.sense_len = (uint32_t)(n < HBA_SENSE_MAX ? n : HBA_SENSE_MAX);
    memcpy(done.sense, why, done.sense_len);
    send_msg(l, &done);
}

/* Where cmd's data is: *n pieces of the link's maps (hba_wire.h).  false,
 * with why filled, when the single range or the scatter-gather list
 * names memory the device cannot reach or does not add up. */
static bool cmd_segments(const struct link *l, const struct hba_msg *cmd, struct seg *segs,
                         unsigned *n, char *why, size_t why_len)
{
    *n = 0;
    if (cmd->sg_count == 0) {
        if (!cmd->length)
            return true;
        const struct map *mp = cmd->map_id < HBA_MAX_MAPS ? &l->maps[cmd->map_id] : NULL;
        if (!mp || !mp->addr) {
            snprintf(why, why_len, "its data is in map %u, which is not mapped", cmd->map_id);
            return false;
        }
        if (cmd->offset > mp->len || cmd->length > mp->len - cmd->offset) {
            snprintf(why, why_len,
                     "its data (%llu bytes at %llu) runs past the end of map %u (%llu bytes)",
                     (unsigned long long)cmd->length, (unsigned long long)cmd->offset, cmd->map_id,
                     (unsigned long long)mp->len);
            return false;
        }
        segs[0] = (struct seg){mp->addr + cmd->offset, cmd->length};
        *n = 1;
        return true;
    }
    if (cmd->sg_count > HBA_SG_MAX) {
        snprintf(why, why_len, "its scatter-gather list has %u entries (at most %u)", cmd->sg_count,
                 HBA_SG_MAX);
        return false;
    }
    uint64_t total = 0;
    for (unsigned i = 0; i < cmd->sg_count; i++) {
        const struct hba_sge *e = &cmd->sg[i];
        const struct map *mp = e->map_id < HBA_MAX_MAPS ? &l->maps[e->map_id] : NULL;
        if (!mp || !mp->addr) {
            snprintf(why, why_len, "scatter-gather entry %u names map %u, which is not mapped", i,
                     e->map_id);
            return false;
        }
        if (!e->length) {
            snprintf(why, why_len, "scatter-gather entry %u is empty", i);
            return false;
        }
        if (e->offset > mp->len || e->length > mp->len - e->offset) {
            snprintf(why, why_len,
                     "scatter-gather entry %u (%u bytes at %llu) runs past the end of map %u "
                     "(%llu bytes)",
                     i, e->length, (unsigned long long)e->offset, e->map_id,
                     (unsigned long long)mp->len);
            return false;
        }
        total += e->length; /* at most HBA_SG_MAX * 4 GiB: no overflow */
        segs[i] = (struct seg){mp->addr + e->offset, e->length};
    }
    if (total != cmd->length) {
        snprintf(why, why_len,
                 "its scatter-gather entries add up to %llu bytes, the command says %llu",
                 (unsigned long long)total, (unsigned long long)cmd->length);
        return false;
    }
    *n = cmd->sg_count;
    return true;
}

static void put_be(uint8_t *p, unsigned bytes, uint64_t v)
{
    while (bytes--)
        p[bytes] = (uint8_t)v, v >>= 8;
}

static uint64_t get_be(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    while (bytes--)
        v = v << 8 | *p++;
    return v;
}

/* A READ or WRITE (10 or 16) whose blocks are exactly the segments'
 * bytes, each segment whole blocks, runs one segment at a time: the
 * same CDB with the segment's LBA and length, data in place (no copy).
 * The first segment that does not end GOOD ends the command there (a
 * UNIT ATTENTION on the first: nothing ran).  Returns 1 when it ran the
 * command into *r, 0 when cmd is not such a command, an odk status when
 * the library refused it. */
static int execute_split(odk_scsi_disk *disk, const struct hba_msg *cmd, const struct seg *segs,
                         unsigned n, odk_scsi_result *r)
{
    uint8_t op = cmd->cdb[0];
    bool sixteen = (op == 0x88 || op == 0x8a) && cmd->cdb_len == 16;
    bool ten = (op == 0x28 || op == 0x2a) && cmd->cdb_len == 10;
    if (!sixteen && !ten)
        return 0;
    unsigned lba_len = sixteen ? 8 : 4, len_at = sixteen ? 10 : 7, len_len = sixteen ? 4 : 2;
    uint64_t lba = get_be(cmd->cdb + 2, lba_len), blocks = get_be(cmd->cdb + len_at, len_len);
    uint32_t bs = odk_scsi_disk_block_size(disk);
    uint64_t count = odk_scsi_disk_block_count(disk);
    /* Out of range: unsplit, so that none of it runs (the disk's answer). */
    if (!bs || blocks * bs != cmd->length || lba > count || blocks > count - lba)
        return 0;
    for (unsigned i = 0; i < n; i++)
        if (segs[i].len % bs)
            return 0;
    bool out = cmd->dir == ODK_SCSI_DIR_TO_DEVICE;
    uint64_t moved = 0;
    for (unsigned i = 0; i < n; i++) {
        uint8_t cdb[16];
        memcpy(cdb, cmd->cdb, cmd->cdb_len);
        put_be(cdb + 2, lba_len, lba + moved / bs);
        put_be(cdb + len_at, len_len, segs[i].len / bs);
        memset(r, 0, sizeof *r);
        int st = odk_scsi_disk_execute(disk, cdb, cmd->cdb_len, out ? segs[i].addr : NULL,
                                       out ? segs[i].len : 0, out ? NULL : segs[i].addr,
                                       out ? 0 : segs[i].len, r);
        if (st < 0)
            return st;
        moved += r->transferred;
        if (r->status != ODK_SCSI_STATUS_GOOD)
            break;
    }
    r->transferred = moved;
    return 1;
}

static void execute(struct link *l, const struct hba_msg *cmd)
{
    if (cmd->slot < m.n_slots && m.slots[cmd->slot].swallow && hold(l, cmd))
        return;
    struct hba_msg done = {.type = HBA_DONE, .slot = cmd->slot, .tag = cmd->tag};
    struct seg segs[HBA_SG_MAX];
    unsigned n_segs = 0;
    char why[200];
    if (!cmd_segments(l, cmd, segs, &n_segs, why, sizeof why)) {
        refuse(l, cmd, why);
        return;
    }
    if (cmd->slot >= m.n_slots || !m.slots[cmd->slot].disk) {
        done.service = HBA_NO_DEVICE;
        send_msg(l, &done);
        return;
    }
    if (cmd->cdb_len == 0 || cmd->cdb_len > sizeof cmd->cdb ||
        (cmd->dir != ODK_SCSI_DIR_NONE && cmd->dir != ODK_SCSI_DIR_FROM_DEVICE &&
         cmd->dir != ODK_SCSI_DIR_TO_DEVICE)) {
        refuse(l, cmd,
               cmd->cdb_len == 0 || cmd->cdb_len > sizeof cmd->cdb
                   ? "its CDB length is not 1 to 16"
                   : "its direction is none of none, from the device, to the device");
        return;
    }
    odk_scsi_disk *disk = m.slots[cmd->slot].disk;
    odk_scsi_result r;
    memset(&r, 0, sizeof r);
    bool out = cmd->dir == ODK_SCSI_DIR_TO_DEVICE, in = cmd->dir == ODK_SCSI_DIR_FROM_DEVICE;
    int st = n_segs > 1 ? execute_split(disk, cmd, segs, n_segs, &r) : 0;
    if (st == 0) {
        /* One range, or a list under a command that does not split by
         * blocks (an INQUIRY into two pieces): through a bounce buffer. */
        uint8_t *data = n_segs == 1 ? segs[0].addr : NULL, *bounce = NULL;
        if (n_segs > 1 && !(data = bounce = malloc(cmd->length))) {
            refuse(l, cmd, "no memory to gather its scatter-gather list");
            return;
        }
        uint64_t at = 0;
        for (unsigned i = 0; bounce && out && i < n_segs; at += segs[i].len, i++)
            memcpy(bounce + at, segs[i].addr, segs[i].len);
        st = odk_scsi_disk_execute(disk, cmd->cdb, cmd->cdb_len, out ? data : NULL,
                                   out ? cmd->length : 0, in ? data : NULL, in ? cmd->length : 0,
                                   &r);
        uint64_t left = r.transferred < cmd->length ? r.transferred : cmd->length;
        at = 0;
        for (unsigned i = 0; bounce && in && st >= 0 && i < n_segs && left;
             at += segs[i].len, i++) {
            uint64_t k = segs[i].len < left ? segs[i].len : left;
            memcpy(segs[i].addr, bounce + at, k);
            left -= k;
        }
        free(bounce);
    }
    if (st < 0) {
        done.service = HBA_BAD_COMMAND;
    } else {
        done.status = r.status;
        done.transferred = r.transferred;
        done.sense_len = (uint32_t)(r.sense_len < HBA_SENSE_MAX ? r.sense_len : HBA_SENSE_MAX);
        memcpy(done.sense, r.sense, done.sense_len);
    }
    send_msg(l, &done);
}

/* Ends held commands: the one with tag from link l (ABORT TASK), or
 * every one of a slot (LUN reset) or of all slots (bus reset), each
 * answered HBA_ABORTED to its own link; they never run.  Then answers the
 * task management request itself. */
static void task_management(struct link *l, const struct hba_msg *req)
{
    struct hba_msg tmf = {.type = HBA_TMF_DONE,
                          .slot = req->slot,
                          .tag = req->tag,
                          .map_id = req->type,
                          .status = HBA_TMF_COMPLETE};
    bool bus = req->type == HBA_RESET && req->slot == HBA_ALL_SLOTS;
    if (req->type == HBA_RESET && !bus && req->slot >= m.n_slots) {
        tmf.status = HBA_TMF_FAILED;
        send_msg(l, &tmf);
        return;
    }
    /* A hung disk answers no task management: the request fails. */
    for (unsigned i = 0; i < m.n_slots; i++)
        if (m.slots[i].hang && (bus || (req->type == HBA_RESET && req->slot == i)))
            tmf.status = HBA_TMF_FAILED;
    size_t keep = 0, ended = 0;
    for (size_t i = 0; i < m.n_held; i++) {
        struct held h = m.held[i];
        bool hit = req->type == HBA_ABORT
                       ? h.l == l && h.link_gen == l->gen && h.cmd.tag == req->tag
                       : bus || h.cmd.slot == req->slot;
        if (hit && req->type == HBA_ABORT &&
            (m.slots[h.cmd.slot].hang || m.slots[h.cmd.slot].no_abort))
            tmf.status = HBA_TMF_FAILED, hit = false;
        if (!hit || m.slots[h.cmd.slot].hang) { /* a hung disk keeps its commands */
            m.held[keep++] = h;
            continue;
        }
        ended++;
        if (h.l->fd >= 0 && h.l->gen == h.link_gen) {
            struct hba_msg done = {
                .type = HBA_DONE, .slot = h.cmd.slot, .tag = h.cmd.tag, .service = HBA_ABORTED};
            send_msg(h.l, &done);
        }
    }
    m.n_held = keep;
    /* Every disk the reset reached tells its next initiator so. */
    for (unsigned i = 0; req->type == HBA_RESET && i < m.n_slots; i++)
        if ((bus || req->slot == i) && m.slots[i].disk && !m.slots[i].hang)
            odk_scsi_disk_post_unit_attention(m.slots[i].disk, 0x29, 0x00);
    tmf.transferred = ended; /* how many commands it ended */
    send_msg(l, &tmf);
}

static void link_message(struct link *l, const struct hba_msg *msg, int fd)
{
    if (msg->type == HBA_MAP) {
        if (fd >= 0 && msg->map_id < HBA_MAX_MAPS && !l->maps[msg->map_id].addr && msg->length) {
            void *a = mmap(NULL, msg->length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (a != MAP_FAILED)
                l->maps[msg->map_id] = (struct map){a, msg->length};
        }
    } else if (msg->type == HBA_CMD) {
        execute(l, msg);
        l->moved += msg->length;
        if (l->moved >= LINK_FLUSH_BYTES)
            link_flush(l);
    } else if (msg->type == HBA_ABORT || msg->type == HBA_RESET) {
        task_management(l, msg);
    }
    if (fd >= 0)
        close(fd);
}

/* Takes the messages at hand, LINK_RECV a syscall (recvmmsg), each a
 * batch of up to LINK_BATCH commands, up to 4 syscalls a wake-up; fewer
 * messages than asked means the link is empty for now (epoll says when
 * it is not). */
static void link_readable(struct link *l)
{
    static struct hba_msg msgs[LINK_RECV][LINK_BATCH];
    static char cbuf[LINK_RECV][CMSG_SPACE(sizeof(int))];
    for (int round = 0; round < 4 && l->fd >= 0; round++) {
        struct mmsghdr mm[LINK_RECV];
        struct iovec iov[LINK_RECV];
        for (int i = 0; i < LINK_RECV; i++) {
            iov[i] = (struct iovec){msgs[i], sizeof msgs[i]};
            mm[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i],
                                                 .msg_iovlen = 1,
                                                 .msg_control = cbuf[i],
                                                 .msg_controllen = sizeof cbuf[i]}};
        }
        int got = recvmmsg(l->fd, mm, LINK_RECV, MSG_CMSG_CLOEXEC | MSG_DONTWAIT, NULL);
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (got <= 0 || mm[0].msg_len == 0) {
            link_close(l);
            return;
        }
        for (int i = 0; i < got; i++) {
            int fd = -1;
            for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mm[i].msg_hdr); cm;
                 cm = CMSG_NXTHDR(&mm[i].msg_hdr, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
                    memcpy(&fd, CMSG_DATA(cm), sizeof fd);
            size_t len = mm[i].msg_len;
            bool whole =
                len && len % sizeof(struct hba_msg) == 0 && !(mm[i].msg_hdr.msg_flags & MSG_TRUNC);
            for (size_t k = 0; whole && l->fd >= 0 && k < len / sizeof(struct hba_msg); k++) {
                /* the descriptor goes with the message's first HBA_MAP */
                int mfd = msgs[i][k].type == HBA_MAP ? fd : -1;
                if (mfd >= 0)
                    fd = -1;
                link_message(l, &msgs[i][k], mfd);
            }
            if (fd >= 0)
                close(fd);
        }
        if (got < LINK_RECV)
            return;
    }
}

int main(int argc, char **argv)
{
    if (argc != 5 && !(argc == 6 && (!strcmp(argv[5], "file") || !strcmp(argv[5], "memory")))) {
        fprintf(stderr, "usage: odk-storage-model DIR DISKS SIZE_MB BLOCK_SIZE [file|memory]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    m.dir = argv[1];
    m.memory = argc == 6 && !strcmp(argv[5], "memory");
    m.n_slots = (unsigned)strtoul(argv[2], NULL, 10);
    uint64_t mb = strtoull(argv[3], NULL, 10);
    m.block_size = (uint32_t)strtoul(argv[4], NULL, 10);
    if (!m.n_slots || m.n_slots > HBA_MAX_SLOTS || !mb ||
        (m.block_size != 512 && m.block_size != 4096)) {
        fprintf(stderr, "odk-storage-model: bad arguments\n");
        return 2;
    }
    m.blocks = (mb << 20) / m.block_size;
    for (unsigned i = 0; i < MAX_LINKS; i++)
        m.links[i].fd = -1;
    for (unsigned i = 0; i < m.n_slots; i++) {
        m.slots[i].mem_fd = -1;
        disk_open(i);
    }
    m.epfd = epoll_create1(EPOLL_CLOEXEC);
    static int control_tag;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &control_tag};
    if (epoll_ctl(m.epfd, EPOLL_CTL_ADD, CONTROL_FD, &ev) < 0) {
        fprintf(stderr, "odk-storage-model: no channel to odkd on fd 3\n");
        return 1;
    }
    for (;;) {
        struct epoll_event evs[16];
        int n = epoll_wait(m.epfd, evs, 16, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &control_tag)
                control();
            else {
                struct link *l = evs[i].data.ptr;
                if (l->fd >= 0)
                    link_readable(l);
            }
        }
        for (unsigned i = 0; i < MAX_LINKS; i++)
            if (m.links[i].n_out)
                link_flush(&m.links[i]);
    }
}
