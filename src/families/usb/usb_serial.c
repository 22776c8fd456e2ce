/* SPDX-License-Identifier: MIT */
/* usb_serial.c — a serial port over a USB device's bulk pipes
 * (odk/usb_serial.h).
 *
 * RX: in_flight bulk-IN transfers are kept queued, each into a buffer of
 * its own.  A finished one is unframed, written into the RX ring, and
 * queued again; when the ring is full, the buffer waits with what is left
 * until the family says it made room (rx_free_space_available), so no byte
 * is dropped and the device is simply not read (it NAKs, as a UART's FIFO
 * would fill).  TX: up to TX_IN_FLIGHT bulk-OUT transfers, each carrying
 * what the TX ring holds, up to transfer_size.  Everything runs on the
 * driver's default queue, so there is no lock. */
#include <stdlib.h>
#include <string.h>

#include "odk/log.h"
#include "odk/status.h"
#include "odk/usb_serial.h"

#define DEFAULT_TRANSFER (16u * 1024u)
#define DEFAULT_IN_FLIGHT 4u
#define MAX_IN_FLIGHT 16u
#define TX_IN_FLIGHT 2u
#define NOTIFY_SIZE 64u

struct rx_buf {
    odk_usb_serial *s;
    odk_memory *mem;
    uint8_t *data;
    size_t have, off; /* payload bytes waiting for the ring, and where */
    bool queued;
};

struct tx_buf {
    odk_usb_serial *s;
    odk_memory *mem;
    uint8_t *data;
    bool busy;
};

struct odk_usb_serial {
    odk_driver *drv;
    const odk_usb_serial_ops *ops;
    void *ctx;
    odk_serial_port *port;
    odk_usb_pipe *in, *out, *notify;
    uint32_t size;
    unsigned n_rx;
    struct rx_buf rx[MAX_IN_FLIGHT];
    /* Finished buffers the RX ring had no room for, oldest first: bytes
     * reach the ring in the order the device sent them. */
    struct rx_buf *waiting[MAX_IN_FLIGHT];
    unsigned n_waiting;
    bool draining;
    struct tx_buf tx[TX_IN_FLIGHT];
    odk_memory *notify_mem;
    uint8_t *notify_data;
    bool active, gone;
    bool cts, dsr, ri, dcd;
};

static void rx_queue(struct rx_buf *b);
static void tx_pump(odk_usb_serial *s);

/* ---- RX ------------------------------------------------------------------ */

/* Moves what b holds into the RX ring; true when it is empty now. */
static bool rx_deliver(struct rx_buf *b)
{
    odk_usb_serial *s = b->s;
    if (!b->have)
        return true;
    size_t done = 0;
    odk_ring_write(odk_serial_rx_ring(s->port), b->data + b->off, b->have, &done);
    b->off += done;
    b->have -= done;
    if (done)
        odk_serial_rx_data_available(s->port);
    return b->have == 0;
}

static void rx_done(void *ctx, int status, uint32_t actual, uint64_t ts)
{
    (void)ts;
    struct rx_buf *b = ctx;
    odk_usb_serial *s = b->s;
    b->queued = false;
    if (!s->active)
        return;
    if (status == ODK_E_GONE) {
        s->gone = true;
        return;
    }
    if (status == ODK_E_STALL) {
        odk_warn("usb-serial: bulk IN stalled; clearing it");
        odk_usb_pipe_clear_stall(s->in);
    } else if (status < 0 && status != ODK_E_CANCELLED) {
        odk_warn("usb-serial: bulk IN: %s", odk_strerror(status));
    }
    if (status == ODK_OK) {
        size_t n = actual;
        if (s->ops->rx_unframe)
            n = s->ops->rx_unframe(s, b->data, n);
        b->off = 0;
        b->have = n;
        if (s->n_waiting || !rx_deliver(b)) {
            s->waiting[s->n_waiting++] = b; /* until rx_free_space_available */
            return;
        }
    }
    if (status != ODK_E_CANCELLED)
        rx_queue(b);
}

static void rx_queue(struct rx_buf *b)
{
    odk_usb_serial *s = b->s;
    if (b->queued || !s->active || s->gone)
        return;
    int st = odk_usb_pipe_async_io(s->in, b->mem, 0, s->size, 0xffffffffu, rx_done, b);
    if (st == ODK_OK)
        b->queued = true;
    else if (st == ODK_E_GONE)
        s->gone = true;
    else
        odk_warn("usb-serial: cannot queue a bulk-IN transfer: %s", odk_strerror(st));
}

/* The family consumed from the RX ring: finish the buffers that waited. */
static void rx_free_space_available(odk_serial_port *port)
{
    odk_usb_serial *s = odk_serial_port_ctx(port);
    /* rx_deliver tells the family, which may consume at once and call
     * here again: the outer call finishes the work. */
    if (s->draining)
        return;
    s->draining = true;
    while (s->n_waiting) {
        struct rx_buf *b = s->waiting[0];
        if (!rx_deliver(b))
            break; /* still full */
        s->n_waiting--;
        memmove(s->waiting, s->waiting + 1, s->n_waiting * sizeof s->waiting[0]);
        rx_queue(b);
    }
    s->draining = false;
}

/* ---- TX ------------------------------------------------------------------ */

static void tx_done(void *ctx, int status, uint32_t actual, uint64_t ts)
{
    (void)actual, (void)ts;
    struct tx_buf *b = ctx;
    odk_usb_serial *s = b->s;
    b->busy = false;
    if (status == ODK_E_GONE)
        s->gone = true;
    else if (status == ODK_E_STALL)
        odk_usb_pipe_clear_stall(s->out);
    else if (status < 0 && status != ODK_E_CANCELLED)
        odk_warn("usb-serial: bulk OUT: %s", odk_strerror(status));
    if (s->active)
        tx_pump(s);
}

static void tx_pump(odk_usb_serial *s)
{
    odk_ring *ring = odk_serial_tx_ring(s->port);
    for (unsigned i = 0; i < TX_IN_FLIGHT && s->active && !s->gone; i++) {
        struct tx_buf *b = &s->tx[i];
        if (b->busy)
            continue;
        size_t n = 0;
        odk_ring_read(ring, b->data, s->size, &n);
        if (!n)
            return;
        odk_serial_tx_free_space_available(s->port);
        int st = odk_usb_pipe_async_io(s->out, b->mem, 0, (uint32_t)n, 0, tx_done, b);
        if (st == ODK_OK)
            b->busy = true;
        else if (st == ODK_E_GONE)
            s->gone = true;
        else
            odk_warn("usb-serial: cannot queue a bulk-OUT transfer: %s", odk_strerror(st));
    }
}

static void tx_data_available(odk_serial_port *port)
{
    tx_pump(odk_serial_port_ctx(port));
}

/* ---- the interrupt endpoint ---------------------------------------------- */

static void notify_queue(odk_usb_serial *s);

static void notify_done(void *ctx, int status, uint32_t actual, uint64_t ts)
{
    (void)ts;
    odk_usb_serial *s = ctx;
    if (status == ODK_E_GONE)
        s->gone = true;
    if (!s->active || status == ODK_E_GONE || status == ODK_E_CANCELLED)
        return;
    if (status == ODK_OK && s->ops->notification)
        s->ops->notification(s, s->notify_data, actual);
    notify_queue(s);
}

static void notify_queue(odk_usb_serial *s)
{
    if (s->notify && s->active && !s->gone)
        odk_usb_pipe_async_io(s->notify, s->notify_mem, 0, NOTIFY_SIZE, 0xffffffffu, notify_done,
                              s);
}

/* ---- the serial family's callbacks --------------------------------------- */

static int activate(odk_serial_port *port)
{
    odk_usb_serial *s = odk_serial_port_ctx(port);
    s->port = port;
    const odk_serial_line *l = odk_serial_port_line(port);
    int st = s->ops->set_line(s, l);
    if (st == ODK_OK)
        st = s->ops->set_modem(s, l->dtr, l->rts);
    if (st < 0)
        return st;
    s->active = true;
    for (unsigned i = 0; i < s->n_rx; i++)
        rx_queue(&s->rx[i]);
    notify_queue(s);
    tx_pump(s);
    return ODK_OK;
}

static void deactivate(odk_serial_port *port)
{
    odk_usb_serial *s = odk_serial_port_ctx(port);
    s->active = false;
    if (!s->gone) {
        odk_usb_pipe_abort(s->in);
        odk_usb_pipe_abort(s->out);
        if (s->notify)
            odk_usb_pipe_abort(s->notify);
    }
}

static int program_uart(odk_serial_port *port, uint32_t baud, uint8_t data_bits,
                        uint8_t half_stop_bits, odk_serial_parity parity)
{
    odk_usb_serial *s = odk_serial_port_ctx(port);
    odk_serial_line l = *odk_serial_port_line(port);
    l.baud = baud;
    l.data_bits = data_bits;
    l.stop_bits = (uint8_t)(half_stop_bits / 2);
    l.parity = parity;
    return s->ops->set_line(s, &l);
}

static int program_baud(odk_serial_port *port, uint32_t baud)
{
    odk_usb_serial *s = odk_serial_port_ctx(port);
    odk_serial_line l = *odk_serial_port_line(port);
    l.baud = baud;
    return s->ops->set_line(s, &l);
}

static int program_flow_control(odk_serial_port *port, uint32_t flow, uint8_t xon, uint8_t xoff)
{
    odk_usb_serial *s = odk_serial_port_ctx(port);
    odk_serial_line l = *odk_serial_port_line(port);
    l.flow = flow;
    l.xon = xon;
    l.xoff = xoff;
    return s->ops->set_line(s, &l);
}

static int program_mcr(odk_serial_port *port, bool dtr, bool rts)
{
    odk_usb_serial *s = odk_serial_port_ctx(port);
    return s->ops->set_modem(s, dtr, rts);
}

static int get_modem_status(odk_serial_port *port, bool *cts, bool *dsr, bool *ri, bool *dcd)
{
    odk_usb_serial *s = odk_serial_port_ctx(port);
    *cts = s->cts, *dsr = s->dsr, *ri = s->ri, *dcd = s->dcd;
    return ODK_OK;
}

static int send_break(odk_serial_port *port, bool on)
{
    odk_usb_serial *s = odk_serial_port_ctx(port);
    return s->ops->send_break ? s->ops->send_break(s, on) : ODK_E_UNSUPPORTED;
}

static const odk_serial_ops serial_ops = {
    .activate = activate,
    .deactivate = deactivate,
    .program_uart = program_uart,
    .program_baud = program_baud,
    .program_mcr = program_mcr,
    .get_modem_status = get_modem_status,
    .program_flow_control = program_flow_control,
    .send_break = send_break,
    .tx_data_available = tx_data_available,
    .rx_free_space_available = rx_free_space_available,
};

/* ---- life ---------------------------------------------------------------- */

/* The first endpoint of intf's current setting of type, in direction in. */
static uint8_t find_endpoint(odk_usb_interface *intf, odk_usb_transfer_type type, bool in)
{
    const odk_usb_config_descriptor *c = odk_usb_interface_configuration(intf);
    const odk_usb_interface_descriptor *d = odk_usb_interface_descriptor_get(intf);
    for (const odk_usb_endpoint_descriptor *e = NULL; (e = odk_usb_next_endpoint(c, d, e));)
        if (odk_usb_endpoint_type(e) == type && odk_usb_endpoint_is_in(e) == in)
            return e->bEndpointAddress;
    return 0;
}

static int new_buffer(uint32_t size, odk_memory **mem, uint8_t **data)
{
    int st = odk_memory_create(size, ODK_MEM_INOUT, mem);
    if (st == ODK_OK && (st = odk_memory_map(*mem, ODK_MAP_READ | ODK_MAP_WRITE, (void **)data)) < 0) {
        odk_release(*mem);
        *mem = NULL;
    }
    return st;
}

static void free_buffers(odk_usb_serial *s)
{
    for (unsigned i = 0; i < MAX_IN_FLIGHT; i++)
        odk_release(s->rx[i].mem);
    for (unsigned i = 0; i < TX_IN_FLIGHT; i++)
        odk_release(s->tx[i].mem);
    odk_release(s->notify_mem);
}

int odk_usb_serial_create(odk_driver *drv, const odk_usb_serial_config *cfg,
                          const odk_usb_serial_ops *ops, void *ctx, odk_usb_serial **out)
{
    if (!drv || !cfg || !cfg->data || !ops || !ops->set_line || !ops->set_modem || !out)
        return ODK_E_INVALID;
    odk_usb_serial *s = calloc(1, sizeof *s);
    if (!s)
        return ODK_E_NOMEM;
    s->drv = drv;
    s->ops = ops;
    s->ctx = ctx;
    s->size = cfg->transfer_size ? cfg->transfer_size : DEFAULT_TRANSFER;
    s->n_rx = cfg->in_flight ? cfg->in_flight : DEFAULT_IN_FLIGHT;
    if (s->n_rx > MAX_IN_FLIGHT)
        s->n_rx = MAX_IN_FLIGHT;
    uint8_t in = cfg->in_endpoint ? cfg->in_endpoint
                                  : find_endpoint(cfg->data, ODK_USB_TRANSFER_BULK, true);
    uint8_t outp = cfg->out_endpoint ? cfg->out_endpoint
                                     : find_endpoint(cfg->data, ODK_USB_TRANSFER_BULK, false);
    int st = odk_usb_interface_copy_pipe(cfg->data, in, &s->in);
    if (st == ODK_OK)
        st = odk_usb_interface_copy_pipe(cfg->data, outp, &s->out);
    if (st == ODK_OK && cfg->notify) {
        uint8_t n = cfg->notify_endpoint
                        ? cfg->notify_endpoint
                        : find_endpoint(cfg->notify, ODK_USB_TRANSFER_INTERRUPT, true);
        st = odk_usb_interface_copy_pipe(cfg->notify, n, &s->notify);
        if (st == ODK_OK)
            st = new_buffer(NOTIFY_SIZE, &s->notify_mem, &s->notify_data);
    }
    for (unsigned i = 0; st == ODK_OK && i < s->n_rx; i++) {
        s->rx[i].s = s;
        st = new_buffer(s->size, &s->rx[i].mem, &s->rx[i].data);
    }
    for (unsigned i = 0; st == ODK_OK && i < TX_IN_FLIGHT; i++) {
        s->tx[i].s = s;
        st = new_buffer(s->size, &s->tx[i].mem, &s->tx[i].data);
    }
    odk_serial_port *port = NULL;
    if (st == ODK_OK)
        st = odk_serial_port_create(drv, &serial_ops, s, cfg->port, &port);
    if (st < 0) {
        odk_usb_pipe_release(s->in);
        odk_usb_pipe_release(s->out);
        odk_usb_pipe_release(s->notify);
        free_buffers(s);
        free(s);
        return st;
    }
    s->port = port;
    *out = s;
    return ODK_OK;
}

static void free_later(void *ctx)
{
    odk_usb_serial *s = ctx;
    free_buffers(s);
    free(s);
}

void odk_usb_serial_destroy(odk_usb_serial *s)
{
    if (!s)
        return;
    odk_serial_port_destroy(s->port); /* deactivates: the pipes stop */
    s->active = false;
    /* Releasing the pipes aborts what is left; the aborted transfers'
     * completions are queued on the driver's queue by the time the abort
     * returns, so the state they point to is freed after them. */
    odk_usb_pipe_release(s->in);
    odk_usb_pipe_release(s->out);
    odk_usb_pipe_release(s->notify);
    if (odk_queue_dispatch_async(odk_driver_queue(s->drv), free_later, s) < 0)
        free_later(s);
}

void *odk_usb_serial_ctx(odk_usb_serial *s)
{
    return s ? s->ctx : NULL;
}

odk_serial_port *odk_usb_serial_port(odk_usb_serial *s)
{
    return s ? s->port : NULL;
}

void odk_usb_serial_set_modem_status(odk_usb_serial *s, bool cts, bool dsr, bool ri, bool dcd)
{
    if (!s)
        return;
    s->cts = cts, s->dsr = dsr, s->ri = ri, s->dcd = dcd;
}
