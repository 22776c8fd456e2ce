/* SPDX-License-Identifier: MIT */
/* host_link.h — the runtime's line to odkd, provided by odk-driver-host.
 *
 * The runtime itself never opens sockets to odkd: the host installs a
 * request function at start-up.  Tests install their own (or none, in which
 * case every request answers ODK_E_DISCONNECTED).
 */
#ifndef ODK_RUNTIME_HOST_LINK_H
#define ODK_RUNTIME_HOST_LINK_H

#include <stddef.h>

#include "odk/value.h"

/* Sends {"op": op, ...args} to odkd and waits for its reply.  Takes
 * ownership of args (a dictionary or NULL).  *reply (when reply is not
 * NULL) receives the reply dictionary, owned by the caller.  fds (when not
 * NULL) receives up to *n_fds descriptors that came with the reply (the
 * caller owns them); *n_fds is set to how many. */
typedef int (*host_request_fn)(void *ctx, const char *op, odk_value *args, odk_value **reply,
                                   int *fds, size_t *n_fds);

/* Sends {"op": op, ...args} to odkd without waiting for its reply (takes
 * args).  odkd handles a host's requests in the order they come, so a
 * request sent after this one (or the start's reply) finds it done; an
 * error odkd answers later is logged by the host.  ODK_OK once sent. */
typedef int (*host_post_fn)(void *ctx, const char *op, odk_value *args);

void host_link_set(host_request_fn fn, void *ctx);
/* The host's post function (same ctx as host_link_set's); without one,
 * host_link_post waits for the reply as host_link_request does. */
void host_link_set_post(host_post_fn fn);
int host_link_post(const char *op, odk_value *args);
int host_link_request(const char *op, odk_value *args, odk_value **reply);
int host_link_request_fds(const char *op, odk_value *args, odk_value **reply, int *fds,
                                 size_t *n_fds);

#endif
