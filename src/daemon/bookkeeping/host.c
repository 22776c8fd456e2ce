/* SPDX-License-Identifier: MIT */
/* Starting odk-driver-host: fork and exec with the control channel on
 * fd 3 and stdout/stderr on a pipe that odkd reads (hostlog.c).
 *
 * One host is kept started in advance (the spare): a host knows nothing
 * of its driver until odkd's first request, so any started host serves
 * any instance, and handing out the spare takes the fork, the exec and
 * the dynamic linking off the path from plug to driver started.  A new
 * spare is started right after (from a timer, once the current event is
 * handled).  --no-spare-host turns it off. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/wire.h"
#include "daemon/bookkeeping/host.h"
#include "daemon/core/loop.h"
#include "daemon/odkd.h"
#include "odk/log.h"
#include "odk/status.h"

/* A spare that dies this many times in a row before use is not replaced
 * any more (a host binary that cannot start must not make odkd fork in a
 * loop); hosts are then started on demand, as without a spare. */
#define SPARE_MAX_DEATHS 3

pid_t host_spawn_process(const char *path, char *const argv[], int fd3, int fd4, int out)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* Child: its own process group, dies with odkd. */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    if (fd3 >= 0)
        dup2(fd3, 3);
    if (fd4 >= 0)
        dup2(fd4, 4);
    if (out >= 0) {
        dup2(out, 1);
        dup2(out, 2);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(path, argv);
    dprintf(2, "error odkd: cannot execute %s: %m\n", path);
    _exit(127);
}

pid_t host_spawn_with_channel(const char *path, char *const argv[], int fd4, int *fd, char *err,
                              size_t err_len)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(err, err_len, "cannot start %s: socketpair: %s", path, strerror(errno));
        return -1;
    }
    pid_t pid = host_spawn_process(path, argv, sv[1], fd4, -1);
    int saved = errno;
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        snprintf(err, err_len, "cannot start %s: fork: %s", path, strerror(saved));
        return -1;
    }
    *fd = sv[0];
    return pid;
}

char *host_sibling_path(struct odkd *d, const char *env, const char *exe)
{
    const char *e = env ? getenv(env) : NULL;
    if (e)
        return strdup(e);
    const char *slash = strrchr(d->host_path, '/');
    char *p = NULL;
    if (asprintf(&p, "%.*s%s", slash ? (int)(slash - d->host_path + 1) : 0, d->host_path, exe) < 0)
        return NULL;
    return p;
}

static int fork_host(struct odkd *d, struct host_proc *out)
{
    int sv[2], lp[2];
    if (wire_socketpair(sv) < 0)
        return ODK_E_IO;
    if (pipe2(lp, O_CLOEXEC) < 0) {
        close(sv[0]);
        close(sv[1]);
        return ODK_E_IO;
    }
    char *argv[] = {d->host_path, NULL};
    pid_t pid = host_spawn_process(d->host_path, argv, sv[1], -1, lp[1]);
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
}

static void close_proc(struct host_proc *hp)
{
    if (hp->ctl_fd >= 0)
        close(hp->ctl_fd);
    if (hp->log_fd >= 0)
        close(hp->log_fd);
    *hp = (struct host_proc){.pid = 0, .ctl_fd = -1, .log_fd = -1};
}

static void refill(struct odkd *d, void *ptr)
{
    (void)ptr;
    d->spare_timer = 0;
    if (d->spare.pid > 0 || !d->spare_wanted || d->stopping || d->quit ||
        d->spare_deaths >= SPARE_MAX_DEATHS)
        return;
    if (fork_host(d, &d->spare) < 0) {
        d->spare = (struct host_proc){.pid = 0, .ctl_fd = -1, .log_fd = -1};
        odk_warn("cannot start a spare driver host; hosts start on demand");
    }
}

static void schedule_refill(struct odkd *d)
{
    if (d->spare_wanted && !d->spare_timer && d->spare.pid <= 0)
        d->spare_timer = loop_timer(d, 0, refill, NULL);
}

void host_spare_start(struct odkd *d)
{
    d->spare_wanted = true;
    schedule_refill(d);
}

int host_spawn(struct odkd *d, struct host_proc *out)
{
    if (d->spare.pid > 0) {
        int ws;
        pid_t r = waitpid(d->spare.pid, &ws, WNOHANG);
        if (r == 0) {
            *out = d->spare;
            d->spare = (struct host_proc){.pid = 0, .ctl_fd = -1, .log_fd = -1};
            d->spare_deaths = 0;
            schedule_refill(d);
            return ODK_OK;
        }
        /* It died waiting (reaped just now): start one the usual way. */
        odk_warn("the spare driver host (pid %d) had died", (int)d->spare.pid);
        close_proc(&d->spare);
        d->spare_deaths++;
    }
    int st = fork_host(d, out);
    schedule_refill(d);
    return st;
}

bool host_spare_reaped(struct odkd *d, pid_t pid, int wstatus)
{
    if (pid <= 0 || pid != d->spare.pid)
        return false;
    if (!d->stopping && !d->quit)
        odk_warn("the spare driver host (pid %d) %s %d before use", (int)pid,
                 WIFSIGNALED(wstatus) ? "was killed by signal" : "exited with status",
                 WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : WEXITSTATUS(wstatus));
    close_proc(&d->spare);
    d->spare_deaths++;
    schedule_refill(d);
    return true;
}

void host_spare_stop(struct odkd *d)
{
    d->spare_wanted = false;
    loop_timer_cancel(d, d->spare_timer);
    d->spare_timer = 0;
    if (d->spare.pid > 0) {
        pid_t pid = d->spare.pid;
        /* Closing its channel ends it (it reads EOF and exits). */
        close_proc(&d->spare);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}
