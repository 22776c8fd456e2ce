/* SPDX-License-Identifier: MIT */
/* requests.h — the operations odkd's socket offers (beside the watch
 * operations, which live with the connections in server.c, and those
 * modules add). */
#ifndef ODK_DAEMON_REQUESTS_H
#define ODK_DAEMON_REQUESTS_H

#include "daemon/core/module.h"

/* {NULL}-terminated. */
extern const struct client_op client_requests[];

/* Root or odkd's own user. */
bool request_privileged(const struct client_request *r);
/* The node named by the integer argument "node", or NULL with r->err set. */
reg_node *request_node(struct client_request *r);

#endif
