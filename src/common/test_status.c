/* SPDX-License-Identifier: MIT */
/* test_status.c — every status has a name and a sentence. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "odk/status.h"

static void test_every_status_named(void **state)
{
    (void)state;
    for (int s = 0; s >= ODK_STATUS_MIN; s--) {
        const char *name = odk_status_name(s);
        const char *text = odk_strerror(s);
        assert_non_null(name);
        assert_non_null(text);
        assert_int_equal(strncmp(name, "ODK_", 4), 0);
        assert_string_not_equal(name, "ODK_E_UNKNOWN");
        /* The text is "NAME: sentence" with a non-empty sentence. */
        size_t n = strlen(name);
        assert_int_equal(strncmp(text, name, n), 0);
        assert_int_equal(strncmp(text + n, ": ", 2), 0);
        assert_true(strlen(text) > n + 2);
    }
}

static void test_names_unique(void **state)
{
    (void)state;
    for (int a = 0; a >= ODK_STATUS_MIN; a--)
        for (int b = a - 1; b >= ODK_STATUS_MIN; b--)
            assert_string_not_equal(odk_status_name(a), odk_status_name(b));
}

static void test_known_values(void **state)
{
    (void)state;
    assert_string_equal(odk_status_name(ODK_OK), "ODK_OK");
    assert_string_equal(odk_status_name(ODK_E_PROTOCOL), "ODK_E_PROTOCOL");
    assert_string_equal(odk_status_name(ODK_E_DRIVER), "ODK_E_DRIVER");
    assert_non_null(strstr(odk_strerror(ODK_E_NOMEM), "ODK_E_NOMEM: "));
}

static void test_unknown_values(void **state)
{
    (void)state;
    const int unknown[] = {1, 2, 100, ODK_STATUS_MIN - 1, -1000, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        assert_string_equal(odk_status_name(unknown[i]), "ODK_E_UNKNOWN");
        assert_string_equal(odk_strerror(unknown[i]), "ODK_E_UNKNOWN: unknown status");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_status_named),
        cmocka_unit_test(test_names_unique),
        cmocka_unit_test(test_known_values),
        cmocka_unit_test(test_unknown_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
