/* SPDX-License-Identifier: MIT */
/* log_writer.h — odk_log in a driver host: lines never wait for the log
 * pipe; those it cannot take at once wait in a bounded backlog that a
 * thread writes out, and what overflows it is dropped and counted
 * (log_writer.c says why).  Other processes log as before. */
#ifndef ODK_COMMON_LOG_WRITER_H
#define ODK_COMMON_LOG_WRITER_H

#include <stdbool.h>
#include <stddef.h>

#include "odk/log.h"

/* Turns the writer on when fd 2 is a pipe (in a driver host, odkd's log
 * pipe); call once, early, from the main thread, before the sandbox.
 * Registers log_writer_flush with atexit. */
void log_writer_enable(void);
/* Takes one formatted line (ending in '\n', at most PIPE_BUF bytes) of
 * odk_log; false when the writer is off and the caller writes it itself.
 * Any thread; never waits for the pipe. */
bool log_writer_put(const char *line, size_t len, odk_log_level level);
/* Writes out the backlog, waiting at most 2 s for odkd to read it (exit,
 * and the host's own end). */
void log_writer_flush(void);
/* Writes out the backlog to fd 2, blocking, from a fatal signal's handler
 * before its backtrace; later lines are dropped.  Async-signal-safe as far
 * as a trylock is. */
void log_writer_flush_fatal(void);

#endif
