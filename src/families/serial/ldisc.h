/* SPDX-License-Identifier: MIT */
/* The line discipline of a CUSE-backed serial port: what the kernel's n_tty
 * does for a real UART's tty, done by the family because no kernel tty sits
 * between the program and the port.  Pure logic on the kernel's termios2
 * layout (asm/termbits.h, never <termios.h>, whose struct termios is glibc's
 * and differs): input processing and canonical lines, echo, XON/XOFF,
 * output processing.  No I/O, no allocation; unit-tested in test_ldisc.c. */
#ifndef ODK_SERIAL_LDISC_H
#define ODK_SERIAL_LDISC_H

#include <asm/termbits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "odk/serial.h"

/* What a program can read and what one canonical line may hold: n_tty's
 * N_TTY_BUF_SIZE.  A canonical line longer than this loses the excess
 * (as on Linux); raw input beyond it stays in the RX ring (back-pressure). */
#define LDISC_BUF 4096

/* Bytes the line discipline wants sent to the line (echo, XON/XOFF). */
struct ldisc_out {
    uint8_t data[3 * LDISC_BUF / 2];
    size_t len;
};

struct ldisc {
    struct termios2 t;
    uint8_t rq[LDISC_BUF];   /* completed input, then the line being edited */
    uint8_t mark[LDISC_BUF]; /* mark[i]: a canonical line ends after rq[i] */
    size_t len;              /* bytes in rq */
    size_t ready;            /* of which a reader may take (whole lines when canonical) */
    unsigned eofs;           /* canonical: EOFs typed on an empty line (reads of 0) */
    bool stopped;            /* IXON: the far end sent STOP; output waits for START */
    bool throttled;          /* IXOFF: we sent STOP; START when the reader caught up */
};

/* A fresh port: raw, 9600 baud, 8N1, receiver on, modem lines ignored
 * (CLOCAL), VMIN 1, VTIME 0, and Linux's default control characters. */
void ldisc_init(struct ldisc *l);

/* New settings (TCSETS*): leaving canonical mode makes the line being
 * edited readable, as n_tty does. */
void ldisc_set(struct ldisc *l, const struct termios2 *t);

/* The baud rate termios asks for: c_ospeed with BOTHER, else the Bnnn code's
 * rate (0 for B0 or an unknown code). */
uint32_t ldisc_baud(const struct termios2 *t);
/* Sets the speed fields from the Bnnn code, as the kernel does for a TCSETS
 * that carries no speeds. */
void ldisc_speed_from_code(struct termios2 *t);
/* The line settings termios describes; fields termios does not hold (DTR,
 * RTS) are copied from old. */
void ldisc_line(const struct termios2 *t, const odk_serial_line *old, odk_serial_line *out);

/* The reverse, for settings an app made through the port's user client:
 * the speed (a Bnnn code when one fits, else BOTHER), CSIZE, CSTOPB,
 * parity, CRTSCTS, IXON, IXOFF, VSTART and VSTOP follow l. */
void ldisc_termios_from_line(struct termios2 *t, const odk_serial_line *l);

/* Bytes from the line.  Consumes up to n and returns how many (fewer when
 * the read queue is full in raw mode: the rest stays where it was).  Echo
 * and flow-control bytes for the line are appended to out (dropped if out
 * is full, as n_tty drops echoes). */
size_t ldisc_receive(struct ldisc *l, const uint8_t *in, size_t n, struct ldisc_out *out);

/* True when a read would return now (data, or a canonical EOF). */
bool ldisc_can_read(const struct ldisc *l);
/* Takes up to cap readable bytes (one line at most when canonical) into
 * buf and returns how many; 0 with *eof set for a canonical EOF.  May
 * append START to out (IXOFF) once the queue drained. */
size_t ldisc_read(struct ldisc *l, uint8_t *buf, size_t cap, bool *eof, struct ldisc_out *out);

/* Output processing (OPOST: ONLCR, OCRNL, ONLRET, OLCUC) of a program's
 * write: converts from in into buf (at most cap bytes, never half of a
 * CR NL pair) and returns the bytes made; *used says how many of in. */
size_t ldisc_output(const struct ldisc *l, const uint8_t *in, size_t n, uint8_t *buf, size_t cap,
                    size_t *used);

/* Drops all input (TCFLSH TCIFLUSH). */
void ldisc_flush_input(struct ldisc *l);

#endif
