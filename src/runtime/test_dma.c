/* SPDX-License-Identifier: MIT */
/* DMA commands and the simulated IOMMU: story 14 (a 5 GiB descriptor, segment
 * lists of any length), story 6 (one contiguous segment or a clear error),
 * a property test over random constraints, a device model writing into a
 * driver's buffer, and prepare/complete churn in a 32-bit space.
 *
 * Descriptors are sparse memfds and segments are checked through translate
 * (which never touches the bytes), so gigabytes cost no memory.
 * The property test's seed: ODK_DMA_SEED=<n> to replay. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "odk/dma.h"
#include "runtime/dma_internal.h"
#include "odk/log.h"
#include "odk/memory.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* stderr into a temporary file, to check the one log line an error gives. */
static int saved_stderr = -1;
static FILE *captured;

static void capture_begin(void)
{
    fflush(stderr);
    captured = tmpfile();
    assert_non_null(captured);
    saved_stderr = dup(2);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(fileno(captured), 2) >= 0);
}

static void capture_end(char *buf, size_t size)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    rewind(captured);
    size_t n = fread(buf, 1, size - 1, captured);
    buf[n] = 0;
    fclose(captured);
    fputs(buf, stderr); /* still visible in the test log */
}

/* Walks every segment in batches of batch and checks the rules the header
 * promises: in order, covering [offset, offset + length) exactly, aligned,
 * no longer than max_segment_size, below 2^bits, never address 0.  Each
 * segment's translation must be the buffer bytes it stands for, which also
 * proves no two segments share an address. */
static void check_segments(odk_iommu *io, odk_dma_command *cmd, odk_memory *m, uint64_t offset,
                           uint64_t length, const odk_dma_constraints *c, uint64_t n,
                           uint64_t batch)
{
    uint32_t bits = c && c->address_bits ? c->address_bits : 64;
    if (odk_iommu_address_bits(io) < bits)
        bits = odk_iommu_address_bits(io);
    uint64_t align = c && c->alignment > 1 ? c->alignment : 1;
    uint64_t max_seg = c ? c->max_segment_size : 0;
    uint8_t *base;
    assert_int_equal(odk_memory_map(m, ODK_MAP_READ, (void **)&base), ODK_OK);
    odk_dma_segment *segs = calloc(batch, sizeof *segs);
    assert_non_null(segs);
    uint64_t pos = 0, idx = 0, got;
    while (idx < n) {
        assert_int_equal(odk_dma_command_segments(cmd, idx, segs, batch, &got), ODK_OK);
        assert_int_equal(got, n - idx < batch ? n - idx : batch);
        for (uint64_t i = 0; i < got; i++) {
            odk_dma_segment s = segs[i];
            assert_true(s.length > 0);
            assert_true(s.address != 0);
            assert_int_equal(s.address % align, 0);
            if (max_seg)
                assert_true(s.length <= max_seg);
            if (bits < 64)
                assert_true(s.address < (1ull << bits) && s.length < (1ull << bits) - s.address);
            else
                assert_true(s.length <= UINT64_MAX - s.address);
            void *host;
            assert_int_equal(odk_iommu_translate(io, s.address, s.length, ODK_MAP_READ, &host),
                             ODK_OK);
            assert_ptr_equal(host, base + offset + pos);
            pos += s.length;
        }
        idx += got;
    }
    assert_int_equal(pos, length);
    assert_int_equal(odk_dma_command_segments(cmd, n, segs, batch, &got), ODK_OK);
    assert_int_equal(got, 0);
    assert_int_equal(odk_dma_command_segments(cmd, n + 1, segs, batch, &got), ODK_E_INVALID);
    free(segs);
}

/* Story 14: no total size cap — 5 GiB, at offset 0 and unaligned, with the
 * default constraints and with 4 KiB segments (1.3 million of them). */
static void test_five_gib(void **state)
{
    (void)state;
    const uint64_t size = 5 * GiB;
    odk_iommu *io;
    odk_memory *m;
    odk_dma_command *cmd;
    uint64_t n;
    assert_int_equal(odk_iommu_create_sim(48, 1, &io), ODK_OK);
    assert_int_equal(odk_memory_create(size, ODK_MEM_IN, &m), ODK_OK);

    assert_int_equal(odk_dma_command_create(io, NULL, &cmd), ODK_OK);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 0, size, &n), ODK_OK);
    assert_true(n > 1); /* scattered */
    check_segments(io, cmd, m, 0, size, NULL, n, 37);
    assert_int_equal(odk_dma_command_complete(cmd), ODK_OK);

    assert_int_equal(odk_dma_command_prepare(cmd, m, 12345, size - 12345 - 1, &n), ODK_OK);
    check_segments(io, cmd, m, 12345, size - 12345 - 1, NULL, n, 1000);
    odk_release(cmd); /* the last release completes it */

    odk_dma_constraints small = {.max_segment_size = 4096};
    assert_int_equal(odk_dma_command_create(io, &small, &cmd), ODK_OK);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 0, size, &n), ODK_OK);
    assert_true(n >= size / 4096);
    check_segments(io, cmd, m, 0, size, &small, n, 4096);
    odk_release(cmd);

    /* A 32-bit device cannot hold 5 GiB below 4 GiB: a limit, not a wrap. */
    char log[4096];
    odk_dma_constraints c32 = {.address_bits = 32};
    assert_int_equal(odk_dma_command_create(io, &c32, &cmd), ODK_OK);
    capture_begin();
    int st = odk_dma_command_prepare(cmd, m, 0, size, &n);
    capture_end(log, sizeof log);
    assert_int_equal(st, ODK_E_LIMIT);
    assert_non_null(strstr(log, "5368709120 bytes do not fit in the 32-bit"));
    assert_int_equal(odk_dma_command_segments(cmd, 0, NULL, 0, &n), ODK_E_STATE);
    /* What fits does. */
    assert_int_equal(odk_dma_command_prepare(cmd, m, 0, 3 * GiB, &n), ODK_OK);
    check_segments(io, cmd, m, 0, 3 * GiB, &c32, n, 512);
    odk_release(cmd);

    /* The same through a 32-bit IOMMU and unconstrained device. */
    odk_iommu *io32;
    assert_int_equal(odk_iommu_create_sim(32, 1, &io32), ODK_OK);
    assert_int_equal(odk_dma_command_create(io32, NULL, &cmd), ODK_OK);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 0, size, &n), ODK_E_LIMIT);
    odk_release(cmd);
    odk_release(io32);

    odk_release(m);
    odk_release(io);
}

/* Story 6: ODK_DMA_CONTIGUOUS gives one segment or a clear ODK_E_LIMIT. */
static void test_contiguous(void **state)
{
    (void)state;
    odk_iommu *io;
    odk_memory *m;
    odk_dma_command *cmd, *other;
    odk_dma_segment seg;
    uint64_t n, got;
    char log[4096];
    assert_int_equal(odk_iommu_create_sim(32, 2, &io), ODK_OK);
    assert_int_equal(odk_memory_create(4 * GiB, ODK_MEM_INOUT, &m), ODK_OK);

    odk_dma_constraints c = {
        .max_segment_size = 1 * GiB, .alignment = 64 * KiB, .flags = ODK_DMA_CONTIGUOUS};
    assert_int_equal(odk_dma_command_create(io, &c, &cmd), ODK_OK);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 0, 1 * GiB, &n), ODK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(odk_dma_command_segments(cmd, 0, &seg, 1, &got), ODK_OK);
    assert_int_equal(got, 1);
    assert_int_equal(seg.length, 1 * GiB);
    assert_int_equal(seg.address % (64 * KiB), 0);
    check_segments(io, cmd, m, 0, 1 * GiB, &c, n, 1);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 0, 4096, &n), ODK_E_STATE);
    assert_int_equal(odk_dma_command_complete(cmd), ODK_OK);
    assert_int_equal(odk_dma_command_complete(cmd), ODK_OK); /* idempotent */

    /* An odd length at an offset: still one segment. */
    assert_int_equal(odk_dma_command_prepare(cmd, m, 3 * 64 * KiB, 100 * MiB + 3, &n), ODK_OK);
    assert_int_equal(n, 1);
    check_segments(io, cmd, m, 3 * 64 * KiB, 100 * MiB + 3, &c, n, 1);
    assert_int_equal(odk_dma_command_complete(cmd), ODK_OK);

    /* Beyond max_segment_size: the error says so. */
    capture_begin();
    int st = odk_dma_command_prepare(cmd, m, 0, 3 * GiB, &n);
    capture_end(log, sizeof log);
    assert_int_equal(st, ODK_E_LIMIT);
    assert_non_null(strstr(log, "dma: contiguous 3221225472 bytes exceed max_segment_size "
                                "1073741824"));
    odk_release(cmd);

    /* Free space exists but is not contiguous: a 1 MiB mapping placed just
     * above a 1.5 GiB one that then completes splits the 4 GiB space in two
     * parts smaller than 3 GiB. */
    odk_dma_constraints contig = {.flags = ODK_DMA_CONTIGUOUS};
    odk_dma_command *low;
    assert_int_equal(odk_dma_command_create(io, NULL, &low), ODK_OK);
    assert_int_equal(odk_dma_command_prepare(low, m, 0, 1 * GiB + 512 * MiB, &n), ODK_OK);
    assert_int_equal(odk_dma_command_create(io, &contig, &other), ODK_OK);
    assert_int_equal(odk_dma_command_prepare(other, m, 0, 1 * MiB, &n), ODK_OK);
    assert_int_equal(odk_dma_command_segments(other, 0, &seg, 1, &got), ODK_OK);
    assert_true(seg.address > 1 * GiB + 512 * MiB);
    odk_release(low);
    assert_int_equal(odk_dma_command_create(io, &contig, &cmd), ODK_OK);
    capture_begin();
    st = odk_dma_command_prepare(cmd, m, 0, 3 * GiB, &n);
    capture_end(log, sizeof log);
    assert_int_equal(st, ODK_E_LIMIT);
    assert_non_null(strstr(log, "dma: no contiguous 3221225472 bytes free in the 32-bit"));
    /* Once the space is free again, it is one segment. */
    odk_release(other);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 0, 3 * GiB, &n), ODK_OK);
    assert_int_equal(n, 1);
    check_segments(io, cmd, m, 0, 3 * GiB, &contig, n, 1);
    odk_release(cmd);

    odk_release(m);
    odk_release(io);
}


/* iommu_set_mirror (the PCI family's VFIO backend): every chunk placed is
 * given to the mirror with its bytes in this process, every chunk removed
 * is taken back, and a mirror that refuses fails the prepare with nothing
 * left mapped. */
struct mirror {
    uint64_t mapped, unmapped, calls;
    uint8_t *base;
    int fail_at; /* the call that fails, 0: none */
};

static int mirror_map(void *ctx, const struct iommu_chunk *c, uint64_t *cookie)
{
    struct mirror *mi = ctx;
    void *host = c->host;
    uint64_t len = c->len;
    bool writable = c->writable;
    if (++mi->calls == (uint64_t)mi->fail_at)
        return ODK_E_IO;
    *cookie = c->iova;
    assert_int_equal(c->mem_offset, (uint64_t)((uint8_t *)host - mi->base));
    assert_true(writable);
    assert_true((uint8_t *)host >= mi->base && (uint8_t *)host + len <= mi->base + 8 * MiB);
    assert_int_equal(((uintptr_t)host) % 4096, 0);
    mi->mapped += len;
    return ODK_OK;
}

static void mirror_unmap(void *ctx, uint64_t iova, uint64_t len, uint64_t cookie)
{
    struct mirror *mi = ctx;
    assert_true(cookie == 0 || cookie == iova);
    mi->unmapped += len;
}

static void test_mirror(void **state)
{
    (void)state;
    odk_iommu *io;
    odk_memory *m;
    odk_dma_command *cmd;
    uint64_t n;
    struct mirror mi = {0};
    assert_int_equal(odk_iommu_create_sim(48, 5, &io), ODK_OK);
    assert_int_equal(odk_memory_create(8 * MiB, ODK_MEM_INOUT, &m), ODK_OK);
    assert_int_equal(odk_memory_map(m, ODK_MAP_READ | ODK_MAP_WRITE, (void **)&mi.base), ODK_OK);
    assert_int_equal(iommu_set_mirror(io, mirror_map, mirror_unmap, &mi), ODK_OK);
    assert_int_equal(iommu_set_mirror(io, mirror_map, mirror_unmap, &n), ODK_E_BUSY);
    assert_int_equal(odk_dma_command_create(io, NULL, &cmd), ODK_OK);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 0, 8 * MiB, &n), ODK_OK);
    assert_int_equal(mi.mapped, 8 * MiB);
    assert_true(mi.calls >= 2); /* scattered: several chunks */
    assert_int_equal(odk_dma_command_complete(cmd), ODK_OK);
    assert_int_equal(mi.unmapped, 8 * MiB);
    /* The second chunk's mirroring fails: the prepare fails, and what was
     * placed is given back (the mirror is told to unmap every chunk). */
    mi = (struct mirror){.base = mi.base, .fail_at = 2};
    uint64_t before = mi.unmapped;
    assert_int_equal(odk_dma_command_prepare(cmd, m, 0, 8 * MiB, &n), ODK_E_IO);
    assert_true(mi.unmapped > before);
    mi.fail_at = 0;
    assert_int_equal(odk_dma_command_prepare(cmd, m, 0, 8 * MiB, &n), ODK_OK);
    assert_int_equal(odk_dma_command_complete(cmd), ODK_OK);
    /* A mirror set after a prepare is given what stands, and told of its
     * unmapping with the cookies it gave. */
    assert_int_equal(iommu_set_mirror(io, NULL, NULL, NULL), ODK_OK);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 0, 8 * MiB, &n), ODK_OK);
    mi = (struct mirror){.base = mi.base};
    assert_int_equal(iommu_set_mirror(io, mirror_map, mirror_unmap, &mi), ODK_OK);
    assert_int_equal(mi.mapped, 8 * MiB);
    assert_int_equal(odk_dma_command_complete(cmd), ODK_OK);
    assert_int_equal(mi.unmapped, 8 * MiB);
    iommu_set_mirror(io, NULL, NULL, NULL);
    odk_release(cmd);
    odk_release(m);
    odk_release(io);
}

/* The scattered layout is a function of the seed, so a failure replays. */
static void test_deterministic(void **state)
{
    (void)state;
    odk_memory *m;
    odk_dma_segment a[64], b[64];
    uint64_t na, nb, got;
    assert_int_equal(odk_memory_create(256 * MiB, ODK_MEM_IN, &m), ODK_OK);
    for (int round = 0; round < 3; round++) {
        odk_dma_segment *dst = round == 0 ? a : b;
        uint64_t *n = round == 0 ? &na : &nb;
        odk_iommu *io;
        odk_dma_command *cmd;
        assert_int_equal(odk_iommu_create_sim(40, round < 2 ? 42 : 43, &io), ODK_OK);
        assert_int_equal(odk_dma_command_create(io, NULL, &cmd), ODK_OK);
        assert_int_equal(odk_dma_command_prepare(cmd, m, 0, 256 * MiB, n), ODK_OK);
        assert_int_equal(odk_dma_command_segments(cmd, 0, dst, 64, &got), ODK_OK);
        if (round == 1) {
            assert_int_equal(na, nb);
            assert_memory_equal(a, b, (na < 64 ? na : 64) * sizeof *a);
        } else if (round == 2) {
            assert_true(na != nb || memcmp(a, b, (na < 64 ? na : 64) * sizeof *a) != 0);
        }
        odk_release(cmd);
        odk_release(io);
    }
    odk_release(m);
}

/* Bad constraints and ranges are refused with ODK_E_INVALID, never mapped. */
static void test_invalid(void **state)
{
    (void)state;
    odk_iommu *io;
    odk_memory *m;
    odk_dma_command *cmd;
    uint64_t n;
    assert_int_equal(odk_iommu_create_sim(11, 0, &io), ODK_E_INVALID);
    assert_int_equal(odk_iommu_create_sim(65, 0, &io), ODK_E_INVALID);
    assert_int_equal(odk_iommu_create_sim(0, 0, &io), ODK_OK);
    assert_int_equal(odk_iommu_address_bits(io), 64);
    assert_int_equal(odk_memory_create(1 * MiB, ODK_MEM_IN, &m), ODK_OK);

    odk_dma_constraints bad[] = {
        {.address_bits = 8},
        {.address_bits = 65},
        {.alignment = 3},
        {.flags = 0x80},
        {.alignment = 8192, .max_segment_size = 4096},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(odk_dma_command_create(io, &bad[i], &cmd), ODK_E_INVALID);

    /* max_segment_size below a page is fine: segments split inside pages. */
    odk_dma_constraints tiny = {.max_segment_size = 100, .alignment = 4};
    assert_int_equal(odk_dma_command_create(io, &tiny, &cmd), ODK_OK);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 8, 10000, &n), ODK_OK);
    check_segments(io, cmd, m, 8, 10000, &tiny, n, 7);
    odk_release(cmd);

    odk_dma_constraints a512 = {.alignment = 512};
    assert_int_equal(odk_dma_command_create(io, &a512, &cmd), ODK_OK);
    assert_int_equal(odk_dma_command_segments(cmd, 0, NULL, 0, &n), ODK_E_STATE);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 256, 4096, &n), ODK_E_INVALID);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 0, 0, &n), ODK_E_INVALID);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 512, 1 * MiB, &n), ODK_E_INVALID);
    assert_int_equal(odk_dma_command_prepare(cmd, m, UINT64_MAX - 511, 1024, &n), ODK_E_INVALID);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 512, 1 * MiB - 512, &n), ODK_OK);
    check_segments(io, cmd, m, 512, 1 * MiB - 512, &a512, n, 3);
    odk_release(cmd);

    /* alignment above a page: the offset need only be page aligned. */
    odk_dma_constraints a64k = {.alignment = 64 * KiB, .max_segment_size = 96 * KiB};
    assert_int_equal(odk_dma_command_create(io, &a64k, &cmd), ODK_OK);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 4096 + 2048, 4096, &n), ODK_E_INVALID);
    assert_int_equal(odk_dma_command_prepare(cmd, m, 3 * 4096, 1 * MiB - 3 * 4096, &n), ODK_OK);
    check_segments(io, cmd, m, 3 * 4096, 1 * MiB - 3 * 4096, &a64k, n, 5);
    odk_release(cmd);

    odk_release(m);
    odk_release(io);
}

/* Random constraints, lengths and offsets; every rule checked each time.
 * A few commands stay prepared across iterations so later ones meet a
 * fragmented space. */
static void test_property(void **state)
{
    (void)state;
    uint64_t seed = 0x0d4a5eedull;
    const char *env = getenv("ODK_DMA_SEED");
    if (env)
        seed = strtoull(env, NULL, 0);
    print_message("dma property test seed %llu (replay with ODK_DMA_SEED=%llu)\n",
                  (unsigned long long)seed, (unsigned long long)seed);
    uint64_t s = seed;
    odk_iommu *io;
    assert_int_equal(odk_iommu_create_sim(48, seed, &io), ODK_OK);
    enum { LIVE = 3 };
    odk_dma_command *live[LIVE] = {0};
    odk_log_level level = odk_log_get_level();
    odk_log_set_level(ODK_LOG_ERROR); /* expected ODK_E_LIMITs would flood the log */

    for (int it = 0; it < 300; it++) {
        odk_dma_constraints c = {0};
        c.address_bits = 32 + (uint32_t)(rnd(&s) % 17);
        c.alignment = 1ull << (rnd(&s) % 17);
        switch (rnd(&s) % 4) {
        case 0:
            c.max_segment_size = 0;
            break;
        case 1:
            c.max_segment_size = 1ull << (12 + rnd(&s) % 19);
            break;
        default:
            c.max_segment_size = 4096 + rnd(&s) % (1 * GiB - 4096 + 1);
        }
        if (rnd(&s) % 4 == 0)
            c.flags = ODK_DMA_CONTIGUOUS;
        /* Log-uniform up to 256 MiB, with a quarter under two pages. */
        uint64_t length = 1 + rnd(&s) % (rnd(&s) % 4 ? 1ull << (13 + rnd(&s) % 16) : 8192);
        uint64_t gran = c.alignment < 4096 ? c.alignment : 4096;
        uint64_t offset = rnd(&s) % 4 == 0 ? 0 : (rnd(&s) % 32768) * gran;
        uint32_t dir = 1 + (uint32_t)(rnd(&s) % 3);

        odk_dma_command *cmd;
        if (c.max_segment_size && c.max_segment_size < c.alignment) {
            assert_int_equal(odk_dma_command_create(io, &c, &cmd), ODK_E_INVALID);
            c.max_segment_size = c.alignment * (1 + rnd(&s) % 4);
        }
        assert_int_equal(odk_dma_command_create(io, &c, &cmd), ODK_OK);
        odk_memory *m;
        assert_int_equal(odk_memory_create(offset + length + rnd(&s) % 8192, dir, &m), ODK_OK);
        uint64_t n = 0;
        int st = odk_dma_command_prepare(cmd, m, offset, length, &n);
        if ((c.flags & ODK_DMA_CONTIGUOUS) && c.max_segment_size && length > c.max_segment_size) {
            assert_int_equal(st, ODK_E_LIMIT);
        } else {
            assert_int_equal(st, ODK_OK);
            if (c.flags & ODK_DMA_CONTIGUOUS)
                assert_int_equal(n, 1);
            check_segments(io, cmd, m, offset, length, &c, n, 1 + rnd(&s) % 300);
        }
        odk_release(m); /* the command keeps it while prepared */
        odk_release(live[it % LIVE]);
        live[it % LIVE] = cmd;
    }
    for (int i = 0; i < LIVE; i++)
        odk_release(live[i]);
    odk_log_set_level(level);
    odk_release(io);
}

/* A device model DMAs into a driver's IN buffer segment by segment; the
 * driver reads exactly those bytes.  An OUT buffer is read-only to the device,
 * and a completed command's addresses are gone. */
static void test_device_model(void **state)
{
    (void)state;
    odk_iommu *io;
    odk_memory *in, *out;
    odk_dma_command *cmd;
    uint64_t n, got;
    const uint64_t offset = 8192 + 512, length = 2 * MiB + 777;
    assert_int_equal(odk_iommu_create_sim(32, 7, &io), ODK_OK);
    assert_int_equal(odk_memory_create(3 * MiB, ODK_MEM_IN, &in), ODK_OK);

    odk_dma_constraints c = {.alignment = 512, .max_segment_size = 64 * KiB};
    assert_int_equal(odk_dma_command_create(io, &c, &cmd), ODK_OK);
    assert_int_equal(odk_dma_command_prepare(cmd, in, offset, length, &n), ODK_OK);
    odk_dma_segment *segs = calloc(n, sizeof *segs);
    assert_int_equal(odk_dma_command_segments(cmd, 0, segs, n, &got), ODK_OK);
    assert_int_equal(got, n);

    uint8_t *src = malloc(length), *back = malloc(length), *seen = malloc(length + 2);
    uint64_t s = 99;
    for (uint64_t i = 0; i < length; i++)
        src[i] = (uint8_t)rnd(&s);
    uint64_t pos = 0;
    for (uint64_t i = 0; i < n; i++) {
        assert_int_equal(odk_iommu_dma_write(io, segs[i].address, src + pos, segs[i].length),
                         ODK_OK);
        pos += segs[i].length;
    }
    assert_int_equal(pos, length);
    /* One byte either side stays untouched. */
    assert_int_equal(odk_memory_read(in, offset - 1, seen, length + 2), ODK_OK);
    assert_int_equal(seen[0], 0);
    assert_int_equal(seen[length + 1], 0);
    assert_memory_equal(seen + 1, src, length);
    pos = 0;
    for (uint64_t i = 0; i < n; i++) {
        assert_int_equal(odk_iommu_dma_read(io, segs[i].address, back + pos, segs[i].length),
                         ODK_OK);
        pos += segs[i].length;
    }
    assert_memory_equal(back, src, length);

    /* Address 0 and the holes between chunks are not mapped. */
    void *host;
    assert_int_equal(odk_iommu_translate(io, 0, 1, ODK_MAP_READ, &host), ODK_E_ACCESS);
    assert_int_equal(odk_iommu_dma_write(io, 0, src, 1), ODK_E_ACCESS);
    assert_int_equal(odk_iommu_translate(io, segs[0].address, 1, 0, &host), ODK_E_INVALID);

    /* Complete: every former address is refused. */
    assert_int_equal(odk_dma_command_complete(cmd), ODK_OK);
    for (uint64_t i = 0; i < n; i += 7)
        assert_int_equal(odk_iommu_translate(io, segs[i].address, 1, ODK_MAP_READ, &host),
                         ODK_E_ACCESS);
    assert_int_equal(odk_iommu_dma_read(io, segs[0].address, back, 1), ODK_E_ACCESS);

    /* An OUT buffer: the device may read it, never write it. */
    assert_int_equal(odk_memory_create(1 * MiB, ODK_MEM_OUT, &out), ODK_OK);
    assert_int_equal(odk_dma_command_prepare(cmd, out, 0, 1 * MiB, &n), ODK_OK);
    odk_dma_segment seg;
    assert_int_equal(odk_dma_command_segments(cmd, 0, &seg, 1, &got), ODK_OK);
    assert_int_equal(odk_iommu_translate(io, seg.address, seg.length, ODK_MAP_WRITE, &host),
                     ODK_E_ACCESS);
    assert_int_equal(
        odk_iommu_translate(io, seg.address, seg.length, ODK_MAP_READ | ODK_MAP_WRITE, &host),
        ODK_E_ACCESS);
    assert_int_equal(odk_iommu_dma_write(io, seg.address, src, seg.length), ODK_E_ACCESS);
    assert_int_equal(odk_iommu_translate(io, seg.address, seg.length, ODK_MAP_READ, &host), ODK_OK);
    assert_int_equal(odk_iommu_dma_read(io, seg.address, back, seg.length), ODK_OK);
    assert_int_equal(back[0], 0);
    odk_release(cmd);
    odk_release(out);

    free(segs);
    free(src);
    free(back);
    free(seen);
    odk_release(in);
    odk_release(io);
}

/* Freed IOVA is reused: 10 000 prepare/complete cycles of 256 MiB in a 4 GiB
 * space (with a long-lived mapping fragmenting it) never run out. */
static void test_churn(void **state)
{
    (void)state;
    odk_iommu *io;
    odk_memory *m;
    odk_dma_command *cmd, *cc, *held;
    uint64_t n, s = 5;
    assert_int_equal(odk_iommu_create_sim(32, 3, &io), ODK_OK);
    assert_int_equal(odk_memory_create(3 * GiB, ODK_MEM_INOUT, &m), ODK_OK);
    assert_int_equal(odk_dma_command_create(io, NULL, &held), ODK_OK);
    assert_int_equal(odk_dma_command_prepare(held, m, 0, 1 * GiB, &n), ODK_OK);

    odk_dma_constraints c = {.alignment = 64 * KiB, .max_segment_size = 16 * MiB};
    odk_dma_constraints contig = {.flags = ODK_DMA_CONTIGUOUS};
    assert_int_equal(odk_dma_command_create(io, &c, &cmd), ODK_OK);
    assert_int_equal(odk_dma_command_create(io, &contig, &cc), ODK_OK);
    for (int i = 0; i < 10000; i++) {
        uint64_t len = 1 + rnd(&s) % (256 * MiB);
        odk_dma_command *k = i % 2 ? cc : cmd;
        assert_int_equal(odk_dma_command_prepare(k, m, 0, len, &n), ODK_OK);
        assert_true(n >= 1);
        assert_int_equal(odk_dma_command_complete(k), ODK_OK);
    }
    /* Everything came back: 3 GiB still fits contiguously once held is done. */
    odk_release(held);
    assert_int_equal(odk_dma_command_prepare(cc, m, 0, 3 * GiB, &n), ODK_OK);
    assert_int_equal(n, 1);
    odk_release(cc);
    odk_release(cmd);
    odk_release(m);
    odk_release(io);
}

/* Several threads prepare, DMA through and complete their own commands on
 * one IOMMU at once; each must only ever see its own buffer.  (cmocka's
 * asserts are not thread-safe: threads count failures instead.) */
struct churner {
    odk_iommu *io;
    uint64_t seed;
    atomic_int *failures;
};

static void *churn_thread(void *arg)
{
    struct churner *t = arg;
    odk_memory *m;
    odk_dma_command *cmd;
    odk_dma_constraints c = {.max_segment_size = 256 * KiB, .alignment = 8};
    if (odk_memory_create(16 * MiB, ODK_MEM_INOUT, &m) < 0 ||
        odk_dma_command_create(t->io, &c, &cmd) < 0) {
        atomic_fetch_add(t->failures, 1);
        return NULL;
    }
    uint8_t *base;
    odk_memory_map(m, ODK_MAP_READ, (void **)&base);
    uint64_t s = t->seed, tag = t->seed;
    for (int i = 0; i < 300; i++) {
        uint64_t offset = (rnd(&s) % 1024) * 8, length = 1 + rnd(&s) % (8 * MiB), n, got;
        if (odk_dma_command_prepare(cmd, m, offset, length, &n) < 0) {
            atomic_fetch_add(t->failures, 1);
            continue;
        }
        uint64_t pos = 0;
        for (uint64_t j = 0; j < n; j++) {
            odk_dma_segment seg;
            void *host;
            if (odk_dma_command_segments(cmd, j, &seg, 1, &got) < 0 || got != 1 ||
                odk_iommu_translate(t->io, seg.address, seg.length, ODK_MAP_WRITE, &host) < 0 ||
                host != base + offset + pos)
                atomic_fetch_add(t->failures, 1);
            uint64_t echo = 0, len = seg.length < 8 ? seg.length : 8;
            if (odk_iommu_dma_write(t->io, seg.address, &tag, len) < 0 ||
                odk_memory_read(m, offset + pos, &echo, len) < 0 || memcmp(&echo, &tag, len))
                atomic_fetch_add(t->failures, 1);
            pos += seg.length;
        }
        if (pos != length)
            atomic_fetch_add(t->failures, 1);
        odk_dma_command_complete(cmd);
    }
    odk_release(cmd);
    odk_release(m);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    enum { THREADS = 4 };
    odk_iommu *io;
    atomic_int failures = 0;
    struct churner t[THREADS];
    pthread_t th[THREADS];
    assert_int_equal(odk_iommu_create_sim(36, 11, &io), ODK_OK);
    for (int i = 0; i < THREADS; i++) {
        t[i] = (struct churner){io, 1000 + (uint64_t)i, &failures};
        assert_int_equal(pthread_create(&th[i], NULL, churn_thread, &t[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&failures), 0);
    odk_release(io);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_five_gib),     cmocka_unit_test(test_contiguous),
        cmocka_unit_test(test_invalid),      cmocka_unit_test(test_property),
        cmocka_unit_test(test_device_model), cmocka_unit_test(test_churn),
        cmocka_unit_test(test_threads),      cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_mirror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
