/* libodk: the app side. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/fastcall.h"
#include "common/spin.h"
#include "common/wire.h"
#include "odk/client.h"
#include "odk/driver.h"

struct pending_event {
    odk_value *ev;
    struct pending_event *next;
};

struct client_watch {
    uint32_t id;
    odk_watch_fn fn;
    void *ctx;
    struct client_watch *next;
};

struct odk_client {
    int fd;
    uint32_t seq;
    wire_msg msg;
    struct pending_event *events, **events_tail;
    struct client_watch *watches;
};


int odk_client_open(const char *state_dir, odk_client **out)
{
    if (!out)
        return ODK_E_INVALID;
    *out = NULL;
    if (!state_dir)
        state_dir = getenv("ODK_STATE_DIR");
    if (!state_dir)
        state_dir = "/run/odk";
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/odkd.sock", state_dir) >=
        sizeof sa.sun_path)
        return ODK_E_LIMIT;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ODK_E_IO;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        return e == ENOENT || e == ECONNREFUSED ? ODK_E_NOT_FOUND : ODK_E_IO;
    }
    odk_client *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return ODK_E_NOMEM;
    }
    c->fd = fd;
    c->events_tail = &c->events;
    wire_msg_init(&c->msg);
    *out = c;
    return ODK_OK;
}

void odk_client_close(odk_client *c)
{
    if (!c)
        return;
    close(c->fd);
    wire_msg_release(&c->msg);
    while (c->events) {
        struct pending_event *e = c->events;
        c->events = e->next;
        odk_value_free(e->ev);
        free(e);
    }
    while (c->watches) {
        struct client_watch *w = c->watches;
        c->watches = w->next;
        free(w);
    }
    free(c);
}

static void queue_event(odk_client *c, odk_value *ev)
{
    struct pending_event *e = calloc(1, sizeof *e);
    if (!e) {
        odk_value_free(ev);
        return;
    }
    e->ev = ev;
    *c->events_tail = e;
    c->events_tail = &e->next;
}

int odk_client_request(odk_client *c, const char *op, odk_value *args, odk_value **reply)
{
    if (reply)
        *reply = NULL;
    if (!args)
        args = odk_value_new_dict();
    if (!args || odk_dict_set_string(args, "op", op) < 0) {
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    uint32_t seq = ++c->seq;
    int st = wire_send_value(c->fd, WIRE_REQUEST, seq, 0, args, NULL, 0);
    odk_value_free(args);
    if (st < 0)
        return st;
    for (;;) {
        st = wire_recv(c->fd, &c->msg);
        if (st < 0)
            return st;
        odk_value *v = NULL;
        if (wire_msg_value(&c->msg, &v) < 0)
            return ODK_E_PROTOCOL;
        if (c->msg.hdr.type == WIRE_EVENT) {
            queue_event(c, v);
            continue;
        }
        if (c->msg.hdr.type != WIRE_REPLY || c->msg.hdr.seq != seq) {
            odk_value_free(v);
            continue;
        }
        if (reply)
            *reply = v;
        else
            odk_value_free(v);
        return c->msg.hdr.status;
    }
}

int odk_find_services(odk_client *c, const odk_value *matching, odk_value **nodes)
{
    if (nodes)
        *nodes = NULL;
    if (!c || !matching || !nodes)
        return ODK_E_INVALID;
    odk_value *args = odk_value_new_dict();
    if (!args || odk_dict_set(args, "matching", odk_value_copy(matching)) < 0) {
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    odk_value *r = NULL;
    int st = odk_client_request(c, "find", args, &r);
    if (st == ODK_OK) {
        const odk_value *n = odk_dict_get(r, "nodes");
        *nodes = n ? odk_value_copy(n) : odk_value_new_array();
        if (!*nodes)
            st = ODK_E_NOMEM;
    }
    odk_value_free(r);
    return st;
}

int odk_watch_services(odk_client *c, const odk_value *matching, odk_watch_fn fn, void *ctx,
                       uint32_t *watch_id)
{
    odk_value *args = odk_value_new_dict();
    if (!args || odk_dict_set(args, "matching", odk_value_copy(matching)) < 0) {
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    odk_value *r = NULL;
    int st = odk_client_request(c, "watch", args, &r);
    if (st < 0) {
        odk_value_free(r);
        return st;
    }
    struct client_watch *w = calloc(1, sizeof *w);
    if (!w) {
        odk_value_free(r);
        return ODK_E_NOMEM;
    }
    w->id = (uint32_t)odk_dict_get_int(r, "watch", 0);
    w->fn = fn;
    w->ctx = ctx;
    w->next = c->watches;
    c->watches = w;
    if (watch_id)
        *watch_id = w->id;
    /* Nodes already registered come first, as events. */
    const odk_value *nodes = odk_dict_get(r, "nodes");
    for (size_t i = 0; nodes && i < odk_array_count(nodes); i++) {
        odk_value *ev = odk_value_new_dict();
        odk_dict_set_string(ev, "event", "registered");
        odk_dict_set_int(ev, "watch", w->id);
        odk_dict_set(ev, "node", odk_value_copy(odk_array_get(nodes, i)));
        queue_event(c, ev);
    }
    odk_value_free(r);
    return ODK_OK;
}

int odk_unwatch_services(odk_client *c, uint32_t watch_id)
{
    for (struct client_watch **p = &c->watches; *p; p = &(*p)->next) {
        if ((*p)->id == watch_id) {
            struct client_watch *w = *p;
            *p = w->next;
            free(w);
            odk_value *args = odk_value_new_dict();
            odk_dict_set_int(args, "watch", watch_id);
            return odk_client_request(c, "unwatch", args, NULL);
        }
    }
    return ODK_E_NOT_FOUND;
}

int odk_client_fd(const odk_client *c)
{
    return c->fd;
}

static void deliver(odk_client *c, odk_value *ev)
{
    uint32_t id = (uint32_t)odk_dict_get_int(ev, "watch", 0);
    for (struct client_watch *w = c->watches; w; w = w->next)
        if (w->id == id)
            w->fn(w->ctx, odk_dict_get_string(ev, "event", ""), odk_dict_get(ev, "node"));
    odk_value_free(ev);
}

int odk_client_dispatch(odk_client *c, int timeout_ms)
{
    int delivered = 0;
    for (;;) {
        while (c->events) {
            struct pending_event *e = c->events;
            c->events = e->next;
            if (!c->events)
                c->events_tail = &c->events;
            deliver(c, e->ev);
            free(e);
            delivered++;
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = poll(&p, 1, delivered ? 0 : timeout_ms);
        if (n <= 0)
            return n < 0 && errno != EINTR ? ODK_E_IO : delivered;
        int st = wire_recv(c->fd, &c->msg);
        if (st < 0)
            return st;
        odk_value *v = NULL;
        if (c->msg.hdr.type == WIRE_EVENT && wire_msg_value(&c->msg, &v) == ODK_OK)
            queue_event(c, v);
    }
}

/* ---- user clients --------------------------------------------------- */

#define SPIN_MAX_NS 200000u /* the longest the caller spins before sleeping */
#define SPIN_MIN_NS 2000u
#define SPIN_YIELD_NS 5000u /* spinning longer than this yields the CPU each round */
#define SLEEP_CHECK_NS 20000000 /* while asleep, look for a dead driver this often */

struct pending_call {
    uint32_t seq;
    odk_async_fn fn;
    void *ctx;
    uint32_t n_out_max;
    size_t struct_out_max;
    struct pending_call *next;
};

struct odk_connection {
    int fd;
    uint32_t seq;
    wire_msg msg;
    struct pending_call *pending;
    uint32_t n_pending;
    uint32_t next_buffer;
    /* The shared-memory mailbox (common/fastcall.h), if the host took it. */
    struct fastcall_shared *fc;
    int wake_fd;
    uint32_t fc_seq;
    uint64_t spin_ns; /* adaptive: follows how fast replies come */
    bool gone;
};

struct odk_buffer {
    void *data;
    uint64_t len;
    int fd;
};

/* ---- buffers ------------------------------------------------------------ */

static int map_fd(int fd, uint64_t len, bool writable, odk_buffer **out)
{
    odk_buffer *b = calloc(1, sizeof *b);
    if (!b) {
        close(fd);
        return ODK_E_NOMEM;
    }
    b->data = mmap(NULL, len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
    if (b->data == MAP_FAILED) {
        close(fd);
        free(b);
        return ODK_E_NOMEM;
    }
    b->len = len;
    b->fd = fd;
    *out = b;
    return ODK_OK;
}

static int sealed_memfd(const char *name, uint64_t len)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)len) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int odk_buffer_create(uint64_t len, odk_buffer **out)
{
    if (out)
        *out = NULL;
    if (!out || len == 0 || len > (uint64_t)INT64_MAX)
        return ODK_E_INVALID;
    int fd = sealed_memfd("odk-buffer", len);
    if (fd < 0)
        return errno == EFBIG || errno == ENOSPC ? ODK_E_NOMEM : ODK_E_IO;
    return map_fd(fd, len, true, out);
}

void *odk_buffer_data(const odk_buffer *b)
{
    return b ? b->data : NULL;
}

uint64_t odk_buffer_length(const odk_buffer *b)
{
    return b ? b->len : 0;
}

void odk_buffer_free(odk_buffer *b)
{
    if (!b)
        return;
    munmap(b->data, b->len);
    close(b->fd);
    free(b);
}

/* ---- receiving on the channel ------------------------------------------ */

static void complete_async(odk_connection *conn, wire_msg *m)
{
    struct pending_call **pp = &conn->pending;
    while (*pp && (*pp)->seq != m->hdr.seq)
        pp = &(*pp)->next;
    struct pending_call *p = *pp;
    if (!p)
        return; /* not ours: a late reply to something abandoned */
    *pp = p->next;
    conn->n_pending--;
    int st = m->hdr.status;
    struct wire_call_reply r = {0};
    const uint8_t *body = m->body;
    if (st == ODK_OK) {
        if (m->body_len < sizeof r)
            st = ODK_E_PROTOCOL;
        else
            memcpy(&r, body, sizeof r);
        if (st == ODK_OK && (sizeof r + (uint64_t)r.scalar_out_count * 8 + r.struct_out_len !=
                                 m->body_len ||
                             r.scalar_out_count > p->n_out_max ||
                             r.struct_out_len > p->struct_out_max))
            st = ODK_E_PROTOCOL;
    }
    uint64_t scalars[ODK_MAX_SCALARS];
    if (st == ODK_OK)
        memcpy(scalars, body + sizeof r, (size_t)r.scalar_out_count * 8);
    if (st == ODK_OK)
        p->fn(p->ctx, st, scalars, r.scalar_out_count,
              body + sizeof r + (size_t)r.scalar_out_count * 8, r.struct_out_len);
    else
        p->fn(p->ctx, st, NULL, 0, NULL, 0);
    free(p);
}

/* Receives one message into conn->msg; ODK_E_GONE once the driver is gone. */
static int receive_one(odk_connection *conn)
{
    int st = wire_recv(conn->fd, &conn->msg);
    if (st == ODK_E_DISCONNECTED) {
        conn->gone = true;
        return ODK_E_GONE;
    }
    return st;
}

/* Waits for the reply of type/seq; completions of async calls that arrive
 * meanwhile are delivered. */
static int wait_reply(odk_connection *conn, uint16_t type, uint32_t seq)
{
    for (;;) {
        int st = receive_one(conn);
        if (st < 0)
            return st;
        if (conn->msg.hdr.type == type && conn->msg.hdr.seq == seq)
            return ODK_OK;
        if (conn->msg.hdr.type == WIRE_CALL_REPLY)
            complete_async(conn, &conn->msg);
    }
}

/* Waits until the channel can take a message, delivering completions that
 * arrive meanwhile: the driver stops reading while its replies to us wait,
 * so a sender that never reads would wait forever. */
static int wait_writable(odk_connection *conn)
{
    for (;;) {
        struct pollfd p = {.fd = conn->fd, .events = POLLIN | POLLOUT};
        if (poll(&p, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            return ODK_E_IO;
        }
        if (p.revents & POLLOUT)
            return ODK_OK;
        if (p.revents & (POLLHUP | POLLERR) && !(p.revents & POLLIN)) {
            conn->gone = true;
            return ODK_E_GONE;
        }
        int st = receive_one(conn);
        if (st < 0)
            return st;
        if (conn->msg.hdr.type == WIRE_CALL_REPLY)
            complete_async(conn, &conn->msg);
    }
}

/* Sends one request of type on the channel and waits for its reply; the
 * reply's status, or the failure to get one.  The reply stays in conn->msg. */
static int channel_request(odk_connection *conn, uint16_t type, const void *body, size_t len,
                           const int *fds, size_t n_fds)
{
    uint32_t seq = ++conn->seq;
    int st = wire_send(conn->fd, type, seq, 0, body, len, fds, n_fds);
    if (st == ODK_OK)
        st = wait_reply(conn, WIRE_REPLY, seq);
    return st == ODK_OK ? conn->msg.hdr.status : st;
}

/* ---- opening ------------------------------------------------------------ */

/* Offers the host a call mailbox; without it calls use the socket. */
static void setup_fastpath(odk_connection *conn)
{
    const char *off = getenv("ODK_NO_FASTPATH");
    if (off && *off && strcmp(off, "0") != 0)
        return;
    int mfd = sealed_memfd("odk-fastcall", sizeof(struct fastcall_shared));
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    void *p = mfd >= 0 ? mmap(NULL, sizeof(struct fastcall_shared), PROT_READ | PROT_WRITE,
                              MAP_SHARED, mfd, 0)
                       : MAP_FAILED;
    int fds[2] = {mfd, efd};
    if (p != MAP_FAILED && efd >= 0 &&
        channel_request(conn, WIRE_FASTPATH, NULL, 0, fds, 2) == ODK_OK) {
        conn->fc = p;
        conn->wake_fd = efd;
        conn->spin_ns = SPIN_MAX_NS;
        efd = -1;
        p = MAP_FAILED;
    }
    if (p != MAP_FAILED)
        munmap(p, sizeof(struct fastcall_shared));
    if (mfd >= 0)
        close(mfd);
    if (efd >= 0)
        close(efd);
}

int odk_connection_open(odk_client *c, uint64_t node_id, uint32_t type, odk_connection **out)
{
    if (out)
        *out = NULL;
    if (!c || !out)
        return ODK_E_INVALID;
    odk_value *args = odk_value_new_dict();
    if (!args || odk_dict_set_int(args, "node", (int64_t)node_id) < 0 ||
        odk_dict_set_int(args, "type", type) < 0) {
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    int st = odk_client_request(c, "open", args, NULL);
    if (st < 0)
        return st;
    int fd = wire_msg_take_fd(&c->msg, 0);
    if (fd < 0)
        return ODK_E_PROTOCOL;
    odk_connection *conn = calloc(1, sizeof *conn);
    if (!conn) {
        close(fd);
        return ODK_E_NOMEM;
    }
    conn->fd = fd;
    conn->wake_fd = -1;
    wire_msg_init(&conn->msg);
    /* The driver's verdict on the open is the first message. */
    st = wire_recv(fd, &conn->msg);
    if (st == ODK_E_DISCONNECTED)
        st = ODK_E_GONE;
    if (st == ODK_OK)
        st = conn->msg.hdr.type == WIRE_REPLY ? conn->msg.hdr.status : ODK_E_PROTOCOL;
    if (st < 0) {
        odk_connection_close(conn);
        return st;
    }
    setup_fastpath(conn);
    *out = conn;
    return ODK_OK;
}

void odk_connection_close(odk_connection *conn)
{
    if (!conn)
        return;
    close(conn->fd);
    while (conn->pending) {
        struct pending_call *p = conn->pending;
        conn->pending = p->next;
        p->fn(p->ctx, ODK_E_CANCELLED, NULL, 0, NULL, 0);
        free(p);
    }
    if (conn->fc)
        munmap(conn->fc, sizeof *conn->fc);
    if (conn->wake_fd >= 0)
        close(conn->wake_fd);
    wire_msg_release(&conn->msg);
    free(conn);
}

int odk_connection_fd(const odk_connection *conn)
{
    return conn->fd;
}

uint32_t odk_connection_pending(const odk_connection *conn)
{
    return conn->n_pending;
}

/* ---- buffers on a connection ---------------------------------------- */

int odk_connection_register_buffer(odk_connection *conn, odk_buffer *buf, uint32_t direction,
                                   uint32_t *id)
{
    if (!conn || !buf || !id)
        return ODK_E_INVALID;
    struct wire_buffer b = {.id = ++conn->next_buffer, .direction = direction, .length = buf->len};
    int st = channel_request(conn, WIRE_MAP_BUFFER, &b, sizeof b, &buf->fd, 1);
    if (st == ODK_OK)
        *id = b.id;
    return st;
}

int odk_connection_unregister_buffer(odk_connection *conn, uint32_t id)
{
    struct wire_buffer b = {.id = id};
    return channel_request(conn, WIRE_UNMAP_BUFFER, &b, sizeof b, NULL, 0);
}

int odk_connection_map_memory(odk_connection *conn, uint32_t type, odk_buffer **out)
{
    if (out)
        *out = NULL;
    if (!conn || !out)
        return ODK_E_INVALID;
    int st = channel_request(conn, WIRE_CLIENT_MEMORY, &type, sizeof type, NULL, 0);
    if (st < 0)
        return st;
    struct wire_buffer b;
    int fd = wire_msg_take_fd(&conn->msg, 0);
    if (conn->msg.body_len != sizeof b || fd < 0) {
        if (fd >= 0)
            close(fd);
        return ODK_E_PROTOCOL;
    }
    memcpy(&b, conn->msg.body, sizeof b);
    struct stat sb;
    int seals = fcntl(fd, F_GET_SEALS);
    /* A driver that could shrink the file under us could SIGBUS the app. */
    if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size < b.length || b.length == 0 || seals < 0 ||
        !(seals & F_SEAL_SHRINK)) {
        close(fd);
        return ODK_E_PROTOCOL;
    }
    return map_fd(fd, b.length, b.direction != ODK_MEM_OUT, out);
}

int odk_connection_map_data_queue(odk_connection *conn, uint32_t type, odk_data_queue **out)
{
    if (out)
        *out = NULL;
    if (!conn || !out)
        return ODK_E_INVALID;
    int st = channel_request(conn, WIRE_CLIENT_DATA_QUEUE, &type, sizeof type, NULL, 0);
    if (st < 0)
        return st;
    uint32_t size;
    if (conn->msg.body_len != sizeof size || conn->msg.n_fds != 3)
        return ODK_E_PROTOCOL;
    memcpy(&size, conn->msg.body, sizeof size);
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = wire_msg_take_fd(&conn->msg, (size_t)i);
    return odk_data_queue_attach(fds, size, out);
}

/* ---- calls ------------------------------------------------------------ */

/* Lays a call out as struct wire_call + scalars + refs + structure. */
static size_t call_layout(struct wire_call *c, uint32_t selector, uint32_t n_in, uint32_t n_mem,
                          size_t struct_in_len, uint32_t n_out, size_t struct_out)
{
    *c = (struct wire_call){.selector = selector,
                            .scalar_in_count = n_in,
                            .scalar_out_max = n_out,
                            .memory_count = n_mem,
                            .struct_in_len = struct_in_len,
                            .struct_out_max = struct_out};
    return sizeof *c + (size_t)n_in * 8 + (size_t)n_mem * sizeof(struct wire_memory_ref) +
           struct_in_len;
}

static void refs_to_wire(const odk_memory_ref *mem, uint32_t n, struct wire_memory_ref *w)
{
    for (uint32_t i = 0; i < n; i++)
        w[i] = (struct wire_memory_ref){.id = mem[i].buffer, .offset = mem[i].offset,
                                        .length = mem[i].length};
}

static int futex_wait(_Atomic uint32_t *addr, uint32_t val, long ns)
{
    struct timespec ts = {0, ns};
    return (int)syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT, val, &ts, NULL, 0);
}

static bool channel_dead(odk_connection *conn)
{
    struct pollfd p = {.fd = conn->fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

/* Spins (bounded, adaptive), then sleeps on the futex until rep_seq == seq.
 * The spin budget follows the replies: twice the last call's time when
 * that was within SPIN_MAX_NS, the minimum when calls take longer (then
 * spinning only burns a CPU).  Past SPIN_YIELD_NS the spinner yields its
 * CPU each round, so an app and a driver sharing one CPU (a loaded
 * machine) do not spin against each other. */
static int fc_wait(odk_connection *conn, uint32_t seq)
{
    struct fastcall_shared *fc = conn->fc;
    uint64_t t0 = mono_ns();
    int st = ODK_OK;
    unsigned i = 0;
    while (atomic_load_explicit(&fc->rep_seq, memory_order_acquire) != seq) {
        if ((++i & 15) == 0) {
            uint64_t spent = mono_ns() - t0;
            if (spent > conn->spin_ns)
                goto sleep;
            if (spent > SPIN_YIELD_NS)
                sched_yield();
        }
        cpu_relax();
    }
    goto done;
sleep:
    atomic_store_explicit(&fc->app_sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    for (;;) {
        uint32_t cur = atomic_load_explicit(&fc->rep_seq, memory_order_acquire);
        if (cur == seq)
            break;
        if (futex_wait(&fc->rep_seq, cur, SLEEP_CHECK_NS) < 0 && errno == ETIMEDOUT &&
            channel_dead(conn)) {
            conn->gone = true;
            st = ODK_E_GONE;
            break;
        }
    }
    atomic_store_explicit(&fc->app_sleeping, 0, memory_order_relaxed);
done:;
    uint64_t took = mono_ns() - t0;
    uint64_t budget = took <= SPIN_MAX_NS ? 2 * took : SPIN_MIN_NS;
    conn->spin_ns = budget < SPIN_MIN_NS ? SPIN_MIN_NS : budget > SPIN_MAX_NS ? SPIN_MAX_NS : budget;
    return st;
}

static int call_mailbox(odk_connection *conn, const struct wire_call *c, const uint64_t *in,
                        const struct wire_memory_ref *refs, const void *struct_in, uint64_t *out,
                        uint32_t *n_out, void *struct_out, size_t *struct_out_len)
{
    struct fastcall_shared *fc = conn->fc;
    uint8_t *p = fc->req;
    memcpy(p, c, sizeof *c);
    p += sizeof *c;
    if (c->scalar_in_count)
        memcpy(p, in, (size_t)c->scalar_in_count * 8);
    p += (size_t)c->scalar_in_count * 8;
    if (c->memory_count)
        memcpy(p, refs, (size_t)c->memory_count * sizeof *refs);
    p += (size_t)c->memory_count * sizeof *refs;
    if (c->struct_in_len)
        memcpy(p, struct_in, c->struct_in_len);
    uint32_t seq = ++conn->fc_seq;
    atomic_store_explicit(&fc->req_seq, seq, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&fc->host_sleeping, memory_order_relaxed)) {
        uint64_t one = 1;
        if (write(conn->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
            return ODK_E_IO;
    }
    int st = fc_wait(conn, seq);
    if (st < 0)
        return st;
    /* The reply area is the driver's writing: check it before trusting it. */
    struct fastcall_reply_hdr h;
    memcpy(&h, fc->rep, sizeof h);
    if (h.status < 0)
        return h.status;
    if (h.scalar_out_count > c->scalar_out_max || h.struct_out_len > c->struct_out_max)
        return ODK_E_PROTOCOL;
    const uint8_t *r = fc->rep + sizeof h;
    if (n_out) {
        if (h.scalar_out_count)
            memcpy(out, r, (size_t)h.scalar_out_count * 8);
        *n_out = h.scalar_out_count;
    }
    if (struct_out_len) {
        if (h.struct_out_len)
            memcpy(struct_out, r + (size_t)c->scalar_out_max * 8, h.struct_out_len);
        *struct_out_len = h.struct_out_len;
    }
    return ODK_OK;
}

int odk_connection_call_memory(odk_connection *conn, uint32_t selector, const uint64_t *in,
                               uint32_t n_in, const void *struct_in, size_t struct_in_len,
                               const odk_memory_ref *mem, uint32_t n_mem, uint64_t *out,
                               uint32_t *n_out, void *struct_out, size_t *struct_out_len)
{
    if (conn->gone)
        return ODK_E_GONE;
    if (n_mem > ODK_MAX_CALL_MEMORY || n_in > ODK_MAX_SCALARS)
        return ODK_E_LIMIT;
    uint32_t out_max = n_out ? *n_out : 0;
    size_t sout_max = struct_out_len ? *struct_out_len : 0;
    if (n_out)
        *n_out = 0;
    if (struct_out_len)
        *struct_out_len = 0;
    struct wire_call c;
    size_t len = call_layout(&c, selector, n_in, n_mem, struct_in_len, out_max, sout_max);
    struct wire_memory_ref refs[ODK_MAX_CALL_MEMORY];
    refs_to_wire(mem, n_mem, refs);
    if (conn->fc && len <= FASTCALL_AREA &&
        sizeof(struct fastcall_reply_hdr) + (uint64_t)out_max * 8 + sout_max <= FASTCALL_AREA)
        return call_mailbox(conn, &c, in, refs, struct_in, out, n_out, struct_out,
                            struct_out_len);

    uint32_t seq = ++conn->seq;
    /* Scalars and refs are small: one contiguous head, then the structure. */
    uint8_t head[sizeof c + ODK_MAX_SCALARS * 8 + ODK_MAX_CALL_MEMORY * sizeof(struct wire_memory_ref)];
    memcpy(head, &c, sizeof c);
    if (n_in)
        memcpy(head + sizeof c, in, (size_t)n_in * 8);
    if (n_mem)
        memcpy(head + sizeof c + (size_t)n_in * 8, refs, (size_t)n_mem * sizeof *refs);
    size_t head_len = sizeof c + (size_t)n_in * 8 + (size_t)n_mem * sizeof *refs;
    int st = wait_writable(conn);
    if (st < 0)
        return st;
    st = wire_sendv(conn->fd, WIRE_CALL, seq, 0, head, head_len, struct_in, struct_in_len,
                        NULL, 0, NULL, 0);
    if (st == ODK_E_DISCONNECTED) {
        conn->gone = true;
        return ODK_E_GONE;
    }
    if (st == ODK_OK)
        st = wait_reply(conn, WIRE_CALL_REPLY, seq);
    if (st < 0)
        return st;
    wire_msg *m = &conn->msg;
    if (m->hdr.status < 0)
        return m->hdr.status;
    struct wire_call_reply r;
    if (m->body_len < sizeof r)
        return ODK_E_PROTOCOL;
    memcpy(&r, m->body, sizeof r);
    uint64_t want = sizeof r + (uint64_t)r.scalar_out_count * 8 + r.struct_out_len;
    if (want != m->body_len || r.scalar_out_count > out_max || r.struct_out_len > sout_max)
        return ODK_E_PROTOCOL;
    if (n_out) {
        if (r.scalar_out_count)
            memcpy(out, m->body + sizeof r, (size_t)r.scalar_out_count * 8);
        *n_out = r.scalar_out_count;
    }
    if (struct_out_len) {
        if (r.struct_out_len)
            memcpy(struct_out, m->body + sizeof r + (size_t)r.scalar_out_count * 8,
                   r.struct_out_len);
        *struct_out_len = r.struct_out_len;
    }
    return ODK_OK;
}

int odk_connection_call(odk_connection *conn, uint32_t selector, const uint64_t *in,
                        uint32_t n_in, const void *struct_in, size_t struct_in_len,
                        uint64_t *out, uint32_t *n_out, void *struct_out, size_t *struct_out_len)
{
    return odk_connection_call_memory(conn, selector, in, n_in, struct_in, struct_in_len, NULL, 0,
                                      out, n_out, struct_out, struct_out_len);
}

int odk_connection_call_async(odk_connection *conn, uint32_t selector, const uint64_t *in,
                              uint32_t n_in, const void *struct_in, size_t struct_in_len,
                              const odk_memory_ref *mem, uint32_t n_mem, uint32_t n_out_max,
                              size_t struct_out_max, odk_async_fn fn, void *ctx)
{
    if (!conn || !fn)
        return ODK_E_INVALID;
    if (conn->gone)
        return ODK_E_GONE;
    if (n_mem > ODK_MAX_CALL_MEMORY || n_in > ODK_MAX_SCALARS || n_out_max > ODK_MAX_SCALARS)
        return ODK_E_LIMIT;
    struct pending_call *p = calloc(1, sizeof *p);
    if (!p)
        return ODK_E_NOMEM;
    struct wire_call c;
    call_layout(&c, selector, n_in, n_mem, struct_in_len, n_out_max, struct_out_max);
    struct wire_memory_ref refs[ODK_MAX_CALL_MEMORY];
    refs_to_wire(mem, n_mem, refs);
    uint8_t head[sizeof c + ODK_MAX_SCALARS * 8];
    memcpy(head, &c, sizeof c);
    if (n_in)
        memcpy(head + sizeof c, in, (size_t)n_in * 8);
    *p = (struct pending_call){.seq = ++conn->seq, .fn = fn, .ctx = ctx, .n_out_max = n_out_max,
                               .struct_out_max = struct_out_max};
    int st = wait_writable(conn);
    if (st == ODK_OK)
        st = wire_sendv(conn->fd, WIRE_CALL, p->seq, 0, head, sizeof c + (size_t)n_in * 8, refs,
                        (size_t)n_mem * sizeof *refs, struct_in, struct_in_len, NULL, 0);
    if (st < 0) {
        free(p);
        if (st == ODK_E_DISCONNECTED)
            conn->gone = true;
        return st == ODK_E_DISCONNECTED ? ODK_E_GONE : st;
    }
    p->next = conn->pending;
    conn->pending = p;
    conn->n_pending++;
    return ODK_OK;
}

int odk_connection_dispatch(odk_connection *conn, int timeout_ms)
{
    int delivered = 0;
    for (;;) {
        struct pollfd p = {.fd = conn->fd, .events = POLLIN};
        int n = poll(&p, 1, delivered ? 0 : timeout_ms);
        if (n < 0 && errno != EINTR)
            return ODK_E_IO;
        if (n <= 0)
            return delivered;
        int st = wire_recv(conn->fd, &conn->msg);
        if (st == ODK_E_DISCONNECTED) {
            conn->gone = true;
            /* Calls the driver can no longer answer fail now. */
            while (conn->pending) {
                struct pending_call *pc = conn->pending;
                conn->pending = pc->next;
                conn->n_pending--;
                pc->fn(pc->ctx, ODK_E_GONE, NULL, 0, NULL, 0);
                free(pc);
                delivered++;
            }
            return delivered ? delivered : ODK_E_GONE;
        }
        if (st < 0)
            return st;
        if (conn->msg.hdr.type == WIRE_CALL_REPLY) {
            complete_async(conn, &conn->msg);
            delivered++;
        }
    }
}
