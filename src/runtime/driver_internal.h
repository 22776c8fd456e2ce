/* driver_internal.h — the driver instance as odk-driver-host drives it. */
#ifndef ODK_RUNTIME_DRIVER_INTERNAL_H
#define ODK_RUNTIME_DRIVER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "odk/driver.h"

/* A handler for user clients of a node the driver published (families use
 * it: a serial port node has the serial family's method table). */
typedef struct odk_node_handler {
    uint64_t node_id;
    const odk_method *methods;
    uint32_t n_methods;
    int (*open)(void *ctx, odk_user_client *uc, uint32_t type);
    void (*close)(void *ctx, odk_user_client *uc);
    void *ctx;
} odk_node_handler;

#define ODK_MAX_NODE_HANDLERS 64 /* published nodes with user clients, per driver */

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
    bool started, stopped;
    /* Only for waiting on the queue's end in odk_driver_destroy. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool queue_done;
    /* Touched only on the default queue. */
    struct odk_user_client *clients;
    odk_node_handler handlers[ODK_MAX_NODE_HANDLERS];
    size_t n_handlers;
};

/* Installs (or with methods == NULL removes) the handler for a published
 * node.  Call on the default queue.  ODK_E_LIMIT past ODK_MAX_NODE_HANDLERS. */
int odk_driver_set_node_handler(odk_driver *drv, const odk_node_handler *h);

typedef struct odk_driver_info {
    const char *bundle_id;
    uint32_t instance;
    odk_value *personality;    /* taken */
    odk_value *provider_props; /* taken */
    uint64_t provider_id;
    uint64_t service_id;
} odk_driver_info;

/* Creates an instance of cls with its default queue.  New object, freed
 * with odk_driver_destroy. */
int odk_driver_create(const odk_driver_class *cls, odk_driver_info *info, odk_driver **out);
/* Runs start on the default queue; then calls done(ctx, status) there. */
int odk_driver_start_async(odk_driver *drv, void (*done)(void *ctx, int status), void *ctx);
/* Closes every user client (apps see ODK_E_GONE), runs stop on the queue,
 * then calls done(ctx) there. */
int odk_driver_stop_async(odk_driver *drv, void (*done)(void *ctx), void *ctx);
/* Cancels the queue, waits for it, calls free, releases everything. */
void odk_driver_destroy(odk_driver *drv);

/* Serves a user client on channel fd (taken).  The open hook runs on the
 * default queue and its status is the first message the app receives. */
int odk_driver_add_client(odk_driver *drv, int fd, uint64_t node_id, uint32_t type, uint32_t uid,
                          int32_t pid);

/* Clears the class table (tests). */
void odk_driver_class_reset(void);

#endif
