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

#define SEG_HDR_MAX 192 /* Ethernet, VLAN tag, IP and TCP headers with options */

/* A frame on its way: dequeued from TX, leaving the NIC at `at`.  A TSO
 * frame leaves as segments of mss payload bytes, each with a copy of its
 * headers (hl bytes; IP header at l3, TCP header at l4), `sent` bytes of
 * payload already gone. */
struct wire_frame {
    odk_net_packet pkt;
    uint64_t at; /* CLOCK_MONOTONIC ns */
    bool tso, v6;
    uint16_t hl, l3, l4, mss;
    uint32_t paylen, sent;
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
    /* Offloads (the "offloads" device property: "none" turns them off):
     * with them, buffers begin with a virtio-net header (hdr bytes), the
     * system hands over partial checksums and 64 KiB TCP frames, and this
     * model completes and cuts them as a NIC's TSO engine does. */
    uint32_t hdr;
    uint8_t seg_hdrs[BATCH][SEG_HDR_MAX];
    /* Fault injection for tests: every received frame completes badly. */
    enum { FAULT_NONE, FAULT_BAD_LENGTH, FAULT_UNKNOWN_BUFFER, FAULT_BAD_VNET } fault;
};

/* ---- checksums and segmentation (the NIC's offload engine) -------------------- */

/* The Internet checksum's one's-complement sum of n bytes, in the machine's
 * byte order (RFC 1071: the order does not matter if the result is stored
 * the same way).  Pieces summed one after another must start at even
 * offsets of the whole. */
static uint64_t csum_add(uint64_t acc, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        acc += v;
        acc += acc < v; /* end-around carry */
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, p, n);
    acc += v;
    acc += acc < v;
    return acc;
}

static uint16_t csum_fold(uint64_t acc)
{
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffu) + (acc >> 16);
    acc = (acc & 0xffffu) + (acc >> 16);
    return (uint16_t)~acc;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* Completes a partial checksum (NEEDS_CSUM): the field already holds the
 * pseudo-header's sum; the rest is summed from start to the frame's end. */
static bool finish_csum(uint8_t *frame, size_t len, const odk_net_vnet_header *h)
{
    size_t at = (size_t)h->csum_start + h->csum_offset;
    if (h->csum_start >= len || at + 2 > len)
        return false;
    uint16_t c = csum_fold(csum_add(0, frame + h->csum_start, len - h->csum_start));
    if (c == 0)
        c = 0xffff; /* as the kernel does: 0 means "no checksum" to UDP */
    memcpy(frame + at, &c, 2);
    return true;
}

/* Reads the headers of a TSO frame into f; false when they are not the
 * TCP over IPv4/IPv6 the header's type says. */
static bool parse_tso(struct wire_frame *f, const uint8_t *frame, size_t len,
                      const odk_net_vnet_header *h)
{
    size_t l3 = 14;
    if (len < l3 + 40)
        return false;
    uint16_t type = get16(frame + 12);
    if (type == 0x8100) {
        l3 = 18;
        type = get16(frame + 16);
    }
    unsigned gso = h->gso_type & ~ODK_NET_GSO_ECN;
    size_t l4;
    if (gso == ODK_NET_GSO_TCPV4 && type == 0x0800) {
        size_t ihl = (size_t)(frame[l3] & 0xf) * 4;
        if (ihl < 20 || frame[l3 + 9] != 6)
            return false;
        l4 = l3 + ihl;
        f->v6 = false;
    } else if (gso == ODK_NET_GSO_TCPV6 && type == 0x86dd) {
        if (frame[l3 + 6] != 6) /* extension headers: not cut here */
            return false;
        l4 = l3 + 40;
        f->v6 = true;
    } else {
        return false;
    }
    if (l4 + 20 > len)
        return false;
    size_t hl = l4 + (size_t)(frame[l4 + 12] >> 4) * 4;
    if (hl < l4 + 20 || hl > len || hl > SEG_HDR_MAX || h->gso_size == 0)
        return false;
    f->tso = true;
    f->l3 = (uint16_t)l3;
    f->l4 = (uint16_t)l4;
    f->hl = (uint16_t)hl;
    f->mss = h->gso_size;
    f->paylen = (uint32_t)(len - hl);
    f->sent = 0;
    return true;
}

/* The headers of the segment carrying payload [off, off + seg) of f, into
 * out: lengths, IPv4 id and checksum, sequence number, flags (FIN and PSH
 * on the last segment only, CWR on the first only) and TCP checksum. */
static void build_segment(const struct wire_frame *f, const uint8_t *frame, uint32_t off,
                          uint32_t seg, uint8_t *out)
{
    memcpy(out, frame, f->hl);
    uint8_t *ip = out + f->l3, *tcp = out + f->l4;
    uint32_t tcp_len = (uint32_t)(f->hl - f->l4) + seg;
    uint64_t acc;
    uint8_t pseudo[40];
    if (!f->v6) {
        put16(ip + 2, (uint32_t)(f->hl - f->l3) + seg);
        put16(ip + 4, get16(ip + 4) + off / f->mss);
        put16(ip + 10, 0);
        uint16_t c = csum_fold(csum_add(0, ip, (size_t)(f->l4 - f->l3)));
        memcpy(ip + 10, &c, 2);
        memcpy(pseudo, ip + 12, 8);
        pseudo[8] = 0;
        pseudo[9] = 6;
        put16(pseudo + 10, tcp_len);
        acc = csum_add(0, pseudo, 12);
    } else {
        put16(ip + 4, tcp_len);
        memcpy(pseudo, ip + 8, 32);
        acc = csum_add(0, pseudo, 32);
        uint8_t tail[8] = {0, 0, (uint8_t)(tcp_len >> 8), (uint8_t)tcp_len, 0, 0, 0, 6};
        acc = csum_add(acc, tail, 8);
    }
    uint32_t seq = (uint32_t)tcp[4] << 24 | (uint32_t)tcp[5] << 16 | (uint32_t)tcp[6] << 8 | tcp[7];
    seq += off;
    tcp[4] = (uint8_t)(seq >> 24);
    tcp[5] = (uint8_t)(seq >> 16);
    tcp[6] = (uint8_t)(seq >> 8);
    tcp[7] = (uint8_t)seq;
    if (off + seg < f->paylen)
        tcp[13] &= (uint8_t)~0x09; /* FIN, PSH */
    if (off > 0)
        tcp[13] &= (uint8_t)~0x80; /* CWR */
    put16(tcp + 16, 0);
    acc = csum_add(acc, tcp, (size_t)(f->hl - f->l4));
    acc = csum_add(acc, frame + f->hl + off, seg);
    uint16_t c = csum_fold(acc);
    memcpy(tcp + 16, &c, 2);
}

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

/* Sends the frames whose time has come, in order, as one sendmmsg per
 * BATCH wire frames (a TSO frame's segments counted one by one); a frame
 * is completed once its last segment went.  Returns true when the cable's
 * socket is full (EPOLLOUT resumes). */
static bool send_due(struct net_sim *s)
{
    uint64_t now = now_ns();
    bool blocked = false;
    while (s->fifo_len > 0) {
        struct mmsghdr msgs[BATCH];
        struct iovec iov[2 * BATCH];
        uint32_t msg_frame[BATCH], msg_end[BATCH];
        uint32_t frame_needs[BATCH]; /* messages that must go before frame i is done */
        unsigned n = 0, built = 0;
        for (uint32_t i = 0; i < s->fifo_len && n < BATCH && built < BATCH; i++) {
            struct wire_frame *f = &s->fifo[(s->fifo_head + i) % s->fifo_cap];
            if (f->at > now)
                break;
            uint8_t *frame = odk_net_buffer(s->nif, f->pkt.buffer) + s->hdr;
            memset(&msgs[n], 0, sizeof msgs[n]);
            if (!f->tso) {
                iov[2 * n] = (struct iovec){frame, f->pkt.length - s->hdr};
                msgs[n].msg_hdr.msg_iov = &iov[2 * n];
                msgs[n].msg_hdr.msg_iovlen = 1;
                msg_frame[n] = i;
                msg_end[n++] = 0;
                frame_needs[built++] = n;
                continue;
            }
            uint32_t off = f->sent;
            while (off < f->paylen && n < BATCH) {
                uint32_t seg = f->paylen - off < f->mss ? f->paylen - off : f->mss;
                if (s->loss_ppm && random_ppm(s) < s->loss_ppm) {
                    off += seg; /* lost on the wire */
                    continue;
                }
                build_segment(f, frame, off, seg, s->seg_hdrs[n]);
                memset(&msgs[n], 0, sizeof msgs[n]);
                iov[2 * n] = (struct iovec){s->seg_hdrs[n], f->hl};
                iov[2 * n + 1] = (struct iovec){frame + f->hl + off, seg};
                msgs[n].msg_hdr.msg_iov = &iov[2 * n];
                msgs[n].msg_hdr.msg_iovlen = 2;
                msg_frame[n] = i;
                off += seg;
                msg_end[n++] = off;
            }
            if (off < f->paylen)
                break; /* the batch is full in the middle of this frame */
            frame_needs[built++] = n;
        }
        if (n == 0 && built == 0)
            break;
        int sent = 0;
        bool broken = false;
        if (n > 0) {
            sent = sendmmsg(s->sock, msgs, n, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (sent < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    blocked = true;
                    break;
                }
                sent = (int)n; /* a broken cable: the frames are lost */
                broken = true;
            }
        }
        odk_net_packet done[BATCH];
        unsigned n_done = 0;
        while (n_done < built && frame_needs[n_done] <= (unsigned)sent) {
            done[n_done] = s->fifo[s->fifo_head].pkt;
            if (broken)
                done[n_done].length = 0;
            n_done++;
            s->fifo_head = (s->fifo_head + 1) % s->fifo_cap;
            s->fifo_len--;
        }
        /* The frame now at the head may have gone in part. */
        for (int k = 0; k < sent; k++)
            if (msg_frame[k] == n_done && msg_end[k])
                s->fifo[s->fifo_head].sent = msg_end[k];
        if (n_done)
            odk_net_tx_complete(s->nif, done, n_done);
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
            struct wire_frame f = {.pkt = pkts[i]};
            uint64_t wire_bytes = pkts[i].length - s->hdr;
            bool ok = s->plugged && pkts[i].length >= s->hdr + 14u;
            if (ok && s->hdr) {
                uint8_t *buf = odk_net_buffer(s->nif, pkts[i].buffer);
                odk_net_vnet_header h;
                memcpy(&h, buf, sizeof h);
                uint8_t *frame = buf + s->hdr;
                size_t flen = pkts[i].length - s->hdr;
                if ((h.gso_type & ~ODK_NET_GSO_ECN) != ODK_NET_GSO_NONE) {
                    ok = parse_tso(&f, frame, flen, &h);
                    if (ok && f.paylen == 0) /* headers only: one frame */
                        f.tso = false;
                    if (ok && f.tso)
                        wire_bytes += (uint64_t)(f.paylen - 1) / f.mss * f.hl;
                    if (ok && !f.tso && (h.flags & ODK_NET_VNET_F_NEEDS_CSUM))
                        ok = finish_csum(frame, flen, &h);
                } else if (h.flags & ODK_NET_VNET_F_NEEDS_CSUM) {
                    ok = finish_csum(frame, flen, &h);
                }
            }
            /* A TSO frame's segments are lost one by one (send_due). */
            if (!ok || (!f.tso && s->loss_ppm && random_ppm(s) < s->loss_ppm)) {
                lost[n_lost++] = (odk_net_packet){pkts[i].buffer, 0};
                continue;
            }
            uint64_t at = now;
            if (s->rate_bps) {
                uint64_t start = s->wire_free_at > now ? s->wire_free_at : now;
                s->wire_free_at = start + wire_bytes * 8u * 1000000000u / s->rate_bps;
                at = s->wire_free_at;
            }
            f.at = at + (uint64_t)s->delay_us * 1000u;
            s->fifo[(s->fifo_head + s->fifo_len) % s->fifo_cap] = f;
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

/* Receive coalescing (LRO), as a NIC with it does: consecutive segments of
 * one TCP flow in a batch, each checked against its checksum, become one
 * large frame the system takes as a GSO frame (one trip through its stack
 * instead of one per segment).  Only plain segments qualify: ACK (and PSH,
 * which ends a run), no IP options or fragments, the same headers apart
 * from lengths, IP id and sequence number. */
struct rx_tcp {
    bool v6;
    uint16_t l3, l4, hl;
    uint32_t seq, paylen;
};

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t pseudo_sum(const uint8_t *f, const struct rx_tcp *t, uint32_t tcp_len)
{
    uint8_t ps[40];
    if (!t->v6) {
        memcpy(ps, f + t->l3 + 12, 8);
        ps[8] = 0;
        ps[9] = 6;
        put16(ps + 10, tcp_len);
        return csum_add(0, ps, 12);
    }
    memcpy(ps, f + t->l3 + 8, 32);
    uint8_t tail[8] = {(uint8_t)(tcp_len >> 24),
                       (uint8_t)(tcp_len >> 16),
                       (uint8_t)(tcp_len >> 8),
                       (uint8_t)tcp_len,
                       0,
                       0,
                       0,
                       6};
    return csum_add(csum_add(0, ps, 32), tail, 8);
}

/* A segment that may be coalesced, with a good checksum. */
static bool parse_rx_tcp(const uint8_t *f, size_t len, struct rx_tcp *t)
{
    t->l3 = 14;
    if (len < 14u + 40u + 20u)
        return false;
    uint16_t type = get16(f + 12);
    if (type == 0x0800) {
        const uint8_t *ip = f + 14;
        if (ip[0] != 0x45 || ip[9] != 6 || (get16(ip + 6) & 0x3fff) || get16(ip + 2) != len - 14)
            return false;
        t->v6 = false;
        t->l4 = 14 + 20;
    } else if (type == 0x86dd) {
        const uint8_t *ip = f + 14;
        if ((ip[0] >> 4) != 6 || ip[6] != 6 || get16(ip + 4) != len - 14 - 40)
            return false;
        t->v6 = true;
        t->l4 = 14 + 40;
    } else {
        return false;
    }
    const uint8_t *tcp = f + t->l4;
    t->hl = (uint16_t)(t->l4 + (tcp[12] >> 4) * 4);
    if (t->hl < t->l4 + 20 || t->hl >= len || (tcp[13] != 0x10 && tcp[13] != 0x18))
        return false;
    t->seq = get32(tcp + 4);
    t->paylen = (uint32_t)(len - t->hl);
    uint32_t tcp_len = (uint32_t)(len - t->l4);
    return csum_fold(csum_add(pseudo_sum(f, t, tcp_len), tcp, tcp_len)) == 0;
}

/* Whether segment g (frame gf) continues run a (frame af, next sequence
 * number next). */
static bool continues(const uint8_t *af, const struct rx_tcp *a, uint32_t next, const uint8_t *gf,
                      const struct rx_tcp *g)
{
    if (g->v6 != a->v6 || g->hl != a->hl || g->seq != next || memcmp(af, gf, 12) != 0)
        return false;
    const uint8_t *ai = af + a->l3, *gi = gf + g->l3;
    if (!a->v6 ? ai[1] != gi[1] || ai[8] != gi[8] || memcmp(ai + 12, gi + 12, 8) != 0
               : memcmp(ai, gi, 4) != 0 || ai[7] != gi[7] || memcmp(ai + 8, gi + 8, 32) != 0)
        return false;
    const uint8_t *at = af + a->l4, *gt = gf + g->l4;
    /* Ports, ack, header length and window, options: all the same. */
    return memcmp(at, gt, 4) == 0 && memcmp(at + 8, gt + 8, 5) == 0 &&
           memcmp(at + 14, gt + 14, 2) == 0 &&
           memcmp(at + 20, gt + 20, (size_t)(a->hl - a->l4 - 20)) == 0;
}

/* The header and lengths of a coalesced frame: a GSO frame whose TCP
 * checksum field holds the pseudo-header's sum (NEEDS_CSUM), as a NIC's
 * LRO hands it up.  A lone checked segment is marked DATA_VALID. */
static void finish_run(uint8_t *buf, uint32_t hdr, size_t len, const struct rx_tcp *t,
                       unsigned count, uint32_t mss)
{
    uint8_t *f = buf + hdr;
    odk_net_vnet_header h = {.flags = ODK_NET_VNET_F_DATA_VALID};
    if (count > 1) {
        uint8_t *ip = f + t->l3, *tcp = f + t->l4;
        if (!t->v6) {
            put16(ip + 2, (uint32_t)(len - t->l3));
            put16(ip + 10, 0);
            uint16_t c = csum_fold(csum_add(0, ip, 20));
            memcpy(ip + 10, &c, 2);
        } else {
            put16(ip + 4, (uint32_t)(len - t->l3 - 40));
        }
        uint16_t partial = (uint16_t)~csum_fold(pseudo_sum(f, t, (uint32_t)(len - t->l4)));
        memcpy(tcp + 16, &partial, 2);
        h = (odk_net_vnet_header){.flags = ODK_NET_VNET_F_NEEDS_CSUM,
                                  .gso_type = t->v6 ? ODK_NET_GSO_TCPV6 : ODK_NET_GSO_TCPV4,
                                  .hdr_len = t->hl,
                                  .gso_size = (uint16_t)mss,
                                  .csum_start = t->l4,
                                  .csum_offset = 16};
    }
    memcpy(buf, &h, sizeof h);
}

/* Coalesces runs in done[] (frames with a zero header), in place; the
 * buffers of segments merged into others go back to the driver's spares. */
static size_t coalesce(struct net_sim *s, odk_net_packet *done, size_t n)
{
    size_t out = 0, run = SIZE_MAX; /* run: index in done[] of the open run */
    struct rx_tcp a = {0};
    uint32_t next = 0, mss = 0;
    unsigned count = 0;
    bool closed = false;
    uint32_t cap = odk_net_buffer_size(s->nif) - s->hdr;
    for (size_t i = 0; i < n; i++) {
        uint8_t *gb = odk_net_buffer(s->nif, done[i].buffer);
        size_t glen = done[i].length - s->hdr;
        struct rx_tcp g;
        bool ok = parse_rx_tcp(gb + s->hdr, glen, &g);
        if (ok && run != SIZE_MAX && !closed) {
            uint8_t *ab = odk_net_buffer(s->nif, done[run].buffer);
            size_t alen = done[run].length - s->hdr;
            if (count >= 1 && g.paylen <= mss && alen + g.paylen <= cap &&
                alen + g.paylen - a.l3 <= 65535 &&
                continues(ab + s->hdr, &a, next, gb + s->hdr, &g)) {
                memcpy(ab + s->hdr + alen, gb + s->hdr + g.hl, g.paylen);
                done[run].length += g.paylen;
                next += g.paylen;
                count++;
                if (gb[s->hdr + g.l4 + 13] & 0x08) { /* PSH: the run ends here */
                    ab[s->hdr + a.l4 + 13] |= 0x08;
                    closed = true;
                }
                if (g.paylen < mss)
                    closed = true; /* a short segment ends a run */
                s->rx_bufs[s->n_rx_bufs++] = (odk_net_packet){done[i].buffer, 0};
                continue;
            }
        }
        if (run != SIZE_MAX)
            finish_run(odk_net_buffer(s->nif, done[run].buffer), s->hdr, done[run].length - s->hdr,
                       &a, count, mss);
        done[out] = done[i];
        if (ok) {
            run = out;
            a = g;
            next = g.seq + g.paylen;
            mss = g.paylen;
            count = 1;
            closed = (gb[s->hdr + g.l4 + 13] & 0x08) != 0;
        } else {
            run = SIZE_MAX;
        }
        out++;
    }
    if (run != SIZE_MAX)
        finish_run(odk_net_buffer(s->nif, done[run].buffer), s->hdr, done[run].length - s->hdr, &a,
                   count, mss);
    return out;
}

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
            iov[i] = (struct iovec){odk_net_buffer(s->nif, bufs[i].buffer) + s->hdr,
                                    odk_net_buffer_size(s->nif) - s->hdr};
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
            uint8_t *buf = odk_net_buffer(s->nif, b.buffer);
            if (!odk_net_if_accepts(s->nif, buf + s->hdr, msgs[i].msg_len)) {
                s->filtered++;
                s->rx_bufs[s->n_rx_bufs++] = b;
                continue;
            }
            /* The wire carries whole frames with their checksums: nothing
             * for the system to know (a zero header). */
            if (s->hdr)
                memset(buf, 0, s->hdr);
            b.length = s->hdr + msgs[i].msg_len;
            if (s->fault == FAULT_BAD_VNET && s->hdr)
                buf[0] = 0x80; /* an unknown flag */
            else if (s->fault == FAULT_BAD_LENGTH)
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
        if (s->hdr && s->fault == FAULT_NONE)
            n_done = coalesce(s, done, n_done);
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
               : strcmp(fault, "rx-bad-vnet") == 0       ? FAULT_BAD_VNET
                                                         : FAULT_NONE;
    bool offloads = strcmp(odk_dict_get_string(dev, "offloads", "tso"), "none") != 0;
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
        .offloads = offloads ? ODK_NET_OFFLOAD_CSUM | ODK_NET_OFFLOAD_TSO4 | ODK_NET_OFFLOAD_TSO6 |
                                   ODK_NET_OFFLOAD_RX
                             : 0,
    };
    odk_value_free(set);
    if ((st = odk_net_if_create(drv, &sim_ops, s, &cfg, &s->nif)) < 0)
        goto fail;
    s->hdr = odk_net_if_offloads(s->nif) ? ODK_NET_VNET_HEADER : 0;
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
