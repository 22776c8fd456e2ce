/* SPDX-License-Identifier: MIT */
/* The USB bus.  For now it only registers the match keys and rules of
 * IOUSBHostDevice and IOUSBHostInterface nodes (usb_match.h), so USB
 * personalities match nodes that another bus (the sim bus) publishes with
 * USB properties.  A later issue adds simulated host controllers here that
 * publish USB devices and their interfaces themselves. */
#include "buses/usb/usb_match.h"
#include "daemon/core/module.h"

static const struct match_keys *const match_keys[] = {
    &usb_device_match_keys,
    &usb_interface_match_keys,
    NULL,
};

static const struct odkd_module usb_bus = {
    .name = "usb",
    .kind = "bus",
    .match_keys = match_keys,
};
ODKD_MODULE(usb_bus)
