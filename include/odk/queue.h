/* SPDX-License-Identifier: MIT */
/* odk/queue.h — dispatch queues, actions, timers and fd event sources.
 *
 * The execution model of a driver (DriverKit's IODispatchQueue, OSAction,
 * IOTimerDispatchSource, and a file-descriptor source):
 *
 * - A queue is a serial executor on its own thread (an epoll loop).  Work
 *   runs one item at a time, in the order it was queued.
 * - Actions, timers and fd sources are members of one queue; their
 *   callbacks run on it.  A member holds a reference on its queue, and the
 *   queue keeps each member alive (and firing) until it is cancelled, by its
 *   own cancel function or by cancelling the queue.
 * - Cancelling is idempotent and legal in any order, from any thread,
 *   including from inside a callback of the object being cancelled.  Each
 *   member's cancel handler or done callback runs exactly once, on the
 *   queue's thread, after the member's last callback has returned.
 * - Misuse (NULL, using a cancelled object) returns an error status and logs
 *   a line naming the object; it never aborts.
 *
 * All objects here are odk_objects: odk_retain() / odk_release().
 * Functions return ODK_OK or a negative odk_status.  Every function may be
 * called from any thread, including the queue's own; only
 * odk_queue_dispatch_sync blocks.  ctx pointers stay the caller's: odk never
 * frees them (a cancel handler or done is the place to).
 */
#ifndef ODK_QUEUE_H
#define ODK_QUEUE_H

#include "odk/export.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h> /* EPOLLIN, EPOLLOUT, ... for odk_fd_source */

#include "odk/object.h"
#include "odk/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odk_queue odk_queue;
typedef struct odk_action odk_action;
typedef struct odk_timer odk_timer;
typedef struct odk_fd_source odk_fd_source;

/* ---- queues ------------------------------------------------------------ */

/* Creates a queue with its own thread; name (copied; NULL gives "queue")
 * names it in logs.  *out is a new reference.
 * Errors: ODK_E_INVALID (out NULL), ODK_E_NOMEM, ODK_E_IO (epoll, eventfd or
 * thread creation failed). */
ODK_PUBLIC int odk_queue_create(const char *name, odk_queue **out);

/* Queues fn(ctx) to run on q after everything queued before it (FIFO).
 * ctx is the caller's; the queue never frees it.
 * Errors: ODK_E_INVALID (q or fn NULL), ODK_E_CANCELLED (q was cancelled:
 * fn will not run), ODK_E_NOMEM. */
ODK_PUBLIC int odk_queue_dispatch_async(odk_queue *q, void (*fn)(void *ctx), void *ctx);

/* Runs fn(ctx) on q and returns after it has returned: BLOCKS until q's
 * thread has run everything queued before it, then fn.  Called on q's own
 * thread it runs fn inline (no deadlock).  Errors: as
 * odk_queue_dispatch_async.  Waiting on a queue that waits on the caller
 * deadlocks, as in any executor. */
ODK_PUBLIC int odk_queue_dispatch_sync(odk_queue *q, void (*fn)(void *ctx), void *ctx);

/* True when called from q's thread (inside any callback running on q);
 * false for NULL.  Never fails. */
ODK_PUBLIC bool odk_queue_is_current(const odk_queue *q);

/* The queue whose thread calls this, or NULL off any queue.  Borrowed: valid
 * while the calling callback runs; odk_retain() it to keep it longer.  Never
 * fails. */
ODK_PUBLIC odk_queue *odk_queue_current(void);

/* q's name (borrowed: lives as long as q; "(null)" for NULL).  Never fails. */
ODK_PUBLIC const char *odk_queue_name(const odk_queue *q);

/* Cancels q: later dispatches, posts and member creations get
 * ODK_E_CANCELLED; every action, timer and fd source of q is cancelled (their
 * cancel handlers and done callbacks run); work queued before the cancel
 * still runs.  Then done(ctx) (may be NULL) runs on q's thread as its last
 * act and the thread exits.  Returns at once (never waits, never joins), so
 * it is legal on q's own thread.  Idempotent: a later call returns ODK_OK and
 * runs its done once after cancellation completes; dones run in call order,
 * on q's thread, or inline once the thread has run every earlier one.
 * Errors: ODK_E_INVALID (q NULL), ODK_E_NOMEM (done not recorded, retry). */
ODK_PUBLIC int odk_queue_cancel(odk_queue *q, void (*done)(void *ctx), void *ctx);

/* Releasing the last reference of a queue that was never cancelled cancels it
 * (without a done); its memory goes when its thread has finished.  Members
 * hold references on their queue, so this happens only once they are gone. */

/* ---- actions ----------------------------------------------------------- */

/* Creates an action: a callback fn(ctx, a) bound to q, invoked on q's thread
 * once per odk_action_post() (or timer expiry).  *out is a new reference;
 * the action holds a reference on q.  ctx stays the caller's.
 * Errors: ODK_E_INVALID (q, fn or out NULL), ODK_E_CANCELLED (q cancelled),
 * ODK_E_NOMEM. */
ODK_PUBLIC int odk_action_create(odk_queue *q, void (*fn)(void *ctx, odk_action *a), void *ctx,
                                 odk_action **out);

/* Sets the function run exactly once when a is cancelled (replacing any
 * earlier one; NULL clears it); the place to free ctx.
 * Errors: ODK_E_INVALID (a NULL), ODK_E_CANCELLED (a already cancelled: the
 * handler is not recorded and will not run). */
ODK_PUBLIC int odk_action_set_cancel_handler(odk_action *a, void (*handler)(void *ctx), void *ctx);

/* Queues one invocation of a on its queue, after the work already queued.
 * Errors: ODK_E_INVALID (a NULL), ODK_E_CANCELLED (a or its queue was
 * cancelled; logged), ODK_E_NOMEM. */
ODK_PUBLIC int odk_action_post(odk_action *a);

/* Cancels a: invocations queued but not started are dropped, no new one
 * starts, and the cancel handler runs exactly once, on a's queue thread, after
 * the last invocation has returned (if the queue's thread were already gone,
 * synchronously in the caller; cancelling a queue cancels its actions first,
 * so in practice it is always the queue's thread).  Legal from any thread,
 * inside a's own invocation, before or after its queue or its timer was
 * cancelled.  Idempotent: always ODK_OK for a non-NULL a.
 * Errors: ODK_E_INVALID (a NULL). */
ODK_PUBLIC int odk_action_cancel(odk_action *a);

/* a's queue (borrowed: a holds a reference until its last release), or NULL
 * for NULL.  Never fails. */
ODK_PUBLIC odk_queue *odk_action_queue(const odk_action *a);

/* ---- fd sources -------------------------------------------------------- */

/* Watches fd (borrowed: never closed by the source; the source watches its
 * own duplicate, so closing fd before cancelling is harmless) for events
 * (EPOLLIN, EPOLLOUT, ...; level-triggered).  fn(ctx, revents) runs on q's
 * thread while fd is ready; EPOLLERR/EPOLLHUP are always reported.  Starts
 * enabled.  *out is a new reference.
 * Errors: ODK_E_INVALID (q, fn or out NULL, bad fd), ODK_E_CANCELLED (q
 * cancelled), ODK_E_NOMEM, ODK_E_IO (dup or epoll_ctl failed). */
ODK_PUBLIC int odk_fd_source_create(odk_queue *q, int fd, uint32_t events,
                                    void (*fn)(void *ctx, uint32_t revents), void *ctx,
                                    odk_fd_source **out);

/* Stops (false) or resumes (true) delivery; no-op if already so.  From
 * another thread, a callback already being delivered may still run once.
 * Errors: ODK_E_INVALID (s NULL), ODK_E_CANCELLED (s cancelled), ODK_E_IO
 * (epoll_ctl failed; logged). */
ODK_PUBLIC int odk_fd_source_set_enabled(odk_fd_source *s, bool on);

/* Changes the events watched (takes effect for the next wait; recorded for a
 * disabled source).  Errors: ODK_E_INVALID (s NULL), ODK_E_CANCELLED (s
 * cancelled), ODK_E_IO (epoll_ctl failed; logged). */
ODK_PUBLIC int odk_fd_source_set_events(odk_fd_source *s, uint32_t events);

/* Cancels s: fn is not called again once this returns on s's queue thread
 * (from another thread, a call already started may finish).  done(ctx) (may
 * be NULL) runs once on the queue's thread when fn can no longer run.
 * Idempotent: a later call returns ODK_OK and runs its done once, after
 * cancellation completes (in call order; inline once every earlier done of s
 * has run).  Errors: ODK_E_INVALID (s NULL), ODK_E_NOMEM (done not recorded). */
ODK_PUBLIC int odk_fd_source_cancel(odk_fd_source *s, void (*done)(void *ctx), void *ctx);

/* ---- timers ------------------------------------------------------------ */

/* Creates a disarmed timer (timerfd, CLOCK_MONOTONIC) on q, without an
 * action.  *out is a new reference; the timer holds a reference on q.
 * Errors: ODK_E_INVALID (q or out NULL), ODK_E_CANCELLED (q cancelled),
 * ODK_E_NOMEM, ODK_E_IO (timerfd or epoll failed; logged). */
ODK_PUBLIC int odk_timer_create(odk_queue *q, odk_timer **out);

/* Sets the action invoked at each expiry (retained by t: the caller keeps its
 * own reference; the previous one is released; NULL clears).  Expiries that
 * pile up while the queue is busy are coalesced into one invocation.  A
 * cancelled action is simply not invoked.
 * Errors: ODK_E_INVALID (t NULL), ODK_E_CANCELLED (t cancelled). */
ODK_PUBLIC int odk_timer_set_handler(odk_timer *t, odk_action *a);

/* (Re)arms t to expire delay_ns from now (0 = as soon as possible), then
 * every interval_ns (0 = one-shot).
 * Errors: ODK_E_INVALID (t NULL), ODK_E_CANCELLED (t cancelled), ODK_E_IO
 * (timerfd_settime failed; logged). */
ODK_PUBLIC int odk_timer_arm(odk_timer *t, uint64_t delay_ns, uint64_t interval_ns);

/* Stops t; it can be armed again.  From another thread, an expiry already
 * being delivered may still run.  Errors: ODK_E_INVALID (t NULL),
 * ODK_E_CANCELLED, ODK_E_IO (timerfd_settime failed; logged). */
ODK_PUBLIC int odk_timer_disarm(odk_timer *t);

/* Cancels t: disarms it for good and releases its action (the action itself
 * is not cancelled; cancel it too, before or after, in any order).  done(ctx)
 * (may be NULL) runs once on the queue's thread when no expiry can be
 * delivered any more.  Idempotent like odk_fd_source_cancel.
 * Errors: ODK_E_INVALID (t NULL), ODK_E_NOMEM (done not recorded). */
ODK_PUBLIC int odk_timer_cancel(odk_timer *t, void (*done)(void *ctx), void *ctx);

#ifdef __cplusplus
}
#endif
#endif
