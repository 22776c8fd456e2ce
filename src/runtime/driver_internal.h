/* SPDX-License-Identifier: MIT */
/* driver_internal.h — the driver instance as odk-driver-host drives it. */
#ifndef ODK_RUNTIME_DRIVER_INTERNAL_H
#define ODK_RUNTIME_DRIVER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "odk/driver.h"

/* A handler for user clients of a node the driver published (families use
 * it: a serial port node has the serial family's method table). */
typedef struct node_handler {
    uint64_t node_id;
    const odk_method *methods;
    uint32_t n_methods;
    int (*open)(void *ctx, odk_user_client *uc, uint32_t type);
    void (*close)(void *ctx, odk_user_client *uc);
    /* Optional: the node's data queues (as the class's copy_client_data_queue). */
    int (*data_queue)(void *ctx, odk_user_client *uc, uint32_t type, odk_data_queue **q);
    /* Optional: the node's memory (as the class's copy_client_memory; the
     * audio family's shared clock and rings). */
    int (*memory)(void *ctx, odk_user_client *uc, uint32_t type, odk_memory **mem);
    void *ctx;
} node_handler;

#define MAX_NODE_HANDLERS 64 /* published nodes with user clients, per driver */

struct odk_driver {
    const odk_driver_class *cls;
    void *state;
    char *bundle_id;
    uint32_t instance;
    odk_value *personality;
    odk_value *provider_props;
    uint64_t provider_id;
    uint64_t service_id;
    odk_queue *queue;
    odk_iommu *iommu; /* created on first use */
    bool started;
    bool stopped; /* stop ran: new user clients are refused */
    /* The class's start is running: register-service, and set-property on
     * the service node, do not wait for odkd (host_link_post); the start's
     * reply follows them. */
    _Atomic bool in_start;
    /* Only for waiting on the queue's end in driver_destroy. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool queue_done;
    /* Touched only on the default queue. */
    struct odk_user_client *clients;
    node_handler handlers[MAX_NODE_HANDLERS];
    size_t n_handlers;
};

/* Installs (or with methods == NULL removes) the handler for a published
 * node.  Call on the default queue.  ODK_E_LIMIT past MAX_NODE_HANDLERS. */
int driver_set_node_handler(odk_driver *drv, const node_handler *h);
/* Closes the user clients of one published node (apps see the channel
 * close), running their handler's close hook.  On the default queue. */
void driver_close_node_clients(odk_driver *drv, uint64_t node_id);

typedef struct driver_info {
    const char *bundle_id;
    uint32_t instance;
    odk_value *personality;    /* taken */
    odk_value *provider_props; /* taken */
    uint64_t provider_id;
    uint64_t service_id;
} driver_info;

/* Creates an instance of cls with its default queue.  Takes info's
 * personality and provider_props (also on failure; info's fields are set to
 * NULL).  *out is a new object, freed with driver_destroy.  Errors:
 * ODK_E_NOMEM, and odk_queue_create's. */
int driver_create(const odk_driver_class *cls, driver_info *info, odk_driver **out);
/* Runs start on the default queue; then calls done(ctx, status) there. */
int driver_start_async(odk_driver *drv, void (*done)(void *ctx, int status), void *ctx);
/* Closes every user client (apps see ODK_E_GONE), runs stop on the queue,
 * then calls done(ctx) there. */
int driver_stop_async(odk_driver *drv, void (*done)(void *ctx), void *ctx);
/* Cancels the queue, waits for it, calls free, releases everything. */
void driver_destroy(odk_driver *drv);

/* Serves a user client on channel fd (taken).  The open hook runs on the
 * default queue and its status is the first message the app receives. */
int user_client_accept(odk_driver *drv, int fd, uint64_t node_id, uint32_t type, uint32_t uid,
                          int32_t pid);

/* True when a class was refused for its API version or structure size
 * (odk_driver_class_register); *api_version and *class_size say what it
 * claimed, for the host's error. */
bool driver_class_refused(uint32_t *api_version, size_t *class_size);

#endif
