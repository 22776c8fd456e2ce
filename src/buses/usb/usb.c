/* SPDX-License-Identifier: MIT */
/* usb.c — the USB bus module: its node classes, the match keys and rules
 * of IOUSBHostDevice and IOUSBHostInterface nodes (usb_match.h), and its
 * sources of devices: the simulated host controller (sim_hc.c, always
 * there) and, with `--usb libusb`, the machine's real devices (usbfs.c).
 * What a device is once found is theirs in common (devices.c). */
#include <stdio.h>
#include <string.h>

#include "buses/usb/sim_hc.h"
#include "buses/usb/usb_dev.h"
#include "buses/usb/usb_match.h"
#include "daemon/core/module.h"
#include "odk/status.h"

static const struct odkd_module usb_bus;

static struct usb_bus *state_of(struct odkd *d)
{
    return module_state(d, &usb_bus);
}

/* --usb SOURCES: a comma-separated list of sim and libusb. */
static int option(struct odkd *d, const char *name, const char *value, char *err, size_t len)
{
    struct usb_bus *bus = state_of(d);
    if (strcmp(name, "usb") != 0)
        return ODK_OK;
    bus->want_usbfs = false;
    char list[128];
    snprintf(list, sizeof list, "%s", value ? value : "");
    char *save = NULL;
    for (char *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        if (strcmp(s, "libusb") == 0) {
            bus->want_usbfs = true;
        } else if (strcmp(s, "sim") != 0) {
            snprintf(err, len, "--usb: unknown USB source '%s' (sim, libusb)", s);
            return ODK_E_INVALID;
        }
    }
    return ODK_OK;
}

static int init(struct odkd *d)
{
    usb_bus_state = state_of(d);
    usb_bus_state->uevent_fd = -1;
    return usb_sim_init(d, usb_bus_state);
}

static int start(struct odkd *d)
{
    return usb_bus_state->want_usbfs ? usbfs_start(d, usb_bus_state) : ODK_OK;
}

static void fini(struct odkd *d)
{
    while (usb_bus_state && usb_bus_state->devs)
        usb_dev_destroy(d, usb_bus_state->devs);
    if (usb_bus_state)
        usbfs_stop(d, usb_bus_state);
    usb_bus_state = NULL;
}

static const struct module_option options[] = {
    {"usb", "SOURCES",
     "where USB devices come from: sim (the default; always on), libusb (the machine's own, "
     "through usbfs), e.g. --usb sim,libusb"},
    {NULL, NULL, NULL},
};

static const struct class_def classes[] = {
    {"OdkSimUSBHostController", "IOService"},
    {"OdkUSBHostController", "IOService"},
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
    .state_size = sizeof(struct usb_bus),
    .classes = classes,
    .options = options,
    .option = option,
    .client_ops = usb_sim_client_ops,
    .host_ops = usb_dev_host_ops,
    .match_keys = match_keys,
    .init = init,
    .start = start,
    .node_gone = usb_dev_node_gone,
    .fini = fini,
};
ODKD_MODULE(usb_bus)
