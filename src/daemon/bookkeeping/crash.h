/* SPDX-License-Identifier: MIT */
/* crash.h — crash reports (STATE/crashes/, odkctl crashes). */
#ifndef ODK_DAEMON_CRASH_H
#define ODK_DAEMON_CRASH_H

#include <sys/types.h>

struct odkd;
struct instance;

/* Logs and files a report for a host that died: reason, the backtrace it
 * printed (symbolised with addr2line), its last lines. */
void crash_report(struct odkd *d, struct instance *in, pid_t pid, const char *reason);

#endif
