/* SPDX-License-Identifier: MIT */
/* usb-vendor-echo: a driver for a vendor-class USB interface (class 0xff),
 * the kind of device people write their first USB driver for.
 *
 * It matches interface 0 of the simulated vendor-echo device (1209:0002),
 * opens it, takes the pipes of its three endpoints, and offers apps:
 *   selector 0  echo: memory[0] holds the bytes to send (scalar_in[0] of
 *               them), memory[1] receives them back; scalar_out[0] is how
 *               many came back.  The app's own buffers go to the device:
 *               no copy on the way.
 *   selector 1  counters: the device's four counters (a vendor request)
 *   selector 2  event: the next record of the interrupt endpoint, waiting
 *               up to scalar_in[0] ms: {sequence, length}
 *   selector 3  clear stall: clears a halt on both bulk pipes
 *   selector 4  stream (asynchronous): moves scalar_in[0] bytes out and back
 *               in transfers of scalar_in[1] bytes, scalar_in[2] of each
 *               direction in flight, and checks every transfer came back
 *               with its own sequence number; scalar_out: bytes moved,
 *               nanoseconds taken.  `make bench ONLY=usb_bulk` times it.
 * A transfer's status comes back as the call's status (ODK_E_STALL,
 * ODK_E_TIMEOUT, ODK_E_GONE...). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "odk/driver.h"
#include "odk/usb.h"

#define STREAM_MAX_IN_FLIGHT 16

/* One slot of a stream: an OUT buffer and the IN buffer its bytes come
 * back into. */
struct slot {
    struct echo *e;
    odk_memory *out, *in;
    uint8_t *out_data, *in_data;
    uint64_t seq; /* the transfer this slot carries now */
};

struct stream {
    odk_async *call;
    uint64_t total, size, submitted, done, moved, start_ns;
    unsigned n_slots, in_flight;
    int status;
    struct slot slots[STREAM_MAX_IN_FLIGHT];
};

struct echo {
    odk_usb_interface *intf;
    odk_usb_pipe *out, *in, *event;
    odk_memory *scratch; /* where interrupt records land */
    struct stream stream;
};

static int echo_start(odk_driver *drv)
{
    struct echo *e = odk_driver_state(drv);
    char *holder = NULL;
    int st = odk_usb_interface_open(drv, &e->intf, &holder);
    if (st == ODK_E_BUSY) {
        odk_error("interface is held by %s", holder ? holder : "another driver");
        odk_free(holder);
        return st;
    }
    if (st < 0)
        return st;
    const odk_usb_interface_descriptor *d = odk_usb_interface_descriptor_get(e->intf);
    odk_info("interface %u: class 0x%02x, %u endpoints", d->bInterfaceNumber, d->bInterfaceClass,
             d->bNumEndpoints);
    if ((st = odk_usb_interface_copy_pipe(e->intf, 0x01, &e->out)) < 0 ||
        (st = odk_usb_interface_copy_pipe(e->intf, 0x81, &e->in)) < 0 ||
        (st = odk_usb_interface_copy_pipe(e->intf, 0x82, &e->event)) < 0 ||
        (st = odk_memory_create(64, ODK_MEM_INOUT, &e->scratch)) < 0)
        return st;
    return odk_driver_register_service(drv);
}

static void free_slots(struct stream *s)
{
    for (unsigned i = 0; i < STREAM_MAX_IN_FLIGHT; i++) {
        odk_release(s->slots[i].out);
        odk_release(s->slots[i].in);
        s->slots[i].out = s->slots[i].in = NULL;
    }
    s->n_slots = 0;
}

static void echo_stop(odk_driver *drv)
{
    struct echo *e = odk_driver_state(drv);
    odk_usb_interface_close(e->intf); /* releases the pipes too */
    odk_release(e->scratch);
    e->intf = NULL;
}

static void echo_free(odk_driver *drv)
{
    struct echo *e = odk_driver_state(drv);
    free_slots(&e->stream); /* after stop: no completion can run now */
}

static int echo_bytes(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo *e = odk_driver_state(drv);
    const odk_memory_range *src = &call->memory[0], *dst = &call->memory[1];
    uint64_t len = call->scalar_in[0];
    if (len > src->length || len > UINT32_MAX)
        return ODK_E_INVALID;
    int st = odk_usb_pipe_io(e->out, src->memory, src->offset, (uint32_t)len, NULL, 0);
    uint32_t got = 0;
    if (st == ODK_OK)
        st = odk_usb_pipe_io(e->in, dst->memory, dst->offset,
                             dst->length > UINT32_MAX ? UINT32_MAX : (uint32_t)dst->length, &got, 0);
    call->scalar_out[0] = got;
    return st;
}

static int echo_counters(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo *e = odk_driver_state(drv);
    uint8_t c[16];
    uint32_t got = 0;
    odk_usb_request r = {ODK_USB_REQ_IN | ODK_USB_REQ_VENDOR | ODK_USB_REQ_DEVICE, 0x01, 0, 0,
                         sizeof c};
    int st = odk_usb_interface_request(e->intf, &r, c, &got, 0);
    if (st < 0)
        return st;
    if (got != sizeof c)
        return ODK_E_PROTOCOL;
    for (int i = 0; i < 4; i++)
        call->scalar_out[i] = (uint64_t)c[4 * i] | (uint64_t)c[4 * i + 1] << 8 |
                              (uint64_t)c[4 * i + 2] << 16 | (uint64_t)c[4 * i + 3] << 24;
    return ODK_OK;
}

static int echo_event(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo *e = odk_driver_state(drv);
    uint32_t got = 0;
    int st = odk_usb_pipe_io(e->event, e->scratch, 0, 8, &got, (uint32_t)call->scalar_in[0]);
    if (st < 0)
        return st;
    uint8_t rec[8] = {0};
    odk_memory_read(e->scratch, 0, rec, sizeof rec);
    call->scalar_out[0] = (uint64_t)rec[0] | rec[1] << 8 | rec[2] << 16 | (uint64_t)rec[3] << 24;
    call->scalar_out[1] = (uint64_t)rec[4] | rec[5] << 8 | rec[6] << 16 | (uint64_t)rec[7] << 24;
    return got == 8 ? ODK_OK : ODK_E_PROTOCOL;
}

static int echo_clear_stall(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo *e = odk_driver_state(drv);
    int st = odk_usb_pipe_clear_stall(e->in);
    return st < 0 ? st : odk_usb_pipe_clear_stall(e->out);
}

/* ---- selector 4: a stream with many transfers in flight ------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void stream_next(struct slot *sl);

static void stream_finish(struct stream *s)
{
    uint64_t out[2] = {s->moved, now_ns() - s->start_ns};
    odk_async_complete(s->call, s->status, out, 2, NULL, 0);
    s->call = NULL;
}

/* The IN half of a slot came back: the sequence number at both ends must
 * be the one its OUT half carried. */
static void stream_in_done(void *ctx, int status, uint32_t actual, uint64_t ts)
{
    struct slot *sl = ctx;
    struct stream *s = &sl->e->stream;
    s->in_flight--;
    if (status == ODK_OK && actual != s->size)
        status = ODK_E_PROTOCOL;
    if (status == ODK_OK && (memcmp(sl->in_data, &sl->seq, sizeof sl->seq) != 0 ||
                             memcmp(sl->in_data + s->size - sizeof sl->seq, &sl->seq,
                                    sizeof sl->seq) != 0))
        status = ODK_E_PROTOCOL;
    if (status == ODK_OK)
        s->moved += actual;
    else if (s->status == ODK_OK)
        s->status = status;
    s->done++;
    if (s->status == ODK_OK && s->submitted * s->size < s->total)
        stream_next(sl);
    else if (s->in_flight == 0)
        stream_finish(s);
}

static void stream_out_done(void *ctx, int status, uint32_t actual, uint64_t ts)
{
    struct slot *sl = ctx;
    struct stream *s = &sl->e->stream;
    if (status < 0 && s->status == ODK_OK)
        s->status = status; /* the IN half ends too: by timeout at worst */
}

/* Queues the slot's IN transfer, then its OUT transfer, stamped with the
 * next sequence number. */
static void stream_next(struct slot *sl)
{
    struct echo *e = sl->e;
    struct stream *s = &e->stream;
    sl->seq = ++s->submitted;
    memcpy(sl->out_data, &sl->seq, sizeof sl->seq);
    memcpy(sl->out_data + s->size - sizeof sl->seq, &sl->seq, sizeof sl->seq);
    int st = odk_usb_pipe_async_io(e->in, sl->in, 0, (uint32_t)s->size, 0, stream_in_done, sl);
    if (st == ODK_OK) {
        s->in_flight++;
        st = odk_usb_pipe_async_io(e->out, sl->out, 0, (uint32_t)s->size, 0, stream_out_done, sl);
        if (st < 0)
            odk_usb_pipe_abort(e->in); /* its IN half completes, cancelled */
    }
    if (st < 0 && s->status == ODK_OK)
        s->status = st;
    if (st < 0 && s->in_flight == 0)
        stream_finish(s);
}

static int echo_stream(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo *e = odk_driver_state(drv);
    struct stream *s = &e->stream;
    uint64_t total = call->scalar_in[0], size = call->scalar_in[1], n = call->scalar_in[2];
    if (s->call)
        return ODK_E_BUSY;
    if (size < 16 || size > 64u << 20 || n == 0 || n > STREAM_MAX_IN_FLIGHT || total == 0)
        return ODK_E_INVALID;
    if (s->n_slots != n || s->size != size) {
        free_slots(s);
        for (unsigned i = 0; i < n; i++) {
            struct slot *sl = &s->slots[i];
            sl->e = e;
            int st = odk_memory_create(size, ODK_MEM_INOUT, &sl->out);
            if (st == ODK_OK)
                st = odk_memory_create(size, ODK_MEM_INOUT, &sl->in);
            if (st == ODK_OK)
                st = odk_memory_map(sl->out, ODK_MAP_READ | ODK_MAP_WRITE, (void **)&sl->out_data);
            if (st == ODK_OK)
                st = odk_memory_map(sl->in, ODK_MAP_READ | ODK_MAP_WRITE, (void **)&sl->in_data);
            if (st < 0) {
                free_slots(s);
                return st;
            }
            memset(sl->out_data, 0x5a, size); /* touched once: no page faults while timed */
            memset(sl->in_data, 0, size);
        }
        s->n_slots = (unsigned)n;
    }
    s->call = call->async;
    s->total = total;
    s->size = size;
    s->submitted = s->done = s->moved = 0;
    s->in_flight = 0;
    s->status = ODK_OK;
    s->start_ns = now_ns();
    for (unsigned i = 0; i < n && s->submitted * size < total && s->status == ODK_OK; i++)
        stream_next(&s->slots[i]);
    return ODK_OK; /* completes in stream_finish */
}

static const odk_method echo_methods[] = {
    [0] = {echo_bytes, .scalar_in = 1, .scalar_out = 1, .memory = 2},
    [1] = {echo_counters, .scalar_out = 4},
    [2] = {echo_event, .scalar_in = 1, .scalar_out = 2},
    [3] = {echo_clear_stall, .scalar_in = 0},
    [4] = {echo_stream, .scalar_in = 3, .scalar_out = 2, .flags = ODK_METHOD_ASYNC},
};

static const odk_driver_class echo_class = {
    .name = "UsbVendorEcho",
    .state_size = sizeof(struct echo),
    .start = echo_start,
    .stop = echo_stop,
    .free = echo_free,
    .methods = echo_methods,
    .n_methods = sizeof echo_methods / sizeof echo_methods[0],
};

ODK_DRIVER_CLASS(echo_class);
