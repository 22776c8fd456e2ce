/* SPDX-License-Identifier: MIT */
/* Starting odk-driver-host: fork and exec with the control channel on
 * fd 3 and stdout/stderr on a pipe that odkd reads (hostlog.c).
 *
 * HOST_SPARES hosts are kept started in advance (the spares): a host
 * knows nothing of its driver until odkd's first request, so any started
 * host serves any instance, and handing out a spare takes the fork, the
 * exec and the dynamic linking off the path from plug to driver started.
 * The spares are forked by the zygote (below).  One handed out while
 * another is left is replaced once the start it went to has answered
 * (host_spare_settled), so that the fork does not compete with the start
 * for the CPUs; the last one is replaced at once.  --no-spare-host turns
 * it off. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/trace.h"
#include "common/wire.h"
#include "daemon/bookkeeping/host.h"
#include "daemon/bookkeeping/hostlog.h"
#include "daemon/core/bundle.h"
#include "daemon/core/loop.h"
#include "daemon/core/msg.h"
#include "daemon/odkd.h"
#include "odk/log.h"
#include "odk/status.h"

/* A spare that dies this many times in a row before use is not replaced
 * any more (a host binary that cannot start must not make odkd fork in a
 * loop); hosts are then started on demand, as without a spare. */
#define SPARE_MAX_DEATHS 3
/* A replacement held back for a start runs after this long at the latest
 * (a start may take seconds). */
#define SPARE_REFILL_LATE_MS 50

/* fds[i] becomes the child's fd 3 + i (each only when >= 0). */
static pid_t spawn_fds(const char *path, char *const argv[], const int *fds, size_t n, int out)
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
    /* Out of the way first (an fd may sit where another goes), then
     * down; dup2 clears close-on-exec on the copy, the high ones close at
     * the exec. */
    int high[8];
    for (size_t i = 0; i < n && i < 8; i++)
        high[i] = fds[i] >= 0 ? fcntl(fds[i], F_DUPFD_CLOEXEC, 64) : -1;
    for (size_t i = 0; i < n && i < 8; i++)
        if (high[i] >= 0)
            dup2(high[i], 3 + (int)i);
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

pid_t host_spawn_process(const char *path, char *const argv[], int fd3, int fd4, int out)
{
    int fds[2] = {fd3, fd4};
    return spawn_fds(path, argv, fds, 2, out);
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

/* Appends, from argv[n], the options that hand a host (or the zygote)
 * odkd's sandbox: its empty network namespace as fd 4 and the seccomp
 * programs as fd 5 (host_sandbox_announce; src/host/main.c reads them).
 * argv has room for 6 more and the NULL. */
static void add_sandbox_args(const struct odkd *d, char **argv, int n)
{
    if (!d->no_sandbox)
        argv[n++] = "--sandboxed";
    if (d->empty_netns >= 0) {
        argv[n++] = "--empty-netns";
        argv[n++] = "4";
    }
    if (d->seccomp_programs >= 0) {
        argv[n++] = "--seccomp-programs";
        argv[n++] = "5";
    }
    argv[n] = NULL;
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
    char *argv[8] = {d->host_path};
    add_sandbox_args(d, argv, 1);
    int fds[3] = {sv[1], d->empty_netns, d->seccomp_programs};
    pid_t pid = spawn_fds(d->host_path, argv, fds, 3, lp[1]);
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

/* ---- the zygote (src/host/zygote.h) ---------------------------------------
 *
 * A host started with --zygote forks the spares: odkd sends it a new
 * host's channel and log pipe, it forks (as odkd's child) and answers with
 * the pid.  odkd's loop then spends no fork on a host, and a host costs no
 * exec and no dynamic linking.  A zygote that dies is started again; after
 * ZYGOTE_MAX_DEATHS, or when it says it cannot fork for odkd (a kernel
 * without PR_GET_TID_ADDRESS or clone3), spares are exec'd as before. */
#define ZYGOTE_MAX_DEATHS 3
#define ZYGOTE_WAIT_MS 1000 /* host_spawn's wait for a spare being forked */

struct host_zygote {
    pid_t pid;
    int fd; /* odkd's end of its channel, non-blocking */
    struct watch watch;
    unsigned deaths;
    bool off; /* not used any more (it failed, or died too often) */
    uint32_t next_seq;
    /* The spawn asked and not answered: its seq and odkd's ends. */
    uint32_t pending_seq;
    struct host_proc pending;
    /* Spares are asked for at SCHED_IDLE (zygote.h) and raised back to
     * odkd's policy and param when handed out: only when odkd has
     * CAP_SYS_NICE, which raising a SCHED_IDLE process takes. */
    bool idle_spares;
    int policy;
    struct sched_param param;
};

static void schedule_refill(struct odkd *d, bool now);
static struct host_proc *spare_slot(struct odkd *d, bool ready);
static void prime_wanted(struct odkd *d);
static void prime_soon(struct odkd *d);
static bool prime_reaped(struct odkd *d, pid_t pid, int wstatus);
static void prime_stop(struct odkd *d);
static struct host_primes *primes_new(void);

static void zygote_forget_pending(struct host_zygote *z)
{
    z->pending_seq = 0;
    close_proc(&z->pending);
}

/* The zygote ends (closing its channel ends it); spares come by exec. */
static void zygote_close(struct odkd *d, struct host_zygote *z)
{
    loop_del(d, &z->watch);
    if (z->fd >= 0)
        close(z->fd);
    z->fd = -1;
    zygote_forget_pending(z);
}

static void zygote_give_up(struct odkd *d, struct host_zygote *z, const char *why)
{
    odk_warn("the driver host zygote (pid %d) %s; spare hosts are started by exec", (int)z->pid,
             why);
    z->off = true;
    zygote_close(d, z);
}

/* Its answer to the pending spawn: the spare, or why there is none. */
static void zygote_reply(struct odkd *d, struct host_zygote *z, wire_msg *m)
{
    if (!z->pending_seq || m->hdr.seq != z->pending_seq)
        return;
    odk_value *body = NULL;
    if (wire_msg_value(m, &body) < 0)
        body = NULL;
    pid_t pid = (pid_t)odk_dict_get_int(body, "pid", 0);
    if (m->hdr.status == ODK_OK && pid > 0) {
        trace_mark("odkd spare %d forked by the zygote", (int)pid);
        z->pending.pid = pid;
        struct host_proc *slot = spare_slot(d, false);
        if (slot)
            *slot = z->pending;
        else
            close_proc(&z->pending); /* cannot happen: asked for only when a slot is free */
        z->pending = (struct host_proc){.pid = 0, .ctl_fd = -1, .log_fd = -1};
        z->pending_seq = 0;
        /* A bundle waiting for a spare to prime: after this event (a
         * host_spawn waiting for this spare, zygote_wait, takes it first). */
        prime_soon(d);
        schedule_refill(d, true);
    } else {
        char why[300];
        snprintf(why, sizeof why, "cannot fork a host: %s (%s)",
                 odk_dict_get_string(body, "error", "no reason given"),
                 odk_strerror(m->hdr.status));
        zygote_give_up(d, z, why);
        schedule_refill(d, true);
    }
    odk_value_free(body);
}

static void on_zygote(struct odkd *d, void *ptr, uint32_t events)
{
    (void)events;
    struct host_zygote *z = ptr;
    for (;;) {
        wire_msg m;
        wire_msg_init(&m);
        int st = wire_recv(z->fd, &m);
        if (st == ODK_OK && m.hdr.type == WIRE_REPLY)
            zygote_reply(d, z, &m);
        wire_msg_release(&m);
        if (st == ODK_E_AGAIN || z->fd < 0)
            return;
        if (st < 0 && st != ODK_E_PROTOCOL) {
            /* It closed its end: it is exiting, and the reap says more. */
            zygote_close(d, z);
            return;
        }
    }
}

/* CAP_SYS_NICE in odkd's effective set. */
static bool can_raise_priority(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {{0}};
    if (syscall(SYS_capget, &hdr, data) < 0)
        return false;
    return data[CAP_TO_INDEX(CAP_SYS_NICE)].effective & CAP_TO_MASK(CAP_SYS_NICE);
}

static void zygote_start(struct odkd *d, struct host_zygote *z)
{
    int sv[2];
    if (wire_socketpair(sv) < 0) {
        zygote_give_up(d, z, "has no channel (socketpair failed)");
        return;
    }
    char *argv[8] = {d->host_path, "--zygote"};
    add_sandbox_args(d, argv, 2);
    int fds[3] = {sv[1], d->empty_netns, d->seccomp_programs};
    pid_t pid = spawn_fds(d->host_path, argv, fds, 3, -1);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        zygote_give_up(d, z, "could not be started (fork failed)");
        return;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    z->pid = pid;
    z->fd = sv[0];
    odk_info("the driver host zygote (pid %d) forks the spare hosts", (int)pid);
    if (loop_add(d, &z->watch, z->fd, EPOLLIN, on_zygote, z) < 0) {
        zygote_give_up(d, z, "cannot be watched");
        return;
    }
}

/* Asks the zygote for a spare; the answer comes to on_zygote.  False
 * when it cannot be asked. */
static bool zygote_ask(struct odkd *d, struct host_zygote *z)
{
    if (z->off || z->fd < 0 || z->pending_seq)
        return !z->off && z->fd >= 0;
    int sv[2], lp[2];
    if (wire_socketpair(sv) < 0)
        return false;
    if (pipe2(lp, O_CLOEXEC) < 0) {
        close(sv[0]);
        close(sv[1]);
        return false;
    }
    odk_value *args = odk_value_new_dict();
    if (args)
        odk_dict_set_string(args, "op", "spawn");
    if (args && z->idle_spares)
        odk_dict_set_bool(args, "idle", true);
    uint32_t seq = ++z->next_seq ? z->next_seq : ++z->next_seq;
    int fds[2] = {sv[1], lp[1]};
    int st = args ? wire_send_value(z->fd, WIRE_REQUEST, seq, 0, args, fds, 2) : ODK_E_NOMEM;
    odk_value_free(args);
    close(sv[1]);
    close(lp[1]);
    if (st < 0) {
        close(sv[0]);
        close(lp[0]);
        return false;
    }
    trace_mark("odkd spare asked of the zygote");
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    z->pending_seq = seq;
    z->pending =
        (struct host_proc){.pid = 0, .ctl_fd = sv[0], .log_fd = lp[0], .idle = z->idle_spares};
    return true;
}

/* The spare being forked, now: waits (up to ZYGOTE_WAIT_MS) for the
 * zygote's answer.  True when a spare is ready after. */
static bool zygote_wait(struct odkd *d, struct host_zygote *z)
{
    uint64_t end = loop_now_ms() + ZYGOTE_WAIT_MS;
    while (z->pending_seq && z->fd >= 0) {
        uint64_t now = loop_now_ms();
        if (now >= end)
            break;
        struct pollfd p = {.fd = z->fd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - now)) < 0 && errno != EINTR)
            break;
        on_zygote(d, z, 0);
    }
    return spare_slot(d, true) != NULL;
}

/* ---- the spares ------------------------------------------------------------ */

/* The oldest ready spare (ready), or a free slot (!ready); NULL if none.
 * The ready ones come first, oldest first (spare_remove keeps them so):
 * the oldest has surely finished its own preparation. */
static struct host_proc *spare_slot(struct odkd *d, bool ready)
{
    for (size_t i = 0; i < HOST_SPARES; i++)
        if ((d->spare[i].pid > 0) == ready)
            return &d->spare[i];
    return NULL;
}

/* Takes hp out of the list, the younger ones moving up (hp's channel and
 * log stay open: the caller has them). */
static void spare_remove(struct odkd *d, struct host_proc *hp)
{
    size_t i = (size_t)(hp - d->spare);
    memmove(&d->spare[i], &d->spare[i + 1], (HOST_SPARES - 1 - i) * sizeof *hp);
    d->spare[HOST_SPARES - 1] = (struct host_proc){.pid = 0, .ctl_fd = -1, .log_fd = -1};
}

static void refill(struct odkd *d, void *ptr)
{
    (void)ptr;
    d->spare_timer = 0;
    d->spare_timer_late = false;
    struct host_proc *slot = spare_slot(d, false);
    if (!slot || !d->spare_wanted || d->stopping || d->quit || d->spare_deaths >= SPARE_MAX_DEATHS)
        return;
    struct host_zygote *z = d->zygote;
    if (z && !z->off && z->fd >= 0 && zygote_ask(d, z))
        return; /* on_zygote fills the slot, and asks again while one is free */
    trace_mark("odkd spare fork");
    int st = fork_host(d, slot);
    trace_mark("odkd spare forked %d", (int)slot->pid);
    if (st < 0) {
        *slot = (struct host_proc){.pid = 0, .ctl_fd = -1, .log_fd = -1};
        odk_warn("cannot start a spare driver host; hosts start on demand");
        return;
    }
    schedule_refill(d, true);
}

/* A refill from a timer, once the current event is handled: now, or
 * held back (until host_spare_settled, SPARE_REFILL_LATE_MS at most). */
static void schedule_refill(struct odkd *d, bool now)
{
    if (!d->spare_wanted || !spare_slot(d, false))
        return;
    if (d->spare_timer && d->spare_timer_late && now) {
        loop_timer_cancel(d, d->spare_timer);
        d->spare_timer = 0;
    }
    if (!d->spare_timer) {
        d->spare_timer = loop_timer(d, now ? 0 : SPARE_REFILL_LATE_MS, refill, NULL);
        d->spare_timer_late = !now;
    }
}

void host_spare_settled(struct odkd *d)
{
    prime_soon(d);
    if (d->spare_timer && d->spare_timer_late)
        schedule_refill(d, true);
}

static bool env_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

void host_spare_start(struct odkd *d)
{
    d->spare_wanted = true;
    /* Spares primed for a bundle: not under --debug (its hosts stop
     * before any driver code), nor without the zygote, nor when
     * ODK_NO_PRIME says so. */
    if (!d->no_zygote && !d->n_debug_bundles && !d->primes && !env_set("ODK_NO_PRIME"))
        d->primes = primes_new();
    if (!d->no_zygote && !d->zygote) {
        d->zygote = calloc(1, sizeof *d->zygote);
        if (d->zygote) {
            *d->zygote = (struct host_zygote){
                .fd = -1, .watch = {.fd = -1}, .pending = {.pid = 0, .ctl_fd = -1, .log_fd = -1}};
            struct host_zygote *z = d->zygote;
            z->policy = sched_getscheduler(0);
            z->idle_spares = z->policy >= 0 && sched_getparam(0, &z->param) == 0 &&
                             can_raise_priority() && !getenv("ODK_SPARE_NOT_IDLE");
            zygote_start(d, d->zygote);
        }
    }
    /* The first spares before odkd answers anyone, so that its first
     * answer finds it as it stays (a test takes its baseline there). */
    for (struct host_proc *slot; (slot = spare_slot(d, false));) {
        struct host_zygote *z = d->zygote;
        if (z && !z->off && z->fd >= 0 && zygote_ask(d, z) && zygote_wait(d, z) &&
            !z->pending_seq)
            continue;
        if ((z && z->pending_seq) || d->spare_deaths >= SPARE_MAX_DEATHS ||
            fork_host(d, slot) < 0) {
            if (slot->pid <= 0)
                *slot = (struct host_proc){.pid = 0, .ctl_fd = -1, .log_fd = -1};
            break; /* the loop goes on from here */
        }
    }
    schedule_refill(d, true);
}

/* A ready spare that still lives: not reaped (its pid is odkd's child
 * and not a zombie yet) and its channel not hung up. */
static bool spare_alive(const struct host_proc *hp)
{
    int ws;
    if (waitpid(hp->pid, &ws, WNOHANG) != 0)
        return false;
    struct pollfd p = {.fd = hp->ctl_fd, .events = POLLIN};
    return poll(&p, 1, 0) == 0 || !(p.revents & (POLLHUP | POLLERR));
}

/* A spare forked idle gets odkd's scheduling back before its start is
 * sent (its main thread: the only one until it is prepared, and the one
 * that starts the driver's), so that the start does not wait for idle CPU
 * time; a spare still preparing goes on at this priority. */
static void raise_spare(struct odkd *d, struct host_proc *hp)
{
    struct host_zygote *z = d->zygote;
    if (!hp->idle || !z)
        return;
    hp->idle = false;
    if (sched_setscheduler(hp->pid, z->policy, &z->param) < 0) {
        odk_warn("cannot raise the spare driver host (pid %d) from SCHED_IDLE: %s; spares are "
                 "forked at odkd's priority from now on",
                 (int)hp->pid, strerror(errno));
        z->idle_spares = false;
    }
    trace_mark("odkd spare %d raised", (int)hp->pid);
}

void host_lower_exiting(pid_t pid)
{
    struct sched_param low = {0};
    int policy = sched_getscheduler(0);
    if ((policy != SCHED_FIFO && policy != SCHED_RR) || sched_getparam(0, &low) < 0 ||
        !can_raise_priority())
        return;
    low.sched_priority--;
    if (low.sched_priority < sched_get_priority_min(policy)) {
        policy = SCHED_OTHER;
        low.sched_priority = 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    if (!dir)
        return;
    for (struct dirent *e; (e = readdir(dir));)
        if (e->d_name[0] != '.')
            sched_setscheduler((pid_t)atoi(e->d_name), policy, &low);
    closedir(dir);
    trace_mark("odkd lowered exiting %d", (int)pid);
}

int host_spawn(struct odkd *d, struct host_proc *out)
{
    /* None ready: one the zygote forks now is sooner than an exec (about
     * 6 ms here; a prime takes a spare too, so the pool runs dry when
     * plugs come faster than primes answer). */
    struct host_zygote *z = d->zygote;
    if (!spare_slot(d, true) && z && !z->off && z->fd >= 0 &&
        (z->pending_seq || (d->spare_wanted && zygote_ask(d, z))))
        zygote_wait(d, z);
    for (struct host_proc *hp; (hp = spare_slot(d, true));) {
        if (spare_alive(hp)) {
            *out = *hp;
            raise_spare(d, out);
            spare_remove(d, hp);
            d->spare_deaths = 0;
            /* Another one left: replace this one after the start. */
            schedule_refill(d, !spare_slot(d, true));
            return ODK_OK;
        }
        /* It died waiting (reaped just now): try the next. */
        odk_warn("the spare driver host (pid %d) had died", (int)hp->pid);
        close_proc(hp);
        spare_remove(d, hp);
        d->spare_deaths++;
    }
    int st = fork_host(d, out);
    schedule_refill(d, true);
    return st;
}

bool host_spare_reaped(struct odkd *d, pid_t pid, int wstatus)
{
    struct host_zygote *z = d->zygote;
    if (pid > 0 && z && pid == z->pid) {
        z->pid = 0;
        zygote_close(d, z);
        if (d->stopping || d->quit || z->off)
            return true;
        char why[128];
        snprintf(why, sizeof why, "%s %d",
                 WIFSIGNALED(wstatus) ? "was killed by signal" : "exited with status",
                 WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : WEXITSTATUS(wstatus));
        if (++z->deaths >= ZYGOTE_MAX_DEATHS) {
            zygote_give_up(d, z, why);
        } else {
            odk_warn("the driver host zygote (pid %d) %s; starting another", (int)pid, why);
            zygote_start(d, z);
        }
        schedule_refill(d, true);
        return true;
    }
    if (prime_reaped(d, pid, wstatus))
        return true;
    struct host_proc *hp = NULL;
    for (size_t i = 0; pid > 0 && i < HOST_SPARES && !hp; i++)
        if (d->spare[i].pid == pid)
            hp = &d->spare[i];
    if (!hp)
        return false;
    if (!d->stopping && !d->quit)
        odk_warn("the spare driver host (pid %d) %s %d before use", (int)pid,
                 WIFSIGNALED(wstatus) ? "was killed by signal" : "exited with status",
                 WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : WEXITSTATUS(wstatus));
    close_proc(hp);
    spare_remove(d, hp);
    d->spare_deaths++;
    schedule_refill(d, true);
    return true;
}

pid_t host_zygote_pid(const struct odkd *d)
{
    return d->zygote && d->zygote->fd >= 0 ? d->zygote->pid : 0;
}

static void end_process(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

void host_spare_stop(struct odkd *d)
{
    d->spare_wanted = false;
    loop_timer_cancel(d, d->spare_timer);
    d->spare_timer = 0;
    prime_stop(d);
    struct host_zygote *z = d->zygote;
    if (z) {
        /* A spare it is forking gets EOF on its channel and exits, or dies
         * with odkd; the zygote ends on the channel's EOF. */
        zygote_close(d, z);
        if (z->pid > 0)
            end_process(z->pid);
        free(z);
        d->zygote = NULL;
    }
    for (size_t i = 0; i < HOST_SPARES; i++) {
        if (d->spare[i].pid <= 0)
            continue;
        pid_t pid = d->spare[i].pid;
        /* Closing its channel ends it (it reads EOF and exits). */
        close_proc(&d->spare[i]);
        end_process(pid);
    }
}

/* ---- primed hosts (host.h) ------------------------------------------------
 *
 * A slot is free (no bundle), wanted (a bundle, no host yet: the prime is
 * sent at the next start's answer, host_spare_settled, when a spare is
 * ready), priming (a host, its prime not answered) or ready.  The host's
 * log pipe is watched and read into the bundle's log only once it has
 * something to say (a constructor's lines, a crash's backtrace), so a
 * quiet prime opens no log file. */

struct host_prime {
    char *bundle_id; /* NULL: the slot is free */
    char *executable;
    odk_value *sandbox;
    /* The shared object primed: its file (dev, inode, size, times) and
     * the launch check's stamp of the bundle at the launch that asked. */
    struct stat so_stat;
    unsigned char stamp[32];
    int so_fd;           /* wanted: odkd's copy of the shared object's descriptor, else -1 */
    uint64_t asked_ms;   /* the launch that asked: the oldest slot gives way */
    struct host_proc hp; /* pid 0: wanted, no host yet */
    uint32_t seq;        /* the prime request, 0 once answered */
    bool ready;
    struct watch log_watch;
    struct host_log log; /* opened at the first line (log.fd >= 0 then) */
};

/* From a start's answer to its prime: the app that waited for the
 * driver opens it and makes its first calls then, and a prime (the
 * sandbox and the dlopen, about a millisecond of CPU) sent at once took
 * the CPU from them: plugs 20 ms apart answered their first call in
 * 4.1-4.2 ms with the prime at once, 2.0-2.25 ms with it 5 ms later and
 * 2.6-2.8 ms 10 ms later; back to back, cycles and first call were no
 * worse (docs/testing.md, session 10).  ODK_PRIME_DELAY_MS=N for A/B
 * runs. */
#define PRIME_DELAY_MS 5

struct host_primes {
    struct host_prime slot[HOST_PRIMES];
    char **refused; /* bundles whose prime failed this run */
    size_t n_refused;
    uint32_t next_seq;
    uint64_t timer;    /* prime_later, pending */
    uint64_t delay_ms; /* from a start's answer to its prime (PRIME_DELAY_MS) */
};

_Static_assert(sizeof((struct bundle *)0)->launch_stamp == sizeof((struct host_prime *)0)->stamp,
               "a primed host keeps the launch check's stamp");

static bool prime_refused(const struct host_primes *ps, const char *id)
{
    for (size_t i = 0; i < ps->n_refused; i++)
        if (strcmp(ps->refused[i], id) == 0)
            return true;
    return false;
}

static void prime_refuse(struct host_primes *ps, const char *id)
{
    char **r = realloc(ps->refused, (ps->n_refused + 1) * sizeof *r);
    if (!r)
        return;
    ps->refused = r;
    if ((r[ps->n_refused] = strdup(id)))
        ps->n_refused++;
}

static struct host_prime *prime_find(struct host_primes *ps, const char *id)
{
    for (size_t i = 0; i < HOST_PRIMES; i++)
        if (ps->slot[i].bundle_id && strcmp(ps->slot[i].bundle_id, id) == 0)
            return &ps->slot[i];
    return NULL;
}

static void prime_clear(struct host_prime *p)
{
    *p = (struct host_prime){.so_fd = -1,
                             .hp = {.pid = 0, .ctl_fd = -1, .log_fd = -1},
                             .log_watch = {.fd = -1},
                             .log = {.fd = -1, .file = -1, .watch = {.fd = -1}}};
}

static struct host_primes *primes_new(void)
{
    struct host_primes *ps = calloc(1, sizeof *ps);
    for (size_t i = 0; ps && i < HOST_PRIMES; i++)
        prime_clear(&ps->slot[i]);
    const char *delay = getenv("ODK_PRIME_DELAY_MS");
    if (ps)
        ps->delay_ms = delay ? strtoull(delay, NULL, 10) : PRIME_DELAY_MS;
    return ps;
}

/* Frees the slot: its host, if any, is killed (its reap finds no slot
 * and is quiet). */
static void prime_end(struct odkd *d, struct host_prime *p)
{
    loop_del(d, &p->log_watch);
    if (p->log.fd >= 0 || p->log.file >= 0 || p->log.label)
        hostlog_close(d, &p->log);
    if (p->hp.pid > 0)
        kill(p->hp.pid, SIGKILL);
    close_proc(&p->hp);
    if (p->so_fd >= 0)
        close(p->so_fd);
    free(p->bundle_id);
    free(p->executable);
    odk_value_free(p->sandbox);
    prime_clear(p);
}

static void prime_fail(struct odkd *d, struct host_prime *p, const char *why)
{
    odk_warn("%s: its prime failed: %s; its hosts start plainly for the rest of this run",
             p->bundle_id, why);
    prime_refuse(d->primes, p->bundle_id);
    prime_end(d, p);
}

/* The host's log pipe has something: from now on it is read as an
 * instance's is, into the bundle's log. */
static void on_prime_log(struct odkd *d, void *ptr, uint32_t events)
{
    (void)events;
    struct host_prime *p = ptr;
    loop_del(d, &p->log_watch);
    char label[300];
    snprintf(label, sizeof label, "%s (primed host %d)", p->bundle_id, (int)p->hp.pid);
    int fd = p->hp.log_fd;
    p->hp.log_fd = -1;
    if (hostlog_open(d, &p->log, p->bundle_id, label) < 0 || hostlog_attach(d, &p->log, fd) < 0) {
        close(fd);
        p->log.fd = -1;
    }
}

/* The prime's reply, if it came: read when a launch wants the host or
 * when the host is reaped, not watched (a wake-up of odkd less a plug).
 * False when the prime failed (the slot is then ended). */
static bool prime_poll(struct odkd *d, struct host_prime *p)
{
    while (p->seq && p->hp.ctl_fd >= 0) {
        wire_msg m;
        wire_msg_init(&m);
        int st = wire_recv(p->hp.ctl_fd, &m);
        if (st == ODK_OK && m.hdr.type == WIRE_REPLY && m.hdr.seq == p->seq) {
            p->seq = 0;
            if (m.hdr.status == ODK_OK) {
                p->ready = true;
                trace_mark("odkd primed %d", (int)p->hp.pid);
            } else {
                odk_value *body = NULL;
                if (wire_msg_value(&m, &body) < 0)
                    body = NULL;
                char why[600];
                snprintf(why, sizeof why, "host %d: %s (%s)", (int)p->hp.pid,
                         odk_dict_get_string(body, "error", "no reason given"),
                         odk_strerror(m.hdr.status));
                odk_value_free(body);
                wire_msg_release(&m);
                prime_fail(d, p, why);
                return false;
            }
        }
        wire_msg_release(&m);
        if (st < 0 && st != ODK_E_PROTOCOL)
            break; /* not yet (ODK_E_AGAIN), or it is exiting: its reap says why */
    }
    return true;
}

/* The prime's priority: at odkd's own under SCHED_OTHER (raised as a
 * spare handed out is: a prime at SCHED_IDLE, as a spare prepares, waited
 * tens of milliseconds for CPU time while plugs cycled, and was not ready
 * for the next plug half the time), one real-time priority below a
 * real-time odkd (chrt), so the plug being served keeps its CPU; raised at
 * the hand-out.  For A/B runs: ODK_PRIME_IDLE=1, at SCHED_IDLE;
 * ODK_PRIME_NICE=N, at odkd's policy with nice N (back to 0 at the
 * hand-out). */
static void prime_priority(struct odkd *d, struct host_proc *hp)
{
    struct host_zygote *z = d->zygote;
    if (!z || !z->idle_spares)
        return;
    bool rt = z->policy == SCHED_FIFO || z->policy == SCHED_RR;
    if (getenv("ODK_PRIME_IDLE")) {
        struct sched_param none = {0};
        if (sched_setscheduler(hp->pid, SCHED_IDLE, &none) == 0)
            hp->idle = true;
        return;
    }
    if (!rt) {
        raise_spare(d, hp);
        const char *nice = getenv("ODK_PRIME_NICE");
        if (nice)
            setpriority(PRIO_PROCESS, (id_t)hp->pid, atoi(nice));
        return;
    }
    struct sched_param low = {.sched_priority = z->param.sched_priority - 1};
    int policy = z->policy;
    if (low.sched_priority < sched_get_priority_min(z->policy)) {
        policy = SCHED_OTHER;
        low.sched_priority = 0;
    }
    if (sched_setscheduler(hp->pid, policy, &low) == 0)
        hp->idle = true;
}

/* A wanted slot gets a ready spare and its prime request. */
static void prime_send(struct odkd *d, struct host_prime *p)
{
    struct host_proc *hp;
    while ((hp = spare_slot(d, true)) && !spare_alive(hp)) {
        close_proc(hp); /* died waiting: its reap (or host_spawn) says so */
        spare_remove(d, hp);
    }
    if (!hp)
        return; /* at the next start's answer */
    p->hp = *hp;
    spare_remove(d, hp);
    schedule_refill(d, true);
    struct msg m = msg_begin();
    msg_str(&m, "op", "prime");
    msg_str(&m, "bundle", p->bundle_id);
    msg_str(&m, "executable", p->executable);
    msg_copy(&m, "sandbox", p->sandbox);
    odk_value *args = msg_done(&m);
    uint32_t seq = ++d->primes->next_seq ? d->primes->next_seq : ++d->primes->next_seq;
    prime_priority(d, &p->hp);
    trace_mark("odkd prime sent to %d", (int)p->hp.pid);
    int st = args ? wire_send_value(p->hp.ctl_fd, WIRE_REQUEST, seq, 0, args, &p->so_fd, 1)
                  : ODK_E_NOMEM;
    odk_value_free(args);
    close(p->so_fd);
    p->so_fd = -1;
    if (st < 0 || loop_add(d, &p->log_watch, p->hp.log_fd, EPOLLIN, on_prime_log, p) < 0) {
        odk_warn("%s: cannot send a prime to the spare host (pid %d): %s; ended", p->bundle_id,
                 (int)p->hp.pid, odk_strerror(st < 0 ? st : ODK_E_IO));
        prime_end(d, p);
        return;
    }
    p->seq = seq;
}

static void prime_wanted(struct odkd *d)
{
    if (!d->primes || !d->spare_wanted || d->stopping || d->quit)
        return;
    for (size_t i = 0; i < HOST_PRIMES; i++) {
        struct host_prime *p = &d->primes->slot[i];
        if (p->bundle_id && p->hp.pid <= 0)
            prime_send(d, p);
    }
}

static void prime_later(struct odkd *d, void *ptr)
{
    (void)ptr;
    if (d->primes)
        d->primes->timer = 0;
    prime_wanted(d);
}

/* The prime once the current event is handled: after the start's answer
 * has gone out (the started event), which a prime sent first delayed. */
static void prime_soon(struct odkd *d)
{
    if (d->primes && !d->primes->timer)
        d->primes->timer = loop_timer(d, d->primes->delay_ms, prime_later, NULL);
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Why the slot does not fit the launch; NULL when it does. */
static const char *prime_mismatch(const struct host_prime *p, const struct bundle *b,
                                  const odk_value *sandbox, int so)
{
    struct stat st;
    if (strcmp(p->executable, b->executable) != 0)
        return "another executable";
    if (fstat(so, &st) < 0 || !same_file(&st, &p->so_stat) ||
        memcmp(p->stamp, b->launch_stamp, sizeof p->stamp) != 0)
        return "another shared object or bundle (changed since)";
    if (!odk_value_equal(sandbox, p->sandbox))
        return "another sandbox";
    return NULL;
}

bool host_prime_take(struct odkd *d, const struct bundle *b, const odk_value *sandbox, int so,
                     struct host_proc *out)
{
    struct host_prime *p = d->primes ? prime_find(d->primes, b->id) : NULL;
    if (!p || p->hp.pid <= 0 || !prime_poll(d, p) || !p->ready)
        return false; /* none, failed, or still priming: a spare serves sooner */
    const char *why = prime_mismatch(p, b, sandbox, so);
    if (why || !spare_alive(&p->hp)) {
        if (why)
            odk_info("%s: the host primed for it (pid %d) has %s; ended", b->id, (int)p->hp.pid,
                     why);
        prime_end(d, p);
        return false;
    }
    loop_del(d, &p->log_watch);
    *out = p->hp;
    if (p->log.fd >= 0) {
        /* Its lines so far went to the bundle's log already; the rest is
         * the instance's to read. */
        loop_del(d, &p->log.watch);
        out->log_fd = p->log.fd;
        p->log.fd = -1;
        p->log.partial_len = 0;
    }
    p->hp = (struct host_proc){.pid = 0, .ctl_fd = -1, .log_fd = -1};
    prime_end(d, p);
    raise_spare(d, out);
    if (getenv("ODK_PRIME_NICE"))
        setpriority(PRIO_PROCESS, (id_t)out->pid, 0);
    trace_mark("odkd primed host %d taken", (int)out->pid);
    return true;
}

void host_prime_note(struct odkd *d, const struct bundle *b, odk_value *sandbox, int so)
{
    struct host_primes *ps = d->primes;
    struct host_zygote *z = d->zygote;
    if (!ps || !z || z->off || prime_refused(ps, b->id) || prime_find(ps, b->id)) {
        odk_value_free(sandbox);
        return;
    }
    struct host_prime *p = NULL;
    for (size_t i = 0; i < HOST_PRIMES; i++) {
        struct host_prime *q = &ps->slot[i];
        if (!q->bundle_id) {
            p = q;
            break;
        }
        if (!p || q->asked_ms < p->asked_ms)
            p = q;
    }
    if (p->bundle_id)
        prime_end(d, p); /* the bundle launched longest ago gives way */
    p->sandbox = sandbox;
    if (fstat(so, &p->so_stat) < 0 || (p->so_fd = fcntl(so, F_DUPFD_CLOEXEC, 3)) < 0 ||
        !(p->bundle_id = strdup(b->id)) || !(p->executable = strdup(b->executable))) {
        prime_end(d, p);
        return;
    }
    memcpy(p->stamp, b->launch_stamp, sizeof p->stamp);
    p->asked_ms = loop_now_ms();
}

void host_prime_forget(struct odkd *d, const char *bundle_id)
{
    struct host_primes *ps = d->primes;
    if (!ps)
        return;
    struct host_prime *p = prime_find(ps, bundle_id);
    if (p)
        prime_end(d, p);
    for (size_t i = 0; i < ps->n_refused; i++) {
        if (strcmp(ps->refused[i], bundle_id) == 0) {
            free(ps->refused[i]);
            ps->refused[i] = ps->refused[--ps->n_refused];
            break;
        }
    }
}

size_t host_primed_pids(const struct odkd *d, pid_t *pids)
{
    size_t n = 0;
    for (size_t i = 0; d->primes && i < HOST_PRIMES; i++)
        if (d->primes->slot[i].hp.pid > 0)
            pids[n++] = d->primes->slot[i].hp.pid;
    return n;
}

odk_value *host_primed_describe(struct odkd *d)
{
    odk_value *a = odk_value_new_array();
    for (size_t i = 0; a && d->primes && i < HOST_PRIMES; i++) {
        struct host_prime *p = &d->primes->slot[i];
        odk_value *x = p->hp.pid > 0 && prime_poll(d, p) ? odk_value_new_dict() : NULL;
        if (!x)
            continue;
        odk_dict_set_int(x, "pid", p->hp.pid);
        odk_dict_set_string(x, "bundle", p->bundle_id);
        odk_dict_set_string(x, "state", p->ready ? "ready" : "priming");
        odk_array_append(a, x);
    }
    return a;
}

size_t host_primed_fds(const struct odkd *d)
{
    size_t n = 0;
    for (size_t i = 0; d->primes && i < HOST_PRIMES; i++) {
        const struct host_prime *p = &d->primes->slot[i];
        const int fds[] = {p->hp.ctl_fd, p->hp.log_fd, p->so_fd, p->log.fd, p->log.file};
        for (size_t k = 0; k < sizeof fds / sizeof fds[0]; k++)
            n += fds[k] >= 0;
    }
    return n;
}

static bool prime_reaped(struct odkd *d, pid_t pid, int wstatus)
{
    struct host_prime *p = NULL;
    for (size_t i = 0; d->primes && pid > 0 && i < HOST_PRIMES && !p; i++)
        if (d->primes->slot[i].hp.pid == pid)
            p = &d->primes->slot[i];
    if (!p)
        return false;
    trace_mark("odkd reaped primed %d", (int)pid);
    /* What it said before its end (a constructor's crash: the backtrace). */
    if (p->log.fd < 0 && p->hp.log_fd >= 0 && p->log_watch.fd >= 0)
        on_prime_log(d, p, 0);
    if (p->log.fd >= 0)
        hostlog_drain(d, &p->log);
    p->hp.pid = 0; /* reaped: nothing to kill */
    if (!prime_poll(d, p))
        return true; /* its prime had failed: said and ended */
    if (p->seq && !d->stopping && !d->quit) {
        char why[128];
        snprintf(why, sizeof why, "its host (pid %d) %s %d while priming", (int)pid,
                 WIFSIGNALED(wstatus) ? "was killed by signal" : "exited with status",
                 WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : WEXITSTATUS(wstatus));
        prime_fail(d, p, why);
        return true;
    }
    /* Died waiting: quietly gone; the bundle's next launch primes again. */
    odk_debug("%s: its primed host (pid %d) ended before use", p->bundle_id, (int)pid);
    prime_end(d, p);
    return true;
}

static void prime_stop(struct odkd *d)
{
    struct host_primes *ps = d->primes;
    if (!ps)
        return;
    loop_timer_cancel(d, ps->timer);
    for (size_t i = 0; i < HOST_PRIMES; i++) {
        pid_t pid = ps->slot[i].hp.pid;
        prime_end(d, &ps->slot[i]);
        if (pid > 0)
            waitpid(pid, NULL, 0);
    }
    for (size_t i = 0; i < ps->n_refused; i++)
        free(ps->refused[i]);
    free(ps->refused);
    free(ps);
    d->primes = NULL;
}

/* ---- the sandbox: odkd's side (the host applies it: src/host/sandbox.c) -- */

struct host_uid {
    char *bundle_id;
    uid_t uid;
    struct host_uid *next;
};

/* A new network namespace, empty (a loopback interface that is down),
 * held by the descriptor returned (-1 when it cannot be made: hosts then
 * make their own).  A child makes it, so odkd's own stays as it is. */
static int make_empty_netns(void)
{
    int p[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        char ok = unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';
        if (write(p[1], &ok, 1) == 1)
            (void)read(p[1], &ok, 1); /* stays until odkd has opened its namespace (EOF) */
        _exit(0);
    }
    close(p[1]);
    int fd = -1;
    char ok = 0;
    if (pid > 0 && read(p[0], &ok, 1) == 1 && ok == 'y') {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    close(p[0]);
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return fd;
}

/* The seccomp programs of every host, generated once by the host binary
 * (src/host/sandbox.c, sandbox_write_programs) into a sealed memfd; -1
 * when that fails. */
static int make_seccomp_programs(struct odkd *d)
{
    int fd = memfd_create("odk-seccomp-programs", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fd, 1); /* its stdout: the memfd */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execl(d->host_path, d->host_path, "--write-seccomp-programs", (char *)NULL);
        _exit(127);
    }
    int ws = 0;
    bool ok = pid > 0 && waitpid(pid, &ws, 0) == pid && WIFEXITED(ws) && WEXITSTATUS(ws) == 0 &&
              lseek(fd, 0, SEEK_END) > 0 &&
              fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) == 0;
    if (!ok) {
        close(fd);
        return -1;
    }
    return fd;
}

void host_sandbox_announce(struct odkd *d)
{
    const char *env = getenv("ODK_NO_SANDBOX");
    if (env && *env && strcmp(env, "0") != 0)
        d->no_sandbox = true;
    if (d->no_sandbox)
        odk_warn("SANDBOX OFF (--no-sandbox or ODK_NO_SANDBOX): driver hosts run unconfined, "
                 "as odkd's user with all its privileges and network; for debugging only");
    else if (geteuid() != 0)
        odk_info("odkd is not root: driver hosts keep odkd's uid; the rest of the sandbox "
                 "applies");
    /* One empty network namespace for every sandboxed host (src/host/
     * sandbox.c): making one per host costs each plug milliseconds. */
    if (!d->no_sandbox && geteuid() == 0 && (d->empty_netns = make_empty_netns()) < 0)
        odk_info("cannot make an empty network namespace (%m): each driver host makes its own");
    if (!d->no_sandbox && (d->seccomp_programs = make_seccomp_programs(d)) < 0)
        odk_info("no seccomp programs made ahead: each driver host generates its own");
}

void host_netns_close(struct odkd *d)
{
    if (d->empty_netns >= 0)
        close(d->empty_netns);
    d->empty_netns = -1;
    if (d->seccomp_programs >= 0)
        close(d->seccomp_programs);
    d->seccomp_programs = -1;
}

/* The bundle's uid: the first free one of the range the first time the
 * bundle starts in this run, the same one after.  A uid that names an
 * account in the password database is skipped.  0 when the range is used
 * up (the caller refuses to start the host). */
static uid_t bundle_uid(struct odkd *d, const char *bundle_id)
{
    uid_t next = HOST_UID_FIRST;
    for (struct host_uid *u = d->host_uids; u; u = u->next) {
        if (strcmp(u->bundle_id, bundle_id) == 0)
            return u->uid;
        if (u->uid >= next)
            next = u->uid + 1;
    }
    while (next < HOST_UID_FIRST + HOST_UID_COUNT && getpwuid(next))
        next++;
    if (next >= HOST_UID_FIRST + HOST_UID_COUNT)
        return 0;
    struct host_uid *u = malloc(sizeof *u);
    if (!u || !(u->bundle_id = strdup(bundle_id))) {
        free(u);
        return 0;
    }
    u->uid = next;
    u->next = d->host_uids;
    d->host_uids = u;
    return next;
}

void host_uids_free(struct odkd *d)
{
    while (d->host_uids) {
        struct host_uid *u = d->host_uids;
        d->host_uids = u->next;
        free(u->bundle_id);
        free(u);
    }
}

int host_sandbox_args(struct odkd *d, const struct bundle *b, odk_value **out)
{
    *out = NULL;
    struct msg m = msg_begin();
    if (d->no_sandbox) {
        odk_warn("%s: SANDBOX OFF: its host runs unconfined (--no-sandbox)", b->id);
        msg_bool(&m, "enabled", false);
        return msg_finish(&m, out);
    }
    char run[4096];
    if ((size_t)snprintf(run, sizeof run, "%s/run/%s", d->state_dir, b->id) >= sizeof run) {
        odk_value_free(msg_done(&m));
        return ODK_E_LIMIT;
    }
    /* The bundle's folder first: run/ exists after the first launch, so
     * it is made only when the bundle's mkdir says it is missing. */
    int made = mkdir(run, 0700);
    if (made < 0 && errno == ENOENT) {
        char parent[4096];
        snprintf(parent, sizeof parent, "%s/run", d->state_dir);
        if (mkdir(parent, 0755) < 0 && errno != EEXIST) {
            odk_error("cannot create %s: %m", parent);
            odk_value_free(msg_done(&m));
            return ODK_E_IO;
        }
        made = mkdir(run, 0700);
    }
    if (made < 0 && errno != EEXIST) {
        odk_error("%s: cannot create its runtime folder %s: %m", b->id, run);
        odk_value_free(msg_done(&m));
        return ODK_E_IO;
    }
    bool network = odk_dict_get_bool(b->entitlements, "network-client", false);
    msg_bool(&m, "enabled", true);
    msg_bool(&m, "network", network);
    msg_str(&m, "bundle_dir", b->dir);
    msg_str(&m, "runtime_dir", run);
    if (geteuid() == 0) {
        uid_t uid = bundle_uid(d, b->id);
        if (!uid) {
            odk_error("%s: no sandbox uid left (odkd hands out %u, from %u)", b->id,
                      (unsigned)HOST_UID_COUNT, (unsigned)HOST_UID_FIRST);
            odk_value_free(msg_done(&m));
            return ODK_E_LIMIT;
        }
        if (chown(run, uid, uid) < 0) {
            odk_error("%s: cannot hand %s to uid %u: %m", b->id, run, (unsigned)uid);
            odk_value_free(msg_done(&m));
            return ODK_E_IO;
        }
        msg_int(&m, "uid", uid);
        msg_int(&m, "gid", uid);
    }
    /* A build tree's driver may link libraries of the tree (build/src/...):
     * the host may read the tree's build folder, the parent of its bin/.
     * Resolved once: the host binary's place does not change while odkd
     * runs (six system calls fewer on the way to every start). */
    if (!d->build_src_resolved) {
        char *lib = host_sibling_path(d, NULL, "../src");
        d->build_src_dir = lib ? realpath(lib, NULL) : NULL;
        d->build_src_resolved = lib != NULL;
        free(lib);
    }
    odk_value *dirs = odk_value_new_array();
    if (dirs && d->build_src_dir)
        odk_array_append(dirs, odk_value_new_string(d->build_src_dir));
    msg_take(&m, "read_dirs", dirs);
    return msg_finish(&m, out);
}
