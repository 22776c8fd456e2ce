/* SPDX-License-Identifier: MIT */
/* fuzz_nbd — the NBD export's parsers on bytes a client could send: the
 * input is read as a server reads a connection, a stream of option
 * headers with their payloads (NBD_OPT_INFO/GO payloads parsed as such),
 * then, from the first byte that is not an option, a stream of requests
 * with their write payloads.  The first 8 bytes are the export's size.
 *
 * Whatever a parser accepts must be safe to serve: a request the checker
 * passes lies inside the export and a READ fits the payload limit, and an
 * info payload's name and info list lie inside the payload; otherwise the
 * harness aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "families/storage/nbd_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_option(const uint8_t *p, size_t len)
{
    struct nbd_option o;
    if (nbd_option_parse(p, len, &o) < 0)
        return;
    if (o.length > NBD_OPTION_MAX)
        abort();
    size_t have = len - NBD_OPTION_HEADER_SIZE;
    if (o.length > have)
        return;
    const uint8_t *body = p + NBD_OPTION_HEADER_SIZE;
    /* The payload in a buffer of exactly its length, so ASan sees overreads. */
    uint8_t *copy = malloc(o.length ? o.length : 1);
    memcpy(copy, body, o.length);
    const uint8_t *name, *info;
    uint32_t nl;
    uint16_t n;
    if (nbd_info_parse(copy, o.length, &name, &nl, &n, &info) == 0) {
        if (name < copy || name + nl > copy + o.length || info + 2 * (size_t)n != copy + o.length)
            abort();
        volatile uint8_t sink = 0;
        for (uint32_t i = 0; i < nl; i++)
            sink ^= name[i];
        for (uint16_t i = 0; i < n; i++)
            sink ^= (uint8_t)nbd_be16(info + 2 * i);
        (void)sink;
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t export_size = nbd_be64(data);
    size_t off = 8;
    /* options */
    while (size - off >= NBD_OPTION_HEADER_SIZE && nbd_be64(data + off) == NBD_IHAVEOPT) {
        check_option(data + off, size - off);
        uint32_t len = nbd_be32(data + off + 12);
        if (len > size - off - NBD_OPTION_HEADER_SIZE)
            return 0;
        off += NBD_OPTION_HEADER_SIZE + len;
    }
    /* requests */
    while (size - off >= NBD_REQUEST_SIZE) {
        uint8_t hdr[NBD_REQUEST_SIZE];
        memcpy(hdr, data + off, sizeof hdr);
        struct nbd_request r;
        int v = nbd_request_parse(hdr, sizeof hdr, &r);
        if (v < 0)
            return 0; /* the server ends the connection */
        if (r.type == NBD_CMD_WRITE && r.length > NBD_PAYLOAD_MAX)
            abort();
        uint32_t err = nbd_request_check(&r, export_size);
        if (err == 0 && r.type != NBD_CMD_FLUSH &&
            (r.offset > export_size || r.length > export_size - r.offset ||
             (r.type == NBD_CMD_READ && r.length > NBD_PAYLOAD_MAX)))
            abort();
        size_t payload = r.type == NBD_CMD_WRITE ? r.length : 0;
        off += NBD_REQUEST_SIZE;
        if (payload > size - off)
            return 0;
        off += payload;
    }
    return 0;
}
