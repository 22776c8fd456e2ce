/* SPDX-License-Identifier: MIT */
/* usb_pipe.h — what an interface and its pipes share (interface.c,
 * pipe.c). */
#ifndef ODK_USB_PIPE_H
#define ODK_USB_PIPE_H

#include "families/usb/usb_internal.h"

struct odk_usb_interface {
    odk_driver *drv;
    struct usb_link *link;
    uint64_t node;
    uint8_t number, alt;
    odk_usb_speed speed;
    odk_usb_config_descriptor *config;
    const odk_usb_interface_descriptor *desc; /* in config, current setting */
    struct odk_usb_pipe *pipes;
};

struct odk_usb_pipe {
    odk_usb_interface *intf;
    odk_usb_endpoint_descriptor desc;
    bool stale; /* the alternate setting changed: the endpoint is gone */
    struct odk_usb_pipe *next;
};

#endif
