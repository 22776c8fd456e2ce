/* User clients inside the host: one channel per app connection, served on
 * the driver's default queue.  Every call is checked against the method
 * table (and every memory range against the app's registered buffers)
 * before driver code runs.  Calls arrive over the socket or, for the fast
 * path, through a shared-memory mailbox (common/fastcall.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/fastcall.h"
#include "common/wire.h"
#include "runtime/runtime_internal.h"
#include "runtime/user_client_internal.h"

#define IDLE_SPIN_NS (50u * 1000u) /* the queue's idle spin once a mailbox exists */

struct client_buffer {
    uint32_t id;
    odk_memory *mem;
};

/* Where a call's reply goes. */
enum reply_via { VIA_SOCKET, VIA_MAILBOX };

struct odk_async {
    odk_user_client *uc; /* NULL once the client is gone */
    enum reply_via via;
    uint32_t seq;
    uint32_t selector;
    uint32_t scalar_out_cap;
    uint32_t scalar_room; /* the app's scalar room: where the mailbox reply's structure starts */
    uint64_t struct_out_cap;
    bool cancelled;
    void (*cancel_fn)(void *ctx, odk_async *a);
    void *cancel_ctx;
    odk_async *prev, *next; /* in uc's pending list */
};

/* A reply the socket could not take yet (the app is not reading). */
struct queued_msg {
    uint16_t type;
    uint32_t seq;
    int32_t status;
    uint8_t *body;
    size_t len;
    int fd; /* passed with it, or -1 */
    struct queued_msg *next;
};

struct odk_user_client {
    odk_driver *drv;
    int fd;
    /* Replies wait here while the app's socket is full; meanwhile no new
     * request is read (back-pressure), and the driver's queue never blocks
     * on a slow app. */
    struct queued_msg *outq, **outq_tail;
    odk_fd_source *src;
    uint64_t node_id;
    uint32_t type, uid;
    int32_t pid;
    node_handler handler; /* methods and hooks for this node */
    void *ctx;
    wire_msg msg;
    uint8_t *out_buf; /* reused output structure buffer (socket path) */
    size_t out_cap;
    struct client_buffer *buffers;
    size_t n_buffers;
    /* The mailbox, when the app asked for the fast path. */
    struct fastcall_shared *fc;
    int wake_fd;
    odk_fd_source *wake_src;
    uint32_t fc_seen; /* last request sequence taken */
    bool fc_busy;     /* an async call holds the mailbox */
    odk_async *pending;
    struct odk_user_client *next;
    bool closing;
};

void *odk_user_client_ctx(const odk_user_client *uc)
{
    return uc->ctx;
}

void odk_user_client_set_ctx(odk_user_client *uc, void *ctx)
{
    uc->ctx = ctx;
}

uint64_t odk_user_client_node_id(const odk_user_client *uc)
{
    return uc->node_id;
}

uint32_t odk_user_client_uid(const odk_user_client *uc)
{
    return uc->uid;
}

int32_t odk_user_client_pid(const odk_user_client *uc)
{
    return uc->pid;
}

/* The class's own hooks, adapted to the handler shape. */
static int class_open(void *ctx, odk_user_client *uc, uint32_t type)
{
    odk_driver *d = ctx;
    return d->cls->client_open ? d->cls->client_open(d, uc, type) : ODK_OK;
}

static void class_close(void *ctx, odk_user_client *uc)
{
    odk_driver *d = ctx;
    if (d->cls->client_close)
        d->cls->client_close(d, uc);
}

/* ---- the mailbox -------------------------------------------------------- */

static void futex_wake(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static void fc_publish(odk_user_client *uc, uint32_t seq)
{
    struct fastcall_shared *fc = uc->fc;
    atomic_store_explicit(&fc->rep_seq, seq, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&fc->app_sleeping, memory_order_relaxed))
        futex_wake(&fc->rep_seq);
}

static void fc_reply_status(odk_user_client *uc, uint32_t seq, int status)
{
    struct fastcall_reply_hdr h = {.status = status};
    memcpy(uc->fc->rep, &h, sizeof h);
    uc->fc_busy = false;
    fc_publish(uc, seq);
}

/* ---- sending without blocking ----------------------------------------- */

static void set_client_events(odk_user_client *uc)
{
    if (uc->src)
        odk_fd_source_set_events(uc->src, uc->outq ? EPOLLOUT : EPOLLIN);
}

static int enqueue(odk_user_client *uc, uint16_t type, uint32_t seq, int32_t status,
                   const void *a, size_t alen, const void *b, size_t blen, const void *c,
                   size_t clen, int fd)
{
    struct queued_msg *q = calloc(1, sizeof *q);
    uint8_t *body = malloc(alen + blen + clen + 1);
    int dupfd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (!q || !body || (fd >= 0 && dupfd < 0)) {
        free(q);
        free(body);
        if (dupfd >= 0)
            close(dupfd);
        return ODK_E_NOMEM;
    }
    if (alen)
        memcpy(body, a, alen);
    if (blen)
        memcpy(body + alen, b, blen);
    if (clen)
        memcpy(body + alen + blen, c, clen);
    *q = (struct queued_msg){type, seq, status, body, alen + blen + clen, dupfd, NULL};
    bool was_empty = !uc->outq;
    *uc->outq_tail = q;
    uc->outq_tail = &q->next;
    if (was_empty)
        set_client_events(uc);
    return ODK_OK;
}

/* Sends now if nothing is queued and the socket takes it; queues otherwise. */
static int client_send(odk_user_client *uc, uint16_t type, uint32_t seq, int32_t status,
                       const void *a, size_t alen, const void *b, size_t blen, const void *c,
                       size_t clen, int fd)
{
    if (uc->fd < 0)
        return ODK_E_DISCONNECTED;
    if (!uc->outq) {
        int st = wire_sendv(uc->fd, type, seq, status, a, alen, b, blen, c, clen,
                            fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
        if (st != ODK_E_AGAIN)
            return st;
    }
    return enqueue(uc, type, seq, status, a, alen, b, blen, c, clen, fd);
}

static void free_queued(struct queued_msg *q)
{
    if (q->fd >= 0)
        close(q->fd);
    free(q->body);
    free(q);
}

/* The socket has room again: send what waited, in order. */
static int flush_outq(odk_user_client *uc)
{
    while (uc->outq) {
        struct queued_msg *q = uc->outq;
        int st = wire_sendv(uc->fd, q->type, q->seq, q->status, q->body, q->len, NULL, 0, NULL, 0,
                            q->fd >= 0 ? &q->fd : NULL, q->fd >= 0 ? 1 : 0);
        if (st == ODK_E_AGAIN)
            return ODK_OK;
        if (st < 0)
            return st;
        uc->outq = q->next;
        free_queued(q);
    }
    uc->outq_tail = &uc->outq;
    set_client_events(uc);
    return ODK_OK;
}

static int send_simple(odk_user_client *uc, uint16_t type, uint32_t seq, int status)
{
    return client_send(uc, type, seq, status, NULL, 0, NULL, 0, NULL, 0, -1);
}

/* ---- replies ------------------------------------------------------------ */

static int reply_status(odk_user_client *uc, enum reply_via via, uint32_t seq, int status)
{
    if (via == VIA_MAILBOX) {
        fc_reply_status(uc, seq, status);
        return ODK_OK;
    }
    struct wire_call_reply r = {0};
    return client_send(uc, WIRE_CALL_REPLY, seq, status, &r, sizeof r, NULL, 0, NULL, 0, -1);
}

/* Sends outputs that live in scalars[] / data (socket), or that the method
 * already wrote into the mailbox's reply area (mailbox). */
static int reply_outputs(odk_user_client *uc, enum reply_via via, uint32_t seq,
                         const uint64_t *scalars, uint32_t n, const void *data, size_t len)
{
    if (via == VIA_MAILBOX) {
        struct fastcall_reply_hdr h = {.status = ODK_OK, .scalar_out_count = n, .struct_out_len = len};
        memcpy(uc->fc->rep, &h, sizeof h);
        uc->fc_busy = false;
        fc_publish(uc, seq);
        return ODK_OK;
    }
    struct wire_call_reply r = {.scalar_out_count = n, .struct_out_len = len};
    return client_send(uc, WIRE_CALL_REPLY, seq, ODK_OK, &r, sizeof r, scalars, (size_t)n * 8,
                       data, len, -1);
}

/* ---- asynchronous completions -------------------------------------------- */

static void async_unlink(odk_async *a)
{
    odk_user_client *uc = a->uc;
    if (!uc)
        return;
    if (a->prev)
        a->prev->next = a->next;
    else
        uc->pending = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;
}

int odk_async_complete(odk_async *a, int status, const uint64_t *scalars, uint32_t n_scalars,
                       const void *data, size_t len)
{
    if (!a)
        return ODK_E_INVALID;
    odk_user_client *uc = a->uc;
    int st = ODK_OK;
    if (!uc || a->cancelled || uc->closing) {
        st = ODK_E_CANCELLED;
    } else if (n_scalars > a->scalar_out_cap || len > a->struct_out_cap) {
        odk_error("async selector %u completed with %u scalars / %zu bytes, more than the %u / "
                  "%llu the app has room for",
                  a->selector, n_scalars, len, a->scalar_out_cap,
                  (unsigned long long)a->struct_out_cap);
        reply_status(uc, a->via, a->seq, ODK_E_DRIVER);
        st = ODK_E_INVALID;
    } else if (status > 0 || status < 0) {
        reply_status(uc, a->via, a->seq, status > 0 ? ODK_E_DRIVER : status);
    } else if (a->via == VIA_MAILBOX) {
        uint8_t *rep = uc->fc->rep + sizeof(struct fastcall_reply_hdr);
        if (n_scalars)
            memcpy(rep, scalars, (size_t)n_scalars * 8);
        if (len)
            memcpy(rep + (size_t)a->scalar_room * 8, data, len);
        reply_outputs(uc, VIA_MAILBOX, a->seq, NULL, n_scalars, NULL, len);
    } else {
        reply_outputs(uc, VIA_SOCKET, a->seq, scalars, n_scalars, data, len);
    }
    async_unlink(a);
    free(a);
    return st;
}

bool odk_async_cancelled(const odk_async *a)
{
    return !a || a->cancelled;
}

void odk_async_set_cancel_handler(odk_async *a, void (*fn)(void *ctx, odk_async *a), void *ctx)
{
    if (!a)
        return;
    a->cancel_fn = fn;
    a->cancel_ctx = ctx;
}

uint32_t odk_async_selector(const odk_async *a)
{
    return a ? a->selector : 0;
}

/* The app went away: every pending call is cancelled and the driver told. */
static void cancel_pending(odk_user_client *uc)
{
    while (uc->pending) {
        odk_async *a = uc->pending;
        uc->pending = a->next;
        a->prev = a->next = NULL;
        a->cancelled = true;
        a->uc = NULL;
        if (a->cancel_fn)
            a->cancel_fn(a->cancel_ctx, a);
    }
}

/* ---- closing ------------------------------------------------------------ */

static void client_free(void *arg)
{
    odk_user_client *uc = arg;
    while (uc->outq) {
        struct queued_msg *q = uc->outq;
        uc->outq = q->next;
        free_queued(q);
    }
    wire_msg_release(&uc->msg);
    for (size_t i = 0; i < uc->n_buffers; i++)
        odk_release(uc->buffers[i].mem);
    free(uc->buffers);
    if (uc->fc)
        munmap(uc->fc, sizeof *uc->fc);
    if (uc->wake_fd >= 0)
        close(uc->wake_fd);
    free(uc->out_buf);
    free(uc);
}

static void update_poller(odk_driver *d);

/* Unlinks, cancels pending calls, runs the close hook, closes the channel;
 * the memory goes once the fd sources can no longer call us. */
static void client_close(odk_user_client *uc)
{
    if (uc->closing)
        return;
    uc->closing = true;
    for (odk_user_client **p = &uc->drv->clients; *p; p = &(*p)->next) {
        if (*p == uc) {
            *p = uc->next;
            break;
        }
    }
    cancel_pending(uc);
    if (uc->handler.close)
        uc->handler.close(uc->handler.ctx, uc);
    close(uc->fd);
    uc->fd = -1;
    if (uc->wake_src) {
        odk_fd_source_cancel(uc->wake_src, NULL, NULL);
        odk_release(uc->wake_src);
        uc->wake_src = NULL;
    }
    update_poller(uc->drv);
    if (uc->src) {
        odk_fd_source_cancel(uc->src, client_free, uc);
        odk_release(uc->src);
    } else {
        client_free(uc);
    }
}

void user_client_close_all(odk_driver *drv)
{
    while (drv->clients)
        client_close(drv->clients);
}

/* ---- calls -------------------------------------------------------------- */

/* The per-connection output buffer.  New memory is zeroed once, so a
 * driver that reports more bytes than it wrote can only ever show this
 * same app its own earlier replies, never another app's data; reused
 * memory is not zeroed again (that would cost a memset of the app's whole
 * offered room on every call). */
static void *out_buffer(odk_user_client *uc, size_t len)
{
    if (len <= uc->out_cap)
        return uc->out_buf;
    void *p = calloc(1, len);
    if (!p)
        return NULL;
    free(uc->out_buf);
    uc->out_buf = p;
    uc->out_cap = len;
    return p;
}

static odk_memory *find_buffer(odk_user_client *uc, uint32_t id)
{
    for (size_t i = 0; i < uc->n_buffers; i++)
        if (uc->buffers[i].id == id)
            return uc->buffers[i].mem;
    return NULL;
}

/* Checks one call (body of body_len bytes, untrusted) and runs it.  For the
 * mailbox, outputs are written straight into the shared reply area. */
static int serve_call(odk_user_client *uc, enum reply_via via, uint32_t seq, const uint8_t *body,
                      size_t body_len)
{
    struct wire_call c;
    if (body_len < sizeof c)
        return reply_status(uc, via, seq, ODK_E_PROTOCOL);
    memcpy(&c, body, sizeof c);
    char why[200];
    int st = odk_method_check(uc->handler.methods, uc->handler.n_methods, c.selector,
                              c.scalar_in_count, c.struct_in_len, c.scalar_out_max,
                              c.struct_out_max, why, sizeof why);
    const odk_method *meth = st == ODK_OK ? &uc->handler.methods[c.selector] : NULL;
    if (st == ODK_OK && c.memory_count > ODK_MAX_CALL_MEMORY) {
        snprintf(why, sizeof why, "selector %u: more than ODK_MAX_CALL_MEMORY (%u) memory ranges",
                 c.selector, ODK_MAX_CALL_MEMORY);
        st = ODK_E_LIMIT;
    } else if (st == ODK_OK && meth->memory != ODK_VARIABLE && meth->memory != c.memory_count) {
        snprintf(why, sizeof why, "selector %u: expected %u memory ranges, got %u", c.selector,
                 meth->memory, c.memory_count);
        st = ODK_E_BAD_ARGUMENTS;
    }
    size_t refs_at = sizeof c + (size_t)c.scalar_in_count * 8;
    size_t struct_at = refs_at + (size_t)c.memory_count * sizeof(struct wire_memory_ref);
    if (st == ODK_OK && (uint64_t)struct_at + c.struct_in_len != body_len) {
        snprintf(why, sizeof why, "call body is %zu bytes, its header describes %llu", body_len,
                 (unsigned long long)(struct_at + c.struct_in_len));
        st = ODK_E_PROTOCOL;
    }
    odk_memory_range ranges[ODK_MAX_CALL_MEMORY];
    for (uint32_t i = 0; st == ODK_OK && i < c.memory_count; i++) {
        struct wire_memory_ref ref;
        memcpy(&ref, body + refs_at + i * sizeof ref, sizeof ref);
        odk_memory *m = find_buffer(uc, ref.id);
        uint64_t len = m ? odk_memory_length(m) : 0;
        if (!m) {
            snprintf(why, sizeof why, "memory range %u names buffer %u, which is not registered",
                     i, ref.id);
            st = ODK_E_NOT_FOUND;
        } else if (ref.offset > len || ref.length > len - ref.offset) {
            snprintf(why, sizeof why, "memory range %u [%llu, +%llu) is outside buffer %u (%llu bytes)",
                     i, (unsigned long long)ref.offset, (unsigned long long)ref.length, ref.id,
                     (unsigned long long)len);
            st = ODK_E_INVALID;
        } else {
            ranges[i] = (odk_memory_range){m, ref.offset, ref.length};
        }
    }
    size_t rep_hdr = sizeof(struct fastcall_reply_hdr);
    if (st == ODK_OK && via == VIA_MAILBOX &&
        rep_hdr + (uint64_t)c.scalar_out_max * 8 + c.struct_out_max > FASTCALL_AREA) {
        snprintf(why, sizeof why, "the outputs do not fit the call mailbox");
        st = ODK_E_PROTOCOL;
    }
    if (st < 0) {
        odk_warn("user client of pid %d: %s: %s", (int)uc->pid, odk_status_name(st), why);
        return reply_status(uc, via, seq, st);
    }

    uint64_t stack_scalars[ODK_MAX_SCALARS];
    uint64_t *scalars_out = stack_scalars;
    odk_call call = {
        .selector = c.selector,
        .scalar_in = (const uint64_t *)(body + sizeof c),
        .scalar_in_count = c.scalar_in_count,
        .struct_in = c.struct_in_len ? body + struct_at : NULL,
        .struct_in_len = c.struct_in_len,
        .scalar_out_count = meth->scalar_out == ODK_VARIABLE ? c.scalar_out_max : meth->scalar_out,
        .struct_out_cap =
            meth->struct_out == ODK_VARIABLE_SIZE ? c.struct_out_max : meth->struct_out,
        .memory = c.memory_count ? ranges : NULL,
        .memory_count = c.memory_count,
    };
    call.struct_out_len = meth->struct_out == ODK_VARIABLE_SIZE ? 0 : meth->struct_out;
    if (via == VIA_MAILBOX) {
        /* Outputs go straight into shared memory: no copy on the way back. */
        scalars_out = (uint64_t *)(uc->fc->rep + rep_hdr);
        call.struct_out = uc->fc->rep + rep_hdr + (size_t)c.scalar_out_max * 8;
    } else if (call.struct_out_cap) {
        call.struct_out = out_buffer(uc, call.struct_out_cap);
        if (!call.struct_out)
            return reply_status(uc, via, seq, ODK_E_NOMEM);
    }
    call.scalar_out = scalars_out;
    memset(scalars_out, 0, sizeof(uint64_t) * call.scalar_out_count);
    uint32_t scalar_cap = call.scalar_out_count;

    if (meth->flags & ODK_METHOD_ASYNC) {
        odk_async *a = calloc(1, sizeof *a);
        if (!a)
            return reply_status(uc, via, seq, ODK_E_NOMEM);
        *a = (odk_async){.uc = uc, .via = via, .seq = seq, .selector = c.selector,
                         .scalar_out_cap = scalar_cap, .scalar_room = c.scalar_out_max,
                         .struct_out_cap = call.struct_out_cap};
        a->next = uc->pending;
        if (uc->pending)
            uc->pending->prev = a;
        uc->pending = a;
        if (via == VIA_MAILBOX)
            uc->fc_busy = true;
        call.async = a;
        st = meth->fn(uc->drv, uc, &call);
        if (st != ODK_OK)
            odk_async_complete(a, st, NULL, 0, NULL, 0);
        return ODK_OK;
    }

    st = meth->fn(uc->drv, uc, &call);
    if (call.struct_out_len > call.struct_out_cap || call.scalar_out_count > scalar_cap) {
        odk_error("selector %u returned %zu bytes / %u scalars, more than the %zu / %u allowed",
                  c.selector, call.struct_out_len, call.scalar_out_count, call.struct_out_cap,
                  scalar_cap);
        return reply_status(uc, via, seq, ODK_E_DRIVER);
    }
    if (st > 0)
        st = ODK_E_DRIVER; /* statuses are 0 or negative */
    if (st < 0)
        return reply_status(uc, via, seq, st);
    return reply_outputs(uc, via, seq, scalars_out, call.scalar_out_count, call.struct_out,
                         call.struct_out_len);
}

/* Takes the mailbox's request if there is a new one.  True if it did. */
static bool poll_mailbox(odk_user_client *uc)
{
    if (!uc->fc || uc->fc_busy || uc->closing)
        return false;
    uint32_t seq = atomic_load_explicit(&uc->fc->req_seq, memory_order_acquire);
    if (seq == uc->fc_seen)
        return false;
    uc->fc_seen = seq;
    /* The app may scribble on the request while we run: serve_call copies
     * the header before checking it and bounds everything by the area. */
    struct wire_call c;
    memcpy(&c, uc->fc->req, sizeof c);
    uint64_t len = sizeof c + (uint64_t)c.scalar_in_count * 8 +
                   (uint64_t)c.memory_count * sizeof(struct wire_memory_ref) + c.struct_in_len;
    if (c.scalar_in_count > ODK_MAX_SCALARS || c.memory_count > ODK_MAX_CALL_MEMORY ||
        len > FASTCALL_AREA)
        fc_reply_status(uc, seq, ODK_E_PROTOCOL);
    else
        serve_call(uc, VIA_MAILBOX, seq, uc->fc->req, (size_t)len);
    return true;
}

static bool poll_all(void *ctx)
{
    odk_driver *d = ctx;
    bool did = false;
    for (odk_user_client *uc = d->clients; uc; uc = uc->next)
        did |= poll_mailbox(uc);
    return did;
}

static bool arm_all(void *ctx, bool sleeping)
{
    odk_driver *d = ctx;
    bool work = false;
    for (odk_user_client *uc = d->clients; uc; uc = uc->next) {
        if (!uc->fc)
            continue;
        atomic_store_explicit(&uc->fc->host_sleeping, sleeping, memory_order_relaxed);
        if (sleeping) {
            atomic_thread_fence(memory_order_seq_cst);
            if (!uc->fc_busy &&
                atomic_load_explicit(&uc->fc->req_seq, memory_order_acquire) != uc->fc_seen)
                work = true;
        }
    }
    return work;
}

static void update_poller(odk_driver *d)
{
    bool any = false;
    for (odk_user_client *uc = d->clients; uc; uc = uc->next)
        any |= uc->fc != NULL && !uc->closing;
    if (any)
        queue_set_poller(d->queue, poll_all, arm_all, d, IDLE_SPIN_NS);
    else
        queue_set_poller(d->queue, NULL, NULL, NULL, 0);
}

static void on_wake(void *ctx, uint32_t revents)
{
    odk_user_client *uc = ctx;
    uint64_t n;
    if (read(uc->wake_fd, &n, sizeof n) < 0 && errno != EAGAIN)
        odk_warn("user client of pid %d: reading its wake-up eventfd: %m", (int)uc->pid);
    poll_mailbox(uc);
    (void)revents;
}

/* ---- channel messages other than calls ---------------------------------- */

static int take_fastpath(odk_user_client *uc, wire_msg *m)
{
    int mfd = wire_msg_take_fd(m, 0), efd = wire_msg_take_fd(m, 1);
    struct stat st;
    int rc = ODK_E_INVALID;
    if (uc->fc || mfd < 0 || efd < 0 || fstat(mfd, &st) < 0 ||
        (uint64_t)st.st_size < sizeof(struct fastcall_shared))
        goto out;
    int seals = fcntl(mfd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
        rc = ODK_E_ACCESS; /* a shrinkable mailbox could SIGBUS the driver */
        goto out;
    }
    void *p = mmap(NULL, sizeof(struct fastcall_shared), PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (p == MAP_FAILED) {
        rc = ODK_E_NOMEM;
        goto out;
    }
    uc->fc = p;
    uc->fc_seen = atomic_load(&uc->fc->req_seq);
    uc->wake_fd = efd;
    efd = -1;
    rc = odk_fd_source_create(uc->drv->queue, uc->wake_fd, EPOLLIN, on_wake, uc, &uc->wake_src);
    if (rc == ODK_OK)
        update_poller(uc->drv);
out:
    if (mfd >= 0)
        close(mfd);
    if (efd >= 0)
        close(efd);
    return rc;
}

static int map_buffer(odk_user_client *uc, wire_msg *m)
{
    struct wire_buffer b;
    if (m->body_len != sizeof b)
        return ODK_E_PROTOCOL;
    memcpy(&b, m->body, sizeof b);
    if (find_buffer(uc, b.id))
        return ODK_E_EXISTS;
    if (uc->n_buffers == ODK_MAX_CLIENT_BUFFERS) {
        odk_warn("user client of pid %d: more than ODK_MAX_CLIENT_BUFFERS (%u) buffers",
                 (int)uc->pid, ODK_MAX_CLIENT_BUFFERS);
        return ODK_E_LIMIT;
    }
    odk_memory *mem;
    int st = odk_memory_from_fd(wire_msg_take_fd(m, 0), b.length, b.direction, &mem);
    if (st < 0)
        return st;
    struct client_buffer *nb = realloc(uc->buffers, (uc->n_buffers + 1) * sizeof *nb);
    if (!nb) {
        odk_release(mem);
        return ODK_E_NOMEM;
    }
    uc->buffers = nb;
    uc->buffers[uc->n_buffers++] = (struct client_buffer){b.id, mem};
    return ODK_OK;
}

static int unmap_buffer(odk_user_client *uc, wire_msg *m)
{
    struct wire_buffer b;
    if (m->body_len != sizeof b)
        return ODK_E_PROTOCOL;
    memcpy(&b, m->body, sizeof b);
    for (size_t i = 0; i < uc->n_buffers; i++) {
        if (uc->buffers[i].id == b.id) {
            odk_release(uc->buffers[i].mem);
            uc->buffers[i] = uc->buffers[--uc->n_buffers];
            return ODK_OK;
        }
    }
    return ODK_E_NOT_FOUND;
}

static void client_memory(odk_user_client *uc, wire_msg *m)
{
    uint32_t type;
    odk_memory *mem = NULL;
    int st = ODK_E_UNSUPPORTED;
    if (m->body_len != sizeof type)
        st = ODK_E_PROTOCOL;
    else if (uc->drv->cls->copy_client_memory && uc->handler.ctx == uc->drv) {
        memcpy(&type, m->body, sizeof type);
        st = uc->drv->cls->copy_client_memory(uc->drv, uc, type, &mem);
        if (st == ODK_OK && !mem)
            st = ODK_E_DRIVER;
    }
    if (st < 0) {
        send_simple(uc, WIRE_REPLY, m->hdr.seq, st);
        return;
    }
    struct wire_buffer b = {.id = type, .direction = odk_memory_direction(mem),
                            .length = odk_memory_length(mem)};
    client_send(uc, WIRE_REPLY, m->hdr.seq, ODK_OK, &b, sizeof b, NULL, 0, NULL, 0,
                odk_memory_fd(mem));
    odk_release(mem);
}

static void client_data_queue(odk_user_client *uc, wire_msg *m)
{
    uint32_t type;
    odk_data_queue *q = NULL;
    int st = ODK_E_UNSUPPORTED;
    if (m->body_len != sizeof type)
        st = ODK_E_PROTOCOL;
    else if (uc->drv->cls->copy_client_data_queue && uc->handler.ctx == uc->drv) {
        memcpy(&type, m->body, sizeof type);
        st = uc->drv->cls->copy_client_data_queue(uc->drv, uc, type, &q);
        if (st == ODK_OK && !q)
            st = ODK_E_DRIVER;
    }
    if (st < 0) {
        send_simple(uc, WIRE_REPLY, m->hdr.seq, st);
        return;
    }
    int fds[3];
    uint32_t size;
    odk_data_queue_export(q, fds, &size);
    /* Three descriptors: sent directly (the reply is tiny and the queue of
     * waiting replies carries at most one). */
    if (!uc->outq)
        st = wire_send(uc->fd, WIRE_REPLY, m->hdr.seq, ODK_OK, &size, sizeof size, fds, 3);
    if (uc->outq || st == ODK_E_AGAIN)
        send_simple(uc, WIRE_REPLY, m->hdr.seq, ODK_E_BUSY);
}

static void on_readable(void *ctx, uint32_t revents)
{
    odk_user_client *uc = ctx;
    if (uc->closing)
        return;
    if (uc->outq) {
        /* Waiting for room: requests stay unread until the replies are out. */
        if (flush_outq(uc) < 0)
            client_close(uc);
        return;
    }
    int st = wire_recv(uc->fd, &uc->msg);
    if (st == ODK_E_PROTOCOL) {
        odk_warn("user client of pid %d sent a malformed message; ignored", (int)uc->pid);
        return;
    }
    if (st == ODK_E_AGAIN)
        return;
    if (st < 0) {
        client_close(uc);
        return;
    }
    wire_msg *m = &uc->msg;
    switch (m->hdr.type) {
    case WIRE_CALL:
        st = serve_call(uc, VIA_SOCKET, m->hdr.seq, m->body, m->body_len);
        break;
    case WIRE_MAP_BUFFER:
        st = send_simple(uc, WIRE_REPLY, m->hdr.seq, map_buffer(uc, m));
        break;
    case WIRE_UNMAP_BUFFER:
        st = send_simple(uc, WIRE_REPLY, m->hdr.seq, unmap_buffer(uc, m));
        break;
    case WIRE_FASTPATH:
        st = send_simple(uc, WIRE_REPLY, m->hdr.seq, take_fastpath(uc, m));
        break;
    case WIRE_CLIENT_MEMORY:
        client_memory(uc, m);
        break;
    case WIRE_CLIENT_DATA_QUEUE:
        client_data_queue(uc, m);
        break;
    default:
        st = send_simple(uc, WIRE_REPLY, m->hdr.seq, ODK_E_PROTOCOL);
    }
    if (st == ODK_E_DISCONNECTED)
        client_close(uc);
    (void)revents;
}

/* ---- opening ------------------------------------------------------------ */

static const node_handler *find_handler(odk_driver *d, uint64_t node_id)
{
    for (size_t i = 0; i < d->n_handlers; i++)
        if (d->handlers[i].node_id == node_id)
            return &d->handlers[i];
    return NULL;
}

static void open_on_queue(void *arg)
{
    odk_user_client *uc = arg;
    odk_driver *d = uc->drv;
    const node_handler *h = find_handler(d, uc->node_id);
    if (h) {
        uc->handler = *h;
    } else {
        uc->handler = (node_handler){.node_id = uc->node_id,
                                         .methods = d->cls->methods,
                                         .n_methods = d->cls->n_methods,
                                         .open = class_open,
                                         .close = class_close,
                                         .ctx = d};
    }
    int st = d->stopped ? ODK_E_GONE : ODK_OK;
    if (st == ODK_OK && uc->handler.open)
        st = uc->handler.open(uc->handler.ctx, uc, uc->type);
    /* The app waits for this first message: the open's verdict.  The socket
     * is empty, so this send cannot block. */
    wire_send(uc->fd, WIRE_REPLY, 0, st, NULL, 0, NULL, 0);
    if (st == ODK_OK) {
        fcntl(uc->fd, F_SETFL, fcntl(uc->fd, F_GETFL) | O_NONBLOCK);
        st = odk_fd_source_create(d->queue, uc->fd, EPOLLIN, on_readable, uc, &uc->src);
        if (st < 0 && uc->handler.close)
            uc->handler.close(uc->handler.ctx, uc); /* opened, then could not be served */
    }
    if (st < 0) {
        if (st != ODK_E_GONE)
            odk_warn("user client open by pid %d refused: %s", (int)uc->pid, odk_strerror(st));
        uc->handler.close = NULL; /* open failed: no close hook */
        uc->closing = true;
        close(uc->fd);
        client_free(uc);
        return;
    }
    uc->next = d->clients;
    d->clients = uc;
}

int user_client_accept(odk_driver *drv, int fd, uint64_t node_id, uint32_t type, uint32_t uid,
                          int32_t pid)
{
    odk_user_client *uc = calloc(1, sizeof *uc);
    if (!uc) {
        close(fd);
        return ODK_E_NOMEM;
    }
    uc->drv = drv;
    uc->fd = fd;
    uc->wake_fd = -1;
    uc->outq_tail = &uc->outq;
    uc->node_id = node_id;
    uc->type = type;
    uc->uid = uid;
    uc->pid = pid;
    wire_msg_init(&uc->msg);
    int st = odk_queue_dispatch_async(drv->queue, open_on_queue, uc);
    if (st < 0) {
        wire_send(fd, WIRE_REPLY, 0, ODK_E_GONE, NULL, 0, NULL, 0);
        close(fd);
        free(uc);
    }
    return st;
}
