/* SPDX-License-Identifier: MIT */
#include "odk/log.h"

#include "common/log_writer.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Process-wide, but resettable: odk_log_set_tag/level put it back. */
static char log_tag[128] = "odk";
static _Atomic odk_log_level log_level = ODK_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void odk_log_set_tag(const char *tag)
{
    pthread_mutex_lock(&log_lock);
    snprintf(log_tag, sizeof log_tag, "%s", tag ? tag : "odk");
    pthread_mutex_unlock(&log_lock);
}

void odk_log_set_level(odk_log_level level)
{
    log_level = level;
}

odk_log_level odk_log_get_level(void)
{
    return log_level;
}

void odk_log(odk_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (level > log_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One write per line so lines from several threads never interleave. */
    char line[2300];
    pthread_mutex_lock(&log_lock);
    int n = snprintf(line, sizeof line, "%s %s: %s\n", names[level], log_tag, msg);
    pthread_mutex_unlock(&log_lock);
    if (n > (int)sizeof line - 1) {
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    if (log_writer_put(line, (size_t)n, level))
        return; /* a driver host: never waits for the pipe (log_writer.c) */
    fwrite(line, 1, (size_t)n, stderr);
    fflush(stderr);
}
