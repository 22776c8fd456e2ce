/* SPDX-License-Identifier: MIT */
/* Unit tests for dma_copy: every length from 0 to 300 bytes at every
 * alignment of source and destination within a line, and large copies
 * with odd heads and tails; each checks the copied bytes and that not a
 * byte around the destination changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <cmocka.h>

#include "buses/storage_sim/dma_copy.h"

#define GUARD 128
#define FILL 0xa5

/* Copies len bytes from src offset so to dst offset dso (both from a
 * 64-byte-aligned base) and checks the copy and the guards around it. */
static void copy_and_check(size_t len, size_t so, size_t dso)
{
    size_t n = GUARD + 64 + len + GUARD;
    uint8_t *src = aligned_alloc(64, (n + 63) / 64 * 64);
    uint8_t *dst = aligned_alloc(64, (n + 63) / 64 * 64);
    assert_non_null(src);
    assert_non_null(dst);
    for (size_t i = 0; i < n; i++)
        src[i] = (uint8_t)(i * 131 + len + 7); /* no period of 64 */
    memset(dst, FILL, n);
    dma_copy(dst + GUARD + dso, src + GUARD + so, len);
    for (size_t i = 0; i < n; i++) {
        size_t at = GUARD + dso;
        uint8_t want = i >= at && i < at + len ? src[i - at + GUARD + so] : FILL;
        if (dst[i] != want)
            fail_msg("len %zu, src +%zu, dst +%zu: byte %zd of the destination is %#x, not %#x",
                     len, so, dso, (ssize_t)i - (ssize_t)at, dst[i], want);
    }
    free(src);
    free(dst);
}

static void test_every_small_length_and_alignment(void **state)
{
    (void)state;
    for (size_t len = 0; len <= 300; len++)
        for (size_t so = 0; so < 64; so += len > 140 ? 7 : 1)
            for (size_t dso = 0; dso < 64; dso++)
                copy_and_check(len, so, dso);
}

static void test_large_copies_with_odd_ends(void **state)
{
    (void)state;
    static const size_t lens[] = {4096, 4096 + 1, 65536 - 3, 65536, 1u << 20, (1u << 20) + 63};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (size_t so = 0; so < 64; so += 13)
            for (size_t dso = 0; dso < 64; dso += 9)
                copy_and_check(lens[i], so, dso);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_small_length_and_alignment),
        cmocka_unit_test(test_large_copies_with_odd_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
