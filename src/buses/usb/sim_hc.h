/* SPDX-License-Identifier: MIT */
/* sim_hc.h — the simulated USB host controller, as the USB bus module
 * (usb.c) uses it. */
#ifndef ODK_BUSES_USB_SIM_HC_H
#define ODK_BUSES_USB_SIM_HC_H

#include "buses/usb/usb_dev.h"
#include "daemon/core/module.h"

/* Adds the host controller node (bus->hc). */
int usb_sim_init(struct odkd *d, struct usb_bus *bus);

/* usb-plug, usb-unplug, usb-fault, usb-input, usb-list */
extern const struct client_op usb_sim_client_ops[];

#endif
