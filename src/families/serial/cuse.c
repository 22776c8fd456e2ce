/* SPDX-License-Identifier: MIT */
/* The serial family's CUSE terminal: a real character device (/dev/odk-NAME)
 * whose opens, reads, writes, polls and tty ioctls the family answers itself
 * through libfuse's CUSE API, on the driver's default queue.  Unlike a pty
 * it carries everything a UART's tty does: data bits, parity (mark and space
 * too), modem lines, break.  The line discipline is ldisc.c; this file is the
 * plumbing: requests that wait (reads by VMIN/VTIME, writes on a full ring
 * or an XOFF, TIOCMIWAIT, tcdrain, a timed break) and their wake-ups.
 *
 * The session runs in the driver host, next to the rings and callbacks, so
 * an ioctl reaches the driver without a hop through odkd.  odkd opens
 * /dev/cuse and hands the descriptor over (the host never opens /dev). */
#define FUSE_USE_VERSION 35
#include <cuse_lowlevel.h>

#include <asm/termios.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/serial.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ldisc.h"
#include "port_internal.h"
#include "runtime/driver_internal.h"

#define CUSE_INIT_TIMEOUT_MS 5000
#define BREAK_NS (250u * 1000u * 1000u) /* tcsendbreak(fd, 0): a quarter second */
#define N_TTY 0
/* The largest write the kernel sends in one request (CUSE_INIT's
 * max_write), and the buffer requests are read into: the kernel wants room
 * for a header and the write's data. */
#define MAX_WRITE (64u * 1024u)
#define READ_BUF (MAX_WRITE + 4096u) /* the line discipline number of n_tty (linux/tty.h) */

enum wait_kind { W_READ, W_WRITE, W_MIWAIT, W_DRAIN, W_BREAK };

struct waiter {
    struct cuse_port *c;
    fuse_req_t req;
    enum wait_kind kind;
    size_t size;        /* W_READ: bytes asked */
    uint8_t *data;      /* W_WRITE: bytes still to write (owned) */
    size_t len;         /* W_WRITE: their count */
    uint64_t deadline;  /* W_READ (VTIME), W_BREAK; 0 = none */
    uint64_t start;     /* W_READ: when it began (VMIN 0, VTIME > 0) */
    unsigned long mask; /* W_MIWAIT: TIOCM_* lines */
    struct serial_icounter_struct seen;
    struct termios2 *termios; /* W_DRAIN: settings to apply once TX drained (TCSETSW/F) */
    bool flush;               /* W_DRAIN: ... discarding input first (TCSETSF) */
    struct waiter *next;
};

struct cuse_port {
    odk_serial_port *port;
    struct fuse_session *se;
    int fd;        /* /dev/cuse (the session's; closed with it) */
    uint8_t *rbuf; /* READ_BUF bytes: one request at a time */
    odk_fd_source *src;
    odk_timer *timer;
    odk_action *timer_action;
    struct ldisc ld;
    struct ldisc_out out; /* echo and flow characters waiting for TX room */
    struct waiter *waiters;
    struct fuse_pollhandle *polls[16];
    size_t n_polls;
    struct serial_icounter_struct icount;
    bool cts, dsr, ri, dcd;
    struct winsize ws;
    unsigned opens;
    bool exclusive, tco_stopped, init_done, hungup;
    uint64_t last_rx; /* when the last byte arrived (VTIME between bytes) */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void service(struct cuse_port *c);

/* ---- pollers ------------------------------------------------------------ */

static unsigned poll_mask(struct cuse_port *c)
{
    if (c->hungup)
        return POLLHUP | POLLIN | POLLRDNORM | POLLERR;
    unsigned m = 0;
    if (ldisc_can_read(&c->ld))
        m |= POLLIN | POLLRDNORM;
    if (!c->ld.stopped && !c->tco_stopped && !serial_port_has_data_client(c->port) &&
        odk_ring_writable(odk_serial_tx_ring(c->port)) > 0)
        m |= POLLOUT | POLLWRNORM;
    return m;
}

/* The kernel asks again after a notification, so every change just wakes
 * all who wait. */
static void wake_polls(struct cuse_port *c)
{
    for (size_t i = 0; i < c->n_polls; i++) {
        fuse_lowlevel_notify_poll(c->polls[i]);
        fuse_pollhandle_destroy(c->polls[i]);
    }
    c->n_polls = 0;
}

/* ---- waiting requests --------------------------------------------------- */

static void unlink_waiter(struct cuse_port *c, struct waiter *w)
{
    for (struct waiter **p = &c->waiters; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            return;
        }
}

static void free_waiter(struct waiter *w)
{
    free(w->data);
    free(w->termios);
    free(w);
}

static void on_interrupt(fuse_req_t req, void *data)
{
    struct waiter *w = data;
    struct cuse_port *c = w->c;
    unlink_waiter(c, w);
    if (w->kind == W_BREAK)
        serial_port_break(c->port, false);
    fuse_reply_err(req, EINTR);
    free_waiter(w);
}

static struct waiter *add_waiter(struct cuse_port *c, fuse_req_t req, enum wait_kind kind)
{
    struct waiter *w = calloc(1, sizeof *w);
    if (!w) {
        fuse_reply_err(req, ENOMEM);
        return NULL;
    }
    w->c = c;
    w->req = req;
    w->kind = kind;
    struct waiter **p = &c->waiters; /* in arrival order */
    while (*p)
        p = &(*p)->next;
    *p = w;
    return w;
}

/* Registers the interrupt hook last: an interrupt that already arrived
 * runs it at once, which answers and frees w. */
static void arm_interrupt(struct waiter *w)
{
    fuse_req_interrupt_func(w->req, on_interrupt, w);
}

/* ---- moving bytes ------------------------------------------------------- */

/* Echo and flow characters go out ahead of what programs write. */
static bool send_out(struct cuse_port *c)
{
    if (!c->out.len)
        return false;
    odk_ring *tx = odk_serial_tx_ring(c->port);
    size_t done = 0;
    odk_ring_write(tx, c->out.data, c->out.len, &done);
    memmove(c->out.data, c->out.data + done, c->out.len - done);
    c->out.len -= done;
    return done > 0;
}

/* RX ring -> line discipline; returns the bytes taken. */
static size_t take_input(struct cuse_port *c)
{
    if (serial_port_has_data_client(c->port))
        return 0;
    odk_ring *rx = odk_serial_rx_ring(c->port);
    size_t taken = 0;
    for (;;) {
        struct iovec seg[2];
        if (odk_ring_read_segments(rx, seg) <= 0)
            break;
        size_t n = ldisc_receive(&c->ld, seg[0].iov_base, seg[0].iov_len, &c->out);
        if (n == 0)
            break;
        odk_ring_consume(rx, n);
        taken += n;
        c->icount.rx += (int)n;
        if (n < seg[0].iov_len)
            break;
    }
    if (taken)
        c->last_rx = now_ns();
    return taken;
}

static const odk_serial_ops *ops_of(struct cuse_port *c);

/* Tries a waiting read; true when it was answered. */
static bool try_read(struct cuse_port *c, struct waiter *w, uint64_t now, uint64_t *next)
{
    if (c->hungup) {
        fuse_reply_buf(w->req, NULL, 0);
        return true;
    }
    const struct termios2 *t = &c->ld.t;
    size_t avail = c->ld.ready;
    bool go = false;
    if (t->c_lflag & ICANON) {
        go = ldisc_can_read(&c->ld);
    } else {
        size_t vmin = t->c_cc[VMIN], want = vmin < w->size ? vmin : w->size;
        uint64_t vtime = (uint64_t)t->c_cc[VTIME] * 100000000u;
        if (vmin == 0 && vtime == 0)
            go = true;
        else if (avail >= want && vmin > 0)
            go = true;
        else if (vmin == 0 && avail > 0)
            go = true;
        else if (vtime) {
            /* VMIN 0: a total timeout from the read's start; else between
             * bytes, once one arrived. */
            uint64_t base = vmin == 0 ? w->start : (avail > 0 ? c->last_rx : 0);
            if (base) {
                if (now >= base + vtime)
                    go = true;
                else if (!*next || base + vtime < *next)
                    *next = base + vtime;
            }
        }
    }
    if (!go)
        return false;
    uint8_t *buf = malloc(w->size ? w->size : 1);
    if (!buf) {
        fuse_reply_err(w->req, ENOMEM);
        return true;
    }
    bool eof;
    size_t n = ldisc_read(&c->ld, buf, w->size, &eof, &c->out);
    fuse_reply_buf(w->req, (const char *)buf, n);
    free(buf);
    return true;
}

/* Writes what fits of a program's bytes through output processing into TX;
 * returns the input bytes taken. */
static size_t put_output(struct cuse_port *c, const uint8_t *data, size_t len)
{
    if (c->ld.stopped || c->tco_stopped || serial_port_has_data_client(c->port))
        return 0;
    odk_ring *tx = odk_serial_tx_ring(c->port);
    size_t room = odk_ring_writable(tx), used = 0;
    if (room == 0 || c->out.len)
        return 0;
    uint8_t *tmp = malloc(room);
    if (!tmp)
        return 0;
    size_t made = ldisc_output(&c->ld, data, len, tmp, room, &used);
    size_t done = 0;
    odk_ring_write(tx, tmp, made, &done);
    free(tmp);
    c->icount.tx += (int)done;
    return used;
}

static bool try_write(struct cuse_port *c, struct waiter *w, bool *sent)
{
    if (c->hungup) {
        fuse_reply_err(w->req, EIO);
        return true;
    }
    size_t used = put_output(c, w->data, w->len);
    if (!used)
        return false;
    *sent = true;
    /* A write returns once part of it went (as tty writes return when the
     * buffer took some). */
    fuse_reply_write(w->req, used);
    return true;
}

static bool icount_moved(const struct waiter *w, const struct serial_icounter_struct *now)
{
    return ((w->mask & TIOCM_CTS) && now->cts != w->seen.cts) ||
           ((w->mask & TIOCM_DSR) && now->dsr != w->seen.dsr) ||
           ((w->mask & TIOCM_RNG) && now->rng != w->seen.rng) ||
           ((w->mask & TIOCM_CD) && now->dcd != w->seen.dcd);
}

static void arm_timer(struct cuse_port *c, uint64_t next, uint64_t now)
{
    if (!next)
        odk_timer_disarm(c->timer);
    else
        odk_timer_arm(c->timer, next > now ? next - now : 1, 0);
}

static void set_termios(struct cuse_port *c, const struct termios2 *t, bool flush);

/* Answers every waiting request that can be answered now. */
static void service(struct cuse_port *c)
{
    uint64_t now = now_ns(), next = 0;
    bool sent = send_out(c);
    struct waiter *settle = NULL;
    for (struct waiter *w = c->waiters, *nx; w; w = nx) {
        nx = w->next;
        bool done = false;
        switch (w->kind) {
        case W_READ:
            done = try_read(c, w, now, &next);
            break;
        case W_WRITE:
            done = try_write(c, w, &sent);
            break;
        case W_MIWAIT:
            done = c->hungup || icount_moved(w, &c->icount);
            if (done)
                c->hungup ? fuse_reply_err(w->req, EIO) : fuse_reply_ioctl(w->req, 0, NULL, 0);
            break;
        case W_DRAIN:
            done = c->hungup || odk_ring_readable(odk_serial_tx_ring(c->port)) == 0;
            if (done && w->termios && !c->hungup) {
                /* TCSETSW/F: applied after the walk, as applying calls the
                 * driver, which may come back here. */
                unlink_waiter(c, w);
                w->next = settle;
                settle = w;
                continue;
            }
            if (done)
                c->hungup && w->termios ? fuse_reply_err(w->req, EIO)
                                        : fuse_reply_ioctl(w->req, 0, NULL, 0);
            break;
        case W_BREAK:
            done = c->hungup || now >= w->deadline;
            if (done) {
                serial_port_break(c->port, false);
                fuse_reply_ioctl(w->req, 0, NULL, 0);
            } else if (!next || w->deadline < next) {
                next = w->deadline;
            }
            break;
        }
        if (done) {
            unlink_waiter(c, w);
            free_waiter(w);
        }
    }
    while (settle) { /* what was written went out at the old settings */
        struct waiter *w = settle;
        settle = w->next;
        set_termios(c, w->termios, w->flush);
        fuse_reply_ioctl(w->req, 0, NULL, 0);
        free_waiter(w);
    }
    sent |= send_out(c); /* reads may have released an XON */
    arm_timer(c, next, now);
    wake_polls(c);
    if (sent)
        ops_of(c)->tx_data_available(c->port);
}

void cuse_port_rx(struct cuse_port *c)
{
    if (serial_port_has_data_client(c->port))
        return;
    size_t taken = take_input(c);
    service(c);
    if (taken)
        ops_of(c)->rx_free_space_available(c->port);
}

void cuse_port_tx_space(struct cuse_port *c)
{
    service(c);
}

void cuse_port_modem(struct cuse_port *c)
{
    bool cts, dsr, ri, dcd;
    if (serial_port_modem_status(c->port, &cts, &dsr, &ri, &dcd) < 0)
        return;
    c->icount.cts += cts != c->cts;
    c->icount.dsr += dsr != c->dsr;
    c->icount.rng += ri != c->ri && !ri; /* trailing edge, as a UART counts it */
    c->icount.dcd += dcd != c->dcd;
    c->cts = cts;
    c->dsr = dsr;
    c->ri = ri;
    c->dcd = dcd;
    service(c);
}

void cuse_port_line_changed(struct cuse_port *c)
{
    ldisc_termios_from_line(&c->ld.t, odk_serial_port_line(c->port));
}

static void on_timer(void *ctx, odk_action *a)
{
    (void)a;
    service(ctx);
}

/* ---- the device's file operations --------------------------------------- */

static struct cuse_port *port_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static void c_open(fuse_req_t req, struct fuse_file_info *fi)
{
    struct cuse_port *c = port_of(req);
    if (c->hungup) {
        fuse_reply_err(req, EIO);
        return;
    }
    /* TIOCEXCL: as on a tty, only a privileged program gets past it. */
    if (c->exclusive && fuse_req_ctx(req)->uid != 0) {
        fuse_reply_err(req, EBUSY);
        return;
    }
    if (c->opens++ == 0) {
        /* A tty raises DTR and RTS when it opens. */
        const odk_serial_line *l = odk_serial_port_line(c->port);
        if (!l->dtr || !l->rts)
            serial_port_set_mcr(c->port, true, true);
        cuse_port_modem(c);
    }
    fi->direct_io = 1;
    fi->nonseekable = 1;
    fuse_reply_open(req, fi);
}

static void c_release(fuse_req_t req, struct fuse_file_info *fi)
{
    (void)fi;
    struct cuse_port *c = port_of(req);
    if (c->opens && --c->opens == 0) {
        c->exclusive = false;
        if (c->ld.t.c_cflag & HUPCL)
            serial_port_set_mcr(c->port, false, false);
    }
    fuse_reply_err(req, 0);
}

static void c_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)off;
    struct cuse_port *c = port_of(req);
    struct waiter *w = add_waiter(c, req, W_READ);
    if (!w)
        return;
    w->size = size;
    w->start = now_ns();
    uint64_t next = 0;
    unlink_waiter(c, w);
    bool nonblock = fi->flags & O_NONBLOCK;
    if (nonblock && !c->hungup && !ldisc_can_read(&c->ld)) {
        fuse_reply_err(req, EAGAIN);
        free_waiter(w);
        return;
    }
    if (try_read(c, w, w->start, &next)) {
        free_waiter(w);
        cuse_port_rx(c); /* the read made room: more input, maybe an XON */
        return;
    }
    struct waiter **p = &c->waiters;
    while (*p)
        p = &(*p)->next;
    *p = w;
    if (next)
        arm_timer(c, next, w->start);
    arm_interrupt(w);
}

static void c_write(fuse_req_t req, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)off;
    struct cuse_port *c = port_of(req);
    if (c->hungup) {
        fuse_reply_err(req, EIO);
        return;
    }
    size_t used = 0;
    bool blocked = false; /* writers already waiting go first: bytes keep their order */
    for (struct waiter *w = c->waiters; w && !blocked; w = w->next)
        blocked = w->kind == W_WRITE;
    if (!blocked)
        used = put_output(c, (const uint8_t *)buf, size);
    if (used || size == 0) {
        fuse_reply_write(req, used);
        ops_of(c)->tx_data_available(c->port);
        return;
    }
    if (fi->flags & O_NONBLOCK) {
        fuse_reply_err(req, EAGAIN);
        return;
    }
    struct waiter *w = add_waiter(c, req, W_WRITE);
    if (!w)
        return;
    if (!(w->data = malloc(size))) {
        unlink_waiter(c, w);
        free_waiter(w);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    memcpy(w->data, buf, size);
    w->len = size;
    arm_interrupt(w);
}

static void c_flush(fuse_req_t req, struct fuse_file_info *fi)
{
    (void)fi;
    fuse_reply_err(req, 0);
}

static void c_poll(fuse_req_t req, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
    (void)fi;
    struct cuse_port *c = port_of(req);
    if (ph) {
        if (c->n_polls == sizeof c->polls / sizeof c->polls[0]) {
            /* Full: wake the oldest now; the kernel asks again. */
            fuse_lowlevel_notify_poll(c->polls[0]);
            fuse_pollhandle_destroy(c->polls[0]);
            memmove(c->polls, c->polls + 1, --c->n_polls * sizeof c->polls[0]);
        }
        c->polls[c->n_polls++] = ph;
    }
    fuse_reply_poll(req, poll_mask(c));
}

/* ---- ioctls ------------------------------------------------------------- */

/* Unrestricted ioctls arrive without data: ask the kernel to retry with the
 * argument's bytes copied in and room for the answer.  True when it asked. */
static bool fetch(fuse_req_t req, void *arg, size_t in, size_t out, size_t in_bufsz,
                  size_t out_bufsz)
{
    if (in_bufsz >= in && out_bufsz >= out)
        return false;
    struct iovec iin = {arg, in}, iout = {arg, out};
    fuse_reply_ioctl_retry(req, in ? &iin : NULL, in ? 1 : 0, out ? &iout : NULL, out ? 1 : 0);
    return true;
}

static void set_termios(struct cuse_port *c, const struct termios2 *t, bool flush)
{
    if (flush) {
        ldisc_flush_input(&c->ld);
        serial_port_flush(c->port, false, true);
    }
    const odk_serial_line *old = odk_serial_port_line(c->port);
    odk_serial_line nl;
    ldisc_line(t, old, &nl);
    ldisc_set(&c->ld, t);
    /* A refusal is logged by the port; termios keeps what the program
     * set, as with a pty (a tty cannot say no). */
    serial_port_apply_line(c->port, &nl);
    /* B0 hangs up the modem: DTR and RTS drop. */
    if (nl.baud == 0 && (old->dtr || old->rts))
        serial_port_set_mcr(c->port, false, false);
}

/* TCSETSW and TCSETSF: the change waits until what the program wrote has
 * left at the old settings (as a tty's tcsetattr(TCSADRAIN) does). */
static void set_termios_drained(struct cuse_port *c, fuse_req_t req, const struct termios2 *t,
                                bool flush)
{
    struct termios2 *copy = malloc(sizeof *copy);
    if (!copy) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    *copy = *t;
    struct waiter *w = add_waiter(c, req, W_DRAIN);
    if (!w) {
        free(copy);
        return;
    }
    w->termios = copy;
    w->flush = flush;
    arm_interrupt(w);
    service(c);
}

static int modem_bits(struct cuse_port *c)
{
    const odk_serial_line *l = odk_serial_port_line(c->port);
    bool cts, dsr, ri, dcd;
    int bits = (l->dtr ? TIOCM_DTR : 0) | (l->rts ? TIOCM_RTS : 0);
    if (serial_port_modem_status(c->port, &cts, &dsr, &ri, &dcd) < 0)
        return bits | TIOCM_CTS | TIOCM_DSR | TIOCM_CD; /* no inputs: a null modem's view */
    return bits | (cts ? TIOCM_CTS : 0) | (dsr ? TIOCM_DSR : 0) | (ri ? TIOCM_RNG : 0) |
           (dcd ? TIOCM_CD : 0);
}

static void reply_int(fuse_req_t req, int v)
{
    fuse_reply_ioctl(req, 0, &v, sizeof v);
}

static void c_ioctl(fuse_req_t req, int cmd, void *arg, struct fuse_file_info *fi, unsigned flags,
                    const void *in, size_t in_sz, size_t out_sz)
{
    (void)fi;
    struct cuse_port *c = port_of(req);
    unsigned long val = (unsigned long)arg; /* ioctls that take a value, not a pointer */
    if (flags & FUSE_IOCTL_COMPAT) {
        fuse_reply_err(req, ENOSYS);
        return;
    }
    if (c->hungup) {
        fuse_reply_err(req, EIO);
        return;
    }
    switch ((unsigned)cmd) {
    case TCGETS:
        if (!fetch(req, arg, 0, sizeof(struct termios), in_sz, out_sz))
            fuse_reply_ioctl(req, 0, &c->ld.t, sizeof(struct termios));
        return;
    case TCGETS2:
        if (!fetch(req, arg, 0, sizeof(struct termios2), in_sz, out_sz))
            fuse_reply_ioctl(req, 0, &c->ld.t, sizeof(struct termios2));
        return;
    case TCSETS:
    case TCSETSW:
    case TCSETSF: {
        if (fetch(req, arg, sizeof(struct termios), 0, in_sz, out_sz))
            return;
        struct termios2 t = c->ld.t;
        memcpy(&t, in, sizeof(struct termios)); /* termios2 begins as termios */
        ldisc_speed_from_code(&t);
        if ((unsigned)cmd != TCSETS) {
            set_termios_drained(c, req, &t, (unsigned)cmd == TCSETSF);
            return;
        }
        set_termios(c, &t, false);
        break;
    }
    case TCSETS2:
    case TCSETSW2:
    case TCSETSF2: {
        if (fetch(req, arg, sizeof(struct termios2), 0, in_sz, out_sz))
            return;
        struct termios2 t;
        memcpy(&t, in, sizeof t);
        if ((t.c_cflag & CBAUD) != BOTHER)
            ldisc_speed_from_code(&t);
        if ((unsigned)cmd != TCSETS2) {
            set_termios_drained(c, req, &t, (unsigned)cmd == TCSETSF2);
            return;
        }
        set_termios(c, &t, false);
        break;
    }
    case TIOCMGET:
        if (!fetch(req, arg, 0, sizeof(int), in_sz, out_sz))
            reply_int(req, modem_bits(c));
        return;
    case TIOCMSET:
    case TIOCMBIS:
    case TIOCMBIC: {
        if (fetch(req, arg, sizeof(int), 0, in_sz, out_sz))
            return;
        int bits;
        memcpy(&bits, in, sizeof bits);
        const odk_serial_line *l = odk_serial_port_line(c->port);
        bool dtr = l->dtr, rts = l->rts;
        if ((unsigned)cmd == TIOCMSET) {
            dtr = bits & TIOCM_DTR;
            rts = bits & TIOCM_RTS;
        } else {
            bool on = (unsigned)cmd == TIOCMBIS;
            if (bits & TIOCM_DTR)
                dtr = on;
            if (bits & TIOCM_RTS)
                rts = on;
        }
        if (serial_port_set_mcr(c->port, dtr, rts) < 0) {
            fuse_reply_err(req, EIO);
            return;
        }
        cuse_port_modem(c); /* a loopback's inputs follow its outputs */
        break;
    }
    case TIOCMIWAIT: {
        struct waiter *w = add_waiter(c, req, W_MIWAIT);
        if (!w)
            return;
        w->mask = val;
        w->seen = c->icount;
        arm_interrupt(w);
        return;
    }
    case TIOCGICOUNT:
        if (!fetch(req, arg, 0, sizeof c->icount, in_sz, out_sz))
            fuse_reply_ioctl(req, 0, &c->icount, sizeof c->icount);
        return;
    case TCSBRK:
    case TCSBRKP: {
        if ((unsigned)cmd == TCSBRK && val != 0) { /* tcdrain */
            struct waiter *w = add_waiter(c, req, W_DRAIN);
            if (w) {
                arm_interrupt(w);
                service(c);
            }
            return;
        }
        if (serial_port_break(c->port, true) < 0)
            break; /* a driver without break: nothing to send (as a tty) */
        c->icount.brk++;
        uint64_t ns = (unsigned)cmd == TCSBRKP && val ? val * 100000000ull : BREAK_NS;
        struct waiter *w = add_waiter(c, req, W_BREAK);
        if (!w) {
            serial_port_break(c->port, false);
            return;
        }
        w->deadline = now_ns() + ns;
        arm_interrupt(w);
        service(c);
        return;
    }
    case TIOCSBRK:
    case TIOCCBRK:
        serial_port_break(c->port, (unsigned)cmd == TIOCSBRK);
        break;
    case TCXONC:
        switch (val) {
        case TCOOFF:
            c->tco_stopped = true;
            break;
        case TCOON:
            c->tco_stopped = false;
            break;
        case TCIOFF:
        case TCION: {
            uint8_t ch = c->ld.t.c_cc[val == TCIOFF ? VSTOP : VSTART];
            if (ch && c->out.len < sizeof c->out.data)
                c->out.data[c->out.len++] = ch;
            break;
        }
        default:
            fuse_reply_err(req, EINVAL);
            return;
        }
        service(c);
        break;
    case TCFLSH:
        if (val > TCIOFLUSH) {
            fuse_reply_err(req, EINVAL);
            return;
        }
        if (val != TCOFLUSH)
            ldisc_flush_input(&c->ld);
        serial_port_flush(c->port, val != TCIFLUSH, val != TCOFLUSH);
        break;
    case TIOCINQ:
        if (!fetch(req, arg, 0, sizeof(int), in_sz, out_sz)) {
            size_t n = c->ld.ready;
            if (!(c->ld.t.c_lflag & ICANON))
                n += odk_ring_readable(odk_serial_rx_ring(c->port));
            reply_int(req, (int)n);
        }
        return;
    case TIOCOUTQ:
        if (!fetch(req, arg, 0, sizeof(int), in_sz, out_sz))
            reply_int(req, (int)(odk_ring_readable(odk_serial_tx_ring(c->port)) + c->out.len));
        return;
    case TIOCEXCL:
        c->exclusive = true;
        break;
    case TIOCNXCL:
        c->exclusive = false;
        break;
    case TIOCGEXCL:
        if (!fetch(req, arg, 0, sizeof(int), in_sz, out_sz))
            reply_int(req, c->exclusive);
        return;
    case TIOCGSERIAL:
        if (!fetch(req, arg, 0, sizeof(struct serial_struct), in_sz, out_sz)) {
            struct serial_struct ss = {.type = PORT_16550A,
                                       .xmit_fifo_size = 16,
                                       .baud_base = 115200,
                                       .close_delay = 50,
                                       .closing_wait = ASYNC_CLOSING_WAIT_NONE};
            fuse_reply_ioctl(req, 0, &ss, sizeof ss);
        }
        return;
    case TIOCSSERIAL:
        if (fetch(req, arg, sizeof(struct serial_struct), 0, in_sz, out_sz))
            return;
        break; /* accepted: low_latency and the like mean nothing here */
    case TIOCGWINSZ:
        if (!fetch(req, arg, 0, sizeof c->ws, in_sz, out_sz))
            fuse_reply_ioctl(req, 0, &c->ws, sizeof c->ws);
        return;
    case TIOCSWINSZ:
        if (fetch(req, arg, sizeof c->ws, 0, in_sz, out_sz))
            return;
        memcpy(&c->ws, in, sizeof c->ws);
        break;
    case TIOCGETD:
        if (!fetch(req, arg, 0, sizeof(int), in_sz, out_sz))
            reply_int(req, N_TTY);
        return;
    case TIOCSETD: {
        if (fetch(req, arg, sizeof(int), 0, in_sz, out_sz))
            return;
        int d;
        memcpy(&d, in, sizeof d);
        if (d != N_TTY) {
            fuse_reply_err(req, EINVAL);
            return;
        }
        break;
    }
    default:
        /* Job control and the rest: a CUSE device is nobody's controlling
         * terminal. */
        fuse_reply_err(req, ENOTTY);
        return;
    }
    fuse_reply_ioctl(req, 0, NULL, 0);
    service(c);
}

static void c_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    if (conn->max_write > MAX_WRITE || conn->max_write == 0)
        conn->max_write = MAX_WRITE;
}

static void c_init_done(void *userdata)
{
    ((struct cuse_port *)userdata)->init_done = true;
}

static const struct cuse_lowlevel_ops cuse_ops = {
    .init = c_init,
    .init_done = c_init_done,
    .open = c_open,
    .read = c_read,
    .write = c_write,
    .flush = c_flush,
    .release = c_release,
    .ioctl = c_ioctl,
    .poll = c_poll,
};

/* ---- the session ---------------------------------------------------------- */

static const odk_serial_ops *ops_of(struct cuse_port *c)
{
    return serial_port_ops(c->port);
}
/* Processes what the kernel sent; false once the session ended.  Reads
 * into our own buffer (libfuse's receive buffer is its own business: how
 * it allocates it is not part of its API). */
static bool pump(struct cuse_port *c)
{
    for (int i = 0; i < 64; i++) {
        ssize_t r = read(c->fd, c->rbuf, READ_BUF);
        if (r < 0 && errno == ENOENT)
            continue; /* the request was interrupted before we read it */
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return true;
        if (r <= 0)
            return false; /* ENODEV: the session is over */
        struct fuse_buf b = {.mem = c->rbuf, .size = (size_t)r};
        fuse_session_process_buf(c->se, &b);
    }
    return true;
}

static void on_fd(void *ctx, uint32_t revents)
{
    (void)revents;
    struct cuse_port *c = ctx;
    if (!pump(c)) {
        odk_warn("serial %s: the CUSE session ended", odk_serial_port_name(c->port));
        odk_fd_source_set_enabled(c->src, false);
    }
}

int cuse_port_open(odk_serial_port *p, int fd, const char *devname, struct cuse_port **out)
{
    *out = NULL;
    struct cuse_port *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return ODK_E_NOMEM;
    }
    c->port = p;
    c->fd = fd;
    if (!(c->rbuf = malloc(READ_BUF))) {
        close(fd);
        free(c);
        return ODK_E_NOMEM;
    }
    ldisc_init(&c->ld);
    ldisc_termios_from_line(&c->ld.t, odk_serial_port_line(p));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

    char dev_info[160], mnt[32];
    snprintf(dev_info, sizeof dev_info, "DEVNAME=%s", devname);
    const char *dev_info_argv[] = {dev_info};
    struct cuse_info ci = {
        .dev_info_argc = 1, .dev_info_argv = dev_info_argv, .flags = CUSE_UNRESTRICTED_IOCTL};
    char *argv[] = {(char *)"odk-serial", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(1, argv);
    c->se = cuse_lowlevel_new(&args, &ci, &cuse_ops, c);
    snprintf(mnt, sizeof mnt, "/dev/fd/%d", fd);
    if (!c->se || fuse_session_mount(c->se, mnt) < 0) {
        odk_error("serial: libfuse refused the CUSE session for %s", devname);
        close(fd);
        cuse_port_close(c);
        return ODK_E_IO;
    }
    /* CUSE_INIT, answered now so the device node exists when the port's
     * creation returns. */
    uint64_t deadline = now_ns() + CUSE_INIT_TIMEOUT_MS * 1000000ull;
    while (!c->init_done && now_ns() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) > 0 && !pump(c))
            break;
    }
    int st = ODK_E_IO;
    if (!c->init_done)
        odk_error("serial: no CUSE_INIT for %s from the kernel", devname);
    else if ((st = odk_fd_source_create(odk_driver_queue(odk_serial_port_driver(p)), fd, EPOLLIN,
                                        on_fd, c, &c->src)) == ODK_OK &&
             (st = odk_timer_create(odk_driver_queue(odk_serial_port_driver(p)), &c->timer)) ==
                 ODK_OK &&
             (st = odk_action_create(odk_driver_queue(odk_serial_port_driver(p)), on_timer, c,
                                     &c->timer_action)) == ODK_OK)
        st = odk_timer_set_handler(c->timer, c->timer_action);
    if (st < 0) {
        cuse_port_close(c);
        return st;
    }
    cuse_port_modem(c);
    *out = c;
    return ODK_OK;
}

void cuse_port_close(struct cuse_port *c)
{
    if (!c)
        return;
    c->hungup = true;
    if (c->se && c->init_done)
        service(c);      /* every waiter answered: reads end, writes get EIO */
    while (c->waiters) { /* (service answers all once hung up; belt and braces) */
        struct waiter *w = c->waiters;
        c->waiters = w->next;
        fuse_reply_err(w->req, EIO);
        free_waiter(w);
    }
    wake_polls(c);
    if (c->timer) {
        odk_timer_cancel(c->timer, NULL, NULL);
        odk_release(c->timer);
    }
    if (c->timer_action) {
        odk_action_cancel(c->timer_action);
        odk_release(c->timer_action);
    }
    if (c->src) {
        odk_fd_source_cancel(c->src, NULL, NULL);
        odk_release(c->src);
    }
    if (c->se)
        fuse_session_destroy(c->se); /* closes the descriptor: the node goes */
    free(c->rbuf);
    free(c);
}
