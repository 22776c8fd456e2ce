/* SPDX-License-Identifier: MIT */
/* The zygote (zygote.h): forks spare hosts for odkd without an exec. */
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/trace.h"
#include "common/wire.h"
#include "host/zygote.h"
#include "odk/log.h"
#include "odk/status.h"
#include "odk/value.h"

/* Where glibc keeps the main thread's tid (the kernel's clear_child_tid,
 * set by glibc at start-up), and the thread's robust-mutex list. */
static int *tid_address;
static void *robust_head;
static size_t robust_len;

static int fork_setup(char *err, size_t len)
{
    if (prctl(PR_GET_TID_ADDRESS, &tid_address, 0, 0, 0) < 0 || !tid_address) {
        snprintf(err, len, "prctl(PR_GET_TID_ADDRESS): %s", strerror(errno));
        return ODK_E_UNSUPPORTED;
    }
    if (syscall(SYS_get_robust_list, 0, &robust_head, &robust_len) < 0) {
        snprintf(err, len, "get_robust_list: %s", strerror(errno));
        return ODK_E_UNSUPPORTED;
    }
    return ODK_OK;
}

/* fork(), with the zygote's parent (odkd) as the child's parent.  What
 * glibc's fork does for its one thread, done by hand: the kernel writes
 * the child's tid where glibc keeps it (CLONE_CHILD_SETTID; pthread_self,
 * mutex owners and raise read it) and clears it at exit; the child
 * registers its robust-mutex list again (the kernel forgets it).  glibc's
 * at-fork handlers do not run: they reset locks other threads may hold,
 * and the zygote has no other thread and holds no lock here. */
static pid_t fork_for_odkd(void)
{
    struct clone_args ca = {
        .flags = CLONE_PARENT | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID,
        .child_tid = (uint64_t)(uintptr_t)tid_address,
        .exit_signal = 0, /* CLONE_PARENT: odkd gets the zygote's own, SIGCHLD */
    };
    long r = syscall(SYS_clone3, &ca, sizeof ca);
    if (r == 0)
        syscall(SYS_set_robust_list, robust_head, robust_len);
    return (pid_t)r;
}

/* In the child: its channel on fd 3, its log on 1 and 2, its own process
 * group, and death with odkd (checked after, as odkd may have died just
 * before). */
static void become_host(int chan, int log, pid_t odkd)
{
    if (dup2(chan, 3) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
        _exit(127);
    if (chan != 3)
        close(chan);
    if (log > 2)
        close(log);
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != odkd)
        _exit(0);
}

static void reply(int ctl, uint32_t seq, int status, pid_t pid, const char *error)
{
    odk_value *body = odk_value_new_dict();
    if (body && status == ODK_OK)
        odk_dict_set_int(body, "pid", pid);
    else if (body)
        odk_dict_set_string(body, "error", error);
    wire_send_value(ctl, WIRE_REPLY, seq, status, body, NULL, 0);
    odk_value_free(body);
}

void zygote_run(int ctl)
{
    pid_t odkd = getppid();
    char why[256] = "";
    int usable = fork_setup(why, sizeof why);
    wire_msg m;
    wire_msg_init(&m);
    for (;;) {
        int st = wire_recv(ctl, &m);
        if (st == ODK_E_PROTOCOL)
            continue;
        if (st < 0)
            break; /* odkd closed the channel (or is gone) */
        if (m.hdr.type != WIRE_REQUEST)
            continue;
        int chan = wire_msg_take_fd(&m, 0), log = wire_msg_take_fd(&m, 1);
        uint32_t seq = m.hdr.seq;
        if (usable < 0) {
            reply(ctl, seq, usable, 0, why);
        } else if (chan < 0 || log < 0) {
            reply(ctl, seq, ODK_E_PROTOCOL, 0, "a spawn request carries a channel and a log pipe");
        } else {
            pid_t pid = fork_for_odkd();
            if (pid == 0) {
                wire_msg_release(&m);
                close(ctl);
                become_host(chan, log, odkd);
                return;
            }
            if (pid < 0) {
                snprintf(why, sizeof why, "clone3(CLONE_PARENT): %s", strerror(errno));
                reply(ctl, seq, ODK_E_IO, 0, why);
                why[0] = 0;
            } else {
                trace_mark("zygote forked %d", (int)pid);
                reply(ctl, seq, ODK_OK, pid, NULL);
            }
        }
        if (chan >= 0)
            close(chan);
        if (log >= 0)
            close(log);
    }
    wire_msg_release(&m);
    _exit(0);
}
