/* SPDX-License-Identifier: MIT */
/* usb-ftdi: a driver for FTDI FT232R-style USB serial adapters, on the
 * USB-serial base (odk/usb_serial.h).  The chip speaks vendor requests
 * for the line and the modem lines, and starts every 64-byte bulk-IN
 * packet with two status bytes (modem status, line status), which
 * rx_unframe strips and reads.  The encodings are those of the chip's
 * datasheets and the open drivers (Linux ftdi_sio, libftdi).
 *
 * It matches 0403:6001 and names its port usbserial-N. */
#include <stdlib.h>
#include <string.h>

#include "odk/driver.h"
#include "odk/usb_serial.h"

#define FTDI_MODEM_CTRL 0x01
#define FTDI_SET_FLOW_CTRL 0x02
#define FTDI_SET_BAUD_RATE 0x03
#define FTDI_SET_DATA 0x04
#define PACKET 64

struct ftdi {
    odk_usb_interface *intf;
    odk_usb_serial *serial;
    odk_serial_line line; /* what the chip was last told */
};

static int vendor(odk_usb_serial *s, uint8_t request, uint16_t value, uint16_t index)
{
    struct ftdi *f = odk_usb_serial_ctx(s);
    odk_usb_request r = {ODK_USB_REQ_OUT | ODK_USB_REQ_VENDOR | ODK_USB_REQ_DEVICE, request, value,
                         index, 0};
    return odk_usb_interface_request(f->intf, &r, NULL, NULL, 0);
}

/* A 3 MHz clock divided by an integer and eighths: divisor 0 and 1 mean
 * 3 and 2 Mbaud; the eighths travel as a 3-bit code, split between
 * wValue's top two bits and wIndex's bit 0. */
static void baud_divisor(uint32_t baud, uint16_t *value, uint16_t *index)
{
    static const uint8_t code[8] = {0, 3, 2, 4, 1, 5, 6, 7};
    uint32_t enc;
    if (baud >= 3000000) {
        enc = 0;
    } else if (baud >= 2000000) {
        enc = 1;
    } else {
        uint32_t div8 = (uint32_t)((3000000ull * 8 + baud / 2) / (baud ? baud : 1));
        if (div8 > 0x3fff * 8 + 7)
            div8 = 0x3fff * 8 + 7; /* the slowest the chip goes (~183 baud) */
        enc = (div8 >> 3) | (uint32_t)code[div8 & 7] << 14;
    }
    *value = (uint16_t)enc;
    *index = (uint16_t)(enc >> 16);
}

static uint16_t data_word(const odk_serial_line *l, bool brk)
{
    return (uint16_t)(l->data_bits | (unsigned)l->parity << 8 | (l->stop_bits == 2 ? 2u : 0u) << 11 |
                      (brk ? 1u << 14 : 0u));
}

static int ftdi_set_line(odk_usb_serial *s, const odk_serial_line *l)
{
    struct ftdi *f = odk_usb_serial_ctx(s);
    uint16_t value, index;
    baud_divisor(l->baud, &value, &index);
    int st = vendor(s, FTDI_SET_BAUD_RATE, value, index);
    if (st == ODK_OK)
        st = vendor(s, FTDI_SET_DATA, data_word(l, false), 0);
    if (st == ODK_OK) {
        uint16_t flow = l->flow & ODK_FLOW_RTS_CTS ? 0x0100
                        : l->flow & (ODK_FLOW_XON_XOFF_IN | ODK_FLOW_XON_XOFF_OUT) ? 0x0400
                                                                                    : 0;
        st = vendor(s, FTDI_SET_FLOW_CTRL, flow == 0x0400 ? (uint16_t)(l->xon | l->xoff << 8) : 0,
                    flow);
    }
    if (st == ODK_OK)
        f->line = *l;
    return st;
}

static int ftdi_set_modem(odk_usb_serial *s, bool dtr, bool rts)
{
    return vendor(s, FTDI_MODEM_CTRL, (uint16_t)(0x0300 | dtr | rts << 1), 0);
}

static int ftdi_send_break(odk_usb_serial *s, bool on)
{
    struct ftdi *f = odk_usb_serial_ctx(s);
    return vendor(s, FTDI_SET_DATA, data_word(&f->line, on), 0);
}

/* Packets of up to 64 bytes: [modem status][line status][data...].  The
 * data moves down over the status bytes; the last status wins. */
static size_t ftdi_rx_unframe(odk_usb_serial *s, uint8_t *data, size_t len)
{
    size_t out = 0;
    for (size_t p = 0; p + 2 <= len; p += PACKET) {
        uint8_t ms = data[p];
        odk_usb_serial_set_modem_status(s, ms & 0x10, ms & 0x20, ms & 0x40, ms & 0x80);
        size_t n = len - p < PACKET ? len - p - 2 : PACKET - 2;
        memmove(data + out, data + p + 2, n);
        out += n;
    }
    return out;
}

static const odk_usb_serial_ops ftdi_ops = {
    .set_line = ftdi_set_line,
    .set_modem = ftdi_set_modem,
    .send_break = ftdi_send_break,
    .rx_unframe = ftdi_rx_unframe,
};

static int ftdi_start(odk_driver *drv)
{
    struct ftdi *f = odk_driver_state(drv);
    char *holder = NULL;
    int st = odk_usb_interface_open(drv, &f->intf, &holder);
    if (st == ODK_E_BUSY)
        odk_error("interface is held by %s", holder ? holder : "another driver");
    odk_free(holder);
    if (st < 0)
        return st;
    /* Bulk-IN transfers a multiple of the packet size, so a packet's two
     * status bytes never straddle two transfers. */
    odk_usb_serial_config cfg = {.data = f->intf, .transfer_size = 64 * PACKET};
    st = odk_usb_serial_create(drv, &cfg, &ftdi_ops, f, &f->serial);
    if (st < 0)
        return st;
    odk_info("port %s", odk_serial_port_name(odk_usb_serial_port(f->serial)));
    return odk_driver_register_service(drv);
}

static void ftdi_stop(odk_driver *drv)
{
    struct ftdi *f = odk_driver_state(drv);
    odk_usb_serial_destroy(f->serial);
    odk_usb_interface_close(f->intf);
}

static const odk_driver_class ftdi_class = {
    .name = "UsbFtdi",
    .state_size = sizeof(struct ftdi),
    .start = ftdi_start,
    .stop = ftdi_stop,
};

ODK_DRIVER_CLASS(ftdi_class);
