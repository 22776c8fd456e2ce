/* SPDX-License-Identifier: MIT */
/* fuzz_call — call_check, the runtime's one gate between an app's call
 * bytes and driver code (src/runtime/call_check.c, linked as is), on both
 * encodings: every input is checked as a WIRE_CALL body from the socket
 * and as the mailbox's request area.  call_checks.h checks each answer;
 * then the two encodings must agree: a call the socket accepts is
 * accepted from the mailbox unless its outputs overflow the reply area,
 * and a call the mailbox accepts is accepted from the socket as the body
 * of exactly the bytes the mailbox used, decoded the same.
 *
 * Input: one mode byte, the app's registered buffers, then the request.
 *   mode bits 0-2: registered buffers (0-7), each 4 bytes of id and 8 of
 *       length (a repeated id is skipped, as the runtime refuses it);
 *   mode bit 3: the mailbox area is a full FASTCALL_AREA holding the
 *       request then zeros, else exactly the request's bytes (so ASan
 *       sees a read one byte past the area). */
#define FUZZ_NAME "fuzz_call"
#include "call_checks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


#define MAX_BUFS 7
struct bufs {
    size_t n;
    uint32_t id[MAX_BUFS];
    uint64_t len[MAX_BUFS];
};

/* The handle of buffer i is &b->id[i]. */
static odk_memory *find(void *ctx, uint32_t id, uint64_t *len)
{
    struct bufs *b = ctx;
    for (size_t i = 0; i < b->n; i++) {
        if (b->id[i] == id) {
            *len = b->len[i];
            return (odk_memory *)&b->id[i];
        }
    }
    return NULL;
}

static uint8_t *area; /* one FASTCALL_AREA, kept between inputs */

static void same_view(const struct call_view *a, const struct call_view *b)
{
    if (memcmp(&a->hdr, &b->hdr, sizeof a->hdr) != 0 || a->method != b->method ||
        a->scalar_in != b->scalar_in || a->struct_in != b->struct_in ||
        a->memory_count != b->memory_count || a->len != b->len ||
        a->scalar_out_count != b->scalar_out_count || a->struct_out_cap != b->struct_out_cap ||
        a->struct_out_len != b->struct_out_len ||
        memcmp(a->memory, b->memory, a->memory_count * sizeof a->memory[0]) != 0)
        die("the socket and the mailbox decode the same call differently");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++, size--;
    struct bufs b = {0};
    for (unsigned k = mode & 7; k > 0 && size >= 12; k--) {
        uint32_t id;
        uint64_t len;
        memcpy(&id, data, 4);
        memcpy(&len, data + 4, 8);
        data += 12, size -= 12;
        uint64_t ignored;
        if (find(&b, id, &ignored))
            continue;
        b.id[b.n] = id;
        b.len[b.n++] = len;
    }

    /* An exact, aligned copy: the runtime's bodies are 8-byte aligned. */
    uint8_t *in = malloc(size ? size : 1);
    if (!in)
        die("out of memory");
    if (size)
        memcpy(in, data, size);
    const uint8_t *mb = in;
    size_t mb_len = size;
    if ((mode & 8) && size <= FASTCALL_AREA) {
        if (!area && !(area = malloc(FASTCALL_AREA)))
            die("out of memory");
        if (size)
            memcpy(area, in, size);
        memset(area + size, 0, FASTCALL_AREA - size);
        mb = area;
        mb_len = FASTCALL_AREA;
    }

    struct call_view vs, vm, again;
    int ss = run_call_check(CALL_SOCKET, in, size, table, N_TABLE, find, &b, &vs);
    int sm = run_call_check(CALL_MAILBOX, mb, mb_len, table, N_TABLE, find, &b, &vm);

    if (ss == ODK_OK && mb_len >= size) {
        struct wire_call c = vs.hdr;
        int fits =
            sizeof(struct fastcall_reply_hdr) + (uint64_t)c.scalar_out_max * 8 + c.struct_out_max <=
            FASTCALL_AREA;
        if (fits ? sm != ODK_OK : sm != ODK_E_PROTOCOL)
            die("the mailbox refuses a call the socket takes, or takes outputs it cannot hold");
        if (fits && mb == in) /* same bytes, so the same pointers */
            same_view(&vs, &vm);
    }
    if (sm == ODK_OK) {
        /* The bytes the mailbox used, as a socket body. */
        if (run_call_check(CALL_SOCKET, mb, vm.len, table, N_TABLE, find, &b, &again) != ODK_OK)
            die("the socket refuses the bytes of a call the mailbox takes");
        same_view(&vm, &again);
    }
    free(in);
    return 0;
}
