/* SPDX-License-Identifier: MIT */
/* host.h — starting odk-driver-host processes and their control channel.
 * Only the mechanics: what a host is for is instance.c's business. */
#ifndef ODK_DAEMON_HOST_H
#define ODK_DAEMON_HOST_H

#include <stdbool.h>
#include <sys/types.h>

struct odkd;

struct host_proc {
    pid_t pid;
    int ctl_fd; /* odkd's end of the control channel (fd 3 in the host), non-blocking */
    int log_fd; /* read end of the host's stdout and stderr */
};

/* A started host with the control channel on fd 3 and stdout/stderr on a
 * pipe: the spare when there is one (a new spare is then started from a
 * timer), else one forked and exec'd from d->host_path now.  The host has
 * its own process group and dies with odkd.  ODK_E_IO when a pipe,
 * socketpair or fork fails. */
int host_spawn(struct odkd *d, struct host_proc *out);

/* Keep a spare host from now on (odkd's start, unless --no-spare-host). */
void host_spare_start(struct odkd *d);
/* True when pid was the spare (then forgotten, and replaced): for the
 * SIGCHLD reaper, before it asks the instances. */
bool host_spare_reaped(struct odkd *d, pid_t pid, int wstatus);
/* Ends the spare and starts no other (odkd stopping). */
void host_spare_stop(struct odkd *d);

#endif
