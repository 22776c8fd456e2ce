/* SPDX-License-Identifier: MIT */
/* net-sim: an Ethernet NIC on a simulated cable.  Two sim devices whose
 * "cable" property names the same cable are two NICs joined by it: frames
 * one sends, the other receives.  The cable can lose, delay and rate-limit
 * frames, and be unplugged (odkctl net cable), which takes the link down.
 *
 * This is the whole data path of a network driver: take frames from the
 * TX submission ring and put them on the wire, take empty buffers from the
 * RX submission ring and fill them from the wire, and complete both.  A
 * real NIC driver does the same with descriptor rings in device memory in
 * the middle.  docs/net.md explains the rings and callbacks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "odk/net.h"

#define BATCH 64
#define SPEED_BPS 10000000000ull /* reported when the cable has no rate limit */

/* A frame on its way: dequeued from TX, leaving the NIC at `at`. */
struct wire_frame {
    odk_net_packet pkt;
    uint64_t at; /* CLOCK_MONOTONIC ns */
};

struct net_sim {
    odk_driver *drv;
    odk_net_if *nif;
    int sock, event;
    odk_fd_source *sock_src, *event_src;
    uint32_t sock_events;
    odk_timer *timer;
    odk_action *timer_action;
    /* The cable's settings. */
    bool plugged;
    uint32_t loss_ppm, delay_us;
    uint64_t rate_bps;
    uint64_t wire_free_at; /* when the last queued frame has left (rate limit) */
    /* Frames taken from TX and not yet sent: a FIFO of buffer-count entries. */
    struct wire_frame *fifo;
    uint32_t fifo_cap, fifo_head, fifo_len;
    /* Empty RX buffers the driver holds. */
    odk_net_packet rx_bufs[BATCH];
    size_t n_rx_bufs;
    bool rx_waiting; /* no buffers: rx_available resumes */
    uint64_t rng;
    /* What the system set, as the family delivered it, and the frames this
     * NIC's receive filter dropped for it (node property "RxFiltered"). */
    bool up, promisc, allmulti;
    uint32_t n_multicast;
    uint64_t filtered, filtered_published;
    odk_timer *count_timer;
    odk_action *count_action;
    bool count_armed;
    /* Fault injection for tests: every received frame completes badly. */
    enum { FAULT_NONE, FAULT_BAD_LENGTH, FAULT_UNKNOWN_BUFFER } fault;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t random_ppm(struct net_sim *s)
{
    s->rng ^= s->rng << 13; /* xorshift64: loss needs no better */
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return (uint32_t)(s->rng % 1000000u);
}

static void set_sock_events(struct net_sim *s, uint32_t ev)
{
    if (ev == s->sock_events)
        return;
    s->sock_events = ev;
    odk_fd_source_set_events(s->sock_src, ev);
    odk_fd_source_set_enabled(s->sock_src, ev != 0);
}

static void update_sock_events(struct net_sim *s, bool tx_blocked)
{
    uint32_t ev = s->rx_waiting ? 0 : EPOLLIN;
    if (tx_blocked)
        ev |= EPOLLOUT;
    set_sock_events(s, ev);
}

/* ---- transmit: TX ring -> FIFO -> cable ------------------------------------ */

/* Sends the frames whose time has come, in order, as one sendmmsg.
 * Returns true when the cable's socket is full (EPOLLOUT resumes). */
static bool send_due(struct net_sim *s)
{
    uint64_t now = now_ns();
    bool blocked = false;
    while (s->fifo_len > 0) {
        struct mmsghdr msgs[BATCH];
        struct iovec iov[BATCH];
        odk_net_packet done[BATCH];
        unsigned n = 0;
        for (uint32_t i = 0; i < s->fifo_len && n < BATCH; i++) {
            struct wire_frame *f = &s->fifo[(s->fifo_head + i) % s->fifo_cap];
            if (f->at > now)
                break;
            iov[n] = (struct iovec){odk_net_buffer(s->nif, f->pkt.buffer), f->pkt.length};
            memset(&msgs[n], 0, sizeof msgs[n]);
            msgs[n].msg_hdr.msg_iov = &iov[n];
            msgs[n].msg_hdr.msg_iovlen = 1;
            done[n] = f->pkt;
            n++;
        }
        if (n == 0)
            break;
        int sent = sendmmsg(s->sock, msgs, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                blocked = true;
                break;
            }
            sent = (int)n; /* a broken cable: the frames are lost */
            for (unsigned i = 0; i < n; i++)
                done[i].length = 0;
        }
        s->fifo_head = (s->fifo_head + (uint32_t)sent) % s->fifo_cap;
        s->fifo_len -= (uint32_t)sent;
        odk_net_tx_complete(s->nif, done, (size_t)sent);
        if ((unsigned)sent < n) {
            blocked = true;
            break;
        }
    }
    if (!blocked && s->fifo_len > 0) { /* the next frame is not due yet */
        uint64_t at = s->fifo[s->fifo_head].at;
        odk_timer_arm(s->timer, at > now ? at - now : 1, 0);
    }
    return blocked;
}

/* Takes what the TX ring holds, drops what the cable loses, stamps the
 * rest with the time it leaves (rate and delay), and sends what is due. */
static void transmit(struct net_sim *s)
{
    odk_net_packet pkts[BATCH];
    bool blocked = send_due(s); /* what waited for room first, in order */
    while (!blocked) {
        size_t room = s->fifo_cap - s->fifo_len;
        size_t n = odk_net_tx_dequeue(s->nif, pkts, room < BATCH ? room : BATCH);
        if (n == 0)
            break;
        uint64_t now = now_ns();
        odk_net_packet lost[BATCH];
        size_t n_lost = 0;
        for (size_t i = 0; i < n; i++) {
            if (!s->plugged || (s->loss_ppm && random_ppm(s) < s->loss_ppm)) {
                lost[n_lost++] = (odk_net_packet){pkts[i].buffer, 0};
                continue;
            }
            uint64_t at = now;
            if (s->rate_bps) {
                uint64_t start = s->wire_free_at > now ? s->wire_free_at : now;
                s->wire_free_at = start + (uint64_t)pkts[i].length * 8u * 1000000000u / s->rate_bps;
                at = s->wire_free_at;
            }
            at += (uint64_t)s->delay_us * 1000u;
            s->fifo[(s->fifo_head + s->fifo_len) % s->fifo_cap] = (struct wire_frame){pkts[i], at};
            s->fifo_len++;
        }
        if (n_lost)
            odk_net_tx_complete(s->nif, lost, n_lost);
        blocked = send_due(s);
    }
    /* Blocked: EPOLLOUT says when the cable has room; what is left in the
     * FIFO and the TX ring waits for it. */
    update_sock_events(s, blocked);
}

static void on_timer(void *ctx, odk_action *a)
{
    (void)a;
    transmit(ctx);
}

static void sim_tx_available(odk_net_if *nif)
{
    transmit(odk_net_if_ctx(nif));
}

/* ---- receive: cable -> RX buffers -> RX completion ---------------------------- */

static void receive(struct net_sim *s)
{
    for (;;) {
        if (s->n_rx_bufs < BATCH)
            s->n_rx_bufs +=
                odk_net_rx_dequeue(s->nif, s->rx_bufs + s->n_rx_bufs, BATCH - s->n_rx_bufs);
        if (s->n_rx_bufs == 0) {
            s->rx_waiting = true; /* rx_available resumes */
            break;
        }
        struct mmsghdr msgs[BATCH];
        struct iovec iov[BATCH];
        odk_net_packet bufs[BATCH];
        size_t n = s->n_rx_bufs;
        memcpy(bufs, s->rx_bufs, n * sizeof bufs[0]);
        s->n_rx_bufs = 0;
        for (size_t i = 0; i < n; i++) {
            iov[i] =
                (struct iovec){odk_net_buffer(s->nif, bufs[i].buffer), odk_net_buffer_size(s->nif)};
            memset(&msgs[i], 0, sizeof msgs[i]);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int got = recvmmsg(s->sock, msgs, (unsigned)n, MSG_DONTWAIT, NULL);
        if (got < 0)
            got = 0;
        odk_net_packet done[BATCH];
        size_t n_done = 0;
        uint64_t filtered = s->filtered;
        for (size_t i = 0; i < n; i++) {
            odk_net_packet b = bufs[i];
            if ((int)i >= got || (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)) {
                /* Unused, or the frame was longer than our buffers (a jumbo
                 * frame from a peer with a larger MTU), which a real NIC
                 * drops too: keep the buffer for the next frame. */
                s->rx_bufs[s->n_rx_bufs++] = b;
                continue;
            }
            /* The MAC's address filter: not for us (and not promiscuous),
             * a multicast group nobody joined, or the interface down. */
            if (!odk_net_if_accepts(s->nif, odk_net_buffer(s->nif, b.buffer), msgs[i].msg_len)) {
                s->filtered++;
                s->rx_bufs[s->n_rx_bufs++] = b;
                continue;
            }
            b.length = msgs[i].msg_len;
            if (s->fault == FAULT_BAD_LENGTH)
                b.length = odk_net_buffer_size(s->nif) + 1;
            else if (s->fault == FAULT_UNKNOWN_BUFFER)
                b.buffer = odk_net_buffer_count(s->nif) + 7;
            done[n_done++] = b;
        }
        if (filtered != s->filtered && !s->count_armed) {
            s->count_armed = true; /* told to odkd at most twice a second */
            odk_timer_arm(s->count_timer, 500u * 1000u * 1000u, 0);
        }
        if (n_done == 0) {
            if (got > 0 && (size_t)got == n)
                continue; /* all filtered: there may be more */
            break;
        }
        int st = odk_net_rx_complete(s->nif, done, n_done);
        if (st < 0 && s->fault == FAULT_NONE)
            odk_warn("net-sim: the family refused received frames: %s", odk_strerror(st));
        if ((size_t)got < n)
            break; /* the cable is empty */
    }
    update_sock_events(s, s->sock_events & EPOLLOUT);
}

static void sim_rx_available(odk_net_if *nif)
{
    struct net_sim *s = odk_net_if_ctx(nif);
    if (!s->rx_waiting)
        return;
    s->rx_waiting = false;
    receive(s);
}

static void on_sock(void *ctx, uint32_t revents)
{
    struct net_sim *s = ctx;
    if (revents & EPOLLOUT)
        transmit(s);
    if (revents & EPOLLIN)
        receive(s);
}

/* ---- the cable's settings ------------------------------------------------------- */

static void apply_settings(struct net_sim *s, const odk_value *v)
{
    bool was = s->plugged;
    s->plugged = odk_dict_get_bool(v, "plugged", true);
    s->loss_ppm = (uint32_t)odk_dict_get_int(v, "loss_ppm", 0);
    s->delay_us = (uint32_t)odk_dict_get_int(v, "delay_us", 0);
    s->rate_bps = (uint64_t)odk_dict_get_int(v, "rate_bps", 0);
    if (s->nif && (was != s->plugged || s->plugged))
        odk_net_set_link(s->nif, s->plugged, s->rate_bps ? s->rate_bps : SPEED_BPS);
}

static void on_event(void *ctx, uint32_t revents)
{
    (void)revents;
    struct net_sim *s = ctx;
    uint64_t v;
    if (read(s->event, &v, sizeof v) < 0)
        return;
    odk_value *set = NULL;
    if (odk_net_sim_cable_settings(s->drv, &set) == ODK_OK)
        apply_settings(s, set);
    odk_value_free(set);
}

/* ---- start and stop ---------------------------------------------------------------- */

static int sim_enable(odk_net_if *nif)
{
    struct net_sim *s = odk_net_if_ctx(nif);
    odk_info("%s: enabled, cable %s", odk_net_if_name(nif), s->plugged ? "plugged" : "unplugged");
    return s->plugged ? odk_net_set_link(nif, true, s->rate_bps ? s->rate_bps : SPEED_BPS) : ODK_OK;
}

static void sim_disable(odk_net_if *nif)
{
    odk_info("%s: disabled", odk_net_if_name(nif));
}

/* What the system sets: the filter itself is odk_net_if_accepts; these
 * note it, as a NIC's registers would hold it. */
static void sim_set_interface_up(odk_net_if *nif, bool up)
{
    struct net_sim *s = odk_net_if_ctx(nif);
    s->up = up;
    odk_info("%s: interface %s", odk_net_if_name(nif), up ? "up" : "down");
}

static void sim_set_promiscuous(odk_net_if *nif, bool on)
{
    struct net_sim *s = odk_net_if_ctx(nif);
    s->promisc = on;
    odk_info("%s: promiscuous %s", odk_net_if_name(nif), on ? "on" : "off");
}

static void sim_set_all_multicast(odk_net_if *nif, bool on)
{
    struct net_sim *s = odk_net_if_ctx(nif);
    s->allmulti = on;
    odk_info("%s: all-multicast %s", odk_net_if_name(nif), on ? "on" : "off");
}

static void sim_set_multicast_list(odk_net_if *nif, const uint8_t (*list)[6], size_t n)
{
    struct net_sim *s = odk_net_if_ctx(nif);
    (void)list;
    s->n_multicast = (uint32_t)n;
    odk_info("%s: %zu multicast address%s", odk_net_if_name(nif), n, n == 1 ? "" : "es");
}

static void publish_filtered(void *ctx, odk_action *a)
{
    (void)a;
    struct net_sim *s = ctx;
    s->count_armed = false;
    if (s->filtered == s->filtered_published || !s->nif)
        return;
    if (odk_driver_set_node_property(s->drv, odk_net_if_node(s->nif), "RxFiltered",
                                     odk_value_new_int((int64_t)s->filtered)) == ODK_OK)
        s->filtered_published = s->filtered;
}

static const odk_net_ops sim_ops = {
    .enable = sim_enable,
    .disable = sim_disable,
    .tx_available = sim_tx_available,
    .rx_available = sim_rx_available,
    .set_interface_up = sim_set_interface_up,
    .set_promiscuous = sim_set_promiscuous,
    .set_all_multicast = sim_set_all_multicast,
    .set_multicast_list = sim_set_multicast_list,
};

static void sim_stop(odk_driver *drv);

static int sim_start(odk_driver *drv)
{
    struct net_sim *s = odk_driver_state(drv);
    s->drv = drv;
    s->sock = s->event = -1;
    s->rng = now_ns() | 1;
    const odk_value *dev = odk_driver_provider_properties(drv);
    const char *fault = odk_dict_get_string(dev, "fault", "");
    s->fault = strcmp(fault, "rx-bad-length") == 0       ? FAULT_BAD_LENGTH
               : strcmp(fault, "rx-unknown-buffer") == 0 ? FAULT_UNKNOWN_BUFFER
                                                         : FAULT_NONE;
    odk_value *set = NULL;
    int st = odk_net_sim_cable_open(drv, &s->sock, &s->event, &set);
    if (st < 0)
        return st;
    apply_settings(s, set);
    /* A fixed address per cable end, so a restarted driver keeps it and its
     * neighbours' ARP caches stay right. */
    const char *cable = odk_dict_get_string(set, "cable", "");
    uint32_t h = 2166136261u;
    for (const char *p = cable; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    odk_net_config cfg = {
        .mac = {0x02, 0x6f, 0x64, (uint8_t)(h >> 8), (uint8_t)h,
                (uint8_t)(1 + odk_dict_get_int(set, "end", 0))},
        .mtu = 1500,
        .max_mtu = 9000,
    };
    odk_value_free(set);
    if ((st = odk_net_if_create(drv, &sim_ops, s, &cfg, &s->nif)) < 0)
        goto fail;
    s->fifo_cap = odk_net_buffer_count(s->nif);
    if (!(s->fifo = calloc(s->fifo_cap, sizeof *s->fifo))) {
        st = ODK_E_NOMEM;
        goto fail;
    }
    odk_queue *q = odk_driver_queue(drv);
    if ((st = odk_fd_source_create(q, s->sock, EPOLLIN, on_sock, s, &s->sock_src)) < 0 ||
        (st = odk_fd_source_create(q, s->event, EPOLLIN, on_event, s, &s->event_src)) < 0 ||
        (st = odk_timer_create(q, &s->timer)) < 0 ||
        (st = odk_action_create(q, on_timer, s, &s->timer_action)) < 0 ||
        (st = odk_timer_set_handler(s->timer, s->timer_action)) < 0 ||
        (st = odk_timer_create(q, &s->count_timer)) < 0 ||
        (st = odk_action_create(q, publish_filtered, s, &s->count_action)) < 0 ||
        (st = odk_timer_set_handler(s->count_timer, s->count_action)) < 0)
        goto fail;
    s->sock_events = EPOLLIN;
    if ((st = odk_driver_register_service(drv)) < 0)
        goto fail;
    return ODK_OK;
fail:
    sim_stop(drv);
    return st;
}

static void sim_stop(odk_driver *drv)
{
    struct net_sim *s = odk_driver_state(drv);
    if (s->timer) {
        odk_timer_cancel(s->timer, NULL, NULL);
        odk_release(s->timer);
        s->timer = NULL;
    }
    if (s->timer_action) {
        odk_action_cancel(s->timer_action);
        odk_release(s->timer_action);
        s->timer_action = NULL;
    }
    if (s->count_timer) {
        odk_timer_cancel(s->count_timer, NULL, NULL);
        odk_release(s->count_timer);
        s->count_timer = NULL;
    }
    if (s->count_action) {
        odk_action_cancel(s->count_action);
        odk_release(s->count_action);
        s->count_action = NULL;
    }
    odk_fd_source **srcs[2] = {&s->sock_src, &s->event_src};
    for (int i = 0; i < 2; i++)
        if (*srcs[i]) {
            odk_fd_source_cancel(*srcs[i], NULL, NULL);
            odk_release(*srcs[i]);
            *srcs[i] = NULL;
        }
    odk_net_if_destroy(s->nif);
    s->nif = NULL;
    free(s->fifo);
    s->fifo = NULL;
    if (s->sock >= 0)
        close(s->sock);
    if (s->event >= 0)
        close(s->event);
    s->sock = s->event = -1;
}

static const odk_driver_class net_sim_class = {
    .name = "NetSim",
    .state_size = sizeof(struct net_sim),
    .start = sim_start,
    .stop = sim_stop,
};

ODK_DRIVER_CLASS(net_sim_class);
