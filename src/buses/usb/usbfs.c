/* SPDX-License-Identifier: MIT */
/* usbfs.c — the machine's own USB devices as a source (usb_dev.h), with
 * `odkd --usb libusb`.  The driver host talks to them through libusb
 * (src/families/usb/link_libusb.c); odkd only finds them and opens them.
 *
 * Finding: a scan of /sys/bus/usb/devices at start, then the kernel's
 * uevents (NETLINK_KOBJECT_UEVENT) for hotplug.  Neither libusb's own
 * hotplug nor libudev's monitor is used: Debian's libusb listens through
 * libudev, whose events come from udevd, and a machine (or the test guest)
 * without udevd would never hear a device arrive.  The kernel's own
 * uevents need nothing but the kernel.
 *
 * Descriptors: the device's `descriptors` file in sysfs, the raw device
 * and configuration descriptors the kernel read at enumeration, checked
 * with odk_usb_device_check / odk_usb_config_check as the sim's are; the
 * strings from sysfs.  locationID is IOKit's: the bus number in the top
 * byte, then one nibble per port of the path (1-2.3 is 0x01230000).
 *
 * Opening: a driver host's usb-open gets a descriptor of its own on
 * /dev/bus/usb/BBB/DDD, opened by odkd (the host needs no access to
 * /dev/bus/usb); the host wraps it with libusb_wrap_sys_device.  For an
 * interface, odkd first detaches the kernel's driver (USBDEVFS_DISCONNECT)
 * and binds it back (USBDEVFS_CONNECT) when the holder lets go or ends.
 * Each host gets its own open file: when it ends, the kernel releases its
 * claims and cancels its transfers.
 *
 * Configurations: the kernel configures a device as it enumerates it.
 * When a personality matched the device itself, the interfaces of that
 * configuration are published but not matched until the device driver
 * selects a configuration (odk_usb_device_set_configuration), as IOKit
 * matches only the interfaces of a configuration that driver chose. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/usbdevice_fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buses/usb/usb_dev.h"
#include "daemon/bookkeeping/instance.h"
#include "daemon/core/loop.h"
#include "daemon/odkd.h"
#include "odk/log.h"
#include "odk/status.h"

/* Where the kernel shows its devices and their usbfs nodes.  A test on a
 * machine without USB points them at a tree of its own (ODK_USB_SYSFS,
 * ODK_USB_DEVFS). */
static const char *sysfs_usb(void)
{
    const char *e = getenv("ODK_USB_SYSFS");
    return e && *e ? e : "/sys/bus/usb/devices";
}

static const char *devfs_usb(void)
{
    const char *e = getenv("ODK_USB_DEVFS");
    return e && *e ? e : "/dev/bus/usb";
}

struct usbfs_dev {
    char name[64];       /* sysfs name: "3-1.2" */
    char path[PATH_MAX]; /* /dev/bus/usb/BBB/DDD */
    int fd;              /* odkd's own descriptor on it: detach and attach */
    bool detached[256];  /* a kernel driver was detached from interface N */
};

static const struct usb_source usbfs_source;

static char *read_file(const char *dir, const char *file, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", sysfs_usb(), dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap) {
            char *b = realloc(buf, 2 * cap + 1);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    close(fd);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* A sysfs attribute as a number (base 10, or 16 for hex), -1 when absent. */
static long read_long(const char *dir, const char *file, int base)
{
    char *s = read_file(dir, file, NULL);
    char *end = NULL;
    long v = s ? strtol(s, &end, base) : -1;
    if (s && end == s)
        v = -1;
    free(s);
    return v;
}

static void read_string(const char *dir, const char *file, char *out, size_t len)
{
    char *s = read_file(dir, file, NULL);
    snprintf(out, len, "%s", s ? s : "");
    out[strcspn(out, "\n")] = '\0';
    free(s);
}

static odk_usb_speed speed_of(const char *name)
{
    char s[16];
    read_string(name, "speed", s, sizeof s);
    if (strcmp(s, "1.5") == 0)
        return ODK_USB_SPEED_LOW;
    if (strcmp(s, "12") == 0)
        return ODK_USB_SPEED_FULL;
    if (strcmp(s, "480") == 0)
        return ODK_USB_SPEED_HIGH;
    if (strcmp(s, "5000") == 0)
        return ODK_USB_SPEED_SUPER;
    if (atoi(s) > 5000)
        return ODK_USB_SPEED_SUPER_PLUS;
    return ODK_USB_SPEED_UNKNOWN;
}

/* "3-1.2" -> 0x03120000 */
static uint32_t location_of(const char *name)
{
    char *end;
    unsigned long bus = strtoul(name, &end, 10);
    uint32_t loc = (uint32_t)(bus & 0xff) << 24;
    int shift = 20;
    while (*end == '-' || *end == '.') {
        unsigned long port = strtoul(end + 1, &end, 10);
        if (shift >= 0)
            loc |= (uint32_t)(port & 0xf) << shift;
        shift -= 4;
    }
    return loc;
}

/* A device's sysfs name: "B-P[.P...]" (root hubs, "usbB", and interfaces,
 * "B-P:C.I", are not devices a driver opens). */
static bool is_device_name(const char *name)
{
    const char *dash = strchr(name, '-');
    return name[0] >= '0' && name[0] <= '9' && dash && !strchr(name, ':');
}

static struct usb_dev *find(const char *name)
{
    for (struct usb_dev *dev = usb_bus_state->devs; dev; dev = dev->next)
        if (dev->src == &usbfs_source && strcmp(dev->fs->name, name) == 0)
            return dev;
    return NULL;
}

/* The kernel's active configuration and alternate settings, into the
 * interface nodes. */
static void refresh(struct odkd *d, struct usb_dev *dev)
{
    if (!dev->ready || dev->dying)
        return;
    long config = read_long(dev->fs->name, "bConfigurationValue", 10);
    uint8_t alts[256] = {0};
    if (config > 0) {
        char dir[128];
        for (unsigned i = 0; i < 32; i++) {
            snprintf(dir, sizeof dir, "%s:%ld.%u", dev->fs->name, config, i);
            long alt = read_long(dir, "bAlternateSetting", 10);
            if (alt > 0)
                alts[i] = (uint8_t)alt;
        }
    }
    usb_dev_configured(d, dev, config > 0 ? (uint8_t)config : 0, alts);
}

/* Reads and checks the descriptors; NULL, or why they are not usable. */
static const char *take_descriptors(struct usb_dev *dev, const uint8_t *raw, size_t len, char *why,
                                    size_t why_len)
{
    memcpy(dev->desc, raw, len < sizeof dev->desc ? len : sizeof dev->desc);
    if (odk_usb_device_check(raw, len < 18 ? len : 18, dev->speed, why, why_len) < 0)
        return why;
    unsigned want = usb_dev_desc(dev)->bNumConfigurations;
    if (want > USB_MAX_CONFIGS) {
        snprintf(why, why_len, "%u configurations; odk handles up to %d", want, USB_MAX_CONFIGS);
        return why;
    }
    size_t off = 18;
    for (unsigned i = 0; i < want; i++) {
        if (len - off < 9) {
            snprintf(why, why_len, "configuration %u: %zu bytes; its descriptor has 9", i,
                     len - off);
            return why;
        }
        size_t total = raw[off + 2] | (size_t)raw[off + 3] << 8;
        if (total > len - off)
            total = len - off; /* the check names the lie */
        if (odk_usb_config_check(raw + off, total, dev->speed, why, why_len) < 0)
            return why;
        if (!(dev->configs[i] = malloc(total))) {
            snprintf(why, why_len, "out of memory");
            return why;
        }
        memcpy(dev->configs[i], raw + off, total);
        dev->config_len[i] = total;
        dev->n_configs = i + 1;
        off += total;
    }
    return NULL;
}

static void add(struct odkd *d, const char *name)
{
    if (!is_device_name(name) || find(name))
        return;
    size_t len = 0;
    uint8_t *raw = (uint8_t *)read_file(name, "descriptors", &len);
    long busnum = read_long(name, "busnum", 10), devnum = read_long(name, "devnum", 10);
    if (!raw || busnum < 0 || devnum < 0) {
        free(raw); /* gone already, or not a device */
        return;
    }
    struct usb_dev *dev = usb_dev_new(&usbfs_source, name); /* logs name it "3-1.2" */
    struct usbfs_dev *fs = dev ? calloc(1, sizeof *fs) : NULL;
    if (!fs) {
        if (dev)
            usb_dev_destroy(d, dev);
        free(raw);
        return;
    }
    dev->fs = fs;
    snprintf(fs->name, sizeof fs->name, "%s", name);
    snprintf(fs->path, sizeof fs->path, "%s/%03ld/%03ld", devfs_usb(), busnum, devnum);
    dev->speed = speed_of(name);
    dev->location = location_of(name);
    dev->port = (unsigned)devnum;
    read_string(name, "manufacturer", dev->strings[0], sizeof dev->strings[0]);
    read_string(name, "product", dev->strings[1], sizeof dev->strings[1]);
    read_string(name, "serial", dev->strings[2], sizeof dev->strings[2]);
    char why[300];
    const char *error = take_descriptors(dev, raw, len, why, sizeof why);
    free(raw);
    fs->fd = open(fs->path, O_RDWR | O_CLOEXEC);
    if (fs->fd < 0 && !error) {
        snprintf(why, sizeof why, "cannot open %s: %s", fs->path, strerror(errno));
        error = why;
    }
    if (usb_dev_add_node(d, dev, usb_bus_state->fs_hc, error) == ODK_OK && !error) {
        /* IOKit's rule: a driver that took the whole device (matching is
         * done by now) chooses the configuration whose interfaces are
         * matched; the kernel's is only published until it does. */
        if (instance_count_on(d, dev->node))
            dev->match_next = false;
        refresh(d, dev);
    }
}

static void scan(struct odkd *d)
{
    DIR *dir = opendir(sysfs_usb());
    if (!dir) {
        odk_warn("usb: cannot read %s: %s; no real USB devices", sysfs_usb(), strerror(errno));
        return;
    }
    for (struct dirent *e; (e = readdir(dir));)
        add(d, e->d_name);
    closedir(dir);
}

/* ---- hotplug ------------------------------------------------------------- */

static void on_uevent(struct odkd *d, void *ptr, uint32_t events)
{
    (void)ptr, (void)events;
    char buf[8192];
    for (;;) {
        ssize_t n = recv(usb_bus_state->uevent_fd, buf, sizeof buf - 1, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == ENOBUFS) {
            odk_warn("usb: uevents were lost; scanning %s again", sysfs_usb());
            scan(d);
            continue;
        }
        if (n <= 0)
            return;
        buf[n] = '\0';
        const char *action = NULL, *devpath = NULL, *subsystem = "", *devtype = "";
        for (char *p = buf; p < buf + n; p += strlen(p) + 1) {
            if (!strncmp(p, "ACTION=", 7))
                action = p + 7;
            else if (!strncmp(p, "DEVPATH=", 8))
                devpath = p + 8;
            else if (!strncmp(p, "SUBSYSTEM=", 10))
                subsystem = p + 10;
            else if (!strncmp(p, "DEVTYPE=", 8))
                devtype = p + 8;
        }
        if (!action || !devpath || strcmp(subsystem, "usb") != 0)
            continue;
        const char *base = strrchr(devpath, '/');
        char name[64];
        snprintf(name, sizeof name, "%s", base ? base + 1 : devpath);
        if (strcmp(devtype, "usb_interface") == 0)
            name[strcspn(name, ":")] = '\0';
        else if (strcmp(devtype, "usb_device") != 0)
            continue;
        struct usb_dev *dev = find(name);
        if (strcmp(devtype, "usb_device") == 0 && strcmp(action, "add") == 0)
            add(d, name);
        else if (strcmp(devtype, "usb_device") == 0 && strcmp(action, "remove") == 0 && dev)
            usb_dev_fail(d, dev, "the device left the bus");
        else if (dev)
            refresh(d, dev); /* bind, interfaces come and go: the configuration */
    }
}

/* ---- the source ---------------------------------------------------------- */

static int usbfs_open(struct odkd *d, struct usb_dev *dev, struct usb_iface *iface, int *fd,
                      char *err, size_t err_len)
{
    (void)d;
    struct usbfs_dev *fs = dev->fs;
    if (iface && fs->fd >= 0) {
        struct usbdevfs_ioctl cmd = {.ifno = iface->number, .ioctl_code = USBDEVFS_DISCONNECT};
        if (ioctl(fs->fd, USBDEVFS_IOCTL, &cmd) == 0) {
            fs->detached[iface->number] = true;
            odk_info("usb: %s: the kernel's driver let go of interface %u", fs->name,
                     iface->number);
        } else if (errno != ENODATA) {
            snprintf(err, err_len, "cannot detach the kernel's driver from interface %u: %s",
                     iface->number, strerror(errno));
            return errno == ENODEV ? ODK_E_GONE : ODK_E_IO;
        }
    }
    *fd = open(fs->path, O_RDWR | O_CLOEXEC);
    if (*fd < 0) {
        snprintf(err, err_len, "cannot open %s: %s", fs->path, strerror(errno));
        return errno == ENOENT || errno == ENODEV ? ODK_E_GONE : ODK_E_ACCESS;
    }
    return ODK_OK;
}

/* Binds the kernel's drivers back to the interfaces odkd took from them. */
static void give_back(struct usb_dev *dev)
{
    struct usbfs_dev *fs = dev->fs;
    for (unsigned i = 0; i < 256; i++) {
        if (!fs->detached[i] || fs->fd < 0)
            continue;
        fs->detached[i] = false;
        struct usbdevfs_ioctl cmd = {.ifno = (int)i, .ioctl_code = USBDEVFS_CONNECT};
        int r = ioctl(fs->fd, USBDEVFS_IOCTL, &cmd);
        if (r < 0 && errno != ENODEV) /* a device that left takes its drivers along */
            odk_warn("usb: %s: cannot bind the kernel's driver to interface %u again: %s", fs->name,
                     i, strerror(errno));
        else if (r >= 0) /* the number of drivers bound */
            odk_info("usb: %s: interface %u is the kernel's again", fs->name, i);
    }
}

/* Once no driver holds any interface of the device: a kernel driver such
 * as cdc_acm claims its sibling interfaces when it binds, so it can only
 * bind again when odk holds none of them. */
static void usbfs_release(struct odkd *d, struct usb_dev *dev, struct usb_iface *iface)
{
    (void)d, (void)iface;
    for (unsigned i = 0; i < dev->n_ifaces; i++)
        if (dev->ifaces[i].holder.who)
            return;
    give_back(dev);
}

/* A device driver chose another configuration (odk_usb_device_set_
 * configuration).  The kernel refuses USBDEVFS_SETCONFIGURATION while one
 * of its drivers holds an interface of the current one, so they let go
 * first; the new configuration's interfaces are the kernel's to bind
 * until odk drivers open them. */
static int usbfs_set_configuration(struct odkd *d, struct usb_dev *dev, uint8_t value, char *err,
                                   size_t err_len)
{
    struct usbfs_dev *fs = dev->fs;
    if (fs->fd < 0) {
        snprintf(err, err_len, "odkd has no descriptor on %s", fs->path);
        return ODK_E_GONE;
    }
    for (unsigned i = 0; i < dev->n_ifaces; i++) {
        struct usbdevfs_ioctl cmd = {.ifno = dev->ifaces[i].number,
                                     .ioctl_code = USBDEVFS_DISCONNECT};
        if (ioctl(fs->fd, USBDEVFS_IOCTL, &cmd) == 0)
            odk_info("usb: %s: the kernel's driver let go of interface %u", fs->name,
                     dev->ifaces[i].number);
    }
    /* The interfaces taken from the kernel belong to the old configuration. */
    memset(fs->detached, 0, sizeof fs->detached);
    unsigned int v = value;
    if (ioctl(fs->fd, USBDEVFS_SETCONFIGURATION, &v) < 0) {
        int e = errno;
        snprintf(err, err_len, "cannot select configuration %u of %s: %s", value, fs->name,
                 strerror(e));
        return e == ENODEV ? ODK_E_GONE : e == EBUSY ? ODK_E_BUSY : ODK_E_IO;
    }
    odk_info("usb: %s: configuration %u selected", fs->name, value);
    refresh(d, dev);
    return ODK_OK;
}

static void usbfs_describe(struct usb_dev *dev, struct msg *m)
{
    msg_str(m, "OdkUSBDevicePath", dev->fs->path);
    msg_str(m, "OdkUSBSysfsName", dev->fs->name);
}

static void usbfs_destroy(struct odkd *d, struct usb_dev *dev)
{
    (void)d;
    if (!dev->fs)
        return;
    give_back(dev); /* odkd's end: its drivers are stopped */
    if (dev->fs->fd >= 0)
        close(dev->fs->fd);
    free(dev->fs);
    dev->fs = NULL;
}

static const struct usb_source usbfs_source = {
    .name = "libusb",
    .open = usbfs_open,
    .release = usbfs_release,
    .set_configuration = usbfs_set_configuration,
    .describe = usbfs_describe,
    .destroy = usbfs_destroy,
};

int usbfs_start(struct odkd *d, struct usb_bus *bus)
{
    struct msg m = msg_begin();
    msg_str(&m, "IOName", "usb-host");
    odk_value *props;
    int st = msg_finish(&m, &props);
    if (st == ODK_OK)
        st =
            registry_add(d->reg, registry_root(d->reg), "OdkUSBHostController", props, &bus->fs_hc);
    if (st < 0)
        return st;
    bus->fs_hc->state = REG_REGISTERED;
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = 1};
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        loop_add(d, &bus->uevent_w, fd, EPOLLIN, on_uevent, NULL) < 0) {
        odk_warn("usb: cannot hear the kernel's uevents (%s): USB devices plugged from now on "
                 "are not seen",
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    bus->uevent_fd = fd;
    scan(d);
    return ODK_OK;
}

void usbfs_stop(struct odkd *d, struct usb_bus *bus)
{
    if (bus->uevent_fd < 0)
        return;
    loop_del(d, &bus->uevent_w);
    close(bus->uevent_fd);
    bus->uevent_fd = -1;
}
