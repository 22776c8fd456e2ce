/* SPDX-License-Identifier: MIT */
/* client_internal.h — libodk's private parts, shared between its files:
 * client.c (the connection to odkd, services), connection.c (user-client
 * connections and their channel), call.c (sync calls), call_async.c (async
 * calls and their completions), mailbox.c (the shared-memory fast path)
 * and buffer.c (shared memory). */
#ifndef ODK_CLIENT_INTERNAL_H
#define ODK_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wire.h"
#include "odk/client.h"

/* An async call waiting for its completion. */
struct pending_call {
    uint32_t seq;
    odk_async_fn fn;
    void *ctx;
    uint32_t n_out_max;
    size_t struct_out_max;
    struct pending_call *next;
};

struct odk_connection {
    int fd;
    uint32_t seq;
    wire_msg msg;
    struct pending_call *pending;
    uint32_t n_pending;
    uint32_t next_buffer;
    /* The shared-memory mailbox (common/fastcall.h), if the host took it. */
    struct fastcall_shared *fc;
    int wake_fd;    /* an eventfd, or our end of the wake-up socket pair */
    bool wake_sock; /* ODK_FASTCALL_WAKE=socket: the socket pair, not a futex */
    int sync_fd;    /* beside the eventfd, our end of a socket pair for sync wake-ups, or -1 */
    uint32_t fc_seq;
    uint64_t reply_ns; /* moving average of replies from an awake host */
    /* Wake-up counters (ODK_FASTCALL_STATS): calls made, eventfd writes
     * (or bytes) that woke the host, sleeps on the futex (or socket). */
    uint32_t fc_calls, fc_wakes_sent, fc_sleeps, fc_sync_wakes; /* fc_sync_wakes: on sync_fd */
    struct mailbox_trace *trace; /* ODK_FASTCALL_TRACE: one record a call, else NULL */
    bool gone;
    /* Why the host refused the last call (odk_connection_error), "" when
     * the last call was not refused by its check. */
    char error[CALL_REFUSAL_MAX + 1];
};

/* ---- call.c ---- */

/* Keeps the host's sentence of a refused call (len bytes at text, the
 * host's writing: cut and made printable) for odk_connection_error. */
void call_keep_refusal(odk_connection *conn, const uint8_t *text, uint64_t len);

/* ---- client.c ---- */

/* odk_client_request with descriptors passed along (SCM_RIGHTS; ours
 * stay open). */
int client_request_fds(odk_client *c, const char *op, odk_value *args, const int *fds, size_t n_fds,
                       odk_value **reply);
/* Takes the descriptor that came with c's last reply; -1 if none. */
int client_take_reply_fd(odk_client *c);

/* ---- connection.c: the channel to the driver host ---- */

/* Waits for the reply of type/seq; completions of async calls that arrive
 * meanwhile are delivered.  The reply stays in conn->msg.  ODK_E_GONE once
 * the driver is gone, or wire_recv's error. */
int connection_wait_reply(odk_connection *conn, uint16_t type, uint32_t seq);
/* Waits until the channel can take a message, delivering completions that
 * arrive meanwhile.  ODK_E_GONE, ODK_E_IO, or wire_recv's error. */
int connection_wait_writable(odk_connection *conn);
/* Sends one request of type on the channel and waits for its reply; the
 * reply's status, or the failure to get one.  The reply stays in conn->msg. */
int connection_request(odk_connection *conn, uint16_t type, const void *body, size_t len,
                       const int *fds, size_t n_fds);

/* ---- call.c ---- */

/* Lays a call out as struct wire_call + scalars + refs + structure; the
 * length of that layout. */
size_t call_layout(struct wire_call *c, uint32_t selector, uint32_t n_in, uint32_t n_mem,
                   size_t struct_in_len, uint32_t n_out, size_t struct_out);
/* The app's memory references in their wire form (w has room for n). */
void call_refs_to_wire(const odk_memory_ref *mem, uint32_t n, struct wire_memory_ref *w);

/* ---- call_async.c ---- */

/* Delivers the completion in m to its pending call (a reply to nothing
 * pending is dropped). */
void call_async_complete(odk_connection *conn, wire_msg *m);

/* ---- mailbox.c: the shared-memory fast path ---- */

/* A call mailbox made before the open (mailbox_prepare) and offered with
 * it: odkd queues the offer (WIRE_FASTPATH with fds) on the channel before
 * the host gets it, and the host takes it before it sends the open's
 * verdict, which says whether it took it (docs/architecture.md, "Open"). */
struct mailbox_offer {
    struct fastcall_shared *p; /* our mapping, or NULL */
    int mfd, sv[2], efd;       /* the memfd, the socket pair ([1] the host's end), the eventfd */
    bool sock, futex_only;
    int fds[3]; /* what the host gets: the memfd and its wake-up ends */
    size_t n_fds;
};
/* Makes the mailbox, its wake-up fds and our mapping; false (nothing
 * held) when out of resources or $ODK_NO_FASTPATH is set: calls then use
 * the socket. */
bool mailbox_prepare(struct mailbox_offer *o);
/* The host took o: conn calls through it from now on (o is emptied). */
void mailbox_adopt(odk_connection *conn, struct mailbox_offer *o);
/* Frees what o still holds (any number of times). */
void mailbox_drop(struct mailbox_offer *o);
/* Offers o on conn's channel and waits for the host's answer (the way of
 * an odkd or a host that did not take the offer with the open); adopts or
 * drops it. */
void mailbox_offer(odk_connection *conn, struct mailbox_offer *o);
/* Makes call c (laid out by call_layout, fitting FASTCALL_AREA both ways)
 * through the mailbox and waits for its reply; outputs as for
 * odk_connection_call_memory. */
int mailbox_call(odk_connection *conn, const struct wire_call *c, const uint64_t *in,
                 const struct wire_memory_ref *refs, const void *struct_in, uint64_t *out,
                 uint32_t *n_out, void *struct_out, size_t *struct_out_len);

/* With $ODK_FASTCALL_STATS set, prints conn's wake-up counters (its own
 * and the host's, from the mailbox) to stderr. */
void mailbox_stats_print(const odk_connection *conn);

/* With $ODK_FASTCALL_TRACE naming a file, appends a line for each call
 * conn made through the mailbox to it (docs/memory.md, section 11) and
 * frees the records; nothing otherwise. */
void mailbox_trace_write(odk_connection *conn);

/* ---- buffer.c ---- */

/* A memfd of len bytes, sealed against shrinking (the peer maps it and
 * must not be SIGBUSed); -1 with errno set on failure. */
int buffer_memfd(const char *name, uint64_t len);

#endif
