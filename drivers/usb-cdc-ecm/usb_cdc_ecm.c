/* SPDX-License-Identifier: MIT */
/* usb-cdc-ecm: a driver for USB Ethernet adapters of the CDC Ethernet
 * Control Model (ECM 1.2) — the class of many USB Ethernet dongles, of
 * phones' and boards' USB networking gadgets, the job HoRNDIS does for
 * macOS.  It matches the communication interface (class 2, subclass 6) of
 * any device and:
 *   - finds the data interface through the union descriptor, opens it and
 *     selects its alternate setting 1 (setting 0 has no endpoints: the
 *     function idles until the host picks 1);
 *   - reads the MAC address from the string the Ethernet networking
 *     descriptor names (iMACAddress, twelve hex digits);
 *   - reports the link from the NETWORK_CONNECTION and
 *     CONNECTION_SPEED_CHANGE notifications of the interrupt endpoint;
 *   - moves frames between the network family's rings and the bulk pipes,
 *     one frame per transfer, with IN_FLIGHT transfers queued each way. */
#include <stdlib.h>
#include <string.h>

#include "odk/driver.h"
#include "odk/memory.h"
#include "odk/net.h"
#include "odk/queue.h"
#include "odk/usb.h"

#define UNION_DESCRIPTOR 0x06
#define ETHERNET_DESCRIPTOR 0x0f
#define SET_ETHERNET_PACKET_FILTER 0x43
#define NETWORK_CONNECTION 0x00
#define CONNECTION_SPEED_CHANGE 0x2a
/* Directed, broadcast and all-multicast frames (ECM 6.2.4), as Linux's
 * cdc_ether asks for; promiscuous added while the system asks for it.
 * (Multicast address filters would need wNumberMCFilters, which few
 * adapters have: all-multicast stays on, as cdc_ether leaves it.) */
#define PACKET_FILTER 0x0e
#define PACKET_FILTER_PROMISCUOUS 0x01

#define IN_FLIGHT 8u
#define XFER_SIZE 2048u /* a 1514-byte frame and then some */
#define NOTIFY_SIZE 16u

struct ecm;

struct xfer {
    struct ecm *e;
    odk_memory *mem;
    uint8_t *data;
    uint32_t len; /* RX: the frame waiting for a buffer of the family */
    bool busy;
};

struct ecm {
    odk_driver *drv;
    odk_usb_interface *comm, *data;
    odk_usb_pipe *in, *out, *notify;
    odk_net_if *nif;
    struct xfer rx[IN_FLIGHT], tx[IN_FLIGHT], irq;
    struct xfer *rx_waiting[IN_FLIGHT]; /* received, no family buffer yet */
    unsigned n_rx_waiting;
    uint16_t max_packet; /* bulk OUT: a frame of a multiple of it ends with a ZLP */
    bool running, gone;
    bool link_known, link_up; /* the last NETWORK_CONNECTION's */
    uint64_t speed_bps;
};

struct state {
    struct ecm *e;
};

/* ---- receive: bulk IN -> the family's RX ring ------------------------------- */

static void rx_queue(struct xfer *x);

/* Copies x's frame into a buffer of the family; false when it has none. */
static bool rx_deliver(struct ecm *e, struct xfer *x)
{
    odk_net_packet p;
    if (odk_net_rx_dequeue(e->nif, &p, 1) == 0)
        return false; /* rx_available resumes */
    uint32_t n = x->len < odk_net_buffer_size(e->nif) ? x->len : odk_net_buffer_size(e->nif);
    memcpy(odk_net_buffer(e->nif, p.buffer), x->data, n);
    p.length = n; /* a runt is refused, dropped and counted by the family */
    odk_net_rx_complete(e->nif, &p, 1);
    return true;
}

static void rx_done(void *ctx, int status, uint32_t actual, uint64_t ts)
{
    (void)ts;
    struct xfer *x = ctx;
    struct ecm *e = x->e;
    x->busy = false;
    if (status == ODK_E_GONE)
        e->gone = true;
    if (!e->running || e->gone || status == ODK_E_CANCELLED)
        return;
    if (status == ODK_E_STALL) {
        odk_usb_pipe_clear_stall(e->in);
    } else if (status < 0) {
        odk_warn("usb-cdc-ecm: bulk IN: %s", odk_strerror(status));
    } else if (actual > 0) {
        x->len = actual;
        if (e->n_rx_waiting || !rx_deliver(e, x)) {
            e->rx_waiting[e->n_rx_waiting++] = x;
            return;
        }
    }
    rx_queue(x);
}

static void rx_queue(struct xfer *x)
{
    struct ecm *e = x->e;
    if (x->busy || !e->running || e->gone)
        return;
    int st = odk_usb_pipe_async_io(e->in, x->mem, 0, XFER_SIZE, 0xffffffffu, rx_done, x);
    if (st == ODK_OK)
        x->busy = true;
    else if (st == ODK_E_GONE)
        e->gone = true;
    else
        odk_warn("usb-cdc-ecm: cannot queue a bulk-IN transfer: %s", odk_strerror(st));
}

static void ecm_rx_available(odk_net_if *nif)
{
    struct ecm *e = odk_net_if_ctx(nif);
    unsigned done = 0;
    while (done < e->n_rx_waiting && rx_deliver(e, e->rx_waiting[done]))
        done++;
    struct xfer *requeue[IN_FLIGHT];
    memcpy(requeue, e->rx_waiting, done * sizeof requeue[0]);
    e->n_rx_waiting -= done;
    memmove(e->rx_waiting, e->rx_waiting + done, e->n_rx_waiting * sizeof e->rx_waiting[0]);
    for (unsigned i = 0; i < done; i++)
        rx_queue(requeue[i]);
}

/* ---- transmit: the family's TX ring -> bulk OUT ------------------------------ */

static void tx_pump(struct ecm *e);

static void tx_done(void *ctx, int status, uint32_t actual, uint64_t ts)
{
    (void)actual, (void)ts;
    struct xfer *x = ctx;
    struct ecm *e = x->e;
    x->busy = false;
    if (status == ODK_E_GONE)
        e->gone = true;
    else if (status == ODK_E_STALL)
        odk_usb_pipe_clear_stall(e->out);
    else if (status < 0 && status != ODK_E_CANCELLED)
        odk_warn("usb-cdc-ecm: bulk OUT: %s", odk_strerror(status));
    if (e->running)
        tx_pump(e);
}

static void zlp_done(void *ctx, int status, uint32_t actual, uint64_t ts)
{
    (void)ctx, (void)status, (void)actual, (void)ts;
}

/* Sends what the TX ring holds while a transfer is free; the frames are
 * copied into the transfers' buffers, so their ring buffers go back at
 * once.  A frame that fills its last packet exactly is followed by a
 * zero-length packet, which ends it (CDC 1.2 3.8.2). */
static void tx_pump(struct ecm *e)
{
    for (unsigned i = 0; i < IN_FLIGHT && e->running && !e->gone; i++) {
        struct xfer *x = &e->tx[i];
        if (x->busy)
            continue;
        odk_net_packet p;
        if (odk_net_tx_dequeue(e->nif, &p, 1) == 0)
            return;
        uint32_t n = p.length <= XFER_SIZE ? p.length : 0;
        if (n)
            memcpy(x->data, odk_net_buffer(e->nif, p.buffer), n);
        p.length = n; /* 0: too long for the adapter, counted as dropped */
        odk_net_tx_complete(e->nif, &p, 1);
        if (!n)
            continue;
        int st = odk_usb_pipe_async_io(e->out, x->mem, 0, n, 0, tx_done, x);
        if (st == ODK_OK) {
            x->busy = true;
            if (e->max_packet && n % e->max_packet == 0)
                odk_usb_pipe_async_io(e->out, NULL, 0, 0, 0, zlp_done, NULL);
        } else if (st == ODK_E_GONE) {
            e->gone = true;
        } else {
            odk_warn("usb-cdc-ecm: cannot queue a bulk-OUT transfer: %s", odk_strerror(st));
        }
    }
}

static void ecm_tx_available(odk_net_if *nif)
{
    tx_pump(odk_net_if_ctx(nif));
}

/* ---- the link: notifications on the interrupt endpoint ------------------------ */

static void irq_queue(struct ecm *e);

static void irq_done(void *ctx, int status, uint32_t actual, uint64_t ts)
{
    (void)ts;
    struct ecm *e = ctx;
    e->irq.busy = false;
    if (status == ODK_E_GONE)
        e->gone = true;
    if (!e->running || e->gone || status == ODK_E_CANCELLED)
        return;
    const uint8_t *n = e->irq.data;
    if (status == ODK_OK && actual >= 8 && n[0] == 0xa1) {
        if (n[1] == NETWORK_CONNECTION) {
            /* Some devices repeat the state at every poll (QEMU's usb-net
             * does, every 32 ms): only a change is news. */
            bool up = n[2] & 1;
            if (!e->link_known || up != e->link_up) {
                e->link_known = true;
                e->link_up = up;
                odk_info("usb-cdc-ecm: %s: link %s", odk_net_if_name(e->nif), up ? "up" : "down");
                odk_net_set_link(e->nif, up, e->speed_bps);
            }
        } else if (n[1] == CONNECTION_SPEED_CHANGE && actual >= 16) {
            /* DLBitRate: what the host receives at */
            e->speed_bps = (uint64_t)n[8] | (uint64_t)n[9] << 8 | (uint64_t)n[10] << 16 |
                           (uint64_t)n[11] << 24;
            odk_net_set_link(e->nif, true, e->speed_bps);
        }
    }
    irq_queue(e);
}

static void irq_queue(struct ecm *e)
{
    if (!e->irq.busy && e->running && !e->gone &&
        odk_usb_pipe_async_io(e->notify, e->irq.mem, 0, NOTIFY_SIZE, 0xffffffffu, irq_done, e) ==
            ODK_OK)
        e->irq.busy = true;
}

/* ---- the family's callbacks ---------------------------------------------------- */

static int ecm_enable(odk_net_if *nif)
{
    struct ecm *e = odk_net_if_ctx(nif);
    e->nif = nif; /* enable runs inside odk_net_if_create */
    odk_usb_request r = {ODK_USB_REQ_OUT | ODK_USB_REQ_CLASS | ODK_USB_REQ_INTERFACE,
                         SET_ETHERNET_PACKET_FILTER, PACKET_FILTER, 0, 0};
    int st = odk_usb_interface_request(e->comm, &r, NULL, NULL, 0);
    if (st < 0)
        odk_warn("usb-cdc-ecm: SET_ETHERNET_PACKET_FILTER: %s", odk_strerror(st));
    e->running = true;
    for (unsigned i = 0; i < IN_FLIGHT; i++)
        rx_queue(&e->rx[i]);
    irq_queue(e);
    tx_pump(e);
    return ODK_OK;
}

static void ecm_disable(odk_net_if *nif)
{
    struct ecm *e = odk_net_if_ctx(nif);
    e->running = false;
}

/* `ip link set … promisc on` (or tcpdump): the adapter passes every frame. */
static void ecm_set_promiscuous(odk_net_if *nif, bool on)
{
    struct ecm *e = odk_net_if_ctx(nif);
    odk_usb_request r = {ODK_USB_REQ_OUT | ODK_USB_REQ_CLASS | ODK_USB_REQ_INTERFACE,
                         SET_ETHERNET_PACKET_FILTER,
                         (uint16_t)(PACKET_FILTER | (on ? PACKET_FILTER_PROMISCUOUS : 0)), 0, 0};
    int st = odk_usb_interface_request(e->comm, &r, NULL, NULL, 0);
    if (st < 0)
        odk_warn("usb-cdc-ecm: SET_ETHERNET_PACKET_FILTER (promiscuous %s): %s", on ? "on" : "off",
                 odk_strerror(st));
}

static const odk_net_ops ecm_ops = {
    .enable = ecm_enable,
    .disable = ecm_disable,
    .tx_available = ecm_tx_available,
    .rx_available = ecm_rx_available,
    .set_promiscuous = ecm_set_promiscuous,
};

/* ---- descriptors ---------------------------------------------------------------- */

/* The functional descriptor of subtype after the communication interface's
 * descriptor, or NULL. */
static const uint8_t *functional(odk_usb_interface *comm, uint8_t subtype, uint8_t min_len)
{
    const odk_usb_config_descriptor *c = odk_usb_interface_configuration(comm);
    const odk_usb_interface_descriptor *d = odk_usb_interface_descriptor_get(comm);
    for (const odk_usb_descriptor_header *h = NULL;
         (h = odk_usb_next_associated(c, d, h, ODK_USB_DT_CS_INTERFACE));) {
        const uint8_t *b = (const uint8_t *)h;
        if (h->bLength >= min_len && b[2] == subtype)
            return b;
    }
    return NULL;
}

static int hex(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The MAC from string iMACAddress (UTF-16LE, twelve hex digits). */
static int read_mac(struct ecm *e, uint8_t mac[6])
{
    const uint8_t *eth = functional(e->comm, ETHERNET_DESCRIPTOR, 13);
    if (!eth || !eth[3])
        return ODK_E_NOT_FOUND;
    uint8_t s[64];
    uint32_t got = 0;
    odk_usb_request r = {ODK_USB_REQ_IN | ODK_USB_REQ_STANDARD | ODK_USB_REQ_DEVICE, 6,
                         (uint16_t)(ODK_USB_DT_STRING << 8 | eth[3]), 0x0409, sizeof s};
    int st = odk_usb_interface_request(e->comm, &r, s, &got, 0);
    if (st < 0)
        return st;
    if (got < 2 + 24 || s[1] != ODK_USB_DT_STRING)
        return ODK_E_PROTOCOL;
    for (int i = 0; i < 6; i++) {
        int hi = hex(s[2 + 4 * i]), lo = hex(s[2 + 4 * i + 2]);
        if (hi < 0 || lo < 0 || s[3 + 4 * i] || s[3 + 4 * i + 2])
            return ODK_E_PROTOCOL;
        mac[i] = (uint8_t)(hi << 4 | lo);
    }
    return ODK_OK;
}

static uint8_t find_endpoint(odk_usb_interface *intf, uint8_t type, bool in,
                             uint16_t *max_packet)
{
    const odk_usb_config_descriptor *c = odk_usb_interface_configuration(intf);
    const odk_usb_interface_descriptor *d = odk_usb_interface_descriptor_get(intf);
    for (const odk_usb_descriptor_header *h = NULL;
         (h = odk_usb_next_associated(c, d, h, ODK_USB_DT_ENDPOINT));) {
        const odk_usb_endpoint_descriptor *ep = (const odk_usb_endpoint_descriptor *)h;
        if (odk_usb_endpoint_type(ep) == type && odk_usb_endpoint_is_in(ep) == in) {
            if (max_packet)
                *max_packet = (uint16_t)(ep->wMaxPacketSize & 0x7ff);
            return ep->bEndpointAddress;
        }
    }
    return 0;
}

static int new_buffer(struct ecm *e, struct xfer *x, uint32_t size)
{
    x->e = e;
    int st = odk_memory_create(size, ODK_MEM_INOUT, &x->mem);
    if (st == ODK_OK)
        st = odk_memory_map(x->mem, ODK_MAP_READ | ODK_MAP_WRITE, (void **)&x->data);
    return st;
}

/* ---- start and stop ---------------------------------------------------------------- */

static void ecm_stop(odk_driver *drv);

static int open_pipes(struct ecm *e)
{
    const uint8_t *u = functional(e->comm, UNION_DESCRIPTOR, 5);
    uint8_t data_if = u ? u[4] : (uint8_t)(odk_usb_interface_descriptor_get(e->comm)->bInterfaceNumber + 1);
    char *holder = NULL;
    int st = odk_usb_interface_open_other(e->comm, data_if, &e->data, &holder);
    if (st == ODK_E_BUSY)
        odk_error("data interface %u is held by %s", data_if, holder ? holder : "another driver");
    odk_free(holder);
    if (st < 0)
        return st;
    /* Setting 1 carries the frames; selecting it starts the function. */
    if ((st = odk_usb_interface_select_alternate(e->data, 1)) < 0) {
        odk_error("data interface %u: no alternate setting 1: %s", data_if, odk_strerror(st));
        return st;
    }
    uint8_t in = find_endpoint(e->data, ODK_USB_TRANSFER_BULK, true, NULL);
    uint8_t out = find_endpoint(e->data, ODK_USB_TRANSFER_BULK, false, &e->max_packet);
    uint8_t irq = find_endpoint(e->comm, ODK_USB_TRANSFER_INTERRUPT, true, NULL);
    if ((st = odk_usb_interface_copy_pipe(e->data, in, &e->in)) < 0 ||
        (st = odk_usb_interface_copy_pipe(e->data, out, &e->out)) < 0)
        return st;
    if (irq && odk_usb_interface_copy_pipe(e->comm, irq, &e->notify) < 0)
        e->notify = NULL; /* no notifications: the link is assumed up */
    return ODK_OK;
}

static int ecm_start(odk_driver *drv)
{
    struct state *s = odk_driver_state(drv);
    struct ecm *e = s->e = calloc(1, sizeof *e);
    if (!e)
        return ODK_E_NOMEM;
    e->drv = drv;
    e->speed_bps = 480000000u;
    char *holder = NULL;
    int st = odk_usb_interface_open(drv, &e->comm, &holder);
    if (st == ODK_E_BUSY)
        odk_error("interface is held by %s", holder ? holder : "another driver");
    odk_free(holder);
    if (st == ODK_OK)
        st = open_pipes(e);
    for (unsigned i = 0; st == ODK_OK && i < IN_FLIGHT; i++)
        if ((st = new_buffer(e, &e->rx[i], XFER_SIZE)) == ODK_OK)
            st = new_buffer(e, &e->tx[i], XFER_SIZE);
    if (st == ODK_OK)
        st = new_buffer(e, &e->irq, NOTIFY_SIZE);
    odk_net_config cfg = {.mtu = 1500};
    if (st == ODK_OK && (st = read_mac(e, cfg.mac)) < 0)
        odk_error("usb-cdc-ecm: no MAC address (iMACAddress): %s", odk_strerror(st));
    if (st == ODK_OK)
        st = odk_net_if_create(drv, &ecm_ops, e, &cfg, &e->nif);
    if (st == ODK_OK && !e->notify)
        st = odk_net_set_link(e->nif, true, e->speed_bps);
    if (st == ODK_OK)
        st = odk_driver_register_service(drv);
    if (st < 0) {
        ecm_stop(drv);
        return st;
    }
    odk_info("usb-cdc-ecm: %s", odk_net_if_name(e->nif));
    return ODK_OK;
}

static void free_later(void *ctx)
{
    struct ecm *e = ctx;
    for (unsigned i = 0; i < IN_FLIGHT; i++) {
        odk_release(e->rx[i].mem);
        odk_release(e->tx[i].mem);
    }
    odk_release(e->irq.mem);
    free(e);
}

static void ecm_stop(odk_driver *drv)
{
    struct state *s = odk_driver_state(drv);
    struct ecm *e = s->e;
    if (!e)
        return;
    s->e = NULL;
    odk_net_if_destroy(e->nif); /* disables: the pipes stop */
    e->running = false;
    /* Releasing the pipes aborts what is in flight; the completions are
     * queued by then, so the state they point to is freed after them. */
    odk_usb_pipe_release(e->in);
    odk_usb_pipe_release(e->out);
    odk_usb_pipe_release(e->notify);
    odk_usb_interface_close(e->data);
    odk_usb_interface_close(e->comm);
    if (odk_queue_dispatch_async(odk_driver_queue(drv), free_later, e) < 0)
        free_later(e);
}

static const odk_driver_class ecm_class = {
    .name = "UsbCdcEcm",
    .state_size = sizeof(struct state),
    .start = ecm_start,
    .stop = ecm_stop,
};

ODK_DRIVER_CLASS(ecm_class);
