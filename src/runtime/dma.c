/* SPDX-License-Identifier: MIT */
/* DMA commands: a memory range mapped into a device's IOMMU, described as
 * segments that honour the device's constraints.
 *
 * A prepared command keeps only its IOMMU chunks; segments are computed from
 * them on demand (a chunk of n bytes is ceil(n / piece) segments), so a list
 * of millions of segments costs no memory per segment — story 14: no total
 * size cap below what the address space allows.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "odk/dma.h"
#include "runtime/dma_internal.h"
#include "odk/log.h"


#define PAGE ((uint64_t)ODK_DMA_PAGE_SIZE)

struct odk_dma_command {
    odk_object obj;
    pthread_mutex_t lock;
    odk_iommu *iommu;      /* retained */
    odk_dma_constraints c; /* normalized: bits 12..64, alignment >= 1 */
    uint64_t piece;        /* longest segment: max_segment_size rounded down to the alignment */

    bool prepared;
    odk_memory *memory;      /* retained while prepared */
    odk_dma_segment *chunks; /* the used bytes of each IOMMU chunk, in buffer order */
    uint64_t *first_segment; /* index of each chunk's first segment; [n_chunks] = total */
    uint64_t n_chunks;
};

static bool power_of_two(uint64_t x)
{
    return x && !(x & (x - 1));
}

static void unprepare(odk_dma_command *cmd)
{
    iommu_unmap(cmd->iommu, cmd);
    odk_release(cmd->memory);
    free(cmd->chunks);
    free(cmd->first_segment);
    cmd->memory = NULL;
    cmd->chunks = NULL;
    cmd->first_segment = NULL;
    cmd->n_chunks = 0;
    cmd->prepared = false;
}

static void command_free(odk_object *o)
{
    odk_dma_command *cmd = (odk_dma_command *)o;
    if (cmd->prepared)
        unprepare(cmd);
    odk_release(cmd->iommu);
    pthread_mutex_destroy(&cmd->lock);
    free(cmd);
}

int odk_dma_command_create(odk_iommu *iommu, const odk_dma_constraints *c, odk_dma_command **out)
{
    if (out)
        *out = NULL;
    if (!iommu || !out)
        return ODK_E_INVALID;
    odk_dma_constraints k = c ? *c : (odk_dma_constraints){0};
    if (k.address_bits == 0)
        k.address_bits = 64;
    if (k.alignment == 0)
        k.alignment = 1;
    if (k.address_bits < 12 || k.address_bits > 64) {
        odk_warn("dma: address_bits %u is not 12..64 (or 0 for 64)", k.address_bits);
        return ODK_E_INVALID;
    }
    if (!power_of_two(k.alignment)) {
        odk_warn("dma: alignment %llu is not a power of two", (unsigned long long)k.alignment);
        return ODK_E_INVALID;
    }
    if (k.flags & ~ODK_DMA_CONTIGUOUS) {
        odk_warn("dma: unknown constraint flags 0x%x", k.flags & ~ODK_DMA_CONTIGUOUS);
        return ODK_E_INVALID;
    }
    if (k.max_segment_size && k.max_segment_size < k.alignment) {
        odk_warn("dma: max_segment_size %llu is smaller than the alignment %llu",
                 (unsigned long long)k.max_segment_size, (unsigned long long)k.alignment);
        return ODK_E_INVALID;
    }
    odk_dma_command *cmd = calloc(1, sizeof *cmd);
    if (!cmd)
        return ODK_E_NOMEM;
    odk_object_init(&cmd->obj, command_free);
    pthread_mutex_init(&cmd->lock, NULL);
    cmd->iommu = odk_retain(iommu);
    cmd->c = k;
    /* Splitting a chunk at multiples of piece keeps every segment aligned. */
    cmd->piece = k.max_segment_size ? k.max_segment_size & ~(k.alignment - 1) : UINT64_MAX;
    *out = cmd;
    return ODK_OK;
}

static uint64_t segments_in(const odk_dma_command *cmd, uint64_t len)
{
    return len / cmd->piece + (len % cmd->piece != 0);
}

/* The checks that need the range; logs what could not be satisfied. */
static int check_range(const odk_dma_command *cmd, odk_memory *m, uint64_t offset, uint64_t length)
{
    uint64_t size = odk_memory_length(m);
    if (length == 0 || offset > size || length > size - offset) {
        odk_warn("dma: range %llu+%llu is empty or not inside the %llu-byte descriptor",
                 (unsigned long long)offset, (unsigned long long)length, (unsigned long long)size);
        return ODK_E_INVALID;
    }
    uint64_t need = cmd->c.alignment < PAGE ? cmd->c.alignment : PAGE;
    if (offset % need) {
        odk_warn("dma: offset %llu is not a multiple of %llu, so the first segment cannot be "
                 "%llu-byte aligned",
                 (unsigned long long)offset, (unsigned long long)need,
                 (unsigned long long)cmd->c.alignment);
        return ODK_E_INVALID;
    }
    if ((cmd->c.flags & ODK_DMA_CONTIGUOUS) && cmd->c.max_segment_size &&
        length > cmd->c.max_segment_size) {
        odk_warn("dma: contiguous %llu bytes exceed max_segment_size %llu",
                 (unsigned long long)length, (unsigned long long)cmd->c.max_segment_size);
        return ODK_E_LIMIT;
    }
    return ODK_OK;
}

int odk_dma_command_prepare(odk_dma_command *cmd, odk_memory *m, uint64_t offset, uint64_t length,
                            uint64_t *n_segments)
{
    if (!cmd || !m)
        return ODK_E_INVALID;
    pthread_mutex_lock(&cmd->lock);
    int st = cmd->prepared ? ODK_E_STATE : check_range(cmd, m, offset, length);
    if (st < 0)
        goto out;

    /* IOMMU pages map whole buffer pages: map from the page holding offset. */
    uint64_t in_page = offset & (PAGE - 1), page_offset = offset - in_page;
    uint64_t span = in_page + length;
    uint64_t map_len = span + (PAGE - 1 - (span - 1) % PAGE); /* span <= INT64_MAX */
    uint64_t unit = cmd->c.alignment > PAGE ? cmd->c.alignment : PAGE;
    odk_dma_segment *chunks;
    uint64_t n;
    st = iommu_map(cmd->iommu, m, page_offset, map_len, unit, cmd->c.address_bits,
                   cmd->c.flags & ODK_DMA_CONTIGUOUS, cmd, &chunks, &n);
    if (st < 0) {
        if (st == ODK_E_NOMEM)
            odk_warn("dma: out of memory mapping %llu bytes", (unsigned long long)length);
        goto out;
    }
    uint64_t *first = malloc((n + 1) * sizeof *first);
    if (!first) {
        iommu_unmap(cmd->iommu, cmd);
        free(chunks);
        odk_warn("dma: out of memory mapping %llu bytes", (unsigned long long)length);
        st = ODK_E_NOMEM;
        goto out;
    }
    /* Trim the chunks to the bytes asked for: the partial first and last page. */
    chunks[0].address += in_page;
    chunks[0].length -= in_page;
    chunks[n - 1].length -= map_len - span;
    first[0] = 0;
    for (uint64_t i = 0; i < n; i++)
        first[i + 1] = first[i] + segments_in(cmd, chunks[i].length);

    cmd->memory = odk_retain(m);
    cmd->chunks = chunks;
    cmd->first_segment = first;
    cmd->n_chunks = n;
    cmd->prepared = true;
    if (n_segments)
        *n_segments = first[n];
out:
    pthread_mutex_unlock(&cmd->lock);
    return st;
}

int odk_dma_command_segments(odk_dma_command *cmd, uint64_t first, odk_dma_segment *out,
                             uint64_t max, uint64_t *got)
{
    if (!cmd || !got || (max && !out))
        return ODK_E_INVALID;
    int st = ODK_OK;
    pthread_mutex_lock(&cmd->lock);
    if (!cmd->prepared) {
        st = ODK_E_STATE;
        goto out;
    }
    uint64_t total = cmd->first_segment[cmd->n_chunks];
    if (first > total) {
        st = ODK_E_INVALID;
        goto out;
    }
    /* The chunk holding segment first: the last one starting at or before it. */
    uint64_t lo = 0, hi = cmd->n_chunks;
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (cmd->first_segment[mid] <= first)
            lo = mid;
        else
            hi = mid;
    }
    uint64_t n = 0, chunk = lo, k = first - cmd->first_segment[lo];
    for (; n < max && first + n < total; n++) {
        if (first + n == cmd->first_segment[chunk + 1]) {
            chunk++;
            k = 0;
        }
        uint64_t skip = k * cmd->piece, left = cmd->chunks[chunk].length - skip;
        out[n] = (odk_dma_segment){cmd->chunks[chunk].address + skip,
                                   left < cmd->piece ? left : cmd->piece};
        k++;
    }
    *got = n;
out:
    pthread_mutex_unlock(&cmd->lock);
    return st;
}

int odk_dma_command_complete(odk_dma_command *cmd)
{
    if (!cmd)
        return ODK_E_INVALID;
    pthread_mutex_lock(&cmd->lock);
    if (cmd->prepared)
        unprepare(cmd);
    pthread_mutex_unlock(&cmd->lock);
    return ODK_OK;
}
