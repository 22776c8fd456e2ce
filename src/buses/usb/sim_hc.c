/* SPDX-License-Identifier: MIT */
/* sim_hc.c — the simulated USB host controller inside odkd.
 *
 * `odkctl usb plug MODEL` starts the model's process (odk-usb-model) with
 * a connection on its fd 3 and enumerates it as a host controller would:
 * the device descriptor, every configuration (first 9 bytes, then
 * wTotalLength), the strings.  Each is checked (odk/usb_descriptors.h);
 * a device that fails gets an IOUSBHostDevice node carrying the reason in
 * OdkUSBError that is never registered, so nothing matches it.  A good one
 * is registered and matched; when no driver takes the whole device, odkd
 * selects its first configuration (as IOKit's composite driver does) and
 * publishes one IOUSBHostInterface node per interface.
 *
 * odkd never waits on a model: every request is answered through the loop,
 * and a model that leaves one unanswered for MODEL_DEADLINE_MS is killed
 * and its device unplugged, as is a model that crashes or reports that
 * its device dropped off the bus.  Drivers reach the model directly: a
 * host's usb-open gets one end of a fresh socket whose other end odkd
 * hands the model (USBW_ATTACH); odkd is never on the data path. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buses/usb/sim_hc.h"
#include "buses/usb/sim_wire.h"
#include "daemon/bookkeeping/instance.h"
#include "daemon/core/loop.h"
#include "daemon/core/msg.h"
#include "daemon/front/requests.h"
#include "daemon/front/server.h"
#include "daemon/odkd.h"
#include "daemon/policy/manager.h"
#include "odk/log.h"
#include "odk/status.h"
#include "odk/usb_descriptors.h"

#define MODEL_DEADLINE_MS 2000
#define MAX_CONFIGS 8

struct pending {
    uint32_t id;
    void (*fn)(struct odkd *d, struct usb_dev *dev, const struct usb_wire *w, const uint8_t *body,
               size_t len);
    /* or: the odkctl request waiting for the model's status */
    bool for_client;
    uint64_t conn_id;
    uint32_t seq;
    struct pending *next;
};

/* Who holds an interface open: an instance, by id and host pid. */
struct holder {
    uint32_t instance;
    pid_t pid;
    char *who; /* "BUNDLE#N (pid P)" */
};

struct usb_iface {
    uint64_t node;
    uint8_t number;
    struct holder holder;
};

struct usb_dev {
    struct usb_sim *sim;
    pid_t pid;
    int fd;
    struct watch w;
    char *model;
    unsigned port;
    odk_usb_speed speed;
    uint64_t node; /* 0 until enumerated */
    bool ready, broken, dying;

    /* enumeration */
    uint8_t desc[18];
    uint8_t *configs[MAX_CONFIGS];
    size_t config_len[MAX_CONFIGS];
    unsigned n_configs, step;
    char strings[3][256]; /* manufacturer, product, serial */

    /* the plug request waiting for the end of enumeration */
    uint64_t plug_conn;
    uint32_t plug_seq;
    bool plug_waiting;

    struct pending *pending;
    uint32_t next_id;
    uint64_t deadline_timer;

    uint8_t config;     /* active bConfigurationValue */
    uint8_t alts[256];
    bool match_next;    /* register the interfaces of the next configuration */
    struct usb_iface *ifaces;
    unsigned n_ifaces;
    odk_value *report; /* the model's report, kept until the node exists */

    struct usb_dev *next;
};

static void dev_fail(struct odkd *d, struct usb_dev *dev, const char *why);
static void enumerate_next(struct odkd *d, struct usb_dev *dev);

/* ---- talking to the model ------------------------------------------------ */

static int dev_send(struct usb_dev *dev, const struct usb_wire *w, const void *body, size_t len,
                    int fd)
{
    /* Never waits: a model that does not read is a hung model. */
    return usb_wire_send(dev->fd, w, body, len, fd, MSG_DONTWAIT) < 0 ? ODK_E_IO : ODK_OK;
}

static void deadline_passed(struct odkd *d, void *ptr)
{
    struct usb_dev *dev = ptr;
    dev->deadline_timer = 0;
    char why[160];
    snprintf(why, sizeof why, "the device model %s did not answer within %d ms", dev->model,
             MODEL_DEADLINE_MS);
    dev_fail(d, dev, why);
}

/* Sends a request whose reply fn handles; the model must answer in time. */
static int dev_request(struct odkd *d, struct usb_dev *dev, struct usb_wire *w, const void *body,
                       size_t len, int fd,
                       void (*fn)(struct odkd *, struct usb_dev *, const struct usb_wire *,
                                  const uint8_t *, size_t))
{
    struct pending *p = calloc(1, sizeof *p);
    if (!p)
        return ODK_E_NOMEM;
    w->id = p->id = ++dev->next_id ? dev->next_id : ++dev->next_id;
    p->fn = fn;
    int st = dev_send(dev, w, body, len, fd);
    if (st < 0) {
        free(p);
        return st;
    }
    p->next = dev->pending;
    dev->pending = p;
    if (!dev->deadline_timer)
        dev->deadline_timer = loop_timer(d, MODEL_DEADLINE_MS, deadline_passed, dev);
    return ODK_OK;
}

/* A request an odkctl request waits on: the model's status is its reply. */
static int client_request(struct client_request *r, struct usb_dev *dev, struct usb_wire *w,
                          const void *body, size_t len)
{
    int st = dev_request(r->d, dev, w, body, len, -1, NULL);
    if (st < 0)
        return st;
    dev->pending->for_client = true; /* dev_request put it first */
    dev->pending->conn_id = r->conn_id;
    dev->pending->seq = r->seq;
    r->later = true;
    return ODK_OK;
}

static int control_in(struct odkd *d, struct usb_dev *dev, uint8_t req, uint16_t value,
                      uint16_t index, uint16_t len,
                      void (*fn)(struct odkd *, struct usb_dev *, const struct usb_wire *,
                                 const uint8_t *, size_t))
{
    struct usb_wire w = {.op = USBW_CONTROL,
                         .setup = {0x80, req, (uint8_t)value, (uint8_t)(value >> 8),
                                   (uint8_t)index, (uint8_t)(index >> 8), (uint8_t)len,
                                   (uint8_t)(len >> 8)}};
    return dev_request(d, dev, &w, NULL, 0, -1, fn);
}

/* ---- nodes --------------------------------------------------------------- */

static struct usb_sim *sim;

static struct usb_dev *dev_by_node(struct odkd *d, uint64_t node, struct usb_iface **iface)
{
    (void)d;
    for (struct usb_dev *dev = sim ? sim->devs : NULL; dev; dev = dev->next) {
        if (dev->node && dev->node == node) {
            if (iface)
                *iface = NULL;
            return dev;
        }
        for (unsigned i = 0; i < dev->n_ifaces; i++)
            if (dev->ifaces[i].node == node) {
                if (iface)
                    *iface = &dev->ifaces[i];
                return dev;
            }
    }
    return NULL;
}

static const uint8_t *active_config(const struct usb_dev *dev, unsigned *index)
{
    for (unsigned i = 0; i < dev->n_configs; i++)
        if (dev->configs[i][5] == dev->config) {
            if (index)
                *index = i;
            return dev->configs[i];
        }
    return NULL;
}

static void drop_interfaces(struct odkd *d, struct usb_dev *dev)
{
    struct usb_iface *ifaces = dev->ifaces;
    unsigned n = dev->n_ifaces;
    dev->ifaces = NULL;
    dev->n_ifaces = 0;
    for (unsigned i = 0; i < n; i++) {
        reg_node *node = registry_find(d->reg, ifaces[i].node);
        if (node && node->state != REG_TERMINATING)
            manager_remove_tree(d, node, NULL, NULL);
        free(ifaces[i].holder.who);
    }
    free(ifaces);
}

static const odk_usb_device_descriptor *devdesc(const struct usb_dev *dev)
{
    return (const odk_usb_device_descriptor *)dev->desc;
}

/* One IOUSBHostInterface node per interface of the active configuration,
 * with IOKit's properties (and the device's ids, which IOKit copies onto
 * interfaces too). */
static void publish_interfaces(struct odkd *d, struct usb_dev *dev)
{
    const odk_usb_config_descriptor *c = (const void *)active_config(dev, NULL);
    reg_node *parent = registry_find(d->reg, dev->node);
    if (!c || !parent)
        return;
    unsigned n = 0;
    for (const odk_usb_interface_descriptor *in = NULL; (in = odk_usb_next_interface(c, in));)
        n += in->bAlternateSetting == 0;
    dev->ifaces = calloc(n ? n : 1, sizeof *dev->ifaces);
    if (!dev->ifaces)
        return;
    for (const odk_usb_interface_descriptor *in = NULL; (in = odk_usb_next_interface(c, in));) {
        if (in->bAlternateSetting != dev->alts[in->bInterfaceNumber])
            continue;
        char name[64];
        snprintf(name, sizeof name, "IOUSBHostInterface@%u", in->bInterfaceNumber);
        struct msg m = msg_begin();
        msg_str(&m, "IOName", name);
        msg_int(&m, "bInterfaceNumber", in->bInterfaceNumber);
        msg_int(&m, "bAlternateSetting", in->bAlternateSetting);
        msg_int(&m, "bInterfaceClass", in->bInterfaceClass);
        msg_int(&m, "bInterfaceSubClass", in->bInterfaceSubClass);
        msg_int(&m, "bInterfaceProtocol", in->bInterfaceProtocol);
        msg_int(&m, "bNumEndpoints", in->bNumEndpoints);
        msg_int(&m, "bConfigurationValue", c->bConfigurationValue);
        msg_int(&m, "idVendor", odk_usb_le16(devdesc(dev)->idVendor));
        msg_int(&m, "idProduct", odk_usb_le16(devdesc(dev)->idProduct));
        msg_int(&m, "bcdDevice", odk_usb_le16(devdesc(dev)->bcdDevice));
        msg_int(&m, "locationID", (int64_t)(0x01000000u | dev->port << 20));
        odk_value *props;
        reg_node *node = NULL;
        if (msg_finish(&m, &props) < 0 ||
            registry_add(d->reg, parent, "IOUSBHostInterface", props, &node) < 0)
            continue;
        dev->ifaces[dev->n_ifaces++] = (struct usb_iface){.node = node->id,
                                                          .number = in->bInterfaceNumber};
        if (dev->match_next)
            manager_register(d, node);
    }
    odk_info("usb: %s: configuration %u, %u interface%s", dev->model, dev->config, dev->n_ifaces,
             dev->n_ifaces == 1 ? "" : "s");
}

static void set_device_property(struct odkd *d, struct usb_dev *dev, const char *key,
                                odk_value *v)
{
    reg_node *n = dev->node ? registry_find(d->reg, dev->node) : NULL;
    if (!n || !v || odk_dict_set(n->props, key, v) < 0) {
        odk_value_free(v);
        return;
    }
    if (n->state != REG_INACTIVE)
        manager_publish(d, "property", n);
}

/* ---- messages from the model --------------------------------------------- */

static void on_configured(struct odkd *d, struct usb_dev *dev, const struct usb_wire *w,
                          const uint8_t *body, size_t len)
{
    uint8_t alts[256] = {0};
    memcpy(alts, body, len < sizeof alts ? len : sizeof alts);
    bool config_changed = w->length != dev->config;
    if (!config_changed && memcmp(alts, dev->alts, sizeof alts) == 0)
        return;
    if (!config_changed) {
        /* An alternate setting changed: the interface node says so. */
        memcpy(dev->alts, alts, sizeof alts);
        for (unsigned i = 0; i < dev->n_ifaces; i++) {
            reg_node *n = registry_find(d->reg, dev->ifaces[i].node);
            if (n && odk_dict_set_int(n->props, "bAlternateSetting",
                                      alts[dev->ifaces[i].number]) == ODK_OK &&
                n->state != REG_INACTIVE)
                manager_publish(d, "property", n);
        }
        return;
    }
    drop_interfaces(d, dev);
    dev->config = (uint8_t)w->length;
    memcpy(dev->alts, alts, sizeof alts);
    set_device_property(d, dev, "bConfigurationValue", odk_value_new_int(dev->config));
    publish_interfaces(d, dev);
    dev->match_next = true;
}

static void on_report(struct odkd *d, struct usb_dev *dev, const uint8_t *body, size_t len)
{
    char *json = strndup((const char *)body, len);
    odk_value *v = NULL;
    if (json && odk_value_from_json(json, &v, NULL, 0) == ODK_OK) {
        if (dev->node) {
            set_device_property(d, dev, "OdkUSBModelState", v);
        } else {
            odk_value_free(dev->report);
            dev->report = v;
        }
    }
    free(json);
}

static void on_reply(struct odkd *d, struct usb_dev *dev, const struct usb_wire *w,
                     const uint8_t *body, size_t len)
{
    for (struct pending **pp = &dev->pending; *pp; pp = &(*pp)->next) {
        struct pending *p = *pp;
        if (p->id != w->id)
            continue;
        *pp = p->next;
        if (!dev->pending && dev->deadline_timer) {
            loop_timer_cancel(d, dev->deadline_timer);
            dev->deadline_timer = 0;
        }
        if (p->for_client)
            server_reply_later(d, p->conn_id, p->seq, w->status, NULL);
        else if (p->fn)
            p->fn(d, dev, w, body, len);
        free(p);
        return;
    }
    /* A reply nobody waits for (an attach's): nothing to do. */
}

static void on_readable(struct odkd *d, void *ptr, uint32_t events)
{
    struct usb_dev *dev = ptr;
    static uint8_t buf[USBW_MAX_PACKET];
    for (int i = 0; i < 64 && !dev->dying; i++) {
        ssize_t n = recv(dev->fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            char why[200];
            snprintf(why, sizeof why, "the device model %s %s (its reason is in odkd's log)",
                     dev->model, dev->step || dev->node ? "exited or crashed" : "did not start");
            dev_fail(d, dev, why);
            return;
        }
        if ((size_t)n < sizeof(struct usb_wire) || (size_t)n > sizeof buf) {
            dev_fail(d, dev, "the device model sent a malformed message");
            return;
        }
        struct usb_wire w;
        memcpy(&w, buf, sizeof w);
        const uint8_t *body = buf + sizeof w;
        size_t len = (size_t)n - sizeof w;
        switch (w.op) {
        case USBW_HELLO:
            dev->speed = (odk_usb_speed)w.length;
            dev->step = 0;
            enumerate_next(d, dev);
            break;
        case USBW_CONFIGURED:
            on_configured(d, dev, &w, body, len);
            break;
        case USBW_REPORT:
            on_report(d, dev, body, len);
            break;
        case USBW_GONE:
            dev_fail(d, dev, "the device dropped off the bus");
            return;
        default:
            on_reply(d, dev, &w, body, len);
            break;
        }
    }
    (void)events;
}

/* ---- enumeration --------------------------------------------------------- */

static void finish_plug(struct odkd *d, struct usb_dev *dev, int status, const char *error)
{
    if (!dev->plug_waiting)
        return;
    dev->plug_waiting = false;
    struct msg m = msg_begin();
    if (dev->node)
        msg_int(&m, "node", (int64_t)dev->node);
    if (error)
        msg_str(&m, "error", error);
    odk_value *out = NULL;
    msg_finish(&m, &out);
    server_reply_later(d, dev->plug_conn, dev->plug_seq, status, out);
}

/* Adds the device node: registered when its descriptors passed, or
 * inactive with the reason. */
static void add_device_node(struct odkd *d, struct usb_dev *dev, const char *error)
{
    const odk_usb_device_descriptor *dd = devdesc(dev);
    char name[64];
    snprintf(name, sizeof name, "%s@%u", dev->strings[1][0] ? dev->strings[1] : "USB device",
             dev->port);
    static const char *const speeds[] = {"unknown", "low", "full", "high", "super", "super+"};
    struct msg m = msg_begin();
    msg_str(&m, "IOName", name);
    msg_int(&m, "idVendor", odk_usb_le16(dd->idVendor));
    msg_int(&m, "idProduct", odk_usb_le16(dd->idProduct));
    msg_int(&m, "bcdDevice", odk_usb_le16(dd->bcdDevice));
    msg_int(&m, "bcdUSB", odk_usb_le16(dd->bcdUSB));
    msg_int(&m, "bDeviceClass", dd->bDeviceClass);
    msg_int(&m, "bDeviceSubClass", dd->bDeviceSubClass);
    msg_int(&m, "bDeviceProtocol", dd->bDeviceProtocol);
    msg_int(&m, "bMaxPacketSize0", dd->bMaxPacketSize0);
    msg_int(&m, "bNumConfigurations", dd->bNumConfigurations);
    msg_int(&m, "locationID", (int64_t)(0x01000000u | dev->port << 20));
    msg_int(&m, "Device Speed", dev->speed ? dev->speed - 1 : 0);
    msg_str(&m, "OdkUSBSpeed", speeds[dev->speed <= 5 ? dev->speed : 0]);
    msg_str(&m, "OdkUSBModel", dev->model);
    msg_int(&m, "OdkUSBModelPid", dev->pid);
    if (dev->strings[0][0])
        msg_str(&m, "USB Vendor Name", dev->strings[0]);
    if (dev->strings[1][0])
        msg_str(&m, "USB Product Name", dev->strings[1]);
    if (dev->strings[2][0])
        msg_str(&m, "USB Serial Number", dev->strings[2]);
    if (error)
        msg_str(&m, "OdkUSBError", error);
    if (dev->report) {
        msg_take(&m, "OdkUSBModelState", dev->report);
        dev->report = NULL;
    }
    odk_value *props;
    reg_node *node = NULL;
    if (msg_finish(&m, &props) < 0 || registry_add(d->reg, sim->hc, "IOUSBHostDevice", props,
                                                   &node) < 0) {
        dev_fail(d, dev, "out of memory adding the device node");
        return;
    }
    dev->node = node->id;
    if (error) {
        dev->broken = true;
        odk_warn("usb: %s on port %u: %s", dev->model, dev->port, error);
        finish_plug(d, dev, ODK_OK, error);
        return;
    }
    dev->ready = true;
    odk_info("usb: %s on port %u: %04x:%04x \"%s\", node %llu", dev->model, dev->port,
             odk_usb_le16(dd->idVendor), odk_usb_le16(dd->idProduct), dev->strings[1],
             (unsigned long long)dev->node);
    manager_register(d, node);
    finish_plug(d, dev, ODK_OK, NULL);
}

static void configured_reply(struct odkd *d, struct usb_dev *dev, const struct usb_wire *w,
                             const uint8_t *body, size_t len)
{
    (void)body, (void)len;
    if (w->status < 0)
        odk_warn("usb: %s: SET_CONFIGURATION refused: %s", dev->model, odk_strerror(w->status));
    (void)d;
}

/* IOKit's composite-device rule: when no driver took the whole device,
 * the host selects its first configuration and the interfaces appear. */
static void maybe_configure(struct odkd *d, void *ptr)
{
    uint64_t node = (uint64_t)(uintptr_t)ptr;
    struct usb_dev *dev = dev_by_node(d, node, NULL);
    if (!dev || dev->dying || !dev->ready || dev->config || instance_count_on(d, dev->node))
        return;
    const odk_usb_config_descriptor *c = (const void *)dev->configs[0];
    struct usb_wire w = {.op = USBW_CONTROL, .setup = {0, 9, c->bConfigurationValue, 0}};
    dev->match_next = true;
    if (dev_request(d, dev, &w, NULL, 0, -1, configured_reply) < 0)
        dev_fail(d, dev, "cannot talk to the device model");
}

static void got_descriptor(struct odkd *d, struct usb_dev *dev, const struct usb_wire *w,
                           const uint8_t *body, size_t len);

/* The steps: 0 device descriptor; 1 + 2i configuration i's head, 2 + 2i
 * all of it; then the three strings; then the node. */
static void enumerate_next(struct odkd *d, struct usb_dev *dev)
{
    const odk_usb_device_descriptor *dd = devdesc(dev);
    unsigned step = dev->step, nc = dev->step ? dd->bNumConfigurations : 0;
    int st;
    if (step == 0) {
        st = control_in(d, dev, 6, ODK_USB_DT_DEVICE << 8, 0, 18, got_descriptor);
    } else if (step <= 2 * nc) {
        unsigned i = (step - 1) / 2;
        uint16_t len = (step % 2) ? 9 : (uint16_t)(dev->configs[i][2] | dev->configs[i][3] << 8);
        st = control_in(d, dev, 6, (uint16_t)(ODK_USB_DT_CONFIG << 8 | i), 0, len, got_descriptor);
    } else if (step <= 2 * nc + 3) {
        const uint8_t idx[3] = {dd->iManufacturer, dd->iProduct, dd->iSerialNumber};
        uint8_t i = idx[step - 2 * nc - 1];
        if (!i) {
            dev->step++;
            enumerate_next(d, dev);
            return;
        }
        st = control_in(d, dev, 6, (uint16_t)(ODK_USB_DT_STRING << 8 | i), 0x0409, 255,
                        got_descriptor);
    } else {
        add_device_node(d, dev, NULL);
        if (dev->ready)
            loop_timer(d, 0, maybe_configure, (void *)(uintptr_t)dev->node);
        return;
    }
    if (st < 0)
        dev_fail(d, dev, "cannot talk to the device model");
}

static void got_descriptor(struct odkd *d, struct usb_dev *dev, const struct usb_wire *w,
                           const uint8_t *body, size_t len)
{
    char why[300];
    const odk_usb_device_descriptor *dd = devdesc(dev);
    unsigned step = dev->step, nc = step ? dd->bNumConfigurations : 0;
    if (w->status < 0 && step <= 2 * nc) {
        snprintf(why, sizeof why, "GET_DESCRIPTOR (step %u) failed: %s", step,
                 odk_strerror(w->status));
        add_device_node(d, dev, why);
        return;
    }
    if (step == 0) {
        memset(dev->desc, 0, sizeof dev->desc);
        memcpy(dev->desc, body, len < sizeof dev->desc ? len : sizeof dev->desc);
        if (odk_usb_device_check(body, len, dev->speed, why, sizeof why) < 0) {
            add_device_node(d, dev, why);
            return;
        }
        if (dd->bNumConfigurations > MAX_CONFIGS) {
            snprintf(why, sizeof why, "%u configurations; odk handles up to %d",
                     dd->bNumConfigurations, MAX_CONFIGS);
            add_device_node(d, dev, why);
            return;
        }
    } else if (step <= 2 * nc) {
        unsigned i = (step - 1) / 2;
        if (step % 2) {
            if (len < 9) {
                snprintf(why, sizeof why, "configuration %u: %zu bytes read; its descriptor has 9",
                         i, len);
                add_device_node(d, dev, why);
                return;
            }
            free(dev->configs[i]);
            dev->configs[i] = malloc(9);
            if (!dev->configs[i]) {
                dev_fail(d, dev, "out of memory");
                return;
            }
            memcpy(dev->configs[i], body, 9);
            dev->config_len[i] = 9;
        } else {
            if (odk_usb_config_check(body, len, dev->speed, why, sizeof why) < 0) {
                add_device_node(d, dev, why);
                return;
            }
            uint8_t *c = malloc(len);
            if (!c) {
                dev_fail(d, dev, "out of memory");
                return;
            }
            memcpy(c, body, len);
            free(dev->configs[i]);
            dev->configs[i] = c;
            dev->config_len[i] = len;
            dev->n_configs = i + 1;
        }
    } else if (w->status == ODK_OK) {
        char *dst = dev->strings[step - 2 * nc - 1];
        if (odk_usb_string_to_utf8(body, len, dst, sizeof dev->strings[0]) < 0)
            dst[0] = '\0'; /* a bad string is left out, not fatal */
    }
    dev->step++;
    enumerate_next(d, dev);
}

/* ---- a device's end ------------------------------------------------------ */

static void dev_free(struct usb_dev *dev)
{
    while (dev->pending) {
        struct pending *p = dev->pending;
        dev->pending = p->next;
        free(p);
    }
    for (unsigned i = 0; i < MAX_CONFIGS; i++)
        free(dev->configs[i]);
    for (unsigned i = 0; i < dev->n_ifaces; i++)
        free(dev->ifaces[i].holder.who);
    free(dev->ifaces);
    odk_value_free(dev->report);
    free(dev->model);
    free(dev);
}

static void dev_free_ptr(void *p)
{
    dev_free(p);
}

/* Stops the model and forgets the device (its nodes are gone or going). */
static void dev_destroy(struct odkd *d, struct usb_dev *dev)
{
    for (struct usb_dev **pp = &sim->devs; *pp; pp = &(*pp)->next)
        if (*pp == dev) {
            *pp = dev->next;
            break;
        }
    dev->dying = true;
    if (dev->deadline_timer)
        loop_timer_cancel(d, dev->deadline_timer);
    loop_del(d, &dev->w);
    close(dev->fd);
    if (dev->pid > 0)
        kill(dev->pid, SIGKILL); /* reaped by odkd's SIGCHLD handler */
    loop_defer_free(d, dev_free_ptr, dev);
}

/* The device is unusable (its model crashed, hung, or the device left the
 * bus): unplug it. */
static void dev_fail(struct odkd *d, struct usb_dev *dev, const char *why)
{
    if (dev->dying)
        return;
    odk_warn("usb: %s on port %u: %s; unplugging it", dev->model, dev->port, why);
    finish_plug(d, dev, ODK_E_IO, why);
    reg_node *n = dev->node ? registry_find(d->reg, dev->node) : NULL;
    if (n && n->state != REG_TERMINATING) {
        dev->dying = true; /* node_gone destroys it */
        loop_del(d, &dev->w);
        manager_remove_tree(d, n, NULL, NULL);
        return;
    }
    if (!n)
        dev_destroy(d, dev);
}

/* ---- odkctl usb ... ------------------------------------------------------ */

static char *model_path(struct odkd *d)
{
    const char *env = getenv("ODK_USB_MODEL");
    if (env)
        return strdup(env);
    const char *slash = strrchr(d->host_path, '/');
    char *p = NULL;
    if (asprintf(&p, "%.*sodk-usb-model", slash ? (int)(slash - d->host_path + 1) : 0,
                 d->host_path) < 0)
        return NULL;
    return p;
}

static int spawn(struct odkd *d, const char *model, const char *args_json, struct usb_dev **out,
                 char *err, size_t err_len)
{
    char *path = model_path(d);
    int sv[2];
    if (!path || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        free(path);
        snprintf(err, err_len, "cannot start a device model: %s", strerror(errno));
        return ODK_E_IO;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(sv[1], 3);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execl(path, path, model, args_json, (char *)NULL);
        dprintf(2, "error odkd: cannot execute %s: %m\n", path);
        _exit(127);
    }
    free(path);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        snprintf(err, err_len, "cannot fork a device model: %s", strerror(errno));
        return ODK_E_IO;
    }
    struct usb_dev *dev = calloc(1, sizeof *dev);
    if (!dev || !(dev->model = strdup(model))) {
        free(dev);
        close(sv[0]);
        kill(pid, SIGKILL);
        return ODK_E_NOMEM;
    }
    dev->sim = sim;
    dev->pid = pid;
    dev->fd = sv[0];
    dev->port = ++sim->ports;
    dev->match_next = true;
    if (loop_add(d, &dev->w, dev->fd, EPOLLIN, on_readable, dev) < 0) {
        close(dev->fd);
        kill(pid, SIGKILL);
        free(dev->model);
        free(dev);
        return ODK_E_IO;
    }
    dev->next = sim->devs;
    sim->devs = dev;
    /* The model must say hello in time too. */
    dev->deadline_timer = loop_timer(d, MODEL_DEADLINE_MS, deadline_passed, dev);
    *out = dev;
    return ODK_OK;
}

static int op_plug(struct client_request *r)
{
    const char *model = odk_dict_get_string(r->args, "model", NULL);
    if (!model || !*model || strchr(model, '/')) {
        snprintf(r->err, sizeof r->err, "usb-plug needs a model name (see odkctl usb models)");
        return ODK_E_INVALID;
    }
    const odk_value *args = odk_dict_get(r->args, "args");
    if (args && odk_value_type(args) != ODK_TYPE_DICT) {
        snprintf(r->err, sizeof r->err, "'args' must be a dictionary");
        return ODK_E_INVALID;
    }
    char *json = args ? odk_value_to_json(args, 0) : strdup("{}");
    if (!json)
        return ODK_E_NOMEM;
    struct usb_dev *dev = NULL;
    int st = spawn(r->d, model, json, &dev, r->err, sizeof r->err);
    free(json);
    if (st < 0)
        return st;
    dev->plug_conn = r->conn_id;
    dev->plug_seq = r->seq;
    dev->plug_waiting = true;
    r->later = true;
    return ODK_OK;
}

static int op_unplug(struct client_request *r)
{
    reg_node *n = request_node(r);
    struct usb_iface *iface;
    struct usb_dev *dev = n ? dev_by_node(r->d, n->id, &iface) : NULL;
    if (!dev || iface) {
        snprintf(r->err, sizeof r->err, "node %lld is not a simulated USB device",
                 (long long)odk_dict_get_int(r->args, "node", 0));
        return ODK_E_NOT_FOUND;
    }
    if (n->state == REG_TERMINATING || dev->dying) {
        snprintf(r->err, sizeof r->err, "node %llu is already being unplugged",
                 (unsigned long long)n->id);
        return ODK_E_STATE;
    }
    dev->dying = true;
    loop_del(r->d, &dev->w);
    manager_remove_tree(r->d, n, NULL, NULL);
    return ODK_OK;
}

static int op_fault(struct client_request *r)
{
    static const char *const names[] = {"", "stall", "short", "babble", "disconnect"};
    const char *fault = odk_dict_get_string(r->args, "fault", "");
    uint32_t kind = 0;
    for (uint32_t i = 1; i < 5; i++)
        if (strcmp(fault, names[i]) == 0)
            kind = i;
    reg_node *n = request_node(r);
    struct usb_dev *dev = n ? dev_by_node(r->d, n->id, NULL) : NULL;
    if (!dev || !kind) {
        snprintf(r->err, sizeof r->err,
                 "usb-fault needs a simulated USB device's node and a fault (stall, short, "
                 "babble, disconnect)");
        return ODK_E_INVALID;
    }
    struct usb_wire w = {.op = USBW_FAULT, .length = kind,
                         .endpoint = (uint8_t)odk_dict_get_int(r->args, "endpoint", 0)};
    return client_request(r, dev, &w, NULL, 0);
}

/* usb-input {"node", "data": "HEX"}: bytes for the model (a HID report). */
static int op_input(struct client_request *r)
{
    reg_node *n = request_node(r);
    struct usb_iface *iface;
    struct usb_dev *dev = n ? dev_by_node(r->d, n->id, &iface) : NULL;
    const char *hex = odk_dict_get_string(r->args, "data", "");
    size_t len = strlen(hex);
    uint8_t bytes[256];
    bool ok = len % 2 == 0 && len / 2 <= sizeof bytes;
    for (size_t i = 0; ok && i < len / 2; i++) {
        unsigned v;
        ok = sscanf(hex + 2 * i, "%2x", &v) == 1;
        bytes[i] = (uint8_t)v;
    }
    if (!dev || !ok) {
        snprintf(r->err, sizeof r->err,
                 "usb-input needs a simulated USB device's node and 'data' as hex bytes (at most "
                 "%zu)",
                 sizeof bytes);
        return ODK_E_INVALID;
    }
    if (dev->dying || !dev->ready)
        return ODK_E_GONE;
    struct usb_wire w = {.op = USBW_INPUT};
    return client_request(r, dev, &w, bytes, len / 2);
}

static odk_value *describe(struct usb_dev *dev, bool verbose)
{
    const odk_usb_device_descriptor *dd = devdesc(dev);
    struct msg m = msg_begin();
    msg_int(&m, "node", (int64_t)dev->node);
    msg_int(&m, "port", dev->port);
    msg_str(&m, "model", dev->model);
    msg_int(&m, "idVendor", odk_usb_le16(dd->idVendor));
    msg_int(&m, "idProduct", odk_usb_le16(dd->idProduct));
    msg_int(&m, "speed", dev->speed);
    msg_str(&m, "manufacturer", dev->strings[0]);
    msg_str(&m, "product", dev->strings[1]);
    msg_str(&m, "serial", dev->strings[2]);
    msg_int(&m, "configuration", dev->config);
    if (verbose) {
        msg_take(&m, "device_descriptor", odk_value_new_data(dev->desc, sizeof dev->desc));
        odk_value *cfgs = odk_value_new_array();
        for (unsigned i = 0; cfgs && i < dev->n_configs; i++)
            odk_array_append(cfgs, odk_value_new_data(dev->configs[i], dev->config_len[i]));
        msg_take(&m, "configurations", cfgs);
    }
    odk_value *out = NULL;
    msg_finish(&m, &out);
    return out;
}

static int op_list(struct client_request *r)
{
    bool verbose = odk_dict_get_bool(r->args, "verbose", false);
    odk_value *devs = odk_value_new_array();
    if (!devs)
        return ODK_E_NOMEM;
    for (struct usb_dev *dev = sim->devs; dev; dev = dev->next) {
        if (!dev->node)
            continue;
        odk_value *v = describe(dev, verbose);
        if (!v || odk_array_append(devs, v) < 0) {
            odk_value_free(devs);
            return ODK_E_NOMEM;
        }
        reg_node *n = registry_find(r->d->reg, dev->node);
        const char *error = n ? odk_dict_get_string(n->props, "OdkUSBError", NULL) : NULL;
        if (error)
            odk_dict_set_string(v, "error", error);
    }
    struct msg m = msg_begin();
    msg_take(&m, "devices", devs);
    return msg_finish(&m, &r->out);
}

/* ---- requests from driver hosts ------------------------------------------ */

static bool holder_alive(struct odkd *d, const struct holder *h)
{
    for (struct instance *in = d->instances; in; in = in->next)
        if (in->id == h->instance)
            return in->pid == h->pid &&
                   (in->state == INST_STARTING || in->state == INST_RUNNING);
    return false;
}

/* The device or interface node the asking driver's provider is. */
static struct usb_dev *own_provider(struct host_request *r, struct usb_iface **iface)
{
    uint64_t node = (uint64_t)odk_dict_get_int(r->args, "node", 0);
    if (node != r->in->provider_id) {
        snprintf(r->err, sizeof r->err, "node %llu is not this driver's provider",
                 (unsigned long long)node);
        return NULL;
    }
    struct usb_dev *dev = dev_by_node(r->d, node, iface);
    if (!dev) {
        snprintf(r->err, sizeof r->err, "node %llu is not a USB device or interface",
                 (unsigned long long)node);
        return NULL;
    }
    /* Another interface of the provider's device (a CDC driver's data
     * interface). */
    int64_t other = odk_dict_get_int(r->args, "interface", -1);
    if (other >= 0) {
        for (unsigned i = 0; i < dev->n_ifaces; i++)
            if (dev->ifaces[i].number == other) {
                *iface = &dev->ifaces[i];
                return dev;
            }
        snprintf(r->err, sizeof r->err, "the device has no interface %lld in its configuration",
                 (long long)other);
        return NULL;
    }
    return dev;
}

static int op_open(struct host_request *r)
{
    struct usb_iface *iface = NULL;
    struct usb_dev *dev = own_provider(r, &iface);
    if (!dev)
        return odk_dict_get(r->args, "interface") ? ODK_E_NOT_FOUND : ODK_E_UNSUPPORTED;
    if (dev->dying || !dev->ready)
        return ODK_E_GONE;
    unsigned index = 0;
    if (iface) {
        if (iface->holder.who && holder_alive(r->d, &iface->holder)) {
            snprintf(r->err, sizeof r->err, "%s", iface->holder.who);
            return ODK_E_BUSY;
        }
        if (!active_config(dev, &index))
            return ODK_E_GONE;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return ODK_E_IO;
    struct usb_wire w = {.op = USBW_ATTACH};
    int st = dev_request(r->d, dev, &w, NULL, 0, sv[1], NULL);
    close(sv[1]);
    if (st < 0) {
        close(sv[0]);
        return ODK_E_GONE;
    }
    if (iface) {
        free(iface->holder.who);
        iface->holder = (struct holder){.instance = r->in->id, .pid = r->in->pid};
        if (asprintf(&iface->holder.who, "%s#%u (pid %d)", r->in->bundle->id, r->in->id,
                     (int)r->in->pid) < 0)
            iface->holder.who = NULL;
    }
    struct msg m = msg_begin();
    msg_str(&m, "kind", iface ? "interface" : "device");
    msg_int(&m, "speed", dev->speed);
    if (iface) {
        msg_int(&m, "interface", iface->number);
        msg_int(&m, "alternate", dev->alts[iface->number]);
        msg_int(&m, "config_index", index);
    }
    st = msg_finish(&m, &r->out);
    if (st < 0) {
        close(sv[0]);
        return st;
    }
    r->fds[0] = sv[0];
    r->n_fds = 1;
    return ODK_OK;
}

static int op_close(struct host_request *r)
{
    struct usb_iface *iface = NULL;
    struct usb_dev *dev = own_provider(r, &iface);
    if (dev && iface && iface->holder.instance == r->in->id) {
        free(iface->holder.who);
        iface->holder = (struct holder){0};
    }
    return ODK_OK;
}

static int op_configure(struct host_request *r)
{
    struct usb_iface *iface = NULL;
    struct usb_dev *dev = own_provider(r, &iface);
    if (!dev || iface)
        return ODK_E_UNSUPPORTED;
    for (unsigned i = 0; i < dev->n_ifaces; i++) {
        struct holder *h = &dev->ifaces[i].holder;
        if (h->who && h->instance != r->in->id && holder_alive(r->d, h)) {
            snprintf(r->err, sizeof r->err, "interface %u is held by %s", dev->ifaces[i].number,
                     h->who);
            return ODK_E_BUSY;
        }
    }
    dev->match_next = odk_dict_get_bool(r->args, "match", true);
    return ODK_OK;
}

/* ---- the module's hooks (usb.c) ------------------------------------------ */

int usb_sim_init(struct odkd *d, struct usb_sim *s)
{
    sim = s;
    struct msg m = msg_begin();
    msg_str(&m, "IOName", "usb-sim");
    odk_value *props;
    int st = msg_finish(&m, &props);
    if (st == ODK_OK)
        st = registry_add(d->reg, registry_root(d->reg), "OdkSimUSBHostController", props, &s->hc);
    if (st == ODK_OK)
        s->hc->state = REG_REGISTERED;
    return st;
}

void usb_sim_node_gone(struct odkd *d, reg_node *node)
{
    struct usb_iface *iface;
    struct usb_dev *dev = dev_by_node(d, node->id, &iface);
    if (!dev)
        return;
    if (iface) {
        free(iface->holder.who);
        iface->holder = (struct holder){0};
        iface->node = 0;
        return;
    }
    dev->node = 0;
    dev_destroy(d, dev);
}

void usb_sim_fini(struct odkd *d)
{
    while (sim && sim->devs)
        dev_destroy(d, sim->devs);
    sim = NULL;
}

const struct client_op usb_sim_client_ops[] = {
    {"usb-plug", op_plug, true},
    {"usb-unplug", op_unplug, true},
    {"usb-fault", op_fault, true},
    {"usb-input", op_input, true},
    {"usb-list", op_list, false},
    {NULL, NULL, false},
};

const struct host_op usb_sim_host_ops[] = {
    {"usb-open", op_open},
    {"usb-close", op_close},
    {"usb-configure", op_configure},
    {NULL, NULL},
};
