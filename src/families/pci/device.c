/* SPDX-License-Identifier: MIT */
/* device.c — odk_pci_device: a driver's handle to a PCI function
 * (IOPCIDevice), on the simulated bus.
 *
 * odkd's pci-open gives the host a link to the function's model process
 * (src/buses/pci/pci_wire.h).  Over it the model sends its BARs (memfds,
 * mapped read-only here: registers are loads), the page holding the
 * posted-write ring, the doorbell, and one eventfd per interrupt vector.
 * Configuration accesses and resets are requests on the link, answered by
 * the model.  A reader thread per handle takes the answers and serves the
 * function's bus-master accesses through the driver's IOMMU: an address no
 * prepared DMA command maps is refused (ODK_E_ACCESS to the model) and
 * counted as an IOMMU fault for the driver.
 *
 * With the VFIO backend (odkd --vfio ADDRESS) the reply to pci-open
 * carries the function's VFIO device and container descriptors instead:
 * configuration space is the device's config region, BARs are mmapped
 * from their regions (read-write: writes are stores), interrupts are
 * eventfds given to VFIO_DEVICE_SET_IRQS, and every chunk the driver's
 * IOMMU maps is mirrored into the container with VFIO_IOMMU_MAP_DMA
 * (iommu_set_mirror), so the real IOMMU admits exactly what a prepared DMA
 * command maps. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/vfio.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "buses/pci/config.h"
#include "buses/pci/pci_wire.h"
#include "families/pci/pci_elapsed.h"
#include "families/pci/sim_iommu.h"
#include "odk/dma.h"
#include "odk/log.h"
#include "odk/pci.h"
#include "odk/status.h"
#include "runtime/dma_internal.h"
#include "runtime/host_link.h"

struct odk_pci_interrupt {
    odk_pci_device *dev;
    odk_fd_source *src;
    odk_queue *q;
    int unmask_fd;  /* VFIO INTx: written after the handler, -1 otherwise */
    unsigned index; /* into vec_fd */
    uint32_t vector;
    odk_pci_interrupt_handler fn;
    void *ctx;
};

struct odk_pci_device {
    odk_driver *drv;
    int sock;
    pthread_t reader;
    bool reader_started;

    pthread_mutex_t lock; /* requests, gone, faults */
    pthread_cond_t cond;
    pthread_mutex_t req_lock; /* one request on the link at a time */
    uint32_t next_id, want_id;
    bool answered, gone;
    struct pci_wire answer;

    pthread_mutex_t ring_lock;
    struct pci_ctl *ctl;
    int ctl_fd, doorbell;
    struct {
        uint64_t size;
        uint32_t flags;
        int fd;
        uint8_t *map;
    } bar[PCI_BARS];
    int vec_fd[PCI_MAX_VECTORS];
    uint32_t n_vec, n_msi, n_msix;
    odk_pci_interrupt *irq[PCI_MAX_VECTORS];
    int irq_mode; /* -1 none yet, else odk_pci_interrupt_type */

    uint64_t faults, last_fault;
    odk_pci_fault_handler fault_fn;
    void *fault_ctx;
    uint8_t *dma_buf;
    struct sim_iommu *view; /* the model's view of the driver's IOMMU */

    /* VFIO */
    bool vfio;
    int vfio_dev, vfio_cont;
    uint64_t cfg_off, bar_off[PCI_BARS];
    odk_iommu *mirrored;
};

/* ---- the link ----------------------------------------------------------- */

/* What a fault handler gets, taken when the fault happened (the handle
 * may be closed by the time the note runs). */
struct fault_note {
    odk_pci_fault_handler fn;
    void *ctx;
    uint64_t addr, len;
    bool write;
};

static void fault_deliver(void *ctx)
{
    struct fault_note *n = ctx;
    n->fn(n->ctx, n->addr, n->len, n->write);
    free(n);
}

/* The function's bus-master access, through the driver's IOMMU. */
static void serve_dma(odk_pci_device *dev, const struct pci_wire *w, const uint8_t *body,
                      size_t len)
{
    struct pci_wire r = {.op = PCIW_DMA, .id = w->id, .length = w->length};
    bool to_device = w->flags & PCIW_DMA_TO_DEVICE;
    odk_iommu *io = odk_driver_iommu(dev->drv);
    int st;
    if (w->length == 0 || w->length > PCIW_MAX_DMA || (!to_device && len != w->length))
        st = ODK_E_PROTOCOL;
    else if (!io)
        st = ODK_E_NOMEM;
    else if (to_device)
        st = odk_iommu_dma_read(io, w->addr, dev->dma_buf, w->length);
    else
        st = odk_iommu_dma_write(io, w->addr, body, w->length);
    r.status = st;
    if (st == ODK_E_ACCESS) {
        struct fault_note *n = malloc(sizeof *n);
        pthread_mutex_lock(&dev->lock);
        dev->faults++;
        dev->last_fault = w->addr;
        odk_pci_fault_handler fn = dev->fault_fn;
        void *fctx = dev->fault_ctx;
        pthread_mutex_unlock(&dev->lock);
        if (n && fn) {
            *n = (struct fault_note){fn, fctx, w->addr, w->length, !to_device};
            if (odk_queue_dispatch_async(odk_driver_queue(dev->drv), fault_deliver, n) < 0)
                free(n);
        } else {
            free(n);
        }
    }
    bool with_data = st == ODK_OK && to_device;
    pci_wire_send(dev->sock, &r, with_data ? dev->dma_buf : NULL, with_data ? w->length : 0,
                  NULL, 0, 0);
}

/* The function is gone: what a driver reads of its BARs from now on is all
 * ones, as a read of a missing function is on hardware.  Each mapping is
 * swapped, in one mremap, for private pages of 0xff at the same address, so
 * a pointer the driver holds stays valid and a load through it never faults
 * (and never sees the model's last register values). */
static void bars_all_ones(odk_pci_device *dev)
{
    long page = sysconf(_SC_PAGESIZE);
    for (unsigned i = 0; i < PCI_BARS; i++) {
        if (!dev->bar[i].map)
            continue;
        size_t len = (dev->bar[i].size + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
        void *ones = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (ones == MAP_FAILED)
            continue;
        memset(ones, 0xff, len);
        if (mprotect(ones, len, PROT_READ) < 0 ||
            mremap(ones, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)dev->bar[i].map) ==
                MAP_FAILED)
            munmap(ones, len);
    }
}

/* The link to the function broke: it is gone (once, whoever sees it
 * first: the reader at end of file, or a request that could not be sent). */
static void mark_gone(odk_pci_device *dev)
{
    pthread_mutex_lock(&dev->lock);
    if (!dev->gone) {
        bars_all_ones(dev);
        __atomic_store_n(&dev->gone, true, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&dev->cond);
    }
    pthread_mutex_unlock(&dev->lock);
}

static void *reader(void *arg)
{
    odk_pci_device *dev = arg;
    uint8_t *buf = malloc(PCIW_MAX_PACKET);
    for (;;) {
        ssize_t n = buf ? pci_wire_recv(dev->sock, buf, PCIW_MAX_PACKET, NULL, NULL, 0) : 0;
        if (n < (ssize_t)sizeof(struct pci_wire))
            break;
        struct pci_wire w;
        memcpy(&w, buf, sizeof w);
        if (w.op == PCIW_DMA) {
            serve_dma(dev, &w, buf + sizeof w, (size_t)n - sizeof w);
            continue;
        }
        pthread_mutex_lock(&dev->lock);
        if (w.id == dev->want_id) {
            dev->answer = w;
            dev->answered = true;
            pthread_cond_broadcast(&dev->cond);
        }
        pthread_mutex_unlock(&dev->lock);
    }
    free(buf);
    mark_gone(dev);
    return NULL;
}

static bool is_gone(odk_pci_device *dev)
{
    pthread_mutex_lock(&dev->lock);
    bool g = dev->gone;
    pthread_mutex_unlock(&dev->lock);
    return g;
}

/* Sends a request and waits for its answer (ODK_PCI_TIMEOUT_MS). */
static int request(odk_pci_device *dev, uint32_t op, uint64_t addr, uint32_t width,
                   uint64_t value, uint64_t *out)
{
    pthread_mutex_lock(&dev->req_lock);
    pthread_mutex_lock(&dev->lock);
    struct pci_wire w = {.op = op, .id = ++dev->next_id, .addr = addr, .width = width,
                         .value = value};
    dev->want_id = w.id;
    dev->answered = false;
    bool gone = dev->gone;
    pthread_mutex_unlock(&dev->lock);
    int st = gone ? ODK_E_GONE : ODK_OK;
    int sent = st == ODK_OK ? pci_wire_send(dev->sock, &w, NULL, 0, NULL, 0, 0) : 0;
    if (sent < 0) {
        if (sent == -EPIPE || sent == -ECONNRESET || sent == -ENOTCONN)
            mark_gone(dev); /* the model's end of the link is closed */
        st = ODK_E_GONE;
    }
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += ODK_PCI_TIMEOUT_MS / 1000;
    pthread_mutex_lock(&dev->lock);
    while (st == ODK_OK && !dev->answered && !dev->gone)
        if (pthread_cond_timedwait(&dev->cond, &dev->lock, &dl) == ETIMEDOUT)
            st = ODK_E_TIMEOUT;
    if (st == ODK_OK && !dev->answered)
        st = ODK_E_GONE;
    if (st == ODK_OK) {
        st = dev->answer.status;
        if (out)
            *out = dev->answer.value;
    }
    dev->want_id = 0;
    pthread_mutex_unlock(&dev->lock);
    pthread_mutex_unlock(&dev->req_lock);
    return st;
}

/* ---- VFIO --------------------------------------------------------------- */

static int vfio_dma_map(void *ctx, const struct iommu_chunk *c, uint64_t *cookie)
{
    odk_pci_device *dev = ctx;
    uint64_t iova = c->iova, len = c->len;
    void *host = c->host;
    bool writable = c->writable;
    (void)cookie;
    struct vfio_iommu_type1_dma_map m = {
        .argsz = sizeof m,
        .flags = VFIO_DMA_MAP_FLAG_READ | (writable ? VFIO_DMA_MAP_FLAG_WRITE : 0),
        .vaddr = (uint64_t)(uintptr_t)host,
        .iova = iova,
        .size = len};
    if (ioctl(dev->vfio_cont, VFIO_IOMMU_MAP_DMA, &m) < 0) {
        int err = errno;
        struct rlimit lim = {0, 0};
        if (err == ENOMEM && getrlimit(RLIMIT_MEMLOCK, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
            /* VFIO pins the pages and counts them against RLIMIT_MEMLOCK. */
            odk_warn("pci: VFIO cannot map %llu bytes at IOVA 0x%llx: %s; every page mapped for "
                     "DMA is pinned, and this host's locked-memory limit (RLIMIT_MEMLOCK) is "
                     "%llu KiB: raise the personality's OdkDMALockLimitMB (docs/pci.md)",
                     (unsigned long long)len, (unsigned long long)iova, strerror(err),
                     (unsigned long long)(lim.rlim_cur >> 10));
        else
            odk_warn("pci: VFIO cannot map %llu bytes at IOVA 0x%llx: %s", (unsigned long long)len,
                     (unsigned long long)iova, strerror(err));
        return err == ENOMEM ? ODK_E_NOMEM : ODK_E_IO;
    }
    return ODK_OK;
}

static void vfio_dma_unmap(void *ctx, uint64_t iova, uint64_t len, uint64_t cookie)
{
    (void)cookie;
    odk_pci_device *dev = ctx;
    struct vfio_iommu_type1_dma_unmap u = {.argsz = sizeof u, .iova = iova, .size = len};
    ioctl(dev->vfio_cont, VFIO_IOMMU_UNMAP_DMA, &u);
}

/* The regions and interrupts of the function, and the IOMMU mirror. */
static int vfio_setup(odk_pci_device *dev)
{
    struct vfio_region_info ri = {.argsz = sizeof ri, .index = VFIO_PCI_CONFIG_REGION_INDEX};
    if (ioctl(dev->vfio_dev, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
        return ODK_E_IO;
    dev->cfg_off = ri.offset;
    for (unsigned i = 0; i < PCI_BARS; i++) {
        ri = (struct vfio_region_info){.argsz = sizeof ri, .index = VFIO_PCI_BAR0_REGION_INDEX + i};
        if (ioctl(dev->vfio_dev, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0 || !ri.size)
            continue;
        dev->bar[i].size = ri.size;
        dev->bar_off[i] = ri.offset;
        if (ri.flags & VFIO_REGION_INFO_FLAG_MMAP) {
            void *m = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev->vfio_dev,
                           (off_t)ri.offset);
            if (m != MAP_FAILED)
                dev->bar[i].map = m;
        }
    }
    uint32_t counts[3] = {0, 0, 0};
    for (unsigned k = 0; k < 3; k++) {
        struct vfio_irq_info ii = {.argsz = sizeof ii, .index = VFIO_PCI_INTX_IRQ_INDEX + k};
        if (ioctl(dev->vfio_dev, VFIO_DEVICE_GET_IRQ_INFO, &ii) == 0)
            counts[k] = ii.count;
    }
    dev->n_msi = counts[1];
    dev->n_msix = counts[2];
    if (1 + dev->n_msi + dev->n_msix > PCI_MAX_VECTORS) {
        dev->n_msix = dev->n_msix > PCI_MAX_VECTORS - 1 - dev->n_msi
                          ? PCI_MAX_VECTORS - 1 - dev->n_msi
                          : dev->n_msix;
    }
    dev->n_vec = 1 + dev->n_msi + dev->n_msix;
    for (unsigned i = 0; i < dev->n_vec; i++)
        dev->vec_fd[i] = -1;
    odk_iommu *io = odk_driver_iommu(dev->drv);
    if (!io)
        return ODK_E_NOMEM;
    int st = iommu_set_mirror(io, vfio_dma_map, vfio_dma_unmap, dev);
    if (st < 0) {
        odk_warn("pci: the driver's IOMMU is mirrored already (a second function?): %s",
                 odk_strerror(st));
        return st;
    }
    dev->mirrored = io;
    return ODK_OK;
}

/* Gives VFIO fd (-1: none) for vector of type, as action
 * (VFIO_IRQ_SET_ACTION_TRIGGER: the interrupt signals it;
 * VFIO_IRQ_SET_ACTION_UNMASK: a write to it unmasks INTx). */
static int vfio_irq_fd(odk_pci_device *dev, odk_pci_interrupt_type type, uint32_t vector, int fd,
                       uint32_t action)
{
    /* struct vfio_irq_set ends in a flexible array: the eventfd follows it. */
    union {
        struct vfio_irq_set s;
        uint8_t bytes[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
    } req;
    memset(&req, 0, sizeof req);
    req.s.argsz = sizeof req.bytes;
    req.s.flags = VFIO_IRQ_SET_DATA_EVENTFD | action;
    req.s.index = VFIO_PCI_INTX_IRQ_INDEX + (uint32_t)type;
    req.s.start = vector;
    req.s.count = 1;
    int32_t efd = fd;
    memcpy(req.bytes + sizeof(struct vfio_irq_set), &efd, sizeof efd);
    if (ioctl(dev->vfio_dev, VFIO_DEVICE_SET_IRQS, &req) < 0) {
        odk_warn("pci: VFIO_DEVICE_SET_IRQS (type %d, vector %u, %s): %m", (int)type, vector,
                 action == VFIO_IRQ_SET_ACTION_UNMASK ? "unmask" : "trigger");
        return ODK_E_IO;
    }
    return ODK_OK;
}

/* Points vector of type at its eventfd in VFIO, or (fd -1) stops it.  INTx
 * is level-triggered: the kernel masks the line when it fires, and
 * irq->unmask_fd, written after the driver's handler acknowledged the
 * device, unmasks it. */
static int vfio_set_irq(odk_pci_device *dev, odk_pci_interrupt_type type, uint32_t vector, int fd,
                        int unmask_fd)
{
    int st = ODK_OK;
    if (fd < 0 && unmask_fd >= 0) /* the unmask goes first, then the trigger */
        vfio_irq_fd(dev, type, vector, -1, VFIO_IRQ_SET_ACTION_UNMASK);
    st = vfio_irq_fd(dev, type, vector, fd, VFIO_IRQ_SET_ACTION_TRIGGER);
    if (st == ODK_OK && fd >= 0 && unmask_fd >= 0 &&
        (st = vfio_irq_fd(dev, type, vector, unmask_fd, VFIO_IRQ_SET_ACTION_UNMASK)) < 0)
        vfio_irq_fd(dev, type, vector, -1, VFIO_IRQ_SET_ACTION_TRIGGER);
    return st;
}

static int vfio_mem(odk_pci_device *dev, uint8_t bar, uint64_t offset, unsigned width,
                    uint64_t *value, bool write)
{
    volatile uint8_t *p = dev->bar[bar].map ? dev->bar[bar].map + offset : NULL;
    if (p) {
        switch (width) {
        case 1:
            if (write)
                *p = (uint8_t)*value;
            else
                *value = *p;
            break;
        case 2:
            if (write)
                *(volatile uint16_t *)(volatile void *)p = (uint16_t)*value;
            else
                *value = *(volatile uint16_t *)(volatile void *)p;
            break;
        case 4:
            if (write)
                *(volatile uint32_t *)(volatile void *)p = (uint32_t)*value;
            else
                *value = *(volatile uint32_t *)(volatile void *)p;
            break;
        default:
            if (write)
                *(volatile uint64_t *)(volatile void *)p = *value;
            else
                *value = *(volatile uint64_t *)(volatile void *)p;
            break;
        }
        return ODK_OK;
    }
    uint64_t v = write ? *value : 0;
    ssize_t n = write ? pwrite(dev->vfio_dev, &v, width, (off_t)(dev->bar_off[bar] + offset))
                      : pread(dev->vfio_dev, &v, width, (off_t)(dev->bar_off[bar] + offset));
    if (n != (ssize_t)width)
        return ODK_E_IO;
    if (!write)
        *value = v;
    return ODK_OK;
}

/* ---- open and close ----------------------------------------------------- */

/* Receives the model's link hello with its descriptors. */
static int link_hello(odk_pci_device *dev)
{
    struct pollfd p = {dev->sock, POLLIN, 0};
    if (poll(&p, 1, (int)ODK_PCI_TIMEOUT_MS) <= 0)
        return ODK_E_TIMEOUT;
    uint8_t buf[sizeof(struct pci_wire) + sizeof(struct pci_link_hello)];
    int fds[16];
    size_t n_fds = 16;
    ssize_t n = pci_wire_recv(dev->sock, buf, sizeof buf, fds, &n_fds, 0);
    struct pci_wire w;
    struct pci_link_hello h;
    int st = ODK_OK;
    if (n != (ssize_t)sizeof buf) {
        st = n <= 0 ? ODK_E_GONE : ODK_E_PROTOCOL;
    } else {
        memcpy(&w, buf, sizeof w);
        memcpy(&h, buf + sizeof w, sizeof h);
        if (w.op != PCIW_LINK_HELLO || h.n_msi + h.n_msix + 1 > PCI_MAX_VECTORS)
            st = ODK_E_PROTOCOL;
    }
    size_t k = 0, need = 2;
    for (unsigned i = 0; st == ODK_OK && i < PCI_BARS; i++)
        need += h.bar_size[i] != 0;
    if (st == ODK_OK && (n_fds < need || n_fds - need != 1 + h.n_msi + h.n_msix))
        st = ODK_E_PROTOCOL;
    for (unsigned i = 0; st == ODK_OK && i < PCI_BARS; i++) {
        if (!h.bar_size[i] || h.bar_size[i] > PCI_SIM_MAX_BAR)
            continue;
        dev->bar[i].size = h.bar_size[i];
        dev->bar[i].fd = fds[k++];
        void *m = mmap(NULL, h.bar_size[i], PROT_READ, MAP_SHARED, dev->bar[i].fd, 0);
        if (m == MAP_FAILED)
            st = ODK_E_IO;
        else
            dev->bar[i].map = m;
    }
    if (st == ODK_OK) {
        dev->ctl_fd = fds[k++];
        dev->doorbell = fds[k++];
        void *m = mmap(NULL, sizeof(struct pci_ctl), PROT_READ | PROT_WRITE, MAP_SHARED,
                       dev->ctl_fd, 0);
        if (m == MAP_FAILED)
            st = ODK_E_IO;
        else
            dev->ctl = m;
        dev->n_msi = h.n_msi;
        dev->n_msix = h.n_msix;
        for (; k < n_fds; k++)
            dev->vec_fd[dev->n_vec++] = fds[k];
    }
    for (; k < n_fds; k++) /* what a failed hello left */
        close(fds[k]);
    return st;
}

int odk_pci_device_open(odk_driver *drv, odk_pci_device **out)
{
    if (!drv || !out)
        return ODK_E_INVALID;
    odk_pci_device *dev = calloc(1, sizeof *dev);
    if (!dev || !(dev->dma_buf = malloc(PCIW_MAX_DMA))) {
        free(dev);
        return ODK_E_NOMEM;
    }
    dev->drv = drv;
    dev->ctl_fd = dev->doorbell = dev->vfio_dev = dev->vfio_cont = -1;
    dev->irq_mode = -1;
    for (unsigned i = 0; i < PCI_BARS; i++)
        dev->bar[i].fd = -1;
    pthread_mutex_init(&dev->lock, NULL);
    pthread_mutex_init(&dev->req_lock, NULL);
    pthread_mutex_init(&dev->ring_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&dev->cond, &ca);
    pthread_condattr_destroy(&ca);

    odk_value *args = odk_value_new_dict(), *reply = NULL;
    if (args)
        odk_dict_set_int(args, "node", (int64_t)odk_driver_provider_id(drv));
    int fds[2] = {-1, -1};
    size_t n_fds = 2;
    int st = args ? host_link_request_fds("pci-open", args, &reply, fds, &n_fds) : ODK_E_NOMEM;
    if (st < 0) {
        const char *why = reply ? odk_dict_get_string(reply, "error", "") : "";
        odk_warn("pci: cannot open node %llu: %s%s%s",
                 (unsigned long long)odk_driver_provider_id(drv), odk_strerror(st),
                 *why ? ": " : "", why);
    } else if (strcmp(odk_dict_get_string(reply, "backend", ""), "vfio") == 0) {
        dev->vfio = true;
        if (n_fds != 2)
            st = ODK_E_PROTOCOL;
    } else if (n_fds != 1 || fds[0] < 0) {
        st = ODK_E_PROTOCOL;
    }
    odk_value_free(reply);
    dev->sock = -1;
    if (dev->vfio) {
        dev->vfio_dev = n_fds > 0 ? fds[0] : -1;
        dev->vfio_cont = n_fds > 1 ? fds[1] : -1;
        if (st == ODK_OK)
            st = vfio_setup(dev);
        for (unsigned i = 0; st == ODK_OK && i < PCI_BARS; i++) {
            uint32_t reg = 0;
            if (dev->bar[i].size &&
                pread(dev->vfio_dev, &reg, 4, (off_t)(dev->cfg_off + PCI_BAR0 + 4 * i)) == 4)
                dev->bar[i].flags = ((reg & PCI_BAR_MEM_64) ? ODK_PCI_BAR_64BIT : 0) |
                                    ((reg & PCI_BAR_PREFETCH) ? ODK_PCI_BAR_PREFETCHABLE : 0);
        }
        *out = NULL;
        if (st < 0) {
            odk_pci_device_close(dev);
            return st;
        }
        *out = dev;
        return ODK_OK;
    }
    dev->sock = st == ODK_OK ? fds[0] : -1;
    if (st == ODK_OK)
        st = link_hello(dev);
    if (st == ODK_OK) {
        /* The model then reads and writes what the driver's DMA commands
         * map itself; without the view (ODK_E_BUSY: a second function of
         * this driver) every access comes here, as it did before. */
        odk_iommu *io = odk_driver_iommu(drv);
        int vs = io ? sim_iommu_open(dev->sock, io, &dev->view) : ODK_E_NOMEM;
        if (vs < 0)
            odk_info("pci: the function's DMA goes through this host (%s)", odk_strerror(vs));
    }
    if (st == ODK_OK) {
        if (pthread_create(&dev->reader, NULL, reader, dev) != 0)
            st = ODK_E_NOMEM;
        else
            dev->reader_started = true;
    }
    if (st == ODK_OK) {
        for (unsigned i = 0; i < PCI_BARS && st == ODK_OK; i++) {
            uint64_t reg = 0;
            if (dev->bar[i].size && (st = request(dev, PCIW_CFG_READ, PCI_BAR0 + 4 * i, 4, 0,
                                                  &reg)) == ODK_OK)
                dev->bar[i].flags = ((reg & PCI_BAR_MEM_64) ? ODK_PCI_BAR_64BIT : 0) |
                                    ((reg & PCI_BAR_PREFETCH) ? ODK_PCI_BAR_PREFETCHABLE : 0);
        }
    }
    *out = NULL;
    if (st < 0) {
        odk_pci_device_close(dev);
        return st;
    }
    *out = dev;
    return ODK_OK;
}

void odk_pci_device_close(odk_pci_device *dev)
{
    if (!dev)
        return;
    for (unsigned i = 0; i < PCI_MAX_VECTORS; i++)
        odk_pci_interrupt_destroy(dev->irq[i]);
    if (dev->mirrored) /* what the driver still has prepared stays in the container until
                          odkd removes every mapping at the driver's end */
        iommu_set_mirror(dev->mirrored, NULL, NULL, NULL);
    /* The model gives back every chunk before the link ends. */
    sim_iommu_close(dev->view);
    if (dev->vfio_dev >= 0)
        close(dev->vfio_dev);
    if (dev->vfio_cont >= 0)
        close(dev->vfio_cont);
    if (dev->sock >= 0)
        shutdown(dev->sock, SHUT_RDWR);
    if (dev->reader_started)
        pthread_join(dev->reader, NULL);
    if (dev->sock >= 0)
        close(dev->sock);
    for (unsigned i = 0; i < PCI_BARS; i++) {
        if (dev->bar[i].map)
            munmap(dev->bar[i].map, dev->bar[i].size);
        if (dev->bar[i].fd >= 0)
            close(dev->bar[i].fd);
    }
    if (dev->ctl)
        munmap(dev->ctl, sizeof(struct pci_ctl));
    if (dev->ctl_fd >= 0)
        close(dev->ctl_fd);
    if (dev->doorbell >= 0)
        close(dev->doorbell);
    for (unsigned i = 0; i < dev->n_vec; i++)
        if (dev->vec_fd[i] >= 0)
            close(dev->vec_fd[i]);
    pthread_cond_destroy(&dev->cond);
    pthread_mutex_destroy(&dev->lock);
    pthread_mutex_destroy(&dev->req_lock);
    pthread_mutex_destroy(&dev->ring_lock);
    free(dev->dma_buf);
    free(dev);
}

const char *odk_pci_device_backend(const odk_pci_device *dev)
{
    return dev ? (dev->vfio ? "vfio" : "sim") : NULL;
}

/* ---- configuration space ------------------------------------------------ */

static int cfg_read(odk_pci_device *dev, uint16_t offset, unsigned width, uint32_t *value)
{
    if (!dev || !value)
        return ODK_E_INVALID;
    if (offset % width || offset + width > PCI_CONFIG_SIZE) {
        odk_warn("pci: config read of %u bytes at 0x%x: outside 4096 bytes or misaligned",
                 width, offset);
        return ODK_E_INVALID;
    }
    uint64_t v = 0;
    int st;
    if (dev->vfio)
        st = pread(dev->vfio_dev, &v, width, (off_t)(dev->cfg_off + offset)) == (ssize_t)width
                 ? ODK_OK
                 : ODK_E_GONE;
    else
        st = request(dev, PCIW_CFG_READ, offset, width, 0, &v);
    if (st == ODK_E_GONE || st == ODK_E_TIMEOUT)
        v = 0xffffffffu; /* what a read of a missing function returns */
    *value = (uint32_t)v;
    return st;
}

static int cfg_write(odk_pci_device *dev, uint16_t offset, unsigned width, uint32_t value)
{
    if (!dev)
        return ODK_E_INVALID;
    if (offset % width || offset + width > PCI_CONFIG_SIZE) {
        odk_warn("pci: config write of %u bytes at 0x%x: outside 4096 bytes or misaligned",
                 width, offset);
        return ODK_E_INVALID;
    }
    if (dev->vfio)
        return pwrite(dev->vfio_dev, &value, width, (off_t)(dev->cfg_off + offset)) ==
                       (ssize_t)width
                   ? ODK_OK
                   : ODK_E_GONE;
    return request(dev, PCIW_CFG_WRITE, offset, width, value, NULL);
}

int odk_pci_config_read8(odk_pci_device *dev, uint16_t offset, uint8_t *value)
{
    uint32_t v = 0;
    int st = value ? cfg_read(dev, offset, 1, &v) : ODK_E_INVALID;
    if (value)
        *value = (uint8_t)v;
    return st;
}

int odk_pci_config_read16(odk_pci_device *dev, uint16_t offset, uint16_t *value)
{
    uint32_t v = 0;
    int st = value ? cfg_read(dev, offset, 2, &v) : ODK_E_INVALID;
    if (value)
        *value = (uint16_t)v;
    return st;
}

int odk_pci_config_read32(odk_pci_device *dev, uint16_t offset, uint32_t *value)
{
    return cfg_read(dev, offset, 4, value);
}

int odk_pci_config_write8(odk_pci_device *dev, uint16_t offset, uint8_t value)
{
    return cfg_write(dev, offset, 1, value);
}

int odk_pci_config_write16(odk_pci_device *dev, uint16_t offset, uint16_t value)
{
    return cfg_write(dev, offset, 2, value);
}

int odk_pci_config_write32(odk_pci_device *dev, uint16_t offset, uint32_t value)
{
    return cfg_write(dev, offset, 4, value);
}

int odk_pci_find_capability(odk_pci_device *dev, uint8_t id, uint16_t *offset)
{
    if (!dev || !offset)
        return ODK_E_INVALID;
    uint32_t status, p;
    int st = cfg_read(dev, PCI_STATUS, 2, &status);
    if (st < 0)
        return st;
    if (!(status & PCI_STATUS_CAP_LIST))
        return ODK_E_NOT_FOUND;
    if ((st = cfg_read(dev, PCI_CAPABILITY_LIST, 1, &p)) < 0)
        return st;
    for (unsigned n = 0; (p & 0xfc) >= 0x40 && n < PCI_MAX_CAPS; n++) {
        uint32_t hdr;
        if ((st = cfg_read(dev, (uint16_t)(p & 0xfc), 2, &hdr)) < 0)
            return st;
        if ((hdr & 0xff) == id) {
            *offset = (uint16_t)(p & 0xfc);
            return ODK_OK;
        }
        p = hdr >> 8;
    }
    return ODK_E_NOT_FOUND;
}

static int enable_mode(odk_pci_device *dev, odk_pci_interrupt_type type);

static int command_bit(odk_pci_device *dev, uint32_t bit, bool on)
{
    uint32_t cmd;
    int st = cfg_read(dev, PCI_COMMAND, 2, &cmd);
    if (st < 0)
        return st;
    return cfg_write(dev, PCI_COMMAND, 2, on ? cmd | bit : cmd & ~bit);
}

static int msix_mask(odk_pci_device *dev, uint32_t vector, bool masked);

int odk_pci_set_memory_enable(odk_pci_device *dev, bool on)
{
    int st = command_bit(dev, PCI_COMMAND_MEMORY, on);
    /* The MSI-X table is in a BAR: what a reset masked, or what was
     * unmasked while decoding was off (the write was dropped), is unmasked
     * now for the sources that stand. */
    for (unsigned i = 0; st == ODK_OK && on && !dev->vfio && dev->irq_mode == ODK_PCI_MSIX &&
                         i < PCI_MAX_VECTORS; i++)
        if (dev->irq[i])
            st = msix_mask(dev, dev->irq[i]->vector, false);
    return st;
}

int odk_pci_set_bus_master(odk_pci_device *dev, bool on)
{
    return command_bit(dev, PCI_COMMAND_MASTER, on);
}

int odk_pci_reset(odk_pci_device *dev)
{
    if (!dev)
        return ODK_E_INVALID;
    int st;
    if (dev->vfio)
        st = ioctl(dev->vfio_dev, VFIO_DEVICE_RESET) == 0 ? ODK_OK : ODK_E_IO;
    else
        st = request(dev, PCIW_FLR, 0, 0, 0, NULL);
    /* The reset turned MSI off; the driver's sources still stand. */
    if (st == ODK_OK && dev->irq_mode >= 0 && !dev->vfio)
        st = enable_mode(dev, (odk_pci_interrupt_type)dev->irq_mode);

    for (unsigned i = 0; st == ODK_OK && dev->vfio && i < PCI_MAX_VECTORS; i++)
        if (dev->irq[i])
            st = vfio_set_irq(dev, (odk_pci_interrupt_type)dev->irq_mode, dev->irq[i]->vector,
                              dev->vec_fd[i], dev->irq[i]->unmask_fd);
    return st;
}

int odk_pci_set_power(odk_pci_device *dev, odk_pci_power state)
{
    if (!dev || (state != ODK_PCI_D0 && state != ODK_PCI_D3HOT))
        return ODK_E_INVALID;
    uint16_t pm;
    int st = odk_pci_find_capability(dev, PCI_CAP_ID_PM, &pm);
    if (st == ODK_E_NOT_FOUND)
        return ODK_E_UNSUPPORTED;
    uint32_t v;
    if (st < 0 || (st = cfg_read(dev, (uint16_t)(pm + PCI_PM_CTRL), 2, &v)) < 0)
        return st;
    return cfg_write(dev, (uint16_t)(pm + PCI_PM_CTRL), 2, (v & ~PCI_PM_STATE_MASK) | state);
}

/* ---- BARs --------------------------------------------------------------- */

int odk_pci_bar_get_info(odk_pci_device *dev, uint8_t bar, odk_pci_bar_info *info)
{
    if (!dev || !info || bar >= PCI_BARS)
        return ODK_E_INVALID;
    if (!dev->bar[bar].size)
        return ODK_E_NOT_FOUND;
    info->size = dev->bar[bar].size;
    info->flags = dev->bar[bar].flags;
    return ODK_OK;
}

static int bar_range(odk_pci_device *dev, uint8_t bar, uint64_t offset, uint64_t length,
                     const char *what)
{
    if (!dev || bar >= PCI_BARS)
        return ODK_E_INVALID;
    if (!dev->bar[bar].size) {
        odk_warn("pci: %s: the function has no BAR %u", what, bar);
        return ODK_E_NOT_FOUND;
    }
    if (length == 0 || offset > dev->bar[bar].size || length > dev->bar[bar].size - offset) {
        odk_warn("pci: %s: %llu bytes at offset 0x%llx are outside BAR %u (%llu bytes)", what,
                 (unsigned long long)length, (unsigned long long)offset, bar,
                 (unsigned long long)dev->bar[bar].size);
        return ODK_E_INVALID;
    }
    return ODK_OK;
}

static int wait_tail(odk_pci_device *dev, uint32_t until_room)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (unsigned spins = 0;; spins++) {
        uint32_t tail = __atomic_load_n(&dev->ctl->tail, __ATOMIC_ACQUIRE);
        uint32_t head = __atomic_load_n(&dev->ctl->head, __ATOMIC_ACQUIRE);
        if (head - tail <= until_room)
            return ODK_OK;
        if (is_gone(dev))
            return ODK_E_GONE;
        if (spins < 64)
            continue;
        struct timespec slice = {0, 10 * 1000 * 1000};
        /* The model wakes the futex only when it sees a waiter; a tail it
         * moved before it could see this one fails the wait at once. */
        __atomic_fetch_add(&dev->ctl->tail_waiters, 1, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, &dev->ctl->tail, FUTEX_WAIT, tail, &slice, NULL, 0);
        __atomic_fetch_sub(&dev->ctl->tail_waiters, 1, __ATOMIC_RELEASE);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (pci_elapsed_ms(&start, &now) > ODK_PCI_TIMEOUT_MS)
            return ODK_E_TIMEOUT;
    }
}

int odk_pci_flush(odk_pci_device *dev)
{
    if (!dev)
        return ODK_E_INVALID;
    return dev->vfio ? ODK_OK : wait_tail(dev, 0); /* a real read flushes on its own */
}

static int mem_read(odk_pci_device *dev, uint8_t bar, uint64_t offset, unsigned width,
                    uint64_t *value)
{
    int st = bar_range(dev, bar, offset, width, "memory read");
    if (st == ODK_OK && offset % width)
        st = ODK_E_INVALID;
    if (st < 0)
        return st;
    if (dev->vfio)
        return vfio_mem(dev, bar, offset, width, value, false);
    st = wait_tail(dev, 0);
    if (st == ODK_OK && __atomic_load_n(&dev->gone, __ATOMIC_ACQUIRE))
        st = ODK_E_GONE;
    if (st < 0) {
        *value = UINT64_MAX >> (64 - 8 * width); /* all ones, as from a missing function */
        return st;
    }
    const uint8_t *p = dev->bar[bar].map + offset;
    switch (width) {
    case 1:
        *value = __atomic_load_n(p, __ATOMIC_ACQUIRE);
        break;
    case 2:
        *value = __atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_ACQUIRE);
        break;
    case 4:
        *value = __atomic_load_n((const uint32_t *)(const void *)p, __ATOMIC_ACQUIRE);
        break;
    default:
        *value = __atomic_load_n((const uint64_t *)(const void *)p, __ATOMIC_ACQUIRE);
        break;
    }
    return ODK_OK;
}

static int mem_write(odk_pci_device *dev, uint8_t bar, uint64_t offset, unsigned width,
                     uint64_t value)
{
    int st = bar_range(dev, bar, offset, width, "memory write");
    if (st == ODK_OK && offset % width)
        st = ODK_E_INVALID;
    if (st < 0)
        return st;
    if (dev->vfio)
        return vfio_mem(dev, bar, offset, width, &value, true);
    if (is_gone(dev))
        return ODK_E_GONE;
    pthread_mutex_lock(&dev->ring_lock);
    st = wait_tail(dev, PCI_RING - 1);
    if (st == ODK_OK) {
        uint32_t head = __atomic_load_n(&dev->ctl->head, __ATOMIC_RELAXED);
        dev->ctl->ring[head % PCI_RING] = (struct pci_mmio_op){
            .bar = bar, .width = (uint8_t)width, .offset = (uint32_t)offset, .value = value};
        __atomic_store_n(&dev->ctl->head, head + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&dev->ring_lock);
    if (st < 0)
        return st;
    /* The doorbell only for a model that may be asleep: a busy one looks
     * at the ring on each turn of its loop (pci_wire.h, model_idle). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t one = 1;
    if (__atomic_load_n(&dev->ctl->model_idle, __ATOMIC_RELAXED) &&
        write(dev->doorbell, &one, sizeof one) != sizeof one)
        st = ODK_E_IO;
    return st;
}

#define MEM_RW(bits)                                                                               \
    int odk_pci_memory_read##bits(odk_pci_device *dev, uint8_t bar, uint64_t offset,              \
                                  uint##bits##_t *value)                                          \
    {                                                                                              \
        if (!value)                                                                                \
            return ODK_E_INVALID;                                                                  \
        uint64_t v = 0;                                                                            \
        int st = mem_read(dev, bar, offset, bits / 8, &v);                                         \
        *value = (uint##bits##_t)v;                                                                \
        return st;                                                                                 \
    }                                                                                              \
    int odk_pci_memory_write##bits(odk_pci_device *dev, uint8_t bar, uint64_t offset,             \
                                   uint##bits##_t value)                                          \
    {                                                                                              \
        return mem_write(dev, bar, offset, bits / 8, value);                                       \
    }
MEM_RW(8)
MEM_RW(16)
MEM_RW(32)
MEM_RW(64)

int odk_pci_bar_map(odk_pci_device *dev, uint8_t bar, uint64_t offset, uint64_t length,
                    const volatile void **out)
{
    if (!out)
        return ODK_E_INVALID;
    int st = bar_range(dev, bar, offset, length, "BAR mapping");
    if (st < 0)
        return st;
    if (!dev->bar[bar].map) {
        odk_warn("pci: BAR %u cannot be mapped (VFIO offers no mmap for it)", bar);
        return ODK_E_UNSUPPORTED;
    }
    *out = dev->bar[bar].map + offset;
    return ODK_OK;
}

/* ---- interrupts --------------------------------------------------------- */

uint32_t odk_pci_interrupt_vectors(odk_pci_device *dev, odk_pci_interrupt_type type)
{
    if (!dev)
        return 0;
    switch (type) {
    case ODK_PCI_INTX: {
        uint32_t pin = 0;
        return cfg_read(dev, PCI_INTERRUPT_PIN, 1, &pin) == ODK_OK && pin ? 1 : 0;
    }
    case ODK_PCI_MSI:
        return dev->n_msi;
    case ODK_PCI_MSIX:
        return dev->n_msix;
    }
    return 0;
}

static void on_vector(void *ctx, uint32_t revents)
{
    odk_pci_interrupt *irq = ctx;
    (void)revents;
    uint64_t n = 0;
    if (read(irq->dev->vec_fd[irq->index], &n, sizeof n) != sizeof n || !n)
        return;
    uint64_t ts;
    if (irq->dev->ctl) {
        ts = __atomic_load_n(&irq->dev->ctl->irq_ns[irq->index], __ATOMIC_ACQUIRE);
    } else { /* VFIO: when the host saw it */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        ts = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    }
    irq->fn(irq->ctx, irq->vector, n, ts);
    /* The handler acknowledged the device, which dropped its line: the
     * kernel may take the next one. */
    uint64_t one = 1;
    if (irq->unmask_fd >= 0 && write(irq->unmask_fd, &one, sizeof one) != sizeof one)
        odk_warn("pci: INTx cannot be unmasked: %m");
}

/* Turns the function's interrupt mode on in its config space. */
static int enable_mode(odk_pci_device *dev, odk_pci_interrupt_type type)
{
    uint16_t cap;
    uint32_t v;
    int st;
    switch (type) {
    case ODK_PCI_INTX:
        return command_bit(dev, PCI_COMMAND_INTX_DISABLE, false);
    case ODK_PCI_MSI:
        if ((st = odk_pci_find_capability(dev, PCI_CAP_ID_MSI, &cap)) < 0 ||
            (st = cfg_read(dev, (uint16_t)(cap + PCI_MSI_FLAGS), 2, &v)) < 0)
            return st;
        /* Multiple Message Enable: as many vectors as offered (log2). */
        unsigned log2 = 0;
        while ((1u << log2) < dev->n_msi)
            log2++;
        return cfg_write(dev, (uint16_t)(cap + PCI_MSI_FLAGS), 2,
                         (v & ~0x70u) | PCI_MSI_ENABLE | log2 << 4);
    case ODK_PCI_MSIX:
        if ((st = odk_pci_find_capability(dev, PCI_CAP_ID_MSIX, &cap)) < 0 ||
            (st = cfg_read(dev, (uint16_t)(cap + PCI_MSIX_FLAGS), 2, &v)) < 0)
            return st;
        return cfg_write(dev, (uint16_t)(cap + PCI_MSIX_FLAGS), 2,
                         (v & ~0x4000u) | PCI_MSIX_ENABLE);
    }
    return ODK_E_INVALID;
}

/* Masks or unmasks MSI-X entry vector in the function's table (the sim's
 * entries start masked after a reset, as the specification has them; under
 * VFIO the kernel owns the table). */
static int msix_mask(odk_pci_device *dev, uint32_t vector, bool masked)
{
    uint16_t cap;
    uint32_t table;
    int st;
    if ((st = odk_pci_find_capability(dev, PCI_CAP_ID_MSIX, &cap)) < 0 ||
        (st = cfg_read(dev, (uint16_t)(cap + PCI_MSIX_TABLE), 4, &table)) < 0)
        return st;
    return mem_write(dev, (uint8_t)(table & 7), (table & ~7u) + 16ull * vector + 12, 4,
                     masked ? 1 : 0);
}

/* Whether VFIO masks INTx when it fires (it does for a level interrupt;
 * it then needs the unmask after each one). */
static bool vfio_intx_automasked(odk_pci_device *dev)
{
    struct vfio_irq_info ii = {.argsz = sizeof ii, .index = VFIO_PCI_INTX_IRQ_INDEX};
    return ioctl(dev->vfio_dev, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0 ||
           (ii.flags & VFIO_IRQ_INFO_AUTOMASKED);
}

int odk_pci_interrupt_create(odk_pci_device *dev, odk_pci_interrupt_type type, uint32_t vector,
                             odk_queue *q, odk_pci_interrupt_handler fn, void *ctx,
                             odk_pci_interrupt **out)
{
    if (!dev || !fn || !out || type > ODK_PCI_MSIX)
        return ODK_E_INVALID;
    uint32_t n = type == ODK_PCI_INTX ? 1 : type == ODK_PCI_MSI ? dev->n_msi : dev->n_msix;
    if (vector >= n)
        return ODK_E_NOT_FOUND;
    unsigned index = type == ODK_PCI_INTX ? 0
                     : type == ODK_PCI_MSI ? 1 + vector
                                            : 1 + dev->n_msi + vector;
    if (index >= dev->n_vec)
        return ODK_E_NOT_FOUND;
    if (dev->irq[index])
        return ODK_E_BUSY;
    if (dev->irq_mode >= 0 && dev->irq_mode != (int)type)
        return ODK_E_STATE;
    int st, unmask_fd = -1;
    if (dev->vfio) {
        if (dev->vec_fd[index] < 0 &&
            (dev->vec_fd[index] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
            return ODK_E_IO;
        if (type == ODK_PCI_INTX && vfio_intx_automasked(dev) &&
            (unmask_fd = eventfd(0, EFD_CLOEXEC)) < 0)
            return ODK_E_IO;
        if ((st = vfio_set_irq(dev, type, vector, dev->vec_fd[index], unmask_fd)) < 0) {
            if (unmask_fd >= 0)
                close(unmask_fd);
            return st;
        }
    } else if ((dev->irq_mode != (int)type && (st = enable_mode(dev, type)) < 0) ||
               (type == ODK_PCI_MSIX && (st = msix_mask(dev, vector, false)) < 0)) {
        return st;
    }
    dev->irq_mode = (int)type;
    odk_pci_interrupt *irq = calloc(1, sizeof *irq);
    if (!irq) {
        if (unmask_fd >= 0) {
            vfio_set_irq(dev, type, vector, -1, unmask_fd);
            close(unmask_fd);
        }
        return ODK_E_NOMEM;
    }
    *irq = (odk_pci_interrupt){.dev = dev,
                               .index = index,
                               .vector = vector,
                               .fn = fn,
                               .ctx = ctx,
                               .q = q ? q : odk_driver_queue(dev->drv),
                               .unmask_fd = unmask_fd};
    st = odk_fd_source_create(irq->q, dev->vec_fd[index], EPOLLIN, on_vector, irq, &irq->src);
    if (st < 0) {
        if (dev->vfio)
            vfio_set_irq(dev, type, vector, -1, unmask_fd);
        if (unmask_fd >= 0)
            close(unmask_fd);
        free(irq);
        return st;
    }
    dev->irq[index] = irq;
    *out = irq;
    return ODK_OK;
}

static void sem_post_done(void *ctx)
{
    sem_post(ctx);
}

void odk_pci_interrupt_destroy(odk_pci_interrupt *irq)
{
    if (!irq)
        return;
    if (odk_queue_is_current(irq->q)) {
        odk_fd_source_cancel(irq->src, NULL, NULL);
    } else {
        sem_t done;
        sem_init(&done, 0, 0);
        if (odk_fd_source_cancel(irq->src, sem_post_done, &done) == ODK_OK)
            while (sem_wait(&done) < 0 && errno == EINTR)
                ;
        sem_destroy(&done);
    }
    odk_release(irq->src);
    odk_pci_device *dev = irq->dev;
    if (dev->vfio)
        vfio_set_irq(dev, (odk_pci_interrupt_type)dev->irq_mode, irq->vector, -1, irq->unmask_fd);
    if (irq->unmask_fd >= 0)
        close(irq->unmask_fd);
    else if (dev->irq_mode == ODK_PCI_MSIX && !is_gone(dev))
        msix_mask(dev, irq->vector, true);
    dev->irq[irq->index] = NULL;
    free(irq);
    bool any = false;
    for (unsigned i = 0; i < PCI_MAX_VECTORS; i++)
        any |= dev->irq[i] != NULL;
    if (!any)
        dev->irq_mode = -1;
}

/* ---- IOMMU faults ------------------------------------------------------- */

int odk_pci_device_set_fault_handler(odk_pci_device *dev, odk_pci_fault_handler fn, void *ctx)
{
    if (!dev)
        return ODK_E_INVALID;
    pthread_mutex_lock(&dev->lock);
    dev->fault_fn = fn;
    dev->fault_ctx = ctx;
    pthread_mutex_unlock(&dev->lock);
    return ODK_OK;
}

uint64_t odk_pci_device_fault_count(odk_pci_device *dev, uint64_t *last_address)
{
    if (!dev)
        return 0;
    pthread_mutex_lock(&dev->lock);
    uint64_t n = dev->faults;
    if (last_address)
        *last_address = dev->last_fault;
    pthread_mutex_unlock(&dev->lock);
    return n;
}
