/* SPDX-License-Identifier: MIT */
/* controller.c — the storage family's host side (odk/storage.h): a
 * controller driver's LUNs, its tasks, and the disk layer that turns an
 * NBD export's block requests into CDBs.
 *
 * Each exported LUN holds one stream socket to its export process
 * (odk-nbd-export, started by odkd: storage.c) and a memory arena of
 * `slots` areas of NBD_PAYLOAD_MAX bytes.  A block request takes a free
 * area and becomes a task: READ (16), WRITE (16) (FUA kept), SYNCHRONIZE
 * CACHE (16), UNMAP with its parameter list, or WRITE SAME (16) of one
 * zero block; its data lives in the arena, which the controller may hand
 * to its device for DMA.  The driver completes the task; the reply goes
 * back to the export.  While every area is taken, or the controller has
 * queue_depth tasks out, the family stops reading the socket (the export
 * keeps the requests waiting).  The export maps the arena (its memfd is
 * the first message on the socket) and places the data itself: a request
 * names its area, a WRITE's bytes are already there, a READ's reply says
 * the data is in the area (blk_wire.h).
 *
 * A task past its timeout (a peripheral's CDB carries its own) is aborted
 * through the driver's reset callback; past the abort deadline the family
 * answers the client itself (EIO, or ODK_SCSI_TASK_TIMED_OUT to a
 * peripheral) and keeps the task's memory until the driver lets go of it.
 * While a LUN has such abandoned tasks the family escalates, one step per
 * reset deadline: LUN reset, target reset, bus reset; the steps are logged
 * and counted on the LUN node (OdkSCSI* counters).  Without a reset
 * callback a late task is failed at its timeout. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "families/storage/blk_wire.h"
#include "families/storage/nbd_proto.h"
#include "families/storage/storage_internal.h"
#include "odk/log.h"
#include "odk/queue.h"
#include "odk/status.h"
#include "odk/storage.h"
#include "runtime/host_link.h"

#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_RESET_DEADLINE_MS 2000
/* A peripheral waits for its answer up to its timeout plus 2 s
 * (peripheral.c): the family's abort step for its tasks ends before. */
#define PERIPH_ABORT_MAX_MS 1500
#define MAX_TIMEOUT_MS 600000
#define TICK_NS 100000000ull
#define MAX_LUNS 256
#define MAX_SLOTS_PER_LUN 64
#define AREA NBD_PAYLOAD_MAX

enum slot_state { T_FREE, T_HELD, T_ABORTING, T_ORPHAN };

struct task_slot {
    odk_scsi_task t; /* first: odk_scsi_task_complete finds the slot from it */
    odk_storage_lun *lun;
    enum slot_state state;
    uint64_t blk_id;
    uint16_t blk_type;
    uint32_t blk_len;
    bool shared; /* the request came through the shared arena (blk_wire.h) */
    uint8_t ua_retries; /* times sent again after a UNIT ATTENTION */
    uint64_t deadline_ns;
    void *periph;           /* a peripheral driver's task (peripheral.c), not in slots[] */
    odk_memory *kept;       /* a failed peripheral task's memory, kept until the driver lets go */
    struct task_slot *next; /* the LUN's peripheral tasks */
};

/* The escalation of a LUN with abandoned tasks, one step per deadline. */
enum esc_step { ESC_NONE, ESC_LUN, ESC_TARGET, ESC_BUS, ESC_EXHAUSTED };

/* The counters on the LUN node. */
enum lun_counter {
    C_TIMEOUTS,
    C_ABORTS,
    C_FAILED,
    C_LUN_RESETS,
    C_TARGET_RESETS,
    C_BUS_RESETS,
    C_ABANDONED,
    C_COUNT
};
static const char *const counter_names[C_COUNT] = {
    "OdkSCSITaskTimeouts", "OdkSCSITaskAborts", "OdkSCSITasksFailed",   "OdkSCSILUNResets",
    "OdkSCSITargetResets", "OdkSCSIBusResets",  "OdkSCSITasksAbandoned"};

struct odk_storage_lun {
    odk_storage_controller *c;
    uint32_t target;
    uint64_t lun;
    uint32_t block_size;
    uint64_t blocks;
    uint64_t node, disk_node;
    char *uri;
    char *export_name; /* NULL when not exported */
    int fd;
    bool detached, reading;
    bool pumping, again; /* a task completed inside the driver's task callback */
    odk_fd_source *src;
    uint32_t events; /* what src watches for now */
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_len, out_cap;
    odk_memory *arena;
    uint8_t *arena_addr;
    bool arena_sent;          /* the export has the arena's memfd (blk_wire.h) */
    struct periph_door *door; /* peripheral drivers' way in (peripheral.c) */
    struct task_slot *slots;
    uint32_t n_slots;
    struct task_slot *ptasks; /* peripheral tasks held by the driver */
    enum esc_step esc;
    uint64_t esc_deadline_ns;
    int64_t counters[C_COUNT]; /* C_ABANDONED: tasks failed and still held by the driver */
    bool counters_dirty;
};

struct odk_storage_controller {
    odk_driver *drv;
    const odk_storage_controller_ops *ops;
    void *ctx;
    uint32_t depth, in_flight;
    odk_storage_lun *luns[MAX_LUNS];
    unsigned n_luns;
    odk_timer *timer;
    odk_action *tick;
    uint64_t next_tag;
    uint32_t timeout_ms, reset_ms;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- batches ------------------------------------------------------------------ */

#define BATCH_MAX 32

static _Thread_local struct {
    unsigned depth, n;
    struct {
        void (*flush)(void *);
        void *obj;
    } due[BATCH_MAX];
} batch;

void storage_batch_begin(void)
{
    batch.depth++;
}

void storage_batch_end(void)
{
    if (batch.depth == 0 || --batch.depth)
        return;
    /* A flush may start more work (and defer nothing: no batch runs). */
    while (batch.n) {
        batch.n--;
        batch.due[batch.n].flush(batch.due[batch.n].obj);
    }
}

bool storage_batch_defer(void (*flush)(void *obj), void *obj)
{
    if (!batch.depth)
        return false;
    for (unsigned i = 0; i < batch.n; i++)
        if (batch.due[i].obj == obj && batch.due[i].flush == flush)
            return true;
    if (batch.n == BATCH_MAX)
        return false;
    batch.due[batch.n].flush = flush;
    batch.due[batch.n].obj = obj;
    batch.n++;
    return true;
}

void storage_batch_forget(void *obj)
{
    for (unsigned i = 0; i < batch.n;)
        if (batch.due[i].obj == obj)
            batch.due[i] = batch.due[--batch.n];
        else
            i++;
}

/* ---- replies to the export ------------------------------------------------- */

/* Changes what the export's socket is watched for, only when it changes
 * (each change is a syscall; a busy disk would make two per request). */
static void lun_set_events(odk_storage_lun *l, uint32_t events)
{
    if (events != l->events && odk_fd_source_set_events(l->src, events) == ODK_OK)
        l->events = events;
}

static void lun_flush(odk_storage_lun *l)
{
    size_t off = 0;
    while (off < l->out_len) {
        ssize_t n = send(l->fd, l->out + off, l->out_len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            l->detached = true; /* the export went away; replies are dropped */
            l->out_len = off = 0;
            break;
        }
        off += (size_t)n;
    }
    if (off) {
        memmove(l->out, l->out + off, l->out_len - off);
        l->out_len -= off;
    }
    if (!l->detached)
        lun_set_events(l, (l->reading ? EPOLLIN : 0u) | (l->out_len ? EPOLLOUT : 0u));
}

static void lun_flush_cb(void *obj)
{
    lun_flush(obj);
}

/* Sends the queued replies now, or at the end of the running batch. */
static void lun_flush_soon(odk_storage_lun *l)
{
    if (!storage_batch_defer(lun_flush_cb, l))
        lun_flush(l);
}

/* Hands the export an area that a failed task held (BLK_REP_KEEP) back. */
static void lun_release(odk_storage_lun *l, uint32_t area)
{
    if (l->detached)
        return;
    struct blk_rep r = {.magic = BLK_RELEASE_MAGIC, .id = area};
    size_t need = l->out_len + sizeof r;
    if (need > l->out_cap) {
        size_t cap = l->out_cap ? l->out_cap : 1u << 20;
        while (cap < need)
            cap *= 2;
        uint8_t *b = realloc(l->out, cap);
        if (!b) {
            l->detached = true;
            return;
        }
        l->out = b;
        l->out_cap = cap;
    }
    memcpy(l->out + l->out_len, &r, sizeof r);
    l->out_len += sizeof r;
}

static void lun_reply(odk_storage_lun *l, uint64_t id, uint32_t error, const uint8_t *data,
                      uint32_t len, uint32_t flags)
{
    if (l->detached)
        return;
    struct blk_rep r = {
        .magic = BLK_REP_MAGIC, .error = error, .id = id, .length = data ? len : 0, .flags = flags};
    size_t skip = 0;
    if (l->out_len == 0 && (r.length || !storage_batch_defer(lun_flush_cb, l))) {
        /* Nothing queued: send straight from the arena, queue only what
         * the socket had no room for. */
        struct iovec iov[2] = {{&r, sizeof r}, {(void *)data, r.length}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = r.length ? 2 : 1};
        ssize_t n = sendmsg(l->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            l->detached = true;
            return;
        }
        skip = n > 0 ? (size_t)n : 0;
        if (skip == sizeof r + r.length)
            return;
    }
    size_t total = sizeof r + r.length, need = l->out_len + total - skip;
    if (need > l->out_cap) {
        size_t cap = l->out_cap ? l->out_cap : 1u << 20;
        while (cap < need)
            cap *= 2;
        uint8_t *b = realloc(l->out, cap);
        if (!b) {
            odk_error("disk %s: out of memory for a reply; dropping the export link", l->uri);
            l->detached = true;
            return;
        }
        l->out = b;
        l->out_cap = cap;
    }
    for (size_t i = skip; i < total;) {
        /* the header's bytes, then the data's, from where the send stopped */
        if (i < sizeof r) {
            size_t k = sizeof r - i;
            memcpy(l->out + l->out_len, (const uint8_t *)&r + i, k);
            l->out_len += k;
            i += k;
        } else {
            size_t k = total - i;
            memcpy(l->out + l->out_len, data + (i - sizeof r), k);
            l->out_len += k;
            i += k;
        }
    }
}

/* ---- counters ---------------------------------------------------------------- */

/* Counters reach the LUN node from the next tick (one update for a burst). */
static void lun_count(odk_storage_lun *l, enum lun_counter which, int64_t delta)
{
    l->counters[which] += delta;
    l->counters_dirty = true;
}

static void lun_publish_counters(odk_storage_lun *l)
{
    if (!l->counters_dirty)
        return;
    l->counters_dirty = false;
    for (int i = 0; i < C_COUNT; i++)
        odk_driver_set_node_property(l->c->drv, l->node, counter_names[i],
                                     odk_value_new_int(l->counters[i]));
}

/* ---- tasks ------------------------------------------------------------------ */

static void lun_pump(odk_storage_lun *l);

static uint32_t nbd_error_of(uint32_t response, uint8_t status, const uint8_t *sense,
                             uint32_t sense_len)
{
    if (response != ODK_SCSI_TASK_COMPLETE)
        return NBD_EIO;
    if (status == ODK_SCSI_STATUS_GOOD)
        return 0;
    uint8_t key = 0;
    if (sense_len >= 3 && (sense[0] & 0x7f) <= 0x71)
        key = sense[2] & 0x0f;
    else if (sense_len >= 2)
        key = sense[1] & 0x0f;
    switch (key) {
    case ODK_SCSI_SENSE_ILLEGAL_REQUEST:
        return NBD_EINVAL;
    case ODK_SCSI_SENSE_DATA_PROTECT:
        return NBD_EPERM;
    case ODK_SCSI_SENSE_VOLUME_OVERFLOW:
        return NBD_ENOSPC;
    default:
        return NBD_EIO;
    }
}

/* UNIT ATTENTION: the LUN was reset or powered on and says so once, to the
 * next command, which did not run (SAM-5). */
static bool unit_attention(uint32_t response, uint8_t status, const uint8_t *sense,
                           uint32_t sense_len)
{
    if (response != ODK_SCSI_TASK_COMPLETE || status != ODK_SCSI_STATUS_CHECK_CONDITION)
        return false;
    uint8_t key = sense_len >= 3 && (sense[0] & 0x7f) <= 0x71 ? sense[2] & 0x0f
                  : sense_len >= 2                            ? sense[1] & 0x0f
                                                              : 0;
    return key == ODK_SCSI_SENSE_UNIT_ATTENTION;
}

#define UA_RETRIES 3 /* a disk-layer command meeting UNIT ATTENTION goes again this often */

void odk_scsi_task_complete(odk_scsi_task *t, uint32_t service_response, uint8_t status,
                            uint64_t transferred, const uint8_t *sense, uint32_t sense_len)
{
    if (!t)
        return;
    struct task_slot *s = (struct task_slot *)((char *)t - offsetof(struct task_slot, t));
    odk_storage_lun *l = s->lun;
    if (s->periph) {
        for (struct task_slot **pp = &l->ptasks; *pp; pp = &(*pp)->next)
            if (*pp == s) {
                *pp = s->next;
                break;
            }
        if (s->state == T_ORPHAN) { /* answered already (timed out): let go of its memory */
            odk_release(s->kept);
            lun_count(l, C_ABANDONED, -1);
        } else {
            l->c->in_flight--;
            periph_task_done(s->periph, service_response, status, transferred, sense, sense_len);
        }
        free(s);
        if (l->src)
            lun_pump(l);
        return;
    }
    if (s->state == T_FREE) {
        odk_warn("a SCSI task was completed twice (tag %llu)", (unsigned long long)t->tag);
        return;
    }
    if (s->state == T_HELD && s->ua_retries < UA_RETRIES &&
        unit_attention(service_response, status, sense, sense_len)) {
        /* As an initiator's mid layer does: the command goes again, same
         * tag and memory (a WRITE's payload is still in its area), and the
         * NBD client sees nothing. */
        s->ua_retries++;
        odk_info("disk %s: UNIT ATTENTION from the LUN; the command goes again", l->uri);
        t->driver_ctx = NULL;
        l->c->ops->task(l->c->ctx, t);
        return;
    }
    if (s->state == T_ORPHAN) {
        lun_count(l, C_ABANDONED, -1);
        if (s->shared)
            lun_release(l, (uint32_t)(s - l->slots));
    } else {
        uint32_t err = nbd_error_of(service_response, status, sense, sense_len);
        if (!err && s->blk_type == BLK_READ && transferred < s->blk_len)
            err = NBD_EIO; /* a short read would hand the client stale bytes */
        bool data = !err && s->blk_type == BLK_READ;
        if (s->shared) /* the export reads the data from the area itself */
            lun_reply(l, s->blk_id, err, NULL, 0, data ? BLK_REP_IN_AREA : 0);
        else
            lun_reply(l, s->blk_id, err,
                      data ? l->arena_addr + (size_t)(s - l->slots) * AREA : NULL, s->blk_len, 0);
        l->c->in_flight--;
    }
    s->state = T_FREE;
    lun_flush_soon(l);
    lun_pump(l);
}

static bool slot_start(odk_storage_lun *l, struct task_slot *s, const struct blk_req *r,
                       const uint8_t *payload)
{
    odk_storage_controller *c = l->c;
    uint8_t *area = l->arena_addr + (size_t)(s - l->slots) * AREA;
    uint64_t lba = r->offset / l->block_size;
    uint32_t blocks = r->length / l->block_size;
    odk_scsi_cdb cdb;
    memset(&cdb, 0, sizeof cdb);
    odk_scsi_dir dir = ODK_SCSI_DIR_NONE;
    uint64_t length = 0;
    int st;
    switch (r->type) {
    case BLK_READ:
        st = odk_scsi_build_read_16(&cdb, lba, blocks, 0);
        dir = ODK_SCSI_DIR_FROM_DEVICE;
        length = r->length;
        break;
    case BLK_WRITE:
        if (payload) /* else the export wrote it into the area */
            memcpy(area, payload, r->length);
        st = odk_scsi_build_write_16(&cdb, lba, blocks, (r->flags & BLK_FUA) ? ODK_SCSI_RW_FUA : 0);
        dir = ODK_SCSI_DIR_TO_DEVICE;
        length = r->length;
        break;
    case BLK_FLUSH:
        st = odk_scsi_build_synchronize_cache_16(&cdb, 0, 0, false);
        break;
    case BLK_TRIM: {
        odk_scsi_unmap_range range = {lba, blocks};
        size_t list_len = 0;
        st = odk_scsi_build_unmap(&cdb, false, &range, 1, area, 64, &list_len);
        dir = ODK_SCSI_DIR_TO_DEVICE;
        length = list_len;
        break;
    }
    case BLK_WRITE_ZEROES:
        memset(area, 0, l->block_size);
        st = odk_scsi_build_write_same_16(&cdb, lba, blocks, !(r->flags & BLK_NO_HOLE));
        dir = ODK_SCSI_DIR_TO_DEVICE;
        length = l->block_size;
        break;
    default:
        st = ODK_E_INVALID;
    }
    if (st < 0) {
        lun_reply(l, r->id, NBD_EIO, NULL, 0, 0);
        odk_error("disk %s: cannot build the CDB for a request of type %u: %s", l->uri, r->type,
                  odk_strerror(st));
        return false;
    }
    *s = (struct task_slot){.lun = l,
                            .state = T_HELD,
                            .blk_id = r->id,
                            .blk_type = r->type,
                            .blk_len = r->length,
                            .shared = r->area != 0,
                            .deadline_ns = now_ns() + c->timeout_ms * 1000000ull};
    memcpy(s->t.cdb, cdb.bytes, cdb.length);
    s->t.cdb_len = cdb.length;
    s->t.direction = dir;
    s->t.target = l->target;
    s->t.lun = l->lun;
    s->t.memory = length ? l->arena : NULL;
    s->t.offset = length ? (uint64_t)(s - l->slots) * AREA : 0;
    s->t.length = length;
    s->t.timeout_ms = c->timeout_ms;
    s->t.tag = ++c->next_tag;
    c->in_flight++;
    c->ops->task(c->ctx, &s->t);
    return true;
}

static struct task_slot *free_slot(odk_storage_lun *l)
{
    for (uint32_t i = 0; i < l->n_slots; i++)
        if (l->slots[i].state == T_FREE)
            return &l->slots[i];
    return NULL;
}

/* Serves the requests buffered from the export while there is room. */
static void lun_process(odk_storage_lun *l)
{
    size_t off = 0;
    while (!l->detached && l->in_len - off >= sizeof(struct blk_req)) {
        struct blk_req r;
        memcpy(&r, l->in + off, sizeof r);
        if (r.magic != BLK_REQ_MAGIC ||
            ((r.type == BLK_READ || r.type == BLK_WRITE) && r.length > NBD_PAYLOAD_MAX)) {
            odk_error("disk %s: garbage from the export; dropping the link", l->uri);
            l->detached = true;
            break;
        }
        if (r.area && (r.area > l->n_slots || l->slots[r.area - 1].state != T_FREE)) {
            odk_error("disk %s: the export named area %u, which is not free; dropping the link",
                      l->uri, r.area);
            l->detached = true;
            break;
        }
        size_t payload = r.type == BLK_WRITE && !r.area ? r.length : 0;
        if (l->in_len - off < sizeof r + payload)
            break;
        uint64_t size = l->blocks * l->block_size;
        bool ranged = r.type != BLK_FLUSH;
        if (ranged && (r.offset % l->block_size || r.length % l->block_size || r.offset > size ||
                       r.length > size - r.offset)) {
            lun_reply(l, r.id, NBD_EINVAL, NULL, 0, 0);
        } else if (ranged && r.length == 0) {
            lun_reply(l, r.id, 0, NULL, 0, 0);
        } else {
            struct task_slot *s = NULL;
            if (l->c->in_flight < l->c->depth)
                s = r.area ? &l->slots[r.area - 1] : free_slot(l);
            if (!s)
                break;
            slot_start(l, s, &r, payload ? l->in + off + sizeof r : NULL);
        }
        off += sizeof r + payload;
    }
    if (off) { /* a partial request stays where it is until it is whole */
        memmove(l->in, l->in + off, l->in_len - off);
        l->in_len -= off;
    }
}

static void lun_pump(odk_storage_lun *l)
{
    /* A driver may complete a task inside its task callback, which runs
     * inside lun_process: note it and go round again instead of parsing
     * the same buffer twice. */
    if (l->pumping) {
        l->again = true;
        return;
    }
    l->pumping = true;
    do {
        l->again = false;
        lun_process(l);
    } while (l->again);
    l->pumping = false;
    lun_flush_soon(l);
    /* A request naming its area needs only the queue depth; an inline one
     * a free area too (lun_process stops at the first that cannot start). */
    bool room = l->in_len < l->in_cap && l->c->in_flight < l->c->depth;
    if (room && l->in_len >= sizeof(struct blk_req)) {
        struct blk_req r;
        memcpy(&r, l->in, sizeof r);
        if (!r.area)
            room = free_slot(l) != NULL;
    } else if (room && !l->arena_sent) {
        room = free_slot(l) != NULL;
    }
    if (!l->detached && room != l->reading) {
        l->reading = room;
        lun_set_events(l, (room ? EPOLLIN : 0u) | (l->out_len ? EPOLLOUT : 0u));
    }
}

static void lun_io(void *ctx, uint32_t revents)
{
    odk_storage_lun *l = ctx;
    if (l->detached) {
        odk_fd_source_set_enabled(l->src, false);
        return;
    }
    if (revents & EPOLLOUT)
        lun_flush(l);
    storage_batch_begin(); /* the requests read now go to the HBA together */
    if (l->reading && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        ssize_t n = recv(l->fd, l->in + l->in_len, l->in_cap - l->in_len, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            odk_warn("disk %s: the export closed its end", l->uri);
            l->detached = true;
            odk_fd_source_set_enabled(l->src, false);
            storage_batch_end();
            return;
        }
        if (n > 0)
            l->in_len += (size_t)n;
    }
    lun_pump(l);
    storage_batch_end();
}

/* ---- timeouts and resets ----------------------------------------------------------- */

static const char *const reset_names[] = {"ABORT TASK", "LOGICAL UNIT RESET", "TARGET RESET",
                                          "BUS RESET"};

static uint32_t abort_ms(const struct task_slot *s)
{
    uint32_t ms = s->lun->c->reset_ms;
    return s->periph && ms > PERIPH_ABORT_MAX_MS ? PERIPH_ABORT_MAX_MS : ms;
}

/* The family answers a task the driver did not complete in time, and
 * keeps what the driver may still write to until it lets go. */
static void task_fail(odk_storage_lun *l, struct task_slot *s)
{
    odk_error("disk %s: task %llu (opcode 0x%02x) was not completed in time; failing it",
              l->uri ? l->uri : "-", (unsigned long long)s->t.tag, s->t.cdb[0]);
    if (s->periph) {
        if (s->t.memory)
            s->kept = odk_retain(s->t.memory);
        periph_task_done(s->periph, ODK_SCSI_TASK_TIMED_OUT, 0, 0, NULL, 0);
    } else {
        /* The driver may still DMA into the area: a shared one stays
         * with it until it completes the task (lun_release). */
        lun_reply(l, s->blk_id, NBD_EIO, NULL, 0, s->shared ? BLK_REP_KEEP : 0);
    }
    s->state = T_ORPHAN;
    l->c->in_flight--;
    lun_count(l, C_FAILED, 1);
    lun_count(l, C_ABANDONED, 1); /* until the driver completes it */
}

static bool task_check(odk_storage_lun *l, struct task_slot *s, uint64_t now)
{
    odk_storage_controller *c = l->c;
    if (s->state == T_HELD && now >= s->deadline_ns) {
        lun_count(l, C_TIMEOUTS, 1);
        if (!c->ops->reset) {
            task_fail(l, s);
            return true;
        }
        uint32_t ms = abort_ms(s);
        s->state = T_ABORTING;
        s->deadline_ns = now + ms * 1000000ull;
        lun_count(l, C_ABORTS, 1);
        odk_warn("LUN %u/%llu: task %llu timed out after %u ms; %s (deadline %u ms)", l->target,
                 (unsigned long long)l->lun, (unsigned long long)s->t.tag, s->t.timeout_ms,
                 reset_names[ODK_SCSI_ABORT_TASK], ms);
        c->ops->reset(c->ctx, ODK_SCSI_ABORT_TASK, &s->t, s->t.target, s->t.lun, ms);
        return false;
    }
    if (s->state == T_ABORTING && now >= s->deadline_ns) {
        task_fail(l, s);
        return true;
    }
    return false;
}

/* While the driver holds tasks the family gave up on, one step more at
 * each deadline: LUN reset, target reset, bus reset. */
static void lun_escalate(odk_storage_lun *l, uint64_t now)
{
    odk_storage_controller *c = l->c;
    if (!c->ops->reset)
        return;
    int64_t held = l->counters[C_ABANDONED];
    if (held == 0) {
        if (l->esc != ESC_NONE)
            odk_info("LUN %u/%llu: the driver let go of its abandoned tasks (after %s)", l->target,
                     (unsigned long long)l->lun, reset_names[l->esc < ESC_EXHAUSTED ? l->esc : 3]);
        l->esc = ESC_NONE;
        return;
    }
    if (l->esc == ESC_EXHAUSTED || (l->esc != ESC_NONE && now < l->esc_deadline_ns))
        return;
    if (l->esc == ESC_BUS) {
        l->esc = ESC_EXHAUSTED;
        odk_error("LUN %u/%llu: the driver still holds %lld abandoned task(s) after a %s; "
                  "no reset is left (their memory stays reserved until it completes them)",
                  l->target, (unsigned long long)l->lun, (long long)held, reset_names[3]);
        return;
    }
    l->esc++;
    l->esc_deadline_ns = now + c->reset_ms * 1000000ull;
    uint32_t kind = l->esc == ESC_LUN      ? ODK_SCSI_LUN_RESET
                    : l->esc == ESC_TARGET ? ODK_SCSI_TARGET_RESET
                                           : ODK_SCSI_BUS_RESET;
    lun_count(l,
              l->esc == ESC_LUN      ? C_LUN_RESETS
              : l->esc == ESC_TARGET ? C_TARGET_RESETS
                                     : C_BUS_RESETS,
              1);
    odk_warn("LUN %u/%llu: the driver holds %lld task(s) it was told to abort; %s "
             "(deadline %u ms)",
             l->target, (unsigned long long)l->lun, (long long)held, reset_names[kind],
             c->reset_ms);
    c->ops->reset(c->ctx, kind, NULL, l->target, l->lun, c->reset_ms);
}

static void tick(void *ctx, odk_action *a)
{
    (void)a;
    odk_storage_controller *c = ctx;
    uint64_t now = now_ns();
    for (unsigned i = 0; i < c->n_luns; i++) {
        odk_storage_lun *l = c->luns[i];
        bool changed = false;
        for (uint32_t j = 0; j < l->n_slots; j++)
            changed |= task_check(l, &l->slots[j], now);
        for (struct task_slot *s = l->ptasks; s; s = s->next)
            changed |= task_check(l, s, now);
        lun_escalate(l, now);
        if (changed && l->src) {
            lun_flush(l);
            lun_pump(l);
        }
        lun_publish_counters(l);
    }
}

/* ---- the controller ---------------------------------------------------------------- */

int odk_storage_controller_create(odk_driver *drv, const odk_storage_controller_ops *ops, void *ctx,
                                  uint32_t queue_depth, odk_storage_controller **out)
{
    if (!drv || !ops || !ops->task || !out || queue_depth == 0 || queue_depth > 4096)
        return ODK_E_INVALID;
    odk_storage_controller *c = calloc(1, sizeof *c);
    if (!c)
        return ODK_E_NOMEM;
    c->drv = drv;
    c->ops = ops;
    c->ctx = ctx;
    c->depth = queue_depth;
    c->timeout_ms = DEFAULT_TIMEOUT_MS;
    c->reset_ms = DEFAULT_RESET_DEADLINE_MS;
    odk_queue *q = odk_driver_queue(drv);
    int st = odk_timer_create(q, &c->timer);
    if (st == ODK_OK)
        st = odk_action_create(q, tick, c, &c->tick);
    if (st == ODK_OK)
        st = odk_timer_set_handler(c->timer, c->tick);
    if (st == ODK_OK)
        st = odk_timer_arm(c->timer, TICK_NS, TICK_NS);
    if (st < 0) {
        odk_storage_controller_destroy(c);
        return st;
    }
    *out = c;
    return ODK_OK;
}

int odk_storage_controller_set_timeouts(odk_storage_controller *c, uint32_t task_timeout_ms,
                                        uint32_t reset_deadline_ms)
{
    if (!c || task_timeout_ms > MAX_TIMEOUT_MS || reset_deadline_ms > MAX_TIMEOUT_MS)
        return ODK_E_INVALID;
    if (task_timeout_ms)
        c->timeout_ms = task_timeout_ms;
    if (reset_deadline_ms)
        c->reset_ms = reset_deadline_ms;
    return ODK_OK;
}

static void lun_free(odk_storage_lun *l)
{
    storage_batch_forget(l);
    periph_door_close(l->door);
    while (l->ptasks) { /* forgotten (odk_storage_controller_destroy) */
        struct task_slot *s = l->ptasks;
        l->ptasks = s->next;
        if (s->kept)
            odk_release(s->kept);
        free(s);
    }
    if (l->src) {
        odk_fd_source_cancel(l->src, NULL, NULL);
        odk_release(l->src);
    }
    if (l->fd >= 0)
        close(l->fd);
    if (l->arena)
        odk_release(l->arena);
    free(l->slots);
    free(l->in);
    free(l->out);
    free(l->uri);
    free(l->export_name);
    free(l);
}

void odk_storage_controller_destroy(odk_storage_controller *c)
{
    if (!c)
        return;
    if (c->timer) {
        odk_timer_cancel(c->timer, NULL, NULL);
        odk_release(c->timer);
    }
    if (c->tick)
        odk_release(c->tick);
    for (unsigned i = 0; i < c->n_luns; i++)
        lun_free(c->luns[i]);
    free(c);
}

static odk_value *lun_props(const odk_storage_lun_info *info, uint32_t target, uint64_t lun)
{
    odk_value *p = odk_value_new_dict();
    if (!p)
        return NULL;
    odk_dict_set_int(p, "Peripheral Device Type", info->peripheral_type);
    odk_dict_set_string(p, "Vendor Identification", info->vendor ? info->vendor : "");
    odk_dict_set_string(p, "Product Identification", info->product ? info->product : "");
    odk_dict_set_string(p, "Serial Number", info->serial ? info->serial : "");
    odk_dict_set_int(p, "SCSI Target Identifier", target);
    odk_dict_set_int(p, "SCSI Logical Unit Number", (int64_t)lun);
    odk_dict_set_int(p, "OdkBlockSize", info->block_size);
    odk_dict_set_int(p, "OdkBlockCount", (int64_t)info->blocks);
    return p;
}

/* The export's first message: the arena's memfd, so that it places the
 * requests' data where the tasks (and the device) use it. */
static void lun_send_arena(odk_storage_lun *l)
{
    struct blk_rep r = {.magic = BLK_ARENA_MAGIC, .id = AREA, .length = l->n_slots};
    int fd = odk_memory_fd(l->arena);
    /* A fresh socket has room for 24 bytes: this does not block. */
    if (fd >= 0 && storage_send_with_fd(l->fd, &r, sizeof r, fd, MSG_DONTWAIT) == (ssize_t)sizeof r)
        l->arena_sent = true;
    else
        odk_warn("disk %s: the export gets no shared arena (%s); data goes through the socket",
                 l->uri, strerror(errno));
}

static int lun_export(odk_storage_lun *l, const odk_storage_lun_info *info)
{
    char name[80];
    if (info->export_name)
        snprintf(name, sizeof name, "%s", info->export_name);
    else
        snprintf(name, sizeof name, "lun%u-%llu", l->target, (unsigned long long)l->lun);
    l->n_slots = l->c->depth < MAX_SLOTS_PER_LUN ? l->c->depth : MAX_SLOTS_PER_LUN;
    l->slots = calloc(l->n_slots, sizeof *l->slots);
    l->in_cap = sizeof(struct blk_req) + NBD_PAYLOAD_MAX + (256u << 10);
    l->in = malloc(l->in_cap);
    if (!l->slots || !l->in)
        return ODK_E_NOMEM;
    int st = odk_memory_create((uint64_t)l->n_slots * AREA, ODK_MEM_INOUT, &l->arena);
    if (st == ODK_OK)
        st = odk_memory_map(l->arena, ODK_MAP_READ | ODK_MAP_WRITE, (void **)&l->arena_addr);
    if (st < 0)
        return st;
    if (!(l->export_name = strdup(name)))
        return ODK_E_NOMEM;
    odk_value *args = odk_value_new_dict();
    odk_dict_set_string(args, "name", name);
    odk_dict_set_int(args, "size", (int64_t)(l->blocks * l->block_size));
    odk_dict_set_int(args, "block_size", l->block_size);
    odk_value *reply = NULL;
    int fds[1] = {-1};
    size_t n_fds = 1;
    st = host_link_request_fds("storage-export", args, &reply, fds, &n_fds);
    if (st == ODK_OK && n_fds != 1)
        st = ODK_E_PROTOCOL;
    const char *uri = st == ODK_OK ? odk_dict_get_string(reply, "uri", NULL) : NULL;
    if (st == ODK_OK && !(l->uri = uri ? strdup(uri) : NULL))
        st = ODK_E_PROTOCOL;
    const char *sock = odk_dict_get_string(reply, "socket", "");
    odk_value *disk = st == ODK_OK ? odk_value_new_dict() : NULL;
    if (disk) {
        odk_dict_set_int(disk, "Size", (int64_t)(l->blocks * l->block_size));
        odk_dict_set_int(disk, "Block Size", l->block_size);
        odk_dict_set_string(disk, "Vendor", info->vendor ? info->vendor : "");
        odk_dict_set_string(disk, "Product", info->product ? info->product : "");
        odk_dict_set_string(disk, "Serial Number", info->serial ? info->serial : "");
        odk_dict_set_string(disk, "OdkNBDURI", l->uri);
        odk_dict_set_string(disk, "OdkNBDSocket", sock);
        odk_dict_set_string(disk, "OdkNBDExportName", name);
        odk_dict_set_int(disk, "OdkLUNNode", (int64_t)l->node);
    }
    odk_value_free(reply);
    if (st < 0)
        return st;
    l->fd = fds[0];
    lun_send_arena(l);
    st = odk_driver_publish_node(l->c->drv, "OdkBlockDisk", "IOService", disk, &l->disk_node);
    if (st == ODK_OK)
        st = odk_fd_source_create(odk_driver_queue(l->c->drv), l->fd, EPOLLIN, lun_io, l, &l->src);
    l->reading = true;
    l->events = EPOLLIN;
    return st;
}

int odk_storage_lun_create(odk_storage_controller *c, uint32_t target, uint64_t lun,
                           const odk_storage_lun_info *info, odk_storage_lun **out)
{
    if (!c || !info || !info->block_size || (info->block_size & (info->block_size - 1)) ||
        !info->blocks || info->blocks > UINT64_MAX / info->block_size)
        return ODK_E_INVALID;
    if (c->n_luns == MAX_LUNS)
        return ODK_E_LIMIT;
    for (unsigned i = 0; i < c->n_luns; i++)
        if (c->luns[i]->target == target && c->luns[i]->lun == lun)
            return ODK_E_EXISTS;
    odk_storage_lun *l = calloc(1, sizeof *l);
    if (!l)
        return ODK_E_NOMEM;
    l->c = c;
    l->fd = -1;
    l->target = target;
    l->lun = lun;
    l->block_size = info->block_size;
    l->blocks = info->blocks;
    int st = odk_driver_publish_node(c->drv, "OdkSCSILUN", "IOService",
                                     lun_props(info, target, lun), &l->node);
    if (st == ODK_OK && info->export)
        st = lun_export(l, info);
    if (st == ODK_OK && (st = periph_door_open(l, &l->door)) < 0) {
        odk_warn("LUN %u/%llu takes no peripheral drivers: %s", target, (unsigned long long)lun,
                 odk_strerror(st));
        st = ODK_OK;
    }
    if (st < 0) {
        lun_free(l);
        return st;
    }
    c->luns[c->n_luns++] = l;
    if (out)
        *out = l;
    return ODK_OK;
}

const char *odk_storage_lun_uri(const odk_storage_lun *l)
{
    return l ? l->uri : NULL;
}

int odk_storage_lun_export_tcp(odk_storage_lun *l, uint16_t port, uint16_t *bound)
{
    if (!l || !l->export_name || (port && port < 1024))
        return ODK_E_INVALID;
    odk_value *args = odk_value_new_dict();
    odk_dict_set_string(args, "name", l->export_name);
    odk_dict_set_int(args, "port", port);
    odk_value *reply = NULL;
    int st = host_link_request("storage-export-tcp", args, &reply);
    int64_t got = st == ODK_OK ? odk_dict_get_int(reply, "port", 0) : 0;
    const char *uri = odk_dict_get_string(reply, "uri", NULL);
    if (st == ODK_OK && (got < 1 || got > 65535 || !uri))
        st = ODK_E_PROTOCOL;
    if (st == ODK_OK)
        st = odk_driver_set_node_property(l->c->drv, l->disk_node, "OdkNBDTCPURI",
                                          odk_value_new_string(uri));
    if (st == ODK_OK)
        st = odk_driver_set_node_property(l->c->drv, l->disk_node, "OdkNBDTCPPort",
                                          odk_value_new_int(got));
    if (st == ODK_OK && bound)
        *bound = (uint16_t)got;
    odk_value_free(reply);
    return st;
}

/* ---- for peripheral.c ------------------------------------------------------------ */

odk_queue *storage_lun_queue(odk_storage_lun *l)
{
    return odk_driver_queue(l->c->drv);
}

uint64_t storage_lun_node(const odk_storage_lun *l)
{
    return l->node;
}

odk_scsi_task *storage_periph_task_new(odk_storage_lun *l, void *owner)
{
    odk_storage_controller *c = l->c;
    if (c->in_flight >= c->depth)
        return NULL;
    struct task_slot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->lun = l;
    s->state = T_HELD;
    s->periph = owner;
    s->next = l->ptasks;
    l->ptasks = s;
    s->t.target = l->target;
    s->t.lun = l->lun;
    s->t.tag = ++c->next_tag;
    c->in_flight++;
    return &s->t;
}

void storage_periph_task_start(odk_scsi_task *t)
{
    struct task_slot *s = (struct task_slot *)((char *)t - offsetof(struct task_slot, t));
    s->deadline_ns = now_ns() + (uint64_t)t->timeout_ms * 1000000ull;
    s->lun->c->ops->task(s->lun->c->ctx, t);
}

ssize_t storage_send_with_fd(int sock, const void *msg, size_t len, int fd, int flags)
{
    char cbuf[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec iov = {(void *)msg, len};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    return sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
}
