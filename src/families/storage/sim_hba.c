/* SPDX-License-Identifier: MIT */
/* sim_hba.c — the driver's side of the simulated HBA (odk/storage.h,
 * odk_sim_hba_*): the command ring and interrupt of the model process,
 * reached through a socket odkd hands over (storage-hba-open).  Commands
 * go to the model with where their data is in a mapped memory descriptor;
 * completions arrive on the driver's default queue.  What the model sends
 * is checked: a completion must carry a tag of a command in flight. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buses/storage_sim/hba_wire.h"
#include "families/storage/storage_internal.h"
#include "odk/log.h"
#include "odk/queue.h"
#include "odk/status.h"
#include "odk/storage.h"
#include "runtime/host_link.h"

#define HELLO_TIMEOUT_MS 2000

struct pend {
    void *ctx;
    uint32_t gen;
    uint32_t slot;
    bool used;
};

enum { RECV_MSGS = 4 }; /* messages (each a batch of completions) per recvmmsg */

struct odk_sim_hba {
    struct hba_msg rx[RECV_MSGS][HBA_BATCH_MAX]; /* completions received together */
    uint32_t events;                             /* what src watches for now */
    odk_driver *drv;
    const odk_sim_hba_ops *ops;
    void *ctx;
    int fd;
    bool gone;
    odk_fd_source *src;
    uint32_t n_slots;
    uint64_t blocks[HBA_MAX_SLOTS];
    uint32_t block_size[HBA_MAX_SLOTS];
    odk_memory *maps[HBA_MAX_MAPS];
    struct pend *pend;
    size_t n_pend;
    size_t free_hint;
    /* Commands the socket had no room for, sent when it drains: a blocking
     * send here would deadlock against a model blocked on its completions. */
    struct hba_msg *backlog;
    size_t n_backlog, backlog_cap, backlog_head;
};

/* Rings the doorbell: the queued commands go HBA_BATCH_MAX to a
 * message (hba_wire.h), so the model takes them in one wake-up. */
static void flush_backlog(odk_sim_hba *h)
{
    while (h->backlog_head < h->n_backlog) {
        size_t n = h->n_backlog - h->backlog_head;
        if (n > HBA_BATCH_MAX)
            n = HBA_BATCH_MAX;
        ssize_t k = send(h->fd, &h->backlog[h->backlog_head], n * sizeof(struct hba_msg),
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k <= 0)
            break;
        h->backlog_head += n;
    }
    if (h->backlog_head == h->n_backlog)
        h->backlog_head = h->n_backlog = 0;
    uint32_t events = EPOLLIN | (h->n_backlog ? EPOLLOUT : 0u);
    if (events != h->events && odk_fd_source_set_events(h->src, events) == ODK_OK)
        h->events = events;
}

static void flush_backlog_cb(void *obj)
{
    odk_sim_hba *h = obj;
    if (!h->gone)
        flush_backlog(h);
}

static void fail_all(odk_sim_hba *h)
{
    h->gone = true;
    for (size_t i = 0; i < h->n_pend; i++)
        if (h->pend[i].used) {
            h->pend[i].used = false;
            h->pend[i].gen++;
            if (h->ops->done)
                h->ops->done(h->ctx, h->pend[i].ctx, ODK_SCSI_SERVICE_FAILURE, 0, 0, NULL, 0);
        }
}

static void on_slot(odk_sim_hba *h, const struct hba_msg *m)
{
    if (m->slot >= h->n_slots)
        return;
    bool present = m->blocks && m->block_size;
    h->blocks[m->slot] = present ? m->blocks : 0;
    h->block_size[m->slot] = present ? m->block_size : 0;
    if (h->ops->slot_changed)
        h->ops->slot_changed(h->ctx, m->slot, present);
}

static void on_readable_batch(odk_sim_hba *h, uint32_t revents);

/* The completions taken in one wake-up are one batch: the replies they
 * make (and the commands they start) go out together at its end. */
static void on_readable(void *ctx, uint32_t revents)
{
    storage_batch_begin();
    on_readable_batch(ctx, revents);
    storage_batch_end();
}

static void on_message(odk_sim_hba *h, const struct hba_msg *m)
{
    if (m->type == HBA_SLOT) {
        on_slot(h, m);
        return;
    }
    if (m->type == HBA_TMF_DONE) {
        const char *what = m->map_id == HBA_ABORT     ? "ABORT TASK"
                           : m->slot == HBA_ALL_SLOTS ? "BUS RESET"
                                                      : "LOGICAL UNIT RESET";
        if (m->status != HBA_TMF_COMPLETE)
            odk_warn("the HBA's %s (slot %d) failed: the disk does not answer", what,
                     m->slot == HBA_ALL_SLOTS ? -1 : (int)m->slot);
        else
            odk_info("the HBA's %s (slot %d) ended %llu command(s)", what,
                     m->slot == HBA_ALL_SLOTS ? -1 : (int)m->slot,
                     (unsigned long long)m->transferred);
        return;
    }
    if (m->type != HBA_DONE)
        return;
    uint32_t idx = (uint32_t)m->tag;
    if (idx >= h->n_pend || !h->pend[idx].used || h->pend[idx].gen != (uint32_t)(m->tag >> 32)) {
        odk_warn("the HBA model completed an unknown tag %llx", (unsigned long long)m->tag);
        return;
    }
    struct pend *p = &h->pend[idx];
    p->used = false;
    p->gen++;
    if (idx < h->free_hint)
        h->free_hint = idx;
    uint32_t sense_len = m->sense_len <= HBA_SENSE_MAX ? m->sense_len : HBA_SENSE_MAX;
    if (m->service == HBA_BAD_COMMAND) {
        /* The HBA says why in words (hba_wire.h), not in sense data. */
        odk_error("the HBA refused a command for slot %u: %.*s", m->slot, (int)sense_len,
                  sense_len ? (const char *)m->sense : "bad command");
        sense_len = 0;
    }
    h->ops->done(h->ctx, p->ctx,
                 m->service == HBA_OK        ? ODK_SCSI_TASK_COMPLETE
                 : m->service == HBA_ABORTED ? ODK_SCSI_TASK_ABORTED
                                             : ODK_SCSI_SERVICE_FAILURE,
                 m->status, m->transferred, sense_len ? m->sense : NULL, sense_len);
}

static void on_readable_batch(odk_sim_hba *h, uint32_t revents)
{
    if ((revents & EPOLLOUT) && !h->gone)
        flush_backlog(h);
    /* Completions come in batches (the model coalesces them, hba_wire.h):
     * RECV_MSGS messages of up to HBA_BATCH_MAX per syscall, 4 syscalls a
     * wake-up at most; no syscall more to learn that fewer messages than
     * asked were all there was. */
    for (int round = 0; round < 4 && !h->gone; round++) {
        struct mmsghdr mm[RECV_MSGS];
        struct iovec iov[RECV_MSGS];
        for (int i = 0; i < RECV_MSGS; i++) {
            iov[i] = (struct iovec){h->rx[i], sizeof h->rx[i]};
            mm[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
        }
        int got = recvmmsg(h->fd, mm, RECV_MSGS, MSG_DONTWAIT, NULL);
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (got > 0 && mm[0].msg_len == 0)
            got = 0; /* end of file */
        if (got <= 0) {
            odk_error("the HBA model is gone; failing %s", "its commands in flight");
            odk_fd_source_set_enabled(h->src, false);
            fail_all(h);
            return;
        }
        for (int i = 0; i < got && !h->gone; i++) {
            size_t len = mm[i].msg_len;
            if (len % sizeof(struct hba_msg) || (mm[i].msg_hdr.msg_flags & MSG_TRUNC)) {
                odk_warn("the HBA model sent a message of %zu bytes; dropped", len);
                continue;
            }
            for (size_t k = 0; k < len / sizeof(struct hba_msg) && !h->gone; k++)
                on_message(h, &h->rx[i][k]);
        }
        if (got < RECV_MSGS)
            return;
    }
}

int odk_sim_hba_open(odk_driver *drv, const odk_sim_hba_ops *ops, void *ctx, odk_sim_hba **out)
{
    if (!drv || !ops || !ops->done || !out)
        return ODK_E_INVALID;
    odk_value *reply = NULL;
    int fds[1] = {-1};
    size_t n_fds = 1;
    int st = host_link_request_fds("storage-hba-open", odk_value_new_dict(), &reply, fds, &n_fds);
    odk_value_free(reply);
    if (st < 0)
        return st;
    if (n_fds != 1)
        return ODK_E_PROTOCOL;
    odk_sim_hba *h = calloc(1, sizeof *h);
    if (!h) {
        close(fds[0]);
        return ODK_E_NOMEM;
    }
    h->drv = drv;
    h->ops = ops;
    h->ctx = ctx;
    h->fd = fds[0];
    /* The model says how many slots it has, then what is in each. */
    struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
    bool hello = false, bad = false;
    uint32_t seen = 0;
    while (!bad && (!hello || seen < h->n_slots)) {
        ssize_t n =
            poll(&pfd, 1, HELLO_TIMEOUT_MS) == 1 ? recv(h->fd, h->rx[0], sizeof h->rx[0], 0) : -1;
        if (n <= 0 || n % (ssize_t)sizeof(struct hba_msg)) {
            close(h->fd);
            free(h);
            return ODK_E_PROTOCOL;
        }
        for (size_t k = 0; k < (size_t)n / sizeof(struct hba_msg) && !bad; k++) {
            const struct hba_msg *m = &h->rx[0][k];
            if (m->type == HBA_HELLO && !hello) {
                bad = m->slot == 0 || m->slot > HBA_MAX_SLOTS;
                h->n_slots = m->slot;
                hello = !bad;
            } else if (m->type == HBA_SLOT && hello && m->slot < h->n_slots) {
                bool present = m->blocks && m->block_size;
                h->blocks[m->slot] = present ? m->blocks : 0;
                h->block_size[m->slot] = present ? m->block_size : 0;
                seen++;
            }
        }
    }
    if (!hello) {
        close(h->fd);
        free(h);
        return ODK_E_PROTOCOL;
    }
    h->events = EPOLLIN;
    st = odk_fd_source_create(odk_driver_queue(drv), h->fd, EPOLLIN, on_readable, h, &h->src);
    if (st < 0) {
        close(h->fd);
        free(h);
        return st;
    }
    *out = h;
    return ODK_OK;
}

void odk_sim_hba_close(odk_sim_hba *h)
{
    if (!h)
        return;
    storage_batch_forget(h);
    odk_fd_source_cancel(h->src, NULL, NULL);
    odk_release(h->src);
    close(h->fd);
    for (unsigned i = 0; i < HBA_MAX_MAPS; i++)
        if (h->maps[i])
            odk_release(h->maps[i]);
    free(h->pend);
    free(h->backlog);
    free(h);
}

uint32_t odk_sim_hba_slots(const odk_sim_hba *h)
{
    return h ? h->n_slots : 0;
}

void odk_sim_hba_slot_info(const odk_sim_hba *h, uint32_t slot, uint64_t *blocks,
                           uint32_t *block_size)
{
    bool ok = h && slot < h->n_slots;
    if (blocks)
        *blocks = ok ? h->blocks[slot] : 0;
    if (block_size)
        *block_size = ok ? h->block_size[slot] : 0;
}

static int map_id(odk_sim_hba *h, odk_memory *m)
{
    for (int i = 0; i < HBA_MAX_MAPS; i++)
        if (h->maps[i] == m)
            return i;
    return -1;
}

int odk_sim_hba_map(odk_sim_hba *h, odk_memory *m)
{
    if (!h || !m)
        return ODK_E_INVALID;
    if (h->gone)
        return ODK_E_GONE;
    if (map_id(h, m) >= 0)
        return ODK_OK;
    int id = map_id(h, NULL);
    if (id < 0)
        return ODK_E_LIMIT;
    struct hba_msg msg = {.type = HBA_MAP, .map_id = (uint32_t)id, .length = odk_memory_length(m)};
    if (storage_send_with_fd(h->fd, &msg, sizeof msg, odk_memory_fd(m), 0) < 0)
        return ODK_E_GONE;
    odk_retain(m);
    h->maps[id] = m;
    return ODK_OK;
}

int odk_sim_hba_submit(odk_sim_hba *h, uint32_t slot, const uint8_t *cdb, uint8_t cdb_len,
                       odk_scsi_dir direction, odk_memory *m, uint64_t offset, uint64_t length,
                       void *cmd_ctx)
{
    if (length && !m)
        return ODK_E_INVALID;
    odk_sim_hba_sge one = {m, offset, length};
    return odk_sim_hba_submit_sg(h, slot, cdb, cdb_len, direction, &one, length ? 1 : 0, cmd_ctx);
}

int odk_sim_hba_submit_sg(odk_sim_hba *h, uint32_t slot, const uint8_t *cdb, uint8_t cdb_len,
                          odk_scsi_dir direction, const odk_sim_hba_sge *sg, uint32_t n_sg,
                          void *cmd_ctx)
{
    if (!h || !cdb || cdb_len == 0 || cdb_len > 16 || slot >= h->n_slots ||
        n_sg > ODK_SIM_HBA_SG_MAX || (n_sg && !sg))
        return ODK_E_INVALID;
    if (h->gone)
        return ODK_E_GONE;
    struct hba_msg msg = {
        .type = HBA_CMD, .slot = slot, .dir = (uint8_t)direction, .cdb_len = cdb_len};
    for (uint32_t k = 0; k < n_sg; k++) {
        const odk_sim_hba_sge *e = &sg[k];
        int id = e->memory ? map_id(h, e->memory) : -1;
        if (id < 0 || !e->length || e->length > UINT32_MAX ||
            e->offset > odk_memory_length(e->memory) ||
            e->length > odk_memory_length(e->memory) - e->offset)
            return ODK_E_INVALID;
        msg.sg[k] = (struct hba_sge){
            .offset = e->offset, .length = (uint32_t)e->length, .map_id = (uint32_t)id};
        msg.length += e->length;
    }
    if (n_sg == 1) { /* one range: the plain form */
        msg.map_id = msg.sg[0].map_id;
        msg.offset = msg.sg[0].offset;
        msg.sg[0] = (struct hba_sge){0};
    } else {
        msg.sg_count = n_sg;
    }
    size_t i = h->free_hint;
    while (i < h->n_pend && h->pend[i].used)
        i++;
    if (i == h->n_pend) {
        size_t n = h->n_pend ? h->n_pend * 2 : 64;
        struct pend *p = realloc(h->pend, n * sizeof *p);
        if (!p)
            return ODK_E_NOMEM;
        memset(p + h->n_pend, 0, (n - h->n_pend) * sizeof *p);
        h->pend = p;
        h->n_pend = n;
    }
    struct pend *p = &h->pend[i];
    msg.tag = (uint64_t)p->gen << 32 | i;
    memcpy(msg.cdb, cdb, cdb_len);
    /* In a batch (storage_internal.h) the command waits in the backlog,
     * sent with the batch's others at its end. */
    bool later = h->n_backlog || storage_batch_defer(flush_backlog_cb, h);
    if (later || send(h->fd, &msg, sizeof msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        if (!later && errno != EAGAIN)
            return ODK_E_GONE;
        if (h->n_backlog == h->backlog_cap) {
            size_t cap = h->backlog_cap ? h->backlog_cap * 2 : 256;
            struct hba_msg *b = realloc(h->backlog, cap * sizeof *b);
            if (!b)
                return ODK_E_NOMEM;
            h->backlog = b;
            h->backlog_cap = cap;
        }
        h->backlog[h->n_backlog++] = msg;
        if (!storage_batch_defer(flush_backlog_cb, h) && h->events != (EPOLLIN | EPOLLOUT) &&
            odk_fd_source_set_events(h->src, EPOLLIN | EPOLLOUT) == ODK_OK)
            h->events = EPOLLIN | EPOLLOUT;
    }
    p->used = true;
    p->ctx = cmd_ctx;
    p->slot = slot;
    h->free_hint = i + 1;
    return ODK_OK;
}

/* Task management goes on the command ring like a command (behind the
 * commands already queued, so an abort never overtakes its command). */
static int send_tmf(odk_sim_hba *h, const struct hba_msg *msg)
{
    if (h->n_backlog || send(h->fd, msg, sizeof *msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        if (h->n_backlog == 0 && errno != EAGAIN)
            return ODK_E_GONE;
        if (h->n_backlog == h->backlog_cap) {
            size_t cap = h->backlog_cap ? h->backlog_cap * 2 : 256;
            struct hba_msg *b = realloc(h->backlog, cap * sizeof *b);
            if (!b)
                return ODK_E_NOMEM;
            h->backlog = b;
            h->backlog_cap = cap;
        }
        h->backlog[h->n_backlog++] = *msg;
        if (h->events != (EPOLLIN | EPOLLOUT) &&
            odk_fd_source_set_events(h->src, EPOLLIN | EPOLLOUT) == ODK_OK)
            h->events = EPOLLIN | EPOLLOUT;
    }
    return ODK_OK;
}

int odk_sim_hba_abort(odk_sim_hba *h, bool (*match)(void *cmd_ctx, void *arg), void *arg)
{
    if (!h || !match)
        return ODK_E_INVALID;
    if (h->gone)
        return ODK_E_GONE;
    int n = 0;
    for (size_t i = 0; i < h->n_pend; i++) {
        if (!h->pend[i].used || !match(h->pend[i].ctx, arg))
            continue;
        struct hba_msg msg = {
            .type = HBA_ABORT, .slot = h->pend[i].slot, .tag = (uint64_t)h->pend[i].gen << 32 | i};
        int st = send_tmf(h, &msg);
        if (st < 0)
            return st;
        n++;
    }
    return n;
}

int odk_sim_hba_reset(odk_sim_hba *h, uint32_t slot)
{
    if (!h || (slot != ODK_SIM_HBA_BUS && slot >= h->n_slots))
        return ODK_E_INVALID;
    if (h->gone)
        return ODK_E_GONE;
    struct hba_msg msg = {.type = HBA_RESET, .slot = slot};
    return send_tmf(h, &msg);
}
