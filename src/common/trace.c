/* SPDX-License-Identifier: MIT */
#include "common/trace.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int trace_fd = -1;
static pthread_once_t trace_once = PTHREAD_ONCE_INIT;

static void trace_open_once(void)
{
    const char *path = getenv("ODK_TRACE");
    if (path && *path)
        trace_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

void trace_open(void)
{
    pthread_once(&trace_once, trace_open_once);
}

bool trace_on(void)
{
    return trace_fd >= 0;
}

void trace_mark(const char *fmt, ...)
{
    if (trace_fd < 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char line[256];
    int n =
        snprintf(line, sizeof line, "%llu %d ",
                 (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000,
                 (int)getpid());
    int room = (int)sizeof line - n - 1; /* one byte kept for the newline */
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, (size_t)room, fmt, ap);
    va_end(ap);
    n += m < 0 ? 0 : m < room ? m : room - 1;
    line[n++] = '\n';
    if (write(trace_fd, line, (size_t)n) < 0) {
        /* a lost line is not reported */
    }
}
