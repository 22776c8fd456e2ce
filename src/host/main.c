/* SPDX-License-Identifier: MIT */
/* odk-driver-host: one process per matched driver instance.
 *
 * Everything it needs arrives from odkd over fd 3 (a SOCK_SEQPACKET
 * channel): the start message with the personality and provider, the
 * driver's shared object as a file descriptor, and later one channel per
 * app that opens a user client.  The main thread only reads that channel;
 * driver code runs on the driver's queues.
 */
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <stdatomic.h>
#include <time.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/log_writer.h"
#include "common/trace.h"
#include "common/wire.h"
#include "host/sandbox.h"
#include "host/zygote.h"
#include "odk/driver.h"
#include "runtime/driver_internal.h"
#include "runtime/host_link.h"
#include "runtime/runtime_internal.h"

#define CONTROL_FD 3

/* Requests from driver queues to odkd wait here for their replies, which
 * the main thread reads. */
struct pending {
    uint32_t seq;
    bool done;
    int status;
    odk_value *reply;
    int fds[WIRE_MAX_FDS];
    size_t n_fds;
    struct pending *next;
};

struct host {
    int ctl;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t next_seq;
    struct pending *pending;
    bool odkd_gone;
    odk_driver *drv;
    uint32_t start_seq;
    bool stopping, stopped;
    /* Watchdog of the default queue (OdkDeadlines.call), run by the main
     * thread (watchdog_tick). */
    uint64_t call_deadline_ms, watch_step_ms, watch_next_ms, beat_posted_ms;
    uint64_t watch_last_ms; /* the last tick: a long gap means the host was stopped */
    _Atomic uint64_t beat_sent, beat_seen;
    _Atomic bool started;
    /* The default queue is in set_power_state, or in stop: odkd times
     * those itself (OdkDeadlines.power, .stop), so the watchdog stands
     * aside. */
    _Atomic bool in_power, in_stop;
    /* A spare primed for a bundle (op_prime): its sandbox applied and its
     * shared object loaded for the start that names the same bundle,
     * executable and sandbox (load_driver refuses any other). */
    bool primed, prime_failed;
    char *primed_bundle, *primed_exe;
    odk_value *primed_sandbox;
};

/* ---- crashes: a backtrace of the faulting thread, into the log --------- */

static void on_fatal_signal(int sig)
{
    /* The lines still waiting for the log pipe first (the driver's last
     * words, the watchdog's), then the backtrace.  backtrace() was called
     * once at start-up, so it does not allocate here; write() is
     * async-signal-safe. */
    log_writer_flush_fatal();
    static const char head[] = "error odk-driver-host: fatal signal; backtrace:\n";
    if (write(2, head, sizeof head - 1) < 0) {
        /* nothing more we can do */
    }
    void *frames[64];
    int n = backtrace(frames, 64);
    backtrace_symbols_fd(frames, n, 2);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_crash_handlers(void)
{
    void *warm[1];
    backtrace(warm, 1); /* loads libgcc now, not inside the handler */
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    struct sigaction sa = {.sa_handler = on_fatal_signal, .sa_flags = SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
}

/* ---- the watchdog ------------------------------------------------------ */

/* A gap between watchdog ticks this much longer than two steps means the
 * host was stopped, not slow (watchdog_tick). */
#define WATCHDOG_STOPPED_MS 500

static void heartbeat(void *ctx)
{
    struct host *h = ctx;
    atomic_store(&h->beat_seen, atomic_load(&h->beat_sent));
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The main thread's reads of odkd's channel time out every quarter call
 * deadline (watchdog_arm), and after each read, a message or a timeout,
 * it runs this: every quarter deadline a heartbeat is posted to the
 * default queue; if one is not taken within the deadline, the queue is
 * stuck in driver code (a hung or spinning call): say so and abort, which
 * odkd reports as a crash and answers every waiting app with ODK_E_GONE.
 * (It ran on a thread of its own, one more per host for every plug.) */
static void watchdog_tick(struct host *h)
{
    uint64_t now = now_ms();
    if (!h->call_deadline_ms || now < h->watch_next_ms)
        return;
    h->watch_next_ms = now + h->watch_step_ms;
    /* The whole host was stopped (a debugger at a breakpoint: every thread
     * stops, this one too; SIGSTOP): its time off does not count against
     * the call, which gets its deadline again from now.  A stuck driver
     * thread never holds this one up, so it cannot hide behind this. */
    uint64_t gap = h->watch_last_ms ? now - h->watch_last_ms : 0;
    h->watch_last_ms = now;
    if (gap > 2 * h->watch_step_ms + WATCHDOG_STOPPED_MS) {
        if (h->beat_posted_ms)
            odk_info("this host was stopped for %llu ms (a debugger?): the call deadline "
                     "starts again",
                     (unsigned long long)gap);
        if (h->beat_posted_ms)
            h->beat_posted_ms = now;
        return;
    }
    /* Stop and power changes have deadlines of their own, which odkd
     * enforces; the call deadline must not cut them short (with a call
     * deadline shorter than or equal to the power one, the host aborted
     * first and odkd saw a crash instead of a missed power deadline).
     * A call already stuck when the stop request arrives is still the
     * call's: the stop has not begun, and the call deadline ends it
     * (the stop deadline, longer, once let a spinning call burn a CPU
     * until odkd killed the host). */
    if (!atomic_load(&h->started) || atomic_load(&h->in_stop) || atomic_load(&h->in_power)) {
        h->beat_posted_ms = 0;
        return;
    }
    uint64_t sent = atomic_load(&h->beat_sent), seen = atomic_load(&h->beat_seen);
    if (seen == sent) {
        atomic_store(&h->beat_sent, sent + 1);
        h->beat_posted_ms = now;
        odk_queue_dispatch_async(odk_driver_queue(h->drv), heartbeat, h);
        return;
    }
    if (!h->beat_posted_ms) {
        h->beat_posted_ms = now; /* still out after a stop or power change: late from now */
        return;
    }
    if (now - h->beat_posted_ms >= h->call_deadline_ms) {
        odk_error("deadline missed: %s#%u (pid %d) operation call took more than %llu ms; "
                  "the driver's queue is stuck, aborting",
                  odk_driver_bundle_id(h->drv), odk_driver_instance(h->drv), (int)getpid(),
                  (unsigned long long)h->call_deadline_ms);
        /* Abort on the stuck thread itself, so the crash report's
         * backtrace shows where the driver is stuck; abort here only
         * if that thread cannot take the signal. */
        pthread_kill(queue_thread(odk_driver_queue(h->drv)), SIGABRT);
        struct timespec grace = {1, 0};
        nanosleep(&grace, NULL);
        abort();
    }
}

/* At the start (before the sandbox): odkd's channel is read with a
 * timeout of a quarter call deadline, so watchdog_tick runs that often
 * while odkd sends nothing.  No deadline, no timeout. */
static void watchdog_arm(struct host *h)
{
    if (!h->call_deadline_ms)
        return;
    h->watch_step_ms = h->call_deadline_ms / 4 ? h->call_deadline_ms / 4 : 1;
    struct timeval tv = {(time_t)(h->watch_step_ms / 1000),
                         (suseconds_t)(h->watch_step_ms % 1000) * 1000};
    if (setsockopt(h->ctl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
        odk_warn("cannot time reads of odkd's channel (%s): the call deadline is not watched",
                 strerror(errno));
        h->call_deadline_ms = 0;
    }
}

/* ARGS (a new dictionary when NULL) with "op" set to OP; NULL, and ARGS
 * freed, when memory runs out. */
static odk_value *with_op(odk_value *args, const char *op)
{
    if (!args)
        args = odk_value_new_dict();
    if (!args || odk_dict_set_string(args, "op", op) < 0) {
        odk_value_free(args);
        return NULL;
    }
    return args;
}

static int host_request(void *ctx, const char *op, odk_value *args, odk_value **reply, int *fds,
                        size_t *n_fds)
{
    struct host *h = ctx;
    if (!(args = with_op(args, op)))
        return ODK_E_NOMEM;
    struct pending p = {0};
    pthread_mutex_lock(&h->lock);
    if (h->odkd_gone) {
        pthread_mutex_unlock(&h->lock);
        odk_value_free(args);
        return ODK_E_DISCONNECTED;
    }
    p.seq = ++h->next_seq | 0x80000000u; /* high bit: requests from the host */
    p.next = h->pending;
    h->pending = &p;
    trace_mark("host request %s", op);
    int st = wire_send_value(h->ctl, WIRE_REQUEST, p.seq, 0, args, NULL, 0);
    odk_value_free(args);
    while (st == ODK_OK && !p.done && !h->odkd_gone)
        pthread_cond_wait(&h->cond, &h->lock);
    trace_mark("host request %s answered", op);
    for (struct pending **pp = &h->pending; *pp; pp = &(*pp)->next) {
        if (*pp == &p) {
            *pp = p.next;
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (st == ODK_OK)
        st = p.done ? p.status : ODK_E_DISCONNECTED;
    if (reply)
        *reply = p.reply;
    else
        odk_value_free(p.reply);
    size_t room = n_fds ? *n_fds : 0;
    for (size_t i = 0; i < p.n_fds; i++) {
        if (i < room && fds)
            fds[i] = p.fds[i];
        else
            close(p.fds[i]);
    }
    if (n_fds)
        *n_fds = p.n_fds < room ? p.n_fds : room;
    return st;
}

/* host_link_post: sent, not waited for; its reply finds no pending
 * request (complete_pending logs it when it is an error). */
static int host_post(void *ctx, const char *op, odk_value *args)
{
    struct host *h = ctx;
    if (!(args = with_op(args, op)))
        return ODK_E_NOMEM;
    pthread_mutex_lock(&h->lock);
    int st = ODK_E_DISCONNECTED;
    if (!h->odkd_gone) {
        uint32_t seq = ++h->next_seq | 0x80000000u;
        trace_mark("host request %s posted", op);
        st = wire_send_value(h->ctl, WIRE_REQUEST, seq, 0, args, NULL, 0);
    }
    pthread_mutex_unlock(&h->lock);
    odk_value_free(args);
    return st;
}

static void complete_pending(struct host *h, wire_msg *m)
{
    odk_value *v = NULL;
    if (wire_msg_value(m, &v) < 0)
        v = NULL;
    bool waited = false;
    pthread_mutex_lock(&h->lock);
    for (struct pending *p = h->pending; p; p = p->next) {
        if (p->seq == m->hdr.seq) {
            waited = true;
            p->done = true;
            p->status = m->hdr.status;
            p->reply = v;
            v = NULL;
            for (size_t i = 0; i < m->n_fds; i++) {
                int fd = wire_msg_take_fd(m, i);
                if (fd >= 0)
                    p->fds[p->n_fds++] = fd;
            }
            break;
        }
    }
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    /* Nobody waits for it: a posted request's (host_post). */
    if (!waited && m->hdr.status < 0)
        odk_error("odkd refused a request the driver did not wait for (register-service or "
                  "set-property in its start): %s (%s)",
                  odk_dict_get_string(v, "error", "no reason given"), odk_strerror(m->hdr.status));
    odk_value_free(v);
}

static void reply(struct host *h, uint32_t seq, int status)
{
    wire_send(h->ctl, WIRE_REPLY, seq, status, NULL, 0, NULL, 0);
}

static void start_done(void *ctx, int status)
{
    struct host *h = ctx;
    trace_mark("host start done %d", status);
    if (status < 0)
        odk_error("start failed: %s", odk_strerror(status));
    else
        odk_info("started");
    reply(h, h->start_seq, status);
    if (status < 0) {
        /* odkd marks the instance failed from the reply; leave only after
         * it could read it (it closes the channel). */
        return;
    }
    atomic_store(&h->started, true);
}

static int create_driver(struct host *h, wire_msg *m, const odk_value *args);
static void show_primed(const char *bundle);
static int primed_start(struct host *h, wire_msg *m, const odk_value *args);

static int load_driver(struct host *h, wire_msg *m, const odk_value *args)
{
    const char *bundle = odk_dict_get_string(args, "bundle", "?");
    uint32_t instance = (uint32_t)odk_dict_get_int(args, "instance", 0);
    char tag[256];
    snprintf(tag, sizeof tag, "%s#%u", bundle, instance);
    odk_log_set_tag(tag);

    h->call_deadline_ms = (uint64_t)odk_dict_get_int(args, "call_deadline_ms", 0);
    watchdog_arm(h);
    if (h->primed)
        return primed_start(h, m, args); /* refuses a start under --debug */
    if (odk_dict_get_bool(args, "debug", false)) {
        /* odkd --debug: stop before any driver code runs, so a debugger can
         * attach and set breakpoints in init and start. */
        odk_info("waiting for a debugger: gdb -p %d (then 'continue')", (int)getpid());
        raise(SIGSTOP);
    }
    int so_fd = wire_msg_take_fd(m, 0);
    if (so_fd < 0) {
        odk_error("start message carries no shared object");
        return ODK_E_PROTOCOL;
    }
    /* Before dlopen: the driver's constructors run inside the sandbox. */
    trace_mark("host start received");
    char why[512];
    int sst = sandbox_apply(odk_dict_get(args, "sandbox"), why, sizeof why);
    trace_mark("host sandbox applied");
    if (sst < 0) {
        odk_error("cannot start: the sandbox could not be applied: %s", why);
        close(so_fd);
        return sst;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", so_fd);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    close(so_fd);
    trace_mark("host dlopen done");
    if (!dl) {
        odk_error("cannot load %s: %s", odk_dict_get_string(args, "executable", "?"), dlerror());
        return ODK_E_LOAD;
    }
    return create_driver(h, m, args);
}

/* The start of a host primed for the bundle (op_prime): the sandbox and
 * the dlopen are done; a start for another bundle, executable or sandbox
 * is refused, never run in a sandbox made for another. */
static int primed_start(struct host *h, wire_msg *m, const odk_value *args)
{
    const char *bundle = odk_dict_get_string(args, "bundle", "?");
    const char *exe = odk_dict_get_string(args, "executable", "?");
    int so_fd = wire_msg_take_fd(m, 0);
    if (so_fd >= 0)
        close(so_fd); /* odkd sends none to a primed host; one is not needed */
    trace_mark("host start received (primed)");
    const char *what = strcmp(bundle, h->primed_bundle) != 0 ? "bundle"
                       : strcmp(exe, h->primed_exe) != 0     ? "executable"
                       : !odk_value_equal(odk_dict_get(args, "sandbox"), h->primed_sandbox)
                           ? "sandbox"
                       : odk_dict_get_bool(args, "debug", false) ? "debug flag"
                                                                 : NULL;
    if (what) {
        odk_error("refusing to start %s (%s): this host was primed for %s (%s), and the start's "
                  "%s differs",
                  bundle, exe, h->primed_bundle, h->primed_exe, what);
        return ODK_E_STATE;
    }
    show_primed(NULL);
    return create_driver(h, m, args);
}

/* After the sandbox and the dlopen: the class, the driver, its start. */
static int create_driver(struct host *h, wire_msg *m, const odk_value *args)
{
    const char *bundle = odk_dict_get_string(args, "bundle", "?");
    uint32_t instance = (uint32_t)odk_dict_get_int(args, "instance", 0);
    const char *cls_name = odk_dict_get_string(args, "class", "");
    const odk_driver_class *cls = odk_driver_class_find(cls_name);
    uint32_t version;
    size_t size;
    if (!cls && driver_class_refused(&version, &size)) {
        odk_error("cannot start class '%s': the driver was built for odk API version %u "
                  "(odk_driver_class of %zu bytes), this odk-driver-host implements API "
                  "version %u (%zu bytes); rebuild the driver against this odk",
                  cls_name, version, size, ODK_API_VERSION, sizeof(odk_driver_class));
        return ODK_E_LOAD;
    }
    if (!cls) {
        odk_error("the shared object declares no class named '%s' (IOUserClass)", cls_name);
        return ODK_E_LOAD;
    }
    const odk_value *pers = odk_dict_get(args, "personality");
    const odk_value *props = odk_dict_get(args, "provider_properties");
    driver_info info = {
        .bundle_id = bundle,
        .instance = instance,
        .personality = pers ? odk_value_copy(pers) : NULL,
        .provider_props = props ? odk_value_copy(props) : NULL,
        .provider_id = (uint64_t)odk_dict_get_int(args, "provider", 0),
        .service_id = (uint64_t)odk_dict_get_int(args, "node", 0),
    };
    int st = driver_create(cls, &info, &h->drv);
    trace_mark("host driver created");
    if (st < 0)
        return st;
    h->start_seq = m->hdr.seq;
    return driver_start_async(h->drv, start_done, h);
}

struct power_req {
    struct host *h;
    uint32_t seq, state;
};

static void run_power(void *arg)
{
    struct power_req *p = arg;
    const odk_driver_class *cls = p->h->drv->cls;
    atomic_store(&p->h->in_power, true);
    int st = cls->set_power_state ? cls->set_power_state(p->h->drv, p->state) : ODK_OK;
    atomic_store(&p->h->in_power, false);
    odk_info("power state %s%s", p->state == ODK_POWER_ON ? "on" : "off",
             st < 0 ? " failed" : "");
    reply(p->h, p->seq, st);
    free(p);
}

/* Runs the class's set_power_state on the default queue, which replies.
 * Errors (the caller replies): ODK_E_STATE (no driver, or its queue is
 * cancelled), ODK_E_INVALID (a state other than ODK_POWER_ON/OFF),
 * ODK_E_NOMEM. */
static int power_request(struct host *h, uint32_t seq, const odk_value *args)
{
    int64_t state = odk_dict_get_int(args, "state", ODK_POWER_ON);
    if (!h->drv)
        return ODK_E_STATE;
    if (state != ODK_POWER_ON && state != ODK_POWER_OFF)
        return ODK_E_INVALID;
    struct power_req *p = malloc(sizeof *p);
    if (!p)
        return ODK_E_NOMEM;
    *p = (struct power_req){h, seq, (uint32_t)state};
    if (odk_queue_dispatch_async(odk_driver_queue(h->drv), run_power, p) < 0) {
        free(p);
        return ODK_E_STATE;
    }
    return ODK_OK;
}

static void stop_begins(void *ctx)
{
    struct host *h = ctx;
    atomic_store(&h->in_stop, true);
}

static void stop_done(void *ctx)
{
    struct host *h = ctx;
    trace_mark("host stop done");
    odk_info("stopped");
    h->stopped = true;
    reply(h, h->start_seq, ODK_OK);
    /* The queue is still running this callback: leave through the main
     * thread, which sees odkd close the channel. */
}

/* ---- requests from odkd ------------------------------------------------ */

/* Each returns ODK_OK when it replied or will reply (or, for open-client,
 * when no reply is due); a negative status is sent back as the reply. */
static int op_start(struct host *h, wire_msg *m, const odk_value *args)
{
    /* On failure odkd marks the instance failed and closes the channel. */
    trace_mark("host start read");
    if (h->prime_failed) {
        odk_error("refusing a start: this host's prime failed (its sandbox or shared object is "
                  "not what a start expects)");
        return ODK_E_STATE;
    }
    return h->drv ? ODK_E_STATE : load_driver(h, m, args);
}

/* The channel to the app arrives as fds[0]; odkd expects no reply. */
static int op_open_client(struct host *h, wire_msg *m, const odk_value *args)
{
    int fd = wire_msg_take_fd(m, 0);
    trace_mark("host open-client");
    if (!h->drv || fd < 0) {
        if (fd >= 0)
            close(fd);
        return ODK_OK;
    }
    user_client_accept(h->drv, fd, (uint64_t)odk_dict_get_int(args, "node", 0),
                       (uint32_t)odk_dict_get_int(args, "type", 0),
                       (uint32_t)odk_dict_get_int(args, "uid", 0),
                       (int32_t)odk_dict_get_int(args, "pid", 0));
    return ODK_OK;
}

static int op_power(struct host *h, wire_msg *m, const odk_value *args)
{
    return power_request(h, m->hdr.seq, args);
}

static int op_stop(struct host *h, wire_msg *m, const odk_value *args)
{
    (void)args;
    if (!h->drv)
        reply(h, m->hdr.seq, ODK_OK);
    else if (h->stopping)
        return ODK_E_STATE;
    else {
        trace_mark("host stop received");
        h->stopping = true;
        h->start_seq = m->hdr.seq;
        /* The queue is serial: in_stop is set just as the stop begins. */
        odk_queue_dispatch_async(odk_driver_queue(h->drv), stop_begins, h);
        driver_stop_async(h->drv, stop_done, h);
    }
    return ODK_OK;
}

/* odkd's prime (daemon/bookkeeping/host.c, "primed hosts"): this spare is
 * readied for the next start of a bundle.  Its log tag and its name say
 * so, the start's sandbox is applied and the shared object (fds[0])
 * loaded, so the driver's constructors run now, sandboxed, as at a start;
 * then it waits.  The start that comes next skips both (primed_start).
 * Replies ODK_OK, or the failure with its reason in "error" (odkd then
 * ends this host and does not prime the bundle again). */
static int op_prime(struct host *h, wire_msg *m, const odk_value *args)
{
    const char *bundle = odk_dict_get_string(args, "bundle", NULL);
    const char *exe = odk_dict_get_string(args, "executable", NULL);
    const odk_value *sandbox = odk_dict_get(args, "sandbox");
    int so_fd = wire_msg_take_fd(m, 0);
    char why[1024] = "";
    int st = ODK_OK;
    if (h->drv || h->primed || h->prime_failed) {
        st = ODK_E_STATE;
        snprintf(why, sizeof why, "this host is not a spare any more");
    } else if (!bundle || !exe || so_fd < 0) {
        st = ODK_E_PROTOCOL;
        snprintf(why, sizeof why,
                 "a prime request names a bundle and an executable and carries "
                 "the shared object");
    } else {
        char tag[300];
        snprintf(tag, sizeof tag, "%s (primed)", bundle);
        odk_log_set_tag(tag);
        show_primed(bundle);
        trace_mark("host prime received");
        char sw[512];
        st = sandbox_apply(sandbox, sw, sizeof sw);
        trace_mark("host prime sandbox applied");
        if (st < 0)
            snprintf(why, sizeof why, "the sandbox could not be applied: %s", sw);
    }
    if (st == ODK_OK) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", so_fd);
        if (!dlopen(path, RTLD_NOW | RTLD_LOCAL)) {
            st = ODK_E_LOAD;
            snprintf(why, sizeof why, "cannot load %s: %s", exe, dlerror());
        }
        trace_mark("host prime dlopen done");
    }
    if (so_fd >= 0)
        close(so_fd);
    if (st == ODK_OK) {
        h->primed_bundle = strdup(bundle);
        h->primed_exe = strdup(exe);
        h->primed_sandbox = sandbox ? odk_value_copy(sandbox) : NULL;
        if (!h->primed_bundle || !h->primed_exe || (sandbox && !h->primed_sandbox)) {
            st = ODK_E_NOMEM;
            snprintf(why, sizeof why, "out of memory");
        }
    }
    h->primed = st == ODK_OK;
    h->prime_failed = st != ODK_OK && st != ODK_E_STATE;
    if (st < 0)
        odk_error("cannot be primed: %s", why);
    odk_value *body = odk_value_new_dict();
    if (body && why[0])
        odk_dict_set_string(body, "error", why);
    wire_send_value(h->ctl, WIRE_REPLY, m->hdr.seq, st, body, NULL, 0);
    odk_value_free(body);
    if (h->prime_failed) {
        /* Of no use now: its exit has odkd read the answer and say why at
         * once, not at the bundle's next launch. */
        log_writer_flush();
        _exit(1);
    }
    return ODK_OK;
}

/* odkctl install's check (daemon/bookkeeping/check.c): this host is a
 * throwaway one, started only to load the shared object the way a start
 * would (RTLD_NOW: an undefined symbol fails here, and dlerror names it)
 * and to look up each IOUserClass the personalities name.  No driver is
 * created; odkd kills the host after the reply. */
static int op_check(struct host *h, wire_msg *m, const odk_value *args)
{
    const char *exe = odk_dict_get_string(args, "executable", "?");
    const char *base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
    char why[1024] = "";
    int st = ODK_OK;
    odk_log_set_tag("odk-driver-host check");
    int so_fd = wire_msg_take_fd(m, 0);
    if (so_fd >= 0 && sandbox_apply(odk_dict_get(args, "sandbox"), why, sizeof why) < 0) {
        odk_value *body = odk_value_new_dict();
        char sentence[1100];
        snprintf(sentence, sizeof sentence, "the sandbox could not be applied: %s", why);
        if (body)
            odk_dict_set_string(body, "error", sentence);
        wire_send_value(h->ctl, WIRE_REPLY, m->hdr.seq, ODK_E_IO, body, NULL, 0);
        odk_value_free(body);
        close(so_fd);
        return ODK_OK;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", so_fd);
    void *dl = so_fd >= 0 ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
    if (so_fd >= 0)
        close(so_fd);
    if (so_fd < 0) {
        st = ODK_E_PROTOCOL;
        snprintf(why, sizeof why, "the check request carries no shared object");
    } else if (!dl) {
        /* "/proc/self/fd/5: undefined symbol: foo": name the file as the
         * developer knows it. */
        const char *err = dlerror();
        const char *rest = err && strncmp(err, path, strlen(path)) == 0 ? err + strlen(path) : NULL;
        st = ODK_E_LOAD;
        if (rest)
            snprintf(why, sizeof why, "cannot load %s%s", base, rest);
        else
            snprintf(why, sizeof why, "cannot load %s: %s", base, err ? err : "?");
    }
    const odk_value *classes = odk_dict_get(args, "classes");
    for (size_t i = 0; st == ODK_OK && i < odk_array_count(classes); i++) {
        const char *name = odk_value_string(odk_array_get(classes, i));
        if (!name || odk_driver_class_find(name))
            continue;
        uint32_t version;
        size_t size;
        st = ODK_E_LOAD;
        if (driver_class_refused(&version, &size))
            snprintf(why, sizeof why,
                     "%s was built for odk API version %u (odk_driver_class of %zu bytes); this "
                     "odk implements version %u (%zu bytes): rebuild it against this odk",
                     base, version, size, ODK_API_VERSION, sizeof(odk_driver_class));
        else
            snprintf(why, sizeof why,
                     "IOUserClass %s not found in %s: a personality names it, but the shared "
                     "object declares no class of that name (ODK_DRIVER_CLASS with .name = \"%s\")",
                     name, base, name);
    }
    odk_value *body = odk_value_new_dict();
    if (body && why[0])
        odk_dict_set_string(body, "error", why);
    wire_send_value(h->ctl, WIRE_REPLY, m->hdr.seq, st, body, NULL, 0);
    odk_value_free(body);
    return ODK_OK;
}

static const struct host_op {
    const char *name;
    int (*fn)(struct host *h, wire_msg *m, const odk_value *args);
} host_ops[] = {
    {"start", op_start},
    {"open-client", op_open_client},
    {"power", op_power},
    {"stop", op_stop},
    {"check", op_check},
    {"prime", op_prime},
};

static void handle_request(struct host *h, wire_msg *m)
{
    odk_value *args = NULL;
    if (wire_msg_value(m, &args) < 0) {
        reply(h, m->hdr.seq, ODK_E_PROTOCOL);
        return;
    }
    const char *name = odk_dict_get_string(args, "op", "");
    int st = ODK_E_UNSUPPORTED;
    for (size_t i = 0; i < sizeof host_ops / sizeof host_ops[0]; i++)
        if (strcmp(host_ops[i].name, name) == 0)
            st = host_ops[i].fn(h, m, args);
    if (st < 0)
        reply(h, m->hdr.seq, st);
    odk_value_free(args);
}

/* Where a forked host's command line has room after the program's path
 * (the zygote's options, blanked): "primed for BUNDLE" while primed. */
static char *cmdline_room;
static size_t cmdline_len;

/* A host forked by the zygote has the zygote's command line: blank its
 * options, so ps and /proc/PID/cmdline show a host, not a zygote. */
static void forget_zygote_args(int argc, char **argv)
{
    if (argc < 2)
        return;
    char *end = argv[argc - 1] + strlen(argv[argc - 1]);
    memset(argv[1], 0, (size_t)(end - argv[1]));
    cmdline_room = argv[1];
    cmdline_len = (size_t)(end - argv[1]);
}

/* A primed host shows as one (docs/architecture.md, "primed hosts"): its
 * name (comm, what ps and top list) is odk-primed and its command line
 * says "primed for BUNDLE" (cut to the room there is); its start gives
 * both back (bundle NULL). */
static void show_primed(const char *bundle)
{
    prctl(PR_SET_NAME, bundle ? "odk-primed" : "odk-driver-host", 0, 0, 0);
    if (!cmdline_room)
        return;
    memset(cmdline_room, 0, cmdline_len);
    if (bundle)
        snprintf(cmdline_room, cmdline_len, "primed for %s", bundle);
}

/* odkd's command lines (src/daemon/bookkeeping/host.c):
 *   odk-driver-host [--zygote] [--sandboxed] [--empty-netns N] [--seccomp-programs N]
 *     a host; fd N is odkd's empty network namespace, or the seccomp
 *     programs; --sandboxed: its start will apply the sandbox (sandbox.h);
 *     with --zygote, the zygote, which forks hosts (zygote.h)
 *   odk-driver-host --write-seccomp-programs
 *     writes the seccomp programs to stdout and exits (odkd's start) */
int main(int argc, char **argv)
{
    int empty_netns = -1, programs = -1;
    bool zygote = false, sandboxed = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--write-seccomp-programs") == 0)
            return sandbox_write_programs(1) < 0 ? 1 : 0;
        if (strcmp(argv[i], "--zygote") == 0)
            zygote = true;
        else if (strcmp(argv[i], "--sandboxed") == 0)
            sandboxed = true;
        else if (i + 1 < argc && strcmp(argv[i], "--empty-netns") == 0)
            empty_netns = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--seccomp-programs") == 0)
            programs = atoi(argv[++i]);
    }
    trace_open();
    trace_mark(zygote ? "zygote exec'd" : "host exec'd");
    signal(SIGPIPE, SIG_IGN);
    install_crash_handlers();
    odk_log_set_tag(zygote ? "odk-driver-host zygote" : "odk-driver-host");
    if (getenv("ODK_LOG_DEBUG"))
        odk_log_set_level(ODK_LOG_DEBUG);
    /* While no driver waits: the spare host, or the zygote for all the
     * hosts it forks (each then does what names it, its pid). */
    if (zygote) {
        sandbox_prepare_shared(empty_netns, programs, sandboxed);
        zygote_run(CONTROL_FD); /* returns in each host it forks */
        forget_zygote_args(argc, argv);
        odk_log_set_tag("odk-driver-host");
        trace_mark("host forked");
        sandbox_prepare_own();
        zygote_host_prepared(); /* before the log writer's thread */
    } else {
        sandbox_prepare(empty_netns, programs, sandboxed);
    }
    /* In the host itself (a forked host has its own log pipe on fd 2 by
     * now), before the sandbox: odk_log never blocks a driver's threads
     * on the log pipe. */
    log_writer_enable();
    struct host h = {.ctl = CONTROL_FD};
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    host_link_set(host_request, &h);
    host_link_set_post(host_post);
    trace_mark("host spare ready");

    wire_msg m;
    wire_msg_init(&m);
    for (;;) {
        int st = wire_recv(h.ctl, &m);
        watchdog_tick(&h);
        if (st == ODK_E_AGAIN)
            continue; /* the read timed out for the watchdog */
        if (st == ODK_E_PROTOCOL) {
            odk_warn("malformed message from odkd; ignored");
            continue;
        }
        if (st < 0)
            break;
        if (!h.drv)
            trace_mark("host woken");
        if (m.hdr.type == WIRE_REPLY)
            complete_pending(&h, &m);
        else if (m.hdr.type == WIRE_REQUEST)
            handle_request(&h, &m);
    }
    /* odkd closed the channel (after a stop, or because it went away). */
    trace_mark("host channel closed");
    pthread_mutex_lock(&h.lock);
    h.odkd_gone = true;
    pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.lock);
    wire_msg_release(&m);
    if (h.drv && !h.stopping)
        odk_warn("odkd went away; exiting");
    /* After a clean stop the queue is idle: cancel it and run the class's
     * free.  Otherwise (odkd gone, or a stop still running) do not wait on
     * a possibly hung queue; the kernel reclaims the rest. */
    if (h.drv && h.stopped)
        driver_destroy(h.drv);
    trace_mark("host exits");
    log_writer_flush();
    _exit(0);
}
