/* SPDX-License-Identifier: MIT */
/* call_checks.h — what fuzz_call and fuzz_wire check about an answer of
 * the runtime's call_check (src/runtime/call_check.c, linked as is).
 * Included by exactly one target each; the target defines FUZZ_NAME
 * first.
 *
 * On ODK_OK: every decoded pointer and length lies inside the input, the
 * call fits the method's table entry and the documented limits, every
 * memory range is the registered buffer its id names and lies inside it,
 * the mailbox outputs fit FASTCALL_AREA, and encoding the view again
 * gives back the input's bytes (all but the refs' reserved words), so
 * nothing was decoded from the wrong place.  On an error: the status is
 * one call_check documents, the sentence says something, and the input
 * really has the fault the status names. */
#ifndef ODK_FUZZ_CALL_CHECKS_H
#define ODK_FUZZ_CALL_CHECKS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fastcall.h"
#include "odk/driver.h"
#include "common/wire.h"
#include "odk/status.h"
#include "runtime/call_check.h"

/* The method table both targets check calls against: fixed, variable and
 * hole entries, structure and memory limits. */
static int fn(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    return ODK_OK;
}

/* Designated fields: odk_method may grow more. */
#define M(f, si, so, sti, sto, mem)                                                                \
    {                                                                                              \
        .fn = f, .scalar_in = si, .scalar_out = so, .struct_in = sti, .struct_out = sto,           \
        .memory = mem                                                                              \
    }

static const odk_method table[] = {
    M(fn, 0, 0, 0, 0, 0),
    M(fn, 2, 1, 0, 0, 1),
    M(fn, ODK_VARIABLE, ODK_VARIABLE, ODK_VARIABLE_SIZE, ODK_VARIABLE_SIZE, ODK_VARIABLE),
    M(fn, 0, 0, 16, 32, 0),
    M(NULL, 0, 0, 0, 0, 0), /* a hole */
    M(fn, 1, 0, ODK_VARIABLE_SIZE, 8, 2),
    M(fn, ODK_VARIABLE, 3, 4096, ODK_VARIABLE_SIZE, ODK_MAX_CALL_MEMORY),
};
#define N_TABLE ((uint32_t)(sizeof table / sizeof table[0]))


static void die(const char *what)
{
    fprintf(stderr, "%s: %s\n", FUZZ_NAME, what);
    abort();
}

static volatile uint8_t sink;

/* [p, p + n) lies within [in, in + len). */
static int within(const void *p, uint64_t n, const uint8_t *in, size_t len)
{
    const uint8_t *q = p;
    return q >= in && q <= in + len && n <= (uint64_t)(in + len - q);
}

static const struct wire_call *header_of(const uint8_t *in, struct wire_call *c)
{
    memcpy(c, in, sizeof *c);
    return c;
}

static void check_ok(enum call_encoding enc, const uint8_t *in, size_t in_len,
                     const odk_method *table, uint32_t n, call_buffer_find find, void *ctx,
                     const struct call_view *v)
{
    struct wire_call c;
    header_of(in, &c);
    if (memcmp(&v->hdr, &c, sizeof c) != 0)
        die("OK, but the view's header is not the input's");
    if (v->len < sizeof c || v->len > in_len)
        die("OK with a call length outside the input");
    if (enc == CALL_SOCKET && v->len != in_len)
        die("OK on the socket for a call that does not fill its body");
    if (c.selector >= n || !table[c.selector].fn || v->method != &table[c.selector])
        die("OK for a selector that is not in the table");
    const odk_method *m = v->method;

    /* The shape against the table and the limits. */
    if (c.scalar_in_count > ODK_MAX_SCALARS || c.scalar_out_max > ODK_MAX_SCALARS ||
        c.struct_in_len > ODK_MAX_STRUCT || c.struct_out_max > ODK_MAX_STRUCT ||
        c.memory_count > ODK_MAX_CALL_MEMORY)
        die("OK for a call over ODK_MAX_SCALARS / ODK_MAX_STRUCT / ODK_MAX_CALL_MEMORY");
    if ((m->scalar_in != ODK_VARIABLE && m->scalar_in != c.scalar_in_count) ||
        (m->struct_in != ODK_VARIABLE_SIZE && m->struct_in != c.struct_in_len) ||
        (m->memory != ODK_VARIABLE && m->memory != c.memory_count))
        die("OK for inputs the method does not take");
    if (v->scalar_out_count > c.scalar_out_max || v->struct_out_cap > c.struct_out_max ||
        v->struct_out_len > v->struct_out_cap)
        die("OK with more output room than the app offered");
    if ((m->scalar_out != ODK_VARIABLE && v->scalar_out_count != m->scalar_out) ||
        (m->struct_out != ODK_VARIABLE_SIZE &&
         (v->struct_out_cap != m->struct_out || v->struct_out_len != m->struct_out)))
        die("OK with output room other than the table's fixed size");
    if (enc == CALL_MAILBOX &&
        sizeof(struct fastcall_reply_hdr) + (uint64_t)c.scalar_out_max * 8 + c.struct_out_max >
            FASTCALL_AREA)
        die("OK for mailbox outputs that overflow the reply area");

    /* Every pointer inside the call's bytes, and every byte readable. */
    const uint8_t *end = in + v->len;
    if (!within(v->scalar_in, (uint64_t)c.scalar_in_count * 8, in, v->len))
        die("scalar inputs outside the input");
    if (c.struct_in_len ? (!within(v->struct_in, c.struct_in_len, in, v->len) ||
                           v->struct_in + c.struct_in_len != end)
                        : v->struct_in != NULL)
        die("input structure outside the input, or not at its end");
    if (v->memory_count != c.memory_count)
        die("OK with a memory count other than the header's");
    uint8_t acc = 0;
    for (uint32_t i = 0; i < c.scalar_in_count; i++)
        acc ^= (uint8_t)v->scalar_in[i];
    for (uint64_t i = 0; i < c.struct_in_len; i++)
        acc ^= v->struct_in[i];

    /* Encode the view again: the same bytes must come back. */
    size_t refs_at = sizeof c + (size_t)c.scalar_in_count * 8;
    uint8_t *again = malloc(v->len);
    if (!again)
        die("out of memory");
    memcpy(again, &v->hdr, sizeof c);
    memcpy(again + sizeof c, v->scalar_in, (size_t)c.scalar_in_count * 8);
    for (uint32_t i = 0; i < v->memory_count; i++) {
        struct wire_memory_ref ref;
        memcpy(&ref, in + refs_at + i * sizeof ref, sizeof ref);
        const odk_memory_range *r = &v->memory[i];
        uint64_t blen = 0;
        if (!r->memory || r->memory != find(ctx, ref.id, &blen))
            die("a memory range is not the registered buffer its id names");
        if (r->offset > blen || r->length > blen - r->offset)
            die("an accepted memory range lies outside its buffer");
        ref.offset = r->offset;
        ref.length = r->length;
        memcpy(again + refs_at + i * sizeof ref, &ref, sizeof ref);
        acc ^= (uint8_t)r->offset;
    }
    if (c.struct_in_len)
        memcpy(again + v->len - c.struct_in_len, v->struct_in, c.struct_in_len);
    if (memcmp(again, in, v->len) != 0)
        die("encoding the view again does not give the input back");
    free(again);
    sink = acc;
}

/* The input has the fault an error names (a check that refuses too much
 * is a bug as well). */
static void check_error(enum call_encoding enc, const uint8_t *in, size_t in_len,
                        const odk_method *table, uint32_t n, call_buffer_find find, void *ctx,
                        int st, const char *why, size_t why_len)
{
    if (!memchr(why, '\0', why_len) || !why[0] || strcmp(why, "ok") == 0)
        die("an error without a sentence");
    /* One of a thing is singular: "expected 1 scalar input", never
     * "expected 1 scalar inputs" (why_s in runtime/why.h). */
    static const char *const one_many[] = {" 1 scalar inputs", " 1 scalars", " 1 memory ranges"};
    for (size_t i = 0; i < sizeof one_many / sizeof one_many[0]; i++)
        if (strstr(why, one_many[i]))
            die("a refusal says \"1\" with a plural noun");
    struct wire_call c = {0};
    if (in_len >= sizeof c)
        header_of(in, &c);
    size_t refs_at = sizeof c + (size_t)c.scalar_in_count * 8;
    int fault = 0;
    switch (st) {
    case ODK_E_PROTOCOL:
    case ODK_E_LIMIT:
    case ODK_E_BAD_ARGUMENTS:
        return;
    case ODK_E_BAD_SELECTOR:
        if (in_len < sizeof c || (c.selector < n && table[c.selector].fn))
            die("ODK_E_BAD_SELECTOR for a selector in the table");
        return;
    case ODK_E_NOT_FOUND:
    case ODK_E_INVALID:
        if (c.memory_count > ODK_MAX_CALL_MEMORY ||
            refs_at + (size_t)c.memory_count * sizeof(struct wire_memory_ref) > in_len)
            die("a memory range error for ranges the input does not hold");
        for (uint32_t i = 0; i < c.memory_count && !fault; i++) {
            struct wire_memory_ref ref;
            memcpy(&ref, in + refs_at + i * sizeof ref, sizeof ref);
            uint64_t blen = 0;
            odk_memory *m = find(ctx, ref.id, &blen);
            if (!m)
                fault = ODK_E_NOT_FOUND; /* the first bad range is the one named */
            else if (ref.offset > blen || ref.length > blen - ref.offset)
                fault = ODK_E_INVALID;
        }
        if (fault != st)
            die("a memory range error that is not the first bad range's");
        return;
    default:
        fprintf(stderr, "%s: call_check gave %d (%s)\n", FUZZ_NAME, st, odk_status_name(st));
        die("a status call_check does not document");
    }
    (void)enc;
}

/* Runs the real call_check and checks its answer; returns its status. */
static int run_call_check(enum call_encoding enc, const uint8_t *in, size_t in_len,
                          const odk_method *table, uint32_t n, call_buffer_find find, void *ctx,
                          struct call_view *v)
{
    char why[200];
    int st = call_check(enc, in, in_len, table, n, find, ctx, v, why, sizeof why);
    if (st == ODK_OK)
        check_ok(enc, in, in_len, table, n, find, ctx, v);
    else
        check_error(enc, in, in_len, table, n, find, ctx, st, why, sizeof why);
    return st;
}

#endif
