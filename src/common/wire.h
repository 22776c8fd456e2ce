/* SPDX-License-Identifier: MIT */
/* wire.h — odk's message framing on AF_UNIX SOCK_SEQPACKET sockets.
 *
 * Every message is one packet: a fixed header, then a body, plus up to
 * WIRE_MAX_FDS file descriptors (SCM_RIGHTS).  Bodies larger than
 * WIRE_MAX_INLINE travel in a sealed memfd attached to the packet (flag
 * WIRE_F_BODY_IN_FD); wire_send/wire_recv do this transparently, so callers
 * never meet a size limit below WIRE_MAX_BODY.
 *
 * Control traffic (odkctl/libodk <-> odkd, odkd <-> driver hosts) carries
 * an encoded odk_value dictionary as its body.  User-client calls (app <->
 * driver host) use the binary layout of struct wire_call.
 *
 * Input is untrusted: wire_recv checks the magic, the lengths and the fds
 * and answers ODK_E_PROTOCOL for anything malformed; it closes any fds that
 * came with a rejected packet.
 */
#ifndef ODK_COMMON_WIRE_H
#define ODK_COMMON_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "odk/value.h"

#define WIRE_MAGIC 0x314b444fu /* "ODK1" little-endian */
#define WIRE_MAX_FDS 4
#define WIRE_MAX_INLINE (48u * 1024u)        /* larger bodies go through a memfd */
#define WIRE_MAX_BODY (1024ull * 1024 * 1024) /* 1 GiB: largest message body */

enum wire_type {
    WIRE_REQUEST = 1, /* body: dict {"op": ..., ...} */
    WIRE_REPLY = 2,   /* same seq as the request; status + optional dict */
    WIRE_EVENT = 3,   /* unsolicited: dict {"event": ..., ...} */
    WIRE_CALL = 4,    /* user-client method call, struct wire_call + data */
    WIRE_CALL_REPLY = 5,
    /* User-client channel, app -> host; each answered by a WIRE_REPLY. */
    WIRE_MAP_BUFFER = 6,    /* struct wire_buffer + the buffer's memfd */
    WIRE_UNMAP_BUFFER = 7,  /* struct wire_buffer (id only) */
    WIRE_FASTPATH = 8,      /* fds: the call mailbox memfd, the wake eventfd or socket */
    WIRE_CLIENT_MEMORY = 9, /* uint32 type -> reply: struct wire_buffer + memfd */
    WIRE_CLIENT_DATA_QUEUE = 10, /* uint32 type -> reply: uint32 size + memfd, 2 eventfds */
};

enum wire_flags {
    WIRE_F_BODY_IN_FD = 1, /* the body is in fds[0], a memfd of body_len bytes */
};

struct wire_hdr {
    uint32_t magic;
    uint16_t type;
    uint16_t flags;
    uint32_t seq;
    int32_t status;
    uint64_t body_len;
};

/* A received message.  body points into buf (owned); fds are owned by the
 * message until taken with wire_msg_take_fd. */
typedef struct wire_msg {
    struct wire_hdr hdr;
    uint8_t *body;
    size_t body_len;
    int fds[WIRE_MAX_FDS];
    size_t n_fds;
    uint8_t *buf; /* receive buffer (WIRE_MAX_INLINE + header) */
    void *map;    /* mapping of an out-of-line body, or NULL */
    size_t map_len;
} wire_msg;

void wire_msg_init(wire_msg *m);
/* Closes untaken fds, unmaps, frees the buffer. */
void wire_msg_release(wire_msg *m);
/* Returns fds[i] and forgets it (caller now owns it), or -1. */
int wire_msg_take_fd(wire_msg *m, size_t i);

/* Sends one message.  Blocks (the sockets are blocking unless the caller
 * made them not).  ODK_E_DISCONNECTED when the peer is gone, ODK_E_AGAIN
 * on a non-blocking socket that is full, ODK_E_LIMIT above WIRE_MAX_BODY. */
int wire_send(int sock, uint16_t type, uint32_t seq, int32_t status, const void *body,
              size_t body_len, const int *fds, size_t n_fds);
/* Two-part body (header struct + payload) without an extra copy. */
int wire_sendv(int sock, uint16_t type, uint32_t seq, int32_t status, const void *a, size_t a_len,
               const void *b, size_t b_len, const void *c, size_t c_len, const int *fds,
               size_t n_fds);
/* Encodes body (may be NULL) and sends it. */
int wire_send_value(int sock, uint16_t type, uint32_t seq, int32_t status, const odk_value *body,
                    const int *fds, size_t n_fds);

/* Receives one message into m (reusing its buffer).  ODK_E_DISCONNECTED at
 * end of stream, ODK_E_AGAIN on a non-blocking socket with nothing to read,
 * ODK_E_PROTOCOL for a malformed packet (already consumed and discarded). */
int wire_recv(int sock, wire_msg *m);
/* Decodes m's body as a dictionary (an empty body gives an empty dict).
 * Caller owns *out.  ODK_E_PROTOCOL when it is not a valid dictionary. */
int wire_msg_value(const wire_msg *m, odk_value **out);

/* A connected pair of SOCK_SEQPACKET sockets, close-on-exec. */
int wire_socketpair(int sv[2]);

/* User-client call layout.  Request body: struct wire_call, then
 * scalar_in_count uint64 scalars, then memory_count struct
 * wire_memory_ref, then struct_in_len bytes.  Reply body:
 * struct wire_call_reply, then scalar_out_count scalars, then
 * struct_out_len bytes; the reply's header status is the call's status.
 * A call the host's check refused (status < 0) carries the check's
 * sentence as its bytes, at most CALL_REFUSAL_MAX, no scalars; so does a
 * refused call's reply in the mailbox (common/fastcall.h). */
#define CALL_REFUSAL_MAX 255u
struct wire_call {
    uint32_t selector;
    uint32_t scalar_in_count;
    uint32_t scalar_out_max;
    uint32_t memory_count; /* struct wire_memory_ref entries after the scalars */
    uint64_t struct_in_len;
    uint64_t struct_out_max;
};

/* A range of a buffer the app registered (WIRE_MAP_BUFFER) on this channel. */
struct wire_memory_ref {
    uint32_t id;
    uint32_t reserved;
    uint64_t offset;
    uint64_t length;
};

struct wire_buffer {
    uint32_t id;        /* the app's name for it; for WIRE_CLIENT_MEMORY, the type */
    uint32_t direction; /* ODK_MEM_IN / OUT / INOUT (odk/memory.h) */
    uint64_t length;
};

struct wire_call_reply {
    uint32_t scalar_out_count;
    uint32_t reserved;
    uint64_t struct_out_len;
};

#endif
