/* SPDX-License-Identifier: MIT */
/* hid-usb: HID over USB (HID 1.11 chapter 7) for any USB HID interface:
 * the device's own report descriptor and reports, passed on unchanged to
 * a HID device the system and apps see, and the system's output and
 * feature reports (the LEDs) sent back to the device with SET_REPORT.
 * What usbhid does in the kernel, as a driver in its own process. */
#include "odk/driver.h"
#include "odk/hid.h"

struct hu {
    odk_hid_source *src;
    odk_hid_device *dev;
};

static void on_report(void *ctx, uint64_t ts, const uint8_t *report, size_t len)
{
    struct hu *h = ctx;
    if (h->dev)
        odk_hid_device_handle_report(h->dev, ts, report, len);
}

static void on_gone(void *ctx, int status)
{
    odk_warn("hid-usb: the device went away (%s)", odk_strerror(status));
}

static int set_report(void *ctx, odk_hid_report_type type, uint8_t id, const uint8_t *data,
                      size_t len)
{
    struct hu *h = ctx;
    return odk_hid_source_set_report(h->src, type, data, len);
}

static const odk_hid_source_ops src_ops = {.gone = on_gone, .report = on_report};
static const odk_hid_device_ops dev_ops = {.set_report = set_report};

static int hu_start(odk_driver *drv)
{
    struct hu *h = odk_driver_state(drv);
    int st = odk_hid_source_open(drv, &src_ops, h, &h->src);
    if (st < 0)
        return st;
    /* The device as it is: its identity and its report descriptor. */
    st = odk_hid_device_create(drv, odk_hid_source_description(h->src), &dev_ops, h, &h->dev);
    return st < 0 ? st : odk_driver_register_service(drv);
}

static void hu_stop(odk_driver *drv)
{
    struct hu *h = odk_driver_state(drv);
    odk_hid_source_close(h->src);
    h->src = NULL;
    odk_hid_device_destroy(h->dev);
    h->dev = NULL;
}

static const odk_driver_class hu_class = {
    .name = "HidUsb",
    .state_size = sizeof(struct hu),
    .start = hu_start,
    .stop = hu_stop,
};

ODK_DRIVER_CLASS(hu_class);
