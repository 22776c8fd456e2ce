/* SPDX-License-Identifier: MIT */
/* manager.h — odkd's policy: one manager decides what runs.
 *
 *   a node registers   -> match it -> launch the winners
 *   a start fails      -> roll a fresh install back -> match again
 *   install/uninstall  -> stop the old build's drivers -> match again
 *   a node goes away   -> terminate its drivers -> tell subscribers and
 *                         modules -> remove it
 *
 * The front ends subscribe to registry events ("registered", "started",
 * "property", "terminated") instead of being called. */
#ifndef ODK_DAEMON_MANAGER_H
#define ODK_DAEMON_MANAGER_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon/core/registry.h"

struct odkd;

/* Installs the instance hooks; call once before anything launches. */
void manager_init(struct odkd *d);

typedef void (*manager_event_fn)(struct odkd *d, const char *event, reg_node *node, void *ctx);
/* fn hears every registry event until odkd exits.  ODK_E_NOMEM. */
int manager_subscribe(struct odkd *d, manager_event_fn fn, void *ctx);
/* Tells every subscriber. */
void manager_publish(struct odkd *d, const char *event, reg_node *node);

/* Registers node (INACTIVE -> REGISTERED), tells subscribers, matches it. */
void manager_register(struct odkd *d, reg_node *node);
/* Runs matching on node (when registered), or on every node. */
void manager_match(struct odkd *d, reg_node *node);
void manager_match_all(struct odkd *d);

/* Terminates the drivers on node and below, then, once each has stopped
 * (answered its stop, or is gone; a host that stopped may still be
 * exiting), removes the subtree (telling subscribers and modules) and
 * calls done(d, ctx) (may be NULL). */
void manager_remove_tree(struct odkd *d, reg_node *node, void (*done)(struct odkd *, void *),
                         void *ctx);
/* Removes node and its subtree now; drivers under it are told to stop and
 * finish stopping on their own. */
void manager_remove_now(struct odkd *d, reg_node *node);

/* odkctl install: loads the bundle at path, checks it in a throwaway
 * driver host (bookkeeping/check.h: the shared object loads with every
 * symbol bound, and declares each IOUserClass its personalities name),
 * then installs it and matches again.  Returns ODK_OK when done(d, ctx,
 * status, changed, err) will run later, exactly once (err: the sentence
 * with a failure: the missing symbol or class); or an error of the
 * catalog now, with a sentence in err, and done never runs. */
typedef void (*manager_install_fn)(struct odkd *d, void *ctx, int status, bool changed,
                                   const char *err);
int manager_install(struct odkd *d, const char *path, manager_install_fn done, void *ctx,
                    char *err, size_t err_len);
/* odkctl uninstall / restart: ODK_E_NOT_FOUND. */
int manager_uninstall(struct odkd *d, const char *bundle_id);
int manager_restart(struct odkd *d, const char *bundle_id);

/* Stops every driver (at exit): runs the loop until all are reaped or
 * grace_ms passed, after which the rest are killed. */
void manager_stop_all(struct odkd *d, uint64_t grace_ms);
void manager_free(struct odkd *d);

#endif
