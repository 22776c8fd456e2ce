/* SPDX-License-Identifier: MIT */
/* Data queues: order, back-pressure with its wake-up, wrap-around of
 * records, and a consumer that does not trust the producer. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/data_queue_internal.h"
#include "odk/data_queue.h"
#include "odk/ring.h"

static void pair_wake(uint32_t size, enum data_queue_wake wake, odk_data_queue **p,
                      odk_data_queue **c)
{
    assert_int_equal(data_queue_create_wake(size, wake, p), ODK_OK);
    int fds[3], dup3[3];
    uint32_t sz;
    odk_data_queue_export(*p, fds, &sz);
    for (int i = 0; i < 3; i++)
        dup3[i] = dup(fds[i]);
    assert_int_equal(odk_data_queue_attach(dup3, sz, c), ODK_OK);
}

static void pair(uint32_t size, odk_data_queue **p, odk_data_queue **c)
{
    pair_wake(size, DATA_QUEUE_WAKE_EVENTFD, p, c);
}

static void test_order_and_back_pressure(void **state)
{
    (void)state;
    odk_data_queue *p, *c;
    pair(4096, &p, &c);
    uint8_t rec[100], out[200];
    uint32_t sent = 0, got = 0, len;
    /* Fill: 104-byte records (4 + 100) until the ring refuses. */
    for (;;) {
        memset(rec, (int)sent, sizeof rec);
        int st = odk_data_queue_enqueue(p, rec, (uint32_t)(sent % 100) + 1);
        if (st == ODK_E_AGAIN)
            break;
        assert_int_equal(st, ODK_OK);
        sent++;
    }
    assert_true(sent > 30);
    struct pollfd pf = {.fd = odk_data_queue_space_fd(p), .events = POLLIN};
    assert_int_equal(poll(&pf, 1, 0), 0); /* no room yet: no wake-up */
    assert_int_equal(odk_data_queue_dequeue(c, out, sizeof out, &len), ODK_OK);
    assert_int_equal(len, 1);
    got++;
    assert_int_equal(poll(&pf, 1, 1000), 1); /* room: the producer is told */
    odk_data_queue_ack_space(p);
    /* Keep going across many wraps; every record arrives whole and in order. */
    for (int round = 0; round < 20000; round++) {
        memset(rec, (int)sent, sizeof rec);
        if (odk_data_queue_enqueue(p, rec, (uint32_t)(sent % 100) + 1) == ODK_OK)
            sent++;
        if (round % 3 == 0 || round > 19000) {
            int st = odk_data_queue_dequeue(c, out, sizeof out, &len);
            if (st == ODK_E_AGAIN)
                continue;
            assert_int_equal(st, ODK_OK);
            assert_int_equal(len, got % 100 + 1);
            for (uint32_t i = 0; i < len; i++)
                assert_int_equal(out[i], (uint8_t)got);
            got++;
        }
    }
    while (odk_data_queue_dequeue(c, out, sizeof out, &len) == ODK_OK)
        got++;
    assert_int_equal(got, sent);
    odk_data_queue_free(p);
    odk_data_queue_free(c);
}

static void test_limits(void **state)
{
    (void)state;
    odk_data_queue *p, *c;
    pair(4096, &p, &c);
    uint8_t big[4096] = {0}, out[8];
    uint32_t len;
    assert_int_equal(odk_data_queue_enqueue(p, big, 2049), ODK_E_LIMIT);
    assert_int_equal(odk_data_queue_enqueue(p, big, 100), ODK_OK);
    assert_int_equal(odk_data_queue_dequeue(c, out, sizeof out, &len), ODK_E_LIMIT);
    assert_int_equal(len, 100); /* the size needed; the record stays */
    assert_int_equal(odk_data_queue_dequeue(c, big, sizeof big, &len), ODK_OK);
    assert_int_equal(odk_data_queue_dequeue(c, big, sizeof big, &len), ODK_E_AGAIN);
    assert_int_equal(odk_data_queue_wait(c, 10), ODK_E_TIMEOUT);
    odk_data_queue *bad = NULL;
    assert_int_equal(odk_data_queue_create(1000, &bad), ODK_E_INVALID); /* not a power of two */
    assert_null(bad);
    odk_data_queue_free(c);
    odk_data_queue_free(p);
}

static void test_lying_producer(void **state)
{
    (void)state;
    odk_data_queue *p, *c;
    pair(4096, &p, &c);
    uint32_t huge = 100000;
    /* A producer that commits a header claiming more than the ring holds. */
    assert_int_equal(odk_data_queue_enqueue(p, &huge, 4), ODK_OK);
    uint8_t out[16];
    uint32_t len;
    /* Re-write the first record's length field in place: the shared ring
     * starts after one page of flags and the ring header. */
    int fds[3];
    uint32_t size;
    odk_data_queue_export(p, fds, &size);
    assert_int_equal(pwrite(fds[0], &huge, 4, 4096 + ODK_RING_HEADER), 4);
    assert_int_equal(odk_data_queue_dequeue(c, out, sizeof out, &len), ODK_E_PROTOCOL);
    odk_data_queue_free(p);
    odk_data_queue_free(c);
}

static odk_data_queue *tp, *tc;

static void *producer(void *arg)
{
    (void)arg;
    for (uint64_t i = 0; i < 200000;) {
        if (odk_data_queue_enqueue(tp, &i, sizeof i) == ODK_OK) {
            i++;
            continue;
        }
        struct pollfd pf = {.fd = odk_data_queue_space_fd(tp), .events = POLLIN};
        poll(&pf, 1, 100);
        odk_data_queue_ack_space(tp);
    }
    return NULL;
}

static void two_threads(enum data_queue_wake wake)
{
    pair_wake(4096, wake, &tp, &tc);
    pthread_t t;
    pthread_create(&t, NULL, producer, NULL);
    for (uint64_t want = 0; want < 200000;) {
        uint64_t v;
        uint32_t len;
        int st = odk_data_queue_dequeue(tc, &v, sizeof v, &len);
        if (st == ODK_E_AGAIN) {
            assert_int_equal(odk_data_queue_wait(tc, 5000), ODK_OK);
            continue;
        }
        assert_int_equal(st, ODK_OK);
        assert_int_equal(v, want);
        want++;
    }
    pthread_join(t, NULL);
    odk_data_queue_free(tp);
    odk_data_queue_free(tc);
}

static void test_two_threads_with_sleeps(void **state)
{
    (void)state;
    two_threads(DATA_QUEUE_WAKE_EVENTFD);
}

/* A queue whose consumer is woken through a socket (the HID family's event
 * streams): the consumer gets one end of a blocking stream socket pair and
 * sleeps in a read of it; timeouts, order and wake-ups are as with the
 * eventfd, and the producer's end closing ends a wait with ODK_E_GONE once
 * every record was read. */
static void test_socket_wake(void **state)
{
    (void)state;
    odk_data_queue *p, *c;
    pair_wake(4096, DATA_QUEUE_WAKE_SOCKET, &p, &c);
    int fds[3];
    uint32_t size;
    assert_int_equal(odk_data_queue_export(p, fds, &size), ODK_OK);
    struct stat st;
    assert_int_equal(fstat(fds[1], &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    /* The consumer's end cannot write back to the producer. */
    assert_true(send(fds[1], "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0);
    /* A consumer asleep is woken by the record, and only once it is there. */
    assert_int_equal(odk_data_queue_wait(c, 10), ODK_E_TIMEOUT);
    uint64_t v = 7, got = 0;
    uint32_t len = 0;
    assert_int_equal(odk_data_queue_enqueue(p, &v, sizeof v), ODK_OK);
    assert_int_equal(odk_data_queue_wait(c, 1000), ODK_OK);
    assert_int_equal(odk_data_queue_dequeue(c, &got, sizeof got, &len), ODK_OK);
    assert_int_equal(got, 7);
    assert_int_equal(odk_data_queue_wait(c, 10), ODK_E_TIMEOUT);
    /* The producer goes with a record unread: the record first, then GONE
     * (at once, not after the timeout). */
    v = 8;
    assert_int_equal(odk_data_queue_enqueue(p, &v, sizeof v), ODK_OK);
    odk_data_queue_free(p);
    assert_int_equal(odk_data_queue_wait(c, 0), ODK_OK);
    assert_int_equal(odk_data_queue_dequeue(c, &got, sizeof got, &len), ODK_OK);
    assert_int_equal(got, 8);
    assert_int_equal(odk_data_queue_wait(c, 60000), ODK_E_GONE);
    odk_data_queue_free(c);
    two_threads(DATA_QUEUE_WAKE_SOCKET);
}

/* Kicks the consumer's data eventfd (wake-ups with no record behind them)
 * until the wait returns or 10 s pass. */
struct kicker {
    int fd;
    atomic_bool stop, gave_up;
};

static void *kick_thread(void *arg)
{
    struct kicker *k = arg;
    uint64_t one = 1;
    for (int i = 0; i < 10000 && !atomic_load(&k->stop); i++) {
        if (write(k->fd, &one, sizeof one) < 0)
            break;
        usleep(1000);
    }
    atomic_store(&k->gave_up, !atomic_load(&k->stop));
    return NULL;
}

/* Spurious wake-ups used to restart the timeout, so a wait kept awake never
 * timed out; the wait must end while the kicks still come. */
static void test_wait_deadline(void **state)
{
    (void)state;
    odk_data_queue *p, *c;
    pair(4096, &p, &c);
    int fds[3];
    uint32_t size;
    assert_int_equal(odk_data_queue_export(p, fds, &size), ODK_OK);
    struct kicker k = {.fd = fds[1]};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, kick_thread, &k), 0);
    assert_int_equal(odk_data_queue_wait(c, 50), ODK_E_TIMEOUT);
    atomic_store(&k.stop, true);
    pthread_join(t, NULL);
    assert_false(atomic_load(&k.gave_up));
    odk_data_queue_free(c);
    odk_data_queue_free(p);
}

/* The contract in data_queue.h: NULLs are ODK_E_INVALID, attach takes its
 * descriptors even when it fails, out-pointers are NULL after an error. */
static void test_contract(void **state)
{
    (void)state;
    odk_data_queue *p, *c;
    pair(4096, &p, &c);
    int fds[3];
    uint32_t size = 0, len = 7;
    assert_int_equal(odk_data_queue_export(NULL, fds, &size), ODK_E_INVALID);
    assert_int_equal(odk_data_queue_export(p, NULL, &size), ODK_E_INVALID);
    assert_int_equal(odk_data_queue_export(p, fds, NULL), ODK_E_INVALID);
    assert_int_equal(odk_data_queue_dequeue(NULL, fds, sizeof fds, &len), ODK_E_INVALID);
    assert_int_equal(odk_data_queue_dequeue(c, NULL, 4, &len), ODK_E_INVALID);
    assert_int_equal(odk_data_queue_dequeue(c, fds, sizeof fds, NULL), ODK_E_INVALID);
    assert_int_equal(len, 7);
    assert_int_equal(odk_data_queue_wait(NULL, 0), ODK_E_INVALID);
    assert_int_equal(odk_data_queue_enqueue(NULL, "x", 1), ODK_E_INVALID);
    assert_int_equal(odk_data_queue_create(4096, NULL), ODK_E_INVALID);

    assert_int_equal(odk_data_queue_export(p, fds, &size), ODK_OK);
    int d[3];
    for (int i = 0; i < 3; i++)
        d[i] = dup(fds[i]);
    assert_int_equal(odk_data_queue_attach(d, size, NULL), ODK_E_INVALID);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fcntl(d[i], F_GETFD), -1); /* closed */
    for (int i = 0; i < 3; i++)
        d[i] = dup(fds[i]);
    odk_data_queue *bad = (odk_data_queue *)&len;
    assert_int_equal(odk_data_queue_attach(d, size * 2, &bad), ODK_E_PROTOCOL);
    assert_null(bad);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fcntl(d[i], F_GETFD), -1);
    odk_data_queue_free(c);
    odk_data_queue_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_back_pressure),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_lying_producer),
        cmocka_unit_test(test_two_threads_with_sleeps),
        cmocka_unit_test(test_socket_wake),
        cmocka_unit_test(test_wait_deadline),
        cmocka_unit_test(test_contract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
