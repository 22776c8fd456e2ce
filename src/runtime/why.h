/* SPDX-License-Identifier: MIT */
/* why.h — the sentence a refused call carries ("selector 3: expected 2
 * scalar inputs, got 1"), written where the caller asked for one. */
#ifndef ODK_RUNTIME_WHY_H
#define ODK_RUNTIME_WHY_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

static inline void why_say(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void why_say(char *why, size_t len, const char *fmt, ...)
{
    if (!why || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

/* "input" or "inputs" for a count: "expected 1 scalar input", "expected 2
 * scalar inputs".  Refusals are read by people porting drivers; "1 scalar
 * inputs" makes them doubt the rest of the sentence. */
static inline const char *why_s(unsigned long long n)
{
    return n == 1 ? "" : "s";
}

#endif
