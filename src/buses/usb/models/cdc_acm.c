/* SPDX-License-Identifier: MIT */
/* cdc_acm.c — a CDC-ACM serial adapter (USB CDC 1.2 and its PSTN
 * subclass): a communication interface with the class's functional
 * descriptors and a notification endpoint, a data interface with a bulk
 * pair.  The line is looped back: what the host writes comes back, DSR and
 * DCD follow DTR, and every SET_LINE_CODING / SET_CONTROL_LINE_STATE /
 * SEND_BREAK lands in the model's report, where tests read it.
 *
 * Plug arguments: "serial" (the serial-number string, default SIM-ACM-1). */
#include <stdio.h>
#include <string.h>

#include "buses/usb/model.h"
#include "buses/usb/models/fifo.h"
#include "odk/status.h"

/* Class requests (CDC PSTN 6.3). */
enum {
    SEND_ENCAPSULATED_COMMAND = 0x00,
    GET_ENCAPSULATED_RESPONSE = 0x01,
    SET_LINE_CODING = 0x20,
    GET_LINE_CODING = 0x21,
    SET_CONTROL_LINE_STATE = 0x22,
    SEND_BREAK = 0x23,
};
#define SERIAL_STATE 0x20 /* notification */

#define EP_NOTIFY 0x83
#define EP_OUT 0x02
#define EP_IN 0x81

struct acm {
    struct fifo fifo;
    uint8_t line_coding[7];
    bool dtr, rts;
    uint16_t serial_state; /* bit 0 DCD, 1 DSR, 2 break, 3 ring */
    bool notify;           /* a SERIAL_STATE notification is due */
    unsigned breaks;
};

/* clang-format off */
static const uint8_t device[] = {
    18, ODK_USB_DT_DEVICE, 0x00, 0x02, /* USB 2.0 */
    0xef, 0x02, 0x01,                  /* miscellaneous: interface association */
    64, 0x09, 0x12, 0x01, 0x00,        /* pid.codes test VID 0x1209, PID 0x0001 */
    0x00, 0x01,                        /* bcdDevice 1.00 */
    1, 2, 3, 1,
};
/* clang-format on */

/* clang-format off */
static const uint8_t config[] = {
    9, ODK_USB_DT_CONFIG, 75, 0, 2, 1, 0, 0x80, 50,
    /* interface association: the two interfaces are one function */
    8, ODK_USB_DT_INTERFACE_ASSOCIATION, 0, 2, ODK_USB_CLASS_CDC, 0x02, 0x01, 0,
    /* communication interface, abstract control model, AT commands */
    9, ODK_USB_DT_INTERFACE, 0, 0, 1, ODK_USB_CLASS_CDC, 0x02, 0x01, 0,
    5, ODK_USB_DT_CS_INTERFACE, 0x00, 0x20, 0x01, /* header, CDC 1.20 */
    5, ODK_USB_DT_CS_INTERFACE, 0x01, 0x00, 0x01, /* call management: data on interface 1 */
    4, ODK_USB_DT_CS_INTERFACE, 0x02, 0x06,       /* ACM: line coding, break */
    5, ODK_USB_DT_CS_INTERFACE, 0x06, 0x00, 0x01, /* union: 0 controls 1 */
    7, ODK_USB_DT_ENDPOINT, EP_NOTIFY, ODK_USB_TRANSFER_INTERRUPT, 16, 0, 8,
    /* data interface */
    9, ODK_USB_DT_INTERFACE, 1, 0, 2, ODK_USB_CLASS_CDC_DATA, 0, 0, 0,
    7, ODK_USB_DT_ENDPOINT, EP_OUT, ODK_USB_TRANSFER_BULK, 0x00, 0x02, 0,
    7, ODK_USB_DT_ENDPOINT, EP_IN, ODK_USB_TRANSFER_BULK, 0x00, 0x02, 0,
};
/* clang-format on */

static void report_line(struct usb_model *m, const struct acm *a)
{
    const uint8_t *c = a->line_coding;
    static const char *const parity[] = {"none", "odd", "even", "mark", "space"};
    static const char *const stop[] = {"1", "1.5", "2"};
    usb_model_report_int(m, "baud", c[0] | c[1] << 8 | c[2] << 16 | (int64_t)c[3] << 24);
    usb_model_report_string(m, "stop_bits", c[4] < 3 ? stop[c[4]] : "?");
    usb_model_report_string(m, "parity", c[5] < 5 ? parity[c[5]] : "?");
    usb_model_report_int(m, "data_bits", c[6]);
}

static void report_lines(struct usb_model *m, const struct acm *a)
{
    usb_model_report_bool(m, "dtr", a->dtr);
    usb_model_report_bool(m, "rts", a->rts);
    usb_model_report_int(m, "breaks", a->breaks);
}

static int init(struct usb_model *m, const odk_value *args, char *err, size_t err_len)
{
    (void)err, (void)err_len;
    struct acm *a = usb_model_state(m);
    /* 9600 8N1, as a fresh adapter reports before the host sets it */
    const uint8_t coding[7] = {0x80, 0x25, 0, 0, 0, 0, 8};
    memcpy(a->line_coding, coding, sizeof coding);
    int st = usb_model_set_rom(m, device, sizeof device, ODK_USB_SPEED_HIGH, config, sizeof config,
                               "odk", "Simulated CDC-ACM serial",
                               odk_dict_get_string(args, "serial", "SIM-ACM-1"));
    report_line(m, a);
    report_lines(m, a);
    return st;
}

static int control(struct usb_model *m, const struct usb_setup *s, uint8_t *data,
                   uint32_t *actual)
{
    struct acm *a = usb_model_state(m);
    if ((s->bmRequestType & (USB_TYPE_MASK | USB_RECIP_MASK)) !=
            (USB_TYPE_CLASS | USB_RECIP_INTERFACE) ||
        s->wIndex != 0)
        return ODK_E_STALL;
    switch (s->bRequest) {
    case SET_LINE_CODING:
        if (s->wLength != 7 || (s->bmRequestType & USB_DIR_IN))
            return ODK_E_STALL;
        memcpy(a->line_coding, data, 7);
        report_line(m, a);
        return ODK_OK;
    case GET_LINE_CODING:
        if (!(s->bmRequestType & USB_DIR_IN))
            return ODK_E_STALL;
        *actual = s->wLength < 7 ? s->wLength : 7;
        memcpy(data, a->line_coding, *actual);
        return ODK_OK;
    case SET_CONTROL_LINE_STATE: {
        a->dtr = s->wValue & 1;
        a->rts = (s->wValue >> 1) & 1;
        /* The loopback plug: DSR and DCD follow DTR. */
        uint16_t state = (uint16_t)((a->serial_state & ~3u) | (a->dtr ? 3u : 0u));
        if (state != a->serial_state)
            a->serial_state = state, a->notify = true;
        report_lines(m, a);
        return ODK_OK;
    }
    case SEND_BREAK:
        if (s->wValue) {
            a->breaks++;
            a->serial_state |= 4; /* the break comes back on the loop */
            a->notify = true;
        }
        report_lines(m, a);
        return ODK_OK;
    default:
        return ODK_E_STALL;
    }
}

static void configured(struct usb_model *m, uint8_t value)
{
    (void)value;
    struct acm *a = usb_model_state(m);
    fifo_clear(&a->fifo);
    a->notify = true; /* the host learns the lines once configured */
}

static void pump(struct usb_model *m)
{
    struct acm *a = usb_model_state(m);
    for (bool moved = true; moved;) {
        moved = false;
        struct usb_xfer *x = usb_model_peek(m, EP_OUT);
        if (x && fifo_room(&a->fifo)) {
            x->actual += (uint32_t)fifo_put(&a->fifo, x->data + x->actual, x->length - x->actual);
            if (x->actual == x->length)
                usb_model_complete(m, EP_OUT, ODK_OK);
            moved = true;
        }
        x = usb_model_peek(m, EP_IN);
        if (x && a->fifo.len) {
            x->actual = (uint32_t)fifo_get(&a->fifo, x->data, x->length);
            usb_model_complete(m, EP_IN, ODK_OK);
            moved = true;
        }
        x = usb_model_peek(m, EP_NOTIFY);
        if (x && a->notify) {
            uint8_t n[10] = {0xa1, SERIAL_STATE, 0, 0, 0, 0, 2, 0,
                             (uint8_t)a->serial_state, (uint8_t)(a->serial_state >> 8)};
            x->actual = x->length < sizeof n ? x->length : (uint32_t)sizeof n;
            memcpy(x->data, n, x->actual);
            a->notify = false;
            a->serial_state &= (uint16_t)~4u; /* break is an event, not a state */
            usb_model_complete(m, EP_NOTIFY, ODK_OK);
            moved = true;
        }
    }
}

const struct usb_model_ops usb_model_cdc_acm = {
    .name = "cdc-acm",
    .summary = "CDC-ACM serial adapter, looped back (DSR and DCD follow DTR)",
    .state_size = sizeof(struct acm),
    .init = init,
    .control = control,
    .configured = configured,
    .pump = pump,
};
