/* SPDX-License-Identifier: MIT */
/* link_sim.c — a link's sim backend (link_backend.h): the connection to
 * a device model's process, over the sim wire (buses/usb/sim_wire.h).
 *
 * Requests (control, map, abort) wait for their reply on a condition
 * variable; transfers are answered by USBW_COMPLETE.  The reader thread
 * owns the socket's receiving side; senders share its sending side under a
 * mutex (a SOCK_SEQPACKET send is one message, never interleaved).
 *
 * A completion runs on the thread that waited for it: when the transfer's
 * queue is idle, the reader runs the callback itself, as that queue
 * (queue_run_here), instead of handing it over and waking the queue's
 * thread; a busy queue gets it in its FIFO as before.  So a completion on
 * the reader may call anything a queue callback may, and three cases need
 * the reader's care: a request or synchronous transfer made from it reads
 * the socket itself until its answer comes (pump), anything completed
 * meanwhile goes into the queue's FIFO; and a link closed from it is freed
 * by the reader once the callback returns.  The reader is woken for a new
 * transfer only when its deadline comes before the one it sleeps until. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buses/usb/sim_wire.h"
#include "common/trace.h"
#include "families/usb/link_backend.h"
#include "families/usb/usb_internal.h"
#include "odk/log.h"
#include "odk/object.h"
#include "odk/status.h"
#include "runtime/runtime_internal.h"

/* Whether the link was closed, for the completions that run after it: a
 * completion queued on a busy queue (the driver's stop, say) runs after
 * the close, and one that succeeded would let the driver go on with the
 * pipes the close freed (the fault campaign's vendor echo: a stream's next
 * transfer on its freed IN pipe).  It runs with ODK_E_CANCELLED, as the
 * close's own do.  Shared by the link and each transfer in flight. */
struct link_life {
    atomic_int refs;
    atomic_bool closed;
};

static struct link_life *life_retain(struct link_life *life)
{
    atomic_fetch_add(&life->refs, 1);
    return life;
}

static void life_release(struct link_life *life)
{
    if (life && atomic_fetch_sub(&life->refs, 1) == 1)
        free(life);
}

/* A request waiting for its reply. */
struct waiter {
    uint32_t id;
    bool answered;
    struct usb_wire reply;
    void *body; /* where an IN control request's data goes */
    size_t cap, len;
    struct waiter *next;
};

struct xfer {
    uint32_t id;
    uint8_t endpoint;
    uint64_t deadline_ns; /* 0: none */
    bool timed_out, abort_sent;
    odk_memory *buffer; /* retained */
    odk_usb_completion done;
    void *ctx;
    odk_queue *q;
    struct link_life *life; /* retained */
    int status;
    uint32_t actual;
    uint64_t timestamp_ns;
    struct xfer *next;
};

/* A buffer mapped into the device (USBW_MAP), by memory descriptor. */
struct mapping {
    odk_memory *memory; /* retained */
    uint32_t id;
    struct mapping *next;
};

struct sim_link {
    struct usb_link base;
    int fd;
    pthread_t reader;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t next_id;
    struct waiter *waiters;
    struct xfer *xfers;
    struct mapping *mappings;
    struct link_life *life;
    bool gone, stopping;
    bool ended;          /* the reader saw the socket end (it is or will be gone) */
    bool free_on_reader; /* closed from a callback on the reader: it frees l */
    uint64_t reader_until; /* the deadline the reader sleeps until (0: none) */
    int wake[2]; /* a pipe that wakes the reader to recompute deadlines or stop */
};

/* The link whose reader this thread is (NULL on every other thread). */
static _Thread_local struct sim_link *reading;

static bool on_reader(const struct sim_link *l)
{
    return reading == l;
}

static int pump(struct sim_link *l, bool (*done)(void *ctx), void *ctx, uint64_t deadline_ns);

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t timeout_or_default(uint32_t ms)
{
    return ms ? ms : ODK_USB_DEFAULT_TIMEOUT_MS;
}

/* Sends under the lock; fd (when >= 0) goes along in SCM_RIGHTS. */
static int send_locked(struct sim_link *l, const struct usb_wire *w, const void *body,
                       size_t len, int fd)
{
    int e = usb_wire_send(l->fd, w, body, len, fd, 0);
    if (e == -EPIPE || e == -ECONNRESET)
        return ODK_E_GONE;
    return e < 0 ? ODK_E_IO : ODK_OK;
}

static void poke(struct sim_link *l)
{
    char c = 1;
    ssize_t n = write(l->wake[1], &c, 1);
    (void)n; /* a full pipe already wakes the reader */
}

/* Under l->lock (pump's test). */
static bool waiter_answered(void *ctx)
{
    return ((struct waiter *)ctx)->answered;
}

/* Sends a request and waits for its reply (the lock is taken inside). */
static int request(struct sim_link *l, struct usb_wire *w, const void *body, size_t len, int fd,
                   void *reply_body, size_t cap, size_t *reply_len, uint32_t timeout_ms)
{
    struct waiter me = {.body = reply_body, .cap = cap};
    pthread_mutex_lock(&l->lock);
    if (l->gone) {
        pthread_mutex_unlock(&l->lock);
        return ODK_E_GONE;
    }
    w->id = me.id = ++l->next_id ? l->next_id : ++l->next_id;
    me.next = l->waiters;
    l->waiters = &me;
    int st = send_locked(l, w, body, len, fd);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)timeout_or_default(timeout_ms) * 1000000u;
    until.tv_sec += (time_t)(ns / 1000000000u);
    until.tv_nsec = (long)(ns % 1000000000u);
    if (st == ODK_OK && on_reader(l)) {
        /* Nobody else reads the answer: read it here. */
        pthread_mutex_unlock(&l->lock);
        st = pump(l, waiter_answered, &me,
                  (uint64_t)until.tv_sec * 1000000000u + (uint64_t)until.tv_nsec);
        pthread_mutex_lock(&l->lock);
        if (st == ODK_OK && !me.answered)
            st = ODK_E_GONE; /* the link ended or was closed */
    }
    while (st == ODK_OK && !me.answered && !l->gone)
        if (pthread_cond_timedwait(&l->cond, &l->lock, &until) == ETIMEDOUT)
            st = ODK_E_TIMEOUT;
    for (struct waiter **p = &l->waiters; *p; p = &(*p)->next)
        if (*p == &me) {
            *p = me.next;
            break;
        }
    if (st == ODK_OK)
        st = me.answered ? me.reply.status : ODK_E_GONE;
    if (reply_len)
        *reply_len = me.len;
    *w = me.reply;
    pthread_mutex_unlock(&l->lock);
    return st;
}

/* ---- the reader ---------------------------------------------------------- */

static void run_completion(void *arg)
{
    struct xfer *x = arg;
    if (x->status == ODK_OK && atomic_load(&x->life->closed))
        x->status = ODK_E_CANCELLED;
    x->done(x->ctx, x->status, x->actual, x->timestamp_ns);
    life_release(x->life);
    odk_release(x->buffer);
    free(x);
}

/* Ends x (already unlinked): as its queue, here if the queue is idle,
 * else in the queue's FIFO; with no queue (or a cancelled one), here. */
static void deliver(struct xfer *x)
{
    if (x->timed_out && x->status == ODK_E_CANCELLED)
        x->status = ODK_E_TIMEOUT;
    if (!x->timestamp_ns)
        x->timestamp_ns = now_ns();
    if (!x->q || queue_run_here(x->q, run_completion, x) < 0)
        run_completion(x);
}

static struct xfer *unlink_xfer(struct sim_link *l, uint32_t id)
{
    for (struct xfer **p = &l->xfers; *p; p = &(*p)->next)
        if ((*p)->id == id) {
            struct xfer *x = *p;
            *p = x->next;
            x->next = NULL;
            return x;
        }
    return NULL;
}

static void on_message(struct sim_link *l, const struct usb_wire *w, const uint8_t *body,
                       size_t len)
{
    pthread_mutex_lock(&l->lock);
    if (w->op == USBW_COMPLETE) {
        struct xfer *x = unlink_xfer(l, w->id);
        pthread_mutex_unlock(&l->lock);
        if (x) {
            x->status = w->status;
            x->actual = w->actual;
            x->timestamp_ns = w->timestamp_ns;
            deliver(x);
        }
        return;
    }
    for (struct waiter *wt = l->waiters; wt; wt = wt->next) {
        if (wt->id != w->id)
            continue;
        wt->reply = *w;
        wt->len = len < wt->cap ? len : wt->cap;
        if (wt->body && wt->len)
            memcpy(wt->body, body, wt->len);
        wt->answered = true;
        pthread_cond_broadcast(&l->cond);
        break;
    }
    pthread_mutex_unlock(&l->lock);
}

/* The device is gone: every transfer ends with ODK_E_GONE, every waiter
 * wakes. */
static void fail_all(struct sim_link *l)
{
    pthread_mutex_lock(&l->lock);
    l->gone = true;
    struct xfer *list = l->xfers;
    l->xfers = NULL;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    for (struct xfer *x = list, *next; x; x = next) {
        next = x->next;
        x->status = ODK_E_GONE;
        x->actual = 0;
        deliver(x);
    }
}

/* Aborts the transfers whose deadline passed; returns the poll timeout to
 * the next deadline (-1: none). */
static int expire(struct sim_link *l)
{
    uint64_t now = now_ns(), next = 0;
    pthread_mutex_lock(&l->lock);
    for (struct xfer *x = l->xfers; x; x = x->next) {
        if (!x->deadline_ns || x->abort_sent)
            continue;
        if (x->deadline_ns <= now) {
            x->timed_out = x->abort_sent = true;
            struct usb_wire w = {.op = USBW_ABORT, .id = 0, .endpoint = x->endpoint,
                                 .buffer = x->id};
            send_locked(l, &w, NULL, 0, -1); /* its reply matches no waiter */
        } else if (!next || x->deadline_ns < next) {
            next = x->deadline_ns;
        }
    }
    l->reader_until = next;
    pthread_mutex_unlock(&l->lock);
    if (!next)
        return -1;
    uint64_t ms = (next - now + 999999) / 1000000;
    return ms > 60000 ? 60000 : (int)ms;
}

/* Reads what is there, a batch at a time (waiting for none), handling each
 * message; false when the socket ended or sent garbage (then l->ended). */
static bool receive_batch(struct sim_link *l, uint8_t *buf)
{
    for (int k = 0; k < 64; k++) {
        ssize_t n = recv(l->fd, buf, USBW_MAX_PACKET, MSG_TRUNC | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0) {
            l->ended = true;
            return false;
        }
        if ((size_t)n < sizeof(struct usb_wire) || (size_t)n > USBW_MAX_PACKET) {
            odk_warn("usb: the device sent a malformed message (%zd bytes); dropping the link", n);
            l->ended = true;
            return false;
        }
        struct usb_wire w;
        memcpy(&w, buf, sizeof w);
        if (w.op == USBW_COMPLETE && trace_on())
            trace_mark("usb link received completion cpu %d", sched_getcpu());
        on_message(l, &w, buf + sizeof w, (size_t)n - sizeof w);
        /* A callback run here may have closed the link, or a request it
         * made may have read the end: stop reading. */
        pthread_mutex_lock(&l->lock);
        bool stop = l->stopping || l->ended;
        pthread_mutex_unlock(&l->lock);
        if (stop)
            return !l->ended;
    }
    return true;
}

/* On the reader, from a callback it runs: reads and handles messages until
 * done(ctx) (tested under l->lock), the link ends, or
 * deadline_ns (0: none) passes (ODK_E_TIMEOUT).  What completes meanwhile
 * goes to its queue's FIFO: the queue is busy, with the callback. */
static int pump(struct sim_link *l, bool (*done)(void *ctx), void *ctx, uint64_t deadline_ns)
{
    uint8_t *buf = malloc(USBW_MAX_PACKET);
    int st = buf ? ODK_OK : ODK_E_NOMEM;
    while (st == ODK_OK) {
        pthread_mutex_lock(&l->lock);
        bool stop = done(ctx) || l->gone || l->ended;
        pthread_mutex_unlock(&l->lock);
        if (stop)
            break;
        int timeout = expire(l);
        if (deadline_ns) {
            uint64_t now = now_ns();
            if (now >= deadline_ns) {
                st = ODK_E_TIMEOUT;
                break;
            }
            int ms = (int)((deadline_ns - now + 999999) / 1000000);
            if (timeout < 0 || ms < timeout)
                timeout = ms;
        }
        struct pollfd p = {.fd = l->fd, .events = POLLIN};
        if (poll(&p, 1, timeout) < 0 && errno != EINTR)
            st = ODK_E_IO;
        else if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && !receive_batch(l, buf))
            fail_all(l);
    }
    free(buf);
    return st;
}

static void destroy(struct sim_link *l);

static void *reader(void *arg)
{
    struct sim_link *l = arg;
    reading = l;
    /* Its own name (not its creator's queue's): where a driver's callbacks
     * run shows in ps and /proc. */
    pthread_setname_np(pthread_self(), "usb-link");
    uint8_t *buf = malloc(USBW_MAX_PACKET);
    while (buf) {
        struct pollfd p[2] = {{.fd = l->fd, .events = POLLIN}, {.fd = l->wake[0], .events = POLLIN}};
        int timeout = expire(l);
        if (poll(p, 2, timeout) < 0 && errno != EINTR)
            break;
        if (p[0].revents && trace_on())
            trace_mark("usb link reader woken cpu %d", sched_getcpu());
        if (p[1].revents) {
            char drain[64];
            ssize_t n = read(l->wake[0], drain, sizeof drain);
            (void)n;
        }
        pthread_mutex_lock(&l->lock);
        bool stop = l->stopping;
        pthread_mutex_unlock(&l->lock);
        if (stop)
            break;
        if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && !receive_batch(l, buf))
            break;
        pthread_mutex_lock(&l->lock);
        stop = l->stopping;
        pthread_mutex_unlock(&l->lock);
        if (stop)
            break;
    }
    free(buf);
    fail_all(l);
    reading = NULL;
    if (l->free_on_reader)
        destroy(l); /* closed by a callback that ran here: nobody joins us */
    return NULL;
}

/* ---- the link's life ----------------------------------------------------- */

static int sim_open(int fd, const odk_value *info, struct usb_link **out, char *err,
                    size_t err_len)
{
    (void)info, (void)err, (void)err_len;
    struct sim_link *l = calloc(1, sizeof *l);
    if (l && !(l->life = calloc(1, sizeof *l->life))) {
        free(l);
        l = NULL;
    }
    if (!l || pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        if (l)
            free(l->life);
        free(l);
        close(fd);
        return l ? ODK_E_IO : ODK_E_NOMEM;
    }
    atomic_init(&l->life->refs, 1);
    atomic_init(&l->life->closed, false);
    l->fd = fd;
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&l->reader, NULL, reader, l) != 0) {
        close(l->wake[0]);
        close(l->wake[1]);
        close(l->fd);
        free(l->life);
        free(l);
        return ODK_E_NOMEM;
    }
    *out = &l->base;
    return ODK_OK;
}

static int sim_abort(struct usb_link *base, uint8_t endpoint);

static void sim_close(struct usb_link *base)
{
    struct sim_link *l = (struct sim_link *)base;
    if (!l)
        return;
    atomic_store(&l->life->closed, true);
    sim_abort(base, 0xff);
    pthread_mutex_lock(&l->lock);
    l->stopping = true;
    pthread_mutex_unlock(&l->lock);
    if (on_reader(l)) {
        /* From a callback the reader runs: it fails what is left and frees
         * l once the callback returns. */
        l->free_on_reader = true;
        pthread_detach(l->reader);
        return;
    }
    poke(l);
    pthread_join(l->reader, NULL); /* fails what is left with ODK_E_GONE */
    destroy(l);
}

static void destroy(struct sim_link *l)
{
    while (l->mappings) {
        struct mapping *m = l->mappings;
        l->mappings = m->next;
        odk_release(m->memory);
        free(m);
    }
    close(l->fd);
    close(l->wake[0]);
    close(l->wake[1]);
    life_release(l->life);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static bool sim_gone(struct usb_link *base)
{
    struct sim_link *l = (struct sim_link *)base;
    pthread_mutex_lock(&l->lock);
    bool g = l->gone;
    pthread_mutex_unlock(&l->lock);
    return g;
}

/* ---- requests ------------------------------------------------------------ */

static int sim_control(struct usb_link *base, const odk_usb_request *req, void *data,
                       uint32_t *actual, uint32_t timeout_ms)
{
    struct sim_link *l = (struct sim_link *)base;
    bool in = req->bmRequestType & ODK_USB_REQ_IN;
    struct usb_wire w = {.op = USBW_CONTROL,
                         .setup = {req->bmRequestType, req->bRequest, (uint8_t)req->wValue,
                                   (uint8_t)(req->wValue >> 8), (uint8_t)req->wIndex,
                                   (uint8_t)(req->wIndex >> 8), (uint8_t)req->wLength,
                                   (uint8_t)(req->wLength >> 8)}};
    size_t got = 0;
    int st = request(l, &w, in ? NULL : data, in ? 0 : req->wLength, -1, in ? data : NULL,
                     in ? req->wLength : 0, &got, timeout_ms);
    if (actual)
        *actual = st == ODK_OK ? (in ? (uint32_t)got : w.actual) : 0;
    return st;
}

/* The device's id for buffer, mapping it on first use. */
static int buffer_id(struct sim_link *l, odk_memory *buffer, uint32_t *id)
{
    pthread_mutex_lock(&l->lock);
    for (struct mapping *m = l->mappings; m; m = m->next)
        if (m->memory == buffer) {
            *id = m->id;
            pthread_mutex_unlock(&l->lock);
            return ODK_OK;
        }
    uint32_t new_id = ++l->next_id;
    pthread_mutex_unlock(&l->lock);
    struct mapping *m = calloc(1, sizeof *m);
    if (!m)
        return ODK_E_NOMEM;
    struct usb_wire w = {.op = USBW_MAP, .buffer = new_id, .offset = odk_memory_length(buffer)};
    int st = request(l, &w, NULL, 0, odk_memory_fd(buffer), NULL, 0, NULL, 0);
    if (st < 0) {
        free(m);
        return st;
    }
    m->memory = odk_retain(buffer);
    m->id = new_id;
    pthread_mutex_lock(&l->lock);
    m->next = l->mappings;
    l->mappings = m;
    pthread_mutex_unlock(&l->lock);
    *id = new_id;
    return ODK_OK;
}

static int sim_submit(struct usb_link *base, uint8_t endpoint, odk_memory *buffer,
                      uint64_t offset, uint32_t length, uint32_t timeout_ms,
                      odk_usb_completion done, void *ctx, odk_queue *q)
{
    struct sim_link *l = (struct sim_link *)base;
    /* link.c checked the arguments. */
    uint32_t buf = 0;
    int st = buffer ? buffer_id(l, buffer, &buf) : ODK_OK;
    if (st < 0)
        return st;
    struct xfer *x = calloc(1, sizeof *x);
    if (!x)
        return ODK_E_NOMEM;
    *x = (struct xfer){.endpoint = endpoint,
                       .buffer = buffer ? odk_retain(buffer) : NULL,
                       .done = done,
                       .ctx = ctx,
                       .q = q,
                       .deadline_ns = now_ns() + (uint64_t)timeout_or_default(timeout_ms) * 1000000u};
    pthread_mutex_lock(&l->lock);
    if (l->gone) {
        pthread_mutex_unlock(&l->lock);
        odk_release(x->buffer);
        free(x);
        return ODK_E_GONE;
    }
    x->id = ++l->next_id ? l->next_id : ++l->next_id;
    x->life = life_retain(l->life);
    x->next = l->xfers;
    l->xfers = x;
    struct usb_wire w = {.op = USBW_SUBMIT, .id = x->id, .endpoint = endpoint, .buffer = buf,
                         .offset = offset, .length = length};
    st = send_locked(l, &w, NULL, 0, -1);
    if (st < 0)
        unlink_xfer(l, x->id);
    /* The reader sees the new deadline when it next looks (at once, when
     * this is the reader); it is woken only for a deadline before the one
     * it sleeps until. */
    bool wake = st == ODK_OK && !on_reader(l) &&
                (!l->reader_until || x->deadline_ns < l->reader_until);
    pthread_mutex_unlock(&l->lock);
    if (st < 0) {
        life_release(x->life);
        odk_release(x->buffer);
        free(x);
        return st;
    }
    if (wake)
        poke(l);
    return ODK_OK;
}

static int sim_abort(struct usb_link *base, uint8_t endpoint)
{
    struct sim_link *l = (struct sim_link *)base;
    struct usb_wire w = {.op = USBW_ABORT, .endpoint = endpoint};
    int st = request(l, &w, NULL, 0, -1, NULL, 0, NULL, 0);
    if (st != ODK_E_GONE)
        return st;
    /* The device went: its transfers end here, before the abort returns
     * (as the abort promises), not later from the reader's fail_all: a
     * driver frees what their completions use once they are queued (the
     * USB-serial base's buffers: use after free in the fault campaign). */
    pthread_mutex_lock(&l->lock);
    struct xfer *list = NULL;
    for (struct xfer **p = &l->xfers; *p;) {
        struct xfer *x = *p;
        if (endpoint != 0xff && x->endpoint != endpoint) {
            p = &x->next;
            continue;
        }
        *p = x->next;
        x->next = list;
        list = x;
    }
    pthread_mutex_unlock(&l->lock);
    for (struct xfer *x = list, *next; x; x = next) {
        next = x->next;
        x->status = ODK_E_GONE;
        x->actual = 0;
        deliver(x);
    }
    return ODK_OK;
}

static int sim_wait(struct usb_link *base, bool (*done)(void *ctx), void *ctx)
{
    struct sim_link *l = (struct sim_link *)base;
    if (!on_reader(l))
        return ODK_E_UNSUPPORTED;
    return pump(l, done, ctx, 0); /* the transfer's own deadline ends it */
}

const struct usb_link_ops usb_link_sim_ops = {
    .wait = sim_wait,
    .name = "sim",
    .open = sim_open,
    .control = sim_control,
    .submit = sim_submit,
    .abort = sim_abort,
    .gone = sim_gone,
    .close = sim_close,
};
