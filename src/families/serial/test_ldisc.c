/* SPDX-License-Identifier: MIT */
/* Unit tests for the CUSE port's line discipline (ldisc.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ldisc.h"

static struct ldisc L;
static struct ldisc_out O;

static int fresh(void **state)
{
    (void)state;
    ldisc_init(&L);
    O.len = 0;
    return 0;
}

static void feed(const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(ldisc_receive(&L, (const uint8_t *)s, n, &O), n);
}

static void modes(tcflag_t iflag, tcflag_t oflag, tcflag_t lflag)
{
    struct termios2 t = L.t;
    t.c_iflag = iflag;
    t.c_oflag = oflag;
    t.c_lflag = lflag;
    ldisc_set(&L, &t);
}

/* Reads what is readable now into a string. */
static const char *take(void)
{
    static char buf[LDISC_BUF + 1];
    bool eof;
    size_t n = ldisc_read(&L, (uint8_t *)buf, LDISC_BUF, &eof, &O);
    buf[n] = 0;
    return buf;
}

static void echoed(const char *want)
{
    assert_int_equal(O.len, strlen(want));
    assert_memory_equal(O.data, want, O.len);
    O.len = 0;
}

static void raw_passes_everything_untouched(void **state)
{
    (void)state;
    feed("ab\x7f"
         "c\r\x13\x03");
    assert_true(ldisc_can_read(&L));
    assert_string_equal(take(), "ab\x7f"
                                "c\r\x13\x03");
    assert_int_equal(O.len, 0);
    assert_false(L.stopped);
}

static void canonical_erase_and_cr_to_nl(void **state)
{
    (void)state;
    modes(ICRNL, 0, ICANON);
    feed("ab\x7f"
         "c");
    assert_false(ldisc_can_read(&L)); /* no whole line yet */
    feed("\r");
    assert_string_equal(take(), "ac\n");
    assert_false(ldisc_can_read(&L));
}

static void canonical_read_returns_one_line_at_a_time(void **state)
{
    (void)state;
    modes(0, 0, ICANON);
    feed("one\ntwo\nthr");
    assert_string_equal(take(), "one\n");
    assert_string_equal(take(), "two\n");
    assert_false(ldisc_can_read(&L));
    /* Leaving canonical mode makes the half line readable, as n_tty does. */
    modes(0, 0, 0);
    assert_string_equal(take(), "thr");
}

static void kill_and_word_erase(void **state)
{
    (void)state;
    modes(0, 0, ICANON | IEXTEN);
    feed("junk\x15"
         "hello big\x17"
         "world\n");
    assert_string_equal(take(), "hello world\n");
}

static void eof_ends_a_line_and_reads_zero_on_an_empty_one(void **state)
{
    (void)state;
    modes(0, 0, ICANON);
    feed("abc\x04");
    assert_string_equal(take(), "abc");
    feed("\x04");
    assert_true(ldisc_can_read(&L));
    bool eof = false;
    uint8_t b[8];
    assert_int_equal(ldisc_read(&L, b, sizeof b, &eof, &O), 0);
    assert_true(eof);
    assert_false(ldisc_can_read(&L));
}

static void echo_with_onlcr_echoe_and_ctl(void **state)
{
    (void)state;
    modes(ICRNL, OPOST | ONLCR, ICANON | ECHO | ECHOE | ECHOCTL);
    feed("a\x01");
    echoed("a^A");
    feed("\x7f");
    echoed("\b \b\b \b"); /* a control character echoed as ^A takes two columns */
    feed("\r");
    echoed("\r\n");
    assert_string_equal(take(), "a\n");
}

static void echonl_echoes_only_newline(void **state)
{
    (void)state;
    modes(0, 0, ICANON | ECHONL);
    feed("secret\n");
    echoed("\n");
}

static void ixon_stops_and_starts_output_and_eats_the_characters(void **state)
{
    (void)state;
    modes(IXON, 0, 0);
    feed("a\x13"
         "b");
    assert_true(L.stopped);
    feed("\x11"
         "c");
    assert_false(L.stopped);
    assert_string_equal(take(), "abc");
    feed("\x13");
    assert_true(L.stopped);
    modes(0, 0, 0); /* IXON off restarts output */
    assert_false(L.stopped);
    /* Without IXON the characters are data. */
    feed("\x13");
    assert_string_equal(take(), "\x13");
}

static void ixany_restarts_on_any_character(void **state)
{
    (void)state;
    modes(IXON | IXANY, 0, 0);
    feed("\x13");
    assert_true(L.stopped);
    feed("z");
    assert_false(L.stopped);
    assert_string_equal(take(), "z");
}

static void configured_start_and_stop_characters(void **state)
{
    (void)state;
    struct termios2 t = L.t;
    t.c_iflag = IXON;
    t.c_cc[VSTART] = 'G';
    t.c_cc[VSTOP] = 'S';
    ldisc_set(&L, &t);
    feed("S");
    assert_true(L.stopped);
    feed("\x11"); /* the default START is data now */
    assert_true(L.stopped);
    feed("G");
    assert_false(L.stopped);
    assert_string_equal(take(), "\x11");
}

static void ixoff_throttles_a_full_queue_and_releases_it(void **state)
{
    (void)state;
    modes(IXOFF, 0, 0);
    uint8_t big[LDISC_BUF];
    memset(big, 'x', sizeof big);
    size_t n = ldisc_receive(&L, big, sizeof big, &O);
    assert_int_equal(n, LDISC_BUF);
    assert_true(L.throttled);
    echoed("\x13");
    /* Full: more input stays on the line. */
    assert_int_equal(ldisc_receive(&L, big, 10, &O), 0);
    uint8_t b[LDISC_BUF];
    bool eof;
    assert_int_equal(ldisc_read(&L, b, LDISC_BUF - 100, &eof, &O), LDISC_BUF - 100);
    assert_false(L.throttled);
    echoed("\x11");
}

static void istrip_igncr_inlcr(void **state)
{
    (void)state;
    modes(ISTRIP | IGNCR, 0, 0);
    feed("\xc1\r\n");
    assert_string_equal(take(), "A\n");
    modes(INLCR, 0, 0);
    feed("x\n");
    assert_string_equal(take(), "x\r");
}

static void isig_characters_flush_and_are_not_data(void **state)
{
    (void)state;
    modes(0, 0, ICANON | ISIG);
    feed("abc\x03"
         "d\n");
    assert_string_equal(take(), "d\n");
}

static void canonical_line_longer_than_the_buffer_keeps_its_end(void **state)
{
    (void)state;
    modes(0, 0, ICANON);
    uint8_t big[LDISC_BUF + 10];
    memset(big, 'y', sizeof big);
    assert_int_equal(ldisc_receive(&L, big, sizeof big, &O), sizeof big);
    feed("\n");
    const char *s = take();
    assert_int_equal(strlen(s), LDISC_BUF);
    assert_int_equal(s[LDISC_BUF - 1], '\n');
}

static void output_processing(void **state)
{
    (void)state;
    uint8_t out[16];
    size_t used;
    modes(0, OPOST | ONLCR, 0);
    assert_int_equal(ldisc_output(&L, (const uint8_t *)"a\nb", 3, out, sizeof out, &used), 4);
    assert_int_equal(used, 3);
    assert_memory_equal(out, "a\r\nb", 4);
    /* Never half a pair: "\n" needs two bytes of room. */
    assert_int_equal(ldisc_output(&L, (const uint8_t *)"a\n", 2, out, 2, &used), 1);
    assert_int_equal(used, 1);
    modes(0, OPOST | OCRNL | OLCUC, 0);
    assert_int_equal(ldisc_output(&L, (const uint8_t *)"x\r", 2, out, sizeof out, &used), 2);
    assert_memory_equal(out, "X\n", 2);
    modes(0, ONLCR, 0); /* without OPOST nothing is processed */
    assert_int_equal(ldisc_output(&L, (const uint8_t *)"\n", 1, out, sizeof out, &used), 1);
    assert_int_equal(out[0], '\n');
}

static void line_from_termios_every_field(void **state)
{
    (void)state;
    odk_serial_line old = {.dtr = true, .rts = false}, l;
    struct termios2 t = L.t;
    t.c_cflag = BOTHER | CS7 | PARENB | CREAD | CRTSCTS;
    t.c_ospeed = 250000;
    t.c_iflag = IXON | IXOFF;
    t.c_cc[VSTART] = 1;
    t.c_cc[VSTOP] = 2;
    ldisc_line(&t, &old, &l);
    assert_int_equal(l.baud, 250000);
    assert_int_equal(l.data_bits, 7);
    assert_int_equal(l.stop_bits, 1);
    assert_int_equal(l.parity, ODK_PARITY_EVEN);
    assert_int_equal(l.flow, ODK_FLOW_RTS_CTS | ODK_FLOW_XON_XOFF_IN | ODK_FLOW_XON_XOFF_OUT);
    assert_int_equal(l.xon, 1);
    assert_int_equal(l.xoff, 2);
    assert_true(l.dtr);
    assert_false(l.rts);
    t.c_cflag = B1200 | CS5 | CSTOPB | PARENB | PARODD | CMSPAR;
    ldisc_line(&t, &old, &l);
    assert_int_equal(l.baud, 1200);
    assert_int_equal(l.data_bits, 5);
    assert_int_equal(l.stop_bits, 2);
    assert_int_equal(l.parity, ODK_PARITY_MARK);
    t.c_cflag = B38400 | CS6 | PARENB | CMSPAR;
    ldisc_line(&t, &old, &l);
    assert_int_equal(l.parity, ODK_PARITY_SPACE);
    assert_int_equal(l.data_bits, 6);
    t.c_cflag = B4000000 | CS8 | PARENB | PARODD;
    ldisc_line(&t, &old, &l);
    assert_int_equal(l.baud, 4000000);
    assert_int_equal(l.parity, ODK_PARITY_ODD);
}

static void termios_from_line_round_trips(void **state)
{
    (void)state;
    odk_serial_line l = {.baud = 250000,
                         .data_bits = 7,
                         .stop_bits = 2,
                         .parity = ODK_PARITY_SPACE,
                         .flow = ODK_FLOW_XON_XOFF_OUT,
                         .xon = 5,
                         .xoff = 6,
                         .dtr = true},
                    back;
    struct termios2 t = L.t;
    ldisc_termios_from_line(&t, &l);
    assert_int_equal(t.c_cflag & CBAUD, BOTHER);
    assert_true(t.c_cflag & CREAD); /* what the line does not cover stays */
    ldisc_line(&t, &l, &back);
    assert_memory_equal(&back, &l, sizeof l);
    l.baud = 9600;
    l.parity = ODK_PARITY_ODD;
    ldisc_termios_from_line(&t, &l);
    assert_int_equal(t.c_cflag & CBAUD, B9600);
    ldisc_line(&t, &l, &back);
    assert_int_equal(back.parity, ODK_PARITY_ODD);
    assert_int_equal(back.baud, 9600);
}

static void speeds_from_codes(void **state)
{
    (void)state;
    struct termios2 t = {0};
    t.c_cflag = B115200 | CS8;
    ldisc_speed_from_code(&t);
    assert_int_equal(t.c_ospeed, 115200);
    assert_int_equal(t.c_ispeed, 115200);
    t.c_cflag = BOTHER | CS8;
    t.c_ospeed = 12345;
    ldisc_speed_from_code(&t);
    assert_int_equal(ldisc_baud(&t), 12345);
    t.c_cflag = B0;
    ldisc_speed_from_code(&t);
    assert_int_equal(ldisc_baud(&t), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(raw_passes_everything_untouched, fresh),
        cmocka_unit_test_setup(canonical_erase_and_cr_to_nl, fresh),
        cmocka_unit_test_setup(canonical_read_returns_one_line_at_a_time, fresh),
        cmocka_unit_test_setup(kill_and_word_erase, fresh),
        cmocka_unit_test_setup(eof_ends_a_line_and_reads_zero_on_an_empty_one, fresh),
        cmocka_unit_test_setup(echo_with_onlcr_echoe_and_ctl, fresh),
        cmocka_unit_test_setup(echonl_echoes_only_newline, fresh),
        cmocka_unit_test_setup(ixon_stops_and_starts_output_and_eats_the_characters, fresh),
        cmocka_unit_test_setup(ixany_restarts_on_any_character, fresh),
        cmocka_unit_test_setup(configured_start_and_stop_characters, fresh),
        cmocka_unit_test_setup(ixoff_throttles_a_full_queue_and_releases_it, fresh),
        cmocka_unit_test_setup(istrip_igncr_inlcr, fresh),
        cmocka_unit_test_setup(isig_characters_flush_and_are_not_data, fresh),
        cmocka_unit_test_setup(canonical_line_longer_than_the_buffer_keeps_its_end, fresh),
        cmocka_unit_test_setup(output_processing, fresh),
        cmocka_unit_test_setup(line_from_termios_every_field, fresh),
        cmocka_unit_test_setup(termios_from_line_round_trips, fresh),
        cmocka_unit_test_setup(speeds_from_codes, fresh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
