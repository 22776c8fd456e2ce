/* SPDX-License-Identifier: MIT */
/* catalog.h — every bundle odkd knows: from --drivers folders and from
 * `odkctl install` (copied into STATE/bundles/).  The catalog never stops
 * or starts drivers itself: it says which entry's instances must stop, and
 * the manager does it. */
#ifndef ODK_DAEMON_CATALOG_H
#define ODK_DAEMON_CATALOG_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon/core/bundle.h"

struct odkd;

struct catalog_entry {
    bundle *bundle;
    bool installed; /* copied into STATE/bundles by odkctl install */
    /* The entry this install replaced, until one instance of the new build
     * has started: if none can, the install rolls back to it. */
    struct catalog_entry *previous;
    struct catalog_entry *next;
};

/* Loads every bundle folder under dir; a bad bundle is logged and skipped.
 * ODK_E_IO when dir cannot be read. */
/* Whether odkd may run b: bundle_verify against odkd's trust folder and
 * --dev.  ODK_E_ACCESS / ODK_E_MANIFEST with the sentence in err. */
int catalog_verify(struct odkd *d, const bundle *b, char *err, size_t err_len);
/* catalog_verify at a launch: skipped when no file of the bundle folder
 * nor of the trust folder changed (by its stat) since the last check of b
 * that passed, and all of them settled (catalog.c says why). */
int catalog_verify_launch(struct odkd *d, bundle *b, char *err, size_t err_len);

int catalog_load_dir(struct odkd *d, const char *dir);
/* Loads the installed builds recorded in STATE/bundles (ID.current). */
int catalog_load_installed(struct odkd *d);
/* Borrowed; NULL when no bundle has that id. */
struct catalog_entry *catalog_find(struct odkd *d, const char *bundle_id);
/* The bundles as an array for match_rank; the caller frees the array only.
 * NULL (with *n set) when out of memory. */
bundle **catalog_bundles(struct odkd *d, size_t *n);
/* The index of every personality of the catalog (match_index.h), built on
 * first use after each change; borrowed.  NULL when out of memory. */
struct match_index *catalog_index(struct odkd *d);
/* Installs the bundle folder at path: copies it into the state dir and
 * replaces an older build.  *changed says whether anything changed;
 * *replaced is the entry whose instances must now stop (or NULL).  Errors
 * of bundle_load, or ODK_E_IO, with a sentence in err. */
int catalog_install(struct odkd *d, const char *path, bool *changed,
                    struct catalog_entry **replaced, char *err, size_t err_len);
/* Retires the bundle; *removed is the entry whose instances must stop.
 * ODK_E_NOT_FOUND. */
int catalog_uninstall(struct odkd *d, const char *bundle_id, struct catalog_entry **removed);
/* An instance of e could not start.  If e is a fresh install that
 * replaced a build, that build comes back (logged) and true is returned:
 * e's instances must stop and matching run again. */
bool catalog_rollback(struct odkd *d, struct catalog_entry *e, const char *reason);
/* The build of e runs: its install is confirmed (no rollback any more). */
void catalog_confirm(struct catalog_entry *e);
/* Frees every entry (at exit). */
void catalog_free(struct odkd *d);

#endif
