/* SPDX-License-Identifier: MIT */
/* loop.h — odkd's event loop: one thread, epoll for descriptors, a sorted
 * list for timers.  Core layer: it calls nothing above it. */
#ifndef ODK_DAEMON_LOOP_H
#define ODK_DAEMON_LOOP_H

#include <stdint.h>

struct odkd;

typedef void (*watch_fn)(struct odkd *d, void *ptr, uint32_t events);

struct watch {
    int fd;
    watch_fn fn;
    void *ptr;
};

/* Watches fd for events; fn(d, ptr, events) runs on the loop thread.
 * ODK_E_IO when epoll refuses the descriptor (logged). */
int loop_add(struct odkd *d, struct watch *w, int fd, uint32_t events, watch_fn fn, void *ptr);
/* Changes the events a watch waits for (EPOLLIN, EPOLLOUT...).  ODK_E_IO
 * when epoll refuses (logged). */
int loop_mod(struct odkd *d, struct watch *w, uint32_t events);
/* Stops watching; safe on a watch that was never added or already removed. */
void loop_del(struct odkd *d, struct watch *w);

typedef void (*timer_fn)(struct odkd *d, void *ptr);
/* Calls fn(d, ptr) once after ms milliseconds; returns an id for
 * loop_timer_cancel, or 0 when out of memory (logged; fn never runs). */
uint64_t loop_timer(struct odkd *d, uint64_t ms, timer_fn fn, void *ptr);
/* Cancels a pending timer; ids that already fired (or 0) are ignored. */
void loop_timer_cancel(struct odkd *d, uint64_t id);
/* CLOCK_MONOTONIC in milliseconds. */
uint64_t loop_now_ms(void);
/* Frees ptr with fn after the current batch of events, so a watch that an
 * earlier callback in the batch removed is never touched after its free. */
void loop_defer_free(struct odkd *d, void (*fn)(void *ptr), void *ptr);
/* Runs until d->quit; ODK_E_IO when epoll fails. */
int loop_run(struct odkd *d);
/* Frees pending timers and deferred frees (at exit). */
void loop_free(struct odkd *d);

#endif
