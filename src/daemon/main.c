/* SPDX-License-Identifier: MIT */
/* odkd — the driver manager.  Runs in the foreground, logs to stderr,
 * listens on a unix socket.  Never runs driver code.
 *
 * main() only assembles the layers (odkd.h): it parses the command line
 * (its own options and those modules declare), builds the registry, loads
 * the catalog, starts the front ends and runs the loop. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/trace.h"
#include "daemon/bookkeeping/catalog.h"
#include "daemon/bookkeeping/crash.h"
#include "daemon/bookkeeping/health.h"
#include "daemon/bookkeeping/instance.h"
#include "daemon/core/msg.h"
#include "daemon/front/hostreq.h"
#include "daemon/front/server.h"
#include "daemon/odkd.h"
#include "daemon/policy/manager.h"
#include "odk/driver.h"
#include "odk/version.h"
#include "odk/log.h"
#include "odk/status.h"

#include "common/defaults.h"

#ifndef ODK_CONFIG_TRUST_DIR
#define ODK_CONFIG_TRUST_DIR "/etc/odk/trust"
#endif

#define SHUTDOWN_GRACE_MS 3000
#define MAX_OPTIONS 64

enum { OPT_STATE = 1, OPT_SOCKET, OPT_DRIVERS, OPT_DEV, OPT_DEBUG, OPT_VERBOSE, OPT_HELP,
       OPT_VERSION, OPT_BACKOFF, OPT_NO_SPARE, OPT_NO_ZYGOTE, OPT_TRUST, OPT_NO_SANDBOX,
       OPT_MODULE = 100 };

static const struct option core_options[] = {
    {"state-dir", required_argument, 0, OPT_STATE}, {"socket", required_argument, 0, OPT_SOCKET},
    {"drivers", required_argument, 0, OPT_DRIVERS}, {"dev", no_argument, 0, OPT_DEV},
    {"debug", required_argument, 0, OPT_DEBUG},     {"verbose", no_argument, 0, OPT_VERBOSE},
    {"help", no_argument, 0, OPT_HELP},             {"version", no_argument, 0, OPT_VERSION},
    {"restart-backoff", required_argument, 0, OPT_BACKOFF},
    {"no-spare-host", no_argument, 0, OPT_NO_SPARE},
    {"no-zygote", no_argument, 0, OPT_NO_ZYGOTE},
    {"trust-dir", required_argument, 0, OPT_TRUST},
    {"no-sandbox", no_argument, 0, OPT_NO_SANDBOX},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: odkd [--state-dir DIR] [--socket PATH] [--drivers DIR]... [--debug ID]...\n"
               "            [--verbose] [--version] [module options]\n"
               "  --state-dir DIR  where odkd keeps logs, crash reports and installed bundles\n"
               "                   (default " ODK_DEFAULT_STATE_DIR ")\n"
               "  --socket PATH    the socket clients connect to (default DIR/odkd.sock, or\n"
               "                   " ODK_DEFAULT_RUN_DIR "/odkd.sock without --state-dir)\n"
               "  --drivers DIR    a folder of bundles (repeatable; default: the samples)\n"
               "  --debug ID       start that bundle's hosts stopped before the driver's init,\n"
               "                   for a debugger (odkctl debug ID prints the gdb line)\n"
               "  --trust-dir DIR  the public keys (DIR/*.pub) whose signatures odkd accepts;\n"
               "                   DIR/dev/*.pub only with --dev (default: BUILD/trust beside a\n"
               "                   build tree's odkd, else " ODK_CONFIG_TRUST_DIR ")\n"
               "  --dev            development mode: also accept bundles signed by the keys\n"
               "                   in the trust folder's dev/ and wildcard entitlements\n"
               "  --verbose        debug-level logging\n"
               "  --restart-backoff MS\n"
               "                   the wait before a crashed driver's first restart, doubling\n"
               "                   for each further one (default 100; 0 restarts at once;\n"
               "                   for tests and benchmarks)\n"
               "  --no-spare-host  start each driver host when it is needed, instead of\n"
               "                   keeping one started in advance\n"
               "  --no-zygote      exec each spare host, instead of having the zygote host\n"
               "                   fork it (each host then gets its own address layout)\n"
               "  --no-sandbox     run driver hosts unconfined, for debugging (also\n"
               "                   ODK_NO_SANDBOX=1; docs/trust.md)\n");
    for (size_t i = 0; i < module_count(); i++) {
        const struct odkd_module *m = module_at(i);
        for (const struct module_option *o = m->options; o && o->name; o++) {
            char opt[64];
            snprintf(opt, sizeof opt, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
            fprintf(f, "  %-16s %s (%s %s)\n", opt, o->help, m->kind, m->name);
        }
    }
}

static void on_signal(struct odkd *d, void *ptr, uint32_t events)
{
    (void)ptr;
    (void)events;
    struct signalfd_siginfo si;
    while (read(d->sig_fd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGCHLD) {
            int ws;
            pid_t pid;
            while ((pid = waitpid(-1, &ws, WNOHANG)) > 0)
                if (!host_spare_reaped(d, pid, ws))
                    instance_reaped(d, pid, ws);
        } else if (d->stopping) {
            /* A second signal (the demo's trap after the group's SIGTERM,
             * an impatient Ctrl-C) must not cut the drivers' stop short:
             * the grace period ends it anyway. */
            odk_info("signal %d (%s): already stopping", (int)si.ssi_signo,
                     sigabbrev_np((int)si.ssi_signo));
        } else {
            odk_info("signal %d (%s): shutting down", (int)si.ssi_signo,
                     sigabbrev_np((int)si.ssi_signo));
            d->quit = true;
        }
    }
}

static int make_dirs(struct odkd *d)
{
    const char *subs[] = {"", "/logs", "/crashes", "/bundles"};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s%s", d->state_dir, subs[i]);
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            odk_error("cannot create %s: %m", p);
            return ODK_E_IO;
        }
    }
    return ODK_OK;
}

/* rel resolved against the folder of odkd's own binary, if it exists. */
static char *beside_me(const char *rel)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0)
        return NULL;
    exe[n] = 0;
    char out[PATH_MAX + 64];
    snprintf(out, sizeof out, "%s/%s", dirname(exe), rel);
    return realpath(out, NULL);
}

/* In a build tree the host and the samples sit beside odkd
 * (build/bin/odk-driver-host, build/drivers); installed, they are where
 * odk_config.h says. */
static char *default_path(const char *rel, const char *installed)
{
    char *p = beside_me(rel);
    if (!p && installed)
        p = strdup(installed);
    return p;
}

static int add_string(char ***list, size_t *n, const char *s)
{
    char **grown = realloc(*list, sizeof(char *) * (*n + 1));
    if (!grown)
        return ODK_E_NOMEM;
    *list = grown;
    if (!(grown[*n] = strdup(s)))
        return ODK_E_NOMEM;
    (*n)++;
    return ODK_OK;
}

/* Core options and every module's, for getopt_long; the module options'
 * values are OPT_MODULE + their index in *owners. */
static size_t build_options(struct option *opts, const struct odkd_module **owners,
                            const char **names)
{
    size_t n = 0, k = 0;
    for (; n < sizeof core_options / sizeof core_options[0]; n++)
        opts[n] = core_options[n];
    for (size_t i = 0; i < module_count(); i++) {
        const struct odkd_module *m = module_at(i);
        for (const struct module_option *o = m->options; o && o->name; o++) {
            for (size_t c = 0; c < sizeof core_options / sizeof core_options[0]; c++) {
                if (strcmp(core_options[c].name, o->name) == 0) {
                    fprintf(stderr, "odkd: %s %s: option --%s is one of odkd's own\n", m->kind,
                            m->name, o->name);
                    abort();
                }
            }
            if (n == MAX_OPTIONS - 1) {
                fprintf(stderr, "odkd: more than %d options (MAX_OPTIONS); --%s dropped\n",
                        MAX_OPTIONS, o->name);
                break;
            }
            owners[k] = m;
            names[k] = o->name;
            opts[n++] = (struct option){o->name, o->arg ? required_argument : no_argument, 0,
                                        OPT_MODULE + (int)k};
            k++;
        }
    }
    opts[n] = (struct option){0, 0, 0, 0};
    return n;
}

/* 0 to go on, else the exit status. */
static int parse_args(struct odkd *d, int argc, char **argv)
{
    struct option opts[MAX_OPTIONS];
    const struct odkd_module *owners[MAX_OPTIONS];
    const char *names[MAX_OPTIONS];
    build_options(opts, owners, names);
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int st = ODK_OK;
        char err[512] = "";
        switch (c) {
        case OPT_STATE:
            free(d->state_dir);
            d->state_dir = realpath(optarg, NULL);
            if (!d->state_dir && mkdir(optarg, 0755) == 0)
                d->state_dir = realpath(optarg, NULL);
            if (!d->state_dir) {
                odk_error("--state-dir %s: %m", optarg);
                return 2;
            }
            break;
        case OPT_SOCKET:
            free(d->sock_path);
            d->sock_path = strdup(optarg);
            st = d->sock_path ? ODK_OK : ODK_E_NOMEM;
            break;
        case OPT_DRIVERS:
            st = add_string(&d->driver_dirs, &d->n_driver_dirs, optarg);
            break;
        case OPT_DEBUG:
            st = add_string(&d->debug_bundles, &d->n_debug_bundles, optarg);
            break;
        case OPT_DEV:
            d->dev = true;
            break;
        case OPT_TRUST:
            free(d->trust_dir);
            d->trust_dir = realpath(optarg, NULL);
            if (!d->trust_dir) {
                odk_error("--trust-dir %s: %m", optarg);
                return 2;
            }
            break;
        case OPT_VERBOSE:
            odk_log_set_level(ODK_LOG_DEBUG);
            break;
        case OPT_BACKOFF: {
            char *end;
            errno = 0;
            unsigned long ms = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || ms > 60000) {
                odk_error("--restart-backoff %s: want milliseconds, 0 to 60000", optarg);
                return 2;
            }
            d->backoff_first_ms = (uint32_t)ms;
            break;
        }
        case OPT_NO_SPARE:
            d->no_spare_host = true;
            break;
        case OPT_NO_ZYGOTE:
            d->no_zygote = true;
            break;
        case OPT_NO_SANDBOX:
            d->no_sandbox = true;
            break;
        case OPT_HELP:
            usage(stdout);
            return 1;
        case OPT_VERSION:
            printf("odkd %s (driver API %u)\n", ODK_VERSION_STRING, ODK_API_VERSION);
            return 1;
        default:
            if (c < OPT_MODULE) {
                usage(stderr);
                return 2;
            }
            st = owners[c - OPT_MODULE]->option(d, names[c - OPT_MODULE], optarg, err,
                                                sizeof err);
        }
        if (st < 0) {
            odk_error("%s", err[0] ? err : odk_strerror(st));
            return 2;
        }
    }
    if (optind < argc) {
        odk_error("unexpected argument '%s'", argv[optind]);
        return 2;
    }
    if (!d->state_dir) {
        /* The system odkd: its socket goes where clients look by default. */
        if (!d->sock_path) {
            if (mkdir(ODK_DEFAULT_RUN_DIR, 0755) < 0 && errno != EEXIST) {
                odk_error("cannot create %s: %m (give --state-dir, or --socket)",
                          ODK_DEFAULT_RUN_DIR);
                return 2;
            }
            d->sock_path = strdup(ODK_DEFAULT_RUN_DIR "/odkd.sock");
        }
        d->state_dir = realpath(ODK_DEFAULT_STATE_DIR, NULL);
        if (!d->state_dir && mkdir(ODK_DEFAULT_STATE_DIR, 0755) == 0)
            d->state_dir = realpath(ODK_DEFAULT_STATE_DIR, NULL);
        if (!d->state_dir) {
            odk_error("state folder %s: %m (give one with --state-dir)", ODK_DEFAULT_STATE_DIR);
            return 2;
        }
    }
    return 0;
}

static int fill_defaults(struct odkd *d)
{
#ifndef ODK_CONFIG_DRIVERS_DIR
#define ODK_CONFIG_DRIVERS_DIR NULL
#endif
#ifndef ODK_CONFIG_HOST_PATH
#define ODK_CONFIG_HOST_PATH NULL
#endif

    if (d->n_driver_dirs == 0) {
        char *dir = default_path("../drivers", ODK_CONFIG_DRIVERS_DIR);
        if (dir)
            add_string(&d->driver_dirs, &d->n_driver_dirs, dir);
        free(dir);
    }
    if (!d->trust_dir && !(d->trust_dir = default_path("../trust", ODK_CONFIG_TRUST_DIR)))
        return ODK_E_NOMEM;
    odk_info("trusting the keys in %s%s", d->trust_dir,
             d->dev ? "; development mode (--dev): also the keys in its dev/ folder, and "
                      "wildcard entitlements"
                    : "");
    const char *host_env = getenv("ODK_DRIVER_HOST");
    d->host_path = host_env ? strdup(host_env)
                            : default_path("odk-driver-host", ODK_CONFIG_HOST_PATH);
    if (!d->host_path) {
        odk_error("cannot find odk-driver-host (set ODK_DRIVER_HOST)");
        return ODK_E_NOT_FOUND;
    }
    if (!d->sock_path && asprintf(&d->sock_path, "%s/odkd.sock", d->state_dir) < 0) {
        d->sock_path = NULL;
        return ODK_E_NOMEM;
    }
    return make_dirs(d);
}

static int open_loop(struct odkd *d)
{
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP); /* the terminal running odkd closed: stop like Ctrl-C */
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    d->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (d->epfd < 0 || d->sig_fd < 0) {
        odk_error("cannot set up the event loop: %m");
        return ODK_E_IO;
    }
    return loop_add(d, &d->sig_watch, d->sig_fd, EPOLLIN, on_signal, NULL);
}

static int build_registry(struct odkd *d)
{
    char err[512];
    int st = registry_create(&d->reg);
    if (st == ODK_OK && (st = modules_define_classes(d->reg, err, sizeof err)) < 0)
        odk_error("%s", err);
    struct msg m = msg_begin();
    msg_bool(&m, "IOKit", true);
    odk_value *res = NULL;
    if (st == ODK_OK)
        st = msg_finish(&m, &res);
    else
        odk_value_free(msg_done(&m));
    if (st == ODK_OK)
        st = registry_add(d->reg, registry_root(d->reg), "IOUserResources", res, &d->resources);
    return st;
}

/* Everything odkd allocated, so LeakSanitizer and the fault campaign see
 * a clean exit. */
static void odkd_free(struct odkd *d)
{
    server_close_all(d);
    modules_fini(d);
    manager_free(d);
    instance_free_all(d);
    catalog_free(d);
    if (d->reg)
        registry_free(d->reg);
    loop_free(d);
    modules_free_state(d);
    for (size_t i = 0; i < d->n_driver_dirs; i++)
        free(d->driver_dirs[i]);
    free(d->driver_dirs);
    for (size_t i = 0; i < d->n_debug_bundles; i++)
        free(d->debug_bundles[i]);
    free(d->debug_bundles);
    if (d->sig_fd >= 0)
        close(d->sig_fd);
    if (d->epfd >= 0)
        close(d->epfd);
    free(d->state_dir);
    free(d->trust_dir);
    free(d->sock_path);
    free(d->host_path);
    free(d->build_src_dir);
    host_uids_free(d);
    host_netns_close(d);
}

int main(int argc, char **argv)
{
    struct odkd d = {.epfd = -1, .sig_fd = -1, .power_state = ODK_POWER_ON,
                     .spare = {[0 ... HOST_SPARES - 1] = {.ctl_fd = -1, .log_fd = -1}},
                     .empty_netns = -1,
                     .seccomp_programs = -1,
                     .backoff_first_ms = ODKD_BACKOFF_FIRST_MS};
    odk_log_set_tag("odkd");
    trace_open();
    if (modules_alloc_state(&d) < 0) {
        odk_error("out of memory");
        return 1;
    }
    int rc = parse_args(&d, argc, argv);
    if (rc) {
        odkd_free(&d);
        return rc == 1 ? 0 : rc;
    }
    rc = 1;
    if (fill_defaults(&d) < 0 || open_loop(&d) < 0 || build_registry(&d) < 0 ||
        modules_init(&d) < 0)
        goto out;
    host_sandbox_announce(&d);

    manager_init(&d);
    if (hostreq_init(&d) < 0)
        goto out;
    /* Listen first: an odkd that cannot (another one runs) stops before
     * it loads anything.  Clients wait in the backlog until the loop runs. */
    if (server_listen(&d) < 0)
        goto out;
    odk_info("listening on %s", d.sock_path);
    /* Installed builds first: they win over a --drivers folder's copy. */
    catalog_load_installed(&d);
    for (size_t i = 0; i < d.n_driver_dirs; i++)
        catalog_load_dir(&d, d.driver_dirs[i]);

    if (!d.no_spare_host)
        host_spare_start(&d);
    health_start(&d);
    manager_register(&d, d.resources);
    if (modules_start(&d) < 0)
        goto out;
    loop_run(&d);
    rc = 0;
out:
    d.stopping = true;
    host_spare_stop(&d);
    if (d.reg && d.epfd >= 0)
        manager_stop_all(&d, SHUTDOWN_GRACE_MS);
    crash_finish_all(&d); /* reports still being symbolised: written as they are */
    odkd_free(&d);
    odk_info("stopped");
    return rc;
}
