/* SPDX-License-Identifier: MIT */
/* serial-uart: a test driver shaped like a port over real hardware, the
 * way DriverKit serial drivers are written (tests/integration/test_serial.py).
 *
 *  - Bytes pass through a small "hardware FIFO" of its own between the TX
 *    ring and the RX ring, as a UART's would.  When the RX ring is full it
 *    stops moving, keeping what the FIFO holds; rx_free_space_available is
 *    where it resumes.  A driver whose rx_free_space_available only logs
 *    (as many DriverKit ports' RxFreeSpaceAvailable do) stalls for good
 *    the first time a reader falls behind; with the 2 KiB rings this
 *    driver asks for, that is within the first few KiB.
 *  - It keeps the modem control outputs it was told in program_mcr (as a
 *    driver keeps them in its HwProgramMCR) and answers get_modem_status
 *    from them, as a loopback plug would: CTS = RTS, DSR = DCD = DTR.  So
 *    it reports the lines right only if the family told it the initial
 *    DTR/RTS.  What it was told also goes on the port node, as DriverDTR,
 *    DriverRTS and DriverMCRCalls.
 *
 * At stop it logs how many bytes it moved and how often
 * rx_free_space_available resumed a stopped transfer. */
#include <string.h>

#include "odk/serial.h"

#define RING_SIZE 2048u
#define FIFO_SIZE 64u

struct uart {
    odk_serial_port *port;
    uint8_t fifo[FIFO_SIZE];
    size_t fifo_len;
    bool dtr, rts; /* what program_mcr said last */
    unsigned mcr_calls;
    bool stalled; /* stopped for lack of room in the RX ring */
    unsigned long long moved, resumes;
};

static struct uart *uart_of(odk_serial_port *p)
{
    return odk_serial_port_ctx(p);
}

/* FIFO -> RX ring, as much as fits; true when the FIFO emptied. */
static bool drain_fifo(struct uart *u, odk_ring *rx, bool *moved)
{
    while (u->fifo_len) {
        struct iovec to[2];
        if (odk_ring_write_segments(rx, to) <= 0)
            return false;
        size_t n = u->fifo_len < to[0].iov_len ? u->fifo_len : to[0].iov_len;
        memcpy(to[0].iov_base, u->fifo, n);
        odk_ring_commit(rx, n);
        memmove(u->fifo, u->fifo + n, u->fifo_len - n);
        u->fifo_len -= n;
        u->moved += n;
        *moved = true;
    }
    return true;
}

/* TX ring -> FIFO; true when anything was taken. */
static bool fill_fifo(struct uart *u, odk_ring *tx)
{
    struct iovec from[2];
    if (u->fifo_len == FIFO_SIZE || odk_ring_read_segments(tx, from) <= 0)
        return false;
    size_t room = FIFO_SIZE - u->fifo_len;
    size_t n = from[0].iov_len < room ? from[0].iov_len : room;
    memcpy(u->fifo + u->fifo_len, from[0].iov_base, n);
    odk_ring_consume(tx, n);
    u->fifo_len += n;
    return true;
}

static void move(odk_serial_port *p)
{
    struct uart *u = uart_of(p);
    odk_ring *tx = odk_serial_tx_ring(p), *rx = odk_serial_rx_ring(p);
    bool to_rx = false, from_tx = false;
    for (;;) {
        if (!drain_fifo(u, rx, &to_rx)) {
            u->stalled = true; /* rx_free_space_available resumes */
            break;
        }
        u->stalled = false;
        if (!fill_fifo(u, tx))
            break;
        from_tx = true;
    }
    if (to_rx)
        odk_serial_rx_data_available(p);
    if (from_tx)
        odk_serial_tx_free_space_available(p);
}

static void uart_tx_data_available(odk_serial_port *p)
{
    move(p);
}

/* The family consumed from the RX ring: the place to resume a transfer
 * that stopped for lack of room. */
static void uart_rx_free_space_available(odk_serial_port *p)
{
    struct uart *u = uart_of(p);
    if (u->stalled)
        u->resumes++;
    move(p);
}

static void publish_mcr(odk_serial_port *p)
{
    struct uart *u = uart_of(p);
    odk_driver *drv = odk_serial_port_driver(p);
    uint64_t node = odk_serial_port_node(p);
    odk_driver_set_node_property(drv, node, "DriverDTR", odk_value_new_bool(u->dtr));
    odk_driver_set_node_property(drv, node, "DriverRTS", odk_value_new_bool(u->rts));
    odk_driver_set_node_property(drv, node, "DriverMCRCalls", odk_value_new_int(u->mcr_calls));
}

static int uart_program_mcr(odk_serial_port *p, bool dtr, bool rts)
{
    struct uart *u = uart_of(p);
    u->dtr = dtr;
    u->rts = rts;
    u->mcr_calls++;
    odk_info("program_mcr: DTR %s, RTS %s", dtr ? "on" : "off", rts ? "on" : "off");
    publish_mcr(p);
    return ODK_OK;
}

static int uart_modem_status(odk_serial_port *p, bool *cts, bool *dsr, bool *ri, bool *dcd)
{
    struct uart *u = uart_of(p);
    *cts = u->rts;
    *dsr = *dcd = u->dtr;
    *ri = false;
    return ODK_OK;
}

static int uart_reset_fifo(odk_serial_port *p, bool tx, bool rx)
{
    struct uart *u = uart_of(p);
    if (tx || rx)
        u->fifo_len = 0;
    return ODK_OK;
}

static const odk_serial_ops uart_ops = {
    .program_mcr = uart_program_mcr,
    .get_modem_status = uart_modem_status,
    .reset_fifo = uart_reset_fifo,
    .tx_data_available = uart_tx_data_available,
    .rx_free_space_available = uart_rx_free_space_available,
};

static int uart_start(odk_driver *drv)
{
    struct uart *u = odk_driver_state(drv);
    odk_serial_config cfg = {.tx_ring_size = RING_SIZE, .rx_ring_size = RING_SIZE};
    int st = odk_serial_port_create(drv, &uart_ops, u, &cfg, &u->port);
    if (st < 0)
        return st;
    return odk_driver_register_service(drv);
}

static void uart_stop(odk_driver *drv)
{
    struct uart *u = odk_driver_state(drv);
    odk_info("moved %llu bytes; rx_free_space_available resumed %llu stalled transfers",
             u->moved, u->resumes);
    odk_serial_port_destroy(u->port);
    u->port = NULL;
}

static const odk_driver_class uart_class = {
    .name = "SerialUart",
    .state_size = sizeof(struct uart),
    .start = uart_start,
    .stop = uart_stop,
};

ODK_DRIVER_CLASS(uart_class);
