/* SPDX-License-Identifier: MIT */
/* usb_dev.h — a USB device as odkd keeps it, whichever source it comes
 * from (devices.c), and what a source provides (struct usb_source).
 *
 * A source finds devices and reads their descriptors: the simulated host
 * controller (sim_hc.c) from model processes, the usbfs source (usbfs.c)
 * from the kernel's USB stack.  Once the descriptors are read, the rest is
 * the same for both: the IOUSBHostDevice node and its properties, one
 * IOUSBHostInterface node per interface of the active configuration, who
 * holds which interface, the driver hosts' usb-open / usb-close /
 * usb-configure, odkctl usb's list, and the device's end.  Everything here
 * runs on odkd's loop. */
#ifndef ODK_BUSES_USB_USB_DEV_H
#define ODK_BUSES_USB_USB_DEV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/core/loop.h"
#include "daemon/core/module.h"
#include "daemon/core/msg.h"
#include "odk/usb_descriptors.h"

#define USB_MAX_CONFIGS 8

struct usb_dev;
struct usb_iface;
struct usb_pending;
struct usbfs_dev;

/* Who holds an interface open: an instance, by id and host pid; odkd
 * watches the pid (a pidfd) to hand the interface back when the host
 * ends without closing it. */
struct usb_holder {
    uint32_t instance;
    pid_t pid;
    char *who; /* "BUNDLE#N (pid P)" */
    int pidfd;
    struct watch w;
    struct usb_dev *dev;
    struct usb_iface *iface;
};

struct usb_iface {
    uint64_t node;
    uint8_t number;
    struct usb_holder holder;
};

struct usb_source {
    const char *name; /* "sim", "usbfs": the "source" of usb-open's reply */
    /* A driver host opens the device (iface NULL) or one of its
     * interfaces: *fd receives what the host talks through (odkd closes
     * it once sent).  Errors: ODK_E_GONE, ODK_E_IO, with err. */
    int (*open)(struct odkd *d, struct usb_dev *dev, struct usb_iface *iface, int *fd, char *err,
                size_t err_len);
    /* The interface's holder let go of it, or ended (may be NULL). */
    void (*release)(struct odkd *d, struct usb_dev *dev, struct usb_iface *iface);
    /* Selects configuration value (IOKit's composite rule); may be NULL
     * when the source's devices come configured. */
    int (*configure)(struct odkd *d, struct usb_dev *dev, uint8_t value);
    /* A device driver's SetConfiguration: selects value (a configuration
     * the device has) on a configured device too; the interfaces follow
     * as after configure.  May be NULL.  Errors with err. */
    int (*set_configuration)(struct odkd *d, struct usb_dev *dev, uint8_t value, char *err,
                             size_t err_len);
    /* Adds the source's own properties to the device node (may be NULL). */
    void (*describe)(struct usb_dev *dev, struct msg *m);
    /* The device is forgotten: stop what talks to it.  dev is freed after
     * the loop's turn. */
    void (*destroy)(struct odkd *d, struct usb_dev *dev);
};

struct usb_dev {
    const struct usb_source *src;
    char *model;       /* the sim model's name, or "usbfs" */
    unsigned port;     /* for the node's name and the sim's locationID */
    uint32_t location; /* locationID */
    odk_usb_speed speed;
    uint64_t node; /* 0 until enumerated */
    bool ready, broken, dying;

    uint8_t desc[18];
    uint8_t *configs[USB_MAX_CONFIGS];
    size_t config_len[USB_MAX_CONFIGS];
    unsigned n_configs;
    char strings[3][256]; /* manufacturer, product, serial */

    uint8_t config; /* active bConfigurationValue */
    uint8_t alts[256];
    bool match_next; /* register the interfaces of the next configuration */
    struct usb_iface *ifaces;
    unsigned n_ifaces;
    odk_value *report; /* the model's report, kept until the node exists */

    /* the sim's: the model process and its connection */
    pid_t pid;
    int fd;
    struct watch w;
    unsigned step;
    uint64_t plug_conn;
    uint32_t plug_seq;
    bool plug_waiting;
    struct usb_pending *pending;
    uint32_t next_id;
    uint64_t deadline_timer;

    /* the usbfs source's */
    struct usbfs_dev *fs;

    struct usb_dev *next;
};

/* The module's state (usb.c). */
struct usb_bus {
    reg_node *hc;    /* the OdkSimUSBHostController node */
    reg_node *fs_hc; /* the OdkUSBHostController node (usbfs source), or NULL */
    struct usb_dev *devs;
    unsigned ports;  /* sim ports handed out so far (never reused) */
    bool want_usbfs; /* --usb usbfs (or libusb) */
    int uevent_fd;
    struct watch uevent_w;
};

extern struct usb_bus *usb_bus_state;

/* A new device of src, put on the bus's list (not yet a node); NULL when
 * out of memory. */
struct usb_dev *usb_dev_new(const struct usb_source *src, const char *model);
/* The device or interface whose node is node (*iface NULL for a device). */
struct usb_dev *usb_dev_by_node(uint64_t node, struct usb_iface **iface);
/* The active configuration's descriptor (and its index), or NULL. */
const uint8_t *usb_dev_active_config(const struct usb_dev *dev, unsigned *index);
static inline const odk_usb_device_descriptor *usb_dev_desc(const struct usb_dev *dev)
{
    return (const odk_usb_device_descriptor *)dev->desc;
}
/* Adds the device node below parent: registered (and matched) when error
 * is NULL, else inactive with OdkUSBError.  Returns ODK_OK, or an error
 * after which the device is failing. */
int usb_dev_add_node(struct odkd *d, struct usb_dev *dev, reg_node *parent, const char *error);
/* The device's configuration is now config with alternate settings alts
 * (256 bytes): interface nodes follow. */
void usb_dev_configured(struct odkd *d, struct usb_dev *dev, uint8_t config, const uint8_t *alts);
/* Sets a property of the device node and publishes the change; takes v. */
void usb_dev_set_property(struct odkd *d, struct usb_dev *dev, const char *key, odk_value *v);
/* The device is unusable (gone, crashed, hung): its nodes go, then it is
 * destroyed. */
void usb_dev_fail(struct odkd *d, struct usb_dev *dev, const char *why);
/* An unplug asked for: the nodes go, then the device. */
void usb_dev_unplug(struct odkd *d, struct usb_dev *dev);
/* Unlinks dev, calls its source's destroy and frees it after the loop's
 * turn. */
void usb_dev_destroy(struct odkd *d, struct usb_dev *dev);

/* usb-list (both sources), and the driver hosts' usb-open, usb-close,
 * usb-configure. */
int usb_dev_op_list(struct client_request *r);
extern const struct host_op usb_dev_host_ops[];
/* A node left the registry. */
void usb_dev_node_gone(struct odkd *d, reg_node *node);

/* The usbfs source (usbfs.c): finds the kernel's USB devices in sysfs,
 * follows hotplug through the kernel's uevents. */
int usbfs_start(struct odkd *d, struct usb_bus *bus);
void usbfs_stop(struct odkd *d, struct usb_bus *bus);

#endif
