/* SPDX-License-Identifier: MIT */
/* Starting odk-driver-host: fork and exec with the control channel on
 * fd 3 and stdout/stderr on a pipe that odkd reads (hostlog.c). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common/wire.h"
#include "daemon/bookkeeping/host.h"
#include "daemon/odkd.h"
#include "odk/status.h"

int host_spawn(struct odkd *d, struct host_proc *out)
{
    int sv[2], lp[2];
    if (wire_socketpair(sv) < 0)
        return ODK_E_IO;
    if (pipe2(lp, O_CLOEXEC) < 0)
        goto fail_pipe;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Child: its own process group, dies with odkd. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(sv[1], 3);
        dup2(lp[1], 1);
        dup2(lp[1], 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char *argv[] = {d->host_path, NULL};
        execv(d->host_path, argv);
        dprintf(2, "error odkd: cannot execute %s: %m\n", d->host_path);
        _exit(127);
    }
    close(sv[1]);
    close(lp[1]);
    if (pid < 0) {
        close(sv[0]);
        close(lp[0]);
        return ODK_E_IO;
    }
    /* Never block odkd on one host: a reply it cannot take now is that
     * host's protocol failure, not a reason for everyone to wait. */
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    *out = (struct host_proc){.pid = pid, .ctl_fd = sv[0], .log_fd = lp[0]};
    return ODK_OK;

fail_pipe:
    close(sv[0]);
    close(sv[1]);
    return ODK_E_IO;
}
