/* SPDX-License-Identifier: MIT */
/* fastcall.h — the shared-memory call mailbox between an app and a driver
 * host (one per user-client connection).
 *
 * PERFORMANCE-NOTES.md: any path that sleeps between request and reply
 * costs a wake-up each way (~10-20 us each here); spinning on shared memory
 * costs ~0.1 us but burns a CPU.  So a sync call goes through this
 * mailbox: the app writes the request (the same layout as a WIRE_CALL
 * body), stamps req_ns and bumps req_seq; the driver's queue sees it, runs
 * the method writing outputs straight into the reply area, and publishes
 * rep_seq.  Each side spins only when it predicts the other will answer
 * within its spin window (learned from the gaps it observed), bounded
 * always, and otherwise sleeps at once: the app on a futex on rep_seq (the
 * host wakes it when app_sleeping), the host in its queue's epoll, on an
 * eventfd the app writes when host_sleeping.  Sparse calls thus cost one
 * wake-up each way, as a socket would.  Beside the eventfd the app passes
 * a socket pair's end (the host's queue sleeping in poll() on both), and
 * when the host last served from another CPU (host_cpu) it wakes it with a
 * byte there instead: a socket's wake-up is a sync one, as a socketpair
 * round trip's, so the host may run on the app's CPU, which the app is
 * about to leave, instead of its own idle, halted vCPU being woken
 * (docs/memory.md, section 11).  ODK_FASTCALL_WAKE=futex passes the
 * eventfd alone; =socket the socket pair's end alone, a byte each way.
 * A spinner whose peer last ran on
 * its own CPU (app_cpu, host_cpu) yields that CPU from the first round.
 * Dekker-style: set own flag, full fence, re-check.
 *
 * The counters host_woken and app_wakes are statistics the host keeps for
 * tests (ODK_FASTCALL_STATS, docs/architecture.md); req_ns and the CPUs
 * are hints for the spin predictors, serve_ns for the per-call trace
 * (ODK_FASTCALL_TRACE).  None is trusted for anything else.
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
    _Alignas(64) _Atomic uint32_t req_seq; /* written by the app */
    _Atomic uint64_t req_ns;               /* CLOCK_MONOTONIC when req_seq was bumped */
    _Atomic uint32_t app_cpu;              /* the CPU the app posted from */
    _Alignas(64) _Atomic uint32_t rep_seq; /* written by the host */
    _Alignas(64) _Atomic uint32_t host_sleeping;
    _Atomic uint32_t host_cpu;   /* the CPU the host last served from */
    _Atomic uint64_t serve_ns;   /* CLOCK_MONOTONIC when the host took the last request */
    _Atomic uint32_t host_woken; /* wake-ups of the host through the app's fd */
    _Atomic uint32_t app_wakes;  /* futex wakes (or bytes) the host sent the app */
    _Alignas(64) _Atomic uint32_t app_sleeping;
    _Alignas(64) uint8_t req[FASTCALL_AREA];
    _Alignas(64) uint8_t rep[FASTCALL_AREA];
};

/* The body of the open's verdict (the first message on a user client's
 * channel) when the app's offer of a mailbox came with the open: whether
 * the host took it (ODK_OK) or why not.  A verdict without a body: no
 * offer came with the open, and the app may offer one on the channel
 * (WIRE_FASTPATH). */
struct fastcall_open_verdict {
    int32_t mailbox_status;
    uint32_t reserved;
};

#endif
