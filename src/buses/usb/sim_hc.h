/* SPDX-License-Identifier: MIT */
/* sim_hc.h — the simulated USB host controller, as the USB bus module
 * (usb.c) uses it. */
#ifndef ODK_BUSES_USB_SIM_HC_H
#define ODK_BUSES_USB_SIM_HC_H

#include "daemon/core/module.h"

struct usb_dev;

struct usb_sim {
    reg_node *hc; /* the OdkSimUSBHostController node */
    struct usb_dev *devs;
    unsigned ports; /* ports handed out so far (never reused) */
};

/* Adds the host controller node. */
int usb_sim_init(struct odkd *d, struct usb_sim *s);
/* A device or interface node left the registry. */
void usb_sim_node_gone(struct odkd *d, reg_node *node);
/* Stops every model. */
void usb_sim_fini(struct odkd *d);

/* usb-plug, usb-unplug, usb-fault, usb-list */
extern const struct client_op usb_sim_client_ops[];
/* usb-open, usb-close, usb-configure */
extern const struct host_op usb_sim_host_ops[];

#endif
