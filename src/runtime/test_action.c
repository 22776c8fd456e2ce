/* SPDX-License-Identifier: MIT */
/* Actions: invocation, cancel in every order (action/queue, inside/outside,
 * during a running invocation), the cancel handler exactly once, and a
 * stress loop of concurrent posts and cancels.  No wall-clock asserts. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/test_util.h"

#include "odk/log.h"
#include "odk/queue.h"

/* One action's observable life. */
struct act {
    odk_queue *q;
    odk_action *a;
    atomic_int invoked;       /* invocations that ran */
    atomic_int running;       /* invocations running now */
    atomic_int handled;       /* cancel handler runs */
    atomic_int after_handler; /* invocations that started after the handler */
    atomic_int handler_during_invocation;
    atomic_int handler_off_queue;
    atomic_int wrong_queue;
    atomic_int cancel_inside; /* cancel from inside the next invocation */
    atomic_int block;         /* invocations wait while this is set */
    atomic_int blocked;       /* an invocation is waiting */
};

static void act_fn(void *ctx, odk_action *a)
{
    struct act *t = ctx;
    if (!odk_queue_is_current(t->q) || a != t->a)
        atomic_fetch_add(&t->wrong_queue, 1);
    if (atomic_load(&t->handled))
        atomic_fetch_add(&t->after_handler, 1);
    atomic_fetch_add(&t->running, 1);
    if (atomic_load(&t->block)) {
        atomic_store(&t->blocked, 1);
        while (atomic_load(&t->block))
            usleep(50);
    }
    if (atomic_load(&t->cancel_inside) && odk_action_cancel(a) != ODK_OK)
        atomic_fetch_add(&t->wrong_queue, 1); /* no cmocka asserts off the main thread */
    atomic_fetch_add(&t->invoked, 1);
    atomic_fetch_sub(&t->running, 1);
}

static void act_handler(void *ctx)
{
    struct act *t = ctx;
    if (atomic_load(&t->running))
        atomic_fetch_add(&t->handler_during_invocation, 1);
    if (!odk_queue_is_current(t->q))
        atomic_fetch_add(&t->handler_off_queue, 1);
    atomic_fetch_add(&t->handled, 1);
}

static void act_open(struct act *t, odk_queue *q)
{
    memset(t, 0, sizeof *t);
    t->q = q;
    assert_int_equal(odk_action_create(q, act_fn, t, &t->a), ODK_OK);
    assert_int_equal(odk_action_set_cancel_handler(t->a, act_handler, t), ODK_OK);
}

/* The invariants every test ends with. */
static void act_check(struct act *t)
{
    assert_true(wait_at_least(&t->handled, 1));
    if (t->q)
        barrier(t->q);
    assert_int_equal(atomic_load(&t->handled), 1);
    assert_int_equal(atomic_load(&t->after_handler), 0);
    assert_int_equal(atomic_load(&t->handler_during_invocation), 0);
    assert_int_equal(atomic_load(&t->handler_off_queue), 0);
    assert_int_equal(atomic_load(&t->wrong_queue), 0);
}

static void test_post_invokes(void **state)
{
    odk_queue *q = new_queue("post");
    struct act t;
    act_open(&t, q);
    for (int i = 0; i < 100; i++)
        assert_int_equal(odk_action_post(t.a), ODK_OK);
    assert_true(wait_at_least(&t.invoked, 100));
    assert_ptr_equal(odk_action_queue(t.a), q);
    assert_int_equal(odk_action_cancel(t.a), ODK_OK);
    act_check(&t);
    assert_int_equal(atomic_load(&t.invoked), 100);
    odk_release(t.a);
    finish_queue(q);
}

static void test_cancel_idempotent_and_misuse(void **state)
{
    odk_queue *q = new_queue("idem");
    struct act t;
    act_open(&t, q);
    for (int i = 0; i < 5; i++)
        assert_int_equal(odk_action_cancel(t.a), ODK_OK);
    act_check(&t);
    assert_int_equal(odk_action_cancel(t.a), ODK_OK); /* after completion too */
    assert_int_equal(odk_action_post(t.a), ODK_E_CANCELLED);
    assert_int_equal(odk_action_set_cancel_handler(t.a, act_handler, &t), ODK_E_CANCELLED);
    barrier(q);
    assert_int_equal(atomic_load(&t.handled), 1);
    assert_int_equal(atomic_load(&t.invoked), 0);

    assert_int_equal(odk_action_post(NULL), ODK_E_INVALID);
    assert_int_equal(odk_action_cancel(NULL), ODK_E_INVALID);
    assert_int_equal(odk_action_set_cancel_handler(NULL, NULL, NULL), ODK_E_INVALID);
    /* status.h: the out-pointer is NULL after any error, not left stale. */
    odk_action *a = t.a;
    assert_int_equal(odk_action_create(NULL, act_fn, NULL, &a), ODK_E_INVALID);
    assert_null(a);
    a = t.a;
    assert_int_equal(odk_action_create(q, NULL, NULL, &a), ODK_E_INVALID);
    assert_null(a);
    assert_int_equal(odk_action_create(q, act_fn, NULL, NULL), ODK_E_INVALID);
    assert_null(odk_action_queue(NULL));
    odk_release(t.a);
    finish_queue(q);
}

/* An action without a cancel handler is fine to cancel. */
static void test_no_handler(void **state)
{
    odk_queue *q = new_queue("nohandler");
    odk_action *a;
    assert_int_equal(odk_action_create(q, act_fn, NULL, &a), ODK_OK);
    assert_int_equal(odk_action_set_cancel_handler(a, NULL, NULL), ODK_OK);
    assert_int_equal(odk_action_cancel(a), ODK_OK);
    odk_release(a);
    finish_queue(q);
}

/* Action then queue. */
static void test_action_then_queue(void **state)
{
    odk_queue *q = new_queue("aq");
    struct act t;
    act_open(&t, q);
    odk_action_post(t.a);
    assert_int_equal(odk_action_cancel(t.a), ODK_OK);
    atomic_int qdone = 0;
    assert_int_equal(odk_queue_cancel(q, count, &qdone), ODK_OK);
    assert_true(wait_at_least(&qdone, 1));
    t.q = NULL; /* no barrier on a finished queue */
    act_check(&t);
    assert_int_equal(odk_action_cancel(t.a), ODK_OK);
    odk_release(t.a);
    odk_release(q);
}

/* Queue then action: the queue cancels it; cancelling again is a no-op. */
static void test_queue_then_action(void **state)
{
    odk_queue *q = new_queue("qa");
    struct act t;
    act_open(&t, q);
    for (int i = 0; i < 10; i++)
        odk_action_post(t.a);
    atomic_int qdone = 0;
    assert_int_equal(odk_queue_cancel(q, count, &qdone), ODK_OK);
    assert_int_equal(odk_action_cancel(t.a), ODK_OK);
    assert_true(wait_at_least(&qdone, 1));
    /* the handler ran before the queue's done, the queue's last act */
    assert_int_equal(atomic_load(&t.handled), 1);
    assert_int_equal(odk_action_cancel(t.a), ODK_OK);
    assert_int_equal(odk_action_post(t.a), ODK_E_CANCELLED);
    t.q = NULL;
    act_check(&t);
    odk_release(t.a);
    odk_release(q);
}

/* Queue cancelled, then the action cancelled from the queue's own done. */
static void cancel_action_in_done(void *ctx)
{
    struct act *t = ctx;
    if (odk_action_cancel(t->a) != ODK_OK || odk_action_post(t->a) != ODK_E_CANCELLED)
        atomic_fetch_add(&t->wrong_queue, 1);
    atomic_fetch_add(&t->invoked, 1000);
}

static void test_action_cancel_in_queue_done(void **state)
{
    odk_queue *q = new_queue("qdone");
    struct act t;
    act_open(&t, q);
    assert_int_equal(odk_queue_cancel(q, cancel_action_in_done, &t), ODK_OK);
    assert_true(wait_at_least(&t.invoked, 1000));
    t.q = NULL;
    act_check(&t);
    odk_release(t.a);
    odk_release(q);
}

/* Cancel from inside the action's own invocation: the handler follows
 * after the invocation returns; queued invocations are dropped. */
static void test_cancel_inside_invocation(void **state)
{
    odk_queue *q = new_queue("inside");
    struct act t;
    act_open(&t, q);
    atomic_store(&t.cancel_inside, 1);
    for (int i = 0; i < 20; i++)
        odk_action_post(t.a);
    act_check(&t);
    assert_int_equal(atomic_load(&t.invoked), 1);
    odk_release(t.a);
    finish_queue(q);
}

/* Cancel from inside the queue (another work item). */
static void cancel_from_item(void *ctx)
{
    struct act *t = ctx;
    if (odk_action_cancel(t->a) != ODK_OK || odk_action_cancel(t->a) != ODK_OK)
        atomic_fetch_add(&t->wrong_queue, 1);
    /* the handler has not run yet: it is queued behind this item */
    if (atomic_load(&t->handled) != 0)
        atomic_fetch_add(&t->wrong_queue, 1);
}

static void test_cancel_inside_queue(void **state)
{
    odk_queue *q = new_queue("inq");
    struct act t;
    act_open(&t, q);
    odk_action_post(t.a);
    assert_int_equal(odk_queue_dispatch_async(q, cancel_from_item, &t), ODK_OK);
    act_check(&t);
    assert_int_equal(atomic_load(&t.invoked), 1);
    odk_release(t.a);
    finish_queue(q);
}

/* Pending invocations are dropped: the queue is kept busy while posts pile
 * up, then the action is cancelled. */
static void block_item(void *ctx)
{
    struct act *t = ctx;
    atomic_store(&t->blocked, 1);
    while (atomic_load(&t->block))
        usleep(50);
}

static void test_pending_dropped(void **state)
{
    odk_queue *q = new_queue("drop");
    struct act t;
    act_open(&t, q);
    atomic_store(&t.block, 1);
    assert_int_equal(odk_queue_dispatch_async(q, block_item, &t), ODK_OK);
    assert_true(wait_at_least(&t.blocked, 1));
    for (int i = 0; i < 100; i++)
        assert_int_equal(odk_action_post(t.a), ODK_OK);
    assert_int_equal(odk_action_cancel(t.a), ODK_OK);
    atomic_store(&t.block, 0);
    act_check(&t);
    assert_int_equal(atomic_load(&t.invoked), 0);
    odk_release(t.a);
    finish_queue(q);
}

/* Cancel from another thread while an invocation runs: the handler waits
 * for it to return. */
static void test_cancel_during_invocation(void **state)
{
    odk_queue *q = new_queue("during");
    struct act t;
    act_open(&t, q);
    atomic_store(&t.block, 1);
    assert_int_equal(odk_action_post(t.a), ODK_OK);
    assert_int_equal(odk_action_post(t.a), ODK_OK);
    assert_true(wait_at_least(&t.blocked, 1));
    assert_int_equal(odk_action_cancel(t.a), ODK_OK);
    assert_int_equal(odk_action_cancel(t.a), ODK_OK);
    /* The invocation is still blocked, so the handler cannot have run. */
    assert_int_equal(atomic_load(&t.handled), 0);
    assert_int_equal(atomic_load(&t.running), 1);
    atomic_store(&t.block, 0);
    act_check(&t);
    assert_int_equal(atomic_load(&t.invoked), 1); /* the second was dropped */
    odk_release(t.a);
    finish_queue(q);
}

/* Releasing the action before its queue is cancelled: the queue keeps it
 * until cancelled, then the handler runs once and it is freed. */
static void test_release_before_cancel(void **state)
{
    odk_queue *q = new_queue("rel");
    struct act t;
    act_open(&t, q);
    odk_action_post(t.a);
    odk_release(t.a);
    assert_true(wait_at_least(&t.invoked, 1));
    atomic_int qdone = 0;
    assert_int_equal(odk_queue_cancel(q, count, &qdone), ODK_OK);
    assert_true(wait_at_least(&qdone, 1));
    t.q = NULL;
    act_check(&t);
    odk_release(q);
}

/* An action of queue A posted from queue B's thread runs on A. */
struct cross {
    odk_action *a;
    atomic_int st;
};

static void post_from_other(void *ctx)
{
    struct cross *c = ctx;
    atomic_store(&c->st, odk_action_post(c->a) == ODK_OK ? 1 : -1);
}

static void test_post_from_other_queue(void **state)
{
    odk_queue *qa = new_queue("a"), *qb = new_queue("b");
    struct act t;
    act_open(&t, qa);
    struct cross c = {.a = t.a};
    assert_int_equal(odk_queue_dispatch_sync(qb, post_from_other, &c), ODK_OK);
    assert_int_equal(atomic_load(&c.st), 1);
    assert_true(wait_at_least(&t.invoked, 1));
    assert_int_equal(odk_action_cancel(t.a), ODK_OK);
    act_check(&t);
    odk_release(t.a);
    finish_queue(qb);
    finish_queue(qa);
}

/* An action that re-posts itself forever must not starve the queue's
 * other work, its fd sources or its cancellation. */
struct repost {
    atomic_int runs, refused, readable;
    int rfd;
};

static void repost_fn(void *ctx, odk_action *a)
{
    struct repost *r = ctx;
    atomic_fetch_add(&r->runs, 1);
    if (odk_action_post(a) != ODK_OK)
        atomic_fetch_add(&r->refused, 1);
}

static void repost_readable(void *ctx, uint32_t revents)
{
    struct repost *r = ctx;
    char c;
    if (read(r->rfd, &c, 1) == 1)
        atomic_fetch_add(&r->readable, 1);
}

static void test_self_repost_does_not_starve(void **state)
{
    odk_queue *q = new_queue("repost");
    struct repost r = {0};
    int p[2];
    assert_int_equal(pipe(p), 0);
    r.rfd = p[0];
    odk_fd_source *s;
    assert_int_equal(odk_fd_source_create(q, p[0], EPOLLIN, repost_readable, &r, &s), ODK_OK);
    odk_action *a;
    assert_int_equal(odk_action_create(q, repost_fn, &r, &a), ODK_OK);
    assert_int_equal(odk_action_post(a), ODK_OK);
    assert_true(wait_at_least(&r.runs, 100));
    barrier(q);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_true(wait_at_least(&r.readable, 1));
    finish_queue(q); /* cancels the action mid-loop */
    assert_true(atomic_load(&r.refused) <= 1);
    odk_release(a);
    odk_release(s);
    close(p[0]);
    close(p[1]);
}

/* ---- stress ------------------------------------------------------------ */

struct stress {
    struct act *t;
    atomic_int *go;
    int posts;
    bool cancel;
};

static void *stress_thread(void *arg)
{
    struct stress *s = arg;
    while (!atomic_load(s->go))
        sched_yield();
    for (int i = 0; i < s->posts; i++) {
        int st = odk_action_post(s->t->a);
        if (st != ODK_OK && st != ODK_E_CANCELLED)
            atomic_fetch_add(&s->t->wrong_queue, 1000);
        if (s->cancel && i == s->posts / 2)
            odk_action_cancel(s->t->a);
    }
    if (s->cancel)
        odk_action_cancel(s->t->a);
    return NULL;
}

/* Each iteration: one action, two posting threads, cancels from a third
 * thread, from inside the invocation, from the main thread and (sometimes)
 * by cancelling the whole queue, all at once.  Checks: handler exactly once,
 * never during or before an invocation, on the queue's thread. */
static void test_stress_concurrent_post_cancel(void **state)
{
    enum { ITERATIONS = 3000, PER_QUEUE = 150 };
    odk_queue *q = NULL;
    for (int it = 0; it < ITERATIONS; it++) {
        if (it % PER_QUEUE == 0) {
            if (q)
                finish_queue(q);
            q = new_queue("stress");
        }
        bool kill_queue = it % PER_QUEUE == PER_QUEUE - 1;
        struct act *t = malloc(sizeof *t);
        act_open(t, q);
        atomic_store(&t->cancel_inside, it % 3 == 0);
        atomic_int go = 0;
        struct stress s[3] = {
            {t, &go, 8, false},
            {t, &go, 8, it % 2 == 0},
            {t, &go, 4, true},
        };
        pthread_t th[3];
        for (int i = 0; i < 3; i++)
            pthread_create(&th[i], NULL, stress_thread, &s[i]);
        atomic_store(&go, 1);
        if (kill_queue)
            odk_queue_cancel(q, NULL, NULL);
        if (it % 5 == 0)
            odk_action_cancel(t->a);
        for (int i = 0; i < 3; i++)
            pthread_join(th[i], NULL);
        if (kill_queue) {
            finish_queue(q);
            q = NULL;
            t->q = NULL;
        }
        act_check(t);
        odk_release(t->a);
        free(t);
    }
    if (q)
        finish_queue(q);
}

/* Many actions on one queue, all cancelled by cancelling the queue while
 * posts are still arriving. */
struct flood {
    struct act *acts;
    int n;
    atomic_int *go;
};

static void *flood_thread(void *arg)
{
    struct flood *f = arg;
    while (!atomic_load(f->go))
        sched_yield();
    for (int round = 0; round < 20; round++)
        for (int i = 0; i < f->n; i++)
            odk_action_post(f->acts[i].a);
    return NULL;
}

static void test_stress_queue_cancel_flood(void **state)
{
    enum { N = 64, ROUNDS = 40 };
    for (int r = 0; r < ROUNDS; r++) {
        odk_queue *q = new_queue("flood");
        struct act *acts = calloc(N, sizeof *acts);
        for (int i = 0; i < N; i++)
            act_open(&acts[i], q);
        atomic_int go = 0;
        struct flood f = {acts, N, &go};
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&th[i], NULL, flood_thread, &f);
        atomic_store(&go, 1);
        for (int i = 0; i < N; i += 3)
            odk_action_cancel(acts[i].a);
        atomic_int qdone = 0;
        odk_queue_cancel(q, count, &qdone);
        for (int i = 1; i < N; i += 3)
            odk_action_cancel(acts[i].a);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        assert_true(wait_at_least(&qdone, 1));
        for (int i = 0; i < N; i++) {
            acts[i].q = NULL;
            act_check(&acts[i]);
            odk_release(acts[i].a);
        }
        free(acts);
        odk_release(q);
    }
}

int main(void)
{
    /* Stress posts race cancels on purpose; each refused post logs a warning.
     * Set before any thread exists. */
    if (!getenv("ODK_TEST_VERBOSE"))
        odk_log_set_level(ODK_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_invokes),
        cmocka_unit_test(test_cancel_idempotent_and_misuse),
        cmocka_unit_test(test_no_handler),
        cmocka_unit_test(test_action_then_queue),
        cmocka_unit_test(test_queue_then_action),
        cmocka_unit_test(test_action_cancel_in_queue_done),
        cmocka_unit_test(test_cancel_inside_invocation),
        cmocka_unit_test(test_cancel_inside_queue),
        cmocka_unit_test(test_pending_dropped),
        cmocka_unit_test(test_cancel_during_invocation),
        cmocka_unit_test(test_release_before_cancel),
        cmocka_unit_test(test_post_from_other_queue),
        cmocka_unit_test(test_self_repost_does_not_starve),
        cmocka_unit_test(test_stress_concurrent_post_cancel),
        cmocka_unit_test(test_stress_queue_cancel_flood),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
