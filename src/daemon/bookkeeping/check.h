/* SPDX-License-Identifier: MIT */
/* check.h — what `odkctl install` can learn about a bundle before it is
 * installed, without running any of its code in odkd: a throwaway
 * odk-driver-host (the same process, in the same sandbox, as a driver's)
 * loads the shared object with every symbol bound now and looks up each
 * IOUserClass the personalities name. */
#ifndef ODK_DAEMON_CHECK_H
#define ODK_DAEMON_CHECK_H

#include "daemon/core/bundle.h"

struct odkd;

/* How long the throwaway host may take to load the shared object (its
 * constructors included) before it is killed and the install refused. */
#define CHECK_DEADLINE_MS 10000

/* Called once on the loop thread: ODK_OK, or ODK_E_LOAD with why naming
 * the undefined symbol or the missing class (ODK_E_TIMEOUT when the host
 * did not answer in CHECK_DEADLINE_MS, ODK_E_IO when it could not be
 * started).  why is borrowed for the call. */
typedef void (*check_done_fn)(struct odkd *d, void *ctx, int status, const char *why);

/* Starts checking b (borrowed: only its executable, id and personalities
 * are read, now).  ODK_OK: done(d, ctx, ...) runs later, exactly once.
 * Otherwise done never runs: ODK_E_NOMEM, ODK_E_LOAD (the shared object
 * cannot be opened), ODK_E_IO (no host could be started). */
int check_bundle(struct odkd *d, const bundle *b, check_done_fn done, void *ctx);

#endif
