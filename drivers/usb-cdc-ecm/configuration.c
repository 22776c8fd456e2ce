/* SPDX-License-Identifier: MIT */
/* usb-cdc-ecm's device driver (UsbCdcEcmConfiguration): for adapters
 * whose first configuration is not CDC-ECM — the NetChip "Ethernet/RNDIS
 * gadget" ids that QEMU's usb-net and Linux's g_ether use offer RNDIS as
 * configuration 2, listed first, and CDC-ECM as configuration 1 — it
 * selects the first configuration that has an Ethernet networking control
 * interface (class 2, subclass 6), as a macOS device driver calls
 * SetConfiguration, and its interfaces are matched: UsbCdcEcm takes the
 * communication interface.  A device without such a configuration keeps
 * the one it has, or gets its first (IOKit's composite rule, which a
 * device driver's presence suspends).  The configuration is asked for even
 * when it is the active one: while a device driver is there, the
 * interfaces are matched only once it has chosen.  The driver then keeps
 * the device open and does nothing more. */
#include <stdlib.h>

#include "odk/driver.h"
#include "odk/log.h"
#include "odk/usb.h"

struct chooser {
    odk_usb_device *dev;
};

/* Configuration descriptor index, whole, read from the device into a
 * buffer of this driver's (the caller frees it) and checked: NULL when it
 * cannot be read or is malformed.  (Read with GET_DESCRIPTOR, into this
 * driver's own malloc; odk_usb_device_copy_configuration's copy would be
 * the host's, freed with odk_free().) */
static odk_usb_config_descriptor *read_configuration(odk_usb_device *dev, uint8_t index)
{
    uint8_t head[9];
    uint32_t got = 0;
    odk_usb_request r = {ODK_USB_REQ_IN | ODK_USB_REQ_STANDARD | ODK_USB_REQ_DEVICE, 6,
                         (uint16_t)(ODK_USB_DT_CONFIG << 8 | index), 0, sizeof head};
    if (odk_usb_device_request(dev, &r, head, &got, 0) < 0 || got < sizeof head)
        return NULL;
    uint16_t total = (uint16_t)(head[2] | head[3] << 8);
    uint8_t *c = total >= sizeof head ? malloc(total) : NULL;
    r.wLength = total;
    char why[256];
    if (!c || odk_usb_device_request(dev, &r, c, &got, 0) < 0 || got != total ||
        odk_usb_config_check(c, got, odk_usb_device_speed(dev), why, sizeof why) < 0) {
        free(c);
        return NULL;
    }
    return (odk_usb_config_descriptor *)c;
}

/* The value of the first configuration with a CDC-ECM interface, or 0;
 * *first gets the first configuration's value. */
static uint8_t ecm_configuration(odk_usb_device *dev, uint8_t *first)
{
    uint8_t n = odk_usb_device_descriptor_get(dev)->bNumConfigurations, found = 0;
    *first = 0;
    for (uint8_t i = 0; i < n && !found; i++) {
        odk_usb_config_descriptor *c = read_configuration(dev, i);
        if (!c) {
            odk_warn("configuration %u cannot be read or is malformed", i);
            continue;
        }
        if (i == 0)
            *first = c->bConfigurationValue;
        for (const odk_usb_interface_descriptor *in = NULL; (in = odk_usb_next_interface(c, in));)
            if (in->bInterfaceClass == 0x02 && in->bInterfaceSubClass == 0x06)
                found = c->bConfigurationValue;
        free(c);
    }
    return found;
}

static int chooser_start(odk_driver *drv)
{
    struct chooser *ch = odk_driver_state(drv);
    int st = odk_usb_device_open(drv, &ch->dev);
    if (st < 0)
        return st;
    const odk_usb_config_descriptor *active = odk_usb_device_active_configuration(ch->dev);
    uint8_t now = active ? active->bConfigurationValue : 0, first = 0;
    uint8_t ecm = ecm_configuration(ch->dev, &first);
    uint8_t want = ecm ? ecm : now ? now : first;
    /* Asked even when it is the active one: with a device driver present,
     * the interfaces are matched only once it has chosen. */
    if (want) {
        st = odk_usb_device_set_configuration(ch->dev, want, true);
        if (st < 0) {
            odk_error("cannot select configuration %u: %s", want, odk_strerror(st));
            odk_usb_device_close(ch->dev);
            ch->dev = NULL;
            return st;
        }
        if (want != now)
            odk_info("selected configuration %u (%s) in place of %u", want,
                     ecm ? "CDC-ECM" : "the first", now);
        else
            odk_info("configuration %u (%s) stays", now, ecm ? "CDC-ECM" : "the first");
    }
    return odk_driver_register_service(drv);
}

static void chooser_stop(odk_driver *drv)
{
    struct chooser *ch = odk_driver_state(drv);
    odk_usb_device_close(ch->dev);
    ch->dev = NULL;
}

static const odk_driver_class chooser_class = {
    .name = "UsbCdcEcmConfiguration",
    .state_size = sizeof(struct chooser),
    .start = chooser_start,
    .stop = chooser_stop,
};

ODK_DRIVER_CLASS(chooser_class);
