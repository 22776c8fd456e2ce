/* SPDX-License-Identifier: MIT */
/* test_log_writer.c — a driver host's odk_log never waits for its log
 * pipe, and loses nothing it does not count: a child logs far more than
 * the pipe and the backlog hold while nobody reads, finishes, and only
 * then does the parent read.  Every line arrives whole and in order, and
 * the lines received plus the drops the writer told add up to the lines
 * logged. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log_writer.h"
#include "odk/log.h"

#define LINES 50000 /* ~2 MiB: far past the 64 KiB pipe and the 256 KiB backlog */

/* The child: logs LINES lines with fd 2 on the log pipe, says so on done,
 * and exits (exit writes out what the backlog still holds). */
static void child(int log_w, int done_w)
{
    dup2(log_w, 2);
    close(log_w);
    log_writer_enable();
    odk_log_set_tag("t");
    for (int i = 0; i < LINES; i++)
        odk_info("line %d of the test", i);
    odk_warn("last line");
    char c = 'y';
    if (write(done_w, &c, 1) != 1)
        _exit(2);
    exit(0);
}

static void test_a_full_pipe_never_blocks_and_drops_are_counted(void **state)
{
    (void)state;
    int log_p[2], done_p[2];
    assert_int_equal(pipe(log_p), 0);
    assert_int_equal(pipe(done_p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(log_p[0]);
        close(done_p[0]);
        child(log_p[1], done_p[1]);
    }
    close(log_p[1]);
    close(done_p[1]);
    /* A hang guard, not a timing: a writer that blocked on the full pipe
     * would never say it is done, since nobody reads yet. */
    alarm(60);
    char c;
    assert_int_equal(read(done_p[0], &c, 1), 1);

    FILE *f = fdopen(log_p[0], "r");
    assert_non_null(f);
    char line[4096];
    long received = 0, dropped = 0, last = -1;
    int lasts = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        assert_true(n > 0 && line[n - 1] == '\n'); /* whole lines only */
        int i;
        unsigned long long k;
        if (sscanf(line, "info t: line %d of the test\n", &i) == 1) {
            assert_true(i > last); /* in order */
            last = i;
            received++;
        } else if (sscanf(line, "warn t: %llu log lines dropped:", &k) == 1) {
            dropped += (long)k;
        } else if (strcmp(line, "warn t: last line\n") == 0) {
            lasts++;
        } else {
            fail_msg("unexpected line: %s", line);
        }
    }
    fclose(f);
    close(done_p[0]);
    alarm(0);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    assert_true(dropped > 0); /* the pipe and the backlog overflowed */
    assert_true(received > 0);
    assert_int_equal(received + dropped, LINES);
    assert_int_equal(lasts, 1); /* a warning has the backlog's reserve */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_full_pipe_never_blocks_and_drops_are_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
