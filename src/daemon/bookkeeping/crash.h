/* SPDX-License-Identifier: MIT */
/* crash.h — crash reports (STATE/crashes/, odkctl crashes). */
#ifndef ODK_DAEMON_CRASH_H
#define ODK_DAEMON_CRASH_H

#include <stdbool.h>
#include <sys/types.h>

struct odkd;
struct instance;

/* Logs a host that died (reason, its last lines) and files its report
 * (reason, the backtrace it printed, its last lines).  Frames without a
 * name are symbolised with addr2line without holding up odkd's loop: the
 * report appears in STATE/crashes once complete, and where the driver
 * crashed reaches the instance's reason then (instance_crash_where). */
void crash_report(struct odkd *d, struct instance *in, pid_t pid, const char *reason);
/* True while some logged crash's report is not written yet. */
bool crash_pending(void);
/* Calls fn(d, ctx) once every report of a crash logged so far is written
 * (or at odkd's end); ODK_E_NOMEM. */
int crash_when_written(struct odkd *d, void (*fn)(struct odkd *d, void *ctx), void *ctx);
/* odkd stops: writes every pending report with the names found so far. */
void crash_finish_all(struct odkd *d);

#endif
