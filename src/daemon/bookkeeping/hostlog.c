/* SPDX-License-Identifier: MIT */
/* A driver host's log: its stdout and stderr arrive on a pipe, line by
 * line.  Each line goes to odkd's stderr and to STATE/logs/BUNDLE.log
 * (rotated to .1 past LOG_FILE_MAX), at most LOG_LINES_PER_SECOND a
 * second (and as many warnings and errors); the last HOSTLOG_LINES are
 * kept for crash reports whatever the rate. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "daemon/bookkeeping/hostlog.h"
#include "daemon/odkd.h"
#include "odk/status.h"

#define LOG_LINES_PER_SECOND 2000 /* per host, and as many warnings and errors; more are dropped */
#define LOG_FILE_MAX (16u << 20)  /* a bundle's log rotates to .1 past this */

int hostlog_open(struct odkd *d, struct host_log *log, const char *bundle_id, const char *label)
{
    *log = (struct host_log){.fd = -1, .file = -1, .watch = {.fd = -1}};
    log->label = strdup(label);
    if (!log->label || asprintf(&log->path, "%s/logs/%s.log", d->state_dir, bundle_id) < 0) {
        free(log->label);
        log->label = NULL;
        log->path = NULL;
        return ODK_E_NOMEM;
    }
    log->file = open(log->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    struct stat st;
    log->bytes = log->file >= 0 && fstat(log->file, &st) == 0 ? (uint64_t)st.st_size : 0;
    return ODK_OK;
}

static void remember(struct host_log *log, const char *line, size_t len)
{
    char *copy = strndup(line, len);
    if (!copy)
        return;
    free(log->lines[log->next]);
    log->lines[log->next] = copy;
    log->next = (log->next + 1) % HOSTLOG_LINES;
}

static void rotate(struct host_log *log)
{
    /* Keep one previous file: BUNDLE.log.1. */
    char old[4200];
    snprintf(old, sizeof old, "%s.1", log->path);
    rename(log->path, old);
    close(log->file);
    log->file = open(log->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    log->bytes = 0;
}

static void write_line(struct host_log *log, const char *line, size_t len)
{
    remember(log, line, len);
    fprintf(stderr, "%.*s\n", (int)len, line);
    if (log->file < 0)
        return;
    /* One writev (O_APPEND: line and newline land together); dprintf's
     * stream asked the file's fstat and lseek first, two system calls a
     * line, four or five lines a plug cycle. */
    struct iovec iov[2] = {{(void *)line, len}, {(void *)"\n", 1}};
    ssize_t n = writev(log->file, iov, 2);
    log->bytes += n > 0 ? (uint64_t)n : 0;
    if (log->bytes > LOG_FILE_MAX)
        rotate(log);
}

/* At most LOG_LINES_PER_SECOND lines a second reach the logs, and as many
 * warnings and errors besides, so a flood of info lines does not hide
 * them (the host's own "N log lines dropped", a watchdog's deadline); the
 * rest are counted, and the count is logged when the next second starts. */
static void take_line(struct host_log *log, const char *line, size_t len)
{
    uint64_t now = loop_now_ms();
    if (now - log->window_ms >= 1000) {
        if (log->dropped) {
            char note[256];
            int n = snprintf(note, sizeof note,
                             "warn odkd: %s: %u log lines dropped (more than %d a second)",
                             log->label, log->dropped, LOG_LINES_PER_SECOND);
            write_line(log, note, (size_t)n < sizeof note ? (size_t)n : sizeof note - 1);
        }
        log->window_ms = now;
        log->lines_in_window = 0;
        log->urgent_in_window = 0;
        log->dropped = 0;
    }
    bool urgent = (len > 5 && memcmp(line, "warn ", 5) == 0) ||
                  (len > 6 && memcmp(line, "error ", 6) == 0);
    uint32_t *count = urgent ? &log->urgent_in_window : &log->lines_in_window;
    if (++*count <= LOG_LINES_PER_SECOND) {
        write_line(log, line, len);
        return;
    }
    log->dropped++;
    remember(log, line, len);
}

static void close_pipe(struct odkd *d, struct host_log *log)
{
    if (log->partial_len)
        take_line(log, log->partial, log->partial_len);
    log->partial_len = 0;
    loop_del(d, &log->watch);
    if (log->fd >= 0)
        close(log->fd);
    log->fd = -1;
}

/* Reads once; false when the pipe has ended (and is closed). */
static bool read_once(struct odkd *d, struct host_log *log)
{
    char buf[4096];
    ssize_t n = read(log->fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return errno == EINTR;
    if (n <= 0) {
        close_pipe(d, log);
        return false;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n' || log->partial_len == sizeof log->partial) {
            take_line(log, log->partial, log->partial_len);
            log->partial_len = 0;
            if (buf[i] == '\n')
                continue;
        }
        log->partial[log->partial_len++] = buf[i];
    }
    return true;
}

static void on_readable(struct odkd *d, void *ptr, uint32_t events)
{
    (void)events;
    read_once(d, ptr);
}

int hostlog_attach(struct odkd *d, struct host_log *log, int fd)
{
    log->fd = fd;
    return loop_add(d, &log->watch, fd, EPOLLIN, on_readable, log);
}

void hostlog_drain(struct odkd *d, struct host_log *log)
{
    while (log->fd >= 0 && read_once(d, log))
        ;
}

void hostlog_each(const struct host_log *log, void (*fn)(const char *line, void *ctx), void *ctx)
{
    for (size_t i = 0; i < HOSTLOG_LINES; i++) {
        const char *l = log->lines[(log->next + i) % HOSTLOG_LINES];
        if (l)
            fn(l, ctx);
    }
}

void hostlog_note(struct host_log *log, const char *level, const char *text)
{
    if (log->file < 0)
        return;
    /* One writev, as write_line's. */
    struct iovec iov[4] = {{(void *)level, strlen(level)},
                           {(void *)" odkd: ", 7},
                           {(void *)text, strlen(text)},
                           {(void *)"\n", 1}};
    ssize_t n = writev(log->file, iov, 4);
    log->bytes += n > 0 ? (uint64_t)n : 0;
    if (log->bytes > LOG_FILE_MAX)
        rotate(log);
}

void hostlog_close(struct odkd *d, struct host_log *log)
{
    if (log->fd >= 0)
        close_pipe(d, log);
    for (size_t i = 0; i < HOSTLOG_LINES; i++)
        free(log->lines[i]);
    if (log->file >= 0)
        close(log->file);
    free(log->path);
    free(log->label);
    *log = (struct host_log){.fd = -1, .file = -1, .watch = {.fd = -1}};
}
