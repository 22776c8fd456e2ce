/* SPDX-License-Identifier: MIT */
/* outq.h — a client connection's outgoing queue: the replies and registry
 * events odkd could not send at once because the client's socket was full.
 *
 * The common case costs what a plain send costs: with nothing waiting, a
 * message is encoded and sent at once.  Only when the socket answers
 * EAGAIN does it wait here, encoded, and every later message waits behind
 * it (order is kept) until outq_flush, run when the socket is writable
 * again, sends them.  A property event (the node's whole description) for
 * a watch and node whose last waiting event is also a property event
 * replaces it: the client ends with the same state, not every step.
 * Nothing else is ever dropped or reordered: past the bounds below the
 * caller disconnects the client (and says why), instead.
 *
 * Loop-free and single-threaded (odkd's loop thread); the unit tests in
 * test_outq.c drive it on a socketpair. */
#ifndef ODK_DAEMON_OUTQ_H
#define ODK_DAEMON_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "odk/value.h"

/* At most this many messages wait for one client, beyond what its
 * socket's buffer holds (~200 KiB, a few hundred events): a watcher that
 * fell this far behind, with its property events already coalesced, has
 * stopped reading.  docs/architecture.md, "limits". */
#define OUTQ_MAX_MSGS 4096
/* ...and at most this many bytes of encoded messages (node descriptions
 * are 0.5-2 KiB; this bounds odkd's memory per stuck client). */
#define OUTQ_MAX_BYTES (8u * 1024 * 1024)
/* ...and at most this many descriptors (replies that pass one, e.g. a
 * connection's socket), so a client cannot drain odkd's descriptor table. */
#define OUTQ_MAX_FDS 16

struct outq_item;

struct outq {
    struct outq_item *head, *tail;
    size_t count;     /* messages waiting */
    size_t bytes;     /* their encoded bodies */
    size_t fds;       /* descriptors they hold */
    size_t coalesced; /* property events replaced by a later one (ever) */
};

/* What a message is, for coalescing: a property event of (watch, node)
 * may replace the last waiting event of the same watch and node when that
 * one is a property event too. */
struct outq_key {
    uint64_t node;
    uint32_t watch;
    bool property; /* this message is a property event (whole state) */
};

/* Sends a message (type, seq, status, body borrowed, may be NULL; fd -1 or
 * a descriptor to pass, borrowed: dup'd when it must wait) on sock, or
 * queues it behind those already waiting.  key NULL: never coalesced (a
 * reply, a registered/started/terminated event).  Returns ODK_OK when
 * sent, ODK_E_AGAIN when queued (the caller watches sock for EPOLLOUT and
 * calls outq_flush), ODK_E_LIMIT when the queue is past a bound (nothing
 * queued: the caller disconnects the client), ODK_E_DISCONNECTED when the
 * peer has gone, ODK_E_INVALID for a body above WIRE_MAX_BODY, ODK_E_NOMEM
 * / ODK_E_IO (nothing queued). */
int outq_send(struct outq *q, int sock, uint16_t type, uint32_t seq, int32_t status,
              const odk_value *body, int fd, const struct outq_key *key);
/* Sends what waits, in order, until the socket is full.  ODK_OK when
 * nothing is left, ODK_E_AGAIN when some still waits, ODK_E_DISCONNECTED /
 * ODK_E_IO on a dead socket. */
int outq_flush(struct outq *q, int sock);
/* True when something waits. */
static inline bool outq_pending(const struct outq *q)
{
    return q->head != NULL;
}
/* Frees what waits (the connection is closing). */
void outq_clear(struct outq *q);

#endif
