/* SPDX-License-Identifier: MIT */
/* Checking one call request before any driver code sees it (stories 4 and
 * 10: bad arguments get an error, never a crash inside the framework).
 * Pure, so that the fuzzer runs the very checks the runtime runs. */
#include "runtime/call_check.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/fastcall.h"
#include "runtime/why.h"


/* The mailbox request's own length, from its header, if the area holds
 * it.  Checked before anything else, without overflow: the header is the
 * app's to write. */
static int mailbox_framing(const struct wire_call *c, size_t area, size_t *len, char *why,
                           size_t why_len)
{
    if (c->scalar_in_count > ODK_MAX_SCALARS || c->memory_count > ODK_MAX_CALL_MEMORY) {
        why_say(why, why_len, "call mailbox request with %u scalar%s and %u memory range%s",
            c->scalar_in_count, why_s(c->scalar_in_count), c->memory_count,
            why_s(c->memory_count));
        return ODK_E_PROTOCOL;
    }
    uint64_t fixed = sizeof *c + (uint64_t)c->scalar_in_count * 8 +
                     (uint64_t)c->memory_count * sizeof(struct wire_memory_ref);
    if (fixed > area || c->struct_in_len > area - fixed) {
        why_say(why, why_len, "call mailbox request is larger than its %zu-byte area", area);
        return ODK_E_PROTOCOL;
    }
    *len = (size_t)(fixed + c->struct_in_len);
    return ODK_OK;
}

/* Resolves memory range i against the app's buffers. */
static int check_range(const struct wire_memory_ref *ref, uint32_t i, call_buffer_find find,
                       void *find_ctx, odk_memory_range *out, char *why, size_t why_len)
{
    uint64_t len = 0;
    odk_memory *m = find ? find(find_ctx, ref->id, &len) : NULL;
    if (!m) {
        why_say(why, why_len, "memory range %u names buffer %u, which is not registered", i, ref->id);
        return ODK_E_NOT_FOUND;
    }
    if (ref->offset > len || ref->length > len - ref->offset) {
        why_say(why, why_len, "memory range %u [%llu, +%llu) is outside buffer %u (%llu bytes)", i,
            (unsigned long long)ref->offset, (unsigned long long)ref->length, ref->id,
            (unsigned long long)len);
        return ODK_E_INVALID;
    }
    *out = (odk_memory_range){m, ref->offset, ref->length};
    return ODK_OK;
}

int call_check(enum call_encoding enc, const uint8_t *in, size_t in_len, const odk_method *table,
               uint32_t n_methods, call_buffer_find find, void *find_ctx, struct call_view *out,
               char *why, size_t why_len)
{
    struct wire_call c;
    why_say(why, why_len, "ok");
    if (in_len < sizeof c) {
        why_say(why, why_len, "call body is %zu bytes, shorter than its %zu-byte header", in_len,
            sizeof c);
        return ODK_E_PROTOCOL;
    }
    /* One copy of the header: on the mailbox the app may rewrite it while
     * we look, and what is checked must be what is used. */
    memcpy(&c, in, sizeof c);
    size_t body_len = in_len;
    if (enc == CALL_MAILBOX) {
        int st = mailbox_framing(&c, in_len, &body_len, why, why_len);
        if (st < 0)
            return st;
    }

    int st = odk_method_check(table, n_methods, c.selector, c.scalar_in_count, c.struct_in_len,
                              c.scalar_out_max, c.struct_out_max, why, why_len);
    if (st < 0)
        return st;
    const odk_method *meth = &table[c.selector];
    if (c.memory_count > ODK_MAX_CALL_MEMORY) {
        why_say(why, why_len, "selector %u: more than ODK_MAX_CALL_MEMORY (%u) memory ranges",
            c.selector, ODK_MAX_CALL_MEMORY);
        return ODK_E_LIMIT;
    }
    if (meth->memory != ODK_VARIABLE && meth->memory != c.memory_count) {
        why_say(why, why_len, "selector %u: expected %u memory range%s, got %u", c.selector,
            meth->memory, why_s(meth->memory), c.memory_count);
        return ODK_E_BAD_ARGUMENTS;
    }
    /* Bounded now: scalar_in_count <= ODK_MAX_SCALARS, memory_count <=
     * ODK_MAX_CALL_MEMORY, struct_in_len <= ODK_MAX_STRUCT. */
    size_t refs_at = sizeof c + (size_t)c.scalar_in_count * 8;
    size_t struct_at = refs_at + (size_t)c.memory_count * sizeof(struct wire_memory_ref);
    if ((uint64_t)struct_at + c.struct_in_len != body_len) {
        why_say(why, why_len, "call body is %zu bytes, its header describes %llu", body_len,
            (unsigned long long)(struct_at + c.struct_in_len));
        return ODK_E_PROTOCOL;
    }
    for (uint32_t i = 0; i < c.memory_count; i++) {
        struct wire_memory_ref ref;
        memcpy(&ref, in + refs_at + i * sizeof ref, sizeof ref);
        st = check_range(&ref, i, find, find_ctx, &out->memory[i], why, why_len);
        if (st < 0)
            return st;
    }
    if (enc == CALL_MAILBOX &&
        sizeof(struct fastcall_reply_hdr) + (uint64_t)c.scalar_out_max * 8 + c.struct_out_max >
            FASTCALL_AREA) {
        why_say(why, why_len, "the outputs do not fit the call mailbox");
        return ODK_E_PROTOCOL;
    }

    out->hdr = c;
    out->method = meth;
    out->scalar_in = (const uint64_t *)(in + sizeof c);
    out->struct_in = c.struct_in_len ? in + struct_at : NULL;
    out->memory_count = c.memory_count;
    out->len = body_len;
    out->scalar_out_count = meth->scalar_out == ODK_VARIABLE ? c.scalar_out_max : meth->scalar_out;
    bool var_out = meth->struct_out == ODK_VARIABLE_SIZE;
    out->struct_out_cap = var_out ? c.struct_out_max : meth->struct_out;
    out->struct_out_len = var_out ? 0 : meth->struct_out;
    return ODK_OK;
}
