/* SPDX-License-Identifier: MIT */
/* odk/usb_serial.h — a serial port behind a USB device's bulk pipes.
 *
 * DriverKit's IOUserUSBSerial idea: the framework moves the serial
 * family's rings (odk/serial.h) over the device's bulk IN and OUT pipes,
 * with several transfers in flight, so a USB serial driver is its
 * descriptors, its line coding and its modem control:
 *   set_line     the line settings reach the device (CDC's SET_LINE_CODING,
 *                FTDI's vendor requests); at activation and on every change
 *   set_modem    DTR and RTS; at activation (the initial state) and on
 *                every change
 *   rx_unframe   optional: a device that frames its bulk-IN data (FTDI's
 *                two status bytes per packet) strips the framing here
 *   notification optional: what the interrupt endpoint says (CDC's
 *                SERIAL_STATE)
 * The modem inputs the device reports (odk_usb_serial_set_modem_status)
 * are what programs read with TIOCMGET or the port's user client.
 *
 * Every callback runs on the driver's default queue; call the functions
 * here from there too.  create and destroy BLOCK (on odkd and the device).
 */
#ifndef ODK_USB_SERIAL_H
#define ODK_USB_SERIAL_H

#include "odk/export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "odk/serial.h"
#include "odk/usb.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odk_usb_serial odk_usb_serial;

typedef struct odk_usb_serial_ops {
    /* Required. */
    int (*set_line)(odk_usb_serial *s, const odk_serial_line *line);
    int (*set_modem)(odk_usb_serial *s, bool dtr, bool rts);
    /* Optional (ODK_E_UNSUPPORTED to programs when NULL). */
    int (*send_break)(odk_usb_serial *s, bool on);
    /* Optional: data holds len bytes as the device sent them in one bulk-IN
     * transfer; edit them in place and return how many are payload. */
    size_t (*rx_unframe)(odk_usb_serial *s, uint8_t *data, size_t len);
    /* Optional: one transfer from the interrupt endpoint. */
    void (*notification)(odk_usb_serial *s, const uint8_t *data, size_t len);
} odk_usb_serial_ops;

typedef struct odk_usb_serial_config {
    odk_usb_interface *data;      /* the interface with the bulk pair (borrowed) */
    uint8_t in_endpoint;          /* 0: the first bulk IN of data */
    uint8_t out_endpoint;         /* 0: the first bulk OUT of data */
    odk_usb_interface *notify;    /* the interface with the interrupt endpoint, or NULL */
    uint8_t notify_endpoint;      /* 0: the first interrupt IN of notify */
    uint32_t transfer_size;       /* bytes per bulk transfer; 0: 16 KiB */
    uint32_t in_flight;           /* bulk-IN transfers kept in flight; 0: 4 */
    const odk_serial_config *port; /* ring sizes and names (may be NULL) */
} odk_usb_serial_config;

/* Creates the serial port (odk_serial_port_create) and, once it is active,
 * keeps the bulk pipes moving.  cfg's interfaces, ops and ctx are borrowed
 * for the port's life.  *out is the driver's until odk_usb_serial_destroy
 * (in stop).  Errors: those of odk_serial_port_create and of
 * odk_usb_interface_copy_pipe (ODK_E_NOT_FOUND: no such endpoint), and
 * ODK_E_INVALID (a required op or cfg->data NULL). */
ODK_PUBLIC int odk_usb_serial_create(odk_driver *drv, const odk_usb_serial_config *cfg,
                                     const odk_usb_serial_ops *ops, void *ctx,
                                     odk_usb_serial **out);
/* Stops the pipes (pending transfers end), destroys the port (the terminal
 * hangs up) and frees.  NULL is ignored. */
ODK_PUBLIC void odk_usb_serial_destroy(odk_usb_serial *s);

ODK_PUBLIC void *odk_usb_serial_ctx(odk_usb_serial *s);
ODK_PUBLIC odk_serial_port *odk_usb_serial_port(odk_usb_serial *s);
/* The device's modem inputs, as it last reported them. */
ODK_PUBLIC void odk_usb_serial_set_modem_status(odk_usb_serial *s, bool cts, bool dsr, bool ri,
                                                bool dcd);

#ifdef __cplusplus
}
#endif

#endif
