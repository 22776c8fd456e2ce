/* SPDX-License-Identifier: MIT */
/* Unit tests for odkd's event loop: a timer that fell due while a handler
 * ran long does not fire before the descriptors are read again (a reply
 * that arrived in the meantime cancels its deadline first), and timers
 * still fire when nothing else happens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/core/loop.h"
#include "daemon/odkd.h"

struct scene {
    int slow[2], reply[2];
    struct watch slow_w, reply_w;
    uint64_t deadline;
    int deadline_fired, replies;
};

static struct scene sc;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The deadline: in odkd it kills a host that did not answer. */
static void on_deadline(struct odkd *d, void *ptr)
{
    (void)ptr;
    sc.deadline = 0;
    sc.deadline_fired++;
    d->quit = true;
}

/* A long handler (a crash report waiting for addr2line), during which the
 * reply comes in and the deadline falls due. */
static void on_slow(struct odkd *d, void *ptr, uint32_t events)
{
    (void)ptr;
    (void)events;
    char c;
    assert_int_equal(read(sc.slow[0], &c, 1), 1);
    loop_del(d, &sc.slow_w);
    sleep_ms(80);
    assert_int_equal(write(sc.reply[1], "r", 1), 1);
    sleep_ms(80);
}

/* The reply: it came before its deadline, which it cancels. */
static void on_reply(struct odkd *d, void *ptr, uint32_t events)
{
    (void)ptr;
    (void)events;
    char c;
    assert_int_equal(read(sc.reply[0], &c, 1), 1);
    sc.replies++;
    loop_timer_cancel(d, sc.deadline);
    sc.deadline = 0;
    d->quit = true;
}

static void test_a_reply_that_came_during_a_long_handler_beats_its_deadline(void **state)
{
    (void)state;
    struct odkd d;
    memset(&d, 0, sizeof d);
    memset(&sc, 0, sizeof sc);
    d.epfd = epoll_create1(EPOLL_CLOEXEC);
    assert_true(d.epfd >= 0);
    assert_int_equal(pipe(sc.slow), 0);
    assert_int_equal(pipe(sc.reply), 0);
    assert_int_equal(loop_add(&d, &sc.slow_w, sc.slow[0], EPOLLIN, on_slow, NULL), 0);
    assert_int_equal(loop_add(&d, &sc.reply_w, sc.reply[0], EPOLLIN, on_reply, NULL), 0);
    sc.deadline = loop_timer(&d, 50, on_deadline, NULL);
    assert_true(sc.deadline != 0);
    /* Before the deadline is due, so the long handler runs first. */
    assert_int_equal(write(sc.slow[1], "s", 1), 1);
    assert_int_equal(loop_run(&d), 0);
    assert_int_equal(sc.replies, 1);
    assert_int_equal(sc.deadline_fired, 0);
    loop_del(&d, &sc.reply_w);
    loop_free(&d);
    close(d.epfd);
    for (int i = 0; i < 2; i++) {
        close(sc.slow[i]);
        close(sc.reply[i]);
    }
}

static void test_a_deadline_with_no_reply_still_fires(void **state)
{
    (void)state;
    struct odkd d;
    memset(&d, 0, sizeof d);
    memset(&sc, 0, sizeof sc);
    d.epfd = epoll_create1(EPOLL_CLOEXEC);
    assert_int_equal(pipe(sc.slow), 0);
    assert_int_equal(pipe(sc.reply), 0);
    assert_int_equal(loop_add(&d, &sc.slow_w, sc.slow[0], EPOLLIN, on_slow, NULL), 0);
    sc.deadline = loop_timer(&d, 50, on_deadline, NULL);
    /* The long handler runs past the deadline, and no reply is watched. */
    assert_int_equal(write(sc.slow[1], "s", 1), 1);
    assert_int_equal(loop_run(&d), 0);
    assert_int_equal(sc.deadline_fired, 1);
    loop_free(&d);
    close(d.epfd);
    for (int i = 0; i < 2; i++) {
        close(sc.slow[i]);
        close(sc.reply[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_reply_that_came_during_a_long_handler_beats_its_deadline),
        cmocka_unit_test(test_a_deadline_with_no_reply_still_fires),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
