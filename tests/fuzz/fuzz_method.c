/* SPDX-License-Identifier: MIT */
/* fuzz_method — odk_method_check, the gate every app call passes before
 * driver code runs.  The input supplies the call shape (selector, counts,
 * sizes, capacities) and the size of the message buffer; an OK answer is
 * checked against the table, so an accepted call that does not fit the
 * method's declared shape aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odk/driver.h"
#include "odk/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fn(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    return ODK_OK;
}

/* Designated fields: odk_method may grow more (memory ranges, flags). */
#define M(f, si, so, sti, sto)                                                                     \
    {                                                                                              \
        .fn = f, .scalar_in = si, .scalar_out = so, .struct_in = sti, .struct_out = sto            \
    }

static const odk_method table[] = {
    M(fn, 0, 0, 0, 0),
    M(fn, 2, 1, 0, 0),
    M(fn, ODK_VARIABLE, ODK_VARIABLE, 0, 0),
    M(fn, 0, 0, 16, 32),
    M(NULL, 1, 1, 1, 1), /* a hole */
    M(fn, 1, 0, ODK_VARIABLE_SIZE, ODK_VARIABLE_SIZE),
    M(fn, ODK_MAX_SCALARS, ODK_MAX_SCALARS, ODK_MAX_STRUCT, ODK_MAX_STRUCT),
    M(fn, ODK_VARIABLE, 3, 4096, ODK_VARIABLE_SIZE),
    M(fn, 0, ODK_VARIABLE, ODK_VARIABLE_SIZE, 8),
};
#define N_TABLE ((uint32_t)(sizeof table / sizeof table[0]))

struct rd {
    const uint8_t *p;
    size_t left;
};

static uint64_t take(struct rd *r, size_t n)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        x |= (uint64_t)(r->left ? *r->p : 0) << (8 * i);
        if (r->left) {
            r->p++;
            r->left--;
        }
    }
    return x;
}

/* Values near the interesting edges are more useful than uniform ones:
 * a mode byte picks between a raw value and a small offset from a limit. */
static uint64_t pick(struct rd *r, uint64_t limit, size_t width)
{
    unsigned mode = (unsigned)take(r, 1);
    int64_t delta = (int8_t)take(r, 1);
    switch (mode & 3) {
    case 0:
        return take(r, width);
    case 1:
        return (uint64_t)((int64_t)limit + delta);
    case 2:
        return (uint64_t)delta & 0xff;
    default:
        return width == 4 ? (uint32_t)(UINT32_MAX + delta + 1)
                          : (uint64_t)(UINT64_MAX + (uint64_t)delta + 1);
    }
}

static void die(const char *what)
{
    fprintf(stderr, "fuzz_method: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rd r = {data, size};
    uint32_t n_methods = (uint32_t)(take(&r, 1) % (N_TABLE + 1));
    const odk_method *tab = (take(&r, 1) & 0x80) ? NULL : table;
    if (!tab)
        n_methods = (uint32_t)take(&r, 1); /* NULL table with any count */
    uint32_t selector = (uint32_t)pick(&r, N_TABLE, 4);
    uint32_t scalar_in = (uint32_t)pick(&r, ODK_MAX_SCALARS, 4);
    uint64_t struct_in = pick(&r, ODK_MAX_STRUCT, 8);
    uint32_t scalar_out_max = (uint32_t)pick(&r, ODK_MAX_SCALARS, 4);
    uint64_t struct_out_max = pick(&r, ODK_MAX_STRUCT, 8);
    size_t why_len = (size_t)take(&r, 1);

    /* An exact-size heap buffer so ASan sees any write past why_len. */
    char *why = why_len ? malloc(why_len) : NULL;
    int st = odk_method_check(tab, n_methods, selector, scalar_in, struct_in, scalar_out_max,
                              struct_out_max, why, why_len);
    if (why && !memchr(why, '\0', why_len))
        die("why is not NUL-terminated within why_len");
    free(why);

    switch (st) {
    case ODK_OK: {
        if (!tab || selector >= n_methods || !tab[selector].fn)
            die("OK for a selector that is not in the table");
        const odk_method *m = &tab[selector];
        if (scalar_in > ODK_MAX_SCALARS || scalar_out_max > ODK_MAX_SCALARS ||
            struct_in > ODK_MAX_STRUCT || struct_out_max > ODK_MAX_STRUCT)
            die("OK for a call beyond ODK_MAX_SCALARS / ODK_MAX_STRUCT");
        if (m->scalar_in != ODK_VARIABLE && m->scalar_in != scalar_in)
            die("OK with the wrong scalar input count");
        if (m->struct_in != ODK_VARIABLE_SIZE && m->struct_in != struct_in)
            die("OK with the wrong input structure size");
        if (m->scalar_out != ODK_VARIABLE && m->scalar_out > scalar_out_max)
            die("OK with too little room for scalar outputs");
        if (m->struct_out != ODK_VARIABLE_SIZE && m->struct_out > struct_out_max)
            die("OK with too little room for the output structure");
        /* What call.c then sizes its buffers from. */
        uint32_t out_count = m->scalar_out == ODK_VARIABLE ? scalar_out_max : m->scalar_out;
        uint64_t out_cap = m->struct_out == ODK_VARIABLE_SIZE ? struct_out_max : m->struct_out;
        if (out_count > ODK_MAX_SCALARS)
            die("accepted call gives more scalar outputs than ODK_MAX_SCALARS");
        if (out_cap > ODK_MAX_STRUCT)
            die("accepted call gives an output structure beyond ODK_MAX_STRUCT");
        break;
    }
    case ODK_E_BAD_SELECTOR:
    case ODK_E_BAD_ARGUMENTS:
    case ODK_E_LIMIT:
        break;
    default:
        die("unexpected status");
    }
    return 0;
}
