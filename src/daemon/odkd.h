/* SPDX-License-Identifier: MIT */
/* odkd.h — the daemon's context: one struct odkd per daemon, passed to
 * everything (no globals but the module table), touched only by the single
 * loop thread.
 *
 * odkd is built in layers, and calls go down only (tools/check-layers,
 * run by `make check`, fails the build otherwise):
 *
 *   core/         loop, registry, bundles, matching, the module table
 *   bookkeeping/  catalog, driver hosts (spawn, log), instances, crashes, health
 *   policy/       the manager (register -> match -> launch, roll back,
 *                 terminate, registry events) and system power
 *   front/        the client socket and the host-request server;
 *                 src/buses/NAME and src/families/NAME are front ends too
 *
 * A lower layer reaches a higher one only through a callback it was given
 * (instance hooks, event subscribers, module hooks).  Each layer's fields
 * are grouped below; a layer reads its own fields and those of layers under
 * it.
 */
#ifndef ODK_DAEMON_ODKD_H
#define ODK_DAEMON_ODKD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/bookkeeping/host.h"
#include "daemon/core/loop.h"
#include "daemon/core/module.h"
#include "daemon/core/registry.h"
#include "common/wire.h"

struct catalog_entry;
struct instance;
struct instance_hooks;
struct tree_wait;
struct power_tx;
struct subscriber;
struct server;

/* A crashed driver's first restart waits this long (ms), doubling for each
 * further restart up to ODKD_BACKOFF_MAX_MS; --restart-backoff changes it. */
#define ODKD_BACKOFF_FIRST_MS 100
#define ODKD_BACKOFF_MAX_MS 5000

struct odkd {
    /* Configuration (main.c). */
    char *state_dir;
    char *sock_path;
    char *host_path; /* odk-driver-host */
    char **driver_dirs;
    size_t n_driver_dirs;
    char **debug_bundles; /* --debug BUNDLE-ID */
    size_t n_debug_bundles;
    uint32_t backoff_first_ms; /* --restart-backoff (ODKD_BACKOFF_FIRST_MS) */
    bool no_spare_host;        /* --no-spare-host */
    bool no_zygote;            /* --no-zygote: spares are exec'd, not forked by the zygote */
    char *trust_dir;           /* --trust-dir: the .pub keys odkd trusts (docs/trust.md) */
    bool dev;                  /* --dev: development keys and wildcard entitlements */
    bool no_sandbox;           /* --no-sandbox or ODK_NO_SANDBOX=1 */
    bool quit;
    bool stopping; /* shutting down: stopping every driver before exit */
    int sig_fd; /* SIGCHLD, SIGINT, SIGTERM, SIGHUP */
    struct watch sig_watch;

    /* core */
    int epfd;
    struct timer *timers;
    struct deferred *deferred;
    uint64_t next_timer_id;
    registry *reg;
    reg_node *resources; /* IOUserResources */
    void *module_state[MODULE_MAX];

    /* bookkeeping */
    struct catalog_entry *catalog;
    struct catalog_entry *retired; /* replaced or uninstalled; freed at exit */
    struct match_index *match_index; /* of the catalog; catalog_index builds it */
    struct host_proc spare[HOST_SPARES]; /* hosts started in advance (host.c); pid 0: none */
    bool spare_wanted;
    uint64_t spare_timer;
    bool spare_timer_late; /* the timer is a refill held back for a start */
    unsigned spare_deaths;
    struct host_zygote *zygote; /* forks the spares (host.c), or NULL */
    struct host_primes *primes; /* spares primed for a bundle (host.c), or NULL: none */
    struct host_uid *host_uids; /* each bundle's sandbox uid (host.c) */
    int empty_netns;            /* every sandboxed host's network namespace, or -1 (host.c) */
    int seccomp_programs;       /* every host's seccomp programs (a sealed memfd), or -1 */
    /* The build tree's src/ beside the host binary, resolved (realpath) at
     * the first sandboxed launch, not at every one; NULL when it is not
     * there (host_sandbox_args). */
    char *build_src_dir;
    bool build_src_resolved;
    struct instance *instances;
    uint32_t next_instance_id;
    struct tree_wait *tree_waits;
    const struct instance_hooks *hooks; /* how instances report upward (policy sets) */
    /* A host sent a request (the front end's host-request server sets). */
    void (*host_request)(struct odkd *d, struct instance *in, wire_msg *m);
    uint32_t power_state;               /* ODK_POWER_ON or ODK_POWER_OFF */

    /* policy */
    struct power_tx *power; /* the transition under way, or NULL */
    struct subscriber *subscribers;

    /* front */
    struct server *server;
};

#endif
