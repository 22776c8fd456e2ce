/* SPDX-License-Identifier: MIT */
/* Timers: one-shot and periodic expiries, re-arming, handlers on other
 * queues, and story 1 — cancelling a timer, its action and its queue in any
 * order, from inside and outside, never aborting.  No wall-clock asserts:
 * only counts and orders, with generous waits. */
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

#define MS 1000000ull
#define US 1000ull

struct tt {
    odk_queue *q;
    odk_timer *t;
    odk_action *a;
    atomic_int fired, handled, timer_done, after_handler, after_timer_done, off_queue, bad;
    atomic_int cancel_action_inside, cancel_timer_inside, cancel_queue_inside;
    atomic_int queue_done;
};

static void queue_done(void *ctx)
{
    atomic_fetch_add(&((struct tt *)ctx)->queue_done, 1);
}

static void timer_done(void *ctx)
{
    atomic_fetch_add(&((struct tt *)ctx)->timer_done, 1);
}

static void on_fire(void *ctx, odk_action *a)
{
    struct tt *c = ctx;
    if (atomic_load(&c->handled))
        atomic_fetch_add(&c->after_handler, 1);
    if (atomic_load(&c->timer_done))
        atomic_fetch_add(&c->after_timer_done, 1);
    if (!odk_queue_is_current(odk_action_queue(a)))
        atomic_fetch_add(&c->off_queue, 1);
    atomic_fetch_add(&c->fired, 1);
    /* Cancels from inside the expiry, in the order the flags say. */
    if (atomic_load(&c->cancel_timer_inside) == 1 &&
        odk_timer_cancel(c->t, timer_done, c) != ODK_OK)
        atomic_fetch_add(&c->bad, 1);
    if (atomic_load(&c->cancel_action_inside) && odk_action_cancel(a) != ODK_OK)
        atomic_fetch_add(&c->bad, 1);
    if (atomic_load(&c->cancel_timer_inside) == 2 &&
        odk_timer_cancel(c->t, timer_done, c) != ODK_OK)
        atomic_fetch_add(&c->bad, 1);
    if (atomic_load(&c->cancel_queue_inside) &&
        odk_queue_cancel(odk_action_queue(a), queue_done, c) != ODK_OK)
        atomic_fetch_add(&c->bad, 1);
}

static void on_handler_cancelled(void *ctx)
{
    atomic_fetch_add(&((struct tt *)ctx)->handled, 1);
}

static void tt_open(struct tt *c, const char *name, odk_queue *action_queue)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(odk_queue_create(name, &c->q), ODK_OK);
    assert_int_equal(odk_timer_create(c->q, &c->t), ODK_OK);
    assert_int_equal(odk_action_create(action_queue ? action_queue : c->q, on_fire, c, &c->a),
                     ODK_OK);
    assert_int_equal(odk_action_set_cancel_handler(c->a, on_handler_cancelled, c), ODK_OK);
    assert_int_equal(odk_timer_set_handler(c->t, c->a), ODK_OK);
}

/* Everything cancelled exactly once, nothing fired after its cancel. */
static void tt_check_and_close(struct tt *c)
{
    assert_int_equal(odk_timer_cancel(c->t, timer_done, c), ODK_OK);
    assert_int_equal(odk_action_cancel(c->a), ODK_OK);
    assert_int_equal(odk_queue_cancel(c->q, queue_done, c), ODK_OK);
    assert_true(wait_at_least(&c->queue_done, 1));
    /* Dones run in order: once this one has, every earlier one has too. */
    atomic_int last = 0;
    assert_int_equal(odk_queue_cancel(c->q, count, &last), ODK_OK);
    assert_true(wait_at_least(&last, 1));
    assert_true(wait_at_least(&c->handled, 1));
    assert_int_equal(atomic_load(&c->handled), 1);
    assert_true(atomic_load(&c->timer_done) >= 1);
    assert_int_equal(atomic_load(&c->after_handler), 0);
    assert_int_equal(atomic_load(&c->after_timer_done), 0);
    assert_int_equal(atomic_load(&c->off_queue), 0);
    assert_int_equal(atomic_load(&c->bad), 0);
    odk_release(c->t);
    odk_release(c->a);
    odk_release(c->q);
}

static void test_one_shot(void **state)
{
    struct tt c;
    tt_open(&c, "oneshot", NULL);
    assert_int_equal(odk_timer_arm(c.t, 1 * MS, 0), ODK_OK);
    assert_true(wait_at_least(&c.fired, 1));
    usleep(20000); /* a one-shot cannot fire again, however long we wait */
    barrier(c.q);
    assert_int_equal(atomic_load(&c.fired), 1);
    /* re-arm, delay 0 = now */
    assert_int_equal(odk_timer_arm(c.t, 0, 0), ODK_OK);
    assert_true(wait_at_least(&c.fired, 2));
    barrier(c.q);
    assert_int_equal(atomic_load(&c.fired), 2);
    tt_check_and_close(&c);
}

static void disarm_on_queue(void *ctx)
{
    struct tt *c = ctx;
    if (odk_timer_disarm(c->t) != ODK_OK)
        atomic_fetch_add(&c->bad, 1);
}

static void test_periodic(void **state)
{
    struct tt c;
    tt_open(&c, "periodic", NULL);
    assert_int_equal(odk_timer_arm(c.t, 1 * MS, 1 * MS), ODK_OK);
    assert_true(wait_at_least(&c.fired, 5));
    /* Disarmed on the queue's own thread, no expiry can be in flight. */
    assert_int_equal(odk_queue_dispatch_sync(c.q, disarm_on_queue, &c), ODK_OK);
    int n = atomic_load(&c.fired);
    usleep(20000);
    barrier(c.q);
    assert_int_equal(atomic_load(&c.fired), n);
    tt_check_and_close(&c);
}

/* The handler action may live on another queue: expiries are posted. */
static void test_action_on_other_queue(void **state)
{
    odk_queue *other;
    assert_int_equal(odk_queue_create("other", &other), ODK_OK);
    struct tt c;
    tt_open(&c, "timerq", other);
    assert_int_equal(odk_timer_arm(c.t, 0, 1 * MS), ODK_OK);
    assert_true(wait_at_least(&c.fired, 3));
    assert_int_equal(odk_timer_cancel(c.t, timer_done, &c), ODK_OK);
    assert_int_equal(odk_action_cancel(c.a), ODK_OK);
    atomic_int odone = 0;
    assert_int_equal(odk_queue_cancel(other, count, &odone), ODK_OK);
    assert_true(wait_at_least(&odone, 1));
    tt_check_and_close(&c);
    odk_release(other);
}

/* Replacing and clearing the handler releases the old action (ASan checks
 * the leak); with no handler, expiries are consumed silently. */
static void test_set_handler_replace(void **state)
{
    struct tt c;
    tt_open(&c, "replace", NULL);
    odk_action *a2;
    atomic_int handled2 = 0;
    assert_int_equal(odk_action_create(c.q, on_fire, &c, &a2), ODK_OK);
    assert_int_equal(odk_action_set_cancel_handler(a2, count, &handled2), ODK_OK);
    assert_int_equal(odk_timer_set_handler(c.t, a2), ODK_OK);
    assert_int_equal(odk_timer_set_handler(c.t, NULL), ODK_OK);
    assert_int_equal(odk_timer_arm(c.t, 0, 1 * MS), ODK_OK);
    barrier(c.q);
    assert_int_equal(odk_timer_set_handler(c.t, c.a), ODK_OK);
    assert_true(wait_at_least(&c.fired, 2));
    assert_int_equal(odk_action_cancel(a2), ODK_OK);
    assert_true(wait_at_least(&handled2, 1));
    odk_release(a2);
    tt_check_and_close(&c);
}

/* ---- story 1: cancel in any order -------------------------------------- */

enum step { ACTION, TIMER, QUEUE };

/* Cancels the three in the given order from the main thread while the timer
 * fires every 100 us; each step is legal whatever came before. */
static void cancel_in_order(enum step a, enum step b, enum step c)
{
    struct tt t;
    tt_open(&t, "order", NULL);
    assert_int_equal(odk_timer_arm(t.t, 0, 100 * US), ODK_OK);
    assert_true(wait_at_least(&t.fired, 2));
    enum step order[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        switch (order[i]) {
        case ACTION:
            assert_int_equal(odk_action_cancel(t.a), ODK_OK);
            break;
        case TIMER:
            assert_int_equal(odk_timer_cancel(t.t, timer_done, &t), ODK_OK);
            break;
        case QUEUE:
            assert_int_equal(odk_queue_cancel(t.q, queue_done, &t), ODK_OK);
            break;
        }
    }
    /* and everything again, after all of it */
    assert_true(wait_at_least(&t.queue_done, 1));
    assert_int_equal(odk_timer_arm(t.t, 0, 0), ODK_E_CANCELLED);
    assert_int_equal(odk_timer_disarm(t.t), ODK_E_CANCELLED);
    assert_int_equal(odk_timer_set_handler(t.t, t.a), ODK_E_CANCELLED);
    assert_int_equal(odk_action_post(t.a), ODK_E_CANCELLED);
    tt_check_and_close(&t);
    assert_int_equal(atomic_load(&t.queue_done), 2); /* second cancel: inline */
}

static void test_order_action_timer_queue(void **state)
{
    cancel_in_order(ACTION, TIMER, QUEUE);
}
static void test_order_action_queue_timer(void **state)
{
    cancel_in_order(ACTION, QUEUE, TIMER);
}
static void test_order_timer_action_queue(void **state)
{
    cancel_in_order(TIMER, ACTION, QUEUE);
}
static void test_order_timer_queue_action(void **state)
{
    cancel_in_order(TIMER, QUEUE, ACTION);
}
static void test_order_queue_action_timer(void **state)
{
    cancel_in_order(QUEUE, ACTION, TIMER);
}
static void test_order_queue_timer_action(void **state)
{
    cancel_in_order(QUEUE, TIMER, ACTION);
}

/* From inside the expiry: action then timer, timer then action, and the
 * queue itself. */
static void cancel_inside(int timer_flag, int action, int queue)
{
    struct tt t;
    tt_open(&t, "inside", NULL);
    atomic_store(&t.cancel_timer_inside, timer_flag);
    atomic_store(&t.cancel_action_inside, action);
    atomic_store(&t.cancel_queue_inside, queue);
    assert_int_equal(odk_timer_arm(t.t, 0, 100 * US), ODK_OK);
    assert_true(wait_at_least(&t.fired, 1));
    if (timer_flag)
        assert_true(wait_at_least(&t.timer_done, 1));
    if (action)
        assert_true(wait_at_least(&t.handled, 1));
    if (queue)
        assert_true(wait_at_least(&t.queue_done, 1));
    tt_check_and_close(&t);
    if (timer_flag || action || queue)
        assert_int_equal(atomic_load(&t.fired), 1);
}

static void test_inside_action_then_timer(void **state)
{
    cancel_inside(2, 1, 0);
}
static void test_inside_timer_then_action(void **state)
{
    cancel_inside(1, 1, 0);
}
static void test_inside_timer_only(void **state)
{
    cancel_inside(1, 0, 0);
}
static void test_inside_action_only(void **state)
{
    cancel_inside(0, 1, 0);
}
static void test_inside_queue(void **state)
{
    cancel_inside(0, 0, 1);
}

/* The action cancelled while the timer keeps firing: expiries are dropped
 * quietly, the timer stays usable. */
static void test_action_cancelled_timer_keeps_running(void **state)
{
    struct tt t;
    tt_open(&t, "orphan", NULL);
    assert_int_equal(odk_timer_arm(t.t, 0, 100 * US), ODK_OK);
    assert_true(wait_at_least(&t.fired, 1));
    assert_int_equal(odk_action_cancel(t.a), ODK_OK);
    assert_true(wait_at_least(&t.handled, 1));
    usleep(5000);
    barrier(t.q);
    assert_int_equal(odk_timer_arm(t.t, 0, 100 * US), ODK_OK);
    tt_check_and_close(&t);
}

static void test_misuse(void **state)
{
    odk_timer *t = (odk_timer *)&t; /* stale: an error must set it to NULL */
    assert_int_equal(odk_timer_create(NULL, &t), ODK_E_INVALID);
    assert_null(t);
    assert_int_equal(odk_timer_arm(NULL, 0, 0), ODK_E_INVALID);
    assert_int_equal(odk_timer_disarm(NULL), ODK_E_INVALID);
    assert_int_equal(odk_timer_set_handler(NULL, NULL), ODK_E_INVALID);
    assert_int_equal(odk_timer_cancel(NULL, NULL, NULL), ODK_E_INVALID);
    odk_queue *q;
    assert_int_equal(odk_queue_create("tmisuse", &q), ODK_OK);
    assert_int_equal(odk_timer_create(q, NULL), ODK_E_INVALID);
    atomic_int done = 0;
    assert_int_equal(odk_queue_cancel(q, count, &done), ODK_OK);
    assert_true(wait_at_least(&done, 1));
    assert_int_equal(odk_timer_create(q, &t), ODK_E_CANCELLED);
    assert_null(t);
    odk_action *a = NULL;
    assert_int_equal(odk_action_create(q, on_fire, NULL, &a), ODK_E_CANCELLED);
    assert_null(a);
    odk_release(q);
}

/* Random orders, fast timers, cancels from the main thread racing expiries
 * on the queue's thread. */
static void test_stress_random_orders(void **state)
{
    static const enum step orders[6][3] = {
        {ACTION, TIMER, QUEUE}, {ACTION, QUEUE, TIMER}, {TIMER, ACTION, QUEUE},
        {TIMER, QUEUE, ACTION}, {QUEUE, ACTION, TIMER}, {QUEUE, TIMER, ACTION},
    };
    for (int it = 0; it < 600; it++) {
        struct tt t;
        tt_open(&t, "tstress", NULL);
        atomic_store(&t.cancel_action_inside, it % 7 == 0);
        atomic_store(&t.cancel_timer_inside, it % 11 == 0 ? 1 : 0);
        assert_int_equal(odk_timer_arm(t.t, 0, 20 * US), ODK_OK);
        if (it % 2)
            wait_at_least(&t.fired, 1);
        const enum step *o = orders[it % 6];
        for (int i = 0; i < 3; i++) {
            if (o[i] == ACTION)
                odk_action_cancel(t.a);
            else if (o[i] == TIMER)
                odk_timer_cancel(t.t, timer_done, &t);
            else
                odk_queue_cancel(t.q, queue_done, &t);
        }
        tt_check_and_close(&t);
    }
}

int main(void)
{
    if (!getenv("ODK_TEST_VERBOSE"))
        odk_log_set_level(ODK_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_shot),
        cmocka_unit_test(test_periodic),
        cmocka_unit_test(test_action_on_other_queue),
        cmocka_unit_test(test_set_handler_replace),
        cmocka_unit_test(test_order_action_timer_queue),
        cmocka_unit_test(test_order_action_queue_timer),
        cmocka_unit_test(test_order_timer_action_queue),
        cmocka_unit_test(test_order_timer_queue_action),
        cmocka_unit_test(test_order_queue_action_timer),
        cmocka_unit_test(test_order_queue_timer_action),
        cmocka_unit_test(test_inside_action_then_timer),
        cmocka_unit_test(test_inside_timer_then_action),
        cmocka_unit_test(test_inside_timer_only),
        cmocka_unit_test(test_inside_action_only),
        cmocka_unit_test(test_inside_queue),
        cmocka_unit_test(test_action_cancelled_timer_keeps_running),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_stress_random_orders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
