/* SPDX-License-Identifier: MIT */
/* call_check.h — the one gate between an app's call bytes and driver code.
 *
 * call_check decodes a call request exactly as it arrives, from the
 * socket (a WIRE_CALL body) or from the call mailbox (the request area of
 * common/fastcall.h, same layout), and checks all of it: the framing, the
 * method table (odk_method_check), the memory-range count, every range
 * against the app's registered buffers, and, for the mailbox, that the
 * offered outputs fit the reply area.  It is pure: no I/O, no driver, no
 * globals, no allocation; any thread.  call.c runs it on both paths, and
 * tests/fuzz/fuzz_call.c fuzzes it directly. */
#ifndef ODK_RUNTIME_CALL_CHECK_H
#define ODK_RUNTIME_CALL_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "common/wire.h"
#include "odk/driver.h"
#include "odk/memory.h"

/* How the request bytes arrived. */
enum call_encoding {
    /* A WIRE_CALL body: the call must fill it exactly. */
    CALL_SOCKET,
    /* A mailbox request area: the call's header says how much of the area
     * it uses, and its offered outputs must fit FASTCALL_AREA. */
    CALL_MAILBOX,
};

/* Looks up the app's registered buffer id: returns its handle (borrowed;
 * handed to the driver in odk_memory_range) and sets *len to its length,
 * or returns NULL when id is not registered.  Must not fail otherwise. */
typedef odk_memory *(*call_buffer_find)(void *ctx, uint32_t id, uint64_t *len);

/* A checked call.  Pointers point into the request bytes (borrowed: on
 * the mailbox the app may rewrite them while the method runs); everything
 * else is a copy, taken once, so what was checked is what is used. */
struct call_view {
    struct wire_call hdr;                         /* the header as checked */
    const odk_method *method;                     /* &table[hdr.selector] */
    const uint64_t *scalar_in;                    /* hdr.scalar_in_count scalars */
    const uint8_t *struct_in;                     /* hdr.struct_in_len bytes; NULL when 0 */
    uint32_t memory_count;                        /* == hdr.memory_count */
    odk_memory_range memory[ODK_MAX_CALL_MEMORY]; /* each inside its buffer */
    size_t len;                                   /* request bytes the call occupies */
    uint32_t scalar_out_count;                    /* output slots the method gets */
    uint64_t struct_out_cap;                      /* output structure room the method gets */
    uint64_t struct_out_len;                      /* its preset length (fixed size, else 0) */
};

/* Decodes and checks one call of in_len bytes at in (untrusted; 8-byte
 * aligned, so scalar_in is).  On ODK_OK fills *out; otherwise *out holds
 * nothing usable, and the function returns,
 * and says in why (may be NULL, cut to why_len) which check failed:
 *   ODK_E_PROTOCOL       framing: shorter than struct wire_call, a body
 *                        whose length disagrees with its header, a mailbox
 *                        request larger than its area or over the scalar
 *                        or range limits, or mailbox outputs over FASTCALL_AREA;
 *   ODK_E_BAD_SELECTOR, ODK_E_BAD_ARGUMENTS, ODK_E_LIMIT
 *                        odk_method_check's, and ODK_E_LIMIT for more than
 *                        ODK_MAX_CALL_MEMORY ranges, ODK_E_BAD_ARGUMENTS
 *                        for a range count the method does not take;
 *   ODK_E_NOT_FOUND      a range names an unregistered buffer;
 *   ODK_E_INVALID        a range lies outside its buffer.
 * find may be NULL (no buffers registered). */
int call_check(enum call_encoding enc, const uint8_t *in, size_t in_len, const odk_method *table,
               uint32_t n_methods, call_buffer_find find, void *find_ctx, struct call_view *out,
               char *why, size_t why_len);

#endif
