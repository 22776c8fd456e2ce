/* SPDX-License-Identifier: MIT */
/* serial-loopback: a serial port whose far end is a wire from TX to RX.
 * Every byte a terminal writes comes back to it; line settings are logged.
 *
 * This is the whole data path of a serial driver in one function: take
 * bytes from the TX ring, give bytes to the RX ring, and tell the family
 * about both.  A real UART driver does the same with its hardware FIFO in
 * the middle.  docs/serial.md explains the rings and callbacks.
 *
 * With "PaceAtBaud" (a device or personality property) the wire takes as
 * long as a real one: each byte comes back one character time after the
 * previous one (start, data, parity and stop bits at the baud rate). */
#include <string.h>
#include <time.h>

#include "odk/serial.h"

struct loopback {
    odk_serial_port *port;
    bool pace;
    bool dtr, rts;    /* what program_mcr was told: the plug wires them back */
    uint64_t free_at; /* pacing: when the wire is free for the next byte */
    bool waiting;     /* pacing: bytes wait for the wire */
    odk_timer *timer;
    odk_action *resume;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Pacing: how many of want bytes have finished crossing the wire by now.
 * When some must wait, the timer calls move again when the next is over. */
static size_t paced(struct loopback *s, size_t want)
{
    uint64_t ch = odk_serial_char_ns(s->port), now = now_ns();
    if (!s->pace || !ch || !want)
        return want;
    if (!s->waiting && s->free_at < now)
        s->free_at = now; /* an idle wire saves up no time */
    size_t n = 0;
    while (n < want && s->free_at + ch <= now) {
        s->free_at += ch;
        n++;
    }
    s->waiting = n < want; /* bytes are on the wire: their time counts from free_at */
    if (s->waiting)
        odk_timer_arm(s->timer, s->free_at + ch - now, 0);
    return n;
}

/* Moves as much as both rings allow: what TX holds, up to what RX can take.
 * When RX is full we simply stop; the family calls rx_free_space_available
 * once the terminal has read, and we continue.  Nothing is dropped. */
static void move(odk_serial_port *p)
{
    struct loopback *s = odk_serial_port_ctx(p);
    odk_ring *tx = odk_serial_tx_ring(p), *rx = odk_serial_rx_ring(p);
    size_t readable = odk_ring_readable(tx), writable = odk_ring_writable(rx);
    size_t budget = paced(s, readable < writable ? readable : writable);
    size_t moved = 0;
    while (moved < budget) {
        struct iovec from[2], to[2];
        int nf = odk_ring_read_segments(tx, from);
        int nt = odk_ring_write_segments(rx, to);
        if (nf <= 0 || nt <= 0)
            break;
        size_t n = from[0].iov_len < to[0].iov_len ? from[0].iov_len : to[0].iov_len;
        if (n > budget - moved)
            n = budget - moved;
        memcpy(to[0].iov_base, from[0].iov_base, n);
        odk_ring_commit(rx, n);
        odk_ring_consume(tx, n);
        moved += n;
    }
    if (moved) {
        odk_serial_rx_data_available(p);
        odk_serial_tx_free_space_available(p);
    }
}

static int lb_activate(odk_serial_port *p)
{
    odk_info("port %s active", odk_serial_port_name(p));
    return ODK_OK;
}

static void lb_deactivate(odk_serial_port *p)
{
    odk_info("port %s inactive", odk_serial_port_name(p));
}

static int lb_program_uart(odk_serial_port *p, uint32_t baud, uint8_t data_bits,
                           uint8_t half_stop_bits, odk_serial_parity parity)
{
    static const char parity_letter[] = "NOEMS";
    odk_info("line: %u %u%c%s", baud, data_bits, parity_letter[parity % 5],
             half_stop_bits == 4 ? "2" : half_stop_bits == 3 ? "1.5" : "1");
    return ODK_OK;
}

static int lb_program_baud(odk_serial_port *p, uint32_t baud)
{
    odk_info("baud: %u", baud);
    return ODK_OK;
}

static int lb_program_flow(odk_serial_port *p, uint32_t flow, uint8_t xon, uint8_t xoff)
{
    odk_info("flow control:%s%s%s (xon 0x%02x, xoff 0x%02x)", flow ? "" : " none",
             flow & ODK_FLOW_RTS_CTS ? " rts-cts" : "",
             flow & (ODK_FLOW_XON_XOFF_IN | ODK_FLOW_XON_XOFF_OUT) ? " xon-xoff" : "", xon, xoff);
    return ODK_OK;
}

static int lb_program_mcr(odk_serial_port *p, bool dtr, bool rts)
{
    struct loopback *s = odk_serial_port_ctx(p);
    s->dtr = dtr;
    s->rts = rts;
    odk_info("modem control: DTR %s, RTS %s", dtr ? "on" : "off", rts ? "on" : "off");
    return ODK_OK;
}

/* A loopback plug wires RTS to CTS and DTR to DSR and DCD. */
static int lb_modem_status(odk_serial_port *p, bool *cts, bool *dsr, bool *ri, bool *dcd)
{
    struct loopback *s = odk_serial_port_ctx(p);
    *cts = s->rts;
    *dsr = *dcd = s->dtr;
    *ri = false;
    return ODK_OK;
}

static int lb_send_break(odk_serial_port *p, bool on)
{
    odk_info("break %s", on ? "on" : "off");
    return ODK_OK;
}

static int lb_reset_fifo(odk_serial_port *p, bool tx, bool rx)
{
    odk_info("reset FIFOs:%s%s", tx ? " tx" : "", rx ? " rx" : "");
    return ODK_OK;
}

static const odk_serial_ops loopback_ops = {
    .activate = lb_activate,
    .deactivate = lb_deactivate,
    .program_uart = lb_program_uart,
    .program_baud = lb_program_baud,
    .program_mcr = lb_program_mcr,
    .get_modem_status = lb_modem_status,
    .program_flow_control = lb_program_flow,
    .send_break = lb_send_break,
    .reset_fifo = lb_reset_fifo,
    .tx_data_available = move,
    .rx_free_space_available = move,
};

static void lb_resume(void *ctx, odk_action *a)
{
    struct loopback *s = ctx;
    if (s->port)
        move(s->port);
}

static int lb_start(odk_driver *drv)
{
    struct loopback *s = odk_driver_state(drv);
    const odk_value *dev = odk_driver_provider_properties(drv);
    /* Ring sizes may come from the device ("ring_size"), so tests can run
     * the same driver with tiny and large rings. */
    uint32_t ring = (uint32_t)odk_dict_get_int(dev, "ring_size", 0);
    s->pace = odk_dict_get_bool(dev, "PaceAtBaud",
                                odk_dict_get_bool(odk_driver_personality(drv), "PaceAtBaud", false));
    int st = odk_timer_create(odk_driver_queue(drv), &s->timer);
    if (st == ODK_OK)
        st = odk_action_create(odk_driver_queue(drv), lb_resume, s, &s->resume);
    if (st == ODK_OK)
        st = odk_timer_set_handler(s->timer, s->resume);
    if (st < 0)
        return st;
    odk_serial_config cfg = {.tx_ring_size = ring, .rx_ring_size = ring};
    st = odk_serial_port_create(drv, &loopback_ops, s, &cfg, &s->port);
    if (st < 0)
        return st;
    return odk_driver_register_service(drv);
}

static void lb_stop(odk_driver *drv)
{
    struct loopback *s = odk_driver_state(drv);
    if (s->timer) {
        odk_timer_cancel(s->timer, NULL, NULL);
        odk_release(s->timer);
        s->timer = NULL;
    }
    if (s->resume) {
        odk_action_cancel(s->resume);
        odk_release(s->resume);
        s->resume = NULL;
    }
    odk_serial_port_destroy(s->port);
    s->port = NULL;
}

static const odk_driver_class loopback_class = {
    .name = "SerialLoopback",
    .state_size = sizeof(struct loopback),
    .start = lb_start,
    .stop = lb_stop,
};

ODK_DRIVER_CLASS(loopback_class);
