/* SPDX-License-Identifier: MIT */
/* host.h — starting odk-driver-host processes and their control channel.
 * Only the mechanics: what a host is for is instance.c's business. */
#ifndef ODK_DAEMON_HOST_H
#define ODK_DAEMON_HOST_H

#include <sys/types.h>

struct odkd;

struct host_proc {
    pid_t pid;
    int ctl_fd; /* odkd's end of the control channel (fd 3 in the host), non-blocking */
    int log_fd; /* read end of the host's stdout and stderr */
};

/* Forks and execs d->host_path with the control channel on fd 3 and
 * stdout/stderr on a pipe.  The child gets its own process group and dies
 * with odkd.  ODK_E_IO when a pipe, socketpair or fork fails. */
int host_spawn(struct odkd *d, struct host_proc *out);

#endif
