/* SPDX-License-Identifier: MIT */
/* test_util.h — helpers the cmocka unit tests share (header-only).
 *
 * Include after <cmocka.h>.  Everything is static inline, so a test that
 * uses none of the queue helpers does not need the runtime library.
 */
#ifndef ODK_TEST_UTIL_H
#define ODK_TEST_UTIL_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#include "odk/queue.h"

/* Waits (yielding, then sleeping 10 us at a time, about a minute in all)
 * until *v reaches want; false if it never does. */
static inline bool wait_at_least(atomic_int *v, int want)
{
    for (long i = 0; i < 6000000; i++) {
        if (atomic_load(v) >= want)
            return true;
        if (i < 1000)
            sched_yield();
        else
            usleep(10);
    }
    return false;
}

static inline void noop(void *ctx)
{
    (void)ctx;
}

/* A callback that counts its runs in the atomic_int ctx points to. */
static inline void count(void *ctx)
{
    atomic_fetch_add((atomic_int *)ctx, 1);
}

/* Returns once everything queued on q before it has run. */
static inline void barrier(odk_queue *q)
{
    assert_int_equal(odk_queue_dispatch_sync(q, noop, NULL), ODK_OK);
}

/* A new queue (the test's reference). */
static inline odk_queue *new_queue(const char *name)
{
    odk_queue *q;
    assert_int_equal(odk_queue_create(name, &q), ODK_OK);
    return q;
}

/* Cancels q, waits until its last work and its cancellation have run, and
 * drops the test's reference. */
static inline void finish_queue(odk_queue *q)
{
    atomic_int done = 0;
    assert_int_equal(odk_queue_cancel(q, count, &done), ODK_OK);
    assert_true(wait_at_least(&done, 1));
    odk_release(q);
}

#endif
