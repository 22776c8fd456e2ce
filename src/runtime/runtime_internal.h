/* SPDX-License-Identifier: MIT */
/* runtime_internal.h — how queues and their members (actions, timers, fd
 * sources) cooperate.  Private to src/runtime. */
#ifndef ODK_RUNTIME_INTERNAL_H
#define ODK_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "odk/log.h"
#include "odk/queue.h"

/* One unit of work in a queue's FIFO.  Intrusive, so a member's completion
 * needs no allocation at cancel time. */
typedef struct odk_work odk_work;
struct odk_work {
    odk_work *next;
    void (*run)(odk_work *w);
};

/* Appends w to q's FIFO.  Public work (internal false) is refused once q is
 * cancelled; internal work (completions) is accepted until q's thread has
 * finished.  Returns ODK_OK or ODK_E_CANCELLED (w not queued). */
int queue_push(odk_queue *q, odk_work *w, bool internal);

typedef struct queue_member queue_member;

struct member_ops {
    const char *kind; /* "action", "timer", "fd source": for log lines */
    /* epoll readiness of the member's fd, on the queue's thread (NULL if the
     * member registers no fd). */
    void (*event)(queue_member *m, uint32_t revents);
    /* Once, in the first canceller's thread, after cancelled is set: stop
     * the event source (epoll_ctl DEL, disarm).  May be NULL. */
    void (*cancel_start)(queue_member *m);
    /* Once, on the queue's thread after the last callback returned: run the
     * cancel handler, drop what the member holds.  May be NULL. */
    void (*finish)(queue_member *m);
};

struct done_cb {
    struct done_cb *next;
    void (*fn)(void *ctx);
    void *ctx;
};

/* The common head of actions, timers and fd sources. */
struct queue_member {
    odk_object base; /* offset 0 */
    odk_queue *q;    /* strong reference */
    const struct member_ops *ops;
    queue_member *prev, *next; /* in q's member list, under q's lock */
    pthread_mutex_t lock;      /* guards the fields below and the type's own */
    atomic_bool cancelled;     /* set once; read lock-free on hot paths */
    bool dones_run;            /* finish and every recorded done have run */
    struct done_cb first_done; /* so the usual single done needs no malloc */
    bool first_done_used;
    struct done_cb *dones, **dones_tail;
    odk_work complete; /* queued once, by the first cancel */
};

/* Initialises m and makes it a member of q (retaining q), registering fd
 * (if >= 0) with q's epoll for events.  On success m holds two references:
 * the caller's and q's registration, dropped when cancellation completes.
 * Errors: ODK_E_CANCELLED (q cancelled), ODK_E_IO (epoll_ctl).  On error
 * nothing was retained and m's lock is destroyed: free m directly. */
int member_attach(queue_member *m, odk_queue *q, const struct member_ops *ops,
                  void (*free_fn)(odk_object *obj), int fd, uint32_t events);

/* Cancels m (idempotent), recording done to run once cancellation has
 * completed (inline if it already has).  ODK_OK, or ODK_E_NOMEM. */
int member_cancel(queue_member *m, void (*done)(void *ctx), void *ctx);

/* For a type's free function: releases q and destroys the lock. */
void member_destroy(queue_member *m);

/* Changes m's epoll registration on its queue (op EPOLL_CTL_ADD/MOD/DEL).
 * Returns ODK_OK or ODK_E_IO (logged). */
int member_epoll_ctl(queue_member *m, int op, int fd, uint32_t events);

/* Idle polling, for the shared-memory call path (PERFORMANCE-NOTES: a
 * blocking wake-up costs ~20 us here, so the queue spins briefly before it
 * sleeps).  Each turn of the loop calls poll(ctx) (true: it did work).
 * When there is nothing else to do the queue keeps calling it for up to
 * spin_ns since the last work (not at all when 0); then arm(ctx, true)
 * must publish "I am going
 * to sleep" and return true if work arrived meanwhile (the queue then does
 * not sleep); after sleeping, arm(ctx, false).  NULL poll removes it.
 * Call on q's own thread. */
void queue_set_poller(odk_queue *q, bool (*poll)(void *ctx), bool (*arm)(void *ctx, bool sleeping),
                      void *ctx, uint64_t spin_ns);

/* Adds fd (a socket or pipe, not in q's epoll set) that a peer writes to
 * wake q's poller: when q sleeps it sleeps in poll() on such fds and on
 * its epoll fd, so that the write is a sync wake-up, and calls woken(the
 * poller's ctx, fd) for each ready one (woken must drain it, or remove
 * it).  One woken for all fds.  ODK_OK or ODK_E_NOMEM.  Call on q's own
 * thread. */
int queue_add_poller_fd(odk_queue *q, int fd, void (*woken)(void *ctx, int fd));
/* Removes fd from them (never fails; nothing if it is not there).  Call on
 * q's own thread, before fd is closed. */
void queue_remove_poller_fd(odk_queue *q, int fd);

/* Changes how long q's idle poller spins (0: the queue sleeps as soon as
 * it is idle), and whether it yields the CPU at every round of the spin
 * rather than after the first microseconds (the peer it waits for shares
 * its CPU).  Call on q's own thread. */
void queue_set_poll_spin(odk_queue *q, uint64_t spin_ns, bool yield);

/* The queue's thread (valid while the queue runs); while q is lent
 * (queue_run_here), the thread running as q. */
pthread_t queue_thread(const odk_queue *q);

/* Runs fn(ctx) as q, on the calling thread, when q is idle: its thread
 * asleep in epoll and nothing queued, so nothing is overtaken.  The
 * callback then is on q (odk_queue_is_current) and q's thread runs nothing
 * until it returns; what it queues on q runs after it.  Otherwise (q busy,
 * or the caller is itself a queue's thread) it is odk_queue_dispatch_async.
 * For a thread that waited for an event q's callback handles (a USB link's
 * reader): the callback runs where the event was seen, saving q's thread
 * a wake-up and the hand-off. */
int queue_run_here(odk_queue *q, void (*fn)(void *ctx), void *ctx);
/* queue_run_here, but when q is not idle (or the caller is a queue's
 * thread) nothing is queued: ODK_E_BUSY.  For a caller that must do
 * something under its own lock once the callback is queued. */
int queue_try_run_here(odk_queue *q, void (*fn)(void *ctx), void *ctx);
/* How many callbacks queue_run_here ran on their caller's thread. */
uint64_t queue_runs_here(const odk_queue *q);

/* Runs action a now, on its queue's thread (the caller's), unless it was
 * cancelled: used by timers for the lean expiry path. */
void action_invoke_now(odk_action *a);

#endif
