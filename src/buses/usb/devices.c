/* SPDX-License-Identifier: MIT */
/* devices.c — the USB devices odkd knows, whichever source found them
 * (usb_dev.h): their nodes, their interfaces' holders, the driver hosts'
 * requests and odkctl usb's list.
 *
 * A device node carries IOKit's properties; when it is registered and no
 * driver took the whole device, its source selects a configuration and one
 * IOUSBHostInterface node per interface follows.  A driver host's usb-open
 * is checked here (the node is the driver's provider or a sibling
 * interface, no live driver holds the interface: ODK_E_BUSY names the
 * holder) and the source makes the connection the host talks through. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "buses/usb/usb_dev.h"
#include "daemon/bookkeeping/instance.h"
#include "daemon/core/loop.h"
#include "daemon/front/requests.h"
#include "daemon/odkd.h"
#include "daemon/policy/manager.h"
#include "odk/log.h"
#include "odk/status.h"

struct usb_bus *usb_bus_state;

struct usb_dev *usb_dev_new(const struct usb_source *src, const char *model)
{
    struct usb_dev *dev = calloc(1, sizeof *dev);
    if (!dev || !(dev->model = strdup(model))) {
        free(dev);
        return NULL;
    }
    dev->src = src;
    dev->fd = -1;
    dev->match_next = true;
    dev->next = usb_bus_state->devs;
    usb_bus_state->devs = dev;
    return dev;
}

struct usb_dev *usb_dev_by_node(uint64_t node, struct usb_iface **iface)
{
    for (struct usb_dev *dev = usb_bus_state ? usb_bus_state->devs : NULL; dev; dev = dev->next) {
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

const uint8_t *usb_dev_active_config(const struct usb_dev *dev, unsigned *index)
{
    for (unsigned i = 0; i < dev->n_configs; i++)
        if (dev->configs[i][5] == dev->config) {
            if (index)
                *index = i;
            return dev->configs[i];
        }
    return NULL;
}

/* ---- holders ------------------------------------------------------------- */

static void holder_clear(struct odkd *d, struct usb_holder *h)
{
    if (h->pidfd >= 0 && h->who) {
        loop_del(d, &h->w);
        close(h->pidfd);
    }
    free(h->who);
    *h = (struct usb_holder){.pidfd = -1};
}

/* The interface is free again: the source hears it (a kernel driver is
 * bound back). */
static void release(struct odkd *d, struct usb_dev *dev, struct usb_iface *iface)
{
    holder_clear(d, &iface->holder);
    if (dev->src->release && !dev->dying)
        dev->src->release(d, dev, iface);
}

static void holder_ended(struct odkd *d, void *ptr, uint32_t events)
{
    (void)events;
    struct usb_holder *h = ptr;
    odk_info("usb: %s ended holding interface %u; releasing it", h->who, h->iface->number);
    release(d, h->dev, h->iface);
}

static bool holder_alive(struct odkd *d, const struct usb_holder *h)
{
    for (struct instance *in = d->instances; in; in = in->next)
        if (in->id == h->instance)
            return in->pid == h->pid && (in->state == INST_STARTING || in->state == INST_RUNNING);
    return false;
}

static void holder_set(struct odkd *d, struct usb_dev *dev, struct usb_iface *iface,
                       struct instance *in)
{
    struct usb_holder *h = &iface->holder;
    holder_clear(d, h);
    *h = (struct usb_holder){.instance = in->id,
                             .pid = in->pid,
                             .dev = dev,
                             .iface = iface,
                             .pidfd = (int)syscall(SYS_pidfd_open, in->pid, 0)};
    if (asprintf(&h->who, "%s#%u (pid %d)", in->bundle->id, in->id, (int)in->pid) < 0)
        h->who = NULL;
    if (h->pidfd >= 0 && (!h->who || loop_add(d, &h->w, h->pidfd, EPOLLIN, holder_ended, h) < 0)) {
        close(h->pidfd);
        h->pidfd = -1;
    }
}

/* ---- nodes --------------------------------------------------------------- */

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
        holder_clear(d, &ifaces[i].holder);
    }
    free(ifaces);
}

/* One IOUSBHostInterface node per interface of the active configuration,
 * with IOKit's properties (and the device's ids, which IOKit copies onto
 * interfaces too). */
static void publish_interfaces(struct odkd *d, struct usb_dev *dev)
{
    const odk_usb_config_descriptor *c = (const void *)usb_dev_active_config(dev, NULL);
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
        if (in->bAlternateSetting != dev->alts[in->bInterfaceNumber] || dev->n_ifaces == n)
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
        msg_int(&m, "idVendor", odk_usb_le16(usb_dev_desc(dev)->idVendor));
        msg_int(&m, "idProduct", odk_usb_le16(usb_dev_desc(dev)->idProduct));
        msg_int(&m, "bcdDevice", odk_usb_le16(usb_dev_desc(dev)->bcdDevice));
        msg_int(&m, "locationID", dev->location);
        odk_value *props;
        reg_node *node = NULL;
        if (msg_finish(&m, &props) < 0 ||
            registry_add(d->reg, parent, "IOUSBHostInterface", props, &node) < 0)
            continue;
        dev->ifaces[dev->n_ifaces++] = (struct usb_iface){
            .node = node->id, .number = in->bInterfaceNumber, .holder = {.pidfd = -1}};
        if (dev->match_next)
            manager_register(d, node);
    }
    odk_info("usb: %s: configuration %u, %u interface%s", dev->model, dev->config, dev->n_ifaces,
             dev->n_ifaces == 1 ? "" : "s");
}

void usb_dev_set_property(struct odkd *d, struct usb_dev *dev, const char *key, odk_value *v)
{
    reg_node *n = dev->node ? registry_find(d->reg, dev->node) : NULL;
    if (!n || !v || odk_dict_set(n->props, key, v) < 0) {
        odk_value_free(v);
        return;
    }
    if (n->state != REG_INACTIVE)
        manager_publish(d, "property", n);
}

void usb_dev_configured(struct odkd *d, struct usb_dev *dev, uint8_t config, const uint8_t *alts)
{
    bool config_changed = config != dev->config;
    if (!config_changed && memcmp(alts, dev->alts, sizeof dev->alts) == 0)
        return;
    if (!config_changed) {
        /* An alternate setting changed: the interface node says so. */
        memcpy(dev->alts, alts, sizeof dev->alts);
        for (unsigned i = 0; i < dev->n_ifaces; i++) {
            reg_node *n = registry_find(d->reg, dev->ifaces[i].node);
            if (n &&
                odk_dict_set_int(n->props, "bAlternateSetting", alts[dev->ifaces[i].number]) ==
                    ODK_OK &&
                n->state != REG_INACTIVE)
                manager_publish(d, "property", n);
        }
        return;
    }
    drop_interfaces(d, dev);
    dev->config = config;
    memcpy(dev->alts, alts, sizeof dev->alts);
    usb_dev_set_property(d, dev, "bConfigurationValue", odk_value_new_int(dev->config));
    publish_interfaces(d, dev);
    dev->match_next = true;
}

/* IOKit's composite-device rule: when no driver took the whole device,
 * the host selects its first configuration and the interfaces appear. */
static void maybe_configure(struct odkd *d, void *ptr)
{
    uint64_t node = (uint64_t)(uintptr_t)ptr;
    struct usb_dev *dev = usb_dev_by_node(node, NULL);
    if (!dev || dev->dying || !dev->ready || dev->config || instance_count_on(d, dev->node) ||
        !dev->src->configure || !dev->n_configs)
        return;
    dev->match_next = true;
    if (dev->src->configure(d, dev, dev->configs[0][5]) < 0)
        usb_dev_fail(d, dev, "cannot select the device's first configuration");
}

int usb_dev_add_node(struct odkd *d, struct usb_dev *dev, reg_node *parent, const char *error)
{
    const odk_usb_device_descriptor *dd = usb_dev_desc(dev);
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
    msg_int(&m, "locationID", dev->location);
    msg_int(&m, "Device Speed", dev->speed ? dev->speed - 1 : 0);
    msg_str(&m, "OdkUSBSpeed", speeds[dev->speed <= 5 ? dev->speed : 0]);
    msg_str(&m, "OdkUSBSource", dev->src->name);
    if (dev->src->describe)
        dev->src->describe(dev, &m);
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
    if (msg_finish(&m, &props) < 0 ||
        registry_add(d->reg, parent, "IOUSBHostDevice", props, &node) < 0) {
        usb_dev_fail(d, dev, "out of memory adding the device node");
        return ODK_E_NOMEM;
    }
    dev->node = node->id;
    if (error) {
        dev->broken = true;
        odk_warn("usb: %s on port %u: %s", dev->model, dev->port, error);
        return ODK_OK;
    }
    dev->ready = true;
    odk_info("usb: %s on port %u: %04x:%04x \"%s\", node %llu", dev->model, dev->port,
             odk_usb_le16(dd->idVendor), odk_usb_le16(dd->idProduct), dev->strings[1],
             (unsigned long long)dev->node);
    manager_register(d, node);
    loop_timer(d, 0, maybe_configure, (void *)(uintptr_t)dev->node);
    return ODK_OK;
}

/* ---- a device's end ------------------------------------------------------ */

static void dev_free(void *p)
{
    struct usb_dev *dev = p;
    for (unsigned i = 0; i < USB_MAX_CONFIGS; i++)
        free(dev->configs[i]);
    free(dev->ifaces);
    odk_value_free(dev->report);
    free(dev->model);
    free(dev);
}

void usb_dev_destroy(struct odkd *d, struct usb_dev *dev)
{
    for (struct usb_dev **pp = &usb_bus_state->devs; *pp; pp = &(*pp)->next)
        if (*pp == dev) {
            *pp = dev->next;
            break;
        }
    dev->dying = true;
    for (unsigned i = 0; i < dev->n_ifaces; i++)
        holder_clear(d, &dev->ifaces[i].holder);
    dev->src->destroy(d, dev);
    loop_defer_free(d, dev_free, dev);
}

void usb_dev_unplug(struct odkd *d, struct usb_dev *dev)
{
    reg_node *n = dev->node ? registry_find(d->reg, dev->node) : NULL;
    dev->dying = true; /* node_gone destroys it */
    if (n && n->state != REG_TERMINATING)
        manager_remove_tree(d, n, NULL, NULL);
    else if (!n)
        usb_dev_destroy(d, dev);
}

void usb_dev_fail(struct odkd *d, struct usb_dev *dev, const char *why)
{
    if (dev->dying)
        return;
    odk_warn("usb: %s on port %u: %s; unplugging it", dev->model, dev->port, why);
    reg_node *n = dev->node ? registry_find(d->reg, dev->node) : NULL;
    if (n && n->state == REG_TERMINATING)
        return;
    usb_dev_unplug(d, dev);
}

void usb_dev_node_gone(struct odkd *d, reg_node *node)
{
    struct usb_iface *iface;
    struct usb_dev *dev = usb_dev_by_node(node->id, &iface);
    if (!dev)
        return;
    if (iface) {
        holder_clear(d, &iface->holder);
        iface->node = 0;
        return;
    }
    dev->node = 0;
    usb_dev_destroy(d, dev);
}

/* ---- odkctl usb ---------------------------------------------------------- */

static odk_value *describe(struct usb_dev *dev, bool verbose)
{
    const odk_usb_device_descriptor *dd = usb_dev_desc(dev);
    struct msg m = msg_begin();
    msg_int(&m, "node", (int64_t)dev->node);
    msg_int(&m, "port", dev->port);
    msg_str(&m, "model", dev->model);
    msg_str(&m, "source", dev->src->name);
    msg_int(&m, "locationID", dev->location);
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

int usb_dev_op_list(struct client_request *r)
{
    bool verbose = odk_dict_get_bool(r->args, "verbose", false);
    odk_value *devs = odk_value_new_array();
    if (!devs)
        return ODK_E_NOMEM;
    for (struct usb_dev *dev = usb_bus_state->devs; dev; dev = dev->next) {
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

/* The device or interface node the asking driver's provider is. */
static struct usb_dev *own_provider(struct host_request *r, struct usb_iface **iface)
{
    uint64_t node = (uint64_t)odk_dict_get_int(r->args, "node", 0);
    if (node != r->in->provider_id) {
        snprintf(r->err, sizeof r->err, "node %llu is not this driver's provider",
                 (unsigned long long)node);
        return NULL;
    }
    struct usb_dev *dev = usb_dev_by_node(node, iface);
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
        if (!usb_dev_active_config(dev, &index))
            return ODK_E_GONE;
    }
    int fd = -1;
    int st = dev->src->open(r->d, dev, iface, &fd, r->err, sizeof r->err);
    if (st < 0)
        return st;
    if (iface)
        holder_set(r->d, dev, iface, r->in);
    struct msg m = msg_begin();
    msg_str(&m, "kind", iface ? "interface" : "device");
    msg_str(&m, "source", dev->src->name);
    msg_int(&m, "speed", dev->speed);
    if (iface) {
        msg_int(&m, "interface", iface->number);
        msg_int(&m, "alternate", dev->alts[iface->number]);
        msg_int(&m, "config_index", index);
    }
    st = msg_finish(&m, &r->out);
    if (st < 0) {
        close(fd);
        return st;
    }
    r->fds[0] = fd;
    r->n_fds = 1;
    return ODK_OK;
}

static int op_close(struct host_request *r)
{
    struct usb_iface *iface = NULL;
    struct usb_dev *dev = own_provider(r, &iface);
    if (dev && iface && iface->holder.who && iface->holder.instance == r->in->id)
        release(r->d, dev, iface);
    return ODK_OK;
}

static int op_configure(struct host_request *r)
{
    struct usb_iface *iface = NULL;
    struct usb_dev *dev = own_provider(r, &iface);
    if (!dev || iface)
        return ODK_E_UNSUPPORTED;
    for (unsigned i = 0; i < dev->n_ifaces; i++) {
        struct usb_holder *h = &dev->ifaces[i].holder;
        if (h->who && h->instance != r->in->id && holder_alive(r->d, h)) {
            snprintf(r->err, sizeof r->err, "interface %u is held by %s", dev->ifaces[i].number,
                     h->who);
            return ODK_E_BUSY;
        }
    }
    dev->match_next = odk_dict_get_bool(r->args, "match", true);
    return ODK_OK;
}

/* A device driver's SetConfiguration (odk_usb_device_set_configuration):
 * the device must be its provider, and no other live driver may hold an
 * interface of the configuration that goes. */
static int op_set_configuration(struct host_request *r)
{
    struct usb_iface *iface = NULL;
    struct usb_dev *dev = own_provider(r, &iface);
    if (!dev || iface)
        return ODK_E_UNSUPPORTED;
    if (dev->dying || !dev->ready)
        return ODK_E_GONE;
    int64_t value = odk_dict_get_int(r->args, "value", -1);
    bool known = value == 0;
    for (unsigned i = 0; i < dev->n_configs && !known; i++)
        known = dev->configs[i][5] == value;
    if (!known) {
        snprintf(r->err, sizeof r->err, "the device has no configuration %lld", (long long)value);
        return ODK_E_STALL;
    }
    for (unsigned i = 0; i < dev->n_ifaces; i++) {
        struct usb_holder *h = &dev->ifaces[i].holder;
        if (h->who && h->instance != r->in->id && holder_alive(r->d, h)) {
            snprintf(r->err, sizeof r->err, "interface %u is held by %s", dev->ifaces[i].number,
                     h->who);
            return ODK_E_BUSY;
        }
    }
    if (!dev->src->set_configuration) {
        snprintf(r->err, sizeof r->err, "the %s source cannot change configurations",
                 dev->src->name);
        return ODK_E_UNSUPPORTED;
    }
    dev->match_next = odk_dict_get_bool(r->args, "match", true);
    if (value == dev->config) {
        /* The configuration the device has (the kernel's, for usbfs):
         * its interfaces, published unmatched, are matched now. */
        for (unsigned i = 0; i < dev->n_ifaces && dev->match_next; i++) {
            reg_node *n = registry_find(r->d->reg, dev->ifaces[i].node);
            if (n && n->state == REG_INACTIVE)
                manager_register(r->d, n);
        }
        return ODK_OK;
    }
    odk_info("usb: %s: configuration %lld asked by its device driver (instance %u)", dev->model,
             (long long)value, r->in->id);
    return dev->src->set_configuration(r->d, dev, (uint8_t)value, r->err, sizeof r->err);
}

const struct host_op usb_dev_host_ops[] = {
    {"usb-open", op_open},
    {"usb-close", op_close},
    {"usb-configure", op_configure},
    {"usb-set-configuration", op_set_configuration},
    {NULL, NULL},
};
