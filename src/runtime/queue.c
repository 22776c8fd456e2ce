/* SPDX-License-Identifier: MIT */
/* Dispatch queues: a serial executor on its own thread.  The thread waits
 * in epoll for its members' fds and for an eventfd that says work was
 * queued; a wake-up calls the ready member directly, then runs the FIFO.
 *
 * Lifetime: the thread is detached, so nobody ever joins it (cancelling
 * from the queue's own thread is just a flag).  The queue's memory goes when
 * both its last reference is gone and its thread has exited, whichever is
 * later. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/spin.h"
#include "runtime/runtime_internal.h"

#define EVENT_BATCH 64 /* epoll events taken per wake-up; more just wait a turn */

enum queue_state {
    Q_RUNNING,    /* accepts everything */
    Q_CANCELLING, /* refuses new public work; drains and cancels members */
    Q_FINISHED,   /* thread is past its last work item; refuses everything */
};

struct odk_queue {
    odk_object base;
    char *name;
    int epfd, wakefd;
    pthread_mutex_t lock; /* guards everything below */
    odk_work *head, **tailp;
    enum queue_state state;
    bool cancel_pending; /* the thread has not yet cancelled the members */
    bool released;       /* the last reference is gone */
    bool exited;         /* the thread no longer touches the queue */
    bool dones_run;      /* every cancel done has run: later ones run inline */
    struct done_cb *dones, **dones_tail;
    queue_member *members;
    /* Idle poller (queue_set_poller); touched only on the queue's thread. */
    bool (*poll_fn)(void *ctx);
    bool (*arm_fn)(void *ctx, bool sleeping);
    void *poll_ctx;
    uint64_t spin_ns;
    bool spin_yield; /* yield the CPU from the first round of the spin */
    /* The poller's wake-up fds (queue_add_poller_fd): the thread sleeps
     * in poll() on them and on epfd, entry 0. */
    struct pollfd *sleep_fds;
    size_t n_sleep_fds; /* 0: the thread sleeps in epoll_wait */
    size_t cap_sleep_fds;
    bool sleep_fds_changed;
    void (*woken_fn)(void *ctx, int fd);
    pthread_t thread; /* for queue_thread: the watchdog signals a stuck queue */
    /* Lending (queue_run_here): while the thread sleeps in epoll with
     * nothing queued, another thread may run one callback as the queue.
     * Guarded by lock; the thread waits on lent_cond for a loan to end
     * before it runs anything itself. */
    bool sleeping;     /* the thread is (about to be) in its blocking epoll_wait */
    bool lent;         /* a callback runs on borrower, as this queue */
    bool thread_waits; /* the thread woke and waits for the loan to end */
    pthread_t borrower;
    pthread_cond_t lent_cond;
    _Atomic uint64_t runs_here; /* statistics: callbacks run by borrowers */
};

static _Thread_local odk_queue *current_queue;

static void queue_destroy(odk_queue *q)
{
    if (q->epfd >= 0)
        close(q->epfd);
    if (q->wakefd >= 0)
        close(q->wakefd);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->lent_cond);
    free(q->sleep_fds);
    free(q->name);
    free(q);
}

static void wake(odk_queue *q)
{
    uint64_t one = 1;
    /* Can only fail with EAGAIN at a count of 2^64-2: then it is awake. */
    if (write(q->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
        odk_error("queue %s: waking its thread: %s", q->name, strerror(errno));
}

/* Cancels every member; on the queue's thread, after new members were shut
 * out.  Only this thread unlinks members (their completions run here), so
 * the list stays valid while the lock is dropped around each cancel. */
static void cancel_members(odk_queue *q)
{
    pthread_mutex_lock(&q->lock);
    queue_member *m = q->members;
    while (m) {
        queue_member *next = m->next;
        pthread_mutex_unlock(&q->lock);
        member_cancel(m, NULL, NULL);
        pthread_mutex_lock(&q->lock);
        m = next;
    }
    pthread_mutex_unlock(&q->lock);
}

/* Runs the work queued so far, called and returning with q->lock held.
 * Work queued meanwhile waits for the next turn of the loop, after the fds
 * were polled: a callback that keeps re-posting itself cannot starve the
 * queue's sources or its cancellation. */
static void run_batch(odk_queue *q)
{
    odk_work *w = q->head;
    if (!w)
        return;
    q->head = NULL;
    q->tailp = &q->head;
    pthread_mutex_unlock(&q->lock);
    while (w) {
        odk_work *next = w->next; /* run may free w */
        w->run(w);
        w = next;
    }
    pthread_mutex_lock(&q->lock);
}

pthread_t queue_thread(const odk_queue *q)
{
    /* A callback stuck while the queue is lent is stuck on its borrower. */
    pthread_mutex_lock((pthread_mutex_t *)&q->lock);
    pthread_t t = q->lent ? q->borrower : q->thread;
    pthread_mutex_unlock((pthread_mutex_t *)&q->lock);
    return t;
}

/* Around the blocking epoll_wait: the queue may be lent while the thread
 * sleeps; once awake, the thread runs nothing until the loan ends. */
static void sleep_begin(odk_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->sleeping = true;
    pthread_mutex_unlock(&q->lock);
}

static void sleep_end(odk_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->sleeping = false;
    while (q->lent) {
        q->thread_waits = true;
        pthread_cond_wait(&q->lent_cond, &q->lock);
    }
    q->thread_waits = false;
    pthread_mutex_unlock(&q->lock);
}

int queue_try_run_here(odk_queue *q, void (*fn)(void *ctx), void *ctx)
{
    if (!q || !fn)
        return ODK_E_INVALID;
    pthread_mutex_lock(&q->lock);
    /* Only an idle queue (its thread asleep, its FIFO empty: nothing to
     * overtake) is lent, and only to a thread that is no queue itself. */
    bool here = q->state == Q_RUNNING && q->sleeping && !q->lent && !q->head && !current_queue;
    if (here) {
        q->lent = true;
        q->borrower = pthread_self();
    }
    pthread_mutex_unlock(&q->lock);
    if (!here)
        return ODK_E_BUSY;
    atomic_fetch_add_explicit(&q->runs_here, 1, memory_order_relaxed);
    current_queue = q;
    fn(ctx);
    current_queue = NULL;
    pthread_mutex_lock(&q->lock);
    q->lent = false;
    /* What fn queued on q, or a cancel it made, woke nobody (it ran as
     * the queue): the thread must see it now. */
    bool kick = q->head || q->cancel_pending;
    if (q->thread_waits)
        pthread_cond_signal(&q->lent_cond);
    pthread_mutex_unlock(&q->lock);
    if (kick)
        wake(q);
    return ODK_OK;
}

int queue_run_here(odk_queue *q, void (*fn)(void *ctx), void *ctx)
{
    int st = queue_try_run_here(q, fn, ctx);
    return st == ODK_E_BUSY ? odk_queue_dispatch_async(q, fn, ctx) : st;
}

uint64_t queue_runs_here(const odk_queue *q)
{
    return atomic_load_explicit(&q->runs_here, memory_order_relaxed);
}

void queue_set_poller(odk_queue *q, bool (*poll)(void *ctx), bool (*arm)(void *ctx, bool sleeping),
                      void *ctx, uint64_t spin_ns)
{
    q->poll_fn = poll;
    q->arm_fn = arm;
    q->poll_ctx = ctx;
    q->spin_ns = spin_ns;
    q->spin_yield = false;
}

int queue_add_poller_fd(odk_queue *q, int fd, void (*woken)(void *ctx, int fd))
{
    if (q->n_sleep_fds + 2 > q->cap_sleep_fds) {
        size_t cap = q->cap_sleep_fds ? 2 * q->cap_sleep_fds : 4;
        struct pollfd *p = realloc(q->sleep_fds, cap * sizeof *p);
        if (!p)
            return ODK_E_NOMEM;
        q->sleep_fds = p;
        q->cap_sleep_fds = cap;
    }
    q->sleep_fds[0] = (struct pollfd){.fd = q->epfd, .events = POLLIN};
    q->sleep_fds[++q->n_sleep_fds] = (struct pollfd){.fd = fd, .events = POLLIN};
    q->woken_fn = woken;
    q->sleep_fds_changed = true;
    return ODK_OK;
}

void queue_remove_poller_fd(odk_queue *q, int fd)
{
    for (size_t i = 1; i <= q->n_sleep_fds; i++) {
        if (q->sleep_fds[i].fd == fd) {
            q->sleep_fds[i] = q->sleep_fds[q->n_sleep_fds--];
            q->sleep_fds_changed = true;
            return;
        }
    }
}

/* The blocking wait on the poller's wake-up fds and the epoll fd.  A
 * write to a socket or pipe that poll() sleeps on is the kernel's sync
 * wake-up (the writer is about to sleep, so the woken thread may run on
 * its CPU), which epoll_wait passes on only in some kernels; on these VMs
 * the difference is a halted vCPU left asleep or woken, tens of
 * microseconds (PERFORMANCE-NOTES.md, docs/hid.md).  The wake-up fds are
 * not in the epoll set, so that a woken queue goes back to sleep with no
 * epoll round.  True if the epoll fd may have events. */
static bool sleep_poll(odk_queue *q)
{
    if (poll(q->sleep_fds, q->n_sleep_fds + 1, -1) < 0) {
        if (errno != EINTR)
            odk_error("queue %s: poll: %s", q->name, strerror(errno));
        for (size_t i = 0; i <= q->n_sleep_fds; i++)
            q->sleep_fds[i].revents = 0;
        return true;
    }
    return q->sleep_fds[0].revents != 0;
}

/* Hands each ready wake-up fd to the poller; stops early if it changed
 * the list (what is left ready wakes the next poll() at once). */
static void sleep_fds_ready(odk_queue *q)
{
    q->sleep_fds_changed = false;
    for (size_t i = 1; i <= q->n_sleep_fds && !q->sleep_fds_changed; i++) {
        if (!q->sleep_fds[i].revents)
            continue;
        q->sleep_fds[i].revents = 0;
        q->woken_fn(q->poll_ctx, q->sleep_fds[i].fd);
    }
}

void queue_set_poll_spin(odk_queue *q, uint64_t spin_ns, bool yield)
{
    q->spin_ns = spin_ns;
    q->spin_yield = yield;
}

/* Spins calling the poller until it finds work, an fd or posted work is
 * ready, or spin_ns pass without work; then arms it.  True when the loop
 * should not sleep. */
static bool idle_spin(odk_queue *q)
{
    if (q->spin_ns == 0)
        return q->arm_fn(q->poll_ctx, true);
    uint64_t start = mono_ns(), deadline = start + q->spin_ns;
    for (unsigned i = 1;; i++) {
        if (q->poll_fn(q->poll_ctx)) {
            /* What the poller ran may have queued work on this queue, from
             * this thread, so with no wake-up: run it before spinning on. */
            pthread_mutex_lock(&q->lock);
            bool queued = q->head != NULL;
            pthread_mutex_unlock(&q->lock);
            if (queued)
                return true;
            deadline = (start = mono_ns()) + q->spin_ns;
        }
        if (q->spin_yield || (i & 63) == 0) {
            struct epoll_event ev;
            /* Level-triggered: a ready fd seen here is reported again below. */
            if ((i & 63) == 0 && epoll_wait(q->epfd, &ev, 1, 0) > 0)
                return true;
            uint64_t now = mono_ns();
            if (now > deadline)
                break;
            /* Past the first microseconds, or at once when the peer we
             * wait for shares this CPU, let anyone else runnable here (perhaps
             * the very app we wait for) go first. */
            if (q->spin_yield || now - start > 5000)
                sched_yield();
        }
        cpu_relax();
    }
    return q->arm_fn(q->poll_ctx, true);
}

static void *queue_main(void *arg)
{
    odk_queue *q = arg;
    current_queue = q;
    /* Named by itself (prctl), not by its creator: naming another thread
     * goes through /proc/self/task/TID/comm, whose dentries the kernel must
     * then invalidate when the thread and the process are reaped, and the
     * reaper (odkd) spun on them while the last thread was still flushing
     * its own (docs/testing.md, "Where a plug's time goes"). */
    char tname[16];
    snprintf(tname, sizeof tname, "%s", q->name);
    pthread_setname_np(pthread_self(), tname);
    struct epoll_event evs[EVENT_BATCH];
    bool more = false; /* work is queued: poll the fds without sleeping */
    for (;;) {
        bool armed = false;
        if (!more && q->poll_fn) {
            more = idle_spin(q);
            armed = true;
        }
        int n = 0;
        if (!more && q->n_sleep_fds && q->poll_fn) {
            sleep_begin(q);
            bool others = sleep_poll(q);
            sleep_end(q);
            if (armed)
                q->arm_fn(q->poll_ctx, false);
            armed = false;
            /* A peer's byte: the poller serves its request and drains it;
             * the epoll round only if something else is ready. */
            sleep_fds_ready(q);
            if (others)
                n = epoll_wait(q->epfd, evs, EVENT_BATCH, 0);
        } else {
            if (!more)
                sleep_begin(q);
            n = epoll_wait(q->epfd, evs, EVENT_BATCH, more ? 0 : -1);
            if (!more)
                sleep_end(q);
        }
        if (armed && q->poll_fn)
            q->arm_fn(q->poll_ctx, false);
        if (n < 0) {
            if (errno != EINTR)
                odk_error("queue %s: epoll_wait: %s", q->name, strerror(errno));
            n = 0;
        }
        for (int i = 0; i < n; i++) {
            queue_member *m = evs[i].data.ptr;
            if (m) {
                m->ops->event(m, evs[i].events);
            } else {
                uint64_t count;
                if (read(q->wakefd, &count, sizeof count) < 0 && errno != EAGAIN)
                    odk_error("queue %s: reading its eventfd: %s", q->name, strerror(errno));
            }
        }
        if (q->poll_fn)
            q->poll_fn(q->poll_ctx);
        pthread_mutex_lock(&q->lock);
        run_batch(q);
        if (q->cancel_pending) {
            /* Their completions are queued behind the work already queued. */
            q->cancel_pending = false;
            pthread_mutex_unlock(&q->lock);
            cancel_members(q);
            pthread_mutex_lock(&q->lock);
        }
        if (q->state == Q_CANCELLING && !q->head && !q->members) {
            q->state = Q_FINISHED;
            pthread_mutex_unlock(&q->lock);
            break;
        }
        more = q->head != NULL;
        pthread_mutex_unlock(&q->lock);
    }
    /* Dones run in the order the cancels came, including cancels made by a
     * done itself or by another thread meanwhile; once the list is empty,
     * later cancels run theirs inline. */
    for (;;) {
        pthread_mutex_lock(&q->lock);
        struct done_cb *d = q->dones;
        q->dones = NULL;
        q->dones_tail = &q->dones;
        if (!d)
            q->dones_run = true;
        pthread_mutex_unlock(&q->lock);
        if (!d)
            break;
        while (d) {
            struct done_cb *next = d->next;
            d->fn(d->ctx);
            free(d);
            d = next;
        }
    }
    current_queue = NULL;
    pthread_mutex_lock(&q->lock);
    q->exited = true;
    bool last = q->released;
    pthread_mutex_unlock(&q->lock);
    if (last)
        queue_destroy(q);
    return NULL;
}

static void queue_last_release(odk_object *obj)
{
    odk_queue *q = (odk_queue *)obj;
    pthread_mutex_lock(&q->lock);
    q->released = true;
    if (q->state == Q_RUNNING) {
        q->state = Q_CANCELLING;
        q->cancel_pending = true;
        /* Under the lock: once it is dropped the thread may finish and free q. */
        wake(q);
    }
    bool last = q->exited;
    pthread_mutex_unlock(&q->lock);
    if (last)
        queue_destroy(q);
}

int odk_queue_create(const char *name, odk_queue **out)
{
    if (!out) {
        odk_warn("odk_queue_create(%s): out is NULL", name ? name : "queue");
        return ODK_E_INVALID;
    }
    *out = NULL;
    odk_queue *q = calloc(1, sizeof *q);
    if (!q)
        return ODK_E_NOMEM;
    q->epfd = q->wakefd = -1;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->lent_cond, NULL);
    q->tailp = &q->head;
    q->dones_tail = &q->dones;
    odk_object_init(&q->base, queue_last_release);
    q->name = strdup(name ? name : "queue");
    if (!q->name) {
        queue_destroy(q);
        return ODK_E_NOMEM;
    }
    q->epfd = epoll_create1(EPOLL_CLOEXEC);
    q->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (q->epfd < 0 || q->wakefd < 0 || epoll_ctl(q->epfd, EPOLL_CTL_ADD, q->wakefd, &ev) < 0) {
        odk_error("queue %s: creating its epoll/eventfd: %s", q->name, strerror(errno));
        queue_destroy(q);
        return ODK_E_IO;
    }
    /* Signals go to the process's own threads, never to a queue's. */
    sigset_t all, old;
    sigfillset(&all);
    /* Faults must stay deliverable: a blocked SIGSEGV kills the process
     * without running the host's crash handler (no backtrace); so does a
     * blocked SIGSYS the sandbox's (no name of the refused call). */
    static const int faults[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset(&all, faults[i]);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t thread;
    int err = pthread_create(&thread, NULL, queue_main, q);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        odk_error("queue %s: creating its thread: %s", q->name, strerror(err));
        queue_destroy(q);
        return ODK_E_IO;
    }
    q->thread = thread;
    pthread_detach(thread);
    *out = q;
    return ODK_OK;
}

int queue_push(odk_queue *q, odk_work *w, bool internal)
{
    w->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->state == Q_FINISHED || (!internal && q->state != Q_RUNNING)) {
        pthread_mutex_unlock(&q->lock);
        return ODK_E_CANCELLED;
    }
    bool was_empty = q->head == NULL;
    *q->tailp = w;
    q->tailp = &w->next;
    pthread_mutex_unlock(&q->lock);
    /* The thread drains the FIFO before it waits again, so only the first
     * item needs a wake-up, and none when queued from the thread itself. */
    if (was_empty && current_queue != q)
        wake(q);
    return ODK_OK;
}

struct async_work {
    odk_work w;
    void (*fn)(void *ctx);
    void *ctx;
};

static void run_async(odk_work *w)
{
    struct async_work *a = (struct async_work *)w;
    a->fn(a->ctx);
    free(a);
}

int odk_queue_dispatch_async(odk_queue *q, void (*fn)(void *ctx), void *ctx)
{
    if (!q || !fn) {
        odk_warn("queue %s: dispatch_async with a NULL %s", odk_queue_name(q),
                 q ? "function" : "queue");
        return ODK_E_INVALID;
    }
    struct async_work *a = malloc(sizeof *a);
    if (!a)
        return ODK_E_NOMEM;
    a->w.run = run_async;
    a->fn = fn;
    a->ctx = ctx;
    int st = queue_push(q, &a->w, false);
    if (st < 0) {
        free(a);
        odk_warn("queue %s: dispatch_async after the queue was cancelled", q->name);
    }
    return st;
}

struct sync_work {
    odk_work w;
    void (*fn)(void *ctx);
    void *ctx;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
};

static void run_sync(odk_work *w)
{
    struct sync_work *s = (struct sync_work *)w;
    s->fn(s->ctx);
    pthread_mutex_lock(&s->lock);
    s->done = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

int odk_queue_dispatch_sync(odk_queue *q, void (*fn)(void *ctx), void *ctx)
{
    if (!q || !fn) {
        odk_warn("queue %s: dispatch_sync with a NULL %s", odk_queue_name(q),
                 q ? "function" : "queue");
        return ODK_E_INVALID;
    }
    if (current_queue == q) {
        pthread_mutex_lock(&q->lock);
        bool running = q->state == Q_RUNNING;
        pthread_mutex_unlock(&q->lock);
        if (!running) {
            odk_warn("queue %s: dispatch_sync after the queue was cancelled", q->name);
            return ODK_E_CANCELLED;
        }
        fn(ctx);
        return ODK_OK;
    }
    struct sync_work s = {.w.run = run_sync, .fn = fn, .ctx = ctx};
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    int st = queue_push(q, &s.w, false);
    if (st == ODK_OK) {
        pthread_mutex_lock(&s.lock);
        while (!s.done)
            pthread_cond_wait(&s.cond, &s.lock);
        pthread_mutex_unlock(&s.lock);
    } else {
        odk_warn("queue %s: dispatch_sync after the queue was cancelled", q->name);
    }
    pthread_mutex_destroy(&s.lock);
    pthread_cond_destroy(&s.cond);
    return st;
}

bool odk_queue_is_current(const odk_queue *q)
{
    return q && current_queue == q;
}

odk_queue *odk_queue_current(void)
{
    return current_queue;
}

const char *odk_queue_name(const odk_queue *q)
{
    return q ? q->name : "(null)";
}

int odk_queue_cancel(odk_queue *q, void (*done)(void *ctx), void *ctx)
{
    if (!q) {
        odk_warn("odk_queue_cancel: queue is NULL");
        return ODK_E_INVALID;
    }
    struct done_cb *d = NULL;
    if (done) {
        d = malloc(sizeof *d);
        if (!d) {
            odk_error("queue %s: no memory to record a cancel callback", q->name);
            return ODK_E_NOMEM;
        }
        *d = (struct done_cb){.fn = done, .ctx = ctx};
    }
    pthread_mutex_lock(&q->lock);
    if (q->dones_run) {
        pthread_mutex_unlock(&q->lock);
        free(d);
        if (done)
            done(ctx);
        return ODK_OK;
    }
    if (d) {
        *q->dones_tail = d;
        q->dones_tail = &d->next;
    }
    bool start = q->state == Q_RUNNING;
    if (start) {
        q->state = Q_CANCELLING;
        q->cancel_pending = true;
    }
    pthread_mutex_unlock(&q->lock);
    if (start && current_queue != q)
        wake(q);
    return ODK_OK;
}

/* ---- members ----------------------------------------------------------- */

static void member_complete(queue_member *m)
{
    if (m->ops->finish)
        m->ops->finish(m);
    /* Dones added meanwhile (even by a done) run here too, in order; once
     * the list is empty, later cancels run theirs inline. */
    for (;;) {
        pthread_mutex_lock(&m->lock);
        struct done_cb *d = m->dones;
        m->dones = NULL;
        m->dones_tail = &m->dones;
        if (!d)
            m->dones_run = true;
        pthread_mutex_unlock(&m->lock);
        if (!d)
            break;
        while (d) {
            struct done_cb *next = d->next;
            d->fn(d->ctx);
            if (d != &m->first_done)
                free(d);
            d = next;
        }
    }
    odk_queue *q = m->q;
    pthread_mutex_lock(&q->lock);
    if (m->prev)
        m->prev->next = m->next;
    else if (q->members == m)
        q->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    m->prev = m->next = NULL;
    pthread_mutex_unlock(&q->lock);
    odk_release(m); /* the queue's registration reference */
}

static void member_complete_work(odk_work *w)
{
    member_complete((queue_member *)((char *)w - offsetof(queue_member, complete)));
}

int member_attach(queue_member *m, odk_queue *q, const struct member_ops *ops,
                  void (*free_fn)(odk_object *obj), int fd, uint32_t events)
{
    odk_object_init(&m->base, free_fn);
    odk_retain(m); /* the queue's registration, dropped at completion */
    m->q = q;
    m->ops = ops;
    m->prev = m->next = NULL;
    pthread_mutex_init(&m->lock, NULL);
    atomic_init(&m->cancelled, false);
    m->dones_run = false;
    m->first_done_used = false;
    m->dones = NULL;
    m->dones_tail = &m->dones;
    m->complete.run = member_complete_work;
    int st = ODK_OK;
    pthread_mutex_lock(&q->lock);
    if (q->state != Q_RUNNING) {
        st = ODK_E_CANCELLED;
    } else if (fd >= 0) {
        struct epoll_event ev = {.events = events, .data.ptr = m};
        if (epoll_ctl(q->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            odk_error("queue %s: adding a %s (fd %d) to epoll: %s", q->name, ops->kind, fd,
                      strerror(errno));
            st = ODK_E_IO;
        }
    }
    if (st == ODK_OK) {
        m->next = q->members;
        if (m->next)
            m->next->prev = m;
        q->members = m;
        odk_retain(q);
    }
    pthread_mutex_unlock(&q->lock);
    if (st == ODK_E_CANCELLED)
        odk_warn("queue %s: new %s refused: the queue was cancelled", q->name, ops->kind);
    if (st < 0)
        pthread_mutex_destroy(&m->lock);
    return st;
}

int member_cancel(queue_member *m, void (*done)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&m->lock);
    if (m->dones_run) {
        pthread_mutex_unlock(&m->lock);
        if (done)
            done(ctx);
        return ODK_OK;
    }
    if (done) {
        struct done_cb *d = &m->first_done;
        if (m->first_done_used)
            d = malloc(sizeof *d);
        if (!d) {
            pthread_mutex_unlock(&m->lock);
            odk_error("%s %p (queue %s): no memory to record a cancel callback", m->ops->kind,
                      (void *)m, m->q->name);
            return ODK_E_NOMEM;
        }
        m->first_done_used = true;
        *d = (struct done_cb){.fn = done, .ctx = ctx};
        *m->dones_tail = d;
        m->dones_tail = &d->next;
    }
    bool first = !atomic_exchange(&m->cancelled, true);
    pthread_mutex_unlock(&m->lock);
    if (first) {
        if (m->ops->cancel_start)
            m->ops->cancel_start(m);
        /* Behind every callback already queued: completion comes after the
         * last one has returned.  Refused only once the thread is done, in
         * which case nothing of m can run any more. */
        if (queue_push(m->q, &m->complete, true) < 0)
            member_complete(m);
    }
    return ODK_OK;
}

void member_destroy(queue_member *m)
{
    odk_release(m->q);
    pthread_mutex_destroy(&m->lock);
}

int member_epoll_ctl(queue_member *m, int op, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = m};
    if (epoll_ctl(m->q->epfd, op, fd, &ev) < 0) {
        odk_error("%s %p (queue %s): epoll_ctl(fd %d): %s", m->ops->kind, (void *)m, m->q->name, fd,
                  strerror(errno));
        return ODK_E_IO;
    }
    return ODK_OK;
}
