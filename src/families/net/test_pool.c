/* SPDX-License-Identifier: MIT */
/* The network family's buffer ownership and descriptor rings (pool.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "families/net/pool.h"
#include "odk/status.h"

static void test_pool_hands_out_every_buffer_once(void **state)
{
    (void)state;
    struct net_pool p;
    assert_int_equal(net_pool_init(&p, 8, 1518), ODK_OK);
    uint8_t seen[8] = {0};
    for (int i = 0; i < 8; i++) {
        uint32_t b;
        assert_int_equal(net_pool_get(&p, &b), ODK_OK);
        assert_true(b < 8);
        assert_int_equal(seen[b]++, 0);
    }
    uint32_t b;
    assert_int_equal(net_pool_get(&p, &b), ODK_E_AGAIN);
    net_pool_put(&p, 3);
    assert_int_equal(net_pool_get(&p, &b), ODK_OK);
    assert_int_equal(b, 3);
    net_pool_fini(&p);
    assert_int_equal(net_pool_init(&p, 0, 1518), ODK_E_INVALID);
}

static void test_take_back_checks_owner_and_length(void **state)
{
    (void)state;
    struct net_pool p;
    assert_int_equal(net_pool_init(&p, 4, 100), ODK_OK);
    uint32_t b;
    assert_int_equal(net_pool_get(&p, &b), ODK_OK);
    net_pool_lend(&p, b, NET_DRIVER_RX);

    /* Completed as TX, a buffer lent for RX is unknown; nothing changes. */
    odk_net_packet pkt = {b, 60};
    assert_int_equal(net_pool_take_back(&p, &pkt, NET_DRIVER_TX, 14), ODK_E_NOT_FOUND);
    /* Out of range. */
    odk_net_packet far = {4, 60}, huge = {UINT32_MAX, 60};
    assert_int_equal(net_pool_take_back(&p, &far, NET_DRIVER_RX, 14), ODK_E_NOT_FOUND);
    assert_int_equal(net_pool_take_back(&p, &huge, NET_DRIVER_RX, 14), ODK_E_NOT_FOUND);
    /* A free buffer the driver never had. */
    uint32_t other;
    assert_int_equal(net_pool_get(&p, &other), ODK_OK);
    net_pool_put(&p, other);
    odk_net_packet never = {other, 60};
    assert_int_equal(net_pool_take_back(&p, &never, NET_DRIVER_RX, 14), ODK_E_NOT_FOUND);

    /* Too long: taken back all the same, so it is not lost. */
    odk_net_packet big = {b, 101};
    assert_int_equal(net_pool_take_back(&p, &big, NET_DRIVER_RX, 14), ODK_E_INVALID);
    /* Twice: the second time the driver no longer holds it. */
    assert_int_equal(net_pool_take_back(&p, &pkt, NET_DRIVER_RX, 14), ODK_E_NOT_FOUND);

    net_pool_lend(&p, b, NET_DRIVER_RX);
    odk_net_packet tiny = {b, 13};
    assert_int_equal(net_pool_take_back(&p, &tiny, NET_DRIVER_RX, 14), ODK_E_INVALID);
    net_pool_lend(&p, b, NET_DRIVER_TX);
    odk_net_packet edge = {b, 100};
    assert_int_equal(net_pool_take_back(&p, &edge, NET_DRIVER_TX, 14), ODK_OK);
    net_pool_fini(&p);
}

static void test_ring_carries_records_in_order_across_wraps(void **state)
{
    (void)state;
    uint32_t size = net_ring_size(4);
    assert_int_equal(size, 32);
    assert_int_equal(net_ring_size(512), 4096);
    assert_int_equal(net_ring_size(1), ODK_RING_MIN_SIZE);
    void *mem = calloc(1, odk_ring_bytes(size));
    odk_ring r;
    assert_int_equal(odk_ring_format(&r, mem, odk_ring_bytes(size), size), ODK_OK);
    uint32_t next_in = 0, next_out = 0;
    for (int round = 0; round < 100; round++) {
        int pushed = 0;
        odk_net_packet pkt;
        while (net_ring_push(&r, &(odk_net_packet){next_in, next_in * 2}) == ODK_OK) {
            next_in++;
            pushed++;
        }
        assert_int_equal(pushed, 4);
        int n = round % 4 + 1;
        for (int i = 0; i < n; i++) {
            assert_int_equal(net_ring_pop(&r, &pkt), ODK_OK);
            assert_int_equal(pkt.buffer, next_out);
            assert_int_equal(pkt.length, next_out * 2);
            next_out++;
        }
        while (net_ring_pop(&r, &pkt) == ODK_OK) {
            assert_int_equal(pkt.buffer, next_out);
            next_out++;
        }
        assert_int_equal(net_ring_pop(&r, &pkt), ODK_E_AGAIN);
    }
    free(mem);
}

/* The other side owns the head: one that claims more than the ring holds
 * is refused, never read through. */
static void test_ring_refuses_a_corrupt_head(void **state)
{
    (void)state;
    uint32_t size = net_ring_size(4);
    void *mem = calloc(1, odk_ring_bytes(size));
    odk_ring r;
    assert_int_equal(odk_ring_format(&r, mem, odk_ring_bytes(size), size), ODK_OK);
    /* The head is the header's first word (odk/ring.h's layout). */
    *(volatile uint32_t *)mem = 1000;
    odk_net_packet pkt;
    assert_int_equal(net_ring_pop(&r, &pkt), ODK_E_PROTOCOL);
    assert_int_equal(net_ring_push(&r, &pkt), ODK_E_PROTOCOL);
    free(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_hands_out_every_buffer_once),
        cmocka_unit_test(test_take_back_checks_owner_and_length),
        cmocka_unit_test(test_ring_carries_records_in_order_across_wraps),
        cmocka_unit_test(test_ring_refuses_a_corrupt_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
