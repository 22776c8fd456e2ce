/* SPDX-License-Identifier: MIT */
/* Unit tests of the wire framing: round trips inline and through a memfd,
 * fd passing, and rejection of malformed packets. */
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
#include "odk/status.h"

static void round_trip(size_t len)
{
    int sv[2];
    assert_int_equal(wire_socketpair(sv), ODK_OK);
    uint8_t *body = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        body[i] = (uint8_t)(i * 7 + 3);
    /* Large bodies block until read: send from a child. */
    pid_t pid = fork();
    if (pid == 0) {
        int fd = sv[1];
        _exit(wire_send(fd, WIRE_CALL, 42, -3, body, len, &fd, 1) == ODK_OK ? 0 : 1);
    }
    wire_msg m;
    wire_msg_init(&m);
    assert_int_equal(wire_recv(sv[0], &m), ODK_OK);
    assert_int_equal(m.hdr.type, WIRE_CALL);
    assert_int_equal(m.hdr.seq, 42);
    assert_int_equal(m.hdr.status, -3);
    assert_int_equal(m.body_len, len);
    assert_memory_equal(m.body, body, len);
    assert_int_equal(m.n_fds, 1);
    int fd = wire_msg_take_fd(&m, 0);
    assert_true(fd >= 0);
    close(fd);
    wire_msg_release(&m);
    free(body);
    close(sv[0]);
    close(sv[1]);
}

static void test_inline(void **state)
{
    (void)state;
    round_trip(0);
    round_trip(1);
    round_trip(WIRE_MAX_INLINE);
}

static void test_out_of_line(void **state)
{
    (void)state;
    round_trip(WIRE_MAX_INLINE + 1);
    round_trip(8u << 20);
}

static void test_value_round_trip(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(wire_socketpair(sv), ODK_OK);
    odk_value *v = odk_value_new_dict();
    odk_dict_set_string(v, "op", "list");
    odk_dict_set_int(v, "n", -5);
    assert_int_equal(wire_send_value(sv[1], WIRE_REQUEST, 1, 0, v, NULL, 0), ODK_OK);
    wire_msg m;
    wire_msg_init(&m);
    assert_int_equal(wire_recv(sv[0], &m), ODK_OK);
    odk_value *got = NULL;
    assert_int_equal(wire_msg_value(&m, &got), ODK_OK);
    assert_true(odk_value_equal(v, got));
    odk_value_free(v);
    odk_value_free(got);
    wire_msg_release(&m);
    close(sv[0]);
    close(sv[1]);
}

static void expect_rejected(const void *pkt, size_t len)
{
    int sv[2];
    assert_int_equal(wire_socketpair(sv), ODK_OK);
    assert_int_equal(send(sv[1], pkt, len, 0), (ssize_t)len);
    wire_msg m;
    wire_msg_init(&m);
    assert_int_equal(wire_recv(sv[0], &m), ODK_E_PROTOCOL);
    /* The connection still works after a rejected packet. */
    assert_int_equal(wire_send(sv[1], WIRE_EVENT, 9, 0, "ok", 2, NULL, 0), ODK_OK);
    assert_int_equal(wire_recv(sv[0], &m), ODK_OK);
    assert_int_equal(m.hdr.seq, 9);
    wire_msg_release(&m);
    close(sv[0]);
    close(sv[1]);
}

static void test_malformed(void **state)
{
    (void)state;
    struct wire_hdr h = {.magic = WIRE_MAGIC, .type = WIRE_REQUEST, .body_len = 10};
    uint8_t buf[64] = {0};
    expect_rejected("abc", 3);                        /* shorter than a header */
    memcpy(buf, &h, sizeof h);
    expect_rejected(buf, sizeof h + 4);               /* body shorter than claimed */
    h.magic = 0x12345678;
    h.body_len = 0;
    memcpy(buf, &h, sizeof h);
    expect_rejected(buf, sizeof h);                   /* bad magic */
    h.magic = WIRE_MAGIC;
    h.flags = WIRE_F_BODY_IN_FD;
    h.body_len = 1ull << 20;
    memcpy(buf, &h, sizeof h);
    expect_rejected(buf, sizeof h);                   /* out-of-line body without its fd */
    h.flags = 0x80;
    h.body_len = 0;
    memcpy(buf, &h, sizeof h);
    expect_rejected(buf, sizeof h);                   /* unknown flag */
}

static void test_limits(void **state)
{
    (void)state;
    int fds[WIRE_MAX_FDS] = {0, 0, 0, 0};
    assert_int_equal(wire_send(-1, WIRE_EVENT, 0, 0, NULL, 0, fds, WIRE_MAX_FDS), ODK_E_LIMIT);
    assert_int_equal(wire_send(-1, WIRE_EVENT, 0, 0, NULL, WIRE_MAX_BODY + 1, NULL, 0),
                     ODK_E_LIMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inline),          cmocka_unit_test(test_out_of_line),
        cmocka_unit_test(test_value_round_trip), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
