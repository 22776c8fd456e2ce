/* SPDX-License-Identifier: MIT */
/* Periodic health checks of driver hosts: memory limits
 * (OdkMemoryLimitMB).  A host past its limit is killed and restarted like
 * a crash, with the reason in the report.  While some host has a limit,
 * the check runs every HEALTH_LIMITED_MS, so a driver leaking fast gets
 * little past its limit before it is stopped; otherwise every
 * HEALTH_PERIOD_MS. */
#include <stdio.h>

#include "daemon/bookkeeping/health.h"
#include "daemon/bookkeeping/instance.h"
#include "daemon/odkd.h"
#include "odk/log.h"

#define HEALTH_PERIOD_MS 500
#define HEALTH_LIMITED_MS 100

static void check(struct odkd *d, void *ptr)
{
    (void)ptr;
    bool limited = false;
    for (struct instance *in = d->instances; in; in = in->next) {
        if (!in->memory_limit_kib || in->pid <= 0 || in->kill_reason)
            continue;
        limited = true;
        uint64_t rss = instance_rss_kib(in);
        if (rss > in->memory_limit_kib) {
            /* Rounded up: 65535 KiB past a 64 MiB limit is "64 MiB > 64 MiB"
             * rounded down, which reads as no excess at all. */
            instance_event(
                in, ODK_LOG_ERROR,
                "%s#%u (pid %d) exceeded its memory limit (%llu MiB > %llu MiB); killing it",
                in->bundle->id, in->id, (int)in->pid, (unsigned long long)((rss + 1023) / 1024),
                (unsigned long long)(in->memory_limit_kib / 1024));
            instance_kill(d, in, "exceeded its memory limit");
        }
    }
    loop_timer(d, limited ? HEALTH_LIMITED_MS : HEALTH_PERIOD_MS, check, NULL);
}

void health_start(struct odkd *d)
{
    loop_timer(d, HEALTH_PERIOD_MS, check, NULL);
}
