/* SPDX-License-Identifier: MIT */
/* The zygote (zygote.h): forks spare hosts for odkd without an exec. */
#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
/* The zygote's scheduling (odkd's, inherited at the exec), which a spare
 * forked at SCHED_IDLE takes back once prepared; whether this process is
 * such a spare. */
static int zygote_policy = -1;
static struct sched_param zygote_param;
static bool forked_idle;
/* The CPUs the zygote was allowed before it pinned itself to one
 * (pin_to_one_cpu), which each host it forks takes back. */
static cpu_set_t allowed_cpus;
static bool pinned;

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
    /* A kernel without clone3 (before 5.3, or a filter that refuses it),
     * for the test of odkd's fallback to exec'd spares (test_zygote.py). */
    if (getenv("ODK_TEST_NO_CLONE3")) {
        errno = ENOSYS;
        return -1;
    }
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

/* A spare's preparation runs one step below the zygote (odkd): under a
 * real-time odkd (chrt, as the benchmarks run it) one real-time priority
 * lower, or SCHED_OTHER below the lowest, so that it takes the CPU from
 * everything but the plug being served; under SCHED_OTHER or SCHED_BATCH
 * at SCHED_IDLE, on CPU time nobody else wants. */
static void lower_host(pid_t pid)
{
    struct sched_param low = {0};
    int policy = SCHED_IDLE;
    if (zygote_policy == SCHED_FIFO || zygote_policy == SCHED_RR) {
        low.sched_priority = zygote_param.sched_priority - 1;
        policy = low.sched_priority >= sched_get_priority_min(zygote_policy) ? zygote_policy
                                                                             : SCHED_OTHER;
        if (policy == SCHED_OTHER)
            low.sched_priority = 0;
    }
    sched_setscheduler(pid, policy, &low);
}

/* ODK_ZYGOTE_PIN=1: the zygote runs on one CPU.  Each fork write-protects
 * the zygote's pages, and the zygote's next writes to them (its stack,
 * the receive buffer, malloc's state: some 8 pages a spare) are
 * copy-on-write faults, each a TLB flush; the fork flushes too.  A flush
 * reaches the CPUs the zygote's memory was last used on, and a zygote
 * woken on either CPU (the kernel here runs a woken task on its waker's)
 * had both: each flush sent an IPI to the other CPU and waited for it
 * (0.34 ms of the tree's CPU a plug cycle in perf's samples, none
 * pinned).  But a pinned zygote waits for its CPU when that one is busy:
 * at load 7 a launch that found no primed host waited for its spare
 * 1.3 ms after the plug instead of 0.3 (docs/testing.md, "Where a plug's
 * time goes", session 11).  So it is for A/B runs on a quiet machine, not
 * the default.  The host forked takes back the zygote's former CPUs
 * (unpin). */
static void pin_to_one_cpu(void)
{
    const char *on = getenv("ODK_ZYGOTE_PIN");
    if (!on || !*on || strcmp(on, "0") == 0 ||
        sched_getaffinity(0, sizeof allowed_cpus, &allowed_cpus) < 0 ||
        CPU_COUNT(&allowed_cpus) < 2)
        return;
    int cpu = sched_getcpu();
    if (cpu < 0 || !CPU_ISSET(cpu, &allowed_cpus))
        return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pinned = sched_setaffinity(0, sizeof one, &one) == 0;
}

/* In a forked host: the CPUs the zygote had before pinning itself. */
static void unpin(void)
{
    if (pinned && sched_setaffinity(0, sizeof allowed_cpus, &allowed_cpus) < 0)
        odk_warn("spare host: cannot take back the zygote's CPUs (%s); it runs on one",
                 strerror(errno));
    pinned = false;
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
    pin_to_one_cpu();
    zygote_policy = sched_getscheduler(0);
    if (zygote_policy < 0 || sched_getparam(0, &zygote_param) < 0)
        zygote_policy = -1; /* then no spare is forked idle */
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
        odk_value *args = NULL;
        bool idle = wire_msg_value(&m, &args) == ODK_OK && odk_dict_get_bool(args, "idle", false);
        odk_value_free(args);
        if (usable < 0) {
            reply(ctl, seq, usable, 0, why);
        } else if (chan < 0 || log < 0) {
            reply(ctl, seq, ODK_E_PROTOCOL, 0, "a spawn request carries a channel and a log pipe");
        } else {
            /* The child is born lowered: the zygote lowers itself for the
             * fork and takes its own scheduling back after it.  (Lowering
             * the child from here raced with the child's own raise once
             * prepared, zygote_host_prepared, and could leave a prepared
             * spare at SCHED_IDLE until odkd handed it out.)  The reply
             * below, and so odkd's raise at the hand-out, comes after. */
            bool lower = idle && zygote_policy >= 0;
            if (lower)
                lower_host(0);
            pid_t pid = fork_for_odkd();
            if (lower && pid != 0 && sched_setscheduler(0, zygote_policy, &zygote_param) < 0) {
                odk_warn("zygote: cannot take its scheduling back after forking a spare (%s); "
                         "spares are forked at its scheduling from now on",
                         strerror(errno));
                zygote_policy = -1;
            }
            if (pid == 0) {
                forked_idle = lower;
                wire_msg_release(&m);
                close(ctl);
                become_host(chan, log, odkd);
                unpin(); /* after become_host: a warning goes to its own log */
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

void zygote_host_prepared(void)
{
    if (!forked_idle)
        return;
    forked_idle = false;
    if (sched_setscheduler(0, zygote_policy, &zygote_param) < 0)
        odk_warn("spare host: cannot take back the zygote's scheduling after its preparation "
                 "(%s); odkd raises it when it hands it out",
                 strerror(errno));
    trace_mark("host spare raised");
}
