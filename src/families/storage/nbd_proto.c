/* SPDX-License-Identifier: MIT */
/* nbd_proto.c — parsing what an NBD client sends (nbd_proto.h). */
#include "families/storage/nbd_proto.h"

int nbd_request_parse(const uint8_t *buf, size_t len, struct nbd_request *r)
{
    if (len < NBD_REQUEST_SIZE || nbd_be32(buf) != NBD_REQUEST_MAGIC)
        return NBD_BAD_MAGIC;
    r->flags = nbd_be16(buf + 4);
    r->type = nbd_be16(buf + 6);
    r->cookie = nbd_be64(buf + 8);
    r->offset = nbd_be64(buf + 16);
    r->length = nbd_be32(buf + 24);
    if (r->type == NBD_CMD_WRITE && r->length > NBD_PAYLOAD_MAX)
        return NBD_TOO_BIG;
    return NBD_OK;
}

uint32_t nbd_request_check(const struct nbd_request *r, uint64_t size)
{
    uint16_t allowed = 0;
    switch (r->type) {
    case NBD_CMD_READ:
        allowed = 0;
        break;
    case NBD_CMD_WRITE:
    case NBD_CMD_TRIM:
        allowed = NBD_CMD_FLAG_FUA;
        break;
    case NBD_CMD_WRITE_ZEROES:
        allowed = NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE;
        break;
    case NBD_CMD_FLUSH:
        return r->offset || r->length || r->flags ? NBD_EINVAL : 0;
    default:
        return NBD_EINVAL;
    }
    if (r->flags & ~allowed)
        return NBD_EINVAL;
    if (r->type == NBD_CMD_READ && r->length > NBD_PAYLOAD_MAX)
        return NBD_EINVAL;
    if (r->offset > size || r->length > size - r->offset)
        return r->type == NBD_CMD_READ ? NBD_EINVAL : NBD_ENOSPC;
    return 0;
}

int nbd_option_parse(const uint8_t *buf, size_t len, struct nbd_option *o)
{
    if (len < NBD_OPTION_HEADER_SIZE || nbd_be64(buf) != NBD_IHAVEOPT)
        return -1;
    o->option = nbd_be32(buf + 8);
    o->length = nbd_be32(buf + 12);
    return o->length > NBD_OPTION_MAX ? -1 : 0;
}

int nbd_info_parse(const uint8_t *buf, size_t len, const uint8_t **name, uint32_t *name_len,
                   uint16_t *n_info, const uint8_t **info)
{
    if (len < 4)
        return -1;
    uint32_t nl = nbd_be32(buf);
    if (nl > len - 4 || len - 4 - nl < 2)
        return -1;
    uint16_t n = nbd_be16(buf + 4 + nl);
    if ((size_t)n * 2 != len - 6 - nl)
        return -1;
    *name = buf + 4;
    *name_len = nl;
    *n_info = n;
    *info = buf + 6 + nl;
    return 0;
}
