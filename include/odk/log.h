/* SPDX-License-Identifier: MIT */
/* odk/log.h — logging for odkd, driver hosts and drivers.
 *
 * Lines go to stderr as "LEVEL tag: message".  In a driver host, stderr is
 * a pipe read by odkd, which keeps each driver's log (odkctl log BUNDLE-ID)
 * and its last lines for crash reports.  The tag names the process's role,
 * e.g. "odkd" or "org.odk.echo#3" (bundle and instance).
 */
#ifndef ODK_LOG_H
#define ODK_LOG_H

#include "odk/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum odk_log_level {
    ODK_LOG_ERROR = 0,
    ODK_LOG_WARN = 1,
    ODK_LOG_INFO = 2,
    ODK_LOG_DEBUG = 3,
} odk_log_level;

/* Sets the process-wide tag (copied; cut at 127 bytes; NULL gives "odk").
 * Drivers leave it alone: odk-driver-host sets "BUNDLE#INSTANCE".  Any
 * thread; never fails, never blocks. */
ODK_PUBLIC void odk_log_set_tag(const char *tag);
/* Sets / returns the most verbose level printed (default ODK_LOG_INFO).
 * Any thread; never fails. */
ODK_PUBLIC void odk_log_set_level(odk_log_level level);
ODK_PUBLIC odk_log_level odk_log_get_level(void);

/* Prints one line "LEVEL tag: message" with one write, so lines of several
 * threads never interleave; a message is cut at about 2 KiB.  Lines above
 * the current level cost a comparison.  Any thread.  In a driver host it
 * never blocks: while odkd's log pipe is full, lines wait in a 256 KiB
 * backlog and past that are dropped and counted ("N log lines dropped").
 * Elsewhere the write to stderr may block.  Never fails. */
ODK_PUBLIC void odk_log(odk_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define odk_error(...) odk_log(ODK_LOG_ERROR, __VA_ARGS__)
#define odk_warn(...) odk_log(ODK_LOG_WARN, __VA_ARGS__)
#define odk_info(...) odk_log(ODK_LOG_INFO, __VA_ARGS__)
#define odk_debug(...) odk_log(ODK_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
