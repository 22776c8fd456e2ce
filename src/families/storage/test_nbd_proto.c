/* SPDX-License-Identifier: MIT */
/* Unit tests of the NBD request and option parsers (nbd_proto.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "families/storage/nbd_proto.h"

static size_t request(uint8_t *b, uint16_t flags, uint16_t type, uint64_t offset, uint32_t len)
{
    uint8_t *p = nbd_put32(b, NBD_REQUEST_MAGIC);
    p = nbd_put16(p, flags);
    p = nbd_put16(p, type);
    p = nbd_put64(p, 0x1122334455667788ull);
    p = nbd_put64(p, offset);
    nbd_put32(p, len);
    return NBD_REQUEST_SIZE;
}

static void a_read_parses_and_is_served(void **state)
{
    (void)state;
    uint8_t b[28];
    struct nbd_request r;
    request(b, 0, NBD_CMD_READ, 4096, 512);
    assert_int_equal(nbd_request_parse(b, sizeof b, &r), NBD_OK);
    assert_int_equal(r.type, NBD_CMD_READ);
    assert_true(r.cookie == 0x1122334455667788ull);
    assert_true(r.offset == 4096);
    assert_int_equal(r.length, 512);
    assert_int_equal(nbd_request_check(&r, 1 << 20), 0);
}

static void bad_magic_and_short_headers_are_garbage(void **state)
{
    (void)state;
    uint8_t b[28];
    struct nbd_request r;
    request(b, 0, NBD_CMD_READ, 0, 512);
    assert_int_equal(nbd_request_parse(b, 27, &r), NBD_BAD_MAGIC);
    b[0] ^= 1;
    assert_int_equal(nbd_request_parse(b, sizeof b, &r), NBD_BAD_MAGIC);
}

static void an_oversized_write_ends_the_connection_a_read_gets_einval(void **state)
{
    (void)state;
    uint8_t b[28];
    struct nbd_request r;
    request(b, 0, NBD_CMD_WRITE, 0, NBD_PAYLOAD_MAX + 1);
    assert_int_equal(nbd_request_parse(b, sizeof b, &r), NBD_TOO_BIG);
    request(b, 0, NBD_CMD_READ, 0, NBD_PAYLOAD_MAX + 1);
    assert_int_equal(nbd_request_parse(b, sizeof b, &r), NBD_OK);
    assert_int_equal(nbd_request_check(&r, UINT64_MAX), NBD_EINVAL);
}

static void past_the_end_is_einval_for_reads_enospc_for_writes(void **state)
{
    (void)state;
    uint8_t b[28];
    struct nbd_request r;
    request(b, 0, NBD_CMD_READ, 1024, 512);
    nbd_request_parse(b, sizeof b, &r);
    assert_int_equal(nbd_request_check(&r, 1024), NBD_EINVAL);
    request(b, 0, NBD_CMD_WRITE, UINT64_MAX - 10, 512);
    nbd_request_parse(b, sizeof b, &r);
    assert_int_equal(nbd_request_check(&r, 1 << 20), NBD_ENOSPC);
    request(b, 0, NBD_CMD_TRIM, 512, 512);
    nbd_request_parse(b, sizeof b, &r);
    assert_int_equal(nbd_request_check(&r, 1024), 0);
}

static void unknown_commands_and_flags_are_einval(void **state)
{
    (void)state;
    uint8_t b[28];
    struct nbd_request r;
    request(b, 0, 42, 0, 0);
    nbd_request_parse(b, sizeof b, &r);
    assert_int_equal(nbd_request_check(&r, 1024), NBD_EINVAL);
    request(b, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE, 0, 512);
    nbd_request_parse(b, sizeof b, &r);
    assert_int_equal(nbd_request_check(&r, 1024), NBD_EINVAL);
    request(b, NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE_ZEROES, 0, 512);
    nbd_request_parse(b, sizeof b, &r);
    assert_int_equal(nbd_request_check(&r, 1024), 0);
    request(b, 0, NBD_CMD_FLUSH, 0, 1);
    nbd_request_parse(b, sizeof b, &r);
    assert_int_equal(nbd_request_check(&r, 1024), NBD_EINVAL);
}

static void options_and_info_requests_are_checked(void **state)
{
    (void)state;
    uint8_t b[64];
    struct nbd_option o;
    uint8_t *p = nbd_put64(b, NBD_IHAVEOPT);
    p = nbd_put32(p, NBD_OPT_GO);
    nbd_put32(p, 12);
    assert_int_equal(nbd_option_parse(b, 16, &o), 0);
    assert_int_equal(o.option, NBD_OPT_GO);
    nbd_put32(b + 12, NBD_OPTION_MAX + 1);
    assert_int_equal(nbd_option_parse(b, 16, &o), -1);
    b[0] = 0;
    assert_int_equal(nbd_option_parse(b, 16, &o), -1);

    /* name "disk", two info requests */
    p = nbd_put32(b, 4);
    memcpy(p, "disk", 4);
    p = nbd_put16(p + 4, 2);
    p = nbd_put16(p, NBD_INFO_BLOCK_SIZE);
    nbd_put16(p, NBD_INFO_NAME);
    const uint8_t *name, *info;
    uint32_t nl;
    uint16_t n;
    assert_int_equal(nbd_info_parse(b, 14, &name, &nl, &n, &info), 0);
    assert_int_equal(nl, 4);
    assert_memory_equal(name, "disk", 4);
    assert_int_equal(n, 2);
    assert_int_equal(nbd_be16(info), NBD_INFO_BLOCK_SIZE);
    assert_int_equal(nbd_info_parse(b, 13, &name, &nl, &n, &info), -1);
    nbd_put32(b, 0xffffffffu);
    assert_int_equal(nbd_info_parse(b, 14, &name, &nl, &n, &info), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_read_parses_and_is_served),
        cmocka_unit_test(bad_magic_and_short_headers_are_garbage),
        cmocka_unit_test(an_oversized_write_ends_the_connection_a_read_gets_einval),
        cmocka_unit_test(past_the_end_is_einval_for_reads_enospc_for_writes),
        cmocka_unit_test(unknown_commands_and_flags_are_einval),
        cmocka_unit_test(options_and_info_requests_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
