/* SPDX-License-Identifier: MIT */
/* Between the serial family's port (port.c: rings, callbacks, user client)
 * and its CUSE terminal (cuse.c).  Private to odk-driver-host; everything
 * runs on the driver's default queue. */
#ifndef ODK_SERIAL_PORT_INTERNAL_H
#define ODK_SERIAL_PORT_INTERNAL_H

#include <stdbool.h>

#include "odk/serial.h"

/* ---- port.c, for the terminal ---------------------------------------- */

/* Applies a line through the driver's callbacks and records it
 * (program_uart / program_baud / program_flow_control as needed). */
int serial_port_apply_line(odk_serial_port *p, const odk_serial_line *nl);
/* program_mcr, then records DTR and RTS. */
int serial_port_set_mcr(odk_serial_port *p, bool dtr, bool rts);
/* get_modem_status; ODK_E_UNSUPPORTED when the driver has none. */
int serial_port_modem_status(odk_serial_port *p, bool *cts, bool *dsr, bool *ri, bool *dcd);
/* send_break; ODK_E_UNSUPPORTED when the driver has none. */
int serial_port_break(odk_serial_port *p, bool on);
/* Empties the chosen rings, then reset_fifo. */
void serial_port_flush(odk_serial_port *p, bool tx, bool rx);
/* The driver's callbacks. */
const odk_serial_ops *serial_port_ops(const odk_serial_port *p);
/* True while an app's data client owns the byte stream. */
bool serial_port_has_data_client(const odk_serial_port *p);

/* ---- cuse.c ----------------------------------------------------------- */

struct cuse_port;

/* Runs a CUSE session for p on the /dev/cuse descriptor fd (taken over,
 * closed on failure too): answers CUSE_INIT so the kernel makes
 * /dev/DEVNAME, then serves opens, reads, writes, polls and tty ioctls on
 * the driver's queue.  BLOCKS until the kernel acknowledged the device (at
 * most CUSE_INIT_TIMEOUT_MS).  Errors: ODK_E_NOMEM, ODK_E_IO (libfuse
 * refused, or no CUSE_INIT came). */
int cuse_port_open(odk_serial_port *p, int fd, const char *devname, struct cuse_port **out);
/* The RX ring has new bytes: take them through the line discipline. */
void cuse_port_rx(struct cuse_port *c);
/* The TX ring has room again: resume blocked writers and drains. */
void cuse_port_tx_space(struct cuse_port *c);
/* Modem inputs may have changed: recount, wake TIOCMIWAIT and pollers. */
void cuse_port_modem(struct cuse_port *c);
/* The app changed the line (SET_LINE): termios follows, so TCGETS agrees. */
void cuse_port_line_changed(struct cuse_port *c);
/* Hangs up every program on the device (reads end, writes fail with EIO,
 * polls see POLLHUP), ends the session (the kernel removes /dev/DEVNAME)
 * and frees c.  NULL is allowed. */
void cuse_port_close(struct cuse_port *c);

#endif
