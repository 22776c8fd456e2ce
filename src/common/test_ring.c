/* SPDX-License-Identifier: MIT */
/* Ring helpers across every wrap position: every start offset in the data
 * area, indices about to overflow 2^32, every fill level and chunk size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "odk/ring.h"
#include "odk/status.h"

/* Where the header keeps head and tail (see ring.c's layout).  Moving
 * indices backwards never happens in real use; re-attaching resets the
 * views each side caches of the other's index. */
static void set_indices(void *mem, uint32_t head, uint32_t tail)
{
    memcpy((uint8_t *)mem + 0, &head, 4);
    memcpy((uint8_t *)mem + 64, &tail, 4);
}

static void reset_indices(odk_ring *r, void *mem, uint32_t head, uint32_t tail)
{
    set_indices(mem, head, tail);
    assert_int_equal(odk_ring_attach(r, mem, odk_ring_bytes(r->size)), ODK_OK);
}

static void check_size(uint32_t size)
{
    size_t bytes = odk_ring_bytes(size);
    void *mem = aligned_alloc(64, (bytes + 63) / 64 * 64);
    uint8_t *in = malloc(size), *out = malloc(size);
    odk_ring r;
    assert_int_equal(odk_ring_format(&r, mem, bytes, size), ODK_OK);
    /* Start positions: every offset in the first lap, and the last lap
     * before the 32-bit indices wrap. */
    for (int lap = 0; lap < 2; lap++) {
        for (uint32_t off = 0; off < size; off++) {
            uint32_t start = lap == 0 ? off : (uint32_t)(0u - size + off);
            for (uint32_t len = 0; len <= size; len++) {
                reset_indices(&r, mem, start, start);
                for (uint32_t i = 0; i < len; i++)
                    in[i] = (uint8_t)(start + i * 31 + len);
                size_t done;
                assert_int_equal(odk_ring_writable(&r), size);
                assert_int_equal(odk_ring_write(&r, in, len, &done), ODK_OK);
                assert_int_equal(done, len);
                assert_int_equal(odk_ring_readable(&r), len);
                assert_int_equal(odk_ring_writable(&r), size - len);
                /* A write into a full ring moves nothing. */
                if (len == size) {
                    assert_int_equal(odk_ring_write(&r, in, 1, &done), ODK_OK);
                    assert_int_equal(done, 0);
                }
                /* Read back in chunks of 3 to cross the wrap mid-chunk. */
                size_t got = 0;
                while (got < len) {
                    size_t want = len - got < 3 ? len - got : 3;
                    assert_int_equal(odk_ring_read(&r, out + got, want, &done), ODK_OK);
                    assert_int_equal(done, want);
                    got += done;
                }
                assert_memory_equal(in, out, len);
                assert_int_equal(odk_ring_readable(&r), 0);
                assert_int_equal(odk_ring_read(&r, out, 1, &done), ODK_OK);
                assert_int_equal(done, 0);
            }
        }
    }
    free(in);
    free(out);
    free(mem);
}

static void test_every_wrap_position(void **state)
{
    (void)state;
    check_size(16);
    check_size(64);
}

static void test_segments(void **state)
{
    (void)state;
    uint32_t size = 16;
    void *mem = aligned_alloc(64, 256);
    odk_ring r;
    assert_int_equal(odk_ring_format(&r, mem, odk_ring_bytes(size), size), ODK_OK);
    reset_indices(&r, mem, 10, 10);
    struct iovec iov[2];
    assert_int_equal(odk_ring_write_segments(&r, iov), 2);
    assert_int_equal(iov[0].iov_len, 6);
    assert_int_equal(iov[1].iov_len, 10);
    assert_int_equal(odk_ring_commit(&r, 17), ODK_E_INVALID);
    assert_int_equal(odk_ring_commit(&r, 8), ODK_OK);
    assert_int_equal(odk_ring_read_segments(&r, iov), 2);
    assert_int_equal(iov[0].iov_len + iov[1].iov_len, 8);
    assert_int_equal(odk_ring_consume(&r, 9), ODK_E_INVALID);
    assert_int_equal(odk_ring_consume(&r, 8), ODK_OK);
    assert_int_equal(odk_ring_read_segments(&r, iov), 0);
    free(mem);
}

static void test_untrusted_indices(void **state)
{
    (void)state;
    uint32_t size = 16;
    void *mem = aligned_alloc(64, 256);
    odk_ring r;
    assert_int_equal(odk_ring_format(&r, mem, odk_ring_bytes(size), size), ODK_OK);
    set_indices(mem, 100, 50); /* more than size bytes "in" the ring */
    uint8_t buf[32];
    size_t done = 99;
    assert_int_equal(odk_ring_readable(&r), 0);
    assert_int_equal(odk_ring_writable(&r), 0);
    assert_int_equal(odk_ring_read(&r, buf, sizeof buf, &done), ODK_E_PROTOCOL);
    assert_int_equal(done, 0);
    assert_int_equal(odk_ring_write(&r, buf, sizeof buf, &done), ODK_E_PROTOCOL);
    assert_int_equal(odk_ring_flush(&r), ODK_E_PROTOCOL);
    set_indices(mem, 5, 9); /* tail past head */
    assert_int_equal(odk_ring_read(&r, buf, 1, &done), ODK_E_PROTOCOL);
    /* A header whose size is not a power of two is refused on attach. */
    uint32_t bad = 24;
    memcpy((uint8_t *)mem + 128, &bad, 4);
    assert_int_equal(odk_ring_attach(&r, mem, 256), ODK_E_PROTOCOL);
    bad = 1u << 20;
    memcpy((uint8_t *)mem + 128, &bad, 4);
    assert_int_equal(odk_ring_attach(&r, mem, 256), ODK_E_PROTOCOL); /* larger than the mapping */
    assert_int_equal(odk_ring_format(&r, mem, 256, 12), ODK_E_INVALID);
    assert_int_equal(odk_ring_format(&r, mem, 100, 16), ODK_E_INVALID);
    free(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_wrap_position),
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_untrusted_indices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
