/* SPDX-License-Identifier: MIT */
/* nbd_proto.h — the NBD protocol's numbers (fixed newstyle handshake,
 * simple and structured replies) and the parsers of what a client sends.
 * The parsers take bytes from an untrusted peer: they check every length
 * and never read past the buffer they are given. */
#ifndef ODK_STORAGE_NBD_PROTO_H
#define ODK_STORAGE_NBD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define NBD_MAGIC 0x4e42444d41474943ull /* "NBDMAGIC" */
#define NBD_IHAVEOPT 0x49484156454f5054ull
#define NBD_REPLY_MAGIC_OPT 0x3e889045565a9ull
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu

#define NBD_FLAG_FIXED_NEWSTYLE 1u
#define NBD_FLAG_NO_ZEROES 2u

#define NBD_OPT_EXPORT_NAME 1u
#define NBD_OPT_ABORT 2u
#define NBD_OPT_LIST 3u
#define NBD_OPT_STARTTLS 5u
#define NBD_OPT_INFO 6u
#define NBD_OPT_GO 7u
#define NBD_OPT_STRUCTURED_REPLY 8u

#define NBD_REP_ACK 1u
#define NBD_REP_SERVER 2u
#define NBD_REP_INFO 3u
#define NBD_REP_ERR_UNSUP 0x80000001u
#define NBD_REP_ERR_POLICY 0x80000002u
#define NBD_REP_ERR_INVALID 0x80000003u
#define NBD_REP_ERR_UNKNOWN 0x80000006u

#define NBD_INFO_EXPORT 0u
#define NBD_INFO_NAME 1u
#define NBD_INFO_DESCRIPTION 2u
#define NBD_INFO_BLOCK_SIZE 3u

#define NBD_FLAG_HAS_FLAGS (1u << 0)
#define NBD_FLAG_SEND_FLUSH (1u << 2)
#define NBD_FLAG_SEND_FUA (1u << 3)
#define NBD_FLAG_SEND_TRIM (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_CAN_MULTI_CONN (1u << 8)

#define NBD_CMD_READ 0u
#define NBD_CMD_WRITE 1u
#define NBD_CMD_DISC 2u
#define NBD_CMD_FLUSH 3u
#define NBD_CMD_TRIM 4u
#define NBD_CMD_WRITE_ZEROES 6u

#define NBD_CMD_FLAG_FUA (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE (1u << 1)

#define NBD_REPLY_FLAG_DONE 1u
#define NBD_REPLY_TYPE_NONE 0u
#define NBD_REPLY_TYPE_OFFSET_DATA 1u
#define NBD_REPLY_TYPE_ERROR 32769u

#define NBD_EPERM 1u
#define NBD_EIO 5u
#define NBD_ENOMEM 12u
#define NBD_EINVAL 22u
#define NBD_ENOSPC 28u
#define NBD_ENOTSUP 95u
#define NBD_ESHUTDOWN 108u

#define NBD_REQUEST_SIZE 28
#define NBD_OPTION_HEADER_SIZE 16
/* The largest option payload the server reads (a name and info requests
 * need far less); a larger one ends the connection. */
#define NBD_OPTION_MAX 4096
/* The largest READ or WRITE payload (advertised as the maximum block
 * size); a larger WRITE ends the connection, a larger READ gets EINVAL. */
#define NBD_PAYLOAD_MAX (4u << 20)

struct nbd_request {
    uint16_t flags, type;
    uint64_t cookie, offset;
    uint32_t length;
};

/* What a request means for the server, once parsed. */
enum nbd_verdict {
    NBD_OK = 0,         /* serve it */
    NBD_BAD_MAGIC = -1, /* garbage: end the connection */
    NBD_TOO_BIG = -2,   /* a WRITE whose payload is over NBD_PAYLOAD_MAX: end */
};

/* Parses the 28-byte request header at buf (len must be at least
 * NBD_REQUEST_SIZE; shorter: NBD_BAD_MAGIC).  Fills *r. */
int nbd_request_parse(const uint8_t *buf, size_t len, struct nbd_request *r);

/* Checks a parsed request against an export of size bytes and the flags
 * negotiated; returns 0 to serve it, or the NBD error to answer with
 * (EINVAL for an unknown command or flag or a range past the end of a
 * read, ENOSPC past the end of a write). */
uint32_t nbd_request_check(const struct nbd_request *r, uint64_t size);

struct nbd_option {
    uint32_t option, length;
};

/* Parses a 16-byte option header (IHAVEOPT, option, length).  Returns 0,
 * or -1 for a bad magic or a length over NBD_OPTION_MAX. */
int nbd_option_parse(const uint8_t *buf, size_t len, struct nbd_option *o);

/* Parses an NBD_OPT_INFO / NBD_OPT_GO payload: the export name (pointer
 * into buf, not terminated) and the information types asked for.  Returns
 * 0, or -1 when the lengths inside disagree with len. */
int nbd_info_parse(const uint8_t *buf, size_t len, const uint8_t **name, uint32_t *name_len,
                   uint16_t *n_info, const uint8_t **info);

static inline uint16_t nbd_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t nbd_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t nbd_be64(const uint8_t *p)
{
    return (uint64_t)nbd_be32(p) << 32 | nbd_be32(p + 4);
}
static inline uint8_t *nbd_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}
static inline uint8_t *nbd_put32(uint8_t *p, uint32_t v)
{
    nbd_put16(p, (uint16_t)(v >> 16));
    nbd_put16(p + 2, (uint16_t)v);
    return p + 4;
}
static inline uint8_t *nbd_put64(uint8_t *p, uint64_t v)
{
    nbd_put32(p, (uint32_t)(v >> 32));
    nbd_put32(p + 4, (uint32_t)v);
    return p + 8;
}

#endif
