/* SPDX-License-Identifier: MIT */
/* Unit tests for pci_elapsed_ms (pci_elapsed.h), the clock arithmetic of
 * the sim PCI link's bounded waits: a wait that crosses a second boundary
 * is as long as it was, not 18 446 744 073 709 ms (the spurious
 * ODK_E_TIMEOUT of a flush, test_pci_capture's plug cycles under load). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "families/pci/pci_elapsed.h"
#include "odk/pci.h"

static uint64_t between(time_t s0, long ns0, time_t s1, long ns1)
{
    struct timespec a = {s0, ns0}, b = {s1, ns1};
    return pci_elapsed_ms(&a, &b);
}

static void test_within_one_second(void **state)
{
    (void)state;
    assert_int_equal(between(10, 100000000, 10, 350000000), 250);
    assert_int_equal(between(10, 0, 10, 999999), 0);
}

static void test_across_a_second_boundary(void **state)
{
    (void)state;
    /* 10.9 s to 11.1 s: the later tv_nsec is the smaller one. */
    assert_int_equal(between(10, 900000000, 11, 100000000), 200);
    assert_int_equal(between(10, 999999999, 11, 0), 0);
    /* and the deadline of the waits is still not passed 10 ms after 10.995 s */
    assert_true(between(10, 995000000, 11, 5000000) <= ODK_PCI_TIMEOUT_MS);
}

static void test_many_seconds(void **state)
{
    (void)state;
    assert_int_equal(between(10, 500000000, 15, 499000000), 4999);
    assert_int_equal(between(10, 500000000, 15, 501000000), 5001);
    assert_true(between(10, 500000000, 15, 501000000) > ODK_PCI_TIMEOUT_MS);
}

static void test_a_clock_that_did_not_advance(void **state)
{
    (void)state;
    assert_int_equal(between(11, 100000000, 11, 100000000), 0);
    assert_int_equal(between(11, 100000000, 10, 900000000), 0); /* never negative */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_within_one_second),
        cmocka_unit_test(test_across_a_second_boundary),
        cmocka_unit_test(test_many_seconds),
        cmocka_unit_test(test_a_clock_that_did_not_advance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
