/* SPDX-License-Identifier: MIT */
/* The line discipline of a CUSE-backed port (ldisc.h): n_tty's input and
 * output processing for the settings a serial program uses.  What it does
 * not do: signals (ISIG characters are dropped and flush input, but no
 * process is signalled: a CUSE device is nobody's controlling terminal),
 * ECHOPRT, VLNEXT and VREPRINT. */
#include "ldisc.h"

#include <string.h>

static const struct {
    uint32_t code, baud;
} speeds[] = {
    {B0, 0},
    {B50, 50},
    {B75, 75},
    {B110, 110},
    {B134, 134},
    {B150, 150},
    {B200, 200},
    {B300, 300},
    {B600, 600},
    {B1200, 1200},
    {B1800, 1800},
    {B2400, 2400},
    {B4800, 4800},
    {B9600, 9600},
    {B19200, 19200},
    {B38400, 38400},
    {B57600, 57600},
    {B115200, 115200},
    {B230400, 230400},
    {B460800, 460800},
    {B500000, 500000},
    {B576000, 576000},
    {B921600, 921600},
    {B1000000, 1000000},
    {B1152000, 1152000},
    {B1500000, 1500000},
    {B2000000, 2000000},
    {B2500000, 2500000},
    {B3000000, 3000000},
    {B3500000, 3500000},
    {B4000000, 4000000},
};

static uint32_t code_baud(uint32_t code)
{
    for (size_t i = 0; i < sizeof speeds / sizeof speeds[0]; i++)
        if (speeds[i].code == code)
            return speeds[i].baud;
    return 0;
}

uint32_t ldisc_baud(const struct termios2 *t)
{
    uint32_t code = t->c_cflag & CBAUD;
    return code == BOTHER ? t->c_ospeed : code_baud(code);
}

void ldisc_speed_from_code(struct termios2 *t)
{
    uint32_t code = t->c_cflag & CBAUD;
    if (code != BOTHER)
        t->c_ospeed = code_baud(code);
    uint32_t icode = (t->c_cflag >> IBSHIFT) & CBAUD;
    if (icode == 0)
        t->c_ispeed = t->c_ospeed;
    else if (icode != BOTHER)
        t->c_ispeed = code_baud(icode);
}

void ldisc_init(struct ldisc *l)
{
    memset(l, 0, sizeof *l);
    struct termios2 *t = &l->t;
    t->c_cflag = B9600 | CS8 | CREAD | CLOCAL;
    t->c_cc[VINTR] = 003;
    t->c_cc[VQUIT] = 034;
    t->c_cc[VERASE] = 0177;
    t->c_cc[VKILL] = 025;
    t->c_cc[VEOF] = 004;
    t->c_cc[VTIME] = 0;
    t->c_cc[VMIN] = 1;
    t->c_cc[VSTART] = 021;
    t->c_cc[VSTOP] = 023;
    t->c_cc[VSUSP] = 032;
    t->c_cc[VREPRINT] = 022;
    t->c_cc[VDISCARD] = 017;
    t->c_cc[VWERASE] = 027;
    t->c_cc[VLNEXT] = 026;
    ldisc_speed_from_code(t);
}

void ldisc_set(struct ldisc *l, const struct termios2 *t)
{
    bool was_canon = l->t.c_lflag & ICANON;
    bool had_ixon = l->t.c_iflag & IXON;
    l->t = *t;
    if (was_canon && !(t->c_lflag & ICANON)) {
        l->ready = l->len;
        memset(l->mark, 0, sizeof l->mark);
        l->eofs = 0;
    }
    /* As n_tty: turning IXON off restarts output that an XOFF stopped. */
    if (had_ixon && !(t->c_iflag & IXON))
        l->stopped = false;
}

void ldisc_line(const struct termios2 *t, const odk_serial_line *old, odk_serial_line *l)
{
    *l = *old;
    l->baud = ldisc_baud(t);
    switch (t->c_cflag & CSIZE) {
    case CS5:
        l->data_bits = 5;
        break;
    case CS6:
        l->data_bits = 6;
        break;
    case CS7:
        l->data_bits = 7;
        break;
    default:
        l->data_bits = 8;
        break;
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

void ldisc_termios_from_line(struct termios2 *t, const odk_serial_line *l)
{
    static const uint32_t sizes[] = {CS5, CS6, CS7, CS8};
    t->c_cflag &= ~(tcflag_t)(CBAUD | CSIZE | CSTOPB | PARENB | PARODD | CMSPAR | CRTSCTS |
                              (CBAUD << IBSHIFT));
    uint32_t code = BOTHER;
    for (size_t i = 1; i < sizeof speeds / sizeof speeds[0]; i++)
        if (speeds[i].baud == l->baud)
            code = speeds[i].code;
    t->c_cflag |= code;
    t->c_ospeed = t->c_ispeed = l->baud;
    t->c_cflag |= sizes[(l->data_bits >= 5 && l->data_bits <= 8 ? l->data_bits : 8) - 5];
    if (l->stop_bits == 2)
        t->c_cflag |= CSTOPB;
    switch (l->parity) {
    case ODK_PARITY_ODD:
        t->c_cflag |= PARENB | PARODD;
        break;
    case ODK_PARITY_EVEN:
        t->c_cflag |= PARENB;
        break;
    case ODK_PARITY_MARK:
        t->c_cflag |= PARENB | PARODD | CMSPAR;
        break;
    case ODK_PARITY_SPACE:
        t->c_cflag |= PARENB | CMSPAR;
        break;
    default:
        break;
    }
    if (l->flow & ODK_FLOW_RTS_CTS)
        t->c_cflag |= CRTSCTS;
    t->c_iflag &= ~(tcflag_t)(IXON | IXOFF);
    if (l->flow & ODK_FLOW_XON_XOFF_OUT)
        t->c_iflag |= IXON;
    if (l->flow & ODK_FLOW_XON_XOFF_IN)
        t->c_iflag |= IXOFF;
    t->c_cc[VSTART] = l->xon;
    t->c_cc[VSTOP] = l->xoff;
}

/* ---- input ------------------------------------------------------------ */

static void put(struct ldisc_out *o, const char *s, size_t n)
{
    if (o->len + n > sizeof o->data)
        return; /* echo space full: drop, as n_tty does */
    memcpy(o->data + o->len, s, n);
    o->len += n;
}

static bool is_cc(const struct ldisc *l, uint8_t c, int idx)
{
    return l->t.c_cc[idx] != 0 && c == l->t.c_cc[idx]; /* 0 is _POSIX_VDISABLE */
}

static bool shown_as_caret(const struct ldisc *l, uint8_t c)
{
    return (l->t.c_lflag & ECHOCTL) && (c < 0x20 || c == 0x7f) && c != '\t' && c != '\n';
}

static void echo_char(struct ldisc *l, uint8_t c, struct ldisc_out *o)
{
    if (c == '\n') {
        if ((l->t.c_oflag & OPOST) && (l->t.c_oflag & ONLCR))
            put(o, "\r\n", 2);
        else
            put(o, "\n", 1);
    } else if (shown_as_caret(l, c)) {
        char s[2] = {'^', (char)(c == 0x7f ? '?' : c + 0x40)};
        put(o, s, 2);
    } else {
        put(o, (const char *)&c, 1);
    }
}

/* Erases the last character of the line being edited. */
static bool erase_one(struct ldisc *l, struct ldisc_out *o, bool visual)
{
    if (l->len <= l->ready)
        return false;
    uint8_t c = l->rq[--l->len];
    if ((l->t.c_lflag & ECHO) && visual) {
        put(o, "\b \b", 3);
        if (shown_as_caret(l, c))
            put(o, "\b \b", 3);
    }
    return true;
}

static void end_line(struct ldisc *l)
{
    l->mark[l->len - 1] = 1;
    l->ready = l->len;
}

static void canonical(struct ldisc *l, uint8_t c, struct ldisc_out *o)
{
    tcflag_t lf = l->t.c_lflag;
    bool echo = lf & ECHO;
    if (is_cc(l, c, VERASE)) {
        bool visual = lf & ECHOE;
        if (erase_one(l, o, visual) && echo && !visual)
            echo_char(l, c, o);
        return;
    }
    if ((lf & IEXTEN) && is_cc(l, c, VWERASE)) {
        while (l->len > l->ready && (l->rq[l->len - 1] == ' ' || l->rq[l->len - 1] == '\t'))
            erase_one(l, o, true);
        while (l->len > l->ready && l->rq[l->len - 1] != ' ' && l->rq[l->len - 1] != '\t')
            erase_one(l, o, true);
        return;
    }
    if (is_cc(l, c, VKILL)) {
        bool visual = (lf & ECHOKE) && (lf & ECHOE);
        while (erase_one(l, o, visual))
            ;
        if (echo && !visual) {
            echo_char(l, c, o);
            if (lf & ECHOK)
                echo_char(l, '\n', o);
        }
        return;
    }
    if (is_cc(l, c, VEOF)) {
        if (l->len > l->ready)
            end_line(l);
        else
            l->eofs++;
        return;
    }
    bool eol = c == '\n' || is_cc(l, c, VEOL) || ((lf & IEXTEN) && is_cc(l, c, VEOL2));
    if (!eol && l->len >= LDISC_BUF - 1)
        return; /* the line is full: only its end still fits */
    if (eol && l->len >= LDISC_BUF)
        return;
    l->rq[l->len] = c;
    l->mark[l->len] = 0;
    l->len++;
    if (echo || (c == '\n' && (lf & ECHONL)))
        echo_char(l, c, o);
    if (eol)
        end_line(l);
}

size_t ldisc_receive(struct ldisc *l, const uint8_t *in, size_t n, struct ldisc_out *o)
{
    const struct termios2 *t = &l->t;
    size_t i;
    for (i = 0; i < n; i++) {
        uint8_t c = in[i];
        if (!(t->c_lflag & ICANON) && l->len >= LDISC_BUF)
            break; /* the reader is behind: leave the rest on the line */
        if (t->c_iflag & ISTRIP)
            c &= 0x7f;
        if (t->c_iflag & IXON) {
            bool start = is_cc(l, c, VSTART), stop = is_cc(l, c, VSTOP);
            if (start && stop) {
                l->stopped = !l->stopped;
                continue;
            }
            if (start) {
                l->stopped = false;
                continue;
            }
            if (stop) {
                l->stopped = true;
                continue;
            }
            if (l->stopped && (t->c_iflag & IXANY))
                l->stopped = false;
        }
        if ((t->c_lflag & ISIG) &&
            (is_cc(l, c, VINTR) || is_cc(l, c, VQUIT) || is_cc(l, c, VSUSP))) {
            if (!(t->c_lflag & NOFLSH))
                ldisc_flush_input(l);
            if (t->c_lflag & ECHO)
                echo_char(l, c, o);
            continue;
        }
        if (c == '\r') {
            if (t->c_iflag & IGNCR)
                continue;
            if (t->c_iflag & ICRNL)
                c = '\n';
        } else if (c == '\n' && (t->c_iflag & INLCR)) {
            c = '\r';
        }
        if ((t->c_iflag & IUCLC) && (t->c_lflag & IEXTEN) && c >= 'A' && c <= 'Z')
            c = (uint8_t)(c - 'A' + 'a');
        if (t->c_lflag & ICANON) {
            canonical(l, c, o);
        } else {
            l->rq[l->len] = c;
            l->mark[l->len] = 0;
            l->len++;
            l->ready = l->len;
            if (t->c_lflag & ECHO)
                echo_char(l, c, o);
        }
        if ((t->c_iflag & IXOFF) && !l->throttled && l->len > LDISC_BUF * 3 / 4 && t->c_cc[VSTOP]) {
            put(o, (const char *)&t->c_cc[VSTOP], 1);
            l->throttled = true;
        }
    }
    return i;
}

bool ldisc_can_read(const struct ldisc *l)
{
    return l->ready > 0 || l->eofs > 0;
}

size_t ldisc_read(struct ldisc *l, uint8_t *buf, size_t cap, bool *eof, struct ldisc_out *o)
{
    *eof = false;
    size_t take = l->ready < cap ? l->ready : cap;
    if (l->t.c_lflag & ICANON) {
        if (l->ready == 0) {
            if (l->eofs) {
                l->eofs--;
                *eof = true;
            }
            return 0;
        }
        for (size_t i = 0; i < take; i++)
            if (l->mark[i]) {
                take = i + 1;
                break;
            }
    }
    memcpy(buf, l->rq, take);
    memmove(l->rq, l->rq + take, l->len - take);
    memmove(l->mark, l->mark + take, l->len - take);
    l->len -= take;
    l->ready -= take;
    if (l->throttled && l->len < LDISC_BUF / 4) {
        l->throttled = false;
        if (l->t.c_cc[VSTART])
            put(o, (const char *)&l->t.c_cc[VSTART], 1);
    }
    return take;
}

void ldisc_flush_input(struct ldisc *l)
{
    l->len = l->ready = 0;
    l->eofs = 0;
}

/* ---- output ----------------------------------------------------------- */

size_t ldisc_output(const struct ldisc *l, const uint8_t *in, size_t n, uint8_t *buf, size_t cap,
                    size_t *used)
{
    tcflag_t of = l->t.c_oflag;
    size_t i = 0, made = 0;
    if (!(of & OPOST)) {
        made = n < cap ? n : cap;
        memcpy(buf, in, made);
        *used = made;
        return made;
    }
    for (; i < n; i++) {
        uint8_t c = in[i];
        if ((of & OLCUC) && c >= 'a' && c <= 'z')
            c = (uint8_t)(c - 'a' + 'A');
        if (c == '\n' && (of & ONLCR)) {
            if (cap - made < 2)
                break;
            buf[made++] = '\r';
            buf[made++] = '\n';
            continue;
        }
        if (c == '\r' && (of & OCRNL))
            c = '\n';
        if (made == cap)
            break;
        buf[made++] = c;
    }
    *used = i;
    return made;
}
