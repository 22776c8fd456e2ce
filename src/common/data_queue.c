/* SPDX-License-Identifier: MIT */
/* Data queues: records in an odk_ring in shared memory, eventfd (or, for
 * the data direction, socket) wake-ups only when the other side sleeps.  See
 * include/odk/data_queue.h and data_queue_internal.h. */
#include "odk/data_queue.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/data_queue_internal.h"
#include "common/spin.h"
#include "odk/ring.h"

#define CTL_BYTES 4096u           /* the flags page before the ring */
#define SPIN_NS (20u * 1000u)      /* consumer spin before sleeping */
#define MIN_SIZE 4096u

struct dq_ctl {
    _Alignas(64) _Atomic uint32_t consumer_waiting;
    _Alignas(64) _Atomic uint32_t producer_waiting;
};

struct odk_data_queue {
    int mfd, data_fd, space_fd;
    /* DATA_QUEUE_WAKE_SOCKET's producer: data_fd is its end of a socket
     * pair and this the consumer's end (exported); -1 otherwise. */
    int data_peer;
    /* data_fd is a socket (either side): the producer kicks with send, the
     * consumer sleeps in a read of it, its timeout SO_RCVTIMEO (rcvtimeo_ms
     * the one set now: -2 none yet, -1 forever). */
    bool sock;
    int rcvtimeo_ms;
    uint32_t size;
    void *map;
    size_t map_len;
    struct dq_ctl *ctl;
    odk_ring ring;
    bool kicked; /* this consumer woke on data_fd and left its count for later */
};

static void dq_close(odk_data_queue *q)
{
    if (q->map)
        munmap(q->map, q->map_len);
    if (q->mfd >= 0)
        close(q->mfd);
    if (q->data_fd >= 0)
        close(q->data_fd);
    if (q->data_peer >= 0)
        close(q->data_peer);
    if (q->space_fd >= 0)
        close(q->space_fd);
    free(q);
}

void odk_data_queue_free(odk_data_queue *q)
{
    if (q)
        dq_close(q);
}

static bool good_size(uint32_t size)
{
    return size >= MIN_SIZE && size <= ODK_RING_MAX_SIZE && (size & (size - 1)) == 0;
}

static int map_queue(odk_data_queue *q)
{
    q->map_len = CTL_BYTES + odk_ring_bytes(q->size);
    q->map = mmap(NULL, q->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, q->mfd, 0);
    if (q->map == MAP_FAILED) {
        q->map = NULL;
        return ODK_E_NOMEM;
    }
    q->ctl = q->map;
    return ODK_OK;
}

int odk_data_queue_create(uint32_t size, odk_data_queue **out)
{
    return data_queue_create_wake(size, DATA_QUEUE_WAKE_EVENTFD, out);
}

int data_queue_create_wake(uint32_t size, enum data_queue_wake wake, odk_data_queue **out)
{
    if (out)
        *out = NULL;
    if (!out || !good_size(size))
        return ODK_E_INVALID;
    odk_data_queue *q = calloc(1, sizeof *q);
    if (!q)
        return ODK_E_NOMEM;
    q->size = size;
    q->data_peer = -1;
    q->rcvtimeo_ms = -2;
    q->mfd = memfd_create("odk-data-queue", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (wake == DATA_QUEUE_WAKE_SOCKET) {
        /* Blocking, so the consumer's read sleeps (the producer's sends
         * never wait: MSG_DONTWAIT); one way only: the consumer's end
         * cannot write to the producer. */
        int p[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) == 0) {
            shutdown(p[0], SHUT_WR);
            shutdown(p[1], SHUT_RD);
            q->data_peer = p[0];
            q->data_fd = p[1];
            q->sock = true;
        } else {
            q->data_fd = -1;
        }
    } else {
        q->data_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    q->space_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int st = ODK_E_IO;
    if (q->mfd >= 0 && q->data_fd >= 0 && q->space_fd >= 0 &&
        ftruncate(q->mfd, (off_t)(CTL_BYTES + odk_ring_bytes(size))) == 0 &&
        fcntl(q->mfd, F_ADD_SEALS, F_SEAL_SHRINK) == 0)
        st = map_queue(q);
    if (st == ODK_OK)
        st = odk_ring_format(&q->ring, (uint8_t *)q->map + CTL_BYTES, odk_ring_bytes(size), size);
    if (st < 0) {
        dq_close(q);
        return st;
    }
    *out = q;
    return ODK_OK;
}

int odk_data_queue_export(const odk_data_queue *q, int fds[3], uint32_t *size)
{
    if (!q || !fds || !size)
        return ODK_E_INVALID;
    fds[0] = q->mfd;
    fds[1] = q->data_peer >= 0 ? q->data_peer : q->data_fd;
    fds[2] = q->space_fd;
    *size = q->size;
    return ODK_OK;
}

int odk_data_queue_attach(int fds[3], uint32_t size, odk_data_queue **out)
{
    if (out)
        *out = NULL;
    if (!fds)
        return ODK_E_INVALID;
    odk_data_queue *q = out ? calloc(1, sizeof *q) : NULL;
    if (!q) {
        for (int i = 0; i < 3; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        return out ? ODK_E_NOMEM : ODK_E_INVALID;
    }
    q->mfd = fds[0];
    q->data_fd = fds[1];
    q->data_peer = -1;
    q->rcvtimeo_ms = -2;
    q->space_fd = fds[2];
    q->size = size;
    struct stat st;
    int seals = fcntl(q->mfd, F_GET_SEALS);
    int rc = ODK_E_PROTOCOL;
    /* A socket to sleep on must block, whatever the producer made it: the
     * wait sleeps in its read, with SO_RCVTIMEO as the timeout. */
    bool wake_ok = true;
    if (fstat(q->data_fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
        int fl = fcntl(q->data_fd, F_GETFL);
        q->sock = true;
        wake_ok = fl >= 0 && fcntl(q->data_fd, F_SETFL, fl & ~O_NONBLOCK) == 0;
    }
    if (wake_ok && good_size(size) && fstat(q->mfd, &st) == 0 &&
        (uint64_t)st.st_size >= CTL_BYTES + odk_ring_bytes(size) && seals >= 0 &&
        (seals & F_SEAL_SHRINK))
        rc = map_queue(q);
    if (rc == ODK_OK) {
        rc = odk_ring_attach(&q->ring, (uint8_t *)q->map + CTL_BYTES, odk_ring_bytes(size));
        if (rc == ODK_OK && q->ring.size != size)
            rc = ODK_E_PROTOCOL;
    }
    if (rc < 0) {
        dq_close(q);
        return rc;
    }
    *out = q;
    return ODK_OK;
}

static void kick(int fd)
{
    uint64_t one = 1;
    if (write(fd, &one, sizeof one) < 0 && errno != EAGAIN) {
        /* An eventfd write only fails on counter overflow: the reader is
         * already woken. */
    }
}

/* The one system call of a wake-up through a socket: it never waits (a
 * full buffer holds kicks enough) and a consumer gone raises no SIGPIPE. */
static void kick_socket(int fd)
{
    uint64_t one = 1;
    if (send(fd, &one, sizeof one, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        /* EAGAIN: kicks are waiting already; EPIPE: nobody to wake. */
    }
}

static void drain(int fd)
{
    uint64_t n;
    while (read(fd, &n, sizeof n) == sizeof n)
        ;
}

/* Copies len bytes from src into the ring pieces, starting skip bytes in. */
static void scatter(const struct iovec *iov, int n, size_t skip, const void *src, size_t len)
{
    const uint8_t *p = src;
    for (int i = 0; i < n && len; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t k = iov[i].iov_len - skip < len ? iov[i].iov_len - skip : len;
        memcpy((uint8_t *)iov[i].iov_base + skip, p, k);
        p += k;
        len -= k;
        skip = 0;
    }
}

static void gather(const struct iovec *iov, int n, size_t skip, void *dst, size_t len)
{
    uint8_t *p = dst;
    for (int i = 0; i < n && len; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t k = iov[i].iov_len - skip < len ? iov[i].iov_len - skip : len;
        memcpy(p, (uint8_t *)iov[i].iov_base + skip, k);
        p += k;
        len -= k;
        skip = 0;
    }
}

int odk_data_queue_enqueue(odk_data_queue *q, const void *data, uint32_t len)
{
    if (!q || (len && !data))
        return ODK_E_INVALID;
    if (len > q->size / 2)
        return ODK_E_LIMIT;
    size_t need = sizeof(uint32_t) + len;
    struct iovec seg[2];
    int n = odk_ring_reserve(&q->ring, need, seg);
    if (n == 0) {
        /* Ask for a call when there is room, then look once more: the
         * consumer may have made room before it could see our flag. */
        atomic_store_explicit(&q->ctl->producer_waiting, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        n = odk_ring_reserve(&q->ring, need, seg);
        if (n == 0)
            return ODK_E_AGAIN;
        atomic_store_explicit(&q->ctl->producer_waiting, 0, memory_order_relaxed);
    }
    if (n < 0)
        return n;
    scatter(seg, n, 0, &len, sizeof len);
    scatter(seg, n, sizeof len, data, len);
    odk_ring_commit(&q->ring, need);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&q->ctl->consumer_waiting, memory_order_relaxed)) {
        if (q->sock)
            kick_socket(q->data_fd);
        else
            kick(q->data_fd);
    }
    return ODK_OK;
}

int odk_data_queue_space_fd(const odk_data_queue *q)
{
    return q->space_fd;
}

void odk_data_queue_ack_space(odk_data_queue *q)
{
    drain(q->space_fd);
}

int odk_data_queue_dequeue(odk_data_queue *q, void *buf, uint32_t cap, uint32_t *len)
{
    struct iovec seg[2];
    uint32_t rlen;
    if (!q || !len || (cap && !buf))
        return ODK_E_INVALID;
    int n = odk_ring_peek(&q->ring, sizeof rlen, seg);
    if (n <= 0)
        return n == 0 ? ODK_E_AGAIN : n;
    gather(seg, n, 0, &rlen, sizeof rlen);
    if (rlen > q->size / 2)
        return ODK_E_PROTOCOL; /* a producer that lies about its records */
    n = odk_ring_peek(&q->ring, sizeof rlen + rlen, seg);
    if (n <= 0)
        return ODK_E_PROTOCOL; /* the header promised more than was committed */
    *len = rlen;
    if (rlen > cap)
        return ODK_E_LIMIT;
    gather(seg, n, sizeof rlen, buf, rlen);
    odk_ring_consume(&q->ring, sizeof rlen + rlen);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&q->ctl->producer_waiting, memory_order_relaxed)) {
        atomic_store_explicit(&q->ctl->producer_waiting, 0, memory_order_relaxed);
        kick(q->space_fd);
    }
    return ODK_OK;
}

int odk_data_queue_wait(odk_data_queue *q, int timeout_ms)
{
    return data_queue_wait_spin(q, timeout_ms, SPIN_NS);
}

/* The socket's sleep: SO_RCVTIMEO of ms (-1: forever), set only when it
 * changes, so a reader that waits with the same timeout each time makes one
 * system call a wake-up: the read that sleeps, and takes the kick. */
static int sleep_on_socket(odk_data_queue *q, int ms)
{
    if (ms != q->rcvtimeo_ms) {
        struct timeval tv = {.tv_sec = ms > 0 ? ms / 1000 : 0,
                             .tv_usec = ms > 0 ? (ms % 1000) * 1000 : 0};
        if (setsockopt(q->data_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
            return ODK_E_IO;
        q->rcvtimeo_ms = ms;
    }
    uint8_t kicks[64];
    ssize_t n = read(q->data_fd, kicks, sizeof kicks);
    if (n == 0)
        return ODK_E_GONE;
    if (n < 0 && errno != EAGAIN && errno != EINTR)
        return ODK_E_IO;
    return ODK_OK;
}

int data_queue_wait_spin(odk_data_queue *q, int timeout_ms, uint64_t spin_ns)
{
    if (!q)
        return ODK_E_INVALID;
    uint64_t t0 = mono_ns();
    /* One deadline for the whole wait: a spurious wake-up (a kick for a
     * record already taken, EINTR) must not restart the timeout. */
    uint64_t deadline = t0 + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
    while (odk_ring_readable(&q->ring) == 0) {
        uint64_t now = mono_ns();
        if (now - t0 < spin_ns)
            continue;
        int left = -1;
        if (timeout_ms >= 0) {
            if (now >= deadline)
                return ODK_E_TIMEOUT;
            /* Round up, so a wait ending in poll never wakes just short of it. */
            left = (int)((deadline - now + 999999u) / 1000000u);
        }
        /* The count of the kick that woke the last wait was left there, so
         * that the record it announced was taken first: drained now, before
         * the flag that asks for the next kick. */
        if (q->kicked) {
            drain(q->data_fd);
            q->kicked = false;
        }
        atomic_store_explicit(&q->ctl->consumer_waiting, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        int st = ODK_OK;
        if (odk_ring_readable(&q->ring) == 0 && q->sock) {
            /* The read takes the kick as it wakes (a kick left from a
             * record already taken just costs one more turn here). */
            st = sleep_on_socket(q, left);
        } else if (odk_ring_readable(&q->ring) == 0) {
            struct pollfd p = {.fd = q->data_fd, .events = POLLIN};
            if (poll(&p, 1, left) > 0)
                q->kicked = true;
        }
        atomic_store_explicit(&q->ctl->consumer_waiting, 0, memory_order_relaxed);
        if (st == ODK_E_GONE && odk_ring_readable(&q->ring) == 0)
            return ODK_E_GONE; /* the producer closed its end: nothing more comes */
        if (st == ODK_E_IO)
            return st;
    }
    return ODK_OK;
}
