/* SPDX-License-Identifier: MIT */
/* hostreq.h — requests driver hosts send odkd on their control channel:
 * register-service, set-property, publish-node, withdraw-node, and those
 * families add (module host_ops). */
#ifndef ODK_DAEMON_HOSTREQ_H
#define ODK_DAEMON_HOSTREQ_H

#include "daemon/core/module.h"

struct odkd;

/* Starts answering host requests (sets d->host_request).  ODK_E_EXISTS
 * (logged) when a module's request has the name of one of odkd's own. */
int hostreq_init(struct odkd *d);

/* The node named by args' "node" if the asking instance owns it (its
 * service node or one it published), else NULL. */
reg_node *hostreq_own_node(struct host_request *r);

#endif
