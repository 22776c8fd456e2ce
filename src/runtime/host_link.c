/* SPDX-License-Identifier: MIT */
#include "runtime/host_link.h"

#include <pthread.h>

#include "odk/status.h"

static pthread_mutex_t link_lock = PTHREAD_MUTEX_INITIALIZER;
static host_request_fn link_fn;
static void *link_ctx;
static host_post_fn post_fn;

void host_link_set(host_request_fn fn, void *ctx)
{
    pthread_mutex_lock(&link_lock);
    link_fn = fn;
    link_ctx = ctx;
    pthread_mutex_unlock(&link_lock);
}

void host_link_set_post(host_post_fn fn)
{
    pthread_mutex_lock(&link_lock);
    post_fn = fn;
    pthread_mutex_unlock(&link_lock);
}

int host_link_post(const char *op, odk_value *args)
{
    pthread_mutex_lock(&link_lock);
    host_post_fn fn = link_fn ? post_fn : NULL;
    void *ctx = link_ctx;
    pthread_mutex_unlock(&link_lock);
    if (!fn)
        return host_link_request(op, args, NULL);
    return fn(ctx, op, args);
}

int host_link_request(const char *op, odk_value *args, odk_value **reply)
{
    return host_link_request_fds(op, args, reply, NULL, NULL);
}

int host_link_request_fds(const char *op, odk_value *args, odk_value **reply, int *fds,
                                 size_t *n_fds)
{
    pthread_mutex_lock(&link_lock);
    host_request_fn fn = link_fn;
    void *ctx = link_ctx;
    pthread_mutex_unlock(&link_lock);
    if (reply)
        *reply = NULL;
    if (n_fds && !fds)
        *n_fds = 0;
    if (!fn) {
        if (n_fds)
            *n_fds = 0;
        odk_value_free(args);
        return ODK_E_DISCONNECTED;
    }
    return fn(ctx, op, args, reply, fds, n_fds);
}
