/* SPDX-License-Identifier: MIT */
/* odk-pci-model — runs one simulated PCI function in a process of its own.
 *
 *   odk-pci-model MODEL [ARGS-JSON]      (fd 3: the connection to odkd)
 *
 * It serves pci_wire.h on odkd's connection and on the one driver link
 * odkd attaches at a time, until odkd's connection closes (the function was
 * unplugged).  The generic parts of a function live here: the writable bits
 * of configuration space, MSI / MSI-X / INTx delivery, power state,
 * function-level reset, the posted-write ring.  The model (models/) gives
 * the registers their meaning.
 *
 * The function checks the framework's promise after a driver ends: bus
 * mastering must be off and the function reset before its next DMA and
 * before another link is attached.  A DMA attempted with bus mastering
 * still on once the link ended is counted in "unsafe_dma" and logged as an
 * assertion failure; an attach before the reset is refused. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "buses/pci/config.h"
#include "buses/pci/model.h"
#include "buses/pci/model_iommu.h"
#include "buses/pci/pci_wire.h"
#include "odk/status.h"

#define ODKD_FD 3
#define LOCAL_TURNS 3 /* turns of the loop without a poll, see main */

static const struct pci_model_ops *const models[] = {&pci_model_edu, &pci_model_capture, NULL};

static struct pci_model M;
static uint8_t wmask[256];     /* writable bits of the first 256 config bytes */
static uint32_t bar_init[PCI_BARS];
static int bar_fd[PCI_BARS] = {-1, -1, -1, -1, -1, -1};
static int ctl_fd = -1, doorbell = -1, timer_fd = -1;
static struct pci_ctl *ctl;
static int vec_fd[PCI_MAX_VECTORS];
static unsigned n_vec;
static int link_fd = -1;
static bool needs_reset;  /* a link was attached; no reset since */
static uint32_t dma_id;   /* the pending DMA's id, 0 for none */
/* Posted writes in flight, oldest first: their ids (POSTED_ID | n),
 * addresses and, once answered (by the host, or at once when the model's
 * view of the IOMMU took them), their status.  Answers reach the model in
 * order, from the main loop. */
#define POSTED_ID 0x80000000u
static struct {
    uint32_t id[PCI_POSTED_WINDOW];
    uint64_t addr[PCI_POSTED_WINDOW];
    bool done[PCI_POSTED_WINDOW];
    int status[PCI_POSTED_WINDOW];
    unsigned at, n;
    uint32_t next;
} posted;
static uint64_t dma_addr; /* and what it was */
/* The pending DMA was performed here: its answer waits for the main loop. */
static struct {
    bool done;
    int status;
    size_t len;
    uint8_t *buf; /* what a read found */
} dma_here;
/* The driver's IOMMU as its host mirrors it (model_iommu.h), or NULL; and
 * the DMAs sent to the host not answered yet: while there are any, every
 * access goes the same way, so none overtakes another. */
static struct model_iommu *view;
static unsigned dma_at_host;
static bool link_hung_up; /* this turn of the loop saw the link hang up */
static uint8_t *fill_buf;              /* a write the view did not take, on its way to the host */
static struct {
    uint64_t resets, dma_blocked, unsafe_dma, dma_faults, interrupts, refused_attach,
        dropped_writes, links, dma_cancelled, dma_bytes_local, dma_bytes_host;
} count;
static uint8_t *packet;
/* The MSI-X table and pending bits, when the function has them: the runner
 * gives them their semantics (a masked entry's interrupt waits in its
 * pending bit); the model never sees writes to them. */
static struct {
    unsigned bar, n;
    uint32_t table, pba;
    bool present;
} msix_tab;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint16_t command(void)
{
    return (uint16_t)pci_cfg_get(M.config, PCI_COMMAND, 2);
}

bool pci_model_bus_master(const struct pci_model *m)
{
    (void)m;
    return command() & PCI_COMMAND_MASTER;
}

static unsigned power_state(void)
{
    unsigned pm = pci_cap_find(M.config, PCI_CAP_ID_PM);
    return pm ? pci_cfg_get(M.config, pm + PCI_PM_CTRL, 2) & PCI_PM_STATE_MASK : 0;
}

void pci_model_changed(struct pci_model *m)
{
    odk_value *d = odk_value_new_dict();
    if (!d)
        return;
    unsigned msi = pci_cap_find(M.config, PCI_CAP_ID_MSI);
    odk_dict_set_bool(d, "bus_master", command() & PCI_COMMAND_MASTER);
    odk_dict_set_bool(d, "memory", command() & PCI_COMMAND_MEMORY);
    odk_dict_set_bool(d, "msi", msi && (pci_cfg_get(M.config, msi + PCI_MSI_FLAGS, 2) &
                                        PCI_MSI_ENABLE));
    odk_dict_set_string(d, "power", power_state() == 3 ? "D3hot" : "D0");
    odk_dict_set_bool(d, "attached", link_fd >= 0);
    odk_dict_set_int(d, "links", (int64_t)count.links);
    odk_dict_set_int(d, "resets", (int64_t)count.resets);
    odk_dict_set_int(d, "dma_blocked", (int64_t)count.dma_blocked);
    odk_dict_set_int(d, "unsafe_dma", (int64_t)count.unsafe_dma);
    odk_dict_set_int(d, "dma_faults", (int64_t)count.dma_faults);
    odk_dict_set_int(d, "interrupts", (int64_t)count.interrupts);
    odk_dict_set_int(d, "refused_attach", (int64_t)count.refused_attach);
    odk_dict_set_int(d, "dropped_writes", (int64_t)count.dropped_writes);
    odk_dict_set_int(d, "dma_cancelled", (int64_t)count.dma_cancelled);
    odk_dict_set_int(d, "dma_bytes_local", (int64_t)count.dma_bytes_local);
    odk_dict_set_int(d, "dma_bytes_host", (int64_t)count.dma_bytes_host);
    odk_dict_set_int(d, "iommu_chunks", (int64_t)model_iommu_chunks(view));
    if (m->ops->report)
        m->ops->report(m, d);
    char *json = odk_value_to_json(d, 0);
    odk_value_free(d);
    if (!json)
        return;
    struct pci_wire w = {.op = PCIW_REPORT};
    pci_wire_send(ODKD_FD, &w, json, strlen(json), NULL, 0, 0);
    free(json);
}

void pci_model_timer(struct pci_model *m, unsigned ms)
{
    (void)m;
    struct itimerspec it = {.it_value = {ms / 1000, (long)(ms % 1000) * 1000000L}};
    timerfd_settime(timer_fd, 0, &it, NULL);
}

/* Entry v's vector control word (bit 0: masked) and pending bit. */
static uint32_t *msix_ctrl(unsigned v)
{
    return (uint32_t *)(void *)(M.bar[msix_tab.bar] + msix_tab.table + 16 * v + 12);
}

static bool msix_masked(unsigned v)
{
    return msix_tab.present && v < msix_tab.n && (__atomic_load_n(msix_ctrl(v), __ATOMIC_ACQUIRE) & 1);
}

static void msix_set_pending(unsigned v, bool on)
{
    uint64_t *w = (uint64_t *)(void *)(M.bar[msix_tab.bar] + msix_tab.pba + 8 * (v / 64));
    uint64_t bit = 1ull << (v % 64);
    __atomic_store_n(w, on ? *w | bit : *w & ~bit, __ATOMIC_RELEASE);
}

static bool msix_pending(unsigned v)
{
    const uint64_t *w = (const uint64_t *)(const void *)(M.bar[msix_tab.bar] + msix_tab.pba + 8 * (v / 64));
    return *w & (1ull << (v % 64));
}

/* Where the MSI-X capability puts the table (once BAR memory exists;
 * pci_config_check has placed both inside their BAR). */
static void msix_setup(void)
{
    unsigned p = pci_cap_find(M.config, PCI_CAP_ID_MSIX);
    if (!p || !M.n_msix)
        return;
    uint32_t t = pci_cfg_get(M.config, p + PCI_MSIX_TABLE, 4), b = pci_cfg_get(M.config, p + 8, 4);
    msix_tab.bar = t & 7;
    msix_tab.table = t & ~7u;
    msix_tab.pba = b & ~7u;
    msix_tab.n = M.n_msix;
    msix_tab.present = msix_tab.bar < PCI_BARS && (b & 7) == msix_tab.bar && M.bar[msix_tab.bar] &&
                   (uint64_t)msix_tab.table + 16ull * msix_tab.n <= M.bar_size[msix_tab.bar] &&
                   (uint64_t)msix_tab.pba + 8ull * ((msix_tab.n + 63) / 64) <= M.bar_size[msix_tab.bar];
}

/* After a reset every entry is masked, as the specification says. */
static void msix_reset(void)
{
    for (unsigned v = 0; msix_tab.present && v < msix_tab.n; v++)
        __atomic_store_n(msix_ctrl(v), 1u, __ATOMIC_RELEASE);
}

/* A posted write into the table: stored as written; unmasking an entry
 * with its pending bit set delivers the interrupt.  False when op is not
 * the table's or the PBA's (the PBA is read-only). */
static bool msix_write(const struct pci_mmio_op *op)
{
    if (!msix_tab.present || op->bar != msix_tab.bar)
        return false;
    uint64_t end = (uint64_t)op->offset + op->width;
    if (op->offset >= msix_tab.pba && end <= msix_tab.pba + 8ull * ((msix_tab.n + 63) / 64))
        return true;
    if (op->offset < msix_tab.table || end > msix_tab.table + 16ull * msix_tab.n)
        return false;
    if (op->width != 4 && op->width != 8)
        return true; /* the specification allows only dword and qword accesses */
    uint8_t *p = M.bar[msix_tab.bar] + op->offset;
    if (op->width == 4)
        __atomic_store_n((uint32_t *)(void *)p, (uint32_t)op->value, __ATOMIC_RELEASE);
    else
        __atomic_store_n((uint64_t *)(void *)p, op->value, __ATOMIC_RELEASE);
    unsigned v = (op->offset - msix_tab.table) / 16;
    if (!msix_masked(v) && msix_pending(v)) {
        msix_set_pending(v, false);
        pci_model_irq(&M, v);
    }
    return true;
}

void pci_model_irq(struct pci_model *m, unsigned vector)
{
    (void)m;
    unsigned msi = pci_cap_find(M.config, PCI_CAP_ID_MSI);
    unsigned msix = pci_cap_find(M.config, PCI_CAP_ID_MSIX);
    int idx = -1;
    if (msi && (pci_cfg_get(M.config, msi + PCI_MSI_FLAGS, 2) & PCI_MSI_ENABLE)) {
        if (vector < M.n_msi)
            idx = (int)(1 + vector);
    } else if (msix && (pci_cfg_get(M.config, msix + PCI_MSIX_FLAGS, 2) & PCI_MSIX_ENABLE)) {
        if (vector < M.n_msix && !(pci_cfg_get(M.config, msix + PCI_MSIX_FLAGS, 2) & 0x4000u)) {
            if (msix_masked(vector)) {
                msix_set_pending(vector, true);
                return;
            }
            idx = (int)(1 + M.n_msi + vector);
        }
    } else if (!(command() & PCI_COMMAND_INTX_DISABLE) && M.config[PCI_INTERRUPT_PIN]) {
        idx = 0;
    }
    if (idx < 0)
        return;
    __atomic_store_n(&ctl->irq_ns[idx], now_ns(), __ATOMIC_RELEASE);
    uint64_t one = 1;
    if (write(vec_fd[idx], &one, sizeof one) == sizeof one)
        count.interrupts++;
}

/* Whether a bus-master access may leave the function now: ODK_OK, or why
 * not (pci_model_dma's errors). */
static int may_dma(uint64_t addr, size_t len)
{
    if (!(command() & PCI_COMMAND_MASTER)) {
        count.dma_blocked++;
        return ODK_E_STATE;
    }
    if (link_fd < 0) {
        if (needs_reset) {
            count.unsafe_dma++;
            fprintf(stderr, "odk-pci-model: ASSERTION FAILED: DMA at 0x%llx with bus mastering "
                    "on after the driver's link ended, before the reset\n",
                    (unsigned long long)addr);
        }
        return ODK_E_GONE;
    }
    if (len == 0 || len > PCIW_MAX_DMA)
        return ODK_E_INVALID;
    return ODK_OK;
}

static void copy_in(void *ctx, uint8_t *p, size_t off, size_t n)
{
    memcpy((uint8_t *)ctx + off, p, n);
}

static void copy_out(void *ctx, uint8_t *p, size_t off, size_t n)
{
    memcpy(p, (const uint8_t *)ctx + off, n);
}

struct fill_call {
    pci_model_fill_fn fn;
    void *ctx;
};

static void fill_piece(void *ctx, uint8_t *p, size_t off, size_t n)
{
    struct fill_call *f = ctx;
    f->fn(f->ctx, p, off, n);
}

/* The access, performed here through the model's view of the IOMMU when
 * that view admits it and nothing sent to the host is still on its way (an
 * access must not overtake one before it).  False: ask the host. */
static bool dma_here_ok(uint64_t addr, size_t len, bool write, model_iommu_fn fn, void *ctx)
{
    if (!view || dma_at_host)
        return false;
    /* A host that died leaves its memory to no one: this turn's poll of
     * the link said so before its end of file is read. */
    if (link_hung_up)
        return false;
    int st = model_iommu_access(view, addr, len, write, fn, ctx);
    if (st == ODK_E_ACCESS && model_iommu_drain(view) == ODK_OK)
        st = model_iommu_access(view, addr, len, write, fn, ctx); /* a MAP just came */
    if (st != ODK_OK)
        return false;
    count.dma_bytes_local += len;
    return true;
}

int pci_model_dma(struct pci_model *m, uint64_t addr, void *data, size_t len, bool to_device)
{
    (void)m;
    int st = may_dma(addr, len);
    if (st < 0)
        return st;
    if (dma_id)
        return ODK_E_BUSY;
    static uint32_t next;
    next = (next + 1) & ~POSTED_ID;
    uint32_t id = next ? next : (next = 1);
    if (dma_here_ok(addr, len, !to_device, to_device ? copy_in : copy_out,
                    to_device ? (void *)dma_here.buf : data)) {
        dma_here.done = true;
        dma_here.status = ODK_OK;
        dma_here.len = to_device ? len : 0;
        dma_id = id;
        dma_addr = addr;
        return ODK_OK;
    }
    struct pci_wire w = {.op = PCIW_DMA,
                         .id = id,
                         .addr = addr,
                         .length = (uint32_t)len,
                         .flags = to_device ? PCIW_DMA_TO_DEVICE : 0};
    if (pci_wire_send(link_fd, &w, to_device ? NULL : data, to_device ? 0 : len, NULL, 0, 0) < 0)
        return ODK_E_GONE;
    dma_here.done = false;
    dma_id = w.id;
    dma_addr = addr;
    dma_at_host++;
    count.dma_bytes_host += len;
    return ODK_OK;
}

unsigned pci_model_dma_posted(const struct pci_model *m)
{
    (void)m;
    return posted.n;
}

int pci_model_dma_post_fill(struct pci_model *m, uint64_t addr, size_t len, pci_model_fill_fn fn,
                            void *ctx)
{
    (void)m;
    int st = may_dma(addr, len);
    if (st < 0)
        return st;
    if (!fn)
        return ODK_E_INVALID;
    if (posted.n == PCI_POSTED_WINDOW)
        return ODK_E_BUSY;
    posted.next = (posted.next + 1) & ~POSTED_ID;
    uint32_t id = POSTED_ID | posted.next;
    struct fill_call f = {fn, ctx};
    bool here = dma_here_ok(addr, len, true, fill_piece, &f);
    if (!here) {
        fn(ctx, fill_buf, 0, len);
        struct pci_wire w = {.op = PCIW_DMA, .id = id, .addr = addr, .length = (uint32_t)len};
        if (pci_wire_send(link_fd, &w, fill_buf, len, NULL, 0, 0) < 0)
            return ODK_E_GONE;
        dma_at_host++;
        count.dma_bytes_host += len;
    }
    unsigned k = (posted.at + posted.n++) % PCI_POSTED_WINDOW;
    posted.id[k] = id;
    posted.addr[k] = addr;
    posted.done[k] = here;
    posted.status[k] = ODK_OK;
    return ODK_OK;
}

static void fill_copy(void *ctx, uint8_t *p, size_t off, size_t n)
{
    memcpy(p, (const uint8_t *)ctx + off, n);
}

int pci_model_dma_post(struct pci_model *m, uint64_t addr, const void *data, size_t len)
{
    if (!data)
        return ODK_E_INVALID;
    return pci_model_dma_post_fill(m, addr, len, fill_copy, (void *)data);
}

/* Gives the model the answers at the head of the posted queue, in order
 * (only those that were there: what the model posts from posted_done
 * waits for the next turn of the loop). */
static void posted_deliver(void)
{
    unsigned ready = 0;
    while (ready < posted.n && posted.done[(posted.at + ready) % PCI_POSTED_WINDOW])
        ready++;
    for (; ready && posted.n; ready--) {
        unsigned k = posted.at;
        uint64_t addr = posted.addr[k];
        int status = posted.status[k];
        posted.at = (posted.at + 1) % PCI_POSTED_WINDOW;
        posted.n--;
        if (status == ODK_E_ACCESS)
            count.dma_faults++;
        if (M.ops->posted_done)
            M.ops->posted_done(&M, status, addr);
        if (status < 0)
            pci_model_changed(&M);
    }
}

/* The host answered a posted write (one a reset forgot is ignored). */
static void posted_answer(const struct pci_wire *w)
{
    for (unsigned i = 0; i < posted.n; i++) {
        unsigned k = (posted.at + i) % PCI_POSTED_WINDOW;
        if (posted.id[k] == w->id && !posted.done[k]) {
            posted.done[k] = true;
            posted.status[k] = w->status;
            if (dma_at_host)
                dma_at_host--;
            posted_deliver();
            return;
        }
    }
}

/* The answer of a DMA performed here, now that the loop is back. */
static void dma_here_deliver(void)
{
    if (!dma_id || !dma_here.done)
        return;
    dma_id = 0;
    dma_here.done = false;
    M.ops->dma_done(&M, dma_here.status, dma_here.buf, dma_here.len);
}

/* Answers waiting for the loop. */
static bool answers_waiting(void)
{
    return (dma_id && dma_here.done) || (posted.n && posted.done[posted.at]);
}

/* ---- configuration space ------------------------------------------------ */

static void setup_wmask(void)
{
    memset(wmask, 0, sizeof wmask);
    pci_cfg_put(wmask, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                                           PCI_COMMAND_INTX_DISABLE);
    wmask[0x3c] = 0xff; /* interrupt line */
    for (unsigned i = 0; i < PCI_BARS; i++) {
        bar_init[i] = pci_cfg_get(M.config, PCI_BAR0 + 4 * i, 4);
        if (M.bar_size[i])
            pci_cfg_put(wmask, PCI_BAR0 + 4 * i, 4, (uint32_t)~(M.bar_size[i] - 1) & ~0xfu);
        if (M.bar_size[i] && (bar_init[i] & PCI_BAR_MEM_64) && i < 5)
            pci_cfg_put(wmask, PCI_BAR0 + 4 * (i + 1), 4, 0xffffffffu);
    }
    unsigned p;
    if ((p = pci_cap_find(M.config, PCI_CAP_ID_PM)))
        pci_cfg_put(wmask, p + PCI_PM_CTRL, 2, PCI_PM_STATE_MASK);
    if ((p = pci_cap_find(M.config, PCI_CAP_ID_MSI))) {
        pci_cfg_put(wmask, p + PCI_MSI_FLAGS, 2, PCI_MSI_ENABLE | 0x70u);
        for (unsigned i = 4; i < 14 && p + i < 256; i++)
            wmask[p + i] = 0xff; /* address and data */
    }
    if ((p = pci_cap_find(M.config, PCI_CAP_ID_MSIX)))
        pci_cfg_put(wmask, p + PCI_MSIX_FLAGS, 2, PCI_MSIX_ENABLE | 0x4000u);
}

static void cfg_write(unsigned off, unsigned width, uint32_t value)
{
    for (unsigned i = 0; i < width && off + i < 256; i++) {
        uint8_t b = (uint8_t)(value >> (8 * i)), m = wmask[off + i];
        M.config[off + i] = (uint8_t)((M.config[off + i] & ~m) | (b & m));
    }
    unsigned pm = pci_cap_find(M.config, PCI_CAP_ID_PM);
    if (pm) { /* D1 and D2 are not offered: such a write leaves the state as it was */
        uint32_t st = pci_cfg_get(M.config, pm + PCI_PM_CTRL, 2);
        if ((st & 3u) == 1 || (st & 3u) == 2)
            pci_cfg_put(M.config, pm + PCI_PM_CTRL, 2, st & ~3u);
    }
    pci_model_changed(&M);
}

/* Function-level reset: bus mastering and decoding off, interrupts back
 * to INTx, D0, registers to their defaults, posted writes dropped. */
static void function_reset(void)
{
    pci_cfg_put(M.config, PCI_COMMAND, 2, 0);
    unsigned p;
    if ((p = pci_cap_find(M.config, PCI_CAP_ID_MSI)))
        pci_cfg_put(M.config, p + PCI_MSI_FLAGS, 2,
                    pci_cfg_get(M.config, p + PCI_MSI_FLAGS, 2) & ~(PCI_MSI_ENABLE | 0x70u));
    if ((p = pci_cap_find(M.config, PCI_CAP_ID_MSIX)))
        pci_cfg_put(M.config, p + PCI_MSIX_FLAGS, 2,
                    pci_cfg_get(M.config, p + PCI_MSIX_FLAGS, 2) & ~(PCI_MSIX_ENABLE | 0x4000u));
    if ((p = pci_cap_find(M.config, PCI_CAP_ID_PM)))
        pci_cfg_put(M.config, p + PCI_PM_CTRL, 2,
                    pci_cfg_get(M.config, p + PCI_PM_CTRL, 2) & ~PCI_PM_STATE_MASK);
    for (unsigned i = 0; i < PCI_BARS; i++)
        pci_cfg_put(M.config, PCI_BAR0 + 4 * i, 4, bar_init[i]);
    /* What the function had in flight ends here, unwritten. */
    struct itimerspec armed;
    if (dma_id || (timerfd_gettime(timer_fd, &armed) == 0 &&
                   (armed.it_value.tv_sec || armed.it_value.tv_nsec)))
        count.dma_cancelled++;
    pci_model_timer(&M, 0);
    dma_id = 0; /* a reply still on its way is ignored */
    dma_here.done = false;
    if (posted.n)
        count.dma_cancelled++;
    posted.n = 0;
    dma_at_host = 0;
    __atomic_store_n(&ctl->tail, __atomic_load_n(&ctl->head, __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
    syscall(SYS_futex, &ctl->tail, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    for (unsigned i = 0; i < PCI_BARS; i++)
        if (M.bar[i])
            memset(M.bar[i], 0, M.bar_size[i]);
    M.ops->reset(&M);
    msix_reset();
    count.resets++;
}

/* ---- posted writes ------------------------------------------------------ */

/* Whether the host has posted writes the model has not applied. */
static bool ring_pending(void)
{
    return __atomic_load_n(&ctl->head, __ATOMIC_ACQUIRE) !=
           __atomic_load_n(&ctl->tail, __ATOMIC_RELAXED);
}

/* Applies the posted writes in ring order (rang: the doorbell woke the
 * loop, and its count is read).  The host's waiters are woken only when
 * there are some (pci_wire.h, tail_waiters). */
static void drain_ring(bool rang)
{
    uint64_t v;
    if (rang && read(doorbell, &v, sizeof v) < 0 && errno != EAGAIN)
        return;
    uint32_t tail = __atomic_load_n(&ctl->tail, __ATOMIC_RELAXED);
    uint32_t head = __atomic_load_n(&ctl->head, __ATOMIC_ACQUIRE);
    if (head - tail > PCI_RING) /* a host that broke the ring: drop what it claims */
        tail = head;
    uint64_t dropped = count.dropped_writes;
    while (tail != head) {
        struct pci_mmio_op op = ctl->ring[tail % PCI_RING];
        bool ok = op.bar < PCI_BARS && M.bar[op.bar] &&
                  (op.width == 1 || op.width == 2 || op.width == 4 || op.width == 8) &&
                  (uint64_t)op.offset + op.width <= M.bar_size[op.bar];
        if (ok && (command() & PCI_COMMAND_MEMORY) && power_state() == 0) {
            if (!msix_write(&op))
                M.ops->mmio_write(&M, op.bar, op.offset, op.width, op.value);
        }
        else
            count.dropped_writes++;
        tail++;
        __atomic_store_n(&ctl->tail, tail, __ATOMIC_RELEASE);
        head = __atomic_load_n(&ctl->head, __ATOMIC_ACQUIRE);
        if (head - tail > PCI_RING)
            tail = head;
    }
    __atomic_store_n(&ctl->tail, tail, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&ctl->tail_waiters, __ATOMIC_RELAXED))
        syscall(SYS_futex, &ctl->tail, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    if (count.dropped_writes != dropped)
        pci_model_changed(&M);
}

/* ---- links -------------------------------------------------------------- */

static void reply(int fd, const struct pci_wire *req, int status, uint64_t value)
{
    struct pci_wire w = {.op = req->op, .id = req->id, .status = status, .value = value};
    pci_wire_send(fd, &w, NULL, 0, NULL, 0, 0);
}

/* The host's IOMMU is no longer the model's to use. */
static void view_end(void)
{
    model_iommu_close(view);
    view = NULL;
}

static void link_end(void)
{
    view_end();
    close(link_fd);
    link_fd = -1;
    posted.n = 0;
    dma_at_host = 0;
    if (dma_id) {
        dma_id = 0;
        dma_here.done = false;
        M.ops->dma_done(&M, ODK_E_GONE, NULL, 0);
    }
    struct pci_wire w = {.op = PCIW_DETACHED, .value = count.links};
    pci_wire_send(ODKD_FD, &w, NULL, 0, NULL, 0, 0);
    pci_model_changed(&M);
}

static void attach(const struct pci_wire *req, int fd)
{
    if (fd < 0) {
        reply(ODKD_FD, req, ODK_E_PROTOCOL, 0);
        return;
    }
    if (needs_reset) {
        count.refused_attach++;
        fprintf(stderr, "odk-pci-model: ASSERTION FAILED: a link attached before the function "
                "was reset after the last one\n");
        close(fd);
        reply(ODKD_FD, req, ODK_E_STATE, 0);
        pci_model_changed(&M);
        return;
    }
    if (link_fd >= 0) { /* odkd reset the function: the old link's host is gone */
        view_end();
        close(link_fd);
        link_fd = -1;
    }
    for (unsigned i = 0; i < n_vec; i++) { /* interrupts of the last driver are not yours */
        uint64_t v;
        while (read(vec_fd[i], &v, sizeof v) > 0)
            ;
    }
    int fds[16];
    size_t n = 0;
    for (unsigned i = 0; i < PCI_BARS; i++)
        if (bar_fd[i] >= 0)
            fds[n++] = bar_fd[i];
    fds[n++] = ctl_fd;
    fds[n++] = doorbell;
    for (unsigned i = 0; i < n_vec && n < 16; i++)
        fds[n++] = vec_fd[i];
    struct pci_link_hello h = {.n_msi = M.n_msi, .n_msix = M.n_msix};
    memcpy(h.bar_size, M.bar_size, sizeof h.bar_size);
    struct pci_wire w = {.op = PCIW_LINK_HELLO};
    if (pci_wire_send(fd, &w, &h, sizeof h, fds, n, 0) < 0) {
        close(fd);
        reply(ODKD_FD, req, ODK_E_IO, 0);
        return;
    }
    link_fd = fd;
    count.links++;
    needs_reset = true;
    reply(ODKD_FD, req, ODK_OK, 0);
    pci_model_changed(&M);
}

static void on_link(void)
{
    int fds[2];
    size_t n_fds = 2;
    ssize_t n = pci_wire_recv(link_fd, packet, PCIW_MAX_PACKET, fds, &n_fds, MSG_DONTWAIT);
    if (n == -EAGAIN)
        return;
    if (n < (ssize_t)sizeof(struct pci_wire)) {
        for (size_t i = 0; i < n_fds; i++)
            close(fds[i]);
        link_end();
        return;
    }
    if (((const struct pci_wire *)(const void *)packet)->op == PCIW_IOMMU) {
        view_end();
        if (n_fds == 2)
            model_iommu_open(fds[0], fds[1], &view);
        else
            for (size_t i = 0; i < n_fds; i++)
                close(fds[i]);
        return;
    }
    for (size_t i = 0; i < n_fds; i++)
        close(fds[i]);
    struct pci_wire w;
    memcpy(&w, packet, sizeof w);
    const uint8_t *body = packet + sizeof w;
    size_t len = (size_t)n - sizeof w;
    switch (w.op) {
    case PCIW_CFG_READ:
        if (w.addr + w.width > PCI_CONFIG_SIZE || !(w.width == 1 || w.width == 2 || w.width == 4))
            reply(link_fd, &w, ODK_E_INVALID, 0);
        else
            reply(link_fd, &w, ODK_OK, pci_cfg_get(M.config, (unsigned)w.addr, w.width));
        break;
    case PCIW_CFG_WRITE:
        if (w.addr + w.width > PCI_CONFIG_SIZE || !(w.width == 1 || w.width == 2 || w.width == 4)) {
            reply(link_fd, &w, ODK_E_INVALID, 0);
        } else {
            cfg_write((unsigned)w.addr, w.width, (uint32_t)w.value);
            reply(link_fd, &w, ODK_OK, 0);
        }
        break;
    case PCIW_FLR:
        function_reset();
        reply(link_fd, &w, ODK_OK, 0);
        pci_model_changed(&M);
        break;
    case PCIW_DMA:
        if (w.id & POSTED_ID) {
            posted_answer(&w);
            break;
        }
        if (!dma_id || w.id != dma_id || dma_here.done)
            break; /* a reply for a DMA the reset forgot */
        dma_id = 0;
        if (dma_at_host)
            dma_at_host--;
        if (w.status == ODK_E_ACCESS)
            count.dma_faults++;
        if (w.status == ODK_OK && len != w.length && w.length && !body)
            w.status = ODK_E_PROTOCOL;
        M.ops->dma_done(&M, w.status, body, len);
        if (w.status < 0)
            pci_model_changed(&M);
        break;
    default:
        reply(link_fd, &w, ODK_E_UNSUPPORTED, 0);
    }
}

static void on_odkd(void)
{
    int fd = -1;
    size_t n_fds = 1;
    ssize_t n = pci_wire_recv(ODKD_FD, packet, PCIW_MAX_PACKET, &fd, &n_fds, MSG_DONTWAIT);
    if (n == -EAGAIN)
        return;
    if (n < (ssize_t)sizeof(struct pci_wire))
        exit(0); /* unplugged */
    if (!n_fds)
        fd = -1;
    struct pci_wire w;
    memcpy(&w, packet, sizeof w);
    switch (w.op) {
    case PCIW_ATTACH:
        attach(&w, fd);
        return;
    case PCIW_RESET:
        /* Bus mastering goes off first: nothing the function has in flight
         * may reach memory after this point. */
        pci_cfg_put(M.config, PCI_COMMAND, 2, command() & ~PCI_COMMAND_MASTER);
        function_reset();
        needs_reset = false;
        reply(ODKD_FD, &w, ODK_OK, 0);
        pci_model_changed(&M);
        break;
    case PCIW_REMOVE: {
        struct pci_wire g = {.op = PCIW_GONE};
        pci_wire_send(ODKD_FD, &g, NULL, 0, NULL, 0, 0);
        exit(0);
    }
    default:
        reply(ODKD_FD, &w, ODK_E_UNSUPPORTED, 0);
    }
    if (fd >= 0)
        close(fd);
}

/* ---- start -------------------------------------------------------------- */

static int make_shared(size_t size, const char *name, uint8_t **out)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
        return -1;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        close(fd);
        return -1;
    }
    *out = p;
    return fd;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fprintf(stderr, "usage: odk-pci-model MODEL [ARGS-JSON]   (fd 3: odkd)\n");
        return 2;
    }
    for (size_t i = 0; models[i]; i++)
        if (strcmp(models[i]->name, argv[1]) == 0)
            M.ops = models[i];
    if (!M.ops) {
        fprintf(stderr, "odk-pci-model: no model named %s (there is: edu, capture)\n", argv[1]);
        return 2;
    }
    odk_value *args = NULL;
    char err[200];
    if (odk_value_from_json(argc > 2 ? argv[2] : "{}", &args, err, sizeof err) < 0 ||
        odk_value_type(args) != ODK_TYPE_DICT) {
        fprintf(stderr, "odk-pci-model: arguments: %s\n", err);
        return 2;
    }
    if (M.ops->create(&M, args) < 0) {
        fprintf(stderr, "odk-pci-model: %s refused its arguments\n", argv[1]);
        return 2;
    }
    odk_value_free(args);
    /* What odkd checks is what the model declared, even when it is wrong:
     * the hello goes out first, BAR memory is made only for sane sizes. */
    struct pci_hello *h = calloc(1, sizeof *h);
    packet = malloc(PCIW_MAX_PACKET);
    fill_buf = malloc(PCIW_MAX_DMA);
    dma_here.buf = malloc(PCIW_MAX_DMA);
    if (!h || !packet || !fill_buf || !dma_here.buf)
        return 1;
    snprintf(h->model, sizeof h->model, "%s", M.ops->name);
    memcpy(h->bar_size, M.bar_size, sizeof h->bar_size);
    memcpy(h->config, M.config, sizeof h->config);
    h->n_msi = M.n_msi;
    h->n_msix = M.n_msix;
    char why[200];
    bool sane = pci_config_check(M.config, M.bar_size, why, sizeof why) == 0 &&
                1 + M.n_msi + M.n_msix <= PCI_MAX_VECTORS && 1 + M.n_msi + M.n_msix <= 10;
    if (sane) {
        uint8_t *c;
        for (unsigned i = 0; i < PCI_BARS; i++)
            if (M.bar_size[i] && (bar_fd[i] = make_shared(M.bar_size[i], "odk-pci-bar",
                                                          &M.bar[i])) < 0)
                return 1;
        if ((ctl_fd = make_shared(sizeof(struct pci_ctl), "odk-pci-ctl", &c)) < 0)
            return 1;
        ctl = (struct pci_ctl *)c;
        doorbell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        n_vec = 1 + M.n_msi + M.n_msix;
        for (unsigned i = 0; i < n_vec; i++)
            vec_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        setup_wmask();
        M.ops->reset(&M);
        msix_setup();
        msix_reset();
    }
    struct pci_wire w = {.op = PCIW_HELLO};
    if (pci_wire_send(ODKD_FD, &w, h, sizeof *h, NULL, 0, 0) < 0)
        return 1;
    free(h);
    if (!sane) { /* odkd marks the node; the process only waits to be unplugged */
        for (;;) {
            struct pollfd p = {ODKD_FD, POLLIN, 0};
            if (poll(&p, 1, -1) > 0 && recv(ODKD_FD, packet, PCIW_MAX_PACKET, 0) <= 0)
                return 0;
        }
    }
    pci_model_changed(&M);
    for (;;) {
        struct pollfd p[5] = {{ODKD_FD, POLLIN, 0},
                              {doorbell, POLLIN, 0},
                              {timer_fd, POLLIN, 0},
                              {link_fd, POLLIN, 0},
                              {model_iommu_fd(view), POLLIN, 0}};
        /* Sleep only with nothing to do, and say so first: the host rings
         * the doorbell only then (pci_wire.h, model_idle); a write it
         * posted before it could see the flag is seen here. */
        bool may_sleep = !answers_waiting();
        if (may_sleep) {
            __atomic_store_n(&ctl->model_idle, 1, __ATOMIC_RELAXED);
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            may_sleep = !ring_pending();
        }
        int np = poll(p, link_fd < 0 ? 3 : view ? 5 : 4, may_sleep ? -1 : 0);
        __atomic_store_n(&ctl->model_idle, 0, __ATOMIC_RELAXED);
        if (np < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        link_hung_up = link_fd >= 0 && (p[3].revents & (POLLHUP | POLLERR));
        if (view && p[4].revents && model_iommu_drain(view) < 0)
            view_end(); /* the host closed its view: every DMA goes to it */
        if (p[1].revents || ring_pending())
            drain_ring(p[1].revents != 0);
        if (p[0].revents)
            on_odkd();
        if (p[2].revents) {
            uint64_t v;
            if (read(timer_fd, &v, sizeof v) == sizeof v && M.ops->timer)
                M.ops->timer(&M);
        }
        if (link_fd >= 0 && p[3].revents)
            on_link();
        /* What the model's view of the IOMMU performed is answered now, as
         * the host's answers would be: in order, from the loop. */
        dma_here_deliver();
        posted_deliver();
        /* The view's answers are there at once: a few more turns before
         * the next poll while nothing is on its way to the host (a 1080p
         * frame is 127 posted writes, 8 a turn: 16 polls, now 4; a write
         * or a hang-up waits at most LOCAL_TURNS windows longer). */
        for (unsigned t = 0; t < LOCAL_TURNS && !dma_at_host && answers_waiting(); t++) {
            if (ring_pending())
                drain_ring(false);
            dma_here_deliver();
            posted_deliver();
        }
    }
}
