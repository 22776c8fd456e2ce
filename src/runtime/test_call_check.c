/* SPDX-License-Identifier: MIT */
/* call_check: every way a call request can be refused, on the socket and
 * in the mailbox, with its status and its sentence; and what an accepted
 * call decodes to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/fastcall.h"
#include "common/wire.h"
#include "runtime/call_check.h"

static int nop(odk_driver *d, odk_user_client *uc, odk_call *c)
{
    return ODK_OK;
}

static const odk_method table[] = {
    [0] = {nop, .scalar_in = 2, .scalar_out = 1},
    [1] = {nop, .struct_in = 64, .struct_out = 16, .memory = 1},
    [2] = {nop, .scalar_in = ODK_VARIABLE, .scalar_out = ODK_VARIABLE,
           .struct_in = ODK_VARIABLE_SIZE, .struct_out = ODK_VARIABLE_SIZE, .memory = ODK_VARIABLE},
    /* [3] is a hole */
    [4] = {.fn = nop},
};
#define N (uint32_t)(sizeof table / sizeof table[0])

/* The app's registered buffers: the handle is the entry's address. */
struct buf {
    uint32_t id;
    uint64_t len;
};
static struct buf bufs[] = {{7, 4096}, {9, 0}, {11, UINT64_MAX}};

static odk_memory *find(void *ctx, uint32_t id, uint64_t *len)
{
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        if (bufs[i].id == id) {
            *len = bufs[i].len;
            return (odk_memory *)&bufs[i];
        }
    }
    return NULL;
}

/* A request as libodk lays it out; the buffer is aligned like the
 * runtime's receive buffer and the mailbox. */
static _Alignas(64) uint8_t req[FASTCALL_AREA + 64];

static size_t encode(const struct wire_call *c, const uint64_t *scalars, uint32_t n_scalars,
                     const struct wire_memory_ref *refs, uint32_t n_refs, size_t struct_len)
{
    size_t at = 0;
    memcpy(req, c, sizeof *c);
    at += sizeof *c;
    memcpy(req + at, scalars, n_scalars * 8);
    at += n_scalars * 8;
    memcpy(req + at, refs, n_refs * sizeof *refs);
    at += n_refs * sizeof *refs;
    for (size_t i = 0; i < struct_len; i++)
        req[at + i] = (uint8_t)i;
    return at + struct_len;
}

static char why[200];
static struct call_view v;

static int sock(size_t len)
{
    memset(&v, 0xa5, sizeof v);
    return call_check(CALL_SOCKET, req, len, table, N, find, NULL, &v, why, sizeof why);
}

static int mbox(size_t area)
{
    memset(&v, 0xa5, sizeof v);
    return call_check(CALL_MAILBOX, req, area, table, N, find, NULL, &v, why, sizeof why);
}

static void test_accepted_call_is_decoded_in_place(void **state)
{
    uint64_t sc[2] = {5, 6};
    struct wire_call c = {.selector = 0, .scalar_in_count = 2, .scalar_out_max = 4};
    size_t len = encode(&c, sc, 2, NULL, 0, 0);
    assert_int_equal(sock(len), ODK_OK);
    assert_string_equal(why, "ok");
    assert_ptr_equal(v.method, &table[0]);
    assert_ptr_equal(v.scalar_in, (const uint64_t *)(req + sizeof c));
    assert_int_equal(v.scalar_in[1], 6);
    assert_null(v.struct_in);
    assert_int_equal(v.memory_count, 0);
    assert_int_equal(v.len, len);
    assert_int_equal(v.scalar_out_count, 1); /* the table's count, not the room */
    assert_int_equal(v.struct_out_cap, 0);
    assert_int_equal(v.struct_out_len, 0);

    struct wire_memory_ref r = {.id = 7, .offset = 4000, .length = 96};
    c = (struct wire_call){
        .selector = 1, .memory_count = 1, .struct_in_len = 64, .struct_out_max = 100};
    len = encode(&c, NULL, 0, &r, 1, 64);
    assert_int_equal(sock(len), ODK_OK);
    assert_ptr_equal(v.struct_in, req + sizeof c + sizeof r);
    assert_int_equal(v.memory_count, 1);
    assert_ptr_equal(v.memory[0].memory, (odk_memory *)&bufs[0]);
    assert_int_equal(v.memory[0].offset, 4000);
    assert_int_equal(v.memory[0].length, 96);
    assert_int_equal(v.struct_out_cap, 16); /* fixed: the table's size */
    assert_int_equal(v.struct_out_len, 16);

    c = (struct wire_call){.selector = 2, .scalar_out_max = 3, .struct_out_max = 50};
    assert_int_equal(sock(encode(&c, NULL, 0, NULL, 0, 0)), ODK_OK);
    assert_int_equal(v.scalar_out_count, 3); /* variable: the app's room */
    assert_int_equal(v.struct_out_cap, 50);
    assert_int_equal(v.struct_out_len, 0);
}

static void test_short_or_mislengthed_bodies(void **state)
{
    struct wire_call c = {.selector = 4};
    size_t len = encode(&c, NULL, 0, NULL, 0, 0);
    assert_int_equal(sock(len - 1), ODK_E_PROTOCOL);
    assert_string_equal(why, "call body is 31 bytes, shorter than its 32-byte header");
    assert_int_equal(sock(0), ODK_E_PROTOCOL);
    assert_int_equal(sock(len + 1), ODK_E_PROTOCOL);
    assert_string_equal(why, "call body is 33 bytes, its header describes 32");

    c = (struct wire_call){.selector = 2, .scalar_in_count = 3, .struct_in_len = 10};
    uint64_t sc[3] = {0};
    len = encode(&c, sc, 3, NULL, 0, 10);
    assert_int_equal(sock(len), ODK_OK);
    assert_int_equal(sock(len - 1), ODK_E_PROTOCOL);
    assert_string_equal(why, "call body is 65 bytes, its header describes 66");
}

static void test_table_mismatches(void **state)
{
    struct wire_call c = {.selector = 3};
    assert_int_equal(sock(encode(&c, NULL, 0, NULL, 0, 0)), ODK_E_BAD_SELECTOR);
    assert_string_equal(why, "selector 3 is not in the method table (5 entries)");
    c.selector = UINT32_MAX;
    assert_int_equal(sock(encode(&c, NULL, 0, NULL, 0, 0)), ODK_E_BAD_SELECTOR);
    assert_int_equal(
        call_check(CALL_SOCKET, req, sizeof c, NULL, 0, find, NULL, &v, why, sizeof why),
        ODK_E_BAD_SELECTOR);

    c = (struct wire_call){.selector = 0, .scalar_in_count = 1, .scalar_out_max = 1};
    uint64_t sc[1] = {0};
    assert_int_equal(sock(encode(&c, sc, 1, NULL, 0, 0)), ODK_E_BAD_ARGUMENTS);
    assert_string_equal(why, "selector 0: expected 2 scalar inputs, got 1");
    /* One of a thing is singular ("expected 1 scalar inputs" was issue 20). */
    c = (struct wire_call){.selector = 0, .scalar_in_count = 2, .scalar_out_max = 0};
    uint64_t two[2] = {0, 0};
    assert_int_equal(sock(encode(&c, two, 2, NULL, 0, 0)), ODK_E_BAD_ARGUMENTS);
    assert_string_equal(why, "selector 0: returns 1 scalar, caller has room for 0");

    c = (struct wire_call){.selector = 2, .scalar_in_count = ODK_MAX_SCALARS + 1};
    assert_int_equal(sock(encode(&c, NULL, 0, NULL, 0, 0)), ODK_E_LIMIT);
    assert_non_null(strstr(why, "ODK_MAX_SCALARS"));
    c = (struct wire_call){.selector = 2, .struct_out_max = ODK_MAX_STRUCT + 1};
    assert_int_equal(sock(encode(&c, NULL, 0, NULL, 0, 0)), ODK_E_LIMIT);
    assert_non_null(strstr(why, "ODK_MAX_STRUCT"));
}

static void test_memory_range_counts(void **state)
{
    struct wire_memory_ref r[ODK_MAX_CALL_MEMORY + 1];
    for (size_t i = 0; i < ODK_MAX_CALL_MEMORY + 1; i++)
        r[i] = (struct wire_memory_ref){.id = 7, .offset = i, .length = 1};
    struct wire_call c = {.selector = 2, .memory_count = ODK_MAX_CALL_MEMORY};
    assert_int_equal(sock(encode(&c, NULL, 0, r, c.memory_count, 0)), ODK_OK);
    assert_int_equal(v.memory_count, ODK_MAX_CALL_MEMORY);
    assert_int_equal(v.memory[ODK_MAX_CALL_MEMORY - 1].offset, ODK_MAX_CALL_MEMORY - 1);

    c.memory_count = ODK_MAX_CALL_MEMORY + 1;
    assert_int_equal(sock(encode(&c, NULL, 0, r, c.memory_count, 0)), ODK_E_LIMIT);
    assert_string_equal(why, "selector 2: more than ODK_MAX_CALL_MEMORY (16) memory ranges");

    c = (struct wire_call){
        .selector = 1, .memory_count = 2, .struct_in_len = 64, .struct_out_max = 16};
    assert_int_equal(sock(encode(&c, NULL, 0, r, 2, 64)), ODK_E_BAD_ARGUMENTS);
    assert_string_equal(why, "selector 1: expected 1 memory range, got 2");
    c.memory_count = 0;
    assert_int_equal(sock(encode(&c, NULL, 0, NULL, 0, 64)), ODK_E_BAD_ARGUMENTS);
}

static int one_range(uint32_t id, uint64_t offset, uint64_t length)
{
    struct wire_memory_ref r = {.id = id, .offset = offset, .length = length};
    struct wire_call c = {.selector = 2, .memory_count = 1};
    return sock(encode(&c, NULL, 0, &r, 1, 0));
}

static void test_memory_range_bounds(void **state)
{
    assert_int_equal(one_range(7, 0, 4096), ODK_OK);
    assert_int_equal(one_range(7, 4096, 0), ODK_OK); /* empty, at the end */
    assert_int_equal(one_range(9, 0, 0), ODK_OK);
    assert_int_equal(one_range(11, UINT64_MAX, 0), ODK_OK);
    assert_int_equal(one_range(11, 1, UINT64_MAX - 1), ODK_OK);

    assert_int_equal(one_range(8, 0, 0), ODK_E_NOT_FOUND);
    assert_string_equal(why, "memory range 0 names buffer 8, which is not registered");
    assert_int_equal(one_range(7, 4097, 0), ODK_E_INVALID);
    assert_string_equal(why, "memory range 0 [4097, +0) is outside buffer 7 (4096 bytes)");
    assert_int_equal(one_range(7, 1, 4096), ODK_E_INVALID);
    assert_int_equal(one_range(7, 4095, 2), ODK_E_INVALID);
    assert_int_equal(one_range(9, 0, 1), ODK_E_INVALID);
    /* offset + length wraps past 2^64 back inside the buffer */
    assert_int_equal(one_range(7, 16, UINT64_MAX - 8), ODK_E_INVALID);
    assert_int_equal(one_range(11, 2, UINT64_MAX - 1), ODK_E_INVALID);

    /* The first bad range is the one named. */
    struct wire_memory_ref r[3] = {{.id = 7, .length = 1}, {.id = 9, .length = 1}, {.id = 5}};
    struct wire_call c = {.selector = 2, .memory_count = 3};
    assert_int_equal(sock(encode(&c, NULL, 0, r, 3, 0)), ODK_E_INVALID);
    assert_string_equal(why, "memory range 1 [0, +1) is outside buffer 9 (0 bytes)");

    /* No buffers at all. */
    struct wire_memory_ref one = {.id = 7};
    c.memory_count = 1;
    size_t len = encode(&c, NULL, 0, &one, 1, 0);
    assert_int_equal(call_check(CALL_SOCKET, req, len, table, N, NULL, NULL, &v, why, sizeof why),
                     ODK_E_NOT_FOUND);
}

static void test_mailbox_takes_its_length_from_the_header(void **state)
{
    memset(req, 0xee, sizeof req); /* what the area held before */
    uint64_t sc[2] = {1, 2};
    struct wire_call c = {.selector = 0, .scalar_in_count = 2, .scalar_out_max = 1};
    size_t len = encode(&c, sc, 2, NULL, 0, 0);
    assert_int_equal(mbox(FASTCALL_AREA), ODK_OK);
    assert_int_equal(v.len, len);
    assert_int_equal(v.scalar_in[0], 1);

    struct wire_memory_ref r = {.id = 7, .offset = 1, .length = 2};
    c = (struct wire_call){.selector = 2, .memory_count = 1, .struct_in_len = 5};
    len = encode(&c, NULL, 0, &r, 1, 5);
    assert_int_equal(mbox(FASTCALL_AREA), ODK_OK);
    assert_int_equal(v.len, len);
    assert_ptr_equal(v.struct_in, req + sizeof c + sizeof r);
    assert_int_equal(v.memory[0].length, 2);
    assert_int_equal(mbox(len), ODK_OK); /* a call that fills the area exactly */
    assert_int_equal(mbox(len - 1), ODK_E_PROTOCOL);
    assert_string_equal(why, "call mailbox request is larger than its 60-byte area");
    assert_int_equal(mbox(sizeof c - 1), ODK_E_PROTOCOL);
}

static void test_mailbox_framing(void **state)
{
    struct wire_call c = {.selector = 2, .scalar_in_count = ODK_MAX_SCALARS + 1};
    encode(&c, NULL, 0, NULL, 0, 0);
    /* Over a limit is framing in the mailbox, not ODK_E_LIMIT. */
    assert_int_equal(mbox(FASTCALL_AREA), ODK_E_PROTOCOL);
    assert_string_equal(why, "call mailbox request with 257 scalars and 0 memory ranges");
    c = (struct wire_call){.selector = 2, .memory_count = ODK_MAX_CALL_MEMORY + 1};
    encode(&c, NULL, 0, NULL, 0, 0);
    assert_int_equal(mbox(FASTCALL_AREA), ODK_E_PROTOCOL);

    c = (struct wire_call){.selector = 2, .struct_in_len = FASTCALL_AREA - sizeof c + 1};
    encode(&c, NULL, 0, NULL, 0, 0);
    assert_int_equal(mbox(FASTCALL_AREA), ODK_E_PROTOCOL);
    assert_string_equal(why, "call mailbox request is larger than its 61440-byte area");
    c.struct_in_len--;
    encode(&c, NULL, 0, NULL, 0, 0);
    assert_int_equal(mbox(FASTCALL_AREA), ODK_OK);
    /* A length that would wrap the sum back inside the area. */
    uint64_t sc[8] = {0};
    c = (struct wire_call){.selector = 2, .scalar_in_count = 8, .struct_in_len = UINT64_MAX - 31};
    encode(&c, sc, 8, NULL, 0, 0); /* 96 + that = 64 (mod 2^64) */
    assert_int_equal(mbox(FASTCALL_AREA), ODK_E_PROTOCOL);

    /* The method table's answers come after the framing. */
    c = (struct wire_call){.selector = 3};
    encode(&c, NULL, 0, NULL, 0, 0);
    assert_int_equal(mbox(FASTCALL_AREA), ODK_E_BAD_SELECTOR);
}

static void test_mailbox_outputs_must_fit(void **state)
{
    size_t hdr = sizeof(struct fastcall_reply_hdr);
    struct wire_call c = {
        .selector = 2, .scalar_out_max = 10, .struct_out_max = FASTCALL_AREA - hdr - 80};
    size_t len = encode(&c, NULL, 0, NULL, 0, 0);
    assert_int_equal(mbox(FASTCALL_AREA), ODK_OK);
    assert_int_equal(sock(len), ODK_OK); /* the socket has no such limit */
    c.struct_out_max++;
    encode(&c, NULL, 0, NULL, 0, 0);
    assert_int_equal(mbox(FASTCALL_AREA), ODK_E_PROTOCOL);
    assert_string_equal(why, "the outputs do not fit the call mailbox");
    assert_int_equal(sock(len), ODK_OK);
    /* Checked after the ranges: a bad range is still named first. */
    struct wire_memory_ref r = {.id = 8};
    c.memory_count = 1;
    encode(&c, NULL, 0, &r, 1, 0);
    assert_int_equal(mbox(FASTCALL_AREA), ODK_E_NOT_FOUND);
}

static void test_why_may_be_absent_or_short(void **state)
{
    struct wire_call c = {.selector = 3};
    size_t len = encode(&c, NULL, 0, NULL, 0, 0);
    assert_int_equal(call_check(CALL_SOCKET, req, len, table, N, find, NULL, &v, NULL, 0),
                     ODK_E_BAD_SELECTOR);
    char small[8];
    assert_int_equal(
        call_check(CALL_SOCKET, req, len, table, N, find, NULL, &v, small, sizeof small),
        ODK_E_BAD_SELECTOR);
    assert_string_equal(small, "selecto");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_call_is_decoded_in_place),
        cmocka_unit_test(test_short_or_mislengthed_bodies),
        cmocka_unit_test(test_table_mismatches),
        cmocka_unit_test(test_memory_range_counts),
        cmocka_unit_test(test_memory_range_bounds),
        cmocka_unit_test(test_mailbox_takes_its_length_from_the_header),
        cmocka_unit_test(test_mailbox_framing),
        cmocka_unit_test(test_mailbox_outputs_must_fit),
        cmocka_unit_test(test_why_may_be_absent_or_short),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
