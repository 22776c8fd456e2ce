/* SPDX-License-Identifier: MIT */
/* The log writer of a driver host: odk_log must never hold a driver's
 * threads while odkd is slow to read the host's log pipe.
 *
 * Without it, a line was one write to stderr, a blocking pipe: when the
 * pipe was full (a driver flooding its log, odkd busy), the write waited,
 * and with it every other thread that logged a line (stdio's lock, then
 * the pipe itself); a call that logged once stalled past the call
 * deadline and the watchdog aborted a host that had done nothing wrong.
 *
 * Now a line goes to the pipe at once with a non-blocking write (its own
 * open file description of the pipe, so the driver's stdout and stderr
 * stay blocking) when nothing is waiting; otherwise, or when the pipe is
 * full, it waits in a backlog of LOG_BACKLOG_BYTES that a thread of its
 * own writes out as the pipe drains, in whole lines, in order.  A line
 * that finds the backlog full is dropped and counted, and once the
 * backlog has drained the thread logs "N log lines dropped".  Warnings
 * and errors may use the backlog's last quarter, which info and debug
 * lines may not, so a flood of info lines leaves room for the watchdog's
 * and the crash's lines.  The backlog and the thread exist only once a line
 * had to wait.  A fatal signal and exit
 * write out what is still waiting (log_writer_flush_fatal,
 * log_writer_flush). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log_writer.h"
#include "odk/log.h"

#define LOG_BACKLOG_BYTES (256 * 1024) /* lines waiting for the pipe; more are dropped */
#define LOG_FLUSH_MS 2000              /* at exit, how long the rest may wait for odkd */
#define LOG_NOTE_MS 1000               /* during a flood, drops are told once a second */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    _Atomic bool enabled; /* log_writer_enable found a pipe on fd 2 */
    bool started;         /* the backlog and the thread exist */
    bool crashing;        /* log_writer_flush_fatal took over */
    int fd;               /* a non-blocking description of that pipe, or -1 */
    char *buf;            /* the backlog: a ring of LOG_BACKLOG_BYTES */
    size_t head, tail;    /* bytes ever queued / written; pending = head - tail */
    uint64_t dropped;     /* lines dropped since the last note */
    uint64_t noted_ms;    /* when the last note was logged */
} w = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .fd = -1};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t pending(void)
{
    return w.head - w.tail;
}

/* Copies up to len pending bytes from the ring into out; returns how many. */
static size_t peek(char *out, size_t len)
{
    size_t n = pending() < len ? pending() : len;
    size_t at = w.tail % LOG_BACKLOG_BYTES, first = LOG_BACKLOG_BYTES - at;
    if (first > n)
        first = n;
    memcpy(out, w.buf + at, first);
    memcpy(out + first, w.buf, n - first);
    return n;
}

/* Writes whole pending lines to fd, at most PIPE_BUF bytes at a time (a
 * pipe writes those atomically: all or, non-blocking, nothing).  Returns
 * false when fd could take no more now.  Lock held (or crashing). */
static bool write_out(int fd)
{
    char chunk[PIPE_BUF];
    while (pending()) {
        size_t n = peek(chunk, sizeof chunk);
        if (n == sizeof chunk) { /* whole lines only: lines are shorter than PIPE_BUF */
            char *nl = memrchr(chunk, '\n', n);
            n = nl ? (size_t)(nl - chunk) + 1 : n;
        }
        ssize_t r = write(fd, chunk, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        w.tail += (size_t)r;
    }
    return true;
}

/* Logs how many lines were dropped since the last note.  Lock not held:
 * the note is a line like any other (a warning: the backlog's reserve
 * has room for it). */
static void note_drops(void)
{
    pthread_mutex_lock(&w.lock);
    unsigned long long n = w.dropped;
    w.dropped = 0;
    w.noted_ms = now_ms();
    pthread_mutex_unlock(&w.lock);
    if (n)
        odk_warn("%llu log lines dropped: odkd did not read the log as fast as it came (the "
                 "pipe and the host's %d KiB backlog were full)",
                 n, LOG_BACKLOG_BYTES / 1024);
}

static void *writer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&w.lock);
    for (;;) {
        while (!pending() && !w.dropped)
            pthread_cond_wait(&w.cond, &w.lock);
        if (w.crashing)
            break;
        bool drained = write_out(w.fd);
        if (!drained && errno != EAGAIN) {
            w.tail = w.head; /* the reader is gone: nobody will read them */
            drained = true;
        }
        /* Drops are told once the backlog drained, or once a second
         * while a flood keeps it full. */
        if (w.dropped && (drained || now_ms() - w.noted_ms >= LOG_NOTE_MS)) {
            pthread_mutex_unlock(&w.lock);
            note_drops();
            pthread_mutex_lock(&w.lock);
            continue;
        }
        if (!drained) {
            pthread_mutex_unlock(&w.lock);
            struct pollfd p = {.fd = w.fd, .events = POLLOUT};
            poll(&p, 1, LOG_NOTE_MS);
            pthread_mutex_lock(&w.lock);
        }
    }
    pthread_mutex_unlock(&w.lock);
    return NULL;
}

/* The backlog and the thread, the first time a line has to wait.  Lock
 * held.  False when either is missing (the line is then written the old
 * way, blocking). */
static bool start(void)
{
    if (w.started)
        return true;
    char *buf = malloc(LOG_BACKLOG_BYTES);
    pthread_t t;
    pthread_attr_t attr;
    bool ok = buf && pthread_attr_init(&attr) == 0;
    if (ok) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        ok = pthread_create(&t, &attr, writer_main, NULL) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!ok) {
        free(buf);
        return false;
    }
    w.buf = buf;
    w.started = true;
    return true;
}

void log_writer_enable(void)
{
    struct stat st;
    pthread_mutex_lock(&w.lock);
    /* Opened now, before the sandbox: /proc may be out of reach later.
     * Opening a pipe through /proc makes a description of its own, so
     * O_NONBLOCK here leaves fd 1 and 2 (the driver's printf) blocking. */
    if (w.fd < 0 && fstat(2, &st) == 0 && S_ISFIFO(st.st_mode))
        w.fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    w.enabled = w.fd >= 0;
    pthread_mutex_unlock(&w.lock);
    if (w.enabled)
        atexit(log_writer_flush);
}

bool log_writer_put(const char *line, size_t len, odk_log_level level)
{
    if (!w.enabled)
        return false;
    pthread_mutex_lock(&w.lock);
    if (!w.enabled || w.crashing) {
        pthread_mutex_unlock(&w.lock);
        return w.crashing; /* a crash is being written out: the line is lost */
    }
    /* Nothing waiting: straight to the pipe, unless it is full. */
    if (!pending() && !w.dropped) {
        ssize_t r = write(w.fd, line, len);
        if (r == (ssize_t)len) {
            pthread_mutex_unlock(&w.lock);
            return true;
        }
        if (r > 0) { /* cannot happen for len <= PIPE_BUF; keep the rest in order */
            line += r;
            len -= (size_t)r;
        }
    }
    if (!start()) {
        pthread_mutex_unlock(&w.lock);
        return false;
    }
    size_t room = LOG_BACKLOG_BYTES - (level <= ODK_LOG_WARN ? 0 : LOG_BACKLOG_BYTES / 4);
    if (pending() + len > room) {
        w.dropped++;
    } else {
        size_t at = w.head % LOG_BACKLOG_BYTES, first = LOG_BACKLOG_BYTES - at;
        if (first > len)
            first = len;
        memcpy(w.buf + at, line, first);
        memcpy(w.buf, line + first, len - first);
        w.head += len;
    }
    pthread_cond_signal(&w.cond);
    pthread_mutex_unlock(&w.lock);
    return true;
}

void log_writer_flush(void)
{
    if (!w.started)
        return;
    note_drops();
    pthread_mutex_lock(&w.lock);
    uint64_t t0 = now_ms(), ms = 0;
    while (pending() && !write_out(w.fd) && errno == EAGAIN && ms < LOG_FLUSH_MS) {
        pthread_mutex_unlock(&w.lock);
        struct pollfd p = {.fd = w.fd, .events = POLLOUT};
        poll(&p, 1, (int)(LOG_FLUSH_MS - ms));
        pthread_mutex_lock(&w.lock);
        ms = now_ms() - t0;
    }
    pthread_mutex_unlock(&w.lock);
}

void log_writer_flush_fatal(void)
{
    if (!w.started)
        return;
    /* The lock is held only for copies and non-blocking writes; a thread
     * that holds it for long is this one, crashed inside odk_log: then go
     * ahead without it (a line may come out torn, none is lost). */
    bool locked = false;
    for (int i = 0; i < 1000 && !(locked = pthread_mutex_trylock(&w.lock) == 0); i++)
        sched_yield();
    w.crashing = true;
    /* fd 2 blocks: the process is dying, and odkd reads until its end. */
    write_out(2);
    if (locked)
        pthread_mutex_unlock(&w.lock);
}
