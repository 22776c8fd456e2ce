/* SPDX-License-Identifier: MIT */
/* The simulated IOMMU: a device's DMA address space.
 *
 * Free IOVA space is a sorted list of disjoint intervals, allocated first-fit
 * and merged back on unmap, so prepare/complete can repeat forever.  Mapped
 * chunks are a table sorted by address, so a device model's translate is a
 * binary search.  A mapping that may be scattered is cut into chunks of
 * pseudo-random size with holes between them: drivers then meet, in the sim,
 * the segment lists real scattered physical memory gives them.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "odk/dma.h"
#include "runtime/dma_internal.h"
#include "odk/log.h"


#define PAGE ((uint64_t)ODK_DMA_PAGE_SIZE)

struct range {
    uint64_t start, end; /* [start, end) */
};

struct mapping {
    uint64_t iova, len;
    odk_memory *m; /* borrowed: the owning command retains it */
    uint64_t mem_offset;
    const void *owner;
    bool writable; /* false for ODK_MEM_OUT: the device may only read */
    uint64_t cookie; /* what the mirror said about the chunk (iommu_set_mirror) */
};

struct odk_iommu {
    odk_object obj;
    pthread_mutex_t lock;
    uint32_t bits;
    uint64_t top; /* end of the allocatable space: the last page is a guard */
    uint64_t rng;
    struct range *free; /* sorted, disjoint, never adjacent */
    size_t n_free, cap_free;
    struct mapping *maps; /* sorted by iova */
    size_t n_maps, cap_maps;
    /* Another IOMMU that mirrors every chunk (iommu_set_mirror), or NULL. */
    iommu_mirror_map_fn mirror_map;
    iommu_mirror_unmap_fn mirror_unmap;
    void *mirror_ctx;
};

/* splitmix64: small, good enough, and the same on every machine. */
static uint64_t next_random(odk_iommu *io)
{
    uint64_t z = (io->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Exclusive upper end of what a bits-wide address space allows. */
static uint64_t space_top(uint32_t bits)
{
    return bits >= 64 ? UINT64_MAX - PAGE + 1 : (1ull << bits) - PAGE;
}

static void iommu_free(odk_object *o)
{
    odk_iommu *io = (odk_iommu *)o;
    /* Commands retain their IOMMU, so no mapping can outlive it. */
    pthread_mutex_destroy(&io->lock);
    free(io->free);
    free(io->maps);
    free(io);
}

int odk_iommu_create_sim(uint32_t address_bits, uint64_t seed, odk_iommu **out)
{
    if (out)
        *out = NULL;
    if (address_bits == 0)
        address_bits = 64;
    if (!out || address_bits < 12 || address_bits > 64)
        return ODK_E_INVALID;
    odk_iommu *io = calloc(1, sizeof *io);
    if (!io)
        return ODK_E_NOMEM;
    io->cap_free = 16;
    io->free = calloc(io->cap_free, sizeof *io->free);
    if (!io->free) {
        free(io);
        return ODK_E_NOMEM;
    }
    odk_object_init(&io->obj, iommu_free);
    pthread_mutex_init(&io->lock, NULL);
    io->bits = address_bits;
    io->top = space_top(address_bits);
    io->rng = seed;
    if (io->top > PAGE) /* page 0 is never handed out: 0 is no address */
        io->free[io->n_free++] = (struct range){PAGE, io->top};
    *out = io;
    return ODK_OK;
}

uint32_t odk_iommu_address_bits(const odk_iommu *io)
{
    return io ? io->bits : 0;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return ODK_OK;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return ODK_E_NOMEM;
    *arr = p;
    *cap = n;
    return ODK_OK;
}

/* First free interval whose end lies above from. */
static size_t free_after(const odk_iommu *io, uint64_t from)
{
    size_t lo = 0, hi = io->n_free;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (io->free[mid].end <= from)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First fit at or above from: an address that is a multiple of align, with
 * size free bytes ending at or below top. */
static bool find_fit(const odk_iommu *io, uint64_t from, uint64_t size, uint64_t align,
                     uint64_t top, size_t *idx, uint64_t *addr)
{
    for (size_t i = free_after(io, from); i < io->n_free && io->free[i].start < top; i++) {
        uint64_t s = io->free[i].start > from ? io->free[i].start : from;
        if (s > UINT64_MAX - (align - 1))
            return false;
        uint64_t a = (s + align - 1) & ~(align - 1);
        uint64_t end = io->free[i].end < top ? io->free[i].end : top;
        if (a < end && size <= end - a) {
            *idx = i;
            *addr = a;
            return true;
        }
    }
    return false;
}

/* Removes [a, a + size) from free interval i; the caller made room for one
 * more interval. */
static void take(odk_iommu *io, size_t i, uint64_t a, uint64_t size)
{
    struct range r = io->free[i];
    bool left = r.start < a, right = a + size < r.end;
    if (left && right) {
        memmove(&io->free[i + 2], &io->free[i + 1], (io->n_free - i - 1) * sizeof *io->free);
        io->n_free++;
        io->free[i].end = a;
        io->free[i + 1] = (struct range){a + size, r.end};
    } else if (left) {
        io->free[i].end = a;
    } else if (right) {
        io->free[i].start = a + size;
    } else {
        memmove(&io->free[i], &io->free[i + 1], (io->n_free - i - 1) * sizeof *io->free);
        io->n_free--;
    }
}

/* Returns [a, a + size) to the free list.  Never allocates: there are never
 * more free intervals than mapped chunks + 1, and iommu_map keeps the
 * capacity above that. */
static void give_back(odk_iommu *io, uint64_t a, uint64_t size)
{
    uint64_t end = a + size;
    size_t i = free_after(io, a); /* first interval after the freed range */
    bool join_left = i > 0 && io->free[i - 1].end == a;
    bool join_right = i < io->n_free && io->free[i].start == end;
    if (join_left && join_right) {
        io->free[i - 1].end = io->free[i].end;
        memmove(&io->free[i], &io->free[i + 1], (io->n_free - i - 1) * sizeof *io->free);
        io->n_free--;
    } else if (join_left) {
        io->free[i - 1].end = end;
    } else if (join_right) {
        io->free[i].start = a;
    } else {
        memmove(&io->free[i + 1], &io->free[i], (io->n_free - i) * sizeof *io->free);
        io->free[i] = (struct range){a, end};
        io->n_free++;
    }
}

static int cmp_mapping(const void *a, const void *b)
{
    const struct mapping *x = a, *y = b;
    return x->iova < y->iova ? -1 : x->iova > y->iova;
}

/* Restores the table's order after maps[old..] were appended: sorts the new
 * entries and merges them in from the back, O(n + k log k) rather than a
 * full sort per prepare. */
static void sort_new(odk_iommu *io, size_t old)
{
    size_t k = io->n_maps - old;
    struct mapping *tail = malloc(k * sizeof *tail);
    if (!tail) {
        qsort(io->maps, io->n_maps, sizeof *io->maps, cmp_mapping);
        return;
    }
    memcpy(tail, &io->maps[old], k * sizeof *tail);
    qsort(tail, k, sizeof *tail, cmp_mapping);
    size_t i = old, j = k, w = io->n_maps;
    while (j > 0) {
        if (i > 0 && io->maps[i - 1].iova > tail[j - 1].iova)
            io->maps[--w] = io->maps[--i];
        else
            io->maps[--w] = tail[--j];
    }
    free(tail);
}

static void unmap_locked(odk_iommu *io, const void *owner)
{
    size_t kept = 0;
    for (size_t i = 0; i < io->n_maps; i++) {
        if (io->maps[i].owner == owner && io->mirror_unmap)
            io->mirror_unmap(io->mirror_ctx, io->maps[i].iova, io->maps[i].len, io->maps[i].cookie);
        if (io->maps[i].owner == owner)
            give_back(io, io->maps[i].iova, io->maps[i].len);
        else
            io->maps[kept++] = io->maps[i];
    }
    io->n_maps = kept;
}

void iommu_unmap(odk_iommu *io, const void *owner)
{
    pthread_mutex_lock(&io->lock);
    unmap_locked(io, owner);
    pthread_mutex_unlock(&io->lock);
}

static uint64_t free_below(const odk_iommu *io, uint64_t top, uint64_t *largest)
{
    uint64_t sum = 0;
    *largest = 0;
    for (size_t i = 0; i < io->n_free && io->free[i].start < top; i++) {
        uint64_t end = io->free[i].end < top ? io->free[i].end : top;
        sum += end - io->free[i].start;
        if (end - io->free[i].start > *largest)
            *largest = end - io->free[i].start;
    }
    return sum;
}

/* Records one chunk; room was made by the caller. */
static void add_chunk(odk_iommu *io, odk_memory *m, uint64_t mem_offset, const void *owner,
                      size_t fi, uint64_t a, uint64_t size, odk_dma_segment *chunks, uint64_t n)
{
    take(io, fi, a, size);
    io->maps[io->n_maps++] = (struct mapping){
        .iova = a,
        .len = size,
        .m = m,
        .mem_offset = mem_offset,
        .owner = owner,
        .writable = odk_memory_direction(m) != ODK_MEM_OUT,
        .cookie = 0,
    };
    chunks[n] = (odk_dma_segment){a, size};
}

/* Room for one more chunk in every table; keeps the free list's capacity
 * above mapped chunks + 1 so give_back never allocates. */
static int make_room(odk_iommu *io, odk_dma_segment **chunks, uint64_t *cap, uint64_t n)
{
    if (n == *cap) {
        uint64_t c = *cap ? *cap * 2 : 16;
        odk_dma_segment *p = realloc(*chunks, c * sizeof *p);
        if (!p)
            return ODK_E_NOMEM;
        *chunks = p;
        *cap = c;
    }
    if (grow((void **)&io->maps, &io->cap_maps, io->n_maps + 1, sizeof *io->maps) < 0 ||
        grow((void **)&io->free, &io->cap_free, io->n_maps + 2, sizeof *io->free) < 0)
        return ODK_E_NOMEM;
    return ODK_OK;
}

/* The scattered placement: chunk sizes of 1..2^14 units, log-uniformly
 * spread, so lists hold both long and short segments; holes of 1..16 units. */
static uint64_t random_units(odk_iommu *io, uint64_t max)
{
    uint64_t r = next_random(io);
    uint64_t units = 1 + (r >> 8) % (1ull << (r % 15));
    return units < max ? units : max;
}

static int map_scattered(odk_iommu *io, odk_memory *m, uint64_t mem_offset, uint64_t len,
                         uint64_t unit, uint64_t top, const void *owner, odk_dma_segment **chunks,
                         uint64_t *n_chunks, uint64_t *cap)
{
    uint64_t done = 0, cursor = 0;
    while (done < len) {
        uint64_t remaining = len - done;
        uint64_t size = random_units(io, UINT64_MAX / unit) * unit;
        if (size > remaining)
            size = remaining;
        uint64_t smallest = remaining < unit ? remaining : unit;
        size_t fi;
        uint64_t a;
        for (;;) {
            if (find_fit(io, cursor, size, unit, top, &fi, &a) ||
                find_fit(io, 0, size, unit, top, &fi, &a))
                break;
            if (size == smallest)
                return ODK_E_LIMIT; /* fragmented below top: no unit left */
            size = (size / 2) & ~(unit - 1);
            if (size < smallest)
                size = smallest;
        }
        int st = make_room(io, chunks, cap, *n_chunks);
        if (st < 0)
            return st;
        add_chunk(io, m, mem_offset + done, owner, fi, a, size, *chunks, (*n_chunks)++);
        done += size;
        uint64_t hole_units = 1 + next_random(io) % 16, room = top - (a + size);
        cursor = hole_units <= room / unit ? a + size + hole_units * unit : top;
    }
    return ODK_OK;
}

static int host_of(const struct mapping *mp, uint64_t address, void **host);

/* Gives chunk mp to the mirror. */
static int mirror_one(odk_iommu *io, struct mapping *mp)
{
    void *host = NULL;
    int st = host_of(mp, mp->iova, &host);
    if (st < 0)
        return st;
    struct iommu_chunk c = {.iova = mp->iova,
                            .len = mp->len,
                            .writable = mp->writable,
                            .memory = mp->m,
                            .mem_offset = mp->mem_offset,
                            .host = host};
    mp->cookie = 0;
    return io->mirror_map(io->mirror_ctx, &c, &mp->cookie);
}

/* Maps the chunks from maps[first] on in the mirror.  On failure the
 * caller's unmap_locked gives every chunk of the owner back, and asks the
 * mirror to unmap each (one never mirrored is a no-op there). */
static int mirror_new(odk_iommu *io, size_t first)
{
    if (!io->mirror_map)
        return ODK_OK;
    for (size_t i = first; i < io->n_maps; i++) {
        int st = mirror_one(io, &io->maps[i]);
        if (st < 0)
            return st;
    }
    return ODK_OK;
}

int iommu_set_mirror(odk_iommu *io, iommu_mirror_map_fn map, iommu_mirror_unmap_fn unmap, void *ctx)
{
    int st = ODK_OK;
    pthread_mutex_lock(&io->lock);
    if (map && io->mirror_map && io->mirror_ctx != ctx) {
        st = ODK_E_BUSY;
    } else if (!map) {
        io->mirror_map = NULL;
        io->mirror_unmap = NULL;
        io->mirror_ctx = NULL;
        for (size_t i = 0; i < io->n_maps; i++)
            io->maps[i].cookie = 0;
    } else {
        io->mirror_map = map;
        io->mirror_unmap = unmap;
        io->mirror_ctx = ctx;
        /* What stands already is mirrored now; a refusal takes back what
         * was given and leaves no mirror. */
        size_t i = 0;
        for (; i < io->n_maps && st == ODK_OK; i++)
            st = mirror_one(io, &io->maps[i]);
        if (st < 0) {
            for (size_t k = 0; k + 1 < i; k++)
                unmap(ctx, io->maps[k].iova, io->maps[k].len, io->maps[k].cookie);
            for (size_t k = 0; k < io->n_maps; k++)
                io->maps[k].cookie = 0;
            io->mirror_map = NULL;
            io->mirror_unmap = NULL;
            io->mirror_ctx = NULL;
        }
    }
    pthread_mutex_unlock(&io->lock);
    return st;
}

int iommu_map(odk_iommu *io, odk_memory *m, uint64_t mem_offset, uint64_t len, uint64_t unit,
              uint32_t bits, bool contiguous, const void *owner, odk_dma_segment **chunks,
              uint64_t *n_chunks)
{
    *chunks = NULL;
    *n_chunks = 0;
    if (bits > io->bits)
        bits = io->bits;
    uint64_t top = space_top(bits), cap = 0, largest;
    int st = ODK_OK;
    pthread_mutex_lock(&io->lock);
    uint64_t avail = free_below(io, top, &largest);
    if (len > avail) {
        odk_warn("dma: %llu bytes do not fit in the %u-bit DMA address space (%llu bytes free)",
                 (unsigned long long)len, bits, (unsigned long long)avail);
        st = ODK_E_LIMIT;
    } else if (contiguous) {
        size_t fi;
        uint64_t a;
        if (!find_fit(io, 0, len, unit, top, &fi, &a)) {
            odk_warn("dma: no contiguous %llu bytes free in the %u-bit DMA address space "
                     "(largest free range %llu bytes)",
                     (unsigned long long)len, bits, (unsigned long long)largest);
            st = ODK_E_LIMIT;
        } else if ((st = make_room(io, chunks, &cap, 0)) == ODK_OK) {
            add_chunk(io, m, mem_offset, owner, fi, a, len, *chunks, (*n_chunks)++);
        }
    } else {
        st = map_scattered(io, m, mem_offset, len, unit, top, owner, chunks, n_chunks, &cap);
        if (st == ODK_E_LIMIT)
            odk_warn("dma: %llu bytes do not fit in the %u-bit DMA address space: free space "
                     "is fragmented below %llu-byte units",
                     (unsigned long long)len, bits, (unsigned long long)unit);
    }
    if (st == ODK_OK)
        st = mirror_new(io, io->n_maps - *n_chunks);
    if (st == ODK_OK) {
        sort_new(io, io->n_maps - *n_chunks);
    } else {
        unmap_locked(io, owner);
        free(*chunks);
        *chunks = NULL;
        *n_chunks = 0;
    }
    pthread_mutex_unlock(&io->lock);
    return st;
}

/* The mapping that holds address, or NULL. */
static const struct mapping *lookup(const odk_iommu *io, uint64_t address)
{
    size_t lo = 0, hi = io->n_maps;
    while (lo < hi) { /* first mapping that starts above address */
        size_t mid = lo + (hi - lo) / 2;
        if (io->maps[mid].iova <= address)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const struct mapping *mp = &io->maps[lo - 1];
    return address - mp->iova < mp->len ? mp : NULL;
}

static int host_of(const struct mapping *mp, uint64_t address, void **host)
{
    void *base;
    int st =
        odk_memory_map(mp->m, mp->writable ? ODK_MAP_READ | ODK_MAP_WRITE : ODK_MAP_READ, &base);
    if (st == ODK_OK)
        *host = (uint8_t *)base + mp->mem_offset + (address - mp->iova);
    return st;
}

int odk_iommu_translate(odk_iommu *io, uint64_t address, uint64_t length, uint32_t access,
                        void **host)
{
    if (host)
        *host = NULL;
    if (!io || !host || length == 0 || !access || (access & ~(ODK_MAP_READ | ODK_MAP_WRITE)))
        return ODK_E_INVALID;
    int st;
    pthread_mutex_lock(&io->lock);
    const struct mapping *mp = lookup(io, address);
    if (!mp || length > mp->len - (address - mp->iova)) {
        odk_warn("iommu: device access to 0x%llx+%llu is not inside one mapped chunk",
                 (unsigned long long)address, (unsigned long long)length);
        st = ODK_E_ACCESS;
    } else if ((access & ODK_MAP_WRITE) && !mp->writable) {
        odk_warn("iommu: device write to 0x%llx refused: it maps an OUT (read-only) descriptor",
                 (unsigned long long)address);
        st = ODK_E_ACCESS;
    } else {
        st = host_of(mp, address, host);
    }
    pthread_mutex_unlock(&io->lock);
    return st;
}

/* Checks the whole range before moving a byte, then copies chunk by chunk. */
static int dma_copy(odk_iommu *io, uint64_t address, void *buf, uint64_t len, bool write)
{
    if (!io || (len && !buf))
        return ODK_E_INVALID;
    if (len == 0)
        return ODK_OK;
    int st = ODK_OK;
    pthread_mutex_lock(&io->lock);
    for (uint64_t done = 0; done < len;) {
        const struct mapping *mp = address <= UINT64_MAX - len ? lookup(io, address + done) : NULL;
        if (!mp) {
            odk_warn("iommu: device %s of %llu bytes at 0x%llx: 0x%llx is not mapped",
                     write ? "write" : "read", (unsigned long long)len, (unsigned long long)address,
                     (unsigned long long)(address + done));
            st = ODK_E_ACCESS;
            break;
        }
        if (write && !mp->writable) {
            odk_warn("iommu: device write to 0x%llx refused: it maps an OUT (read-only) "
                     "descriptor",
                     (unsigned long long)(address + done));
            st = ODK_E_ACCESS;
            break;
        }
        /* Map every descriptor now (each maps once, then stays), so the copy
         * below cannot fail half-way. */
        void *host;
        if ((st = host_of(mp, address + done, &host)) < 0)
            break;
        uint64_t n = mp->len - (address + done - mp->iova);
        done += n < len - done ? n : len - done;
    }
    for (uint64_t done = 0; st == ODK_OK && done < len;) {
        const struct mapping *mp = lookup(io, address + done);
        void *host;
        uint64_t n = mp->len - (address + done - mp->iova);
        if (n > len - done)
            n = len - done;
        st = host_of(mp, address + done, &host);
        if (st == ODK_OK) {
            if (write)
                memcpy(host, (uint8_t *)buf + done, n);
            else
                memcpy((uint8_t *)buf + done, host, n);
        }
        done += n;
    }
    pthread_mutex_unlock(&io->lock);
    return st;
}

int odk_iommu_dma_write(odk_iommu *io, uint64_t address, const void *src, uint64_t len)
{
    return dma_copy(io, address, (void *)src, len, true);
}

int odk_iommu_dma_read(odk_iommu *io, uint64_t address, void *dst, uint64_t len)
{
    return dma_copy(io, address, dst, len, false);
}
