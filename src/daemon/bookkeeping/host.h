/* SPDX-License-Identifier: MIT */
/* host.h — starting odk-driver-host processes and their control channel.
 * Only the mechanics: what a host is for is instance.c's business. */
#ifndef ODK_DAEMON_HOST_H
#define ODK_DAEMON_HOST_H

#include <stdbool.h>
#include <sys/types.h>

#include "odk/value.h"

struct odkd;
struct bundle;

struct host_proc {
    pid_t pid;
    int ctl_fd; /* odkd's end of the control channel (fd 3 in the host), non-blocking */
    int log_fd; /* read end of the host's stdout and stderr */
    bool idle;  /* a spare forked at SCHED_IDLE (zygote.h): raised when handed out */
};

/* Forks and execs path with argv, as odkd starts every process of its own
 * (driver hosts, device models, NBD exports): the child gets its own
 * process group, dies with odkd (PR_SET_PDEATHSIG) and an empty signal
 * mask; fd3 and fd4 become its fds 3 and 4 and out its stdout and stderr,
 * each only when >= 0.  The pid, or -1 (errno set) when fork fails. */
pid_t host_spawn_process(const char *path, char *const argv[], int fd3, int fd4, int out);

/* Like host_spawn_process, with a new SOCK_SEQPACKET socketpair as the
 * child's fd 3: *fd gets odkd's end (close-on-exec).  -1 with the reason
 * in err. */
pid_t host_spawn_with_channel(const char *path, char *const argv[], int fd4, int *fd, char *err,
                              size_t err_len);

/* The path of exe in the folder of odk-driver-host (libexec, or the build
 * tree's bin), or the value of the environment variable env when it is
 * set (tests point it elsewhere).  Caller frees; NULL when out of memory. */
char *host_sibling_path(struct odkd *d, const char *env, const char *exe);

/* Hosts kept started in advance (host_spare_start). */
#define HOST_SPARES 2

/* A started host with the control channel on fd 3 and stdout/stderr on a
 * pipe: a spare when there is one (it is then replaced, at once when it
 * was the last, else after host_spare_settled), else one forked and
 * exec'd from d->host_path now.  The host has
 * its own process group and dies with odkd.  ODK_E_IO when a pipe,
 * socketpair or fork fails. */
int host_spawn(struct odkd *d, struct host_proc *out);

/* Keep HOST_SPARES spare hosts from now on, forked by the zygote unless
 * d->no_zygote (odkd's start, unless --no-spare-host). */
void host_spare_start(struct odkd *d);
/* A start that took a spare has answered (or failed): a replacement held
 * back for it runs now. */
void host_spare_settled(struct odkd *d);
/* True when pid was a spare or the zygote (then forgotten, and replaced):
 * for the SIGCHLD reaper, before it asks the instances. */
bool host_spare_reaped(struct odkd *d, pid_t pid, int wstatus);
/* Ends the spares and the zygote and starts no other (odkd stopping). */
void host_spare_stop(struct odkd *d);
/* A host whose driver stopped and that now exits: under a real-time odkd
 * (chrt), its threads go one real-time priority lower (or to SCHED_OTHER
 * below the lowest), so the kernel's teardown of the process does not hold
 * a CPU against the next plug's start.  Nothing under SCHED_OTHER (no
 * lower class that cannot starve the exit), without CAP_SYS_NICE, or for
 * a host already gone.  Main thread of odkd; does not block. */
void host_lower_exiting(pid_t pid);
/* The zygote's pid (src/host/zygote.h), which forks the spares unless
 * --no-zygote; 0 when there is none. */
pid_t host_zygote_pid(const struct odkd *d);

/* Primed hosts (docs/architecture.md, "primed hosts").  After a launch of
 * bundle B, a ready spare is primed for B once the start has answered:
 * it gets B's sandbox and shared object, applies the one and dlopens the
 * other (B's constructors run there, sandboxed), and waits.  B's next
 * launch with the same sandbox and the same shared object (the file and
 * the launch check's stamp) starts in it; one that differs ends it.  At
 * most HOST_PRIMES, for the bundles launched last; a bundle whose prime
 * failed is not primed again this run.  Off with ODK_NO_PRIME=1 in
 * odkd's environment, under --debug, and without the zygote. */
#define HOST_PRIMES 2

/* At a launch of b, before host_spawn: the host primed for b, handed out
 * into *out (raised as a spare is) when its prime answered and it matches
 * sandbox and the shared object so (odkd's descriptor of it): true.  A
 * primed host that does not match is ended.  False: take a spare. */
bool host_prime_take(struct odkd *d, const struct bundle *b, const odk_value *sandbox, int so,
                     struct host_proc *out);
/* At a launch of b (not under --debug), after its start was sent: b is to
 * be primed with sandbox (taken) and the shared object so (duplicated),
 * once a start answers (host_spare_settled) and a spare is ready. */
void host_prime_note(struct odkd *d, const struct bundle *b, odk_value *sandbox, int so);
/* Bundle bundle_id was reinstalled or removed: its primed host is ended,
 * and it may be primed again. */
void host_prime_forget(struct odkd *d, const char *bundle_id);
/* The pids of the primed hosts (and those priming), at most HOST_PRIMES;
 * how many. */
size_t host_primed_pids(const struct odkd *d, pid_t *pids);
/* The primed hosts as odkctl hosts shows them: an array of {"pid",
 * "bundle", "state": "priming" or "ready"} (ping's "primed").  Reads the
 * answers of primes that came (a failed one is then said and ended). */
odk_value *host_primed_describe(struct odkd *d);
/* How many descriptors odkd holds for its primed hosts (their channels,
 * log pipes and log files, a shared object waiting for its prime): what
 * odkd's descriptor count may be above a baseline taken before any was
 * primed (ping's "primed_fds"; the leak checks of the tests and the
 * fault campaign). */
size_t host_primed_fds(const struct odkd *d);

/* The sandbox (docs/trust.md).  Each bundle's hosts run as a uid of their
 * own from this range (gid the same number) when odkd runs as root. */
#define HOST_UID_FIRST 1879048192u /* 0x70000000 */
#define HOST_UID_COUNT 65536u

/* Reads ODK_NO_SANDBOX into d->no_sandbox and says loudly in the log when
 * the sandbox is off (odkd's start).  With the sandbox on, has the
 * seccomp programs every host is handed generated once
 * (d->seccomp_programs) and, as root, makes the empty network namespace
 * every host joins (d->empty_netns); each -1 when it cannot. */
void host_sandbox_announce(struct odkd *d);
/* Closes d->empty_netns and d->seccomp_programs (odkd's exit). */
void host_netns_close(struct odkd *d);

/* The "sandbox" dictionary of a start request for bundle b (src/host/
 * sandbox.h lists its keys): allocates the bundle's uid on first use (root
 * only), creates STATE/run/BUNDLE-ID/ and hands it to that uid.  Under
 * --no-sandbox, {"enabled": false} and a warning in the log.  Caller owns
 * *out.  ODK_E_IO (a folder that cannot be made or handed over),
 * ODK_E_LIMIT (the uid range is used up), ODK_E_NOMEM. */
int host_sandbox_args(struct odkd *d, const struct bundle *b, odk_value **out);

/* Forgets every bundle's uid (odkd's exit). */
void host_uids_free(struct odkd *d);

#endif
