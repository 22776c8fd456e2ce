/* SPDX-License-Identifier: MIT */
/* fastcall.h — the shared-memory call mailbox between an app and a driver
 * host (one per user-client connection).
 *
 * PERFORMANCE-NOTES.md: any path that sleeps between request and reply
 * costs ~45 us here; spinning on shared memory costs ~0.1 us.  So a sync
 * call goes through this mailbox: the app writes the request (the same
 * layout as a WIRE_CALL body) and bumps req_seq; the driver's queue, which
 * spins briefly when idle, sees it, runs the method writing outputs straight
 * into the reply area, and publishes rep_seq.  Each side spins a bounded,
 * adaptive time and then sleeps: the app on a futex on rep_seq (host_wakes
 * it when app_sleeping), the host in epoll on an eventfd the app writes
 * when host_sleeping.  Dekker-style: set own flag, full fence, re-check.
 *
 * The app is untrusted: the host copies the request header before checking
 * it, and a request the mailbox cannot hold goes over the socket instead.
 */
#ifndef ODK_COMMON_FASTCALL_H
#define ODK_COMMON_FASTCALL_H

#include <stdatomic.h>
#include <stdint.h>

#define FASTCALL_AREA (60u * 1024u) /* bytes of request, and of reply, a mailbox holds */

struct fastcall_reply_hdr {
    int32_t status;
    uint32_t scalar_out_count;
    uint64_t struct_out_len;
};

struct fastcall_shared {
    _Alignas(64) _Atomic uint32_t req_seq;  /* written by the app */
    _Alignas(64) _Atomic uint32_t rep_seq;  /* written by the host; the app's futex */
    _Alignas(64) _Atomic uint32_t host_sleeping;
    _Alignas(64) _Atomic uint32_t app_sleeping;
    _Alignas(64) uint8_t req[FASTCALL_AREA];
    _Alignas(64) uint8_t rep[FASTCALL_AREA];
};

#endif
