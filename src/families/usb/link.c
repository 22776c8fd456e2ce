/* SPDX-License-Identifier: MIT */
/* link.c — one connection from a driver to its USB device (usb_internal.h),
 * whichever backend carries it (link_backend.h): odkd's usb-open reply
 * names the source of the device ("sim": a model process, "libusb": a real
 * device's usbfs descriptor) and its backend takes the descriptor odkd
 * passed.  What every backend shares lives here: the request to odkd,
 * synchronous I/O on top of asynchronous, descriptor reading. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "families/usb/link_backend.h"
#include "families/usb/usb_internal.h"
#include "odk/log.h"
#include "odk/status.h"
#include "runtime/host_link.h"

static const struct usb_link_ops *const backends[] = {
    &usb_link_sim_ops,
    &usb_link_libusb_ops,
};

/* {"node": node} and, for another interface of the device, its number. */
static odk_value *node_args(uint64_t node, int sibling)
{
    odk_value *args = odk_value_new_dict();
    if (args && (odk_dict_set_int(args, "node", (int64_t)node) < 0 ||
                 (sibling >= 0 && odk_dict_set_int(args, "interface", sibling) < 0))) {
        odk_value_free(args);
        args = NULL;
    }
    return args;
}

int usb_link_open(uint64_t node, int sibling, struct usb_link **out, odk_value **info, char *err,
                  size_t err_len)
{
    odk_value *args = node_args(node, sibling);
    if (!args)
        return ODK_E_NOMEM;
    odk_value *reply = NULL;
    int fds[1] = {-1};
    size_t n_fds = 1;
    int st = host_link_request_fds("usb-open", args, &reply, fds, &n_fds);
    if (st < 0) {
        snprintf(err, err_len, "%s", reply ? odk_dict_get_string(reply, "error", "") : "");
        odk_value_free(reply);
        return st;
    }
    if (n_fds != 1 || fds[0] < 0) {
        odk_value_free(reply);
        snprintf(err, err_len, "odkd answered usb-open without a connection");
        return ODK_E_PROTOCOL;
    }
    const char *source = odk_dict_get_string(reply, "source", "sim");
    const struct usb_link_ops *ops = NULL;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i]->name, source) == 0)
            ops = backends[i];
    struct usb_link *l = NULL;
    if (!ops) {
        snprintf(err, err_len, "odkd's USB source '%s' has no backend in this driver host", source);
        close(fds[0]);
        st = ODK_E_UNSUPPORTED;
    } else {
        st = ops->open(fds[0], reply, &l, err, err_len);
    }
    if (st < 0) {
        /* odkd holds the interface for us until we say so. */
        if ((args = node_args(node, sibling)))
            host_link_request("usb-close", args, NULL);
        odk_value_free(reply);
        return st;
    }
    l->ops = ops;
    l->node = node;
    l->sibling = sibling;
    *out = l;
    if (info)
        *info = reply;
    else
        odk_value_free(reply);
    return ODK_OK;
}

void usb_link_close(struct usb_link *l)
{
    if (!l)
        return;
    uint64_t node = l->node;
    int sibling = l->sibling;
    l->ops->close(l);
    /* An interface is the driver's until it says so (or its host ends);
     * the device is let go of first, so that odkd can give it back to the
     * kernel. */
    odk_value *args = node_args(node, sibling);
    if (args)
        host_link_request("usb-close", args, NULL);
}

bool usb_link_gone(struct usb_link *l)
{
    return l->ops->gone(l);
}

int usb_link_control(struct usb_link *l, const odk_usb_request *req, void *data, uint32_t *actual,
                     uint32_t timeout_ms)
{
    if (!req || (req->wLength && !data))
        return ODK_E_INVALID;
    return l->ops->control(l, req, data, actual, timeout_ms);
}

int usb_link_submit(struct usb_link *l, uint8_t endpoint, odk_memory *buffer, uint64_t offset,
                    uint32_t length, uint32_t timeout_ms, odk_usb_completion done, void *ctx,
                    odk_queue *q)
{
    if (!done || (length && !buffer))
        return ODK_E_INVALID;
    if (buffer) {
        uint64_t size = odk_memory_length(buffer);
        if (offset > size || length > size - offset)
            return ODK_E_INVALID;
        /* The device writes an IN transfer's bytes: a buffer the driver may
         * only read (ODK_MEM_OUT, the app's data going out) cannot take
         * them. */
        uint32_t dir = odk_memory_direction(buffer);
        if ((endpoint & ODK_USB_ENDPOINT_IN) && dir == ODK_MEM_OUT)
            return ODK_E_ACCESS;
    }
    return l->ops->submit(l, endpoint, buffer, offset, length, timeout_ms, done, ctx, q);
}

int usb_link_abort(struct usb_link *l, uint8_t endpoint)
{
    return l->ops->abort(l, endpoint);
}

struct sync_io {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status;
    uint32_t actual;
};

static void sync_done(void *ctx, int status, uint32_t actual, uint64_t ts)
{
    (void)ts;
    struct sync_io *s = ctx;
    pthread_mutex_lock(&s->lock);
    s->status = status;
    s->actual = actual;
    s->done = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static bool sync_finished(void *ctx)
{
    struct sync_io *s = ctx;
    pthread_mutex_lock(&s->lock);
    bool done = s->done;
    pthread_mutex_unlock(&s->lock);
    return done;
}

int usb_link_io(struct usb_link *l, uint8_t endpoint, odk_memory *buffer, uint64_t offset,
                uint32_t length, uint32_t *actual, uint32_t timeout_ms)
{
    struct sync_io s = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    /* Completed on the reader thread: the caller's queue is the one
     * waiting here.  When the caller is that reader (a completion it ran
     * does synchronous I/O), it reads the completion itself. */
    int st = usb_link_submit(l, endpoint, buffer, offset, length, timeout_ms, sync_done, &s, NULL);
    if (st < 0)
        return st;
    if (l->ops->wait)
        l->ops->wait(l, sync_finished, &s);
    pthread_mutex_lock(&s.lock);
    while (!s.done)
        pthread_cond_wait(&s.cond, &s.lock);
    pthread_mutex_unlock(&s.lock);
    if (actual)
        *actual = s.actual;
    return s.status;
}

int usb_link_get_descriptor(struct usb_link *l, uint8_t type, uint8_t index, uint16_t lang,
                            void *buf, uint16_t len, uint32_t *got)
{
    odk_usb_request r = {ODK_USB_REQ_IN | ODK_USB_REQ_STANDARD | ODK_USB_REQ_DEVICE, 6,
                         (uint16_t)(type << 8 | index), lang, len};
    return usb_link_control(l, &r, buf, got, 0);
}

int usb_link_copy_configuration(struct usb_link *l, uint8_t index, odk_usb_speed speed,
                                odk_usb_config_descriptor **out)
{
    uint8_t head[9];
    uint32_t got = 0;
    int st = usb_link_get_descriptor(l, ODK_USB_DT_CONFIG, index, 0, head, sizeof head, &got);
    if (st == ODK_E_STALL)
        return ODK_E_NOT_FOUND;
    if (st < 0)
        return st;
    char why[256];
    if (got < sizeof head) {
        odk_warn("usb: configuration %u: %u bytes read; its descriptor has 9", index, got);
        return ODK_E_PROTOCOL;
    }
    uint16_t total = (uint16_t)(head[2] | head[3] << 8);
    uint8_t *c = malloc(total ? total : 1);
    if (!c)
        return ODK_E_NOMEM;
    st = usb_link_get_descriptor(l, ODK_USB_DT_CONFIG, index, 0, c, total, &got);
    if (st == ODK_OK && (st = odk_usb_config_check(c, got, speed, why, sizeof why)) < 0)
        odk_warn("usb: %s", why);
    if (st < 0) {
        free(c);
        return st;
    }
    *out = (odk_usb_config_descriptor *)c;
    return ODK_OK;
}
