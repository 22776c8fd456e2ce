/* odkd — the driver manager.  Runs in the foreground, logs to stderr,
 * listens on STATE/odkd.sock.  Never runs driver code. */
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

#include "daemon/daemon.h"
#include "families/serial/pty.h"
#include "odk/log.h"
#include "odk/status.h"

#define SHUTDOWN_GRACE_MS 3000

static void usage(FILE *f)
{
    fprintf(f, "usage: odkd --state-dir DIR [--drivers DIR]... [--sim FILE] [--demo]\n"
               "            [--dev] [--dev-dir DIR] [--debug BUNDLE-ID]... [--verbose]\n"
               "  --state-dir DIR  where odkd keeps its socket, logs, crashes, installed bundles\n"
               "  --drivers DIR    a folder of bundles (repeatable; default: the build's drivers)\n"
               "  --sim FILE       plug the simulated devices listed in FILE\n"
               "  --demo           plug the built-in demo devices\n"
               "  --dev            development mode (accept development-signed bundles)\n"
               "  --dev-dir DIR    where serial ports get their tty./cu. links (default /dev)\n"
               "  --debug ID       start that bundle's hosts stopped before the driver's init,\n"
               "                   for a debugger (odkctl debug ID prints the gdb line)\n");
}

static void on_signal(struct odkd *d, void *ptr, uint32_t events)
{
    struct signalfd_siginfo si;
    while (read(d->sig_fd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGCHLD) {
            int ws;
            pid_t pid;
            while ((pid = waitpid(-1, &ws, WNOHANG)) > 0)
                instance_reaped(d, pid, ws);
        } else {
            odk_info("signal %d: shutting down", (int)si.ssi_signo);
            d->quit = true;
        }
    }
    (void)ptr;
    (void)events;
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

static char *beside_me(const char *rel)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0)
        return NULL;
    exe[n] = 0;
    char out[PATH_MAX + 64];
    snprintf(out, sizeof out, "%s/%s", dirname(exe), rel);
    char *real = realpath(out, NULL);
    return real ? real : strdup(out);
}

static void on_stopped_all(struct odkd *d, void *ctx)
{
    (void)ctx;
    d->quit = true;
}

static void shutdown_grace_over(struct odkd *d, void *ptr)
{
    (void)ptr;
    for (struct instance *in = d->instances; in; in = in->next)
        if (in->pid > 0)
            kill(in->pid, SIGKILL);
}

/* Stops every driver through the normal stop path, giving them
 * SHUTDOWN_GRACE_MS before SIGKILL; the loop runs until all are reaped. */
static void stop_everything(struct odkd *d)
{
    d->quit = false;
    loop_timer(d, SHUTDOWN_GRACE_MS, shutdown_grace_over, NULL);
    instance_terminate_tree(d, registry_root(d->reg), on_stopped_all, NULL);
    loop_run(d);
}

static void free_catalog(struct catalog_entry *e)
{
    while (e) {
        struct catalog_entry *next = e->next;
        bundle_free(e->bundle);
        free(e);
        e = next;
    }
}

/* Everything odkd allocated, so LeakSanitizer and the fault campaign see
 * a clean exit. */
static void odkd_free(struct odkd *d)
{
    server_close_all(d);
    free_catalog(d->catalog);
    free_catalog(d->retired);
    registry_free(d->reg);
    for (size_t i = 0; i < d->n_driver_dirs; i++)
        free(d->driver_dirs[i]);
    free(d->driver_dirs);
    if (d->sig_fd >= 0)
        close(d->sig_fd);
    if (d->epfd >= 0)
        close(d->epfd);
    free(d->state_dir);
    free(d->sock_path);
    free(d->dev_dir);
    free(d->host_path);
    for (size_t i = 0; i < d->n_debug_bundles; i++)
        free(d->debug_bundles[i]);
    free(d->debug_bundles);
}

int main(int argc, char **argv)
{
    struct odkd d = {.listen_fd = -1, .sig_fd = -1, .power_state = 1 /* ODK_POWER_ON */};
    const char *sim_file = NULL;
    bool demo = false;
    static const struct option opts[] = {
        {"state-dir", required_argument, 0, 's'}, {"drivers", required_argument, 0, 'd'},
        {"sim", required_argument, 0, 'S'},       {"demo", no_argument, 0, 'D'},
        {"dev", no_argument, 0, 'v'},             {"dev-dir", required_argument, 0, 'V'},
        {"verbose", no_argument, 0, 'x'},         {"help", no_argument, 0, 'h'},
        {"debug", required_argument, 0, 'g'},
        {0, 0, 0, 0}};
    int c;
    odk_log_set_tag("odkd");
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            d.state_dir = realpath(optarg, NULL);
            if (!d.state_dir && mkdir(optarg, 0755) == 0)
                d.state_dir = realpath(optarg, NULL);
            if (!d.state_dir) {
                odk_error("--state-dir %s: %m", optarg);
                return 2;
            }
            break;
        case 'd':
            d.driver_dirs = realloc(d.driver_dirs, sizeof(char *) * (d.n_driver_dirs + 1));
            d.driver_dirs[d.n_driver_dirs++] = strdup(optarg);
            break;
        case 'S':
            sim_file = optarg;
            break;
        case 'D':
            demo = true;
            break;
        case 'v':
            d.dev_mode = true;
            break;
        case 'V':
            d.dev_dir = realpath(optarg, NULL);
            if (!d.dev_dir) {
                odk_error("--dev-dir %s: %m", optarg);
                return 2;
            }
            break;
        case 'x':
            odk_log_set_level(ODK_LOG_DEBUG);
            break;
        case 'g':
            d.debug_bundles = realloc(d.debug_bundles, sizeof(char *) * (d.n_debug_bundles + 1));
            d.debug_bundles[d.n_debug_bundles++] = strdup(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!d.state_dir) {
        usage(stderr);
        return 2;
    }
    if (!d.dev_dir)
        d.dev_dir = strdup("/dev");
    if (d.n_driver_dirs == 0) {
        d.driver_dirs = malloc(sizeof(char *));
        d.driver_dirs[d.n_driver_dirs++] = beside_me("../drivers");
    }
    const char *host_env = getenv("ODK_DRIVER_HOST");
    d.host_path = host_env ? strdup(host_env) : beside_me("odk-driver-host");
    if (asprintf(&d.sock_path, "%s/odkd.sock", d.state_dir) < 0 || make_dirs(&d) < 0)
        return 1;

    d.epfd = epoll_create1(EPOLL_CLOEXEC);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    d.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (d.epfd < 0 || d.sig_fd < 0 || registry_create(&d.reg) < 0)
        return 1;
    loop_add(&d, &d.sig_watch, d.sig_fd, EPOLLIN, on_signal, NULL);

    odk_value *res = odk_value_new_dict();
    odk_dict_set_bool(res, "IOKit", true);
    registry_add(d.reg, registry_root(d.reg), "IOUserResources", res, &d.resources);
    if (sim_init(&d) < 0)
        return 1;

    /* Installed builds first: they win over a --drivers folder's copy. */
    catalog_load_installed(&d);
    for (size_t i = 0; i < d.n_driver_dirs; i++)
        catalog_load_dir(&d, d.driver_dirs[i]);

    if (server_listen(&d) < 0)
        return 1;
    odk_info("listening on %s", d.sock_path);

    health_start(&d);
    matcher_register(&d, d.resources);
    if (demo)
        sim_load_default(&d);
    if (sim_file)
        sim_load_file(&d, sim_file);

    loop_run(&d);
    stop_everything(&d);
    serial_pty_forget_all(&d);
    unlink(d.sock_path);
    odkd_free(&d);
    odk_info("stopped");
    return 0;
}
