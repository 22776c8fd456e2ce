/* SPDX-License-Identifier: MIT */
/* link_libusb.c — a link's libusb backend (link_backend.h): a real device,
 * through the usbfs descriptor odkd opened for this host
 * (src/buses/usb/usbfs.c).  The host has no access to /dev/bus/usb of its
 * own: it wraps the descriptor (libusb_wrap_sys_device) in a libusb
 * context that discovers nothing.
 *
 * One context and one event thread per link: transfers are libusb's
 * asynchronous ones, reaped on the event thread.  A completion runs on
 * that thread, as its queue (queue_try_run_here), when the queue is idle,
 * as the sim link's reader does: no hand-off, no wake-up of the queue's
 * thread.  libusb's callback only collects the transfer; the driver's
 * callback runs once libusb_handle_events returned, outside libusb's
 * event lock, so it may do anything a queue callback may: a synchronous
 * request (libusb handles the events itself then), an abort (which
 * handles them until its transfers are back) or a close.  A transfer
 * stays on the link's list until its completion ran or was queued, so an
 * abort from any thread returns only then.  Completions reaped on any
 * other thread (one in a synchronous request), or while a completion runs
 * on the event thread, go to their queue's FIFO.
 *
 * The standard requests that change the host's view of the device
 * (SET_CONFIGURATION, SET_INTERFACE, CLEAR_FEATURE(HALT)) go through
 * libusb's calls for them, so the kernel keeps its state (data toggles,
 * claimed interfaces) right; everything else is a control transfer as the
 * driver wrote it. */
#include <errno.h>
#include <libusb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "families/usb/link_backend.h"
#include "families/usb/usb_internal.h"
#include "odk/log.h"
#include "odk/object.h"
#include "odk/status.h"
#include "runtime/runtime_internal.h"

struct lu_xfer {
    struct lu_link *l;
    struct libusb_transfer *t;
    uint8_t endpoint;
    odk_memory *buffer; /* retained */
    odk_usb_completion done;
    void *ctx;
    odk_queue *q;
    int status;
    uint32_t actual;
    uint64_t timestamp_ns;
    struct lu_xfer *next;
    struct lu_xfer *ready_next; /* reaped, its completion not run yet */
};

struct lu_link {
    struct usb_link base;
    libusb_context *ctx;
    libusb_device_handle *h;
    int fd;
    int iface; /* the claimed interface, or -1 for a device link */
    pthread_t events;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping, gone;
    struct lu_xfer *xfers; /* in flight, or reaped with the completion not run or queued */
    struct lu_xfer *ready, **ready_tail; /* reaped on the event thread, to run after */
    uint8_t ep_type[32];   /* LIBUSB_TRANSFER_TYPE_*, by ep_index() */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned ep_index(uint8_t endpoint)
{
    return (endpoint & 0x0f) | (endpoint & 0x80 ? 16 : 0);
}

static int status_of(int e)
{
    switch (e) {
    case LIBUSB_SUCCESS:
        return ODK_OK;
    case LIBUSB_ERROR_PIPE:
        return ODK_E_STALL;
    case LIBUSB_ERROR_TIMEOUT:
        return ODK_E_TIMEOUT;
    case LIBUSB_ERROR_NO_DEVICE:
        return ODK_E_GONE;
    case LIBUSB_ERROR_OVERFLOW:
        return ODK_E_OVERRUN;
    case LIBUSB_ERROR_BUSY:
        return ODK_E_BUSY;
    case LIBUSB_ERROR_ACCESS:
        return ODK_E_ACCESS;
    case LIBUSB_ERROR_NOT_FOUND:
        return ODK_E_NOT_FOUND;
    case LIBUSB_ERROR_INVALID_PARAM:
        return ODK_E_INVALID;
    case LIBUSB_ERROR_NO_MEM:
        return ODK_E_NOMEM;
    case LIBUSB_ERROR_NOT_SUPPORTED:
        return ODK_E_UNSUPPORTED;
    case LIBUSB_ERROR_INTERRUPTED:
        return ODK_E_CANCELLED;
    default:
        return ODK_E_IO;
    }
}

static int transfer_status_of(enum libusb_transfer_status s)
{
    switch (s) {
    case LIBUSB_TRANSFER_COMPLETED:
        return ODK_OK;
    case LIBUSB_TRANSFER_STALL:
        return ODK_E_STALL;
    case LIBUSB_TRANSFER_TIMED_OUT:
        return ODK_E_TIMEOUT;
    case LIBUSB_TRANSFER_CANCELLED:
        return ODK_E_CANCELLED;
    case LIBUSB_TRANSFER_NO_DEVICE:
        return ODK_E_GONE;
    case LIBUSB_TRANSFER_OVERFLOW:
        return ODK_E_OVERRUN;
    default:
        return ODK_E_IO;
    }
}

static void mark_gone(struct lu_link *l, int st)
{
    if (st != ODK_E_GONE)
        return;
    pthread_mutex_lock(&l->lock);
    l->gone = true;
    pthread_mutex_unlock(&l->lock);
}

/* The endpoints' types, from the active configuration (again after an
 * alternate setting changed). */
static void learn_endpoints(struct lu_link *l)
{
    struct libusb_config_descriptor *c = NULL;
    if (libusb_get_active_config_descriptor(libusb_get_device(l->h), &c) < 0 || !c)
        return;
    for (int i = 0; i < c->bNumInterfaces; i++)
        for (int a = 0; a < c->interface[i].num_altsetting; a++) {
            const struct libusb_interface_descriptor *d = &c->interface[i].altsetting[a];
            for (int e = 0; e < d->bNumEndpoints; e++)
                l->ep_type[ep_index(d->endpoint[e].bEndpointAddress)] =
                    d->endpoint[e].bmAttributes & 3;
        }
    libusb_free_config_descriptor(c);
}

/* The link whose event thread this is (NULL on every other thread), and
 * whether that thread runs a completion now. */
static _Thread_local struct lu_link *events_of;
static _Thread_local bool in_completion;

static void run_completion(void *arg);

static bool matches(const struct lu_xfer *x, uint8_t endpoint)
{
    return endpoint == 0xff || x->endpoint == endpoint;
}

/* Takes x off the list (under l->lock) and wakes an abort waiting for it. */
static void unlink_locked(struct lu_link *l, struct lu_xfer *x)
{
    for (struct lu_xfer **p = &l->xfers; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            break;
        }
    pthread_cond_broadcast(&l->cond);
}

/* Queues x's completion on its queue, leaving the list only then (an abort
 * waiting for x returns with the completion queued); with no queue, or a
 * cancelled one, runs it here after. */
static void queue_completion(struct lu_link *l, struct lu_xfer *x)
{
    pthread_mutex_lock(&l->lock);
    bool queued = x->q && odk_queue_dispatch_async(x->q, run_completion, x) == ODK_OK;
    unlink_locked(l, x);
    pthread_mutex_unlock(&l->lock);
    if (!queued)
        run_completion(x);
}

/* As its queue, on the event thread: off the list first (a callback that
 * aborts does not wait for itself). */
static void run_here(void *arg)
{
    struct lu_xfer *x = arg;
    pthread_mutex_lock(&x->l->lock);
    unlink_locked(x->l, x);
    pthread_mutex_unlock(&x->l->lock);
    run_completion(x);
}

/* On the event thread, after libusb_handle_events: the completions reaped
 * meanwhile, each here when its queue is idle, else queued.  False when a
 * completion closed the link (l is gone). */
static bool run_ready(struct lu_link *l)
{
    for (;;) {
        pthread_mutex_lock(&l->lock);
        struct lu_xfer *x = l->ready;
        if (x && !(l->ready = x->ready_next))
            l->ready_tail = &l->ready;
        pthread_mutex_unlock(&l->lock);
        if (!x)
            return true;
        in_completion = true;
        if (!x->q || queue_try_run_here(x->q, run_here, x) < 0)
            queue_completion(l, x);
        in_completion = false;
        if (events_of != l)
            return false;
    }
}

/* On the event thread, from a completion it runs: what was reaped and not
 * run yet goes to the queues' FIFOs now, before what the caller queues
 * next (a free after an abort, say). */
static void flush_ready(struct lu_link *l)
{
    pthread_mutex_lock(&l->lock);
    struct lu_xfer *x = l->ready;
    l->ready = NULL;
    l->ready_tail = &l->ready;
    pthread_mutex_unlock(&l->lock);
    while (x) {
        struct lu_xfer *next = x->ready_next;
        queue_completion(l, x);
        x = next;
    }
}

static void *event_thread(void *arg)
{
    struct lu_link *l = arg;
    events_of = l;
    pthread_setname_np(pthread_self(), "usb-link");
    for (;;) {
        pthread_mutex_lock(&l->lock);
        bool stop = l->stopping;
        pthread_mutex_unlock(&l->lock);
        if (stop)
            break;
        struct timeval tv = {1, 0};
        int e = libusb_handle_events_timeout_completed(l->ctx, &tv, NULL);
        if (e < 0 && e != LIBUSB_ERROR_INTERRUPTED && e != LIBUSB_ERROR_TIMEOUT) {
            odk_warn("usb: libusb's event handling failed: %s", libusb_error_name(e));
            struct timespec pause = {0, 10000000};
            nanosleep(&pause, NULL);
        }
        if (!run_ready(l))
            return NULL; /* closed by a completion: l is gone */
    }
    events_of = NULL;
    return NULL;
}

static int lu_open(int fd, const odk_value *info, struct usb_link **out, char *err, size_t err_len)
{
    struct lu_link *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        return ODK_E_NOMEM;
    }
    l->fd = fd;
    l->iface = strcmp(odk_dict_get_string(info, "kind", ""), "interface") == 0
                   ? (int)odk_dict_get_int(info, "interface", 0)
                   : -1;
    /* This host may see no device but the one it was given. */
    libusb_set_option(NULL, LIBUSB_OPTION_NO_DEVICE_DISCOVERY);
    int e = libusb_init(&l->ctx);
    if (e == 0)
        e = libusb_wrap_sys_device(l->ctx, (intptr_t)fd, &l->h);
    if (e < 0) {
        snprintf(err, err_len, "libusb cannot take the device odkd opened: %s",
                 libusb_error_name(e));
        goto fail;
    }
    if (l->iface >= 0) {
        e = libusb_claim_interface(l->h, l->iface);
        if (e == LIBUSB_ERROR_BUSY) {
            /* A kernel driver bound itself after odkd detached it. */
            libusb_detach_kernel_driver(l->h, l->iface);
            e = libusb_claim_interface(l->h, l->iface);
        }
        if (e < 0) {
            snprintf(err, err_len, "cannot claim interface %d: %s", l->iface, libusb_error_name(e));
            goto fail;
        }
    }
    learn_endpoints(l);
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
    l->ready_tail = &l->ready;
    if (pthread_create(&l->events, NULL, event_thread, l) != 0) {
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->cond);
        e = LIBUSB_ERROR_NO_MEM;
        goto fail;
    }
    *out = &l->base;
    return ODK_OK;
fail:
    if (l->h) {
        if (l->iface >= 0)
            libusb_release_interface(l->h, l->iface);
        libusb_close(l->h);
    }
    if (l->ctx)
        libusb_exit(l->ctx);
    close(fd);
    free(l);
    return e == LIBUSB_ERROR_NO_DEVICE ? ODK_E_GONE : status_of(e);
}

static int lu_control(struct usb_link *base, const odk_usb_request *req, void *data,
                      uint32_t *actual, uint32_t timeout_ms)
{
    struct lu_link *l = (struct lu_link *)base;
    unsigned timeout = timeout_ms ? timeout_ms : ODK_USB_DEFAULT_TIMEOUT_MS;
    uint8_t type = req->bmRequestType;
    int e;
    if (actual)
        *actual = 0;
    if (type == (ODK_USB_REQ_OUT | ODK_USB_REQ_STANDARD | ODK_USB_REQ_DEVICE) &&
        req->bRequest == 9) {
        e = libusb_set_configuration(l->h, req->wValue);
    } else if (type == (ODK_USB_REQ_OUT | ODK_USB_REQ_STANDARD | ODK_USB_REQ_INTERFACE) &&
               req->bRequest == 11) {
        e = libusb_set_interface_alt_setting(l->h, req->wIndex, req->wValue);
        if (e == 0)
            learn_endpoints(l);
    } else if (type == (ODK_USB_REQ_OUT | ODK_USB_REQ_STANDARD | ODK_USB_REQ_ENDPOINT) &&
               req->bRequest == 1 && req->wValue == 0) {
        e = libusb_clear_halt(l->h, (unsigned char)req->wIndex);
    } else {
        e = libusb_control_transfer(l->h, type, req->bRequest, req->wValue, req->wIndex, data,
                                    req->wLength, timeout);
        if (e >= 0) {
            if (actual)
                *actual = (uint32_t)e;
            e = 0;
        }
    }
    int st = status_of(e);
    mark_gone(l, st);
    return st;
}

static void run_completion(void *arg)
{
    struct lu_xfer *x = arg;
    x->done(x->ctx, x->status, x->actual, x->timestamp_ns);
    odk_release(x->buffer);
    free(x);
}

/* Where libusb reaps: on the event thread, or on a thread that waits for
 * a synchronous request (libusb handles the events then). */
static void LIBUSB_CALL transfer_done(struct libusb_transfer *t)
{
    struct lu_xfer *x = t->user_data;
    struct lu_link *l = x->l;
    x->status = transfer_status_of(t->status);
    x->actual = (uint32_t)t->actual_length;
    x->timestamp_ns = now_ns();
    /* lu_abort cancels x->t under the lock: x->t goes under it too, and is
     * freed only after, never under a cancel. */
    bool later = events_of == l && !in_completion;
    pthread_mutex_lock(&l->lock);
    x->t = NULL;
    if (x->status == ODK_E_GONE)
        l->gone = true;
    if (later) {
        x->ready_next = NULL;
        *l->ready_tail = x;
        l->ready_tail = &x->ready_next;
    }
    pthread_mutex_unlock(&l->lock);
    libusb_free_transfer(t);
    if (!later)
        queue_completion(l, x);
}

static int lu_submit(struct usb_link *base, uint8_t endpoint, odk_memory *buffer, uint64_t offset,
                     uint32_t length, uint32_t timeout_ms, odk_usb_completion done, void *ctx,
                     odk_queue *q)
{
    struct lu_link *l = (struct lu_link *)base;
    uint8_t type = l->ep_type[ep_index(endpoint)];
    if (type == LIBUSB_TRANSFER_TYPE_ISOCHRONOUS || (endpoint & 0x0f) == 0)
        return ODK_E_UNSUPPORTED;
    uint8_t *addr = NULL;
    if (buffer) {
        void *p = NULL;
        int st = odk_memory_map(
            buffer, endpoint & ODK_USB_ENDPOINT_IN ? ODK_MAP_READ | ODK_MAP_WRITE : ODK_MAP_READ,
            &p);
        if (st < 0)
            return st;
        addr = (uint8_t *)p + offset;
    }
    struct lu_xfer *x = calloc(1, sizeof *x);
    struct libusb_transfer *t = x ? libusb_alloc_transfer(0) : NULL;
    if (!t) {
        free(x);
        return ODK_E_NOMEM;
    }
    *x = (struct lu_xfer){.l = l,
                          .t = t,
                          .endpoint = endpoint,
                          .done = done,
                          .ctx = ctx,
                          .q = q,
                          .buffer = buffer ? odk_retain(buffer) : NULL};
    unsigned timeout = timeout_ms ? timeout_ms : ODK_USB_DEFAULT_TIMEOUT_MS;
    if (type == LIBUSB_TRANSFER_TYPE_INTERRUPT)
        libusb_fill_interrupt_transfer(t, l->h, endpoint, addr, (int)length, transfer_done, x,
                                       timeout);
    else
        libusb_fill_bulk_transfer(t, l->h, endpoint, addr, (int)length, transfer_done, x, timeout);
    pthread_mutex_lock(&l->lock);
    int e = l->gone ? LIBUSB_ERROR_NO_DEVICE : libusb_submit_transfer(t);
    if (e == 0) {
        x->next = l->xfers;
        l->xfers = x;
    }
    pthread_mutex_unlock(&l->lock);
    if (e < 0) {
        libusb_free_transfer(t);
        odk_release(x->buffer);
        free(x);
        int st = status_of(e);
        mark_gone(l, st);
        return st;
    }
    return ODK_OK;
}

static bool left(const struct lu_link *l, uint8_t endpoint)
{
    for (const struct lu_xfer *x = l->xfers; x; x = x->next)
        if (matches(x, endpoint))
            return true;
    return false;
}

static int lu_abort(struct usb_link *base, uint8_t endpoint)
{
    struct lu_link *l = (struct lu_link *)base;
    bool on_events = events_of == l;
    if (on_events)
        flush_ready(l);
    pthread_mutex_lock(&l->lock);
    for (struct lu_xfer *x = l->xfers; x; x = x->next)
        if (matches(x, endpoint) && x->t)
            libusb_cancel_transfer(x->t);
    /* The event thread reaps them (a device that went away completes them
     * too, with ODK_E_GONE); from a completion it runs, this thread is the
     * one that must: their completions go to the FIFOs. */
    while (left(l, endpoint)) {
        if (!on_events) {
            pthread_cond_wait(&l->cond, &l->lock);
            continue;
        }
        pthread_mutex_unlock(&l->lock);
        struct timeval tv = {0, 100000};
        libusb_handle_events_timeout_completed(l->ctx, &tv, NULL);
        pthread_mutex_lock(&l->lock);
    }
    pthread_mutex_unlock(&l->lock);
    return ODK_OK;
}

/* A completion on the event thread that does synchronous I/O: nobody else
 * reaps, so it handles the events itself until its transfer is back (its
 * own timeout or the device's end finishes it too). */
static int lu_wait(struct usb_link *base, bool (*done)(void *ctx), void *ctx)
{
    struct lu_link *l = (struct lu_link *)base;
    if (events_of != l)
        return ODK_E_UNSUPPORTED;
    while (!done(ctx)) {
        struct timeval tv = {0, 100000};
        libusb_handle_events_timeout_completed(l->ctx, &tv, NULL);
    }
    return ODK_OK;
}

static bool lu_gone(struct usb_link *base)
{
    struct lu_link *l = (struct lu_link *)base;
    pthread_mutex_lock(&l->lock);
    bool g = l->gone;
    pthread_mutex_unlock(&l->lock);
    return g;
}

static void lu_close(struct usb_link *base)
{
    struct lu_link *l = (struct lu_link *)base;
    lu_abort(base, 0xff);
    pthread_mutex_lock(&l->lock);
    l->stopping = true;
    pthread_mutex_unlock(&l->lock);
    if (events_of == l) {
        /* From a completion on the event thread: it is outside libusb's
         * event handling, so everything goes now; the thread ends when
         * the completion returns, without looking at l again. */
        events_of = NULL;
        pthread_detach(l->events);
    } else {
        libusb_interrupt_event_handler(l->ctx);
        pthread_join(l->events, NULL);
    }
    if (l->iface >= 0)
        libusb_release_interface(l->h, l->iface);
    libusb_close(l->h);
    libusb_exit(l->ctx);
    close(l->fd); /* libusb_close leaves a wrapped descriptor open */
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

const struct usb_link_ops usb_link_libusb_ops = {
    .name = "libusb",
    .wait = lu_wait,
    .open = lu_open,
    .control = lu_control,
    .submit = lu_submit,
    .abort = lu_abort,
    .gone = lu_gone,
    .close = lu_close,
};
