/* SPDX-License-Identifier: MIT */
/* The call mailbox, host side (common/fastcall.h): a shared-memory page
 * the app writes requests into and the driver's queue answers in place.
 * The queue spins when idle only while it predicts the next request will
 * come within IDLE_SPIN_MAX_NS, learned per client from the gaps between
 * its replies and the app's next requests; otherwise it sleeps at once,
 * woken by the app through the client's eventfd or (the app's choice, each
 * call) a byte on its sync socket, the queue sleeping in poll() on both
 * (queue_add_poller_fd), and a sleeping app is woken through a futex on
 * rep_seq: one wake-up each way.  With the eventfd alone, the queue sleeps
 * in epoll.  Or, when the app passed a socket alone
 * (ODK_FASTCALL_WAKE=socket), a byte on it each way: sync wake-ups. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/fastcall.h"
#include "common/spin.h"
#include "common/wire.h"
#include "runtime/runtime_internal.h"
#include "runtime/user_client_internal.h"

#define IDLE_SPIN_MAX_NS (50u * 1000u)   /* the longest the queue spins for a request */
#define IDLE_SPIN_SLACK_NS (10u * 1000u) /* spin this much past the gap predicted */

static void publish(odk_user_client *uc, uint32_t seq)
{
    struct fastcall_shared *fc = uc->fc;
    atomic_store_explicit(&fc->rep_seq, seq, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&fc->app_sleeping, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&fc->app_wakes, 1, memory_order_relaxed);
        if (!uc->wake_sock) {
            syscall(SYS_futex, (uint32_t *)&fc->rep_seq, FUTEX_WAKE, 1, NULL, NULL, 0);
            uc->fc_pub_ns = mono_ns();
            return;
        }
        /* Never blocks (a full socket: the app has bytes enough to wake on)
         * and never raises SIGPIPE (an app gone is the channel's business). */
        if (send(uc->wake_fd, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN &&
            errno != EPIPE && errno != ECONNRESET)
            odk_warn("user client of pid %d: waking it: %m", (int)uc->pid);
    }
    uc->fc_pub_ns = mono_ns();
}

/* Sets the queue's idle spin to what the client that wants the most wants. */
static void update_spin(odk_driver *d)
{
    uint64_t spin = 0;
    bool yield = false;
    for (odk_user_client *uc = d->clients; uc; uc = uc->next)
        if (uc->fc && !uc->closing && uc->fc_spin_ns > spin) {
            spin = uc->fc_spin_ns;
            yield = uc->fc_same_cpu;
        }
    queue_set_poll_spin(d->queue, spin, yield);
}

/* Learns from the gap between our last reply and the request that just
 * came (req_ns, the app's stamp: a hint only, clamped to what is possible)
 * whether spinning for the next one would pay: a two-bit saturating
 * counter of gaps within IDLE_SPIN_MAX_NS says whether to spin (one
 * sparse gap among quick ones does not stop it, two do), a moving average
 * of those gaps says how long. */
static void learn_gap(odk_user_client *uc)
{
    /* Where and when we serve, from the first call on: the app picks its
     * wake-up by our CPU (mailbox_call), a trace reads the time. */
    uint64_t now = mono_ns();
    int cpu = sched_getcpu();
    atomic_store_explicit(&uc->fc->host_cpu, (uint32_t)cpu, memory_order_relaxed);
    atomic_store_explicit(&uc->fc->serve_ns, now, memory_order_relaxed);
    if (!uc->fc_pub_ns)
        return;
    uint64_t req = atomic_load_explicit(&uc->fc->req_ns, memory_order_relaxed);
    if (req > now || req < uc->fc_pub_ns)
        req = req > now ? now : uc->fc_pub_ns;
    uint64_t gap = req - uc->fc_pub_ns;
    if (gap <= IDLE_SPIN_MAX_NS) {
        if (uc->fc_spin_score < 3)
            uc->fc_spin_score++;
        uc->fc_gap_ns =
            (uint64_t)((int64_t)uc->fc_gap_ns + ((int64_t)gap - (int64_t)uc->fc_gap_ns) / 4);
    } else if (uc->fc_spin_score > 0) {
        uc->fc_spin_score--;
    }
    /* An app that posted from this very CPU will want it back: then the
     * spin yields it from the first round.  Spinning stays worth it (a
     * yield hands the CPU over faster than a sleep and a wake-up), and two
     * runnable threads on one CPU let the scheduler move one away. */
    bool same_cpu =
        cpu >= 0 && atomic_load_explicit(&uc->fc->app_cpu, memory_order_relaxed) == (uint32_t)cpu;
    uint64_t want = 0;
    if (uc->fc_spin_score >= 2) {
        want = 2 * uc->fc_gap_ns + IDLE_SPIN_SLACK_NS;
        if (want > IDLE_SPIN_MAX_NS)
            want = IDLE_SPIN_MAX_NS;
    }
    if (want != uc->fc_spin_ns || same_cpu != uc->fc_same_cpu) {
        uc->fc_spin_ns = want;
        uc->fc_same_cpu = same_cpu;
        update_spin(uc->drv);
    }
}

void mailbox_reply_status(odk_user_client *uc, uint32_t seq, int status)
{
    struct fastcall_reply_hdr h = {.status = status};
    memcpy(uc->fc->rep, &h, sizeof h);
    uc->fc_busy = false;
    publish(uc, seq);
}

void mailbox_reply_refused(odk_user_client *uc, uint32_t seq, int status, const char *why)
{
    size_t len = strnlen(why, CALL_REFUSAL_MAX);
    struct fastcall_reply_hdr h = {.status = status, .struct_out_len = len};
    memcpy(uc->fc->rep + sizeof h, why, len);
    memcpy(uc->fc->rep, &h, sizeof h);
    uc->fc_busy = false;
    publish(uc, seq);
}

void mailbox_reply(odk_user_client *uc, uint32_t seq, uint32_t n, size_t len)
{
    struct fastcall_reply_hdr h = {.status = ODK_OK, .scalar_out_count = n, .struct_out_len = len};
    memcpy(uc->fc->rep, &h, sizeof h);
    uc->fc_busy = false;
    publish(uc, seq);
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
    learn_gap(uc);
    /* The whole request area: call_check takes the call's length from the
     * header it copies once, so an app scribbling on the request while we
     * run cannot make us read past the area. */
    call_serve(uc, VIA_MAILBOX, seq, uc->fc->req, FASTCALL_AREA);
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

/* A client's wake-up socket (or, with a sync socket beside it, its
 * eventfd) is ready: serve its request first, then drain the byte or the
 * count (these fds are not in the epoll set: nothing else will). */
static void on_wake(void *ctx, int fd)
{
    odk_driver *d = ctx;
    odk_user_client *uc = d->clients;
    while (uc &&
           !(uc->fc && !uc->closing &&
             ((!uc->wake_dead && uc->wake_fd == fd) || (!uc->sync_dead && uc->sync_fd == fd))))
        uc = uc->next;
    if (!uc)
        return;
    atomic_fetch_add_explicit(&uc->fc->host_woken, 1, memory_order_relaxed);
    poll_mailbox(uc);
    if (fd == uc->wake_fd && !uc->wake_sock) {
        uint64_t count;
        if (read(fd, &count, sizeof count) < 0 && errno != EAGAIN)
            odk_warn("user client of pid %d: reading its wake-up eventfd: %m", (int)uc->pid);
        return;
    }
    char bytes[64];
    ssize_t n = recv(fd, bytes, sizeof bytes, MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
        return;
    if (n < 0)
        odk_warn("user client of pid %d: reading its wake-up socket: %m", (int)uc->pid);
    /* The app closed its end (an app exiting closes the channel too, which
     * closes the client): stop listing an fd that would wake the queue at
     * every turn.  The mailbox stays, unwakeable. */
    queue_remove_poller_fd(d->queue, fd);
    if (fd == uc->sync_fd)
        uc->sync_dead = true;
    else
        uc->wake_dead = true;
}

/* The app's eventfd woke the queue (the eventfd and futex kind): the
 * request first, then drain it. */
static void on_wake_eventfd(void *ctx, uint32_t revents)
{
    odk_user_client *uc = ctx;
    atomic_fetch_add_explicit(&uc->fc->host_woken, 1, memory_order_relaxed);
    poll_mailbox(uc);
    uint64_t n;
    if (read(uc->wake_fd, &n, sizeof n) < 0 && errno != EAGAIN)
        odk_warn("user client of pid %d: reading its wake-up eventfd: %m", (int)uc->pid);
    (void)revents;
}

/* Starts or stops the queue's idle polling as the mailboxes come and go. */
static void mailbox_update_poller(odk_driver *d)
{
    bool any = false;
    for (odk_user_client *uc = d->clients; uc; uc = uc->next)
        any |= uc->fc != NULL && !uc->closing;
    if (any) {
        queue_set_poller(d->queue, poll_all, arm_all, d, 0);
        update_spin(d);
    } else {
        queue_set_poller(d->queue, NULL, NULL, NULL, 0);
    }
}

void mailbox_close(odk_user_client *uc)
{
    if (uc->fc && (uc->wake_sock || uc->sync_fd >= 0) && !uc->wake_dead)
        queue_remove_poller_fd(uc->drv->queue, uc->wake_fd);
    if (uc->fc && uc->sync_fd >= 0 && !uc->sync_dead)
        queue_remove_poller_fd(uc->drv->queue, uc->sync_fd);
    uc->sync_dead = true;
    if (uc->wake_src) {
        odk_fd_source_cancel(uc->wake_src, NULL, NULL);
        odk_release(uc->wake_src);
        uc->wake_src = NULL;
    }
    uc->wake_dead = true;
    mailbox_update_poller(uc->drv);
}

int mailbox_take(odk_user_client *uc, wire_msg *m)
{
    int mfd = wire_msg_take_fd(m, 0), efd = wire_msg_take_fd(m, 1), sfd = wire_msg_take_fd(m, 2);
    struct stat st;
    int rc = ODK_E_INVALID;
    struct stat est, sst;
    if (uc->fc || mfd < 0 || efd < 0 || fstat(mfd, &st) < 0 ||
        (uint64_t)st.st_size < sizeof(struct fastcall_shared) || fstat(efd, &est) < 0)
        goto out;
    /* A third fd: a socket for sync wake-ups beside an eventfd. */
    if (sfd >= 0 && (S_ISSOCK(est.st_mode) || fstat(sfd, &sst) < 0 || !S_ISSOCK(sst.st_mode)))
        goto out;
    int seals = fcntl(mfd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
        rc = ODK_E_ACCESS; /* a shrinkable mailbox could SIGBUS the driver */
        goto out;
    }
    void *p =
        mmap(NULL, sizeof(struct fastcall_shared), PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (p == MAP_FAILED) {
        rc = ODK_E_NOMEM;
        goto out;
    }
    uc->fc = p;
    uc->fc_seen = atomic_load(&uc->fc->req_seq);
    uc->wake_fd = efd;
    efd = -1;
    /* A socket: the queue sleeps on it itself, so that the app's byte
     * wakes it as a sync wake-up.  Anything else is taken for an eventfd
     * (in the queue's epoll set when alone), and the app sleeps on a futex. */
    uc->wake_sock = S_ISSOCK(est.st_mode);
    if (uc->wake_sock) {
        rc = queue_add_poller_fd(uc->drv->queue, uc->wake_fd, on_wake);
    } else if (sfd >= 0) {
        /* Both kinds (the default): the queue sleeps in poll() on the
         * eventfd and the socket, and the app picks one each call. */
        rc = queue_add_poller_fd(uc->drv->queue, uc->wake_fd, on_wake);
        if (rc == ODK_OK && (rc = queue_add_poller_fd(uc->drv->queue, sfd, on_wake)) < 0)
            queue_remove_poller_fd(uc->drv->queue, uc->wake_fd);
        if (rc == ODK_OK) {
            uc->sync_fd = sfd;
            sfd = -1;
        }
    } else {
        rc = odk_fd_source_create(uc->drv->queue, uc->wake_fd, EPOLLIN, on_wake_eventfd, uc,
                                  &uc->wake_src);
    }
    if (rc < 0) { /* refused: the calls use the channel */
        munmap(uc->fc, sizeof *uc->fc);
        uc->fc = NULL;
        efd = uc->wake_fd;
        uc->wake_fd = -1;
    } else {
        mailbox_update_poller(uc->drv);
    }
out:
    if (mfd >= 0)
        close(mfd);
    if (efd >= 0)
        close(efd);
    if (sfd >= 0)
        close(sfd);
    return rc;
}
