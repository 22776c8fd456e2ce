/* SPDX-License-Identifier: MIT */
/* test_trace.c — the lifecycle trace: one "MICROSECONDS PID WHAT" line
 * per mark, cut but still one line when long, and nothing when off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/trace.h"

static void test_marks_are_lines_with_time_and_pid(void **state)
{
    (void)state;
    char path[] = "/tmp/odk-test-trace.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    setenv("ODK_TRACE", path, 1);
    trace_open();
    assert_true(trace_on());
    trace_mark("first %d", 1);
    char long_what[600];
    memset(long_what, 'x', sizeof long_what - 1);
    long_what[sizeof long_what - 1] = 0;
    trace_mark("%s", long_what);
    trace_mark("last");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1024];
    unsigned long long t, prev = 0;
    int pid, n = 0;
    char what[700];
    while (fgets(line, sizeof line, f)) {
        assert_non_null(strchr(line, '\n')); /* every mark ends its line */
        assert_true(strlen(line) <= 256);
        assert_int_equal(sscanf(line, "%llu %d %699[^\n]", &t, &pid, what), 3);
        assert_int_equal(pid, (int)getpid());
        assert_true(t >= prev);
        prev = t;
        if (n == 0)
            assert_string_equal(what, "first 1");
        if (n == 1)
            assert_true(strlen(what) > 100 && strspn(what, "x") == strlen(what));
        if (n == 2)
            assert_string_equal(what, "last");
        n++;
    }
    fclose(f);
    unlink(path);
    assert_int_equal(n, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_marks_are_lines_with_time_and_pid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
