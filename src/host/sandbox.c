/* SPDX-License-Identifier: MIT */
/* The driver host's sandbox (sandbox.h; docs/trust.md, "The sandbox").
 *
 * The host is started before it knows its driver (odkd keeps a spare), so
 * the sandbox goes on when the start request arrives and before the
 * driver's shared object is opened: its constructors already run inside.
 * Each step needs the privileges the previous ones drop, hence the order:
 * the network namespace (CAP_SYS_ADMIN), the capability bounding set
 * (CAP_SETPCAP), the uid (CAP_SETUID), then no-new-privs, Landlock and
 * seccomp, which need none. */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "host/sandbox.h"
#include "odk/log.h"
#include "odk/status.h"

/* ---- the report of a denied system call --------------------------------- */

/* Names of system calls by number, resolved before the filter goes on, so
 * the SIGSYS handler only reads (libseccomp's lookup allocates). */
#define NAMED_SYSCALLS 512
static char *syscall_names[NAMED_SYSCALLS];

static void put(const char *s)
{
    if (write(2, s, strlen(s)) < 0) {
        /* the log pipe is gone: nothing more to do */
    }
}

/* SCMP_ACT_TRAP lands here, on the thread that made the call.  Says which
 * call, prints a backtrace in the form crash.c reads, and dies: resetting
 * the SIGSYS action is itself a call the filter answers by killing the
 * process with SIGSYS, so a driver cannot install a handler of its own and
 * carry on. */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    char num[24], *p = num + sizeof num;
    unsigned nr = (unsigned)si->si_syscall;
    *--p = 0;
    do
        *--p = (char)('0' + nr % 10);
    while ((nr /= 10) != 0);
    const char *name = (unsigned)si->si_syscall < NAMED_SYSCALLS && syscall_names[si->si_syscall]
                           ? syscall_names[si->si_syscall]
                           : "?";
    put("error odk-driver-host: sandbox: system call ");
    put(name);
    put(" (");
    put(p);
    put(") is not allowed; killing the host\n");
    put("error odk-driver-host: fatal signal; backtrace:\n");
    void *frames[64];
    int n = backtrace(frames, 64);
    backtrace_symbols_fd(frames, n, 2);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigaction(SIGSYS, &dfl, NULL); /* killed here (see the filter) */
    _exit(128 + SIGSYS);            /* not reached */
}

/* ---- sanitizer builds ----------------------------------------------------- */

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
static volatile int sandboxed;
/* LeakSanitizer's check at exit (a driver calling exit()) stops the
 * process's threads with ptrace from a clone(CLONE_UNTRACED): both are
 * calls the filter kills on.  A sandboxed host skips that check; the host
 * itself leaves with _exit, which never ran it. */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
    return sandboxed;
}
#define NOTE_SANDBOXED() (sandboxed = 1)
#else
#define NOTE_SANDBOXED() ((void)0)
#endif

/* ---- the steps ----------------------------------------------------------- */

static int fail(char *err, size_t len, const char *what, int e)
{
    snprintf(err, len, "%s: %s", what, strerror(e));
    return ODK_E_IO;
}

/* The network namespace: an empty one has only a loopback interface that
 * is down, so no address is reachable.
 *
 * odkd (as root) makes one such namespace at its start and hands it to
 * every host it starts (fd 4, "--empty-netns"); the host joins it in
 * sandbox_prepare, before it knows its driver, so neither making nor
 * tearing down a namespace is on the way from plug to driver started
 * (both cost the kernel milliseconds; the teardown runs later, from a
 * kernel worker, on the same CPUs).  Hosts in one namespace could reach
 * each other's abstract Unix sockets, which live in the network
 * namespace: so a host joins only when Landlock can scope those sockets
 * to its own domain (ABI 6, prepare_landlock), and otherwise makes a
 * namespace of its own as before.  A host whose bundle holds
 * network-client (or runs unsandboxed) goes back to the namespace it was
 * started in, kept open for that. */
static int started_netns = -1; /* while in odkd's empty namespace: the one it left */

static int landlock_abi(void)
{
    return (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
}

#define LL_SCOPE_ABI 6 /* Landlock's scopes (abstract Unix sockets, signals) */

static void join_empty_netns(int fd)
{
    if (fd < 0)
        return;
    if (landlock_abi() >= LL_SCOPE_ABI) {
        started_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (started_netns >= 0 && setns(fd, CLONE_NEWNET) < 0) {
            odk_warn("sandbox: cannot join odkd's empty network namespace (%m); this host "
                     "makes its own");
            close(started_netns);
            started_netns = -1;
        }
    }
    close(fd);
}

/* Back to the namespace the host was started in (network-client, or no
 * sandbox); nothing to do when it never left. */
static int leave_empty_netns(char *err, size_t len)
{
    if (started_netns < 0)
        return ODK_OK;
    int r = setns(started_netns, CLONE_NEWNET);
    int e = errno;
    close(started_netns);
    started_netns = -1;
    return r < 0 ? fail(err, len, "setns back to odkd's network namespace", e) : ODK_OK;
}

/* As root without odkd's namespace, unshare one; otherwise inside a user
 * namespace of its own, mapped to the same ids. */
static int enter_empty_netns(char *err, size_t len)
{
    if (started_netns >= 0) {
        /* Already in odkd's empty one (sandbox_prepare): stay. */
        close(started_netns);
        started_netns = -1;
        return ODK_OK;
    }
    if (unshare(CLONE_NEWNET) == 0)
        return ODK_OK;
    if (errno != EPERM)
        return fail(err, len, "unshare(CLONE_NEWNET)", errno);
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0) {
        odk_warn("sandbox: cannot make a network namespace (%m): this host keeps the "
                 "network namespace of odkd; seccomp still refuses it network sockets");
        return ODK_OK;
    }
    char map[64];
    static const struct {
        const char *file, *fmt;
    } maps[] = {{"/proc/self/setgroups", "deny"},
                {"/proc/self/uid_map", "%u %u 1"},
                {"/proc/self/gid_map", "%u %u 1"}};
    for (size_t i = 0; i < 3; i++) {
        unsigned id = i == 2 ? (unsigned)gid : (unsigned)uid;
        int n = snprintf(map, sizeof map, maps[i].fmt, id, id);
        int fd = open(maps[i].file, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, map, (size_t)n) != n) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return fail(err, len, maps[i].file, e);
        }
        close(fd);
    }
    return ODK_OK;
}

/* The bounding set was emptied ahead (sandbox_prepare_shared): it only
 * limits what an exec could gain, so emptying it early changes nothing
 * for the spare, and it is inherited by every host a zygote forks. */
static bool bounding_set_dropped;

static int drop_bounding_set(char *err, size_t len)
{
    if (bounding_set_dropped)
        return ODK_OK;
    for (int cap = 0;; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
            return ODK_OK; /* past the last capability this kernel knows */
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EPERM)
            return fail(err, len, "PR_CAPBSET_DROP", errno);
        /* EPERM: no CAP_SETPCAP (odkd is not root), so the set was never
         * ours to give away; the process holds no capability either. */
    }
}

static int drop_capabilities(char *err, size_t len)
{
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return fail(err, len, "PR_CAP_AMBIENT_CLEAR_ALL", errno);
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2] = {{0}};
    if (syscall(SYS_capset, &hdr, data) < 0)
        return fail(err, len, "capset", errno);
    return ODK_OK;
}

static int become(uid_t uid, gid_t gid, char *err, size_t len)
{
    if (setgroups(0, NULL) < 0)
        return fail(err, len, "setgroups", errno);
    if (setresgid(gid, gid, gid) < 0)
        return fail(err, len, "setresgid", errno);
    if (setresuid(uid, uid, uid) < 0)
        return fail(err, len, "setresuid", errno);
    return ODK_OK;
}

/* ---- Landlock ----------------------------------------------------------- */

#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0) /* LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET, ABI 6 */
#define LL_SCOPE_SIGNAL (1ULL << 1)        /* LANDLOCK_SCOPE_SIGNAL, ABI 6 */

/* The ruleset attribute as of ABI 6 (the installed header may be older). */
struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

#define LL_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define LL_FILE_RIGHTS                                                                             \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |  \
     LANDLOCK_ACCESS_FS_TRUNCATE)

/* The rule for fd (an O_PATH descriptor of a folder, or of a file when
 * is_dir is false: directory rights on a file are EINVAL). */
static int ll_add_fd(int ruleset, int fd, bool is_dir, uint64_t access, uint64_t handled)
{
    if (!is_dir)
        access &= LL_FILE_RIGHTS;
    struct landlock_path_beneath_attr pb = {.allowed_access = access & handled, .parent_fd = fd};
    return (int)syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
}

static int ll_add(int ruleset, const char *path, uint64_t access, uint64_t handled)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1; /* /lib32 and the like may not exist */
    struct stat st;
    int r = ll_add_fd(ruleset, fd, fstat(fd, &st) < 0 || S_ISDIR(st.st_mode), access, handled);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

/* The paths of every host's base ruleset but its own /proc entry: what
 * the dynamic linker, glibc and the sanitizers read (read-only), then the
 * device files every program may use (read-write). */
static const char *const base_paths[] = {
    "/usr", "/lib", "/lib64", "/lib32", "/libx32", "/etc/ld.so.cache", "/etc/localtime",
    "/sys/devices/system/cpu", "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"};
#define BASE_RO 8 /* the first 8 are read-only */
#define N_BASE (sizeof base_paths / sizeof base_paths[0])

/* Those paths opened once (O_PATH) by the zygote (sandbox_prepare_shared),
 * so that each forked spare builds its ruleset with one system call a
 * rule instead of an open, an fstat, the rule and a close; the spare
 * closes them once its ruleset is built (sandbox_prepare_own), before any
 * driver is chosen.  fd -1 with absent: the path does not exist (skipped,
 * as ll_add does); fd -1 otherwise: base_ruleset opens the path itself. */
static struct base_path {
    int fd;
    bool absent, is_dir;
} base_open[N_BASE];
static bool base_opened;

static void open_base_paths(void)
{
    for (size_t i = 0; i < N_BASE; i++) {
        struct base_path *b = &base_open[i];
        struct stat st;
        b->fd = open(base_paths[i], O_PATH | O_CLOEXEC);
        b->absent = b->fd < 0 && errno == ENOENT;
        b->is_dir = b->fd >= 0 && (fstat(b->fd, &st) < 0 || S_ISDIR(st.st_mode));
    }
    base_opened = true;
}

static void close_base_paths(void)
{
    if (!base_opened)
        return;
    int lo = -1, hi = -1;
    for (size_t i = 0; i < N_BASE; i++) {
        int fd = base_open[i].fd;
        if (fd < 0)
            continue;
        if (lo < 0)
            lo = hi = fd;
        else if (fd == hi + 1)
            hi = fd;
        else {
            close_range((unsigned)lo, (unsigned)hi, 0);
            lo = hi = fd;
        }
    }
    if (lo >= 0)
        close_range((unsigned)lo, (unsigned)hi, 0);
    base_opened = false;
}

/* The ruleset with the rules every host has (system folders, device
 * files, its own /proc entry), into *rs (-1: no Landlock); *handled gets
 * the rights it handles.  Built by the spare (sandbox_prepare) or at the
 * start.  ODK_OK, or ODK_E_IO naming the path in err. */
static int base_ruleset(int *rs_out, uint64_t *handled_out, char *err, size_t len)
{
    *rs_out = -1;
    int abi = landlock_abi();
    if (abi < 0)
        return ODK_OK;
    uint64_t handled = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* every right of ABI 1 */
    if (abi >= 2)
        handled |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        handled |= LANDLOCK_ACCESS_FS_TRUNCATE;
    struct ll_ruleset_attr attr = {.handled_access_fs = handled};
    size_t attr_size = sizeof attr - sizeof attr.scoped - sizeof attr.handled_access_net;
    if (abi >= LL_SCOPE_ABI) {
        /* Signals only to processes in the same domain: itself; abstract
         * Unix sockets only of its own (hosts share odkd's empty network
         * namespace, where those sockets live). */
        attr.scoped = LL_SCOPE_SIGNAL | LL_SCOPE_ABSTRACT_UNIX;
        attr_size = sizeof attr;
    }
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
    if (rs < 0)
        return fail(err, len, "landlock_create_ruleset", errno);
    uint64_t ro = LL_READ | LANDLOCK_ACCESS_FS_EXECUTE;
    char self[64];
    snprintf(self, sizeof self, "/proc/%d", (int)getpid()); /* /proc/self, this process only */
    int st = ODK_OK;
    const char *what = NULL;
    for (size_t i = 0; st == ODK_OK && i < N_BASE; i++) {
        uint64_t access = i < BASE_RO ? ro : LL_READ | LANDLOCK_ACCESS_FS_WRITE_FILE;
        const struct base_path *b = &base_open[i];
        what = base_paths[i];
        if (base_opened && b->absent)
            continue;
        if (base_opened && b->fd >= 0 ? ll_add_fd(rs, b->fd, b->is_dir, access, handled) < 0
                                      : ll_add(rs, base_paths[i], access, handled) < 0)
            st = ODK_E_IO;
    }
    /* Write too: the runtime names its queue threads (task/TID/comm). */
    if (st == ODK_OK && ll_add(rs, what = self, LL_READ | LANDLOCK_ACCESS_FS_WRITE_FILE, handled) < 0)
        st = ODK_E_IO;
    if (st < 0) {
        int e = errno;
        close(rs);
        char why[512];
        snprintf(why, sizeof why, "landlock rule for %s", what);
        return fail(err, len, why, e);
    }
    odk_debug("sandbox: Landlock ABI %d", abi);
    *rs_out = rs;
    *handled_out = handled;
    return ODK_OK;
}

/* The spare's base_ruleset, for the process that built it (/proc/PID). */
static int prepared_ruleset = -1;
static uint64_t prepared_handled;
static pid_t prepared_ruleset_pid;

static void release_ruleset(void)
{
    if (prepared_ruleset >= 0)
        close(prepared_ruleset);
    prepared_ruleset = -1;
}

/* Builds the ruleset into *out (-1: no Landlock): base_ruleset's rules and
 * the bundle's.  Before the uid changes: the paths are opened now, while
 * every folder on the way (a state folder under a private /tmp, say) can
 * still be crossed. */
static int prepare_landlock(const odk_value *cfg, int *out, char *err, size_t len)
{
    *out = -1;
    int rs = -1;
    uint64_t handled = 0;
    if (prepared_ruleset >= 0 && prepared_ruleset_pid == getpid()) {
        rs = prepared_ruleset;
        handled = prepared_handled;
        prepared_ruleset = -1;
    } else {
        release_ruleset();
        int st = base_ruleset(&rs, &handled, err, len);
        if (st < 0)
            return st;
        if (rs < 0) {
            odk_warn("sandbox: this kernel has no Landlock (%m): the host's file access is "
                     "limited only by its uid");
            return ODK_OK;
        }
    }
    uint64_t ro = LL_READ | LANDLOCK_ACCESS_FS_EXECUTE;
    uint64_t rw = handled;
    int st = ODK_OK;
    const char *what = NULL;
    /* A network client resolves names: the resolver's configuration. */
    static const char *const resolver[] = {"/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf",
                                           "/etc/host.conf", "/etc/gai.conf", "/etc/services"};
    bool network = odk_dict_get_bool(cfg, "network", false);
    for (size_t i = 0; network && st == ODK_OK && i < sizeof resolver / sizeof resolver[0]; i++)
        if (ll_add(rs, what = resolver[i], LL_READ, handled) < 0)
            st = ODK_E_IO;
    const char *bundle = odk_dict_get_string(cfg, "bundle_dir", NULL);
    if (st == ODK_OK && bundle && ll_add(rs, what = bundle, ro, handled) < 0)
        st = ODK_E_IO;
    const odk_value *more = odk_dict_get(cfg, "read_dirs");
    for (size_t i = 0; st == ODK_OK && i < odk_array_count(more); i++) {
        const char *dir = odk_value_string(odk_array_get(more, i));
        if (dir && ll_add(rs, what = dir, ro, handled) < 0)
            st = ODK_E_IO;
    }
    const char *run = odk_dict_get_string(cfg, "runtime_dir", NULL);
    if (st == ODK_OK && run && ll_add(rs, what = run, rw, handled) < 0)
        st = ODK_E_IO;
    if (st < 0) {
        int e = errno;
        close(rs);
        char why[512];
        snprintf(why, sizeof why, "landlock rule for %s", what);
        return fail(err, len, why, e);
    }
    *out = rs;
    return ODK_OK;
}

/* After no-new-privs, which Landlock requires of an unprivileged process. */
static int restrict_landlock(int rs, char *err, size_t len)
{
    if (rs < 0)
        return ODK_OK;
    int r = (int)syscall(SYS_landlock_restrict_self, rs, 0);
    int e = errno;
    close(rs);
    return r < 0 ? fail(err, len, "landlock_restrict_self", e) : ODK_OK;
}

/* ---- seccomp ------------------------------------------------------------ */

/* What the runtime, the families and glibc call (with the sanitizers'
 * extras).  Anything else traps (on_sigsys) and kills the host. */
static const int allowed[] = {
    /* files and descriptors (Landlock decides which paths) */
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64),
    SCMP_SYS(pwrite64), SCMP_SYS(preadv), SCMP_SYS(pwritev), SCMP_SYS(preadv2),
    SCMP_SYS(pwritev2), SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(openat2), SCMP_SYS(close),
    SCMP_SYS(close_range), SCMP_SYS(dup), SCMP_SYS(dup2), SCMP_SYS(dup3), SCMP_SYS(fcntl),
    SCMP_SYS(fstat), SCMP_SYS(stat), SCMP_SYS(lstat), SCMP_SYS(newfstatat), SCMP_SYS(statx),
    SCMP_SYS(statfs), SCMP_SYS(fstatfs), SCMP_SYS(lseek), SCMP_SYS(access), SCMP_SYS(faccessat),
    SCMP_SYS(faccessat2), SCMP_SYS(readlink), SCMP_SYS(readlinkat), SCMP_SYS(getdents64),
    SCMP_SYS(getcwd), SCMP_SYS(chdir), SCMP_SYS(fchdir), SCMP_SYS(mkdir), SCMP_SYS(mkdirat),
    SCMP_SYS(unlink), SCMP_SYS(unlinkat), SCMP_SYS(rename), SCMP_SYS(renameat),
    SCMP_SYS(renameat2), SCMP_SYS(rmdir), SCMP_SYS(fchmod), SCMP_SYS(utimensat), SCMP_SYS(umask),
    SCMP_SYS(flock), SCMP_SYS(ftruncate), SCMP_SYS(fallocate), SCMP_SYS(fsync),
    SCMP_SYS(fdatasync), SCMP_SYS(sync_file_range), SCMP_SYS(fadvise64), SCMP_SYS(ioctl),
    SCMP_SYS(pipe), SCMP_SYS(pipe2), SCMP_SYS(splice), SCMP_SYS(tee), SCMP_SYS(vmsplice),
    SCMP_SYS(sendfile), SCMP_SYS(copy_file_range), SCMP_SYS(memfd_create),
    /* memory */
    SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(mremap), SCMP_SYS(madvise),
    SCMP_SYS(brk), SCMP_SYS(msync), SCMP_SYS(mincore), SCMP_SYS(mlock), SCMP_SYS(mlock2),
    SCMP_SYS(munlock), SCMP_SYS(membarrier),
    /* threads, time, waiting */
    SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(get_robust_list), SCMP_SYS(rseq),
    SCMP_SYS(set_tid_address), SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(sched_yield),
    SCMP_SYS(sched_getaffinity), SCMP_SYS(sched_setaffinity), SCMP_SYS(sched_getparam),
    SCMP_SYS(sched_getscheduler), SCMP_SYS(sched_get_priority_min),
    SCMP_SYS(sched_get_priority_max), SCMP_SYS(getcpu), SCMP_SYS(nanosleep),
    SCMP_SYS(clock_nanosleep), SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),
    SCMP_SYS(gettimeofday), SCMP_SYS(time), SCMP_SYS(getitimer), SCMP_SYS(setitimer),
    SCMP_SYS(alarm), SCMP_SYS(pause), SCMP_SYS(restart_syscall), SCMP_SYS(wait4),
    SCMP_SYS(waitid), SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(select), SCMP_SYS(pselect6),
    SCMP_SYS(epoll_create), SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_pwait2), SCMP_SYS(eventfd), SCMP_SYS(eventfd2),
    SCMP_SYS(timerfd_create), SCMP_SYS(timerfd_settime), SCMP_SYS(timerfd_gettime),
    SCMP_SYS(signalfd), SCMP_SYS(signalfd4),
    /* signals (rt_sigaction: see the SIGSYS rule below) */
    SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigtimedwait),
    SCMP_SYS(rt_sigsuspend), SCMP_SYS(rt_sigpending), SCMP_SYS(sigaltstack),
    /* identity and limits, read only */
    SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getppid), SCMP_SYS(getpgrp), SCMP_SYS(getpgid),
    SCMP_SYS(getsid), SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
    SCMP_SYS(getresuid), SCMP_SYS(getresgid), SCMP_SYS(getgroups), SCMP_SYS(uname),
    SCMP_SYS(sysinfo), SCMP_SYS(getrlimit), SCMP_SYS(getrusage), SCMP_SYS(times),
    SCMP_SYS(getrandom), SCMP_SYS(prctl), SCMP_SYS(arch_prctl), SCMP_SYS(capget),
    SCMP_SYS(getpriority),
    /* sockets: the channels odkd hands over, AF_UNIX pairs (socket: below) */
    SCMP_SYS(connect), SCMP_SYS(bind), SCMP_SYS(listen), SCMP_SYS(accept), SCMP_SYS(accept4),
    SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(setsockopt), SCMP_SYS(getsockopt),
    SCMP_SYS(sendto), SCMP_SYS(recvfrom), SCMP_SYS(sendmsg), SCMP_SYS(recvmsg),
    SCMP_SYS(sendmmsg), SCMP_SYS(recvmmsg), SCMP_SYS(shutdown),
};

/* Refused with EPERM: the driver sees an error and keeps running.  These
 * are calls a library may try and fall back from (a sanitizer's symboliser
 * runs a program; libfuse mounts when it has no descriptor), and calls
 * whose refusal an unprivileged process would get anyway. */
static const int refused[] = {
    SCMP_SYS(execve),   SCMP_SYS(execveat), SCMP_SYS(mount),     SCMP_SYS(umount2),
    SCMP_SYS(fsopen),   SCMP_SYS(fsmount),  SCMP_SYS(move_mount), SCMP_SYS(open_tree),
    SCMP_SYS(fsconfig), SCMP_SYS(fspick),   SCMP_SYS(pivot_root), SCMP_SYS(chroot),
    SCMP_SYS(setuid),   SCMP_SYS(setgid),   SCMP_SYS(setreuid),  SCMP_SYS(setregid),
    SCMP_SYS(setresuid), SCMP_SYS(setresgid), SCMP_SYS(setfsuid), SCMP_SYS(setfsgid),
    SCMP_SYS(setgroups), SCMP_SYS(capset),  SCMP_SYS(unshare),   SCMP_SYS(setns),
    SCMP_SYS(chown),    SCMP_SYS(fchown),   SCMP_SYS(lchown),    SCMP_SYS(fchownat),
    SCMP_SYS(mknod),    SCMP_SYS(mknodat),  SCMP_SYS(setpriority), SCMP_SYS(setrlimit),
    SCMP_SYS(io_uring_setup),
};

/* Namespaces and tracing flags a clone may not ask for. */
#define CLONE_REFUSED                                                                              \
    (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |   \
     CLONE_NEWCGROUP | CLONE_PTRACE | CLONE_UNTRACED)

/* SCMP_A0 and friends leave a field to the compiler, which clang warns of. */
static struct scmp_arg_cmp arg(unsigned n, enum scmp_compare op, scmp_datum_t a, scmp_datum_t b)
{
    return (struct scmp_arg_cmp){.arg = n, .op = op, .datum_a = a, .datum_b = b};
}

static int build_filter(scmp_filter_ctx f, bool network, pid_t me)
{
    int r = 0;
    for (size_t i = 0; r == 0 && i < sizeof allowed / sizeof allowed[0]; i++)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, allowed[i], 0);
    for (size_t i = 0; r == 0 && i < sizeof refused / sizeof refused[0]; i++)
        r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), refused[i], 0);
    /* Threads (and a fork) but no new namespaces; clone3's flags sit in
     * memory a filter cannot read, so glibc is told it does not exist and
     * falls back to clone. */
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                             arg(0, SCMP_CMP_MASKED_EQ, CLONE_REFUSED, 0));
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    /* Signals to itself only (the watchdog aborts a stuck queue thread). */
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                             arg(0, SCMP_CMP_EQ, (scmp_datum_t)me, 0));
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
                             arg(0, SCMP_CMP_EQ, (scmp_datum_t)me, 0));
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(tkill), 0);
    /* prlimit64 reads its own limits (glibc's getrlimit); setting one is
     * refused like setrlimit. */
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 2, arg(0, SCMP_CMP_EQ, 0, 0),
                             arg(2, SCMP_CMP_EQ, 0, 0));
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(prlimit64), 1,
                             arg(2, SCMP_CMP_NE, 0, 0));
    /* The SIGSYS handler stays: replacing it kills (on_sigsys relies on
     * this to die by SIGSYS). */
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), 1,
                             arg(0, SCMP_CMP_NE, SIGSYS, 0));
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_KILL_PROCESS, SCMP_SYS(rt_sigaction), 1,
                             arg(0, SCMP_CMP_EQ, SIGSYS, 0));
    /* Sockets: AF_UNIX always; IPv4 and IPv6 with network-client; netlink
     * and packet sockets never (EPERM: libraries probe for them). */
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                             arg(0, SCMP_CMP_EQ, AF_UNIX, 0));
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
                             arg(0, SCMP_CMP_EQ, AF_UNIX, 0));
    static const int inet[] = {AF_INET, AF_INET6};
    for (size_t i = 0; r == 0 && i < 2; i++)
        r = seccomp_rule_add(f, network ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket),
                             1, arg(0, SCMP_CMP_EQ, (scmp_datum_t)inet[i], 0));
    static const int never[] = {AF_NETLINK, AF_PACKET};
    for (size_t i = 0; r == 0 && i < 2; i++)
        r = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                             arg(0, SCMP_CMP_EQ, (scmp_datum_t)never[i], 0));
    return r;
}

/* Filters compiled ahead (sandbox_prepare) into the BPF programs the
 * kernel takes, one without and one with the network, for the process
 * that built them (the filter names its pid).  libseccomp generates the
 * program in seccomp_load, which costs milliseconds: the spare host does
 * that before a driver waits, and the start only hands the program over. */
static struct sock_fprog prepared[2];
static pid_t prepared_pid;

/* Once per process image (a zygote's children inherit the names): the
 * numbers libseccomp does not know stay NULL, and looking each up again
 * (a linear search of its table) cost the start 0.05-0.1 ms. */
static bool names_resolved;

static void resolve_names(void)
{
    if (names_resolved)
        return;
    for (int nr = 0; nr < NAMED_SYSCALLS; nr++)
        if (!syscall_names[nr])
            syscall_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    names_resolved = true;
}

static scmp_filter_ctx new_filter(bool network, pid_t pid)
{
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_TRAP);
    if (f &&
        (build_filter(f, network, pid) < 0 || seccomp_attr_set(f, SCMP_FLTATR_CTL_TSYNC, 1) < 0 ||
         seccomp_attr_set(f, SCMP_FLTATR_CTL_OPTIMIZE, 2) < 0)) {
        seccomp_release(f);
        f = NULL;
    }
    return f;
}

/* The program of new_filter(network, pid), as seccomp_load would load it.
 * 0 or a negative errno. */
static int compile_filter(bool network, pid_t pid, struct sock_fprog *out)
{
    scmp_filter_ctx f = new_filter(network, pid);
    if (!f)
        return -ENOMEM;
    int fd = memfd_create("odk-seccomp", MFD_CLOEXEC);
    int r = fd < 0 ? -errno : seccomp_export_bpf(f, fd);
    seccomp_release(f);
    off_t n = r == 0 ? lseek(fd, 0, SEEK_END) : 0;
    struct sock_filter *insns = NULL;
    if (r == 0 && (n <= 0 || n % (off_t)sizeof *insns || n / (off_t)sizeof *insns > BPF_MAXINSNS))
        r = -EINVAL;
    if (r == 0 && !(insns = malloc((size_t)n)))
        r = -ENOMEM;
    if (r == 0 && pread(fd, insns, (size_t)n, 0) != (ssize_t)n)
        r = -EIO;
    if (fd >= 0)
        close(fd);
    if (r < 0) {
        free(insns);
        return r;
    }
    *out = (struct sock_fprog){.len = (unsigned short)(n / (off_t)sizeof *insns), .filter = insns};
    return 0;
}

/* ---- programs compiled once for every host (odkd's sandbox_programs) ----
 *
 * libseccomp takes milliseconds of CPU to generate a program, for every
 * host.  The programs differ between hosts only in the host's pid (the
 * kill and tgkill rules), so odkd has them generated once, at its start,
 * by "odk-driver-host --seccomp-programs", with two impossible pids: the
 * instructions where the two differ are where a host writes its own pid.
 * Layout (native endianness): struct programs_head, then for each of the
 * two programs (without, with the network) its patch positions (uint32)
 * and its instructions. */
#define PROGRAMS_MAGIC "ODKSECC1"
#define PID_A 0x3fff0a01u /* beyond PID_MAX_LIMIT (2^22): no process has it */
#define PID_B 0x3fff0b02u

struct programs_head {
    char magic[8];
    uint32_t n_patch[2], len[2];
};

static bool patchable(const struct sock_filter *a, const struct sock_filter *b)
{
    return a->code == (BPF_JMP | BPF_JEQ | BPF_K) && a->code == b->code && a->jt == b->jt &&
           a->jf == b->jf && a->k == PID_A && b->k == PID_B;
}

int sandbox_write_programs(int fd)
{
    struct sock_fprog a[2] = {{0}}, b[2] = {{0}};
    uint32_t *where[2] = {NULL, NULL};
    struct programs_head head = {.magic = PROGRAMS_MAGIC};
    int r = 0;
    for (int net = 0; r == 0 && net < 2; net++) {
        r = compile_filter(net, (pid_t)PID_A, &a[net]);
        if (r == 0)
            r = compile_filter(net, (pid_t)PID_B, &b[net]);
        if (r == 0 && (a[net].len != b[net].len || !(where[net] = calloc(a[net].len, 4))))
            r = -EINVAL;
        for (unsigned i = 0; r == 0 && i < a[net].len; i++) {
            if (memcmp(&a[net].filter[i], &b[net].filter[i], sizeof a[net].filter[i]) == 0)
                continue;
            if (!patchable(&a[net].filter[i], &b[net].filter[i]))
                r = -EINVAL; /* differs other than in the pid: not ours to patch */
            else
                where[net][head.n_patch[net]++] = i;
        }
        head.len[net] = a[net].len;
        if (r == 0 && head.n_patch[net] == 0)
            r = -EINVAL;
    }
    if (r == 0 && write(fd, &head, sizeof head) != (ssize_t)sizeof head)
        r = -EIO;
    for (int net = 0; r == 0 && net < 2; net++) {
        size_t np = head.n_patch[net] * 4u, ni = a[net].len * sizeof *a[net].filter;
        if (write(fd, where[net], np) != (ssize_t)np || write(fd, a[net].filter, ni) != (ssize_t)ni)
            r = -EIO;
    }
    for (int net = 0; net < 2; net++) {
        free(a[net].filter);
        free(b[net].filter);
        free(where[net]);
    }
    return r;
}

/* The bytes of odkd's programs (sandbox_prepare_shared), kept for the
 * process that read them and, in a zygote, for each child it forks. */
static unsigned char *programs_raw;
static size_t programs_raw_len;

/* Reads odkd's descriptor into programs_raw (left NULL when it cannot). */
static void load_programs(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(struct programs_head) ||
        st.st_size > (1 << 20))
        return;
    unsigned char *buf = malloc((size_t)st.st_size);
    if (!buf || pread(fd, buf, (size_t)st.st_size, 0) != (ssize_t)st.st_size) {
        free(buf);
        return;
    }
    programs_raw = buf;
    programs_raw_len = (size_t)st.st_size;
}

/* Takes the programs of programs_raw into prepared[], with this host's
 * pid written in; leaves prepared[] empty (the host compiles its own)
 * when anything is off. */
static void read_programs(pid_t me)
{
    const unsigned char *buf = programs_raw;
    if (!buf)
        return;
    struct programs_head head;
    memcpy(&head, buf, sizeof head);
    size_t off = sizeof head, end = programs_raw_len;
    bool ok = memcmp(head.magic, PROGRAMS_MAGIC, sizeof head.magic) == 0;
    for (int net = 0; ok && net < 2; net++) {
        size_t np = head.n_patch[net], ni = head.len[net];
        ok = ni > 0 && ni <= BPF_MAXINSNS && np <= ni && off + np * 4 + ni * 8 <= end;
        struct sock_filter *insns = ok ? malloc(ni * sizeof *insns) : NULL;
        ok = ok && insns;
        if (ok)
            memcpy(insns, buf + off + np * 4, ni * sizeof *insns);
        for (size_t i = 0; ok && i < np; i++) {
            uint32_t at;
            memcpy(&at, buf + off + i * 4, 4);
            ok = at < ni && insns[at].code == (BPF_JMP | BPF_JEQ | BPF_K) && insns[at].k == PID_A;
            if (ok)
                insns[at].k = (uint32_t)me;
        }
        if (ok)
            prepared[net] = (struct sock_fprog){.len = (unsigned short)ni, .filter = insns};
        else
            free(insns);
        off += np * 4 + ni * sizeof(struct sock_filter);
    }
    if (!ok)
        for (int net = 0; net < 2; net++) {
            free(prepared[net].filter);
            prepared[net] = (struct sock_fprog){0};
        }
}

static void release_prepared(void)
{
    for (int net = 0; net < 2; net++) {
        free(prepared[net].filter);
        prepared[net] = (struct sock_fprog){0};
    }
}

void sandbox_prepare_shared(int empty_netns_fd, int programs_fd, bool will_sandbox)
{
    join_empty_netns(empty_netns_fd);
    resolve_names();
    char ignored[256];
    if (will_sandbox && drop_bounding_set(ignored, sizeof ignored) == ODK_OK)
        bounding_set_dropped = true; /* else sandbox_apply tries, and says why */
    if (programs_fd >= 0) {
        load_programs(programs_fd);
        close(programs_fd);
    }
    if (will_sandbox && landlock_abi() >= 0)
        open_base_paths();
}

void sandbox_prepare_own(void)
{
    release_ruleset();
    release_prepared();
    prepared_pid = getpid();
    char ignored[256];
    if (base_ruleset(&prepared_ruleset, &prepared_handled, ignored, sizeof ignored) < 0)
        prepared_ruleset = -1; /* the start builds it, and says what fails */
    prepared_ruleset_pid = prepared_pid;
    close_base_paths(); /* a start that builds the ruleset again opens the paths */
    if (programs_raw) {
        read_programs(prepared_pid);
        if (!prepared[0].filter)
            odk_warn("sandbox: odkd's seccomp programs are unusable; this host generates its own");
    }
    for (int net = 0; net < 2; net++)
        if (!prepared[net].filter && compile_filter(net, prepared_pid, &prepared[net]) < 0)
            prepared[net] = (struct sock_fprog){0};
}

void sandbox_prepare(int empty_netns_fd, int programs_fd, bool will_sandbox)
{
    sandbox_prepare_shared(empty_netns_fd, programs_fd, will_sandbox);
    sandbox_prepare_own();
}

/* After no-new-privs (which lets an unprivileged process load a filter). */
static int apply_seccomp(bool network, char *err, size_t len)
{
    resolve_names();
    struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) < 0)
        return fail(err, len, "sigaction(SIGSYS)", errno);
    struct sock_fprog prog = {0};
    if (prepared_pid == getpid() && prepared[network].filter) {
        prog = prepared[network];
        prepared[network] = (struct sock_fprog){0};
    } else {
        int r = compile_filter(network, getpid(), &prog);
        if (r < 0)
            return fail(err, len, "building the seccomp filter", -r);
    }
    release_prepared();
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
    int e = errno;
    free(prog.filter);
    if (r != 0)
        /* TSYNC: a positive return names a thread that could not follow. */
        return r < 0 ? fail(err, len, "seccomp(SECCOMP_SET_MODE_FILTER)", e)
                     : fail(err, len, "seccomp: another thread cannot be synchronised", EBUSY);
    return ODK_OK;
}

/* Landlock binds only the calling thread: there must be no other yet.
 * num_threads of /proc/self/stat (proc(5), the 20th field; the 2nd, the
 * name in parentheses, may hold spaces and parentheses: counted from the
 * last ')').  Listing /proc/self/task took five system calls and made a
 * /proc dentry per thread, which odkd's reap of the host invalidates
 * (docs/testing.md, "odkd spun in wait4"). */
static bool single_threaded(void)
{
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    /* After the name: state (3rd) ... num_threads (20th), 18 fields on. */
    for (int field = 3; p && field <= 20; field++)
        p = strchr(p + 1, ' ');
    return p && strtol(p + 1, NULL, 10) == 1;
}

int sandbox_apply(const odk_value *cfg, char *err, size_t err_len)
{
    if (!odk_dict_get_bool(cfg, "enabled", false)) {
        release_prepared();
        release_ruleset();
        if (leave_empty_netns(err, err_len) < 0)
            return ODK_E_IO;
        odk_warn("SANDBOX OFF: this driver host runs unconfined, with odkd's uid, capabilities "
                 "and network (odkd --no-sandbox)");
        return ODK_OK;
    }
    if (!single_threaded()) {
        snprintf(err, err_len, "the host already runs threads; the sandbox would not bind them");
        return ODK_E_STATE;
    }
    /* Each step's time, for the debug line (docs/trust.md, "What it costs"). */
    double ms[5];
    int step = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
#define STEP_DONE()                                                                                \
    do {                                                                                           \
        clock_gettime(CLOCK_MONOTONIC, &t1);                                                       \
        ms[step++] =                                                                               \
            (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;       \
        t0 = t1;                                                                                   \
    } while (0)
    bool network = odk_dict_get_bool(cfg, "network", false);
    int st = network ? leave_empty_netns(err, err_len) : enter_empty_netns(err, err_len);
    const char *run = odk_dict_get_string(cfg, "runtime_dir", NULL);
    if (st == ODK_OK && run && chdir(run) < 0)
        st = fail(err, err_len, run, errno);
    STEP_DONE();
    int ruleset = -1;
    if (st == ODK_OK)
        st = prepare_landlock(cfg, &ruleset, err, err_len);
    STEP_DONE();
    if (st == ODK_OK)
        st = drop_bounding_set(err, err_len);
    bool ids = odk_dict_get(cfg, "uid") != NULL;
    if (st == ODK_OK && ids)
        st = become((uid_t)odk_dict_get_int(cfg, "uid", 0), (gid_t)odk_dict_get_int(cfg, "gid", 0),
                    err, err_len);
    if (st == ODK_OK)
        st = drop_capabilities(err, err_len);
    if (st == ODK_OK && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        st = fail(err, err_len, "PR_SET_NO_NEW_PRIVS", errno);
    STEP_DONE();
    if (st == ODK_OK)
        st = restrict_landlock(ruleset, err, err_len);
    else if (ruleset >= 0)
        close(ruleset);
    if (st == ODK_OK)
        NOTE_SANDBOXED();
    STEP_DONE();
    if (st == ODK_OK)
        st = apply_seccomp(network, err, err_len);
    STEP_DONE();
#undef STEP_DONE
    if (st == ODK_OK)
        odk_debug("sandbox on: uid %d, %s (%.2f ms: netns %.2f, landlock rules %.2f, ids and "
                  "capabilities %.2f, landlock %.2f, seccomp %.2f)",
                  (int)getuid(), network ? "network-client" : "no network",
                  ms[0] + ms[1] + ms[2] + ms[3] + ms[4], ms[0], ms[1], ms[2], ms[3], ms[4]);
    return st;
}
