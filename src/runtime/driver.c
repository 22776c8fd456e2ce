/* SPDX-License-Identifier: MIT */
/* Driver classes and instances: the host creates one instance per process
 * and runs its lifecycle on the instance's default queue. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/driver_internal.h"
#include "runtime/host_link.h"
#include "runtime/user_client_internal.h"

/* ---- class table ------------------------------------------------------ */

#define MAX_CLASSES 256 /* per process; a bundle declaring more gets ODK_E_LIMIT */

static pthread_mutex_t class_lock = PTHREAD_MUTEX_INITIALIZER;
static const odk_driver_class *classes[MAX_CLASSES];
static size_t n_classes;
/* The last class refused for its API version or size (nothing of it is
 * read: its layout is not ours), for the host's error message. */
static bool refused;
static uint32_t refused_version;
static size_t refused_size;

int odk_driver_class_register(const odk_driver_class *cls, size_t class_size, uint32_t api_version)
{
    if (api_version != ODK_API_VERSION || class_size != sizeof(odk_driver_class)) {
        /* Not logged here: the host says so when it looks the class up by
         * name, with both versions (driver_class_refused). */
        pthread_mutex_lock(&class_lock);
        refused = true;
        refused_version = api_version;
        refused_size = class_size;
        pthread_mutex_unlock(&class_lock);
        return ODK_E_UNSUPPORTED;
    }
    if (!cls || !cls->name || !cls->start) {
        odk_error("driver class %s: a class needs a name and a start function",
                  cls && cls->name ? cls->name : "(null)");
        return ODK_E_INVALID;
    }
    int st = ODK_OK;
    pthread_mutex_lock(&class_lock);
    for (size_t i = 0; i < n_classes; i++)
        if (strcmp(classes[i]->name, cls->name) == 0)
            st = ODK_E_EXISTS;
    if (st == ODK_OK && n_classes == MAX_CLASSES)
        st = ODK_E_LIMIT;
    if (st == ODK_OK)
        classes[n_classes++] = cls;
    pthread_mutex_unlock(&class_lock);
    if (st < 0)
        odk_error("driver class %s: %s", cls->name, odk_strerror(st));
    return st;
}

const odk_driver_class *odk_driver_class_find(const char *name)
{
    const odk_driver_class *found = NULL;
    pthread_mutex_lock(&class_lock);
    for (size_t i = 0; i < n_classes && name; i++)
        if (strcmp(classes[i]->name, name) == 0)
            found = classes[i];
    pthread_mutex_unlock(&class_lock);
    return found;
}

bool driver_class_refused(uint32_t *api_version, size_t *class_size)
{
    pthread_mutex_lock(&class_lock);
    bool r = refused;
    *api_version = refused_version;
    *class_size = refused_size;
    pthread_mutex_unlock(&class_lock);
    return r;
}

/* ---- instances -------------------------------------------------------- */

int driver_create(const odk_driver_class *cls, driver_info *info, odk_driver **out)
{
    /* info's values are ours from here on, whatever happens. */
    odk_value *personality = info->personality, *provider_props = info->provider_props;
    info->personality = info->provider_props = NULL;
    int st = ODK_E_NOMEM;
    odk_driver *d = calloc(1, sizeof *d);
    if (!d)
        goto fail;
    if (!personality)
        personality = odk_value_new_dict();
    if (!provider_props)
        provider_props = odk_value_new_dict();
    d->cls = cls;
    d->state = calloc(1, cls->state_size ? cls->state_size : 1);
    d->bundle_id = strdup(info->bundle_id ? info->bundle_id : "");
    if (!personality || !provider_props || !d->state || !d->bundle_id)
        goto fail;
    d->instance = info->instance;
    d->provider_id = info->provider_id;
    d->service_id = info->service_id;
    st = odk_queue_create(cls->name, &d->queue);
    if (st < 0)
        goto fail;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    d->personality = personality;
    d->provider_props = provider_props;
    *out = d;
    return ODK_OK;

fail:
    if (d) {
        free(d->bundle_id);
        free(d->state);
        free(d);
    }
    odk_value_free(provider_props);
    odk_value_free(personality);
    return st;
}

struct lifecycle_call {
    odk_driver *drv;
    void (*start_done)(void *ctx, int status);
    void (*stop_done)(void *ctx);
    void *ctx;
};

static void run_start(void *arg)
{
    struct lifecycle_call *c = arg;
    atomic_store(&c->drv->in_start, true);
    int st = c->drv->cls->start(c->drv);
    atomic_store(&c->drv->in_start, false);
    if (st == ODK_OK)
        c->drv->started = true;
    c->start_done(c->ctx, st);
    free(c);
}

int driver_start_async(odk_driver *drv, void (*done)(void *ctx, int status), void *ctx)
{
    struct lifecycle_call *c = calloc(1, sizeof *c);
    if (!c)
        return ODK_E_NOMEM;
    *c = (struct lifecycle_call){.drv = drv, .start_done = done, .ctx = ctx};
    int st = odk_queue_dispatch_async(drv->queue, run_start, c);
    if (st < 0)
        free(c);
    return st;
}

static void run_stop(void *arg)
{
    struct lifecycle_call *c = arg;
    odk_driver *d = c->drv;
    user_client_close_all(d);
    if (d->started && d->cls->stop)
        d->cls->stop(d);
    d->started = false;
    d->stopped = true;
    c->stop_done(c->ctx);
    free(c);
}

int driver_stop_async(odk_driver *drv, void (*done)(void *ctx), void *ctx)
{
    struct lifecycle_call *c = calloc(1, sizeof *c);
    if (!c)
        return ODK_E_NOMEM;
    *c = (struct lifecycle_call){.drv = drv, .stop_done = done, .ctx = ctx};
    int st = odk_queue_dispatch_async(drv->queue, run_stop, c);
    if (st < 0)
        free(c);
    return st;
}

static void queue_finished(void *ctx)
{
    odk_driver *d = ctx;
    pthread_mutex_lock(&d->lock);
    d->queue_done = true;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

void driver_destroy(odk_driver *d)
{
    if (!d)
        return;
    if (d->queue) {
        if (odk_queue_is_current(d->queue)) {
            odk_error("driver_destroy called on the driver's own queue; leaking it");
            return;
        }
        odk_queue_cancel(d->queue, queue_finished, d);
        pthread_mutex_lock(&d->lock);
        while (!d->queue_done)
            pthread_cond_wait(&d->cond, &d->lock);
        pthread_mutex_unlock(&d->lock);
        odk_release(d->queue);
    }
    if (d->cls && d->cls->free)
        d->cls->free(d);
    odk_value_free(d->personality);
    odk_value_free(d->provider_props);
    odk_release(d->iommu);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
    free(d->state);
    free(d->bundle_id);
    free(d);
}

int driver_set_node_handler(odk_driver *drv, const node_handler *h)
{
    for (size_t i = 0; i < drv->n_handlers; i++) {
        if (drv->handlers[i].node_id != h->node_id)
            continue;
        if (h->methods)
            drv->handlers[i] = *h;
        else
            drv->handlers[i] = drv->handlers[--drv->n_handlers];
        return ODK_OK;
    }
    if (!h->methods)
        return ODK_E_NOT_FOUND;
    if (drv->n_handlers == MAX_NODE_HANDLERS)
        return ODK_E_LIMIT;
    drv->handlers[drv->n_handlers++] = *h;
    return ODK_OK;
}

/* ---- accessors -------------------------------------------------------- */

void odk_free(void *p)
{
    free(p);
}

void *odk_driver_state(odk_driver *drv)
{
    return drv->state;
}

odk_queue *odk_driver_queue(odk_driver *drv)
{
    return drv->queue;
}

const char *odk_driver_bundle_id(const odk_driver *drv)
{
    return drv->bundle_id;
}

uint32_t odk_driver_instance(const odk_driver *drv)
{
    return drv->instance;
}

const odk_value *odk_driver_personality(const odk_driver *drv)
{
    return drv->personality;
}

const odk_value *odk_driver_provider_properties(const odk_driver *drv)
{
    return drv->provider_props;
}

uint64_t odk_driver_provider_id(const odk_driver *drv)
{
    return drv->provider_id;
}

odk_iommu *odk_driver_iommu(odk_driver *drv)
{
    pthread_mutex_lock(&drv->lock);
    if (!drv->iommu && odk_iommu_create_sim(48, drv->instance, &drv->iommu) < 0)
        drv->iommu = NULL;
    pthread_mutex_unlock(&drv->lock);
    return drv->iommu;
}

uint64_t odk_driver_service_id(const odk_driver *drv)
{
    return drv->service_id;
}

/* ---- requests to odkd ------------------------------------------------- */

int odk_driver_register_service(odk_driver *drv)
{
    odk_value *args = odk_value_new_dict();
    if (!args || odk_dict_set_int(args, "node", (int64_t)drv->service_id) < 0) {
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    /* In the start, as set-property below: the start's reply follows it. */
    if (atomic_load(&drv->in_start))
        return host_link_post("register-service", args);
    return host_link_request("register-service", args, NULL);
}

int odk_driver_set_node_property(odk_driver *drv, uint64_t node_id, const char *key,
                                 odk_value *value)
{
    int st = ODK_E_INVALID;
    odk_value *args = NULL;
    if (!key || !*key || !value)
        goto out;
    st = ODK_E_NOMEM;
    args = odk_value_new_dict();
    if (!args || odk_dict_set_int(args, "node", (int64_t)node_id) < 0 ||
        odk_dict_set_string(args, "key", key) < 0)
        goto out;
    st = odk_dict_set(args, "value", value); /* takes value, also on failure */
    value = NULL;
    if (st < 0)
        goto out;
    /* In the start, on the service node (the instance's own, so odkd's
     * checks are the ones above): the start's reply is the next word odkd
     * reads from this host, and no app sees the service before, so the
     * driver need not wait for the round trip. */
    if (atomic_load(&drv->in_start) && node_id == drv->service_id)
        st = host_link_post("set-property", args); /* takes args */
    else
        st = host_link_request("set-property", args, NULL); /* takes args */
    args = NULL;
out:
    odk_value_free(args);
    odk_value_free(value);
    return st;
}

int odk_driver_set_property(odk_driver *drv, const char *key, odk_value *value)
{
    return odk_driver_set_node_property(drv, drv->service_id, key, value);
}

int odk_driver_publish_node(odk_driver *drv, const char *cls, const char *super,
                            odk_value *props, uint64_t *node_id)
{
    int st = ODK_E_INVALID;
    odk_value *args = NULL, *reply = NULL;
    if (!cls || !*cls)
        goto out;
    st = ODK_E_NOMEM;
    if (!props && !(props = odk_value_new_dict()))
        goto out;
    args = odk_value_new_dict();
    if (!args || odk_dict_set_string(args, "class", cls) < 0 ||
        odk_dict_set_string(args, "super", super ? super : "IOService") < 0 ||
        odk_dict_set_int(args, "parent", (int64_t)drv->service_id) < 0)
        goto out;
    st = odk_dict_set(args, "properties", props); /* takes props, also on failure */
    props = NULL;
    if (st < 0)
        goto out;
    st = host_link_request("publish-node", args, &reply); /* takes args */
    args = NULL;
    if (st == ODK_OK && node_id)
        *node_id = (uint64_t)odk_dict_get_int(reply, "node", 0);
out:
    odk_value_free(reply);
    odk_value_free(args);
    odk_value_free(props);
    return st;
}

int odk_driver_withdraw_node(odk_driver *drv, uint64_t node_id)
{
    (void)drv;
    odk_value *args = odk_value_new_dict();
    if (!args || odk_dict_set_int(args, "node", (int64_t)node_id) < 0) {
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    return host_link_request("withdraw-node", args, NULL);
}
