/* SPDX-License-Identifier: MIT */
/* The serial family, host side: a port's rings, its pseudo-terminal pump,
 * terminal settings turned into driver callbacks, and its user client.
 * Everything here runs on the driver's default queue. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

#include "odk/serial.h"
#include "port_internal.h"
#include "runtime/driver_internal.h"
#include "runtime/host_link.h"

#define DEFAULT_RING (64u * 1024u)
#define TERMIOS_POLL_NS (250u * 1000u * 1000u) /* how settings are seen while EXTPROC is off */
#define PUMP_BATCH 16 /* reads per wake-up before yielding to other work */

struct odk_serial_port {
    odk_driver *drv;
    const odk_serial_ops *ops;
    void *ctx;
    uint64_t node;
    char name[128];
    int master, slave;
    odk_fd_source *src;
    odk_timer *timer;
    odk_action *timer_action;
    void *shm;
    size_t shm_len;
    odk_ring tx, rx;
    odk_serial_line line;
    struct termios last;
    uint32_t events; /* what src currently waits for */
    odk_user_client *data_client;
    struct cuse_port *cuse; /* a CUSE terminal instead of the pty */
    bool active;
    struct port_wait *waits; /* apps' READ_WAIT and WAIT_MODEM calls, held */
};

/* A held READ_WAIT (read) or WAIT_MODEM call and what it waits for. */
struct port_wait {
    odk_serial_port *p;
    odk_async *a;
    bool read;
    size_t cap;             /* read: the room the app offered */
    bool cts, dsr, ri, dcd; /* modem: the inputs when the call came */
    struct port_wait *next;
};

/* ---- small helpers ---------------------------------------------------- */

static const struct {
    speed_t code;
    uint32_t baud;
} speeds[] = {
    {B50, 50},         {B75, 75},         {B110, 110},       {B134, 134},
    {B150, 150},       {B200, 200},       {B300, 300},       {B600, 600},
    {B1200, 1200},     {B1800, 1800},     {B2400, 2400},     {B4800, 4800},
    {B9600, 9600},     {B19200, 19200},   {B38400, 38400},   {B57600, 57600},
    {B115200, 115200}, {B230400, 230400}, {B460800, 460800}, {B500000, 500000},
    {B576000, 576000}, {B921600, 921600}, {B1000000, 1000000}, {B1152000, 1152000},
    {B1500000, 1500000}, {B2000000, 2000000}, {B2500000, 2500000}, {B3000000, 3000000},
    {B3500000, 3500000}, {B4000000, 4000000},
};

static uint32_t baud_of(speed_t s)
{
    for (size_t i = 0; i < sizeof speeds / sizeof speeds[0]; i++)
        if (speeds[i].code == s)
            return speeds[i].baud;
    return 0;
}

static const char *parity_name(odk_serial_parity p)
{
    static const char *const names[] = {"none", "odd", "even", "mark", "space"};
    return (unsigned)p < 5 ? names[p] : "none";
}

static void flow_name(uint32_t flow, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s%s", flow ? "" : "none",
             flow & ODK_FLOW_RTS_CTS ? "rts-cts" : "",
             (flow & ODK_FLOW_RTS_CTS) && (flow & (ODK_FLOW_XON_XOFF_IN | ODK_FLOW_XON_XOFF_OUT))
                 ? ","
                 : "",
             flow & (ODK_FLOW_XON_XOFF_IN | ODK_FLOW_XON_XOFF_OUT) ? "xon-xoff" : "");
}

/* A UART sends 1.5 stop bits when asked for two with 5 data bits (the
 * 16550's rule, which termios follows: CSTOPB with CS5). */
static uint8_t half_stop_bits(const odk_serial_line *l)
{
    return l->stop_bits == 2 ? (l->data_bits == 5 ? 3 : 4) : 2;
}

/* The port node's properties say what a terminal program set. */
static void publish_line(odk_serial_port *p)
{
    const odk_serial_line *l = &p->line;
    char flow[64];
    flow_name(l->flow, flow, sizeof flow);
    odk_driver *d = p->drv;
    odk_driver_set_node_property(d, p->node, "Baud", odk_value_new_int(l->baud));
    odk_driver_set_node_property(d, p->node, "DataBits", odk_value_new_int(l->data_bits));
    odk_driver_set_node_property(d, p->node, "StopBits", odk_value_new_int(l->stop_bits));
    odk_driver_set_node_property(d, p->node, "HalfStopBits", odk_value_new_int(half_stop_bits(l)));
    odk_driver_set_node_property(d, p->node, "Parity", odk_value_new_string(parity_name(l->parity)));
    odk_driver_set_node_property(d, p->node, "FlowControl", odk_value_new_string(flow));
    odk_driver_set_node_property(d, p->node, "XON", odk_value_new_int(l->xon));
    odk_driver_set_node_property(d, p->node, "XOFF", odk_value_new_int(l->xoff));
    odk_driver_set_node_property(d, p->node, "DTR", odk_value_new_bool(l->dtr));
    odk_driver_set_node_property(d, p->node, "RTS", odk_value_new_bool(l->rts));
}

/* Tells the driver the modem control outputs (program_mcr), then records
 * them in the line and on the node.  Called at activation with the
 * initial state (DTR and RTS on, as a tty opens), as IOUserSerial's
 * activation calls HwProgramMCR, so a driver that keeps the lines it was
 * told agrees with the node from the start; and on every change. */
static int set_mcr(odk_serial_port *p, bool dtr, bool rts)
{
    if (p->ops->program_mcr) {
        int st = p->ops->program_mcr(p, dtr, rts);
        if (st < 0) {
            odk_warn("serial %s: the driver refused DTR %s, RTS %s: %s", p->name,
                     dtr ? "on" : "off", rts ? "on" : "off", odk_strerror(st));
            return st;
        }
    }
    p->line.dtr = dtr;
    p->line.rts = rts;
    odk_driver_set_node_property(p->drv, p->node, "DTR", odk_value_new_bool(dtr));
    odk_driver_set_node_property(p->drv, p->node, "RTS", odk_value_new_bool(rts));
    return ODK_OK;
}

/* send_break, then records the state as the node's Break property. */
static int send_break(odk_serial_port *p, bool on)
{
    if (!p->ops->send_break)
        return ODK_E_UNSUPPORTED;
    int st = p->ops->send_break(p, on);
    if (st == ODK_OK)
        odk_driver_set_node_property(p->drv, p->node, "Break", odk_value_new_bool(on));
    return st;
}

/* Applies a new line to the driver: program_baud when only the speed
 * changed, program_uart otherwise; program_flow_control when flow changed. */
static int apply_line(odk_serial_port *p, const odk_serial_line *nl, bool force)
{
    const odk_serial_ops *o = p->ops;
    odk_serial_line *l = &p->line;
    int st = ODK_OK;
    bool framing = force || nl->data_bits != l->data_bits || nl->stop_bits != l->stop_bits ||
                   nl->parity != l->parity;
    if (framing && o->program_uart)
        st = o->program_uart(p, nl->baud, nl->data_bits, half_stop_bits(nl), nl->parity);
    else if (!framing && nl->baud != l->baud && o->program_baud)
        st = o->program_baud(p, nl->baud);
    else if (!framing && nl->baud != l->baud && o->program_uart)
        st = o->program_uart(p, nl->baud, nl->data_bits, half_stop_bits(nl), nl->parity);
    if (st == ODK_OK && (force || nl->flow != l->flow || nl->xon != l->xon || nl->xoff != l->xoff) &&
        o->program_flow_control)
        st = o->program_flow_control(p, nl->flow, nl->xon, nl->xoff);
    if (st < 0) {
        odk_warn("serial %s: the driver refused the line settings: %s", p->name, odk_strerror(st));
        return st;
    }
    bool changed = force || nl->baud != l->baud || nl->data_bits != l->data_bits ||
                   nl->stop_bits != l->stop_bits || nl->parity != l->parity ||
                   nl->flow != l->flow || nl->xon != l->xon || nl->xoff != l->xoff ||
                   nl->dtr != l->dtr || nl->rts != l->rts;
    *l = *nl;
    if (changed)
        publish_line(p);
    return ODK_OK;
}

static void line_from_termios(const struct termios *t, const odk_serial_line *old,
                              odk_serial_line *l)
{
    *l = *old;
    l->baud = baud_of(cfgetospeed(t));
    switch (t->c_cflag & CSIZE) {
    case CS5: l->data_bits = 5; break;
    case CS6: l->data_bits = 6; break;
    case CS7: l->data_bits = 7; break;
    default: l->data_bits = 8; break;
    }
    l->stop_bits = (t->c_cflag & CSTOPB) ? 2 : 1;
    if (!(t->c_cflag & PARENB))
        l->parity = ODK_PARITY_NONE;
    else if (t->c_cflag & CMSPAR)
        l->parity = (t->c_cflag & PARODD) ? ODK_PARITY_MARK : ODK_PARITY_SPACE;
    else
        l->parity = (t->c_cflag & PARODD) ? ODK_PARITY_ODD : ODK_PARITY_EVEN;
    l->flow = 0;
    if (t->c_cflag & CRTSCTS)
        l->flow |= ODK_FLOW_RTS_CTS;
    if (t->c_iflag & IXON)
        l->flow |= ODK_FLOW_XON_XOFF_OUT;
    if (t->c_iflag & IXOFF)
        l->flow |= ODK_FLOW_XON_XOFF_IN;
    l->xon = t->c_cc[VSTART];
    l->xoff = t->c_cc[VSTOP];
}

/* Field by field: struct termios has padding and fields tcgetattr leaves
 * alone, and a memcmp that read them saw changes that were not there (a
 * "change" re-read the pty's forced CS8 over the data bits the port's user
 * client had set). */
static bool termios_same(const struct termios *a, const struct termios *b)
{
    return a->c_iflag == b->c_iflag && a->c_oflag == b->c_oflag && a->c_cflag == b->c_cflag &&
           a->c_lflag == b->c_lflag && memcmp(a->c_cc, b->c_cc, sizeof a->c_cc) == 0 &&
           cfgetispeed(a) == cfgetispeed(b) && cfgetospeed(a) == cfgetospeed(b);
}

/* True when the program's settings ask the kernel's line discipline for
 * input processing: canonical lines and erase, echo, signals, CR and NL
 * translation, XON/XOFF, stripping. */
static bool needs_line_discipline(const struct termios *t)
{
    return (t->c_lflag & (ICANON | ISIG | ECHO | IEXTEN)) ||
           (t->c_iflag & (ICRNL | INLCR | IGNCR | IXON | IXOFF | ISTRIP | IUCLC | BRKINT | PARMRK));
}

/* Reads the terminal's settings (the slave's termios, seen through the
 * master) and applies what changed.
 *
 * EXTPROC makes the kernel tell us of every settings change at once (a
 * TIOCPKT_IOCTL packet), but it also makes the kernel skip its input
 * processing.  So it is on only while the terminal is raw, where that
 * processing would do nothing; a program that wants canonical lines or
 * XON/XOFF turns it off by asking for them, and the polling timer then sees
 * its changes (within TERMIOS_POLL_NS). */
static void check_termios(odk_serial_port *p, bool force)
{
    struct termios t;
    memset(&t, 0, sizeof t);
    if (tcgetattr(p->master, &t) < 0)
        return;
    bool raw = !needs_line_discipline(&t);
    if (raw != !!(t.c_lflag & EXTPROC)) {
        if (raw)
            t.c_lflag |= EXTPROC;
        else
            t.c_lflag &= ~(tcflag_t)EXTPROC;
        tcsetattr(p->master, TCSANOW, &t);
    }
    if (!force && termios_same(&t, &p->last))
        return;
    p->last = t;
    odk_serial_line nl;
    line_from_termios(&t, &p->line, &nl);
    apply_line(p, &nl, force);
}

static void set_events(odk_serial_port *p, uint32_t events)
{
    if (events == p->events)
        return;
    p->events = events;
    odk_fd_source_set_events(p->src, events);
    odk_fd_source_set_enabled(p->src, events != 0);
}

/* ---- the pump: terminal <-> rings ------------------------------------ */

static void flush_rings(odk_serial_port *p, bool tx, bool rx)
{
    if (tx)
        odk_ring_flush(&p->tx);
    if (rx)
        odk_ring_flush(&p->rx);
    if (p->ops->reset_fifo)
        p->ops->reset_fifo(p, tx, rx);
}

static void packet_status(odk_serial_port *p, uint8_t st)
{
    if (st & TIOCPKT_IOCTL)
        check_termios(p, false);
    if (st & (TIOCPKT_FLUSHREAD | TIOCPKT_FLUSHWRITE)) {
        /* FLUSHREAD: the slave flushed its input (our RX); FLUSHWRITE: its
         * output (our TX). */
        flush_rings(p, st & TIOCPKT_FLUSHWRITE, st & TIOCPKT_FLUSHREAD);
    }
}

/* Terminal -> TX ring.  Stops reading when the ring is full, so writers
 * block instead of losing bytes. */
static void pump_in(odk_serial_port *p)
{
    bool got = false;
    for (int i = 0; i < PUMP_BATCH; i++) {
        struct iovec seg[2], iov[3];
        uint8_t pkt;
        int n = odk_ring_write_segments(&p->tx, seg);
        if (n <= 0)
            break; /* full (or corrupt): wait for tx_free_space_available */
        iov[0] = (struct iovec){&pkt, 1};
        iov[1] = seg[0];
        if (n == 2)
            iov[2] = seg[1];
        ssize_t r = readv(p->master, iov, n + 1);
        if (r <= 0)
            break;
        if (pkt != TIOCPKT_DATA) {
            packet_status(p, pkt);
            continue;
        }
        odk_ring_commit(&p->tx, (size_t)r - 1);
        got = true;
        size_t room = seg[0].iov_len + (n == 2 ? seg[1].iov_len : 0);
        if ((size_t)r - 1 < room)
            break; /* a short read: the terminal has nothing more right now */
    }
    if (got)
        p->ops->tx_data_available(p);
}

/* RX ring -> terminal.  What the terminal cannot take now stays in the
 * ring; EPOLLOUT says when to try again. */
static void pump_out(odk_serial_port *p)
{
    size_t moved = 0;
    for (;;) {
        struct iovec seg[2];
        int n = odk_ring_read_segments(&p->rx, seg);
        if (n <= 0)
            break;
        ssize_t w = writev(p->master, seg, n);
        if (w <= 0)
            break;
        odk_ring_consume(&p->rx, (size_t)w);
        moved += (size_t)w;
        if ((size_t)w < seg[0].iov_len + (n == 2 ? seg[1].iov_len : 0))
            break; /* a short write: the terminal is full; EPOLLOUT says when */
    }
    if (moved)
        p->ops->rx_free_space_available(p);
}

static void update_events(odk_serial_port *p)
{
    uint32_t ev = 0;
    if (!p->data_client) {
        if (odk_ring_writable(&p->tx) > 0)
            ev |= EPOLLIN;
        if (odk_ring_readable(&p->rx) > 0)
            ev |= EPOLLOUT;
    }
    set_events(p, ev);
}

static void on_master(void *ctx, uint32_t revents)
{
    odk_serial_port *p = ctx;
    if (p->data_client)
        return update_events(p);
    if (revents & EPOLLIN)
        pump_in(p);
    if (revents & EPOLLOUT)
        pump_out(p);
    update_events(p);
}

static void serve_read_wait(odk_serial_port *p);
static void serve_modem_waits(odk_serial_port *p);

void odk_serial_rx_data_available(odk_serial_port *p)
{
    serve_read_wait(p);
    if (p->cuse) {
        cuse_port_rx(p->cuse);
        return;
    }
    if (!p->data_client)
        pump_out(p);
    update_events(p);
}

void odk_serial_tx_free_space_available(odk_serial_port *p)
{
    if (p->cuse) {
        cuse_port_tx_space(p->cuse);
        return;
    }
    update_events(p);
}

void odk_serial_modem_status_changed(odk_serial_port *p)
{
    serve_modem_waits(p);
    if (p->cuse)
        cuse_port_modem(p->cuse);
}

uint64_t odk_serial_char_ns(const odk_serial_port *p)
{
    const odk_serial_line *l = &p->line;
    if (!l->baud)
        return 0;
    /* In half bits: start, data, parity, stop. */
    uint64_t halves = 2 + 2u * l->data_bits + (l->parity != ODK_PARITY_NONE ? 2 : 0) +
                      half_stop_bits(l);
    return halves * 1000000000ull / (2ull * l->baud);
}

/* ---- for the CUSE terminal (port_internal.h) --------------------------- */

int serial_port_apply_line(odk_serial_port *p, const odk_serial_line *nl)
{
    return apply_line(p, nl, false);
}

int serial_port_set_mcr(odk_serial_port *p, bool dtr, bool rts)
{
    return set_mcr(p, dtr, rts);
}

int serial_port_modem_status(odk_serial_port *p, bool *cts, bool *dsr, bool *ri, bool *dcd)
{
    *cts = *dsr = *ri = *dcd = false;
    if (!p->ops->get_modem_status)
        return ODK_E_UNSUPPORTED;
    return p->ops->get_modem_status(p, cts, dsr, ri, dcd);
}

int serial_port_break(odk_serial_port *p, bool on)
{
    return send_break(p, on);
}

void serial_port_flush(odk_serial_port *p, bool tx, bool rx)
{
    flush_rings(p, tx, rx);
}

bool serial_port_has_data_client(const odk_serial_port *p)
{
    return p->data_client != NULL;
}

const odk_serial_ops *serial_port_ops(const odk_serial_port *p)
{
    return p->ops;
}

static void on_timer(void *ctx, odk_action *a)
{
    (void)a;
    check_termios(ctx, false);
}

/* ---- the port's user client ------------------------------------------ */

static int uc_open(void *ctx, odk_user_client *uc, uint32_t type)
{
    odk_serial_port *p = ctx;
    if (type == ODK_SERIAL_CLIENT_DATA) {
        if (p->data_client)
            return ODK_E_BUSY;
        p->data_client = uc;
        update_events(p);
    } else if (type != ODK_SERIAL_CLIENT_CONTROL) {
        return ODK_E_INVALID;
    }
    odk_user_client_set_ctx(uc, p);
    return ODK_OK;
}

static void uc_close(void *ctx, odk_user_client *uc)
{
    odk_serial_port *p = ctx;
    if (p->data_client == uc) {
        p->data_client = NULL;
        if (p->cuse) {
            cuse_port_rx(p->cuse);
            return;
        }
        update_events(p);
        pump_out(p);
    }
}

static odk_serial_port *uc_port(odk_user_client *uc)
{
    return odk_user_client_ctx(uc);
}

static int m_write(odk_driver *d, odk_user_client *uc, odk_call *c)
{
    odk_serial_port *p = uc_port(uc);
    if (p->data_client != uc)
        return ODK_E_ACCESS;
    size_t done = 0;
    int st = odk_ring_write(&p->tx, c->struct_in, c->struct_in_len, &done);
    c->scalar_out[0] = done;
    if (done)
        p->ops->tx_data_available(p);
    return st;
}

static int m_read(odk_driver *d, odk_user_client *uc, odk_call *c)
{
    odk_serial_port *p = uc_port(uc);
    if (p->data_client != uc)
        return ODK_E_ACCESS;
    size_t done = 0;
    int st = odk_ring_read(&p->rx, c->struct_out, c->struct_out_cap, &done);
    c->struct_out_len = done;
    if (done)
        p->ops->rx_free_space_available(p);
    return st;
}

static int m_set_line(odk_driver *d, odk_user_client *uc, odk_call *c)
{
    odk_serial_port *p = uc_port(uc);
    const uint64_t *v = c->scalar_in;
    if (v[0] == 0 || v[0] > 100000000 || v[1] < 5 || v[1] > 8 || v[2] < 1 || v[2] > 2 ||
        v[3] > ODK_PARITY_SPACE || (v[4] & ~7u) || v[5] > 255 || v[6] > 255)
        return ODK_E_INVALID;
    odk_serial_line nl = p->line;
    nl.baud = (uint32_t)v[0];
    nl.data_bits = (uint8_t)v[1];
    nl.stop_bits = (uint8_t)v[2];
    nl.parity = (odk_serial_parity)v[3];
    nl.flow = (uint32_t)v[4];
    nl.xon = (uint8_t)v[5];
    nl.xoff = (uint8_t)v[6];
    int st = apply_line(p, &nl, false);
    if (st == ODK_OK && p->cuse)
        cuse_port_line_changed(p->cuse);
    return st;
}

static int m_get_line(odk_driver *d, odk_user_client *uc, odk_call *c)
{
    const odk_serial_line *l = &uc_port(uc)->line;
    uint64_t v[9] = {l->baud, l->data_bits, l->stop_bits, l->parity, l->flow,
                     l->xon,  l->xoff,      l->dtr,       l->rts};
    memcpy(c->scalar_out, v, sizeof v);
    return ODK_OK;
}

static int m_set_modem(odk_driver *d, odk_user_client *uc, odk_call *c)
{
    odk_serial_port *p = uc_port(uc);
    int st = set_mcr(p, c->scalar_in[0] != 0, c->scalar_in[1] != 0);
    if (st == ODK_OK)
        serve_modem_waits(p); /* a loopback's inputs follow */
    if (st == ODK_OK && p->cuse)
        cuse_port_modem(p->cuse);
    return st;
}

static int m_get_modem(odk_driver *d, odk_user_client *uc, odk_call *c)
{
    odk_serial_port *p = uc_port(uc);
    bool cts = false, dsr = false, ri = false, dcd = false;
    if (!p->ops->get_modem_status)
        return ODK_E_UNSUPPORTED;
    int st = p->ops->get_modem_status(p, &cts, &dsr, &ri, &dcd);
    c->scalar_out[0] = cts;
    c->scalar_out[1] = dsr;
    c->scalar_out[2] = ri;
    c->scalar_out[3] = dcd;
    return st;
}

static int m_break(odk_driver *d, odk_user_client *uc, odk_call *c)
{
    return send_break(uc_port(uc), c->scalar_in[0] != 0);
}

static int m_flush(odk_driver *d, odk_user_client *uc, odk_call *c)
{
    flush_rings(uc_port(uc), c->scalar_in[0] != 0, c->scalar_in[1] != 0);
    return ODK_OK;
}

/* ---- held calls: READ_WAIT and WAIT_MODEM ----------------------------- */

static void wait_unlink(struct port_wait *w)
{
    struct port_wait **pp = &w->p->waits;
    while (*pp && *pp != w)
        pp = &(*pp)->next;
    if (*pp)
        *pp = w->next;
}

static void wait_finish(struct port_wait *w, int status, const uint64_t *scalars, uint32_t n,
                        const void *data, size_t len)
{
    wait_unlink(w);
    odk_async_complete(w->a, status, scalars, n, data, len);
    free(w);
}

/* The app went away (or closed its connection) while its call was held. */
static void wait_cancelled(void *ctx, odk_async *a)
{
    (void)a;
    wait_finish(ctx, ODK_E_CANCELLED, NULL, 0, NULL, 0);
}

static int wait_hold(odk_serial_port *p, odk_async *a, bool read, size_t cap)
{
    struct port_wait *w = calloc(1, sizeof *w);
    if (!w)
        return ODK_E_NOMEM;
    *w = (struct port_wait){.p = p, .a = a, .read = read, .cap = cap, .next = p->waits};
    if (!read && serial_port_modem_status(p, &w->cts, &w->dsr, &w->ri, &w->dcd) < 0) {
        free(w);
        return ODK_E_UNSUPPORTED;
    }
    p->waits = w;
    odk_async_set_cancel_handler(a, wait_cancelled, w);
    return ODK_OK;
}

/* The held READ_WAIT, if any, takes what RX holds now. */
static void serve_read_wait(odk_serial_port *p)
{
    struct port_wait *w = p->waits;
    while (w && !w->read)
        w = w->next;
    size_t have = odk_ring_readable(&p->rx);
    if (!w || !have)
        return;
    size_t len = have < w->cap ? have : w->cap, done = 0;
    uint8_t *buf = malloc(len);
    int st = buf ? odk_ring_read(&p->rx, buf, len, &done) : ODK_E_NOMEM;
    wait_finish(w, st, NULL, 0, buf, done);
    free(buf);
    if (done)
        p->ops->rx_free_space_available(p);
}

/* Held WAIT_MODEMs whose inputs changed are answered with the new ones. */
static void serve_modem_waits(odk_serial_port *p)
{
    bool cts, dsr, ri, dcd;
    if (!p->waits || serial_port_modem_status(p, &cts, &dsr, &ri, &dcd) < 0)
        return;
    for (struct port_wait *w = p->waits, *next; w; w = next) {
        next = w->next;
        if (w->read || (w->cts == cts && w->dsr == dsr && w->ri == ri && w->dcd == dcd))
            continue;
        uint64_t v[4] = {cts, dsr, ri, dcd};
        wait_finish(w, ODK_OK, v, 4, NULL, 0);
    }
}

static int m_read_wait(odk_driver *d, odk_user_client *uc, odk_call *c)
{
    odk_serial_port *p = uc_port(uc);
    if (p->data_client != uc)
        return ODK_E_ACCESS;
    for (struct port_wait *w = p->waits; w; w = w->next)
        if (w->read)
            return ODK_E_BUSY;
    if (!c->struct_out_cap)
        return ODK_E_INVALID;
    int st = wait_hold(p, c->async, true, c->struct_out_cap);
    if (st == ODK_OK)
        serve_read_wait(p); /* bytes there already: answered at once */
    return st;
}

static int m_wait_modem(odk_driver *d, odk_user_client *uc, odk_call *c)
{
    return wait_hold(uc_port(uc), c->async, false, 0);
}

static const odk_method port_methods[] = {
    [ODK_SERIAL_WRITE] = {m_write, .scalar_out = 1, .struct_in = ODK_VARIABLE_SIZE},
    [ODK_SERIAL_READ] = {m_read, .struct_out = ODK_VARIABLE_SIZE},
    [ODK_SERIAL_SET_LINE] = {m_set_line, .scalar_in = 7},
    [ODK_SERIAL_GET_LINE] = {m_get_line, .scalar_out = 9},
    [ODK_SERIAL_SET_MODEM] = {m_set_modem, .scalar_in = 2},
    [ODK_SERIAL_GET_MODEM] = {m_get_modem, .scalar_out = 4},
    [ODK_SERIAL_SEND_BREAK] = {m_break, .scalar_in = 1},
    [ODK_SERIAL_FLUSH] = {m_flush, .scalar_in = 2},
    [ODK_SERIAL_READ_WAIT] = {m_read_wait, .struct_out = ODK_VARIABLE_SIZE,
                              .flags = ODK_METHOD_ASYNC},
    [ODK_SERIAL_WAIT_MODEM] = {m_wait_modem, .scalar_out = 4, .flags = ODK_METHOD_ASYNC},
};

/* ---- creation and teardown ------------------------------------------- */

static int make_rings(odk_serial_port *p, uint32_t tx_size, uint32_t rx_size)
{
    size_t tx_bytes = (odk_ring_bytes(tx_size) + 4095) & ~(size_t)4095;
    p->shm_len = tx_bytes + odk_ring_bytes(rx_size);
    int fd = memfd_create("odk-serial-rings", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)p->shm_len) < 0) {
        if (fd >= 0)
            close(fd);
        return ODK_E_IO;
    }
    p->shm = mmap(NULL, p->shm_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p->shm == MAP_FAILED) {
        p->shm = NULL;
        return ODK_E_NOMEM;
    }
    int st = odk_ring_format(&p->tx, p->shm, tx_bytes, tx_size);
    if (st == ODK_OK)
        st = odk_ring_format(&p->rx, (uint8_t *)p->shm + tx_bytes, p->shm_len - tx_bytes, rx_size);
    return st;
}

/* Asks odkd for the terminal: a pty (master and slave descriptors), or a
 * /dev/cuse descriptor the CUSE session runs on (kind "cuse", or "auto"
 * where odkd could open /dev/cuse). */
static int open_terminal(odk_serial_port *p, const char *base, const char *suffix,
                         const char *kind)
{
    odk_value *args = odk_value_new_dict();
    if (!args || odk_dict_set_int(args, "node", (int64_t)p->node) < 0 ||
        odk_dict_set_string(args, "base", base) < 0 ||
        odk_dict_set_string(args, "suffix", suffix) < 0 ||
        odk_dict_set_string(args, "kind", kind) < 0) {
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    odk_value *reply = NULL;
    int fds[2] = {-1, -1};
    size_t n_fds = 2;
    int st = host_link_request_fds("serial-pty", args, &reply, fds, &n_fds);
    bool cuse = st == ODK_OK && strcmp(odk_dict_get_string(reply, "kind", "pty"), "cuse") == 0;
    if (st == ODK_OK && n_fds != (cuse ? 1u : 2u))
        st = ODK_E_PROTOCOL;
    if (st == ODK_OK)
        snprintf(p->name, sizeof p->name, "%s", odk_dict_get_string(reply, "name", "?"));
    if (st == ODK_OK && cuse) {
        st = cuse_port_open(p, fds[0], odk_dict_get_string(reply, "devname", "?"), &p->cuse);
    } else if (st == ODK_OK) {
        p->master = fds[0];
        p->slave = fds[1];
    } else {
        for (size_t i = 0; i < n_fds; i++)
            close(fds[i]);
    }
    odk_value_free(reply);
    return st;
}

/* Sets the pty up: non-blocking packet mode, its fd source and the
 * termios poll. */
static int start_pty(odk_serial_port *p)
{
    odk_driver *drv = p->drv;
    fcntl(p->master, F_SETFL, fcntl(p->master, F_GETFL) | O_NONBLOCK);
    int one = 1;
    ioctl(p->master, TIOCPKT, &one);
    int st = odk_fd_source_create(odk_driver_queue(drv), p->master, EPOLLIN, on_master, p, &p->src);
    if (st < 0)
        return st;
    p->events = EPOLLIN;
    if ((st = odk_timer_create(odk_driver_queue(drv), &p->timer)) < 0 ||
        (st = odk_action_create(odk_driver_queue(drv), on_timer, p, &p->timer_action)) < 0 ||
        (st = odk_timer_set_handler(p->timer, p->timer_action)) < 0 ||
        (st = odk_timer_arm(p->timer, TERMIOS_POLL_NS, TERMIOS_POLL_NS)) < 0)
        return st;
    memset(&p->last, 0, sizeof p->last);
    tcgetattr(p->master, &p->last);
    line_from_termios(&p->last, &p->line, &p->line);
    return ODK_OK;
}

static bool ring_size_ok(uint32_t n)
{
    return n >= ODK_RING_MIN_SIZE && n <= ODK_RING_MAX_SIZE && (n & (n - 1)) == 0;
}

int odk_serial_port_create(odk_driver *drv, const odk_serial_ops *ops, void *ctx,
                           const odk_serial_config *cfg, odk_serial_port **out)
{
    if (out)
        *out = NULL;
    if (!drv || !ops || !ops->tx_data_available || !ops->rx_free_space_available || !out)
        return ODK_E_INVALID;
    odk_serial_config c = cfg ? *cfg : (odk_serial_config){0};
    if (!c.tx_ring_size)
        c.tx_ring_size = DEFAULT_RING;
    if (!c.rx_ring_size)
        c.rx_ring_size = DEFAULT_RING;
    if (!ring_size_ok(c.tx_ring_size) || !ring_size_ok(c.rx_ring_size)) {
        odk_error("serial port: ring sizes %u/%u: each must be a power of two in %u..%u",
                  c.tx_ring_size, c.rx_ring_size, ODK_RING_MIN_SIZE, ODK_RING_MAX_SIZE);
        return ODK_E_INVALID;
    }
    const odk_value *pers = odk_driver_personality(drv);
    char inst[16];
    snprintf(inst, sizeof inst, "%u", odk_driver_instance(drv));
    const char *base = c.base_name ? c.base_name : odk_dict_get_string(pers, "IOTTYBaseName", "serial");
    const char *suffix = c.suffix ? c.suffix : odk_dict_get_string(pers, "IOTTYSuffix", inst);
    /* The terminal's kind: the device's "kind" (tests run one driver both
     * ways), else the personality's, else a pty. */
    const char *kind = odk_dict_get_string(odk_driver_provider_properties(drv), "kind",
                                           odk_dict_get_string(pers, "kind", "pty"));
    if (strcmp(kind, "pty") != 0 && strcmp(kind, "cuse") != 0 && strcmp(kind, "auto") != 0) {
        odk_error("serial port: kind '%s': must be pty, cuse or auto", kind);
        return ODK_E_INVALID;
    }

    odk_serial_port *p = calloc(1, sizeof *p);
    if (!p)
        return ODK_E_NOMEM;
    p->drv = drv;
    p->ops = ops;
    p->ctx = ctx;
    p->master = p->slave = -1;
    int st = make_rings(p, c.tx_ring_size, c.rx_ring_size);
    if (st < 0)
        goto fail;
    odk_value *props = odk_value_new_dict();
    if (!props || odk_dict_set_string(props, "IOTTYBaseName", base) < 0 ||
        odk_dict_set_string(props, "IOTTYSuffix", suffix) < 0 ||
        odk_dict_set_int(props, "TxRingSize", c.tx_ring_size) < 0 ||
        odk_dict_set_int(props, "RxRingSize", c.rx_ring_size) < 0) {
        odk_value_free(props);
        st = ODK_E_NOMEM;
        goto fail;
    }
    if ((st = odk_driver_publish_node(drv, "IOSerialBSDClient", "IOService", props, &p->node)) < 0)
        goto fail;
    /* A fresh line, as a UART's: 9600 8N1, no flow control, DTR and RTS
     * on; a pty's termios then says what it holds. */
    p->line = (odk_serial_line){.baud = 9600, .data_bits = 8, .stop_bits = 1, .xon = 0x11,
                                .xoff = 0x13, .dtr = true, .rts = true};
    if ((st = open_terminal(p, base, suffix, kind)) < 0)
        goto fail;
    if (!p->cuse && (st = start_pty(p)) < 0)
        goto fail;
    node_handler h = {.node_id = p->node,
                          .methods = port_methods,
                          .n_methods = sizeof port_methods / sizeof port_methods[0],
                          .open = uc_open,
                          .close = uc_close,
                          .ctx = p};
    if ((st = driver_set_node_handler(drv, &h)) < 0)
        goto fail;
    if (ops->activate && (st = ops->activate(p)) < 0)
        goto fail;
    p->active = true;
    apply_line(p, &p->line, true);
    set_mcr(p, p->line.dtr, p->line.rts);
    if (p->cuse)
        cuse_port_modem(p->cuse);
    odk_info("serial port %s ready (node %llu)", p->name, (unsigned long long)p->node);
    *out = p;
    return ODK_OK;
fail:
    odk_error("serial port: %s", odk_strerror(st));
    odk_serial_port_destroy(p);
    return st;
}

void odk_serial_port_destroy(odk_serial_port *p)
{
    if (!p)
        return;
    if (p->active && p->ops->deactivate)
        p->ops->deactivate(p);
    p->active = false;
    while (p->waits) /* held calls end: the port is going */
        wait_finish(p->waits, ODK_E_GONE, NULL, 0, NULL, 0);
    node_handler h = {.node_id = p->node};
    driver_set_node_handler(p->drv, &h);
    if (p->timer) {
        odk_timer_cancel(p->timer, NULL, NULL);
        odk_release(p->timer);
    }
    if (p->timer_action) {
        odk_action_cancel(p->timer_action);
        odk_release(p->timer_action);
    }
    if (p->src) {
        odk_fd_source_cancel(p->src, NULL, NULL);
        odk_release(p->src);
    }
    cuse_port_close(p->cuse); /* programs on the device see a hang-up */
    p->cuse = NULL;
    if (p->node)
        odk_driver_withdraw_node(p->drv, p->node);
    if (p->master >= 0)
        close(p->master);
    if (p->slave >= 0)
        close(p->slave);
    if (p->shm)
        munmap(p->shm, p->shm_len);
    free(p);
}

void *odk_serial_port_ctx(const odk_serial_port *p)
{
    return p->ctx;
}

odk_driver *odk_serial_port_driver(const odk_serial_port *p)
{
    return p->drv;
}

uint64_t odk_serial_port_node(const odk_serial_port *p)
{
    return p->node;
}

const char *odk_serial_port_name(const odk_serial_port *p)
{
    return p->name;
}

const odk_serial_line *odk_serial_port_line(const odk_serial_port *p)
{
    return &p->line;
}

odk_ring *odk_serial_tx_ring(odk_serial_port *p)
{
    return &p->tx;
}

odk_ring *odk_serial_rx_ring(odk_serial_port *p)
{
    return &p->rx;
}
