/* SPDX-License-Identifier: MIT */
/* export_main.c — odk-nbd-export, the process that serves one disk as an
 * NBD export.
 *
 *   odk-nbd-export SOCKET SIZE BLOCK_SIZE NAME [TCP_PORT]
 *
 * odkd starts it for a disk a driver publishes, with a SOCK_SEQPACKET
 * connection on fd 3 and the Unix socket SOCKET, already listening, on fd
 * 4 (so it listens before the driver publishes its URI).  It also listens
 * on 127.0.0.1:TCP_PORT when given, and it and speaks NBD's fixed newstyle
 * protocol to any number of clients.  Each message odkd sends on fd 3
 * carrying a descriptor attaches a new backend: a stream socket whose
 * other end is in the driver host (blk_wire.h).  A message without one,
 * or odkd closing fd 3, ends the export (the disk was removed): requests
 * in flight fail with ESHUTDOWN, clients are disconnected, the socket is
 * removed.
 *
 * The export lives apart from the driver so that a crashing driver costs
 * only the requests in flight: they fail with EIO at once, requests that
 * arrive while no driver is attached wait up to ODK_NBD_DETACHED_MS for
 * the restarted one, then fail.  A request the driver leaves unanswered
 * for ODK_NBD_DEADLINE_MS fails with EIO.  A client that sends garbage,
 * or stops reading its replies for ODK_NBD_STALL_MS while they pile up,
 * is disconnected; the others carry on.
 *
 * The driver's first message is its arena's memfd: the export maps it and
 * moves the data between the clients' sockets and the arena's areas
 * itself, so only headers cross the driver's socket (blk_wire.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "families/storage/blk_wire.h"
#include "families/storage/nbd_proto.h"

#define CONTROL_FD 3
#define LISTEN_FD 4 /* the Unix socket, bound and listening (odkd made it) */
#define DEFAULT_DEADLINE_MS 30000
#define DEFAULT_DETACHED_MS 10000
#define DEFAULT_STALL_MS 10000
/* Per connection: past these, the export stops reading the client's
 * requests until replies drain. */
#define CONN_MAX_IN_FLIGHT 256
#define CONN_OUT_HIGH (16u << 20)
#define TICK_MS 100
/* What one recv from a client takes while no message needs more: many
 * requests, but only the start of a large WRITE's payload, whose rest is
 * received straight into its arena area (conn.rx). */
#define RECV_CHUNK (16u << 10)

struct buf {
    struct buf *next;
    size_t len, off;
    uint8_t data[];
};

struct outq {
    struct buf *head, *tail;
    size_t bytes;
};

enum conn_state { C_FLAGS, C_OPTS, C_TRANS };

struct conn {
    int fd;
    enum conn_state state;
    bool dead, structured, no_zeroes;
    bool failed; /* a reply could not be queued: end it when safe */
    uint8_t *in;
    size_t in_len, in_cap;
    size_t in_need; /* the whole of the message at the head of in, when known */
    /* A WRITE whose payload goes from the socket straight into its area
     * (or into its own buffer when the driver left meanwhile). */
    long rx; /* its slot's index, or -1 (x.slots moves when it grows) */
    uint8_t *rx_dst;
    size_t rx_left;
    uint64_t rx_ms;     /* when the payload last moved */
    size_t write_guess; /* the last request's payload, a WRITE's length, or 0 */
    struct outq out;
    unsigned in_flight;
    uint32_t events; /* what epoll watches for it now */
    bool dirty;      /* replies queued during a batch, to send at its end */
    uint64_t last_write_ms;
    struct conn *next;
};

enum slot_state { S_FREE, S_RECEIVING, S_WAITING, S_SENT, S_ABANDONED };

struct slot {
    enum slot_state state;
    uint32_t gen;
    struct conn *conn;
    uint64_t cookie, offset;
    uint16_t type, flags;
    uint32_t length;
    uint64_t deadline;
    uint8_t *payload; /* a WRITE's data while S_WAITING */
    int32_t area;     /* the shared arena's area it holds, or -1 */
};

enum area_state { A_FREE, A_BUSY, A_KEPT /* the driver holds it (BLK_REP_KEEP) */ };

static struct {
    uint64_t size;
    uint32_t block_size;
    const char *name, *path;
    int epfd, unix_fd, tcp_fd, backend;
    uint32_t backend_events;
    struct outq bout; /* to the backend */
    uint8_t *bin;     /* from the backend */
    size_t bin_len, bin_cap;
    struct slot *slots;
    size_t n_slots;
    struct conn *conns;
    uint64_t deadline_ms, detached_ms, stall_ms;
    bool reply_between; /* ODK_NBD_REPLY_BETWEEN: look for answers between payloads */
    bool stopping;
    bool batching; /* replies are queued, and sent once the batch is done */
    /* The driver's shared arena (blk_wire.h): n_areas areas of area_size. */
    uint8_t *arena;
    size_t arena_len, area_size;
    uint32_t n_areas, areas_free;
    uint8_t *area_state;
    int arena_fd; /* received, not yet announced */
    /* Requests waiting for the driver, oldest first: slot ids (a slot
     * answered meanwhile no longer matches its id and is skipped). */
    uint64_t *waitq;
    size_t wait_head, wait_len, wait_cap;
} x = {.unix_fd = -1, .tcp_fd = -1, .backend = -1, .arena_fd = -1};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "odk-nbd-export %s: ", x.name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static uint64_t env_ms(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : dflt;
}

/* ---- output queues ------------------------------------------------------- */

static uint8_t *outq_add(struct outq *q, size_t len)
{
    struct buf *b = malloc(sizeof *b + len);
    if (!b)
        return NULL;
    b->next = NULL;
    b->len = len;
    b->off = 0;
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    q->bytes += len;
    return b->data;
}

static void outq_clear(struct outq *q)
{
    while (q->head) {
        struct buf *b = q->head;
        q->head = b->next;
        free(b);
    }
    q->tail = NULL;
    q->bytes = 0;
}

/* Writes what it can, up to OUTQ_IOV buffers a syscall (a batch of small
 * replies or requests is one sendmsg, not one send each); -1 when the peer
 * is gone. */
#define OUTQ_IOV 64
static int outq_flush(struct outq *q, int fd, bool *progress)
{
    while (q->head) {
        struct iovec iov[OUTQ_IOV];
        int n_iov = 0;
        for (struct buf *b = q->head; b && n_iov < OUTQ_IOV; b = b->next)
            iov[n_iov++] = (struct iovec){b->data + b->off, b->len - b->off};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov};
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        if (progress && n > 0)
            *progress = true;
        q->bytes -= (size_t)n;
        size_t left = (size_t)n;
        while (q->head && left >= q->head->len - q->head->off) {
            struct buf *b = q->head;
            left -= b->len - b->off;
            q->head = b->next;
            free(b);
        }
        if (!q->head) {
            q->tail = NULL;
            return 0;
        }
        q->head->off += left;
        if (left || n_iov < OUTQ_IOV)
            return 0; /* the socket is full */
    }
    return 0;
}

/* ---- connections --------------------------------------------------------- */

static void conn_update_events(struct conn *c);
static void slot_release(struct slot *s);

static void conn_free(struct conn *c)
{
    for (struct conn **pp = &x.conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    outq_clear(&c->out);
    free(c->in);
    free(c);
}

/* Ends a connection: the socket closes now, the structure goes once no
 * request of it is in flight. */
static void conn_close(struct conn *c, const char *why)
{
    if (c->dead)
        return;
    if (why)
        logf_("connection %d ended: %s", c->fd, why);
    c->dead = true;
    epoll_ctl(x.epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    outq_clear(&c->out);
    if (c->rx >= 0) { /* its payload will never be whole: nothing to answer */
        slot_release(&x.slots[c->rx]);
        c->rx = -1;
        c->in_flight--;
    }
    if (c->in_flight == 0)
        conn_free(c);
}

static void conn_flush(struct conn *c)
{
    bool progress = false;
    if (outq_flush(&c->out, c->fd, &progress) < 0) {
        conn_close(c, "the client went away");
        return;
    }
    if (progress || !c->out.head)
        c->last_write_ms = now_ms();
    conn_update_events(c);
}

static void conn_update_events(struct conn *c)
{
    if (c->dead)
        return;
    bool want_in = c->in_flight < CONN_MAX_IN_FLIGHT && c->out.bytes < CONN_OUT_HIGH;
    struct epoll_event ev = {.events = (want_in ? EPOLLIN : 0u) | (c->out.head ? EPOLLOUT : 0u),
                             .data.ptr = c};
    /* A payload's stall counts only while the export reads it. */
    if (want_in && !(c->events & EPOLLIN))
        c->rx_ms = now_ms();
    if (ev.events != c->events) /* a syscall a reply saved */
        epoll_ctl(x.epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = ev.events;
}

/* ---- replies ------------------------------------------------------------- */

/* Sends a reply's header and data straight from where they are while
 * nothing is queued before them; queues what the socket has no room for.
 * (The data of a READ is then copied once, from the arena to the socket.) */
static bool reply_direct(struct conn *c, const uint8_t *hdr, size_t hlen, const uint8_t *data,
                         size_t dlen)
{
    size_t done = 0, total = hlen + dlen;
    if (!c->out.head) {
        struct iovec iov[2] = {{(void *)hdr, hlen}, {(void *)data, dlen}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = dlen ? 2 : 1};
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            done = (size_t)n;
            c->last_write_ms = now_ms();
        }
        if (done == total)
            return true;
    }
    uint8_t *p = outq_add(&c->out, total - done);
    if (!p)
        return false;
    if (done < hlen) {
        memcpy(p, hdr + done, hlen - done);
        memcpy(p + hlen - done, data, dlen);
    } else {
        memcpy(p, data + (done - hlen), total - done);
    }
    return true;
}

static void reply(struct conn *c, uint64_t cookie, uint16_t type, uint32_t error,
                  const uint8_t *data, uint32_t len, uint64_t offset)
{
    if (c->dead)
        return;
    uint8_t *p;
    /* Large data goes to the socket straight from the arena; small
     * replies of a batch are queued and sent together. */
    if (!error && type == NBD_CMD_READ && len >= (x.batching ? 65536u : 1u)) {
        uint8_t h[32];
        size_t hlen;
        if (!c->structured) {
            p = nbd_put32(h, NBD_SIMPLE_REPLY_MAGIC);
            p = nbd_put32(p, 0);
            nbd_put64(p, cookie);
            hlen = 16;
        } else {
            p = nbd_put32(h, NBD_STRUCTURED_REPLY_MAGIC);
            p = nbd_put16(p, NBD_REPLY_FLAG_DONE);
            p = nbd_put16(p, NBD_REPLY_TYPE_OFFSET_DATA);
            p = nbd_put64(p, cookie);
            p = nbd_put32(p, 8 + len);
            nbd_put64(p, offset);
            hlen = 28;
        }
        if (!reply_direct(c, h, hlen, data, len))
            goto nomem;
        return;
    }
    if (!c->structured) {
        bool with_data = !error && type == NBD_CMD_READ;
        p = outq_add(&c->out, 16 + (with_data ? len : 0));
        if (!p)
            goto nomem;
        p = nbd_put32(p, NBD_SIMPLE_REPLY_MAGIC);
        p = nbd_put32(p, error);
        p = nbd_put64(p, cookie);
        if (with_data)
            memcpy(p, data, len);
    } else if (error) {
        p = outq_add(&c->out, 20 + 6);
        if (!p)
            goto nomem;
        p = nbd_put32(p, NBD_STRUCTURED_REPLY_MAGIC);
        p = nbd_put16(p, NBD_REPLY_FLAG_DONE);
        p = nbd_put16(p, NBD_REPLY_TYPE_ERROR);
        p = nbd_put64(p, cookie);
        p = nbd_put32(p, 6);
        p = nbd_put32(p, error);
        nbd_put16(p, 0);
    } else if (type == NBD_CMD_READ && len) {
        p = outq_add(&c->out, 20 + 8 + len);
        if (!p)
            goto nomem;
        p = nbd_put32(p, NBD_STRUCTURED_REPLY_MAGIC);
        p = nbd_put16(p, NBD_REPLY_FLAG_DONE);
        p = nbd_put16(p, NBD_REPLY_TYPE_OFFSET_DATA);
        p = nbd_put64(p, cookie);
        p = nbd_put32(p, 8 + len);
        p = nbd_put64(p, offset);
        memcpy(p, data, len);
    } else {
        p = outq_add(&c->out, 20);
        if (!p)
            goto nomem;
        p = nbd_put32(p, NBD_STRUCTURED_REPLY_MAGIC);
        p = nbd_put16(p, NBD_REPLY_FLAG_DONE);
        p = nbd_put16(p, NBD_REPLY_TYPE_NONE);
        p = nbd_put64(p, cookie);
        nbd_put32(p, 0);
    }
    return;
nomem:
    c->failed = true;
}

/* ---- the slots: requests on their way to the driver ---------------------- */

static struct slot *slot_new(void)
{
    for (size_t i = 0; i < x.n_slots; i++)
        if (x.slots[i].state == S_FREE)
            return &x.slots[i];
    size_t n = x.n_slots ? x.n_slots * 2 : 64;
    struct slot *s = realloc(x.slots, n * sizeof *s);
    if (!s)
        return NULL;
    memset(s + x.n_slots, 0, (n - x.n_slots) * sizeof *s);
    x.slots = s;
    size_t first = x.n_slots;
    x.n_slots = n;
    return &x.slots[first];
}

static uint64_t slot_id(const struct slot *s)
{
    return (uint64_t)s->gen << 32 | (uint64_t)(s - x.slots);
}

/* ---- the shared arena ----------------------------------------------------- */

static int32_t area_get(void)
{
    if (!x.arena || !x.areas_free)
        return -1;
    for (uint32_t i = 0; i < x.n_areas; i++)
        if (x.area_state[i] == A_FREE) {
            x.area_state[i] = A_BUSY;
            x.areas_free--;
            return (int32_t)i;
        }
    return -1;
}

static uint8_t *area_addr(int32_t a)
{
    return x.arena + (size_t)a * x.area_size;
}

static void area_put(int32_t a, bool kept)
{
    if (!x.arena || a < 0 || (uint32_t)a >= x.n_areas)
        return; /* the arena went with its driver */
    if (kept) {
        x.area_state[a] = A_KEPT;
    } else {
        x.area_state[a] = A_FREE;
        x.areas_free++;
    }
}

static void arena_drop(void)
{
    if (x.arena)
        munmap(x.arena, x.arena_len);
    x.arena = NULL;
    x.arena_len = 0;
    x.n_areas = x.areas_free = 0;
    free(x.area_state);
    x.area_state = NULL;
    if (x.arena_fd >= 0)
        close(x.arena_fd);
    x.arena_fd = -1;
}

/* The host announced its arena: map it, if it is what it says it is
 * (sealed against shrinking, so that no access past its end can fault). */
static bool arena_take(uint32_t n, uint64_t size)
{
    int fd = x.arena_fd;
    x.arena_fd = -1;
    if (fd < 0)
        return false;
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    bool ok = n && n <= 4096 && size && size <= NBD_PAYLOAD_MAX && !x.arena && seals >= 0 &&
              (seals & F_SEAL_SHRINK) && fstat(fd, &st) == 0 &&
              (uint64_t)st.st_size >= (uint64_t)n * size;
    if (ok) {
        void *a = mmap(NULL, (size_t)n * size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        x.area_state = calloc(n, 1);
        if (a == MAP_FAILED || !x.area_state) {
            if (a != MAP_FAILED)
                munmap(a, (size_t)n * size);
            free(x.area_state);
            x.area_state = NULL;
            ok = false;
        } else {
            x.arena = a;
            x.arena_len = (size_t)n * size;
            x.area_size = size;
            x.n_areas = x.areas_free = n;
        }
    }
    close(fd);
    if (ok)
        logf_("shared arena: %u areas of %zu KiB", n, x.area_size >> 10);
    else
        logf_("the driver's arena is unusable; data goes through the socket");
    return ok;
}

static bool wait_push(struct slot *s)
{
    if (x.wait_len == x.wait_cap) {
        size_t cap = x.wait_cap ? x.wait_cap * 2 : 256;
        uint64_t *q = malloc(cap * sizeof *q);
        if (!q)
            return false;
        for (size_t i = 0; i < x.wait_len; i++)
            q[i] = x.waitq[(x.wait_head + i) % x.wait_cap];
        free(x.waitq);
        x.waitq = q;
        x.wait_cap = cap;
        x.wait_head = 0;
    }
    x.waitq[(x.wait_head + x.wait_len++) % x.wait_cap] = slot_id(s);
    return true;
}

/* The oldest waiting slot, or NULL. */
static struct slot *wait_peek(void)
{
    while (x.wait_len) {
        uint64_t id = x.waitq[x.wait_head];
        struct slot *s = &x.slots[(uint32_t)id];
        if (s->state == S_WAITING && s->gen == (uint32_t)(id >> 32))
            return s;
        x.wait_head = (x.wait_head + 1) % x.wait_cap;
        x.wait_len--;
    }
    return NULL;
}

static void wait_pop(void)
{
    x.wait_head = (x.wait_head + 1) % x.wait_cap;
    x.wait_len--;
}

/* Frees the slot and what it holds (its area, its payload); its
 * connection's count is the caller's. */
static void slot_release(struct slot *s)
{
    free(s->payload);
    s->payload = NULL;
    if (s->area >= 0)
        area_put(s->area, false);
    s->area = -1;
    s->state = S_FREE;
    s->gen++;
}

/* Answers the slot's client (unless the slot was abandoned) and frees it. */
static void slot_finish(struct slot *s, uint32_t error, const uint8_t *data)
{
    struct conn *c = s->conn;
    if (s->state != S_ABANDONED)
        reply(c, s->cookie, s->type, error, data, s->length, s->offset);
    if (c->rx == s - x.slots) { /* the export is ending while its payload comes */
        c->rx = -1;
        c->rx_left = 0;
    }
    slot_release(s);
    c->in_flight--;
    if (c->dead && c->in_flight == 0)
        conn_free(c);
    else if (c->failed)
        conn_close(c, "out of memory for a reply");
    else if (x.batching)
        c->dirty = true;
    else
        conn_flush(c);
}

/* Ends a batch of replies: one send per connection. */
static void batch_end(void)
{
    x.batching = false;
    for (struct conn *c = x.conns, *next; c; c = next) {
        next = c->next;
        if (c->dirty && !c->dead) {
            c->dirty = false;
            conn_flush(c);
        }
    }
}

/* Sends a request to the driver: through an area of the shared arena
 * (from `in`, the client's bytes, or the slot's payload), or inline
 * without the arena.  False when it has to wait for an area. */
static bool backend_send_from(struct slot *s, const uint8_t *in)
{
    bool data = s->type == NBD_CMD_WRITE;
    if (x.arena && s->area < 0) {
        int32_t a = area_get();
        if (a < 0)
            return false;
        s->area = a;
        if (data)
            memcpy(area_addr(a), in ? in : s->payload, s->length);
    }
    if (x.arena)
        data = false; /* it is in the area */
    uint8_t *p = outq_add(&x.bout, sizeof(struct blk_req) + (data ? s->length : 0));
    if (!p) {
        slot_finish(s, NBD_ENOMEM, NULL);
        return true;
    }
    struct blk_req r = {.magic = BLK_REQ_MAGIC,
                        .type = s->type,
                        .flags = (uint16_t)(((s->flags & NBD_CMD_FLAG_FUA) ? BLK_FUA : 0) |
                                            ((s->flags & NBD_CMD_FLAG_NO_HOLE) ? BLK_NO_HOLE : 0)),
                        .id = slot_id(s),
                        .offset = s->offset,
                        .length = s->length,
                        .area = s->area >= 0 ? (uint32_t)s->area + 1 : 0};
    memcpy(p, &r, sizeof r);
    if (data)
        memcpy(p + sizeof r, in ? in : s->payload, s->length);
    free(s->payload);
    s->payload = NULL;
    s->state = S_SENT;
    s->deadline = now_ms() + x.deadline_ms;
    return true;
}

/* Sends the waiting requests, oldest first, while there are areas. */
static void backend_send_waiting(void)
{
    struct slot *s;
    while (x.backend >= 0 && (s = wait_peek())) {
        if (!backend_send_from(s, NULL))
            break;
        wait_pop();
    }
}

static void backend_flush(void)
{
    if (x.backend < 0)
        return;
    if (outq_flush(&x.bout, x.backend, NULL) < 0)
        return; /* the hang-up arrives through epoll */
    struct epoll_event ev = {.events = EPOLLIN | (x.bout.head ? EPOLLOUT : 0u),
                             .data.ptr = &x.backend};
    if (ev.events != x.backend_events)
        epoll_ctl(x.epfd, EPOLL_CTL_MOD, x.backend, &ev);
    x.backend_events = ev.events;
}

static void backend_detach(const char *why)
{
    if (x.backend < 0)
        return;
    size_t held = 0, waiting = 0;
    for (size_t i = 0; i < x.n_slots; i++) {
        held += x.slots[i].state == S_SENT || x.slots[i].state == S_ABANDONED;
        waiting += x.slots[i].state == S_WAITING;
    }
    logf_("driver detached (%s); failing the %zu requests it held (%zu wait for a driver)", why,
          held, waiting);
    epoll_ctl(x.epfd, EPOLL_CTL_DEL, x.backend, NULL);
    close(x.backend);
    x.backend = -1;
    outq_clear(&x.bout);
    x.bin_len = 0;
    /* A WRITE whose payload is coming into an area goes on into a buffer
     * of its own, and waits for the next driver like the others. */
    for (struct conn *c = x.conns, *next; c; c = next) {
        next = c->next;
        struct slot *s = c->rx >= 0 ? &x.slots[c->rx] : NULL;
        if (!s || s->area < 0)
            continue;
        size_t have = s->length - c->rx_left;
        s->payload = malloc(s->length ? s->length : 1);
        if (!s->payload) {
            conn_close(c, "out of memory for a WRITE's payload");
            continue;
        }
        memcpy(s->payload, area_addr(s->area), have);
        area_put(s->area, false);
        s->area = -1;
        c->rx_dst = s->payload + have;
    }
    arena_drop(); /* the driver's memory: its areas go with it */
    uint64_t until = now_ms() + x.detached_ms;
    for (size_t i = 0; i < x.n_slots; i++) {
        struct slot *s = &x.slots[i];
        if (s->state == S_SENT || s->state == S_ABANDONED)
            slot_finish(s, NBD_EIO, NULL);
        else if (s->state == S_WAITING && s->deadline > until)
            s->deadline = until;
    }
}

static void backend_attach(int fd)
{
    backend_detach("a new driver attached");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    x.backend = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &x.backend};
    epoll_ctl(x.epfd, EPOLL_CTL_ADD, fd, &ev);
    x.backend_events = EPOLLIN;
    logf_("driver attached");
    uint64_t deadline = now_ms() + x.deadline_ms;
    for (size_t i = 0; i < x.n_slots; i++)
        if (x.slots[i].state == S_WAITING)
            x.slots[i].deadline = deadline;
    backend_send_waiting();
    backend_flush();
}

static void backend_readable(void)
{
    for (;;) {
        if (x.bin_cap - x.bin_len < 65536) {
            size_t cap = x.bin_cap ? x.bin_cap * 2 : 1u << 20;
            uint8_t *b = realloc(x.bin, cap);
            if (!b) {
                backend_detach("out of memory");
                return;
            }
            x.bin = b;
            x.bin_cap = cap;
        }
        char cbuf[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {x.bin + x.bin_len, x.bin_cap - x.bin_len};
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
        ssize_t n = recvmsg(x.backend, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            backend_detach("the driver closed its end");
            return;
        }
        if (n < 0)
            break;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm), sizeof fd);
                if (x.arena_fd >= 0)
                    close(x.arena_fd);
                x.arena_fd = fd; /* its BLK_ARENA_MAGIC message is in these bytes */
            }
        /* Less than there was room for: the socket is empty for now (no
         * recvmsg more to hear EAGAIN; epoll says when it is not). */
        bool drained = (size_t)n < iov.iov_len;
        x.bin_len += (size_t)n;
        size_t off = 0;
        bool freed = false;
        x.batching = true;
        while (x.bin_len - off >= sizeof(struct blk_rep)) {
            struct blk_rep r;
            memcpy(&r, x.bin + off, sizeof r);
            if (r.magic == BLK_ARENA_MAGIC) {
                freed |= arena_take(r.length, r.id);
                off += sizeof r;
                continue;
            }
            if (r.magic == BLK_RELEASE_MAGIC) {
                if (!x.arena || r.id >= x.n_areas || x.area_state[r.id] != A_KEPT) {
                    batch_end();
                    backend_detach("the driver released an area it did not hold");
                    return;
                }
                area_put((int32_t)r.id, false);
                logf_("area %u is back from the driver (it held a failed task)", (unsigned)r.id);
                freed = true;
                off += sizeof r;
                continue;
            }
            uint32_t idx = (uint32_t)r.id;
            struct slot *s = idx < x.n_slots ? &x.slots[idx] : NULL;
            bool in_area = r.flags & BLK_REP_IN_AREA;
            if (r.magic != BLK_REP_MAGIC || !s || s->gen != (uint32_t)(r.id >> 32) ||
                (s->state != S_SENT && s->state != S_ABANDONED) || r.length > NBD_PAYLOAD_MAX ||
                (r.length && (r.error || s->type != NBD_CMD_READ || r.length != s->length)) ||
                (r.flags & ~(BLK_REP_IN_AREA | BLK_REP_KEEP)) ||
                ((r.flags & BLK_REP_KEEP) && (s->area < 0 || !r.error)) ||
                (in_area && (r.error || r.length || s->area < 0 || s->type != NBD_CMD_READ))) {
                logf_("bad reply: magic %x id %llx error %u length %u flags %x", r.magic,
                      (unsigned long long)r.id, r.error, r.length, r.flags);
                batch_end();
                backend_detach("the driver sent a bad reply");
                return;
            }
            if (x.bin_len - off < sizeof r + r.length)
                break;
            if (s->area >= 0) {
                freed = true;
                if (r.flags & BLK_REP_KEEP) { /* the driver may still write there */
                    logf_("area %d stays with the driver until it lets go", s->area);
                    area_put(s->area, true);
                    s->area = -1;
                }
            }
            slot_finish(s, r.error, in_area ? area_addr(s->area) : x.bin + off + sizeof r);
            off += sizeof r + r.length;
        }
        batch_end();
        if (freed) {
            backend_send_waiting();
            backend_flush();
        }
        if (off) { /* a partial message stays where it is until it is whole */
            memmove(x.bin, x.bin + off, x.bin_len - off);
            x.bin_len -= off;
        }
        if (x.bin_cap - x.bin_len < sizeof(struct blk_rep) + NBD_PAYLOAD_MAX) {
            size_t cap = sizeof(struct blk_rep) + NBD_PAYLOAD_MAX + (1u << 20);
            if (cap > x.bin_cap) {
                uint8_t *b = realloc(x.bin, cap);
                if (!b) {
                    backend_detach("out of memory");
                    return;
                }
                x.bin = b;
                x.bin_cap = cap;
            }
        }
        if (drained)
            break;
    }
}

/* ---- the handshake ------------------------------------------------------- */

static uint16_t transmission_flags(void)
{
    return NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM |
           NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_CAN_MULTI_CONN;
}

static void opt_reply(struct conn *c, uint32_t option, uint32_t type, const uint8_t *data,
                      uint32_t len)
{
    uint8_t *p = outq_add(&c->out, 20 + len);
    if (!p) {
        c->failed = true;
        return;
    }
    p = nbd_put64(p, NBD_REPLY_MAGIC_OPT);
    p = nbd_put32(p, option);
    p = nbd_put32(p, type);
    p = nbd_put32(p, len);
    if (len)
        memcpy(p, data, len);
}

static bool name_ok(const uint8_t *name, uint32_t len)
{
    return len == 0 || (len == strlen(x.name) && memcmp(name, x.name, len) == 0);
}

static void info_export(struct conn *c, uint32_t option)
{
    uint8_t b[12];
    uint8_t *p = nbd_put16(b, NBD_INFO_EXPORT);
    p = nbd_put64(p, x.size);
    nbd_put16(p, transmission_flags());
    opt_reply(c, option, NBD_REP_INFO, b, sizeof b);
}

static void info_block_size(struct conn *c, uint32_t option)
{
    uint8_t b[14];
    uint8_t *p = nbd_put16(b, NBD_INFO_BLOCK_SIZE);
    p = nbd_put32(p, x.block_size); /* the disk layer refuses unaligned requests */
    p = nbd_put32(p, x.block_size);
    nbd_put32(p, NBD_PAYLOAD_MAX);
    opt_reply(c, option, NBD_REP_INFO, b, sizeof b);
}

/* Handles one option; returns its length consumed, 0 if incomplete, -1 to
 * end the connection. */
static long handle_option(struct conn *c, const uint8_t *in, size_t len)
{
    struct nbd_option o;
    if (len < NBD_OPTION_HEADER_SIZE)
        return 0;
    if (nbd_option_parse(in, len, &o) < 0)
        return -1;
    if (len < NBD_OPTION_HEADER_SIZE + o.length)
        return 0;
    const uint8_t *data = in + NBD_OPTION_HEADER_SIZE;
    long used = NBD_OPTION_HEADER_SIZE + (long)o.length;
    switch (o.option) {
    case NBD_OPT_EXPORT_NAME: {
        if (!name_ok(data, o.length))
            return -1; /* this option has no error reply */
        uint8_t *p = outq_add(&c->out, 10 + (c->no_zeroes ? 0 : 124));
        if (!p)
            return -1;
        p = nbd_put64(p, x.size);
        p = nbd_put16(p, transmission_flags());
        if (!c->no_zeroes)
            memset(p, 0, 124);
        c->state = C_TRANS;
        return used;
    }
    case NBD_OPT_ABORT:
        opt_reply(c, o.option, NBD_REP_ACK, NULL, 0);
        outq_flush(&c->out, c->fd, NULL);
        return -2;
    case NBD_OPT_LIST: {
        if (o.length) {
            opt_reply(c, o.option, NBD_REP_ERR_INVALID, NULL, 0);
            return used;
        }
        size_t nl = strlen(x.name);
        uint8_t b[4 + 256];
        nbd_put32(b, (uint32_t)nl);
        memcpy(b + 4, x.name, nl);
        opt_reply(c, o.option, NBD_REP_SERVER, b, (uint32_t)(4 + nl));
        opt_reply(c, o.option, NBD_REP_ACK, NULL, 0);
        return used;
    }
    case NBD_OPT_STRUCTURED_REPLY:
        if (o.length) {
            opt_reply(c, o.option, NBD_REP_ERR_INVALID, NULL, 0);
            return used;
        }
        c->structured = true;
        opt_reply(c, o.option, NBD_REP_ACK, NULL, 0);
        return used;
    case NBD_OPT_INFO:
    case NBD_OPT_GO: {
        const uint8_t *name, *info;
        uint32_t name_len;
        uint16_t n_info;
        if (nbd_info_parse(data, o.length, &name, &name_len, &n_info, &info) < 0) {
            opt_reply(c, o.option, NBD_REP_ERR_INVALID, NULL, 0);
            return used;
        }
        if (!name_ok(name, name_len)) {
            opt_reply(c, o.option, NBD_REP_ERR_UNKNOWN, NULL, 0);
            return used;
        }
        info_export(c, o.option);
        info_block_size(c, o.option);
        opt_reply(c, o.option, NBD_REP_ACK, NULL, 0);
        if (o.option == NBD_OPT_GO)
            c->state = C_TRANS;
        return used;
    }
    default:
        opt_reply(c, o.option, NBD_REP_ERR_UNSUP, NULL, 0);
        return used;
    }
}

/* ---- transmission -------------------------------------------------------- */

/* The WRITE r takes slot s and area a, whose first `have` bytes of the
 * payload are in place; the rest is to come from the socket. */
static void rx_begin(struct conn *c, struct slot *s, const struct nbd_request *r, int32_t a,
                     size_t have)
{
    *s = (struct slot){.state = S_RECEIVING,
                       .gen = s->gen,
                       .conn = c,
                       .cookie = r->cookie,
                       .offset = r->offset,
                       .type = r->type,
                       .flags = r->flags,
                       .length = r->length,
                       .area = a};
    c->in_flight++;
    c->rx = s - x.slots;
    c->rx_dst = area_addr(a) + have;
    c->rx_left = r->length - have;
    c->rx_ms = now_ms();
    c->in_need = 0;
}

/* A WRITE whose payload is not all here yet: when it can go to the
 * driver at once (a free area, no older request waiting), its payload
 * goes into the area, the bytes at hand now and the rest straight from
 * the socket (conn_readable), so it is copied once on its way in.  The
 * first `have` bytes of the payload are at `part`.  False: it waits in
 * the connection's buffer instead. */
static bool rx_start(struct conn *c, const struct nbd_request *r, const uint8_t *part, size_t have)
{
    if (r->type != NBD_CMD_WRITE || x.backend < 0 || !x.arena || wait_peek() ||
        nbd_request_check(r, x.size) || !x.areas_free)
        return false;
    struct slot *s = slot_new();
    if (!s)
        return false;
    int32_t a = area_get();
    memcpy(area_addr(a), part, have);
    rx_begin(c, s, r, a, have);
    return true;
}

/* The payload of the connection's WRITE is whole: it goes to the driver,
 * or waits for one. */
static void rx_done(struct conn *c)
{
    struct slot *s = &x.slots[c->rx];
    c->rx = -1;
    s->state = S_WAITING;
    s->deadline = now_ms() + (x.backend >= 0 ? x.deadline_ms : x.detached_ms);
    if (s->area >= 0) { /* in its area: the driver is the same as when it started */
        backend_send_from(s, NULL);
        return;
    }
    if (x.backend >= 0 && !wait_peek() && backend_send_from(s, NULL))
        return;
    if (!wait_push(s))
        slot_finish(s, NBD_ENOMEM, NULL);
}

/* Handles one request; returns bytes consumed, 0 if incomplete, -1 to end
 * the connection. */
static long handle_request(struct conn *c, const uint8_t *in, size_t len)
{
    if (len < NBD_REQUEST_SIZE)
        return 0;
    struct nbd_request r;
    int v = nbd_request_parse(in, len, &r);
    if (v == NBD_BAD_MAGIC)
        return -1;
    if (v == NBD_TOO_BIG)
        return -3;
    size_t payload = r.type == NBD_CMD_WRITE ? r.length : 0;
    c->write_guess = payload;
    if (len < NBD_REQUEST_SIZE + payload) {
        if (rx_start(c, &r, in + NBD_REQUEST_SIZE, len - NBD_REQUEST_SIZE))
            return (long)len;
        c->in_need = NBD_REQUEST_SIZE + payload;
        return 0;
    }
    c->in_need = 0;
    long used = (long)(NBD_REQUEST_SIZE + payload);
    if (r.type == NBD_CMD_DISC)
        return -2;
    uint32_t err = nbd_request_check(&r, x.size);
    if (err) {
        reply(c, r.cookie, r.type, err, NULL, 0, r.offset);
        return used;
    }
    struct slot *s = slot_new();
    if (!s) {
        reply(c, r.cookie, r.type, NBD_ENOMEM, NULL, 0, r.offset);
        return used;
    }
    *s = (struct slot){.state = S_WAITING,
                       .gen = s->gen,
                       .conn = c,
                       .cookie = r.cookie,
                       .offset = r.offset,
                       .type = r.type,
                       .flags = r.flags,
                       .length = r.length,
                       .area = -1,
                       .deadline = now_ms() + (x.backend >= 0 ? x.deadline_ms : x.detached_ms)};
    c->in_flight++;
    /* Straight to the driver (the data into the shared arena) unless
     * older requests wait or no area is free. */
    if (x.backend >= 0 && !wait_peek() && backend_send_from(s, in + NBD_REQUEST_SIZE))
        return used;
    if (payload) {
        s->payload = malloc(payload);
        if (!s->payload) {
            s->state = S_FREE;
            c->in_flight--;
            reply(c, r.cookie, r.type, NBD_ENOMEM, NULL, 0, r.offset);
            return used;
        }
        memcpy(s->payload, in + NBD_REQUEST_SIZE, payload);
    }
    if (!wait_push(s)) {
        slot_finish(s, NBD_ENOMEM, NULL);
        return used;
    }
    return used;
}

/* Receives more of the WRITE payload c is taking straight into its area;
 * 1 when it is whole (rx_done ran), 0 when more is to come, -1 when the
 * connection ended (c may be gone). */
static int rx_recv(struct conn *c)
{
    ssize_t n = recv(c->fd, c->rx_dst, c->rx_left, MSG_DONTWAIT);
    if (n == 0) {
        conn_close(c, "the client hung up in the middle of a message");
        return -1;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        conn_close(c, strerror(errno));
        return -1;
    }
    c->rx_dst += n;
    c->rx_left -= (size_t)n;
    c->rx_ms = now_ms();
    if (c->rx_left)
        return 0;
    rx_done(c);
    return 1;
}

/* A request's header is due, nothing of it is buffered, and the last
 * request was a large WRITE of `guess` bytes: one recvmsg takes the
 * header into the connection's buffer and the next `guess` bytes straight
 * into the free area `a`.  When the header is a WRITE of that length (a
 * client writing in one size), its payload is where it goes, with no
 * second recv and no copy.  Otherwise the bytes are put back in order: a
 * shorter WRITE's following requests, or all of them after another
 * header, into the buffer (at most guess bytes).  Returns what recvmsg
 * returned; *asked is what it asked for. */
static ssize_t recv_header_and_payload(struct conn *c, int32_t a, size_t guess, size_t *asked)
{
    const size_t h = NBD_REQUEST_SIZE;
    uint8_t *area = area_addr(a);
    struct iovec iov[2] = {{c->in, h}, {area, guess}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    *asked = h + guess;
    ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT);
    if (n <= (ssize_t)h) {
        area_put(a, false);
        if (n > 0)
            c->in_len = (size_t)n;
        return n;
    }
    size_t in_area = (size_t)n - h;
    struct nbd_request r;
    struct slot *s = NULL;
    if (nbd_request_parse(c->in, h, &r) == 0 && r.type == NBD_CMD_WRITE && r.length &&
        !nbd_request_check(&r, x.size))
        s = slot_new();
    if (!s) { /* not a WRITE that can start: all of it parsed from the buffer */
        memcpy(c->in + h, area, in_area);
        c->in_len = (size_t)n;
        area_put(a, false);
        return n;
    }
    size_t len = r.length;
    c->write_guess = len;
    rx_begin(c, s, &r, a, len < in_area ? len : in_area);
    if (len < in_area) { /* shorter than guessed: what follows it goes back */
        memcpy(c->in, area + len, in_area - len);
        c->in_len = in_area - len;
    }
    if (!c->rx_left)
        rx_done(c);
    return n;
}

static void conn_readable(struct conn *c)
{
    size_t cap = NBD_PAYLOAD_MAX + NBD_REQUEST_SIZE;
    if (c->in_cap < cap) {
        uint8_t *b = realloc(c->in, cap);
        if (!b) {
            conn_close(c, "out of memory");
            return;
        }
        c->in = b;
        c->in_cap = cap;
    }
    if (c->rx >= 0) { /* a WRITE's payload, straight where it goes */
        if (rx_recv(c) <= 0)
            return;
        backend_flush();
        conn_flush(c);
        return;
    }
    /* After a large WRITE taken whole in one recvmsg the next is likely
     * there too: it is taken now, not after another epoll_wait. */
    for (unsigned turn = 0;; turn++) {
        /* Many requests at once, but of a large WRITE only its start (the
         * rest goes straight into an area) unless it has to wait here whole;
         * with a request's header due and an area free, the header and what
         * follows it in one recvmsg, a WRITE's payload into the area. */
        size_t room = c->in_cap - c->in_len;
        size_t goal = c->in_need > RECV_CHUNK ? c->in_need : RECV_CHUNK;
        size_t want = goal > c->in_len ? goal - c->in_len : RECV_CHUNK;
        size_t asked = want < room ? want : room;
        size_t guess = c->write_guess < x.area_size ? c->write_guess : x.area_size;
        int32_t a = guess > RECV_CHUNK && c->state == C_TRANS && c->in_len == 0 && !c->failed &&
                            c->in_flight < CONN_MAX_IN_FLIGHT && x.backend >= 0 && !wait_peek()
                        ? area_get()
                        : -1;
        ssize_t n = a >= 0 ? recv_header_and_payload(c, a, guess, &asked)
                           : recv(c->fd, c->in + c->in_len, asked, MSG_DONTWAIT);
        if (n == 0) {
            conn_close(c, c->in_len ? "the client hung up in the middle of a message" : NULL);
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_close(c, strerror(errno));
                return;
            }
            break; /* an earlier turn's requests still go out */
        }
        if (a < 0) /* else recv_header_and_payload placed the bytes */
            c->in_len += (size_t)n;
        size_t off = 0;
        while (!c->failed && off < c->in_len && c->in_flight < CONN_MAX_IN_FLIGHT) {
            long used;
            if (c->state == C_FLAGS) {
                if (c->in_len - off < 4)
                    break;
                uint32_t f = nbd_be32(c->in + off);
                if (!(f & NBD_FLAG_FIXED_NEWSTYLE) ||
                    (f & ~(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES))) {
                    conn_close(c, "bad client flags");
                    return;
                }
                c->no_zeroes = f & NBD_FLAG_NO_ZEROES;
                c->state = C_OPTS;
                used = 4;
            } else if (c->state == C_OPTS) {
                used = handle_option(c, c->in + off, c->in_len - off);
            } else {
                used = handle_request(c, c->in + off, c->in_len - off);
            }
            if (used == 0)
                break;
            if (used < 0) {
                conn_close(c, used == -1   ? "garbage from the client (bad magic or length)"
                              : used == -3 ? "a write larger than the export's maximum"
                                           : NULL);
                return;
            }
            off += (size_t)used;
        }
        if (c->failed) {
            conn_close(c, "out of memory for a reply");
            return;
        }
        if (off) {
            memmove(c->in, c->in + off, c->in_len - off);
            c->in_len -= off;
        }
        /* A WRITE whose payload goes on in the socket: the recv above got all
         * it asked for, so the rest is likely there; take it now, not after
         * another epoll_wait (one syscall less a large WRITE). */
        if (c->rx >= 0 && (size_t)n == asked && rx_recv(c) < 0)
            return;
        if (a < 0 || (size_t)n != asked || c->rx >= 0 || c->in_len || turn == 7)
            break;
        /* Another large WRITE is likely next: the one just taken goes to
         * the driver before its receive, so the device copies it while
         * the next payload comes in (one send a large WRITE; held to the
         * end of the turns, the device idled until every payload at hand
         * was in). */
        backend_flush();
        /* The driver's answers that came meanwhile go to the client now,
         * not after the last payload at hand is in: a client at its queue
         * depth sends its next request only once it has one. */
        if (x.reply_between && x.backend >= 0) {
            c->in_flight++; /* c stays while the answers go out */
            backend_readable();
            c->in_flight--;
            if (c->dead) {
                if (c->in_flight == 0)
                    conn_free(c);
                return;
            }
        }
    }
    backend_flush();
    conn_flush(c);
}

static void accept_on(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (lfd == x.tcp_fd) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        /* Room for a whole READ reply: sent from its area in one sendmsg,
         * not a socket's default 208 KiB at a time with the rest copied
         * into the queue and sent at later wake-ups.  Past the system's
         * wmem_max only with CAP_NET_ADMIN (SO_SNDBUFFORCE). */
        int sndbuf = (int)NBD_PAYLOAD_MAX;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) < 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        struct conn *c = calloc(1, sizeof *c);
        uint8_t *p = c ? outq_add(&c->out, 18) : NULL;
        if (!p) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->rx = -1;
        c->last_write_ms = now_ms();
        p = nbd_put64(p, NBD_MAGIC);
        p = nbd_put64(p, NBD_IHAVEOPT);
        nbd_put16(p, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        epoll_ctl(x.epfd, EPOLL_CTL_ADD, fd, &ev);
        c->events = ev.events;
        c->next = x.conns;
        x.conns = c;
        conn_flush(c);
    }
}

/* ---- odkd's channel ------------------------------------------------------ */

/* A loopback TCP listener odkd bound for this export (storage.c,
 * op_export_tcp): served as the Unix socket is.  One at most. */
static void tcp_attach(int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &x.tcp_fd};
    if (x.tcp_fd >= 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0 ||
        epoll_ctl(x.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        return;
    }
    x.tcp_fd = fd;
    logf_("also listening on a loopback TCP port");
}

static void control_readable(void)
{
    char byte[64];
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {byte, sizeof byte};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(CONTROL_FD, &mh, MSG_CMSG_CLOEXEC);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        x.stopping = true;
        return;
    }
    int fd = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    if (fd >= 0 && byte[0] == 't')
        tcp_attach(fd);
    else if (fd >= 0)
        backend_attach(fd);
    else
        x.stopping = true;
}

static void tick(void)
{
    uint64_t now = now_ms();
    for (size_t i = 0; i < x.n_slots; i++) {
        struct slot *s = &x.slots[i];
        if (s->state == S_WAITING && now >= s->deadline) {
            slot_finish(s, NBD_EIO, NULL);
        } else if (s->state == S_SENT && now >= s->deadline) {
            /* The driver may still answer: the slot stays taken until it
             * does or detaches, but the client hears now. */
            reply(s->conn, s->cookie, s->type, NBD_EIO, NULL, 0, s->offset);
            s->state = S_ABANDONED;
            conn_flush(s->conn);
        }
    }
    for (struct conn *c = x.conns, *next; c; c = next) {
        next = c->next;
        if (!c->dead && c->out.head && now - c->last_write_ms >= x.stall_ms)
            conn_close(c, "the client stopped reading its replies");
        else if (!c->dead && c->rx >= 0 && (c->events & EPOLLIN) && now - c->rx_ms >= x.stall_ms)
            conn_close(c, "the client stopped in the middle of a WRITE's payload");
    }
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: odk-nbd-export SOCKET SIZE BLOCK_SIZE NAME\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Replies of up to 4 MiB are allocated and freed all the time: keep
     * them on the heap rather than fresh mmaps that fault in every page. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    x.path = argv[1];
    x.size = strtoull(argv[2], NULL, 10);
    x.block_size = (uint32_t)strtoul(argv[3], NULL, 10);
    x.name = argv[4];
    if (strlen(x.name) > 255 || !x.block_size) {
        fprintf(stderr, "odk-nbd-export: bad name or block size\n");
        return 2;
    }
    x.deadline_ms = env_ms("ODK_NBD_DEADLINE_MS", DEFAULT_DEADLINE_MS);
    x.detached_ms = env_ms("ODK_NBD_DETACHED_MS", DEFAULT_DETACHED_MS);
    x.stall_ms = env_ms("ODK_NBD_STALL_MS", DEFAULT_STALL_MS);
    x.reply_between = env_ms("ODK_NBD_REPLY_BETWEEN", 1) != 0;
    x.epfd = epoll_create1(EPOLL_CLOEXEC);
    int lflags = fcntl(LISTEN_FD, F_GETFL);
    if (lflags < 0) {
        logf_("no listening socket on fd 4");
        return 1;
    }
    fcntl(LISTEN_FD, F_SETFL, lflags | O_NONBLOCK);
    fcntl(LISTEN_FD, F_SETFD, FD_CLOEXEC);
    x.unix_fd = LISTEN_FD;
    fcntl(CONTROL_FD, F_SETFD, FD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &x.unix_fd};
    epoll_ctl(x.epfd, EPOLL_CTL_ADD, x.unix_fd, &ev);
    static int control = CONTROL_FD;
    ev.data.ptr = &control;
    if (epoll_ctl(x.epfd, EPOLL_CTL_ADD, CONTROL_FD, &ev) < 0) {
        logf_("no channel to odkd on fd 3");
        unlink(x.path);
        return 1;
    }
    uint64_t last_tick = now_ms();
    while (!x.stopping) {
        struct epoll_event evs[64];
        int n = epoll_wait(x.epfd, evs, 64, TICK_MS);
        /* The driver's answers first: a client's reply does not wait
         * behind the payloads the clients' events will take in. */
        for (int i = 1; x.reply_between && i < n; i++)
            if (evs[i].data.ptr == &x.backend) {
                struct epoll_event t = evs[0];
                evs[0] = evs[i];
                evs[i] = t;
                break;
            }
        for (int i = 0; i < n && !x.stopping; i++) {
            void *p = evs[i].data.ptr;
            if (p == &control)
                control_readable();
            else if (p == &x.unix_fd || p == &x.tcp_fd)
                accept_on(*(int *)p);
            else if (p == &x.backend) {
                if (x.backend < 0)
                    continue;
                if (evs[i].events & EPOLLOUT)
                    backend_flush();
                if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    backend_readable();
            } else {
                struct conn *c = p;
                if (c->dead)
                    continue;
                if (evs[i].events & EPOLLOUT)
                    conn_flush(c);
                if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                    conn_readable(c);
            }
        }
        if (now_ms() - last_tick >= TICK_MS) {
            last_tick = now_ms();
            tick();
        }
    }
    /* The disk is gone: tell every client, then leave. */
    unlink(x.path);
    for (size_t i = 0; i < x.n_slots; i++)
        if (x.slots[i].state != S_FREE) {
            x.slots[i].state = x.slots[i].state == S_ABANDONED ? S_ABANDONED : S_SENT;
            slot_finish(&x.slots[i], NBD_ESHUTDOWN, NULL);
        }
    for (struct conn *c = x.conns, *next; c; c = next) {
        next = c->next;
        if (!c->dead) {
            fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
            struct timeval tv = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            outq_flush(&c->out, c->fd, NULL);
            shutdown(c->fd, SHUT_RDWR);
        }
        conn_close(c, NULL);
    }
    logf_("export ended");
    return 0;
}
