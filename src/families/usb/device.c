/* SPDX-License-Identifier: MIT */
/* device.c — odk_usb_device: a driver's handle to a whole USB device
 * (IOUSBHostDevice). */
#include <stdlib.h>
#include <string.h>

#include "families/usb/usb_internal.h"
#include "odk/log.h"
#include "odk/status.h"
#include "runtime/host_link.h"

struct odk_usb_device {
    odk_driver *drv;
    struct usb_link *link;
    uint64_t node;
    odk_usb_device_descriptor desc;
    odk_usb_speed speed;
    odk_usb_config_descriptor *active; /* NULL: unconfigured */
    const odk_usb_interface_descriptor **ifaces;
    unsigned n_ifaces;
};

/* Reads the active configuration again, and lists alternate setting 0 of
 * each of its interfaces. */
static int refresh(odk_usb_device *dev)
{
    free(dev->active);
    free(dev->ifaces);
    dev->active = NULL;
    dev->ifaces = NULL;
    dev->n_ifaces = 0;
    uint8_t value = 0;
    uint32_t got = 0;
    odk_usb_request r = {ODK_USB_REQ_IN | ODK_USB_REQ_STANDARD | ODK_USB_REQ_DEVICE, 8, 0, 0, 1};
    int st = usb_link_control(dev->link, &r, &value, &got, 0);
    if (st < 0 || value == 0)
        return st;
    for (uint8_t i = 0; i < dev->desc.bNumConfigurations; i++) {
        odk_usb_config_descriptor *c = NULL;
        if ((st = usb_link_copy_configuration(dev->link, i, dev->speed, &c)) < 0)
            return st;
        if (c->bConfigurationValue == value) {
            dev->active = c;
            break;
        }
        free(c);
    }
    if (!dev->active)
        return ODK_OK;
    unsigned n = 0;
    for (const odk_usb_interface_descriptor *in = NULL;
         (in = odk_usb_next_interface(dev->active, in));)
        n += in->bAlternateSetting == 0;
    if (n && !(dev->ifaces = calloc(n, sizeof *dev->ifaces)))
        return ODK_E_NOMEM;
    for (const odk_usb_interface_descriptor *in = NULL;
         (in = odk_usb_next_interface(dev->active, in));)
        if (in->bAlternateSetting == 0)
            dev->ifaces[dev->n_ifaces++] = in;
    return ODK_OK;
}

int odk_usb_device_open(odk_driver *drv, odk_usb_device **out)
{
    if (!drv || !out)
        return ODK_E_INVALID;
    odk_usb_device *dev = calloc(1, sizeof *dev);
    if (!dev)
        return ODK_E_NOMEM;
    dev->drv = drv;
    dev->node = odk_driver_provider_id(drv);
    odk_value *info = NULL;
    char err[256] = "";
    int st = usb_link_open(dev->node, -1, &dev->link, &info, err, sizeof err);
    if (st == ODK_OK && strcmp(odk_dict_get_string(info, "kind", ""), "device") != 0)
        st = ODK_E_UNSUPPORTED;
    if (st == ODK_OK) {
        dev->speed = (odk_usb_speed)odk_dict_get_int(info, "speed", ODK_USB_SPEED_UNKNOWN);
        uint32_t got = 0;
        char why[256];
        st = usb_link_get_descriptor(dev->link, ODK_USB_DT_DEVICE, 0, 0, &dev->desc,
                                     sizeof dev->desc, &got);
        if (st == ODK_OK && (st = odk_usb_device_check(&dev->desc, got, dev->speed, why,
                                                       sizeof why)) < 0)
            odk_warn("usb: %s", why);
    }
    if (st == ODK_OK)
        st = refresh(dev);
    odk_value_free(info);
    if (st < 0) {
        if (err[0])
            odk_warn("usb: cannot open device node %llu: %s", (unsigned long long)dev->node, err);
        odk_usb_device_close(dev);
        return st;
    }
    *out = dev;
    return ODK_OK;
}

void odk_usb_device_close(odk_usb_device *dev)
{
    if (!dev)
        return;
    usb_link_close(dev->link);
    free(dev->active);
    free(dev->ifaces);
    free(dev);
}

const odk_usb_device_descriptor *odk_usb_device_descriptor_get(odk_usb_device *dev)
{
    return dev ? &dev->desc : NULL;
}

odk_usb_speed odk_usb_device_speed(odk_usb_device *dev)
{
    return dev ? dev->speed : ODK_USB_SPEED_UNKNOWN;
}

int odk_usb_device_copy_configuration(odk_usb_device *dev, uint8_t index,
                                      odk_usb_config_descriptor **out)
{
    if (!dev || !out)
        return ODK_E_INVALID;
    if (index >= dev->desc.bNumConfigurations)
        return ODK_E_NOT_FOUND;
    return usb_link_copy_configuration(dev->link, index, dev->speed, out);
}

const odk_usb_config_descriptor *odk_usb_device_active_configuration(odk_usb_device *dev)
{
    return dev ? dev->active : NULL;
}

int odk_usb_device_copy_string(odk_usb_device *dev, uint8_t index, char **out)
{
    if (!dev || !out || index == 0)
        return ODK_E_INVALID;
    uint8_t d[255];
    uint32_t got = 0;
    int st = usb_link_get_descriptor(dev->link, ODK_USB_DT_STRING, index, 0x0409, d, sizeof d, &got);
    if (st < 0)
        return st;
    char *s = malloc(4 * sizeof d);
    if (!s)
        return ODK_E_NOMEM;
    st = odk_usb_string_to_utf8(d, got, s, 4 * sizeof d);
    if (st < 0) {
        free(s);
        return st;
    }
    *out = s;
    return ODK_OK;
}

int odk_usb_device_set_configuration(odk_usb_device *dev, uint8_t value, bool match_interfaces)
{
    if (!dev)
        return ODK_E_INVALID;
    odk_value *args = odk_value_new_dict();
    if (!args || odk_dict_set_int(args, "node", (int64_t)dev->node) < 0 ||
        odk_dict_set_int(args, "value", value) < 0 ||
        odk_dict_set_bool(args, "match", match_interfaces) < 0) {
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    odk_value *reply = NULL;
    int st = host_link_request("usb-set-configuration", args, &reply);
    if (st < 0 && reply)
        odk_warn("usb: set configuration %u: %s", value, odk_dict_get_string(reply, "error", ""));
    odk_value_free(reply);
    if (st < 0)
        return st;
    return refresh(dev);
}

int odk_usb_device_request(odk_usb_device *dev, const odk_usb_request *req, void *data,
                           uint32_t *actual, uint32_t timeout_ms)
{
    if (!dev || !req)
        return ODK_E_INVALID;
    /* Configuration changes go through odkd, which publishes the
     * interfaces; a raw SET_CONFIGURATION would leave the registry behind. */
    if ((req->bmRequestType & 0x7f) == 0 && req->bRequest == 9)
        return odk_usb_device_set_configuration(dev, (uint8_t)req->wValue, true);
    return usb_link_control(dev->link, req, data, actual, timeout_ms);
}

unsigned odk_usb_device_interface_count(odk_usb_device *dev)
{
    return dev ? dev->n_ifaces : 0;
}

const odk_usb_interface_descriptor *odk_usb_device_interface_at(odk_usb_device *dev, unsigned i)
{
    return dev && i < dev->n_ifaces ? dev->ifaces[i] : NULL;
}
