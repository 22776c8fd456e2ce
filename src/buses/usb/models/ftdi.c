/* SPDX-License-Identifier: MIT */
/* ftdi.c — an FTDI FT232R-style adapter: one vendor-class interface with a
 * bulk pair, line settings through vendor requests, and the chip's habit
 * of starting every bulk-in packet with two status bytes (modem status,
 * line status).  The line is looped back: CTS follows RTS, DSR and DCD
 * follow DTR.  Settings land in the model's report.
 *
 * The request encodings are those the chip's public datasheets and the
 * open drivers (Linux ftdi_sio, libftdi) use.
 * Plug arguments: "serial" (default SIM-FTDI-1). */
#include <stdio.h>
#include <string.h>

#include "buses/usb/model.h"
#include "buses/usb/models/fifo.h"
#include "odk/status.h"

enum {
    FTDI_RESET = 0x00,
    FTDI_MODEM_CTRL = 0x01,
    FTDI_SET_FLOW_CTRL = 0x02,
    FTDI_SET_BAUD_RATE = 0x03,
    FTDI_SET_DATA = 0x04,
    FTDI_GET_MODEM_STATUS = 0x05,
    FTDI_SET_EVENT_CHAR = 0x06,
    FTDI_SET_ERROR_CHAR = 0x07,
    FTDI_SET_LATENCY_TIMER = 0x09,
    FTDI_GET_LATENCY_TIMER = 0x0a,
};

/* Modem status byte: the low nibble always reads 1 on the FT232R. */
#define MS_CTS 0x10
#define MS_DSR 0x20
#define MS_RI 0x40
#define MS_DCD 0x80
/* Line status byte: transmitter holding register and transmitter empty. */
#define LS_THRE 0x20
#define LS_TEMT 0x40
#define LS_BREAK 0x10

#define EP_IN 0x81
#define EP_OUT 0x02
#define PACKET 64

struct ftdi {
    struct fifo fifo;
    bool dtr, rts, brk;
    uint8_t sent_status; /* modem status in the last packet the host got */
    bool status_sent;
    uint8_t latency;
};

/* clang-format off */
static const uint8_t device[] = {
    18, ODK_USB_DT_DEVICE, 0x00, 0x02, 0, 0, 0, 8,
    0x03, 0x04, 0x01, 0x60, /* 0403:6001 */
    0x00, 0x06,             /* bcdDevice 6.00: FT232R */
    1, 2, 3, 1,
};
/* clang-format on */

/* clang-format off */
static const uint8_t config[] = {
    9, ODK_USB_DT_CONFIG, 32, 0, 1, 1, 0, 0xa0, 45,
    9, ODK_USB_DT_INTERFACE, 0, 0, 2, 0xff, 0xff, 0xff, 2,
    7, ODK_USB_DT_ENDPOINT, EP_IN, ODK_USB_TRANSFER_BULK, PACKET, 0, 0,
    7, ODK_USB_DT_ENDPOINT, EP_OUT, ODK_USB_TRANSFER_BULK, PACKET, 0, 0,
};
/* clang-format on */

static uint8_t modem_status(const struct ftdi *f)
{
    return (uint8_t)(0x01 | (f->rts ? MS_CTS : 0) | (f->dtr ? MS_DSR | MS_DCD : 0));
}

/* The baud rate a SET_BAUD_RATE divisor selects on a 3 MHz FT232R: a
 * 14-bit integer divisor and a 3-bit fraction code split across wValue's
 * top bits and wIndex's bit 0 (code -> eighths: 0, 4, 2, 1, 3, 5, 6, 7);
 * divisors 0 and 1 mean 3 and 2 Mbaud. */
static uint32_t baud_of(uint16_t value, uint16_t index)
{
    static const unsigned eighths[8] = {0, 4, 2, 1, 3, 5, 6, 7};
    unsigned integer = value & 0x3fff;
    unsigned code = (unsigned)(value >> 14) | (unsigned)((index & 1) << 2);
    unsigned divisor8 = integer * 8 + eighths[code];
    if (divisor8 == 0)
        return 3000000;
    if (divisor8 == 8)
        return 2000000;
    return (uint32_t)((3000000ull * 8 + divisor8 / 2) / divisor8);
}

static void report_lines(struct usb_model *m, const struct ftdi *f)
{
    usb_model_report_bool(m, "dtr", f->dtr);
    usb_model_report_bool(m, "rts", f->rts);
    usb_model_report_bool(m, "break", f->brk);
}

static int init(struct usb_model *m, const odk_value *args, char *err, size_t err_len)
{
    (void)err, (void)err_len;
    struct ftdi *f = usb_model_state(m);
    f->latency = 16;
    int st = usb_model_set_rom(m, device, sizeof device, ODK_USB_SPEED_FULL, config, sizeof config,
                               "FTDI", "FT232R USB UART",
                               odk_dict_get_string(args, "serial", "SIM-FTDI-1"));
    usb_model_report_int(m, "baud", 9600);
    usb_model_report_int(m, "data_bits", 8);
    usb_model_report_string(m, "parity", "none");
    usb_model_report_string(m, "stop_bits", "1");
    usb_model_report_int(m, "flow", 0);
    report_lines(m, f);
    return st;
}

static int control(struct usb_model *m, const struct usb_setup *s, uint8_t *data,
                   uint32_t *actual)
{
    struct ftdi *f = usb_model_state(m);
    if ((s->bmRequestType & USB_TYPE_MASK) != USB_TYPE_VENDOR)
        return ODK_E_STALL;
    bool in = s->bmRequestType & USB_DIR_IN;
    switch (s->bRequest) {
    case FTDI_RESET:
        if (s->wValue == 0 || s->wValue == 1)
            fifo_clear(&f->fifo); /* reset, or purge what the host has not read */
        return ODK_OK;
    case FTDI_MODEM_CTRL: {
        unsigned mask = s->wValue >> 8, v = s->wValue & 0xff;
        if (mask & 1)
            f->dtr = v & 1;
        if (mask & 2)
            f->rts = (v >> 1) & 1;
        report_lines(m, f);
        return ODK_OK;
    }
    case FTDI_SET_FLOW_CTRL:
        usb_model_report_int(m, "flow", s->wIndex >> 8);
        return ODK_OK;
    case FTDI_SET_BAUD_RATE:
        usb_model_report_int(m, "baud", baud_of(s->wValue, s->wIndex));
        return ODK_OK;
    case FTDI_SET_DATA: {
        static const char *const parity[] = {"none", "odd", "even", "mark", "space"};
        static const char *const stop[] = {"1", "1.5", "2"};
        unsigned bits = s->wValue & 0xff, p = (s->wValue >> 8) & 7, sb = (s->wValue >> 11) & 7;
        if ((bits != 7 && bits != 8) || p > 4 || sb > 2)
            return ODK_E_STALL;
        usb_model_report_int(m, "data_bits", bits);
        usb_model_report_string(m, "parity", parity[p]);
        usb_model_report_string(m, "stop_bits", stop[sb]);
        f->brk = (s->wValue >> 14) & 1;
        report_lines(m, f);
        return ODK_OK;
    }
    case FTDI_GET_MODEM_STATUS:
        if (!in)
            return ODK_E_STALL;
        data[0] = modem_status(f);
        if (s->wLength > 1)
            data[1] = (uint8_t)(LS_THRE | LS_TEMT | (f->brk ? LS_BREAK : 0));
        *actual = s->wLength < 2 ? s->wLength : 2;
        return ODK_OK;
    case FTDI_SET_EVENT_CHAR:
    case FTDI_SET_ERROR_CHAR:
        return ODK_OK;
    case FTDI_SET_LATENCY_TIMER:
        f->latency = (uint8_t)s->wValue;
        usb_model_report_int(m, "latency_ms", f->latency);
        return ODK_OK;
    case FTDI_GET_LATENCY_TIMER:
        if (!in || s->wLength < 1)
            return ODK_E_STALL;
        data[0] = f->latency;
        *actual = 1;
        return ODK_OK;
    default:
        return ODK_E_STALL;
    }
}

static void configured(struct usb_model *m, uint8_t value)
{
    (void)value;
    struct ftdi *f = usb_model_state(m);
    fifo_clear(&f->fifo);
    f->status_sent = false;
}

/* Fills an IN transfer the way the chip does: packets of up to 64 bytes,
 * each two status bytes and up to 62 data bytes; a packet of less than 64
 * ends the transfer. */
static void fill_in(struct ftdi *f, struct usb_xfer *x)
{
    uint8_t ms = modem_status(f), ls = (uint8_t)(LS_THRE | LS_TEMT | (f->brk ? LS_BREAK : 0));
    x->actual = 0;
    while (x->length - x->actual >= 2) {
        size_t room = x->length - x->actual;
        if (room > PACKET)
            room = PACKET;
        uint8_t *p = x->data + x->actual;
        p[0] = ms, p[1] = ls;
        size_t n = fifo_get(&f->fifo, p + 2, room - 2);
        x->actual += (uint32_t)(2 + n);
        if (2 + n < PACKET || !f->fifo.len)
            break;
    }
    f->sent_status = ms;
    f->status_sent = true;
}

static void pump(struct usb_model *m)
{
    struct ftdi *f = usb_model_state(m);
    for (bool moved = true; moved;) {
        moved = false;
        struct usb_xfer *x = usb_model_peek(m, EP_OUT);
        if (x && fifo_room(&f->fifo)) {
            x->actual += (uint32_t)fifo_put(&f->fifo, x->data + x->actual, x->length - x->actual);
            if (x->actual == x->length)
                usb_model_complete(m, EP_OUT, ODK_OK);
            moved = true;
        }
        /* With nothing to send, the chip still reports a modem-status
         * change at once; otherwise the transfer waits for data. */
        x = usb_model_peek(m, EP_IN);
        if (x && (f->fifo.len || !f->status_sent || f->sent_status != modem_status(f))) {
            fill_in(f, x);
            usb_model_complete(m, EP_IN, ODK_OK);
            moved = true;
        }
    }
}

const struct usb_model_ops usb_model_ftdi = {
    .name = "ftdi",
    .summary = "FTDI FT232R-style serial adapter, looped back (CTS follows RTS, DSR/DCD follow DTR)",
    .state_size = sizeof(struct ftdi),
    .init = init,
    .control = control,
    .configured = configured,
    .pump = pump,
};
