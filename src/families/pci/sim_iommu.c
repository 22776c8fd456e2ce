/* SPDX-License-Identifier: MIT */
/* sim_iommu.c — the model's view of the driver's IOMMU, host side
 * (sim_iommu.h; the protocol is in pci_wire.h).
 *
 * The mirror's callbacks run with the IOMMU's lock held.  A map takes a
 * slot, publishes a new generation in it and sends the model the chunk
 * with its memfd without waiting (a full channel costs the model a round
 * trip per access, never correctness: the host serves what the model was
 * not told).  An unmap zeroes the slot and waits while the model is inside
 * an access, which is bounded by one copy and never waits on the host, so
 * holding the lock meanwhile cannot deadlock. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "buses/pci/pci_wire.h"
#include "families/pci/pci_elapsed.h"
#include "families/pci/sim_iommu.h"
#include "odk/log.h"
#include "odk/pci.h"
#include "runtime/dma_internal.h"

struct sim_iommu {
    odk_iommu *io;
    int chan; /* ours; the model has the other end */
    struct pci_iommu_table *t;
    uint32_t free_slots[PCI_IOMMU_SLOTS];
    uint32_t n_free;
    bool used[PCI_IOMMU_SLOTS];
    uint64_t gen;
    bool gone, warned;
};

/* One message, with fd (-1: none) in SCM_RIGHTS; a full channel is waited
 * on for a moment only. */
static int send_msg(struct sim_iommu *s, const struct pci_iommu_msg *m, int fd)
{
    struct iovec iov = {(void *)m, sizeof *m};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&cbuf, 0, sizeof cbuf);
        mh.msg_control = cbuf.buf;
        mh.msg_controllen = sizeof cbuf.buf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    }
    for (int tries = 0;; tries++) {
        if (sendmsg(s->chan, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)sizeof *m)
            return ODK_OK;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN || tries == 1) {
            if (errno != EAGAIN)
                s->gone = true;
            return ODK_E_IO;
        }
        struct pollfd p = {s->chan, POLLOUT, 0};
        poll(&p, 1, 20);
    }
}

/* Waits until the model is outside any access (or gone). */
static void wait_idle(struct sim_iommu *s)
{
    uint32_t *busy = &s->t->busy, *waiters = &s->t->waiters;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!__atomic_load_n(busy, __ATOMIC_SEQ_CST) || s->gone)
        return;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    __atomic_fetch_add(waiters, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(busy, __ATOMIC_SEQ_CST)) {
        struct timespec slice = {0, 10 * 1000 * 1000};
        syscall(SYS_futex, &s->t->busy, FUTEX_WAIT, 1, &slice, NULL, 0);
        /* A model that died inside an access leaves busy set: its end of
         * the channel closed with it. */
        struct pollfd p = {s->chan, 0, 0};
        if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR))) {
            s->gone = true;
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!s->warned && pci_elapsed_ms(&start, &now) >= ODK_PCI_TIMEOUT_MS) {
            s->warned = true;
            odk_warn("pci: the function has been inside one DMA access for %u ms; the unmap "
                     "waits for it",
                     (unsigned)ODK_PCI_TIMEOUT_MS);
        }
    }
    __atomic_fetch_sub(waiters, 1, __ATOMIC_SEQ_CST);
}

static int on_map(void *ctx, const struct iommu_chunk *c, uint64_t *cookie)
{
    struct sim_iommu *s = ctx;
    int fd = odk_memory_fd(c->memory);
    if (s->gone || fd < 0 || !s->n_free)
        return ODK_OK; /* the model asks the host for this chunk's bytes */
    uint32_t slot = s->free_slots[--s->n_free];
    s->used[slot] = true;
    uint64_t gen = ++s->gen;
    __atomic_store_n(&s->t->live[slot], gen, __ATOMIC_RELEASE);
    *cookie = (uint64_t)slot + 1;
    struct pci_iommu_msg m = {.op = PCI_IOMMU_MAP,
                              .slot = slot,
                              .gen = gen,
                              .iova = c->iova,
                              .len = c->len,
                              .mem_offset = c->mem_offset,
                              .writable = c->writable};
    send_msg(s, &m, fd);
    return ODK_OK;
}

/* Takes slot back: once this returns the model no longer touches it. */
static void take_back(struct sim_iommu *s, uint32_t slot)
{
    __atomic_store_n(&s->t->live[slot], 0, __ATOMIC_RELAXED);
    wait_idle(s);
    s->used[slot] = false;
    s->free_slots[s->n_free++] = slot;
}

static void on_unmap(void *ctx, uint64_t iova, uint64_t len, uint64_t cookie)
{
    struct sim_iommu *s = ctx;
    if (!cookie || cookie > PCI_IOMMU_SLOTS || !s->used[cookie - 1])
        return;
    take_back(s, (uint32_t)(cookie - 1));
    /* A hint: the model unmaps its pages now rather than at its next MAP. */
    struct pci_iommu_msg m = {
        .op = PCI_IOMMU_UNMAP, .slot = (uint32_t)(cookie - 1), .iova = iova, .len = len};
    if (!s->gone)
        send_msg(s, &m, -1);
}

static void destroy(struct sim_iommu *s)
{
    if (s->t)
        munmap(s->t, sizeof *s->t);
    if (s->chan >= 0)
        close(s->chan);
    free(s);
}

int sim_iommu_open(int link, odk_iommu *io, struct sim_iommu **out)
{
    *out = NULL;
    struct sim_iommu *s = calloc(1, sizeof *s);
    if (!s)
        return ODK_E_NOMEM;
    s->chan = -1;
    int sv[2] = {-1, -1};
    int tfd = memfd_create("odk-pci-iommu", MFD_CLOEXEC);
    int st = ODK_OK;
    if (tfd < 0 || ftruncate(tfd, sizeof *s->t) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        st = ODK_E_IO;
    } else {
        void *t = mmap(NULL, sizeof *s->t, PROT_READ | PROT_WRITE, MAP_SHARED, tfd, 0);
        if (t == MAP_FAILED)
            st = ODK_E_NOMEM;
        else
            s->t = t;
    }
    s->chan = sv[0];
    for (uint32_t i = 0; i < PCI_IOMMU_SLOTS; i++)
        s->free_slots[i] = PCI_IOMMU_SLOTS - 1 - i;
    s->n_free = PCI_IOMMU_SLOTS;
    if (st == ODK_OK && (st = iommu_set_mirror(io, on_map, on_unmap, s)) == ODK_OK)
        s->io = io;
    if (st == ODK_OK) {
        struct pci_wire w = {.op = PCIW_IOMMU};
        int fds[2] = {sv[1], tfd};
        if (pci_wire_send(link, &w, NULL, 0, fds, 2, 0) < 0)
            st = ODK_E_IO; /* the model is gone: its DMA is no one's */
    }
    if (sv[1] >= 0)
        close(sv[1]);
    if (tfd >= 0)
        close(tfd);
    if (st < 0) {
        sim_iommu_close(s);
        return st;
    }
    *out = s;
    return ODK_OK;
}

void sim_iommu_close(struct sim_iommu *s)
{
    if (!s)
        return;
    if (s->io)
        iommu_set_mirror(s->io, NULL, NULL, NULL);
    if (s->t) {
        for (uint32_t i = 0; i < PCI_IOMMU_SLOTS; i++)
            __atomic_store_n(&s->t->live[i], 0, __ATOMIC_RELAXED);
        wait_idle(s);
    }
    destroy(s);
}
