/* SPDX-License-Identifier: MIT */
/* pci_wire.h — how odkd and the driver hosts talk to a simulated PCI
 * function's model process (odk-pci-model), and the shared page through
 * which MMIO writes reach the model.
 *
 * Connections are SOCK_SEQPACKET sockets carrying one struct pci_wire (and
 * for some operations a body) per packet.  odkd holds the model's first
 * connection (fd 3): the model says hello with its configuration space and
 * BAR sizes, odkd checks them and publishes the node, and later hands the
 * model one link per driver host that opens the function (PCIW_ATTACH).  On
 * its link the model sends the host (PCIW_LINK_HELLO) the BAR memory, the
 * MMIO ring page, the doorbell and one eventfd per interrupt vector.
 *
 * MMIO: a BAR is a memfd both sides map.  The model keeps every register's
 * current value in it, so a read is a load (the driver may map the BAR
 * read-only and poll it without a system call).  A write is posted into a
 * ring in the ctl page (struct pci_ctl) and the doorbell eventfd wakes the
 * model, which applies the register's semantics in ring order and advances
 * `tail` (a futex word).  odk_pci_memory_read* first waits until the model
 * has consumed every posted write, as a PCI read flushes posted writes.
 * Only a sleeper is woken: the host rings the doorbell only while the
 * model says it may sleep (model_idle; it looks at the ring once more after
 * saying so), and the model wakes the tail's futex only while a host waits
 * on it (tail_waiters), so a busy model takes writes without system calls.
 *
 * DMA: the driver's simulated IOMMU lives in its host.  The host mirrors
 * every chunk it maps into the model (PCIW_IOMMU: a table of slots in
 * shared memory and a channel carrying each chunk's memfd), so the model
 * reads and writes mapped memory itself, checked against that table and
 * revoked through it (struct pci_iommu_table).  An access the model's view
 * does not admit goes to the host as before (PCIW_DMA), which performs it
 * through the IOMMU or refuses it: an IOMMU fault reported to the driver.
 * Integers are in host order (same machine).
 */
#ifndef ODK_PCI_WIRE_H
#define ODK_PCI_WIRE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

enum pci_wire_op {
    /* model -> odkd, first message: body struct pci_hello. */
    PCIW_HELLO = 1,
    /* odkd -> model: a driver host's link in SCM_RIGHTS; reply status.
     * The model refuses it (and says why) unless it was reset since the
     * last link ended. */
    PCIW_ATTACH = 2,
    /* odkd -> model: disable bus mastering, then function-level reset;
     * reply status.  odkd sends it whenever a link ends. */
    PCIW_RESET = 3,
    /* model -> odkd, unsolicited: the driver host's link closed. */
    PCIW_DETACHED = 4,
    /* model -> odkd, unsolicited: JSON of the model's state. */
    PCIW_REPORT = 5,
    /* model -> odkd, unsolicited: the function left the bus. */
    PCIW_GONE = 6,
    /* model -> host, first message on a link: body struct pci_link_hello;
     * fds: BARs (one memfd per nonzero BAR, in order), the ctl page, the
     * doorbell eventfd, then one eventfd per vector (INTx, MSI..., MSI-X...). */
    PCIW_LINK_HELLO = 7,
    /* host -> model: config read of `width` bytes at `addr`; reply value. */
    PCIW_CFG_READ = 8,
    /* host -> model: config write; reply status. */
    PCIW_CFG_WRITE = 9,
    /* host -> model: function-level reset; reply status. */
    PCIW_FLR = 10,
    /* model -> host: bus-master access of `length` bytes at IOVA `addr`;
     * flags PCIW_DMA_TO_DEVICE (memory is read; reply body = the bytes) or
     * 0 (memory is written; the body carries the bytes).  Reply status:
     * ODK_E_ACCESS for an IOMMU fault. */
    PCIW_DMA = 11,
    /* odkd -> model: surprise removal (odkctl pci unplug --surprise); the
     * model answers GONE. */
    PCIW_REMOVE = 12,
    /* host -> model, after the link hello: the model's view of the
     * driver's IOMMU; fds: the channel (a SOCK_SEQPACKET socket carrying
     * struct pci_iommu_msg) and the memfd of struct pci_iommu_table.  No
     * reply: until it comes every DMA goes to the host. */
    PCIW_IOMMU = 13,
};

#define PCIW_DMA_TO_DEVICE 1u

struct pci_wire {
    uint32_t op;
    uint32_t id;
    int32_t status;
    uint32_t width;
    uint32_t flags;
    uint32_t length;
    uint64_t addr;
    uint64_t value;
};

#define PCI_CONFIG_SIZE 4096u
#define PCI_BARS 6
/* The most vectors a simulated function offers: 1 INTx + MSI + MSI-X. */
#define PCI_MAX_VECTORS 64
/* The largest DMA one message carries (a model splits longer ones). */
#define PCIW_MAX_DMA 65536u
#define PCIW_MAX_PACKET (sizeof(struct pci_wire) + PCIW_MAX_DMA)

struct pci_hello {
    char model[32];
    uint64_t bar_size[PCI_BARS]; /* 0: no BAR; sizes as the model declares them */
    uint32_t n_msi, n_msix;      /* vectors beyond INTx */
    uint8_t config[PCI_CONFIG_SIZE];
};

struct pci_link_hello {
    uint64_t bar_size[PCI_BARS];
    uint32_t n_msi, n_msix;
};

/* One posted MMIO write. */
struct pci_mmio_op {
    uint8_t bar, width; /* width 1, 2, 4 or 8 */
    uint16_t pad;
    uint32_t offset;
    uint64_t value;
};

#define PCI_RING 256u /* posted writes in flight (a power of two) */

/* The ctl page: head is the host's, tail the model's (a futex word the
 * host waits on); model_idle is 1 while the model may sleep in poll (the
 * host rings the doorbell after a write only then), tail_waiters counts the
 * host's threads in FUTEX_WAIT on tail (the model wakes them only then);
 * each side stores its flag, then a full fence, then looks at the other's
 * word.  irq_ns[v] the CLOCK_MONOTONIC time the model last raised vector
 * v. */
struct pci_ctl {
    uint32_t head;
    uint32_t tail;
    uint32_t model_idle;
    uint32_t tail_waiters;
    uint32_t pad[12];
    uint64_t irq_ns[PCI_MAX_VECTORS];
    struct pci_mmio_op ring[PCI_RING];
};

/* The model's view of the driver's IOMMU.  For each chunk the host's IOMMU
 * maps, the host takes a free slot, stores a new generation in live[slot]
 * and sends PCI_IOMMU_MAP with the chunk's memory descriptor's memfd; the
 * model maps [mem_offset, mem_offset + len) of it.  An access goes:
 *
 *   model:  busy = 1; fence; live[slot] == gen ? copy : go to the host;
 *           busy = 0 (and a futex wake when waiters)
 *   host:   live[slot] = 0; fence; wait while busy     (the unmap)
 *
 * so when the host's unmap returns (odk_dma_command_complete), no access
 * that saw the chunk is in progress and none can start.  PCI_IOMMU_UNMAP
 * then tells the model to drop its mapping (a hint: the model also drops
 * any whose slot no longer holds its generation).  A model that has not
 * read a MAP yet sends the access to the host, which is always right. */
enum pci_iommu_op { PCI_IOMMU_MAP = 1, PCI_IOMMU_UNMAP = 2 };

struct pci_iommu_msg {
    uint32_t op, slot;
    uint64_t gen, iova, len, mem_offset; /* len, mem_offset: page multiples */
    uint32_t writable, pad;
};

#define PCI_IOMMU_SLOTS 4096u /* chunks the model sees at once; more go to the host */

struct pci_iommu_table {
    uint32_t busy;    /* the model's: 1 inside an access (a futex word) */
    uint32_t waiters; /* hosts waiting for busy to clear */
    uint32_t pad[14];
    uint64_t live[PCI_IOMMU_SLOTS]; /* the slot's generation while it stands, else 0 */
};

/* Sends w and body as one message, with n_fds descriptors (<= 16) in
 * SCM_RIGHTS; flags are sendmsg's (MSG_NOSIGNAL added).  0 or -errno. */
static inline int pci_wire_send(int sock, const struct pci_wire *w, const void *body, size_t len,
                                const int *fds, size_t n_fds, int flags)
{
    struct iovec iov[2] = {{(void *)w, sizeof *w}, {(void *)body, len}};
    union {
        char buf[CMSG_SPACE(16 * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = body && len ? 2 : 1};
    if (n_fds > 16)
        return -EINVAL;
    if (n_fds) {
        memset(&cbuf, 0, sizeof cbuf);
        mh.msg_control = cbuf.buf;
        mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, n_fds * sizeof(int));
    }
    while (sendmsg(sock, &mh, flags | MSG_NOSIGNAL) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

/* Receives one message into buf (cap bytes) and up to *n_fds descriptors
 * (set to how many came; extra ones are closed).  Returns the message's
 * length, 0 at end of stream, or -errno. */
static inline ssize_t pci_wire_recv(int sock, void *buf, size_t cap, int *fds, size_t *n_fds,
                                    int flags)
{
    union {
        char buf[CMSG_SPACE(16 * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = {buf, cap};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
                        .msg_controllen = sizeof cbuf.buf};
    ssize_t n;
    while ((n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    size_t want = n_fds ? *n_fds : 0, got = 0;
    if (n >= 0)
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                continue;
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
                if (got < want)
                    fds[got++] = fd;
                else
                    close(fd);
            }
        }
    if (n_fds)
        *n_fds = got;
    if (n < 0)
        return -errno;
    if (mh.msg_flags & MSG_TRUNC)
        return -EMSGSIZE;
    return n;
}

#endif
