/* SPDX-License-Identifier: MIT */
/* broken.c — a device whose descriptors lie, for the tests of what the
 * family does with bad input: the device node must carry the error, no
 * driver may match it, and nothing may crash.
 *
 * Plug argument "fault" picks the lie:
 *   "total-length"  wTotalLength says 4096, the configuration has 32 bytes
 *   "zero-length"   a descriptor of length 0 inside the configuration
 *   "endpoints"     an interface declares 3 endpoints and has 2
 *   "interfaces"    bNumInterfaces is 2, one interface follows
 *   "device"        the device descriptor's bMaxPacketSize0 is 12 */
#include <stdio.h>
#include <string.h>

#include "buses/usb/model.h"
#include "odk/status.h"

/* clang-format off */
static const uint8_t device[] = {
    18, ODK_USB_DT_DEVICE, 0x00, 0x02, 0, 0, 0, 64,
    0x09, 0x12, 0x03, 0x00, /* 1209:0003 */
    0x00, 0x01, 0, 0, 0, 1,
};
/* clang-format on */

/* clang-format off */
static const uint8_t good[] = {
    9, ODK_USB_DT_CONFIG, 32, 0, 1, 1, 0, 0x80, 50,
    9, ODK_USB_DT_INTERFACE, 0, 0, 2, ODK_USB_CLASS_VENDOR, 0, 0, 0,
    7, ODK_USB_DT_ENDPOINT, 0x01, ODK_USB_TRANSFER_BULK, 0x00, 0x02, 0,
    7, ODK_USB_DT_ENDPOINT, 0x81, ODK_USB_TRANSFER_BULK, 0x00, 0x02, 0,
};
/* clang-format on */

static int init(struct usb_model *m, const odk_value *args, char *err, size_t err_len)
{
    const char *fault = odk_dict_get_string(args, "fault", "total-length");
    uint8_t dev[sizeof device], cfg[sizeof good];
    memcpy(dev, device, sizeof dev);
    memcpy(cfg, good, sizeof cfg);
    if (strcmp(fault, "total-length") == 0) {
        cfg[2] = 0x00, cfg[3] = 0x10;
    } else if (strcmp(fault, "zero-length") == 0) {
        cfg[18] = 0;
    } else if (strcmp(fault, "endpoints") == 0) {
        cfg[13] = 3;
    } else if (strcmp(fault, "interfaces") == 0) {
        cfg[4] = 2;
    } else if (strcmp(fault, "device") == 0) {
        dev[7] = 12;
    } else {
        snprintf(err, err_len,
                 "unknown fault \"%s\" (total-length, zero-length, endpoints, "
                 "interfaces, device)",
                 fault);
        return ODK_E_INVALID;
    }
    int st = usb_model_set_device(m, dev, sizeof dev, ODK_USB_SPEED_HIGH);
    return st == ODK_OK ? usb_model_add_config(m, cfg, sizeof cfg) : st;
}

const struct usb_model_ops usb_model_broken = {
    .name = "broken",
    .summary = "a device whose descriptors lie (plug argument \"fault\")",
    .init = init,
};
