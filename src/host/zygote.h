/* SPDX-License-Identifier: MIT */
/* zygote.h — odk-driver-host --zygote: the host that starts hosts.
 *
 * odkd keeps one zygote (daemon/bookkeeping/host.c).  It has done what
 * every host does before it knows its driver (the exec, the dynamic
 * linker, the constructors of the runtime and the families, the shared
 * half of the sandbox's preparation: sandbox_prepare_shared), then waits
 * on its channel for "spawn" requests, each carrying a new host's channel
 * and log pipe.  For each it forks a host and replies {"pid": N}; the
 * host costs odkd a message instead of a fork, an exec and the dynamic
 * linker.  The host is forked as odkd's child, not the zygote's (clone3
 * with CLONE_PARENT): odkd reaps it as any host it started, the host dies
 * with odkd, and a zygote that dies takes no host with it.  The zygote
 * runs no driver code and reads nothing but odkd's channel.
 *
 * A spare's preparation after the fork (its seccomp programs and Landlock
 * ruleset, sandbox_prepare_own) would compete for the CPUs with the plug
 * that is being served meanwhile (it is asked for when a start answers,
 * and the benchmark's next plug follows at once): when odkd asks, the
 * zygote puts the new host at SCHED_IDLE before it replies, so the
 * preparation runs on idle CPU time, and the host takes back the zygote's
 * scheduling when it is prepared (zygote_host_prepared).
 *
 * ODK_ZYGOTE_PIN=1 in its environment pins the zygote to one CPU (the TLB
 * flushes of its forks and of its copy-on-write faults after them then
 * reach no other CPU, but it waits for that CPU when busy); each host it
 * forks takes back the CPUs the zygote had before, first thing after
 * become_host.  Off by default: for A/B runs. */
#ifndef ODK_HOST_ZYGOTE_H
#define ODK_HOST_ZYGOTE_H

/* Runs the zygote on channel ctl (its fd 3).  Returns only in a forked
 * child, with the child's own channel on fd 3 and its log pipe on fds 1
 * and 2, its own process group and odkd's death as its own; the zygote
 * exits when odkd closes the channel.  Main thread, with no other thread
 * in the process (the fork copies only the caller's). */
void zygote_run(int ctl);

/* In a host forked by zygote_run, once its preparation (sandbox_prepare_own)
 * is done and before it starts any thread: a host that odkd asked to be
 * forked idle ({"idle": true} in the spawn request) ran its preparation
 * at SCHED_IDLE, on CPU time nobody else wanted, and takes back the
 * zygote's scheduling here (it still has CAP_SYS_NICE: odkd asks for
 * idle spares only when it has it).  Otherwise nothing.  odkd also raises
 * the spare's main thread when it hands it out, so that a start never
 * waits behind a preparation at idle priority.  Main thread. */
void zygote_host_prepared(void);

#endif
