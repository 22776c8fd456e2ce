/* SPDX-License-Identifier: MIT */
/* interface.c — odk_usb_interface: a driver's exclusive handle to one
 * interface of a USB device (IOUSBHostInterface), and the pipes of its
 * endpoints. */
#include <stdlib.h>
#include <string.h>

#include "families/usb/usb_pipe.h"
#include "odk/log.h"
#include "odk/status.h"

/* Opens node (the provider) or, with sibling >= 0, that interface of the
 * provider's device. */
static int open_interface(odk_driver *drv, int sibling, odk_usb_interface **out, char **holder)
{
    if (!drv || !out)
        return ODK_E_INVALID;
    if (holder)
        *holder = NULL;
    odk_usb_interface *intf = calloc(1, sizeof *intf);
    if (!intf)
        return ODK_E_NOMEM;
    intf->drv = drv;
    intf->node = odk_driver_provider_id(drv);
    odk_value *info = NULL;
    char err[256] = "";
    int st = usb_link_open(intf->node, sibling, &intf->link, &info, err, sizeof err);
    if (st == ODK_E_BUSY && holder)
        *holder = strdup(err);
    if (st == ODK_OK && strcmp(odk_dict_get_string(info, "kind", ""), "interface") != 0)
        st = ODK_E_UNSUPPORTED;
    if (st == ODK_OK) {
        intf->speed = (odk_usb_speed)odk_dict_get_int(info, "speed", ODK_USB_SPEED_UNKNOWN);
        intf->number = (uint8_t)odk_dict_get_int(info, "interface", 0);
        intf->alt = (uint8_t)odk_dict_get_int(info, "alternate", 0);
        st = usb_link_copy_configuration(intf->link,
                                         (uint8_t)odk_dict_get_int(info, "config_index", 0),
                                         intf->speed, &intf->config);
    }
    if (st == ODK_OK &&
        !(intf->desc = odk_usb_find_interface(intf->config, intf->number, intf->alt)))
        st = ODK_E_GONE; /* the configuration changed under us */
    odk_value_free(info);
    if (st < 0) {
        if (err[0])
            odk_warn("usb: cannot open interface node %llu: %s", (unsigned long long)intf->node,
                     err);
        odk_usb_interface_close(intf);
        return st;
    }
    *out = intf;
    return ODK_OK;
}

int odk_usb_interface_open(odk_driver *drv, odk_usb_interface **out, char **holder)
{
    return open_interface(drv, -1, out, holder);
}

int odk_usb_interface_open_other(odk_usb_interface *intf, uint8_t number,
                                 odk_usb_interface **out, char **holder)
{
    if (!intf)
        return ODK_E_INVALID;
    return open_interface(intf->drv, number, out, holder);
}

void odk_usb_interface_close(odk_usb_interface *intf)
{
    if (!intf)
        return;
    while (intf->pipes)
        odk_usb_pipe_release(intf->pipes);
    usb_link_close(intf->link);
    free(intf->config);
    free(intf);
}

const odk_usb_interface_descriptor *odk_usb_interface_descriptor_get(odk_usb_interface *intf)
{
    return intf ? intf->desc : NULL;
}

const odk_usb_config_descriptor *odk_usb_interface_configuration(odk_usb_interface *intf)
{
    return intf ? intf->config : NULL;
}

int odk_usb_interface_request(odk_usb_interface *intf, const odk_usb_request *req, void *data,
                              uint32_t *actual, uint32_t timeout_ms)
{
    if (!intf || !req)
        return ODK_E_INVALID;
    odk_usb_request r = *req;
    if ((r.bmRequestType & 0x1f) == ODK_USB_REQ_INTERFACE)
        r.wIndex = (uint16_t)((r.wIndex & 0xff00) | intf->number);
    /* Alternate settings change through odk_usb_interface_select_alternate,
     * which keeps the pipes right. */
    if ((r.bmRequestType & 0x7f) == ODK_USB_REQ_INTERFACE && r.bRequest == 11)
        return odk_usb_interface_select_alternate(intf, (uint8_t)r.wValue);
    return usb_link_control(intf->link, &r, data, actual, timeout_ms);
}

int odk_usb_interface_select_alternate(odk_usb_interface *intf, uint8_t alt)
{
    if (!intf)
        return ODK_E_INVALID;
    const odk_usb_interface_descriptor *d = odk_usb_find_interface(intf->config, intf->number, alt);
    if (!d)
        return ODK_E_STALL;
    odk_usb_request r = {ODK_USB_REQ_OUT | ODK_USB_REQ_STANDARD | ODK_USB_REQ_INTERFACE, 11, alt,
                         intf->number, 0};
    int st = usb_link_control(intf->link, &r, NULL, NULL, 0);
    if (st < 0)
        return st;
    for (odk_usb_pipe *p = intf->pipes; p; p = p->next)
        p->stale = true; /* their endpoints belong to the old setting */
    intf->alt = alt;
    intf->desc = d;
    return ODK_OK;
}

int odk_usb_interface_copy_pipe(odk_usb_interface *intf, uint8_t address, odk_usb_pipe **out)
{
    if (!intf || !out)
        return ODK_E_INVALID;
    for (const odk_usb_endpoint_descriptor *e = NULL;
         (e = odk_usb_next_endpoint(intf->config, intf->desc, e));) {
        if (e->bEndpointAddress != address)
            continue;
        odk_usb_pipe *p = calloc(1, sizeof *p);
        if (!p)
            return ODK_E_NOMEM;
        p->intf = intf;
        memcpy(&p->desc, e, sizeof p->desc);
        p->next = intf->pipes;
        intf->pipes = p;
        *out = p;
        return ODK_OK;
    }
    return ODK_E_NOT_FOUND;
}
