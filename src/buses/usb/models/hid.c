/* SPDX-License-Identifier: MIT */
/* hid.c — a USB HID boot keyboard, a boot mouse and an absolute pointer
 * (a tablet, not a boot device) (USB HID 1.11): one HID
 * interface each, a HID descriptor, a report descriptor, an interrupt IN
 * endpoint, and the class requests (GET/SET_REPORT, GET/SET_IDLE,
 * GET/SET_PROTOCOL).  The host's output report (the keyboard's LEDs) lands
 * in the model's report; input reports come from the test
 * (`odkctl usb input ID HEX`), queued and sent one per interrupt transfer,
 * as a device reports one state change per poll.
 *
 * Plug argument: "serial". */
#include <stdio.h>
#include <string.h>

#include "buses/usb/model.h"
#include "odk/status.h"

enum {
    GET_REPORT = 0x01,
    GET_IDLE = 0x02,
    GET_PROTOCOL = 0x03,
    SET_REPORT = 0x09,
    SET_IDLE = 0x0a,
    SET_PROTOCOL = 0x0b,
};

#define EP_IN 0x81
#define QUEUE 64
#define REPORT_MAX 8

struct hid {
    const uint8_t *report_desc;
    size_t report_len, input_len;
    uint8_t queue[QUEUE][REPORT_MAX];
    unsigned first, count;
    uint8_t last[REPORT_MAX]; /* the current state, for GET_REPORT */
    uint8_t idle, protocol, leds;
};

/* The boot keyboard's report descriptor (HID 1.11 appendix B.1): modifier
 * byte, a reserved byte, five LEDs out, six key codes. */
/* clang-format off */
static const uint8_t keyboard_report[] = {
    0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0x05, 0x07, 0x19, 0xe0, 0x29, 0xe7, 0x15, 0x00,
    0x25, 0x01, 0x75, 0x01, 0x95, 0x08, 0x81, 0x02, 0x95, 0x01, 0x75, 0x08, 0x81, 0x01,
    0x95, 0x05, 0x75, 0x01, 0x05, 0x08, 0x19, 0x01, 0x29, 0x05, 0x91, 0x02, 0x95, 0x01,
    0x75, 0x03, 0x91, 0x01, 0x95, 0x06, 0x75, 0x08, 0x15, 0x00, 0x25, 0x65, 0x05, 0x07,
    0x19, 0x00, 0x29, 0x65, 0x81, 0x00, 0xc0,
};
/* clang-format on */

/* The boot mouse's (HID 1.11 appendix B.2), with a wheel: three buttons,
 * relative X, Y and wheel. */
/* clang-format off */
static const uint8_t mouse_report[] = {
    0x05, 0x01, 0x09, 0x02, 0xa1, 0x01, 0x09, 0x01, 0xa1, 0x00, 0x05, 0x09, 0x19, 0x01,
    0x29, 0x03, 0x15, 0x00, 0x25, 0x01, 0x95, 0x03, 0x75, 0x01, 0x81, 0x02, 0x95, 0x01,
    0x75, 0x05, 0x81, 0x01, 0x05, 0x01, 0x09, 0x30, 0x09, 0x31, 0x09, 0x38, 0x15, 0x81,
    0x25, 0x7f, 0x75, 0x08, 0x95, 0x03, 0x81, 0x06, 0xc0, 0xc0,
};
/* clang-format on */

/* An absolute pointer, as QEMU's usb-tablet is (not a boot device): three
 * buttons, X and Y 0..32767 in 16 bits each, a relative wheel. */
/* clang-format off */
static const uint8_t tablet_report[] = {
    0x05, 0x01, 0x09, 0x02, 0xa1, 0x01, 0x09, 0x01, 0xa1, 0x00, 0x05, 0x09, 0x19, 0x01,
    0x29, 0x03, 0x15, 0x00, 0x25, 0x01, 0x95, 0x03, 0x75, 0x01, 0x81, 0x02, 0x95, 0x01,
    0x75, 0x05, 0x81, 0x01, 0x05, 0x01, 0x09, 0x30, 0x09, 0x31, 0x15, 0x00, 0x26, 0xff,
    0x7f, 0x35, 0x00, 0x46, 0xff, 0x7f, 0x75, 0x10, 0x95, 0x02, 0x81, 0x02, 0x05, 0x01,
    0x09, 0x38, 0x15, 0x81, 0x25, 0x7f, 0x35, 0x00, 0x45, 0x00, 0x75, 0x08, 0x95, 0x01,
    0x81, 0x06, 0xc0, 0xc0,
};
/* clang-format on */

enum kind { KEYBOARD, MOUSE, TABLET };

static int setup(struct usb_model *m, const odk_value *args, enum kind kind)
{
    struct hid *h = usb_model_state(m);
    bool keyboard = kind == KEYBOARD;
    h->report_desc = keyboard ? keyboard_report : kind == MOUSE ? mouse_report : tablet_report;
    h->report_len = keyboard           ? sizeof keyboard_report
                    : kind == MOUSE    ? sizeof mouse_report
                                       : sizeof tablet_report;
    h->input_len = keyboard ? 8 : kind == MOUSE ? 4 : 6;
    h->protocol = 1; /* report protocol until the host asks for boot */
    const uint8_t device[] = {
        18, ODK_USB_DT_DEVICE, 0x00, 0x02, 0, 0, 0, 8,
        0x09, 0x12, (uint8_t)(0x10 + kind), 0x00, /* 1209:0010, 0011, 0012 */
        0x00, 0x01, 1, 2, 3, 1,
    };
    uint16_t rl = (uint16_t)h->report_len;
    const uint8_t config[] = {
        9, ODK_USB_DT_CONFIG, 34, 0, 1, 1, 0, 0xa0, 50,
        /* HID, boot subclass, keyboard (1) or mouse (2) protocol; the
         * tablet is no boot device (subclass and protocol 0) */
        9, ODK_USB_DT_INTERFACE, 0, 0, 1, ODK_USB_CLASS_HID, kind == TABLET ? 0 : 1,
        (uint8_t)(kind == TABLET ? 0 : kind + 1), 0,
        9, ODK_USB_DT_HID, 0x11, 0x01, 0, 1, ODK_USB_DT_HID_REPORT, (uint8_t)rl,
        (uint8_t)(rl >> 8),
        7, ODK_USB_DT_ENDPOINT, EP_IN, ODK_USB_TRANSFER_INTERRUPT, (uint8_t)h->input_len, 0, 10,
    };
    int st = usb_model_set_rom(m, device, sizeof device, ODK_USB_SPEED_FULL, config, sizeof config,
                               "odk",
                               keyboard        ? "Simulated keyboard"
                               : kind == MOUSE ? "Simulated mouse"
                                               : "Simulated tablet",
                               odk_dict_get_string(args, "serial", "SIM-HID-1"));
    usb_model_report_int(m, "leds", 0);
    usb_model_report_int(m, "protocol", h->protocol);
    return st;
}

static int keyboard_init(struct usb_model *m, const odk_value *args, char *err, size_t len)
{
    (void)err, (void)len;
    return setup(m, args, KEYBOARD);
}

static int mouse_init(struct usb_model *m, const odk_value *args, char *err, size_t len)
{
    (void)err, (void)len;
    return setup(m, args, MOUSE);
}

static int tablet_init(struct usb_model *m, const odk_value *args, char *err, size_t len)
{
    (void)err, (void)len;
    return setup(m, args, TABLET);
}

static int reply(const void *src, size_t len, const struct usb_setup *s, uint8_t *data,
                 uint32_t *actual)
{
    *actual = (uint32_t)(len < s->wLength ? len : s->wLength);
    memcpy(data, src, *actual);
    return ODK_OK;
}

static int control(struct usb_model *m, const struct usb_setup *s, uint8_t *data,
                   uint32_t *actual)
{
    struct hid *h = usb_model_state(m);
    if ((s->bmRequestType & USB_RECIP_MASK) != USB_RECIP_INTERFACE || (s->wIndex & 0xff) != 0)
        return ODK_E_STALL;
    if ((s->bmRequestType & USB_TYPE_MASK) == USB_TYPE_STANDARD) {
        /* The class descriptors of the interface: report and HID. */
        if (s->bRequest != USB_REQ_GET_DESCRIPTOR || !(s->bmRequestType & USB_DIR_IN))
            return ODK_E_STALL;
        if ((s->wValue >> 8) == ODK_USB_DT_HID_REPORT)
            return reply(h->report_desc, h->report_len, s, data, actual);
        if ((s->wValue >> 8) == ODK_USB_DT_HID) {
            uint16_t rl = (uint16_t)h->report_len;
            const uint8_t d[9] = {9, ODK_USB_DT_HID, 0x11, 0x01, 0, 1, ODK_USB_DT_HID_REPORT,
                                  (uint8_t)rl, (uint8_t)(rl >> 8)};
            return reply(d, sizeof d, s, data, actual);
        }
        return ODK_E_STALL;
    }
    if ((s->bmRequestType & USB_TYPE_MASK) != USB_TYPE_CLASS)
        return ODK_E_STALL;
    switch (s->bRequest) {
    case GET_REPORT:
        return reply(h->last, h->input_len, s, data, actual);
    case SET_REPORT:
        /* Output report (type 2): the keyboard's LEDs. */
        if ((s->wValue >> 8) != 2 || s->wLength < 1 || h->input_len != 8)
            return ODK_E_STALL;
        h->leds = data[0];
        usb_model_report_int(m, "leds", h->leds);
        return ODK_OK;
    case GET_IDLE:
        return reply(&h->idle, 1, s, data, actual);
    case SET_IDLE:
        h->idle = (uint8_t)(s->wValue >> 8);
        return ODK_OK;
    case GET_PROTOCOL:
        return reply(&h->protocol, 1, s, data, actual);
    case SET_PROTOCOL:
        if (s->wValue > 1)
            return ODK_E_STALL;
        h->protocol = (uint8_t)s->wValue;
        usb_model_report_int(m, "protocol", h->protocol);
        return ODK_OK;
    default:
        return ODK_E_STALL;
    }
}

/* A report from the test: queued until the host polls; a full queue
 * refuses it, as a device would overwrite (the test is told instead). */
static int input(struct usb_model *m, const uint8_t *data, size_t len)
{
    struct hid *h = usb_model_state(m);
    if (len != h->input_len)
        return ODK_E_INVALID;
    if (h->count == QUEUE)
        return ODK_E_BUSY;
    memcpy(h->queue[(h->first + h->count++) % QUEUE], data, len);
    return ODK_OK;
}

static void pump(struct usb_model *m)
{
    struct hid *h = usb_model_state(m);
    struct usb_xfer *x;
    while (h->count && (x = usb_model_peek(m, EP_IN))) {
        const uint8_t *r = h->queue[h->first];
        x->actual = (uint32_t)(x->length < h->input_len ? x->length : h->input_len);
        memcpy(x->data, r, x->actual);
        memcpy(h->last, r, h->input_len);
        h->first = (h->first + 1) % QUEUE;
        h->count--;
        /* No count of reports sent in the model's report: each change of
         * it is a message to odkd, which a keystroke then cost odkd
         * beside the driver's completion (and nobody read it). */
        usb_model_complete(m, EP_IN, ODK_OK);
    }
}

const struct usb_model_ops usb_model_hid_keyboard = {
    .name = "hid-keyboard",
    .summary = "HID boot keyboard: LEDs from the host, key reports from `odkctl usb input`",
    .state_size = sizeof(struct hid),
    .init = keyboard_init,
    .control = control,
    .input = input,
    .pump = pump,
};

const struct usb_model_ops usb_model_hid_mouse = {
    .name = "hid-mouse",
    .summary = "HID boot mouse with a wheel: reports from `odkctl usb input`",
    .state_size = sizeof(struct hid),
    .init = mouse_init,
    .control = control,
    .input = input,
    .pump = pump,
};

const struct usb_model_ops usb_model_hid_tablet = {
    .name = "hid-tablet",
    .summary = "HID absolute pointer (X, Y 0..32767) with a wheel, as QEMU's usb-tablet",
    .state_size = sizeof(struct hid),
    .init = tablet_init,
    .control = control,
    .input = input,
    .pump = pump,
};
