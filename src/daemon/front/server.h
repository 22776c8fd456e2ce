/* SPDX-License-Identifier: MIT */
/* server.h — odkd's socket: connections from odkctl and libodk, their
 * requests, and registry events to the apps that watch. */
#ifndef ODK_DAEMON_SERVER_H
#define ODK_DAEMON_SERVER_H

#include <stdint.h>

#include "odk/value.h"

struct odkd;
struct peer;

/* Listens on d->sock_path (mode 0666: access is decided per operation)
 * and subscribes to the manager's events.  A stale socket at the path is
 * replaced.  ODK_E_LIMIT for a path too long for a unix socket,
 * ODK_E_EXISTS when the path is not a socket or a module's operation has
 * the name of one of odkd's own, ODK_E_BUSY when another odkd
 * listens there, ODK_E_IO, ODK_E_NOMEM (all logged). */
int server_listen(struct odkd *d);
/* Replies to a request that answered later (r->later), taking body.  A
 * connection that closed meanwhile is skipped. */
void server_reply_later(struct odkd *d, uint64_t conn_id, uint32_t seq, int status,
                        odk_value *body);
/* The credentials of connection conn_id (borrowed: valid while the
 * request that asks is being handled), NULL when it has closed. */
const struct peer *server_peer(struct odkd *d, uint64_t conn_id);
/* What waits in the connections' outgoing queues (front/outq.h), for
 * ping: clients connected, messages waiting in all, and property events
 * coalesced since odkd started (closed connections' included). */
struct server_backlog {
    size_t clients, waiting, coalesced;
};
void server_backlog(struct odkd *d, struct server_backlog *out);
/* Closes every connection and the listening socket (at exit). */
void server_close_all(struct odkd *d);

#endif
