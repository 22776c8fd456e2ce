/* SPDX-License-Identifier: MIT */
/* Unit tests for a sim PCI model's view of its driver's IOMMU: the host's
 * half (sim_iommu.c, a mirror of a simulated IOMMU) and the model's half
 * (src/buses/pci/model_iommu.c) in one process, joined by a socketpair
 * standing for the link.  A prepared command's memory is reachable through
 * the view with its direction; what no command maps is not; a completed
 * command's memory is not, the moment odk_dma_command_complete returns,
 * even while a model thread is writing in a loop; an unmap made while the
 * model is held between its slot check and its copy waits until the copy
 * is done, every time; a MAP the model never read, and a malformed one,
 * leave the access to the host. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "buses/pci/model_iommu.h"
#include "buses/pci/pci_wire.h"
#include "families/pci/sim_iommu.h"
#include "odk/dma.h"
#include "odk/memory.h"
#include "runtime/dma_internal.h"

struct rig {
    odk_iommu *io;
    int link[2];
    struct sim_iommu *host;
    struct model_iommu *view;
    struct pci_iommu_table *table; /* the model's table, to see the host wait */
};

static int setup(void **state)
{
    struct rig *r = calloc(1, sizeof *r);
    if (!r || odk_iommu_create_sim(40, 7, &r->io) != ODK_OK ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, r->link) < 0 ||
        sim_iommu_open(r->link[0], r->io, &r->host) != ODK_OK)
        return -1;
    /* the model's end of the link: PCIW_IOMMU with the channel and the table */
    uint8_t buf[sizeof(struct pci_wire)];
    int fds[2];
    size_t n_fds = 2;
    struct pci_wire w;
    if (pci_wire_recv(r->link[1], buf, sizeof buf, fds, &n_fds, 0) != sizeof buf || n_fds != 2)
        return -1;
    memcpy(&w, buf, sizeof w);
    if (w.op != PCIW_IOMMU)
        return -1;
    r->table = mmap(NULL, sizeof *r->table, PROT_READ, MAP_SHARED, fds[1], 0);
    if (r->table == MAP_FAILED || model_iommu_open(fds[0], fds[1], &r->view) != ODK_OK)
        return -1;
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct rig *r = *state;
    sim_iommu_close(r->host);
    model_iommu_close(r->view);
    munmap(r->table, sizeof *r->table);
    close(r->link[0]);
    close(r->link[1]);
    odk_release(r->io);
    free(r);
    return 0;
}

static void put(void *ctx, uint8_t *p, size_t off, size_t n)
{
    memset(p, *(const uint8_t *)ctx, n);
    (void)off;
}

static void get(void *ctx, uint8_t *p, size_t off, size_t n)
{
    memcpy((uint8_t *)ctx + off, p, n);
}

/* A command of len bytes of m from offset 0; its first segment. */
static odk_dma_command *prepare(struct rig *r, odk_memory *m, uint64_t len, odk_dma_segment *seg)
{
    odk_dma_command *cmd;
    odk_dma_constraints c = {.flags = ODK_DMA_CONTIGUOUS};
    uint64_t got;
    assert_int_equal(odk_dma_command_create(r->io, &c, &cmd), ODK_OK);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 0, len, NULL), ODK_OK);
    assert_int_equal(odk_dma_command_segments(cmd, 0, seg, 1, &got), ODK_OK);
    return cmd;
}

static void test_mapped_memory_is_reachable_with_its_direction(void **state)
{
    struct rig *r = *state;
    odk_memory *in, *out;
    odk_dma_segment si, so;
    uint8_t *p, v = 0xa5, back[64];
    assert_int_equal(odk_memory_create(64 * 1024, ODK_MEM_IN, &in), ODK_OK);
    assert_int_equal(odk_memory_create(4096, ODK_MEM_OUT, &out), ODK_OK);
    odk_dma_command *ci = prepare(r, in, 64 * 1024, &si);
    odk_dma_command *co = prepare(r, out, 4096, &so);
    /* not read yet: the access would go to the host */
    assert_int_equal(model_iommu_access(r->view, si.address, 16, true, put, &v), ODK_E_ACCESS);
    assert_int_equal(model_iommu_drain(r->view), ODK_OK);
    assert_int_equal(model_iommu_chunks(r->view), 2);
    assert_int_equal(model_iommu_access(r->view, si.address + 100, 1000, true, put, &v), ODK_OK);
    assert_int_equal(odk_memory_map(in, ODK_MAP_READ, (void **)&p), ODK_OK);
    assert_int_equal(p[99], 0);
    assert_int_equal(p[100], 0xa5);
    assert_int_equal(p[1099], 0xa5);
    assert_int_equal(p[1100], 0);
    /* an OUT descriptor: the device reads it, never writes it */
    assert_int_equal(odk_memory_write(out, 0, "hello", 5), ODK_E_ACCESS);
    assert_int_equal(model_iommu_access(r->view, so.address, 5, false, get, back), ODK_OK);
    assert_int_equal(model_iommu_access(r->view, so.address, 5, true, put, &v), ODK_E_ACCESS);
    /* past the end of the chunk, and nowhere near one: nothing moves */
    assert_int_equal(model_iommu_access(r->view, si.address + 64 * 1024 - 8, 16, true, put, &v),
                     ODK_E_ACCESS);
    assert_int_equal(model_iommu_access(r->view, 0x7f000000, 16, true, put, &v), ODK_E_ACCESS);
    assert_int_equal(p[64 * 1024 - 8], 0);
    /* a descriptor shorter than a page is mapped as its page */
    odk_memory *small;
    odk_dma_segment ss;
    assert_int_equal(odk_memory_create(192, ODK_MEM_INOUT, &small), ODK_OK);
    odk_dma_command *cs = prepare(r, small, 192, &ss);
    assert_int_equal(model_iommu_drain(r->view), ODK_OK);
    assert_int_equal(model_iommu_access(r->view, ss.address + 160, 32, true, put, &v), ODK_OK);
    assert_int_equal(model_iommu_refused(r->view), 0);
    odk_release(cs);
    odk_release(small);
    odk_release(ci);
    odk_release(co);
    odk_release(in);
    odk_release(out);
}

static void test_a_completed_command_is_unreachable_at_once(void **state)
{
    struct rig *r = *state;
    odk_memory *m;
    odk_dma_segment s;
    uint8_t v = 1;
    assert_int_equal(odk_memory_create(8192, ODK_MEM_INOUT, &m), ODK_OK);
    odk_dma_command *cmd = prepare(r, m, 8192, &s);
    assert_int_equal(model_iommu_drain(r->view), ODK_OK);
    assert_int_equal(model_iommu_access(r->view, s.address, 8192, true, put, &v), ODK_OK);
    assert_int_equal(odk_dma_command_complete(cmd), ODK_OK);
    /* the model has not read the UNMAP yet: the table already says no */
    assert_int_equal(model_iommu_access(r->view, s.address, 1, true, put, &v), ODK_E_ACCESS);
    assert_int_equal(model_iommu_drain(r->view), ODK_OK);
    assert_int_equal(model_iommu_chunks(r->view), 0);
    /* the same IOVA mapped again, for other memory: the new memory */
    odk_memory *m2;
    odk_dma_segment s2;
    uint8_t *p2, w = 2;
    assert_int_equal(odk_memory_create(8192, ODK_MEM_INOUT, &m2), ODK_OK);
    odk_dma_command *c2 = prepare(r, m2, 8192, &s2);
    assert_int_equal(s2.address, s.address);
    assert_int_equal(model_iommu_drain(r->view), ODK_OK);
    assert_int_equal(model_iommu_access(r->view, s.address, 4, true, put, &w), ODK_OK);
    assert_int_equal(odk_memory_map(m2, ODK_MAP_READ, (void **)&p2), ODK_OK);
    assert_int_equal(p2[0], 2);
    odk_release(c2);
    odk_release(cmd);
    odk_release(m);
    odk_release(m2);
}

/* The model, writing in a loop until its access is refused. */
struct writer {
    struct model_iommu *view;
    uint64_t addr;
    atomic_uint_fast64_t writes;
    atomic_bool refused;
};

static void count_put(void *ctx, uint8_t *p, size_t off, size_t n)
{
    struct writer *w = ctx;
    uint64_t k = atomic_load(&w->writes) + 1;
    for (size_t i = 0; i + 8 <= n; i += 8)
        memcpy(p + i, &k, 8);
    (void)off;
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    while (model_iommu_access(w->view, w->addr, 64 * 1024, true, count_put, w) == ODK_OK)
        atomic_fetch_add(&w->writes, 1);
    atomic_store(&w->refused, true);
    return NULL;
}

static void test_the_unmap_waits_for_an_access_in_progress(void **state)
{
    struct rig *r = *state;
    for (int round = 0; round < 20; round++) {
        odk_memory *m;
        odk_dma_segment s;
        uint8_t *p;
        assert_int_equal(odk_memory_create(64 * 1024, ODK_MEM_INOUT, &m), ODK_OK);
        assert_int_equal(odk_memory_map(m, ODK_MAP_READ, (void **)&p), ODK_OK);
        odk_dma_command *cmd = prepare(r, m, 64 * 1024, &s);
        assert_int_equal(model_iommu_drain(r->view), ODK_OK);
        struct writer w = {.view = r->view, .addr = s.address};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
        while (atomic_load(&w.writes) < 3)
            sched_yield();
        assert_int_equal(odk_dma_command_complete(cmd), ODK_OK);
        /* From here the memory must not change: every word is the same
         * write's, and stays so. */
        uint8_t *snap = malloc(64 * 1024);
        memcpy(snap, p, 64 * 1024);
        for (size_t i = 8; i < 64 * 1024; i += 8)
            assert_memory_equal(snap + i, snap, 8);
        pthread_join(t, NULL);
        assert_true(atomic_load(&w.refused));
        assert_memory_equal(p, snap, 64 * 1024);
        free(snap);
        assert_int_equal(model_iommu_drain(r->view), ODK_OK);
        odk_release(cmd);
        odk_release(m);
    }
}

/* The model held inside an access at a chosen point: after the view has
 * admitted every byte (the slot check) and before the first byte moves.
 * fn is that point; it waits there until the test lets it go. */
struct gate {
    atomic_bool inside, open;
    uint8_t value;
};

static void gated_put(void *ctx, uint8_t *p, size_t off, size_t n)
{
    struct gate *g = ctx;
    if (off == 0) {
        atomic_store(&g->inside, true);
        while (!atomic_load(&g->open))
            usleep(1000);
    }
    memset(p, g->value, n);
}

struct gated_model {
    struct model_iommu *view;
    uint64_t addr;
    struct gate gate;
    int st;
};

static void *gated_model_main(void *arg)
{
    struct gated_model *g = arg;
    g->st = model_iommu_access(g->view, g->addr, 64 * 1024, true, gated_put, &g->gate);
    return NULL;
}

/* The driver's side: completes the command (the unmap) and, the moment
 * that returns, takes a copy of the memory. */
struct completer {
    odk_dma_command *cmd;
    const uint8_t *p;
    uint8_t *snap;
    int st;
    atomic_bool returned;
};

static void *completer_main(void *arg)
{
    struct completer *c = arg;
    c->st = odk_dma_command_complete(c->cmd); /* checked by the test's thread */
    memcpy(c->snap, c->p, 64 * 1024);
    atomic_store(&c->returned, true);
    return NULL;
}

/* Deterministic: the model is held between its slot check and its copy;
 * the unmap must then be seen waiting (a waiter on the table's busy word)
 * and not returned; let go, the model's write lands before the unmap
 * returns, and nothing lands after. */
static void test_the_unmap_waits_for_a_held_access(void **state)
{
    struct rig *r = *state;
    odk_memory *m;
    odk_dma_segment s;
    uint8_t *p;
    assert_int_equal(odk_memory_create(64 * 1024, ODK_MEM_INOUT, &m), ODK_OK);
    assert_int_equal(odk_memory_map(m, ODK_MAP_READ, (void **)&p), ODK_OK);
    odk_dma_command *cmd = prepare(r, m, 64 * 1024, &s);
    assert_int_equal(model_iommu_drain(r->view), ODK_OK);
    struct gated_model g = {.view = r->view, .addr = s.address, .gate = {.value = 0x5a}};
    pthread_t tm, tc;
    assert_int_equal(pthread_create(&tm, NULL, gated_model_main, &g), 0);
    while (!atomic_load(&g.gate.inside))
        usleep(1000);
    assert_int_equal(p[0], 0); /* admitted, not yet written */
    struct completer c = {.cmd = cmd, .p = p, .snap = malloc(64 * 1024)};
    assert_non_null(c.snap);
    assert_int_equal(pthread_create(&tc, NULL, completer_main, &c), 0);
    /* Either the unmap waits (its host counts itself a waiter) or it came
     * back without waiting, which is the bug. */
    while (!atomic_load(&c.returned) && !__atomic_load_n(&r->table->waiters, __ATOMIC_SEQ_CST))
        usleep(1000);
    bool early = atomic_load(&c.returned);
    atomic_store(&g.gate.open, true);
    pthread_join(tm, NULL);
    pthread_join(tc, NULL);
    assert_false(early); /* the unmap returned while the model was inside */
    assert_int_equal(g.st, ODK_OK);
    assert_int_equal(c.st, ODK_OK);
    /* the held write landed before the unmap returned, whole */
    for (size_t i = 0; i < 64 * 1024; i++)
        assert_int_equal(c.snap[i], 0x5a);
    /* and after it returned, the model reaches nothing */
    uint8_t v = 0x11;
    assert_int_equal(model_iommu_access(r->view, s.address, 64 * 1024, true, put, &v),
                     ODK_E_ACCESS);
    assert_memory_equal(p, c.snap, 64 * 1024);
    free(c.snap);
    assert_int_equal(model_iommu_drain(r->view), ODK_OK);
    odk_release(cmd);
    odk_release(m);
}

static void test_malformed_maps_are_refused(void **state)
{
    struct rig *r = *state;
    int sv[2], tfd = memfd_create("t", MFD_CLOEXEC);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ftruncate(tfd, sizeof(struct pci_iommu_table)), 0);
    struct pci_iommu_table *t = mmap(NULL, sizeof *t, PROT_READ | PROT_WRITE, MAP_SHARED, tfd, 0);
    struct model_iommu *v;
    assert_int_equal(model_iommu_open(sv[1], dup(tfd), &v), ODK_OK);
    /* a memfd the host could shrink under the model, and one too short */
    int loose = memfd_create("loose", MFD_CLOEXEC);
    assert_int_equal(ftruncate(loose, 8192), 0);
    t->live[3] = 9;
    struct pci_iommu_msg m = {
        .op = PCI_IOMMU_MAP, .slot = 3, .gen = 9, .iova = 0x10000, .len = 4096, .writable = 1};
    struct msghdr mh = {0};
    struct iovec iov = {&m, sizeof m};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    memset(&cbuf, 0, sizeof cbuf);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf.buf;
    mh.msg_controllen = sizeof cbuf.buf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &loose, sizeof loose);
    assert_int_equal(sendmsg(sv[0], &mh, 0), sizeof m);
    odk_memory *sealed;
    assert_int_equal(odk_memory_create(4096, ODK_MEM_INOUT, &sealed), ODK_OK);
    int sfd = odk_memory_fd(sealed);
    memcpy(CMSG_DATA(cm), &sfd, sizeof sfd);
    m.mem_offset = 4096; /* past its end */
    assert_int_equal(sendmsg(sv[0], &mh, 0), sizeof m);
    m.mem_offset = 0;
    m.len = 100; /* not pages */
    assert_int_equal(sendmsg(sv[0], &mh, 0), sizeof m);
    m.len = 4096;
    m.slot = PCI_IOMMU_SLOTS; /* no such slot */
    assert_int_equal(sendmsg(sv[0], &mh, 0), sizeof m);
    assert_int_equal(model_iommu_drain(v), ODK_OK);
    assert_int_equal(model_iommu_refused(v), 4);
    assert_int_equal(model_iommu_chunks(v), 0);
    /* the same, right: taken */
    m.slot = 3;
    assert_int_equal(sendmsg(sv[0], &mh, 0), sizeof m);
    assert_int_equal(model_iommu_drain(v), ODK_OK);
    assert_int_equal(model_iommu_chunks(v), 1);
    uint8_t x = 7;
    assert_int_equal(model_iommu_access(v, 0x10000, 4096, true, put, &x), ODK_OK);
    /* the host goes: the view empties */
    close(sv[0]);
    assert_int_equal(model_iommu_drain(v), ODK_E_GONE);
    assert_int_equal(model_iommu_access(v, 0x10000, 1, true, put, &x), ODK_E_ACCESS);
    model_iommu_close(v);
    odk_release(sealed);
    close(loose);
    munmap(t, sizeof *t);
    close(tfd);
    (void)r;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mapped_memory_is_reachable_with_its_direction, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_completed_command_is_unreachable_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_the_unmap_waits_for_a_held_access, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_unmap_waits_for_an_access_in_progress, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_malformed_maps_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
