/* SPDX-License-Identifier: MIT */
/* Unit tests for front/outq.c, a connection's outgoing queue, on a
 * socketpair whose sending side is non-blocking (as odkd's are): what
 * cannot go at once waits in order, property events of one watch and node
 * give way to a later one unless something else of that node came between,
 * and the bounds are reported, never a silent drop. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/wire.h"
#include "daemon/front/outq.h"
#include "odk/status.h"

struct pair {
    int tx, rx;
    struct outq q;
};

static int setup(void **state)
{
    struct pair *p = calloc(1, sizeof *p);
    int sv[2];
    assert_int_equal(wire_socketpair(sv), ODK_OK);
    p->tx = sv[0];
    p->rx = sv[1];
    fcntl(p->tx, F_SETFL, fcntl(p->tx, F_GETFL) | O_NONBLOCK);
    fcntl(p->rx, F_SETFL, fcntl(p->rx, F_GETFL) | O_NONBLOCK);
    int small = 4096; /* the kernel's minimum: the socket fills in a few messages */
    setsockopt(p->tx, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    struct pair *p = *state;
    outq_clear(&p->q);
    close(p->tx);
    if (p->rx >= 0)
        close(p->rx);
    free(p);
    return 0;
}

static odk_value *body_v(int64_t v)
{
    odk_value *b = odk_value_new_dict();
    odk_dict_set_int(b, "v", v);
    return b;
}

static int send_v(struct pair *p, uint32_t seq, int64_t v, const struct outq_key *key)
{
    odk_value *b = body_v(v);
    int st = outq_send(&p->q, p->tx, key ? WIRE_EVENT : WIRE_REPLY, seq, 0, b, -1, key);
    odk_value_free(b);
    return st;
}

/* Replies until the socket is full; returns how many went (seq 1..n). */
static uint32_t fill(struct pair *p)
{
    uint32_t seq = 0;
    int st;
    while ((st = send_v(p, ++seq, 0, NULL)) == ODK_OK)
        ;
    assert_int_equal(st, ODK_E_AGAIN); /* the last one waits */
    assert_int_equal(p->q.count, 1);
    return seq - 1;
}

/* Reads one message: its seq, and its body's "v" in *v. */
static int recv_one(struct pair *p, uint32_t *seq, int64_t *v)
{
    wire_msg m;
    wire_msg_init(&m);
    int st = wire_recv(p->rx, &m);
    if (st == ODK_OK) {
        odk_value *b = NULL;
        assert_int_equal(wire_msg_value(&m, &b), ODK_OK);
        *seq = m.hdr.seq;
        *v = odk_dict_get_int(b, "v", -1);
        odk_value_free(b);
    }
    wire_msg_release(&m);
    return st;
}

/* Reads and flushes until everything has arrived; returns the (seq, v)
 * pairs after the first skip messages, in arrival order. */
static size_t drain(struct pair *p, uint32_t skip, uint32_t *seqs, int64_t *vs, size_t cap)
{
    size_t n = 0;
    uint32_t seen = 0;
    for (;;) {
        uint32_t seq;
        int64_t v;
        int st = recv_one(p, &seq, &v);
        if (st == ODK_E_AGAIN) {
            if (!outq_pending(&p->q))
                return n;
            int f = outq_flush(&p->q, p->tx);
            assert_true(f == ODK_OK || f == ODK_E_AGAIN);
            continue;
        }
        assert_int_equal(st, ODK_OK);
        if (seen++ < skip)
            continue;
        assert_true(n < cap);
        seqs[n] = seq;
        vs[n++] = v;
    }
}

static void writable_socket_sends_at_once(void **state)
{
    struct pair *p = *state;
    assert_int_equal(send_v(p, 1, 7, NULL), ODK_OK);
    assert_false(outq_pending(&p->q));
    uint32_t seq;
    int64_t v;
    assert_int_equal(recv_one(p, &seq, &v), ODK_OK);
    assert_int_equal(seq, 1);
    assert_int_equal(v, 7);
}

static void full_socket_queues_in_order(void **state)
{
    struct pair *p = *state;
    uint32_t sent = fill(p);
    /* Later messages wait behind the first one that waited, even once
     * the socket has room: read one, and send again. */
    uint32_t seq;
    int64_t v;
    assert_int_equal(recv_one(p, &seq, &v), ODK_OK);
    for (uint32_t s = sent + 2; s < sent + 50; s++)
        assert_int_equal(send_v(p, s, s, NULL), ODK_E_AGAIN);
    assert_int_equal(p->q.count, 49);
    uint32_t seqs[64];
    int64_t vs[64];
    size_t n = drain(p, sent - 1, seqs, vs, 64);
    assert_int_equal(n, 49);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seqs[i], sent + 1 + i);
    assert_int_equal(p->q.bytes, 0);
}

static void property_events_keep_the_latest(void **state)
{
    struct pair *p = *state;
    uint32_t sent = fill(p);
    struct outq_key prop = {.node = 5, .watch = 1, .property = true};
    struct outq_key other_node = {.node = 6, .watch = 1, .property = true};
    struct outq_key reg6 = {.node = 6, .watch = 1, .property = false};
    for (int64_t v = 1; v <= 1000; v++) {
        assert_int_equal(send_v(p, 1000 + (uint32_t)v, v, &prop), ODK_E_AGAIN);
        if (v == 500)
            assert_int_equal(send_v(p, 3000, -6, &reg6), ODK_E_AGAIN);
    }
    assert_int_equal(send_v(p, 3001, 66, &other_node), ODK_E_AGAIN);
    /* The filler, node 6's registration, node 5's last property event and
     * node 6's property event: the registration stays before node 6's
     * property and node 5's last value arrives. */
    assert_int_equal(p->q.count, 4);
    assert_int_equal(p->q.coalesced, 999);
    uint32_t seqs[8];
    int64_t vs[8];
    size_t n = drain(p, sent + 1, seqs, vs, 8);
    assert_int_equal(n, 3);
    assert_int_equal(seqs[0], 3000);
    assert_int_equal(vs[1], 1000);
    assert_int_equal(seqs[2], 3001);
}

static void another_event_of_the_node_stops_coalescing(void **state)
{
    struct pair *p = *state;
    uint32_t sent = fill(p);
    struct outq_key prop = {.node = 5, .watch = 1, .property = true};
    struct outq_key started = {.node = 5, .watch = 1, .property = false};
    struct outq_key watch2 = {.node = 5, .watch = 2, .property = true};
    assert_int_equal(send_v(p, 100, 1, &prop), ODK_E_AGAIN);
    assert_int_equal(send_v(p, 101, 2, &started), ODK_E_AGAIN);
    assert_int_equal(send_v(p, 102, 3, &prop), ODK_E_AGAIN);
    assert_int_equal(send_v(p, 103, 4, &watch2), ODK_E_AGAIN); /* another watch: its own */
    assert_int_equal(send_v(p, 104, 5, &prop), ODK_E_AGAIN);   /* replaces 102 only */
    assert_int_equal(p->q.coalesced, 1);
    uint32_t seqs[8];
    int64_t vs[8];
    size_t n = drain(p, sent + 1, seqs, vs, 8);
    assert_int_equal(n, 4);
    assert_int_equal(seqs[0], 100);
    assert_int_equal(seqs[1], 101);
    assert_int_equal(seqs[2], 103);
    assert_int_equal(seqs[3], 104);
    assert_int_equal(vs[3], 5);
}

static void past_the_bound_is_an_error_not_a_drop(void **state)
{
    struct pair *p = *state;
    fill(p);
    uint32_t s = 10;
    while (p->q.count < OUTQ_MAX_MSGS)
        assert_int_equal(send_v(p, s++, 0, NULL), ODK_E_AGAIN);
    size_t bytes = p->q.bytes;
    assert_int_equal(send_v(p, s, 0, NULL), ODK_E_LIMIT);
    assert_int_equal(p->q.count, OUTQ_MAX_MSGS); /* nothing queued, nothing lost */
    assert_int_equal(p->q.bytes, bytes);
    outq_clear(&p->q);
    assert_int_equal(p->q.count, 0);
    assert_int_equal(p->q.bytes, 0);
}

static void bytes_are_bounded_too(void **state)
{
    struct pair *p = *state;
    fill(p);
    char big[64 * 1024];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    odk_value *b = odk_value_new_dict();
    odk_dict_set_string(b, "s", big);
    int st;
    uint32_t s = 10;
    while ((st = outq_send(&p->q, p->tx, WIRE_REPLY, s++, 0, b, -1, NULL)) == ODK_E_AGAIN)
        ;
    odk_value_free(b);
    assert_int_equal(st, ODK_E_LIMIT);
    assert_true(p->q.bytes <= OUTQ_MAX_BYTES);
    assert_true(p->q.bytes > OUTQ_MAX_BYTES - 80 * 1024);
}

static void a_waiting_reply_keeps_its_descriptor(void **state)
{
    struct pair *p = *state;
    uint32_t sent = fill(p);
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    odk_value *b = body_v(9);
    assert_int_equal(outq_send(&p->q, p->tx, WIRE_REPLY, 77, 0, b, pfd[1], NULL), ODK_E_AGAIN);
    close(pfd[1]); /* the caller's copy; the queue holds its own */
    assert_int_equal(p->q.fds, 1);
    int st = ODK_E_AGAIN;
    for (int i = 0; i < OUTQ_MAX_FDS && st == ODK_E_AGAIN; i++)
        st = outq_send(&p->q, p->tx, WIRE_REPLY, 78, 0, b, pfd[0], NULL);
    assert_int_equal(st, ODK_E_LIMIT);
    assert_int_equal(p->q.fds, OUTQ_MAX_FDS);
    odk_value_free(b);
    close(pfd[0]);

    wire_msg m;
    wire_msg_init(&m);
    for (uint32_t i = 0; i < sent + 2;) { /* the filler, then the reply */
        st = wire_recv(p->rx, &m);
        if (st == ODK_E_AGAIN) {
            outq_flush(&p->q, p->tx);
            continue;
        }
        assert_int_equal(st, ODK_OK);
        i++;
    }
    assert_int_equal(m.hdr.seq, 77);
    assert_int_equal(m.n_fds, 1);
    assert_int_equal(write(m.fds[0], "k", 1), 1); /* the pipe's write end, alive */
    wire_msg_release(&m);
}

static void a_closed_peer_is_disconnected(void **state)
{
    struct pair *p = *state;
    close(p->rx);
    p->rx = -1;
    assert_int_equal(send_v(p, 1, 0, NULL), ODK_E_DISCONNECTED);
    assert_false(outq_pending(&p->q));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(writable_socket_sends_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(full_socket_queues_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(property_events_keep_the_latest, setup, teardown),
        cmocka_unit_test_setup_teardown(another_event_of_the_node_stops_coalescing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(past_the_bound_is_an_error_not_a_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(bytes_are_bounded_too, setup, teardown),
        cmocka_unit_test_setup_teardown(a_waiting_reply_keeps_its_descriptor, setup, teardown),
        cmocka_unit_test_setup_teardown(a_closed_peer_is_disconnected, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
