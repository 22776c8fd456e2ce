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
 * A transfer's status comes back as the call's status (ODK_E_STALL,
 * ODK_E_TIMEOUT, ODK_E_GONE...). */
#include <stdlib.h>

#include "odk/driver.h"
#include "odk/usb.h"

struct echo {
    odk_usb_interface *intf;
    odk_usb_pipe *out, *in, *event;
    odk_memory *scratch; /* where interrupt records land */
};

static int echo_start(odk_driver *drv)
{
    struct echo *e = odk_driver_state(drv);
    char *holder = NULL;
    int st = odk_usb_interface_open(drv, &e->intf, &holder);
    if (st == ODK_E_BUSY) {
        odk_error("interface is held by %s", holder ? holder : "another driver");
        free(holder);
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

static void echo_stop(odk_driver *drv)
{
    struct echo *e = odk_driver_state(drv);
    odk_usb_interface_close(e->intf); /* releases the pipes too */
    odk_release(e->scratch);
    e->intf = NULL;
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

static const odk_method echo_methods[] = {
    [0] = {echo_bytes, .scalar_in = 1, .scalar_out = 1, .memory = 2},
    [1] = {echo_counters, .scalar_out = 4},
    [2] = {echo_event, .scalar_in = 1, .scalar_out = 2},
    [3] = {echo_clear_stall, .scalar_in = 0},
};

static const odk_driver_class echo_class = {
    .name = "UsbVendorEcho",
    .state_size = sizeof(struct echo),
    .start = echo_start,
    .stop = echo_stop,
    .methods = echo_methods,
    .n_methods = sizeof echo_methods / sizeof echo_methods[0],
};

ODK_DRIVER_CLASS(echo_class);
