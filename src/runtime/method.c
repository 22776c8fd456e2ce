/* SPDX-License-Identifier: MIT */
/* Method-table validation: every call from an app passes through here
 * before any driver code sees it (story 4 and 10: bad arguments get an
 * error, never a crash inside the framework). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "odk/driver.h"
#include "runtime/why.h"


int odk_method_check(const odk_method *table, uint32_t n_methods, uint32_t selector,
                     uint32_t scalar_in_count, uint64_t struct_in_len, uint32_t scalar_out_max,
                     uint64_t struct_out_max, char *why, size_t why_len)
{
    why_say(why, why_len, "ok");
    if (scalar_in_count > ODK_MAX_SCALARS || scalar_out_max > ODK_MAX_SCALARS) {
        why_say(why, why_len, "selector %" PRIu32 ": more than ODK_MAX_SCALARS (%u) scalars",
            selector, ODK_MAX_SCALARS);
        return ODK_E_LIMIT;
    }
    if (struct_in_len > ODK_MAX_STRUCT || struct_out_max > ODK_MAX_STRUCT) {
        why_say(why, why_len, "selector %" PRIu32 ": structure larger than ODK_MAX_STRUCT (%llu bytes)",
            selector, (unsigned long long)ODK_MAX_STRUCT);
        return ODK_E_LIMIT;
    }
    if (!table || selector >= n_methods || !table[selector].fn) {
        why_say(why, why_len, "selector %" PRIu32 " is not in the method table (%" PRIu32 " entries)",
            selector, n_methods);
        return ODK_E_BAD_SELECTOR;
    }
    const odk_method *m = &table[selector];
    if (m->scalar_in != ODK_VARIABLE && m->scalar_in != scalar_in_count) {
        why_say(why, why_len, "selector %" PRIu32 ": expected %" PRIu32 " scalar input%s, got %" PRIu32,
            selector, m->scalar_in, why_s(m->scalar_in), scalar_in_count);
        return ODK_E_BAD_ARGUMENTS;
    }
    if (m->struct_in != ODK_VARIABLE_SIZE && m->struct_in != struct_in_len) {
        why_say(why, why_len,
            "selector %" PRIu32 ": expected a %" PRIu64 "-byte input structure, got %" PRIu64,
            selector, m->struct_in, struct_in_len);
        return ODK_E_BAD_ARGUMENTS;
    }
    if (m->scalar_out != ODK_VARIABLE && m->scalar_out > scalar_out_max) {
        why_say(why, why_len,
            "selector %" PRIu32 ": returns %" PRIu32 " scalar%s, caller has room for %" PRIu32,
            selector, m->scalar_out, why_s(m->scalar_out), scalar_out_max);
        return ODK_E_BAD_ARGUMENTS;
    }
    if (m->struct_out != ODK_VARIABLE_SIZE && m->struct_out > struct_out_max) {
        why_say(why, why_len,
            "selector %" PRIu32 ": returns a %" PRIu64 "-byte structure, caller has room for %" PRIu64,
            selector, m->struct_out, struct_out_max);
        return ODK_E_BAD_ARGUMENTS;
    }
    return ODK_OK;
}
