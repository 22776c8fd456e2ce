/* SPDX-License-Identifier: MIT */
/* Driver instances: the state machine of one odk-driver-host — start it,
 * stop it, notice when it dies and restart it with backoff.  Spawning is
 * host.c's, the log hostlog.c's; what a host asks for goes to
 * d->host_request and what happens to an instance goes up through
 * d->hooks. */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/trace.h"
#include "daemon/bookkeeping/catalog.h"
#include "daemon/bookkeeping/crash.h"
#include "daemon/bookkeeping/host.h"
#include "daemon/bookkeeping/instance.h"
#include "daemon/core/match.h"
#include "daemon/core/msg.h"
#include "daemon/odkd.h"
#include "odk/driver.h"
#include "odk/log.h"
#include "odk/status.h"

#define CRASH_LIMIT 5         /* crashes ... */
#define CRASH_WINDOW_MS 60000 /* ... within this window mark the instance failed */

struct tree_wait {
    uint64_t node_id;
    bool until_exit; /* instances that stopped but still exit keep it waiting */
    void (*done)(struct odkd *d, void *ctx);
    void *ctx;
    struct tree_wait *next;
};

#define HOOK(d, name, ...)                                                                         \
    do {                                                                                           \
        if ((d)->hooks && (d)->hooks->name)                                                        \
            (d)->hooks->name(d, __VA_ARGS__);                                                      \
    } while (0)

void instance_event(struct instance *in, odk_log_level level, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    odk_log(level, "%s", text);
    static const char *const names[] = {"error", "warn", "info", "debug"};
    hostlog_note(&in->log, (unsigned)level < 4 ? names[level] : "info", text);
}

const char *inst_state_name(inst_state s)
{
    static const char *const names[] = {"starting", "running", "stopping", "backoff", "failed"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

struct instance *instance_by_node(struct odkd *d, uint64_t node_id)
{
    reg_node *n = registry_find(d->reg, node_id);
    if (!n)
        return NULL;
    if (n->owner)
        return n->owner;
    struct instance *any = NULL;
    for (struct instance *in = d->instances; in; in = in->next) {
        if (in->provider_id != node_id || in->terminate)
            continue;
        if (strcmp(in->category, "IODefaultMatchCategory") == 0)
            return in;
        if (!any)
            any = in;
    }
    return any;
}

size_t instance_count_on(struct odkd *d, uint64_t node_id)
{
    size_t n = 0;
    for (struct instance *in = d->instances; in; in = in->next)
        n += in->provider_id == node_id && !in->terminate;
    return n;
}

odk_value *instance_describe(struct odkd *d, const struct instance *in)
{
    (void)d;
    struct msg m = msg_begin();
    msg_int(&m, "instance", in->id);
    msg_str(&m, "bundle", in->bundle->id);
    msg_str(&m, "version", in->bundle->version);
    msg_str(&m, "build", in->bundle->build);
    msg_str(&m, "personality", in->personality_name);
    msg_str(&m, "class", odk_dict_get_string(in->personality, "IOUserClass", "?"));
    msg_int(&m, "pid", in->pid);
    msg_str(&m, "state",
            in->debug && in->state == INST_STARTING ? "debug-wait" : inst_state_name(in->state));
    msg_int(&m, "rss_kib", (int64_t)instance_rss_kib(in));
    msg_int(&m, "restarts", in->restarts);
    msg_int(&m, "provider", (int64_t)in->provider_id);
    msg_int(&m, "node", (int64_t)in->node_id);
    msg_str(&m, "category", in->category);
    msg_str(&m, "reason", in->state == INST_BACKOFF || in->state == INST_FAILED ? in->reason : "");
    return msg_done(&m);
}

static uint64_t limit_ms(const odk_value *dl, const char *key, uint64_t dflt)
{
    int64_t v = odk_dict_get_int(dl, key, (int64_t)dflt);
    return v < 0 ? dflt : (uint64_t)v;
}

/* OdkDeadlines and OdkMemoryLimitMB from the personality. */
static void read_limits(struct instance *in)
{
    const odk_value *dl = odk_dict_get(in->personality, "OdkDeadlines");
    in->deadlines = (struct deadlines){
        .start_ms = limit_ms(dl, "start", DEFAULT_START_MS),
        .stop_ms = limit_ms(dl, "stop", DEFAULT_STOP_MS),
        .power_ms = limit_ms(dl, "power", DEFAULT_POWER_MS),
        .call_ms = limit_ms(dl, "call", DEFAULT_CALL_MS),
    };
    int64_t mb = odk_dict_get_int(in->personality, "OdkMemoryLimitMB", 0);
    in->memory_limit_kib = mb > 0 ? (uint64_t)mb * 1024 : 0;
}

uint64_t instance_rss_kib(const struct instance *in)
{
    if (in->pid <= 0)
        return 0;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)in->pid);
    FILE *f = fopen(path, "r");
    uint64_t kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lu kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

bool instance_stopped(const struct instance *in)
{
    if (in->pid <= 0)
        return false;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)in->pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    return paren && paren[1] == ' ' && (paren[2] == 'T' || paren[2] == 't');
}

uint32_t instance_request(struct instance *in, odk_value *args, const int *fds, size_t n_fds)
{
    if (!args)
        return 0;
    uint32_t seq = ++in->next_seq;
    int st = in->ctl_fd >= 0 ? wire_send_value(in->ctl_fd, WIRE_REQUEST, seq, 0, args, fds, n_fds)
                             : ODK_E_DISCONNECTED;
    odk_value_free(args);
    return st == ODK_OK ? seq : 0;
}

void instance_reply(struct instance *in, uint32_t seq, int status, odk_value *body, const int *fds,
                    size_t n_fds)
{
    if (in->ctl_fd >= 0)
        wire_send_value(in->ctl_fd, WIRE_REPLY, seq, status, body, fds, n_fds);
    odk_value_free(body);
}

static odk_value *op_args(const char *op)
{
    struct msg m = msg_begin();
    msg_str(&m, "op", op);
    return msg_done(&m);
}

void instance_kill(struct odkd *d, struct instance *in, const char *reason)
{
    (void)d;
    if (in->pid <= 0)
        return;
    if (!in->kill_reason)
        in->kill_reason = reason;
    kill(in->pid, SIGKILL);
}

/* ---- the control channel --------------------------------------------- */

static void check_tree_waits(struct odkd *d);

static void provider_state(struct odkd *d, struct instance *in, reg_state s)
{
    reg_node *p = registry_find(d->reg, in->provider_id);
    if (p && p->state != REG_TERMINATING)
        p->state = s;
}

static void close_channel(struct odkd *d, struct instance *in)
{
    loop_del(d, &in->ctl_watch);
    if (in->ctl_fd >= 0)
        close(in->ctl_fd);
    in->ctl_fd = -1;
}

static void start_reply(struct odkd *d, struct instance *in, int status)
{
    trace_mark("odkd start reply %d", status);
    host_spare_settled(d); /* a spare held back for this start */
    loop_timer_cancel(d, in->deadline_timer);
    in->deadline_timer = 0;
    if (status == ODK_OK) {
        in->state = INST_RUNNING;
        in->reason[0] = 0;
        provider_state(d, in, REG_STARTED);
        catalog_confirm(in->entry);
        instance_event(in, ODK_LOG_INFO, "%s#%u started (pid %d) on node %llu", in->bundle->id,
                       in->id, (int)in->pid, (unsigned long long)in->provider_id);
        HOOK(d, started, in);
        return;
    }
    instance_event(in, ODK_LOG_ERROR,
                   "%s#%u failed to start: %s; marking it failed (its log says why)",
                   in->bundle->id, in->id, odk_strerror(status));
    in->state = INST_FAILED;
    /* Refined from the host's own error line once it has exited. */
    snprintf(in->reason, sizeof in->reason, "start failed: %s", odk_strerror(status));
    close_channel(d, in); /* the host exits once it sees the channel close */
    HOOK(d, start_failed, in, odk_strerror(status));
}

/* One message from the host; false when the channel has nothing more. */
static bool ctl_one(struct odkd *d, struct instance *in)
{
    wire_msg m;
    wire_msg_init(&m);
    int st = wire_recv(in->ctl_fd, &m);
    bool more = true;
    if (st == ODK_E_PROTOCOL) {
        odk_warn("%s#%u sent a malformed control message", in->bundle->id, in->id);
    } else if (st == ODK_E_AGAIN) {
        more = false;
    } else if (st < 0) {
        /* The host closed its end: it is exiting; SIGCHLD finishes. */
        loop_del(d, &in->ctl_watch);
        more = false;
    } else if (m.hdr.type == WIRE_REQUEST) {
        if (d->host_request)
            d->host_request(d, in, &m);
        else
            instance_reply(in, m.hdr.seq, ODK_E_UNSUPPORTED, NULL, NULL, 0);
    } else if (m.hdr.type == WIRE_REPLY && m.hdr.seq == in->start_seq &&
               in->state == INST_STARTING) {
        start_reply(d, in, m.hdr.status);
        more = in->ctl_fd >= 0;
    } else if (m.hdr.type == WIRE_REPLY && m.hdr.seq == in->stop_seq) {
        trace_mark("odkd stop reply");
        /* Stopped: closing the channel lets the host exit.  What waited
         * for the driver to stop (an unplug) need not wait for the exit:
         * tearing a process down costs the kernel milliseconds.  The
         * reap still reports an exit that is not clean, and the stop
         * deadline still kills a host that does not leave. */
        pid_t exiting = in->pid;
        /* The channel is the instance's no more (what check_tree_waits
         * runs may give it a new one), but the close comes after the
         * unplug's answer: it wakes the host to exit, and a woken task
         * here mostly runs on the waker's CPU, where it could take the CPU
         * from odkd before the answer went. */
        int ctl = in->ctl_fd;
        loop_del(d, &in->ctl_watch);
        in->ctl_fd = -1;
        more = false;
        if (in->terminate && in->state == INST_STOPPING && !in->stopped) {
            in->stopped = true;
            check_tree_waits(d);
        }
        if (ctl >= 0)
            close(ctl);
        if (exiting > 0)
            host_lower_exiting(exiting); /* after the unplug's answer */
    } else if (m.hdr.type == WIRE_REPLY) {
        HOOK(d, reply, in, &m);
    }
    wire_msg_release(&m);
    return more;
}

static void on_ctl(struct odkd *d, void *ptr, uint32_t events)
{
    (void)events;
    ctl_one(d, ptr);
}

/* ---- starting --------------------------------------------------------- */

static void deadline_passed(struct odkd *d, void *ptr)
{
    struct instance *in = ptr;
    in->deadline_timer = 0;
    if (in->pid <= 0)
        return;
    bool starting = in->state == INST_STARTING;
    const char *op = starting ? "start" : "stop";
    uint64_t limit = starting ? in->deadlines.start_ms : in->deadlines.stop_ms;
    if (instance_stopped(in)) {
        /* A debugger holds it at a breakpoint (or it was sent SIGSTOP):
         * the operation gets its whole deadline again once it runs. */
        instance_event(in, ODK_LOG_INFO,
                       "%s#%u (pid %d): its %s deadline passed while the host is stopped (a "
                       "debugger?); it gets its deadline again",
                       in->bundle->id, in->id, (int)in->pid, op);
        in->deadline_timer = loop_timer(d, limit, deadline_passed, in);
        return;
    }
    instance_event(in, ODK_LOG_ERROR,
                   "deadline missed: %s#%u (pid %d) operation %s took more than %llu ms "
                   "(elapsed %llu ms); killing it",
                   in->bundle->id, in->id, (int)in->pid, op, (unsigned long long)limit,
                   (unsigned long long)(loop_now_ms() - in->op_started_ms));
    instance_kill(d, in, starting ? "missed its start deadline" : "missed its stop deadline");
}

static void arm_deadline(struct odkd *d, struct instance *in, uint64_t ms)
{
    loop_timer_cancel(d, in->deadline_timer);
    in->deadline_timer = 0;
    in->op_started_ms = loop_now_ms();
    if (ms && !in->debug)
        in->deadline_timer = loop_timer(d, ms, deadline_passed, in);
}

static int create_service_node(struct odkd *d, struct instance *in)
{
    reg_node *provider = registry_find(d->reg, in->provider_id);
    if (!provider)
        return ODK_E_GONE;
    const char *cls = odk_dict_get_string(in->personality, "IOUserClass", NULL);
    if (!cls)
        cls = odk_dict_get_string(in->personality, "IOClass", "IOService");
    const char *super = odk_dict_get_string(in->personality, "IOClass", "IOService");
    if (strcmp(super, cls) == 0 || registry_define_class(d->reg, cls, super) < 0)
        registry_define_class(d->reg, cls, "IOService");
    /* As IOKit does, the personality's keys that matching did not compare
     * become the service's properties; odkd's own three win. */
    odk_value *carried = match_carried(d->reg, provider, in->personality);
    struct msg m = {.dict = carried, .status = carried ? ODK_OK : ODK_E_NOMEM};
    msg_str(&m, "IOUserClass", cls);
    msg_str(&m, "CFBundleIdentifier", in->bundle->id);
    msg_str(&m, "IOPersonalityName", in->personality_name);
    odk_value *props;
    int st = msg_finish(&m, &props);
    reg_node *n;
    if (st == ODK_OK)
        st = registry_add(d->reg, provider, cls, props, &n);
    if (st < 0)
        return st;
    n->owner = in;
    in->node_id = n->id;
    return ODK_OK;
}

static odk_value *start_args(struct odkd *d, struct instance *in, odk_value *sandbox)
{
    reg_node *provider = registry_find(d->reg, in->provider_id);
    struct msg m = msg_begin();
    msg_str(&m, "op", "start");
    msg_str(&m, "bundle", in->bundle->id);
    msg_str(&m, "executable", in->bundle->executable);
    msg_int(&m, "instance", in->id);
    msg_str(&m, "class", odk_dict_get_string(in->personality, "IOUserClass", ""));
    msg_copy(&m, "personality", in->personality);
    msg_int(&m, "provider", (int64_t)in->provider_id);
    msg_copy(&m, "provider_properties", provider ? provider->props : NULL);
    msg_int(&m, "node", (int64_t)in->node_id);
    msg_int(&m, "call_deadline_ms", (int64_t)in->deadlines.call_ms);
    msg_bool(&m, "debug", in->debug);
    msg_take(&m, "sandbox", sandbox);
    return msg_done(&m);
}

/* The host's locked-memory limit: OdkDMALockLimitMB from the
 * personality, else from the provider node (the VFIO bus sets it: every
 * page mapped for a device's DMA is pinned and counted against
 * RLIMIT_MEMLOCK, whose default of 8 MiB a sandboxed host cannot raise).
 * Neither: the host keeps odkd's. */
static void set_lock_limit(struct odkd *d, struct instance *in)
{
    const reg_node *provider = registry_find(d->reg, in->provider_id);
    const odk_value *v = odk_dict_get(in->personality, "OdkDMALockLimitMB");
    if (!v && provider)
        v = odk_dict_get(provider->props, "OdkDMALockLimitMB");
    if (!v || odk_value_type(v) != ODK_TYPE_INT || odk_value_int(v) < 0)
        return;
    uint64_t mb = (uint64_t)odk_value_int(v);
    rlim_t bytes = mb > (RLIM_INFINITY >> 20) ? RLIM_INFINITY : (rlim_t)(mb << 20);
    struct rlimit r = {bytes, bytes};
    if (prlimit(in->pid, RLIMIT_MEMLOCK, &r, NULL) < 0)
        instance_event(in, ODK_LOG_WARN,
                       "%s#%u: cannot set the host's locked-memory limit to %llu MiB "
                       "(OdkDMALockLimitMB): %m; DMA mappings through VFIO past the current "
                       "limit will fail",
                       in->bundle->id, in->id, (unsigned long long)mb);
}

static int spawn(struct odkd *d, struct instance *in)
{
    int so = open(in->bundle->executable, O_RDONLY | O_CLOEXEC);
    if (so < 0) {
        odk_error("%s: cannot open %s: %m", in->bundle->id, in->bundle->executable);
        return ODK_E_LOAD;
    }
    /* Checked again at every launch, after the shared object is open: a
     * bundle changed since it was installed or loaded does not run. */
    trace_mark("odkd spawn");
    char err[sizeof in->reason - 32];
    int vst = catalog_verify_launch(d, in->bundle, err, sizeof err);
    if (vst < 0) {
        close(so);
        instance_event(in, ODK_LOG_ERROR, "%s#%u refused at launch: %s", in->bundle->id, in->id,
                       err);
        snprintf(in->reason, sizeof in->reason, "refused: %s", err);
        return vst;
    }
    trace_mark("odkd verified");
    odk_value *sandbox;
    int st = host_sandbox_args(d, in->bundle, &sandbox);
    if (st < 0) {
        close(so);
        return st;
    }
    trace_mark("odkd sandbox args");
    struct host_proc hp;
    /* A host primed for this bundle has its sandbox and shared object
     * already (host.h, "primed hosts"): it gets no descriptor. */
    bool primed = !in->debug && host_prime_take(d, in->bundle, sandbox, so, &hp);
    if (!primed)
        st = host_spawn(d, &hp);
    if (st < 0) {
        odk_value_free(sandbox);
        close(so);
        return st;
    }
    in->pid = hp.pid;
    in->ctl_fd = hp.ctl_fd;
    in->kill_reason = NULL;
    set_lock_limit(d, in);
    loop_add(d, &in->ctl_watch, in->ctl_fd, EPOLLIN, on_ctl, in);
    hostlog_attach(d, &in->log, hp.log_fd);

    /* The driver's shared object travels as a descriptor: the host never
     * opens bundle paths itself. */
    trace_mark("odkd start sent to %d", (int)in->pid);
    odk_value *args = start_args(d, in, sandbox); /* takes sandbox */
    odk_value *kept = in->debug ? NULL : odk_value_copy(odk_dict_get(args, "sandbox"));
    in->start_seq = instance_request(in, args, &so, primed ? 0 : 1);
    if (kept)
        host_prime_note(d, in->bundle, kept, so); /* for its next launch, off the start's path */
    close(so);
    if (!in->start_seq)
        odk_error("%s#%u: cannot send start; the start deadline will end it", in->bundle->id,
                  in->id);
    in->state = INST_STARTING;
    arm_deadline(d, in, in->deadlines.start_ms);
    if (in->debug)
        odk_info("%s#%u (pid %d) waits for a debugger: gdb -p %d", in->bundle->id, in->id,
                 (int)in->pid, (int)in->pid);
    return ODK_OK;
}

/* IOProviderMergeProperties: a dictionary whose keys are set on the
 * provider node as the driver starts (before the host gets the provider's
 * properties), replacing values of the same name, as IOKit does. */
static int merge_provider_properties(struct odkd *d, struct instance *in)
{
    const odk_value *merge = odk_dict_get(in->personality, "IOProviderMergeProperties");
    reg_node *provider = registry_find(d->reg, in->provider_id);
    if (!merge || !provider)
        return ODK_OK;
    if (odk_value_type(merge) != ODK_TYPE_DICT) {
        instance_event(in, ODK_LOG_WARN, "%s#%u: IOProviderMergeProperties is a %s, not a "
                       "dictionary; nothing merged", in->bundle->id, in->id,
                       odk_type_name(odk_value_type(merge)));
        return ODK_OK;
    }
    if (!provider->props && !(provider->props = odk_value_new_dict()))
        return ODK_E_NOMEM;
    for (size_t i = 0; i < odk_dict_count(merge); i++) {
        int st = odk_dict_set(provider->props, odk_dict_key_at(merge, i),
                              odk_value_copy(odk_dict_value_at(merge, i)));
        if (st < 0)
            return st;
    }
    return ODK_OK;
}

static void start_instance(struct odkd *d, struct instance *in)
{
    in->reason[0] = 0; /* spawn may say why it refused */
    int st = merge_provider_properties(d, in);
    if (st == ODK_OK)
        st = create_service_node(d, in);
    if (st == ODK_OK)
        st = spawn(d, in);
    if (st < 0) {
        instance_event(in, ODK_LOG_ERROR, "%s#%u cannot start: %s", in->bundle->id, in->id,
                       odk_strerror(st));
        if (!in->reason[0])
            snprintf(in->reason, sizeof in->reason, "cannot start: %s", odk_strerror(st));
        in->state = INST_FAILED;
    }
}

static void instance_free(void *ptr)
{
    struct instance *in = ptr;
    free(in->personality_name);
    odk_value_free(in->personality);
    free(in->category);
    free(in);
}

struct instance *instance_launch(struct odkd *d, struct catalog_entry *e, const char *pers_name,
                                 const odk_value *personality, reg_node *provider)
{
    struct instance *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    in->id = ++d->next_instance_id;
    in->entry = e;
    in->bundle = e->bundle;
    in->ctl_fd = -1;
    in->ctl_watch.fd = -1;
    in->provider_id = provider->id;
    in->personality_name = strdup(pers_name);
    in->personality = odk_value_copy(personality);
    in->category =
        strdup(odk_dict_get_string(personality, "IOMatchCategory", "IODefaultMatchCategory"));
    char label[512];
    snprintf(label, sizeof label, "%s#%u", e->bundle->id, in->id);
    if (!in->personality_name || !in->personality || !in->category ||
        hostlog_open(d, &in->log, e->bundle->id, label) < 0)
        goto fail;
    read_limits(in);
    for (size_t i = 0; i < d->n_debug_bundles; i++)
        in->debug |= strcmp(d->debug_bundles[i], e->bundle->id) == 0;
    in->next = d->instances;
    d->instances = in;
    provider->state = REG_MATCHED;
    trace_mark("odkd matched node %llu", (unsigned long long)provider->id);
    odk_info("matched %s (%s) to node %llu (%s)", e->bundle->id, pers_name,
             (unsigned long long)provider->id, provider->class_name);
    start_instance(d, in);
    return in;

fail:
    instance_free(in);
    return NULL;
}

/* ---- stopping, dying, restarting ---------------------------------------- */

static void stop_host(struct odkd *d, struct instance *in)
{
    if (in->pid <= 0 || in->state == INST_STOPPING)
        return;
    in->state = INST_STOPPING;
    trace_mark("odkd stop sent to %d", (int)in->pid);
    in->stop_seq = instance_request(in, op_args("stop"), NULL, 0);
    if (!in->stop_seq)
        instance_kill(d, in, "could not be asked to stop");
    arm_deadline(d, in, in->deadlines.stop_ms);
}

static bool under(struct odkd *d, uint64_t node_id, const reg_node *top)
{
    for (reg_node *n = registry_find(d->reg, node_id); n; n = n->parent)
        if (n == top)
            return true;
    return false;
}

static void check_tree_waits(struct odkd *d)
{
    for (struct tree_wait **pw = &d->tree_waits; *pw;) {
        struct tree_wait *w = *pw;
        reg_node *top = registry_find(d->reg, w->node_id);
        bool busy = false;
        /* An instance whose provider is already gone was under some removed
         * subtree (a driver's published node): it is still stopping, and it
         * may be under this one, so wait for it too. */
        for (struct instance *in = d->instances; in && top && !busy; in = in->next)
            busy = (w->until_exit || !in->stopped) &&
                   (under(d, in->provider_id, top) ||
                    (in->terminate && !registry_find(d->reg, in->provider_id)));
        if (busy) {
            pw = &w->next;
            continue;
        }
        *pw = w->next;
        if (w->done)
            w->done(d, w->ctx);
        free(w);
        pw = &d->tree_waits; /* done() may have changed the list */
    }
}

/* Takes the instance's service node (and what it published) out of the
 * registry, terminating drivers matched on those nodes. */
static void remove_service_node(struct odkd *d, struct instance *in)
{
    /* 0 means "none" here, but it is also the registry root's id: never
     * look it up (that once stopped every driver on the system). */
    reg_node *n = in->node_id ? registry_find(d->reg, in->node_id) : NULL;
    in->node_id = 0;
    if (!n)
        return;
    instance_terminate_tree(d, n, false, NULL, NULL);
    if (d->hooks && d->hooks->remove_node)
        d->hooks->remove_node(d, n);
    else
        registry_remove(d->reg, n);
}

static void unlink_instance(struct odkd *d, struct instance *in)
{
    for (struct instance **p = &d->instances; *p; p = &(*p)->next) {
        if (*p == in) {
            *p = in->next;
            break;
        }
    }
}

static void restart_now(struct odkd *d, void *ptr)
{
    struct instance *in = ptr;
    in->backoff_timer = 0;
    if (in->terminate || in->state != INST_BACKOFF)
        return;
    instance_event(in, ODK_LOG_INFO, "restarting %s#%u (restart %u)", in->bundle->id, in->id,
                   in->restarts);
    start_instance(d, in);
}

/* The last error line of the host's own (after "error TAG: "), skipping
 * the generic "start failed: STATUS" when the driver said more before it. */
struct last_error {
    char text[256];
};

static void keep_error(const char *line, void *ctx)
{
    struct last_error *e = ctx;
    if (strncmp(line, "error ", 6) != 0 || strstr(line, "fatal signal"))
        return;
    const char *text = strstr(line + 6, ": ");
    text = text ? text + 2 : line + 6;
    if (strncmp(text, "start failed: ", 14) == 0 && e->text[0])
        return;
    snprintf(e->text, sizeof e->text, "%s", text);
}

/* Why the instance is down, for `odkctl list`: "crashed: SIGSEGV in foo",
 * "killed: missed its start deadline", "exited with status 3". */
static void describe_reason(struct instance *in, int wstatus)
{
    if (in->kill_reason)
        snprintf(in->reason, sizeof in->reason, "killed: %s", in->kill_reason);
    else if (WIFSIGNALED(wstatus)) {
        const char *abbrev = sigabbrev_np(WTERMSIG(wstatus));
        char sig[32];
        if (abbrev)
            snprintf(sig, sizeof sig, "SIG%s", abbrev);
        else
            snprintf(sig, sizeof sig, "signal %d", WTERMSIG(wstatus));
        snprintf(in->reason, sizeof in->reason, "crashed: %s%s%s", sig,
                 in->crash_where[0] ? " in " : "", in->crash_where);
    } else
        snprintf(in->reason, sizeof in->reason, "exited with status %d", WEXITSTATUS(wstatus));
}

void instance_crash_where(struct instance *in, pid_t pid, const char *where)
{
    if (in->crash_pid != pid || in->crash_where[0] || !where[0])
        return;
    snprintf(in->crash_where, sizeof in->crash_where, "%s", where);
    /* "crashed: SIGSEGV" then " (N crashes ...)": the name goes between. */
    if (strncmp(in->reason, "crashed: ", 9) != 0)
        return;
    size_t at = 9 + strcspn(in->reason + 9, " ");
    char rest[sizeof in->reason];
    snprintf(rest, sizeof rest, "%s", in->reason + at);
    snprintf(in->reason + at, sizeof in->reason - at, " in %s%s", where, rest);
}

static void describe_exit(const struct instance *in, int wstatus, char *what, size_t len)
{
    if (in->kill_reason)
        snprintf(what, len, "%s", in->kill_reason);
    else if (WIFSIGNALED(wstatus))
        snprintf(what, len, "killed by signal %d (%s)", WTERMSIG(wstatus),
                 sigabbrev_np(WTERMSIG(wstatus)) ? sigabbrev_np(WTERMSIG(wstatus)) : "?");
    else
        snprintf(what, len, "exited with status %d", WEXITSTATUS(wstatus));
}

/* Gone for good: out of the list, freed after this batch of events. */
static void retire(struct odkd *d, struct instance *in)
{
    /* A rollback inside instance_reaped can retire the instance before the
     * reap itself gets there: once is enough. */
    if (in->retired)
        return;
    in->retired = true;
    unlink_instance(d, in);
    HOOK(d, gone, in);
    if (instance_count_on(d, in->provider_id) == 0)
        provider_state(d, in, REG_REGISTERED);
    hostlog_close(d, &in->log);
    loop_defer_free(d, instance_free, in);
    check_tree_waits(d);
}

static void schedule_restart(struct odkd *d, struct instance *in, bool clean_stop)
{
    in->restarts++;
    uint64_t now = loop_now_ms();
    if (now - in->crash_window_start > CRASH_WINDOW_MS) {
        in->crash_window_start = now;
        in->crash_count = 0;
    }
    if (!clean_stop && ++in->crash_count >= CRASH_LIMIT) {
        instance_event(
            in, ODK_LOG_ERROR,
            "%s#%u crashed %u times within %d s; marking it failed until `odkctl restart`",
            in->bundle->id, in->id, in->crash_count, CRASH_WINDOW_MS / 1000);
        size_t n = strlen(in->reason);
        snprintf(in->reason + n, sizeof in->reason - n,
                 " (%u crashes in %d s; failed until `odkctl restart`)", in->crash_count,
                 CRASH_WINDOW_MS / 1000);
        in->state = INST_FAILED;
        provider_state(d, in, REG_MATCHED);
        return;
    }
    uint64_t delay = d->backoff_first_ms;
    for (uint32_t i = 1; i < in->restarts && delay < ODKD_BACKOFF_MAX_MS; i++)
        delay *= 2;
    if (delay > ODKD_BACKOFF_MAX_MS)
        delay = ODKD_BACKOFF_MAX_MS;
    in->state = INST_BACKOFF;
    if (clean_stop) {
        snprintf(in->reason, sizeof in->reason, "stopped; restarting");
    } else {
        size_t n = strlen(in->reason);
        snprintf(in->reason + n, sizeof in->reason - n, " (%u crash%s in %d s)", in->crash_count,
                 in->crash_count == 1 ? "" : "es", CRASH_WINDOW_MS / 1000);
    }
    provider_state(d, in, REG_MATCHED);
    /* Tests prove the backoff from this line, not from a stopwatch. */
    instance_event(in, ODK_LOG_INFO, "%s#%u backs off %llu ms before restart %u", in->bundle->id,
                   in->id, (unsigned long long)delay, in->restarts);
    in->backoff_timer = loop_timer(d, delay, restart_now, in);
}

void instance_reaped(struct odkd *d, pid_t pid, int wstatus)
{
    struct instance *in = NULL;
    for (in = d->instances; in && in->pid != pid; in = in->next)
        ;
    if (!in)
        return;
    trace_mark("odkd reaped %d", (int)pid);
    /* Take what the host still had to say (its log, a start reply) before
     * deciding what its end means. */
    hostlog_drain(d, &in->log);
    while (in->ctl_fd >= 0 && ctl_one(d, in))
        ;
    close_channel(d, in);
    loop_timer_cancel(d, in->deadline_timer);
    in->deadline_timer = 0;
    in->pid = 0;
    inst_state was = in->state;
    HOOK(d, host_gone, in);
    remove_service_node(d, in);

    bool clean_stop =
        was == INST_STOPPING && !in->kill_reason && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
    /* A start that failed cleanly was already reported from its reply. */
    bool reported_failure = was == INST_FAILED && WIFEXITED(wstatus) && !in->kill_reason;
    if (reported_failure) {
        struct last_error e = {""};
        hostlog_each(&in->log, keep_error, &e);
        if (e.text[0])
            snprintf(in->reason, sizeof in->reason, "start failed: %s", e.text);
    }
    if (!clean_stop && !reported_failure) {
        char what[128];
        describe_exit(in, wstatus, what, sizeof what);
        /* Reported even when the instance was going away anyway (an
         * unplug racing a crash): every crash leaves a report. */
        in->crash_where[0] = 0;
        crash_report(d, in, pid, what);
        describe_reason(in, wstatus);
        if (was == INST_STARTING && !in->terminate)
            HOOK(d, start_failed, in, what);
    }

    if (in->terminate) {
        /* Being terminated (also by a rollback in start_failed above). */
        retire(d, in);
        return;
    }
    if (was == INST_FAILED) {
        instance_event(in, ODK_LOG_ERROR,
                       "%s#%u is marked failed; `odkctl restart %s` starts it again",
                       in->bundle->id, in->id, in->bundle->id);
        return;
    }
    schedule_restart(d, in, clean_stop);
}

void instance_terminate(struct odkd *d, struct instance *in)
{
    if (in->terminate && in->pid > 0)
        return;
    in->terminate = true;
    loop_timer_cancel(d, in->backoff_timer);
    in->backoff_timer = 0;
    if (in->pid > 0) {
        stop_host(d, in);
        return;
    }
    /* Not running (backoff or failed): gone at once. */
    HOOK(d, host_gone, in);
    remove_service_node(d, in);
    retire(d, in);
}

void instance_terminate_tree(struct odkd *d, reg_node *node, bool until_exit,
                             void (*done)(struct odkd *, void *), void *ctx)
{
    struct tree_wait *w = calloc(1, sizeof *w);
    if (w) {
        *w = (struct tree_wait){node->id, until_exit, done, ctx, d->tree_waits};
        d->tree_waits = w;
    } else if (done) {
        odk_error("out of memory waiting for drivers under node %llu to stop",
                  (unsigned long long)node->id);
    }
    /* Deepest providers first, so children stop before their providers. */
    for (;;) {
        struct instance *pick = NULL;
        size_t pick_depth = 0;
        for (struct instance *in = d->instances; in; in = in->next) {
            if (in->terminate || !under(d, in->provider_id, node))
                continue;
            size_t depth = 0;
            for (reg_node *n = registry_find(d->reg, in->provider_id); n; n = n->parent)
                depth++;
            if (!pick || depth > pick_depth) {
                pick = in;
                pick_depth = depth;
            }
        }
        if (!pick)
            break;
        instance_terminate(d, pick);
    }
    check_tree_waits(d);
}

void instance_free_all(struct odkd *d)
{
    while (d->instances) {
        struct instance *in = d->instances;
        d->instances = in->next;
        if (in->pid > 0)
            kill(in->pid, SIGKILL);
        close_channel(d, in);
        hostlog_close(d, &in->log);
        instance_free(in);
    }
    while (d->tree_waits) {
        struct tree_wait *w = d->tree_waits;
        d->tree_waits = w->next;
        free(w);
    }
}
