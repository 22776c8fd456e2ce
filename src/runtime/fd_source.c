/* SPDX-License-Identifier: MIT */
/* fd event sources: a file descriptor in the queue's epoll.  The hot path
 * is one epoll_wait wake-up -> fd_event -> fn, with one atomic load.
 *
 * The source registers its own duplicate of the caller's fd: epoll keys on
 * the open file, so if it watched the caller's fd and the caller closed it
 * while a dup existed elsewhere (a fork), the registration could never be
 * removed and would keep firing at freed memory (epoll(7), Q6). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/runtime_internal.h"

struct odk_fd_source {
    queue_member m; /* offset 0 */
    void (*fn)(void *ctx, uint32_t revents);
    void *ctx;
    atomic_bool deliver; /* enabled and not cancelled */
    int fd;              /* our duplicate; under m.lock */
    uint32_t events;     /* under m.lock */
    bool enabled;        /* registered in epoll; under m.lock */
};

static void fd_free(odk_object *obj)
{
    odk_fd_source *s = (odk_fd_source *)obj;
    member_destroy(&s->m);
    free(s);
}

static void fd_event(queue_member *m, uint32_t revents)
{
    odk_fd_source *s = (odk_fd_source *)m;
    if (atomic_load_explicit(&s->deliver, memory_order_acquire))
        s->fn(s->ctx, revents);
}

static void fd_cancel_start(queue_member *m)
{
    odk_fd_source *s = (odk_fd_source *)m;
    pthread_mutex_lock(&m->lock);
    atomic_store(&s->deliver, false);
    if (s->enabled)
        member_epoll_ctl(m, EPOLL_CTL_DEL, s->fd, 0);
    s->enabled = false;
    close(s->fd);
    s->fd = -1;
    pthread_mutex_unlock(&m->lock);
}

static const struct member_ops fd_ops = {
    .kind = "fd source",
    .event = fd_event,
    .cancel_start = fd_cancel_start,
};

int odk_fd_source_create(odk_queue *q, int fd, uint32_t events,
                         void (*fn)(void *ctx, uint32_t revents), void *ctx, odk_fd_source **out)
{
    if (out)
        *out = NULL; /* also when another argument is bad (status.h) */
    if (!q || !fn || !out || fd < 0) {
        odk_warn("odk_fd_source_create (queue %s, fd %d): %s", odk_queue_name(q), fd,
                 !q     ? "queue is NULL"
                 : !fn  ? "function is NULL"
                 : !out ? "out is NULL"
                        : "bad fd");
        return ODK_E_INVALID;
    }
    odk_fd_source *s = calloc(1, sizeof *s);
    if (!s)
        return ODK_E_NOMEM;
    s->fn = fn;
    s->ctx = ctx;
    s->events = events;
    s->enabled = true;
    atomic_init(&s->deliver, true);
    s->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (s->fd < 0) {
        int err = errno;
        odk_warn("queue %s: fd source on fd %d: %s", odk_queue_name(q), fd, strerror(err));
        free(s);
        return err == EBADF ? ODK_E_INVALID : ODK_E_IO;
    }
    int st = member_attach(&s->m, q, &fd_ops, fd_free, s->fd, events);
    if (st < 0) {
        close(s->fd);
        free(s);
        return st;
    }
    *out = s;
    return ODK_OK;
}

static int fd_lock(odk_fd_source *s, const char *what)
{
    if (!s) {
        odk_warn("odk_fd_source_%s: source is NULL", what);
        return ODK_E_INVALID;
    }
    pthread_mutex_lock(&s->m.lock);
    if (atomic_load(&s->m.cancelled)) {
        pthread_mutex_unlock(&s->m.lock);
        odk_warn("fd source %p (queue %s): %s after it was cancelled", (void *)s,
                 odk_queue_name(s->m.q), what);
        return ODK_E_CANCELLED;
    }
    return ODK_OK;
}

int odk_fd_source_set_enabled(odk_fd_source *s, bool on)
{
    int st = fd_lock(s, "set_enabled");
    if (st < 0)
        return st;
    /* Disabling removes the fd from epoll: epoll reports EPOLLHUP/EPOLLERR
     * even for an empty event mask. */
    if (on != s->enabled)
        st = member_epoll_ctl(&s->m, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, s->fd, s->events);
    if (st == ODK_OK) {
        s->enabled = on;
        atomic_store(&s->deliver, on);
    }
    pthread_mutex_unlock(&s->m.lock);
    return st;
}

int odk_fd_source_set_events(odk_fd_source *s, uint32_t events)
{
    int st = fd_lock(s, "set_events");
    if (st < 0)
        return st;
    if (s->enabled)
        st = member_epoll_ctl(&s->m, EPOLL_CTL_MOD, s->fd, events);
    if (st == ODK_OK)
        s->events = events;
    pthread_mutex_unlock(&s->m.lock);
    return st;
}

int odk_fd_source_cancel(odk_fd_source *s, void (*done)(void *ctx), void *ctx)
{
    if (!s) {
        odk_warn("odk_fd_source_cancel: source is NULL");
        return ODK_E_INVALID;
    }
    return member_cancel(&s->m, done, ctx);
}
