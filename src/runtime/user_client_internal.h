/* SPDX-License-Identifier: MIT */
/* user_client_internal.h — serving an app's connection inside the host.
 *
 * The user client is split by job: user_client.c (the object, open, close,
 * reading the channel), channel.c (sending without blocking), call.c
 * (running calls, once call_check.c has checked them), mailbox.c (the shared-memory fast path),
 * async.c (odk_async_* completions), client_buffer.c (the app's buffers)
 * and client_share.c (driver memory and data queues handed to the app).
 * Everything here runs on the driver's default queue. */
#ifndef ODK_RUNTIME_USER_CLIENT_INTERNAL_H
#define ODK_RUNTIME_USER_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wire.h"
#include "runtime/driver_internal.h"

/* Where a call's reply goes. */
enum reply_via { VIA_SOCKET, VIA_MAILBOX };

struct odk_user_client {
    odk_driver *drv;
    int fd;
    /* Replies wait here while the app's socket is full; meanwhile no new
     * request is read (back-pressure), and the driver's queue never blocks
     * on a slow app. */
    struct queued_msg *outq, **outq_tail;
    odk_fd_source *src;
    uint64_t node_id;
    uint32_t type, uid;
    int32_t pid;
    node_handler handler; /* methods and hooks for this node */
    void *ctx;
    wire_msg msg;
    uint8_t *out_buf; /* reused output structure buffer (socket path) */
    size_t out_cap;
    struct client_buffer *buffers;
    size_t n_buffers;
    /* The mailbox, when the app asked for the fast path. */
    struct fastcall_shared *fc;
    int wake_fd;
    bool wake_dead; /* the app closed its end of the wake-up socket */
    bool wake_sock; /* the wake-up fd is a socket (else an eventfd + futex) */
    int sync_fd;    /* with the eventfd, a socket for sync wake-ups (-1: none) */
    bool sync_dead; /* the app closed its end of sync_fd */
    odk_fd_source *wake_src; /* the eventfd's, in the queue's epoll set */
    uint32_t fc_seen; /* last request sequence taken */
    bool fc_busy;     /* an async call holds the mailbox */
    /* The idle-spin predictor (mailbox.c): when the last reply went out,
     * the average of recent short gaps, a saturating count of them, and the
     * spin this client asks its queue for. */
    uint64_t fc_pub_ns, fc_gap_ns, fc_spin_ns;
    uint8_t fc_spin_score;
    bool fc_same_cpu; /* the app last posted from the CPU we served on */
    odk_async *pending;
    struct odk_user_client *next;
    bool closing;
};

/* Closes every user client of drv (apps see the channel close and get
 * ODK_E_GONE).  On the default queue. */
void user_client_close_all(odk_driver *drv);

/* ---- channel.c: sending without blocking ---- */

/* Sends a message whose body is a, b and c (each may be empty) and fd (or
 * -1) now if nothing is queued and the socket takes it; queues a copy
 * otherwise.  ODK_E_DISCONNECTED once the channel is closed, ODK_E_NOMEM,
 * or wire_sendv's error. */
int channel_send(odk_user_client *uc, uint16_t type, uint32_t seq, int32_t status, const void *a,
                 size_t alen, const void *b, size_t blen, const void *c, size_t clen, int fd);
/* channel_send of a message with no body. */
int channel_send_status(odk_user_client *uc, uint16_t type, uint32_t seq, int status);
/* The socket has room again: sends what waited, in order.  ODK_OK (also
 * when the socket fills again) or wire_sendv's error. */
int channel_flush(odk_user_client *uc);
/* Drops every message still waiting (the client is being freed). */
void channel_free_queued(odk_user_client *uc);

/* ---- call.c: calls and their replies ---- */

/* Checks one call with call_check (body of body_len bytes, untrusted: a
 * WIRE_CALL body, or the mailbox's whole request area) and runs it; the
 * status of sending the reply.  For the mailbox, outputs are written
 * straight into the shared reply area. */
int call_serve(odk_user_client *uc, enum reply_via via, uint32_t seq, const uint8_t *body,
               size_t body_len);
/* Replies to call seq with status and no outputs. */
int call_reply_status(odk_user_client *uc, enum reply_via via, uint32_t seq, int status);
/* Replies to call seq, refused by the runtime's check, with status and the
 * check's sentence (the app's odk_connection_error). */
int call_reply_refused(odk_user_client *uc, enum reply_via via, uint32_t seq, int status,
                       const char *why);
/* Replies with outputs that live in scalars[] / data (socket), or that the
 * method already wrote into the mailbox's reply area (mailbox). */
int call_reply_outputs(odk_user_client *uc, enum reply_via via, uint32_t seq,
                       const uint64_t *scalars, uint32_t n, const void *data, size_t len);

/* ---- mailbox.c: the shared-memory fast path ---- */

/* Takes the mailbox and wake-up eventfd (and the sync wake-up socket, if
 * any) the app passed with m.  ODK_OK,
 * ODK_E_INVALID (already has one, or bad descriptors), ODK_E_ACCESS (not
 * sealed against shrinking), ODK_E_NOMEM, or odk_fd_source_create's. */
int mailbox_take(odk_user_client *uc, wire_msg *m);
/* Publishes a reply of status (no outputs) for request seq. */
void mailbox_reply_status(odk_user_client *uc, uint32_t seq, int status);
/* The same with why (a sentence, cut to the reply area) where the
 * structure output would go. */
void mailbox_reply_refused(odk_user_client *uc, uint32_t seq, int status, const char *why);
/* Publishes a successful reply whose n scalars and len bytes are already
 * in the reply area. */
void mailbox_reply(odk_user_client *uc, uint32_t seq, uint32_t n, size_t len);
/* The client closes: the queue stops sleeping on its wake-up socket and
 * polling its mailbox.  On the default queue. */
void mailbox_close(odk_user_client *uc);

/* ---- async.c: calls the driver completes later ---- */

/* A pending asynchronous call on uc, to be completed with
 * odk_async_complete; holds the mailbox when via is VIA_MAILBOX.  NULL if
 * out of memory. */
odk_async *async_start(odk_user_client *uc, enum reply_via via, uint32_t seq, uint32_t selector,
                       uint32_t scalar_out_cap, uint32_t scalar_room, uint64_t struct_out_cap);
/* The app went away: every pending call is cancelled and the driver told. */
void async_cancel_all(odk_user_client *uc);

/* ---- client_buffer.c: buffers the app shares with the driver ---- */

/* The registered buffer id (borrowed), or NULL. */
odk_memory *client_buffer_find(odk_user_client *uc, uint32_t id);
/* WIRE_MAP_BUFFER / WIRE_UNMAP_BUFFER: registers or drops a buffer; the
 * status to reply with. */
int client_buffer_map(odk_user_client *uc, wire_msg *m);
int client_buffer_unmap(odk_user_client *uc, wire_msg *m);
/* Releases every buffer (the client is being freed). */
void client_buffer_free_all(odk_user_client *uc);

/* ---- client_share.c: driver memory and data queues for the app ---- */

/* WIRE_CLIENT_MEMORY / WIRE_CLIENT_DATA_QUEUE: asks the class's hook and
 * replies on the channel. */
void client_share_memory(odk_user_client *uc, wire_msg *m);
void client_share_data_queue(odk_user_client *uc, wire_msg *m);

#endif
