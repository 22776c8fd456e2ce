/* daemon.h — odkd's shared state.  One struct odkd per daemon, passed to
 * everything (no globals), touched only by the single event-loop thread. */
#ifndef ODK_DAEMON_DAEMON_H
#define ODK_DAEMON_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/wire.h"
#include "daemon/bundle.h"
#include "daemon/registry.h"

struct odkd;

/* ---- event loop (loop.c) ---------------------------------------------- */

typedef void (*watch_fn)(struct odkd *d, void *ptr, uint32_t events);

struct watch {
    int fd;
    watch_fn fn;
    void *ptr;
};

int loop_add(struct odkd *d, struct watch *w, int fd, uint32_t events, watch_fn fn, void *ptr);
void loop_del(struct odkd *d, struct watch *w);

typedef void (*timer_fn)(struct odkd *d, void *ptr);
/* Calls fn(ptr) after ms milliseconds; returns an id for loop_timer_cancel. */
uint64_t loop_timer(struct odkd *d, uint64_t ms, timer_fn fn, void *ptr);
void loop_timer_cancel(struct odkd *d, uint64_t id);
uint64_t loop_now_ms(void);
/* Frees ptr with fn after the current batch of events, so a watch that an
 * earlier callback in the batch removed is never touched after its free. */
void loop_defer_free(struct odkd *d, void (*fn)(void *ptr), void *ptr);
/* Runs until d->quit. */
int loop_run(struct odkd *d);

/* ---- driver instances (instance.c) ----------------------------------- */

typedef enum inst_state {
    INST_STARTING,
    INST_RUNNING,
    INST_STOPPING,
    INST_BACKOFF, /* crashed; waiting to restart */
    INST_FAILED,  /* start failed or crashed too often; stays down */
} inst_state;

#define INST_LOG_LINES 64 /* last lines kept for crash reports (backtraces included) */

/* Per-personality deadlines (OdkDeadlines: {"start", "stop", "power",
 * "call"} in milliseconds; call 0 turns the host's watchdog off). */
struct deadlines {
    uint64_t start_ms, stop_ms, power_ms, call_ms;
};
#define DEFAULT_START_MS 10000
#define DEFAULT_STOP_MS 5000
#define DEFAULT_POWER_MS 5000
#define DEFAULT_CALL_MS 30000

struct instance {
    uint32_t id;
    odk_bundle *bundle; /* borrowed from the catalog entry (kept alive by it) */
    struct catalog_entry *entry;
    char *personality_name;
    odk_value *personality;
    char *category;
    uint64_t provider_id;
    uint64_t node_id; /* the driver's service node, 0 while down */
    inst_state state;
    pid_t pid;
    int ctl_fd, log_fd;
    struct watch ctl_watch, log_watch;
    uint32_t restarts;
    uint64_t crash_window_start;
    uint32_t crash_count;
    uint64_t deadline_timer, backoff_timer;
    uint32_t next_seq;
    uint32_t start_seq, stop_seq;
    bool terminate; /* going away for good once the host is down */
    const char *kill_reason; /* why odkd killed it ("missed its stop deadline"), or NULL */
    bool debug;              /* odkd --debug: host waits for a debugger before init */
    struct deadlines deadlines;
    uint64_t memory_limit_kib; /* OdkMemoryLimitMB, 0 = none */
    uint64_t op_started_ms;    /* when the operation the deadline guards began */
    /* Log rate limiting (a flooding driver must not take odkd with it). */
    uint64_t log_window_ms;
    uint32_t log_lines_in_window, log_dropped;
    /* System power transition in progress (power.c). */
    uint32_t power_seq;
    struct power_tx *power_tx;
    char log_partial[512];
    size_t log_partial_len;
    char *log_lines[INST_LOG_LINES];
    size_t log_next;
    int log_file;
    char *log_path;     /* STATE/logs/BUNDLE.log */
    uint64_t log_bytes; /* its size, for rotation */
    struct instance *next;
};

struct instance *instance_launch(struct odkd *d, struct catalog_entry *e, const char *pers_name,
                                 const odk_value *personality, reg_node *provider);
/* Stops the instance for good (stop, then kill at the deadline). */
void instance_terminate(struct odkd *d, struct instance *in);
/* Called from the SIGCHLD handler for every reaped child. */
void instance_reaped(struct odkd *d, pid_t pid, int wstatus);
struct instance *instance_by_node(struct odkd *d, uint64_t node_id);
odk_value *instance_describe(struct odkd *d, const struct instance *in);
const char *inst_state_name(inst_state s);
/* Terminates every instance attached to node or below it; when all are gone
 * (now or later) calls done(d, ctx). */
void instance_terminate_tree(struct odkd *d, reg_node *node, void (*done)(struct odkd *, void *),
                             void *ctx);

/* Reads OdkDeadlines and OdkMemoryLimitMB from a personality. */
void instance_read_limits(struct instance *in);
/* The host's resident memory in KiB (0 if unknown). */
uint64_t instance_rss_kib(const struct instance *in);
/* Kills the host for a stated reason; the reap restarts it (unless it is
 * being terminated), reporting the reason instead of "crashed". */
void instance_kill(struct odkd *d, struct instance *in, const char *reason);
/* Sends a request to the host; returns its sequence number (0 on failure). */
uint32_t instance_request(struct instance *in, odk_value *args);

/* ---- crash reports (crash.c) ------------------------------------------ */

/* Logs and files a report (STATE/crashes/) for a host that died: reason,
 * the backtrace it printed (symbolised with addr2line), its last lines. */
void crash_report(struct odkd *d, struct instance *in, pid_t pid, const char *reason);

/* ---- system power (power.c) ------------------------------------------- */

struct power_tx;
/* Starts a transition of every running driver to state (ODK_POWER_OFF or
 * ON) in tree order; replies to conn_id/seq with the results at the end.
 * ODK_E_BUSY while another transition runs. */
int power_begin(struct odkd *d, uint32_t state, uint64_t conn_id, uint32_t seq);
/* The host answered a power request (seq matches in->power_seq). */
void power_reply(struct odkd *d, struct instance *in, int status);
/* The instance's power deadline passed, or it died mid-transition. */
void power_instance_gone(struct odkd *d, struct instance *in, bool missed_deadline);

/* ---- health (health.c) ------------------------------------------------ */

/* Starts the periodic check of memory limits. */
void health_start(struct odkd *d);

/* ---- catalog (catalog.c) --------------------------------------------- */

struct catalog_entry {
    odk_bundle *bundle;
    bool installed; /* copied into STATE/bundles by odkctl install */
    /* The entry this install replaced, until one instance of the new build
     * has started: if none can, the install rolls back to it. */
    struct catalog_entry *previous;
    struct catalog_entry *next;
};

int catalog_load_dir(struct odkd *d, const char *dir);
struct catalog_entry *catalog_find(struct odkd *d, const char *bundle_id);
/* Installs the bundle folder at path: copies it into the state dir and
 * replaces an older build.  *changed says whether anything changed. */
int catalog_install(struct odkd *d, const char *path, bool *changed, char *err, size_t err_len);
int catalog_uninstall(struct odkd *d, const char *bundle_id);
/* An instance of e could not start (reason says why).  If e is a fresh
 * install of a newer build, the previous build comes back (logged). */
void catalog_start_failed(struct odkd *d, struct catalog_entry *e, const char *reason);
/* Loads the installed builds recorded in STATE/bundles (ID.current). */
int catalog_load_installed(struct odkd *d);
/* Bundles as an array for match_rank; caller frees the array only. */
odk_bundle **catalog_bundles(struct odkd *d, size_t *n);

/* ---- matching glue (matcher.c) --------------------------------------- */

/* Runs matching on node (when registered) and launches winners. */
void matcher_run_node(struct odkd *d, reg_node *node);
/* Runs matching on every registered node. */
void matcher_run_all(struct odkd *d);
/* Registers node (REG_INACTIVE -> REG_REGISTERED), tells watchers, matches. */
void matcher_register(struct odkd *d, reg_node *node);
/* Removes node and everything below it from the registry: tells watchers
 * ("terminated"), drops what families attached to the nodes (tty links).
 * The instances attached below must already be terminating. */
void matcher_remove_node(struct odkd *d, reg_node *node);

/* ---- client connections (server.c) ----------------------------------- */

struct conn;
int server_listen(struct odkd *d);
/* Sends event {"event": name, "node": describe(node)} to every watcher whose
 * matching dictionary matches node. */
void server_notify(struct odkd *d, const char *event, reg_node *node);
/* Closes every client connection and the listening socket (at exit). */
void server_close_all(struct odkd *d);
/* Replies later to a request that waited (e.g. unplug). */
void server_reply_later(struct odkd *d, uint64_t conn_id, uint32_t seq, int status,
                        odk_value *body);

/* ---- the sim bus (src/sim/sim.c) ------------------------------------- */

int sim_init(struct odkd *d);
/* Plugs a device described by {"class": ..., "properties": {...}}. */
int sim_plug(struct odkd *d, const odk_value *desc, uint64_t *id, char *err, size_t err_len);
int sim_load_file(struct odkd *d, const char *path);
int sim_load_default(struct odkd *d);

/* ---- the daemon ------------------------------------------------------ */

struct odkd {
    char *state_dir;
    char *sock_path;
    char *dev_dir;
    char *host_path; /* odk-driver-host */
    char **driver_dirs;
    size_t n_driver_dirs;
    bool dev_mode;
    bool quit;
    char **debug_bundles; /* --debug BUNDLE-ID */
    size_t n_debug_bundles;
    uint32_t power_state;
    struct power_tx *power;

    int epfd;
    struct timer *timers;
    struct deferred *deferred;
    uint64_t next_timer_id;

    int listen_fd, sig_fd;
    struct watch listen_watch, sig_watch;
    struct conn *conns;
    uint64_t next_conn_id;

    registry *reg;
    reg_node *resources, *sim_bus;

    struct catalog_entry *catalog;
    struct catalog_entry *retired; /* replaced or uninstalled; freed at exit */
    struct instance *instances;
    uint32_t next_instance_id;
    struct tree_wait *tree_waits;
    struct pty_link *pty_links; /* serial family: tty./cu. links per node */
};

#endif
