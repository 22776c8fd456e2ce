/* SPDX-License-Identifier: MIT */
/* hid-virtual-keyboard: an app types through a keyboard that exists only
 * in software (Karabiner's VirtualHIDKeyboard).  The driver sits on a sim
 * device of model "hid-virtual-keyboard" (odkctl sim plug), so it runs only
 * where someone asked for it; the app that opens it may create one device
 * with a keyboard (report 1: modifiers, six keys, five LEDs out) and a
 * consumer control (report 2: one media key).  The system and other apps
 * see an ordinary HID device; the LEDs they set come back to the app.
 *
 * Selectors:
 *   0 create   struct in: optional JSON identity {"vendor", "product_id",
 *              "product", "manufacturer", "serial"}; scalar out: the
 *              device's registry node
 *   1 keyboard scalar in: modifier bits, then up to six key usages
 *   2 consumer scalar in: a consumer usage (0: none down)
 *   3 leds     scalar out: the LED state the host set
 *   4 reset    every key up
 * The device goes when the app closes its connection, keys released first. */
#include <stdlib.h>
#include <string.h>

#include "odk/driver.h"
#include "odk/hid.h"

/* clang-format off */
static const uint8_t descriptor[] = {
    0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0x85, 0x01,             /* keyboard, report 1 */
    0x05, 0x07, 0x19, 0xe0, 0x29, 0xe7, 0x15, 0x00, 0x25, 0x01, /* modifiers */
    0x75, 0x01, 0x95, 0x08, 0x81, 0x02,
    0x95, 0x01, 0x75, 0x08, 0x81, 0x01,                         /* reserved */
    0x95, 0x05, 0x75, 0x01, 0x05, 0x08, 0x19, 0x01, 0x29, 0x05, /* LEDs out */
    0x91, 0x02, 0x95, 0x01, 0x75, 0x03, 0x91, 0x01,
    0x95, 0x06, 0x75, 0x08, 0x15, 0x00, 0x26, 0xff, 0x00,       /* six keys */
    0x05, 0x07, 0x19, 0x00, 0x2a, 0xff, 0x00, 0x81, 0x00,
    0xc0,
    0x05, 0x0c, 0x09, 0x01, 0xa1, 0x01, 0x85, 0x02,             /* consumer, report 2 */
    0x15, 0x00, 0x26, 0xff, 0x03, 0x19, 0x00, 0x2a, 0xff, 0x03,
    0x75, 0x10, 0x95, 0x01, 0x81, 0x00,
    0xc0,
};
/* clang-format on */

struct vk {
    odk_hid_device *dev;
    odk_user_client *owner;
    uint32_t leds;
    char *strings[3];
};

static int set_report(void *ctx, odk_hid_report_type type, uint8_t id, const uint8_t *data,
                      size_t len)
{
    struct vk *v = ctx;
    if (type != ODK_HID_REPORT_OUTPUT || id != 1 || len < 2)
        return ODK_E_UNSUPPORTED;
    v->leds = data[1] & 0x1f;
    odk_info("LEDs from the host: 0x%02x", v->leds);
    return ODK_OK;
}

static const odk_hid_device_ops ops = {.set_report = set_report};

static int vk_start(odk_driver *drv)
{
    return odk_driver_register_service(drv);
}

static void destroy(struct vk *v)
{
    if (!v->dev)
        return;
    uint8_t up1[9] = {1}, up2[3] = {2};
    odk_hid_device_handle_report(v->dev, 0, up1, sizeof up1);
    odk_hid_device_handle_report(v->dev, 0, up2, sizeof up2);
    odk_hid_device_destroy(v->dev);
    v->dev = NULL;
    v->owner = NULL;
    for (int i = 0; i < 3; i++) {
        free(v->strings[i]);
        v->strings[i] = NULL;
    }
}

static void vk_stop(odk_driver *drv)
{
    destroy(odk_driver_state(drv));
}

static void vk_client_close(odk_driver *drv, odk_user_client *uc)
{
    struct vk *v = odk_driver_state(drv);
    if (v->owner == uc)
        destroy(v);
}

static char *dup_field(const odk_value *cfg, const char *key, const char *dflt)
{
    const char *s = odk_dict_get_string(cfg, key, dflt);
    return s ? strdup(s) : NULL;
}

static int m_create(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct vk *v = odk_driver_state(drv);
    if (v->dev)
        return ODK_E_BUSY; /* one virtual keyboard at a time */
    odk_value *cfg = NULL;
    if (call->struct_in_len) {
        char *text = strndup(call->struct_in, call->struct_in_len);
        char err[160];
        int st = text ? odk_value_from_json(text, &cfg, err, sizeof err) : ODK_E_NOMEM;
        free(text);
        if (st < 0)
            return st;
    }
    v->strings[0] = dup_field(cfg, "manufacturer", "odk");
    v->strings[1] = dup_field(cfg, "product", "Virtual keyboard");
    v->strings[2] = dup_field(cfg, "serial", NULL);
    odk_hid_device_description d = {
        .vendor_id = (uint32_t)odk_dict_get_int(cfg, "vendor", 0x1209),
        .product_id = (uint32_t)odk_dict_get_int(cfg, "product_id", 0x0020),
        .version = 0x0100,
        .manufacturer = v->strings[0],
        .product = v->strings[1],
        .serial_number = v->strings[2],
        .transport = "Virtual",
        .report_descriptor = descriptor,
        .report_descriptor_len = sizeof descriptor,
    };
    odk_value_free(cfg);
    int st = odk_hid_device_create(drv, &d, &ops, v, &v->dev);
    if (st < 0)
        return st;
    v->owner = uc;
    v->leds = 0;
    call->scalar_out[0] = odk_hid_device_node_id(v->dev);
    return ODK_OK;
}

static int m_keyboard(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct vk *v = odk_driver_state(drv);
    if (!v->dev || v->owner != uc)
        return ODK_E_STATE;
    if (call->scalar_in_count < 1 || call->scalar_in_count > 7 || call->scalar_in[0] > 0xff)
        return ODK_E_INVALID;
    uint8_t r[9] = {1, (uint8_t)call->scalar_in[0]}; /* id, modifiers, reserved, keys */
    for (uint32_t i = 1; i < call->scalar_in_count; i++) {
        if (call->scalar_in[i] > 0xff)
            return ODK_E_INVALID;
        r[i + 2] = (uint8_t)call->scalar_in[i];
    }
    return odk_hid_device_handle_report(v->dev, 0, r, sizeof r);
}

static int m_consumer(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct vk *v = odk_driver_state(drv);
    if (!v->dev || v->owner != uc)
        return ODK_E_STATE;
    if (call->scalar_in[0] > 0x3ff)
        return ODK_E_INVALID;
    uint8_t r[3] = {2, (uint8_t)call->scalar_in[0], (uint8_t)(call->scalar_in[0] >> 8)};
    return odk_hid_device_handle_report(v->dev, 0, r, sizeof r);
}

static int m_leds(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct vk *v = odk_driver_state(drv);
    if (!v->dev)
        return ODK_E_STATE;
    call->scalar_out[0] = v->leds;
    return ODK_OK;
}

static int m_reset(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct vk *v = odk_driver_state(drv);
    if (!v->dev || v->owner != uc)
        return ODK_E_STATE;
    uint8_t up1[9] = {1}, up2[3] = {2};
    int st = odk_hid_device_handle_report(v->dev, 0, up1, sizeof up1);
    return st < 0 ? st : odk_hid_device_handle_report(v->dev, 0, up2, sizeof up2);
}

static const odk_method vk_methods[] = {
    [0] = {m_create, .scalar_out = 1, .struct_in = ODK_VARIABLE_SIZE},
    [1] = {m_keyboard, .scalar_in = ODK_VARIABLE},
    [2] = {m_consumer, .scalar_in = 1},
    [3] = {m_leds, .scalar_out = 1},
    [4] = {m_reset, .scalar_in = 0},
};

static const odk_driver_class vk_class = {
    .name = "HidVirtualKeyboard",
    .state_size = sizeof(struct vk),
    .start = vk_start,
    .stop = vk_stop,
    .client_close = vk_client_close,
    .methods = vk_methods,
    .n_methods = sizeof vk_methods / sizeof vk_methods[0],
};

ODK_DRIVER_CLASS(vk_class);
