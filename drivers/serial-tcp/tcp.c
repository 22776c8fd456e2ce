/* SPDX-License-Identifier: MIT */
/* serial-tcp: a serial port whose far end is a TCP connection — the
 * "virtual serial port with a network back-end".  Bytes a terminal writes
 * go to the peer; bytes from the peer arrive on the terminal.  When the
 * peer goes away the port stays, bytes written meanwhile wait in the TX ring
 * (writers block once it is full), and the driver reconnects with backoff.
 *
 * The peer is the device's "host"/"port" properties, else the
 * personality's OdkTcpHost/OdkTcpPort.
 *
 * With "PaceAtBaud" (a device or personality property) bytes move no
 * faster than the line's settings allow, in each direction: one character
 * time (start, data, parity and stop bits at the baud rate) per byte. */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <netdb.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "odk/serial.h"

#define RECONNECT_FIRST_NS (100ull * 1000 * 1000)
#define RECONNECT_MAX_NS (5000ull * 1000 * 1000)

struct tcp {
    odk_driver *drv;
    odk_serial_port *port;
    char host[256], service[32];
    int sock;
    bool connected;
    odk_fd_source *src;
    odk_timer *timer;
    odk_action *reconnect;
    uint64_t backoff_ns;
    uint32_t events;
    bool pace;
    struct wire {
        uint64_t free_at; /* pacing: when the wire is free for the next byte */
        bool waiting;     /* bytes wait for it */
    } tx_wire, rx_wire;
    odk_timer *pace_timer;
    odk_action *pace_action;
    bool pace_armed;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Pacing: how many of want bytes have crossed the wire (one direction)
 * by now.  When some must wait, *wait_ns says for how long. */
static size_t paced(struct tcp *t, struct wire *w, size_t want, uint64_t *wait_ns)
{
    uint64_t ch = odk_serial_char_ns(t->port), now = now_ns();
    if (!t->pace || !ch || !want)
        return want;
    if (!w->waiting && w->free_at < now)
        w->free_at = now; /* an idle wire saves up no time */
    size_t n = 0;
    while (n < want && w->free_at + ch <= now) {
        w->free_at += ch;
        n++;
    }
    w->waiting = n < want; /* bytes are on the wire: their time counts from free_at */
    if (w->waiting && (!*wait_ns || w->free_at + ch - now < *wait_ns))
        *wait_ns = w->free_at + ch - now;
    return n;
}

static void pace_later(struct tcp *t, uint64_t wait_ns)
{
    if (wait_ns && !t->pace_armed) {
        t->pace_armed = true;
        odk_timer_arm(t->pace_timer, wait_ns, 0);
    }
}

/* Limits segs to n bytes in all; returns the segment count. */
static int clip(struct iovec *seg, int count, size_t n)
{
    if (seg[0].iov_len >= n) {
        seg[0].iov_len = n;
        return 1;
    }
    if (count == 2 && seg[0].iov_len + seg[1].iov_len > n)
        seg[1].iov_len = n - seg[0].iov_len;
    return count;
}

static void watch(struct tcp *t)
{
    if (!t->src)
        return;
    uint32_t ev = 0;
    if (!t->connected)
        ev = EPOLLOUT; /* connect in progress */
    else if (t->pace_armed)
        ev = 0; /* the pacing timer moves the bytes when their time has come */
    else {
        if (odk_ring_writable(odk_serial_rx_ring(t->port)) > 0)
            ev |= EPOLLIN;
        if (odk_ring_readable(odk_serial_tx_ring(t->port)) > 0)
            ev |= EPOLLOUT;
    }
    if (ev != t->events) {
        t->events = ev;
        odk_fd_source_set_events(t->src, ev);
        odk_fd_source_set_enabled(t->src, ev != 0);
    }
}

static void drop_connection(struct tcp *t, const char *why)
{
    if (t->src) {
        odk_fd_source_cancel(t->src, NULL, NULL);
        odk_release(t->src);
        t->src = NULL;
    }
    if (t->sock >= 0)
        close(t->sock);
    t->sock = -1;
    if (t->connected)
        odk_warn("disconnected from %s:%s (%s); reconnecting", t->host, t->service, why);
    t->connected = false;
    t->events = 0;
    odk_timer_arm(t->timer, t->backoff_ns, 0);
    t->backoff_ns = t->backoff_ns * 2 > RECONNECT_MAX_NS ? RECONNECT_MAX_NS : t->backoff_ns * 2;
}

/* TX ring -> peer. */
static void send_tx(struct tcp *t)
{
    odk_ring *tx = odk_serial_tx_ring(t->port);
    size_t sent = 0;
    uint64_t wait_ns = 0;
    for (;;) {
        struct iovec seg[2];
        int n = odk_ring_read_segments(tx, seg);
        if (n <= 0)
            break;
        size_t len = seg[0].iov_len + (n == 2 ? seg[1].iov_len : 0);
        size_t allow = paced(t, &t->tx_wire, len, &wait_ns);
        if (allow == 0)
            break;
        n = clip(seg, n, allow);
        /* (a paced byte the socket refuses is simply sent a little late) */
        struct msghdr mh = {.msg_iov = seg, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(t->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR)
                drop_connection(t, strerror(errno));
            break;
        }
        odk_ring_consume(tx, (size_t)w);
        sent += (size_t)w;
    }
    pace_later(t, wait_ns);
    if (sent)
        odk_serial_tx_free_space_available(t->port);
}

/* Peer -> RX ring. */
static void receive_rx(struct tcp *t)
{
    odk_ring *rx = odk_serial_rx_ring(t->port);
    size_t got = 0;
    uint64_t wait_ns = 0;
    for (int i = 0; i < 16; i++) {
        struct iovec seg[2];
        int n = odk_ring_write_segments(rx, seg);
        if (n <= 0)
            break;
        if (t->pace) {
            /* Only what the wire has delivered by now: peek at what the
             * socket holds, take the part whose time has come. */
            int avail = 0;
            size_t room = seg[0].iov_len + (n == 2 ? seg[1].iov_len : 0);
            if (ioctl(t->sock, FIONREAD, &avail) < 0 || avail <= 0)
                avail = 1; /* let readv see the end of the stream or an error */
            size_t want = (size_t)avail < room ? (size_t)avail : room;
            size_t allow = paced(t, &t->rx_wire, want, &wait_ns);
            if (allow == 0)
                break;
            n = clip(seg, n, allow);
        }
        ssize_t r = readv(t->sock, seg, n);
        if (r == 0) {
            drop_connection(t, "the peer closed the connection");
            break;
        }
        if (r < 0) {
            if (errno != EAGAIN && errno != EINTR)
                drop_connection(t, strerror(errno));
            break;
        }
        odk_ring_commit(rx, (size_t)r);
        got += (size_t)r;
    }
    pace_later(t, wait_ns);
    if (got)
        odk_serial_rx_data_available(t->port);
}

static void on_socket(void *ctx, uint32_t revents)
{
    struct tcp *t = ctx;
    if (!t->connected) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(t->sock, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            drop_connection(t, strerror(err));
            return;
        }
        t->connected = true;
        t->backoff_ns = RECONNECT_FIRST_NS;
        odk_info("connected to %s:%s", t->host, t->service);
    }
    if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
        receive_rx(t);
    if (t->connected && (revents & EPOLLOUT))
        send_tx(t);
    watch(t);
}

static void connect_now(void *ctx, odk_action *a)
{
    struct tcp *t = ctx;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(t->host, t->service, &hints, &ai);
    if (rc != 0) {
        odk_error("cannot resolve %s:%s: %s", t->host, t->service, gai_strerror(rc));
        drop_connection(t, "resolution failed");
        return;
    }
    t->sock = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->sock < 0 || (connect(t->sock, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)) {
        freeaddrinfo(ai);
        drop_connection(t, strerror(errno));
        return;
    }
    freeaddrinfo(ai);
    if (odk_fd_source_create(odk_driver_queue(t->drv), t->sock, EPOLLOUT, on_socket, t, &t->src) < 0)
        drop_connection(t, "cannot watch the socket");
    t->events = EPOLLOUT;
}

static void tcp_tx_data(odk_serial_port *p)
{
    struct tcp *t = odk_serial_port_ctx(p);
    if (t->connected)
        send_tx(t);
    watch(t);
}

static void tcp_rx_space(odk_serial_port *p)
{
    struct tcp *t = odk_serial_port_ctx(p);
    watch(t);
}

static void on_pace(void *ctx, odk_action *a)
{
    struct tcp *t = ctx;
    t->pace_armed = false;
    if (t->connected) {
        receive_rx(t);
        if (t->connected)
            send_tx(t);
    }
    watch(t);
}

static int tcp_activate(odk_serial_port *p)
{
    return ODK_OK;
}

static const odk_serial_ops tcp_ops = {
    .activate = tcp_activate,
    .tx_data_available = tcp_tx_data,
    .rx_free_space_available = tcp_rx_space,
};

static int tcp_start(odk_driver *drv)
{
    struct tcp *t = odk_driver_state(drv);
    const odk_value *dev = odk_driver_provider_properties(drv);
    const odk_value *pers = odk_driver_personality(drv);
    t->drv = drv;
    t->sock = -1;
    t->backoff_ns = RECONNECT_FIRST_NS;
    const char *host = odk_dict_get_string(dev, "host", odk_dict_get_string(pers, "OdkTcpHost", NULL));
    int64_t port = odk_dict_get_int(dev, "port", odk_dict_get_int(pers, "OdkTcpPort", -1));
    if (!host || port <= 0 || port > 65535) {
        odk_error("no peer: the device needs \"host\" (string) and \"port\" (1-65535)");
        return ODK_E_INVALID;
    }
    snprintf(t->host, sizeof t->host, "%s", host);
    snprintf(t->service, sizeof t->service, "%lld", (long long)port);
    t->pace = odk_dict_get_bool(dev, "PaceAtBaud", odk_dict_get_bool(pers, "PaceAtBaud", false));
    int st = odk_timer_create(odk_driver_queue(drv), &t->pace_timer);
    if (st == ODK_OK)
        st = odk_action_create(odk_driver_queue(drv), on_pace, t, &t->pace_action);
    if (st == ODK_OK)
        st = odk_timer_set_handler(t->pace_timer, t->pace_action);
    if (st == ODK_OK)
        st = odk_serial_port_create(drv, &tcp_ops, t, NULL, &t->port);
    if (st == ODK_OK)
        st = odk_timer_create(odk_driver_queue(drv), &t->timer);
    if (st == ODK_OK)
        st = odk_action_create(odk_driver_queue(drv), connect_now, t, &t->reconnect);
    if (st == ODK_OK)
        st = odk_timer_set_handler(t->timer, t->reconnect);
    if (st < 0)
        return st;
    connect_now(t, NULL);
    return odk_driver_register_service(drv);
}

static void tcp_stop(odk_driver *drv)
{
    struct tcp *t = odk_driver_state(drv);
    t->connected = false;
    if (t->timer) {
        odk_timer_cancel(t->timer, NULL, NULL);
        odk_release(t->timer);
    }
    if (t->reconnect) {
        odk_action_cancel(t->reconnect);
        odk_release(t->reconnect);
    }
    if (t->pace_timer) {
        odk_timer_cancel(t->pace_timer, NULL, NULL);
        odk_release(t->pace_timer);
    }
    if (t->pace_action) {
        odk_action_cancel(t->pace_action);
        odk_release(t->pace_action);
    }
    if (t->src) {
        odk_fd_source_cancel(t->src, NULL, NULL);
        odk_release(t->src);
    }
    if (t->sock >= 0)
        close(t->sock);
    odk_serial_port_destroy(t->port);
}

static const odk_driver_class tcp_class = {
    .name = "SerialTcp",
    .state_size = sizeof(struct tcp),
    .start = tcp_start,
    .stop = tcp_stop,
};

ODK_DRIVER_CLASS(tcp_class);
