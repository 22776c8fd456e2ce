/* SPDX-License-Identifier: MIT */
/* The call mailbox, app side (common/fastcall.h): a sync call is written
 * into shared memory and the caller spins (bounded, adaptive) and then
 * sleeps on a futex until the driver host publishes the reply; a sleeping
 * host is woken through the connection's eventfd. */
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "common/fastcall.h"
#include "common/spin.h"
#include "common/wire.h"
#include "odk/client.h"

#define SPIN_MAX_NS 200000u /* the longest the caller spins before sleeping */
#define SPIN_MIN_NS 2000u
#define SPIN_YIELD_NS 5000u /* spinning longer than this yields the CPU each round */
#define SLEEP_CHECK_NS 20000000 /* while asleep, look for a dead driver this often */

void mailbox_offer(odk_connection *conn)
{
    const char *off = getenv("ODK_NO_FASTPATH");
    if (off && *off && strcmp(off, "0") != 0)
        return;
    int mfd = buffer_memfd("odk-fastcall", sizeof(struct fastcall_shared));
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    void *p = mfd >= 0 ? mmap(NULL, sizeof(struct fastcall_shared), PROT_READ | PROT_WRITE,
                              MAP_SHARED, mfd, 0)
                       : MAP_FAILED;
    int fds[2] = {mfd, efd};
    if (p != MAP_FAILED && efd >= 0 &&
        connection_request(conn, WIRE_FASTPATH, NULL, 0, fds, 2) == ODK_OK) {
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
static int wait_reply(odk_connection *conn, uint32_t seq)
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
    atomic_store_explicit(&fc->req_seq, seq, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&fc->host_sleeping, memory_order_relaxed)) {
        uint64_t one = 1;
        if (write(conn->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
            return ODK_E_IO;
    }
    int st = wait_reply(conn, seq);
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
