/* SPDX-License-Identifier: MIT */
/* The network family, host side: an interface's buffer pool and rings in
 * shared memory, the pump between the TAP queue and the rings, what the
 * driver reports (link, MAC, MTU) passed on to odkd, and the counters.
 * Everything here runs on the driver's default queue. */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_net.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <unistd.h>

#include "families/net/filter.h"
#include "families/net/pool.h"
#include "families/net/vnet.h"
#include "odk/net.h"
#include "runtime/driver_internal.h"
#include "runtime/host_link.h"

#define DEFAULT_BUFFERS 512u
#define TAP_BATCH 64u                       /* frames read per wake-up before the driver is told */
#define COUNTERS_NS (1000u * 1000u * 1000u) /* how often the registry's counters are refreshed */
#define BAD_LOG_MAX 10 /* bad completions logged one by one; later ones only counted */
#define VLAN_TAG 4u
#define TSO_FRAME_MAX 65536u /* the longest frame with TSO (the kernel's GSO limit) */
#define OFFLOADS_KNOWN                                                                             \
    (ODK_NET_OFFLOAD_CSUM | ODK_NET_OFFLOAD_TSO4 | ODK_NET_OFFLOAD_TSO6 | ODK_NET_OFFLOAD_RX)

struct odk_net_if {
    odk_driver *drv;
    const odk_net_ops *ops;
    void *ctx;
    uint64_t node;
    char name[64];
    int tap;
    odk_fd_source *src;
    bool reading; /* src waits for EPOLLIN */
    odk_timer *timer;
    odk_action *timer_action;
    void *shm;
    size_t shm_len;
    uint8_t *bufs;
    struct net_pool pool;
    odk_ring txs, txc, rxs, rxc;
    uint32_t rx_posted; /* buffers in the RX submission ring or with the driver for RX */
    uint32_t rx_target; /* how many the family keeps there */
    bool rx_starved;    /* the driver found the RX submission ring empty */
    uint32_t mtu, max_mtu;
    uint32_t offloads;
    uint32_t hdr; /* bytes of odk_net_vnet_header before each frame: 0 without offloads */
    odk_net_counters c, published;
    unsigned bad_logged;
    bool enabled;
    /* What the system set (odkd's net-state), as last delivered. */
    int sys_ev; /* odkd writes it when that changes */
    odk_fd_source *sys_src;
    struct net_filter sys;
    bool sys_known;
};

/* ---- counters ----------------------------------------------------------- */

static void publish_counters(odk_net_if *n)
{
    if (memcmp(&n->c, &n->published, sizeof n->c) == 0)
        return;
    odk_value *v = odk_value_new_dict();
    const struct {
        const char *key;
        uint64_t val;
    } f[] = {
        {"TxPackets", n->c.tx_packets}, {"TxBytes", n->c.tx_bytes},
        {"TxErrors", n->c.tx_errors},   {"TxDrops", n->c.tx_drops},
        {"RxPackets", n->c.rx_packets}, {"RxBytes", n->c.rx_bytes},
        {"RxErrors", n->c.rx_errors},   {"RxDrops", n->c.rx_drops},
    };
    for (size_t i = 0; v && i < sizeof f / sizeof f[0]; i++)
        if (odk_dict_set_int(v, f[i].key, (int64_t)f[i].val) < 0) {
            odk_value_free(v);
            v = NULL;
        }
    if (v && odk_driver_set_node_property(n->drv, n->node, "Counters", v) == ODK_OK)
        n->published = n->c;
}

static void on_timer(void *ctx, odk_action *a)
{
    (void)a;
    publish_counters(ctx);
}

static void bad_completion(odk_net_if *n, const char *dir, const odk_net_packet *p, int why)
{
    if (n->bad_logged >= BAD_LOG_MAX)
        return;
    n->bad_logged++;
    if (why == ODK_E_NOT_FOUND)
        odk_warn("net %s: the driver completed %s buffer %u, which it does not hold: dropped%s",
                 n->name, dir, p->buffer,
                 n->bad_logged == BAD_LOG_MAX ? " (no more such logs)" : "");
    else
        odk_warn("net %s: the driver completed %s buffer %u with length %u (must be %u..%u): "
                 "dropped%s",
                 n->name, dir, p->buffer, p->length, ODK_NET_MIN_FRAME + n->hdr, n->pool.size,
                 n->bad_logged == BAD_LOG_MAX ? " (no more such logs)" : "");
}

/* ---- the pump: TAP queue <-> rings ---------------------------------------- */

static void set_reading(odk_net_if *n, bool on)
{
    if (on == n->reading)
        return;
    n->reading = on;
    odk_fd_source_set_enabled(n->src, on);
}

/* Keeps the RX submission ring stocked with empty buffers. */
static void refill_rx(odk_net_if *n)
{
    bool added = false;
    while (n->rx_posted < n->rx_target) {
        uint32_t b;
        if (net_pool_get(&n->pool, &b) < 0)
            break;
        odk_net_packet p = {b, n->pool.size};
        if (net_ring_push(&n->rxs, &p) < 0) {
            net_pool_put(&n->pool, b);
            break;
        }
        net_pool_lend(&n->pool, b, NET_DRIVER_RX);
        n->rx_posted++;
        added = true;
    }
    if (added && n->rx_starved) {
        n->rx_starved = false;
        n->ops->rx_available(n);
    }
}

/* TAP queue -> TX submission ring, a batch at a time.  With no free buffer
 * it stops reading; the kernel then queues (and at its limit drops) frames
 * until the driver completes some. */
static void pump_tap(odk_net_if *n)
{
    size_t got = 0;
    while (got < TAP_BATCH) {
        uint32_t b;
        if (net_pool_get(&n->pool, &b) < 0) {
            set_reading(n, false);
            break;
        }
        /* A frame longer than a buffer (the system set an MTU above the
         * driver's max_mtu) would be cut silently: the spare byte shows it.
         * With offloads the header goes to the driver, in the buffer. */
        struct virtio_net_hdr vh;
        uint8_t spare;
        struct iovec iov[3] = {
            {&vh, sizeof vh}, {n->bufs + (size_t)b * n->pool.size, n->pool.size}, {&spare, 1}};
        ssize_t r = n->hdr ? readv(n->tap, iov + 1, 2) : readv(n->tap, iov, 3);
        if (r < 0) {
            net_pool_put(&n->pool, b);
            if (errno != EAGAIN && errno != EINTR) {
                n->c.tx_errors++;
                set_reading(n, false); /* a broken queue: the driver's restart fixes it */
                odk_error("net %s: reading the TAP queue: %s", n->name, strerror(errno));
            }
            break;
        }
        size_t len = n->hdr ? (size_t)r : (size_t)r > sizeof vh ? (size_t)r - sizeof vh : 0;
        /* Only a TSO frame (a GSO type in its header) may be longer than
         * the driver's max_mtu allows: the buffer is larger for it. */
        uint32_t max_frame = n->max_mtu + ODK_NET_ETHER_HEADER + VLAN_TAG;
        bool too_long = len > n->pool.size ||
                        (len > n->hdr + max_frame &&
                         !(n->hdr && ((odk_net_vnet_header *)(void *)iov[1].iov_base)->gso_type));
        if (len < ODK_NET_MIN_FRAME + n->hdr || too_long) {
            if (too_long && n->bad_logged < BAD_LOG_MAX) {
                n->bad_logged++;
                odk_warn("net %s: a frame longer than %u bytes (the MTU is above the driver's "
                         "maximum, %u): dropped",
                         n->name, max_frame, n->max_mtu);
            }
            n->c.tx_errors++;
            net_pool_put(&n->pool, b);
            continue;
        }
        odk_net_packet p = {b, (uint32_t)len};
        if (net_ring_push(&n->txs, &p) < 0) { /* cannot happen: the ring holds every buffer */
            n->c.tx_drops++;
            net_pool_put(&n->pool, b);
            break;
        }
        net_pool_lend(&n->pool, b, NET_DRIVER_TX);
        got++;
    }
    if (got)
        n->ops->tx_available(n);
}

static void on_tap(void *ctx, uint32_t revents)
{
    (void)revents;
    pump_tap(ctx);
}

size_t odk_net_tx_dequeue(odk_net_if *n, odk_net_packet *pkts, size_t max)
{
    size_t i = 0;
    while (i < max && net_ring_pop(&n->txs, &pkts[i]) == ODK_OK)
        i++;
    return i;
}

int odk_net_tx_complete(odk_net_if *n, const odk_net_packet *pkts, size_t count)
{
    int ret = ODK_OK;
    for (size_t i = 0; i < count; i++) {
        /* Through the completion ring, as a driver in another process
         * would hand them back. */
        int st = net_ring_push(&n->txc, &pkts[i]);
        odk_net_packet p;
        if (st == ODK_OK)
            st = net_ring_pop(&n->txc, &p);
        if (st < 0)
            return ODK_E_PROTOCOL;
        st = net_pool_take_back(&n->pool, &p, NET_DRIVER_TX, 0);
        if (st == ODK_E_NOT_FOUND) {
            n->c.tx_errors++;
            bad_completion(n, "TX", &p, st);
            ret = ODK_E_INVALID;
            continue;
        }
        if (p.length == 0) {
            n->c.tx_drops++;
        } else {
            n->c.tx_packets++;
            n->c.tx_bytes += p.length > n->hdr ? p.length - n->hdr : 0;
        }
        net_pool_put(&n->pool, p.buffer);
    }
    refill_rx(n);
    if (!n->reading && n->pool.n_free > 0)
        set_reading(n, true);
    return ret;
}

size_t odk_net_rx_dequeue(odk_net_if *n, odk_net_packet *bufs, size_t max)
{
    size_t i = 0;
    while (i < max && net_ring_pop(&n->rxs, &bufs[i]) == ODK_OK)
        i++;
    if (i == 0 && max > 0) {
        n->rx_starved = true;
        refill_rx(n);
    }
    return i;
}

int odk_net_rx_complete(odk_net_if *n, const odk_net_packet *pkts, size_t count)
{
    int ret = ODK_OK;
    static const struct virtio_net_hdr vh; /* no offload asked: nothing to fill in */
    for (size_t i = 0; i < count; i++) {
        int st = net_ring_push(&n->rxc, &pkts[i]);
        odk_net_packet p;
        if (st == ODK_OK)
            st = net_ring_pop(&n->rxc, &p);
        if (st < 0)
            return ODK_E_PROTOCOL;
        st = net_pool_take_back(&n->pool, &p, NET_DRIVER_RX, ODK_NET_MIN_FRAME + n->hdr);
        uint8_t *buf = st != ODK_E_NOT_FOUND ? n->bufs + (size_t)p.buffer * n->pool.size : NULL;
        if (st == ODK_OK && n->hdr) {
            odk_net_vnet_header h;
            memcpy(&h, buf, sizeof h); /* once: the driver may still write the buffer */
            if (net_vnet_check(&h, p.length - n->hdr) < 0) {
                n->c.rx_errors++;
                if (n->bad_logged < BAD_LOG_MAX) {
                    n->bad_logged++;
                    odk_warn("net %s: the driver completed RX buffer %u with a bad offload header "
                             "(flags %u, gso %u/%u, header %u, checksum at %u+%u, frame %u): "
                             "dropped",
                             n->name, p.buffer, h.flags, h.gso_type, h.gso_size, h.hdr_len,
                             h.csum_start, h.csum_offset, p.length - n->hdr);
                }
                ret = ODK_E_INVALID;
                n->rx_posted--;
                net_pool_put(&n->pool, p.buffer);
                continue;
            }
            memcpy(buf, &h, sizeof h);
        }
        if (st < 0) {
            n->c.rx_errors++;
            bad_completion(n, "RX", &p, st);
            ret = ODK_E_INVALID;
            if (st == ODK_E_NOT_FOUND)
                continue;
        } else {
            struct iovec iov[2] = {{(void *)&vh, sizeof vh}, {buf, p.length}};
            if (writev(n->tap, n->hdr ? iov + 1 : iov, n->hdr ? 1 : 2) < 0) {
                n->c.rx_drops++;
            } else {
                n->c.rx_packets++;
                n->c.rx_bytes += p.length - n->hdr;
            }
        }
        n->rx_posted--;
        net_pool_put(&n->pool, p.buffer);
    }
    refill_rx(n);
    if (!n->reading && n->pool.n_free > 0)
        set_reading(n, true);
    return ret;
}

/* ---- what the system sets ------------------------------------------------------ */

static void publish_sys(odk_net_if *n)
{
    odk_value *v = odk_value_new_dict();
    odk_value *list = odk_value_new_array();
    for (uint32_t i = 0; list && i < n->sys.n_mc; i++) {
        const uint8_t *m = n->sys.mc[i];
        char s[18];
        snprintf(s, sizeof s, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
        if (odk_array_append(list, odk_value_new_string(s)) < 0) {
            odk_value_free(list);
            list = NULL;
        }
    }
    const uint8_t *a = n->sys.mac;
    char addr[18];
    snprintf(addr, sizeof addr, "%02x:%02x:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3], a[4],
             a[5]);
    if (!v || odk_dict_set(v, "Multicast", list) < 0 || odk_dict_set_bool(v, "Up", n->sys.up) < 0 ||
        odk_dict_set_string(v, "Address", addr) < 0 ||
        odk_dict_set_bool(v, "Promiscuous", n->sys.promisc) < 0 ||
        odk_dict_set_bool(v, "AllMulticast", n->sys.allmulti) < 0) {
        odk_value_free(v);
        return;
    }
    odk_driver_set_node_property(n->drv, n->node, "IOInterfaceState", v);
}

/* Asks odkd what the system set, and calls the driver for what changed
 * (for everything, the first time).  Going down is told first, coming up
 * last, so a driver never filters for an interface that is down. */
static void fetch_sys(odk_net_if *n)
{
    odk_value *args = odk_value_new_dict();
    odk_value *reply = NULL;
    if (!args || odk_dict_set_int(args, "node", (int64_t)n->node) < 0) {
        odk_value_free(args);
        return;
    }
    int st = host_link_request("net-state", args, &reply);
    struct net_filter f;
    if (st == ODK_OK && (st = net_filter_from_value(reply, &f)) < 0)
        odk_error("net %s: odkd's net-state reply is malformed", n->name);
    odk_value_free(reply);
    if (st < 0)
        return;
    bool all = !n->sys_known;
    struct net_filter old = n->sys;
    n->sys = f;
    n->sys_known = true;
    const odk_net_ops *o = n->ops;
    if (o->set_interface_up && !f.up && (all || old.up))
        o->set_interface_up(n, false);
    if (o->set_multicast_list &&
        (all || old.n_mc != f.n_mc || memcmp(old.mc, f.mc, (size_t)f.n_mc * 6) != 0))
        o->set_multicast_list(n, (const uint8_t(*)[6])f.mc, f.n_mc);
    if (o->set_all_multicast && (all || old.allmulti != f.allmulti))
        o->set_all_multicast(n, f.allmulti);
    if (o->set_promiscuous && (all || old.promisc != f.promisc))
        o->set_promiscuous(n, f.promisc);
    if (o->set_interface_up && f.up && (all || !old.up))
        o->set_interface_up(n, true);
    publish_sys(n);
}

static void on_sys(void *ctx, uint32_t revents)
{
    (void)revents;
    odk_net_if *n = ctx;
    uint64_t v;
    if (read(n->sys_ev, &v, sizeof v) == sizeof v && n->enabled)
        fetch_sys(n);
}

bool odk_net_if_accepts(const odk_net_if *n, const uint8_t *frame, size_t len)
{
    return net_filter_accepts(&n->sys, frame, len);
}

/* ---- what the driver reports ------------------------------------------------ */

static int tell_odkd(odk_net_if *n, odk_value *args)
{
    if (!args || odk_dict_set_int(args, "node", (int64_t)n->node) < 0) {
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    return host_link_request("net-set", args, NULL);
}

int odk_net_set_link(odk_net_if *n, bool up, uint64_t speed_bps)
{
    odk_value *a = odk_value_new_dict();
    if (a && (odk_dict_set_bool(a, "link", up) < 0 ||
              odk_dict_set_int(a, "speed",
                               (int64_t)(speed_bps > INT64_MAX ? INT64_MAX : speed_bps)) < 0)) {
        odk_value_free(a);
        return ODK_E_NOMEM;
    }
    return tell_odkd(n, a);
}

static bool mac_ok(const uint8_t mac[6])
{
    static const uint8_t zero[6];
    return !(mac[0] & 1) && memcmp(mac, zero, 6) != 0;
}

int odk_net_set_mac(odk_net_if *n, const uint8_t mac[6])
{
    if (!mac || !mac_ok(mac))
        return ODK_E_INVALID;
    odk_value *a = odk_value_new_dict();
    odk_value *m = odk_value_new_data(mac, 6);
    if (!a || !m || odk_dict_set(a, "mac", m) < 0) {
        if (!a)
            odk_value_free(m);
        odk_value_free(a);
        return ODK_E_NOMEM;
    }
    int st = tell_odkd(n, a);
    if (st == ODK_OK)
        memcpy(n->sys.mac, mac, 6); /* until odkd reads it back */
    return st;
}

int odk_net_set_mtu(odk_net_if *n, uint32_t mtu)
{
    if (mtu < 68 || mtu > n->max_mtu)
        return ODK_E_INVALID;
    odk_value *a = odk_value_new_dict();
    if (a && odk_dict_set_int(a, "mtu", mtu) < 0) {
        odk_value_free(a);
        return ODK_E_NOMEM;
    }
    int st = tell_odkd(n, a);
    if (st == ODK_OK)
        n->mtu = mtu;
    return st;
}

/* ---- creation and teardown -------------------------------------------------- */

static int make_shm(odk_net_if *n, uint32_t count, uint32_t size)
{
    uint32_t ring = net_ring_size(count);
    size_t ring_bytes = (odk_ring_bytes(ring) + 63) & ~(size_t)63;
    size_t rings = 4 * ring_bytes;
    size_t pool_off = (rings + 4095) & ~(size_t)4095;
    n->shm_len = pool_off + (size_t)count * size;
    int fd = memfd_create("odk-net-pool", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)n->shm_len) < 0) {
        if (fd >= 0)
            close(fd);
        return ODK_E_IO;
    }
    n->shm = mmap(NULL, n->shm_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (n->shm == MAP_FAILED) {
        n->shm = NULL;
        return ODK_E_NOMEM;
    }
    odk_ring *rs[4] = {&n->txs, &n->txc, &n->rxs, &n->rxc};
    for (int i = 0; i < 4; i++) {
        int st = odk_ring_format(rs[i], (uint8_t *)n->shm + i * ring_bytes, ring_bytes, ring);
        if (st < 0)
            return st;
    }
    n->bufs = (uint8_t *)n->shm + pool_off;
    return net_pool_init(&n->pool, count, size);
}

static int open_tap(odk_net_if *n, const char *base, const uint8_t mac[6])
{
    odk_value *args = odk_value_new_dict();
    odk_value *m = odk_value_new_data(mac, 6);
    if (!args || !m || odk_dict_set(args, "mac", m) < 0 ||
        odk_dict_set_int(args, "node", (int64_t)n->node) < 0 ||
        odk_dict_set_string(args, "base", base) < 0 || odk_dict_set_int(args, "mtu", n->mtu) < 0 ||
        odk_dict_set_int(args, "offloads", n->offloads) < 0) {
        if (!args)
            odk_value_free(m);
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    odk_value *reply = NULL;
    int fds[2] = {-1, -1};
    size_t n_fds = 2;
    int st = host_link_request_fds("net-tap", args, &reply, fds, &n_fds);
    if (st == ODK_OK && n_fds != 2)
        st = ODK_E_PROTOCOL;
    if (st == ODK_OK) {
        n->tap = fds[0];
        n->sys_ev = fds[1];
        snprintf(n->name, sizeof n->name, "%s", odk_dict_get_string(reply, "name", "?"));
    } else {
        for (size_t i = 0; i < n_fds; i++)
            close(fds[i]);
    }
    odk_value_free(reply);
    return st;
}

int odk_net_if_create(odk_driver *drv, const odk_net_ops *ops, void *ctx, const odk_net_config *cfg,
                      odk_net_if **out)
{
    if (out)
        *out = NULL;
    if (!drv || !ops || !ops->tx_available || !ops->rx_available || !out)
        return ODK_E_INVALID;
    odk_net_config c = cfg ? *cfg : (odk_net_config){0};
    if (!c.mtu)
        c.mtu = 1500;
    if (!c.max_mtu)
        c.max_mtu = c.mtu;
    if (!c.buffers)
        c.buffers = DEFAULT_BUFFERS;
    bool tso = c.offloads & (ODK_NET_OFFLOAD_TSO4 | ODK_NET_OFFLOAD_TSO6);
    if ((c.offloads & ~OFFLOADS_KNOWN) || (tso && !(c.offloads & ODK_NET_OFFLOAD_CSUM))) {
        odk_error("net: offloads %#x: unknown bits, or TSO without CSUM", c.offloads);
        return ODK_E_INVALID;
    }
    if (c.mtu < 68 || c.mtu > c.max_mtu || c.max_mtu > ODK_NET_MAX_MTU || c.buffers < 16 ||
        c.buffers > 65536 || (c.buffers & (c.buffers - 1))) {
        odk_error("net: mtu %u, max_mtu %u, %u buffers: need 68 <= mtu <= max_mtu <= %u and a "
                  "power of two in 16..65536 buffers",
                  c.mtu, c.max_mtu, c.buffers, ODK_NET_MAX_MTU);
        return ODK_E_INVALID;
    }
    static const uint8_t zero[6];
    if (memcmp(c.mac, zero, 6) == 0) {
        if (getrandom(c.mac, 6, 0) != 6)
            return ODK_E_IO;
        c.mac[0] = (uint8_t)((c.mac[0] & 0xfe) | 0x02); /* unicast, locally administered */
    } else if (!mac_ok(c.mac)) {
        odk_error("net: %02x:%02x:%02x:%02x:%02x:%02x is not a unicast address", c.mac[0], c.mac[1],
                  c.mac[2], c.mac[3], c.mac[4], c.mac[5]);
        return ODK_E_INVALID;
    }
    const char *base =
        c.base_name ? c.base_name
                    : odk_dict_get_string(odk_driver_personality(drv), "OdkNetBaseName", "odknet");
    odk_net_if *n = calloc(1, sizeof *n);
    if (!n)
        return ODK_E_NOMEM;
    n->drv = drv;
    n->ops = ops;
    n->ctx = ctx;
    n->tap = -1;
    n->sys_ev = -1;
    /* Until odkd says otherwise: up, for the driver's own address. */
    n->sys.up = true;
    memcpy(n->sys.mac, c.mac, 6);
    n->mtu = c.mtu;
    n->max_mtu = c.max_mtu;
    n->offloads = c.offloads;
    n->hdr = c.offloads ? ODK_NET_VNET_HEADER : 0;
    snprintf(n->name, sizeof n->name, "%s?", base);
    uint32_t frame = c.max_mtu + ODK_NET_ETHER_HEADER + VLAN_TAG;
    if (tso && frame < TSO_FRAME_MAX + VLAN_TAG)
        frame = TSO_FRAME_MAX + VLAN_TAG;
    int st = make_shm(n, c.buffers, n->hdr + frame);
    if (st < 0)
        goto fail;
    n->rx_target = c.buffers / 2;
    odk_value *props = odk_value_new_dict();
    if (!props || odk_dict_set_int(props, "Buffers", c.buffers) < 0 ||
        odk_dict_set_int(props, "BufferSize", n->pool.size) < 0 ||
        odk_dict_set_int(props, "IOMaxPacketSize", c.max_mtu + ODK_NET_ETHER_HEADER) < 0 ||
        odk_dict_set_int(props, "Offloads", c.offloads) < 0) {
        odk_value_free(props);
        st = ODK_E_NOMEM;
        goto fail;
    }
    if ((st = odk_driver_publish_node(drv, "IOEthernetInterface", "IOService", props, &n->node)) <
        0)
        goto fail;
    if ((st = open_tap(n, base, c.mac)) < 0)
        goto fail;
    fcntl(n->tap, F_SETFL, fcntl(n->tap, F_GETFL) | O_NONBLOCK);
    if ((st = odk_fd_source_create(odk_driver_queue(drv), n->tap, EPOLLIN, on_tap, n, &n->src)) < 0)
        goto fail;
    n->reading = true;
    if ((st = odk_fd_source_create(odk_driver_queue(drv), n->sys_ev, EPOLLIN, on_sys, n,
                                   &n->sys_src)) < 0)
        goto fail;
    if ((st = odk_timer_create(odk_driver_queue(drv), &n->timer)) < 0 ||
        (st = odk_action_create(odk_driver_queue(drv), on_timer, n, &n->timer_action)) < 0 ||
        (st = odk_timer_set_handler(n->timer, n->timer_action)) < 0 ||
        (st = odk_timer_arm(n->timer, COUNTERS_NS, COUNTERS_NS)) < 0)
        goto fail;
    refill_rx(n);
    if (ops->enable && (st = ops->enable(n)) < 0)
        goto fail;
    n->enabled = true;
    fetch_sys(n);
    odk_info("net %s ready (node %llu, %u buffers of %u bytes)", n->name,
             (unsigned long long)n->node, c.buffers, n->pool.size);
    *out = n;
    return ODK_OK;
fail:
    odk_error("net %s: %s", n->name, odk_strerror(st));
    odk_net_if_destroy(n);
    return st;
}

void odk_net_if_destroy(odk_net_if *n)
{
    if (!n)
        return;
    if (n->enabled && n->ops->disable)
        n->ops->disable(n);
    n->enabled = false;
    if (n->timer) {
        odk_timer_cancel(n->timer, NULL, NULL);
        odk_release(n->timer);
    }
    if (n->timer_action) {
        odk_action_cancel(n->timer_action);
        odk_release(n->timer_action);
    }
    if (n->src) {
        odk_fd_source_cancel(n->src, NULL, NULL);
        odk_release(n->src);
    }
    if (n->sys_src) {
        odk_fd_source_cancel(n->sys_src, NULL, NULL);
        odk_release(n->sys_src);
    }
    if (n->sys_ev >= 0)
        close(n->sys_ev);
    if (n->node) {
        publish_counters(n);
        odk_driver_withdraw_node(n->drv, n->node);
    }
    if (n->tap >= 0)
        close(n->tap);
    net_pool_fini(&n->pool);
    if (n->shm)
        munmap(n->shm, n->shm_len);
    free(n);
}

void *odk_net_if_ctx(const odk_net_if *n)
{
    return n->ctx;
}

odk_driver *odk_net_if_driver(const odk_net_if *n)
{
    return n->drv;
}

uint64_t odk_net_if_node(const odk_net_if *n)
{
    return n->node;
}

const char *odk_net_if_name(const odk_net_if *n)
{
    return n->name;
}

uint32_t odk_net_if_mtu(const odk_net_if *n)
{
    return n->mtu;
}

void odk_net_if_counters(const odk_net_if *n, odk_net_counters *out)
{
    *out = n->c;
}

uint8_t *odk_net_buffer(odk_net_if *n, uint32_t buffer)
{
    return buffer < n->pool.count ? n->bufs + (size_t)buffer * n->pool.size : NULL;
}

uint32_t odk_net_buffer_size(const odk_net_if *n)
{
    return n->pool.size;
}

uint32_t odk_net_buffer_count(const odk_net_if *n)
{
    return n->pool.count;
}

uint32_t odk_net_if_offloads(const odk_net_if *n)
{
    return n->offloads;
}
