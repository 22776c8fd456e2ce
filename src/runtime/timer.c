/* SPDX-License-Identifier: MIT */
/* Timers (DriverKit's IOTimerDispatchSource) on a timerfd watched by the
 * queue's epoll.  An expiry invokes the handler action directly when the
 * action belongs to the timer's queue (we are on its thread already), and
 * posts it otherwise. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "runtime/runtime_internal.h"

struct odk_timer {
    queue_member m;     /* offset 0 */
    int tfd;            /* closed at completion; under m.lock */
    odk_action *action; /* a reference; under m.lock */
};

static void timer_free(odk_object *obj)
{
    odk_timer *t = (odk_timer *)obj;
    member_destroy(&t->m);
    free(t);
}

static void timer_event(queue_member *m, uint32_t revents)
{
    odk_timer *t = (odk_timer *)m;
    uint64_t expirations;
    /* EAGAIN: disarmed or re-armed since epoll saw it. */
    if (read(t->tfd, &expirations, sizeof expirations) != (ssize_t)sizeof expirations)
        return;
    if (atomic_load_explicit(&m->cancelled, memory_order_acquire))
        return;
    pthread_mutex_lock(&m->lock);
    odk_action *a = odk_retain(t->action);
    pthread_mutex_unlock(&m->lock);
    if (!a)
        return;
    if (odk_queue_is_current(odk_action_queue(a)))
        action_invoke_now(a);
    else
        odk_action_post(a);
    odk_release(a);
}

static void timer_cancel_start(queue_member *m)
{
    odk_timer *t = (odk_timer *)m;
    pthread_mutex_lock(&m->lock);
    struct itimerspec off = {{0, 0}, {0, 0}};
    timerfd_settime(t->tfd, 0, &off, NULL);
    member_epoll_ctl(m, EPOLL_CTL_DEL, t->tfd, 0);
    pthread_mutex_unlock(&m->lock);
}

static void timer_finish(queue_member *m)
{
    odk_timer *t = (odk_timer *)m;
    pthread_mutex_lock(&m->lock);
    odk_action *a = t->action;
    t->action = NULL;
    close(t->tfd);
    t->tfd = -1;
    pthread_mutex_unlock(&m->lock);
    odk_release(a);
}

static const struct member_ops timer_ops = {
    .kind = "timer",
    .event = timer_event,
    .cancel_start = timer_cancel_start,
    .finish = timer_finish,
};

int odk_timer_create(odk_queue *q, odk_timer **out)
{
    if (out)
        *out = NULL; /* also when another argument is bad (status.h) */
    if (!q || !out) {
        odk_warn("odk_timer_create (queue %s): %s is NULL", odk_queue_name(q), q ? "out" : "queue");
        return ODK_E_INVALID;
    }
    odk_timer *t = calloc(1, sizeof *t);
    if (!t)
        return ODK_E_NOMEM;
    t->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (t->tfd < 0) {
        odk_error("queue %s: timerfd_create: %s", odk_queue_name(q), strerror(errno));
        free(t);
        return ODK_E_IO;
    }
    int st = member_attach(&t->m, q, &timer_ops, timer_free, t->tfd, EPOLLIN);
    if (st < 0) {
        close(t->tfd);
        free(t);
        return st;
    }
    *out = t;
    return ODK_OK;
}

/* Locks t and checks it is usable; on error, logs and leaves it unlocked. */
static int timer_lock(odk_timer *t, const char *what)
{
    if (!t) {
        odk_warn("odk_timer_%s: timer is NULL", what);
        return ODK_E_INVALID;
    }
    pthread_mutex_lock(&t->m.lock);
    if (atomic_load(&t->m.cancelled)) {
        pthread_mutex_unlock(&t->m.lock);
        odk_warn("timer %p (queue %s): %s after it was cancelled", (void *)t,
                 odk_queue_name(t->m.q), what);
        return ODK_E_CANCELLED;
    }
    return ODK_OK;
}

int odk_timer_set_handler(odk_timer *t, odk_action *a)
{
    int st = timer_lock(t, "set_handler");
    if (st < 0)
        return st;
    odk_action *old = t->action;
    t->action = odk_retain(a);
    pthread_mutex_unlock(&t->m.lock);
    odk_release(old);
    return ODK_OK;
}

static int timer_set(odk_timer *t, uint64_t delay_ns, uint64_t interval_ns, const char *what)
{
    int st = timer_lock(t, what);
    if (st < 0)
        return st;
    struct itimerspec its = {
        .it_value = {(time_t)(delay_ns / 1000000000u), (long)(delay_ns % 1000000000u)},
        .it_interval = {(time_t)(interval_ns / 1000000000u), (long)(interval_ns % 1000000000u)},
    };
    if (timerfd_settime(t->tfd, 0, &its, NULL) < 0) {
        odk_error("timer %p (queue %s): timerfd_settime: %s", (void *)t, odk_queue_name(t->m.q),
                  strerror(errno));
        st = ODK_E_IO;
    }
    pthread_mutex_unlock(&t->m.lock);
    return st;
}

int odk_timer_arm(odk_timer *t, uint64_t delay_ns, uint64_t interval_ns)
{
    /* A zero it_value would disarm: "now" is the shortest real delay. */
    return timer_set(t, delay_ns ? delay_ns : 1, interval_ns, "arm");
}

int odk_timer_disarm(odk_timer *t)
{
    return timer_set(t, 0, 0, "disarm");
}

int odk_timer_cancel(odk_timer *t, void (*done)(void *ctx), void *ctx)
{
    if (!t) {
        odk_warn("odk_timer_cancel: timer is NULL");
        return ODK_E_INVALID;
    }
    return member_cancel(&t->m, done, ctx);
}
