/* SPDX-License-Identifier: MIT */
/* usb.c — the USB bus module: its node classes, the match keys and rules
 * of IOUSBHostDevice and IOUSBHostInterface nodes (usb_match.h), and the
 * simulated host controller (sim_hc.c) with its requests.  The libusb
 * backend (real devices) will plug in here beside the simulated one. */
#include "buses/usb/sim_hc.h"
#include "buses/usb/usb_match.h"
#include "daemon/core/module.h"

static const struct odkd_module usb_bus;

static struct usb_sim *state_of(struct odkd *d)
{
    return module_state(d, &usb_bus);
}

static int init(struct odkd *d)
{
    return usb_sim_init(d, state_of(d));
}

static const struct class_def classes[] = {
    {"OdkSimUSBHostController", "IOService"},
    {"IOUSBHostDevice", "IOService"},
    {"IOUSBHostInterface", "IOService"},
    {NULL, NULL},
};

static const struct match_keys *const match_keys[] = {
    &usb_device_match_keys,
    &usb_interface_match_keys,
    NULL,
};

static const struct odkd_module usb_bus = {
    .name = "usb",
    .kind = "bus",
    .state_size = sizeof(struct usb_sim),
    .classes = classes,
    .client_ops = usb_sim_client_ops,
    .host_ops = usb_sim_host_ops,
    .match_keys = match_keys,
    .init = init,
    .node_gone = usb_sim_node_gone,
    .fini = usb_sim_fini,
};
ODKD_MODULE(usb_bus)
