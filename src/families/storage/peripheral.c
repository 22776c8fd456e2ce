/* SPDX-License-Identifier: MIT */
/* peripheral.c — the storage family's peripheral role (odk/storage.h),
 * shaped after SCSIPeripheralsDriverKit's UserSendCDB: a driver matched to
 * an OdkSCSILUN node sends CDBs to it.
 *
 * Both ends live here, in the driver host:
 * - the controller's: each LUN asks odkd for a door (storage-lun-door), a
 *   SOCK_SEQPACKET socket whose other end odkd keeps.  When a peripheral
 *   driver opens the LUN (storage-lun-open), odkd makes a socket pair,
 *   passes one end through the door and gives the other to the
 *   peripheral.  Each request on it becomes an odk_scsi_task for the
 *   controller driver, counted against its queue depth, with the
 *   peripheral's memfd as the task's memory (no copy).
 * - the peripheral's: odk_storage_peripheral_send_cdb runs the library's
 *   checker, then sends the CDB and waits for the controller's answer.
 * odkd only introduces the two; CDBs and data never pass through it. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "families/storage/periph_wire.h"
#include "families/storage/storage_internal.h"
#include "odk/log.h"
#include "odk/status.h"
#include "odk/storage.h"
#include "runtime/host_link.h"

#define DEFAULT_TIMEOUT_MS 30000u
#define ODK_STATUS_TASK_SET_FULL 0x28u

/* Receives one message and at most one descriptor (*fd, -1 if none). */
static ssize_t recv_msg_fd(int sock, void *buf, size_t len, int *fd)
{
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {buf, len};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    *fd = -1;
    ssize_t n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0)
        return n;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(fd, CMSG_DATA(cm), sizeof *fd);
    if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        errno = EMSGSIZE;
        return -1;
    }
    return n;
}

/* ---- the controller's end ------------------------------------------------ */

struct pconn {
    struct periph_door *door; /* NULL once the door is closed */
    int fd;
    odk_fd_source *src;
    unsigned held; /* tasks the controller driver holds for this peripheral */
    /* The last buffer, kept while it comes back: the same odk_memory for
     * every CDB on it, so a controller that maps descriptors into its
     * device once (odk_sim_hba_map) maps it once. */
    odk_memory *last;
    dev_t last_dev;
    ino_t last_ino;
    bool closed, cancelled;
    struct pconn *next;
};

struct periph_door {
    odk_storage_lun *l;
    int fd;
    odk_fd_source *src;
    struct pconn *conns;
};

struct pwork {
    struct pconn *conn;
    uint64_t id;
    odk_memory *mem;
};

static void conn_free_maybe(struct pconn *c)
{
    if (c->closed && c->cancelled && c->held == 0) {
        if (c->last)
            odk_release(c->last);
        free(c);
    }
}

/* The request's buffer from fd (taken), reusing the last one when fd is
 * the same memfd.  *out is a new reference. */
static int conn_memory(struct pconn *c, int fd, uint64_t len, odk_memory **out)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return ODK_E_INVALID;
    }
    if (c->last && st.st_dev == c->last_dev && st.st_ino == c->last_ino &&
        odk_memory_length(c->last) == len) {
        close(fd);
        odk_retain(c->last);
        *out = c->last;
        return ODK_OK;
    }
    int r = odk_memory_from_fd(fd, len, ODK_MEM_INOUT, out);
    if (r < 0)
        return r;
    if (c->last)
        odk_release(c->last);
    odk_retain(*out);
    c->last = *out;
    c->last_dev = st.st_dev;
    c->last_ino = st.st_ino;
    return ODK_OK;
}

static void conn_cancelled(void *ctx)
{
    struct pconn *c = ctx;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    odk_release(c->src);
    c->src = NULL;
    c->cancelled = true;
    conn_free_maybe(c);
}

static void conn_close(struct pconn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    if (c->door)
        for (struct pconn **pp = &c->door->conns; *pp; pp = &(*pp)->next)
            if (*pp == c) {
                *pp = c->next;
                break;
            }
    c->door = NULL;
    odk_fd_source_cancel(c->src, conn_cancelled, c);
}

static void conn_reply(struct pconn *c, uint64_t id, uint32_t response, uint8_t status,
                       uint64_t transferred, const uint8_t *sense, uint32_t sense_len)
{
    if (c->closed)
        return;
    struct periph_rep r = {.magic = PERIPH_REP_MAGIC,
                           .service_response = response,
                           .id = id,
                           .transferred = transferred,
                           .status = status};
    if (sense && sense_len) {
        r.sense_len = sense_len < ODK_SCSI_SENSE_MAX ? sense_len : ODK_SCSI_SENSE_MAX;
        memcpy(r.sense, sense, r.sense_len);
    }
    /* The peripheral waits for this reply and has room for it: a full
     * socket means it stopped reading, which ends the link. */
    if (send(c->fd, &r, sizeof r, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof r) {
        odk_warn("a peripheral driver does not take its replies: closing its link");
        conn_close(c);
    }
}

void periph_task_done(void *owner, uint32_t service_response, uint8_t status, uint64_t transferred,
                      const uint8_t *sense, uint32_t sense_len)
{
    struct pwork *w = owner;
    struct pconn *c = w->conn;
    conn_reply(c, w->id, service_response, status, transferred, sense, sense_len);
    if (w->mem)
        odk_release(w->mem);
    free(w);
    c->held--;
    conn_free_maybe(c);
}

static bool req_ok(const struct periph_req *q, int fd)
{
    if (q->magic != PERIPH_REQ_MAGIC || q->cdb_len == 0 || q->cdb_len > ODK_SCSI_CDB_MAX ||
        q->dir > ODK_SCSI_DIR_TO_DEVICE)
        return false;
    if (q->mem_len == 0)
        return fd < 0 && q->length == 0 && q->offset == 0 && q->dir == ODK_SCSI_DIR_NONE;
    return fd >= 0 && q->dir != ODK_SCSI_DIR_NONE && q->offset <= q->mem_len &&
           q->length <= q->mem_len - q->offset;
}

static void conn_serve(struct pconn *c);

static void conn_io(void *ctx, uint32_t revents)
{
    struct pconn *c = ctx;
    (void)revents;
    if (c->closed)
        return;
    c->held++; /* c stays while it serves, whatever completes inside */
    conn_serve(c);
    c->held--;
    conn_free_maybe(c);
}

static void conn_serve(struct pconn *c)
{
    for (;;) {
        struct periph_req q;
        int fd = -1;
        ssize_t n = recv_msg_fd(c->fd, &q, sizeof q, &fd);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            conn_close(c); /* the peripheral driver went away */
            return;
        }
        if (n != (ssize_t)sizeof q || !req_ok(&q, fd)) {
            odk_warn("a peripheral driver sent a malformed request: closing its link");
            if (fd >= 0)
                close(fd);
            conn_close(c);
            return;
        }
        struct pwork *w = calloc(1, sizeof *w);
        if (w && fd >= 0 && conn_memory(c, fd, q.mem_len, &w->mem) < 0) {
            /* fd closed by conn_memory */
            odk_warn("a peripheral driver's buffer is not a sealed memfd: closing its link");
            free(w);
            conn_close(c);
            return;
        }
        odk_scsi_task *t = w ? storage_periph_task_new(c->door->l, w) : NULL;
        if (!t) {
            /* The controller has its queue depth of tasks out (or no memory
             * for one): SAM's TASK SET FULL, for the peripheral to retry. */
            if (w && w->mem)
                odk_release(w->mem);
            else if (!w && fd >= 0)
                close(fd);
            free(w);
            conn_reply(c, q.id, ODK_SCSI_TASK_COMPLETE, ODK_STATUS_TASK_SET_FULL, 0, NULL, 0);
            continue;
        }
        w->conn = c;
        w->id = q.id;
        memcpy(t->cdb, q.cdb, q.cdb_len);
        t->cdb_len = q.cdb_len;
        t->direction = (odk_scsi_dir)q.dir;
        t->memory = w->mem;
        t->offset = q.offset;
        t->length = q.length;
        t->timeout_ms = q.timeout_ms ? q.timeout_ms : DEFAULT_TIMEOUT_MS;
        c->held++;
        storage_periph_task_start(t);
        if (c->closed)
            return;
    }
}

static void door_io(void *ctx, uint32_t revents)
{
    struct periph_door *d = ctx;
    (void)revents;
    for (;;) {
        char b;
        int fd = -1;
        ssize_t n = recv_msg_fd(d->fd, &b, 1, &fd);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) { /* odkd closed the door: the LUN node is gone */
            odk_fd_source_set_enabled(d->src, false);
            return;
        }
        if (fd < 0)
            continue;
        struct pconn *c = calloc(1, sizeof *c);
        if (!c ||
            odk_fd_source_create(storage_lun_queue(d->l), fd, EPOLLIN, conn_io, c, &c->src) < 0) {
            odk_error("cannot serve a peripheral driver: out of memory");
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->door = d;
        c->next = d->conns;
        d->conns = c;
    }
}

int periph_door_open(odk_storage_lun *l, struct periph_door **out)
{
    struct periph_door *d = calloc(1, sizeof *d);
    if (!d)
        return ODK_E_NOMEM;
    d->l = l;
    d->fd = -1;
    odk_value *args = odk_value_new_dict();
    if (args)
        odk_dict_set_int(args, "node", (int64_t)storage_lun_node(l));
    int fds[1] = {-1};
    size_t n_fds = 1;
    int st =
        args ? host_link_request_fds("storage-lun-door", args, NULL, fds, &n_fds) : ODK_E_NOMEM;
    if (st == ODK_OK && n_fds != 1)
        st = ODK_E_PROTOCOL;
    if (st == ODK_OK) {
        d->fd = fds[0];
        st = odk_fd_source_create(storage_lun_queue(l), d->fd, EPOLLIN, door_io, d, &d->src);
    }
    if (st < 0) {
        periph_door_close(d);
        return st;
    }
    *out = d;
    return ODK_OK;
}

static void door_cancelled(void *ctx)
{
    struct periph_door *d = ctx;
    if (d->fd >= 0)
        close(d->fd);
    odk_release(d->src);
    free(d);
}

void periph_door_close(struct periph_door *d)
{
    if (!d)
        return;
    while (d->conns)
        conn_close(d->conns);
    if (d->src) {
        odk_fd_source_cancel(d->src, door_cancelled, d);
        return;
    }
    if (d->fd >= 0)
        close(d->fd);
    free(d);
}

/* ---- the peripheral's end ------------------------------------------------ */

struct odk_storage_peripheral {
    int fd;
    uint8_t type;
    uint32_t block_size;
    uint64_t next_id;
};

int odk_storage_peripheral_open(odk_driver *drv, odk_storage_peripheral **out)
{
    if (!drv || !out)
        return ODK_E_INVALID;
    const odk_value *props = odk_driver_provider_properties(drv);
    int64_t type = props ? odk_dict_get_int(props, "Peripheral Device Type", -1) : -1;
    if (type < 0 || type > 0x1f)
        return ODK_E_INVALID; /* the provider is not a LUN node */
    odk_storage_peripheral *p = calloc(1, sizeof *p);
    if (!p)
        return ODK_E_NOMEM;
    p->type = (uint8_t)type;
    int64_t bs = odk_dict_get_int(props, "OdkBlockSize", 0);
    p->block_size = bs > 0 && bs <= 1 << 20 ? (uint32_t)bs : 0;
    int fds[1] = {-1};
    size_t n_fds = 1;
    int st = host_link_request_fds("storage-lun-open", NULL, NULL, fds, &n_fds);
    if (st == ODK_OK && n_fds != 1)
        st = ODK_E_PROTOCOL;
    if (st < 0) {
        free(p);
        return st;
    }
    p->fd = fds[0];
    *out = p;
    return ODK_OK;
}

void odk_storage_peripheral_close(odk_storage_peripheral *p)
{
    if (!p)
        return;
    close(p->fd);
    free(p);
}

uint8_t odk_storage_peripheral_type(const odk_storage_peripheral *p)
{
    return p ? p->type : 0x1f;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int odk_storage_peripheral_send_cdb(odk_storage_peripheral *p, const uint8_t *cdb, size_t cdb_len,
                                    odk_scsi_dir dir, odk_memory *m, uint64_t offset,
                                    uint64_t length, uint32_t timeout_ms, unsigned flags,
                                    odk_scsi_cdb_result *res, odk_scsi_cdb_error *err)
{
    if (!p || !cdb || cdb_len == 0 || cdb_len > ODK_SCSI_CDB_MAX || !res ||
        dir > ODK_SCSI_DIR_TO_DEVICE || (m == NULL) != (dir == ODK_SCSI_DIR_NONE) ||
        (m && (offset > odk_memory_length(m) || length > odk_memory_length(m) - offset)) ||
        (!m && (offset || length)))
        return ODK_E_INVALID;
    memset(res, 0, sizeof *res);
    if (!(flags & ODK_SCSI_SEND_UNCHECKED)) {
        int st = odk_scsi_cdb_check(cdb, cdb_len, p->type, flags & ODK_SCSI_CHECK_STRICT, dir,
                                    (size_t)length, p->block_size, err);
        if (st < 0)
            return st; /* refused: never sent */
    }
    struct periph_req q = {.magic = PERIPH_REQ_MAGIC,
                           .cdb_len = (uint8_t)cdb_len,
                           .dir = (uint8_t)dir,
                           .id = ++p->next_id,
                           .mem_len = m ? odk_memory_length(m) : 0,
                           .offset = offset,
                           .length = length,
                           .timeout_ms = timeout_ms};
    memcpy(q.cdb, cdb, cdb_len);
    char cbuf[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec iov = {&q, sizeof q};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (m) {
        int mfd = odk_memory_fd(m);
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &mfd, sizeof mfd);
    }
    if (sendmsg(p->fd, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof q)
        return errno == EPIPE || errno == ECONNRESET ? ODK_E_GONE : ODK_E_IO;
    /* The controller answers within its own timeout; a little more here
     * for the way back. */
    uint64_t limit = (timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS) + 2000u;
    uint64_t deadline = now_ms() + limit;
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline)
            return ODK_E_TIMEOUT;
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)(deadline - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return ODK_E_IO;
        if (pr == 0)
            continue;
        struct periph_rep r;
        ssize_t n = recv(p->fd, &r, sizeof r, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return ODK_E_GONE; /* the controller driver went away */
        if (n != (ssize_t)sizeof r || r.magic != PERIPH_REP_MAGIC ||
            r.sense_len > ODK_SCSI_SENSE_MAX)
            return ODK_E_PROTOCOL;
        if (r.id != q.id)
            continue; /* the answer to a request that timed out earlier */
        res->service_response = r.service_response;
        res->status = r.status;
        res->transferred = r.transferred < length ? r.transferred : length;
        res->sense_len = r.sense_len;
        memcpy(res->sense, r.sense, r.sense_len);
        return ODK_OK;
    }
}
