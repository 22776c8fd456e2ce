/* SPDX-License-Identifier: MIT */
/* odk/driver.h — what a driver implements and what it may call.
 *
 * A driver is a shared object in a bundle.  It declares one or more classes
 * with ODK_DRIVER_CLASS(); the personality's IOUserClass names the class
 * odk-driver-host instantiates for a matched device.  The lifecycle is
 *
 *     init (zeroed instance state) -> start(provider) -> [register_service]
 *       -> ... user-client calls ... -> stop(provider) -> free
 *
 * Every callback of one driver instance runs on that instance's default
 * dispatch queue (odk_driver_queue), one at a time, so a driver needs no
 * locks for its own state.  Errors, ownership, out-parameters and threads
 * follow the rules in odk/status.h.
 */
#ifndef ODK_DRIVER_H
#define ODK_DRIVER_H

#include "odk/export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "odk/data_queue.h"
#include "odk/dma.h"
#include "odk/log.h"
#include "odk/memory.h"
#include "odk/queue.h"
#include "odk/status.h"
#include "odk/value.h"
#include "odk/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odk_driver odk_driver;
typedef struct odk_user_client odk_user_client;
typedef struct odk_async odk_async;

/* Power states passed to set_power_state. */
#define ODK_POWER_OFF 0u
#define ODK_POWER_ON 1u

/* ---- user-client method tables ---------------------------------------- */

/* A method's scalar count or structure size that the caller chooses. */
#define ODK_VARIABLE UINT32_MAX
#define ODK_VARIABLE_SIZE UINT64_MAX

/* Documented limits of a call (checked before the driver runs; a call over
 * a limit gets ODK_E_LIMIT).  Structures above WIRE's inline size travel in
 * shared memory without the driver noticing. */
#define ODK_MAX_SCALARS 256u
#define ODK_MAX_STRUCT (256ull * 1024 * 1024)
#define ODK_MAX_CALL_MEMORY 16u      /* memory ranges in one call */
#define ODK_MAX_CLIENT_BUFFERS 1024u /* buffers one connection may register */

/* One call, already checked against the method table.  Inputs are
 * borrowed for the duration of the method.  Outputs: scalar_out has
 * scalar_out_count slots (the table's count, or the app's capacity when
 * the table says ODK_VARIABLE; the method may lower the count for a
 * variable output).  struct_out has struct_out_cap bytes; the method sets
 * struct_out_len (preset to the table's size when fixed, 0 when variable). */
typedef struct odk_call {
    uint32_t selector;
    const uint64_t *scalar_in;
    uint32_t scalar_in_count;
    const void *struct_in;
    size_t struct_in_len;
    uint64_t *scalar_out;
    uint32_t scalar_out_count;
    void *struct_out;
    size_t struct_out_len;
    size_t struct_out_cap;
    /* Ranges of the app's registered buffers (odk_connection_register_buffer).
     * That the buffer exists and the range lies inside it is checked before
     * the method runs; its direction is enforced when the driver maps or
     * writes it (odk_memory_map / odk_memory_write answer ODK_E_ACCESS).
     * Shared memory: the app can change it while the method runs, so copy
     * what you validate before relying on it. */
    const odk_memory_range *memory;
    uint32_t memory_count;
    /* For ODK_METHOD_ASYNC methods: the completion.  Returning ODK_OK
     * means "later": the driver now owns it and must call
     * odk_async_complete exactly once (possibly before returning).
     * Returning an error fails the call at once and the runtime frees the
     * completion — so never return an error after completing it. */
    odk_async *async;
} odk_call;

typedef int (*odk_method_fn)(odk_driver *drv, odk_user_client *uc, odk_call *call);

/* One entry per selector (the selector is the index), like DriverKit's
 * IOUserClientMethodDispatch.  A NULL fn leaves a hole (ODK_E_BAD_SELECTOR). */
typedef struct odk_method {
    odk_method_fn fn;
    uint32_t scalar_in;  /* count, or ODK_VARIABLE */
    uint32_t scalar_out; /* count, or ODK_VARIABLE */
    uint64_t struct_in;  /* bytes, or ODK_VARIABLE_SIZE */
    uint64_t struct_out; /* bytes, or ODK_VARIABLE_SIZE */
    uint32_t memory;     /* memory ranges, or ODK_VARIABLE (up to ODK_MAX_CALL_MEMORY) */
    uint32_t flags;      /* ODK_METHOD_ASYNC */
} odk_method;

/* The method completes later, through odk_async_complete. */
#define ODK_METHOD_ASYNC 0x1u

/* Checks a call's shape against a table (the runtime does this before a
 * method runs; drivers rarely need it): ODK_E_BAD_SELECTOR (selector past
 * n_methods or a NULL fn), ODK_E_BAD_ARGUMENTS (wrong scalar count /
 * structure size), ODK_E_LIMIT (over ODK_MAX_SCALARS or ODK_MAX_STRUCT), or
 * ODK_OK.  why (may be NULL) receives a sentence with the expected and given
 * values ("ok" on success), cut to why_len.  scalar_out_max /
 * struct_out_max are the app's capacities.  Pure: any thread. */
ODK_PUBLIC int odk_method_check(const odk_method *table, uint32_t n_methods, uint32_t selector,
                                uint32_t scalar_in_count, uint64_t struct_in_len,
                                uint32_t scalar_out_max, uint64_t struct_out_max, char *why,
                                size_t why_len);

/* ---- driver classes ----------------------------------------------------- */

typedef struct odk_driver_class {
    const char *name;  /* the IOUserClass a personality names */
    size_t state_size; /* bytes of zeroed per-instance state (odk_driver_state) */

    /* Required.  Runs on the default queue.  A non-OK status fails the
     * start: the host reports it and exits. */
    int (*start)(odk_driver *drv);
    /* Optional.  The provider is going away or the driver is being replaced;
     * release what start acquired.  Runs on the default queue. */
    void (*stop)(odk_driver *drv);
    /* Optional: the last call, after stop, once no callback can run. */
    void (*free)(odk_driver *drv);

    /* Optional: a power state change (ODK_POWER_OFF before system sleep,
     * ODK_POWER_ON after wake).  Runs on the default queue; odkd waits at
     * most the personality's power deadline (OdkDeadlines.power, default
     * 5000 ms), then kills and restarts the driver.  Children change before
     * their providers on the way down, providers first on the way up. */
    int (*set_power_state)(odk_driver *drv, uint32_t state);

    /* The default user client's method table (may be NULL). */
    const odk_method *methods;
    uint32_t n_methods;
    /* Optional hooks: an app opens / closes a user client of this driver.
     * open may refuse with an error status (the app gets it). */
    int (*client_open)(odk_driver *drv, odk_user_client *uc, uint32_t type);
    void (*client_close)(odk_driver *drv, odk_user_client *uc);
    /* Optional (DriverKit's CopyClientMemoryForType): memory of the driver's
     * that an app maps with odk_connection_map_memory.  Return a new
     * reference in *mem.  Direction as in odk/memory.h: libodk maps an OUT
     * or INOUT descriptor writable for the app and an IN one read-only (an
     * app that bypasses libodk could still map it writable: do not rely on
     * it for isolation). */
    int (*copy_client_memory)(odk_driver *drv, odk_user_client *uc, uint32_t type,
                              odk_memory **mem);
    /* Optional: a data queue (odk/data_queue.h) the app consumes, opened
     * with odk_connection_map_data_queue.  *q is borrowed: the driver keeps
     * producing into it and frees it in stop or free. */
    int (*copy_client_data_queue)(odk_driver *drv, odk_user_client *uc, uint32_t type,
                                  odk_data_queue **q);
} odk_driver_class;

/* Registers a class; drivers do not call this directly but through
 * ODK_DRIVER_CLASS, which passes sizeof the class structure and the
 * ODK_API_VERSION the driver was compiled against.  cls is borrowed for the
 * life of the process (it is the driver's static structure).  Any thread;
 * does not block (a short lock).  Errors: ODK_E_INVALID (cls, its name or
 * its start NULL), ODK_E_UNSUPPORTED (api_version is not ODK_API_VERSION or
 * class_size not sizeof(odk_driver_class): the class is refused, nothing of
 * it is read, and odk-driver-host reports both versions), ODK_E_EXISTS (a
 * class of that name is registered), ODK_E_LIMIT (more than 256 classes in
 * one process).  Errors are logged (ODK_E_UNSUPPORTED by the host, when it
 * looks the class up). */
ODK_PUBLIC int odk_driver_class_register(const odk_driver_class *cls, size_t class_size,
                                         uint32_t api_version);
/* The registered class called name: borrowed, lives as long as the
 * process; NULL when none (or name is NULL).  Any thread; does not block. */
ODK_PUBLIC const odk_driver_class *odk_driver_class_find(const char *name);

/* Declares a class from a driver's shared object; it is registered when the
 * host loads the object (a constructor), with the structure's size and the
 * API version of the headers the driver was compiled with.  Use it once per
 * class, at file scope, followed by a semicolon:
 *     static const odk_driver_class echo = { .name = "EchoDriver", ... };
 *     ODK_DRIVER_CLASS(echo);
 * The macro ends in an extern declaration for that ';' to close, so the line
 * is clean under -std=c17 -Wpedantic (an empty ';' at file scope is not). */
#define ODK_DRIVER_CLASS(cls)                                                                      \
    __attribute__((constructor)) static void odk_register_##cls(void)                              \
    {                                                                                              \
        odk_driver_class_register(&(cls), sizeof(cls), ODK_DRIVER_API_VERSION);                    \
    }                                                                                              \
    extern const odk_driver_class *const odk_driver_class_declared_##cls

/* ---- what a driver may call ------------------------------------------- */

/* Frees memory the framework allocated and handed to the driver: the
 * strings and copies whose comments say "the caller frees with
 * odk_free()".  The driver host's allocator made them, which need not be
 * the driver's own (a sanitizer build, a driver linked with another
 * malloc), so plain free() is wrong for them.  NULL is allowed. */
ODK_PUBLIC void odk_free(void *p);

/* Accessors: never fail, never block, any thread (the values are fixed
 * before start runs; odk_driver_iommu takes a short lock). */

/* The instance's zeroed state of class->state_size bytes (borrowed, until
 * free has returned). */
ODK_PUBLIC void *odk_driver_state(odk_driver *drv);
/* The instance's default queue (borrowed, until free; odk_retain it to keep
 * it longer). */
ODK_PUBLIC odk_queue *odk_driver_queue(odk_driver *drv);
/* Bundle id (borrowed, until free), and the instance number odkd gave this
 * driver. */
ODK_PUBLIC const char *odk_driver_bundle_id(const odk_driver *drv);
ODK_PUBLIC uint32_t odk_driver_instance(const odk_driver *drv);
/* The matched personality and the provider's properties, as dictionaries
 * (borrowed, valid until free; never NULL). */
ODK_PUBLIC const odk_value *odk_driver_personality(const odk_driver *drv);
ODK_PUBLIC const odk_value *odk_driver_provider_properties(const odk_driver *drv);
/* Registry id of the provider node and of the driver's own service node. */
ODK_PUBLIC uint64_t odk_driver_provider_id(const odk_driver *drv);
ODK_PUBLIC uint64_t odk_driver_service_id(const odk_driver *drv);

/* The DMA address space of the driver's device (borrowed, until free;
 * created on first use).  On the sim bus it is a simulated IOMMU (48
 * address bits) that the device models translate through; the VFIO backend
 * will hand the real one.  NULL only when out of memory (a later call tries
 * again). */
ODK_PUBLIC odk_iommu *odk_driver_iommu(odk_driver *drv);

/* Requests to odkd.  Each BLOCKS the calling thread until odkd replies
 * (normally well under a millisecond; odkd answers requests in order, never
 * waiting on a driver).  Call them from the driver's queues (start, a
 * method, a timer...), never from a thread odk did not start for the
 * driver: the replies are read by the host's main thread, which must stay
 * free.  Statuses common to all four: ODK_E_NOMEM (the request could not
 * be built), ODK_E_DISCONNECTED (odkd is gone or closed the channel),
 * ODK_E_ACCESS (odkd refused: the node is not this driver's). */

/* Makes the driver's service node registered: apps can find and open it
 * and other personalities can match it.  Registering twice is ODK_OK. */
ODK_PUBLIC int odk_driver_register_service(odk_driver *drv);
/* Sets key on the driver's service node (every client watching the node is
 * told).  Takes value, whatever happens.  ODK_E_INVALID for a NULL or empty
 * key or a NULL value (value is freed). */
ODK_PUBLIC int odk_driver_set_property(odk_driver *drv, const char *key, odk_value *value);

/* Publishes a child node under the driver's service node (a port, a disk,
 * an interface): class cls (derived from super, NULL for IOService; a class
 * already known under another superclass keeps its own) with props (taken,
 * whatever happens; NULL for none).  The node is registered, so it can be
 * matched and found.  *node_id (may be NULL) receives its registry id.
 * ODK_E_INVALID: cls NULL or empty, props not a dictionary, or super
 * unknown to odkd. */
ODK_PUBLIC int odk_driver_publish_node(odk_driver *drv, const char *cls, const char *super,
                                       odk_value *props, uint64_t *node_id);
/* Removes a node published by this driver, and its children (their drivers
 * are stopped first).  ODK_E_ACCESS also for the driver's own service node. */
ODK_PUBLIC int odk_driver_withdraw_node(odk_driver *drv, uint64_t node_id);
/* Sets a property on a node published by this driver, as
 * odk_driver_set_property (takes value, whatever happens). */
ODK_PUBLIC int odk_driver_set_node_property(odk_driver *drv, uint64_t node_id, const char *key,
                                            odk_value *value);

/* ---- asynchronous completions ------------------------------------------ */

/* Completes an async call: status (a positive one reaches the app as
 * ODK_E_DRIVER), then up to the call's scalar_out_count scalars and
 * struct_out_cap bytes (borrowed for the call).  Consumes a, whatever it
 * returns.  Call on the driver's default queue only; does not wait for the
 * app.  Errors: ODK_E_INVALID (a NULL, or more outputs than the app has
 * room for: the call then completes with ODK_E_DRIVER), ODK_E_CANCELLED
 * (the app went away meanwhile; nothing is sent). */
ODK_PUBLIC int odk_async_complete(odk_async *a, int status, const uint64_t *scalars,
                                  uint32_t n_scalars, const void *data, size_t len);
/* True once the app that made the call has gone (true for NULL).  Default
 * queue only; never blocks. */
ODK_PUBLIC bool odk_async_cancelled(const odk_async *a);
/* Sets fn(ctx, a), called once, on the default queue, if the app goes away
 * before the call completes (the driver still completes a, which then only
 * frees it); replaces an earlier one.  ctx stays the driver's.  Default
 * queue only; never fails (NULL a is ignored). */
ODK_PUBLIC void odk_async_set_cancel_handler(odk_async *a, void (*fn)(void *ctx, odk_async *a),
                                             void *ctx);
/* The call's selector (0 for NULL).  Valid until completion.  Never fails. */
ODK_PUBLIC uint32_t odk_async_selector(const odk_async *a);

/* ---- user clients ----------------------------------------------------- */

/* These run on the default queue (where every callback that hands out an
 * odk_user_client runs), never fail and never block.  uc is borrowed: valid
 * from client_open until client_close has returned. */

/* Per-connection context, NULL until set.  The driver owns what it stores
 * and frees it in client_close. */
ODK_PUBLIC void *odk_user_client_ctx(const odk_user_client *uc);
ODK_PUBLIC void odk_user_client_set_ctx(odk_user_client *uc, void *ctx);
/* The node the app opened (the driver's service node or a published node). */
ODK_PUBLIC uint64_t odk_user_client_node_id(const odk_user_client *uc);
/* Credentials of the app, as odkd saw them when it granted the open. */
ODK_PUBLIC uint32_t odk_user_client_uid(const odk_user_client *uc);
ODK_PUBLIC int32_t odk_user_client_pid(const odk_user_client *uc);

#ifdef __cplusplus
}
#endif
#endif
