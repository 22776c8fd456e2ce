/* SPDX-License-Identifier: MIT */
/* hostlog.h — a driver host's stdout and stderr: read line by line from a
 * pipe, rate limited, forwarded to odkd's stderr and to STATE/logs/ID.log
 * (rotated), with the last lines kept for crash reports. */
#ifndef ODK_DAEMON_HOSTLOG_H
#define ODK_DAEMON_HOSTLOG_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/core/loop.h"

struct odkd;

#define HOSTLOG_LINES 64 /* last lines kept for crash reports (backtraces included) */

struct host_log {
    int fd; /* the pipe's read end, -1 when closed */
    struct watch watch;
    char *label; /* "org.odk.echo#3", for the dropped-lines note */
    int file;    /* STATE/logs/ID.log, -1 if it could not be opened */
    char *path;
    uint64_t bytes; /* its size, for rotation */
    uint64_t window_ms;
    uint32_t lines_in_window, urgent_in_window, dropped; /* urgent: warnings, errors */
    char partial[512];
    size_t partial_len;
    char *lines[HOSTLOG_LINES];
    size_t next;
};

/* Opens (appends to) STATE/logs/BUNDLE.log.  ODK_E_NOMEM; a log file that
 * cannot be opened is not an error (lines still reach odkd's stderr). */
int hostlog_open(struct odkd *d, struct host_log *log, const char *bundle_id, const char *label);
/* Starts reading fd (owned from now on). */
int hostlog_attach(struct odkd *d, struct host_log *log, int fd);
/* Reads whatever the pipe still holds, to its end (the host is dead). */
void hostlog_drain(struct odkd *d, struct host_log *log);
/* Calls fn on each kept line, oldest first. */
void hostlog_each(const struct host_log *log, void (*fn)(const char *line, void *ctx), void *ctx);
void hostlog_close(struct odkd *d, struct host_log *log);
/* Appends a line of odkd's own ("error odkd: …") to the bundle's log file
 * only: what happened to the driver, where its author reads (odkctl log). */
void hostlog_note(struct host_log *log, const char *level, const char *text);

#endif
