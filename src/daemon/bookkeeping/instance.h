/* SPDX-License-Identifier: MIT */
/* instance.h — driver instances: one odk-driver-host per matched
 * personality and provider node, and its state machine
 *
 *   starting -> running -> stopping -> (gone)
 *       \-> failed     \-> backoff -> starting  (crash; restart with backoff)
 *
 * Instances report upward only through the hooks the policy layer sets
 * (d->hooks) and hand host requests to d->host_request. */
#ifndef ODK_DAEMON_INSTANCE_H
#define ODK_DAEMON_INSTANCE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/wire.h"
#include "daemon/bookkeeping/hostlog.h"
#include "daemon/core/bundle.h"
#include "daemon/core/registry.h"
#include "odk/log.h"

struct odkd;
struct catalog_entry;

typedef enum inst_state {
    INST_STARTING,
    INST_RUNNING,
    INST_STOPPING,
    INST_BACKOFF, /* crashed; waiting to restart */
    INST_FAILED,  /* start failed or crashed too often; stays down */
} inst_state;

/* Per-personality deadlines (OdkDeadlines: {"start", "stop", "power",
 * "call"} in milliseconds; 0 means none; call 0 turns the host's
 * watchdog off). */
struct deadlines {
    uint64_t start_ms, stop_ms, power_ms, call_ms;
};
#define DEFAULT_START_MS 10000
#define DEFAULT_STOP_MS 5000
#define DEFAULT_POWER_MS 5000
#define DEFAULT_CALL_MS 30000

struct instance {
    uint32_t id;
    bundle *bundle; /* borrowed from the catalog entry (kept alive by it) */
    struct catalog_entry *entry;
    char *personality_name;
    odk_value *personality;
    char *category;
    uint64_t provider_id;
    uint64_t node_id; /* the driver's service node, 0 while down */
    inst_state state;
    pid_t pid;
    int ctl_fd;
    struct watch ctl_watch;
    struct host_log log;
    uint32_t restarts;
    uint64_t crash_window_start;
    uint32_t crash_count;
    uint64_t deadline_timer, backoff_timer;
    uint32_t next_seq;
    uint32_t start_seq, stop_seq;
    bool terminate;          /* going away for good once the host is down */
    /* Terminated and its stop answered: no driver code of it runs any more
     * and its host is exiting; its nodes may go before the exit is reaped. */
    bool stopped;
    bool rematch;            /* once gone, matching runs again (the policy layer's flag) */
    bool retired;            /* out of d->instances, freed after this batch of events */
    const char *kill_reason; /* why odkd killed it ("missed its stop deadline"), or NULL */
    /* Why it is failed or backing off ("crashed: SIGSEGV in foo (2 crashes
     * in 60 s)", "start failed: ..."), for `odkctl list`; "" while it runs. */
    char reason[320];
    char crash_where[128]; /* the driver function a crash was in (crash.c), or "" */
    pid_t crash_pid;       /* the host of the last crash reported */
    bool debug;              /* odkd --debug: host waits for a debugger before init */
    struct deadlines deadlines;
    uint64_t memory_limit_kib; /* OdkMemoryLimitMB, 0 = none */
    uint64_t op_started_ms;    /* when the operation the deadline guards began */
    /* System power transition in progress (policy/power.c). */
    uint32_t power_seq;
    struct power_tx *power_tx;
    struct instance *next;
};

/* What instances tell the layer above.  Every hook is optional. */
struct instance_hooks {
    /* The driver started: its service node is registered-ready. */
    void (*started)(struct odkd *d, struct instance *in);
    /* The driver could not start (reason says why). */
    void (*start_failed)(struct odkd *d, struct instance *in, const char *reason);
    /* A reply to a request instance.c did not send (seq unknown to it). */
    void (*reply)(struct odkd *d, struct instance *in, const wire_msg *m);
    /* The host is gone (crashed, killed or stopped), before any restart. */
    void (*host_gone)(struct odkd *d, struct instance *in);
    /* The instance is gone for good (terminated), just before it is freed;
     * it is no longer in d->instances. */
    void (*gone)(struct odkd *d, struct instance *in);
    /* node (a service node) and everything under it must leave the
     * registry now; drivers under it are already terminating. */
    void (*remove_node)(struct odkd *d, reg_node *node);
};

/* Creates an instance of personality pers_name of e for provider and
 * starts its host.  NULL when out of memory. */
struct instance *instance_launch(struct odkd *d, struct catalog_entry *e, const char *pers_name,
                                 const odk_value *personality, reg_node *provider);
/* Stops the instance for good (stop, then kill at the deadline). */
void instance_terminate(struct odkd *d, struct instance *in);
/* Terminates every instance attached to node or below it, deepest first;
 * when all have stopped (now or later) calls done(d, ctx) (done may be
 * NULL).  Stopped means the host answered its stop, or is gone; with
 * until_exit, only gone (reaped) counts: odkd's exit waits for its hosts,
 * an unplug does not wait for a host that already stopped to exit. */
void instance_terminate_tree(struct odkd *d, reg_node *node, bool until_exit,
                             void (*done)(struct odkd *, void *), void *ctx);
/* Called for every reaped child (SIGCHLD). */
void instance_reaped(struct odkd *d, pid_t pid, int wstatus);
/* Kills the host for a stated reason; the reap restarts it (unless it is
 * being terminated), reporting the reason instead of "crashed". */
void instance_kill(struct odkd *d, struct instance *in, const char *reason);

/* Where the crash of host pid was (a driver function, from crash.c once
 * its report is symbolised): kept and added to the reason `odkctl list`
 * shows ("crashed: SIGSEGV in foo (1 crash in 60 s)"), unless a later
 * crash or a name found earlier is there already. */
void instance_crash_where(struct instance *in, pid_t pid, const char *where);

/* Sends a request to the host, taking args; fds (n_fds <= 3) are sent
 * with it and stay the caller's.  Returns the request's sequence number,
 * or 0 when the host cannot be asked (no channel, full, out of memory). */
uint32_t instance_request(struct instance *in, odk_value *args, const int *fds, size_t n_fds);
/* Replies to the host's request seq, taking body (may be NULL). */
void instance_reply(struct instance *in, uint32_t seq, int status, odk_value *body,
                    const int *fds, size_t n_fds);

/* Logs an event of the instance in odkd's log and in the driver's own log
 * file, so a crash, a restart or a missed deadline shows in `odkctl log`. */
void instance_event(struct instance *in, odk_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Frees every instance and pending tree wait, whatever their state (at
 * exit, after the loop stopped; hosts still alive are killed). */
void instance_free_all(struct odkd *d);

/* The instance that serves node: its owner for a node a driver published,
 * else the driver in IODefaultMatchCategory on it, else any; or NULL. */
struct instance *instance_by_node(struct odkd *d, uint64_t node_id);
/* Instances whose provider is node, not terminating. */
size_t instance_count_on(struct odkd *d, uint64_t node_id);
/* A dictionary for `odkctl list`; NULL when out of memory. */
odk_value *instance_describe(struct odkd *d, const struct instance *in);
const char *inst_state_name(inst_state s);
/* The host's resident memory in KiB (0 if unknown). */
uint64_t instance_rss_kib(const struct instance *in);
/* Whether in's host is stopped (a debugger at a breakpoint, or SIGSTOP:
 * /proc/PID/stat says T or t): its deadlines wait while it is. */
bool instance_stopped(const struct instance *in);

#endif
