/* SPDX-License-Identifier: MIT */
/* fuzz_net — the network family's checks of what a driver hands back
 * (docs/net.md "Completions are checked"), on a driver that does anything:
 * the input is a stream of operations, each an opcode byte and its bytes,
 *   0  a TX completion {buffer, length}, through the TX completion ring,
 *   1  an RX completion {buffer, length} with the virtio-net header the
 *      driver wrote in the buffer (offloads on),
 *   2  the driver scribbling on the shared memory of the completion rings
 *      (indices or records: it owns their producer side),
 *   3  a received frame through the receive filter, with filter settings,
 * against the family's own pool.c, vnet.c and filter.c.  The harness
 * keeps the family's bookkeeping as iface.c does and aborts when a check
 * lets through what it should not: a buffer taken back that the driver
 * did not hold, a pool whose free list repeats a buffer, a header accepted
 * whose checksum or headers lie past the frame, a frame accepted on a down
 * interface or for another host. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "families/net/filter.h"
#include "families/net/pool.h"
#include "families/net/vnet.h"
#include "odk/ring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define COUNT 16u
#define HDR ODK_NET_VNET_HEADER
#define BUF (HDR + 64u)

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void check_pool(const struct net_pool *p)
{
    uint8_t seen[COUNT] = {0};
    if (p->n_free > p->count)
        abort();
    for (uint32_t i = 0; i < p->n_free; i++) {
        uint32_t b = p->free[i];
        if (b >= p->count || seen[b]++ || p->owner[b] != NET_FAMILY)
            abort();
    }
}

/* As iface.c: a completion goes through its ring, then is checked. */
static int complete(odk_ring *ring, struct net_pool *pool, odk_net_packet d, enum net_owner as,
                    uint32_t min_len, odk_net_packet *out)
{
    int st = net_ring_push(ring, &d);
    if (st == ODK_OK)
        st = net_ring_pop(ring, out);
    if (st < 0)
        return ODK_E_PROTOCOL;
    uint8_t before = out->buffer < pool->count ? pool->owner[out->buffer] : 0xff;
    st = net_pool_take_back(pool, out, as, min_len);
    if (st != ODK_E_NOT_FOUND && before != as)
        abort(); /* took back a buffer the driver did not hold that way */
    if (st == ODK_OK && (out->length < min_len || out->length > pool->size))
        abort();
    return st;
}

static void lend_all(struct net_pool *pool, enum net_owner to)
{
    uint32_t b;
    while (pool->n_free > 0 && net_pool_get(pool, &b) == ODK_OK)
        net_pool_lend(pool, b, to);
}

static void check_vnet(const uint8_t *buf, uint32_t len)
{
    odk_net_vnet_header h;
    memcpy(&h, buf, sizeof h);
    size_t flen = len - HDR;
    if (net_vnet_check(&h, flen) < 0)
        return;
    if ((h.flags & ODK_NET_VNET_F_NEEDS_CSUM) &&
        (h.csum_start < ODK_NET_ETHER_HEADER || (size_t)h.csum_start + h.csum_offset + 2 > flen))
        abort();
    unsigned type = h.gso_type & ~ODK_NET_GSO_ECN;
    if (type != ODK_NET_GSO_NONE && ((type != ODK_NET_GSO_TCPV4 && type != ODK_NET_GSO_TCPV6) ||
                                     !h.gso_size || h.hdr_len > flen))
        abort();
    if (type == ODK_NET_GSO_NONE && (h.gso_size || h.gso_type))
        abort();
}

static void check_filter(const uint8_t *p, size_t n)
{
    if (n < 8)
        return;
    static struct net_filter f;
    memset(&f, 0, sizeof f);
    f.up = p[0] & 1;
    f.promisc = p[0] & 2;
    f.allmulti = p[0] & 4;
    memcpy(f.mac, p + 1, 6);
    f.n_mc = p[7] % 4;
    p += 8;
    n -= 8;
    for (uint32_t i = 0; i < f.n_mc; i++) {
        if (n < 6)
            return;
        memcpy(f.mc[i], p, 6);
        p += 6;
        n -= 6;
    }
    uint8_t *frame = malloc(n ? n : 1); /* exactly the frame: ASan sees overreads */
    memcpy(frame, p, n);
    bool ok = net_filter_accepts(&f, frame, n);
    if (ok && (!f.up || n < ODK_NET_ETHER_HEADER))
        abort();
    if (ok && !f.promisc && !(frame[0] & 1) && memcmp(frame, f.mac, 6) != 0)
        abort();
    free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t *bufs;
    if (!bufs)
        bufs = malloc((size_t)COUNT * BUF);
    uint32_t ring_size = net_ring_size(COUNT);
    size_t ring_bytes = odk_ring_bytes(ring_size);
    uint8_t *mem = calloc(2, ring_bytes);
    odk_ring txc, rxc;
    struct net_pool pool;
    if (!mem || odk_ring_format(&txc, mem, ring_bytes, ring_size) < 0 ||
        odk_ring_format(&rxc, mem + ring_bytes, ring_bytes, ring_size) < 0 ||
        net_pool_init(&pool, COUNT, BUF) < 0)
        abort();
    /* Half the pool with the driver for TX, half for RX. */
    for (uint32_t i = 0; i < COUNT; i++) {
        uint32_t b;
        if (net_pool_get(&pool, &b) < 0)
            abort();
        net_pool_lend(&pool, b, i % 2 ? NET_DRIVER_RX : NET_DRIVER_TX);
    }
    size_t off = 0;
    while (off < size) {
        uint8_t op = data[off++] % 4;
        const uint8_t *p = data + off;
        size_t left = size - off;
        if (op == 0 || op == 1) {
            size_t need = 8 + (op == 1 ? HDR : 0);
            if (left < need)
                break;
            odk_net_packet d = {rd32(p), rd32(p + 4)}, got;
            enum net_owner as = op == 0 ? NET_DRIVER_TX : NET_DRIVER_RX;
            if (op == 1 && d.buffer < COUNT)
                memcpy(bufs + (size_t)d.buffer * BUF, p + 8, HDR);
            int st = complete(op == 0 ? &txc : &rxc, &pool, d, as,
                              op == 0 ? 0 : ODK_NET_MIN_FRAME + HDR, &got);
            if (st == ODK_OK && op == 1)
                check_vnet(bufs + (size_t)got.buffer * BUF, got.length);
            if (st == ODK_OK || st == ODK_E_INVALID)
                net_pool_put(&pool, got.buffer);
            off += need;
            /* The family lends what is free again, as its pump does. */
            lend_all(&pool, (off & 1) ? NET_DRIVER_RX : NET_DRIVER_TX);
        } else if (op == 2) {
            if (left < 3)
                break;
            size_t at = ((size_t)p[0] | (size_t)p[1] << 8) % (2 * ring_bytes);
            mem[at] = p[2];
            off += 3;
        } else {
            if (left < 1)
                break;
            size_t n = p[0];
            if (n > left - 1)
                n = left - 1;
            check_filter(p + 1, n);
            off += 1 + n;
        }
        check_pool(&pool);
    }
    net_pool_fini(&pool);
    free(mem);
    return 0;
}
