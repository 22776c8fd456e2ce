/* SPDX-License-Identifier: MIT */
/* vfio.c — the VFIO backend inside odkd: real PCI functions bound to
 * vfio-pci (docs/pci.md).
 *
 * For each --vfio ADDRESS odkd opens a type-1 container (/dev/vfio/vfio),
 * the function's IOMMU group (/dev/vfio/N, from sysfs) and, through the
 * group, the device; it reads configuration space through the device's
 * config region and publishes an IOPCIDevice node like the sim bus's.  A
 * driver's pci-open gets duplicates of the device and container
 * descriptors: the host maps BARs and sets interrupts on the first and its
 * DMA mappings on the second.  odkd watches the holder's process (a
 * pidfd); when it ends, odkd turns bus mastering off, resets the function
 * and removes every DMA mapping of the container before anyone else may
 * open it.
 *
 * Removal (hot-unplug): odkd registers an eventfd for the device's request
 * interrupt (VFIO_PCI_REQ_IRQ_INDEX).  When the kernel wants the function
 * back (its remove waits until every descriptor of the device is closed,
 * and signals the request again every 10 s), odkd withdraws the node, which
 * stops the driver (its host closes its duplicates), then quiesces the
 * function and closes its own device, group and container.  It then looks
 * every REPLUG_POLL_MS for the address to be bound to vfio-pci again and,
 * when it is, opens it afresh and publishes a new node: a replugged function
 * is adopted and matched again.  A named function that cannot be opened at
 * odkd's start (absent, or not bound to vfio-pci yet) gets a node with
 * OdkPCIError and is looked for the same way; once it opens, that node gives
 * way to the function's.
 *
 * --vfio any: every function bound to vfio-pci, at start and later.  odkd
 * watches /dev/vfio (inotify): a function bound to vfio-pci makes its IOMMU
 * group's file there; then odkd reads /sys/bus/pci/drivers/vfio-pci a few
 * times (the driver's link in sysfs comes a moment after the group's file)
 * and adopts each function it does not drive yet.  A function bound into
 * a group that has its file already makes none: odkd also hears the
 * kernel's uevents and reads the folder the same way after a bind to
 * vfio-pci (vfio_scan.c says which). */
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "buses/pci/config.h"
#include "buses/pci/vfio.h"
#include "buses/pci/vfio_scan.h"
#include "daemon/bookkeeping/instance.h"
#include "daemon/core/loop.h"
#include "daemon/core/msg.h"
#include "daemon/odkd.h"
#include "daemon/policy/manager.h"
#include "odk/log.h"
#include "odk/status.h"

/* What a VFIO function's driver may keep pinned for DMA, by default
 * (OdkDMALockLimitMB on its node; docs/pci.md). */
#define VFIO_DMA_LOCK_LIMIT_MB 1024

#define VFIO_MAX_FUNCTIONS 16
#define REPLUG_POLL_MS 250

struct vfio_fn {
    char addr[32];
    int container, group, device;
    uint64_t config_offset;
    uint8_t config[256];
    uint64_t node;
    char *error;
    uint32_t holder;
    pid_t holder_pid;
    int pidfd;
    struct watch w;
    int req_fd;          /* the kernel's request to release the device */
    struct watch req_w;
    bool removing;       /* asked to release: the node is being withdrawn */
    uint64_t replug_timer;
    uint64_t removals, adoptions;
};

static uint64_t bridge_id; /* the parent of the functions' nodes */

static struct vfio_fn fns[VFIO_MAX_FUNCTIONS];
static unsigned n_fns;

/* --vfio any: the watch on /dev/vfio, the kernel's uevents (a bind into a
 * group whose file exists already), and the rescans after an event. */
static struct {
    bool on;
    int fd;
    struct watch w;
    int uevent_fd;
    struct watch uevent_w;
    uint64_t timer;
    unsigned rescans; /* left in this burst */
} any = {.fd = -1, .uevent_fd = -1};
#define ANY_RESCANS 8 /* after a /dev/vfio event or a bind: 2 s of looking */
#define ANY_RESCAN_MS 250

int pci_vfio_option(struct odkd *d, const char *name, const char *value, char *err, size_t len)
{
    (void)d, (void)name;
    if (value && strcmp(value, "any") == 0) {
        any.on = true;
        return ODK_OK;
    }
    if (n_fns == VFIO_MAX_FUNCTIONS) {
        snprintf(err, len, "--vfio: at most %d functions", VFIO_MAX_FUNCTIONS);
        return ODK_E_LIMIT;
    }
    if (!value || !*value || strchr(value, '/') || strlen(value) >= sizeof fns[0].addr) {
        snprintf(err, len, "--vfio needs a PCI address such as 0000:00:03.0, or any");
        return ODK_E_INVALID;
    }
    struct vfio_fn *f = &fns[n_fns++];
    memset(f, 0, sizeof *f);
    snprintf(f->addr, sizeof f->addr, "%s", value);
    f->container = f->group = f->device = f->pidfd = f->req_fd = -1;
    return ODK_OK;
}

static struct vfio_fn *fn_by_node(uint64_t node)
{
    for (unsigned i = 0; i < n_fns; i++)
        if (fns[i].node && fns[i].node == node)
            return &fns[i];
    return NULL;
}

static int fail(char *why, size_t len, const char *what, const char *addr)
{
    snprintf(why, len, "%s %s: %s", what, addr, strerror(errno));
    return -1;
}

static int open_function(struct vfio_fn *f, char *why, size_t len)
{
    char path[128], link[128];
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/iommu_group", f->addr);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0)
        return fail(why, len, "no IOMMU group for", f->addr);
    link[n] = '\0';
    const char *group = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
    if ((f->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC)) < 0)
        return fail(why, len, "cannot open /dev/vfio/vfio for", f->addr);
    if (ioctl(f->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
        ioctl(f->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) != 1) {
        snprintf(why, len, "the kernel's VFIO has no type-1 IOMMU");
        return -1;
    }
    snprintf(path, sizeof path, "/dev/vfio/%s", group);
    if ((f->group = open(path, O_RDWR | O_CLOEXEC)) < 0)
        return fail(why, len, "cannot open the IOMMU group of", f->addr);
    struct vfio_group_status gs = {.argsz = sizeof gs};
    if (ioctl(f->group, VFIO_GROUP_GET_STATUS, &gs) < 0 ||
        !(gs.flags & VFIO_GROUP_FLAGS_VIABLE)) {
        snprintf(why, len, "IOMMU group %s of %s is not viable: bind every function in it "
                 "to vfio-pci", group, f->addr);
        return -1;
    }
    if (ioctl(f->group, VFIO_GROUP_SET_CONTAINER, &f->container) < 0 ||
        ioctl(f->container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU) < 0)
        return fail(why, len, "cannot set up the IOMMU for", f->addr);
    if ((f->device = ioctl(f->group, VFIO_GROUP_GET_DEVICE_FD, f->addr)) < 0)
        return fail(why, len, "cannot get the VFIO device of", f->addr);
    struct vfio_region_info ri = {.argsz = sizeof ri, .index = VFIO_PCI_CONFIG_REGION_INDEX};
    if (ioctl(f->device, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
        return fail(why, len, "no config region for", f->addr);
    f->config_offset = ri.offset;
    if (pread(f->device, f->config, sizeof f->config, (off_t)ri.offset) != sizeof f->config)
        return fail(why, len, "cannot read the configuration space of", f->addr);
    return 0;
}

/* Bus mastering off, function reset, every DMA mapping gone. */
static void quiesce(struct vfio_fn *f)
{
    if (f->device < 0)
        return;
    uint16_t cmd = 0;
    if (pread(f->device, &cmd, 2, (off_t)(f->config_offset + PCI_COMMAND)) == 2) {
        cmd &= (uint16_t)~PCI_COMMAND_MASTER;
        if (pwrite(f->device, &cmd, 2, (off_t)(f->config_offset + PCI_COMMAND)) != 2)
            odk_warn("pci: vfio %s: cannot turn bus mastering off: %m", f->addr);
    }
    if (ioctl(f->device, VFIO_DEVICE_RESET) < 0)
        odk_warn("pci: vfio %s: reset failed: %m", f->addr);
    struct vfio_iommu_type1_dma_unmap um = {.argsz = sizeof um,
                                            .flags = VFIO_DMA_UNMAP_FLAG_ALL};
    if (ioctl(f->container, VFIO_IOMMU_UNMAP_DMA, &um) < 0)
        odk_warn("pci: vfio %s: cannot remove the DMA mappings: %m", f->addr);
}

static void holder_gone(struct odkd *d, void *ptr, uint32_t events)
{
    struct vfio_fn *f = ptr;
    (void)events;
    loop_del(d, &f->w);
    close(f->pidfd);
    f->pidfd = -1;
    f->holder = 0;
    quiesce(f);
    odk_info("pci: vfio %s: its driver ended; bus mastering off, function reset", f->addr);
}

static void on_request(struct odkd *d, void *ptr, uint32_t events);

/* The kernel's request interrupt on an eventfd odkd watches: without it,
 * the kernel's remove of the function would wait on odkd for good. */
static void arm_request(struct odkd *d, struct vfio_fn *f)
{
    union {
        struct vfio_irq_set s;
        uint8_t bytes[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
    } req;
    struct vfio_irq_info ii = {.argsz = sizeof ii, .index = VFIO_PCI_REQ_IRQ_INDEX};
    if (ioctl(f->device, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0 || ii.count < 1) {
        odk_warn("pci: vfio %s: no request interrupt: its removal will wait on odkd's exit",
                 f->addr);
        return;
    }
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    memset(&req, 0, sizeof req);
    req.s.argsz = sizeof req.bytes;
    req.s.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    req.s.index = VFIO_PCI_REQ_IRQ_INDEX;
    req.s.start = 0;
    req.s.count = 1;
    int32_t e32 = efd;
    memcpy(req.bytes + sizeof(struct vfio_irq_set), &e32, sizeof e32);
    if (efd < 0 || ioctl(f->device, VFIO_DEVICE_SET_IRQS, &req) < 0 ||
        loop_add(d, &f->req_w, efd, EPOLLIN, on_request, f) < 0) {
        odk_warn("pci: vfio %s: cannot take the request interrupt: %m", f->addr);
        if (efd >= 0)
            close(efd);
        return;
    }
    f->req_fd = efd;
}

/* Closes what odkd holds of the function (the kernel's remove completes
 * once the driver's host has closed its duplicates too). */
static void close_function(struct odkd *d, struct vfio_fn *f)
{
    if (f->req_fd >= 0) {
        loop_del(d, &f->req_w);
        close(f->req_fd);
        f->req_fd = -1;
    }
    if (f->device >= 0)
        close(f->device);
    if (f->group >= 0)
        close(f->group);
    if (f->container >= 0)
        close(f->container);
    f->device = f->group = f->container = -1;
}

/* Publishes the node of a function open_function opened (bad 0), or one
 * with OdkPCIError = why; false when it could not be opened. */
static bool publish_node(struct odkd *d, struct vfio_fn *f, reg_node *parent, int bad,
                         const char *why)
{
    const uint8_t *c = f->config;
    char name[32];
    snprintf(name, sizeof name, "pci%x,%x", pci_cfg_get(c, PCI_VENDOR_ID, 2),
             pci_cfg_get(c, PCI_DEVICE_ID, 2));
    struct msg m = msg_begin();
    msg_str(&m, "IOName", bad ? "pci-vfio" : name);
    if (!bad) {
        msg_int(&m, "vendor-id", pci_cfg_get(c, PCI_VENDOR_ID, 2));
        msg_int(&m, "device-id", pci_cfg_get(c, PCI_DEVICE_ID, 2));
        msg_int(&m, "subsystem-vendor-id", pci_cfg_get(c, PCI_SUBSYSTEM_VENDOR_ID, 2));
        msg_int(&m, "subsystem-id", pci_cfg_get(c, PCI_SUBSYSTEM_ID, 2));
        msg_int(&m, "revision-id", c[PCI_REVISION_ID]);
        msg_int(&m, "class-code", pci_cfg_get(c, PCI_CLASS_PROG, 3));
    }
    msg_str(&m, "location", f->addr);
    msg_str(&m, "OdkPCIBackend", "vfio");
    /* VFIO pins every page a driver maps for the device's DMA, counted
     * against its host's locked-memory limit (8 MiB by default, and the
     * sandboxed host has no CAP_IPC_LOCK): odkd raises the driver's host
     * to this (instance.c; the personality may say otherwise). */
    msg_int(&m, "OdkDMALockLimitMB", VFIO_DMA_LOCK_LIMIT_MB);
    msg_int(&m, "OdkPCIAdoptions", (int64_t)f->adoptions);
    if (bad)
        msg_str(&m, "OdkPCIError", why);
    odk_value *props;
    reg_node *node = NULL;
    if (msg_finish(&m, &props) < 0 || registry_add(d->reg, parent, "IOPCIDevice", props, &node) < 0)
        return false;
    f->node = node->id;
    if (bad) {
        free(f->error);
        f->error = strdup(why);
        odk_warn("pci: vfio %s: %s", f->addr, why);
        return false;
    }
    free(f->error);
    f->error = NULL;
    quiesce(f); /* whatever the last owner left running */
    arm_request(d, f);
    odk_info("pci: vfio %s: %s, node %llu", f->addr, name, (unsigned long long)f->node);
    manager_register(d, node);
    return true;
}

/* Opens the function and publishes its node (with OdkPCIError when it
 * cannot be opened); false when it could not be opened. */
static bool publish(struct odkd *d, struct vfio_fn *f, reg_node *parent)
{
    char why[300] = "";
    int bad = open_function(f, why, sizeof why);
    if (bad)
        close_function(d, f);
    return publish_node(d, f, parent, bad, why);
}

static void replug_poll(struct odkd *d, void *ptr);
static void any_start(struct odkd *d);

int pci_vfio_start(struct odkd *d, reg_node *parent)
{
    bridge_id = parent->id;
    for (unsigned i = 0; i < n_fns; i++) {
        if (!publish(d, &fns[i], parent)) {
            if (!fns[i].node)
                return ODK_E_NOMEM;
            /* absent or not bound yet: adopted when it can be opened */
            fns[i].replug_timer = loop_timer(d, REPLUG_POLL_MS, replug_poll, &fns[i]);
        }
    }
    if (any.on)
        any_start(d);
    return ODK_OK;
}

/* Is the address bound to vfio-pci (again)? */
static bool bound_to_vfio(const struct vfio_fn *f)
{
    char path[128], link[256];
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/driver", f->addr);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0)
        return false;
    link[n] = '\0';
    const char *drv = strrchr(link, '/');
    return drv && strcmp(drv + 1, "vfio-pci") == 0;
}

/* Opens a function bound to vfio-pci that has no usable node (it was
 * removed, or not there at odkd's start) and publishes its node, in place
 * of the one saying why it could not be opened.  False: not yet. */
static bool adopt(struct odkd *d, struct vfio_fn *f, reg_node *parent)
{
    char why[300] = "";
    if (!bound_to_vfio(f))
        return false;
    if (open_function(f, why, sizeof why) < 0) { /* its group is still being set up, say */
        close_function(d, f);
        return false;
    }
    if (f->node) { /* the error node gives way (node_gone must not find f) */
        reg_node *n = registry_find(d->reg, f->node);
        f->node = 0;
        if (n)
            manager_remove_now(d, n);
    }
    f->adoptions++;
    publish_node(d, f, parent, 0, "");
    if (f->removals)
        odk_info("pci: vfio %s: plugged again and adopted (%llu removals so far)", f->addr,
                 (unsigned long long)f->removals);
    else
        odk_info("pci: vfio %s: bound to vfio-pci after odkd's start, and adopted", f->addr);
    return true;
}

static void replug_poll(struct odkd *d, void *ptr)
{
    struct vfio_fn *f = ptr;
    f->replug_timer = 0;
    reg_node *parent = registry_find(d->reg, bridge_id);
    if (!parent || (f->node && !f->error) || adopt(d, f, parent))
        return;
    f->replug_timer = loop_timer(d, REPLUG_POLL_MS, replug_poll, f);
}

/* ---- --vfio any --------------------------------------------------------- */

/* Adopts the function at addr, bound to vfio-pci, unless odkd drives it. */
static void any_found(void *ctx, const char *addr)
{
    struct odkd *d = ctx;
    reg_node *parent = registry_find(d->reg, bridge_id);
    if (!parent || strlen(addr) >= sizeof fns[0].addr)
        return;
    struct vfio_fn *f = NULL;
    for (unsigned i = 0; i < n_fns && !f; i++)
        if (strcmp(fns[i].addr, addr) == 0)
            f = &fns[i];
    if (f && (f->replug_timer || f->removing || (f->node && !f->error)))
        return; /* driven, or looked for already */
    if (!f) {
        if (n_fns == VFIO_MAX_FUNCTIONS) {
            odk_warn("pci: vfio %s: not adopted: odkd drives %d functions already", addr,
                     VFIO_MAX_FUNCTIONS);
            return;
        }
        f = &fns[n_fns++];
        memset(f, 0, sizeof *f);
        snprintf(f->addr, sizeof f->addr, "%s", addr);
        f->container = f->group = f->device = f->pidfd = f->req_fd = -1;
    }
    adopt(d, f, parent);
}

/* Adopts each function bound to vfio-pci that odkd does not drive yet. */
static void any_scan(struct odkd *d)
{
    vfio_scan_bound("/sys/bus/pci/drivers/vfio-pci", any_found, d);
}

static void any_rescan(struct odkd *d, void *ptr)
{
    (void)ptr;
    any.timer = 0;
    any_scan(d);
    if (any.rescans && --any.rescans)
        any.timer = loop_timer(d, ANY_RESCAN_MS, any_rescan, NULL);
}

/* Something changed in /dev/vfio: a group's file came (or went). */
static void any_event(struct odkd *d, void *ptr, uint32_t events)
{
    (void)ptr, (void)events;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (read(any.fd, buf, sizeof buf) > 0)
        ;
    any.rescans = ANY_RESCANS;
    if (!any.timer)
        any_rescan(d, NULL);
}

/* The kernel's uevents: a function bound to vfio-pci starts the same
 * rescans (its group's file may be there already: no /dev/vfio event). */
static void any_uevent(struct odkd *d, void *ptr, uint32_t events)
{
    (void)ptr, (void)events;
    char buf[8192];
    bool bound = false;
    for (;;) {
        struct sockaddr_nl from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(any.uevent_fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from,
                             &flen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == ENOBUFS) {
            bound = true; /* some were lost: look anyway */
            continue;
        }
        if (n <= 0)
            break;
        if (from.nl_pid == 0 && vfio_uevent_binds(buf, (size_t)n)) /* the kernel's own */
            bound = true;
    }
    if (bound) {
        any.rescans = ANY_RESCANS;
        if (!any.timer)
            any_rescan(d, NULL);
    }
}

static void any_start(struct odkd *d)
{
    any.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (any.fd < 0 || inotify_add_watch(any.fd, "/dev/vfio", IN_CREATE | IN_ATTRIB) < 0 ||
        loop_add(d, &any.w, any.fd, EPOLLIN, any_event, NULL) < 0) {
        odk_warn("pci: --vfio any: cannot watch /dev/vfio (%m): only the functions bound to "
                 "vfio-pci now are taken");
        if (any.fd >= 0)
            close(any.fd);
        any.fd = -1;
    }
    any.uevent_fd =
        socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = 1};
    if (any.uevent_fd < 0 || bind(any.uevent_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        loop_add(d, &any.uevent_w, any.uevent_fd, EPOLLIN, any_uevent, NULL) < 0) {
        odk_warn("pci: --vfio any: cannot hear the kernel's uevents (%m): a function bound into "
                 "an IOMMU group that has its file already is found only at the next /dev/vfio "
                 "event");
        if (any.uevent_fd >= 0)
            close(any.uevent_fd);
        any.uevent_fd = -1;
    }
    any_scan(d);
}

/* The node is gone and the function quiesced: odkd lets go of it. */
static void released(struct odkd *d, struct vfio_fn *f)
{
    quiesce(f);
    f->node = 0;
    close_function(d, f);
    f->removing = false;
    odk_info("pci: vfio %s: released to the kernel; waiting for it to come back", f->addr);
    if (!f->replug_timer)
        f->replug_timer = loop_timer(d, REPLUG_POLL_MS, replug_poll, f);
}

/* The kernel asks for the device back: it is being removed. */
static void on_request(struct odkd *d, void *ptr, uint32_t events)
{
    struct vfio_fn *f = ptr;
    (void)events;
    uint64_t count = 0;
    if (read(f->req_fd, &count, sizeof count) != sizeof count)
        return;
    if (f->removing) {
        odk_info("pci: vfio %s: the kernel asks again for the function (its driver is still "
                 "stopping)", f->addr);
        return;
    }
    f->removing = true;
    f->removals++;
    odk_info("pci: vfio %s: the kernel asks for the function back (removal): withdrawing "
             "node %llu", f->addr, (unsigned long long)f->node);
    reg_node *n = f->node ? registry_find(d->reg, f->node) : NULL;
    if (n && n->state != REG_TERMINATING)
        manager_remove_tree(d, n, NULL, NULL); /* node_gone closes the function */
    else if (!n)
        released(d, f);
}

static bool holder_alive(struct odkd *d, const struct vfio_fn *f)
{
    for (struct instance *in = d->instances; in; in = in->next)
        if (in->id == f->holder)
            return in->pid == f->holder_pid &&
                   (in->state == INST_STARTING || in->state == INST_RUNNING);
    return false;
}

int pci_vfio_open(struct host_request *r)
{
    uint64_t node = (uint64_t)odk_dict_get_int(r->args, "node", 0);
    struct vfio_fn *f = fn_by_node(node);
    if (!f || f->error) {
        snprintf(r->err, sizeof r->err, "node %llu is not a PCI function odkd drives",
                 (unsigned long long)node);
        return ODK_E_UNSUPPORTED;
    }
    if (f->holder && holder_alive(r->d, f)) {
        snprintf(r->err, sizeof r->err, "held by instance %u (pid %d)", f->holder,
                 (int)f->holder_pid);
        return ODK_E_BUSY;
    }
    if (f->pidfd >= 0) /* the last holder's end was not seen yet */
        holder_gone(r->d, f, 0);
    int pidfd = (int)syscall(SYS_pidfd_open, r->in->pid, 0);
    if (pidfd < 0 || loop_add(r->d, &f->w, pidfd, EPOLLIN, holder_gone, f) < 0) {
        if (pidfd >= 0)
            close(pidfd);
        snprintf(r->err, sizeof r->err, "cannot watch the driver's process: %s",
                 strerror(errno));
        return ODK_E_IO;
    }
    int dev = fcntl(f->device, F_DUPFD_CLOEXEC, 0), cont = fcntl(f->container, F_DUPFD_CLOEXEC, 0);
    struct msg m = msg_begin();
    msg_str(&m, "backend", "vfio");
    msg_str(&m, "location", f->addr);
    if (dev < 0 || cont < 0 || msg_finish(&m, &r->out) < 0) {
        if (dev >= 0)
            close(dev);
        if (cont >= 0)
            close(cont);
        loop_del(r->d, &f->w);
        close(pidfd);
        return ODK_E_IO;
    }
    f->pidfd = pidfd;
    f->holder = r->in->id;
    f->holder_pid = r->in->pid;
    r->fds[0] = dev;
    r->fds[1] = cont;
    r->n_fds = 2;
    return ODK_OK;
}

void pci_vfio_list(struct odkd *d, odk_value *list, bool verbose)
{
    (void)verbose;
    for (unsigned i = 0; i < n_fns; i++) {
        struct vfio_fn *f = &fns[i];
        if (!f->node)
            continue;
        const uint8_t *c = f->config;
        struct msg m = msg_begin();
        msg_int(&m, "node", (int64_t)f->node);
        msg_str(&m, "location", f->addr);
        msg_str(&m, "model", "vfio");
        msg_str(&m, "backend", "vfio");
        msg_int(&m, "vendor-id", pci_cfg_get(c, PCI_VENDOR_ID, 2));
        msg_int(&m, "device-id", pci_cfg_get(c, PCI_DEVICE_ID, 2));
        msg_int(&m, "subsystem-vendor-id", pci_cfg_get(c, PCI_SUBSYSTEM_VENDOR_ID, 2));
        msg_int(&m, "subsystem-id", pci_cfg_get(c, PCI_SUBSYSTEM_ID, 2));
        msg_int(&m, "revision-id", c[PCI_REVISION_ID]);
        msg_int(&m, "class-code", pci_cfg_get(c, PCI_CLASS_PROG, 3));
        if (f->error)
            msg_str(&m, "error", f->error);
        for (struct instance *in = d->instances; in && f->holder; in = in->next)
            if (in->id == f->holder)
                msg_str(&m, "driver", in->bundle->id);
        odk_value *v = NULL;
        if (msg_finish(&m, &v) == ODK_OK && odk_array_append(list, v) < 0)
            odk_value_free(v);
    }
}

void pci_vfio_node_gone(struct odkd *d, reg_node *node)
{
    struct vfio_fn *f = fn_by_node(node->id);
    if (!f)
        return;
    if (f->pidfd >= 0) {
        loop_del(d, &f->w);
        close(f->pidfd);
        f->pidfd = -1;
    }
    quiesce(f);
    f->node = 0;
    if (f->removing)
        released(d, f);
}

void pci_vfio_fini(struct odkd *d)
{
    for (unsigned i = 0; i < n_fns; i++) {
        struct vfio_fn *f = &fns[i];
        if (f->pidfd >= 0) {
            loop_del(d, &f->w);
            close(f->pidfd);
        }
        quiesce(f);
        if (f->replug_timer)
            loop_timer_cancel(d, f->replug_timer);
        close_function(d, f);
        free(f->error);
    }
    n_fns = 0;
    if (any.fd >= 0) {
        loop_del(d, &any.w);
        close(any.fd);
    }
    if (any.uevent_fd >= 0) {
        loop_del(d, &any.uevent_w);
        close(any.uevent_fd);
    }
    if (any.timer)
        loop_timer_cancel(d, any.timer);
    memset(&any, 0, sizeof any);
    any.fd = any.uevent_fd = -1;
}
