/* SPDX-License-Identifier: MIT */
/* health.h — periodic checks of driver hosts (memory limits). */
#ifndef ODK_DAEMON_HEALTH_H
#define ODK_DAEMON_HEALTH_H

struct odkd;

/* Starts the periodic check: a host over its OdkMemoryLimitMB is killed
 * and restarted like a crash, with the reason in its report. */
void health_start(struct odkd *d);

#endif
