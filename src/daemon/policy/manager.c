/* SPDX-License-Identifier: MIT */
/* The manager: odkd's one place of policy.  When a node registers or a
 * bundle arrives it ranks personalities and launches the winners; it rolls
 * a failed install back, stops what an uninstall or an unplug takes away,
 * and publishes registry events to whoever subscribed (the client
 * server).  It sits above the catalog and the instances and hears from
 * them only through the hooks it installs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/bookkeeping/catalog.h"
#include "daemon/bookkeeping/check.h"
#include "daemon/bookkeeping/instance.h"
#include "daemon/core/match.h"
#include "daemon/core/match_index.h"
#include "daemon/core/module.h"
#include "daemon/core/msg.h"
#include "daemon/odkd.h"
#include "daemon/policy/manager.h"
#include "daemon/policy/power.h"
#include "odk/driver.h"
#include "odk/log.h"
#include "odk/status.h"

/* After the grace period's SIGKILL, how long odkd waits for the hosts to
 * be reaped before it exits anyway (reap_over). */
#define REAP_GRACE_MS 2000
/* Match categories that can have a driver on one node at once; a node
 * with more drivers attached is matched as if the extra ones were absent
 * (and logged). */
#define MAX_CATEGORIES_PER_NODE 64

struct subscriber {
    manager_event_fn fn;
    void *ctx;
    struct subscriber *next;
};

int manager_subscribe(struct odkd *d, manager_event_fn fn, void *ctx)
{
    struct subscriber *s = malloc(sizeof *s);
    if (!s)
        return ODK_E_NOMEM;
    *s = (struct subscriber){fn, ctx, d->subscribers};
    d->subscribers = s;
    return ODK_OK;
}

void manager_publish(struct odkd *d, const char *event, reg_node *node)
{
    for (struct subscriber *s = d->subscribers; s; s = s->next)
        s->fn(d, event, node, s->ctx);
}

/* ---- matching -------------------------------------------------------- */

/* Match categories that already have a driver on node. */
static size_t taken_categories(struct odkd *d, const reg_node *node, const char **taken,
                               size_t cap)
{
    size_t n = 0;
    for (struct instance *in = d->instances; in && n < cap; in = in->next)
        if (in->provider_id == node->id && !in->terminate)
            taken[n++] = in->category;
    return n;
}

void manager_match(struct odkd *d, reg_node *node)
{
    if (node->state == REG_INACTIVE || node->state == REG_TERMINATING)
        return;
    match_ref *refs = NULL;
    size_t n_refs = 0;
    struct match_index *ix = catalog_index(d);
    if (!ix || match_index_candidates(ix, d->reg, node, &refs, &n_refs) < 0) {
        odk_error("out of memory matching node %llu", (unsigned long long)node->id);
        return;
    }
    const char *taken[MAX_CATEGORIES_PER_NODE];
    size_t n_taken = taken_categories(d, node, taken, MAX_CATEGORIES_PER_NODE);
    if (n_taken == MAX_CATEGORIES_PER_NODE)
        odk_warn("node %llu has %d or more drivers attached (MAX_CATEGORIES_PER_NODE)",
                 (unsigned long long)node->id, MAX_CATEGORIES_PER_NODE);
    match_candidate *winners = NULL;
    size_t n_winners = 0;
    int st = match_rank_some(d->reg, node, refs, n_refs, taken, n_taken, &winners, &n_winners);
    if (st < 0)
        odk_error("matching node %llu: %s", (unsigned long long)node->id, odk_strerror(st));
    for (size_t i = 0; st == ODK_OK && i < n_winners; i++) {
        struct catalog_entry *e = catalog_find(d, winners[i].bundle->id);
        if (e && !instance_launch(d, e, winners[i].name, winners[i].personality, node))
            odk_error("out of memory launching %s on node %llu", e->bundle->id,
                      (unsigned long long)node->id);
    }
    free(winners);
    free(refs);
}

static int match_one(reg_node *n, void *ctx)
{
    manager_match(ctx, n);
    return 0;
}

void manager_match_all(struct odkd *d)
{
    registry_walk(registry_root(d->reg), match_one, d);
}

void manager_register(struct odkd *d, reg_node *node)
{
    node->state = REG_REGISTERED;
    manager_publish(d, "registered", node);
    manager_match(d, node);
}

/* ---- nodes going away ------------------------------------------------- */

static int node_gone(reg_node *n, void *ctx)
{
    struct odkd *d = ctx;
    if (n->state != REG_INACTIVE)
        manager_publish(d, "terminated", n);
    modules_node_gone(d, n);
    return 0;
}

/* Tells subscribers and modules about node and everything under it, then
 * frees them: the one way a subtree leaves the registry. */
static void remove_subtree(struct odkd *d, reg_node *node)
{
    registry_walk(node, node_gone, d);
    registry_remove(d->reg, node);
}

void manager_remove_now(struct odkd *d, reg_node *node)
{
    instance_terminate_tree(d, node, false, NULL, NULL);
    remove_subtree(d, node);
}

struct removal {
    uint64_t node_id;
    void (*done)(struct odkd *, void *);
    void *ctx;
};

static void tree_stopped(struct odkd *d, void *ctx)
{
    struct removal *r = ctx;
    reg_node *n = registry_find(d->reg, r->node_id);
    if (n)
        remove_subtree(d, n);
    if (r->done)
        r->done(d, r->ctx);
    free(r);
}

void manager_remove_tree(struct odkd *d, reg_node *node, void (*done)(struct odkd *, void *),
                         void *ctx)
{
    struct removal *r = malloc(sizeof *r);
    if (!r) {
        odk_error("out of memory; removing node %llu at once", (unsigned long long)node->id);
        manager_remove_now(d, node);
        if (done)
            done(d, ctx);
        return;
    }
    *r = (struct removal){node->id, done, ctx};
    node->state = REG_TERMINATING;
    instance_terminate_tree(d, node, false, tree_stopped, r);
}

/* ---- what instances report -------------------------------------------- */

static void on_started(struct odkd *d, struct instance *in)
{
    if (d->power_state == ODK_POWER_OFF) {
        /* Started (or restarted) while the system sleeps or goes to sleep:
         * tell it, so it is in the same state as everyone else.  No reply
         * is awaited; the next transition carries a deadline as usual. */
        struct msg m = msg_begin();
        msg_str(&m, "op", "power");
        msg_int(&m, "state", ODK_POWER_OFF);
        if (!instance_request(in, msg_done(&m), NULL, 0))
            odk_warn("%s#%u started while asleep and could not be told", in->bundle->id, in->id);
    }
    reg_node *n = registry_find(d->reg, in->node_id);
    if (n)
        manager_publish(d, "started", n);
}

/* Stops the instances of e; matching runs again as each one is gone, so a
 * new build never runs beside the old one on the same node.  With none to
 * stop, matching runs now. */
static void stop_and_rematch(struct odkd *d, struct catalog_entry *e)
{
    size_t stopped = 0;
    for (struct instance *in = d->instances, *next; in; in = next) {
        next = in->next;
        if (in->entry == e && !in->terminate) {
            in->rematch = true;
            stopped++;
            instance_terminate(d, in);
        }
    }
    if (!stopped)
        manager_match_all(d);
}

static void on_gone(struct odkd *d, struct instance *in)
{
    if (in->rematch)
        manager_match_all(d);
}

static void on_start_failed(struct odkd *d, struct instance *in, const char *reason)
{
    struct catalog_entry *e = in->entry;
    if (catalog_rollback(d, e, reason))
        stop_and_rematch(d, e);
}

static void on_reply(struct odkd *d, struct instance *in, const wire_msg *m)
{
    if (in->power_seq && m->hdr.seq == in->power_seq)
        power_reply(d, in, m->hdr.status);
}

static void on_host_gone(struct odkd *d, struct instance *in)
{
    if (in->power_tx)
        power_instance_gone(d, in);
}

static void on_remove_node(struct odkd *d, reg_node *node)
{
    remove_subtree(d, node);
}

static const struct instance_hooks hooks = {
    .started = on_started,
    .start_failed = on_start_failed,
    .reply = on_reply,
    .host_gone = on_host_gone,
    .gone = on_gone,
    .remove_node = on_remove_node,
};

void manager_init(struct odkd *d)
{
    d->hooks = &hooks;
}

/* ---- bundles ---------------------------------------------------------- */

struct install {
    char *path;
    manager_install_fn done;
    void *ctx;
};

/* The throwaway host answered: install only a bundle that can load. */
static void install_checked(struct odkd *d, void *ctx, int status, const char *why)
{
    struct install *job = ctx;
    char err[MODULE_ERR_MAX] = "";
    bool changed = false;
    struct catalog_entry *replaced = NULL;
    if (status < 0) {
        snprintf(err, sizeof err, "%s: not installed: %s", job->path, why);
    } else {
        status = catalog_install(d, job->path, &changed, &replaced, err, sizeof err);
        if (status == ODK_OK && replaced)
            stop_and_rematch(d, replaced);
        else if (status == ODK_OK && changed)
            manager_match_all(d);
    }
    job->done(d, job->ctx, status, changed, err);
    free(job->path);
    free(job);
}

/* The same build again: nothing to check; the catalog says "unchanged"
 * (from the loop, as done always runs after manager_install returned). */
static void install_unchanged(struct odkd *d, void *ptr)
{
    install_checked(d, ptr, ODK_OK, NULL);
}

int manager_install(struct odkd *d, const char *path, manager_install_fn done, void *ctx,
                    char *err, size_t err_len)
{
    bundle *b = NULL;
    int st = bundle_load(path, &b, err, err_len);
    /* An untrusted bundle's code never runs, not even in the check host. */
    if (st == ODK_OK && (st = catalog_verify(d, b, err, err_len)) < 0)
        bundle_free(b);
    if (st < 0)
        return st;
    struct install *job = calloc(1, sizeof *job);
    if (job)
        job->path = strdup(path);
    if (!job || !job->path) {
        free(job);
        bundle_free(b);
        return ODK_E_NOMEM;
    }
    job->done = done;
    job->ctx = ctx;
    /* The build that runs already passed (its install was checked, or it
     * came from a --drivers folder that start-up reads as it is): say
     * "unchanged" without a host. */
    struct catalog_entry *e = catalog_find(d, b->id);
    if (e && strcmp(e->bundle->build, b->build) == 0 &&
        strcmp(e->bundle->version, b->version) == 0) {
        bundle_free(b);
        if (loop_timer(d, 0, install_unchanged, job))
            return ODK_OK;
        free(job->path);
        free(job);
        return ODK_E_NOMEM;
    }
    /* No code of the bundle runs in odkd: a constructor in the shared
     * object runs only in the throwaway host. */
    st = check_bundle(d, b, install_checked, job);
    if (st < 0) {
        snprintf(err, err_len, "%s: cannot check %s: %s", path, b->executable, odk_strerror(st));
        free(job->path);
        free(job);
    }
    bundle_free(b);
    return st;
}

int manager_uninstall(struct odkd *d, const char *bundle_id)
{
    struct catalog_entry *e = NULL;
    int st = catalog_uninstall(d, bundle_id, &e);
    if (st == ODK_OK)
        stop_and_rematch(d, e); /* another bundle may match what it leaves */
    return st;
}

int manager_restart(struct odkd *d, const char *bundle_id)
{
    struct catalog_entry *e = catalog_find(d, bundle_id);
    if (!e)
        return ODK_E_NOT_FOUND;
    /* Fresh instances launch as the old ones are gone. */
    stop_and_rematch(d, e);
    return ODK_OK;
}

/* ---- exit ------------------------------------------------------------- */

static void all_stopped(struct odkd *d, void *ctx)
{
    (void)ctx;
    d->quit = true;
}

/* Who holds a killed host that was not reaped: a tracer (a debugger
 * attached to it gets its exit first, and odkd's SIGCHLD only once the
 * tracer lets go), or nothing odkd can see (a task the kernel has not let
 * die yet). */
static pid_t tracer_of(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    pid_t tracer = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "TracerPid: %d", &tracer) == 1)
            break;
    if (f)
        fclose(f);
    return tracer;
}

/* The hosts were killed REAP_GRACE_MS ago and some were still not reaped:
 * odkd does not wait for them forever (their SIGCHLD may never come while
 * a debugger holds them); they die with odkd (PR_SET_PDEATHSIG). */
static void reap_over(struct odkd *d, void *ptr)
{
    (void)ptr;
    for (struct instance *in = d->instances; in; in = in->next) {
        if (in->pid <= 0)
            continue;
        pid_t tracer = tracer_of(in->pid);
        if (tracer > 0)
            odk_warn("%s#%u (pid %d) was killed but not reaped: process %d traces it and "
                     "holds its exit; exiting without it",
                     in->bundle->id, in->id, (int)in->pid, (int)tracer);
        else
            odk_warn("%s#%u (pid %d) was killed but not reaped within %d ms; exiting without it",
                     in->bundle->id, in->id, (int)in->pid, REAP_GRACE_MS);
    }
    d->quit = true;
}

static void grace_over(struct odkd *d, void *ptr)
{
    (void)ptr;
    for (struct instance *in = d->instances; in; in = in->next)
        if (in->pid > 0)
            kill(in->pid, SIGKILL);
    loop_timer(d, REAP_GRACE_MS, reap_over, NULL);
}

void manager_stop_all(struct odkd *d, uint64_t grace_ms)
{
    d->quit = false;
    loop_timer(d, grace_ms, grace_over, NULL);
    instance_terminate_tree(d, registry_root(d->reg), true, all_stopped, NULL);
    loop_run(d);
}

void manager_free(struct odkd *d)
{
    while (d->subscribers) {
        struct subscriber *s = d->subscribers;
        d->subscribers = s->next;
        free(s);
    }
}
