/* SPDX-License-Identifier: MIT */
/* usb-cdc-acm: a driver for USB CDC-ACM serial adapters (the class most
 * USB-to-serial devices and microcontroller boards use), on the USB-serial
 * base (odk/usb_serial.h), which moves the bytes.  What is left is the
 * class: find the data interface through the union descriptor, and turn
 * line settings, DTR/RTS and break into the class's three requests; read
 * the device's modem lines from its SERIAL_STATE notifications.
 *
 * It matches the communication interface (class 2, subclass 2) of any
 * device and names its port usbmodem-N (tty.usbmodem-N, cu.usbmodem-N). */
#include <stdlib.h>

#include "odk/driver.h"
#include "odk/usb_serial.h"

/* CDC PSTN class requests and the notification (CDC PSTN 6.3, 6.5). */
#define SET_LINE_CODING 0x20
#define SET_CONTROL_LINE_STATE 0x22
#define SEND_BREAK 0x23
#define SERIAL_STATE 0x20
#define UNION_DESCRIPTOR 0x06

struct acm {
    odk_usb_interface *comm, *data;
    odk_usb_serial *serial;
};

static int class_request(odk_usb_serial *s, uint8_t request, uint16_t value, void *data,
                         uint16_t len)
{
    struct acm *a = odk_usb_serial_ctx(s);
    odk_usb_request r = {ODK_USB_REQ_OUT | ODK_USB_REQ_CLASS | ODK_USB_REQ_INTERFACE, request,
                         value, 0, len};
    return odk_usb_interface_request(a->comm, &r, data, NULL, 0);
}

static int acm_set_line(odk_usb_serial *s, const odk_serial_line *l)
{
    /* dwDTERate, bCharFormat (0: 1 stop bit, 2: 2), bParityType (odk's
     * parity numbers are CDC's), bDataBits */
    uint8_t coding[7] = {(uint8_t)l->baud, (uint8_t)(l->baud >> 8), (uint8_t)(l->baud >> 16),
                         (uint8_t)(l->baud >> 24), l->stop_bits == 2 ? 2 : 0,
                         (uint8_t)l->parity, l->data_bits};
    return class_request(s, SET_LINE_CODING, 0, coding, sizeof coding);
}

static int acm_set_modem(odk_usb_serial *s, bool dtr, bool rts)
{
    return class_request(s, SET_CONTROL_LINE_STATE, (uint16_t)(dtr | rts << 1), NULL, 0);
}

static int acm_send_break(odk_usb_serial *s, bool on)
{
    return class_request(s, SEND_BREAK, on ? 0xffff : 0, NULL, 0);
}

/* SERIAL_STATE: bit 0 DCD, bit 1 DSR, bit 3 ring.  CDC has no CTS; like
 * Linux's cdc-acm, report it always on. */
static void acm_notification(odk_usb_serial *s, const uint8_t *n, size_t len)
{
    if (len < 10 || n[0] != 0xa1 || n[1] != SERIAL_STATE)
        return;
    uint16_t state = (uint16_t)(n[8] | n[9] << 8);
    odk_usb_serial_set_modem_status(s, true, state & 2, state & 8, state & 1);
}

static const odk_usb_serial_ops acm_ops = {
    .set_line = acm_set_line,
    .set_modem = acm_set_modem,
    .send_break = acm_send_break,
    .notification = acm_notification,
};

/* The data interface the union descriptor names (else the next one). */
static uint8_t data_interface(odk_usb_interface *comm)
{
    const odk_usb_config_descriptor *c = odk_usb_interface_configuration(comm);
    const odk_usb_interface_descriptor *d = odk_usb_interface_descriptor_get(comm);
    for (const odk_usb_descriptor_header *h = NULL;
         (h = odk_usb_next_associated(c, d, h, ODK_USB_DT_CS_INTERFACE));) {
        const uint8_t *b = (const uint8_t *)h;
        if (h->bLength >= 5 && b[2] == UNION_DESCRIPTOR)
            return b[4]; /* bSubordinateInterface0 */
    }
    return (uint8_t)(d->bInterfaceNumber + 1);
}

static int acm_start(odk_driver *drv)
{
    struct acm *a = odk_driver_state(drv);
    char *holder = NULL;
    int st = odk_usb_interface_open(drv, &a->comm, &holder);
    if (st == ODK_OK)
        st = odk_usb_interface_open_other(a->comm, data_interface(a->comm), &a->data, &holder);
    if (st == ODK_E_BUSY)
        odk_error("interface is held by %s", holder ? holder : "another driver");
    odk_free(holder);
    if (st < 0)
        return st;
    odk_usb_serial_config cfg = {.data = a->data, .notify = a->comm};
    st = odk_usb_serial_create(drv, &cfg, &acm_ops, a, &a->serial);
    if (st < 0)
        return st;
    odk_info("port %s", odk_serial_port_name(odk_usb_serial_port(a->serial)));
    return odk_driver_register_service(drv);
}

static void acm_stop(odk_driver *drv)
{
    struct acm *a = odk_driver_state(drv);
    odk_usb_serial_destroy(a->serial);
    odk_usb_interface_close(a->data);
    odk_usb_interface_close(a->comm);
}

static const odk_driver_class acm_class = {
    .name = "UsbCdcAcm",
    .state_size = sizeof(struct acm),
    .start = acm_start,
    .stop = acm_stop,
};

ODK_DRIVER_CLASS(acm_class);
