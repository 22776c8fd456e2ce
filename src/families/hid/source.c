/* SPDX-License-Identifier: MIT */
/* odk_hid_source: the HID device a driver was matched to, whatever its
 * bus.  The provider's properties say which kind it is. */
#include "families/hid/hid_internal.h"

int odk_hid_source_open(odk_driver *drv, const odk_hid_source_ops *ops, void *ctx,
                        odk_hid_source **out)
{
    if (!drv || !ops || !out)
        return ODK_E_INVALID;
    const odk_value *p = odk_driver_provider_properties(drv);
    if (odk_dict_get(p, "bInterfaceClass"))
        return hid_usb_source_open(drv, ops, ctx, out);
    if (odk_dict_get(p, "OdkEvdevPath"))
        return hid_evdev_source_open(drv, ops, ctx, out);
    return ODK_E_UNSUPPORTED;
}

const odk_hid_device_description *odk_hid_source_description(const odk_hid_source *s)
{
    return s ? &s->desc : NULL;
}

int odk_hid_source_set_leds(odk_hid_source *s, uint32_t leds)
{
    return s ? s->set_leds(s, leds) : ODK_E_INVALID;
}

int odk_hid_source_set_report(odk_hid_source *s, odk_hid_report_type type, const uint8_t *data,
                              size_t len)
{
    if (!s || !data || !len || len > ODK_HID_MAX_REPORT || type == ODK_HID_REPORT_INPUT)
        return ODK_E_INVALID;
    return s->set_report ? s->set_report(s, type, data, len) : ODK_E_UNSUPPORTED;
}

void odk_hid_source_close(odk_hid_source *s)
{
    if (s)
        s->close(s);
}
