/* SPDX-License-Identifier: MIT */
/* A USB HID interface as a source (HID over USB, HID 1.11 chapter 7): the
 * report descriptor read with GET_DESCRIPTOR, the interrupt IN endpoint
 * polled with POLL_SLOTS transfers in flight (a report is never missed
 * between one completion and the next submission), LEDs set with
 * SET_REPORT.
 *
 * Completed transfers are resubmitted in a batch once half the slots are
 * done, not one by one: a submission is a message that wakes the
 * simulated device's process (libusb's is an ioctl that wakes nobody), so
 * one per report cost the model a second wake-up per key, right when the
 * app is being woken for it (and made the link's thread wake two tasks a
 * report, which keeps the scheduler from placing it beside the model). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "families/hid/hid_internal.h"
#include "odk/usb.h"

#define POLL_SLOTS 16 /* transfers in flight; resubmitted half at a time */
#define POLL_TIMEOUT_MS 60000 /* resubmitted when it passes: a quiet keyboard */

enum { HID_SET_IDLE = 0x0a, HID_SET_REPORT = 0x09 };

struct usb_source {
    struct odk_hid_source base;
    odk_driver *drv;
    odk_usb_interface *intf;
    odk_usb_pipe *in;
    uint16_t packet;
    uint8_t iface;
    odk_hid_event_service *svc;
    uint8_t *rdesc;
    size_t rdesc_len;
    char *strings[3];
    odk_memory *mem; /* the slots' buffers, one packet each */
    struct slot {
        struct usb_source *u;
        uint32_t offset;
        bool busy;
    } slots[POLL_SLOTS];
    unsigned in_flight;
    bool closing, gone;
};

static void on_event(void *ctx, const odk_hid_input_event *ev)
{
    struct usb_source *u = ctx;
    if (u->base.ops->event)
        u->base.ops->event(u->base.ctx, ev);
}

static void fail(struct usb_source *u, int st)
{
    if (u->gone)
        return;
    u->gone = true;
    /* Nothing stays down when the keyboard goes. */
    odk_hid_event_service_release_all(u->svc, 0);
    if (u->base.ops->gone)
        u->base.ops->gone(u->base.ctx, st);
}

static void poll_done(void *ctx, int status, uint32_t actual, uint64_t ts);

static int submit(struct slot *s)
{
    struct usb_source *u = s->u;
    int st =
        odk_usb_pipe_async_io(u->in, u->mem, s->offset, u->packet, POLL_TIMEOUT_MS, poll_done, s);
    if (st == ODK_OK) {
        u->in_flight++;
        s->busy = true;
    }
    return st;
}

static void poll_done(void *ctx, int status, uint32_t actual, uint64_t ts)
{
    struct slot *s = ctx;
    struct usb_source *u = s->u;
    u->in_flight--;
    s->busy = false;
    if (u->closing)
        return;
    if (status == ODK_OK && actual > 0) {
        uint8_t r[ODK_HID_MAX_REPORT];
        uint32_t n = actual < sizeof r ? actual : (uint32_t)sizeof r;
        if (odk_memory_read(u->mem, s->offset, r, n) == ODK_OK) {
            if (u->base.ops->report)
                u->base.ops->report(u->base.ctx, ts, r, n);
            if (odk_hid_event_service_handle_report(u->svc, ts, r, n) < 0)
                odk_warn("hid: a report of %u bytes the descriptor does not describe", n);
        }
    } else if (status == ODK_E_STALL) {
        odk_usb_pipe_clear_stall(u->in);
    } else if (status != ODK_OK && status != ODK_E_TIMEOUT && status != ODK_E_OVERRUN) {
        fail(u, status);
        return;
    }
    if (u->in_flight > POLL_SLOTS / 2)
        return;
    for (int i = 0; i < POLL_SLOTS; i++) {
        int st = u->slots[i].busy ? ODK_OK : submit(&u->slots[i]);
        if (st < 0) {
            fail(u, st);
            return;
        }
    }
}

static int request(struct usb_source *u, uint8_t type, uint8_t req, uint16_t value,
                   uint16_t index, void *data, uint16_t len, uint32_t *got)
{
    odk_usb_request r = {type, req, value, index, len};
    return odk_usb_interface_request(u->intf, &r, data, got, 0);
}

/* A string descriptor, UTF-16LE, as UTF-8 (characters past U+07FF as '?':
 * names of keyboards). */
static char *usb_string(struct usb_source *u, uint8_t index)
{
    if (!index)
        return NULL;
    uint8_t b[256];
    uint32_t got = 0;
    if (request(u, ODK_USB_REQ_IN | ODK_USB_REQ_STANDARD | ODK_USB_REQ_DEVICE, 6,
                (uint16_t)(0x0300 | index), 0x0409, b, sizeof b, &got) < 0 ||
        got < 2 || b[1] != 3)
        return NULL;
    size_t n = (b[0] < got ? b[0] : got) / 2;
    char *s = calloc(n * 2 + 1, 1);
    if (!s)
        return NULL;
    size_t o = 0;
    for (size_t i = 1; i < n; i++) {
        unsigned c = b[2 * i] | b[2 * i + 1] << 8;
        if (c < 0x80)
            s[o++] = (char)c;
        else if (c < 0x800)
            s[o++] = (char)(0xc0 | c >> 6), s[o++] = (char)(0x80 | (c & 0x3f));
        else
            s[o++] = '?';
    }
    return s;
}

static int usb_set_leds(odk_hid_source *base, uint32_t leds)
{
    struct usb_source *u = (struct usb_source *)base;
    if (u->gone)
        return ODK_E_GONE;
    uint8_t buf[64];
    size_t len = 0;
    uint8_t id = 0;
    int st = odk_hid_event_service_led_report(u->svc, leds, buf, sizeof buf, &len, &id);
    if (st < 0)
        return st;
    return request(u, ODK_USB_REQ_OUT | ODK_USB_REQ_CLASS | ODK_USB_REQ_INTERFACE, HID_SET_REPORT,
                   (uint16_t)(0x0200 | id), u->iface, buf, (uint16_t)len, NULL);
}

static int usb_set_report(odk_hid_source *base, odk_hid_report_type type, const uint8_t *data,
                          size_t len)
{
    struct usb_source *u = (struct usb_source *)base;
    if (u->gone)
        return ODK_E_GONE;
    uint8_t id = odk_hid_descriptor_uses_report_ids(hid_event_service_descriptor(u->svc)) ? data[0]
                                                                                          : 0;
    uint16_t t = type == ODK_HID_REPORT_FEATURE ? 3 : 2; /* HID 1.11 7.2.1 report types */
    return request(u, ODK_USB_REQ_OUT | ODK_USB_REQ_CLASS | ODK_USB_REQ_INTERFACE, HID_SET_REPORT,
                   (uint16_t)(t << 8 | id), u->iface, (void *)data, (uint16_t)len, NULL);
}

static void usb_close(odk_hid_source *base)
{
    struct usb_source *u = (struct usb_source *)base;
    u->closing = true;
    if (u->in)
        odk_usb_pipe_abort(u->in); /* completions are queued; they see closing */
    odk_usb_interface_close(u->intf);
    odk_release(u->mem);
    odk_hid_event_service_destroy(u->svc);
    for (int i = 0; i < 3; i++)
        free(u->strings[i]);
    free(u->rdesc);
    /* The aborted completions still run on this queue and read u: they go
     * first, then u. */
    if (u->in_flight)
        odk_queue_dispatch_async(odk_driver_queue(u->drv), free, u);
    else
        free(u);
}

int hid_usb_source_open(odk_driver *drv, const odk_hid_source_ops *ops, void *ctx,
                        odk_hid_source **out)
{
    struct usb_source *u = calloc(1, sizeof *u);
    if (!u)
        return ODK_E_NOMEM;
    u->drv = drv;
    u->base.ops = ops;
    u->base.ctx = ctx;
    u->base.set_leds = usb_set_leds;
    u->base.set_report = usb_set_report;
    u->base.close = usb_close;
    char *holder = NULL;
    int st = odk_usb_interface_open(drv, &u->intf, &holder);
    if (st < 0) {
        if (st == ODK_E_BUSY)
            odk_error("hid: the interface is held by %s", holder ? holder : "another driver");
        free(holder);
        free(u);
        return st;
    }
    const odk_usb_interface_descriptor *id = odk_usb_interface_descriptor_get(u->intf);
    const odk_usb_config_descriptor *cfg = odk_usb_interface_configuration(u->intf);
    u->iface = id->bInterfaceNumber;
    st = id->bInterfaceClass == ODK_USB_CLASS_HID ? ODK_OK : ODK_E_UNSUPPORTED;
    for (const odk_usb_endpoint_descriptor *ep = NULL;
         st == ODK_OK && (ep = odk_usb_next_endpoint(cfg, id, ep));)
        if ((ep->bEndpointAddress & 0x80) && (ep->bmAttributes & 3) == ODK_USB_TRANSFER_INTERRUPT &&
            !u->in) {
            u->packet = odk_usb_endpoint_max_packet_size(ep);
            st = odk_usb_interface_copy_pipe(u->intf, ep->bEndpointAddress, &u->in);
        }
    if (st == ODK_OK && (!u->in || !u->packet))
        st = ODK_E_PROTOCOL;
    /* The report descriptor: the device says how long it is. */
    u->rdesc = st == ODK_OK ? malloc(ODK_HID_MAX_DESCRIPTOR) : NULL;
    uint32_t got = 0;
    if (st == ODK_OK && !u->rdesc)
        st = ODK_E_NOMEM;
    if (st == ODK_OK)
        st = request(u, ODK_USB_REQ_IN | ODK_USB_REQ_STANDARD | ODK_USB_REQ_INTERFACE, 6,
                     ODK_USB_DT_HID_REPORT << 8, u->iface, u->rdesc, ODK_HID_MAX_DESCRIPTOR, &got);
    u->rdesc_len = got;
    char err[200] = "";
    if (st == ODK_OK &&
        (st = odk_hid_event_service_create(u->rdesc, u->rdesc_len, on_event, u, &u->svc, err,
                                           sizeof err)) < 0) {
        odk_error("hid: the device's report descriptor: %s", err);
        st = ODK_E_PROTOCOL;
    }
    /* Idle 0: report only on change (HID 1.11 7.2.4); a device may refuse. */
    if (st == ODK_OK)
        request(u, ODK_USB_REQ_OUT | ODK_USB_REQ_CLASS | ODK_USB_REQ_INTERFACE, HID_SET_IDLE, 0,
                u->iface, NULL, 0, NULL);
    uint8_t dd[18];
    if (st == ODK_OK &&
        request(u, ODK_USB_REQ_IN | ODK_USB_REQ_STANDARD | ODK_USB_REQ_DEVICE, 6, 0x0100, 0, dd,
                sizeof dd, &got) == ODK_OK &&
        got == sizeof dd)
        for (int i = 0; i < 3; i++)
            u->strings[i] = usb_string(u, dd[14 + i]);
    if (st == ODK_OK)
        st = odk_memory_create((uint64_t)u->packet * POLL_SLOTS, ODK_MEM_INOUT, &u->mem);
    for (int i = 0; st == ODK_OK && i < POLL_SLOTS; i++)
        u->slots[i] = (struct slot){.u = u, .offset = (uint32_t)i * u->packet};
    for (int i = 0; st == ODK_OK && i < POLL_SLOTS; i++)
        st = submit(&u->slots[i]);
    if (st < 0) {
        usb_close(&u->base);
        return st;
    }
    const odk_value *p = odk_driver_provider_properties(drv);
    odk_hid_device_description *d = &u->base.desc;
    d->vendor_id = (uint32_t)odk_dict_get_int(p, "idVendor", 0);
    d->product_id = (uint32_t)odk_dict_get_int(p, "idProduct", 0);
    d->version = (uint32_t)odk_dict_get_int(p, "bcdDevice", 0);
    d->manufacturer = u->strings[0];
    d->product = u->strings[1];
    d->serial_number = u->strings[2];
    d->transport = "USB";
    d->bus_type = 3; /* BUS_USB */
    d->report_descriptor = u->rdesc;
    d->report_descriptor_len = u->rdesc_len;
    uint32_t primary = odk_hid_descriptor_primary_usage(hid_event_service_descriptor(u->svc));
    d->primary_usage_page = ODK_HID_USAGE_PAGE(primary);
    d->primary_usage = ODK_HID_USAGE_ID(primary);
    *out = &u->base;
    return ODK_OK;
}
