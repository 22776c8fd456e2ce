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

void host_link_set(host_request_fn fn, void *ctx);
int host_link_request(const char *op, odk_value *args, odk_value **reply);
int host_link_request_fds(const char *op, odk_value *args, odk_value **reply, int *fds,
                                 size_t *n_fds);

#endif
