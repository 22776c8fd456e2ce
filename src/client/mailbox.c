/* SPDX-License-Identifier: MIT */
/* The call mailbox, app side (common/fastcall.h): a sync call is written
 * into shared memory; a sleeping host is woken through the connection's
 * eventfd, or through a byte on its sync socket when it sleeps on another
 * CPU, and the caller waits for the reply, spinning first only when the
 * reply is likely to come within the spin window, then sleeping on a futex
 * the host wakes.  With ODK_FASTCALL_WAKE=socket, a byte on a socket pair
 * wakes each side instead (sync wake-ups). */
#include <errno.h>
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
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "common/fastcall.h"
#include "common/spin.h"
#include "common/wire.h"
#include "odk/client.h"

#define SPIN_MAX_NS 100000u /* the longest the caller ever spins before sleeping */
#define SPIN_MIN_NS 2000u
#define SPIN_YIELD_NS 5000u     /* spinning longer than this yields the CPU each round */
#define REPLY_GUESS_NS 10000u   /* the first guess of how fast an awake host answers */
#define SLEEP_CHECK_NS 20000000 /* while asleep, look for a dead driver this often */

/* ODK_FASTCALL_STATS set: each connection prints its wake-up counters to
 * stderr when closed, for tests that count wake-ups per call. */
void mailbox_stats_print(const odk_connection *conn)
{
    const char *on = getenv("ODK_FASTCALL_STATS");
    if (!conn->fc || !on || !*on || strcmp(on, "0") == 0)
        return;
    fprintf(stderr,
            "odk fastcall stats: calls=%u host_wakes_sent=%u app_sleeps=%u host_woken=%u "
            "app_wakes_sent=%u sync_wakes_sent=%u\n",
            conn->fc_calls, conn->fc_wakes_sent, conn->fc_sleeps,
            atomic_load_explicit(&conn->fc->host_woken, memory_order_relaxed),
            atomic_load_explicit(&conn->fc->app_wakes, memory_order_relaxed), conn->fc_sync_wakes);
}

/* ODK_FASTCALL_TRACE=FILE: each call's path, kept in memory and written
 * at close, for finding what the slowest calls have in common (the branch
 * on conn->trace is all it costs otherwise).  Times are CLOCK_MONOTONIC,
 * the same in the app and the host. */
#define TRACE_MAX (1u << 20) /* records kept; later calls are not traced */
struct mailbox_trace_rec {
    uint64_t post_ns;  /* the app bumped req_seq */
    uint64_t serve_ns; /* the host took the request (its stamp) */
    uint64_t done_ns;  /* the app saw the reply */
    uint32_t spun_ns;  /* the app's spin before it slept (all of it if it did not) */
    int16_t app_cpu, host_cpu, app_cpu_after;
    uint8_t host_asleep; /* we saw host_sleeping and woke it */
    uint8_t host_woken;  /* the host counted a wake-up through our fd meanwhile */
    uint8_t app_slept;   /* we slept for the reply */
    uint8_t app_woken;   /* the host counted a wake-up of us meanwhile */
    uint8_t same_cpu;    /* the host had last served from our CPU */
};
struct mailbox_trace {
    uint32_t n;
    struct mailbox_trace_rec rec[];
};

static void trace_start(odk_connection *conn)
{
    const char *path = getenv("ODK_FASTCALL_TRACE");
    if (!path || !*path)
        return;
    conn->trace = malloc(sizeof *conn->trace + TRACE_MAX * sizeof conn->trace->rec[0]);
    if (conn->trace)
        conn->trace->n = 0;
}

void mailbox_trace_write(odk_connection *conn)
{
    struct mailbox_trace *t = conn->trace;
    const char *path = getenv("ODK_FASTCALL_TRACE");
    conn->trace = NULL;
    if (!t || !path || !*path) {
        free(t);
        return;
    }
    FILE *f = fopen(path, "a");
    if (!f) {
        fprintf(stderr, "odk fastcall trace: %s: %s\n", path, strerror(errno));
        free(t);
        return;
    }
    fprintf(f,
            "# post_ns serve_ns done_ns spun_ns app_cpu host_cpu app_cpu_after host_asleep "
            "host_woken app_slept app_woken same_cpu wake=%s\n",
            conn->wake_sock ? "socket" : "futex");
    for (uint32_t i = 0; i < t->n; i++) {
        const struct mailbox_trace_rec *r = &t->rec[i];
        fprintf(f, "%llu %llu %llu %u %d %d %d %u %u %u %u %u\n", (unsigned long long)r->post_ns,
                (unsigned long long)r->serve_ns, (unsigned long long)r->done_ns, r->spun_ns,
                r->app_cpu, r->host_cpu, r->app_cpu_after, r->host_asleep, r->host_woken,
                r->app_slept, r->app_woken, r->same_cpu);
    }
    fclose(f);
    free(t);
}

bool mailbox_prepare(struct mailbox_offer *o)
{
    *o = (struct mailbox_offer){.mfd = -1, .sv = {-1, -1}, .efd = -1, .p = NULL};
    const char *off = getenv("ODK_NO_FASTPATH");
    if (off && *off && strcmp(off, "0") != 0)
        return false;
    o->mfd = buffer_memfd("odk-fastcall", sizeof(struct fastcall_shared));
    /* The wake-up fds.  A byte written on a socket wakes its reader as a
     * sync wake-up (the writer is about to sleep), so the kernel may run
     * the woken side on the writer's CPU instead of waking its own, idle
     * one, as in a socketpair round trip; an eventfd's or a futex's
     * wake-up never is.  By default we pass an eventfd, and the host wakes
     * us through a futex.  ODK_FASTCALL_WAKE=cpu: an eventfd and a socket
     * pair's end ([1] the host's, [0] ours, never read: its end of file is
     * the host's exit), picked per call (mailbox_call): the socket when the
     * host last ran on another CPU, which on these VMs is likely halted
     * (tens of microseconds to wake), else the eventfd; not the default,
     * because at 10 calls/s on a quiet machine it lost to the eventfd
     * alone.  =socket: the socket only, both ways (docs/memory.md, section
     * 11). */
    const char *kind = getenv("ODK_FASTCALL_WAKE");
    o->sock = kind && strcmp(kind, "socket") == 0;
    o->futex_only = !o->sock && !(kind && strcmp(kind, "cpu") == 0);
    if (!o->futex_only && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, o->sv) < 0)
        o->sv[0] = o->sv[1] = -1;
    /* The eventfd goes to the host as it is (SCM_RIGHTS gives the host a
     * reference of its own), so no end of it is the host's alone. */
    if (!o->sock)
        o->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    /* Our sleeps on the socket end every SLEEP_CHECK_NS to look for a dead
     * driver (on the futex, the wait's own timeout). */
    struct timeval tv = {0, SLEEP_CHECK_NS / 1000};
    void *p = o->mfd >= 0 ? mmap(NULL, sizeof(struct fastcall_shared), PROT_READ | PROT_WRITE,
                                 MAP_SHARED, o->mfd, 0)
                          : MAP_FAILED;
    o->p = p == MAP_FAILED ? NULL : p;
    o->fds[0] = o->mfd;
    o->fds[1] = o->sock ? o->sv[1] : o->efd;
    o->fds[2] = o->sv[1];
    o->n_fds = o->sock || o->futex_only ? 2 : 3;
    bool have = o->sock ? o->sv[0] >= 0 : o->efd >= 0 && (o->futex_only || o->sv[0] >= 0);
    if (o->p && have &&
        (!o->sock || setsockopt(o->sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0))
        return true;
    mailbox_drop(o);
    return false;
}

void mailbox_adopt(odk_connection *conn, struct mailbox_offer *o)
{
    conn->fc = o->p;
    o->p = NULL;
    conn->wake_fd = o->sock ? o->sv[0] : o->efd;
    conn->wake_sock = o->sock;
    if (o->sock)
        o->sv[0] = -1;
    else
        o->efd = -1;
    if (!o->sock && !o->futex_only) {
        conn->sync_fd = o->sv[0];
        o->sv[0] = -1;
    }
    conn->reply_ns = REPLY_GUESS_NS;
    trace_start(conn);
    mailbox_drop(o); /* the host's ends and the memfd: the host holds its own */
}

void mailbox_drop(struct mailbox_offer *o)
{
    if (o->p)
        munmap(o->p, sizeof(struct fastcall_shared));
    o->p = NULL;
    if (o->mfd >= 0)
        close(o->mfd);
    o->mfd = -1;
    /* The host's ends live only in the host: its exit shows as end of file
     * on a socket. */
    for (int i = 0; i < 2; i++) {
        if (o->sv[i] >= 0)
            close(o->sv[i]);
        o->sv[i] = -1;
    }
    if (o->efd >= 0)
        close(o->efd);
    o->efd = -1;
}

void mailbox_offer(odk_connection *conn, struct mailbox_offer *o)
{
    if (connection_request(conn, WIRE_FASTPATH, NULL, 0, o->fds, o->n_fds) == ODK_OK)
        mailbox_adopt(conn, o);
    else
        mailbox_drop(o);
}

static bool channel_dead(odk_connection *conn)
{
    struct pollfd p = {.fd = conn->fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

/* Waits until rep_seq == seq: spins, then sleeps on the wake-up socket.  Spinning
 * pays only when the reply comes within the spin window: a host that was
 * asleep (host_asleep: we had to wake it) answers after a wake-up at best,
 * so then the caller sleeps at once and the host's byte is the one
 * wake-up on the way back.  An awake host (spinning, or busy with other
 * work) answers in about the time it took lately: reply_ns, a moving
 * average of those calls; the caller spins twice that, or not at all when
 * it exceeds the window.  Past SPIN_YIELD_NS the spinner yields its CPU
 * each round, so an app and a driver sharing one CPU (a loaded machine) do
 * not spin against each other; when the host last served from this very
 * CPU (same_cpu), it yields from the first round: the host most likely
 * waits for this CPU, a yield hands it over faster than a sleep and a
 * wake-up would, and two runnable threads on one CPU let the scheduler
 * move one of them to another. */
static int wait_reply(odk_connection *conn, uint32_t seq, bool host_asleep, bool same_cpu)
{
    struct fastcall_shared *fc = conn->fc;
    uint64_t t0 = mono_ns();
    uint64_t budget = 0;
    if (!host_asleep && conn->reply_ns <= SPIN_MAX_NS / 2)
        budget = 2 * conn->reply_ns < SPIN_MIN_NS ? SPIN_MIN_NS : 2 * conn->reply_ns;
    int st = ODK_OK;
    unsigned i = 0;
    while (atomic_load_explicit(&fc->rep_seq, memory_order_acquire) != seq) {
        if ((++i & 15) == 0) {
            uint64_t spent = mono_ns() - t0;
            if (spent > budget)
                goto sleep;
            if (spent > SPIN_YIELD_NS)
                sched_yield();
        }
        if (budget == 0)
            goto sleep;
        if (same_cpu)
            sched_yield();
        cpu_relax();
    }
    goto done;
sleep:
    if (conn->trace && conn->trace->n < TRACE_MAX)
        conn->trace->rec[conn->trace->n].spun_ns = (uint32_t)(mono_ns() - t0);
    atomic_store_explicit(&fc->app_sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    for (bool first = true;; first = false) {
        uint32_t cur = atomic_load_explicit(&fc->rep_seq, memory_order_acquire);
        if (cur == seq)
            break;
        if (first)
            conn->fc_sleeps++; /* the reply is not there: the host will see us asleep */
        if (!conn->wake_sock) {
            struct timespec ts = {0, SLEEP_CHECK_NS};
            if (syscall(SYS_futex, (uint32_t *)&fc->rep_seq, FUTEX_WAIT, cur, &ts, NULL, 0) < 0 &&
                errno == ETIMEDOUT && channel_dead(conn) &&
                atomic_load_explicit(&fc->rep_seq, memory_order_acquire) != seq) {
                conn->gone = true;
                st = ODK_E_GONE;
                break;
            }
            continue;
        }
        /* One read takes the host's byte and any left by a wake-up that
         * crossed our last re-check (then we just look again).  End of
         * file: the host is gone (its reply, if any, was checked above). */
        char bytes[64];
        ssize_t n = recv(conn->wake_fd, bytes, sizeof bytes, 0);
        bool dead =
            n == 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && channel_dead(conn));
        if (dead && atomic_load_explicit(&fc->rep_seq, memory_order_acquire) != seq) {
            conn->gone = true;
            st = ODK_E_GONE;
            break;
        }
    }
    atomic_store_explicit(&fc->app_sleeping, 0, memory_order_relaxed);
done:
    if (!host_asleep) {
        int64_t took = (int64_t)(mono_ns() - t0);
        conn->reply_ns = (uint64_t)((int64_t)conn->reply_ns + (took - (int64_t)conn->reply_ns) / 4);
    }
    return st;
}

int mailbox_call(odk_connection *conn, const struct wire_call *c, const uint64_t *in,
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
    conn->fc_calls++;
    int cpu = sched_getcpu();
    struct mailbox_trace_rec *tr = NULL;
    uint32_t woken0 = 0, wakes0 = 0, sleeps0 = conn->fc_sleeps;
    if (conn->trace && conn->trace->n < TRACE_MAX) {
        tr = &conn->trace->rec[conn->trace->n];
        woken0 = atomic_load_explicit(&fc->host_woken, memory_order_relaxed);
        wakes0 = atomic_load_explicit(&fc->app_wakes, memory_order_relaxed);
        tr->spun_ns = UINT32_MAX; /* not slept: set below */
    }
    uint64_t post_ns = mono_ns();
    atomic_store_explicit(&fc->app_cpu, (uint32_t)cpu, memory_order_relaxed);
    atomic_store_explicit(&fc->req_ns, post_ns, memory_order_relaxed);
    atomic_store_explicit(&fc->req_seq, seq, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    bool host_asleep = atomic_load_explicit(&fc->host_sleeping, memory_order_relaxed);
    uint32_t host_cpu = atomic_load_explicit(&fc->host_cpu, memory_order_relaxed);
    bool same_cpu = cpu >= 0 && host_cpu == (uint32_t)cpu;
    if (host_asleep && conn->sync_fd >= 0 && !same_cpu) {
        /* The host sleeps on another CPU: a sync wake-up may bring it to
         * this one, which we are about to leave, instead of waking that
         * CPU (the host runs where it last ran once any CPU serves it). */
        conn->fc_wakes_sent++;
        conn->fc_sync_wakes++;
        if (send(conn->sync_fd, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
            if (errno != EPIPE && errno != ECONNRESET)
                return ODK_E_IO;
            conn->gone = true;
            return ODK_E_GONE;
        }
    } else if (host_asleep && !conn->wake_sock) {
        uint64_t one = 1;
        conn->fc_wakes_sent++;
        if (write(conn->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
            return ODK_E_IO;
    } else if (host_asleep) {
        conn->fc_wakes_sent++;
        /* Never blocks: a full socket holds wake-ups enough already. */
        if (send(conn->wake_fd, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
            if (errno != EPIPE && errno != ECONNRESET)
                return ODK_E_IO;
            conn->gone = true; /* the host's end is closed: it exited */
            return ODK_E_GONE;
        }
    }
    int st = wait_reply(conn, seq, host_asleep, same_cpu);
    if (tr) {
        tr->done_ns = mono_ns();
        tr->post_ns = post_ns;
        tr->serve_ns = atomic_load_explicit(&fc->serve_ns, memory_order_relaxed);
        if (tr->spun_ns == UINT32_MAX)
            tr->spun_ns = (uint32_t)(tr->done_ns - post_ns);
        tr->app_cpu = (int16_t)cpu;
        tr->host_cpu = (int16_t)atomic_load_explicit(&fc->host_cpu, memory_order_relaxed);
        tr->app_cpu_after = (int16_t)sched_getcpu();
        tr->host_asleep = host_asleep;
        tr->host_woken = atomic_load_explicit(&fc->host_woken, memory_order_relaxed) != woken0;
        tr->app_slept = conn->fc_sleeps != sleeps0;
        tr->app_woken = atomic_load_explicit(&fc->app_wakes, memory_order_relaxed) != wakes0;
        tr->same_cpu = same_cpu;
        conn->trace->n++;
    }
    if (st < 0)
        return st;
    /* The reply area is the driver's writing: check it before trusting it. */
    struct fastcall_reply_hdr h;
    memcpy(&h, fc->rep, sizeof h);
    if (h.status < 0) {
        if (h.struct_out_len && h.struct_out_len <= CALL_REFUSAL_MAX && !h.scalar_out_count)
            call_keep_refusal(conn, fc->rep + sizeof h, h.struct_out_len);
        return h.status;
    }
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
