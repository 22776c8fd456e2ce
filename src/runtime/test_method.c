/* SPDX-License-Identifier: MIT */
/* Method-table validation: every way a call can disagree with its table
 * gets its own status and a sentence saying what was expected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "odk/driver.h"

static int nop(odk_driver *d, odk_user_client *uc, odk_call *c)
{
    return ODK_OK;
}

static const odk_method table[] = {
    [0] = {nop, .scalar_in = 2, .scalar_out = 1},
    [1] = {nop, .struct_in = 64, .struct_out = 16},
    [2] = {nop, .scalar_in = ODK_VARIABLE, .scalar_out = ODK_VARIABLE,
           .struct_in = ODK_VARIABLE_SIZE, .struct_out = ODK_VARIABLE_SIZE},
    /* [3] is a hole */
    [4] = {.fn = nop},
};
#define N (uint32_t)(sizeof table / sizeof table[0])

static int check(uint32_t sel, uint32_t sin, uint64_t stin, uint32_t sout, uint64_t stout,
                 char *why)
{
    return odk_method_check(table, N, sel, sin, stin, sout, stout, why, 200);
}

static void test_exact_shapes_pass(void **state)
{
    char why[200];
    assert_int_equal(check(0, 2, 0, 1, 0, why), ODK_OK);
    assert_int_equal(check(0, 2, 0, 16, 4096, why), ODK_OK); /* more room is fine */
    assert_int_equal(check(1, 0, 64, 0, 16, why), ODK_OK);
    assert_int_equal(check(4, 0, 0, 0, 0, why), ODK_OK);
}

static void test_variable_entries_take_anything_within_limits(void **state)
{
    char why[200];
    assert_int_equal(check(2, 0, 0, 0, 0, why), ODK_OK);
    assert_int_equal(check(2, ODK_MAX_SCALARS, ODK_MAX_STRUCT, ODK_MAX_SCALARS, ODK_MAX_STRUCT, why),
                     ODK_OK);
    assert_int_equal(check(2, ODK_MAX_SCALARS + 1, 0, 0, 0, why), ODK_E_LIMIT);
    assert_non_null(strstr(why, "ODK_MAX_SCALARS"));
    assert_int_equal(check(2, 0, ODK_MAX_STRUCT + 1, 0, 0, why), ODK_E_LIMIT);
    assert_non_null(strstr(why, "ODK_MAX_STRUCT"));
    assert_int_equal(check(2, 0, 0, 0, ODK_MAX_STRUCT + 1, why), ODK_E_LIMIT);
}

static void test_mismatches_say_what_was_expected(void **state)
{
    char why[200];
    assert_int_equal(check(0, 1, 0, 1, 0, why), ODK_E_BAD_ARGUMENTS);
    assert_string_equal(why, "selector 0: expected 2 scalar inputs, got 1");
    assert_int_equal(check(1, 0, 63, 0, 16, why), ODK_E_BAD_ARGUMENTS);
    assert_string_equal(why, "selector 1: expected a 64-byte input structure, got 63");
    assert_int_equal(check(0, 2, 0, 0, 0, why), ODK_E_BAD_ARGUMENTS);
    assert_string_equal(why, "selector 0: returns 1 scalar, caller has room for 0");
    assert_int_equal(check(1, 0, 64, 0, 15, why), ODK_E_BAD_ARGUMENTS);
    assert_string_equal(why, "selector 1: returns a 16-byte structure, caller has room for 15");
    assert_int_equal(check(4, 1, 0, 0, 0, why), ODK_E_BAD_ARGUMENTS);
}

static void test_unknown_selectors(void **state)
{
    char why[200];
    assert_int_equal(check(3, 0, 0, 0, 0, why), ODK_E_BAD_SELECTOR); /* a hole */
    assert_string_equal(why, "selector 3 is not in the method table (5 entries)");
    assert_int_equal(check(5, 0, 0, 0, 0, why), ODK_E_BAD_SELECTOR);
    assert_int_equal(check(UINT32_MAX, 0, 0, 0, 0, why), ODK_E_BAD_SELECTOR);
    assert_int_equal(odk_method_check(NULL, 0, 0, 0, 0, 0, 0, why, sizeof why),
                     ODK_E_BAD_SELECTOR);
    /* No room for the sentence is fine too. */
    assert_int_equal(odk_method_check(table, N, 9, 0, 0, 0, 0, NULL, 0), ODK_E_BAD_SELECTOR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_shapes_pass),
        cmocka_unit_test(test_variable_entries_take_anything_within_limits),
        cmocka_unit_test(test_mismatches_say_what_was_expected),
        cmocka_unit_test(test_unknown_selectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
