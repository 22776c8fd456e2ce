/* Driver instances: launching odk-driver-host, talking to it, stopping it,
 * noticing when it dies and restarting it with backoff. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "families/serial/pty.h"
#include "odk/log.h"
#include "odk/status.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define CRASH_LIMIT 5 /* crashes ... */
#define CRASH_WINDOW_MS 60000 /* ... within this window mark the instance failed */
#define LOG_LINES_PER_SECOND 2000 /* per instance; more are counted and dropped */
#define LOG_FILE_MAX (16u << 20) /* a bundle's log rotates to .1 past this */

struct tree_wait {
    uint64_t node_id;
    void (*done)(struct odkd *d, void *ctx);
    void *ctx;
    struct tree_wait *next;
};

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
    /* A device node: the driver attached to it in the default category,
     * else any driver attached to it. */
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

odk_value *instance_describe(struct odkd *d, const struct instance *in)
{
    (void)d;
    odk_value *v = odk_value_new_dict();
    if (!v)
        return NULL;
    odk_dict_set_int(v, "instance", in->id);
    odk_dict_set_string(v, "bundle", in->bundle->id);
    odk_dict_set_string(v, "version", in->bundle->version);
    odk_dict_set_string(v, "build", in->bundle->build);
    odk_dict_set_string(v, "personality", in->personality_name);
    odk_dict_set_string(v, "class", odk_dict_get_string(in->personality, "IOUserClass", "?"));
    odk_dict_set_int(v, "pid", in->pid);
    odk_dict_set_string(v, "state", in->debug && in->state == INST_STARTING
                                        ? "debug-wait"
                                        : inst_state_name(in->state));
    odk_dict_set_int(v, "rss_kib", (int64_t)instance_rss_kib(in));
    odk_dict_set_int(v, "restarts", in->restarts);
    odk_dict_set_int(v, "provider", (int64_t)in->provider_id);
    odk_dict_set_int(v, "node", (int64_t)in->node_id);
    odk_dict_set_string(v, "category", in->category);
    return v;
}

static uint64_t limit_ms(const odk_value *dl, const char *key, uint64_t dflt)
{
    int64_t v = odk_dict_get_int(dl, key, (int64_t)dflt);
    return v < 0 ? dflt : (uint64_t)v;
}

void instance_read_limits(struct instance *in)
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

uint32_t instance_request(struct instance *in, odk_value *args)
{
    uint32_t seq = ++in->next_seq;
    int st = in->ctl_fd >= 0 ? wire_send_value(in->ctl_fd, WIRE_REQUEST, seq, 0, args, NULL, 0)
                             : ODK_E_DISCONNECTED;
    odk_value_free(args);
    return st == ODK_OK ? seq : 0;
}

void instance_kill(struct odkd *d, struct instance *in, const char *reason)
{
    if (in->pid <= 0)
        return;
    if (!in->kill_reason)
        in->kill_reason = reason;
    kill(in->pid, SIGKILL);
    (void)d;
}

/* ---- the host's log -------------------------------------------------- */

static void keep_line(struct instance *in, const char *line, size_t len)
{
    char *copy = strndup(line, len);
    if (!copy)
        return;
    free(in->log_lines[in->log_next]);
    in->log_lines[in->log_next] = copy;
    in->log_next = (in->log_next + 1) % INST_LOG_LINES;
    /* Forward to odkd's own stderr, and into the bundle's log file. */
    fprintf(stderr, "%s\n", copy);
    if (in->log_file >= 0) {
        int n = dprintf(in->log_file, "%s\n", copy);
        in->log_bytes += n > 0 ? (uint64_t)n : 0;
        if (in->log_bytes > LOG_FILE_MAX && in->log_path) {
            /* Keep one previous file: BUNDLE.log.1. */
            char old[4200];
            snprintf(old, sizeof old, "%s.1", in->log_path);
            rename(in->log_path, old);
            close(in->log_file);
            in->log_file = open(in->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            in->log_bytes = 0;
        }
    }
}

/* At most LOG_LINES_PER_SECOND lines a second from one driver reach the
 * logs; the rest are counted, and the count is logged when the next second
 * starts.  (The last lines kept for crash reports see every line.) */
static void take_line(struct instance *in, const char *line, size_t len)
{
    uint64_t now = loop_now_ms();
    if (now - in->log_window_ms >= 1000) {
        if (in->log_dropped) {
            char note[128];
            int n = snprintf(note, sizeof note,
                             "warn odkd: %s#%u: %u log lines dropped (more than %d a second)",
                             in->bundle->id, in->id, in->log_dropped, LOG_LINES_PER_SECOND);
            keep_line(in, note, (size_t)n);
        }
        in->log_window_ms = now;
        in->log_lines_in_window = 0;
        in->log_dropped = 0;
    }
    if (++in->log_lines_in_window <= LOG_LINES_PER_SECOND) {
        keep_line(in, line, len);
        return;
    }
    in->log_dropped++;
    char *copy = strndup(line, len);
    if (copy) {
        free(in->log_lines[in->log_next]);
        in->log_lines[in->log_next] = copy;
        in->log_next = (in->log_next + 1) % INST_LOG_LINES;
    }
}

static void on_log(struct odkd *d, void *ptr, uint32_t events)
{
    struct instance *in = ptr;
    char buf[4096];
    ssize_t n = read(in->log_fd, buf, sizeof buf);
    if (n <= 0) {
        if (n < 0 && errno == EINTR)
            return;
        if (in->log_partial_len)
            take_line(in, in->log_partial, in->log_partial_len);
        in->log_partial_len = 0;
        loop_del(d, &in->log_watch);
        close(in->log_fd);
        in->log_fd = -1;
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n' || in->log_partial_len == sizeof in->log_partial) {
            take_line(in, in->log_partial, in->log_partial_len);
            in->log_partial_len = 0;
            if (buf[i] == '\n')
                continue;
        }
        in->log_partial[in->log_partial_len++] = buf[i];
    }
    (void)events;
}

/* ---- requests from the host ------------------------------------------ */

static void reply(struct instance *in, uint32_t seq, int status, odk_value *body)
{
    wire_send_value(in->ctl_fd, WIRE_REPLY, seq, status, body, NULL, 0);
    odk_value_free(body);
}

/* A node the instance may touch: its service node or one it published. */
static reg_node *own_node(struct odkd *d, struct instance *in, const odk_value *args)
{
    reg_node *n = registry_find(d->reg, (uint64_t)odk_dict_get_int(args, "node", 0));
    return n && n->owner == in ? n : NULL;
}

static void host_request(struct odkd *d, struct instance *in, wire_msg *m)
{
    odk_value *args = NULL;
    if (wire_msg_value(m, &args) < 0) {
        reply(in, m->hdr.seq, ODK_E_PROTOCOL, NULL);
        return;
    }
    const char *op = odk_dict_get_string(args, "op", "");
    int st = ODK_OK;
    odk_value *out = NULL;
    if (strcmp(op, "register-service") == 0) {
        reg_node *n = own_node(d, in, args);
        if (!n)
            st = ODK_E_ACCESS;
        else if (n->state == REG_INACTIVE)
            matcher_register(d, n);
    } else if (strcmp(op, "set-property") == 0) {
        reg_node *n = own_node(d, in, args);
        const char *key = odk_dict_get_string(args, "key", NULL);
        const odk_value *val = odk_dict_get(args, "value");
        if (!n)
            st = ODK_E_ACCESS;
        else if (!key || !*key || !val)
            st = ODK_E_INVALID;
        else {
            st = odk_dict_set(n->props, key, odk_value_copy(val));
            if (st == ODK_OK && n->state != REG_INACTIVE)
                server_notify(d, "property", n);
        }
    } else if (strcmp(op, "publish-node") == 0) {
        reg_node *parent = registry_find(d->reg, (uint64_t)odk_dict_get_int(args, "parent", 0));
        const char *cls = odk_dict_get_string(args, "class", NULL);
        const char *super = odk_dict_get_string(args, "super", "IOService");
        const odk_value *props = odk_dict_get(args, "properties");
        reg_node *n = NULL;
        if (!parent || parent->owner != in)
            st = ODK_E_ACCESS;
        else if (!cls || !*cls || (props && odk_value_type(props) != ODK_TYPE_DICT))
            st = ODK_E_INVALID;
        else if ((st = registry_define_class(d->reg, cls, super)) == ODK_E_EXISTS ||
                 st == ODK_E_NOT_FOUND)
            st = registry_define_class(d->reg, cls, "IOService") == ODK_E_NOT_FOUND
                     ? ODK_E_INVALID
                     : ODK_OK;
        if (st == ODK_OK)
            st = registry_add(d->reg, parent, cls, props ? odk_value_copy(props) : NULL, &n);
        if (st == ODK_OK) {
            n->owner = in;
            out = odk_value_new_dict();
            odk_dict_set_int(out, "node", (int64_t)n->id);
            matcher_register(d, n);
        }
    } else if (strcmp(op, "withdraw-node") == 0) {
        reg_node *n = own_node(d, in, args);
        if (!n || n->id == in->node_id)
            st = ODK_E_ACCESS;
        else {
            instance_terminate_tree(d, n, NULL, NULL);
            matcher_remove_node(d, n);
        }
    } else if (strcmp(op, "serial-pty") == 0) {
        reg_node *n = own_node(d, in, args);
        int fds[2];
        char err[512];
        if (!n) {
            st = ODK_E_ACCESS;
        } else {
            st = serial_pty_open(d, n, odk_dict_get_string(args, "base", "serial"),
                                 odk_dict_get_string(args, "suffix", "0"), fds, &out, err,
                                 sizeof err);
            if (st < 0) {
                odk_error("%s#%u: %s", in->bundle->id, in->id, err);
            } else {
                wire_send_value(in->ctl_fd, WIRE_REPLY, m->hdr.seq, ODK_OK, out, fds, 2);
                close(fds[0]);
                close(fds[1]);
                odk_value_free(out);
                odk_value_free(args);
                return;
            }
        }
    } else {
        st = ODK_E_UNSUPPORTED;
    }
    odk_value_free(args);
    reply(in, m->hdr.seq, st, out);
}

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
    loop_timer_cancel(d, in->deadline_timer);
    in->deadline_timer = 0;
    if (status == ODK_OK) {
        in->state = INST_RUNNING;
        provider_state(d, in, REG_STARTED);
        if (in->entry->previous) {
            /* The new build runs: the upgrade is confirmed. */
            in->entry->previous = NULL;
        }
        odk_info("%s#%u started (pid %d) on node %llu", in->bundle->id, in->id, (int)in->pid,
                 (unsigned long long)in->provider_id);
        if (d->power_state == 0 && !d->power) {
            /* Started (or restarted) while the system sleeps: tell it, so
             * it is in the same state as everyone else.  No reply is
             * awaited; the next transition carries a deadline as usual. */
            odk_value *args = odk_value_new_dict();
            odk_dict_set_string(args, "op", "power");
            odk_dict_set_int(args, "state", 0);
            instance_request(in, args);
        }
        reg_node *n = registry_find(d->reg, in->node_id);
        if (n)
            server_notify(d, "started", n);
        return;
    }
    odk_error("%s#%u failed to start: %s; marking it failed (its log says why)", in->bundle->id,
              in->id, odk_strerror(status));
    in->state = INST_FAILED;
    close_channel(d, in); /* the host exits once it sees the channel close */
    catalog_start_failed(d, in->entry, odk_strerror(status));
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
        host_request(d, in, &m);
    } else if (m.hdr.type == WIRE_REPLY && m.hdr.seq == in->start_seq && in->state == INST_STARTING) {
        start_reply(d, in, m.hdr.status);
        more = in->ctl_fd >= 0;
    } else if (m.hdr.type == WIRE_REPLY && in->power_seq && m.hdr.seq == in->power_seq) {
        power_reply(d, in, m.hdr.status);
    } else if (m.hdr.type == WIRE_REPLY && m.hdr.seq == in->stop_seq) {
        /* Stopped: closing the channel lets the host exit. */
        close_channel(d, in);
        more = false;
    }
    wire_msg_release(&m);
    return more;
}

static void on_ctl(struct odkd *d, void *ptr, uint32_t events)
{
    ctl_one(d, ptr);
    (void)events;
}

/* ---- launching ------------------------------------------------------- */

static void deadline_passed(struct odkd *d, void *ptr)
{
    struct instance *in = ptr;
    in->deadline_timer = 0;
    if (in->pid <= 0)
        return;
    bool starting = in->state == INST_STARTING;
    const char *op = starting ? "start" : "stop";
    uint64_t limit = starting ? in->deadlines.start_ms : in->deadlines.stop_ms;
    odk_error("deadline missed: %s#%u (pid %d) operation %s took more than %llu ms "
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
    odk_value *props = odk_value_new_dict();
    if (!props)
        return ODK_E_NOMEM;
    odk_dict_set_string(props, "IOUserClass", cls);
    odk_dict_set_string(props, "CFBundleIdentifier", in->bundle->id);
    odk_dict_set_string(props, "IOPersonalityName", in->personality_name);
    reg_node *n;
    int st = registry_add(d->reg, provider, cls, props, &n);
    if (st < 0)
        return st;
    n->owner = in;
    in->node_id = n->id;
    return ODK_OK;
}

static int spawn_host(struct odkd *d, struct instance *in)
{
    int sv[2], lp[2];
    if (wire_socketpair(sv) < 0)
        return ODK_E_IO;
    if (pipe2(lp, O_CLOEXEC) < 0) {
        close(sv[0]);
        close(sv[1]);
        return ODK_E_IO;
    }
    int so = open(in->bundle->executable, O_RDONLY | O_CLOEXEC);
    if (so < 0) {
        odk_error("%s: cannot open %s: %m", in->bundle->id, in->bundle->executable);
        close(sv[0]);
        close(sv[1]);
        close(lp[0]);
        close(lp[1]);
        return ODK_E_LOAD;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Child: fd 3 is the control channel, stdout and stderr the log. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(sv[1], 3);
        dup2(lp[1], 1);
        dup2(lp[1], 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char *argv[] = {d->host_path, NULL};
        execv(d->host_path, argv);
        dprintf(2, "error odkd: cannot execute %s: %m\n", d->host_path);
        _exit(127);
    }
    close(sv[1]);
    close(lp[1]);
    if (pid < 0) {
        close(sv[0]);
        close(lp[0]);
        close(so);
        return ODK_E_IO;
    }
    in->pid = pid;
    in->ctl_fd = sv[0];
    in->log_fd = lp[0];
    in->kill_reason = NULL;
    /* Never block odkd on one host: replies it cannot take now are a
     * protocol failure of that host, not a reason for everyone to wait. */
    fcntl(in->ctl_fd, F_SETFL, fcntl(in->ctl_fd, F_GETFL) | O_NONBLOCK);
    loop_add(d, &in->ctl_watch, in->ctl_fd, EPOLLIN, on_ctl, in);
    loop_add(d, &in->log_watch, in->log_fd, EPOLLIN, on_log, in);

    reg_node *provider = registry_find(d->reg, in->provider_id);
    odk_value *args = odk_value_new_dict();
    odk_dict_set_string(args, "op", "start");
    odk_dict_set_string(args, "bundle", in->bundle->id);
    odk_dict_set_string(args, "executable", in->bundle->executable);
    odk_dict_set_int(args, "instance", in->id);
    odk_dict_set_string(args, "class", odk_dict_get_string(in->personality, "IOUserClass", ""));
    odk_dict_set(args, "personality", odk_value_copy(in->personality));
    odk_dict_set_int(args, "provider", (int64_t)in->provider_id);
    odk_dict_set(args, "provider_properties",
                 provider ? odk_value_copy(provider->props) : odk_value_new_dict());
    odk_dict_set_int(args, "node", (int64_t)in->node_id);
    odk_dict_set_int(args, "call_deadline_ms", (int64_t)in->deadlines.call_ms);
    odk_dict_set_bool(args, "debug", in->debug);
    in->start_seq = ++in->next_seq;
    int st = wire_send_value(in->ctl_fd, WIRE_REQUEST, in->start_seq, 0, args, &so, 1);
    odk_value_free(args);
    close(so);
    if (st < 0)
        odk_error("%s#%u: cannot send start: %s", in->bundle->id, in->id, odk_strerror(st));
    in->state = INST_STARTING;
    arm_deadline(d, in, in->deadlines.start_ms);
    if (in->debug)
        odk_info("%s#%u (pid %d) waits for a debugger: gdb -p %d", in->bundle->id, in->id,
                 (int)pid, (int)pid);
    return ODK_OK;
}

static int open_log_file(struct odkd *d, struct instance *in)
{
    if (asprintf(&in->log_path, "%s/logs/%s.log", d->state_dir, in->bundle->id) < 0) {
        in->log_path = NULL;
        return -1;
    }
    int fd = open(in->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    struct stat st;
    in->log_bytes = fd >= 0 && fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    return fd;
}

static void start_instance(struct odkd *d, struct instance *in)
{
    int st = create_service_node(d, in);
    if (st == ODK_OK)
        st = spawn_host(d, in);
    if (st < 0) {
        odk_error("%s#%u cannot start: %s", in->bundle->id, in->id, odk_strerror(st));
        in->state = INST_FAILED;
    }
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
    in->personality_name = strdup(pers_name);
    in->personality = odk_value_copy(personality);
    in->category = strdup(odk_dict_get_string(personality, "IOMatchCategory",
                                              "IODefaultMatchCategory"));
    in->provider_id = provider->id;
    in->ctl_fd = in->log_fd = -1;
    in->ctl_watch.fd = in->log_watch.fd = -1;
    in->log_file = open_log_file(d, in);
    instance_read_limits(in);
    for (size_t i = 0; i < d->n_debug_bundles; i++)
        in->debug |= strcmp(d->debug_bundles[i], e->bundle->id) == 0;
    if (!in->personality_name || !in->personality || !in->category) {
        free(in->personality_name);
        odk_value_free(in->personality);
        free(in->category);
        free(in);
        return NULL;
    }
    in->next = d->instances;
    d->instances = in;
    provider->state = REG_MATCHED;
    odk_info("matched %s (%s) to node %llu (%s)", e->bundle->id, pers_name,
             (unsigned long long)provider->id, provider->class_name);
    start_instance(d, in);
    return in;
}

/* ---- stopping, dying, restarting ---------------------------------------- */

static void stop_host(struct odkd *d, struct instance *in)
{
    if (in->pid <= 0 || in->state == INST_STOPPING)
        return;
    in->state = INST_STOPPING;
    odk_value *args = odk_value_new_dict();
    odk_dict_set_string(args, "op", "stop");
    in->stop_seq = instance_request(in, args);
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
            busy = under(d, in->provider_id, top) ||
                   (in->terminate && !registry_find(d->reg, in->provider_id));
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

/* Removes the instance's service node (and what it published), telling
 * watchers, and terminating drivers matched on those nodes. */
static void remove_service_node(struct odkd *d, struct instance *in)
{
    /* 0 means "none" here, but it is also the registry root's id: never
     * look it up (that once stopped every driver on the system). */
    reg_node *n = in->node_id ? registry_find(d->reg, in->node_id) : NULL;
    in->node_id = 0;
    if (!n)
        return;
    instance_terminate_tree(d, n, NULL, NULL);
    matcher_remove_node(d, n);
}

static void instance_free(void *ptr)
{
    struct instance *in = ptr;
    for (size_t i = 0; i < INST_LOG_LINES; i++)
        free(in->log_lines[i]);
    if (in->log_file >= 0)
        close(in->log_file);
    free(in->log_path);
    free(in->personality_name);
    odk_value_free(in->personality);
    free(in->category);
    free(in);
}

static void restart_now(struct odkd *d, void *ptr)
{
    struct instance *in = ptr;
    in->backoff_timer = 0;
    if (in->terminate || in->state != INST_BACKOFF)
        return;
    odk_info("restarting %s#%u (restart %u)", in->bundle->id, in->id, in->restarts);
    start_instance(d, in);
}

static bool provider_has_others(struct odkd *d, const struct instance *in)
{
    for (struct instance *o = d->instances; o; o = o->next)
        if (o != in && o->provider_id == in->provider_id && !o->terminate)
            return true;
    return false;
}

void instance_reaped(struct odkd *d, pid_t pid, int wstatus)
{
    struct instance *in = NULL;
    for (in = d->instances; in && in->pid != pid; in = in->next)
        ;
    if (!in)
        return;
    /* Take what the host still had to say (its log, a start reply) before
     * deciding what its end means. */
    while (in->log_fd >= 0)
        on_log(d, in, EPOLLIN);
    while (in->ctl_fd >= 0 && ctl_one(d, in))
        ;
    close_channel(d, in);
    loop_timer_cancel(d, in->deadline_timer);
    in->deadline_timer = 0;
    in->pid = 0;
    inst_state was = in->state;
    if (in->power_tx)
        power_instance_gone(d, in, false);
    remove_service_node(d, in);

    bool clean_stop = was == INST_STOPPING && !in->kill_reason && WIFEXITED(wstatus) &&
                      WEXITSTATUS(wstatus) == 0;
    /* A start that failed cleanly was already reported from its reply. */
    bool reported_failure = was == INST_FAILED && WIFEXITED(wstatus) && !in->kill_reason;
    if (!clean_stop && !reported_failure) {
        char what[128];
        if (in->kill_reason)
            snprintf(what, sizeof what, "%s", in->kill_reason);
        else if (WIFSIGNALED(wstatus))
            snprintf(what, sizeof what, "killed by signal %d (%s)", WTERMSIG(wstatus),
                     sigabbrev_np(WTERMSIG(wstatus)) ? sigabbrev_np(WTERMSIG(wstatus)) : "?");
        else
            snprintf(what, sizeof what, "exited with status %d", WEXITSTATUS(wstatus));
        /* Reported even when the instance was going away anyway (an
         * unplug racing a crash): every crash leaves a report. */
        crash_report(d, in, pid, what);
        if (was == INST_STARTING && !in->terminate)
            catalog_start_failed(d, in->entry, what);
    }

    if (in->terminate) {
        for (struct instance **p = &d->instances; *p; p = &(*p)->next) {
            if (*p == in) {
                *p = in->next;
                break;
            }
        }
        if (!provider_has_others(d, in))
            provider_state(d, in, REG_REGISTERED);
        loop_defer_free(d, instance_free, in);
        check_tree_waits(d);
        return;
    }
    if (was == INST_FAILED) {
        odk_error("%s#%u is marked failed; `odkctl restart %s` starts it again", in->bundle->id,
                  in->id, in->bundle->id);
        return;
    }
    if (in->terminate) /* a rollback above took this instance away; its reap comes later */
        return;
    in->restarts++;
    uint64_t now = loop_now_ms();
    if (now - in->crash_window_start > CRASH_WINDOW_MS) {
        in->crash_window_start = now;
        in->crash_count = 0;
    }
    if (!clean_stop && ++in->crash_count >= CRASH_LIMIT) {
        odk_error("%s#%u crashed %u times within %d s; marking it failed until `odkctl restart`",
                  in->bundle->id, in->id, in->crash_count, CRASH_WINDOW_MS / 1000);
        in->state = INST_FAILED;
        provider_state(d, in, REG_MATCHED);
        return;
    }
    uint64_t delay = BACKOFF_FIRST_MS;
    for (uint32_t i = 1; i < in->restarts && delay < BACKOFF_MAX_MS; i++)
        delay *= 2;
    if (delay > BACKOFF_MAX_MS)
        delay = BACKOFF_MAX_MS;
    in->state = INST_BACKOFF;
    provider_state(d, in, REG_MATCHED);
    in->backoff_timer = loop_timer(d, delay, restart_now, in);
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
    if (in->power_tx)
        power_instance_gone(d, in, false);
    remove_service_node(d, in);
    for (struct instance **p = &d->instances; *p; p = &(*p)->next) {
        if (*p == in) {
            *p = in->next;
            break;
        }
    }
    loop_defer_free(d, instance_free, in);
    check_tree_waits(d);
}

void instance_terminate_tree(struct odkd *d, reg_node *node, void (*done)(struct odkd *, void *),
                             void *ctx)
{
    struct tree_wait *w = calloc(1, sizeof *w);
    if (w) {
        w->node_id = node->id;
        w->done = done;
        w->ctx = ctx;
        w->next = d->tree_waits;
        d->tree_waits = w;
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
