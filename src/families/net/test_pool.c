/* SPDX-License-Identifier: MIT */
/* The network family's buffer ownership and descriptor rings (pool.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "families/net/filter.h"
#include "families/net/pool.h"
#include "families/net/vnet.h"
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

static void test_ring_refuses_a_record_split_by_a_misaligned_head(void **state)
{
    (void)state;
    /* A head moved to 4 bytes before the data area's end: the next record
     * would straddle the wrap.  Push once wrote 8 bytes into the 4 left
     * (fuzz_net's first finding). */
    uint32_t size = net_ring_size(4);
    size_t bytes = odk_ring_bytes(size);
    void *mem = calloc(1, bytes);
    odk_ring r;
    assert_int_equal(odk_ring_format(&r, mem, bytes, size), ODK_OK);
    *(volatile uint32_t *)mem = size - 4;                /* head */
    *(volatile uint32_t *)((char *)mem + 64) = size - 4; /* tail: empty, so room */
    odk_net_packet pkt = {1, 60};
    assert_int_equal(net_ring_push(&r, &pkt), ODK_E_PROTOCOL);
    free(mem);
}

static void test_filter_follows_the_system(void **state)
{
    (void)state;
    static struct net_filter f;
    uint8_t frame[60] = {0x02, 0x6f, 0x64, 0, 0, 1};
    memcpy(f.mac, frame, 6);
    assert_false(net_filter_accepts(&f, frame, sizeof frame)); /* down */
    f.up = true;
    assert_true(net_filter_accepts(&f, frame, sizeof frame));
    assert_false(net_filter_accepts(&f, frame, 13));
    assert_false(net_filter_accepts(&f, NULL, 60));
    frame[5] = 2; /* another host */
    assert_false(net_filter_accepts(&f, frame, sizeof frame));
    f.promisc = true;
    assert_true(net_filter_accepts(&f, frame, sizeof frame));
    f.promisc = false;
    memset(frame, 0xff, 6); /* broadcast */
    assert_true(net_filter_accepts(&f, frame, sizeof frame));
    const uint8_t group[6] = {0x01, 0x00, 0x5e, 0x7f, 0x01, 0x02};
    memcpy(frame, group, 6);
    assert_false(net_filter_accepts(&f, frame, sizeof frame));
    memcpy(f.mc[0], group, 6);
    f.n_mc = 1;
    assert_true(net_filter_accepts(&f, frame, sizeof frame));
    f.n_mc = 0;
    f.allmulti = true;
    assert_true(net_filter_accepts(&f, frame, sizeof frame));

    /* The reply odkd sends, both ways; a malformed one changes nothing. */
    odk_value *v = NULL;
    f.n_mc = 1;
    assert_int_equal(net_filter_to_value(&f, &v), ODK_OK);
    static struct net_filter g;
    assert_int_equal(net_filter_from_value(v, &g), ODK_OK);
    assert_true(g.up && g.allmulti && !g.promisc && g.n_mc == 1);
    assert_memory_equal(g.mc[0], group, 6);
    assert_memory_equal(g.mac, f.mac, 6);
    odk_dict_set_string(v, "up", "yes");
    g.n_mc = 7;
    assert_int_equal(net_filter_from_value(v, &g), ODK_E_PROTOCOL);
    assert_int_equal(g.n_mc, 7);
    assert_int_equal(net_filter_from_value(NULL, &g), ODK_E_PROTOCOL);
    odk_value_free(v);
}

static void test_vnet_header_must_fit_the_frame(void **state)
{
    (void)state;
    odk_net_vnet_header h = {0};
    assert_int_equal(net_vnet_check(&h, 60), ODK_OK);
    h.flags = ODK_NET_VNET_F_DATA_VALID;
    assert_int_equal(net_vnet_check(&h, 60), ODK_OK);
    h.flags = 0x80;
    assert_int_equal(net_vnet_check(&h, 60), ODK_E_INVALID);
    h = (odk_net_vnet_header){
        .flags = ODK_NET_VNET_F_NEEDS_CSUM, .csum_start = 34, .csum_offset = 16};
    assert_int_equal(net_vnet_check(&h, 52), ODK_OK);
    assert_int_equal(net_vnet_check(&h, 51), ODK_E_INVALID);
    h.csum_start = 4; /* inside the Ethernet header */
    assert_int_equal(net_vnet_check(&h, 60), ODK_E_INVALID);
    h = (odk_net_vnet_header){.gso_type = ODK_NET_GSO_TCPV4, .gso_size = 1448, .hdr_len = 66};
    assert_int_equal(net_vnet_check(&h, 3000), ODK_OK);
    assert_int_equal(net_vnet_check(&h, 60), ODK_E_INVALID);
    h.gso_size = 0;
    assert_int_equal(net_vnet_check(&h, 3000), ODK_E_INVALID);
    h = (odk_net_vnet_header){.gso_type = 3 /* UDP (UFO): not offered */, .gso_size = 100};
    assert_int_equal(net_vnet_check(&h, 3000), ODK_E_INVALID);
    h = (odk_net_vnet_header){.gso_type = ODK_NET_GSO_ECN};
    assert_int_equal(net_vnet_check(&h, 3000), ODK_E_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_hands_out_every_buffer_once),
        cmocka_unit_test(test_take_back_checks_owner_and_length),
        cmocka_unit_test(test_ring_carries_records_in_order_across_wraps),
        cmocka_unit_test(test_ring_refuses_a_corrupt_head),
        cmocka_unit_test(test_ring_refuses_a_record_split_by_a_misaligned_head),
        cmocka_unit_test(test_filter_follows_the_system),
        cmocka_unit_test(test_vnet_header_must_fit_the_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
