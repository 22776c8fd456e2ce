/* SPDX-License-Identifier: MIT */
/* odk/client.h — libodk, the library an app links against.
 *
 * An app connects to odkd (odk_client), finds services with a matching
 * dictionary and watches them come and go, then opens a user client of one
 * (odk_connection).  odkd checks access and hands the app a channel
 * straight to the driver's process: calls do not pass through odkd.
 *
 * Threading: an odk_client or odk_connection may be used from one thread
 * at a time (any thread; no locks inside); use one connection per thread
 * for parallel calls.  Callbacks (watch, async) run on the thread that
 * called the dispatch function delivering them.
 *
 * Blocking: every function that talks to odkd or to a driver (requests,
 * find, watch, open, call, register/unregister/map) BLOCKS until the reply
 * arrives; there is no timeout, but a dead peer answers at once
 * (ODK_E_DISCONNECTED from odkd, ODK_E_GONE from a driver).  Every such
 * function can also return ODK_E_NOMEM, ODK_E_IO (a socket call failed) and
 * ODK_E_PROTOCOL (a malformed reply); the lists below add the rest.
 * Out-parameters and ownership follow odk/status.h.
 */
#ifndef ODK_CLIENT_H
#define ODK_CLIENT_H

#include "odk/export.h"

#include <stddef.h>
#include <stdint.h>

#include "odk/data_queue.h"
#include "odk/status.h"
#include "odk/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odk_client odk_client;
typedef struct odk_connection odk_connection;

/* Connects to the odkd whose state folder is state_dir (NULL: $ODK_STATE_DIR,
 * else /run/odk).  *out is a new object; free with odk_client_close.
 * Errors: ODK_E_INVALID (out NULL), ODK_E_NOT_FOUND (no odkd listens
 * there), ODK_E_LIMIT (the socket path is too long), ODK_E_IO, ODK_E_NOMEM. */
ODK_PUBLIC int odk_client_open(const char *state_dir, odk_client **out);
/* Closes the connection to odkd, ends its watches (no callback runs) and
 * frees c.  Connections opened through c stay usable.  NULL is allowed. */
ODK_PUBLIC void odk_client_close(odk_client *c);

/* Sends {"op": op, ...args} and waits for the reply (events that arrive
 * meanwhile are queued for odk_client_dispatch).  Takes args (may be NULL).
 * *reply, when reply is not NULL, is the reply dictionary (caller owns; on
 * an error from odkd it holds "error", a sentence, which is the one
 * exception to status.h's NULL-on-failure rule).  Errors: whatever odkd
 * answers for op (ODK_E_UNSUPPORTED for an unknown op, ODK_E_ACCESS,
 * ODK_E_NOT_FOUND, ...), ODK_E_DISCONNECTED. */
ODK_PUBLIC int odk_client_request(odk_client *c, const char *op, odk_value *args,
                                  odk_value **reply);

/* The sentence odkd sent with the last request on c that failed, e.g.
 * "permission denied: sim-plug needs root or odkd's user (uid 0); you are
 * uid 1000" or "not allowed to open user clients of P (bundle B): ...";
 * NULL when the last request succeeded or odkd sent none.  Borrowed: valid
 * until the next request on c.  Never blocks. */
ODK_PUBLIC const char *odk_client_error(const odk_client *c);

/* Registry nodes matching a dictionary of matching keys (IOProviderClass
 * defaults to IOService; IOPropertyMatch, IONameMatch, a bus's keys...;
 * other keys are ignored, as in IOKit).
 * *nodes is an array of node dictionaries (id, class, properties, ...);
 * caller owns.  Blocks.  Errors: ODK_E_INVALID (NULL argument),
 * ODK_E_DISCONNECTED, odkd's ODK_E_INVALID for a malformed matching. */
ODK_PUBLIC int odk_find_services(odk_client *c, const odk_value *matching, odk_value **nodes);

/* Called for "registered", "started", "property" and "terminated" events
 * of matching nodes; node is borrowed for the call. */
typedef void (*odk_watch_fn)(void *ctx, const char *event, const odk_value *node);
/* Starts watching; nodes already there are reported first, as
 * "registered", during the next odk_client_dispatch.  matching is copied,
 * ctx stays the caller's.  *watch_id names the watch.  Blocks (odkd
 * confirms).  Errors: ODK_E_DISCONNECTED, ODK_E_NOMEM. */
ODK_PUBLIC int odk_watch_services(odk_client *c, const odk_value *matching, odk_watch_fn fn,
                                  void *ctx, uint32_t *watch_id);
/* Ends a watch: fn is not called for it again.  Blocks.  Errors:
 * ODK_E_NOT_FOUND (no such watch), ODK_E_DISCONNECTED. */
ODK_PUBLIC int odk_unwatch_services(odk_client *c, uint32_t watch_id);
/* A descriptor (borrowed, owned by c) that becomes readable when events
 * wait (for poll/epoll).  Never fails. */
ODK_PUBLIC int odk_client_fd(const odk_client *c);
/* Delivers waiting events, waiting up to timeout_ms (-1: forever, 0: not)
 * for the first; the callbacks run on the calling thread.  Returns how many
 * were delivered, or ODK_E_DISCONNECTED / ODK_E_IO. */
ODK_PUBLIC int odk_client_dispatch(odk_client *c, int timeout_ms);

/* Opens a user client of node_id (a driver's service node, a node it
 * published, or a device node whose driver then answers).  type is passed
 * to the driver's open hook.  Errors: ODK_E_NOT_FOUND, ODK_E_STATE (driver
 * not running), ODK_E_ACCESS (the personality's OdkUserClientAccess does
 * not admit this process's user or groups: the driver never heard of the
 * attempt; odk_client_error says why), ODK_E_GONE (the driver went away during the
 * open), or the driver's refusal from its open hook.  Blocks until odkd
 * and then the driver answer.  *out is a new object: odk_connection_close. */
ODK_PUBLIC int odk_connection_open(odk_client *c, uint64_t node_id, uint32_t type,
                                   odk_connection **out);
/* Closes the channel (the driver's client_close runs), completes calls in
 * flight with ODK_E_CANCELLED (their callbacks run here) and frees conn.
 * NULL is allowed. */
ODK_PUBLIC void odk_connection_close(odk_connection *conn);

/* Calls a method.  Inputs are borrowed.  Outputs: *n_out in = room in
 * out[], out = scalars returned; *struct_out_len in = room in struct_out,
 * out = bytes returned.  Either may be NULL for "none".  Blocks until the
 * driver's method returns (completions of async calls that arrive
 * meanwhile are delivered here).  Errors: ODK_E_GONE (the driver went
 * away), ODK_E_BAD_SELECTOR, ODK_E_BAD_ARGUMENTS, ODK_E_LIMIT (checked
 * against the method table before the driver runs; odk_connection_error
 * then says what was wrong), or the method's own status. */
ODK_PUBLIC int odk_connection_call(odk_connection *conn, uint32_t selector, const uint64_t *in,
                                   uint32_t n_in, const void *struct_in, size_t struct_in_len,
                                   uint64_t *out, uint32_t *n_out, void *struct_out,
                                   size_t *struct_out_len);

/* ---- shared memory ------------------------------------------------------ */

/* Zero-copy buffers: memfd-backed memory the app writes and reads directly,
 * registered once on a connection and then named in calls (the storage
 * pattern: many requests over the same buffers).  Directions are IOKit's,
 * with respect to the memory (odk/memory.h): ODK_MEM_OUT, the app's data
 * going out (the driver only reads it); ODK_MEM_IN, data coming in (the
 * driver writes it, the app reads it); ODK_MEM_INOUT, both. */
typedef struct odk_buffer odk_buffer;

/* A new zero-filled buffer of len bytes, mapped read-write.  Any size the
 * machine can address (memfd is sparse).  *out is a new object:
 * odk_buffer_free.  Does not block.  Errors: ODK_E_INVALID (len 0 or over
 * INT64_MAX, out NULL), ODK_E_NOMEM, ODK_E_IO. */
ODK_PUBLIC int odk_buffer_create(uint64_t len, odk_buffer **out);
/* The mapping (borrowed, until odk_buffer_free) and its length; NULL / 0
 * for NULL.  Never fail. */
ODK_PUBLIC void *odk_buffer_data(const odk_buffer *b);
ODK_PUBLIC uint64_t odk_buffer_length(const odk_buffer *b);
/* Unmaps and frees b (a driver that registered it keeps its own pages).
 * NULL is allowed. */
ODK_PUBLIC void odk_buffer_free(odk_buffer *b);

/* Shares buf with the driver under a new id (*id).  The driver host keeps
 * its own reference to the memory: freeing buf afterwards is fine (the
 * pages live until the driver lets go too).  Blocks until the driver host
 * confirms.  Errors: ODK_E_INVALID (NULL argument, bad direction),
 * ODK_E_LIMIT past ODK_MAX_CLIENT_BUFFERS (odk/driver.h), ODK_E_GONE. */
ODK_PUBLIC int odk_connection_register_buffer(odk_connection *conn, odk_buffer *buf,
                                              uint32_t direction, uint32_t *id);
/* Stops sharing buffer id (calls already made keep their ranges).  Blocks.
 * Errors: ODK_E_NOT_FOUND (no such id), ODK_E_GONE. */
ODK_PUBLIC int odk_connection_unregister_buffer(odk_connection *conn, uint32_t id);

/* A range of a registered buffer, passed with a call. */
typedef struct odk_memory_ref {
    uint32_t buffer;
    uint64_t offset;
    uint64_t length;
} odk_memory_ref;

/* Why the driver host's check refused conn's last call (sync, or the async
 * completion just delivered), in words naming the selector and what was
 * wrong, e.g. "selector 0: 1 scalar inputs, the method takes 2"; NULL
 * when the last call was not refused by the check (a method's own error
 * has no sentence).  Borrowed: valid until conn's next call or close. */
ODK_PUBLIC const char *odk_connection_error(const odk_connection *conn);

/* odk_connection_call with memory ranges (up to ODK_MAX_CALL_MEMORY).
 * When it returns, what the driver wrote into IN and INOUT ranges is in
 * the app's buffer.  Errors: as odk_connection_call, plus ODK_E_NOT_FOUND
 * (no such buffer), ODK_E_INVALID (a range outside its buffer), ODK_E_LIMIT
 * (too many ranges). */
ODK_PUBLIC int odk_connection_call_memory(odk_connection *conn, uint32_t selector,
                                          const uint64_t *in, uint32_t n_in, const void *struct_in,
                                          size_t struct_in_len, const odk_memory_ref *mem,
                                          uint32_t n_mem, uint64_t *out, uint32_t *n_out,
                                          void *struct_out, size_t *struct_out_len);

/* Maps memory the driver offers for type (its copy_client_memory hook;
 * DriverKit's IOConnectMapMemory).  The app may write it unless the
 * driver's descriptor is ODK_MEM_IN (data coming in to the app).  *out is a new object:
 * odk_buffer_free.  Blocks.  Errors: ODK_E_UNSUPPORTED (the driver has no
 * hook), the hook's status, ODK_E_PROTOCOL (the driver's memory could
 * shrink under the app, or the reply is malformed), ODK_E_GONE. */
ODK_PUBLIC int odk_connection_map_memory(odk_connection *conn, uint32_t type, odk_buffer **out);

/* Attaches to a data queue the driver offers for type (its
 * copy_client_data_queue hook): the app then takes records with
 * odk_data_queue_dequeue / odk_data_queue_wait (odk/data_queue.h) straight
 * from shared memory.  *out is a new object: odk_data_queue_free.  Blocks.
 * Errors: ODK_E_UNSUPPORTED (no hook), the hook's status, ODK_E_BUSY (the
 * driver's side of the channel is backed up; retry), ODK_E_PROTOCOL (a
 * malformed queue), ODK_E_GONE. */
ODK_PUBLIC int odk_connection_map_data_queue(odk_connection *conn, uint32_t type,
                                             odk_data_queue **out);

/* ---- asynchronous calls ------------------------------------------------- */

/* Called once per async call with its status and outputs (borrowed for the
 * callback).  A connection closed with calls in flight calls each with
 * ODK_E_CANCELLED. */
typedef void (*odk_async_fn)(void *ctx, int status, const uint64_t *scalars, uint32_t n_scalars,
                             const void *data, size_t len);

/* Sends a call without waiting; many may be in flight.  n_out_max and
 * struct_out_max are the room the callback may receive.  Callbacks run
 * inside odk_connection_dispatch (or another call on this connection), on
 * that thread.  Blocks only while the channel is full (back-pressure).
 * Errors: as odk_connection_call_memory (the driver's status reaches fn
 * instead); fn is not called when this returns an error. */
ODK_PUBLIC int odk_connection_call_async(odk_connection *conn, uint32_t selector,
                                         const uint64_t *in, uint32_t n_in, const void *struct_in,
                                         size_t struct_in_len, const odk_memory_ref *mem,
                                         uint32_t n_mem, uint32_t n_out_max, size_t struct_out_max,
                                         odk_async_fn fn, void *ctx);
/* Delivers completions, waiting up to timeout_ms (-1: forever) for the
 * first.  Returns how many were delivered, or an error (ODK_E_GONE). */
ODK_PUBLIC int odk_connection_dispatch(odk_connection *conn, int timeout_ms);
/* Calls still in flight.  Never fails. */
ODK_PUBLIC uint32_t odk_connection_pending(const odk_connection *conn);
/* Readable when completions wait (for poll/epoll).  Borrowed, owned by
 * conn.  Never fails. */
ODK_PUBLIC int odk_connection_fd(const odk_connection *conn);

#ifdef __cplusplus
}
#endif
#endif
