/* SPDX-License-Identifier: MIT */
/* model_iommu.c — a device model's view of its driver's IOMMU
 * (model_iommu.h; the protocol is in pci_wire.h).
 *
 * Chunks sit in an array sorted by IOVA, each with the slot and generation
 * its MAP named; an access looks them up by binary search and trusts one
 * only while the table's live[slot] still holds that generation, checked
 * after `busy` is raised (the host's unmap zeroes live[slot] and then waits
 * for busy to fall).  A chunk whose generation is gone is unmapped the
 * next time the channel is drained. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "buses/pci/model_iommu.h"
#include "buses/pci/pci_wire.h"
#include "odk/status.h"

#define PAGE 4096u

struct chunk {
    uint64_t iova, len, gen;
    uint32_t slot;
    bool writable;
    uint8_t *p;
};

struct model_iommu {
    int chan;
    struct pci_iommu_table *t;
    struct chunk *c;
    size_t n, cap;
    uint64_t refused;
};

int model_iommu_open(int chan, int table_fd, struct model_iommu **out)
{
    *out = NULL;
    struct stat st;
    if (chan < 0 || table_fd < 0 || fstat(table_fd, &st) < 0 ||
        (uint64_t)st.st_size < sizeof(struct pci_iommu_table)) {
        if (chan >= 0)
            close(chan);
        if (table_fd >= 0)
            close(table_fd);
        return ODK_E_INVALID;
    }
    struct model_iommu *mi = calloc(1, sizeof *mi);
    void *t =
        mmap(NULL, sizeof(struct pci_iommu_table), PROT_READ | PROT_WRITE, MAP_SHARED, table_fd, 0);
    close(table_fd);
    if (!mi || t == MAP_FAILED) {
        free(mi);
        if (t != MAP_FAILED)
            munmap(t, sizeof(struct pci_iommu_table));
        close(chan);
        return ODK_E_NOMEM;
    }
    mi->chan = chan;
    mi->t = t;
    *out = mi;
    return ODK_OK;
}

void model_iommu_close(struct model_iommu *mi)
{
    if (!mi)
        return;
    for (size_t i = 0; i < mi->n; i++)
        munmap(mi->c[i].p, mi->c[i].len);
    free(mi->c);
    munmap(mi->t, sizeof(struct pci_iommu_table));
    close(mi->chan);
    free(mi);
}

int model_iommu_fd(const struct model_iommu *mi)
{
    return mi ? mi->chan : -1;
}

size_t model_iommu_chunks(const struct model_iommu *mi)
{
    return mi ? mi->n : 0;
}

uint64_t model_iommu_refused(const struct model_iommu *mi)
{
    return mi ? mi->refused : 0;
}

static bool standing(const struct model_iommu *mi, const struct chunk *c)
{
    return __atomic_load_n(&mi->t->live[c->slot], __ATOMIC_RELAXED) == c->gen;
}

/* Unmaps the chunks the host revoked. */
static void sweep(struct model_iommu *mi)
{
    size_t kept = 0;
    for (size_t i = 0; i < mi->n; i++) {
        if (standing(mi, &mi->c[i]))
            mi->c[kept++] = mi->c[i];
        else
            munmap(mi->c[i].p, mi->c[i].len);
    }
    mi->n = kept;
}

/* Index of the first chunk that starts above addr. */
static size_t upper(const struct model_iommu *mi, uint64_t addr)
{
    size_t lo = 0, hi = mi->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mi->c[mid].iova <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* A MAP: the chunk's bytes from fd, checked first (the host is another
 * process: nothing it says is trusted to be sane).  Every page of the
 * chunk must hold some of the file (a descriptor of 192 bytes is mapped
 * as a page, as the IOMMU maps it), or a touch past its end would be a
 * SIGBUS; the file cannot shrink (F_SEAL_SHRINK). */
static void add(struct model_iommu *mi, const struct pci_iommu_msg *m, int fd)
{
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    if (m->slot >= PCI_IOMMU_SLOTS || !m->gen || !m->len || m->len % PAGE || m->mem_offset % PAGE ||
        m->iova % PAGE || m->iova + m->len < m->iova || m->mem_offset + m->len < m->mem_offset ||
        m->len > SIZE_MAX || seals < 0 || !(seals & F_SEAL_SHRINK) || fstat(fd, &st) < 0 ||
        ((uint64_t)st.st_size + PAGE - 1) / PAGE * PAGE < m->mem_offset + m->len) {
        mi->refused++;
        return;
    }
    sweep(mi); /* an IOVA the host took back and gave again is found once */
    size_t i = upper(mi, m->iova);
    if ((i > 0 && mi->c[i - 1].iova + mi->c[i - 1].len > m->iova) ||
        (i < mi->n && mi->c[i].iova < m->iova + m->len)) {
        mi->refused++; /* overlaps a chunk that stands */
        return;
    }
    if (mi->n == mi->cap) {
        size_t cap = mi->cap ? 2 * mi->cap : 64;
        struct chunk *c = realloc(mi->c, cap * sizeof *c);
        if (!c)
            return;
        mi->c = c;
        mi->cap = cap;
    }
    void *p = mmap(NULL, (size_t)m->len, PROT_READ | (m->writable ? PROT_WRITE : 0), MAP_SHARED, fd,
                   (off_t)m->mem_offset);
    if (p == MAP_FAILED) {
        mi->refused++;
        return;
    }
    memmove(&mi->c[i + 1], &mi->c[i], (mi->n - i) * sizeof *mi->c);
    mi->c[i] = (struct chunk){.iova = m->iova,
                              .len = m->len,
                              .gen = m->gen,
                              .slot = m->slot,
                              .writable = m->writable != 0,
                              .p = p};
    mi->n++;
}

int model_iommu_drain(struct model_iommu *mi)
{
    bool revoked = false;
    for (;;) {
        struct pci_iommu_msg m;
        int fd = -1;
        size_t n_fds = 1;
        ssize_t n = pci_wire_recv(mi->chan, &m, sizeof m, &fd, &n_fds, MSG_DONTWAIT);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            for (size_t i = 0; i < mi->n; i++)
                munmap(mi->c[i].p, mi->c[i].len);
            mi->n = 0;
            return ODK_E_GONE;
        }
        if (!n_fds)
            fd = -1;
        if (n != sizeof m)
            mi->refused++;
        else if (m.op == PCI_IOMMU_MAP && fd >= 0)
            add(mi, &m, fd);
        else if (m.op == PCI_IOMMU_UNMAP)
            revoked = true;
        else
            mi->refused++;
        if (fd >= 0)
            close(fd);
    }
    if (revoked)
        sweep(mi);
    return ODK_OK;
}

/* The chunk holding addr, or NULL. */
static const struct chunk *find(const struct model_iommu *mi, uint64_t addr)
{
    size_t i = upper(mi, addr);
    if (i == 0)
        return NULL;
    const struct chunk *c = &mi->c[i - 1];
    return addr - c->iova < c->len ? c : NULL;
}

int model_iommu_access(struct model_iommu *mi, uint64_t addr, size_t len, bool write,
                       model_iommu_fn fn, void *ctx)
{
    if (!mi || !len || addr + len < addr)
        return ODK_E_ACCESS;
    __atomic_store_n(&mi->t->busy, 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    int st = ODK_OK;
    for (size_t done = 0; done < len;) { /* every byte admitted before any moves */
        const struct chunk *c = find(mi, addr + done);
        if (!c || !standing(mi, c) || (write && !c->writable)) {
            st = ODK_E_ACCESS;
            break;
        }
        uint64_t n = c->len - (addr + done - c->iova);
        done += n < len - done ? (size_t)n : len - done;
    }
    for (size_t done = 0; st == ODK_OK && done < len;) {
        const struct chunk *c = find(mi, addr + done);
        uint64_t at = addr + done - c->iova, n = c->len - at;
        if (n > len - done)
            n = len - done;
        fn(ctx, c->p + at, done, (size_t)n);
        done += (size_t)n;
    }
    __atomic_store_n(&mi->t->busy, 0, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&mi->t->waiters, __ATOMIC_SEQ_CST))
        syscall(SYS_futex, &mi->t->busy, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    return st;
}
