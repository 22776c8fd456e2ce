/* SPDX-License-Identifier: MIT */
/* odkd's event loop: epoll for file descriptors, a sorted list for timers. */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>

#include "daemon/core/loop.h"
#include "daemon/odkd.h"
#include "odk/log.h"
#include "odk/status.h"

struct timer {
    uint64_t id;
    uint64_t when;
    timer_fn fn;
    void *ptr;
    struct timer *next;
};

uint64_t loop_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int loop_add(struct odkd *d, struct watch *w, int fd, uint32_t events, watch_fn fn, void *ptr)
{
    w->fd = fd;
    w->fn = fn;
    w->ptr = ptr;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        odk_error("epoll_ctl(%d): %m", fd);
        return ODK_E_IO;
    }
    return ODK_OK;
}

int loop_mod(struct odkd *d, struct watch *w, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(d->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0) {
        odk_error("epoll_ctl(%d): %m", w->fd);
        return ODK_E_IO;
    }
    return ODK_OK;
}

void loop_del(struct odkd *d, struct watch *w)
{
    if (w->fd >= 0)
        epoll_ctl(d->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->fd = -1;
    w->fn = NULL;
}

uint64_t loop_timer(struct odkd *d, uint64_t ms, timer_fn fn, void *ptr)
{
    struct timer *t = calloc(1, sizeof *t);
    if (!t) {
        odk_error("out of memory for a timer");
        return 0;
    }
    t->id = ++d->next_timer_id;
    t->when = loop_now_ms() + ms;
    t->fn = fn;
    t->ptr = ptr;
    struct timer **p = &d->timers;
    while (*p && (*p)->when <= t->when)
        p = &(*p)->next;
    t->next = *p;
    *p = t;
    return t->id;
}

void loop_timer_cancel(struct odkd *d, uint64_t id)
{
    for (struct timer **p = &d->timers; *p; p = &(*p)->next) {
        if ((*p)->id == id) {
            struct timer *t = *p;
            *p = t->next;
            free(t);
            return;
        }
    }
}

struct deferred {
    void (*fn)(void *ptr);
    void *ptr;
    struct deferred *next;
};

void loop_defer_free(struct odkd *d, void (*fn)(void *ptr), void *ptr)
{
    struct deferred *df = malloc(sizeof *df);
    if (!df) {
        /* Better a leak than a use-after-free in the current batch. */
        odk_error("out of memory deferring a free; leaking %p", ptr);
        return;
    }
    *df = (struct deferred){fn, ptr, d->deferred};
    d->deferred = df;
}

static void run_deferred(struct odkd *d)
{
    while (d->deferred) {
        struct deferred *df = d->deferred;
        d->deferred = df->next;
        df->fn(df->ptr);
        free(df);
    }
}

static void run_due_timers(struct odkd *d)
{
    uint64_t now = loop_now_ms();
    while (d->timers && d->timers->when <= now) {
        struct timer *t = d->timers;
        d->timers = t->next;
        t->fn(d, t->ptr);
        free(t);
    }
}

static bool timer_due(const struct odkd *d)
{
    return d->timers && d->timers->when <= loop_now_ms();
}

int loop_run(struct odkd *d)
{
    struct epoll_event evs[32];
    /* The descriptors were read once more after handlers ran, for the
     * timers that fell due meanwhile. */
    bool looked_again = false;
    while (!d->quit) {
        int timeout = -1;
        if (d->timers) {
            uint64_t now = loop_now_ms();
            timeout = d->timers->when > now ? (int)(d->timers->when - now) : 0;
        }
        int n = epoll_wait(d->epfd, evs, 32, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            odk_error("epoll_wait: %m");
            return ODK_E_IO;
        }
        for (int i = 0; i < n; i++) {
            struct watch *w = evs[i].data.ptr;
            /* A callback earlier in this batch may have removed w. */
            if (w->fn)
                w->fn(d, w->ptr, evs[i].events);
        }
        /* A handler can take long (a crash report waits for addr2line;
         * the machine may be loaded), and a timer that fell due meanwhile
         * is often a deadline whose reply is already waiting in a socket:
         * read the descriptors once more (the next round's timeout is 0)
         * before firing it, or a host that answered in time is killed
         * for missing its deadline. */
        if (n > 0 && !looked_again && timer_due(d)) {
            looked_again = true;
            run_deferred(d);
            continue;
        }
        looked_again = false;
        run_due_timers(d);
        run_deferred(d);
    }
    run_deferred(d);
    return ODK_OK;
}

void loop_free(struct odkd *d)
{
    run_deferred(d);
    while (d->timers) {
        struct timer *t = d->timers;
        d->timers = t->next;
        free(t);
    }
}
