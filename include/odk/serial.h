/* SPDX-License-Identifier: MIT */
/* odk/serial.h — the serial family: a driver that becomes a real terminal.
 *
 * Modelled on DriverKit's IOUserSerial, so a DriverKit serial driver ports
 * callback by callback (docs/serial.md has the table).  A driver creates a
 * port in its start; the family then
 *   - publishes a port node (class IOSerialBSDClient) under the driver,
 *   - gets a terminal from odkd (a pseudo-terminal, or with the
 *     personality's "kind" "cuse" or "auto" a CUSE character device whose
 *     tty ioctls the family answers itself), with DEVDIR/tty.NAME-N and
 *     DEVDIR/cu.NAME-N links (NAME from the personality's IOTTYBaseName,
 *     default "serial"; N from IOTTYSuffix, else the instance number),
 *   - moves bytes between the terminal and two rings, and turns a terminal
 *     program's settings (tcsetattr, tcflush) into the callbacks below.
 *
 * The rings (odk/ring.h) live in one shared-memory block:
 *   TX ring  terminal/app -> driver.  The family produces (advances head),
 *            the driver consumes (advances tail), then calls
 *            odk_serial_tx_free_space_available().
 *   RX ring  driver -> terminal/app.  The driver produces, then calls
 *            odk_serial_rx_data_available(); the family consumes.
 * The family calls tx_data_available when the TX ring got data and
 * rx_free_space_available when it made room in the RX ring.  Nothing is
 * dropped: a full TX ring stops the family reading the terminal (writers
 * block, or get EAGAIN), a full RX ring is the driver's cue to stop and
 * keep what it holds until rx_free_space_available, where it must resume
 * moving data: nothing else calls it back (a callback that only logs
 * stalls the port for good).
 *
 * Every callback runs on the driver's default queue, as do the functions
 * here: call them only from there.  Only create and destroy block (on odkd).
 */
#ifndef ODK_SERIAL_H
#define ODK_SERIAL_H

#include "odk/export.h"

#include <stdbool.h>
#include <stdint.h>

#include "odk/driver.h"
#include "odk/ring.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odk_serial_port odk_serial_port;

typedef enum odk_serial_parity {
    ODK_PARITY_NONE = 0,
    ODK_PARITY_ODD = 1,
    ODK_PARITY_EVEN = 2,
    ODK_PARITY_MARK = 3,
    ODK_PARITY_SPACE = 4,
} odk_serial_parity;

/* Flow-control flags. */
#define ODK_FLOW_RTS_CTS 0x1u      /* hardware handshake (CRTSCTS) */
#define ODK_FLOW_XON_XOFF_OUT 0x2u /* the device's XOFF pauses our output (IXON) */
#define ODK_FLOW_XON_XOFF_IN 0x4u  /* we send XOFF when our input is full (IXOFF) */

typedef struct odk_serial_line {
    uint32_t baud;
    uint8_t data_bits; /* 5..8 */
    uint8_t stop_bits; /* 1 or 2 */
    odk_serial_parity parity;
    uint32_t flow;     /* ODK_FLOW_* */
    uint8_t xon, xoff; /* flow-control characters (VSTART, VSTOP) */
    bool dtr, rts;     /* modem control outputs */
} odk_serial_line;

/* What the driver implements.  Only tx_data_available and
 * rx_free_space_available are required; a missing callback means the
 * setting is accepted and only recorded (send_break and get_modem_status
 * then answer ODK_E_UNSUPPORTED). */
typedef struct odk_serial_ops {
    /* hwActivate / hwDeactivate: the port comes up / goes down. */
    int (*activate)(odk_serial_port *port);
    void (*deactivate)(odk_serial_port *port);
    /* hwProgramUART: all line settings at once (half_stop_bits: 2 = 1 stop
     * bit, 3 = 1.5 (two asked for with 5 data bits, as a 16550 does), 4 = 2). */
    int (*program_uart)(odk_serial_port *port, uint32_t baud, uint8_t data_bits,
                        uint8_t half_stop_bits, odk_serial_parity parity);
    /* hwProgramBaudRate: only the speed changed. */
    int (*program_baud)(odk_serial_port *port, uint32_t baud);
    /* hwProgramMCR: modem control outputs.  Called once after activate
     * with the initial state (DTR and RTS on), then on every change. */
    int (*program_mcr)(odk_serial_port *port, bool dtr, bool rts);
    /* hwGetModemStatus: modem control inputs. */
    int (*get_modem_status)(odk_serial_port *port, bool *cts, bool *dsr, bool *ri, bool *dcd);
    /* hwProgramFlowControl. */
    int (*program_flow_control)(odk_serial_port *port, uint32_t flow, uint8_t xon, uint8_t xoff);
    /* hwSendBreak. */
    int (*send_break)(odk_serial_port *port, bool on);
    /* hwResetFIFO: drop what the hardware holds (the family already emptied the rings). */
    int (*reset_fifo)(odk_serial_port *port, bool tx, bool rx);
    /* TxDataAvailable: the TX ring has new bytes. */
    void (*tx_data_available)(odk_serial_port *port);
    /* RxFreeSpaceAvailable: the family consumed from the RX ring.  A
     * driver that stopped for lack of room in RX resumes moving data here;
     * nothing else will call it back. */
    void (*rx_free_space_available)(odk_serial_port *port);
} odk_serial_ops;

typedef struct odk_serial_config {
    uint32_t tx_ring_size; /* power of two; 0: 64 KiB */
    uint32_t rx_ring_size; /* power of two; 0: 64 KiB */
    const char *base_name; /* NULL: the personality's IOTTYBaseName, else "serial" */
    const char *suffix;    /* NULL: the personality's IOTTYSuffix, else the instance */
} odk_serial_config;

/* Creates a port for drv (call in start): publishes its node, gets its
 * terminal from odkd, then calls ops->activate.  BLOCKS on odkd's replies.
 * drv, ops, ctx and cfg's strings are borrowed (ops and ctx for the port's
 * life); cfg may be NULL.  *out is owned by the driver, who destroys it in
 * stop.  Errors: ODK_E_INVALID (drv, ops, out or a required op NULL; a ring
 * size not a power of two in ODK_RING_MIN_SIZE..ODK_RING_MAX_SIZE; odkd
 * refused the base name or suffix), ODK_E_NOMEM, ODK_E_IO (memfd, epoll,
 * timerfd or the tty links failed), ODK_E_DISCONNECTED (odkd gone),
 * ODK_E_ACCESS, ODK_E_EXISTS (a tty./cu. link of that name exists),
 * ODK_E_PROTOCOL (odkd's reply lacked the terminal), or what activate
 * returned. */
ODK_PUBLIC int odk_serial_port_create(odk_driver *drv, const odk_serial_ops *ops, void *ctx,
                                      const odk_serial_config *cfg, odk_serial_port **out);
/* Deactivates the port, withdraws its node (the terminal hangs up and the
 * links disappear; BLOCKS on odkd) and frees it.  NULL is allowed. */
ODK_PUBLIC void odk_serial_port_destroy(odk_serial_port *port);

/* Accessors: never fail, never block; port must not be NULL.  Pointers are
 * borrowed until odk_serial_port_destroy. */
ODK_PUBLIC void *odk_serial_port_ctx(const odk_serial_port *port);
ODK_PUBLIC odk_driver *odk_serial_port_driver(const odk_serial_port *port);
/* The port's registry node, and its terminal's name ("serial-1"). */
ODK_PUBLIC uint64_t odk_serial_port_node(const odk_serial_port *port);
ODK_PUBLIC const char *odk_serial_port_name(const odk_serial_port *port);
/* Current line settings (updated whenever the app or terminal changes them). */
ODK_PUBLIC const odk_serial_line *odk_serial_port_line(const odk_serial_port *port);

/* The rings: the driver consumes tx, produces rx (odk/ring.h). */
ODK_PUBLIC odk_ring *odk_serial_tx_ring(odk_serial_port *port);
ODK_PUBLIC odk_ring *odk_serial_rx_ring(odk_serial_port *port);
/* RxDataAvailable: the driver produced into the RX ring (the family moves
 * the bytes to the terminal or to a data client).  Never fails or blocks. */
ODK_PUBLIC void odk_serial_rx_data_available(odk_serial_port *port);
/* TxFreeSpaceAvailable: the driver consumed from the TX ring (the family
 * reads the terminal again).  Never fails or blocks. */
ODK_PUBLIC void odk_serial_tx_free_space_available(odk_serial_port *port);

/* SetModemStatus: the driver's modem inputs (CTS, DSR, RI, DCD) changed.
 * The family asks get_modem_status again, counts the changes (TIOCGICOUNT)
 * and wakes programs in TIOCMIWAIT or poll.  The family also asks after
 * every program_mcr, so a loopback whose inputs follow its outputs need
 * not call it.  Never fails or blocks. */
ODK_PUBLIC void odk_serial_modem_status_changed(odk_serial_port *port);

/* How long one character takes on the line at the current settings, in
 * nanoseconds: start bit, data bits, parity bit, stop bits (1.5 for two
 * with 5 data bits), at the baud rate; 0 when the baud rate is 0.  For
 * drivers that pace bytes like hardware.  Never fails or blocks. */
ODK_PUBLIC uint64_t odk_serial_char_ns(const odk_serial_port *port);

/* ---- the port's user client (apps without a tty, story 24) ------------- */

/* Open types: control only (line settings, modem lines), or data too.  A
 * data client takes the byte stream from the terminal while it is open;
 * only one at a time (ODK_E_BUSY). */
#define ODK_SERIAL_CLIENT_CONTROL 0u
#define ODK_SERIAL_CLIENT_DATA 1u

enum odk_serial_selector {
    ODK_SERIAL_WRITE = 0,      /* struct in: bytes -> scalar out: bytes accepted */
    ODK_SERIAL_READ = 1,       /* struct out (variable): bytes read, possibly 0 */
    ODK_SERIAL_SET_LINE = 2,   /* scalars in: baud, data bits, stop bits, parity, flow, xon, xoff */
    ODK_SERIAL_GET_LINE = 3,   /* scalars out: the same 7 values, then dtr, rts */
    ODK_SERIAL_SET_MODEM = 4,  /* scalars in: dtr, rts */
    ODK_SERIAL_GET_MODEM = 5,  /* scalars out: cts, dsr, ri, dcd */
    ODK_SERIAL_SEND_BREAK = 6, /* scalar in: 1 = on, 0 = off */
    ODK_SERIAL_FLUSH = 7,      /* scalars in: tx, rx */
    /* Asynchronous (odk_connection_call_async), so an app waits for the
     * port instead of polling (its connection's fd is pollable): */
    ODK_SERIAL_READ_WAIT = 8,  /* data client: struct out (variable): the bytes there are,
                                  as soon as there are any (one waiting read a port) */
    ODK_SERIAL_WAIT_MODEM = 9, /* scalars out: cts, dsr, ri, dcd, once they differ from
                                  what they were when the call came (TIOCMIWAIT) */
};

#ifdef __cplusplus
}
#endif
#endif
